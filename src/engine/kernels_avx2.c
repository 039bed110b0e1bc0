/*
 * kernels_avx2.c - AVX2 kernels, compiled with -mavx2 and selected at run
 * time. Element-wise sums use 8-wide adds. dot_rows computes 8 rows at once,
 * one per lane: it loads an 8x8 tile (8 rows, 8 columns), transposes it in
 * registers so vector j holds column j of the 8 rows, and adds the columns
 * in order, so each row's sum keeps fastText's sequential order (kernels.h).
 * No FMA: a fused multiply-add rounds once where fastText rounds twice.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "reader.h"

static inline __m256 ldu(const uint8_t *p) { return _mm256_loadu_ps((const float *)p); }

static void add_rows_avx2(float *h, const uint8_t *base, const int32_t *rows, int count, int n) {
  size_t stride = (size_t)n * 4;
  for (int i = 0; i < count; i++) {
    const uint8_t *row = base + (size_t)rows[i] * stride;
    int j = 0;
    for (; j + 8 <= n; j += 8)
      _mm256_storeu_ps(h + j, _mm256_add_ps(_mm256_loadu_ps(h + j), ldu(row + 4 * j)));
    for (; j < n; j++) h[j] += es__ld_f32(row + 4 * (size_t)j);
  }
}

static void axpy_avx2(float *h, float a, const uint8_t *x, int n) {
  __m256 va = _mm256_set1_ps(a);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 p = _mm256_mul_ps(va, ldu(x + 4 * j));
    _mm256_storeu_ps(h + j, _mm256_add_ps(_mm256_loadu_ps(h + j), p));
  }
  for (; j < n; j++) h[j] += a * es__ld_f32(x + 4 * (size_t)j);
}

static void dot_rows_avx2(const uint8_t *base, int64_t nrows, int n, const float *x, float *out) {
  size_t s = (size_t)n * 4;
  int64_t r = 0;
  for (; r + 8 <= nrows; r += 8) {
    const uint8_t *p = base + (size_t)r * s;
    __m256 acc = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
      const uint8_t *q = p + 4 * (size_t)j;
      __m256 r0 = ldu(q), r1 = ldu(q + s), r2 = ldu(q + 2 * s), r3 = ldu(q + 3 * s);
      __m256 r4 = ldu(q + 4 * s), r5 = ldu(q + 5 * s), r6 = ldu(q + 6 * s), r7 = ldu(q + 7 * s);
      __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      __m256 col[8] = {
          _mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
          _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
          _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
          _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
      for (int c = 0; c < 8; c++)
        acc = _mm256_add_ps(acc, _mm256_mul_ps(col[c], _mm256_set1_ps(x[j + c])));
    }
    float lane[8];
    _mm256_storeu_ps(lane, acc);
    for (; j < n; j++)
      for (int l = 0; l < 8; l++) lane[l] += es__ld_f32(p + l * s + 4 * (size_t)j) * x[j];
    memcpy(out + r, lane, sizeof lane);
  }
  for (; r < nrows; r++) out[r] = es__dot_row(base + (size_t)r * s, x, n);
}

/* dsub 2 (fastText's default): four sub-quantizers' centroid pairs are one
 * 4 x 64-bit gather, giving 8 consecutive floats of the row. */
static void add_rows_pq_avx2(float *h, const es__pqrows *pq, const int32_t *rows,
                             const float *norms, int count) {
  if (pq->dsub != 2) {
    es__add_rows_pq_scalar(h, pq, rows, norms, count);
    return;
  }
  const int32_t full = pq->nsubq - 1; /* the last sub-quantizer has its own layout */
  const double *cent = (const double *)pq->centroids;
  for (int i = 0; i < count; i++) {
    const uint8_t *code = pq->codes + (size_t)rows[i] * pq->nsubq;
    if (i + 2 < count) _mm_prefetch((const char *)(pq->codes + (size_t)rows[i + 2] * pq->nsubq), _MM_HINT_T0);
    __m256 vn = _mm256_set1_ps(norms ? norms[i] : 1.0f);
    int32_t j = 0;
    for (; j + 4 <= full; j += 4) {
      uint32_t c4;
      memcpy(&c4, code + j, 4);
      __m128i idx = _mm_add_epi32(_mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)c4)),
                                  _mm_setr_epi32(j * 256, (j + 1) * 256, (j + 2) * 256, (j + 3) * 256));
      __m256 v = _mm256_castpd_ps(_mm256_i32gather_pd(cent, idx, 8));
      if (norms) v = _mm256_mul_ps(v, vn);
      _mm256_storeu_ps(h + 2 * j, _mm256_add_ps(_mm256_loadu_ps(h + 2 * j), v));
    }
    for (; j < pq->nsubq; j++) {
      const uint8_t *c;
      int d;
      if (j == full) {
        c = pq->centroids + 4 * ((size_t)j * 256 * 2 + (size_t)code[j] * pq->lastdsub);
        d = pq->lastdsub;
      } else {
        c = pq->centroids + 4 * (((size_t)j * 256 + code[j]) * 2);
        d = 2;
      }
      for (int t = 0; t < d; t++)
        h[2 * j + t] += norms ? norms[i] * es__ld_f32(c + 4 * t) : es__ld_f32(c + 4 * t);
    }
  }
}

static const es__kernels avx2 = {ES_SIMD_AVX2, add_rows_avx2, axpy_avx2, dot_rows_avx2,
                                 add_rows_pq_avx2};

const es__kernels *es__kernels_avx2(void) { return &avx2; }
