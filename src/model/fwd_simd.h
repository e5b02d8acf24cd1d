/* Element-wise helpers of the forward pass with SIMD versions (attention's f16 value
 * accumulator, SwiGLU). Every version computes bit-identical results to the scalar one: the
 * operations are element-wise with the same roundings (fused multiply-add, f16 round to nearest
 * even, the same exp polynomial), so the kernel path never changes the model's output here. */
#ifndef KURA_MODEL_FWD_SIMD_H
#define KURA_MODEL_FWD_SIMD_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kura_fwd_simd {
    /* acc[d] = f16(f32(acc[d]) * s) */
    void (*f16_scale)(uint16_t *acc, int n, float s);
    /* acc[d] = f16(fma(f32(v[d]), s, f32(acc[d]))) */
    void (*f16_axpy)(uint16_t *acc, const uint16_t *v, int n, float s);
    /* h[i] = (g[i] / (1 + exp_poly(-g[i]))) * u[i] for i < n, n a multiple of 16 */
    void (*swiglu16)(float *h, const float *g, const float *u, int n);
    /* Attention of ng query heads (f16, head g at q16 + g * hd) that share one KV head: keys
     * k + p * kvs and values v + p * kvs (f16) for p < n_pos; out + g * hd receives each
     * head's softmax-weighted sum of values (the established engine's CPU flash attention,
     * in its roundings: forward.c's scalar loop). Returns false (computing nothing) for a shape
     * it does not handle; NULL where only the scalar loop exists. */
    bool (*attend)(const uint16_t *q16, int ng, int hd, const uint16_t *k, const uint16_t *v,
                   size_t kvs, int32_t n_pos, float scale, float *out);
};

/* The helpers for the kernel ISA selected by kura_kernels_isa() (KURA_ISA honoured). */
const struct kura_fwd_simd *kura_fwd_simd(void);

/* Scalar exp polynomial shared by all versions (see forward.c). */
float kura_expf_poly(float x);

/* The online softmax over a block of nb scores (the attend kernels' shared step): with the
 * running maximum *mx, sc[i] becomes exp(-|sc[i] - max so far|) (expf, as the scalar loop) and
 * nm[i] tells whether score i raised the maximum (then exp rescales the accumulator and the
 * value enters with weight 1; else exp is the value's weight). */
static inline void kura_att_softmax_block(float *sc, unsigned char *nm, int nb, float *mx)
{
    float m = *mx;
    for (int i = 0; i < nb; i++) {
        float s = sc[i], a;
        if (s > m) {
            a = m - s;
            m = s;
            nm[i] = 1;
        } else {
            a = s - m;
            nm[i] = 0;
        }
        sc[i] = a;
    }
    *mx = m;
    for (int i = 0; i < nb; i++)
        sc[i] = expf(sc[i]);
}

/* forward.c's scalar attention loop (what attend reproduces); acc: hd scratch values */
void kura_attend_ref(const uint16_t *q16, int ng, int hd, const uint16_t *k, const uint16_t *v,
                     size_t kvs, int32_t n_pos, float scale, float *out, uint16_t *acc);

/* Per-ISA tables (scalar in forward.c; fwd_simd_avx2.c, used for AVX2 and AVX-512). */
extern const struct kura_fwd_simd kura_fwd_simd_scalar;
extern const struct kura_fwd_simd kura_fwd_simd_avx2; /* with the AVX2 attend */
extern const struct kura_fwd_simd kura_fwd_simd_avx512; /* the AVX2 helpers + attend */
bool kura_attend_avx2(const uint16_t *q16, int ng, int hd, const uint16_t *k, const uint16_t *v,
                      size_t kvs, int32_t n_pos, float scale, float *out);
bool kura_attend_avx512(const uint16_t *q16, int ng, int hd, const uint16_t *k,
                        const uint16_t *v, size_t kvs, int32_t n_pos, float scale, float *out);

#endif
