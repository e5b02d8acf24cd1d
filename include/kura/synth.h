/* `kura model synth`: writes a random-weight model of a real architecture and shape, with a
 * real tokenizer copied from a vocabulary GGUF, for benchmarks and tests. */
#ifndef KURA_SYNTH_H
#define KURA_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/quantize.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kura_synth_params {
    const char *arch;       /* "llama", "qwen2" or "qwen3" */
    const char *name;       /* general.name; NULL: "kura-synth-<arch>" */
    int64_t n_embd;         /* model width */
    int64_t n_layer;        /* blocks */
    int64_t n_head;         /* query heads */
    int64_t n_head_kv;      /* key/value heads (divides n_head) */
    int64_t n_ff;           /* feed-forward width */
    int64_t head_dim;       /* 0: n_embd / n_head */
    int64_t n_ctx;          /* <arch>.context_length; 0: 4096 */
    double rope_theta;      /* 0: 10000 for llama, 1000000 for qwen2/qwen3 */
    double rms_eps;         /* 0: 1e-5 for llama, 1e-6 for qwen2/qwen3 */
    bool tied;              /* no output.weight: the output reuses token_embd */
    const char *vocab_path; /* GGUF whose tokenizer.* keys are copied (n_vocab = its tokens) */
    enum kura_qmix mix;     /* tensor types, as `kura quantize` would choose them */
    uint64_t seed;          /* same seed and parameters give the same bytes */
    int n_threads;          /* >= 1 */
};

/* Writes the model to out_path (temp file + rename). Weights are N(0, s) with s = 1/sqrt(fan_in)
 * (token_embd 0.02), norm weights ~1, biases ~N(0, 0.02); quantized tensors are assembled from
 * a seeded pool of blocks quantized once per (type, scale), so a 1B-parameter shape is written
 * at disk speed. When log is non-NULL (a FILE *) one line per tensor is printed. */
enum kura_err kura_synth_write(const struct kura_synth_params *p, const char *out_path,
                               void *log, struct kura_errbuf *eb);

#ifdef __cplusplus
}
#endif
#endif
