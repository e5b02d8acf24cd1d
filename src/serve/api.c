/* OpenAI request parsing and validation: see api.h. */
#include "serve/api.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

void api_error_set(struct api_error *err, int status, const char *type, const char *param,
                   const char *code, const char *fmt, ...)
{
    err->status = status;
    snprintf(err->type, sizeof err->type, "%s", type ? type : "invalid_request_error");
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    snprintf(err->code, sizeof err->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

char *api_error_json(const struct api_error *err)
{
    json_t *o = json_object(), *e = json_object();
    if (!o || !e) {
        json_decref(o);
        json_decref(e);
        return NULL;
    }
    json_object_set_new(e, "message", json_string(err->message));
    json_object_set_new(e, "type", json_string(err->type));
    json_object_set_new(e, "param", err->param[0] ? json_string(err->param) : json_null());
    json_object_set_new(e, "code", err->code[0] ? json_string(err->code) : json_null());
    json_object_set_new(o, "error", e);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

void api_request_deinit(struct api_request *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_msgs; i++) {
        free((char *)r->msgs[i].role);
        free((char *)r->msgs[i].content);
    }
    free(r->msgs);
    free(r->prompt);
    for (size_t i = 0; i < r->n_inputs; i++)
        free(r->inputs[i]);
    free(r->inputs);
    for (size_t i = 0; i < r->n_stops; i++)
        free(r->stops[i]);
    free(r->stops);
    free(r->model);
    free(r->user);
    memset(r, 0, sizeof *r);
}

#define BAD(param, ...)                                                                       \
    do {                                                                                      \
        api_error_set(err, 400, "invalid_request_error", param, NULL, __VA_ARGS__);           \
        return false;                                                                         \
    } while (0)

static bool nomem(struct api_error *err)
{
    api_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    return false;
}

/* Optional number in [lo, hi]; null counts as absent. */
static bool get_num(json_t *root, const char *key, double lo, double hi, bool *have, double *v,
                    struct api_error *err)
{
    json_t *j = json_object_get(root, key);
    *have = false;
    if (!j || json_is_null(j))
        return true;
    if (!json_is_number(j))
        BAD(key, "'%s' must be a number", key);
    double x = json_number_value(j);
    if (!isfinite(x) || x < lo || x > hi)
        BAD(key, "'%s' must be between %g and %g", key, lo, hi);
    *have = true;
    *v = x;
    return true;
}

static bool get_int(json_t *root, const char *key, int64_t lo, int64_t hi, bool *have, int64_t *v,
                    struct api_error *err)
{
    json_t *j = json_object_get(root, key);
    *have = false;
    if (!j || json_is_null(j))
        return true;
    if (!json_is_integer(j))
        BAD(key, "'%s' must be an integer", key);
    json_int_t x = json_integer_value(j);
    if (x < lo || x > hi)
        BAD(key, "'%s' must be between %lld and %lld", key, (long long)lo, (long long)hi);
    *have = true;
    *v = (int64_t)x;
    return true;
}

static bool get_bool(json_t *root, const char *key, bool *v, struct api_error *err)
{
    json_t *j = json_object_get(root, key);
    if (!j || json_is_null(j))
        return true;
    if (!json_is_boolean(j))
        BAD(key, "'%s' must be a boolean", key);
    *v = json_is_true(j);
    return true;
}

/* A string value (may be empty) copied out; rejects over-long strings. */
static bool dup_str(json_t *j, const char *param, char **out, struct api_error *err)
{
    size_t n = json_string_length(j);
    if (n > KURA_MAX_PROMPT_BYTES)
        BAD(param, "'%s' is longer than %u bytes", param, KURA_MAX_PROMPT_BYTES);
    *out = strndup(json_string_value(j), n);
    return *out ? true : nomem(err);
}

/* Message content: a string, or an array of {"type":"text","text":...} parts (joined). */
static bool msg_content(json_t *c, const char *param, char **out, struct api_error *err)
{
    if (json_is_string(c))
        return dup_str(c, param, out, err);
    if (!json_is_array(c))
        BAD(param, "'%s' must be a string or an array of text parts", param);
    size_t total = 0, n = json_array_size(c);
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(c, i);
        json_t *t = json_object_get(p, "type"), *x = json_object_get(p, "text");
        if (!json_is_object(p) || !json_is_string(t) || strcmp(json_string_value(t), "text") != 0)
            BAD(param, "'%s[%zu]': only parts of type 'text' are supported", param, i);
        if (!json_is_string(x))
            BAD(param, "'%s[%zu].text' must be a string", param, i);
        total += json_string_length(x);
        if (total > KURA_MAX_PROMPT_BYTES)
            BAD(param, "'%s' is longer than %u bytes", param, KURA_MAX_PROMPT_BYTES);
    }
    char *s = malloc(total + 1);
    if (!s)
        return nomem(err);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_object_get(json_array_get(c, i), "text");
        memcpy(s + off, json_string_value(x), json_string_length(x));
        off += json_string_length(x);
    }
    s[off] = 0;
    *out = s;
    return true;
}

static bool parse_messages(json_t *root, struct api_request *r, struct api_error *err)
{
    json_t *m = json_object_get(root, "messages");
    if (!m)
        BAD("messages", "'messages' is required");
    if (!json_is_array(m))
        BAD("messages", "'messages' must be an array");
    size_t n = json_array_size(m);
    if (n == 0)
        BAD("messages", "'messages' must not be empty");
    if (n > KURA_CHAT_MAX_MSGS)
        BAD("messages", "at most %u messages", KURA_CHAT_MAX_MSGS);
    r->msgs = calloc(n, sizeof *r->msgs);
    if (!r->msgs)
        return nomem(err);
    for (size_t i = 0; i < n; i++) {
        char param[64];
        json_t *o = json_array_get(m, i);
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(o))
            BAD(param, "'%s' must be an object", param);
        json_t *role = json_object_get(o, "role"), *content = json_object_get(o, "content");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role))
            BAD(param, "'%s' must be a string", param);
        const char *rs = json_string_value(role);
        if (strcmp(rs, "developer") == 0)
            rs = "system";
        if (strcmp(rs, "system") != 0 && strcmp(rs, "user") != 0 && strcmp(rs, "assistant") != 0)
            BAD(param, "'%s' must be 'system', 'developer', 'user' or 'assistant', not '%.40s'",
                param, rs);
        snprintf(param, sizeof param, "messages[%zu].content", i);
        char *text = NULL;
        if ((!content || json_is_null(content)) && strcmp(rs, "assistant") == 0) {
            text = strdup("");
            if (!text)
                return nomem(err);
        } else if (!content) {
            BAD(param, "'%s' is required", param);
        } else if (!msg_content(content, param, &text, err)) {
            return false;
        }
        r->msgs[r->n_msgs].content = text;
        r->msgs[r->n_msgs].role = strdup(rs);
        r->n_msgs++;
        if (!r->msgs[r->n_msgs - 1].role)
            return nomem(err);
    }
    return true;
}

static bool parse_prompt(json_t *root, struct api_request *r, struct api_error *err)
{
    json_t *p = json_object_get(root, "prompt");
    if (!p)
        BAD("prompt", "'prompt' is required");
    if (json_is_array(p)) {
        if (json_array_size(p) != 1 || !json_is_string(json_array_get(p, 0)))
            BAD("prompt", "'prompt' must be a string or an array of exactly one string");
        p = json_array_get(p, 0);
    }
    if (!json_is_string(p))
        BAD("prompt", "'prompt' must be a string");
    return dup_str(p, "prompt", &r->prompt, err);
}

static bool parse_input(json_t *root, struct api_request *r, struct api_error *err)
{
    json_t *in = json_object_get(root, "input");
    if (!in)
        BAD("input", "'input' is required");
    size_t n = json_is_array(in) ? json_array_size(in) : 1;
    if (!json_is_array(in) && !json_is_string(in))
        BAD("input", "'input' must be a string or an array of strings");
    if (n == 0)
        BAD("input", "'input' must not be empty");
    if (n > API_MAX_EMBED_INPUTS)
        BAD("input", "at most %d inputs", API_MAX_EMBED_INPUTS);
    r->inputs = calloc(n, sizeof *r->inputs);
    if (!r->inputs)
        return nomem(err);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(in) ? json_array_get(in, i) : in;
        char param[48];
        snprintf(param, sizeof param, json_is_array(in) ? "input[%zu]" : "input", i);
        if (!json_is_string(s))
            BAD(param, "'%s' must be a string", param);
        if (json_string_length(s) == 0)
            BAD(param, "'%s' must not be empty", param);
        total += json_string_length(s);
        if (total > KURA_MAX_PROMPT_BYTES)
            BAD("input", "'input' is longer than %u bytes in all", KURA_MAX_PROMPT_BYTES);
        if (!dup_str(s, param, &r->inputs[i], err))
            return false;
        r->n_inputs++;
    }
    json_t *fmt = json_object_get(root, "encoding_format");
    if (fmt && !json_is_null(fmt)) {
        if (!json_is_string(fmt))
            BAD("encoding_format", "'encoding_format' must be a string");
        if (strcmp(json_string_value(fmt), "base64") == 0)
            r->embed_base64 = true;
        else if (strcmp(json_string_value(fmt), "float") != 0)
            BAD("encoding_format", "'encoding_format' must be 'float' or 'base64'");
    }
    return true;
}

static bool parse_stop(json_t *root, struct api_request *r, struct api_error *err)
{
    json_t *s = json_object_get(root, "stop");
    if (!s || json_is_null(s))
        return true;
    size_t n = json_is_array(s) ? json_array_size(s) : 1;
    if (!json_is_array(s) && !json_is_string(s))
        BAD("stop", "'stop' must be a string or an array of strings");
    if (n > API_MAX_STOPS)
        BAD("stop", "at most %d stop strings", API_MAX_STOPS);
    r->stops = calloc(n ? n : 1, sizeof *r->stops);
    if (!r->stops)
        return nomem(err);
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_is_array(s) ? json_array_get(s, i) : s;
        if (!json_is_string(x))
            BAD("stop", "'stop[%zu]' must be a string", i);
        size_t len = json_string_length(x);
        if (len == 0)
            continue; /* OpenAI ignores empty stop strings */
        if (len > KURA_STOP_MAX_LEN)
            BAD("stop", "stop strings are at most %u bytes", KURA_STOP_MAX_LEN);
        if (!dup_str(x, "stop", &r->stops[r->n_stops], err))
            return false;
        r->n_stops++;
    }
    return true;
}

static bool parse_gen(json_t *root, struct api_request *r, struct api_error *err)
{
    bool have;
    int64_t iv;
    double dv;
    /* OpenAI's defaults (temperature 1, top_p 1, no top-k/min-p); llama.cpp extensions top_k,
     * min_p and repeat_penalty are accepted too. */
    r->sample = kura_sample_params_default();
    r->sample.temperature = 1.0f;
    r->sample.top_p = 1.0f;
    r->sample.top_k = 0;
    r->sample.min_p = 0.0f;
    if (!get_int(root, "max_tokens", 1, KURA_MAX_CTX, &have, &iv, err))
        return false;
    if (have)
        r->max_tokens = (int32_t)iv;
    if (!get_int(root, "max_completion_tokens", 1, KURA_MAX_CTX, &have, &iv, err))
        return false;
    if (have)
        r->max_tokens = (int32_t)iv;
    if (!get_num(root, "temperature", 0, 2, &have, &dv, err))
        return false;
    if (have)
        r->sample.temperature = (float)dv;
    if (!get_num(root, "top_p", 0, 1, &have, &dv, err))
        return false;
    if (have)
        r->sample.top_p = dv <= 0 ? 1e-6f : (float)dv;
    if (!get_int(root, "top_k", 0, 1 << 20, &have, &iv, err))
        return false;
    if (have)
        r->sample.top_k = (int32_t)iv;
    if (!get_num(root, "min_p", 0, 1, &have, &dv, err))
        return false;
    if (have)
        r->sample.min_p = (float)dv;
    if (!get_num(root, "repeat_penalty", 0.01, 10, &have, &dv, err))
        return false;
    if (have)
        r->sample.repeat_penalty = (float)dv;
    if (!get_num(root, "presence_penalty", -2, 2, &have, &dv, err))
        return false;
    if (have)
        r->sample.presence_penalty = (float)dv;
    if (!get_num(root, "frequency_penalty", -2, 2, &have, &dv, err))
        return false;
    if (have)
        r->sample.frequency_penalty = (float)dv;
    if (!get_int(root, "seed", INT64_MIN, INT64_MAX, &have, &iv, err))
        return false;
    if (have)
        r->sample.seed = (uint64_t)iv; /* -1 = KURA_SAMPLE_SEED_RANDOM, as llama.cpp */
    if (!get_int(root, "n", 1, 1, &have, &iv, err))
        return false;
    if (!parse_stop(root, r, err))
        return false;
    if (!get_bool(root, "stream", &r->stream, err))
        return false;
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            BAD("stream_options", "'stream_options' must be an object");
        json_t *iu = json_object_get(so, "include_usage");
        if (iu && !json_is_null(iu) && !json_is_boolean(iu))
            BAD("stream_options.include_usage", "'stream_options.include_usage' must be a boolean");
        r->include_usage = json_is_true(iu);
        if (!r->stream)
            BAD("stream_options", "'stream_options' is only allowed with 'stream': true");
    }
    if (r->kind == API_CHAT) {
        if (!get_bool(root, "logprobs", &r->logprobs, err))
            return false;
        if (!get_int(root, "top_logprobs", 0, API_MAX_TOP_LOGPROBS, &have, &iv, err))
            return false;
        if (have) {
            if (!r->logprobs)
                BAD("top_logprobs", "'top_logprobs' requires 'logprobs': true");
            r->top_logprobs = (int)iv;
        }
        json_t *rf = json_object_get(root, "response_format");
        if (rf && !json_is_null(rf)) {
            json_t *t = json_object_get(rf, "type");
            if (!json_is_object(rf) || !json_is_string(t))
                BAD("response_format", "'response_format' must be an object with a 'type'");
            const char *ts = json_string_value(t);
            if (strcmp(ts, "json_object") == 0)
                r->json_mode = true;
            else if (strcmp(ts, "text") != 0)
                BAD("response_format.type",
                    "'response_format.type' must be 'text' or 'json_object', not '%.40s'", ts);
        }
    } else {
        /* legacy completions: logprobs is the number of top alternatives (0..5) */
        if (!get_int(root, "logprobs", 0, 5, &have, &iv, err))
            return false;
        if (have) {
            r->logprobs = true;
            r->top_logprobs = (int)iv;
        }
        if (!get_bool(root, "echo", &r->echo, err))
            return false;
        if (r->echo)
            BAD("echo", "'echo' is not supported");
        json_t *sfx = json_object_get(root, "suffix");
        if (sfx && !json_is_null(sfx))
            BAD("suffix", "'suffix' is not supported");
        if (!get_int(root, "best_of", 1, 1, &have, &iv, err))
            return false;
    }
    return true;
}

bool api_parse(enum api_kind kind, const char *body, size_t len, struct api_request *out,
               struct api_error *err)
{
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    out->kind = kind;
    json_error_t je;
    json_t *root = json_loadb(body ? body : "", body ? len : 0, 0, &je);
    bool ok = false;
    if (!root) {
        api_error_set(err, 400, "invalid_request_error", NULL, "invalid_json",
                      "malformed JSON in the request body at line %d, column %d: %s", je.line,
                      je.column, je.text);
        goto out;
    }
    if (!json_is_object(root)) {
        api_error_set(err, 400, "invalid_request_error", NULL, "invalid_json",
                      "the request body must be a JSON object");
        goto out;
    }
    json_t *model = json_object_get(root, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model)) {
            api_error_set(err, 400, "invalid_request_error", "model", NULL,
                          "'model' must be a string");
            goto out;
        }
        if (json_string_length(model) > 256) {
            api_error_set(err, 400, "invalid_request_error", "model", NULL,
                          "'model' is longer than 256 bytes");
            goto out;
        }
        if (!dup_str(model, "model", &out->model, err))
            goto out;
    }
    json_t *user = json_object_get(root, "user");
    if (user && !json_is_null(user)) {
        if (!json_is_string(user) || json_string_length(user) > 256) {
            api_error_set(err, 400, "invalid_request_error", "user", NULL,
                          "'user' must be a string of at most 256 bytes");
            goto out;
        }
        if (!dup_str(user, "user", &out->user, err))
            goto out;
    }
    if (kind == API_CHAT)
        ok = parse_messages(root, out, err) && parse_gen(root, out, err);
    else if (kind == API_COMPLETION)
        ok = parse_prompt(root, out, err) && parse_gen(root, out, err);
    else
        ok = parse_input(root, out, err);
out:
    json_decref(root);
    if (!ok) {
        enum api_kind k = out->kind;
        api_request_deinit(out);
        out->kind = k;
    }
    return ok;
}
