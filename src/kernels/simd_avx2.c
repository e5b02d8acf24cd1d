/* AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; only called when the CPU has
 * them). The kernels themselves are in simd_x86.h, shared with the AVX-512 build. */
#define SIMD_SFX(name) name##_avx2
#define SIMD_VNNI 0
#define SIMD_TR 2 /* 2 x 4 accumulators + temporaries fit the 16 ymm registers */
#define SIMD_TC 4
#include "kernels/simd_x86.h"

KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_bf16_avx2, vec_dot_bf16_avx2)

void kura_kernels_fill_avx2(struct kura_type_traits table[KURA_TYPE__COUNT])
{
    fill_common_avx2(table);
    table[KURA_TYPE_F32].vec_dot = vec_dot_f32_avx2;
    table[KURA_TYPE_F32].gemm = gemm_f32_avx2;
    table[KURA_TYPE_F16].vec_dot = vec_dot_f16_avx2;
    table[KURA_TYPE_F16].gemm = gemm_f16_avx2;
    table[KURA_TYPE_BF16].vec_dot = vec_dot_bf16_avx2;
    table[KURA_TYPE_BF16].gemm = gemm_bf16_avx2;
    kura_kernels_fill_kq_avx2(table);
}
