/*
 * model.h - fastText-compatible classifier models, memory-mapped.
 *
 * es_model_open() maps a fastText 0.9.2 .bin or .ftz file read-only and
 * validates every field before anything reads through it; the matrices are
 * used in place (no copy), so opening costs milliseconds whatever the size,
 * the pages are shared with other processes mapping the same file, and the
 * kernel can reclaim them as page cache. Private memory is the dictionary's
 * lookup table, the label tree of hs models, and little else.
 *
 * A model is immutable once open and may be used from any number of threads
 * at once; each thread predicts with its own es_scratch_t (see predict.h).
 */
#ifndef EDGESERVE_MODEL_H
#define EDGESERVE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_model es_model_t;

/* Loss and model codes, with fastText's numbering. */
typedef enum { ES_LOSS_HS = 1, ES_LOSS_NS = 2, ES_LOSS_SOFTMAX = 3, ES_LOSS_OVA = 4 } es_loss_t;
typedef enum { ES_MODEL_CBOW = 1, ES_MODEL_SKIPGRAM = 2, ES_MODEL_SUPERVISED = 3 } es_model_kind_t;

/* Which SIMD kernels predict with. AUTO picks the best the CPU supports. */
typedef enum { ES_SIMD_AUTO = 0, ES_SIMD_SCALAR, ES_SIMD_AVX2, ES_SIMD_NEON } es_simd_t;

/* The hyperparameters stored in the file (fastText's "args" block). */
typedef struct es_model_args {
  int32_t dim, ws, epoch, min_count, neg, word_ngrams;
  int32_t loss;  /* es_loss_t */
  int32_t model; /* es_model_kind_t */
  int32_t bucket, minn, maxn, lr_update_rate;
  double t;
} es_model_args_t;

/* What `edgeserve info` shows; filled by es_model_info(). */
typedef struct es_model_info {
  int32_t version;
  es_model_args_t args;
  int32_t nwords, nlabels, nentries;
  int64_t ntokens;
  int64_t pruneidx_size;        /* -1 when never pruned */
  int quant_input, qnorm_input; /* input matrix product-quantized, with norms */
  int quant_output, qnorm_output;
  int32_t dsub_input; /* sub-vector width when quantized */
  int64_t input_rows, input_cols;
  int64_t output_rows, output_cols;
  uint64_t file_bytes;    /* size of the mapped file */
  uint64_t private_bytes; /* heap owned by the model (dictionary table, tree) */
  uint64_t scratch_bytes; /* one es_scratch_t for this model */
  es_simd_t simd;         /* kernels in use */
  int native;             /* an edgeserve native (.esm) file */
  int input_scheme;       /* 8 / 4: int8 / int4 input rows; 0 otherwise */
} es_model_info_t;

typedef struct es_model_params {
  es_simd_t simd; /* default ES_SIMD_AUTO */
  int populate;   /* nonzero: pre-fault the mapping (MAP_POPULATE) */
  /* Private memory for the feature rows of the most frequent words (each
   * word's own row and its char n-grams' rows, through the pruned index),
   * built at load in about a millisecond: a known word then costs no hashing
   * and no index lookups, 3-10% faster prediction. Default 0 (none: a model
   * costs only its dictionary table besides the mapping); the server's
   * backend asks for ES_MODEL_WORD_ROWS_BYTES. */
  uint32_t word_rows_bytes;
} es_model_params_t;

#define ES_MODEL_WORD_ROWS_BYTES (256u * 1024)

es_model_params_t es_model_default_params(void);

/* Opens the model at `path`. On success stores a new model in *out and
 * returns 0; the caller frees it with es_model_close(). On failure returns a
 * negative ES_E* code, leaves nothing allocated or mapped, and, when `err` is
 * not NULL, fills it with a message naming the problem and the byte offset.
 * `params` may be NULL for the defaults. */
int es_model_open(es_model_t **out, const char *path, const es_model_params_t *params,
                  es_error_t *err);

/* As es_model_open(), over `len` bytes at `data` that the caller keeps valid
 * and unchanged until es_model_close(). Used by tests and fuzzers. */
int es_model_open_mem(es_model_t **out, const void *data, size_t len,
                      const es_model_params_t *params, es_error_t *err);

/* Unmaps and frees the model. NULL is a no-op. No scratch made for the model
 * may be used afterwards. */
void es_model_close(es_model_t *m);

void es_model_info(const es_model_t *m, es_model_info_t *out);
const es_model_args_t *es_model_args(const es_model_t *m);
int32_t es_model_nlabels(const es_model_t *m);
int32_t es_model_nwords(const es_model_t *m);

/* The text of label `id` (0 <= id < nlabels) without its length limit: the
 * returned bytes are not NUL-terminated in general; *len receives the length.
 * The pointer stays valid while the model is open. NULL if id is out of range. */
const char *es_model_label(const es_model_t *m, int32_t id, size_t *len);

/* Dictionary entry `i` (0 <= i < nentries): text, count and type (0 word,
 * 1 label). Returns 0, or ES_EINVAL when i is out of range. */
int es_model_entry(const es_model_t *m, int32_t i, const char **text, size_t *len, int64_t *count,
                   int *type);

/* Copies row `row` of the input (which = 0) or output (which = 1) matrix,
 * decoded when quantized, into dst[cols]. Returns 0 or ES_EINVAL. */
int es_model_row(const es_model_t *m, int which, int64_t row, float *dst);

/* Name of an es_simd_t ("scalar", "avx2", "neon"). */
const char *es_simd_name(es_simd_t s);

/* The best kernels this CPU supports. */
es_simd_t es_simd_best(void);

/* The value of `key` in a native model's metadata ("normalizer",
 * "source", ...): a pointer into the model (not NUL-terminated) with its
 * length in *len, or NULL when absent (always for fastText files). */
const char *es_model_meta(const es_model_t *m, const char *key, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
