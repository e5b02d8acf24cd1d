/* The streaming UTF-8 guard: complete characters only, split sequences joined, invalid bytes
 * replaced by U+FFFD (maximal subparts), incomplete tails flushed as U+FFFD. */
#include <string.h>

#include "kura/tokenizer.h"
#include "test.h"

#define FFFD "\xEF\xBF\xBD"

/* Pushes the input split at every position in `cuts` (byte counts per push), then flushes. */
static void run(const char *in, size_t in_len, const size_t *cuts, size_t n_cuts,
                const char *expect, size_t expect_len, const char *what)
{
    struct kura_utf8_stream s;
    kura_utf8_stream_init(&s);
    char out[512];
    size_t o = 0, pos = 0;
    for (size_t k = 0; k <= n_cuts; k++) {
        size_t n = k < n_cuts ? cuts[k] : in_len - pos;
        char buf[256];
        size_t w = kura_utf8_stream_push(&s, in + pos, n, buf, KURA_UTF8_STREAM_OUT_MAX(n));
        /* whatever came out must itself be complete characters */
        struct kura_utf8_stream chk;
        kura_utf8_stream_init(&chk);
        char tmp[256];
        CHECKF(kura_utf8_stream_push(&chk, buf, w, tmp, sizeof tmp) == w && chk.n_pend == 0,
               "%s: push %zu emitted a partial character", what, k);
        memcpy(out + o, buf, w);
        o += w;
        pos += n;
    }
    o += kura_utf8_stream_flush(&s, out + o, 3);
    CHECKF(o == expect_len && memcmp(out, expect, o) == 0, "%s: got %zu bytes '%.*s'", what, o,
           (int)o, out);
}

int main(void)
{
    /* every split of a mixed string gives the string back */
    const char *mixed = "a日本語🦙é!";
    size_t ml = strlen(mixed);
    for (size_t c1 = 0; c1 <= ml; c1++) {
        for (size_t c2 = 0; c1 + c2 <= ml; c2++) {
            size_t cuts[2] = {c1, c2};
            run(mixed, ml, cuts, 2, mixed, ml, "split mixed");
        }
    }
    /* byte at a time: nothing partial ever comes out */
    {
        size_t cuts[64];
        for (size_t i = 0; i < ml; i++)
            cuts[i] = 1;
        run(mixed, ml, cuts, ml - 1, mixed, ml, "byte at a time");
    }
    /* a lone continuation byte, an invalid lead, a truncated sequence followed by ASCII */
    run("a\x80" "b", 3, NULL, 0, "a" FFFD "b", 5, "lone continuation");
    run("\xC0\xAF", 2, NULL, 0, FFFD FFFD, 6, "overlong lead bytes");
    run("\xFF", 1, NULL, 0, FFFD, 3, "0xFF");
    run("\xE6\x97" "x", 3, NULL, 0, FFFD "x", 4, "truncated then ascii");
    run("\xED\xA0\x80", 3, NULL, 0, FFFD FFFD FFFD, 9, "surrogate");
    run("\xF4\x90\x80\x80", 4, NULL, 0, FFFD FFFD FFFD FFFD, 12, "above U+10FFFF");
    /* incomplete at the end: held back, then U+FFFD at flush */
    {
        struct kura_utf8_stream s;
        kura_utf8_stream_init(&s);
        char out[32];
        size_t w = kura_utf8_stream_push(&s, "ok\xF0\x9F\xA6", 5, out, sizeof out);
        CHECK(w == 2 && memcmp(out, "ok", 2) == 0);
        w = kura_utf8_stream_flush(&s, out, sizeof out);
        CHECK(w == 3 && memcmp(out, FFFD, 3) == 0);
        CHECK(kura_utf8_stream_flush(&s, out, sizeof out) == 0); /* reset */
    }
    return test_finish();
}
