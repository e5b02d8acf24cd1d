/* Audit log: append/reopen, group commit from many threads, torn tails and seals, head file,
 * export bundles, show filters, and mutation tests over every record position: byte flips,
 * deletions, insertions, reorderings and truncations must all be detected by verify, which
 * must name the first bad record. */
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit_int.h"
#include "core/limits.h"
#include "kura/audit.h"
#include "kura/keys.h"
#include "kura/state.h"
#include "test.h"

static char g_dir[256];

static struct kura_secret *pass(const char *s)
{
    struct kura_secret *p;
    kura_secret_from(s, strlen(s), &p);
    return p;
}

static void rm_rf(const char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", d);
}

static struct kura_keys *setup_keys(const char *dir)
{
    struct kura_errbuf eb = {0};
    struct kura_secret *p = pass("correct horse");
    CHECKF(kura_keys_init(dir, p, NULL, &eb) == KURA_OK, "%s", eb.msg);
    struct kura_keys *k = NULL;
    CHECKF(kura_keys_open(dir, p, &k, &eb) == KURA_OK, "%s", eb.msg);
    kura_secret_destroy(p);
    return k;
}

static char *slurp(const char *path, size_t *len)
{
    char *buf;
    if (kura_state_read_file(path, 1u << 28, &buf, len, NULL) != KURA_OK)
        return NULL;
    return buf;
}

static void path_of(char *out, const char *dir, const char *rel)
{
    snprintf(out, 512, "%s/%s", dir, rel);
}

/* Splits a buffer into line start offsets; returns the count (lines end with '\n'). */
static size_t split_lines(const char *b, size_t len, size_t *starts, size_t max)
{
    size_t n = 0, s = 0;
    for (size_t i = 0; i < len; i++) {
        if (b[i] == '\n') {
            if (n < max)
                starts[n] = s;
            n++;
            s = i + 1;
        }
    }
    return n;
}

struct ctx {
    const char *buf;
    size_t len;
    size_t *starts;
    size_t n_lines;
    struct kura_audit_verify_opts opt;
};

static size_t line_len_nl(const struct ctx *c, size_t i) /* i 0-based, including '\n' */
{
    size_t end = i + 1 < c->n_lines ? c->starts[i + 1] : c->len;
    return end - c->starts[i];
}

/* Verifies b and checks that it fails and names line `want` (1-based). */
static int expect_bad(const struct ctx *c, const char *b, size_t len, uint64_t want,
                      const char *what, size_t at)
{
    struct kura_audit_verify_result r;
    enum kura_err e = kura_audit_verify_buffer(b, len, &c->opt, &r);
    int ok = e != KURA_OK && r.verdict != KURA_AUDIT_INTACT && r.bad_line == want;
    if (!ok)
        fprintf(stderr, "%s at %zu: err %d verdict %d bad_line %llu (want %llu): %s\n", what, at,
                e, r.verdict, (unsigned long long)r.bad_line, (unsigned long long)want,
                r.message);
    return ok;
}

static void mutation_tests(struct ctx *c, bool exhaustive)
{
    char *m = malloc(c->len + KURA_AUDIT_MAX_LINE + 16);
    static const uint8_t masks[] = {0x01, 0x20, 0x80, 0xff, 0x04, 0x10, 0x02, 0x40};
    int fails = 0;
    /* Byte flips: every record position (several offsets each), or every byte. */
    size_t n_flips = 0;
    for (size_t i = 0; i < c->n_lines; i++) {
        size_t ll = line_len_nl(c, i);
        size_t offs[2];
        size_t no = 0;
        if (exhaustive) {
            no = 0;
        } else {
            offs[no++] = (i * 7919u) % ll;          /* varied, anywhere in the record */
            offs[no++] = i % 3 ? i % 24 : ll - 1;   /* "seq"/"time", or the newline */
        }
        size_t count = exhaustive ? ll : no;
        for (size_t k = 0; k < count; k++) {
            size_t off = c->starts[i] + (exhaustive ? k : offs[k]);
            memcpy(m, c->buf, c->len);
            m[off] = (char)(m[off] ^ masks[(off + k) % sizeof masks]);
            n_flips++;
            if (!expect_bad(c, m, c->len, i + 1, "flip", off))
                fails++;
        }
    }
    CHECKF(fails == 0, "%d of %zu byte flips not detected or misnamed", fails, n_flips);
    fails = 0;
    /* Deletion of each record. */
    for (size_t i = 0; i < c->n_lines; i++) {
        size_t ll = line_len_nl(c, i), s = c->starts[i];
        memcpy(m, c->buf, s);
        memcpy(m + s, c->buf + s + ll, c->len - s - ll);
        if (!expect_bad(c, m, c->len - ll, i + 1, "delete", i))
            fails++;
    }
    CHECKF(fails == 0, "%d deletions not detected", fails);
    fails = 0;
    /* Insertion before each position (and at the end): a copy of another record, and a line of
     * garbage. */
    for (size_t i = 0; i <= c->n_lines; i++) {
        size_t s = i < c->n_lines ? c->starts[i] : c->len;
        size_t j = (i * 31 + 5) % c->n_lines;
        if (j == i || j + 1 == i)
            j = (j + 3) % c->n_lines;
        size_t jl = line_len_nl(c, j);
        memcpy(m, c->buf, s);
        memcpy(m + s, c->buf + c->starts[j], jl);
        memcpy(m + s + jl, c->buf + s, c->len - s);
        if (!expect_bad(c, m, c->len + jl, i + 1, "insert copy", i))
            fails++;
        static const char junk[] = "{\"seq\":1}\n";
        memcpy(m, c->buf, s);
        memcpy(m + s, junk, sizeof junk - 1);
        memcpy(m + s + sizeof junk - 1, c->buf + s, c->len - s);
        if (!expect_bad(c, m, c->len + sizeof junk - 1, i + 1, "insert junk", i))
            fails++;
    }
    CHECKF(fails == 0, "%d insertions not detected", fails);
    fails = 0;
    /* Reordering: swap each pair of neighbours. */
    for (size_t i = 0; i + 1 < c->n_lines; i++) {
        size_t a = c->starts[i], al = line_len_nl(c, i), bl = line_len_nl(c, i + 1);
        memcpy(m, c->buf, c->len);
        memcpy(m + a, c->buf + a + al, bl);
        memcpy(m + a + bl, c->buf + a, al);
        if (!expect_bad(c, m, c->len, i + 1, "swap", i))
            fails++;
    }
    CHECKF(fails == 0, "%d reorderings not detected", fails);
    fails = 0;
    /* Truncation at every record boundary and inside every record. */
    for (size_t i = 0; i < c->n_lines; i++) {
        size_t ll = line_len_nl(c, i);
        if (!expect_bad(c, c->buf, c->starts[i], i + 1, "truncate", i))
            fails++;
        if (!expect_bad(c, c->buf, c->starts[i] + 1 + (i * 37) % (ll - 1), i + 1,
                        "truncate mid", i))
            fails++;
    }
    CHECKF(fails == 0, "%d truncations not detected", fails);
    free(m);
}

/* Builds a log of n_records user records with checkpoints every `every`, closes it and loads
 * it with its head. */
static void build_log(const char *dir, struct kura_keys *k, int n_records, uint32_t every)
{
    struct kura_errbuf eb = {0};
    struct kura_audit_options o = {.checkpoint_every = every, .no_timer = true};
    struct kura_audit *log = NULL;
    struct kura_audit_open_info info;
    CHECKF(kura_audit_open(dir, k, &o, &log, &info, &eb) == KURA_OK, "%s", eb.msg);
    CHECK(info.created);
    for (int i = 0; i < n_records && log; i++) {
        char obj[64], det[256];
        snprintf(obj, sizeof obj, "model-%d.gguf", i);
        snprintf(det, sizeof det,
                 "{\"route\":\"/v1/chat/completions\",\"tokens\":{\"in\":%d,\"out\":%d},"
                 "\"note\":\"caf\\u00e9 \\\"quoted\\\" %d\"}", i * 3, i * 7 % 100, i);
        uint64_t seq = 0;
        CHECKF(kura_audit_append(log, i % 3 ? "apikey:ab12" : "local:ops", "model.load", obj,
                                 i % 5 ? "ok" : "denied", det, &seq, &eb) == KURA_OK,
               "%s", eb.msg);
    }
    CHECKF(kura_audit_close(log, &eb) == KURA_OK, "%s", eb.msg);
}

static void load_ctx(const char *dir, const uint8_t *pk, struct ctx *c, char **buf,
                     size_t *starts, size_t max)
{
    char p[512], hp[512], logh[33];
    path_of(p, dir, "audit/audit.log");
    path_of(hp, dir, "audit/head.json");
    size_t len = 0;
    *buf = slurp(p, &len);
    memset(c, 0, sizeof *c);
    c->buf = *buf;
    c->len = len;
    c->starts = starts;
    c->n_lines = split_lines(*buf, len, starts, max);
    c->opt.pubkey = pk;
    c->opt.have_head = true;
    CHECK(audit_head_read(hp, pk, &c->opt.head_seq, c->opt.head_hash, logh, NULL) == KURA_OK);
}

static void test_mutations(void)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/mut", g_dir);
    struct kura_keys *k = setup_keys(dir);
    uint8_t pk[32];
    kura_keys_public(k, pk);
    build_log(dir, k, 240, 64);
    static size_t starts[4096];
    struct ctx c;
    char *buf;
    load_ctx(dir, pk, &c, &buf, starts, 4096);
    /* genesis + its checkpoint + 240 records + 3 count checkpoints + the shutdown one */
    CHECKF(c.n_lines == 2 + 240 + 3 + 1, "lines %zu", c.n_lines);
    struct kura_audit_verify_result r;
    CHECKF(kura_audit_verify_buffer(c.buf, c.len, &c.opt, &r) == KURA_OK, "%s", r.message);
    CHECK(r.n_records == c.n_lines && r.unsigned_tail == 0 && r.n_checkpoints == 5);
    mutation_tests(&c, false);
    /* Wrong key: the first checkpoint fails. */
    uint8_t other[32];
    memcpy(other, pk, 32);
    other[0] ^= 1;
    struct kura_audit_verify_opts o2 = c.opt;
    o2.pubkey = other;
    CHECK(kura_audit_verify_buffer(c.buf, c.len, &o2, &r) == KURA_ERR_TAMPER && r.bad_line == 2);
    free(buf);

    /* Exhaustive flips over a small log. */
    char dir2[300];
    snprintf(dir2, sizeof dir2, "%s/mut-small", g_dir);
    struct kura_keys *k2 = setup_keys(dir2);
    kura_keys_public(k2, pk);
    build_log(dir2, k2, 9, 4);
    load_ctx(dir2, pk, &c, &buf, starts, 4096);
    CHECKF(c.n_lines == 2 + 9 + 2 + 1, "lines %zu", c.n_lines);
    mutation_tests(&c, true);
    free(buf);
    kura_keys_destroy(k);
    kura_keys_destroy(k2);
}

/* With the audit key, an altered record after the last checkpoint (not covered by any
 * signature or the head) is caught by its tag. */
static void test_tags(void)
{
    char dir[300], p[512];
    struct kura_errbuf eb = {0};
    snprintf(dir, sizeof dir, "%s/tags", g_dir);
    struct kura_keys *k = setup_keys(dir);
    uint8_t pk[32];
    kura_keys_public(k, pk);
    struct kura_audit_options o = {.checkpoint_every = 1000, .no_timer = true};
    struct kura_audit *log = NULL;
    CHECK(kura_audit_open(dir, k, &o, &log, NULL, &eb) == KURA_OK);
    for (int i = 0; i < 5; i++)
        CHECK(kura_audit_append(log, "local:t", "test.event", "x", "ok", NULL, NULL, &eb) == 0);
    /* Simulate a crash: no close, so records 3..7 are unsigned. Read the file now. */
    path_of(p, dir, "audit/audit.log");
    size_t len;
    char *b = slurp(p, &len);
    char *last = memrchr(b, '\n', len - 1);
    char *obj = strstr(last, "\"object\":\"x\"");
    CHECK(obj != NULL);
    obj[10] = 'y'; /* the last record now names object "y" */
    struct kura_audit_verify_opts vo = {.pubkey = pk};
    struct kura_audit_verify_result r;
    /* Without the key, an unsigned last record cannot be checked (documented limitation). */
    CHECK(kura_audit_verify_buffer(b, len, &vo, &r) == KURA_OK && r.unsigned_tail == 5);
    struct kura_secret *tk = NULL;
    CHECK(kura_keys_data_key(k, "audit", false, &tk, &eb) == KURA_OK);
    vo.tag_key = tk;
    CHECK(kura_audit_verify_buffer(b, len, &vo, &r) == KURA_ERR_TAMPER && r.bad_line == 7);
    obj[10] = 'x';
    CHECKF(kura_audit_verify_buffer(b, len, &vo, &r) == KURA_OK, "%s", r.message);
    /* A forged record appended by someone without the key: chain ok, tag wrong. */
    kura_secret_destroy(tk);
    free(b);
    CHECK(kura_audit_close(log, &eb) == KURA_OK);
    kura_keys_destroy(k);
}

struct thr {
    struct kura_audit *log;
    int id, n;
    uint64_t *seqs;
    int errors;
};

static void *append_thread(void *arg)
{
    struct thr *t = arg;
    for (int i = 0; i < t->n; i++) {
        char obj[64];
        snprintf(obj, sizeof obj, "t%d-%d", t->id, i);
        if (kura_audit_append(t->log, "local:thr", "test.concurrent", obj, "ok", "{\"k\":1}",
                              &t->seqs[i], NULL) != KURA_OK)
            t->errors++;
    }
    return NULL;
}

static int count_cb(void *ud, const struct kura_audit_record *rec)
{
    (void)rec;
    (*(int *)ud)++;
    return 0;
}

static void test_concurrent_and_reopen(void)
{
    char dir[300];
    struct kura_errbuf eb = {0};
    snprintf(dir, sizeof dir, "%s/conc", g_dir);
    struct kura_keys *k = setup_keys(dir);
    uint8_t pk[32];
    kura_keys_public(k, pk);
    struct kura_audit_options o = {.checkpoint_every = 100, .checkpoint_interval_ms = 50};
    struct kura_audit *log = NULL;
    CHECK(kura_audit_open(dir, k, &o, &log, NULL, &eb) == KURA_OK);
    enum { NT = 8, PER = 60 };
    static uint64_t seqs[NT][PER];
    struct thr th[NT];
    pthread_t tid[NT];
    for (int i = 0; i < NT; i++) {
        th[i] = (struct thr){log, i, PER, seqs[i], 0};
        pthread_create(&tid[i], NULL, append_thread, &th[i]);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(tid[i], NULL);
        CHECK(th[i].errors == 0);
    }
    /* every acknowledged seq is distinct */
    static uint8_t seen[100000];
    int dup = 0;
    for (int i = 0; i < NT; i++)
        for (int j = 0; j < PER; j++) {
            if (seqs[i][j] == 0 || seqs[i][j] >= sizeof seen || seen[seqs[i][j]]++)
                dup++;
        }
    CHECK(dup == 0);
    CHECK(kura_audit_close(log, &eb) == KURA_OK);
    /* Reopen, append more, close: the chain continues. */
    struct kura_audit_open_info info;
    CHECK(kura_audit_open(dir, k, &o, &log, &info, &eb) == KURA_OK);
    CHECK(!info.created && !info.sealed);
    uint64_t seq;
    CHECK(kura_audit_append(log, "local:x", "test.after", "o", "ok", NULL, &seq, &eb) == KURA_OK);
    CHECK(seq == info.last_seq + 1);
    CHECK(kura_audit_close(log, &eb) == KURA_OK);
    struct kura_audit_verify_opts vo = {.pubkey = pk};
    struct kura_audit_verify_result r;
    CHECKF(kura_audit_verify_file(dir, &vo, true, &r, &eb) == KURA_OK, "%s", r.message);
    CHECK(r.unsigned_tail == 0);
    struct kura_secret *tk = NULL;
    CHECK(kura_keys_data_key(k, "audit", false, &tk, &eb) == KURA_OK);
    vo.tag_key = tk;
    CHECKF(kura_audit_verify_file(dir, &vo, true, &r, &eb) == KURA_OK, "%s", r.message);
    kura_secret_destroy(tk);
    /* show with filters */
    int n = 0;
    struct kura_audit_filter f = {.action = "test.concurrent"};
    CHECK(kura_audit_show(dir, &f, count_cb, &n, NULL, &eb) == KURA_OK);
    CHECK(n == NT * PER);
    n = 0;
    f = (struct kura_audit_filter){.action = "test.*", .actor = "local:x"};
    CHECK(kura_audit_show(dir, &f, count_cb, &n, NULL, &eb) == KURA_OK && n == 1);
    n = 0;
    f = (struct kura_audit_filter){.since = "2999-01-01"};
    CHECK(kura_audit_show(dir, &f, count_cb, &n, NULL, &eb) == KURA_OK && n == 0);
    n = 0;
    f = (struct kura_audit_filter){.from_seq = 3, .to_seq = 7};
    CHECK(kura_audit_show(dir, &f, count_cb, &n, NULL, &eb) == KURA_OK && n == 5);
    kura_keys_destroy(k);
}

static void append_raw(const char *path, const char *s, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, s, n) == (ssize_t)n);
    close(fd);
}

static void test_torn_tail(void)
{
    char dir[300], p[512];
    struct kura_errbuf eb = {0};
    snprintf(dir, sizeof dir, "%s/torn", g_dir);
    struct kura_keys *k = setup_keys(dir);
    uint8_t pk[32];
    kura_keys_public(k, pk);
    struct kura_audit_options o = {.no_timer = true};
    struct kura_audit *log = NULL;
    CHECK(kura_audit_open(dir, k, &o, &log, NULL, &eb) == KURA_OK);
    CHECK(kura_audit_append(log, "local:a", "test.one", "o", "ok", NULL, NULL, &eb) == 0);
    CHECK(kura_audit_close(log, &eb) == KURA_OK);
    path_of(p, dir, "audit/audit.log");
    size_t len0;
    free(slurp(p, &len0));
    /* A crash in the middle of writing a record. */
    static const char torn[] = "{\"seq\":5,\"time\":\"2024-01-01T00:00:00.000000Z\",\"actor\":\"loc";
    append_raw(p, torn, sizeof torn - 1);
    struct kura_audit_verify_opts vo = {.pubkey = pk};
    struct kura_audit_verify_result r;
    CHECK(kura_audit_verify_file(dir, &vo, true, &r, &eb) == KURA_ERR_TAMPER);
    CHECKF(r.verdict == KURA_AUDIT_TORN && r.torn_offset == len0 && r.last_seq == 4 &&
               r.bad_line == 5,
           "verdict %d torn %llu last %llu: %s", r.verdict, (unsigned long long)r.torn_offset,
           (unsigned long long)r.last_seq, r.message);
    /* Opening for writing seals it: reported, recorded, nothing dropped. */
    struct kura_audit_open_info info;
    CHECKF(kura_audit_open(dir, k, &o, &log, &info, &eb) == KURA_OK, "%s", eb.msg);
    CHECK(info.sealed && info.torn_offset == len0 && info.torn_len == sizeof torn - 1 &&
          info.torn_lines == 1 && info.seal_seq == 5);
    CHECK(kura_audit_append(log, "local:a", "test.two", "o", "ok", NULL, NULL, &eb) == 0);
    CHECK(kura_audit_close(log, &eb) == KURA_OK);
    CHECKF(kura_audit_verify_file(dir, &vo, true, &r, &eb) == KURA_OK, "%s", r.message);
    CHECK(r.n_seals == 1);
    size_t len1;
    char *b = slurp(p, &len1);
    CHECK(b && memcmp(b + len0, torn, sizeof torn - 1) == 0); /* torn bytes kept in place */
    /* Altering the sealed garbage is detected (its hash is in the seal). */
    b[len0 + 3] ^= 1;
    struct kura_audit_verify_opts vb = {.pubkey = pk};
    CHECK(kura_audit_verify_buffer(b, len1, &vb, &r) == KURA_ERR_TAMPER && r.bad_line == 5);
    free(b);

    /* A crash while writing the seal itself: both fragments are sealed next time. */
    append_raw(p, torn, 20);
    CHECK(kura_audit_open(dir, k, &o, &log, &info, &eb) == KURA_OK && info.sealed);
    kura_audit_close(log, &eb);
    append_raw(p, torn, 30);
    append_raw(p, "\n{\"seq\":", 8);
    CHECKF(kura_audit_open(dir, k, &o, &log, &info, &eb) == KURA_OK, "%s", eb.msg);
    CHECK(info.sealed && info.torn_lines == 2);
    kura_audit_close(log, &eb);
    CHECKF(kura_audit_verify_file(dir, &vo, true, &r, &eb) == KURA_OK, "%s", r.message);
    CHECK(r.n_seals == 3);
    /* Many torn lines at once: one seal names them all (its details once outgrew a fixed
     * 512-byte formatting buffer and the open failed). */
    for (int i = 0; i < 12; i++) {
        append_raw(p, torn, 10 + (size_t)i);
        append_raw(p, "\n", 1);
    }
    CHECKF(kura_audit_open(dir, k, &o, &log, &info, &eb) == KURA_OK, "%s", eb.msg);
    CHECK(info.sealed && info.torn_lines == 12);
    kura_audit_close(log, &eb);
    CHECKF(kura_audit_verify_file(dir, &vo, true, &r, &eb) == KURA_OK, "%s", r.message);
    CHECK(r.n_seals == 4);

    /* A complete record whose newline was not written: terminated, not sealed. */
    b = slurp(p, &len1);
    CHECK(b != NULL);
    CHECK(b && truncate(p, (off_t)len1 - 1) == 0);
    CHECK(kura_audit_open(dir, k, &o, &log, &info, &eb) == KURA_OK);
    CHECK(info.completed && !info.sealed);
    kura_audit_close(log, &eb);
    CHECKF(kura_audit_verify_file(dir, &vo, true, &r, &eb) == KURA_OK, "%s", r.message);
    free(b);
    kura_keys_destroy(k);
}

static void test_head_and_deletion(void)
{
    char dir[300], hp[512], lp[512], hb[512];
    struct kura_errbuf eb = {0};
    snprintf(dir, sizeof dir, "%s/head", g_dir);
    struct kura_keys *k = setup_keys(dir);
    uint8_t pk[32];
    kura_keys_public(k, pk);
    struct kura_audit_options o = {.no_timer = true};
    struct kura_audit *log = NULL;
    CHECK(kura_audit_open(dir, k, &o, &log, NULL, &eb) == KURA_OK);
    CHECK(kura_audit_append(log, "local:a", "test.one", "o", "ok", NULL, NULL, &eb) == 0);
    CHECK(kura_audit_close(log, &eb) == KURA_OK);
    path_of(hp, dir, "audit/head.json");
    path_of(lp, dir, "audit/audit.log");
    path_of(hb, dir, "audit/head.bak");
    CHECK(rename(hp, hb) == 0);
    struct kura_audit_verify_opts vo = {.pubkey = pk};
    struct kura_audit_verify_result r;
    CHECK(kura_audit_verify_file(dir, &vo, true, &r, &eb) == KURA_ERR_TAMPER);
    CHECK(strstr(r.message, "missing") != NULL);
    CHECK(kura_audit_open(dir, k, &o, &log, NULL, &eb) == KURA_ERR_TAMPER);
    /* An operator accepting it: recorded, and a new head written. */
    o.accept_missing_head = true;
    CHECK(kura_audit_open(dir, k, &o, &log, NULL, &eb) == KURA_OK);
    CHECK(kura_audit_close(log, &eb) == KURA_OK);
    CHECKF(kura_audit_verify_file(dir, &vo, true, &r, &eb) == KURA_OK, "%s", r.message);
    int n = 0;
    struct kura_audit_filter f = {.action = "audit.head_missing"};
    CHECK(kura_audit_show(dir, &f, count_cb, &n, NULL, &eb) == KURA_OK && n == 1);
    /* A forged head (signed by nobody) is rejected. */
    size_t hl;
    char *h = slurp(hp, &hl);
    char *seqp = strstr(h, "\"seq\":");
    seqp[6] = seqp[6] == '9' ? '8' : '9';
    int fd = open(hp, O_WRONLY | O_TRUNC);
    CHECK(write(fd, h, hl) == (ssize_t)hl);
    close(fd);
    free(h);
    CHECK(kura_audit_verify_file(dir, &vo, true, &r, &eb) != KURA_OK);
    /* The log deleted while its head remains: no silent restart. */
    CHECK(unlink(lp) == 0);
    o.accept_missing_head = false;
    CHECK(kura_audit_open(dir, k, &o, &log, NULL, &eb) == KURA_ERR_TAMPER);
    kura_keys_destroy(k);
}

static void test_export(void)
{
    char dir[300], bp[512];
    struct kura_errbuf eb = {0};
    snprintf(dir, sizeof dir, "%s/export", g_dir);
    struct kura_keys *k = setup_keys(dir);
    uint8_t pk[32];
    kura_keys_public(k, pk);
    build_log(dir, k, 40, 16);
    snprintf(bp, sizeof bp, "%s/bundle.jsonl", g_dir);
    struct kura_audit_verify_result r;
    CHECKF(kura_audit_export(dir, k, "local:auditor", bp, &r, &eb) == KURA_OK, "%s", eb.msg);
    CHECKF(kura_audit_verify_bundle(bp, pk, &r, &eb) == KURA_OK, "%s", eb.msg);
    CHECK(r.last_seq == 2 + 40 + 2 + 1);
    uint8_t other[32];
    memcpy(other, pk, 32);
    other[5] ^= 1;
    CHECK(kura_audit_verify_bundle(bp, other, &r, &eb) != KURA_OK);
    size_t len;
    char *b = slurp(bp, &len);
    /* Flip a byte in the body, in the trailer, drop the last record. */
    size_t offs[] = {10, len / 2, len - 20};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        b[offs[i]] ^= 1;
        int fd = open(bp, O_WRONLY | O_TRUNC);
        CHECK(write(fd, b, len) == (ssize_t)len);
        close(fd);
        CHECKF(kura_audit_verify_bundle(bp, pk, &r, &eb) != KURA_OK, "flip at %zu", offs[i]);
        b[offs[i]] ^= 1;
    }
    free(b);
    kura_keys_destroy(k);
}

static void test_bad_input(void)
{
    char dir[300];
    struct kura_errbuf eb = {0};
    snprintf(dir, sizeof dir, "%s/input", g_dir);
    struct kura_keys *k = setup_keys(dir);
    struct kura_audit_options o = {.no_timer = true};
    struct kura_audit *log = NULL;
    CHECK(kura_audit_open(dir, k, &o, &log, NULL, &eb) == KURA_OK);
    CHECK(kura_audit_append(log, "a", "audit.checkpoint", "o", "ok", NULL, NULL, &eb) ==
          KURA_ERR_INVALID);
    CHECK(kura_audit_append(log, "a\xff", "x", "o", "ok", NULL, NULL, &eb) == KURA_ERR_INVALID);
    CHECK(kura_audit_append(log, "a", "x", "o", "ok", "[1,2]", NULL, &eb) == KURA_ERR_INVALID);
    CHECK(kura_audit_append(log, "a", "x", "o", "ok", "{\"a\":1,\"a\":2}", NULL, &eb) ==
          KURA_ERR_INVALID);
    char *big = malloc(KURA_AUDIT_MAX_FIELD + 2);
    memset(big, 'x', KURA_AUDIT_MAX_FIELD + 1);
    big[KURA_AUDIT_MAX_FIELD + 1] = 0;
    CHECK(kura_audit_append(log, big, "x", "o", "ok", NULL, NULL, &eb) == KURA_ERR_RANGE);
    free(big);
    /* control characters and quotes round-trip */
    uint64_t seq;
    CHECK(kura_audit_append(log, "local:\"q\"\n\t", "x", "line1\nline2\x01", "ok", NULL, &seq,
                            &eb) == KURA_OK);
    CHECK(kura_audit_close(log, &eb) == KURA_OK);
    uint8_t pk[32];
    kura_keys_public(k, pk);
    struct kura_audit_verify_opts vo = {.pubkey = pk};
    struct kura_audit_verify_result r;
    CHECKF(kura_audit_verify_file(dir, &vo, true, &r, &eb) == KURA_OK, "%s", r.message);
    /* garbage buffers never crash and never verify */
    static const char *junk[] = {"", "\n", "{}\n", "{\"seq\":1}", "\xff\xfe\n\n\n",
                                 ("{\"seq\":1,\"tag\":\"0000000000000000000000000000000000000000"
                                  "000000000000000000000000\"}\n")};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        CHECK(kura_audit_verify_buffer(junk[i], strlen(junk[i]), &vo, &r) != KURA_OK);
    /* file digest: SHA-256("abc") */
    char fp[512], hex[65];
    snprintf(fp, sizeof fp, "%s/abc.txt", g_dir);
    FILE *f = fopen(fp, "w");
    fputs("abc", f);
    fclose(f);
    CHECK(kura_audit_file_digest(fp, hex, &eb) == KURA_OK);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    kura_keys_destroy(k);
}

int main(void)
{
    setenv("KURA_ARGON2_OPSLIMIT", "1", 1);
    setenv("KURA_ARGON2_MEMLIMIT", "8192", 1);
    snprintf(g_dir, sizeof g_dir, "/tmp/kura-test-audit-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {{"mutations", test_mutations},   {"tags", test_tags},
                 {"concurrent", test_concurrent_and_reopen}, {"torn tail", test_torn_tail},
                 {"head", test_head_and_deletion}, {"export", test_export},
                 {"bad input", test_bad_input}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%-12s %.2f s\n", tests[i].name,
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    rm_rf(g_dir);
    return test_finish();
}
