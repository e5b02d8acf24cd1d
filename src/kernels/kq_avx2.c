/* K-quant kernels for AVX2 + FMA + F16C (see kq_x86.h): an 8-row x 4-column gemm tile in the
 * 16 vector registers. */
#define KQ_SFX(name) name##_avx2
#define KQ_VNNI 0
#define KQ_G 1
#define KQ_C 4
#include "kernels/kq_x86.h"

void kura_kernels_fill_kq_avx2(struct kura_type_traits table[KURA_TYPE__COUNT])
{
    kq_fill_avx2(table);
}
