/* test_kernels.c - every SIMD kernel gives the scalar kernel's bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernels.h"

static uint32_t seed = 99;
static float frand(void) {
  seed = seed * 1664525u + 1013904223u;
  return (float)(seed >> 8) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* The vector kernels available here (AVX2 on x86 with the CPU for it, NEON
 * on ARM); the test passes trivially only where there are none. */
static const es__kernels *vector_kernels(void) {
  const es__kernels *k = es__kernels_get(ES_SIMD_AVX2);
  return k ? k : es__kernels_get(ES_SIMD_NEON);
}

static void add_rows_matches_scalar_at_any_alignment_and_width(void **state) {
  (void)state;
  const es__kernels *v = vector_kernels(), *sc = es__kernels_scalar();
  if (!v) skip();
  int rows = 64;
  for (int n = 1; n <= 37; n += 3) {
    for (int misalign = 0; misalign < 4; misalign++) {
      uint8_t *raw = malloc((size_t)rows * n * 4 + 8);
      float tmp;
      for (int i = 0; i < rows * n; i++) {
        tmp = frand() * 100;
        memcpy(raw + misalign + 4 * i, &tmp, 4);
      }
      int32_t ids[37];
      for (int i = 0; i < 37; i++) ids[i] = (i * 7 + n) % rows;
      for (int count = 0; count <= 37; count += 5) {
        float a[64], b[64];
        for (int j = 0; j < n; j++) a[j] = b[j] = frand();
        sc->add_rows(a, raw + misalign, ids, count, n);
        v->add_rows(b, raw + misalign, ids, count, n);
        assert_memory_equal(a, b, (size_t)n * 4);
      }
      free(raw);
    }
  }
}

static void dot_rows_is_the_sequential_sum_per_row(void **state) {
  (void)state;
  const es__kernels *v = vector_kernels(), *sc = es__kernels_scalar();
  for (int n = 1; n <= 70; n += 7) {
    for (int64_t rows = 1; rows <= 19; rows += 3) {
      uint8_t *raw = malloc((size_t)rows * n * 4 + 3);
      for (int i = 0; i < rows * n; i++) {
        float f = frand();
        memcpy(raw + 3 + 4 * i, &f, 4);
      }
      float x[70], a[19], b[19], ref[19];
      for (int j = 0; j < n; j++) x[j] = frand();
      for (int64_t r = 0; r < rows; r++) ref[r] = es__dot_row(raw + 3 + (size_t)r * n * 4, x, n);
      sc->dot_rows(raw + 3, rows, n, x, a);
      assert_memory_equal(a, ref, (size_t)rows * 4);
      if (v) {
        v->dot_rows(raw + 3, rows, n, x, b);
        assert_memory_equal(b, ref, (size_t)rows * 4);
      }
      free(raw);
    }
  }
}

/* The vector PQ kernels against the scalar one, bit for bit: add_rows_pq
 * for every dsub, and add_rows_pq2 (dsub 2, through the pair table) where
 * the level has it; dims with odd and even sub-quantizer counts, batches
 * shorter and longer than the 32 rows predict.c sums at once. */
static void pq_rows_match_scalar_for_every_dsub(void **state) {
  (void)state;
  const es__kernels *v = vector_kernels(), *sc = es__kernels_scalar();
  if (!v) skip();
  for (int dim = 3; dim <= 133; dim += 10) {
    for (int dsub = 1; dsub <= 4; dsub++) {
      int nsubq = (dim + dsub - 1) / dsub, lastdsub = dim % dsub ? dim % dsub : dsub;
      int rows = 40;
      uint8_t *cent = malloc((size_t)dim * 256 * 4 + 1), *codes = malloc((size_t)rows * nsubq);
      for (int i = 0; i < dim * 256; i++) {
        float f = frand();
        memcpy(cent + 1 + 4 * i, &f, 4);
      }
      for (int i = 0; i < rows * nsubq; i++) codes[i] = (uint8_t)(frand() * 1000);
      es__pqrows pq = {codes, cent + 1, nsubq, dsub, lastdsub};
      size_t bytes = 0;
      uint8_t *pairs =
          dsub == 2 && v->add_rows_pq2 ? es__pq_pairs_new(cent + 1, nsubq, lastdsub, &bytes) : NULL;
      es__pq2rows pq2 = {codes, pairs, nsubq, lastdsub};
      int32_t ids[37];
      float norms[37];
      for (int i = 0; i < 37; i++) ids[i] = (i * 13) % rows, norms[i] = frand() + 1.5f;
      for (int count = 11; count <= 37; count += 26) {
        for (int withnorm = 0; withnorm < 2; withnorm++) {
          float a[140], b[140], c[140];
          for (int j = 0; j < dim; j++) a[j] = b[j] = c[j] = frand();
          sc->add_rows_pq(a, &pq, ids, withnorm ? norms : NULL, count);
          v->add_rows_pq(b, &pq, ids, withnorm ? norms : NULL, count);
          assert_memory_equal(a, b, (size_t)dim * 4);
          if (pairs) {
            v->add_rows_pq2(c, &pq2, ids, withnorm ? norms : NULL, count);
            assert_memory_equal(a, c, (size_t)dim * 4);
          }
        }
      }
      free(pairs);
      free(cent);
      free(codes);
    }
  }
}

static void auto_picks_an_available_level(void **state) {
  (void)state;
  const es__kernels *k = es__kernels_get(ES_SIMD_AUTO);
  assert_non_null(k);
  assert_int_equal(k->level, es_simd_best());
  assert_string_equal(es_simd_name(ES_SIMD_SCALAR), "scalar");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(add_rows_matches_scalar_at_any_alignment_and_width),
      cmocka_unit_test(dot_rows_is_the_sequential_sum_per_row),
      cmocka_unit_test(pq_rows_match_scalar_for_every_dsub),
      cmocka_unit_test(auto_picks_an_available_level),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
