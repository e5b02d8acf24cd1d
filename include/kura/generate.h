/* Text generation for one sequence: prompt evaluation, sampling, end-of-generation and stop
 * strings, and streaming of text that never splits a UTF-8 character. Used by `kura run`,
 * `kura chat` and (per slot) by the server. */
#ifndef KURA_GENERATE_H
#define KURA_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/model.h"
#include "kura/sample.h"
#include "kura/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

enum kura_finish { KURA_FINISH_LENGTH = 0, KURA_FINISH_EOG, KURA_FINISH_STOP,
                   KURA_FINISH_CONTEXT, KURA_FINISH_CANCELLED };

const char *kura_finish_name(enum kura_finish f); /* "length", "stop", ... (OpenAI names) */

struct kura_gen_params {
    int32_t n_predict;           /* maximum tokens to generate (> 0) */
    bool ignore_eos;             /* keep going past end-of-generation tokens */
    struct kura_sample_params sample;
    const char *const *stops;    /* stop strings (borrowed), may be NULL */
    size_t n_stops;
};

/* Callbacks; return false to cancel. Text is whole UTF-8 characters, already stop-filtered. */
struct kura_gen_callbacks {
    bool (*on_token)(void *ud, int32_t id, const float *logits, int32_t n_vocab);
    bool (*on_text)(void *ud, const char *text, size_t len);
    void *ud;
};

struct kura_gen_result {
    int32_t n_prompt_eval;  /* prompt tokens evaluated (after reusing n_past) */
    int32_t n_gen;          /* tokens generated */
    int32_t n_pos;          /* tokens now in the KV cache */
    enum kura_finish finish;
    double prompt_seconds, gen_seconds;
};

/* Generates a continuation of prompt[0..n_prompt). The first n_past tokens of prompt are assumed
 * to be in kv already (from an earlier call with the same prefix). Generated tokens are appended
 * to the cache; the tokens themselves are reported via on_token. */
enum kura_err kura_generate(struct kura_ctx *c, struct kura_kv *kv, const struct kura_tok *tok,
                            const int32_t *prompt, int32_t n_prompt, int32_t n_past,
                            const struct kura_gen_params *p, const struct kura_gen_callbacks *cb,
                            struct kura_gen_result *res /* OUT */, struct kura_errbuf *eb);

#ifdef __cplusplus
}
#endif
#endif
