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

/* Rows are summed four at a time per 8-column chunk, in registers: h's
 * chunk is loaded once, the four rows added in order, and stored once, so
 * consecutive features do not wait on each other's stores. */
static void add_rows_avx2(float *h, const uint8_t *base, const int32_t *rows, int count, int n) {
  size_t stride = (size_t)n * 4;
  int i = 0;
  for (; i + 4 <= count; i += 4) {
    const uint8_t *a = base + (size_t)rows[i] * stride, *b = base + (size_t)rows[i + 1] * stride;
    const uint8_t *c = base + (size_t)rows[i + 2] * stride,
                  *d = base + (size_t)rows[i + 3] * stride;
    int j = 0;
    for (; j + 8 <= n; j += 8) {
      size_t o = 4 * (size_t)j;
      __m256 acc = _mm256_add_ps(_mm256_loadu_ps(h + j), ldu(a + o));
      acc = _mm256_add_ps(acc, ldu(b + o));
      acc = _mm256_add_ps(acc, ldu(c + o));
      _mm256_storeu_ps(h + j, _mm256_add_ps(acc, ldu(d + o)));
    }
    for (; j < n; j++) {
      size_t o = 4 * (size_t)j;
      h[j] = (((h[j] + es__ld_f32(a + o)) + es__ld_f32(b + o)) + es__ld_f32(c + o)) +
             es__ld_f32(d + o);
    }
  }
  for (; i < count; i++) {
    const uint8_t *row = base + (size_t)rows[i] * stride;
    int j = 0;
    for (; j + 8 <= n; j += 8)
      _mm256_storeu_ps(h + j, _mm256_add_ps(_mm256_loadu_ps(h + j), ldu(row + 4 * j)));
    for (; j < n; j++) h[j] += es__ld_f32(row + 4 * (size_t)j);
  }
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
      __m256 col[8] = {_mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
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

/* 8 floats of a dsub-2 row: the centroid pairs of sub-quantizers j..j+3,
 * as four 64-bit loads (faster than a gather on many x86 cores). The table
 * may be unaligned in the file, hence memcpy rather than double loads. */
static inline __m256 pq2_chunk(const uint8_t *cent, const uint8_t *code, int32_t j) {
  const uint8_t *b = cent + (size_t)j * 256 * 8;
  uint64_t v0, v1, v2, v3;
  memcpy(&v0, b + 8 * (size_t)code[j], 8);
  memcpy(&v1, b + 2048 + 8 * (size_t)code[j + 1], 8);
  memcpy(&v2, b + 4096 + 8 * (size_t)code[j + 2], 8);
  memcpy(&v3, b + 6144 + 8 * (size_t)code[j + 3], 8);
  return _mm256_castsi256_ps(
      _mm256_set_epi64x((long long)v3, (long long)v2, (long long)v1, (long long)v0));
}

/* The last (up to 8) floats of a dsub-2 row from sub-quantizer j on, zero
 * padded: up to three pairs and the last sub-vector (lastdsub wide). */
static inline uint64_t ld64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline uint64_t pq2_pair(const es__pqrows *pq, const uint8_t *code, int32_t j) {
  return ld64(pq->centroids + 8 * ((size_t)j * 256 + code[j]));
}

/* The last sub-vector (lastdsub is 1 or 2 when dsub is 2), zero extended. */
static inline uint64_t pq2_last(const es__pqrows *pq, const uint8_t *code, int32_t j) {
  const uint8_t *p = pq->centroids + 4 * ((size_t)j * 512 + (size_t)code[j] * pq->lastdsub);
  if (pq->lastdsub == 2) return ld64(p);
  uint32_t x;
  memcpy(&x, p, 4);
  return x;
}

static inline __m256 pq2_tail(const es__pqrows *pq, const uint8_t *code, int32_t j) {
  /* Built in registers (scalars, not an array: an array would be stored and
   * re-read as a vector, which store forwarding cannot serve). */
  uint64_t x0, x1 = 0, x2 = 0, x3 = 0;
  switch (pq->nsubq - 1 - j) {
  case 0: x0 = pq2_last(pq, code, j); break;
  case 1:
    x0 = pq2_pair(pq, code, j);
    x1 = pq2_last(pq, code, j + 1);
    break;
  case 2:
    x0 = pq2_pair(pq, code, j);
    x1 = pq2_pair(pq, code, j + 1);
    x2 = pq2_last(pq, code, j + 2);
    break;
  default:
    x0 = pq2_pair(pq, code, j);
    x1 = pq2_pair(pq, code, j + 1);
    x2 = pq2_pair(pq, code, j + 2);
    x3 = pq2_last(pq, code, j + 3);
    break;
  }
  return _mm256_castsi256_ps(
      _mm256_set_epi64x((long long)x3, (long long)x2, (long long)x1, (long long)x0));
}

/* Adds nf (<= 4) rows into h, chunk by chunk in registers; with `use_norm`
 * each decoded chunk is multiplied by its row's norm first (mul, then add, as
 * fastText's addcode). Inlined with constant nf/use_norm for the common case. */
static inline __attribute__((always_inline)) void pq2_group(float *h, const es__pqrows *pq,
                                                            const uint8_t *const *code,
                                                            const __m256 *vn, int nf,
                                                            int use_norm) {
  const int32_t full = pq->nsubq - 1; /* the last sub-quantizer has its own layout */
  int32_t j = 0;
  for (; j + 4 <= full; j += 4) {
    __m256 acc = _mm256_loadu_ps(h + 2 * j);
    for (int f = 0; f < nf; f++) {
      __m256 v = pq2_chunk(pq->centroids, code[f], j);
      acc = _mm256_add_ps(acc, use_norm ? _mm256_mul_ps(v, vn[f]) : v);
    }
    _mm256_storeu_ps(h + 2 * j, acc);
  }
  int tailw = (full - j) * 2 + pq->lastdsub; /* 1..8 floats */
  __m256i mask =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(tailw), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256 acc = _mm256_maskload_ps(h + 2 * j, mask);
  for (int f = 0; f < nf; f++) {
    __m256 v = pq2_tail(pq, code[f], j);
    acc = _mm256_add_ps(acc, use_norm ? _mm256_mul_ps(v, vn[f]) : v);
  }
  _mm256_maskstore_ps(h + 2 * j, mask, acc);
}

/* dsub 2 (fastText's default): four rows at a time (see pq2_group). */
static void add_rows_pq_avx2(float *h, const es__pqrows *pq, const int32_t *rows,
                             const float *norms, int count) {
  if (pq->dsub != 2) {
    es__add_rows_pq_scalar(h, pq, rows, norms, count);
    return;
  }
  for (int i = 0; i < count; i += 4) {
    const uint8_t *code[4];
    __m256 vn[4];
    int nf = count - i < 4 ? count - i : 4;
    for (int f = 0; f < nf; f++) {
      code[f] = pq->codes + (size_t)rows[i + f] * pq->nsubq;
      vn[f] = _mm256_set1_ps(norms ? norms[i + f] : 1.0f);
    }
    if (nf == 4 && norms)
      pq2_group(h, pq, code, vn, 4, 1);
    else if (nf == 4)
      pq2_group(h, pq, code, vn, 4, 0);
    else
      pq2_group(h, pq, code, vn, nf, norms != NULL);
  }
}

/* 8 values of an int8 row from column j, as floats. */
static inline __m256 q8_chunk(const uint8_t *row, int j) {
  long long v;
  memcpy(&v, row + j, 8);
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(v)));
}

/* 8 values of an int4 row from column j (even), as floats. */
static inline __m256 q4_chunk(const uint8_t *row, int j) {
  int v;
  memcpy(&v, row + j / 2, 4);
  __m128i b = _mm_cvtsi32_si128(v), m = _mm_set1_epi8(15), e = _mm_set1_epi8(8);
  __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
  __m128i q = _mm_sub_epi8(_mm_xor_si128(_mm_unpacklo_epi8(lo, hi), e), e);
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
}

/* Column chunks outside, rows inside: each element still adds the rows in
 * order, and h stays in a register across the rows. */
static void add_rows_q_avx2(float *h, const uint8_t *base, size_t stride, const uint8_t *scales,
                            const int32_t *rows, int count, int n, int bits) {
  for (int i0 = 0; i0 < count; i0 += 32) {
    int c = count - i0 < 32 ? count - i0 : 32;
    const uint8_t *p[32];
    __m256 sc[32];
    for (int i = 0; i < c; i++) {
      p[i] = base + (size_t)rows[i0 + i] * stride;
      float f;
      memcpy(&f, scales + 4 * (size_t)rows[i0 + i], 4);
      sc[i] = _mm256_set1_ps(f);
    }
    int j = 0;
    for (; j + 8 <= n; j += 8) {
      __m256 acc = _mm256_loadu_ps(h + j);
      if (bits == 8)
        for (int i = 0; i < c; i++)
          acc = _mm256_add_ps(acc, _mm256_mul_ps(sc[i], q8_chunk(p[i], j)));
      else
        for (int i = 0; i < c; i++)
          acc = _mm256_add_ps(acc, _mm256_mul_ps(sc[i], q4_chunk(p[i], j)));
      _mm256_storeu_ps(h + j, acc);
    }
    if (j < n) { /* the last 1..7 columns: zero-padded chunk, masked h */
      int w = n - j;
      __m256i mask =
          _mm256_cmpgt_epi32(_mm256_set1_epi32(w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      __m256 acc = _mm256_maskload_ps(h + j, mask);
      for (int i = 0; i < c; i++) {
        uint64_t v = 0;
        if (bits == 8) {
          for (int k = 0; k < w; k++) v |= (uint64_t)p[i][j + k] << (8 * k);
        } else { /* j is even: whole bytes from j / 2 */
          for (int k = 0; k < (w + 1) / 2; k++) v |= (uint64_t)p[i][j / 2 + k] << (8 * k);
        }
        __m256 q;
        if (bits == 8) {
          q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128((long long)v)));
        } else {
          __m128i b = _mm_cvtsi32_si128((int)(uint32_t)v), m = _mm_set1_epi8(15),
                  e = _mm_set1_epi8(8);
          __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
          q = _mm256_cvtepi32_ps(
              _mm256_cvtepi8_epi32(_mm_sub_epi8(_mm_xor_si128(_mm_unpacklo_epi8(lo, hi), e), e)));
        }
        acc = _mm256_add_ps(acc, _mm256_mul_ps(sc[i], q));
      }
      _mm256_maskstore_ps(h + j, mask, acc);
    }
  }
}

static const es__kernels avx2 = {ES_SIMD_AVX2, add_rows_avx2, dot_rows_avx2, add_rows_pq_avx2,
                                 add_rows_q_avx2};

const es__kernels *es__kernels_avx2(void) { return &avx2; }
