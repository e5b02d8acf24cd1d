/* Internal twin of kura/audit.h: record encoding/parsing and the line reader shared by the
 * writer, the verifier, show and export. */
#ifndef KURA_AUDIT_INT_H
#define KURA_AUDIT_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "kura/audit.h"

#define AUDIT_FORMAT "kura-audit-1"
#define BUNDLE_FORMAT "kura-audit-bundle-1"
#define ACT_GENESIS "audit.genesis"
#define ACT_CHECKPOINT "audit.checkpoint"
#define ACT_SEAL "audit.seal"
#define LOG_ID_LEN 16

/* Domain separation for every signature / MAC / hash input. */
#define DOM_CKPT "kura-audit-ckpt-1\n"
#define DOM_TAG "kura-audit-tag-1\n"
#define DOM_HEAD "kura-audit-head-1\n"
#define DOM_BUNDLE "kura-audit-bundle-1\n"

/* Suffix lengths: `,"sig":"<128 hex>"` and `,"tag":"<64 hex>"}` */
#define SIG_FIELD_LEN (8 + 128 + 1)
#define TAG_FIELD_LEN (8 + 64 + 2)

/* Appends s to b as a JSON string (quoted, escaped); false when s is not valid UTF-8. A failed
 * append shows in b->err. */
bool audit_json_str(struct kura_buf *b, const char *s, size_t n);

/* A parsed record line. Strings point into `doc`. */
struct arec {
    json_t *doc;
    uint64_t seq;
    const char *time, *actor, *action, *object, *outcome;
    const json_t *details;
    uint8_t prev[KURA_AUDIT_HASH_LEN];
    bool has_sig;
    uint8_t sig[64];
    uint8_t tag[KURA_AUDIT_HASH_LEN];
    size_t sig_prefix_len; /* bytes covered by the signature (checkpoints) */
    size_t tag_prefix_len; /* bytes covered by the tag */
};

/* Parses and validates one line (no newline) as a record; false on any defect (message in
 * why, when non-NULL). Hostile input: bounded, no crash. Caller calls arec_free on success. */
bool arec_parse(const char *line, size_t len, struct arec *r, char *why, size_t why_len);
void arec_free(struct arec *r);

/* BLAKE2b-256 of a line. */
void audit_line_hash(const void *line, size_t len, uint8_t out[KURA_AUDIT_HASH_LEN]);
/* Keyed tag of a record prefix. */
void audit_tag(const uint8_t *key, const void *prefix, size_t len,
               uint8_t out[KURA_AUDIT_HASH_LEN]);
/* Lowercase hex checks / decoding of exactly n bytes. */
bool audit_hex_ok(const char *s, size_t n);
bool audit_hex_decode(const char *s, uint8_t *out, size_t n);

/* Line reader over a memory buffer (fd < 0) or a file descriptor. Lines longer than
 * KURA_AUDIT_MAX_LINE are reported with too_long set (their bytes are skipped). */
struct line_reader {
    int fd;
    const char *mem;
    size_t mem_len;
    char *buf;
    size_t buf_len, buf_pos, buf_cap;
    uint64_t offset; /* file offset of buf[buf_pos] */
    bool eof, err;
    int err_no;
};
struct line {
    const char *p;
    size_t len;
    uint64_t offset;
    bool terminated;
    bool too_long;
};
bool line_reader_init(struct line_reader *lr, int fd, const void *mem, size_t mem_len);
/* Returns false at end of input (or on a read error: lr->err). */
bool line_reader_next(struct line_reader *lr, struct line *out);
void line_reader_free(struct line_reader *lr);

/* Streaming verifier. */
struct verifier;
struct verifier *verifier_create(const struct kura_audit_verify_opts *opt,
                                 struct kura_audit_verify_result *res);
void verifier_line(struct verifier *v, const struct line *ln);
/* Finishes; returns KURA_OK when intact. Frees v. */
enum kura_err verifier_finish(struct verifier *v);

/* Head file */
enum kura_err audit_head_read(const char *head_path, const uint8_t *pubkey, uint64_t *seq,
                              uint8_t hash[KURA_AUDIT_HASH_LEN], char log_hex[33],
                              struct kura_errbuf *eb);

#endif
