/* kura run: generate a continuation of a prompt and stream it to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"

static void help(FILE *f)
{
    fprintf(f, "usage: kura run -m MODEL.gguf -p PROMPT [options]\n\n"
               "Generates a continuation of PROMPT and streams it to stdout (the prompt is not\n"
               "echoed). Special-token text in the prompt (e.g. <|im_start|>) is parsed as the\n"
               "special token; the model's own BOS rule applies.\n\n"
               "  -p, --prompt TEXT      the prompt (or -f FILE, or stdin when neither is given)\n"
               "  -f, --file FILE        read the prompt from FILE\n"
               "  --ids                  print one JSON array of the generated token ids instead\n"
               "  -v, --verbose          print timings to stderr\n"
               "%s", cli_model_opts_help());
}

static bool on_text(void *ud, const char *s, size_t n)
{
    (void)ud;
    fwrite(s, 1, n, stdout);
    fflush(stdout);
    return true;
}

struct ids_out {
    int n;
};

static bool on_token_ids(void *ud, int32_t id, const float *logits, int32_t n_vocab)
{
    struct ids_out *o = ud;
    (void)logits;
    (void)n_vocab;
    printf("%s%d", o->n++ ? "," : "[", id);
    return true;
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap >= (64u << 20)) {
                free(buf);
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

static int cmd_run(int argc, char **argv)
{
    struct cli_model_opts o;
    cli_model_opts_init(&o);
    const char *prompt = NULL, *prompt_file = NULL;
    bool ids = false, verbose = false;
    for (int i = 1; i < argc; i++) {
        int r = cli_model_opts_parse(&o, argc, argv, &i);
        if (r < 0)
            return KURA_EXIT_USAGE;
        if (r > 0)
            continue;
        if (kura_cli_is_help(argv[i])) {
            help(stdout);
            return KURA_EXIT_OK;
        } else if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "--prompt")) {
            if (!(prompt = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) {
            if (!(prompt_file = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--ids")) {
            ids = true;
        } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
            verbose = true;
        } else {
            fprintf(stderr, "kura run: unknown option '%s'\n", argv[i]);
            help(stderr);
            return KURA_EXIT_USAGE;
        }
    }
    if (!o.model_path) {
        fprintf(stderr, "kura run: -m MODEL.gguf is required\n");
        help(stderr);
        return KURA_EXIT_USAGE;
    }
    char *owned = NULL;
    size_t plen = 0;
    if (prompt) {
        plen = strlen(prompt);
    } else {
        FILE *f = prompt_file ? fopen(prompt_file, "rb") : stdin;
        if (!f) {
            fprintf(stderr, "kura run: cannot open %s\n", prompt_file);
            return KURA_EXIT_RUNTIME;
        }
        owned = read_all(f, &plen);
        if (prompt_file)
            fclose(f);
        if (!owned) {
            fprintf(stderr, "kura run: cannot read the prompt (or it is over 64 MiB)\n");
            return KURA_EXIT_RUNTIME;
        }
        prompt = owned;
    }
    struct cli_engine en;
    if (!cli_engine_open(&en, &o, "run")) {
        free(owned);
        return KURA_EXIT_RUNTIME;
    }
    int rc = KURA_EXIT_OK;
    struct kura_errbuf eb = {0};
    int32_t *toks = NULL;
    size_t n_toks = 0;
    enum kura_err e = kura_tok_encode(en.tok, prompt, plen, true, true, &toks, &n_toks, &eb);
    if (!e && n_toks == 0)
        e = kura_err_set(&eb, KURA_ERR_INVALID, "the prompt is empty");
    if (!e && n_toks > (size_t)kura_kv_n_ctx(en.kv))
        e = kura_err_set(&eb, KURA_ERR_RANGE, "the prompt has %zu tokens, more than the context "
                         "of %d (use --ctx)", n_toks, kura_kv_n_ctx(en.kv));
    struct kura_gen_result res;
    struct ids_out io = {0};
    struct kura_gen_callbacks cb = {.on_text = ids ? NULL : on_text,
                                    .on_token = ids ? on_token_ids : NULL,
                                    .ud = ids ? (void *)&io : NULL};
    if (!e)
        e = kura_generate(en.ctx, en.kv, en.tok, toks, (int32_t)n_toks, 0, &o.gen, &cb, &res, &eb);
    if (ids) {
        printf("%s]\n", io.n ? "" : "[");
    } else if (!e) {
        fflush(stdout);
    }
    if (e) {
        fprintf(stderr, "kura run: %s\n", eb.msg);
        rc = KURA_EXIT_RUNTIME;
    } else if (verbose) {
        fprintf(stderr, "\nprompt: %d tokens in %.3f s (%.1f tok/s); generated %d tokens in "
                "%.3f s (%.1f tok/s); finish: %s\n", res.n_prompt_eval, res.prompt_seconds,
                res.n_prompt_eval / (res.prompt_seconds > 0 ? res.prompt_seconds : 1e-9),
                res.n_gen, res.gen_seconds,
                res.n_gen / (res.gen_seconds > 0 ? res.gen_seconds : 1e-9),
                kura_finish_name(res.finish));
    }
    free(toks);
    free(owned);
    cli_engine_close(&en);
    return rc;
}

KURA_CLI_COMMAND(run, "run", "generate text from a prompt with a local model", cmd_run)
