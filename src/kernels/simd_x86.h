/* x86 SIMD kernels, written once and compiled per ISA: simd_avx2.c includes this file with
 * AVX2 + FMA + F16C, simd_avx512.c with AVX-512 (VNNI replaces the maddubs/madd pairs with
 * dpbusd / dpwssd on 256-bit vectors, and the register tile is larger). Not a public header:
 * include it only from a per-ISA file, after defining
 *   SIMD_SFX(name)   name with the ISA suffix appended
 *   SIMD_VNNI        1 to use AVX512-VNNI (needs -mavx512vnni -mavx512vl)
 *   SIMD_TR, SIMD_TC rows x columns of the gemm register tile
 *
 * Every kernel treats a block as: unpack the weight block once into int8 vectors and scales
 * (struct unp_*), then dot the unpacked block with one activation block, accumulating into a
 * float vector (and, for the types with an additive min, a float scalar). vec_dot runs that
 * over one row; gemm keeps SIMD_TR x SIMD_TC accumulators and reuses each unpacked weight
 * block for SIMD_TC activation columns (gemm sums the blocks in order, vec_dot in four
 * interleaved chains: the results agree to float rounding). For the legacy quants the
 * row product is the gemm tile's single chain (vec_dot_ord_*), which is the scalar order:
 * those kernels, and F32 / F16, equal scalar.c bit for bit. */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels_int.h"

/* ------------------------------------------------------------------------------------------ */
/* Primitives                                                                                 */

static inline float h2f(uint16_t h)
{
    return _cvtsh_ss(h);
}

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* acc + sum over groups of 4 of u (unsigned bytes) * s (signed bytes), as int32 lanes.
 * Without VNNI via maddubs (int16 pairs; no saturation for |u| <= 127 or |s| <= 127). */
static inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s)
{
#if SIMD_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s),
                                                   _mm256_set1_epi16(1)));
#endif
}

/* Signed x signed bytes: |a| * (b with a's sign). */
static inline __m256i dot_s8s8(__m256i acc, __m256i a, __m256i b)
{
    return dot_u8s8(acc, _mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* acc + pairwise sums of a * b (int16 -> int32). */
static inline __m256i dot_i16(__m256i acc, __m256i a, __m256i b)
{
#if SIMD_VNNI
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

static inline __m256i load256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles in the low half, high nibbles in the high. */
static inline __m256i nibbles_32(const uint8_t *qs)
{
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(15));
}

/* Bit j of bits -> byte j = 0x10 if set, else 0 (the fifth bit of Q5_0 / Q5_1). */
static inline __m256i bits_to_0x10(uint32_t bits)
{
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

static inline uint32_t load_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ------------------------------------------------------------------------------------------ */
/* Legacy quants: unpack to 32 bytes + scale, dot with one Q8_0 / Q8_1 block                  */

struct unp_sym { /* Q4_0, Q5_0, Q8_0, Q8_1 weights: signed values */
    __m256i q;
    float d;
};
struct unp_asym { /* Q4_1, Q5_1: unsigned values, x = q d + m */
    __m256i q;
    float d, m;
};

static inline void unpack_q4_0(const struct blk_q4_0 *b, struct unp_sym *u)
{
    u->q = _mm256_sub_epi8(nibbles_32(b->qs), _mm256_set1_epi8(8));
    u->d = h2f(b->d);
}
static inline void unpack_q5_0(const struct blk_q5_0 *b, struct unp_sym *u)
{
    __m256i q = _mm256_or_si256(nibbles_32(b->qs), bits_to_0x10(load_u32(b->qh)));
    u->q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
    u->d = h2f(b->d);
}
static inline void unpack_q8_0(const struct blk_q8_0 *b, struct unp_sym *u)
{
    u->q = load256(b->qs);
    u->d = h2f(b->d);
}
static inline void unpack_q8_1(const struct blk_q8_1 *b, struct unp_sym *u)
{
    u->q = load256(b->qs);
    u->d = h2f(b->d);
}
static inline void unpack_q4_1(const struct blk_q4_1 *b, struct unp_asym *u)
{
    u->q = nibbles_32(b->qs);
    u->d = h2f(b->d);
    u->m = h2f(b->m);
}
static inline void unpack_q5_1(const struct blk_q5_1 *b, struct unp_asym *u)
{
    u->q = _mm256_or_si256(nibbles_32(b->qs), bits_to_0x10(load_u32(b->qh)));
    u->d = h2f(b->d);
    u->m = h2f(b->m);
}

static inline void dot_sym_q8_0(const struct unp_sym *u, const struct blk_q8_0 *y, __m256 *acc,
                                float *accs)
{
    (void)accs;
    __m256i s = dot_s8s8(_mm256_setzero_si256(), u->q, load256(y->qs));
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(u->d * h2f(y->d)), *acc);
}
static inline void dot_sym_q8_1(const struct unp_sym *u, const struct blk_q8_1 *y, __m256 *acc,
                                float *accs)
{
    (void)accs;
    __m256i s = dot_s8s8(_mm256_setzero_si256(), u->q, load256(y->qs));
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(u->d * h2f(y->d)), *acc);
}
static inline void dot_asym_q8_1(const struct unp_asym *u, const struct blk_q8_1 *y, __m256 *acc,
                                 float *accs)
{
    __m256i s = dot_u8s8(_mm256_setzero_si256(), u->q, load256(y->qs));
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(u->d * h2f(y->d)), *acc);
    *accs += u->m * h2f(y->s);
}

/* ------------------------------------------------------------------------------------------ */
/* K-quants: unpack to 8 chunks of 32 bytes (chunk k = elements 32k..32k+31), int16 scales    */
/* laid out like maddubs output, and the terms that multiply Q8_K's bsums                     */

struct unp_k {
    __m256i q[8];    /* unsigned levels */
    __m256i sc[8];   /* int16 x16: scale of each maddubs pair of chunk k */
    __m256i bmul;    /* int16 x16: factor of bsums[0..15] (min or -offset * scale) */
    float d, dmin;   /* float factors of the scale sum and the bsums sum */
};

/* Scales of the 16-element sub-blocks 2k, 2k+1 as a maddubs-shaped int16 vector. */
static inline __m256i pair_scales(int a, int b)
{
    return _mm256_setr_epi16((short)a, (short)a, (short)a, (short)a, (short)a, (short)a, (short)a,
                             (short)a, (short)b, (short)b, (short)b, (short)b, (short)b, (short)b,
                             (short)b, (short)b);
}

static inline void unpack_q2_k(const struct blk_q2_k *b, struct unp_k *u)
{
    const __m256i three = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; h++) {
        __m256i raw = load256(b->qs + 32 * h);
        for (int j = 0; j < 4; j++)
            u->q[4 * h + j] = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), three);
    }
    int16_t m16[16];
    for (int k = 0; k < 8; k++)
        u->sc[k] = pair_scales(b->scales[2 * k] & 15, b->scales[2 * k + 1] & 15);
    for (int j = 0; j < 16; j++)
        m16[j] = (int16_t)(b->scales[j] >> 4);
    u->bmul = load256(m16);
    u->d = h2f(b->d);
    u->dmin = -h2f(b->dmin);
}

static inline void unpack_q3_k(const struct blk_q3_k *b, struct unp_k *u)
{
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256i hm = load256(b->hmask);
    for (int h = 0; h < 2; h++) {
        __m256i raw = load256(b->qs + 32 * h);
        for (int j = 0; j < 4; j++) {
            int k = 4 * h + j;
            __m256i lo = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), three);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(hm, k), one);
            u->q[k] = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 2)); /* value q - 4 */
        }
    }
    int sc[16];
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? (b->scales[j] & 15) : (b->scales[j - 8] >> 4);
        int hi = (b->scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        sc[j] = (lo | hi << 4) - 32;
    }
    int16_t m16[16];
    for (int k = 0; k < 8; k++)
        u->sc[k] = pair_scales(sc[2 * k], sc[2 * k + 1]);
    for (int j = 0; j < 16; j++)
        m16[j] = (int16_t)(-4 * sc[j]);
    u->bmul = load256(m16);
    u->d = h2f(b->d);
    u->dmin = h2f(b->d);
}

static inline void dot_k_q8_k(const struct unp_k *u, const struct blk_q8_k *y, __m256 *acc,
                              float *accs)
{
    (void)accs;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0; /* two chains halve the latency */
    for (int k = 0; k < 8; k += 2) {
        s0 = dot_i16(s0, _mm256_maddubs_epi16(u->q[k], load256(y->qs + 32 * k)), u->sc[k]);
        s1 = dot_i16(s1, _mm256_maddubs_epi16(u->q[k + 1], load256(y->qs + 32 * k + 32)),
                     u->sc[k + 1]);
    }
    __m256i s = _mm256_add_epi32(s0, s1);
    __m256i sm = _mm256_madd_epi16(load256(y->bsums), u->bmul);
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(u->d * y->d), *acc);
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sm), _mm256_set1_ps(u->dmin * y->d), *acc);
}

/* Q8_K weights (rare; symmetric int8). */
struct unp_q8_k {
    const int8_t *qs;
    float d;
};
static inline void unpack_q8_k(const struct blk_q8_k *b, struct unp_q8_k *u)
{
    u->qs = b->qs;
    u->d = b->d;
}
static inline void dot_q8_k_q8_k(const struct unp_q8_k *u, const struct blk_q8_k *y, __m256 *acc,
                                 float *accs)
{
    (void)accs;
    __m256i s = _mm256_setzero_si256();
    for (int k = 0; k < 8; k++)
        s = dot_s8s8(s, load256(u->qs + 32 * k), load256(y->qs + 32 * k));
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(u->d * y->d), *acc);
}

/* ------------------------------------------------------------------------------------------ */
/* vec_dot and register-tiled gemm from unpack + dot                                          */

#define SIMD_QUANT_KERNELS(T, XBLK, YBLK, UNP, UNPACK, DOT, BLEN)                                \
    __attribute__((unused)) static float SIMD_SFX(vec_dot_##T)(int64_t n, const void *vx,       \
                                                               const void *vy)                   \
    {                                                                                            \
        const XBLK *x = vx;                                                                      \
        const YBLK *y = vy;                                                                      \
        /* four accumulators: one fma chain per block would wait on the fma latency */         \
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),          \
                         _mm256_setzero_ps()};                                                   \
        float accs = 0;                                                                          \
        UNP u;                                                                                   \
        int64_t nb = n / (BLEN), i = 0;                                                          \
        for (; i + 4 <= nb; i += 4)                                                              \
            for (int k = 0; k < 4; k++) {                                                        \
                UNPACK(&x[i + k], &u);                                                           \
                DOT(&u, &y[i + k], &acc[k], &accs);                                              \
            }                                                                                    \
        for (; i < nb; i++) {                                                                    \
            UNPACK(&x[i], &u);                                                                   \
            DOT(&u, &y[i], &acc[0], &accs);                                                      \
        }                                                                                        \
        return hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]),                              \
                                     _mm256_add_ps(acc[2], acc[3]))) +                           \
               accs;                                                                             \
    }                                                                                            \
    static inline __attribute__((always_inline)) void tile_##T(                                  \
        int64_t nb, int rr, int cc, const char *x, size_t xrb, const char *y, size_t yrb,        \
        float *out, size_t ors)                                                                  \
    {                                                                                            \
        __m256 acc[SIMD_TR][SIMD_TC];                                                            \
        float accs[SIMD_TR][SIMD_TC];                                                            \
        for (int r = 0; r < rr; r++)                                                             \
            for (int c = 0; c < cc; c++) {                                                       \
                acc[r][c] = _mm256_setzero_ps();                                                 \
                accs[r][c] = 0;                                                                  \
            }                                                                                    \
        UNP u;                                                                                   \
        for (int64_t i = 0; i < nb; i++)                                                         \
            for (int r = 0; r < rr; r++) {                                                       \
                UNPACK((const XBLK *)(x + (size_t)r * xrb) + i, &u);                             \
                for (int c = 0; c < cc; c++)                                                     \
                    DOT(&u, (const YBLK *)(y + (size_t)c * yrb) + i, &acc[r][c], &accs[r][c]);   \
            }                                                                                    \
        for (int r = 0; r < rr; r++)                                                             \
            for (int c = 0; c < cc; c++)                                                         \
                out[(size_t)c * ors + (size_t)r] = hsum_ps(acc[r][c]) + accs[r][c];              \
    }                                                                                            \
    static void SIMD_SFX(gemm_##T)(int64_t n, int64_t nr, int64_t nc, const void *x,             \
                                   size_t xrb, const void *y, size_t yrb, float *out,            \
                                   size_t ors)                                                   \
    {                                                                                            \
        /* rows outer: a tile of weight rows stays in L1 while all the columns pass over it, \
         * so the weights stream from memory once (the activations are small and stay in L2) */ \
        int64_t nb = n / (BLEN);                                                                 \
        for (int64_t r0 = 0; r0 < nr; r0 += SIMD_TR) {                                           \
            int rr = nr - r0 < SIMD_TR ? (int)(nr - r0) : SIMD_TR;                               \
            for (int64_t c0 = 0; c0 < nc; c0 += SIMD_TC) {                                       \
                int cc = nc - c0 < SIMD_TC ? (int)(nc - c0) : SIMD_TC;                           \
                const char *xp = (const char *)x + (size_t)r0 * xrb;                             \
                const char *yp = (const char *)y + (size_t)c0 * yrb;                             \
                float *op = out + (size_t)c0 * ors + (size_t)r0;                                 \
                if (rr == SIMD_TR && cc == SIMD_TC)                                              \
                    tile_##T(nb, SIMD_TR, SIMD_TC, xp, xrb, yp, yrb, op, ors);                   \
                else                                                                             \
                    tile_##T(nb, rr, cc, xp, xrb, yp, yrb, op, ors);                             \
            }                                                                                    \
        }                                                                                        \
    }

SIMD_QUANT_KERNELS(q4_0, struct blk_q4_0, struct blk_q8_0, struct unp_sym, unpack_q4_0,
                   dot_sym_q8_0, QK)
SIMD_QUANT_KERNELS(q5_0, struct blk_q5_0, struct blk_q8_0, struct unp_sym, unpack_q5_0,
                   dot_sym_q8_0, QK)
SIMD_QUANT_KERNELS(q8_0, struct blk_q8_0, struct blk_q8_0, struct unp_sym, unpack_q8_0,
                   dot_sym_q8_0, QK)
SIMD_QUANT_KERNELS(q8_1, struct blk_q8_1, struct blk_q8_1, struct unp_sym, unpack_q8_1,
                   dot_sym_q8_1, QK)
SIMD_QUANT_KERNELS(q4_1, struct blk_q4_1, struct blk_q8_1, struct unp_asym, unpack_q4_1,
                   dot_asym_q8_1, QK)
SIMD_QUANT_KERNELS(q5_1, struct blk_q5_1, struct blk_q8_1, struct unp_asym, unpack_q5_1,
                   dot_asym_q8_1, QK)
/* The legacy quants' row product in the scalar kernels' order (one 8-lane chain, hsum8):
 * the gemm tile with one row and one column. Bit-identical with scalar.c. */
#define SIMD_ORDERED_VEC_DOT(T)                                                                   \
    static float SIMD_SFX(vec_dot_ord_##T)(int64_t n, const void *vx, const void *vy)            \
    {                                                                                            \
        float out;                                                                               \
        tile_##T(n / QK, 1, 1, vx, 0, vy, 0, &out, 1);                                           \
        return out;                                                                              \
    }
SIMD_ORDERED_VEC_DOT(q4_0)
SIMD_ORDERED_VEC_DOT(q4_1)
SIMD_ORDERED_VEC_DOT(q5_0)
SIMD_ORDERED_VEC_DOT(q5_1)
SIMD_ORDERED_VEC_DOT(q8_0)

SIMD_QUANT_KERNELS(q2_k, struct blk_q2_k, struct blk_q8_k, struct unp_k, unpack_q2_k, dot_k_q8_k,
                   QK_K)
SIMD_QUANT_KERNELS(q3_k, struct blk_q3_k, struct blk_q8_k, struct unp_k, unpack_q3_k, dot_k_q8_k,
                   QK_K)
SIMD_QUANT_KERNELS(q8_k, struct blk_q8_k, struct blk_q8_k, struct unp_q8_k, unpack_q8_k,
                   dot_q8_k_q8_k, QK_K)

/* ------------------------------------------------------------------------------------------ */
/* Activation quantizers: bit-identical with the scalar ones                                  */

static inline __m256 abs_ps(__m256 v)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

static inline float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 4 x 8 int32 (each in int8 range) -> 32 int8 in order. */
static inline __m256i pack_4x8_epi8(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i abcd = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Quantizes one 32-block the Q8_0 way; returns the int sum of the levels. */
static inline int q8_block(const float *x, int8_t *qs, uint16_t *d_out, float *d_float)
{
    __m256 v[4];
    __m256 mx = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        mx = _mm256_max_ps(mx, abs_ps(v[k]));
    }
    float amax = hmax_ps(mx);
    float d = amax / 127.0f;
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) /* cvtps: nearest, ties to even (default MXCSR) */
        q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], vid));
    _mm256_storeu_si256((__m256i *)qs, pack_4x8_epi8(q[0], q[1], q[2], q[3]));
    *d_out = kura_fp32_to_fp16(d);
    *d_float = d;
    return hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
}

static void SIMD_SFX(from_float_q8_0)(const float *x, void *dst, int64_t n)
{
    struct blk_q8_0 *b = dst;
    float d;
    for (int64_t i = 0; i < n / QK; i++)
        q8_block(x + QK * i, b[i].qs, &b[i].d, &d);
}

static void SIMD_SFX(from_float_q8_1)(const float *x, void *dst, int64_t n)
{
    struct blk_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        float d;
        int sum = q8_block(x + QK * i, b[i].qs, &b[i].d, &d);
        b[i].s = kura_fp32_to_fp16((float)sum * d);
    }
}

static void SIMD_SFX(from_float_q8_k)(const float *x, void *dst, int64_t n)
{
    struct blk_q8_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m256 mx = _mm256_setzero_ps();
        for (int k = 0; k < 32; k++)
            mx = _mm256_max_ps(mx, abs_ps(_mm256_loadu_ps(x + 8 * k)));
        float amax = hmax_ps(mx);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        /* the first element whose magnitude is amax gives the sign (as the scalar scan) */
        __m256 va = _mm256_set1_ps(amax);
        float max = amax;
        for (int k = 0; k < 32; k++) {
            int mask = _mm256_movemask_ps(
                _mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + 8 * k)), va, _CMP_EQ_OQ));
            if (mask) {
                max = x[8 * k + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        float iscale = -127.0f / max;
        __m256 vs = _mm256_set1_ps(iscale);
        const __m256i cap = _mm256_set1_epi32(127);
        for (int k = 0; k < 8; k++) {
            __m256i q[4];
            for (int t = 0; t < 4; t++) /* cvtps: nearest, ties to even (default MXCSR) */
                q[t] = _mm256_min_epi32(
                    _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * k + 8 * t), vs)),
                    cap);
            _mm256_storeu_si256((__m256i *)(b[i].qs + 32 * k), pack_4x8_epi8(q[0], q[1], q[2], q[3]));
            b[i].bsums[2 * k] = (int16_t)hsum_epi32(_mm256_add_epi32(q[0], q[1]));
            b[i].bsums[2 * k + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(q[2], q[3]));
        }
        b[i].d = 1.0f / iscale;
    }
}

static void SIMD_SFX(from_float_f16)(const float *x, void *dst, int64_t n)
{
    uint16_t *d = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        d[i] = kura_fp32_to_fp16(x[i]);
}

/* Round to nearest even on the bit pattern (NaN kept quiet), exactly as kura_fp32_to_bf16;
 * done with integer ops so denormals are not flushed as vcvtneps2bf16 would. */
static void SIMD_SFX(from_float_bf16)(const float *x, void *dst, int64_t n)
{
    uint16_t *d = dst;
    int64_t i = 0;
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int k = 0; k < 2; k++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(x + i + 8 * k));
            __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(v, 16), _mm256_set1_epi32(1));
            __m256i rounded = _mm256_srli_epi32(
                _mm256_add_epi32(_mm256_add_epi32(v, _mm256_set1_epi32(0x7fff)), lsb), 16);
            __m256i nan = _mm256_or_si256(_mm256_srli_epi32(v, 16), _mm256_set1_epi32(64));
            __m256i isnan = _mm256_cmpgt_epi32(_mm256_and_si256(v, absmask), inf);
            r[k] = _mm256_blendv_epi8(rounded, nan, isnan);
        }
        __m256i p = _mm256_packus_epi32(r[0], r[1]);
        _mm256_storeu_si256((__m256i *)(d + i), _mm256_permute4x64_epi64(p, 0xd8));
    }
    for (; i < n; i++)
        d[i] = kura_fp32_to_bf16(x[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* Float types (256-bit; the AVX-512 file has 512-bit versions of F32/F16). F32 and F16 follow
 * the scalar kernels' order bit for bit (scalar.c): 64-element steps into four 16-lane fma
 * accumulators (each a pair of 8-lane vectors: lanes 0-7, 8-15), reduced (0 + 2) + (1 + 3),
 * hsum16 (lanes i + 8, then hsum8), leftovers after; batches use one 16-lane chain per output. */

static inline __m256 load_f16x8(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

#define DEFINE_FLOAT_DOT256(T, elem_t, LOAD, sum_t, TAIL)                                         \
    __attribute__((unused)) static float SIMD_SFX(vec_dot_##T)(int64_t n, const void *vx,        \
                                                               const void *vy)                   \
    {                                                                                            \
        const elem_t *x = vx, *y = vy;                                                           \
        __m256 a[8];                                                                             \
        for (int k = 0; k < 8; k++)                                                              \
            a[k] = _mm256_setzero_ps();                                                          \
        int64_t np = n & ~(int64_t)63, i = 0;                                                    \
        for (; i < np; i += 64)                                                                  \
            for (int k = 0; k < 8; k++)                                                          \
                a[k] = _mm256_fmadd_ps(LOAD(x + i + 8 * k), LOAD(y + i + 8 * k), a[k]);          \
        __m256 lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));         \
        __m256 hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));         \
        sum_t s = hsum_ps(_mm256_add_ps(lo, hi));                                                \
        for (; i < n; i++)                                                                       \
            TAIL;                                                                                \
        return (float)s;                                                                         \
    }

static inline __m256 load_f32x8(const float *p)
{
    return _mm256_loadu_ps(p);
}

DEFINE_FLOAT_DOT256(f32, float, load_f32x8, float, s = fmaf(x[i], y[i], s))
DEFINE_FLOAT_DOT256(f16, uint16_t, load_f16x8, double, s += (double)(h2f(x[i]) * h2f(y[i])))

#define F256_RT 2
#define F256_CT 3
#define DEFINE_FLOAT_GEMM256(T, elem_t, LOAD)                                                     \
    static inline __attribute__((always_inline)) void SIMD_SFX(ftile_##T)(                     \
        int64_t n, int rr, int cc, const char *x, size_t xrb, const char *y, size_t yrb,        \
        float *out, size_t ors)                                                                 \
    {                                                                                           \
        __m256 lo[F256_RT][F256_CT], hi[F256_RT][F256_CT];                                      \
        for (int r = 0; r < rr; r++)                                                            \
            for (int c = 0; c < cc; c++)                                                        \
                lo[r][c] = hi[r][c] = _mm256_setzero_ps();                                      \
        for (int64_t i = 0; i < n; i += 16) {                                                   \
            __m256 yl[F256_CT], yh[F256_CT];                                                    \
            for (int c = 0; c < cc; c++) {                                                      \
                const elem_t *yc = (const elem_t *)(y + (size_t)c * yrb) + i;                    \
                yl[c] = LOAD(yc);                                                               \
                yh[c] = LOAD(yc + 8);                                                           \
            }                                                                                   \
            for (int r = 0; r < rr; r++) {                                                      \
                const elem_t *xr = (const elem_t *)(x + (size_t)r * xrb) + i;                    \
                __m256 xl = LOAD(xr), xh = LOAD(xr + 8);                                        \
                for (int c = 0; c < cc; c++) {                                                  \
                    lo[r][c] = _mm256_fmadd_ps(xl, yl[c], lo[r][c]);                            \
                    hi[r][c] = _mm256_fmadd_ps(xh, yh[c], hi[r][c]);                            \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        for (int r = 0; r < rr; r++)                                                            \
            for (int c = 0; c < cc; c++)                                                        \
                out[(size_t)c * ors + (size_t)r] = hsum_ps(_mm256_add_ps(lo[r][c], hi[r][c]));  \
    }                                                                                           \
    __attribute__((unused)) static void SIMD_SFX(gemm_##T)(                                    \
        int64_t n, int64_t nr, int64_t nc, const void *x, size_t xrb, const void *y,            \
        size_t yrb, float *out, size_t ors)                                                     \
    {                                                                                           \
        if (nc < 2 || n % 16) {                                                                 \
            for (int64_t c = 0; c < nc; c++)                                                    \
                for (int64_t r = 0; r < nr; r++)                                                \
                    out[(size_t)c * ors + (size_t)r] = SIMD_SFX(vec_dot_##T)(                   \
                        n, (const char *)x + (size_t)r * xrb, (const char *)y + (size_t)c * yrb); \
            return;                                                                             \
        }                                                                                       \
        for (int64_t r0 = 0; r0 < nr; r0 += F256_RT) {                                          \
            int rr = nr - r0 < F256_RT ? (int)(nr - r0) : F256_RT;                              \
            for (int64_t c0 = 0; c0 < nc; c0 += F256_CT) {                                      \
                int cc = nc - c0 < F256_CT ? (int)(nc - c0) : F256_CT;                          \
                const char *xp = (const char *)x + (size_t)r0 * xrb;                            \
                const char *yp = (const char *)y + (size_t)c0 * yrb;                            \
                float *op = out + (size_t)c0 * ors + (size_t)r0;                                \
                if (rr == F256_RT && cc == F256_CT)                                             \
                    SIMD_SFX(ftile_##T)(n, F256_RT, F256_CT, xp, xrb, yp, yrb, op, ors);        \
                else                                                                            \
                    SIMD_SFX(ftile_##T)(n, rr, cc, xp, xrb, yp, yrb, op, ors);                  \
            }                                                                                   \
        }                                                                                       \
    }

DEFINE_FLOAT_GEMM256(f32, float, load_f32x8)
DEFINE_FLOAT_GEMM256(f16, uint16_t, load_f16x8)

static inline __m256 load_bf16x8(const uint16_t *p)
{
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

__attribute__((unused)) static float SIMD_SFX(vec_dot_bf16)(int64_t n, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_bf16x8(x + i), load_bf16x8(y + i), a0);
        a1 = _mm256_fmadd_ps(load_bf16x8(x + i + 8), load_bf16x8(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_bf16x8(x + i + 16), load_bf16x8(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_bf16x8(x + i + 24), load_bf16x8(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(load_bf16x8(x + i), load_bf16x8(y + i), a0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++)
        s += kura_bf16_to_fp32(x[i]) * kura_bf16_to_fp32(y[i]);
    return s;
}

/* Fills the quantized-type entries shared by both ISAs. */
static void SIMD_SFX(fill_common)(struct kura_type_traits *t)
{
#define SET(T, name)                                                                             \
    t[T].vec_dot = SIMD_SFX(vec_dot_##name);                                                     \
    t[T].gemm = SIMD_SFX(gemm_##name)
    SET(KURA_TYPE_Q4_0, q4_0);
    SET(KURA_TYPE_Q4_1, q4_1);
    SET(KURA_TYPE_Q5_0, q5_0);
    SET(KURA_TYPE_Q5_1, q5_1);
    SET(KURA_TYPE_Q8_0, q8_0);
    SET(KURA_TYPE_Q8_1, q8_1);
    SET(KURA_TYPE_Q2_K, q2_k);
    SET(KURA_TYPE_Q3_K, q3_k);
    SET(KURA_TYPE_Q8_K, q8_k);
#undef SET
    t[KURA_TYPE_Q4_0].vec_dot = SIMD_SFX(vec_dot_ord_q4_0);
    t[KURA_TYPE_Q4_1].vec_dot = SIMD_SFX(vec_dot_ord_q4_1);
    t[KURA_TYPE_Q5_0].vec_dot = SIMD_SFX(vec_dot_ord_q5_0);
    t[KURA_TYPE_Q5_1].vec_dot = SIMD_SFX(vec_dot_ord_q5_1);
    t[KURA_TYPE_Q8_0].vec_dot = SIMD_SFX(vec_dot_ord_q8_0);
    t[KURA_TYPE_Q8_0].from_float = SIMD_SFX(from_float_q8_0);
    t[KURA_TYPE_Q8_1].from_float = SIMD_SFX(from_float_q8_1);
    t[KURA_TYPE_Q8_K].from_float = SIMD_SFX(from_float_q8_k);
    t[KURA_TYPE_F16].from_float = SIMD_SFX(from_float_f16);
    t[KURA_TYPE_BF16].from_float = SIMD_SFX(from_float_bf16);
}
