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

/* The AVX-512 attention against the scalar loop: several group sizes (also above the 8 heads
 * of one pass), head dimensions, key counts around the 16-key and 64-key blocks, and keys
 * that raise the running maximum often (rising scores) or rarely. */
typedef bool (*attend_fn)(const uint16_t *, int, int, const uint16_t *, const uint16_t *, size_t,
                          int32_t, float, float *);

static void test_attend(const char *name, attend_fn attend)
{
    enum { MAXG = 11, MAXHD = 128, MAXP = 200, KVS = MAXHD * 3 };
    uint16_t *q = malloc(MAXG * MAXHD * 2), *k = malloc(MAXP * KVS * 2);
    uint16_t *v = malloc(MAXP * KVS * 2), acc[MAXHD];
    float *o1 = malloc(MAXG * MAXHD * 4), *o2 = malloc(MAXG * MAXHD * 4);
    static const int ngs[] = {1, 4, 7, 8, 11}, hds[] = {64, 128};
    static const int nps[] = {1, 2, 15, 16, 17, 63, 64, 65, 130, 200};
    int cases = 0;
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 10; c++) {
                int ng = ngs[a], hd = hds[b], np = nps[c];
                float qr = c % 3 == 0 ? 8.0f : 1.0f;
                for (int i = 0; i < ng * hd; i++)
                    q[i] = kura_fp32_to_fp16(frand(-qr, qr));
                for (int p = 0; p < np; p++)
                    for (int d = 0; d < hd; d++) {
                        float rise = (a + c) % 2 ? 0.02f * (float)p : 0.0f;
                        k[p * KVS + d] = kura_fp32_to_fp16(frand(-1, 1) + rise);
                        v[p * KVS + d] = kura_fp32_to_fp16(frand(-4, 4));
                    }
                float scale = 1.0f / sqrtf((float)hd);
                kura_attend_ref(q, ng, hd, k, v, KVS, np, scale, o1, acc);
                CHECK(attend(q, ng, hd, k, v, KVS, np, scale, o2));
                CHECKF(memcmp(o1, o2, (size_t)ng * hd * 4) == 0,
                       "attend %s differs: %d heads, head_dim %d, %d keys", name, ng, hd, np);
                cases++;
            }
    CHECK(!attend(q, 1, 80, k, v, KVS, 4, 0.1f, o2)); /* a shape it leaves alone */
    printf("attend %s: %d cases compared\n", name, cases);
    free(q);
    free(k);
    free(v);
    free(o1);
    free(o2);
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
    test_attend("avx2", kura_attend_avx2);
    if (kura_isa_supported(KURA_ISA_AVX512))
        test_attend("avx512", kura_attend_avx512);
    else
        printf("attend avx512: this CPU has no AVX-512, skipped\n");
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
