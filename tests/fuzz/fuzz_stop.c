/* Fuzz target for the stop-string matcher: the output must not depend on how the text is cut
 * into pieces. Input: byte 0 = number of stop strings (mod 5), then that many stop strings
 * terminated by 0x1f, then the text; the text is pushed once whole and once in pieces whose
 * sizes come from the text bytes themselves, and both runs must emit the same bytes and agree on
 * whether and which stop string completed. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kura/sample.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs the matcher; returns emitted bytes in *out (malloc'd, caller frees). */
static bool run(struct kura_stop *st, const uint8_t *text, size_t n, bool split, char **out,
                size_t *out_len, bool *stopped)
{
    char *buf = malloc(n + 1);
    if (!buf)
        return false;
    size_t ol = 0, pos = 0;
    *stopped = false;
    while (pos < n && !*stopped) {
        size_t pl = split ? 1 + (size_t)(text[pos] % 7) : n - pos;
        if (pl > n - pos)
            pl = n - pos;
        const char *e;
        size_t el;
        if (kura_stop_push(st, (const char *)text + pos, pl, &e, &el, stopped) != KURA_OK)
            abort();
        if (ol + el > n)
            abort(); /* never emits more than it was given */
        memcpy(buf + ol, e, el);
        ol += el;
        pos += pl;
    }
    if (!*stopped) {
        const char *e;
        size_t el;
        kura_stop_flush(st, &e, &el);
        if (ol + el > n)
            abort();
        memcpy(buf + ol, e, el);
        ol += el;
    }
    *out = buf;
    *out_len = ol;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n_stops = data[0] % 5, pos = 1;
    char *stops[4];
    size_t k = 0;
    while (k < n_stops && pos < size) {
        size_t end = pos;
        while (end < size && data[end] != 0x1f)
            end++;
        if (end == pos || memchr(data + pos, 0, end - pos)) { /* empty or NUL: skip it */
            pos = end + 1;
            n_stops--;
            continue;
        }
        stops[k] = malloc(end - pos + 1);
        if (!stops[k])
            goto out;
        memcpy(stops[k], data + pos, end - pos);
        stops[k][end - pos] = 0;
        k++;
        pos = end + 1;
    }
    if (pos > size)
        pos = size;
    struct kura_stop *a = NULL, *b = NULL;
    if (kura_stop_create((const char *const *)stops, k, &a, NULL) != KURA_OK ||
        kura_stop_create((const char *const *)stops, k, &b, NULL) != KURA_OK) {
        kura_stop_destroy(a);
        goto out;
    }
    char *oa = NULL, *ob = NULL;
    size_t la = 0, lb = 0;
    bool sa, sb;
    if (run(a, data + pos, size - pos, false, &oa, &la, &sa) &&
        run(b, data + pos, size - pos, true, &ob, &lb, &sb)) {
        if (sa != sb || la != lb || memcmp(oa, ob, la) != 0 ||
            memcmp(oa, data + pos, la) != 0 || kura_stop_matched(a) != kura_stop_matched(b))
            abort();
    }
    free(oa);
    free(ob);
    kura_stop_destroy(a);
    kura_stop_destroy(b);
out:
    for (size_t i = 0; i < k; i++)
        free(stops[i]);
    return 0;
}
