/* test_topk.c - fastText's top-k heap (libstdc++'s heap algorithms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "topk.h"

/* fastText's findKBest + sort_heap over scores[0..n). */
static long topk(const float *scores, int n, long k, es__pair *heap) {
  long len = 0;
  for (int i = 0; i < n; i++) {
    if (len == k && scores[i] < heap[0].score) continue;
    heap[len] = (es__pair){scores[i], i};
    es__heap_push(heap, ++len);
    if (len > k) es__heap_pop(heap, len--);
  }
  es__heap_sort(heap, len);
  return len;
}

static void returns_the_k_largest_in_descending_order(void **state) {
  (void)state;
  float s[200];
  srand(7);
  for (int i = 0; i < 200; i++) s[i] = (float)(rand() % 100000) / 1000.0f;
  for (long k = 1; k <= 200; k += 13) {
    es__pair heap[201];
    long n = topk(s, 200, k, heap);
    assert_int_equal(n, k);
    for (long i = 1; i < n; i++) assert_true(heap[i - 1].score >= heap[i].score);
    /* nothing left out is larger than the smallest kept */
    int larger = 0;
    for (int i = 0; i < 200; i++) larger += s[i] > heap[n - 1].score;
    assert_true(larger <= k);
  }
}

static void ties_come_out_in_libstdcxx_order(void **state) {
  (void)state;
  /* Expected orders produced by std::push_heap/pop_heap/sort_heap of
   * libstdc++ (g++ 12) with fastText's comparator on the same inputs. */
  float s[5] = {1, 1, 1, 1, 1};
  es__pair heap[8];
  long n = topk(s, 5, 5, heap);
  assert_int_equal(n, 5);
  int want[5] = {3, 1, 4, 2, 0};
  for (int i = 0; i < 5; i++) assert_int_equal(heap[i].id, want[i]);
  float t[7] = {0.5f, 0.9f, 0.5f, 0.5f, 0.2f, 0.9f, 0.5f};
  n = topk(t, 7, 3, heap);
  assert_int_equal(n, 3);
  int want2[3] = {1, 5, 6};
  for (int i = 0; i < 3; i++) assert_int_equal(heap[i].id, want2[i]);
}

static void full_heap_keeps_earlier_of_equal_scores(void **state) {
  (void)state;
  float s[4] = {0.5f, 0.9f, 0.5f, 0.5f};
  es__pair heap[5];
  long n = topk(s, 4, 2, heap);
  assert_int_equal(n, 2);
  assert_int_equal(heap[0].id, 1);
  assert_true(heap[1].score == 0.5f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(returns_the_k_largest_in_descending_order),
      cmocka_unit_test(ties_come_out_in_libstdcxx_order),
      cmocka_unit_test(full_heap_keeps_earlier_of_equal_scores),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
