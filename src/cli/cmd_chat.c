/* kura chat: an interactive chat on the terminal using the model's chat template. The KV cache
 * keeps the conversation, so each turn only evaluates the new tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "core/buf.h"
#include "kura/chat.h"

#define MAX_TURNS 4096

static void help(FILE *f)
{
    fprintf(f, "usage: kura chat -m MODEL.gguf [options]\n\n"
               "Interactive chat with the model's chat template (read from tokenizer.chat_template).\n"
               "Type a message and press Enter. Commands: /reset starts over, /exit (or EOF) quits.\n\n"
               "  --system TEXT          system prompt\n"
               "  --chat-template NAME   override the template (chatml, llama3, llama2, llama2-sys,\n"
               "                         mistral-v1, mistral-v3, mistral-v7, gemma, phi3, ...)\n"
               "%s", cli_model_opts_help());
}

static bool on_text(void *ud, const char *s, size_t n)
{
    size_t *total = ud;
    fwrite(s, 1, n, stdout);
    fflush(stdout);
    *total += n;
    return true;
}

/* Prints the reply and keeps it (ud: a struct kura_buf). */
static bool on_text_capture(void *ud, const char *s, size_t n)
{
    if (kura_buf_put(ud, s, n))
        return false;
    size_t dummy = 0;
    return on_text(&dummy, s, n);
}

static int cmd_chat(int argc, char **argv)
{
    struct cli_model_opts o;
    cli_model_opts_init(&o);
    o.gen.n_predict = 1024;
    const char *system = NULL, *tmpl_name = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_model_opts_parse(&o, argc, argv, &i);
        if (r < 0)
            return KURA_EXIT_USAGE;
        if (r > 0)
            continue;
        if (kura_cli_is_help(argv[i])) {
            help(stdout);
            return KURA_EXIT_OK;
        } else if (!strcmp(argv[i], "--system")) {
            if (!(system = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--chat-template")) {
            if (!(tmpl_name = kura_cli_optarg(argc, argv, &i)))
                return KURA_EXIT_USAGE;
        } else {
            fprintf(stderr, "kura chat: unknown option '%s'\n", argv[i]);
            help(stderr);
            return KURA_EXIT_USAGE;
        }
    }
    if (!o.model_path) {
        fprintf(stderr, "kura chat: -m MODEL.gguf is required\n");
        return KURA_EXIT_USAGE;
    }
    enum kura_chat_tmpl tmpl = KURA_CHAT_TMPL_UNKNOWN;
    if (tmpl_name) {
        tmpl = kura_chat_tmpl_from_name(tmpl_name);
        if (tmpl == KURA_CHAT_TMPL_UNKNOWN) {
            fprintf(stderr, "kura chat: unknown chat template '%s'\n", tmpl_name);
            return KURA_EXIT_USAGE;
        }
    }
    struct cli_engine en;
    if (!cli_engine_open(&en, &o, "chat"))
        return KURA_EXIT_RUNTIME;
    if (tmpl == KURA_CHAT_TMPL_UNKNOWN) {
        struct kura_str src;
        if (kura_gguf_get_str(kura_model_gguf(en.model), "tokenizer.chat_template", &src) ==
            KURA_OK) {
            char *s = strndup(src.ptr, src.len);
            if (s)
                tmpl = kura_chat_tmpl_detect(s);
            free(s);
        }
        if (tmpl == KURA_CHAT_TMPL_UNKNOWN) {
            tmpl = KURA_CHAT_TMPL_CHATML;
            fprintf(stderr, "kura chat: the model has no recognised chat template; using chatml "
                            "(override with --chat-template)\n");
        }
    }
    bool tty = isatty(STDIN_FILENO);
    struct kura_chat_msg *msgs = calloc(MAX_TURNS, sizeof *msgs);
    char **owned = calloc(MAX_TURNS, sizeof *owned);
    int32_t *cached = malloc((size_t)kura_kv_n_ctx(en.kv) * sizeof *cached);
    int32_t n_cached = 0;
    size_t n_msgs = 0;
    int rc = KURA_EXIT_OK;
    if (!msgs || !owned || !cached) {
        fprintf(stderr, "kura chat: out of memory\n");
        rc = KURA_EXIT_RUNTIME;
        goto out;
    }
    if (system) {
        msgs[0].role = "system";
        msgs[0].content = system;
        n_msgs = 1;
    }
    char *line = NULL;
    size_t line_cap = 0;
    for (;;) {
        if (tty) {
            fputs("\n> ", stdout);
            fflush(stdout);
        }
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0)
            break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (got == 0)
            continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit"))
            break;
        if (!strcmp(line, "/reset")) {
            for (size_t i = 0; i < n_msgs; i++)
                free(owned[i]);
            memset(owned, 0, MAX_TURNS * sizeof *owned);
            n_msgs = system ? 1 : 0;
            n_cached = 0;
            continue;
        }
        if (n_msgs + 2 > MAX_TURNS) {
            fprintf(stderr, "kura chat: conversation too long; /reset to start over\n");
            continue;
        }
        owned[n_msgs] = strdup(line);
        msgs[n_msgs].role = "user";
        msgs[n_msgs].content = owned[n_msgs];
        n_msgs++;
        struct kura_errbuf eb = {0};
        char *text = NULL;
        int32_t *toks = NULL;
        size_t n_toks = 0;
        enum kura_err e = kura_chat_format(tmpl, msgs, n_msgs, true, &text, &eb);
        if (!e)
            e = kura_tok_encode(en.tok, text, strlen(text), true, true, &toks, &n_toks, &eb);
        free(text);
        if (!e && n_toks + 16 > (size_t)kura_kv_n_ctx(en.kv))
            e = kura_err_set(&eb, KURA_ERR_RANGE, "the conversation no longer fits the context "
                             "of %d tokens; /reset to start over", kura_kv_n_ctx(en.kv));
        if (e) {
            fprintf(stderr, "kura chat: %s\n", eb.msg);
            free(toks);
            free(owned[--n_msgs]);
            owned[n_msgs] = NULL;
            continue;
        }
        int32_t n_past = 0;
        while (n_past < n_cached && (size_t)n_past < n_toks && cached[n_past] == toks[n_past])
            n_past++;
        struct kura_buf rep = {0};
        struct kura_gen_callbacks cb = {.on_text = on_text_capture, .ud = &rep};
        struct kura_gen_result res;
        e = kura_generate(en.ctx, en.kv, en.tok, toks, (int32_t)n_toks, n_past, &o.gen, &cb,
                          &res, &eb);
        memcpy(cached, toks, n_toks * sizeof *toks);
        n_cached = (int32_t)n_toks; /* generated tokens are re-tokenized from the reply text */
        free(toks);
        fputc('\n', stdout);
        if (e) {
            fprintf(stderr, "kura chat: %s\n", eb.msg);
            kura_buf_free(&rep);
            rc = KURA_EXIT_RUNTIME;
            break;
        }
        rep.err = KURA_OK; /* a reply cut short by a failed append keeps what it has */
        owned[n_msgs] = kura_buf_take(&rep);
        msgs[n_msgs].role = "assistant";
        msgs[n_msgs].content = owned[n_msgs];
        n_msgs++;
    }
    free(line);
out:
    if (owned)
        for (size_t i = 0; i < MAX_TURNS; i++)
            free(owned[i]);
    free(owned);
    free(msgs);
    free(cached);
    cli_engine_close(&en);
    return rc;
}

KURA_CLI_COMMAND(chat, "chat", "interactive chat with a local model", cmd_chat)
