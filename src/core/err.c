#include "kura/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *kura_err_str(enum kura_err e)
{
    switch (e) {
    case KURA_OK: return "ok";
    case KURA_ERR_NOMEM: return "out of memory";
    case KURA_ERR_IO: return "I/O error";
    case KURA_ERR_FORMAT: return "format error";
    case KURA_ERR_UNSUPPORTED: return "unsupported";
    case KURA_ERR_INVALID: return "invalid argument";
    case KURA_ERR_RANGE: return "out of range";
    case KURA_ERR_NOTFOUND: return "not found";
    case KURA_ERR_PERM: return "permission denied";
    case KURA_ERR_CRYPTO: return "cryptographic failure";
    case KURA_ERR_TAMPER: return "integrity check failed";
    case KURA_ERR_BUSY: return "busy";
    case KURA_ERR_CANCELLED: return "cancelled";
    case KURA_ERR_INTERNAL: return "internal error";
    default: return "unknown error";
    }
}

enum kura_err kura_err_set(struct kura_errbuf *eb, enum kura_err code, const char *fmt, ...)
{
    if (eb) {
        va_list ap;
        va_start(ap, fmt);
        eb->code = code;
        vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void kura_err_prefix(struct kura_errbuf *eb, const char *fmt, ...)
{
    if (!eb)
        return;
    char pre[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    size_t pl = strlen(pre), cap = sizeof eb->msg - 1;
    if (pl > cap)
        pl = cap;
    size_t ol = strnlen(eb->msg, cap);
    if (pl + ol > cap)
        ol = cap - pl;
    memmove(eb->msg + pl, eb->msg, ol);
    memcpy(eb->msg, pre, pl);
    eb->msg[pl + ol] = 0;
}
