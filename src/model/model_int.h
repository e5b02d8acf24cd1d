/* Internal model structures shared by the loader and the forward pass. */
#ifndef KURA_MODEL_INT_H
#define KURA_MODEL_INT_H

#include "kura/model.h"

struct kura_weight {
    const struct kura_gguf_tensor *t; /* NULL when the tensor is absent (optional ones) */
};

struct kura_layer {
    struct kura_weight attn_norm; /* (n_embd) */
    struct kura_weight wq;        /* (n_embd -> n_head*head_dim) */
    struct kura_weight wk;        /* (n_embd -> n_head_kv*head_dim) */
    struct kura_weight wv;        /* (n_embd -> n_head_kv*head_dim) */
    struct kura_weight wo;        /* (n_head*head_dim -> n_embd) */
    struct kura_weight bq, bk, bv; /* qwen2 biases (n_head*head_dim), (n_head_kv*head_dim) x2 */
    struct kura_weight q_norm, k_norm; /* qwen3 per-head RMSNorm weights (head_dim) */
    struct kura_weight ffn_norm;  /* (n_embd) */
    struct kura_weight w_gate;    /* (n_embd -> n_ff) */
    struct kura_weight w_up;      /* (n_embd -> n_ff) */
    struct kura_weight w_down;    /* (n_ff -> n_embd) */
};

struct kura_model {
    struct kura_gguf *g;
    struct kura_hparams hp;
    struct kura_weight tok_embd;  /* (n_embd, n_vocab): row per token */
    struct kura_weight out_norm;  /* (n_embd) */
    struct kura_weight output;    /* (n_embd -> n_vocab); token_embd when tied */
    struct kura_weight rope_freqs; /* optional (n_rot/2) divisors of the rope frequencies */
    struct kura_layer *layers;    /* n_layer */
    uint64_t weight_bytes;
};

struct kura_kv {
    int32_t n_ctx;
    int32_t n_layer;
    int32_t kv_dim;   /* n_head_kv * head_dim */
    uint16_t *k;      /* (n_layer, n_ctx, kv_dim) f16 */
    uint16_t *v;      /* (n_layer, n_ctx, kv_dim) f16 */
};

#endif
