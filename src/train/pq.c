/*
 * pq.c - k-means training and encoding for product quantizers; see pq.h.
 *
 * How the work is laid out:
 *
 *   1. Per sub-quantizer, the sampled sub-vectors are copied into a slice
 *      stored by coordinate ("structure of arrays"): coordinate j of point i
 *      is xs[j * ld + i], with ld = np rounded up to a block of BLOCK points
 *      and the padding points left at zero. Their codes are computed and
 *      ignored, so every block is full and its loops have a constant count.
 *   2. The E-step takes a block of BLOCK points and walks the 256 centroids
 *      in index order, keeping per point the best distance so far and its
 *      index; a centroid replaces the best only when strictly nearer. That
 *      is fastText's assign_centroid (first minimum wins, even with NaN),
 *      written so that the inner loop runs across points: element-wise
 *      arithmetic and selects, which GCC vectorizes at -O2 and -O3 without
 *      changing any rounding (no reduction is reordered).
 *   3. Distances are fastText's distL2: sum over j of (x_j - c_j)^2,
 *      summed in j order (0 + a == a, so starting from the first term is the
 *      same float). The project builds with -ffp-contract=off, so no fused
 *      multiply-add changes them either.
 *   4. Blocks are split across threads; a point's code depends on nothing
 *      but the point and the centroids, so codes (and everything computed
 *      from them) are the same for any thread count. The M-step, the random
 *      draws and the splitting of empty clusters run in the calling thread,
 *      in a fixed order.
 *
 * Cost: the E-step is 256 * d subtract-multiply-adds plus a compare and two
 * selects per point and iteration; about 5 ms for 65,536 points at d = 2 on
 * one x86-64 core with SSE2. Everything else is linear in np.
 */
#include "pq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fail.h"
#include "../common/splitmix.h"

#define KSUB        ES_PQ_KSUB
#define NITER       25    /* k-means iterations (fastText's niter_) */
#define MAX_POINTS  65536 /* rows sampled per sub-quantizer (max_points_) */
#define EPS         1e-7f /* split perturbation of empty clusters (eps_) */
#define BLOCK       64    /* points per E-step block */
#define GATHER_MAX  32    /* widest sub-vector es__pq_codes gathers on its stack */
#define MAX_THREADS 64
#define GRAIN       2048 /* fewest points worth a thread of their own */

/* ---- random numbers: xoshiro256**, seeded by splitmix64 ------------------------------------ */

typedef struct rng {
  uint64_t s[4];
} rng;

static void rng_seed(rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = es__splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r) {
  uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

/* Uniform in [0, 1), from the top 53 bits. */
static double rng_uniform(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform in [0, n), n >= 1, without modulo bias. */
static uint64_t rng_below(rng *r, uint64_t n) {
  uint64_t floor = (0 - n) % n, v; /* 2^64 mod n: the draws below it are rejected */
  do v = rng_next(r);
  while (v < floor);
  return v % n;
}

/* ---- splitting work across threads ----------------------------------------------------------- */

typedef void (*range_fn)(void *ctx, int64_t lo, int64_t hi);

typedef struct task {
  range_fn fn;
  void *ctx;
  int64_t lo, hi;
} task;

static void *task_main(void *p) {
  task *t = p;
  t->fn(t->ctx, t->lo, t->hi);
  return NULL;
}

/* Runs fn over [0, n) cut into contiguous ranges of at least `grain` units,
 * one per thread, at most nthreads of them; the calling thread takes the
 * first. A thread that cannot be created is replaced by the calling thread,
 * so this cannot fail. */
static void run_split(range_fn fn, void *ctx, int64_t n, int64_t grain, int nthreads) {
  task tasks[MAX_THREADS];
  pthread_t tids[MAX_THREADS];
  int started[MAX_THREADS];
  int64_t t = nthreads < 1 ? 1 : nthreads, most = (n + grain - 1) / grain;
  if (t > MAX_THREADS) t = MAX_THREADS;
  if (t > most) t = most;
  if (t < 1) t = 1;
  for (int64_t i = 0; i < t; i++) {
    tasks[i] = (task){fn, ctx, n * i / t, n * (i + 1) / t};
    started[i] = i > 0 && pthread_create(&tids[i], NULL, task_main, &tasks[i]) == 0;
  }
  task_main(&tasks[0]);
  for (int64_t i = 1; i < t; i++) {
    if (started[i])
      pthread_join(tids[i], NULL);
    else
      task_main(&tasks[i]);
  }
}

/* ---- the E-step kernel ----------------------------------------------------------------------- */

/* dist[i] = squared L2 distance between point i of a block (coordinate j
 * at x[j * ld + i]) and the d floats at c, summed in coordinate order. */
static void block_dist(const float *restrict x, int64_t ld, const float *restrict c, int d,
                       float *restrict dist) {
  for (int i = 0; i < BLOCK; i++) {
    float t = x[i] - c[0];
    dist[i] = t * t;
  }
  for (int j = 1; j < d; j++) {
    const float *xj = x + j * ld;
    float cj = c[j];
    for (int i = 0; i < BLOCK; i++) {
      float t = xj[i] - cj;
      dist[i] += t * t;
    }
  }
}

/* Point i takes centroid k if strictly nearer than its best so far. Written
 * as load, if, store (not `best = a < b ? a : b`): the form GCC if-converts
 * and vectorizes. */
#define TAKE_IF_NEARER(i, dist, k)                                                                 \
  do {                                                                                             \
    float b_ = best[i];                                                                            \
    int32_t a_ = arg[i];                                                                           \
    if ((dist) < b_) {                                                                             \
      b_ = (dist);                                                                                 \
      a_ = (k);                                                                                    \
    }                                                                                              \
    best[i] = b_;                                                                                  \
    arg[i] = a_;                                                                                   \
  } while (0)

/* out[i] = index of the centroid nearest to point i of a block of BLOCK
 * points, for the 256 centroids of width d at c (centroid k at c + k * d);
 * coordinate j of point i is x[j * ld + i]. Ties go to the lowest index.
 * Widths 1 and 2 (-qnorm, and -dsub's default) fuse distance and compare. */
static void nearest_block(const float *x, int64_t ld, const float *c, int d, uint8_t *out) {
  float best[BLOCK], dist[BLOCK];
  int32_t arg[BLOCK];
  block_dist(x, ld, c, d, best);
  for (int i = 0; i < BLOCK; i++) arg[i] = 0;
  for (int k = 1; k < KSUB; k++) {
    const float *ck = c + (size_t)k * d;
    if (d == 1) {
      for (int i = 0; i < BLOCK; i++) {
        float t = x[i] - ck[0];
        TAKE_IF_NEARER(i, t * t, k);
      }
    } else if (d == 2) {
      const float *x1 = x + ld;
      float c0 = ck[0], c1 = ck[1];
      for (int i = 0; i < BLOCK; i++) {
        float t0 = x[i] - c0, t1 = x1[i] - c1;
        TAKE_IF_NEARER(i, t0 * t0 + t1 * t1, k);
      }
    } else {
      block_dist(x, ld, ck, d, dist);
      for (int i = 0; i < BLOCK; i++) TAKE_IF_NEARER(i, dist[i], k);
    }
  }
  for (int i = 0; i < BLOCK; i++) out[i] = (uint8_t)arg[i];
}

/* fastText's assign_centroid, one point at a time: for sub-vectors wider
 * than GATHER_MAX in es__pq_codes, where the block kernel would need heap
 * scratch. Same floats, same order, same ties. */
static uint8_t nearest_one(const float *x, const float *c, int d) {
  float best = 0.0f;
  int arg = 0;
  for (int k = 0; k < KSUB; k++) {
    const float *ck = c + (size_t)k * d;
    float dist = 0.0f;
    for (int j = 0; j < d; j++) {
      float t = x[j] - ck[j];
      dist += t * t;
    }
    if (k == 0 || dist < best) best = dist, arg = k;
  }
  return (uint8_t)arg;
}

/* ---- k-means --------------------------------------------------------------------------------- */

/* fastText's MStep: each centroid becomes the mean of its points (summed in
 * point order), then each empty cluster k takes half of a cluster m drawn
 * with probability (size - 1) / (np - 256), the two moved apart by EPS in
 * alternating directions. At least one cluster has two points whenever one
 * is empty (np >= 256), so the draw ends. */
static void mstep(const float *xs, int64_t ld, int64_t np, int d, const uint8_t *codes, float *c,
                  rng *r) {
  int32_t nelts[KSUB] = {0};
  memset(c, 0, sizeof(float) * KSUB * (size_t)d);
  for (int64_t i = 0; i < np; i++) nelts[codes[i]]++;
  for (int j = 0; j < d; j++) {
    const float *xj = xs + j * ld;
    for (int64_t i = 0; i < np; i++) c[(size_t)codes[i] * d + j] += xj[i];
  }
  for (int k = 0; k < KSUB; k++) {
    if (nelts[k] == 0) continue;
    float z = (float)nelts[k];
    for (int j = 0; j < d; j++) c[(size_t)k * d + j] /= z;
  }
  for (int k = 0; k < KSUB; k++) {
    if (nelts[k] != 0) continue;
    int m = 0;
    while (rng_uniform(r) * (double)(np - KSUB) >= (double)(nelts[m] - 1)) m = (m + 1) % KSUB;
    float *ck = c + (size_t)k * d, *cm = c + (size_t)m * d;
    memcpy(ck, cm, sizeof(float) * (size_t)d);
    for (int j = 0; j < d; j++) {
      float s = (j % 2) ? EPS : -EPS; /* fastText's sign = (j % 2) * 2 - 1 */
      ck[j] += s;
      cm[j] -= s;
    }
    nelts[k] = nelts[m] / 2;
    nelts[m] -= nelts[k];
  }
}

typedef struct estep_ctx {
  const float *xs;
  int64_t ld;
  const float *c;
  int d;
  uint8_t *codes;
} estep_ctx;

static void estep_range(void *p, int64_t lo, int64_t hi) {
  const estep_ctx *e = p;
  for (int64_t b = lo; b < hi; b++)
    nearest_block(e->xs + b * BLOCK, e->ld, e->c, e->d, e->codes + b * BLOCK);
}

/* Runs fastText's kmeans on the np points of xs (width d, see point 1 of the
 * file comment), writing the 256 centroids to c. codes (ld bytes) and perm
 * (np entries) are scratch. Threads are created for each E-step: a team
 * kept for all 25 iterations, meeting at barriers, measured 0-15% faster
 * at 4-16 threads, not worth its code. */
static void kmeans(const float *xs, int64_t ld, int64_t np, int d, float *c, uint8_t *codes,
                   int32_t *perm, rng *r, int nthreads) {
  /* The first 256 entries of a uniform random permutation. */
  for (int64_t i = 0; i < np; i++) perm[i] = (int32_t)i;
  for (int i = 0; i < KSUB; i++) {
    int64_t j = i + (int64_t)rng_below(r, (uint64_t)(np - i));
    int32_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
    for (int q = 0; q < d; q++) c[(size_t)i * d + q] = xs[q * ld + perm[i]];
  }
  estep_ctx e = {xs, ld, c, d, codes};
  for (int it = 0; it < NITER; it++) {
    run_split(estep_range, &e, ld / BLOCK, GRAIN / BLOCK, nthreads);
    mstep(xs, ld, np, d, codes, c, r);
  }
}

/* ---- training -------------------------------------------------------------------------------- */

int es__pq_train(es__pq *pq, const float *x, int64_t n, int64_t stride, int32_t dim, int32_t dsub,
                 uint64_t seed, int nthreads, es_error_t *err) {
  if (!pq) return es__fail(err, ES_EINVAL, -1, "quantizer: no quantizer to train");
  memset(pq, 0, sizeof *pq);
  if (dim < 1 || dsub < 1)
    return es__fail(err, ES_EINVAL, -1, "quantizer: dim %d and dsub %d must both be at least 1",
                    (int)dim, (int)dsub);
  if (n < KSUB)
    return es__fail(err, ES_EINVAL, -1,
                    "matrix too small for quantization: %lld rows, must have at least %d",
                    (long long)n, KSUB);
  if (!x || stride < dim)
    return es__fail(err, ES_EINVAL, -1, "quantizer: no rows, or row stride %lld less than dim %d",
                    (long long)stride, (int)dim);

  int32_t nsubq = dim / dsub, lastdsub = dim % dsub;
  if (lastdsub == 0)
    lastdsub = dsub;
  else
    nsubq++;
  int32_t width = nsubq > 1 ? dsub : lastdsub; /* widest sub-vector */
  int64_t np = n < MAX_POINTS ? n : MAX_POINTS, ld = (np + BLOCK - 1) / BLOCK * BLOCK;
  if ((uint64_t)dim * KSUB > SIZE_MAX / sizeof(float) ||
      (uint64_t)ld * width > SIZE_MAX / sizeof(float))
    return es__fail(err, ES_ENOMEM, -1, "quantizer: dim %d is too large for this machine",
                    (int)dim);

  int rc = ES_ENOMEM;
  rng r;
  rng_seed(&r, seed);
  float *centroids = malloc(sizeof(float) * (size_t)dim * KSUB);
  float *xs = calloc((size_t)ld * width, sizeof(float)); /* the padding stays zero */
  uint8_t *codes = malloc((size_t)ld);
  int32_t *perm = malloc(sizeof(int32_t) * (size_t)np);
  if (!centroids || !xs || !codes || !perm) {
    es__fail(err, rc, -1, "quantizer: out of memory for %lld centroids and %lld sampled rows",
             (long long)dim * KSUB, (long long)np);
    goto out;
  }

  for (int32_t m = 0; m < nsubq; m++) {
    int d = m == nsubq - 1 ? lastdsub : dsub;
    const float *col = x + (size_t)m * dsub;
    if (np == n) { /* every row, in order, as fastText */
      for (int64_t i = 0; i < np; i++)
        for (int j = 0; j < d; j++) xs[j * ld + i] = col[(size_t)i * stride + j];
    } else { /* a fresh uniform sample of np rows: selection sampling, in row order */
      int64_t got = 0;
      for (int64_t i = 0; i < n && got < np; i++) {
        int64_t left = n - i, need = np - got;
        if (need < left && rng_uniform(&r) * (double)left >= (double)need) continue;
        for (int j = 0; j < d; j++) xs[j * ld + got] = col[(size_t)i * stride + j];
        got++;
      }
    }
    kmeans(xs, ld, np, d, centroids + (size_t)m * KSUB * dsub, codes, perm, &r, nthreads);
  }
  pq->dim = dim;
  pq->dsub = dsub;
  pq->nsubq = nsubq;
  pq->lastdsub = lastdsub;
  pq->centroids = centroids;
  centroids = NULL;
  rc = 0;
out:
  free(perm);
  free(codes);
  free(xs);
  free(centroids);
  return rc;
}

/* ---- encoding -------------------------------------------------------------------------------- */

typedef struct codes_ctx {
  const es__pq *pq;
  const float *x;
  int64_t stride;
  uint8_t *codes;
} codes_ctx;

static void codes_range(void *p, int64_t lo, int64_t hi) {
  const codes_ctx *e = p;
  const es__pq *pq = e->pq;
  float xb[GATHER_MAX * BLOCK];
  uint8_t out[BLOCK];
  for (int32_t m = 0; m < pq->nsubq; m++) {
    int d = m == pq->nsubq - 1 ? pq->lastdsub : pq->dsub;
    const float *c = pq->centroids + (size_t)m * KSUB * pq->dsub;
    const float *col = e->x + (size_t)m * pq->dsub;
    if (d > GATHER_MAX) {
      for (int64_t i = lo; i < hi; i++)
        e->codes[i * pq->nsubq + m] = nearest_one(col + (size_t)i * e->stride, c, d);
      continue;
    }
    for (int64_t b = lo; b < hi; b += BLOCK) {
      int nb = hi - b < BLOCK ? (int)(hi - b) : BLOCK;
      for (int i = 0; i < BLOCK; i++) /* a short last block repeats its last row */
        for (int j = 0; j < d; j++)
          xb[j * BLOCK + i] = col[(size_t)(b + (i < nb ? i : nb - 1)) * e->stride + j];
      nearest_block(xb, BLOCK, c, d, out);
      for (int i = 0; i < nb; i++) e->codes[(b + i) * pq->nsubq + m] = out[i];
    }
  }
}

void es__pq_codes(const es__pq *pq, const float *x, int64_t n, int64_t stride, uint8_t *codes,
                  int nthreads) {
  if (!pq || !pq->centroids || n <= 0) return;
  codes_ctx e = {pq, x, stride, codes};
  run_split(codes_range, &e, n, GRAIN, nthreads);
}

void es__pq_free(es__pq *pq) {
  if (!pq) return;
  free(pq->centroids);
  pq->centroids = NULL;
}
