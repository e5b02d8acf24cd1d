#include "kura/types.h"

#include <strings.h>

struct type_info {
    const char *name;
    int64_t block_len;
    size_t block_bytes;
};

/* Block layouts as defined by the GGUF ecosystem (QK_K = 256). */
static const struct type_info TYPES[KURA_TYPE__COUNT] = {
    [KURA_TYPE_F32] = {"f32", 1, 4},
    [KURA_TYPE_F16] = {"f16", 1, 2},
    [KURA_TYPE_Q4_0] = {"q4_0", 32, 2 + 16},
    [KURA_TYPE_Q4_1] = {"q4_1", 32, 2 + 2 + 16},
    [KURA_TYPE_Q5_0] = {"q5_0", 32, 2 + 4 + 16},
    [KURA_TYPE_Q5_1] = {"q5_1", 32, 2 + 2 + 4 + 16},
    [KURA_TYPE_Q8_0] = {"q8_0", 32, 2 + 32},
    [KURA_TYPE_Q8_1] = {"q8_1", 32, 4 + 32},
    [KURA_TYPE_Q2_K] = {"q2_k", 256, 16 + 64 + 2 + 2},
    [KURA_TYPE_Q3_K] = {"q3_k", 256, 32 + 64 + 12 + 2},
    [KURA_TYPE_Q4_K] = {"q4_k", 256, 2 + 2 + 12 + 128},
    [KURA_TYPE_Q5_K] = {"q5_k", 256, 2 + 2 + 12 + 32 + 128},
    [KURA_TYPE_Q6_K] = {"q6_k", 256, 128 + 64 + 16 + 2},
    [KURA_TYPE_Q8_K] = {"q8_k", 256, 4 + 256 + 2 * 16},
    [KURA_TYPE_I8] = {"i8", 1, 1},
    [KURA_TYPE_I16] = {"i16", 1, 2},
    [KURA_TYPE_I32] = {"i32", 1, 4},
    [KURA_TYPE_I64] = {"i64", 1, 8},
    [KURA_TYPE_F64] = {"f64", 1, 8},
    [KURA_TYPE_BF16] = {"bf16", 1, 2},
};

static const struct type_info *info(enum kura_type t)
{
    if ((unsigned)t >= KURA_TYPE__COUNT || !TYPES[t].name)
        return 0;
    return &TYPES[t];
}

int64_t kura_type_block_len(enum kura_type t)
{
    const struct type_info *i = info(t);
    return i ? i->block_len : 0;
}

size_t kura_type_block_bytes(enum kura_type t)
{
    const struct type_info *i = info(t);
    return i ? i->block_bytes : 0;
}

const char *kura_type_name(enum kura_type t)
{
    const struct type_info *i = info(t);
    return i ? i->name : 0;
}

int kura_type_from_name(const char *name)
{
    for (int t = 0; t < KURA_TYPE__COUNT; t++)
        if (TYPES[t].name && strcasecmp(TYPES[t].name, name) == 0)
            return t;
    return -1;
}
