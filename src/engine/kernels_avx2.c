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

/* Product-quantized rows, dsub 2 (fastText's default; other dsub use the
 * scalar kernel). The centroids come from the pair table (kernels.h):
 * sub-quantizer j's 256 pairs of floats at byte 2048 * j, the row padded to
 * an even number of pairs, so that every 8 floats of a row are four pair
 * loads at fixed offsets whatever the dim. The row's floats go in chunks of
 * 8 (four sub-quantizers) and a last half chunk of 4 when the pair count is
 * not a multiple of 4. */

static inline uint64_t ld64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* 8 floats of a row: the pairs of the four sub-quantizers whose tables
 * start at b, b + 2048, b + 4096, b + 6144, for the code bytes in w
 * (lowest first). Four 64-bit loads: faster than a gather on the x86 cores
 * measured. */
static inline __m256 pq2_chunk(const uint8_t *b, uint32_t w) {
  uint64_t v0 = ld64(b + 8 * (size_t)(uint8_t)w),
           v1 = ld64(b + 2048 + 8 * (size_t)(uint8_t)(w >> 8));
  uint64_t v2 = ld64(b + 4096 + 8 * (size_t)(uint8_t)(w >> 16));
  uint64_t v3 = ld64(b + 6144 + 8 * (size_t)(w >> 24));
  return _mm256_castsi256_ps(
      _mm256_set_epi64x((long long)v3, (long long)v2, (long long)v1, (long long)v0));
}

/* 4 floats: the pairs of two sub-quantizers from b, code bytes in w. */
static inline __m128 pq2_half(const uint8_t *b, uint32_t w) {
  uint64_t v0 = ld64(b + 8 * (size_t)(uint8_t)w),
           v1 = ld64(b + 2048 + 8 * (size_t)(uint8_t)(w >> 8));
  return _mm_castsi128_ps(_mm_set_epi64x((long long)v1, (long long)v0));
}

/* Copies code bytes [j0, j0 + w) of each row (w <= 32) to cb, 32 bytes a
 * row, reading nothing outside them; byte w is set to 0 (the padding
 * sub-quantizer's code when nsubq is odd). A pass of its own, so that no
 * load in the summing loop waits on a load of rows[]. */
static inline void pq2_copy_codes(uint8_t *cb, const es__pq2rows *pq, const int32_t *rows,
                                  int count, int32_t j0, int w) {
  for (int i = 0; i < count; i++) {
    const uint8_t *c = pq->codes + (size_t)rows[i] * pq->nsubq + j0;
    uint8_t *d = cb + 32 * i;
    d[w] = 0;
    if (w >= 16) { /* two overlapping 16-byte copies */
      __m128i x = _mm_loadu_si128((const __m128i *)c);
      __m128i y = _mm_loadu_si128((const __m128i *)(c + w - 16));
      _mm_storeu_si128((__m128i *)(d + w - 16), y);
      _mm_storeu_si128((__m128i *)d, x);
    } else if (w >= 8) {
      uint64_t x = ld64(c), y = ld64(c + w - 8);
      memcpy(d + w - 8, &y, 8);
      memcpy(d, &x, 8);
    } else {
      for (int t = 0; t < w; t++) d[t] = c[t];
    }
  }
}

/* h[0..w) (fewer than 8 or 4 floats) through a zero-padded copy. */
static inline __m256 load_part8(const float *h, int w) {
  float t[8] = {0};
  memcpy(t, h, (size_t)w * 4);
  return _mm256_loadu_ps(t);
}
static inline void store_part8(float *h, __m256 v, int w) {
  float t[8];
  _mm256_storeu_ps(t, v);
  memcpy(h, t, (size_t)w * 4);
}

/* One column block of count <= 32 rows: the nc (<= 8) chunks from chunk
 * c0 on, then the half chunk when `half` (nc <= 7 then). h[0..dim) is the
 * hidden vector. Each chunk of h stays in a register across the rows: a row
 * costs its code and centroid loads and, per chunk, one multiply (by its
 * norm with `use_norm`, as fastText's addcode) and one add; h is loaded and
 * stored once per block. Rows are added in order, so every element keeps
 * fastText's sequence of operations. */
static inline __attribute__((always_inline)) void
pq2_block(float *h, int dim, const es__pq2rows *pq, const int32_t *rows, const float *norms,
          int count, int c0, int nc, int half, int use_norm) {
  uint8_t cb[32 * 32 + 8];
  int32_t j0 = 4 * c0, jend = j0 + 4 * nc + 2 * half;
  pq2_copy_codes(cb, pq, rows, count, j0, (jend < pq->nsubq ? jend : pq->nsubq) - j0);
  const uint8_t *cent = pq->pairs + (size_t)j0 * 2048;
  float *hb = h + 8 * c0;
  int w = dim - 8 * c0; /* floats of h from hb on */
  __m256 z = _mm256_setzero_ps();
  __m256 a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z;
  __m128 ah = _mm_setzero_ps();
#define PQ2_LOAD(k, a)                                                                             \
  if (nc > k) a = 8 * k + 8 <= w ? _mm256_loadu_ps(hb + 8 * k) : load_part8(hb + 8 * k, w - 8 * k);
  PQ2_LOAD(0, a0) PQ2_LOAD(1, a1) PQ2_LOAD(2, a2) PQ2_LOAD(3, a3);
  PQ2_LOAD(4, a4) PQ2_LOAD(5, a5) PQ2_LOAD(6, a6) PQ2_LOAD(7, a7);
#undef PQ2_LOAD
  int hw = w - 8 * nc < 4 ? w - 8 * nc : 4; /* the half chunk's floats in h */
  if (half) ah = _mm256_castps256_ps128(load_part8(hb + 8 * nc, hw));
  for (int i = 0; i < count; i++) {
    const uint8_t *code = cb + 32 * i;
    __m256 vn = use_norm ? _mm256_set1_ps(norms[i]) : z;
    /* code bytes 8 at a time: chunks k and k + 1 */
#define PQ2_STEP(k, a, word)                                                                       \
  if (nc > (k)) {                                                                                  \
    __m256 v = pq2_chunk(cent + 8192 * (k), (uint32_t)(word));                                     \
    a = _mm256_add_ps(a, use_norm ? _mm256_mul_ps(v, vn) : v);                                     \
  }
#define PQ2_STEP2(k, a, b)                                                                         \
  if (nc > (k)) {                                                                                  \
    uint64_t cw = ld64(code + 4 * (k));                                                            \
    PQ2_STEP(k, a, cw) PQ2_STEP(k + 1, b, cw >> 32)                                                \
  }
    PQ2_STEP2(0, a0, a1) PQ2_STEP2(2, a2, a3) PQ2_STEP2(4, a4, a5) PQ2_STEP2(6, a6, a7);
#undef PQ2_STEP2
#undef PQ2_STEP
    if (half) {
      uint32_t cw;
      memcpy(&cw, code + 4 * nc, 4);
      __m128 v = pq2_half(cent + 8192 * (size_t)nc, cw);
      ah = _mm_add_ps(ah, use_norm ? _mm_mul_ps(v, _mm256_castps256_ps128(vn)) : v);
    }
  }
#define PQ2_STORE(k, a)                                                                            \
  if (nc > k) {                                                                                    \
    if (8 * k + 8 <= w)                                                                            \
      _mm256_storeu_ps(hb + 8 * k, a);                                                             \
    else                                                                                           \
      store_part8(hb + 8 * k, a, w - 8 * k);                                                       \
  }
  PQ2_STORE(0, a0) PQ2_STORE(1, a1) PQ2_STORE(2, a2) PQ2_STORE(3, a3);
  PQ2_STORE(4, a4) PQ2_STORE(5, a5) PQ2_STORE(6, a6) PQ2_STORE(7, a7);
#undef PQ2_STORE
  if (half) store_part8(hb + 8 * nc, _mm256_castps128_ps256(ah), hw);
}

/* Batches of up to 32 rows, each in column blocks of up to 64 floats
 * (pq2_block). */
static void add_rows_pq2_avx2(float *h, const es__pq2rows *pq, const int32_t *rows,
                              const float *norms, int count) {
  int dim = 2 * (pq->nsubq - 1) + pq->lastdsub, npairs = (pq->nsubq + 1) & ~1;
  int nchunks = npairs / 4, half = npairs % 4 != 0;
  for (int i0 = 0; i0 < count; i0 += 32) {
    int n = count - i0 < 32 ? count - i0 : 32;
    for (int c0 = 0; c0 < nchunks + half; c0 += 8) {
      int nc = nchunks - c0 < 8 ? nchunks - c0 : 8, hf = half && nchunks - c0 < 8;
      if (norms)
        pq2_block(h, dim, pq, rows + i0, norms + i0, n, c0, nc, hf, 1);
      else
        pq2_block(h, dim, pq, rows + i0, NULL, n, c0, nc, hf, 0);
    }
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

static const es__kernels avx2 = {ES_SIMD_AVX2,           add_rows_avx2,   dot_rows_avx2,
                                 es__add_rows_pq_scalar, add_rows_q_avx2, add_rows_pq2_avx2};

const es__kernels *es__kernels_avx2(void) { return &avx2; }
