/* Crash test: a child process appends in a loop and reports every acknowledged seq through a
 * pipe; the parent kills it with SIGKILL at a random point, 50 times. Each time the log must
 * verify as a valid prefix (intact, or torn at the end), every acknowledged record must be in
 * it with the content the child wrote, and reopening must seal any torn tail so that the whole
 * log verifies again. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kura/audit.h"
#include "kura/keys.h"
#include "kura/state.h"
#include "test.h"

#define ITERATIONS 50

static struct kura_secret *pass(void)
{
    struct kura_secret *p;
    kura_secret_from("crash test", 10, &p);
    return p;
}

#define CHILD_THREADS 4

struct child_thr {
    struct kura_audit *log;
    int iter, id, wfd;
};

static void *child_thread(void *arg)
{
    struct child_thr *t = arg;
    /* Records of varying size, some large, so that kills land inside writes too. */
    static char dets[CHILD_THREADS][40000];
    char *det = dets[t->id];
    for (int i = 0;; i++) {
        char obj[64];
        snprintf(obj, sizeof obj, "iter-%d-%d-%d", t->iter, t->id, i);
        size_t n = i % 8 == 0 ? (size_t)i * 7919u % 30000u : (size_t)i * 31u % 200u;
        memcpy(det, "{\"pad\":\"", 8);
        memset(det + 8, 'a' + i % 26, n);
        memcpy(det + 8 + n, "\"}", 3);
        uint64_t seq;
        if (kura_audit_append(t->log, "local:crash", "crash.test", obj, "ok", det, &seq, NULL))
            _exit(4);
        /* one pipe write (< PIPE_BUF, so atomic) per acknowledged record */
        uint64_t msg[3] = {seq, (uint64_t)t->id, (uint64_t)i};
        if (write(t->wfd, msg, sizeof msg) != (ssize_t)sizeof msg)
            _exit(5);
    }
    return NULL;
}

static void child(const char *dir, int iter, int wfd)
{
    struct kura_secret *p = pass();
    struct kura_keys *k = NULL;
    struct kura_audit *log = NULL;
    struct kura_audit_options o = {.checkpoint_every = 7, .checkpoint_interval_ms = 50};
    if (kura_keys_open(dir, p, &k, NULL) || kura_audit_open(dir, k, &o, &log, NULL, NULL))
        _exit(3);
    struct child_thr th[CHILD_THREADS];
    pthread_t tid[CHILD_THREADS];
    for (int i = 0; i < CHILD_THREADS; i++) {
        th[i] = (struct child_thr){log, iter, i, wfd};
        pthread_create(&tid[i], NULL, child_thread, &th[i]);
    }
    for (;;)
        pause();
}

struct acks {
    int iter;
    uint64_t seq[100000];
    uint64_t thr[100000];
    uint64_t idx[100000];
    int n;
    int checked, wrong;
};

static int check_cb(void *ud, const struct kura_audit_record *rec)
{
    struct acks *a = ud;
    /* find this record among the acknowledged ones */
    for (int i = 0; i < a->n; i++) {
        if (a->seq[i] == rec->seq) {
            char obj[64];
            snprintf(obj, sizeof obj, "iter-%d-%llu-%llu", a->iter,
                     (unsigned long long)a->thr[i], (unsigned long long)a->idx[i]);
            a->checked++;
            if (strcmp(rec->object, obj) != 0 || strcmp(rec->action, "crash.test") != 0)
                a->wrong++;
            break;
        }
    }
    return 0;
}

int main(void)
{
    setenv("KURA_ARGON2_OPSLIMIT", "1", 1);
    setenv("KURA_ARGON2_MEMLIMIT", "8192", 1);
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/kura-test-crash-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    struct kura_errbuf eb = {0};
    struct kura_secret *p = pass();
    struct kura_keys *k = NULL;
    CHECKF(kura_keys_init(dir, p, NULL, &eb) == KURA_OK, "%s", eb.msg);
    CHECKF(kura_keys_open(dir, p, &k, &eb) == KURA_OK, "%s", eb.msg);
    kura_secret_destroy(p);
    if (!k)
        return test_finish();
    uint8_t pk[32];
    kura_keys_public(k, pk);
    struct kura_audit *log = NULL;
    struct kura_audit_options o = {.no_timer = true};
    CHECK(kura_audit_open(dir, k, &o, &log, NULL, &eb) == KURA_OK);
    kura_audit_close(log, &eb);

    unsigned seed = (unsigned)time(NULL);
    const char *s = getenv("KURA_CRASH_SEED");
    if (s)
        seed = (unsigned)strtoul(s, NULL, 10);
    printf("seed %u (set KURA_CRASH_SEED to replay)\n", seed);
    srand(seed);
    static struct acks a;
    int torn_seen = 0, total_acked = 0;
    for (int iter = 0; iter < ITERATIONS; iter++) {
        int pfd[2];
        if (pipe(pfd) != 0)
            return 1;
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            child(dir, iter, pfd[1]);
            _exit(0);
        }
        close(pfd[1]);
        memset(&a, 0, sizeof a);
        a.iter = iter;
        int want = rand() % 48; /* acknowledgements to wait for before the kill */
        uint64_t msg[3];
        while (a.n < want && read(pfd[0], msg, sizeof msg) == (ssize_t)sizeof msg) {
            a.seq[a.n] = msg[0];
            a.thr[a.n] = msg[1];
            a.idx[a.n] = msg[2];
            a.n++;
        }
        usleep((useconds_t)(rand() % 3000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECKF(WIFSIGNALED(status), "iteration %d: child exited early (status %d)", iter, status);
        /* acknowledgements still in the pipe were given before the kill */
        while (a.n < 100000 && read(pfd[0], msg, sizeof msg) == (ssize_t)sizeof msg) {
            a.seq[a.n] = msg[0];
            a.thr[a.n] = msg[1];
            a.idx[a.n] = msg[2];
            a.n++;
        }
        close(pfd[0]);
        total_acked += a.n;

        struct kura_audit_verify_opts vo = {.pubkey = pk};
        struct kura_audit_verify_result r;
        kura_audit_verify_file(dir, &vo, true, &r, &eb);
        CHECKF(r.verdict == KURA_AUDIT_INTACT || r.verdict == KURA_AUDIT_TORN,
               "iteration %d: %s", iter, r.message);
        if (r.verdict == KURA_AUDIT_TORN)
            torn_seen++;
        uint64_t max_ack = 0, min_ack = UINT64_MAX;
        for (int i = 0; i < a.n; i++) {
            max_ack = a.seq[i] > max_ack ? a.seq[i] : max_ack;
            min_ack = a.seq[i] < min_ack ? a.seq[i] : min_ack;
        }
        CHECKF(r.last_seq >= max_ack, "iteration %d: acknowledged seq %llu missing (log ends at "
                                      "%llu)", iter, (unsigned long long)max_ack,
               (unsigned long long)r.last_seq);
        if (a.n) {
            struct kura_audit_filter f = {.from_seq = min_ack, .to_seq = max_ack};
            CHECK(kura_audit_show(dir, &f, check_cb, &a, NULL, &eb) == KURA_OK);
            CHECKF(a.checked == a.n && a.wrong == 0, "iteration %d: %d of %d acknowledged "
                                                     "records found, %d wrong",
                   iter, a.checked, a.n, a.wrong);
        }
        /* Reopen: a torn tail is sealed; then the whole log verifies. */
        struct kura_audit_open_info info;
        CHECKF(kura_audit_open(dir, k, &o, &log, &info, &eb) == KURA_OK, "iteration %d: %s",
               iter, eb.msg);
        CHECK(info.sealed == (r.verdict == KURA_AUDIT_TORN) || info.completed);
        kura_audit_close(log, &eb);
        CHECKF(kura_audit_verify_file(dir, &vo, true, &r, &eb) == KURA_OK, "iteration %d: %s",
               iter, r.message);
    }
    printf("%d iterations, %d acknowledged records, %d torn tails sealed\n", ITERATIONS,
           total_acked, torn_seen);
    kura_keys_destroy(k);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return test_finish();
}
