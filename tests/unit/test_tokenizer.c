/* Tokenizer API behaviour: a hand-made SPM vocabulary (always runs), corrupt metadata, pieces,
 * decode, EOG ids, invalid UTF-8, concurrent encodes and a long prompt on the shared vocabularies
 * (skipped parts when ../shared is absent). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kura/gguf.h"
#include "kura/tokenizer.h"
#include "test.h"

/* ---- a tiny GGUF writer ---- */
struct wbuf {
    unsigned char b[65536];
    size_t n;
};
static void w_raw(struct wbuf *w, const void *p, size_t n)
{
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void w_u32(struct wbuf *w, uint32_t v) { w_raw(w, &v, 4); }
static void w_u64(struct wbuf *w, uint64_t v) { w_raw(w, &v, 8); }
static void w_str(struct wbuf *w, const char *s)
{
    w_u64(w, strlen(s));
    w_raw(w, s, strlen(s));
}
static void w_key(struct wbuf *w, const char *k, uint32_t type)
{
    w_str(w, k);
    w_u32(w, type);
}

#define N_SPM (3 + 256 + 6)
static const char *spm_words[] = {"\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab",
                                  "\xE2\x96\x81" "ab"};
static const float spm_scores[] = {-1, -2, -2, -3, -4, -1};

/* model: tokenizer.ggml.model; n_scores: entries in the scores array (N_SPM unless testing) */
static size_t make_spm(struct wbuf *w, const char *model, uint64_t n_scores)
{
    w->n = 0;
    w_raw(w, "GGUF", 4);
    w_u32(w, 3);
    w_u64(w, 0); /* tensors */
    w_u64(w, 4); /* kv */
    w_key(w, "tokenizer.ggml.model", 8);
    w_str(w, model);
    w_key(w, "tokenizer.ggml.tokens", 9);
    w_u32(w, 8);
    w_u64(w, N_SPM);
    w_str(w, "<unk>");
    w_str(w, "<s>");
    w_str(w, "</s>");
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        w_str(w, name);
    }
    for (int i = 0; i < 6; i++)
        w_str(w, spm_words[i]);
    w_key(w, "tokenizer.ggml.scores", 9);
    w_u32(w, 6);
    w_u64(w, n_scores);
    for (uint64_t i = 0; i < n_scores; i++) {
        float s = i >= 259 && i - 259 < 6 ? spm_scores[i - 259] : 0.0f;
        w_raw(w, &s, 4);
    }
    w_key(w, "tokenizer.ggml.token_type", 9);
    w_u32(w, 5);
    w_u64(w, N_SPM);
    for (int i = 0; i < N_SPM; i++) {
        int32_t ty = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
        w_raw(w, &ty, 4);
    }
    return w->n;
}

static struct kura_tok *open_tok(const void *buf, size_t len, enum kura_err *err,
                                 struct kura_errbuf *eb)
{
    struct kura_gguf *g = NULL;
    struct kura_tok *t = NULL;
    *err = kura_gguf_open_buffer(buf, len, &g, eb);
    if (!*err)
        *err = kura_tok_create(g, &t, eb);
    kura_gguf_close(g);
    return t;
}

static int ids_are(const int32_t *ids, size_t n, const int32_t *exp, size_t n_exp)
{
    return n == n_exp && (n == 0 || memcmp(ids, exp, n * sizeof *ids) == 0);
}

static void test_spm_synthetic(void)
{
    static struct wbuf w;
    enum kura_err err;
    struct kura_errbuf eb = {0};
    size_t len = make_spm(&w, "llama", N_SPM);
    struct kura_tok *t = open_tok(w.b, len, &err, &eb);
    CHECKF(err == KURA_OK, "%s", eb.msg);
    if (!t)
        return;
    CHECK(kura_tok_kind(t) == KURA_TOK_SPM);
    CHECK(kura_tok_n_vocab(t) == N_SPM);
    CHECK(kura_tok_bos(t) == 1 && kura_tok_eos(t) == 2 && kura_tok_unk(t) == 0);
    CHECK(kura_tok_add_bos(t) && !kura_tok_add_eos(t));
    CHECK(kura_tok_is_eog(t, 2) && !kura_tok_is_eog(t, 1) && !kura_tok_is_eog(t, -5));
    const int32_t A = 259, AB = 263, SP_AB = 264, SP_A = 262;
    int32_t *ids;
    size_t n;
    /* highest-score merges: "▁ab" twice */
    CHECK(kura_tok_encode(t, "ab ab", 5, true, true, &ids, &n, NULL) == KURA_OK);
    CHECK(ids_are(ids, n, (int32_t[]){1, SP_AB, SP_AB}, 3));
    free(ids);
    /* byte fallback for characters with no token; "</s>" parsed as the control token */
    CHECK(kura_tok_encode(t, "a\xC3\xA9</s>", 7, false, true, &ids, &n, NULL) == KURA_OK);
    CHECK(ids_are(ids, n, (int32_t[]){SP_A, 3 + 0xC3, 3 + 0xA9, 2}, 4));
    /* pieces: control -> nothing unless asked, byte token -> the byte, ▁ -> space */
    char buf[16];
    CHECK(kura_tok_piece(t, 2, 0, buf, sizeof buf) == 0);
    CHECK(kura_tok_piece(t, 2, KURA_TOK_PIECE_SPECIAL, buf, sizeof buf) == 4 &&
          memcmp(buf, "</s>", 4) == 0);
    CHECK(kura_tok_piece(t, 3 + 0xC3, 0, buf, sizeof buf) == 1 && (unsigned char)buf[0] == 0xC3);
    CHECK(kura_tok_piece(t, SP_AB, 0, buf, sizeof buf) == 3 && memcmp(buf, " ab", 3) == 0);
    CHECK(kura_tok_piece(t, SP_AB, 0, buf, 1) == 3 && buf[0] == ' '); /* truncated: full length */
    CHECK(kura_tok_piece(t, N_SPM, 0, buf, sizeof buf) == 0);
    free(ids);
    /* without parse_special, "</s>" is text */
    CHECK(kura_tok_encode(t, "</s>", 4, false, false, &ids, &n, NULL) == KURA_OK);
    CHECK(n > 1 && ids[n - 1] != 2);
    free(ids);
    /* decode drops the space prefix; after a BOS the reference keeps it */
    char *text;
    size_t tl;
    CHECK(kura_tok_encode(t, "ab a", 4, false, true, &ids, &n, NULL) == KURA_OK);
    CHECK(kura_tok_decode(t, ids, n, 0, &text, &tl, NULL) == KURA_OK);
    CHECK(tl == 4 && strcmp(text, "ab a") == 0);
    free(text);
    free(ids);
    CHECK(kura_tok_encode(t, "ab a", 4, true, true, &ids, &n, NULL) == KURA_OK);
    CHECK(kura_tok_decode(t, ids, n, 0, &text, &tl, NULL) == KURA_OK);
    CHECK(tl == 5 && strcmp(text, " ab a") == 0);
    free(text);
    free(ids);
    int32_t bad[2] = {A, 99999};
    CHECK(kura_tok_decode(t, bad, 2, 0, &text, &tl, &eb) == KURA_ERR_INVALID && text == NULL);
    /* empty text: just BOS */
    CHECK(kura_tok_encode(t, "", 0, true, true, &ids, &n, NULL) == KURA_OK);
    CHECK(ids_are(ids, n, (int32_t[]){1}, 1));
    free(ids);
    (void)AB;
    kura_tok_destroy(t);
    kura_tok_destroy(NULL);

    /* corrupt or unsupported metadata is an error with a message, never a crash */
    len = make_spm(&w, "klingon", N_SPM);
    t = open_tok(w.b, len, &err, &eb);
    CHECKF(err == KURA_ERR_UNSUPPORTED && t == NULL && strstr(eb.msg, "klingon"), "%s", eb.msg);
    len = make_spm(&w, "llama", N_SPM - 1);
    t = open_tok(w.b, len, &err, &eb);
    CHECKF(err == KURA_ERR_FORMAT && t == NULL && strstr(eb.msg, "scores"), "%s", eb.msg);
    len = make_spm(&w, "gpt2", N_SPM); /* BPE without merges */
    t = open_tok(w.b, len, &err, &eb);
    CHECKF(err == KURA_ERR_FORMAT && t == NULL && strstr(eb.msg, "merges"), "%s", eb.msg);
}

/* ---- shared vocabularies ---- */

static struct kura_tok *load_shared(const char *shared, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/models/vocab/ggml-vocab-%s.gguf", shared, name);
    struct kura_gguf *g = NULL;
    struct kura_tok *t = NULL;
    struct kura_errbuf eb = {0};
    if (kura_gguf_open(path, &g, &eb) || kura_tok_create(g, &t, &eb))
        CHECKF(0, "%s: %s", path, eb.msg);
    kura_gguf_close(g);
    return t;
}

struct job {
    const struct kura_tok *t;
    const char *text;
    const int32_t *exp;
    size_t n_exp;
    int failures;
};

static void *encode_many(void *arg)
{
    struct job *j = arg;
    for (int k = 0; k < 200; k++) {
        int32_t *ids;
        size_t n;
        if (kura_tok_encode(j->t, j->text, strlen(j->text), true, true, &ids, &n, NULL) ||
            !ids_are(ids, n, j->exp, j->n_exp))
            j->failures++;
        free(ids);
    }
    return NULL;
}

static void test_shared(const char *shared)
{
    struct kura_tok *t = load_shared(shared, "qwen2");
    if (t) {
        /* chat markers are special tokens and end generation as the reference decides */
        int32_t im_end = kura_tok_find(t, "<|im_end|>", 10);
        int32_t im_start = kura_tok_find(t, "<|im_start|>", 12);
        CHECK(im_end >= 0 && im_start >= 0);
        CHECK(kura_tok_is_eog(t, im_end) && !kura_tok_is_eog(t, im_start));
        CHECK(kura_tok_is_eog(t, kura_tok_eos(t)));
        const char *chat = "<|im_start|>user\n日本語で？<|im_end|>\n";
        int32_t *ids;
        size_t n;
        CHECK(kura_tok_encode(t, chat, strlen(chat), false, true, &ids, &n, NULL) == KURA_OK);
        CHECK(n > 3 && ids[0] == im_start);
        int found = 0;
        for (size_t i = 0; i < n; i++)
            found |= ids[i] == im_end;
        CHECK(found);
        /* byte-level pieces give the original bytes back */
        char *text;
        size_t tl;
        CHECK(kura_tok_decode(t, ids, n, KURA_TOK_PIECE_SPECIAL, &text, &tl, NULL) == KURA_OK);
        CHECK(tl == strlen(chat) && strcmp(text, chat) == 0);
        free(text);
        CHECK(kura_tok_decode(t, ids, n, 0, &text, &tl, NULL) == KURA_OK);
        CHECK(strcmp(text, "user\n日本語で？\n") == 0);
        free(text);

        /* concurrent encodes on one tokenizer give identical results */
        struct job jobs[4];
        pthread_t th[4];
        for (int k = 0; k < 4; k++) {
            jobs[k] = (struct job){t, chat, ids, n, 0};
            CHECK(pthread_create(&th[k], NULL, encode_many, &jobs[k]) == 0);
        }
        for (int k = 0; k < 4; k++) {
            pthread_join(th[k], NULL);
            CHECK(jobs[k].failures == 0);
        }
        free(ids);

        /* invalid UTF-8 is tokenized, not rejected (as U+FFFD) */
        CHECK(kura_tok_encode(t, "a\xFF\xC3", 3, false, true, &ids, &n, NULL) == KURA_OK);
        CHECK(n >= 2);
        free(ids);
        kura_tok_destroy(t);
    }

    /* a 100 KB prompt, including one 50 KB "word", completes (merge work is O(n log n)) */
    const char *names[] = {"llama-bpe", "llama-spm", "gemma-4", "nomic-bert-moe", "bert-bge"};
    size_t big_len = 100000;
    char *big = malloc(big_len);
    const char *seed = "日本の個人情報保護法では、Hello world 123 ";
    for (size_t i = 0; i < big_len / 2; i++)
        big[i] = seed[i % strlen(seed)];
    memset(big + big_len / 2, 'a', big_len / 2);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        t = load_shared(shared, names[k]);
        if (!t)
            continue;
        int32_t *ids;
        size_t n;
        CHECKF(kura_tok_encode(t, big, big_len, true, true, &ids, &n, NULL) == KURA_OK, "%s",
               names[k]);
        CHECKF(n > 1000, "%s: %zu ids", names[k], n);
        free(ids);
        kura_tok_destroy(t);
    }
    free(big);

    /* SPM pieces and gemma4 piece rendering */
    t = load_shared(shared, "gemma-4");
    if (t) {
        char buf[64];
        int32_t sp = kura_tok_find(t, "\xE2\x96\x81", 3);
        CHECK(sp >= 0 && kura_tok_piece(t, sp, 0, buf, sizeof buf) == 1 && buf[0] == ' ');
        int32_t turn = kura_tok_find(t, "<turn|>", 7);
        CHECK(turn >= 0 && kura_tok_is_eog(t, turn));
        int32_t s_end = kura_tok_find(t, "</s>", 4);
        CHECK(s_end >= 0 && !kura_tok_is_eog(t, s_end)); /* text there, not a stop */
        kura_tok_destroy(t);
    }
}

int main(void)
{
    test_spm_synthetic();
    const char *shared = test_shared_dir();
    if (shared)
        test_shared(shared);
    else
        printf("shared-vocabulary checks skipped\n");
    return test_finish();
}
