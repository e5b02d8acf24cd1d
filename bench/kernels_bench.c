/* Micro benchmark of the compute kernels (not a test): for each type and each ISA the CPU
 * supports, the weight bytes per second streamed by gemm over a matrix (decode: one
 * activation column; prefill: 16 columns), for a matrix that fits in L2 and one
 * that does not; and the multiply-adds per second of a prefill-sized gemm (128 columns over a
 * 1024-row matrix).
 *   usage: kernels_bench [MiB of the large matrix, default 256] [TYPE ...] (default: all) */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

/* CPU time of this thread: robust to other processes time-sharing the cores */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const enum kura_type TYPES[] = {KURA_TYPE_F32,  KURA_TYPE_F16,  KURA_TYPE_BF16,
                                       KURA_TYPE_Q8_0, KURA_TYPE_Q4_0, KURA_TYPE_Q4_1,
                                       KURA_TYPE_Q5_0, KURA_TYPE_Q5_1, KURA_TYPE_Q2_K,
                                       KURA_TYPE_Q3_K, KURA_TYPE_Q4_K, KURA_TYPE_Q5_K,
                                       KURA_TYPE_Q6_K};

static double time_gemm(const struct kura_type_traits *t, int64_t n, int64_t nr, int64_t nc,
                        const char *x, const char *y, float *out, double min_s)
{
    size_t rb = kura_row_bytes(t->type, n), yb = kura_row_bytes(t->vec_dot_type, n);
    double best = 1e30, total = 0;
    int reps = 0;
    while (total < min_s || reps < 3) {
        double t0 = now();
        t->gemm(n, nr, nc, x, rb, y, yb, out, (size_t)nr);
        double dt = now() - t0;
        best = dt < best ? dt : best;
        total += dt;
        reps++;
    }
    return best;
}

int main(int argc, char **argv)
{
    int64_t big_mib = argc > 1 ? strtoll(argv[1], NULL, 10) : 256;
    if (big_mib < 1 || big_mib > 8192) {
        fprintf(stderr, "usage: kernels_bench [MiB 1..8192] [TYPE ...]\n");
        return 2;
    }
    kura_kernels_init();
    const int64_t n = 4096, nc = 16, nc_big = 128, nr_mid = 1024;
    printf("GB/s of weight bytes; decode = gemm with one column, prefill = gemm with %" PRId64
           " columns\n",
           nc);
    printf("%-6s %-7s %12s %12s %12s %12s %14s\n", "type", "isa", "L2 decode", "RAM decode",
           "L2 prefill", "RAM prefill", "GMAC/s gemm128");
    for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++) {
        const struct kura_type_traits *t0 = kura_type_traits_isa(TYPES[k], KURA_ISA_SCALAR);
        bool want = argc <= 2;
        for (int a = 2; a < argc; a++)
            want = want || strcmp(argv[a], kura_type_name(TYPES[k])) == 0;
        if (!want)
            continue;
        const struct kura_type_traits *ta = kura_type_traits_isa(t0->vec_dot_type,
                                                                 KURA_ISA_SCALAR);
        size_t rb = kura_row_bytes(TYPES[k], n), yb = kura_row_bytes(ta->type, n);
        int64_t nr_small = (int64_t)((512u << 10) / rb) & ~15;
        int64_t nr_big = (int64_t)(((size_t)big_mib << 20) / rb) & ~15;
        char *x = malloc(rb * (size_t)nr_big), *y = malloc(yb * (size_t)nc_big);
        float *f = malloc(sizeof(float) * (size_t)n), *out = malloc(sizeof(float) * (size_t)(nr_big * nc + nr_mid * nc_big));
        if (!x || !y || !f || !out) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        uint64_t s = 1;
        for (int64_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            f[i] = (float)((int64_t)(s >> 40) - (1 << 23)) / (float)(1 << 23);
        }
        for (int64_t r = 0; r < 64; r++)
            t0->from_float(f, x + (size_t)r * rb, n);
        for (int64_t r = 64; r < nr_big; r++) /* copies: quantizing 256 MiB would dominate */
            memcpy(x + (size_t)r * rb, x + (size_t)(r % 64) * rb, rb);
        for (int64_t c = 0; c < nc_big; c++)
            ta->from_float(f, y + (size_t)c * yb, n);
        for (int isa = 0; isa < KURA_ISA__COUNT; isa++) {
            const struct kura_type_traits *t = kura_type_traits_isa(TYPES[k], (enum kura_isa)isa);
            if (!t)
                continue;
            double min_s = isa == KURA_ISA_SCALAR ? 0.05 : 0.2;
            /* decode as the forward pass runs it: gemm with one column */
            double d_small = time_gemm(t, n, nr_small, 1, x, y, out, min_s);
            double d_big = time_gemm(t, n, nr_big, 1, x, y, out, min_s);
            double g_small = time_gemm(t, n, nr_small, nc, x, y, out, min_s);
            double g_big = time_gemm(t, n, nr_big, nc, x, y, out, min_s);
            double g_many = isa == KURA_ISA_SCALAR
                                ? 0
                                : time_gemm(t, n, nr_mid, nc_big, x, y, out, min_s);
            printf("%-6s %-7s %12.2f %12.2f %12.2f %12.2f %14.2f\n", kura_type_name(TYPES[k]),
                   kura_isa_name((enum kura_isa)isa), (double)(rb * (size_t)nr_small) / d_small / 1e9,
                   (double)(rb * (size_t)nr_big) / d_big / 1e9,
                   (double)(rb * (size_t)nr_small) / g_small / 1e9,
                   (double)(rb * (size_t)nr_big) / g_big / 1e9,
                   g_many > 0 ? (double)n * (double)nr_mid * (double)nc_big / g_many / 1e9 : 0.0);
            fflush(stdout);
        }
        free(x);
        free(y);
        free(f);
        free(out);
    }
    return 0;
}
