/* kura bench: prefill and decode throughput of a model on this machine. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "kura/model.h"

static void help(FILE *f)
{
    fprintf(f, "usage: kura bench -m MODEL.gguf [-t THREADS] [-p PROMPT_TOKENS] [-n GEN_TOKENS]\n"
               "                  [-d DEPTH] [-r REPEATS] [--json] [--no-warmup]\n"
               "                  [--batch-invariant]\n\n"
               "Measures prefill (one batch of -p tokens) and decode (-n tokens one by one from an\n"
               "empty context, like llama-bench's tg test) and\n"
               "prints a table, or with --json one line with prefill_tokens_per_s,\n"
               "decode_tokens_per_s, peak_rss_bytes, threads and model (means over the repeats).\n\n"
               "  -t, --threads N   threads (default: physical cores)\n"
               "  -p N              prompt tokens (default 512)\n"
               "  -n N              generated tokens (default 128)\n"
               "  -d, --depth N     decode after N tokens of context (default 0)\n"
               "  -r N              repeats (default 3)\n"
               "  --json            machine-readable output\n"
               "  --batch-invariant evaluate as the server does (results independent of the\n"
               "                    batch; some few-column products take a slower path)\n"
               "  --no-warmup       skip the uncounted warm-up pass (one prefill and one\n"
               "                    decode step that map the weights and touch the buffers)\n"
               "The model load is recorded in the audit log when the state directory is\n"
               "initialised (see kura run --help).\n" CLI_STATE_HELP);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmd_bench(int argc, char **argv)
{
    const char *path = NULL;
    int64_t threads = 0, n_prompt = 512, n_gen = 128, reps = 3, depth = 0;
    bool json = false, warmup = true, invariant = false;
    struct cli_state st;
    cli_state_init(&st, "bench");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int sr = cli_state_option(&st, argc, argv, &i);
        if (sr < 0)
            return KURA_EXIT_USAGE;
        if (sr > 0)
            continue;
        if (kura_cli_is_help(a)) {
            help(stdout);
            return KURA_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--no-warmup")) {
            warmup = false;
        } else if (!strcmp(a, "--batch-invariant")) {
            invariant = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(path = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = kura_cli_optarg(argc, argv, &i)) ||
                !kura_cli_parse_i64(a, v, 1, 512, &threads))
                return KURA_EXIT_USAGE;
        } else if (!strcmp(a, "-p")) {
            if (!(v = kura_cli_optarg(argc, argv, &i)) ||
                !kura_cli_parse_i64(a, v, 1, 65536, &n_prompt))
                return KURA_EXIT_USAGE;
        } else if (!strcmp(a, "-n")) {
            if (!(v = kura_cli_optarg(argc, argv, &i)) ||
                !kura_cli_parse_i64(a, v, 1, 65536, &n_gen))
                return KURA_EXIT_USAGE;
        } else if (!strcmp(a, "-d") || !strcmp(a, "--depth")) {
            if (!(v = kura_cli_optarg(argc, argv, &i)) ||
                !kura_cli_parse_i64(a, v, 0, 65536, &depth))
                return KURA_EXIT_USAGE;
        } else if (!strcmp(a, "-r")) {
            if (!(v = kura_cli_optarg(argc, argv, &i)) || !kura_cli_parse_i64(a, v, 1, 1000, &reps))
                return KURA_EXIT_USAGE;
        } else {
            fprintf(stderr, "kura bench: unknown option '%s'\n", a);
            help(stderr);
            return KURA_EXIT_USAGE;
        }
    }
    if (!path) {
        help(stderr);
        return KURA_EXIT_USAGE;
    }
    struct kura_errbuf eb = {0};
    struct kura_model *m = NULL;
    struct kura_ctx *c = NULL;
    struct kura_kv *kv = NULL;
    float *logits = NULL;
    int32_t *toks = NULL;
    int rc = KURA_EXIT_RUNTIME;
    enum kura_err e = kura_model_load(path, &m, &eb);
    if (!cli_audit_model_load(&st, path, "bench", e ? eb.msg : NULL)) {
        kura_model_destroy(m);
        return KURA_EXIT_RUNTIME;
    }
    if (!e)
        e = kura_ctx_create(m, (int32_t)n_prompt, (int)threads, &c, &eb);
    if (!e && invariant)
        e = kura_ctx_set_batch_invariant(c, true, &eb);
    if (!e)
        e = kura_kv_create(m, (int32_t)((n_prompt > depth ? n_prompt : depth) + n_gen), &kv, &eb);
    if (e)
        goto out;
    const struct kura_hparams *hp = kura_model_hparams(m);
    logits = malloc((size_t)hp->n_vocab * sizeof *logits);
    int64_t n_toks = n_prompt > depth ? n_prompt : depth;
    toks = malloc((size_t)n_toks * sizeof *toks);
    if (!logits || !toks) {
        e = kura_err_set(&eb, KURA_ERR_NOMEM, "out of memory");
        goto out;
    }
    uint64_t rng = 0x9e3779b97f4a7c15ull; /* deterministic pseudo-random prompt */
    for (int64_t i = 0; i < n_toks; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((rng >> 33) % (uint64_t)hp->n_vocab);
    }
    /* a warm-up pass that is not counted (as the established engine's benchmark does by
     * default): maps the weights' pages and touches every buffer once */
    if (warmup) {
        e = kura_ctx_eval_seq(c, kv, toks, (int32_t)n_prompt, 0, false, logits, &eb);
        if (!e)
            e = kura_ctx_eval_seq(c, kv, toks, 1, 0, false, logits, &eb);
    }
    double pp_sum = 0, tg_sum = 0;
    for (int64_t r = 0; r < reps && !e; r++) {
        double t0 = now_s();
        e = kura_ctx_eval_seq(c, kv, toks, (int32_t)n_prompt, 0, false, logits, &eb);
        double t1 = now_s();
        /* decode one token at a time after depth tokens of context (none by default, as the
         * established engine's benchmark measures its "tg" figure); the prompt's KV entries
         * serve as the context, extended (untimed) where depth is longer */
        if (!e && depth > n_prompt) {
            e = kura_ctx_eval_seq(c, kv, toks + n_prompt, (int32_t)(depth - n_prompt),
                                  (int32_t)n_prompt, false, logits, &eb);
            t1 = now_s();
        }
        int32_t tok = toks[0];
        for (int64_t i = 0; i < n_gen && !e; i++)
            e = kura_ctx_eval_seq(c, kv, &tok, 1, (int32_t)(depth + i), false, logits, &eb);
        double t2 = now_s();
        pp_sum += (double)n_prompt / (t1 - t0);
        tg_sum += (double)n_gen / (t2 - t1);
    }
    if (e)
        goto out;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    uint64_t rss = (uint64_t)ru.ru_maxrss * 1024u;
    double pp = pp_sum / (double)reps, tg = tg_sum / (double)reps;
    if (json) {
        /* jansson escapes the path */
        json_t *o = json_pack("{s:f, s:f, s:I, s:i, s:s, s:I, s:I}", "prefill_tokens_per_s",
                              round(pp * 100) / 100, "decode_tokens_per_s", round(tg * 100) / 100,
                              "peak_rss_bytes", (json_int_t)rss, "threads",
                              kura_ctx_n_threads(c), "model", path, "weight_bytes",
                              (json_int_t)kura_model_weight_bytes(m), "depth", (json_int_t)depth);
        size_t fl = JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10);
        char *txt = o ? json_dumps(o, fl) : NULL;
        json_decref(o);
        if (!txt) {
            e = kura_err_set(&eb, KURA_ERR_NOMEM, "out of memory (JSON output)");
            goto out;
        }
        printf("%s\n", txt);
        free(txt);
    } else {
        printf("model      %s (%s, %.1f MB of weights)\n", path, kura_arch_name(hp->arch),
               (double)kura_model_weight_bytes(m) / 1e6);
        printf("threads    %d\n", kura_ctx_n_threads(c));
        printf("prefill    %8.2f tokens/s (%" PRId64 " tokens, mean of %" PRId64 ")\n", pp,
               n_prompt, reps);
        if (depth)
            printf("decode     %8.2f tokens/s (%" PRId64 " tokens after %" PRId64
                   " of context, mean of %" PRId64 ")\n",
                   tg, n_gen, depth, reps);
        else
            printf("decode     %8.2f tokens/s (%" PRId64 " tokens, mean of %" PRId64 ")\n", tg,
                   n_gen, reps);
        printf("peak RSS   %.1f MB\n", (double)rss / 1e6);
    }
    rc = KURA_EXIT_OK;
out:
    if (e)
        fprintf(stderr, "kura bench: %s\n", eb.msg);
    free(logits);
    free(toks);
    kura_kv_destroy(kv);
    kura_ctx_destroy(c);
    kura_model_destroy(m);
    return rc;
}

KURA_CLI_COMMAND(bench, "bench", "measure prefill and decode speed of a model", cmd_bench)
