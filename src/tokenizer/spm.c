/* SentencePiece-style BPE ("llama"): start from characters, repeatedly merge the adjacent pair
 * whose concatenation is the vocabulary entry with the highest score (leftmost on ties);
 * symbols that are not tokens fall back to <0xNN> byte tokens. The caller has already escaped
 * spaces to U+2581 and added the space prefix. */
#include "tokenizer/tok_int.h"

#include <stdlib.h>

static int try_bigram(const struct kura_tok *t, const char *text, const struct sym *s,
                      int32_t left, int32_t right, struct bheap *h)
{
    if (left < 0 || right < 0)
        return KURA_OK;
    uint32_t n = s[left].n + s[right].n;
    int32_t id = strmap_get(&t->vocab, t->pool, text + s[left].off, n, 0);
    if (id < 0)
        return KURA_OK;
    struct bigram b = {t->tok[id].score, left, right, n};
    return bheap_push(h, b);
}

int tok_spm_encode(const struct kura_tok *t, const char *text, size_t len, struct idvec *out)
{
    struct sym *s = NULL;
    struct bheap h = {0};
    int err = KURA_OK;
    if (len == 0)
        return KURA_OK;
    s = malloc(len * sizeof *s);
    if (!s)
        return KURA_ERR_NOMEM;
    int32_t n_sym = 0;
    for (size_t off = 0; off < len;) {
        size_t n = tok_utf8_len((unsigned char)text[off]);
        if (n > len - off)
            n = len - off;
        s[n_sym].off = (uint32_t)off;
        s[n_sym].n = (uint32_t)n;
        s[n_sym].prev = n_sym - 1;
        off += n;
        s[n_sym].next = off == len ? -1 : n_sym + 1;
        n_sym++;
    }
    for (int32_t i = 1; i < n_sym; i++)
        if ((err = try_bigram(t, text, s, i - 1, i, &h)))
            goto done;
    struct bigram b;
    while (bheap_pop(&h, &b)) {
        struct sym *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; /* stale: one side changed since the pair was queued */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s[r->next].prev = b.left;
        if ((err = try_bigram(t, text, s, l->prev, b.left, &h)) ||
            (err = try_bigram(t, text, s, b.left, l->next, &h)))
            goto done;
    }
    for (int32_t i = 0; i != -1; i = s[i].next) {
        int32_t id = strmap_get(&t->vocab, t->pool, text + s[i].off, s[i].n, 0);
        if (id >= 0) {
            if ((err = idvec_push(out, id)))
                goto done;
            continue;
        }
        for (uint32_t k = 0; k < s[i].n; k++) {
            int32_t bt = t->byte_tok[(unsigned char)text[s[i].off + k]];
            if (bt < 0)
                bt = t->unk;
            if (bt >= 0 && (err = idvec_push(out, bt)))
                goto done;
        }
    }
done:
    free(s);
    free(h.v);
    return err;
}
