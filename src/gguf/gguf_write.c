/* GGUF v3 writer: metadata and tensor infos are kept in memory, tensor data is streamed from
 * the caller into a temp file that is fsynced and renamed over the target at the end. */
#include "kura/gguf_write.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF writer assumes a little-endian host"
#endif

#define GGUF_VERSION 3u
#define GGUF_DEFAULT_ALIGNMENT 32u
#define OUT_BUF_BYTES (4u << 20)

struct wkv {
    char *key;
    size_t key_len;
    uint32_t type;
    uint8_t *val; /* encoded value as it goes into the file (after the type field) */
    size_t val_len;
};

struct wtensor {
    char *name;
    size_t name_len;
    enum kura_type type;
    uint32_t n_dims;
    int64_t ne[4];
    uint64_t size;
    uint64_t offset; /* relative to the data section; set by write */
    kura_gguf_produce_fn produce;
    void *user;
    const void *data;
};

struct kura_gguf_writer {
    struct wkv *kvs;
    int64_t n_kv, cap_kv;
    struct wtensor *tensors;
    int64_t n_tensors, cap_tensors;
};

/* Buffered output to a file descriptor, counting bytes. */
struct out {
    int fd;
    const char *path;
    uint8_t *buf;
    size_t len;
    uint64_t total;
};

struct kura_gguf_sink {
    struct out *o;
    const struct wtensor *t;
    uint64_t written;
};

static size_t vtype_size(enum kura_gguf_vtype t)
{
    switch (t) {
    case KURA_GGUF_UINT8: case KURA_GGUF_INT8: case KURA_GGUF_BOOL: return 1;
    case KURA_GGUF_UINT16: case KURA_GGUF_INT16: return 2;
    case KURA_GGUF_UINT32: case KURA_GGUF_INT32: case KURA_GGUF_FLOAT32: return 4;
    case KURA_GGUF_UINT64: case KURA_GGUF_INT64: case KURA_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

enum kura_err kura_gguf_writer_create(struct kura_gguf_writer **out, struct kura_errbuf *eb)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return kura_err_set(eb, KURA_ERR_NOMEM, "gguf writer: out of memory");
    return KURA_OK;
}

void kura_gguf_writer_destroy(struct kura_gguf_writer *w)
{
    if (!w)
        return;
    for (int64_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].val);
    }
    for (int64_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

int64_t kura_gguf_writer_n_kv(const struct kura_gguf_writer *w) { return w->n_kv; }
int64_t kura_gguf_writer_n_tensors(const struct kura_gguf_writer *w) { return w->n_tensors; }

uint64_t kura_gguf_writer_tensor_size(const struct kura_gguf_writer *w, int64_t index)
{
    return index >= 0 && index < w->n_tensors ? w->tensors[index].size : 0;
}

static int64_t find_kv(const struct kura_gguf_writer *w, const char *key, size_t key_len)
{
    for (int64_t i = 0; i < w->n_kv; i++)
        if (w->kvs[i].key_len == key_len && memcmp(w->kvs[i].key, key, key_len) == 0)
            return i;
    return -1;
}

/* Stores key = (type, val[0..val_len)); takes ownership of val (freed on failure too). */
static enum kura_err put_kv(struct kura_gguf_writer *w, const char *key, size_t key_len,
                            uint32_t type, uint8_t *val, size_t val_len, struct kura_errbuf *eb)
{
    if (key_len == 0 || key_len > KURA_GGUF_MAX_KEY) {
        free(val);
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: key length %zu not in 1..%u",
                            key_len, KURA_GGUF_MAX_KEY);
    }
    int64_t i = find_kv(w, key, key_len);
    if (i >= 0) {
        free(w->kvs[i].val);
        w->kvs[i].type = type;
        w->kvs[i].val = val;
        w->kvs[i].val_len = val_len;
        return KURA_OK;
    }
    if (w->n_kv >= (int64_t)KURA_GGUF_MAX_KV) {
        free(val);
        return kura_err_set(eb, KURA_ERR_RANGE, "gguf writer: more than %u metadata keys",
                            KURA_GGUF_MAX_KV);
    }
    if (w->n_kv == w->cap_kv) {
        int64_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        struct wkv *n = realloc(w->kvs, (size_t)cap * sizeof *n);
        if (!n) {
            free(val);
            return kura_err_set(eb, KURA_ERR_NOMEM, "gguf writer: out of memory");
        }
        w->kvs = n;
        w->cap_kv = cap;
    }
    char *k = malloc(key_len + 1);
    if (!k) {
        free(val);
        return kura_err_set(eb, KURA_ERR_NOMEM, "gguf writer: out of memory");
    }
    memcpy(k, key, key_len);
    k[key_len] = 0;
    w->kvs[w->n_kv++] = (struct wkv){k, key_len, type, val, val_len};
    return KURA_OK;
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

enum kura_err kura_gguf_writer_set_scalar(struct kura_gguf_writer *w, const char *key,
                                          enum kura_gguf_vtype type, const void *val,
                                          struct kura_errbuf *eb)
{
    size_t n = vtype_size(type);
    if (n == 0)
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: '%s': %s is not a scalar type",
                            key, kura_gguf_vtype_name(type));
    uint8_t *v = dup_bytes(val, n);
    if (!v)
        return kura_err_set(eb, KURA_ERR_NOMEM, "gguf writer: out of memory");
    if (type == KURA_GGUF_BOOL)
        v[0] = v[0] != 0;
    return put_kv(w, key, strlen(key), type, v, n, eb);
}

enum kura_err kura_gguf_writer_set_u32(struct kura_gguf_writer *w, const char *key, uint32_t v,
                                       struct kura_errbuf *eb)
{
    return kura_gguf_writer_set_scalar(w, key, KURA_GGUF_UINT32, &v, eb);
}

enum kura_err kura_gguf_writer_set_i32(struct kura_gguf_writer *w, const char *key, int32_t v,
                                       struct kura_errbuf *eb)
{
    return kura_gguf_writer_set_scalar(w, key, KURA_GGUF_INT32, &v, eb);
}

enum kura_err kura_gguf_writer_set_u64(struct kura_gguf_writer *w, const char *key, uint64_t v,
                                       struct kura_errbuf *eb)
{
    return kura_gguf_writer_set_scalar(w, key, KURA_GGUF_UINT64, &v, eb);
}

enum kura_err kura_gguf_writer_set_f32(struct kura_gguf_writer *w, const char *key, float v,
                                       struct kura_errbuf *eb)
{
    return kura_gguf_writer_set_scalar(w, key, KURA_GGUF_FLOAT32, &v, eb);
}

enum kura_err kura_gguf_writer_set_bool(struct kura_gguf_writer *w, const char *key, bool v,
                                        struct kura_errbuf *eb)
{
    uint8_t b = v;
    return kura_gguf_writer_set_scalar(w, key, KURA_GGUF_BOOL, &b, eb);
}

enum kura_err kura_gguf_writer_set_str(struct kura_gguf_writer *w, const char *key,
                                       const char *s, size_t len, struct kura_errbuf *eb)
{
    if (len > KURA_GGUF_MAX_STRING)
        return kura_err_set(eb, KURA_ERR_RANGE, "gguf writer: '%s': string of %zu bytes exceeds "
                            "limit %u", key, len, KURA_GGUF_MAX_STRING);
    uint8_t *v = malloc(8 + len);
    if (!v)
        return kura_err_set(eb, KURA_ERR_NOMEM, "gguf writer: out of memory");
    uint64_t l = len;
    memcpy(v, &l, 8);
    if (len)
        memcpy(v + 8, s, len);
    return put_kv(w, key, strlen(key), KURA_GGUF_STRING, v, 8 + len, eb);
}

enum kura_err kura_gguf_writer_set_arr(struct kura_gguf_writer *w, const char *key,
                                       enum kura_gguf_vtype elem_type, const void *data,
                                       uint64_t n, struct kura_errbuf *eb)
{
    size_t es = vtype_size(elem_type), bytes;
    if (es == 0)
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: '%s': arrays of %s need "
                            "kura_gguf_writer_set_arr_str or are not allowed", key,
                            kura_gguf_vtype_name(elem_type));
    if (n > KURA_GGUF_MAX_ARRAY || kura_mul_overflow(n, es, &bytes))
        return kura_err_set(eb, KURA_ERR_RANGE, "gguf writer: '%s': array length %" PRIu64
                            " exceeds limit %u", key, n, KURA_GGUF_MAX_ARRAY);
    uint8_t *v = malloc(12 + bytes);
    if (!v)
        return kura_err_set(eb, KURA_ERR_NOMEM, "gguf writer: out of memory");
    uint32_t t = elem_type;
    memcpy(v, &t, 4);
    memcpy(v + 4, &n, 8);
    if (bytes)
        memcpy(v + 12, data, bytes);
    if (elem_type == KURA_GGUF_BOOL)
        for (size_t j = 0; j < bytes; j++)
            v[12 + j] = v[12 + j] != 0;
    return put_kv(w, key, strlen(key), KURA_GGUF_ARRAY, v, 12 + bytes, eb);
}

enum kura_err kura_gguf_writer_set_arr_str(struct kura_gguf_writer *w, const char *key,
                                           const struct kura_str *strs, uint64_t n,
                                           struct kura_errbuf *eb)
{
    if (n > KURA_GGUF_MAX_ARRAY)
        return kura_err_set(eb, KURA_ERR_RANGE, "gguf writer: '%s': array length %" PRIu64
                            " exceeds limit %u", key, n, KURA_GGUF_MAX_ARRAY);
    size_t bytes = 12;
    for (uint64_t j = 0; j < n; j++) {
        if (strs[j].len > KURA_GGUF_MAX_STRING ||
            kura_add_overflow(bytes, 8 + (size_t)strs[j].len, &bytes))
            return kura_err_set(eb, KURA_ERR_RANGE, "gguf writer: '%s': string #%" PRIu64
                                " too long", key, j);
    }
    uint8_t *v = malloc(bytes);
    if (!v)
        return kura_err_set(eb, KURA_ERR_NOMEM, "gguf writer: out of memory");
    uint32_t t = KURA_GGUF_STRING;
    memcpy(v, &t, 4);
    memcpy(v + 4, &n, 8);
    size_t p = 12;
    for (uint64_t j = 0; j < n; j++) {
        memcpy(v + p, &strs[j].len, 8);
        if (strs[j].len)
            memcpy(v + p + 8, strs[j].ptr, strs[j].len);
        p += 8 + strs[j].len;
    }
    return put_kv(w, key, strlen(key), KURA_GGUF_ARRAY, v, bytes, eb);
}

enum kura_err kura_gguf_writer_copy_kv(struct kura_gguf_writer *w, const struct kura_gguf *g,
                                       int64_t i, struct kura_errbuf *eb)
{
    size_t len;
    const void *raw = kura_gguf_kv_raw(g, i, &len);
    if (!raw)
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: no metadata #%" PRId64, i);
    struct kura_str k = kura_gguf_key(g, i);
    uint8_t *v = dup_bytes(raw, len);
    if (!v)
        return kura_err_set(eb, KURA_ERR_NOMEM, "gguf writer: out of memory");
    return put_kv(w, k.ptr, k.len, kura_gguf_kv_type(g, i), v, len, eb);
}

enum kura_err kura_gguf_writer_copy_kvs(struct kura_gguf_writer *w, const struct kura_gguf *g,
                                        const char *prefix, struct kura_errbuf *eb)
{
    size_t pl = prefix ? strlen(prefix) : 0;
    for (int64_t i = 0; i < kura_gguf_n_kv(g); i++) {
        struct kura_str k = kura_gguf_key(g, i);
        if (k.len < pl || (pl && memcmp(k.ptr, prefix, pl) != 0))
            continue;
        enum kura_err e = kura_gguf_writer_copy_kv(w, g, i, eb);
        if (e)
            return e;
    }
    return KURA_OK;
}

bool kura_gguf_writer_remove(struct kura_gguf_writer *w, const char *key)
{
    int64_t i = find_kv(w, key, strlen(key));
    if (i < 0)
        return false;
    free(w->kvs[i].key);
    free(w->kvs[i].val);
    memmove(&w->kvs[i], &w->kvs[i + 1], (size_t)(w->n_kv - i - 1) * sizeof *w->kvs);
    w->n_kv--;
    return true;
}

static enum kura_err add_tensor(struct kura_gguf_writer *w, const char *name, enum kura_type type,
                                uint32_t n_dims, const int64_t *ne, kura_gguf_produce_fn produce,
                                void *user, const void *data, int64_t *index,
                                struct kura_errbuf *eb)
{
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len > KURA_GGUF_MAX_KEY)
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: tensor name length %zu not in "
                            "1..%u", name_len, KURA_GGUF_MAX_KEY);
    int64_t blk = kura_type_block_len(type);
    if (blk == 0)
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: tensor '%s': unknown type %d",
                            name, (int)type);
    if (n_dims < 1 || n_dims > KURA_GGUF_MAX_DIMS)
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: tensor '%s': n_dims %u not in "
                            "1..%u", name, n_dims, KURA_GGUF_MAX_DIMS);
    struct wtensor t = {.type = type, .n_dims = n_dims, .produce = produce, .user = user,
                        .data = data, .ne = {1, 1, 1, 1}};
    size_t nelem = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || kura_mul_overflow(nelem, (size_t)ne[d], &nelem) ||
            nelem > (size_t)INT64_MAX)
            return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: tensor '%s': dimension %u "
                                "= %" PRId64 " is not positive or overflows", name, d, ne[d]);
        t.ne[d] = ne[d];
    }
    if (t.ne[0] % blk != 0)
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: tensor '%s': row length %" PRId64
                            " is not a multiple of the %s block size %" PRId64, name, t.ne[0],
                            kura_type_name(type), blk);
    size_t bytes;
    if (kura_mul_overflow(nelem / (size_t)blk, kura_type_block_bytes(type), &bytes))
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: tensor '%s': size overflows",
                            name);
    t.size = bytes;
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].name_len == name_len && memcmp(w->tensors[i].name, name, name_len) == 0)
            return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: tensor '%s' added twice",
                                name);
    if (w->n_tensors >= (int64_t)KURA_GGUF_MAX_TENSORS)
        return kura_err_set(eb, KURA_ERR_RANGE, "gguf writer: more than %u tensors",
                            KURA_GGUF_MAX_TENSORS);
    if (w->n_tensors == w->cap_tensors) {
        int64_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        struct wtensor *n = realloc(w->tensors, (size_t)cap * sizeof *n);
        if (!n)
            return kura_err_set(eb, KURA_ERR_NOMEM, "gguf writer: out of memory");
        w->tensors = n;
        w->cap_tensors = cap;
    }
    t.name = (char *)dup_bytes(name, name_len + 1);
    if (!t.name)
        return kura_err_set(eb, KURA_ERR_NOMEM, "gguf writer: out of memory");
    t.name_len = name_len;
    if (index)
        *index = w->n_tensors;
    w->tensors[w->n_tensors++] = t;
    return KURA_OK;
}

enum kura_err kura_gguf_writer_add_tensor(struct kura_gguf_writer *w, const char *name,
                                          enum kura_type type, uint32_t n_dims,
                                          const int64_t *ne, kura_gguf_produce_fn produce,
                                          void *user, int64_t *index, struct kura_errbuf *eb)
{
    if (!produce)
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: tensor '%s': no producer", name);
    return add_tensor(w, name, type, n_dims, ne, produce, user, NULL, index, eb);
}

enum kura_err kura_gguf_writer_add_tensor_data(struct kura_gguf_writer *w, const char *name,
                                               enum kura_type type, uint32_t n_dims,
                                               const int64_t *ne, const void *data,
                                               struct kura_errbuf *eb)
{
    if (!data)
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: tensor '%s': no data", name);
    return add_tensor(w, name, type, n_dims, ne, NULL, NULL, data, NULL, eb);
}

/* ---- output ---- */

static enum kura_err write_all(struct out *o, const void *p, size_t n, struct kura_errbuf *eb)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t r = write(o->fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return kura_err_set(eb, KURA_ERR_IO, "%s: write failed: %s", o->path,
                                r < 0 ? strerror(errno) : "no progress");
        b += r;
        n -= (size_t)r;
    }
    return KURA_OK;
}

static enum kura_err out_flush(struct out *o, struct kura_errbuf *eb)
{
    enum kura_err e = write_all(o, o->buf, o->len, eb);
    o->len = 0;
    return e;
}

static enum kura_err out_put(struct out *o, const void *p, size_t n, struct kura_errbuf *eb)
{
    if (n == 0)
        return KURA_OK;
    o->total += n;
    if (n > OUT_BUF_BYTES - o->len) {
        enum kura_err e = out_flush(o, eb);
        if (e)
            return e;
        if (n >= OUT_BUF_BYTES)
            return write_all(o, p, n, eb);
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return KURA_OK;
}

static enum kura_err out_u32(struct out *o, uint32_t v, struct kura_errbuf *eb)
{
    return out_put(o, &v, 4, eb);
}

static enum kura_err out_u64(struct out *o, uint64_t v, struct kura_errbuf *eb)
{
    return out_put(o, &v, 8, eb);
}

static enum kura_err out_pad(struct out *o, uint64_t align, struct kura_errbuf *eb)
{
    static const uint8_t zeros[256];
    uint64_t pad = (align - o->total % align) % align;
    while (pad > 0) {
        size_t n = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        enum kura_err e = out_put(o, zeros, n, eb);
        if (e)
            return e;
        pad -= n;
    }
    return KURA_OK;
}

enum kura_err kura_gguf_sink_write(struct kura_gguf_sink *sink, const void *buf, size_t len,
                                   struct kura_errbuf *eb)
{
    if (len > sink->t->size - sink->written)
        return kura_err_set(eb, KURA_ERR_INTERNAL, "gguf writer: tensor '%s': producer wrote "
                            "more than its %" PRIu64 " bytes", sink->t->name, sink->t->size);
    sink->written += len;
    return out_put(sink->o, buf, len, eb);
}

/* The alignment the file will use: general.alignment if set (must be a u32 power of two). */
static enum kura_err alignment_of(const struct kura_gguf_writer *w, uint64_t *align,
                                  struct kura_errbuf *eb)
{
    *align = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = find_kv(w, "general.alignment", strlen("general.alignment"));
    if (i < 0)
        return KURA_OK;
    uint32_t a = 0;
    if (w->kvs[i].type != KURA_GGUF_UINT32 || (memcpy(&a, w->kvs[i].val, 4), a == 0) ||
        (a & (a - 1)) != 0 || a > KURA_GGUF_MAX_ALIGNMENT)
        return kura_err_set(eb, KURA_ERR_INVALID, "gguf writer: 'general.alignment' must be a "
                            "u32 power of two <= %u", KURA_GGUF_MAX_ALIGNMENT);
    *align = a;
    return KURA_OK;
}

static enum kura_err write_body(struct kura_gguf_writer *w, struct out *o, uint64_t align,
                                struct kura_errbuf *eb)
{
    enum kura_err e;
    if ((e = out_u32(o, 0x46554747u, eb)) || (e = out_u32(o, GGUF_VERSION, eb)) ||
        (e = out_u64(o, (uint64_t)w->n_tensors, eb)) || (e = out_u64(o, (uint64_t)w->n_kv, eb)))
        return e;
    for (int64_t i = 0; i < w->n_kv; i++) {
        const struct wkv *kv = &w->kvs[i];
        if ((e = out_u64(o, kv->key_len, eb)) || (e = out_put(o, kv->key, kv->key_len, eb)) ||
            (e = out_u32(o, kv->type, eb)) || (e = out_put(o, kv->val, kv->val_len, eb)))
            return e;
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        struct wtensor *t = &w->tensors[i];
        t->offset = off;
        off += t->size;
        off += (align - off % align) % align;
        if ((e = out_u64(o, t->name_len, eb)) || (e = out_put(o, t->name, t->name_len, eb)) ||
            (e = out_u32(o, t->n_dims, eb)))
            return e;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if ((e = out_u64(o, (uint64_t)t->ne[d], eb)))
                return e;
        if ((e = out_u32(o, (uint32_t)t->type, eb)) || (e = out_u64(o, t->offset, eb)))
            return e;
    }
    if ((e = out_pad(o, align, eb)))
        return e;
    uint64_t data_start = o->total;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        if (o->total - data_start != t->offset)
            return kura_err_set(eb, KURA_ERR_INTERNAL, "gguf writer: tensor '%s' misplaced",
                                t->name);
        struct kura_gguf_sink sink = {o, t, 0};
        if (t->data)
            e = kura_gguf_sink_write(&sink, t->data, t->size, eb);
        else
            e = t->produce(t->user, i, &sink, eb);
        if (e)
            return e;
        if (sink.written != t->size)
            return kura_err_set(eb, KURA_ERR_INTERNAL, "gguf writer: tensor '%s': producer "
                                "wrote %" PRIu64 " of %" PRIu64 " bytes", t->name, sink.written,
                                t->size);
        if ((e = out_pad(o, align, eb)))
            return e;
    }
    return out_flush(o, eb);
}

/* fsync the directory holding path, so the rename itself is durable. */
static void sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

enum kura_err kura_gguf_writer_write(struct kura_gguf_writer *w, const char *path,
                                     struct kura_errbuf *eb)
{
    uint64_t align;
    enum kura_err e = alignment_of(w, &align, eb);
    if (e)
        return e;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    struct out o = {.fd = -1, .path = path, .buf = malloc(OUT_BUF_BYTES)};
    if (!tmp || !o.buf) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    o.fd = mkostemp(tmp, O_CLOEXEC);
    if (o.fd < 0) {
        e = kura_err_set(eb, KURA_ERR_IO, "%s: cannot create temporary file: %s", path,
                         strerror(errno));
        tmp[0] = 0;
        goto fail;
    }
    fchmod(o.fd, 0644);
    e = write_body(w, &o, align, eb);
    if (e)
        goto fail;
    if (fsync(o.fd) != 0) {
        e = kura_err_set(eb, KURA_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
        goto fail;
    }
    int fd = o.fd;
    o.fd = -1;
    if (close(fd) != 0) {
        e = kura_err_set(eb, KURA_ERR_IO, "%s: close failed: %s", path, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        e = kura_err_set(eb, KURA_ERR_IO, "%s: cannot rename temporary file into place: %s",
                         path, strerror(errno));
        goto fail;
    }
    sync_dir(path);
    free(tmp);
    free(o.buf);
    return KURA_OK;
fail:
    if (o.fd >= 0)
        close(o.fd);
    if (tmp && tmp[0])
        unlink(tmp);
    free(tmp);
    free(o.buf);
    return e;
}
