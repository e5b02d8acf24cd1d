/* AVX2 + FMA + F16C versions of the forward-pass helpers (fwd_simd.h); bit-identical with the
 * scalar ones. Also used on the AVX-512 path (the work here is small next to the matrix
 * products, and 256-bit F16C conversions are what both paths have). */
#include <immintrin.h>

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

const struct kura_fwd_simd kura_fwd_simd_avx2 = {
    .f16_scale = f16_scale_avx2,
    .f16_axpy = f16_axpy_avx2,
    .swiglu16 = swiglu16_avx2,
};

const struct kura_fwd_simd kura_fwd_simd_avx512 = {
    .f16_scale = f16_scale_avx2,
    .f16_axpy = f16_axpy_avx2,
    .swiglu16 = swiglu16_avx2,
    .attend = kura_attend_avx512,
};
