/* test_metrics.c - the metrics registry: name validation, series lookup,
 * counters, gauges, histograms, rendering (golden text, escaping, floats),
 * callbacks and hooks, the standard set, concurrent updates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>
#include <cmocka.h>

#include "edgeserve/metrics.h"

static es_metrics_t *new_reg(size_t max_series) {
  es_metrics_params_t p = es_metrics_default_params();
  if (max_series) p.max_series = max_series;
  es_error_t err;
  es_metrics_t *reg = es_metrics_new(&p, &err);
  assert_non_null(reg);
  return reg;
}

static es_metric_family_t *reg_family(es_metrics_t *reg, es_metric_type_t type, const char *name,
                                      const char *help, const char *const *labels, size_t nlabels) {
  es_family_params_t p = es_family_default_params();
  p.type = type;
  p.name = name;
  p.help = help;
  p.labels = labels;
  p.nlabels = nlabels;
  es_metric_family_t *f = NULL;
  es_error_t err = {0};
  int rc = es_metrics_register(reg, &p, &f, &err);
  if (rc) fail_msg("registering %s: %s", name, err.msg);
  assert_non_null(f);
  return f;
}

static es_metric_t *series(es_metric_family_t *f, const char *const *values) {
  es_metric_t *m = NULL;
  es_error_t err = {0};
  int rc = es_metric_series(f, values, &m, &err);
  if (rc) fail_msg("series: %s", err.msg);
  assert_non_null(m);
  return m;
}

/* Tries to register; returns the code and leaves the message in *err. */
static int try_reg(es_metrics_t *reg, es_metric_type_t type, const char *name, const char *help,
                   const char *const *labels, size_t nlabels, const double *buckets, size_t nb,
                   es_error_t *err) {
  es_family_params_t p = es_family_default_params();
  p.type = type;
  p.name = name;
  p.help = help;
  p.labels = labels;
  p.nlabels = nlabels;
  p.buckets = buckets;
  p.nbuckets = nb;
  es_metric_family_t *f = (es_metric_family_t *)1;
  memset(err, 0, sizeof *err);
  int rc = es_metrics_register(reg, &p, &f, err);
  if (rc) assert_null(f);
  return rc;
}

static char *render(es_metrics_t *reg) {
  es_metrics_buf_t b = {0};
  assert_int_equal(es_metrics_render(reg, &b), 0);
  assert_non_null(b.data);
  assert_int_equal(strlen(b.data), b.len);
  return b.data; /* caller frees */
}

/* ---- names ------------------------------------------------------------------------ */

static void names_are_checked_against_the_prometheus_data_model(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  es_error_t err;
  const es_metric_type_t C = ES_METRIC_COUNTER, G = ES_METRIC_GAUGE, H = ES_METRIC_HISTOGRAM;
  assert_int_equal(try_reg(reg, C, "1abc_total", "h", NULL, 0, NULL, 0, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "'1abc_total' is invalid"));
  assert_int_equal(try_reg(reg, C, "a-b_total", "h", NULL, 0, NULL, 0, &err), ES_EINVAL);
  assert_int_equal(try_reg(reg, C, "a:b_total", "h", NULL, 0, NULL, 0, &err), ES_EINVAL);
  assert_int_equal(try_reg(reg, C, "", "h", NULL, 0, NULL, 0, &err), ES_EINVAL);
  assert_int_equal(try_reg(reg, C, NULL, "h", NULL, 0, NULL, 0, &err), ES_EINVAL);
  assert_int_equal(try_reg(reg, C, "__x_total", "h", NULL, 0, NULL, 0, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "reserved"));
  assert_int_equal(try_reg(reg, 7, "x_total", "h", NULL, 0, NULL, 0, &err), ES_EINVAL);
  /* empty or invalid help */
  assert_int_equal(try_reg(reg, G, "g", "", NULL, 0, NULL, 0, &err), ES_EINVAL);
  assert_int_equal(try_reg(reg, G, "g", NULL, NULL, 0, NULL, 0, &err), ES_EINVAL);
  assert_int_equal(try_reg(reg, G, "g", "bad \xff", NULL, 0, NULL, 0, &err), ES_EINVAL);
  /* label names */
  const char *bad1[] = {"model", "0x"};
  const char *bad2[] = {"__name"};
  const char *dup[] = {"model", "model"};
  const char *le[] = {"le"};
  const char *nul[] = {NULL};
  assert_int_equal(try_reg(reg, G, "g", "h", bad1, 2, NULL, 0, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "label name '0x'"));
  assert_int_equal(try_reg(reg, G, "g", "h", bad2, 1, NULL, 0, &err), ES_EINVAL);
  assert_int_equal(try_reg(reg, G, "g", "h", dup, 2, NULL, 0, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "twice"));
  assert_int_equal(try_reg(reg, G, "g", "h", nul, 1, NULL, 0, &err), ES_EINVAL);
  assert_int_equal(try_reg(reg, G, "g", "h", NULL, 1, NULL, 0, &err), ES_EINVAL);
  assert_int_equal(try_reg(reg, H, "h_seconds", "h", le, 1, NULL, 0, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "'le' is reserved"));
  assert_int_equal(try_reg(reg, G, "g", "h", le, 1, NULL, 0, &err), 0); /* le is fine elsewhere */
  /* buckets */
  const double nondec[] = {1, 1}, inf[] = {1, INFINITY}, nan_[] = {NAN};
  assert_int_equal(try_reg(reg, H, "h1", "h", NULL, 0, nondec, 2, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "increase strictly"));
  assert_int_equal(try_reg(reg, H, "h2", "h", NULL, 0, inf, 2, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "+Inf is implicit"));
  assert_int_equal(try_reg(reg, H, "h3", "h", NULL, 0, nan_, 1, &err), ES_EINVAL);
  assert_int_equal(try_reg(reg, H, "h4", "h", NULL, 0, nondec, 0, &err), ES_EINVAL);
  /* nothing was registered by the refusals; "g" has labels and no series yet */
  char *text = render(reg);
  assert_string_equal(text, "");
  free(text);
  es_metrics_free(reg);
}

static void counters_must_end_in_total_and_nothing_else_does(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  es_error_t err;
  assert_int_equal(try_reg(reg, ES_METRIC_COUNTER, "requests", "h", NULL, 0, NULL, 0, &err),
                   ES_EINVAL);
  assert_non_null(strstr(err.msg, "must end in _total"));
  assert_int_equal(try_reg(reg, ES_METRIC_GAUGE, "pending_total", "h", NULL, 0, NULL, 0, &err),
                   ES_EINVAL);
  assert_non_null(strstr(err.msg, "only counters"));
  assert_int_equal(
      try_reg(reg, ES_METRIC_HISTOGRAM, "lat_seconds_total", "h", NULL, 0, NULL, 0, &err),
      ES_EINVAL);
  /* histogram series names cannot be taken by another family */
  assert_int_equal(try_reg(reg, ES_METRIC_GAUGE, "lat_seconds_sum", "h", NULL, 0, NULL, 0, &err),
                   ES_EINVAL);
  assert_int_equal(try_reg(reg, ES_METRIC_GAUGE, "x_count", "h", NULL, 0, NULL, 0, &err),
                   ES_EINVAL);
  assert_int_equal(try_reg(reg, ES_METRIC_HISTOGRAM, "x_bucket", "h", NULL, 0, NULL, 0, &err),
                   ES_EINVAL);
  assert_int_equal(try_reg(reg, ES_METRIC_COUNTER, "requests_total", "h", NULL, 0, NULL, 0, &err),
                   0);
  es_metrics_free(reg);
}

static void duplicate_registration_is_an_error_with_a_message(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  es_error_t err;
  assert_int_equal(try_reg(reg, ES_METRIC_GAUGE, "temp_celsius", "h", NULL, 0, NULL, 0, &err), 0);
  assert_int_equal(try_reg(reg, ES_METRIC_GAUGE, "temp_celsius", "h2", NULL, 0, NULL, 0, &err),
                   ES_EINVAL);
  assert_string_equal(err.msg, "metric 'temp_celsius' is already registered (as a gauge)");
  assert_int_equal(err.code, ES_EINVAL);
  es_metrics_free(reg);
}

/* ---- series --------------------------------------------------------------------------- */

static void lookups_of_the_same_labels_return_the_same_series(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  const char *l[] = {"model", "version"};
  es_metric_family_t *f = reg_family(reg, ES_METRIC_COUNTER, "r_total", "h", l, 2);
  const char *a[] = {"media", "1"}, *b[] = {"media", "2"}, *c[] = {"text", "1"};
  es_metric_t *ma = series(f, a), *mb = series(f, b), *mc = series(f, c);
  assert_ptr_not_equal(ma, mb);
  assert_ptr_not_equal(ma, mc);
  char m2[] = "media", v1[] = "1"; /* equal values in other storage */
  const char *a2[] = {m2, v1};
  assert_ptr_equal(series(f, a2), ma);
  assert_ptr_equal(series(f, b), mb);
  es_counter_inc(ma);
  es_counter_inc(series(f, a));
  assert_true(es_metric_value(ma) == 2.0);
  /* a family without labels has its series from the start */
  es_metric_family_t *g = reg_family(reg, ES_METRIC_GAUGE, "up", "h", NULL, 0);
  es_metric_t *m0 = series(g, NULL);
  assert_ptr_equal(series(g, NULL), m0);
  es_metrics_free(reg);
}

static void bad_label_values_are_refused(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  const char *l[] = {"model", "version"};
  es_metric_family_t *f = reg_family(reg, ES_METRIC_COUNTER, "r_total", "h", l, 2);
  es_metric_t *m = (es_metric_t *)1;
  es_error_t err;
  const char *nul[] = {"media", NULL}, *bad[] = {"media", "\xc0\xaf"},
             *sur[] = {"\xed\xa0\x80", "1"};
  assert_int_equal(es_metric_series(f, nul, &m, &err), ES_EINVAL);
  assert_null(m);
  assert_non_null(strstr(err.msg, "label 'version' has no value"));
  assert_int_equal(es_metric_series(f, NULL, &m, &err), ES_EINVAL);
  assert_int_equal(es_metric_series(f, bad, &m, &err), ES_EINVAL); /* overlong '/' */
  assert_non_null(strstr(err.msg, "not valid UTF-8"));
  assert_int_equal(es_metric_series(f, sur, &m, &err), ES_EINVAL); /* a surrogate */
  const char *ok[] = {"médïa ✓ 🚀", ""};
  assert_int_equal(es_metric_series(f, ok, &m, &err), 0);
  es_metrics_free(reg);
}

static void max_series_caps_the_registry(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(3);
  const char *l[] = {"id"};
  reg_family(reg, ES_METRIC_GAUGE, "one", "h", NULL, 0); /* takes one series */
  es_metric_family_t *f = reg_family(reg, ES_METRIC_COUNTER, "x_total", "h", l, 1);
  series(f, (const char *[]){"a"});
  series(f, (const char *[]){"b"});
  series(f, (const char *[]){"a"}); /* an existing one is still found */
  es_metric_t *m;
  es_error_t err;
  assert_int_equal(es_metric_series(f, (const char *[]){"c"}, &m, &err), ES_EFULL);
  assert_null(m);
  assert_non_null(strstr(err.msg, "max_series"));
  assert_int_equal(try_reg(reg, ES_METRIC_GAUGE, "two", "h", NULL, 0, NULL, 0, &err), ES_EFULL);
  /* the refused family was not registered: it can be retried elsewhere */
  char *text = render(reg);
  assert_null(strstr(text, "two"));
  free(text);
  es_metrics_params_t p = {.max_series = 0};
  assert_null(es_metrics_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  es_metrics_free(reg);
}

/* ---- values ---------------------------------------------------------------------------- */

static void counters_never_go_down(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  es_metric_t *m = series(reg_family(reg, ES_METRIC_COUNTER, "c_total", "h", NULL, 0), NULL);
  assert_true(es_metric_value(m) == 0.0);
  assert_int_equal(es_counter_add(m, 5), 0);
  assert_int_equal(es_counter_add(m, 0.25), 0);
  assert_int_equal(es_counter_add(m, 0), 0);
  assert_true(es_metric_value(m) == 5.25);
  assert_int_equal(es_counter_add(m, -1), ES_EINVAL);
  assert_int_equal(es_counter_add(m, -0.5), ES_EINVAL);
  assert_int_equal(es_counter_add(m, NAN), ES_EINVAL);
  assert_true(es_metric_value(m) == 5.25);
  es_counter_inc(m);
  assert_int_equal(es_counter_add(m, 1e300), 0); /* beyond 2^53: the float path */
  assert_true(es_metric_value(m) == 1e300 + 6.25);
  assert_int_equal(es_histo_read(m, NULL, NULL, NULL), ES_EINVAL);
  es_metrics_free(reg);
}

static void gauges_go_up_and_down_and_keep_special_values(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  es_metric_t *m = series(reg_family(reg, ES_METRIC_GAUGE, "g", "h", NULL, 0), NULL);
  es_gauge_set(m, 10);
  es_gauge_add(m, -2.5);
  assert_true(es_metric_value(m) == 7.5);
  es_gauge_add(m, -10);
  assert_true(es_metric_value(m) == -2.5);
  es_gauge_set(m, NAN);
  assert_true(isnan(es_metric_value(m)));
  es_gauge_set(m, -INFINITY);
  assert_true(isinf(es_metric_value(m)) && es_metric_value(m) < 0);
  es_metrics_free(reg);
}

static void histogram_buckets_are_cumulative(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  const double b[] = {0.1, 0.5, 1};
  es_family_params_t p = es_family_default_params();
  p.type = ES_METRIC_HISTOGRAM;
  p.name = "lat_seconds";
  p.help = "Latency.";
  p.buckets = b;
  p.nbuckets = 3;
  es_metric_family_t *f;
  assert_int_equal(es_metrics_register(reg, &p, &f, NULL), 0);
  es_metric_t *m = series(f, NULL);
  /* a value equal to a bound goes in that bound's bucket (le = "<=") */
  const double obs[] = {0.05, 0.1, 0.2, 0.5, 0.75, 2, 100, -1};
  for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
    assert_int_equal(es_histo_observe(m, obs[i]), 0);
  assert_int_equal(es_histo_observe(m, NAN), ES_EINVAL);
  uint64_t cum[4], count;
  double sum;
  assert_int_equal(es_histo_read(m, cum, &count, &sum), 0);
  assert_int_equal(cum[0], 3); /* -1, 0.05, 0.1 */
  assert_int_equal(cum[1], 5); /* + 0.2, 0.5 */
  assert_int_equal(cum[2], 6); /* + 0.75 */
  assert_int_equal(cum[3], 8); /* + 2, 100 */
  assert_int_equal(count, 8);
  assert_true(fabs(sum - 102.6) < 1e-12);
  assert_true(es_metric_value(m) == sum);
  char *text = render(reg);
  assert_string_equal(text, "# HELP lat_seconds Latency.\n"
                            "# TYPE lat_seconds histogram\n"
                            "lat_seconds_bucket{le=\"0.1\"} 3\n"
                            "lat_seconds_bucket{le=\"0.5\"} 5\n"
                            "lat_seconds_bucket{le=\"1\"} 6\n"
                            "lat_seconds_bucket{le=\"+Inf\"} 8\n"
                            "lat_seconds_sum 102.6\n"
                            "lat_seconds_count 8\n");
  free(text);
  /* the default bounds */
  es_metric_family_t *d = reg_family(reg, ES_METRIC_HISTOGRAM, "d_seconds", "h", NULL, 0);
  es_metric_t *md = series(d, NULL);
  es_histo_observe(md, 0.0005);
  es_histo_observe(md, 11);
  uint64_t dc[15];
  es_histo_read(md, dc, NULL, NULL);
  assert_int_equal(dc[0], 1);
  assert_int_equal(dc[13], 1);
  assert_int_equal(dc[14], 2);
  es_metrics_free(reg);
}

/* ---- rendering -------------------------------------------------------------------------- */

static void a_small_registry_renders_to_the_exact_golden_text(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  const char *mv[] = {"model", "version"};
  const char *m1[] = {"model"};
  /* registered out of order: rendered sorted by name */
  es_metric_family_t *pend =
      reg_family(reg, ES_METRIC_GAUGE, "es_pending_requests", "Requests in flight.", m1, 1);
  es_metric_family_t *req =
      reg_family(reg, ES_METRIC_COUNTER, "es_requests_total", "Requests answered.", mv, 2);
  es_family_params_t p = es_family_default_params();
  p.type = ES_METRIC_HISTOGRAM;
  p.name = "es_queue_seconds";
  p.help = "Queue wait.";
  p.labels = m1;
  p.nlabels = 1;
  p.buckets = (const double[]){0.005, 0.25};
  p.nbuckets = 2;
  es_metric_family_t *q;
  assert_int_equal(es_metrics_register(reg, &p, &q, NULL), 0);
  reg_family(reg, ES_METRIC_COUNTER, "es_unused_total", "Never updated.", m1, 1);
  reg_family(reg, ES_METRIC_GAUGE, "es_budget_bytes", "Budget.", NULL, 0);

  es_counter_add(series(req, (const char *[]){"text", "1"}), 3);
  es_counter_inc(series(req, (const char *[]){"media", "2"}));
  es_counter_add(series(req, (const char *[]){"media", "10"}), 0.5);
  es_gauge_set(series(pend, (const char *[]){"media"}), 2);
  es_metric_t *qm = series(q, (const char *[]){"media"});
  es_histo_observe(qm, 0.001);
  es_histo_observe(qm, 0.125);
  es_histo_observe(qm, 0.5);

  char *text = render(reg);
  assert_string_equal(text, "# HELP es_budget_bytes Budget.\n"
                            "# TYPE es_budget_bytes gauge\n"
                            "es_budget_bytes 0\n"
                            "# HELP es_pending_requests Requests in flight.\n"
                            "# TYPE es_pending_requests gauge\n"
                            "es_pending_requests{model=\"media\"} 2\n"
                            "# HELP es_queue_seconds Queue wait.\n"
                            "# TYPE es_queue_seconds histogram\n"
                            "es_queue_seconds_bucket{model=\"media\",le=\"0.005\"} 1\n"
                            "es_queue_seconds_bucket{model=\"media\",le=\"0.25\"} 2\n"
                            "es_queue_seconds_bucket{model=\"media\",le=\"+Inf\"} 3\n"
                            "es_queue_seconds_sum{model=\"media\"} 0.626\n"
                            "es_queue_seconds_count{model=\"media\"} 3\n"
                            "# HELP es_requests_total Requests answered.\n"
                            "# TYPE es_requests_total counter\n"
                            "es_requests_total{model=\"media\",version=\"10\"} 0.5\n"
                            "es_requests_total{model=\"media\",version=\"2\"} 1\n"
                            "es_requests_total{model=\"text\",version=\"1\"} 3\n");
  free(text);

  /* the FILE variant writes the same text */
  char *mem = NULL;
  size_t memlen = 0;
  FILE *f = open_memstream(&mem, &memlen);
  assert_non_null(f);
  assert_int_equal(es_metrics_write(reg, f), 0);
  fclose(f);
  text = render(reg);
  assert_string_equal(mem, text);
  free(text);
  free(mem);
  es_metrics_free(reg);
}

static void label_values_and_help_are_escaped_on_output(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  const char *l[] = {"path"};
  es_metric_family_t *f =
      reg_family(reg, ES_METRIC_GAUGE, "g", "Help with \\ and\nnewline and \"quotes\".", l, 1);
  es_gauge_set(series(f, (const char *[]){"C:\\dir\n\"quoted\" ✓"}), 1);
  char *text = render(reg);
  assert_string_equal(text, "# HELP g Help with \\\\ and\\nnewline and \"quotes\".\n"
                            "# TYPE g gauge\n"
                            "g{path=\"C:\\\\dir\\n\\\"quoted\\\" ✓\"} 1\n");
  free(text);
  es_metrics_free(reg);
}

static void floats_render_so_they_round_trip(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  const char *l[] = {"i"};
  es_metric_family_t *f = reg_family(reg, ES_METRIC_GAUGE, "g", "h", l, 1);
  const double v[] = {0.1,  1.0 / 3, -2.5e-300, 123456789012345678.0,  4.9e-324,
                      1e15, -1e15,   0.3,       1.7976931348623157e308};
  char name[8];
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    snprintf(name, sizeof name, "%zu", i);
    es_gauge_set(series(f, (const char *[]){name}), v[i]);
  }
  char *text = render(reg);
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char key[32];
    snprintf(key, sizeof key, "g{i=\"%zu\"} ", i);
    const char *at = strstr(text, key);
    assert_non_null(at);
    assert_true(strtod(at + strlen(key), NULL) == v[i]);
  }
  assert_non_null(strstr(text, "g{i=\"0\"} 0.1\n")); /* shortest form, not %.17g */
  assert_non_null(strstr(text, "g{i=\"7\"} 0.3\n"));
  free(text);
  /* special values */
  es_metrics_t *r2 = new_reg(0);
  es_metric_family_t *s = reg_family(r2, ES_METRIC_GAUGE, "s", "h", l, 1);
  es_gauge_set(series(s, (const char *[]){"a"}), INFINITY);
  es_gauge_set(series(s, (const char *[]){"b"}), -INFINITY);
  es_gauge_set(series(s, (const char *[]){"c"}), NAN);
  es_gauge_set(series(s, (const char *[]){"d"}), -0.0);
  text = render(r2);
  assert_string_equal(text, "# HELP s h\n# TYPE s gauge\n"
                            "s{i=\"a\"} +Inf\ns{i=\"b\"} -Inf\ns{i=\"c\"} NaN\ns{i=\"d\"} 0\n");
  free(text);
  es_metrics_free(r2);
  es_metrics_free(reg);
}

static void an_empty_registry_renders_an_empty_text_and_reuses_the_buffer(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  es_metrics_buf_t b = {0};
  assert_int_equal(es_metrics_render(reg, &b), 0);
  assert_string_equal(b.data, "");
  assert_int_equal(b.len, 0);
  es_metric_t *m = series(reg_family(reg, ES_METRIC_GAUGE, "g", "h", NULL, 0), NULL);
  assert_int_equal(es_metrics_render(reg, &b), 0);
  char *first = b.data;
  es_gauge_set(m, 3);
  assert_int_equal(es_metrics_render(reg, &b), 0); /* same size: same storage */
  assert_ptr_equal(b.data, first);
  assert_string_equal(b.data, "# HELP g h\n# TYPE g gauge\ng 3\n");
  es_metrics_buf_free(&b);
  assert_null(b.data);
  es_metrics_buf_free(&b); /* twice is fine */
  es_metrics_free(reg);
}

/* ---- callbacks and hooks ---------------------------------------------------------------- */

static double by_kind(void *ctx, const char *const *values) {
  const double *figures = ctx;
  return strcmp(values[0], "model") == 0 ? figures[0] : figures[1];
}

static void set_from_hook(es_metrics_t *reg, void *ctx) {
  (void)reg;
  es_metric_t *m = ctx;
  es_gauge_add(m, 1); /* counts scrapes */
}

static void callbacks_and_hooks_give_values_at_scrape_time(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  const char *l[] = {"kind"};
  es_metric_family_t *f = reg_family(reg, ES_METRIC_GAUGE, "mem_bytes", "h", l, 1);
  double figures[2] = {100, 7};
  es_metric_t *mm = series(f, (const char *[]){"model"});
  es_metric_t *mc = series(f, (const char *[]){"cache"});
  assert_int_equal(es_metric_set_callback(mm, by_kind, figures), 0);
  assert_int_equal(es_metric_set_callback(mc, by_kind, figures), 0);
  es_metric_t *scrapes = series(reg_family(reg, ES_METRIC_GAUGE, "scrapes", "h", NULL, 0), NULL);
  assert_int_equal(es_metrics_on_scrape(reg, set_from_hook, scrapes), 0);
  char *text = render(reg);
  assert_non_null(strstr(text, "mem_bytes{kind=\"cache\"} 7\nmem_bytes{kind=\"model\"} 100\n"));
  assert_non_null(strstr(text, "scrapes 1\n"));
  free(text);
  figures[0] = 250;
  text = render(reg);
  assert_non_null(strstr(text, "mem_bytes{kind=\"model\"} 250\n"));
  assert_non_null(strstr(text, "scrapes 2\n"));
  free(text);
  /* back to the stored value */
  es_gauge_set(mm, 5);
  assert_int_equal(es_metric_set_callback(mm, NULL, NULL), 0);
  text = render(reg);
  assert_non_null(strstr(text, "mem_bytes{kind=\"model\"} 5\n"));
  free(text);
  /* histograms take no callback; hooks are bounded */
  es_metric_t *h = series(reg_family(reg, ES_METRIC_HISTOGRAM, "h_seconds", "h", NULL, 0), NULL);
  assert_int_equal(es_metric_set_callback(h, by_kind, figures), ES_EINVAL);
  for (int i = 1; i < ES_METRICS_MAX_HOOKS; i++)
    assert_int_equal(es_metrics_on_scrape(reg, set_from_hook, scrapes), 0);
  assert_int_equal(es_metrics_on_scrape(reg, set_from_hook, scrapes), ES_EFULL);
  es_metrics_free(reg);
}

/* ---- the standard set ------------------------------------------------------------------- */

static void the_standard_set_registers_every_family_once(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  es_inference_metrics_t im;
  es_error_t err;
  assert_int_equal(es_metrics_register_inference(reg, &im, &err), 0);
  es_metric_family_t **slots = (es_metric_family_t **)&im;
  for (size_t i = 0; i < sizeof im / sizeof *slots; i++) assert_non_null(slots[i]);
  es_counter_inc(series(im.requests, (const char *[]){"media", "1", "success"}));
  es_counter_inc(series(im.failures, (const char *[]){"media", "1", "timeout"}));
  es_histo_observe(series(im.compute_duration, (const char *[]){"media", "1", "infer"}), 0.003);
  es_gauge_set(series(im.quality_level, (const char *[]){"media"}), 1);
  es_gauge_set(series(im.memory_budget, (const char *[]){"process"}), 335544320);
  es_gauge_set(series(im.memory_pressure, NULL), 2);
  char *text = render(reg);
  assert_non_null(strstr(text, "edgeserve_inference_requests_total{model=\"media\",version=\"1\","
                               "outcome=\"success\"} 1\n"));
  assert_non_null(strstr(text, "edgeserve_inference_failures_total{model=\"media\",version=\"1\","
                               "reason=\"timeout\"} 1\n"));
  assert_non_null(strstr(text,
                         "edgeserve_inference_compute_duration_seconds_bucket{model=\"media\","
                         "version=\"1\",stage=\"infer\",le=\"0.005\"} 1\n"));
  assert_non_null(strstr(text, "edgeserve_quality_level{model=\"media\"} 1\n"));
  assert_non_null(strstr(text, "edgeserve_memory_budget_bytes{kind=\"process\"} 335544320\n"));
  assert_non_null(strstr(text, "# TYPE edgeserve_memory_pressure_level gauge\n"
                               "edgeserve_memory_pressure_level 2\n"));
  free(text);
  /* a second registration of the set is refused */
  es_inference_metrics_t again;
  assert_int_equal(es_metrics_register_inference(reg, &again, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "already registered"));
  es_metrics_free(reg);
}

/* ---- threads ------------------------------------------------------------------------------ */

enum { NTHREADS = 4, NITER = 50000 };

typedef struct {
  es_metric_family_t *fam;
  es_metric_t *counter, *frac, *gauge, *histo;
} shared_t;

static void *hammer(void *arg) {
  shared_t *s = arg;
  for (int i = 0; i < NITER; i++) {
    es_counter_inc(s->counter);
    es_counter_add(s->frac, 0.5);
    es_gauge_add(s->gauge, (i & 1) ? -1.0 : 2.0);
    es_histo_observe(s->histo, (i % 4) * 0.25); /* 0, 0.25, 0.5, 0.75 */
    if (i % 1000 == 0) {                        /* lookups race with updates and each other */
      es_metric_t *m;
      char id[16];
      snprintf(id, sizeof id, "%d", i % 7);
      assert_int_equal(es_metric_series(s->fam, (const char *[]){id}, &m, NULL), 0);
      es_counter_inc(m);
    }
  }
  return NULL;
}

static void *scraper(void *arg) {
  es_metrics_t *reg = arg;
  es_metrics_buf_t b = {0};
  for (int i = 0; i < 20; i++) assert_int_equal(es_metrics_render(reg, &b), 0);
  es_metrics_buf_free(&b);
  return NULL;
}

static void concurrent_increments_from_4_threads_give_exact_totals(void **state) {
  (void)state;
  es_metrics_t *reg = new_reg(0);
  const char *l[] = {"id"};
  shared_t s;
  s.fam = reg_family(reg, ES_METRIC_COUNTER, "by_id_total", "h", l, 1);
  s.counter = series(reg_family(reg, ES_METRIC_COUNTER, "c_total", "h", NULL, 0), NULL);
  s.frac = series(reg_family(reg, ES_METRIC_COUNTER, "f_total", "h", NULL, 0), NULL);
  s.gauge = series(reg_family(reg, ES_METRIC_GAUGE, "g", "h", NULL, 0), NULL);
  es_family_params_t p = es_family_default_params();
  p.type = ES_METRIC_HISTOGRAM;
  p.name = "h_seconds";
  p.help = "h";
  p.buckets = (const double[]){0.25, 0.5};
  p.nbuckets = 2;
  es_metric_family_t *hf;
  assert_int_equal(es_metrics_register(reg, &p, &hf, NULL), 0);
  s.histo = series(hf, NULL);

  pthread_t t[NTHREADS + 1];
  for (int i = 0; i < NTHREADS; i++) assert_int_equal(pthread_create(&t[i], NULL, hammer, &s), 0);
  assert_int_equal(pthread_create(&t[NTHREADS], NULL, scraper, reg), 0);
  for (int i = 0; i <= NTHREADS; i++) pthread_join(t[i], NULL);

  const double n = (double)NTHREADS * NITER;
  assert_true(es_metric_value(s.counter) == n);
  assert_true(es_metric_value(s.frac) == n * 0.5); /* multiples of 0.5 add exactly */
  assert_true(es_metric_value(s.gauge) == n / 2);  /* +2 -1 per pair */
  uint64_t cum[3], count;
  double sum;
  es_histo_read(s.histo, cum, &count, &sum);
  assert_int_equal(cum[0], NTHREADS * NITER / 2); /* 0 and 0.25 */
  assert_int_equal(cum[1], NTHREADS * NITER * 3 / 4);
  assert_int_equal(count, NTHREADS * NITER);
  assert_true(sum == n / 4 * 1.5);
  double by_id = 0;
  for (int i = 0; i < 7; i++) {
    char id[16];
    snprintf(id, sizeof id, "%d", i);
    by_id += es_metric_value(series(s.fam, (const char *[]){id}));
  }
  assert_true(by_id == NTHREADS * (NITER / 1000));
  es_metrics_free(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_are_checked_against_the_prometheus_data_model),
      cmocka_unit_test(counters_must_end_in_total_and_nothing_else_does),
      cmocka_unit_test(duplicate_registration_is_an_error_with_a_message),
      cmocka_unit_test(lookups_of_the_same_labels_return_the_same_series),
      cmocka_unit_test(bad_label_values_are_refused),
      cmocka_unit_test(max_series_caps_the_registry),
      cmocka_unit_test(counters_never_go_down),
      cmocka_unit_test(gauges_go_up_and_down_and_keep_special_values),
      cmocka_unit_test(histogram_buckets_are_cumulative),
      cmocka_unit_test(a_small_registry_renders_to_the_exact_golden_text),
      cmocka_unit_test(label_values_and_help_are_escaped_on_output),
      cmocka_unit_test(floats_render_so_they_round_trip),
      cmocka_unit_test(an_empty_registry_renders_an_empty_text_and_reuses_the_buffer),
      cmocka_unit_test(callbacks_and_hooks_give_values_at_scrape_time),
      cmocka_unit_test(the_standard_set_registers_every_family_once),
      cmocka_unit_test(concurrent_increments_from_4_threads_give_exact_totals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
