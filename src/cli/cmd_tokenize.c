/* kura tokenize -m MODEL.gguf [--no-bos] [-p TEXT]: prints the token ids of a text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/limits.h"
#include "kura/gguf.h"
#include "kura/tokenizer.h"

static void help(FILE *f)
{
    fprintf(f, "usage: kura tokenize -m MODEL.gguf [--no-bos] [--no-parse-special] [-p TEXT]\n\n"
               "Tokenizes TEXT (or all of standard input) with the model's tokenizer and prints\n"
               "the ids as one JSON array on one line. Special-token text such as <|im_start|>\n"
               "becomes that special token.\n\n"
               "  -m, --model FILE      GGUF file whose tokenizer.ggml.* metadata to use\n"
               "  -p, --prompt TEXT     text to tokenize (default: read standard input)\n"
               "      --no-bos          do not add the model's BOS/EOS tokens\n"
               "      --no-parse-special  treat special-token text as plain text\n");
}

static int read_stdin(char **buf, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    if (!b)
        return -1;
    for (;;) {
        if (n == cap) {
            if (cap >= KURA_MAX_PROMPT_BYTES) {
                free(b);
                return -2;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return -1;
            }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n, stdin);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(stdin)) {
        free(b);
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

static int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL;
    bool add_special = true, parse_special = true;
    for (int i = 1; i < argc; i++) {
        if (kura_cli_is_help(argv[i])) {
            help(stdout);
            return KURA_EXIT_OK;
        } else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(model = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "--prompt")) {
            if (!(prompt = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--no-bos")) {
            add_special = false;
        } else if (!strcmp(argv[i], "--no-parse-special")) {
            parse_special = false;
        } else {
            fprintf(stderr, "kura tokenize: unexpected argument '%s'\n", argv[i]);
            help(stderr);
            return KURA_EXIT_USAGE;
        }
    }
    if (!model) {
        fprintf(stderr, "kura tokenize: -m MODEL.gguf is required\n");
        help(stderr);
        return KURA_EXIT_USAGE;
    }
    struct kura_errbuf eb = {0};
    struct kura_gguf *g = NULL;
    struct kura_tok *t = NULL;
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int rc = KURA_EXIT_RUNTIME;
    if (kura_gguf_open(model, &g, &eb) || kura_tok_create(g, &t, &eb)) {
        fprintf(stderr, "kura tokenize: %s: %s\n", model, eb.msg);
        goto done;
    }
    kura_gguf_close(g);
    g = NULL;
    if (prompt) {
        len = strlen(prompt);
    } else {
        int r = read_stdin(&text, &len);
        if (r) {
            fprintf(stderr, "kura tokenize: %s\n",
                    r == -2 ? "standard input exceeds the prompt size cap" : "cannot read input");
            goto done;
        }
    }
    if (kura_tok_encode(t, prompt ? prompt : text, len, add_special, parse_special, &ids, &n_ids,
                        &eb)) {
        fprintf(stderr, "kura tokenize: %s\n", eb.msg);
        goto done;
    }
    putchar('[');
    for (size_t i = 0; i < n_ids; i++)
        printf(i ? ", %d" : "%d", (int)ids[i]);
    puts("]");
    rc = fflush(stdout) == 0 ? KURA_EXIT_OK : KURA_EXIT_RUNTIME;
done:
    free(ids);
    free(text);
    kura_tok_destroy(t);
    kura_gguf_close(g);
    return rc;
}

KURA_CLI_COMMAND(tokenize, "tokenize", "print the token ids of a text (JSON array)", cmd_tokenize)
