/* GGUF v2/v3 reader over mmap. Every count, size and offset is validated against the file
 * size before use; errors name the field and the file offset. */
#ifndef KURA_GGUF_H
#define KURA_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/types.h"

#ifdef __cplusplus
extern "C" {
#endif

enum kura_gguf_vtype {
    KURA_GGUF_UINT8 = 0,
    KURA_GGUF_INT8 = 1,
    KURA_GGUF_UINT16 = 2,
    KURA_GGUF_INT16 = 3,
    KURA_GGUF_UINT32 = 4,
    KURA_GGUF_INT32 = 5,
    KURA_GGUF_FLOAT32 = 6,
    KURA_GGUF_BOOL = 7,
    KURA_GGUF_STRING = 8,
    KURA_GGUF_ARRAY = 9,
    KURA_GGUF_UINT64 = 10,
    KURA_GGUF_INT64 = 11,
    KURA_GGUF_FLOAT64 = 12,
    KURA_GGUF_VTYPE__COUNT
};

/* A string inside the mapped file: NOT NUL-terminated. */
struct kura_str {
    const char *ptr;
    uint64_t len;
};

struct kura_gguf_tensor {
    struct kura_str name;
    enum kura_type type;
    uint32_t n_dims;
    int64_t ne[4];       /* elements per dimension, ne[0] fastest; unused dims are 1 */
    uint64_t offset;     /* relative to the data section */
    uint64_t size;       /* bytes */
    const void *data;    /* view into the mapping; valid until kura_gguf_close */
};

struct kura_gguf;

/* Opens and validates path. On success *out owns the mapping; the caller closes it with
 * kura_gguf_close. On failure *out = NULL and eb names the field and offset. */
enum kura_err kura_gguf_open(const char *path, struct kura_gguf **out /* OUT */,
                             struct kura_errbuf *eb);
/* Same over a caller-owned buffer (borrowed; must outlive the returned object). For fuzzing. */
enum kura_err kura_gguf_open_buffer(const void *buf, size_t len, struct kura_gguf **out /* OUT */,
                                    struct kura_errbuf *eb);
void kura_gguf_close(struct kura_gguf *g); /* NULL is a no-op */

uint32_t kura_gguf_version(const struct kura_gguf *g);
uint64_t kura_gguf_alignment(const struct kura_gguf *g);
uint64_t kura_gguf_data_offset(const struct kura_gguf *g);
const char *kura_gguf_path(const struct kura_gguf *g); /* "" for a buffer */
uint64_t kura_gguf_file_size(const struct kura_gguf *g);
const void *kura_gguf_base(const struct kura_gguf *g); /* start of the mapping */

/* Metadata. Indices run 0..n_kv-1; lookup by key returns -1 when absent. */
int64_t kura_gguf_n_kv(const struct kura_gguf *g);
int64_t kura_gguf_find_key(const struct kura_gguf *g, const char *key);
struct kura_str kura_gguf_key(const struct kura_gguf *g, int64_t i);
enum kura_gguf_vtype kura_gguf_kv_type(const struct kura_gguf *g, int64_t i);
/* For arrays: element type and count (count 0 and type KURA_GGUF_VTYPE__COUNT otherwise). */
enum kura_gguf_vtype kura_gguf_arr_type(const struct kura_gguf *g, int64_t i);
uint64_t kura_gguf_arr_len(const struct kura_gguf *g, int64_t i);
/* Raw pointer to the packed array data (numeric arrays only; NULL for string arrays). */
const void *kura_gguf_arr_data(const struct kura_gguf *g, int64_t i);
/* j-th string of a string array (j < arr_len). */
struct kura_str kura_gguf_arr_str(const struct kura_gguf *g, int64_t i, uint64_t j);

/* The i-th value exactly as encoded in the file (after its type field; for arrays the element
 * type and count come first), as a view into the file; *len its byte length. NULL and *len = 0
 * for a bad index. Used to copy metadata byte-exactly (kura_gguf_writer_copy_kv). */
const void *kura_gguf_kv_raw(const struct kura_gguf *g, int64_t i, size_t *len /* OUT */);

/* Typed scalar getters: convert any integer/bool/float scalar losslessly where possible.
 * Return KURA_ERR_NOTFOUND if the key is absent, KURA_ERR_FORMAT if the type does not fit. */
enum kura_err kura_gguf_get_u64(const struct kura_gguf *g, const char *key, uint64_t *out);
enum kura_err kura_gguf_get_i64(const struct kura_gguf *g, const char *key, int64_t *out);
enum kura_err kura_gguf_get_f64(const struct kura_gguf *g, const char *key, double *out);
enum kura_err kura_gguf_get_bool(const struct kura_gguf *g, const char *key, bool *out);
enum kura_err kura_gguf_get_str(const struct kura_gguf *g, const char *key,
                                struct kura_str *out /* OUT: view into the file */);
/* Value of the i-th kv formatted for humans (arrays abbreviated) into buf. */
void kura_gguf_kv_format(const struct kura_gguf *g, int64_t i, char *buf, size_t buf_len);

/* Tensors. */
int64_t kura_gguf_n_tensors(const struct kura_gguf *g);
const struct kura_gguf_tensor *kura_gguf_tensor(const struct kura_gguf *g, int64_t i);
const struct kura_gguf_tensor *kura_gguf_find_tensor(const struct kura_gguf *g, const char *name);

/* Helpers for kura_str. */
bool kura_str_eq(struct kura_str s, const char *cstr);

const char *kura_gguf_vtype_name(enum kura_gguf_vtype t);

#ifdef __cplusplus
}
#endif
#endif
