/* test_pq.c - product-quantizer training and encoding follow fastText 0.9.2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pq.h"

static uint32_t seed = 12345;
static float frand(void) { /* uniform in [-1, 1) */
  seed = seed * 1664525u + 1013904223u;
  return (float)(seed >> 8) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* n rows of dim floats at row stride `stride`; the columns past dim hold NaN,
 * so a quantizer that reads them shows it. */
static float *matrix(int64_t n, int64_t stride, int dim, float (*f)(int64_t i, int col)) {
  float *x = malloc(sizeof(float) * (size_t)(n * stride));
  assert_non_null(x);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < stride; j++) x[i * stride + j] = j < dim ? f(i, (int)j) : NAN;
  return x;
}

static float noisy(int64_t i, int col) { return (void)i, (void)col, frand(); }

/* fastText's assign_centroid, written out independently of pq.c. */
static int brute_nearest(const float *x, const float *c, int d) {
  int best = 0;
  float bd = 0.0f;
  for (int k = 0; k < 256; k++) {
    float dist = 0.0f;
    for (int j = 0; j < d; j++) {
      float t = x[j] - c[k * d + j];
      dist += t * t;
    }
    if (k == 0 || dist < bd) bd = dist, best = k;
  }
  return best;
}

static int width(const es__pq *pq, int m) { return m == pq->nsubq - 1 ? pq->lastdsub : pq->dsub; }

/* The largest distance between a row and the concatenation of its centroids. */
static double max_reconstruction_error(const es__pq *pq, const float *x, int64_t n, int64_t stride,
                                       const uint8_t *codes) {
  double worst = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double e = 0.0;
    for (int m = 0; m < pq->nsubq; m++) {
      const float *c = es__pq_centroid(pq, m, codes[i * pq->nsubq + m]);
      for (int j = 0; j < width(pq, m); j++) {
        double t = (double)c[j] - x[i * stride + m * pq->dsub + j];
        e += t * t;
      }
    }
    if (sqrt(e) > worst) worst = sqrt(e);
  }
  return worst;
}

static void assert_all_finite(const es__pq *pq) {
  for (int i = 0; i < pq->dim * 256; i++) assert_true(isfinite(pq->centroids[i]));
}

/* Column c of every row lies within 1 of 1000 * c, so a centroid read at the
 * wrong offset shows up as a value from the wrong column. */
static float by_column(int64_t i, int col) { return (void)i, 1000.0f * (float)col + frand(); }

static void centroid_layout_is_fasttexts(void **state) {
  (void)state;
  static const int cases[][4] = {{50, 2, 25, 2}, {51, 2, 26, 1}, {10, 3, 4, 1}, {1, 1, 1, 1}};
  for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
    int dim = cases[t][0], dsub = cases[t][1];
    int64_t n = 300, stride = dim + 2;
    float *x = matrix(n, stride, dim, by_column);
    es__pq pq;
    es_error_t err = {0};
    assert_int_equal(es__pq_train(&pq, x, n, stride, dim, dsub, 1234, 2, &err), 0);
    assert_int_equal(pq.dim, dim);
    assert_int_equal(pq.dsub, dsub);
    assert_int_equal(pq.nsubq, cases[t][2]);
    assert_int_equal(pq.lastdsub, cases[t][3]);
    for (int m = 0; m < pq.nsubq; m++) {
      for (int i = 0; i < 256; i++) {
        size_t off = m == pq.nsubq - 1 ? (size_t)m * 256 * dsub + (size_t)i * pq.lastdsub
                                       : ((size_t)m * 256 + i) * dsub;
        assert_ptr_equal(es__pq_centroid(&pq, m, i), pq.centroids + off);
        for (int j = 0; j < width(&pq, m); j++) {
          assert_true(off + j < (size_t)dim * 256);
          float want = 1000.0f * (float)(m * dsub + j);
          assert_true(fabsf(pq.centroids[off + j] - want) <= 1.0f);
        }
      }
    }
    es__pq_free(&pq);
    free(x);
  }
}

static void invalid_shapes_are_rejected_with_a_message(void **state) {
  (void)state;
  float *x = matrix(300, 4, 4, noisy);
  es__pq pq;
  es_error_t err = {0};
  assert_int_equal(es__pq_train(&pq, x, 255, 4, 4, 2, 1234, 1, &err), ES_EINVAL);
  assert_int_equal(err.code, ES_EINVAL);
  assert_non_null(strstr(err.msg, "at least 256"));
  assert_null(pq.centroids);
  es__pq_free(&pq); /* a failed quantizer is safe to free */
  assert_int_equal(es__pq_train(&pq, x, 300, 4, 0, 2, 1234, 1, &err), ES_EINVAL);
  assert_int_equal(es__pq_train(&pq, x, 300, 4, 4, 0, 1234, 1, &err), ES_EINVAL);
  assert_int_equal(es__pq_train(&pq, x, 300, 3, 4, 2, 1234, 1, &err), ES_EINVAL);
  assert_int_equal(es__pq_train(&pq, NULL, 300, 4, 4, 2, 1234, 1, NULL), ES_EINVAL);
  assert_null(pq.centroids);
  assert_int_equal(es__pq_train(&pq, x, 256, 4, 4, 2, 1234, 1, &err), 0); /* 256 is enough */
  es__pq_free(&pq);
  es__pq_free(&pq);
  free(x);
}

/* Sub-space m of row i holds cluster (i * 7 + m * 3) % 256, at a point of a
 * 16 x 16 grid spaced 10 apart, plus noise below 0.01. */
static float clustered(int64_t i, int col) {
  int cl = (int)((i * 7 + (col / 2) * 3) % 256);
  return (float)(col % 2 ? cl / 16 : cl % 16) * 10.0f + 0.005f * frand();
}

static void separated_clusters_decode_exactly_with_one_point_each(void **state) {
  (void)state;
  /* With 256 rows, fastText's initialisation takes every row as a centroid,
   * so k-means must keep each of the 256 clusters on its own centroid. */
  for (int dim = 5; dim <= 6; dim++) { /* the last sub-vector 1 or 2 wide */
    int64_t n = 256;
    float *x = matrix(n, dim, dim, clustered);
    es__pq pq;
    assert_int_equal(es__pq_train(&pq, x, n, dim, dim, 2, 1234, 1, NULL), 0);
    uint8_t *codes = malloc((size_t)n * pq.nsubq);
    es__pq_codes(&pq, x, n, dim, codes, 1);
    assert_true(max_reconstruction_error(&pq, x, n, dim, codes) < 1e-5);
    es__pq_free(&pq);
    free(codes);
    free(x);
  }
}

static void separated_clusters_with_many_points_are_mostly_recovered(void **state) {
  (void)state;
  /* 16 points per cluster: fastText's random initialisation gives some
   * clusters two centroids and others none, and k-means cannot undo that,
   * so a few points stay up to one grid step (10) away, but the average
   * error stays a small fraction of the grid step. */
  int dim = 4;
  int64_t n = 4096;
  float *x = matrix(n, dim, dim, clustered);
  es__pq pq;
  assert_int_equal(es__pq_train(&pq, x, n, dim, dim, 2, 1234, 2, NULL), 0);
  uint8_t *codes = malloc((size_t)n * pq.nsubq);
  es__pq_codes(&pq, x, n, dim, codes, 2);
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++)
    for (int m = 0; m < pq.nsubq; m++) {
      const float *c = es__pq_centroid(&pq, m, codes[i * pq.nsubq + m]);
      sum += hypot(c[0] - x[i * dim + 2 * m], c[1] - x[i * dim + 2 * m + 1]);
    }
  assert_true(sum / (double)(n * pq.nsubq) < 3.0);
  assert_true(max_reconstruction_error(&pq, x, n, dim, codes) < 20.0);
  es__pq_free(&pq);
  free(codes);
  free(x);
}

static void codes_are_the_nearest_centroid_with_lowest_index_on_ties(void **state) {
  (void)state;
  /* Hand-made quantizers, so encoding is checked apart from training; a
   * 40- and a 33-wide sub-vector take the path for wide sub-vectors. */
  static const int shapes[][2] = {{5, 2}, {7, 3}, {1, 1}, {40, 40}, {70, 33}, {8, 2}};
  for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
    int dim = shapes[t][0], dsub = shapes[t][1];
    int nsubq = (dim + dsub - 1) / dsub, last = dim % dsub ? dim % dsub : dsub;
    es__pq pq = {dim, dsub, nsubq, last, malloc(sizeof(float) * 256 * (size_t)dim)};
    for (int i = 0; i < 256 * dim; i++) pq.centroids[i] = frand();
    for (int m = 0; m < nsubq; m++) { /* centroid 200 duplicates centroid 17 */
      int d = width(&pq, m);
      memcpy((float *)es__pq_centroid(&pq, m, 200), es__pq_centroid(&pq, m, 17), sizeof(float) * d);
    }
    int64_t n = 5001, stride = dim + 1;
    float *x = matrix(n, stride, dim, noisy);
    for (int m = 0; m < nsubq; m++) /* row 9 sits exactly on the tied centroids */
      memcpy(x + 9 * stride + m * dsub, es__pq_centroid(&pq, m, 17), sizeof(float) * width(&pq, m));
    uint8_t *a = malloc((size_t)n * nsubq), *b = malloc((size_t)n * nsubq);
    es__pq_codes(&pq, x, n, stride, a, 1);
    es__pq_codes(&pq, x, n, stride, b, 3);
    assert_memory_equal(a, b, (size_t)n * nsubq);
    for (int64_t i = 0; i < n; i++)
      for (int m = 0; m < nsubq; m++)
        assert_int_equal(
            a[i * nsubq + m],
            brute_nearest(x + i * stride + m * dsub, es__pq_centroid(&pq, m, 0), width(&pq, m)));
    for (int m = 0; m < nsubq; m++) assert_int_equal(a[9 * nsubq + m], 17);
    free(a);
    free(b);
    free(x);
    es__pq_free(&pq);
  }
}

/* Trains twice on x, with nthreads t1 and t2, and checks that centroids and
 * codes are the same bits. */
static void assert_same_for_threads(const float *x, int64_t n, int64_t stride, int dim, int t1,
                                    int t2) {
  es__pq a, b;
  assert_int_equal(es__pq_train(&a, x, n, stride, dim, 2, 1234, t1, NULL), 0);
  assert_int_equal(es__pq_train(&b, x, n, stride, dim, 2, 1234, t2, NULL), 0);
  assert_all_finite(&a);
  assert_memory_equal(a.centroids, b.centroids, sizeof(float) * 256 * dim);
  uint8_t *ca = malloc((size_t)n * a.nsubq), *cb = malloc((size_t)n * a.nsubq);
  es__pq_codes(&a, x, n, stride, ca, t1);
  es__pq_codes(&b, x, n, stride, cb, t2);
  assert_memory_equal(ca, cb, (size_t)n * a.nsubq);
  free(ca);
  free(cb);
  es__pq_free(&a);
  es__pq_free(&b);
}

static void training_is_deterministic_for_any_thread_count(void **state) {
  (void)state;
  int dim = 5; /* three sub-quantizers, the last one 1 wide */
  int64_t n = 5000, stride = 6;
  float *x = matrix(n, stride, dim, noisy);
  assert_same_for_threads(x, n, stride, dim, 1, 3);
  assert_same_for_threads(x, n, stride, dim, 1, 1);
  free(x);
}

static float ramp(int64_t i, int col) { return (void)col, (float)i / 131072.0f; }

static void sampled_training_is_deterministic_and_sees_every_row(void **state) {
  (void)state;
  /* 131072 rows > 65536: k-means runs on a random sample of half of them,
   * which must reach the last rows as well as the first. */
  int64_t n = 131072;
  float *x = matrix(n, 1, 1, ramp);
  assert_same_for_threads(x, n, 1, 1, 3, 1); /* dsub 2 > dim 1: one sub-quantizer, 1 wide */
  es__pq pq;
  assert_int_equal(es__pq_train(&pq, x, n, 1, 1, 1, 1234, 2, NULL), 0);
  float lo = 1.0f, hi = 0.0f;
  for (int k = 0; k < 256; k++) {
    lo = fminf(lo, pq.centroids[k]);
    hi = fmaxf(hi, pq.centroids[k]);
  }
  assert_true(lo < 0.05f);
  assert_true(hi > 0.95f);
  es__pq_free(&pq);
  free(x);
}

static void another_seed_gives_other_centroids(void **state) {
  (void)state;
  int dim = 4;
  int64_t n = 2000;
  float *x = matrix(n, dim, dim, noisy);
  es__pq a, b;
  assert_int_equal(es__pq_train(&a, x, n, dim, dim, 2, 1234, 1, NULL), 0);
  assert_int_equal(es__pq_train(&b, x, n, dim, dim, 2, 1235, 1, NULL), 0);
  assert_memory_not_equal(a.centroids, b.centroids, sizeof(float) * 256 * dim);
  es__pq_free(&a);
  es__pq_free(&b);
  free(x);
}

/* Ten distinct points, small enough that a 1e-7 move is not rounded away. */
static float ten_points(int64_t i, int col) {
  return (float)(i % 10) * 0.001f - (float)col * 0.0005f;
}

static void empty_clusters_are_split_without_nans(void **state) {
  (void)state;
  /* 300 rows but 10 distinct points: at least 246 clusters are empty after
   * every E-step and are split off the others. */
  int dim = 3;
  int64_t n = 300;
  float *x = matrix(n, dim, dim, ten_points);
  es__pq pq;
  assert_int_equal(es__pq_train(&pq, x, n, dim, dim, 2, 1234, 1, NULL), 0);
  assert_all_finite(&pq);
  for (int m = 0; m < pq.nsubq; m++) /* each centroid is one of the points, give or take EPSs */
    for (int k = 0; k < 256; k++) {
      const float *c = es__pq_centroid(&pq, m, k);
      double nearest = INFINITY;
      for (int p = 0; p < 10; p++) {
        double e = 0.0;
        for (int j = 0; j < width(&pq, m); j++) e += fabs(c[j] - ten_points(p, m * 2 + j));
        if (e < nearest) nearest = e;
      }
      assert_true(nearest < 1e-5);
    }
  /* The last M-step split the empty clusters: fastText moves the two halves
   * apart by 1e-7, down in even and up in odd coordinates, so two centroids
   * of one point differ by multiples of (-1e-7, 1e-7), never in the same
   * direction in coordinates 0 and 1. */
  int pairs = 0;
  for (int a = 0; a < 256; a++)
    for (int b = 0; b < a; b++) {
      const float *ca = es__pq_centroid(&pq, 0, a), *cb = es__pq_centroid(&pq, 0, b);
      float d0 = ca[0] - cb[0], d1 = ca[1] - cb[1];
      if (fabsf(d0) + fabsf(d1) > 1e-5f) continue; /* centroids of different points */
      assert_false(d0 * d1 > 0.0f);
      pairs += d0 * d1 < 0.0f;
    }
  assert_true(pairs >= 246);
  uint8_t *codes = malloc((size_t)n * pq.nsubq);
  es__pq_codes(&pq, x, n, dim, codes, 1);
  assert_true(max_reconstruction_error(&pq, x, n, dim, codes) < 1e-5);
  free(codes);
  es__pq_free(&pq);
  free(x);
}

static float constant(int64_t i, int col) { return (void)i, (void)col, 2.5f; }

static void constant_data_gives_finite_centroids(void **state) {
  (void)state;
  int dim = 5;
  int64_t n = 1000;
  float *x = matrix(n, dim, dim, constant);
  es__pq pq;
  assert_int_equal(es__pq_train(&pq, x, n, dim, dim, 2, 1234, 2, NULL), 0);
  assert_all_finite(&pq);
  for (int i = 0; i < 256 * dim; i++) assert_true(fabsf(pq.centroids[i] - 2.5f) < 1e-4f);
  es__pq_free(&pq);
  free(x);
}

static float norm_like(int64_t i, int col) { return (void)col, 1.0f + (float)(i % 997) * 0.01f; }

static void one_dimensional_norm_quantizer_works(void **state) {
  (void)state;
  /* -qnorm's quantizer: dim 1, dsub 1, over 997 distinct norms. */
  int64_t n = 5000;
  float *x = matrix(n, 1, 1, norm_like);
  es__pq pq;
  assert_int_equal(es__pq_train(&pq, x, n, 1, 1, 1, 1234, 2, NULL), 0);
  assert_int_equal(pq.nsubq, 1);
  assert_int_equal(pq.lastdsub, 1);
  uint8_t *codes = malloc((size_t)n);
  es__pq_codes(&pq, x, n, 1, codes, 2);
  /* 256 centroids over a range of 10: no norm is far from its centroid */
  assert_true(max_reconstruction_error(&pq, x, n, 1, codes) < 0.2);
  free(codes);
  es__pq_free(&pq);
  free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(centroid_layout_is_fasttexts),
      cmocka_unit_test(invalid_shapes_are_rejected_with_a_message),
      cmocka_unit_test(separated_clusters_decode_exactly_with_one_point_each),
      cmocka_unit_test(separated_clusters_with_many_points_are_mostly_recovered),
      cmocka_unit_test(codes_are_the_nearest_centroid_with_lowest_index_on_ties),
      cmocka_unit_test(training_is_deterministic_for_any_thread_count),
      cmocka_unit_test(sampled_training_is_deterministic_and_sees_every_row),
      cmocka_unit_test(another_seed_gives_other_centroids),
      cmocka_unit_test(empty_clusters_are_split_without_nans),
      cmocka_unit_test(constant_data_gives_finite_centroids),
      cmocka_unit_test(one_dimensional_norm_quantizer_works),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
