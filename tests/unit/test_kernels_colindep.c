/* Column (and row) independence of every gemm kernel on every ISA the CPU has: the result for
 * one (row, column) pair must be bit-identical whatever the number of rows and columns in the
 * call and wherever the pair sits in it. The continuous-batching server relies on this: a
 * request's greedy output must not depend on which other requests share its decode step.
 * As kernels.h states, this holds from the kernel's uniform_cols columns on (fewer may take
 * another path, e.g. the float types' reference single-row order); the batch-invariant mode
 * of the forward pass pads such calls, so shapes below uniform_cols are not compared. */
#include <string.h>

#include "kernel_util.h"
#include "test.h"

static const enum kura_type TYPES[] = {
    KURA_TYPE_F32,  KURA_TYPE_F16,  KURA_TYPE_BF16, KURA_TYPE_Q8_0, KURA_TYPE_Q4_0,
    KURA_TYPE_Q4_1, KURA_TYPE_Q5_0, KURA_TYPE_Q5_1, KURA_TYPE_Q4_K, KURA_TYPE_Q5_K,
    KURA_TYPE_Q6_K,
};

enum { N = 512, NR = 79, NC = 21 }; /* NR: above the legacy kernels' 72-row pass */

int main(void)
{
    struct rng r = {7};
    float *wf = xmalloc(sizeof(float) * N * NR), *af = xmalloc(sizeof(float) * N * NC);
    fill_random(&r, wf, (int64_t)N * NR, 0.05f);
    fill_random(&r, af, (int64_t)N * NC, 1.0f);
    float *ref = xmalloc(sizeof(float) * NR * NC), *out = xmalloc(sizeof(float) * NR * NC);
    for (int isa = 0; isa < KURA_ISA__COUNT; isa++) {
        if (!kura_isa_supported((enum kura_isa)isa))
            continue;
        for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
            const struct kura_type_traits *tr = kura_type_traits_isa(TYPES[ti], (enum kura_isa)isa);
            const struct kura_type_traits *ta =
                tr ? kura_type_traits_isa(tr->vec_dot_type, (enum kura_isa)isa) : NULL;
            if (!tr || !tr->gemm || !ta || !ta->from_float || !tr->quantize)
                continue;
            size_t wrb = kura_row_bytes(tr->type, N), arb = kura_row_bytes(ta->type, N);
            uint8_t *w = xmalloc(wrb * NR), *a = xmalloc(arb * NC);
            for (int i = 0; i < NR; i++)
                tr->quantize(wf + (size_t)i * N, w + (size_t)i * wrb, N);
            for (int c = 0; c < NC; c++)
                ta->from_float(af + (size_t)c * N, a + (size_t)c * arb, N);
            /* reference: every (row, column) alone, padded to uniform_cols copies as the
             * forward pass does */
            int uc = tr->uniform_cols > 1 ? tr->uniform_cols : 1;
            CHECKF(uc <= 4, "%s: uniform_cols %d over the forward pass's padding limit",
                   kura_type_name(tr->type), uc);
            uint8_t *pad = xmalloc((size_t)uc * arb);
            for (int i = 0; i < NR; i++)
                for (int c = 0; c < NC; c++) {
                    float o[4];
                    for (int k = 0; k < uc; k++)
                        memcpy(pad + (size_t)k * arb, a + (size_t)c * arb, arb);
                    tr->gemm(N, 1, uc, w + (size_t)i * wrb, wrb, pad, arb, o, 1);
                    ref[(size_t)c * NR + i] = o[0];
                }
            free(pad);
            int bad = 0;
            /* all sub-rectangles [r0, r0+nr) x [c0, c0+nc) from a spread of shapes */
            static const int shapes[][2] = {{NR, NC}, {1, NC}, {NR, 1}, {3, 5}, {8, 8},
                                            {5, 17}, {16, 2}, {7, 9}, {4, 4}, {2, 21}};
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                int nr = shapes[si][0], nc = shapes[si][1];
                if (nc < uc)
                    continue;
                for (int r0 = 0; r0 + nr <= NR; r0 += nr == NR ? 1 : 3)
                    for (int c0 = 0; c0 + nc <= NC; c0 += nc == NC ? 1 : 4) {
                        tr->gemm(N, nr, nc, w + (size_t)r0 * wrb, wrb, a + (size_t)c0 * arb,
                                 arb, out, NR);
                        for (int c = 0; c < nc; c++)
                            for (int i = 0; i < nr; i++) {
                                float got = out[(size_t)c * NR + i];
                                float want = ref[(size_t)(c0 + c) * NR + r0 + i];
                                if (memcmp(&got, &want, sizeof got) != 0 && bad++ < 3)
                                    printf("%s/%s: %dx%d at (%d,%d): row %d col %d: %.9g vs "
                                           "%.9g alone\n",
                                           kura_isa_name((enum kura_isa)isa),
                                           kura_type_name(tr->type), nr, nc, r0, c0, r0 + i,
                                           c0 + c, (double)got, (double)want);
                            }
                    }
            }
            CHECKF(bad == 0, "%s/%s: gemm results depend on the batch shape (%d mismatches)",
                   kura_isa_name((enum kura_isa)isa), kura_type_name(tr->type), bad);
            /* the uniform variant (batch-invariant products of fewer columns) sums every
             * shape as gemm does from uniform_cols columns on */
            if (tr->gemm_uniform) {
                int ubad = 0;
                for (int nc = 1; nc <= uc + 1 && nc <= NC; nc++)
                    for (int r0 = 0; r0 + 5 <= NR; r0 += 7) {
                        tr->gemm_uniform(N, 5, nc, w + (size_t)r0 * wrb, wrb, a, arb, out, NR);
                        for (int c = 0; c < nc; c++)
                            for (int i = 0; i < 5; i++)
                                if (memcmp(&out[(size_t)c * NR + i],
                                           &ref[(size_t)c * NR + r0 + i], sizeof(float)) != 0)
                                    ubad++;
                    }
                CHECKF(ubad == 0, "%s/%s: gemm_uniform differs from the uniform sums (%d)",
                       kura_isa_name((enum kura_isa)isa), kura_type_name(tr->type), ubad);
            }
            free(w);
            free(a);
        }
    }
    free(wf);
    free(af);
    free(ref);
    free(out);
    return test_finish();
}
