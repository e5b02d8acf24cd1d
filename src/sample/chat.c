/* Built-in chat templates. See include/kura/chat.h. */
#include "kura/chat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"

static const char *const tmpl_names[KURA_CHAT_TMPL__COUNT] = {
    [KURA_CHAT_TMPL_UNKNOWN] = "unknown",
    [KURA_CHAT_TMPL_CHATML] = "chatml",
    [KURA_CHAT_TMPL_LLAMA2] = "llama2",
    [KURA_CHAT_TMPL_LLAMA2_SYS] = "llama2-sys",
    [KURA_CHAT_TMPL_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [KURA_CHAT_TMPL_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
    [KURA_CHAT_TMPL_MISTRAL_V1] = "mistral-v1",
    [KURA_CHAT_TMPL_MISTRAL_V3] = "mistral-v3",
    [KURA_CHAT_TMPL_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [KURA_CHAT_TMPL_MISTRAL_V7] = "mistral-v7",
    [KURA_CHAT_TMPL_MISTRAL_V7_TEKKEN] = "mistral-v7-tekken",
    [KURA_CHAT_TMPL_LLAMA3] = "llama3",
    [KURA_CHAT_TMPL_GEMMA] = "gemma",
    [KURA_CHAT_TMPL_PHI3] = "phi3",
    [KURA_CHAT_TMPL_PHI4] = "phi4",
};

const char *kura_chat_tmpl_name(enum kura_chat_tmpl tmpl)
{
    if ((int)tmpl < 0 || tmpl >= KURA_CHAT_TMPL__COUNT)
        return "unknown";
    return tmpl_names[tmpl];
}

enum kura_chat_tmpl kura_chat_tmpl_from_name(const char *name)
{
    if (!name)
        return KURA_CHAT_TMPL_UNKNOWN;
    for (int t = 1; t < KURA_CHAT_TMPL__COUNT; t++)
        if (strcmp(name, tmpl_names[t]) == 0)
            return (enum kura_chat_tmpl)t;
    return KURA_CHAT_TMPL_UNKNOWN;
}

enum kura_chat_tmpl kura_chat_tmpl_detect(const char *src)
{
    if (!src)
        return KURA_CHAT_TMPL_UNKNOWN;
    enum kura_chat_tmpl byname = kura_chat_tmpl_from_name(src);
    if (byname != KURA_CHAT_TMPL_UNKNOWN)
        return byname;
#define HAS(m) (strstr(src, (m)) != NULL)
    if (HAS("<|im_start|>"))
        return HAS("<|im_sep|>") ? KURA_CHAT_TMPL_PHI4 : KURA_CHAT_TMPL_CHATML;
    if (HAS("[INST]")) {
        if (HAS("[SYSTEM_PROMPT]"))
            return KURA_CHAT_TMPL_MISTRAL_V7;
        /* the official Mistral templates: v1 by its system-message line, v3/v3-tekken by tools */
        if (HAS("' [INST] ' + system_message") || HAS("[AVAILABLE_TOOLS]")) {
            if (HAS(" [INST]"))
                return KURA_CHAT_TMPL_MISTRAL_V1;
            if (HAS("\"[INST]\""))
                return KURA_CHAT_TMPL_MISTRAL_V3_TEKKEN;
            return KURA_CHAT_TMPL_MISTRAL_V3;
        }
        if (HAS("content.strip()"))
            return KURA_CHAT_TMPL_LLAMA2_SYS_STRIP;
        if (HAS("bos_token + '[INST]"))
            return KURA_CHAT_TMPL_LLAMA2_SYS_BOS;
        if (HAS("<<SYS>>"))
            return KURA_CHAT_TMPL_LLAMA2_SYS;
        return KURA_CHAT_TMPL_LLAMA2;
    }
    if (HAS("<|assistant|>") && HAS("<|end|>"))
        return KURA_CHAT_TMPL_PHI3;
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>"))
        return KURA_CHAT_TMPL_LLAMA3;
    if (HAS("<start_of_turn>"))
        return KURA_CHAT_TMPL_GEMMA;
#undef HAS
    return KURA_CHAT_TMPL_UNKNOWN;
}

/* ---- helpers ---------------------------------------------------------------------------------- */

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Content with leading and trailing ASCII whitespace removed (llama.cpp's trim()). */
static void put_trimmed(struct kura_buf *b, const char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n && is_ws(s[i]))
        i++;
    while (n > i && is_ws(s[n - 1]))
        n--;
    kura_buf_put(b, s + i, n - i);
}

/* A role for an error message: at most 32 bytes, non-printable bytes as '?'. */
static void role_for_msg(const char *role, char out[40])
{
    size_t i = 0;
    for (; role[i] && i < 32; i++) {
        unsigned char c = (unsigned char)role[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (role[i])
        out[i++] = '.', out[i++] = '.', out[i++] = '.';
    out[i] = 0;
}

/* ---- the formats ------------------------------------------------------------------------------ */

static void fmt_chatml(struct kura_buf *b, const struct kura_chat_msg *m, size_t n, bool add_ass)
{
    for (size_t i = 0; i < n; i++) {
        kura_buf_puts(b, "<|im_start|>");
        kura_buf_puts(b, m[i].role);
        kura_buf_puts(b, "\n");
        kura_buf_puts(b, m[i].content);
        kura_buf_puts(b, "<|im_end|>\n");
    }
    if (add_ass)
        kura_buf_puts(b, "<|im_start|>assistant\n");
}

static void fmt_phi4(struct kura_buf *b, const struct kura_chat_msg *m, size_t n, bool add_ass)
{
    for (size_t i = 0; i < n; i++) {
        kura_buf_puts(b, "<|im_start|>");
        kura_buf_puts(b, m[i].role);
        kura_buf_puts(b, "<|im_sep|>");
        kura_buf_puts(b, m[i].content);
        kura_buf_puts(b, "<|im_end|>");
    }
    if (add_ass)
        kura_buf_puts(b, "<|im_start|>assistant<|im_sep|>");
}

static void fmt_phi3(struct kura_buf *b, const struct kura_chat_msg *m, size_t n, bool add_ass)
{
    for (size_t i = 0; i < n; i++) {
        kura_buf_puts(b, "<|");
        kura_buf_puts(b, m[i].role);
        kura_buf_puts(b, "|>\n");
        kura_buf_puts(b, m[i].content);
        kura_buf_puts(b, "<|end|>\n");
    }
    if (add_ass)
        kura_buf_puts(b, "<|assistant|>\n");
}

static void fmt_llama3(struct kura_buf *b, const struct kura_chat_msg *m, size_t n, bool add_ass)
{
    for (size_t i = 0; i < n; i++) {
        kura_buf_puts(b, "<|start_header_id|>");
        kura_buf_puts(b, m[i].role);
        kura_buf_puts(b, "<|end_header_id|>\n\n");
        put_trimmed(b, m[i].content);
        kura_buf_puts(b, "<|eot_id|>");
    }
    if (add_ass)
        kura_buf_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void fmt_llama2(struct kura_buf *b, enum kura_chat_tmpl t, const struct kura_chat_msg *m,
                       const enum role *roles, size_t n)
{
    bool sys_support = t != KURA_CHAT_TMPL_LLAMA2;
    bool bos_inside = t == KURA_CHAT_TMPL_LLAMA2_SYS_BOS;
    bool strip = t == KURA_CHAT_TMPL_LLAMA2_SYS_STRIP;
    bool in_turn = true; /* the first [INST] comes without <s>: the tokenizer adds BOS */
    kura_buf_puts(b, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            in_turn = true;
            kura_buf_puts(b, bos_inside ? "<s>[INST] " : "[INST] ");
        }
        if (roles[i] == ROLE_SYSTEM && sys_support)
            kura_buf_puts(b, "<<SYS>>\n");
        if (strip)
            put_trimmed(b, m[i].content);
        else
            kura_buf_puts(b, m[i].content);
        if (roles[i] == ROLE_SYSTEM) {
            kura_buf_puts(b, sys_support ? "\n<</SYS>>\n\n" : "\n");
        } else if (roles[i] == ROLE_USER) {
            kura_buf_puts(b, " [/INST]");
        } else {
            kura_buf_puts(b, "</s>");
            in_turn = false;
        }
    }
}

static void fmt_mistral(struct kura_buf *b, enum kura_chat_tmpl t, const struct kura_chat_msg *m,
                        const enum role *roles, size_t n)
{
    const char *lead = t == KURA_CHAT_TMPL_MISTRAL_V1 ? " " : "";
    const char *trail = t == KURA_CHAT_TMPL_MISTRAL_V3_TEKKEN ? "" : " ";
    bool trim_ass = t == KURA_CHAT_TMPL_MISTRAL_V3;
    bool in_turn = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            kura_buf_puts(b, lead);
            kura_buf_puts(b, "[INST]");
            kura_buf_puts(b, trail);
            in_turn = true;
        }
        if (roles[i] == ROLE_SYSTEM) {
            kura_buf_puts(b, m[i].content);
            kura_buf_puts(b, "\n\n");
        } else if (roles[i] == ROLE_USER) {
            kura_buf_puts(b, m[i].content);
            kura_buf_puts(b, lead);
            kura_buf_puts(b, "[/INST]");
        } else {
            kura_buf_puts(b, trail);
            if (trim_ass)
                put_trimmed(b, m[i].content);
            else
                kura_buf_puts(b, m[i].content);
            kura_buf_puts(b, "</s>");
            in_turn = false;
        }
    }
}

static void fmt_mistral_v7(struct kura_buf *b, enum kura_chat_tmpl t, const struct kura_chat_msg *m,
                           const enum role *roles, size_t n)
{
    const char *sp = t == KURA_CHAT_TMPL_MISTRAL_V7 ? " " : "";
    for (size_t i = 0; i < n; i++) {
        if (roles[i] == ROLE_SYSTEM) {
            kura_buf_puts(b, "[SYSTEM_PROMPT]");
            kura_buf_puts(b, sp);
            kura_buf_puts(b, m[i].content);
            kura_buf_puts(b, "[/SYSTEM_PROMPT]");
        } else if (roles[i] == ROLE_USER) {
            kura_buf_puts(b, "[INST]");
            kura_buf_puts(b, sp);
            kura_buf_puts(b, m[i].content);
            kura_buf_puts(b, "[/INST]");
        } else {
            kura_buf_puts(b, sp);
            kura_buf_puts(b, m[i].content);
            kura_buf_puts(b, "</s>");
        }
    }
}

/* Gemma has no system role: system text (trimmed, concatenated) opens the next user turn. */
static void fmt_gemma(struct kura_buf *b, const struct kura_chat_msg *m, const enum role *roles,
                      size_t n, bool add_ass)
{
    struct kura_buf sys = {.max = b->max};
    for (size_t i = 0; i < n; i++) {
        if (roles[i] == ROLE_SYSTEM) {
            put_trimmed(&sys, m[i].content);
            continue;
        }
        bool model = roles[i] == ROLE_ASSISTANT;
        kura_buf_puts(b, model ? "<start_of_turn>model\n" : "<start_of_turn>user\n");
        if (sys.len && !model) {
            kura_buf_put(b, sys.p, sys.len);
            kura_buf_puts(b, "\n\n");
            kura_buf_clear(&sys);
        }
        put_trimmed(b, m[i].content);
        kura_buf_puts(b, "<end_of_turn>\n");
    }
    if (add_ass)
        kura_buf_puts(b, "<start_of_turn>model\n");
    if (sys.err && !b->err)
        b->err = sys.err;
    kura_buf_free(&sys);
}

enum kura_err kura_chat_format(enum kura_chat_tmpl tmpl, const struct kura_chat_msg *msgs,
                               size_t n, bool add_generation_prompt, char **out,
                               struct kura_errbuf *eb)
{
    enum kura_err err;
    /* the formatted prompt must stay below KURA_CHAT_MAX_BYTES (KURA_ERR_RANGE) */
    struct kura_buf b = {.max = KURA_CHAT_MAX_BYTES - 1};
    enum role *roles = NULL;
    *out = NULL;

    if ((int)tmpl <= KURA_CHAT_TMPL_UNKNOWN || tmpl >= KURA_CHAT_TMPL__COUNT) {
        err = kura_err_set(eb, KURA_ERR_INVALID, "chat: unknown template %d", (int)tmpl);
        goto fail;
    }
    if (n > KURA_CHAT_MAX_MSGS) {
        err = kura_err_set(eb, KURA_ERR_RANGE, "chat: %zu messages, at most %u allowed", n,
                           KURA_CHAT_MAX_MSGS);
        goto fail;
    }
    if (n && !msgs) {
        err = kura_err_set(eb, KURA_ERR_INVALID, "chat: message array is NULL");
        goto fail;
    }
    roles = malloc((n ? n : 1) * sizeof *roles);
    if (!roles) {
        err = kura_err_set(eb, KURA_ERR_NOMEM, "chat: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r || !msgs[i].content) {
            err = kura_err_set(eb, KURA_ERR_INVALID, "chat: message %zu: %s is missing", i,
                               r ? "content" : "role");
            goto fail;
        }
        if (strcmp(r, "system") == 0) {
            roles[i] = ROLE_SYSTEM;
        } else if (strcmp(r, "user") == 0) {
            roles[i] = ROLE_USER;
        } else if (strcmp(r, "assistant") == 0) {
            roles[i] = ROLE_ASSISTANT;
        } else {
            char shown[40];
            role_for_msg(r, shown);
            err = kura_err_set(eb, KURA_ERR_INVALID,
                               "chat: message %zu: role '%s' is not system, user or assistant", i,
                               shown);
            goto fail;
        }
    }

    switch (tmpl) {
    case KURA_CHAT_TMPL_CHATML: fmt_chatml(&b, msgs, n, add_generation_prompt); break;
    case KURA_CHAT_TMPL_PHI4: fmt_phi4(&b, msgs, n, add_generation_prompt); break;
    case KURA_CHAT_TMPL_PHI3: fmt_phi3(&b, msgs, n, add_generation_prompt); break;
    case KURA_CHAT_TMPL_LLAMA3: fmt_llama3(&b, msgs, n, add_generation_prompt); break;
    case KURA_CHAT_TMPL_LLAMA2:
    case KURA_CHAT_TMPL_LLAMA2_SYS:
    case KURA_CHAT_TMPL_LLAMA2_SYS_BOS:
    case KURA_CHAT_TMPL_LLAMA2_SYS_STRIP: fmt_llama2(&b, tmpl, msgs, roles, n); break;
    case KURA_CHAT_TMPL_MISTRAL_V1:
    case KURA_CHAT_TMPL_MISTRAL_V3:
    case KURA_CHAT_TMPL_MISTRAL_V3_TEKKEN: fmt_mistral(&b, tmpl, msgs, roles, n); break;
    case KURA_CHAT_TMPL_MISTRAL_V7:
    case KURA_CHAT_TMPL_MISTRAL_V7_TEKKEN: fmt_mistral_v7(&b, tmpl, msgs, roles, n); break;
    case KURA_CHAT_TMPL_GEMMA: fmt_gemma(&b, msgs, roles, n, add_generation_prompt); break;
    default:
        err = kura_err_set(eb, KURA_ERR_INTERNAL, "chat: template %d has no formatter", (int)tmpl);
        goto fail;
    }
    if (b.err == KURA_ERR_RANGE) {
        err = kura_err_set(eb, KURA_ERR_RANGE, "chat: formatted prompt exceeds %u bytes",
                           (unsigned)KURA_CHAT_MAX_BYTES);
        goto fail;
    }
    if (b.err) {
        err = kura_err_set(eb, b.err, "chat: out of memory formatting %zu messages", n);
        goto fail;
    }
    *out = kura_buf_take(&b); /* "" for an empty chat */
    if (!*out) {
        err = kura_err_set(eb, KURA_ERR_NOMEM, "chat: out of memory formatting %zu messages", n);
        goto fail;
    }
    free(roles);
    return KURA_OK;
fail:
    free(roles);
    kura_buf_free(&b);
    return err;
}
