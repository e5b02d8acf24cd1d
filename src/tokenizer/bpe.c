/* Merge-rank BPE ("gpt2", "gemma4"): the pre-tokenizer splits the text into words; within a
 * word, adjacent symbols are merged lowest merge rank first (leftmost on ties) via a heap, so
 * long words cost O(n log n), not O(n^2). Byte-level vocabularies see each word through the
 * GPT-2 byte alphabet; gemma4 merges raw code points and falls back to <0xNN> tokens. */
#include "tokenizer/tok_int.h"

#include <stdlib.h>
#include <string.h>

static int add_bigram(const struct kura_tok *t, const char *w, const struct sym *s, int32_t left,
                      int32_t right, struct bheap *h)
{
    if (left < 0 || right < 0)
        return KURA_OK;
    uint32_t n = s[left].n + s[right].n;
    int32_t rank = strmap_get(&t->merges, t->mpool, w + s[left].off, n, s[left].n);
    if (rank < 0)
        return KURA_OK;
    struct bigram b = {-(float)rank, left, right, n}; /* ranks < 2^24: exact in a float */
    return bheap_push(h, b);
}

static bool all_newlines(const char *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (w[i] != '\n')
            return false;
    return n > 0;
}

static int encode_word(const struct kura_tok *t, const char *w, size_t len, struct sym **sp,
                       size_t *sp_cap, struct bheap *h, struct idvec *out)
{
    int err;
    int32_t whole = -1;
    if (t->ignore_merges || (t->pre == PRE_GEMMA4 && all_newlines(w, len)))
        whole = strmap_get(&t->vocab, t->pool, w, len, 0);
    if (whole >= 0)
        return idvec_push(out, whole);
    if (len > *sp_cap) {
        struct sym *ns = realloc(*sp, len * sizeof *ns);
        if (!ns)
            return KURA_ERR_NOMEM;
        *sp = ns;
        *sp_cap = len;
    }
    struct sym *s = *sp;
    int32_t n_sym = 0;
    for (size_t off = 0; off < len;) {
        size_t n = tok_utf8_len((unsigned char)w[off]);
        if (n > len - off)
            n = len - off;
        s[n_sym].off = (uint32_t)off;
        s[n_sym].n = (uint32_t)n;
        s[n_sym].prev = n_sym - 1;
        off += n;
        s[n_sym].next = off == len ? -1 : n_sym + 1;
        n_sym++;
    }
    h->n = 0;
    for (int32_t i = 1; i < n_sym; i++)
        if ((err = add_bigram(t, w, s, i - 1, i, h)))
            return err;
    struct bigram b;
    while (bheap_pop(h, &b)) {
        struct sym *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s[r->next].prev = b.left;
        if ((err = add_bigram(t, w, s, l->prev, b.left, h)) ||
            (err = add_bigram(t, w, s, b.left, l->next, h)))
            return err;
    }
    for (int32_t i = 0; i != -1 && n_sym > 0; i = s[i].next) {
        const char *p = w + s[i].off;
        int32_t id = strmap_get(&t->vocab, t->pool, p, s[i].n, 0);
        if (id >= 0) {
            if ((err = idvec_push(out, id)))
                return err;
            continue;
        }
        for (uint32_t k = 0; k < s[i].n; k++) {
            int32_t bt = t->byte_encode ? strmap_get(&t->vocab, t->pool, p + k, 1, 0)
                                        : t->byte_tok[(unsigned char)p[k]];
            if (bt >= 0 && (err = idvec_push(out, bt)))
                return err;
        }
    }
    return KURA_OK;
}

int tok_bpe_encode(const struct kura_tok *t, const char *text, size_t len, struct idvec *out)
{
    struct kura_buf clean = {0}, word = {0};
    struct spanvec words = {0};
    struct sym *s = NULL;
    size_t s_cap = 0;
    struct bheap h = {0};
    int err;
    if (len == 0)
        return KURA_OK;
    /* invalid bytes become U+FFFD first, as the reference reads text as code points */
    if ((err = tok_utf8_sanitize(text, len, &clean)))
        goto done;
    if (t->escape_spaces) {
        struct kura_buf esc = {0};
        for (size_t i = 0; i < clean.len && !err; i++)
            err = clean.p[i] == ' ' ? kura_buf_put(&esc, "\xE2\x96\x81", 3)
                                    : kura_buf_put(&esc, clean.p + i, 1);
        kura_buf_free(&clean);
        clean = esc;
        if (err)
            goto done;
    }
    if ((err = tok_pre_split(t, clean.p, clean.len, &words)))
        goto done;
    for (size_t k = 0; k < words.n; k++) {
        const char *w = clean.p + words.v[k].off;
        size_t wl = words.v[k].len;
        if (t->byte_encode) {
            kura_buf_clear(&word);
            for (size_t i = 0; i < wl; i++) {
                char u[4];
                size_t un = tok_byte_to_unicode((unsigned char)w[i], u);
                if ((err = kura_buf_put(&word, u, un)))
                    goto done;
            }
            w = word.p;
            wl = word.len;
        }
        if ((err = encode_word(t, w, wl, &s, &s_cap, &h, out)))
            goto done;
    }
done:
    kura_buf_free(&clean);
    kura_buf_free(&word);
    free(words.v);
    free(s);
    free(h.v);
    return err;
}
