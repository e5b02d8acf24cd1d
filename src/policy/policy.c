/* Policy files (YAML, libyaml document API). One walker serves loading and linting: every problem
 * goes to a callback with its line; loading fails on the first, linting reports all.
 * Format: docs/policy.md. */
#include "kura/policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/limits.h"
#include "policy/policy_int.h"

static const char *const level_names[] = {"public", "internal", "confidential", "secret"};
static const char *const action_names[] = {"local", "redact", "pseudonymise", "refuse"};
static const char *const decision_names[] = {"allow", "route_local", "redact", "pseudonymise",
                                             "refuse"};

const char *kura_level_name(enum kura_level l)
{
    return (unsigned)l < 4 ? level_names[l] : "?";
}

const char *kura_action_name(enum kura_action a)
{
    return (unsigned)a < 4 ? action_names[a] : "?";
}

const char *kura_decision_name(enum kura_decision d)
{
    return (unsigned)d < 5 ? decision_names[d] : "?";
}

static int parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

static int parse_action(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, action_names[i]) == 0)
            return i;
    if (strcmp(s, "pseudonymize") == 0)
        return KURA_ACTION_PSEUDONYMISE;
    return -1;
}

/* ---------------------------------------------------------------- walker */

struct walk {
    yaml_document_t *doc;
    struct kura_policy *pol; /* being filled */
    kura_policy_lint_fn fn;
    void *ud;
    int n_err;
    bool oom;
};

static void problem(struct walk *w, const yaml_node_t *nd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(struct walk *w, const yaml_node_t *nd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->n_err++;
    if (w->fn)
        w->fn(w->ud, nd ? nd->start_mark.line + 1 : 0, msg);
}

static const char *scalar(struct walk *w, yaml_node_t *nd, const char *what)
{
    if (!nd || nd->type != YAML_SCALAR_NODE) {
        problem(w, nd, "%s: expected a scalar value", what);
        return NULL;
    }
    if (nd->data.scalar.length > KURA_POLICY_MAX_STRING) {
        problem(w, nd, "%s: value longer than %d bytes", what, KURA_POLICY_MAX_STRING);
        return NULL;
    }
    if (strlen((const char *)nd->data.scalar.value) != nd->data.scalar.length) {
        problem(w, nd, "%s: value contains a NUL byte", what);
        return NULL;
    }
    return (const char *)nd->data.scalar.value;
}

/* A key of one mapping may appear once: YAML parsers accept repeats, and a repeat in a policy is
 * almost always an editing mistake whose meaning (first or last wins?) nobody should have to guess.
 * bit names the key (aliases such as name/class share one). */
static bool first_time(struct walk *w, yaml_node_t *k, uint64_t *seen, unsigned bit,
                       const char *where, const char *ks)
{
    if (*seen & (UINT64_C(1) << bit)) {
        problem(w, k, "%s: key '%s' given twice", where, ks);
        return false;
    }
    *seen |= UINT64_C(1) << bit;
    return true;
}

/* Index of ks in a NULL-terminated list of names, each "a|b" naming aliases; -1 if absent. */
static int key_bit(const char *const *names, const char *ks)
{
    size_t kl = strlen(ks);
    for (int i = 0; names[i]; i++)
        for (const char *p = names[i]; *p;) {
            size_t l = strcspn(p, "|");
            if (l == kl && !memcmp(p, ks, l))
                return i;
            p += l + (p[l] == '|');
        }
    return -1;
}

static char *dup_or_oom(struct walk *w, const char *s)
{
    char *d = strdup(s);
    if (!d)
        w->oom = true;
    return d;
}

static bool get_level(struct walk *w, yaml_node_t *nd, const char *what, enum kura_level *out)
{
    const char *s = scalar(w, nd, what);
    if (!s)
        return false;
    int l = parse_level(s);
    if (l < 0) {
        problem(w, nd, "%s: unknown level '%s' (public, internal, confidential, secret)", what, s);
        return false;
    }
    *out = (enum kura_level)l;
    return true;
}

static bool get_float01(struct walk *w, yaml_node_t *nd, const char *what, float *out)
{
    const char *s = scalar(w, nd, what);
    if (!s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0 && v <= 1)) {
        problem(w, nd, "%s: expected a number between 0 and 1, got '%s'", what, s);
        return false;
    }
    *out = (float)v;
    return true;
}

static void walk_levels(struct walk *w, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE) {
        problem(w, map, "levels: expected a mapping of finding type to level");
        return;
    }
    _Static_assert(KURA_PII__COUNT <= 64, "one bit per finding type");
    uint64_t seen = 0;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, pr->value);
        const char *ks = scalar(w, k, "levels key");
        if (!ks)
            continue;
        int t = kura_pii_type_from_name(ks);
        if (t < 0) {
            problem(w, k, "levels: unknown finding type '%s'", ks);
            continue;
        }
        if (!first_time(w, k, &seen, (unsigned)t, "levels", ks))
            continue;
        enum kura_level l;
        if (get_level(w, v, ks, &l))
            w->pol->type_level[t] = l;
    }
}

static void walk_rule(struct walk *w, yaml_node_t *nd, size_t idx)
{
    struct kura_op_rule *r = &w->pol->rules[idx];
    r->level = KURA_LEVEL_CONFIDENTIAL;
    r->confidence = 0.9f;
    if (nd->type != YAML_MAPPING_NODE) {
        problem(w, nd, "rules[%zu]: expected a mapping", idx);
        return;
    }
    static const char *const keys[] = {"name|class", "level", "confidence", "keywords", "pattern",
                                       NULL};
    char where[32];
    snprintf(where, sizeof where, "rules[%zu]", idx);
    uint64_t seen = 0;
    bool have_kw = false;
    for (yaml_node_pair_t *pr = nd->data.mapping.pairs.start; pr < nd->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, pr->value);
        const char *ks = scalar(w, k, "rule key");
        if (!ks)
            continue;
        int b = key_bit(keys, ks);
        if (b >= 0 && !first_time(w, k, &seen, (unsigned)b, where, ks))
            continue;
        if (!strcmp(ks, "name") || !strcmp(ks, "class")) {
            const char *s = scalar(w, v, ks);
            if (!s)
                continue;
            if (!*s || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != strlen(s)) {
                problem(w, v, "rules[%zu].%s: '%s' must be non-empty [A-Za-z0-9_.-]", idx, ks, s);
                continue;
            }
            if (kura_pii_type_from_name(s) >= 0) {
                problem(w, v, "rules[%zu].%s: '%s' is a built-in finding type", idx, ks, s);
                continue;
            }
            free(r->name);
            r->name = dup_or_oom(w, s);
        } else if (!strcmp(ks, "level")) {
            get_level(w, v, "level", &r->level);
        } else if (!strcmp(ks, "confidence")) {
            get_float01(w, v, "confidence", &r->confidence);
        } else if (!strcmp(ks, "keywords")) {
            if (v->type != YAML_SEQUENCE_NODE) {
                problem(w, v, "rules[%zu].keywords: expected a list", idx);
                continue;
            }
            size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            if (n > KURA_POLICY_MAX_KEYWORDS) {
                problem(w, v, "rules[%zu].keywords: more than %d keywords", idx, KURA_POLICY_MAX_KEYWORDS);
                continue;
            }
            r->keywords = calloc(n ? n : 1, sizeof *r->keywords);
            r->kw_len = calloc(n ? n : 1, sizeof *r->kw_len);
            if (!r->keywords || !r->kw_len) {
                w->oom = true;
                return;
            }
            have_kw = true;
            for (size_t i = 0; i < n; i++) {
                yaml_node_t *it = yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
                const char *s = scalar(w, it, "keyword");
                if (!s)
                    continue;
                if (!*s) {
                    problem(w, it, "rules[%zu].keywords[%zu]: empty keyword", idx, i);
                    continue;
                }
                char *norm = NULL;
                uint32_t *map = NULL;
                size_t nl = 0;
                if (kura_policy_normalize(s, strlen(s), &norm, &nl, &map, NULL)) {
                    w->oom = true;
                    return;
                }
                free(map);
                r->keywords[r->n_keywords] = norm;
                r->kw_len[r->n_keywords++] = nl;
            }
        } else if (!strcmp(ks, "pattern")) {
            const char *s = scalar(w, v, "pattern");
            if (!s)
                continue;
            int ec;
            PCRE2_SIZE eo;
            pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                           &ec, &eo, NULL);
            if (!re) {
                PCRE2_UCHAR buf[256];
                pcre2_get_error_message(ec, buf, sizeof buf);
                problem(w, v, "rules[%zu].pattern: bad regular expression at offset %zu: %s", idx,
                        (size_t)eo, (const char *)buf);
                continue;
            }
            pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
            pcre2_code_free(r->re);
            r->re = re;
            free(r->pattern);
            r->pattern = dup_or_oom(w, s);
        } else {
            problem(w, k, "rules[%zu]: unknown key '%s' (name, level, keywords, pattern, confidence)",
                    idx, ks);
        }
    }
    if (!r->name)
        problem(w, nd, "rules[%zu]: missing 'name'", idx);
    if (!have_kw && !r->re)
        problem(w, nd, "rules[%zu]: needs 'keywords' or 'pattern'", idx);
}

static void walk_dest(struct walk *w, yaml_node_t *nd, size_t idx)
{
    struct kura_destination *d = &w->pol->dests[idx];
    d->kind = KURA_DEST_UPSTREAM;
    d->max_level = KURA_LEVEL_PUBLIC;
    d->action = KURA_ACTION_LOCAL;
    if (nd->type != YAML_MAPPING_NODE) {
        problem(w, nd, "destinations[%zu]: expected a mapping", idx);
        return;
    }
    static const char *const keys[] = {"kind|type", "name", "url", "model", "jurisdiction",
                                       "api_key_env", "max_level", "action", NULL};
    char where[40];
    snprintf(where, sizeof where, "destinations[%zu]", idx);
    uint64_t seen = 0;
    bool have_kind = false, have_max = false;
    for (yaml_node_pair_t *pr = nd->data.mapping.pairs.start; pr < nd->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, pr->value);
        const char *ks = scalar(w, k, "destination key");
        if (!ks)
            continue;
        int b = key_bit(keys, ks);
        if (b >= 0 && !first_time(w, k, &seen, (unsigned)b, where, ks))
            continue;
        const char *s;
        if (!strcmp(ks, "kind") || !strcmp(ks, "type")) {
            if (!(s = scalar(w, v, ks)))
                continue;
            have_kind = true;
            if (!strcmp(s, "local"))
                d->kind = KURA_DEST_LOCAL;
            else if (!strcmp(s, "upstream") || !strcmp(s, "openai"))
                d->kind = KURA_DEST_UPSTREAM;
            else
                problem(w, v, "destinations[%zu].kind: unknown kind '%s' (local, upstream)", idx, s);
        } else if (!strcmp(ks, "name") || !strcmp(ks, "url") || !strcmp(ks, "model") ||
                   !strcmp(ks, "jurisdiction") || !strcmp(ks, "api_key_env")) {
            if (!(s = scalar(w, v, ks)))
                continue;
            if (!*s) {
                problem(w, v, "destinations[%zu].%s: empty value", idx, ks);
                continue;
            }
            const char **slot = !strcmp(ks, "name") ? &d->name : !strcmp(ks, "url") ? &d->url
                                : !strcmp(ks, "model") ? &d->model : !strcmp(ks, "jurisdiction")
                                ? &d->jurisdiction : &d->api_key_env;
            if (!strcmp(ks, "url") && strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0) {
                problem(w, v, "destinations[%zu].url: '%s' is not an http(s) URL", idx, s);
                continue;
            }
            if (!strcmp(ks, "jurisdiction") &&
                (strlen(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z')) {
                problem(w, v, "destinations[%zu].jurisdiction: '%s' is not a two-letter country code", idx, s);
                continue;
            }
            free((char *)*slot);
            *slot = dup_or_oom(w, s);
        } else if (!strcmp(ks, "max_level")) {
            have_max = get_level(w, v, "max_level", &d->max_level);
        } else if (!strcmp(ks, "action")) {
            if (!(s = scalar(w, v, ks)))
                continue;
            int a = parse_action(s);
            if (a < 0)
                problem(w, v, "destinations[%zu].action: unknown action '%s' (local, redact, pseudonymise, refuse)", idx, s);
            else
                d->action = (enum kura_action)a;
        } else {
            problem(w, k, "destinations[%zu]: unknown key '%s'", idx, ks);
        }
    }
    if (!d->name)
        problem(w, nd, "destinations[%zu]: missing 'name'", idx);
    if (!have_kind && !d->url)
        d->kind = KURA_DEST_LOCAL;
    if (d->kind == KURA_DEST_UPSTREAM) {
        if (!d->url)
            problem(w, nd, "destinations[%zu]: an upstream needs 'url'", idx);
        if (!d->jurisdiction)
            problem(w, nd, "destinations[%zu]: an upstream needs 'jurisdiction'", idx);
    } else if (!have_max) {
        d->max_level = KURA_LEVEL_SECRET; /* local models see everything unless told otherwise */
    }
}

static void policy_defaults(struct kura_policy *p)
{
    for (int t = 0; t < KURA_PII__COUNT; t++)
        p->type_level[t] = KURA_LEVEL_CONFIDENTIAL;
    p->type_level[KURA_PII_MY_NUMBER] = KURA_LEVEL_SECRET;
    p->type_level[KURA_PII_CREDIT_CARD] = KURA_LEVEL_SECRET;
    p->type_level[KURA_PII_BANK_ACCOUNT] = KURA_LEVEL_SECRET;
    p->type_level[KURA_PII_PASSPORT] = KURA_LEVEL_SECRET;
    p->type_level[KURA_PII_DRIVERS_LICENSE] = KURA_LEVEL_SECRET;
    p->type_level[KURA_PII_HEALTH_INSURANCE] = KURA_LEVEL_SECRET;
    p->type_level[KURA_PII_CORPORATE_NUMBER] = KURA_LEVEL_INTERNAL;
    p->default_level = KURA_LEVEL_PUBLIC;
    p->min_confidence = 0.5f;
}

static void walk_root(struct walk *w, yaml_node_t *root)
{
    if (!root) /* empty file: the defaults */
        return;
    if (root->type != YAML_MAPPING_NODE) {
        problem(w, root, "the policy must be a mapping");
        return;
    }
    static const char *const keys[] = {"version", "levels", "default_level", "min_confidence",
                                       "auto_model", "default_destination", "local_destination",
                                       "rules", "destinations", NULL};
    uint64_t seen = 0;
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, pr->value);
        const char *ks = scalar(w, k, "key");
        if (!ks)
            continue;
        int b = key_bit(keys, ks);
        if (b >= 0 && !first_time(w, k, &seen, (unsigned)b, "policy", ks))
            continue;
        if (!strcmp(ks, "version")) {
            const char *s = scalar(w, v, "version");
            if (s && strcmp(s, "1") != 0)
                problem(w, v, "version: unsupported version '%s' (1)", s);
        } else if (!strcmp(ks, "levels")) {
            walk_levels(w, v);
        } else if (!strcmp(ks, "default_level")) {
            get_level(w, v, "default_level", &w->pol->default_level);
        } else if (!strcmp(ks, "min_confidence")) {
            get_float01(w, v, "min_confidence", &w->pol->min_confidence);
        } else if (!strcmp(ks, "auto_model") || !strcmp(ks, "default_destination") ||
                   !strcmp(ks, "local_destination")) {
            const char *s = scalar(w, v, ks);
            if (!s)
                continue;
            char **slot = !strcmp(ks, "auto_model") ? &w->pol->auto_model
                          : !strcmp(ks, "default_destination") ? &w->pol->default_dest
                                                                : &w->pol->local_dest;
            free(*slot);
            *slot = dup_or_oom(w, s);
        } else if (!strcmp(ks, "rules") || !strcmp(ks, "destinations")) {
            if (v->type != YAML_SEQUENCE_NODE) {
                problem(w, v, "%s: expected a list", ks);
                continue;
            }
            size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            bool rules = ks[0] == 'r';
            if (n > (rules ? KURA_POLICY_MAX_RULES : KURA_POLICY_MAX_DESTS)) {
                problem(w, v, "%s: too many entries (%zu)", ks, n);
                continue;
            }
            if (rules) {
                w->pol->rules = calloc(n ? n : 1, sizeof *w->pol->rules);
                if (!w->pol->rules) {
                    w->oom = true;
                    return;
                }
                w->pol->n_rules = n;
            } else {
                w->pol->dests = calloc(n ? n : 1, sizeof *w->pol->dests);
                if (!w->pol->dests) {
                    w->oom = true;
                    return;
                }
                w->pol->n_dests = n;
            }
            for (size_t i = 0; i < n && !w->oom; i++) {
                yaml_node_t *it = yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
                if (rules)
                    walk_rule(w, it, i);
                else
                    walk_dest(w, it, i);
            }
        } else {
            problem(w, k, "unknown key '%s'", ks);
        }
    }
    /* cross checks */
    struct kura_policy *p = w->pol;
    for (size_t i = 0; i < p->n_dests; i++)
        for (size_t j = 0; j < i; j++)
            if (p->dests[i].name && p->dests[j].name && !strcmp(p->dests[i].name, p->dests[j].name))
                problem(w, root, "destinations: name '%s' used twice", p->dests[i].name);
    for (size_t i = 0; i < p->n_rules; i++)
        for (size_t j = 0; j < i; j++)
            if (p->rules[i].name && p->rules[j].name && !strcmp(p->rules[i].name, p->rules[j].name))
                problem(w, root, "rules: name '%s' used twice", p->rules[i].name);
    const char *refs[2] = {p->default_dest, p->local_dest};
    for (int r = 0; r < 2; r++) {
        if (!refs[r])
            continue;
        const struct kura_destination *d = kura_policy_find_destination(p, refs[r]);
        if (!d)
            problem(w, root, "%s: no destination named '%s'",
                    r ? "local_destination" : "default_destination", refs[r]);
        else if (r == 1 && d->kind != KURA_DEST_LOCAL)
            problem(w, root, "local_destination: '%s' is not a local destination", refs[r]);
    }
}

static void policy_free_contents(struct kura_policy *p)
{
    for (size_t i = 0; i < p->n_rules; i++) {
        struct kura_op_rule *r = &p->rules[i];
        free(r->name);
        for (size_t k = 0; k < r->n_keywords; k++)
            free(r->keywords[k]);
        free(r->keywords);
        free(r->kw_len);
        pcre2_code_free(r->re);
        free(r->pattern);
    }
    free(p->rules);
    for (size_t i = 0; i < p->n_dests; i++) {
        struct kura_destination *d = &p->dests[i];
        free((char *)d->name);
        free((char *)d->url);
        free((char *)d->model);
        free((char *)d->jurisdiction);
        free((char *)d->api_key_env);
    }
    free(p->dests);
    free(p->default_dest);
    free(p->local_dest);
    free(p->auto_model);
}

void kura_policy_destroy(struct kura_policy *p)
{
    if (!p)
        return;
    policy_free_contents(p);
    free(p);
}

/* Parses into a fresh policy; problems go to fn. Returns the policy (even with problems) or NULL
 * on OOM; *n_err counts problems. */
static struct kura_policy *parse_walk(const char *data, size_t len, kura_policy_lint_fn fn,
                                     void *ud, int *n_err)
{
    struct kura_policy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    policy_defaults(p);
    struct walk w = {NULL, p, fn, ud, 0, false};
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        free(p);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc)) {
        char msg[300];
        snprintf(msg, sizeof msg, "YAML syntax error: %s%s%s", parser.problem ? parser.problem : "?",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        w.n_err++;
        if (fn)
            fn(ud, parser.problem_mark.line + 1, msg);
        yaml_parser_delete(&parser);
        *n_err = w.n_err;
        return p;
    }
    w.doc = &doc;
    walk_root(&w, yaml_document_get_root_node(&doc));
    /* a second document is not allowed */
    yaml_document_t doc2;
    if (yaml_parser_load(&parser, &doc2)) {
        yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
        if (r2)
            problem(&w, r2, "only one YAML document is allowed");
        yaml_document_delete(&doc2);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (w.oom) {
        kura_policy_destroy(p);
        return NULL;
    }
    *n_err = w.n_err;
    return p;
}

struct first_err {
    const char *name;
    struct kura_errbuf *eb;
    bool set;
};

static void record_first(void *ud, size_t line, const char *msg)
{
    struct first_err *fe = ud;
    if (fe->set)
        return;
    fe->set = true;
    kura_err_set(fe->eb, KURA_ERR_FORMAT, "%s:%zu: %s", fe->name, line, msg);
}

enum kura_err kura_policy_parse(const char *data, size_t len, const char *name,
                                struct kura_policy **out, struct kura_errbuf *eb)
{
    *out = NULL;
    if (len > KURA_POLICY_MAX_FILE)
        return kura_err_set(eb, KURA_ERR_RANGE, "%s: policy larger than %u bytes", name,
                            KURA_POLICY_MAX_FILE);
    struct first_err fe = {name ? name : "policy", eb, false};
    int n_err = 0;
    struct kura_policy *p = parse_walk(data, len, record_first, &fe, &n_err);
    if (!p)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory parsing policy");
    if (n_err) {
        kura_policy_destroy(p);
        return KURA_ERR_FORMAT;
    }
    *out = p;
    return KURA_OK;
}

static char *read_file(const char *path, size_t *len, struct kura_errbuf *eb, enum kura_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *e = kura_err_set(eb, KURA_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(KURA_POLICY_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        *e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        return NULL;
    }
    size_t n = fread(buf, 1, KURA_POLICY_MAX_FILE + 1, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        *e = kura_err_set(eb, KURA_ERR_IO, "%s: read error", path);
        return NULL;
    }
    if (n > KURA_POLICY_MAX_FILE) {
        free(buf);
        *e = kura_err_set(eb, KURA_ERR_RANGE, "%s: policy larger than %u bytes", path,
                          KURA_POLICY_MAX_FILE);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

enum kura_err kura_policy_load(const char *path, struct kura_policy **out, struct kura_errbuf *eb)
{
    *out = NULL;
    size_t len;
    enum kura_err e = KURA_OK;
    char *buf = read_file(path, &len, eb, &e);
    if (!buf)
        return e;
    e = kura_policy_parse(buf, len, path, out, eb);
    free(buf);
    return e;
}

enum kura_err kura_policy_default(struct kura_policy **out, struct kura_errbuf *eb)
{
    static const char def[] = "destinations:\n  - name: local\n    kind: local\n";
    return kura_policy_parse(def, sizeof def - 1, "(built-in policy)", out, eb);
}

int kura_policy_lint_buffer(const char *data, size_t len, kura_policy_lint_fn fn, void *ud)
{
    if (len > KURA_POLICY_MAX_FILE) {
        if (fn)
            fn(ud, 0, "policy file too large");
        return 1;
    }
    int n_err = 0;
    struct kura_policy *p = parse_walk(data, len, fn, ud, &n_err);
    if (!p)
        return -1;
    kura_policy_destroy(p);
    return n_err;
}

int kura_policy_lint(const char *path, kura_policy_lint_fn fn, void *ud)
{
    size_t len;
    enum kura_err e = KURA_OK;
    char *buf = read_file(path, &len, NULL, &e);
    if (!buf)
        return -1;
    int r = kura_policy_lint_buffer(buf, len, fn, ud);
    free(buf);
    return r;
}

/* ---------------------------------------------------------------- queries */

size_t kura_policy_n_destinations(const struct kura_policy *p) { return p->n_dests; }

const struct kura_destination *kura_policy_destination(const struct kura_policy *p, size_t i)
{
    return i < p->n_dests ? &p->dests[i] : NULL;
}

const struct kura_destination *kura_policy_find_destination(const struct kura_policy *p,
                                                            const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < p->n_dests; i++)
        if (p->dests[i].name && !strcmp(p->dests[i].name, name))
            return &p->dests[i];
    return NULL;
}

const char *kura_policy_auto_model(const struct kura_policy *p)
{
    return p->auto_model ? p->auto_model : "auto";
}

enum kura_level kura_policy_level_of(const struct kura_policy *p, const struct kura_finding *f)
{
    if (f->type == KURA_PII_RULE && f->rule_index >= 0 && (size_t)f->rule_index < p->n_rules)
        return p->rules[f->rule_index].level;
    return (unsigned)f->type < KURA_PII__COUNT ? p->type_level[f->type] : KURA_LEVEL_SECRET;
}

/* ---------------------------------------------------------------- operator rules */

static bool kw_match(const char *t, size_t n, size_t p, const char *kw, size_t kl, bool ascii)
{
    if (p + kl > n)
        return false;
    if (!ascii)
        return memcmp(t + p, kw, kl) == 0;
    for (size_t i = 0; i < kl; i++) {
        unsigned char a = (unsigned char)t[p + i], b = (unsigned char)kw[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a + 32);
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b + 32);
        if (a != b)
            return false;
    }
    /* ASCII words match whole words only */
    unsigned char before = p ? (unsigned char)t[p - 1] : ' ', after = p + kl < n ? (unsigned char)t[p + kl] : ' ';
    bool wb = !((before >= '0' && before <= '9') || ((before | 0x20) >= 'a' && (before | 0x20) <= 'z')) &&
              !((after >= '0' && after <= '9') || ((after | 0x20) >= 'a' && (after | 0x20) <= 'z'));
    return wb;
}

enum kura_err kura_policy_run_rules(const struct kura_policy *p, const char *norm, size_t n,
                                    struct kura_findings *out, struct kura_errbuf *eb)
{
    for (size_t i = 0; i < p->n_rules; i++) {
        const struct kura_op_rule *r = &p->rules[i];
        for (size_t k = 0; k < r->n_keywords; k++) {
            const char *kw = r->keywords[k];
            size_t kl = r->kw_len[k];
            bool ascii = true;
            for (size_t c = 0; c < kl; c++)
                if ((unsigned char)kw[c] >= 0x80)
                    ascii = false;
            for (size_t q = 0; q + kl <= n; q++) {
                if (kw_match(norm, n, q, kw, kl, ascii)) {
                    if (kura_findings_push(out, KURA_PII_RULE, q, q + kl, r->confidence, r->name, (int)i))
                        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory for findings");
                    q += kl - 1;
                }
            }
        }
        if (r->re) {
            pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->re, NULL);
            if (!md)
                return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
            size_t off = 0;
            while (off <= n) {
                int rc = pcre2_match(r->re, (PCRE2_SPTR)norm, n, off, off ? PCRE2_NO_UTF_CHECK : 0, md, NULL);
                if (rc == PCRE2_ERROR_NOMATCH)
                    break;
                if (rc < 0) { /* match/heap limit: the rest of the text is unchecked */
                    PCRE2_UCHAR why[128];
                    pcre2_get_error_message(rc, why, sizeof why);
                    pcre2_match_data_free(md);
                    return kura_err_set(eb, KURA_ERR_BUSY,
                                        "policy rule '%s': its pattern gave up at byte %zu of the "
                                        "normalised text (%s); the text was not fully checked",
                                        r->name ? r->name : "?", off, (const char *)why);
                }
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                if (ov[1] > ov[0] &&
                    kura_findings_push(out, KURA_PII_RULE, ov[0], ov[1], r->confidence, r->name, (int)i)) {
                    pcre2_match_data_free(md);
                    return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory for findings");
                }
                off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
                while (off < n && ((unsigned char)norm[off] & 0xC0) == 0x80)
                    off++;
            }
            pcre2_match_data_free(md);
        }
    }
    return KURA_OK;
}
