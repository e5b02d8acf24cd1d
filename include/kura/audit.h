/* kura: the tamper-evident, signed audit log.
 *
 * STATE_DIR/audit/audit.log is JSON Lines; every record is one line
 *   {"seq":N,"time":"...Z","actor":A,"action":B,"object":C,"outcome":D,"details":{...},
 *    "prev":"<hex BLAKE2b-256 of the previous line>"[,"sig":"<hex Ed25519>"],"tag":"<hex>"}
 * The first record ("audit.genesis") names the log id and the node signing key. Checkpoint
 * records ("audit.checkpoint", every N records, every T seconds and at close) carry an Ed25519
 * signature over their own line, which covers seq and prev and therefore every earlier record.
 * "tag" is a keyed BLAKE2b MAC with the "audit" data key, checkable only by the key holder; it
 * authenticates records written after the last checkpoint. STATE_DIR/audit/head.json is a signed
 * pointer to the newest checkpoint, so truncation before it is detected.
 * A torn last line left by a crash is never dropped: the next writer terminates it and appends
 * an "audit.seal" record naming its offset, length and hash.
 * Format, threat model and what verification proves: docs/keys-and-audit.md. */
#ifndef KURA_AUDIT_H
#define KURA_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/keys.h"
#include "kura/state.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KURA_AUDIT_HASH_LEN 32
#define KURA_AUDIT_HEX_LEN 65 /* 64 hex + NUL */

struct kura_audit; /* an open log, shared by all appending threads */

struct kura_audit_options {
    uint32_t checkpoint_every;       /* records between checkpoints; 0 = 1000 */
    uint32_t checkpoint_interval_ms; /* at most this long between a record and its checkpoint
                                        while the log is idle; 0 = 10000; a timer thread */
    bool no_timer;                   /* no timer thread (checkpoints on count and close only) */
    bool accept_missing_head;        /* open a non-empty log whose head.json is missing (the
                                        acceptance is itself recorded) instead of refusing */
};

/* What kura_audit_open found. */
struct kura_audit_open_info {
    bool created;          /* a new log was started */
    bool sealed;           /* a torn/garbage tail was found and sealed */
    bool completed;        /* an unterminated but complete last record was terminated */
    uint64_t torn_offset;  /* byte offset of the first torn/garbage line */
    uint64_t torn_len;     /* bytes from there to the old end of file */
    uint32_t torn_lines;   /* garbage lines covered by the seal */
    uint64_t seal_seq;     /* seq of the seal record */
    uint64_t last_seq;     /* last seq in the log after open */
};

/* Opens (creating when absent) the log under state_dir/audit/. keys is borrowed and must
 * outlive the log; its signing key must be the one named by the log's genesis record.
 * Seals a torn tail (see above) and reports it in *info (may be NULL). Refuses a log whose
 * head.json is missing (KURA_ERR_TAMPER) unless opt->accept_missing_head. opt may be NULL.
 * Other processes may append to the same log concurrently (file lock per commit). */
enum kura_err kura_audit_open(const char *state_dir, struct kura_keys *keys,
                              const struct kura_audit_options *opt,
                              struct kura_audit **out /* OUT */,
                              struct kura_audit_open_info *info /* OUT */,
                              struct kura_errbuf *eb);

/* Appends one record and returns once it is on disk (fdatasync). Concurrent callers share one
 * write + fdatasync (group commit). actor/action/object/outcome: UTF-8 strings of at most
 * KURA_AUDIT_MAX_FIELD bytes (NULL = ""); details_json: a JSON object or NULL. *out_seq (may be
 * NULL) receives the record's sequence number. After an I/O failure the log refuses further
 * appends (the action must not be acknowledged); reopen it to recover. Thread-safe. */
enum kura_err kura_audit_append(struct kura_audit *log, const char *actor, const char *action,
                                const char *object, const char *outcome,
                                const char *details_json, uint64_t *out_seq /* OUT */,
                                struct kura_errbuf *eb);

/* Writes a signed checkpoint now (when any record is not yet covered by one). Thread-safe. */
enum kura_err kura_audit_checkpoint(struct kura_audit *log, struct kura_errbuf *eb);

/* Stops the timer, writes a final signed checkpoint and closes. No append may be in flight.
 * The log is freed even on error. NULL is a no-op. */
enum kura_err kura_audit_close(struct kura_audit *log, struct kura_errbuf *eb);

/* Lowercase hex SHA-256 of a file (for "model.load" records), streamed. */
enum kura_err kura_audit_file_digest(const char *path, char out_hex[KURA_AUDIT_HEX_LEN] /* OUT */,
                                     struct kura_errbuf *eb);

/* The digest for a "model.load" record: like kura_audit_file_digest, but remembered in
 * state_dir/cache/digests under a MAC keyed by the node's "digest-cache" data key, and reused
 * only while the file's device, inode, size, mtime and ctime are unchanged (*cached = true).
 * Failing to write the cache is not an error. */
enum kura_err kura_audit_model_digest(const char *state_dir, struct kura_keys *keys,
                                      const char *path, char out_hex[KURA_AUDIT_HEX_LEN] /* OUT */,
                                      bool *cached /* OUT */, struct kura_errbuf *eb);

/* ---- verification ---- */

enum kura_audit_verdict {
    KURA_AUDIT_INTACT = 0, /* whole log verified */
    KURA_AUDIT_TORN,       /* a valid prefix followed by an unsealed torn tail (crash) */
    KURA_AUDIT_BAD,        /* tampered, damaged, truncated or signed by another key */
};

struct kura_audit_verify_opts {
    const uint8_t *pubkey;                /* node signing key (required) */
    const struct kura_secret *tag_key;    /* "audit" data key: also check every tag; or NULL */
    bool have_head;                       /* the log must contain this checkpoint: */
    uint64_t head_seq;
    uint8_t head_hash[KURA_AUDIT_HASH_LEN];
    uint64_t expect_min_seq;              /* the log must reach at least this seq (0 = any) */
};

struct kura_audit_verify_result {
    enum kura_audit_verdict verdict;
    uint64_t n_records;          /* records in the valid prefix */
    uint64_t last_seq;           /* seq of the last record of the valid prefix */
    uint64_t n_checkpoints;      /* valid checkpoint signatures */
    uint64_t last_checkpoint_seq;
    uint64_t unsigned_tail;      /* valid records after the last checkpoint */
    uint64_t n_seals;            /* sealed torn tails (past crashes) */
    uint64_t bad_line;           /* 1-based line of the first bad record, 0 = none */
    uint64_t bad_seq;            /* seq expected at that line */
    uint64_t bad_offset;         /* its byte offset */
    uint64_t torn_offset, torn_len;
    char log_id[33];
    char last_hash[KURA_AUDIT_HEX_LEN];
    char message[512];           /* names the first problem */
};

/* Verifies a log held in memory (hostile input: bounded, never crashes). Returns KURA_OK when
 * intact, KURA_ERR_TAMPER otherwise (details in *res), KURA_ERR_INVALID without a pubkey.
 * Thread-safe. */
enum kura_err kura_audit_verify_buffer(const void *data, size_t len,
                                       const struct kura_audit_verify_opts *opt,
                                       struct kura_audit_verify_result *res /* OUT */);

/* Verifies state_dir/audit/audit.log, streaming. With use_head, head.json must exist, carry a
 * valid signature under opt->pubkey and name a checkpoint present in the log. Same returns as
 * kura_audit_verify_buffer plus I/O errors. */
enum kura_err kura_audit_verify_file(const char *state_dir,
                                     const struct kura_audit_verify_opts *opt, bool use_head,
                                     struct kura_audit_verify_result *res /* OUT */,
                                     struct kura_errbuf *eb);

/* ---- reading ---- */

/* One record as seen by kura_audit_show; strings are borrowed for the callback's duration. */
struct kura_audit_record {
    uint64_t seq;
    const char *time, *actor, *action, *object, *outcome;
    const char *details_json; /* compact JSON object */
    const char *line;         /* the raw line, line_len bytes, no newline */
    size_t line_len;
};

/* Filters; NULL/0 fields match everything. action may end in '*' for a prefix match. Times
 * are compared as strings ("2024-05-01" matches everything on or after that day for since). */
struct kura_audit_filter {
    const char *since, *until, *actor, *action;
    uint64_t from_seq, to_seq;
};

typedef int (*kura_audit_record_fn)(void *ud, const struct kura_audit_record *rec);

/* Calls fn for every well-formed record matching f, in order (no verification: use verify).
 * fn returning non-zero stops. Unparseable lines are skipped and counted in *n_skipped. */
enum kura_err kura_audit_show(const char *state_dir, const struct kura_audit_filter *f,
                              kura_audit_record_fn fn, void *ud,
                              uint64_t *n_skipped /* OUT, may be NULL */, struct kura_errbuf *eb);

/* ---- export ---- */

/* Verifies the log (it must be intact) and writes a bundle to out_path: the log's lines followed
 * by one signed trailer line {"bundle":"kura-audit-bundle-1",...} covering their count, byte
 * length, BLAKE2b hash and last record. An auditor checks it with kura_audit_verify_bundle and
 * only the public key. exported_by names the actor in the trailer. */
enum kura_err kura_audit_export(const char *state_dir, struct kura_keys *keys,
                                const char *exported_by, const char *out_path,
                                struct kura_audit_verify_result *res /* OUT */,
                                struct kura_errbuf *eb);

/* Verifies a bundle file with pubkey: trailer signature, body hash and length, then the whole
 * chain and every checkpoint signature. KURA_OK only when all hold. */
enum kura_err kura_audit_verify_bundle(const char *path, const uint8_t *pubkey,
                                       struct kura_audit_verify_result *res /* OUT */,
                                       struct kura_errbuf *eb);

#ifdef __cplusplus
}
#endif
#endif
