/*
 * kernels.h - the arithmetic of prediction, in scalar, AVX2 and NEON forms.
 *
 * Every kernel performs fastText's float operations in fastText's order, so
 * all forms give bit-identical results: element-wise sums may be vectorized
 * freely (each lane is its own sequence), but a dot product is a single
 * sequential sum, so the vector forms compute several *rows* at once, one
 * row per lane, never one row split across lanes. No fused multiply-add: the
 * project builds with -ffp-contract=off and the kernels use mul then add.
 *
 * Matrix rows live in the mapped file at any alignment, so kernels take byte
 * pointers and load with unaligned loads.
 */
#ifndef ES_ENGINE_KERNELS_H
#define ES_ENGINE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/model.h"

/* A product quantizer's codes and centroids, as the PQ kernel needs them. */
typedef struct es__pqrows {
  const uint8_t *codes;     /* nsubq bytes per row */
  const uint8_t *centroids; /* 256 centroids per sub-quantizer, any alignment */
  int32_t nsubq, dsub, lastdsub;
} es__pqrows;

/* A dsub-2 quantizer's codes with its pair table (es__pq_pairs_new). */
typedef struct es__pq2rows {
  const uint8_t *codes; /* nsubq bytes per row */
  const uint8_t *pairs; /* the pair table */
  int32_t nsubq, lastdsub;
} es__pq2rows;

typedef struct es__kernels {
  es_simd_t level;
  /* h[0..n) += row i of the dense matrix at base (row stride n floats), for
   * each i in rows[0..count), in order. */
  void (*add_rows)(float *h, const uint8_t *base, const int32_t *rows, int count, int n);
  /* out[r] = sum_j row_r[j] * x[j], summed sequentially in j, for the
   * nrows rows starting at base (row stride n floats). */
  void (*dot_rows)(const uint8_t *base, int64_t nrows, int n, const float *x, float *out);
  /* Product-quantized rows: for each i in rows[0..count), in order,
   * h += decode(row) where decode concatenates the row's centroids, each
   * multiplied by norms[i] when norms is not NULL (fastText's addcode). */
  void (*add_rows_pq)(float *h, const struct es__pqrows *pq, const int32_t *rows,
                      const float *norms, int count);
  /* Scalar-quantized rows (edgeserve native int8 / int4, bits 8 or 4): for
   * each i in rows[0..count), in order, h[j] += scale_i * q_i[j], the
   * product rounded before the add. Row r is at base + r * stride; its
   * scale is the float at scales + 4 * r. int4 packs two values a byte, low
   * nibble first, two's complement. */
  void (*add_rows_q)(float *h, const uint8_t *base, size_t stride, const uint8_t *scales,
                     const int32_t *rows, int count, int n, int bits);
  /* As add_rows_pq for dsub 2, reading the pair table; NULL where the
   * level has none (the model then builds no table). */
  void (*add_rows_pq2)(float *h, const es__pq2rows *pq, const int32_t *rows, const float *norms,
                       int count);
} es__kernels;

const es__kernels *es__kernels_scalar(void);
const es__kernels *es__kernels_avx2(void); /* NULL when not built in */
const es__kernels *es__kernels_neon(void); /* NULL when not built in */

/* Kernels for `want`, or the best available for ES_SIMD_AUTO. NULL when the
 * requested level is not built in or not supported by this CPU. */
const es__kernels *es__kernels_get(es_simd_t want);

/* The scalar int8/int4 kernel (NEON uses it too). */
void es__add_rows_q_scalar(float *h, const uint8_t *base, size_t stride, const uint8_t *scales,
                           const int32_t *rows, int count, int n, int bits);

/* The pair table of a dsub-2 quantizer, the layout the AVX2 PQ kernel
 * reads: sub-quantizer j's 256 centroids as pairs of floats at byte
 * 2048 * j, for j < nsubq rounded up to even; a last sub-vector of one
 * float (lastdsub 1) becomes (c, 0), the padding sub-quantizer is zeros.
 * Returns a 64-byte aligned copy (free() it; *bytes gets its size), or
 * NULL when out of memory: dim KiB (+ 2 KiB when nsubq is odd). */
uint8_t *es__pq_pairs_new(const uint8_t *centroids, int32_t nsubq, int32_t lastdsub, size_t *bytes);

/* The scalar PQ kernel, also the fallback of the vector ones. */
void es__add_rows_pq_scalar(float *h, const es__pqrows *pq, const int32_t *rows, const float *norms,
                            int count);

/* Scalar sequential dot product of one row (fastText's dotRow). */
float es__dot_row(const uint8_t *row, const float *x, int n);

#endif
