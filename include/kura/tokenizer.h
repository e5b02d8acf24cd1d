/* Tokenizers built from GGUF metadata (tokenizer.ggml.*), reproducing the reference engine's
 * token ids: SentencePiece-style BPE with scores ("llama"), byte-level BPE with merges and a
 * regex pre-tokenizer ("gpt2"), WordPiece ("bert"), Unigram ("t5") and Gemma 4's merge-based
 * SentencePiece variant ("gemma4").
 *
 * A kura_tok copies everything it needs out of the GGUF file: the file may be closed right
 * after kura_tok_create returns. A kura_tok is immutable after creation, so every function
 * taking a `const struct kura_tok *` is thread-safe (concurrent encodes share nothing mutable). */
#ifndef KURA_TOKENIZER_H
#define KURA_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kura_tok;

enum kura_tok_kind {
    KURA_TOK_SPM = 0, /* "llama": SentencePiece BPE over scores, byte fallback */
    KURA_TOK_BPE = 1, /* "gpt2" (byte-level) and "gemma4" (code points, ▁ for spaces) */
    KURA_TOK_WPM = 2, /* "bert": WordPiece */
    KURA_TOK_UGM = 3, /* "t5": Unigram with precompiled charsmap normalization */
};

/* Token types as stored in tokenizer.ggml.token_type. */
enum kura_tok_type {
    KURA_TOK_TYPE_UNDEFINED = 0,
    KURA_TOK_TYPE_NORMAL = 1,
    KURA_TOK_TYPE_UNKNOWN = 2,
    KURA_TOK_TYPE_CONTROL = 3,
    KURA_TOK_TYPE_USER_DEFINED = 4,
    KURA_TOK_TYPE_UNUSED = 5,
    KURA_TOK_TYPE_BYTE = 6,
};

/* Builds a tokenizer from g's tokenizer.ggml.* metadata. g is borrowed only for the call.
 * On failure *out = NULL and eb names the offending key. The result is destroyed with
 * kura_tok_destroy. */
enum kura_err kura_tok_create(const struct kura_gguf *g, struct kura_tok **out /* OUT */,
                              struct kura_errbuf *eb);
void kura_tok_destroy(struct kura_tok *t); /* NULL is a no-op */

enum kura_tok_kind kura_tok_kind(const struct kura_tok *t);
/* tokenizer.ggml.model and tokenizer.ggml.pre ("" when absent); owned by t. */
const char *kura_tok_model_name(const struct kura_tok *t);
const char *kura_tok_pre_name(const struct kura_tok *t);

int32_t kura_tok_n_vocab(const struct kura_tok *t);
/* Special ids; -1 when the vocabulary has none. */
int32_t kura_tok_bos(const struct kura_tok *t);
int32_t kura_tok_eos(const struct kura_tok *t);
int32_t kura_tok_eot(const struct kura_tok *t);
int32_t kura_tok_pad(const struct kura_tok *t);
int32_t kura_tok_unk(const struct kura_tok *t);
int32_t kura_tok_sep(const struct kura_tok *t);
/* Whether encode with add_special prepends BOS / appends EOS (the model's own rule). */
bool kura_tok_add_bos(const struct kura_tok *t);
bool kura_tok_add_eos(const struct kura_tok *t);
/* End of generation: eos, eot, eom and the tokens the reference engine recognises by text
 * (<|im_end|>, <|eot_id|>, <end_of_turn>, <|endoftext|>, ...). False for ids out of range. */
bool kura_tok_is_eog(const struct kura_tok *t, int32_t id);
/* Control or unknown token (rendered as nothing unless KURA_TOK_PIECE_SPECIAL). */
bool kura_tok_is_control(const struct kura_tok *t, int32_t id);
enum kura_tok_type kura_tok_type(const struct kura_tok *t, int32_t id);
/* Raw vocabulary text of id (not NUL-terminated; owned by t), NULL for ids out of range. */
const char *kura_tok_text(const struct kura_tok *t, int32_t id, size_t *len /* OUT */);
/* Id of a vocabulary entry with exactly this text, -1 when none. */
int32_t kura_tok_find(const struct kura_tok *t, const char *text, size_t len);

/* Encodes len bytes of text (need not be NUL-terminated, may hold any bytes: invalid UTF-8 is
 * handled as the reference engine does, never rejected). add_special: apply the model's BOS/EOS
 * (CLS/SEP for WordPiece) rule. parse_special: control and user-defined token texts written in
 * the text ("<|im_start|>") become those tokens; user-defined tokens are always split out first,
 * as the reference does. On success *ids is malloc'd (caller frees; NULL when *n_ids is 0). */
enum kura_err kura_tok_encode(const struct kura_tok *t, const char *text, size_t len,
                              bool add_special, bool parse_special, int32_t **ids /* OUT */,
                              size_t *n_ids /* OUT */, struct kura_errbuf *eb);

/* Flags for kura_tok_piece / kura_tok_decode. */
#define KURA_TOK_PIECE_SPECIAL 1u /* render control/unknown tokens as their text */

/* The bytes token id decodes to (SPM/UGM/WPM and gemma4: '▁' -> ' ', <0xNN> -> that byte;
 * byte-level BPE: the GPT-2 byte alphabet mapped back to bytes). Control and unknown tokens
 * give nothing unless flags has KURA_TOK_PIECE_SPECIAL; user-defined tokens give their text.
 * Writes at most buf_len bytes (no NUL) and returns the piece's full length, so a return
 * value > buf_len means truncation. Ids out of range give 0. */
size_t kura_tok_piece(const struct kura_tok *t, int32_t id, unsigned flags, char *buf,
                      size_t buf_len);

/* Concatenated pieces of ids, as the reference's detokenizer with remove_special: a leading
 * BOS is skipped when the model adds BOS; otherwise the leading space of the first piece is
 * dropped when the vocabulary adds a space prefix (so decode(encode(x, no BOS)) == x for SPM).
 * No other space clean-up is applied. *text is malloc'd and NUL-terminated (caller frees); its
 * length without the NUL goes to *len. Out-of-range ids are KURA_ERR_INVALID. */
enum kura_err kura_tok_decode(const struct kura_tok *t, const int32_t *ids, size_t n_ids,
                              unsigned flags, char **text /* OUT */, size_t *len /* OUT */,
                              struct kura_errbuf *eb);

/* Streaming UTF-8 guard for generated text: bytes go in as tokens produce them, and only
 * complete, valid UTF-8 characters come out, so a multi-byte character split across tokens is
 * never emitted half. Invalid sequences become U+FFFD as soon as they are clearly invalid (the
 * maximal invalid subpart, as the WHATWG/Unicode recommendation), an incomplete tail at flush.
 * Caller-owned storage; not thread-safe (one stream per generation). */
struct kura_utf8_stream {
    unsigned char pend[4];
    uint8_t n_pend;
    uint8_t need; /* total length of the pending character */
};

/* Output space that push of in_len bytes (or flush, in_len 0) may need. */
#define KURA_UTF8_STREAM_OUT_MAX(in_len) (3 * (size_t)(in_len) + 12)

void kura_utf8_stream_init(struct kura_utf8_stream *s);
/* Consumes in_len bytes; writes the complete characters to out (out_cap must be at least
 * KURA_UTF8_STREAM_OUT_MAX(in_len)) and returns how many bytes it wrote. */
size_t kura_utf8_stream_push(struct kura_utf8_stream *s, const char *in, size_t in_len,
                             char *out, size_t out_cap);
/* Emits U+FFFD for an incomplete pending character (if any) and resets; returns bytes written
 * (0 or 3; out_cap >= 3). */
size_t kura_utf8_stream_flush(struct kura_utf8_stream *s, char *out, size_t out_cap);

#ifdef __cplusplus
}
#endif
#endif
