/* JSON-mode constraint: byte-level validator and token mask (see kura/json_constraint.h). */
#include "kura/json_constraint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

enum mode {
    M_START = 0,  /* before the top-level '{' */
    M_OBJ_FIRST,  /* after '{': key or '}' */
    M_OBJ_KEY,    /* after ',' in an object: key */
    M_COLON,      /* after a key */
    M_VALUE,      /* a value is required */
    M_ARR_FIRST,  /* after '[': value or ']' */
    M_AFTER,      /* after a value: ',' or the closer */
    M_DONE,       /* top-level object closed */
    M_STR,        /* inside a string */
    M_ESC,        /* after '\' */
    M_HEX,        /* in \uXXXX, count digits read */
    M_LOW_BS,     /* after a high-surrogate escape: '\' of the low one */
    M_LOW_U,      /* ... its 'u' */
    M_NUM_MINUS,  /* '-' */
    M_NUM_ZERO,   /* leading 0 */
    M_NUM_INT,    /* integer digits */
    M_NUM_DOT,    /* '.' */
    M_NUM_FRAC,   /* fraction digits */
    M_NUM_E,      /* 'e' */
    M_NUM_ESIGN,  /* exponent sign */
    M_NUM_EXP,    /* exponent digits */
    M_LIT,        /* true / false / null, count bytes matched */
};

#define F_KEY 0x01u    /* the string is an object key */
#define F_LOW 0x02u    /* the \u escape must be a low surrogate */
#define F_LIT_SHIFT 2  /* literal kind in bits 2..3 */

static const char *const literals[3] = {"true", "false", "null"};

void kura_jsonc_init(struct kura_jsonc *st)
{
    memset(st, 0, sizeof *st);
    st->mode = M_START;
}

bool kura_jsonc_complete(const struct kura_jsonc *st)
{
    return st->mode == M_DONE;
}

static bool is_ws(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

static int hex_val(unsigned c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

static bool open_container(struct kura_jsonc *st, bool array)
{
    if (st->depth >= KURA_JSONC_MAX_DEPTH)
        return false;
    if (array)
        st->stack |= 1ull << st->depth;
    else
        st->stack &= ~(1ull << st->depth);
    st->depth++;
    st->mode = array ? M_ARR_FIRST : M_OBJ_FIRST;
    return true;
}

static bool top_is_array(const struct kura_jsonc *st)
{
    return st->depth > 0 && ((st->stack >> (st->depth - 1)) & 1u);
}

static void close_container(struct kura_jsonc *st)
{
    st->depth--;
    st->mode = st->depth == 0 ? M_DONE : M_AFTER;
}

/* The first byte of a value. */
static bool value_start(struct kura_jsonc *st, unsigned c)
{
    switch (c) {
    case '{': return open_container(st, false);
    case '[': return open_container(st, true);
    case '"':
        st->mode = M_STR;
        st->flags = 0;
        return true;
    case '-': st->mode = M_NUM_MINUS; return true;
    case '0': st->mode = M_NUM_ZERO; return true;
    case 't': case 'f': case 'n':
        st->mode = M_LIT;
        st->flags = (uint8_t)((c == 't' ? 0 : c == 'f' ? 1 : 2) << F_LIT_SHIFT);
        st->count = 1;
        return true;
    default:
        if (c >= '1' && c <= '9') {
            st->mode = M_NUM_INT;
            st->count = 1;
            return true;
        }
        return false;
    }
}

static bool string_end(struct kura_jsonc *st)
{
    st->mode = (st->flags & F_KEY) ? M_COLON : M_AFTER;
    st->flags = 0;
    return true;
}

/* A UTF-8 lead byte (>= 0x80) inside a string: sets up the continuation bytes. */
static bool utf8_lead(struct kura_jsonc *st, unsigned c)
{
    uint8_t need, lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c == 0xE0)
        need = 2, lo = 0xA0;
    else if (c == 0xED)
        need = 2, hi = 0x9F; /* no surrogates */
    else if (c >= 0xE1 && c <= 0xEF)
        need = 2;
    else if (c == 0xF0)
        need = 3, lo = 0x90;
    else if (c == 0xF4)
        need = 3, hi = 0x8F; /* nothing above U+10FFFF */
    else if (c >= 0xF1 && c <= 0xF3)
        need = 3;
    else
        return false;
    st->u8_need = need;
    st->u8_lo = lo;
    st->u8_hi = hi;
    return true;
}

static bool push_byte(struct kura_jsonc *st, unsigned c)
{
    for (;;) { /* a byte that ends a number is processed again in M_AFTER */
        switch ((enum mode)st->mode) {
        case M_START: case M_OBJ_FIRST: case M_OBJ_KEY: case M_COLON: case M_VALUE:
        case M_ARR_FIRST: case M_AFTER: case M_DONE:
            if (is_ws(c)) {
                if (st->ws >= KURA_JSONC_MAX_WS)
                    return false;
                st->ws++;
                return true;
            }
            st->ws = 0;
            switch ((enum mode)st->mode) {
            case M_START:
                return c == '{' && open_container(st, false);
            case M_OBJ_FIRST:
                if (c == '}') {
                    close_container(st);
                    return true;
                }
                /* fall through */
            case M_OBJ_KEY:
                if (c != '"')
                    return false;
                st->mode = M_STR;
                st->flags = F_KEY;
                return true;
            case M_COLON:
                if (c != ':')
                    return false;
                st->mode = M_VALUE;
                return true;
            case M_ARR_FIRST:
                if (c == ']') {
                    close_container(st);
                    return true;
                }
                /* fall through */
            case M_VALUE:
                return value_start(st, c);
            case M_AFTER:
                if (c == ',') {
                    st->mode = top_is_array(st) ? M_VALUE : M_OBJ_KEY;
                    return true;
                }
                if (c == (top_is_array(st) ? ']' : '}')) {
                    close_container(st);
                    return true;
                }
                return false;
            default: /* M_DONE */
                return false;
            }
        case M_STR:
            if (st->u8_need) {
                if (c < st->u8_lo || c > st->u8_hi)
                    return false;
                st->u8_need--;
                st->u8_lo = 0x80;
                st->u8_hi = 0xBF;
                return true;
            }
            if (c == '"')
                return string_end(st);
            if (c == '\\') {
                st->mode = M_ESC;
                return true;
            }
            if (c < 0x20)
                return false;
            return c < 0x80 || utf8_lead(st, c);
        case M_ESC:
            if (c == 'u') {
                st->mode = M_HEX;
                st->count = 0;
                st->hex = 0;
                return true;
            }
            if (!strchr("\"\\/bfnrt", (int)c) || c == 0)
                return false;
            st->mode = M_STR;
            return true;
        case M_HEX: {
            int v = hex_val(c);
            if (v < 0)
                return false;
            st->hex = (uint16_t)(st->hex * 16 + v);
            st->count++;
            bool low = st->flags & F_LOW;
            /* decide surrogate-ness as soon as two digits show it */
            if (low && st->count == 1 && st->hex != 0xD)
                return false;
            if (st->count == 2) {
                bool is_low = st->hex >= 0xDC && st->hex <= 0xDF;
                if (low != is_low)
                    return false;
            }
            if (st->count == 4) {
                if (st->hex == 0) /* \u0000: most C parsers (jansson too) refuse it */
                    return false;
                bool is_high = st->hex >= 0xD800 && st->hex <= 0xDBFF;
                st->flags &= (uint8_t)~F_LOW;
                st->mode = (!low && is_high) ? M_LOW_BS : M_STR;
            }
            return true;
        }
        case M_LOW_BS:
            if (c != '\\')
                return false;
            st->mode = M_LOW_U;
            return true;
        case M_LOW_U:
            if (c != 'u')
                return false;
            st->mode = M_HEX;
            st->count = 0;
            st->hex = 0;
            st->flags |= F_LOW;
            return true;
        case M_NUM_MINUS:
            if (c == '0') {
                st->mode = M_NUM_ZERO;
                return true;
            }
            if (c >= '1' && c <= '9') {
                st->mode = M_NUM_INT;
                st->count = 1;
                return true;
            }
            return false;
        case M_NUM_ZERO:
        case M_NUM_INT:
            if (st->mode == M_NUM_INT && is_digit(c)) {
                if (st->count >= KURA_JSONC_MAX_INT_DIGITS)
                    return false;
                st->count++;
                return true;
            }
            if (is_digit(c)) /* no leading zeros */
                return false;
            if (c == '.') {
                st->mode = M_NUM_DOT;
                return true;
            }
            if (c == 'e' || c == 'E') {
                st->mode = M_NUM_E;
                return true;
            }
            st->mode = M_AFTER;
            continue;
        case M_NUM_DOT:
            if (!is_digit(c))
                return false;
            st->mode = M_NUM_FRAC;
            st->count = 1;
            return true;
        case M_NUM_FRAC:
            if (is_digit(c)) {
                if (st->count >= KURA_JSONC_MAX_FRAC_DIGITS)
                    return false;
                st->count++;
                return true;
            }
            if (c == 'e' || c == 'E') {
                st->mode = M_NUM_E;
                return true;
            }
            st->mode = M_AFTER;
            continue;
        case M_NUM_E:
            if (c == '+' || c == '-') {
                st->mode = M_NUM_ESIGN;
                return true;
            }
            /* fall through */
        case M_NUM_ESIGN:
            if (!is_digit(c))
                return false;
            st->mode = M_NUM_EXP;
            st->count = 1;
            return true;
        case M_NUM_EXP:
            if (is_digit(c)) {
                if (st->count >= KURA_JSONC_MAX_EXP_DIGITS)
                    return false;
                st->count++;
                return true;
            }
            st->mode = M_AFTER;
            continue;
        case M_LIT: {
            const char *lit = literals[(st->flags >> F_LIT_SHIFT) & 3u];
            if ((unsigned char)lit[st->count] != c)
                return false;
            st->count++;
            if (lit[st->count] == '\0') {
                st->mode = M_AFTER;
                st->flags = 0;
            }
            return true;
        }
        }
        return false;
    }
}

bool kura_jsonc_push(struct kura_jsonc *st, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!push_byte(st, (unsigned char)s[i]))
            return false;
    return true;
}

/* Appends the shortest completion to buf (when not NULL) and returns its length. */
static size_t completion(const struct kura_jsonc *st, char *buf)
{
    char tmp[KURA_JSONC_MAX_CLOSE];
    char *o = buf ? buf : tmp;
    size_t n = 0;
#define PUT(str)                                                                                  \
    do {                                                                                          \
        const char *p_ = (str);                                                                   \
        size_t l_ = strlen(p_);                                                                   \
        if (buf)                                                                                  \
            memcpy(o + n, p_, l_);                                                                \
        n += l_;                                                                                  \
    } while (0)
    bool string_tail = false;
    switch ((enum mode)st->mode) {
    case M_START: PUT("{}"); return n;
    case M_DONE: return 0;
    case M_OBJ_FIRST: case M_ARR_FIRST: case M_AFTER:
    case M_NUM_ZERO: case M_NUM_INT: case M_NUM_FRAC: case M_NUM_EXP:
        break;
    case M_OBJ_KEY: PUT("\"\":0"); break;
    case M_COLON: PUT(":0"); break;
    case M_VALUE: case M_NUM_MINUS: case M_NUM_DOT: case M_NUM_E: case M_NUM_ESIGN:
        PUT("0");
        break;
    case M_LIT: PUT(literals[(st->flags >> F_LIT_SHIFT) & 3u] + st->count); break;
    case M_STR:
        for (int k = 0; k < st->u8_need; k++) {
            if (buf)
                o[n] = (char)(k == 0 ? st->u8_lo : 0x80);
            n++;
        }
        string_tail = true;
        break;
    case M_ESC: PUT("n"); string_tail = true; break;
    case M_LOW_BS: PUT("\\uDC00"); string_tail = true; break;
    case M_LOW_U: PUT("uDC00"); string_tail = true; break;
    case M_HEX:
        if (st->flags & F_LOW) {
            static const char *const rest[4] = {"DC00", "C00", "00", "0"};
            PUT(rest[st->count & 3]);
        } else {
            /* zeros, but never \u0000 */
            static const char *const zeros[4] = {"0000", "000", "00", "0"};
            static const char *const nonzero[4] = {"0001", "001", "01", "1"};
            PUT(st->hex == 0 ? nonzero[st->count & 3] : zeros[st->count & 3]);
            /* two or three digits may already make a high surrogate */
            bool high = (st->count == 2 && st->hex >= 0xD8 && st->hex <= 0xDB) ||
                        (st->count == 3 && st->hex >= 0xD80 && st->hex <= 0xDBF);
            if (high)
                PUT("\\uDC00");
        }
        string_tail = true;
        break;
    }
    if (string_tail) {
        PUT("\"");
        if (st->flags & F_KEY)
            PUT(":0");
    }
    for (int d = st->depth - 1; d >= 0; d--) {
        if (buf)
            o[n] = ((st->stack >> d) & 1u) ? ']' : '}';
        n++;
    }
#undef PUT
    return n;
}

size_t kura_jsonc_close_len(const struct kura_jsonc *st)
{
    return completion(st, NULL);
}

size_t kura_jsonc_close(const struct kura_jsonc *st, char *buf, size_t cap)
{
    size_t n = completion(st, NULL);
    if (n > cap)
        return 0;
    return completion(st, buf);
}

/* ---- token mask ---- */

#define T_PLAIN 1u  /* valid string content on its own: no '"', '\', control bytes; whole UTF-8 */
#define T_EOG 2u
#define T_ALL_WS 4u /* only JSON whitespace */

struct kura_jsonc_vocab {
    int32_t n_vocab;
    uint32_t *off;    /* (n_vocab + 1) offsets into text */
    char *text;
    uint8_t *flags;   /* (n_vocab) T_* */
    uint8_t *lead_ws; /* (n_vocab) leading whitespace bytes (capped at 255) */
    size_t max_len;
};

/* Whether s[0..n) is plain string content (see T_PLAIN). */
static bool plain_content(const char *s, size_t n)
{
    struct kura_jsonc st;
    memset(&st, 0, sizeof st);
    st.mode = M_STR;
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || !push_byte(&st, c))
            return false;
    }
    return st.u8_need == 0;
}

enum kura_err kura_jsonc_vocab_create(const struct kura_tok *tok, struct kura_jsonc_vocab **out,
                                      struct kura_errbuf *eb)
{
    *out = NULL;
    int32_t nv = kura_tok_n_vocab(tok);
    struct kura_jsonc_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    v->n_vocab = nv;
    v->off = malloc(((size_t)nv + 1) * sizeof *v->off);
    v->flags = calloc((size_t)nv ? (size_t)nv : 1, 1);
    v->lead_ws = calloc((size_t)nv ? (size_t)nv : 1, 1);
    size_t cap = (size_t)nv * 8 + 64, len = 0;
    v->text = malloc(cap);
    if (!v->off || !v->flags || !v->lead_ws || !v->text)
        goto nomem;
    for (int32_t t = 0; t < nv; t++) {
        char piece[KURA_MAX_TOKEN_BYTES];
        size_t pl = kura_tok_piece(tok, t, 0, piece, sizeof piece);
        if (pl > sizeof piece)
            pl = sizeof piece;
        if (len + pl > cap) {
            size_t ncap = cap * 2 + pl;
            char *nt = realloc(v->text, ncap);
            if (!nt)
                goto nomem;
            v->text = nt;
            cap = ncap;
        }
        if (len + pl > UINT32_MAX)
            goto nomem;
        v->off[t] = (uint32_t)len;
        memcpy(v->text + len, piece, pl);
        len += pl;
        if (pl > v->max_len)
            v->max_len = pl;
        if (pl && plain_content(piece, pl))
            v->flags[t] |= T_PLAIN;
        if (kura_tok_is_eog(tok, t))
            v->flags[t] |= T_EOG;
        size_t w = 0;
        while (w < pl && is_ws((unsigned char)piece[w]))
            w++;
        v->lead_ws[t] = (uint8_t)(w > 255 ? 255 : w);
        if (pl && w == pl)
            v->flags[t] |= T_ALL_WS;
    }
    v->off[nv] = (uint32_t)len;
    *out = v;
    return KURA_OK;
nomem:
    kura_jsonc_vocab_destroy(v);
    return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory for the JSON token table");
}

void kura_jsonc_vocab_destroy(struct kura_jsonc_vocab *v)
{
    if (!v)
        return;
    free(v->off);
    free(v->text);
    free(v->flags);
    free(v->lead_ws);
    free(v);
}

/* Per-state tables that reject most tokens without running the automaton. */
struct filter {
    bool first_ok[256];    /* byte accepted as the token's first byte */
    bool after_ws_ok[256]; /* structural modes: byte accepted after whitespace */
    bool structural;       /* st accepts whitespace without changing its mode */
    bool plain_same;       /* in a string with no pending UTF-8: plain tokens keep the state */
    bool plain_ok;         /* ... and the budget allows the current completion */
    size_t room;           /* bytes of completion the budget allows after the token */
};

static void filter_init(struct filter *f, const struct kura_jsonc *st, int32_t budget)
{
    for (unsigned c = 0; c < 256; c++) {
        struct kura_jsonc x = *st;
        f->first_ok[c] = push_byte(&x, c);
    }
    f->structural = st->mode <= M_DONE;
    if (f->structural) {
        struct kura_jsonc w = *st;
        w.ws = 0;
        push_byte(&w, ' ');
        for (unsigned c = 0; c < 256; c++) {
            struct kura_jsonc x = w;
            f->after_ws_ok[c] = push_byte(&x, c);
        }
    }
    f->room = budget > 1 ? (size_t)budget - 1 : 0;
    f->plain_same = st->mode == M_STR && st->u8_need == 0;
    f->plain_ok = completion(st, NULL) <= f->room;
}

/* Whether token t may follow st; with_budget: its completion must also fit in f->room. */
static bool token_ok(const struct kura_jsonc_vocab *v, const struct kura_jsonc *st,
                     const struct filter *f, int32_t t, bool with_budget)
{
    uint32_t a = v->off[t], b = v->off[t + 1];
    uint8_t fl = v->flags[t];
    if (a == b || (fl & T_EOG))
        return false;
    if (f->plain_same && (fl & T_PLAIN))
        return f->plain_ok || !with_budget; /* the state does not change */
    if (f->structural) {
        unsigned lw = v->lead_ws[t];
        if (st->ws + lw > KURA_JSONC_MAX_WS)
            return false;
        if (fl & T_ALL_WS) /* whitespace leaves the completion as it is */
            return f->plain_ok || !with_budget;
        if (lw && !f->after_ws_ok[(unsigned char)v->text[a + lw]])
            return false;
    }
    if (!f->first_ok[(unsigned char)v->text[a]])
        return false;
    struct kura_jsonc c = *st;
    for (uint32_t i = a; i < b; i++)
        if (!push_byte(&c, (unsigned char)v->text[i]))
            return false;
    return !with_budget || completion(&c, NULL) <= f->room;
}

static int32_t fill(const struct kura_jsonc_vocab *v, const struct kura_jsonc *st,
                    const struct filter *f, bool with_budget, uint8_t *allowed)
{
    int32_t n_ok = 0;
    for (int32_t t = 0; t < v->n_vocab; t++) {
        bool ok = token_ok(v, st, f, t, with_budget);
        allowed[t] = ok;
        n_ok += ok;
    }
    return n_ok;
}

int32_t kura_jsonc_mask(const struct kura_jsonc_vocab *v, const struct kura_jsonc *st,
                        int32_t budget, uint8_t *scratch, float *logits)
{
    struct filter f;
    filter_init(&f, st, budget);
    /* One byte grows the shortest completion by at most 6 (e.g. '"' after '{' adds `":0`, a
     * \u digit can add a whole low-surrogate escape): when even the longest token cannot reach
     * the budget, it cannot bind. */
    bool with_budget = completion(st, NULL) + 6 * v->max_len + 8 > f.room;
    int32_t n_ok = fill(v, st, &f, with_budget, scratch);
    if (n_ok == 0 && with_budget) /* a budget that cannot be met: stay valid at least */
        n_ok = fill(v, st, &f, false, scratch);
    if (n_ok == 0)
        return 0;
    for (int32_t t = 0; t < v->n_vocab; t++)
        if (!scratch[t])
            logits[t] = -INFINITY;
    return n_ok;
}
