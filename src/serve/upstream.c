/* kura serve -> kura_egress_chat (see serve/upstream.h). */
#include "serve/upstream.h"

#include <stdlib.h>
#include <string.h>

#include "kura/egress.h"

enum kura_err serve_upstream_global_init(void)
{
    return kura_egress_global_init();
}

enum kura_err serve_upstream_chat(const struct kura_detector *det, const struct kura_policy *pol,
                                  struct kura_audit *audit, const char *dest,
                                  const char *const *roles, const char *const *contents, size_t n,
                                  bool stream, const char *params_json,
                                  serve_upstream_text_fn fn, void *ud, bool *sent,
                                  long *http_status, struct kura_errbuf *eb)
{
    *sent = false;
    *http_status = 0;
    if (n == 0)
        return kura_err_set(eb, KURA_ERR_INVALID, "chat request without messages");
    struct kura_chat_msg *msgs = calloc(n, sizeof *msgs);
    if (!msgs)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        msgs[i].role = roles[i];
        msgs[i].content = contents[i] ? contents[i] : "";
        msgs[i].content_len = strlen(msgs[i].content);
    }
    struct kura_egress_result res;
    struct kura_upstream_opts opt = {.params_json = params_json};
    enum kura_err e = kura_egress_chat(det, pol, audit, dest, msgs, n, stream, &opt, fn, ud, &res,
                                       eb);
    free(msgs);
    if (e)
        return e;
    *sent = res.sent;
    *http_status = res.http_status;
    if (!res.sent)
        e = kura_err_set(eb, KURA_ERR_PERM, "the policy does not send this request to '%s' (%s)",
                         dest, kura_decision_name(res.policy.decision));
    kura_egress_result_free(&res);
    return e;
}
