/* Continuous-batching scheduler (see include/kura/sched.h).
 *
 * Locking: one mutex guards the queue, the slots' request pointers and cancel flags, the embed
 * queue and the statistics. The scheduler thread holds it only between steps (to admit, reap
 * cancellations and publish statistics); evaluation, sampling and callbacks run without it, so
 * a callback may call kura_sched_cancel. A slot's generation state (sampler, KV, stop matcher)
 * is touched by the scheduler thread alone. */
#include "kura/sched.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "kura/json_constraint.h"

#define SCHED_MAX_SLOTS 64
#define SCHED_MAX_QUEUE 65536
#define SCHED_MAX_CHUNK 65536

struct sreq {
    uint64_t id;
    int32_t *prompt;
    int32_t n_prompt;
    int32_t max_tokens;
    bool ignore_eos, logprobs, json_mode;
    int top_logprobs;
    kura_sched_cb cb;
    void *ud;
    struct kura_sampler *smp; /* created at submit (validates the params, seeds) */
    struct kura_stop *stop;
    bool cancel;              /* guarded by the mutex */
    struct sreq *next;        /* queue link */
};

struct slot {
    struct kura_kv *kv;
    struct sreq *r;     /* NULL: free (pointer guarded by the mutex) */
    uint64_t order;     /* admission order: older prompts prefill first */
    int32_t n_eval;     /* prompt tokens in the KV cache */
    int32_t pos;        /* positions filled */
    int32_t pending;    /* sampled token not yet evaluated, -1 while prefilling */
    int32_t n_gen;
    struct kura_utf8_stream us;
    struct kura_jsonc js;
};

struct embed_job {
    const int32_t *tokens;
    int32_t n, done_n;
    float *out;
    double *acc;            /* (n_embd) running sum of hidden states */
    enum kura_err err;
    struct kura_errbuf *eb;
    bool done;
    struct embed_job *next;
};

struct kura_sched {
    const struct kura_model *m;
    const struct kura_tok *tok;
    struct kura_sched_params p;
    int32_t n_vocab, n_embd, n_batch;
    struct kura_ctx *ctx;
    struct slot *slots;
    struct kura_kv *kv_embed; /* created on the first embedding */
    struct kura_batch_item *items;
    int32_t *item_slot;       /* (n_batch) slot of each item */
    float *logits;            /* (n_slots, n_vocab) */
    float *raw;               /* (n_vocab) model logits before penalties / mask, for logprobs */
    uint8_t *allowed;         /* (n_vocab) JSON mask scratch */
    float *hidden;            /* (prefill_chunk, n_embd) */
    struct kura_jsonc_vocab *jv;
    char *text;               /* per-token text scratch */
    size_t text_cap;

    pthread_mutex_t mu;
    pthread_cond_t wake;      /* scheduler: work arrived or stop */
    pthread_cond_t embed_done;
    pthread_t thread;
    bool thread_started, stopping;
    struct sreq *q_head, *q_tail;
    int n_queued, n_active;
    uint64_t next_id, next_order;
    struct embed_job *e_head, *e_tail;
    uint64_t kv_used, tok_prompt, tok_gen, steps;
};

/* ---- requests ---- */

static void sreq_free(struct sreq *r)
{
    if (!r)
        return;
    kura_sampler_destroy(r->smp);
    kura_stop_destroy(r->stop);
    free(r->prompt);
    free(r);
}

static bool emit_event(struct sreq *r, int32_t token, const char *text, size_t len,
                       const struct slot *sl, float logprob, int n_top, const int32_t *top_ids,
                       const float *top_lp)
{
    struct kura_sched_event ev = {
        .id = r->id, .token = token, .text = text ? text : "", .text_len = len,
        .logprob = logprob, .n_top = n_top, .top_ids = top_ids, .top_logprobs = top_lp,
        .n_prompt = r->n_prompt, .n_gen = sl ? sl->n_gen : 0,
    };
    return r->cb(r->ud, &ev);
}

static void final_event(struct sreq *r, const struct slot *sl, enum kura_finish f,
                        enum kura_err err, const char *text, size_t len)
{
    struct kura_sched_event ev = {
        .id = r->id, .token = -1, .text = text ? text : "", .text_len = len,
        .done = true, .finish = f, .n_prompt = r->n_prompt, .n_gen = sl ? sl->n_gen : 0,
        .err = err,
    };
    r->cb(r->ud, &ev);
}

/* ---- slots ---- */

/* Releases what the UTF-8 guard and the stop matcher still hold back at the end of a stream into
 * s->text; returns its length and sets *stopped when a stop string completes in it. */
static size_t flush_text(struct kura_sched *s, struct slot *sl, bool *stopped)
{
    struct sreq *r = sl->r;
    char u8[KURA_UTF8_STREAM_OUT_MAX(0)];
    size_t ul = kura_utf8_stream_flush(&sl->us, u8, sizeof u8), n = 0;
    const char *o;
    size_t ol;
    *stopped = false;
    if (ul && kura_stop_push(r->stop, u8, ul, &o, &ol, stopped) == KURA_OK && ol) {
        memcpy(s->text, o, ol);
        n = ol;
    }
    if (!*stopped) {
        kura_stop_flush(r->stop, &o, &ol);
        if (ol > s->text_cap - n) /* cannot happen: held text is shorter than a stop string */
            ol = s->text_cap - n;
        memcpy(s->text + n, o, ol);
        n += ol;
    }
    return n;
}

/* Ends the request in slot i: releases held-back text when flush (the stream ended without a
 * stop string), sends the final event and frees the slot. */
static void slot_finish(struct kura_sched *s, int i, enum kura_finish f, enum kura_err err,
                        bool flush)
{
    struct slot *sl = &s->slots[i];
    struct sreq *r = sl->r;
    size_t n = 0;
    if (flush && err == KURA_OK) {
        bool stopped;
        n = flush_text(s, sl, &stopped);
        if (stopped)
            f = KURA_FINISH_STOP;
    }
    pthread_mutex_lock(&s->mu); /* the slot is free before the final event is seen */
    sl->r = NULL;
    s->n_active--;
    s->kv_used -= (uint64_t)sl->pos;
    pthread_mutex_unlock(&s->mu);
    final_event(r, sl, f, err, s->text, n);
    sreq_free(r);
}

/* ---- token processing ---- */

/* Handles the logits row of slot i: samples, reports, decides whether the request goes on. */
static void slot_token(struct kura_sched *s, int i, float *row)
{
    struct slot *sl = &s->slots[i];
    struct sreq *r = sl->r;
    int32_t ids[KURA_SCHED_MAX_TOP_LOGPROBS];
    float lps[KURA_SCHED_MAX_TOP_LOGPROBS];
    int n_top = 0;
    bool want_lp = r->logprobs || r->top_logprobs > 0;
    if (want_lp) {
        memcpy(s->raw, row, (size_t)s->n_vocab * sizeof *row);
        n_top = kura_logprobs_top(s->raw, s->n_vocab, r->top_logprobs, ids, lps);
    }
    if (r->json_mode) {
        /* tokens that may still come, this one included: max_tokens or the context's end */
        int32_t budget = r->max_tokens - sl->n_gen;
        if (budget > kura_kv_n_ctx(sl->kv) - sl->pos + 1)
            budget = kura_kv_n_ctx(sl->kv) - sl->pos + 1;
        kura_jsonc_mask(s->jv, &sl->js, budget, s->allowed, row);
    }
    int32_t id = kura_sampler_sample(r->smp, row);
    float lp = want_lp ? kura_logprob_of(s->raw, s->n_vocab, id) : 0.0f;
    enum kura_err e = kura_sampler_accept(r->smp, id);
    if (e) {
        slot_finish(s, i, KURA_FINISH_LENGTH, e, false);
        return;
    }
    sl->n_gen++;
    pthread_mutex_lock(&s->mu);
    s->tok_gen++;
    pthread_mutex_unlock(&s->mu);
    if (!r->ignore_eos && kura_tok_is_eog(s->tok, id)) {
        slot_finish(s, i, KURA_FINISH_EOG, KURA_OK, true);
        return;
    }
    char piece[KURA_MAX_TOKEN_BYTES];
    size_t pl = kura_tok_piece(s->tok, id, 0, piece, sizeof piece);
    if (pl > sizeof piece)
        pl = sizeof piece;
    bool json_done = false;
    if (r->json_mode) {
        struct kura_jsonc next = sl->js;
        if (kura_jsonc_push(&next, piece, pl)) /* false only when the mask had to give up */
            sl->js = next;
        json_done = kura_jsonc_complete(&sl->js);
    }
    char u8[KURA_UTF8_STREAM_OUT_MAX(KURA_MAX_TOKEN_BYTES)];
    size_t ul = kura_utf8_stream_push(&sl->us, piece, pl, u8, sizeof u8);
    const char *o = NULL;
    size_t ol = 0;
    bool stopped = false;
    if ((e = kura_stop_push(r->stop, u8, ul, &o, &ol, &stopped))) {
        slot_finish(s, i, KURA_FINISH_LENGTH, e, false);
        return;
    }
    if (!emit_event(r, id, o, ol, sl, lp, n_top, ids, lps)) {
        slot_finish(s, i, KURA_FINISH_CANCELLED, KURA_OK, false);
        return;
    }
    if (stopped)
        slot_finish(s, i, KURA_FINISH_STOP, KURA_OK, false);
    else if (json_done) /* the object is complete: nothing more may follow */
        slot_finish(s, i, KURA_FINISH_STOP, KURA_OK, true);
    else if (sl->n_gen >= r->max_tokens)
        slot_finish(s, i, KURA_FINISH_LENGTH, KURA_OK, true);
    else if (sl->pos >= kura_kv_n_ctx(sl->kv))
        slot_finish(s, i, KURA_FINISH_CONTEXT, KURA_OK, true);
    else
        sl->pending = id;
}

/* Sets up a newly admitted request in slot i (scheduler thread, no lock held). */
static void slot_start(struct kura_sched *s, int i)
{
    struct slot *sl = &s->slots[i];
    struct sreq *r = sl->r;
    sl->n_eval = 0;
    sl->pos = 0;
    sl->pending = -1;
    sl->n_gen = 0;
    kura_utf8_stream_init(&sl->us);
    kura_jsonc_init(&sl->js);
    enum kura_err e = KURA_OK;
    for (int32_t k = 0; k < r->n_prompt && !e; k++) /* penalties see the prompt, as in generate */
        e = kura_sampler_accept(r->smp, r->prompt[k]);
    if (e)
        slot_finish(s, i, KURA_FINISH_LENGTH, e, false);
}

/* ---- embeddings ---- */

/* Evaluates the next chunk of the first embedding job; finishes it when all tokens are in. */
static void embed_step(struct kura_sched *s, struct embed_job *j)
{
    enum kura_err e = KURA_OK;
    if (!s->kv_embed)
        e = kura_kv_create(s->m, s->p.n_ctx, &s->kv_embed, j->eb);
    int32_t take = 0;
    if (!e) {
        take = j->n - j->done_n;
        if (take > s->p.prefill_chunk)
            take = s->p.prefill_chunk;
        for (int32_t k = 0; k < take; k++)
            s->items[k] = (struct kura_batch_item){j->tokens[j->done_n + k], j->done_n + k,
                                                   s->kv_embed, true};
        e = kura_ctx_eval_hidden(s->ctx, s->items, take, s->hidden, j->eb);
    }
    if (!e) {
        for (int32_t k = 0; k < take; k++)
            for (int32_t d = 0; d < s->n_embd; d++)
                j->acc[d] += s->hidden[(size_t)k * s->n_embd + d];
        j->done_n += take;
    }
    if (e || j->done_n == j->n) {
        if (!e) {
            double ss = 0;
            for (int32_t d = 0; d < s->n_embd; d++) {
                j->acc[d] /= j->n;
                ss += j->acc[d] * j->acc[d];
            }
            double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
            for (int32_t d = 0; d < s->n_embd; d++)
                j->out[d] = (float)(j->acc[d] * inv);
        }
        pthread_mutex_lock(&s->mu);
        s->e_head = j->next;
        if (!s->e_head)
            s->e_tail = NULL;
        j->err = e;
        j->done = true;
        pthread_cond_broadcast(&s->embed_done);
        pthread_mutex_unlock(&s->mu);
    }
}

/* ---- the step ---- */

static void run_step(struct kura_sched *s)
{
    int32_t n = 0;
    for (int i = 0; i < s->p.n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (sl->r && sl->pending >= 0) {
            s->items[n] = (struct kura_batch_item){sl->pending, sl->pos, sl->kv, true};
            s->item_slot[n++] = i;
        }
    }
    /* prompt chunks, oldest request first, within the per-step budget */
    int32_t budget = s->p.prefill_chunk;
    bool chunked[SCHED_MAX_SLOTS] = {false};
    while (budget > 0) {
        int best = -1;
        for (int i = 0; i < s->p.n_slots; i++) {
            struct slot *sl = &s->slots[i];
            if (sl->r && !chunked[i] && sl->pending < 0 && sl->n_eval < sl->r->n_prompt &&
                (best < 0 || sl->order < s->slots[best].order))
                best = i;
        }
        if (best < 0)
            break;
        chunked[best] = true;
        struct slot *sl = &s->slots[best];
        int32_t take = sl->r->n_prompt - sl->n_eval;
        if (take > budget)
            take = budget;
        for (int32_t k = 0; k < take; k++) {
            int32_t p = sl->n_eval + k;
            s->items[n] = (struct kura_batch_item){sl->r->prompt[p], p, sl->kv,
                                                   p == sl->r->n_prompt - 1};
            s->item_slot[n++] = best;
        }
        budget -= take;
    }
    if (n == 0)
        return;
    struct kura_errbuf eb;
    enum kura_err e = kura_ctx_eval(s->ctx, s->items, n, s->logits, &eb);
    /* advance positions, then sample every slot that got a logits row */
    int32_t rows = 0;
    int32_t prompt_toks = 0;
    for (int32_t k = 0; k < n; k++) {
        struct slot *sl = &s->slots[s->item_slot[k]];
        if (sl->pending >= 0) {
            sl->pos++;
        } else {
            sl->n_eval++;
            sl->pos++;
            prompt_toks++;
        }
    }
    pthread_mutex_lock(&s->mu);
    s->steps++;
    s->tok_prompt += (uint64_t)prompt_toks;
    s->kv_used += (uint64_t)n;
    pthread_mutex_unlock(&s->mu);
    for (int32_t k = 0; k < n; k++) {
        int i = s->item_slot[k];
        if (e) { /* the KV caches of the batch are unusable: end every request in it */
            if (s->slots[i].r)
                slot_finish(s, i, KURA_FINISH_LENGTH, e, false);
            continue;
        }
        if (!s->items[k].want_logits)
            continue;
        float *row = s->logits + (size_t)rows++ * s->n_vocab;
        s->slots[i].pending = -1;
        slot_token(s, i, row);
    }
}

/* ---- the thread ---- */

static void *sched_main(void *arg)
{
    struct kura_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* reap cancellations */
        struct sreq *dead = NULL;
        for (struct sreq **pp = &s->q_head, *prev = NULL; *pp;) {
            struct sreq *r = *pp;
            if (r->cancel || s->stopping) {
                *pp = r->next;
                if (s->q_tail == r)
                    s->q_tail = prev;
                s->n_queued--;
                r->next = dead;
                dead = r;
            } else {
                prev = r;
                pp = &r->next;
            }
        }
        int cancel_slots[SCHED_MAX_SLOTS], n_cancel = 0;
        int started[SCHED_MAX_SLOTS], n_started = 0;
        for (int i = 0; i < s->p.n_slots; i++)
            if (s->slots[i].r && (s->slots[i].r->cancel || s->stopping))
                cancel_slots[n_cancel++] = i;
        /* admit */
        for (int i = 0; i < s->p.n_slots && s->q_head && !s->stopping; i++) {
            bool canceling = false;
            for (int k = 0; k < n_cancel; k++)
                canceling |= cancel_slots[k] == i;
            if (s->slots[i].r || canceling)
                continue;
            struct sreq *r = s->q_head;
            s->q_head = r->next;
            if (!s->q_head)
                s->q_tail = NULL;
            s->n_queued--;
            r->next = NULL;
            s->slots[i].r = r;
            s->slots[i].order = s->next_order++;
            s->n_active++;
            started[n_started++] = i;
        }
        struct embed_job *ej = s->e_head;
        bool have_work = dead || n_cancel || n_started || ej;
        for (int i = 0; i < s->p.n_slots && !have_work; i++)
            have_work = s->slots[i].r != NULL;
        if (!have_work) {
            if (s->stopping)
                break;
            pthread_cond_wait(&s->wake, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);

        while (dead) {
            struct sreq *r = dead;
            dead = r->next;
            final_event(r, NULL, KURA_FINISH_CANCELLED, KURA_OK, NULL, 0);
            sreq_free(r);
        }
        for (int k = 0; k < n_cancel; k++)
            slot_finish(s, cancel_slots[k], KURA_FINISH_CANCELLED, KURA_OK, false);
        for (int k = 0; k < n_started; k++)
            slot_start(s, started[k]);
        if (ej) {
            if (s->stopping) {
                pthread_mutex_lock(&s->mu);
                for (struct embed_job *j = s->e_head; j; j = j->next) {
                    j->err = kura_err_set(j->eb, KURA_ERR_CANCELLED, "scheduler shutting down");
                    j->done = true;
                }
                s->e_head = s->e_tail = NULL;
                pthread_cond_broadcast(&s->embed_done);
                pthread_mutex_unlock(&s->mu);
            } else {
                embed_step(s, ej);
            }
        }
        if (!s->stopping)
            run_step(s);

        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- public API ---- */

void kura_sched_destroy(struct kura_sched *s)
{
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->wake);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->wake);
        pthread_cond_destroy(&s->embed_done);
    }
    for (int i = 0; s->slots && i < s->p.n_slots; i++)
        kura_kv_destroy(s->slots[i].kv);
    free(s->slots);
    kura_kv_destroy(s->kv_embed);
    kura_ctx_destroy(s->ctx);
    kura_jsonc_vocab_destroy(s->jv);
    free(s->items);
    free(s->item_slot);
    free(s->logits);
    free(s->raw);
    free(s->allowed);
    free(s->hidden);
    free(s->text);
    free(s);
}

enum kura_err kura_sched_create(const struct kura_model *model, const struct kura_tok *tok,
                                const struct kura_sched_params *p, struct kura_sched **out,
                                struct kura_errbuf *eb)
{
    *out = NULL;
    const struct kura_hparams *hp = kura_model_hparams(model);
    if (p->n_slots < 1 || p->n_slots > SCHED_MAX_SLOTS)
        return kura_err_set(eb, KURA_ERR_INVALID, "n_slots %d outside [1, %d]", p->n_slots,
                            SCHED_MAX_SLOTS);
    if (p->n_ctx < 2 || p->n_ctx > KURA_MAX_CTX)
        return kura_err_set(eb, KURA_ERR_INVALID, "n_ctx %d outside [2, %d]", p->n_ctx,
                            KURA_MAX_CTX);
    if (p->prefill_chunk < 1 || p->prefill_chunk > SCHED_MAX_CHUNK)
        return kura_err_set(eb, KURA_ERR_INVALID, "prefill_chunk %d outside [1, %d]",
                            p->prefill_chunk, SCHED_MAX_CHUNK);
    if (p->queue_max < 0 || p->queue_max > SCHED_MAX_QUEUE)
        return kura_err_set(eb, KURA_ERR_INVALID, "queue_max %d outside [0, %d]", p->queue_max,
                            SCHED_MAX_QUEUE);
    if (kura_tok_n_vocab(tok) != hp->n_vocab)
        return kura_err_set(eb, KURA_ERR_INVALID, "tokenizer has %d tokens, the model %d",
                            kura_tok_n_vocab(tok), hp->n_vocab);
    struct kura_sched *s = calloc(1, sizeof *s);
    if (!s)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    s->m = model;
    s->tok = tok;
    s->p = *p;
    s->n_vocab = hp->n_vocab;
    s->n_embd = hp->n_embd;
    s->n_batch = p->n_slots + p->prefill_chunk;
    s->next_id = 1;
    enum kura_err e;
    if ((e = kura_ctx_create(model, s->n_batch, p->n_threads, &s->ctx, eb)) ||
        (e = kura_ctx_set_batch_invariant(s->ctx, true, eb)) ||
        (e = kura_jsonc_vocab_create(tok, &s->jv, eb)))
        goto fail;
    s->slots = calloc((size_t)p->n_slots, sizeof *s->slots);
    s->items = malloc((size_t)s->n_batch * sizeof *s->items);
    s->item_slot = malloc((size_t)s->n_batch * sizeof *s->item_slot);
    s->logits = malloc((size_t)p->n_slots * (size_t)s->n_vocab * sizeof *s->logits);
    s->raw = malloc((size_t)s->n_vocab * sizeof *s->raw);
    s->allowed = malloc((size_t)s->n_vocab);
    s->hidden = malloc((size_t)p->prefill_chunk * (size_t)s->n_embd * sizeof *s->hidden);
    s->text_cap = KURA_UTF8_STREAM_OUT_MAX(0) + KURA_STOP_MAX_LEN + 4096;
    s->text = malloc(s->text_cap);
    if (!s->slots || !s->items || !s->item_slot || !s->logits || !s->raw || !s->allowed || !s->hidden ||
        !s->text) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory for the scheduler");
        goto fail;
    }
    for (int i = 0; i < p->n_slots; i++)
        if ((e = kura_kv_create(model, p->n_ctx, &s->slots[i].kv, eb)))
            goto fail;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->embed_done, NULL);
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->wake);
        pthread_cond_destroy(&s->embed_done);
        e = kura_err_set(eb, KURA_ERR_NOMEM, "cannot start the scheduler thread");
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return KURA_OK;
fail:
    kura_sched_destroy(s);
    return e;
}

enum kura_err kura_sched_submit(struct kura_sched *s, const struct kura_sched_req *rq,
                                uint64_t *id_out, struct kura_errbuf *eb)
{
    *id_out = 0;
    if (!rq->cb)
        return kura_err_set(eb, KURA_ERR_INVALID, "request without a callback");
    if (rq->n_prompt < 1 || !rq->prompt)
        return kura_err_set(eb, KURA_ERR_INVALID, "empty prompt");
    if (rq->max_tokens < 1)
        return kura_err_set(eb, KURA_ERR_INVALID, "max_tokens must be at least 1");
    if (rq->top_logprobs < 0 || rq->top_logprobs > KURA_SCHED_MAX_TOP_LOGPROBS)
        return kura_err_set(eb, KURA_ERR_INVALID, "top_logprobs %d outside [0, %d]",
                            rq->top_logprobs, KURA_SCHED_MAX_TOP_LOGPROBS);
    if ((int64_t)rq->n_prompt + 1 > s->p.n_ctx)
        return kura_err_set(eb, KURA_ERR_RANGE, "prompt of %d tokens does not fit the context "
                            "of %d (room for at least one generated token is needed)",
                            rq->n_prompt, s->p.n_ctx);
    for (int32_t k = 0; k < rq->n_prompt; k++)
        if (rq->prompt[k] < 0 || rq->prompt[k] >= s->n_vocab)
            return kura_err_set(eb, KURA_ERR_INVALID, "prompt token %d: id %d outside the "
                                "vocabulary [0, %d)", k, rq->prompt[k], s->n_vocab);
    struct sreq *r = calloc(1, sizeof *r);
    enum kura_err e;
    if (!r)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    r->n_prompt = rq->n_prompt;
    r->max_tokens = rq->max_tokens;
    r->ignore_eos = rq->ignore_eos;
    r->logprobs = rq->logprobs;
    r->top_logprobs = rq->top_logprobs;
    r->json_mode = rq->json_mode;
    r->cb = rq->cb;
    r->ud = rq->ud;
    r->prompt = malloc((size_t)rq->n_prompt * sizeof *r->prompt);
    if (!r->prompt) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    memcpy(r->prompt, rq->prompt, (size_t)rq->n_prompt * sizeof *r->prompt);
    if ((e = kura_sampler_create(&rq->sample, s->n_vocab, &r->smp, eb)) ||
        (e = kura_stop_create(rq->stops, rq->n_stops, &r->stop, eb)))
        goto fail;
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->n_queued >= s->p.queue_max + (s->p.n_slots - s->n_active)) {
        /* free slots count as room: a request admitted at the next step never waits */
        pthread_mutex_unlock(&s->mu);
        e = kura_err_set(eb, KURA_ERR_BUSY, "server busy: %d requests queued", s->p.queue_max);
        goto fail;
    }
    r->id = s->next_id++;
    if (s->q_tail)
        s->q_tail->next = r;
    else
        s->q_head = r;
    s->q_tail = r;
    s->n_queued++;
    *id_out = r->id;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    return KURA_OK;
fail:
    sreq_free(r);
    return e;
}

void kura_sched_cancel(struct kura_sched *s, uint64_t id)
{
    pthread_mutex_lock(&s->mu);
    bool found = false;
    for (struct sreq *r = s->q_head; r && !found; r = r->next)
        if (r->id == id)
            found = r->cancel = true;
    for (int i = 0; i < s->p.n_slots && !found; i++)
        if (s->slots[i].r && s->slots[i].r->id == id)
            found = s->slots[i].r->cancel = true;
    if (found)
        pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

enum kura_err kura_sched_embed(struct kura_sched *s, const int32_t *tokens, int32_t n,
                               float *out, struct kura_errbuf *eb)
{
    if (n < 1 || !tokens)
        return kura_err_set(eb, KURA_ERR_INVALID, "no tokens to embed");
    if (n > s->p.n_ctx)
        return kura_err_set(eb, KURA_ERR_RANGE, "input of %d tokens does not fit the context "
                            "of %d", n, s->p.n_ctx);
    for (int32_t k = 0; k < n; k++)
        if (tokens[k] < 0 || tokens[k] >= s->n_vocab)
            return kura_err_set(eb, KURA_ERR_INVALID, "token %d: id %d outside the vocabulary "
                                "[0, %d)", k, tokens[k], s->n_vocab);
    struct embed_job j = {.tokens = tokens, .n = n, .out = out, .eb = eb};
    j.acc = calloc((size_t)s->n_embd, sizeof *j.acc);
    if (!j.acc)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        free(j.acc);
        return kura_err_set(eb, KURA_ERR_CANCELLED, "scheduler shutting down");
    }
    if (s->e_tail)
        s->e_tail->next = &j;
    else
        s->e_head = &j;
    s->e_tail = &j;
    pthread_cond_signal(&s->wake);
    while (!j.done)
        pthread_cond_wait(&s->embed_done, &s->mu);
    pthread_mutex_unlock(&s->mu);
    free(j.acc);
    return j.err;
}

void kura_sched_stats(struct kura_sched *s, struct kura_sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    out->n_slots = s->p.n_slots;
    out->active_slots = s->n_active;
    out->queued = s->n_queued;
    out->kv_used_cells = s->kv_used;
    out->kv_total_cells = (uint64_t)s->p.n_slots * (uint64_t)s->p.n_ctx;
    out->tokens_prompt = s->tok_prompt;
    out->tokens_generated = s->tok_gen;
    out->steps = s->steps;
    pthread_mutex_unlock(&s->mu);
}
