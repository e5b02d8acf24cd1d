/* `kura model synth`: tensor names/types/shapes and metadata equal to real files of each family,
 * the tokenizer copied, seeded determinism, weight statistics, and parameter validation. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kura/gguf.h"
#include "kura/synth.h"
#include "test.h"

static char tmpdir[256];
static char vocab_spm[1024], vocab_bpe[1024];

static struct kura_synth_params tiny(const char *arch, enum kura_qmix mix)
{
    struct kura_synth_params p = {.arch = arch, .n_embd = 256, .n_layer = 2, .n_head = 4,
                                  .n_head_kv = 2, .n_ff = 512, .n_ctx = 2048,
                                  .vocab_path = vocab_spm, .mix = mix, .seed = 42,
                                  .n_threads = 2};
    return p;
}

/* Same tensor set (name, type, dims) and same values for the listed metadata keys. */
static void same_structure(const char *got_path, const char *want_path, const char *skip_tensor)
{
    struct kura_errbuf eb = {0};
    struct kura_gguf *got = NULL, *want = NULL;
    CHECKF(kura_gguf_open(got_path, &got, &eb) == KURA_OK, "%s", eb.msg);
    CHECKF(kura_gguf_open(want_path, &want, &eb) == KURA_OK, "%s", eb.msg);
    if (!got || !want)
        goto done;
    int64_t n_want = 0;
    for (int64_t i = 0; i < kura_gguf_n_tensors(want); i++) {
        const struct kura_gguf_tensor *w = kura_gguf_tensor(want, i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)w->name.len, w->name.ptr);
        if (skip_tensor && strcmp(name, skip_tensor) == 0)
            continue;
        n_want++;
        const struct kura_gguf_tensor *g = kura_gguf_find_tensor(got, name);
        CHECKF(g && g->type == w->type && g->n_dims == w->n_dims &&
               memcmp(g->ne, w->ne, sizeof g->ne) == 0, "%s: tensor %s differs from %s",
               got_path, name, want_path);
    }
    CHECKF(kura_gguf_n_tensors(got) == n_want, "%s: %" PRId64 " tensors, want %" PRId64,
           got_path, kura_gguf_n_tensors(got), n_want);
    /* Every model key of the reference (architecture and hyper-parameters) with the same value. */
    char a[1024], b[1024];
    for (int64_t i = 0; i < kura_gguf_n_kv(want); i++) {
        struct kura_str k = kura_gguf_key(want, i);
        if (k.len >= 10 && (memcmp(k.ptr, "tokenizer.", 10) == 0 || memcmp(k.ptr, "general.n", 9) == 0))
            continue;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
        int64_t j = kura_gguf_find_key(got, key);
        kura_gguf_kv_format(want, i, a, sizeof a);
        kura_gguf_kv_format(got, j, b, sizeof b);
        CHECKF(j >= 0 && kura_gguf_kv_type(got, j) == kura_gguf_kv_type(want, i) &&
               strcmp(a, b) == 0, "%s: %s = %s, want %s", got_path, key, b, a);
    }
done:
    kura_gguf_close(got);
    kura_gguf_close(want);
}

static void test_shapes(const char *shared)
{
    static const char *archs[] = {"qwen2", "qwen3"};
    static const struct { enum kura_qmix mix; const char *suffix; } mixes[] = {
        {KURA_QMIX_F32, "F32"}, {KURA_QMIX_Q4_K_M, "Q4_K_M"}, {KURA_QMIX_Q5_K_M, "Q5_K_M"},
        {KURA_QMIX_Q8_0, "Q8_0"}, {KURA_QMIX_Q4_0, "Q4_0"}};
    char out[512], want[1024];
    struct kura_errbuf eb = {0};
    for (int a = 0; a < 2; a++)
        for (size_t m = 0; m < sizeof mixes / sizeof mixes[0]; m++) {
            struct kura_synth_params p = tiny(archs[a], mixes[m].mix);
            snprintf(out, sizeof out, "%s/%s.gguf", tmpdir, archs[a]);
            snprintf(want, sizeof want, "%s/models/tiny-%s-%s.gguf", shared, archs[a],
                     mixes[m].suffix);
            enum kura_err e = kura_synth_write(&p, out, NULL, &eb);
            CHECKF(e == KURA_OK, "%s: %s", archs[a], eb.msg);
            if (e == KURA_OK)
                same_structure(out, want, NULL);
            unlink(out);
        }
    /* Llama 3 shape with the real 128256-token BPE vocabulary and tied embeddings, as
     * tiny-llama3-Q8_0 (which also carries Llama-3.1 rope_freqs, not generated here). */
    struct kura_synth_params p = {.arch = "llama", .n_embd = 64, .n_layer = 2, .n_head = 2,
                                  .n_head_kv = 2, .n_ff = 192, .n_ctx = 2048,
                                  .rope_theta = 500000, .tied = true, .vocab_path = vocab_bpe,
                                  .mix = KURA_QMIX_Q8_0, .seed = 1, .n_threads = 2};
    snprintf(out, sizeof out, "%s/llama.gguf", tmpdir);
    snprintf(want, sizeof want, "%s/models/tiny-llama3-Q8_0.gguf", shared);
    CHECKF(kura_synth_write(&p, out, NULL, &eb) == KURA_OK, "%s", eb.msg);
    same_structure(out, want, "rope_freqs.weight");
    /* The whole tokenizer is copied byte for byte. */
    struct kura_gguf *g = NULL, *v = NULL;
    if (kura_gguf_open(out, &g, &eb) == KURA_OK && kura_gguf_open(vocab_bpe, &v, &eb) == KURA_OK) {
        int64_t n_tok = 0;
        for (int64_t i = 0; i < kura_gguf_n_kv(v); i++) {
            struct kura_str k = kura_gguf_key(v, i);
            if (k.len < 10 || memcmp(k.ptr, "tokenizer.", 10) != 0)
                continue;
            n_tok++;
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
            size_t l1, l2;
            const void *r1 = kura_gguf_kv_raw(v, i, &l1);
            const void *r2 = kura_gguf_kv_raw(g, kura_gguf_find_key(g, key), &l2);
            CHECKF(r2 && l1 == l2 && memcmp(r1, r2, l1) == 0, "tokenizer key %s", key);
        }
        CHECK(n_tok >= 5);
        uint64_t u;
        CHECK(kura_gguf_get_u64(g, "llama.vocab_size", &u) == KURA_OK && u == 128256);
        CHECK(kura_gguf_find_tensor(g, "output.weight") == NULL);
        CHECK(kura_gguf_find_key(g, "llama.attention.key_length") < 0);
    }
    kura_gguf_close(g);
    kura_gguf_close(v);
    unlink(out);
}

static double tensor_stats(const struct kura_gguf_tensor *t, double *mean)
{
    int64_t n = t->ne[0] * t->ne[1];
    float *f = malloc((size_t)n * sizeof *f);
    kura_type_traits(t->type)->to_float(t->data, f, n);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        s += f[i];
        s2 += (double)f[i] * f[i];
    }
    free(f);
    *mean = s / (double)n;
    return sqrt(s2 / (double)n - *mean * *mean);
}

static void test_values(void)
{
    struct kura_errbuf eb = {0};
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/a.gguf", tmpdir);
    snprintf(b, sizeof b, "%s/b.gguf", tmpdir);
    /* head_dim != n_embd / n_head, llama: key_length / value_length written. */
    struct kura_synth_params p = tiny("llama", KURA_QMIX_Q4_K_M);
    p.head_dim = 128;
    p.n_threads = 1;
    CHECKF(kura_synth_write(&p, a, NULL, &eb) == KURA_OK, "%s", eb.msg);
    p.n_threads = 3; /* the thread count does not change the bytes */
    CHECKF(kura_synth_write(&p, b, NULL, &eb) == KURA_OK, "%s", eb.msg);
    struct kura_gguf *ga = NULL, *gb = NULL;
    CHECK(kura_gguf_open(a, &ga, &eb) == KURA_OK && kura_gguf_open(b, &gb, &eb) == KURA_OK);
    if (ga && gb) {
        CHECK(kura_gguf_file_size(ga) == kura_gguf_file_size(gb) &&
              memcmp(kura_gguf_base(ga), kura_gguf_base(gb), kura_gguf_file_size(ga)) == 0);
        uint64_t u;
        CHECK(kura_gguf_get_u64(ga, "llama.attention.key_length", &u) == KURA_OK && u == 128);
        CHECK(kura_gguf_get_u64(ga, "llama.rope.dimension_count", &u) == KURA_OK && u == 128);
        CHECK(kura_gguf_get_u64(ga, "general.file_type", &u) == KURA_OK && u == 15);
        const struct kura_gguf_tensor *q = kura_gguf_find_tensor(ga, "blk.0.attn_q.weight");
        const struct kura_gguf_tensor *o = kura_gguf_find_tensor(ga, "blk.1.attn_output.weight");
        CHECK(q && q->ne[0] == 256 && q->ne[1] == 512 && o && o->ne[0] == 512 && o->ne[1] == 256);
    }
    kura_gguf_close(gb);
    gb = NULL;
    /* Another seed gives other weights. */
    p.seed = 43;
    CHECK(kura_synth_write(&p, b, NULL, &eb) == KURA_OK);
    if (ga && kura_gguf_open(b, &gb, &eb) == KURA_OK) {
        const struct kura_gguf_tensor *x = kura_gguf_find_tensor(ga, "blk.0.ffn_up.weight");
        const struct kura_gguf_tensor *y = kura_gguf_find_tensor(gb, "blk.0.ffn_up.weight");
        CHECK(x && y && x->size == y->size && memcmp(x->data, y->data, x->size) != 0);
    }
    kura_gguf_close(ga);
    kura_gguf_close(gb);
    ga = gb = NULL;

    /* Statistics: weights N(0, 1/sqrt(fan_in)), token_embd N(0, 0.02), norms ~1; rows differ. */
    static const enum kura_qmix mixes[] = {KURA_QMIX_F32, KURA_QMIX_Q4_K_M, KURA_QMIX_Q4_0};
    for (int m = 0; m < 3; m++) {
        p = tiny("qwen3", mixes[m]);
        CHECK(kura_synth_write(&p, a, NULL, &eb) == KURA_OK);
        if (kura_gguf_open(a, &ga, &eb) != KURA_OK)
            continue;
        static const struct { const char *name; double std; } w[] = {
            {"token_embd.weight", 0.02}, {"blk.0.attn_q.weight", 0.0625},
            {"blk.1.ffn_gate.weight", 0.0625}, {"blk.1.ffn_down.weight", 0.0441941738},
            {"blk.0.attn_output.weight", 0.0625}, {"output.weight", 0.0625}};
        for (int i = 0; i < 6; i++) {
            const struct kura_gguf_tensor *t = kura_gguf_find_tensor(ga, w[i].name);
            double mean = 0, sd = t ? tensor_stats(t, &mean) : 0;
            CHECKF(t && fabs(sd / w[i].std - 1.0) < 0.1 && fabs(mean) < w[i].std * 0.05,
                   "%s %s: mean %g std %g, want std %g", kura_qmix_name(mixes[m]), w[i].name, mean,
                   sd, w[i].std);
            if (t) {
                size_t row = t->size / (size_t)t->ne[1];
                const uint8_t *d = t->data;
                CHECK(memcmp(d, d + row, row) != 0 && memcmp(d, d + 7 * row, row) != 0);
            }
        }
        static const char *norms[] = {"blk.0.attn_norm.weight", "blk.1.attn_q_norm.weight",
                                      "output_norm.weight"};
        for (int i = 0; i < 3; i++) {
            const struct kura_gguf_tensor *t = kura_gguf_find_tensor(ga, norms[i]);
            double mean = 0, sd = t ? tensor_stats(t, &mean) : 0;
            CHECKF(t && t->type == KURA_TYPE_F32 && fabs(mean - 1.0) < 0.01 && sd < 0.05,
                   "%s: mean %g std %g", norms[i], mean, sd);
        }
        kura_gguf_close(ga);
        ga = NULL;
    }
    unlink(a);
    unlink(b);

    /* Validation. */
    p = tiny("gpt2", KURA_QMIX_F32);
    CHECK(kura_synth_write(&p, a, NULL, &eb) == KURA_ERR_INVALID && strstr(eb.msg, "gpt2"));
    p = tiny("llama", KURA_QMIX_F32);
    p.n_head_kv = 3;
    CHECK(kura_synth_write(&p, a, NULL, &eb) == KURA_ERR_INVALID && strstr(eb.msg, "n_head_kv"));
    p = tiny("llama", KURA_QMIX_F32);
    p.n_embd = 250;
    CHECK(kura_synth_write(&p, a, NULL, &eb) == KURA_ERR_INVALID && strstr(eb.msg, "n_head"));
    p = tiny("qwen2", KURA_QMIX_F32);
    p.head_dim = 63;
    CHECK(kura_synth_write(&p, a, NULL, &eb) == KURA_ERR_INVALID && strstr(eb.msg, "head_dim"));
    p = tiny("qwen2", KURA_QMIX_F32);
    p.n_layer = 0;
    CHECK(kura_synth_write(&p, a, NULL, &eb) == KURA_ERR_INVALID);
    p = tiny("qwen2", KURA_QMIX_F32);
    p.vocab_path = tmpdir;
    CHECK(kura_synth_write(&p, a, NULL, &eb) == KURA_ERR_IO);
    CHECK(access(a, F_OK) != 0);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kura-test-synth-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    const char *shared = test_shared_dir();
    if (!shared) {
        rmdir(tmpdir);
        return TEST_SKIP;
    }
    kura_kernels_init();
    snprintf(vocab_spm, sizeof vocab_spm, "%s/models/stories260K-F32.gguf", shared);
    snprintf(vocab_bpe, sizeof vocab_bpe, "%s/models/vocab/ggml-vocab-llama-bpe.gguf", shared);
    test_shapes(shared);
    test_values();
    rmdir(tmpdir);
    return test_finish();
}
