/* kura policy check|lint: findings and decision for a text; policy file validation. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/limits.h"
#include "kura/policy.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: kura policy check [FILE|-] [--policy POLICY.yaml] [--dest NAME] [--json]\n"
            "       kura policy lint POLICY.yaml\n\n"
            "check  finds personal and confidential data in FILE (stdin when absent or '-') and\n"
            "       prints the findings (type, byte span, rule, confidence), the level and the\n"
            "       decision for destination NAME (default: the policy's auto model).\n"
            "       --json prints one object {\"findings\":[{\"type\",\"start\",\"end\",\"rule\",\n"
            "       \"confidence\"}],\"level\",\"decision\"} with byte offsets into the input.\n"
            "       --no-mecab: honorific rules only for person names.\n"
            "lint   validates a policy file; every problem is printed as FILE:LINE: message.\n");
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (n == cap) {
            if (cap >= KURA_POLICY_MAX_TEXT + 1) {
                free(buf);
                errno = EFBIG;
                return NULL;
            }
            cap *= 2;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f) || n > KURA_POLICY_MAX_TEXT) {
        free(buf);
        errno = n > KURA_POLICY_MAX_TEXT ? EFBIG : EIO;
        return NULL;
    }
    *len = n;
    return buf;
}

static int cmd_check(int argc, char **argv)
{
    const char *file = NULL, *policy_path = NULL, *dest = NULL;
    bool json = false, no_mecab = false;
    for (int i = 2; i < argc; i++) {
        if (kura_cli_is_help(argv[i])) {
            help(stdout);
            return KURA_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (!strcmp(argv[i], "--no-mecab")) {
            no_mecab = true;
        } else if (!strcmp(argv[i], "--policy")) {
            if (!(policy_path = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--dest")) {
            if (!(dest = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if ((argv[i][0] == '-' && argv[i][1]) || file) {
            fprintf(stderr, "kura policy check: unexpected argument '%s'\n", argv[i]);
            help(stderr);
            return KURA_EXIT_USAGE;
        } else {
            file = argv[i];
        }
    }
    int rc = KURA_EXIT_RUNTIME;
    struct kura_errbuf eb = {0};
    struct kura_policy *pol = NULL;
    struct kura_detector *det = NULL;
    struct kura_policy_result res;
    memset(&res, 0, sizeof res);
    char *text = NULL;
    size_t len = 0;
    FILE *in = stdin;
    if (file && strcmp(file, "-") != 0 && !(in = fopen(file, "rb"))) {
        fprintf(stderr, "kura policy check: %s: %s\n", file, strerror(errno));
        return KURA_EXIT_RUNTIME;
    }
    text = read_all(in, &len);
    if (in != stdin)
        fclose(in);
    if (!text) {
        fprintf(stderr, "kura policy check: cannot read input: %s\n", strerror(errno));
        return KURA_EXIT_RUNTIME;
    }
    if ((policy_path ? kura_policy_load(policy_path, &pol, &eb) : kura_policy_default(&pol, &eb))) {
        fprintf(stderr, "kura policy check: %s\n", eb.msg);
        goto done;
    }
    struct kura_detector_options dopt = {no_mecab, NULL};
    if (kura_detector_create(&dopt, &det, &eb)) {
        fprintf(stderr, "kura policy check: %s\n", eb.msg);
        goto done;
    }
    if (kura_detector_warning(det) && !no_mecab)
        fprintf(stderr, "kura policy check: warning: %s\n", kura_detector_warning(det));
    const char *texts[1] = {text};
    size_t lens[1] = {len};
    if (kura_policy_decide(det, pol, texts, lens, 1, dest, &res, NULL, NULL, &eb)) {
        fprintf(stderr, "kura policy check: %s\n", eb.msg);
        goto done;
    }
    if (json) {
        json_t *o = json_object(), *arr = json_array();
        if (!o || !arr) {
            json_decref(o);
            json_decref(arr);
            goto done;
        }
        for (size_t k = 0; k < res.findings.n; k++) {
            const struct kura_finding *f = &res.findings.v[k];
            json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:s, s:f}", "type",
                                                 kura_finding_type_name(f), "start", (json_int_t)f->start,
                                                 "end", (json_int_t)f->end, "rule", f->rule ? f->rule : "",
                                                 "confidence", (double)((int)(f->confidence * 100 + 0.5f)) / 100.0));
        }
        json_object_set_new(o, "findings", arr);
        json_object_set_new(o, "level", json_string(kura_level_name(res.level)));
        json_object_set_new(o, "decision", json_string(kura_decision_name(res.decision)));
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(3));
        json_decref(o);
        if (!s)
            goto done;
        printf("%s\n", s);
        free(s);
    } else {
        for (size_t k = 0; k < res.findings.n; k++) {
            const struct kura_finding *f = &res.findings.v[k];
            printf("%-18s %6zu-%-6zu %.2f  %-26s %.*s\n", kura_finding_type_name(f), f->start,
                   f->end, (double)f->confidence, f->rule ? f->rule : "",
                   (int)(f->end - f->start > 80 ? 80 : f->end - f->start), text + f->start);
        }
        printf("findings: %zu\nlevel:    %s\ndecision: %s%s%s\nreason:   %s\n", res.findings.n,
               kura_level_name(res.level), kura_decision_name(res.decision),
               res.dest ? " -> " : "", res.dest ? res.dest->name : "", res.reason);
    }
    rc = KURA_EXIT_OK;
done:
    kura_policy_result_free(&res);
    kura_detector_destroy(det);
    kura_policy_destroy(pol);
    free(text);
    return rc;
}

struct lint_ctx {
    const char *path;
};

static void lint_print(void *ud, size_t line, const char *msg)
{
    const struct lint_ctx *c = ud;
    printf("%s:%zu: %s\n", c->path, line, msg);
}

static int cmd_lint(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 2; i < argc; i++) {
        if (kura_cli_is_help(argv[i])) {
            help(stdout);
            return KURA_EXIT_OK;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "kura policy lint: unexpected argument '%s'\n", argv[i]);
            return KURA_EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        help(stderr);
        return KURA_EXIT_USAGE;
    }
    struct lint_ctx c = {path};
    int n = kura_policy_lint(path, lint_print, &c);
    if (n < 0) {
        fprintf(stderr, "kura policy lint: %s: cannot read: %s\n", path, strerror(errno));
        return KURA_EXIT_RUNTIME;
    }
    if (n == 0) {
        printf("%s: ok\n", path);
        return KURA_EXIT_OK;
    }
    fprintf(stderr, "kura policy lint: %d problem%s\n", n, n == 1 ? "" : "s");
    return KURA_EXIT_RUNTIME;
}

static int cmd_policy(int argc, char **argv)
{
    if (argc < 2 || kura_cli_is_help(argv[1])) {
        help(argc < 2 ? stderr : stdout);
        return argc < 2 ? KURA_EXIT_USAGE : KURA_EXIT_OK;
    }
    if (!strcmp(argv[1], "check"))
        return cmd_check(argc, argv);
    if (!strcmp(argv[1], "lint"))
        return cmd_lint(argc, argv);
    fprintf(stderr, "kura policy: unknown subcommand '%s'\n", argv[1]);
    help(stderr);
    return KURA_EXIT_USAGE;
}

KURA_CLI_COMMAND(policy, "policy", "find personal data and decide what may leave (check, lint)",
                 cmd_policy)
