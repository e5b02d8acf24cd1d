/* WordPiece ("bert"): lower-case, reduce every character to the first code point of its
 * canonical decomposition (which strips accents), drop controls, split on whitespace and
 * around punctuation and CJK ideographs; then greedy longest-match per word with a "▁" word
 * prefix, the whole word becoming [UNK] when it cannot be covered. */
#include "tokenizer/tok_int.h"

#include <stdlib.h>
#include <utf8proc.h>

static bool is_ws(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static bool is_chinese(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static uint32_t nfd_first(uint32_t c)
{
    utf8proc_int32_t buf[8];
    int bound = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)c, buf, 8, UTF8PROC_DECOMPOSE,
                                                 &bound);
    return n >= 1 ? (uint32_t)buf[0] : c;
}

/* Words as spans into norm (NUL-free buffer). */
static int preprocess(const char *text, size_t len, struct kura_buf *norm, struct spanvec *words)
{
    int err;
    size_t start = 0;
    bool open = false; /* a word is being built */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = tok_utf8_decode((const unsigned char *)text + i, len - i, &cp);
        if (n == 0) {
            cp = 0xFFFD;
            n = 1;
        }
        i += n;
        cp = nfd_first(cp);
        if (is_ws(cp)) {
            if (open && norm->len > start && (err = spanvec_push(words, start, norm->len - start)))
                return err;
            open = false;
            continue;
        }
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
        bool control = cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
                       cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CS;
        if (cp == 0 || cp == 0xFFFD || control)
            continue;
        bool punct = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
        bool sym = cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO;
        char u[4];
        size_t un = tok_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), u);
        if (punct || (cp < 0x7F && sym) || is_chinese(cp)) {
            if (open && norm->len > start && (err = spanvec_push(words, start, norm->len - start)))
                return err;
            start = norm->len;
            if ((err = kura_buf_put(norm, u, un)) || (err = spanvec_push(words, start, un)))
                return err;
            open = false;
            continue;
        }
        if (!open) {
            start = norm->len;
            open = true;
        }
        if ((err = kura_buf_put(norm, u, un)))
            return err;
    }
    if (open && norm->len > start && (err = spanvec_push(words, start, norm->len - start)))
        return err;
    return KURA_OK;
}

int tok_wpm_encode(const struct kura_tok *t, const char *text, size_t len, struct idvec *out)
{
    struct kura_buf norm = {0}, word = {0};
    struct spanvec words = {0};
    int err;
    if ((err = preprocess(text, len, &norm, &words)))
        goto done;
    for (size_t k = 0; k < words.n; k++) {
        kura_buf_clear(&word);
        if ((err = kura_buf_put(&word, "\xE2\x96\x81", 3)) ||
            (err = kura_buf_put(&word, norm.p + words.v[k].off, words.v[k].len)))
            goto done;
        size_t n = word.len, mark = out->n;
        for (size_t i = 0; i < n; i++) {
            bool match = false;
            size_t jmax = i + t->max_token_len + 1 < n ? i + t->max_token_len + 1 : n;
            for (size_t j = jmax; j > i; j--) {
                int32_t id = strmap_get(&t->vocab, t->pool, word.p + i, j - i, 0);
                if (id >= 0) {
                    if ((err = idvec_push(out, id)))
                        goto done;
                    match = true;
                    i = j - 1;
                    break;
                }
            }
            if (!match) {
                out->n = mark; /* discard the word */
                break;
            }
        }
        if (out->n == mark && t->unk >= 0 && (err = idvec_push(out, t->unk)))
            goto done;
    }
done:
    kura_buf_free(&norm);
    kura_buf_free(&word);
    free(words.v);
    return err;
}
