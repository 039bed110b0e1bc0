/* test_config.c - the configuration: schema defaults, the INI file, the
 * environment and flags in order of precedence, the source of every value,
 * errors that name the key and where it came from, and value formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "edgeserve/config.h"

#define MIB (1024ll * 1024)

/* tests/fixtures/config, found from this file's path (CMake compiles it by
 * its absolute path; a direct build from the repository root gives a
 * relative one). Override with -DES_CONFIG_FIXTURES=... */
#ifndef ES_CONFIG_FIXTURES
#define ES_CONFIG_FIXTURES ""
#endif

static const char *fixture(const char *name) {
  static char path[1024];
  if (ES_CONFIG_FIXTURES[0]) {
    snprintf(path, sizeof path, "%s/%s", ES_CONFIG_FIXTURES, name);
    return path;
  }
  const char *file = __FILE__, *slash = strrchr(file, '/');
  int dirlen = slash ? (int)(slash - file) : 1;
  snprintf(path, sizeof path, "%.*s/../fixtures/config/%s", dirlen, slash ? file : ".", name);
  return path;
}

static const char *from(const es_config_t *cfg, const char *key) {
  static es_config_item_t it;
  assert_int_equal(es_config_lookup(cfg, key, &it), 0);
  return it.from;
}

/* Loads text as "edgeserve.ini" and expects failure rc with message msg. */
static void expect_load_error(const char *text, int rc, const char *msg) {
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_int_equal(es_config_load_string(cfg, text, "edgeserve.ini", &err), rc);
  assert_int_equal(err.code, rc);
  assert_string_equal(err.msg, msg);
  es_config_free(cfg);
}

/* ---- defaults and the schema ------------------------------------------------ */

static void defaults_come_from_the_schema_with_source_default(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  assert_non_null(cfg);
  assert_string_equal(es_config_get_str(cfg, "server.host"), "127.0.0.1");
  assert_int_equal(es_config_get_int(cfg, "server.port"), 8080);
  assert_int_equal(es_config_get_int(cfg, "batching.max_batch"), 32);
  assert_int_equal(es_config_get_int(cfg, "batching.max_delay"), 10000);
  assert_string_equal(es_config_get_str(cfg, "batching.max_delay"), "10ms");
  assert_int_equal(es_config_get_int(cfg, "runtime.pin"), 1);
  assert_string_equal(es_config_get_str(cfg, "runtime.strategy"), "auto");
  assert_int_equal(es_config_get_int(cfg, "runtime.strategy"), 0);
  assert_true(es_config_is_auto(cfg, "runtime.inference_threads"));
  assert_true(es_config_is_auto(cfg, "memory.budget"));
  assert_false(es_config_is_auto(cfg, "cache.entries"));
  assert_int_equal(es_config_source(cfg, "cache.entries"), ES_CFG_DEFAULT);
  assert_string_equal(from(cfg, "cache.entries"), "default");
  es_config_free(cfg);
}

static void every_key_lists_its_name_env_value_and_source(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  size_t n;
  const es_config_key_t *keys = es_config_keys(&n);
  assert_int_equal(es_config_count(cfg), n);
  assert_true(n >= 23);
  for (size_t i = 0; i < n; i++) {
    es_config_item_t it;
    es_config_item(cfg, i, &it);
    assert_ptr_equal(it.key, &keys[i]);
    char name[64], env[64];
    snprintf(name, sizeof name, "%s.%s", keys[i].section, keys[i].name);
    assert_string_equal(it.name, name);
    snprintf(env, sizeof env, "EDGESERVE_%s_%s", keys[i].section, keys[i].name);
    for (char *c = env; *c; c++)
      if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    assert_string_equal(it.env, env);
    assert_non_null(it.value);
    assert_string_equal(it.from, "default");
    assert_non_null(keys[i].help);
    assert_true(strlen(keys[i].help) > 10);
    /* every section has a key, every name is unique */
    for (size_t j = 0; j < i; j++)
      assert_false(!strcmp(keys[i].section, keys[j].section) &&
                   !strcmp(keys[i].name, keys[j].name));
  }
  es_config_free(cfg);
}

static void set_at_the_default_layer_is_refused(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_int_equal(es_config_set(cfg, "server.port", "1", ES_CFG_DEFAULT, NULL, &err), ES_EINVAL);
  assert_int_equal(es_config_get_int(cfg, "server.port"), 8080);
  es_config_free(cfg);
}

/* ---- the INI file ----------------------------------------------------------------- */

static void fixture_with_every_section_sets_every_key_from_its_line(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  const char *path = fixture("full.ini");
  assert_int_equal(es_config_load_file(cfg, path, &err), 0);
  assert_string_equal(es_config_get_str(cfg, "server.host"), "0.0.0.0");
  assert_int_equal(es_config_get_int(cfg, "server.port"), 9090);
  assert_string_equal(es_config_get_str(cfg, "server.models"), "/srv/edgeserve/models");
  assert_int_equal(es_config_get_int(cfg, "runtime.strategy"), 2);
  assert_string_equal(es_config_get_str(cfg, "runtime.strategy"), "memory_optimized");
  assert_int_equal(es_config_get_int(cfg, "runtime.inference_threads"), 3);
  assert_int_equal(es_config_get_int(cfg, "runtime.background_threads"), 1);
  es_cpuset_t s;
  assert_int_equal(es_config_get_cpuset(cfg, "runtime.inference_cpus", &s), 0);
  assert_int_equal(es_cpuset_count(&s), 3);
  assert_true(es_cpuset_has(&s, 1) && es_cpuset_has(&s, 3) && !es_cpuset_has(&s, 0));
  assert_string_equal(es_config_get_str(cfg, "runtime.background_cpus"), "0");
  assert_int_equal(es_config_get_int(cfg, "runtime.pin"), 1);
  assert_string_equal(es_config_get_str(cfg, "runtime.pin"), "true");
  assert_int_equal(es_config_get_int(cfg, "memory.budget"), 300 * MIB);
  assert_int_equal(es_config_get_int(cfg, "memory.os_reserve"), 400 * MIB);
  assert_string_equal(es_config_get_str(cfg, "memory.os_reserve"), "400M");
  assert_int_equal(es_config_get_int(cfg, "memory.model_budget"), 200 * MIB);
  assert_int_equal(es_config_get_int(cfg, "memory.cache_budget"), 32 * MIB);
  assert_int_equal(es_config_get_int(cfg, "memory.safety_margin"), 64 * MIB);
  assert_int_equal(es_config_get_int(cfg, "memory.warning_pct"), 80);
  assert_int_equal(es_config_get_int(cfg, "memory.critical_pct"), 95);
  assert_int_equal(es_config_get_int(cfg, "batching.max_batch"), 20); /* inline comment cut */
  assert_int_equal(es_config_get_int(cfg, "batching.max_delay"), 5000);
  assert_int_equal(es_config_get_int(cfg, "batching.queue_limit"), 100);
  assert_int_equal(es_config_get_int(cfg, "cache.entries"), 100);
  assert_int_equal(es_config_get_int(cfg, "cache.ttl"), 300000000ll);
  assert_string_equal(es_config_get_str(cfg, "cache.ttl"), "5m");
  assert_int_equal(es_config_get_int(cfg, "quality.floor"), 1);
  assert_int_equal(es_config_get_int(cfg, "quality.sla_p95"), 75000);
  assert_int_equal(es_config_get_int(cfg, "quality.interval"), 10000000ll);
  assert_int_equal(es_config_get_int(cfg, "quality.dwell"), 120000000ll);
  assert_string_equal(es_config_get_str(cfg, "quality.signals"), "queue, p95");

  /* every key came from the file, with its line */
  char want[1200];
  snprintf(want, sizeof want, "file %s:5", path);
  assert_string_equal(from(cfg, "server.host"), want);
  snprintf(want, sizeof want, "file %s:38", path);
  assert_string_equal(from(cfg, "batching.max_batch"), want);
  snprintf(want, sizeof want, "file %s:48", path);
  assert_string_equal(from(cfg, "quality.sla_p95"), want);
  for (size_t i = 0; i < es_config_count(cfg); i++) {
    es_config_item_t it;
    es_config_item(cfg, i, &it);
    assert_int_equal(it.source, ES_CFG_FILE);
  }
  es_config_free(cfg);
}

static void bad_value_in_a_file_names_file_line_key_and_value(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  const char *path = fixture("bad_value.ini");
  assert_int_equal(es_config_load_file(cfg, path, &err), ES_EINVAL);
  char want[1200];
  snprintf(want, sizeof want, "%s:12: [batching] max_batch = 'lots': not an integer", path);
  assert_string_equal(err.msg, want);
  /* the offset is the start of line 12 */
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  char buf[512];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  assert_true(err.offset > 0 && (size_t)err.offset < n);
  assert_memory_equal(buf + err.offset, "max_batch = lots", 16);
  es_config_free(cfg);
}

static void failed_load_leaves_the_configuration_unchanged(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  /* port and strategy come before the bad line: they must not be applied */
  assert_int_equal(es_config_load_file(cfg, fixture("bad_value.ini"), &err), ES_EINVAL);
  assert_int_equal(es_config_get_int(cfg, "server.port"), 8080);
  assert_int_equal(es_config_source(cfg, "server.port"), ES_CFG_DEFAULT);
  assert_string_equal(es_config_get_str(cfg, "runtime.strategy"), "auto");
  assert_int_equal(es_config_load_string(cfg, "[server]\nport = 1\n[cache]\nttl = 5\n", "x", &err),
                   ES_EINVAL);
  assert_int_equal(es_config_get_int(cfg, "server.port"), 8080);
  es_config_free(cfg);
}

static void unknown_section_is_an_error_listing_the_known_ones(void **state) {
  (void)state;
  expect_load_error("[server]\nport = 1\n\n[batchng]\nmax_batch = 4\n", ES_EINVAL,
                    "edgeserve.ini:5: [batchng]: unknown section (known: server, runtime, memory, "
                    "batching, cache, quality)");
}

static void unknown_key_is_an_error_listing_the_section_keys(void **state) {
  (void)state;
  expect_load_error("[batching]\nmax_batchh = 4\n", ES_EINVAL,
                    "edgeserve.ini:2: [batching] max_batchh: unknown key (known: max_batch, "
                    "max_delay, queue_limit)");
}

static void key_outside_any_section_is_an_error(void **state) {
  (void)state;
  expect_load_error("; top\nmax_batch = 4\n", ES_EINVAL,
                    "edgeserve.ini:2: max_batch: key outside any [section]");
}

static void key_given_twice_in_one_file_is_an_error(void **state) {
  (void)state;
  expect_load_error("[server]\nport = 1\nport = 2\n", ES_EINVAL,
                    "edgeserve.ini:3: [server] port: already set on line 2");
  /* inih reads an indented line as the continuation of the value above */
  expect_load_error("[server]\nhost = a\n  port = 2\n", ES_EINVAL,
                    "edgeserve.ini:3: [server] host: already set on line 2 (an indented line "
                    "continues the value above it)");
}

static void line_that_is_not_ini_names_the_line(void **state) {
  (void)state;
  expect_load_error("[server]\nport = 1\njust words\n", ES_EFORMAT,
                    "edgeserve.ini:3: 'just words': expected '[section]' or 'key = value'");
  expect_load_error("[server\nport = 1\n", ES_EFORMAT,
                    "edgeserve.ini:1: '[server': expected '[section]' or 'key = value'");
}

static void line_longer_than_inih_reads_is_an_error(void **state) {
  (void)state;
  char text[600];
  int n = snprintf(text, sizeof text, "[server]\nmodels = ");
  memset(text + n, 'a', 300);
  strcpy(text + n + 300, "\n");
  expect_load_error(text, ES_EFORMAT, "edgeserve.ini:2: line longer than 198 characters");
}

static void missing_file_is_an_io_error_naming_it(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_int_equal(es_config_load_file(cfg, "/nonexistent/edgeserve.ini", &err), ES_EIO);
  assert_non_null(strstr(err.msg, "/nonexistent/edgeserve.ini: cannot open"));
  es_config_free(cfg);
}

static void file_with_a_nul_byte_is_not_a_configuration(void **state) {
  (void)state;
  char path[] = "/tmp/es_test_config_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "[server]\n\0port=1\n", 17), 17);
  close(fd);
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_int_equal(es_config_load_file(cfg, path, &err), ES_EFORMAT);
  assert_int_equal(err.offset, 9);
  assert_non_null(strstr(err.msg, "NUL byte"));
  unlink(path);
  es_config_free(cfg);
}

/* ---- values: every kind of bad value names the key -------------------------------------- */

static void every_kind_of_bad_value_names_key_value_and_problem(void **state) {
  (void)state;
  static const struct {
    const char *key, *value;
    int rc;
    const char *msg;
  } cases[] = {
      {"batching.max_batch", "lots", ES_EINVAL, "[batching] max_batch = 'lots': not an integer"},
      {"batching.max_batch", "0", ES_ERANGE, "[batching] max_batch = '0': out of range (1..1024)"},
      {"batching.max_batch", "-3", ES_ERANGE,
       "[batching] max_batch = '-3': out of range (1..1024)"},
      {"batching.max_batch", "99999999999999999999", ES_ERANGE,
       "[batching] max_batch = '99999999999999999999': out of range (1..1024)"},
      {"server.port", "70000", ES_ERANGE, "[server] port = '70000': out of range (0..65535)"},
      {"runtime.inference_threads", "2000", ES_ERANGE,
       "[runtime] inference_threads = '2000': out of range (1..1024, or 0 for auto)"},
      {"memory.budget", "12Q", ES_EINVAL,
       "[memory] budget = '12Q': not a size (a whole number with an optional unit: 512K, 64M, "
       "2G)"},
      {"memory.budget", "1.5G", ES_EINVAL,
       "[memory] budget = '1.5G': not a size (a whole number with an optional unit: 512K, 64M, "
       "2G)"},
      {"memory.budget", "1M", ES_ERANGE,
       "[memory] budget = '1M': out of range (16M..1024T, or 0 for auto)"},
      {"memory.budget", "99999999999T", ES_ERANGE,
       "[memory] budget = '99999999999T': out of range (16M..1024T, or 0 for auto)"},
      {"batching.max_delay", "5", ES_EINVAL,
       "[batching] max_delay = '5': not a duration (a whole number with a unit: 250us, 5ms, 3s, "
       "5m, 1h)"},
      {"batching.max_delay", "2s", ES_ERANGE, "[batching] max_delay = '2s': out of range (0..1s)"},
      {"quality.sla_p95", "0", ES_ERANGE, "[quality] sla_p95 = '0': out of range (1ms..1m)"},
      {"runtime.pin", "maybe", ES_EINVAL,
       "[runtime] pin = 'maybe': not a boolean (true/false, yes/no, on/off, 1/0)"},
      {"runtime.strategy", "fast", ES_EINVAL,
       "[runtime] strategy = 'fast': not one of "
       "auto/latency_optimized/memory_optimized/balanced"},
      {"quality.floor", "int4", ES_EINVAL,
       "[quality] floor = 'int4': not one of dense/int8/pq/pruned"},
      {"runtime.inference_cpus", "3-1", ES_EINVAL,
       "[runtime] inference_cpus = '3-1': not a CPU list (like 0-3,6)"},
      {"runtime.inference_cpus", "0-5000", ES_ERANGE,
       "[runtime] inference_cpus = '0-5000': CPU numbers go up to 4095"},
      {"runtime.background_cpus", "", ES_EINVAL,
       "[runtime] background_cpus = '': no CPU (write auto to let the plan choose)"},
      {"server.host", "", ES_ERANGE, "[server] host = '': empty"},
      {"server.models", "a\tb", ES_EINVAL,
       "[server] models = 'a\tb': contains a control character"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    es_config_t *cfg = es_config_new();
    es_error_t err = {0};
    char want[400];
    int rc = es_config_set(cfg, cases[i].key, cases[i].value, ES_CFG_FLAG, NULL, &err);
    if (rc != cases[i].rc)
      fprintf(stderr, "case %zu: %s = '%s'\n", i, cases[i].key, cases[i].value);
    assert_int_equal(rc, cases[i].rc);
    snprintf(want, sizeof want, "flag: %s", cases[i].msg);
    assert_string_equal(err.msg, want);
    /* the same value from a file names the file and line */
    char text[200];
    const char *dot = strchr(cases[i].key, '.');
    snprintf(text, sizeof text, "[%.*s]\n%s = %s\n", (int)(dot - cases[i].key), cases[i].key,
             dot + 1, cases[i].value);
    assert_int_equal(es_config_load_string(cfg, text, "edgeserve.ini", &err), cases[i].rc);
    snprintf(want, sizeof want, "edgeserve.ini:2: %s", cases[i].msg);
    assert_string_equal(err.msg, want);
    es_config_free(cfg);
  }
}

static void string_longer_than_its_maximum_is_out_of_range(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  char host[300];
  memset(host, 'h', 256);
  host[256] = '\0';
  assert_int_equal(es_config_set(cfg, "server.host", host, ES_CFG_FLAG, NULL, &err), ES_ERANGE);
  assert_non_null(strstr(err.msg, "too long (at most 255 characters)"));
  es_config_free(cfg);
}

static void values_are_read_leniently_and_shown_canonically(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  static const struct {
    const char *key, *in, *out;
  } cases[] = {
      {"runtime.pin", "OFF", "false"},
      {"runtime.pin", "1", "true"},
      {"runtime.strategy", "Balanced", "balanced"},
      {"runtime.inference_cpus", "3, 0-2,2", "0-3"},
      {"runtime.background_cpus", "6,4,5,9", "4-6,9"},
      {"memory.cache_budget", "1536 KiB", "1536K"},
      {"memory.cache_budget", "2048m", "2G"},
      {"memory.cache_budget", "1000", "1000"},
      {"batching.max_delay", " 1000us ", "1ms"},
      {"cache.ttl", "120s", "2m"},
      {"cache.ttl", "0", "0"},
      {"cache.ttl", "2h", "2h"},
      {"runtime.inference_threads", "0", "auto"},
      {"memory.budget", "0", "auto"},
      {"cache.entries", "AUTO", "1024"}, /* auto at the flag layer: the default shows */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    assert_int_equal(es_config_set(cfg, cases[i].key, cases[i].in, ES_CFG_FLAG, NULL, &err), 0);
    assert_string_equal(es_config_get_str(cfg, cases[i].key), cases[i].out);
  }
  assert_int_equal(es_config_get_int(cfg, "memory.budget"), 0);
  assert_true(es_config_is_auto(cfg, "memory.budget"));
  es_config_free(cfg);
}

/* ---- precedence and sources --------------------------------------------------------------- */

static void file_then_env_then_flag_each_override_with_their_source(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_int_equal(es_config_load_string(cfg,
                                         "[batching]\nmax_batch = 8\nqueue_limit = 50\n"
                                         "max_delay = 2ms\n",
                                         "site.ini", &err),
                   0);
  char *env[] = {"PATH=/bin", "EDGESERVE_BATCHING_MAX_BATCH=12",
                 "EDGESERVE_BATCHING_QUEUE_LIMIT=60", NULL};
  assert_int_equal(es_config_apply_env(cfg, env, &err), 0);
  assert_int_equal(es_config_set_flag(cfg, "batching.max_batch=16", &err), 0);

  assert_int_equal(es_config_get_int(cfg, "batching.max_batch"), 16);
  assert_int_equal(es_config_source(cfg, "batching.max_batch"), ES_CFG_FLAG);
  assert_string_equal(from(cfg, "batching.max_batch"), "flag");
  assert_int_equal(es_config_get_int(cfg, "batching.queue_limit"), 60);
  assert_string_equal(from(cfg, "batching.queue_limit"), "env EDGESERVE_BATCHING_QUEUE_LIMIT");
  assert_int_equal(es_config_get_int(cfg, "batching.max_delay"), 2000);
  assert_string_equal(from(cfg, "batching.max_delay"), "file site.ini:4");
  assert_int_equal(es_config_get_int(cfg, "cache.entries"), 1024);
  assert_string_equal(from(cfg, "cache.entries"), "default");
  es_config_free(cfg);
}

static void precedence_does_not_depend_on_the_order_of_calls(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_int_equal(es_config_set_flag(cfg, "batching.max_batch=16", &err), 0);
  char *env[] = {"EDGESERVE_BATCHING_MAX_BATCH=12", NULL};
  assert_int_equal(es_config_apply_env(cfg, env, &err), 0);
  assert_int_equal(es_config_load_string(cfg, "[batching]\nmax_batch = 8\n", "a.ini", &err), 0);
  assert_int_equal(es_config_set(cfg, "batching.max_batch", "4", ES_CFG_PRESET, "balanced", &err),
                   0);
  assert_int_equal(es_config_get_int(cfg, "batching.max_batch"), 16);
  /* a second file replaces the first (same layer, later wins), still below the flag */
  assert_int_equal(es_config_load_string(cfg, "[batching]\nmax_batch = 9\n", "b.ini", &err), 0);
  assert_int_equal(es_config_get_int(cfg, "batching.max_batch"), 16);
  es_config_free(cfg);
}

static void explicit_auto_overrides_lower_layers_and_defers_to_the_plan(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_int_equal(es_config_load_string(cfg, "[batching]\nmax_batch = 9\n", "b.ini", &err), 0);
  char *env[] = {"EDGESERVE_BATCHING_MAX_BATCH=12", NULL};
  assert_int_equal(es_config_apply_env(cfg, env, &err), 0);
  assert_int_equal(es_config_set_flag(cfg, "batching.max_batch=auto", &err), 0);
  /* no plan yet: the default */
  assert_int_equal(es_config_get_int(cfg, "batching.max_batch"), 32);
  assert_int_equal(es_config_source(cfg, "batching.max_batch"), ES_CFG_DEFAULT);
  assert_string_equal(from(cfg, "batching.max_batch"), "default (auto from flag)");
  assert_int_equal(es_config_set(cfg, "batching.max_batch", "4", ES_CFG_PRESET, "balanced", &err),
                   0);
  assert_int_equal(es_config_get_int(cfg, "batching.max_batch"), 4);
  assert_string_equal(from(cfg, "batching.max_batch"), "preset balanced (auto from flag)");
  /* a concrete flag again wins over everything */
  assert_int_equal(es_config_set_flag(cfg, "batching.max_batch=7", &err), 0);
  assert_int_equal(es_config_get_int(cfg, "batching.max_batch"), 7);
  es_config_free(cfg);
}

static void auto_above_defers_to_the_plan_layer_and_says_so(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_int_equal(
      es_config_load_string(cfg, "[runtime]\ninference_threads = 6\n", "site.ini", &err), 0);
  assert_int_equal(
      es_config_set(cfg, "runtime.inference_threads", "3", ES_CFG_HARDWARE, NULL, &err), 0);
  assert_int_equal(es_config_get_int(cfg, "runtime.inference_threads"), 6);
  char *env[] = {"EDGESERVE_RUNTIME_INFERENCE_THREADS=auto", NULL};
  assert_int_equal(es_config_apply_env(cfg, env, &err), 0);
  assert_int_equal(es_config_get_int(cfg, "runtime.inference_threads"), 3);
  assert_int_equal(es_config_source(cfg, "runtime.inference_threads"), ES_CFG_HARDWARE);
  assert_string_equal(from(cfg, "runtime.inference_threads"),
                      "hardware (auto from env EDGESERVE_RUNTIME_INFERENCE_THREADS)");
  /* a preset value carries the preset's name */
  assert_int_equal(
      es_config_set(cfg, "batching.max_batch", "16", ES_CFG_PRESET, "memory_optimized", &err), 0);
  assert_string_equal(from(cfg, "batching.max_batch"), "preset memory_optimized");
  es_config_free(cfg);
}

/* ---- environment and flags ---------------------------------------------------------------- */

static void env_with_a_known_section_and_unknown_key_is_an_error(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  char *env[] = {"EDGESERVE_BATCHING_MAX_BATCH=4", "EDGESERVE_BATCHING_MAXBATCH=4", NULL};
  assert_int_equal(es_config_apply_env(cfg, env, &err), ES_EINVAL);
  assert_string_equal(err.msg, "env EDGESERVE_BATCHING_MAXBATCH: [batching] maxbatch: unknown key "
                               "(known: max_batch, max_delay, queue_limit)");
  /* all or nothing: the good variable before it was not applied */
  assert_int_equal(es_config_get_int(cfg, "batching.max_batch"), 32);
  es_config_free(cfg);
}

static void env_outside_the_schema_sections_is_left_alone(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  char *env[] = {"EDGESERVE_HOME=/opt/es",
                 "EDGESERVE_LOG_LEVEL=debug",
                 "EDGESERVE=1",
                 "edgeserve_server_port=1",
                 "EDGESERVE_SERVERX_PORT=1",
                 "NOEQUALS",
                 NULL};
  assert_int_equal(es_config_apply_env(cfg, env, &err), 0);
  assert_int_equal(es_config_get_int(cfg, "server.port"), 8080);
  assert_int_equal(es_config_apply_env(cfg, NULL, &err), 0);
  es_config_free(cfg);
}

static void env_bad_value_names_the_variable(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  char *env[] = {"EDGESERVE_CACHE_TTL=5 parsecs", NULL};
  assert_int_equal(es_config_apply_env(cfg, env, &err), ES_EINVAL);
  assert_string_equal(err.msg, "env EDGESERVE_CACHE_TTL: [cache] ttl = '5 parsecs': not a "
                               "duration (a whole number with a unit: 250us, 5ms, 3s, 5m, 1h)");
  es_config_free(cfg);
}

static void flag_errors_name_the_flag_and_key(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_int_equal(es_config_set_flag(cfg, "max_batch=4", &err), ES_EINVAL);
  assert_string_equal(err.msg, "flag: 'max_batch=4': expected SECTION.KEY=VALUE");
  assert_int_equal(es_config_set_flag(cfg, "batching.max_batch", &err), ES_EINVAL);
  assert_string_equal(err.msg, "flag: 'batching.max_batch': expected SECTION.KEY=VALUE");
  assert_int_equal(es_config_set_flag(cfg, "batching.size=4", &err), ES_EINVAL);
  assert_string_equal(err.msg, "flag: [batching] size: unknown key (known: max_batch, max_delay, "
                               "queue_limit)");
  assert_int_equal(es_config_set_flag(cfg, "batch.max_batch=4", &err), ES_EINVAL);
  assert_string_equal(err.msg, "flag: [batch]: unknown section (known: server, runtime, memory, "
                               "batching, cache, quality)");
  assert_int_equal(es_config_set(cfg, "server.port", "x", ES_CFG_FLAG, "--port", &err), ES_EINVAL);
  assert_string_equal(err.msg, "flag --port: [server] port = 'x': not an integer");
  assert_int_equal(es_config_set(cfg, "server.port", "81", ES_CFG_FLAG, "--port", &err), 0);
  assert_string_equal(from(cfg, "server.port"), "flag --port");
  es_config_free(cfg);
}

/* ---- sizes and durations ----------------------------------------------------------------- */

static void sizes_round_trip_through_their_text(void **state) {
  (void)state;
  static const struct {
    uint64_t v;
    const char *text;
  } cases[] = {
      {0, "0"},
      {1000, "1000"},
      {1024, "1K"},
      {1536 * 1024, "1536K"},
      {512ull << 20, "512M"},
      {3ull << 30, "3G"},
      {(1ull << 40) + (1ull << 30), "1025G"},
      {5ull << 40, "5T"},
      {UINT64_MAX, "18446744073709551615"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char buf[32];
    uint64_t back;
    assert_int_equal(es_config_format_bytes(cases[i].v, buf, sizeof buf), strlen(cases[i].text));
    assert_string_equal(buf, cases[i].text);
    assert_int_equal(es_config_parse_bytes(buf, &back), 0);
    assert_true(back == cases[i].v);
  }
  uint64_t v;
  assert_int_equal(es_config_parse_bytes("2 gib", &v), 0);
  assert_true(v == 2ull << 30);
  assert_int_equal(es_config_parse_bytes("7b", &v), 0);
  assert_true(v == 7);
  assert_int_equal(es_config_parse_bytes("", &v), ES_EINVAL);
  assert_int_equal(es_config_parse_bytes("M", &v), ES_EINVAL);
  assert_int_equal(es_config_parse_bytes("-1", &v), ES_EINVAL);
  assert_int_equal(es_config_parse_bytes("16777216T", &v), ES_ERANGE);
  assert_int_equal(es_config_parse_bytes("18446744073709551616", &v), ES_ERANGE);
}

static void durations_round_trip_through_their_text(void **state) {
  (void)state;
  static const struct {
    int64_t us;
    const char *text;
  } cases[] = {
      {0, "0"},           {1, "1us"},
      {250, "250us"},     {1500, "1500us"},
      {5000, "5ms"},      {3000000, "3s"},
      {90000000, "90s"},  {300000000, "5m"},
      {7200000000, "2h"}, {INT64_MAX, "9223372036854775807us"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char buf[32];
    int64_t back;
    assert_int_equal(es_config_format_duration(cases[i].us, buf, sizeof buf),
                     strlen(cases[i].text));
    assert_string_equal(buf, cases[i].text);
    assert_int_equal(es_config_parse_duration(buf, &back), 0);
    assert_true(back == cases[i].us);
  }
  int64_t us;
  assert_int_equal(es_config_parse_duration("10 min", &us), 0);
  assert_true(us == 600000000);
  assert_int_equal(es_config_parse_duration("5", &us), ES_EINVAL);
  assert_int_equal(es_config_parse_duration("-5ms", &us), ES_EINVAL);
  assert_int_equal(es_config_parse_duration("1.5s", &us), ES_EINVAL);
  assert_int_equal(es_config_parse_duration("5 days", &us), ES_EINVAL);
  assert_int_equal(es_config_parse_duration("9223372036854775808us", &us), ES_ERANGE);
  assert_int_equal(es_config_parse_duration("9999999999999h", &us), ES_ERANGE);
}

/* ---- writing ---------------------------------------------------------------------------- */

static char *write_to_string(const es_config_t *cfg, es_cfg_format_t fmt) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  assert_int_equal(es_config_write(cfg, f, fmt), 0);
  fclose(f);
  return buf;
}

static void ini_dump_loads_back_to_the_same_values(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_int_equal(es_config_load_file(cfg, fixture("full.ini"), &err), 0);
  assert_int_equal(es_config_set_flag(cfg, "runtime.inference_cpus=auto", &err), 0);
  char *text = write_to_string(cfg, ES_CFG_FORMAT_INI);
  assert_non_null(strstr(text, "[batching]\nmax_batch = 20"));
  assert_non_null(strstr(text, "inference_cpus = auto"));
  assert_non_null(strstr(text, "; default (auto from flag)"));
  es_config_t *back = es_config_new();
  assert_int_equal(es_config_load_string(back, text, "dump.ini", &err), 0);
  for (size_t i = 0; i < es_config_count(cfg); i++) {
    es_config_item_t a, b;
    es_config_item(cfg, i, &a);
    es_config_item(back, i, &b);
    assert_string_equal(a.value, b.value);
    assert_int_equal(b.source, a.source == ES_CFG_DEFAULT ? ES_CFG_DEFAULT : ES_CFG_FILE);
  }
  free(text);
  es_config_free(back);
  es_config_free(cfg);
}

static void json_dump_has_every_key_with_value_source_and_env(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_int_equal(es_config_set_flag(cfg, "server.models=/srv/\"m\"\\x", &err), 0);
  char *text = write_to_string(cfg, ES_CFG_FORMAT_JSON);
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  cJSON *mb = cJSON_GetObjectItemCaseSensitive(root, "batching.max_batch");
  assert_string_equal(cJSON_GetObjectItem(mb, "value")->valuestring, "32");
  assert_int_equal(cJSON_GetObjectItem(mb, "number")->valuedouble, 32);
  assert_string_equal(cJSON_GetObjectItem(mb, "type")->valuestring, "uint");
  assert_string_equal(cJSON_GetObjectItem(mb, "source")->valuestring, "default");
  assert_string_equal(cJSON_GetObjectItem(mb, "from")->valuestring, "default");
  assert_string_equal(cJSON_GetObjectItem(mb, "env")->valuestring, "EDGESERVE_BATCHING_MAX_BATCH");
  cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "batching.max_delay");
  assert_string_equal(cJSON_GetObjectItem(md, "value")->valuestring, "10ms");
  assert_int_equal(cJSON_GetObjectItem(md, "number")->valuedouble, 10000);
  cJSON *bu = cJSON_GetObjectItemCaseSensitive(root, "memory.budget");
  assert_string_equal(cJSON_GetObjectItem(bu, "value")->valuestring, "auto");
  assert_null(cJSON_GetObjectItem(bu, "number")); /* auto has no number */
  cJSON *mo = cJSON_GetObjectItemCaseSensitive(root, "server.models");
  assert_string_equal(cJSON_GetObjectItem(mo, "value")->valuestring, "/srv/\"m\"\\x");
  assert_string_equal(cJSON_GetObjectItem(mo, "source")->valuestring, "flag");
  assert_int_equal(cJSON_GetArraySize(root), (int)es_config_count(cfg));
  cJSON_Delete(root);
  free(text);
  es_config_free(cfg);
}

static void help_lists_every_key_with_type_range_default_and_env(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  char *text = write_to_string(cfg, ES_CFG_FORMAT_HELP);
  assert_non_null(strstr(text, "[batching]\n  max_batch            uint, 1..1024; default 32; env "
                               "EDGESERVE_BATCHING_MAX_BATCH\n"));
  size_t n;
  const es_config_key_t *keys = es_config_keys(&n);
  for (size_t i = 0; i < n; i++) assert_non_null(strstr(text, keys[i].help));
  free(text);
  es_config_free(cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_come_from_the_schema_with_source_default),
      cmocka_unit_test(every_key_lists_its_name_env_value_and_source),
      cmocka_unit_test(set_at_the_default_layer_is_refused),
      cmocka_unit_test(fixture_with_every_section_sets_every_key_from_its_line),
      cmocka_unit_test(bad_value_in_a_file_names_file_line_key_and_value),
      cmocka_unit_test(failed_load_leaves_the_configuration_unchanged),
      cmocka_unit_test(unknown_section_is_an_error_listing_the_known_ones),
      cmocka_unit_test(unknown_key_is_an_error_listing_the_section_keys),
      cmocka_unit_test(key_outside_any_section_is_an_error),
      cmocka_unit_test(key_given_twice_in_one_file_is_an_error),
      cmocka_unit_test(line_that_is_not_ini_names_the_line),
      cmocka_unit_test(line_longer_than_inih_reads_is_an_error),
      cmocka_unit_test(missing_file_is_an_io_error_naming_it),
      cmocka_unit_test(file_with_a_nul_byte_is_not_a_configuration),
      cmocka_unit_test(every_kind_of_bad_value_names_key_value_and_problem),
      cmocka_unit_test(string_longer_than_its_maximum_is_out_of_range),
      cmocka_unit_test(values_are_read_leniently_and_shown_canonically),
      cmocka_unit_test(file_then_env_then_flag_each_override_with_their_source),
      cmocka_unit_test(precedence_does_not_depend_on_the_order_of_calls),
      cmocka_unit_test(explicit_auto_overrides_lower_layers_and_defers_to_the_plan),
      cmocka_unit_test(auto_above_defers_to_the_plan_layer_and_says_so),
      cmocka_unit_test(env_with_a_known_section_and_unknown_key_is_an_error),
      cmocka_unit_test(env_outside_the_schema_sections_is_left_alone),
      cmocka_unit_test(env_bad_value_names_the_variable),
      cmocka_unit_test(flag_errors_name_the_flag_and_key),
      cmocka_unit_test(sizes_round_trip_through_their_text),
      cmocka_unit_test(durations_round_trip_through_their_text),
      cmocka_unit_test(ini_dump_loads_back_to_the_same_values),
      cmocka_unit_test(json_dump_has_every_key_with_value_source_and_env),
      cmocka_unit_test(help_lists_every_key_with_type_range_default_and_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
