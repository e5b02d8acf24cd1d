#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COMMANDS 64

static const struct kura_cli_command *commands[MAX_COMMANDS];
static int n_commands;

void kura_cli_register(const struct kura_cli_command *cmd)
{
    if (n_commands < MAX_COMMANDS)
        commands[n_commands++] = cmd;
}

bool kura_cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

const char *kura_cli_optarg(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "kura %s: option %s needs a value\n", argv[0], argv[*i]);
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

bool kura_cli_parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "kura: %s: '%s' is not an integer in [%lld, %lld]\n", opt, s,
                (long long)lo, (long long)hi);
        return false;
    }
    *out = v;
    return true;
}

bool kura_cli_parse_f64(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "kura: %s: '%s' is not a number in [%g, %g]\n", opt, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

static int cmp_cmd(const void *a, const void *b)
{
    const struct kura_cli_command *x = *(const struct kura_cli_command *const *)a;
    const struct kura_cli_command *y = *(const struct kura_cli_command *const *)b;
    return strcmp(x->name, y->name);
}

static void usage(FILE *f)
{
    fprintf(f, "kura - a sovereign AI platform: local models, keys, audit, policy\n\n"
               "usage: kura <command> [options]   (kura <command> --help for details)\n\n"
               "commands:\n");
    for (int i = 0; i < n_commands; i++)
        fprintf(f, "  %-12s %s\n", commands[i]->name, commands[i]->summary);
}

int main(int argc, char **argv)
{
    qsort(commands, (size_t)n_commands, sizeof commands[0], cmp_cmd);
    if (argc < 2) {
        usage(stderr);
        return KURA_EXIT_USAGE;
    }
    if (kura_cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return KURA_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("kura 0.1.0\n");
        return KURA_EXIT_OK;
    }
    for (int i = 0; i < n_commands; i++)
        if (strcmp(commands[i]->name, argv[1]) == 0)
            return commands[i]->fn(argc - 1, argv + 1);
    fprintf(stderr, "kura: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return KURA_EXIT_USAGE;
}
