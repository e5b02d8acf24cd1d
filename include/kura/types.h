/* Tensor element types, numbered exactly as GGUF / ggml number them. */
#ifndef KURA_TYPES_H
#define KURA_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum kura_type {
    KURA_TYPE_F32 = 0,
    KURA_TYPE_F16 = 1,
    KURA_TYPE_Q4_0 = 2,
    KURA_TYPE_Q4_1 = 3,
    KURA_TYPE_Q5_0 = 6,
    KURA_TYPE_Q5_1 = 7,
    KURA_TYPE_Q8_0 = 8,
    KURA_TYPE_Q8_1 = 9,
    KURA_TYPE_Q2_K = 10,
    KURA_TYPE_Q3_K = 11,
    KURA_TYPE_Q4_K = 12,
    KURA_TYPE_Q5_K = 13,
    KURA_TYPE_Q6_K = 14,
    KURA_TYPE_Q8_K = 15,
    KURA_TYPE_I8 = 24,
    KURA_TYPE_I16 = 25,
    KURA_TYPE_I32 = 26,
    KURA_TYPE_I64 = 27,
    KURA_TYPE_F64 = 28,
    KURA_TYPE_BF16 = 30,
    KURA_TYPE__COUNT = 40
};

/* Layout facts of a type: elements per block and bytes per block. Both are 0 for a type
 * kura does not know. Thread-safe, no allocation. */
int64_t kura_type_block_len(enum kura_type t);
size_t kura_type_block_bytes(enum kura_type t);
/* Lower-case name ("q4_k", "f16"), or NULL for an unknown type. */
const char *kura_type_name(enum kura_type t);
/* Parses a name as printed by kura_type_name (case-insensitive); returns -1 if unknown. */
int kura_type_from_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
