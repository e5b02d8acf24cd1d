/* Element-wise helpers of the forward pass with SIMD versions (attention's f16 value
 * accumulator, SwiGLU). Every version computes bit-identical results to the scalar one: the
 * operations are element-wise with the same roundings (fused multiply-add, f16 round to nearest
 * even, the same exp polynomial), so the kernel path never changes the model's output here. */
#ifndef KURA_MODEL_FWD_SIMD_H
#define KURA_MODEL_FWD_SIMD_H

#include <stdint.h>

struct kura_fwd_simd {
    /* acc[d] = f16(f32(acc[d]) * s) */
    void (*f16_scale)(uint16_t *acc, int n, float s);
    /* acc[d] = f16(fma(f32(v[d]), s, f32(acc[d]))) */
    void (*f16_axpy)(uint16_t *acc, const uint16_t *v, int n, float s);
    /* h[i] = (g[i] / (1 + exp_poly(-g[i]))) * u[i] for i < n, n a multiple of 16 */
    void (*swiglu16)(float *h, const float *g, const float *u, int n);
};

/* The helpers for the kernel ISA selected by kura_kernels_isa() (KURA_ISA honoured). */
const struct kura_fwd_simd *kura_fwd_simd(void);

/* Scalar exp polynomial shared by all versions (see forward.c). */
float kura_expf_poly(float x);

/* Per-ISA tables (scalar in forward.c; fwd_simd_avx2.c, used for AVX2 and AVX-512). */
extern const struct kura_fwd_simd kura_fwd_simd_scalar;
extern const struct kura_fwd_simd kura_fwd_simd_avx2;

#endif
