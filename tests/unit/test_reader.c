/* test_reader.c - the bounds-checked cursor the model loader reads through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "reader.h"

static void reads_little_endian_fields_at_any_alignment(void **state) {
  (void)state;
  uint8_t buf[32] = {0xAA, 0x78, 0x56, 0x34, 0x12, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x80};
  es__reader r;
  es__reader_init(&r, buf, sizeof buf, NULL);
  uint8_t u;
  int32_t i32;
  int64_t i64;
  assert_int_equal(es__read_u8(&r, &u, "u8"), 0);
  assert_int_equal(u, 0xAA);
  assert_int_equal(es__read_i32(&r, &i32, "i32"), 0); /* at offset 1: unaligned */
  assert_int_equal(i32, 0x12345678);
  assert_int_equal(es__read_i64(&r, &i64, "i64"), 0);
  assert_int_equal(i64, 1);
  assert_int_equal(r.pos, 13);
}

static void truncation_reports_field_and_offset(void **state) {
  (void)state;
  uint8_t buf[6] = {0};
  es_error_t err = {0};
  es__reader r;
  es__reader_init(&r, buf, sizeof buf, &err);
  int32_t v;
  int64_t w;
  assert_int_equal(es__read_i32(&r, &v, "magic"), 0);
  assert_int_equal(es__read_i64(&r, &w, "ntokens"), ES_EFORMAT);
  assert_int_equal(err.code, ES_EFORMAT);
  assert_int_equal(err.offset, 4);
  assert_non_null(strstr(err.msg, "ntokens"));
  assert_non_null(strstr(err.msg, "byte 4"));
}

static void first_error_sticks(void **state) {
  (void)state;
  uint8_t buf[2] = {0};
  es_error_t err = {0};
  es__reader r;
  es__reader_init(&r, buf, sizeof buf, &err);
  int32_t v;
  assert_int_equal(es__read_i32(&r, &v, "first"), ES_EFORMAT);
  uint8_t u;
  assert_int_equal(es__read_u8(&r, &u, "second"), ES_EFORMAT); /* even though 2 bytes remain */
  assert_non_null(strstr(err.msg, "first"));
}

static void unterminated_string_is_an_error(void **state) {
  (void)state;
  const char buf[] = {'a', 'b', 0, 'c', 'd'};
  es_error_t err = {0};
  es__reader r;
  es__reader_init(&r, buf, sizeof buf, &err);
  const char *s;
  size_t len;
  assert_int_equal(es__read_cstr(&r, &s, &len, "word"), 0);
  assert_int_equal(len, 2);
  assert_memory_equal(s, "ab", 2);
  assert_int_equal(es__read_cstr(&r, &s, &len, "word"), ES_EFORMAT);
  assert_int_equal(err.offset, 3);
  assert_non_null(strstr(err.msg, "NUL"));
}

static void span_larger_than_file_fails_without_overflow(void **state) {
  (void)state;
  uint8_t buf[8] = {0};
  es__reader r;
  es__reader_init(&r, buf, sizeof buf, NULL);
  const uint8_t *p;
  assert_int_equal(es__read_span(&r, UINT64_MAX, &p, "matrix"), ES_EFORMAT);
  es__reader_init(&r, buf, sizeof buf, NULL);
  assert_int_equal(es__read_span(&r, 8, &p, "matrix"), 0);
  assert_ptr_equal(p, buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_little_endian_fields_at_any_alignment),
      cmocka_unit_test(truncation_reports_field_and_offset),
      cmocka_unit_test(first_error_sticks),
      cmocka_unit_test(unterminated_string_is_an_error),
      cmocka_unit_test(span_larger_than_file_fails_without_overflow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
