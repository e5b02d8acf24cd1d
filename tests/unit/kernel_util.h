/* Helpers shared by the kernel tests: a deterministic RNG and row utilities. */
#ifndef KURA_TEST_KERNEL_UTIL_H
#define KURA_TEST_KERNEL_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/kernels.h"

struct rng {
    uint64_t s;
};

static inline uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double rng_unif(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline float rng_gauss(struct rng *r)
{
    double u1 = rng_unif(r), u2 = rng_unif(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Gaussian data with occasional outliers and per-32-block scale changes, like real weights. */
static inline void fill_random(struct rng *r, float *x, int64_t n, float scale)
{
    float s = scale;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0)
            s = scale * (float)(0.25 + 1.5 * rng_unif(r));
        float v = rng_gauss(r) * s;
        if (rng_next(r) % 97 == 0)
            v *= 4.0f;
        x[i] = v;
    }
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

/* Quantizes n floats to type t (needs from_float). Returns a malloc'ed row. */
static inline void *quantize_row(const struct kura_type_traits *tr, const float *x, int64_t n)
{
    void *q = xmalloc(kura_row_bytes(tr->type, n));
    tr->from_float(x, q, n);
    return q;
}

/* Relative RMS error of a against reference b: rms(a - b) / rms(b). */
static inline double rel_rmse(const float *a, const float *b, int64_t n)
{
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return r > 0 ? sqrt(e / r) : sqrt(e);
}

#endif
