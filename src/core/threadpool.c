#include "core/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPIN_ITERS 20000 /* ~0.1 ms of pause instructions before sleeping */

struct worker {
    struct kura_pool *pool;
    pthread_t thread;
    int ith;
};

struct kura_pool {
    int n_threads;
    struct worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;
    atomic_uint generation; /* bumped for every job */
    atomic_int pending;     /* workers still running the current job */
    atomic_bool stop;
    kura_pool_fn fn;
    void *arg;
};

static void *worker_main(void *p)
{
    struct worker *w = p;
    struct kura_pool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
               !atomic_load(&pool->stop) && spins < SPIN_ITERS) {
            spins++;
            __builtin_ia32_pause();
        }
        if (gen == seen && !atomic_load(&pool->stop)) {
            pthread_mutex_lock(&pool->mu);
            while ((gen = atomic_load(&pool->generation)) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->stop))
            return NULL;
        seen = gen;
        pool->fn(pool->arg, w->ith, pool->n_threads);
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mu);
        }
    }
}

int kura_physical_cores(void)
{
    /* Count distinct (physical id, core id) pairs; fall back to online CPUs. */
    FILE *f = fopen("/proc/cpuinfo", "r");
    int n = 0;
    if (f) {
        char line[256];
        int phys = 0;
        long seen[1024];
        int n_seen = 0;
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "physical id", 11) == 0) {
                char *c = strchr(line, ':');
                phys = c ? atoi(c + 1) : 0;
            } else if (strncmp(line, "core id", 7) == 0) {
                char *c = strchr(line, ':');
                long key = (long)phys * 65536 + (c ? atol(c + 1) : 0);
                int dup = 0;
                for (int i = 0; i < n_seen; i++)
                    dup |= seen[i] == key;
                if (!dup && n_seen < 1024)
                    seen[n_seen++] = key;
            }
        }
        fclose(f);
        n = n_seen;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0 || (online > 0 && n > online))
        n = online > 0 ? (int)online : 1;
    return n;
}

enum kura_err kura_pool_create(int n_threads, struct kura_pool **out, struct kura_errbuf *eb)
{
    *out = NULL;
    if (n_threads <= 0)
        n_threads = kura_physical_cores();
    if (n_threads > 512)
        return kura_err_set(eb, KURA_ERR_RANGE, "threads: %d is more than 512", n_threads);
    struct kura_pool *p = calloc(1, sizeof *p);
    if (!p)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory for thread pool");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        kura_pool_destroy(p);
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory for thread pool");
    }
    for (int i = 1; i < n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].ith = i;
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            p->n_threads = i; /* only join what was started */
            kura_pool_destroy(p);
            return kura_err_set(eb, KURA_ERR_IO, "cannot start worker thread %d", i);
        }
    }
    *out = p;
    return KURA_OK;
}

void kura_pool_destroy(struct kura_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    if (p->workers)
        for (int i = 1; i < p->n_threads; i++)
            pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

int kura_pool_n_threads(const struct kura_pool *p)
{
    return p ? p->n_threads : 1;
}

void kura_pool_run(struct kura_pool *p, kura_pool_fn fn, void *arg)
{
    if (!p || p->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n_threads - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n_threads);
    /* Spin briefly (workers usually finish together with us), then sleep: on a loaded machine a
     * descheduled worker must not cost a spinning core. */
    for (int spins = 0; spins < SPIN_ITERS; spins++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
        __builtin_ia32_pause();
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
