/* kura serve: the OpenAI-compatible server (see include/kura/serve.h, docs/serve.md). */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "cli/cli_state.h"
#include "kura/serve.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: kura serve -m MODEL.gguf [-m MODEL2.gguf ...] [--config kura.yaml] [options]\n\n"
            "An OpenAI-compatible HTTP server: POST /v1/chat/completions, /v1/completions,\n"
            "/v1/embeddings; GET /v1/models, /health (no key), /metrics (admin key).\n"
            "Every route but /health needs 'Authorization: Bearer <key>' (kura apikey create).\n"
            "Every key use, key failure and request is recorded in the audit log.\n\n"
            "Policy (--policy FILE, docs/policy.md): every chat/completion request is checked\n"
            "for personal data; the policy's upstream destinations and its auto model (\"auto\")\n"
            "are models too. \"auto\" goes upstream when the request's level allows it, else to\n"
            "a local model; an explicit upstream is refused (403), rerouted, redacted or\n"
            "pseudonymised per policy. Responses carry x-kura-route and x-kura-level. Without\n"
            "a policy file nothing leaves this node.\n\n"
            "Models:\n"
            "  -m, --model PATH       serve a GGUF model (repeatable); its name is the file name\n"
            "  --model-name NAME      name for the preceding -m (what requests put in \"model\")\n"
            "  --chat-template NAME   chat template for the preceding -m (default: from the file)\n\n"
            "Options (each is also a key of the YAML config file, shown on the right):\n"
            "  --config FILE          read settings from a YAML file first; flags override it\n"
            "  --rate-key NAME:RPM:TPM  rate limit for one API key by name, overriding its\n"
            "                         role's (repeatable)  [rate_limits.keys.NAME]\n");
    size_t n;
    const struct kura_serve_option_doc *d = kura_serve_option_docs(&n);
    for (size_t i = 0; i < n; i++) {
        char lhs[64];
        snprintf(lhs, sizeof lhs, "%s %s", d[i].flag, d[i].arg);
        fprintf(f, "  %-22s %s\n  %-22s   [%s]\n", lhs, d[i].help, "", d[i].name);
    }
    fprintf(f,
            "\nState and keys:\n" CLI_STATE_HELP
            "  -h, --help             this help\n\n"
            "Config file example (kura.yaml):\n"
            "  listen: {host: 127.0.0.1, port: 8080}\n"
            "  tls: {cert: /etc/kura/cert.pem, key: /etc/kura/key.pem}\n"
            "  limits: {max_body_bytes: 4194304, max_connections: 2048, queue: 64}\n"
            "  engine: {slots: 4, ctx: 4096, threads: 8}\n"
            "  rate_limits:\n"
            "    user: {requests_per_min: 60, tokens_per_min: 100000}\n"
            "    keys: {batch-job: {requests_per_min: 600, tokens_per_min: 0}}\n"
            "  audit: {log_prompts: false}\n"
            "  policy: /etc/kura/policy.yaml\n"
            "  models:\n"
            "    - {name: llama3, path: /srv/models/llama3.gguf, slots: 8, ctx: 8192}\n\n"
            "Stops cleanly on SIGINT/SIGTERM. Exit codes: 0 ok, 1 runtime error, 2 usage.\n");
}

static const char *flag_name(const char *flag)
{
    size_t n;
    const struct kura_serve_option_doc *d = kura_serve_option_docs(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(d[i].flag, flag) == 0)
            return d[i].name;
    return NULL;
}

int cmd_serve(int argc, char **argv);

int cmd_serve(int argc, char **argv)
{
    struct cli_state st;
    cli_state_init(&st, "serve");
    struct kura_serve_config cfg;
    kura_serve_config_init(&cfg);
    struct kura_errbuf eb = {0};
    int rc = KURA_EXIT_USAGE;
    struct kura_keys *keys = NULL;
    struct kura_audit *log = NULL;
    struct kura_server *srv = NULL;

    /* The config file first, so flags override it wherever they appear. */
    for (int i = 1; i < argc; i++) {
        if (kura_cli_is_help(argv[i])) {
            help(stdout);
            rc = KURA_EXIT_OK;
            goto out;
        }
        if (strcmp(argv[i], "--config") == 0) {
            const char *f = kura_cli_optarg(argc, argv, &i);
            if (!f)
                goto out;
            if (kura_serve_config_load(&cfg, f, &eb)) {
                fprintf(stderr, "kura serve: %s\n", eb.msg);
                goto out;
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_state_option(&st, argc, argv, &i);
        if (r < 0)
            goto out;
        if (r > 0)
            continue;
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        const char *v;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            if (!(v = kura_cli_optarg(argc, argv, &i)))
                goto out;
            if (kura_serve_config_add_model(&cfg, v, NULL, &eb)) {
                fprintf(stderr, "kura serve: %s\n", eb.msg);
                goto out;
            }
        } else if (strcmp(a, "--model-name") == 0 || strcmp(a, "--chat-template") == 0) {
            if (!(v = kura_cli_optarg(argc, argv, &i)))
                goto out;
            if (cfg.n_models == 0) {
                fprintf(stderr, "kura serve: %s must follow a -m MODEL\n", a);
                goto out;
            }
            char **dst = a[2] == 'm' ? &cfg.models[cfg.n_models - 1].name
                                     : &cfg.models[cfg.n_models - 1].chat_template;
            char *d = strdup(v);
            if (!d)
                goto out;
            free(*dst);
            *dst = d;
        } else if (strcmp(a, "--rate-key") == 0) {
            if (!(v = kura_cli_optarg(argc, argv, &i)))
                goto out;
            if (kura_serve_config_key_rate_spec(&cfg, v, &eb)) {
                fprintf(stderr, "kura serve: %s\n", eb.msg);
                goto out;
            }
        } else if (strcmp(a, "--log-prompts") == 0 && (i + 1 >= argc || argv[i + 1][0] == '-')) {
            cfg.log_prompts = true;
        } else if (flag_name(a)) {
            if (!(v = kura_cli_optarg(argc, argv, &i)))
                goto out;
            if (kura_serve_config_set(&cfg, flag_name(a), v, a, &eb)) {
                fprintf(stderr, "kura serve: %s\n", eb.msg);
                goto out;
            }
        } else {
            fprintf(stderr, "kura serve: unknown option '%s' (see --help)\n", a);
            goto out;
        }
    }
    if (kura_serve_config_check(&cfg, &eb)) {
        fprintf(stderr, "kura serve: %s\n", eb.msg);
        goto out;
    }
    if (!cfg.tls_cert && strcmp(cfg.host, "127.0.0.1") != 0 && strcmp(cfg.host, "::1") != 0 &&
        strcmp(cfg.host, "localhost") != 0)
        fprintf(stderr, "kura serve: warning: listening on %s without TLS: API keys, prompts and "
                        "answers cross the network in clear text (see --tls-cert)\n", cfg.host);
    if ((rc = cli_state_resolve(&st)))
        goto out;
    if ((rc = cli_state_unlock(&st, &keys)))
        goto out;
    rc = KURA_EXIT_RUNTIME;
    struct kura_audit_open_info info;
    if (kura_audit_open(st.dir, keys, NULL, &log, &info, &eb)) {
        fprintf(stderr, "kura serve: audit log: %s\n", eb.msg);
        goto out;
    }
    if (info.sealed)
        fprintf(stderr, "kura serve: warning: the audit log had a torn tail; sealed by record "
                        "%llu\n", (unsigned long long)info.seal_seq);

    /* Many connections need many descriptors. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Every thread started from here on inherits the blocked signals; main waits for them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (kura_server_create(&cfg, st.dir, keys, log, st.actor, &srv, &eb)) {
        fprintf(stderr, "kura serve: %s\n", eb.msg);
        json_t *d = json_pack("{s:s}", "error", eb.msg);
        char *ds = json_dumps(d, JSON_COMPACT);
        kura_audit_append(log, st.actor, "server.start", "kura serve", "error", ds, NULL, NULL);
        free(ds);
        json_decref(d);
        goto out;
    }
    json_t *d = json_pack("{s:s,s:i,s:b,s:i}", "host", cfg.host, "port", kura_server_port(srv),
                          "tls", cfg.tls_cert != NULL, "models", cfg.n_models);
    json_t *names = json_array();
    for (int i = 0; i < cfg.n_models; i++)
        json_array_append_new(names, json_string(cfg.models[i].name));
    json_object_set_new(d, "model_names", names);
    char *ds = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    kura_audit_append(log, st.actor, "server.start", "kura serve", "ok", ds, NULL, NULL);
    free(ds);
    printf("kura serve: listening on %s://%s:%d (%d model%s)\n", cfg.tls_cert ? "https" : "http",
           cfg.host, kura_server_port(srv), cfg.n_models, cfg.n_models == 1 ? "" : "s");
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "kura serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    kura_server_destroy(srv);
    srv = NULL;
    char det[64];
    snprintf(det, sizeof det, "{\"signal\":\"%s\"}", sig == SIGINT ? "SIGINT" : "SIGTERM");
    kura_audit_append(log, st.actor, "server.stop", "kura serve", "ok", det, NULL, NULL);
    rc = KURA_EXIT_OK;
out:
    kura_server_destroy(srv);
    if (log && kura_audit_close(log, &eb)) {
        fprintf(stderr, "kura serve: audit log: %s\n", eb.msg);
        rc = KURA_EXIT_RUNTIME;
    }
    kura_keys_destroy(keys);
    kura_serve_config_deinit(&cfg);
    return rc;
}

KURA_CLI_COMMAND(serve, "serve", "OpenAI-compatible HTTP server with API keys", cmd_serve)
