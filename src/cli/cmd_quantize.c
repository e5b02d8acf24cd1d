/* kura quantize IN.gguf OUT.gguf --type TYPE [--threads N]: converts a model's weights. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "kura/quantize.h"

static void help(FILE *f)
{
    fprintf(f, "usage: kura quantize IN.gguf OUT.gguf --type TYPE [--threads N] [--quiet]\n\n"
               "Writes IN's model to OUT with its weights converted to TYPE, one of:\n"
               "  %s\n"
               "Norms and biases stay F32. The K-quant mixes give Q6_K to output.weight and to\n"
               "attn_v / ffn_down of some layers; rows that do not fit a type's block size fall\n"
               "back to a compatible type (Q5_0, Q5_1, Q8_0 or F16). OUT is written to a temporary\n"
               "file and renamed into place only when complete.\n\n"
               "  --type TYPE    target type (required)\n"
               "  --threads N    quantization threads (default: number of CPUs)\n"
               "  --quiet        do not list the tensors\n",
            kura_qmix_names());
}

static int cmd_quantize(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL}, *type = NULL;
    int n_paths = 0, quiet = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t threads = ncpu > 0 ? ncpu : 1;
    for (int i = 1; i < argc; i++) {
        if (kura_cli_is_help(argv[i])) {
            help(stdout);
            return KURA_EXIT_OK;
        } else if (strcmp(argv[i], "--type") == 0) {
            if (!(type = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if (strcmp(argv[i], "--threads") == 0) {
            const char *v = kura_cli_optarg(argc, argv, &i);
            if (!v || !kura_cli_parse_i64("--threads", v, 1, 256, &threads))
                return KURA_EXIT_USAGE;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
        } else if (argv[i][0] == '-' || n_paths == 2) {
            fprintf(stderr, "kura quantize: unexpected argument '%s'\n", argv[i]);
            help(stderr);
            return KURA_EXIT_USAGE;
        } else {
            paths[n_paths++] = argv[i];
        }
    }
    if (n_paths != 2 || !type) {
        fprintf(stderr, "kura quantize: %s\n",
                n_paths != 2 ? "needs IN.gguf and OUT.gguf" : "--type is required");
        help(stderr);
        return KURA_EXIT_USAGE;
    }
    int mix = kura_qmix_from_name(type);
    if (mix < 0) {
        fprintf(stderr, "kura quantize: --type: unknown type '%s' (one of: %s)\n", type,
                kura_qmix_names());
        return KURA_EXIT_USAGE;
    }
    struct kura_errbuf eb = {0};
    if (kura_quantize_file(paths[0], paths[1], (enum kura_qmix)mix, (int)threads,
                           quiet ? NULL : stdout, &eb)) {
        fprintf(stderr, "kura quantize: %s\n", eb.msg);
        return KURA_EXIT_RUNTIME;
    }
    if (!quiet)
        printf("wrote %s (%s)\n", paths[1], kura_qmix_name((enum kura_qmix)mix));
    return KURA_EXIT_OK;
}

KURA_CLI_COMMAND(quantize, "quantize", "convert a model's weights to another tensor type",
                 cmd_quantize)
