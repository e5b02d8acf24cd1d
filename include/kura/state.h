/* kura: the node's state directory (keys/, audit/), private file helpers, secret buffers and
 * passphrase acquisition.
 *
 * Layout:   DIR/keys/keys.json    key file (0600), see docs/keys-and-audit.md
 *           DIR/audit/audit.log   the audit log (JSON Lines)
 *           DIR/audit/head.json   signed pointer to the last checkpoint
 * Directories are created 0700 and files 0600; secret-bearing files and directories that other
 * users could read are refused. */
#ifndef KURA_STATE_H
#define KURA_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A secret byte string in sodium_malloc'd memory (guard pages, mlock'd, excluded from core
 * dumps with MADV_DONTDUMP). data[len] is always 0 so text secrets can be used as C strings.
 * Created by the functions below; destroy wipes and frees. Not thread-safe per object. */
struct kura_secret {
    unsigned char *data;
    size_t len;
    size_t cap; /* allocated bytes (>= len); internal, wiped on destroy */
};

/* Allocates a zeroed secret of len bytes (len may be 0). */
enum kura_err kura_secret_create(size_t len, struct kura_secret **out /* OUT */);
/* Copies len bytes into a new secret. */
enum kura_err kura_secret_from(const void *p, size_t len, struct kura_secret **out /* OUT */);
/* Wipes and frees; NULL is a no-op. */
void kura_secret_destroy(struct kura_secret *s);

/* Resolves the state directory: cli_dir when non-NULL, else $KURA_STATE_DIR, else
 * $XDG_DATA_HOME/kura, else $HOME/.local/share/kura. Writes a NUL-terminated path. */
enum kura_err kura_state_resolve(const char *cli_dir, char *out /* OUT */, size_t out_len,
                                 struct kura_errbuf *eb);

/* Joins dir and rel ("keys/keys.json"); fails with KURA_ERR_RANGE if it does not fit. */
enum kura_err kura_state_path(const char *dir, const char *rel, char *out /* OUT */,
                              size_t out_len, struct kura_errbuf *eb);

/* Creates dir (and missing parents) with mode 0700. An existing directory must be owned by
 * the effective user and, when `private_` is true, not accessible by group or others. */
enum kura_err kura_state_mkdir(const char *dir, bool private_, struct kura_errbuf *eb);

/* Checks an open file: a regular file owned by the effective user, not readable or writable by
 * group or others (the message says how to fix it). `what` names the file in the message. */
enum kura_err kura_state_check_private_fd(int fd, const char *path, struct kura_errbuf *eb);

/* Reads a whole private file (checked with kura_state_check_private_fd) of at most max_len
 * bytes into a new secret. KURA_ERR_NOTFOUND when absent. */
enum kura_err kura_state_read_private(const char *path, size_t max_len,
                                      struct kura_secret **out /* OUT */, struct kura_errbuf *eb);

/* Reads a whole file of at most max_len bytes into malloc'd memory (NUL-terminated; caller
 * frees). No permission requirement. KURA_ERR_NOTFOUND when absent. */
enum kura_err kura_state_read_file(const char *path, size_t max_len, char **out /* OUT */,
                                   size_t *out_len /* OUT */, struct kura_errbuf *eb);

/* Replaces path atomically with data: writes path.tmp (0600, O_EXCL), fsyncs it, renames it
 * over path and fsyncs the directory. After a crash either the old or the new file exists. */
enum kura_err kura_state_write_atomic(const char *path, const void *data, size_t len,
                                      struct kura_errbuf *eb);

/* fsyncs the directory containing path (after a create or rename). */
enum kura_err kura_state_sync_parent(const char *path, struct kura_errbuf *eb);

/* Where a passphrase comes from, in priority order: an explicit file, an inherited file
 * descriptor, the environment variable KURA_PASSPHRASE, an interactive prompt on /dev/tty. */
struct kura_passphrase_source {
    const char *file;    /* --passphrase-file: first line of a private (0600) file, or NULL */
    int fd;              /* --passphrase-fd: read up to EOF/newline, or -1 */
    const char *env;     /* environment variable name, NULL = "KURA_PASSPHRASE" */
    bool allow_prompt;   /* prompt on the terminal when no other source is set */
    const char *prompt;  /* prompt text, NULL = "passphrase: " */
    bool confirm;        /* prompt twice and require equal answers (new passphrases) */
};

/* Acquires a passphrase into a new secret (one trailing "\n" or "\r\n" removed). Fails with
 * KURA_ERR_NOTFOUND when no source is available, KURA_ERR_INVALID when it is empty or longer
 * than KURA_MAX_PASSPHRASE. The passphrase never appears in messages. */
enum kura_err kura_state_passphrase(const struct kura_passphrase_source *src,
                                    struct kura_secret **out /* OUT */, struct kura_errbuf *eb);

/* Best effort for processes holding secrets: RLIMIT_CORE = 0 and PR_SET_DUMPABLE = 0. */
void kura_state_no_core_dumps(void);

/* "local:<user name>" of the effective user (or "local:uid:<n>"). */
void kura_state_local_actor(char *out /* OUT */, size_t out_len);

#ifdef __cplusplus
}
#endif
#endif
