/*
 * binwrite.c - writing fastText model files (see binwrite.h).
 */
#include "binwrite.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fail.h"

#define FT_MAGIC   793712314
#define FT_VERSION 12

int es__bw_open(es__bw *w, const char *path, es_error_t *err) {
  memset(w, 0, sizeof *w);
  size_t n = strlen(path);
  w->path = malloc(n + 1);
  w->tmp = malloc(n + 5);
  if (!w->path || !w->tmp) {
    free(w->path);
    free(w->tmp);
    return es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  memcpy(w->path, path, n + 1);
  memcpy(w->tmp, path, n);
  memcpy(w->tmp + n, ".tmp", 5);
  w->f = fopen(w->tmp, "wb");
  if (!w->f) {
    int e = errno;
    free(w->path);
    free(w->tmp);
    return es__fail(err, ES_EIO, -1, "cannot open %s for saving: %s", path, strerror(e));
  }
  return 0;
}

int es__bw_close(es__bw *w, es_error_t *err) {
  int e = 0;
  if (!w->failed && fflush(w->f) != 0) w->failed = 1;
  if (w->failed) e = errno ? errno : EIO;
  if (fclose(w->f) != 0 && !w->failed) {
    w->failed = 1;
    e = errno;
  }
  int rc = 0;
  if (w->failed) {
    remove(w->tmp);
    rc = es__fail(err, ES_EIO, -1, "cannot write %s: %s", w->path, strerror(e));
  } else if (rename(w->tmp, w->path) != 0) {
    e = errno;
    remove(w->tmp);
    rc = es__fail(err, ES_EIO, -1, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(e));
  }
  free(w->path);
  free(w->tmp);
  memset(w, 0, sizeof *w);
  return rc;
}

void es__bw_bytes(es__bw *w, const void *p, size_t n) {
  if (!w->failed && n && fwrite(p, 1, n, w->f) != n) w->failed = 1;
}

void es__bw_i32(es__bw *w, int32_t v) { es__bw_bytes(w, &v, 4); }
void es__bw_i64(es__bw *w, int64_t v) { es__bw_bytes(w, &v, 8); }

void es__bw_header(es__bw *w, const es_model_args_t *a) {
  es__bw_i32(w, FT_MAGIC);
  es__bw_i32(w, FT_VERSION);
  int32_t f[] = {a->dim,  a->ws,    a->epoch,  a->min_count, a->neg,  a->word_ngrams,
                 a->loss, a->model, a->bucket, a->minn,      a->maxn, a->lr_update_rate};
  es__bw_bytes(w, f, sizeof f);
  es__bw_bytes(w, &a->t, 8);
}

void es__bw_dict_header(es__bw *w, int32_t size, int32_t nwords, int32_t nlabels, int64_t ntokens,
                        int64_t pruneidx_size) {
  es__bw_i32(w, size);
  es__bw_i32(w, nwords);
  es__bw_i32(w, nlabels);
  es__bw_i64(w, ntokens);
  es__bw_i64(w, pruneidx_size);
}

void es__bw_entry(es__bw *w, const char *s, size_t len, int64_t count, int8_t type) {
  es__bw_bytes(w, s, len);
  es__bw_bytes(w, "", 1);
  es__bw_i64(w, count);
  es__bw_bytes(w, &type, 1);
}

void es__bw_dense(es__bw *w, const float *x, int64_t rows, int64_t cols) {
  es__bw_i64(w, rows);
  es__bw_i64(w, cols);
  es__bw_bytes(w, x, (size_t)rows * (size_t)cols * sizeof(float));
}

void es__bw_pq(es__bw *w, int32_t dim, int32_t nsubq, int32_t dsub, int32_t lastdsub,
               const float *centroids) {
  es__bw_i32(w, dim);
  es__bw_i32(w, nsubq);
  es__bw_i32(w, dsub);
  es__bw_i32(w, lastdsub);
  es__bw_bytes(w, centroids, (size_t)dim * 256 * sizeof(float));
}
