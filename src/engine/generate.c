#include "kura/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *kura_finish_name(enum kura_finish f)
{
    switch (f) {
    case KURA_FINISH_LENGTH: return "length";
    case KURA_FINISH_EOG: return "stop";
    case KURA_FINISH_STOP: return "stop";
    case KURA_FINISH_CONTEXT: return "length";
    case KURA_FINISH_CANCELLED: return "cancelled";
    }
    return "?";
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Passes text through the stop matcher to the caller. Returns false when cancelled. */
static bool emit(const struct kura_gen_callbacks *cb, const char *s, size_t n)
{
    if (!n || !cb || !cb->on_text)
        return true;
    return cb->on_text(cb->ud, s, n);
}

enum kura_err kura_generate(struct kura_ctx *c, struct kura_kv *kv, const struct kura_tok *tok,
                            const int32_t *prompt, int32_t n_prompt, int32_t n_past,
                            const struct kura_gen_params *p, const struct kura_gen_callbacks *cb,
                            struct kura_gen_result *res, struct kura_errbuf *eb)
{
    memset(res, 0, sizeof *res);
    if (n_prompt < 1)
        return kura_err_set(eb, KURA_ERR_INVALID, "empty prompt");
    if (n_past < 0 || n_past >= n_prompt)
        n_past = n_past < 0 ? 0 : n_prompt - 1; /* always evaluate at least one token */
    if (n_prompt > kura_kv_n_ctx(kv))
        return kura_err_set(eb, KURA_ERR_RANGE, "prompt of %d tokens does not fit the context "
                            "of %d", n_prompt, kura_kv_n_ctx(kv));
    if (p->n_predict < 1)
        return kura_err_set(eb, KURA_ERR_INVALID, "n_predict must be at least 1");
    int32_t n_vocab = kura_tok_n_vocab(tok);
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    struct kura_sampler *smp = NULL;
    struct kura_stop *stop = NULL;
    enum kura_err e = KURA_OK;
    if (!logits) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((e = kura_sampler_create(&p->sample, n_vocab, &smp, eb)) ||
        (e = kura_stop_create(p->stops, p->n_stops, &stop, eb)))
        goto out;
    for (int32_t i = 0; i < n_prompt; i++) /* penalties see the prompt too */
        kura_sampler_accept(smp, prompt[i]);

    double t0 = now_s();
    e = kura_ctx_eval_seq(c, kv, prompt + n_past, n_prompt - n_past, n_past, false, logits, eb);
    if (e)
        goto out;
    res->n_prompt_eval = n_prompt - n_past;
    double t1 = now_s();
    res->prompt_seconds = t1 - t0;
    int32_t pos = n_prompt;
    struct kura_utf8_stream us;
    kura_utf8_stream_init(&us);
    char piece[512], text[KURA_UTF8_STREAM_OUT_MAX(512)];
    res->finish = KURA_FINISH_LENGTH;
    bool stopped = false;
    for (int32_t i = 0; i < p->n_predict; i++) {
        int32_t id = kura_sampler_sample(smp, logits);
        if (cb && cb->on_token && !cb->on_token(cb->ud, id, logits, n_vocab)) {
            res->finish = KURA_FINISH_CANCELLED;
            break;
        }
        kura_sampler_accept(smp, id);
        res->n_gen++;
        if (!p->ignore_eos && kura_tok_is_eog(tok, id)) {
            res->finish = KURA_FINISH_EOG;
            break;
        }
        size_t pl = kura_tok_piece(tok, id, 0, piece, sizeof piece);
        if (pl > sizeof piece)
            pl = sizeof piece;
        size_t tl = kura_utf8_stream_push(&us, piece, pl, text, sizeof text);
        const char *out_s;
        size_t out_n;
        if ((e = kura_stop_push(stop, text, tl, &out_s, &out_n, &stopped)))
            goto out;
        if (!emit(cb, out_s, out_n)) {
            res->finish = KURA_FINISH_CANCELLED;
            break;
        }
        if (stopped) {
            res->finish = KURA_FINISH_STOP;
            break;
        }
        if (i + 1 == p->n_predict)
            break;
        if (pos >= kura_kv_n_ctx(kv)) {
            res->finish = KURA_FINISH_CONTEXT;
            break;
        }
        if ((e = kura_ctx_eval_seq(c, kv, &id, 1, pos, false, logits, eb)))
            goto out;
        pos++;
    }
    if (!stopped && res->finish != KURA_FINISH_CANCELLED) {
        size_t tl = kura_utf8_stream_flush(&us, text, sizeof text);
        const char *out_s;
        size_t out_n;
        if (tl && (e = kura_stop_push(stop, text, tl, &out_s, &out_n, &stopped)) == KURA_OK)
            emit(cb, out_s, out_n);
        if (!e && !stopped) {
            kura_stop_flush(stop, &out_s, &out_n);
            emit(cb, out_s, out_n);
        }
        if (stopped)
            res->finish = KURA_FINISH_STOP;
    }
    res->n_pos = pos;
    res->gen_seconds = now_s() - t1;
out:
    kura_stop_destroy(stop);
    kura_sampler_destroy(smp);
    free(logits);
    return e;
}
