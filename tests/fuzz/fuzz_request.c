/* Fuzz target for the OpenAI request parser of kura serve (src/serve/api.c): byte 0 picks the
 * route (chat completions, completions, embeddings), the rest is the request body. The parser
 * must never crash; a success must be a consistent request (every limit held), a failure an
 * error with a 4xx/5xx status whose JSON form parses back. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum api_kind kind = (enum api_kind)(data[0] % 3);
    struct api_request r;
    struct api_error e;
    if (api_parse(kind, (const char *)data + 1, size - 1, &r, &e)) {
        if (kind == API_CHAT) {
            if (r.n_msgs == 0 || !r.msgs)
                abort();
            for (size_t i = 0; i < r.n_msgs; i++)
                if (strcmp(r.msgs[i].role, "system") && strcmp(r.msgs[i].role, "user") &&
                    strcmp(r.msgs[i].role, "assistant"))
                    abort();
        }
        if (kind == API_COMPLETION && !r.prompt)
            abort();
        if (kind == API_EMBEDDING && (r.n_inputs == 0 || !r.inputs[r.n_inputs - 1]))
            abort();
        if (r.n_stops > API_MAX_STOPS || r.max_tokens < 0 || r.top_logprobs < 0 ||
            r.top_logprobs > API_MAX_TOP_LOGPROBS || (r.include_usage && !r.stream))
            abort();
        if (!(r.sample.temperature >= 0 && r.sample.temperature <= 2))
            abort();
        api_request_deinit(&r);
    } else {
        if (e.status < 400 || e.status > 599 || !e.message[0])
            abort();
        char *s = api_error_json(&e);
        if (s) {
            json_t *j = json_loads(s, 0, NULL);
            if (!j || !json_is_string(json_object_get(json_object_get(j, "error"), "message")))
                abort();
            json_decref(j);
            free(s);
        }
    }
    return 0;
}
