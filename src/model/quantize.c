/* Quantization recipes and `kura quantize`.
 *
 * The per-tensor type choice follows the publicly documented behaviour of the established
 * engine's quantizer (llama.cpp `llama-quantize`), checked against the reference files in
 * ../shared/models (tiny-qwen2-*, tiny-qwen3-*, stories260K-*):
 *
 *  - Only tensors with >= 2 dimensions whose name ends in "weight" are converted; 1-D tensors
 *    (norms, biases, rope_freqs) keep their type (F32 in every real file).
 *  - f32 / f16 / bf16: every such tensor gets the base type, no special cases.
 *  - Quantized mixes: the output projection (output.weight, or token_embd.weight when the
 *    embeddings are tied) gets Q6_K, except Q8_0 stays Q8_0; if its row length is not a
 *    multiple of the base type's block it gets Q8_0.
 *  - q4_k_m and q5_k_m: attn_v.weight and ffn_down.weight of layer i get Q6_K when
 *    use_more_bits(i, n_layer): the first eighth of the layers, the last eighth, and every
 *    third layer in between (i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2). Everything else,
 *    token_embd included, gets the base type (Q4_K / Q5_K).
 *  - A tensor whose row length is not a multiple of the chosen type's block length falls back:
 *    Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, anything else (or a fallback that still does not
 *    fit) -> F16. E.g. stories260K's 172-column ffn_down becomes F16 in Q8_0 and Q4_0 files.
 *  - general.file_type gets the ggml file-type number of the mix (F32 0, F16 1, Q4_0 2,
 *    Q4_1 3, Q8_0 7, Q5_0 8, Q5_1 9, Q4_K_M 15, Q5_K_M 17, Q6_K 18, BF16 32) and
 *    general.quantization_version is set to 2. */
#include "kura/quantize.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "kernels/kernels.h"
#include "kura/gguf.h"
#include "kura/gguf_write.h"

#define QUANT_VERSION 2u
#define CHUNK_FLOATS (8u << 20) /* floats converted per step: bounds memory at ~32 MB + out */
#define MAX_THREADS 256

static const struct {
    const char *name;
    enum kura_type base;
    uint32_t file_type;
} MIXES[KURA_QMIX__COUNT] = {
    [KURA_QMIX_F32] = {"f32", KURA_TYPE_F32, 0},
    [KURA_QMIX_F16] = {"f16", KURA_TYPE_F16, 1},
    [KURA_QMIX_BF16] = {"bf16", KURA_TYPE_BF16, 32},
    [KURA_QMIX_Q8_0] = {"q8_0", KURA_TYPE_Q8_0, 7},
    [KURA_QMIX_Q4_0] = {"q4_0", KURA_TYPE_Q4_0, 2},
    [KURA_QMIX_Q4_1] = {"q4_1", KURA_TYPE_Q4_1, 3},
    [KURA_QMIX_Q5_0] = {"q5_0", KURA_TYPE_Q5_0, 8},
    [KURA_QMIX_Q5_1] = {"q5_1", KURA_TYPE_Q5_1, 9},
    [KURA_QMIX_Q4_K_M] = {"q4_k_m", KURA_TYPE_Q4_K, 15},
    [KURA_QMIX_Q5_K_M] = {"q5_k_m", KURA_TYPE_Q5_K, 17},
    [KURA_QMIX_Q6_K] = {"q6_k", KURA_TYPE_Q6_K, 18},
};

int kura_qmix_from_name(const char *name)
{
    for (int i = 0; i < KURA_QMIX__COUNT; i++)
        if (strcasecmp(MIXES[i].name, name) == 0)
            return i;
    return -1;
}

const char *kura_qmix_name(enum kura_qmix mix)
{
    return (unsigned)mix < KURA_QMIX__COUNT ? MIXES[mix].name : NULL;
}

const char *kura_qmix_names(void)
{
    return "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_m, q5_k_m, q6_k";
}

uint32_t kura_qmix_file_type(enum kura_qmix mix)
{
    return (unsigned)mix < KURA_QMIX__COUNT ? MIXES[mix].file_type : 0;
}

enum kura_type kura_qmix_base_type(enum kura_qmix mix)
{
    return (unsigned)mix < KURA_QMIX__COUNT ? MIXES[mix].base : KURA_TYPE_F32;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Layer index of "blk.N.<...>", or -1. */
static int64_t layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    int64_t v = 0;
    const char *p = name + 4;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > 1000000)
            return -1;
    }
    return *p == '.' ? v : -1;
}

static bool use_more_bits(int64_t i, int64_t n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static bool fits(enum kura_type t, int64_t ne0)
{
    int64_t b = kura_type_block_len(t);
    return b > 0 && ne0 % b == 0;
}

static enum kura_type compatible(enum kura_type t, int64_t ne0)
{
    if (fits(t, ne0))
        return t;
    switch (t) {
    case KURA_TYPE_Q4_K: t = KURA_TYPE_Q5_0; break;
    case KURA_TYPE_Q5_K: t = KURA_TYPE_Q5_1; break;
    case KURA_TYPE_Q6_K: t = KURA_TYPE_Q8_0; break;
    default: t = KURA_TYPE_F16; break;
    }
    return fits(t, ne0) ? t : KURA_TYPE_F16;
}

enum kura_type kura_qmix_tensor_type(enum kura_qmix mix, const struct kura_qmix_model *m,
                                     const char *name, uint32_t n_dims, int64_t ne0,
                                     enum kura_type src_type)
{
    if ((unsigned)mix >= KURA_QMIX__COUNT || n_dims < 2 || !ends_with(name, "weight"))
        return src_type;
    enum kura_type base = MIXES[mix].base, t = base;
    if (kura_type_block_len(base) == 1)
        return base; /* f32 / f16 / bf16: plain conversion */
    bool is_output = strcmp(name, "output.weight") == 0 ||
                     (!m->has_output && strcmp(name, "token_embd.weight") == 0);
    if (is_output) {
        if (!fits(base, ne0))
            t = KURA_TYPE_Q8_0;
        else if (base != KURA_TYPE_Q8_0)
            t = KURA_TYPE_Q6_K;
    } else if (mix == KURA_QMIX_Q4_K_M || mix == KURA_QMIX_Q5_K_M) {
        int64_t layer = layer_of(name);
        if (layer >= 0 && (ends_with(name, ".attn_v.weight") || ends_with(name, ".ffn_down.weight")) &&
            use_more_bits(layer, m->n_layer))
            t = KURA_TYPE_Q6_K;
    }
    return compatible(t, ne0);
}

/* ---- row conversion on threads ---- */

struct qjob {
    const struct kura_type_traits *tr;
    const float *src;
    uint8_t *dst;
    int64_t r0, r1, row_len;
    size_t row_bytes;
};

static void *qjob_run(void *arg)
{
    struct qjob *j = arg;
    if (j->r1 > j->r0)
        j->tr->quantize(j->src + j->r0 * j->row_len, j->dst + (size_t)j->r0 * j->row_bytes,
                          (j->r1 - j->r0) * j->row_len);
    return NULL;
}

enum kura_err kura_quant_rows(enum kura_type dst_type, const float *src, void *dst,
                              int64_t n_rows, int64_t row_len, int n_threads,
                              struct kura_errbuf *eb)
{
    kura_kernels_init();
    const struct kura_type_traits *tr = kura_type_traits(dst_type);
    if (!tr || !tr->quantize)
        return kura_err_set(eb, KURA_ERR_UNSUPPORTED, "cannot convert to tensor type %s",
                            kura_type_name(dst_type) ? kura_type_name(dst_type) : "?");
    if (row_len <= 0 || row_len % tr->block_len != 0)
        return kura_err_set(eb, KURA_ERR_INVALID, "row length %" PRId64 " is not a multiple of "
                            "the %s block length", row_len, kura_type_name(dst_type));
    size_t row_bytes = kura_row_bytes(dst_type, row_len);
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > MAX_THREADS)
        n_threads = MAX_THREADS;
    /* Threads only pay off for enough work. */
    int64_t work = n_rows * row_len;
    if (work < 65536)
        n_threads = 1;
    if (n_threads > n_rows)
        n_threads = (int)(n_rows > 0 ? n_rows : 1);
    struct qjob jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    for (int i = 0; i < n_threads; i++)
        jobs[i] = (struct qjob){tr, src, dst, n_rows * i / n_threads, n_rows * (i + 1) / n_threads,
                                row_len, row_bytes};
    for (int i = 1; i < n_threads; i++)
        started[i] = pthread_create(&tids[i], NULL, qjob_run, &jobs[i]) == 0;
    qjob_run(&jobs[0]);
    for (int i = 1; i < n_threads; i++) {
        if (started[i])
            pthread_join(tids[i], NULL);
        else
            qjob_run(&jobs[i]); /* could not start a thread: do its share here */
    }
    return KURA_OK;
}

/* ---- kura quantize ---- */

struct qfile {
    const struct kura_gguf *g;
    enum kura_type *dst; /* per tensor */
    int n_threads;
    FILE *log;
    float *fbuf;
    size_t fbuf_n;
    uint8_t *qbuf;
    size_t qbuf_n;
};

static bool grow(void **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    void *n = realloc(*p, need);
    if (!n)
        return false;
    *p = n;
    *cap = need;
    return true;
}

static enum kura_err produce_tensor(void *user, int64_t index, struct kura_gguf_sink *sink,
                                    struct kura_errbuf *eb)
{
    struct qfile *q = user;
    const struct kura_gguf_tensor *t = kura_gguf_tensor(q->g, index);
    enum kura_type dst = q->dst[index];
    int nlen = (int)t->name.len;
    if (q->log)
        fprintf(q->log, "[%4" PRId64 "/%4" PRId64 "] %-40.*s %-5s -> %-5s [%" PRId64 ", %" PRId64
                "]\n", index + 1, kura_gguf_n_tensors(q->g), nlen, t->name.ptr,
                kura_type_name(t->type), kura_type_name(dst), t->ne[0],
                t->ne[1] * t->ne[2] * t->ne[3]);
    if (dst == t->type)
        return kura_gguf_sink_write(sink, t->data, t->size, eb);
    const struct kura_type_traits *src_tr = kura_type_traits(t->type);
    if (!src_tr || !src_tr->to_float)
        return kura_err_set(eb, KURA_ERR_UNSUPPORTED, "tensor '%.*s': cannot read tensor type %s",
                            nlen, t->name.ptr, kura_type_name(t->type));
    int64_t row_len = t->ne[0], n_rows = t->ne[1] * t->ne[2] * t->ne[3];
    int64_t chunk = (int64_t)CHUNK_FLOATS / row_len;
    if (chunk < 1)
        chunk = 1;
    if (chunk > n_rows)
        chunk = n_rows;
    size_t src_row = kura_row_bytes(t->type, row_len), dst_row = kura_row_bytes(dst, row_len);
    if (!grow((void **)&q->fbuf, &q->fbuf_n, (size_t)(chunk * row_len) * sizeof(float)) ||
        !grow((void **)&q->qbuf, &q->qbuf_n, (size_t)chunk * dst_row))
        return kura_err_set(eb, KURA_ERR_NOMEM, "tensor '%.*s': out of memory", nlen,
                            t->name.ptr);
    const uint8_t *src = t->data;
    for (int64_t r = 0; r < n_rows; r += chunk) {
        int64_t n = n_rows - r < chunk ? n_rows - r : chunk;
        src_tr->to_float(src + (size_t)r * src_row, q->fbuf, n * row_len);
        enum kura_err e = kura_quant_rows(dst, q->fbuf, q->qbuf, n, row_len, q->n_threads, eb);
        if (!e)
            e = kura_gguf_sink_write(sink, q->qbuf, (size_t)n * dst_row, eb);
        if (e) {
            kura_err_prefix(eb, "tensor '%.*s': ", nlen, t->name.ptr);
            return e;
        }
    }
    return KURA_OK;
}

enum kura_err kura_quantize_file(const char *in_path, const char *out_path, enum kura_qmix mix,
                                 int n_threads, void *log, struct kura_errbuf *eb)
{
    struct kura_gguf *g = NULL;
    struct kura_gguf_writer *w = NULL;
    struct qfile q = {.n_threads = n_threads, .log = log};
    enum kura_err e;
    if ((unsigned)mix >= KURA_QMIX__COUNT)
        return kura_err_set(eb, KURA_ERR_INVALID, "unknown quantization type %d", (int)mix);
    kura_kernels_init();
    if ((e = kura_gguf_open(in_path, &g, eb)) || (e = kura_gguf_writer_create(&w, eb)))
        goto fail;
    q.g = g;
    int64_t nt = kura_gguf_n_tensors(g);
    q.dst = calloc((size_t)(nt ? nt : 1), sizeof *q.dst);
    if (!q.dst) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    struct kura_qmix_model m = {0, kura_gguf_find_tensor(g, "output.weight") != NULL};
    char name[512];
    for (int64_t i = 0; i < nt; i++) {
        const struct kura_gguf_tensor *t = kura_gguf_tensor(g, i);
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        int64_t l = layer_of(name);
        if (l + 1 > m.n_layer)
            m.n_layer = l + 1;
    }
    if ((e = kura_gguf_writer_copy_kvs(w, g, NULL, eb)) ||
        (e = kura_gguf_writer_set_u32(w, "general.file_type", kura_qmix_file_type(mix), eb)) ||
        (e = kura_gguf_writer_set_u32(w, "general.quantization_version", QUANT_VERSION, eb)))
        goto fail;
    for (int64_t i = 0; i < nt; i++) {
        const struct kura_gguf_tensor *t = kura_gguf_tensor(g, i);
        if (t->name.len >= sizeof name) {
            e = kura_err_set(eb, KURA_ERR_UNSUPPORTED, "tensor #%" PRId64 ": name too long", i);
            goto fail;
        }
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (memchr(t->name.ptr, 0, t->name.len)) {
            e = kura_err_set(eb, KURA_ERR_FORMAT, "tensor #%" PRId64 ": name contains NUL", i);
            goto fail;
        }
        q.dst[i] = kura_qmix_tensor_type(mix, &m, name, t->n_dims, t->ne[0], t->type);
        if ((e = kura_gguf_writer_add_tensor(w, name, q.dst[i], t->n_dims, t->ne, produce_tensor,
                                             &q, NULL, eb)))
            goto fail;
    }
    e = kura_gguf_writer_write(w, out_path, eb);
fail:
    free(q.fbuf);
    free(q.qbuf);
    free(q.dst);
    kura_gguf_writer_destroy(w);
    kura_gguf_close(g);
    return e;
}
