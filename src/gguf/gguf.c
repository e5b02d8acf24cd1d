/* GGUF reader. The file is hostile: every read goes through a bounds-checked cursor, every
 * count is capped (core/limits.h) and checked against the bytes that remain, and every tensor
 * must lie inside the data section. Errors name the field and the file offset. */
#include "kura/gguf.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/util.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32u

struct kv {
    struct kura_str key;
    enum kura_gguf_vtype type;
    enum kura_gguf_vtype arr_type; /* arrays only */
    uint64_t arr_len;              /* arrays only */
    const uint8_t *val;            /* start of the value (after type / array header) */
    const uint8_t *raw;            /* start of the encoded value (array header included) */
    size_t raw_len;                /* bytes of the encoded value */
    const uint8_t **arr_strs;      /* string arrays: pointer to each string's length field */
};

struct kura_gguf {
    const uint8_t *base;
    size_t size;
    bool mapped;
    char *path;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    struct kv *kvs;
    int64_t n_tensors;
    struct kura_gguf_tensor *tensors;
};

struct cursor {
    const uint8_t *base;
    size_t size;
    size_t pos;
    struct kura_errbuf *eb;
};

static enum kura_err need(struct cursor *c, uint64_t n, const char *what)
{
    if (n > c->size - c->pos)
        return kura_err_set(c->eb, KURA_ERR_FORMAT,
                            "%s at offset %zu: needs %" PRIu64 " bytes, only %zu left in file",
                            what, c->pos, n, c->size - c->pos);
    return KURA_OK;
}

static enum kura_err rd(struct cursor *c, void *out, size_t n, const char *what)
{
    enum kura_err e = need(c, n, what);
    if (e)
        return e;
    memcpy(out, c->base + c->pos, n);
    c->pos += n;
    return KURA_OK;
}

static enum kura_err rd_u32(struct cursor *c, uint32_t *v, const char *what)
{
    return rd(c, v, 4, what);
}

static enum kura_err rd_u64(struct cursor *c, uint64_t *v, const char *what)
{
    return rd(c, v, 8, what);
}

static enum kura_err rd_str(struct cursor *c, struct kura_str *s, uint64_t max, const char *what)
{
    size_t at = c->pos;
    uint64_t len;
    enum kura_err e = rd_u64(c, &len, what);
    if (e)
        return e;
    if (len > max)
        return kura_err_set(c->eb, KURA_ERR_FORMAT,
                            "%s at offset %zu: string length %" PRIu64 " exceeds limit %" PRIu64,
                            what, at, len, max);
    if (len > c->size - c->pos)
        return kura_err_set(c->eb, KURA_ERR_FORMAT,
                            "%s at offset %zu: string length %" PRIu64
                            " runs past the end of the file (%zu bytes left)",
                            what, at, len, c->size - c->pos);
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += len;
    return KURA_OK;
}

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

const char *kura_gguf_vtype_name(enum kura_gguf_vtype t)
{
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                  "bool", "str", "arr", "u64", "i64", "f64"};
    return (unsigned)t < KURA_GGUF_VTYPE__COUNT ? names[t] : "?";
}

bool kura_str_eq(struct kura_str s, const char *cstr)
{
    size_t n = strlen(cstr);
    return s.len == n && memcmp(s.ptr, cstr, n) == 0;
}

static enum kura_err parse_value(struct cursor *c, struct kv *kv, int klen);

static enum kura_err parse_kv(struct cursor *c, struct kv *kv, int64_t idx)
{
    char what[96];
    snprintf(what, sizeof what, "metadata #%" PRId64 " key", idx);
    size_t key_at = c->pos;
    enum kura_err e = rd_str(c, &kv->key, KURA_GGUF_MAX_KEY, what);
    if (e)
        return e;
    if (kv->key.len == 0)
        return kura_err_set(c->eb, KURA_ERR_FORMAT, "%s at offset %zu: empty key", what, key_at);
    size_t at = c->pos;
    uint32_t t;
    e = rd_u32(c, &t, "metadata value type");
    if (e)
        return e;
    int klen = kv->key.len > 80 ? 80 : (int)kv->key.len;
    if (t >= KURA_GGUF_VTYPE__COUNT)
        return kura_err_set(c->eb, KURA_ERR_FORMAT,
                            "metadata '%.*s' at offset %zu: unknown value type %u", klen,
                            kv->key.ptr, at, t);
    kv->type = (enum kura_gguf_vtype)t;
    size_t start = c->pos;
    e = parse_value(c, kv, klen);
    if (e)
        return e;
    kv->raw = c->base + start;
    kv->raw_len = c->pos - start;
    return KURA_OK;
}

static enum kura_err parse_value(struct cursor *c, struct kv *kv, int klen)
{
    enum kura_err e;
    char what[160];
    if (kv->type == KURA_GGUF_STRING) {
        snprintf(what, sizeof what, "metadata '%.*s' string value", klen, kv->key.ptr);
        kv->val = c->base + c->pos;
        struct kura_str s;
        return rd_str(c, &s, KURA_GGUF_MAX_STRING, what);
    }
    if (kv->type != KURA_GGUF_ARRAY) {
        snprintf(what, sizeof what, "metadata '%.*s' %s value", klen, kv->key.ptr,
                 kura_gguf_vtype_name(kv->type));
        kv->val = c->base + c->pos;
        e = need(c, vtype_size(kv->type), what);
        if (e)
            return e;
        c->pos += vtype_size(kv->type);
        return KURA_OK;
    }
    size_t at = c->pos;
    uint32_t at_type;
    uint64_t n;
    snprintf(what, sizeof what, "metadata '%.*s' array header", klen, kv->key.ptr);
    if ((e = rd_u32(c, &at_type, what)) || (e = rd_u64(c, &n, what)))
        return e;
    if (at_type >= KURA_GGUF_VTYPE__COUNT || at_type == KURA_GGUF_ARRAY)
        return kura_err_set(c->eb, KURA_ERR_FORMAT,
                            "metadata '%.*s' at offset %zu: bad array element type %u", klen,
                            kv->key.ptr, at, at_type);
    if (n > KURA_GGUF_MAX_ARRAY)
        return kura_err_set(c->eb, KURA_ERR_FORMAT,
                            "metadata '%.*s' at offset %zu: array length %" PRIu64
                            " exceeds limit %u", klen, kv->key.ptr, at + 4, n,
                            KURA_GGUF_MAX_ARRAY);
    kv->arr_type = (enum kura_gguf_vtype)at_type;
    kv->arr_len = n;
    kv->val = c->base + c->pos;
    if (kv->arr_type != KURA_GGUF_STRING) {
        size_t bytes;
        if (kura_mul_overflow(n, vtype_size(kv->arr_type), &bytes))
            return kura_err_set(c->eb, KURA_ERR_FORMAT, "metadata '%.*s': array size overflow",
                                klen, kv->key.ptr);
        snprintf(what, sizeof what, "metadata '%.*s' array data", klen, kv->key.ptr);
        e = need(c, bytes, what);
        if (e)
            return e;
        c->pos += bytes;
        return KURA_OK;
    }
    /* Each string needs at least its 8-byte length: reject absurd counts before allocating. */
    if (n > (c->size - c->pos) / 8)
        return kura_err_set(c->eb, KURA_ERR_FORMAT,
                            "metadata '%.*s' at offset %zu: array length %" PRIu64
                            ": that many strings cannot fit in the %zu bytes left", klen,
                            kv->key.ptr, at + 4, n, c->size - c->pos);
    kv->arr_strs = malloc((n ? n : 1) * sizeof *kv->arr_strs);
    if (!kv->arr_strs)
        return kura_err_set(c->eb, KURA_ERR_NOMEM, "metadata '%.*s': out of memory", klen,
                            kv->key.ptr);
    for (uint64_t j = 0; j < n; j++) {
        kv->arr_strs[j] = c->base + c->pos;
        struct kura_str s;
        snprintf(what, sizeof what, "metadata '%.*s' string #%" PRIu64, klen, kv->key.ptr, j);
        e = rd_str(c, &s, KURA_GGUF_MAX_STRING, what);
        if (e)
            return e;
    }
    return KURA_OK;
}

static enum kura_err parse_tensor(struct cursor *c, struct kura_gguf_tensor *t, int64_t idx)
{
    char what[160];
    snprintf(what, sizeof what, "tensor #%" PRId64 " name", idx);
    size_t name_at = c->pos;
    enum kura_err e = rd_str(c, &t->name, KURA_GGUF_MAX_KEY, what);
    if (e)
        return e;
    if (t->name.len == 0)
        return kura_err_set(c->eb, KURA_ERR_FORMAT, "%s at offset %zu: empty name", what,
                            name_at);
    int nlen = t->name.len > 80 ? 80 : (int)t->name.len;
    size_t at = c->pos;
    snprintf(what, sizeof what, "tensor '%.*s' n_dims", nlen, t->name.ptr);
    if ((e = rd_u32(c, &t->n_dims, what)))
        return e;
    if (t->n_dims == 0 || t->n_dims > KURA_GGUF_MAX_DIMS)
        return kura_err_set(c->eb, KURA_ERR_FORMAT,
                            "tensor '%.*s' at offset %zu: n_dims %u not in 1..%u", nlen,
                            t->name.ptr, at, t->n_dims, KURA_GGUF_MAX_DIMS);
    uint64_t nelem = 1;
    for (int d = 0; d < 4; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        at = c->pos;
        uint64_t ne;
        snprintf(what, sizeof what, "tensor '%.*s' dimension %u", nlen, t->name.ptr, d);
        if ((e = rd_u64(c, &ne, what)))
            return e;
        if (ne == 0 || ne > (uint64_t)INT64_MAX || __builtin_mul_overflow(nelem, ne, &nelem) ||
            nelem > (uint64_t)INT64_MAX)
            return kura_err_set(c->eb, KURA_ERR_FORMAT,
                                "tensor '%.*s' at offset %zu: dimension %u = %" PRIu64
                                " is zero or overflows", nlen, t->name.ptr, at, d, ne);
        t->ne[d] = (int64_t)ne;
    }
    at = c->pos;
    uint32_t type;
    snprintf(what, sizeof what, "tensor '%.*s' type", nlen, t->name.ptr);
    if ((e = rd_u32(c, &type, what)))
        return e;
    int64_t blk = kura_type_block_len((enum kura_type)type);
    if (blk == 0)
        return kura_err_set(c->eb, KURA_ERR_UNSUPPORTED,
                            "tensor '%.*s' at offset %zu: unknown tensor type %u", nlen,
                            t->name.ptr, at, type);
    t->type = (enum kura_type)type;
    if (t->ne[0] % blk != 0)
        return kura_err_set(c->eb, KURA_ERR_FORMAT,
                            "tensor '%.*s': row length %" PRId64
                            " is not a multiple of the %s block size %" PRId64, nlen,
                            t->name.ptr, t->ne[0], kura_type_name(t->type), blk);
    size_t bytes;
    if (kura_mul_overflow(nelem / (uint64_t)blk, kura_type_block_bytes(t->type), &bytes))
        return kura_err_set(c->eb, KURA_ERR_FORMAT, "tensor '%.*s': byte size overflows", nlen,
                            t->name.ptr);
    t->size = bytes;
    snprintf(what, sizeof what, "tensor '%.*s' data offset", nlen, t->name.ptr);
    if ((e = rd_u64(c, &t->offset, what)))
        return e;
    return KURA_OK;
}

/* Duplicate detection over n names in O(n): an open-addressing table of indices keyed by an
 * FNV-1a hash (a quadratic scan would let a hostile file with a million tensors stall us).
 * get(i) returns the i-th name. Sets *dup to the index of a repeated name, or -1. */
static uint64_t name_hash(struct kura_str s)
{
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < s.len; i++)
        h = (h ^ (uint8_t)s.ptr[i]) * 1099511628211ull;
    return h;
}

_Static_assert(offsetof(struct kv, key) == 0, "find_duplicate reads the key at offset 0");
_Static_assert(offsetof(struct kura_gguf_tensor, name) == 0, "find_duplicate reads the name first");

static enum kura_err find_duplicate(const void *items, size_t stride, int64_t n,
                                    int64_t *dup /* OUT */)
{
    *dup = -1;
    size_t cap = 16;
    while (cap < (size_t)n * 2)
        cap *= 2;
    int64_t *slot = malloc(cap * sizeof *slot);
    if (!slot)
        return KURA_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++)
        slot[i] = -1;
    for (int64_t i = 0; i < n && *dup < 0; i++) {
        const struct kura_str *s = (const struct kura_str *)((const char *)items + (size_t)i * stride);
        size_t h = (size_t)name_hash(*s) & (cap - 1);
        for (;; h = (h + 1) & (cap - 1)) {
            if (slot[h] < 0) {
                slot[h] = i;
                break;
            }
            const struct kura_str *o =
                (const struct kura_str *)((const char *)items + (size_t)slot[h] * stride);
            if (o->len == s->len && memcmp(o->ptr, s->ptr, s->len) == 0) {
                *dup = i;
                break;
            }
        }
    }
    free(slot);
    return KURA_OK;
}

static enum kura_err parse(struct kura_gguf *g, struct kura_errbuf *eb)
{
    struct cursor c = {g->base, g->size, 0, eb};
    uint32_t magic;
    enum kura_err e;
    if ((e = rd_u32(&c, &magic, "magic")))
        return e;
    if (magic != GGUF_MAGIC)
        return kura_err_set(eb, KURA_ERR_FORMAT, "offset 0: bad magic 0x%08x (not a GGUF file)",
                            magic);
    if ((e = rd_u32(&c, &g->version, "version")))
        return e;
    if (g->version != 2 && g->version != 3)
        return kura_err_set(eb, KURA_ERR_UNSUPPORTED,
                            "offset 4: GGUF version %u (kura reads versions 2 and 3)", g->version);
    uint64_t n_tensors, n_kv;
    if ((e = rd_u64(&c, &n_tensors, "tensor count")) || (e = rd_u64(&c, &n_kv, "metadata count")))
        return e;
    if (n_tensors > KURA_GGUF_MAX_TENSORS || n_tensors > g->size / 24)
        return kura_err_set(eb, KURA_ERR_FORMAT, "offset 8: tensor count %" PRIu64
                            " is absurd for a file of %zu bytes", n_tensors, g->size);
    if (n_kv > KURA_GGUF_MAX_KV || n_kv > g->size / 12)
        return kura_err_set(eb, KURA_ERR_FORMAT, "offset 16: metadata count %" PRIu64
                            " is absurd for a file of %zu bytes", n_kv, g->size);
    g->kvs = calloc(n_kv ? n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory for GGUF tables");
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv = (int64_t)i + 1;
        if ((e = parse_kv(&c, &g->kvs[i], (int64_t)i)))
            return e;
    }
    g->n_kv = (int64_t)n_kv;
    int64_t dup;
    if (find_duplicate(g->kvs, sizeof *g->kvs, g->n_kv, &dup))
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory checking metadata keys");
    if (dup >= 0) {
        struct kura_str k = g->kvs[dup].key;
        return kura_err_set(eb, KURA_ERR_FORMAT, "metadata #%" PRId64 " key '%.*s' appears twice",
                            dup, k.len > 80 ? 80 : (int)k.len, k.ptr);
    }

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = kura_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        uint64_t a;
        if (kura_gguf_get_u64(g, "general.alignment", &a) != KURA_OK || a == 0 ||
            (a & (a - 1)) != 0 || a > KURA_GGUF_MAX_ALIGNMENT)
            return kura_err_set(eb, KURA_ERR_FORMAT,
                                "metadata 'general.alignment': must be a power of two <= %u",
                                KURA_GGUF_MAX_ALIGNMENT);
        g->alignment = a;
    }

    for (uint64_t i = 0; i < n_tensors; i++) {
        if ((e = parse_tensor(&c, &g->tensors[i], (int64_t)i)))
            return e;
        g->n_tensors = (int64_t)i + 1;
    }
    uint64_t data = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (n_tensors > 0 && data > g->size)
        return kura_err_set(eb, KURA_ERR_FORMAT,
                            "data section at offset %" PRIu64 " starts past the end of the file "
                            "(%zu bytes)", data, g->size);
    g->data_offset = data;
    uint64_t avail = g->size > data ? g->size - data : 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        struct kura_gguf_tensor *t = &g->tensors[i];
        int nlen = t->name.len > 80 ? 80 : (int)t->name.len;
        if (t->offset % g->alignment != 0)
            return kura_err_set(eb, KURA_ERR_FORMAT,
                                "tensor '%.*s': data offset %" PRIu64
                                " is not aligned to %" PRIu64, nlen, t->name.ptr, t->offset,
                                g->alignment);
        if (t->offset > avail || t->size > avail - t->offset)
            return kura_err_set(eb, KURA_ERR_FORMAT,
                                "tensor '%.*s': data [%" PRIu64 ", +%" PRIu64
                                ") at file offset %" PRIu64 " runs past the end of the file "
                                "(%zu bytes)", nlen, t->name.ptr, t->offset, t->size,
                                data + t->offset, g->size);
        t->data = g->base + data + t->offset;
    }
    if (find_duplicate(g->tensors, sizeof *g->tensors, g->n_tensors, &dup))
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory checking tensor names");
    if (dup >= 0) {
        struct kura_str nm = g->tensors[dup].name;
        return kura_err_set(eb, KURA_ERR_FORMAT, "tensor #%" PRId64 " name '%.*s' appears twice",
                            dup, nm.len > 80 ? 80 : (int)nm.len, nm.ptr);
    }
    return KURA_OK;
}

static enum kura_err finish_open(struct kura_gguf *g, struct kura_gguf **out,
                                 struct kura_errbuf *eb)
{
    enum kura_err e = parse(g, eb);
    if (e) {
        if (g->path && eb)
            kura_err_prefix(eb, "%s: ", g->path);
        kura_gguf_close(g);
        return e;
    }
    *out = g;
    return KURA_OK;
}

enum kura_err kura_gguf_open(const char *path, struct kura_gguf **out, struct kura_errbuf *eb)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kura_err_set(eb, KURA_ERR_IO, "%s: cannot open: %m", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kura_err_set(eb, KURA_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return kura_err_set(eb, KURA_ERR_FORMAT, "%s: %lld bytes is too small for a GGUF header",
                            path, (long long)st.st_size);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return kura_err_set(eb, KURA_ERR_IO, "%s: mmap failed: %m", path);
    struct kura_gguf *g = calloc(1, sizeof *g);
    char *p = strdup(path);
    if (!g || !p) {
        munmap(m, (size_t)st.st_size);
        free(g);
        free(p);
        return kura_err_set(eb, KURA_ERR_NOMEM, "%s: out of memory", path);
    }
    g->base = m;
    g->size = (size_t)st.st_size;
    g->mapped = true;
    g->path = p;
    return finish_open(g, out, eb);
}

enum kura_err kura_gguf_open_buffer(const void *buf, size_t len, struct kura_gguf **out,
                                    struct kura_errbuf *eb)
{
    *out = NULL;
    struct kura_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    g->base = buf;
    g->size = len;
    return finish_open(g, out, eb);
}

void kura_gguf_close(struct kura_gguf *g)
{
    if (!g)
        return;
    if (g->kvs)
        for (int64_t i = 0; i < g->n_kv; i++)
            free(g->kvs[i].arr_strs);
    free(g->kvs);
    free(g->tensors);
    if (g->mapped)
        munmap((void *)g->base, g->size);
    free(g->path);
    free(g);
}

uint32_t kura_gguf_version(const struct kura_gguf *g) { return g->version; }
uint64_t kura_gguf_alignment(const struct kura_gguf *g) { return g->alignment; }
uint64_t kura_gguf_data_offset(const struct kura_gguf *g) { return g->data_offset; }
const char *kura_gguf_path(const struct kura_gguf *g) { return g->path ? g->path : ""; }
uint64_t kura_gguf_file_size(const struct kura_gguf *g) { return g->size; }
const void *kura_gguf_base(const struct kura_gguf *g) { return g->base; }
int64_t kura_gguf_n_kv(const struct kura_gguf *g) { return g->n_kv; }
int64_t kura_gguf_n_tensors(const struct kura_gguf *g) { return g->n_tensors; }

int64_t kura_gguf_find_key(const struct kura_gguf *g, const char *key)
{
    for (int64_t i = 0; i < g->n_kv; i++)
        if (kura_str_eq(g->kvs[i].key, key))
            return i;
    return -1;
}

static bool valid_kv(const struct kura_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_kv;
}

struct kura_str kura_gguf_key(const struct kura_gguf *g, int64_t i)
{
    struct kura_str none = {"", 0};
    return valid_kv(g, i) ? g->kvs[i].key : none;
}

enum kura_gguf_vtype kura_gguf_kv_type(const struct kura_gguf *g, int64_t i)
{
    return valid_kv(g, i) ? g->kvs[i].type : KURA_GGUF_VTYPE__COUNT;
}

enum kura_gguf_vtype kura_gguf_arr_type(const struct kura_gguf *g, int64_t i)
{
    return valid_kv(g, i) && g->kvs[i].type == KURA_GGUF_ARRAY ? g->kvs[i].arr_type
                                                                : KURA_GGUF_VTYPE__COUNT;
}

uint64_t kura_gguf_arr_len(const struct kura_gguf *g, int64_t i)
{
    return valid_kv(g, i) && g->kvs[i].type == KURA_GGUF_ARRAY ? g->kvs[i].arr_len : 0;
}

const void *kura_gguf_arr_data(const struct kura_gguf *g, int64_t i)
{
    if (!valid_kv(g, i) || g->kvs[i].type != KURA_GGUF_ARRAY ||
        g->kvs[i].arr_type == KURA_GGUF_STRING)
        return NULL;
    return g->kvs[i].val;
}

const void *kura_gguf_kv_raw(const struct kura_gguf *g, int64_t i, size_t *len)
{
    *len = 0;
    if (!valid_kv(g, i))
        return NULL;
    *len = g->kvs[i].raw_len;
    return g->kvs[i].raw;
}

static struct kura_str str_at(const uint8_t *p)
{
    struct kura_str s;
    memcpy(&s.len, p, 8);
    s.ptr = (const char *)p + 8;
    return s;
}

struct kura_str kura_gguf_arr_str(const struct kura_gguf *g, int64_t i, uint64_t j)
{
    struct kura_str none = {"", 0};
    if (!valid_kv(g, i) || g->kvs[i].type != KURA_GGUF_ARRAY ||
        g->kvs[i].arr_type != KURA_GGUF_STRING || j >= g->kvs[i].arr_len)
        return none;
    return str_at(g->kvs[i].arr_strs[j]);
}

/* Reads scalar kv i as the widest types; returns false for strings/arrays. */
static bool scalar(const struct kv *kv, int64_t *iv, uint64_t *uv, double *fv, bool *is_signed,
                   bool *is_float)
{
    const uint8_t *p = kv->val;
    *is_signed = false;
    *is_float = false;
    switch (kv->type) {
    case KURA_GGUF_UINT8: *uv = p[0]; break;
    case KURA_GGUF_BOOL: *uv = p[0] != 0; break;
    case KURA_GGUF_INT8: { int8_t v; memcpy(&v, p, 1); *iv = v; *is_signed = true; break; }
    case KURA_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *uv = v; break; }
    case KURA_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *iv = v; *is_signed = true; break; }
    case KURA_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *uv = v; break; }
    case KURA_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); *iv = v; *is_signed = true; break; }
    case KURA_GGUF_UINT64: { uint64_t v; memcpy(&v, p, 8); *uv = v; break; }
    case KURA_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); *iv = v; *is_signed = true; break; }
    case KURA_GGUF_FLOAT32: { float v; memcpy(&v, p, 4); *fv = v; *is_float = true; break; }
    case KURA_GGUF_FLOAT64: { double v; memcpy(&v, p, 8); *fv = v; *is_float = true; break; }
    default: return false;
    }
    if (*is_signed)
        *fv = (double)*iv;
    else if (!*is_float)
        *fv = (double)*uv;
    return true;
}

static enum kura_err lookup(const struct kura_gguf *g, const char *key, const struct kv **kv)
{
    int64_t i = kura_gguf_find_key(g, key);
    if (i < 0)
        return KURA_ERR_NOTFOUND;
    *kv = &g->kvs[i];
    return KURA_OK;
}

enum kura_err kura_gguf_get_u64(const struct kura_gguf *g, const char *key, uint64_t *out)
{
    const struct kv *kv;
    enum kura_err e = lookup(g, key, &kv);
    if (e)
        return e;
    int64_t iv = 0;
    uint64_t uv = 0;
    double fv;
    bool s, f;
    if (!scalar(kv, &iv, &uv, &fv, &s, &f) || f || (s && iv < 0))
        return KURA_ERR_FORMAT;
    *out = s ? (uint64_t)iv : uv;
    return KURA_OK;
}

enum kura_err kura_gguf_get_i64(const struct kura_gguf *g, const char *key, int64_t *out)
{
    const struct kv *kv;
    enum kura_err e = lookup(g, key, &kv);
    if (e)
        return e;
    int64_t iv = 0;
    uint64_t uv = 0;
    double fv;
    bool s, f;
    if (!scalar(kv, &iv, &uv, &fv, &s, &f) || f || (!s && uv > (uint64_t)INT64_MAX))
        return KURA_ERR_FORMAT;
    *out = s ? iv : (int64_t)uv;
    return KURA_OK;
}

enum kura_err kura_gguf_get_f64(const struct kura_gguf *g, const char *key, double *out)
{
    const struct kv *kv;
    enum kura_err e = lookup(g, key, &kv);
    if (e)
        return e;
    int64_t iv = 0;
    uint64_t uv = 0;
    double fv = 0;
    bool s, f;
    if (!scalar(kv, &iv, &uv, &fv, &s, &f))
        return KURA_ERR_FORMAT;
    *out = fv;
    return KURA_OK;
}

enum kura_err kura_gguf_get_bool(const struct kura_gguf *g, const char *key, bool *out)
{
    const struct kv *kv;
    enum kura_err e = lookup(g, key, &kv);
    if (e)
        return e;
    if (kv->type != KURA_GGUF_BOOL)
        return KURA_ERR_FORMAT;
    *out = kv->val[0] != 0;
    return KURA_OK;
}

enum kura_err kura_gguf_get_str(const struct kura_gguf *g, const char *key, struct kura_str *out)
{
    const struct kv *kv;
    enum kura_err e = lookup(g, key, &kv);
    if (e)
        return e;
    if (kv->type != KURA_GGUF_STRING)
        return KURA_ERR_FORMAT;
    *out = str_at(kv->val);
    return KURA_OK;
}

static void fmt_scalar(const struct kv *kv, char *buf, size_t n)
{
    int64_t iv = 0;
    uint64_t uv = 0;
    double fv = 0;
    bool s, f;
    if (!scalar(kv, &iv, &uv, &fv, &s, &f))
        snprintf(buf, n, "?");
    else if (kv->type == KURA_GGUF_BOOL)
        snprintf(buf, n, "%s", uv ? "true" : "false");
    else if (f)
        snprintf(buf, n, "%g", fv);
    else if (s)
        snprintf(buf, n, "%" PRId64, iv);
    else
        snprintf(buf, n, "%" PRIu64, uv);
}

void kura_gguf_kv_format(const struct kura_gguf *g, int64_t i, char *buf, size_t buf_len)
{
    if (!buf_len)
        return;
    buf[0] = 0;
    if (!valid_kv(g, i))
        return;
    const struct kv *kv = &g->kvs[i];
    if (kv->type == KURA_GGUF_STRING) {
        struct kura_str s = str_at(kv->val);
        int shown = s.len > 200 ? 200 : (int)s.len;
        snprintf(buf, buf_len, "\"%.*s\"%s", shown, s.ptr, s.len > 200 ? "..." : "");
        for (char *p = buf; *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t')
                *p = ' ';
    } else if (kv->type == KURA_GGUF_ARRAY) {
        size_t used = (size_t)snprintf(buf, buf_len, "[%s x %" PRIu64 "]",
                                       kura_gguf_vtype_name(kv->arr_type), kv->arr_len);
        if (used >= buf_len)
            return;
        uint64_t show = kv->arr_len < 4 ? kv->arr_len : 4;
        for (uint64_t j = 0; j < show && used < buf_len; j++) {
            char v[96];
            if (kv->arr_type == KURA_GGUF_STRING) {
                struct kura_str s = str_at(kv->arr_strs[j]);
                snprintf(v, sizeof v, "\"%.*s\"", s.len > 40 ? 40 : (int)s.len, s.ptr);
            } else {
                struct kv e = {.type = kv->arr_type,
                               .val = kv->val + j * vtype_size(kv->arr_type)};
                fmt_scalar(&e, v, sizeof v);
            }
            used += (size_t)snprintf(buf + used, buf_len - used, " %s", v);
        }
        if (show < kv->arr_len && used < buf_len)
            snprintf(buf + used, buf_len - used, " ...");
    } else {
        fmt_scalar(kv, buf, buf_len);
    }
}

const struct kura_gguf_tensor *kura_gguf_tensor(const struct kura_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct kura_gguf_tensor *kura_gguf_find_tensor(const struct kura_gguf *g, const char *name)
{
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (kura_str_eq(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}
