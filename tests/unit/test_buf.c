/* core/buf: growth, NUL termination, the size cap, sticky errors, printf, take/free. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "test.h"

static void test_growth(void)
{
    struct kura_buf b = {0};
    CHECK(b.p == NULL);
    size_t total = 0;
    for (int i = 0; i < 5000; i++) {
        char piece[8];
        size_t n = (size_t)(i % 7) + 1;
        for (size_t j = 0; j < n; j++)
            piece[j] = (char)('a' + (i + (int)j) % 26);
        CHECK(kura_buf_put(&b, piece, n) == KURA_OK);
        total += n;
        CHECK(b.len == total);
        CHECK(b.cap > b.len);
        CHECK(b.p[b.len] == 0);
    }
    /* the contents are the pieces in order */
    size_t off = 0;
    int ok = 1;
    for (int i = 0; i < 5000 && ok; i++) {
        size_t n = (size_t)(i % 7) + 1;
        for (size_t j = 0; j < n; j++)
            ok &= b.p[off + j] == (char)('a' + (i + (int)j) % 26);
        off += n;
    }
    CHECK(ok);
    CHECK(strlen(b.p) == b.len);
    CHECK(b.err == KURA_OK);
    kura_buf_free(&b);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
}

static void test_zero_length(void)
{
    struct kura_buf b = {0};
    CHECK(kura_buf_put(&b, NULL, 0) == KURA_OK);
    CHECK(b.p != NULL && b.len == 0 && b.p[0] == 0);
    CHECK(kura_buf_puts(&b, "") == KURA_OK);
    CHECK(b.len == 0 && b.p[0] == 0);
    CHECK(kura_buf_puts(&b, "xy") == KURA_OK);
    CHECK(kura_buf_put(&b, "zzz", 0) == KURA_OK);
    CHECK(b.len == 2 && strcmp(b.p, "xy") == 0);
    CHECK(kura_buf_printf(&b, "%s", "") == KURA_OK);
    CHECK(b.len == 2 && strcmp(b.p, "xy") == 0);
    kura_buf_free(&b);

    struct kura_buf e = {0};
    CHECK(kura_buf_printf(&e, "%s", "") == KURA_OK); /* an empty printf allocates too */
    CHECK(e.p != NULL && e.len == 0 && e.p[0] == 0);
    kura_buf_free(&e);
}

static void test_max(void)
{
    struct kura_buf b = {.max = 10};
    CHECK(kura_buf_puts(&b, "0123456") == KURA_OK);
    CHECK(b.cap <= 11);
    CHECK(kura_buf_puts(&b, "789") == KURA_OK); /* exactly max */
    CHECK(b.len == 10 && strcmp(b.p, "0123456789") == 0);
    CHECK(b.cap <= 11);
    CHECK(kura_buf_put(&b, "x", 1) == KURA_ERR_RANGE);
    CHECK(b.err == KURA_ERR_RANGE);
    CHECK(b.len == 10 && strcmp(b.p, "0123456789") == 0); /* unchanged */
    /* sticky: even a put that would fit, and a zero-length one, fail */
    kura_buf_clear(&b);
    CHECK(b.len == 0 && b.p[0] == 0);
    CHECK(b.err == KURA_ERR_RANGE);
    CHECK(kura_buf_put(&b, "a", 1) == KURA_ERR_RANGE);
    CHECK(kura_buf_put(&b, "", 0) == KURA_ERR_RANGE);
    CHECK(kura_buf_printf(&b, "%d", 1) == KURA_ERR_RANGE);
    CHECK(b.len == 0);
    CHECK(kura_buf_take(&b) == NULL);
    CHECK(b.p == NULL && b.err == KURA_ERR_RANGE);
    kura_buf_free(&b);
    CHECK(b.err == KURA_OK && b.max == 10);
    CHECK(kura_buf_puts(&b, "again") == KURA_OK);
    kura_buf_free(&b);

    /* printf past max fails and keeps the contents */
    struct kura_buf c = {.max = 300};
    CHECK(kura_buf_printf(&c, "%0250d", 7) == KURA_OK);
    CHECK(c.len == 250);
    CHECK(kura_buf_printf(&c, "%060d", 7) == KURA_ERR_RANGE);
    CHECK(c.len == 250 && c.p[250] == 0 && strlen(c.p) == 250);
    kura_buf_free(&c);

    /* a length that overflows size_t is out of range, not a huge allocation */
    struct kura_buf d = {0};
    CHECK(kura_buf_puts(&d, "ab") == KURA_OK);
    CHECK(kura_buf_put(&d, "", SIZE_MAX) == KURA_ERR_RANGE);
    CHECK(d.len == 2 && strcmp(d.p, "ab") == 0);
    kura_buf_free(&d);

    /* the caller may fail the buffer itself */
    struct kura_buf f = {0};
    f.err = KURA_ERR_NOMEM;
    CHECK(kura_buf_puts(&f, "x") == KURA_ERR_NOMEM);
    CHECK(f.p == NULL);
    kura_buf_free(&f);
}

static void test_printf(void)
{
    struct kura_buf b = {0};
    CHECK(kura_buf_printf(&b, "%s=%d;", "a", 1) == KURA_OK);
    CHECK(strcmp(b.p, "a=1;") == 0);
    /* longer than the first allocation and than any fixed scratch buffer */
    char *big = malloc(20001);
    CHECK(big != NULL);
    if (!big)
        return;
    for (size_t i = 0; i < 20000; i++)
        big[i] = (char)('A' + i % 26);
    big[20000] = 0;
    CHECK(kura_buf_printf(&b, "[%s]", big) == KURA_OK);
    CHECK(b.len == 4 + 20002);
    CHECK(b.p[4] == '[' && b.p[b.len - 1] == ']' && b.p[b.len] == 0);
    CHECK(memcmp(b.p + 5, big, 20000) == 0);
    /* a printf that just fits the spare room, then one that does not */
    size_t room = b.cap - b.len - 1;
    CHECK(kura_buf_printf(&b, "%.*s", (int)room, big) == KURA_OK);
    CHECK(b.len + 1 == b.cap && b.p[b.len] == 0);
    size_t len = b.len;
    CHECK(kura_buf_printf(&b, "%d|%s", 42, "tail") == KURA_OK);
    CHECK(b.len == len + 7 && strcmp(b.p + len, "42|tail") == 0);
    CHECK(strlen(b.p) == b.len);
    free(big);
    kura_buf_free(&b);
}

static void test_take_clear(void)
{
    struct kura_buf b = {0};
    char *s = kura_buf_take(&b); /* nothing put: "" */
    CHECK(s != NULL && s[0] == 0);
    free(s);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0);

    kura_buf_puts(&b, "hello ");
    kura_buf_printf(&b, "%s", "world");
    size_t len = b.len;
    s = kura_buf_take(&b);
    CHECK(s != NULL && strcmp(s, "hello world") == 0 && len == 11);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0 && b.err == KURA_OK);
    free(s);

    /* clear keeps the memory for reuse */
    kura_buf_puts(&b, "abc");
    char *p = b.p;
    kura_buf_clear(&b);
    CHECK(b.p == p && b.len == 0 && b.p[0] == 0);
    kura_buf_puts(&b, "de");
    CHECK(b.p == p && strcmp(b.p, "de") == 0);
    kura_buf_free(&b);
    kura_buf_free(&b); /* twice is fine */
    kura_buf_clear(&b); /* on an empty buffer too */
    CHECK(b.p == NULL && b.len == 0);
}

int main(void)
{
    test_growth();
    test_zero_length();
    test_max();
    test_printf();
    test_take_clear();
    return test_finish();
}
