/* Compute kernels: one function per (operation, type, ISA). This header is the contract the
 * model code relies on; implementations live in scalar.c (always present) and per-ISA files
 * (*_avx2.c, *_avx512.c) selected at run time. */
#ifndef KURA_KERNELS_H
#define KURA_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/types.h"

/* Per-type function table. All row lengths n are multiples of block_len. */
struct kura_type_traits {
    enum kura_type type;
    int64_t block_len;
    size_t block_bytes;
    /* Dequantize/convert n values of this type to float. */
    void (*to_float)(const void *src, float *dst, int64_t n);
    /* Quantize/convert n floats to this type (reference quantizer; NULL if unsupported). */
    void (*from_float)(const float *src, void *dst, int64_t n);
    /* The activation type a row of this type is multiplied with (as the GGUF ecosystem does:
     * Q4_0/Q5_0/Q8_0 -> Q8_0, Q4_1/Q5_1 -> Q8_1, K-quants -> Q8_K, F16 -> F16, BF16 -> BF16,
     * F32 -> F32). */
    enum kura_type vec_dot_type;
    /* Dot product of one row x (this type) with one row y (vec_dot_type), n elements. */
    float (*vec_dot)(int64_t n, const void *x, const void *y);
};

/* Traits of t for the currently selected ISA, or NULL if kura cannot compute with t.
 * Thread-safe after kura_kernels_init. */
const struct kura_type_traits *kura_type_traits(enum kura_type t);

enum kura_isa { KURA_ISA_SCALAR = 0, KURA_ISA_AVX2 = 1, KURA_ISA_AVX512 = 2 };

/* Selects the best ISA the CPU supports, unless $KURA_ISA (scalar|avx2|avx512) forces one
 * (forcing one the CPU lacks falls back to the best available, with a warning on stderr).
 * Idempotent; call before using kernels from several threads. */
void kura_kernels_init(void);
enum kura_isa kura_kernels_isa(void);
const char *kura_isa_name(enum kura_isa isa);

/* Bytes of a row of n elements of type t (n a multiple of the block length). */
static inline size_t kura_row_bytes(enum kura_type t, int64_t n)
{
    return (size_t)(n / kura_type_block_len(t)) * kura_type_block_bytes(t);
}

#endif
