/* K-quant kernels for AVX-512 VL + VNNI (see kq_x86.h): dpbusd on 256-bit vectors and a
 * 16-row gemm panel on 512-bit vectors, KQ_CZ columns per pass (KQ_C: the column tile of the
 * generic 256-bit micro-kernel, which the AVX-512 packed gemm does not use). */
#define KQ_SFX(name) name##_avx512
#define KQ_VNNI 1
#define KQ_G 2
#define KQ_C 4
#define KQ_CZ 8
#include "kernels/kq_x86.h"

void kura_kernels_fill_kq_avx512(struct kura_type_traits table[KURA_TYPE__COUNT])
{
    kq_fill_avx512(table);
}
