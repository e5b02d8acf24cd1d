/* Quantization: the per-tensor type rules, and `kura quantize` of the shared F32 models compared
 * byte for byte with the reference files the established engine produced from them. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kura/gguf.h"
#include "kura/quantize.h"
#include "test.h"

static char tmpdir[256];

static void test_names(void)
{
    CHECK(kura_qmix_from_name("Q4_K_M") == KURA_QMIX_Q4_K_M);
    CHECK(kura_qmix_from_name("bf16") == KURA_QMIX_BF16);
    CHECK(kura_qmix_from_name("q4_k") == -1 && kura_qmix_from_name("") == -1);
    for (int m = 0; m < KURA_QMIX__COUNT; m++) {
        const char *n = kura_qmix_name((enum kura_qmix)m);
        CHECK(n && kura_qmix_from_name(n) == m && strstr(kura_qmix_names(), n));
    }
    CHECK(kura_qmix_name(KURA_QMIX__COUNT) == NULL);
    CHECK(kura_qmix_file_type(KURA_QMIX_Q4_K_M) == 15 && kura_qmix_file_type(KURA_QMIX_Q5_K_M) == 17);
    CHECK(kura_qmix_file_type(KURA_QMIX_Q8_0) == 7 && kura_qmix_file_type(KURA_QMIX_BF16) == 32);
    CHECK(kura_qmix_file_type(KURA_QMIX_Q5_0) == 8 && kura_qmix_file_type(KURA_QMIX_Q6_K) == 18);
}

static enum kura_type ty(enum kura_qmix mix, int64_t n_layer, bool has_output, const char *name,
                         uint32_t nd, int64_t ne0)
{
    struct kura_qmix_model m = {n_layer, has_output};
    return kura_qmix_tensor_type(mix, &m, name, nd, ne0, KURA_TYPE_F32);
}

static void test_rules(void)
{
    /* 1-D and non-weight tensors keep their type. */
    CHECK(ty(KURA_QMIX_Q4_0, 2, true, "blk.0.attn_norm.weight", 1, 256) == KURA_TYPE_F32);
    CHECK(ty(KURA_QMIX_Q4_0, 2, true, "blk.0.attn_q.bias", 1, 256) == KURA_TYPE_F32);
    CHECK(ty(KURA_QMIX_Q4_0, 2, true, "blk.0.something", 2, 256) == KURA_TYPE_F32);
    struct kura_qmix_model m = {2, true};
    CHECK(kura_qmix_tensor_type(KURA_QMIX_F16, &m, "rope_freqs.weight", 1, 32, KURA_TYPE_F16) ==
          KURA_TYPE_F16);
    /* Float mixes: no special cases. */
    CHECK(ty(KURA_QMIX_F16, 2, true, "output.weight", 2, 64) == KURA_TYPE_F16);
    CHECK(ty(KURA_QMIX_BF16, 2, true, "blk.0.ffn_down.weight", 2, 172) == KURA_TYPE_BF16);
    /* Output projection. */
    CHECK(ty(KURA_QMIX_Q4_0, 2, true, "output.weight", 2, 256) == KURA_TYPE_Q6_K);
    CHECK(ty(KURA_QMIX_Q4_0, 2, true, "output.weight", 2, 64) == KURA_TYPE_Q8_0);
    CHECK(ty(KURA_QMIX_Q8_0, 2, true, "output.weight", 2, 256) == KURA_TYPE_Q8_0);
    CHECK(ty(KURA_QMIX_Q4_K_M, 2, true, "output.weight", 2, 2048) == KURA_TYPE_Q6_K);
    CHECK(ty(KURA_QMIX_Q4_K_M, 2, true, "output.weight", 2, 96) == KURA_TYPE_Q8_0);
    CHECK(ty(KURA_QMIX_Q4_0, 2, true, "output.weight", 2, 40) == KURA_TYPE_F16);
    /* Tied embeddings: token_embd is the output projection. */
    CHECK(ty(KURA_QMIX_Q4_K_M, 16, false, "token_embd.weight", 2, 2048) == KURA_TYPE_Q6_K);
    CHECK(ty(KURA_QMIX_Q4_K_M, 16, true, "token_embd.weight", 2, 2048) == KURA_TYPE_Q4_K);
    CHECK(ty(KURA_QMIX_Q8_0, 16, false, "token_embd.weight", 2, 64) == KURA_TYPE_Q8_0);
    /* use_more_bits for 16 layers: 0 1 4 7 10 13 14 15. */
    const char *more = "1100100100100111";
    for (int l = 0; l < 16; l++) {
        char n[64];
        snprintf(n, sizeof n, "blk.%d.attn_v.weight", l);
        enum kura_type want4 = more[l] == '1' ? KURA_TYPE_Q6_K : KURA_TYPE_Q4_K;
        enum kura_type want5 = more[l] == '1' ? KURA_TYPE_Q6_K : KURA_TYPE_Q5_K;
        CHECKF(ty(KURA_QMIX_Q4_K_M, 16, false, n, 2, 2048) == want4, "%s", n);
        CHECKF(ty(KURA_QMIX_Q5_K_M, 16, false, n, 2, 2048) == want5, "%s", n);
        snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l);
        CHECKF(ty(KURA_QMIX_Q4_K_M, 16, false, n, 2, 8192) == want4, "%s", n);
        snprintf(n, sizeof n, "blk.%d.attn_k.weight", l);
        CHECKF(ty(KURA_QMIX_Q4_K_M, 16, false, n, 2, 2048) == KURA_TYPE_Q4_K, "%s", n);
        snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l);
        CHECKF(ty(KURA_QMIX_Q6_K, 16, false, n, 2, 8192) == KURA_TYPE_Q6_K, "%s", n);
        CHECKF(ty(KURA_QMIX_Q4_0, 16, false, n, 2, 8192) == KURA_TYPE_Q4_0, "%s", n);
    }
    CHECK(ty(KURA_QMIX_Q4_K_M, 2, true, "blk.0.attn_v.weight", 2, 256) == KURA_TYPE_Q4_K);
    CHECK(ty(KURA_QMIX_Q4_K_M, 2, true, "blk.1.attn_v.weight", 2, 256) == KURA_TYPE_Q6_K);
    CHECK(ty(KURA_QMIX_Q4_K_M, 2, true, "xblk.1.attn_v.weight", 2, 256) == KURA_TYPE_Q4_K);
    /* Fallbacks for rows that do not fit the block. */
    CHECK(ty(KURA_QMIX_Q4_K_M, 4, true, "blk.1.attn_q.weight", 2, 96) == KURA_TYPE_Q5_0);
    CHECK(ty(KURA_QMIX_Q5_K_M, 4, true, "blk.1.attn_q.weight", 2, 96) == KURA_TYPE_Q5_1);
    CHECK(ty(KURA_QMIX_Q6_K, 4, true, "blk.1.attn_q.weight", 2, 96) == KURA_TYPE_Q8_0);
    CHECK(ty(KURA_QMIX_Q4_K_M, 4, true, "blk.3.ffn_down.weight", 2, 96) == KURA_TYPE_Q8_0);
    CHECK(ty(KURA_QMIX_Q4_K_M, 4, true, "blk.0.ffn_down.weight", 2, 96) == KURA_TYPE_Q5_0);
    CHECK(ty(KURA_QMIX_Q4_K_M, 4, true, "blk.1.ffn_down.weight", 2, 172) == KURA_TYPE_F16);
    CHECK(ty(KURA_QMIX_Q8_0, 5, true, "blk.1.ffn_down.weight", 2, 172) == KURA_TYPE_F16);
    CHECK(ty(KURA_QMIX_Q4_1, 5, true, "blk.1.ffn_down.weight", 2, 172) == KURA_TYPE_F16);
}

static void test_rows(void)
{
    float src[2 * 64];
    for (int i = 0; i < 128; i++)
        src[i] = (float)((i * 37) % 23) - 11.0f;
    uint8_t a[2 * 68], b[2 * 68];
    struct kura_errbuf eb = {0};
    CHECK(kura_quant_rows(KURA_TYPE_Q8_0, src, a, 2, 64, 1, &eb) == KURA_OK);
    CHECK(kura_quant_rows(KURA_TYPE_Q8_0, src, b, 2, 64, 7, &eb) == KURA_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    float back[128];
    kura_type_traits(KURA_TYPE_Q8_0)->to_float(a, back, 128);
    float maxerr = 0;
    for (int i = 0; i < 128; i++)
        maxerr = fabsf(back[i] - src[i]) > maxerr ? fabsf(back[i] - src[i]) : maxerr;
    CHECK(maxerr < 0.05f);
    CHECK(kura_quant_rows(KURA_TYPE_Q8_0, src, a, 4, 32 + 1, 1, &eb) == KURA_ERR_INVALID);
    CHECK(kura_quant_rows(KURA_TYPE_I32, src, a, 1, 4, 1, &eb) == KURA_ERR_UNSUPPORTED &&
          strstr(eb.msg, "i32"));
}

/* Every tensor of got must equal (by name) the tensor of want, bytes included; every kv of
 * want must be in got with the same encoded value. */
static void compare_files(const char *got_path, const char *want_path)
{
    struct kura_errbuf eb = {0};
    struct kura_gguf *got = NULL, *want = NULL;
    CHECKF(kura_gguf_open(got_path, &got, &eb) == KURA_OK, "%s", eb.msg);
    CHECKF(kura_gguf_open(want_path, &want, &eb) == KURA_OK, "%s", eb.msg);
    if (!got || !want)
        goto done;
    CHECK(kura_gguf_n_tensors(got) == kura_gguf_n_tensors(want));
    for (int64_t i = 0; i < kura_gguf_n_tensors(want); i++) {
        const struct kura_gguf_tensor *w = kura_gguf_tensor(want, i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)w->name.len, w->name.ptr);
        const struct kura_gguf_tensor *g = kura_gguf_find_tensor(got, name);
        CHECKF(g != NULL, "%s: missing %s", got_path, name);
        if (!g)
            continue;
        CHECKF(g->type == w->type, "%s: %s is %s, want %s", got_path, name,
               kura_type_name(g->type), kura_type_name(w->type));
        CHECKF(g->size == w->size && memcmp(g->data, w->data, w->size) == 0,
               "%s: %s data differs", got_path, name);
        CHECK(g->n_dims == w->n_dims && memcmp(g->ne, w->ne, sizeof g->ne) == 0);
    }
    for (int64_t i = 0; i < kura_gguf_n_kv(want); i++) {
        struct kura_str k = kura_gguf_key(want, i);
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
        size_t l1, l2;
        const void *r1 = kura_gguf_kv_raw(want, i, &l1);
        const void *r2 = kura_gguf_kv_raw(got, kura_gguf_find_key(got, key), &l2);
        CHECKF(r2 && l1 == l2 && memcmp(r1, r2, l1) == 0 &&
               kura_gguf_kv_type(got, kura_gguf_find_key(got, key)) == kura_gguf_kv_type(want, i),
               "%s: metadata %s differs", got_path, key);
    }
done:
    kura_gguf_close(got);
    kura_gguf_close(want);
}

static void test_reference_files(const char *shared)
{
    static const char *types[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1",
                                  "Q5_0", "Q5_1", "Q4_K_M", "Q5_K_M", "Q6_K"};
    static const char *models[] = {"tiny-qwen2", "tiny-qwen3"};
    char in[1024], want[1024], out[512];
    struct kura_errbuf eb = {0};
    for (size_t mdl = 0; mdl < 2; mdl++)
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            if (mdl == 1 && t % 3 != 0) /* qwen3: a subset keeps the suite fast */
                continue;
            snprintf(in, sizeof in, "%s/models/%s-F32.gguf", shared, models[mdl]);
            snprintf(want, sizeof want, "%s/models/%s-%s.gguf", shared, models[mdl], types[t]);
            snprintf(out, sizeof out, "%s/q.gguf", tmpdir);
            int mix = kura_qmix_from_name(types[t]);
            CHECK(mix >= 0);
            enum kura_err e = kura_quantize_file(in, out, (enum kura_qmix)mix, 1 + (int)(t % 3),
                                                 NULL, &eb);
            CHECKF(e == KURA_OK, "%s %s: %s", models[mdl], types[t], eb.msg);
            if (e == KURA_OK)
                compare_files(out, want);
            unlink(out);
        }
    /* stories260K: 172-column ffn_down (F16 fallback), 64-column output (Q8_0). */
    static const char *stypes[] = {"Q8_0", "Q4_0", "F16"};
    for (size_t t = 0; t < 3; t++) {
        snprintf(in, sizeof in, "%s/models/stories260K-F32.gguf", shared);
        snprintf(want, sizeof want, "%s/models/stories260K-%s.gguf", shared, stypes[t]);
        snprintf(out, sizeof out, "%s/s.gguf", tmpdir);
        enum kura_err e = kura_quantize_file(in, out, (enum kura_qmix)kura_qmix_from_name(stypes[t]),
                                             2, NULL, &eb);
        CHECKF(e == KURA_OK, "stories %s: %s", stypes[t], eb.msg);
        if (e == KURA_OK)
            compare_files(out, want);
        unlink(out);
    }
    /* Re-quantizing a quantized model dequantizes first: Q8_0 -> Q4_0 works and keeps shapes. */
    snprintf(in, sizeof in, "%s/models/tiny-qwen2-Q8_0.gguf", shared);
    snprintf(out, sizeof out, "%s/r.gguf", tmpdir);
    CHECKF(kura_quantize_file(in, out, KURA_QMIX_Q4_0, 2, NULL, &eb) == KURA_OK, "%s", eb.msg);
    struct kura_gguf *g;
    if (kura_gguf_open(out, &g, &eb) == KURA_OK) {
        const struct kura_gguf_tensor *t = kura_gguf_find_tensor(g, "blk.0.ffn_up.weight");
        CHECK(t && t->type == KURA_TYPE_Q4_0 && t->ne[0] == 256 && t->ne[1] == 512);
        uint64_t ft;
        CHECK(kura_gguf_get_u64(g, "general.file_type", &ft) == KURA_OK && ft == 2);
        kura_gguf_close(g);
    }
    unlink(out);
    /* Errors: missing input, unwritable output (nothing left behind). */
    snprintf(in, sizeof in, "%s/models/no-such-model.gguf", shared);
    CHECK(kura_quantize_file(in, out, KURA_QMIX_Q4_0, 1, NULL, &eb) == KURA_ERR_IO &&
          strstr(eb.msg, "no-such-model.gguf"));
    snprintf(in, sizeof in, "%s/models/tiny-qwen2-F32.gguf", shared);
    snprintf(out, sizeof out, "%s/missing-dir/x.gguf", tmpdir);
    CHECK(kura_quantize_file(in, out, KURA_QMIX_Q4_0, 1, NULL, &eb) == KURA_ERR_IO);
    CHECK(kura_quantize_file(in, out, KURA_QMIX__COUNT, 1, NULL, &eb) == KURA_ERR_INVALID);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kura-test-quant-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    kura_kernels_init();
    test_names();
    test_rules();
    test_rows();
    const char *shared = test_shared_dir();
    if (shared)
        test_reference_files(shared);
    rmdir(tmpdir);
    return test_finish();
}
