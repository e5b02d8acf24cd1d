/* Model file digests for "model.load" audit records, with a keyed cache.
 *
 * Hashing a multi-gigabyte model on every `kura run` would cost seconds and read the whole file,
 * so the digest is remembered in STATE_DIR/cache/digests, one line per file:
 *   <dev> <ino> <size> <mtime_ns> <ctime_ns> <sha256 hex> <mac hex>\n
 * where mac = keyed BLAKE2b-256 (data key "digest-cache") over the first six fields. An entry is
 * used only when the file's identity and all three times/sizes still match and the MAC verifies;
 * anything else (a missing, corrupt, forged or stale cache) means the file is hashed again. ctime
 * cannot be set by ordinary users, so rewriting a file and restoring its mtime still invalidates
 * the entry. The cache holds at most DC_MAX entries (oldest dropped) and is replaced atomically. */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/limits.h"
#include "kura/audit.h"

enum { DC_MAX = 64, DC_LINE = 512, DC_MAC = 32 };

struct dc_entry {
    uint64_t dev, ino, size, mtime, ctime;
    char hex[KURA_AUDIT_HEX_LEN];
};

static void dc_mac(const struct kura_secret *key, const char *fields, size_t len,
                   char out[2 * DC_MAC + 1])
{
    uint8_t m[DC_MAC];
    crypto_generichash(m, sizeof m, (const unsigned char *)fields, len, key->data, key->len);
    sodium_bin2hex(out, 2 * DC_MAC + 1, m, sizeof m);
}

static int dc_fields(const struct dc_entry *e, char *buf, size_t cap)
{
    return snprintf(buf, cap, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s",
                    e->dev, e->ino, e->size, e->mtime, e->ctime, e->hex);
}

static bool is_hex64(const char *s)
{
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[64] == 0;
}

/* Parses the cache text; keeps only entries whose MAC verifies. Returns the count. */
static int dc_parse(const char *txt, const struct kura_secret *key, struct dc_entry *out)
{
    int n = 0;
    const char *p = txt;
    while (*p && n < DC_MAX) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[DC_LINE];
        if (len < sizeof line) {
            memcpy(line, p, len);
            line[len] = 0;
            struct dc_entry e;
            char hex[80], mac[80];
            if (sscanf(line, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %79s %79s",
                       &e.dev, &e.ino, &e.size, &e.mtime, &e.ctime, hex, mac) == 7 &&
                strlen(hex) == 64 && is_hex64(hex) && strlen(mac) == 2 * DC_MAC) {
                memcpy(e.hex, hex, KURA_AUDIT_HEX_LEN);
                char f[DC_LINE], want[2 * DC_MAC + 1];
                int fl = dc_fields(&e, f, sizeof f);
                dc_mac(key, f, (size_t)fl, want);
                if (sodium_memcmp(want, mac, 2 * DC_MAC) == 0)
                    out[n++] = e;
            }
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    return n;
}

static uint64_t ns_of(struct timespec t)
{
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

enum kura_err kura_audit_model_digest(const char *state_dir, struct kura_keys *keys,
                                      const char *path, char out_hex[KURA_AUDIT_HEX_LEN],
                                      bool *cached, struct kura_errbuf *eb)
{
    out_hex[0] = 0;
    *cached = false;
    struct stat st;
    if (stat(path, &st) != 0)
        return kura_err_set(eb, errno == ENOENT ? KURA_ERR_NOTFOUND : KURA_ERR_IO, "%s: %s", path,
                            strerror(errno));
    struct dc_entry cur = {.dev = (uint64_t)st.st_dev,
                           .ino = (uint64_t)st.st_ino,
                           .size = (uint64_t)st.st_size,
                           .mtime = ns_of(st.st_mtim),
                           .ctime = ns_of(st.st_ctim)};
    char cdir[KURA_MAX_PATH], cpath[KURA_MAX_PATH];
    struct kura_secret *key = NULL;
    struct dc_entry *ents = calloc(DC_MAX + 1, sizeof *ents);
    char *txt = NULL, *outbuf = NULL;
    enum kura_err e = KURA_OK;
    if (!ents)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    if ((e = kura_state_path(state_dir, "cache", cdir, sizeof cdir, eb)) ||
        (e = kura_state_path(state_dir, "cache/digests", cpath, sizeof cpath, eb)) ||
        (e = kura_keys_data_key(keys, "digest-cache", true, &key, eb)))
        goto out;
    int n = 0;
    size_t tlen;
    if (kura_state_read_file(cpath, (size_t)DC_MAX * DC_LINE, &txt, &tlen, NULL) == KURA_OK)
        n = dc_parse(txt, key, ents);
    for (int i = 0; i < n; i++)
        if (ents[i].dev == cur.dev && ents[i].ino == cur.ino && ents[i].size == cur.size &&
            ents[i].mtime == cur.mtime && ents[i].ctime == cur.ctime) {
            memcpy(out_hex, ents[i].hex, KURA_AUDIT_HEX_LEN);
            *cached = true;
            goto out;
        }
    if ((e = kura_audit_file_digest(path, cur.hex, eb)))
        goto out;
    memcpy(out_hex, cur.hex, KURA_AUDIT_HEX_LEN);
    /* Rewrite: entries for other files (and other versions dropped), newest last. */
    int keep = 0;
    for (int i = 0; i < n; i++)
        if (!(ents[i].dev == cur.dev && ents[i].ino == cur.ino))
            ents[keep++] = ents[i];
    int first = keep >= DC_MAX ? keep - DC_MAX + 1 : 0;
    ents[keep++] = cur;
    outbuf = malloc((size_t)(keep - first) * DC_LINE);
    if (!outbuf) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t off = 0;
    for (int i = first; i < keep; i++) {
        char f[DC_LINE], mac[2 * DC_MAC + 1];
        int fl = dc_fields(&ents[i], f, sizeof f);
        dc_mac(key, f, (size_t)fl, mac);
        off += (size_t)snprintf(outbuf + off, DC_LINE, "%s %s\n", f, mac);
    }
    /* The cache is an optimisation: failing to write it does not fail the load. */
    if (kura_state_mkdir(cdir, true, NULL) == KURA_OK)
        (void)kura_state_write_atomic(cpath, outbuf, off, NULL);
out:
    kura_secret_destroy(key);
    free(ents);
    free(txt);
    free(outbuf);
    return e;
}
