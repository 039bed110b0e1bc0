/*
 * kernels_neon.c - NEON kernels for ARMv7 (armhf, with -mfpu=neon) and
 * AArch64. Loads go through bytes (vld1q_u8), so rows at any alignment are
 * fine. dot_rows computes 4 rows at once, one per lane, keeping each row's
 * sequential order (see kernels.h); vmulq then vaddq, never vmla/vfma.
 */
#include <arm_neon.h>

#include "kernels.h"
#include "reader.h"

static inline float32x4_t ld4(const uint8_t *p) { return vreinterpretq_f32_u8(vld1q_u8(p)); }

static void add_rows_neon(float *h, const uint8_t *base, const int32_t *rows, int count, int n) {
  size_t stride = (size_t)n * 4;
  for (int i = 0; i < count; i++) {
    const uint8_t *row = base + (size_t)rows[i] * stride;
    if (i + 4 < count) __builtin_prefetch(base + (size_t)rows[i + 4] * stride);
    int j = 0;
    for (; j + 4 <= n; j += 4)
      vst1q_f32(h + j, vaddq_f32(vld1q_f32(h + j), ld4(row + 4 * (size_t)j)));
    for (; j < n; j++) h[j] += es__ld_f32(row + 4 * (size_t)j);
  }
}

static void dot_rows_neon(const uint8_t *base, int64_t nrows, int n, const float *x, float *out) {
  size_t stride = (size_t)n * 4;
  int64_t r = 0;
  for (; r + 4 <= nrows; r += 4) {
    const uint8_t *p = base + (size_t)r * stride;
    float32x4_t acc = vdupq_n_f32(0.0f);
    int j = 0;
    /* Transpose 4x4 tiles so lane i holds row i's columns j..j+3. */
    for (; j + 4 <= n; j += 4) {
      float32x4_t r0 = ld4(p + 4 * (size_t)j), r1 = ld4(p + stride + 4 * (size_t)j);
      float32x4_t r2 = ld4(p + 2 * stride + 4 * (size_t)j);
      float32x4_t r3 = ld4(p + 3 * stride + 4 * (size_t)j);
      float32x4x2_t t01 = vtrnq_f32(r0, r1), t23 = vtrnq_f32(r2, r3);
      float32x4_t c0 = vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0]));
      float32x4_t c1 = vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1]));
      float32x4_t c2 = vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0]));
      float32x4_t c3 = vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1]));
      acc = vaddq_f32(acc, vmulq_f32(c0, vdupq_n_f32(x[j])));
      acc = vaddq_f32(acc, vmulq_f32(c1, vdupq_n_f32(x[j + 1])));
      acc = vaddq_f32(acc, vmulq_f32(c2, vdupq_n_f32(x[j + 2])));
      acc = vaddq_f32(acc, vmulq_f32(c3, vdupq_n_f32(x[j + 3])));
    }
    float lane[4];
    vst1q_f32(lane, acc);
    for (; j < n; j++)
      for (int l = 0; l < 4; l++) lane[l] += es__ld_f32(p + l * stride + 4 * (size_t)j) * x[j];
    for (int l = 0; l < 4; l++) out[r + l] = lane[l];
  }
  for (; r < nrows; r++) out[r] = es__dot_row(base + (size_t)r * stride, x, n);
}

/* 8 int8 values of a row from column j, widened to two float vectors. */
static inline void q8x8(const uint8_t *row, int j, float32x4_t *lo, float32x4_t *hi) {
  int16x8_t w = vmovl_s8(vreinterpret_s8_u8(vld1_u8(row + j)));
  *lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
  *hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
}

/* 8 int4 values from column j (even): 4 bytes, low nibble first. */
static inline void q4x8(const uint8_t *row, int j, float32x4_t *lo, float32x4_t *hi) {
  uint8_t b[8] = {0};
  for (int k = 0; k < 4; k++) b[k] = row[j / 2 + k];
  uint8x8_t v = vld1_u8(b), m = vdup_n_u8(15);
  uint8x8x2_t z = vzip_u8(vand_u8(v, m), vshr_n_u8(v, 4)); /* lo0 hi0 lo1 hi1 ... */
  int8x8_t e = vdup_n_s8(8);
  int8x8_t q = vsub_s8(veor_s8(vreinterpret_s8_u8(z.val[0]), e), e);
  int16x8_t w = vmovl_s8(q);
  *lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
  *hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
}

/* int8/int4 rows: vmulq then vaddq per element, rows in order, as the
 * scalar kernel (bit-identical); the last columns go through it. */
static void add_rows_q_neon(float *h, const uint8_t *base, size_t stride, const uint8_t *scales,
                            const int32_t *rows, int count, int n, int bits) {
  for (int i = 0; i < count; i++) {
    const uint8_t *row = base + (size_t)rows[i] * stride;
    float32x4_t sc = vdupq_n_f32(es__ld_f32(scales + 4 * (size_t)rows[i]));
    int j = 0;
    for (; j + 8 <= n; j += 8) {
      float32x4_t lo, hi;
      if (bits == 8)
        q8x8(row, j, &lo, &hi);
      else
        q4x8(row, j, &lo, &hi);
      vst1q_f32(h + j, vaddq_f32(vld1q_f32(h + j), vmulq_f32(sc, lo)));
      vst1q_f32(h + j + 4, vaddq_f32(vld1q_f32(h + j + 4), vmulq_f32(sc, hi)));
    }
    if (j < n) { /* the tail of this row, scalar */
      float s1 = es__ld_f32(scales + 4 * (size_t)rows[i]);
      for (; j < n; j++) {
        int q = bits == 8 ? (int)(int8_t)row[j] : ((((row[j >> 1] >> ((j & 1) * 4)) & 15) ^ 8) - 8);
        h[j] += s1 * (float)q;
      }
    }
  }
}

static const es__kernels neon = {ES_SIMD_NEON,           add_rows_neon,   dot_rows_neon,
                                 es__add_rows_pq_scalar, add_rows_q_neon, NULL};

const es__kernels *es__kernels_neon(void) { return &neon; }
