/* Batch invariance of the forward pass (what the continuous-batching server needs): with
 * kura_ctx_set_batch_invariant on, the logits of sequence A are bit-identical whether A is
 * evaluated alone (prompt as one batch, then one token per step) or with other sequences in
 * every batch, at other positions, with A's prompt split into different chunks. */
#include <stdlib.h>
#include <string.h>

#include "kura/model.h"
#include "test.h"

enum { NP = 7, NG = 6, NB = 4 };

static const int32_t PROMPT_A[NP] = {1, 45, 87, 12, 300, 5, 77};
static const int32_t GEN_A[NG] = {9, 250, 33, 18, 100, 2};

/* Runs A's schedule: prompt in chunks of `chunk`, then NG single decode steps; with `others`
 * companion sequences riding along in every batch. Writes the NG+1 logits rows of A. */
static int run(struct kura_model *m, int32_t chunk, int others, float *out)
{
    struct kura_errbuf eb = {0};
    const struct kura_hparams *hp = kura_model_hparams(m);
    int32_t nv = hp->n_vocab;
    struct kura_ctx *c = NULL;
    struct kura_kv *kv[1 + NB] = {0};
    float *lg = malloc((size_t)(1 + NB) * 16 * nv * sizeof(float));
    int rc = -1;
    if (!lg || kura_ctx_create(m, 64, 2, &c, &eb))
        goto out;
    kura_ctx_set_batch_invariant(c, true);
    for (int s = 0; s <= others; s++)
        if (kura_kv_create(m, 64, &kv[s], &eb))
            goto out;
    int32_t pos_a = 0, pos_o[NB] = {0};
    int step = 0;
    while (step <= NG) {
        struct kura_batch_item it[64];
        int n = 0, a_row = -1, wanted = 0;
        /* companions first (they shift A's column position), each 1-3 tokens */
        for (int s = 0; s < others; s++) {
            int k = 1 + (step + s) % 3;
            for (int t = 0; t < k; t++) {
                bool last = t == k - 1;
                it[n++] = (struct kura_batch_item){(int32_t)((7 * s + 3 * pos_o[s]) % nv),
                                                   pos_o[s]++, kv[1 + s], last};
                wanted += last;
            }
        }
        if (pos_a < NP) {
            int32_t k = NP - pos_a < chunk ? NP - pos_a : chunk;
            for (int32_t t = 0; t < k; t++) {
                bool last = pos_a + 1 == NP;
                if (last)
                    a_row = wanted;
                it[n++] = (struct kura_batch_item){PROMPT_A[pos_a], pos_a, kv[0], last};
                wanted += last;
                pos_a++;
            }
        } else {
            a_row = wanted;
            it[n++] = (struct kura_batch_item){GEN_A[step - 1], pos_a++, kv[0], true};
            wanted++;
        }
        if (kura_ctx_eval(c, it, n, lg, &eb)) {
            printf("eval: %s\n", eb.msg);
            goto out;
        }
        if (a_row >= 0)
            memcpy(out + (size_t)step++ * nv, lg + (size_t)a_row * nv, (size_t)nv * sizeof(float));
    }
    rc = 0;
out:
    for (int s = 0; s <= NB; s++)
        kura_kv_destroy(kv[s]);
    kura_ctx_destroy(c);
    free(lg);
    return rc;
}

int main(void)
{
    const char *shared = test_shared_dir();
    if (!shared)
        return 77; /* test_shared_dir printed why */
    static const char *FILES[] = {"stories260K-F32", "stories260K-Q8_0", "tiny-qwen2-F16",
                                  "tiny-qwen3-Q4_K_M", "tiny-qwen2-BF16", "tiny-llama3-Q8_0"};
    for (size_t f = 0; f < sizeof FILES / sizeof FILES[0]; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/models/%s.gguf", shared, FILES[f]);
        struct kura_model *m = NULL;
        struct kura_errbuf eb = {0};
        if (kura_model_load(path, &m, &eb)) {
            CHECKF(0, "%s: %s", path, eb.msg);
            continue;
        }
        size_t rows = (size_t)(NG + 1) * kura_model_hparams(m)->n_vocab;
        float *alone = malloc(rows * sizeof(float)), *mixed = malloc(rows * sizeof(float));
        CHECK(alone && mixed);
        CHECK(run(m, NP, 0, alone) == 0);
        static const struct {
            int32_t chunk;
            int others;
        } V[] = {{NP, 1}, {3, 2}, {1, 4}, {2, 3}, {NP, 4}};
        for (size_t v = 0; v < sizeof V / sizeof V[0]; v++) {
            CHECK(run(m, V[v].chunk, V[v].others, mixed) == 0);
            CHECKF(memcmp(alone, mixed, rows * sizeof(float)) == 0,
                   "%s: logits with %d companions, prompt chunks of %d differ from alone",
                   FILES[f], V[v].others, V[v].chunk);
        }
        free(alone);
        free(mixed);
        kura_model_destroy(m);
    }
    return test_finish();
}
