/* Fuzz target: encode arbitrary bytes (with and without special-token parsing) and decode the
 * ids again, on one real vocabulary loaded once ($KURA_SHARED, else ../shared next to the
 * source tree). Invalid UTF-8 must neither crash nor hang. Without the vocabulary: no-op. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kura/gguf.h"
#include "kura/tokenizer.h"

static struct kura_tok *load(void)
{
    static int tried;
    static struct kura_tok *t;
    if (tried)
        return t;
    tried = 1;
    char path[2048];
    const char *shared = getenv("KURA_SHARED");
    if (shared)
        snprintf(path, sizeof path, "%s/models/vocab/ggml-vocab-llama-bpe.gguf", shared);
    else { /* this file is <src>/tests/fuzz/fuzz_tokenizer.c; shared is <src>/../shared */
        const char *slash = strrchr(__FILE__, '/');
        int dir_len = slash ? (int)(slash - __FILE__) : 1;
        snprintf(path, sizeof path, "%.*s/../../../shared/models/vocab/ggml-vocab-llama-bpe.gguf",
                 dir_len, slash ? __FILE__ : ".");
    }
    struct kura_gguf *g = NULL;
    if (kura_gguf_open(path, &g, NULL) == KURA_OK && kura_tok_create(g, &t, NULL) != KURA_OK)
        t = NULL;
    kura_gguf_close(g);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct kura_tok *t = load();
    if (!t)
        return 0;
    for (int parse = 0; parse < 2; parse++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (kura_tok_encode(t, (const char *)data, size, parse, parse, &ids, &n, NULL) !=
            KURA_OK)
            continue;
        char *text = NULL;
        size_t len = 0;
        if (kura_tok_decode(t, ids, n, KURA_TOK_PIECE_SPECIAL, &text, &len, NULL) != KURA_OK)
            abort(); /* every id came from the tokenizer: decoding cannot fail */
        /* byte-level BPE is lossless: without BOS, valid UTF-8 comes back byte for byte */
        struct kura_utf8_stream s;
        kura_utf8_stream_init(&s);
        char *chk = malloc(KURA_UTF8_STREAM_OUT_MAX(size));
        if (chk) {
            size_t w = kura_utf8_stream_push(&s, (const char *)data, size, chk,
                                             KURA_UTF8_STREAM_OUT_MAX(size));
            w += kura_utf8_stream_flush(&s, chk + w, 3);
            int valid = w == size && (size == 0 || memcmp(chk, data, size) == 0);
            if (!parse && valid && (len != size || (size && memcmp(text, data, size) != 0)))
                abort();
            free(chk);
        }
        free(text);
        free(ids);
    }
    return 0;
}
