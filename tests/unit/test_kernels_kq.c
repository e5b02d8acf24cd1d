/* The K-quant SIMD kernels (Q4_K, Q5_K, Q6_K x Q8_K; src/kernels/kq_x86.h) are bit-identical
 * with the scalar ones: vec_dot, and gemm on both of its paths (row dot products for few
 * columns, packed panels for many) over shapes that leave partial row panels and column tiles,
 * with a padded output stride whose gaps must stay untouched. The one exception: Q6_K's
 * packed gemm sums each super-block before its float step, where the row dot product keeps the
 * reference engine's eight lanes; there the bound is 2e-6 of sum |x_i y_i|. Weights are quantized floats and
 * also raw random bytes (every level and 6-bit scale, negative Q6_K scales down to -128) with
 * sane f16 factors; activations include blocks at +-127 everywhere, where the int16
 * intermediate sums of the AVX2 path are largest. Exit 77 without a SIMD ISA. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernel_util.h"
#include "kernels/kernels.h"
#include "kernels/kernels_int.h"
#include "test.h"

static const enum kura_type TYPES[] = {KURA_TYPE_Q4_K, KURA_TYPE_Q5_K, KURA_TYPE_Q6_K};

/* Raw random super-blocks with finite, moderate f16 factors. */
static void random_blocks(struct rng *r, enum kura_type t, void *dst, int64_t nb)
{
    size_t bb = kura_type_block_bytes(t);
    unsigned char *p = dst;
    for (size_t i = 0; i < bb * (size_t)nb; i++)
        p[i] = (unsigned char)rng_next(r);
    for (int64_t i = 0; i < nb; i++) {
        unsigned char *b = p + bb * (size_t)i;
        uint16_t d = kura_fp32_to_fp16((float)(0.001 + 0.01 * rng_unif(r)));
        uint16_t dm = kura_fp32_to_fp16((float)(0.001 + 0.01 * rng_unif(r)));
        if (t == KURA_TYPE_Q6_K) {
            memcpy(b + offsetof(struct blk_q6_k, d), &d, 2);
        } else {
            memcpy(b, &d, 2);
            memcpy(b + 2, &dm, 2);
        }
    }
}

/* Activation rows: quantized random floats, or (kind 1, 2) every level +127 / alternating. */
static void make_acts(struct rng *r, void *dst, int64_t n, int kind)
{
    const struct kura_type_traits *q8 = kura_type_traits_isa(KURA_TYPE_Q8_K, KURA_ISA_SCALAR);
    float *f = xmalloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        f[i] = kind == 0 ? rng_gauss(r) : kind == 1 ? 1.0f : ((i / 4) % 2 ? 1.0f : -1.0f);
    q8->from_float(f, dst, n);
    free(f);
}

static int same(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (a == 0 && b == 0);
}

static void test_type(enum kura_isa isa, enum kura_type t, struct rng *r)
{
    const struct kura_type_traits *xs = kura_type_traits_isa(t, KURA_ISA_SCALAR);
    const struct kura_type_traits *xv = kura_type_traits_isa(t, isa);
    static const int64_t NBS[] = {1, 3, 9, 16, 33}; /* 33: more than a panel buffer */
    enum { NR = 35, NC = 70, STRIDE = 37 };
    for (size_t li = 0; li < sizeof NBS / sizeof NBS[0]; li++) {
        int64_t n = NBS[li] * QK_K;
        size_t xrb = kura_row_bytes(t, n), yrb = kura_row_bytes(KURA_TYPE_Q8_K, n);
        char *x = xmalloc(xrb * NR), *y = xmalloc(yrb * NC);
        float *f = xmalloc(sizeof(float) * (size_t)n);
        for (int rr = 0; rr < NR; rr++) {
            if (rr % 3 == 2) {
                random_blocks(r, t, x + (size_t)rr * xrb, NBS[li]);
            } else {
                fill_random(r, f, n, 1.0f);
                xs->from_float(f, x + (size_t)rr * xrb, n);
            }
        }
        for (int c = 0; c < NC; c++)
            make_acts(r, y + (size_t)c * yrb, n, c % 4 == 3 ? 1 : c % 4 == 1 ? 2 : 0);
        float ref[NR][NC];
        double mag[NR][NC];
        {
            const struct kura_type_traits *q8 = kura_type_traits_isa(KURA_TYPE_Q8_K,
                                                                     KURA_ISA_SCALAR);
            float *fx = xmalloc(sizeof(float) * (size_t)n), *fy = xmalloc(sizeof(float) * (size_t)n);
            for (int rr = 0; rr < NR; rr++) {
                xs->to_float(x + (size_t)rr * xrb, fx, n);
                for (int c = 0; c < NC; c++) {
                    q8->to_float(y + (size_t)c * yrb, fy, n);
                    double m = 0;
                    for (int64_t i = 0; i < n; i++)
                        m += fabs((double)fx[i] * fy[i]);
                    mag[rr][c] = m;
                }
            }
            free(fx);
            free(fy);
        }
        int ok = 1;
        for (int rr = 0; rr < NR; rr++)
            for (int c = 0; c < NC; c++) {
                ref[rr][c] = xs->vec_dot(n, x + (size_t)rr * xrb, y + (size_t)c * yrb);
                float v = xv->vec_dot(n, x + (size_t)rr * xrb, y + (size_t)c * yrb);
                if (!same(v, ref[rr][c]) && ok) {
                    ok = 0;
                    CHECKF(0, "%s %s vec_dot n=%lld row %d col %d: %.9g vs scalar %.9g",
                           kura_isa_name(isa), kura_type_name(t), (long long)n, rr, c, v,
                           ref[rr][c]);
                }
            }
        static const int shapes[][2] = {{1, 1},  {7, 2},  {8, 3},  {16, 4}, {17, 5},
                                        {35, 7}, {24, 8}, {9, 9},  {33, 11}, {3, 10}, {19, 70}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int nr = shapes[s][0], nc = shapes[s][1];
            float *out = xmalloc(sizeof(float) * NC * STRIDE);
            for (int i = 0; i < NC * STRIDE; i++)
                out[i] = -777.0f;
            /* rows from an offset: the panels need not start at row 0 of a matrix */
            int r0 = NR - nr;
            xv->gemm(n, nr, nc, x + (size_t)r0 * xrb, xrb, y, yrb, out, STRIDE);
            int gaps_ok = 1, vals_ok = 1;
            for (int c = 0; c < NC; c++)
                for (int rr = 0; rr < STRIDE; rr++) {
                    float o = out[c * STRIDE + rr];
                    if (c >= nc || rr >= nr)
                        gaps_ok &= o == -777.0f;
                    else if (!same(o, ref[r0 + rr][c]) && vals_ok &&
                             !(t == KURA_TYPE_Q6_K && nc >= 3 &&
                               fabs((double)o - ref[r0 + rr][c]) <= 2e-6 * mag[r0 + rr][c])) {
                        vals_ok = 0;
                        CHECKF(0, "%s %s gemm n=%lld %dx%d row %d col %d: %.9g vs scalar %.9g",
                               kura_isa_name(isa), kura_type_name(t), (long long)n, nr, nc, rr,
                               c, o, ref[r0 + rr][c]);
                    }
                }
            CHECKF(gaps_ok, "%s %s gemm %dx%d wrote outside its tile", kura_isa_name(isa),
                   kura_type_name(t), nr, nc);
            free(out);
        }
        free(x);
        free(y);
        free(f);
    }
}

int main(void)
{
    kura_kernels_init();
    int ran = 0;
    for (int isa = KURA_ISA_AVX2; isa < KURA_ISA__COUNT; isa++) {
        if (!kura_isa_supported((enum kura_isa)isa)) {
            printf("skip: %s not supported by this CPU\n", kura_isa_name((enum kura_isa)isa));
            continue;
        }
        struct rng r = {4242 + (uint64_t)isa};
        for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++)
            test_type((enum kura_isa)isa, TYPES[k], &r);
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "skip: no SIMD ISA (avx2, avx512) supported by this CPU\n");
        return TEST_SKIP;
    }
    return test_finish();
}
