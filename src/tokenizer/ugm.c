/* Unigram ("t5"): normalize with SentencePiece's precompiled charsmap (a double-array trie of
 * byte prefixes to replacement strings) and the whitespace rules from metadata, then find the
 * highest-scoring segmentation with a Viterbi pass over a byte trie of the vocabulary;
 * characters no token covers become [UNK] (consecutive ones merged). */
#include "tokenizer/tok_int.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#define UGM_UNK_PENALTY 10.0

int tok_ugm_init(struct kura_tok *t, const unsigned char *cm, size_t cm_len,
                 struct kura_errbuf *eb)
{
    if (cm && cm_len > 0) {
        uint32_t blob;
        if (cm_len < 4)
            return kura_err_set(eb, KURA_ERR_FORMAT, "tokenizer.ggml.precompiled_charsmap: "
                                "%zu bytes, too short", cm_len);
        memcpy(&blob, cm, 4);
        if ((size_t)blob + 4 >= cm_len || blob % 4)
            return kura_err_set(eb, KURA_ERR_FORMAT, "tokenizer.ggml.precompiled_charsmap: "
                                "trie of %u bytes does not fit in %zu", blob, cm_len);
        /* copy into 4-aligned storage so the trie can be read as uint32 */
        t->charsmap = malloc(cm_len + 4);
        if (!t->charsmap)
            return kura_err_set(eb, KURA_ERR_NOMEM, "charsmap: out of memory");
        memcpy(t->charsmap, cm, cm_len);
        t->charsmap[cm_len] = 0;
        t->charsmap_len = cm_len;
        t->xcda = (const uint32_t *)(void *)(t->charsmap + 4);
        t->xcda_n = blob / 4;
        t->repl = (const char *)t->charsmap + 4 + blob;
        t->repl_len = cm_len - 4 - blob;
    }
    if (trie_init(&t->ugm_tokens) || trie_init(&t->ugm_user))
        return kura_err_set(eb, KURA_ERR_NOMEM, "tokenizer: out of memory");
    float mn = FLT_MAX;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const struct tok_entry *e = &t->tok[id];
        /* original types: EOG detection may have re-typed some tokens, as in the reference */
        if ((e->attr & TA_NORMAL) && e->score < mn)
            mn = e->score;
        if (e->attr & (TA_NORMAL | TA_USER | TA_UNUSED)) {
            if (trie_insert(&t->ugm_tokens, t->pool + e->off, e->len, id))
                return kura_err_set(eb, KURA_ERR_NOMEM, "tokenizer: out of memory");
        }
        if ((e->attr & TA_USER) && trie_insert(&t->ugm_user, t->pool + e->off, e->len, id))
            return kura_err_set(eb, KURA_ERR_NOMEM, "tokenizer: out of memory");
    }
    if (mn == FLT_MAX)
        mn = 0;
    t->ugm_unk_score = (double)mn - UGM_UNK_PENALTY;
    return KURA_OK;
}

/* Longest user-defined token at s (0 when none). */
static size_t user_prefix(const struct kura_tok *t, const char *s, size_t n)
{
    size_t best = 0;
    uint32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t c = trie_child(&t->ugm_user, node, (unsigned char)s[i]);
        if (c < 0)
            break;
        node = (uint32_t)c;
        if (t->ugm_user.value[node] >= 0)
            best = i + 1;
    }
    return best;
}

/* XCDA node fields (SentencePiece/Darts-clone layout). */
static uint32_t xb(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static uint32_t xl(uint32_t u) { return u & ((1u << 31) | 0xffu); }
static bool xleaf(uint32_t u) { return (u >> 8) & 1u; }
static uint32_t xv(uint32_t u) { return u & ((1u << 31) - 1); }

/* Normalizes the prefix at in[off]: sets the replacement and its length, returns bytes
 * consumed. */
static size_t norm_prefix(const struct kura_tok *t, const char *in, size_t len, size_t off,
                          const char **rep, size_t *rep_len)
{
    size_t u = user_prefix(t, in + off, len - off);
    if (u > 0) {
        *rep = in + off;
        *rep_len = u;
        return u;
    }
    size_t best_len = 0, best_off = 0;
    if (t->xcda_n > 0) {
        uint32_t node = xb(t->xcda[0]);
        for (size_t p = off; p < len; p++) {
            unsigned char c = (unsigned char)in[p];
            if (c == 0)
                break;
            node ^= c;
            if (node >= t->xcda_n || xl(t->xcda[node]) != c)
                break;
            bool leaf = xleaf(t->xcda[node]);
            node ^= xb(t->xcda[node]);
            if (node >= t->xcda_n)
                break;
            if (leaf) {
                best_len = p - off + 1;
                best_off = xv(t->xcda[node]);
            }
        }
    }
    if (best_len > 0 && best_off < t->repl_len) {
        *rep = t->repl + best_off;
        *rep_len = strnlen(*rep, t->repl_len - best_off);
        return best_len;
    }
    uint32_t cp;
    size_t n = tok_utf8_decode((const unsigned char *)in + off, len - off, &cp);
    if (n == 0) {
        *rep = "\xEF\xBF\xBD";
        *rep_len = 3;
        return 1;
    }
    *rep = in + off;
    *rep_len = n;
    return n;
}

static int normalize(const struct kura_tok *t, const char *in, size_t len, struct kura_buf *out)
{
    static const char space[] = "\xE2\x96\x81"; /* escape_whitespaces is on for these models */
    bool prepend = t->add_space_prefix, merge = t->remove_extra_ws;
    bool prepended = false, in_word = false;
    int err;
    for (size_t off = 0; off < len;) {
        const char *rep;
        size_t rl;
        off += norm_prefix(t, in, len, off, &rep, &rl);
        for (size_t i = 0; i < rl; i++) {
            if (rep[i] != ' ') {
                if (!in_word) {
                    in_word = true;
                    if ((prepend && !prepended) || merge) {
                        if ((err = kura_buf_put(out, space, 3)))
                            return err;
                        prepended = true;
                    }
                }
                if ((err = kura_buf_put(out, rep + i, 1)))
                    return err;
            } else {
                in_word = false;
                if (!merge && (err = kura_buf_put(out, space, 3)))
                    return err;
            }
        }
    }
    return KURA_OK;
}

struct best {
    int32_t id;
    size_t from;
    double score;
};

int tok_ugm_encode(const struct kura_tok *t, const char *text, size_t len, struct idvec *out)
{
    struct kura_buf nb = {0};
    struct best *b = NULL;
    int err;
    if ((err = normalize(t, text, len, &nb)))
        goto done;
    size_t n = nb.len;
    if (n == 0)
        goto done;
    const char *s = nb.p;
    b = malloc((n + 1) * sizeof *b);
    if (!b) {
        err = KURA_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i <= n; i++) {
        b[i].id = t->unk;
        b[i].from = 0;
        b[i].score = -DBL_MAX;
    }
    b[0].score = 0;
    for (size_t off = 0; off < n;) {
        size_t cl = tok_utf8_len((unsigned char)s[off]);
        if (cl > n - off)
            cl = n - off;
        bool single = false;
        double base = b[off].score;
        uint32_t node = 0;
        for (size_t p = off; p < n; p++) {
            int64_t c = trie_child(&t->ugm_tokens, node, (unsigned char)s[p]);
            if (c < 0)
                break;
            node = (uint32_t)c;
            int32_t id = t->ugm_tokens.value[node];
            if (id < 0)
                continue;
            size_t end = p + 1;
            if (end - off == cl)
                single = true;
            double sc = base + ((t->tok[id].attr & TA_USER) ? 0.0 : (double)t->tok[id].score);
            if (sc > b[end].score) {
                b[end].id = id;
                b[end].from = off;
                b[end].score = sc;
            }
        }
        if (!single) {
            double sc = base + t->ugm_unk_score;
            if (sc > b[off + cl].score) {
                b[off + cl].id = t->unk;
                b[off + cl].from = off;
                b[off + cl].score = sc;
            }
        }
        off += cl;
    }
    /* backtrack, merging runs of unknowns */
    size_t mark = out->n;
    bool prev_unk = false;
    for (size_t pos = n;;) {
        bool unk = b[pos].id == t->unk;
        if (!(prev_unk && unk) && b[pos].id >= 0 && (err = idvec_push(out, b[pos].id)))
            goto done;
        if (b[pos].from == 0)
            break;
        prev_unk = unk;
        pos = b[pos].from;
    }
    for (size_t i = mark, j = out->n - 1; i < j; i++, j--) {
        int32_t tmp = out->v[i];
        out->v[i] = out->v[j];
        out->v[j] = tmp;
    }
done:
    kura_buf_free(&nb);
    free(b);
    return err;
}
