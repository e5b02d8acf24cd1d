/* kura serve: the OpenAI-compatible HTTP server (libmicrohttpd) and its configuration.
 *
 * Routes: POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings, GET /v1/models
 * (role user or admin), GET /metrics (role admin), GET /health (no key). Every model has its own
 * continuous-batching scheduler (kura/sched.h). Details: docs/serve.md. */
#ifndef KURA_SERVE_H
#define KURA_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/audit.h"
#include "kura/err.h"
#include "kura/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KURA_SERVE_MAX_MODELS 16
#define KURA_SERVE_MAX_KEY_RATES 256 /* per-key rate limit overrides */

struct kura_serve_model_cfg {
    char *name;          /* what requests put in "model"; default: the file's base name */
    char *path;          /* GGUF file */
    int slots;           /* 0: engine.slots */
    int32_t ctx;         /* 0: engine.ctx */
    char *chat_template; /* NULL: detected from the GGUF file (chatml when unknown) */
};

struct kura_serve_rate {
    int64_t requests_per_min; /* 0: unlimited */
    int64_t tokens_per_min;   /* prompt + generated; 0: unlimited */
};

/* A rate limit for one API key by name (overrides its role's). */
struct kura_serve_key_rate {
    char *name;
    struct kura_serve_rate rate;
};

/* Every setting; all strings are malloc'd and owned by the config. */
struct kura_serve_config {
    char *host;             /* listen.host: "127.0.0.1" */
    int port;               /* listen.port: 8080 (0: any free port) */
    char *tls_cert;         /* tls.cert: PEM file, or NULL for plain HTTP */
    char *tls_key;          /* tls.key */
    int64_t max_body_bytes; /* limits.max_body_bytes: 4 MiB */
    int max_connections;    /* limits.max_connections: 2048 */
    int connection_timeout_s; /* limits.connection_timeout_s: idle connections closed: 30 */
    int http_threads;       /* limits.http_threads: polling threads: 2 */
    int queue;              /* limits.queue: waiting requests per model beyond its slots: 64 */
    int32_t max_tokens;     /* limits.max_tokens: cap on generated tokens per request: 4096 */
    int slots;              /* engine.slots: default slots per model: 4 */
    int32_t ctx;            /* engine.ctx: default KV positions per slot (0: min(train, 4096)) */
    int threads;            /* engine.threads: compute threads per model (0: physical cores) */
    int32_t prefill_chunk;  /* engine.prefill_chunk: 256 */
    struct kura_serve_rate rate_user, rate_admin; /* rate_limits.user / rate_limits.admin */
    struct kura_serve_key_rate key_rates[KURA_SERVE_MAX_KEY_RATES]; /* rate_limits.keys.NAME */
    int n_key_rates;
    bool log_prompts;       /* audit.log_prompts: prompt and output text in request records */
    char *embedding_model;  /* embedding_model: the model /v1/embeddings uses when a request
                               names none (default: the first model) */
    char *policy;           /* policy: policy file (kura/policy.h); NULL: the built-in default
                               (no upstream, nothing leaves this node) */
    struct kura_serve_model_cfg models[KURA_SERVE_MAX_MODELS];
    int n_models;
};

/* Defaults (above). */
void kura_serve_config_init(struct kura_serve_config *c);
void kura_serve_config_deinit(struct kura_serve_config *c);

/* Sets one scalar option by its dotted name ("listen.port", "rate_limits.user.tokens_per_min",
 * ...) from text; `where` ("kura.yaml:12" or "--port") prefixes the error message.
 * KURA_ERR_NOTFOUND for an unknown name, KURA_ERR_INVALID for a bad value. */
enum kura_err kura_serve_config_set(struct kura_serve_config *c, const char *name,
                                    const char *value, const char *where, struct kura_errbuf *eb);

/* Adds a model (path, optional name). KURA_ERR_RANGE beyond KURA_SERVE_MAX_MODELS. */
enum kura_err kura_serve_config_add_model(struct kura_serve_config *c, const char *path,
                                          const char *name, struct kura_errbuf *eb);

/* Sets the rate limit of one key by name (replacing an earlier one). spec: "NAME:RPM:TPM"
 * (--rate-key) or name + values. KURA_ERR_INVALID for a bad spec, KURA_ERR_RANGE when full. */
enum kura_err kura_serve_config_key_rate(struct kura_serve_config *c, const char *name,
                                         int64_t rpm, int64_t tpm, struct kura_errbuf *eb);
enum kura_err kura_serve_config_key_rate_spec(struct kura_serve_config *c, const char *spec,
                                              struct kura_errbuf *eb);

/* Reads a YAML file (see docs/serve.md): mappings listen, tls, limits, engine, rate_limits,
 * audit, and a `models` sequence of {name, path, slots, ctx, chat_template}. Errors name the
 * file and line: unknown keys, bad values, wrong node kinds. Values already set stay unless
 * the file sets them (call before applying command-line flags). */
enum kura_err kura_serve_config_load(struct kura_serve_config *c, const char *path,
                                     struct kura_errbuf *eb);
/* The same from memory; name stands for the file in messages. A key repeated within one mapping
 * is an error in both. */
enum kura_err kura_serve_config_load_buffer(struct kura_serve_config *c, const char *data,
                                            size_t len, const char *name, struct kura_errbuf *eb);

/* Final checks (at least one model, unique names, TLS cert and key together, ranges). */
enum kura_err kura_serve_config_check(const struct kura_serve_config *c, struct kura_errbuf *eb);

/* Every option's dotted name, its flag and a one-line description (for --help). */
struct kura_serve_option_doc {
    const char *name, *flag, *arg, *help;
};
const struct kura_serve_option_doc *kura_serve_option_docs(size_t *n /* OUT */);

struct kura_server;

/* Loads every model (audited as "model.load" with the file's SHA-256), starts one scheduler per
 * model, opens the API-key store and starts listening. cfg is copied; keys, audit (both
 * borrowed) and state_dir must outlive the server. The actor of server records is `actor`. */
enum kura_err kura_server_create(const struct kura_serve_config *cfg, const char *state_dir,
                                 struct kura_keys *keys, struct kura_audit *audit,
                                 const char *actor, struct kura_server **out /* OUT */,
                                 struct kura_errbuf *eb);
/* The bound port (useful with listen.port 0). */
int kura_server_port(const struct kura_server *s);
/* Stops accepting, cancels running requests, stops the schedulers and frees. NULL: no-op. */
void kura_server_destroy(struct kura_server *s);

#ifdef __cplusplus
}
#endif
#endif
