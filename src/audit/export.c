/* Reading the audit log: show (filters), export (signed bundle) and bundle verification. */
#include "audit/audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/timefmt.h"

#define TRAILER_SIG_LEN (8 + 128 + 2) /* `,"sig":"<128 hex>"}` */

/* Opens the log for reading and takes a shared lock on audit.lock when it exists, so that no
 * commit is half-written while we read. *lock_fd is -1 when there is no lock file. */
static enum kura_err open_for_read(const char *state_dir, int *fd, int *lock_fd, char *log_path,
                                   char *head_path, struct kura_errbuf *eb)
{
    char lock_path[KURA_MAX_PATH];
    enum kura_err e;
    *fd = *lock_fd = -1;
    if ((e = kura_state_path(state_dir, "audit/audit.log", log_path, KURA_MAX_PATH, eb)) ||
        (e = kura_state_path(state_dir, "audit/head.json", head_path, KURA_MAX_PATH, eb)) ||
        (e = kura_state_path(state_dir, "audit/audit.lock", lock_path, sizeof lock_path, eb)))
        return e;
    *lock_fd = open(lock_path, O_RDONLY | O_CLOEXEC);
    if (*lock_fd >= 0)
        while (flock(*lock_fd, LOCK_SH) != 0 && errno == EINTR) {
        }
    *fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        int err = errno;
        if (*lock_fd >= 0)
            close(*lock_fd);
        *lock_fd = -1;
        return kura_err_set(eb, err == ENOENT ? KURA_ERR_NOTFOUND : KURA_ERR_IO, "%s: %s",
                            log_path, strerror(err));
    }
    return KURA_OK;
}

static void close_read(int fd, int lock_fd)
{
    if (fd >= 0)
        close(fd);
    if (lock_fd >= 0)
        close(lock_fd); /* releases the lock */
}

/* ---- show ---- */

static bool match_action(const char *pat, const char *action)
{
    size_t n = strlen(pat);
    if (n && pat[n - 1] == '*')
        return strncmp(pat, action, n - 1) == 0;
    return strcmp(pat, action) == 0;
}

enum kura_err kura_audit_show(const char *state_dir, const struct kura_audit_filter *f,
                              kura_audit_record_fn fn, void *ud, uint64_t *n_skipped,
                              struct kura_errbuf *eb)
{
    char log_path[KURA_MAX_PATH], head_path[KURA_MAX_PATH];
    int fd, lock_fd;
    uint64_t skipped = 0;
    enum kura_err e = open_for_read(state_dir, &fd, &lock_fd, log_path, head_path, eb);
    if (e)
        return e;
    struct line_reader lr;
    if (!line_reader_init(&lr, fd, NULL, 0)) {
        close_read(fd, lock_fd);
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    }
    struct line ln;
    while (line_reader_next(&lr, &ln)) {
        struct arec r;
        if (!ln.terminated || ln.too_long || !arec_parse(ln.p, ln.len, &r, NULL, 0)) {
            skipped++;
            continue;
        }
        bool ok = true;
        if (f) {
            if (f->since && strcmp(r.time, f->since) < 0)
                ok = false;
            if (f->until && strncmp(r.time, f->until, strlen(f->until)) > 0)
                ok = false;
            if (f->actor && strcmp(r.actor, f->actor) != 0)
                ok = false;
            if (f->action && !match_action(f->action, r.action))
                ok = false;
            if (f->from_seq && r.seq < f->from_seq)
                ok = false;
            if (f->to_seq && r.seq > f->to_seq)
                ok = false;
        }
        int stop = 0;
        if (ok) {
            char *d = json_dumps(r.details, JSON_COMPACT | JSON_PRESERVE_ORDER);
            struct kura_audit_record rec = {r.seq,     r.time,    r.actor,  r.action,
                                            r.object,  r.outcome, d ? d : "{}", ln.p,
                                            ln.len};
            stop = fn(ud, &rec);
            free(d);
        }
        arec_free(&r);
        if (stop)
            break;
    }
    if (lr.err)
        e = kura_err_set(eb, KURA_ERR_IO, "%s: read: %s", log_path, strerror(lr.err_no));
    line_reader_free(&lr);
    close_read(fd, lock_fd);
    if (n_skipped)
        *n_skipped = skipped;
    return e;
}

/* ---- export ---- */

enum kura_err kura_audit_export(const char *state_dir, struct kura_keys *keys,
                                const char *exported_by, const char *out_path,
                                struct kura_audit_verify_result *res, struct kura_errbuf *eb)
{
    char log_path[KURA_MAX_PATH], head_path[KURA_MAX_PATH], tmp[KURA_MAX_PATH], head_log[33];
    uint8_t pk[KURA_KEYS_PUBLIC_LEN], body_hash[KURA_AUDIT_HASH_LEN];
    struct kura_audit_verify_opts opt = {0};
    struct kura_audit_verify_result local;
    struct line_reader lr = {0};
    struct kura_buf t = {0};
    int fd = -1, lock_fd = -1, out = -1;
    uint64_t n_lines = 0, n_bytes = 0;
    enum kura_err e;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (sodium_init() < 0)
        return kura_err_set(eb, KURA_ERR_INTERNAL, "libsodium failed to initialise");
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= (int)sizeof tmp)
        return kura_err_set(eb, KURA_ERR_RANGE, "path too long");
    kura_keys_public(keys, pk);
    opt.pubkey = pk;
    if ((e = open_for_read(state_dir, &fd, &lock_fd, log_path, head_path, eb)))
        return e;
    if ((e = audit_head_read(head_path, pk, &opt.head_seq, opt.head_hash, head_log, eb)))
        goto fail;
    opt.have_head = true;
    unlink(tmp);
    out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0) {
        e = kura_err_set(eb, KURA_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto fail;
    }
    struct verifier *v = verifier_create(&opt, res);
    if (!v || !line_reader_init(&lr, fd, NULL, 0)) {
        free(v);
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, KURA_AUDIT_HASH_LEN);
    struct line ln;
    struct kura_buf chunk = {0};
    while (line_reader_next(&lr, &ln)) {
        verifier_line(v, &ln);
        if (ln.too_long || !ln.terminated)
            continue; /* the verifier rejects the export below */
        kura_buf_clear(&chunk);
        kura_buf_put(&chunk, ln.p, ln.len);
        kura_buf_put(&chunk, "\n", 1);
        if (chunk.err) {
            e = KURA_ERR_NOMEM;
            break;
        }
        crypto_generichash_update(&hs, (const uint8_t *)chunk.p, chunk.len);
        n_lines++;
        n_bytes += chunk.len;
        if ((e = chunk.len && write(out, chunk.p, chunk.len) == (ssize_t)chunk.len
                     ? KURA_OK
                     : kura_err_set(eb, KURA_ERR_IO, "write %s: %s", tmp, strerror(errno))))
            break;
    }
    kura_buf_free(&chunk);
    crypto_generichash_final(&hs, body_hash, sizeof body_hash);
    bool rerr = lr.err;
    enum kura_err ve = verifier_finish(v);
    close_read(fd, lock_fd);
    fd = lock_fd = -1;
    if (e)
        goto fail;
    if (rerr) {
        e = kura_err_set(eb, KURA_ERR_IO, "%s: read error", log_path);
        goto fail;
    }
    if (ve || strcmp(head_log, res->log_id) != 0) {
        e = kura_err_set(eb, KURA_ERR_TAMPER, "refusing to export a log that does not verify: %s",
                         res->message);
        goto fail;
    }
    char now[KURA_TIME_LEN], id[KURA_KEYS_ID_LEN], pub[KURA_KEYS_PUBLIC_TEXT_LEN], bh[65];
    kura_time_now(now);
    kura_keys_key_id(pk, id);
    kura_keys_format_public(pk, pub);
    sodium_bin2hex(bh, sizeof bh, body_hash, sizeof body_hash);
    kura_buf_printf(&t, "{\"bundle\":\"%s\",\"log\":\"%s\",\"records\":%llu,\"lines\":%llu,"
                        "\"bytes\":%llu,\"body_hash\":\"%s\",\"last_hash\":\"%s\","
                        "\"created\":\"%s\",",
                    BUNDLE_FORMAT, res->log_id, (unsigned long long)res->last_seq,
                    (unsigned long long)n_lines, (unsigned long long)n_bytes, bh, res->last_hash,
                    now);
    kura_buf_puts(&t, "\"exported_by\":");
    if (!audit_json_str(&t, exported_by ? exported_by : "", strlen(exported_by ? exported_by : "")))
        kura_buf_puts(&t, "\"?\"");
    kura_buf_printf(&t, ",\"key_id\":\"%s\",\"public\":\"%s\"", id, pub);
    {
        struct kura_buf m = {0};
        uint8_t sig[KURA_KEYS_SIG_LEN];
        char sh[129];
        kura_buf_puts(&m, DOM_BUNDLE);
        kura_buf_put(&m, t.p, t.len);
        if (m.err || t.err) {
            kura_buf_free(&m);
            e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
            goto fail;
        }
        kura_keys_sign(keys, m.p, m.len, sig);
        kura_buf_free(&m);
        sodium_bin2hex(sh, sizeof sh, sig, sizeof sig);
        kura_buf_printf(&t, ",\"sig\":\"%s\"}\n", sh);
    }
    if (t.err || write(out, t.p, t.len) != (ssize_t)t.len || fsync(out) != 0) {
        e = kura_err_set(eb, KURA_ERR_IO, "write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    close(out);
    out = -1;
    if (rename(tmp, out_path) != 0) {
        e = kura_err_set(eb, KURA_ERR_IO, "rename %s: %s", tmp, strerror(errno));
        goto fail;
    }
    kura_buf_free(&t);
    line_reader_free(&lr);
    return KURA_OK;
fail:
    kura_buf_free(&t);
    line_reader_free(&lr);
    close_read(fd, lock_fd);
    if (out >= 0) {
        close(out);
        unlink(tmp);
    }
    return e;
}

/* ---- bundle verification ---- */

static enum kura_err check_trailer(const char *p, size_t len, const uint8_t *pubkey,
                                   uint64_t *records, uint64_t *lines, uint64_t *bytes,
                                   uint8_t body_hash[KURA_AUDIT_HASH_LEN],
                                   uint8_t last_hash[KURA_AUDIT_HASH_LEN], char *log_hex,
                                   struct kura_errbuf *eb)
{
    uint8_t sig[KURA_KEYS_SIG_LEN], pk[KURA_KEYS_PUBLIC_LEN];
    if (len < TRAILER_SIG_LEN + 2 || len > KURA_AUDIT_MAX_LINE ||
        memcmp(p + len - TRAILER_SIG_LEN, ",\"sig\":\"", 8) != 0 ||
        !audit_hex_decode(p + len - TRAILER_SIG_LEN + 8, sig, sizeof sig) ||
        memcmp(p + len - 2, "\"}", 2) != 0)
        return kura_err_set(eb, KURA_ERR_TAMPER, "bundle: last line is not a signed trailer");
    json_error_t jerr;
    json_t *d = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
    enum kura_err e = KURA_OK;
    const char *fmt = json_string_value(json_object_get(d, "bundle"));
    const char *log = json_string_value(json_object_get(d, "log"));
    const char *bh = json_string_value(json_object_get(d, "body_hash"));
    const char *lh = json_string_value(json_object_get(d, "last_hash"));
    const char *pub = json_string_value(json_object_get(d, "public"));
    const json_t *jr = json_object_get(d, "records"), *jl = json_object_get(d, "lines"),
                 *jb = json_object_get(d, "bytes");
    if (!json_is_object(d) || !fmt || strcmp(fmt, BUNDLE_FORMAT) != 0 || !log ||
        strlen(log) != 32 || !audit_hex_ok(log, 32) || !bh || strlen(bh) != 64 ||
        !audit_hex_decode(bh, body_hash, KURA_AUDIT_HASH_LEN) || !lh || strlen(lh) != 64 ||
        !audit_hex_decode(lh, last_hash, KURA_AUDIT_HASH_LEN) || !json_is_integer(jr) ||
        json_integer_value(jr) < 1 || !json_is_integer(jl) || json_integer_value(jl) < 1 ||
        !json_is_integer(jb) || json_integer_value(jb) < 1) {
        e = kura_err_set(eb, KURA_ERR_TAMPER, "bundle: malformed trailer");
        goto out;
    }
    if (!pub || kura_keys_parse_public(pub, pk, NULL) != KURA_OK ||
        sodium_memcmp(pk, pubkey, sizeof pk) != 0) {
        e = kura_err_set(eb, KURA_ERR_CRYPTO, "bundle: made with another signing key than the "
                                              "one given");
        goto out;
    }
    size_t dl = strlen(DOM_BUNDLE), pl = len - TRAILER_SIG_LEN;
    char *m = malloc(dl + pl);
    if (!m) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(m, DOM_BUNDLE, dl);
    memcpy(m + dl, p, pl);
    bool ok = kura_keys_verify(pubkey, m, dl + pl, sig);
    free(m);
    if (!ok) {
        e = kura_err_set(eb, KURA_ERR_TAMPER, "bundle: trailer signature does not verify");
        goto out;
    }
    *records = (uint64_t)json_integer_value(jr);
    *lines = (uint64_t)json_integer_value(jl);
    *bytes = (uint64_t)json_integer_value(jb);
    memcpy(log_hex, log, 33);
out:
    json_decref(d);
    return e;
}

enum kura_err kura_audit_verify_bundle(const char *path, const uint8_t *pubkey,
                                       struct kura_audit_verify_result *res,
                                       struct kura_errbuf *eb)
{
    struct kura_audit_verify_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    res->verdict = KURA_AUDIT_BAD;
    if (!pubkey)
        return kura_err_set(eb, KURA_ERR_INVALID, "no public key to verify with");
    if (sodium_init() < 0)
        return kura_err_set(eb, KURA_ERR_INTERNAL, "libsodium failed to initialise");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kura_err_set(eb, errno == ENOENT ? KURA_ERR_NOTFOUND : KURA_ERR_IO, "%s: %s", path,
                            strerror(errno));
    /* Pass 1: find and check the trailer (the last line). */
    enum kura_err e;
    struct line_reader lr;
    struct line ln;
    struct kura_buf last = {0};
    bool last_term = false;
    uint64_t n_all = 0, records = 0, lines = 0, bytes = 0;
    uint8_t body_hash[KURA_AUDIT_HASH_LEN], last_hash[KURA_AUDIT_HASH_LEN], got[KURA_AUDIT_HASH_LEN];
    char log_hex[33];
    if (!line_reader_init(&lr, fd, NULL, 0)) {
        close(fd);
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    }
    while (line_reader_next(&lr, &ln)) {
        n_all++;
        kura_buf_clear(&last);
        if (!ln.too_long)
            kura_buf_put(&last, ln.p, ln.len);
        last_term = ln.terminated;
    }
    line_reader_free(&lr);
    if (!last_term || n_all < 2 || last.err) {
        e = kura_err_set(eb, KURA_ERR_TAMPER, "%s: not a complete bundle", path);
        goto out;
    }
    if ((e = check_trailer(last.p, last.len, pubkey, &records, &lines, &bytes, body_hash,
                           last_hash, log_hex, eb)))
        goto out;
    if (lines != n_all - 1) {
        e = kura_err_set(eb, KURA_ERR_TAMPER, "%s: trailer says %llu lines, bundle has %llu",
                         path, (unsigned long long)lines, (unsigned long long)(n_all - 1));
        goto out;
    }
    /* Pass 2: the body through the verifier, hashing it. */
    if (lseek(fd, 0, SEEK_SET) != 0 || !line_reader_init(&lr, fd, NULL, 0)) {
        e = kura_err_set(eb, KURA_ERR_IO, "%s: cannot rewind", path);
        goto out;
    }
    struct kura_audit_verify_opts opt = {0};
    opt.pubkey = pubkey;
    opt.have_head = true;
    opt.head_seq = records;
    memcpy(opt.head_hash, last_hash, sizeof last_hash);
    struct verifier *v = verifier_create(&opt, res);
    if (!v) {
        line_reader_free(&lr);
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto out;
    }
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, KURA_AUDIT_HASH_LEN);
    uint64_t seen = 0, nb = 0;
    while (seen < lines && line_reader_next(&lr, &ln)) {
        seen++;
        verifier_line(v, &ln);
        if (!ln.too_long) {
            crypto_generichash_update(&hs, (const uint8_t *)ln.p, ln.len);
            if (ln.terminated)
                crypto_generichash_update(&hs, (const uint8_t *)"\n", 1);
        }
        nb += ln.len + (ln.terminated ? 1 : 0);
    }
    line_reader_free(&lr);
    crypto_generichash_final(&hs, got, sizeof got);
    e = verifier_finish(v);
    if (e) {
        kura_err_set(eb, KURA_ERR_TAMPER, "%s: %s", path, res->message);
        goto out;
    }
    if (nb != bytes || sodium_memcmp(got, body_hash, sizeof got) != 0 ||
        strcmp(log_hex, res->log_id) != 0 || res->last_seq != records) {
        res->verdict = KURA_AUDIT_BAD;
        snprintf(res->message, sizeof res->message,
                 "bundle body does not match its signed trailer (length, hash or last record)");
        e = kura_err_set(eb, KURA_ERR_TAMPER, "%s: %s", path, res->message);
        goto out;
    }
    e = KURA_OK;
out:
    kura_buf_free(&last);
    close(fd);
    return e;
}
