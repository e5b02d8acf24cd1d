/* Model loading: hyper-parameters from GGUF metadata, every tensor's presence, type and shape
 * checked against them before any forward pass may touch it. */
#include "model/model_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "kernels/kernels.h"

const char *kura_arch_name(enum kura_arch a)
{
    switch (a) {
    case KURA_ARCH_LLAMA: return "llama";
    case KURA_ARCH_QWEN2: return "qwen2";
    case KURA_ARCH_QWEN3: return "qwen3";
    }
    return "?";
}

static enum kura_err get_int(const struct kura_gguf *g, const char *arch, const char *key,
                             bool required, int64_t dflt, int64_t lo, int64_t hi, int32_t *out,
                             struct kura_errbuf *eb)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int64_t v;
    enum kura_err e = kura_gguf_get_i64(g, full, &v);
    if (e == KURA_ERR_NOTFOUND) {
        if (required)
            return kura_err_set(eb, KURA_ERR_FORMAT, "metadata '%s' is missing", full);
        v = dflt;
    } else if (e) {
        return kura_err_set(eb, KURA_ERR_FORMAT, "metadata '%s' is not an integer", full);
    }
    if (v < lo || v > hi)
        return kura_err_set(eb, KURA_ERR_FORMAT,
                            "metadata '%s' = %" PRId64 " is outside [%" PRId64 ", %" PRId64 "]",
                            full, v, lo, hi);
    *out = (int32_t)v;
    return KURA_OK;
}

static enum kura_err get_float(const struct kura_gguf *g, const char *arch, const char *key,
                               double dflt, double lo, double hi, float *out,
                               struct kura_errbuf *eb)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    double v;
    enum kura_err e = kura_gguf_get_f64(g, full, &v);
    if (e == KURA_ERR_NOTFOUND)
        v = dflt;
    else if (e)
        return kura_err_set(eb, KURA_ERR_FORMAT, "metadata '%s' is not a number", full);
    if (!(v >= lo && v <= hi))
        return kura_err_set(eb, KURA_ERR_FORMAT, "metadata '%s' = %g is outside [%g, %g]", full,
                            v, lo, hi);
    *out = (float)v;
    return KURA_OK;
}

static enum kura_err load_hparams(struct kura_model *m, struct kura_errbuf *eb)
{
    struct kura_hparams *hp = &m->hp;
    struct kura_str arch_s;
    if (kura_gguf_get_str(m->g, "general.architecture", &arch_s))
        return kura_err_set(eb, KURA_ERR_FORMAT, "metadata 'general.architecture' is missing");
    char arch[32];
    if (arch_s.len >= sizeof arch)
        return kura_err_set(eb, KURA_ERR_UNSUPPORTED, "architecture name too long");
    memcpy(arch, arch_s.ptr, arch_s.len);
    arch[arch_s.len] = 0;
    if (strcmp(arch, "llama") == 0)
        hp->arch = KURA_ARCH_LLAMA;
    else if (strcmp(arch, "qwen2") == 0)
        hp->arch = KURA_ARCH_QWEN2;
    else if (strcmp(arch, "qwen3") == 0)
        hp->arch = KURA_ARCH_QWEN3;
    else
        return kura_err_set(eb, KURA_ERR_UNSUPPORTED,
                            "architecture '%s' is not supported (llama, qwen2, qwen3)", arch);
    enum kura_err e;
    if ((e = get_int(m->g, arch, "embedding_length", true, 0, 1, 1 << 16, &hp->n_embd, eb)) ||
        (e = get_int(m->g, arch, "block_count", true, 0, 1, KURA_MAX_LAYERS, &hp->n_layer, eb)) ||
        (e = get_int(m->g, arch, "feed_forward_length", true, 0, 1, 1 << 20, &hp->n_ff, eb)) ||
        (e = get_int(m->g, arch, "attention.head_count", true, 0, 1, 4096, &hp->n_head, eb)) ||
        (e = get_int(m->g, arch, "attention.head_count_kv", false, hp->n_head, 1, hp->n_head,
                     &hp->n_head_kv, eb)) ||
        (e = get_int(m->g, arch, "context_length", false, 4096, 1, KURA_MAX_CTX,
                     &hp->n_ctx_train, eb)))
        return e;
    if (hp->n_head % hp->n_head_kv != 0)
        return kura_err_set(eb, KURA_ERR_FORMAT, "head_count %d is not a multiple of "
                            "head_count_kv %d", hp->n_head, hp->n_head_kv);
    int32_t dflt_hd = hp->n_embd / hp->n_head;
    if ((e = get_int(m->g, arch, "attention.key_length", false, dflt_hd, 2, 1024, &hp->head_dim,
                     eb)))
        return e;
    int32_t vlen;
    if ((e = get_int(m->g, arch, "attention.value_length", false, hp->head_dim, 2, 1024, &vlen,
                     eb)))
        return e;
    if (vlen != hp->head_dim)
        return kura_err_set(eb, KURA_ERR_UNSUPPORTED, "value_length %d != key_length %d", vlen,
                            hp->head_dim);
    if ((e = get_int(m->g, arch, "rope.dimension_count", false, hp->head_dim, 2, hp->head_dim,
                     &hp->n_rot, eb)))
        return e;
    if (hp->n_rot % 2)
        return kura_err_set(eb, KURA_ERR_FORMAT, "rope.dimension_count %d is odd", hp->n_rot);
    if ((e = get_float(m->g, arch, "attention.layer_norm_rms_epsilon", 1e-5, 0, 1, &hp->rms_eps,
                       eb)) ||
        (e = get_float(m->g, arch, "rope.freq_base", 10000.0, 1.0, 1e12, &hp->rope_theta, eb)))
        return e;
    hp->rope_freq_scale = 1.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    struct kura_str st;
    if (kura_gguf_get_str(m->g, key, &st) == KURA_OK && !kura_str_eq(st, "none")) {
        if (!kura_str_eq(st, "linear"))
            return kura_err_set(eb, KURA_ERR_UNSUPPORTED, "metadata '%s' = '%.*s': only "
                                "linear rope scaling is supported", key, (int)st.len, st.ptr);
        float factor;
        if ((e = get_float(m->g, arch, "rope.scaling.factor", 1.0, 1e-3, 1e6, &factor, eb)))
            return e;
        hp->rope_freq_scale = 1.0f / factor;
    }
    hp->rope_neox = hp->arch != KURA_ARCH_LLAMA;
    return KURA_OK;
}

/* Binds tensor name to w after checking type and shape (ne1 = 0: 1-D tensor). */
static enum kura_err bind(struct kura_model *m, struct kura_weight *w, const char *name,
                          int64_t ne0, int64_t ne1, bool required, bool matmul,
                          struct kura_errbuf *eb)
{
    const struct kura_gguf_tensor *t = kura_gguf_find_tensor(m->g, name);
    w->t = NULL;
    if (!t) {
        if (required)
            return kura_err_set(eb, KURA_ERR_FORMAT, "tensor '%s' is missing", name);
        return KURA_OK;
    }
    int64_t want_dims = ne1 ? 2 : 1;
    bool ok = t->ne[0] == ne0 && t->ne[1] == (ne1 ? ne1 : 1) && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok || (int64_t)t->n_dims > want_dims)
        return kura_err_set(eb, KURA_ERR_FORMAT,
                            "tensor '%s' has shape [%" PRId64 ", %" PRId64 ", %" PRId64
                            "], expected [%" PRId64 ", %" PRId64 "]",
                            name, t->ne[0], t->ne[1], t->ne[2], ne0, ne1 ? ne1 : 1);
    const struct kura_type_traits *tr = kura_type_traits(t->type);
    if (!tr || !tr->to_float || (matmul && !tr->vec_dot))
        return kura_err_set(eb, KURA_ERR_UNSUPPORTED, "tensor '%s': type %s is not supported",
                            name, kura_type_name(t->type));
    if (!matmul && t->type != KURA_TYPE_F32)
        return kura_err_set(eb, KURA_ERR_UNSUPPORTED, "tensor '%s': norm/bias weights must be "
                            "f32, not %s", name, kura_type_name(t->type));
    w->t = t;
    m->weight_bytes += t->size;
    return KURA_OK;
}

static enum kura_err bind_layers(struct kura_model *m, struct kura_errbuf *eb)
{
    const struct kura_hparams *hp = &m->hp;
    int64_t q_dim = (int64_t)hp->n_head * hp->head_dim;
    int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    bool qwen2 = hp->arch == KURA_ARCH_QWEN2, qwen3 = hp->arch == KURA_ARCH_QWEN3;
    enum kura_err e;
    for (int32_t l = 0; l < hp->n_layer; l++) {
        struct kura_layer *L = &m->layers[l];
        char n[96];
#define B(field, suffix, ne0, ne1, req, mm)                                                  \
    do {                                                                                    \
        snprintf(n, sizeof n, "blk.%d.%s", (int)l, suffix);                                 \
        if ((e = bind(m, &L->field, n, ne0, ne1, req, mm, eb)))                             \
            return e;                                                                       \
    } while (0)
        B(attn_norm, "attn_norm.weight", hp->n_embd, 0, true, false);
        B(wq, "attn_q.weight", hp->n_embd, q_dim, true, true);
        B(wk, "attn_k.weight", hp->n_embd, kv_dim, true, true);
        B(wv, "attn_v.weight", hp->n_embd, kv_dim, true, true);
        B(wo, "attn_output.weight", q_dim, hp->n_embd, true, true);
        B(bq, "attn_q.bias", q_dim, 0, qwen2, false);
        B(bk, "attn_k.bias", kv_dim, 0, qwen2, false);
        B(bv, "attn_v.bias", kv_dim, 0, qwen2, false);
        B(q_norm, "attn_q_norm.weight", hp->head_dim, 0, qwen3, false);
        B(k_norm, "attn_k_norm.weight", hp->head_dim, 0, qwen3, false);
        B(ffn_norm, "ffn_norm.weight", hp->n_embd, 0, true, false);
        B(w_gate, "ffn_gate.weight", hp->n_embd, hp->n_ff, true, true);
        B(w_up, "ffn_up.weight", hp->n_embd, hp->n_ff, true, true);
        B(w_down, "ffn_down.weight", hp->n_ff, hp->n_embd, true, true);
#undef B
    }
    return KURA_OK;
}

enum kura_err kura_model_load(const char *path, struct kura_model **out, struct kura_errbuf *eb)
{
    *out = NULL;
    kura_kernels_init();
    struct kura_model *m = calloc(1, sizeof *m);
    if (!m)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    enum kura_err e = kura_gguf_open(path, &m->g, eb);
    if (e)
        goto fail;
    if ((e = load_hparams(m, eb)))
        goto fail_ctx;
    struct kura_hparams *hp = &m->hp;
    const struct kura_gguf_tensor *te = kura_gguf_find_tensor(m->g, "token_embd.weight");
    if (!te) {
        e = kura_err_set(eb, KURA_ERR_FORMAT, "tensor 'token_embd.weight' is missing");
        goto fail_ctx;
    }
    if (te->ne[1] < 1 || te->ne[1] > KURA_MAX_VOCAB) {
        e = kura_err_set(eb, KURA_ERR_FORMAT, "tensor 'token_embd.weight': vocabulary size %"
                         PRId64 " out of range", te->ne[1]);
        goto fail_ctx;
    }
    hp->n_vocab = (int32_t)te->ne[1];
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((e = bind(m, &m->tok_embd, "token_embd.weight", hp->n_embd, hp->n_vocab, true, true,
                  eb)) ||
        (e = bind(m, &m->out_norm, "output_norm.weight", hp->n_embd, 0, true, false, eb)) ||
        (e = bind(m, &m->output, "output.weight", hp->n_embd, hp->n_vocab, false, true, eb)) ||
        (e = bind(m, &m->rope_freqs, "rope_freqs.weight", hp->n_rot / 2, 0, false, false, eb)) ||
        (e = bind_layers(m, eb)))
        goto fail_ctx;
    if (!m->output.t) {
        m->output = m->tok_embd;
        hp->tied_output = true;
    }
    *out = m;
    return KURA_OK;
fail_ctx:
    kura_err_prefix(eb, "%s: ", path);
fail:
    kura_model_destroy(m);
    return e;
}

void kura_model_destroy(struct kura_model *m)
{
    if (!m)
        return;
    kura_gguf_close(m->g);
    free(m->layers);
    free(m);
}

const struct kura_hparams *kura_model_hparams(const struct kura_model *m) { return &m->hp; }
const struct kura_gguf *kura_model_gguf(const struct kura_model *m) { return m->g; }
uint64_t kura_model_weight_bytes(const struct kura_model *m) { return m->weight_bytes; }

enum kura_err kura_kv_create(const struct kura_model *m, int32_t n_ctx, struct kura_kv **out,
                             struct kura_errbuf *eb)
{
    *out = NULL;
    if (n_ctx < 1 || n_ctx > KURA_MAX_CTX)
        return kura_err_set(eb, KURA_ERR_RANGE, "context size %d outside [1, %d]", n_ctx,
                            KURA_MAX_CTX);
    struct kura_kv *kv = calloc(1, sizeof *kv);
    if (!kv)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    kv->n_ctx = n_ctx;
    kv->n_layer = m->hp.n_layer;
    kv->kv_dim = m->hp.n_head_kv * m->hp.head_dim;
    size_t n = (size_t)kv->n_layer * (size_t)n_ctx * (size_t)kv->kv_dim;
    kv->k = malloc(n * sizeof *kv->k);
    kv->v = malloc(n * sizeof *kv->v);
    if (!kv->k || !kv->v) {
        kura_kv_destroy(kv);
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory for a KV cache of %zu bytes",
                            2 * n * sizeof(uint16_t));
    }
    *out = kv;
    return KURA_OK;
}

void kura_kv_destroy(struct kura_kv *kv)
{
    if (!kv)
        return;
    free(kv->k);
    free(kv->v);
    free(kv);
}

int32_t kura_kv_n_ctx(const struct kura_kv *kv) { return kv->n_ctx; }

size_t kura_kv_bytes(const struct kura_kv *kv)
{
    return 2 * (size_t)kv->n_layer * (size_t)kv->n_ctx * (size_t)kv->kv_dim * sizeof(uint16_t);
}
