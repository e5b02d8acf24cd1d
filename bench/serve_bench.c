/* Serving benchmark: aggregate decode tokens/s of the continuous-batching scheduler with 1, 4
 * and 8 concurrent greedy streams, driven through the library (no HTTP). Decode throughput is
 * measured over the window in which every stream is decoding (after the last stream's first
 * token, before the first stream's end), so prefill does not count.
 * Usage: serve_bench MODEL.gguf [THREADS] [GEN] [PROMPT]   (defaults 2, 64, 32) */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kura/sched.h"

#define MAX_STREAMS 8
#define MAX_GEN 4096

struct stream {
    double t[MAX_GEN]; /* time of each token */
    int n;
    bool done;
    enum kura_err err;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool on_event(void *ud, const struct kura_sched_event *ev)
{
    struct stream *s = ud;
    double t = now_s();
    pthread_mutex_lock(&mu);
    if (ev->done) {
        s->done = true;
        s->err = ev->err;
        pthread_cond_broadcast(&cv);
    } else if (s->n < MAX_GEN) {
        s->t[s->n++] = t;
    }
    pthread_mutex_unlock(&mu);
    return true;
}

/* Runs n streams at once; returns aggregate decode tokens/s (0 on failure). */
static double run(struct kura_sched *sch, int n, int gen, int plen, int32_t n_vocab)
{
    static struct stream st[MAX_STREAMS];
    int32_t prompt[MAX_STREAMS][512];
    memset(st, 0, sizeof st);
    uint32_t seed = 12345;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < plen; k++) {
            seed = seed * 1664525u + 1013904223u;
            prompt[i][k] = (int32_t)(100 + (seed >> 8) % (uint32_t)(n_vocab - 200));
        }
    for (int i = 0; i < n; i++) {
        struct kura_sched_req q = {0};
        q.prompt = prompt[i];
        q.n_prompt = plen;
        q.max_tokens = gen;
        q.sample = kura_sample_params_default();
        q.sample.temperature = 0.0f;
        q.sample.seed = 1;
        q.ignore_eos = true;
        q.cb = on_event;
        q.ud = &st[i];
        uint64_t id;
        struct kura_errbuf eb = {0};
        if (kura_sched_submit(sch, &q, &id, &eb) != KURA_OK) {
            fprintf(stderr, "serve_bench: submit: %s\n", eb.msg);
            return 0;
        }
    }
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n; i++)
        while (!st[i].done)
            pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    double t0 = 0, t1 = INFINITY;
    for (int i = 0; i < n; i++) {
        if (st[i].err || st[i].n < 2)
            return 0;
        if (st[i].t[0] > t0)
            t0 = st[i].t[0];
        if (st[i].t[st[i].n - 1] < t1)
            t1 = st[i].t[st[i].n - 1];
    }
    long count = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < st[i].n; k++)
            count += st[i].t[k] > t0 && st[i].t[k] <= t1;
    return t1 > t0 ? (double)count / (t1 - t0) : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: serve_bench MODEL.gguf [THREADS] [GEN] [PROMPT]\n");
        return argc < 2 ? 2 : 0;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    int gen = argc > 3 ? atoi(argv[3]) : 64;
    int plen = argc > 4 ? atoi(argv[4]) : 32;
    if (gen < 8 || gen > MAX_GEN || plen < 1 || plen > 512) {
        fprintf(stderr, "serve_bench: GEN in [8, %d], PROMPT in [1, 512]\n", MAX_GEN);
        return 2;
    }
    struct kura_errbuf eb = {0};
    struct kura_model *m = NULL;
    struct kura_tok *tok = NULL;
    struct kura_sched *sch = NULL;
    if (kura_model_load(argv[1], &m, &eb) || kura_tok_create(kura_model_gguf(m), &tok, &eb)) {
        fprintf(stderr, "serve_bench: %s\n", eb.msg);
        kura_model_destroy(m);
        return 1;
    }
    struct kura_sched_params p = {.n_slots = MAX_STREAMS, .n_ctx = plen + gen + 8,
                                  .prefill_chunk = 256, .queue_max = 8, .n_threads = threads};
    if (kura_sched_create(m, tok, &p, &sch, &eb)) {
        fprintf(stderr, "serve_bench: %s\n", eb.msg);
        kura_tok_destroy(tok);
        kura_model_destroy(m);
        return 1;
    }
    int32_t nv = kura_tok_n_vocab(tok);
    run(sch, 1, 8, plen, nv); /* warm up: page the weights in */
    const int counts[3] = {1, 4, 8};
    double tps[3];
    printf("serve_bench: %s, %d threads, prompt %d, %d tokens per stream (greedy)\n", argv[1],
           threads, plen, gen);
    for (int k = 0; k < 3; k++) {
        tps[k] = run(sch, counts[k], gen, plen, nv);
        printf("  %d stream%s: %8.2f tokens/s aggregate decode (%.2f per stream)\n", counts[k],
               counts[k] > 1 ? "s" : " ", tps[k], tps[k] / counts[k]);
        fflush(stdout);
    }
    int rc = 0;
    if (tps[0] > 0) {
        printf("  8-stream / 1-stream: %.2fx (target >= 3x)\n", tps[2] / tps[0]);
    } else {
        printf("  measurement failed\n");
        rc = 1;
    }
    kura_sched_destroy(sch);
    kura_tok_destroy(tok);
    kura_model_destroy(m);
    return rc;
}
