/*
 * ftmodel.h - test helper: writes small fastText 0.9.2 model files in
 * memory, with deterministic pseudo-random matrices, so unit tests can build
 * exactly the model (and the corruption) they need.
 */
#ifndef ES_TEST_FTMODEL_H
#define ES_TEST_FTMODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct ft_spec {
  int32_t dim, loss, bucket, minn, maxn, word_ngrams;
  int32_t nwords, nlabels;
  const char *const *words;  /* nwords entries */
  const char *const *labels; /* nlabels entries, with their __label__ prefix */
  int quant, qnorm, qout, dsub;
  int64_t pruneidx_size;     /* -1 unpruned; > 0 uses prune_keys/prune_vals */
  const int32_t *prune_keys, *prune_vals;
  int64_t input_rows;        /* 0: nwords + bucket (or nwords + pruneidx_size) */
  uint32_t seed;
} ft_spec;

ft_spec ft_default_spec(void);

/* Writes the model; returns a malloc'd buffer (caller frees) and its size. */
uint8_t *ft_write(const ft_spec *s, size_t *len);

/* Writes buf to a new temporary file; returns its malloc'd path. */
char *ft_tmpfile(const uint8_t *buf, size_t len);

#endif
