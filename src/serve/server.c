/* kura serve: HTTP front end on libmicrohttpd (see include/kura/serve.h and docs/serve.md).
 *
 * Threading: MHD runs `http_threads` epoll threads; no handler ever blocks on the engine.
 * A generation request is submitted to its model's scheduler and the connection is suspended;
 * the scheduler's callback (on the scheduler thread) appends output to the request's `gen` and
 * resumes the connection, whose handler (non-streaming) or content reader (SSE) then sends it.
 * Embeddings run on a short-lived worker thread the same way. A `gen` is shared by up to three
 * owners (the connection, the scheduler or worker, the streaming response) and reference
 * counted under its own mutex. Lock order: gen->mu before MHD's internal locks (suspend is
 * called with gen->mu held so a resume can never precede it; resume is called after dropping
 * gen->mu, which is safe because only the party that cleared `suspended` may resume, and a
 * suspended connection is never freed by MHD). */
#include "kura/serve.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "core/buf.h"
#include "core/limits.h"
#include "kura/apikey.h"
#include "kura/chat.h"
#include "kura/policy.h"
#include "kura/sched.h"
#include "serve/api.h"
#include "serve/upstream.h"

/* ---- routes and metrics ---- */

enum route { R_CHAT = 0, R_COMPL, R_EMBED, R_MODELS, R_HEALTH, R_METRICS, R_OTHER, R__N };
static const char *const route_path[R__N] = {"/v1/chat/completions", "/v1/completions",
                                             "/v1/embeddings", "/v1/models", "/health",
                                             "/metrics", "other"};

#define N_BUCKETS 14
static const double bucket_le[N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                            1,     2.5,  5,     10,   30,  60,  120};
#define N_STATUS 16

struct metrics {
    pthread_mutex_t mu;
    struct {
        int status;
        uint64_t n;
    } req[R__N][N_STATUS];
    uint64_t hist[R__N][N_BUCKETS + 1]; /* last: +Inf */
    double hist_sum[R__N];
    uint64_t hist_n[R__N];
    uint64_t auth_fail, rate_limited;
    /* time to first token, per model */
    uint64_t ttft[KURA_SERVE_MAX_MODELS][N_BUCKETS + 1];
    double ttft_sum[KURA_SERVE_MAX_MODELS];
    uint64_t ttft_n[KURA_SERVE_MAX_MODELS];
};

/* ---- rate limits: token buckets per key name ---- */

struct bucket {
    char name[KURA_APIKEY_MAX_NAME + 1];
    double req, tok; /* available */
    double t;        /* last refill, monotonic seconds */
};

struct model_rt {
    char *name;
    struct kura_model *model;
    struct kura_tok *tok;
    struct kura_sched *sched;
    enum kura_chat_tmpl tmpl;
    int32_t n_ctx;
    int32_t n_embd;
    int slots;
    long created;
    char digest[KURA_AUDIT_HEX_LEN];
    _Atomic uint64_t tok_in, tok_out;
};

struct kura_server {
    struct kura_serve_config cfg;
    const char *state_dir;
    struct kura_keys *keys;
    struct kura_audit *audit;
    char actor[256];
    struct model_rt models[KURA_SERVE_MAX_MODELS];
    int n_models;
    struct kura_apikeys *apikeys;
    struct kura_policy *pol;   /* cfg.policy, or the built-in default (nothing leaves) */
    struct kura_detector *det; /* personal-data detector for the policy decisions */
    _Atomic int egress_workers; /* upstream requests still running */
    struct MHD_Daemon *d;
    int port;
    char *tls_cert_pem, *tls_key_pem;
    struct metrics m;
    pthread_mutex_t rate_mu;
    struct bucket *buckets;
    size_t n_buckets;
    _Atomic int open_conns;
    _Atomic int workers; /* embedding threads still running */
    _Atomic bool stopping;
    _Atomic int live_gens; /* requests whose state is still referenced */
    _Atomic uint64_t body_bytes; /* request bodies buffered now, over all connections */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- generation state shared with the scheduler ---- */

struct gen {
    pthread_mutex_t mu;
    int refs;
    struct kura_server *srv;
    struct model_rt *mrt;
    struct MHD_Connection *mc;
    const char *mname; /* "model" in the answers: the local model's or the upstream's name */
    int fd; /* the client's socket, to notice a vanished client of a non-streamed request */
    bool suspended, conn_gone, done, in_engine;
    uint64_t id;
    enum route route;
    bool stream, include_usage, logprobs;
    int top_n;
    char rid[48];
    long created;
    double t0, t_first; /* submit time, first token time (0: none yet) */
    /* output: SSE bytes still to send (stream) or the whole text (non-stream); out.err set:
     * out of memory, the output is incomplete */
    struct kura_buf out;
    size_t out_sent;
    json_t *lp;        /* non-stream: chat logprobs content array / completion logprobs object */
    size_t text_off;   /* completion logprobs text_offset */
    enum kura_finish finish;
    int32_t n_prompt, n_gen;
    enum kura_err err;
    /* upstream (policy routing): the chat sent through kura_egress_chat on a worker thread */
    const char *up_dest;  /* destination name (owned by the server's policy) */
    char **up_roles, **up_contents;
    char *up_params; /* the client's numeric generation parameters, JSON (egress copies them) */
    size_t up_n;
    long up_status;       /* upstream's HTTP status */
    /* embeddings */
    struct api_request *ereq;
    char *resp;        /* finished JSON body (embeddings) */
    int resp_status;
};

static void gen_unref(struct gen *g)
{
    pthread_mutex_lock(&g->mu);
    int r = --g->refs;
    pthread_mutex_unlock(&g->mu);
    if (r > 0)
        return;
    atomic_fetch_sub(&g->srv->live_gens, 1);
    pthread_mutex_destroy(&g->mu);
    kura_buf_free(&g->out);
    json_decref(g->lp);
    if (g->ereq) {
        api_request_deinit(g->ereq);
        free(g->ereq);
    }
    free(g->resp);
    for (size_t i = 0; i < g->up_n; i++) {
        free(g->up_roles[i]);
        free(g->up_contents[i]);
    }
    free(g->up_roles);
    free(g->up_contents);
    free(g->up_params);
    free(g);
}

/* Valid UTF-8? (Event text always is; token pieces need not be.) */
static bool utf8_ok(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n || (len == 2 && c < 0xC2) || (len == 4 && c > 0xF4))
            return false;
        for (size_t k = 1; k < len; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80)
                return false;
        if (len == 3 && c == 0xE0 && (unsigned char)s[i + 1] < 0xA0)
            return false;
        if (len == 3 && c == 0xED && (unsigned char)s[i + 1] >= 0xA0)
            return false;
        if (len == 4 && c == 0xF0 && (unsigned char)s[i + 1] < 0x90)
            return false;
        if (len == 4 && c == 0xF4 && (unsigned char)s[i + 1] >= 0x90)
            return false;
        i += len;
    }
    return true;
}

/* A JSON string of arbitrary bytes: invalid UTF-8 bytes become U+FFFD. */
static json_t *jstr(const char *s, size_t n)
{
    if (utf8_ok(s, n))
        return json_stringn(s, n);
    char *t = malloc(3 * n + 1);
    if (!t)
        return json_string("");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (utf8_ok(s + i, 1)) {
            t[o++] = s[i];
        } else {
            size_t k;
            for (k = 4; k >= 2; k--)
                if (i + k <= n && utf8_ok(s + i, k))
                    break;
            if (k >= 2) {
                memcpy(t + o, s + i, k);
                o += k;
                i += k - 1;
            } else {
                memcpy(t + o, "\xEF\xBF\xBD", 3);
                o += 3;
            }
        }
    }
    json_t *j = json_stringn(t, o);
    free(t);
    return j;
}

static json_t *token_entry(const struct kura_tok *tok, int32_t id, float lp, bool chat)
{
    char buf[KURA_MAX_TOKEN_BYTES + 8];
    size_t n = kura_tok_piece(tok, id, 0, buf, sizeof buf);
    if (n > sizeof buf)
        n = sizeof buf;
    json_t *o = json_object();
    json_object_set_new(o, "token", jstr(buf, n));
    json_object_set_new(o, "logprob", json_real(isfinite(lp) ? lp : -9999.0));
    if (chat) {
        json_t *b = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(b, json_integer((unsigned char)buf[i]));
        json_object_set_new(o, "bytes", b);
    }
    return o;
}

/* Chat: {"token","logprob","bytes","top_logprobs":[...]} */
static json_t *chat_lp_item(const struct kura_tok *tok, const struct kura_sched_event *ev)
{
    json_t *o = token_entry(tok, ev->token, ev->logprob, true);
    json_t *top = json_array();
    for (int i = 0; i < ev->n_top; i++)
        json_array_append_new(top, token_entry(tok, ev->top_ids[i], ev->top_logprobs[i], true));
    json_object_set_new(o, "top_logprobs", top);
    return o;
}

/* Completions: appends to {"tokens","token_logprobs","top_logprobs","text_offset"} */
static void compl_lp_add(json_t *lp, const struct kura_tok *tok, const struct kura_sched_event *ev,
                         size_t text_off)
{
    json_t *e = token_entry(tok, ev->token, ev->logprob, false);
    json_array_append(json_object_get(lp, "tokens"), json_object_get(e, "token"));
    json_array_append(json_object_get(lp, "token_logprobs"), json_object_get(e, "logprob"));
    json_decref(e);
    json_t *top = json_object();
    for (int i = 0; i < ev->n_top; i++) {
        json_t *t = token_entry(tok, ev->top_ids[i], ev->top_logprobs[i], false);
        json_object_set(top, json_string_value(json_object_get(t, "token")),
                        json_object_get(t, "logprob"));
        json_decref(t);
    }
    json_array_append_new(json_object_get(lp, "top_logprobs"), top);
    json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)text_off));
}

static json_t *compl_lp_new(void)
{
    json_t *lp = json_object();
    json_object_set_new(lp, "tokens", json_array());
    json_object_set_new(lp, "token_logprobs", json_array());
    json_object_set_new(lp, "top_logprobs", json_array());
    json_object_set_new(lp, "text_offset", json_array());
    return lp;
}

static json_t *usage_obj(int32_t np, int32_t ng)
{
    json_t *u = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(np));
    json_object_set_new(u, "completion_tokens", json_integer(ng));
    json_object_set_new(u, "total_tokens", json_integer((json_int_t)np + ng));
    return u;
}

static const char *finish_name(enum kura_finish f)
{
    /* OpenAI has "stop" (natural end or stop string) and "length" */
    return (f == KURA_FINISH_LENGTH || f == KURA_FINISH_CONTEXT) ? "length" : "stop";
}

static json_t *chunk_base(const struct gen *g)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(g->rid));
    json_object_set_new(o, "object", json_string(g->route == R_CHAT ? "chat.completion.chunk"
                                                                    : "text_completion"));
    json_object_set_new(o, "created", json_integer(g->created));
    json_object_set_new(o, "model", json_string(g->mname));
    json_object_set_new(o, "system_fingerprint", json_string("kura"));
    return o;
}

static void sse_emit(struct gen *g, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s) {
        g->out.err = KURA_ERR_NOMEM;
        return;
    }
    kura_buf_put(&g->out, "data: ", 6);
    kura_buf_put(&g->out, s, strlen(s));
    kura_buf_put(&g->out, "\n\n", 2);
    free(s);
}

/* One streamed chunk: text (may be empty), optional logprobs, finish reason or null. */
static void sse_chunk(struct gen *g, const char *text, size_t len, json_t *lp, const char *finish,
                      bool role)
{
    json_t *o = chunk_base(g);
    json_t *ch = json_object();
    json_object_set_new(ch, "index", json_integer(0));
    if (g->route == R_CHAT) {
        json_t *d = json_object();
        if (role)
            json_object_set_new(d, "role", json_string("assistant"));
        if (len || role || !finish)
            json_object_set_new(d, "content", jstr(text, len));
        json_object_set_new(ch, "delta", d);
    } else {
        json_object_set_new(ch, "text", jstr(text, len));
    }
    json_object_set_new(ch, "logprobs", lp ? lp : json_null());
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *arr = json_array();
    json_array_append_new(arr, ch);
    json_object_set_new(o, "choices", arr);
    if (g->include_usage)
        json_object_set_new(o, "usage", json_null());
    sse_emit(g, o);
}

/* The end of a stream: an error event (err != NULL), or the chunk with finish_reason and, with
 * include_usage, the usage chunk; then data: [DONE]. */
static void sse_finish(struct gen *g, const struct api_error *err, int32_t n_prompt,
                       int32_t n_gen)
{
    if (err) {
        char *js = api_error_json(err);
        if (js) {
            kura_buf_put(&g->out, "data: ", 6);
            kura_buf_put(&g->out, js, strlen(js));
            kura_buf_put(&g->out, "\n\n", 2);
        }
        free(js);
    } else {
        sse_chunk(g, "", 0, NULL, finish_name(g->finish), false);
        if (g->include_usage) {
            json_t *o = chunk_base(g);
            json_object_set_new(o, "choices", json_array());
            json_object_set_new(o, "usage", usage_obj(n_prompt, n_gen));
            sse_emit(g, o);
        }
    }
    kura_buf_put(&g->out, "data: [DONE]\n\n", 14);
}

/* Scheduler callback (scheduler thread). */
static bool on_event(void *ud, const struct kura_sched_event *ev)
{
    struct gen *g = ud;
    const struct kura_tok *tok = g->mrt->tok;
    pthread_mutex_lock(&g->mu);
    /* A streamed request notices a vanished client when a write fails; a non-streamed one waits
     * suspended until its answer is ready, so peek at its socket (libmicrohttpd keeps it open
     * while suspended): end of file or an error means the client is gone, and returning false
     * frees the slot now instead of after max_tokens. The final event resumes the connection,
     * and libmicrohttpd then closes it. */
    bool peer_closed = false;
    if (!g->stream && g->suspended && !g->conn_gone && g->fd >= 0 && !ev->done) {
        char b;
        ssize_t r = recv(g->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        peer_closed =
            r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
    bool keep = !g->conn_gone && !peer_closed;
    g->n_prompt = ev->n_prompt;
    g->n_gen = ev->n_gen;
    if (ev->token >= 0 && g->t_first == 0)
        g->t_first = now_s();
    json_t *lp = NULL; /* the final event (token -1) may still carry held-back text */
    if (g->logprobs && ev->token >= 0) {
        if (g->route == R_CHAT) {
            json_t *item = chat_lp_item(tok, ev);
            if (g->stream) {
                lp = json_object();
                json_t *c = json_array();
                json_array_append_new(c, item);
                json_object_set_new(lp, "content", c);
                json_object_set_new(lp, "refusal", json_null());
            } else {
                json_array_append_new(g->lp, item);
            }
        } else {
            json_t *dst = g->stream ? (lp = compl_lp_new()) : g->lp;
            compl_lp_add(dst, tok, ev, g->text_off);
        }
    }
    g->text_off += ev->text_len;
    if (g->stream) {
        if (ev->text_len || lp)
            sse_chunk(g, ev->text ? ev->text : "", ev->text_len, lp, NULL, false);
    } else if (ev->text_len) {
        kura_buf_put(&g->out, ev->text, ev->text_len);
    }
    if (ev->done) {
        g->done = true;
        g->in_engine = false;
        g->finish = ev->finish;
        g->err = ev->err;
        if (g->stream && !g->conn_gone) {
            struct api_error e;
            if (ev->err)
                api_error_set(&e, 500, "server_error", NULL, NULL, "generation failed: %s",
                              kura_err_str(ev->err));
            sse_finish(g, ev->err ? &e : NULL, g->n_prompt, g->n_gen);
        }
    }
    bool resume = g->suspended && !g->conn_gone;
    if (resume)
        g->suspended = false;
    struct MHD_Connection *mc = g->mc;
    bool last = ev->done;
    pthread_mutex_unlock(&g->mu);
    if (resume)
        MHD_resume_connection(mc);
    if (last)
        gen_unref(g); /* the engine's reference */
    return keep;
}

/* ---- per-connection state ---- */

struct conn {
    struct kura_server *srv;
    enum route route;
    double t0;
    struct kura_buf body; /* the request body so far (its limits are checked where it grows) */
    bool too_big, too_busy, handled;
    int status;
    bool authed;
    struct kura_apikey_info key;
    struct gen *g;
    struct model_rt *mrt;
    char ip[64];
    char *prompt_text; /* for the audit log when log_prompts */
    char *oai_user;    /* the request's "user" field, for the audit log */
    int32_t max_tokens;
    bool counted_tokens;
    /* policy decision (chat and completion routes): response headers and the audit record */
    char route_hdr[160]; /* x-kura-route: "local:<model>", "upstream:<name>", "refused" */
    const char *level_hdr; /* x-kura-level; NULL: no decision yet */
    json_t *policy_rec;  /* the decision for the request's audit record (never values) */
};

static void metrics_request(struct metrics *m, enum route r, int status, double secs)
{
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < N_STATUS; i++) {
        if (m->req[r][i].status == status || m->req[r][i].status == 0) {
            m->req[r][i].status = status;
            m->req[r][i].n++;
            break;
        }
    }
    int b = 0;
    while (b < N_BUCKETS && secs > bucket_le[b])
        b++;
    m->hist[r][b]++;
    m->hist_sum[r] += secs;
    m->hist_n[r]++;
    pthread_mutex_unlock(&m->mu);
}

static void add_policy_headers(const struct conn *c, struct MHD_Response *r)
{
    if (!c->level_hdr)
        return;
    MHD_add_response_header(r, "x-kura-route", c->route_hdr);
    MHD_add_response_header(r, "x-kura-level", c->level_hdr);
}

static enum MHD_Result send_body(struct conn *c, struct MHD_Connection *mc, int status,
                                 const char *ctype, char *body /* takes ownership */,
                                 int retry_after)
{
    if (!body)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    add_policy_headers(c, r);
    if (retry_after > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%d", retry_after);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    if (status == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    c->status = status;
    c->handled = true;
    enum MHD_Result res = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    return res;
}

static enum MHD_Result send_json(struct conn *c, struct MHD_Connection *mc, int status, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return send_body(c, mc, status, "application/json", s, 0);
}

static enum MHD_Result send_error(struct conn *c, struct MHD_Connection *mc,
                                  const struct api_error *e, int retry_after)
{
    return send_body(c, mc, e->status, "application/json", api_error_json(e), retry_after);
}

static enum MHD_Result send_err(struct conn *c, struct MHD_Connection *mc, int status,
                                const char *type, const char *param, const char *code,
                                const char *msg, int retry_after)
{
    struct api_error e;
    api_error_set(&e, status, type, param, code, "%s", msg);
    return send_error(c, mc, &e, retry_after);
}

/* ---- audit ---- */

/* Returns false when the record could not be written (the log then refuses further appends;
 * the caller must not acknowledge the action it records). */
static bool audit(struct kura_server *s, const char *actor, const char *action,
                  const char *object, const char *outcome, json_t *details /* takes */)
{
    char *d = details ? json_dumps(details, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(details);
    struct kura_errbuf eb = {0};
    enum kura_err e = kura_audit_append(s->audit, actor, action, object, outcome, d, NULL, &eb);
    if (e)
        fprintf(stderr, "kura serve: audit log: %s\n", eb.msg);
    free(d);
    return e == KURA_OK;
}

/* ---- auth and rate limits ---- */

/* Returns 0 when allowed, else the seconds to wait. */
static int rate_check(struct kura_server *s, const struct kura_apikey_info *k)
{
    const struct kura_serve_rate *rl =
        k->role == KURA_APIKEY_ADMIN ? &s->cfg.rate_admin : &s->cfg.rate_user;
    for (int i = 0; i < s->cfg.n_key_rates; i++)
        if (strcmp(s->cfg.key_rates[i].name, k->name) == 0)
            rl = &s->cfg.key_rates[i].rate;
    if (!rl->requests_per_min && !rl->tokens_per_min)
        return 0;
    pthread_mutex_lock(&s->rate_mu);
    struct bucket *b = NULL;
    for (size_t i = 0; i < s->n_buckets; i++)
        if (strcmp(s->buckets[i].name, k->name) == 0)
            b = &s->buckets[i];
    double t = now_s();
    if (!b) {
        struct bucket *nb = realloc(s->buckets, (s->n_buckets + 1) * sizeof *nb);
        if (!nb) {
            pthread_mutex_unlock(&s->rate_mu);
            return 1;
        }
        s->buckets = nb;
        b = &s->buckets[s->n_buckets++];
        snprintf(b->name, sizeof b->name, "%s", k->name);
        b->req = (double)rl->requests_per_min;
        b->tok = (double)rl->tokens_per_min;
        b->t = t;
    }
    double dt = t - b->t;
    b->t = t;
    int wait = 0;
    if (rl->requests_per_min) {
        double rate = (double)rl->requests_per_min / 60.0;
        b->req = fmin((double)rl->requests_per_min, b->req + dt * rate);
        if (b->req < 1.0)
            wait = (int)ceil((1.0 - b->req) / rate);
    }
    if (rl->tokens_per_min) {
        double rate = (double)rl->tokens_per_min / 60.0;
        b->tok = fmin((double)rl->tokens_per_min, b->tok + dt * rate);
        if (b->tok <= 0.0) {
            int w = (int)ceil((1.0 - b->tok) / rate);
            wait = w > wait ? w : wait;
        }
    }
    if (!wait && rl->requests_per_min)
        b->req -= 1.0;
    pthread_mutex_unlock(&s->rate_mu);
    return wait;
}

static void rate_consume_tokens(struct kura_server *s, const struct kura_apikey_info *k,
                                int64_t n)
{
    pthread_mutex_lock(&s->rate_mu);
    for (size_t i = 0; i < s->n_buckets; i++)
        if (strcmp(s->buckets[i].name, k->name) == 0)
            s->buckets[i].tok -= (double)n;
    pthread_mutex_unlock(&s->rate_mu);
}

static void actor_of(const struct conn *c, char *out, size_t len)
{
    if (c->authed)
        snprintf(out, len, "apikey:%s", c->key.name);
    else
        snprintf(out, len, "anonymous@%s", c->ip);
}

/* Checks the Authorization header; queues the error response and returns false when refused. */
static bool authorize(struct conn *c, struct MHD_Connection *mc, enum MHD_Result *res)
{
    struct kura_server *s = c->srv;
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
    const char *why = NULL;
    struct kura_errbuf eb = {0};
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        why = h ? "not a Bearer token" : "no Authorization header";
    } else {
        const char *k = h + 7;
        while (*k == ' ')
            k++;
        enum kura_err e = kura_apikeys_check(s->apikeys, k, strlen(k), &c->key, &eb);
        if (e == KURA_ERR_CRYPTO)
            why = "invalid API key";
        else if (e)
            fprintf(stderr, "kura serve: API key store: %s\n", eb.msg);
        if (e && e != KURA_ERR_CRYPTO)
            why = "API key store unavailable";
    }
    json_t *d = json_object();
    json_object_set_new(d, "route", json_string(route_path[c->route]));
    json_object_set_new(d, "remote", json_string(c->ip));
    if (why) {
        json_object_set_new(d, "reason", json_string(why));
        audit(s, "anonymous", "auth.failure", route_path[c->route], "denied", d);
        pthread_mutex_lock(&s->m.mu);
        s->m.auth_fail++;
        pthread_mutex_unlock(&s->m.mu);
        *res = send_err(c, mc, 401, "invalid_request_error", NULL, "invalid_api_key",
                        h ? "Incorrect API key provided" :
                            "You didn't provide an API key (Authorization: Bearer <key>)",
                        0);
        return false;
    }
    c->authed = true;
    char actor[128];
    actor_of(c, actor, sizeof actor);
    json_object_set_new(d, "key_id", json_string(c->key.id));
    json_object_set_new(d, "role", json_string(kura_apikey_role_name(c->key.role)));
    if (!audit(s, actor, "auth.success", route_path[c->route], "ok", d)) {
        /* fail closed: nothing is served that the audit log cannot record */
        *res = send_err(c, mc, 503, "server_error", NULL, "audit_unavailable",
                        "the audit log cannot be written; the request is refused", 30);
        return false;
    }
    if (c->route == R_METRICS && c->key.role != KURA_APIKEY_ADMIN) {
        *res = send_err(c, mc, 403, "invalid_request_error", NULL, "forbidden",
                        "this route needs an admin key", 0);
        return false;
    }
    int wait = rate_check(s, &c->key);
    if (wait) {
        pthread_mutex_lock(&s->m.mu);
        s->m.rate_limited++;
        pthread_mutex_unlock(&s->m.mu);
        *res = send_err(c, mc, 429, "rate_limit_error", NULL, "rate_limit_exceeded",
                        "rate limit reached for this API key; retry later", wait);
        return false;
    }
    return true;
}

/* ---- simple routes ---- */

static json_t *model_obj(const struct model_rt *mr)
{
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(mr->name));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(mr->created));
    json_object_set_new(m, "owned_by", json_string("kura"));
    json_t *meta = json_object();
    json_object_set_new(meta, "n_ctx", json_integer(mr->n_ctx));
    json_object_set_new(meta, "n_embd", json_integer(mr->n_embd));
    json_object_set_new(meta, "slots", json_integer(mr->slots));
    json_object_set_new(meta, "sha256", json_string(mr->digest));
    json_object_set_new(m, "meta", meta);
    return m;
}

/* An upstream destination of the policy (d) or, with d NULL, the auto model. */
static json_t *policy_model_obj(const struct kura_server *s, const struct kura_destination *d)
{
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(d ? d->name : kura_policy_auto_model(s->pol)));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(s->models[0].created));
    json_object_set_new(m, "owned_by", json_string(d ? "upstream" : "kura"));
    json_t *meta = json_object();
    json_object_set_new(meta, "kind", json_string(d ? "upstream" : "auto"));
    if (d) {
        json_object_set_new(meta, "jurisdiction", json_string(d->jurisdiction ? d->jurisdiction
                                                                              : ""));
        json_object_set_new(meta, "max_level", json_string(kura_level_name(d->max_level)));
        json_object_set_new(meta, "action", json_string(kura_action_name(d->action)));
    }
    json_object_set_new(m, "meta", meta);
    return m;
}

static const struct kura_destination *find_upstream(const struct kura_server *s, const char *name)
{
    const struct kura_destination *d = name ? kura_policy_find_destination(s->pol, name) : NULL;
    return d && d->kind == KURA_DEST_UPSTREAM ? d : NULL;
}

static enum MHD_Result do_models(struct conn *c, struct MHD_Connection *mc, const char *url)
{
    struct kura_server *s = c->srv;
    if (strncmp(url, "/v1/models/", 11) == 0) {
        for (int i = 0; i < s->n_models; i++)
            if (strcmp(url + 11, s->models[i].name) == 0)
                return send_json(c, mc, 200, model_obj(&s->models[i]));
        const struct kura_destination *d = find_upstream(s, url + 11);
        if (d || strcmp(url + 11, kura_policy_auto_model(s->pol)) == 0)
            return send_json(c, mc, 200, policy_model_obj(s, d));
        return send_err(c, mc, 404, "invalid_request_error", "model", "model_not_found",
                        "The model does not exist", 0);
    }
    json_t *o = json_object(), *arr = json_array();
    for (int i = 0; i < s->n_models; i++)
        json_array_append_new(arr, model_obj(&s->models[i]));
    json_array_append_new(arr, policy_model_obj(s, NULL));
    for (size_t i = 0; i < kura_policy_n_destinations(s->pol); i++) {
        const struct kura_destination *d = kura_policy_destination(s->pol, i);
        if (d->kind == KURA_DEST_UPSTREAM)
            json_array_append_new(arr, policy_model_obj(s, d));
    }
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(o, "data", arr);
    return send_json(c, mc, 200, o);
}

static enum MHD_Result do_metrics(struct conn *c, struct MHD_Connection *mc)
{
    struct kura_server *s = c->srv;
    struct kura_buf b = {0};
    pthread_mutex_lock(&s->m.mu);
    kura_buf_printf(&b, "# HELP kura_http_requests_total HTTP requests by route and status.\n"
                        "# TYPE kura_http_requests_total counter\n");
    for (int r = 0; r < R__N; r++)
        for (int i = 0; i < N_STATUS && s->m.req[r][i].status; i++)
            kura_buf_printf(&b, "kura_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                            route_path[r], s->m.req[r][i].status,
                            (unsigned long long)s->m.req[r][i].n);
    kura_buf_printf(&b, "# HELP kura_http_request_duration_seconds Time from request to last byte "
                        "queued, by route.\n# TYPE kura_http_request_duration_seconds histogram\n");
    for (int r = 0; r < R__N; r++) {
        if (!s->m.hist_n[r])
            continue;
        uint64_t cum = 0;
        for (int i = 0; i <= N_BUCKETS; i++) {
            cum += s->m.hist[r][i];
            if (i < N_BUCKETS)
                kura_buf_printf(&b, "kura_http_request_duration_seconds_bucket"
                                    "{route=\"%s\",le=\"%g\"} %llu\n",
                                route_path[r], bucket_le[i], (unsigned long long)cum);
            else
                kura_buf_printf(&b, "kura_http_request_duration_seconds_bucket"
                                    "{route=\"%s\",le=\"+Inf\"} %llu\n",
                                route_path[r], (unsigned long long)cum);
        }
        kura_buf_printf(&b, "kura_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                        route_path[r], s->m.hist_sum[r]);
        kura_buf_printf(&b, "kura_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                        route_path[r], (unsigned long long)s->m.hist_n[r]);
    }
    kura_buf_printf(&b, "# HELP kura_time_to_first_token_seconds Time from submitting a generation "
                        "to its first token, by model.\n"
                        "# TYPE kura_time_to_first_token_seconds histogram\n");
    for (int mi = 0; mi < s->n_models; mi++) {
        if (!s->m.ttft_n[mi])
            continue;
        uint64_t cum = 0;
        for (int i = 0; i <= N_BUCKETS; i++) {
            cum += s->m.ttft[mi][i];
            char le[32];
            if (i < N_BUCKETS)
                snprintf(le, sizeof le, "%g", bucket_le[i]);
            else
                snprintf(le, sizeof le, "+Inf");
            kura_buf_printf(&b, "kura_time_to_first_token_seconds_bucket"
                                "{model=\"%s\",le=\"%s\"} %llu\n",
                            s->models[mi].name, le, (unsigned long long)cum);
        }
        kura_buf_printf(&b, "kura_time_to_first_token_seconds_sum{model=\"%s\"} %.6f\n",
                        s->models[mi].name, s->m.ttft_sum[mi]);
        kura_buf_printf(&b, "kura_time_to_first_token_seconds_count{model=\"%s\"} %llu\n",
                        s->models[mi].name, (unsigned long long)s->m.ttft_n[mi]);
    }
    kura_buf_printf(&b, "# HELP kura_auth_failures_total Requests refused for a missing or "
                        "invalid API key.\n# TYPE kura_auth_failures_total counter\n"
                        "kura_auth_failures_total %llu\n", (unsigned long long)s->m.auth_fail);
    kura_buf_printf(&b, "# HELP kura_rate_limited_total Requests refused by a per-key rate limit.\n"
                        "# TYPE kura_rate_limited_total counter\nkura_rate_limited_total %llu\n",
                    (unsigned long long)s->m.rate_limited);
    pthread_mutex_unlock(&s->m.mu);
    kura_buf_printf(&b, "# HELP kura_open_connections HTTP connections being served.\n"
                        "# TYPE kura_open_connections gauge\nkura_open_connections %d\n",
                    atomic_load(&s->open_conns));
    static const char *const names[][3] = {
        {"kura_tokens_prompt_total", "counter", "Prompt tokens evaluated."},
        {"kura_tokens_generated_total", "counter", "Tokens generated."},
        {"kura_queue_depth", "gauge", "Requests waiting for a slot."},
        {"kura_active_slots", "gauge", "Slots running a request."},
        {"kura_slots", "gauge", "Slots configured."},
        {"kura_kv_cells_used", "gauge", "KV-cache positions in use over all slots."},
        {"kura_kv_cells_total", "gauge", "KV-cache positions available over all slots."},
        {"kura_kv_usage_ratio", "gauge", "KV-cache positions in use / available."},
        {"kura_engine_steps_total", "counter", "Batched decode steps."},
    };
    struct kura_sched_stats st[KURA_SERVE_MAX_MODELS];
    for (int i = 0; i < s->n_models; i++)
        kura_sched_stats(s->models[i].sched, &st[i]);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        kura_buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", names[k][0], names[k][2], names[k][0],
                        names[k][1]);
        for (int i = 0; i < s->n_models; i++) {
            const struct kura_sched_stats *t = &st[i];
            double v = k == 0   ? (double)t->tokens_prompt
                       : k == 1 ? (double)t->tokens_generated
                       : k == 2 ? t->queued
                       : k == 3 ? t->active_slots
                       : k == 4 ? t->n_slots
                       : k == 5 ? (double)t->kv_used_cells
                       : k == 6 ? (double)t->kv_total_cells
                       : k == 7 ? (t->kv_total_cells ? (double)t->kv_used_cells /
                                                           (double)t->kv_total_cells : 0.0)
                                : (double)t->steps;
            kura_buf_printf(&b, "%s{model=\"%s\"} %.17g\n", names[k][0], s->models[i].name, v);
        }
    }
    kura_buf_printf(&b, "# HELP kura_request_tokens_total Tokens in answered API requests, by "
                        "model and kind (prompt: tokens in; completion: tokens out).\n"
                        "# TYPE kura_request_tokens_total counter\n");
    for (int i = 0; i < s->n_models; i++) {
        kura_buf_printf(&b, "kura_request_tokens_total{model=\"%s\",kind=\"prompt\"} %llu\n",
                        s->models[i].name, (unsigned long long)atomic_load(&s->models[i].tok_in));
        kura_buf_printf(&b, "kura_request_tokens_total{model=\"%s\",kind=\"completion\"} %llu\n",
                        s->models[i].name, (unsigned long long)atomic_load(&s->models[i].tok_out));
    }
    /* NULL (out of memory) makes send_body refuse */
    return send_body(c, mc, 200, "text/plain; version=0.0.4; charset=utf-8", kura_buf_take(&b),
                     0);
}

/* ---- generation routes ---- */

static struct model_rt *find_model(struct kura_server *s, const char *name)
{
    if (!name)
        return &s->models[0];
    for (int i = 0; i < s->n_models; i++)
        if (strcmp(s->models[i].name, name) == 0)
            return &s->models[i];
    return NULL;
}

static struct gen *gen_new(struct conn *c, struct MHD_Connection *mc, struct model_rt *m)
{
    struct gen *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    pthread_mutex_init(&g->mu, NULL);
    g->refs = 1; /* the connection's */
    g->srv = c->srv;
    atomic_fetch_add(&c->srv->live_gens, 1);
    g->mrt = m;
    g->mname = m ? m->name : NULL;
    g->mc = mc;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    g->fd = ci ? ci->connect_fd : -1;
    g->route = c->route;
    g->created = (long)time(NULL);
    static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    int p = snprintf(g->rid, sizeof g->rid, "%s",
                     c->route == R_CHAT ? "chatcmpl-" : c->route == R_COMPL ? "cmpl-" : "emb-");
    for (int i = 0; i < 24; i++)
        g->rid[p + i] = al[randombytes_uniform(sizeof al - 1)];
    g->rid[p + 24] = 0;
    return g;
}

/* Suspends the connection until the engine has more (called with g->mu held). */
static void suspend_locked(struct gen *g)
{
    g->suspended = true;
    MHD_suspend_connection(g->mc);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct gen *g = cls;
    (void)pos;
    pthread_mutex_lock(&g->mu);
    ssize_t r;
    if (g->out_sent < g->out.len) {
        size_t n = g->out.len - g->out_sent;
        if (n > max)
            n = max;
        memcpy(buf, g->out.p + g->out_sent, n);
        g->out_sent += n;
        if (g->out_sent == g->out.len) {
            g->out_sent = 0;
            kura_buf_clear(&g->out); /* reuse the buffer */
        }
        r = (ssize_t)n;
    } else if (g->done || g->out.err) {
        r = g->out.err ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        suspend_locked(g);
        r = 0;
    }
    pthread_mutex_unlock(&g->mu);
    return r;
}

static void stream_free(void *cls)
{
    gen_unref(cls);
}

/* ---- policy routing (kura/policy.h, docs/serve.md "Policy") ---- */

/* The configured model a local route runs: the policy's local destination when it names one,
 * else the default (first) model. */
static struct model_rt *local_model(struct kura_server *s, const struct kura_destination *d)
{
    struct model_rt *m = d && d->kind == KURA_DEST_LOCAL ? find_model(s, d->name) : NULL;
    return m ? m : &s->models[0];
}

static const char *local_dest_name(const struct kura_server *s)
{
    for (size_t i = 0; i < kura_policy_n_destinations(s->pol); i++) {
        const struct kura_destination *d = kura_policy_destination(s->pol, i);
        if (d->kind == KURA_DEST_LOCAL)
            return d->name;
    }
    return NULL;
}

/* Runs detection and the policy decision for a chat or completion request and picks where it
 * goes: *local (a model of this server) or *up (an upstream destination, chat only). Sets the
 * response headers and the audit details on c. Returns false with the response queued in *res
 * when the request is answered here (unknown model 404, refusal 403, errors). */
static bool policy_route(struct conn *c, struct MHD_Connection *mc, const struct api_request *rq,
                         struct model_rt **local, const struct kura_destination **up,
                         enum MHD_Result *res)
{
    struct kura_server *s = c->srv;
    *local = NULL;
    *up = NULL;
    const char *auto_name = kura_policy_auto_model(s->pol);
    bool is_auto = rq->model && strcmp(rq->model, auto_name) == 0;
    struct model_rt *m = is_auto ? NULL : find_model(s, rq->model);
    const struct kura_destination *want = is_auto || m ? NULL : find_upstream(s, rq->model);
    if (!is_auto && !m && !want) {
        struct api_error e;
        api_error_set(&e, 404, "invalid_request_error", "model", "model_not_found",
                      "The model '%.200s' does not exist", rq->model);
        *res = send_error(c, mc, &e, 0);
        return false;
    }
    bool chat = c->route == R_CHAT;
    size_t n = chat ? rq->n_msgs : 1;
    const char **texts = calloc(n ? n : 1, sizeof *texts);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    if (!texts || !lens) {
        free(texts);
        free(lens);
        *res = MHD_NO;
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        texts[i] = chat ? rq->msgs[i].content : rq->prompt;
        if (!texts[i])
            texts[i] = "";
        lens[i] = strlen(texts[i]);
    }
    /* an explicit local model sees everything; the decision is then only for the level */
    const char *dest = is_auto ? auto_name : want ? want->name : local_dest_name(s);
    struct kura_policy_result pr;
    struct kura_errbuf eb = {0};
    enum kura_err pe = kura_policy_decide(s->det, s->pol, texts, lens, n, dest ? dest : auto_name,
                                          &pr, NULL, NULL, &eb);
    free(texts);
    free(lens);
    if (pe) {
        *res = pe == KURA_ERR_NOMEM ? MHD_NO
               : send_err(c, mc, pe == KURA_ERR_RANGE || pe == KURA_ERR_INVALID ? 400 : 500,
                          pe == KURA_ERR_RANGE || pe == KURA_ERR_INVALID ? "invalid_request_error"
                                                                          : "server_error",
                          chat ? "messages" : "prompt", "policy_error", eb.msg, 0);
        return false;
    }
    const struct kura_destination *d = pr.dest;
    const char *decision = kura_decision_name(pr.decision);
    const char *reason = pr.reason;
    bool refused = false, ok = true;
    int status = 0;
    const char *code = NULL, *msg = NULL;
    if (m) {
        *local = m;
        decision = kura_decision_name(KURA_DECISION_ALLOW);
        reason = "a local model was requested";
    } else if (pr.decision == KURA_DECISION_REFUSE || !d) {
        refused = true;
        status = 403;
        code = "policy_refused";
    } else if (d->kind == KURA_DEST_UPSTREAM) {
        if (chat) {
            *up = d;
        } else if (is_auto) {
            *local = local_model(s, NULL);
            decision = kura_decision_name(KURA_DECISION_ROUTE_LOCAL);
            reason = "completions are served locally (upstreams serve chat only)";
        } else {
            refused = true;
            status = 400;
            code = "upstream_chat_only";
            msg = "upstream models serve /v1/chat/completions only";
        }
    } else {
        *local = local_model(s, d);
    }
    if (*up)
        snprintf(c->route_hdr, sizeof c->route_hdr, "upstream:%s", (*up)->name);
    else if (*local)
        snprintf(c->route_hdr, sizeof c->route_hdr, "local:%s", (*local)->name);
    else
        snprintf(c->route_hdr, sizeof c->route_hdr, "refused");
    c->level_hdr = kura_level_name(pr.level);
    /* the audit record: route, level, decision and finding types, never the values */
    json_t *rec = json_object(), *types = json_array();
    for (size_t i = 0; i < pr.findings.n; i++) {
        const char *t = kura_finding_type_name(&pr.findings.v[i]);
        bool seen = false;
        for (size_t k = 0; k < json_array_size(types) && !seen; k++)
            seen = strcmp(json_string_value(json_array_get(types, k)), t) == 0;
        if (!seen)
            json_array_append_new(types, json_string(t));
    }
    json_object_set_new(rec, "requested", json_string(rq->model ? rq->model : ""));
    json_object_set_new(rec, "route", json_string(c->route_hdr));
    json_object_set_new(rec, "level", json_string(c->level_hdr));
    json_object_set_new(rec, "decision", json_string(refused && status == 403 ? "refuse"
                                                                               : decision));
    json_object_set_new(rec, "finding_types", types);
    json_object_set_new(rec, "n_findings", json_integer((json_int_t)pr.findings.n));
    json_object_set_new(rec, "reason", json_string(msg ? msg : reason));
    if (*up && (*up)->jurisdiction)
        json_object_set_new(rec, "jurisdiction", json_string((*up)->jurisdiction));
    json_decref(c->policy_rec);
    c->policy_rec = rec;
    if (refused) {
        struct api_error e;
        if (status == 403)
            api_error_set(&e, 403, "invalid_request_error", "model", code,
                          "The request was refused by the policy: %s", pr.reason);
        else
            api_error_set(&e, status, "invalid_request_error", "model", code, "%s", msg);
        *res = send_error(c, mc, &e, 0);
        ok = false;
    }
    kura_policy_result_free(&pr);
    return ok;
}

/* Upstream answer text (worker thread): appended like the engine's output. */
static enum kura_err upstream_text(void *ud, const char *text, size_t len)
{
    struct gen *g = ud;
    pthread_mutex_lock(&g->mu);
    if (g->conn_gone || atomic_load(&g->srv->stopping)) {
        pthread_mutex_unlock(&g->mu);
        return KURA_ERR_CANCELLED; /* aborts the transfer */
    }
    if (g->t_first == 0)
        g->t_first = now_s();
    if (g->stream)
        sse_chunk(g, text, len, NULL, NULL, false);
    else
        kura_buf_put(&g->out, text, len);
    bool oom = g->out.err != KURA_OK;
    bool resume = g->stream && g->suspended;
    if (resume)
        g->suspended = false;
    struct MHD_Connection *mc = g->mc;
    pthread_mutex_unlock(&g->mu);
    if (resume)
        MHD_resume_connection(mc);
    return oom ? KURA_ERR_NOMEM : KURA_OK;
}

static void *upstream_worker(void *arg)
{
    struct gen *g = arg;
    struct kura_server *s = g->srv;
    struct kura_errbuf eb = {0};
    bool sent = false;
    long status = 0;
    enum kura_err e = serve_upstream_chat(s->det, s->pol, s->audit, g->up_dest,
                                          (const char *const *)g->up_roles,
                                          (const char *const *)g->up_contents, g->up_n, g->stream,
                                          g->up_params, upstream_text, g, &sent, &status, &eb);
    if (e && e != KURA_ERR_CANCELLED)
        fprintf(stderr, "kura serve: upstream '%s': %s\n", g->up_dest, eb.msg);
    pthread_mutex_lock(&g->mu);
    g->up_status = status;
    g->err = e;
    g->done = true;
    g->finish = KURA_FINISH_EOG;
    if (g->stream && !g->conn_gone) {
        struct api_error ae;
        if (e)
            api_error_set(&ae, 502, "server_error", NULL, "upstream_error",
                          "the upstream '%s' failed: %s", g->up_dest, kura_err_str(e));
        sse_finish(g, e ? &ae : NULL, 0, 0);
    }
    bool resume = g->suspended && !g->conn_gone;
    if (resume)
        g->suspended = false;
    struct MHD_Connection *mc = g->mc;
    pthread_mutex_unlock(&g->mu);
    if (resume)
        MHD_resume_connection(mc);
    gen_unref(g); /* the worker's reference */
    atomic_fetch_sub(&s->egress_workers, 1);
    return NULL;
}

/* Starts a chat request to upstream d on a worker thread (kura_egress_chat blocks). The message
 * strings move from rq to the request state. */
static enum MHD_Result upstream_start(struct conn *c, struct MHD_Connection *mc,
                                      struct api_request *rq, const struct kura_destination *d)
{
    struct kura_server *s = c->srv;
    if (atomic_load(&s->egress_workers) >= KURA_SERVE_MAX_UPSTREAM)
        return send_err(c, mc, 503, "server_error", NULL, "overloaded",
                        "too many upstream requests in flight; retry later", 1);
    struct gen *g = gen_new(c, mc, NULL);
    if (!g)
        return MHD_NO;
    g->mname = d->name;
    g->up_dest = d->name;
    g->stream = rq->stream;
    g->include_usage = rq->include_usage;
    c->g = g;
    g->up_roles = calloc(rq->n_msgs, sizeof *g->up_roles);
    g->up_contents = calloc(rq->n_msgs, sizeof *g->up_contents);
    if (!g->up_roles || !g->up_contents)
        return MHD_NO;
    for (size_t i = 0; i < rq->n_msgs; i++) {
        g->up_roles[i] = (char *)rq->msgs[i].role;
        g->up_contents[i] = (char *)rq->msgs[i].content;
        rq->msgs[i].role = rq->msgs[i].content = NULL;
    }
    g->up_n = rq->n_msgs;
    json_t *pj = json_pack("{s:f, s:f, s:f, s:f}", "temperature", (double)rq->sample.temperature,
                           "top_p", (double)rq->sample.top_p, "presence_penalty",
                           (double)rq->sample.presence_penalty, "frequency_penalty",
                           (double)rq->sample.frequency_penalty);
    if (pj && rq->max_tokens > 0)
        json_object_set_new(pj, "max_tokens", json_integer(rq->max_tokens));
    if (pj && rq->sample.seed != KURA_SAMPLE_SEED_RANDOM && rq->sample.seed <= INT64_MAX)
        json_object_set_new(pj, "seed", json_integer((json_int_t)rq->sample.seed));
    g->up_params = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
    json_decref(pj);
    if (g->stream)
        sse_chunk(g, "", 0, NULL, NULL, true); /* the first chunk names the role */
    pthread_mutex_lock(&g->mu);
    g->refs++; /* the worker's */
    pthread_mutex_unlock(&g->mu);
    g->t0 = now_s();
    atomic_fetch_add(&s->egress_workers, 1);
    pthread_attr_t at;
    pthread_t th;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int pr = pthread_create(&th, &at, upstream_worker, g);
    pthread_attr_destroy(&at);
    if (pr) {
        atomic_fetch_sub(&s->egress_workers, 1);
        pthread_mutex_lock(&g->mu);
        g->refs--;
        g->done = true;
        pthread_mutex_unlock(&g->mu);
        return send_err(c, mc, 503, "server_error", NULL, "overloaded",
                        "cannot start the upstream request; retry later", 1);
    }
    pthread_mutex_lock(&g->mu);
    if (g->stream) {
        g->refs++; /* the response's */
        pthread_mutex_unlock(&g->mu);
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, g, stream_free);
        if (!r) {
            gen_unref(g);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        add_policy_headers(c, r);
        c->status = 200;
        c->handled = true;
        enum MHD_Result res = MHD_queue_response(mc, 200, r);
        MHD_destroy_response(r);
        return res;
    }
    if (!g->done)
        suspend_locked(g);
    pthread_mutex_unlock(&g->mu);
    return MHD_YES; /* gen_respond answers when the worker resumes the connection */
}

static enum MHD_Result gen_submit(struct conn *c, struct MHD_Connection *mc)
{
    struct kura_server *s = c->srv;
    struct api_request rq;
    struct api_error e;
    enum api_kind kind = c->route == R_CHAT ? API_CHAT : c->route == R_COMPL ? API_COMPLETION
                                                                             : API_EMBEDDING;
    if (!api_parse(kind, c->body.p, c->body.len, &rq, &e))
        return send_error(c, mc, &e, 0);
    enum MHD_Result res;
    struct model_rt *m = NULL;
    const struct kura_destination *up = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    struct kura_errbuf eb = {0};
    if (rq.user)
        c->oai_user = strdup(rq.user);
    if (!policy_route(c, mc, &rq, &m, &up, &res))
        goto out;
    if (up) {
        res = upstream_start(c, mc, &rq, up);
        goto out;
    }
    c->mrt = m;
    if (kind == API_EMBEDDING) {
        /* handled by embed_start */
        res = MHD_NO;
        goto out;
    }
    if (kind == API_CHAT) {
        enum kura_err fe = kura_chat_format(m->tmpl, rq.msgs, rq.n_msgs, true, &text, &eb);
        if (fe) {
            res = send_err(c, mc, 400, "invalid_request_error", "messages", NULL, eb.msg, 0);
            goto out;
        }
    }
    const char *pt = kind == API_CHAT ? text : rq.prompt;
    if (kura_tok_encode(m->tok, pt, strlen(pt), true, true, &ids, &n_ids, &eb)) {
        res = send_err(c, mc, 400, "invalid_request_error", kind == API_CHAT ? "messages" : "prompt",
                       NULL, eb.msg, 0);
        goto out;
    }
    if (n_ids == 0 || n_ids >= (size_t)m->n_ctx) {
        api_error_set(&e, 400, "invalid_request_error", kind == API_CHAT ? "messages" : "prompt",
                      "context_length_exceeded",
                      n_ids == 0 ? "the prompt is empty" :
                      "This model's maximum context length is %d tokens, however the prompt has "
                      "%zu tokens", m->n_ctx, n_ids);
        res = send_error(c, mc, &e, 0);
        goto out;
    }
    if (s->cfg.log_prompts) {
        c->prompt_text = strdup(pt);
    }
    int32_t room = m->n_ctx - (int32_t)n_ids;
    int32_t mt = rq.max_tokens ? rq.max_tokens : s->cfg.max_tokens;
    if (mt > s->cfg.max_tokens)
        mt = s->cfg.max_tokens;
    if (mt > room)
        mt = room;
    c->max_tokens = mt;
    struct gen *g = gen_new(c, mc, m);
    if (!g) {
        res = MHD_NO;
        goto out;
    }
    g->stream = rq.stream;
    g->include_usage = rq.include_usage;
    g->logprobs = rq.logprobs;
    g->top_n = rq.top_logprobs;
    if (g->logprobs && !g->stream)
        g->lp = kind == API_CHAT ? json_array() : compl_lp_new();
    struct kura_sched_req sr = {
        .prompt = ids,
        .n_prompt = (int32_t)n_ids,
        .max_tokens = mt,
        .sample = rq.sample,
        .stops = (const char *const *)rq.stops,
        .n_stops = rq.n_stops,
        .logprobs = rq.logprobs,
        .top_logprobs = rq.top_logprobs,
        .json_mode = rq.json_mode,
        .cb = on_event,
        .ud = g,
    };
    c->g = g;
    if (g->stream && kind == API_CHAT)
        sse_chunk(g, "", 0, NULL, NULL, true); /* the first chunk names the role */
    /* g->mu is not held across submit: the scheduler may call back on its thread at once (the
     * callback takes g->mu), and it must never wait for us while we wait for it. */
    pthread_mutex_lock(&g->mu);
    g->refs++; /* the engine's */
    g->in_engine = true;
    pthread_mutex_unlock(&g->mu);
    uint64_t id = 0;
    g->t0 = now_s();
    enum kura_err se = kura_sched_submit(m->sched, &sr, &id, &eb);
    pthread_mutex_lock(&g->mu);
    g->id = id;
    if (se) {
        g->refs--;
        g->in_engine = false;
        pthread_mutex_unlock(&g->mu);
        if (se == KURA_ERR_BUSY)
            res = send_err(c, mc, 503, "server_error", NULL, "overloaded",
                           "The server is overloaded (queue full); retry later", 1);
        else if (se == KURA_ERR_RANGE)
            res = send_err(c, mc, 400, "invalid_request_error",
                           kind == API_CHAT ? "messages" : "prompt", "context_length_exceeded",
                           eb.msg, 0);
        else if (se == KURA_ERR_INVALID)
            res = send_err(c, mc, 400, "invalid_request_error", NULL, NULL, eb.msg, 0);
        else
            res = send_err(c, mc, 500, "server_error", NULL, NULL, eb.msg, 0);
        goto out;
    }
    if (g->stream) {
        g->refs++; /* the response's */
        pthread_mutex_unlock(&g->mu);
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, g, stream_free);
        if (!r) {
            gen_unref(g);
            res = MHD_NO;
            goto out;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        add_policy_headers(c, r);
        c->status = 200;
        c->handled = true;
        res = MHD_queue_response(mc, 200, r);
        MHD_destroy_response(r);
    } else {
        if (!g->done)
            suspend_locked(g); /* a callback that already ran saw no suspension: done is set */
        pthread_mutex_unlock(&g->mu);
        res = MHD_YES; /* the handler runs again when resumed */
    }
out:
    free(ids);
    free(text);
    api_request_deinit(&rq);
    return res;
}

/* Non-streaming completion finished: build the response. */
static enum MHD_Result gen_respond(struct conn *c, struct MHD_Connection *mc)
{
    struct gen *g = c->g;
    pthread_mutex_lock(&g->mu);
    if (!g->done) {
        suspend_locked(g);
        pthread_mutex_unlock(&g->mu);
        return MHD_YES;
    }
    pthread_mutex_unlock(&g->mu);
    if (g->finish == KURA_FINISH_CANCELLED && atomic_load(&c->srv->stopping))
        return send_err(c, mc, 503, "server_error", NULL, "shutting_down",
                        "the server is shutting down", 5);
    if (g->up_dest && g->err && !g->out.err) {
        struct api_error e;
        api_error_set(&e, 502, "server_error", NULL, "upstream_error",
                      "the upstream '%s' failed: %s", g->up_dest, kura_err_str(g->err));
        return send_error(c, mc, &e, 0);
    }
    if (g->err || g->out.err)
        return send_err(c, mc, 500, "server_error", NULL, NULL,
                        g->out.err ? "out of memory" : kura_err_str(g->err), 0);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(g->rid));
    json_object_set_new(o, "object",
                        json_string(g->route == R_CHAT ? "chat.completion" : "text_completion"));
    json_object_set_new(o, "created", json_integer(g->created));
    json_object_set_new(o, "model", json_string(g->mname));
    json_object_set_new(o, "system_fingerprint", json_string("kura"));
    json_t *ch = json_object();
    json_object_set_new(ch, "index", json_integer(0));
    const char *txt = g->out.p ? g->out.p : "";
    if (g->route == R_CHAT) {
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", jstr(txt, g->out.len));
        json_object_set_new(msg, "refusal", json_null());
        json_object_set_new(ch, "message", msg);
        if (g->lp) {
            json_t *lp = json_object();
            json_object_set(lp, "content", g->lp);
            json_object_set_new(lp, "refusal", json_null());
            json_object_set_new(ch, "logprobs", lp);
        } else {
            json_object_set_new(ch, "logprobs", json_null());
        }
    } else {
        json_object_set_new(ch, "text", jstr(txt, g->out.len));
        json_object_set_new(ch, "logprobs", g->lp ? json_incref(g->lp) : json_null());
    }
    json_object_set_new(ch, "finish_reason", json_string(finish_name(g->finish)));
    json_t *arr = json_array();
    json_array_append_new(arr, ch);
    json_object_set_new(o, "choices", arr);
    json_object_set_new(o, "usage", usage_obj(g->n_prompt, g->n_gen));
    return send_json(c, mc, 200, o);
}

/* ---- embeddings (worker thread) ---- */

static void b64_floats(const float *v, int32_t n, json_t **out)
{
    size_t blen = sodium_base64_encoded_len((size_t)n * 4, sodium_base64_VARIANT_ORIGINAL);
    char *b = malloc(blen);
    unsigned char *raw = malloc((size_t)n * 4 + 1);
    if (b && raw) {
        for (int32_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            raw[4 * i] = (unsigned char)u;
            raw[4 * i + 1] = (unsigned char)(u >> 8);
            raw[4 * i + 2] = (unsigned char)(u >> 16);
            raw[4 * i + 3] = (unsigned char)(u >> 24);
        }
        sodium_bin2base64(b, blen, raw, (size_t)n * 4, sodium_base64_VARIANT_ORIGINAL);
        *out = json_string(b);
    } else {
        *out = NULL;
    }
    free(b);
    free(raw);
}

static void *embed_worker(void *arg)
{
    struct gen *g = arg;
    struct model_rt *m = g->mrt;
    struct api_request *rq = g->ereq;
    struct api_error e = {0};
    json_t *o = json_object(), *data = json_array();
    float *vec = malloc((size_t)m->n_embd * sizeof *vec);
    int64_t total = 0;
    bool ok = vec != NULL;
    if (!ok)
        api_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; ok && i < rq->n_inputs; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        struct kura_errbuf eb = {0};
        char param[32];
        snprintf(param, sizeof param, rq->n_inputs > 1 ? "input[%zu]" : "input", i);
        if (kura_tok_encode(m->tok, rq->inputs[i], strlen(rq->inputs[i]), true, true, &ids, &n,
                            &eb)) {
            api_error_set(&e, 400, "invalid_request_error", param, NULL, "%s", eb.msg);
            ok = false;
        } else if (n == 0 || n > (size_t)m->n_ctx) {
            api_error_set(&e, 400, "invalid_request_error", param, "context_length_exceeded",
                          "This model's maximum context length is %d tokens, however %s has "
                          "%zu tokens", m->n_ctx, param, n);
            ok = false;
        } else {
            enum kura_err ee = kura_sched_embed(m->sched, ids, (int32_t)n, vec, &eb);
            if (ee) {
                api_error_set(&e, ee == KURA_ERR_BUSY ? 503 : ee == KURA_ERR_RANGE ? 400 : 500,
                              ee == KURA_ERR_RANGE ? "invalid_request_error" : "server_error",
                              ee == KURA_ERR_RANGE ? param : NULL, NULL, "%s", eb.msg);
                ok = false;
            } else {
                json_t *item = json_object(), *emb = NULL;
                json_object_set_new(item, "object", json_string("embedding"));
                json_object_set_new(item, "index", json_integer((json_int_t)i));
                if (rq->embed_base64) {
                    b64_floats(vec, m->n_embd, &emb);
                } else {
                    emb = json_array();
                    for (int32_t k = 0; k < m->n_embd; k++)
                        json_array_append_new(emb, json_real(vec[k]));
                }
                json_object_set_new(item, "embedding", emb ? emb : json_null());
                json_array_append_new(data, item);
                total += (int64_t)n;
            }
        }
        free(ids);
    }
    free(vec);
    char *body;
    int status;
    if (ok) {
        json_object_set_new(o, "object", json_string("list"));
        json_object_set_new(o, "data", data);
        json_object_set_new(o, "model", json_string(m->name));
        json_t *u = json_object();
        json_object_set_new(u, "prompt_tokens", json_integer(total));
        json_object_set_new(u, "total_tokens", json_integer(total));
        json_object_set_new(o, "usage", u);
        body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        status = 200;
    } else {
        json_decref(data);
        body = api_error_json(&e);
        status = e.status;
    }
    json_decref(o);
    atomic_fetch_add(&m->tok_in, (uint64_t)total);
    pthread_mutex_lock(&g->mu);
    g->resp = body;
    g->resp_status = status;
    g->n_prompt = (int32_t)(total > INT32_MAX ? INT32_MAX : total);
    g->done = true;
    bool resume = g->suspended && !g->conn_gone;
    if (resume)
        g->suspended = false;
    struct MHD_Connection *mc = g->mc;
    struct kura_server *s = g->srv;
    pthread_mutex_unlock(&g->mu);
    if (resume)
        MHD_resume_connection(mc);
    gen_unref(g);
    atomic_fetch_sub(&s->workers, 1);
    return NULL;
}

static enum MHD_Result embed_start(struct conn *c, struct MHD_Connection *mc)
{
    struct api_request *rq = calloc(1, sizeof *rq);
    struct api_error e;
    if (!rq)
        return MHD_NO;
    if (!api_parse(API_EMBEDDING, c->body.p, c->body.len, rq, &e)) {
        free(rq);
        return send_error(c, mc, &e, 0);
    }
    struct model_rt *m = find_model(c->srv, rq->model ? rq->model : c->srv->cfg.embedding_model);
    if (!m) {
        api_error_set(&e, 404, "invalid_request_error", "model", "model_not_found",
                      "The model '%.200s' does not exist", rq->model);
        api_request_deinit(rq);
        free(rq);
        return send_error(c, mc, &e, 0);
    }
    c->mrt = m;
    if (rq->user)
        c->oai_user = strdup(rq->user);
    /* Back-pressure: at most queue + slots embedding requests in flight. */
    if (atomic_load(&c->srv->workers) >= c->srv->cfg.queue + m->slots) {
        api_request_deinit(rq);
        free(rq);
        return send_err(c, mc, 503, "server_error", NULL, "overloaded",
                        "The server is overloaded (too many embedding requests); retry later", 1);
    }
    struct gen *g = gen_new(c, mc, m);
    if (!g) {
        api_request_deinit(rq);
        free(rq);
        return MHD_NO;
    }
    g->ereq = rq;
    c->g = g;
    pthread_mutex_lock(&g->mu);
    g->refs++; /* the worker's */
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&c->srv->workers, 1);
    if (pthread_create(&th, &at, embed_worker, g) != 0) {
        atomic_fetch_sub(&c->srv->workers, 1);
        g->refs--;
        pthread_mutex_unlock(&g->mu);
        pthread_attr_destroy(&at);
        return send_err(c, mc, 503, "server_error", NULL, "overloaded",
                        "cannot start a worker; retry later", 1);
    }
    pthread_attr_destroy(&at);
    if (!g->done)
        suspend_locked(g);
    pthread_mutex_unlock(&g->mu);
    return MHD_YES;
}

static enum MHD_Result embed_respond(struct conn *c, struct MHD_Connection *mc)
{
    struct gen *g = c->g;
    pthread_mutex_lock(&g->mu);
    if (!g->done) {
        suspend_locked(g);
        pthread_mutex_unlock(&g->mu);
        return MHD_YES;
    }
    char *body = g->resp;
    g->resp = NULL;
    int st = g->resp_status;
    pthread_mutex_unlock(&g->mu);
    return send_body(c, mc, st, "application/json", body, st == 503 ? 1 : 0);
}

/* ---- MHD callbacks ---- */

static enum route route_of(const char *url)
{
    for (int r = 0; r < R_OTHER; r++)
        if (strcmp(url, route_path[r]) == 0)
            return (enum route)r;
    if (strcmp(url, "/v1/health") == 0)
        return R_HEALTH;
    if (strncmp(url, "/v1/models/", 11) == 0)
        return R_MODELS;
    return R_OTHER;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *mc, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct kura_server *s = cls;
    struct conn *c = *con_cls;
    (void)version;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return MHD_NO;
        *con_cls = c;
        c->srv = s;
        c->t0 = now_s();
        c->route = route_of(url);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                          c->ip, sizeof c->ip);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                          c->ip, sizeof c->ip);
        }
        bool post = c->route == R_CHAT || c->route == R_COMPL || c->route == R_EMBED;
        enum MHD_Result res;
        if (c->route == R_OTHER)
            return send_err(c, mc, 404, "invalid_request_error", NULL, "unknown_url",
                            "Unknown request URL. See docs/serve.md for the routes.", 0);
        if (strcmp(method, post ? "POST" : "GET") != 0 &&
            !(!post && strcmp(method, "HEAD") == 0)) {
            char msg[96];
            snprintf(msg, sizeof msg, "%s needs %s", route_path[c->route], post ? "POST" : "GET");
            res = send_err(c, mc, 405, "invalid_request_error", NULL, "method_not_allowed", msg,
                           0);
            return res;
        }
        if (c->route == R_HEALTH) {
            json_t *o = json_object();
            json_object_set_new(o, "status", json_string("ok"));
            return send_json(c, mc, 200, o);
        }
        if (!authorize(c, mc, &res))
            return res;
        if (post) {
            const char *cl =
                MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl) {
                char *end;
                unsigned long long v = strtoull(cl, &end, 10);
                if (*end || v > (unsigned long long)s->cfg.max_body_bytes) {
                    char msg[128];
                    snprintf(msg, sizeof msg, "request body larger than %lld bytes",
                             (long long)s->cfg.max_body_bytes);
                    return send_err(c, mc, 413, "invalid_request_error", NULL,
                                    "request_too_large", msg, 0);
                }
            }
        }
        return MHD_YES;
    }
    if (c->handled)
        return MHD_YES; /* a response is queued already; ignore any body */
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->too_big || c->too_busy || c->body.len + n > (size_t)s->cfg.max_body_bytes) {
            c->too_big = !c->too_busy;
            atomic_fetch_sub(&s->body_bytes, c->body.len);
            kura_buf_free(&c->body);
            return MHD_YES; /* answered with 413 once the body ends */
        }
        if (atomic_fetch_add(&s->body_bytes, n) + n > KURA_SERVE_MAX_BODY_TOTAL) {
            /* all connections together may not pin unbounded memory */
            atomic_fetch_sub(&s->body_bytes, n + c->body.len);
            c->too_busy = true;
            kura_buf_free(&c->body);
            return MHD_YES; /* answered with 503 once the body ends */
        }
        if (kura_buf_put(&c->body, upload, n)) {
            atomic_fetch_sub(&s->body_bytes, n); /* counted above, never held */
            return MHD_NO;
        }
        return MHD_YES;
    }
    /* body complete (or resumed) */
    if (c->too_busy)
        return send_err(c, mc, 503, "server_error", NULL, "overloaded",
                        "too many request bodies in flight; retry later", 1);
    if (c->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body larger than %lld bytes",
                 (long long)s->cfg.max_body_bytes);
        return send_err(c, mc, 413, "invalid_request_error", NULL, "request_too_large", msg, 0);
    }
    if (atomic_load(&s->stopping) && !c->g)
        return send_err(c, mc, 503, "server_error", NULL, "shutting_down",
                        "the server is shutting down", 5);
    switch (c->route) {
    case R_MODELS:
        return do_models(c, mc, url);
    case R_METRICS:
        return do_metrics(c, mc);
    case R_EMBED:
        return c->g ? embed_respond(c, mc) : embed_start(c, mc);
    case R_CHAT:
    case R_COMPL:
        return c->g ? gen_respond(c, mc) : gen_submit(c, mc);
    default:
        return MHD_NO;
    }
}

static void completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct kura_server *s = cls;
    struct conn *c = *con_cls;
    (void)mc;
    if (!c)
        return;
    *con_cls = NULL;
    double secs = now_s() - c->t0;
    int status = c->handled ? c->status : 499; /* 499: the client went away first */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && c->status == 200)
        status = 499;
    struct gen *g = c->g;
    const char *up_dest = g ? g->up_dest : NULL; /* owned by the policy, outlives g */
    int32_t np = 0, ng = 0;
    const char *finish = NULL;
    char *out_text = NULL;
    if (g) {
        pthread_mutex_lock(&g->mu);
        g->conn_gone = true;
        bool cancel = g->in_engine;
        uint64_t id = g->id;
        np = g->n_prompt;
        ng = g->n_gen;
        if (g->t_first > 0 && g->route != R_EMBED && c->mrt) {
            double ttft = g->t_first - g->t0;
            int mi = (int)(c->mrt - s->models);
            int b = 0;
            while (b < N_BUCKETS && ttft > bucket_le[b])
                b++;
            pthread_mutex_lock(&s->m.mu);
            s->m.ttft[mi][b]++;
            s->m.ttft_sum[mi] += ttft;
            s->m.ttft_n[mi]++;
            pthread_mutex_unlock(&s->m.mu);
        }
        if (g->done && g->route != R_EMBED)
            finish = kura_finish_name(g->finish);
        if (s->cfg.log_prompts && !g->stream && g->out.p)
            out_text = strndup(g->out.p, g->out.len);
        pthread_mutex_unlock(&g->mu);
        if (cancel)
            kura_sched_cancel(c->mrt->sched, id);
        if (g->route != R_EMBED && c->mrt) {
            atomic_fetch_add(&c->mrt->tok_in, (uint64_t)np);
            atomic_fetch_add(&c->mrt->tok_out, (uint64_t)ng);
        }
        gen_unref(g);
        if (c->authed)
            rate_consume_tokens(s, &c->key, (int64_t)np + ng);
    }
    metrics_request(&s->m, c->route, status, secs);
    if (c->route != R_HEALTH) { /* health probes are not worth a signed record each */
        char actor[128], st[16];
        actor_of(c, actor, sizeof actor);
        snprintf(st, sizeof st, "%d", status);
        json_t *d = json_object();
        json_object_set_new(d, "route", json_string(route_path[c->route]));
        json_object_set_new(d, "status", json_integer(status));
        if (c->mrt)
            json_object_set_new(d, "model", json_string(c->mrt->name));
        else if (up_dest)
            json_object_set_new(d, "model", json_string(up_dest));
        if (c->policy_rec)
            json_object_set(d, "policy", c->policy_rec);
        if (g) {
            json_object_set_new(d, "prompt_tokens", json_integer(np));
            json_object_set_new(d, "completion_tokens", json_integer(ng));
        }
        if (finish)
            json_object_set_new(d, "finish", json_string(finish));
        if (c->oai_user)
            json_object_set_new(d, "user", jstr(c->oai_user, strlen(c->oai_user)));
        json_object_set_new(d, "ms", json_integer((json_int_t)(secs * 1000.0)));
        if (c->authed)
            json_object_set_new(d, "key_id", json_string(c->key.id));
        if (s->cfg.log_prompts && c->prompt_text) {
            /* bounded so one record stays under the audit line limit */
            size_t pl = strlen(c->prompt_text);
            json_object_set_new(d, "prompt", jstr(c->prompt_text, pl > 16384 ? 16384 : pl));
            if (out_text) {
                size_t ol = strlen(out_text);
                json_object_set_new(d, "output", jstr(out_text, ol > 16384 ? 16384 : ol));
            }
        }
        audit(s, actor, "api.request", route_path[c->route],
              (finish && strcmp(finish, "cancelled") == 0) || status == 499 ? "cancelled"
              : status < 400                                                ? "ok"
                                                                            : "error",
              d);
    }
    free(out_text);
    json_decref(c->policy_rec);
    free(c->prompt_text);
    free(c->oai_user);
    atomic_fetch_sub(&s->body_bytes, c->body.len);
    kura_buf_free(&c->body);
    free(c);
}

static void conn_notify(void *cls, struct MHD_Connection *mc, void **socket_ctx,
                        enum MHD_ConnectionNotificationCode code)
{
    struct kura_server *s = cls;
    (void)mc;
    (void)socket_ctx;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&s->open_conns, 1);
    else
        atomic_fetch_sub(&s->open_conns, 1);
}

/* ---- lifecycle ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* "model.load" record, as the other commands write it (object: the file's real path). False
 * when it could not be written: the model is then not served. */
static bool audit_model_load(struct kura_server *s, const struct kura_serve_model_cfg *mc,
                             const struct model_rt *m, const char *real, bool cached,
                             const char *error)
{
    json_t *d = json_pack("{s:s,s:s}", "command", "serve", "name", mc->name);
    if (!error) {
        struct stat sb;
        json_object_set_new(d, "sha256", json_string(m->digest));
        json_object_set_new(d, "bytes", json_integer(stat(real, &sb) == 0 ? (json_int_t)sb.st_size
                                                                           : -1));
        json_object_set_new(d, "digest_cached", json_boolean(cached));
        json_object_set_new(d, "slots", json_integer(m->slots));
        json_object_set_new(d, "ctx", json_integer(m->n_ctx));
        json_object_set_new(d, "chat_template", json_string(kura_chat_tmpl_name(m->tmpl)));
    } else {
        json_object_set_new(d, "error", json_string(error));
    }
    return audit(s, s->actor, "model.load", real, error ? "error" : "ok", d);
}

static enum kura_err load_models(struct kura_server *s, struct kura_errbuf *eb)
{
    for (int i = 0; i < s->cfg.n_models; i++) {
        const struct kura_serve_model_cfg *mc = &s->cfg.models[i];
        struct model_rt *m = &s->models[i];
        s->n_models = i + 1;
        m->name = mc->name;
        m->created = (long)time(NULL);
        char real[KURA_MAX_PATH];
        bool cached = false;
        if (!realpath(mc->path, real))
            snprintf(real, sizeof real, "%s", mc->path);
        enum kura_err e = kura_model_load(mc->path, &m->model, eb);
        if (!e)
            e = kura_audit_model_digest(s->state_dir, s->keys, real, m->digest, &cached, eb);
        if (!e)
            e = kura_tok_create(kura_model_gguf(m->model), &m->tok, eb);
        if (e) {
            audit_model_load(s, mc, m, real, false, eb ? eb->msg : kura_err_str(e));
            kura_err_prefix(eb, "model '%s' (%s): ", mc->name, mc->path);
            return e;
        }
        const struct kura_hparams *hp = kura_model_hparams(m->model);
        m->n_embd = hp->n_embd;
        int32_t ctx = mc->ctx ? mc->ctx : s->cfg.ctx;
        if (!ctx)
            ctx = hp->n_ctx_train > 0 && hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
        m->n_ctx = ctx;
        m->slots = mc->slots ? mc->slots : s->cfg.slots;
        m->tmpl = KURA_CHAT_TMPL_UNKNOWN;
        if (mc->chat_template) {
            m->tmpl = kura_chat_tmpl_from_name(mc->chat_template);
            if (m->tmpl == KURA_CHAT_TMPL_UNKNOWN)
                return kura_err_set(eb, KURA_ERR_INVALID, "model '%s': unknown chat template '%s'",
                                    mc->name, mc->chat_template);
        } else {
            struct kura_str src;
            if (kura_gguf_get_str(kura_model_gguf(m->model), "tokenizer.chat_template", &src) ==
                KURA_OK) {
                char *t = strndup(src.ptr, src.len);
                if (t)
                    m->tmpl = kura_chat_tmpl_detect(t);
                free(t);
            }
            if (m->tmpl == KURA_CHAT_TMPL_UNKNOWN)
                m->tmpl = KURA_CHAT_TMPL_CHATML;
        }
        struct kura_sched_params sp = {.n_slots = m->slots,
                                       .n_ctx = ctx,
                                       .prefill_chunk = s->cfg.prefill_chunk,
                                       .queue_max = s->cfg.queue,
                                       .n_threads = s->cfg.threads};
        e = kura_sched_create(m->model, m->tok, &sp, &m->sched, eb);
        if (!audit_model_load(s, mc, m, real, cached, e ? (eb ? eb->msg : kura_err_str(e)) : NULL) &&
            !e)
            e = kura_err_set(eb, KURA_ERR_IO, "the audit log cannot record the model load");
        if (e) {
            kura_err_prefix(eb, "model '%s': ", mc->name);
            return e;
        }
    }
    return KURA_OK;
}

static enum kura_err read_pem(const char *path, char **out, struct kura_errbuf *eb)
{
    size_t n;
    return kura_state_read_file(path, 1u << 20, out, &n, eb);
}

static enum kura_err start_http(struct kura_server *s, struct kura_errbuf *eb)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    int gr = getaddrinfo(s->cfg.host, port, &hints, &ai);
    if (gr != 0 || !ai)
        return kura_err_set(eb, KURA_ERR_INVALID, "listen.host '%s': %s", s->cfg.host,
                            gai_strerror(gr));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (s->cfg.tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            freeaddrinfo(ai);
            return kura_err_set(eb, KURA_ERR_UNSUPPORTED, "this libmicrohttpd has no TLS");
        }
        enum kura_err e = read_pem(s->cfg.tls_cert, &s->tls_cert_pem, eb);
        if (!e)
            e = read_pem(s->cfg.tls_key, &s->tls_key_pem, eb);
        if (e) {
            freeaddrinfo(ai);
            kura_err_prefix(eb, "TLS: ");
            return e;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem no_opts[] = {{MHD_OPTION_END, 0, NULL}};
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.connection_timeout_s,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->cfg.http_threads,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)1024, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, conn_notify, s, MHD_OPTION_ARRAY,
        s->cfg.tls_cert ? tls_opts : no_opts, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d)
        return kura_err_set(eb, KURA_ERR_IO,
                            "cannot listen on %s port %d (in use, not permitted, or a bad TLS "
                            "certificate/key)", s->cfg.host, s->cfg.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->cfg.port;
    return KURA_OK;
}

static enum kura_err copy_config(struct kura_serve_config *dst, const struct kura_serve_config *src)
{
    bool ok_keys = true;
    *dst = *src;
    dst->host = dup_or_null(src->host);
    dst->tls_cert = dup_or_null(src->tls_cert);
    dst->tls_key = dup_or_null(src->tls_key);
    dst->embedding_model = dup_or_null(src->embedding_model);
    dst->policy = dup_or_null(src->policy);
    for (int i = 0; i < src->n_key_rates; i++) {
        dst->key_rates[i].name = dup_or_null(src->key_rates[i].name);
        ok_keys = ok_keys && dst->key_rates[i].name;
    }
    bool ok = dst->host && (!src->tls_cert || dst->tls_cert) && (!src->tls_key || dst->tls_key) &&
              (!src->embedding_model || dst->embedding_model) &&
              (!src->policy || dst->policy) && ok_keys;
    for (int i = 0; i < src->n_models; i++) {
        dst->models[i].name = dup_or_null(src->models[i].name);
        dst->models[i].path = dup_or_null(src->models[i].path);
        dst->models[i].chat_template = dup_or_null(src->models[i].chat_template);
        ok = ok && dst->models[i].name && dst->models[i].path &&
             (!src->models[i].chat_template || dst->models[i].chat_template);
    }
    return ok ? KURA_OK : KURA_ERR_NOMEM;
}

/* The policy (cfg.policy or the built-in default), the detector, and libcurl for egress. Model
 * names, upstream destination names and the auto model name must not collide. */
static enum kura_err load_policy(struct kura_server *s, struct kura_errbuf *eb)
{
    enum kura_err e = s->cfg.policy ? kura_policy_load(s->cfg.policy, &s->pol, eb)
                                    : kura_policy_default(&s->pol, eb);
    if (e) {
        kura_err_prefix(eb, "policy: ");
        return e;
    }
    const char *auto_name = kura_policy_auto_model(s->pol);
    for (int i = 0; i < s->cfg.n_models; i++) {
        const char *n = s->cfg.models[i].name;
        if (strcmp(n, auto_name) == 0)
            return kura_err_set(eb, KURA_ERR_INVALID,
                                "model '%s' has the name of the policy's auto model", n);
        const struct kura_destination *d = kura_policy_find_destination(s->pol, n);
        if (d && d->kind == KURA_DEST_UPSTREAM)
            return kura_err_set(eb, KURA_ERR_INVALID,
                                "model '%s' has the name of an upstream destination of the policy",
                                n);
    }
    if ((e = kura_detector_create(NULL, &s->det, eb)))
        return e;
    const char *w = kura_detector_warning(s->det);
    if (w)
        fprintf(stderr, "kura serve: policy: %s\n", w);
    if ((e = serve_upstream_global_init()))
        return kura_err_set(eb, e, "libcurl initialisation failed");
    return KURA_OK;
}

enum kura_err kura_server_create(const struct kura_serve_config *cfg, const char *state_dir,
                                 struct kura_keys *keys, struct kura_audit *audit_log,
                                 const char *actor, struct kura_server **out,
                                 struct kura_errbuf *eb)
{
    *out = NULL;
    enum kura_err e = kura_serve_config_check(cfg, eb);
    if (e)
        return e;
    struct kura_server *s = calloc(1, sizeof *s);
    if (!s)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->m.mu, NULL);
    pthread_mutex_init(&s->rate_mu, NULL);
    s->state_dir = state_dir;
    s->keys = keys;
    s->audit = audit_log;
    snprintf(s->actor, sizeof s->actor, "%s", actor ? actor : "kura-serve");
    if (copy_config(&s->cfg, cfg)) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((e = load_policy(s, eb)))
        goto fail;
    if ((e = kura_apikeys_open(state_dir, keys, &s->apikeys, eb)))
        goto fail;
    if ((e = load_models(s, eb)))
        goto fail;
    if ((e = start_http(s, eb)))
        goto fail;
    *out = s;
    return KURA_OK;
fail:
    kura_server_destroy(s);
    return e;
}

int kura_server_port(const struct kura_server *s)
{
    return s->port;
}

void kura_server_destroy(struct kura_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    if (s->d)
        MHD_quiesce_daemon(s->d);
    for (int i = 0; i < 2000 && atomic_load(&s->workers) > 0; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Finishing every request resumes its connection, so MHD can answer and close them. */
    for (int i = 0; i < s->n_models; i++) {
        kura_sched_destroy(s->models[i].sched);
        s->models[i].sched = NULL;
    }
    /* Upstream requests end by themselves (curl timeouts) or at their next answer chunk. */
    while (atomic_load(&s->egress_workers) > 0) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Let the resumed connections send their last bytes (bounded). */
    for (int i = 0; i < 400 && atomic_load(&s->live_gens) > 0; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (s->d)
        MHD_stop_daemon(s->d);
    for (int i = 0; i < s->n_models; i++) {
        kura_tok_destroy(s->models[i].tok);
        kura_model_destroy(s->models[i].model);
    }
    kura_apikeys_destroy(s->apikeys);
    kura_detector_destroy(s->det);
    kura_policy_destroy(s->pol);
    if (s->tls_key_pem) {
        sodium_memzero(s->tls_key_pem, strlen(s->tls_key_pem));
        free(s->tls_key_pem);
    }
    free(s->tls_cert_pem);
    free(s->buckets);
    kura_serve_config_deinit(&s->cfg);
    pthread_mutex_destroy(&s->m.mu);
    pthread_mutex_destroy(&s->rate_mu);
    free(s);
}
