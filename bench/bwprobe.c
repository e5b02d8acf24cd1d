/* Memory read bandwidth probe: N threads each sum their share of a buffer much larger than the
 * caches, repeatedly; prints the best GB/s. Used by bench/run to state decode speed as a share
 * of the bandwidth bound (tokens/s <= bandwidth / bytes of weights). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

struct job {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
};

static void *reader(void *arg)
{
    struct job *j = arg;
    /* 32 independent sums over 256-byte steps: the compiler turns this into full-width vector
     * loads (-O3 -march=native), so the loop is bound by memory, not by the adds */
    uint64_t s[32] = {0};
    for (size_t i = 0; i + 32 <= j->n; i += 32)
        for (int k = 0; k < 32; k++)
            s[k] += j->p[i + k];
    uint64_t t = 0;
    for (int k = 0; k < 32; k++)
        t += s[k];
    j->sum = t;
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    if (threads < 1 || threads > 256 || mib < 64 || mib > 65536) {
        fprintf(stderr, "usage: bwprobe [THREADS] [MIB]\n");
        return 2;
    }
    size_t n = mib << 17; /* uint64 per MiB = 131072 */
    uint64_t *buf = aligned_alloc(2u << 20, n * sizeof *buf);
    if (!buf) {
        fprintf(stderr, "bwprobe: out of memory\n");
        return 1;
    }
    madvise(buf, n * sizeof *buf, MADV_HUGEPAGE); /* fewer TLB misses; best effort */
    memset(buf, 1, n * sizeof *buf);
    double best = 0;
    uint64_t total = 0;
    for (int rep = 0; rep < 8; rep++) {
        pthread_t th[256];
        struct job jobs[256];
        double t0 = now_s();
        for (int t = 0; t < threads; t++) {
            jobs[t].p = buf + n / threads * t;
            jobs[t].n = n / threads;
            pthread_create(&th[t], NULL, reader, &jobs[t]);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            total += jobs[t].sum;
        }
        double gbs = (double)(n * sizeof *buf) / (now_s() - t0) / 1e9;
        if (gbs > best)
            best = gbs;
    }
    printf("%.2f\n", best);
    fprintf(stderr, "bwprobe: %d threads, %zu MiB, checksum %llu\n", threads, mib,
            (unsigned long long)(total & 0xffff));
    free(buf);
    return 0;
}
