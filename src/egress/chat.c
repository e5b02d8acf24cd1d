/* A chat request through the policy: decide, pseudonymise, POST, restore, audit. */
#include "kura/egress.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"

struct answer {
    struct kura_buf text; /* .max: the response limit (KURA_ERR_RANGE beyond) */
    kura_egress_text_fn fn;
    void *ud;
};

static enum kura_err answer_put(void *ud, const char *data, size_t len)
{
    struct answer *a = ud;
    enum kura_err e = kura_buf_put(&a->text, data, len);
    if (e)
        return e;
    return a->fn ? a->fn(a->ud, data, len) : KURA_OK;
}

/* Raw upstream body: collected whole (non-streaming) or parsed as SSE on the fly. */
struct body {
    bool stream;
    struct kura_restorer *rest;
    struct kura_buf buf; /* whole body, or the unfinished SSE line; .max: the response limit */
    size_t received;
    bool done;
    enum kura_err err;
};

/* One SSE line: "data: {json}" with choices[0].delta.content. */
static enum kura_err sse_line(struct body *b, const char *line, size_t len)
{
    if (len < 5 || strncmp(line, "data:", 5) != 0)
        return KURA_OK; /* comments, event names, blank lines */
    const char *p = line + 5;
    size_t l = len - 5;
    while (l && *p == ' ') {
        p++;
        l--;
    }
    if (l == 6 && !memcmp(p, "[DONE]", 6)) {
        b->done = true;
        return KURA_OK;
    }
    json_t *j = json_loadb(p, l, 0, NULL);
    if (!j)
        return KURA_ERR_FORMAT;
    json_t *c = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0),
                                                "delta"), "content");
    enum kura_err e = KURA_OK;
    if (json_is_string(c))
        e = kura_restorer_feed(b->rest, json_string_value(c), json_string_length(c));
    json_decref(j);
    return e;
}

static enum kura_err on_body(void *ud, const char *data, size_t len)
{
    struct body *b = ud;
    b->received += len;
    if (!b->stream) /* any failure, out of memory too, reads as a too big answer */
        return kura_buf_put(&b->buf, data, len) ? KURA_ERR_RANGE : KURA_OK;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            size_t l = b->buf.len;
            if (l && b->buf.p[l - 1] == '\r')
                l--;
            enum kura_err e = sse_line(b, b->buf.p ? b->buf.p : "", l);
            kura_buf_clear(&b->buf);
            if (e)
                return e;
        } else if (kura_buf_put(&b->buf, data + i, 1)) {
            return KURA_ERR_RANGE;
        }
    }
    return KURA_OK;
}

void kura_egress_result_free(struct kura_egress_result *res)
{
    if (!res)
        return;
    kura_policy_result_free(&res->policy);
    free(res->answer);
    res->answer = NULL;
}

static char *audit_details(const struct kura_egress_result *res, const struct kura_destination *d,
                           bool stream, const char *phase)
{
    json_t *o = json_object(), *types = json_array();
    if (!o || !types) {
        json_decref(o);
        json_decref(types);
        return NULL;
    }
    for (int t = 0; t < KURA_PII__COUNT; t++)
        if (res->policy.type_mask & (1u << t))
            json_array_append_new(types, json_string(kura_pii_type_name(t)));
    json_object_set_new(o, "phase", json_string(phase));
    json_object_set_new(o, "destination", json_string(d && d->name ? d->name : ""));
    json_object_set_new(o, "jurisdiction", json_string(d && d->jurisdiction ? d->jurisdiction : ""));
    json_object_set_new(o, "level", json_string(kura_level_name(res->policy.level)));
    json_object_set_new(o, "decision", json_string(kura_decision_name(res->policy.decision)));
    json_object_set_new(o, "finding_types", types);
    json_object_set_new(o, "n_findings", json_integer((json_int_t)res->policy.findings.n));
    json_object_set_new(o, "bytes_sent", json_integer((json_int_t)res->bytes_sent));
    json_object_set_new(o, "bytes_received", json_integer((json_int_t)res->bytes_received));
    json_object_set_new(o, "http_status", json_integer(res->http_status));
    json_object_set_new(o, "stream", json_boolean(stream));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static enum kura_err audit_rec(struct kura_audit *audit, const char *action,
                               const struct kura_egress_result *res,
                               const struct kura_destination *d, bool stream, const char *phase,
                               const char *outcome, struct kura_errbuf *eb)
{
    if (!audit)
        return KURA_OK;
    char *det = audit_details(res, d, stream, phase);
    if (!det)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    enum kura_err e = kura_audit_append(audit, "kura.policy", action, d && d->name ? d->name : "",
                                        outcome, det, NULL, eb);
    free(det);
    return e;
}

enum kura_err kura_egress_chat(const struct kura_detector *det, const struct kura_policy *pol,
                               struct kura_audit *audit, const char *model,
                               const struct kura_chat_msg *msgs, size_t n_msgs, bool stream,
                               const struct kura_upstream_opts *opt, kura_egress_text_fn on_text,
                               void *ud, struct kura_egress_result *res, struct kura_errbuf *eb)
{
    memset(res, 0, sizeof *res);
    if (n_msgs == 0 || n_msgs > KURA_CHAT_MAX_MSGS)
        return kura_err_set(eb, KURA_ERR_INVALID, "chat request with %zu messages", n_msgs);
    enum kura_err e = KURA_OK;
    const char **texts = calloc(n_msgs, sizeof *texts);
    size_t *lens = calloc(n_msgs, sizeof *lens);
    char **rw = calloc(n_msgs, sizeof *rw);
    struct kura_pseudo *ps = NULL;
    struct kura_restorer *rest = NULL;
    char *body_json = NULL;
    json_t *req = NULL;
    struct body b = {0};
    struct answer ans = {0};
    if (!texts || !lens || !rw) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_msgs; i++) {
        texts[i] = msgs[i].content ? msgs[i].content : "";
        lens[i] = msgs[i].content ? msgs[i].content_len : 0;
    }
    e = kura_policy_decide(det, pol, texts, lens, n_msgs, model, &res->policy, &ps, rw, eb);
    if (e)
        goto done;
    const struct kura_destination *d = res->policy.dest;
    enum kura_decision dec = res->policy.decision;
    bool upstream = d && d->kind == KURA_DEST_UPSTREAM &&
                    (dec == KURA_DECISION_ALLOW || dec == KURA_DECISION_PSEUDONYMISE ||
                     dec == KURA_DECISION_REDACT);
    if (!upstream) { /* local model or refusal: nothing leaves; the decision is still recorded */
        e = audit_rec(audit, "policy.decision", res, d, stream, "decided",
                      kura_decision_name(dec), eb);
        goto done;
    }
    /* request body */
    req = json_object();
    json_t *arr = json_array();
    if (!req || !arr) {
        json_decref(arr);
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto done;
    }
    json_object_set_new(req, "model", json_string(d->model ? d->model : d->name));
    json_object_set_new(req, "messages", arr);
    for (size_t i = 0; i < n_msgs; i++) {
        const char *c = rw[i] ? rw[i] : texts[i];
        size_t cl = rw[i] ? strlen(rw[i]) : lens[i];
        json_t *m = json_object(), *content = json_stringn(c, cl);
        if (!m || !content) {
            json_decref(m);
            json_decref(content);
            e = kura_err_set(eb, KURA_ERR_INVALID, "message %zu is not valid UTF-8", i);
            goto done;
        }
        json_object_set_new(m, "role", json_string(msgs[i].role ? msgs[i].role : "user"));
        json_object_set_new(m, "content", content);
        json_array_append_new(arr, m);
    }
    if (stream)
        json_object_set_new(req, "stream", json_true());
    if (opt && opt->params_json) {
        static const char *const NUMERIC[] = {"temperature",      "top_p",
                                              "max_tokens",       "max_completion_tokens",
                                              "seed",             "presence_penalty",
                                              "frequency_penalty"};
        json_t *pj = json_loads(opt->params_json, JSON_REJECT_DUPLICATES, NULL);
        for (size_t k = 0; pj && k < sizeof NUMERIC / sizeof NUMERIC[0]; k++) {
            json_t *v = json_object_get(pj, NUMERIC[k]);
            if (json_is_number(v))
                json_object_set(req, NUMERIC[k], v);
        }
        json_decref(pj);
    }
    body_json = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!body_json) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto done;
    }
    res->bytes_sent = strlen(body_json);
    size_t max = opt && opt->max_response ? opt->max_response : KURA_EGRESS_MAX_RESPONSE;
    ans.text.max = max;
    ans.fn = on_text;
    ans.ud = ud;
    e = kura_restorer_create(ps, answer_put, &ans, &rest);
    if (e)
        goto done;
    b.stream = stream;
    b.rest = rest;
    b.buf.max = max;
    /* the record comes first: an egress without its audit record never happens */
    e = audit_rec(audit, "policy.egress", res, d, stream, "sending", "started", eb);
    if (e)
        goto done;
    char url[2048];
    size_t ul = strlen(d->url);
    snprintf(url, sizeof url, "%.*s/chat/completions", (int)(ul && d->url[ul - 1] == '/' ? ul - 1 : ul), d->url);
    const char *key = d->api_key_env ? getenv(d->api_key_env) : NULL;
    res->sent = true;
    e = kura_upstream_post(url, key, body_json, res->bytes_sent, opt, on_body, &b,
                           &res->http_status, NULL, eb);
    res->bytes_received = b.received;
    if (!e && !stream) {
        json_t *j = json_loadb(b.buf.p ? b.buf.p : "", b.buf.len, 0, NULL);
        json_t *c = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0),
                                                    "message"), "content");
        if (!json_is_string(c))
            e = kura_err_set(eb, KURA_ERR_FORMAT, "upstream answer has no choices[0].message.content");
        else
            e = kura_restorer_feed(rest, json_string_value(c), json_string_length(c));
        json_decref(j);
    } else if (!e && stream && b.buf.len) {
        e = sse_line(&b, b.buf.p, b.buf.len); /* last line without newline */
    }
    if (!e)
        e = kura_restorer_finish(rest);
    enum kura_err ae = audit_rec(audit, "policy.egress", res, d, stream, "done", e ? "error" : "ok", NULL);
    if (!e && ae)
        e = kura_err_set(eb, ae, "audit append failed after egress");
    if (!e) {
        res->answer_len = ans.text.len;
        res->answer = kura_buf_take(&ans.text);
        if (!res->answer)
            e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    }
done:
    if (rw)
        for (size_t i = 0; i < n_msgs; i++)
            free(rw[i]);
    free(rw);
    free(texts);
    free(lens);
    kura_restorer_destroy(rest);
    kura_pseudo_destroy(ps);
    json_decref(req);
    free(body_json);
    kura_buf_free(&b.buf);
    kura_buf_free(&ans.text);
    if (e) {
        kura_policy_result_free(&res->policy);
        free(res->answer);
        res->answer = NULL;
    }
    return e;
}
