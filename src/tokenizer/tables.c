/* Hash tables, tries and growable vectors used by the tokenizers. Caps: every size here is
 * bounded by the vocabulary caps in core/limits.h or by the prompt cap. */
#include "tokenizer/tok_int.h"

#include <stdlib.h>
#include <string.h>

uint32_t tok_hash(const char *s, size_t len, uint32_t tag)
{
    /* FNV-1a, 64-bit, folded: fast enough for short token strings and well distributed. */
    uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)tag * 0x9e3779b97f4a7c15ull);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 29;
    return (uint32_t)(h ^ (h >> 32));
}

int strmap_init(struct strmap *m, size_t n_keys)
{
    size_t cap = 16;
    while (cap < n_keys * 2)
        cap <<= 1;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots)
        return KURA_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++)
        m->slots[i].val = -1;
    m->mask = (uint32_t)(cap - 1);
    return KURA_OK;
}

void strmap_deinit(struct strmap *m)
{
    free(m->slots);
    m->slots = NULL;
}

void strmap_put(struct strmap *m, const char *pool, uint32_t off, uint32_t len, uint32_t tag,
                int32_t val, bool keep_first)
{
    uint32_t h = tok_hash(pool + off, len, tag);
    for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
        struct strmap_slot *s = &m->slots[i];
        if (s->val < 0) {
            s->hash = h;
            s->tag = tag;
            s->off = off;
            s->len = len;
            s->val = val;
            return;
        }
        if (s->hash == h && s->tag == tag && s->len == len &&
            memcmp(pool + s->off, pool + off, len) == 0) {
            if (!keep_first)
                s->val = val;
            return;
        }
    }
}

int32_t strmap_get(const struct strmap *m, const char *pool, const char *key, size_t len,
                   uint32_t tag)
{
    if (!m->slots)
        return -1;
    uint32_t h = tok_hash(key, len, tag);
    for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const struct strmap_slot *s = &m->slots[i];
        if (s->val < 0)
            return -1;
        if (s->hash == h && s->tag == tag && s->len == len &&
            memcmp(pool + s->off, key, len) == 0)
            return s->val;
    }
}

/* ---- trie ---- */

int trie_init(struct trie *tr)
{
    memset(tr, 0, sizeof *tr);
    tr->cap_nodes = 1024;
    tr->value = malloc(tr->cap_nodes * sizeof *tr->value);
    tr->emask = 1023;
    tr->ekey = calloc(tr->emask + 1, sizeof *tr->ekey);
    tr->echild = malloc((tr->emask + 1) * sizeof *tr->echild);
    if (!tr->value || !tr->ekey || !tr->echild) {
        trie_deinit(tr);
        return KURA_ERR_NOMEM;
    }
    tr->n_nodes = 1;
    tr->value[0] = -1;
    return KURA_OK;
}

void trie_deinit(struct trie *tr)
{
    free(tr->value);
    free(tr->ekey);
    free(tr->echild);
    memset(tr, 0, sizeof *tr);
}

static uint32_t mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

int64_t trie_child(const struct trie *tr, uint32_t node, unsigned char c)
{
    if (!tr->ekey)
        return -1;
    uint64_t key = (((uint64_t)node << 8) | c) + 1;
    for (uint32_t i = mix64(key) & tr->emask;; i = (i + 1) & tr->emask) {
        if (tr->ekey[i] == 0)
            return -1;
        if (tr->ekey[i] == key)
            return tr->echild[i];
    }
}

static int trie_grow_edges(struct trie *tr)
{
    uint32_t ncap = (tr->emask + 1) * 2;
    uint64_t *nk = calloc(ncap, sizeof *nk);
    uint32_t *nc = malloc(ncap * sizeof *nc);
    if (!nk || !nc) {
        free(nk);
        free(nc);
        return KURA_ERR_NOMEM;
    }
    for (uint32_t i = 0; i <= tr->emask; i++) {
        if (!tr->ekey[i])
            continue;
        uint32_t j = mix64(tr->ekey[i]) & (ncap - 1);
        while (nk[j])
            j = (j + 1) & (ncap - 1);
        nk[j] = tr->ekey[i];
        nc[j] = tr->echild[i];
    }
    free(tr->ekey);
    free(tr->echild);
    tr->ekey = nk;
    tr->echild = nc;
    tr->emask = ncap - 1;
    return KURA_OK;
}

int trie_insert(struct trie *tr, const char *s, size_t len, int32_t value)
{
    uint32_t node = 0;
    for (size_t k = 0; k < len; k++) {
        int64_t ch = trie_child(tr, node, (unsigned char)s[k]);
        if (ch < 0) {
            if ((tr->n_edges + 1) * 2 > tr->emask + 1 && trie_grow_edges(tr))
                return KURA_ERR_NOMEM;
            if (tr->n_nodes == tr->cap_nodes) {
                if (tr->cap_nodes > (1u << 30))
                    return KURA_ERR_RANGE;
                int32_t *nv = realloc(tr->value, (size_t)tr->cap_nodes * 2 * sizeof *nv);
                if (!nv)
                    return KURA_ERR_NOMEM;
                tr->value = nv;
                tr->cap_nodes *= 2;
            }
            ch = tr->n_nodes++;
            tr->value[ch] = -1;
            uint64_t key = (((uint64_t)node << 8) | (unsigned char)s[k]) + 1;
            uint32_t i = mix64(key) & tr->emask;
            while (tr->ekey[i])
                i = (i + 1) & tr->emask;
            tr->ekey[i] = key;
            tr->echild[i] = (uint32_t)ch;
            tr->n_edges++;
        }
        node = (uint32_t)ch;
    }
    tr->value[node] = value;
    return KURA_OK;
}

/* ---- vectors ---- */

int idvec_push(struct idvec *iv, int32_t id)
{
    if (iv->n == iv->cap) {
        if (iv->cap >= TOK_MAX_IDS)
            return KURA_ERR_RANGE;
        size_t ncap = iv->cap ? iv->cap * 2 : 64;
        int32_t *nv = realloc(iv->v, ncap * sizeof *nv);
        if (!nv)
            return KURA_ERR_NOMEM;
        iv->v = nv;
        iv->cap = ncap;
    }
    iv->v[iv->n++] = id;
    return KURA_OK;
}

int spanvec_push(struct spanvec *sv, size_t off, size_t len)
{
    if (sv->n == sv->cap) {
        if (sv->cap >= TOK_MAX_IDS)
            return KURA_ERR_RANGE;
        size_t ncap = sv->cap ? sv->cap * 2 : 64;
        struct span *nv = realloc(sv->v, ncap * sizeof *nv);
        if (!nv)
            return KURA_ERR_NOMEM;
        sv->v = nv;
        sv->cap = ncap;
    }
    sv->v[sv->n].off = off;
    sv->v[sv->n].len = len;
    sv->n++;
    return KURA_OK;
}

/* ---- bigram heap ---- */

static bool bigram_before(const struct bigram *a, const struct bigram *b)
{
    return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

int bheap_push(struct bheap *h, struct bigram b)
{
    if (h->n == h->cap) {
        if (h->cap >= TOK_MAX_IDS)
            return KURA_ERR_RANGE;
        size_t ncap = h->cap ? h->cap * 2 : 64;
        struct bigram *nv = realloc(h->v, ncap * sizeof *nv);
        if (!nv)
            return KURA_ERR_NOMEM;
        h->v = nv;
        h->cap = ncap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return KURA_OK;
}

bool bheap_pop(struct bheap *h, struct bigram *out)
{
    if (h->n == 0)
        return false;
    *out = h->v[0];
    struct bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!bigram_before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n)
        h->v[i] = last;
    return true;
}
