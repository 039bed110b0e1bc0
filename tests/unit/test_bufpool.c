/* test_bufpool.c - size-classed buffers: classes, headers, malloc fallback, byte limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "edgeserve/bufpool.h"

#include "poison.h" /* ES__ASAN: built with AddressSanitizer */

static es_bufpool_t *new_bufpool(uint64_t limit) {
  es_bufpool_params_t bp = es_bufpool_default_params();
  bp.byte_limit = limit;
  bp.idle_trim_sec = 3600; /* trims in these tests are explicit */
  es_bufpool_t *p = es_bufpool_new(&bp, NULL);
  assert_non_null(p);
  return p;
}

static es_bufpool_stats_t stats(es_bufpool_t *bp) {
  es_bufpool_stats_t s;
  es_bufpool_stats(bp, &s);
  return s;
}

static void default_classes_run_from_64_bytes_to_256_kib_in_quarter_steps(void **state) {
  (void)state;
  es_bufpool_t *bp = new_bufpool(0);
  assert_int_equal(es_bufpool_classes(bp), 49);
  size_t want[] = {64, 80, 96, 112, 128, 160, 192, 224, 256, 320};
  for (unsigned i = 0; i < 10; i++) {
    size_t size;
    assert_int_equal(es_bufpool_class_stats(bp, i, &size, NULL), 0);
    assert_int_equal(size, want[i]);
  }
  size_t prev = 0, size;
  for (unsigned i = 0; i < 49; i++) {
    es_bufpool_class_stats(bp, i, &size, NULL);
    assert_true(size > prev);
    prev = size;
  }
  assert_int_equal(prev, 256 * 1024);
  assert_int_equal(es_bufpool_class_stats(bp, 49, &size, NULL), ES_ERANGE);
  es_bufpool_free(bp);
}

static void classes_follow_steps_and_round_to_the_header(void **state) {
  (void)state;
  es_bufpool_params_t p = es_bufpool_default_params();
  p.min_size = 1;
  p.max_size = 1000;
  p.steps = 1;
  es_bufpool_t *bp = es_bufpool_new(&p, NULL);
  size_t want[] = {16, 32, 64, 128, 256, 512, 1024};
  assert_int_equal(es_bufpool_classes(bp), 7);
  for (unsigned i = 0; i < 7; i++) {
    size_t size;
    es_bufpool_class_stats(bp, i, &size, NULL);
    assert_int_equal(size, want[i]);
  }
  es_bufpool_free(bp);
}

static void new_rejects_invalid_parameters(void **state) {
  (void)state;
  es_error_t err;
  es_bufpool_params_t p = es_bufpool_default_params();
  p.steps = 0;
  assert_null(es_bufpool_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  p = es_bufpool_default_params();
  p.max_size = 32;
  assert_null(es_bufpool_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  p = es_bufpool_default_params();
  p.max_size = (size_t)2 << 30;
  assert_null(es_bufpool_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  p = es_bufpool_default_params();
  p.max_size = (size_t)1 << 30;
  p.steps = 16; /* 64 B .. 1 GiB at 16 per octave: more than 256 classes */
  assert_null(es_bufpool_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
}

static void get_rounds_up_to_the_class_and_reports_its_size(void **state) {
  (void)state;
  es_bufpool_t *bp = new_bufpool(0);
  size_t ask[] = {0, 1, 64, 65, 100, 4096, 4097, 200000, 262144};
  size_t want[] = {64, 64, 64, 80, 112, 4096, 5120, 229376, 262144};
  for (int i = 0; i < 9; i++) {
    size_t cap = 0;
    unsigned char *b = es_buf_get(bp, ask[i], &cap);
    assert_non_null(b);
    assert_int_equal(cap, want[i]);
    assert_int_equal((uintptr_t)b % _Alignof(max_align_t), 0);
    memset(b, 0xab, cap); /* all of cap is usable (ASan checks) */
    es_buf_put(bp, b);
  }
  void *b = es_buf_get(bp, 10, NULL); /* cap may be NULL */
  assert_non_null(b);
  es_buf_put(bp, b);
  es_bufpool_free(bp);
}

static void every_size_gets_the_smallest_class_that_holds_it(void **state) {
  (void)state;
  es_bufpool_params_t p = es_bufpool_default_params();
  p.min_size = 40;
  p.max_size = 100000;
  p.steps = 3; /* not a power of two: the grid is uneven */
  es_bufpool_t *bp = es_bufpool_new(&p, NULL);
  unsigned n = es_bufpool_classes(bp);
  size_t sizes[256];
  for (unsigned i = 0; i < n; i++) es_bufpool_class_stats(bp, i, &sizes[i], NULL);
  unsigned c = 0;
  for (size_t size = 1; size <= sizes[n - 1]; size++) {
    while (sizes[c] < size) c++;
    /* every size up to 4 KiB, then those around each class boundary */
    int near = size == sizes[c] || size == sizes[c] - 1 || (c && size == sizes[c - 1] + 1);
    if (size > 4096 && !near) continue;
    size_t cap;
    void *b = es_buf_get(bp, size, &cap);
    assert_int_equal(cap, sizes[c]);
    es_buf_put(bp, b);
  }
  es_bufpool_free(bp);
}

static void put_finds_the_class_without_a_size(void **state) {
  (void)state;
  es_bufpool_t *bp = new_bufpool(0);
  void *a = es_buf_get(bp, 100, NULL);  /* class 3 (112) */
  void *b = es_buf_get(bp, 5000, NULL); /* 5120 */
  es_pool_stats_t s;
  es_bufpool_class_stats(bp, 3, NULL, &s);
  assert_int_equal(s.in_use, 1);
  es_buf_put(bp, a);
  es_buf_put(bp, b);
  es_buf_put(bp, NULL);
  es_bufpool_class_stats(bp, 3, NULL, &s);
  assert_int_equal(s.in_use, 0);
  assert_int_equal(s.puts, 1);
  /* the same buffer comes back for the next request of that class */
  assert_ptr_equal(es_buf_get(bp, 97, NULL), a);
  es_buf_put(bp, a);
  es_bufpool_stats_t t = stats(bp);
  assert_int_equal(t.total.gets, 3);
  assert_int_equal(t.total.puts, 3);
  assert_int_equal(t.total.misses, 2);
  assert_int_equal(t.total.hits, 1);
  assert_int_equal(t.total.in_use, 0);
  es_bufpool_free(bp);
}

static void sizes_above_the_largest_class_fall_back_to_malloc(void **state) {
  (void)state;
  es_bufpool_t *bp = new_bufpool(0);
  size_t cap;
  unsigned char *big = es_buf_get(bp, 300000, &cap);
  assert_non_null(big);
  assert_int_equal(cap, 300000);
  memset(big, 1, cap);
  es_bufpool_stats_t s = stats(bp);
  assert_int_equal(s.large_in_use, 1);
  assert_int_equal(s.large_bytes, 300000 + 16);
  assert_int_equal(s.total.misses, 1);
  assert_int_equal(s.total.bytes, 300000 + 16);
  assert_int_equal(s.total.chunks, 0);
  es_buf_put(bp, big);
  s = stats(bp);
  assert_int_equal(s.large_in_use, 0);
  assert_int_equal(s.large_bytes, 0);
  assert_int_equal(s.total.bytes, 0);
  assert_int_equal(s.total.bytes_high, 300000 + 16);
  es_bufpool_free(bp);
}

static void byte_limit_refuses_buffers_and_counts_refusals(void **state) {
  (void)state;
  /* 64 KiB buffers: one per chunk (64 KiB + 16 B header) */
  es_bufpool_t *bp = new_bufpool(3 * (65536 + 16));
  void *b[3];
  for (int i = 0; i < 3; i++) assert_non_null(b[i] = es_buf_get(bp, 65536, NULL));
  assert_null(es_buf_get(bp, 65536, NULL));
  assert_null(es_buf_get(bp, 1 << 20, NULL)); /* malloc'd ones are limited too */
  es_bufpool_stats_t s = stats(bp);
  assert_int_equal(s.total.refusals, 2);
  assert_int_equal(s.total.bytes, 3 * (65536 + 16));
  assert_int_equal(s.byte_limit, 3 * (65536 + 16));
  es_buf_put(bp, b[0]);
  void *again = es_buf_get(bp, 60000, NULL); /* same class: served from the freed buffer */
  assert_ptr_equal(again, b[0]);
  es_buf_put(bp, again);
  es_buf_put(bp, b[1]);
  es_buf_put(bp, b[2]);
  es_bufpool_free(bp);
}

static void refused_get_reclaims_free_chunks_of_other_classes(void **state) {
  (void)state;
  es_bufpool_t *bp = new_bufpool(100 * 1024);
  /* fill chunks of the 1 KiB class, then free them all */
  void *small[40];
  for (int i = 0; i < 40; i++) assert_non_null(small[i] = es_buf_get(bp, 1024, NULL));
  for (int i = 0; i < 40; i++) es_buf_put(bp, small[i]);
  es_bufpool_stats_t s = stats(bp);
  assert_true(s.total.bytes > 40 * 1024);
  uint64_t chunks = s.total.chunks;
  /* a 64 KiB buffer fits the limit only once those idle chunks are given back */
  void *big = es_buf_get(bp, 65536, NULL);
  assert_non_null(big);
  s = stats(bp);
  assert_int_equal(s.total.refusals, 0);
  assert_int_equal(s.total.trimmed, chunks);
  assert_int_equal(s.total.bytes, 65536 + 16);
  es_buf_put(bp, big);
  es_bufpool_free(bp);
}

static void limit_can_be_changed_at_run_time(void **state) {
  (void)state;
  es_bufpool_t *bp = new_bufpool(0);
  void *a = es_buf_get(bp, 65536, NULL);
  assert_non_null(a);
  es_bufpool_set_limit(bp, 65536); /* below what is held: nothing is freed */
  assert_int_equal(stats(bp).total.bytes, 65536 + 16);
  assert_null(es_buf_get(bp, 65536, NULL));
  es_bufpool_set_limit(bp, 0);
  void *b = es_buf_get(bp, 65536, NULL);
  assert_non_null(b);
  es_buf_put(bp, a);
  es_buf_put(bp, b);
  assert_int_equal(stats(bp).byte_limit, 0);
  es_bufpool_free(bp);
}

static void trim_gives_back_idle_chunks_of_every_class(void **state) {
  (void)state;
  es_bufpool_t *bp = new_bufpool(0);
  void *b[6];
  size_t sizes[] = {64, 700, 3000, 20000, 100000, 250000};
  for (int i = 0; i < 6; i++) b[i] = es_buf_get(bp, sizes[i], NULL);
  for (int i = 0; i < 6; i++) es_buf_put(bp, b[i]);
  es_bufpool_stats_t s = stats(bp);
  assert_int_equal(s.total.chunks, 6);
  assert_int_equal(es_bufpool_trim(bp), 0); /* not idle for an hour */
  assert_int_equal(es_bufpool_trim_idle(bp, 0), s.total.bytes);
  s = stats(bp);
  assert_int_equal(s.total.chunks, 0);
  assert_int_equal(s.total.bytes, 0);
  assert_int_equal(s.total.trimmed, 6);
  es_bufpool_free(bp);
}

static void put_buffer_is_poisoned_or_filled(void **state) {
  (void)state;
#if defined(ES__ASAN)
  es_bufpool_t *bp = new_bufpool(0);
  unsigned char *b = es_buf_get(bp, 200, NULL);
  assert_false(__asan_address_is_poisoned(b + 199));
  es_buf_put(bp, b);
  assert_true(__asan_address_is_poisoned(b));
  assert_true(__asan_address_is_poisoned(b - 16)); /* the header too */
  es_bufpool_free(bp);
#elif !defined(NDEBUG)
  es_bufpool_t *bp = new_bufpool(0);
  unsigned char *b = es_buf_get(bp, 200, NULL);
  memset(b, 0, 200);
  es_buf_put(bp, b);
  for (int i = -16; i < 200; i++) assert_int_equal(b[i], 0xDD);
  es_bufpool_free(bp);
#else
  skip();
#endif
}

typedef struct mix {
  es_bufpool_t *bp;
  pthread_mutex_t m;
  void *handoff[32];
  int n;
  unsigned seed;
} mix;

static void *mix_thread(void *arg) {
  mix *x = arg;
  pthread_mutex_lock(&x->m);
  unsigned seed = x->seed++;
  pthread_mutex_unlock(&x->m);
  for (int it = 0; it < 5000; it++) {
    seed = seed * 1103515245u + 12345u;
    unsigned r = seed >> 8;
    size_t size = (size_t)1 << (4 + r % 13); /* 16 B .. 64 KiB */
    size += r % size;
    size_t cap;
    unsigned char *b = es_buf_get(x->bp, size, &cap);
    assert_non_null(b);
    assert_true(cap >= size);
    b[0] = (unsigned char)it;
    b[size - 1] = (unsigned char)it;
    if (r % 5 == 0) { /* let another thread put it */
      pthread_mutex_lock(&x->m);
      if (x->n < 32) x->handoff[x->n++] = b, b = NULL;
      pthread_mutex_unlock(&x->m);
    }
    es_buf_put(x->bp, b);
    if (r % 3 == 0) {
      pthread_mutex_lock(&x->m);
      void *o = x->n ? x->handoff[--x->n] : NULL;
      pthread_mutex_unlock(&x->m);
      es_buf_put(x->bp, o);
    }
  }
  return NULL;
}

static void buffers_move_between_threads(void **state) {
  (void)state;
  mix x = {new_bufpool(0), PTHREAD_MUTEX_INITIALIZER, {0}, 0, 7};
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, mix_thread, &x);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  while (x.n) es_buf_put(x.bp, x.handoff[--x.n]);
  es_bufpool_stats_t s = stats(x.bp);
  assert_int_equal(s.total.gets, 4 * 5000);
  assert_int_equal(s.total.puts, 4 * 5000);
  assert_int_equal(s.total.in_use, 0);
  assert_int_equal(s.large_in_use, 0);
  es_bufpool_trim_idle(x.bp, 0);
  assert_int_equal(stats(x.bp).total.bytes, 0);
  es_bufpool_free(x.bp);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(default_classes_run_from_64_bytes_to_256_kib_in_quarter_steps),
      cmocka_unit_test(classes_follow_steps_and_round_to_the_header),
      cmocka_unit_test(new_rejects_invalid_parameters),
      cmocka_unit_test(get_rounds_up_to_the_class_and_reports_its_size),
      cmocka_unit_test(every_size_gets_the_smallest_class_that_holds_it),
      cmocka_unit_test(put_finds_the_class_without_a_size),
      cmocka_unit_test(sizes_above_the_largest_class_fall_back_to_malloc),
      cmocka_unit_test(byte_limit_refuses_buffers_and_counts_refusals),
      cmocka_unit_test(refused_get_reclaims_free_chunks_of_other_classes),
      cmocka_unit_test(limit_can_be_changed_at_run_time),
      cmocka_unit_test(trim_gives_back_idle_chunks_of_every_class),
      cmocka_unit_test(put_buffer_is_poisoned_or_filled),
      cmocka_unit_test(buffers_move_between_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
