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

/* Two 32-blocks per 512-bit vector for the most common legacy types (decode is bound by the
 * per-block overhead otherwise): [d_x0 d_y0 x8 | d_x1 d_y1 x8] as floats. */
static inline __m512 scales2(uint16_t dx0, uint16_t dx1, uint16_t dy0, uint16_t dy1)
{
    __m128i h = _mm_cvtsi32_si128((int)((uint32_t)dx0 | (uint32_t)dx1 << 16));
    h = _mm_insert_epi32(h, (int)((uint32_t)dy0 | (uint32_t)dy1 << 16), 1);
    __m128 f = _mm_cvtph_ps(h); /* dx0 dx1 dy0 dy1 */
    __m128 p = _mm_mul_ps(f, _mm_movehl_ps(f, f));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                 _mm512_castps128_ps512(p));
}

/* signed x signed bytes without vpsignb (absent in AVX-512): |a| and b negated where a < 0 */
static inline __m512i dot_s8s8_512(__m512i a, __m512i b)
{
    __m512i bs = _mm512_mask_sub_epi8(b, _mm512_movepi8_mask(a), _mm512_setzero_si512(), b);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(a), bs);
}

static inline __m512i load_y2(const struct blk_q8_0 *y)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(load256(y[0].qs)), load256(y[1].qs), 1);
}

static float vec_dot_q4_0_q8_0_avx512(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q4_0 *x = vx;
    const struct blk_q8_0 *y = vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int64_t nb = n / QK, i = 0;
    for (; i + 4 <= nb; i += 4) {
        for (int k = 0; k < 4; k += 2) {
            __m256i u = _mm256_loadu2_m128i((const __m128i *)x[i + k + 1].qs,
                                            (const __m128i *)x[i + k].qs);
            __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(u), _mm256_srli_epi16(u, 4), 1);
            z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)); /* lo0 hi0 lo1 hi1 */
            z = _mm512_sub_epi8(_mm512_and_si512(z, _mm512_set1_epi8(15)), _mm512_set1_epi8(8));
            __m512 f = _mm512_cvtepi32_ps(dot_s8s8_512(z, load_y2(y + i + k)));
            __m512 d = scales2(x[i + k].d, x[i + k + 1].d, y[i + k].d, y[i + k + 1].d);
            if (k == 0)
                a0 = _mm512_fmadd_ps(f, d, a0);
            else
                a1 = _mm512_fmadd_ps(f, d, a1);
        }
    }
    __m256 acc = _mm256_setzero_ps();
    float accs = 0;
    struct unp_sym u;
    for (; i < nb; i++) {
        unpack_q4_0(&x[i], &u);
        dot_sym_q8_0(&u, &y[i], &acc, &accs);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + hsum_ps(acc);
}

static float vec_dot_q8_0_q8_0_avx512(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q8_0 *x = vx;
    const struct blk_q8_0 *y = vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int64_t nb = n / QK, i = 0;
    for (; i + 4 <= nb; i += 4) {
        for (int k = 0; k < 4; k += 2) {
            __m512 f = _mm512_cvtepi32_ps(dot_s8s8_512(load_y2(x + i + k), load_y2(y + i + k)));
            __m512 d = scales2(x[i + k].d, x[i + k + 1].d, y[i + k].d, y[i + k + 1].d);
            if (k == 0)
                a0 = _mm512_fmadd_ps(f, d, a0);
            else
                a1 = _mm512_fmadd_ps(f, d, a1);
        }
    }
    __m256 acc = _mm256_setzero_ps();
    float accs = 0;
    struct unp_sym u;
    for (; i < nb; i++) {
        unpack_q8_0(&x[i], &u);
        dot_sym_q8_0(&u, &y[i], &acc, &accs);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + hsum_ps(acc);
}

KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_f32_avx512, vec_dot_f32_f32_avx512)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_f16_avx512, vec_dot_f16_f16_avx512)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_bf16_avx512, vec_dot_bf16_bf16_avx512)

void kura_kernels_fill_avx512(struct kura_type_traits table[KURA_TYPE__COUNT])
{
    fill_common_avx512(table);
    table[KURA_TYPE_Q4_0].vec_dot = vec_dot_q4_0_q8_0_avx512;
    table[KURA_TYPE_Q8_0].vec_dot = vec_dot_q8_0_q8_0_avx512;
    table[KURA_TYPE_F32].vec_dot = vec_dot_f32_f32_avx512;
    table[KURA_TYPE_F32].gemm = gemm_f32_avx512;
    table[KURA_TYPE_F16].vec_dot = vec_dot_f16_f16_avx512;
    table[KURA_TYPE_F16].gemm = gemm_f16_avx512;
    table[KURA_TYPE_BF16].vec_dot = vec_dot_bf16_bf16_avx512;
    table[KURA_TYPE_BF16].gemm = gemm_bf16_avx512;
    kura_kernels_fill_kq_avx512(table);
}
