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

static const es__kernels neon = {ES_SIMD_NEON, add_rows_neon, dot_rows_neon, es__add_rows_pq_scalar,
                                 es__add_rows_q_scalar};

const es__kernels *es__kernels_neon(void) { return &neon; }
