/* test_affinity.c - cpu lists ("0-3,6") and pinning the calling thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "edgeserve/affinity.h"

static void parse_then_format_gives_the_canonical_list(void **state) {
  (void)state;
  struct {
    const char *in, *out;
    int count;
  } cases[] = {
      {"0-3,6", "0-3,6", 5}, {"6, 0-1,2 ,3\n", "0-3,6", 5},
      {"5", "5", 1},         {"1,3,5", "1,3,5", 3},
      {"0-0", "0", 1},       {"2-4,3-7,9-10", "2-7,9-10", 8},
      {"4095", "4095", 1},   {"", "", 0},
      {"  \n", "", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    es_cpuset_t s;
    char buf[64];
    assert_int_equal(es_cpuset_parse(&s, cases[i].in, NULL), 0);
    assert_int_equal(es_cpuset_count(&s), cases[i].count);
    assert_int_equal(es_cpuset_format(&s, buf, sizeof buf), 0);
    assert_string_equal(buf, cases[i].out);
    es_cpuset_t again; /* and the canonical text parses back to the same set */
    assert_int_equal(es_cpuset_parse(&again, buf, NULL), 0);
    assert_memory_equal(&again, &s, sizeof s);
  }
}

static void membership_count_and_nth_agree(void **state) {
  (void)state;
  es_cpuset_t s;
  assert_int_equal(es_cpuset_parse(&s, "1,3,64-65,4000", NULL), 0);
  assert_int_equal(es_cpuset_count(&s), 5);
  assert_true(es_cpuset_has(&s, 3));
  assert_false(es_cpuset_has(&s, 2));
  assert_true(es_cpuset_has(&s, 4000));
  assert_false(es_cpuset_has(&s, -1));
  assert_false(es_cpuset_has(&s, ES_CPUSET_MAX));
  int want[] = {1, 3, 64, 65, 4000};
  for (int i = 0; i < 5; i++) assert_int_equal(es_cpuset_nth(&s, i), want[i]);
  assert_int_equal(es_cpuset_nth(&s, 5), -1);
  assert_int_equal(es_cpuset_nth(&s, -1), -1);
  assert_int_equal(es_cpuset_add(&s, ES_CPUSET_MAX), ES_ERANGE);
  assert_int_equal(es_cpuset_add(&s, -3), ES_ERANGE);
  assert_int_equal(es_cpuset_count(&s), 5);
  es_cpuset_clear(&s);
  assert_int_equal(es_cpuset_count(&s), 0);
}

static void malformed_lists_are_rejected_with_their_position(void **state) {
  (void)state;
  struct {
    const char *in;
    int code;
    int64_t offset;
  } cases[] = {
      {"a", ES_EINVAL, 0},       {"1-", ES_EINVAL, 2},    {"3-1", ES_EINVAL, 2},
      {"1,,2", ES_EINVAL, 2},    {"1 2", ES_EINVAL, 2},   {"-1", ES_EINVAL, 0},
      {"1,", ES_EINVAL, 2},      {"0-3:2", ES_EINVAL, 3}, {"5000", ES_ERANGE, 0},
      {"0-99999", ES_ERANGE, 2},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    es_cpuset_t s;
    es_error_t err = {0};
    es_cpuset_clear(&s);
    es_cpuset_add(&s, 1); /* a failed parse must leave the set empty */
    assert_int_equal(es_cpuset_parse(&s, cases[i].in, &err), cases[i].code);
    assert_int_equal(err.code, cases[i].code);
    assert_int_equal(err.offset, cases[i].offset);
    assert_non_null(strstr(err.msg, cases[i].in));
    assert_int_equal(es_cpuset_count(&s), 0);
  }
  es_cpuset_t s;
  assert_int_equal(es_cpuset_parse(&s, NULL, NULL), ES_EINVAL);
}

static void format_into_a_small_buffer_keeps_whole_items(void **state) {
  (void)state;
  es_cpuset_t s;
  char buf[8];
  assert_int_equal(es_cpuset_parse(&s, "0-3,6,10-12", NULL), 0);
  assert_int_equal(es_cpuset_format(&s, buf, sizeof buf), ES_ERANGE);
  assert_string_equal(buf, "0-3,6");
  assert_int_equal(es_cpuset_format(&s, buf, 0), ES_EINVAL);
}

static void pinning_to_the_allowed_cpus_succeeds_and_runs_there(void **state) {
  (void)state;
  es_cpuset_t before, now;
  assert_int_equal(es_affinity_get(&before, NULL), 0);
  assert_true(es_cpuset_count(&before) >= 1);

  assert_int_equal(es_affinity_pin_thread(&before, NULL), 0);
  int cpu = es_affinity_current_cpu();
  assert_true(cpu >= 0);
  assert_true(es_cpuset_has(&before, cpu));

  /* one cpu: the kernel moves the thread there before the call returns */
  es_cpuset_t one;
  es_cpuset_clear(&one);
  int last = es_cpuset_nth(&before, es_cpuset_count(&before) - 1);
  es_cpuset_add(&one, last);
  assert_int_equal(es_affinity_pin_thread(&one, NULL), 0);
  assert_int_equal(es_affinity_current_cpu(), last);
  assert_int_equal(es_affinity_get(&now, NULL), 0);
  assert_memory_equal(&now, &one, sizeof one);

  assert_int_equal(es_affinity_pin_thread(&before, NULL), 0); /* restore */
  assert_int_equal(es_affinity_get(&now, NULL), 0);
  assert_memory_equal(&now, &before, sizeof before);
}

static void pinning_to_an_impossible_cpu_says_why_and_changes_nothing(void **state) {
  (void)state;
  es_cpuset_t before, after, bad;
  assert_int_equal(es_affinity_get(&before, NULL), 0);
  assert_int_equal(es_cpuset_parse(&bad, "4000", NULL), 0);
  es_error_t err = {0};
  assert_int_equal(es_affinity_pin_thread(&bad, &err), ES_EINVAL);
  assert_int_equal(err.code, ES_EINVAL);
  /* the reason names the cpus asked for and the ones that are allowed */
  char allowed[64];
  assert_int_equal(es_cpuset_format(&before, allowed, sizeof allowed), 0);
  assert_non_null(strstr(err.msg, "4000"));
  assert_non_null(strstr(err.msg, "allowed"));
  assert_non_null(strstr(err.msg, allowed));
  assert_int_equal(es_affinity_get(&after, NULL), 0);
  assert_memory_equal(&after, &before, sizeof before);
}

static void pinning_to_an_empty_set_is_invalid(void **state) {
  (void)state;
  es_cpuset_t none;
  es_cpuset_clear(&none);
  es_error_t err = {0};
  assert_int_equal(es_affinity_pin_thread(&none, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "empty"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parse_then_format_gives_the_canonical_list),
      cmocka_unit_test(membership_count_and_nth_agree),
      cmocka_unit_test(malformed_lists_are_rejected_with_their_position),
      cmocka_unit_test(format_into_a_small_buffer_keeps_whole_items),
      cmocka_unit_test(pinning_to_the_allowed_cpus_succeeds_and_runs_there),
      cmocka_unit_test(pinning_to_an_impossible_cpu_says_why_and_changes_nothing),
      cmocka_unit_test(pinning_to_an_empty_set_is_invalid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
