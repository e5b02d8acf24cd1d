/* A growable byte buffer with a hard size cap: the one way kura code appends bytes to a heap
 * buffer. Growth doubles and is overflow-checked; the first failure is sticky, so a writer can
 * append many pieces and check once at the end.
 *
 * Start from a zeroed struct (optionally with .max set): struct kura_buf b = {.max = N};
 * The buffer owns p until kura_buf_take hands it to the caller; kura_buf_free releases it.
 * Not thread-safe; callers lock around shared buffers. */
#ifndef KURA_CORE_BUF_H
#define KURA_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "kura/err.h"

struct kura_buf {
    char *p;          /* NULL until the first put; afterwards p[len] == 0 */
    size_t len, cap;  /* bytes held (without the NUL) / bytes allocated */
    size_t max;       /* most bytes it may hold (without the NUL); 0: no limit but memory */
    enum kura_err err; /* sticky: the first failure (KURA_ERR_NOMEM, or KURA_ERR_RANGE when len
                        * would pass max). While set, puts change nothing and return it. A
                        * caller may set it to fail the buffer itself, or clear it to reuse b. */
};

/* Appends n bytes of s (s may be NULL when n is 0). Every put, even of 0 bytes, leaves p
 * allocated and NUL-terminated. On failure b keeps its old contents. Returns b->err. */
enum kura_err kura_buf_put(struct kura_buf *b, const void *s, size_t n);
enum kura_err kura_buf_puts(struct kura_buf *b, const char *s);
/* Appends formatted text of any length; KURA_ERR_RANGE when vsnprintf fails. */
enum kura_err kura_buf_printf(struct kura_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
enum kura_err kura_buf_vprintf(struct kura_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Empties b but keeps its memory, max and err (len = 0, p[0] = 0 when allocated). */
void kura_buf_clear(struct kura_buf *b);

/* Hands the bytes to the caller, who frees them: NUL-terminated, "" (allocated) when nothing
 * was put. NULL when b->err is set (the bytes are freed) or allocating "" fails (err becomes
 * KURA_ERR_NOMEM). Either way b holds no memory afterwards; max and err stay. */
char *kura_buf_take(struct kura_buf *b);

/* Frees the bytes; b is empty with err cleared (max stays), ready for reuse. */
void kura_buf_free(struct kura_buf *b);

#endif
