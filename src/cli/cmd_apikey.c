/* kura apikey create|list|revoke: API keys for `kura serve`. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_state.h"
#include "kura/apikey.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: kura apikey create --name NAME --role admin|user [options]\n"
            "       kura apikey list [--json] [options]\n"
            "       kura apikey revoke NAME [options]\n\n"
            "create   make a new key and print its secret once, as the last word of the last\n"
            "         line; only a keyed BLAKE2b hash of it is stored (DIR/apikeys.json)\n"
            "list     print the keys' names, roles, creation times and public ids\n"
            "revoke   delete a key; a running server refuses it from its next request on\n\n"
            "Roles: 'user' may call the inference endpoints (/v1/...); 'admin' may also read\n"
            "/metrics.\n\n"
            "options:\n" CLI_STATE_HELP
            "  -h, --help             this help\n\n"
            "create and revoke are recorded in the audit log. Exit codes: 0 ok, 1 error, 2 usage.\n");
}

int cmd_apikey(int argc, char **argv);

int cmd_apikey(int argc, char **argv)
{
    struct cli_state s;
    cli_state_init(&s, "apikey");
    const char *sub = NULL, *name = NULL, *role_s = NULL, *pos = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (kura_cli_is_help(a)) {
            help(stdout);
            return KURA_EXIT_OK;
        }
        int r = cli_state_option(&s, argc, argv, &i);
        if (r < 0)
            return KURA_EXIT_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--name") == 0) {
            if (!(name = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if (strcmp(a, "--role") == 0) {
            if (!(role_s = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "kura apikey: unknown option '%s' (see --help)\n", a);
            return KURA_EXIT_USAGE;
        } else if (!sub) {
            sub = a;
        } else if (!pos) {
            pos = a;
        } else {
            fprintf(stderr, "kura apikey: unexpected argument '%s'\n", a);
            return KURA_EXIT_USAGE;
        }
    }
    if (!sub) {
        help(stderr);
        return KURA_EXIT_USAGE;
    }
    enum kura_apikey_role role = KURA_APIKEY_USER;
    if (strcmp(sub, "create") == 0) {
        if (!name || !role_s || pos) {
            fprintf(stderr, "kura apikey create: --name NAME and --role admin|user are required\n");
            return KURA_EXIT_USAGE;
        }
        if (!kura_apikey_role_parse(role_s, &role)) {
            fprintf(stderr, "kura apikey create: --role must be 'admin' or 'user', not '%s'\n",
                    role_s);
            return KURA_EXIT_USAGE;
        }
    } else if (strcmp(sub, "revoke") == 0) {
        if (!pos && name)
            pos = name;
        if (!pos) {
            fprintf(stderr, "kura apikey revoke: which key? (kura apikey revoke NAME)\n");
            return KURA_EXIT_USAGE;
        }
    } else if (strcmp(sub, "list") == 0) {
        if (pos) {
            fprintf(stderr, "kura apikey list: unexpected argument '%s'\n", pos);
            return KURA_EXIT_USAGE;
        }
    } else {
        fprintf(stderr, "kura apikey: unknown subcommand '%s' (create, list, revoke)\n", sub);
        return KURA_EXIT_USAGE;
    }
    s.cmd = strcmp(sub, "create") == 0 ? "apikey create"
            : strcmp(sub, "revoke") == 0 ? "apikey revoke" : "apikey list";
    int rc = cli_state_resolve(&s);
    if (rc)
        return rc;
    struct kura_keys *k = NULL;
    if ((rc = cli_state_unlock(&s, &k)))
        return rc;
    struct kura_errbuf eb = {0};
    struct kura_apikeys *ks = NULL;
    if (kura_apikeys_open(s.dir, k, &ks, &eb)) {
        fprintf(stderr, "kura %s: %s\n", s.cmd, eb.msg);
        kura_keys_destroy(k);
        return KURA_EXIT_RUNTIME;
    }
    struct kura_apikey_info info;
    char det[512];
    if (strcmp(sub, "create") == 0) {
        char secret[KURA_APIKEY_SECRET_LEN];
        if (kura_apikeys_create(ks, name, role, secret, &info, &eb)) {
            fprintf(stderr, "kura apikey create: %s\n", eb.msg);
            snprintf(det, sizeof det, "{\"role\":\"%s\",\"error\":\"%s\"}",
                     kura_apikey_role_name(role), kura_err_str(eb.code));
            cli_state_audit(&s, k, "apikey.create", name, "error", det, NULL);
            rc = eb.code == KURA_ERR_INVALID ? KURA_EXIT_USAGE : KURA_EXIT_RUNTIME;
        } else {
            snprintf(det, sizeof det, "{\"role\":\"%s\",\"id\":\"%s\"}",
                     kura_apikey_role_name(role), info.id);
            rc = cli_state_audit(&s, k, "apikey.create", name, "ok", det, NULL);
            if (!rc) {
                printf("created %s key '%s' (id %s)\n", kura_apikey_role_name(role), name,
                       info.id);
                printf("It is shown only now; store it safely. API key: %s\n", secret);
            }
            sodium_memzero(secret, sizeof secret);
        }
    } else if (strcmp(sub, "revoke") == 0) {
        enum kura_err e = kura_apikeys_revoke(ks, pos, &info, &eb);
        if (e) {
            fprintf(stderr, "kura apikey revoke: %s\n", eb.msg);
            rc = KURA_EXIT_RUNTIME;
            if (e != KURA_ERR_NOTFOUND)
                cli_state_audit(&s, k, "apikey.revoke", pos, "error", NULL, NULL);
        } else {
            snprintf(det, sizeof det, "{\"role\":\"%s\",\"id\":\"%s\"}",
                     kura_apikey_role_name(info.role), info.id);
            rc = cli_state_audit(&s, k, "apikey.revoke", pos, "ok", det, NULL);
            if (!rc)
                printf("revoked key '%s' (id %s)\n", pos, info.id);
        }
    } else {
        struct kura_apikey_info *all = NULL;
        size_t n = 0;
        if (kura_apikeys_list(ks, &all, &n, &eb)) {
            fprintf(stderr, "kura apikey list: %s\n", eb.msg);
            rc = KURA_EXIT_RUNTIME;
        } else {
            for (size_t i = 0; i < n; i++) {
                if (json)
                    printf("{\"name\":\"%s\",\"role\":\"%s\",\"created\":\"%s\",\"id\":\"%s\"}\n",
                           all[i].name, kura_apikey_role_name(all[i].role), all[i].created,
                           all[i].id);
                else
                    printf("%-24s %-6s %s  %s\n", all[i].name, kura_apikey_role_name(all[i].role),
                           all[i].created, all[i].id);
            }
            if (!json && n == 0)
                printf("no API keys (create one with: kura apikey create --name NAME --role user)\n");
        }
        free(all);
    }
    kura_apikeys_destroy(ks);
    kura_keys_destroy(k);
    return rc;
}

KURA_CLI_COMMAND(apikey, "apikey", "create, list and revoke API keys for kura serve", cmd_apikey)
