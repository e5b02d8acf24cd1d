/* GGUF v3 writer. Collects metadata and tensor descriptions in memory, then writes the file in
 * one pass: header, tensor infos, padding, and each tensor's data streamed from the caller
 * (a buffer, or a producer callback that emits the bytes in chunks), so a model never has to be
 * held in memory whole. The file is written to a temporary name next to the target, fsynced and
 * renamed over it: a failure never leaves a half-written output file.
 *
 * Layout follows the published GGUF spec: little-endian; strings are u64 length + bytes; the data
 * section starts at a multiple of `general.alignment` (u32, default 32) and every tensor offset
 * (relative to the data section) is a multiple of it, with zero padding after each tensor.
 *
 * A writer is not thread-safe: use one from one thread at a time. A producer callback may use
 * threads internally but must call kura_gguf_sink_write from the thread that called it. */
#ifndef KURA_GGUF_WRITE_H
#define KURA_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/gguf.h"
#include "kura/types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kura_gguf_writer;
struct kura_gguf_sink; /* the output stream handed to a tensor producer */

/* Emits the data of tensor `index` (as returned by kura_gguf_writer_add_tensor): must call
 * kura_gguf_sink_write until exactly kura_row_bytes(type, ne[0]) * rows bytes were written.
 * Returns KURA_OK or an error (with eb filled); the write then fails and removes the temp file. */
typedef enum kura_err (*kura_gguf_produce_fn)(void *user, int64_t index,
                                              struct kura_gguf_sink *sink,
                                              struct kura_errbuf *eb);

/* Creates an empty writer; *out is owned by the caller (kura_gguf_writer_destroy). */
enum kura_err kura_gguf_writer_create(struct kura_gguf_writer **out /* OUT */,
                                      struct kura_errbuf *eb);
void kura_gguf_writer_destroy(struct kura_gguf_writer *w); /* NULL is a no-op */

/* Metadata setters. Keys and values are copied. Setting an existing key replaces its value in
 * place (its position in the file is kept); new keys are appended in call order. */
enum kura_err kura_gguf_writer_set_scalar(struct kura_gguf_writer *w, const char *key,
                                          enum kura_gguf_vtype type, const void *val,
                                          struct kura_errbuf *eb);
enum kura_err kura_gguf_writer_set_u32(struct kura_gguf_writer *w, const char *key, uint32_t v,
                                       struct kura_errbuf *eb);
enum kura_err kura_gguf_writer_set_i32(struct kura_gguf_writer *w, const char *key, int32_t v,
                                       struct kura_errbuf *eb);
enum kura_err kura_gguf_writer_set_u64(struct kura_gguf_writer *w, const char *key, uint64_t v,
                                       struct kura_errbuf *eb);
enum kura_err kura_gguf_writer_set_f32(struct kura_gguf_writer *w, const char *key, float v,
                                       struct kura_errbuf *eb);
enum kura_err kura_gguf_writer_set_bool(struct kura_gguf_writer *w, const char *key, bool v,
                                        struct kura_errbuf *eb);
/* A string of len bytes (need not be NUL-terminated; may contain any bytes). */
enum kura_err kura_gguf_writer_set_str(struct kura_gguf_writer *w, const char *key,
                                       const char *s, size_t len, struct kura_errbuf *eb);
/* An array of n numeric or bool elements of elem_type, packed little-endian in data. */
enum kura_err kura_gguf_writer_set_arr(struct kura_gguf_writer *w, const char *key,
                                       enum kura_gguf_vtype elem_type, const void *data,
                                       uint64_t n, struct kura_errbuf *eb);
/* An array of n strings. */
enum kura_err kura_gguf_writer_set_arr_str(struct kura_gguf_writer *w, const char *key,
                                           const struct kura_str *strs, uint64_t n,
                                           struct kura_errbuf *eb);
/* Copies the i-th kv of g byte-exactly (any type). */
enum kura_err kura_gguf_writer_copy_kv(struct kura_gguf_writer *w, const struct kura_gguf *g,
                                       int64_t i, struct kura_errbuf *eb);
/* Copies every kv of g whose key starts with prefix ("" or NULL: all), in file order. */
enum kura_err kura_gguf_writer_copy_kvs(struct kura_gguf_writer *w, const struct kura_gguf *g,
                                        const char *prefix, struct kura_errbuf *eb);
/* Removes key; returns false if it was not set. */
bool kura_gguf_writer_remove(struct kura_gguf_writer *w, const char *key);
int64_t kura_gguf_writer_n_kv(const struct kura_gguf_writer *w);

/* Adds a tensor of n_dims (1..4) dimensions ne[0..n_dims-1] (ne[0] fastest, a multiple of the
 * type's block length). Its data come from produce(user, index, ...) while the file is written;
 * user is borrowed and must stay valid until kura_gguf_writer_write returns. Tensors are laid out
 * in the order they are added. *index (optional) receives the tensor's index. */
enum kura_err kura_gguf_writer_add_tensor(struct kura_gguf_writer *w, const char *name,
                                          enum kura_type type, uint32_t n_dims,
                                          const int64_t *ne, kura_gguf_produce_fn produce,
                                          void *user, int64_t *index /* OUT, optional */,
                                          struct kura_errbuf *eb);
/* Same with the data in a borrowed buffer of exactly the tensor's byte size, which must stay
 * valid until kura_gguf_writer_write returns. */
enum kura_err kura_gguf_writer_add_tensor_data(struct kura_gguf_writer *w, const char *name,
                                               enum kura_type type, uint32_t n_dims,
                                               const int64_t *ne, const void *data,
                                               struct kura_errbuf *eb);
int64_t kura_gguf_writer_n_tensors(const struct kura_gguf_writer *w);
/* Byte size of tensor index (0 for a bad index). */
uint64_t kura_gguf_writer_tensor_size(const struct kura_gguf_writer *w, int64_t index);

/* Appends len bytes of the current tensor's data. Fails if the producer writes more than the
 * tensor's size or the disk write fails. */
enum kura_err kura_gguf_sink_write(struct kura_gguf_sink *sink, const void *buf, size_t len,
                                   struct kura_errbuf *eb);

/* Writes the file to path (temp file + fsync + rename). On failure path is untouched and the
 * temp file removed. The writer can be written again afterwards. */
enum kura_err kura_gguf_writer_write(struct kura_gguf_writer *w, const char *path,
                                     struct kura_errbuf *eb);

#ifdef __cplusplus
}
#endif
#endif
