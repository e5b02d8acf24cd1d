/* The engine against the established engine's reference outputs (../shared/ref/greedy):
 * - teacher-forced: for every model file and prompt, feed prompt_ids (one batch) and then each
 *   generated id alone; at each generated position the reference's top-5 log-probabilities must
 *   match kura's within the type's tolerance, and the reference's top-1 must be in kura's top 3;
 * - free-running greedy generation must reproduce gen_ids exactly for stories260K F32/F16/Q8_0.
 * Set KURA_REF_ONLY=substring to run a subset, KURA_REF_TRACE=1 to print every step's deviation. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kura/model.h"
#include "test.h"

struct tol {
    const char *suffix;
    double tol;
};

/* Log-probability tolerance per tensor type. The reference README allows 0.01 for F32, 0.03 for
 * F16/BF16 and up to 0.1 for quantized types; kura follows the reference engine's summation
 * orders, so several types are held tighter (measured maxima on every kernel path today: F32
 * 0.0036, F16 0, BF16 0.024, Q8_0/Q4_1/Q5_0/Q5_1 0, Q4_K_M 0.036, Q4_0 0.091, Q5_K_M 0.096,
 * Q6_K 0.086). */
static const struct tol TOLS[] = {
    {"-F32", 0.01},    {"-F16", 0.01},    {"-BF16", 0.03},  {"-Q8_0", 0.02},
    {"-Q6_K", 0.1},    {"-Q5_K_M", 0.1},  {"-Q5_0", 0.02},  {"-Q5_1", 0.02},
    {"-Q4_K_M", 0.05}, {"-Q4_0", 0.1},    {"-Q4_1", 0.02},
};

static double tol_for(const char *name)
{
    for (size_t i = 0; i < sizeof TOLS / sizeof TOLS[0]; i++)
        if (strstr(name, TOLS[i].suffix))
            return TOLS[i].tol;
    return 0.1;
}

static void log_softmax(const float *logits, int n, double *out)
{
    double mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double s = 0;
    for (int i = 0; i < n; i++)
        s += exp((double)logits[i] - mx);
    double lse = mx + log(s);
    for (int i = 0; i < n; i++)
        out[i] = (double)logits[i] - lse;
}

static int rank_of(const float *logits, int n, int id)
{
    int r = 0;
    for (int i = 0; i < n; i++)
        if (logits[i] > logits[id] || (logits[i] == logits[id] && i < id))
            r++;
    return r;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

static int load_ids(json_t *arr, int32_t *out, int cap)
{
    int n = (int)json_array_size(arr);
    if (n > cap)
        return -1;
    for (int i = 0; i < n; i++)
        out[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return n;
}

static void check_file(const char *shared, const char *ref_name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/ref/greedy/%s", shared, ref_name);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    CHECKF(root != NULL, "%s: %s", path, jerr.text);
    if (!root)
        return;
    const char *model_name = json_string_value(json_object_get(root, "model"));
    snprintf(path, sizeof path, "%s/models/%s", shared, model_name);
    struct kura_errbuf eb = {0};
    struct kura_model *m = NULL;
    struct kura_ctx *c = NULL;
    struct kura_kv *kv = NULL;
    enum kura_err e = kura_model_load(path, &m, &eb);
    CHECKF(e == KURA_OK, "%s", eb.msg);
    if (e)
        goto out;
    const int nv = kura_model_hparams(m)->n_vocab;
    e = kura_ctx_create(m, 64, 2, &c, &eb);
    CHECKF(e == KURA_OK, "%s", eb.msg);
    if (!e)
        e = kura_kv_create(m, 256, &kv, &eb);
    CHECKF(e == KURA_OK, "%s", eb.msg);
    if (e)
        goto out;
    float *logits = malloc((size_t)nv * sizeof *logits);
    double *lp = malloc((size_t)nv * sizeof *lp);
    double tol = tol_for(model_name), worst = 0;
    int top1_misses = 0, steps_total = 0;
    bool exact_greedy = strncmp(model_name, "stories260K-", 12) == 0 &&
                        (strstr(model_name, "-F32") || strstr(model_name, "-F16") ||
                         strstr(model_name, "-Q8_0"));
    json_t *results = json_object_get(root, "results");
    for (size_t r = 0; r < json_array_size(results); r++) {
        json_t *res = json_array_get(results, r);
        int32_t prompt[256], gen[256];
        int np = load_ids(json_object_get(res, "prompt_ids"), prompt, 256);
        int ng = load_ids(json_object_get(res, "gen_ids"), gen, 128);
        json_t *steps = json_object_get(res, "steps");
        CHECK(np > 0 && ng > 0 && (size_t)ng == json_array_size(steps));
        if (np <= 0 || ng <= 0)
            continue;
        /* teacher-forced */
        bool trace = getenv("KURA_REF_TRACE") != NULL;
        e = kura_ctx_eval_seq(c, kv, prompt, np, 0, false, logits, &eb);
        CHECKF(e == KURA_OK, "%s", eb.msg);
        for (int i = 0; i < ng && !e; i++) {
            json_t *st = json_array_get(steps, (size_t)i);
            json_t *top5 = json_object_get(st, "top5");
            log_softmax(logits, nv, lp);
            double step_worst = 0;
            for (size_t k = 0; k < json_array_size(top5); k++) {
                json_t *pr = json_array_get(top5, k);
                double dd = fabs(lp[json_integer_value(json_array_get(pr, 0))] -
                                 json_real_value(json_array_get(pr, 1)));
                step_worst = dd > step_worst ? dd : step_worst;
            }
            if (trace) /* KURA_REF_TRACE=1: the largest deviation at every step */
                printf("  %s prompt %zu step %d: max |dlogprob| %.6f\n", model_name, r, i,
                       step_worst);
            for (size_t k = 0; k < json_array_size(top5); k++) {
                json_t *pair = json_array_get(top5, k);
                int id = (int)json_integer_value(json_array_get(pair, 0));
                double ref = json_real_value(json_array_get(pair, 1));
                double d = fabs(lp[id] - ref);
                if (d > worst)
                    worst = d;
                CHECKF(d <= tol, "%s prompt %zu step %d id %d: logprob %.5f vs reference "
                       "%.5f (tol %.3f)", model_name, r, i, id, lp[id], ref, tol);
            }
            int ref_top1 = (int)json_integer_value(json_array_get(json_array_get(top5, 0), 0));
            int rk = rank_of(logits, nv, ref_top1);
            CHECKF(rk < 3, "%s prompt %zu step %d: reference top-1 %d has kura rank %d",
                   model_name, r, i, ref_top1, rk);
            top1_misses += rk != 0;
            steps_total++;
            e = kura_ctx_eval_seq(c, kv, &gen[i], 1, np + i, false, logits, &eb);
            CHECKF(e == KURA_OK, "%s", eb.msg);
        }
        if (!exact_greedy)
            continue;
        /* free-running greedy */
        e = kura_ctx_eval_seq(c, kv, prompt, np, 0, false, logits, &eb);
        int mismatch = -1;
        for (int i = 0; i < ng && !e; i++) {
            int id = argmax(logits, nv);
            if (id != gen[i] && mismatch < 0)
                mismatch = i;
            if (mismatch >= 0)
                break;
            e = kura_ctx_eval_seq(c, kv, &id, 1, np + i, false, logits, &eb);
        }
        CHECKF(e == KURA_OK && mismatch < 0, "%s prompt %zu: greedy diverges at step %d",
               model_name, r, mismatch);
    }
    printf("%-28s max |dlogprob| %.5f (tol %.3f), top-1 differs at %d/%d steps%s\n", model_name,
           worst, tol, top1_misses, steps_total, exact_greedy ? ", exact greedy checked" : "");
    free(logits);
    free(lp);
out:
    kura_kv_destroy(kv);
    kura_ctx_destroy(c);
    kura_model_destroy(m);
    json_decref(root);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    const char *shared = test_shared_dir();
    if (!shared)
        return TEST_SKIP;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ref/greedy", shared);
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "cannot open %s", dir);
    if (!d)
        return test_finish();
    char *names[256];
    int n = 0;
    struct dirent *de;
    const char *only = getenv("KURA_REF_ONLY");
    while ((de = readdir(d)) && n < 256)
        if (strstr(de->d_name, ".json") && (!only || strstr(de->d_name, only)))
            names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    CHECK(n > 0);
    for (int i = 0; i < n; i++) {
        check_file(shared, names[i]);
        free(names[i]);
    }
    return test_finish();
}
