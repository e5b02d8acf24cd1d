/* The operator-held key hierarchy: passphrase -> KEK -> master -> signing key + data keys. */
#include "kura/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/timefmt.h"

#define KEYS_FORMAT "kura-keys-1"
#define KEY_LEN 32
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SALT_LEN crypto_pwhash_SALTBYTES

struct kura_keys {
    char keys_path[KURA_MAX_PATH];
    char lock_path[KURA_MAX_PATH];
    char master_id[KURA_KEYS_ID_LEN];
    struct kura_secret *master;  /* 32 bytes */
    struct kura_secret *sign_sk; /* 64 bytes, Ed25519 secret key */
    uint8_t pk[KURA_KEYS_PUBLIC_LEN];
    json_t *doc; /* the key file as last read or written (wrapped keys only) */
    pthread_mutex_t mu;
};

/* ---- small helpers ---- */

static enum kura_err paths(const char *dir, char *keys_dir, char *keys_path, char *lock_path,
                           struct kura_errbuf *eb)
{
    enum kura_err e;
    if ((e = kura_state_path(dir, "keys", keys_dir, KURA_MAX_PATH, eb)) ||
        (e = kura_state_path(dir, "keys/keys.json", keys_path, KURA_MAX_PATH, eb)) ||
        (e = kura_state_path(dir, "keys/keys.lock", lock_path, KURA_MAX_PATH, eb)))
        return e;
    return KURA_OK;
}

/* Opens (creating) the lock file and takes an exclusive lock; returns the fd or -1. */
static int lock_keys(const char *lock_path, struct kura_errbuf *eb)
{
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        kura_err_set(eb, KURA_ERR_IO, "%s: %s", lock_path, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            kura_err_set(eb, KURA_ERR_IO, "lock %s: %s", lock_path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void unlock_keys(int fd)
{
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
    char buf[2 * 256 + 1];
    if (n > 256)
        return NULL;
    sodium_bin2hex(buf, sizeof buf, p, n);
    return json_string(buf);
}

/* Reads obj[name] as exactly n bytes of lowercase hex. */
static enum kura_err get_hex(const json_t *obj, const char *ctx, const char *name, uint8_t *out,
                             size_t n, struct kura_errbuf *eb)
{
    const json_t *v = json_object_get(obj, name);
    const char *s = json_string_value(v);
    if (!s || strlen(s) != 2 * n)
        return kura_err_set(eb, KURA_ERR_FORMAT, "key file: %s.%s: missing or not %zu hex bytes",
                            ctx, name, n);
    for (size_t i = 0; i < 2 * n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return kura_err_set(eb, KURA_ERR_FORMAT, "key file: %s.%s: not lowercase hex", ctx,
                                name);
    size_t bin_len = 0;
    if (sodium_hex2bin(out, n, s, 2 * n, NULL, &bin_len, NULL) != 0 || bin_len != n)
        return kura_err_set(eb, KURA_ERR_FORMAT, "key file: %s.%s: bad hex", ctx, name);
    return KURA_OK;
}

static bool purpose_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > KURA_KEYS_MAX_PURPOSE)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

void kura_keys_key_id(const uint8_t pk[KURA_KEYS_PUBLIC_LEN], char out[KURA_KEYS_ID_LEN])
{
    uint8_t h[8];
    crypto_generichash(h, sizeof h, pk, KURA_KEYS_PUBLIC_LEN, NULL, 0);
    sodium_bin2hex(out, KURA_KEYS_ID_LEN, h, sizeof h);
}

void kura_keys_format_public(const uint8_t pk[KURA_KEYS_PUBLIC_LEN],
                             char out[KURA_KEYS_PUBLIC_TEXT_LEN])
{
    memcpy(out, "ed25519:", 8);
    sodium_bin2hex(out + 8, KURA_KEYS_PUBLIC_TEXT_LEN - 8, pk, KURA_KEYS_PUBLIC_LEN);
}

enum kura_err kura_keys_parse_public(const char *text, uint8_t pk[KURA_KEYS_PUBLIC_LEN],
                                     struct kura_errbuf *eb)
{
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
        text++;
    if (strncmp(text, "ed25519:", 8) == 0)
        text += 8;
    size_t n = strlen(text);
    while (n && (text[n - 1] == ' ' || text[n - 1] == '\t' || text[n - 1] == '\n' ||
                 text[n - 1] == '\r'))
        n--;
    size_t bin_len = 0;
    if (n != 2 * KURA_KEYS_PUBLIC_LEN ||
        sodium_hex2bin(pk, KURA_KEYS_PUBLIC_LEN, text, n, NULL, &bin_len, NULL) != 0 ||
        bin_len != KURA_KEYS_PUBLIC_LEN)
        return kura_err_set(eb, KURA_ERR_INVALID,
                            "public key: expected 'ed25519:' followed by 64 hex digits");
    return KURA_OK;
}

bool kura_keys_verify(const uint8_t pk[KURA_KEYS_PUBLIC_LEN], const void *msg, size_t len,
                      const uint8_t sig[KURA_KEYS_SIG_LEN])
{
    if (sodium_init() < 0)
        return false;
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}

static enum kura_err resolve_params(const struct kura_keys_params *in, uint64_t *ops,
                                    uint64_t *mem, struct kura_errbuf *eb)
{
    *ops = crypto_pwhash_OPSLIMIT_MODERATE;
    *mem = crypto_pwhash_MEMLIMIT_MODERATE;
    /* Test-only override (documented in docs/keys-and-audit.md): keeps the suite fast. */
    const char *eo = getenv("KURA_ARGON2_OPSLIMIT"), *em = getenv("KURA_ARGON2_MEMLIMIT");
    if (eo && *eo) {
        char *end;
        unsigned long long v = strtoull(eo, &end, 10);
        if (*end || v == 0)
            return kura_err_set(eb, KURA_ERR_INVALID, "KURA_ARGON2_OPSLIMIT: not a number");
        *ops = v;
    }
    if (em && *em) {
        char *end;
        unsigned long long v = strtoull(em, &end, 10);
        if (*end || v == 0)
            return kura_err_set(eb, KURA_ERR_INVALID, "KURA_ARGON2_MEMLIMIT: not a number");
        *mem = v;
    }
    if (in && in->opslimit)
        *ops = in->opslimit;
    if (in && in->memlimit)
        *mem = in->memlimit;
    if (*ops < crypto_pwhash_OPSLIMIT_MIN || *ops > KURA_ARGON2_MAX_OPSLIMIT ||
        *mem < crypto_pwhash_MEMLIMIT_MIN || *mem > KURA_ARGON2_MAX_MEMLIMIT)
        return kura_err_set(eb, KURA_ERR_RANGE,
                            "Argon2id parameters out of range (opslimit %" PRIu64
                            ", memlimit %" PRIu64 ")", *ops, *mem);
    return KURA_OK;
}

/* KEK = Argon2id(passphrase, salt). */
static enum kura_err derive_kek(const struct kura_secret *pass, const uint8_t salt[SALT_LEN],
                                uint64_t ops, uint64_t mem, struct kura_secret **kek,
                                struct kura_errbuf *eb)
{
    enum kura_err e = kura_secret_create(KEY_LEN, kek);
    if (e)
        return kura_err_set(eb, e, "out of secure memory");
    if (crypto_pwhash((*kek)->data, KEY_LEN, (const char *)pass->data, pass->len, salt, ops,
                      (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        kura_secret_destroy(*kek);
        *kek = NULL;
        return kura_err_set(eb, KURA_ERR_NOMEM, "Argon2id failed (memlimit %" PRIu64 " bytes)",
                            mem);
    }
    return KURA_OK;
}

/* Wraps a secret under key: returns {"nonce": hex, "wrapped": hex}. */
static json_t *wrap(const uint8_t *key, const uint8_t *pt, size_t len, const char *ad)
{
    uint8_t nonce[NONCE_LEN];
    uint8_t ct[64 + TAG_LEN];
    if (len > 64)
        return NULL;
    randombytes_buf(nonce, sizeof nonce);
    unsigned long long ct_len = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ct_len, pt, len, (const uint8_t *)ad,
                                               strlen(ad), NULL, nonce, key);
    json_t *o = json_object();
    json_object_set_new(o, "nonce", hex_json(nonce, sizeof nonce));
    json_object_set_new(o, "wrapped", hex_json(ct, (size_t)ct_len));
    return o;
}

/* Unwraps obj {"nonce","wrapped"} of a len-byte secret into a new secret. */
static enum kura_err unwrap(const uint8_t *key, const json_t *obj, const char *ctx, size_t len,
                            const char *ad, enum kura_err fail_code, struct kura_secret **out,
                            struct kura_errbuf *eb)
{
    *out = NULL;
    uint8_t nonce[NONCE_LEN], ct[64 + TAG_LEN];
    enum kura_err e;
    if (!json_is_object(obj))
        return kura_err_set(eb, KURA_ERR_FORMAT, "key file: %s: missing", ctx);
    if ((e = get_hex(obj, ctx, "nonce", nonce, sizeof nonce, eb)) ||
        (e = get_hex(obj, ctx, "wrapped", ct, len + TAG_LEN, eb)))
        return e;
    if ((e = kura_secret_create(len, out)))
        return kura_err_set(eb, e, "out of secure memory");
    unsigned long long pt_len = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((*out)->data, &pt_len, NULL, ct,
                                                   len + TAG_LEN, (const uint8_t *)ad,
                                                   strlen(ad), nonce, key) != 0 ||
        pt_len != len) {
        kura_secret_destroy(*out);
        *out = NULL;
        if (fail_code == KURA_ERR_CRYPTO)
            return kura_err_set(eb, KURA_ERR_CRYPTO, "wrong passphrase (the master key could "
                                                     "not be unwrapped)");
        return kura_err_set(eb, fail_code, "key file: %s: authentication failed (altered?)",
                            ctx);
    }
    return KURA_OK;
}

static void master_ad(char *ad, size_t n, const char *master_id)
{
    snprintf(ad, n, "kura-master-1|%s", master_id);
}

static void data_ad(char *ad, size_t n, const char *purpose)
{
    snprintf(ad, n, "kura-data-1|%s", purpose);
}

static void sign_ad(char *ad, size_t n, const uint8_t pk[KURA_KEYS_PUBLIC_LEN])
{
    char hex[2 * KURA_KEYS_PUBLIC_LEN + 1];
    sodium_bin2hex(hex, sizeof hex, pk, KURA_KEYS_PUBLIC_LEN);
    snprintf(ad, n, "kura-sign-1|%s", hex);
}

static enum kura_err read_doc(const char *keys_path, json_t **out, struct kura_errbuf *eb)
{
    *out = NULL;
    struct kura_secret *raw = NULL;
    enum kura_err e = kura_state_read_private(keys_path, KURA_KEYS_MAX_FILE, &raw, eb);
    if (e) {
        if (e == KURA_ERR_NOTFOUND)
            kura_err_set(eb, e, "%s: no key file (run 'kura keys init')", keys_path);
        return e;
    }
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)raw->data, raw->len, JSON_REJECT_DUPLICATES, &jerr);
    kura_secret_destroy(raw);
    if (!doc)
        return kura_err_set(eb, KURA_ERR_FORMAT, "%s: line %d: %s", keys_path, jerr.line,
                            jerr.text);
    if (!json_is_object(doc) ||
        !json_string_value(json_object_get(doc, "format")) ||
        strcmp(json_string_value(json_object_get(doc, "format")), KEYS_FORMAT) != 0) {
        json_decref(doc);
        return kura_err_set(eb, KURA_ERR_FORMAT, "%s: not a %s key file", keys_path,
                            KEYS_FORMAT);
    }
    *out = doc;
    return KURA_OK;
}

static enum kura_err write_doc(const char *keys_path, const json_t *doc, struct kura_errbuf *eb)
{
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    }
    t[n] = '\n';
    t[n + 1] = 0;
    enum kura_err e = kura_state_write_atomic(keys_path, t, n + 1, eb);
    free(t);
    return e;
}

static enum kura_err get_u64(const json_t *obj, const char *ctx, const char *name, uint64_t *out,
                             struct kura_errbuf *eb)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return kura_err_set(eb, KURA_ERR_FORMAT, "key file: %s.%s: missing or not a number",
                            ctx, name);
    *out = (uint64_t)json_integer_value(v);
    return KURA_OK;
}

/* Unlocks doc with pass: master key, signing key, master id. */
static enum kura_err unlock_doc(const json_t *doc, const struct kura_secret *pass,
                                struct kura_secret **master, struct kura_secret **sign_sk,
                                uint8_t pk[KURA_KEYS_PUBLIC_LEN], char master_id[KURA_KEYS_ID_LEN],
                                struct kura_errbuf *eb)
{
    *master = *sign_sk = NULL;
    struct kura_secret *kek = NULL;
    enum kura_err e;
    const json_t *kdf = json_object_get(doc, "kdf");
    const json_t *mo = json_object_get(doc, "master");
    const json_t *so = json_object_get(doc, "signing");
    uint8_t salt[SALT_LEN], idb[8];
    uint64_t ops = 0, mem = 0;
    char ad[256];
    const char *alg = json_string_value(json_object_get(kdf, "alg"));
    if (!alg || strcmp(alg, "argon2id13") != 0)
        return kura_err_set(eb, KURA_ERR_UNSUPPORTED, "key file: kdf.alg: expected argon2id13");
    if ((e = get_u64(kdf, "kdf", "opslimit", &ops, eb)) ||
        (e = get_u64(kdf, "kdf", "memlimit", &mem, eb)) ||
        (e = get_hex(kdf, "kdf", "salt", salt, sizeof salt, eb)) ||
        (e = get_hex(mo, "master", "id", idb, sizeof idb, eb)) ||
        (e = get_hex(so, "signing", "public", pk, KURA_KEYS_PUBLIC_LEN, eb)))
        return e;
    if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > KURA_ARGON2_MAX_OPSLIMIT ||
        mem < crypto_pwhash_MEMLIMIT_MIN || mem > KURA_ARGON2_MAX_MEMLIMIT)
        return kura_err_set(eb, KURA_ERR_RANGE, "key file: kdf parameters out of range");
    sodium_bin2hex(master_id, KURA_KEYS_ID_LEN, idb, sizeof idb);
    if ((e = derive_kek(pass, salt, ops, mem, &kek, eb)))
        return e;
    master_ad(ad, sizeof ad, master_id);
    e = unwrap(kek->data, mo, "master", KEY_LEN, ad, KURA_ERR_CRYPTO, master, eb);
    kura_secret_destroy(kek);
    if (e)
        return e;
    sign_ad(ad, sizeof ad, pk);
    if ((e = unwrap((*master)->data, so, "signing", crypto_sign_SECRETKEYBYTES, ad,
                    KURA_ERR_TAMPER, sign_sk, eb)))
        goto fail;
    uint8_t derived[KURA_KEYS_PUBLIC_LEN];
    crypto_sign_ed25519_sk_to_pk(derived, (*sign_sk)->data);
    if (sodium_memcmp(derived, pk, KURA_KEYS_PUBLIC_LEN) != 0) {
        e = kura_err_set(eb, KURA_ERR_TAMPER, "key file: signing.public does not match the "
                                               "signing key");
        goto fail;
    }
    return KURA_OK;
fail:
    kura_secret_destroy(*master);
    kura_secret_destroy(*sign_sk);
    *master = *sign_sk = NULL;
    return e;
}

/* Builds the kdf + master sections for a new master key under pass. */
static enum kura_err wrap_master(json_t *doc, const struct kura_secret *pass,
                                 const struct kura_secret *master, uint64_t ops, uint64_t mem,
                                 char master_id[KURA_KEYS_ID_LEN], struct kura_errbuf *eb)
{
    uint8_t salt[SALT_LEN], idb[8];
    char ad[256];
    struct kura_secret *kek = NULL;
    randombytes_buf(salt, sizeof salt);
    randombytes_buf(idb, sizeof idb);
    sodium_bin2hex(master_id, KURA_KEYS_ID_LEN, idb, sizeof idb);
    enum kura_err e = derive_kek(pass, salt, ops, mem, &kek, eb);
    if (e)
        return e;
    json_t *kdf = json_object();
    json_object_set_new(kdf, "alg", json_string("argon2id13"));
    json_object_set_new(kdf, "opslimit", json_integer((json_int_t)ops));
    json_object_set_new(kdf, "memlimit", json_integer((json_int_t)mem));
    json_object_set_new(kdf, "salt", hex_json(salt, sizeof salt));
    json_object_set_new(doc, "kdf", kdf);
    master_ad(ad, sizeof ad, master_id);
    json_t *mo = wrap(kek->data, master->data, KEY_LEN, ad);
    kura_secret_destroy(kek);
    json_object_set_new(mo, "id", json_string(master_id));
    json_object_set_new(mo, "aead", json_string("xchacha20poly1305-ietf"));
    json_object_set_new(doc, "master", mo);
    return KURA_OK;
}

static json_t *wrap_signing(const struct kura_secret *master, const struct kura_secret *sk,
                            const uint8_t pk[KURA_KEYS_PUBLIC_LEN])
{
    char ad[256], id[KURA_KEYS_ID_LEN];
    sign_ad(ad, sizeof ad, pk);
    json_t *o = wrap(master->data, sk->data, crypto_sign_SECRETKEYBYTES, ad);
    kura_keys_key_id(pk, id);
    json_object_set_new(o, "alg", json_string("ed25519"));
    json_object_set_new(o, "public", hex_json(pk, KURA_KEYS_PUBLIC_LEN));
    json_object_set_new(o, "key_id", json_string(id));
    return o;
}

static json_t *wrap_data_key(const struct kura_secret *master, const char *purpose,
                             const uint8_t *key, const char *created)
{
    char ad[256];
    data_ad(ad, sizeof ad, purpose);
    json_t *o = wrap(master->data, key, KEY_LEN, ad);
    json_object_set_new(o, "created", json_string(created));
    return o;
}

/* ---- public API ---- */

enum kura_err kura_keys_init(const char *state_dir, const struct kura_secret *passphrase,
                             const struct kura_keys_params *params, struct kura_errbuf *eb)
{
    char keys_dir[KURA_MAX_PATH], keys_path[KURA_MAX_PATH], lock_path[KURA_MAX_PATH];
    struct kura_secret *master = NULL, *sk = NULL, *dk = NULL;
    json_t *doc = NULL;
    int lfd = -1;
    uint64_t ops = 0, mem = 0;
    char now[KURA_TIME_LEN], master_id[KURA_KEYS_ID_LEN];
    uint8_t pk[KURA_KEYS_PUBLIC_LEN];
    enum kura_err e;
    if (sodium_init() < 0)
        return kura_err_set(eb, KURA_ERR_INTERNAL, "libsodium failed to initialise");
    if (!passphrase || passphrase->len == 0)
        return kura_err_set(eb, KURA_ERR_INVALID, "empty passphrase");
    if ((e = resolve_params(params, &ops, &mem, eb)) ||
        (e = paths(state_dir, keys_dir, keys_path, lock_path, eb)) ||
        (e = kura_state_mkdir(state_dir, true, eb)) || (e = kura_state_mkdir(keys_dir, true, eb)))
        return e;
    if ((lfd = lock_keys(lock_path, eb)) < 0)
        return KURA_ERR_IO;
    if (access(keys_path, F_OK) == 0) {
        e = kura_err_set(eb, KURA_ERR_INVALID, "%s already exists: keys are initialised "
                                               "(use 'kura keys rotate' to change them)",
                         keys_path);
        goto fail;
    }
    kura_time_now(now);
    if ((e = kura_secret_create(KEY_LEN, &master)) ||
        (e = kura_secret_create(crypto_sign_SECRETKEYBYTES, &sk)) ||
        (e = kura_secret_create(KEY_LEN, &dk))) {
        kura_err_set(eb, e, "out of secure memory");
        goto fail;
    }
    crypto_aead_xchacha20poly1305_ietf_keygen(master->data);
    crypto_sign_keypair(pk, sk->data);
    doc = json_object();
    json_object_set_new(doc, "format", json_string(KEYS_FORMAT));
    json_object_set_new(doc, "generation", json_integer(1));
    json_object_set_new(doc, "created", json_string(now));
    json_object_set_new(doc, "rotated", json_string(now));
    if ((e = wrap_master(doc, passphrase, master, ops, mem, master_id, eb)))
        goto fail;
    json_object_set_new(doc, "signing", wrap_signing(master, sk, pk));
    json_t *dks = json_object();
    static const char *const initial[] = {"audit", "apikey"};
    for (size_t i = 0; i < sizeof initial / sizeof initial[0]; i++) {
        randombytes_buf(dk->data, KEY_LEN);
        json_object_set_new(dks, initial[i], wrap_data_key(master, initial[i], dk->data, now));
    }
    json_object_set_new(doc, "data_keys", dks);
    e = write_doc(keys_path, doc, eb);
fail:
    json_decref(doc);
    kura_secret_destroy(master);
    kura_secret_destroy(sk);
    kura_secret_destroy(dk);
    unlock_keys(lfd);
    return e;
}

enum kura_err kura_keys_open(const char *state_dir, const struct kura_secret *passphrase,
                             struct kura_keys **out, struct kura_errbuf *eb)
{
    *out = NULL;
    char keys_dir[KURA_MAX_PATH];
    enum kura_err e;
    if (sodium_init() < 0)
        return kura_err_set(eb, KURA_ERR_INTERNAL, "libsodium failed to initialise");
    if (!passphrase)
        return kura_err_set(eb, KURA_ERR_INVALID, "no passphrase");
    struct kura_keys *k = calloc(1, sizeof *k);
    if (!k)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&k->mu, NULL);
    if ((e = paths(state_dir, keys_dir, k->keys_path, k->lock_path, eb)))
        goto fail;
    if ((e = kura_state_mkdir(keys_dir, true, eb)))
        goto fail;
    if ((e = read_doc(k->keys_path, &k->doc, eb)))
        goto fail;
    if ((e = unlock_doc(k->doc, passphrase, &k->master, &k->sign_sk, k->pk, k->master_id, eb)))
        goto fail;
    *out = k;
    return KURA_OK;
fail:
    kura_keys_destroy(k);
    return e;
}

void kura_keys_destroy(struct kura_keys *k)
{
    if (!k)
        return;
    kura_secret_destroy(k->master);
    kura_secret_destroy(k->sign_sk);
    json_decref(k->doc);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

enum kura_err kura_keys_rotate(const char *state_dir, const struct kura_secret *old_pass,
                               const struct kura_secret *new_pass,
                               const struct kura_keys_params *params,
                               char old_id[KURA_KEYS_ID_LEN], char new_id[KURA_KEYS_ID_LEN],
                               struct kura_errbuf *eb)
{
    char keys_dir[KURA_MAX_PATH], keys_path[KURA_MAX_PATH], lock_path[KURA_MAX_PATH];
    char master_id[KURA_KEYS_ID_LEN], new_master_id[KURA_KEYS_ID_LEN], now[KURA_TIME_LEN];
    struct kura_secret *master = NULL, *sk = NULL, *new_master = NULL;
    json_t *doc = NULL;
    uint8_t pk[KURA_KEYS_PUBLIC_LEN];
    uint64_t ops = 0, mem = 0;
    int lfd = -1;
    enum kura_err e;
    if (sodium_init() < 0)
        return kura_err_set(eb, KURA_ERR_INTERNAL, "libsodium failed to initialise");
    if (!new_pass)
        new_pass = old_pass;
    if (!old_pass || new_pass->len == 0)
        return kura_err_set(eb, KURA_ERR_INVALID, "empty passphrase");
    if ((e = resolve_params(params, &ops, &mem, eb)) ||
        (e = paths(state_dir, keys_dir, keys_path, lock_path, eb)) ||
        (e = kura_state_mkdir(keys_dir, true, eb)))
        return e;
    if ((lfd = lock_keys(lock_path, eb)) < 0)
        return KURA_ERR_IO;
    if ((e = read_doc(keys_path, &doc, eb)) ||
        (e = unlock_doc(doc, old_pass, &master, &sk, pk, master_id, eb)))
        goto fail;
    if ((e = kura_secret_create(KEY_LEN, &new_master))) {
        kura_err_set(eb, e, "out of secure memory");
        goto fail;
    }
    crypto_aead_xchacha20poly1305_ietf_keygen(new_master->data);
    /* Re-wrap every data key: same key bytes, new master. */
    json_t *old_dks = json_object_get(doc, "data_keys");
    if (!json_is_object(old_dks)) {
        e = kura_err_set(eb, KURA_ERR_FORMAT, "key file: data_keys: missing");
        goto fail;
    }
    json_t *dks = json_object();
    const char *purpose;
    json_t *v;
    json_object_foreach(old_dks, purpose, v)
    {
        char ad[256];
        struct kura_secret *tmp = NULL;
        if (!purpose_ok(purpose)) {
            json_decref(dks);
            e = kura_err_set(eb, KURA_ERR_FORMAT, "key file: bad data key purpose");
            goto fail;
        }
        data_ad(ad, sizeof ad, purpose);
        if ((e = unwrap(master->data, v, purpose, KEY_LEN, ad, KURA_ERR_TAMPER, &tmp, eb))) {
            json_decref(dks);
            goto fail;
        }
        const char *created = json_string_value(json_object_get(v, "created"));
        json_object_set_new(dks, purpose,
                            wrap_data_key(new_master, purpose, tmp->data, created ? created : ""));
        kura_secret_destroy(tmp);
    }
    kura_time_now(now);
    json_t *nd = json_object();
    json_object_set_new(nd, "format", json_string(KEYS_FORMAT));
    json_int_t gen = json_integer_value(json_object_get(doc, "generation"));
    json_object_set_new(nd, "generation", json_integer(gen + 1));
    json_object_set(nd, "created", json_object_get(doc, "created"));
    json_object_set_new(nd, "rotated", json_string(now));
    if ((e = wrap_master(nd, new_pass, new_master, ops, mem, new_master_id, eb))) {
        json_decref(nd);
        json_decref(dks);
        goto fail;
    }
    json_object_set_new(nd, "signing", wrap_signing(new_master, sk, pk));
    json_object_set_new(nd, "data_keys", dks);
    e = write_doc(keys_path, nd, eb);
    json_decref(nd);
    if (!e) {
        if (old_id)
            memcpy(old_id, master_id, KURA_KEYS_ID_LEN);
        if (new_id)
            memcpy(new_id, new_master_id, KURA_KEYS_ID_LEN);
    }
fail:
    json_decref(doc);
    kura_secret_destroy(master);
    kura_secret_destroy(new_master);
    kura_secret_destroy(sk);
    unlock_keys(lfd);
    return e;
}

enum kura_err kura_keys_data_key(struct kura_keys *k, const char *purpose, bool create,
                                 struct kura_secret **out, struct kura_errbuf *eb)
{
    *out = NULL;
    char ad[256], now[KURA_TIME_LEN];
    enum kura_err e;
    json_t *doc = NULL;
    int lfd = -1;
    if (!purpose || !purpose_ok(purpose))
        return kura_err_set(eb, KURA_ERR_INVALID,
                            "data key purpose must be 1..%d characters of [a-z0-9:._-]",
                            KURA_KEYS_MAX_PURPOSE);
    data_ad(ad, sizeof ad, purpose);
    pthread_mutex_lock(&k->mu);
    const json_t *v = json_object_get(json_object_get(k->doc, "data_keys"), purpose);
    if (v) {
        e = unwrap(k->master->data, v, purpose, KEY_LEN, ad, KURA_ERR_TAMPER, out, eb);
        pthread_mutex_unlock(&k->mu);
        return e;
    }
    if (!create) {
        pthread_mutex_unlock(&k->mu);
        return kura_err_set(eb, KURA_ERR_NOTFOUND, "no data key for '%s'", purpose);
    }
    /* Create: re-read the file under the lock so a concurrent rotation or creation elsewhere
     * is not overwritten. */
    if ((lfd = lock_keys(k->lock_path, eb)) < 0) {
        e = KURA_ERR_IO;
        goto fail;
    }
    if ((e = read_doc(k->keys_path, &doc, eb)))
        goto fail;
    const char *fid = json_string_value(json_object_get(json_object_get(doc, "master"), "id"));
    if (!fid || strcmp(fid, k->master_id) != 0) {
        e = kura_err_set(eb, KURA_ERR_BUSY, "keys were rotated since they were unlocked; "
                                            "unlock them again");
        goto fail;
    }
    json_t *dks = json_object_get(doc, "data_keys");
    if (!json_is_object(dks) || json_object_size(dks) >= KURA_KEYS_MAX_DATA_KEYS) {
        e = kura_err_set(eb, KURA_ERR_RANGE, "key file: data_keys missing or full");
        goto fail;
    }
    v = json_object_get(dks, purpose);
    if (!v) {
        if ((e = kura_secret_create(KEY_LEN, out)))
            goto fail;
        randombytes_buf((*out)->data, KEY_LEN);
        kura_time_now(now);
        json_object_set_new(dks, purpose, wrap_data_key(k->master, purpose, (*out)->data, now));
        if ((e = write_doc(k->keys_path, doc, eb)))
            goto fail;
    } else if ((e = unwrap(k->master->data, v, purpose, KEY_LEN, ad, KURA_ERR_TAMPER, out, eb))) {
        goto fail;
    }
    json_decref(k->doc);
    k->doc = doc;
    unlock_keys(lfd);
    pthread_mutex_unlock(&k->mu);
    return KURA_OK;
fail:
    kura_secret_destroy(*out);
    *out = NULL;
    json_decref(doc);
    unlock_keys(lfd);
    pthread_mutex_unlock(&k->mu);
    return e;
}

void kura_keys_sign(const struct kura_keys *k, const void *msg, size_t len,
                    uint8_t sig[KURA_KEYS_SIG_LEN])
{
    crypto_sign_detached(sig, NULL, msg, len, k->sign_sk->data);
}

void kura_keys_public(const struct kura_keys *k, uint8_t pk[KURA_KEYS_PUBLIC_LEN])
{
    memcpy(pk, k->pk, KURA_KEYS_PUBLIC_LEN);
}

const char *kura_keys_master_id(const struct kura_keys *k)
{
    return k->master_id;
}

enum kura_err kura_keys_read_public(const char *state_dir, uint8_t pk[KURA_KEYS_PUBLIC_LEN],
                                    struct kura_errbuf *eb)
{
    char keys_dir[KURA_MAX_PATH], keys_path[KURA_MAX_PATH], lock_path[KURA_MAX_PATH];
    json_t *doc = NULL;
    enum kura_err e;
    if ((e = paths(state_dir, keys_dir, keys_path, lock_path, eb)) ||
        (e = read_doc(keys_path, &doc, eb)))
        return e;
    e = get_hex(json_object_get(doc, "signing"), "signing", "public", pk, KURA_KEYS_PUBLIC_LEN,
                eb);
    json_decref(doc);
    return e;
}

enum kura_err kura_keys_status(const char *state_dir, char **out, struct kura_errbuf *eb)
{
    *out = NULL;
    char keys_dir[KURA_MAX_PATH], keys_path[KURA_MAX_PATH], lock_path[KURA_MAX_PATH];
    char pubtext[KURA_KEYS_PUBLIC_TEXT_LEN], id[KURA_KEYS_ID_LEN];
    uint8_t pk[KURA_KEYS_PUBLIC_LEN];
    json_t *doc = NULL;
    enum kura_err e;
    if ((e = paths(state_dir, keys_dir, keys_path, lock_path, eb)) ||
        (e = kura_state_mkdir(keys_dir, true, eb)) || (e = read_doc(keys_path, &doc, eb)))
        return e;
    const json_t *so = json_object_get(doc, "signing");
    if ((e = get_hex(so, "signing", "public", pk, KURA_KEYS_PUBLIC_LEN, eb))) {
        json_decref(doc);
        return e;
    }
    kura_keys_format_public(pk, pubtext);
    kura_keys_key_id(pk, id);
    json_t *st = json_object();
    json_object_set_new(st, "key_file", json_string(keys_path));
    json_object_set(st, "generation", json_object_get(doc, "generation"));
    json_object_set(st, "created", json_object_get(doc, "created"));
    json_object_set(st, "rotated", json_object_get(doc, "rotated"));
    json_object_set(st, "master_id", json_object_get(json_object_get(doc, "master"), "id"));
    json_t *kdf = json_deep_copy(json_object_get(doc, "kdf"));
    if (kdf)
        json_object_del(kdf, "salt");
    json_object_set_new(st, "kdf", kdf ? kdf : json_null());
    json_object_set_new(st, "signing_public", json_string(pubtext));
    json_object_set_new(st, "signing_key_id", json_string(id));
    json_t *purposes = json_array();
    const char *purpose;
    json_t *v;
    json_object_foreach(json_object_get(doc, "data_keys"), purpose, v)
    {
        json_array_append_new(purposes, json_string(purpose));
    }
    json_object_set_new(st, "data_keys", purposes);
    *out = json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(st);
    json_decref(doc);
    return *out ? KURA_OK : kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
}
