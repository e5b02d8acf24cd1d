#include "cli/cli_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

void cli_state_init(struct cli_state *s, const char *cmd)
{
    memset(s, 0, sizeof *s);
    s->cmd = cmd;
    s->pass_fd = -1;
}

int cli_state_option(struct cli_state *s, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "--state-dir") == 0) {
        if (!(s->state_dir_opt = kura_cli_optarg(argc, argv, i)))
            return -1;
        return 1;
    }
    if (strcmp(a, "--passphrase-file") == 0) {
        if (!(s->pass_file = kura_cli_optarg(argc, argv, i)))
            return -1;
        return 1;
    }
    if (strcmp(a, "--passphrase-fd") == 0) {
        const char *v = kura_cli_optarg(argc, argv, i);
        int64_t fd;
        if (!v || !kura_cli_parse_i64("--passphrase-fd", v, 0, 1 << 20, &fd))
            return -1;
        s->pass_fd = (int)fd;
        return 1;
    }
    return 0;
}

int cli_state_resolve(struct cli_state *s)
{
    struct kura_errbuf eb = {0};
    if (kura_state_resolve(s->state_dir_opt, s->dir, sizeof s->dir, &eb)) {
        fprintf(stderr, "kura %s: %s\n", s->cmd, eb.msg);
        return KURA_EXIT_USAGE;
    }
    kura_state_local_actor(s->actor, sizeof s->actor);
    return KURA_EXIT_OK;
}

int cli_state_passphrase(struct cli_state *s, const char *prompt, bool confirm,
                         struct kura_secret **out)
{
    struct kura_errbuf eb = {0};
    struct kura_passphrase_source src = {.file = s->pass_file,
                                         .fd = s->pass_fd,
                                         .allow_prompt = true,
                                         .prompt = prompt,
                                         .confirm = confirm};
    if (kura_state_passphrase(&src, out, &eb)) {
        fprintf(stderr, "kura %s: %s\n", s->cmd, eb.msg);
        return KURA_EXIT_RUNTIME;
    }
    return KURA_EXIT_OK;
}

int cli_state_unlock(struct cli_state *s, struct kura_keys **out)
{
    struct kura_errbuf eb = {0};
    struct kura_secret *p = NULL;
    *out = NULL;
    kura_state_no_core_dumps();
    int rc = cli_state_passphrase(s, "kura passphrase: ", false, &p);
    if (rc)
        return rc;
    enum kura_err e = kura_keys_open(s->dir, p, out, &eb);
    kura_secret_destroy(p);
    if (e) {
        fprintf(stderr, "kura %s: %s\n", s->cmd, eb.msg);
        return KURA_EXIT_RUNTIME;
    }
    return KURA_EXIT_OK;
}

int cli_state_audit(struct cli_state *s, struct kura_keys *k, const char *action,
                    const char *object, const char *outcome, const char *details_json,
                    uint64_t *seq)
{
    struct kura_errbuf eb = {0};
    struct kura_audit *log = NULL;
    struct kura_audit_open_info info;
    struct kura_audit_options o = {.no_timer = true};
    if (kura_audit_open(s->dir, k, &o, &log, &info, &eb)) {
        fprintf(stderr, "kura %s: audit log: %s\n", s->cmd, eb.msg);
        return KURA_EXIT_RUNTIME;
    }
    if (info.sealed)
        fprintf(stderr,
                "kura %s: warning: the audit log had a torn tail of %" PRIu64 " bytes at offset "
                "%" PRIu64 " (an interrupted write); it was sealed by record %" PRIu64 "\n",
                s->cmd, info.torn_len, info.torn_offset, info.seal_seq);
    enum kura_err e = kura_audit_append(log, s->actor, action, object, outcome, details_json, seq,
                                        &eb);
    if (e) {
        fprintf(stderr, "kura %s: audit log: %s\n", s->cmd, eb.msg);
        kura_audit_close(log, NULL);
        return KURA_EXIT_RUNTIME;
    }
    if (kura_audit_close(log, &eb)) {
        fprintf(stderr, "kura %s: audit log: %s\n", s->cmd, eb.msg);
        return KURA_EXIT_RUNTIME;
    }
    return KURA_EXIT_OK;
}
