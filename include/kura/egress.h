/* kura: egress to external OpenAI-compatible upstreams, behind the policy engine.
 *
 * kura_egress_chat decides (kura_policy_decide) what a chat request may send to a destination,
 * pseudonymises or redacts the message contents when the policy says so, POSTs the request with
 * libcurl (timeouts, retries with back-off, TLS verification always on, response size limit),
 * restores the originals in the answer (streaming included: SSE deltas go through the
 * restorer) and writes one audit record per egress with destination, jurisdiction, level,
 * finding types and byte counts, never the values. */
#ifndef KURA_EGRESS_H
#define KURA_EGRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "kura/audit.h"
#include "kura/err.h"
#include "kura/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kura_upstream_opts {
    long connect_timeout_ms; /* 0 = 10000 */
    long timeout_ms;         /* whole transfer; 0 = 120000 */
    int max_retries;         /* extra attempts on connect errors, 429 and 5xx; -1 = none, 0 = 2 */
    long backoff_ms;         /* first back-off, doubled per retry; 0 = 250 */
    size_t max_response;     /* bytes accepted; 0 = KURA_EGRESS_MAX_RESPONSE */
    const char *ca_file;     /* extra CA bundle, or NULL for the system store */
    /* chat only: a JSON object of the client's generation parameters to pass on. Only the
     * numeric fields temperature, top_p, max_tokens, max_completion_tokens, seed,
     * presence_penalty and frequency_penalty are copied (numbers carry no personal data; text
     * fields such as stop strings never leave unchecked); anything else is ignored. NULL: none. */
    const char *params_json;
};

/* Called with each piece of the (restored) answer text as it arrives. */
typedef enum kura_err (*kura_egress_text_fn)(void *ud, const char *text, size_t len);

/* One POST of body (JSON) to url with "Authorization: Bearer api_key" when api_key != NULL.
 * The response body is passed to on_body as it arrives (retries happen only while nothing was
 * delivered). *http_status receives the final status. Returns KURA_ERR_IO on transport errors,
 * KURA_ERR_RANGE when the response exceeds max_response, KURA_OK otherwise (check the status).
 * Thread-safe (call kura_egress_global_init once first). */
enum kura_err kura_upstream_post(const char *url, const char *api_key, const char *body,
                                 size_t body_len, const struct kura_upstream_opts *opt,
                                 kura_egress_text_fn on_body, void *ud,
                                 long *http_status /* OUT */, int *attempts /* OUT, may be NULL */,
                                 struct kura_errbuf *eb);

/* curl_global_init; call once at start-up before threads. */
enum kura_err kura_egress_global_init(void);

struct kura_chat_msg {
    const char *role;
    const char *content;
    size_t content_len;
};

struct kura_egress_result {
    struct kura_policy_result policy;  /* level, decision, destination, reason, findings */
    bool sent;                          /* something left this node */
    long http_status;
    size_t bytes_sent, bytes_received;
    char *answer;                       /* restored answer text (malloc'd; NUL-terminated) */
    size_t answer_len;
};

/* Runs one chat request: decision for model (a destination name or the auto model), then, when
 * the decision sends it upstream (allow / pseudonymise / redact to an upstream), the POST to
 * dest->url + "/chat/completions" with the model name dest->model (or its name) and the API key
 * from getenv(dest->api_key_env). route_local and refuse send nothing (res->sent false) so that
 * the caller runs the local model or refuses. With stream, the upstream is asked for SSE and
 * on_text receives restored text as it arrives; on_text may be NULL. audit may be NULL.
 * Free with kura_egress_result_free. Thread-safe. */
enum kura_err kura_egress_chat(const struct kura_detector *det, const struct kura_policy *pol,
                               struct kura_audit *audit, const char *model,
                               const struct kura_chat_msg *msgs, size_t n_msgs, bool stream,
                               const struct kura_upstream_opts *opt, kura_egress_text_fn on_text,
                               void *ud, struct kura_egress_result *res /* OUT */,
                               struct kura_errbuf *eb);
void kura_egress_result_free(struct kura_egress_result *res);

#ifdef __cplusplus
}
#endif
#endif
