/* The SIMD forward-pass helpers (attention's f16 accumulator, SwiGLU) must agree bit for bit
 * with the scalar ones on random data, including large, tiny and negative values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kernels/kernels.h"
#include "model/fwd_simd.h"
#include "test.h"

static uint64_t rng = 88172645463325252ull;
static float frand(float lo, float hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (float)(rng >> 40) / (float)(1 << 24);
}

int main(void)
{
    if (!kura_isa_supported(KURA_ISA_AVX2)) {
        printf("SKIP: this CPU has no AVX2\n");
        return 77;
    }
    const struct kura_fwd_simd *sc = &kura_fwd_simd_scalar, *sv = &kura_fwd_simd_avx2;
    enum { N = 77 };
    uint16_t a1[N], a2[N], v[N];
    for (int rep = 0; rep < 2000; rep++) {
        float range = rep % 3 == 0 ? 60000.0f : rep % 3 == 1 ? 4.0f : 1e-4f;
        for (int i = 0; i < N; i++) {
            a1[i] = a2[i] = kura_fp32_to_fp16(frand(-range, range));
            v[i] = kura_fp32_to_fp16(frand(-range, range));
        }
        float s = frand(0.0f, 2.0f);
        int n = 1 + rep % N;
        sc->f16_axpy(a1, v, n, s);
        sv->f16_axpy(a2, v, n, s);
        CHECKF(memcmp(a1, a2, sizeof a1) == 0, "f16_axpy differs (rep %d)", rep);
        sc->f16_scale(a1, n, s);
        sv->f16_scale(a2, n, s);
        CHECKF(memcmp(a1, a2, sizeof a1) == 0, "f16_scale differs (rep %d)", rep);
    }
    enum { M = 4096 };
    float *g = malloc(M * sizeof *g), *u = malloc(M * sizeof *u);
    float *h1 = malloc(M * sizeof *h1), *h2 = malloc(M * sizeof *h2);
    for (int i = 0; i < M; i++) {
        float r = i < 64 ? 300.0f : i < 128 ? 1e-3f : 20.0f; /* saturating, tiny, typical */
        g[i] = frand(-r, r);
        u[i] = frand(-3, 3);
    }
    g[0] = 0.0f;
    g[1] = -0.0f;
    g[2] = 88.7f;
    g[3] = -88.7f;
    g[4] = 135.0f;
    g[5] = -135.0f;
    sc->swiglu16(h1, g, u, M);
    sv->swiglu16(h2, g, u, M);
    int bad = 0;
    for (int i = 0; i < M; i++)
        if (memcmp(&h1[i], &h2[i], sizeof(float)) != 0 && bad++ < 5)
            printf("swiglu[%d] g=%a: scalar %a simd %a\n", i, (double)g[i], (double)h1[i],
                   (double)h2[i]);
    CHECKF(bad == 0, "swiglu16 differs at %d elements", bad);
    free(g);
    free(u);
    free(h1);
    free(h2);
    return test_finish();
}
