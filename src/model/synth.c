/* Random-weight models of real shapes (`kura model synth`).
 *
 * Tensor names, shapes and metadata are those of real GGUF files of each family (compare
 * ../shared/models/tiny-qwen2-*, tiny-qwen3-*, tiny-llama3-*). Generating and quantizing
 * ~1.2 G Gaussian weights for a Llama-3-1B shape would take minutes with the reference
 * quantizers, so each matrix is assembled from a pool: pool_floats values ~ N(0, s) (an eighth
 * of the model, 64 Ki..1 Mi values) are drawn and quantized once per (tensor type, s), and
 * every block of every row is a copy of a pool block picked by a seeded generator (blocks of all GGUF types are self-contained: each carries
 * its own scales). Row r of tensor i uses a generator seeded from (seed, i, r), so the output
 * does not depend on the thread count. */
#include "kura/synth.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "kernels/kernels.h"
#include "kura/gguf.h"
#include "kura/gguf_write.h"

#define POOL_FLOATS_MAX (1 << 20)
#define POOL_FLOATS_MIN (1 << 16)
#define MAX_POOLS 16
#define OUT_CHUNK_BYTES (8u << 20)
#define MAX_SYNTH_TENSORS (16 + 16 * KURA_MAX_LAYERS)

enum init { INIT_GAUSS, INIT_NORM, INIT_BIAS };

struct stensor {
    char name[64];
    uint32_t n_dims;
    int64_t ne[2];
    enum kura_type type;
    enum init init;
    float std;
};

struct pool {
    enum kura_type type;
    float std;
    int64_t n_blocks;
    size_t block_bytes;
    uint8_t *data;
};

struct synth {
    uint64_t seed;
    int64_t pool_floats; /* per pool: an eighth of the model, within the bounds above */
    int n_threads;
    FILE *log;
    struct stensor *t;
    int64_t n_t;
    struct pool pools[MAX_POOLS];
    int n_pools;
    uint8_t *buf; /* OUT_CHUNK_BYTES */
};

/* splitmix64: seeds and hashes. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* xorshift64*: the per-row generator. State must be non-zero. */
static uint64_t next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static double uniform01(uint64_t *s) /* (0, 1] */
{
    return ((double)(next(s) >> 11) + 1.0) / 9007199254740992.0;
}

static void gauss(uint64_t *s, float *out, int64_t n, double mean, double std)
{
    for (int64_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(uniform01(s))), th = 6.283185307179586 * uniform01(s);
        out[i] = (float)(mean + std * r * cos(th));
        if (i + 1 < n)
            out[i + 1] = (float)(mean + std * r * sin(th));
    }
}

static uint64_t row_state(uint64_t seed, int64_t tensor, int64_t row)
{
    uint64_t s = mix64(mix64(seed ^ mix64((uint64_t)tensor + 1)) ^ (uint64_t)row);
    return s ? s : 1;
}

static enum kura_err get_pool(struct synth *s, enum kura_type type, float std,
                              const struct pool **out, struct kura_errbuf *eb)
{
    for (int i = 0; i < s->n_pools; i++)
        if (s->pools[i].type == type && s->pools[i].std == std) {
            *out = &s->pools[i];
            return KURA_OK;
        }
    if (s->n_pools == MAX_POOLS)
        return kura_err_set(eb, KURA_ERR_INTERNAL, "synth: too many weight pools");
    int64_t blk = kura_type_block_len(type);
    struct pool p = {type, std, s->pool_floats / blk, kura_type_block_bytes(type), NULL};
    float *f = malloc((size_t)s->pool_floats * sizeof *f);
    p.data = malloc((size_t)p.n_blocks * p.block_bytes);
    if (!f || !p.data) {
        free(f);
        free(p.data);
        return kura_err_set(eb, KURA_ERR_NOMEM, "synth: out of memory");
    }
    uint32_t stdbits;
    memcpy(&stdbits, &std, 4);
    uint64_t st = mix64(s->seed ^ mix64(((uint64_t)type << 32) | stdbits));
    st = st ? st : 1;
    gauss(&st, f, s->pool_floats, 0.0, std);
    /* One "row" per block keeps kura_quant_rows' threads busy on any block length. */
    enum kura_err e = kura_quant_rows(type, f, p.data, p.n_blocks, blk, s->n_threads, eb);
    free(f);
    if (e) {
        free(p.data);
        return e;
    }
    s->pools[s->n_pools] = p;
    *out = &s->pools[s->n_pools++];
    return KURA_OK;
}

static enum kura_err produce(void *user, int64_t index, struct kura_gguf_sink *sink,
                             struct kura_errbuf *eb)
{
    struct synth *s = user;
    const struct stensor *t = &s->t[index];
    int64_t n_rows = t->n_dims > 1 ? t->ne[1] : 1, row_len = t->ne[0];
    size_t row_bytes = kura_row_bytes(t->type, row_len);
    if (s->log)
        fprintf(s->log, "[%4" PRId64 "/%4" PRId64 "] %-28s %-5s [%" PRId64 ", %" PRId64 "]\n",
                index + 1, s->n_t, t->name, kura_type_name(t->type), row_len, n_rows);
    if (t->init != INIT_GAUSS) { /* 1-D F32 vectors: drawn directly */
        float *v = (float *)s->buf;
        uint64_t st = row_state(s->seed, index, 0);
        if (t->init == INIT_NORM)
            gauss(&st, v, row_len, 1.0, 0.02);
        else
            gauss(&st, v, row_len, 0.0, 0.02);
        return kura_gguf_sink_write(sink, v, (size_t)row_len * sizeof(float), eb);
    }
    const struct pool *p = NULL;
    enum kura_err e = get_pool(s, t->type, t->std, &p, eb);
    if (e)
        return e;
    int64_t blocks_per_row = row_len / kura_type_block_len(t->type);
    int64_t rows_per_chunk = (int64_t)(OUT_CHUNK_BYTES / row_bytes);
    if (rows_per_chunk < 1)
        return kura_err_set(eb, KURA_ERR_INTERNAL, "synth: row of %zu bytes too long", row_bytes);
    uint64_t np = (uint64_t)p->n_blocks;
    for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per_chunk) {
        int64_t nr = n_rows - r0 < rows_per_chunk ? n_rows - r0 : rows_per_chunk;
        uint8_t *o = s->buf;
        for (int64_t r = r0; r < r0 + nr; r++) {
            uint64_t st = row_state(s->seed, index, r);
            for (int64_t b = 0; b < blocks_per_row; b++) {
                uint64_t k = ((next(&st) >> 32) * np) >> 32;
                memcpy(o, p->data + k * p->block_bytes, p->block_bytes);
                o += p->block_bytes;
            }
        }
        if ((e = kura_gguf_sink_write(sink, s->buf, (size_t)nr * row_bytes, eb)))
            return e;
    }
    return KURA_OK;
}

static void add(struct synth *s, const char *name, uint32_t n_dims, int64_t ne0,
                int64_t ne1, enum init init, float std)
{
    struct stensor *t = &s->t[s->n_t++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->init = init;
    t->std = std;
}

static bool in_range(int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

enum kura_err kura_synth_write(const struct kura_synth_params *p, const char *out_path,
                               void *log, struct kura_errbuf *eb)
{
    struct synth s = {.seed = p->seed, .n_threads = p->n_threads > 0 ? p->n_threads : 1,
                      .log = log};
    struct kura_gguf *voc = NULL;
    struct kura_gguf_writer *w = NULL;
    enum kura_err e;
    const char *arch = p->arch ? p->arch : "";
    bool llama = strcmp(arch, "llama") == 0, qwen2 = strcmp(arch, "qwen2") == 0,
         qwen3 = strcmp(arch, "qwen3") == 0;
    if (!llama && !qwen2 && !qwen3)
        return kura_err_set(eb, KURA_ERR_INVALID, "synth: unknown architecture '%s' (llama, "
                            "qwen2 or qwen3)", arch);
    int64_t hd = p->head_dim ? p->head_dim : (p->n_head > 0 ? p->n_embd / p->n_head : 0);
    int64_t n_ctx = p->n_ctx ? p->n_ctx : 4096;
    double theta = p->rope_theta > 0 ? p->rope_theta : (llama ? 10000.0 : 1000000.0);
    double eps = p->rms_eps > 0 ? p->rms_eps : (llama ? 1e-5 : 1e-6);
    if (!in_range(p->n_embd, 1, KURA_MAX_EMBD) || !in_range(p->n_layer, 1, KURA_MAX_LAYERS) ||
        !in_range(p->n_head, 1, KURA_MAX_HEADS) || !in_range(p->n_head_kv, 1, p->n_head) ||
        p->n_head % p->n_head_kv != 0 || !in_range(p->n_ff, 1, KURA_MAX_FF) ||
        !in_range(hd, 2, KURA_MAX_HEAD_DIM) || hd % 2 != 0 || !in_range(n_ctx, 1, KURA_MAX_CTX) ||
        (unsigned)p->mix >= KURA_QMIX__COUNT || !isfinite(theta) || !isfinite(eps))
        return kura_err_set(eb, KURA_ERR_INVALID, "synth: bad shape: n_embd %" PRId64
                            " (1..%d), n_layer %" PRId64 " (1..%d), n_head %" PRId64
                            " (1..%d), n_head_kv %" PRId64 " (divides n_head), n_ff %" PRId64
                            " (1..%d), head_dim %" PRId64 " (even, 2..%d), ctx %" PRId64
                            " (1..%d)", p->n_embd, KURA_MAX_EMBD, p->n_layer, KURA_MAX_LAYERS,
                            p->n_head, KURA_MAX_HEADS, p->n_head_kv, p->n_ff, KURA_MAX_FF, hd,
                            KURA_MAX_HEAD_DIM, n_ctx, KURA_MAX_CTX);
    if (llama && !p->head_dim && p->n_embd % p->n_head != 0)
        return kura_err_set(eb, KURA_ERR_INVALID, "synth: n_embd %" PRId64 " is not a multiple "
                            "of n_head %" PRId64 " (give --head-dim)", p->n_embd, p->n_head);
    kura_kernels_init();
    if ((e = kura_gguf_open(p->vocab_path, &voc, eb)))
        goto fail;
    int64_t ti = kura_gguf_find_key(voc, "tokenizer.ggml.tokens");
    uint64_t n_vocab = kura_gguf_arr_len(voc, ti);
    if (ti < 0 || kura_gguf_arr_type(voc, ti) != KURA_GGUF_STRING || n_vocab == 0 ||
        n_vocab > KURA_MAX_VOCAB) {
        e = kura_err_set(eb, KURA_ERR_FORMAT, "%s: no usable 'tokenizer.ggml.tokens' string "
                         "array (1..%d entries)", p->vocab_path, KURA_MAX_VOCAB);
        goto fail;
    }
    s.t = calloc(MAX_SYNTH_TENSORS, sizeof *s.t);
    s.buf = malloc(OUT_CHUNK_BYTES);
    if (!s.t || !s.buf || (e = kura_gguf_writer_create(&w, eb))) {
        e = e ? e : kura_err_set(eb, KURA_ERR_NOMEM, "synth: out of memory");
        goto fail;
    }

    /* Metadata, in the order real files have it. */
    char key[128], name[128];
    snprintf(name, sizeof name, "kura-synth-%s", arch);
    const char *gname = p->name ? p->name : name;
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    if ((e = kura_gguf_writer_set_str(w, "general.architecture", arch, strlen(arch), eb)) ||
        (e = kura_gguf_writer_set_str(w, "general.name", gname, strlen(gname), eb)) ||
        (e = kura_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)n_ctx, eb)) ||
        (e = kura_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)p->n_embd, eb)) ||
        (e = kura_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)p->n_layer, eb)) ||
        (e = kura_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)p->n_ff, eb)) ||
        (e = kura_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)p->n_head, eb)) ||
        (e = kura_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)p->n_head_kv,
                                      eb)) ||
        (e = kura_gguf_writer_set_f32(w, KEY("rope.freq_base"), (float)theta, eb)) ||
        (e = kura_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)eps,
                                      eb)) ||
        (e = kura_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)hd, eb)) ||
        (e = kura_gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)n_vocab, eb)))
        goto fail;
    if (qwen3 || hd * p->n_head != p->n_embd)
        if ((e = kura_gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)hd, eb)) ||
            (e = kura_gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)hd, eb)))
            goto fail;
#undef KEY
    if ((e = kura_gguf_writer_copy_kvs(w, voc, "tokenizer.", eb)) ||
        (e = kura_gguf_writer_set_u32(w, "general.quantization_version", 2, eb)) ||
        (e = kura_gguf_writer_set_u32(w, "general.file_type", kura_qmix_file_type(p->mix), eb)))
        goto fail;

    /* Tensors: shapes as GGUF stores them, ne[0] = input width. */
    int64_t nv = (int64_t)n_vocab, q_out = p->n_head * hd, kv_out = p->n_head_kv * hd;
    float s_embd = (float)(1.0 / sqrt((double)p->n_embd)), s_q = (float)(1.0 / sqrt((double)q_out)),
          s_ff = (float)(1.0 / sqrt((double)p->n_ff));
    add(&s, "token_embd.weight", 2, p->n_embd, nv, INIT_GAUSS, 0.02f);
    for (int64_t l = 0; l < p->n_layer; l++) {
        char n[64];
#define T(suffix) (snprintf(n, sizeof n, "blk.%" PRId64 ".%s", l, suffix), n)
        add(&s, T("attn_norm.weight"), 1, p->n_embd, 1, INIT_NORM, 0);
        add(&s, T("attn_q.weight"), 2, p->n_embd, q_out, INIT_GAUSS, s_embd);
        add(&s, T("attn_k.weight"), 2, p->n_embd, kv_out, INIT_GAUSS, s_embd);
        add(&s, T("attn_v.weight"), 2, p->n_embd, kv_out, INIT_GAUSS, s_embd);
        if (qwen2) {
            add(&s, T("attn_q.bias"), 1, q_out, 1, INIT_BIAS, 0);
            add(&s, T("attn_k.bias"), 1, kv_out, 1, INIT_BIAS, 0);
            add(&s, T("attn_v.bias"), 1, kv_out, 1, INIT_BIAS, 0);
        }
        if (qwen3) {
            add(&s, T("attn_q_norm.weight"), 1, hd, 1, INIT_NORM, 0);
            add(&s, T("attn_k_norm.weight"), 1, hd, 1, INIT_NORM, 0);
        }
        add(&s, T("attn_output.weight"), 2, q_out, p->n_embd, INIT_GAUSS, s_q);
        add(&s, T("ffn_norm.weight"), 1, p->n_embd, 1, INIT_NORM, 0);
        add(&s, T("ffn_gate.weight"), 2, p->n_embd, p->n_ff, INIT_GAUSS, s_embd);
        add(&s, T("ffn_up.weight"), 2, p->n_embd, p->n_ff, INIT_GAUSS, s_embd);
        add(&s, T("ffn_down.weight"), 2, p->n_ff, p->n_embd, INIT_GAUSS, s_ff);
#undef T
    }
    add(&s, "output_norm.weight", 1, p->n_embd, 1, INIT_NORM, 0);
    if (!p->tied)
        add(&s, "output.weight", 2, p->n_embd, nv, INIT_GAUSS, s_embd);
    struct kura_qmix_model m = {p->n_layer, !p->tied};
    int64_t n_params = 0;
    for (int64_t i = 0; i < s.n_t; i++)
        n_params += s.t[i].ne[0] * (s.t[i].n_dims > 1 ? s.t[i].ne[1] : 1);
    s.pool_floats = n_params / 8 / 256 * 256;
    s.pool_floats = s.pool_floats < POOL_FLOATS_MIN   ? POOL_FLOATS_MIN
                    : s.pool_floats > POOL_FLOATS_MAX ? POOL_FLOATS_MAX
                                                      : s.pool_floats;
    for (int64_t i = 0; i < s.n_t; i++) {
        struct stensor *t = &s.t[i];
        t->type = kura_qmix_tensor_type(p->mix, &m, t->name, t->n_dims, t->ne[0], KURA_TYPE_F32);
        if (kura_row_bytes(t->type, t->ne[0]) > OUT_CHUNK_BYTES) {
            e = kura_err_set(eb, KURA_ERR_INVALID, "synth: tensor '%s' rows too long", t->name);
            goto fail;
        }
        if ((e = kura_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, produce, &s,
                                             NULL, eb)))
            goto fail;
    }
    e = kura_gguf_writer_write(w, out_path, eb);
fail:
    for (int i = 0; i < s.n_pools; i++)
        free(s.pools[i].data);
    free(s.t);
    free(s.buf);
    kura_gguf_writer_destroy(w);
    kura_gguf_close(voc);
    return e;
}
