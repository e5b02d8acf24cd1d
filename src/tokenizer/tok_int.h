/* Internal twin of kura/tokenizer.h: the vocabulary, lookup tables and per-kind sessions. */
#ifndef KURA_TOKENIZER_INT_H
#define KURA_TOKENIZER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/buf.h"
#include "kura/tokenizer.h"

/* Token attributes (a token's type plus the strip flags some models set). */
enum {
    TA_NORMAL = 1u << 0,
    TA_UNKNOWN = 1u << 1,
    TA_CONTROL = 1u << 2,
    TA_USER = 1u << 3,
    TA_UNUSED = 1u << 4,
    TA_BYTE = 1u << 5,
    TA_LSTRIP = 1u << 6,
    TA_RSTRIP = 1u << 7,
    TA_EOG = 1u << 8,
};

/* Open-addressing hash from byte strings (views into a pool) to int32 values. `tag`
 * distinguishes keys with equal bytes (merges use it for the length of the left half). */
struct strmap_slot {
    uint32_t hash;
    uint32_t tag;
    uint32_t off;
    uint32_t len;
    int32_t val; /* -1: empty */
};
struct strmap {
    struct strmap_slot *slots;
    uint32_t mask;
};
uint32_t tok_hash(const char *s, size_t len, uint32_t tag);
int strmap_init(struct strmap *m, size_t n_keys);
void strmap_deinit(struct strmap *m);
/* keep_first: do not overwrite an existing equal key. */
void strmap_put(struct strmap *m, const char *pool, uint32_t off, uint32_t len, uint32_t tag,
                int32_t val, bool keep_first);
int32_t strmap_get(const struct strmap *m, const char *pool, const char *key, size_t len,
                   uint32_t tag);

struct tok_entry {
    uint32_t off, len; /* text in kura_tok.pool */
    float score;
    uint16_t attr;
    int16_t type;
};

enum pre_kind {
    PRE_DEFAULT,
    PRE_LLAMA3,
    PRE_DEEPSEEK_LLM,
    PRE_DEEPSEEK_CODER,
    PRE_FALCON,
    PRE_MPT,
    PRE_STARCODER,
    PRE_GPT2,
    PRE_REFACT,
    PRE_COMMAND_R,
    PRE_QWEN2,
    PRE_QWEN35,
    PRE_GEMMA4,
};

#define TOK_MAX_REGEX 8

/* UGM: byte trie over the vocabulary (edges in a hash keyed by node and byte). */
struct trie {
    int32_t *value; /* per node: token id or -1 */
    uint32_t n_nodes, cap_nodes;
    uint64_t *ekey; /* (node << 8 | byte) + 1; 0 = empty */
    uint32_t *echild;
    uint32_t emask, n_edges;
};
int trie_init(struct trie *tr);
void trie_deinit(struct trie *tr);
int trie_insert(struct trie *tr, const char *s, size_t len, int32_t value);
/* Child of node for byte c, or -1. */
int64_t trie_child(const struct trie *tr, uint32_t node, unsigned char c);

struct kura_tok {
    enum kura_tok_kind kind;
    enum pre_kind pre;
    char model_name[32];
    char pre_name[64];
    int32_t n_vocab;
    char *pool; /* all token texts */
    size_t pool_len;
    struct tok_entry *tok;
    struct strmap vocab; /* text -> id (the last of duplicate texts wins, as the reference) */
    uint32_t max_token_len;

    /* BPE merges: pool of left||right, key tag = length of left. */
    char *mpool;
    struct strmap merges;
    uint32_t n_merges;

    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    bool add_bos, add_eos, add_space_prefix, remove_extra_ws;
    bool ignore_merges, byte_encode, escape_spaces;

    int32_t byte_tok[256]; /* <0xNN> tokens (SPM/UGM/gemma4), -1 when missing */

    int32_t *special; /* control/user-defined/unknown ids, longest text first */
    uint32_t n_special;

    pcre2_code *re[TOK_MAX_REGEX];
    uint32_t n_re;

    /* UGM */
    struct trie ugm_tokens, ugm_user;
    unsigned char *charsmap;
    size_t charsmap_len;
    const uint32_t *xcda; /* view into charsmap */
    size_t xcda_n;
    const char *repl; /* replacement strings, view into charsmap */
    size_t repl_len;
    double ugm_unk_score;
};

/* Growable id vector with a hard cap. */
struct idvec {
    int32_t *v;
    size_t n, cap;
};
int idvec_push(struct idvec *iv, int32_t id);

/* UTF-8 helpers (utf8.c). */
size_t tok_utf8_len(unsigned char lead); /* length from the lead byte alone, 1 for invalid */
/* Decodes one strictly valid character at s[0..len); returns its length or 0 when invalid. */
size_t tok_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp /* OUT */);
size_t tok_utf8_encode(uint32_t cp, char *out /* >= 4 bytes */);
/* Copy of s with every invalid byte replaced by U+FFFD. */
int tok_utf8_sanitize(const char *s, size_t len, struct kura_buf *out);

/* Sessions: each appends to out; return 0 or a kura_err. Scratch lives in the call. */
int tok_spm_encode(const struct kura_tok *t, const char *text, size_t len, struct idvec *out);
int tok_bpe_encode(const struct kura_tok *t, const char *text, size_t len, struct idvec *out);
int tok_wpm_encode(const struct kura_tok *t, const char *text, size_t len, struct idvec *out);
int tok_ugm_encode(const struct kura_tok *t, const char *text, size_t len, struct idvec *out);

/* Pre-tokenizer (pretokenize.c): compiles the regex list for t->pre; split appends word spans
 * (offset, length pairs into text) to spans. */
int tok_pre_compile(struct kura_tok *t, struct kura_errbuf *eb);
void tok_pre_free(struct kura_tok *t);
struct span {
    size_t off, len;
};
struct spanvec {
    struct span *v;
    size_t n, cap;
};
int spanvec_push(struct spanvec *sv, size_t off, size_t len);
int tok_pre_split(const struct kura_tok *t, const char *text, size_t len, struct spanvec *out);

/* Byte-level BPE alphabet: byte -> UTF-8 of its code point (1..2 bytes). */
size_t tok_byte_to_unicode(unsigned char b, char out[4]);
/* Inverse: code point -> byte, -1 when cp is not in the alphabet. */
int tok_unicode_to_byte(uint32_t cp);

/* UGM setup (ugm.c). */
int tok_ugm_init(struct kura_tok *t, const unsigned char *charsmap, size_t charsmap_len,
                 struct kura_errbuf *eb);

/* Merge sessions (SPM and BPE): symbols in a doubly linked list over the word's bytes, and a
 * max-heap of candidate pairs (highest prio first, then leftmost). */
struct sym {
    int32_t prev, next;
    uint32_t off, n;
};
struct bigram {
    float prio;
    int32_t left, right;
    uint32_t size;
};
struct bheap {
    struct bigram *v;
    size_t n, cap;
};
int bheap_push(struct bheap *h, struct bigram b);
bool bheap_pop(struct bheap *h, struct bigram *out /* OUT */);

/* Largest token count an encode may produce. */
#define TOK_MAX_IDS ((size_t)1 << 28)

#endif
