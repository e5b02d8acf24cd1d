/* Fuzz target for the JSON-mode validator: feeds the input byte by byte up to the first byte it
 * rejects. Every accepted prefix must close with kura_jsonc_close (whose length is
 * kura_jsonc_close_len) into a complete document that jansson parses as an object; a document
 * the validator calls complete must parse as it is; pushing in one call or byte by byte must
 * agree. Any violation aborts. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kura/json_constraint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_parse(const char *s, size_t n)
{
    json_error_t err;
    json_t *j = json_loadb(s, n, 0, &err);
    if (!j || !json_is_object(j))
        abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    struct kura_jsonc st;
    kura_jsonc_init(&st);
    size_t ok = 0;
    while (ok < size) {
        struct kura_jsonc next = st;
        if (!kura_jsonc_push(&next, (const char *)data + ok, 1))
            break;
        st = next;
        ok++;
        if (kura_jsonc_complete(&st))
            must_parse((const char *)data, ok);
    }
    /* one call over the accepted prefix ends in the same state */
    struct kura_jsonc whole;
    kura_jsonc_init(&whole);
    if (!kura_jsonc_push(&whole, (const char *)data, ok) || memcmp(&whole, &st, sizeof st) != 0)
        abort();
    if (ok < size) { /* the rejected byte is rejected in one call too */
        kura_jsonc_init(&whole);
        if (kura_jsonc_push(&whole, (const char *)data, ok + 1))
            abort();
    }
    char *buf = malloc(ok + KURA_JSONC_MAX_CLOSE);
    if (!buf)
        return 0;
    memcpy(buf, data, ok);
    size_t cl = kura_jsonc_close(&st, buf + ok, KURA_JSONC_MAX_CLOSE);
    if (cl != kura_jsonc_close_len(&st))
        abort();
    struct kura_jsonc fin = st;
    if (!kura_jsonc_push(&fin, buf + ok, cl) || !kura_jsonc_complete(&fin))
        abort();
    must_parse(buf, ok + cl);
    free(buf);
    return 0;
}
