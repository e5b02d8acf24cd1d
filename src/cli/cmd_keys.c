/* kura keys init|rotate|export-public|status: the operator-held key hierarchy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_state.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: kura keys init [options]\n"
            "       kura keys rotate [--new-passphrase-file F | --keep-passphrase] [options]\n"
            "       kura keys export-public [--state-dir DIR]\n"
            "       kura keys status [--state-dir DIR]\n\n"
            "init           create the master key (wrapped by your passphrase with Argon2id),\n"
            "               the Ed25519 node signing key and the data keys under DIR/keys/\n"
            "rotate         wrap the keys under a new master key (and optionally a new\n"
            "               passphrase: $KURA_NEW_PASSPHRASE, --new-passphrase-file or a\n"
            "               prompt); data encrypted under the data keys stays readable\n"
            "export-public  print the node's signing public key for auditors\n"
            "status         print key ids, KDF parameters and data key purposes (no secrets)\n\n"
            "options:\n" CLI_STATE_HELP
            "  -h, --help             this help\n\n"
            "init and rotate are recorded in the audit log. Exit codes: 0 ok, 1 error, 2 usage.\n");
}

static int do_init(struct cli_state *s)
{
    struct kura_errbuf eb = {0};
    struct kura_secret *p = NULL;
    struct kura_keys *k = NULL;
    int rc = cli_state_passphrase(s, "new kura passphrase: ", true, &p);
    if (rc)
        return rc;
    kura_state_no_core_dumps();
    enum kura_err e = kura_keys_init(s->dir, p, NULL, &eb);
    if (!e)
        e = kura_keys_open(s->dir, p, &k, &eb);
    kura_secret_destroy(p);
    if (e) {
        fprintf(stderr, "kura keys init: %s\n", eb.msg);
        return KURA_EXIT_RUNTIME;
    }
    uint8_t pk[KURA_KEYS_PUBLIC_LEN];
    char pub[KURA_KEYS_PUBLIC_TEXT_LEN], id[KURA_KEYS_ID_LEN], det[256];
    kura_keys_public(k, pk);
    kura_keys_format_public(pk, pub);
    kura_keys_key_id(pk, id);
    snprintf(det, sizeof det, "{\"signing_key_id\":\"%s\",\"master_id\":\"%s\"}", id,
             kura_keys_master_id(k));
    rc = cli_state_audit(s, k, "keys.init", "keys", "ok", det, NULL);
    kura_keys_destroy(k);
    if (rc)
        return rc;
    printf("initialised keys in %s/keys\nsigning public key: %s\n", s->dir, pub);
    return KURA_EXIT_OK;
}

static int do_rotate(struct cli_state *s, const char *new_file, bool keep)
{
    struct kura_errbuf eb = {0};
    struct kura_secret *oldp = NULL, *newp = NULL;
    struct kura_keys *k = NULL;
    int rc = cli_state_passphrase(s, "current kura passphrase: ", false, &oldp);
    if (rc)
        return rc;
    kura_state_no_core_dumps();
    if (!keep) {
        struct kura_errbuf peb = {0};
        struct kura_passphrase_source src = {.file = new_file,
                                             .fd = -1,
                                             .env = "KURA_NEW_PASSPHRASE",
                                             .allow_prompt = true,
                                             .prompt = "new kura passphrase: ",
                                             .confirm = true};
        if (kura_state_passphrase(&src, &newp, &peb)) {
            fprintf(stderr, "kura keys rotate: new passphrase: %s (or use --keep-passphrase)\n",
                    peb.msg);
            kura_secret_destroy(oldp);
            return KURA_EXIT_RUNTIME;
        }
    }
    char old_id[KURA_KEYS_ID_LEN], new_id[KURA_KEYS_ID_LEN];
    enum kura_err e = kura_keys_rotate(s->dir, oldp, newp, NULL, old_id, new_id, &eb);
    if (!e)
        e = kura_keys_open(s->dir, newp ? newp : oldp, &k, &eb);
    kura_secret_destroy(oldp);
    kura_secret_destroy(newp);
    if (e) {
        fprintf(stderr, "kura keys rotate: %s\n", eb.msg);
        return KURA_EXIT_RUNTIME;
    }
    char det[256];
    snprintf(det, sizeof det,
             "{\"old_master_id\":\"%s\",\"new_master_id\":\"%s\",\"passphrase_changed\":%s}",
             old_id, new_id, keep ? "false" : "true");
    rc = cli_state_audit(s, k, "keys.rotate", "keys", "ok", det, NULL);
    kura_keys_destroy(k);
    if (rc)
        return rc;
    printf("rotated master key %s -> %s%s\n", old_id, new_id,
           keep ? "" : " (new passphrase)");
    return KURA_EXIT_OK;
}

static int cmd_keys(int argc, char **argv)
{
    struct cli_state s;
    cli_state_init(&s, "keys");
    const char *sub = NULL, *new_file = NULL;
    bool keep = false;
    for (int i = 1; i < argc; i++) {
        int r;
        if (kura_cli_is_help(argv[i])) {
            help(stdout);
            return KURA_EXIT_OK;
        } else if ((r = cli_state_option(&s, argc, argv, &i)) != 0) {
            if (r < 0)
                return KURA_EXIT_USAGE;
        } else if (strcmp(argv[i], "--new-passphrase-file") == 0) {
            if (!(new_file = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if (strcmp(argv[i], "--keep-passphrase") == 0) {
            keep = true;
        } else if (argv[i][0] != '-' && !sub) {
            sub = argv[i];
        } else {
            fprintf(stderr, "kura keys: unexpected argument '%s'\n", argv[i]);
            help(stderr);
            return KURA_EXIT_USAGE;
        }
    }
    if (!sub) {
        help(stderr);
        return KURA_EXIT_USAGE;
    }
    char name[64];
    snprintf(name, sizeof name, "keys %s", sub);
    s.cmd = name;
    if ((new_file || keep) && strcmp(sub, "rotate") != 0) {
        fprintf(stderr, "kura keys: --new-passphrase-file/--keep-passphrase are for rotate\n");
        return KURA_EXIT_USAGE;
    }
    int rc = cli_state_resolve(&s);
    if (rc)
        return rc;
    struct kura_errbuf eb = {0};
    if (strcmp(sub, "init") == 0)
        return do_init(&s);
    if (strcmp(sub, "rotate") == 0)
        return do_rotate(&s, new_file, keep);
    if (strcmp(sub, "export-public") == 0) {
        uint8_t pk[KURA_KEYS_PUBLIC_LEN];
        char pub[KURA_KEYS_PUBLIC_TEXT_LEN];
        if (kura_keys_read_public(s.dir, pk, &eb)) {
            fprintf(stderr, "kura keys export-public: %s\n", eb.msg);
            return KURA_EXIT_RUNTIME;
        }
        kura_keys_format_public(pk, pub);
        printf("%s\n", pub);
        return KURA_EXIT_OK;
    }
    if (strcmp(sub, "status") == 0) {
        char *st = NULL;
        if (kura_keys_status(s.dir, &st, &eb)) {
            fprintf(stderr, "kura keys status: %s\n", eb.msg);
            return KURA_EXIT_RUNTIME;
        }
        printf("%s\n", st);
        free(st);
        return KURA_EXIT_OK;
    }
    fprintf(stderr, "kura keys: unknown subcommand '%s'\n", sub);
    help(stderr);
    return KURA_EXIT_USAGE;
}

KURA_CLI_COMMAND(keys, "keys", "operator-held keys: init, rotate, export-public, status", cmd_keys)
