/*
 * kernels_avx2.c - AVX2 kernels, compiled with -mavx2 and selected at run
 * time. Element-wise sums use 8-wide adds; dot_rows computes 8 rows at once,
 * one per lane, gathering column j of the 8 rows each step, so every row's
 * sum keeps fastText's sequential order (see kernels.h). No FMA: a fused
 * multiply-add rounds once where fastText rounds twice.
 */
#include <immintrin.h>

#include "kernels.h"
#include "reader.h"

static void add_rows_avx2(float *h, const uint8_t *base, const int32_t *rows, int count, int n) {
  size_t stride = (size_t)n * 4;
  for (int i = 0; i < count; i++) {
    const uint8_t *row = base + (size_t)rows[i] * stride;
    if (i + 4 < count) {
      const char *next = (const char *)(base + (size_t)rows[i + 4] * stride);
      for (size_t o = 0; o < stride; o += 64) _mm_prefetch(next + o, _MM_HINT_T0);
    }
    int j = 0;
    for (; j + 8 <= n; j += 8)
      _mm256_storeu_ps(h + j, _mm256_add_ps(_mm256_loadu_ps(h + j),
                                            _mm256_loadu_ps((const float *)(row + 4 * j))));
    for (; j < n; j++) h[j] += es__ld_f32(row + 4 * (size_t)j);
  }
}

static void axpy_avx2(float *h, float a, const uint8_t *x, int n) {
  __m256 va = _mm256_set1_ps(a);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 p = _mm256_mul_ps(va, _mm256_loadu_ps((const float *)(x + 4 * j)));
    _mm256_storeu_ps(h + j, _mm256_add_ps(_mm256_loadu_ps(h + j), p));
  }
  for (; j < n; j++) h[j] += a * es__ld_f32(x + 4 * (size_t)j);
}

static void dot_rows_avx2(const uint8_t *base, int64_t nrows, int n, const float *x, float *out) {
  size_t stride = (size_t)n * 4;
  const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                         _mm256_set1_epi32((int)stride));
  int64_t r = 0;
  if (stride <= (size_t)INT32_MAX / 8) {
    for (; r + 8 <= nrows; r += 8) {
      const uint8_t *p = base + (size_t)r * stride;
      __m256 acc = _mm256_setzero_ps();
      for (int j = 0; j < n; j++) {
        __m256 col = _mm256_i32gather_ps((const float *)(p + 4 * (size_t)j), idx, 1);
        acc = _mm256_add_ps(acc, _mm256_mul_ps(col, _mm256_set1_ps(x[j])));
      }
      _mm256_storeu_ps(out + r, acc);
    }
  }
  for (; r < nrows; r++) out[r] = es__dot_row(base + (size_t)r * stride, x, n);
}

static const es__kernels avx2 = {ES_SIMD_AVX2, add_rows_avx2, axpy_avx2, dot_rows_avx2};

const es__kernels *es__kernels_avx2(void) { return &avx2; }
