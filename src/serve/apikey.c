/* API key store: see include/kura/apikey.h. */
#include "kura/apikey.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/timefmt.h"
#include "kura/state.h"

#define HASH_LEN 32
#define MAX_FILE (4u << 20)

struct entry {
    struct kura_apikey_info info;
    uint8_t hash[HASH_LEN];
};

struct kura_apikeys {
    char path[KURA_MAX_PATH], lock_path[KURA_MAX_PATH];
    struct kura_secret *hkey; /* "apikey" data key */
    pthread_mutex_t mu;
    struct entry *e;
    size_t n;
    /* identity of the file last read, to notice changes */
    bool have_stat;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

const char *kura_apikey_role_name(enum kura_apikey_role r)
{
    return r == KURA_APIKEY_ADMIN ? "admin" : "user";
}

bool kura_apikey_role_parse(const char *s, enum kura_apikey_role *out)
{
    if (s && strcmp(s, "admin") == 0)
        *out = KURA_APIKEY_ADMIN;
    else if (s && strcmp(s, "user") == 0)
        *out = KURA_APIKEY_USER;
    else
        return false;
    return true;
}

static bool name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > KURA_APIKEY_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void hash_secret(const struct kura_apikeys *ks, const char *secret, size_t len,
                        uint8_t out[HASH_LEN])
{
    crypto_generichash(out, HASH_LEN, (const unsigned char *)secret, len, ks->hkey->data,
                       ks->hkey->len);
}

static void id_of(const uint8_t hash[HASH_LEN], char out[17])
{
    /* A second hash so the id shown in logs says nothing about the stored hash. */
    uint8_t h[8];
    crypto_generichash(h, sizeof h, hash, HASH_LEN, (const unsigned char *)"kura-apikey-id", 14);
    sodium_bin2hex(out, 17, h, sizeof h);
}

/* Parses the file; on success replaces ks->e. */
static enum kura_err parse_store(struct kura_apikeys *ks, const char *txt, size_t len,
                                 struct kura_errbuf *eb)
{
    json_error_t je;
    json_t *root = json_loadb(txt, len, JSON_REJECT_DUPLICATES, &je);
    struct entry *e = NULL;
    enum kura_err err = KURA_OK;
    if (!root || !json_is_object(root)) {
        err = kura_err_set(eb, KURA_ERR_FORMAT, "%s: not a JSON object (line %d: %s)", ks->path,
                           root ? 1 : je.line, root ? "" : je.text);
        goto out;
    }
    json_t *keys = json_object_get(root, "keys");
    json_t *ver = json_object_get(root, "version");
    if (!json_is_integer(ver) || json_integer_value(ver) != 1 || !json_is_array(keys) ||
        json_array_size(keys) > KURA_APIKEY_MAX_KEYS) {
        err = kura_err_set(eb, KURA_ERR_FORMAT, "%s: expected {\"version\":1,\"keys\":[...]}",
                           ks->path);
        goto out;
    }
    size_t n = json_array_size(keys);
    e = calloc(n ? n : 1, sizeof *e);
    if (!e) {
        err = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *k = json_array_get(keys, i);
        const char *name = json_string_value(json_object_get(k, "name"));
        const char *role = json_string_value(json_object_get(k, "role"));
        const char *created = json_string_value(json_object_get(k, "created"));
        const char *hash = json_string_value(json_object_get(k, "hash"));
        size_t hl = 0;
        if (!name_ok(name) || !kura_apikey_role_parse(role, &e[i].info.role) || !hash ||
            sodium_hex2bin(e[i].hash, HASH_LEN, hash, strlen(hash), NULL, &hl, NULL) != 0 ||
            hl != HASH_LEN) {
            err = kura_err_set(eb, KURA_ERR_FORMAT, "%s: key %zu: bad name, role or hash",
                               ks->path, i);
            goto out;
        }
        snprintf(e[i].info.name, sizeof e[i].info.name, "%s", name);
        snprintf(e[i].info.created, sizeof e[i].info.created, "%s", created ? created : "");
        id_of(e[i].hash, e[i].info.id);
    }
    free(ks->e);
    ks->e = e;
    ks->n = n;
    e = NULL;
out:
    free(e);
    json_decref(root);
    return err;
}

/* Re-reads the file when it differs from what was read last (called with ks->mu held). */
static enum kura_err refresh(struct kura_apikeys *ks, bool force, struct kura_errbuf *eb)
{
    struct stat st;
    if (stat(ks->path, &st) != 0) {
        if (errno != ENOENT)
            return kura_err_set(eb, KURA_ERR_IO, "%s: %s", ks->path, strerror(errno));
        free(ks->e);
        ks->e = NULL;
        ks->n = 0;
        ks->have_stat = false;
        return KURA_OK;
    }
    if (!force && ks->have_stat && st.st_dev == ks->dev && st.st_ino == ks->ino &&
        st.st_size == ks->size && st.st_mtim.tv_sec == ks->mtime.tv_sec &&
        st.st_mtim.tv_nsec == ks->mtime.tv_nsec)
        return KURA_OK;
    struct kura_secret *txt = NULL;
    enum kura_err err = kura_state_read_private(ks->path, MAX_FILE, &txt, eb);
    if (err)
        return err;
    err = parse_store(ks, (const char *)txt->data, txt->len, eb);
    kura_secret_destroy(txt);
    if (err)
        return err;
    ks->have_stat = true;
    ks->dev = st.st_dev;
    ks->ino = st.st_ino;
    ks->size = st.st_size;
    ks->mtime = st.st_mtim;
    return KURA_OK;
}

static enum kura_err save(struct kura_apikeys *ks, struct kura_errbuf *eb)
{
    json_t *root = json_object(), *arr = json_array();
    enum kura_err err = KURA_OK;
    char *txt = NULL;
    if (!root || !arr) {
        json_decref(arr);
        err = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto out;
    }
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "keys", arr);
    for (size_t i = 0; i < ks->n; i++) {
        char hex[2 * HASH_LEN + 1];
        sodium_bin2hex(hex, sizeof hex, ks->e[i].hash, HASH_LEN);
        json_t *k = json_object();
        json_object_set_new(k, "name", json_string(ks->e[i].info.name));
        json_object_set_new(k, "role", json_string(kura_apikey_role_name(ks->e[i].info.role)));
        json_object_set_new(k, "created", json_string(ks->e[i].info.created));
        json_object_set_new(k, "hash", json_string(hex));
        json_array_append_new(arr, k);
    }
    txt = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    if (!txt) {
        err = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t len = strlen(txt);
    txt[len] = 0;
    err = kura_state_write_atomic(ks->path, txt, len, eb);
    if (!err) {
        ks->have_stat = false; /* re-read our own write next time to pick up its identity */
        err = refresh(ks, true, eb);
    }
out:
    free(txt);
    json_decref(root);
    return err;
}

enum kura_err kura_apikeys_open(const char *state_dir, struct kura_keys *keys,
                                struct kura_apikeys **out, struct kura_errbuf *eb)
{
    *out = NULL;
    struct kura_apikeys *ks = calloc(1, sizeof *ks);
    if (!ks)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&ks->mu, NULL);
    enum kura_err err = kura_state_path(state_dir, "apikeys.json", ks->path, sizeof ks->path, eb);
    if (!err)
        err = kura_state_path(state_dir, "apikeys.lock", ks->lock_path, sizeof ks->lock_path, eb);
    if (!err)
        err = kura_keys_data_key(keys, "apikey", true, &ks->hkey, eb);
    if (!err)
        err = refresh(ks, true, eb);
    if (err) {
        kura_apikeys_destroy(ks);
        return err;
    }
    *out = ks;
    return KURA_OK;
}

void kura_apikeys_destroy(struct kura_apikeys *ks)
{
    if (!ks)
        return;
    kura_secret_destroy(ks->hkey);
    free(ks->e);
    pthread_mutex_destroy(&ks->mu);
    free(ks);
}

/* Writers serialise on an flock so two `kura apikey` commands never lose each other's change. */
static int lock_store(struct kura_apikeys *ks, struct kura_errbuf *eb)
{
    int fd = open(ks->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        kura_err_set(eb, KURA_ERR_IO, "%s: %s", ks->lock_path, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            kura_err_set(eb, KURA_ERR_IO, "%s: flock: %s", ks->lock_path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

static ssize_t find(const struct kura_apikeys *ks, const char *name)
{
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->e[i].info.name, name) == 0)
            return (ssize_t)i;
    return -1;
}

enum kura_err kura_apikeys_create(struct kura_apikeys *ks, const char *name,
                                  enum kura_apikey_role role,
                                  char secret_out[KURA_APIKEY_SECRET_LEN],
                                  struct kura_apikey_info *info, struct kura_errbuf *eb)
{
    secret_out[0] = 0;
    if (!name_ok(name))
        return kura_err_set(eb, KURA_ERR_INVALID,
                            "key name must be 1..%d characters of A-Z a-z 0-9 . _ -",
                            KURA_APIKEY_MAX_NAME);
    pthread_mutex_lock(&ks->mu);
    enum kura_err err = KURA_OK;
    int lfd = lock_store(ks, eb);
    if (lfd < 0) {
        err = eb ? eb->code : KURA_ERR_IO;
        goto out;
    }
    if ((err = refresh(ks, false, eb)))
        goto out;
    if (find(ks, name) >= 0) {
        err = kura_err_set(eb, KURA_ERR_INVALID, "a key named '%s' exists already", name);
        goto out;
    }
    if (ks->n >= KURA_APIKEY_MAX_KEYS) {
        err = kura_err_set(eb, KURA_ERR_RANGE, "at most %d keys", KURA_APIKEY_MAX_KEYS);
        goto out;
    }
    struct entry *ne = realloc(ks->e, (ks->n + 1) * sizeof *ne);
    if (!ne) {
        err = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto out;
    }
    ks->e = ne;
    struct entry *e = &ks->e[ks->n];
    memset(e, 0, sizeof *e);
    uint8_t raw[32];
    randombytes_buf(raw, sizeof raw);
    memcpy(secret_out, "kura_", 5);
    sodium_bin2base64(secret_out + 5, KURA_APIKEY_SECRET_LEN - 5, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    hash_secret(ks, secret_out, strlen(secret_out), e->hash);
    snprintf(e->info.name, sizeof e->info.name, "%s", name);
    e->info.role = role;
    char now[KURA_TIME_LEN];
    kura_time_now(now);
    snprintf(e->info.created, sizeof e->info.created, "%s", now);
    id_of(e->hash, e->info.id);
    struct kura_apikey_info saved = e->info;
    ks->n++;
    if ((err = save(ks, eb))) {
        sodium_memzero(secret_out, KURA_APIKEY_SECRET_LEN);
        goto out;
    }
    if (info)
        *info = saved;
out:
    if (lfd >= 0)
        close(lfd);
    pthread_mutex_unlock(&ks->mu);
    return err;
}

enum kura_err kura_apikeys_revoke(struct kura_apikeys *ks, const char *name,
                                  struct kura_apikey_info *info, struct kura_errbuf *eb)
{
    pthread_mutex_lock(&ks->mu);
    enum kura_err err = KURA_OK;
    int lfd = lock_store(ks, eb);
    if (lfd < 0) {
        err = eb ? eb->code : KURA_ERR_IO;
        goto out;
    }
    if ((err = refresh(ks, false, eb)))
        goto out;
    ssize_t i = name ? find(ks, name) : -1;
    if (i < 0) {
        err = kura_err_set(eb, KURA_ERR_NOTFOUND, "no key named '%s'", name ? name : "");
        goto out;
    }
    if (info)
        *info = ks->e[i].info;
    memmove(&ks->e[i], &ks->e[i + 1], (ks->n - (size_t)i - 1) * sizeof *ks->e);
    ks->n--;
    err = save(ks, eb);
out:
    if (lfd >= 0)
        close(lfd);
    pthread_mutex_unlock(&ks->mu);
    return err;
}

enum kura_err kura_apikeys_list(struct kura_apikeys *ks, struct kura_apikey_info **out,
                                size_t *n, struct kura_errbuf *eb)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&ks->mu);
    enum kura_err err = refresh(ks, false, eb);
    if (!err) {
        *out = calloc(ks->n ? ks->n : 1, sizeof **out);
        if (!*out)
            err = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        else {
            for (size_t i = 0; i < ks->n; i++)
                (*out)[i] = ks->e[i].info;
            *n = ks->n;
        }
    }
    pthread_mutex_unlock(&ks->mu);
    return err;
}

enum kura_err kura_apikeys_check(struct kura_apikeys *ks, const char *secret, size_t len,
                                 struct kura_apikey_info *info, struct kura_errbuf *eb)
{
    uint8_t h[HASH_LEN];
    hash_secret(ks, secret ? secret : "", secret ? len : 0, h);
    pthread_mutex_lock(&ks->mu);
    enum kura_err err = refresh(ks, false, eb);
    ssize_t hit = -1;
    /* Every entry is compared, in constant time, whatever matched before. */
    for (size_t i = 0; i < ks->n; i++) {
        int eq = sodium_memcmp(h, ks->e[i].hash, HASH_LEN) == 0;
        hit = eq ? (ssize_t)i : hit;
    }
    if (hit >= 0) {
        *info = ks->e[hit].info;
        err = KURA_OK;
    } else if (!err) {
        err = kura_err_set(eb, KURA_ERR_CRYPTO, "invalid API key");
    }
    pthread_mutex_unlock(&ks->mu);
    sodium_memzero(h, sizeof h);
    return err;
}
