/* JSON-mode validator and token mask. */
#include "kura/json_constraint.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static bool accepts(const char *s)
{
    struct kura_jsonc st;
    kura_jsonc_init(&st);
    return kura_jsonc_push(&st, s, strlen(s)) && kura_jsonc_complete(&st);
}

/* Valid as a prefix (not necessarily complete). */
static bool prefix_ok(const char *s, size_t n)
{
    struct kura_jsonc st;
    kura_jsonc_init(&st);
    return kura_jsonc_push(&st, s, n);
}

static void test_documents(void)
{
    const char *good[] = {
        "{}", " {} ", "{\"a\":1}", "{\"a\": [1, 2.5, -0.1e+10, true, false, null, {}, []]}",
        "{\"k\":\"v\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"}", "{\"emoji\":\"\\ud83d\\ude00\"}",
        "{\"utf8\":\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", "{\"a\":{\"b\":{\"c\":[[]]}}}",
        "{\"n\":0,\"m\":-0,\"x\":1E5,\"y\":0.5e-3}", "\n\t{ \"a\" : 1 }\r\n",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECKF(accepts(good[i]), "should accept: %s", good[i]);
    const char *bad[] = {
        "", "[]", "1", "\"a\"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}", "{\"a\":01}",
        "{\"a\":1.}", "{\"a\":.5}", "{\"a\":+1}", "{\"a\":1e}", "{\"a\":tru}", "{\"a\":nul}",
        "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12G4\"}", "{\"a\":\"\\udc00\"}",
        "{\"a\":\"\\ud800\"}", "{\"a\":\"\\ud800\\u0041\"}", "{\"a\":\"\xc0\xaf\"}",
        "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xff\"}",
        "{\"a\":1}x", "{\"a\":1}{}", "{'a':1}", "{\"a\":[1 2]}", "{\"a\":[1,]}", "{\"a\":1]",
        "{\"a\":1234567890123456789}", "{\"a\":1e123}", "{\"a\":NaN}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECKF(!accepts(bad[i]), "should reject: %s", bad[i]);
    /* rejection happens at the first impossible byte, not later */
    CHECK(!prefix_ok("{\"a\":01", 7) && prefix_ok("{\"a\":0", 6));
    CHECK(!prefix_ok("{\"a\":\"\\udc", 10) && prefix_ok("{\"a\":\"\\ud8", 10));
    CHECK(!prefix_ok("{\"a\":\"\xc0", 7));
    CHECK(!prefix_ok("x", 1) && !prefix_ok("[", 1));
    /* limits */
    char deep[2 * KURA_JSONC_MAX_DEPTH + 16];
    size_t n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = '"';
    deep[n++] = ':';
    for (int d = 1; d < KURA_JSONC_MAX_DEPTH; d++)
        deep[n++] = '[';
    CHECK(prefix_ok(deep, n));
    deep[n++] = '[';
    CHECK(!prefix_ok(deep, n));
    char ws[KURA_JSONC_MAX_WS + 4];
    memset(ws, ' ', sizeof ws);
    CHECK(prefix_ok(ws, KURA_JSONC_MAX_WS) && !prefix_ok(ws, KURA_JSONC_MAX_WS + 1));
}

/* Every prefix of valid documents closes with the shortest completion, whose length is
 * close_len, and the completed text parses as an object with jansson. */
static void test_completion(void)
{
    const char *docs[] = {
        "{\"key\": [1, -2.5e+3, {\"x\": \"a\\u00e9\\ud83d\\ude00\xe2\x82\xac\"}, true, null], "
        "\"b\": false, \"c\": {}}",
        "  {\"\\ud834\\udd1e\": [[[\"\\n\"]]], \"z\": 0.0}  ",
    };
    for (size_t d = 0; d < sizeof docs / sizeof *docs; d++) {
        size_t len = strlen(docs[d]);
        for (size_t cut = 0; cut <= len; cut++) {
            struct kura_jsonc st;
            kura_jsonc_init(&st);
            CHECK(kura_jsonc_push(&st, docs[d], cut));
            char buf[4096];
            memcpy(buf, docs[d], cut);
            size_t cl = kura_jsonc_close(&st, buf + cut, KURA_JSONC_MAX_CLOSE);
            CHECK(cl == kura_jsonc_close_len(&st));
            struct kura_jsonc st2 = st;
            bool ok = kura_jsonc_push(&st2, buf + cut, cl) &&
                      (kura_jsonc_complete(&st2) || (cl == 0 && cut > 0));
            CHECKF(ok, "doc %zu cut %zu: completion '%.*s' does not close", d, cut, (int)cl,
                   buf + cut);
            json_error_t err;
            json_t *j = json_loadb(buf, cut + cl, 0, &err);
            CHECKF(j && json_is_object(j), "doc %zu cut %zu: '%.*s' does not parse: %s", d, cut,
                   (int)(cut + cl), buf, err.text);
            json_decref(j);
        }
    }
    char small[2];
    struct kura_jsonc st;
    kura_jsonc_init(&st);
    CHECK(kura_jsonc_close_len(&st) == 2);
    CHECK(kura_jsonc_close(&st, small, 1) == 0);
}

/* The mask over a vocabulary with the pieces below (through a fake tokenizer is not possible:
 * use a real one when the shared models are there). */
static void test_mask(void)
{
    const char *shared = test_shared_dir();
    if (!shared)
        return;
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K-F32.gguf", shared);
    struct kura_gguf *g = NULL;
    struct kura_errbuf eb = {0};
    if (kura_gguf_open(path, &g, &eb) != KURA_OK) {
        CHECKF(0, "open %s: %s", path, eb.msg);
        return;
    }
    struct kura_tok *tok = NULL;
    CHECK(kura_tok_create(g, &tok, &eb) == KURA_OK);
    struct kura_jsonc_vocab *v = NULL;
    CHECK(kura_jsonc_vocab_create(tok, &v, &eb) == KURA_OK);
    int32_t nv = kura_tok_n_vocab(tok);
    float *logits = malloc((size_t)nv * sizeof(float));
    uint8_t *scratch = malloc((size_t)nv);
    struct kura_jsonc st;
    kura_jsonc_init(&st);
    /* greedy walk over uniform-ish logits that prefer long tokens: must stay valid and close in
     * time for every budget */
    for (int32_t budget = 2; budget <= 40; budget += 3) {
        kura_jsonc_init(&st);
        char out[4096];
        size_t n_out = 0;
        unsigned seed = (unsigned)budget;
        int32_t used = 0;
        for (; used < budget && !kura_jsonc_complete(&st); used++) {
            for (int32_t t = 0; t < nv; t++) {
                seed = seed * 1103515245u + 12345u;
                logits[t] = (float)((seed >> 16) % 1000) / 100.0f;
            }
            int32_t n_ok = kura_jsonc_mask(v, &st, budget - used, scratch, logits);
            CHECK(n_ok > 0);
            int32_t best = 0;
            for (int32_t t = 1; t < nv; t++)
                if (logits[t] > logits[best])
                    best = t;
            CHECK(isfinite(logits[best]));
            CHECK(!kura_tok_is_eog(tok, best));
            char piece[256];
            size_t pl = kura_tok_piece(tok, best, 0, piece, sizeof piece);
            CHECK(pl > 0 && pl <= sizeof piece);
            CHECK(kura_jsonc_push(&st, piece, pl));
            if (n_out + pl < sizeof out) {
                memcpy(out + n_out, piece, pl);
                n_out += pl;
            }
        }
        CHECKF(kura_jsonc_complete(&st), "budget %d: '%.*s' not closed", budget, (int)n_out, out);
        json_error_t err;
        json_t *j = json_loadb(out, n_out, 0, &err);
        CHECKF(j && json_is_object(j), "budget %d: '%.*s': %s", budget, (int)n_out, out, err.text);
        json_decref(j);
    }
    /* a state inside a string: every allowed token keeps it valid */
    kura_jsonc_init(&st);
    CHECK(kura_jsonc_push(&st, "{\"a\":\"x", 7));
    for (int32_t t = 0; t < nv; t++)
        logits[t] = 0.0f;
    int32_t n_ok = kura_jsonc_mask(v, &st, 1000, scratch, logits);
    int32_t counted = 0;
    bool all_valid = true;
    for (int32_t t = 0; t < nv; t++) {
        if (isinf(logits[t]))
            continue;
        counted++;
        char piece[256];
        size_t pl = kura_tok_piece(tok, t, 0, piece, sizeof piece);
        struct kura_jsonc c = st;
        all_valid &= pl > 0 && kura_jsonc_push(&c, piece, pl);
    }
    CHECK(counted == n_ok && all_valid && n_ok > nv / 2);
    /* whitespace runs stay capped even through multi-space tokens */
    kura_jsonc_init(&st);
    CHECK(kura_jsonc_push(&st, "{                              ", 31)); /* 30 spaces */
    for (int32_t t = 0; t < nv; t++)
        logits[t] = 0.0f;
    kura_jsonc_mask(v, &st, 1000, scratch, logits);
    bool ws_ok = true;
    for (int32_t t = 0; t < nv; t++) {
        char piece[256];
        size_t pl = kura_tok_piece(tok, t, 0, piece, sizeof piece);
        struct kura_jsonc c = st;
        bool valid = pl > 0 && pl <= sizeof piece && !kura_tok_is_eog(tok, t) &&
                     kura_jsonc_push(&c, piece, pl);
        ws_ok &= valid == !isinf(logits[t]) && valid == (scratch[t] != 0);
    }
    CHECK(ws_ok);
    free(scratch);
    free(logits);
    kura_jsonc_vocab_destroy(v);
    kura_jsonc_vocab_destroy(NULL);
    kura_tok_destroy(tok);
    kura_gguf_close(g);
}

int main(void)
{
    test_documents();
    test_completion();
    test_mask();
    return test_finish();
}
