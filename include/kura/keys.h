/* kura: the node's operator-held key hierarchy (libsodium).
 *
 *   passphrase --Argon2id(salt, opslimit, memlimit)--> KEK
 *   KEK   wraps the master key        (XChaCha20-Poly1305, AD binds the master id)
 *   master wraps the Ed25519 node signing key and every data key ("audit", "apikey",
 *   "vault:<name>"), each with its own nonce and the purpose as associated data.
 *
 * Rotation replaces the master key (and optionally the passphrase) and re-wraps the signing and
 * data keys, which stay the same: data encrypted under a data key remains readable.
 * Everything lives in STATE_DIR/keys/keys.json (0600, directory 0700); files or directories
 * that group/others can access are refused. Unwrapped secrets live only in kura_secret memory.
 * Format and threat model: docs/keys-and-audit.md. */
#ifndef KURA_KEYS_H
#define KURA_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/state.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KURA_KEYS_PUBLIC_LEN 32
#define KURA_KEYS_SIG_LEN 64
#define KURA_KEYS_DATA_KEY_LEN 32
#define KURA_KEYS_PUBLIC_TEXT_LEN 73 /* "ed25519:" + 64 hex + NUL */
#define KURA_KEYS_ID_LEN 17          /* 16 hex + NUL */

/* Argon2id cost. Zero fields take the defaults: opslimit 3, memlimit 256 MiB (libsodium's
 * "moderate"), or, for tests only, $KURA_ARGON2_OPSLIMIT / $KURA_ARGON2_MEMLIMIT (bytes).
 * The parameters used are recorded in the key file. */
struct kura_keys_params {
    uint64_t opslimit;
    uint64_t memlimit;
};

struct kura_keys; /* an unlocked key set */

/* Creates the key hierarchy under state_dir/keys/: a random master key wrapped under the
 * passphrase, a node signing key and the "audit" and "apikey" data keys. Fails with
 * KURA_ERR_INVALID when a key file already exists. params may be NULL. */
enum kura_err kura_keys_init(const char *state_dir, const struct kura_secret *passphrase,
                             const struct kura_keys_params *params, struct kura_errbuf *eb);

/* Unlocks the key file with the passphrase. KURA_ERR_CRYPTO for a wrong passphrase,
 * KURA_ERR_PERM for unsafe permissions, KURA_ERR_NOTFOUND when not initialised,
 * KURA_ERR_FORMAT / KURA_ERR_TAMPER for a damaged file. Caller destroys *out. */
enum kura_err kura_keys_open(const char *state_dir, const struct kura_secret *passphrase,
                             struct kura_keys **out /* OUT */, struct kura_errbuf *eb);

/* Wipes every secret and frees; NULL is a no-op. */
void kura_keys_destroy(struct kura_keys *k);

/* Replaces the master key: unlocks with old_pass, wraps a new master key under new_pass (NULL =
 * keep the old passphrase, with a fresh salt) and re-wraps the signing and data keys.
 * The file is replaced atomically. Writes the old and new master ids when non-NULL. */
enum kura_err kura_keys_rotate(const char *state_dir, const struct kura_secret *old_pass,
                               const struct kura_secret *new_pass,
                               const struct kura_keys_params *params,
                               char old_id[KURA_KEYS_ID_LEN] /* OUT, may be NULL */,
                               char new_id[KURA_KEYS_ID_LEN] /* OUT, may be NULL */,
                               struct kura_errbuf *eb);

/* The 32-byte data key for a purpose ("audit", "apikey", "vault:<name>"; [a-z0-9:._-], at most
 * KURA_KEYS_MAX_PURPOSE bytes). With create, a missing key is generated and saved. The caller
 * destroys *out. Thread-safe. */
enum kura_err kura_keys_data_key(struct kura_keys *k, const char *purpose, bool create,
                                 struct kura_secret **out /* OUT */, struct kura_errbuf *eb);

/* Ed25519 detached signature of msg with the node signing key. Thread-safe. */
void kura_keys_sign(const struct kura_keys *k, const void *msg, size_t len,
                    uint8_t sig[KURA_KEYS_SIG_LEN] /* OUT */);

/* The node's signing public key and its id (16 hex of BLAKE2b(pk)). */
void kura_keys_public(const struct kura_keys *k, uint8_t pk[KURA_KEYS_PUBLIC_LEN] /* OUT */);
const char *kura_keys_master_id(const struct kura_keys *k);

/* Reads the signing public key from the key file without unlocking it. */
enum kura_err kura_keys_read_public(const char *state_dir,
                                    uint8_t pk[KURA_KEYS_PUBLIC_LEN] /* OUT */,
                                    struct kura_errbuf *eb);

/* A JSON summary of the key file (ids, KDF parameters, purposes, dates; no secrets).
 * Caller frees *out. */
enum kura_err kura_keys_status(const char *state_dir, char **out /* OUT */,
                               struct kura_errbuf *eb);

/* True when sig is a valid signature of msg under pk. Thread-safe. */
bool kura_keys_verify(const uint8_t pk[KURA_KEYS_PUBLIC_LEN], const void *msg, size_t len,
                      const uint8_t sig[KURA_KEYS_SIG_LEN]);

/* "ed25519:<64 hex>" */
void kura_keys_format_public(const uint8_t pk[KURA_KEYS_PUBLIC_LEN],
                             char out[KURA_KEYS_PUBLIC_TEXT_LEN] /* OUT */);
/* Accepts "ed25519:<64 hex>" or the bare 64 hex digits (surrounding whitespace ignored). */
enum kura_err kura_keys_parse_public(const char *text, uint8_t pk[KURA_KEYS_PUBLIC_LEN] /* OUT */,
                                     struct kura_errbuf *eb);
/* 16 hex digits of BLAKE2b-64(pk). */
void kura_keys_key_id(const uint8_t pk[KURA_KEYS_PUBLIC_LEN], char out[KURA_KEYS_ID_LEN] /* OUT */);

#ifdef __cplusplus
}
#endif
#endif
