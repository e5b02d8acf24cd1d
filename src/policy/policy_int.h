/* Internals shared by the policy engine's files. */
#ifndef KURA_POLICY_INT_H
#define KURA_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "kura/policy.h"

#define KURA_NMAP_CONT 0x80000000u /* map entry flag: byte is not the first of its segment */

/* Original start / end offsets of normalised positions (see normalize.c). */
size_t kura_nmap_start(const uint32_t *map, size_t pos);
size_t kura_nmap_end(const uint32_t *map, size_t norm_len, size_t pos);

/* Appends a finding (spans in whatever coordinates the caller uses). -1 on OOM / cap. */
int kura_findings_push(struct kura_findings *f, enum kura_pii_type type, size_t start, size_t end,
                       float conf, const char *rule, int rule_index);

/* Person names through MeCab (names.c). Opaque model handle. */
struct kura_mecab;
struct kura_mecab *kura_mecab_open(const char *dic, char *why, size_t why_len);
void kura_mecab_close(struct kura_mecab *m);
/* Appends person findings in normalised coordinates. -1 on error (OOM or MeCab failure). */
int kura_mecab_persons(struct kura_mecab *m, const char *norm, size_t n,
                       struct kura_findings *out);

struct kura_detector {
    struct kura_mecab *mecab;
    char warning[512];
    bool has_warning;
    pcre2_code *re_en_address;
    pcre2_code *re_en_person;
    pcre2_code *re_en_name_ctx;
};

/* ---- policy ---- */

struct kura_op_rule {
    char *name;             /* finding type name */
    enum kura_level level;
    float confidence;
    char **keywords;        /* NFKC-normalised; ASCII compared case-insensitively */
    size_t *kw_len;
    size_t n_keywords;
    pcre2_code *re;         /* or NULL */
    char *pattern;
};

struct kura_policy {
    enum kura_level type_level[KURA_PII__COUNT];
    enum kura_level default_level;   /* level of a text without findings */
    struct kura_op_rule *rules;
    size_t n_rules;
    struct kura_destination *dests;
    size_t n_dests;
    char *default_dest;              /* destination of "auto" requests when allowed; NULL = the
                                        first upstream */
    char *local_dest;                /* destination for route_local; NULL = first local one */
    char *auto_model;
    float min_confidence;            /* findings below are ignored for the level */
};

/* Operator rules over normalised text (detect.c calls it). KURA_ERR_NOMEM, or KURA_ERR_BUSY when
 * a rule's regular expression gives up (PCRE2's match or heap limit) before the whole text was
 * checked: the caller must then not treat the text as checked (fail closed). */
enum kura_err kura_policy_run_rules(const struct kura_policy *p, const char *norm, size_t n,
                                    struct kura_findings *out, struct kura_errbuf *eb);

#endif
