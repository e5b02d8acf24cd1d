/* OpenAI request bodies -> validated requests, and OpenAI error objects.
 *
 * The parser takes untrusted bytes (any length, any content) and either fills a request or an
 * error that names the offending field, with the HTTP status the server answers with. It never
 * touches a model, so it is also the fuzz target's entry point (tests/fuzz/fuzz_request.c).
 * Unknown fields are ignored (as OpenAI-compatible servers do); known fields with the wrong type
 * or an out-of-range value are a 400 naming the field. */
#ifndef KURA_SERVE_API_H
#define KURA_SERVE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/chat.h"
#include "kura/sample.h"

#define API_MAX_STOPS 16          /* stop strings per request (OpenAI allows 4) */
#define API_MAX_TOP_LOGPROBS 20   /* chat top_logprobs (OpenAI: 0..20) */
#define API_MAX_EMBED_INPUTS 2048 /* inputs in one embeddings request (OpenAI: 2048) */

enum api_kind { API_CHAT = 0, API_COMPLETION, API_EMBEDDING };

struct api_error {
    int status;       /* HTTP status */
    char type[48];    /* "invalid_request_error", ... */
    char param[64];   /* the field, "" when none */
    char code[48];    /* "" when none */
    char message[400];
};

struct api_request {
    enum api_kind kind;
    char *model; /* NULL: the default model */
    /* chat */
    struct kura_chat_msg *msgs; /* roles normalised to system/user/assistant; strings owned */
    size_t n_msgs;
    /* completion */
    char *prompt;
    /* embeddings */
    char **inputs;
    size_t n_inputs;
    bool embed_base64; /* encoding_format "base64" */
    /* generation */
    int32_t max_tokens; /* 0: not given */
    struct kura_sample_params sample;
    char **stops;
    size_t n_stops;
    bool stream, include_usage;
    bool logprobs;      /* chat: logprobs true; completion: logprobs >= 0 given */
    int top_logprobs;   /* chat: top_logprobs; completion: the logprobs integer */
    bool json_mode;
    bool echo;          /* completion: not supported -> rejected at parse */
    char *user;         /* OpenAI "user" field, for the audit log */
};

/* Parses body[len] as a request of kind. On success returns true and *out owns its strings
 * (api_request_deinit). On failure returns false with *err filled (status 400) and *out
 * zeroed. Thread-safe. */
bool api_parse(enum api_kind kind, const char *body, size_t len, struct api_request *out /* OUT */,
               struct api_error *err /* OUT */);
void api_request_deinit(struct api_request *r);

/* Fills an error (printf-style message). */
void api_error_set(struct api_error *err, int status, const char *type, const char *param,
                   const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* {"error":{"message":...,"type":...,"param":...,"code":...}}; malloc'd, caller frees. */
char *api_error_json(const struct api_error *err);

#endif
