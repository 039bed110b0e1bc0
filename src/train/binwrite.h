/*
 * binwrite.h - writing fastText 0.9.2 model files (.bin, .ftz).
 *
 * Writes go to PATH.tmp, which es__bw_close() renames over PATH only when
 * every write succeeded, so a failed or interrupted save never leaves a
 * truncated model under the final name. Little-endian hosts only (every
 * target edgeserve builds for).
 */
#ifndef ES_TRAIN_BINWRITE_H
#define ES_TRAIN_BINWRITE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "edgeserve/error.h"
#include "edgeserve/model.h"

typedef struct es__bw {
  FILE *f;
  char *path, *tmp;
  int failed;
} es__bw;

/* Opens PATH.tmp for writing. */
int es__bw_open(es__bw *w, const char *path, es_error_t *err);
/* Closes; on success renames PATH.tmp to PATH, else removes it. */
int es__bw_close(es__bw *w, es_error_t *err);

void es__bw_bytes(es__bw *w, const void *p, size_t n);
void es__bw_i32(es__bw *w, int32_t v);
void es__bw_i64(es__bw *w, int64_t v);

/* Magic, version 12 and the args block. */
void es__bw_header(es__bw *w, const es_model_args_t *a);
/* The dictionary header; entries and pruned-index pairs follow. */
void es__bw_dict_header(es__bw *w, int32_t size, int32_t nwords, int32_t nlabels, int64_t ntokens,
                        int64_t pruneidx_size);
void es__bw_entry(es__bw *w, const char *s, size_t len, int64_t count, int8_t type);
/* A dense matrix: rows, cols, then rows*cols floats. */
void es__bw_dense(es__bw *w, const float *x, int64_t rows, int64_t cols);

/* A product quantizer as fastText's ProductQuantizer::save. */
void es__bw_pq(es__bw *w, int32_t dim, int32_t nsubq, int32_t dsub, int32_t lastdsub,
               const float *centroids);

#endif
