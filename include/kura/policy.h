/* kura: the policy engine. Finds personal and confidential data in text (Japanese and English),
 * classifies a request into a level, and decides what may leave this node for which destination.
 *
 * Detection runs on the NFKC-normalised text (full-width digits, mixed dashes); every finding
 * reports a byte span in the ORIGINAL input. Structured identifiers are validated (check digits,
 * Luhn, prefixes, context words), names come from MeCab's person tags plus honorific context,
 * addresses from prefecture + municipality + block-number patterns.
 *
 * Policy files (YAML) map finding types and operator rules to levels and configure destinations:
 * docs/policy.md. Pseudonymisation replaces findings with stable placeholders (<PERSON_1>) whose
 * mapping lives only in memory; a streaming restorer puts the originals back into an upstream's
 * answer that arrives in arbitrary chunks. */
#ifndef KURA_POLICY_H
#define KURA_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- detection ---- */

enum kura_pii_type {
    KURA_PII_MY_NUMBER = 0,
    KURA_PII_CORPORATE_NUMBER,
    KURA_PII_CREDIT_CARD,
    KURA_PII_PHONE,
    KURA_PII_EMAIL,
    KURA_PII_IP_ADDRESS,
    KURA_PII_BANK_ACCOUNT,
    KURA_PII_PASSPORT,
    KURA_PII_DRIVERS_LICENSE,
    KURA_PII_BIRTH_DATE,
    KURA_PII_HEALTH_INSURANCE,
    KURA_PII_PERSON,
    KURA_PII_ADDRESS,
    KURA_PII_POSTAL_CODE,
    KURA_PII_RULE, /* an operator rule from the policy file; its name is the finding's type */
    KURA_PII__COUNT
};

/* "my_number", "credit_card", ... ; "rule" for KURA_PII_RULE. Thread-safe, static strings. */
const char *kura_pii_type_name(enum kura_pii_type t);
/* Inverse of kura_pii_type_name for the built-in types; -1 when unknown. */
int kura_pii_type_from_name(const char *name);
/* True for the validated structured identifiers (everything but person, address and rules). */
bool kura_pii_type_is_structured(enum kura_pii_type t);

struct kura_finding {
    enum kura_pii_type type;
    size_t start, end;   /* byte span [start, end) in the original input */
    float confidence;    /* 0..1 */
    const char *rule;    /* id of the rule that fired ("jp_phone_hyphen", or the operator rule's
                            name); static or owned by the policy, valid while it lives */
    int rule_index;      /* operator rule index in the policy, -1 for built-in rules */
    uint32_t text_index; /* which input text (kura_policy_decide); 0 for kura_detect */
};

struct kura_findings {
    struct kura_finding *v; /* sorted by start, non-overlapping */
    size_t n, cap;
};

struct kura_detector; /* immutable after creation; shared by all threads */

struct kura_detector_options {
    bool no_mecab;          /* do not load MeCab (honorific rules only) */
    const char *mecab_dic;  /* dictionary directory; NULL = $KURA_MECAB_DIC, then the Debian
                               ipadic-utf8 locations */
};

/* Creates a detector. MeCab failing to load is not an error: detection then uses the honorific
 * and context rules only, and kura_detector_warning() says why. opt may be NULL. */
enum kura_err kura_detector_create(const struct kura_detector_options *opt,
                                   struct kura_detector **out /* OUT */, struct kura_errbuf *eb);
void kura_detector_destroy(struct kura_detector *d);
/* NULL when everything loaded, else a static-lifetime message (e.g. "MeCab unavailable: ..."). */
const char *kura_detector_warning(const struct kura_detector *d);
bool kura_detector_has_mecab(const struct kura_detector *d);

struct kura_policy;

/* Finds personal data in text[0..len) (UTF-8; invalid bytes are tolerated and never matched).
 * With a policy, its operator rules (keywords, PCRE2 patterns) run too. Appends to *out (call
 * kura_findings_free when done; *out must be zero-initialised or previously used). Thread-safe
 * (the detector and policy are only read). len is capped at KURA_POLICY_MAX_TEXT. */
enum kura_err kura_detect(const struct kura_detector *d, const struct kura_policy *pol,
                          const char *text, size_t len, struct kura_findings *out /* OUT */,
                          struct kura_errbuf *eb);
void kura_findings_free(struct kura_findings *f);
/* Type name of a finding: the operator rule's name for rules, else kura_pii_type_name. */
const char *kura_finding_type_name(const struct kura_finding *f);

/* NFKC with an offset map (exposed for tests and tools). *out_norm is malloc'd and
 * NUL-terminated; *out_map (malloc'd) has norm_len + 1 entries: map[i] is the original byte offset
 * where the source of normalised byte i starts, map[norm_len] = len. */
enum kura_err kura_policy_normalize(const char *text, size_t len, char **out_norm /* OUT */,
                                    size_t *out_norm_len /* OUT */, uint32_t **out_map /* OUT */,
                                    struct kura_errbuf *eb);

/* ---- policy files ---- */

enum kura_level { KURA_LEVEL_PUBLIC = 0, KURA_LEVEL_INTERNAL, KURA_LEVEL_CONFIDENTIAL,
                  KURA_LEVEL_SECRET };
const char *kura_level_name(enum kura_level l);

enum kura_action { KURA_ACTION_LOCAL = 0, KURA_ACTION_REDACT, KURA_ACTION_PSEUDONYMISE,
                   KURA_ACTION_REFUSE };
const char *kura_action_name(enum kura_action a);

enum kura_dest_kind { KURA_DEST_LOCAL = 0, KURA_DEST_UPSTREAM };

/* One destination as configured (read-only view owned by the policy). */
struct kura_destination {
    const char *name;
    enum kura_dest_kind kind;
    const char *url;           /* upstream base URL (".../v1"), NULL for local */
    const char *model;         /* model name sent upstream (defaults to name) */
    const char *jurisdiction;  /* "JP", "US", ...; NULL for local */
    const char *api_key_env;   /* environment variable holding the API key, or NULL */
    enum kura_level max_level; /* highest level allowed to go there */
    enum kura_action action;   /* what happens to a request above max_level */
};

/* Loads a policy (YAML). Errors name file:line: message. path "-" is not accepted here. */
enum kura_err kura_policy_load(const char *path, struct kura_policy **out /* OUT */,
                               struct kura_errbuf *eb);
/* Parses a policy from memory; name is used in messages. */
enum kura_err kura_policy_parse(const char *data, size_t len, const char *name,
                                struct kura_policy **out /* OUT */, struct kura_errbuf *eb);
/* The built-in default: every finding type "confidential", no upstream, nothing leaves. */
enum kura_err kura_policy_default(struct kura_policy **out /* OUT */, struct kura_errbuf *eb);
void kura_policy_destroy(struct kura_policy *p);

/* Lints a policy file: calls fn for every problem (all of them, not just the first) with its
 * 1-based line; returns the number of problems, or -1 when the file cannot be read. */
typedef void (*kura_policy_lint_fn)(void *ud, size_t line, const char *msg);
int kura_policy_lint(const char *path, kura_policy_lint_fn fn, void *ud);
int kura_policy_lint_buffer(const char *data, size_t len, kura_policy_lint_fn fn, void *ud);

size_t kura_policy_n_destinations(const struct kura_policy *p);
const struct kura_destination *kura_policy_destination(const struct kura_policy *p, size_t i);
const struct kura_destination *kura_policy_find_destination(const struct kura_policy *p,
                                                            const char *name);
/* Name of the model that means "choose for me" ("auto" unless the policy says otherwise). */
const char *kura_policy_auto_model(const struct kura_policy *p);
/* Level a finding raises the request to under this policy. */
enum kura_level kura_policy_level_of(const struct kura_policy *p, const struct kura_finding *f);

/* ---- decisions ---- */

enum kura_decision { KURA_DECISION_ALLOW = 0, KURA_DECISION_ROUTE_LOCAL, KURA_DECISION_REDACT,
                     KURA_DECISION_PSEUDONYMISE, KURA_DECISION_REFUSE };
const char *kura_decision_name(enum kura_decision d);

struct kura_pseudo; /* placeholder <-> original mapping of one request; in memory only */

struct kura_policy_result {
    enum kura_level level;
    enum kura_decision decision;
    const struct kura_destination *dest; /* where the request goes (NULL when refused) */
    char reason[256];                    /* human-readable, never contains finding values */
    struct kura_findings findings;       /* over the concatenated texts (see kura_policy_decide) */
    uint32_t type_mask;                  /* bit per kura_pii_type found */
};

/* Decides what happens to texts[0..n) (e.g. a chat's message contents) requested for
 * destination dest_name (a destination's name, the auto model name, or NULL = auto).
 * Findings are computed per text; their spans are relative to that text and each finding's
 * text index is in text_index[] order (findings of text 0 first). Unknown destination: refuse.
 * When the decision is redact/pseudonymise and pseudo is non-NULL, *pseudo receives a mapping
 * created for this request (destroy with kura_pseudo_destroy), and rewritten[i] (malloc'd,
 * NUL-terminated; free each) receives each text with its findings replaced. rewritten may be NULL
 * when not wanted. Thread-safe for distinct results. */
enum kura_err kura_policy_decide(const struct kura_detector *d, const struct kura_policy *pol,
                                 const char *const *texts, const size_t *lens, size_t n,
                                 const char *dest_name, struct kura_policy_result *res /* OUT */,
                                 struct kura_pseudo **pseudo /* OUT, may be NULL */,
                                 char **rewritten /* OUT: n entries, may be NULL */,
                                 struct kura_errbuf *eb);
void kura_policy_result_free(struct kura_policy_result *res);

/* ---- pseudonymisation ---- */

/* Creates an empty mapping. redact: placeholders are [REDACTED_TYPE] and never restored. */
enum kura_err kura_pseudo_create(bool redact, struct kura_pseudo **out /* OUT */);
/* Wipes and frees the mapping. NULL is a no-op. */
void kura_pseudo_destroy(struct kura_pseudo *p);
/* Rewrites text with findings f (spans into text, sorted, non-overlapping) replaced by
 * placeholders; the same value of the same type always gets the same placeholder within one
 * mapping. *out is malloc'd, NUL-terminated. Not thread-safe for one mapping. */
enum kura_err kura_pseudo_apply(struct kura_pseudo *p, const char *text, size_t len,
                                const struct kura_findings *f, char **out /* OUT */,
                                size_t *out_len /* OUT */);
size_t kura_pseudo_count(const struct kura_pseudo *p);

/* Streaming restorer: feed the upstream's answer in arbitrary chunks; it emits text with every
 * known placeholder replaced by its original, holding back only a possible placeholder prefix
 * at the end of a chunk (never half a placeholder). */
struct kura_restorer;
typedef enum kura_err (*kura_restorer_emit_fn)(void *ud, const char *data, size_t len);
enum kura_err kura_restorer_create(const struct kura_pseudo *p, kura_restorer_emit_fn emit,
                                   void *ud, struct kura_restorer **out /* OUT */);
enum kura_err kura_restorer_feed(struct kura_restorer *r, const char *data, size_t len);
/* Emits what is held back. */
enum kura_err kura_restorer_finish(struct kura_restorer *r);
void kura_restorer_destroy(struct kura_restorer *r);
/* Convenience: restores a whole buffer; *out malloc'd, NUL-terminated. */
enum kura_err kura_pseudo_restore(const struct kura_pseudo *p, const char *text, size_t len,
                                  char **out /* OUT */, size_t *out_len /* OUT */);

#ifdef __cplusplus
}
#endif
#endif
