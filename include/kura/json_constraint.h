/* Constrained decoding for JSON mode: an incremental JSON validator over bytes (a pushdown
 * automaton with a bounded stack) and a token mask built on it, so that sampled output is always
 * a prefix of one JSON object and can always still be closed within the token budget.
 *
 * Accepted language: optional whitespace, one JSON object (RFC 8259), optional whitespace.
 * Stricter than the RFC where common parsers are (so output parses everywhere): strings must be
 * valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF), \u escapes must not leave a
 * surrogate unpaired, \u0000 is refused (as jansson and other C parsers do), nesting is at most
 * KURA_JSONC_MAX_DEPTH, integer parts have at most KURA_JSONC_MAX_INT_DIGITS digits and
 * exponents at most KURA_JSONC_MAX_EXP_DIGITS (so every number is finite as a double and
 * integers fit int64), and whitespace runs are at most KURA_JSONC_MAX_WS bytes (so a model
 * cannot stall in whitespace). */
#ifndef KURA_JSON_CONSTRAINT_H
#define KURA_JSON_CONSTRAINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KURA_JSONC_MAX_DEPTH 64
#define KURA_JSONC_MAX_INT_DIGITS 18
#define KURA_JSONC_MAX_FRAC_DIGITS 64
#define KURA_JSONC_MAX_EXP_DIGITS 2
#define KURA_JSONC_MAX_WS 32
/* Longest shortest-completion: every level closes with one byte, plus at most 12 for the token
 * in progress (e.g. inside a key after an escaped high surrogate). */
#define KURA_JSONC_MAX_CLOSE (KURA_JSONC_MAX_DEPTH + 16)

/* Validator state: a small plain value, copied freely (the mask tries every token on a copy).
 * Fields are private. */
struct kura_jsonc {
    uint64_t stack;   /* bit d: level d is an array (1) or an object (0) */
    uint16_t hex;     /* value of the \u digits read so far */
    uint8_t depth;    /* open containers */
    uint8_t mode;     /* lexical position */
    uint8_t count;    /* digits / hex digits / literal bytes so far, per mode */
    uint8_t ws;       /* whitespace bytes in the current run */
    uint8_t u8_need;  /* UTF-8 continuation bytes still expected */
    uint8_t u8_lo, u8_hi; /* range of the next continuation byte */
    uint8_t flags;    /* in a key; literal kind; \u must be a low surrogate */
};

/* Empty document. */
void kura_jsonc_init(struct kura_jsonc *st /* OUT */);
/* Feeds n bytes. Returns false as soon as the bytes cannot continue a valid document; st is then
 * unspecified (work on a copy to test). Thread-safe on distinct states. */
bool kura_jsonc_push(struct kura_jsonc *st, const char *s, size_t n);
/* The object is closed (only whitespace may follow). */
bool kura_jsonc_complete(const struct kura_jsonc *st);
/* Bytes of the shortest text that completes the document (0 when complete). */
size_t kura_jsonc_close_len(const struct kura_jsonc *st);
/* Writes that shortest completion to buf (cap >= KURA_JSONC_MAX_CLOSE is always enough) and
 * returns its length; 0 and nothing written when cap is too small for it. */
size_t kura_jsonc_close(const struct kura_jsonc *st, char *buf, size_t cap);

/* ---- Token mask -------------------------------------------------------------------------- */
struct kura_jsonc_vocab;

/* Precomputes the decoded text (kura_tok_piece, flags 0) of every token of tok, and which ones
 * are plain string content. Immutable afterwards: thread-safe to share. Caller owns *out. */
enum kura_err kura_jsonc_vocab_create(const struct kura_tok *tok,
                                      struct kura_jsonc_vocab **out /* OUT */,
                                      struct kura_errbuf *eb);
void kura_jsonc_vocab_destroy(struct kura_jsonc_vocab *v); /* NULL is a no-op */

/* Sets logits[t] = -INFINITY for every token t that may not come next after state st when
 * `budget` tokens (this one included) may still be generated: t is allowed when its text is
 * non-empty, keeps the document valid, and leaves a completion of at most budget - 1 bytes (so
 * with single-byte tokens the object can always be closed in time). End-of-generation tokens are
 * never allowed (the caller stops once the object is complete). When no token satisfies the
 * budget (a budget too small to ever close), the budget is ignored. scratch (n_vocab bytes, the
 * caller's) receives 1 for the allowed tokens. Returns the number allowed (0 only if no token at
 * all keeps the document valid; logits are then left as they were). Cost: about one pass over
 * the vocabulary's first bytes; tokens rejected by their first byte (after leading whitespace)
 * or plain string content cost O(1). Thread-safe with distinct scratch. */
int32_t kura_jsonc_mask(const struct kura_jsonc_vocab *v, const struct kura_jsonc *st,
                        int32_t budget, uint8_t *scratch /* OUT: n_vocab */,
                        float *logits /* IN/OUT: n_vocab */);

#ifdef __cplusplus
}
#endif
#endif
