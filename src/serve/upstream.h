/* The server's bridge to kura_egress_chat (kura/egress.h). A separate file because egress.h and
 * chat.h each define a `struct kura_chat_msg` of their own; server.c only sees plain arrays. */
#ifndef KURA_SERVE_UPSTREAM_H
#define KURA_SERVE_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "kura/audit.h"
#include "kura/err.h"
#include "kura/policy.h"

/* Called with each piece of the restored answer text; a non-OK return aborts the transfer. */
typedef enum kura_err (*serve_upstream_text_fn)(void *ud, const char *text, size_t len);

/* Sends the chat (roles[i], contents[i], i < n) to destination `dest` through
 * kura_egress_chat: decision, pseudonymisation/redaction, POST, restore, audit. The restored
 * answer goes to fn (streamed as it arrives when stream). params_json (may be NULL): the
 * client's numeric generation parameters (kura_upstream_opts.params_json). *sent says whether anything left this
 * node; *http_status the upstream's final status (0 when none). KURA_ERR_PERM when the policy's
 * decision for dest does not send it upstream (the caller decided before and expected it to).
 * Blocking (libcurl); thread-safe. */
enum kura_err serve_upstream_chat(const struct kura_detector *det, const struct kura_policy *pol,
                                  struct kura_audit *audit, const char *dest,
                                  const char *const *roles, const char *const *contents, size_t n,
                                  bool stream, const char *params_json,
                                  serve_upstream_text_fn fn, void *ud, bool *sent /* OUT */,
                                  long *http_status /* OUT */, struct kura_errbuf *eb);

/* kura_egress_global_init (libcurl); call once before threads use serve_upstream_chat. */
enum kura_err serve_upstream_global_init(void);

#endif
