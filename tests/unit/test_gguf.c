/* GGUF reader and writer: the real shared models, writer round trips, and malformed files
 * (every truncation, absurd counts and lengths, bad types, dims, offsets, alignment, duplicates),
 * each of which must fail with a message naming the field. */
#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kura/gguf.h"
#include "kura/gguf_write.h"
#include "test.h"

static char tmpdir[256];

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int64_t count_dir(const char *dir)
{
    DIR *d = opendir(dir);
    int64_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n;
}

/* ---------------------------------------------------------------- real files */

static void check_layout(const struct kura_gguf *g, const char *name)
{
    uint64_t align = kura_gguf_alignment(g), data = kura_gguf_data_offset(g);
    CHECKF(data % align == 0, "%s: data offset %" PRIu64, name, data);
    const uint8_t *base = kura_gguf_base(g);
    uint64_t prev_end = 0;
    for (int64_t i = 0; i < kura_gguf_n_tensors(g); i++) {
        const struct kura_gguf_tensor *t = kura_gguf_tensor(g, i);
        CHECKF(t->offset % align == 0, "%s: tensor %" PRId64 " offset", name, i);
        CHECKF((const uint8_t *)t->data == base + data + t->offset, "%s: tensor %" PRId64, name, i);
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        CHECKF(t->size == (uint64_t)(n / kura_type_block_len(t->type)) *
                              kura_type_block_bytes(t->type), "%s: tensor %" PRId64 " size",
               name, i);
        CHECKF(t->offset >= prev_end, "%s: tensor %" PRId64 " overlaps", name, i);
        prev_end = t->offset + t->size;
        CHECK(data + prev_end <= kura_gguf_file_size(g));
    }
}

static void test_real_files(const char *shared)
{
    static const char *files[] = {
        "stories260K-F32.gguf",   "stories260K-F16.gguf",   "stories260K-Q8_0.gguf",
        "stories260K-Q4_0.gguf",  "tiny-qwen2-F32.gguf",    "tiny-qwen2-BF16.gguf",
        "tiny-qwen2-Q4_K_M.gguf", "tiny-qwen2-Q5_K_M.gguf", "tiny-qwen2-Q6_K.gguf",
        "tiny-qwen3-Q5_1.gguf",   "tiny-llama3-Q8_0.gguf",  "tiny-qwen2bpe-Q8_0.gguf",
        "vocab/ggml-vocab-llama-bpe.gguf", "vocab/ggml-vocab-qwen2.gguf"};
    bool seen[KURA_GGUF_VTYPE__COUNT] = {0}, seen_arr[KURA_GGUF_VTYPE__COUNT] = {0};
    char path[1024], buf[1024];
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        snprintf(path, sizeof path, "%s/models/%s", shared, files[f]);
        struct kura_errbuf eb = {0};
        struct kura_gguf *g;
        enum kura_err e = kura_gguf_open(path, &g, &eb);
        CHECKF(e == KURA_OK, "%s: %s", files[f], eb.msg);
        if (e)
            continue;
        CHECK(kura_gguf_version(g) == 3);
        for (int64_t i = 0; i < kura_gguf_n_kv(g); i++) {
            seen[kura_gguf_kv_type(g, i)] = true;
            if (kura_gguf_kv_type(g, i) == KURA_GGUF_ARRAY)
                seen_arr[kura_gguf_arr_type(g, i)] = true;
            kura_gguf_kv_format(g, i, buf, sizeof buf);
            CHECK(strlen(buf) < sizeof buf);
        }
        check_layout(g, files[f]);
        kura_gguf_close(g);
    }
    /* Types the real files use: strings, u32, f32, bool, arrays of str / f32 / i32. */
    CHECK(seen[KURA_GGUF_STRING] && seen[KURA_GGUF_UINT32] && seen[KURA_GGUF_FLOAT32]);
    CHECK(seen[KURA_GGUF_BOOL] && seen[KURA_GGUF_ARRAY]);
    CHECK(seen_arr[KURA_GGUF_STRING] && seen_arr[KURA_GGUF_FLOAT32] && seen_arr[KURA_GGUF_INT32]);

    /* Known facts of tiny-qwen2-F32. */
    snprintf(path, sizeof path, "%s/models/tiny-qwen2-F32.gguf", shared);
    struct kura_gguf *g;
    struct kura_errbuf eb = {0};
    if (kura_gguf_open(path, &g, &eb) != KURA_OK) {
        CHECKF(0, "%s", eb.msg);
        return;
    }
    uint64_t u;
    double fv;
    struct kura_str s;
    CHECK(kura_gguf_get_u64(g, "qwen2.embedding_length", &u) == KURA_OK && u == 256);
    CHECK(kura_gguf_get_u64(g, "qwen2.block_count", &u) == KURA_OK && u == 2);
    CHECK(kura_gguf_get_f64(g, "qwen2.rope.freq_base", &fv) == KURA_OK && fv == 1e6);
    CHECK(kura_gguf_get_str(g, "general.architecture", &s) == KURA_OK && kura_str_eq(s, "qwen2"));
    CHECK(kura_gguf_get_str(g, "qwen2.block_count", &s) == KURA_ERR_FORMAT);
    CHECK(kura_gguf_get_u64(g, "no.such.key", &u) == KURA_ERR_NOTFOUND);
    int64_t ti = kura_gguf_find_key(g, "tokenizer.ggml.tokens");
    CHECK(ti >= 0 && kura_gguf_arr_len(g, ti) == 512 && kura_gguf_arr_data(g, ti) == NULL);
    CHECK(kura_gguf_arr_str(g, ti, 512).len == 0);
    CHECK(kura_gguf_n_tensors(g) == 27);
    const struct kura_gguf_tensor *t = kura_gguf_find_tensor(g, "token_embd.weight");
    CHECK(t && t->type == KURA_TYPE_F32 && t->n_dims == 2 && t->ne[0] == 256 && t->ne[1] == 512 &&
          t->size == 256 * 512 * 4);
    CHECK(kura_gguf_find_tensor(g, "token_embd") == NULL);
    CHECK(kura_gguf_tensor(g, 27) == NULL && kura_gguf_tensor(g, -1) == NULL);
    CHECK(kura_gguf_kv_type(g, 1000) == KURA_GGUF_VTYPE__COUNT);

    /* Copying every kv and tensor of a file produced by the established engine must give back
     * the very same bytes: same layout rules (alignment, padding, field order). */
    struct kura_gguf_writer *w;
    CHECK(kura_gguf_writer_create(&w, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_copy_kvs(w, g, NULL, &eb) == KURA_OK);
    for (int64_t i = 0; i < kura_gguf_n_tensors(g); i++) {
        const struct kura_gguf_tensor *x = kura_gguf_tensor(g, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)x->name.len, x->name.ptr);
        CHECK(kura_gguf_writer_add_tensor_data(w, name, x->type, x->n_dims, x->ne, x->data,
                                               &eb) == KURA_OK);
    }
    char out[512];
    snprintf(out, sizeof out, "%s/copy.gguf", tmpdir);
    CHECKF(kura_gguf_writer_write(w, out, &eb) == KURA_OK, "%s", eb.msg);
    size_t n1, n2;
    uint8_t *a = read_file(path, &n1), *b = read_file(out, &n2);
    CHECK(a && b && n1 == n2 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);
    unlink(out);
    kura_gguf_writer_destroy(w);
    kura_gguf_close(g);
}

/* ---------------------------------------------------------------- writer round trip */

struct prod {
    const uint8_t *data;
    size_t len;
    size_t chunk;
    int fail;  /* 1: return an error midway; 2: write too little */
};

static enum kura_err produce(void *user, int64_t index, struct kura_gguf_sink *sink,
                             struct kura_errbuf *eb)
{
    struct prod *p = user;
    size_t end = p->fail == 2 ? p->len - 1 : p->len;
    for (size_t off = 0; off < end; off += p->chunk) {
        if (p->fail == 1 && off > 0)
            return kura_err_set(eb, KURA_ERR_IO, "producer for tensor %" PRId64 " failed", index);
        size_t n = end - off < p->chunk ? end - off : p->chunk;
        enum kura_err e = kura_gguf_sink_write(sink, p->data + off, n, eb);
        if (e)
            return e;
    }
    return KURA_OK;
}

static void fill_random(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
}

static void test_round_trip(void)
{
    struct kura_errbuf eb = {0};
    struct kura_gguf_writer *w;
    CHECK(kura_gguf_writer_create(&w, &eb) == KURA_OK);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int32_t i32 = -2000000000;
    uint64_t u64 = 0xfedcba9876543210ull;
    int64_t i64 = INT64_MIN + 5;
    double f64 = 3.141592653589793;
    CHECK(kura_gguf_writer_set_scalar(w, "t.u8", KURA_GGUF_UINT8, &u8, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_scalar(w, "t.i8", KURA_GGUF_INT8, &i8, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_scalar(w, "t.u16", KURA_GGUF_UINT16, &u16, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_scalar(w, "t.i16", KURA_GGUF_INT16, &i16, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_u32(w, "t.u32", 4000000000u, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_i32(w, "t.i32", i32, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_f32(w, "t.f32", 1.5e-6f, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_bool(w, "t.bool", true, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_str(w, "t.str", "h\0llo\n", 6, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_str(w, "t.empty", "", 0, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_u64(w, "t.u64", u64, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_scalar(w, "t.i64", KURA_GGUF_INT64, &i64, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_scalar(w, "t.f64", KURA_GGUF_FLOAT64, &f64, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_scalar(w, "t.bad", KURA_GGUF_STRING, &u8, &eb) ==
          KURA_ERR_INVALID);
    /* A numeric array of every element type. */
    uint8_t raw[64];
    fill_random(raw, sizeof raw, 7);
    for (int t = 0; t < KURA_GGUF_VTYPE__COUNT; t++) {
        char key[32];
        snprintf(key, sizeof key, "t.arr.%s", kura_gguf_vtype_name((enum kura_gguf_vtype)t));
        enum kura_err e = kura_gguf_writer_set_arr(w, key, (enum kura_gguf_vtype)t, raw, 3, &eb);
        CHECK(e == ((t == KURA_GGUF_STRING || t == KURA_GGUF_ARRAY) ? KURA_ERR_INVALID : KURA_OK));
    }
    CHECK(kura_gguf_writer_set_arr(w, "t.arr.empty", KURA_GGUF_INT32, NULL, 0, &eb) == KURA_OK);
    struct kura_str strs[3] = {{"alpha", 5}, {"", 0}, {"\xe2\x96\x81x", 4}};
    CHECK(kura_gguf_writer_set_arr_str(w, "t.strs", strs, 3, &eb) == KURA_OK);
    /* Replacing keeps the position; removing works. */
    CHECK(kura_gguf_writer_set_u32(w, "t.replaced", 1, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_u32(w, "t.gone", 1, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_set_u32(w, "t.replaced", 2, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_remove(w, "t.gone") && !kura_gguf_writer_remove(w, "t.gone"));
    CHECK(kura_gguf_writer_set_u32(w, "general.alignment", 64, &eb) == KURA_OK);

    /* Tensors: buffers and producers, several types, sizes not multiples of the alignment. */
    static const struct { const char *name; enum kura_type type; uint32_t nd; int64_t ne[4]; }
    specs[] = {
        {"f32.vec", KURA_TYPE_F32, 1, {7}},
        {"f16.mat", KURA_TYPE_F16, 2, {5, 3}},
        {"q8_0.mat", KURA_TYPE_Q8_0, 2, {64, 3}},
        {"q4_k.mat", KURA_TYPE_Q4_K, 3, {256, 2, 2}},
        {"q6_k.4d", KURA_TYPE_Q6_K, 4, {256, 1, 2, 1}},
        {"bf16.mat", KURA_TYPE_BF16, 2, {9, 1}},
        {"q4_0.mat", KURA_TYPE_Q4_0, 2, {32, 5}},
    };
    enum { NT = sizeof specs / sizeof specs[0] };
    uint8_t *data[NT];
    struct prod prods[NT];
    for (int i = 0; i < NT; i++) {
        int64_t n = specs[i].ne[0];
        for (uint32_t d = 1; d < specs[i].nd; d++)
            n *= specs[i].ne[d];
        size_t bytes = (size_t)(n / kura_type_block_len(specs[i].type)) *
                       kura_type_block_bytes(specs[i].type);
        data[i] = malloc(bytes);
        fill_random(data[i], bytes, (uint32_t)i + 1);
        prods[i] = (struct prod){data[i], bytes, (size_t)(i * 7 + 1), 0};
        enum kura_err e;
        if (i % 2)
            e = kura_gguf_writer_add_tensor_data(w, specs[i].name, specs[i].type, specs[i].nd,
                                                 specs[i].ne, data[i], &eb);
        else
            e = kura_gguf_writer_add_tensor(w, specs[i].name, specs[i].type, specs[i].nd,
                                            specs[i].ne, produce, &prods[i], NULL, &eb);
        CHECKF(e == KURA_OK, "%s", eb.msg);
        CHECK(kura_gguf_writer_tensor_size(w, i) == bytes);
    }
    /* Bad tensors are refused. */
    int64_t ne_bad[4] = {33, 2};
    CHECK(kura_gguf_writer_add_tensor_data(w, "bad", KURA_TYPE_Q8_0, 2, ne_bad, raw, &eb) ==
          KURA_ERR_INVALID && strstr(eb.msg, "block size"));
    CHECK(kura_gguf_writer_add_tensor_data(w, "f32.vec", KURA_TYPE_F32, 1, ne_bad, raw, &eb) ==
          KURA_ERR_INVALID && strstr(eb.msg, "twice"));
    CHECK(kura_gguf_writer_add_tensor_data(w, "bad", KURA_TYPE_F32, 5, ne_bad, raw, &eb) ==
          KURA_ERR_INVALID && strstr(eb.msg, "n_dims"));
    int64_t ne_zero[2] = {4, 0};
    CHECK(kura_gguf_writer_add_tensor_data(w, "bad", KURA_TYPE_F32, 2, ne_zero, raw, &eb) ==
          KURA_ERR_INVALID && strstr(eb.msg, "dimension 1"));
    CHECK(kura_gguf_writer_add_tensor_data(w, "bad", (enum kura_type)5, 1, ne_bad, raw, &eb) ==
          KURA_ERR_INVALID);

    char path[512];
    snprintf(path, sizeof path, "%s/rt.gguf", tmpdir);
    enum kura_err e = kura_gguf_writer_write(w, path, &eb);
    CHECKF(e == KURA_OK, "%s", eb.msg);
    struct kura_gguf *g = NULL;
    e = kura_gguf_open(path, &g, &eb);
    CHECKF(e == KURA_OK, "%s", eb.msg);
    if (e == KURA_OK) {
        CHECK(kura_gguf_alignment(g) == 64);
        CHECK(kura_gguf_n_kv(g) == kura_gguf_writer_n_kv(w));
        uint64_t u;
        int64_t iv;
        double fv;
        bool bv;
        struct kura_str s;
        CHECK(kura_gguf_get_u64(g, "t.u8", &u) == KURA_OK && u == 200);
        CHECK(kura_gguf_get_i64(g, "t.i8", &iv) == KURA_OK && iv == -100);
        CHECK(kura_gguf_get_u64(g, "t.u16", &u) == KURA_OK && u == 60000);
        CHECK(kura_gguf_get_i64(g, "t.i16", &iv) == KURA_OK && iv == -30000);
        CHECK(kura_gguf_get_u64(g, "t.u32", &u) == KURA_OK && u == 4000000000u);
        CHECK(kura_gguf_get_i64(g, "t.i32", &iv) == KURA_OK && iv == i32);
        CHECK(kura_gguf_get_f64(g, "t.f32", &fv) == KURA_OK && fv == (double)1.5e-6f);
        CHECK(kura_gguf_get_bool(g, "t.bool", &bv) == KURA_OK && bv);
        CHECK(kura_gguf_get_str(g, "t.str", &s) == KURA_OK && s.len == 6 &&
              memcmp(s.ptr, "h\0llo\n", 6) == 0);
        CHECK(kura_gguf_get_str(g, "t.empty", &s) == KURA_OK && s.len == 0);
        CHECK(kura_gguf_get_u64(g, "t.u64", &u) == KURA_OK && u == u64);
        CHECK(kura_gguf_get_i64(g, "t.i64", &iv) == KURA_OK && iv == i64);
        CHECK(kura_gguf_get_f64(g, "t.f64", &fv) == KURA_OK && fv == f64);
        CHECK(kura_gguf_get_u64(g, "t.replaced", &u) == KURA_OK && u == 2);
        CHECK(kura_gguf_find_key(g, "t.gone") < 0);
        CHECK(kura_gguf_find_key(g, "t.replaced") < kura_gguf_find_key(g, "t.strs") + 2);
        for (int t = 0; t < KURA_GGUF_VTYPE__COUNT; t++) {
            if (t == KURA_GGUF_STRING || t == KURA_GGUF_ARRAY)
                continue;
            char key[32];
            snprintf(key, sizeof key, "t.arr.%s", kura_gguf_vtype_name((enum kura_gguf_vtype)t));
            int64_t i = kura_gguf_find_key(g, key);
            CHECKF(i >= 0 && kura_gguf_arr_type(g, i) == (enum kura_gguf_vtype)t &&
                   kura_gguf_arr_len(g, i) == 3, "%s", key);
            if (i < 0)
                continue;
            const uint8_t *d = kura_gguf_arr_data(g, i);
            if (t == KURA_GGUF_BOOL)
                CHECK(d[0] == (raw[0] != 0) && d[1] == (raw[1] != 0) && d[2] == (raw[2] != 0));
            else
                CHECK(memcmp(d, raw, 3 * (size_t)(t == KURA_GGUF_UINT8 || t == KURA_GGUF_INT8
                                                      ? 1
                                                  : t <= KURA_GGUF_INT16 ? 2
                                                  : t <= KURA_GGUF_FLOAT32 ? 4 : 8)) == 0);
        }
        int64_t ai = kura_gguf_find_key(g, "t.strs");
        CHECK(kura_gguf_arr_len(g, ai) == 3 && kura_str_eq(kura_gguf_arr_str(g, ai, 0), "alpha") &&
              kura_gguf_arr_str(g, ai, 1).len == 0 &&
              kura_str_eq(kura_gguf_arr_str(g, ai, 2), "\xe2\x96\x81x"));
        ai = kura_gguf_find_key(g, "t.arr.empty");
        CHECK(ai >= 0 && kura_gguf_arr_len(g, ai) == 0);
        CHECK(kura_gguf_n_tensors(g) == NT);
        for (int i = 0; i < NT && i < kura_gguf_n_tensors(g); i++) {
            const struct kura_gguf_tensor *t = kura_gguf_tensor(g, i);
            CHECK(kura_str_eq(t->name, specs[i].name) && t->type == specs[i].type &&
                  t->n_dims == specs[i].nd);
            for (uint32_t d = 0; d < specs[i].nd; d++)
                CHECK(t->ne[d] == specs[i].ne[d]);
            CHECK(t->offset % 64 == 0 && t->size == prods[i].len &&
                  memcmp(t->data, data[i], t->size) == 0);
        }
        CHECK(kura_gguf_file_size(g) % 64 == 0);
        kura_gguf_close(g);
    }

    /* Copy every kv of the written file into a second writer: byte-identical values. */
    if (kura_gguf_open(path, &g, &eb) == KURA_OK) {
        struct kura_gguf_writer *w2;
        CHECK(kura_gguf_writer_create(&w2, &eb) == KURA_OK);
        CHECK(kura_gguf_writer_copy_kvs(w2, g, "t.arr.", &eb) == KURA_OK);
        CHECK(kura_gguf_writer_n_kv(w2) == KURA_GGUF_VTYPE__COUNT - 2 + 1);
        char p2[512];
        snprintf(p2, sizeof p2, "%s/rt2.gguf", tmpdir);
        CHECK(kura_gguf_writer_write(w2, p2, &eb) == KURA_OK);
        struct kura_gguf *g2;
        if (kura_gguf_open(p2, &g2, &eb) == KURA_OK) {
            for (int64_t i = 0; i < kura_gguf_n_kv(g2); i++) {
                struct kura_str k = kura_gguf_key(g2, i);
                char key[64];
                snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
                size_t l1, l2;
                const void *r1 = kura_gguf_kv_raw(g, kura_gguf_find_key(g, key), &l1);
                const void *r2 = kura_gguf_kv_raw(g2, i, &l2);
                CHECKF(r1 && r2 && l1 == l2 && memcmp(r1, r2, l1) == 0, "%s", key);
            }
            CHECK(kura_gguf_n_tensors(g2) == 0);
            kura_gguf_close(g2);
        }
        unlink(p2);
        kura_gguf_writer_destroy(w2);
        kura_gguf_close(g);
    }

    /* Failures never leave a half-written file: the old file stays, no temp file remains. */
    size_t before_len;
    uint8_t *before = read_file(path, &before_len);
    prods[0].fail = 1;
    e = kura_gguf_writer_write(w, path, &eb);
    CHECKF(e == KURA_ERR_IO && strstr(eb.msg, "producer for tensor 0"), "%s", eb.msg);
    prods[0].fail = 2;
    e = kura_gguf_writer_write(w, path, &eb);
    CHECKF(e == KURA_ERR_INTERNAL && strstr(eb.msg, "f32.vec"), "%s", eb.msg);
    size_t after_len;
    uint8_t *after = read_file(path, &after_len);
    CHECK(before && after && before_len == after_len && memcmp(before, after, after_len) == 0);
    CHECK(count_dir(tmpdir) == 1);
    prods[0].fail = 0;
    CHECK(kura_gguf_writer_set_u32(w, "general.alignment", 48, &eb) == KURA_OK);
    CHECK(kura_gguf_writer_write(w, path, &eb) == KURA_ERR_INVALID &&
          strstr(eb.msg, "general.alignment"));
    CHECK(kura_gguf_writer_remove(w, "general.alignment"));
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.gguf", tmpdir);
    CHECK(kura_gguf_writer_write(w, bad, &eb) == KURA_ERR_IO && strstr(eb.msg, "x.gguf"));
    /* Default alignment 32 once the key is gone. */
    CHECK(kura_gguf_writer_write(w, path, &eb) == KURA_OK);
    if (kura_gguf_open(path, &g, &eb) == KURA_OK) {
        CHECK(kura_gguf_alignment(g) == 32 && kura_gguf_data_offset(g) % 32 == 0);
        for (int64_t i = 0; i < kura_gguf_n_tensors(g); i++)
            CHECK(memcmp(kura_gguf_tensor(g, i)->data, data[i], prods[i].len) == 0);
        kura_gguf_close(g);
    }
    free(before);
    free(after);
    unlink(path);
    for (int i = 0; i < NT; i++)
        free(data[i]);
    kura_gguf_writer_destroy(w);
    kura_gguf_writer_destroy(NULL);
}

/* ---------------------------------------------------------------- malformed files */

/* A small valid file whose last tensor ends exactly at the end of the file (so that every
 * truncation is an error). */
static uint8_t *make_small(size_t *len)
{
    struct kura_errbuf eb = {0};
    struct kura_gguf_writer *w;
    if (kura_gguf_writer_create(&w, &eb))
        return NULL;
    static float fa[32];
    static uint8_t qb[2 * 34];
    static uint16_t hc[16];
    for (int i = 0; i < 32; i++)
        fa[i] = (float)i;
    fill_random(qb, sizeof qb, 3);
    struct kura_str strs[2] = {{"x", 1}, {"yz", 2}};
    int32_t ia[3] = {1, -2, 3};
    kura_gguf_writer_set_str(w, "general.architecture", "test", 4, &eb);
    kura_gguf_writer_set_u32(w, "general.alignment", 32, &eb);
    kura_gguf_writer_set_arr(w, "test.ints", KURA_GGUF_INT32, ia, 3, &eb);
    kura_gguf_writer_set_arr_str(w, "test.strs", strs, 2, &eb);
    kura_gguf_writer_set_f32(w, "test.f", 0.5f, &eb);
    int64_t ne_a[2] = {8, 4}, ne_b[2] = {32, 2}, ne_c[1] = {16};
    kura_gguf_writer_add_tensor_data(w, "ta", KURA_TYPE_F32, 2, ne_a, fa, &eb);
    kura_gguf_writer_add_tensor_data(w, "tb", KURA_TYPE_Q8_0, 2, ne_b, qb, &eb);
    kura_gguf_writer_add_tensor_data(w, "tc", KURA_TYPE_F16, 1, ne_c, hc, &eb);
    char path[512];
    snprintf(path, sizeof path, "%s/small.gguf", tmpdir);
    uint8_t *b = NULL;
    if (kura_gguf_writer_write(w, path, &eb) == KURA_OK)
        b = read_file(path, len);
    unlink(path);
    kura_gguf_writer_destroy(w);
    return b;
}

static size_t find(const uint8_t *b, size_t len, const char *s, size_t slen)
{
    const uint8_t *p = memmem(b, len, s, slen);
    return p ? (size_t)(p - b) : 0;
}

/* Opens a patched copy; expects failure with a message containing each of want[] (NULL-ended). */
static void expect_fail(const uint8_t *b, size_t len, const char *what, ...)
{
    struct kura_errbuf eb = {0};
    struct kura_gguf *g = NULL;
    enum kura_err e = kura_gguf_open_buffer(b, len, &g, &eb);
    CHECKF(e != KURA_OK && g == NULL, "%s: accepted", what);
    va_list ap;
    va_start(ap, what);
    const char *want;
    while ((want = va_arg(ap, const char *)))
        CHECKF(strstr(eb.msg, want) != NULL, "%s: message '%s' lacks '%s'", what, eb.msg, want);
    va_end(ap);
    kura_gguf_close(g);
}

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static void test_malformed(void)
{
    size_t len;
    uint8_t *orig = make_small(&len);
    CHECK(orig != NULL);
    if (!orig)
        return;
    struct kura_errbuf eb = {0};
    struct kura_gguf *g;
    CHECKF(kura_gguf_open_buffer(orig, len, &g, &eb) == KURA_OK, "%s", eb.msg);
    CHECK(kura_gguf_n_tensors(g) == 3 && kura_gguf_n_kv(g) == 5);
    kura_gguf_close(g);

    /* Every truncation fails cleanly (each on an exact-size heap copy so ASan sees overreads). */
    int truncation_failures = 0;
    for (size_t n = 0; n < len; n++) {
        uint8_t *t = malloc(n ? n : 1);
        memcpy(t, orig, n);
        g = NULL;
        eb.msg[0] = 0;
        if (kura_gguf_open_buffer(t, n, &g, &eb) != KURA_OK && g == NULL && eb.msg[0])
            truncation_failures++;
        else
            fprintf(stderr, "truncation at %zu accepted\n", n);
        kura_gguf_close(g);
        free(t);
    }
    CHECK(truncation_failures == (int)len);

    uint8_t *b = malloc(len);
#define RESET() memcpy(b, orig, len)
    size_t k_arch = find(orig, len, "general.architecture", 20) - 8;
    size_t k_ints = find(orig, len, "test.ints", 9) - 8;
    size_t k_strs = find(orig, len, "test.strs", 9) - 8;
    size_t k_align = find(orig, len, "general.alignment", 17) - 8;
    size_t t_a = find(orig, len, "\x02\0\0\0\0\0\0\0ta", 10);
    size_t t_b = find(orig, len, "\x02\0\0\0\0\0\0\0tb", 10);
    CHECK(k_arch == 24 && k_ints > 0 && k_strs > 0 && t_a > 0 && t_b > 0);
    size_t ta_ndims = t_a + 10, ta_ne0 = ta_ndims + 4, ta_type = ta_ne0 + 16,
           ta_off = ta_type + 4, tb_off = t_b + 10 + 4 + 16 + 4;

    RESET(); put32(b, 0x46554746);
    expect_fail(b, len, "magic", "offset 0", "magic", NULL);
    RESET(); put32(b + 4, 1);
    expect_fail(b, len, "version 1", "offset 4", "version 1", NULL);
    RESET(); put32(b + 4, 4);
    expect_fail(b, len, "version 4", "version 4", NULL);
    RESET(); put64(b + 8, 1ull << 60);
    expect_fail(b, len, "n_tensors", "offset 8", "tensor count", NULL);
    RESET(); put64(b + 16, 1ull << 60);
    expect_fail(b, len, "n_kv", "offset 16", "metadata count", NULL);
    RESET(); put64(b + 16, 6);
    expect_fail(b, len, "n_kv + 1", NULL);
    RESET(); put64(b + k_arch, 1ull << 60);
    expect_fail(b, len, "key length", "metadata #0 key", "offset 24", "exceeds limit", NULL);
    RESET(); put64(b + k_arch, 60000);
    expect_fail(b, len, "key length past end", "metadata #0 key", "offset 24", NULL);
    RESET(); put64(b + k_arch + 8 + 20 + 4, 1ull << 62);
    expect_fail(b, len, "string value length", "'general.architecture' string value",
                "exceeds limit", NULL);
    RESET(); put64(b + k_arch + 8 + 20 + 4, 5000);
    expect_fail(b, len, "string past end", "'general.architecture' string value", "offset 56",
                "length 5000 runs past the end",
                NULL);
    RESET(); put32(b + k_arch + 8 + 20, 13);
    expect_fail(b, len, "unknown value type", "'general.architecture'", "unknown value type 13",
                NULL);
    RESET(); put32(b + k_arch + 8 + 20, 0xffffffffu);
    expect_fail(b, len, "value type -1", "unknown value type 4294967295", NULL);
    RESET(); put32(b + k_ints + 8 + 9 + 4, 9);
    expect_fail(b, len, "nested array", "'test.ints'", "bad array element type 9", NULL);
    RESET(); put32(b + k_ints + 8 + 9 + 4, 77);
    expect_fail(b, len, "array elem type", "'test.ints'", "bad array element type 77", NULL);
    RESET(); put64(b + k_ints + 8 + 9 + 8, 1ull << 60);
    expect_fail(b, len, "array length", "'test.ints'", "array length", NULL);
    RESET(); put64(b + k_ints + 8 + 9 + 8, 1000000);
    expect_fail(b, len, "array data past end", "'test.ints' array data", NULL);
    RESET(); put64(b + k_strs + 8 + 9 + 8, 1ull << 27);
    expect_fail(b, len, "string array length", "'test.strs'", "cannot fit", NULL);
    RESET(); put64(b + k_strs + 8 + 9 + 16, 1ull << 61);
    expect_fail(b, len, "array string length", "'test.strs' string #0", "exceeds limit", NULL);
    RESET(); put32(b + k_align + 8 + 17 + 4, 48);
    expect_fail(b, len, "alignment 48", "general.alignment", "power of two", NULL);
    RESET(); put32(b + k_align + 8 + 17 + 4, 0);
    expect_fail(b, len, "alignment 0", "general.alignment", NULL);
    RESET(); put32(b + k_align + 8 + 17 + 4, 1u << 30);
    expect_fail(b, len, "alignment 2^30", "general.alignment", NULL);
    RESET(); put32(b + k_align + 8 + 17, KURA_GGUF_FLOAT32);
    expect_fail(b, len, "alignment f32", "general.alignment", NULL);
    RESET(); memcpy(b + k_ints + 8, "test.strs", 9);
    expect_fail(b, len, "duplicate key", "'test.strs' appears twice", NULL);
    RESET(); put64(b + t_a, 1ull << 40);
    expect_fail(b, len, "tensor name length", "tensor #0 name", "exceeds limit", NULL);
    RESET(); put32(b + ta_ndims, 0);
    expect_fail(b, len, "n_dims 0", "'ta'", "n_dims 0", NULL);
    RESET(); put32(b + ta_ndims, 5);
    expect_fail(b, len, "n_dims 5", "'ta'", "n_dims 5", NULL);
    RESET(); put64(b + ta_ne0, 0);
    expect_fail(b, len, "zero dim", "'ta'", "dimension 0 = 0", NULL);
    RESET(); put64(b + ta_ne0 + 8, 0);
    expect_fail(b, len, "zero dim 1", "'ta'", "dimension 1 = 0", NULL);
    RESET(); put64(b + ta_ne0, 1ull << 62);
    expect_fail(b, len, "overflowing dims", "'ta'", "dimension 1", NULL);
    RESET(); put64(b + ta_ne0, 1ull << 63);
    expect_fail(b, len, "negative dim", "'ta'", "dimension 0", NULL);
    RESET(); put64(b + ta_ne0, 1ull << 40);
    expect_fail(b, len, "huge tensor", "'ta'", "past the end", NULL);
    RESET(); put32(b + ta_type, 4);
    expect_fail(b, len, "removed type 4", "'ta'", "unknown tensor type 4", NULL);
    RESET(); put32(b + ta_type, 1000);
    expect_fail(b, len, "unknown tensor type", "'ta'", "unknown tensor type 1000", NULL);
    RESET(); put32(b + ta_type, KURA_TYPE_Q4_K);
    expect_fail(b, len, "row not multiple of block", "'ta'", "row length 8", NULL);
    RESET(); put64(b + ta_off, 4);
    expect_fail(b, len, "misaligned offset", "'ta'", "offset 4", "not aligned", NULL);
    RESET(); put64(b + ta_off, 1ull << 62);
    expect_fail(b, len, "offset past end", "'ta'", "past the end", NULL);
    RESET(); put64(b + tb_off, UINT64_MAX - 31);
    expect_fail(b, len, "offset overflow", "'tb'", "past the end", NULL);
    RESET(); memcpy(b + t_b + 8, "ta", 2);
    expect_fail(b, len, "duplicate tensor", "tensor #1 name 'ta' appears twice", NULL);
    RESET(); put64(b + 8, 4);
    expect_fail(b, len, "n_tensors + 1", "tensor #3 name", "empty name", NULL);
    RESET(); put64(b + k_arch, 0);
    expect_fail(b, len, "empty key", "metadata #0 key", "offset 24", "empty key", NULL);
    /* Also through the file path (mmap): truncated header and a bad file. */
    char path[512];
    snprintf(path, sizeof path, "%s/bad.gguf", tmpdir);
    FILE *f = fopen(path, "wb");
    fwrite(orig, 1, 20, f);
    fclose(f);
    CHECK(kura_gguf_open(path, &g, &eb) == KURA_ERR_FORMAT && strstr(eb.msg, "bad.gguf") &&
          strstr(eb.msg, "too small"));
    f = fopen(path, "wb");
    fwrite(orig, 1, len - 1, f);
    fclose(f);
    CHECK(kura_gguf_open(path, &g, &eb) == KURA_ERR_FORMAT && strstr(eb.msg, "bad.gguf: ") &&
          strstr(eb.msg, "'tc'"));
    CHECK(kura_gguf_open(tmpdir, &g, &eb) == KURA_ERR_IO);
    unlink(path);
    snprintf(path, sizeof path, "%s/missing.gguf", tmpdir);
    CHECK(kura_gguf_open(path, &g, &eb) == KURA_ERR_IO && strstr(eb.msg, "missing.gguf"));
    free(b);
    free(orig);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kura-test-gguf-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_malformed();
    const char *shared = test_shared_dir();
    if (shared)
        test_real_files(shared);
    else
        fprintf(stderr, "note: real-file checks skipped\n");
    rmdir(tmpdir);
    return test_finish();
}
