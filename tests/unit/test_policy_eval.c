/* Measures the detector on the labelled set tests/data/policy/labelled.jsonl: precision and
 * recall per type, printed. Fails when a structured identifier type is below 99 % recall or
 * 97 % precision (exact type + byte span), or names/addresses below 85 % (overlapping span).
 * KURA_POLICY_EVAL_VERBOSE=1 prints every miss and false alarm. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kura/policy.h"
#include "test.h"

struct counts {
    unsigned tp, fp, fn;
};

static bool span_match(enum kura_pii_type t, size_t a0, size_t a1, size_t b0, size_t b1)
{
    if (kura_pii_type_is_structured(t))
        return a0 == b0 && a1 == b1;
    return a0 < b1 && b0 < a1; /* names, addresses: overlap */
}

struct expect {
    int type;
    size_t s0, s1;
};

static struct counts c[KURA_PII__COUNT];
static bool verbose;
static unsigned n_rec, n_neg, n_ja;

/* Detects text and scores it against exp[0..ne). */
static void eval_one(const struct kura_detector *det, const char *text, const struct expect *exp,
                     size_t ne, const char *shown)
{
    struct kura_errbuf eb = {0};
    size_t tl = strlen(text);
    n_rec++;
    for (size_t k = 0; k < tl; k++)
        if ((unsigned char)text[k] >= 0xE3) {
            n_ja++;
            break;
        }
    if (ne == 0)
        n_neg++;
    struct kura_findings got = {0};
    CHECK(kura_detect(det, NULL, text, tl, &got, &eb) == KURA_OK);
    bool *used = calloc(got.n + 1, 1);
    for (size_t i = 0; i < ne; i++) {
        int t = exp[i].type;
        bool hit = false;
        for (size_t k = 0; k < got.n && !hit; k++)
            if (!used[k] && (int)got.v[k].type == t &&
                span_match((enum kura_pii_type)t, got.v[k].start, got.v[k].end, exp[i].s0, exp[i].s1)) {
                used[k] = true;
                hit = true;
            }
        if (hit) {
            c[t].tp++;
        } else {
            c[t].fn++;
            if (verbose)
                printf("MISS %-16s [%zu,%zu) in: %s\n", kura_pii_type_name(t), exp[i].s0, exp[i].s1, shown);
        }
    }
    for (size_t k = 0; k < got.n; k++)
        if (!used[k]) {
            c[got.v[k].type].fp++;
            if (verbose)
                printf("FALSE %-15s [%zu,%zu) '%.*s' (%s) in: %s\n", kura_pii_type_name(got.v[k].type),
                       got.v[k].start, got.v[k].end, (int)(got.v[k].end - got.v[k].start),
                       text + got.v[k].start, got.v[k].rule, shown);
        }
    free(used);
    kura_findings_free(&got);
}

/* handwritten.txt: one snippet per line, [[type:value]] marks an expected finding. */
static void eval_marked(const struct kura_detector *det, const char *path)
{
    FILE *f = fopen(path, "r");
    CHECKF(f != NULL, "cannot open %s", path);
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = 0;
        if (n == 0 || line[0] == '#')
            continue;
        char *clean = malloc((size_t)n + 1);
        struct expect exp[32];
        size_t ne = 0, o = 0;
        for (char *p = line; *p;) {
            if (p[0] == '[' && p[1] == '[') {
                char *colon = strchr(p + 2, ':'), *end = strstr(p + 2, "]]");
                CHECKF(colon && end && colon < end && ne < 32, "bad markup: %s", line);
                if (!colon || !end || colon > end || ne >= 32)
                    break;
                *colon = 0;
                int t = kura_pii_type_from_name(p + 2);
                CHECKF(t >= 0, "unknown type '%s'", p + 2);
                exp[ne].type = t < 0 ? 0 : t;
                exp[ne].s0 = o;
                memcpy(clean + o, colon + 1, (size_t)(end - colon - 1));
                o += (size_t)(end - colon - 1);
                exp[ne].s1 = o;
                ne++;
                p = end + 2;
            } else {
                clean[o++] = *p++;
            }
        }
        clean[o] = 0;
        eval_one(det, clean, exp, ne, clean);
        free(clean);
    }
    free(line);
    fclose(f);
}

int main(void)
{
    const char *src = getenv("KURA_SRC");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/policy/labelled.jsonl", src ? src : ".");
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    verbose = getenv("KURA_POLICY_EVAL_VERBOSE") != NULL;
    struct kura_detector *det = NULL;
    struct kura_errbuf eb = {0};
    CHECK(kura_detector_create(NULL, &det, &eb) == KURA_OK);
    if (!det)
        return 1;
    bool mecab = kura_detector_has_mecab(det);
    if (!mecab)
        printf("note: %s\n", kura_detector_warning(det));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *rec = json_loadb(line, (size_t)n, 0, &je);
        CHECKF(rec != NULL, "bad line %u: %s", n_rec + 1, je.text);
        if (!rec)
            continue;
        const char *text = json_string_value(json_object_get(rec, "text"));
        json_t *ja = json_object_get(rec, "findings");
        size_t ne = json_array_size(ja);
        struct expect *exp = calloc(ne + 1, sizeof *exp);
        for (size_t i = 0; i < ne; i++) {
            json_t *e = json_array_get(ja, i);
            int t = kura_pii_type_from_name(json_string_value(json_object_get(e, "type")));
            CHECK(t >= 0);
            exp[i].type = t < 0 ? 0 : t;
            exp[i].s0 = (size_t)json_integer_value(json_object_get(e, "start"));
            exp[i].s1 = (size_t)json_integer_value(json_object_get(e, "end"));
        }
        line[strcspn(line, "\n")] = 0;
        eval_one(det, text ? text : "", exp, ne, line);
        free(exp);
        json_decref(rec);
    }
    unsigned n_generated = n_rec;
    snprintf(path, sizeof path, "%s/tests/data/policy/handwritten.txt", src ? src : ".");
    eval_marked(det, path);
    printf("%u generated + %u hand-written snippets\n", n_generated, n_rec - n_generated);
    free(line);
    fclose(f);
    printf("%u snippets (%u Japanese, %u without personal data)\n", n_rec, n_ja, n_neg);
    CHECKF(n_rec >= 300, "only %u snippets", n_rec);
    printf("%-18s %5s %5s %5s %9s %9s\n", "type", "tp", "fp", "fn", "precision", "recall");
    for (int t = 0; t < KURA_PII_RULE; t++) {
        unsigned tp = c[t].tp, fp = c[t].fp, fn = c[t].fn;
        double prec = tp + fp ? (double)tp / (tp + fp) : 1.0;
        double rec = tp + fn ? (double)tp / (tp + fn) : 1.0;
        printf("%-18s %5u %5u %5u %8.1f%% %8.1f%%\n", kura_pii_type_name(t), tp, fp, fn,
               prec * 100, rec * 100);
        CHECKF(tp + fn > 0, "type %s has no labelled examples", kura_pii_type_name(t));
        if (kura_pii_type_is_structured((enum kura_pii_type)t)) {
            CHECKF(rec >= 0.99, "%s recall %.3f < 0.99", kura_pii_type_name(t), rec);
            CHECKF(prec >= 0.97, "%s precision %.3f < 0.97", kura_pii_type_name(t), prec);
        } else if (mecab || t == KURA_PII_ADDRESS) {
            CHECKF(rec >= 0.85, "%s recall %.3f < 0.85", kura_pii_type_name(t), rec);
            CHECKF(prec >= 0.85, "%s precision %.3f < 0.85", kura_pii_type_name(t), prec);
        }
    }
    kura_detector_destroy(det);
    return test_finish();
}
