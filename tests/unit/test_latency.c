/*
 * test_latency.c - the latency monitor: SLA counts and status, regression
 * detection (false positives, power, minimum sample size), alert state
 * machine with injected time, metrics feeding, concurrent recording.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "edgeserve/latency.h"

#define SEC 1000000ull
#define MS  1000ull

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) {
  return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

/* A lognormal latency: median `median_us`, log-sd sigma. */
static uint64_t lognormal(uint64_t *s, double median_us, double sigma) {
  double u1 = rng_unit(s), u2 = rng_unit(s);
  double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
  return (uint64_t)(median_us * exp(sigma * z));
}

static void fill(es_hist_t *h, uint64_t *seed, size_t n, double median_us) {
  for (size_t i = 0; i < n; i++) es_hist_record(h, lognormal(seed, median_us, 0.5));
}

#define MAX_EVENTS 32
typedef struct {
  es_latmon_event_t ev[MAX_EVENTS];
  char rule[MAX_EVENTS][32];
  int n;
} events_t;

static void on_event(void *ctx, const es_latmon_event_t *ev) {
  events_t *e = ctx;
  assert_true(e->n < MAX_EVENTS);
  e->ev[e->n] = *ev;
  strncpy(e->rule[e->n], ev->rule, sizeof e->rule[0] - 1);
  e->n++;
}

static es_latmon_t *mon_new(events_t *e) {
  es_latmon_params_t p = es_latmon_default_params();
  p.on_event = e ? on_event : NULL;
  p.event_ctx = e;
  es_error_t err;
  es_latmon_t *mon = es_latmon_new(&p, &err);
  assert_non_null(mon);
  return mon;
}

static es_latmodel_t *model_new(es_latmon_t *mon, const char *name) {
  es_latmodel_t *m = NULL;
  es_error_t err;
  assert_int_equal(es_latmon_model(mon, name, NULL, &m, &err), 0);
  assert_non_null(m);
  return m;
}

/* A CALLBACK rule reading *(double *)ctx. */
static double read_value(void *ctx, const char *model, uint64_t now_us) {
  (void)model, (void)now_us;
  return *(double *)ctx;
}

/* ---- models and SLA ----------------------------------------------------------- */

static void stage_names_are_the_metric_label_values(void **state) {
  (void)state;
  assert_string_equal(es_lat_stage_name(ES_LAT_QUEUE), "queue");
  assert_string_equal(es_lat_stage_name(ES_LAT_INFERENCE), "inference");
  assert_string_equal(es_lat_stage_name(ES_LAT_TOTAL), "total");
  assert_string_equal(es_lat_stage_name(ES_LAT_NSTAGES), "?");
}

static void model_registration_rejects_bad_duplicate_and_excess_models(void **state) {
  (void)state;
  es_latmon_params_t p = es_latmon_default_params();
  p.max_models = 2;
  es_error_t err;
  es_latmon_t *mon = es_latmon_new(&p, &err);
  assert_non_null(mon);
  es_latmodel_t *m, *a;
  assert_int_equal(es_latmon_model(mon, "", NULL, &m, &err), ES_EINVAL);
  assert_null(m);
  assert_int_equal(es_latmon_model(mon, "a", NULL, &a, &err), 0);
  assert_int_equal(es_latmon_model(mon, "a", NULL, &m, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "already registered"));
  es_latmon_model_params_t mp = es_latmon_model_default_params();
  mp.sla[ES_LAT_QUEUE] = (es_lat_sla_t){1.5, 1000};
  assert_int_equal(es_latmon_model(mon, "b", &mp, &m, &err), ES_EINVAL);
  mp = es_latmon_model_default_params();
  mp.windows = 1u << ES_LAT_NSTAGES;
  assert_int_equal(es_latmon_model(mon, "b", &mp, &m, &err), ES_EINVAL);
  assert_int_equal(es_latmon_model(mon, "b", NULL, &m, &err), 0);
  assert_int_equal(es_latmon_model(mon, "c", NULL, &m, &err), ES_EFULL);
  assert_ptr_equal(es_latmon_find(mon, "a"), a);
  assert_null(es_latmon_find(mon, "c"));
  assert_string_equal(es_latmodel_name(a), "a");
  es_latmon_free(mon);
  p.max_rules = 0;
  assert_null(es_latmon_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
}

static void record_counts_samples_and_violations_exactly(void **state) {
  (void)state;
  es_latmon_t *mon = mon_new(NULL);
  es_latmodel_t *m = model_new(mon, "media");
  /* PREPROCESS has a 10 ms bound and no window; QUEUE has neither. */
  for (uint64_t i = 0; i < 100; i++) {
    es_latmon_record(m, ES_LAT_PREPROCESS, i < 7 ? 10001 : 10000, SEC);
    es_latmon_record(m, ES_LAT_QUEUE, 1000000, SEC);
  }
  es_latmon_sla_t s;
  assert_int_equal(es_latmon_sla(m, ES_LAT_PREPROCESS, ES_LATWIN_1MIN, SEC, &s), 0);
  assert_int_equal(s.count, 100);
  assert_int_equal(s.violations, 7);
  assert_false(s.windowed);
  assert_int_equal(s.status, ES_LATSLA_UNKNOWN);
  assert_int_equal(s.target.bound_us, 10000);
  assert_int_equal(es_latmon_sla(m, ES_LAT_QUEUE, ES_LATWIN_1MIN, SEC, &s), 0);
  assert_int_equal(s.count, 100);
  assert_int_equal(s.violations, 0);
  assert_int_equal(es_latmon_sla(m, ES_LAT_NSTAGES, ES_LATWIN_1MIN, SEC, &s), ES_EINVAL);
  assert_int_equal(es_latmon_sla(m, ES_LAT_TOTAL, ES_LATWIN_NSPANS, SEC, &s), ES_EINVAL);
  es_latmon_free(mon);
}

static void sla_status_follows_the_window_percentile(void **state) {
  (void)state;
  es_latmon_t *mon = mon_new(NULL);
  es_latmodel_t *m = model_new(mon, "media"); /* TOTAL: p95 <= 80 ms */
  uint64_t now = 100 * SEC;
  for (int i = 0; i < 100; i++) es_latmon_record(m, ES_LAT_TOTAL, i < 3 ? 90 * MS : 50 * MS, now);
  es_latmon_sla_t s;
  assert_int_equal(es_latmon_sla(m, ES_LAT_TOTAL, ES_LATWIN_1MIN, now, &s), 0);
  assert_true(s.windowed);
  assert_int_equal(s.win_count, 100);
  assert_int_equal(s.win_violations, 3);
  assert_true(fabs(s.win_rate - 0.03) < 1e-12);
  assert_true(s.win_percentile_us >= 49 * MS && s.win_percentile_us <= 51 * MS);
  assert_int_equal(s.status, ES_LATSLA_MET);
  for (int i = 0; i < 10; i++) es_latmon_record(m, ES_LAT_TOTAL, 90 * MS, now);
  assert_int_equal(es_latmon_sla(m, ES_LAT_TOTAL, ES_LATWIN_1MIN, now, &s), 0);
  assert_int_equal(s.win_violations, 13);
  assert_int_equal(s.violations, 13);
  assert_int_equal(s.status, ES_LATSLA_VIOLATED);
  /* Two minutes later the window is empty; the all-time counts remain. */
  assert_int_equal(es_latmon_sla(m, ES_LAT_TOTAL, ES_LATWIN_1MIN, now + 120 * SEC, &s), 0);
  assert_int_equal(s.win_count, 0);
  assert_int_equal(s.status, ES_LATSLA_UNKNOWN);
  assert_int_equal(s.count, 110);
  assert_int_equal(es_latmon_sla(m, ES_LAT_TOTAL, ES_LATWIN_ALL, now + 120 * SEC, &s), 0);
  assert_int_equal(s.win_count, 110);
  es_latmon_free(mon);
}

/* ---- regression ---------------------------------------------------------------- */

static void compare_identical_distributions_rarely_flags(void **state) {
  (void)state;
  es_hist_t *b = es_hist_new(), *c = es_hist_new();
  int flagged = 0, significant = 0;
  const int seeds = 400;
  for (uint64_t seed = 1; seed <= (uint64_t)seeds; seed++) {
    uint64_t s = seed;
    es_hist_reset(b), es_hist_reset(c);
    fill(b, &s, 2000, 20000);
    fill(c, &s, 500, 20000);
    es_latmon_regress_t r;
    assert_int_equal(es_latmon_compare(b, c, NULL, &r), 0);
    assert_true(r.enough);
    assert_int_equal(r.n_base, 2000);
    assert_int_equal(r.n_cur, 500);
    flagged += r.flagged;
    significant += r.z >= 3.09;
  }
  /* alpha = 0.001 per test: 0.4 expected over 400 seeds for z alone; the
   * effect-size gate lowers it further. Deterministic seeds: these are the
   * observed counts' upper bounds, not a flaky statistic. */
  assert_true(significant <= 2);
  assert_int_equal(flagged, 0);
  es_hist_free(b), es_hist_free(c);
}

static void compare_flags_a_one_and_a_half_times_slowdown(void **state) {
  (void)state;
  es_hist_t *b = es_hist_new(), *c = es_hist_new();
  for (uint64_t seed = 1; seed <= 100; seed++) {
    uint64_t s = seed;
    es_hist_reset(b), es_hist_reset(c);
    fill(b, &s, 2000, 20000);
    fill(c, &s, 300, 30000);
    es_latmon_regress_t r;
    assert_int_equal(es_latmon_compare(b, c, NULL, &r), 0);
    assert_true(r.flagged);
    assert_true(r.ratio > 1.2 && r.ratio < 2);
    assert_true(r.x_cur > r.n_cur / 5);
    assert_true(r.p_value < 0.001);
  }
  es_hist_free(b), es_hist_free(c);
}

static void compare_never_flags_with_too_few_samples(void **state) {
  (void)state;
  es_hist_t *b = es_hist_new(), *c = es_hist_new();
  for (uint64_t seed = 1; seed <= 50; seed++) {
    uint64_t s = seed;
    es_hist_reset(b), es_hist_reset(c);
    fill(b, &s, 2000, 20000);
    fill(c, &s, 199, 60000); /* 3x slower, one sample short of min_samples */
    es_latmon_regress_t r;
    assert_int_equal(es_latmon_compare(b, c, NULL, &r), 0);
    assert_false(r.enough);
    assert_false(r.flagged);
    assert_true(r.ratio > 2);
    /* ... and the same with a short baseline. */
    es_hist_reset(b), es_hist_reset(c);
    fill(b, &s, 150, 20000);
    fill(c, &s, 2000, 60000);
    assert_int_equal(es_latmon_compare(b, c, NULL, &r), 0);
    assert_false(r.flagged);
  }
  es_hist_t *e = es_hist_new();
  es_latmon_regress_t r;
  assert_int_equal(es_latmon_compare(e, c, NULL, &r), 0);
  assert_false(r.flagged);
  assert_true(r.ratio == 0);
  es_hist_free(e), es_hist_free(b), es_hist_free(c);
}

static void compare_ignores_significant_but_small_slowdowns(void **state) {
  (void)state;
  es_hist_t *b = es_hist_new(), *c = es_hist_new();
  uint64_t s = 7;
  fill(b, &s, 50000, 20000);
  fill(c, &s, 50000, 22000); /* 1.1x: overwhelming z, effect below 20% */
  es_latmon_regress_t r;
  assert_int_equal(es_latmon_compare(b, c, NULL, &r), 0);
  assert_true(r.z > 10);
  assert_true(r.ratio > 1.05 && r.ratio < 1.15);
  assert_false(r.flagged);
  es_latmon_regress_params_t p = es_latmon_regress_default_params();
  p.min_effect = 0.05;
  assert_int_equal(es_latmon_compare(b, c, &p, &r), 0);
  assert_true(r.flagged);
  p.q_split = 1;
  assert_int_equal(es_latmon_compare(b, c, &p, &r), ES_EINVAL);
  es_hist_free(b), es_hist_free(c);
}

static void compare_constant_latencies_do_not_flag(void **state) {
  (void)state;
  es_hist_t *b = es_hist_new(), *c = es_hist_new();
  es_hist_record_n(b, 5000, 1000);
  es_hist_record_n(c, 5000, 1000);
  es_latmon_regress_t r;
  assert_int_equal(es_latmon_compare(b, c, NULL, &r), 0);
  assert_false(r.enough); /* nothing above the split: the test has no variance */
  assert_false(r.flagged);
  es_hist_free(b), es_hist_free(c);
}

/* Baseline samples over [10 s, 240 s), current over [250 s, 300 s). */
static void record_phases(es_latmodel_t *m, uint64_t seed, double base_us, double cur_us) {
  uint64_t s = seed;
  for (uint64_t t = 10 * SEC; t < 240 * SEC; t += 100 * MS)
    es_latmon_record(m, ES_LAT_TOTAL, lognormal(&s, base_us, 0.5), t);
  for (uint64_t t = 250 * SEC; t < 300 * SEC; t += 100 * MS)
    es_latmon_record(m, ES_LAT_TOTAL, lognormal(&s, cur_us, 0.5), t);
}

static void regression_compares_the_last_minute_with_the_minutes_before(void **state) {
  (void)state;
  es_latmon_t *mon = mon_new(NULL);
  es_latmodel_t *slow = model_new(mon, "slow"), *same = model_new(mon, "same");
  record_phases(slow, 1, 20000, 30000);
  record_phases(same, 2, 20000, 20000);
  es_latmon_regress_t r;
  assert_int_equal(es_latmon_regression(slow, ES_LAT_TOTAL, 300 * SEC, &r), 0);
  /* The two never overlap: baseline = slices [10 s, 240 s), current = the
   * 1-minute window [245 s, 305 s). */
  assert_int_equal(r.n_base, 2300);
  assert_int_equal(r.n_cur, 500);
  assert_true(r.flagged);
  assert_int_equal(es_latmon_regression(same, ES_LAT_TOTAL, 300 * SEC, &r), 0);
  assert_int_equal(r.n_base, 2300);
  assert_false(r.flagged);
  assert_int_equal(es_latmon_regression(same, ES_LAT_QUEUE, 300 * SEC, &r), ES_EUNSUPPORTED);
  /* Early on, there is no baseline. */
  assert_int_equal(es_latmon_regression(same, ES_LAT_TOTAL, 20 * SEC, &r), 0);
  assert_int_equal(r.n_base, 0);
  assert_false(r.flagged);
  es_latmon_free(mon);
}

static void frozen_baseline_replaces_the_rolling_one(void **state) {
  (void)state;
  es_latmon_t *mon = mon_new(NULL);
  es_latmodel_t *m = model_new(mon, "media");
  record_phases(m, 3, 20000, 20000); /* no change against the rolling baseline */
  es_hist_t *fast = es_hist_new();
  uint64_t s = 9;
  fill(fast, &s, 1000, 10000); /* a frozen baseline twice as fast */
  assert_int_equal(es_latmon_set_baseline(m, ES_LAT_TOTAL, fast), 0);
  es_hist_free(fast); /* the monitor keeps a copy */
  es_latmon_regress_t r;
  assert_int_equal(es_latmon_regression(m, ES_LAT_TOTAL, 300 * SEC, &r), 0);
  assert_int_equal(r.n_base, 1000);
  assert_true(r.flagged);
  assert_int_equal(es_latmon_set_baseline(m, ES_LAT_TOTAL, NULL), 0);
  assert_int_equal(es_latmon_regression(m, ES_LAT_TOTAL, 300 * SEC, &r), 0);
  assert_int_equal(r.n_base, 2300);
  assert_false(r.flagged);
  assert_int_equal(es_latmon_set_baseline(m, ES_LAT_BATCH, NULL), ES_EUNSUPPORTED);
  es_latmon_free(mon);
}

/* ---- alerts -------------------------------------------------------------------- */

static es_latmon_rule_params_t value_rule(const char *name, double *value) {
  es_latmon_rule_params_t r = es_latmon_rule_default_params();
  r.name = name;
  r.metric = ES_LATMETRIC_CALLBACK;
  r.fn = read_value;
  r.ctx = value;
  r.warning = 100, r.critical = 200;
  r.warning_for_us = 300 * SEC, r.critical_for_us = 60 * SEC;
  return r;
}

/* Evaluates every 10 s from t0 (inclusive) to t1 (exclusive). */
static void run(es_latmon_t *mon, uint64_t t0, uint64_t t1) {
  for (uint64_t t = t0; t < t1; t += 10 * SEC) assert_int_equal(es_latmon_evaluate(mon, t), 0);
}

static void alert_held_shorter_than_for_never_fires(void **state) {
  (void)state;
  events_t e = {0};
  es_latmon_t *mon = mon_new(&e);
  model_new(mon, "media");
  double v = 150;
  es_latmon_rule_params_t r = value_rule("errors", &v);
  es_error_t err;
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), 0);
  run(mon, 0, 290 * SEC); /* held from 0 to 280 s: 280 s < 300 s */
  es_latmon_alert_t a;
  assert_int_equal(es_latmon_alert(mon, "errors", "media", &a), 0);
  assert_int_equal(a.state, ES_LATALERT_PENDING);
  assert_int_equal(a.since_us, 0);
  v = 50;
  run(mon, 290 * SEC, 400 * SEC);
  assert_int_equal(e.n, 0);
  assert_int_equal(es_latmon_alert(mon, "errors", "media", &a), 0);
  assert_int_equal(a.state, ES_LATALERT_INACTIVE);
  assert_int_equal(a.fired, 0);
  /* The clock restarts: another 280 s is still too short. */
  v = 150;
  run(mon, 400 * SEC, 690 * SEC);
  assert_int_equal(e.n, 0);
  es_latmon_free(mon);
}

static void alert_held_longer_than_for_fires_once_then_resolves(void **state) {
  (void)state;
  events_t e = {0};
  es_latmon_t *mon = mon_new(&e);
  model_new(mon, "media");
  double v = 150;
  es_latmon_rule_params_t r = value_rule("errors", &v);
  es_error_t err;
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), 0);
  run(mon, 0, 600 * SEC);
  assert_int_equal(e.n, 1);
  assert_int_equal(e.ev[0].kind, ES_LATMON_FIRING);
  assert_int_equal(e.ev[0].severity, ES_LATMON_WARNING);
  assert_int_equal(e.ev[0].now_us, 300 * SEC);
  assert_int_equal(e.ev[0].since_us, 0);
  assert_string_equal(e.rule[0], "errors");
  assert_true(e.ev[0].value == 150 && e.ev[0].threshold == 100);
  es_latmon_alert_t a;
  assert_int_equal(es_latmon_alert(mon, "errors", "media", &a), 0);
  assert_int_equal(a.state, ES_LATALERT_FIRING);
  assert_int_equal(a.severity, ES_LATMON_WARNING);
  assert_int_equal(a.since_us, 300 * SEC);
  v = 99;
  run(mon, 600 * SEC, 700 * SEC);
  assert_int_equal(e.n, 2);
  assert_int_equal(e.ev[1].kind, ES_LATMON_RESOLVED);
  assert_int_equal(e.ev[1].severity, ES_LATMON_WARNING);
  assert_int_equal(e.ev[1].now_us, 600 * SEC);
  assert_int_equal(e.ev[1].since_us, 300 * SEC);
  assert_int_equal(es_latmon_alert(mon, "errors", "media", &a), 0);
  assert_int_equal(a.state, ES_LATALERT_INACTIVE);
  assert_int_equal(a.fired, 1);
  /* No data (NaN) does not hold either. */
  v = NAN;
  run(mon, 700 * SEC, 1200 * SEC);
  assert_int_equal(e.n, 2);
  es_latmon_free(mon);
}

static void alert_escalates_to_critical_and_back(void **state) {
  (void)state;
  events_t e = {0};
  es_metrics_t *reg = es_metrics_new(NULL, NULL);
  assert_non_null(reg);
  es_latmon_params_t p = es_latmon_default_params();
  p.on_event = on_event, p.event_ctx = &e, p.metrics = reg;
  es_error_t err;
  es_latmon_t *mon = es_latmon_new(&p, &err);
  assert_non_null(mon);
  model_new(mon, "media");
  double v = 150;
  es_latmon_rule_params_t r = value_rule("rt", &v);
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), 0);
  run(mon, 0, 310 * SEC); /* warning at 300 s */
  v = 250;
  run(mon, 310 * SEC, 400 * SEC); /* critical held from 310 s: fires at 370 s */
  v = 150;
  run(mon, 400 * SEC, 410 * SEC); /* back to warning at once (warning held since 0) */
  v = 10;
  run(mon, 410 * SEC, 420 * SEC);
  assert_int_equal(e.n, 4);
  int sev[4] = {ES_LATMON_WARNING, ES_LATMON_CRITICAL, ES_LATMON_WARNING, ES_LATMON_WARNING};
  int kind[4] = {ES_LATMON_FIRING, ES_LATMON_FIRING, ES_LATMON_FIRING, ES_LATMON_RESOLVED};
  uint64_t at[4] = {300 * SEC, 370 * SEC, 400 * SEC, 410 * SEC};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(e.ev[i].severity, sev[i]);
    assert_int_equal(e.ev[i].kind, kind[i]);
    assert_int_equal(e.ev[i].now_us, at[i]);
  }
  assert_true(e.ev[1].threshold == 200);
  assert_int_equal(e.ev[1].since_us, 310 * SEC);
  es_metrics_buf_t out = {0};
  assert_int_equal(es_metrics_render(reg, &out), 0);
  assert_non_null(strstr(
      out.data, "edgeserve_alerts_total{model=\"media\",rule=\"rt\",severity=\"warning\"} 2"));
  assert_non_null(strstr(
      out.data, "edgeserve_alerts_total{model=\"media\",rule=\"rt\",severity=\"critical\"} 1"));
  assert_non_null(strstr(out.data, "edgeserve_alert_state{model=\"media\",rule=\"rt\"} 0"));
  es_metrics_buf_free(&out);
  /* One monitor per registry: the alert families exist already. */
  assert_null(es_latmon_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  es_latmon_free(mon);
  es_metrics_free(reg);
}

static void alert_below_rule_fires_when_the_value_drops(void **state) {
  (void)state;
  events_t e = {0};
  es_latmon_t *mon = mon_new(&e);
  model_new(mon, "media");
  double v = 20;
  es_latmon_rule_params_t r = value_rule("throughput", &v);
  r.below = true, r.warning = 5, r.critical = NAN, r.warning_for_us = 0;
  es_error_t err;
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), 0);
  run(mon, 0, 30 * SEC);
  v = 4;
  run(mon, 30 * SEC, 40 * SEC);
  assert_int_equal(e.n, 1);
  assert_int_equal(e.ev[0].now_us, 30 * SEC);
  es_latmon_free(mon);
}

static void percentile_rule_fires_on_recorded_latencies(void **state) {
  (void)state;
  events_t e = {0};
  es_latmon_t *mon = mon_new(&e);
  es_latmodel_t *m = model_new(mon, "media");
  es_error_t err;
  es_latmon_rule_params_t r = es_latmon_rule_default_params(); /* p95 > 200 ms: critical at once */
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), 0);
  for (int i = 0; i < 19; i++) es_latmon_record(m, ES_LAT_TOTAL, 250 * MS, 10 * SEC);
  assert_int_equal(es_latmon_evaluate(mon, 10 * SEC), 0);
  assert_int_equal(e.n, 0); /* 19 samples < min_samples 20: no data */
  es_latmon_record(m, ES_LAT_TOTAL, 250 * MS, 10 * SEC);
  assert_int_equal(es_latmon_evaluate(mon, 10 * SEC), 0);
  assert_int_equal(e.n, 1);
  assert_int_equal(e.ev[0].severity, ES_LATMON_CRITICAL);
  assert_true(fabs(e.ev[0].value - 250000) < 250000 / 128.0);
  /* A minute later the window has forgotten them: resolved. */
  assert_int_equal(es_latmon_evaluate(mon, 80 * SEC), 0);
  assert_int_equal(e.n, 2);
  assert_int_equal(e.ev[1].kind, ES_LATMON_RESOLVED);
  assert_int_equal(es_latmon_evaluate(mon, 70 * SEC), ES_EINVAL); /* time went back */
  es_latmon_free(mon);
}

static void violation_rate_and_regression_rules_read_the_windows(void **state) {
  (void)state;
  events_t e = {0};
  es_latmon_t *mon = mon_new(&e);
  es_latmodel_t *m = model_new(mon, "media");
  es_error_t err;
  es_latmon_rule_params_t r = es_latmon_rule_default_params();
  r.name = "sla_rate", r.metric = ES_LATMETRIC_VIOLATION_RATE;
  r.warning = 0.05, r.critical = 0.10, r.warning_for_us = 0, r.critical_for_us = 0;
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), 0);
  r.name = "regress", r.metric = ES_LATMETRIC_REGRESSION, r.warning = 1.2, r.critical = 3;
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), 0);
  record_phases(m, 5, 20000, 30000);
  for (int i = 0; i < 20; i++) es_latmon_record(m, ES_LAT_TOTAL, 90 * MS, 299 * SEC);
  assert_int_equal(es_latmon_evaluate(mon, 300 * SEC), 0);
  es_latmon_alert_t a;
  assert_int_equal(es_latmon_alert(mon, "sla_rate", "media", &a), 0);
  assert_int_equal(a.severity, ES_LATMON_WARNING);
  assert_true(a.value > 0.05 && a.value < 0.10);
  assert_int_equal(es_latmon_alert(mon, "regress", "media", &a), 0);
  assert_int_equal(a.severity, ES_LATMON_WARNING);
  assert_true(a.value > 1.2 && a.value < 3);
  assert_int_equal(e.n, 2);
  es_latmon_free(mon);
}

static void add_rule_rejects_invalid_rules(void **state) {
  (void)state;
  es_latmon_t *mon = mon_new(NULL);
  model_new(mon, "media");
  es_error_t err;
  es_latmon_rule_params_t r = es_latmon_rule_default_params();
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), 0);
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), ES_EINVAL); /* duplicate */
  r.name = "bad name";
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), ES_EINVAL);
  r.name = "x", r.warning = r.critical = NAN;
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "threshold"));
  r = es_latmon_rule_default_params();
  r.name = "x", r.model = "nope";
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), ES_EINVAL);
  r.model = "media", r.stage = ES_LAT_QUEUE; /* no windows on QUEUE */
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "windows"));
  r.stage = ES_LAT_TOTAL, r.metric = ES_LATMETRIC_CALLBACK; /* no fn */
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), ES_EINVAL);
  es_latmon_alert_t a;
  assert_int_equal(es_latmon_alert(mon, "x", "media", &a), ES_EINVAL);
  es_latmon_free(mon);
}

static void wildcard_rule_applies_to_later_models_that_fit(void **state) {
  (void)state;
  events_t e = {0};
  es_latmon_t *mon = mon_new(&e);
  es_error_t err;
  es_latmon_rule_params_t r = es_latmon_rule_default_params();
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), 0);
  es_latmodel_t *a = model_new(mon, "a");
  es_latmon_model_params_t mp = es_latmon_model_default_params();
  mp.windows = 1u << ES_LAT_INFERENCE; /* nothing for a TOTAL rule to read */
  es_latmodel_t *b;
  assert_int_equal(es_latmon_model(mon, "b", &mp, &b, &err), 0);
  for (int i = 0; i < 50; i++) {
    es_latmon_record(a, ES_LAT_TOTAL, 300 * MS, SEC);
    es_latmon_record(b, ES_LAT_TOTAL, 300 * MS, SEC);
  }
  assert_int_equal(es_latmon_evaluate(mon, SEC), 0);
  assert_int_equal(e.n, 1);
  assert_string_equal(e.ev[0].model, "a");
  es_latmon_alert_t st;
  assert_int_equal(es_latmon_alert(mon, "latency_p95", "b", &st), ES_EINVAL);
  es_latmon_free(mon);
}

/* ---- metrics and threads -------------------------------------------------------- */

static void metrics_receive_violations_and_durations(void **state) {
  (void)state;
  es_metrics_t *reg = es_metrics_new(NULL, NULL);
  es_inference_metrics_t im;
  assert_int_equal(es_metrics_register_inference(reg, &im, NULL), 0);
  es_latmon_params_t p = es_latmon_default_params();
  p.metrics = reg, p.inference = &im;
  es_latmon_t *mon = es_latmon_new(&p, NULL);
  assert_non_null(mon);
  es_latmodel_t *m = model_new(mon, "media");
  es_latmon_record(m, ES_LAT_TOTAL, 90 * MS, SEC);
  es_latmon_record(m, ES_LAT_TOTAL, 10 * MS, SEC);
  es_latmon_record(m, ES_LAT_INFERENCE, 60 * MS, SEC);
  es_latmon_record(m, ES_LAT_BATCH, 60 * MS, SEC);
  es_metric_t *s;
  assert_int_equal(
      es_metric_series(im.sla_violations, (const char *[]){"media", "total"}, &s, NULL), 0);
  assert_true(es_metric_value(s) == 1);
  assert_int_equal(
      es_metric_series(im.sla_violations, (const char *[]){"media", "inference"}, &s, NULL), 0);
  assert_true(es_metric_value(s) == 1);
  uint64_t n;
  double sum;
  assert_int_equal(es_metric_series(im.request_duration, (const char *[]){"media", "1"}, &s, NULL),
                   0);
  assert_int_equal(es_histo_read(s, NULL, &n, &sum), 0);
  assert_int_equal(n, 2);
  assert_true(fabs(sum - 0.1) < 1e-9);
  assert_int_equal(
      es_metric_series(im.compute_duration, (const char *[]){"media", "1", "infer"}, &s, NULL), 0);
  assert_int_equal(es_histo_read(s, NULL, &n, NULL), 0);
  assert_int_equal(n, 1);
  es_latmon_free(mon);
  es_metrics_free(reg);
}

#define THREAD_RECORDS 100000
static void *recorder(void *arg) {
  es_latmodel_t *m = arg;
  for (uint64_t i = 0; i < THREAD_RECORDS; i++)
    es_latmon_record(m, ES_LAT_TOTAL, i % 10 ? 1000 : 100 * MS, i / 1000 * SEC / 10);
  return NULL;
}

static void concurrent_records_are_all_counted(void **state) {
  (void)state;
  es_latmon_t *mon = mon_new(NULL);
  es_latmodel_t *m = model_new(mon, "media");
  es_error_t err;
  es_latmon_rule_params_t r = es_latmon_rule_default_params();
  assert_int_equal(es_latmon_add_rule(mon, &r, &err), 0);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, recorder, m), 0);
  for (int i = 0; i < 20; i++) assert_int_equal(es_latmon_evaluate(mon, (uint64_t)i * SEC / 2), 0);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  es_latmon_sla_t s;
  assert_int_equal(es_latmon_sla(m, ES_LAT_TOTAL, ES_LATWIN_ALL, 10 * SEC, &s), 0);
  assert_int_equal(s.count, 2 * THREAD_RECORDS);
  assert_int_equal(s.violations, 2 * THREAD_RECORDS / 10);
  assert_int_equal(s.win_count, 2 * THREAD_RECORDS);
  assert_int_equal(s.win_violations, 2 * THREAD_RECORDS / 10);
  es_latmon_free(mon);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stage_names_are_the_metric_label_values),
      cmocka_unit_test(model_registration_rejects_bad_duplicate_and_excess_models),
      cmocka_unit_test(record_counts_samples_and_violations_exactly),
      cmocka_unit_test(sla_status_follows_the_window_percentile),
      cmocka_unit_test(compare_identical_distributions_rarely_flags),
      cmocka_unit_test(compare_flags_a_one_and_a_half_times_slowdown),
      cmocka_unit_test(compare_never_flags_with_too_few_samples),
      cmocka_unit_test(compare_ignores_significant_but_small_slowdowns),
      cmocka_unit_test(compare_constant_latencies_do_not_flag),
      cmocka_unit_test(regression_compares_the_last_minute_with_the_minutes_before),
      cmocka_unit_test(frozen_baseline_replaces_the_rolling_one),
      cmocka_unit_test(alert_held_shorter_than_for_never_fires),
      cmocka_unit_test(alert_held_longer_than_for_fires_once_then_resolves),
      cmocka_unit_test(alert_escalates_to_critical_and_back),
      cmocka_unit_test(alert_below_rule_fires_when_the_value_drops),
      cmocka_unit_test(percentile_rule_fires_on_recorded_latencies),
      cmocka_unit_test(violation_rate_and_regression_rules_read_the_windows),
      cmocka_unit_test(add_rule_rejects_invalid_rules),
      cmocka_unit_test(wildcard_rule_applies_to_later_models_that_fit),
      cmocka_unit_test(metrics_receive_violations_and_durations),
      cmocka_unit_test(concurrent_records_are_all_counted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
