/* Options shared by the commands that run a model (run, chat, bench, serve). */
#ifndef KURA_CLI_COMMON_H
#define KURA_CLI_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/cli_state.h"
#include "kura/generate.h"
#include "kura/model.h"
#include "kura/tokenizer.h"

struct cli_model_opts {
    const char *model_path;
    int threads;         /* <= 0: physical cores */
    int32_t n_ctx;       /* 0: min(trained context, 4096) */
    int32_t n_batch;
    struct kura_gen_params gen;
    const char *stops[16];
    struct cli_state state; /* --state-dir / --passphrase-*: where model loads are audited */
};

/* Defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalties, random seed. */
void cli_model_opts_init(struct cli_model_opts *o);
/* Consumes argv[*i] (and its value) if it is one of the shared options. Returns 1 when consumed,
 * 0 when not a shared option, -1 on a usage error (already printed). */
int cli_model_opts_parse(struct cli_model_opts *o, int argc, char **argv, int *i);
/* Help text for the shared options. */
const char *cli_model_opts_help(void);

/* A loaded model with its tokenizer, context and KV cache. */
struct cli_engine {
    struct kura_model *model;
    struct kura_tok *tok;
    struct kura_ctx *ctx;
    struct kura_kv *kv;
};
/* Loads everything; prints the error and returns false on failure. When the state directory
 * has been initialised (`kura keys init`), the load is first recorded in the audit log as
 * "model.load" with the file's SHA-256 (unlocking the keys like every other command); if that
 * fails, the model is released and false returned (fail closed). */
bool cli_engine_open(struct cli_engine *en, const struct cli_model_opts *o, const char *cmd);
void cli_engine_close(struct cli_engine *en);
/* Records a model load ("model.load": SHA-256, size; or the load error when error != NULL) in
 * the audit log of the state directory, if it has been initialised; does nothing otherwise.
 * Returns false (message printed) when the record cannot be written: the caller must not use
 * the model then. */
bool cli_audit_model_load(const struct cli_state *state, const char *path, const char *cmd,
                          const char *error);

#endif
