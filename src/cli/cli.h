/* The `kura` command: each subcommand lives in its own cmd_*.c and registers itself with
 * KURA_CLI_COMMAND, so adding one touches no shared file. Exit codes: 0 ok, 1 runtime error,
 * 2 usage error. The CLI is the only place that may call exit(). */
#ifndef KURA_CLI_H
#define KURA_CLI_H

#include <stdbool.h>
#include <stdint.h>

#define KURA_EXIT_OK 0
#define KURA_EXIT_RUNTIME 1
#define KURA_EXIT_USAGE 2

typedef int (*kura_cli_fn)(int argc, char **argv); /* argv[0] is the subcommand name */

struct kura_cli_command {
    const char *name;
    const char *summary;
    kura_cli_fn fn;
};

void kura_cli_register(const struct kura_cli_command *cmd);

#define KURA_CLI_COMMAND(ident, name_, summary_, fn_)                                     \
    static const struct kura_cli_command kura_cli_cmd_##ident = {name_, summary_, fn_};   \
    __attribute__((constructor)) static void kura_cli_reg_##ident(void)                   \
    {                                                                                     \
        kura_cli_register(&kura_cli_cmd_##ident);                                         \
    }

/* Option parsing helpers: strict numeric parsing (whole string, range-checked). Print a usage
 * error naming the option and return false on bad input. */
bool kura_cli_parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out);
bool kura_cli_parse_f64(const char *opt, const char *s, double lo, double hi, double *out);
/* True if argv[i] is -h/--help. */
bool kura_cli_is_help(const char *arg);
/* Fetches the value of an option that takes one (argv[*i+1]); prints a usage error if missing. */
const char *kura_cli_optarg(int argc, char **argv, int *i);

#endif
