/* Internal twin of kernels.h: block layouts (bit-exact with the GGUF ecosystem) and the hooks
 * through which the per-ISA files fill the traits table. Not for use outside src/kernels/ and
 * the kernel tests. */
#ifndef KURA_KERNELS_INT_H
#define KURA_KERNELS_INT_H

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "core/util.h"
#include "kernels/kernels.h"

#define QK 32   /* elements per block of the legacy quants (Q4_0 ... Q8_1) */
#define QK_K 256 /* elements per super-block of the K-quants */

/* All f16 fields are IEEE half, little-endian, as in GGUF files. */
struct blk_q4_0 {
    uint16_t d;      /* scale: x = (q - 8) * d */
    uint8_t qs[16];  /* element j in the low nibble of qs[j], element j+16 in the high nibble */
};
struct blk_q4_1 {
    uint16_t d, m;   /* x = q * d + m */
    uint8_t qs[16];  /* nibbles as in q4_0 */
};
struct blk_q5_0 {
    uint16_t d;      /* x = (q - 16) * d */
    uint8_t qh[4];   /* little-endian u32: bit j = bit 4 of element j (j < 32) */
    uint8_t qs[16];  /* low 4 bits, nibbles as in q4_0 */
};
struct blk_q5_1 {
    uint16_t d, m;   /* x = q * d + m */
    uint8_t qh[4];
    uint8_t qs[16];
};
struct blk_q8_0 {
    uint16_t d;      /* x = q * d */
    int8_t qs[32];
};
struct blk_q8_1 {
    uint16_t d;      /* x = q * d */
    uint16_t s;      /* d * sum(qs) */
    int8_t qs[32];
};
/* Q2_K: 16 sub-blocks of 16. x = d * (sc & 15) * q - dmin * (sc >> 4), q in 0..3.
 * Element e = 128 n + 32 j + k (n < 2, j < 4, k < 32): bits 2j..2j+1 of qs[32 n + k]. */
struct blk_q2_k {
    uint8_t scales[16];
    uint8_t qs[64];
    uint16_t d, dmin;
};
/* Q3_K: 16 sub-blocks of 16 with 6-bit signed scales (stored + 32). q = low 2 bits (as in
 * Q2_K) + 4 * (bit (e / 32) of hmask[e % 32]), value d * (sc - 32) * (q - 4).
 * scales: sub-block j's low 4 bits in the low (j < 8) / high (j >= 8) nibble of byte j % 8,
 * its top 2 bits at bit 2 (j / 4) of byte 8 + j % 4. */
struct blk_q3_k {
    uint8_t hmask[32];
    uint8_t qs[64];
    uint8_t scales[12];
    uint16_t d;
};
/* Q4_K: 8 sub-blocks of 32; x = d * sc * q - dmin * m with 6-bit sc, m packed in 12 bytes:
 * j < 4: sc = s[j] & 63, m = s[j+4] & 63; j >= 4: sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4,
 * m = (s[j+4] >> 4) | (s[j] >> 6) << 4. Element 64 c + l (l < 32) in the low nibble of
 * qs[32 c + l], element 64 c + 32 + l in its high nibble. */
struct blk_q4_k {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[128];
};
/* Q5_K: as Q4_K plus a fifth bit: element 64 c + l has it at bit 2c of qh[l], element
 * 64 c + 32 + l at bit 2c + 1. */
struct blk_q5_k {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
};
/* Q6_K: 16 sub-blocks of 16, x = d * scales[e / 16] * (q - 32), q 6 bits. For half h (< 2),
 * element 128 h + 32 g + l (g < 4, l < 32): low 4 bits in ql[64 h + l + 32 (g & 1)], low
 * nibble for g < 2 and high nibble for g >= 2; high 2 bits at bits 2g of qh[32 h + l]. */
struct blk_q6_k {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
};
/* Q8_K: activation type of the K-quants. */
struct blk_q8_k {
    float d;
    int8_t qs[256];
    int16_t bsums[16]; /* sums of 16 consecutive qs */
};

static_assert(sizeof(struct blk_q4_0) == 18, "q4_0");
static_assert(sizeof(struct blk_q4_1) == 20, "q4_1");
static_assert(sizeof(struct blk_q5_0) == 22, "q5_0");
static_assert(sizeof(struct blk_q5_1) == 24, "q5_1");
static_assert(sizeof(struct blk_q8_0) == 34, "q8_0");
static_assert(sizeof(struct blk_q8_1) == 36, "q8_1");
static_assert(sizeof(struct blk_q2_k) == 84, "q2_k");
static_assert(sizeof(struct blk_q3_k) == 110, "q3_k");
static_assert(sizeof(struct blk_q4_k) == 144, "q4_k");
static_assert(sizeof(struct blk_q5_k) == 176, "q5_k");
static_assert(sizeof(struct blk_q6_k) == 210, "q6_k");
static_assert(sizeof(struct blk_q8_k) == 292, "q8_k");

static inline float f16(uint16_t h)
{
    return kura_fp16_to_fp32(h);
}

/* Round to nearest, ties to even, for |f| < 2^22 (what the K-quant reference quantizers use):
 * adding 1.5 * 2^23 pushes the fraction out of the mantissa. */
static inline int nearest_int(float f)
{
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* Q4_K / Q5_K: 6-bit scale and min of sub-block j (< 8) from the 12 packed bytes. */
static inline void k4_scale_min(const uint8_t *s, int j, uint8_t *sc /* OUT */, uint8_t *m /* OUT */)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* Generic multi-row kernel built on a vec_dot: defines `static void name(...)` with the gemm
 * signature of struct kura_type_traits. */
#define KURA_DEFINE_GEMM_FROM_VEC_DOT(name, vec_dot_fn)                                         \
    static void name(int64_t n, int64_t nr, int64_t nc, const void *x, size_t x_row_bytes,     \
                     const void *y, size_t y_row_bytes, float *out, size_t out_row_stride)      \
    {                                                                                           \
        for (int64_t c = 0; c < nc; c++)                                                        \
            for (int64_t r = 0; r < nr; r++)                                                    \
                out[(size_t)c * out_row_stride + (size_t)r] =                                   \
                    vec_dot_fn(n, (const char *)x + (size_t)r * x_row_bytes,                    \
                               (const char *)y + (size_t)c * y_row_bytes);                      \
    }

/* Fill table[t] for every supported type. The scalar filler sets every field; the ISA fillers
 * override only the functions they accelerate (call them on a copy of the scalar table). */
void kura_kernels_fill_scalar(struct kura_type_traits table[KURA_TYPE__COUNT]);
void kura_kernels_fill_avx2(struct kura_type_traits table[KURA_TYPE__COUNT]);
void kura_kernels_fill_avx512(struct kura_type_traits table[KURA_TYPE__COUNT]);
/* The K-quant kernels (kq_x86.h), installed at the end of the ISA fillers above. */
void kura_kernels_fill_kq_avx2(struct kura_type_traits table[KURA_TYPE__COUNT]);
void kura_kernels_fill_kq_avx512(struct kura_type_traits table[KURA_TYPE__COUNT]);

#endif
