/* Model quantization: converting a GGUF model's weights to another tensor type, with the
 * per-tensor type mix the GGUF ecosystem uses (see docs in src/model/quantize.c), and the
 * row-conversion helper shared with `kura model synth`. */
#ifndef KURA_QUANTIZE_H
#define KURA_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A quantization recipe ("file type"): a base tensor type plus rules for some tensors. */
enum kura_qmix {
    KURA_QMIX_F32 = 0,
    KURA_QMIX_F16,
    KURA_QMIX_BF16,
    KURA_QMIX_Q8_0,
    KURA_QMIX_Q4_0,
    KURA_QMIX_Q4_1,
    KURA_QMIX_Q5_0,
    KURA_QMIX_Q5_1,
    KURA_QMIX_Q4_K_M,
    KURA_QMIX_Q5_K_M,
    KURA_QMIX_Q6_K,
    KURA_QMIX__COUNT
};

/* Parses "q4_k_m", "Q8_0", "f16", ... (case-insensitive); -1 if unknown. Thread-safe. */
int kura_qmix_from_name(const char *name);
/* Lower-case name of a mix, NULL for an invalid value. */
const char *kura_qmix_name(enum kura_qmix mix);
/* Comma-separated list of all mix names, for help texts. */
const char *kura_qmix_names(void);
/* The value of general.file_type for this mix (the ggml/llama file-type numbering). */
uint32_t kura_qmix_file_type(enum kura_qmix mix);
/* The mix's base tensor type. */
enum kura_type kura_qmix_base_type(enum kura_qmix mix);

/* What the model looks like, as far as the type choice cares. */
struct kura_qmix_model {
    int64_t n_layer;  /* number of blocks (blk.N.*) */
    bool has_output;  /* false when embeddings are tied (no output.weight) */
};

/* The tensor type mix gives a tensor called name with n_dims dimensions and row length ne0,
 * now stored as src_type. Tensors that are not quantized (1-D tensors such as norms and
 * biases, names not ending in "weight") keep src_type. Thread-safe. */
enum kura_type kura_qmix_tensor_type(enum kura_qmix mix, const struct kura_qmix_model *m,
                                     const char *name, uint32_t n_dims, int64_t ne0,
                                     enum kura_type src_type);

/* Converts n_rows rows of row_len floats (src, contiguous) to dst_type rows (dst, contiguous)
 * using up to n_threads threads. row_len must be a multiple of dst_type's block length.
 * Returns KURA_ERR_UNSUPPORTED if kura cannot produce dst_type. Thread-safe. */
enum kura_err kura_quant_rows(enum kura_type dst_type, const float *src, void *dst,
                              int64_t n_rows, int64_t row_len, int n_threads,
                              struct kura_errbuf *eb);

/* Reads the GGUF model in_path and writes it to out_path with the weights converted per mix:
 * metadata is copied (general.file_type and general.quantization_version updated), source
 * tensors are dequantized row-chunk by row-chunk and re-quantized, so memory stays bounded
 * whatever the model size. Tensors whose type does not change are copied byte for byte.
 * n_threads >= 1. When log is non-NULL one line per tensor is printed to it (FILE *). */
enum kura_err kura_quantize_file(const char *in_path, const char *out_path, enum kura_qmix mix,
                                 int n_threads, void *log, struct kura_errbuf *eb);

#ifdef __cplusplus
}
#endif
#endif
