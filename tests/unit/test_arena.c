/* test_arena.c - request arenas: bump allocation, growth, reset, mark / rewind, strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edgeserve/arena.h"

#include "poison.h" /* ES__ASAN: built with AddressSanitizer */

static es_arena_t *new_arena(size_t first, size_t max, size_t keep) {
  es_arena_params_t p = {first, max, keep};
  es_arena_t *a = es_arena_new(&p);
  assert_non_null(a);
  return a;
}

static es_arena_stats_t stats(const es_arena_t *a) {
  es_arena_stats_t s;
  es_arena_stats(a, &s);
  return s;
}

static void allocations_are_aligned_and_do_not_overlap(void **state) {
  (void)state;
  es_arena_t *a = es_arena_new(NULL);
  unsigned char *p[200];
  size_t n[200];
  for (int i = 0; i < 200; i++) {
    n[i] = 1 + (size_t)(i * 37) % 300;
    p[i] = es_arena_alloc(a, n[i]);
    assert_non_null(p[i]);
    assert_int_equal((uintptr_t)p[i] % _Alignof(max_align_t), 0);
    memset(p[i], i, n[i]);
  }
  for (int i = 0; i < 200; i++)
    for (size_t k = 0; k < n[i]; k++) assert_int_equal(p[i][k], (unsigned char)i);
  assert_int_equal(stats(a).allocs, 200);
  es_arena_free(a);
}

static void aligned_alloc_honours_large_alignments(void **state) {
  (void)state;
  es_arena_t *a = new_arena(256, 1024, 0);
  size_t aligns[] = {1, 2, 8, 64, 512, 4096, 8192};
  for (int r = 0; r < 3; r++)
    for (int i = 0; i < 7; i++) {
      unsigned char *p = es_arena_alloc_aligned(a, 3, aligns[i]);
      assert_non_null(p);
      assert_int_equal((uintptr_t)p % aligns[i], 0);
      memset(p, 1, 3);
    }
  es_arena_free(a);
}

static void chunks_grow_by_doubling_up_to_max_chunk(void **state) {
  (void)state;
  es_arena_t *a = new_arena(1024, 4096, 0);
  es_arena_stats_t s = stats(a);
  assert_int_equal(s.chunks, 1);
  assert_int_equal(s.held, 1024);
  for (int i = 0; i < 64; i++) assert_non_null(es_arena_alloc(a, 256)); /* 16 KiB */
  s = stats(a);
  /* 1024 + 2048 + 4096 + 4096 + 4096 + 4096 >= 16 KiB */
  assert_int_equal(s.chunks, 6);
  assert_int_equal(s.held, 1024 + 2048 + 4 * 4096);
  assert_int_equal(s.used, 64 * 256);
  es_arena_free(a);
}

static void oversized_request_gets_a_chunk_of_its_own(void **state) {
  (void)state;
  es_arena_t *a = new_arena(1024, 4096, 0);
  unsigned char *big = es_arena_alloc(a, 100000);
  assert_non_null(big);
  memset(big, 7, 100000);
  es_arena_stats_t s = stats(a);
  assert_int_equal(s.chunks, 2);
  assert_int_equal(s.held, 1024 + 100000);
  /* the next ordinary chunk still doubles from the last ordinary one */
  assert_non_null(es_arena_alloc(a, 8));
  assert_int_equal(stats(a).chunks, 3);
  assert_int_equal(stats(a).held, 1024 + 100000 + 2048);
  es_arena_free(a);
}

static void impossible_sizes_return_null_and_leave_the_arena_usable(void **state) {
  (void)state;
  es_arena_t *a = es_arena_new(NULL);
  void *p = es_arena_alloc(a, 16);
  assert_null(es_arena_alloc(a, SIZE_MAX));
  assert_null(es_arena_alloc(a, SIZE_MAX - 64));
  assert_null(es_arena_alloc_aligned(a, SIZE_MAX - 5000, 4096));
  void *q = es_arena_alloc(a, 16);
  assert_non_null(q);
  assert_true((char *)q > (char *)p);
  assert_non_null(es_arena_alloc(a, 0)); /* zero bytes: a valid pointer */
  es_arena_free(a);
}

static void reset_keeps_the_first_chunk_and_reuses_it(void **state) {
  (void)state;
  es_arena_t *a = new_arena(4096, 4096, 0);
  void *first = es_arena_alloc(a, 100);
  for (int i = 0; i < 10; i++) es_arena_alloc(a, 1000);
  assert_true(stats(a).chunks > 1);
  es_arena_reset(a);
  es_arena_stats_t s = stats(a);
  assert_int_equal(s.chunks, 1); /* keep_bytes 0: the others are freed */
  assert_int_equal(s.held, 4096);
  assert_int_equal(s.used, 0);
  assert_int_equal(s.resets, 1);
  assert_ptr_equal(es_arena_alloc(a, 100), first);
  es_arena_free(a);
}

static void reset_keeps_chunks_within_keep_bytes_for_the_next_request(void **state) {
  (void)state;
  es_arena_t *a = new_arena(1024, 4096, 2048 + 4096);
  for (int req = 0; req < 5; req++) {
    for (int i = 0; i < 20; i++) assert_non_null(es_arena_alloc(a, 300)); /* ~6 KiB */
    es_arena_stats_t s = stats(a);
    assert_int_equal(s.chunks, 3); /* 1024 + 2048 + 4096: after the first request, no malloc */
    assert_int_equal(s.held_high, 1024 + 2048 + 4096);
    es_arena_reset(a);
  }
  /* a bigger request grows past keep_bytes; reset trims back to it */
  for (int i = 0; i < 60; i++) assert_non_null(es_arena_alloc(a, 300));
  assert_int_equal(stats(a).chunks, 6);
  es_arena_reset(a);
  assert_int_equal(stats(a).chunks, 3);
  assert_int_equal(stats(a).held, 1024 + 2048 + 4096);
  es_arena_free(a);
}

static void strdup_and_strndup_copy_and_terminate(void **state) {
  (void)state;
  es_arena_t *a = new_arena(64, 64, 0);
  char *s = es_arena_strdup(a, "__label__positive");
  assert_string_equal(s, "__label__positive");
  char *t = es_arena_strndup(a, "hello world", 5);
  assert_string_equal(t, "hello");
  char *u = es_arena_strndup(a, "ab\0cd", 5); /* stops at the NUL */
  assert_string_equal(u, "ab");
  char *e = es_arena_strdup(a, "");
  assert_string_equal(e, "");
  /* strings are packed: no max_align_t padding between them */
  char *v = es_arena_strdup(a, "x");
  char *w = es_arena_strdup(a, "y");
  assert_ptr_equal(w, v + 2);
  char longer[300];
  memset(longer, 'z', 299);
  longer[299] = '\0';
  char *l = es_arena_strdup(a, longer); /* bigger than a chunk */
  assert_string_equal(l, longer);
  assert_string_equal(s, "__label__positive"); /* earlier copies intact */
  es_arena_free(a);
}

static void rewind_frees_what_came_after_the_mark(void **state) {
  (void)state;
  es_arena_t *a = es_arena_new(NULL);
  char *keep = es_arena_strdup(a, "keep");
  es_arena_mark_t m = es_arena_mark(a);
  uint64_t used = stats(a).used;
  void *tmp = es_arena_alloc(a, 500);
  es_arena_alloc(a, 500);
  es_arena_rewind(a, m);
  assert_int_equal(stats(a).used, used);
  assert_ptr_equal(es_arena_alloc(a, 500), tmp); /* the space is reused */
  assert_string_equal(keep, "keep");
  es_arena_free(a);
}

static void rewind_across_chunks_keeps_them_for_reuse(void **state) {
  (void)state;
  es_arena_t *a = new_arena(1024, 2048, 0);
  es_arena_alloc(a, 512);
  es_arena_mark_t m = es_arena_mark(a);
  for (int i = 0; i < 8; i++) es_arena_alloc(a, 1000);
  uint64_t chunks = stats(a).chunks;
  assert_true(chunks > 2);
  es_arena_rewind(a, m);
  assert_int_equal(stats(a).used, 512);
  assert_int_equal(stats(a).chunks, chunks);
  for (int i = 0; i < 8; i++) es_arena_alloc(a, 1000);
  assert_int_equal(stats(a).chunks, chunks); /* the same chunks, no new malloc */
  /* nested marks */
  es_arena_mark_t m1 = es_arena_mark(a);
  es_arena_alloc(a, 10);
  es_arena_mark_t m2 = es_arena_mark(a);
  es_arena_alloc(a, 10);
  es_arena_rewind(a, m2);
  es_arena_rewind(a, m1);
  es_arena_rewind(a, m);
  assert_int_equal(stats(a).used, 512);
  es_arena_free(a);
}

static void stats_track_high_water_across_resets(void **state) {
  (void)state;
  es_arena_t *a = new_arena(4096, 4096, 0);
  es_arena_alloc(a, 3000);
  es_arena_reset(a);
  es_arena_alloc(a, 1000);
  es_arena_stats_t s = stats(a);
  assert_int_equal(s.used, 1000);
  assert_int_equal(s.used_high, 3000);
  es_arena_alloc(a, 4000); /* does not fit behind the 1000: a second chunk */
  es_arena_reset(a);
  s = stats(a);
  assert_int_equal(s.used, 0);
  assert_int_equal(s.used_high, 1000 + 4000); /* the first chunk's unused tail is not counted */
  assert_int_equal(s.held_high, 4096 + 4096);
  assert_int_equal(s.held, 4096);
  es_arena_free(a);
}

static void released_memory_is_poisoned_or_filled(void **state) {
  (void)state;
#if defined(ES__ASAN)
  es_arena_t *a = es_arena_new(NULL);
  unsigned char *p = es_arena_alloc(a, 64);
  assert_false(__asan_address_is_poisoned(p + 63));
  assert_true(__asan_address_is_poisoned(p + 64)); /* the untouched rest of the chunk */
  es_arena_mark_t m = es_arena_mark(a);
  unsigned char *q = es_arena_alloc(a, 32);
  es_arena_rewind(a, m);
  assert_true(__asan_address_is_poisoned(q));
  es_arena_reset(a);
  assert_true(__asan_address_is_poisoned(p));
  es_arena_free(a);
#elif !defined(NDEBUG)
  es_arena_t *a = es_arena_new(NULL);
  unsigned char *p = es_arena_alloc(a, 64);
  memset(p, 0, 64);
  es_arena_reset(a);
  for (int i = 0; i < 64; i++) assert_int_equal(p[i], 0xDD); /* first chunk is kept: readable */
  es_arena_free(a);
#else
  skip();
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(allocations_are_aligned_and_do_not_overlap),
      cmocka_unit_test(aligned_alloc_honours_large_alignments),
      cmocka_unit_test(chunks_grow_by_doubling_up_to_max_chunk),
      cmocka_unit_test(oversized_request_gets_a_chunk_of_its_own),
      cmocka_unit_test(impossible_sizes_return_null_and_leave_the_arena_usable),
      cmocka_unit_test(reset_keeps_the_first_chunk_and_reuses_it),
      cmocka_unit_test(reset_keeps_chunks_within_keep_bytes_for_the_next_request),
      cmocka_unit_test(strdup_and_strndup_copy_and_terminate),
      cmocka_unit_test(rewind_frees_what_came_after_the_mark),
      cmocka_unit_test(rewind_across_chunks_keeps_them_for_reuse),
      cmocka_unit_test(stats_track_high_water_across_resets),
      cmocka_unit_test(released_memory_is_poisoned_or_filled),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
