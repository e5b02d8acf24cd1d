/* AVX-512 kernels (F, BW, VL, DQ, VNNI, BF16; only called when the CPU has them): the shared
 * x86 kernels of simd_x86.h with VNNI dot products (vpdpbusd / vpdpwssd on 256-bit vectors,
 * which also runs at full rate on Zen 4) and a 4 x 4 gemm tile in the 32 vector registers,
 * plus 512-bit float kernels; BF16 x BF16 uses vdpbf16ps. */
#define SIMD_SFX(name) name##_avx512
#define SIMD_VNNI 1
#define SIMD_TR 4
#define SIMD_TC 4
#include "kernels/simd_x86.h"

static inline float hsum512(__m512 v)
{
    return _mm512_reduce_add_ps(v);
}

static float vec_dot_f32_f32_avx512(int64_t n, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), a3);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a0);
    }
    return hsum512(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static inline __m512 load_f16x16(__mmask16 m, const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

static float vec_dot_f16_f16_avx512(int64_t n, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    const __mmask16 all = 0xffff;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(load_f16x16(all, x + i), load_f16x16(all, y + i), a0);
        a1 = _mm512_fmadd_ps(load_f16x16(all, x + i + 16), load_f16x16(all, y + i + 16), a1);
        a2 = _mm512_fmadd_ps(load_f16x16(all, x + i + 32), load_f16x16(all, y + i + 32), a2);
        a3 = _mm512_fmadd_ps(load_f16x16(all, x + i + 48), load_f16x16(all, y + i + 48), a3);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? all : (__mmask16)((1u << (n - i)) - 1);
        a0 = _mm512_fmadd_ps(load_f16x16(m, x + i), load_f16x16(m, y + i), a0);
    }
    return hsum512(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

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

KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_f32_avx512, vec_dot_f32_f32_avx512)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_f16_avx512, vec_dot_f16_f16_avx512)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_bf16_avx512, vec_dot_bf16_bf16_avx512)

void kura_kernels_fill_avx512(struct kura_type_traits table[KURA_TYPE__COUNT])
{
    fill_common_avx512(table);
    table[KURA_TYPE_F32].vec_dot = vec_dot_f32_f32_avx512;
    table[KURA_TYPE_F32].gemm = gemm_f32_avx512;
    table[KURA_TYPE_F16].vec_dot = vec_dot_f16_f16_avx512;
    table[KURA_TYPE_F16].gemm = gemm_f16_avx512;
    table[KURA_TYPE_BF16].vec_dot = vec_dot_bf16_bf16_avx512;
    table[KURA_TYPE_BF16].gemm = gemm_bf16_avx512;
}
