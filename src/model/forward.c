/* The forward pass of llama / qwen2 / qwen3 decoder-only transformers over a batch of tokens
 * that may belong to different sequences (each with its own KV cache). Matrix products
 * quantize the activations to the weight type's dot-product type once per batch and then run
 * row-parallel on the thread pool, so every weight row is read once per batch. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/threadpool.h"
#include "core/util.h"
#include "kernels/kernels.h"
#include "model/fwd_simd.h"
#include "model/model_int.h"

#define DUP_COLS 4  /* most columns a batch-invariant product is padded to (uniform_cols) */
#define MM_MAX 3    /* products in one dispatched group */
#define N_QCACHE 4 /* distinct activation types one normalized input can be quantized to */

struct qcache {
    enum kura_type type[N_QCACHE];
    int n;
};

struct kura_ctx {
    const struct kura_model *m;
    struct kura_pool *pool;
    int32_t n_batch;
    /* Scratch, each (n_batch, width) row-major. */
    float *x;      /* residual stream (n_embd) */
    float *xn;     /* normalized input of the current block (max(n_embd, n_ff, q_dim)) */
    float *q;      /* (q_dim) */
    float *k;      /* (kv_dim) */
    float *v;      /* (kv_dim) */
    float *att;    /* attention output (q_dim) */
    float *gate;   /* (n_ff) */
    float *up;     /* (n_ff) */
    float *tmp;    /* projection output (n_embd) */
    uint8_t *xq[N_QCACHE]; /* quantized copies of xn, one per activation type */
    size_t xq_row_bytes[N_QCACHE];
    struct qcache qc;
    size_t xq_cap;  /* bytes per xq buffer */
    int32_t xn_width;
    uint16_t *q16; /* per thread: a KV head's f16 query heads and an f16 accumulator
                    * (n_threads, (n_head / n_head_kv + 1) * head_dim) */
    float *rope_cos, *rope_sin; /* (n_batch, n_rot/2) per item */
    bool batch_invariant; /* see kura_ctx_set_batch_invariant */
    float *dup_y;         /* (MM_MAX, DUP_COLS, dup_width): padded products' outputs */
    size_t dup_width;
};

static float *falloc(size_t n)
{
    return malloc((n ? n : 1) * sizeof(float));
}

enum kura_err kura_ctx_create(const struct kura_model *m, int32_t n_batch, int n_threads,
                              struct kura_ctx **out, struct kura_errbuf *eb)
{
    *out = NULL;
    if (n_batch < 1 || n_batch > 65536)
        return kura_err_set(eb, KURA_ERR_RANGE, "batch size %d outside [1, 65536]", n_batch);
    const struct kura_hparams *hp = &m->hp;
    struct kura_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    c->m = m;
    c->n_batch = n_batch;
    enum kura_err e = kura_pool_create(n_threads, &c->pool, eb);
    if (e) {
        free(c);
        return e;
    }
    /* at least DUP_COLS rows: the batch-invariant mode pads short products to that many */
    size_t nb = n_batch < DUP_COLS ? DUP_COLS : (size_t)n_batch;
    size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    size_t wmax = (size_t)hp->n_embd;
    if ((size_t)hp->n_ff > wmax)
        wmax = (size_t)hp->n_ff;
    if (q_dim > wmax)
        wmax = q_dim;
    c->xn_width = (int32_t)wmax;
    c->x = falloc(nb * hp->n_embd);
    c->xn = falloc(nb * wmax);
    c->q = falloc(nb * q_dim);
    c->k = falloc(nb * kv_dim);
    c->v = falloc(nb * kv_dim);
    c->att = falloc(nb * q_dim);
    c->gate = falloc(nb * hp->n_ff);
    c->up = falloc(nb * hp->n_ff);
    c->tmp = falloc(nb * hp->n_embd);
    c->rope_cos = falloc(nb * (size_t)(hp->n_rot / 2));
    c->rope_sin = falloc(nb * (size_t)(hp->n_rot / 2));
    c->q16 = malloc((size_t)kura_pool_n_threads(c->pool) *
                    (size_t)(hp->n_head / hp->n_head_kv + 1) * hp->head_dim * sizeof(uint16_t));
    size_t ymax = wmax > (size_t)hp->n_vocab ? wmax : (size_t)hp->n_vocab;
    if (kv_dim > ymax)
        ymax = kv_dim;
    c->dup_width = ymax;
    c->dup_y = falloc((size_t)MM_MAX * DUP_COLS * ymax);
    /* Largest activation encoding is f32: 4 bytes per element (+ block headers are smaller). */
    c->xq_cap = nb * (wmax * 4 + 64);
    bool ok = c->x && c->xn && c->q && c->k && c->v && c->att && c->gate && c->up && c->tmp &&
              c->rope_cos && c->rope_sin && c->q16 && c->dup_y;
    for (int i = 0; i < N_QCACHE && ok; i++)
        ok = (c->xq[i] = malloc(c->xq_cap)) != NULL;
    if (!ok) {
        kura_ctx_destroy(c);
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory for evaluation buffers");
    }
    *out = c;
    return KURA_OK;
}

void kura_ctx_destroy(struct kura_ctx *c)
{
    if (!c)
        return;
    kura_pool_destroy(c->pool);
    free(c->x);
    free(c->xn);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->gate);
    free(c->up);
    free(c->tmp);
    for (int i = 0; i < N_QCACHE; i++)
        free(c->xq[i]);
    free(c->q16);
    free(c->rope_cos);
    free(c->rope_sin);
    free(c->dup_y);
    free(c);
}

enum kura_err kura_ctx_set_batch_invariant(struct kura_ctx *c, bool on, struct kura_errbuf *eb)
{
    (void)eb; /* the padding buffer is allocated with the context */
    c->batch_invariant = on;
    return KURA_OK;
}

int kura_ctx_n_threads(const struct kura_ctx *c)
{
    return kura_pool_n_threads(c->pool);
}

/* ---- small pure kernels ---- */

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        ss += (double)(x[i] * x[i]);
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++)
        o[i] = (x[i] * scale) * w[i];
}

static inline float silu(float x)
{
    return x / (1.0f + expf(-x));
}

/* exp(x) as the reference engine's vectorized SiLU computes it on AVX-512 (a polynomial, not
 * the C library's expf): n = round(x / ln 2), b = x - n ln 2 in two fused steps, a degree-5
 * polynomial in b evaluated with fused multiply-adds, scaled by 2^n; |n| > 192 saturates to
 * 0 or infinity. It differs from expf in the last bit now and then, which is enough to flip
 * roundings further on. */
float kura_expf_poly(float x)
{
    const float shift = 0x1.8p23f;
    float n = fmaf(x, 0x1.715476p+0f, shift) - shift;
    float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    float u = b * b;
    float p = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                        fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                   u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f)
        return n > 0 ? INFINITY : 0.0f;
    return ldexpf(p, (int)n);
}

/* h = silu(g) * u over n elements. The reference engine takes whole groups of 16 through its
 * vector SiLU (expf_poly) and the tail through the scalar one (expf). */
static void swiglu(float *h, const float *g, const float *u, int n)
{
    int nv = n & ~15, f = nv;
    kura_fwd_simd()->swiglu16(h, g, u, nv);
    for (; f < n; f++)
        h[f] = silu(g[f]) * u[f];
}

/* ---- scalar versions of the fwd_simd.h helpers, and their dispatch ---- */

static void f16_scale_scalar(uint16_t *acc, int n, float s)
{
    for (int d = 0; d < n; d++)
        acc[d] = kura_fp32_to_fp16(kura_fp16_to_fp32(acc[d]) * s);
}

static void f16_axpy_scalar(uint16_t *acc, const uint16_t *v, int n, float s)
{
    for (int d = 0; d < n; d++)
        acc[d] = kura_fp32_to_fp16(fmaf(kura_fp16_to_fp32(v[d]), s, kura_fp16_to_fp32(acc[d])));
}

static void swiglu16_scalar(float *h, const float *g, const float *u, int n)
{
    for (int f = 0; f < n; f++)
        h[f] = (g[f] / (1.0f + kura_expf_poly(0.0f - g[f]))) * u[f];
}

const struct kura_fwd_simd kura_fwd_simd_scalar = {
    .f16_scale = f16_scale_scalar,
    .f16_axpy = f16_axpy_scalar,
    .swiglu16 = swiglu16_scalar,
};

const struct kura_fwd_simd *kura_fwd_simd(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (kura_kernels_isa() == KURA_ISA_AVX512)
        return &kura_fwd_simd_avx512;
    if (kura_kernels_isa() != KURA_ISA_SCALAR)
        return &kura_fwd_simd_avx2;
#endif
    return &kura_fwd_simd_scalar;
}

/* ---- matrix products ---- */

struct qi_job {
    const struct kura_type_traits *tr;
    const float *src;
    size_t src_stride;
    uint8_t *dst;
    size_t dst_stride;
    int64_t n;
    int32_t n_tok;
};

static void qi_worker(void *arg, int ith, int nth)
{
    const struct qi_job *j = arg;
    long lo, hi;
    kura_split((long)j->n_tok, ith, nth, &lo, &hi);
    for (long t = lo; t < hi; t++)
        j->tr->from_float(j->src + (size_t)t * j->src_stride, j->dst + (size_t)t * j->dst_stride,
                          j->n);
}

/* Quantizes n_tok rows of c->xn (width n) to the dot type of weight type wt, reusing an earlier
 * quantization of the same input. Returns the buffer index. */
static int quantize_input(struct kura_ctx *c, enum kura_type dot_type, int32_t n_tok, int64_t n)
{
    for (int i = 0; i < c->qc.n; i++)
        if (c->qc.type[i] == dot_type)
            return i;
    int slot = c->qc.n < N_QCACHE ? c->qc.n++ : N_QCACHE - 1;
    size_t rb = kura_row_bytes(dot_type, n);
    struct qi_job j = {.tr = kura_type_traits(dot_type), .src = c->xn, .src_stride = c->xn_width,
                       .dst = c->xq[slot], .dst_stride = rb, .n = n, .n_tok = n_tok};
    /* rows are independent: quantize a prompt batch on all threads */
    kura_pool_run(n_tok >= 8 ? c->pool : NULL, qi_worker, &j);
    c->qc.type[slot] = dot_type;
    c->xq_row_bytes[slot] = rb;
    return slot;
}

struct mm_job {
    const struct kura_type_traits *tr;
    /* tr->gemm, or tr->gemm_uniform for a batch-invariant product of few columns */
    void (*gemm)(int64_t n, int64_t nr, int64_t nc, const void *x, size_t x_row_bytes,
                 const void *y, size_t y_row_bytes, float *out, size_t out_row_stride);
    const uint8_t *w;
    size_t w_row_bytes;
    int64_t n_in, n_out;
    const uint8_t *xq;
    size_t xq_row_bytes;
    int32_t n_tok;
    float *y;
    size_t y_stride;
    const float *bias; /* optional (n_out) */
};

/* Rows [lo, hi) of one product. */
static void mm_rows(const struct mm_job *j, long lo, long hi)
{
    /* The gemm kernel reuses each weight block for several tokens (register tiling). */
    j->gemm(j->n_in, hi - lo, j->n_tok, j->w + (size_t)lo * j->w_row_bytes, j->w_row_bytes,
            j->xq, j->xq_row_bytes, j->y + lo, j->y_stride);
    if (j->bias)
        for (int32_t t = 0; t < j->n_tok; t++)
            for (long r = lo; r < hi; r++)
                j->y[(size_t)t * j->y_stride + r] += j->bias[r];
}

/* One product of a fused group: y(t, :) = W · xn(t, :) (+ bias) for t < n_tok. */
struct mm_spec {
    const struct kura_weight *w;
    const struct kura_weight *bias; /* may be NULL */
    float *y;
    size_t y_stride;
};

_Static_assert(N_QCACHE >= MM_MAX, "a group may need one quantized input per product");

/* The rows of a group's products are cut into chunks that the threads take from a shared
 * counter (a thread that was descheduled or runs slower simply takes fewer chunks instead of
 * holding up the others at the barrier). A row's result does not depend on its chunk (the
 * kernels' row independence), so the split never changes the output. */
#define MM_CHUNKS_PER_THREAD 4
#define MM_CHUNK_ALIGN 16 /* rows: the widest kernel panel */

struct mm_multi {
    int n;
    struct mm_job j[MM_MAX];
    long chunk_rows[MM_MAX], n_chunks[MM_MAX];
    long total;
    atomic_long next;
};

static void mm_multi_worker(void *arg, int ith, int nth)
{
    (void)ith;
    struct mm_multi *mm = arg;
    if (nth == 1) {
        for (int k = 0; k < mm->n; k++)
            mm_rows(&mm->j[k], 0, (long)mm->j[k].n_out);
        return;
    }
    for (;;) {
        long u = atomic_fetch_add_explicit(&mm->next, 1, memory_order_relaxed);
        if (u >= mm->total)
            return;
        int k = 0;
        while (u >= mm->n_chunks[k])
            u -= mm->n_chunks[k++];
        long lo = u * mm->chunk_rows[k], hi = lo + mm->chunk_rows[k];
        if (hi > (long)mm->j[k].n_out)
            hi = (long)mm->j[k].n_out;
        mm_rows(&mm->j[k], lo, hi);
    }
}

/* Runs up to MM_MAX products of the same input (xn) in one dispatch to the thread pool (one
 * wake-up and one barrier instead of one per product). */
static void matmul_group(struct kura_ctx *c, int n, const struct mm_spec *sp, int32_t n_tok)
{
    struct mm_multi mm = {.n = n};
    bool dup[MM_MAX] = {false};
    double work = 0;
    for (int k = 0; k < n; k++) {
        const struct kura_gguf_tensor *t = sp[k].w->t;
        const struct kura_type_traits *tr = kura_type_traits(t->type);
        int slot = quantize_input(c, tr->vec_dot_type, n_tok, t->ne[0]);
        struct mm_job *j = &mm.j[k];
        *j = (struct mm_job){
            .tr = tr,
            .gemm = tr->gemm,
            .w = t->data,
            .w_row_bytes = kura_row_bytes(t->type, t->ne[0]),
            .n_in = t->ne[0],
            .n_out = t->ne[1],
            .xq = c->xq[slot],
            .xq_row_bytes = c->xq_row_bytes[slot],
            .n_tok = n_tok,
            .y = sp[k].y,
            .y_stride = sp[k].y_stride,
            .bias = sp[k].bias && sp[k].bias->t ? sp[k].bias->t->data : NULL,
        };
        /* Below tr->uniform_cols columns a kernel may sum in another order (the float types'
         * reference single-row order, Q6_K's row-dot path): in batch-invariant mode such a
         * product runs the kernel's uniform variant where it has one (Q6_K's packed path
         * for any number of columns), else on copies of its columns up to that count, so
         * its result is the same as inside any larger batch. */
        int ucols = c->batch_invariant ? tr->uniform_cols : 0;
        if (ucols > DUP_COLS) /* a kernel asking for more breaks the tests, not memory */
            ucols = DUP_COLS;
        if (n_tok < ucols && tr->gemm_uniform) {
            j->gemm = tr->gemm_uniform;
            ucols = 0;
        }
        dup[k] = n_tok < ucols;
        if (dup[k]) {
            for (int32_t t2 = n_tok; t2 < ucols; t2++)
                memcpy(c->xq[slot] + (size_t)t2 * j->xq_row_bytes, c->xq[slot],
                       j->xq_row_bytes);
            j->n_tok = ucols;
            j->y = c->dup_y + (size_t)k * DUP_COLS * c->dup_width;
            j->y_stride = (size_t)j->n_out;
        }
        work += (double)j->n_in * (double)j->n_out * n_tok;
    }
    /* Tiny products are not worth waking the other threads for. */
    struct kura_pool *pool = work < 65536.0 ? NULL : c->pool;
    long nth = kura_pool_n_threads(pool);
    for (int k = 0; k < n; k++) {
        long rows = (long)mm.j[k].n_out;
        long cr = (rows + nth * MM_CHUNKS_PER_THREAD - 1) / (nth * MM_CHUNKS_PER_THREAD);
        cr = (cr + MM_CHUNK_ALIGN - 1) / MM_CHUNK_ALIGN * MM_CHUNK_ALIGN;
        mm.chunk_rows[k] = cr;
        mm.n_chunks[k] = (rows + cr - 1) / cr;
        mm.total += mm.n_chunks[k];
    }
    atomic_init(&mm.next, 0);
    kura_pool_run(pool, mm_multi_worker, &mm);
    for (int k = 0; k < n; k++)
        if (dup[k])
            for (int32_t t2 = 0; t2 < n_tok; t2++)
                memcpy(sp[k].y + (size_t)t2 * sp[k].y_stride,
                       mm.j[k].y + (size_t)t2 * mm.j[k].y_stride,
                       (size_t)mm.j[k].n_out * sizeof(float));
}

static void matmul(struct kura_ctx *c, const struct kura_weight *w, const struct kura_weight *bias,
                   int32_t n_tok, float *y, size_t y_stride)
{
    struct mm_spec sp = {w, bias, y, y_stride};
    matmul_group(c, 1, &sp, n_tok);
}

static void set_input(struct kura_ctx *c)
{
    c->qc.n = 0; /* xn changed: drop cached quantizations */
}

/* ---- rope ---- */

/* Fills cos/sin tables for each item's position, in the order the established engine computes
 * them (theta multiplied step by step by theta_scale, optional per-pair frequency divisors). */
static void rope_tables(struct kura_ctx *c, const struct kura_batch_item *items, int32_t n)
{
    const struct kura_hparams *hp = &c->m->hp;
    int half = hp->n_rot / 2;
    const float *ff = c->m->rope_freqs.t ? c->m->rope_freqs.t->data : NULL;
    float theta_scale = powf(hp->rope_theta, -2.0f / (float)hp->n_rot);
    for (int32_t i = 0; i < n; i++) {
        float theta = (float)items[i].pos;
        for (int p = 0; p < half; p++) {
            float th = hp->rope_freq_scale * (ff ? theta / ff[p] : theta);
            c->rope_cos[(size_t)i * half + p] = cosf(th);
            c->rope_sin[(size_t)i * half + p] = sinf(th);
            theta *= theta_scale;
        }
    }
}

static void rope_apply(const struct kura_hparams *hp, float *x, int n_heads, const float *cs,
                       const float *sn)
{
    int half = hp->n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * hp->head_dim;
        for (int p = 0; p < half; p++) {
            int i0 = hp->rope_neox ? p : 2 * p;
            int i1 = hp->rope_neox ? p + half : 2 * p + 1;
            float a = v[i0], b = v[i1];
            /* The reference engine's compiler contracts x0*c - x1*s and x0*s + x1*c into one
             * fused multiply-add each (first product fused, second rounded): so do we, exactly. */
            v[i0] = fmaf(a, cs[p], -(b * sn[p]));
            v[i1] = fmaf(a, sn[p], b * cs[p]);
        }
    }
}

/* ---- attention ---- */

struct att_job {
    struct kura_ctx *c;
    const struct kura_batch_item *items;
    int32_t n;
    int32_t layer;
};

/* The established engine's CPU flash attention for ng query heads sharing one KV head (the
 * scalar loop that fwd_simd.h's attend reproduces): the query is rounded to f16 to meet the
 * f16 keys, scores use an online softmax, and the weighted sum of values accumulates in an
 * f16 vector that is rescaled whenever a new maximum appears. Reproducing this rounding is
 * what makes the log-probabilities match the reference closely. acc: hd scratch values. */
void kura_attend_ref(const uint16_t *q16, int ng, int hd, const uint16_t *k, const uint16_t *v,
                     size_t kvs, int32_t n_pos, float scale, float *out, uint16_t *acc)
{
    /* q . k is the f16 row dot product, summed in the same order as the reference engine's */
    const struct kura_type_traits *dot16 = kura_type_traits(KURA_TYPE_F16);
    const struct kura_fwd_simd *fs = kura_fwd_simd();
    for (int g = 0; g < ng; g++) {
        const uint16_t *qh = q16 + (size_t)g * hd;
        float mx = -INFINITY, sum = 0.0f;
        for (int d = 0; d < hd; d++)
            acc[d] = 0;
        for (int32_t p = 0; p < n_pos; p++) {
            float s = dot16->vec_dot(hd, k + (size_t)p * kvs, qh) * scale;
            float ms = 1.0f, vs = 1.0f;
            if (s > mx) {
                ms = expf(mx - s);
                mx = s;
                fs->f16_scale(acc, hd, ms);
            } else {
                vs = expf(s - mx);
            }
            fs->f16_axpy(acc, v + (size_t)p * kvs, hd, vs);
            sum = fmaf(sum, ms, vs); /* S*ms + vs, contracted as the reference's compiler does */
        }
        float *o = out + (size_t)g * hd;
        float inv = 1.0f / sum;
        for (int d = 0; d < hd; d++)
            o[d] = kura_fp16_to_fp32(acc[d]) * inv;
    }
}

/* One work item: the query heads of one KV head of one batch row. */
static void att_worker(void *arg, int ith, int nth)
{
    const struct att_job *j = arg;
    struct kura_ctx *c = j->c;
    const struct kura_hparams *hp = &c->m->hp;
    int hd = hp->head_dim, n_kv = hp->n_head_kv, group = hp->n_head / hp->n_head_kv;
    size_t q_dim = (size_t)hp->n_head * hd, kv_dim = (size_t)n_kv * hd;
    float scale = 1.0f / sqrtf((float)hd);
    uint16_t *q16 = c->q16 + (size_t)ith * (size_t)(group + 1) * hd;
    uint16_t *acc = q16 + (size_t)group * hd;
    const struct kura_fwd_simd *fs = kura_fwd_simd();
    /* interleaved: under a causal mask later rows cost more, so contiguous ranges would not
     * balance */
    for (long w = ith; w < (long)j->n * n_kv; w += nth) {
        int32_t i = (int32_t)(w / n_kv);
        int hk = (int)(w % n_kv);
        const struct kura_kv *kv = j->items[i].kv;
        int32_t n_pos = j->items[i].pos + 1;
        const float *q = c->q + (size_t)i * q_dim + (size_t)hk * group * hd;
        const uint16_t *kb = kv->k + ((size_t)j->layer * kv->n_ctx) * kv_dim + (size_t)hk * hd;
        const uint16_t *vb = kv->v + ((size_t)j->layer * kv->n_ctx) * kv_dim + (size_t)hk * hd;
        float *o = c->att + (size_t)i * q_dim + (size_t)hk * group * hd;
        for (size_t d = 0; d < (size_t)group * hd; d++)
            q16[d] = kura_fp32_to_fp16(q[d]);
        if (!fs->attend || !fs->attend(q16, group, hd, kb, vb, kv_dim, n_pos, scale, o))
            kura_attend_ref(q16, group, hd, kb, vb, kv_dim, n_pos, scale, o, acc);
    }
}

/* ---- the layer loop ---- */

static enum kura_err check_batch(struct kura_ctx *c, const struct kura_batch_item *items,
                                 int32_t n, struct kura_errbuf *eb)
{
    const struct kura_hparams *hp = &c->m->hp;
    if (n < 1 || n > c->n_batch)
        return kura_err_set(eb, KURA_ERR_RANGE, "batch of %d tokens outside [1, %d]", n,
                            c->n_batch);
    for (int32_t i = 0; i < n; i++) {
        const struct kura_batch_item *it = &items[i];
        if (it->token < 0 || it->token >= hp->n_vocab)
            return kura_err_set(eb, KURA_ERR_INVALID, "batch item %d: token id %d outside "
                                "the vocabulary [0, %d)", i, it->token, hp->n_vocab);
        if (!it->kv || it->kv->n_layer != hp->n_layer ||
            it->kv->kv_dim != hp->n_head_kv * hp->head_dim)
            return kura_err_set(eb, KURA_ERR_INVALID, "batch item %d: KV cache missing or made "
                                "for another model", i);
        if (it->pos < 0 || it->pos >= it->kv->n_ctx)
            return kura_err_set(eb, KURA_ERR_RANGE, "batch item %d: position %d outside the "
                                "context [0, %d)", i, it->pos, it->kv->n_ctx);
    }
    return KURA_OK;
}

/* The forward pass; out receives, for the rows that want output, the logits or (hidden) the
 * final hidden states after the output norm. */
static enum kura_err eval_impl(struct kura_ctx *c, const struct kura_batch_item *items, int32_t n,
                               float *out, bool hidden, struct kura_errbuf *eb)
{
    enum kura_err e = check_batch(c, items, n, eb);
    if (e)
        return e;
    const struct kura_model *m = c->m;
    const struct kura_hparams *hp = &m->hp;
    const int ne = hp->n_embd, hd = hp->head_dim;
    const size_t q_dim = (size_t)hp->n_head * hd, kv_dim = (size_t)hp->n_head_kv * hd;
    const size_t xw = (size_t)c->xn_width;
    const struct kura_type_traits *et = kura_type_traits(m->tok_embd.t->type);
    const size_t erb = kura_row_bytes(m->tok_embd.t->type, ne);

    for (int32_t i = 0; i < n; i++)
        et->to_float((const uint8_t *)m->tok_embd.t->data + (size_t)items[i].token * erb,
                     c->x + (size_t)i * ne, ne);
    rope_tables(c, items, n);
    const int half = hp->n_rot / 2;

    for (int32_t l = 0; l < hp->n_layer; l++) {
        const struct kura_layer *L = &m->layers[l];
        for (int32_t i = 0; i < n; i++)
            rmsnorm(c->xn + i * xw, c->x + (size_t)i * ne, L->attn_norm.t->data, ne, hp->rms_eps);
        set_input(c);
        const struct mm_spec qkv[3] = {{&L->wq, &L->bq, c->q, q_dim},
                                       {&L->wk, &L->bk, c->k, kv_dim},
                                       {&L->wv, &L->bv, c->v, kv_dim}};
        matmul_group(c, 3, qkv, n);
        for (int32_t i = 0; i < n; i++) {
            float *q = c->q + (size_t)i * q_dim, *k = c->k + (size_t)i * kv_dim;
            if (L->q_norm.t) {
                for (int h = 0; h < hp->n_head; h++)
                    rmsnorm(q + (size_t)h * hd, q + (size_t)h * hd, L->q_norm.t->data, hd,
                            hp->rms_eps);
                for (int h = 0; h < hp->n_head_kv; h++)
                    rmsnorm(k + (size_t)h * hd, k + (size_t)h * hd, L->k_norm.t->data, hd,
                            hp->rms_eps);
            }
            const float *cs = c->rope_cos + (size_t)i * half, *sn = c->rope_sin + (size_t)i * half;
            rope_apply(hp, q, hp->n_head, cs, sn);
            rope_apply(hp, k, hp->n_head_kv, cs, sn);
            struct kura_kv *kv = items[i].kv;
            size_t off = ((size_t)l * kv->n_ctx + (size_t)items[i].pos) * kv_dim;
            const float *v = c->v + (size_t)i * kv_dim;
            for (size_t d = 0; d < kv_dim; d++) {
                kv->k[off + d] = kura_fp32_to_fp16(k[d]);
                kv->v[off + d] = kura_fp32_to_fp16(v[d]);
            }
        }
        struct att_job aj = {c, items, n, l};
        long att_work = 0;
        for (int32_t i = 0; i < n; i++)
            att_work += (long)(items[i].pos + 1) * hp->n_head * hd;
        kura_pool_run(att_work < 65536 ? NULL : c->pool, att_worker, &aj);
        /* wo consumes the attention output as its input */
        for (int32_t i = 0; i < n; i++)
            memcpy(c->xn + i * xw, c->att + (size_t)i * q_dim, q_dim * sizeof(float));
        set_input(c);
        matmul(c, &L->wo, NULL, n, c->tmp, (size_t)ne);
        for (size_t i = 0; i < (size_t)n * ne; i++)
            c->x[i] += c->tmp[i];

        /* Past the last attention only the rows that want logits matter: keep those (moved
         * to the front) and run the last feed-forward block on them alone. Besides saving
         * work this matches the reference engine, which does the same, so that a prompt's
         * last row goes through the single-row product path there too. */
        if (l == hp->n_layer - 1) {
            int32_t k = 0;
            for (int32_t i = 0; i < n; i++)
                if (items[i].want_logits) {
                    if (k != i)
                        memcpy(c->x + (size_t)k * ne, c->x + (size_t)i * ne, ne * sizeof(float));
                    k++;
                }
            n = k;
            if (n == 0)
                break;
        }

        for (int32_t i = 0; i < n; i++)
            rmsnorm(c->xn + i * xw, c->x + (size_t)i * ne, L->ffn_norm.t->data, ne, hp->rms_eps);
        set_input(c);
        const struct mm_spec gu[2] = {{&L->w_gate, NULL, c->gate, (size_t)hp->n_ff},
                                      {&L->w_up, NULL, c->up, (size_t)hp->n_ff}};
        matmul_group(c, 2, gu, n);
        for (int32_t i = 0; i < n; i++) {
            const float *g = c->gate + (size_t)i * hp->n_ff, *u = c->up + (size_t)i * hp->n_ff;
            swiglu(c->xn + i * xw, g, u, hp->n_ff);
        }
        set_input(c);
        matmul(c, &L->w_down, NULL, n, c->tmp, (size_t)ne);
        for (size_t i = 0; i < (size_t)n * ne; i++)
            c->x[i] += c->tmp[i];
    }

    /* n is now the number of rows that want logits, in x's first rows */
    int32_t n_out = n;
    if (n_out == 0)
        return KURA_OK;
    size_t width = hidden ? (size_t)ne : (size_t)hp->n_vocab;
    float *dst = out;
    for (int32_t i = 0; i < n_out; i++)
        rmsnorm(c->xn + i * xw, c->x + (size_t)i * ne, m->out_norm.t->data, ne, hp->rms_eps);
    if (hidden) {
        for (int32_t i = 0; i < n_out; i++)
            memcpy(dst + (size_t)i * width, c->xn + i * xw, width * sizeof(float));
    } else {
        set_input(c);
        matmul(c, &m->output, NULL, n_out, dst, width);
    }
    return KURA_OK;
}

enum kura_err kura_ctx_eval(struct kura_ctx *c, const struct kura_batch_item *items, int32_t n,
                            float *logits, struct kura_errbuf *eb)
{
    return eval_impl(c, items, n, logits, false, eb);
}

enum kura_err kura_ctx_eval_hidden(struct kura_ctx *c, const struct kura_batch_item *items,
                                   int32_t n, float *hidden, struct kura_errbuf *eb)
{
    return eval_impl(c, items, n, hidden, true, eb);
}

enum kura_err kura_ctx_eval_seq(struct kura_ctx *c, struct kura_kv *kv, const int32_t *tokens,
                                int32_t n, int32_t pos0, bool all_logits, float *logits,
                                struct kura_errbuf *eb)
{
    if (n < 1)
        return kura_err_set(eb, KURA_ERR_INVALID, "no tokens to evaluate");
    struct kura_batch_item *items = malloc((size_t)c->n_batch * sizeof *items);
    if (!items)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    size_t nv = (size_t)c->m->hp.n_vocab;
    enum kura_err e = KURA_OK;
    for (int32_t done = 0; done < n && !e;) {
        int32_t chunk = n - done < c->n_batch ? n - done : c->n_batch;
        for (int32_t i = 0; i < chunk; i++) {
            items[i].token = tokens[done + i];
            items[i].pos = pos0 + done + i;
            items[i].kv = kv;
            items[i].want_logits = all_logits || done + i == n - 1;
        }
        float *out = all_logits ? logits + (size_t)done * nv : logits;
        e = kura_ctx_eval(c, items, chunk, out, eb);
        done += chunk;
    }
    free(items);
    return e;
}
