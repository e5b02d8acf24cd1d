/* The audit log writer: group commit, checkpoints, head file, torn-tail sealing. */
#include "audit/audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/timefmt.h"

enum waiter_kind { W_RECORD, W_CHECKPOINT };

/* One pending append, on the appending thread's stack; the committing thread fills seq/err and
 * sets done under log->mu. */
struct waiter {
    struct waiter *next;
    enum waiter_kind kind;
    const char *reason;   /* checkpoints */
    struct kura_buf middle;   /* records: `"actor":..,"details":{..}` */
    struct timespec ts;
    uint64_t seq;
    enum kura_err err;
    bool done;
    pthread_cond_t cv; /* signalled when done, or when this waiter should commit */
};

struct kura_audit {
    char log_path[KURA_MAX_PATH], head_path[KURA_MAX_PATH], lock_path[KURA_MAX_PATH];
    int fd, lock_fd;
    struct kura_keys *keys;        /* borrowed */
    struct kura_secret *tag_key;   /* the "audit" data key */
    uint8_t pk[KURA_KEYS_PUBLIC_LEN];
    char key_id[KURA_KEYS_ID_LEN];
    char log_hex[33];
    struct kura_audit_options opt;

    /* Chain state: owned by whoever holds the commit token (`committing`). */
    uint64_t last_seq;
    uint8_t last_hash[KURA_AUDIT_HASH_LEN];
    uint64_t end; /* file size after our last commit */
    uint64_t since_ckpt;
    struct timespec last_ckpt;
    struct timespec last_head; /* when head.json was last written */
    struct kura_buf wbuf;

    /* Queue and commit token, under mu. */
    pthread_mutex_t mu;
    struct waiter *q_head, **q_tail;
    bool committing;
    enum kura_err failed; /* sticky: after an I/O failure nothing more is acknowledged */
    uint64_t pub_since_ckpt;
    struct timespec pub_last_ckpt;

    /* Timer thread */
    pthread_t timer;
    bool timer_running, stopping;
    pthread_cond_t timer_cv;
};

static double mono_ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

static bool reserved_action(const char *a)
{
    return strcmp(a, ACT_GENESIS) == 0 || strcmp(a, ACT_CHECKPOINT) == 0 ||
           strcmp(a, ACT_SEAL) == 0;
}

/* `"actor":..,"action":..,"object":..,"outcome":..,"details":{..}` */
static enum kura_err build_middle(struct kura_buf *b, const char *actor, const char *action,
                                  const char *object, const char *outcome, const char *details,
                                  struct kura_errbuf *eb)
{
    const char *names[4] = {"actor", "action", "object", "outcome"};
    const char *vals[4] = {actor ? actor : "", action ? action : "", object ? object : "",
                           outcome ? outcome : ""};
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(vals[i]);
        if (n > KURA_AUDIT_MAX_FIELD)
            return kura_err_set(eb, KURA_ERR_RANGE, "audit: %s longer than %d bytes", names[i],
                                KURA_AUDIT_MAX_FIELD);
        kura_buf_printf(b, "%s\"%s\":", i ? "," : "", names[i]);
        if (!audit_json_str(b, vals[i], n))
            return kura_err_set(eb, KURA_ERR_INVALID, "audit: %s is not valid UTF-8", names[i]);
    }
    kura_buf_puts(b, ",\"details\":");
    if (!details || !*details) {
        kura_buf_puts(b, "{}");
    } else {
        size_t dl = strlen(details);
        if (dl > KURA_AUDIT_MAX_DETAILS)
            return kura_err_set(eb, KURA_ERR_RANGE, "audit: details longer than %u bytes",
                                KURA_AUDIT_MAX_DETAILS);
        json_error_t jerr;
        json_t *d = json_loadb(details, dl, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(d)) {
            json_decref(d);
            return kura_err_set(eb, KURA_ERR_INVALID, "audit: details is not a JSON object");
        }
        /* Valid JSON without CR/LF (raw ones can only be whitespace between tokens) is kept
         * as given; anything else is re-serialised compactly so a record stays one line. */
        char *s;
        if (!memchr(details, '\n', dl) && !memchr(details, '\r', dl))
            s = strdup(details);
        else
            s = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(d);
        if (!s)
            return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        size_t sl = strlen(s);
        /* json_dumps output is our own canonical form; check its nesting too */
        bool too_deep = false;
        {
            int depth = 0, maxd = 0;
            bool in_str = false;
            for (size_t i = 0; i < sl; i++) {
                char c = s[i];
                if (in_str) {
                    if (c == '\\')
                        i++;
                    else if (c == '"')
                        in_str = false;
                } else if (c == '"') {
                    in_str = true;
                } else if (c == '{' || c == '[') {
                    if (++depth > maxd)
                        maxd = depth;
                } else if (c == '}' || c == ']') {
                    depth--;
                }
            }
            too_deep = maxd >= KURA_AUDIT_MAX_JSON_DEPTH;
        }
        if (too_deep || sl > KURA_AUDIT_MAX_DETAILS) {
            free(s);
            return kura_err_set(eb, KURA_ERR_RANGE, "audit: details too deep or too long");
        }
        kura_buf_put(b, s, sl);
        free(s);
    }
    if (b->err)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    if (b->len > KURA_AUDIT_MAX_LINE - 512)
        return kura_err_set(eb, KURA_ERR_RANGE, "audit: record longer than %u bytes",
                            KURA_AUDIT_MAX_LINE);
    return KURA_OK;
}

/* Appends one complete line (with '\n') to b and advances the chain. */
static void format_line(struct kura_audit *log, struct kura_buf *b, const struct timespec *ts,
                        const char *middle, size_t middle_len, bool sign)
{
    char t[KURA_TIME_LEN], hex[129];
    size_t start = b->len;
    kura_time_format(ts, t);
    uint64_t seq = log->last_seq + 1;
    kura_buf_printf(b, "{\"seq\":%llu,\"time\":\"%s\",", (unsigned long long)seq, t);
    kura_buf_put(b, middle, middle_len);
    sodium_bin2hex(hex, sizeof hex, log->last_hash, KURA_AUDIT_HASH_LEN);
    kura_buf_printf(b, ",\"prev\":\"%s\"", hex);
    if (b->err)
        return;
    if (sign) {
        struct kura_buf m = {0};
        uint8_t sig[KURA_KEYS_SIG_LEN];
        kura_buf_puts(&m, DOM_CKPT);
        kura_buf_put(&m, b->p + start, b->len - start);
        if (m.err) {
            kura_buf_free(&m);
            b->err = KURA_ERR_NOMEM;
            return;
        }
        kura_keys_sign(log->keys, m.p, m.len, sig);
        kura_buf_free(&m);
        sodium_bin2hex(hex, sizeof hex, sig, sizeof sig);
        kura_buf_printf(b, ",\"sig\":\"%s\"", hex);
    }
    if (b->err)
        return;
    uint8_t tag[KURA_AUDIT_HASH_LEN];
    audit_tag(log->tag_key->data, b->p + start, b->len - start, tag);
    sodium_bin2hex(hex, sizeof hex, tag, sizeof tag);
    kura_buf_printf(b, ",\"tag\":\"%s\"}", hex);
    if (b->err)
        return;
    audit_line_hash(b->p + start, b->len - start, log->last_hash);
    kura_buf_put(b, "\n", 1);
    log->last_seq = seq;
}

static void format_internal(struct kura_audit *log, struct kura_buf *b, const char *action,
                            const char *outcome, const char *details_json, bool sign)
{
    struct kura_buf m = {0};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    kura_buf_printf(&m, "\"actor\":\"node\",\"action\":\"%s\",\"object\":\"audit-log\","
                        "\"outcome\":\"%s\",\"details\":%s", action, outcome, details_json);
    if (m.err)
        b->err = KURA_ERR_NOMEM;
    else
        format_line(log, b, &ts, m.p, m.len, sign);
    kura_buf_free(&m);
}

/* Checkpoint: a signed record covering everything before it. Returns nothing; the caller
 * records that the head must be rewritten. */
static void format_checkpoint(struct kura_audit *log, struct kura_buf *b, const char *reason)
{
    char d[256];
    snprintf(d, sizeof d, "{\"log\":\"%s\",\"key_id\":\"%s\",\"reason\":\"%s\"}", log->log_hex,
             log->key_id, reason);
    format_internal(log, b, ACT_CHECKPOINT, "ok", d, true);
    log->since_ckpt = 0;
    clock_gettime(CLOCK_MONOTONIC, &log->last_ckpt);
}

static enum kura_err write_all(int fd, const char *p, size_t n, const char *path,
                               struct kura_errbuf *eb)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return kura_err_set(eb, KURA_ERR_IO, "%s: write: %s", path,
                                w < 0 ? strerror(errno) : "short write");
        p += w;
        n -= (size_t)w;
    }
    return KURA_OK;
}

static enum kura_err write_head(const char *head_path, const char *log_hex, uint64_t seq,
                                const uint8_t hash[KURA_AUDIT_HASH_LEN], struct kura_keys *keys,
                                struct kura_errbuf *eb)
{
    char hh[65], msg[256], sh[129], t[KURA_TIME_LEN], out[1024];
    uint8_t sig[KURA_KEYS_SIG_LEN];
    sodium_bin2hex(hh, sizeof hh, hash, KURA_AUDIT_HASH_LEN);
    int ml = snprintf(msg, sizeof msg, DOM_HEAD "%s\n%llu\n%s", log_hex, (unsigned long long)seq,
                      hh);
    kura_keys_sign(keys, msg, (size_t)ml, sig);
    sodium_bin2hex(sh, sizeof sh, sig, sizeof sig);
    kura_time_now(t);
    int n = snprintf(out, sizeof out,
                     "{\"format\":\"kura-audit-head-1\",\"log\":\"%s\",\"seq\":%llu,"
                     "\"hash\":\"%s\",\"time\":\"%s\",\"sig\":\"%s\"}\n",
                     log_hex, (unsigned long long)seq, hh, t, sh);
    return kura_state_write_atomic(head_path, out, (size_t)n, eb);
}

/* ---- tail scanning and sealing ---- */

struct tail {
    uint64_t last_seq;
    uint8_t last_hash[KURA_AUDIT_HASH_LEN];
    bool last_is_ckpt;
    bool need_nl;      /* the last record is complete but unterminated */
    bool unterminated; /* the last garbage line has no newline */
    uint32_t n_g;
    struct {
        uint64_t off, len;
        uint8_t hash[KURA_AUDIT_HASH_LEN];
    } g[KURA_AUDIT_MAX_GARBAGE];
};

static enum kura_err pread_all(int fd, char *buf, size_t n, uint64_t off, const char *path,
                               struct kura_errbuf *eb)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return kura_err_set(eb, KURA_ERR_IO, "%s: read: %s", path,
                                r < 0 ? strerror(errno) : "file shrank");
        got += (size_t)r;
    }
    return KURA_OK;
}

/* Finds the last record and any garbage after it, reading at most KURA_AUDIT_TAIL_WINDOW
 * bytes from the end of a file of `size` bytes. */
static enum kura_err scan_tail(int fd, uint64_t size, const char *path, struct tail *t,
                               struct kura_errbuf *eb)
{
    memset(t, 0, sizeof *t);
    size_t win = size < KURA_AUDIT_TAIL_WINDOW ? (size_t)size : KURA_AUDIT_TAIL_WINDOW;
    uint64_t start = size - win;
    char *buf = malloc(win ? win : 1);
    enum kura_err e;
    if (!buf)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    if ((e = pread_all(fd, buf, win, start, path, eb)))
        goto out;
    size_t lo = 0;
    if (start > 0) {
        char *nl = memchr(buf, '\n', win);
        if (!nl) {
            e = kura_err_set(eb, KURA_ERR_FORMAT, "%s: no record in the last %zu bytes", path,
                             win);
            goto out;
        }
        lo = (size_t)(nl - buf) + 1;
    }
    /* Walk lines backwards from the end. */
    size_t end = win;
    bool first = true;
    uint32_t n_g = 0;
    size_t g_off[KURA_AUDIT_MAX_GARBAGE], g_len[KURA_AUDIT_MAX_GARBAGE];
    bool found = false;
    while (end > lo) {
        size_t ls, le; /* line [ls, le) */
        bool term;
        if (first && buf[end - 1] != '\n') {
            le = end;
            term = false;
        } else {
            le = end - 1;
            term = true;
        }
        first = false;
        ls = le;
        while (ls > lo && buf[ls - 1] != '\n')
            ls--;
        struct arec r;
        if (arec_parse(buf + ls, le - ls, &r, NULL, 0)) {
            t->last_seq = r.seq;
            t->last_is_ckpt = r.has_sig;
            audit_line_hash(buf + ls, le - ls, t->last_hash);
            t->need_nl = !term;
            arec_free(&r);
            found = true;
            break;
        }
        if (n_g == KURA_AUDIT_MAX_GARBAGE) {
            e = kura_err_set(eb, KURA_ERR_FORMAT, "%s: more than %d damaged lines at the end; "
                                                  "run 'kura audit verify'",
                             path, KURA_AUDIT_MAX_GARBAGE);
            goto out;
        }
        if (!term)
            t->unterminated = true;
        g_off[n_g] = ls;
        g_len[n_g] = le - ls;
        n_g++;
        end = ls;
    }
    if (!found) {
        e = kura_err_set(eb, KURA_ERR_FORMAT,
                         "%s: no valid record found near the end (%zu bytes scanned); run "
                         "'kura audit verify'", path, win - lo);
        goto out;
    }
    /* Garbage was collected newest first; store oldest first with file offsets. */
    t->n_g = n_g;
    for (uint32_t i = 0; i < n_g; i++) {
        uint32_t j = n_g - 1 - i;
        t->g[i].off = start + g_off[j];
        t->g[i].len = g_len[j];
        audit_line_hash(buf + g_off[j], g_len[j], t->g[i].hash);
    }
    e = KURA_OK;
out:
    free(buf);
    return e;
}

/* Brings the chain state up to date with the file (another process may have appended, or a
 * crash left a torn tail) and appends to b what repairs the tail: a newline for an unterminated
 * complete record, or a newline and a seal record covering garbage lines. */
static enum kura_err sync_tail(struct kura_audit *log, struct kura_buf *b, bool force,
                               struct kura_audit_open_info *info, struct kura_errbuf *eb)
{
    struct stat st;
    if (fstat(log->fd, &st) != 0)
        return kura_err_set(eb, KURA_ERR_IO, "%s: %s", log->log_path, strerror(errno));
    if (!force && (uint64_t)st.st_size == log->end)
        return KURA_OK;
    struct tail *t = malloc(sizeof *t);
    if (!t)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    enum kura_err e = scan_tail(log->fd, (uint64_t)st.st_size, log->log_path, t, eb);
    if (e) {
        free(t);
        return e;
    }
    log->last_seq = t->last_seq;
    memcpy(log->last_hash, t->last_hash, KURA_AUDIT_HASH_LEN);
    log->end = (uint64_t)st.st_size;
    if (!t->last_is_ckpt && log->since_ckpt == 0)
        log->since_ckpt = 1; /* unknown how many; make sure a checkpoint follows */
    if (t->need_nl) {
        kura_buf_put(b, "\n", 1);
        if (info)
            info->completed = true;
    } else if (t->n_g) {
        struct kura_buf d = {0};
        if (t->unterminated)
            kura_buf_put(b, "\n", 1);
        kura_buf_puts(&d, "{\"torn\":[");
        uint64_t total = 0;
        for (uint32_t i = 0; i < t->n_g; i++) {
            char hh[65];
            sodium_bin2hex(hh, sizeof hh, t->g[i].hash, KURA_AUDIT_HASH_LEN);
            kura_buf_printf(&d, "%s{\"offset\":%llu,\"len\":%llu,\"hash\":\"%s\"}", i ? "," : "",
                            (unsigned long long)t->g[i].off, (unsigned long long)t->g[i].len, hh);
        }
        total = (uint64_t)st.st_size - t->g[0].off;
        kura_buf_printf(&d, "],\"reason\":\"incomplete write (crash) found at open\","
                            "\"bytes\":%llu}", (unsigned long long)total);
        format_internal(log, b, ACT_SEAL, "sealed", d.err ? "{}" : d.p, false);
        log->since_ckpt++;
        kura_buf_free(&d);
        if (info) {
            info->sealed = true;
            info->torn_offset = t->g[0].off;
            info->torn_len = total;
            info->torn_lines = t->n_g;
            info->seal_seq = log->last_seq;
        }
    }
    free(t);
    return b->err ? kura_err_set(eb, KURA_ERR_NOMEM, "out of memory") : KURA_OK;
}

/* ---- commit ---- */

static void lock_file(int fd, int op)
{
    while (flock(fd, op) != 0 && errno == EINTR) {
    }
}

/* Writes a batch: holds the cross-process lock, resyncs, formats, writes, fdatasyncs, and
 * rewrites the head after a checkpoint. Runs without log->mu, holding the commit token. */
static enum kura_err commit(struct kura_audit *log, struct waiter *batch, struct kura_errbuf *eb)
{
    struct kura_buf *b = &log->wbuf;
    kura_buf_clear(b);
    b->err = KURA_OK; /* a batch does not inherit the last one's failure */
    enum kura_err e;
    bool ckpt = false, head_now = false;
    uint64_t ckpt_seq = 0;
    uint8_t ckpt_hash[KURA_AUDIT_HASH_LEN];
    lock_file(log->lock_fd, LOCK_EX);
    if ((e = sync_tail(log, b, false, NULL, eb)))
        goto out;
    uint32_t every = log->opt.checkpoint_every ? log->opt.checkpoint_every : 1000;
    for (struct waiter *w = batch; w; w = w->next) {
        if (w->kind == W_RECORD) {
            format_line(log, b, &w->ts, w->middle.p, w->middle.len, false);
            w->seq = log->last_seq;
            if (++log->since_ckpt >= every) {
                format_checkpoint(log, b, "count");
                ckpt = true;
            }
        } else {
            if (log->since_ckpt > 0) {
                format_checkpoint(log, b, w->reason);
                ckpt = true;
            }
            w->seq = log->last_seq;
            head_now = true; /* explicit checkpoints (shutdown, interval, request) */
        }
        if (ckpt && log->since_ckpt == 0) {
            ckpt_seq = log->last_seq;
            memcpy(ckpt_hash, log->last_hash, sizeof ckpt_hash);
        }
    }
    uint32_t interval = log->opt.checkpoint_interval_ms ? log->opt.checkpoint_interval_ms : 10000;
    if (log->since_ckpt > 0 && mono_ms_since(&log->last_ckpt) >= interval) {
        format_checkpoint(log, b, "interval");
        ckpt = true;
        head_now = true;
        ckpt_seq = log->last_seq;
        memcpy(ckpt_hash, log->last_hash, sizeof ckpt_hash);
    }
    if (b->err) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((e = write_all(log->fd, b->p, b->len, log->log_path, eb)))
        goto out;
    if (fdatasync(log->fd) != 0) {
        e = kura_err_set(eb, KURA_ERR_IO, "%s: fdatasync: %s", log->log_path, strerror(errno));
        goto out;
    }
    log->end += b->len;
    /* Rewriting the head costs three fsyncs: after count checkpoints, at most once a second
     * (the head may then lag the newest checkpoint by up to a second of records). */
    if (ckpt && (head_now || mono_ms_since(&log->last_head) >= 1000.0)) {
        if ((e = write_head(log->head_path, log->log_hex, ckpt_seq, ckpt_hash, log->keys, eb)))
            goto out;
        clock_gettime(CLOCK_MONOTONIC, &log->last_head);
    }
out:
    lock_file(log->lock_fd, LOCK_UN);
    return e;
}

/* Queues w and returns once it is committed, by this thread or another: the first queued
 * thread that finds no commit in progress takes the whole queue as one batch (one write, one
 * fdatasync), and on finishing wakes the waiters it committed and hands over to the next. */
static enum kura_err submit(struct kura_audit *log, struct waiter *w, struct kura_errbuf *eb)
{
    pthread_cond_init(&w->cv, NULL);
    pthread_mutex_lock(&log->mu);
    if (log->failed) {
        pthread_mutex_unlock(&log->mu);
        pthread_cond_destroy(&w->cv);
        return kura_err_set(eb, log->failed, "audit log is unusable after an earlier write "
                                             "failure; reopen it");
    }
    w->next = NULL;
    *log->q_tail = w;
    log->q_tail = &w->next;
    while (!w->done) {
        if (log->committing) {
            pthread_cond_wait(&w->cv, &log->mu);
            continue;
        }
        if (log->failed) {
            /* a commit failed while we were queued */
            for (struct waiter *x = log->q_head; x;) {
                struct waiter *next = x->next;
                x->err = log->failed;
                x->done = true;
                pthread_cond_signal(&x->cv);
                x = next;
            }
            log->q_head = NULL;
            log->q_tail = &log->q_head;
            break;
        }
        struct waiter *batch = log->q_head;
        log->q_head = NULL;
        log->q_tail = &log->q_head;
        log->committing = true;
        pthread_mutex_unlock(&log->mu);
        struct kura_errbuf local = {0};
        enum kura_err e = commit(log, batch, &local);
        pthread_mutex_lock(&log->mu);
        if (e)
            log->failed = e;
        log->pub_since_ckpt = log->since_ckpt;
        log->pub_last_ckpt = log->last_ckpt;
        for (struct waiter *x = batch; x;) {
            struct waiter *next = x->next; /* x may be gone once its owner sees done */
            x->err = e;
            x->done = true;
            if (x != w)
                pthread_cond_signal(&x->cv);
            x = next;
        }
        if (e && eb)
            *eb = local;
        log->committing = false;
        if (log->q_head) /* hand over: the oldest queued waiter commits next */
            pthread_cond_signal(&log->q_head->cv);
    }
    enum kura_err e = w->err;
    pthread_mutex_unlock(&log->mu);
    pthread_cond_destroy(&w->cv);
    if (e && eb && !eb->msg[0])
        kura_err_set(eb, e, "audit log commit failed");
    return e;
}

enum kura_err kura_audit_append(struct kura_audit *log, const char *actor, const char *action,
                                const char *object, const char *outcome,
                                const char *details_json, uint64_t *out_seq,
                                struct kura_errbuf *eb)
{
    struct waiter w = {0};
    enum kura_err e;
    if (out_seq)
        *out_seq = 0;
    if (!log)
        return kura_err_set(eb, KURA_ERR_INVALID, "audit: no log");
    if (action && reserved_action(action))
        return kura_err_set(eb, KURA_ERR_INVALID, "audit: action '%s' is reserved", action);
    clock_gettime(CLOCK_REALTIME, &w.ts);
    w.kind = W_RECORD;
    if ((e = build_middle(&w.middle, actor, action, object, outcome, details_json, eb)))
        goto out;
    if (eb)
        eb->msg[0] = 0;
    e = submit(log, &w, eb);
    if (!e && out_seq)
        *out_seq = w.seq;
out:
    kura_buf_free(&w.middle);
    return e;
}

static enum kura_err checkpoint_reason(struct kura_audit *log, const char *reason,
                                       struct kura_errbuf *eb)
{
    struct waiter w = {0};
    w.kind = W_CHECKPOINT;
    w.reason = reason;
    if (eb)
        eb->msg[0] = 0;
    return submit(log, &w, eb);
}

enum kura_err kura_audit_checkpoint(struct kura_audit *log, struct kura_errbuf *eb)
{
    return checkpoint_reason(log, "request", eb);
}

static void *timer_main(void *arg)
{
    struct kura_audit *log = arg;
    uint32_t interval = log->opt.checkpoint_interval_ms ? log->opt.checkpoint_interval_ms : 10000;
    uint32_t step = interval / 2 ? interval / 2 : 1;
    pthread_mutex_lock(&log->mu);
    while (!log->stopping) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += step / 1000;
        dl.tv_nsec += (long)(step % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&log->timer_cv, &log->mu, &dl);
        if (log->stopping)
            break;
        bool need = !log->failed && log->pub_since_ckpt > 0 &&
                    mono_ms_since(&log->pub_last_ckpt) >= interval;
        if (need) {
            pthread_mutex_unlock(&log->mu);
            checkpoint_reason(log, "interval", NULL);
            pthread_mutex_lock(&log->mu);
        }
    }
    pthread_mutex_unlock(&log->mu);
    return NULL;
}

/* ---- open / close ---- */

/* Creates audit.log with genesis + checkpoint through a temporary file, so that a log file
 * that exists always has a head. */
static enum kura_err create_log(struct kura_audit *log, struct kura_errbuf *eb)
{
    char tmp[KURA_MAX_PATH];
    uint8_t id[LOG_ID_LEN];
    enum kura_err e;
    struct kura_buf b = {0}, d = {0};
    char pub[KURA_KEYS_PUBLIC_TEXT_LEN];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", log->log_path) >= (int)sizeof tmp)
        return kura_err_set(eb, KURA_ERR_RANGE, "path too long");
    randombytes_buf(id, sizeof id);
    sodium_bin2hex(log->log_hex, sizeof log->log_hex, id, sizeof id);
    kura_keys_format_public(log->pk, pub);
    memset(log->last_hash, 0, sizeof log->last_hash);
    log->last_seq = 0;
    kura_buf_printf(&d, "{\"format\":\"%s\",\"log\":\"%s\",\"key_id\":\"%s\",\"public\":\"%s\"}",
                    AUDIT_FORMAT, log->log_hex, log->key_id, pub);
    format_internal(log, &b, ACT_GENESIS, "ok", d.err ? "{}" : d.p, false);
    format_checkpoint(log, &b, "genesis");
    kura_buf_free(&d);
    if (b.err) {
        kura_buf_free(&b);
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    }
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        kura_buf_free(&b);
        return kura_err_set(eb, KURA_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    e = write_all(fd, b.p, b.len, tmp, eb);
    if (!e && fsync(fd) != 0)
        e = kura_err_set(eb, KURA_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
    close(fd);
    if (!e)
        e = write_head(log->head_path, log->log_hex, log->last_seq, log->last_hash, log->keys, eb);
    if (!e && rename(tmp, log->log_path) != 0)
        e = kura_err_set(eb, KURA_ERR_IO, "rename %s: %s", tmp, strerror(errno));
    if (!e)
        e = kura_state_sync_parent(log->log_path, eb);
    if (e)
        unlink(tmp);
    kura_buf_free(&b);
    return e;
}

/* Reads the genesis record: log id, and the signing key it names must be ours. */
static enum kura_err read_genesis(struct kura_audit *log, struct kura_errbuf *eb)
{
    char *buf = malloc(KURA_AUDIT_MAX_LINE + 1);
    if (!buf)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    ssize_t n;
    do
        n = pread(log->fd, buf, KURA_AUDIT_MAX_LINE + 1, 0);
    while (n < 0 && errno == EINTR);
    enum kura_err e = KURA_OK;
    char *nl = n > 0 ? memchr(buf, '\n', (size_t)n) : NULL;
    struct arec r;
    if (!nl || !arec_parse(buf, (size_t)(nl - buf), &r, NULL, 0)) {
        free(buf);
        return kura_err_set(eb, KURA_ERR_FORMAT, "%s: the first record is missing or damaged; "
                                                 "run 'kura audit verify'", log->log_path);
    }
    const char *lid = json_string_value(json_object_get(r.details, "log"));
    const char *kid = json_string_value(json_object_get(r.details, "key_id"));
    if (r.seq != 1 || strcmp(r.action, ACT_GENESIS) != 0 || !lid || strlen(lid) != 32 ||
        !audit_hex_ok(lid, 32) || !kid) {
        e = kura_err_set(eb, KURA_ERR_FORMAT, "%s: the first record is not a genesis record",
                         log->log_path);
    } else if (strcmp(kid, log->key_id) != 0) {
        e = kura_err_set(eb, KURA_ERR_CRYPTO,
                         "%s: the log was started with signing key %s, but the key file holds "
                         "%s", log->log_path, kid, log->key_id);
    } else {
        memcpy(log->log_hex, lid, 33);
    }
    arec_free(&r);
    free(buf);
    return e;
}

enum kura_err kura_audit_open(const char *state_dir, struct kura_keys *keys,
                              const struct kura_audit_options *opt, struct kura_audit **out,
                              struct kura_audit_open_info *info, struct kura_errbuf *eb)
{
    *out = NULL;
    struct kura_audit_open_info local_info;
    if (!info)
        info = &local_info;
    memset(info, 0, sizeof *info);
    char dir[KURA_MAX_PATH];
    enum kura_err e;
    if (!keys)
        return kura_err_set(eb, KURA_ERR_INVALID, "audit: no keys");
    if (sodium_init() < 0)
        return kura_err_set(eb, KURA_ERR_INTERNAL, "libsodium failed to initialise");
    struct kura_audit *log = calloc(1, sizeof *log);
    if (!log)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    log->fd = log->lock_fd = -1;
    log->keys = keys;
    log->q_tail = &log->q_head;
    if (opt)
        log->opt = *opt;
    pthread_mutex_init(&log->mu, NULL);
    pthread_cond_init(&log->timer_cv, NULL);
    clock_gettime(CLOCK_MONOTONIC, &log->last_ckpt);
    log->pub_last_ckpt = log->last_ckpt;
    kura_keys_public(keys, log->pk);
    kura_keys_key_id(log->pk, log->key_id);
    bool locked = false, head_missing = false;
    if ((e = kura_state_path(state_dir, "audit", dir, sizeof dir, eb)) ||
        (e = kura_state_path(state_dir, "audit/audit.log", log->log_path, KURA_MAX_PATH, eb)) ||
        (e = kura_state_path(state_dir, "audit/head.json", log->head_path, KURA_MAX_PATH, eb)) ||
        (e = kura_state_path(state_dir, "audit/audit.lock", log->lock_path, KURA_MAX_PATH, eb)) ||
        (e = kura_state_mkdir(dir, true, eb)))
        goto fail;
    if ((e = kura_keys_data_key(keys, "audit", true, &log->tag_key, eb)))
        goto fail;
    log->lock_fd = open(log->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (log->lock_fd < 0) {
        e = kura_err_set(eb, KURA_ERR_IO, "%s: %s", log->lock_path, strerror(errno));
        goto fail;
    }
    lock_file(log->lock_fd, LOCK_EX);
    locked = true;
    bool log_exists = access(log->log_path, F_OK) == 0;
    bool head_exists = access(log->head_path, F_OK) == 0;
    if (!log_exists) {
        if (head_exists) {
            e = kura_err_set(eb, KURA_ERR_TAMPER,
                             "%s is missing but %s exists: the audit log was deleted; refusing "
                             "to start a new one over it", log->log_path, log->head_path);
            goto fail;
        }
        if ((e = create_log(log, eb)))
            goto fail;
        info->created = true;
    } else if (!head_exists) {
        if (!log->opt.accept_missing_head) {
            e = kura_err_set(eb, KURA_ERR_TAMPER,
                             "%s is missing: records may have been removed from the end of the "
                             "log; run 'kura audit verify' and, to continue with this log as it "
                             "is, open it accepting the missing head", log->head_path);
            goto fail;
        }
        head_missing = true;
    }
    log->fd = open(log->log_path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (log->fd < 0) {
        e = kura_err_set(eb, KURA_ERR_IO, "%s: %s", log->log_path, strerror(errno));
        goto fail;
    }
    if ((e = kura_state_check_private_fd(log->fd, log->log_path, eb)) ||
        (e = read_genesis(log, eb)))
        goto fail;
    log->since_ckpt = 0;
    kura_buf_clear(&log->wbuf);
    if ((e = sync_tail(log, &log->wbuf, true, info, eb)))
        goto fail;
    if (log->wbuf.len) {
        if ((e = write_all(log->fd, log->wbuf.p, log->wbuf.len, log->log_path, eb)))
            goto fail;
        if (fdatasync(log->fd) != 0) {
            e = kura_err_set(eb, KURA_ERR_IO, "%s: fdatasync: %s", log->log_path,
                             strerror(errno));
            goto fail;
        }
        log->end += log->wbuf.len;
    }
    lock_file(log->lock_fd, LOCK_UN);
    locked = false;
    log->pub_since_ckpt = log->since_ckpt;
    info->last_seq = log->last_seq;
    if (head_missing) {
        uint64_t seq;
        if ((e = kura_audit_append(log, "node", "audit.head_missing", "audit-log", "accepted",
                                   "{\"note\":\"head.json was missing at open; the log was "
                                   "accepted as it is\"}", &seq, eb)) ||
            (e = checkpoint_reason(log, "head-reset", eb)))
            goto fail;
    }
    if (!log->opt.no_timer) {
        if (pthread_create(&log->timer, NULL, timer_main, log) != 0) {
            e = kura_err_set(eb, KURA_ERR_INTERNAL, "cannot start the checkpoint timer");
            goto fail;
        }
        log->timer_running = true;
    }
    info->last_seq = log->last_seq;
    *out = log;
    return KURA_OK;
fail:
    if (locked)
        lock_file(log->lock_fd, LOCK_UN);
    log->failed = e; /* no shutdown checkpoint on a half-open log */
    kura_audit_close(log, NULL);
    return e;
}

enum kura_err kura_audit_close(struct kura_audit *log, struct kura_errbuf *eb)
{
    if (!log)
        return KURA_OK;
    enum kura_err e = KURA_OK;
    if (log->timer_running) {
        pthread_mutex_lock(&log->mu);
        log->stopping = true;
        pthread_cond_broadcast(&log->timer_cv);
        pthread_mutex_unlock(&log->mu);
        pthread_join(log->timer, NULL);
    }
    if (!log->failed && log->fd >= 0)
        e = checkpoint_reason(log, "shutdown", eb);
    if (log->fd >= 0)
        close(log->fd);
    if (log->lock_fd >= 0)
        close(log->lock_fd);
    kura_secret_destroy(log->tag_key);
    kura_buf_free(&log->wbuf);
    pthread_mutex_destroy(&log->mu);
    pthread_cond_destroy(&log->timer_cv);
    free(log);
    return e;
}

enum kura_err kura_audit_file_digest(const char *path, char out_hex[KURA_AUDIT_HEX_LEN],
                                     struct kura_errbuf *eb)
{
    out_hex[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kura_err_set(eb, errno == ENOENT ? KURA_ERR_NOTFOUND : KURA_ERR_IO, "%s: %s", path,
                            strerror(errno));
    if (sodium_init() < 0) {
        close(fd);
        return kura_err_set(eb, KURA_ERR_INTERNAL, "libsodium failed to initialise");
    }
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        close(fd);
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    }
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            free(buf);
            close(fd);
            return kura_err_set(eb, KURA_ERR_IO, "%s: read: %s", path, strerror(err));
        }
        if (n == 0)
            break;
        crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
    }
    free(buf);
    close(fd);
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(out_hex, KURA_AUDIT_HEX_LEN, h, sizeof h);
    return KURA_OK;
}
