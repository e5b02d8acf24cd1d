/* Options shared by the commands that use the state directory and the keys: --state-dir,
 * --passphrase-file, --passphrase-fd; unlocking; recording CLI actions in the audit log. */
#ifndef KURA_CLI_STATE_H
#define KURA_CLI_STATE_H

#include <stdbool.h>

#include "core/limits.h"
#include "kura/audit.h"
#include "kura/keys.h"

struct cli_state {
    const char *cmd;           /* "keys init" ... for messages */
    const char *state_dir_opt; /* --state-dir */
    const char *pass_file;     /* --passphrase-file */
    int pass_fd;               /* --passphrase-fd, -1 */
    char dir[KURA_MAX_PATH];   /* resolved */
    char actor[256];           /* local:<user> */
};

#define CLI_STATE_HELP                                                                       \
    "  --state-dir DIR        state directory (else $KURA_STATE_DIR, else\n"                \
    "                         $XDG_DATA_HOME/kura, else ~/.local/share/kura)\n"              \
    "  --passphrase-file F    read the passphrase from the first line of F (mode 0600)\n"    \
    "  --passphrase-fd N      read the passphrase from file descriptor N\n"                 \
    "                         (else $KURA_PASSPHRASE, else a prompt on the terminal)\n"

void cli_state_init(struct cli_state *s, const char *cmd);
/* Consumes argv[*i] (and its value) when it is a shared option: returns 1; 0 when it is not;
 * -1 on a usage error (message printed). */
int cli_state_option(struct cli_state *s, int argc, char **argv, int *i);
/* Resolves the state directory and the actor; returns an exit code (0 = ok). */
int cli_state_resolve(struct cli_state *s);
/* Acquires a passphrase (prompt allowed on a terminal); returns an exit code. */
int cli_state_passphrase(struct cli_state *s, const char *prompt, bool confirm,
                         struct kura_secret **out);
/* Unlocks the keys; returns an exit code. */
int cli_state_unlock(struct cli_state *s, struct kura_keys **out);
/* Appends one record for a CLI action to the audit log (opening and closing it); prints a
 * warning about a sealed torn tail. Returns an exit code. */
int cli_state_audit(struct cli_state *s, struct kura_keys *k, const char *action,
                    const char *object, const char *outcome, const char *details_json,
                    uint64_t *seq);

#endif
