/* AVX-512 attention of a group of query heads that share one KV head (fwd_simd.h: attend),
 * bit-identical with the scalar loop in forward.c (kura_attend_ref):
 *  - a score is the f16 row dot product q . k in the F16 kernels' order (per 64 elements four
 *    16-lane fused multiply-add chains, (a0 + a2) + (a1 + a3), then the 16 lanes summed
 *    8 + 8, 4 + 4, 2 + 2, 1 + 1), times the scale. Sixteen keys are summed at once: a
 *    transposed reduction performs exactly the adds of sixteen separate lane sums;
 *  - the online softmax's running maximum and its exp() calls (the C library's expf, as the
 *    reference engine) run over a block of scores before the values are touched;
 *  - the weighted sum of values accumulates in f16 precision (each step rounded to f16 and
 *    back), rescaled when a new maximum appears.
 * The heads of the group share every key and value load and conversion. */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>

#include "model/fwd_simd.h"

#define AT_G 8    /* heads handled together (a larger group runs in several passes) */
#define AT_HD 256 /* largest head dimension of the fast path */
#define AT_BLK 64 /* keys per block of scores */

static inline __m512 r16(__m512 x) /* round to f16 and back */
{
    return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* The 16-lane partial sums of q . k for one key: per 64 elements a_j = fma(k, q, a_j) for
 * j < 4 (16 elements each), then (a0 + a2) + (a1 + a3). */
static inline __m512 lanes(const __m512 *kc, const float *qf, int hd)
{
    __m512 a0 = _mm512_fmadd_ps(kc[0], _mm512_loadu_ps(qf), _mm512_setzero_ps());
    __m512 a1 = _mm512_fmadd_ps(kc[1], _mm512_loadu_ps(qf + 16), _mm512_setzero_ps());
    __m512 a2 = _mm512_fmadd_ps(kc[2], _mm512_loadu_ps(qf + 32), _mm512_setzero_ps());
    __m512 a3 = _mm512_fmadd_ps(kc[3], _mm512_loadu_ps(qf + 48), _mm512_setzero_ps());
    for (int c = 4; c < hd / 16; c += 4) {
        a0 = _mm512_fmadd_ps(kc[c], _mm512_loadu_ps(qf + 16 * c), a0);
        a1 = _mm512_fmadd_ps(kc[c + 1], _mm512_loadu_ps(qf + 16 * c + 16), a1);
        a2 = _mm512_fmadd_ps(kc[c + 2], _mm512_loadu_ps(qf + 16 * c + 32), a2);
        a3 = _mm512_fmadd_ps(kc[c + 3], _mm512_loadu_ps(qf + 16 * c + 48), a3);
    }
    return _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3));
}

/* The lane sum of one vector: 8 + 8, 4 + 4, 2 + 2, 1 + 1 */
static inline float lsum1(__m512 v)
{
    __m256 t = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The lane sums of t[0..15] (the same adds as lsum1 on each), key k in lane k. */
static inline __m512 lsum16(const __m512 *t)
{
    __m512 s1[8], s2[4], s3[2];
    for (int m = 0; m < 8; m++) /* [k lanes 0-7 + 8-15 | k+1 lanes 0-7 + 8-15] */
        s1[m] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * m], t[2 * m + 1], 0x44),
                              _mm512_shuffle_f32x4(t[2 * m], t[2 * m + 1], 0xee));
    for (int n = 0; n < 4; n++) /* 128-bit chunk c: key 4n + c, lanes 0-3 + 4-7 */
        s2[n] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[2 * n], s1[2 * n + 1], 0x88),
                              _mm512_shuffle_f32x4(s1[2 * n], s1[2 * n + 1], 0xdd));
    for (int q = 0; q < 2; q++) /* chunk c: keys 8q + c (2 lanes), 8q + 4 + c (2 lanes) */
        s3[q] = _mm512_add_ps(_mm512_shuffle_ps(s2[2 * q], s2[2 * q + 1], 0x44),
                              _mm512_shuffle_ps(s2[2 * q], s2[2 * q + 1], 0xee));
    /* chunk c lane j: key 4j + c */
    __m512 f = _mm512_add_ps(_mm512_shuffle_ps(s3[0], s3[1], 0x88),
                             _mm512_shuffle_ps(s3[0], s3[1], 0xdd));
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(idx, f);
}

static inline void load_row(__m512 *dst, const uint16_t *src, int hd)
{
    for (int c = 0; c < hd / 16; c++)
        dst[c] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + 16 * c)));
}

/* ng <= AT_G heads, hd % 64 == 0, hd <= AT_HD (inlined per head dimension, so that the loops
 * over a row's vectors unroll) */
static inline __attribute__((always_inline)) void attend_group(const uint16_t *q16, int ng, int hd, const uint16_t *k,
                         const uint16_t *v, size_t kvs, int32_t n_pos, float scale, float *out)
{
    float qf[AT_G][AT_HD] __attribute__((aligned(64)));
    float acc[AT_G][AT_HD] __attribute__((aligned(64)));
    float sc[AT_G][AT_BLK] __attribute__((aligned(64)));
    unsigned char nm[AT_G][AT_BLK]; /* key p raised the running maximum */
    __m512 t[AT_G][16];
    float mx[AT_G], sum[AT_G];
    const int nc = hd / 16;
    for (int g = 0; g < ng; g++) {
        load_row((__m512 *)qf[g], q16 + (size_t)g * hd, hd);
        for (int c = 0; c < nc; c++)
            _mm512_store_ps(acc[g] + 16 * c, _mm512_setzero_ps());
        mx[g] = -INFINITY;
        sum[g] = 0.0f;
    }
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int32_t p0 = 0; p0 < n_pos; p0 += AT_BLK) {
        int nb = n_pos - p0 < AT_BLK ? (int)(n_pos - p0) : AT_BLK;
        /* scores */
        int b = 0;
        for (; b + 16 <= nb; b += 16) {
            for (int j = 0; j < 16; j++) {
                __m512 kc[AT_HD / 16];
                load_row(kc, k + (size_t)(p0 + b + j) * kvs, hd);
                for (int g = 0; g < ng; g++)
                    t[g][j] = lanes(kc, qf[g], hd);
            }
            for (int g = 0; g < ng; g++)
                _mm512_storeu_ps(sc[g] + b, _mm512_mul_ps(lsum16(t[g]), vscale));
        }
        for (; b < nb; b++) {
            __m512 kc[AT_HD / 16];
            load_row(kc, k + (size_t)(p0 + b) * kvs, hd);
            for (int g = 0; g < ng; g++)
                sc[g][b] = lsum1(lanes(kc, qf[g], hd)) * scale;
        }
        /* running maximum and exp() of each step */
        for (int g = 0; g < ng; g++)
            kura_att_softmax_block(sc[g], nm[g], nb, &mx[g]);
        /* values */
        for (int i = 0; i < nb; i++) {
            __m512 vc[AT_HD / 16];
            load_row(vc, v + (size_t)(p0 + i) * kvs, hd);
            for (int g = 0; g < ng; g++) {
                float e = sc[g][i], ms = 1.0f, vs = e;
                if (nm[g][i]) {
                    ms = e;
                    vs = 1.0f;
                    __m512 s = _mm512_set1_ps(ms);
                    for (int c = 0; c < nc; c++)
                        _mm512_store_ps(acc[g] + 16 * c,
                                        r16(_mm512_mul_ps(_mm512_load_ps(acc[g] + 16 * c), s)));
                }
                __m512 s = _mm512_set1_ps(vs);
                for (int c = 0; c < nc; c++)
                    _mm512_store_ps(acc[g] + 16 * c,
                                    r16(_mm512_fmadd_ps(vc[c], s, _mm512_load_ps(acc[g] + 16 * c))));
                sum[g] = fmaf(sum[g], ms, vs);
            }
        }
    }
    for (int g = 0; g < ng; g++) {
        __m512 inv = _mm512_set1_ps(1.0f / sum[g]);
        for (int c = 0; c < nc; c++)
            _mm512_storeu_ps(out + (size_t)g * hd + 16 * c,
                             _mm512_mul_ps(_mm512_load_ps(acc[g] + 16 * c), inv));
    }
}

bool kura_attend_avx512(const uint16_t *q16, int ng, int hd, const uint16_t *k,
                          const uint16_t *v, size_t kvs, int32_t n_pos, float scale, float *out)
{
    if (hd % 64 != 0 || hd > AT_HD || n_pos < 1)
        return false;
    for (int g0 = 0; g0 < ng; g0 += AT_G) {
        int gn = ng - g0 < AT_G ? ng - g0 : AT_G;
        const uint16_t *q = q16 + (size_t)g0 * hd;
        float *o = out + (size_t)g0 * hd;
        if (hd == 64)
            attend_group(q, gn, 64, k, v, kvs, n_pos, scale, o);
        else if (hd == 128)
            attend_group(q, gn, 128, k, v, kvs, n_pos, scale, o);
        else
            attend_group(q, gn, hd, k, v, kvs, n_pos, scale, o);
    }
    return true;
}
