/* Fuzz target: any byte string through the GGUF reader, then every kv and tensor through the
 * public API (getters, formatting, raw values, tensor data), so that a file the reader accepts
 * can never make a later accessor read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kura/gguf.h"

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kura_gguf *g = NULL;
    struct kura_errbuf eb = {0};
    if (kura_gguf_open_buffer(data, size, &g, &eb) != KURA_OK) {
        if (g != NULL || eb.msg[0] == 0 || memchr(eb.msg, 0, sizeof eb.msg) == NULL)
            __builtin_trap(); /* failure must give no object and a terminated message */
        return 0;
    }
    char buf[256], key[128];
    uint64_t acc = kura_gguf_version(g) + kura_gguf_alignment(g) + kura_gguf_data_offset(g) +
                   kura_gguf_file_size(g);
    for (int64_t i = -1; i <= kura_gguf_n_kv(g); i++) {
        struct kura_str k = kura_gguf_key(g, i);
        kura_gguf_kv_format(g, i, buf, sizeof buf);
        kura_gguf_kv_format(g, i, buf, 7); /* truncation paths */
        acc += strlen(buf) + k.len + (uint64_t)kura_gguf_kv_type(g, i);
        size_t raw_len;
        const uint8_t *raw = kura_gguf_kv_raw(g, i, &raw_len);
        for (size_t j = 0; raw && j < raw_len; j += 61)
            acc += raw[j];
        uint64_t n = kura_gguf_arr_len(g, i);
        enum kura_gguf_vtype at = kura_gguf_arr_type(g, i);
        const uint8_t *ad = kura_gguf_arr_data(g, i);
        if (ad && n)
            acc += ad[0];
        for (uint64_t j = 0; at == KURA_GGUF_STRING && j < n && j < 64; j++) {
            struct kura_str s = kura_gguf_arr_str(g, i, j);
            acc += s.len ? (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1] : 0;
        }
        if (i < 0 || i >= kura_gguf_n_kv(g))
            continue;
        snprintf(key, sizeof key, "%.*s", k.len > 100 ? 100 : (int)k.len, k.ptr);
        uint64_t u;
        int64_t iv;
        double fv;
        bool bv;
        struct kura_str s;
        if (kura_gguf_get_u64(g, key, &u) == KURA_OK)
            acc += u;
        if (kura_gguf_get_i64(g, key, &iv) == KURA_OK)
            acc += (uint64_t)iv;
        if (kura_gguf_get_f64(g, key, &fv) == KURA_OK)
            acc += (uint64_t)(fv == fv);
        if (kura_gguf_get_bool(g, key, &bv) == KURA_OK)
            acc += bv;
        if (kura_gguf_get_str(g, key, &s) == KURA_OK && s.len)
            acc += (uint8_t)s.ptr[s.len - 1];
        acc += (uint64_t)kura_gguf_find_key(g, key);
    }
    for (int64_t i = -1; i <= kura_gguf_n_tensors(g); i++) {
        const struct kura_gguf_tensor *t = kura_gguf_tensor(g, i);
        if (!t)
            continue;
        const uint8_t *d = t->data;
        if (t->size)
            acc += d[0] + d[t->size - 1];
        acc += (uint64_t)(t->ne[0] + t->ne[1] + t->ne[2] + t->ne[3]) + t->n_dims + t->type;
        snprintf(key, sizeof key, "%.*s", t->name.len > 100 ? 100 : (int)t->name.len,
                 t->name.ptr);
        acc += kura_gguf_find_tensor(g, key) != NULL;
    }
    sink = acc;
    kura_gguf_close(g);
    return 0;
}
