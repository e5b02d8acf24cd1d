#include "cli/common.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

void cli_model_opts_init(struct cli_model_opts *o)
{
    memset(o, 0, sizeof *o);
    o->threads = 0;
    o->n_batch = 256;
    o->gen.n_predict = 128;
    o->gen.sample = kura_sample_params_default();
    o->gen.sample.temperature = 0.8f;
    o->gen.sample.top_k = 40;
    o->gen.sample.top_p = 0.95f;
    o->gen.sample.min_p = 0.05f;
    o->gen.stops = o->stops;
    cli_state_init(&o->state, "model");
}

const char *cli_model_opts_help(void)
{
    return "  -m, --model FILE       GGUF model file (required)\n"
           "  -n, --n-predict N      tokens to generate (default 128)\n"
           "  --temp T               temperature; 0 = greedy (default 0.8)\n"
           "  --top-k K              top-k sampling, 0 = off (default 40)\n"
           "  --top-p P              nucleus sampling, 1 = off (default 0.95)\n"
           "  --min-p P              min-p sampling, 0 = off (default 0.05)\n"
           "  --repeat-penalty F     repetition penalty, 1 = off (default 1)\n"
           "  --repeat-last-n N      window of the penalties (default 64)\n"
           "  --frequency-penalty F  OpenAI-style frequency penalty (default 0)\n"
           "  --presence-penalty F   OpenAI-style presence penalty (default 0)\n"
           "  --seed S               random seed; the same seed reproduces a run (default random)\n"
           "  --stop TEXT            stop when TEXT is generated (repeatable, up to 16)\n"
           "  --ignore-eos           do not stop at end-of-generation tokens\n"
           "  -t, --threads N        threads (default: number of physical cores)\n"
           "  -c, --ctx N            context size in tokens (default min(trained, 4096))\n"
           "  -b, --batch N          prompt batch size (default 256)\n"
           "Audit: when the state directory is initialised (kura keys init), every model load\n"
           "is recorded in its audit log with the file's SHA-256; the keys are unlocked for it.\n"
           CLI_STATE_HELP;
}

int cli_model_opts_parse(struct cli_model_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v;
    int64_t iv;
    double fv;
    int sr = cli_state_option(&o->state, argc, argv, i);
    if (sr != 0)
        return sr;
#define VAL()                                                                                \
    do {                                                                                     \
        if (!(v = kura_cli_optarg(argc, argv, i)))                                           \
            return -1;                                                                       \
    } while (0)
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        VAL();
        o->model_path = v;
    } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
        VAL();
        if (!kura_cli_parse_i64(a, v, 1, 1 << 20, &iv))
            return -1;
        o->gen.n_predict = (int32_t)iv;
    } else if (!strcmp(a, "--temp") || !strcmp(a, "--temperature")) {
        VAL();
        if (!kura_cli_parse_f64(a, v, 0, 100, &fv))
            return -1;
        o->gen.sample.temperature = (float)fv;
    } else if (!strcmp(a, "--top-k")) {
        VAL();
        if (!kura_cli_parse_i64(a, v, 0, 1 << 24, &iv))
            return -1;
        o->gen.sample.top_k = (int32_t)iv;
    } else if (!strcmp(a, "--top-p")) {
        VAL();
        if (!kura_cli_parse_f64(a, v, 0, 1, &fv))
            return -1;
        o->gen.sample.top_p = (float)fv;
    } else if (!strcmp(a, "--min-p")) {
        VAL();
        if (!kura_cli_parse_f64(a, v, 0, 1, &fv))
            return -1;
        o->gen.sample.min_p = (float)fv;
    } else if (!strcmp(a, "--repeat-penalty")) {
        VAL();
        if (!kura_cli_parse_f64(a, v, 0.01, 100, &fv))
            return -1;
        o->gen.sample.repeat_penalty = (float)fv;
    } else if (!strcmp(a, "--repeat-last-n")) {
        VAL();
        if (!kura_cli_parse_i64(a, v, -1, 1 << 20, &iv))
            return -1;
        o->gen.sample.repeat_last_n = (int32_t)iv;
    } else if (!strcmp(a, "--frequency-penalty")) {
        VAL();
        if (!kura_cli_parse_f64(a, v, -2, 2, &fv))
            return -1;
        o->gen.sample.frequency_penalty = (float)fv;
    } else if (!strcmp(a, "--presence-penalty")) {
        VAL();
        if (!kura_cli_parse_f64(a, v, -2, 2, &fv))
            return -1;
        o->gen.sample.presence_penalty = (float)fv;
    } else if (!strcmp(a, "--seed") || !strcmp(a, "-s")) {
        VAL();
        if (!kura_cli_parse_i64(a, v, 0, INT64_MAX, &iv))
            return -1;
        o->gen.sample.seed = (uint64_t)iv;
    } else if (!strcmp(a, "--stop")) {
        VAL();
        if (o->gen.n_stops >= 16) {
            fprintf(stderr, "kura: at most 16 --stop strings\n");
            return -1;
        }
        o->stops[o->gen.n_stops++] = v;
    } else if (!strcmp(a, "--ignore-eos")) {
        o->gen.ignore_eos = true;
    } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        VAL();
        if (!kura_cli_parse_i64(a, v, 1, 512, &iv))
            return -1;
        o->threads = (int)iv;
    } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
        VAL();
        if (!kura_cli_parse_i64(a, v, 16, 1 << 20, &iv))
            return -1;
        o->n_ctx = (int32_t)iv;
    } else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) {
        VAL();
        if (!kura_cli_parse_i64(a, v, 1, 65536, &iv))
            return -1;
        o->n_batch = (int32_t)iv;
    } else {
        return 0;
    }
#undef VAL
    return 1;
}

bool cli_audit_model_load(const struct cli_state *state, const char *path, const char *cmd,
                          const char *error)
{
    struct cli_state st = *state;
    char label[64];
    snprintf(label, sizeof label, "%s", cmd);
    st.cmd = label;
    if (cli_state_resolve(&st))
        return false;
    uint8_t pk[KURA_KEYS_PUBLIC_LEN];
    if (kura_keys_read_public(st.dir, pk, NULL) != KURA_OK)
        return true; /* not initialised: no audit log to write to */
    struct kura_keys *k = NULL;
    if (cli_state_unlock(&st, &k))
        return false;
    struct kura_errbuf eb = {0};
    char hex[KURA_AUDIT_HEX_LEN] = "", obj[KURA_MAX_PATH];
    bool cached = false;
    bool ok = false;
    char *dj = NULL;
    if (!realpath(path, obj))
        snprintf(obj, sizeof obj, "%s", path);
    json_t *d = json_pack("{s:s}", "command", cmd);
    if (!error) {
        if (kura_audit_model_digest(st.dir, k, obj, hex, &cached, &eb)) {
            fprintf(stderr, "kura %s: %s\n", cmd, eb.msg);
            goto out;
        }
        struct stat sb;
        json_object_set_new(d, "sha256", json_string(hex));
        json_object_set_new(d, "bytes", json_integer(stat(obj, &sb) == 0 ? (json_int_t)sb.st_size
                                                                          : -1));
        json_object_set_new(d, "digest_cached", json_boolean(cached));
    } else {
        json_object_set_new(d, "error", json_string(error));
    }
    dj = d ? json_dumps(d, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    if (!dj) {
        fprintf(stderr, "kura %s: out of memory\n", cmd);
        goto out;
    }
    ok = cli_state_audit(&st, k, "model.load", obj, error ? "error" : "ok", dj, NULL) ==
         KURA_EXIT_OK;
out:
    json_decref(d);
    free(dj);
    kura_keys_destroy(k);
    return ok;
}

bool cli_engine_open(struct cli_engine *en, const struct cli_model_opts *o, const char *cmd)
{
    memset(en, 0, sizeof *en);
    struct kura_errbuf eb = {0};
    if (!o->model_path) {
        fprintf(stderr, "kura %s: no model given (-m FILE)\n", cmd);
        return false;
    }
    enum kura_err e = kura_model_load(o->model_path, &en->model, &eb);
    if (!cli_audit_model_load(&o->state, o->model_path, cmd, e ? eb.msg : NULL)) {
        cli_engine_close(en);
        return false;
    }
    if (!e)
        e = kura_tok_create(kura_model_gguf(en->model), &en->tok, &eb);
    if (!e && kura_tok_n_vocab(en->tok) != kura_model_hparams(en->model)->n_vocab &&
        kura_tok_n_vocab(en->tok) > kura_model_hparams(en->model)->n_vocab)
        e = kura_err_set(&eb, KURA_ERR_FORMAT, "%s: tokenizer has %d tokens but the model only "
                         "%d embeddings", o->model_path, kura_tok_n_vocab(en->tok),
                         kura_model_hparams(en->model)->n_vocab);
    int32_t n_ctx = o->n_ctx;
    if (!e && n_ctx <= 0) {
        n_ctx = kura_model_hparams(en->model)->n_ctx_train;
        if (n_ctx > 4096)
            n_ctx = 4096;
    }
    if (!e)
        e = kura_ctx_create(en->model, o->n_batch, o->threads, &en->ctx, &eb);
    if (!e)
        e = kura_kv_create(en->model, n_ctx, &en->kv, &eb);
    if (e) {
        fprintf(stderr, "kura %s: %s\n", cmd, eb.msg);
        cli_engine_close(en);
        return false;
    }
    return true;
}

void cli_engine_close(struct cli_engine *en)
{
    kura_kv_destroy(en->kv);
    kura_ctx_destroy(en->ctx);
    kura_tok_destroy(en->tok);
    kura_model_destroy(en->model);
    memset(en, 0, sizeof *en);
}
