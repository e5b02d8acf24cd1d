/* Kernel dispatch: one traits table per ISA, built once; the selected one serves
 * kura_type_traits. */
#include "kernels/kernels.h"

#include <cpuid.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels_int.h"

static struct kura_type_traits tables[KURA_ISA__COUNT][KURA_TYPE__COUNT];
static bool isa_ok[KURA_ISA__COUNT];
static enum kura_isa selected = KURA_ISA_SCALAR;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Features some compilers' __builtin_cpu_supports does not know (clang 14: f16c, avx512bf16),
 * read from CPUID directly. */
static bool cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

static bool cpu_has_avx512bf16(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7)
        return false;
    __cpuid_count(7, 1, a, b, c, d);
    return (a & (1u << 5)) != 0;
}

static void detect(void)
{
    __builtin_cpu_init();
    isa_ok[KURA_ISA_SCALAR] = true;
    /* libgcc also checks that the OS saves the AVX / AVX-512 register state (XGETBV). */
    isa_ok[KURA_ISA_AVX2] = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                            cpu_has_f16c();
    isa_ok[KURA_ISA_AVX512] = isa_ok[KURA_ISA_AVX2] && __builtin_cpu_supports("avx512f") &&
                              __builtin_cpu_supports("avx512bw") &&
                              __builtin_cpu_supports("avx512vl") &&
                              __builtin_cpu_supports("avx512dq") &&
                              __builtin_cpu_supports("avx512vnni") &&
                              cpu_has_avx512bf16();
}

static void do_init(void)
{
    detect();
    kura_kernels_fill_scalar(tables[KURA_ISA_SCALAR]);
    memcpy(tables[KURA_ISA_AVX2], tables[KURA_ISA_SCALAR], sizeof tables[KURA_ISA_SCALAR]);
    if (isa_ok[KURA_ISA_AVX2])
        kura_kernels_fill_avx2(tables[KURA_ISA_AVX2]);
    memcpy(tables[KURA_ISA_AVX512], tables[KURA_ISA_AVX2], sizeof tables[KURA_ISA_AVX2]);
    if (isa_ok[KURA_ISA_AVX512])
        kura_kernels_fill_avx512(tables[KURA_ISA_AVX512]);

    enum kura_isa best = isa_ok[KURA_ISA_AVX512] ? KURA_ISA_AVX512
                         : isa_ok[KURA_ISA_AVX2] ? KURA_ISA_AVX2
                                                 : KURA_ISA_SCALAR;
    selected = best;
    const char *env = getenv("KURA_ISA");
    if (env && *env) {
        int want = -1;
        for (int i = 0; i < KURA_ISA__COUNT; i++)
            if (strcmp(env, kura_isa_name((enum kura_isa)i)) == 0)
                want = i;
        if (want < 0)
            fprintf(stderr, "kura: warning: unknown KURA_ISA '%s' (scalar|avx2|avx512); using %s\n",
                    env, kura_isa_name(best));
        else if (!isa_ok[want])
            fprintf(stderr, "kura: warning: KURA_ISA=%s not supported by this CPU; using %s\n",
                    env, kura_isa_name(best));
        else
            selected = (enum kura_isa)want;
    }
}

void kura_kernels_init(void)
{
    pthread_once(&init_once, do_init);
}

enum kura_isa kura_kernels_isa(void)
{
    kura_kernels_init();
    return selected;
}

bool kura_isa_supported(enum kura_isa isa)
{
    kura_kernels_init();
    return (unsigned)isa < KURA_ISA__COUNT && isa_ok[isa];
}

const char *kura_isa_name(enum kura_isa isa)
{
    switch (isa) {
    case KURA_ISA_SCALAR:
        return "scalar";
    case KURA_ISA_AVX2:
        return "avx2";
    case KURA_ISA_AVX512:
        return "avx512";
    default:
        return "?";
    }
}

const struct kura_type_traits *kura_type_traits_isa(enum kura_type t, enum kura_isa isa)
{
    kura_kernels_init();
    if ((unsigned)t >= KURA_TYPE__COUNT || (unsigned)isa >= KURA_ISA__COUNT || !isa_ok[isa])
        return NULL;
    const struct kura_type_traits *tr = &tables[isa][t];
    return tr->to_float ? tr : NULL;
}

const struct kura_type_traits *kura_type_traits(enum kura_type t)
{
    return kura_type_traits_isa(t, kura_kernels_isa());
}
