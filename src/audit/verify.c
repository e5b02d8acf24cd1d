/* The streaming audit log verifier: chain, sequence, signatures, tags, seals and head. */
#include "audit/audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/limits.h"

struct garbage {
    uint64_t offset, len, line_no;
    uint8_t hash[KURA_AUDIT_HASH_LEN];
};

struct rec_pos {
    uint64_t line_no, offset, seq;
};

struct verifier {
    struct kura_audit_verify_opts opt;
    struct kura_audit_verify_result *res;
    bool done;              /* a verdict has been reached (BAD) */
    uint64_t line_no;       /* lines seen */
    uint64_t expected_seq;
    uint8_t prev_hash[KURA_AUDIT_HASH_LEN];
    bool have_log;
    char log_hex[33];
    struct rec_pos last;    /* last accepted record */
    struct rec_pos before_last;
    struct garbage garbage[KURA_AUDIT_MAX_GARBAGE];
    uint32_t n_garbage;
    bool garbage_overflow;
    /* A chain link that failed at record `pend` (its prev != hash of the record before):
     * decided by the next line (was `pend` itself altered, or the record before it?). */
    bool pending;
    struct rec_pos pend, pend_before;
    uint8_t pend_hash[KURA_AUDIT_HASH_LEN];
    uint64_t head_seen;     /* 1 once the head checkpoint was matched */
};

static void set_bad(struct verifier *v, const struct rec_pos *at, uint64_t n_valid,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void set_bad(struct verifier *v, const struct rec_pos *at, uint64_t n_valid,
                    const char *fmt, ...)
{
    struct kura_audit_verify_result *r = v->res;
    if (v->done)
        return;
    v->done = true;
    r->verdict = KURA_AUDIT_BAD;
    r->bad_line = at->line_no;
    r->bad_seq = at->seq;
    r->bad_offset = at->offset;
    r->n_records = n_valid;
    char tmp[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    snprintf(r->message, sizeof r->message, "first bad record: line %llu (seq %llu, offset %llu): %s",
             (unsigned long long)at->line_no, (unsigned long long)at->seq,
             (unsigned long long)at->offset, tmp);
}

struct verifier *verifier_create(const struct kura_audit_verify_opts *opt,
                                 struct kura_audit_verify_result *res)
{
    struct verifier *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->opt = *opt;
    v->res = res;
    memset(res, 0, sizeof *res);
    v->expected_seq = 1;
    return v;
}

/* Resolves a pending link failure given that the record after `pend` links (or not) to it. */
static void resolve_pending(struct verifier *v, bool successor_links)
{
    if (!v->pending)
        return;
    v->pending = false;
    if (successor_links)
        set_bad(v, &v->pend_before, v->pend_before.seq - 1,
                "altered: its hash no longer matches the prev of the next record");
    else
        set_bad(v, &v->pend, v->pend.seq - 1,
                "prev hash does not match the previous record (record altered, inserted or "
                "reordered)");
}

static bool seal_matches(struct verifier *v, const struct arec *r)
{
    const json_t *torn = json_object_get(r->details, "torn");
    if (!json_is_array(torn) || json_array_size(torn) != v->n_garbage)
        return false;
    for (uint32_t i = 0; i < v->n_garbage; i++) {
        const json_t *t = json_array_get(torn, i);
        const json_t *o = json_object_get(t, "offset"), *l = json_object_get(t, "len");
        const char *h = json_string_value(json_object_get(t, "hash"));
        uint8_t hb[KURA_AUDIT_HASH_LEN];
        if (!json_is_integer(o) || !json_is_integer(l) || !h || strlen(h) != 64 ||
            !audit_hex_decode(h, hb, sizeof hb))
            return false;
        if ((uint64_t)json_integer_value(o) != v->garbage[i].offset ||
            (uint64_t)json_integer_value(l) != v->garbage[i].len ||
            memcmp(hb, v->garbage[i].hash, sizeof hb) != 0)
            return false;
    }
    return true;
}

void verifier_line(struct verifier *v, const struct line *ln)
{
    struct kura_audit_verify_result *res = v->res;
    v->line_no++;
    if (v->done)
        return;
    struct rec_pos here = {v->line_no, ln->offset, v->expected_seq};
    struct arec r;
    char why[200] = "";
    uint8_t h[KURA_AUDIT_HASH_LEN];
    bool parsed = ln->terminated && !ln->too_long && arec_parse(ln->p, ln->len, &r, why, sizeof why);

    if (v->pending) {
        bool links = false;
        if (parsed)
            links = sodium_memcmp(r.prev, v->pend_hash, KURA_AUDIT_HASH_LEN) == 0;
        resolve_pending(v, links);
        if (parsed)
            arec_free(&r);
        return;
    }
    if (!parsed) {
        /* A torn or unparseable line: acceptable only when a seal record names it. */
        if (v->n_garbage == KURA_AUDIT_MAX_GARBAGE) {
            struct rec_pos g0 = {v->garbage[0].line_no, v->garbage[0].offset, v->expected_seq};
            set_bad(v, &g0, v->last.seq, "too many unparseable lines");
            return;
        }
        struct garbage *g = &v->garbage[v->n_garbage++];
        g->offset = ln->offset;
        g->len = ln->len;
        g->line_no = v->line_no;
        if (ln->too_long)
            memset(g->hash, 0, sizeof g->hash);
        else
            audit_line_hash(ln->p, ln->len, g->hash);
        if (v->n_garbage == 1)
            snprintf(res->message, sizeof res->message, "%s",
                     !ln->terminated ? "unterminated last line"
                     : ln->too_long  ? "line too long"
                                     : why);
        return;
    }
    bool is_seal = strcmp(r.action, ACT_SEAL) == 0;
    if (v->n_garbage) {
        struct rec_pos g0 = {v->garbage[0].line_no, v->garbage[0].offset, v->expected_seq};
        if (!is_seal || !seal_matches(v, &r)) {
            set_bad(v, &g0, v->last.seq, "unparseable line not covered by a seal record (%s)",
                    res->message);
            goto out;
        }
        res->n_seals++;
        v->n_garbage = 0;
    } else if (is_seal && json_array_size(json_object_get(r.details, "torn")) != 0) {
        set_bad(v, &here, v->last.seq, "seal record names torn data that is not there");
        goto out;
    }
    if (r.seq != v->expected_seq) {
        set_bad(v, &here, v->last.seq, "seq is %llu, expected %llu (record missing, inserted or "
                                       "reordered)",
                (unsigned long long)r.seq, (unsigned long long)v->expected_seq);
        goto out;
    }
    if (r.seq == 1) {
        const char *log = json_string_value(json_object_get(r.details, "log"));
        if (strcmp(r.action, ACT_GENESIS) != 0 || !log || strlen(log) != 32 ||
            !audit_hex_ok(log, 32)) {
            set_bad(v, &here, 0, "first record is not a valid genesis record");
            goto out;
        }
        memcpy(v->log_hex, log, 33);
        memcpy(res->log_id, log, 33);
        v->have_log = true;
    } else if (strcmp(r.action, ACT_GENESIS) == 0) {
        set_bad(v, &here, v->last.seq, "genesis record after the start of the log");
        goto out;
    }
    if (v->opt.tag_key) {
        uint8_t t[KURA_AUDIT_HASH_LEN];
        audit_tag(v->opt.tag_key->data, ln->p, r.tag_prefix_len, t);
        if (sodium_memcmp(t, r.tag, sizeof t) != 0) {
            set_bad(v, &here, v->last.seq, "tag does not verify with the audit key (altered)");
            goto out;
        }
    }
    bool authentic = v->opt.tag_key != NULL; /* the record's own bytes are proven unaltered */
    if (r.has_sig) {
        size_t dl = strlen(DOM_CKPT);
        char *msg = malloc(dl + r.sig_prefix_len);
        if (!msg) {
            set_bad(v, &here, v->last.seq, "out of memory");
            goto out;
        }
        memcpy(msg, DOM_CKPT, dl);
        memcpy(msg + dl, ln->p, r.sig_prefix_len);
        bool ok = kura_keys_verify(v->opt.pubkey, msg, dl + r.sig_prefix_len, r.sig);
        free(msg);
        if (!ok) {
            set_bad(v, &here, v->last.seq,
                    "checkpoint signature does not verify with the node key");
            goto out;
        }
        authentic = true;
    }
    audit_line_hash(ln->p, ln->len, h);
    if (v->opt.have_head && r.seq == v->opt.head_seq) {
        if (sodium_memcmp(h, v->opt.head_hash, sizeof h) != 0) {
            set_bad(v, &here, v->last.seq, "does not match the checkpoint named by the head");
            goto out;
        }
        v->head_seen = 1;
        authentic = true;
    }
    if (sodium_memcmp(r.prev, v->prev_hash, KURA_AUDIT_HASH_LEN) != 0) {
        if (r.seq == 1) {
            set_bad(v, &here, 0, "genesis prev is not zero");
            goto out;
        }
        if (authentic) {
            /* This record is proven; so the one before it was altered. */
            set_bad(v, &v->last, v->last.seq - 1,
                    "altered: its hash no longer matches the prev of the next record");
            goto out;
        }
        v->pending = true;
        v->pend = here;
        v->pend_before = v->last;
        memcpy(v->pend_hash, h, sizeof h);
    }
    if (r.has_sig) {
        /* after the link check: an altered genesis shows up as a broken link first */
        const char *log = json_string_value(json_object_get(r.details, "log"));
        if (!log || strcmp(log, v->log_hex) != 0) {
            set_bad(v, &here, v->last.seq, "checkpoint names another log");
            goto out;
        }
    }
    memcpy(v->prev_hash, h, sizeof h);
    v->before_last = v->last;
    v->last = here;
    v->expected_seq++;
    res->n_records++;
    res->last_seq = r.seq;
    if (r.has_sig) {
        res->n_checkpoints++;
        res->last_checkpoint_seq = r.seq;
        res->unsigned_tail = 0;
    } else {
        res->unsigned_tail++;
    }
out:
    arec_free(&r);
}

enum kura_err verifier_finish(struct verifier *v)
{
    struct kura_audit_verify_result *res = v->res;
    if (!v->done && v->pending) {
        /* No successor to decide: the earlier record is the first that may be bad. */
        v->pending = false;
        set_bad(v, &v->pend_before, v->pend_before.seq - 1,
                "hash does not match the prev of the next record (this record or the next one "
                "was altered)");
    }
    if (!v->done) {
        struct rec_pos next = {v->line_no + 1, 0, v->expected_seq};
        if (v->n_garbage) {
            next.line_no = v->garbage[0].line_no;
            next.offset = v->garbage[0].offset;
        }
        if (res->n_records == 0 && v->n_garbage == 0) {
            set_bad(v, &next, 0, "empty log");
        } else if (v->opt.have_head && res->last_seq < v->opt.head_seq) {
            set_bad(v, &next, res->last_seq,
                    "missing: the log ends at seq %llu but the head names checkpoint seq %llu "
                    "(records removed)",
                    (unsigned long long)res->last_seq, (unsigned long long)v->opt.head_seq);
        } else if (v->opt.expect_min_seq && res->last_seq < v->opt.expect_min_seq) {
            set_bad(v, &next, res->last_seq,
                    "missing: the log ends at seq %llu, expected at least seq %llu",
                    (unsigned long long)res->last_seq,
                    (unsigned long long)v->opt.expect_min_seq);
        } else if (v->n_garbage) {
            char why[200];
            snprintf(why, sizeof why, "%.190s", res->message);
            res->verdict = KURA_AUDIT_TORN;
            res->bad_line = v->garbage[0].line_no;
            res->bad_seq = v->expected_seq;
            res->bad_offset = v->garbage[0].offset;
            res->torn_offset = v->garbage[0].offset;
            const struct garbage *gl = &v->garbage[v->n_garbage - 1];
            res->torn_len = gl->offset + gl->len + 1 - v->garbage[0].offset;
            snprintf(res->message, sizeof res->message,
                     "torn tail: %u unsealed line(s) from line %llu (offset %llu) after the "
                     "valid prefix ending at seq %llu (%s); it is sealed when the log is next "
                     "opened for writing",
                     v->n_garbage, (unsigned long long)res->bad_line,
                     (unsigned long long)res->torn_offset, (unsigned long long)res->last_seq,
                     why);
            v->done = true;
        }
    }
    if (!v->done) {
        res->verdict = KURA_AUDIT_INTACT;
        snprintf(res->message, sizeof res->message,
                 "intact: %llu records, %llu checkpoints, last checkpoint seq %llu, %llu "
                 "records after it",
                 (unsigned long long)res->n_records, (unsigned long long)res->n_checkpoints,
                 (unsigned long long)res->last_checkpoint_seq,
                 (unsigned long long)res->unsigned_tail);
    }
    if (res->n_records)
        sodium_bin2hex(res->last_hash, sizeof res->last_hash, v->prev_hash, KURA_AUDIT_HASH_LEN);
    enum kura_err e = res->verdict == KURA_AUDIT_INTACT ? KURA_OK : KURA_ERR_TAMPER;
    free(v);
    return e;
}

enum kura_err kura_audit_verify_buffer(const void *data, size_t len,
                                       const struct kura_audit_verify_opts *opt,
                                       struct kura_audit_verify_result *res)
{
    memset(res, 0, sizeof *res);
    if (!opt || !opt->pubkey) {
        res->verdict = KURA_AUDIT_BAD;
        snprintf(res->message, sizeof res->message, "no public key to verify with");
        return KURA_ERR_INVALID;
    }
    if (sodium_init() < 0)
        return KURA_ERR_INTERNAL;
    struct verifier *v = verifier_create(opt, res);
    struct line_reader lr;
    if (!v)
        return KURA_ERR_NOMEM;
    line_reader_init(&lr, -1, data, len);
    struct line ln;
    while (line_reader_next(&lr, &ln))
        verifier_line(v, &ln);
    return verifier_finish(v);
}

enum kura_err kura_audit_verify_file(const char *state_dir,
                                     const struct kura_audit_verify_opts *opt_in, bool use_head,
                                     struct kura_audit_verify_result *res,
                                     struct kura_errbuf *eb)
{
    char log_path[KURA_MAX_PATH], head_path[KURA_MAX_PATH], head_log[33];
    struct kura_audit_verify_opts opt;
    enum kura_err e;
    memset(res, 0, sizeof *res);
    res->verdict = KURA_AUDIT_BAD;
    if (!opt_in || !opt_in->pubkey)
        return kura_err_set(eb, KURA_ERR_INVALID, "no public key to verify with");
    if (sodium_init() < 0)
        return kura_err_set(eb, KURA_ERR_INTERNAL, "libsodium failed to initialise");
    opt = *opt_in;
    if ((e = kura_state_path(state_dir, "audit/audit.log", log_path, sizeof log_path, eb)) ||
        (e = kura_state_path(state_dir, "audit/head.json", head_path, sizeof head_path, eb)))
        return e;
    char lock_path[KURA_MAX_PATH];
    if ((e = kura_state_path(state_dir, "audit/audit.lock", lock_path, sizeof lock_path, eb)))
        return e;
    /* A shared lock on audit.lock (when there is one: an auditor's copy may lack it): writers
     * hold an exclusive one while committing, so we read complete commits and a head that
     * points into them. Closing lock_fd releases it. */
    int lock_fd = open(lock_path, O_RDONLY | O_CLOEXEC);
    if (lock_fd >= 0)
        while (flock(lock_fd, LOCK_SH) != 0 && errno == EINTR) {
        }
    int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (lock_fd >= 0)
            close(lock_fd);
        return kura_err_set(eb, err == ENOENT ? KURA_ERR_NOTFOUND : KURA_ERR_IO, "%s: %s",
                            log_path, strerror(err));
    }
    if (use_head) {
        e = audit_head_read(head_path, opt.pubkey, &opt.head_seq, opt.head_hash, head_log, eb);
        if (e == KURA_ERR_NOTFOUND) {
            snprintf(res->message, sizeof res->message,
                     "head file %.300s is missing: truncation of the log cannot be ruled out",
                     head_path);
            close(fd);
            if (lock_fd >= 0)
                close(lock_fd);
            return KURA_ERR_TAMPER;
        }
        if (e) {
            snprintf(res->message, sizeof res->message, "%s", eb ? eb->msg : "bad head file");
            close(fd);
            if (lock_fd >= 0)
                close(lock_fd);
            return e == KURA_ERR_FORMAT ? KURA_ERR_TAMPER : e;
        }
        opt.have_head = true;
    }
    struct line_reader lr;
    struct verifier *v = verifier_create(&opt, res);
    if (!v || !line_reader_init(&lr, fd, NULL, 0)) {
        free(v);
        close(fd);
        if (lock_fd >= 0)
            close(lock_fd);
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    }
    struct line ln;
    while (line_reader_next(&lr, &ln))
        verifier_line(v, &ln);
    bool rerr = lr.err;
    int rerrno = lr.err_no;
    line_reader_free(&lr);
    close(fd);
    if (lock_fd >= 0)
        close(lock_fd);
    e = verifier_finish(v);
    if (rerr)
        return kura_err_set(eb, KURA_ERR_IO, "%s: read: %s", log_path, strerror(rerrno));
    if (!e && use_head && strcmp(head_log, res->log_id) != 0) {
        res->verdict = KURA_AUDIT_BAD;
        snprintf(res->message, sizeof res->message, "head file names log %s, the log is %s",
                 head_log, res->log_id);
        return KURA_ERR_TAMPER;
    }
    return e;
}
