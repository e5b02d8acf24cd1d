/* Every SIMD kernel against its scalar twin, for each ISA this CPU supports:
 *  - activation quantizers (Q8_0, Q8_1, Q8_K, F16, BF16 from_float): bit-identical output,
 *    including rounding ties and odd lengths;
 *  - vec_dot on random data and odd shapes: |simd - scalar| <= tol * sum |x_i y_i| with
 *    tol = 2e-6 for the integer-dot types (only the float summation order differs),
 *    2e-6 for F32/F16, 1e-4 for BF16 (vdpbf16ps rounds each pair sum);
 *  - gemm for odd tile shapes against the scalar vec_dot (same tolerances) and against its
 *    own vec_dot (1e-6), with a padded output stride whose gaps must stay untouched;
 *  - for the types whose SIMD kernels follow the scalar summation order (F32, F16 and the
 *    legacy quants Q4_0 ... Q8_0), vec_dot and gemm equal the scalar ones bit for bit.
 * Exit 77 when the CPU has no SIMD ISA that kura uses. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernel_util.h"
#include "kernels/kernels.h"
#include "test.h"

static const enum kura_type TYPES[] = {
    KURA_TYPE_F32,  KURA_TYPE_F16,  KURA_TYPE_BF16, KURA_TYPE_Q4_0, KURA_TYPE_Q4_1,
    KURA_TYPE_Q5_0, KURA_TYPE_Q5_1, KURA_TYPE_Q8_0, KURA_TYPE_Q8_1, KURA_TYPE_Q2_K,
    KURA_TYPE_Q3_K, KURA_TYPE_Q4_K, KURA_TYPE_Q5_K, KURA_TYPE_Q6_K, KURA_TYPE_Q8_K,
};
#define N_TYPES (int)(sizeof TYPES / sizeof TYPES[0])

/* SIMD == scalar bit for bit (same float order). */
static bool exact_type(enum kura_type t)
{
    return t == KURA_TYPE_F32 || t == KURA_TYPE_F16 || t == KURA_TYPE_Q4_0 ||
           t == KURA_TYPE_Q4_1 || t == KURA_TYPE_Q5_0 || t == KURA_TYPE_Q5_1 ||
           t == KURA_TYPE_Q8_0;
}

static double tol_for(enum kura_type t)
{
    return t == KURA_TYPE_BF16 ? 1e-4 : 2e-6;
}

/* Data with exact rounding ties for the activation quantizers: blocks whose extreme is 127
 * (so d = 1 for Q8_0, iscale = -1 for Q8_K) and values k + 0.5. */
static void fill_ties(struct rng *r, float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0)
            x[i] = (rng_next(r) & 1) ? 127.0f : -127.0f;
        else
            x[i] = (float)((int)(rng_next(r) % 200) - 100) + ((rng_next(r) & 1) ? 0.5f : 0.0f);
    }
}

static void test_quantizers(enum kura_isa isa)
{
    static const enum kura_type ACT[] = {KURA_TYPE_Q8_0, KURA_TYPE_Q8_1, KURA_TYPE_Q8_K,
                                         KURA_TYPE_F16, KURA_TYPE_BF16};
    struct rng r = {2024 + (uint64_t)isa};
    for (size_t a = 0; a < sizeof ACT / sizeof ACT[0]; a++) {
        const struct kura_type_traits *ts = kura_type_traits_isa(ACT[a], KURA_ISA_SCALAR);
        const struct kura_type_traits *tv = kura_type_traits_isa(ACT[a], isa);
        static const int64_t lens[] = {256, 512, 4096, 1, 7, 15, 17, 33, 100, 257};
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            int64_t n = lens[l];
            if (n % ts->block_len)
                continue;
            for (int kind = 0; kind < 4; kind++) {
                float *x = xmalloc(sizeof(float) * (size_t)n);
                if (kind == 0)
                    fill_random(&r, x, n, 1.0f);
                else if (kind == 1)
                    fill_ties(&r, x, n);
                else if (kind == 2)
                    for (int64_t i = 0; i < n; i++) /* zeros, tiny and huge values */
                        x[i] = (i % 3 == 0) ? 0.0f : (i % 3 == 1) ? 1e-30f * (float)i : 3e4f;
                else
                    fill_random(&r, x, n, 1e-3f);
                size_t bytes = kura_row_bytes(ACT[a], n);
                unsigned char *qs = xmalloc(bytes), *qv = xmalloc(bytes);
                memset(qs, 0xaa, bytes);
                memset(qv, 0x55, bytes);
                ts->from_float(x, qs, n);
                tv->from_float(x, qv, n);
                CHECKF(memcmp(qs, qv, bytes) == 0, "%s %s from_float n=%lld kind=%d differs",
                       kura_isa_name(isa), kura_type_name(ACT[a]), (long long)n, kind);
                free(x);
                free(qs);
                free(qv);
            }
        }
    }
}

static void test_dots(enum kura_isa isa)
{
    struct rng r = {77 + (uint64_t)isa};
    for (int k = 0; k < N_TYPES; k++) {
        enum kura_type t = TYPES[k];
        const struct kura_type_traits *xs = kura_type_traits_isa(t, KURA_ISA_SCALAR);
        const struct kura_type_traits *xv = kura_type_traits_isa(t, isa);
        const struct kura_type_traits *ys = kura_type_traits_isa(xs->vec_dot_type,
                                                                 KURA_ISA_SCALAR);
        CHECK(xv->vec_dot_type == xs->vec_dot_type && xv->gemm && xv->vec_dot);
        int64_t bl = xs->block_len;
        /* row lengths: 1..many blocks; for the float types also odd lengths (tails) */
        int64_t lens[] = {bl, 2 * bl, 3 * bl, 5 * bl, 11 * bl, 64 * bl, 1, 7, 15, 17, 33, 100};
        int n_lens = bl == 1 ? 12 : 6;
        if (bl == 1) {
            lens[4] = 4096;
            lens[5] = 4099;
        }
        for (int li = 0; li < n_lens; li++) {
            int64_t n = lens[li];
            /* up to 9 rows and 8 columns for gemm (every tile shape and remainder) */
            enum { NR = 9, NC = 8, STRIDE = 11 };
            size_t xrb = kura_row_bytes(t, n), yrb = kura_row_bytes(ys->type, n);
            char *qx = xmalloc(xrb * NR), *qy = xmalloc(yrb * NC);
            float *f = xmalloc(sizeof(float) * (size_t)n);
            double mag[NR][NC];
            float *fx[NR], *fy[NC];
            for (int rr = 0; rr < NR; rr++) {
                fx[rr] = xmalloc(sizeof(float) * (size_t)n);
                fill_random(&r, fx[rr], n, 1.0f);
                xs->from_float(fx[rr], qx + rr * xrb, n);
                xs->to_float(qx + rr * xrb, fx[rr], n);
            }
            for (int c = 0; c < NC; c++) {
                fy[c] = xmalloc(sizeof(float) * (size_t)n);
                fill_random(&r, f, n, 2.0f);
                ys->from_float(f, qy + c * yrb, n);
                ys->to_float(qy + c * yrb, fy[c], n);
            }
            for (int rr = 0; rr < NR; rr++)
                for (int c = 0; c < NC; c++) {
                    double m = 0;
                    for (int64_t i = 0; i < n; i++)
                        m += fabs((double)fx[rr][i] * fy[c][i]);
                    mag[rr][c] = m + 1e-30;
                }
            double tol = tol_for(t);
            double worst = 0;
            int n_inexact = 0;
            for (int rr = 0; rr < NR; rr++)
                for (int c = 0; c < NC; c++) {
                    float a = xs->vec_dot(n, qx + rr * xrb, qy + c * yrb);
                    float b = xv->vec_dot(n, qx + rr * xrb, qy + c * yrb);
                    worst = fmax(worst, fabs((double)a - b) / mag[rr][c]);
                    n_inexact += memcmp(&a, &b, sizeof a) != 0;
                }
            CHECKF(!exact_type(t) || n_inexact == 0, "%s %s vec_dot n=%lld: %d of %d outputs "
                   "differ from scalar", kura_isa_name(isa), kura_type_name(t), (long long)n,
                   n_inexact, NR * NC);
            CHECKF(worst <= tol, "%s %s vec_dot n=%lld: rel diff %.3e > %.1e", kura_isa_name(isa),
                   kura_type_name(t), (long long)n, worst, tol);

            /* gemm over several odd shapes */
            static const int shapes[][2] = {{1, 1}, {1, 6}, {7, 1}, {2, 4}, {4, 4}, {5, 3},
                                            {7, 6}, {3, 5}, {8, 1}, {9, 1}, {9, 8}, {4, 7}};
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                int nr = shapes[s][0], nc = shapes[s][1];
                float out[NC * STRIDE];
                for (int i = 0; i < NC * STRIDE; i++)
                    out[i] = -777.0f;
                xv->gemm(n, nr, nc, qx, xrb, qy, yrb, out, STRIDE);
                float out_s[NC * STRIDE];
                xs->gemm(n, nr, nc, qx, xrb, qy, yrb, out_s, STRIDE);
                double wv = 0, ws = 0;
                int gaps_ok = 1, g_inexact = 0;
                for (int c = 0; c < NC; c++)
                    for (int rr = 0; rr < STRIDE; rr++) {
                        float o = out[c * STRIDE + rr];
                        if (c >= nc || rr >= nr) {
                            gaps_ok &= o == -777.0f;
                            continue;
                        }
                        double own = xv->vec_dot(n, qx + rr * xrb, qy + c * yrb);
                        double ref = xs->vec_dot(n, qx + rr * xrb, qy + c * yrb);
                        g_inexact += memcmp(&o, &out_s[c * STRIDE + rr], sizeof o) != 0;
                        wv = fmax(wv, fabs(o - own) / mag[rr][c]);
                        ws = fmax(ws, fabs(o - ref) / mag[rr][c]);
                    }
                CHECKF(!exact_type(t) || g_inexact == 0, "%s %s gemm n=%lld %dx%d: %d outputs "
                       "differ from scalar", kura_isa_name(isa), kura_type_name(t), (long long)n,
                       nr, nc, g_inexact);
                CHECKF(gaps_ok, "%s %s gemm %dx%d wrote outside its tile", kura_isa_name(isa),
                       kura_type_name(t), nr, nc);
                CHECKF(wv <= 1e-6 && ws <= tol,
                       "%s %s gemm n=%lld %dx%d: vs vec_dot %.3e, vs scalar %.3e",
                       kura_isa_name(isa), kura_type_name(t), (long long)n, nr, nc, wv, ws);
            }
            for (int rr = 0; rr < NR; rr++)
                free(fx[rr]);
            for (int c = 0; c < NC; c++)
                free(fy[c]);
            free(f);
            free(qx);
            free(qy);
        }
    }
}

/* Extreme levels: weights at the ends of their grids and activations at +-127, where the
 * int16 intermediate sums of the SIMD paths are largest. */
static void test_extremes(enum kura_isa isa)
{
    const int64_t n = 1024;
    float *x = xmalloc(sizeof(float) * n), *y = xmalloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) {
        x[i] = (i % 2) ? 1.0f : -1.0f;
        y[i] = (i % 4 < 2) ? 1.0f : -1.0f;
    }
    for (int k = 0; k < N_TYPES; k++) {
        const struct kura_type_traits *xs = kura_type_traits_isa(TYPES[k], KURA_ISA_SCALAR);
        const struct kura_type_traits *xv = kura_type_traits_isa(TYPES[k], isa);
        const struct kura_type_traits *ys = kura_type_traits_isa(xs->vec_dot_type,
                                                                 KURA_ISA_SCALAR);
        for (int sign = 0; sign < 2; sign++) {
            for (int64_t i = 0; i < n; i++)
                y[i] = sign ? -fabsf(y[i]) : fabsf(y[i]) * ((i % 4 < 2) ? 1.0f : -1.0f);
            void *qx = quantize_row(xs, x, n), *qy = quantize_row(ys, y, n);
            float a = xs->vec_dot(n, qx, qy), b = xv->vec_dot(n, qx, qy);
            CHECKF(fabsf(a - b) <= 1e-4f * (float)n, "%s %s extremes: %g vs %g",
                   kura_isa_name(isa), kura_type_name(TYPES[k]), a, b);
            free(qx);
            free(qy);
        }
    }
    free(x);
    free(y);
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
        printf("testing %s against scalar\n", kura_isa_name((enum kura_isa)isa));
        test_quantizers((enum kura_isa)isa);
        test_dots((enum kura_isa)isa);
        test_extremes((enum kura_isa)isa);
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "skip: no SIMD ISA (avx2, avx512) supported by this CPU\n");
        return TEST_SKIP;
    }
    return test_finish();
}
