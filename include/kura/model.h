/* Transformer models loaded from GGUF: llama (Llama 2/3, Mistral, TinyLlama and Japanese Llama
 * derivatives), qwen2 (QKV bias) and qwen3 (QK-norm). Weights are views into the file's mmap. */
#ifndef KURA_MODEL_H
#define KURA_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kura_model;
struct kura_kv;
struct kura_ctx;

enum kura_arch { KURA_ARCH_LLAMA = 0, KURA_ARCH_QWEN2, KURA_ARCH_QWEN3 };

struct kura_hparams {
    enum kura_arch arch;
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;     /* key/value length per head */
    int32_t n_ff;
    int32_t n_rot;        /* rope dimensions */
    float rms_eps;
    float rope_theta;
    float rope_freq_scale; /* 1 / linear scaling factor */
    bool rope_neox;       /* NeoX layout (pairs i, i + n_rot/2) instead of (2i, 2i+1) */
    bool tied_output;     /* output projection shares token_embd */
};

/* Loads path. On success *out owns the mapping and must be released with kura_model_destroy.
 * Thread-safe to use one model from many contexts at once (it is read-only after load). */
enum kura_err kura_model_load(const char *path, struct kura_model **out /* OUT */,
                              struct kura_errbuf *eb);
void kura_model_destroy(struct kura_model *m);
const struct kura_hparams *kura_model_hparams(const struct kura_model *m);
/* The underlying GGUF file (borrowed; lives as long as the model). */
const struct kura_gguf *kura_model_gguf(const struct kura_model *m);
const char *kura_arch_name(enum kura_arch a);
/* Bytes of all weight tensors. */
uint64_t kura_model_weight_bytes(const struct kura_model *m);

/* A KV cache for one sequence of up to n_ctx positions (F16 storage). */
enum kura_err kura_kv_create(const struct kura_model *m, int32_t n_ctx,
                             struct kura_kv **out /* OUT */, struct kura_errbuf *eb);
void kura_kv_destroy(struct kura_kv *kv);
int32_t kura_kv_n_ctx(const struct kura_kv *kv);
size_t kura_kv_bytes(const struct kura_kv *kv);

/* An evaluation context: thread pool plus scratch buffers for batches up to n_batch tokens.
 * One context is used by one thread at a time. n_threads <= 0 = number of physical cores. */
enum kura_err kura_ctx_create(const struct kura_model *m, int32_t n_batch, int n_threads,
                              struct kura_ctx **out /* OUT */, struct kura_errbuf *eb);
void kura_ctx_destroy(struct kura_ctx *c);
int kura_ctx_n_threads(const struct kura_ctx *c);
/* Batch-invariant mode (for servers batching several sequences): a token's results become
 * bit-identical whatever other tokens share its batch. The quantized kernels are so anyway; the
 * float ones (F32/F16/BF16) use the reference engine's single-row order for one-token batches,
 * and in this mode run those as two-token batches instead (a little more compute, never a
 * different answer). Off by default (then single-sequence runs match the reference engine). */
void kura_ctx_set_batch_invariant(struct kura_ctx *c, bool on);

/* One token of a batch: the token id, its position in its sequence, the sequence's KV cache,
 * and whether its logits are wanted. Tokens of one sequence must appear in position order,
 * and a token at position p attends to positions 0..p of its cache (entries below the first
 * position of the batch must have been filled by earlier calls). */
struct kura_batch_item {
    int32_t token;
    int32_t pos;
    struct kura_kv *kv;
    bool want_logits;
};

/* Runs the model over n items (n <= n_batch). For every item with want_logits, n_vocab logits
 * are written to logits (rows in item order). Returns an error for bad tokens or positions. */
enum kura_err kura_ctx_eval(struct kura_ctx *c, const struct kura_batch_item *items, int32_t n,
                            float *logits /* OUT: n_wanted x n_vocab */, struct kura_errbuf *eb);

/* Convenience for one sequence: evaluates tokens[0..n) at positions pos0.. in chunks of n_batch,
 * writing the logits of the last token (or of every token when all_logits). */
enum kura_err kura_ctx_eval_seq(struct kura_ctx *c, struct kura_kv *kv, const int32_t *tokens,
                                int32_t n, int32_t pos0, bool all_logits,
                                float *logits /* OUT */, struct kura_errbuf *eb);

#ifdef __cplusplus
}
#endif
#endif
