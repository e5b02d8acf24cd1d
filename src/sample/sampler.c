/* Samplers and log-probabilities. See include/kura/sample.h for the exact semantics. */
#include "kura/sample.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/limits.h"

/* First round of the top-p search when no top-k has narrowed the candidates: most nucleus
 * masses are reached within a few hundred tokens, so a full sort of 150k is rarely needed. */
#define TOP_P_FIRST_ROUND 256

struct kura_sampler {
    struct kura_sample_params p;
    int32_t n_vocab;
    uint64_t seed;    /* effective seed */
    uint64_t rng[4];  /* xoshiro256** state */

    int32_t *hist;    /* (hist_alloc) ring of accepted tokens */
    size_t hist_len;  /* tokens stored, <= hist_cap */
    size_t hist_head; /* next slot to overwrite once hist_len == hist_cap */
    size_t hist_alloc;
    size_t hist_cap;  /* penalty window in tokens; 0 = no history kept */

    uint32_t *counts; /* (n_vocab) scratch, all zero between calls; NULL until penalties run */
    float *a_logit;   /* (n_vocab) candidate scratch, two buffers */
    int32_t *a_id;
    float *b_logit;
    int32_t *b_id;
};

/* ---- PRNG: splitmix64 seeding, xoshiro256** ------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t st[4])
{
    uint64_t result = rotl64(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl64(st[3], 45);
    return result;
}

static void rng_seed(uint64_t st[4], uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        st[i] = splitmix64(&x);
}

/* Uniform double in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t st[4])
{
    return (double)(rng_next(st) >> 11) * 0x1.0p-53;
}

static uint64_t os_seed(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) == (ssize_t)sizeof v && v != KURA_SAMPLE_SEED_RANDOM)
        return v;
    /* getrandom unavailable: still different per run, never the sentinel */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&v;
    v = splitmix64(&x);
    return v == KURA_SAMPLE_SEED_RANDOM ? 0 : v;
}

/* ---- partial selection ------------------------------------------------------------------------ */

/* a is worse than b: lower logit, or equal logit and higher id. */
static inline bool worse(float la, int32_t ia, float lb, int32_t ib)
{
    return la < lb || (la == lb && ia > ib);
}

static void heap_sift_down(float *hl, int32_t *hi, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && worse(hl[l], hi[l], hl[w], hi[w]))
            w = l;
        if (r < n && worse(hl[r], hi[r], hl[w], hi[w]))
            w = r;
        if (w == i)
            return;
        float tl = hl[i];
        int32_t ti = hi[i];
        hl[i] = hl[w];
        hi[i] = hi[w];
        hl[w] = tl;
        hi[w] = ti;
        i = w;
    }
}

/* The k best of n entries (logit in_l[j], id in_i ? in_i[j] : j; NaN counts as -inf) into
 * out_l/out_i[0..k), best first. A min-heap of the k best so far: O(n log k). k <= n. */
static void select_top(const float *in_l, const int32_t *in_i, size_t n, size_t k, float *out_l,
                       int32_t *out_i)
{
    if (k == 0)
        return;
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
        float l = in_l[j];
        if (isnan(l))
            l = -INFINITY;
        int32_t id = in_i ? in_i[j] : (int32_t)j;
        if (m < k) {
            /* sift up */
            size_t i = m++;
            out_l[i] = l;
            out_i[i] = id;
            while (i > 0) {
                size_t par = (i - 1) / 2;
                if (!worse(out_l[i], out_i[i], out_l[par], out_i[par]))
                    break;
                float tl = out_l[i];
                int32_t ti = out_i[i];
                out_l[i] = out_l[par];
                out_i[i] = out_i[par];
                out_l[par] = tl;
                out_i[par] = ti;
                i = par;
            }
        } else if (worse(out_l[0], out_i[0], l, id)) {
            out_l[0] = l;
            out_i[0] = id;
            heap_sift_down(out_l, out_i, k, 0);
        }
    }
    /* heap sort: move the worst to the end repeatedly -> best first */
    for (size_t end = k; end > 1; end--) {
        float tl = out_l[0];
        int32_t ti = out_i[0];
        out_l[0] = out_l[end - 1];
        out_i[0] = out_i[end - 1];
        out_l[end - 1] = tl;
        out_i[end - 1] = ti;
        heap_sift_down(out_l, out_i, end - 1, 0);
    }
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

struct kura_sample_params kura_sample_params_default(void)
{
    struct kura_sample_params p = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .seed = KURA_SAMPLE_SEED_RANDOM,
    };
    return p;
}

static enum kura_err check_params(const struct kura_sample_params *p, struct kura_errbuf *eb)
{
    if (isnan(p->temperature))
        return kura_err_set(eb, KURA_ERR_INVALID, "sampler: temperature is NaN");
    if (isnan(p->top_p))
        return kura_err_set(eb, KURA_ERR_INVALID, "sampler: top_p is NaN");
    if (isnan(p->min_p))
        return kura_err_set(eb, KURA_ERR_INVALID, "sampler: min_p is NaN");
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return kura_err_set(eb, KURA_ERR_INVALID,
                            "sampler: repeat_penalty %g must be finite and > 0",
                            (double)p->repeat_penalty);
    if (!isfinite(p->frequency_penalty))
        return kura_err_set(eb, KURA_ERR_INVALID, "sampler: frequency_penalty %g is not finite",
                            (double)p->frequency_penalty);
    if (!isfinite(p->presence_penalty))
        return kura_err_set(eb, KURA_ERR_INVALID, "sampler: presence_penalty %g is not finite",
                            (double)p->presence_penalty);
    if (p->repeat_last_n < -1)
        return kura_err_set(eb, KURA_ERR_INVALID, "sampler: repeat_last_n %d must be >= -1",
                            (int)p->repeat_last_n);
    return KURA_OK;
}

enum kura_err kura_sampler_create(const struct kura_sample_params *params, int32_t n_vocab,
                                  struct kura_sampler **out, struct kura_errbuf *eb)
{
    enum kura_err err;
    struct kura_sampler *s = NULL;
    *out = NULL;
    if (!params) {
        err = kura_err_set(eb, KURA_ERR_INVALID, "sampler: params is NULL");
        goto fail;
    }
    if (n_vocab <= 0 || n_vocab > KURA_MAX_VOCAB) {
        err = kura_err_set(eb, KURA_ERR_INVALID, "sampler: n_vocab %d outside 1..%d", (int)n_vocab,
                           KURA_MAX_VOCAB);
        goto fail;
    }
    err = check_params(params, eb);
    if (err)
        goto fail;
    s = calloc(1, sizeof *s);
    if (!s) {
        err = kura_err_set(eb, KURA_ERR_NOMEM, "sampler: out of memory");
        goto fail;
    }
    s->p = *params;
    s->n_vocab = n_vocab;
    size_t n = (size_t)n_vocab;
    s->a_logit = malloc(n * sizeof *s->a_logit);
    s->a_id = malloc(n * sizeof *s->a_id);
    s->b_logit = malloc(n * sizeof *s->b_logit);
    s->b_id = malloc(n * sizeof *s->b_id);
    if (!s->a_logit || !s->a_id || !s->b_logit || !s->b_id) {
        err = kura_err_set(eb, KURA_ERR_NOMEM, "sampler: out of memory for %d candidates",
                           (int)n_vocab);
        goto fail;
    }
    if (params->repeat_last_n > 0)
        s->hist_cap = (size_t)params->repeat_last_n;
    else if (params->repeat_last_n < 0)
        s->hist_cap = KURA_SAMPLE_MAX_HISTORY;
    if (s->hist_cap > KURA_SAMPLE_MAX_HISTORY)
        s->hist_cap = KURA_SAMPLE_MAX_HISTORY;
    s->seed = params->seed == KURA_SAMPLE_SEED_RANDOM ? os_seed() : params->seed;
    rng_seed(s->rng, s->seed);
    *out = s;
    return KURA_OK;
fail:
    kura_sampler_destroy(s);
    return err;
}

void kura_sampler_destroy(struct kura_sampler *s)
{
    if (!s)
        return;
    free(s->hist);
    free(s->counts);
    free(s->a_logit);
    free(s->a_id);
    free(s->b_logit);
    free(s->b_id);
    free(s);
}

void kura_sampler_reset(struct kura_sampler *s)
{
    s->hist_len = 0;
    s->hist_head = 0;
    rng_seed(s->rng, s->seed);
}

uint64_t kura_sampler_seed(const struct kura_sampler *s)
{
    return s->seed;
}

enum kura_err kura_sampler_accept(struct kura_sampler *s, int32_t id)
{
    if (id < 0 || id >= s->n_vocab)
        return KURA_ERR_INVALID;
    if (s->hist_cap == 0)
        return KURA_OK;
    if (s->hist_len < s->hist_cap) {
        if (s->hist_len == s->hist_alloc) {
            size_t na = s->hist_alloc ? s->hist_alloc * 2 : 256;
            if (na > s->hist_cap)
                na = s->hist_cap;
            int32_t *nh = realloc(s->hist, na * sizeof *nh);
            if (!nh)
                return KURA_ERR_NOMEM;
            s->hist = nh;
            s->hist_alloc = na;
        }
        s->hist[s->hist_len++] = id;
    } else {
        s->hist[s->hist_head] = id;
        s->hist_head = (s->hist_head + 1) % s->hist_cap;
    }
    return KURA_OK;
}

/* ---- sampling --------------------------------------------------------------------------------- */

static void apply_penalties(struct kura_sampler *s, float *logits)
{
    const struct kura_sample_params *p = &s->p;
    if (s->hist_len == 0 ||
        (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f))
        return;
    if (!s->counts) {
        s->counts = calloc((size_t)s->n_vocab, sizeof *s->counts);
        if (!s->counts) /* no memory for the counts: fall back to a quadratic count */
            goto slow;
    }
    for (size_t i = 0; i < s->hist_len; i++)
        s->counts[s->hist[i]]++;
    /* second pass: each distinct token once, then clear its count */
    for (size_t i = 0; i < s->hist_len; i++) {
        int32_t id = s->hist[i];
        uint32_t c = s->counts[id];
        if (c == 0)
            continue;
        s->counts[id] = 0;
        float l = logits[id];
        l = l <= 0.0f ? l * p->repeat_penalty : l / p->repeat_penalty;
        l -= (float)c * p->frequency_penalty + p->presence_penalty;
        logits[id] = l;
    }
    return;
slow:
    for (size_t i = 0; i < s->hist_len; i++) {
        int32_t id = s->hist[i];
        uint32_t c = 0;
        bool seen = false;
        for (size_t j = 0; j < s->hist_len; j++) {
            if (s->hist[j] == id) {
                if (j < i) {
                    seen = true;
                    break;
                }
                c++;
            }
        }
        if (seen)
            continue;
        float l = logits[id];
        l = l <= 0.0f ? l * p->repeat_penalty : l / p->repeat_penalty;
        l -= (float)c * p->frequency_penalty + p->presence_penalty;
        logits[id] = l;
    }
}

/* Sum over the candidates of exp((l - max) / temp) in double. */
static double softmax_sum(const float *l, size_t n, float max, double temp)
{
    double z = 0.0;
    for (size_t i = 0; i < n; i++)
        z += exp(((double)l[i] - (double)max) / temp);
    return z;
}

/* Length of the smallest prefix of sorted candidates whose mass reaches top_p (>= 1). */
static size_t nucleus_len(const float *l, size_t n, double z, float max, float top_p)
{
    double cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += exp((double)l[i] - (double)max) / z;
        if (cum >= (double)top_p)
            return i + 1;
    }
    return n;
}

/* Penalties, then (temperature > 0) top-k, top-p and min-p. The survivors are (cl[i], ci[i]) for
 * i < return value, ci == NULL meaning id = i; *max_out is the largest logit among them. With
 * temperature <= 0 the single survivor is the argmax. */
static size_t filter(struct kura_sampler *s, float *logits, const float **cl_out,
                     const int32_t **ci_out, float *max_out)
{
    const struct kura_sample_params *p = &s->p;
    size_t n = (size_t)s->n_vocab;

    /* NaN would poison every comparison below; +inf would poison the softmax */
    for (size_t i = 0; i < n; i++) {
        if (isnan(logits[i]))
            logits[i] = -INFINITY;
        else if (logits[i] == INFINITY)
            logits[i] = FLT_MAX;
    }
    apply_penalties(s, logits);
    for (size_t i = 0; i < n; i++) /* a penalty can push FLT_MAX back to inf */
        if (logits[i] == INFINITY)
            logits[i] = FLT_MAX;

    if (!(p->temperature > 0.0f)) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (logits[i] > logits[best])
                best = i;
        s->a_logit[0] = logits[best];
        s->a_id[0] = (int32_t)best;
        *cl_out = s->a_logit;
        *ci_out = s->a_id;
        *max_out = logits[best];
        return 1;
    }

    /* candidates: (cl[i], ci[i]) for i < nc; ci == NULL means id = index (all of logits) */
    const float *cl = logits;
    const int32_t *ci = NULL;
    size_t nc = n;
    bool sorted = false;

    if (p->top_k > 0 && (size_t)p->top_k < n) {
        nc = (size_t)p->top_k;
        select_top(logits, NULL, n, nc, s->a_logit, s->a_id);
        cl = s->a_logit;
        ci = s->a_id;
        sorted = true;
    }

    float max = cl[0];
    for (size_t i = 1; i < nc; i++)
        if (cl[i] > max)
            max = cl[i];

    if (p->top_p < 1.0f && nc > 1) {
        double z = softmax_sum(cl, nc, max, 1.0);
        if (sorted) {
            nc = nucleus_len(cl, nc, z, max, p->top_p);
        } else {
            /* grow a sorted prefix until it holds the nucleus */
            size_t m = TOP_P_FIRST_ROUND < nc ? TOP_P_FIRST_ROUND : nc;
            for (;;) {
                select_top(cl, ci, nc, m, s->b_logit, s->b_id);
                size_t k = nucleus_len(s->b_logit, m, z, max, p->top_p);
                if (k < m || m == nc) {
                    nc = k;
                    break;
                }
                m = m > nc / 8 ? nc : m * 8;
            }
            cl = s->b_logit;
            ci = s->b_id;
            sorted = true;
        }
    }

    if (p->min_p > 0.0f && nc > 1) {
        /* p_i >= min_p * p_max  <=>  l_i >= max + log(min_p); llama.cpp compares logits too */
        float thr = max + logf(p->min_p);
        if (sorted) {
            size_t k = 1;
            while (k < nc && cl[k] >= thr)
                k++;
            nc = k;
        } else {
            size_t k = 0;
            for (size_t i = 0; i < nc; i++) {
                if (cl[i] >= thr) {
                    s->b_logit[k] = cl[i];
                    s->b_id[k] = ci ? ci[i] : (int32_t)i;
                    k++;
                }
            }
            if (k == 0) { /* only when min_p > 1: keep the best one */
                size_t best = 0;
                for (size_t i = 1; i < nc; i++)
                    if (cl[i] > cl[best])
                        best = i;
                s->b_logit[0] = cl[best];
                s->b_id[0] = ci ? ci[best] : (int32_t)best;
                k = 1;
            }
            cl = s->b_logit;
            ci = s->b_id;
            nc = k;
        }
    }

    *cl_out = cl;
    *ci_out = ci;
    *max_out = max;
    return nc;
}

int32_t kura_sampler_sample(struct kura_sampler *s, float *logits)
{
    const float *cl;
    const int32_t *ci;
    float max;
    size_t nc = filter(s, logits, &cl, &ci, &max);
    if (!(s->p.temperature > 0.0f))
        return ci[0];

    /* temperature and the draw; the fallback for rounding is the most likely candidate */
    double temp = (double)s->p.temperature;
    double z = softmax_sum(cl, nc, max, temp);
    size_t best = 0;
    for (size_t i = 1; i < nc; i++)
        if (cl[i] > cl[best])
            best = i;
    double r = rng_uniform(s->rng) * z;
    if (z > 0.0 && isfinite(z)) {
        double acc = 0.0;
        for (size_t i = 0; i < nc; i++) {
            acc += exp(((double)cl[i] - (double)max) / temp);
            if (r < acc)
                return ci ? ci[i] : (int32_t)i;
        }
    }
    return ci ? ci[best] : (int32_t)best;
}

size_t kura_sampler_candidates(struct kura_sampler *s, float *logits, int32_t *ids_out)
{
    const float *cl;
    const int32_t *ci;
    float max;
    size_t nc = filter(s, logits, &cl, &ci, &max);
    for (size_t i = 0; i < nc; i++)
        ids_out[i] = ci ? ci[i] : (int32_t)i;
    return nc;
}

/* ---- log-probabilities ------------------------------------------------------------------------ */

/* log(sum(exp(l))) over n logits, NaN as -inf; -inf when all are -inf. */
static double logsumexp(const float *logits, size_t n)
{
    double max = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (!isnan(logits[i]) && logits[i] > max)
            max = logits[i];
    if (max == -INFINITY || max == INFINITY)
        return max;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(logits[i]))
            sum += exp((double)logits[i] - max);
    return max + log(sum);
}

static float logprob_from(float logit, double lse)
{
    if (isnan(logit) || logit == -INFINITY)
        return -INFINITY;
    if (lse == INFINITY) /* some logit is +inf: it takes all the mass */
        return logit == INFINITY ? 0.0f : -INFINITY;
    return (float)((double)logit - lse);
}

int kura_logprobs_top(const float *logits, int n_vocab, int k, int32_t *ids_out,
                      float *logprobs_out)
{
    if (n_vocab <= 0 || k <= 0 || !logits)
        return 0;
    size_t m = (size_t)(k < n_vocab ? k : n_vocab);
    double lse = logsumexp(logits, (size_t)n_vocab);
    select_top(logits, NULL, (size_t)n_vocab, m, logprobs_out, ids_out);
    for (size_t i = 0; i < m; i++)
        logprobs_out[i] = logprob_from(logprobs_out[i], lse);
    return (int)m;
}

float kura_logprob_of(const float *logits, int n_vocab, int32_t id)
{
    if (!logits || n_vocab <= 0 || id < 0 || id >= n_vocab)
        return -INFINITY;
    return logprob_from(logits[id], logsumexp(logits, (size_t)n_vocab));
}
