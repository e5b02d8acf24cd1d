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
    /* Quantize/convert n floats to this type as activations are quantized before a dot product
     * (the fast path; NULL if unsupported). */
    void (*from_float)(const float *src, void *dst, int64_t n);
    /* Quantize n floats to this type as model files are quantized (the reference quantizer that
     * `kura quantize` uses; byte-exact with the established engine's). Equal to the scalar
     * from_float except where the two differ in rounding (Q8_0, Q8_1). */
    void (*quantize)(const float *src, void *dst, int64_t n);
    /* The activation type a row of this type is multiplied with (as the GGUF ecosystem does:
     * Q4_0/Q5_0/Q8_0 -> Q8_0, Q4_1/Q5_1 -> Q8_1, K-quants -> Q8_K, F16 -> F16, BF16 -> BF16,
     * F32 -> F32). */
    enum kura_type vec_dot_type;
    /* Dot product of one row x (this type) with one row y (vec_dot_type), n elements. */
    float (*vec_dot)(int64_t n, const void *x, const void *y);
    /* Multi-row product for prefill / batched decode: for r < nr and c < nc,
     *   out[c * out_row_stride + r] = vec_dot(n, x + r * x_row_bytes, y + c * y_row_bytes)
     * (byte offsets). x holds nr rows of this type (the weights), y holds nc rows of
     * vec_dot_type (the activations). SIMD variants reuse each weight block for several
     * activation columns (register tiling); the result equals vec_dot's up to float summation
     * order. Never NULL when vec_dot is set (a generic loop over vec_dot is the fallback).
     * COLUMN INDEPENDENCE (the server's "same greedy output alone or beside 7 others" rests on
     * it): for nc >= uniform_cols, out for column c is bit-identical for any nc, any position of
     * c among the columns and any other columns, and for any nr / row position; so tile
     * remainders must sum in the same order as full tiles (tests/unit/test_kernels_colindep.c).
     * Below uniform_cols a kernel may take another path with another summation order (the float
     * types' reference single-row order, a row-dot decode path); the forward pass's
     * batch-invariant mode pads such products to uniform_cols copies of the column.
     * Pure function of its inputs: thread-safe. */
    void (*gemm)(int64_t n, int64_t nr, int64_t nc, const void *x, size_t x_row_bytes,
                 const void *y, size_t y_row_bytes, float *out, size_t out_row_stride);
    /* Smallest nc from which gemm sums every column the same way (see above); 0 or 1: all. */
    int uniform_cols;
    /* Optional (NULL: none): gemm that sums every column the way gemm does from uniform_cols
     * columns on, for any nc (batch-invariant evaluation of fewer columns runs this instead of
     * padding the product to uniform_cols copies). */
    void (*gemm_uniform)(int64_t n, int64_t nr, int64_t nc, const void *x, size_t x_row_bytes,
                         const void *y, size_t y_row_bytes, float *out, size_t out_row_stride);
};

/* Traits of t for the currently selected ISA, or NULL if kura cannot compute with t.
 * Thread-safe after kura_kernels_init. */
const struct kura_type_traits *kura_type_traits(enum kura_type t);

enum kura_isa { KURA_ISA_SCALAR = 0, KURA_ISA_AVX2 = 1, KURA_ISA_AVX512 = 2, KURA_ISA__COUNT };

/* Traits of t for a specific ISA (e.g. to compare an ISA against scalar in tests), or NULL if
 * the CPU lacks that ISA or kura cannot compute with t. Runs kura_kernels_init if needed. */
const struct kura_type_traits *kura_type_traits_isa(enum kura_type t, enum kura_isa isa);
/* Whether this CPU (and OS) can run the kernels of isa. */
bool kura_isa_supported(enum kura_isa isa);

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
