/* AVX2 + FMA + F16C versions of the forward-pass helpers (fwd_simd.h); bit-identical with the
 * scalar ones. Also used on the AVX-512 path (the work here is small next to the matrix
 * products, and 256-bit F16C conversions are what both paths have), except attention, which
 * has an AVX-512 version of its own. */
#include <immintrin.h>
#include <math.h>

#include "model/fwd_simd.h"

static void f16_scale_avx2(uint16_t *acc, int n, float s)
{
    __m256 vs = _mm256_set1_ps(s);
    int d = 0;
    for (; d + 8 <= n; d += 8) {
        __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(acc + d)));
        _mm_storeu_si128((__m128i *)(acc + d),
                         _mm256_cvtps_ph(_mm256_mul_ps(a, vs), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; d < n; d++)
        acc[d] = _cvtss_sh(_cvtsh_ss(acc[d]) * s, _MM_FROUND_TO_NEAREST_INT);
}

static void f16_axpy_avx2(uint16_t *acc, const uint16_t *v, int n, float s)
{
    __m256 vs = _mm256_set1_ps(s);
    int d = 0;
    for (; d + 8 <= n; d += 8) {
        __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(acc + d)));
        __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + d)));
        _mm_storeu_si128((__m128i *)(acc + d),
                         _mm256_cvtps_ph(_mm256_fmadd_ps(x, vs, a), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; d < n; d++) {
        __m128 r = _mm_fmadd_ss(_mm_set_ss(_cvtsh_ss(v[d])), _mm_set_ss(s),
                                _mm_set_ss(_cvtsh_ss(acc[d])));
        acc[d] = _cvtss_sh(_mm_cvtss_f32(r), _MM_FROUND_TO_NEAREST_INT);
    }
}

/* 2^n for integral n in [-192, 192] as a product of two exact powers of two (each within the
 * normal exponent range), so p * 2^n rounds exactly like ldexpf (a subnormal result may round
 * twice, but it is only ever added to 1, where that cannot show). */
static inline __m256 scale_pow2(__m256 p, __m256 n)
{
    __m256 h = _mm256_round_ps(_mm256_mul_ps(n, _mm256_set1_ps(0.5f)),
                               _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_sub_ps(n, h);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 a = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(h), bias), 23));
    __m256 b = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(r), bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, a), b);
}

static inline __m256 exp_poly8(__m256 x)
{
    const __m256 shift = _mm256_set1_ps(0x1.8p23f);
    __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift), shift);
    __m256 nn = _mm256_sub_ps(_mm256_setzero_ps(), n);
    __m256 b = _mm256_fmadd_ps(nn, _mm256_set1_ps(0x1.7f7d1cp-20f),
                               _mm256_fmadd_ps(nn, _mm256_set1_ps(0x1.62e4p-1f), x));
    __m256 u = _mm256_mul_ps(b, b);
    __m256 p = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
            _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n),
                               _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    __m256 nc = _mm256_min_ps(_mm256_max_ps(n, _mm256_set1_ps(-192.0f)), _mm256_set1_ps(192.0f));
    __m256 r = scale_pow2(p, nc);
    __m256 sat = _mm256_blendv_ps(_mm256_setzero_ps(), _mm256_set1_ps(__builtin_inff()),
                                  _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_GT_OQ));
    return _mm256_blendv_ps(r, sat, big);
}

static void swiglu16_avx2(float *h, const float *g, const float *u, int n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int i = 0; i < n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        __m256 e = exp_poly8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* AVX2 attention of a group of query heads sharing one KV head (fwd_simd.h: attend), as the
 * AVX-512 version (fwd_simd_avx512.c) on 256-bit vectors, bit-identical with the scalar loop:
 * per key the F16 dot product's lanes ((a0 + a2) + (a1 + a3) of the four 16-lane chains, held
 * as eight 8-lane halves), summed 8 + 8, 4 + 4, 2 + 2, 1 + 1 for eight keys at once; exp()
 * over a block of scores; the f16-precision value accumulator. */
#define AT2_G 8
#define AT2_HD 256
#define AT2_BLK 64

static inline __m256 r16x8(__m256 x)
{
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* the 8 lanes (16-lane sum folded 8 + 8) of q . k for one key */
static inline __m256 lanes8(const __m256 *kc, const float *qf, int hd)
{
    __m256 a[8];
    for (int j = 0; j < 8; j++)
        a[j] = _mm256_fmadd_ps(kc[j], _mm256_loadu_ps(qf + 8 * j), _mm256_setzero_ps());
    for (int c = 8; c < hd / 8; c += 8)
        for (int j = 0; j < 8; j++)
            a[j] = _mm256_fmadd_ps(kc[c + j], _mm256_loadu_ps(qf + 8 * (c + j)), a[j]);
    __m256 lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
    __m256 hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
    return _mm256_add_ps(lo, hi);
}

static inline float lsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* lsum8 of u[0..7], key k in lane k */
static inline __m256 lsum8x8(const __m256 *u)
{
    __m256 s[4], t[2];
    for (int m = 0; m < 4; m++) /* [key 2m: 4 + 4 | key 2m + 1: 4 + 4] */
        s[m] = _mm256_add_ps(_mm256_permute2f128_ps(u[2 * m], u[2 * m + 1], 0x20),
                             _mm256_permute2f128_ps(u[2 * m], u[2 * m + 1], 0x31));
    for (int n = 0; n < 2; n++) /* low half: keys 4n, 4n + 2; high half: 4n + 1, 4n + 3 */
        t[n] = _mm256_add_ps(_mm256_shuffle_ps(s[2 * n], s[2 * n + 1], 0x44),
                             _mm256_shuffle_ps(s[2 * n], s[2 * n + 1], 0xee));
    /* low half: keys 0, 2, 4, 6; high half: 1, 3, 5, 7 */
    __m256 f = _mm256_add_ps(_mm256_shuffle_ps(t[0], t[1], 0x88),
                             _mm256_shuffle_ps(t[0], t[1], 0xdd));
    return _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline void load_row8(__m256 *dst, const uint16_t *src, int hd)
{
    for (int c = 0; c < hd / 8; c++)
        dst[c] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 8 * c)));
}

static inline __attribute__((always_inline)) void attend_group2(const uint16_t *q16, int ng,
                                                                int hd, const uint16_t *k,
                                                                const uint16_t *v, size_t kvs,
                                                                int32_t n_pos, float scale,
                                                                float *out)
{
    float qf[AT2_G][AT2_HD] __attribute__((aligned(32)));
    float acc[AT2_G][AT2_HD] __attribute__((aligned(32)));
    float sc[AT2_G][AT2_BLK] __attribute__((aligned(32)));
    unsigned char nm[AT2_G][AT2_BLK];
    float mx[AT2_G], sum[AT2_G];
    const int nc = hd / 8;
    for (int g = 0; g < ng; g++) {
        load_row8((__m256 *)qf[g], q16 + (size_t)g * hd, hd);
        for (int c = 0; c < nc; c++)
            _mm256_store_ps(acc[g] + 8 * c, _mm256_setzero_ps());
        mx[g] = -INFINITY;
        sum[g] = 0.0f;
    }
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int32_t p0 = 0; p0 < n_pos; p0 += AT2_BLK) {
        int nb = n_pos - p0 < AT2_BLK ? (int)(n_pos - p0) : AT2_BLK;
        int b = 0;
        for (; b + 8 <= nb; b += 8) {
            __m256 u[AT2_G][8];
            for (int j = 0; j < 8; j++) {
                __m256 kc[AT2_HD / 8];
                load_row8(kc, k + (size_t)(p0 + b + j) * kvs, hd);
                for (int g = 0; g < ng; g++)
                    u[g][j] = lanes8(kc, qf[g], hd);
            }
            for (int g = 0; g < ng; g++)
                _mm256_storeu_ps(sc[g] + b, _mm256_mul_ps(lsum8x8(u[g]), vscale));
        }
        for (; b < nb; b++) {
            __m256 kc[AT2_HD / 8];
            load_row8(kc, k + (size_t)(p0 + b) * kvs, hd);
            for (int g = 0; g < ng; g++)
                sc[g][b] = lsum8(lanes8(kc, qf[g], hd)) * scale;
        }
        for (int g = 0; g < ng; g++)
            kura_att_softmax_block(sc[g], nm[g], nb, &mx[g]);
        for (int i = 0; i < nb; i++) {
            __m256 vc[AT2_HD / 8];
            load_row8(vc, v + (size_t)(p0 + i) * kvs, hd);
            for (int g = 0; g < ng; g++) {
                float e = sc[g][i], ms = 1.0f, vs = e;
                if (nm[g][i]) {
                    ms = e;
                    vs = 1.0f;
                    __m256 s = _mm256_set1_ps(ms);
                    for (int c = 0; c < nc; c++)
                        _mm256_store_ps(acc[g] + 8 * c,
                                        r16x8(_mm256_mul_ps(_mm256_load_ps(acc[g] + 8 * c), s)));
                }
                __m256 s = _mm256_set1_ps(vs);
                for (int c = 0; c < nc; c++)
                    _mm256_store_ps(acc[g] + 8 * c,
                                    r16x8(_mm256_fmadd_ps(vc[c], s, _mm256_load_ps(acc[g] + 8 * c))));
                sum[g] = fmaf(sum[g], ms, vs);
            }
        }
    }
    for (int g = 0; g < ng; g++) {
        __m256 inv = _mm256_set1_ps(1.0f / sum[g]);
        for (int c = 0; c < nc; c++)
            _mm256_storeu_ps(out + (size_t)g * hd + 8 * c,
                             _mm256_mul_ps(_mm256_load_ps(acc[g] + 8 * c), inv));
    }
}

bool kura_attend_avx2(const uint16_t *q16, int ng, int hd, const uint16_t *k, const uint16_t *v,
                      size_t kvs, int32_t n_pos, float scale, float *out)
{
    if (hd % 64 != 0 || hd > AT2_HD || n_pos < 1)
        return false;
    for (int g0 = 0; g0 < ng; g0 += AT2_G) {
        int gn = ng - g0 < AT2_G ? ng - g0 : AT2_G;
        const uint16_t *q = q16 + (size_t)g0 * hd;
        float *o = out + (size_t)g0 * hd;
        if (hd == 64)
            attend_group2(q, gn, 64, k, v, kvs, n_pos, scale, o);
        else if (hd == 128)
            attend_group2(q, gn, 128, k, v, kvs, n_pos, scale, o);
        else
            attend_group2(q, gn, hd, k, v, kvs, n_pos, scale, o);
    }
    return true;
}

const struct kura_fwd_simd kura_fwd_simd_avx2 = {
    .f16_scale = f16_scale_avx2,
    .f16_axpy = f16_axpy_avx2,
    .swiglu16 = swiglu16_avx2,
    .attend = kura_attend_avx2,
};

const struct kura_fwd_simd kura_fwd_simd_avx512 = {
    .f16_scale = f16_scale_avx2,
    .f16_axpy = f16_axpy_avx2,
    .swiglu16 = swiglu16_avx2,
    .attend = kura_attend_avx512,
};
