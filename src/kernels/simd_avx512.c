/* AVX-512 kernels (F, BW, VL, DQ, VNNI, BF16; only called when the CPU has them): the shared
 * x86 kernels of simd_x86.h with VNNI dot products (vpdpbusd / vpdpwssd on 256-bit vectors,
 * which also runs at full rate on Zen 4) and a 4 x 4 gemm tile in the 32 vector registers;
 * own 512-bit kernels for F32 / F16 and the legacy quants (bit-identical with scalar.c) and
 * BF16 (vdpbf16ps). */
#define SIMD_SFX(name) name##_avx512
#define SIMD_VNNI 1
#define SIMD_TR 4
#define SIMD_TC 4
#include "kernels/simd_x86.h"

static inline float hsum512(__m512 v)
{
    return _mm512_reduce_add_ps(v);
}

/* ------------------------------------------------------------------------------------------ */
/* F32 / F16 in the scalar kernels' order (scalar.c): blocks of 64 elements into four 16-lane
 * fma accumulators, reduced (0 + 2) + (1 + 3), hsum16, then the leftovers (F32: fma chain in
 * float; F16: products rounded to float, summed in double). Bit-identical with scalar.       */

/* hsum16 of scalar.c: 16 -> 8 lanes (i + 8), then hsum8. */
static inline float hsum16_512(__m512 v)
{
    __m256 t = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return hsum_ps(t);
}

static inline __m512 load_f16x16(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

static float vec_dot_f32_f32_avx512(int64_t n, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t np = n & ~(int64_t)63, i = 0;
    for (; i < np; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), a3);
    }
    float s = hsum16_512(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
    for (; i < n; i++)
        s = fmaf(x[i], y[i], s);
    return s;
}

static float vec_dot_f16_f16_avx512(int64_t n, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t np = n & ~(int64_t)63, i = 0;
    for (; i < np; i += 64) {
        a0 = _mm512_fmadd_ps(load_f16x16(x + i), load_f16x16(y + i), a0);
        a1 = _mm512_fmadd_ps(load_f16x16(x + i + 16), load_f16x16(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(load_f16x16(x + i + 32), load_f16x16(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(load_f16x16(x + i + 48), load_f16x16(y + i + 48), a3);
    }
    double s = hsum16_512(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
    for (; i < n; i++)
        s += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)s;
}

/* Batched float products (two or more columns, n a multiple of 16): one 16-lane fma chain per
 * output and one hsum16, as scalar.c's dot_chain16; a 4 x 4 tile of outputs shares the loads. */
#define F_RT 4
#define F_CT 4
#define DEFINE_FLOAT_TILE(T, elem_t, LOAD)                                                        \
    static inline __attribute__((always_inline)) void ftile_##T(                               \
        int64_t n, int rr, int cc, const char *x, size_t xrb, const char *y, size_t yrb,        \
        float *out, size_t ors)                                                                 \
    {                                                                                           \
        __m512 acc[F_RT][F_CT];                                                                 \
        for (int r = 0; r < rr; r++)                                                            \
            for (int c = 0; c < cc; c++)                                                        \
                acc[r][c] = _mm512_setzero_ps();                                                \
        for (int64_t i = 0; i < n; i += 16) {                                                   \
            __m512 xv[F_RT], yv[F_CT];                                                          \
            for (int r = 0; r < rr; r++)                                                        \
                xv[r] = LOAD((const elem_t *)(x + (size_t)r * xrb) + i);                         \
            for (int c = 0; c < cc; c++)                                                        \
                yv[c] = LOAD((const elem_t *)(y + (size_t)c * yrb) + i);                         \
            for (int r = 0; r < rr; r++)                                                        \
                for (int c = 0; c < cc; c++)                                                    \
                    acc[r][c] = _mm512_fmadd_ps(xv[r], yv[c], acc[r][c]);                       \
        }                                                                                       \
        for (int r = 0; r < rr; r++)                                                            \
            for (int c = 0; c < cc; c++)                                                        \
                out[(size_t)c * ors + (size_t)r] = hsum16_512(acc[r][c]);                       \
    }                                                                                           \
    static void gemm512_##T(int64_t n, int64_t nr, int64_t nc, const void *x,            \
                                  size_t xrb, const void *y, size_t yrb, float *out,            \
                                  size_t ors)                                                   \
    {                                                                                           \
        if (nc < 2 || n % 16) {                                                                 \
            for (int64_t c = 0; c < nc; c++)                                                    \
                for (int64_t r = 0; r < nr; r++)                                                \
                    out[(size_t)c * ors + (size_t)r] = vec_dot_##T##_##T##_avx512(              \
                        n, (const char *)x + (size_t)r * xrb, (const char *)y + (size_t)c * yrb); \
            return;                                                                             \
        }                                                                                       \
        for (int64_t r0 = 0; r0 < nr; r0 += F_RT) {                                             \
            int rr = nr - r0 < F_RT ? (int)(nr - r0) : F_RT;                                    \
            for (int64_t c0 = 0; c0 < nc; c0 += F_CT) {                                         \
                int cc = nc - c0 < F_CT ? (int)(nc - c0) : F_CT;                                \
                const char *xp = (const char *)x + (size_t)r0 * xrb;                            \
                const char *yp = (const char *)y + (size_t)c0 * yrb;                            \
                float *op = out + (size_t)c0 * ors + (size_t)r0;                                \
                if (rr == F_RT && cc == F_CT)                                                   \
                    ftile_##T(n, F_RT, F_CT, xp, xrb, yp, yrb, op, ors);                        \
                else                                                                            \
                    ftile_##T(n, rr, cc, xp, xrb, yp, yrb, op, ors);                            \
            }                                                                                   \
        }                                                                                       \
    }

DEFINE_FLOAT_TILE(f32, float, _mm512_loadu_ps)
DEFINE_FLOAT_TILE(f16, uint16_t, load_f16x16)

/* vdpbf16ps: products of bf16 pairs accumulated in float (the pair sum is rounded once more
 * than an fma chain; well within BF16's own precision). */
static float vec_dot_bf16_bf16_avx512(int64_t n, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(x + i),
                              (__m512bh)_mm512_loadu_si512(y + i));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(x + i + 32),
                              (__m512bh)_mm512_loadu_si512(y + i + 32));
    }
    for (; i < n; i += 32) {
        __mmask32 m = n - i >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << (n - i)) - 1);
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_maskz_loadu_epi16(m, x + i),
                              (__m512bh)_mm512_maskz_loadu_epi16(m, y + i));
    }
    return hsum512(_mm512_add_ps(a0, a1));
}

/* ------------------------------------------------------------------------------------------ */
/* Legacy quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) with VNNI, in the scalar kernels' float order:
 * per output one 8-lane float chain, lane l = fma(dx * dy, int dot of elements 4l..4l+3, lane),
 * one chain step per 32-block, hsum8 at the end (plus the m * s sum for Q4_1 / Q5_1, summed
 * in float block by block). Tiles of several rows and columns share each unpacked weight block
 * and each activation block; every output keeps its own chain, so every tile shape gives the
 * result of scalar.c bit for bit.
 *
 * Prefill: a zmm holds two activation columns (the chains of (r, c) and (r, c + 1)); the
 * weight block is broadcast to both halves. Decode (one column): a zmm holds two weight rows
 * against the broadcast activation block. A 256-bit single-column kernel serves vec_dot and
 * the odd last row / column. */
#define ZRT 6 /* prefill tile: ZRT rows x 2 ZCP columns */
#define ZCP 4
#define ZRP 4 /* decode tile: ZRP row pairs */


/* 8 halves (packed 4 per u64) -> 8 floats */
static inline __m256 halves8(uint64_t lo, uint64_t hi)
{
    return _mm256_cvtph_ps(_mm_set_epi64x((long long)hi, (long long)lo));
}
static inline void pack_half(uint64_t *lo, uint64_t *hi, int k, uint16_t h)
{
    if (k < 4)
        *lo |= (uint64_t)h << (16 * k);
    else
        *hi |= (uint64_t)h << (16 * (k - 4));
}
/* lanes 0-7 = v[k], lanes 8-15 = v[k + 1] */
static inline __m512 pair_bcast(__m256 v, int k)
{
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    return _mm512_permutexvar_ps(_mm512_add_epi32(idx, _mm512_set1_epi32(k)),
                                 _mm512_castps256_ps512(v));
}
static inline __m512i pair256(__m256i a, __m256i b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}
static inline float hsum_lo(__m512 v)
{
    return hsum_ps(_mm512_castps512_ps256(v));
}
static inline float hsum_hi(__m512 v)
{
    return hsum_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* Every type takes the same integer form: u (unsigned bytes) from the weight
 * block and the signed activations, sum(u * y) = sum(x * y) + K * sum(y) with x = u - K
 * (K = 128 for Q8_0 via a xor, 8 for Q4_0, 16 for Q5_0, 0 for Q4_1 / Q5_1), so the dot
 * accumulator starts at -K * (sum of each 4 activations): one base per activation block,
 * shared by all the rows of the tile; exact for every int8 weight. */
static inline __m256i lu_q8_0(const struct blk_q8_0 *b)
{
    return _mm256_xor_si256(load256(b->qs), _mm256_set1_epi8(-128));
}
#define lu_q4_0(b) nibbles_32((b)->qs)
#define lu_q4_1(b) nibbles_32((b)->qs)
/* the fifth bits as a byte mask: bit j of qh adds 16 to element j */
static inline __m256i q5u(const uint8_t *qs, const uint8_t *qh)
{
    __m256i n = nibbles_32(qs);
    return _mm256_mask_add_epi8(n, (__mmask32)load_u32(qh), n, _mm256_set1_epi8(16));
}
#define lu_q5_0(b) q5u((b)->qs, (b)->qh)
#define lu_q5_1(b) q5u((b)->qs, (b)->qh)
#define lu2_q8_0(x0, x1)                                                                           \
    _mm512_xor_si512(pair256(load256((x0)->qs), load256((x1)->qs)), _mm512_set1_epi8(-128))
#define lu2_q5_0(x0, x1) q5_pair((x0)->qs, (x0)->qh, (x1)->qs, (x1)->qh)
#define lu2_q5_1(x0, x1) q5_pair((x0)->qs, (x0)->qh, (x1)->qs, (x1)->qh)
#define lu2_nib(x0, x1) nib_pair((x0)->qs, (x1)->qs)
/* two rows' blocks -> [row 0 | row 1] */
static inline __m512i nib_pair(const uint8_t *q0, const uint8_t *q1)
{
    __m256i u = _mm256_loadu2_m128i((const __m128i *)q1, (const __m128i *)q0);
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(u), _mm256_srli_epi16(u, 4), 1);
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)); /* lo0 hi0 lo1 hi1 */
    return _mm512_and_si512(z, _mm512_set1_epi8(15));
}
static inline __m512i q5_pair(const uint8_t *qs0, const uint8_t *qh0, const uint8_t *qs1,
                              const uint8_t *qh1)
{
    __m512i n = nib_pair(qs0, qs1);
    __mmask64 k = (__mmask64)load_u32(qh0) | (__mmask64)load_u32(qh1) << 32;
    return _mm512_mask_add_epi8(n, k, n, _mm512_set1_epi8(16));
}
static inline __m256i base256(__m256i y, int k)
{
    const __m256i zero = _mm256_setzero_si256();
    return _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, _mm256_set1_epi8((char)k), y));
}
static inline __m512i base512(__m512i y, int k)
{
    const __m512i zero = _mm512_setzero_si512();
    return _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, _mm512_set1_epi8((char)k), y));
}

/* Prefill packs a column group's activations per block once (the pairs, their bases and
 * scales) for all the row tiles, on the stack for rows of up to ZPK_NB blocks. */
#define ZPK_NB 256
#define ZRB (12 * ZRT) /* rows per pass over the column groups (their weights stay cached) */
struct zpk {
    __m512i yq[ZCP], base[ZCP];
    __m512 dy[ZCP];
    __m256 sy;
};

/* The outputs of a ZRT x 2 ZCP tile: each 8-lane chain summed (hsum8 per half), plus the
 * Q4_1 / Q5_1 m * s sums when addsm. */
static inline __attribute__((always_inline)) void zstore(int rt, int cp,
                                                         const __m512 acc[ZRT][ZCP],
                                                         const __m256 summs[ZRT], int addsm,
                                                         float *out, size_t ors)
{
    for (int r = 0; r < rt; r++) {
        float sm[8];
        _mm256_storeu_ps(sm, summs[r]);
        for (int p = 0; p < cp; p++) {
            float lo = hsum_lo(acc[r][p]), hi = hsum_hi(acc[r][p]);
            out[(size_t)(2 * p) * ors + (size_t)r] = addsm ? lo + sm[2 * p] : lo;
            out[(size_t)(2 * p + 1) * ors + (size_t)r] = addsm ? hi + sm[2 * p + 1] : hi;
        }
    }
}

#define DEFINE_LEGACY512_Z(T, XBLK, YBLK, K, LU, LU2, GET_M, GET_S)                               \
    static inline __attribute__((always_inline)) void lcol_##T(                                \
        int64_t nb, int rt, const char *x, size_t xrb, const char *y, float *out)               \
    {                                                                                           \
        __m256 acc[ZRT];                                                                        \
        float summs[ZRT];                                                                       \
        for (int r = 0; r < rt; r++) {                                                          \
            acc[r] = _mm256_setzero_ps();                                                       \
            summs[r] = 0;                                                                       \
        }                                                                                       \
        for (int64_t i = 0; i < nb; i++) {                                                      \
            const YBLK *yb = (const YBLK *)y + i;                                               \
            __m256i yq = load256(yb->qs);                                                       \
            __m256i base = K ? base256(yq, K) : _mm256_setzero_si256();                         \
            float dy = h2f(yb->d), sy = K ? 0.0f : h2f(GET_S(yb));                              \
            for (int r = 0; r < rt; r++) {                                                      \
                const XBLK *xb = (const XBLK *)(x + (size_t)r * xrb) + i;                        \
                __m256i s = _mm256_dpbusd_epi32(base, LU(xb), yq);                              \
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(xb->d) * dy), _mm256_cvtepi32_ps(s), \
                                         acc[r]);                                               \
                if (!K)                                                                         \
                    summs[r] += h2f(GET_M(xb)) * sy;                                            \
            }                                                                                   \
        }                                                                                       \
        for (int r = 0; r < rt; r++)                                                            \
            out[r] = K ? hsum_ps(acc[r]) : hsum_ps(acc[r]) + summs[r];                          \
    }                                                                                           \
    static float vec_dot512_##T(int64_t n, const void *x, const void *y)                        \
    {                                                                                           \
        float out;                                                                              \
        lcol_##T(n / QK, 1, x, 0, y, &out);                                                     \
        return out;                                                                             \
    }                                                                                           \
    /* block i of the activation column pairs 0..cp-1 (pairs, their bases and scales) */    \
    static inline __attribute__((always_inline)) void zpack1_##T(                           \
        int64_t i, int cp, const char *y, size_t yrb, struct zpk *b)                        \
    {                                                                                       \
        uint64_t dlo = 0, dhi = 0, slo = 0, shi = 0;                                        \
        for (int p = 0; p < cp; p++) {                                                      \
            const YBLK *y0 = (const YBLK *)(y + (size_t)(2 * p) * yrb) + i;                 \
            const YBLK *y1 = (const YBLK *)(y + (size_t)(2 * p + 1) * yrb) + i;             \
            b->yq[p] = pair256(load256(y0->qs), load256(y1->qs));                           \
            b->base[p] = K ? base512(b->yq[p], K) : _mm512_setzero_si512();                 \
            pack_half(&dlo, &dhi, 2 * p, y0->d);                                            \
            pack_half(&dlo, &dhi, 2 * p + 1, y1->d);                                        \
            if (!K) {                                                                       \
                pack_half(&slo, &shi, 2 * p, GET_S(y0));                                    \
                pack_half(&slo, &shi, 2 * p + 1, GET_S(y1));                                \
            }                                                                               \
        }                                                                                   \
        __m256 dyall = halves8(dlo, dhi);                                                   \
        b->sy = halves8(slo, shi);                                                          \
        for (int p = 0; p < cp; p++)                                                        \
            b->dy[p] = pair_bcast(dyall, 2 * p);                                            \
    }                                                                                       \
    /* block i of rows 0..rt-1 against a prepared block of cp column pairs */               \
    static inline __attribute__((always_inline)) void zstep_##T(                            \
        int64_t i, int rt, int cp, const char *x, size_t xrb, const struct zpk *b,          \
        __m512 acc[ZRT][ZCP], __m256 summs[ZRT])                                            \
    {                                                                                       \
        for (int r = 0; r < rt; r++) {                                                      \
            const XBLK *xb = (const XBLK *)(x + (size_t)r * xrb) + i;                       \
            __m512i u = _mm512_broadcast_i64x4(LU(xb));                                     \
            __m512 dx = _mm512_set1_ps(h2f(xb->d));                                         \
            for (int p = 0; p < cp; p++) {                                                  \
                __m512i s = _mm512_dpbusd_epi32(b->base[p], u, b->yq[p]);                   \
                acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(dx, b->dy[p]), _mm512_cvtepi32_ps(s), \
                                            acc[r][p]);                                     \
            }                                                                               \
            if (!K)                                                                         \
                summs[r] = _mm256_add_ps(                                                   \
                    summs[r], _mm256_mul_ps(_mm256_set1_ps(h2f(GET_M(xb))), b->sy));        \
        }                                                                                   \
    }                                                                                       \
    /* rt rows x cp column pairs; pk: the columns prepared for all nb blocks, or NULL (each \
     * block is prepared here from y) */                                                    \
    static inline __attribute__((always_inline)) void zcols_##T(                            \
        int64_t nb, int rt, int cp, const char *x, size_t xrb, const char *y, size_t yrb,   \
        const struct zpk *pk, float *out, size_t ors)                                       \
    {                                                                                       \
        __m512 acc[ZRT][ZCP];                                                               \
        __m256 summs[ZRT];                                                                  \
        for (int r = 0; r < rt; r++) {                                                      \
            summs[r] = _mm256_setzero_ps();                                                 \
            for (int p = 0; p < cp; p++)                                                    \
                acc[r][p] = _mm512_setzero_ps();                                            \
        }                                                                                   \
        for (int64_t i = 0; i < nb; i++) {                                                  \
            if (pk) {                                                                       \
                zstep_##T(i, rt, cp, x, xrb, pk + i, acc, summs);                           \
            } else {                                                                        \
                struct zpk b;                                                               \
                zpack1_##T(i, cp, y, yrb, &b);                                              \
                zstep_##T(i, rt, cp, x, xrb, &b, acc, summs);                               \
            }                                                                               \
        }                                                                                   \
        zstore(rt, cp, acc, summs, !K, out, ors);                                           \
    }                                                                                       \
    static inline __attribute__((always_inline)) void zrows_##T(                               \
        int64_t nb, int rp, const char *x, size_t xrb, const char *y, float *out)               \
    {                                                                                           \
        __m512 acc[ZRP];                                                                        \
        /* the next tile's rows follow this tile's in memory: stream them into the cache     */ \
        /* while this tile is computed (a row is short; per-row prefetch starts too late)    */ \
        uintptr_t pfc = (uintptr_t)x + (size_t)(2 * rp) * xrb;                                  \
        const uintptr_t pfe = pfc + (size_t)(2 * rp) * xrb;                                     \
        const int64_t npf = ((int64_t)(pfe - pfc) + nb * 64 - 1) / (nb * 64) + 1;               \
        __m256 summs = _mm256_setzero_ps();                                                     \
        for (int p = 0; p < rp; p++)                                                            \
            acc[p] = _mm512_setzero_ps();                                                       \
        for (int64_t i = 0; i < nb; i++) {                                                      \
            const YBLK *yb = (const YBLK *)y + i;                                               \
            __m512i yq = _mm512_broadcast_i64x4(load256(yb->qs));                               \
            __m512i base = K ? base512(yq, K) : _mm512_setzero_si512();                         \
            uint64_t dlo = 0, dhi = 0, mlo = 0, mhi = 0;                                        \
            for (int64_t k = 0; k < npf && pfc < pfe; k++, pfc += 64)                           \
                _mm_prefetch((const char *)pfc, _MM_HINT_T0);                                   \
            for (int r = 0; r < 2 * rp; r++) {                                                  \
                const XBLK *xb = (const XBLK *)(x + (size_t)r * xrb) + i;                        \
                pack_half(&dlo, &dhi, r, xb->d);                                                \
                if (!K)                                                                         \
                    pack_half(&mlo, &mhi, r, GET_M(xb));                                        \
            }                                                                                   \
            __m256 sc = _mm256_mul_ps(halves8(dlo, dhi), _mm256_set1_ps(h2f(yb->d)));           \
            if (!K)                                                                             \
                summs = _mm256_add_ps(summs, _mm256_mul_ps(halves8(mlo, mhi),                   \
                                                           _mm256_set1_ps(h2f(GET_S(yb)))));    \
            for (int p = 0; p < rp; p++) {                                                      \
                const XBLK *x0 = (const XBLK *)(x + (size_t)(2 * p) * xrb) + i;                  \
                const XBLK *x1 = (const XBLK *)(x + (size_t)(2 * p + 1) * xrb) + i;              \
                __m512i s = _mm512_dpbusd_epi32(base, LU2(x0, x1), yq);                         \
                acc[p] = _mm512_fmadd_ps(pair_bcast(sc, 2 * p), _mm512_cvtepi32_ps(s), acc[p]); \
            }                                                                                   \
        }                                                                                       \
        float sm[8];                                                                            \
        _mm256_storeu_ps(sm, summs);                                                            \
        for (int p = 0; p < rp; p++) {                                                          \
            float lo = hsum_lo(acc[p]), hi = hsum_hi(acc[p]);                                   \
            out[2 * p] = K ? lo : lo + sm[2 * p];                                               \
            out[2 * p + 1] = K ? hi : hi + sm[2 * p + 1];                                       \
        }                                                                                       \
    }                                                                                           \
    static void gemm512_##T(int64_t n, int64_t nr, int64_t nc, const void *vx, size_t xrb,      \
                            const void *vy, size_t yrb, float *out, size_t ors)                 \
    {                                                                                           \
        const char *x = vx, *y = vy;                                                            \
        int64_t nb = n / QK, r0 = 0;                                                            \
        if (nc == 1) {                                                                          \
            for (; r0 + 2 * ZRP <= nr; r0 += 2 * ZRP)                                           \
                zrows_##T(nb, ZRP, x + (size_t)r0 * xrb, xrb, y, out + r0);                     \
            for (; r0 + 2 <= nr; r0 += 2)                                                       \
                zrows_##T(nb, 1, x + (size_t)r0 * xrb, xrb, y, out + r0);                       \
            for (; r0 < nr; r0++)                                                               \
                lcol_##T(nb, 1, x + (size_t)r0 * xrb, xrb, y, out + r0);                        \
            return;                                                                             \
        }                                                                                       \
        int64_t cp0 = 0; /* columns done from packed groups */                                 \
        if (nb <= ZPK_NB && nc >= 2 * ZCP) {                                                    \
            struct zpk pk[ZPK_NB];                                                              \
            int64_t ncp = nc / (2 * ZCP) * (2 * ZCP);                                           \
            for (int64_t rb = 0; rb < nr; rb += ZRB) {                                          \
                int64_t re = nr - rb < ZRB ? nr : rb + ZRB;                                     \
                for (cp0 = 0; cp0 < ncp; cp0 += 2 * ZCP) {                                      \
                    for (int64_t i = 0; i < nb; i++)                                            \
                        zpack1_##T(i, ZCP, y + (size_t)cp0 * yrb, yrb, &pk[i]);                 \
                    for (r0 = rb; r0 < re; r0 += ZRT) {                                         \
                        int rt = re - r0 < ZRT ? (int)(re - r0) : ZRT;                          \
                        float *op = out + (size_t)cp0 * ors + (size_t)r0;                       \
                        if (rt == ZRT)                                                          \
                            zcols_##T(nb, ZRT, ZCP, x + (size_t)r0 * xrb, xrb, y, yrb, pk,      \
                                      op, ors);                                                 \
                        else                                                                    \
                            zcols_##T(nb, rt, ZCP, x + (size_t)r0 * xrb, xrb, y, yrb, pk,       \
                                      op, ors);                                                 \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
            cp0 = ncp;                                                                          \
        }                                                                                       \
        for (r0 = 0; r0 < nr; r0 += ZRT) {                                                      \
            int rt = nr - r0 < ZRT ? (int)(nr - r0) : ZRT;                                      \
            const char *xp = x + (size_t)r0 * xrb;                                              \
            int64_t c0 = cp0;                                                                   \
            for (; c0 + 2 * ZCP <= nc; c0 += 2 * ZCP) {                                         \
                const char *yp = y + (size_t)c0 * yrb;                                          \
                float *op = out + (size_t)c0 * ors + (size_t)r0;                                \
                if (rt == ZRT)                                                                  \
                    zcols_##T(nb, ZRT, ZCP, xp, xrb, yp, yrb, NULL, op, ors);                   \
                else                                                                            \
                    zcols_##T(nb, rt, ZCP, xp, xrb, yp, yrb, NULL, op, ors);                    \
            }                                                                                   \
            for (; c0 + 2 <= nc; c0 += 2) {                                                     \
                const char *yp = y + (size_t)c0 * yrb;                                          \
                float *op = out + (size_t)c0 * ors + (size_t)r0;                                \
                if (rt == ZRT)                                                                  \
                    zcols_##T(nb, ZRT, 1, xp, xrb, yp, yrb, NULL, op, ors);                     \
                else                                                                            \
                    zcols_##T(nb, rt, 1, xp, xrb, yp, yrb, NULL, op, ors);                      \
            }                                                                                   \
            if (c0 < nc) {                                                                      \
                const char *yp = y + (size_t)c0 * yrb;                                          \
                float *op = out + (size_t)c0 * ors + (size_t)r0;                                \
                if (rt == ZRT)                                                                  \
                    lcol_##T(nb, ZRT, xp, xrb, yp, op);                                         \
                else                                                                            \
                    lcol_##T(nb, rt, xp, xrb, yp, op);                                          \
            }                                                                                   \
        }                                                                                       \
    }

#define NO_M(b) ((void)(b), (uint16_t)0) /* unused: K != 0 */
#define NO_S(b) ((void)(b), (uint16_t)0)
#define GET_M(b) ((b)->m)
#define GET_S(b) ((b)->s)
DEFINE_LEGACY512_Z(q8_0, struct blk_q8_0, struct blk_q8_0, 128, lu_q8_0, lu2_q8_0, NO_M, NO_S)
DEFINE_LEGACY512_Z(q4_0, struct blk_q4_0, struct blk_q8_0, 8, lu_q4_0, lu2_nib, NO_M, NO_S)
DEFINE_LEGACY512_Z(q5_0, struct blk_q5_0, struct blk_q8_0, 16, lu_q5_0, lu2_q5_0, NO_M, NO_S)
DEFINE_LEGACY512_Z(q4_1, struct blk_q4_1, struct blk_q8_1, 0, lu_q4_1, lu2_nib, GET_M, GET_S)
DEFINE_LEGACY512_Z(q5_1, struct blk_q5_1, struct blk_q8_1, 0, lu_q5_1, lu2_q5_1, GET_M, GET_S)

KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_bf16_avx512, vec_dot_bf16_bf16_avx512)

void kura_kernels_fill_avx512(struct kura_type_traits table[KURA_TYPE__COUNT])
{
    fill_common_avx512(table);
#define SET_LEGACY(T, name)                                                                      \
    table[T].vec_dot = vec_dot512_##name;                                                       \
    table[T].gemm = gemm512_##name
    SET_LEGACY(KURA_TYPE_Q4_0, q4_0);
    SET_LEGACY(KURA_TYPE_Q4_1, q4_1);
    SET_LEGACY(KURA_TYPE_Q5_0, q5_0);
    SET_LEGACY(KURA_TYPE_Q5_1, q5_1);
    SET_LEGACY(KURA_TYPE_Q8_0, q8_0);
#undef SET_LEGACY
    table[KURA_TYPE_F32].vec_dot = vec_dot_f32_f32_avx512;
    table[KURA_TYPE_F32].gemm = gemm512_f32;
    table[KURA_TYPE_F16].vec_dot = vec_dot_f16_f16_avx512;
    table[KURA_TYPE_F16].gemm = gemm512_f16;
    table[KURA_TYPE_BF16].vec_dot = vec_dot_bf16_bf16_avx512;
    table[KURA_TYPE_BF16].gemm = gemm_bf16_avx512;
    kura_kernels_fill_kq_avx512(table);
}
