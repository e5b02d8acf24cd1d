/* Audit record encoding and parsing, hashes, the line reader and the head file. */
#include "audit/audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/util.h"

/* ---- JSON strings ---- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0xffu >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

bool audit_json_str(struct kura_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    kura_buf_put(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            kura_buf_put(b, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            kura_buf_put(b, e, 6);
            i++;
        } else {
            size_t l = utf8_len(u + i, n - i);
            if (!l)
                return false;
            kura_buf_put(b, u + i, l);
            i += l;
        }
    }
    kura_buf_put(b, "\"", 1);
    return true;
}

/* ---- hashes ---- */

void audit_line_hash(const void *line, size_t len, uint8_t out[KURA_AUDIT_HASH_LEN])
{
    crypto_generichash(out, KURA_AUDIT_HASH_LEN, line, len, NULL, 0);
}

void audit_tag(const uint8_t *key, const void *prefix, size_t len,
               uint8_t out[KURA_AUDIT_HASH_LEN])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, KURA_KEYS_DATA_KEY_LEN, KURA_AUDIT_HASH_LEN);
    crypto_generichash_update(&st, (const uint8_t *)DOM_TAG, strlen(DOM_TAG));
    crypto_generichash_update(&st, prefix, len);
    crypto_generichash_final(&st, out, KURA_AUDIT_HASH_LEN);
    sodium_memzero(&st, sizeof st);
}

bool audit_hex_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

bool audit_hex_decode(const char *s, uint8_t *out, size_t n)
{
    if (!audit_hex_ok(s, 2 * n))
        return false;
    size_t bl = 0;
    return sodium_hex2bin(out, n, s, 2 * n, NULL, &bl, NULL) == 0 && bl == n;
}

/* ---- record parsing ---- */

static bool time_ok(const char *t)
{
    /* 2024-05-01T12:00:00.123456Z */
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    if (strlen(t) != sizeof pat - 1)
        return false;
    for (size_t i = 0; i < sizeof pat - 1; i++) {
        if (pat[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != pat[i])
            return false;
    }
    return true;
}

/* Nesting depth of JSON text, ignoring brackets inside strings. */
static bool depth_ok(const char *s, size_t n, int max)
{
    int d = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++d > max)
                return false;
        } else if (c == '}' || c == ']') {
            d--;
        }
    }
    return true;
}

#define WHY(...)                                                                          \
    do {                                                                                  \
        if (why)                                                                          \
            snprintf(why, why_len, __VA_ARGS__);                                          \
        goto fail;                                                                        \
    } while (0)

static const char *str_field(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    if (s && strlen(s) > KURA_AUDIT_MAX_FIELD)
        return NULL;
    return s;
}

bool arec_parse(const char *line, size_t len, struct arec *r, char *why, size_t why_len)
{
    memset(r, 0, sizeof *r);
    if (len > KURA_AUDIT_MAX_LINE)
        WHY("line longer than %u bytes", KURA_AUDIT_MAX_LINE);
    if (len < TAG_FIELD_LEN + 2 || line[0] != '{')
        WHY("not a record");
    size_t tp = len - TAG_FIELD_LEN;
    if (memcmp(line + tp, ",\"tag\":\"", 8) != 0 || !audit_hex_ok(line + tp + 8, 64) ||
        memcmp(line + len - 2, "\"}", 2) != 0)
        WHY("record does not end with its tag");
    r->tag_prefix_len = tp;
    audit_hex_decode(line + tp + 8, r->tag, KURA_AUDIT_HASH_LEN);
    if (tp >= SIG_FIELD_LEN && memcmp(line + tp - SIG_FIELD_LEN, ",\"sig\":\"", 8) == 0 &&
        audit_hex_ok(line + tp - SIG_FIELD_LEN + 8, 128) && line[tp - 1] == '"') {
        r->has_sig = true;
        r->sig_prefix_len = tp - SIG_FIELD_LEN;
        audit_hex_decode(line + tp - SIG_FIELD_LEN + 8, r->sig, 64);
    }
    if (!depth_ok(line, len, KURA_AUDIT_MAX_JSON_DEPTH))
        WHY("JSON nested deeper than %d", KURA_AUDIT_MAX_JSON_DEPTH);
    json_error_t jerr;
    r->doc = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!r->doc)
        WHY("invalid JSON at column %d: %s", jerr.column, jerr.text);
    if (!json_is_object(r->doc))
        WHY("not a JSON object");
    size_t want = r->has_sig ? 10 : 9;
    if (json_object_size(r->doc) != want)
        WHY("record has %zu fields, expected %zu", json_object_size(r->doc), want);
    const json_t *seq = json_object_get(r->doc, "seq");
    if (!json_is_integer(seq) || json_integer_value(seq) < 1)
        WHY("seq missing or not a positive integer");
    r->seq = (uint64_t)json_integer_value(seq);
    r->time = str_field(r->doc, "time");
    r->actor = str_field(r->doc, "actor");
    r->action = str_field(r->doc, "action");
    r->object = str_field(r->doc, "object");
    r->outcome = str_field(r->doc, "outcome");
    if (!r->time || !time_ok(r->time))
        WHY("time missing or malformed");
    if (!r->actor || !r->action || !r->object || !r->outcome)
        WHY("actor/action/object/outcome missing, not strings or too long");
    r->details = json_object_get(r->doc, "details");
    if (!json_is_object(r->details))
        WHY("details missing or not an object");
    const char *prev = json_string_value(json_object_get(r->doc, "prev"));
    if (!prev || strlen(prev) != 64 || !audit_hex_decode(prev, r->prev, KURA_AUDIT_HASH_LEN))
        WHY("prev missing or not 64 hex digits");
    const char *tag = json_string_value(json_object_get(r->doc, "tag"));
    if (!tag || strlen(tag) != 64 || memcmp(tag, line + tp + 8, 64) != 0)
        WHY("tag field inconsistent");
    if (r->has_sig) {
        const char *sig = json_string_value(json_object_get(r->doc, "sig"));
        if (!sig || strlen(sig) != 128 || memcmp(sig, line + tp - SIG_FIELD_LEN + 8, 128) != 0)
            WHY("sig field inconsistent");
    }
    if (r->has_sig != (strcmp(r->action, ACT_CHECKPOINT) == 0))
        WHY(r->has_sig ? "signature on a record that is not a checkpoint"
                       : "checkpoint without a signature");
    return true;
fail:
    json_decref(r->doc);
    r->doc = NULL;
    return false;
}

void arec_free(struct arec *r)
{
    json_decref(r->doc);
    r->doc = NULL;
}

/* ---- line reader ---- */

#define READ_CHUNK (256u << 10)

bool line_reader_init(struct line_reader *lr, int fd, const void *mem, size_t mem_len)
{
    memset(lr, 0, sizeof *lr);
    lr->fd = fd;
    if (fd < 0) {
        lr->mem = mem;
        lr->mem_len = mem_len;
        return true;
    }
    lr->buf_cap = KURA_AUDIT_MAX_LINE + 1 + READ_CHUNK;
    lr->buf = malloc(lr->buf_cap);
    return lr->buf != NULL;
}

void line_reader_free(struct line_reader *lr)
{
    free(lr->buf);
    lr->buf = NULL;
}

static bool next_mem(struct line_reader *lr, struct line *out)
{
    size_t pos = (size_t)lr->offset;
    if (pos >= lr->mem_len)
        return false;
    const char *p = lr->mem + pos;
    size_t left = lr->mem_len - pos;
    const char *nl = memchr(p, '\n', left);
    size_t len = nl ? (size_t)(nl - p) : left;
    out->p = p;
    out->len = len;
    out->offset = lr->offset;
    out->terminated = nl != NULL;
    out->too_long = len > KURA_AUDIT_MAX_LINE;
    lr->offset += len + (nl ? 1 : 0);
    return true;
}

/* Reads more into buf; false at EOF or error. */
static bool fill(struct line_reader *lr)
{
    if (lr->eof)
        return false;
    if (lr->buf_pos > 0) {
        memmove(lr->buf, lr->buf + lr->buf_pos, lr->buf_len - lr->buf_pos);
        lr->buf_len -= lr->buf_pos;
        lr->buf_pos = 0;
    }
    if (lr->buf_len == lr->buf_cap)
        return false;
    for (;;) {
        ssize_t n = read(lr->fd, lr->buf + lr->buf_len, lr->buf_cap - lr->buf_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            lr->err = true;
            lr->err_no = errno;
            lr->eof = true;
            return false;
        }
        if (n == 0) {
            lr->eof = true;
            return false;
        }
        lr->buf_len += (size_t)n;
        return true;
    }
}

bool line_reader_next(struct line_reader *lr, struct line *out)
{
    if (lr->fd < 0)
        return next_mem(lr, out);
    size_t scanned = 0;
    for (;;) {
        char *p = lr->buf + lr->buf_pos;
        size_t avail = lr->buf_len - lr->buf_pos;
        char *nl = memchr(p + scanned, '\n', avail - scanned);
        if (nl) {
            size_t len = (size_t)(nl - p);
            out->p = p;
            out->len = len;
            out->offset = lr->offset;
            out->terminated = true;
            out->too_long = len > KURA_AUDIT_MAX_LINE;
            lr->buf_pos += len + 1;
            lr->offset += len + 1;
            return true;
        }
        scanned = avail;
        if (avail > KURA_AUDIT_MAX_LINE) {
            /* Overlong line: skip to its end, report it as too long. */
            uint64_t start = lr->offset;
            size_t total = avail;
            lr->buf_pos = lr->buf_len;
            for (;;) {
                if (!fill(lr))
                    break;
                char *q = memchr(lr->buf, '\n', lr->buf_len);
                if (q) {
                    size_t k = (size_t)(q - lr->buf);
                    total += k;
                    lr->buf_pos = k + 1;
                    out->p = "";
                    out->len = total;
                    out->offset = start;
                    out->terminated = true;
                    out->too_long = true;
                    lr->offset = start + total + 1;
                    return true;
                }
                total += lr->buf_len;
                lr->buf_pos = lr->buf_len;
            }
            out->p = "";
            out->len = total;
            out->offset = start;
            out->terminated = false;
            out->too_long = true;
            lr->offset = start + total;
            return true;
        }
        if (!fill(lr)) {
            avail = lr->buf_len - lr->buf_pos;
            if (avail == 0)
                return false;
            out->p = lr->buf + lr->buf_pos;
            out->len = avail;
            out->offset = lr->offset;
            out->terminated = false;
            out->too_long = false;
            lr->buf_pos = lr->buf_len;
            lr->offset += avail;
            return true;
        }
    }
}

/* ---- head file ---- */

enum kura_err audit_head_read(const char *head_path, const uint8_t *pubkey, uint64_t *seq,
                              uint8_t hash[KURA_AUDIT_HASH_LEN], char log_hex[33],
                              struct kura_errbuf *eb)
{
    char *txt = NULL;
    size_t n = 0;
    enum kura_err e = kura_state_read_file(head_path, KURA_AUDIT_MAX_HEAD_FILE, &txt, &n, eb);
    if (e)
        return e;
    json_error_t jerr;
    json_t *d = json_loadb(txt, n, JSON_REJECT_DUPLICATES, &jerr);
    free(txt);
    if (!json_is_object(d)) {
        json_decref(d);
        return kura_err_set(eb, KURA_ERR_FORMAT, "%s: not a head file", head_path);
    }
    const char *fmt = json_string_value(json_object_get(d, "format"));
    const char *log = json_string_value(json_object_get(d, "log"));
    const json_t *js = json_object_get(d, "seq");
    const char *h = json_string_value(json_object_get(d, "hash"));
    const char *sig = json_string_value(json_object_get(d, "sig"));
    uint8_t sigb[64];
    if (!fmt || strcmp(fmt, "kura-audit-head-1") != 0 || !log || strlen(log) != 32 ||
        !audit_hex_ok(log, 32) || !json_is_integer(js) || json_integer_value(js) < 1 || !h ||
        strlen(h) != 64 || !audit_hex_decode(h, hash, KURA_AUDIT_HASH_LEN) || !sig ||
        strlen(sig) != 128 || !audit_hex_decode(sig, sigb, 64)) {
        json_decref(d);
        return kura_err_set(eb, KURA_ERR_FORMAT, "%s: malformed head file", head_path);
    }
    *seq = (uint64_t)json_integer_value(js);
    memcpy(log_hex, log, 33);
    char msg[256];
    int ml = snprintf(msg, sizeof msg, DOM_HEAD "%s\n%llu\n%s", log, (unsigned long long)*seq, h);
    json_decref(d);
    if (!kura_keys_verify(pubkey, msg, (size_t)ml, sigb))
        return kura_err_set(eb, KURA_ERR_TAMPER, "%s: signature does not verify with the node key",
                            head_path);
    return KURA_OK;
}
