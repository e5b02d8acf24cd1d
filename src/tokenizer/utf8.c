/* UTF-8 helpers, the byte-level BPE alphabet and the streaming UTF-8 guard. */
#include "tokenizer/tok_int.h"

#include <string.h>

size_t tok_utf8_len(unsigned char lead)
{
    /* Length from the high bits alone, as the reference splits text into characters. */
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

/* Valid range of the second byte for a lead byte (Unicode Table 3-7); lo > hi: invalid lead. */
static void second_range(unsigned char lead, unsigned char *lo, unsigned char *hi, size_t *n)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        *n = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        *n = 3;
        if (lead == 0xE0)
            *lo = 0xA0;
        if (lead == 0xED)
            *hi = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        *n = 4;
        if (lead == 0xF0)
            *lo = 0x90;
        if (lead == 0xF4)
            *hi = 0x8F;
    } else {
        *n = 0;
    }
}

size_t tok_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    if (len == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    unsigned char lo, hi;
    size_t n;
    second_range(s[0], &lo, &hi, &n);
    if (n == 0 || len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    uint32_t c = s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++)
        c = (c << 6) | (s[i] & 0x3F);
    *cp = c;
    return n;
}

size_t tok_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int tok_utf8_sanitize(const char *s, size_t len, struct kura_buf *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    int err;
    while (i < len) {
        uint32_t cp;
        size_t n = tok_utf8_decode(u + i, len - i, &cp);
        if (n) {
            i += n;
            continue;
        }
        /* flush the valid run, then one U+FFFD for this byte (as the reference does) */
        if ((err = kura_buf_put(out, s + run, i - run)))
            return err;
        if ((err = kura_buf_put(out, "\xEF\xBF\xBD", 3)))
            return err;
        i++;
        run = i;
    }
    return kura_buf_put(out, s + run, len - run);
}

/* ---- byte-level BPE alphabet (GPT-2): printable bytes map to themselves, the others to
 * U+0100 + n in byte order. ---- */

static bool byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static uint32_t byte_cp(unsigned char b)
{
    if (byte_is_printable(b))
        return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!byte_is_printable(x))
            n++;
    return 0x100 + n;
}

size_t tok_byte_to_unicode(unsigned char b, char out[4])
{
    return tok_utf8_encode(byte_cp(b), out);
}

int tok_unicode_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    uint32_t n = cp - 0x100;
    for (unsigned x = 0; x < 256; x++) {
        if (!byte_is_printable(x)) {
            if (n == 0)
                return (int)x;
            n--;
        }
    }
    return -1;
}

/* ---- streaming guard ---- */

void kura_utf8_stream_init(struct kura_utf8_stream *s)
{
    memset(s, 0, sizeof *s);
}

static size_t put_fffd(char *out, size_t o, size_t cap)
{
    if (o + 3 <= cap) {
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        return o + 3;
    }
    return o;
}

size_t kura_utf8_stream_push(struct kura_utf8_stream *s, const char *in, size_t in_len,
                             char *out, size_t out_cap)
{
    size_t o = 0;
    for (size_t i = 0; i < in_len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (s->n_pend) {
            /* continuation expected: check the position-specific range */
            unsigned char lo = 0x80, hi = 0xBF;
            if (s->n_pend == 1) {
                size_t n;
                second_range(s->pend[0], &lo, &hi, &n);
            }
            if (c >= lo && c <= hi) {
                s->pend[s->n_pend++] = c;
                if (s->n_pend == s->need) {
                    if (o + s->need <= out_cap) {
                        memcpy(out + o, s->pend, s->need);
                        o += s->need;
                    }
                    s->n_pend = 0;
                }
                continue;
            }
            /* clearly invalid: the pending prefix becomes one U+FFFD, c starts afresh */
            o = put_fffd(out, o, out_cap);
            s->n_pend = 0;
        }
        if (c < 0x80) {
            if (o < out_cap)
                out[o++] = (char)c;
            continue;
        }
        unsigned char lo, hi;
        size_t n;
        second_range(c, &lo, &hi, &n);
        if (n == 0) {
            o = put_fffd(out, o, out_cap);
            continue;
        }
        s->pend[0] = c;
        s->n_pend = 1;
        s->need = (uint8_t)n;
    }
    return o;
}

size_t kura_utf8_stream_flush(struct kura_utf8_stream *s, char *out, size_t out_cap)
{
    size_t o = 0;
    if (s->n_pend)
        o = put_fffd(out, 0, out_cap);
    s->n_pend = 0;
    return o;
}
