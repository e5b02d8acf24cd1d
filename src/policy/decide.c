/* Decisions (level, destination, action), pseudonymisation and the streaming restorer.
 * Original values live only in this process's memory and are wiped when the mapping goes. */
#include "kura/policy.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"
#include "policy/policy_int.h"

/* ---------------------------------------------------------------- pseudonymisation */

#define PH_MAX 96 /* bytes in one placeholder */

struct pseudo_entry {
    char *type;     /* type name as given */
    char *value;    /* original bytes (wiped on destroy) */
    size_t value_len;
    char ph[PH_MAX];
    size_t ph_len;
};

struct kura_pseudo {
    bool redact;
    struct pseudo_entry *v;
    size_t n, cap;
};

enum kura_err kura_pseudo_create(bool redact, struct kura_pseudo **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return KURA_ERR_NOMEM;
    (*out)->redact = redact;
    return KURA_OK;
}

void kura_pseudo_destroy(struct kura_pseudo *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        sodium_memzero(p->v[i].value, p->v[i].value_len);
        free(p->v[i].value);
        free(p->v[i].type);
        sodium_memzero(p->v[i].ph, sizeof p->v[i].ph);
    }
    free(p->v);
    free(p);
}

size_t kura_pseudo_count(const struct kura_pseudo *p) { return p ? p->n : 0; }

static void upper_tag(const char *type, char *dst, size_t cap)
{
    size_t k = 0;
    for (; type[k] && k + 1 < cap && k < 40; k++) {
        char c = type[k];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            c = '_';
        dst[k] = c;
    }
    dst[k] = 0;
}

/* Finds or adds the placeholder of (type, value). */
static const struct pseudo_entry *pseudo_get(struct kura_pseudo *p, const char *type,
                                             const char *val, size_t vl)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].value_len == vl && !strcmp(p->v[i].type, type) && !memcmp(p->v[i].value, val, vl))
            return &p->v[i];
    if (p->n >= KURA_POLICY_MAX_PLACEHOLDERS)
        return NULL;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct pseudo_entry *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return NULL;
        p->v = v;
        p->cap = cap;
    }
    struct pseudo_entry *e = &p->v[p->n];
    memset(e, 0, sizeof *e);
    e->type = strdup(type);
    e->value = malloc(vl ? vl : 1);
    if (!e->type || !e->value) {
        free(e->type);
        free(e->value);
        return NULL;
    }
    memcpy(e->value, val, vl);
    e->value_len = vl;
    char tag[48];
    upper_tag(type, tag, sizeof tag);
    size_t same = 1;
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->v[i].type, type))
            same++;
    if (p->redact)
        snprintf(e->ph, sizeof e->ph, "[REDACTED_%s]", tag);
    else
        snprintf(e->ph, sizeof e->ph, "<%s_%zu>", tag, same);
    e->ph_len = strlen(e->ph);
    p->n++;
    return e;
}

enum kura_err kura_pseudo_apply(struct kura_pseudo *p, const char *text, size_t len,
                                const struct kura_findings *f, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t cap = len + 1, n = 0;
    for (size_t i = 0; i < f->n; i++)
        cap += PH_MAX;
    char *buf = malloc(cap);
    if (!buf)
        return KURA_ERR_NOMEM;
    size_t pos = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct kura_finding *x = &f->v[i];
        if (x->start < pos || x->end > len || x->end <= x->start) {
            free(buf);
            return KURA_ERR_INVALID;
        }
        memcpy(buf + n, text + pos, x->start - pos);
        n += x->start - pos;
        const struct pseudo_entry *e =
            pseudo_get(p, kura_finding_type_name(x), text + x->start, x->end - x->start);
        if (!e) {
            sodium_memzero(buf, n);
            free(buf);
            return KURA_ERR_NOMEM;
        }
        memcpy(buf + n, e->ph, e->ph_len);
        n += e->ph_len;
        pos = x->end;
    }
    memcpy(buf + n, text + pos, len - pos);
    n += len - pos;
    buf[n] = 0;
    *out = buf;
    *out_len = n;
    return KURA_OK;
}

/* ---------------------------------------------------------------- restorer */

struct kura_restorer {
    const struct kura_pseudo *p;
    kura_restorer_emit_fn emit;
    void *ud;
    char pend[PH_MAX];
    size_t np;
    char *out;
    size_t n_out, cap_out;
};

enum kura_err kura_restorer_create(const struct kura_pseudo *p, kura_restorer_emit_fn emit,
                                   void *ud, struct kura_restorer **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return KURA_ERR_NOMEM;
    (*out)->p = p;
    (*out)->emit = emit;
    (*out)->ud = ud;
    return KURA_OK;
}

void kura_restorer_destroy(struct kura_restorer *r)
{
    if (!r)
        return;
    if (r->out) {
        sodium_memzero(r->out, r->cap_out);
        free(r->out);
    }
    free(r);
}

static int out_put(struct kura_restorer *r, const char *s, size_t n)
{
    if (r->n_out + n > r->cap_out) {
        size_t cap = r->cap_out ? r->cap_out : 256;
        while (cap < r->n_out + n)
            cap *= 2;
        char *o = malloc(cap);
        if (!o)
            return -1;
        if (r->out) {
            memcpy(o, r->out, r->n_out);
            sodium_memzero(r->out, r->cap_out);
            free(r->out);
        }
        r->out = o;
        r->cap_out = cap;
    }
    memcpy(r->out + r->n_out, s, n);
    r->n_out += n;
    return 0;
}

static bool ph_char(char c, bool redact)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || (redact && c == ']');
}

static const struct pseudo_entry *ph_lookup(const struct kura_pseudo *p, const char *s, size_t n)
{
    if (!p)
        return NULL;
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].ph_len == n && !memcmp(p->v[i].ph, s, n))
            return &p->v[i];
    return NULL;
}

static int restore_byte(struct kura_restorer *r, char c)
{
    if (!r->p || r->p->redact) /* redacted values are gone: nothing to restore */
        return out_put(r, &c, 1);
    char open = r->p && r->p->redact ? '[' : '<', close = r->p && r->p->redact ? ']' : '>';
    if (r->np == 0) {
        if (c == open) {
            r->pend[r->np++] = c;
            return 0;
        }
        return out_put(r, &c, 1);
    }
    if (c == close) {
        r->pend[r->np++] = c;
        const struct pseudo_entry *e = ph_lookup(r->p, r->pend, r->np);
        int rc = e ? out_put(r, e->value, e->value_len) : out_put(r, r->pend, r->np);
        r->np = 0;
        return rc;
    }
    if (ph_char(c, false) && r->np + 2 < PH_MAX) {
        r->pend[r->np++] = c;
        return 0;
    }
    /* not a placeholder: release what was held, then look at c afresh */
    int rc = out_put(r, r->pend, r->np);
    r->np = 0;
    return rc ? rc : restore_byte(r, c);
}

enum kura_err kura_restorer_feed(struct kura_restorer *r, const char *data, size_t len)
{
    r->n_out = 0;
    for (size_t i = 0; i < len; i++)
        if (restore_byte(r, data[i]))
            return KURA_ERR_NOMEM;
    if (r->n_out && r->emit)
        return r->emit(r->ud, r->out, r->n_out);
    return KURA_OK;
}

enum kura_err kura_restorer_finish(struct kura_restorer *r)
{
    r->n_out = 0;
    if (r->np && out_put(r, r->pend, r->np))
        return KURA_ERR_NOMEM;
    r->np = 0;
    if (r->n_out && r->emit)
        return r->emit(r->ud, r->out, r->n_out);
    return KURA_OK;
}

static enum kura_err collect_fn(void *ud, const char *data, size_t len)
{
    return kura_buf_put(ud, data, len);
}

enum kura_err kura_pseudo_restore(const struct kura_pseudo *p, const char *text, size_t len,
                                  char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    struct kura_buf c = {0};
    struct kura_restorer *r;
    enum kura_err e = kura_restorer_create(p, collect_fn, &c, &r);
    if (e)
        return e;
    e = kura_restorer_feed(r, text, len);
    if (!e)
        e = kura_restorer_finish(r);
    kura_restorer_destroy(r);
    if (e) {
        kura_buf_free(&c);
        return e;
    }
    size_t n = c.len;
    if (!(*out = kura_buf_take(&c)))
        return c.err;
    *out_len = n;
    return KURA_OK;
}

/* ---------------------------------------------------------------- decisions */

void kura_policy_result_free(struct kura_policy_result *res)
{
    if (res)
        kura_findings_free(&res->findings);
}

static const struct kura_destination *local_dest(const struct kura_policy *p)
{
    if (p->local_dest)
        return kura_policy_find_destination(p, p->local_dest);
    for (size_t i = 0; i < p->n_dests; i++)
        if (p->dests[i].kind == KURA_DEST_LOCAL)
            return &p->dests[i];
    return NULL;
}

static const struct kura_destination *auto_upstream(const struct kura_policy *p)
{
    if (p->default_dest)
        return kura_policy_find_destination(p, p->default_dest);
    for (size_t i = 0; i < p->n_dests; i++)
        if (p->dests[i].kind == KURA_DEST_UPSTREAM)
            return &p->dests[i];
    return NULL;
}

static void type_list(const struct kura_policy_result *res, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (int t = 0; t < KURA_PII__COUNT; t++)
        if (res->type_mask & (1u << t)) {
            int w = snprintf(buf + n, cap - n, "%s%s", n ? "," : "", kura_pii_type_name(t));
            if (w < 0 || (size_t)w >= cap - n)
                break;
            n += (size_t)w;
        }
    if (!n)
        snprintf(buf, cap, "none");
}

enum kura_err kura_policy_decide(const struct kura_detector *d, const struct kura_policy *pol,
                                 const char *const *texts, const size_t *lens, size_t n,
                                 const char *dest_name, struct kura_policy_result *res,
                                 struct kura_pseudo **pseudo, char **rewritten,
                                 struct kura_errbuf *eb)
{
    memset(res, 0, sizeof *res);
    if (pseudo)
        *pseudo = NULL;
    if (rewritten)
        for (size_t i = 0; i < n; i++)
            rewritten[i] = NULL;
    enum kura_err e = KURA_OK;
    res->level = pol->default_level;
    /* per-text findings: spans relative to their text */
    size_t *first = calloc(n + 1, sizeof *first);
    if (!first)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        first[i] = res->findings.n;
        e = kura_detect(d, pol, texts[i], lens[i], &res->findings, eb);
        if (e)
            goto fail;
        for (size_t k = first[i]; k < res->findings.n; k++)
            res->findings.v[k].text_index = (uint32_t)i;
    }
    first[n] = res->findings.n;
    for (size_t k = 0; k < res->findings.n; k++) {
        const struct kura_finding *f = &res->findings.v[k];
        res->type_mask |= 1u << f->type;
        if (f->confidence < pol->min_confidence)
            continue;
        enum kura_level l = kura_policy_level_of(pol, f);
        if (l > res->level)
            res->level = l;
    }
    char types[200];
    type_list(res, types, sizeof types);
    const char *lvl = kura_level_name(res->level);
    bool is_auto = !dest_name || !strcmp(dest_name, kura_policy_auto_model(pol));
    const struct kura_destination *loc = local_dest(pol);
    if (is_auto) {
        const struct kura_destination *up = auto_upstream(pol);
        if (up && res->level <= up->max_level) {
            res->decision = KURA_DECISION_ALLOW;
            res->dest = up;
            snprintf(res->reason, sizeof res->reason, "level %s (%s) allowed to %s (%s, max %s)",
                     lvl, types, up->name, up->jurisdiction ? up->jurisdiction : "-",
                     kura_level_name(up->max_level));
        } else if (loc) {
            res->decision = KURA_DECISION_ROUTE_LOCAL;
            res->dest = loc;
            if (up)
                snprintf(res->reason, sizeof res->reason, "level %s (%s) above %s's max %s: local model %s",
                         lvl, types, up->name, kura_level_name(up->max_level), loc->name);
            else
                snprintf(res->reason, sizeof res->reason, "no upstream configured: local model %s", loc->name);
        } else {
            res->decision = KURA_DECISION_REFUSE;
            snprintf(res->reason, sizeof res->reason, "level %s (%s): no destination may receive it", lvl, types);
        }
    } else {
        const struct kura_destination *dst = kura_policy_find_destination(pol, dest_name);
        if (!dst) {
            res->decision = KURA_DECISION_REFUSE;
            snprintf(res->reason, sizeof res->reason, "unknown destination");
        } else if (dst->kind == KURA_DEST_LOCAL || res->level <= dst->max_level) {
            res->decision = KURA_DECISION_ALLOW;
            res->dest = dst;
            snprintf(res->reason, sizeof res->reason, "level %s (%s) allowed to %s (max %s)", lvl,
                     types, dst->name, kura_level_name(dst->max_level));
        } else {
            switch (dst->action) {
            case KURA_ACTION_LOCAL:
                if (loc) {
                    res->decision = KURA_DECISION_ROUTE_LOCAL;
                    res->dest = loc;
                    snprintf(res->reason, sizeof res->reason, "level %s (%s) above %s's max %s: rerouted to local model %s",
                             lvl, types, dst->name, kura_level_name(dst->max_level), loc->name);
                } else {
                    res->decision = KURA_DECISION_REFUSE;
                    snprintf(res->reason, sizeof res->reason, "level %s (%s) above %s's max %s and no local model",
                             lvl, types, dst->name, kura_level_name(dst->max_level));
                }
                break;
            case KURA_ACTION_REDACT:
            case KURA_ACTION_PSEUDONYMISE:
                res->decision = dst->action == KURA_ACTION_REDACT ? KURA_DECISION_REDACT
                                                                  : KURA_DECISION_PSEUDONYMISE;
                res->dest = dst;
                snprintf(res->reason, sizeof res->reason, "level %s (%s) above %s's max %s: %s before sending",
                         lvl, types, dst->name, kura_level_name(dst->max_level),
                         dst->action == KURA_ACTION_REDACT ? "redacted" : "pseudonymised");
                break;
            default:
                res->decision = KURA_DECISION_REFUSE;
                snprintf(res->reason, sizeof res->reason, "level %s (%s) above %s's max %s: refused", lvl,
                         types, dst->name, kura_level_name(dst->max_level));
                break;
            }
        }
    }
    if ((res->decision == KURA_DECISION_REDACT || res->decision == KURA_DECISION_PSEUDONYMISE) &&
        (pseudo || rewritten)) {
        struct kura_pseudo *ps;
        e = kura_pseudo_create(res->decision == KURA_DECISION_REDACT, &ps);
        if (e) {
            kura_err_set(eb, e, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < n && rewritten; i++) {
            struct kura_findings sub = {res->findings.v + first[i], first[i + 1] - first[i], 0};
            size_t ol;
            e = kura_pseudo_apply(ps, texts[i], lens[i], &sub, &rewritten[i], &ol);
            if (e) {
                kura_pseudo_destroy(ps);
                kura_err_set(eb, e, "pseudonymising text %zu failed", i);
                goto fail;
            }
        }
        if (pseudo)
            *pseudo = ps;
        else
            kura_pseudo_destroy(ps);
    }
    free(first);
    return KURA_OK;
fail:
    free(first);
    if (rewritten)
        for (size_t i = 0; i < n; i++) {
            free(rewritten[i]);
            rewritten[i] = NULL;
        }
    kura_policy_result_free(res);
    return e;
}
