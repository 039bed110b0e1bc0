/*
 * kernels.c - the portable scalar kernels, and run-time selection.
 *
 * The scalar dot_rows interleaves four rows so the adds of different rows
 * overlap, while each row's own sum stays strictly sequential.
 */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

#include "reader.h"

float es__dot_row(const uint8_t *row, const float *x, int n) {
  float d = 0.0f;
  for (int j = 0; j < n; j++) d += es__ld_f32(row + 4 * (size_t)j) * x[j];
  return d;
}

static void add_rows_scalar(float *h, const uint8_t *base, const int32_t *rows, int count, int n) {
  for (int i = 0; i < count; i++) {
    const uint8_t *row = base + (size_t)rows[i] * n * 4;
    for (int j = 0; j < n; j++) h[j] += es__ld_f32(row + 4 * (size_t)j);
  }
}

static void dot_rows_scalar(const uint8_t *base, int64_t nrows, int n, const float *x, float *out) {
  size_t stride = (size_t)n * 4;
  int64_t r = 0;
  for (; r + 4 <= nrows; r += 4) {
    const uint8_t *p = base + (size_t)r * stride;
    float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
    for (int j = 0; j < n; j++) {
      size_t o = 4 * (size_t)j;
      d0 += es__ld_f32(p + o) * x[j];
      d1 += es__ld_f32(p + stride + o) * x[j];
      d2 += es__ld_f32(p + 2 * stride + o) * x[j];
      d3 += es__ld_f32(p + 3 * stride + o) * x[j];
    }
    out[r] = d0;
    out[r + 1] = d1;
    out[r + 2] = d2;
    out[r + 3] = d3;
  }
  for (; r < nrows; r++) out[r] = es__dot_row(base + (size_t)r * stride, x, n);
}

void es__add_rows_pq_scalar(float *h, const es__pqrows *pq, const int32_t *rows, const float *norms,
                            int count) {
  for (int i = 0; i < count; i++) {
    const uint8_t *code = pq->codes + (size_t)rows[i] * pq->nsubq;
    for (int32_t j = 0; j < pq->nsubq; j++) {
      const uint8_t *c;
      int d;
      if (j == pq->nsubq - 1) {
        c = pq->centroids + 4 * ((size_t)j * 256 * pq->dsub + (size_t)code[j] * pq->lastdsub);
        d = pq->lastdsub;
      } else {
        c = pq->centroids + 4 * (((size_t)j * 256 + code[j]) * pq->dsub);
        d = pq->dsub;
      }
      float *hj = h + (size_t)j * pq->dsub;
      if (norms)
        for (int t = 0; t < d; t++) hj[t] += norms[i] * es__ld_f32(c + 4 * t);
      else /* alpha 1: 1.0f * c == c exactly, so the multiply can go */
        for (int t = 0; t < d; t++) hj[t] += es__ld_f32(c + 4 * t);
    }
  }
}

uint8_t *es__pq_pairs_new(const uint8_t *centroids, int32_t nsubq, int32_t lastdsub,
                          size_t *bytes) {
  size_t npairs = ((size_t)nsubq + 1) & ~(size_t)1, n = npairs * 2048;
  uint8_t *t = aligned_alloc(64, n);
  if (!t) return NULL;
  memset(t, 0, n);
  for (int32_t j = 0; j < nsubq; j++) {
    int w = j == nsubq - 1 ? lastdsub : 2; /* floats of this sub-quantizer's centroids */
    for (int c = 0; c < 256; c++)
      memcpy(t + 2048 * (size_t)j + 8 * (size_t)c,
             centroids + 4 * ((size_t)j * 512 + (size_t)c * w), 4 * (size_t)w);
  }
  *bytes = n;
  return t;
}

static inline int q4(const uint8_t *row, int j) {
  int v = (row[j >> 1] >> ((j & 1) * 4)) & 15;
  return (v ^ 8) - 8;
}

void es__add_rows_q_scalar(float *h, const uint8_t *base, size_t stride, const uint8_t *scales,
                           const int32_t *rows, int count, int n, int bits) {
  for (int i = 0; i < count; i++) {
    const uint8_t *row = base + (size_t)rows[i] * stride;
    float sc = es__ld_f32(scales + 4 * (size_t)rows[i]);
    if (bits == 8)
      for (int j = 0; j < n; j++) h[j] += sc * (float)(int8_t)row[j];
    else
      for (int j = 0; j < n; j++) h[j] += sc * (float)q4(row, j);
  }
}

static const es__kernels scalar = {ES_SIMD_SCALAR,         add_rows_scalar,       dot_rows_scalar,
                                   es__add_rows_pq_scalar, es__add_rows_q_scalar, NULL};

const es__kernels *es__kernels_scalar(void) { return &scalar; }

#if !defined(ES_HAVE_AVX2)
const es__kernels *es__kernels_avx2(void) { return 0; }
#endif
#if !defined(ES_HAVE_NEON)
const es__kernels *es__kernels_neon(void) { return 0; }
#endif

static int cpu_has_avx2(void) {
#if defined(ES_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

es_simd_t es_simd_best(void) {
  if (cpu_has_avx2()) return ES_SIMD_AVX2;
#if defined(ES_HAVE_NEON)
  return ES_SIMD_NEON;
#endif
  return ES_SIMD_SCALAR;
}

const es__kernels *es__kernels_get(es_simd_t want) {
  if (want == ES_SIMD_AUTO) want = es_simd_best();
  switch (want) {
  case ES_SIMD_SCALAR: return es__kernels_scalar();
  case ES_SIMD_AVX2: return cpu_has_avx2() ? es__kernels_avx2() : 0;
  case ES_SIMD_NEON: return es__kernels_neon();
  default: return 0;
  }
}

const char *es_simd_name(es_simd_t s) {
  switch (s) {
  case ES_SIMD_AUTO: return "auto";
  case ES_SIMD_SCALAR: return "scalar";
  case ES_SIMD_AVX2: return "avx2";
  case ES_SIMD_NEON: return "neon";
  }
  return "unknown";
}
