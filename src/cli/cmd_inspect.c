/* kura inspect MODEL.gguf: architecture, parameters, tensor types, sizes and metadata. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "kura/gguf.h"

static void help(FILE *f)
{
    fprintf(f, "usage: kura inspect [--tensors] MODEL.gguf\n\n"
               "Prints the GGUF version, architecture, parameter count, tensor types and sizes\n"
               "and all metadata of a model file.\n\n"
               "  --tensors   list every tensor (name, type, shape, bytes)\n");
}

static int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int list_tensors = 0;
    for (int i = 1; i < argc; i++) {
        if (kura_cli_is_help(argv[i])) {
            help(stdout);
            return KURA_EXIT_OK;
        } else if (strcmp(argv[i], "--tensors") == 0) {
            list_tensors = 1;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "kura inspect: unexpected argument '%s'\n", argv[i]);
            help(stderr);
            return KURA_EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        help(stderr);
        return KURA_EXIT_USAGE;
    }
    struct kura_errbuf eb = {0};
    struct kura_gguf *g;
    if (kura_gguf_open(path, &g, &eb)) {
        fprintf(stderr, "kura inspect: %s\n", eb.msg);
        return KURA_EXIT_RUNTIME;
    }
    struct kura_str arch = {"?", 1};
    kura_gguf_get_str(g, "general.architecture", &arch);
    uint64_t n_params = 0, bytes_by_type[KURA_TYPE__COUNT] = {0}, n_by_type[KURA_TYPE__COUNT] = {0};
    for (int64_t i = 0; i < kura_gguf_n_tensors(g); i++) {
        const struct kura_gguf_tensor *t = kura_gguf_tensor(g, i);
        n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        bytes_by_type[t->type] += t->size;
        n_by_type[t->type]++;
    }
    printf("file:          %s\n", path);
    printf("gguf version:  %u\n", kura_gguf_version(g));
    printf("size:          %" PRIu64 " bytes\n", kura_gguf_file_size(g));
    printf("architecture:  %.*s\n", (int)arch.len, arch.ptr);
    printf("parameters:    %" PRIu64 " (%.2f M)\n", n_params, (double)n_params / 1e6);
    printf("tensors:       %" PRId64 "\n", kura_gguf_n_tensors(g));
    for (int t = 0; t < KURA_TYPE__COUNT; t++)
        if (n_by_type[t])
            printf("  %-6s %5" PRIu64 " tensors, %12" PRIu64 " bytes\n",
                   kura_type_name((enum kura_type)t), n_by_type[t], bytes_by_type[t]);
    printf("metadata (%" PRId64 " keys):\n", kura_gguf_n_kv(g));
    char buf[1024];
    for (int64_t i = 0; i < kura_gguf_n_kv(g); i++) {
        struct kura_str k = kura_gguf_key(g, i);
        kura_gguf_kv_format(g, i, buf, sizeof buf);
        printf("  %-40.*s = %s\n", (int)k.len, k.ptr, buf);
    }
    if (list_tensors) {
        printf("tensors:\n");
        for (int64_t i = 0; i < kura_gguf_n_tensors(g); i++) {
            const struct kura_gguf_tensor *t = kura_gguf_tensor(g, i);
            printf("  %-32.*s %-5s [%" PRId64, (int)t->name.len, t->name.ptr,
                   kura_type_name(t->type), t->ne[0]);
            for (uint32_t d = 1; d < t->n_dims; d++)
                printf(", %" PRId64, t->ne[d]);
            printf("] %" PRIu64 " bytes\n", t->size);
        }
    }
    kura_gguf_close(g);
    return KURA_EXIT_OK;
}

KURA_CLI_COMMAND(inspect, "inspect", "print a model file's architecture, tensors and metadata",
                 cmd_inspect)
