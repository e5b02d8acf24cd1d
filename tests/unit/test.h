/* Minimal test harness: CHECK records a failure and continues; a test main returns
 * test_finish(). Exit 77 = skipped (ctest SKIP_RETURN_CODE). */
#ifndef KURA_TEST_H
#define KURA_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        test_checks++;                                                                    \
        if (!(cond)) {                                                                    \
            test_failures++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                                 \
    } while (0)

#define CHECKF(cond, ...)                                                                 \
    do {                                                                                  \
        test_checks++;                                                                    \
        if (!(cond)) {                                                                    \
            test_failures++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

static inline int test_finish(void)
{
    printf("%d checks, %d failed\n", test_checks, test_failures);
    return test_failures ? 1 : 0;
}

/* Directory with the shared models and references ($KURA_SHARED, else ../shared relative to
 * the source tree). Returns NULL when absent, after printing why. */
static inline const char *test_shared_dir(void)
{
    const char *d = getenv("KURA_SHARED");
    struct stat st;
    if (d && stat(d, &st) == 0 && S_ISDIR(st.st_mode))
        return d;
    fprintf(stderr, "skip: shared models directory not found (set KURA_SHARED; looked at '%s')\n",
            d ? d : "(unset)");
    return NULL;
}

#define TEST_SKIP 77

#endif
