/* Samplers and log-probabilities. */
#include "kura/sample.h"

#include <math.h>
#include <stdint.h>

#include "test.h"

/* deterministic test data, independent of the sampler's own PRNG */
static uint32_t lcg_state = 12345;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}
static float rnd_logit(void)
{
    return (float)(lcg() % 20000) / 1000.0f - 10.0f;
}

static struct kura_sample_params plain(float temp, uint64_t seed)
{
    struct kura_sample_params p = kura_sample_params_default();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

static struct kura_sampler *mk(const struct kura_sample_params *p, int32_t n)
{
    struct kura_sampler *s = NULL;
    struct kura_errbuf eb = {0};
    enum kura_err e = kura_sampler_create(p, n, &s, &eb);
    CHECKF(e == KURA_OK, "create: %s", eb.msg);
    return s;
}

static void test_defaults(void)
{
    struct kura_sample_params p = kura_sample_params_default();
    CHECK(fabsf(p.temperature - 0.8f) < 1e-6f);
    CHECK(p.top_k == 40);
    CHECK(fabsf(p.top_p - 0.95f) < 1e-6f);
    CHECK(fabsf(p.min_p - 0.05f) < 1e-6f);
    CHECK(p.repeat_penalty == 1.0f && p.repeat_last_n == 64);
    CHECK(p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f);
    CHECK(p.seed == KURA_SAMPLE_SEED_RANDOM);
    struct kura_sampler *s = mk(&p, 10);
    CHECK(kura_sampler_seed(s) != KURA_SAMPLE_SEED_RANDOM);
    kura_sampler_destroy(s);
    kura_sampler_destroy(NULL);
}

static void test_invalid_params(void)
{
    struct kura_sampler *s = (struct kura_sampler *)1;
    struct kura_errbuf eb = {0};
    struct kura_sample_params p = plain(1.0f, 1);
    CHECK(kura_sampler_create(&p, 0, &s, &eb) == KURA_ERR_INVALID && s == NULL);
    CHECK(kura_sampler_create(&p, -5, &s, &eb) == KURA_ERR_INVALID);
    p.repeat_penalty = 0.0f;
    CHECK(kura_sampler_create(&p, 10, &s, &eb) == KURA_ERR_INVALID);
    CHECK(strstr(eb.msg, "repeat_penalty") != NULL);
    p = plain(NAN, 1);
    CHECK(kura_sampler_create(&p, 10, &s, &eb) == KURA_ERR_INVALID);
    p = plain(1.0f, 1);
    p.repeat_last_n = -2;
    CHECK(kura_sampler_create(&p, 10, &s, &eb) == KURA_ERR_INVALID);
    p = plain(1.0f, 1);
    p.top_p = NAN;
    CHECK(kura_sampler_create(&p, 10, &s, &eb) == KURA_ERR_INVALID);
    p = plain(1.0f, 1);
    p.frequency_penalty = INFINITY;
    CHECK(kura_sampler_create(&p, 10, &s, &eb) == KURA_ERR_INVALID);
    p = plain(1.0f, 1);
    s = mk(&p, 10);
    CHECK(kura_sampler_accept(s, -1) == KURA_ERR_INVALID);
    CHECK(kura_sampler_accept(s, 10) == KURA_ERR_INVALID);
    CHECK(kura_sampler_accept(s, 9) == KURA_OK);
    kura_sampler_destroy(s);
}

static void test_greedy(void)
{
    enum { N = 1000 };
    static float l[N];
    struct kura_sample_params p = plain(0.0f, 7);
    p.top_k = 40; /* must not matter */
    struct kura_sampler *s = mk(&p, N);
    for (int round = 0; round < 20; round++) {
        int best = 0;
        for (int i = 0; i < N; i++) {
            l[i] = rnd_logit();
            if (l[i] > l[best])
                best = i;
        }
        CHECK(kura_sampler_sample(s, l) == best);
    }
    /* ties go to the lowest id; negative temperature is greedy too */
    for (int i = 0; i < N; i++)
        l[i] = 0.0f;
    l[700] = 3.0f;
    l[300] = 3.0f;
    l[900] = 3.0f;
    CHECK(kura_sampler_sample(s, l) == 300);
    kura_sampler_destroy(s);
    p.temperature = -1.0f;
    s = mk(&p, N);
    l[5] = NAN; /* NaN never wins */
    l[6] = 2.0f;
    CHECK(kura_sampler_sample(s, l) == 300);
    CHECK(isinf(l[5]) && l[5] < 0);
    kura_sampler_destroy(s);
}

static void test_seed_reproducible(void)
{
    enum { N = 500, DRAWS = 300 };
    static float base[N], l[N];
    for (int i = 0; i < N; i++)
        base[i] = rnd_logit() * 0.3f;
    struct kura_sample_params p = kura_sample_params_default();
    p.seed = 42;
    p.repeat_penalty = 1.1f;
    struct kura_sampler *a = mk(&p, N), *b = mk(&p, N);
    p.seed = 43;
    struct kura_sampler *c = mk(&p, N);
    int32_t seq_a[DRAWS];
    int same = 1, diff_c = 0;
    for (int t = 0; t < DRAWS; t++) {
        memcpy(l, base, sizeof l);
        int32_t ta = kura_sampler_sample(a, l);
        memcpy(l, base, sizeof l);
        int32_t tb = kura_sampler_sample(b, l);
        memcpy(l, base, sizeof l);
        int32_t tc = kura_sampler_sample(c, l);
        seq_a[t] = ta;
        same &= ta == tb;
        diff_c += ta != tc;
        CHECK(kura_sampler_accept(a, ta) == KURA_OK);
        CHECK(kura_sampler_accept(b, tb) == KURA_OK);
        CHECK(kura_sampler_accept(c, tc) == KURA_OK);
    }
    CHECK(same);
    CHECK(diff_c > 0);
    /* reset replays the run exactly */
    kura_sampler_reset(a);
    int replay = 1;
    for (int t = 0; t < DRAWS; t++) {
        memcpy(l, base, sizeof l);
        int32_t ta = kura_sampler_sample(a, l);
        replay &= ta == seq_a[t];
        kura_sampler_accept(a, ta);
    }
    CHECK(replay);
    CHECK(kura_sampler_seed(a) == 42);
    kura_sampler_destroy(a);
    kura_sampler_destroy(b);
    kura_sampler_destroy(c);
}

static void test_topk1_is_greedy(void)
{
    enum { N = 3000 };
    static float l[N], g[N];
    struct kura_sample_params p = plain(1.5f, 99);
    p.top_k = 1;
    struct kura_sampler *s = mk(&p, N);
    struct kura_sample_params pg = plain(0.0f, 99);
    struct kura_sampler *gs = mk(&pg, N);
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < N; i++)
            l[i] = g[i] = (float)(lcg() % 50); /* many ties */
        CHECK(kura_sampler_sample(s, l) == kura_sampler_sample(gs, g));
    }
    kura_sampler_destroy(s);
    kura_sampler_destroy(gs);
}

/* Draws n samples over logits[k] and returns the chi-square statistic against expected[k]. */
static double chi_square(const struct kura_sample_params *p, const float *logits, int k,
                         const double *expected, int n)
{
    struct kura_sampler *s = mk(p, k);
    int counts[16] = {0};
    float l[16];
    for (int t = 0; t < n; t++) {
        memcpy(l, logits, sizeof(float) * (size_t)k);
        int32_t id = kura_sampler_sample(s, l);
        CHECK(id >= 0 && id < k);
        counts[id]++;
    }
    kura_sampler_destroy(s);
    double chi = 0.0;
    for (int i = 0; i < k; i++) {
        double e = expected[i] * n;
        if (e == 0.0) {
            CHECKF(counts[i] == 0, "token %d has probability 0 but was drawn %d times", i,
                   counts[i]);
            continue;
        }
        chi += (counts[i] - e) * (counts[i] - e) / e;
    }
    return chi;
}

static void test_distribution(void)
{
    /* p = 0.1 0.2 0.3 0.4: chi-square with 3 degrees of freedom; 16.27 is the 0.1% quantile.
     * The seed is fixed, so the test is deterministic; a biased sampler gives chi in the
     * hundreds with this many draws. */
    const float l[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    const double e1[4] = {0.1, 0.2, 0.3, 0.4};
    struct kura_sample_params p = plain(1.0f, 2024);
    double chi = chi_square(&p, l, 4, e1, 40000);
    CHECKF(chi < 16.27, "temperature 1: chi-square %.2f", chi);

    /* temperature 2: p_i ~ sqrt(q_i) */
    double e2[4], z = 0.0;
    for (int i = 0; i < 4; i++)
        z += e2[i] = sqrt(e1[i]);
    for (int i = 0; i < 4; i++)
        e2[i] /= z;
    p = plain(2.0f, 77);
    chi = chi_square(&p, l, 4, e2, 40000);
    CHECKF(chi < 16.27, "temperature 2: chi-square %.2f", chi);
    /* ... and the temperature-1 expectation must fail it: the test can tell them apart */
    p = plain(2.0f, 77);
    chi = chi_square(&p, l, 4, e1, 40000);
    CHECKF(chi > 100.0, "temperature 2 vs temperature-1 probabilities: chi-square %.2f", chi);

    /* top-k 2 renormalises over {3, 2}: 0.4/0.7 and 0.3/0.7 (1 degree of freedom: 10.83) */
    const double ek[4] = {0.0, 0.0, 0.3 / 0.7, 0.4 / 0.7};
    p = plain(1.0f, 5);
    p.top_k = 2;
    chi = chi_square(&p, l, 4, ek, 20000);
    CHECKF(chi < 10.83, "top-k 2: chi-square %.2f", chi);
}

/* Candidate set as a sorted-by-id bitmap string like "1101" for comparison. */
static void cand_set(const struct kura_sample_params *p, const float *logits, int n, char *out)
{
    struct kura_sampler *s = mk(p, n);
    float l[64];
    int32_t ids[64];
    memcpy(l, logits, sizeof(float) * (size_t)n);
    size_t k = kura_sampler_candidates(s, l, ids);
    for (int i = 0; i < n; i++)
        out[i] = '0';
    out[n] = 0;
    for (size_t i = 0; i < k; i++)
        out[ids[i]] = '1';
    kura_sampler_destroy(s);
}

static void test_top_p_min_p_sets(void)
{
    /* probabilities by id (shuffled so id order is not probability order):
     * id: 0     1     2     3     4
     * p:  0.07  0.5   0.03  0.25  0.15   -> sorted: 1 (.5), 3 (.75), 4 (.90), 0 (.97), 2 (1) */
    const float l[5] = {logf(0.07f), logf(0.5f), logf(0.03f), logf(0.25f), logf(0.15f)};
    char got[8];
    struct kura_sample_params p = plain(1.0f, 1);

    p.top_p = 0.8f;
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "01011") == 0, "top_p 0.8: %s", got);
    p.top_p = 0.95f;
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "11011") == 0, "top_p 0.95: %s", got);
    p.top_p = 0.3f;
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "01000") == 0, "top_p 0.3: %s", got);
    p.top_p = 0.0f; /* keeps at least one */
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "01000") == 0, "top_p 0: %s", got);
    p.top_p = 1.0f;
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "11111") == 0, "top_p 1: %s", got);

    p = plain(1.0f, 1);
    p.min_p = 0.1f; /* p >= 0.05 */
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "11011") == 0, "min_p 0.1: %s", got);
    p.min_p = 0.45f; /* p >= 0.225 */
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "01010") == 0, "min_p 0.45: %s", got);
    p.min_p = 2.0f; /* nothing qualifies: the best stays */
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "01000") == 0, "min_p 2: %s", got);

    /* order: top-k 4 drops id 2, top-p 0.92 over the renormalised 4 (0.5/.97=.515, .773, .928)
     * keeps 3, then min-p 0.4 of the max (0.2) keeps ids 1, 3 */
    p = plain(1.0f, 1);
    p.top_k = 4;
    p.top_p = 0.92f;
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "01011") == 0, "top_k 4 + top_p 0.92: %s", got);
    p.min_p = 0.4f;
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "01010") == 0, "top_k 4 + top_p 0.92 + min_p 0.4: %s", got);
    /* the same top-p without top-k would stop at 0.90 < 0.92 and keep id 0 as well */
    p = plain(1.0f, 1);
    p.top_p = 0.92f;
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "11011") == 0, "top_p 0.92: %s", got);

    /* temperature does not change the sets (it runs after the filters) */
    p = plain(0.3f, 1);
    p.top_p = 0.8f;
    cand_set(&p, l, 5, got);
    CHECKF(strcmp(got, "01011") == 0, "top_p 0.8 at temperature 0.3: %s", got);
}

static void test_large_vocab(void)
{
    enum { N = 150000 };
    float *l = malloc(N * sizeof *l);
    float *base = malloc(N * sizeof *base);
    int32_t *ids = malloc(N * sizeof *ids);
    int32_t *perm = malloc(N * sizeof *perm);
    char *in = malloc(N);
    if (!l || !base || !ids || !perm || !in) {
        CHECK(0);
        goto out;
    }
    /* logits fall by 1e-4 per rank; rank r sits at id perm[r] */
    for (int i = 0; i < N; i++)
        perm[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(lcg() % (uint32_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int r = 0; r < N; r++)
        base[perm[r]] = -1e-4f * (float)r;

    /* expected nucleus for top_p 0.9: smallest m with sum_{r<m} p_r >= 0.9 (about 23k) */
    double z = 0.0;
    for (int r = 0; r < N; r++)
        z += exp((double)base[perm[r]]);
    double cum = 0.0;
    int m = 0;
    while (m < N && cum < 0.9) {
        cum += exp((double)base[perm[m]]) / z;
        m++;
    }
    CHECK(m > 20000 && m < 26000);

    struct kura_sample_params p = plain(1.0f, 3);
    p.top_p = 0.9f;
    struct kura_sampler *s = mk(&p, N);
    memcpy(l, base, N * sizeof *l);
    size_t k = kura_sampler_candidates(s, l, ids);
    CHECKF(k == (size_t)m, "top_p 0.9 over 150k: %zu candidates, expected %d", k, m);
    int ok = 1;
    for (size_t i = 0; i < k && i < (size_t)N; i++)
        ok &= ids[i] == perm[i]; /* descending order = rank order */
    CHECK(ok);
    for (int t = 0; t < 8; t++) {
        memcpy(l, base, N * sizeof *l);
        int32_t id = kura_sampler_sample(s, l);
        /* rank of id must be < m */
        int rank = (int)(-base[id] / 1e-4f + 0.5f);
        CHECKF(rank < m, "drawn token of rank %d outside the nucleus %d", rank, m);
    }
    kura_sampler_destroy(s);

    /* top-k 40: the 40 best ranks, in order */
    p = plain(1.0f, 4);
    p.top_k = 40;
    s = mk(&p, N);
    memcpy(l, base, N * sizeof *l);
    k = kura_sampler_candidates(s, l, ids);
    CHECK(k == 40);
    ok = 1;
    for (size_t i = 0; i < k; i++)
        ok &= ids[i] == perm[i];
    CHECK(ok);
    kura_sampler_destroy(s);

    /* min-p alone (no sort): p >= 0.5 * p_max <=> rank <= ln 2 / 1e-4 = 6931.47 */
    p = plain(1.0f, 5);
    p.min_p = 0.5f;
    s = mk(&p, N);
    memcpy(l, base, N * sizeof *l);
    k = kura_sampler_candidates(s, l, ids);
    memset(in, 0, N);
    for (size_t i = 0; i < k; i++)
        in[ids[i]] = 1;
    int bad = 0;
    for (int r = 0; r < N; r++)
        if (r < 6920 || r > 6940) /* away from float rounding at the boundary */
            bad += in[perm[r]] != (r <= 6931);
    CHECKF(bad == 0, "min_p 0.5 over 150k: %d tokens misplaced (k=%zu)", bad, k);
    kura_sampler_destroy(s);
out:
    free(l);
    free(base);
    free(ids);
    free(perm);
    free(in);
}

static void test_penalties(void)
{
    enum { N = 10 };
    const float base[N] = {1.0f, -2.0f, 3.0f, 2.0f, 0.0f, 0.5f, -0.5f, -1.0f, 4.0f, 1.5f};
    float l[N];
    struct kura_sample_params p = plain(0.0f, 1);
    p.repeat_penalty = 1.5f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    p.repeat_last_n = 64;
    struct kura_sampler *s = mk(&p, N);
    /* history: 3 x2, 7 x1, 4 x1, 8 x3 */
    const int32_t hist[] = {3, 8, 7, 3, 8, 4, 8};
    for (size_t i = 0; i < sizeof hist / sizeof *hist; i++)
        CHECK(kura_sampler_accept(s, hist[i]) == KURA_OK);
    memcpy(l, base, sizeof l);
    int32_t id = kura_sampler_sample(s, l);
    float e[N];
    memcpy(e, base, sizeof e);
    e[3] = 2.0f / 1.5f - (2.0f * 0.5f + 0.25f);  /* positive: divided */
    e[7] = -1.0f * 1.5f - (1.0f * 0.5f + 0.25f); /* negative: multiplied */
    e[4] = 0.0f * 1.5f - (1.0f * 0.5f + 0.25f);  /* zero counts as "<= 0" */
    e[8] = 4.0f / 1.5f - (3.0f * 0.5f + 0.25f);
    int exact = 1;
    for (int i = 0; i < N; i++)
        exact &= l[i] == e[i];
    CHECKF(exact, "penalised logits differ (l[3]=%g e=%g, l[8]=%g e=%g)", (double)l[3],
           (double)e[3], (double)l[8], (double)e[8]);
    CHECK(id == 2); /* 3.0 now beats the penalised 4.0 (1.1667) */
    kura_sampler_destroy(s);

    /* window: only the last 2 tokens (4, 8) count */
    p.repeat_last_n = 2;
    s = mk(&p, N);
    for (size_t i = 0; i < sizeof hist / sizeof *hist; i++)
        kura_sampler_accept(s, hist[i]);
    memcpy(l, base, sizeof l);
    kura_sampler_sample(s, l);
    memcpy(e, base, sizeof e);
    e[4] = 0.0f * 1.5f - (1.0f * 0.5f + 0.25f);
    e[8] = 4.0f / 1.5f - (1.0f * 0.5f + 0.25f);
    exact = 1;
    for (int i = 0; i < N; i++)
        exact &= l[i] == e[i];
    CHECK(exact);
    /* reset forgets the history */
    kura_sampler_reset(s);
    memcpy(l, base, sizeof l);
    CHECK(kura_sampler_sample(s, l) == 8);
    CHECK(memcmp(l, base, sizeof l) == 0);
    kura_sampler_destroy(s);

    /* repeat_last_n 0 disables, -1 means everything */
    p.repeat_last_n = 0;
    s = mk(&p, N);
    for (size_t i = 0; i < sizeof hist / sizeof *hist; i++)
        kura_sampler_accept(s, hist[i]);
    memcpy(l, base, sizeof l);
    CHECK(kura_sampler_sample(s, l) == 8);
    CHECK(memcmp(l, base, sizeof l) == 0);
    kura_sampler_destroy(s);

    p.repeat_last_n = -1;
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    p.repeat_penalty = 2.0f;
    s = mk(&p, N);
    for (int i = 0; i < 1000; i++) /* grows the history past its first allocation */
        kura_sampler_accept(s, i < 999 ? 0 : 9);
    memcpy(l, base, sizeof l);
    kura_sampler_sample(s, l);
    CHECK(l[0] == 0.5f && l[9] == 0.75f && l[8] == 4.0f);
    kura_sampler_destroy(s);
}

static void test_logprobs(void)
{
    const float l[5] = {1.0f, 3.0f, 2.0f, -INFINITY, 3.0f};
    double lse = log(exp(1.0) + exp(3.0) + exp(2.0) + exp(3.0));
    int32_t ids[8];
    float lp[8];
    int n = kura_logprobs_top(l, 5, 3, ids, lp);
    CHECK(n == 3);
    CHECK(ids[0] == 1 && ids[1] == 4 && ids[2] == 2); /* tie 1/4 -> lower id first */
    CHECK(fabs(lp[0] - (3.0 - lse)) < 1e-6 && fabs(lp[2] - (2.0 - lse)) < 1e-6);
    CHECK(kura_logprobs_top(l, 5, 10, ids, lp) == 5);
    CHECK(ids[4] == 3 && isinf(lp[4]) && lp[4] < 0);
    double sum = 0.0;
    for (int i = 0; i < 5; i++)
        sum += exp((double)lp[i]);
    CHECK(fabs(sum - 1.0) < 1e-6);
    CHECK(kura_logprobs_top(l, 5, 0, ids, lp) == 0);
    CHECK(kura_logprobs_top(l, 0, 3, ids, lp) == 0);
    CHECK(fabsf(kura_logprob_of(l, 5, 0) - (float)(1.0 - lse)) < 1e-6f);
    CHECK(isinf(kura_logprob_of(l, 5, 5)) && isinf(kura_logprob_of(l, 5, -1)));

    /* stability: huge logits do not overflow */
    const float big[3] = {10000.0f, 9999.0f, NAN};
    CHECK(kura_logprobs_top(big, 3, 3, ids, lp) == 3);
    CHECK(ids[0] == 0 && ids[1] == 1 && ids[2] == 2);
    CHECK(fabs(lp[0] - (-log1p(exp(-1.0)))) < 1e-5);
    CHECK(isfinite(lp[1]) && isinf(lp[2]));
    CHECK(isfinite(kura_logprob_of(big, 3, 1)));
}

static void test_degenerate(void)
{
    /* all -inf / NaN / +inf: still a valid id, no crash */
    float l[4] = {-INFINITY, NAN, -INFINITY, -INFINITY};
    struct kura_sample_params p = kura_sample_params_default();
    p.seed = 9;
    struct kura_sampler *s = mk(&p, 4);
    int32_t id = kura_sampler_sample(s, l);
    CHECK(id >= 0 && id < 4);
    float l2[4] = {0.0f, INFINITY, 1.0f, 2.0f}; /* +inf takes all the mass */
    CHECK(kura_sampler_sample(s, l2) == 1);
    kura_sampler_destroy(s);
    /* one-token vocabulary */
    s = mk(&p, 1);
    float one = 5.0f;
    CHECK(kura_sampler_sample(s, &one) == 0);
    kura_sampler_destroy(s);
}

int main(void)
{
    test_defaults();
    test_invalid_params();
    test_greedy();
    test_seed_reproducible();
    test_topk1_is_greedy();
    test_distribution();
    test_top_p_min_p_sets();
    test_large_vocab();
    test_penalties();
    test_logprobs();
    test_degenerate();
    return test_finish();
}
