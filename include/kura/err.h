/* kura: one error enum for the whole project, and an optional message buffer. */
#ifndef KURA_ERR_H
#define KURA_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum kura_err {
    KURA_OK = 0,
    KURA_ERR_NOMEM,      /* allocation failed */
    KURA_ERR_IO,         /* read/write/open/mmap failed */
    KURA_ERR_FORMAT,     /* malformed input file or data */
    KURA_ERR_UNSUPPORTED,/* valid input that kura does not handle (type, architecture, ...) */
    KURA_ERR_INVALID,    /* invalid argument or value from the caller / user */
    KURA_ERR_RANGE,      /* value out of the allowed range, size overflow */
    KURA_ERR_NOTFOUND,   /* key, tensor, file or object not found */
    KURA_ERR_PERM,       /* permission denied or insecure permissions */
    KURA_ERR_CRYPTO,     /* authentication / decryption / signature failure */
    KURA_ERR_TAMPER,     /* integrity check failed (audit chain, digest) */
    KURA_ERR_BUSY,       /* resource busy / overloaded */
    KURA_ERR_CANCELLED,  /* operation cancelled */
    KURA_ERR_INTERNAL,   /* bug: invariant violated */
    KURA_ERR__COUNT
};

/* A human-readable message that names the file, field and offset of a failure.
 * Never holds secrets. Caller-owned storage; pass NULL where no message is wanted. */
struct kura_errbuf {
    enum kura_err code;
    char msg[512];
};

/* Short constant name of an error code ("format error", ...). Thread-safe. */
const char *kura_err_str(enum kura_err e);

/* Formats a message into eb (when eb != NULL) and returns code, so callers can write
 * `return kura_err_set(eb, KURA_ERR_FORMAT, "tensor '%s': ...", name);`. */
enum kura_err kura_err_set(struct kura_errbuf *eb, enum kura_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with more context ("file.gguf: " + msg). */
void kura_err_prefix(struct kura_errbuf *eb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
