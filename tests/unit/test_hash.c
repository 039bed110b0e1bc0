/* test_hash.c - fastText's FNV-1a variant and word n-gram mixing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hash.h"

static void ascii_matches_plain_fnv1a(void **state) {
  (void)state;
  assert_int_equal(es__hash("", 0), 2166136261u);
  assert_int_equal(es__hash("a", 1), 0xe40c292cu); /* FNV-1a("a") */
}

static void high_bytes_are_sign_extended(void **state) {
  (void)state;
  assert_int_equal(es__hash("\xc3\xa9", 2), 1023043777u); /* "é", plain FNV-1a: 513665217 */
}

static void bigram_bucket_matches_fasttext(void **state) {
  (void)state;
  int32_t h1 = (int32_t)es__hash("hello", 5), h2 = (int32_t)es__hash("world", 5);
  uint64_t h = es__ngram_step((uint64_t)(int64_t)h1, h2);
  assert_int_equal(h % 2000000, 1485020);
}

static void incremental_hash_equals_whole(void **state) {
  (void)state;
  const char *s = "caffè latte";
  uint32_t h = es__fnv_continue(ES__FNV_INIT, s, 4);
  h = es__fnv_continue(h, s + 4, strlen(s) - 4);
  assert_int_equal(h, es__hash(s, strlen(s)));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ascii_matches_plain_fnv1a),
      cmocka_unit_test(high_bytes_are_sign_extended),
      cmocka_unit_test(bigram_bucket_matches_fasttext),
      cmocka_unit_test(incremental_hash_equals_whole),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
