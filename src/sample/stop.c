/* Incremental stop-string matcher over streamed text. See include/kura/sample.h. */
#include "kura/sample.h"

#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/util.h"

struct kura_stop {
    char **stops;     /* (n_stops) own copies */
    size_t *stop_len; /* (n_stops) */
    size_t n_stops;
    char *buf;        /* held-back text, then the new piece; bytes [off, len) not yet emitted */
    size_t len, off, cap;
    bool stopped;
    int matched;
};

enum kura_err kura_stop_create(const char *const *stops, size_t n_stops, struct kura_stop **out,
                               struct kura_errbuf *eb)
{
    enum kura_err err;
    struct kura_stop *st = NULL;
    *out = NULL;
    if (n_stops > KURA_STOP_MAX_STRINGS) {
        err = kura_err_set(eb, KURA_ERR_RANGE, "stop: %zu stop strings, at most %u allowed",
                           n_stops, KURA_STOP_MAX_STRINGS);
        goto fail;
    }
    if (n_stops && !stops) {
        err = kura_err_set(eb, KURA_ERR_INVALID, "stop: stop string array is NULL");
        goto fail;
    }
    st = calloc(1, sizeof *st);
    if (!st)
        goto nomem;
    st->matched = -1;
    if (n_stops) {
        st->stops = calloc(n_stops, sizeof *st->stops);
        st->stop_len = calloc(n_stops, sizeof *st->stop_len);
        if (!st->stops || !st->stop_len)
            goto nomem;
    }
    for (size_t i = 0; i < n_stops; i++) {
        if (!stops[i]) {
            err = kura_err_set(eb, KURA_ERR_INVALID, "stop: stop string %zu is NULL", i);
            goto fail;
        }
        size_t l = strnlen(stops[i], KURA_STOP_MAX_LEN + 1);
        if (l == 0) {
            err = kura_err_set(eb, KURA_ERR_INVALID, "stop: stop string %zu is empty", i);
            goto fail;
        }
        if (l > KURA_STOP_MAX_LEN) {
            err = kura_err_set(eb, KURA_ERR_RANGE, "stop: stop string %zu longer than %u bytes",
                               i, KURA_STOP_MAX_LEN);
            goto fail;
        }
        st->stops[i] = malloc(l);
        if (!st->stops[i])
            goto nomem;
        memcpy(st->stops[i], stops[i], l);
        st->stop_len[i] = l;
        st->n_stops++;
    }
    *out = st;
    return KURA_OK;
nomem:
    err = kura_err_set(eb, KURA_ERR_NOMEM, "stop: out of memory");
fail:
    kura_stop_destroy(st);
    return err;
}

void kura_stop_destroy(struct kura_stop *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_stops; i++)
        free(st->stops[i]);
    free(st->stops);
    free(st->stop_len);
    free(st->buf);
    free(st);
}

void kura_stop_reset(struct kura_stop *st)
{
    st->len = st->off = 0;
    st->stopped = false;
    st->matched = -1;
}

int kura_stop_matched(const struct kura_stop *st)
{
    return st->matched;
}

/* Start of a trailing UTF-8 sequence that is not complete yet, or len when the text ends on a
 * character boundary (or in bytes that can never complete, which are passed through). */
static size_t utf8_incomplete_tail(const unsigned char *s, size_t len)
{
    for (size_t back = 1; back <= 4 && back <= len; back++) {
        unsigned char c = s[len - back];
        if ((c & 0xc0) == 0x80)
            continue; /* continuation byte: keep looking for the lead */
        size_t need = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                    : (c & 0xf8) == 0xf0 ? 4 : 1;
        return need > back ? len - back : len;
    }
    return len;
}

enum kura_err kura_stop_push(struct kura_stop *st, const char *piece, size_t piece_len,
                             const char **emit, size_t *emit_len, bool *stopped)
{
    *emit = "";
    *emit_len = 0;
    *stopped = st->stopped;
    if (st->stopped)
        return KURA_OK;
    if (piece_len > KURA_STOP_MAX_PIECE)
        return KURA_ERR_RANGE;
    if (piece_len && !piece)
        return KURA_ERR_INVALID;

    /* drop what the previous call emitted */
    if (st->off) {
        memmove(st->buf, st->buf + st->off, st->len - st->off);
        st->len -= st->off;
        st->off = 0;
    }
    size_t need;
    if (kura_add_overflow(st->len, piece_len, &need))
        return KURA_ERR_RANGE;
    if (need > st->cap) {
        size_t nc = st->cap ? st->cap : 64;
        while (nc < need)
            nc *= 2;
        char *nb = realloc(st->buf, nc);
        if (!nb)
            return KURA_ERR_NOMEM;
        st->buf = nb;
        st->cap = nc;
    }
    size_t prev = st->len;
    if (piece_len)
        memcpy(st->buf + st->len, piece, piece_len);
    st->len = need;

    /* The held part holds no complete stop string (each end position is checked once, when its
     * byte arrives), so only ends inside the new piece can complete one. */
    const char *b = st->buf;
    for (size_t e = prev + 1; e <= st->len; e++) {
        size_t best_len = 0;
        int best = -1;
        for (size_t j = 0; j < st->n_stops; j++) {
            size_t l = st->stop_len[j];
            if (l > e || l <= best_len || b[e - 1] != st->stops[j][l - 1])
                continue;
            if (memcmp(b + e - l, st->stops[j], l) == 0) {
                best_len = l;
                best = (int)j;
            }
        }
        if (best >= 0) {
            st->stopped = true;
            st->matched = best;
            *emit = b;
            *emit_len = e - best_len;
            st->off = st->len; /* the stop string and everything after it are dropped */
            *stopped = true;
            return KURA_OK;
        }
    }

    /* hold back the longest suffix that is a proper prefix of some stop string */
    size_t hold = 0;
    for (size_t j = 0; j < st->n_stops; j++) {
        size_t l = st->stop_len[j];
        size_t maxk = l - 1 < st->len ? l - 1 : st->len;
        for (size_t k = maxk; k > hold; k--) {
            if (b[st->len - k] == st->stops[j][0] && memcmp(b + st->len - k, st->stops[j], k) == 0) {
                hold = k;
                break;
            }
        }
    }
    size_t cut = st->len - hold;
    size_t tail = utf8_incomplete_tail((const unsigned char *)b, st->len);
    if (tail < cut)
        cut = tail;
    *emit = b;
    *emit_len = cut;
    st->off = cut;
    return KURA_OK;
}

void kura_stop_flush(struct kura_stop *st, const char **emit, size_t *emit_len)
{
    *emit = "";
    *emit_len = 0;
    if (!st->stopped && st->len > st->off) {
        *emit = st->buf + st->off;
        *emit_len = st->len - st->off;
    }
    st->off = st->len; /* the view stays valid until the next call compacts the buffer */
}
