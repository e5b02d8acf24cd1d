/* kura serve configuration: defaults, dotted-name setters shared by the YAML file and the
 * command-line flags, and the YAML reader (libyaml document API, so every error has a line). */
#include "kura/serve.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/limits.h"

#define MAX_CONFIG_FILE (1u << 20)

enum opt_type { OPT_STR, OPT_INT, OPT_BOOL };

struct opt {
    const char *name, *flag, *arg, *help;
    enum opt_type type;
    size_t off;
    int64_t lo, hi;
    int width; /* sizeof the int field: 4 or 8 */
};

#define OFF(f) offsetof(struct kura_serve_config, f)
#define I32(f) OPT_INT, OFF(f), 4
#define I64(f) OPT_INT, OFF(f), 8

static const struct opt opts[] = {
    {"listen.host", "--host", "H", "address to bind (default 127.0.0.1; 0.0.0.0 for all)",
     OPT_STR, OFF(host), 0, 0, 0},
    {"listen.port", "--port", "P", "TCP port (default 8080; 0 = any free port, printed)",
     OPT_INT, OFF(port), 0, 65535, 4},
    {"tls.cert", "--tls-cert", "FILE", "PEM certificate chain: serve HTTPS (with --tls-key)",
     OPT_STR, OFF(tls_cert), 0, 0, 0},
    {"tls.key", "--tls-key", "FILE", "PEM private key for --tls-cert", OPT_STR, OFF(tls_key), 0,
     0, 0},
    {"limits.max_body_bytes", "--max-body-bytes", "N",
     "largest request body; larger -> 413 (default 4194304)", OPT_INT, OFF(max_body_bytes), 1024,
     (int64_t)KURA_MAX_PROMPT_BYTES * 2, 8},
    {"limits.max_connections", "--max-connections", "N",
     "simultaneous connections; more are refused (default 2048)", OPT_INT, OFF(max_connections),
     1, 65536, 4},
    {"limits.connection_timeout_s", "--connection-timeout", "S",
     "close connections idle this long (default 30)", OPT_INT, OFF(connection_timeout_s), 1,
     86400, 4},
    {"limits.http_threads", "--http-threads", "N", "HTTP polling threads (default 2)", OPT_INT,
     OFF(http_threads), 1, 256, 4},
    {"limits.queue", "--queue", "N",
     "requests waiting per model beyond its slots; more -> 503 (default 64)", OPT_INT, OFF(queue),
     0, 1 << 20, 4},
    {"limits.max_tokens", "--max-tokens", "N",
     "cap on generated tokens per request, and the default (default 4096)", OPT_INT,
     OFF(max_tokens), 1, KURA_MAX_CTX, 4},
    {"engine.slots", "--slots", "N", "parallel sequences per model (default 4)", OPT_INT,
     OFF(slots), 1, 64, 4},
    {"engine.ctx", "--ctx", "N", "KV positions per slot (default min(trained, 4096))", OPT_INT,
     OFF(ctx), 0, KURA_MAX_CTX, 4},
    {"engine.threads", "--threads", "N", "compute threads per model (default: physical cores)",
     OPT_INT, OFF(threads), 0, 1024, 4},
    {"engine.prefill_chunk", "--prefill-chunk", "N",
     "prompt tokens per batched step across slots (default 256)", OPT_INT, OFF(prefill_chunk), 1,
     1 << 16, 4},
    {"rate_limits.user.requests_per_min", "--rate-user-rpm", "N",
     "requests per minute per user key (0 = unlimited)", OPT_INT,
     OFF(rate_user.requests_per_min), 0, INT64_MAX / 2, 8},
    {"rate_limits.user.tokens_per_min", "--rate-user-tpm", "N",
     "prompt+generated tokens per minute per user key (0 = unlimited)", OPT_INT,
     OFF(rate_user.tokens_per_min), 0, INT64_MAX / 2, 8},
    {"rate_limits.admin.requests_per_min", "--rate-admin-rpm", "N",
     "requests per minute per admin key (0 = unlimited)", OPT_INT,
     OFF(rate_admin.requests_per_min), 0, INT64_MAX / 2, 8},
    {"rate_limits.admin.tokens_per_min", "--rate-admin-tpm", "N",
     "tokens per minute per admin key (0 = unlimited)", OPT_INT, OFF(rate_admin.tokens_per_min),
     0, INT64_MAX / 2, 8},
    {"embedding_model", "--embedding-model", "NAME",
     "model for /v1/embeddings requests that name none (default: the first)", OPT_STR,
     OFF(embedding_model), 0, 0, 0},
    {"policy", "--policy", "FILE",
     "policy file (YAML, docs/policy.md): levels, upstream destinations, the auto model "
     "(default: built-in, nothing leaves this node)", OPT_STR, OFF(policy), 0, 0, 0},
    {"audit.log_prompts", "--log-prompts", "true|false",
     "record prompt and output text in the audit log (default false)", OPT_BOOL,
     OFF(log_prompts), 0, 0, 0},
};

static struct kura_serve_option_doc docs[sizeof opts / sizeof opts[0]];

const struct kura_serve_option_doc *kura_serve_option_docs(size_t *n)
{
    *n = sizeof opts / sizeof opts[0];
    for (size_t i = 0; i < *n; i++)
        docs[i] = (struct kura_serve_option_doc){opts[i].name, opts[i].flag, opts[i].arg,
                                                 opts[i].help};
    return docs;
}

void kura_serve_config_init(struct kura_serve_config *c)
{
    memset(c, 0, sizeof *c);
    c->host = strdup("127.0.0.1");
    c->port = 8080;
    c->max_body_bytes = 4 << 20;
    c->max_connections = 2048;
    c->connection_timeout_s = 30;
    c->http_threads = 2;
    c->queue = 64;
    c->max_tokens = 4096;
    c->slots = 4;
    c->prefill_chunk = 256;
}

void kura_serve_config_deinit(struct kura_serve_config *c)
{
    if (!c)
        return;
    free(c->host);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->embedding_model);
    free(c->policy);
    for (int i = 0; i < c->n_key_rates; i++)
        free(c->key_rates[i].name);
    for (int i = 0; i < c->n_models; i++) {
        free(c->models[i].name);
        free(c->models[i].path);
        free(c->models[i].chat_template);
    }
    memset(c, 0, sizeof *c);
}

static bool parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0 ||
        strcmp(s, "1") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0 ||
             strcmp(s, "0") == 0)
        *out = false;
    else
        return false;
    return true;
}

static enum kura_err set_str(char **dst, const char *v, const char *where, const char *name,
                             struct kura_errbuf *eb)
{
    if (strlen(v) == 0 || strlen(v) > KURA_MAX_PATH)
        return kura_err_set(eb, KURA_ERR_INVALID, "%s: %s: expected a non-empty string", where,
                            name);
    char *d = strdup(v);
    if (!d)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = d;
    return KURA_OK;
}

enum kura_err kura_serve_config_set(struct kura_serve_config *c, const char *name,
                                    const char *value, const char *where, struct kura_errbuf *eb)
{
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const struct opt *o = &opts[i];
        if (strcmp(o->name, name) != 0)
            continue;
        char *field = (char *)c + o->off;
        if (o->type == OPT_STR)
            return set_str((char **)field, value, where, name, eb);
        if (o->type == OPT_BOOL) {
            if (!parse_bool(value, (bool *)field))
                return kura_err_set(eb, KURA_ERR_INVALID,
                                    "%s: %s: expected true or false, not '%.64s'", where, name,
                                    value);
            return KURA_OK;
        }
        int64_t v;
        if (!parse_i64(value, &v) || v < o->lo || v > o->hi)
            return kura_err_set(eb, KURA_ERR_INVALID,
                                "%s: %s: expected an integer in %" PRId64 "..%" PRId64
                                ", not '%.64s'",
                                where, name, o->lo, o->hi, value);
        if (o->width == 4)
            *(int32_t *)(void *)field = (int32_t)v;
        else
            *(int64_t *)(void *)field = v;
        return KURA_OK;
    }
    return kura_err_set(eb, KURA_ERR_NOTFOUND, "%s: unknown option '%s'", where, name);
}

enum kura_err kura_serve_config_key_rate(struct kura_serve_config *c, const char *name,
                                         int64_t rpm, int64_t tpm, struct kura_errbuf *eb)
{
    if (!name || !name[0] || strlen(name) > 64 || rpm < 0 || tpm < 0)
        return kura_err_set(eb, KURA_ERR_INVALID, "bad per-key rate limit");
    for (int i = 0; i < c->n_key_rates; i++)
        if (strcmp(c->key_rates[i].name, name) == 0) {
            c->key_rates[i].rate = (struct kura_serve_rate){rpm, tpm};
            return KURA_OK;
        }
    if (c->n_key_rates >= KURA_SERVE_MAX_KEY_RATES)
        return kura_err_set(eb, KURA_ERR_RANGE, "at most %d per-key rate limits",
                            KURA_SERVE_MAX_KEY_RATES);
    char *n = strdup(name);
    if (!n)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    c->key_rates[c->n_key_rates++] = (struct kura_serve_key_rate){n, {rpm, tpm}};
    return KURA_OK;
}

enum kura_err kura_serve_config_key_rate_spec(struct kura_serve_config *c, const char *spec,
                                              struct kura_errbuf *eb)
{
    char name[80];
    long long rpm, tpm;
    int used = 0;
    if (strlen(spec) >= sizeof name || sscanf(spec, "%79[^:]:%lld:%lld%n", name, &rpm, &tpm,
                                               &used) != 3 || spec[used] || rpm < 0 || tpm < 0)
        return kura_err_set(eb, KURA_ERR_INVALID,
                            "--rate-key: expected NAME:REQUESTS_PER_MIN:TOKENS_PER_MIN, not "
                            "'%.64s'", spec);
    return kura_serve_config_key_rate(c, name, rpm, tpm, eb);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

enum kura_err kura_serve_config_add_model(struct kura_serve_config *c, const char *path,
                                          const char *name, struct kura_errbuf *eb)
{
    if (c->n_models >= KURA_SERVE_MAX_MODELS)
        return kura_err_set(eb, KURA_ERR_RANGE, "at most %d models", KURA_SERVE_MAX_MODELS);
    struct kura_serve_model_cfg *m = &c->models[c->n_models];
    memset(m, 0, sizeof *m);
    m->path = strdup(path);
    m->name = strdup(name ? name : base_name(path));
    if (!m->path || !m->name) {
        free(m->path);
        free(m->name);
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    }
    c->n_models++;
    return KURA_OK;
}

enum kura_err kura_serve_config_check(const struct kura_serve_config *c, struct kura_errbuf *eb)
{
    if (c->n_models == 0)
        return kura_err_set(eb, KURA_ERR_INVALID,
                            "no model: give -m MODEL.gguf or a `models:` list in the config");
    if (!c->tls_cert != !c->tls_key)
        return kura_err_set(eb, KURA_ERR_INVALID, "TLS needs both a certificate and a key");
    for (int i = 0; i < c->n_models; i++) {
        if (!c->models[i].name[0] || strlen(c->models[i].name) > 256)
            return kura_err_set(eb, KURA_ERR_INVALID, "model %d: bad name", i);
        for (int j = 0; j < i; j++)
            if (strcmp(c->models[i].name, c->models[j].name) == 0)
                return kura_err_set(eb, KURA_ERR_INVALID,
                                    "two models are named '%s' (give each its own name)",
                                    c->models[i].name);
    }
    if (c->embedding_model) {
        bool found = false;
        for (int i = 0; i < c->n_models; i++)
            found = found || strcmp(c->models[i].name, c->embedding_model) == 0;
        if (!found)
            return kura_err_set(eb, KURA_ERR_INVALID,
                                "embedding_model '%s' is not one of the configured models",
                                c->embedding_model);
    }
    return KURA_OK;
}

/* ---- YAML ---- */

struct yctx {
    struct kura_serve_config *c;
    yaml_document_t *doc;
    const char *path;
    struct kura_errbuf *eb;
};

static enum kura_err yerr(struct yctx *y, const yaml_node_t *n, const char *fmt, const char *a)
{
    return kura_err_set(y->eb, KURA_ERR_INVALID, "%s:%zu: %s%s", y->path,
                        (size_t)n->start_mark.line + 1, fmt, a ? a : "");
}

static const char *scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Whether some option lives under "name." (rate_limits.keys is handled by its own walker). */
static bool known_section(const char *name)
{
    size_t l = strlen(name);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strncmp(opts[i].name, name, l) == 0 && opts[i].name[l] == '.')
            return true;
    return false;
}

/* A key may appear once in a mapping (libyaml keeps repeats; which one would win is a guess an
 * operator should not have to make). Checks pair p against the pairs before it; the walkers stop
 * at the first error and every mapping has a bounded number of valid keys, so this stays cheap. */
static enum kura_err check_repeat(struct yctx *y, yaml_node_t *map, yaml_node_pair_t *p,
                                  const char *where)
{
    yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
    const char *ks = k ? scalar(k) : NULL;
    if (!ks)
        return KURA_OK;
    for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
        yaml_node_t *kq = yaml_document_get_node(y->doc, q->key);
        const char *qs = kq ? scalar(kq) : NULL;
        if (qs && strcmp(qs, ks) == 0) {
            char what[300];
            snprintf(what, sizeof what, "%s%skey given twice: ", where, where[0] ? ": " : "");
            return yerr(y, k, what, ks);
        }
    }
    return KURA_OK;
}

static enum kura_err load_model(struct yctx *y, yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE)
        return yerr(y, n, "models: each entry must be a mapping (name, path, slots, ctx, "
                          "chat_template)", NULL);
    const char *path = NULL, *name = NULL;
    const yaml_node_t *path_node = n;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
        const char *ks = k ? scalar(k) : NULL, *vs = v ? scalar(v) : NULL;
        if (!ks || !vs)
            return yerr(y, k ? k : n, "models: keys and values must be scalars", NULL);
        enum kura_err e = check_repeat(y, n, p, "models");
        if (e)
            return e;
        if (strcmp(ks, "path") == 0) {
            path = vs;
            path_node = v;
        } else if (strcmp(ks, "name") == 0)
            name = vs;
        else if (strcmp(ks, "slots") != 0 && strcmp(ks, "ctx") != 0 &&
                 strcmp(ks, "chat_template") != 0)
            return yerr(y, k, "models: unknown key: ", ks);
    }
    if (!path)
        return yerr(y, n, "models: an entry has no 'path'", NULL);
    enum kura_err e = kura_serve_config_add_model(y->c, path, name, y->eb);
    if (e)
        return e;
    struct kura_serve_model_cfg *m = &y->c->models[y->c->n_models - 1];
    (void)path_node;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
        const char *ks = scalar(k), *vs = scalar(v);
        int64_t iv;
        if (strcmp(ks, "slots") == 0) {
            if (!parse_i64(vs, &iv) || iv < 1 || iv > 64)
                return yerr(y, v, "models: slots must be an integer in 1..64, not ", vs);
            m->slots = (int)iv;
        } else if (strcmp(ks, "ctx") == 0) {
            if (!parse_i64(vs, &iv) || iv < 0 || iv > KURA_MAX_CTX)
                return yerr(y, v, "models: ctx must be an integer in 0..1048576, not ", vs);
            m->ctx = (int32_t)iv;
        } else if (strcmp(ks, "chat_template") == 0) {
            free(m->chat_template);
            if (!(m->chat_template = strdup(vs)))
                return kura_err_set(y->eb, KURA_ERR_NOMEM, "out of memory");
        } else if (strcmp(ks, "name") == 0 && !vs[0]) {
            return yerr(y, v, "models: name must not be empty", NULL);
        }
    }
    return KURA_OK;
}

static enum kura_err load_map(struct yctx *y, yaml_node_t *n, const char *prefix)
{
    if (n->type != YAML_MAPPING_NODE)
        return yerr(y, n, "expected a mapping at ", prefix[0] ? prefix : "the top level");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
        const char *ks = k ? scalar(k) : NULL;
        if (!ks || !v)
            return yerr(y, k ? k : n, "keys must be scalars", NULL);
        char name[256];
        if ((size_t)snprintf(name, sizeof name, "%s%s%s", prefix, prefix[0] ? "." : "", ks) >=
            sizeof name)
            return yerr(y, k, "key too long", NULL);
        enum kura_err e = check_repeat(y, n, p, prefix);
        if (e)
            return e;
        if (strcmp(name, "rate_limits.keys") == 0) {
            if (v->type != YAML_MAPPING_NODE)
                return yerr(y, v, "rate_limits.keys: expected a mapping of key names", NULL);
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
                 q++) {
                yaml_node_t *kn = yaml_document_get_node(y->doc, q->key);
                yaml_node_t *kv = yaml_document_get_node(y->doc, q->value);
                if (!kn || !kv || !scalar(kn) || kv->type != YAML_MAPPING_NODE)
                    return yerr(y, kn ? kn : v, "rate_limits.keys: expected NAME: "
                                "{requests_per_min: N, tokens_per_min: N}", NULL);
                if ((e = check_repeat(y, v, q, "rate_limits.keys")))
                    return e;
                int64_t lim[2] = {0, 0};
                for (yaml_node_pair_t *r = kv->data.mapping.pairs.start;
                     r < kv->data.mapping.pairs.top; r++) {
                    yaml_node_t *rk = yaml_document_get_node(y->doc, r->key);
                    yaml_node_t *rv = yaml_document_get_node(y->doc, r->value);
                    const char *rks = rk ? scalar(rk) : NULL, *rvs = rv ? scalar(rv) : NULL;
                    if ((e = check_repeat(y, kv, r, "rate_limits.keys")))
                        return e;
                    int which = rks && strcmp(rks, "requests_per_min") == 0  ? 0
                                : rks && strcmp(rks, "tokens_per_min") == 0 ? 1
                                                                            : -1;
                    if (which < 0)
                        return yerr(y, rk ? rk : kv, "rate_limits.keys: unknown key: ",
                                    rks ? rks : "?");
                    if (!rvs || !parse_i64(rvs, &lim[which]) || lim[which] < 0)
                        return yerr(y, rv ? rv : kv,
                                    "rate_limits.keys: expected a non-negative integer, not ",
                                    rvs ? rvs : "?");
                }
                if ((e = kura_serve_config_key_rate(y->c, scalar(kn), lim[0], lim[1], y->eb)))
                    return e;
            }
            continue;
        }
        if (!prefix[0] && strcmp(ks, "models") == 0) {
            if (v->type != YAML_SEQUENCE_NODE)
                return yerr(y, v, "models: expected a list of models", NULL);
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++) {
                yaml_node_t *m = yaml_document_get_node(y->doc, *it);
                if (!m)
                    return yerr(y, v, "models: bad entry", NULL);
                if ((e = load_model(y, m)))
                    return e;
            }
            continue;
        }
        if (v->type == YAML_MAPPING_NODE) {
            if (!known_section(name))
                return yerr(y, k, "unknown section: ", name);
            if ((e = load_map(y, v, name)))
                return e;
            continue;
        }
        if (v->type != YAML_SCALAR_NODE)
            return yerr(y, v, "expected a scalar value for ", name);
        char where[KURA_MAX_PATH + 32];
        snprintf(where, sizeof where, "%s:%zu", y->path, (size_t)k->start_mark.line + 1);
        if ((e = kura_serve_config_set(y->c, name, scalar(v), where, y->eb))) {
            if (e == KURA_ERR_NOTFOUND)
                return kura_err_set(y->eb, KURA_ERR_INVALID, "%s: unknown key '%s'", where, name);
            return e;
        }
    }
    return KURA_OK;
}

/* Walks a loaded parser's document; name prefixes errors. */
static enum kura_err load_parsed(struct kura_serve_config *c, yaml_parser_t *p, const char *name,
                                 struct kura_errbuf *eb)
{
    yaml_document_t doc;
    if (!yaml_parser_load(p, &doc))
        return kura_err_set(eb, KURA_ERR_INVALID, "%s:%zu:%zu: %s", name,
                            (size_t)p->problem_mark.line + 1, (size_t)p->problem_mark.column + 1,
                            p->problem ? p->problem : "YAML syntax error");
    enum kura_err e = KURA_OK;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        struct yctx y = {c, &doc, name, eb};
        e = load_map(&y, root, "");
    }
    yaml_document_delete(&doc);
    return e;
}

enum kura_err kura_serve_config_load_buffer(struct kura_serve_config *c, const char *data,
                                            size_t len, const char *name, struct kura_errbuf *eb)
{
    if (!name)
        name = "config";
    if (len > MAX_CONFIG_FILE)
        return kura_err_set(eb, KURA_ERR_RANGE, "%s: larger than %u bytes", name, MAX_CONFIG_FILE);
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
    enum kura_err e = load_parsed(c, &p, name, eb);
    yaml_parser_delete(&p);
    return e;
}

enum kura_err kura_serve_config_load(struct kura_serve_config *c, const char *path,
                                     struct kura_errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return kura_err_set(eb, KURA_ERR_IO, "%s: %s", path, strerror(errno));
    yaml_parser_t p;
    enum kura_err e = KURA_OK;
    if (!yaml_parser_initialize(&p)) {
        fclose(f);
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    }
    if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > (long)MAX_CONFIG_FILE) {
        e = kura_err_set(eb, KURA_ERR_RANGE, "%s: larger than %u bytes", path, MAX_CONFIG_FILE);
    } else {
        rewind(f);
        yaml_parser_set_input_file(&p, f);
        e = load_parsed(c, &p, path, eb);
    }
    yaml_parser_delete(&p);
    fclose(f);
    return e;
}
