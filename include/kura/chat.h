/* Chat templates: turn a list of {role, content} messages into the prompt text a model was
 * trained on. kura does not run Jinja; like llama.cpp's built-in templates it recognises the
 * template stored in GGUF `tokenizer.chat_template` by distinctive markers and renders a fixed
 * format, byte-for-byte the text llama.cpp's llama_chat_apply_template produces.
 *
 * BOS: the rendered text never contains the BOS token (<|begin_of_text|>, <s>, <bos>); the
 * tokenizer adds it when it tokenizes the prompt (as llama.cpp does with add_special). EOS-like
 * markers that are part of the turn format (</s> after an assistant turn, <|eot_id|>, ...) are
 * included, and must be tokenized with special tokens parsed. llama2-sys-bos is the exception
 * that llama.cpp also makes: it writes "<s>" before every later [INST]. */
#ifndef KURA_CHAT_H
#define KURA_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "kura/err.h"

#ifdef __cplusplus
extern "C" {
#endif

enum kura_chat_tmpl {
    KURA_CHAT_TMPL_UNKNOWN = 0,
    KURA_CHAT_TMPL_CHATML,            /* "chatml":  <|im_start|>role\ncontent<|im_end|>\n */
    KURA_CHAT_TMPL_LLAMA2,            /* "llama2":  [INST] ... [/INST], system as plain text */
    KURA_CHAT_TMPL_LLAMA2_SYS,        /* "llama2-sys": system in <<SYS>> ... <</SYS>> */
    KURA_CHAT_TMPL_LLAMA2_SYS_BOS,    /* "llama2-sys-bos": and <s> before later [INST] */
    KURA_CHAT_TMPL_LLAMA2_SYS_STRIP,  /* "llama2-sys-strip": and contents trimmed */
    KURA_CHAT_TMPL_MISTRAL_V1,        /* "mistral-v1": " [INST] ... [/INST]" */
    KURA_CHAT_TMPL_MISTRAL_V3,        /* "mistral-v3": "[INST] ...[/INST]", assistant trimmed */
    KURA_CHAT_TMPL_MISTRAL_V3_TEKKEN, /* "mistral-v3-tekken": "[INST]...[/INST]" */
    KURA_CHAT_TMPL_MISTRAL_V7,        /* "mistral-v7": [SYSTEM_PROMPT] ...[/SYSTEM_PROMPT] */
    KURA_CHAT_TMPL_MISTRAL_V7_TEKKEN, /* "mistral-v7-tekken": same without the inner spaces */
    KURA_CHAT_TMPL_LLAMA3,            /* "llama3": <|start_header_id|>role<|end_header_id|>\n\n */
    KURA_CHAT_TMPL_GEMMA,             /* "gemma": <start_of_turn>user|model\n...<end_of_turn>\n */
    KURA_CHAT_TMPL_PHI3,              /* "phi3": <|role|>\ncontent<|end|>\n */
    KURA_CHAT_TMPL_PHI4,              /* "phi4": <|im_start|>role<|im_sep|>content<|im_end|> */
    KURA_CHAT_TMPL__COUNT
};

/* One message. Both strings are NUL-terminated and borrowed. role must be "system", "user" or
 * "assistant". */
struct kura_chat_msg {
    const char *role;
    const char *content;
};

/* Recognises a template from the Jinja source in GGUF tokenizer.chat_template (or from a bare
 * template name, as accepted by kura_chat_tmpl_from_name). Markers, checked in this order:
 * "<|im_start|>" -> chatml (phi4 when "<|im_sep|>" is present too); "[INST]" -> mistral-v7 when
 * "[SYSTEM_PROMPT]" is present, the official Mistral v1/v3/v3-tekken templates by their system
 * message / [AVAILABLE_TOOLS] lines, else the llama2 family (llama2-sys when "<<SYS>>" is
 * present, -bos when "bos_token + '[INST]", -strip when "content.strip()"; a "[INST]" template
 * without any of these, such as Mistral-7B-Instruct-v0.1/v0.2's own, is plain llama2, which is
 * how llama.cpp renders it); "<|assistant|>" with "<|end|>" -> phi3; "<|start_header_id|>" with
 * "<|end_header_id|>" -> llama3; "<start_of_turn>" -> gemma. KURA_CHAT_TMPL_UNKNOWN otherwise or
 * for NULL. Thread-safe. */
enum kura_chat_tmpl kura_chat_tmpl_detect(const char *jinja_src);

/* Template by name ("llama3", "chatml", "llama2", "llama2-sys", "llama2-sys-bos",
 * "llama2-sys-strip", "mistral-v1", "mistral-v3", "mistral-v3-tekken", "mistral-v7",
 * "mistral-v7-tekken", "gemma", "phi3", "phi4"); KURA_CHAT_TMPL_UNKNOWN when unknown. */
enum kura_chat_tmpl kura_chat_tmpl_from_name(const char *name);

/* Constant name of a template ("llama3"), "unknown" for KURA_CHAT_TMPL_UNKNOWN or out of range. */
const char *kura_chat_tmpl_name(enum kura_chat_tmpl tmpl);

/* Renders msgs[n] with tmpl. add_generation_prompt appends the opening of an assistant turn
 * where the template has one (the llama2/mistral formats end a user turn with [/INST] anyway and
 * ignore it, as llama.cpp does). On success *out is a NUL-terminated malloc'd string owned by the
 * caller (free()). Errors: KURA_ERR_INVALID for an unknown template, a NULL role/content or a
 * role other than system/user/assistant (the message names it and its index); KURA_ERR_RANGE
 * beyond KURA_CHAT_MAX_MSGS messages or KURA_CHAT_MAX_BYTES of output; KURA_ERR_NOMEM. *out =
 * NULL on failure. Thread-safe. */
enum kura_err kura_chat_format(enum kura_chat_tmpl tmpl, const struct kura_chat_msg *msgs,
                               size_t n, bool add_generation_prompt, char **out /* OUT */,
                               struct kura_errbuf *eb);

#ifdef __cplusplus
}
#endif
#endif
