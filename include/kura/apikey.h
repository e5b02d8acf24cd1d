/* kura: API keys for `kura serve`.
 *
 * A key's secret ("kura_" + 43 base64url characters = 256 random bits) is shown once, when it is
 * created. STATE_DIR/apikeys.json (0600) stores, per key, only its name, role, creation time and
 * a keyed BLAKE2b-256 hash of the secret under the node's "apikey" data key (kura_keys_data_key),
 * so a copy of the file without the unlocked key hierarchy neither reveals nor verifies secrets.
 * Checking a presented secret hashes it once and compares against every stored hash in constant
 * time (sodium_memcmp, no early exit). Writers take an flock on STATE_DIR/apikeys.lock and
 * replace the file atomically; a running server re-reads it when it changes, so a revocation
 * takes effect at the next request. */
#ifndef KURA_APIKEY_H
#define KURA_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KURA_APIKEY_SECRET_LEN 49 /* "kura_" + 43 base64url + NUL */
#define KURA_APIKEY_MAX_NAME 64   /* bytes in a key name: [A-Za-z0-9._-] */
#define KURA_APIKEY_MAX_KEYS 4096 /* keys in one store */

enum kura_apikey_role { KURA_APIKEY_USER = 0, KURA_APIKEY_ADMIN = 1 };

/* "user" / "admin". */
const char *kura_apikey_role_name(enum kura_apikey_role r);
/* Parses "user" / "admin"; false otherwise. */
bool kura_apikey_role_parse(const char *s, enum kura_apikey_role *out /* OUT */);

/* One key as listed (no secret, no hash). */
struct kura_apikey_info {
    char name[KURA_APIKEY_MAX_NAME + 1];
    enum kura_apikey_role role;
    char created[32]; /* UTC, ISO 8601 */
    char id[17];      /* 16 hex: a public identifier derived from the hash (for logs) */
};

struct kura_apikeys;

/* Opens the store of state_dir with the unlocked keys (borrowed; must outlive the store); a
 * missing file is an empty store. Caller destroys *out. */
enum kura_err kura_apikeys_open(const char *state_dir, struct kura_keys *keys,
                                struct kura_apikeys **out /* OUT */, struct kura_errbuf *eb);
void kura_apikeys_destroy(struct kura_apikeys *ks); /* NULL is a no-op */

/* Creates a key: KURA_ERR_INVALID for a bad name, a duplicate name or an existing name.
 * Writes the secret (NUL-terminated) to secret_out and the stored entry to *info (may be NULL).
 * The caller wipes secret_out after showing it. */
enum kura_err kura_apikeys_create(struct kura_apikeys *ks, const char *name,
                                  enum kura_apikey_role role,
                                  char secret_out[KURA_APIKEY_SECRET_LEN] /* OUT */,
                                  struct kura_apikey_info *info /* OUT, may be NULL */,
                                  struct kura_errbuf *eb);

/* Removes a key; KURA_ERR_NOTFOUND when no key has that name. */
enum kura_err kura_apikeys_revoke(struct kura_apikeys *ks, const char *name,
                                  struct kura_apikey_info *info /* OUT, may be NULL */,
                                  struct kura_errbuf *eb);

/* The keys, in creation order: *out is malloc'd (caller frees), *n its length. Re-reads the
 * file when it changed. */
enum kura_err kura_apikeys_list(struct kura_apikeys *ks, struct kura_apikey_info **out /* OUT */,
                                size_t *n /* OUT */, struct kura_errbuf *eb);

/* Checks a presented secret (any bytes, any length). KURA_OK and *info filled when it matches a
 * stored key; KURA_ERR_CRYPTO when it matches none; I/O or format errors when the store changed
 * on disk and cannot be re-read (the old contents stay in use and the error is reported).
 * Thread-safe. */
enum kura_err kura_apikeys_check(struct kura_apikeys *ks, const char *secret, size_t len,
                                 struct kura_apikey_info *info /* OUT */, struct kura_errbuf *eb);

#ifdef __cplusplus
}
#endif
#endif
