/* Continuous-batching scheduler: batch invariance of the forward pass, greedy identity alone vs
 * beside 7 others, cancellation, queue limits, context overflow, stop strings, seeded sampling,
 * logprobs, JSON mode, embeddings and statistics. */
#include "kura/sched.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

#define MAX_OUT 512

struct run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t toks[MAX_OUT];
    float lp[MAX_OUT];
    int n;
    char text[8192];
    size_t text_len;
    bool done;
    enum kura_finish finish;
    enum kura_err err;
    int32_t n_prompt, n_gen;
    int cancel_after;      /* callback returns false after this many tokens (0: never) */
    bool bad_logprobs;     /* a logprob check failed inside the callback */
    int n_events_after_done;
    int hold_at;           /* the callback waits at this many tokens until released */
    bool held, released;
    int sleep_us;          /* per token, to keep a request running while the test acts */
};

static void run_init(struct run *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void run_deinit(struct run *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static bool on_event(void *ud, const struct kura_sched_event *ev)
{
    struct run *r = ud;
    pthread_mutex_lock(&r->mu);
    if (r->done)
        r->n_events_after_done++;
    if (ev->text_len && r->text_len + ev->text_len < sizeof r->text) {
        memcpy(r->text + r->text_len, ev->text, ev->text_len);
        r->text_len += ev->text_len;
        r->text[r->text_len] = '\0';
    }
    bool go_on = true;
    if (ev->done) {
        r->done = true;
        r->finish = ev->finish;
        r->err = ev->err;
        r->n_prompt = ev->n_prompt;
        r->n_gen = ev->n_gen;
        pthread_cond_broadcast(&r->cv);
    } else {
        if (r->n < MAX_OUT) {
            r->lp[r->n] = ev->logprob;
            r->toks[r->n++] = ev->token;
        }
        for (int k = 0; k < ev->n_top; k++) {
            if (!(ev->top_logprobs[k] <= 0.0f) ||
                (k > 0 && ev->top_logprobs[k] > ev->top_logprobs[k - 1]))
                r->bad_logprobs = true;
        }
        if (ev->n_top > 0 && !(ev->logprob <= ev->top_logprobs[0] + 1e-6f))
            r->bad_logprobs = true;
        if (r->cancel_after && r->n >= r->cancel_after)
            go_on = false;
        pthread_cond_broadcast(&r->cv);
        if (r->hold_at && r->n == r->hold_at) { /* blocks the scheduler thread on purpose */
            r->held = true;
            pthread_cond_broadcast(&r->cv);
            while (!r->released)
                pthread_cond_wait(&r->cv, &r->mu);
        }
        if (r->sleep_us) {
            pthread_mutex_unlock(&r->mu);
            usleep((useconds_t)r->sleep_us);
            return go_on;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return go_on;
}

static void run_wait(struct run *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void run_wait_tokens(struct run *r, int n)
{
    pthread_mutex_lock(&r->mu);
    while (!r->done && r->n < n)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static struct kura_sample_params greedy(void)
{
    struct kura_sample_params p = kura_sample_params_default();
    p.temperature = 0.0f;
    p.seed = 1;
    return p;
}

static struct kura_sched_req mkreq(const int32_t *prompt, int32_t n, int32_t max_tokens,
                                   struct run *r)
{
    struct kura_sched_req q = {0};
    q.prompt = prompt;
    q.n_prompt = n;
    q.max_tokens = max_tokens;
    q.sample = greedy();
    q.cb = on_event;
    q.ud = r;
    return q;
}

static enum kura_err submit(struct kura_sched *s, const struct kura_sched_req *q, uint64_t *id)
{
    struct kura_errbuf eb = {0};
    enum kura_err e = kura_sched_submit(s, q, id, &eb);
    if (e && e != KURA_ERR_BUSY && e != KURA_ERR_RANGE)
        fprintf(stderr, "submit: %s\n", eb.msg);
    return e;
}

static int32_t *encode(const struct kura_tok *tok, const char *text, int32_t *n)
{
    int32_t *ids = NULL;
    size_t nn = 0;
    struct kura_errbuf eb = {0};
    enum kura_err e = kura_tok_encode(tok, text, strlen(text), true, false, &ids, &nn, &eb);
    CHECKF(e == KURA_OK, "encode: %s", eb.msg);
    *n = (int32_t)nn;
    return ids;
}

static const char *const prompts[8] = {
    "Once upon a time",
    "Lily and Tom went to the park. They saw a big dog",
    "The little bird",
    "One day, a girl named Sue found a shiny red ball under the tree near her house. She",
    "Tim was sad because",
    "The sun was hot and the children wanted to play in the water",
    "Mom said",
    "There was a cat who liked to sleep all day. One morning the cat woke up and",
};

struct model_set {
    struct kura_model *m;
    struct kura_tok *tok;
};

static bool load(const char *shared, const char *name, struct model_set *ms)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s", shared, name);
    struct kura_errbuf eb = {0};
    memset(ms, 0, sizeof *ms);
    if (kura_model_load(path, &ms->m, &eb) != KURA_OK) {
        fprintf(stderr, "load %s: %s\n", path, eb.msg);
        return false;
    }
    if (kura_tok_create(kura_model_gguf(ms->m), &ms->tok, &eb) != KURA_OK) {
        fprintf(stderr, "tokenizer %s: %s\n", path, eb.msg);
        kura_model_destroy(ms->m);
        return false;
    }
    return true;
}

static void unload(struct model_set *ms)
{
    kura_tok_destroy(ms->tok);
    kura_model_destroy(ms->m);
}

static struct kura_sched *mksched(const struct model_set *ms, int n_slots, int32_t n_ctx,
                                  int32_t chunk, int queue_max)
{
    struct kura_sched_params p = {.n_slots = n_slots, .n_ctx = n_ctx, .prefill_chunk = chunk,
                                  .queue_max = queue_max, .n_threads = 2};
    struct kura_sched *s = NULL;
    struct kura_errbuf eb = {0};
    enum kura_err e = kura_sched_create(ms->m, ms->tok, &p, &s, &eb);
    CHECKF(e == KURA_OK, "sched_create: %s", eb.msg);
    return s;
}

/* kura_ctx_eval in batch-invariant mode: one sequence's logits, token by token alone, equal
 * bitwise those of the same tokens evaluated in batches mixed with other sequences and with
 * prompt chunks of other lengths. */
static void test_batch_invariance(const struct model_set *ms)
{
    const struct kura_hparams *hp = kura_model_hparams(ms->m);
    int32_t n0, n1;
    int32_t *a = encode(ms->tok, prompts[3], &n0);
    int32_t *b = encode(ms->tok, prompts[7], &n1);
    struct kura_ctx *c = NULL;
    struct kura_kv *ka = NULL, *kb = NULL, *kc = NULL;
    struct kura_errbuf eb = {0};
    CHECK(kura_ctx_create(ms->m, 64, 2, &c, &eb) == KURA_OK);
    CHECK(kura_ctx_set_batch_invariant(c, true, &eb) == KURA_OK);
    CHECK(kura_kv_create(ms->m, 128, &ka, &eb) == KURA_OK);
    CHECK(kura_kv_create(ms->m, 128, &kb, &eb) == KURA_OK);
    CHECK(kura_kv_create(ms->m, 128, &kc, &eb) == KURA_OK);
    size_t nv = (size_t)hp->n_vocab;
    float *alone = malloc((size_t)n0 * nv * sizeof(float));
    float *mixed = malloc(4 * nv * sizeof(float));
    /* alone: one token per call */
    for (int32_t i = 0; i < n0; i++) {
        struct kura_batch_item it = {a[i], i, ka, true};
        CHECK(kura_ctx_eval(c, &it, 1, alone + (size_t)i * nv, &eb) == KURA_OK);
    }
    /* mixed: sequence a in uneven chunks, beside sequence b (prefill) and c (decode) */
    int32_t pa = 0, pb = 0, pc = 0, step = 0;
    int mismatches = 0;
    while (pa < n0) {
        struct kura_batch_item items[64];
        int32_t n = 0, chunk = 1 + (step * 3) % 5;
        int32_t want_row[64], rows = 0;
        for (int32_t k = 0; k < chunk && pa + k < n0; k++) {
            want_row[n] = pa + k;
            items[n++] = (struct kura_batch_item){a[pa + k], pa + k, ka, true};
        }
        for (int32_t k = 0; k < step % 4 && pb < n1; k++, pb++) {
            want_row[n] = -1;
            items[n++] = (struct kura_batch_item){b[pb], pb, kb, false};
        }
        if (step % 2) {
            want_row[n] = -1;
            items[n++] = (struct kura_batch_item){(int32_t)(step % hp->n_vocab), pc++, kc, true};
        }
        float *out = malloc((size_t)n * nv * sizeof(float));
        CHECK(kura_ctx_eval(c, items, n, out, &eb) == KURA_OK);
        for (int32_t k = 0; k < n; k++) {
            if (!items[k].want_logits)
                continue;
            if (want_row[k] >= 0 &&
                memcmp(out + (size_t)rows * nv, alone + (size_t)want_row[k] * nv,
                       nv * sizeof(float)) != 0)
                mismatches++;
            rows++;
            if (want_row[k] >= 0)
                pa++;
        }
        free(out);
        step++;
    }
    CHECKF(mismatches == 0, "%d rows differ between alone and batched evaluation", mismatches);
    free(alone);
    free(mixed);
    kura_kv_destroy(ka);
    kura_kv_destroy(kb);
    kura_kv_destroy(kc);
    kura_ctx_destroy(c);
    free(a);
    free(b);
}

/* 8 concurrent greedy requests return exactly what each returns alone. */
static void test_identity(const struct model_set *ms, int32_t chunk)
{
    struct kura_sched *s = mksched(ms, 8, 256, chunk, 8);
    if (!s)
        return;
    int32_t *p[8], np[8];
    static struct run alone[8], together[8];
    for (int i = 0; i < 8; i++)
        p[i] = encode(ms->tok, prompts[i], &np[i]);
    for (int i = 0; i < 8; i++) {
        run_init(&alone[i]);
        struct kura_sched_req q = mkreq(p[i], np[i], 24 + 4 * i, &alone[i]);
        uint64_t id;
        CHECK(submit(s, &q, &id) == KURA_OK);
        run_wait(&alone[i]);
    }
    uint64_t ids[8];
    for (int i = 0; i < 8; i++) {
        run_init(&together[i]);
        struct kura_sched_req q = mkreq(p[i], np[i], 24 + 4 * i, &together[i]);
        CHECK(submit(s, &q, &ids[i]) == KURA_OK);
    }
    for (int i = 0; i < 8; i++)
        run_wait(&together[i]);
    for (int i = 0; i < 8; i++) {
        CHECK(alone[i].n > 0);
        CHECKF(alone[i].n == together[i].n &&
                   memcmp(alone[i].toks, together[i].toks, (size_t)alone[i].n * 4) == 0,
               "request %d: %d tokens alone, %d beside others; text alone '%s' vs '%s'", i,
               alone[i].n, together[i].n, alone[i].text, together[i].text);
        CHECK(strcmp(alone[i].text, together[i].text) == 0);
        CHECK(alone[i].finish == together[i].finish);
        CHECK(together[i].err == KURA_OK);
        CHECK(together[i].n_prompt == np[i]);
        CHECK(together[i].n_events_after_done == 0);
        CHECK(together[i].finish == KURA_FINISH_EOG ? together[i].n_gen == together[i].n + 1
                                                    : together[i].n_gen == together[i].n);
        run_deinit(&alone[i]);
        run_deinit(&together[i]);
        free(p[i]);
    }
    struct kura_sched_stats st;
    kura_sched_stats(s, &st);
    CHECK(st.n_slots == 8 && st.active_slots == 0 && st.queued == 0);
    CHECK(st.kv_total_cells == 8u * 256u && st.kv_used_cells == 0);
    CHECK(st.steps > 0);
    kura_sched_destroy(s);
}

static void test_cancel_and_queue(const struct model_set *ms)
{
    struct kura_sched *s = mksched(ms, 1, 512, 32, 1);
    if (!s)
        return;
    int32_t n;
    int32_t *p = encode(ms->tok, prompts[0], &n);
    struct run a, b, c, d;
    run_init(&a);
    run_init(&b);
    run_init(&c);
    run_init(&d);
    /* a runs long; b waits in the queue; c finds the queue full */
    a.hold_at = 3;
    struct kura_sched_req qa = mkreq(p, n, 400, &a);
    qa.ignore_eos = true;
    struct kura_sched_req qb = mkreq(p, n, 400, &b), qc = mkreq(p, n, 4, &c);
    uint64_t ia, ib, ic;
    CHECK(submit(s, &qa, &ia) == KURA_OK);
    CHECK(submit(s, &qb, &ib) == KURA_OK);
    CHECK(submit(s, &qc, &ic) == KURA_ERR_BUSY);
    pthread_mutex_lock(&a.mu); /* a's callback holds the scheduler at its third token */
    while (!a.held)
        pthread_cond_wait(&a.cv, &a.mu);
    pthread_mutex_unlock(&a.mu);
    kura_sched_cancel(s, ib); /* queued */
    kura_sched_cancel(s, ia); /* running, from another thread (while its callback runs) */
    pthread_mutex_lock(&a.mu);
    a.released = true;
    pthread_cond_broadcast(&a.cv);
    pthread_mutex_unlock(&a.mu);
    run_wait(&b);
    CHECK(b.finish == KURA_FINISH_CANCELLED && b.n == 0 && b.n_gen == 0);
    run_wait(&a);
    CHECK(a.finish == KURA_FINISH_CANCELLED);
    CHECKF(a.n == 3 && a.n_gen == 3, "%d tokens", a.n);
    kura_sched_cancel(s, ia); /* already done: no-op */
    kura_sched_cancel(s, 999999);
    /* the slot is free again; the callback cancels after 5 tokens */
    d.cancel_after = 5;
    struct kura_sched_req qd = mkreq(p, n, 100, &d);
    qd.ignore_eos = true;
    uint64_t id;
    CHECK(submit(s, &qd, &id) == KURA_OK);
    run_wait(&d);
    CHECK(d.finish == KURA_FINISH_CANCELLED && d.n == 5);
    /* invalid requests */
    struct kura_sched_req bad = mkreq(p, n, 0, &c);
    struct kura_errbuf eb;
    CHECK(kura_sched_submit(s, &bad, &id, &eb) == KURA_ERR_INVALID);
    bad = mkreq(p, 0, 5, &c);
    CHECK(kura_sched_submit(s, &bad, &id, &eb) == KURA_ERR_INVALID);
    bad = mkreq(p, n, 5, &c);
    bad.top_logprobs = KURA_SCHED_MAX_TOP_LOGPROBS + 1;
    CHECK(kura_sched_submit(s, &bad, &id, &eb) == KURA_ERR_INVALID);
    int32_t badtok = 1 << 30;
    bad = mkreq(&badtok, 1, 5, &c);
    CHECK(kura_sched_submit(s, &bad, &id, &eb) == KURA_ERR_INVALID);
    bad = mkreq(p, n, 5, &c);
    bad.sample.repeat_penalty = -1.0f;
    CHECK(kura_sched_submit(s, &bad, &id, &eb) == KURA_ERR_INVALID);
    /* destroy with a request still running: it gets its final event */
    struct run e;
    run_init(&e);
    e.sleep_us = 2000; /* 400 tokens take more than 0.8 s: destroy comes first */
    struct kura_sched_req qe = mkreq(p, n, 400, &e);
    qe.ignore_eos = true;
    CHECK(submit(s, &qe, &id) == KURA_OK);
    run_wait_tokens(&e, 1);
    kura_sched_destroy(s);
    CHECK(e.done && e.finish == KURA_FINISH_CANCELLED);
    run_deinit(&a);
    run_deinit(&b);
    run_deinit(&c);
    run_deinit(&d);
    run_deinit(&e);
    free(p);
}

static void test_context(const struct model_set *ms)
{
    const int32_t n_ctx = 24;
    struct kura_sched *s = mksched(ms, 2, n_ctx, 8, 4);
    if (!s)
        return;
    int32_t p[32];
    for (int i = 0; i < 32; i++)
        p[i] = 100 + i;
    struct run r;
    run_init(&r);
    uint64_t id;
    struct kura_sched_req q = mkreq(p, n_ctx, 10, &r);
    CHECK(submit(s, &q, &id) == KURA_ERR_RANGE);
    q = mkreq(p, n_ctx - 4, 100, &r);
    q.ignore_eos = true;
    CHECK(submit(s, &q, &id) == KURA_OK);
    run_wait(&r);
    CHECK(r.finish == KURA_FINISH_CONTEXT);
    CHECKF(r.n_gen == 5, "n_gen %d", r.n_gen); /* 4 free positions + the last sampled token */
    run_deinit(&r);
    kura_sched_destroy(s);
}

static void test_stop_and_sampling(const struct model_set *ms)
{
    struct kura_sched *s = mksched(ms, 4, 256, 16, 4);
    if (!s)
        return;
    int32_t n;
    int32_t *p = encode(ms->tok, prompts[1], &n);
    struct run base, st, x1, x2, x3, lp;
    run_init(&base);
    uint64_t id;
    struct kura_sched_req q = mkreq(p, n, 60, &base);
    q.ignore_eos = true;
    CHECK(submit(s, &q, &id) == KURA_OK);
    run_wait(&base);
    CHECK(base.finish == KURA_FINISH_LENGTH && base.n == 60);
    CHECK(base.text_len > 20);
    /* stop at a string in the middle of the greedy text */
    if (base.text_len > 20) {
        char stop[8];
        size_t at = base.text_len / 2;
        memcpy(stop, base.text + at, 5);
        stop[5] = '\0';
        const char *first = strstr(base.text, stop);
        const char *stops[2] = {"@@never@@", stop};
        run_init(&st);
        q = mkreq(p, n, 60, &st);
        q.ignore_eos = true;
        q.stops = stops;
        q.n_stops = 2;
        CHECK(submit(s, &q, &id) == KURA_OK);
        run_wait(&st);
        CHECK(st.finish == KURA_FINISH_STOP);
        CHECKF(first && st.text_len == (size_t)(first - base.text) &&
                   memcmp(st.text, base.text, st.text_len) == 0,
               "stop '%s': got '%s' from '%s'", stop, st.text, base.text);
        run_deinit(&st);
    }
    /* seeded sampling: the same seed repeats exactly, alone or beside other requests */
    run_init(&x1);
    run_init(&x2);
    run_init(&x3);
    struct run others[3];
    q = mkreq(p, n, 40, &x1);
    q.ignore_eos = true;
    q.sample.temperature = 1.0f;
    q.sample.top_k = 0;
    q.sample.top_p = 1.0f;
    q.sample.min_p = 0.0f;
    q.sample.seed = 1234;
    CHECK(submit(s, &q, &id) == KURA_OK);
    run_wait(&x1);
    for (int i = 0; i < 3; i++) {
        run_init(&others[i]);
        int32_t no;
        int32_t *po = encode(ms->tok, prompts[4 + i], &no);
        struct kura_sched_req qo = mkreq(po, no, 30, &others[i]);
        CHECK(submit(s, &qo, &id) == KURA_OK);
        free(po);
    }
    q.ud = &x2;
    CHECK(submit(s, &q, &id) == KURA_OK);
    run_wait(&x2);
    for (int i = 0; i < 3; i++) {
        run_wait(&others[i]);
        run_deinit(&others[i]);
    }
    CHECK(x1.n == 40 && x1.n == x2.n && memcmp(x1.toks, x2.toks, sizeof(int32_t) * 40) == 0);
    q.ud = &x3;
    q.sample.seed = 99;
    CHECK(submit(s, &q, &id) == KURA_OK);
    run_wait(&x3);
    CHECK(x3.n == 40 && memcmp(x1.toks, x3.toks, sizeof(int32_t) * 40) != 0);
    /* greedy is not the sampled run */
    CHECK(memcmp(base.toks, x1.toks, sizeof(int32_t) * 40) != 0);
    /* logprobs: greedy picks the top entry */
    run_init(&lp);
    q = mkreq(p, n, 20, &lp);
    q.ignore_eos = true;
    q.logprobs = true;
    q.top_logprobs = 5;
    CHECK(submit(s, &q, &id) == KURA_OK);
    run_wait(&lp);
    CHECK(!lp.bad_logprobs);
    CHECK(lp.n == 20 && memcmp(lp.toks, base.toks, sizeof(int32_t) * 20) == 0);
    bool lp_ok = true;
    for (int i = 0; i < lp.n; i++)
        lp_ok &= lp.lp[i] <= 0.0f && lp.lp[i] > -30.0f;
    CHECK(lp_ok);
    struct kura_sched_stats stt;
    kura_sched_stats(s, &stt);
    CHECK(stt.tokens_generated >= 60u + 40u * 3 + 20u);
    CHECK(stt.tokens_prompt >= (uint64_t)n * 5);
    run_deinit(&base);
    run_deinit(&x1);
    run_deinit(&x2);
    run_deinit(&x3);
    run_deinit(&lp);
    free(p);
    kura_sched_destroy(s);
}

static void test_json_mode(const struct model_set *ms)
{
    struct kura_sched *s = mksched(ms, 4, 256, 32, 4);
    if (!s)
        return;
    int32_t n;
    int32_t *p = encode(ms->tok, prompts[2], &n);
    const int32_t budgets[4] = {6, 13, 40, 120};
    struct run r[4];
    uint64_t id;
    for (int i = 0; i < 4; i++) {
        run_init(&r[i]);
        struct kura_sched_req q = mkreq(p, n, budgets[i], &r[i]);
        q.json_mode = true;
        if (i == 3) { /* sampled, so the model wanders */
            q.sample.temperature = 1.5f;
            q.sample.top_k = 0;
            q.sample.top_p = 1.0f;
            q.sample.min_p = 0.0f;
            q.sample.seed = 7;
        }
        CHECK(submit(s, &q, &id) == KURA_OK);
    }
    for (int i = 0; i < 4; i++) {
        run_wait(&r[i]);
        json_error_t err;
        json_t *j = json_loadb(r[i].text, r[i].text_len, 0, &err);
        CHECKF(j && json_is_object(j), "budget %d: '%s' does not parse: %s", budgets[i],
               r[i].text, err.text);
        CHECK(r[i].n_gen <= budgets[i]);
        CHECK(r[i].finish == KURA_FINISH_STOP || r[i].finish == KURA_FINISH_LENGTH);
        json_decref(j);
        run_deinit(&r[i]);
    }
    kura_sched_destroy(s);
    /* the context, not max_tokens, is the limit: the object still closes in time */
    s = mksched(ms, 1, n + 9, 32, 1);
    if (s) {
        struct run rc;
        run_init(&rc);
        struct kura_sched_req q = mkreq(p, n, 100, &rc);
        q.json_mode = true;
        q.sample.temperature = 1.5f;
        q.sample.top_k = 0;
        q.sample.seed = 3;
        CHECK(submit(s, &q, &id) == KURA_OK);
        run_wait(&rc);
        json_error_t err;
        json_t *j = json_loadb(rc.text, rc.text_len, 0, &err);
        CHECKF(j && json_is_object(j), "context-limited: '%s' does not parse: %s", rc.text,
               err.text);
        json_decref(j);
        run_deinit(&rc);
        kura_sched_destroy(s);
    }
    free(p);
}

static void test_embed(const struct model_set *ms)
{
    const struct kura_hparams *hp = kura_model_hparams(ms->m);
    struct kura_sched *s = mksched(ms, 2, 128, 8, 2);
    if (!s)
        return;
    int32_t n, n2;
    int32_t *p = encode(ms->tok, prompts[5], &n);
    int32_t *p2 = encode(ms->tok, prompts[6], &n2);
    float *e1 = malloc((size_t)hp->n_embd * sizeof(float));
    float *e2 = malloc((size_t)hp->n_embd * sizeof(float));
    float *e3 = malloc((size_t)hp->n_embd * sizeof(float));
    struct kura_errbuf eb = {0};
    /* while a generation runs */
    struct run r;
    run_init(&r);
    struct kura_sched_req q = mkreq(p2, n2, 50, &r);
    q.ignore_eos = true;
    uint64_t id;
    CHECK(submit(s, &q, &id) == KURA_OK);
    CHECK(kura_sched_embed(s, p, n, e1, &eb) == KURA_OK);
    CHECK(kura_sched_embed(s, p, n, e2, &eb) == KURA_OK);
    CHECK(kura_sched_embed(s, p2, n2, e3, &eb) == KURA_OK);
    run_wait(&r);
    double norm = 0, diff = 0;
    for (int d = 0; d < hp->n_embd; d++) {
        norm += (double)e1[d] * e1[d];
        diff += fabs((double)e1[d] - e3[d]);
    }
    CHECK(fabs(norm - 1.0) < 1e-4);
    CHECK(memcmp(e1, e2, (size_t)hp->n_embd * sizeof(float)) == 0);
    CHECK(diff > 1e-3);
    /* against a direct computation: mean of the hidden states, L2-normalised */
    struct kura_ctx *c = NULL;
    struct kura_kv *kv = NULL;
    CHECK(kura_ctx_create(ms->m, 64, 1, &c, &eb) == KURA_OK);
    CHECK(kura_kv_create(ms->m, 128, &kv, &eb) == KURA_OK);
    struct kura_batch_item items[64];
    for (int32_t i = 0; i < n; i++)
        items[i] = (struct kura_batch_item){p[i], i, kv, true};
    float *h = malloc((size_t)n * hp->n_embd * sizeof(float));
    CHECK(kura_ctx_eval_hidden(c, items, n, h, &eb) == KURA_OK);
    double ss = 0, maxd = 0;
    double *mean = calloc((size_t)hp->n_embd, sizeof(double));
    for (int32_t i = 0; i < n; i++)
        for (int d = 0; d < hp->n_embd; d++)
            mean[d] += h[(size_t)i * hp->n_embd + d] / n;
    for (int d = 0; d < hp->n_embd; d++)
        ss += mean[d] * mean[d];
    for (int d = 0; d < hp->n_embd; d++)
        maxd = fmax(maxd, fabs(mean[d] / sqrt(ss) - e1[d]));
    CHECKF(maxd < 1e-4, "max difference %g", maxd);
    CHECK(kura_sched_embed(s, p, 0, e1, &eb) == KURA_ERR_INVALID);
    int32_t *big = calloc(200, sizeof(int32_t));
    CHECK(kura_sched_embed(s, big, 200, e1, &eb) == KURA_ERR_RANGE);
    free(big);
    free(mean);
    free(h);
    kura_kv_destroy(kv);
    kura_ctx_destroy(c);
    run_deinit(&r);
    free(e1);
    free(e2);
    free(e3);
    free(p);
    free(p2);
    kura_sched_destroy(s);
}

int main(void)
{
    const char *shared = test_shared_dir();
    if (!shared)
        return TEST_SKIP;
    /* KURA_SCHED_TEST_ONLY_IDENTITY: just the batch-invariance tests (the forced-ISA runs) */
    bool only_identity = getenv("KURA_SCHED_TEST_ONLY_IDENTITY") != NULL;
    const char *names[2] = {"stories260K-F32.gguf", "stories260K-Q8_0.gguf"};
    for (int k = 0; k < 2; k++) {
        struct model_set ms;
        if (!load(shared, names[k], &ms)) {
            CHECK(0);
            continue;
        }
        fprintf(stderr, "model %s\n", names[k]);
        test_batch_invariance(&ms);
        test_identity(&ms, 16);
        if (k == 0 && !only_identity) {
            test_identity(&ms, 3);
            test_cancel_and_queue(&ms);
            test_context(&ms);
            test_stop_and_sampling(&ms);
            test_json_mode(&ms);
            test_embed(&ms);
        }
        unload(&ms);
    }
    /* the forward pass's batch invariance for every weight type (their gemm kernels) */
    const char *more[] = {"stories260K-F16.gguf",   "stories260K-Q4_0.gguf",
                          "tiny-qwen2-BF16.gguf",   "tiny-qwen2-Q4_1.gguf",
                          "tiny-qwen2-Q5_0.gguf",   "tiny-qwen2-Q5_1.gguf",
                          "tiny-qwen2-Q4_K_M.gguf", "tiny-qwen2-Q5_K_M.gguf",
                          "tiny-qwen2-Q6_K.gguf",   "tiny-qwen3-Q4_K_M.gguf"};
    for (size_t k = 0; k < sizeof more / sizeof *more; k++) {
        struct model_set ms;
        if (!load(shared, more[k], &ms)) {
            CHECK(0);
            continue;
        }
        fprintf(stderr, "model %s\n", more[k]);
        test_batch_invariance(&ms);
        unload(&ms);
    }
    kura_sched_destroy(NULL);
    return test_finish();
}
