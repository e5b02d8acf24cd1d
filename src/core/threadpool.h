/* A persistent thread pool for data-parallel kernels. Workers spin briefly after a job (to
 * catch the next matmul of a decode step without a wake-up delay) and then sleep on a condition
 * variable, so an idle pool burns no CPU. Not re-entrant: one job at a time per pool. */
#ifndef KURA_CORE_THREADPOOL_H
#define KURA_CORE_THREADPOOL_H

#include "kura/err.h"

struct kura_pool;

/* fn(arg, ith, nth) is called once on each of nth threads (the caller is thread 0). */
typedef void (*kura_pool_fn)(void *arg, int ith, int nth);

/* Creates a pool running jobs on n_threads threads in total (n_threads - 1 workers plus the
 * calling thread). n_threads <= 0 means the number of physical cores. */
enum kura_err kura_pool_create(int n_threads, struct kura_pool **out /* OUT */,
                               struct kura_errbuf *eb);
void kura_pool_destroy(struct kura_pool *p); /* NULL is a no-op */
int kura_pool_n_threads(const struct kura_pool *p);
/* Runs fn on every thread and returns when all have finished. A NULL pool runs fn(arg, 0, 1). */
void kura_pool_run(struct kura_pool *p, kura_pool_fn fn, void *arg);
/* Number of physical cores (hyper-threads of one core count once); at least 1. */
int kura_physical_cores(void);

/* Splits [0, n) into nth nearly equal chunks; chunk ith is [*lo, *hi). */
static inline void kura_split(long n, int ith, int nth, long *lo, long *hi)
{
    long base = n / nth, rem = n % nth;
    *lo = ith * base + (ith < rem ? ith : rem);
    *hi = *lo + base + (ith < rem ? 1 : 0);
}

#endif
