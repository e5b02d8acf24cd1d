/* kura model <subcommand>: model-file utilities. `synth` writes a random-weight model. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/limits.h"
#include "kura/synth.h"

static void help_model(FILE *f)
{
    fprintf(f, "usage: kura model <subcommand> [options]\n\n"
               "subcommands:\n"
               "  synth   write a random-weight model of a real architecture and shape\n");
}

static void help_synth(FILE *f)
{
    fprintf(f,
            "usage: kura model synth --arch llama|qwen2|qwen3 --n-embd N --n-layer N --n-head N\n"
            "         --n-head-kv N --n-ff N [--head-dim N] [--ctx N] [--rope-theta F]\n"
            "         [--rms-eps F] [--tied] --vocab-from VOCAB.gguf --type TYPE [--seed S]\n"
            "         [--name NAME] [--threads N] [--quiet] -o OUT.gguf\n\n"
            "Writes a model with random weights (gibberish output) but real tensor names, shapes\n"
            "and metadata, and the tokenizer of VOCAB.gguf (all tokenizer.* keys), for benchmarks\n"
            "and tests. TYPE is one of: %s (chosen per tensor as `kura quantize` does).\n"
            "Example (Llama 3.2 1B shape):\n"
            "  kura model synth --arch llama --n-embd 2048 --n-layer 16 --n-head 32 --n-head-kv 8\n"
            "    --n-ff 8192 --rope-theta 500000 --tied --vocab-from ggml-vocab-llama-bpe.gguf\n"
            "    --type q4_k_m -o llama-1b-synth.gguf\n",
            kura_qmix_names());
}

static int synth(int argc, char **argv)
{
    struct kura_synth_params p = {.seed = 1};
    const char *out = NULL, *type = NULL;
    int quiet = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t threads = ncpu > 0 ? ncpu : 1, seed = 1;
    static const struct {
        const char *opt;
        size_t off;
        int64_t lo, hi;
    } ints[] = {
        {"--n-embd", offsetof(struct kura_synth_params, n_embd), 1, KURA_MAX_EMBD},
        {"--n-layer", offsetof(struct kura_synth_params, n_layer), 1, KURA_MAX_LAYERS},
        {"--n-head", offsetof(struct kura_synth_params, n_head), 1, KURA_MAX_HEADS},
        {"--n-head-kv", offsetof(struct kura_synth_params, n_head_kv), 1, KURA_MAX_HEADS},
        {"--n-ff", offsetof(struct kura_synth_params, n_ff), 1, KURA_MAX_FF},
        {"--head-dim", offsetof(struct kura_synth_params, head_dim), 2, KURA_MAX_HEAD_DIM},
        {"--ctx", offsetof(struct kura_synth_params, n_ctx), 1, KURA_MAX_CTX},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        bool done = false;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !done; k++) {
            if (strcmp(a, ints[k].opt) != 0)
                continue;
            if (!(v = kura_cli_optarg(argc, argv, &i)) ||
                !kura_cli_parse_i64(a, v, ints[k].lo, ints[k].hi,
                                    (int64_t *)((char *)&p + ints[k].off)))
                return KURA_EXIT_USAGE;
            done = true;
        }
        if (done)
            continue;
        if (kura_cli_is_help(a)) {
            help_synth(stdout);
            return KURA_EXIT_OK;
        } else if (strcmp(a, "--arch") == 0 || strcmp(a, "--vocab-from") == 0 ||
                   strcmp(a, "--type") == 0 || strcmp(a, "-o") == 0 || strcmp(a, "--name") == 0) {
            if (!(v = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
            if (a[2] == 'a')
                p.arch = v;
            else if (a[2] == 'v')
                p.vocab_path = v;
            else if (a[2] == 't')
                type = v;
            else if (a[2] == 'n')
                p.name = v;
            else
                out = v;
        } else if (strcmp(a, "--rope-theta") == 0 || strcmp(a, "--rms-eps") == 0) {
            if (!(v = kura_cli_optarg(argc, argv, &i)) ||
                !kura_cli_parse_f64(a, v, a[3] == 'o' ? 1.0 : 1e-12, a[3] == 'o' ? 1e12 : 1.0,
                                    a[3] == 'o' ? &p.rope_theta : &p.rms_eps))
                return KURA_EXIT_USAGE;
        } else if (strcmp(a, "--seed") == 0) {
            if (!(v = kura_cli_optarg(argc, argv, &i)) ||
                !kura_cli_parse_i64(a, v, 0, INT64_MAX, &seed))
                return KURA_EXIT_USAGE;
        } else if (strcmp(a, "--threads") == 0) {
            if (!(v = kura_cli_optarg(argc, argv, &i)) ||
                !kura_cli_parse_i64(a, v, 1, 256, &threads))
                return KURA_EXIT_USAGE;
        } else if (strcmp(a, "--tied") == 0) {
            p.tied = true;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else {
            fprintf(stderr, "kura model synth: unexpected argument '%s'\n", a);
            help_synth(stderr);
            return KURA_EXIT_USAGE;
        }
    }
    const char *missing = !p.arch ? "--arch" : !p.n_embd ? "--n-embd" : !p.n_layer ? "--n-layer"
                        : !p.n_head ? "--n-head" : !p.n_head_kv ? "--n-head-kv"
                        : !p.n_ff ? "--n-ff" : !p.vocab_path ? "--vocab-from"
                        : !type ? "--type" : !out ? "-o" : NULL;
    if (missing) {
        fprintf(stderr, "kura model synth: %s is required\n", missing);
        help_synth(stderr);
        return KURA_EXIT_USAGE;
    }
    int mix = kura_qmix_from_name(type);
    if (mix < 0) {
        fprintf(stderr, "kura model synth: --type: unknown type '%s' (one of: %s)\n", type,
                kura_qmix_names());
        return KURA_EXIT_USAGE;
    }
    if (strcmp(p.arch, "llama") != 0 && strcmp(p.arch, "qwen2") != 0 &&
        strcmp(p.arch, "qwen3") != 0) {
        fprintf(stderr, "kura model synth: --arch: '%s' is not llama, qwen2 or qwen3\n", p.arch);
        return KURA_EXIT_USAGE;
    }
    p.mix = (enum kura_qmix)mix;
    p.seed = (uint64_t)seed;
    p.n_threads = (int)threads;
    struct kura_errbuf eb = {0};
    if (kura_synth_write(&p, out, quiet ? NULL : stdout, &eb)) {
        fprintf(stderr, "kura model synth: %s\n", eb.msg);
        return eb.code == KURA_ERR_INVALID ? KURA_EXIT_USAGE : KURA_EXIT_RUNTIME;
    }
    if (!quiet)
        printf("wrote %s\n", out);
    return KURA_EXIT_OK;
}

static int cmd_model(int argc, char **argv)
{
    if (argc < 2) {
        help_model(stderr);
        return KURA_EXIT_USAGE;
    }
    if (kura_cli_is_help(argv[1])) {
        help_model(stdout);
        return KURA_EXIT_OK;
    }
    if (strcmp(argv[1], "synth") == 0)
        return synth(argc - 1, argv + 1);
    fprintf(stderr, "kura model: unknown subcommand '%s'\n", argv[1]);
    help_model(stderr);
    return KURA_EXIT_USAGE;
}

KURA_CLI_COMMAND(model, "model", "model-file utilities (synth: random-weight test models)",
                 cmd_model)
