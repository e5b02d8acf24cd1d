/* Policy engine: normalisation offsets, validators and near-misses, MeCab fallback, policy files
 * (load, lint line numbers), decisions, pseudonymisation and the streaming restorer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kura/policy.h"
#include "test.h"

static struct kura_detector *det, *det_nomecab;

/* The findings of text as "type:start-end;..." */
static void describe(const struct kura_detector *d, const struct kura_policy *pol, const char *text,
                     char *out, size_t cap)
{
    struct kura_findings f = {0};
    struct kura_errbuf eb = {0};
    out[0] = 0;
    if (kura_detect(d, pol, text, strlen(text), &f, &eb)) {
        snprintf(out, cap, "error: %s", eb.msg);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < f.n; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s:%zu-%zu", i ? ";" : "",
                              kura_finding_type_name(&f.v[i]), f.v[i].start, f.v[i].end);
    kura_findings_free(&f);
}

#define EXPECT(d, pol, text, want)                                                           \
    do {                                                                                     \
        char got_[1024];                                                                     \
        describe(d, pol, text, got_, sizeof got_);                                           \
        CHECKF(strcmp(got_, want) == 0, "'%s': got '%s', want '%s'", text, got_, want);     \
    } while (0)

static void test_normalize(void)
{
    const char *s = "ＴＥＬ０３－１２３４ ｶﾞ";
    char *norm;
    uint32_t *map;
    size_t nl;
    CHECK(kura_policy_normalize(s, strlen(s), &norm, &nl, &map, NULL) == KURA_OK);
    CHECKF(strcmp(norm, "TEL03-1234 ガ") == 0, "%s", norm);
    /* '0' came from the 4th full-width char (byte 9), '-' from byte 15 */
    CHECK(map[3] == 9);
    CHECK(map[5] == 15);
    CHECK(map[nl] == strlen(s));
    free(norm);
    free(map);
    /* invalid UTF-8 and NUL bytes are kept as placeholders, never dropped */
    const char bad[] = "a\xff\x00" "b";
    CHECK(kura_policy_normalize(bad, 4, &norm, &nl, &map, NULL) == KURA_OK);
    CHECK(nl == 4 && norm[0] == 'a' && norm[3] == 'b' && map[3] == 3);
    free(norm);
    free(map);
}

static void test_structured(void)
{
    /* spans are bytes of the original: the full-width number is 36 bytes */
    EXPECT(det, NULL, "電話：０３－１２３４－５６７８", "phone:9-45");
    EXPECT(det, NULL, "マイナンバー 123456789018", "my_number:19-31");
    EXPECT(det, NULL, "マイナンバー 123456789019", "");          /* wrong check digit */
    EXPECT(det, NULL, "注文番号 123456789018", "");               /* order number context */
    EXPECT(det, NULL, "法人番号 7000012050002", "corporate_number:13-26");
    EXPECT(det, NULL, "法人番号 7000012050003", "");
    EXPECT(det, NULL, "card 4111-1111-1111-1111.", "credit_card:5-24");
    EXPECT(det, NULL, "card 4111-1111-1111-1112.", "");           /* Luhn */
    EXPECT(det, NULL, "code 9911111111111119", "");              /* Luhn ok, no issuer */
    EXPECT(det, NULL, "Order #09012345678 shipped", "");
    EXPECT(det, NULL, "ORD-0312345678", "");
    EXPECT(det, NULL, "call 090-1234-5678 now", "phone:5-18");
    EXPECT(det, NULL, "+81 3 1234 5678", "phone:0-15");
    EXPECT(det, NULL, "03-1234-567", "");
    EXPECT(det, NULL, "〒105-0011", "postal_code:3-11");
    EXPECT(det, NULL, "部品 105-0011", "");
    EXPECT(det, NULL, "version 1.2.3.4", "");
    EXPECT(det, NULL, "host 10.0.0.1", "ip_address:5-13");
    EXPECT(det, NULL, "at 12:30:45", "");
    EXPECT(det, NULL, "addr 2001:db8::1", "ip_address:5-16");
    EXPECT(det, NULL, "a@b と user@localhost", "");
    EXPECT(det, NULL, "納期 2024年1月2日", "");
    EXPECT(det, NULL, "生年月日 平成元年1月8日", "birth_date:13-33");
    EXPECT(det, NULL, "生年月日 平成99年1月8日", "");             /* no such year */
    EXPECT(det, NULL, "IBAN GB82 WEST 1234 5698 7654 32", "bank_account:5-32");
    EXPECT(det, NULL, "IBAN GB82 WEST 1234 5698 7654 33", "");
}

static void test_names(void)
{
    EXPECT(det_nomecab, NULL, "田中様にお伝えください", "person:0-6");
    EXPECT(det_nomecab, NULL, "お客様にお伝えください", "");
    EXPECT(det_nomecab, NULL, "Dr. Jane Doe called", "person:4-12");
    if (kura_detector_has_mecab(det)) {
        EXPECT(det, NULL, "担当は佐藤花子です", "person:9-21");
        EXPECT(det, NULL, "皆様へ", "");
    } else {
        printf("note: MeCab cases skipped: %s\n", kura_detector_warning(det));
    }
    /* a dictionary that does not exist: detection still works, with a warning */
    struct kura_detector_options o = {false, "/nonexistent/dic"};
    struct kura_detector *d = NULL;
    CHECK(kura_detector_create(&o, &d, NULL) == KURA_OK);
    CHECK(d && !kura_detector_has_mecab(d) && kura_detector_warning(d) &&
          strstr(kura_detector_warning(d), "MeCab"));
    EXPECT(d, NULL, "山田さん 090-1111-2222", "person:0-6;phone:13-26");
    kura_detector_destroy(d);
}

static const char policy_yaml[] =
    "version: 1\n"
    "auto_model: auto\n"
    "levels:\n"
    "  phone: confidential\n"
    "  email: internal\n"
    "rules:\n"
    "  - name: codename\n"
    "    level: secret\n"
    "    keywords: [Sakura, 社外秘]\n"
    "  - name: customer_id\n"
    "    level: confidential\n"
    "    pattern: 'CUST-[0-9]{6}'\n"
    "destinations:\n"
    "  - name: local\n"
    "    kind: local\n"
    "  - name: gpt\n"
    "    kind: upstream\n"
    "    url: https://api.example.com/v1\n"
    "    jurisdiction: US\n"
    "    api_key_env: GPT_KEY\n"
    "    max_level: internal\n"
    "    action: pseudonymise\n"
    "  - name: strict\n"
    "    url: https://api.example.jp/v1\n"
    "    jurisdiction: JP\n"
    "    max_level: public\n"
    "    action: refuse\n"
    "default_destination: gpt\n";

struct lint_rec {
    size_t lines[16];
    char msgs[16][256];
    int n;
};

static void lint_cb(void *ud, size_t line, const char *msg)
{
    struct lint_rec *r = ud;
    if (r->n < 16) {
        r->lines[r->n] = line;
        snprintf(r->msgs[r->n], sizeof r->msgs[r->n], "%s", msg);
        r->n++;
    }
}

static void test_policy_file(struct kura_policy **out)
{
    struct kura_errbuf eb = {0};
    struct kura_policy *p = NULL;
    CHECKF(kura_policy_parse(policy_yaml, strlen(policy_yaml), "t.yaml", &p, &eb) == KURA_OK,
           "%s", eb.msg);
    if (!p)
        return;
    CHECK(kura_policy_n_destinations(p) == 3);
    const struct kura_destination *g = kura_policy_find_destination(p, "gpt");
    CHECK(g && g->kind == KURA_DEST_UPSTREAM && g->max_level == KURA_LEVEL_INTERNAL &&
          g->action == KURA_ACTION_PSEUDONYMISE && !strcmp(g->jurisdiction, "US") &&
          !strcmp(g->api_key_env, "GPT_KEY"));
    CHECK(!strcmp(kura_policy_auto_model(p), "auto"));
    /* operator rules, on normalised text (full-width keyword still matches) */
    EXPECT(det, p, "これは社外秘です", "codename:9-18");
    EXPECT(det, p, "Project ＳＡＫＵＲＡ plan", "codename:8-26");
    EXPECT(det, p, "Sakuraba is a name", "");
    EXPECT(det, p, "id CUST-123456.", "customer_id:3-14");
    *out = p;

    /* lint: every problem with its line */
    static const char bad[] =
        "version: 1\n"                       /* 1 */
        "levls:\n"                           /* 2: unknown key */
        "  phone: secret\n"                  /* 3 */
        "levels:\n"                          /* 4 */
        "  phone: topsecret\n"               /* 5: bad level */
        "  fingerprint: secret\n"            /* 6: unknown type */
        "rules:\n"                           /* 7 */
        "  - name: r1\n"                     /* 8 */
        "    pattern: 'ab(c'\n"              /* 9: bad regex */
        "destinations:\n"                    /* 10 */
        "  - name: up\n"                     /* 11 */
        "    url: ftp://x\n"                 /* 12: not http */
        "    jurisdiction: USA\n"            /* 13: not two letters */
        "    action: delete\n";              /* 14: bad action */
    struct lint_rec r = {0};
    int n = kura_policy_lint_buffer(bad, strlen(bad), lint_cb, &r);
    size_t want[] = {2, 5, 6, 9, 12, 13, 14};
    CHECKF(n >= 7, "%d problems", n);
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        bool seen = false;
        for (int i = 0; i < r.n; i++)
            seen |= r.lines[i] == want[k];
        CHECKF(seen, "no problem reported on line %zu", want[k]);
    }
    for (int i = 0; i < r.n; i++)
        if (r.lines[i] == 9)
            CHECK(strstr(r.msgs[i], "regular expression") != NULL);
    /* load reports file:line of the first problem */
    struct kura_policy *q = NULL;
    CHECK(kura_policy_parse(bad, strlen(bad), "bad.yaml", &q, &eb) == KURA_ERR_FORMAT && !q);
    CHECKF(strncmp(eb.msg, "bad.yaml:2: ", 12) == 0, "%s", eb.msg);
    /* YAML syntax errors carry a line too */
    r.n = 0;
    CHECK(kura_policy_lint_buffer("a: 1\nb: [1, 2\n", 14, lint_cb, &r) == 1 && r.lines[0] >= 2);
    r.n = 0;
    CHECK(kura_policy_lint_buffer(policy_yaml, strlen(policy_yaml), lint_cb, &r) == 0);
    /* a key repeated in one mapping is a problem on the repeat's line, at every level (a second
     * keywords list once overflowed the first one's array: found by fuzz_policy_file) */
    static const char twice[] =
        "version: 1\n"                      /* 1 */
        "rules:\n"                          /* 2 */
        "  - name: r1\n"                    /* 3 */
        "    keywords: [a, b]\n"            /* 4 */
        "    class: r2\n"                   /* 5: alias of name */
        "    keywords: [c, d, e]\n"         /* 6 */
        "destinations:\n"                   /* 7 */
        "  - name: loc\n"                   /* 8 */
        "    kind: local\n"                 /* 9 */
        "    type: local\n"                 /* 10 */
        "levels:\n"                         /* 11 */
        "  phone: secret\n"                 /* 12 */
        "  phone: public\n"                 /* 13 */
        "version: 1\n";                     /* 14 */
    r.n = 0;
    n = kura_policy_lint_buffer(twice, strlen(twice), lint_cb, &r);
    size_t want2[] = {5, 6, 10, 13, 14};
    CHECKF(n == 5, "%d problems", n);
    for (size_t k = 0; k < sizeof want2 / sizeof want2[0]; k++)
        CHECKF(k < (size_t)r.n && r.lines[k] == want2[k] && strstr(r.msgs[k], "given twice"),
               "problem %zu: line %zu '%s'", k, k < (size_t)r.n ? r.lines[k] : 0,
               k < (size_t)r.n ? r.msgs[k] : "");
    CHECK(kura_policy_parse(twice, strlen(twice), "twice.yaml", &q, &eb) == KURA_ERR_FORMAT && !q);
    CHECKF(strstr(eb.msg, "twice.yaml:5: rules[0]: key 'class' given twice") != NULL, "%s", eb.msg);
}

struct chunks {
    char buf[4096];
    size_t n;
    int bad_chunks;
};

static enum kura_err collect(void *ud, const char *data, size_t len)
{
    struct chunks *c = ud;
    /* a chunk must never carry part of a placeholder */
    for (size_t i = 0; i < len; i++)
        if (data[i] == '<' && i + 1 < len && data[i + 1] >= 'A' && data[i + 1] <= 'Z')
            c->bad_chunks++;
    if (len && data[len - 1] == '<')
        c->bad_chunks++;
    if (c->n + len < sizeof c->buf) {
        memcpy(c->buf + c->n, data, len);
        c->n += len;
    }
    return KURA_OK;
}

static void test_decide(const struct kura_policy *p)
{
    struct kura_errbuf eb = {0};
    struct kura_policy_result res;
    const char *plain[] = {"What is the capital of France?"};
    size_t plain_len[] = {strlen(plain[0])};
    CHECK(kura_policy_decide(det, p, plain, plain_len, 1, NULL, &res, NULL, NULL, &eb) == KURA_OK);
    CHECK(res.decision == KURA_DECISION_ALLOW && res.dest && !strcmp(res.dest->name, "gpt") &&
          res.level == KURA_LEVEL_PUBLIC);
    kura_policy_result_free(&res);

    const char *t1 = "山田太郎様の電話は090-1234-5678です。山田太郎様に折り返してください。";
    const char *t2 = "Also email taro@example.com and call 090-1234-5678 or 03-9999-8888.";
    const char *texts[] = {t1, t2};
    size_t lens[] = {strlen(t1), strlen(t2)};
    /* auto: confidential is above gpt's internal -> local */
    CHECK(kura_policy_decide(det, p, texts, lens, 2, "auto", &res, NULL, NULL, &eb) == KURA_OK);
    CHECK(res.decision == KURA_DECISION_ROUTE_LOCAL && res.level == KURA_LEVEL_CONFIDENTIAL &&
          res.dest && !strcmp(res.dest->name, "local"));
    CHECK(strstr(res.reason, "090") == NULL && strstr(res.reason, "phone") != NULL);
    kura_policy_result_free(&res);
    /* strict refuses; unknown destination refuses */
    CHECK(kura_policy_decide(det, p, texts, lens, 2, "strict", &res, NULL, NULL, &eb) == KURA_OK);
    CHECK(res.decision == KURA_DECISION_REFUSE);
    kura_policy_result_free(&res);
    CHECK(kura_policy_decide(det, p, texts, lens, 2, "nosuch", &res, NULL, NULL, &eb) == KURA_OK);
    CHECK(res.decision == KURA_DECISION_REFUSE && !res.dest);
    kura_policy_result_free(&res);
    /* explicit gpt: pseudonymise */
    struct kura_pseudo *ps = NULL;
    char *rw[2];
    CHECK(kura_policy_decide(det, p, texts, lens, 2, "gpt", &res, &ps, rw, &eb) == KURA_OK);
    CHECK(res.decision == KURA_DECISION_PSEUDONYMISE && ps);
    if (!ps) {
        kura_policy_result_free(&res);
        return;
    }
    CHECKF(strstr(rw[0], "090") == NULL && strstr(rw[0], "山田") == NULL, "%s", rw[0]);
    CHECKF(strstr(rw[1], "taro@") == NULL && strstr(rw[1], "9999") == NULL, "%s", rw[1]);
    /* the same phone gets the same placeholder in both texts, the other phone another one */
    CHECK(strstr(rw[0], "<PHONE_1>") && strstr(rw[1], "<PHONE_1>") && strstr(rw[1], "<PHONE_2>"));
    CHECK(strstr(rw[0], "<PERSON_1>様の") != NULL);
    CHECK(kura_pseudo_count(ps) == 4);
    /* the rewritten texts have no findings left */
    for (int i = 0; i < 2; i++) {
        struct kura_findings f = {0};
        CHECK(kura_detect(det, p, rw[i], strlen(rw[i]), &f, NULL) == KURA_OK);
        CHECKF(f.n == 0, "text %d still has %zu findings: %s", i, f.n, rw[i]);
        kura_findings_free(&f);
    }
    /* the restorer, fed in every chunk size, restores exactly and never splits a placeholder */
    const char *answer = "<PERSON_1>様 (<PHONE_1>) と <PHONE_2>, <EMAIL_1>. a<b, <UNKNOWN_9>, <PHONE_";
    const char *want = "山田太郎様 (090-1234-5678) と 03-9999-8888, taro@example.com. a<b, <UNKNOWN_9>, <PHONE_";
    for (size_t step = 1; step <= strlen(answer); step++) {
        struct chunks c = {0};
        struct kura_restorer *r;
        CHECK(kura_restorer_create(ps, collect, &c, &r) == KURA_OK);
        for (size_t off = 0; off < strlen(answer); off += step) {
            size_t l = strlen(answer) - off < step ? strlen(answer) - off : step;
            CHECK(kura_restorer_feed(r, answer + off, l) == KURA_OK);
        }
        CHECK(kura_restorer_finish(r) == KURA_OK);
        kura_restorer_destroy(r);
        c.buf[c.n] = 0;
        CHECKF(strcmp(c.buf, want) == 0, "step %zu: %s", step, c.buf);
        /* only the literal "a<b", "<UNKNOWN_9>" and the dangling "<PHONE_" may show '<' */
        CHECKF(c.bad_chunks <= 3, "step %zu: %d chunks with placeholder parts", step, c.bad_chunks);
    }
    char *whole;
    size_t wl;
    CHECK(kura_pseudo_restore(ps, answer, strlen(answer), &whole, &wl) == KURA_OK);
    CHECK(strcmp(whole, want) == 0);
    free(whole);
    free(rw[0]);
    free(rw[1]);
    kura_pseudo_destroy(ps);
    kura_policy_result_free(&res);

    /* redaction: placeholders are not restorable */
    struct kura_pseudo *rd;
    CHECK(kura_pseudo_create(true, &rd) == KURA_OK);
    struct kura_findings f = {0};
    CHECK(kura_detect(det, p, t2, strlen(t2), &f, NULL) == KURA_OK);
    char *o;
    size_t ol;
    CHECK(kura_pseudo_apply(rd, t2, strlen(t2), &f, &o, &ol) == KURA_OK);
    CHECKF(strstr(o, "[REDACTED_EMAIL]") && strstr(o, "[REDACTED_PHONE]") && !strstr(o, "taro"), "%s", o);
    free(o);
    kura_findings_free(&f);
    kura_pseudo_destroy(rd);
}

/* An operator pattern that backtracks without end must not leave the text unchecked: detection
 * fails (so the request goes nowhere) and says which rule gave up. */
static void test_runaway_rule(void)
{
    static const char yaml[] =
        "rules:\n"
        "  - name: runaway\n"
        "    pattern: '(a|aa)+$'\n"
        "destinations:\n"
        "  - {name: local, kind: local}\n";
    struct kura_errbuf eb = {0};
    struct kura_policy *p = NULL;
    CHECKF(kura_policy_parse(yaml, strlen(yaml), "runaway.yaml", &p, &eb) == KURA_OK, "%s", eb.msg);
    if (!p)
        return;
    char text[200];
    memset(text, 'a', 120);
    strcpy(text + 120, "b 090-1234-5678");
    struct kura_findings f = {0};
    enum kura_err e = kura_detect(det, p, text, strlen(text), &f, &eb);
    CHECKF(e == KURA_ERR_BUSY && strstr(eb.msg, "policy rule 'runaway'") &&
               strstr(eb.msg, "not fully checked"), "%d %s", (int)e, eb.msg);
    kura_findings_free(&f);
    /* the same rule on text it handles quickly still finds what it should */
    memset(&f, 0, sizeof f);
    CHECKF(kura_detect(det, p, "xx aaaa", 7, &f, &eb) == KURA_OK && f.n == 1 &&
               f.v[0].start == 3 && f.v[0].end == 7, "%s n=%zu", eb.msg, f.n);
    kura_findings_free(&f);
    kura_policy_destroy(p);
}

int main(void)
{
    struct kura_errbuf eb = {0};
    CHECK(kura_detector_create(NULL, &det, &eb) == KURA_OK);
    struct kura_detector_options o = {true, NULL};
    CHECK(kura_detector_create(&o, &det_nomecab, &eb) == KURA_OK);
    if (!det || !det_nomecab)
        return 1;
    test_normalize();
    test_structured();
    test_names();
    struct kura_policy *p = NULL;
    test_policy_file(&p);
    if (p)
        test_decide(p);
    kura_policy_destroy(p);
    test_runaway_rule();
    kura_detector_destroy(det);
    kura_detector_destroy(det_nomecab);
    kura_detector_destroy(NULL);
    kura_policy_destroy(NULL);
    kura_pseudo_destroy(NULL);
    return test_finish();
}
