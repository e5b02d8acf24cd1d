/* Vocabulary loading from GGUF, special-token handling, encode dispatch, pieces and decoding. */
#include "kura/tokenizer.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/util.h"
#include "tokenizer/tok_int.h"

#define TOK_NULL (-1)

/* ---- metadata helpers ---- */

static int64_t find_arr(const struct kura_gguf *g, const char *key, enum kura_gguf_vtype et,
                        uint64_t *n)
{
    int64_t i = kura_gguf_find_key(g, key);
    if (i < 0 || kura_gguf_kv_type(g, i) != KURA_GGUF_ARRAY || kura_gguf_arr_type(g, i) != et)
        return -1;
    *n = kura_gguf_arr_len(g, i);
    return i;
}

static void get_id(const struct kura_gguf *g, const char *key, int32_t n_vocab, int32_t *id)
{
    uint64_t v;
    /* out-of-range ids (e.g. 0xFFFFFFFF for "none") keep the default, as the reference */
    if (kura_gguf_get_u64(g, key, &v) == KURA_OK && v < (uint64_t)n_vocab)
        *id = (int32_t)v;
}

static void get_flag(const struct kura_gguf *g, const char *key, bool *b)
{
    bool v;
    if (kura_gguf_get_bool(g, key, &v) == KURA_OK)
        *b = v;
}

static int32_t find_cstr(const struct kura_tok *t, const char *s)
{
    return strmap_get(&t->vocab, t->pool, s, strlen(s), 0);
}

/* Maps tokenizer.ggml.pre to a pre-tokenizer; false when unknown. */
static bool pre_from_name(const char *p, enum pre_kind *out, bool *llama3_like)
{
    static const struct {
        const char *name;
        enum pre_kind kind;
    } map[] = {
        {"", PRE_DEFAULT},
        {"default", PRE_DEFAULT},
        {"llama3", PRE_LLAMA3},
        {"llama-v3", PRE_LLAMA3},
        {"llama-bpe", PRE_LLAMA3},
        {"falcon3", PRE_LLAMA3},
        {"falcon-h1", PRE_LLAMA3},
        {"pixtral", PRE_LLAMA3},
        {"midm-2.0", PRE_LLAMA3},
        {"lfm2", PRE_LLAMA3},
        {"dbrx", PRE_LLAMA3},
        {"smaug-bpe", PRE_LLAMA3},
        {"deepseek-llm", PRE_DEEPSEEK_LLM},
        {"deepseek-coder", PRE_DEEPSEEK_CODER},
        {"falcon", PRE_FALCON},
        {"mpt", PRE_MPT},
        {"starcoder", PRE_STARCODER},
        {"smollm", PRE_STARCODER},
        {"codeshell", PRE_STARCODER},
        {"exaone", PRE_STARCODER},
        {"minerva-7b", PRE_STARCODER},
        {"gpt-2", PRE_GPT2},
        {"phi-2", PRE_GPT2},
        {"jina-es", PRE_GPT2},
        {"jina-de", PRE_GPT2},
        {"gigachat", PRE_GPT2},
        {"jina-v1-en", PRE_GPT2},
        {"jina-v2-es", PRE_GPT2},
        {"jina-v2-de", PRE_GPT2},
        {"olmo", PRE_GPT2},
        {"jais", PRE_GPT2},
        {"refact", PRE_REFACT},
        {"command-r", PRE_COMMAND_R},
        {"qwen2", PRE_QWEN2},
        {"deepseek-r1-qwen", PRE_QWEN2},
        {"stablelm2", PRE_QWEN2},
        {"qwen35", PRE_QWEN35},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(p, map[i].name) == 0) {
            *out = map[i].kind;
            *llama3_like = map[i].kind == PRE_LLAMA3 && strcmp(p, "smaug-bpe") != 0 &&
                           strcmp(p, "dbrx") != 0;
            return true;
        }
    }
    return false;
}

static void copy_str_meta(const struct kura_gguf *g, const char *key, char *dst, size_t cap)
{
    struct kura_str s;
    dst[0] = '\0';
    if (kura_gguf_get_str(g, key, &s) == KURA_OK) {
        size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
        memcpy(dst, s.ptr, n);
        dst[n] = '\0';
    }
}

/* Special ids are sorted by text length, longest first (ties by id, for determinism), via
 * keys (~len << 32 | id) so the comparator needs no context. */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int load_merges(struct kura_tok *t, const struct kura_gguf *g, struct kura_errbuf *eb)
{
    uint64_t n = 0;
    int64_t ki = find_arr(g, "tokenizer.ggml.merges", KURA_GGUF_STRING, &n);
    if (ki < 0)
        return kura_err_set(eb, KURA_ERR_FORMAT, "tokenizer.ggml.merges: missing or not a string "
                                                 "array (needed by a BPE vocabulary)");
    if (n > (1u << 24))
        return kura_err_set(eb, KURA_ERR_RANGE, "tokenizer.ggml.merges: %llu merges exceed the "
                                                "cap of %u", (unsigned long long)n, 1u << 24);
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct kura_str s = kura_gguf_arr_str(g, ki, i);
        if (s.len > KURA_MAX_TOKEN_BYTES * 2)
            return kura_err_set(eb, KURA_ERR_RANGE, "tokenizer.ggml.merges[%llu]: %llu bytes",
                                (unsigned long long)i, (unsigned long long)s.len);
        total += (size_t)s.len;
    }
    if (total >= UINT32_MAX)
        return kura_err_set(eb, KURA_ERR_RANGE, "tokenizer.ggml.merges: too large");
    t->mpool = malloc(total + 1);
    if (!t->mpool || strmap_init(&t->merges, (size_t)n))
        return kura_err_set(eb, KURA_ERR_NOMEM, "tokenizer.ggml.merges: out of memory");
    size_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct kura_str s = kura_gguf_arr_str(g, ki, i);
        /* "left right": split at the first space after the first byte */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL;
        if (!sp)
            continue; /* malformed merge: never matches, as the reference's empty pair */
        size_t ll = (size_t)(sp - s.ptr), rl = (size_t)s.len - ll - 1;
        memcpy(t->mpool + off, s.ptr, ll);
        memcpy(t->mpool + off + ll, sp + 1, rl);
        strmap_put(&t->merges, t->mpool, (uint32_t)off, (uint32_t)(ll + rl), (uint32_t)ll,
                   (int32_t)i, true);
        off += ll + rl;
    }
    t->n_merges = (uint32_t)n;
    return KURA_OK;
}

static int32_t first_of(const struct kura_tok *t, const char *const *names)
{
    for (int k = 0; names[k]; k++) {
        int32_t id = find_cstr(t, names[k]);
        if (id >= 0)
            return id;
    }
    return TOK_NULL;
}

/* End-of-turn, fill-in-the-middle and end-of-generation tokens recognised by their text, as the
 * reference engine does (model files often leave them typed as normal text); a recognised token
 * gains the control attribute, so parse_special splits it out of the text. */
static void set_eog_and_attrs(struct kura_tok *t)
{
    static const char *const eot_names[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
        "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<end_of_utterance>", NULL};
    static const char *const eom_names[] = {"<|eom_id|>", NULL};
    static const char *const pre_names[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                            "<PRE>", "<|code_prefix|>", "<|prefix|>", NULL};
    static const char *const suf_names[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                                            "<SUF>", "<|code_suffix|>", "<|suffix|>", NULL};
    static const char *const mid_names[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                                            "<MID>", "<|code_middle|>", "<|middle|>", NULL};
    static const char *const pad_names[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
                                            "[PAD]", NULL};
    static const char *const rep_names[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                            "<REPO>", "<reponame>", NULL};
    static const char *const sep_names[] = {"<|file_sep|>", NULL};
    static const char *const eog_names[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
        "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>",
        "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>",
        "<|tool_response>", NULL};
    static const char *const *const fim_lists[] = {pre_names, suf_names, mid_names,
                                                   pad_names, rep_names, sep_names};
    if (t->eot == TOK_NULL && (t->eot = first_of(t, eot_names)) >= 0)
        t->tok[t->eot].attr |= TA_CONTROL;
    if (t->eom == TOK_NULL && (t->eom = first_of(t, eom_names)) >= 0)
        t->tok[t->eom].attr |= TA_CONTROL;
    for (int k = 0; k < 6; k++) {
        int32_t id = first_of(t, fim_lists[k]);
        if (id < 0)
            continue;
        t->tok[id].attr |= TA_CONTROL;
        if (k >= 3) /* pad, repo, file separator end generation */
            t->tok[id].attr |= TA_EOG;
    }
    /* control tokens named "unused" are unused */
    for (int32_t id = 0; id < t->n_vocab; id++) {
        struct tok_entry *e = &t->tok[id];
        if ((e->attr & TA_CONTROL) && memmem(t->pool + e->off, e->len, "unused", 6))
            e->attr |= TA_UNUSED;
    }
    for (int k = 0; eog_names[k]; k++) {
        int32_t id = find_cstr(t, eog_names[k]);
        if (id >= 0)
            t->tok[id].attr |= TA_CONTROL | TA_EOG;
    }
    static const char *const harmony_user[] = {"<|channel|>", "<|message|>", "<|start|>",
                                               "<|constrain|>"};
    for (int k = 0; k < 4; k++) {
        int32_t id = find_cstr(t, harmony_user[k]);
        if (id >= 0)
            t->tok[id].attr = (uint16_t)(TA_USER | (t->tok[id].attr & TA_EOG));
    }
    int32_t always[3] = {t->eos, t->eot, t->eom};
    for (int k = 0; k < 3; k++)
        if (always[k] >= 0)
            t->tok[always[k]].attr |= TA_EOG;
    /* harmony-style vocabularies: <|end|> separates messages, it does not end generation */
    int32_t ret = find_cstr(t, "<|return|>"), call = find_cstr(t, "<|call|>");
    int32_t calls = find_cstr(t, "<|calls|>"), flush = find_cstr(t, "<|flush|>");
    int32_t end = find_cstr(t, "<|end|>");
#define IS_EOG(id) ((id) >= 0 && (t->tok[id].attr & TA_EOG))
    bool has_call = IS_EOG(call) || IS_EOG(calls);
    if (IS_EOG(end) && ((IS_EOG(ret) && has_call) || (has_call && IS_EOG(flush))))
        t->tok[end].attr = TA_USER;
    /* gemma4 writes </s> as text: keep it normal there */
    int32_t tool_resp = find_cstr(t, "<|tool_response>"), s_end = find_cstr(t, "</s>");
    if (IS_EOG(tool_resp) && IS_EOG(s_end))
        t->tok[s_end].attr = TA_NORMAL;
#undef IS_EOG
}

enum kura_err kura_tok_create(const struct kura_gguf *g, struct kura_tok **out,
                              struct kura_errbuf *eb)
{
    struct kura_tok *t = NULL;
    enum kura_err err = KURA_OK;
    *out = NULL;
    t = calloc(1, sizeof *t);
    if (!t)
        return kura_err_set(eb, KURA_ERR_NOMEM, "tokenizer: out of memory");

    copy_str_meta(g, "tokenizer.ggml.model", t->model_name, sizeof t->model_name);
    copy_str_meta(g, "tokenizer.ggml.pre", t->pre_name, sizeof t->pre_name);
    const char *model = t->model_name;
    bool llama3_like = false;
    if (strcmp(model, "llama") == 0) {
        t->kind = KURA_TOK_SPM;
    } else if (strcmp(model, "gpt2") == 0) {
        t->kind = KURA_TOK_BPE;
        if (!pre_from_name(t->pre_name, &t->pre, &llama3_like)) {
            err = kura_err_set(eb, KURA_ERR_UNSUPPORTED, "tokenizer.ggml.pre: unknown "
                               "pre-tokenizer '%s'", t->pre_name);
            goto fail;
        }
    } else if (strcmp(model, "gemma4") == 0) {
        t->kind = KURA_TOK_BPE;
        t->pre = PRE_GEMMA4;
    } else if (strcmp(model, "bert") == 0) {
        t->kind = KURA_TOK_WPM;
    } else if (strcmp(model, "t5") == 0) {
        t->kind = KURA_TOK_UGM;
    } else {
        err = kura_err_set(eb, model[0] ? KURA_ERR_UNSUPPORTED : KURA_ERR_NOTFOUND,
                           "tokenizer.ggml.model: %s '%s'",
                           model[0] ? "unsupported tokenizer" : "missing", model);
        goto fail;
    }

    /* tokens, scores, types */
    uint64_t n = 0, n_scores = 0, n_types = 0;
    int64_t ki = find_arr(g, "tokenizer.ggml.tokens", KURA_GGUF_STRING, &n);
    if (ki < 0 || n == 0) {
        err = kura_err_set(eb, KURA_ERR_FORMAT, "tokenizer.ggml.tokens: missing or empty");
        goto fail;
    }
    if (n > KURA_MAX_VOCAB) {
        err = kura_err_set(eb, KURA_ERR_RANGE, "tokenizer.ggml.tokens: %llu tokens exceed the "
                           "cap of %d", (unsigned long long)n, KURA_MAX_VOCAB);
        goto fail;
    }
    int64_t si = find_arr(g, "tokenizer.ggml.scores", KURA_GGUF_FLOAT32, &n_scores);
    int64_t ti = find_arr(g, "tokenizer.ggml.token_type", KURA_GGUF_INT32, &n_types);
    if ((si >= 0 && n_scores != n) || (ti >= 0 && n_types != n)) {
        err = kura_err_set(eb, KURA_ERR_FORMAT, "tokenizer.ggml.%s: %llu entries for %llu tokens",
                           si >= 0 && n_scores != n ? "scores" : "token_type",
                           (unsigned long long)(si >= 0 && n_scores != n ? n_scores : n_types),
                           (unsigned long long)n);
        goto fail;
    }
    t->n_vocab = (int32_t)n;
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct kura_str s = kura_gguf_arr_str(g, ki, i);
        if (s.len > KURA_MAX_TOKEN_BYTES) {
            err = kura_err_set(eb, KURA_ERR_RANGE, "tokenizer.ggml.tokens[%llu]: %llu bytes "
                               "exceed the cap of %u", (unsigned long long)i,
                               (unsigned long long)s.len, KURA_MAX_TOKEN_BYTES);
            goto fail;
        }
        total += s.len ? (size_t)s.len : 24; /* room for "[EMPTY_<i>]" */
    }
    t->pool = malloc(total + 1);
    t->tok = calloc((size_t)n, sizeof *t->tok);
    if (!t->pool || !t->tok || strmap_init(&t->vocab, (size_t)n)) {
        err = kura_err_set(eb, KURA_ERR_NOMEM, "tokenizer: out of memory for %llu tokens",
                           (unsigned long long)n);
        goto fail;
    }
    const unsigned char *scores = si >= 0 ? kura_gguf_arr_data(g, si) : NULL;
    const unsigned char *types = ti >= 0 ? kura_gguf_arr_data(g, ti) : NULL;
    size_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct kura_str s = kura_gguf_arr_str(g, ki, i);
        struct tok_entry *e = &t->tok[i];
        e->off = (uint32_t)off;
        if (s.len) {
            memcpy(t->pool + off, s.ptr, (size_t)s.len);
            e->len = (uint32_t)s.len;
        } else { /* an empty entry gets a unique placeholder text, as the reference */
            char ph[25];
            int pl = snprintf(ph, sizeof ph, "[EMPTY_%llu]", (unsigned long long)i);
            memcpy(t->pool + off, ph, (size_t)pl);
            e->len = (uint32_t)pl;
        }
        off += e->len;
        if (scores)
            memcpy(&e->score, scores + 4 * i, 4);
        int32_t ty = KURA_TOK_TYPE_NORMAL;
        if (types)
            memcpy(&ty, types + 4 * i, 4);
        e->type = (int16_t)(ty >= 0 && ty <= 6 ? ty : 0);
        switch (ty) {
        case KURA_TOK_TYPE_NORMAL: e->attr = TA_NORMAL; break;
        case KURA_TOK_TYPE_UNKNOWN: e->attr = TA_UNKNOWN; break;
        case KURA_TOK_TYPE_CONTROL: e->attr = TA_CONTROL; break;
        case KURA_TOK_TYPE_USER_DEFINED: e->attr = TA_USER; break;
        case KURA_TOK_TYPE_UNUSED: e->attr = TA_UNUSED; break;
        case KURA_TOK_TYPE_BYTE: e->attr = TA_BYTE; break;
        default: e->attr = 0; break;
        }
        if (e->len > t->max_token_len)
            t->max_token_len = e->len;
        strmap_put(&t->vocab, t->pool, e->off, e->len, 0, (int32_t)i, false);
    }
    t->pool_len = total;

    /* defaults per kind, then metadata */
    t->bos = t->eos = t->eot = t->eom = t->unk = t->sep = t->pad = t->mask = TOK_NULL;
    switch (t->kind) {
    case KURA_TOK_SPM:
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_bos = true, t->add_space_prefix = true;
        break;
    case KURA_TOK_BPE:
        t->bos = 11, t->eos = 11;
        t->add_bos = llama3_like;
        t->ignore_merges = llama3_like;
        t->byte_encode = t->pre != PRE_GEMMA4;
        t->escape_spaces = t->pre == PRE_GEMMA4;
        break;
    case KURA_TOK_WPM:
        t->bos = 101, t->unk = 100, t->sep = 102, t->pad = 0, t->mask = 103;
        t->add_bos = true, t->add_eos = true; /* CLS ... SEP */
        break;
    case KURA_TOK_UGM:
        t->eos = 1, t->unk = 2, t->pad = 0;
        t->add_eos = true, t->add_space_prefix = true;
        break;
    }
    for (int32_t *p = &t->bos; p <= &t->mask; p++)
        if (*p >= t->n_vocab)
            *p = TOK_NULL;
    get_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos);
    get_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos);
    get_id(g, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot);
    get_id(g, "tokenizer.ggml.eom_token_id", t->n_vocab, &t->eom);
    get_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk);
    get_id(g, "tokenizer.ggml.seperator_token_id", t->n_vocab, &t->sep);
    get_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad);
    get_id(g, "tokenizer.ggml.mask_token_id", t->n_vocab, &t->mask);
    if (t->kind == KURA_TOK_WPM)
        get_id(g, "tokenizer.ggml.cls_token_id", t->n_vocab, &t->bos);
    get_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
    get_flag(g, "tokenizer.ggml.remove_extra_whitespaces", &t->remove_extra_ws);
    if (t->kind == KURA_TOK_WPM) {
        get_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
        get_flag(g, "tokenizer.ggml.add_sep_token", &t->add_eos);
    } else {
        get_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
        get_flag(g, "tokenizer.ggml.add_eos_token", &t->add_eos);
    }
    if (t->pre == PRE_GEMMA4 && t->kind == KURA_TOK_BPE)
        t->add_bos = true; /* the reference forces it for this pre-tokenizer */
    if (t->kind == KURA_TOK_BPE)
        t->add_space_prefix = false;

    for (int b = 0; b < 256; b++) {
        char name[8];
        static const char hex[] = "0123456789ABCDEF";
        name[0] = '<', name[1] = '0', name[2] = 'x', name[3] = hex[b >> 4], name[4] = hex[b & 15];
        name[5] = '>';
        t->byte_tok[b] = strmap_get(&t->vocab, t->pool, name, 6, 0);
        if (t->byte_tok[b] < 0 && t->kind != KURA_TOK_BPE) {
            char c = (char)b; /* fall back to the byte as a one-byte token */
            t->byte_tok[b] = strmap_get(&t->vocab, t->pool, &c, 1, 0);
        }
    }

    set_eog_and_attrs(t);

    /* special tokens, longest first */
    {
        uint64_t *keys = malloc((size_t)t->n_vocab * sizeof *keys);
        t->special = malloc((size_t)t->n_vocab * sizeof *t->special);
        if (!keys || !t->special) {
            free(keys);
            err = kura_err_set(eb, KURA_ERR_NOMEM, "tokenizer: out of memory");
            goto fail;
        }
        for (int32_t i = 0; i < t->n_vocab; i++)
            if ((t->tok[i].attr & (TA_CONTROL | TA_USER | TA_UNKNOWN)) && t->tok[i].len > 0)
                keys[t->n_special++] = ((uint64_t)(UINT32_MAX - t->tok[i].len) << 32) |
                                       (uint32_t)i;
        qsort(keys, t->n_special, sizeof *keys, cmp_u64);
        for (uint32_t k = 0; k < t->n_special; k++)
            t->special[k] = (int32_t)(keys[k] & 0xffffffffu);
        free(keys);
    }

    /* per-model strip attributes */
    {
        char name[128], arch[64];
        copy_str_meta(g, "general.name", name, sizeof name);
        copy_str_meta(g, "general.architecture", arch, sizeof arch);
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (strstr(t->pre_name, "jina-v2-") || strstr(arch, "nomic-bert-moe") ||
            strstr(arch, "jina-bert-v3")) {
            int32_t id = find_cstr(t, "<mask>");
            if (id >= 0)
                t->tok[id].attr |= TA_LSTRIP;
        } else if (strstr(name, "phi-3") || strstr(name, "phi3")) {
            for (uint32_t k = 0; k < t->n_special; k++)
                t->tok[t->special[k]].attr |= TA_RSTRIP;
            int32_t id = find_cstr(t, "</s>");
            if (id >= 0)
                t->tok[id].attr |= TA_RSTRIP;
            static const char *const no_rstrip[] = {"<unk>", "<s>", "<|endoftext|>"};
            for (int k = 0; k < 3; k++)
                if ((id = find_cstr(t, no_rstrip[k])) >= 0)
                    t->tok[id].attr &= (uint16_t)~TA_RSTRIP;
        }
    }

    if (t->kind == KURA_TOK_BPE) {
        if ((err = load_merges(t, g, eb)))
            goto fail;
        if ((err = tok_pre_compile(t, eb)))
            goto fail;
    }
    if (t->kind == KURA_TOK_UGM) {
        uint64_t nc = 0;
        int64_t ci = find_arr(g, "tokenizer.ggml.precompiled_charsmap", KURA_GGUF_UINT8, &nc);
        if (ci < 0)
            ci = find_arr(g, "tokenizer.ggml.precompiled_charsmap", KURA_GGUF_INT8, &nc);
        if ((err = tok_ugm_init(t, ci >= 0 ? kura_gguf_arr_data(g, ci) : NULL,
                                ci >= 0 ? (size_t)nc : 0, eb)))
            goto fail;
    }
    *out = t;
    return KURA_OK;
fail:
    kura_tok_destroy(t);
    return err ? err : KURA_ERR_INTERNAL;
}

void kura_tok_destroy(struct kura_tok *t)
{
    if (!t)
        return;
    tok_pre_free(t);
    strmap_deinit(&t->vocab);
    strmap_deinit(&t->merges);
    trie_deinit(&t->ugm_tokens);
    trie_deinit(&t->ugm_user);
    free(t->charsmap);
    free(t->pool);
    free(t->mpool);
    free(t->tok);
    free(t->special);
    free(t);
}

/* ---- accessors ---- */

enum kura_tok_kind kura_tok_kind(const struct kura_tok *t) { return t->kind; }
const char *kura_tok_model_name(const struct kura_tok *t) { return t->model_name; }
const char *kura_tok_pre_name(const struct kura_tok *t) { return t->pre_name; }
int32_t kura_tok_n_vocab(const struct kura_tok *t) { return t->n_vocab; }
int32_t kura_tok_bos(const struct kura_tok *t) { return t->bos; }
int32_t kura_tok_eos(const struct kura_tok *t) { return t->eos; }
int32_t kura_tok_eot(const struct kura_tok *t) { return t->eot; }
int32_t kura_tok_pad(const struct kura_tok *t) { return t->pad; }
int32_t kura_tok_unk(const struct kura_tok *t) { return t->unk; }
int32_t kura_tok_sep(const struct kura_tok *t) { return t->sep; }
bool kura_tok_add_bos(const struct kura_tok *t) { return t->add_bos; }
bool kura_tok_add_eos(const struct kura_tok *t) { return t->add_eos; }

bool kura_tok_is_eog(const struct kura_tok *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->tok[id].attr & TA_EOG);
}

bool kura_tok_is_control(const struct kura_tok *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->tok[id].attr & (TA_CONTROL | TA_UNKNOWN));
}

enum kura_tok_type kura_tok_type(const struct kura_tok *t, int32_t id)
{
    if (id < 0 || id >= t->n_vocab)
        return KURA_TOK_TYPE_UNDEFINED;
    return (enum kura_tok_type)t->tok[id].type;
}

const char *kura_tok_text(const struct kura_tok *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = t->tok[id].len;
    return t->pool + t->tok[id].off;
}

int32_t kura_tok_find(const struct kura_tok *t, const char *text, size_t len)
{
    return strmap_get(&t->vocab, t->pool, text, len, 0);
}

/* ---- encode ---- */

struct frag {
    int32_t id; /* -1: raw text */
    size_t off, len;
};
struct fragvec {
    struct frag *v;
    size_t n, cap;
};

static int frag_push(struct fragvec *f, int32_t id, size_t off, size_t len)
{
    if (f->n == f->cap) {
        if (f->cap >= TOK_MAX_IDS)
            return KURA_ERR_RANGE;
        size_t ncap = f->cap ? f->cap * 2 : 16;
        struct frag *nv = realloc(f->v, ncap * sizeof *nv);
        if (!nv)
            return KURA_ERR_NOMEM;
        f->v = nv;
        f->cap = ncap;
    }
    f->v[f->n].id = id;
    f->v[f->n].off = off;
    f->v[f->n].len = len;
    f->n++;
    return KURA_OK;
}

static bool is_space_c(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Splits the raw fragments on every special token's text, longest tokens first. */
static int partition(const struct kura_tok *t, const char *text, size_t len, bool parse_special,
                     struct fragvec *fv)
{
    struct fragvec nv = {0};
    int err;
    fv->n = 0;
    if (len == 0)
        return KURA_OK;
    if ((err = frag_push(fv, -1, 0, len)))
        return err;
    for (uint32_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special[k];
        const struct tok_entry *e = &t->tok[id];
        if (!parse_special && (e->attr & (TA_CONTROL | TA_UNKNOWN)))
            continue; /* user-defined tokens are split out even then */
        const char *st = t->pool + e->off;
        bool any = false;
        for (size_t i = 0; i < fv->n && !any; i++)
            if (fv->v[i].id < 0 && fv->v[i].len >= e->len &&
                memmem(text + fv->v[i].off, fv->v[i].len, st, e->len))
                any = true;
        if (!any)
            continue;
        nv.n = 0;
        for (size_t i = 0; i < fv->n; i++) {
            struct frag f = fv->v[i];
            if (f.id >= 0) {
                if ((err = frag_push(&nv, f.id, 0, 0)))
                    goto done;
                continue;
            }
            size_t pos = f.off, end = f.off + f.len;
            for (;;) {
                const char *m = end - pos >= e->len ? memmem(text + pos, end - pos, st, e->len)
                                                    : NULL;
                if (!m)
                    break;
                size_t ms = (size_t)(m - text);
                size_t ll = ms - pos;
                if (e->attr & TA_LSTRIP)
                    while (ll > 0 && is_space_c(text[pos + ll - 1]))
                        ll--;
                if (ll > 0 && (err = frag_push(&nv, -1, pos, ll)))
                    goto done;
                if ((err = frag_push(&nv, id, 0, 0)))
                    goto done;
                pos = ms + e->len;
                if (e->attr & TA_RSTRIP)
                    while (pos < end && is_space_c(text[pos]))
                        pos++;
            }
            if (pos < end && (err = frag_push(&nv, -1, pos, end - pos)))
                goto done;
        }
        struct fragvec tmp = *fv;
        *fv = nv;
        nv = tmp;
    }
    err = KURA_OK;
done:
    free(nv.v);
    return err;
}

/* SPM: spaces -> U+2581, with the space prefix when the previous fragment was special. */
static int spm_fragment(const struct kura_tok *t, const char *text, size_t len, bool prefix,
                        struct kura_buf *buf, struct idvec *out)
{
    int err = KURA_OK;
    kura_buf_clear(buf);
    if (prefix && (err = kura_buf_put(buf, "\xE2\x96\x81", 3)))
        return err;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != ' ')
            continue;
        if ((err = kura_buf_put(buf, text + run, i - run)) ||
            (err = kura_buf_put(buf, "\xE2\x96\x81", 3)))
            return err;
        run = i + 1;
    }
    if ((err = kura_buf_put(buf, text + run, len - run)))
        return err;
    return tok_spm_encode(t, buf->p, buf->len, out);
}

enum kura_err kura_tok_encode(const struct kura_tok *t, const char *text, size_t len,
                              bool add_special, bool parse_special, int32_t **ids,
                              size_t *n_ids, struct kura_errbuf *eb)
{
    struct fragvec fv = {0};
    struct idvec out = {0};
    struct kura_buf buf = {0};
    int err = KURA_OK;
    *ids = NULL;
    *n_ids = 0;
    if (len > KURA_MAX_PROMPT_BYTES)
        return kura_err_set(eb, KURA_ERR_RANGE, "tokenize: %zu bytes of text exceed the cap of %u",
                            len, KURA_MAX_PROMPT_BYTES);
    if (len > 0 && !text)
        return kura_err_set(eb, KURA_ERR_INVALID, "tokenize: NULL text");
    if ((err = partition(t, text, len, parse_special, &fv)))
        goto fail;

    bool bos = add_special && t->add_bos && t->bos >= 0;
    bool eos = add_special && t->add_eos;
    if (bos && (err = idvec_push(&out, t->bos)))
        goto fail;
    bool prev_special = true; /* SPM: the first fragment gets the space prefix */
    for (size_t i = 0; i < fv.n; i++) {
        const struct frag *f = &fv.v[i];
        if (f->id >= 0) {
            if ((err = idvec_push(&out, f->id)))
                goto fail;
            prev_special = true;
            continue;
        }
        switch (t->kind) {
        case KURA_TOK_SPM:
            err = spm_fragment(t, text + f->off, f->len, t->add_space_prefix && prev_special,
                               &buf, &out);
            break;
        case KURA_TOK_BPE: err = tok_bpe_encode(t, text + f->off, f->len, &out); break;
        case KURA_TOK_WPM: err = tok_wpm_encode(t, text + f->off, f->len, &out); break;
        case KURA_TOK_UGM: err = tok_ugm_encode(t, text + f->off, f->len, &out); break;
        }
        if (err)
            goto fail;
        prev_special = false;
    }
    if (eos) {
        int32_t e = t->kind == KURA_TOK_WPM ? t->sep : t->eos;
        if (e >= 0 && (err = idvec_push(&out, e)))
            goto fail;
    }
    free(fv.v);
    kura_buf_free(&buf);
    *ids = out.v;
    *n_ids = out.n;
    return KURA_OK;
fail:
    free(fv.v);
    kura_buf_free(&buf);
    free(out.v);
    return kura_err_set(eb, (enum kura_err)err, "tokenize: %s", kura_err_str((enum kura_err)err));
}

/* ---- pieces ---- */

static size_t put(char *buf, size_t cap, size_t o, const char *s, size_t n)
{
    if (o < cap)
        memcpy(buf + o, s, o + n <= cap ? n : cap - o);
    return o + n;
}

/* '▁' -> ' ' */
static size_t unescape_spaces(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0, run = 0;
    for (size_t i = 0; i + 3 <= n; i++) {
        if ((unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 &&
            (unsigned char)s[i + 2] == 0x81) {
            o = put(buf, cap, o, s + run, i - run);
            o = put(buf, cap, o, " ", 1);
            i += 2;
            run = i + 1;
        }
    }
    return put(buf, cap, o, s + run, n - run);
}

size_t kura_tok_piece(const struct kura_tok *t, int32_t id, unsigned flags, char *buf,
                      size_t buf_len)
{
    if (id < 0 || id >= t->n_vocab)
        return 0;
    const struct tok_entry *e = &t->tok[id];
    const char *s = t->pool + e->off;
    if (e->attr & (TA_CONTROL | TA_UNKNOWN)) {
        if (!(flags & KURA_TOK_PIECE_SPECIAL))
            return 0;
        return put(buf, buf_len, 0, s, e->len);
    }
    if (e->attr & TA_USER)
        return put(buf, buf_len, 0, s, e->len);
    bool spm_like = t->kind != KURA_TOK_BPE || !t->byte_encode;
    if (spm_like) {
        if (e->attr & TA_BYTE) {
            /* <0xNN> */
            unsigned v = 0;
            for (uint32_t k = 3; k + 1 < e->len && k < 5; k++) {
                char c = s[k];
                v = v * 16 + (unsigned)(c >= 'A' ? (c | 0x20) - 'a' + 10 : c - '0');
            }
            char c = (char)v;
            return put(buf, buf_len, 0, &c, 1);
        }
        if (e->attr & TA_NORMAL)
            return unescape_spaces(s, e->len, buf, buf_len);
        return 0;
    }
    if (!(e->attr & TA_NORMAL))
        return 0;
    /* byte-level BPE: map each code point of the alphabet back to its byte */
    size_t o = 0;
    for (size_t i = 0; i < e->len;) {
        uint32_t cp;
        size_t n = tok_utf8_decode((const unsigned char *)s + i, e->len - i, &cp);
        if (n == 0) {
            o = put(buf, buf_len, o, s + i, 1);
            i++;
            continue;
        }
        int b = tok_unicode_to_byte(cp);
        if (b >= 0) {
            char c = (char)b;
            o = put(buf, buf_len, o, &c, 1);
        } else {
            o = put(buf, buf_len, o, s + i, n);
        }
        i += n;
    }
    return o;
}

enum kura_err kura_tok_decode(const struct kura_tok *t, const int32_t *ids, size_t n_ids,
                              unsigned flags, char **text, size_t *len, struct kura_errbuf *eb)
{
    struct kura_buf b = {0};
    char small[256];
    int err = KURA_OK;
    *text = NULL;
    *len = 0;
    bool remove_space = t->add_space_prefix;
    size_t i = 0;
    if (n_ids > 0 && t->add_bos && ids[0] == t->bos) {
        remove_space = false;
        i = 1;
    }
    if ((err = kura_buf_put(&b, "", 0)))
        goto fail;
    for (; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            kura_buf_free(&b);
            return kura_err_set(eb, KURA_ERR_INVALID, "detokenize: id %d at position %zu out of "
                                "range (vocabulary of %d)", (int)ids[i], i, (int)t->n_vocab);
        }
        size_t n = kura_tok_piece(t, ids[i], flags, small, sizeof small);
        const char *p = small;
        char *big = NULL;
        if (n > sizeof small) {
            big = malloc(n);
            if (!big) {
                err = KURA_ERR_NOMEM;
                goto fail;
            }
            kura_tok_piece(t, ids[i], flags, big, n);
            p = big;
        }
        if (remove_space && n > 0 && p[0] == ' ') {
            p++;
            n--;
        }
        remove_space = false;
        err = kura_buf_put(&b, p, n);
        free(big);
        if (err)
            goto fail;
    }
    *text = b.p;
    *len = b.len;
    return KURA_OK;
fail:
    kura_buf_free(&b);
    return kura_err_set(eb, (enum kura_err)err, "detokenize: %s", kura_err_str((enum kura_err)err));
}
