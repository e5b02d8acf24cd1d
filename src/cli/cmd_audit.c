/* kura audit note|verify|show|export|verify-bundle (and a hidden `bench`). */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_state.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: kura audit note --action ACTION --object OBJECT [--detail TEXT] [options]\n"
            "       kura audit verify [--pubkey K] [--keys] [--expect-min-seq N] [--no-head]\n"
            "       kura audit show [--since T] [--until T] [--actor A] [--action A[*]]\n"
            "                       [--from-seq N] [--to-seq N] [--limit N] [--table|--json]\n"
            "       kura audit export --out FILE [options]\n"
            "       kura audit verify-bundle --pubkey K FILE\n\n"
            "note           record an operator's own event (hardware swap, manual review, ...)\n"
            "               with the local user as actor; prints its sequence number\n"
            "verify         check the whole hash chain, every checkpoint signature and the\n"
            "               signed head; names the first bad record. Exit 0 only when intact.\n"
            "               --pubkey K: the key to trust ('ed25519:<hex>' or a file holding\n"
            "               it; default: the local key file, which an attacker could replace)\n"
            "               --keys: also unlock the keys and check every record's MAC tag\n"
            "               (covers records written after the last checkpoint)\n"
            "               --expect-min-seq N: fail when the log ends before seq N\n"
            "               --no-head: do not require audit/head.json (weaker)\n"
            "show           print records (JSON Lines, or a table) filtered by time (UTC,\n"
            "               e.g. 2024-05-01 or 2024-05-01T12:00), actor, action (A* = prefix)\n"
            "               and seq; does not verify (use verify)\n"
            "export         verify the log and write a bundle signed by the node key that an\n"
            "               external auditor checks with verify-bundle and the public key\n"
            "verify-bundle  check a bundle with only the public key; exit 0 only when valid\n\n"
            "options:\n" CLI_STATE_HELP
            "  --json                 verify: print the result as JSON\n"
            "  -h, --help             this help\n\n"
            "Exit codes: 0 ok (verify: intact), 1 error or not intact, 2 usage.\n");
}

struct opts {
    const char *sub, *action, *object, *detail, *pubkey, *out, *file;
    struct kura_audit_filter f;
    int64_t expect_min, limit, threads, seconds, every;
    const char *bench_dir;
    bool keys, no_head, table, json;
};

static int read_pubkey(const char *cmd, const char *arg, const char *dir, uint8_t pk[32])
{
    struct kura_errbuf eb = {0};
    if (!arg) {
        if (kura_keys_read_public(dir, pk, &eb)) {
            fprintf(stderr, "kura %s: %s (or pass --pubkey)\n", cmd, eb.msg);
            return KURA_EXIT_RUNTIME;
        }
        return KURA_EXIT_OK;
    }
    if (kura_keys_parse_public(arg, pk, NULL) == KURA_OK)
        return KURA_EXIT_OK;
    char *txt = NULL;
    size_t n;
    if (kura_state_read_file(arg, 4096, &txt, &n, &eb) == KURA_OK &&
        kura_keys_parse_public(txt, pk, &eb) == KURA_OK) {
        free(txt);
        return KURA_EXIT_OK;
    }
    free(txt);
    fprintf(stderr, "kura %s: --pubkey: '%s' is neither 'ed25519:<64 hex>' nor a file holding "
                    "one\n", cmd, arg);
    return KURA_EXIT_USAGE;
}

static void print_result_json(const struct kura_audit_verify_result *r)
{
    static const char *const v[] = {"intact", "torn", "bad"};
    json_t *o = json_object();
    json_object_set_new(o, "verdict", json_string(v[r->verdict]));
    json_object_set_new(o, "records", json_integer((json_int_t)r->n_records));
    json_object_set_new(o, "last_seq", json_integer((json_int_t)r->last_seq));
    json_object_set_new(o, "checkpoints", json_integer((json_int_t)r->n_checkpoints));
    json_object_set_new(o, "last_checkpoint_seq", json_integer((json_int_t)r->last_checkpoint_seq));
    json_object_set_new(o, "unsigned_tail", json_integer((json_int_t)r->unsigned_tail));
    json_object_set_new(o, "seals", json_integer((json_int_t)r->n_seals));
    json_object_set_new(o, "log", json_string(r->log_id));
    json_object_set_new(o, "last_hash", json_string(r->last_hash));
    if (r->verdict != KURA_AUDIT_INTACT) {
        json_object_set_new(o, "bad_line", json_integer((json_int_t)r->bad_line));
        json_object_set_new(o, "bad_seq", json_integer((json_int_t)r->bad_seq));
        json_object_set_new(o, "bad_offset", json_integer((json_int_t)r->bad_offset));
    }
    json_object_set_new(o, "message", json_string(r->message));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(o);
}

static int do_verify(struct cli_state *s, const struct opts *o)
{
    uint8_t pk[32];
    struct kura_errbuf eb = {0};
    struct kura_keys *k = NULL;
    struct kura_secret *tk = NULL;
    int rc = read_pubkey(s->cmd, o->pubkey, s->dir, pk);
    if (rc)
        return rc;
    if (!o->pubkey)
        fprintf(stderr, "kura audit verify: note: using the public key from the local key file; "
                        "auditors should pass the key they hold with --pubkey\n");
    struct kura_audit_verify_opts vo = {.pubkey = pk, .expect_min_seq = (uint64_t)o->expect_min};
    if (o->keys) {
        if ((rc = cli_state_unlock(s, &k)))
            return rc;
        if (kura_keys_data_key(k, "audit", false, &tk, &eb)) {
            fprintf(stderr, "kura audit verify: %s\n", eb.msg);
            kura_keys_destroy(k);
            return KURA_EXIT_RUNTIME;
        }
        vo.tag_key = tk;
    }
    struct kura_audit_verify_result r;
    enum kura_err e = kura_audit_verify_file(s->dir, &vo, !o->no_head, &r, &eb);
    kura_secret_destroy(tk);
    kura_keys_destroy(k);
    if (e && e != KURA_ERR_TAMPER) {
        fprintf(stderr, "kura audit verify: %s\n", eb.msg[0] ? eb.msg : r.message);
        return KURA_EXIT_RUNTIME;
    }
    if (o->json)
        print_result_json(&r);
    else if (e)
        printf("NOT INTACT: %s\n", r.message);
    else
        printf("OK: %s%s\n", r.message, o->keys ? "; all tags verified" : "");
    return e ? KURA_EXIT_RUNTIME : KURA_EXIT_OK;
}

struct show_ctx {
    bool table;
    int64_t limit, n;
};

static int show_cb(void *ud, const struct kura_audit_record *rec)
{
    struct show_ctx *c = ud;
    if (c->table)
        printf("%8" PRIu64 "  %.19s  %-20s %-22s %-8s %s\n", rec->seq, rec->time, rec->actor,
               rec->action, rec->outcome, rec->object);
    else
        printf("%.*s\n", (int)rec->line_len, rec->line);
    return c->limit && ++c->n >= c->limit;
}

static int do_show(struct cli_state *s, const struct opts *o)
{
    struct kura_errbuf eb = {0};
    struct show_ctx c = {o->table, o->limit, 0};
    uint64_t skipped = 0;
    if (o->table)
        printf("%8s  %-19s  %-20s %-22s %-8s %s\n", "seq", "time (UTC)", "actor", "action",
               "outcome", "object");
    if (kura_audit_show(s->dir, &o->f, show_cb, &c, &skipped, &eb)) {
        fprintf(stderr, "kura audit show: %s\n", eb.msg);
        return KURA_EXIT_RUNTIME;
    }
    if (skipped)
        fprintf(stderr, "kura audit show: %" PRIu64 " unparseable line(s) skipped; run "
                        "'kura audit verify'\n", skipped);
    return KURA_EXIT_OK;
}

static int do_note(struct cli_state *s, const struct opts *o)
{
    struct kura_keys *k = NULL;
    int rc = cli_state_unlock(s, &k);
    if (rc)
        return rc;
    char *det = NULL;
    if (o->detail) {
        json_t *d = json_pack("{s:s}", "detail", o->detail);
        det = d ? json_dumps(d, JSON_COMPACT) : NULL;
        json_decref(d);
        if (!det) {
            fprintf(stderr, "kura audit note: --detail is not valid UTF-8\n");
            kura_keys_destroy(k);
            return KURA_EXIT_USAGE;
        }
    }
    uint64_t seq = 0;
    rc = cli_state_audit(s, k, o->action, o->object, "noted", det, &seq);
    free(det);
    kura_keys_destroy(k);
    if (!rc)
        printf("recorded as seq %" PRIu64 "\n", seq);
    return rc;
}

static int do_export(struct cli_state *s, const struct opts *o)
{
    struct kura_keys *k = NULL;
    struct kura_errbuf eb = {0};
    int rc = cli_state_unlock(s, &k);
    if (rc)
        return rc;
    struct kura_audit_verify_result r;
    if (kura_audit_export(s->dir, k, s->actor, o->out, &r, &eb)) {
        fprintf(stderr, "kura audit export: %s\n", eb.msg);
        json_t *d = json_pack("{s:s,s:s}", "file", o->out, "error", eb.msg);
        char *ds = d ? json_dumps(d, JSON_COMPACT) : NULL;
        cli_state_audit(s, k, "audit.export", o->out, "failure", ds, NULL);
        free(ds);
        json_decref(d);
        kura_keys_destroy(k);
        return KURA_EXIT_RUNTIME;
    }
    char det[256];
    snprintf(det, sizeof det, "{\"records\":%" PRIu64 ",\"last_hash\":\"%s\"}", r.last_seq,
             r.last_hash);
    rc = cli_state_audit(s, k, "audit.export", o->out, "ok", det, NULL);
    kura_keys_destroy(k);
    if (!rc)
        printf("exported %" PRIu64 " records to %s\n", r.last_seq, o->out);
    return rc;
}

static int do_verify_bundle(struct cli_state *s, const struct opts *o)
{
    uint8_t pk[32];
    struct kura_errbuf eb = {0};
    if (!o->pubkey || !o->file) {
        fprintf(stderr, "kura audit verify-bundle: needs --pubkey K and a bundle FILE\n");
        return KURA_EXIT_USAGE;
    }
    int rc = read_pubkey(s->cmd, o->pubkey, NULL, pk);
    if (rc)
        return rc;
    struct kura_audit_verify_result r;
    enum kura_err e = kura_audit_verify_bundle(o->file, pk, &r, &eb);
    if (e == KURA_ERR_NOTFOUND || e == KURA_ERR_IO) {
        fprintf(stderr, "kura audit verify-bundle: %s\n", eb.msg);
        return KURA_EXIT_RUNTIME;
    }
    if (o->json)
        print_result_json(&r);
    else if (e)
        printf("NOT VALID: %s\n", eb.msg);
    else
        printf("OK: bundle of log %s: %s\n", r.log_id, r.message);
    return e ? KURA_EXIT_RUNTIME : KURA_EXIT_OK;
}

/* ---- bench (hidden): appends/s with durability on ---- */

struct bench_thr {
    struct kura_audit *log;
    atomic_int *stop;
    int64_t n;
    int errors;
};

static void *bench_thread(void *arg)
{
    struct bench_thr *t = arg;
    while (!atomic_load(t->stop)) {
        char obj[32];
        snprintf(obj, sizeof obj, "req-%" PRId64, t->n);
        if (kura_audit_append(t->log, "apikey:bench", "request", obj, "ok",
                              "{\"model\":\"bench-1b\",\"route\":\"/v1/chat/completions\","
                              "\"tokens\":{\"prompt\":123,\"completion\":45},\"policy\":\"allow\"}",
                              NULL, NULL)) {
            t->errors++;
            break;
        }
        t->n++;
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One timed round: nt threads append until `seconds` have passed. */
static int bench_round(struct kura_audit *log, int64_t nt, double seconds, int64_t every)
{
    struct bench_thr *th = calloc((size_t)nt, sizeof *th);
    pthread_t *tid = calloc((size_t)nt, sizeof *tid);
    atomic_int stop = 0;
    int errors = 0;
    int64_t done = 0;
    if (!th || !tid) {
        free(th);
        free(tid);
        return -1;
    }
    double t0 = now_s();
    for (int64_t i = 0; i < nt; i++) {
        th[i] = (struct bench_thr){log, &stop, 0, 0};
        pthread_create(&tid[i], NULL, bench_thread, &th[i]);
    }
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, 1);
    for (int64_t i = 0; i < nt; i++) {
        pthread_join(tid[i], NULL);
        errors += th[i].errors;
        done += th[i].n;
    }
    double dt = now_s() - t0;
    printf("threads=%-4" PRId64 " appends=%-8" PRId64 " seconds=%.2f appends/s=%.0f "
           "(durable: fdatasync before each acknowledgement; checkpoint every %" PRId64 ")%s\n",
           nt, done, dt, (double)done / dt, every, errors ? " ERRORS" : "");
    fflush(stdout);
    free(th);
    free(tid);
    return errors ? -1 : 0;
}

static int do_bench(const struct opts *o)
{
    char dir[KURA_MAX_PATH];
    snprintf(dir, sizeof dir, "%s/kura-audit-bench-XXXXXX", o->bench_dir ? o->bench_dir : ".");
    if (!mkdtemp(dir)) {
        perror("kura audit bench: mkdtemp");
        return KURA_EXIT_RUNTIME;
    }
    /* Throwaway keys: a cheap KDF is fine here. */
    setenv("KURA_ARGON2_OPSLIMIT", "1", 1);
    setenv("KURA_ARGON2_MEMLIMIT", "8192", 1);
    struct kura_errbuf eb = {0};
    struct kura_secret *p = NULL;
    struct kura_keys *k = NULL;
    struct kura_audit *log = NULL;
    int rc = KURA_EXIT_RUNTIME;
    kura_secret_from("bench", 5, &p);
    struct kura_audit_options ao = {.checkpoint_every = (uint32_t)o->every};
    if (kura_keys_init(dir, p, NULL, &eb) || kura_keys_open(dir, p, &k, &eb) ||
        kura_audit_open(dir, k, &ao, &log, NULL, &eb)) {
        fprintf(stderr, "kura audit bench: %s\n", eb.msg);
        goto out;
    }
    printf("audit bench in %s, %.1f s per round\n", dir, (double)o->seconds);
    static const int64_t counts[] = {1, 8, 64, 256, 1024};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        if (counts[i] > o->threads)
            break;
        if (bench_round(log, counts[i], (double)o->seconds, o->every))
            goto out;
    }
    if (kura_audit_close(log, &eb)) {
        log = NULL;
        fprintf(stderr, "kura audit bench: %s\n", eb.msg);
        goto out;
    }
    log = NULL;
    uint8_t pk[32];
    kura_keys_public(k, pk);
    struct kura_audit_verify_opts vo = {.pubkey = pk};
    struct kura_audit_verify_result r;
    double t0 = now_s();
    if (kura_audit_verify_file(dir, &vo, true, &r, &eb)) {
        fprintf(stderr, "kura audit bench: verify failed: %s\n", r.message);
        goto out;
    }
    double dt = now_s() - t0;
    printf("verify: %" PRIu64 " records in %.2f s (%.0f records/s)\n", r.n_records, dt,
           (double)r.n_records / dt);
    rc = KURA_EXIT_OK;
out:
    kura_audit_close(log, NULL);
    kura_keys_destroy(k);
    kura_secret_destroy(p);
    char cmd[KURA_MAX_PATH + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "kura audit bench: could not remove %s\n", dir);
    return rc;
}

static int cmd_audit(int argc, char **argv)
{
    struct cli_state s;
    struct opts o = {.threads = 256, .seconds = 3, .every = 1000};
    cli_state_init(&s, "audit");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        const char **sv = NULL;
        int64_t *iv = NULL;
        int64_t lo = 0, hi = INT64_MAX;
        if (kura_cli_is_help(a)) {
            help(stdout);
            return KURA_EXIT_OK;
        } else if ((r = cli_state_option(&s, argc, argv, &i)) != 0) {
            if (r < 0)
                return KURA_EXIT_USAGE;
            continue;
        } else if (!strcmp(a, "--action")) {
            sv = &o.action;
        } else if (!strcmp(a, "--object")) {
            sv = &o.object;
        } else if (!strcmp(a, "--detail")) {
            sv = &o.detail;
        } else if (!strcmp(a, "--pubkey")) {
            sv = &o.pubkey;
        } else if (!strcmp(a, "--out")) {
            sv = &o.out;
        } else if (!strcmp(a, "--since")) {
            sv = &o.f.since;
        } else if (!strcmp(a, "--until")) {
            sv = &o.f.until;
        } else if (!strcmp(a, "--actor")) {
            sv = &o.f.actor;
        } else if (!strcmp(a, "--dir")) {
            sv = &o.bench_dir;
        } else if (!strcmp(a, "--expect-min-seq")) {
            iv = &o.expect_min;
        } else if (!strcmp(a, "--limit")) {
            iv = &o.limit;
        } else if (!strcmp(a, "--threads")) {
            iv = &o.threads;
            lo = 1;
            hi = 1024;
        } else if (!strcmp(a, "--seconds")) {
            iv = &o.seconds;
            lo = 1;
            hi = 3600;
        } else if (!strcmp(a, "--checkpoint-every")) {
            iv = &o.every;
            lo = 1;
            hi = 1000000;
        } else if (!strcmp(a, "--from-seq") || !strcmp(a, "--to-seq")) {
            const char *v = kura_cli_optarg(argc, argv, &i);
            int64_t x;
            if (!v || !kura_cli_parse_i64(a, v, 1, INT64_MAX, &x))
                return KURA_EXIT_USAGE;
            if (!strcmp(a, "--from-seq"))
                o.f.from_seq = (uint64_t)x;
            else
                o.f.to_seq = (uint64_t)x;
            continue;
        } else if (!strcmp(a, "--keys")) {
            o.keys = true;
            continue;
        } else if (!strcmp(a, "--no-head")) {
            o.no_head = true;
            continue;
        } else if (!strcmp(a, "--table")) {
            o.table = true;
            continue;
        } else if (!strcmp(a, "--json")) {
            o.json = true;
            continue;
        } else if (a[0] != '-' && !o.sub) {
            o.sub = a;
            continue;
        } else if (a[0] != '-' && o.sub && !strcmp(o.sub, "verify-bundle") && !o.file) {
            o.file = a;
            continue;
        } else {
            fprintf(stderr, "kura audit: unexpected argument '%s'\n", a);
            help(stderr);
            return KURA_EXIT_USAGE;
        }
        if (sv && !(*sv = kura_cli_optarg(argc, argv, &i)))
            return KURA_EXIT_USAGE;
        if (iv) {
            const char *v = kura_cli_optarg(argc, argv, &i);
            if (!v || !kura_cli_parse_i64(a, v, lo, hi, iv))
                return KURA_EXIT_USAGE;
        }
    }
    if (o.f.action == NULL && o.action && o.sub && !strcmp(o.sub, "show"))
        o.f.action = o.action;
    if (!o.sub) {
        help(stderr);
        return KURA_EXIT_USAGE;
    }
    char name[64];
    snprintf(name, sizeof name, "audit %s", o.sub);
    s.cmd = name;
    if (!strcmp(o.sub, "bench"))
        return do_bench(&o);
    if (!strcmp(o.sub, "verify-bundle"))
        return do_verify_bundle(&s, &o);
    int rc = cli_state_resolve(&s);
    if (rc)
        return rc;
    if (!strcmp(o.sub, "note")) {
        if (!o.action || !o.object || !*o.action) {
            fprintf(stderr, "kura audit note: needs --action ACTION and --object OBJECT\n");
            return KURA_EXIT_USAGE;
        }
        return do_note(&s, &o);
    }
    if (!strcmp(o.sub, "verify"))
        return do_verify(&s, &o);
    if (!strcmp(o.sub, "show"))
        return do_show(&s, &o);
    if (!strcmp(o.sub, "export")) {
        if (!o.out) {
            fprintf(stderr, "kura audit export: needs --out FILE\n");
            return KURA_EXIT_USAGE;
        }
        return do_export(&s, &o);
    }
    fprintf(stderr, "kura audit: unknown subcommand '%s'\n", o.sub);
    help(stderr);
    return KURA_EXIT_USAGE;
}

KURA_CLI_COMMAND(audit, "audit", "signed audit log: note, verify, show, export, verify-bundle",
                 cmd_audit)
