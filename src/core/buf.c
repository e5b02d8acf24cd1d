/* The growable byte buffer. See core/buf.h. */
#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* Most bytes b may hold; one more byte is always kept for the NUL. */
static size_t buf_limit(const struct kura_buf *b)
{
    return b->max && b->max < SIZE_MAX ? b->max : SIZE_MAX - 1;
}

static enum kura_err buf_fail(struct kura_buf *b, enum kura_err e)
{
    if (!b->err)
        b->err = e;
    return b->err;
}

/* Room for n more bytes and the NUL. */
static enum kura_err buf_reserve(struct kura_buf *b, size_t n)
{
    if (b->err)
        return b->err;
    size_t need, limit = buf_limit(b);
    if (kura_add_overflow(b->len, n, &need) || need > limit)
        return buf_fail(b, KURA_ERR_RANGE);
    need++; /* the NUL; need <= limit + 1 <= SIZE_MAX */
    if (b->p && need <= b->cap)
        return KURA_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        if (kura_mul_overflow(cap, 2, &cap))
            cap = need;
    if (cap > limit + 1)
        cap = limit + 1; /* never allocate past what max allows */
    char *p = realloc(b->p, cap);
    if (!p)
        return buf_fail(b, KURA_ERR_NOMEM);
    if (!b->p)
        p[0] = 0;
    b->p = p;
    b->cap = cap;
    return KURA_OK;
}

enum kura_err kura_buf_put(struct kura_buf *b, const void *s, size_t n)
{
    enum kura_err e = buf_reserve(b, n);
    if (e)
        return e;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return KURA_OK;
}

enum kura_err kura_buf_puts(struct kura_buf *b, const char *s)
{
    return kura_buf_put(b, s, strlen(s));
}

enum kura_err kura_buf_vprintf(struct kura_buf *b, const char *fmt, va_list ap)
{
    if (b->err)
        return b->err;
    /* first try the spare room, then grow to the exact size and print again */
    size_t room = b->p ? b->cap - b->len : 0;
    va_list aq;
    va_copy(aq, ap);
    int k = vsnprintf(room ? b->p + b->len : NULL, room, fmt, aq);
    va_end(aq);
    if (k >= 0 && (size_t)k < room && (size_t)k <= buf_limit(b) - b->len) {
        b->len += (size_t)k;
        return KURA_OK;
    }
    if (b->p)
        b->p[b->len] = 0; /* undo a failed or truncated attempt */
    if (k < 0)
        return buf_fail(b, KURA_ERR_RANGE);
    enum kura_err e = buf_reserve(b, (size_t)k);
    if (e)
        return e;
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    b->len += (size_t)k;
    return KURA_OK;
}

enum kura_err kura_buf_printf(struct kura_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum kura_err e = kura_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return e;
}

void kura_buf_clear(struct kura_buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = 0;
}

char *kura_buf_take(struct kura_buf *b)
{
    char *p = kura_buf_put(b, "", 0) ? NULL : b->p;
    if (!p)
        free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void kura_buf_free(struct kura_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->err = KURA_OK;
}
