/* UTC timestamps in the one format kura writes: "2024-05-01T12:00:00.123456Z" (27 chars).
 * Fixed width, so timestamps compare correctly as strings. */
#ifndef KURA_CORE_TIMEFMT_H
#define KURA_CORE_TIMEFMT_H

#include <stdio.h>
#include <string.h>
#include <time.h>

#define KURA_TIME_LEN 28 /* 27 + NUL */

static inline void kura_time_format(const struct timespec *ts, char out[KURA_TIME_LEN])
{
    struct tm tm;
    time_t t = ts->tv_sec;
    gmtime_r(&t, &tm);
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%04u-%02u-%02uT%02u:%02u:%02u.%06luZ",
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
             (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
             (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned long)(ts->tv_nsec / 1000) % 1000000ul);
    memcpy(out, tmp, KURA_TIME_LEN - 1);
    out[KURA_TIME_LEN - 1] = 0;
}

static inline void kura_time_now(char out[KURA_TIME_LEN])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    kura_time_format(&ts, out);
}

#endif
