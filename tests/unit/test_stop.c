/* Incremental stop-string matcher. */
#include "kura/sample.h"

#include <stdint.h>

#include "test.h"

static uint32_t lcg_state = 777;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

static struct kura_stop *mk(const char *const *stops, size_t n)
{
    struct kura_stop *st = NULL;
    struct kura_errbuf eb = {0};
    CHECKF(kura_stop_create(stops, n, &st, &eb) == KURA_OK, "%s", eb.msg);
    return st;
}

/* Pushes one piece; checks the emitted text and the stop flag. */
#define PUSH(st, piece, want, want_stop)                                                        \
    do {                                                                                       \
        const char *e_;                                                                        \
        size_t el_;                                                                            \
        bool s_;                                                                               \
        CHECK(kura_stop_push(st, piece, strlen(piece), &e_, &el_, &s_) == KURA_OK);            \
        CHECKF(el_ == strlen(want) && memcmp(e_, want, el_) == 0, "push '%s': got '%.*s' want '%s'", \
               piece, (int)el_, e_, want);                                                     \
        CHECKF(s_ == (want_stop), "push '%s': stopped=%d", piece, (int)s_);                    \
    } while (0)

static void test_basic(void)
{
    const char *stops[] = {"</s>"};
    struct kura_stop *st = mk(stops, 1);
    PUSH(st, "Hello", "Hello", false);
    PUSH(st, " wor", " wor", false);
    PUSH(st, "ld<", "ld", false);
    PUSH(st, "/s", "", false);
    PUSH(st, ">tail", "", true);
    CHECK(kura_stop_matched(st) == 0);
    PUSH(st, "more", "", true); /* nothing after a stop */
    const char *e;
    size_t el;
    kura_stop_flush(st, &e, &el);
    CHECK(el == 0);

    /* a false start is released as soon as it cannot match any more */
    kura_stop_reset(st);
    CHECK(kura_stop_matched(st) == -1);
    PUSH(st, "a<", "a", false);
    PUSH(st, "/x", "</x", false);
    PUSH(st, "</", "", false);
    PUSH(st, "</", "</", false); /* first "</" can no longer start "</s>" */
    kura_stop_flush(st, &e, &el);
    CHECK(el == 2 && memcmp(e, "</", 2) == 0);
    kura_stop_destroy(st);

    /* the stop string inside one piece, text before it emitted */
    st = mk(stops, 1);
    PUSH(st, "abc</s>def", "abc", true);
    kura_stop_destroy(st);
    kura_stop_destroy(NULL);
}

static void test_no_stops(void)
{
    struct kura_stop *st = mk(NULL, 0);
    PUSH(st, "anything <", "anything <", false);
    PUSH(st, "", "", false);
    kura_stop_destroy(st);
}

static void test_overlap(void)
{
    /* self-overlapping stop: "abcabd" in "abcabcabd" starts at 3 */
    const char *s1[] = {"abcabd"};
    struct kura_stop *st = mk(s1, 1);
    PUSH(st, "a", "", false);
    PUSH(st, "b", "", false);
    PUSH(st, "c", "", false);
    PUSH(st, "a", "", false);
    PUSH(st, "b", "", false);
    PUSH(st, "c", "abc", false); /* "abcab"+"c": only "abc" can still start the stop */
    PUSH(st, "a", "", false);
    PUSH(st, "b", "", false);
    PUSH(st, "d", "", true);
    kura_stop_destroy(st);

    /* "aab" in "aaab": holding must keep the longest candidate suffix */
    const char *s2[] = {"aab"};
    st = mk(s2, 1);
    PUSH(st, "a", "", false);
    PUSH(st, "a", "", false);
    PUSH(st, "a", "a", false);
    PUSH(st, "b", "", true);
    kura_stop_destroy(st);

    /* one stop a prefix of another: the shorter completes first and wins */
    const char *s3[] = {"abc", "ab"};
    st = mk(s3, 2);
    PUSH(st, "xa", "x", false);
    PUSH(st, "bc", "", true);
    CHECK(kura_stop_matched(st) == 1);
    kura_stop_destroy(st);

    /* a stop that ends earlier wins over one that started earlier */
    const char *s4[] = {"abcd", "bc"};
    st = mk(s4, 2);
    PUSH(st, "abcd", "a", true);
    CHECK(kura_stop_matched(st) == 1);
    kura_stop_destroy(st);

    /* same end: the longer one (earlier start) is reported and cut */
    const char *s5[] = {"c", "abc"};
    st = mk(s5, 2);
    PUSH(st, "xab", "x", false);
    PUSH(st, "c", "", true);
    CHECK(kura_stop_matched(st) == 1);
    kura_stop_destroy(st);
}

static void test_utf8(void)
{
    const char *s1[] = {"\xc3\xa9!"}; /* "é!" */
    struct kura_stop *st = mk(s1, 1);
    PUSH(st, "caf", "caf", false);
    PUSH(st, "\xc3\xa9", "", false);
    PUSH(st, "\xc3\xa9", "\xc3\xa9", false);
    PUSH(st, "!x", "", true);
    kura_stop_destroy(st);

    const char *s2[] = {"日本語"};
    st = mk(s2, 1);
    PUSH(st, "日", "", false);
    PUSH(st, "本", "", false);
    PUSH(st, "人", "日本人", false);
    PUSH(st, "日本語です", "", true);
    kura_stop_destroy(st);

    /* a piece ending inside a character: nothing of it is emitted until it is complete */
    st = mk(NULL, 0);
    PUSH(st, "a\xe6\x97", "a", false);
    PUSH(st, "\xa5z", "\xe6\x97\xa5z", false);
    PUSH(st, "\xf0\x9f", "", false);
    PUSH(st, "\x98", "", false);
    PUSH(st, "\x80", "\xf0\x9f\x98\x80", false);
    /* bytes that can never complete pass through rather than stall the stream */
    PUSH(st, "\x80\x80\x80\x80\x80", "\x80\x80\x80\x80\x80", false);
    kura_stop_destroy(st);
}

/* Reference: the whole text at once, by the documented rule. */
static size_t reference(const char *text, const char *const *stops, size_t n, bool *stopped)
{
    size_t len = strlen(text);
    for (size_t e = 1; e <= len; e++) {
        size_t best = 0;
        for (size_t j = 0; j < n; j++) {
            size_t l = strlen(stops[j]);
            if (l <= e && l > best && memcmp(text + e - l, stops[j], l) == 0)
                best = l;
        }
        if (best) {
            *stopped = true;
            return e - best;
        }
    }
    *stopped = false;
    return len;
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (k == 0 || i + k > n)
            return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
        i += k;
    }
    return true;
}

/* Any split of the text gives the same output as the reference, and every emitted chunk is
 * whole UTF-8 even when the split cuts through characters. */
static void test_split_independence(void)
{
    const char *alphabet[] = {"a", "b", "<", "/", "é", "日", "\xf0\x9f\x98\x80"};
    const char *stops[] = {"ab<", "<b", "aaa", "é日", "日日\xf0\x9f\x98\x80", "b/b/a"};
    const size_t n_stops = sizeof stops / sizeof *stops;
    char text[256], outbuf[256];
    int mismatches = 0, broken = 0;
    for (int round = 0; round < 3000; round++) {
        size_t tl = 0;
        int nch = 1 + (int)(lcg() % 24);
        for (int i = 0; i < nch; i++) {
            const char *c = alphabet[lcg() % 7];
            size_t cl = strlen(c);
            memcpy(text + tl, c, cl);
            tl += cl;
        }
        text[tl] = 0;
        /* a random subset of the stop strings */
        const char *use[6];
        size_t nu = 0;
        for (size_t j = 0; j < n_stops; j++)
            if (lcg() % 2)
                use[nu++] = stops[j];
        bool ref_stop;
        size_t ref_len = reference(text, use, nu, &ref_stop);

        struct kura_stop *st = mk(use, nu);
        size_t ol = 0, pos = 0;
        bool stopped = false;
        while (pos < tl) {
            size_t pl = 1 + lcg() % 6; /* byte splits, often inside characters */
            if (pl > tl - pos)
                pl = tl - pos;
            const char *e;
            size_t el;
            CHECK(kura_stop_push(st, text + pos, pl, &e, &el, &stopped) == KURA_OK);
            if (el && !utf8_valid((const unsigned char *)e, el))
                broken++;
            memcpy(outbuf + ol, e, el);
            ol += el;
            pos += pl;
            if (stopped)
                break;
        }
        if (!stopped) {
            const char *e;
            size_t el;
            kura_stop_flush(st, &e, &el);
            memcpy(outbuf + ol, e, el);
            ol += el;
        }
        if (stopped != ref_stop || ol != ref_len || memcmp(outbuf, text, ol) != 0) {
            if (mismatches++ < 3)
                fprintf(stderr, "mismatch on '%s': got '%.*s' stop=%d, want %zu bytes stop=%d\n",
                        text, (int)ol, outbuf, stopped, ref_len, ref_stop);
        }
        kura_stop_destroy(st);
    }
    CHECKF(mismatches == 0, "%d split-dependent results", mismatches);
    CHECKF(broken == 0, "%d emitted chunks cut a character", broken);
}

static void test_invalid(void)
{
    struct kura_stop *st = (struct kura_stop *)1;
    struct kura_errbuf eb = {0};
    const char *empty[] = {"ok", ""};
    CHECK(kura_stop_create(empty, 2, &st, &eb) == KURA_ERR_INVALID && st == NULL);
    CHECK(strstr(eb.msg, "stop string 1") != NULL);
    const char *null_one[] = {NULL};
    CHECK(kura_stop_create(null_one, 1, &st, &eb) == KURA_ERR_INVALID);
    const char *many[100];
    for (int i = 0; i < 100; i++)
        many[i] = "x";
    CHECK(kura_stop_create(many, 100, &st, &eb) == KURA_ERR_RANGE);
    char *longs = malloc(5000);
    memset(longs, 'a', 4999);
    longs[4999] = 0;
    const char *ls[] = {longs};
    CHECK(kura_stop_create(ls, 1, &st, &eb) == KURA_ERR_RANGE);
    free(longs);
}

int main(void)
{
    test_basic();
    test_no_stops();
    test_overlap();
    test_utf8();
    test_split_independence();
    test_invalid();
    return test_finish();
}
