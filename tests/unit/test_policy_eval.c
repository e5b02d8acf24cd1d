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
    bool verbose = getenv("KURA_POLICY_EVAL_VERBOSE") != NULL;
    struct kura_detector *det = NULL;
    struct kura_errbuf eb = {0};
    CHECK(kura_detector_create(NULL, &det, &eb) == KURA_OK);
    if (!det)
        return 1;
    bool mecab = kura_detector_has_mecab(det);
    if (!mecab)
        printf("note: %s\n", kura_detector_warning(det));
    struct counts c[KURA_PII__COUNT];
    memset(c, 0, sizeof c);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned n_rec = 0, n_neg = 0, n_ja = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *rec = json_loadb(line, (size_t)n, 0, &je);
        CHECKF(rec != NULL, "bad line %u: %s", n_rec + 1, je.text);
        if (!rec)
            continue;
        n_rec++;
        const char *text = json_string_value(json_object_get(rec, "text"));
        json_t *exp = json_object_get(rec, "findings");
        size_t tl = strlen(text);
        for (size_t k = 0; k < tl; k++)
            if ((unsigned char)text[k] >= 0xE3) {
                n_ja++;
                break;
            }
        if (json_array_size(exp) == 0)
            n_neg++;
        struct kura_findings got = {0};
        CHECK(kura_detect(det, NULL, text, tl, &got, &eb) == KURA_OK);
        size_t ne = json_array_size(exp);
        bool *used = calloc(got.n + 1, 1);
        for (size_t i = 0; i < ne; i++) {
            json_t *e = json_array_get(exp, i);
            int t = kura_pii_type_from_name(json_string_value(json_object_get(e, "type")));
            size_t s0 = (size_t)json_integer_value(json_object_get(e, "start"));
            size_t s1 = (size_t)json_integer_value(json_object_get(e, "end"));
            CHECK(t >= 0);
            if (t < 0)
                continue;
            bool hit = false;
            for (size_t k = 0; k < got.n && !hit; k++)
                if (!used[k] && (int)got.v[k].type == t &&
                    span_match((enum kura_pii_type)t, got.v[k].start, got.v[k].end, s0, s1)) {
                    used[k] = true;
                    hit = true;
                }
            if (hit) {
                c[t].tp++;
            } else {
                c[t].fn++;
                if (verbose)
                    printf("MISS %-16s [%zu,%zu) in: %s", kura_pii_type_name(t), s0, s1, line);
            }
        }
        for (size_t k = 0; k < got.n; k++)
            if (!used[k]) {
                c[got.v[k].type].fp++;
                if (verbose)
                    printf("FALSE %-15s [%zu,%zu) '%.*s' (%s) in: %s",
                           kura_pii_type_name(got.v[k].type), got.v[k].start, got.v[k].end,
                           (int)(got.v[k].end - got.v[k].start), text + got.v[k].start,
                           got.v[k].rule, line);
            }
        free(used);
        kura_findings_free(&got);
        json_decref(rec);
    }
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
