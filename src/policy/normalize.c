/* NFKC normalisation with a byte-offset map back to the original text.
 *
 * The text is cut into segments (a starter code point plus the combining marks that follow it,
 * including the half-width voicing marks that NFKC composes), each segment is normalised on its
 * own, and every output byte remembers where its segment started. Per-segment normalisation is
 * NFKC for all text kura sees in practice (composition never crosses a starter in Japanese or
 * English text) and keeps the map exact. Dashes of all widths become '-', and the katakana long
 * vowel mark between two digits too ("03ー1234ー5678" is a phone number). */
#include "kura/policy.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/limits.h"
#include "policy/policy_int.h"

#define SEG_MAX_CP 32

static bool joins_previous(int32_t cp)
{
    if (cp == 0x3099 || cp == 0x309A || cp == 0xFF9E || cp == 0xFF9F)
        return true;
    const utf8proc_property_t *pr = utf8proc_get_property(cp);
    return pr->combining_class != 0;
}

static bool is_dash(int32_t cp)
{
    return (cp >= 0x2010 && cp <= 0x2015) || cp == 0x2212 || cp == 0xFE58 || cp == 0xFE63 ||
           cp == 0xFF0D || cp == 0x2043;
}

static bool cp_is_digit(int32_t cp)
{
    return (cp >= '0' && cp <= '9') || (cp >= 0xFF10 && cp <= 0xFF19);
}

struct nbuf {
    char *s;
    uint32_t *map;
    size_t n, cap;
};

static int nbuf_reserve(struct nbuf *b, size_t extra)
{
    if (b->n + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s)
        return -1;
    b->s = s;
    uint32_t *m = realloc(b->map, cap * sizeof *m);
    if (!m)
        return -1;
    b->map = m;
    b->cap = cap;
    return 0;
}

/* Appends bytes of one segment: the first byte maps to orig, the rest are continuations. */
static int nbuf_put(struct nbuf *b, const char *s, size_t n, size_t orig)
{
    if (nbuf_reserve(b, n))
        return -1;
    for (size_t i = 0; i < n; i++) {
        b->s[b->n + i] = s[i];
        b->map[b->n + i] = (uint32_t)orig | (i ? KURA_NMAP_CONT : 0);
    }
    b->n += n;
    return 0;
}

enum kura_err kura_policy_normalize(const char *text, size_t len, char **out_norm,
                                    size_t *out_norm_len, uint32_t **out_map,
                                    struct kura_errbuf *eb)
{
    *out_norm = NULL;
    *out_map = NULL;
    *out_norm_len = 0;
    if (len > KURA_POLICY_MAX_TEXT)
        return kura_err_set(eb, KURA_ERR_RANGE, "text of %zu bytes exceeds the %u byte limit",
                            len, KURA_POLICY_MAX_TEXT);
    struct nbuf b = {0};
    if (nbuf_reserve(&b, len + 16))
        goto nomem;
    const uint8_t *t = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        uint8_t c = t[i];
        /* ASCII fast path: NFKC leaves it alone unless a combining mark follows */
        if (c < 0x80 && (i + 1 >= len || t[i + 1] < 0x80)) {
            char o = (c == 0) ? 0x1A : (char)c;
            if (nbuf_put(&b, &o, 1, i))
                goto nomem;
            i++;
            continue;
        }
        int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(t + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) { /* invalid byte: a placeholder that no rule matches */
            char o = 0x1A;
            if (nbuf_put(&b, &o, 1, i))
                goto nomem;
            i++;
            continue;
        }
        size_t seg_start = i, j = i + (size_t)k;
        int n_cp = 1;
        while (j < len && n_cp < SEG_MAX_CP) {
            int32_t cp2;
            utf8proc_ssize_t k2 = utf8proc_iterate(t + j, (utf8proc_ssize_t)(len - j), &cp2);
            if (k2 <= 0 || !joins_previous(cp2))
                break;
            j += (size_t)k2;
            n_cp++;
        }
        utf8proc_int32_t buf[4 * SEG_MAX_CP + 32];
        const utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE;
        utf8proc_ssize_t nd = utf8proc_decompose(t + seg_start, (utf8proc_ssize_t)(j - seg_start),
                                                 buf, (utf8proc_ssize_t)(sizeof buf / sizeof buf[0]),
                                                 opt);
        if (nd < 0 || nd > (utf8proc_ssize_t)(sizeof buf / sizeof buf[0])) {
            /* cannot normalise (huge expansion): copy the segment as it is */
            if (nbuf_put(&b, text + seg_start, j - seg_start, seg_start))
                goto nomem;
            i = j;
            continue;
        }
        nd = utf8proc_normalize_utf32(buf, nd, opt);
        if (nd < 0)
            nd = 0;
        char enc[sizeof buf / sizeof buf[0] * 4];
        size_t ne = 0;
        for (utf8proc_ssize_t q = 0; q < nd; q++) {
            int32_t o = buf[q];
            if (is_dash(o)) {
                o = '-';
            } else if (o == 0x30FC && b.n > 0 && b.s[b.n - 1] >= '0' && b.s[b.n - 1] <= '9' &&
                       q == nd - 1 && j < len) {
                int32_t nx;
                if (utf8proc_iterate(t + j, (utf8proc_ssize_t)(len - j), &nx) > 0 &&
                    cp_is_digit(nx))
                    o = '-';
            } else if (o == 0) {
                o = 0x1A;
            }
            ne += (size_t)utf8proc_encode_char(o, (utf8proc_uint8_t *)enc + ne);
        }
        if (nbuf_put(&b, enc, ne, seg_start))
            goto nomem;
        i = j;
    }
    if (nbuf_reserve(&b, 1))
        goto nomem;
    b.s[b.n] = 0;
    b.map[b.n] = (uint32_t)len;
    *out_norm = b.s;
    *out_map = b.map;
    *out_norm_len = b.n;
    return KURA_OK;
nomem:
    free(b.s);
    free(b.map);
    return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory normalising %zu bytes", len);
}

size_t kura_nmap_start(const uint32_t *map, size_t pos)
{
    return map[pos] & ~KURA_NMAP_CONT;
}

size_t kura_nmap_end(const uint32_t *map, size_t norm_len, size_t pos)
{
    while (pos < norm_len && (map[pos] & KURA_NMAP_CONT))
        pos++;
    return map[pos] & ~KURA_NMAP_CONT;
}
