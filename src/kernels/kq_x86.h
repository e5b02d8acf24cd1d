/* K-quant x Q8_K kernels (Q4_K, Q5_K, Q6_K) for x86, written once on 256-bit vectors and
 * compiled per ISA: kq_avx2.c (AVX2: maddubs / madd) and kq_avx512.c (AVX-512 VL + VNNI:
 * dpbusd / dpwssd on 256-bit vectors, which run at the full 512-bit rate on Zen 4, and 32
 * registers for a larger gemm tile). Not a public header: include it only from a per-ISA file,
 * after defining
 *   KQ_SFX(name)  name with the ISA suffix appended
 *   KQ_VNNI       1 to use AVX512-VNNI
 *   KQ_G          gemm tile rows, in groups of 8 (one vector lane per row)
 *   KQ_C          gemm tile columns
 *
 * Results are bit-identical with the scalar kernels of scalar.c, which follow the reference
 * engine's x86 summation orders: every super-block's integer sums (scaled quants, mins or
 * offsets) are exact, and the float steps per super-block are the scalar ones, super-blocks in
 * order: Q4_K two fma chains acc_q += sum_q * (d * dy), acc_m += sum_m * (dmin * dy), result
 * acc_q - acc_m; Q5_K s += dy * (d * sum_q - dmin * sum_m); Q6_K eight int32 lanes per
 * super-block, acc = fma(d * dy, lanes, acc), hsum8 at the end. Exception: the packed Q6_K
 * gemm sums each super-block to one integer first (s += d * dy * sum; a lane per row leaves no
 * room for eight lanes per output), equal to the row dot product to float rounding.
 *
 * Decode (vec_dot, and gemm with few columns): one row at a time, 32 elements (one Q4_K/Q5_K
 * sub-block, two Q6_K ones) per vector; maddubs gives int16 pair sums, multiplied by the
 * sub-block scales (picked from one register by pshufb) in a madd / dpwssd; the eight-lane
 * int32 sums of eight super-blocks are reduced together by one hadd tree (Q4_K, Q5_K; Q6_K keeps
 * its eight lanes and subtracts maddubs(32, y), computed once per activation row in gemm).
 *
 * Prefill (gemm with many columns): ordinary GEMM packing. A panel of 8 KQ_G rows is unpacked
 * one super-block at a time into a small stack buffer laid out for a row-per-lane product
 * (k-step s = elements 4s..4s+3: 8 rows x 4 bytes per vector), with per-row int32 sub-block
 * scales and int16 min / offset factors; the micro-kernel then runs over all the columns:
 * per k-step one weight vector per row group, one 4-byte broadcast of the activations per
 * column, one dpbusd (or maddubs + add) per (group, column); per sub-block one multiply by the
 * scale; per super-block the bsums term and the float update of the outputs. A panel's
 * super-blocks (up to KQ_PB_MAX) are unpacked once into a per-thread buffer and reused for all
 * the columns. With VNNI the micro-kernel runs on 512-bit vectors: the 16 rows of a panel in
 * one register, KQ_CZ columns per pass (dpbusd with the activations as a broadcast), running
 * sums kept in an L1 scratch until the last super-block. */
#include <immintrin.h>

#include "kernels/kernels_int.h"

/* Rows per pass of the AVX-512 decode kernels. */
#ifndef KQ_DR
#define KQ_DR 4
#endif

/* Software prefetch distance (bytes) of the Q6_K row dot product. */
#ifndef KQ_PF6
#define KQ_PF6 2048
#endif

/* ------------------------------------------------------------------------------------------ */
/* Primitives                                                                                 */

static inline __m256i kq_load(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

static inline int32_t kq_load_i32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* acc + pairwise int16 products summed to int32 */
static inline __m256i kq_dot_i16(__m256i acc, __m256i a, __m256i b)
{
#if KQ_VNNI
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

/* pshufb controls (identical in both 128-bit lanes unless said otherwise) */
static const uint8_t KQ_CTRL[8][32] __attribute__((aligned(32))) = {
#define W(j) j, 0x80, j, 0x80, j, 0x80, j, 0x80, j, 0x80, j, 0x80, j, 0x80, j, 0x80
    {W(0), W(0)}, {W(1), W(1)}, {W(2), W(2)}, {W(3), W(3)},
    {W(4), W(4)}, {W(5), W(5)}, {W(6), W(6)}, {W(7), W(7)},
#undef W
};
/* int16 lane k -> byte 8 + k / 2 (the Q4_K min of bsums[k]) */
static const uint8_t KQ_CTRL_MIN[32] __attribute__((aligned(32))) = {
    8,  0x80, 8,  0x80, 9,  0x80, 9,  0x80, 10, 0x80, 10, 0x80, 11, 0x80, 11, 0x80,
    12, 0x80, 12, 0x80, 13, 0x80, 13, 0x80, 14, 0x80, 14, 0x80, 15, 0x80, 15, 0x80};
/* Q6_K: from 8 int16 scales in each lane, word 2m in the low lane, word 2m + 1 in the high */
static const uint8_t KQ_CTRL6[4][32] __attribute__((aligned(32))) = {
#define P(a) a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1
    {P(0), P(2)}, {P(4), P(6)}, {P(8), P(10)}, {P(12), P(14)},
#undef P
};

static inline __m256i kq_ctrl(const uint8_t c[32])
{
    return _mm256_load_si256((const __m256i *)c);
}

/* Q4_K / Q5_K scales: the 12 packed bytes -> 16 bytes sc[0..7], m[0..7]. Reads 16 bytes from
 * s (the 4 after the scales are the first quants of the block). */
static inline __m128i kq_scales_k4(const uint8_t *s)
{
    __m128i v = _mm_loadu_si128((const __m128i *)s);
    /* dwords u0 = s[0..3], u1 = s[4..7], u2 = s[8..11]; out = [sc0-3, sc4-7, m0-3, m4-7]:
     * sc0-3 = u0 & 0x3f, sc4-7 = (u2 & 0x0f) | (u0 >> 6 & 3) << 4,
     * m0-3 = u1 & 0x3f,  m4-7 = (u2 >> 4 & 0x0f) | (u1 >> 6 & 3) << 4 (per byte) */
    __m128i a = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)); /* u0 u2 u1 u2 */
    __m128i b = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)); /* u0 u0 u1 u1 */
    a = _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4)),
                      _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    b = _mm_and_si128(_mm_srli_epi32(b, 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
    return _mm_or_si128(a, b);
}

/* Eight 8-lane int32 vectors -> one vector whose lane i is the sum of the lanes of v[i]. */
static inline __m256i kq_reduce8(const __m256i v[8])
{
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}

/* ------------------------------------------------------------------------------------------ */
/* Decode: one super-block of one row -> 8-lane int32 vectors whose lane sums are sum_q (the   */
/* scaled quants, Q6_K offset included) and sum_m (Q4_K / Q5_K mins times bsums)              */

static inline __m256i kq_sb_q4_k(const struct blk_q4_k *b, const struct blk_q8_k *y,
                                 __m256i *sum_m)
{
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i sm = _mm256_broadcastsi128_si256(kq_scales_k4(b->scales));
    __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0; /* two chains: half the latency */
    for (int c = 0; c < 4; c++) {
        __m256i raw = kq_load(b->qs + 32 * c);
        __m256i lo = _mm256_and_si256(raw, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        __m256i p0 = _mm256_maddubs_epi16(lo, kq_load(y->qs + 64 * c));
        __m256i p1 = _mm256_maddubs_epi16(hi, kq_load(y->qs + 64 * c + 32));
        acc0 = kq_dot_i16(acc0, p0, _mm256_shuffle_epi8(sm, kq_ctrl(KQ_CTRL[2 * c])));
        acc1 = kq_dot_i16(acc1, p1, _mm256_shuffle_epi8(sm, kq_ctrl(KQ_CTRL[2 * c + 1])));
    }
    *sum_m = _mm256_madd_epi16(kq_load(y->bsums), _mm256_shuffle_epi8(sm, kq_ctrl(KQ_CTRL_MIN)));
    return _mm256_add_epi32(acc0, acc1);
}

static inline __m256i kq_sb_q5_k(const struct blk_q5_k *b, const struct blk_q8_k *y,
                                 __m256i *sum_m)
{
    const __m256i m4 = _mm256_set1_epi8(15), b4 = _mm256_set1_epi8(16);
    __m256i sm = _mm256_broadcastsi128_si256(kq_scales_k4(b->scales));
    __m256i qh = kq_load(b->qh);
    __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0;
    for (int c = 0; c < 4; c++) {
        __m256i raw = kq_load(b->qs + 32 * c);
        /* bit 2c of qh to bit 4 of the low-nibble value, bit 2c + 1 to that of the high */
        __m256i h0, h1;
        switch (c) {
        case 0:
            h0 = _mm256_slli_epi16(qh, 4);
            h1 = _mm256_slli_epi16(qh, 3);
            break;
        case 1:
            h0 = _mm256_slli_epi16(qh, 2);
            h1 = _mm256_slli_epi16(qh, 1);
            break;
        case 2:
            h0 = qh;
            h1 = _mm256_srli_epi16(qh, 1);
            break;
        default:
            h0 = _mm256_srli_epi16(qh, 2);
            h1 = _mm256_srli_epi16(qh, 3);
            break;
        }
        __m256i lo = _mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_and_si256(h0, b4));
        __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4),
                                     _mm256_and_si256(h1, b4));
        __m256i p0 = _mm256_maddubs_epi16(lo, kq_load(y->qs + 64 * c));
        __m256i p1 = _mm256_maddubs_epi16(hi, kq_load(y->qs + 64 * c + 32));
        acc0 = kq_dot_i16(acc0, p0, _mm256_shuffle_epi8(sm, kq_ctrl(KQ_CTRL[2 * c])));
        acc1 = kq_dot_i16(acc1, p1, _mm256_shuffle_epi8(sm, kq_ctrl(KQ_CTRL[2 * c + 1])));
    }
    *sum_m = _mm256_madd_epi16(kq_load(y->bsums), _mm256_shuffle_epi8(sm, kq_ctrl(KQ_CTRL_MIN)));
    return _mm256_add_epi32(acc0, acc1);
}

/* Q6_K 6-bit values (0..63, the stored q) of elements 128 h + 32 g .. + 31 */
static inline __m256i kq_q6_bits(__m256i l0, __m256i l1, __m256i hb, int g)
{
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    __m256i lo, hi;
    switch (g) {
    case 0:
        lo = _mm256_and_si256(l0, m4);
        hi = _mm256_slli_epi16(hb, 4);
        break;
    case 1:
        lo = _mm256_and_si256(l1, m4);
        hi = _mm256_slli_epi16(hb, 2);
        break;
    case 2:
        lo = _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4);
        hi = hb;
        break;
    default:
        lo = _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4);
        hi = _mm256_srli_epi16(hb, 2);
        break;
    }
    return _mm256_or_si256(lo, _mm256_and_si256(hi, m30));
}

/* Q6_K super-block as the reference engine's x86 dot product sums it: lane l of the result is
 * the sum over the eight 32-element chunks of sc * (q - 32) * y over the chunk's elements
 * 4l..4l+3 (sc of the chunk's first 16 for l < 4, of its second 16 for l >= 4). q8s (if not
 * NULL) holds maddubs(32, y) of the block's 8 chunks, computed once per activation row. */
static inline __m256i kq_sb_q6_k(const struct blk_q6_k *b, const struct blk_q8_k *y,
                                 const __m256i *q8s)
{
    __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    __m256i slo = _mm256_permute4x64_epi64(s16, 0x44), shi = _mm256_permute4x64_epi64(s16, 0xee);
    const __m256i m32 = _mm256_set1_epi8(32);
    __m256i acc[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    for (int h = 0; h < 2; h++) {
        __m256i l0 = kq_load(b->ql + 64 * h), l1 = kq_load(b->ql + 64 * h + 32);
        __m256i hb = kq_load(b->qh + 32 * h);
        __m256i sv = h == 0 ? slo : shi;
        for (int g = 0; g < 4; g++) {
            __m256i a = kq_load(y->qs + 128 * h + 32 * g);
            __m256i off = q8s ? _mm256_load_si256(q8s + 4 * h + g) : _mm256_maddubs_epi16(m32, a);
            __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(kq_q6_bits(l0, l1, hb, g), a), off);
            acc[g & 1] = kq_dot_i16(acc[g & 1], p, _mm256_shuffle_epi8(sv, kq_ctrl(KQ_CTRL6[g])));
        }
    }
    return _mm256_add_epi32(acc[0], acc[1]);
}

/* maddubs(32, y) of the 8 chunks of each of nb Q8_K blocks (the Q6_K offset terms). */
static inline void kq_q6_offsets(int64_t nb, const struct blk_q8_k *y, __m256i *q8s)
{
    const __m256i m32 = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < nb; i++)
        for (int c = 0; c < 8; c++)
            _mm256_store_si256(q8s + 8 * i + c, _mm256_maddubs_epi16(m32, kq_load(y[i].qs + 32 * c)));
}

static inline float kq_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Q6_K row dot product: per super-block acc = fma(dy * d, lanes, acc), then hsum8. */
static inline float KQ_SFX(row_dot_q6_k_off)(int64_t nb, const struct blk_q6_k *x,
                                              const struct blk_q8_k *y, const __m256i *q8s)
{
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        _mm_prefetch((const char *)(x + i) + KQ_PF6, _MM_HINT_T0);
        _mm_prefetch((const char *)(x + i) + KQ_PF6 + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)(x + i) + KQ_PF6 + 128, _MM_HINT_T0);
        _mm_prefetch((const char *)(x + i) + KQ_PF6 + 192, _MM_HINT_T0);
        __m256i sumi = kq_sb_q6_k(&x[i], &y[i], q8s ? q8s + 8 * i : NULL);
        float d = y[i].d * _cvtsh_ss(x[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return kq_hsum8(acc);
}

static float KQ_SFX(row_dot_q6_k)(int64_t nb, const struct blk_q6_k *x, const struct blk_q8_k *y)
{
    return KQ_SFX(row_dot_q6_k_off)(nb, x, y, NULL);
}

static float KQ_SFX(vec_dot_q6_k)(int64_t n, const void *vx, const void *vy)
{
    return KQ_SFX(row_dot_q6_k)(n / QK_K, vx, vy);
}

/* Float steps per super-block (in super-block order):
 *   KQ_MODE_FMA2  (Q4_K) acc_q = fma(sum_q, d * dy, acc_q), acc_m = fma(sum_m, dmin * dy, acc_m);
 *                 result acc_q - acc_m
 *   KQ_MODE_MIN   (Q5_K) s += dy * (d * sum_q - dmin * sum_m)
 *   KQ_MODE_PLAIN (Q6_K in the packed gemm only) s += d * dy * sum_q (the row dot products
 *                 follow the reference's lane-wise order instead, see kq_sb_q6_k) */
enum { KQ_MODE_PLAIN = 0, KQ_MODE_MIN = 1, KQ_MODE_FMA2 = 2 };

/* Row dot products: groups of 8 super-blocks share one reduction; the products of the float
 * steps run on 8 super-blocks at once, the sums then follow in order. */
#define KQ_ROW_DOT(T, XBLK, MODE, SB_CALL)                                                       \
    static inline __attribute__((always_inline)) void KQ_SFX(group_##T)(                        \
        int cnt, const XBLK *x, const struct blk_q8_k *y, float acc[2])                         \
    {                                                                                            \
        __m256i q[8], m[8];                                                                      \
        float d[8], dm[8], dy[8];                                                                \
        for (int k = 0; k < 8; k++) {                                                            \
            if (k < cnt) {                                                                       \
                const XBLK *b = &x[k];                                                           \
                const struct blk_q8_k *a = &y[k];                                                \
                SB_CALL;                                                                         \
                d[k] = _cvtsh_ss(b->d);                                                          \
                dy[k] = a->d;                                                                    \
            } else {                                                                             \
                q[k] = m[k] = _mm256_setzero_si256();                                            \
                d[k] = dm[k] = dy[k] = 0;                                                        \
            }                                                                                    \
        }                                                                                        \
        __m256 fq = _mm256_cvtepi32_ps(kq_reduce8(q));                                           \
        __m256 vdy = _mm256_loadu_ps(dy);                                                        \
        float uf[8], vf[8];                                                                      \
        if (MODE == KQ_MODE_FMA2) {                                                              \
            __m256 fm = _mm256_cvtepi32_ps(kq_reduce8(m));                                       \
            __m256 dq = _mm256_mul_ps(_mm256_loadu_ps(d), vdy);                                  \
            __m256 dmq = _mm256_mul_ps(_mm256_loadu_ps(dm), vdy);                                \
            float fqs[8], fms[8];                                                                \
            _mm256_storeu_ps(fqs, fq);                                                           \
            _mm256_storeu_ps(fms, fm);                                                           \
            _mm256_storeu_ps(uf, dq);                                                            \
            _mm256_storeu_ps(vf, dmq);                                                           \
            __m128 aq = _mm_set_ss(acc[0]), am = _mm_set_ss(acc[1]);                             \
            for (int k = 0; k < cnt; k++) {                                                      \
                aq = _mm_fmadd_ss(_mm_set_ss(fqs[k]), _mm_set_ss(uf[k]), aq);                    \
                am = _mm_fmadd_ss(_mm_set_ss(fms[k]), _mm_set_ss(vf[k]), am);                    \
            }                                                                                    \
            acc[0] = _mm_cvtss_f32(aq);                                                          \
            acc[1] = _mm_cvtss_f32(am);                                                          \
            return;                                                                              \
        }                                                                                        \
        __m256 u;                                                                                \
        if (MODE == KQ_MODE_MIN) {                                                               \
            __m256 fm = _mm256_cvtepi32_ps(kq_reduce8(m));                                       \
            __m256 t = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(d), fq),                      \
                                     _mm256_mul_ps(_mm256_loadu_ps(dm), fm));                    \
            u = _mm256_mul_ps(vdy, t);                                                           \
        } else {                                                                                 \
            u = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(d), vdy), fq);                       \
        }                                                                                        \
        _mm256_storeu_ps(uf, u);                                                                 \
        for (int k = 0; k < cnt; k++)                                                            \
            acc[0] += uf[k];                                                                     \
    }                                                                                            \
    static float KQ_SFX(row_dot_##T)(int64_t nb, const XBLK *x, const struct blk_q8_k *y)       \
    {                                                                                            \
        float acc[2] = {0, 0};                                                                   \
        int64_t i = 0;                                                                           \
        for (; i + 8 <= nb; i += 8)                                                              \
            KQ_SFX(group_##T)(8, x + i, y + i, acc);                                             \
        if (i < nb)                                                                              \
            KQ_SFX(group_##T)((int)(nb - i), x + i, y + i, acc);                                 \
        return MODE == KQ_MODE_FMA2 ? acc[0] - acc[1] : acc[0];                                  \
    }                                                                                            \
    static float KQ_SFX(vec_dot_##T)(int64_t n, const void *vx, const void *vy)                  \
    {                                                                                            \
        return KQ_SFX(row_dot_##T)(n / QK_K, vx, vy);                                            \
    }

KQ_ROW_DOT(q4_k, struct blk_q4_k, KQ_MODE_FMA2, (q[k] = kq_sb_q4_k(b, a, &m[k]), dm[k] = _cvtsh_ss(b->dmin)))
KQ_ROW_DOT(q5_k, struct blk_q5_k, KQ_MODE_MIN, (q[k] = kq_sb_q5_k(b, a, &m[k]), dm[k] = _cvtsh_ss(b->dmin)))

#if KQ_VNNI
/* ------------------------------------------------------------------------------------------ */
/* Decode on 512-bit vectors (AVX-512): KQ_DR rows per pass share the activation loads; one     */
/* vector holds 64 weight bytes (two Q4_K sub-blocks of one nibble half, two Q6_K chunks).     */
/* The integer sums are the ones of the 256-bit code (exact, any order) and the float steps   */
/* per row are the same, in the same order: results are bit-identical.                       */

/* Q4_K: pshufb controls giving, as int16, scale byte a in 128-bit lanes 0, 1 and byte b in
 * lanes 2, 3; vector v covers sub-blocks (0, 2), (1, 3), (4, 6), (5, 7). */
static const uint8_t KQ_CTRL4Z[4][64] __attribute__((aligned(64))) = {
#define W(j) j, 0x80, j, 0x80, j, 0x80, j, 0x80, j, 0x80, j, 0x80, j, 0x80, j, 0x80
    {W(0), W(0), W(2), W(2)}, {W(1), W(1), W(3), W(3)},
    {W(4), W(4), W(6), W(6)}, {W(5), W(5), W(7), W(7)},
#undef W
};
/* Q6_K: from 8 int16 scales per 128-bit lane, word 4p + j in lane j */
static const uint8_t KQ_CTRL6Z[2][64] __attribute__((aligned(64))) = {
#define P(a) a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1
    {P(0), P(2), P(4), P(6)}, {P(8), P(10), P(12), P(14)},
#undef P
};

/* Prefetch of the next pass's rows while this pass runs: the R rows of a pass are contiguous
 * (R * xrb bytes), so super-block i of nb prefetches its share [i, i + 1) * R * xrb / nb of the
 * next R rows, one cache line at a time. */
static inline __attribute__((always_inline)) void kq_pf_next(const char *x, size_t xrb, int R,
                                                             int64_t i, int64_t nb)
{
    const char *p = x + (size_t)R * xrb;
    size_t step = (size_t)R * xrb / (size_t)nb;
    for (size_t o = ((size_t)i * step) & ~(size_t)63; o < (size_t)(i + 1) * step; o += 64)
        _mm_prefetch(p + o, _MM_HINT_T0);
}

static inline __m512i kq_z2(const void *lo, const void *hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(kq_load(lo)), kq_load(hi), 1);
}

static inline __m256i kq_fold(__m512i v)
{
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* Q4_K super-block of one row against activations ya[4] (the four sub-block pairs) and bsums
 * bs: 8-lane int32 sums of the scaled quants (q) and of the mins times bsums (m). */
static inline __attribute__((always_inline)) __m256i kq_sbz_q4_k(const struct blk_q4_k *b,
                                                                  const __m512i ya[4],
                                                                  __m256i bs, __m256i *sum_m)
{
    const __m512i m4 = _mm512_set1_epi8(15);
    __m128i s = kq_scales_k4(b->scales);
    __m512i sz = _mm512_broadcast_i32x4(s);
    __m512i q0 = _mm512_loadu_si512(b->qs), q1 = _mm512_loadu_si512(b->qs + 64);
    __m512i w0 = _mm512_and_si512(q0, m4), w1 = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4);
    __m512i w2 = _mm512_and_si512(q1, m4), w3 = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4);
    __m512i a0 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(w0, ya[0]),
                                     _mm512_shuffle_epi8(sz, _mm512_load_si512(KQ_CTRL4Z[0])));
    __m512i a1 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(w1, ya[1]),
                                     _mm512_shuffle_epi8(sz, _mm512_load_si512(KQ_CTRL4Z[1])));
    a0 = _mm512_dpwssd_epi32(a0, _mm512_maddubs_epi16(w2, ya[2]),
                             _mm512_shuffle_epi8(sz, _mm512_load_si512(KQ_CTRL4Z[2])));
    a1 = _mm512_dpwssd_epi32(a1, _mm512_maddubs_epi16(w3, ya[3]),
                             _mm512_shuffle_epi8(sz, _mm512_load_si512(KQ_CTRL4Z[3])));
    *sum_m = _mm256_madd_epi16(bs, _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(s),
                                                       kq_ctrl(KQ_CTRL_MIN)));
    return kq_fold(_mm512_add_epi32(a0, a1));
}

/* Q4_K, rows x[0], x[xrb], ... x[(R - 1) xrb] against y, super-blocks i0 .. i0 + cnt - 1: the
 * float steps of KQ_MODE_FMA2 into accq / accm (per row, super-blocks in order). */
static inline __attribute__((always_inline)) void
kq_groupz_q4_k(int R, int cnt, const char *x, size_t xrb, int64_t i0, int64_t nb,
               const struct blk_q8_k *y, float *accq, float *accm)
{
    __m256i q[KQ_DR][8], m[KQ_DR][8];
    float d[KQ_DR][8], dm[KQ_DR][8], dy[8];
    for (int k = 0; k < 8; k++) {
        if (k >= cnt) {
            for (int r = 0; r < R; r++) {
                q[r][k] = m[r][k] = _mm256_setzero_si256();
                d[r][k] = dm[r][k] = 0;
            }
            dy[k] = 0;
            continue;
        }
        const struct blk_q8_k *a = &y[i0 + k];
        __m512i ya[4] = {kq_z2(a->qs, a->qs + 64), kq_z2(a->qs + 32, a->qs + 96),
                         kq_z2(a->qs + 128, a->qs + 192), kq_z2(a->qs + 160, a->qs + 224)};
        __m256i bs = kq_load(a->bsums);
        dy[k] = a->d;
        kq_pf_next(x, xrb, R, i0 + k, nb);
        for (int r = 0; r < R; r++) {
            const struct blk_q4_k *b = (const struct blk_q4_k *)(x + (size_t)r * xrb) + i0 + k;
            q[r][k] = kq_sbz_q4_k(b, ya, bs, &m[r][k]);
            d[r][k] = _cvtsh_ss(b->d);
            dm[r][k] = _cvtsh_ss(b->dmin);
        }
    }
    __m256 vdy = _mm256_loadu_ps(dy);
    for (int r = 0; r < R; r++) {
        float fqs[8], fms[8], uf[8], vf[8];
        _mm256_storeu_ps(fqs, _mm256_cvtepi32_ps(kq_reduce8(q[r])));
        _mm256_storeu_ps(fms, _mm256_cvtepi32_ps(kq_reduce8(m[r])));
        _mm256_storeu_ps(uf, _mm256_mul_ps(_mm256_loadu_ps(d[r]), vdy));
        _mm256_storeu_ps(vf, _mm256_mul_ps(_mm256_loadu_ps(dm[r]), vdy));
        __m128 aq = _mm_set_ss(accq[r]), am = _mm_set_ss(accm[r]);
        for (int k = 0; k < cnt; k++) {
            aq = _mm_fmadd_ss(_mm_set_ss(fqs[k]), _mm_set_ss(uf[k]), aq);
            am = _mm_fmadd_ss(_mm_set_ss(fms[k]), _mm_set_ss(vf[k]), am);
        }
        accq[r] = _mm_cvtss_f32(aq);
        accm[r] = _mm_cvtss_f32(am);
    }
}

static inline __attribute__((always_inline)) void
kq_rowsz_q4_k(int R, int64_t nb, const char *x, size_t xrb, const struct blk_q8_k *y, float *out)
{
    float accq[KQ_DR] = {0}, accm[KQ_DR] = {0};
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8)
        kq_groupz_q4_k(R, 8, x, xrb, i, nb, y, accq, accm);
    if (i < nb)
        kq_groupz_q4_k(R, (int)(nb - i), x, xrb, i, nb, y, accq, accm);
    for (int r = 0; r < R; r++)
        out[r] = accq[r] - accm[r];
}

static void KQ_SFX(few_q4_k)(int64_t nb, int64_t nr, int64_t nc, const void *x, size_t xrb,
                             const void *y, size_t yrb, float *out, size_t ors)
{
    int64_t r = 0;
    for (; r + KQ_DR <= nr; r += KQ_DR)
        for (int64_t c = 0; c < nc; c++)
            kq_rowsz_q4_k(KQ_DR, nb, (const char *)x + (size_t)r * xrb, xrb,
                          (const struct blk_q8_k *)((const char *)y + (size_t)c * yrb),
                          out + (size_t)c * ors + (size_t)r);
    for (; r < nr; r++)
        for (int64_t c = 0; c < nc; c++)
            kq_rowsz_q4_k(1, nb, (const char *)x + (size_t)r * xrb, xrb,
                          (const struct blk_q8_k *)((const char *)y + (size_t)c * yrb),
                          out + (size_t)c * ors + (size_t)r);
}

/* Q6_K: R rows against y; q8s (or NULL) as for kq_sb_q6_k. Per row and super-block the eight
 * lanes of kq_sb_q6_k, acc = fma(dy * d, lanes, acc), hsum8 at the end; or with plain set the
 * packed gemm's KQ_MODE_PLAIN steps: s = s + (d * dy) * (the lanes' exact integer total). */
static inline __attribute__((always_inline)) void
kq_rowsz_q6_k(int R, int64_t nb, const char *x, size_t xrb, const struct blk_q8_k *y,
              const __m256i *q8s, float *out, int plain)
{
    float sp[KQ_DR] = {0};
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    const __m512i m32 = _mm512_set1_epi8(32);
    /* qh shifts: bits of chunks 0, 1 (2, 3) of a half to bits 4, 5 */
    const __m512i sh01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i sh23 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i c0 = _mm512_load_si512(KQ_CTRL6Z[0]), c1 = _mm512_load_si512(KQ_CTRL6Z[1]);
    __m256 acc[KQ_DR];
    for (int r = 0; r < R; r++)
        acc[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const struct blk_q8_k *a = &y[i];
        __m512i ya[4], off[4];
        kq_pf_next(x, xrb, R, i, nb);
        for (int v = 0; v < 4; v++) {
            ya[v] = _mm512_loadu_si512(a->qs + 64 * v);
            off[v] = q8s ? _mm512_loadu_si512(q8s + 8 * i + 2 * v)
                         : _mm512_maddubs_epi16(m32, ya[v]);
        }
        for (int r = 0; r < R; r++) {
            const struct blk_q6_k *b = (const struct blk_q6_k *)(x + (size_t)r * xrb) + i;
            __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
            __m512i s0 = _mm512_setzero_si512(), s1 = s0;
            for (int h = 0; h < 2; h++) {
                __m512i sc = _mm512_broadcast_i32x4(h == 0 ? _mm256_castsi256_si128(s16)
                                                           : _mm256_extracti128_si256(s16, 1));
                __m512i l = _mm512_loadu_si512(b->ql + 64 * h);
                __m512i hb = _mm512_broadcast_i64x4(kq_load(b->qh + 32 * h));
                /* (w & 15) | (t & 0x30) */
                __m512i q01 = _mm512_ternarylogic_epi32(_mm512_and_si512(l, m4),
                                                        _mm512_sllv_epi16(hb, sh01), m30, 0xf8);
                __m512i q23 = _mm512_ternarylogic_epi32(
                    _mm512_and_si512(_mm512_srli_epi16(l, 4), m4), _mm512_srlv_epi16(hb, sh23),
                    m30, 0xf8);
                __m512i p01 = _mm512_sub_epi16(_mm512_maddubs_epi16(q01, ya[2 * h]), off[2 * h]);
                __m512i p23 =
                    _mm512_sub_epi16(_mm512_maddubs_epi16(q23, ya[2 * h + 1]), off[2 * h + 1]);
                s0 = _mm512_dpwssd_epi32(s0, p01, _mm512_shuffle_epi8(sc, c0));
                s1 = _mm512_dpwssd_epi32(s1, p23, _mm512_shuffle_epi8(sc, c1));
            }
            __m256i lanes = kq_fold(_mm512_add_epi32(s0, s1));
            if (plain) {
                __m128i t = _mm_add_epi32(_mm256_castsi256_si128(lanes),
                                          _mm256_extracti128_si256(lanes, 1));
                t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
                t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
                sp[r] = sp[r] + (_cvtsh_ss(b->d) * a->d) * (float)_mm_cvtsi128_si32(t);
                continue;
            }
            float d = a->d * _cvtsh_ss(b->d);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc[r]);
        }
    }
    for (int r = 0; r < R; r++)
        out[r] = plain ? sp[r] : kq_hsum8(acc[r]);
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* Prefill: packed panels                                                                     */

/* Rows of a panel: KQ_G groups of 8. */
#define KQ_R (8 * KQ_G)

/* One super-block of KQ_R rows, unpacked for the micro-kernel; row group g (rows 8g..8g+7)
 * is packed by one pack call. */
struct kq_panel {
    uint8_t w[64][4 * KQ_R]; /* k-step s, row r: the 4 quants of elements 4s..4s+3 (unsigned) */
    int32_t sc[16][KQ_R];    /* sub-block scale per row (AVX2: as an int16 pair (sc, sc)) */
    int32_t bias[8][KQ_R];   /* int16 pair: factors of bsums[2t], bsums[2t+1] */
    float d[KQ_R], dmin[KQ_R];
} __attribute__((aligned(64)));

/* Pair of int16 in one int32 lane: lo in the low half. */
static inline int32_t kq_pair(int lo, int hi)
{
    return (int32_t)((uint32_t)(uint16_t)lo | (uint32_t)(uint16_t)hi << 16);
}

static inline int32_t kq_scale_lane(int sc)
{
#if KQ_VNNI
    return sc;
#else
    return kq_pair(sc, sc);
#endif
}

/* 8 rows of 256 unpacked bytes (row-major) -> p->w, rows o..o+7. */
static inline void kq_transpose(const uint8_t rows[8][256], struct kq_panel *p, int o)
{
    for (int t = 0; t < 8; t++) {
        __m256i r[8];
        for (int i = 0; i < 8; i++)
            r[i] = kq_load(rows[i] + 32 * t);
        __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
        __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
        __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
        __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
#define KQ_WST(k) ((__m256i *)(p->w[8 * t + (k)] + 4 * o))
        _mm256_store_si256(KQ_WST(0), _mm256_permute2x128_si256(u0, u4, 0x20));
        _mm256_store_si256(KQ_WST(1), _mm256_permute2x128_si256(u1, u5, 0x20));
        _mm256_store_si256(KQ_WST(2), _mm256_permute2x128_si256(u2, u6, 0x20));
        _mm256_store_si256(KQ_WST(3), _mm256_permute2x128_si256(u3, u7, 0x20));
        _mm256_store_si256(KQ_WST(4), _mm256_permute2x128_si256(u0, u4, 0x31));
        _mm256_store_si256(KQ_WST(5), _mm256_permute2x128_si256(u1, u5, 0x31));
        _mm256_store_si256(KQ_WST(6), _mm256_permute2x128_si256(u2, u6, 0x31));
        _mm256_store_si256(KQ_WST(7), _mm256_permute2x128_si256(u3, u7, 0x31));
#undef KQ_WST
    }
}

/* Unpack super-block i of rows x[0..nv-1] (row stride xrb) into rows o..o+7 of p; rows nv..7
 * of the group are zero. */
static void KQ_SFX(pack_q4_k)(const char *x, size_t xrb, int nv, int64_t i, struct kq_panel *p,
                             int o)
{
    uint8_t rows[8][256] __attribute__((aligned(32)));
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int r = 0; r < 8; r++) {
        if (r >= nv) {
            memset(rows[r], 0, 256);
            for (int j = 0; j < 8; j++)
                p->sc[j][o + r] = p->bias[j][o + r] = 0;
            p->d[o + r] = p->dmin[o + r] = 0;
            continue;
        }
        const struct blk_q4_k *b = (const struct blk_q4_k *)(x + (size_t)r * xrb) + i;
        for (int c = 0; c < 4; c++) {
            __m256i raw = kq_load(b->qs + 32 * c);
            _mm256_store_si256((__m256i *)(rows[r] + 64 * c), _mm256_and_si256(raw, m4));
            _mm256_store_si256((__m256i *)(rows[r] + 64 * c + 32),
                               _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4));
        }
        uint8_t sm[16];
        _mm_storeu_si128((__m128i *)sm, kq_scales_k4(b->scales));
        for (int j = 0; j < 8; j++) {
            p->sc[j][o + r] = kq_scale_lane(sm[j]);
            p->bias[j][o + r] = kq_pair(sm[8 + j], sm[8 + j]);
        }
        p->d[o + r] = _cvtsh_ss(b->d);
        p->dmin[o + r] = _cvtsh_ss(b->dmin);
    }
    kq_transpose((const uint8_t(*)[256])rows, p, o);
}

static void KQ_SFX(pack_q5_k)(const char *x, size_t xrb, int nv, int64_t i, struct kq_panel *p,
                             int o)
{
    uint8_t rows[8][256] __attribute__((aligned(32)));
    const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
    for (int r = 0; r < 8; r++) {
        if (r >= nv) {
            memset(rows[r], 0, 256);
            for (int j = 0; j < 8; j++)
                p->sc[j][o + r] = p->bias[j][o + r] = 0;
            p->d[o + r] = p->dmin[o + r] = 0;
            continue;
        }
        const struct blk_q5_k *b = (const struct blk_q5_k *)(x + (size_t)r * xrb) + i;
        __m256i qh = kq_load(b->qh);
        for (int c = 0; c < 4; c++) {
            __m256i raw = kq_load(b->qs + 32 * c);
            __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one);
            __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one);
            _mm256_store_si256((__m256i *)(rows[r] + 64 * c),
                               _mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_slli_epi16(h0, 4)));
            _mm256_store_si256((__m256i *)(rows[r] + 64 * c + 32),
                               _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4),
                                               _mm256_slli_epi16(h1, 4)));
        }
        uint8_t sm[16];
        _mm_storeu_si128((__m128i *)sm, kq_scales_k4(b->scales));
        for (int j = 0; j < 8; j++) {
            p->sc[j][o + r] = kq_scale_lane(sm[j]);
            p->bias[j][o + r] = kq_pair(sm[8 + j], sm[8 + j]);
        }
        p->d[o + r] = _cvtsh_ss(b->d);
        p->dmin[o + r] = _cvtsh_ss(b->dmin);
    }
    kq_transpose((const uint8_t(*)[256])rows, p, o);
}

static void KQ_SFX(pack_q6_k)(const char *x, size_t xrb, int nv, int64_t i, struct kq_panel *p,
                             int o)
{
    uint8_t rows[8][256] __attribute__((aligned(32)));
    for (int r = 0; r < 8; r++) {
        if (r >= nv) {
            memset(rows[r], 0, 256);
            for (int j = 0; j < 16; j++)
                p->sc[j][o + r] = 0;
            for (int j = 0; j < 8; j++)
                p->bias[j][o + r] = 0;
            p->d[o + r] = 0;
            continue;
        }
        const struct blk_q6_k *b = (const struct blk_q6_k *)(x + (size_t)r * xrb) + i;
        for (int h = 0; h < 2; h++) {
            __m256i l0 = kq_load(b->ql + 64 * h), l1 = kq_load(b->ql + 64 * h + 32);
            __m256i hb = kq_load(b->qh + 32 * h);
            for (int g = 0; g < 4; g++)
                _mm256_store_si256((__m256i *)(rows[r] + 128 * h + 32 * g),
                                   kq_q6_bits(l0, l1, hb, g));
        }
        for (int j = 0; j < 16; j++)
            p->sc[j][o + r] = kq_scale_lane(b->scales[j]);
        for (int t = 0; t < 8; t++)
            p->bias[t][o + r] = kq_pair(-32 * b->scales[2 * t], -32 * b->scales[2 * t + 1]);
        p->d[o + r] = _cvtsh_ss(b->d);
    }
    kq_transpose((const uint8_t(*)[256])rows, p, o);
}

/* Micro-kernel: KQ_G packed groups (8 rows each) times cc columns of one super-block.
 * nsub sub-blocks of ks k-steps; AVX2 flushes its int16 sums every fl k-steps (no overflow:
 * fl * 2 * qmax * 127 <= 32767). mode: the float step (KQ_MODE_*). out (row stride ors)
 * holds the sums of the earlier super-blocks unless first (for KQ_MODE_FMA2: acc_q, with
 * acc_m in accm, 8 KQ_G floats per column, until last); rv < 8 KQ_G rows are valid (masked
 * loads and stores for the last panel). */
static inline __attribute__((always_inline)) void
KQ_SFX(kq_tile)(const struct kq_panel *pn, int nsub, int ks, int fl, int mode, int cc,
                const char *yb, size_t yrb, float *out, size_t ors, float *accm, int first,
                int last, int rv)
{
    __m256i accb[KQ_G][KQ_C], accs[KQ_G][KQ_C];
    const struct blk_q8_k *yc[KQ_C];
    for (int c = 0; c < cc; c++)
        yc[c] = (const struct blk_q8_k *)(yb + (size_t)c * yrb);
    for (int g = 0; g < KQ_G; g++)
        for (int c = 0; c < cc; c++)
            accb[g][c] = _mm256_setzero_si256();
    for (int t = 0; t < nsub; t++) {
        for (int g = 0; g < KQ_G; g++)
            for (int c = 0; c < cc; c++)
                accs[g][c] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int s1 = 0; s1 < ks; s1++) {
            const int s = t * ks + s1;
            __m256i w[KQ_G];
            for (int g = 0; g < KQ_G; g++)
                w[g] = _mm256_load_si256((const __m256i *)(pn->w[s] + 32 * g));
            for (int c = 0; c < cc; c++) {
                __m256i a = _mm256_set1_epi32(kq_load_i32(yc[c]->qs + 4 * s));
                for (int g = 0; g < KQ_G; g++)
#if KQ_VNNI
                    accs[g][c] = _mm256_dpbusd_epi32(accs[g][c], w[g], a);
#else
                    accs[g][c] = _mm256_add_epi16(accs[g][c], _mm256_maddubs_epi16(w[g], a));
#endif
            }
#if !KQ_VNNI
            if ((s1 + 1) % fl == 0)
                for (int g = 0; g < KQ_G; g++) {
                    __m256i sc = _mm256_load_si256((const __m256i *)(pn->sc[t] + 8 * g));
                    for (int c = 0; c < cc; c++) {
                        accb[g][c] = _mm256_add_epi32(accb[g][c], _mm256_madd_epi16(accs[g][c], sc));
                        accs[g][c] = _mm256_setzero_si256();
                    }
                }
#endif
        }
#if KQ_VNNI
        for (int g = 0; g < KQ_G; g++) {
            __m256i sc = _mm256_load_si256((const __m256i *)(pn->sc[t] + 8 * g));
            for (int c = 0; c < cc; c++)
                accb[g][c] = _mm256_add_epi32(accb[g][c], _mm256_mullo_epi32(accs[g][c], sc));
        }
#endif
    }
    /* bsums term (mins, or Q6_K's -32 offset) into accs */
    for (int g = 0; g < KQ_G; g++)
        for (int c = 0; c < cc; c++)
            accs[g][c] = _mm256_setzero_si256();
    for (int t = 0; t < 8; t++) {
        __m256i bias[KQ_G];
        for (int g = 0; g < KQ_G; g++)
            bias[g] = _mm256_load_si256((const __m256i *)(pn->bias[t] + 8 * g));
        for (int c = 0; c < cc; c++) {
            __m256i a = _mm256_set1_epi32(kq_load_i32(yc[c]->bsums + 2 * t));
            for (int g = 0; g < KQ_G; g++)
                accs[g][c] = kq_dot_i16(accs[g][c], bias[g], a);
        }
    }
    for (int g = 0; g < KQ_G; g++) {
        int nvalid = rv - 8 * g;
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(nvalid),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 d = _mm256_load_ps(pn->d + 8 * g);
        __m256 dmin = _mm256_load_ps(pn->dmin + 8 * g);
        for (int c = 0; c < cc; c++) {
            __m256 dy = _mm256_set1_ps(yc[c]->d);
            float *o = out + (size_t)c * ors + 8 * g;
            __m256 prev = first              ? _mm256_setzero_ps()
                          : rv >= 8 * KQ_G ? _mm256_loadu_ps(o)
                                           : _mm256_maskload_ps(o, mask);
            __m256 u;
            if (mode == KQ_MODE_FMA2) {
                float *a = accm + (size_t)c * (8 * KQ_G) + 8 * g;
                __m256 pm = first ? _mm256_setzero_ps() : _mm256_load_ps(a);
                u = _mm256_fmadd_ps(_mm256_cvtepi32_ps(accb[g][c]), _mm256_mul_ps(d, dy), prev);
                pm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(accs[g][c]), _mm256_mul_ps(dmin, dy), pm);
                if (last)
                    u = _mm256_sub_ps(u, pm);
                else
                    _mm256_store_ps(a, pm);
            } else if (mode == KQ_MODE_MIN) {
                __m256 t = _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(accb[g][c])),
                                         _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(accs[g][c])));
                u = _mm256_add_ps(prev, _mm256_mul_ps(dy, t));
            } else {
                __m256i sum = _mm256_add_epi32(accb[g][c], accs[g][c]);
                u = _mm256_add_ps(prev, _mm256_mul_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(sum)));
            }
            if (rv >= 8 * KQ_G)
                _mm256_storeu_ps(o, u);
            else if (nvalid > 0)
                _mm256_maskstore_ps(o, mask, u);
        }
    }
}

#if KQ_VNNI
/* AVX-512 micro-kernel: the 16 rows of a panel in one 512-bit vector (a lane per row) times cc
 * columns of one super-block; per k-step one weight load and per column one dpbusd with the
 * column's 4 activation bytes as an embedded broadcast; per sub-block one multiply by the
 * scales per column; then the bsums term and the float step as in kq_tile (same per-row
 * order, so the same results). */
static inline __attribute__((always_inline)) void
KQ_SFX(kq_tile16)(const struct kq_panel *pn, int nsub, int ks, int mode, int cc, const char *yb,
                  size_t yrb, float *out, size_t ors, float *accm, int first, int last, int rv)
{
    __m512i accb[KQ_CZ], accs[KQ_CZ];
    const struct blk_q8_k *yc[KQ_CZ];
    for (int c = 0; c < cc; c++)
        yc[c] = (const struct blk_q8_k *)(yb + (size_t)c * yrb);
    for (int c = 0; c < cc; c++)
        accb[c] = _mm512_setzero_si512();
    for (int t = 0; t < nsub; t++) {
        for (int c = 0; c < cc; c++)
            accs[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int s1 = 0; s1 < ks; s1++) {
            const int s = t * ks + s1;
            __m512i w = _mm512_load_si512((const void *)pn->w[s]);
            for (int c = 0; c < cc; c++)
                accs[c] = _mm512_dpbusd_epi32(accs[c], w,
                                              _mm512_set1_epi32(kq_load_i32(yc[c]->qs + 4 * s)));
        }
        __m512i sc = _mm512_load_si512((const void *)pn->sc[t]);
        for (int c = 0; c < cc; c++)
            accb[c] = _mm512_add_epi32(accb[c], _mm512_mullo_epi32(accs[c], sc));
    }
    for (int c = 0; c < cc; c++)
        accs[c] = _mm512_setzero_si512();
    for (int t = 0; t < 8; t++) {
        __m512i bias = _mm512_load_si512((const void *)pn->bias[t]);
        for (int c = 0; c < cc; c++)
            accs[c] = _mm512_dpwssd_epi32(accs[c], bias,
                                          _mm512_set1_epi32(kq_load_i32(yc[c]->bsums + 2 * t)));
    }
    /* the running sums stay in acc (acc_q, then acc_m: 32 floats per column, in L1) until the
     * last super-block, which stores the results to out */
    const __mmask16 mask = rv >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rv) - 1);
    const __m512 d = _mm512_load_ps(pn->d), dmin = _mm512_load_ps(pn->dmin);
    for (int c = 0; c < cc; c++) {
        __m512 dy = _mm512_set1_ps(yc[c]->d);
        float *a = accm + (size_t)c * 32;
        __m512 prev = first ? _mm512_setzero_ps() : _mm512_load_ps(a);
        __m512 u;
        if (mode == KQ_MODE_FMA2) {
            __m512 pm = first ? _mm512_setzero_ps() : _mm512_load_ps(a + 16);
            u = _mm512_fmadd_ps(_mm512_cvtepi32_ps(accb[c]), _mm512_mul_ps(d, dy), prev);
            pm = _mm512_fmadd_ps(_mm512_cvtepi32_ps(accs[c]), _mm512_mul_ps(dmin, dy), pm);
            if (last)
                u = _mm512_sub_ps(u, pm);
            else
                _mm512_store_ps(a + 16, pm);
        } else if (mode == KQ_MODE_MIN) {
            __m512 t = _mm512_sub_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(accb[c])),
                                     _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(accs[c])));
            u = _mm512_add_ps(prev, _mm512_mul_ps(dy, t));
        } else {
            __m512i sum = _mm512_add_epi32(accb[c], accs[c]);
            u = _mm512_add_ps(prev, _mm512_mul_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(sum)));
        }
        if (last)
            _mm512_mask_storeu_ps(out + (size_t)c * ors, mask, u);
        else
            _mm512_store_ps(a, u);
    }
}
#define KQ_TC KQ_CZ
#define KQ_ACCW 32 /* scratch floats per column */
#define KQ_TILE_CALL(NSUB, KS, FL, MODE, CC, YB, OUT, ACCM)                                     \
    KQ_SFX(kq_tile16)(pn, NSUB, KS, MODE, CC, YB, yrb, OUT, ors, ACCM, first, last, rv)
#else
#define KQ_TC KQ_C
#define KQ_ACCW KQ_R
#define KQ_TILE_CALL(NSUB, KS, FL, MODE, CC, YB, OUT, ACCM)                                     \
    KQ_SFX(kq_tile)(pn, NSUB, KS, FL, MODE, CC, YB, yrb, OUT, ors, ACCM, first, last, rv)
#endif

/* Columns below which gemm runs the row dot products instead of packing; columns per pass
 * over a panel (bounds the KQ_MODE_FMA2 scratch and keeps the pass's activations in L2);
 * super-blocks of a panel unpacked at once (a per-thread buffer: a panel is unpacked once
 * for all the columns when its rows have at most this many super-blocks). */
#define KQ_PACK_MIN_COLS 3
#ifndef KQ_CCHUNK
#define KQ_CCHUNK 64
#endif
#define KQ_PB_MAX 32

static _Thread_local struct kq_panel KQ_SFX(kq_pbuf)[KQ_PB_MAX];

/* Prefetch the bytes [off, off + len) of rows 0..nrow-1 (at most KQ_R) from xr. */
#define kq_prefetch_rows(xr, xrb, nrow, off, len, hint)                                         \
    do {                                                                                         \
        int64_t rn_ = (nrow) < KQ_R ? (nrow) : KQ_R;                                             \
        for (int64_t r_ = 0; r_ < rn_; r_++) {                                                   \
            const char *p_ = (xr) + (size_t)r_ * (xrb) + (size_t)(off);                          \
            for (size_t b_ = 0; b_ < (len); b_ += 64)                                            \
                _mm_prefetch(p_ + b_, hint);                                                     \
            _mm_prefetch(p_ + (len) - 1, hint);                                                  \
        }                                                                                        \
    } while (0)
/* Super-blocks ahead that the unpacking prefetches; super-blocks of the next panel that the
 * current one prefetches (while it multiplies, before that panel's unpacking). */
#define KQ_PF_SB 4

#define KQ_GEMM(T, XBLK, NSUB, KS, FL, MODE)                                                     \
    static void KQ_SFX(tile_##T)(const struct kq_panel *pn, int cc, const char *yb, size_t yrb,  \
                                 float *out, size_t ors, float *accm, int first, int last,       \
                                 int rv)                                                         \
    {                                                                                            \
        switch (cc) {                                                                            \
        case KQ_TC:                                                                              \
            KQ_TILE_CALL(NSUB, KS, FL, MODE, KQ_TC, yb, out, accm);                              \
            break;                                                                               \
        case 1:                                                                                  \
            KQ_TILE_CALL(NSUB, KS, FL, MODE, 1, yb, out, accm);                                  \
            break;                                                                               \
        case 2:                                                                                  \
            KQ_TILE_CALL(NSUB, KS, FL, MODE, 2, yb, out, accm);                                  \
            break;                                                                               \
        default: {                                                                               \
            int c = 0;                                                                           \
            for (; c + 4 <= cc; c += 4)                                                          \
                KQ_TILE_CALL(NSUB, KS, FL, MODE, 4, yb + (size_t)c * yrb, out + (size_t)c * ors, \
                             accm + (size_t)c * KQ_ACCW);                                           \
            for (; c < cc; c++)                                                                  \
                KQ_TILE_CALL(NSUB, KS, FL, MODE, 1, yb + (size_t)c * yrb, out + (size_t)c * ors, \
                             accm + (size_t)c * KQ_ACCW);                                           \
            break;                                                                               \
        }                                                                                        \
        }                                                                                        \
    }                                                                                            \
    static void KQ_SFX(pack_all_##T)(const char *xr, size_t xrb, int rv, int64_t i0, int64_t i1,  \
                                     struct kq_panel *pb)                                        \
    {                                                                                            \
        for (int64_t i = i0; i < i1; i++) {                                                      \
            if (i + KQ_PF_SB < i1)                                                               \
                kq_prefetch_rows(xr, xrb, rv, (i + KQ_PF_SB) * (int64_t)sizeof(XBLK),            \
                                 sizeof(XBLK), _MM_HINT_T0);                                     \
            for (int g = 0; g < KQ_G; g++) {                                                     \
                int nv = rv - 8 * g;                                                             \
                nv = nv < 0 ? 0 : nv > 8 ? 8 : nv;                                               \
                KQ_SFX(pack_##T)(nv > 0 ? xr + (size_t)(8 * g) * xrb : xr, xrb, nv, i,           \
                                 &pb[i - i0], 8 * g);                                            \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    /* the packed path, for any nc (the uniform summation order) */                            \
    static void KQ_SFX(gemmp_##T)(int64_t n, int64_t nr, int64_t nc, const void *x, size_t xrb,  \
                                  const void *y, size_t yrb, float *out, size_t ors)             \
    {                                                                                            \
        int64_t nb = n / QK_K;                                                                   \
        struct kq_panel *pb = KQ_SFX(kq_pbuf);                                                   \
        float accm[KQ_CCHUNK * KQ_ACCW] __attribute__((aligned(64)));                               \
        for (int64_t r0 = 0; r0 < nr; r0 += KQ_R) {                                              \
            int rv = nr - r0 < KQ_R ? (int)(nr - r0) : KQ_R;                                     \
            const char *xr = (const char *)x + (size_t)r0 * xrb;                                 \
            if (nb <= KQ_PB_MAX)                                                                 \
                KQ_SFX(pack_all_##T)(xr, xrb, rv, 0, nb, pb);                                    \
            for (int64_t k0 = 0; k0 < nc; k0 += KQ_CCHUNK) {                                     \
                int64_t k1 = nc - k0 < KQ_CCHUNK ? nc : k0 + KQ_CCHUNK;                          \
                for (int64_t i0 = 0; i0 < nb; i0 += KQ_PB_MAX) {                                 \
                    int64_t i1 = nb - i0 < KQ_PB_MAX ? nb : i0 + KQ_PB_MAX;                      \
                    if (nb > KQ_PB_MAX)                                                          \
                        KQ_SFX(pack_all_##T)(xr, xrb, rv, i0, i1, pb);                           \
                    for (int64_t i = i0; i < i1; i++) {                                          \
                        if (k0 == 0 && i < KQ_PF_SB && nr - r0 > KQ_R)                           \
                            kq_prefetch_rows(xr + (size_t)KQ_R * xrb, xrb, nr - r0 - KQ_R,       \
                                             i * (int64_t)sizeof(XBLK), sizeof(XBLK),            \
                                             _MM_HINT_T0);                                       \
                        const char *yb = (const char *)y + (size_t)i * sizeof(struct blk_q8_k);  \
                        for (int64_t c0 = k0; c0 < k1; c0 += KQ_TC) {                            \
                            int cc = k1 - c0 < KQ_TC ? (int)(k1 - c0) : KQ_TC;                   \
                            KQ_SFX(tile_##T)(&pb[i - i0], cc, yb + (size_t)c0 * yrb, yrb,        \
                                             out + (size_t)c0 * ors + (size_t)r0, ors,           \
                                             accm + (size_t)(c0 - k0) * KQ_ACCW, i == 0,            \
                                             i == nb - 1, rv);                                   \
                        }                                                                        \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    static void KQ_SFX(gemm_##T)(int64_t n, int64_t nr, int64_t nc, const void *x, size_t xrb,   \
                                 const void *y, size_t yrb, float *out, size_t ors)              \
    {                                                                                            \
        if (nc < KQ_PACK_MIN_COLS)                                                               \
            KQ_SFX(few_##T)(n / QK_K, nr, nc, x, xrb, y, yrb, out, ors);                         \
        else                                                                                     \
            KQ_SFX(gemmp_##T)(n, nr, nc, x, xrb, y, yrb, out, ors);                              \
    }

/* gemm with few columns: the row dot products, rows outer (each weight row is read from
 * memory once and reused from L1 for the other columns). */
#define KQ_FEW(T, XBLK)                                                                          \
    static void KQ_SFX(few_##T)(int64_t nb, int64_t nr, int64_t nc, const void *x, size_t xrb,   \
                                const void *y, size_t yrb, float *out, size_t ors)               \
    {                                                                                            \
        for (int64_t r = 0; r < nr; r++)                                                         \
            for (int64_t c = 0; c < nc; c++)                                                     \
                out[(size_t)c * ors + (size_t)r] = KQ_SFX(row_dot_##T)(                          \
                    nb, (const XBLK *)((const char *)x + (size_t)r * xrb),                       \
                    (const struct blk_q8_k *)((const char *)y + (size_t)c * yrb));               \
    }
#if !KQ_VNNI
KQ_FEW(q4_k, struct blk_q4_k)
#endif
KQ_FEW(q5_k, struct blk_q5_k)

/* Q6_K: the offset terms of each activation row are computed once for all rows (when the row
 * is short enough for the stack buffer). */
#define KQ_Q6_OFF_BLOCKS 64
static inline __attribute__((always_inline)) void
KQ_SFX(few_q6_k_impl)(int64_t nb, int64_t nr, int64_t nc, const void *x, size_t xrb,
                      const void *y, size_t yrb, float *out, size_t ors, int plain)
{
    for (int64_t c = 0; c < nc; c++) {
        const struct blk_q8_k *yc = (const struct blk_q8_k *)((const char *)y + (size_t)c * yrb);
        __m256i q8s[8 * KQ_Q6_OFF_BLOCKS];
        const __m256i *off = NULL;
        if (nb <= KQ_Q6_OFF_BLOCKS) {
            kq_q6_offsets(nb, yc, q8s);
            off = q8s;
        }
#if KQ_VNNI
        int64_t r = 0;
        for (; r + KQ_DR <= nr; r += KQ_DR)
            kq_rowsz_q6_k(KQ_DR, nb, (const char *)x + (size_t)r * xrb, xrb, yc, off,
                          out + (size_t)c * ors + (size_t)r, plain);
        for (; r < nr; r++)
            kq_rowsz_q6_k(1, nb, (const char *)x + (size_t)r * xrb, xrb, yc, off,
                          out + (size_t)c * ors + (size_t)r, plain);
#else
        (void)plain;
        for (int64_t r = 0; r < nr; r++)
            out[(size_t)c * ors + (size_t)r] = KQ_SFX(row_dot_q6_k_off)(
                nb, (const struct blk_q6_k *)((const char *)x + (size_t)r * xrb), yc, off);
#endif
    }
}
static void KQ_SFX(few_q6_k)(int64_t nb, int64_t nr, int64_t nc, const void *x, size_t xrb,
                             const void *y, size_t yrb, float *out, size_t ors)
{
    KQ_SFX(few_q6_k_impl)(nb, nr, nc, x, xrb, y, yrb, out, ors, 0);
}

#if KQ_VNNI
KQ_GEMM(q4_k, struct blk_q4_k, 8, 8, 8, KQ_MODE_FMA2)
KQ_GEMM(q5_k, struct blk_q5_k, 8, 8, 8, KQ_MODE_MIN)
KQ_GEMM(q6_k, struct blk_q6_k, 16, 4, 4, KQ_MODE_PLAIN)
#else
KQ_GEMM(q4_k, struct blk_q4_k, 8, 8, 8, KQ_MODE_FMA2) /* 8 * 2 * 15 * 127 = 30480 */
KQ_GEMM(q5_k, struct blk_q5_k, 8, 8, 4, KQ_MODE_MIN)  /* 4 * 2 * 31 * 127 = 31496 */
KQ_GEMM(q6_k, struct blk_q6_k, 16, 4, 2, KQ_MODE_PLAIN) /* 2 * 2 * 63 * 127 = 32004 */
#endif

/* Q6_K for batch-invariant products: the packed path's sums for any nc, few columns (decode)
 * without the packing: row dot products with the packed path's float steps (AVX-512). */
static void KQ_SFX(gemmu_q6_k)(int64_t n, int64_t nr, int64_t nc, const void *x, size_t xrb,
                               const void *y, size_t yrb, float *out, size_t ors)
{
#if KQ_VNNI
    if (nc < KQ_PACK_MIN_COLS) {
        KQ_SFX(few_q6_k_impl)(n / QK_K, nr, nc, x, xrb, y, yrb, out, ors, 1);
        return;
    }
#endif
    KQ_SFX(gemmp_q6_k)(n, nr, nc, x, xrb, y, yrb, out, ors);
}

/* Installs the K-quant kernels of this ISA into table. */
static void KQ_SFX(kq_fill)(struct kura_type_traits *t)
{
    t[KURA_TYPE_Q4_K].vec_dot = KQ_SFX(vec_dot_q4_k);
    t[KURA_TYPE_Q4_K].gemm = KQ_SFX(gemm_q4_k);
    t[KURA_TYPE_Q5_K].vec_dot = KQ_SFX(vec_dot_q5_k);
    t[KURA_TYPE_Q5_K].gemm = KQ_SFX(gemm_q5_k);
    t[KURA_TYPE_Q6_K].vec_dot = KQ_SFX(vec_dot_q6_k);
    t[KURA_TYPE_Q6_K].gemm = KQ_SFX(gemm_q6_k);
    /* Q6_K's packed gemm sums per super-block, its row dots per lane (the reference's decode
     * order): batch-invariant evaluation pads fewer columns up to the packed path */
    t[KURA_TYPE_Q6_K].uniform_cols = KQ_PACK_MIN_COLS;
    t[KURA_TYPE_Q6_K].gemm_uniform = KQ_SFX(gemmu_q6_k);
}
