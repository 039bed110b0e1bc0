/*
 * pq.h - training fastText 0.9.2 product quantizers (the `quantize` step).
 *
 * A product quantizer cuts a dim-wide vector into nsubq sub-vectors of dsub
 * floats (the last one lastdsub floats wide, the remainder) and stores each
 * as the index of the nearest of 256 centroids learned for that sub-space by
 * k-means. fastText's ProductQuantizer(dim, dsub) is followed exactly:
 *
 *   1. nsubq = dim / dsub and lastdsub = dim % dsub; if lastdsub == 0 it is
 *      dsub, else nsubq is one more. dsub > dim is allowed (one sub-quantizer
 *      of width dim). The norm quantizer of -qnorm is dim 1, dsub 1.
 *   2. The centroid table is dim * 256 floats, in the order written to .ftz
 *      files: centroid i of sub-quantizer m is at (m * 256 + i) * dsub, except
 *      for the last sub-quantizer, whose centroids are lastdsub wide, at
 *      m * 256 * dsub + i * lastdsub (es__pq_centroid).
 *   3. Training samples np = min(n, 65536) rows (a fresh uniform random
 *      subset per sub-quantizer when n > 65536) and runs 25 iterations of
 *      k-means per sub-space, seeded from 256 distinct random points, with
 *      fastText's split of empty clusters. Distances are squared L2 summed
 *      in fastText's order; on ties the lowest centroid index wins.
 *
 * The random stream is edgeserve's own (xoshiro256** seeded from `seed`),
 * not fastText's minstd_rand, and a sample of rows is kept in row order
 * rather than in shuffled order (the same subsets, equally likely): the
 * same seed gives the same quantizer for every thread count and, the
 * arithmetic being plain IEEE float without contraction, on every machine
 * that rounds like SSE or NEON (not x87), but not fastText's quantizer.
 * Like fastText's, this k-means starts from random points and does not
 * always find well-separated clusters: with several rows per true cluster,
 * some clusters end up sharing a centroid.
 */
#ifndef ES_TRAIN_PQ_H
#define ES_TRAIN_PQ_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"

#define ES_PQ_KSUB 256 /* centroids per sub-quantizer; codes are one byte */

/* A trained product quantizer. The caller owns the struct; es__pq_train
 * fills it and es__pq_free releases centroids. */
typedef struct es__pq {
  int32_t dim, dsub, nsubq, lastdsub;
  float *centroids; /* dim * 256 floats, layout in point 2 above */
} es__pq;

/* Trains pq on the n rows of x (row i at x + i * stride, stride >= dim
 * floats). pq's previous contents are overwritten, not freed. x is only
 * read, never copied whole: besides the dim * 256 floats of centroids, the
 * scratch is about min(n, 65536) * (4 * dsub + 5) bytes. seed picks the
 * random stream (fastText uses 1234). nthreads: the E-steps are split
 * across that many threads (values < 1 mean 1); the result is bit-identical
 * for every nthreads. Returns 0, or ES_EINVAL (n < 256, dim < 1, dsub < 1,
 * stride < dim, x NULL) or ES_ENOMEM, with err (may be NULL) filled and pq
 * zeroed (centroids NULL). Never exits or aborts. Cost: about
 * 25 * 256 * min(n, 65536) * dim subtract-multiply-add-compares. */
int es__pq_train(es__pq *pq, const float *x, int64_t n, int64_t stride, int32_t dim, int32_t dsub,
                 uint64_t seed, int nthreads, es_error_t *err);

/* codes[i * nsubq + m] = index of the centroid of sub-quantizer m nearest to
 * row i of x (row stride `stride` floats), for the n rows: fastText's
 * compute_codes, ties to the lowest index. codes holds n * nsubq bytes.
 * Rows are split across nthreads threads (values < 1 mean 1); the codes do
 * not depend on it. Cannot fail: it allocates nothing (sub-vectors wider
 * than 32 floats take a slower per-row loop), and a thread that cannot be
 * created has its share done by the calling thread. Does nothing when
 * n <= 0 or pq has no centroids. Cost: 256 * n * dim
 * subtract-multiply-add-compares. */
void es__pq_codes(const es__pq *pq, const float *x, int64_t n, int64_t stride, uint8_t *codes,
                  int nthreads);

/* The dsub (lastdsub for the last sub-quantizer) floats of centroid i of
 * sub-quantizer m: fastText's get_centroids. */
static inline const float *es__pq_centroid(const es__pq *pq, int32_t m, int i) {
  if (m == pq->nsubq - 1)
    return pq->centroids + (size_t)m * ES_PQ_KSUB * pq->dsub + (size_t)i * pq->lastdsub;
  return pq->centroids + ((size_t)m * ES_PQ_KSUB + (size_t)i) * pq->dsub;
}

/* Releases pq's centroids and sets the pointer NULL; safe to call twice, on
 * a zeroed pq and on one es__pq_train failed on. Does not free pq itself. */
void es__pq_free(es__pq *pq);

#endif
