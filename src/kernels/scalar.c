/* Scalar kernels: dequantization, reference quantizers and dot products for every type kura
 * computes with. These are the definition of correctness; the SIMD files are tested against
 * them. Block layouts: see kernels_int.h. */
#include "kernels/kernels_int.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* ------------------------------------------------------------------------------------------ */
/* F32, F16, BF16                                                                             */

static void to_float_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void from_float_f32(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void to_float_f16(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = kura_fp16_to_fp32(s[i]);
}

static void from_float_f16(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++)
        d[i] = kura_fp32_to_fp16(src[i]);
}

static void to_float_bf16(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = kura_bf16_to_fp32(s[i]);
}

static void from_float_bf16(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++)
        d[i] = kura_fp32_to_bf16(src[i]);
}

/* Horizontal sums in the order of the x86 reductions of the reference engine: a 16-lane sum
 * halves 16 -> 8 -> 4 lanes, then adds (0 + 2) + (1 + 3); an 8-lane sum does the same from
 * 8 lanes. Float addition is not associative, so the order is part of the result. */
static float hsum16(const float a[16])
{
    float t[8];
    for (int i = 0; i < 8; i++)
        t[i] = a[i] + a[8 + i];
    for (int i = 0; i < 4; i++)
        t[i] = t[i] + t[4 + i];
    return (t[0] + t[2]) + (t[1] + t[3]);
}

static float hsum8(const float a[8])
{
    float t[4];
    for (int i = 0; i < 4; i++)
        t[i] = a[i] + a[4 + i];
    return (t[0] + t[2]) + (t[1] + t[3]);
}

/* Float dot products of n elements in the reference engine's AVX-512 order: blocks of 64
 * elements feed four 16-lane fused multiply-add accumulators (element 64 b + 16 j + l goes to
 * accumulator j, lane l); the accumulators are added (0 + 2, 1 + 3, then together) and summed
 * horizontally; the n % 64 leftover elements follow one at a time. Matching this order matters:
 * the KV cache stores f16, and a last-bit difference in a projection occasionally flips an f16
 * rounding there, which then persists for the rest of the sequence. */
#define DOT_STEP 64
#define DOT_LANES 16

static float dot_lanes_reduce(float acc[4][DOT_LANES])
{
    for (int l = 0; l < DOT_LANES; l++) {
        acc[0][l] += acc[2][l];
        acc[1][l] += acc[3][l];
    }
    for (int l = 0; l < DOT_LANES; l++)
        acc[0][l] += acc[1][l];
    return hsum16(acc[0]);
}

static float vec_dot_f32_f32_scalar(int64_t n, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    int64_t np = n & ~(int64_t)(DOT_STEP - 1);
    float acc[4][DOT_LANES] = {{0}};
    for (int64_t i = 0; i < np; i += DOT_STEP)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < DOT_LANES; l++)
                acc[j][l] = fmaf(x[i + DOT_LANES * j + l], y[i + DOT_LANES * j + l], acc[j][l]);
    float s = dot_lanes_reduce(acc);
    /* the leftovers accumulate in float with fused multiply-adds */
    for (int64_t i = np; i < n; i++)
        s = fmaf(x[i], y[i], s);
    return s;
}

static float vec_dot_f16_f16_scalar(int64_t n, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    int64_t np = n & ~(int64_t)(DOT_STEP - 1);
    float acc[4][DOT_LANES] = {{0}};
    for (int64_t i = 0; i < np; i += DOT_STEP)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < DOT_LANES; l++) {
                int64_t e = i + DOT_LANES * j + l;
                acc[j][l] = fmaf(kura_fp16_to_fp32(x[e]), kura_fp16_to_fp32(y[e]), acc[j][l]);
            }
    /* here the leftovers accumulate in double, each product rounded to float first */
    double s = dot_lanes_reduce(acc);
    for (int64_t i = np; i < n; i++)
        s += (double)(kura_fp16_to_fp32(x[i]) * kura_fp16_to_fp32(y[i]));
    return (float)s;
}

static float vec_dot_bf16_bf16_scalar(int64_t n, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)kura_bf16_to_fp32(x[i]) * (double)kura_bf16_to_fp32(y[i]);
    return (float)s;
}

/* Multi-row products of float rows follow the reference engine's batch path instead (used for
 * two or more activation rows when n is a multiple of 16): one 16-lane fused multiply-add
 * accumulator per output, element 16 b + l into lane l, then one horizontal sum. Otherwise
 * each output is a vec_dot, as there. */
static float dot_chain16_f32(int64_t n, const float *x, const float *y)
{
    float acc[DOT_LANES] = {0};
    for (int64_t i = 0; i < n; i += DOT_LANES)
        for (int l = 0; l < DOT_LANES; l++)
            acc[l] = fmaf(x[i + l], y[i + l], acc[l]);
    return hsum16(acc);
}

static float dot_chain16_f16(int64_t n, const uint16_t *x, const uint16_t *y)
{
    float acc[DOT_LANES] = {0};
    for (int64_t i = 0; i < n; i += DOT_LANES)
        for (int l = 0; l < DOT_LANES; l++)
            acc[l] = fmaf(kura_fp16_to_fp32(x[i + l]), kura_fp16_to_fp32(y[i + l]), acc[l]);
    return hsum16(acc);
}

#define DEFINE_GEMM_FLOAT(name, elem_t, vec_dot_fn, chain_fn)                                    \
    static void name(int64_t n, int64_t nr, int64_t nc, const void *x, size_t x_row_bytes,     \
                     const void *y, size_t y_row_bytes, float *out, size_t out_row_stride)      \
    {                                                                                           \
        bool batch = nc >= 2 && n % DOT_LANES == 0;                                             \
        for (int64_t c = 0; c < nc; c++)                                                        \
            for (int64_t r = 0; r < nr; r++) {                                                  \
                const elem_t *xr = (const void *)((const char *)x + (size_t)r * x_row_bytes);   \
                const elem_t *yc = (const void *)((const char *)y + (size_t)c * y_row_bytes);   \
                out[(size_t)c * out_row_stride + (size_t)r] =                                   \
                    batch ? chain_fn(n, xr, yc) : vec_dot_fn(n, xr, yc);                        \
            }                                                                                   \
    }

DEFINE_GEMM_FLOAT(gemm_f32_scalar, float, vec_dot_f32_f32_scalar, dot_chain16_f32)
DEFINE_GEMM_FLOAT(gemm_f16_scalar, uint16_t, vec_dot_f16_f16_scalar, dot_chain16_f16)

/* ------------------------------------------------------------------------------------------ */
/* Legacy 32-element quants                                                                   */

/* Value with the largest magnitude (sign kept); the first one wins ties. */
static float signed_absmax(const float *x, int n, float *amax_out /* OUT */)
{
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++) {
        float a = fabsf(x[j]);
        if (a > amax) {
            amax = a;
            max = x[j];
        }
    }
    *amax_out = amax;
    return max;
}

static void to_float_q4_0(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        float d = f16(b[i].d);
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)((b[i].qs[j] & 15) - 8) * d;
            dst[j + 16] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

/* The reference rounding of the GGUF ecosystem: d = -max/8 from the signed extreme, so the
 * extreme maps to q = 0 exactly and the range [-8d, 7d] is used asymmetrically. */
static void from_float_q4_0(const float *x, void *dst, int64_t n)
{
    struct blk_q4_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax, max = signed_absmax(x, QK, &amax);
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = kura_fp32_to_fp16(d);
        for (int j = 0; j < 16; j++) {
            int q0 = MIN(15, (int)(x[j] * id + 8.5f));
            int q1 = MIN(15, (int)(x[j + 16] * id + 8.5f));
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void to_float_q4_1(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        float d = f16(b[i].d), m = f16(b[i].m);
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)(b[i].qs[j] & 15) * d + m;
            dst[j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

static void minmax(const float *x, int n, float *mn /* OUT */, float *mx /* OUT */)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    *mn = lo;
    *mx = hi;
}

static void from_float_q4_1(const float *x, void *dst, int64_t n)
{
    struct blk_q4_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float mn, mx;
        minmax(x, QK, &mn, &mx);
        float d = (mx - mn) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = kura_fp32_to_fp16(d);
        b[i].m = kura_fp32_to_fp16(mn);
        for (int j = 0; j < 16; j++) {
            int q0 = MIN(15, (int)((x[j] - mn) * id + 0.5f));
            int q1 = MIN(15, (int)((x[j + 16] - mn) * id + 0.5f));
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static uint32_t load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void store_qh(uint8_t qh[4], uint32_t v)
{
    for (int k = 0; k < 4; k++)
        qh[k] = (uint8_t)(v >> (8 * k));
}

/* 5-bit value of element j (< 32) of a Q5_0/Q5_1 block. */
static int q5_value(const uint8_t *qs, uint32_t qh, int j)
{
    int lo = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
    return lo | (int)((qh >> j) & 1u) << 4;
}

static void to_float_q5_0(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        float d = f16(b[i].d);
        uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < QK; j++)
            dst[j] = (float)(q5_value(b[i].qs, qh, j) - 16) * d;
    }
}

static void from_float_q5_0(const float *x, void *dst, int64_t n)
{
    struct blk_q5_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax, max = signed_absmax(x, QK, &amax);
        float d = max / -16.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = kura_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = MIN(31, (int)(x[j] * id + 16.5f));
            int q1 = MIN(31, (int)(x[j + 16] * id + 16.5f));
            b[i].qs[j] = (uint8_t)((q0 & 15) | ((q1 & 15) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        store_qh(b[i].qh, qh);
    }
}

static void to_float_q5_1(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        float d = f16(b[i].d), m = f16(b[i].m);
        uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < QK; j++)
            dst[j] = (float)q5_value(b[i].qs, qh, j) * d + m;
    }
}

static void from_float_q5_1(const float *x, void *dst, int64_t n)
{
    struct blk_q5_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float mn, mx;
        minmax(x, QK, &mn, &mx);
        float d = (mx - mn) / 31.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = kura_fp32_to_fp16(d);
        b[i].m = kura_fp32_to_fp16(mn);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = MIN(31, (int)((x[j] - mn) * id + 0.5f));
            int q1 = MIN(31, (int)((x[j + 16] - mn) * id + 0.5f));
            b[i].qs[j] = (uint8_t)((q0 & 15) | ((q1 & 15) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        store_qh(b[i].qh, qh);
    }
}

static void to_float_q8_0(const void *src, float *dst, int64_t n)
{
    const struct blk_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        float d = f16(b[i].d);
        for (int j = 0; j < QK; j++)
            dst[j] = (float)b[i].qs[j] * d;
    }
}

/* Activation quantizer as the established engine's x86 code does it: d = amax / 127,
 * q = nearest-even(x * (127 / amax)). (Its portable reference uses 1/d and roundf, which differs
 * on ties; the reference outputs were made on x86.) The SIMD versions reproduce this bit for bit.
 * Quantizes one 32-block into qs, stores the unrounded d and returns the sum of the levels. */
static int q8_act_block(const float *x, int8_t *qs, float *d_out)
{
    float amax;
    signed_absmax(x, QK, &amax);
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK; j++) {
        qs[j] = (int8_t)nearbyintf(x[j] * id);
        sum += qs[j];
    }
    *d_out = amax / 127.0f;
    return sum;
}

static void from_float_q8_0(const float *x, void *dst, int64_t n)
{
    struct blk_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float d;
        q8_act_block(x, b[i].qs, &d);
        b[i].d = kura_fp32_to_fp16(d);
    }
}

/* Weight quantizer of model files: d = amax / 127, q = roundf(x / d) (ties away from zero), as
 * the established engine's portable reference quantizer (so `kura quantize` is byte-exact). */
static void quantize_q8_0_ref(const float *x, void *dst, int64_t n)
{
    struct blk_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax;
        signed_absmax(x, QK, &amax);
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = kura_fp32_to_fp16(d);
        for (int j = 0; j < QK; j++)
            b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void to_float_q8_1(const void *src, float *dst, int64_t n)
{
    const struct blk_q8_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        float d = f16(b[i].d);
        for (int j = 0; j < QK; j++)
            dst[j] = (float)b[i].qs[j] * d;
    }
}

/* As q8_0, plus s = d * sum(q) (the integer sum times the unrounded d). */
static void from_float_q8_1(const float *x, void *dst, int64_t n)
{
    struct blk_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float d;
        int sum = q8_act_block(x, b[i].qs, &d);
        b[i].d = kura_fp32_to_fp16(d);
        b[i].s = kura_fp32_to_fp16((float)sum * d);
    }
}

/* Legacy-quant dot products in the reference engine's x86 order: within a block the 32
 * integer products go to 8 lanes of 4 consecutive elements, each lane is converted to float
 * and accumulated with a fused multiply-add by the block's scale product dx * dy (rounded to
 * float first); the 8 lanes are summed horizontally at the end (hsum8). For Q4_1/Q5_1 the
 * offset terms m * s are summed separately in float and added last. qx[] holds the weight
 * block's integer values. */
static void lanes8_fma(float acc[8], float d, const int qx[QK], const int8_t *qy)
{
    for (int l = 0; l < 8; l++) {
        int s = 0;
        for (int k = 0; k < 4; k++)
            s += qx[4 * l + k] * qy[4 * l + k];
        acc[l] = fmaf(d, (float)s, acc[l]);
    }
}

static float vec_dot_q4_0_q8_0_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q4_0 *x = vx;
    const struct blk_q8_0 *y = vy;
    float acc[8] = {0};
    int qx[QK];
    for (int64_t i = 0; i < n / QK; i++) {
        for (int j = 0; j < 16; j++) {
            qx[j] = (x[i].qs[j] & 15) - 8;
            qx[j + 16] = (x[i].qs[j] >> 4) - 8;
        }
        lanes8_fma(acc, f16(x[i].d) * f16(y[i].d), qx, y[i].qs);
    }
    return hsum8(acc);
}

static float vec_dot_q4_1_q8_1_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q4_1 *x = vx;
    const struct blk_q8_1 *y = vy;
    float acc[8] = {0}, summs = 0;
    int qx[QK];
    for (int64_t i = 0; i < n / QK; i++) {
        summs += f16(x[i].m) * f16(y[i].s);
        for (int j = 0; j < 16; j++) {
            qx[j] = x[i].qs[j] & 15;
            qx[j + 16] = x[i].qs[j] >> 4;
        }
        lanes8_fma(acc, f16(x[i].d) * f16(y[i].d), qx, y[i].qs);
    }
    return hsum8(acc) + summs;
}

static float vec_dot_q5_0_q8_0_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q5_0 *x = vx;
    const struct blk_q8_0 *y = vy;
    float acc[8] = {0};
    int qx[QK];
    for (int64_t i = 0; i < n / QK; i++) {
        uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK; j++)
            qx[j] = q5_value(x[i].qs, qh, j) - 16;
        lanes8_fma(acc, f16(x[i].d) * f16(y[i].d), qx, y[i].qs);
    }
    return hsum8(acc);
}

static float vec_dot_q5_1_q8_1_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q5_1 *x = vx;
    const struct blk_q8_1 *y = vy;
    float acc[8] = {0}, summs = 0;
    int qx[QK];
    for (int64_t i = 0; i < n / QK; i++) {
        summs += f16(x[i].m) * f16(y[i].s);
        uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK; j++)
            qx[j] = q5_value(x[i].qs, qh, j);
        lanes8_fma(acc, f16(x[i].d) * f16(y[i].d), qx, y[i].qs);
    }
    return hsum8(acc) + summs;
}

static float vec_dot_q8_0_q8_0_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q8_0 *x = vx;
    const struct blk_q8_0 *y = vy;
    float acc[8] = {0};
    int qx[QK];
    for (int64_t i = 0; i < n / QK; i++) {
        for (int j = 0; j < QK; j++)
            qx[j] = x[i].qs[j];
        lanes8_fma(acc, f16(x[i].d) * f16(y[i].d), qx, y[i].qs);
    }
    return hsum8(acc);
}

/* Q8_1 as a weight type is unusual but cheap to support: the dot with Q8_1 activations. */
static float vec_dot_q8_1_q8_1_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q8_1 *x = vx;
    const struct blk_q8_1 *y = vy;
    float s = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int sumi = 0;
        for (int j = 0; j < QK; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        s += (float)sumi * (f16(x[i].d) * f16(y[i].d));
    }
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* K-quant scale search                                                                       */

/* Asymmetric fit of n values to q in 0..nmax with x ~ scale * q - mn (mn >= 0 is returned in
 * *mn_out): starting from the plain min/max grid, tries nstep + 1 grid densities
 * (nmax + rmin + rdelta * is) / (max - min); for each, fixes the levels and solves the weighted
 * least-squares problem for scale and offset; keeps the candidate with the smallest weighted
 * squared (or absolute, use_mad) error. L receives the chosen levels. This is the search the
 * K-quant description specifies for Q2_K / Q4_K / Q5_K. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *mn_out /* OUT */, uint8_t *Laux, float rmin, float rdelta,
                           int nstep, bool use_mad)
{
    float lo = x[0], hi = x[0];
    float sum_w = w[0], sum_x = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0)
        lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *mn_out = -lo;
        return 0.0f;
    }
    float iscale = (float)nmax / (hi - lo);
    float scale = 1.0f / iscale;
    float best = 0;
    for (int i = 0; i < n; i++) {
        int l = MAX(0, MIN(nmax, nearest_int(iscale * (x[i] - lo))));
        L[i] = (uint8_t)l;
        float diff = scale * (float)l + lo - x[i];
        best += w[i] * (use_mad ? fabsf(diff) : diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (hi - lo);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = MAX(0, MIN(nmax, nearest_int(iscale * (x[i] - lo))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D <= 0)
            continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) { /* the offset must not be positive: refit the scale alone */
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * (float)Laux[i] + this_min - x[i];
            err += w[i] * (use_mad ? fabsf(diff) : diff * diff);
        }
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = this_scale;
            lo = this_min;
        }
    }
    *mn_out = -lo;
    return scale;
}

/* Symmetric fit of n values to q in -nmax..nmax-1 (stored + nmax in L) with weights x^2: the
 * scale from the signed extreme, then 19 nearby grid densities, each with its least-squares
 * scale; keeps the one with the largest (sum w x l)^2 / sum w l^2 (= smallest error).
 * Used for Q3_K and Q6_K. */
static float fit_scale_sym(int n, int nmax, const float *x, uint8_t *L)
{
    float amax, max = signed_absmax(x, n, &amax);
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -(float)nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = MAX(-nmax, MIN(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (uint8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 > 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = MAX(-nmax, MIN(nmax - 1, nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (uint8_t)(MAX(-nmax, MIN(nmax - 1, nearest_int(iscale * x[i]))) + nmax);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ------------------------------------------------------------------------------------------ */
/* Q2_K                                                                                       */

static void to_float_q2_k(const void *src, float *dst, int64_t n)
{
    const struct blk_q2_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = f16(b[i].d), dmin = f16(b[i].dmin);
        for (int e = 0; e < QK_K; e++) {
            uint8_t sc = b[i].scales[e / 16];
            int q = (b[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
            dst[e] = d * (float)(sc & 15) * (float)q - dmin * (float)(sc >> 4);
        }
    }
}

static void pack_2bit(uint8_t qs[64], const uint8_t L[QK_K])
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *p = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(p[0] | p[32] << 2 | p[64] << 4 | p[96] << 6);
        }
}

static void from_float_q2_k(const float *x, void *dst, int64_t n)
{
    struct blk_q2_k *b = dst;
    uint8_t L[QK_K], Laux[16];
    float w[16], scales[16], mins[16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++)
                w[l] = fabsf(x[16 * j + l]);
            scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f,
                                      0.1f, 15, true);
            max_scale = MAX(max_scale, scales[j]);
            max_min = MAX(max_min, mins[j]);
        }
        memset(&b[i], 0, sizeof b[i]);
        if (max_scale > 0) {
            float iscale = 15.0f / max_scale;
            for (int j = 0; j < 16; j++)
                b[i].scales[j] = (uint8_t)MIN(15, nearest_int(iscale * scales[j]));
            b[i].d = kura_fp32_to_fp16(max_scale / 15.0f);
        }
        if (max_min > 0) {
            float iscale = 15.0f / max_min;
            for (int j = 0; j < 16; j++)
                b[i].scales[j] |= (uint8_t)(MIN(15, nearest_int(iscale * mins[j])) << 4);
            b[i].dmin = kura_fp32_to_fp16(max_min / 15.0f);
        }
        /* Re-derive the levels against the scales as they were actually stored. */
        for (int j = 0; j < 16; j++) {
            float d = f16(b[i].d) * (float)(b[i].scales[j] & 15);
            if (d == 0.0f)
                continue;
            float dm = f16(b[i].dmin) * (float)(b[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] =
                    (uint8_t)MAX(0, MIN(3, nearest_int((x[16 * j + l] + dm) / d)));
        }
        pack_2bit(b[i].qs, L);
    }
}

static float vec_dot_q2_k_q8_k_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q2_k *x = vx;
    const struct blk_q8_k *y = vy;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sum_q = 0, sum_m = 0;
        for (int j = 0; j < 16; j++) {
            uint8_t sc = x[i].scales[j];
            int sumi = 0;
            for (int k = 0; k < 16; k++) {
                int e = 16 * j + k;
                int q = (x[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
                sumi += q * y[i].qs[e];
            }
            sum_q += (sc & 15) * sumi;
            sum_m += (sc >> 4) * y[i].bsums[j];
        }
        s += y[i].d * (f16(x[i].d) * (float)sum_q - f16(x[i].dmin) * (float)sum_m);
    }
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Q3_K                                                                                       */

static int q3_scale(const uint8_t s[12], int j)
{
    int lo = j < 8 ? (s[j] & 15) : (s[j - 8] >> 4);
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | hi << 4) - 32;
}

static int q3_value(const struct blk_q3_k *b, int e)
{
    int lo = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
    int hi = (b->hmask[e % 32] >> (e / 32)) & 1;
    return lo + 4 * hi - 4;
}

static void to_float_q3_k(const void *src, float *dst, int64_t n)
{
    const struct blk_q3_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = f16(b[i].d);
        for (int e = 0; e < QK_K; e++)
            dst[e] = d * (float)q3_scale(b[i].scales, e / 16) * (float)q3_value(&b[i], e);
    }
}

static void from_float_q3_k(const float *x, void *dst, int64_t n)
{
    struct blk_q3_k *b = dst;
    uint8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_scale_sym(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(&b[i], 0, sizeof b[i]);
        if (amax == 0.0f) {
            memset(L, 4, sizeof L); /* q = 4 is the value 0 */
        } else {
            float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                int l = MAX(-32, MIN(31, nearest_int(iscale * scales[j]))) + 32;
                if (j < 8)
                    b[i].scales[j] = (uint8_t)(l & 15);
                else
                    b[i].scales[j - 8] |= (uint8_t)((l & 15) << 4);
                b[i].scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            b[i].d = kura_fp32_to_fp16(1.0f / iscale);
            for (int j = 0; j < 16; j++) {
                float d = f16(b[i].d) * (float)q3_scale(b[i].scales, j);
                if (d == 0.0f)
                    continue;
                for (int l = 0; l < 16; l++)
                    L[16 * j + l] =
                        (uint8_t)(MAX(-4, MIN(3, nearest_int(x[16 * j + l] / d))) + 4);
            }
        }
        for (int e = 0; e < QK_K; e++) {
            if (L[e] > 3) {
                b[i].hmask[e % 32] |= (uint8_t)(1u << (e / 32));
                L[e] -= 4;
            }
        }
        pack_2bit(b[i].qs, L);
    }
}

static float vec_dot_q3_k_q8_k_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q3_k *x = vx;
    const struct blk_q8_k *y = vy;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sum = 0;
        for (int j = 0; j < 16; j++) {
            int sumi = 0;
            for (int k = 0; k < 16; k++)
                sumi += q3_value(&x[i], 16 * j + k) * y[i].qs[16 * j + k];
            sum += q3_scale(x[i].scales, j) * sumi;
        }
        s += f16(x[i].d) * y[i].d * (float)sum;
    }
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Q4_K, Q5_K                                                                                 */

static void to_float_q4_k(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = f16(b[i].d), dmin = f16(b[i].dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            k4_scale_min(b[i].scales, 2 * c, &sc0, &m0);
            k4_scale_min(b[i].scales, 2 * c + 1, &sc1, &m1);
            float d0 = d * sc0, mm0 = dmin * m0, d1 = d * sc1, mm1 = dmin * m1;
            const uint8_t *q = b[i].qs + 32 * c;
            for (int l = 0; l < 32; l++) {
                dst[64 * c + l] = d0 * (float)(q[l] & 15) - mm0;
                dst[64 * c + 32 + l] = d1 * (float)(q[l] >> 4) - mm1;
            }
        }
    }
}

static void to_float_q5_k(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = f16(b[i].d), dmin = f16(b[i].dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            k4_scale_min(b[i].scales, 2 * c, &sc0, &m0);
            k4_scale_min(b[i].scales, 2 * c + 1, &sc1, &m1);
            float d0 = d * sc0, mm0 = dmin * m0, d1 = d * sc1, mm1 = dmin * m1;
            const uint8_t *q = b[i].qs + 32 * c;
            for (int l = 0; l < 32; l++) {
                int h0 = (b[i].qh[l] >> (2 * c)) & 1, h1 = (b[i].qh[l] >> (2 * c + 1)) & 1;
                dst[64 * c + l] = d0 * (float)((q[l] & 15) | h0 << 4) - mm0;
                dst[64 * c + 32 + l] = d1 * (float)((q[l] >> 4) | h1 << 4) - mm1;
            }
        }
    }
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per-sub-block asymmetric fit weighted by
 * rms + |x|, 6-bit quantized scales and mins, then the levels re-derived against the stored
 * scales. Writes d, dmin, the packed scales and the levels L[256]. */
static void quantize_k_sub32(const float *x, int nmax, uint16_t *d_out, uint16_t *dmin_out,
                             uint8_t packed[12], uint8_t L[QK_K])
{
    float w[32], scales[8], mins[8];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32.0f);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(x[32 * j + l]);
        if (nmax == 15)
            scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -1.0f,
                                      0.1f, 20, false);
        else
            scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.5f,
                                      0.1f, 15, false);
        max_scale = MAX(max_scale, scales[j]);
        max_min = MAX(max_min, mins[j]);
    }
    float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    memset(packed, 0, 12);
    for (int j = 0; j < 8; j++) {
        int ls = MIN(63, nearest_int(inv_scale * scales[j]));
        int lm = MIN(63, nearest_int(inv_min * mins[j]));
        if (j < 4) {
            packed[j] |= (uint8_t)ls;
            packed[j + 4] |= (uint8_t)lm;
        } else {
            packed[j + 4] = (uint8_t)((ls & 15) | ((lm & 15) << 4));
            packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
            packed[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = kura_fp32_to_fp16(max_scale / 63.0f);
    *dmin_out = kura_fp32_to_fp16(max_min / 63.0f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        k4_scale_min(packed, j, &sc, &m);
        float d = f16(*d_out) * (float)sc;
        if (d == 0.0f)
            continue;
        float dm = f16(*dmin_out) * (float)m;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)MAX(0, MIN(nmax, nearest_int((x[32 * j + l] + dm) / d)));
    }
}

static void from_float_q4_k(const float *x, void *dst, int64_t n)
{
    struct blk_q4_k *b = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        quantize_k_sub32(x, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    }
}

static void from_float_q5_k(const float *x, void *dst, int64_t n)
{
    struct blk_q5_k *b = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        quantize_k_sub32(x, 31, &b[i].d, &b[i].dmin, b[i].scales, L);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int l0 = L[64 * c + l], l1 = L[64 * c + 32 + l];
                b[i].qs[32 * c + l] = (uint8_t)((l0 & 15) | (l1 & 15) << 4);
                b[i].qh[l] |= (uint8_t)(((l0 >> 4) << (2 * c)) | ((l1 >> 4) << (2 * c + 1)));
            }
    }
}

/* Q4_K in the order of the reference engine's x86 kernels for Q4_K weights (which it runs
 * through 8-row interleaved copies whenever the row count allows): per super-block the exact
 * integer sums of the scaled quants and of the mins times bsums feed two fused multiply-add
 * chains, acc_q += sum_q * (d * dy) and acc_m += sum_m * (dmin * dy); the result is
 * acc_q - acc_m. */
static float vec_dot_q4_k_q8_k_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q4_k *x = vx;
    const struct blk_q8_k *y = vy;
    float acc_q = 0, acc_m = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sum_q = 0, sum_m = 0;
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            k4_scale_min(x[i].scales, 2 * c, &sc0, &m0);
            k4_scale_min(x[i].scales, 2 * c + 1, &sc1, &m1);
            const uint8_t *q = x[i].qs + 32 * c;
            const int8_t *a = y[i].qs + 64 * c;
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                s0 += (q[l] & 15) * a[l];
                s1 += (q[l] >> 4) * a[32 + l];
            }
            sum_q += sc0 * s0 + sc1 * s1;
            sum_m += m0 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) +
                     m1 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
        }
        acc_q = fmaf((float)sum_q, f16(x[i].d) * y[i].d, acc_q);
        acc_m = fmaf((float)sum_m, f16(x[i].dmin) * y[i].d, acc_m);
    }
    return acc_q - acc_m;
}

static float vec_dot_q5_k_q8_k_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q5_k *x = vx;
    const struct blk_q8_k *y = vy;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sum_q = 0, sum_m = 0;
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            k4_scale_min(x[i].scales, 2 * c, &sc0, &m0);
            k4_scale_min(x[i].scales, 2 * c + 1, &sc1, &m1);
            const uint8_t *q = x[i].qs + 32 * c;
            const int8_t *a = y[i].qs + 64 * c;
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                int h0 = (x[i].qh[l] >> (2 * c)) & 1, h1 = (x[i].qh[l] >> (2 * c + 1)) & 1;
                s0 += ((q[l] & 15) | h0 << 4) * a[l];
                s1 += ((q[l] >> 4) | h1 << 4) * a[32 + l];
            }
            sum_q += sc0 * s0 + sc1 * s1;
            sum_m += m0 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) +
                     m1 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
        }
        s += y[i].d * (f16(x[i].d) * (float)sum_q - f16(x[i].dmin) * (float)sum_m);
    }
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Q6_K                                                                                       */

static int q6_value(const struct blk_q6_k *b, int e)
{
    int h = e / 128, g = (e % 128) / 32, l = e % 32;
    uint8_t lb = b->ql[64 * h + l + 32 * (g & 1)];
    int lo = g < 2 ? (lb & 15) : (lb >> 4);
    int hi = (b->qh[32 * h + l] >> (2 * g)) & 3;
    return (lo | hi << 4) - 32;
}

static void to_float_q6_k(const void *src, float *dst, int64_t n)
{
    const struct blk_q6_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = f16(b[i].d);
        for (int e = 0; e < QK_K; e++)
            dst[e] = d * (float)b[i].scales[e / 16] * (float)q6_value(&b[i], e);
    }
}

static void from_float_q6_k(const float *x, void *dst, int64_t n)
{
    struct blk_q6_k *b = dst;
    uint8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_scale_sym(16, 32, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(&b[i], 0, sizeof b[i]);
        if (amax == 0.0f) {
            memset(L, 32, sizeof L); /* q = 32 is the value 0 */
        } else {
            float iscale = -128.0f / max_scale;
            b[i].d = kura_fp32_to_fp16(1.0f / iscale);
            for (int j = 0; j < 16; j++)
                b[i].scales[j] = (int8_t)MIN(127, nearest_int(iscale * scales[j]));
            for (int j = 0; j < 16; j++) {
                float d = f16(b[i].d) * (float)b[i].scales[j];
                if (d == 0.0f)
                    continue;
                for (int l = 0; l < 16; l++)
                    L[16 * j + l] =
                        (uint8_t)(MAX(-32, MIN(31, nearest_int(x[16 * j + l] / d))) + 32);
            }
        }
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const uint8_t *p = L + 128 * h + l;
                b[i].ql[64 * h + l] = (uint8_t)((p[0] & 15) | (p[64] & 15) << 4);
                b[i].ql[64 * h + 32 + l] = (uint8_t)((p[32] & 15) | (p[96] & 15) << 4);
                b[i].qh[32 * h + l] = (uint8_t)((p[0] >> 4) | (p[32] >> 4) << 2 |
                                                (p[64] >> 4) << 4 | (p[96] >> 4) << 6);
            }
    }
}

/* Q6_K in the order of the reference engine's x86 dot product: per super-block, int32 lane l
 * (< 8) sums sc * (q - 32) * y over elements 32 c + 4 l .. 32 c + 4 l + 3 of the eight 32-element
 * chunks c (sc of the chunk's first 16-element sub-block for l < 4, of its second for l >= 4);
 * lane l of a float accumulator then takes fma(d * dy, lane, acc); the lanes are summed at the
 * end (hsum8). */
static float vec_dot_q6_k_q8_k_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q6_k *x = vx;
    const struct blk_q8_k *y = vy;
    float acc[8] = {0};
    for (int64_t i = 0; i < n / QK_K; i++) {
        int lane[8] = {0};
        for (int c = 0; c < 8; c++)
            for (int l = 0; l < 8; l++) {
                int sumi = 0;
                for (int k = 0; k < 4; k++) {
                    int e = 32 * c + 4 * l + k;
                    sumi += q6_value(&x[i], e) * y[i].qs[e];
                }
                lane[l] += x[i].scales[2 * c + l / 4] * sumi;
            }
        float d = y[i].d * f16(x[i].d);
        for (int l = 0; l < 8; l++)
            acc[l] = fmaf(d, (float)lane[l], acc[l]);
    }
    return hsum8(acc);
}

/* ------------------------------------------------------------------------------------------ */
/* Q8_K (activations of the K-quants)                                                         */

static void to_float_q8_k(const void *src, float *dst, int64_t n)
{
    const struct blk_q8_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        for (int j = 0; j < QK_K; j++)
            dst[j] = b[i].d * (float)b[i].qs[j];
}

/* From the signed extreme: iscale = -127 / max, q = nearest-even(iscale * x) capped at 127,
 * d = 1 / iscale; bsums[j] = sum of q[16 j .. 16 j + 15]. */
static void from_float_q8_k(const float *x, void *dst, int64_t n)
{
    struct blk_q8_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax, max = signed_absmax(x, QK_K, &amax);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++)
            b[i].qs[j] = (int8_t)MIN(127, nearest_int(iscale * x[j]));
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int k = 0; k < 16; k++)
                sum += b[i].qs[16 * j + k];
            b[i].bsums[j] = (int16_t)sum;
        }
        b[i].d = 1.0f / iscale;
    }
}

static float vec_dot_q8_k_q8_k_scalar(int64_t n, const void *vx, const void *vy)
{
    const struct blk_q8_k *x = vx;
    const struct blk_q8_k *y = vy;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi = 0;
        for (int j = 0; j < QK_K; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        s += x[i].d * y[i].d * (float)sumi;
    }
    return s;
}

/* ------------------------------------------------------------------------------------------ */

KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_bf16_scalar, vec_dot_bf16_bf16_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q4_0_scalar, vec_dot_q4_0_q8_0_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q4_1_scalar, vec_dot_q4_1_q8_1_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q5_0_scalar, vec_dot_q5_0_q8_0_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q5_1_scalar, vec_dot_q5_1_q8_1_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q8_0_scalar, vec_dot_q8_0_q8_0_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q8_1_scalar, vec_dot_q8_1_q8_1_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q2_k_scalar, vec_dot_q2_k_q8_k_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q3_k_scalar, vec_dot_q3_k_q8_k_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q4_k_scalar, vec_dot_q4_k_q8_k_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q5_k_scalar, vec_dot_q5_k_q8_k_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q6_k_scalar, vec_dot_q6_k_q8_k_scalar)
KURA_DEFINE_GEMM_FROM_VEC_DOT(gemm_q8_k_scalar, vec_dot_q8_k_q8_k_scalar)

#define ENTRY(T, tf, ff, vdt, vd, gm)                                                             \
    table[T] = (struct kura_type_traits){.type = T,                                             \
                                         .block_len = kura_type_block_len(T),                   \
                                         .block_bytes = kura_type_block_bytes(T),               \
                                         .to_float = tf,                                        \
                                         .from_float = ff,                                      \
                                         .quantize = ff,                                        \
                                         .vec_dot_type = vdt,                                   \
                                         .vec_dot = vd,                                         \
                                         .gemm = gm}

void kura_kernels_fill_scalar(struct kura_type_traits table[KURA_TYPE__COUNT])
{
    memset(table, 0, sizeof(struct kura_type_traits) * KURA_TYPE__COUNT);
    ENTRY(KURA_TYPE_F32, to_float_f32, from_float_f32, KURA_TYPE_F32, vec_dot_f32_f32_scalar,
          gemm_f32_scalar);
    ENTRY(KURA_TYPE_F16, to_float_f16, from_float_f16, KURA_TYPE_F16, vec_dot_f16_f16_scalar,
          gemm_f16_scalar);
    ENTRY(KURA_TYPE_BF16, to_float_bf16, from_float_bf16, KURA_TYPE_BF16,
          vec_dot_bf16_bf16_scalar, gemm_bf16_scalar);
    /* one float column follows the reference engine's single-row order (see DEFINE_GEMM_FLOAT) */
    table[KURA_TYPE_F32].uniform_cols = table[KURA_TYPE_F16].uniform_cols = 2;
    ENTRY(KURA_TYPE_Q4_0, to_float_q4_0, from_float_q4_0, KURA_TYPE_Q8_0,
          vec_dot_q4_0_q8_0_scalar, gemm_q4_0_scalar);
    ENTRY(KURA_TYPE_Q4_1, to_float_q4_1, from_float_q4_1, KURA_TYPE_Q8_1,
          vec_dot_q4_1_q8_1_scalar, gemm_q4_1_scalar);
    ENTRY(KURA_TYPE_Q5_0, to_float_q5_0, from_float_q5_0, KURA_TYPE_Q8_0,
          vec_dot_q5_0_q8_0_scalar, gemm_q5_0_scalar);
    ENTRY(KURA_TYPE_Q5_1, to_float_q5_1, from_float_q5_1, KURA_TYPE_Q8_1,
          vec_dot_q5_1_q8_1_scalar, gemm_q5_1_scalar);
    ENTRY(KURA_TYPE_Q8_0, to_float_q8_0, from_float_q8_0, KURA_TYPE_Q8_0,
          vec_dot_q8_0_q8_0_scalar, gemm_q8_0_scalar);
    ENTRY(KURA_TYPE_Q8_1, to_float_q8_1, from_float_q8_1, KURA_TYPE_Q8_1,
          vec_dot_q8_1_q8_1_scalar, gemm_q8_1_scalar);
    ENTRY(KURA_TYPE_Q2_K, to_float_q2_k, from_float_q2_k, KURA_TYPE_Q8_K,
          vec_dot_q2_k_q8_k_scalar, gemm_q2_k_scalar);
    ENTRY(KURA_TYPE_Q3_K, to_float_q3_k, from_float_q3_k, KURA_TYPE_Q8_K,
          vec_dot_q3_k_q8_k_scalar, gemm_q3_k_scalar);
    ENTRY(KURA_TYPE_Q4_K, to_float_q4_k, from_float_q4_k, KURA_TYPE_Q8_K,
          vec_dot_q4_k_q8_k_scalar, gemm_q4_k_scalar);
    ENTRY(KURA_TYPE_Q5_K, to_float_q5_k, from_float_q5_k, KURA_TYPE_Q8_K,
          vec_dot_q5_k_q8_k_scalar, gemm_q5_k_scalar);
    ENTRY(KURA_TYPE_Q6_K, to_float_q6_k, from_float_q6_k, KURA_TYPE_Q8_K,
          vec_dot_q6_k_q8_k_scalar, gemm_q6_k_scalar);
    ENTRY(KURA_TYPE_Q8_K, to_float_q8_k, from_float_q8_k, KURA_TYPE_Q8_K,
          vec_dot_q8_k_q8_k_scalar, gemm_q8_k_scalar);
    table[KURA_TYPE_Q8_0].quantize = quantize_q8_0_ref;
}
