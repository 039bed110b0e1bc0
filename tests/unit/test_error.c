/* test_error.c - every error code has its own readable text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "edgeserve/error.h"

static void every_code_has_a_distinct_text(void **state) {
  (void)state;
  int codes[] = {ES_OK,        ES_ENOMEM, ES_EIO,          ES_EFORMAT,    ES_EVERSION,
                 ES_EINVAL,    ES_ERANGE, ES_EUNSUPPORTED, ES_EMULTILINE, ES_ECANCELED,
                 ES_ETIMEDOUT, ES_EFULL,  ES_EBUDGET,      ES_ESTATE};
  size_t n = sizeof codes / sizeof *codes;
  for (size_t i = 0; i < n; i++) {
    const char *t = es_strerror(codes[i]);
    assert_non_null(t);
    assert_true(strlen(t) > 3);
    assert_string_not_equal(t, "unknown error");
    for (size_t j = 0; j < i; j++) assert_string_not_equal(t, es_strerror(codes[j]));
  }
}

static void unknown_codes_are_named_as_such(void **state) {
  (void)state;
  assert_string_equal(es_strerror(-1000), "unknown error");
  assert_string_equal(es_strerror(42), "unknown error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_code_has_a_distinct_text),
      cmocka_unit_test(unknown_codes_are_named_as_such),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
