/* test_quality.c - the adaptive quality manager on synthetic load traces:
 * ramp up and down, spikes, oscillation, recovery, the floor, priority,
 * determinism, each signal alone, the evaluation grid, parameter checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "edgeserve/metrics.h"
#include "edgeserve/quality.h"

#define SEC 1000000LL
#define MS  1000LL

/* A calm machine: p95 40 ms against 80 ms, 30% CPU, 50 C, empty queue. */
static es_load_sample_t calm(void) {
  es_load_sample_t s = {.queue_depth = 0,
                        .queue_limit = 256,
                        .p95_us = 40 * MS,
                        .sla_p95_us = 80 * MS,
                        .cpu = 0.30,
                        .memory = 0,
                        .temp_c = 50};
  return s;
}

static es_load_sample_t with_p95(int64_t ms) {
  es_load_sample_t s = calm();
  s.p95_us = ms * MS;
  return s;
}

static es_load_sample_t with_cpu(double cpu) {
  es_load_sample_t s = calm();
  s.cpu = cpu;
  return s;
}

static es_quality_mgr_t *make(const es_quality_params_t *p) {
  es_error_t err = {0};
  es_quality_mgr_t *q = es_quality_new(p, &err);
  if (!q) fprintf(stderr, "es_quality_new: %s\n", err.msg);
  assert_non_null(q);
  return q;
}

/* Feeds samples at t = i * step and keeps the decisions. */
static void run(es_quality_mgr_t *q, const es_load_sample_t *s, int n, int64_t step,
                es_quality_decision_t *d) {
  for (int i = 0; i < n; i++) assert_int_equal(es_quality_update(q, &s[i], i * step, &d[i]), 0);
}

/* Records every on_switch call. */
typedef struct {
  int n;
  char reason[16][160];
  int from[16], to[16];
  int64_t at[16];
} switch_log_t;

static void log_switch(void *ud, const es_quality_decision_t *d) {
  switch_log_t *l = ud;
  assert_int_equal(d->switched, 1);
  if (l->n < 16) {
    snprintf(l->reason[l->n], sizeof l->reason[l->n], "%s", d->reason);
    l->from[l->n] = d->from;
    l->to[l->n] = d->variant;
    l->at[l->n] = d->now_us;
  }
  l->n++;
}

/* ---- parameters ------------------------------------------------------------- */

static void defaults_hold_the_users_figures(void **state) {
  (void)state;
  es_quality_params_t p = es_quality_default_params();
  assert_int_equal(p.nvariants, 4);
  assert_int_equal(p.floor, 3);
  for (int l = 0; l < ES_LOAD_NLEVELS; l++) assert_int_equal(p.level_variant[l], l);
  assert_true(p.signal[ES_SIGNAL_QUEUE].enter[ES_LOAD_ELEVATED] == 20); /* queue alert > 20 */
  assert_true(p.signal[ES_SIGNAL_P95].enter[ES_LOAD_ELEVATED] == 1.0);  /* over the SLA */
  assert_true(p.signal[ES_SIGNAL_P95].enter[ES_LOAD_CRITICAL] == 2.5);  /* 200 ms vs 80 ms */
  assert_true(p.signal[ES_SIGNAL_CPU].enter[ES_LOAD_ELEVATED] == 0.70); /* CPU 70 / 85 % */
  assert_true(p.signal[ES_SIGNAL_CPU].enter[ES_LOAD_HIGH] == 0.85);
  assert_true(p.signal[ES_SIGNAL_TEMP].enter[ES_LOAD_HIGH] == 80); /* throttling 80 C */
  assert_true(p.signal[ES_SIGNAL_TEMP].enter[ES_LOAD_CRITICAL] == 85);
  assert_int_equal(p.eval_interval_us, 30 * SEC); /* re-evaluated every 30 s */
  assert_int_equal(p.confirm_up, 2);
  assert_int_equal(p.confirm_down, 3);
  assert_int_equal(p.dwell_us, 60 * SEC);
  assert_null(p.on_switch);
  assert_null(p.affordable);
  assert_string_equal(es_load_level_name(ES_LOAD_CRITICAL), "critical");
  assert_string_equal(es_load_level_name((es_load_level_t)7), "?");
  assert_string_equal(es_load_signal_name(ES_SIGNAL_TEMP), "temperature");
  assert_string_equal(es_load_signal_name(ES_SIGNAL_NONE), "none");
}

static void expect_invalid(const es_quality_params_t *p, const char *needle) {
  es_error_t err = {0};
  assert_null(es_quality_new(p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  if (!strstr(err.msg, needle)) fprintf(stderr, "message: %s\n", err.msg);
  assert_non_null(strstr(err.msg, needle));
}

static void invalid_parameters_are_refused_with_a_reason(void **state) {
  (void)state;
  es_quality_params_t d = es_quality_default_params(), p;
  p = d, p.nvariants = 0, expect_invalid(&p, "nvariants 0");
  p = d, p.nvariants = ES_QUALITY_MAX_VARIANTS + 1, expect_invalid(&p, "nvariants 17");
  p = d, p.floor = -1, expect_invalid(&p, "floor -1");
  p = d, p.level_variant[ES_LOAD_HIGH] = 0, expect_invalid(&p, "level_variant[high] = 0");
  p = d, p.level_variant[0] = -2, expect_invalid(&p, "is negative");
  p = d, p.signal[ES_SIGNAL_CPU].enter[ES_LOAD_HIGH] = 0.5, expect_invalid(&p, "cpu threshold");
  p = d, p.signal[ES_SIGNAL_P95].enter[ES_LOAD_HIGH] = NAN, expect_invalid(&p, "not finite");
  p = d, p.signal[ES_SIGNAL_TEMP].hysteresis = -1, expect_invalid(&p, "temperature hysteresis");
  p = d, p.signal[ES_SIGNAL_P95].hysteresis = 1.0, expect_invalid(&p, "could never be left");
  p = d, p.queue_fraction[ES_LOAD_HIGH] = 1.5, expect_invalid(&p, "queue_fraction[high]");
  p = d, p.confirm_up = 0, expect_invalid(&p, "confirm_up 0");
  p = d, p.dwell_us = -1, expect_invalid(&p, "dwell_us -1");
  expect_invalid(NULL, "no parameters");
  /* disabled levels (threshold 0) are valid, and a floor past the ladder means none */
  p = d, p.signal[ES_SIGNAL_MEMORY].enter[ES_LOAD_HIGH] = 0, p.floor = 99;
  es_quality_mgr_t *q = make(&p);
  es_quality_free(q);
  es_quality_free(NULL);
}

static void bad_calls_are_refused_and_change_nothing(void **state) {
  (void)state;
  es_quality_params_t p = es_quality_default_params();
  es_quality_mgr_t *q = make(&p);
  es_load_sample_t s = calm();
  es_quality_decision_t d;
  assert_int_equal(es_quality_update(q, &s, 100 * SEC, &d), 0);
  assert_int_equal(es_quality_update(q, &s, 50 * SEC, &d), ES_EINVAL); /* time went back */
  assert_int_equal(es_quality_update(q, NULL, 200 * SEC, &d), ES_EINVAL);
  assert_int_equal(es_quality_update(q, &s, 200 * SEC, NULL), ES_EINVAL);
  assert_int_equal(es_quality_update(NULL, &s, 200 * SEC, &d), ES_EINVAL);
  es_quality_stats_t st;
  es_quality_stats(q, &st);
  assert_int_equal(st.evaluations, 1);
  assert_int_equal(st.time_in_level_us[ES_LOAD_OPTIMAL], 0);
  es_quality_free(q);
}

/* ---- traces ----------------------------------------------------------------- */

static void ramp_up_then_down_follows_the_load_with_dwell(void **state) {
  (void)state;
  /* p95 every 30 s: calm, over the SLA (elevated), x1.5 (high), calm again */
  static const int p95[] = {40, 40, 90, 90, 120, 120, 120, 120, 40, 40, 40, 40, 40};
  enum { N = sizeof p95 / sizeof *p95 };
  static const int want_level[N] = {0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 0, 0, 0};
  static const int want_variant[N] = {0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 1, 1, 0};
  es_load_sample_t s[N];
  for (int i = 0; i < N; i++) s[i] = with_p95(p95[i]);
  switch_log_t log = {0};
  es_quality_params_t p = es_quality_default_params();
  p.on_switch = log_switch;
  p.on_switch_ud = &log;
  es_quality_mgr_t *q = make(&p);
  es_quality_decision_t d[N];
  run(q, s, N, 30 * SEC, d);
  for (int i = 0; i < N; i++) {
    assert_int_equal(d[i].evaluated, 1);
    assert_int_equal(d[i].level, want_level[i]);
    assert_int_equal(d[i].variant, want_variant[i]);
    assert_int_equal(d[i].switched, i == 3 || i == 5 || i == 10 || i == 12);
  }
  assert_int_equal(d[5].signal, ES_SIGNAL_P95);
  assert_int_equal(d[12].signal, ES_SIGNAL_NONE);
  /* at i = 11 the level asks for rung 0 but the last switch was 30 s ago */
  assert_int_equal(d[11].variant, 1);

  assert_int_equal(log.n, 4);
  assert_string_equal(log.reason[0],
                      "p95 90 ms > SLA 80 ms for 2 evaluations (load elevated): dense -> int8");
  assert_string_equal(log.reason[1],
                      "p95 120 ms > SLA 80 ms for 2 evaluations (load high): int8 -> pq");
  assert_string_equal(log.reason[2], "load optimal for 3 evaluations: pq -> int8");
  assert_string_equal(log.reason[3], "load optimal for 5 evaluations: int8 -> dense");
  assert_string_equal(d[3].reason, log.reason[0]);
  assert_string_equal(d[4].reason, "");

  es_quality_stats_t st;
  es_quality_stats(q, &st);
  assert_int_equal(st.evaluations, N);
  assert_int_equal(st.switches_down, 2);
  assert_int_equal(st.switches_up, 2);
  assert_int_equal(st.level_changes, 3);
  assert_int_equal(st.level, ES_LOAD_OPTIMAL);
  assert_int_equal(st.variant, 0);
  /* time goes to the level in force between two calls */
  assert_int_equal(st.time_in_level_us[ES_LOAD_OPTIMAL], 150 * SEC);
  assert_int_equal(st.time_in_level_us[ES_LOAD_ELEVATED], 60 * SEC);
  assert_int_equal(st.time_in_level_us[ES_LOAD_HIGH], 150 * SEC);
  assert_int_equal(st.time_in_level_us[ES_LOAD_CRITICAL], 0);
  es_quality_free(q);
}

static void a_single_sample_spike_does_not_switch(void **state) {
  (void)state;
  enum { N = 12 };
  es_load_sample_t s[N];
  for (int i = 0; i < N; i++) s[i] = calm();
  s[3] = with_p95(400); /* x5: critical, once */
  s[7].cpu = 0.99;      /* critical, once */
  s[9].memory = 2;      /* critical, once */
  es_quality_params_t p = es_quality_default_params();
  es_quality_mgr_t *q = make(&p);
  es_quality_decision_t d[N];
  run(q, s, N, 30 * SEC, d);
  for (int i = 0; i < N; i++) {
    assert_int_equal(d[i].level, ES_LOAD_OPTIMAL);
    assert_int_equal(d[i].variant, 0);
  }
  es_quality_stats_t st;
  es_quality_stats(q, &st);
  assert_int_equal(st.switches_down + st.switches_up, 0);
  assert_int_equal(st.level_changes, 0);
  es_quality_free(q);
}

static void oscillation_around_a_threshold_does_not_flap(void **state) {
  (void)state;
  enum { N = 40 };
  es_load_sample_t s[N];
  es_quality_decision_t d[N];
  es_quality_stats_t st;
  es_quality_params_t p = es_quality_default_params();

  /* 69% / 72% around the 70% threshold: inside the hysteresis, the level
   * is entered once and kept: one switch */
  for (int i = 0; i < N; i++) s[i] = with_cpu(i % 2 ? 0.69 : 0.72);
  es_quality_mgr_t *q = make(&p);
  run(q, s, N, 30 * SEC, d);
  es_quality_stats(q, &st);
  assert_int_equal(st.switches_down, 1);
  assert_int_equal(st.switches_up, 0);
  assert_int_equal(d[N - 1].level, ES_LOAD_ELEVATED);
  assert_int_equal(d[N - 1].variant, 1);
  es_quality_free(q);

  /* 60% / 75%: wider than the hysteresis, but never confirmed: no switch */
  for (int i = 0; i < N; i++) s[i] = with_cpu(i % 2 ? 0.60 : 0.75);
  q = make(&p);
  run(q, s, N, 30 * SEC, d);
  es_quality_stats(q, &st);
  assert_int_equal(st.switches_down + st.switches_up, 0);
  assert_int_equal(d[N - 1].variant, 0);
  es_quality_free(q);

  /* 90% for two evaluations, 50% for two, over and over: the load comes
   * back before recovery is confirmed, so the manager steps down to the
   * high rung and stays there */
  for (int i = 0; i < N; i++) s[i] = with_cpu(i % 4 < 2 ? 0.90 : 0.50);
  q = make(&p);
  run(q, s, N, 30 * SEC, d);
  es_quality_stats(q, &st);
  assert_int_equal(st.switches_down, 2);
  assert_int_equal(st.switches_up, 0);
  for (int i = 3; i < N; i++) assert_int_equal(d[i].variant, 2);
  es_quality_free(q);
}

static void recovery_climbs_back_one_rung_per_dwell(void **state) {
  (void)state;
  enum { N = 14 };
  es_load_sample_t s[N];
  for (int i = 0; i < N; i++) s[i] = with_cpu(i < 2 ? 0.97 : 0.30);
  switch_log_t log = {0};
  es_quality_params_t p = es_quality_default_params();
  p.on_switch = log_switch;
  p.on_switch_ud = &log;
  es_quality_mgr_t *q = make(&p);
  es_quality_decision_t d[N];
  run(q, s, N, 30 * SEC, d);
  assert_int_equal(log.n, 4);
  /* critical: straight to the last rung */
  assert_int_equal(log.from[0], 0);
  assert_int_equal(log.to[0], 3);
  assert_int_equal(log.at[0], 30 * SEC);
  assert_string_equal(log.reason[0],
                      "cpu 97% >= 95% for 2 evaluations (load critical): dense -> pruned");
  /* recovery confirmed after 3 calm evaluations (t = 120 s), then one rung
   * per 60 s dwell */
  for (int k = 1; k < 4; k++) {
    assert_int_equal(log.from[k], 4 - k);
    assert_int_equal(log.to[k], 3 - k);
    assert_int_equal(log.at[k], (120 + 60 * (k - 1)) * SEC);
  }
  assert_int_equal(d[N - 1].variant, 0);
  es_quality_free(q);
}

static void critical_takes_its_rung_at_once_despite_the_dwell(void **state) {
  (void)state;
  es_load_sample_t s[] = {with_cpu(0.75), with_cpu(0.75), with_cpu(0.97), with_cpu(0.97),
                          with_cpu(0.97)};
  enum { N = sizeof s / sizeof *s };
  es_quality_params_t p = es_quality_default_params();
  p.eval_interval_us = 10 * SEC;
  es_quality_mgr_t *q = make(&p);
  es_quality_decision_t d[N];
  run(q, s, N, 10 * SEC, d);
  assert_int_equal(d[1].variant, 1); /* elevated at t = 10 s */
  assert_int_equal(d[3].level, ES_LOAD_CRITICAL);
  assert_int_equal(d[3].variant, 3); /* at t = 30 s, 20 s after the last switch */
  assert_int_equal(d[3].from, 1);
  es_quality_free(q);

  /* high is not critical: the same trace one level lower waits for the dwell */
  es_load_sample_t h[] = {with_cpu(0.75), with_cpu(0.75), with_cpu(0.90), with_cpu(0.90),
                          with_cpu(0.90), with_cpu(0.90), with_cpu(0.90), with_cpu(0.90)};
  enum { M = sizeof h / sizeof *h };
  es_quality_decision_t e[M];
  q = make(&p);
  run(q, h, M, 10 * SEC, e);
  assert_int_equal(e[3].level, ES_LOAD_HIGH);
  assert_int_equal(e[3].variant, 1);
  assert_int_equal(e[6].variant, 1); /* t = 60 s: 50 s after the switch */
  assert_int_equal(e[7].variant, 2); /* t = 70 s */
  es_quality_free(q);
}

static void the_floor_is_never_crossed(void **state) {
  (void)state;
  enum { N = 10 };
  es_load_sample_t s[N];
  for (int i = 0; i < N; i++) s[i] = with_p95(500); /* critical throughout */
  es_quality_params_t p = es_quality_default_params();
  p.floor = 2; /* balanced preset: pq */
  es_quality_mgr_t *q = make(&p);
  es_quality_decision_t d[N];
  run(q, s, N, 30 * SEC, d);
  for (int i = 0; i < N; i++) assert_true(d[i].variant <= 2);
  assert_int_equal(d[N - 1].level, ES_LOAD_CRITICAL);
  assert_int_equal(d[N - 1].variant, 2);
  es_quality_free(q);

  p.floor = 0; /* dense only: never switches, whatever the load */
  q = make(&p);
  run(q, s, N, 30 * SEC, d);
  es_quality_stats_t st;
  es_quality_stats(q, &st);
  assert_int_equal(st.switches_down, 0);
  assert_int_equal(st.level, ES_LOAD_CRITICAL);
  es_quality_free(q);
}

static int affordable_mask(void *ud, int v) { return (*(unsigned *)ud >> v) & 1u; }

static void priority_keeps_the_best_variant_unless_unaffordable(void **state) {
  (void)state;
  unsigned mask = 0xf; /* every rung loaded */
  es_quality_params_t p = es_quality_default_params();
  p.affordable = affordable_mask;
  p.affordable_ud = &mask;
  es_quality_mgr_t *q = make(&p);
  es_load_sample_t hot = with_p95(500);
  es_quality_decision_t d;
  assert_int_equal(es_quality_update(q, &hot, 0, &d), 0);
  assert_int_equal(es_quality_update(q, &hot, 30 * SEC, &d), 0);
  assert_int_equal(d.variant, 3);
  assert_int_equal(d.priority_variant, 0);

  mask = 0xe; /* dense unloaded: int8 is the best priority can get */
  assert_int_equal(es_quality_update(q, &hot, 31 * SEC, &d), 0);
  assert_int_equal(d.evaluated, 0); /* between grid points, priority still follows */
  assert_int_equal(d.priority_variant, 1);

  mask = 0x8; /* only the served rung: priority gets what everyone gets */
  assert_int_equal(es_quality_update(q, &hot, 60 * SEC, &d), 0);
  assert_int_equal(d.priority_variant, 3);
  mask = 0x0; /* even an answer of "nothing" never makes priority worse */
  assert_int_equal(es_quality_update(q, &hot, 90 * SEC, &d), 0);
  assert_int_equal(d.priority_variant, 3);
  es_quality_free(q);

  /* without a callback priority always gets rung 0 */
  p = es_quality_default_params();
  q = make(&p);
  assert_int_equal(es_quality_update(q, &hot, 0, &d), 0);
  assert_int_equal(es_quality_update(q, &hot, 30 * SEC, &d), 0);
  assert_int_equal(d.variant, 3);
  assert_int_equal(d.priority_variant, 0);
  es_quality_free(q);
}

/* A mixed trace from a fixed-seed generator: bursts of each signal. */
static void mixed_trace(es_load_sample_t *s, int n) {
  uint32_t x = 12345;
  for (int i = 0; i < n; i++) {
    x = x * 1664525u + 1013904223u;
    int phase = (i / 7) % 5; /* which signal bursts, in runs of 7 */
    s[i] = calm();
    double r = (double)(x >> 8) / (double)(1u << 24);
    switch (phase) {
    case 0: s[i].queue_depth = (uint32_t)(r * 120); break;
    case 1: s[i].p95_us = (int64_t)(40 * MS + r * 200 * MS); break;
    case 2: s[i].cpu = 0.5 + r * 0.5; break;
    case 3: s[i].memory = (int)(r * 3); break;
    default: s[i].temp_c = 60 + r * 30; break;
    }
  }
}

static void the_same_trace_gives_the_same_decisions(void **state) {
  (void)state;
  enum { N = 400 };
  static es_load_sample_t s[N];
  static es_quality_decision_t a[N], b[N];
  mixed_trace(s, N);
  es_quality_params_t p = es_quality_default_params();
  es_quality_mgr_t *q1 = make(&p), *q2 = make(&p);
  run(q1, s, N, 10 * SEC, a); /* calls every 10 s, evaluations every 30 s */
  run(q2, s, N, 10 * SEC, b);
  int switches = 0;
  for (int i = 0; i < N; i++) {
    assert_int_equal(a[i].level, b[i].level);
    assert_int_equal(a[i].variant, b[i].variant);
    assert_int_equal(a[i].priority_variant, b[i].priority_variant);
    assert_int_equal(a[i].switched, b[i].switched);
    assert_int_equal(a[i].evaluated, b[i].evaluated);
    assert_int_equal(a[i].evaluated, i % 3 == 0);
    assert_int_equal(a[i].signal, b[i].signal);
    assert_string_equal(a[i].reason, b[i].reason);
    switches += a[i].switched;
  }
  assert_true(switches >= 4); /* the trace does move the manager */
  es_quality_stats_t s1, s2;
  es_quality_stats(q1, &s1);
  es_quality_stats(q2, &s2);
  assert_memory_equal(s1.time_in_level_us, s2.time_in_level_us, sizeof s1.time_in_level_us);
  int64_t total = 0;
  for (int l = 0; l < ES_LOAD_NLEVELS; l++) total += s1.time_in_level_us[l];
  assert_int_equal(total, (N - 1) * 10 * SEC);
  es_quality_free(q1);
  es_quality_free(q2);
}

/* Runs confirm_up evaluations of one sample on a fresh manager; returns the
 * decision of the last one. */
static es_quality_decision_t hold(es_load_sample_t s) {
  es_quality_params_t p = es_quality_default_params();
  es_quality_mgr_t *q = make(&p);
  es_quality_decision_t d;
  for (int i = 0; i < p.confirm_up; i++)
    assert_int_equal(es_quality_update(q, &s, i * 30 * SEC, &d), 0);
  es_quality_free(q);
  return d;
}

static void each_signal_alone_raises_the_level(void **state) {
  (void)state;
  es_load_sample_t s;
  es_quality_decision_t d;

  s = calm(), s.queue_limit = 0, s.queue_depth = 100; /* absolute thresholds */
  d = hold(s), assert_int_equal(d.level, ES_LOAD_CRITICAL), assert_int_equal(d.signal, 0);
  s = calm(), s.queue_limit = 0, s.queue_depth = 25;
  d = hold(s), assert_int_equal(d.level, ES_LOAD_ELEVATED);
  s = calm(), s.queue_limit = 64, s.queue_depth = 40; /* 40 >= 50% of 64 */
  d = hold(s), assert_int_equal(d.level, ES_LOAD_HIGH), assert_int_equal(d.variant, 1);
  s = calm(), s.queue_limit = 64, s.queue_depth = 52; /* >= 80% of 64 */
  d = hold(s), assert_int_equal(d.level, ES_LOAD_CRITICAL);

  d = hold(with_p95(80)), assert_int_equal(d.level, ES_LOAD_ELEVATED); /* at the SLA */
  d = hold(with_p95(100)), assert_int_equal(d.level, ES_LOAD_HIGH);
  d = hold(with_p95(200)), assert_int_equal(d.level, ES_LOAD_CRITICAL);
  assert_int_equal(d.signal, ES_SIGNAL_P95);

  d = hold(with_cpu(0.70)), assert_int_equal(d.level, ES_LOAD_ELEVATED);
  d = hold(with_cpu(0.96)), assert_int_equal(d.level, ES_LOAD_CRITICAL);
  assert_int_equal(d.signal, ES_SIGNAL_CPU);

  s = calm(), s.memory = 1;
  d = hold(s), assert_int_equal(d.level, ES_LOAD_ELEVATED);
  s.memory = 2;
  d = hold(s), assert_int_equal(d.level, ES_LOAD_CRITICAL);
  assert_int_equal(d.signal, ES_SIGNAL_MEMORY);

  s = calm(), s.temp_c = 81;
  d = hold(s), assert_int_equal(d.level, ES_LOAD_HIGH);
  assert_int_equal(d.signal, ES_SIGNAL_TEMP);
  s.temp_c = 86;
  d = hold(s), assert_int_equal(d.level, ES_LOAD_CRITICAL);
  /* the zone's own trip points move the thresholds */
  s = calm(), s.temp_throttle_c = 75, s.temp_critical_c = 90, s.temp_c = 66;
  d = hold(s), assert_int_equal(d.level, ES_LOAD_ELEVATED); /* 10 C below throttling */
  s.temp_c = 86;
  d = hold(s), assert_int_equal(d.level, ES_LOAD_HIGH);
  s.temp_c = 90;
  d = hold(s), assert_int_equal(d.level, ES_LOAD_CRITICAL);

  /* the calm sample itself stays optimal */
  d = hold(calm()), assert_int_equal(d.level, ES_LOAD_OPTIMAL);
  assert_int_equal(d.signal, ES_SIGNAL_NONE);
}

static void unknown_signals_are_left_out(void **state) {
  (void)state;
  es_load_sample_t s = calm();
  s.cpu = -1;          /* unknown */
  s.p95_us = 900 * MS; /* but no SLA */
  s.sla_p95_us = 0;
  s.temp_c = 0;           /* no thermal zone */
  s.temp_throttle_c = 10; /* ignored without a temperature */
  es_quality_decision_t d = hold(s);
  assert_int_equal(d.level, ES_LOAD_OPTIMAL);
  s.cpu = NAN;
  d = hold(s);
  assert_int_equal(d.level, ES_LOAD_OPTIMAL);
}

static void the_tie_names_the_first_signal_and_the_reason_says_so(void **state) {
  (void)state;
  es_load_sample_t s = with_cpu(0.90);
  s.temp_c = 81; /* both high: cpu comes first */
  es_quality_params_t p = es_quality_default_params();
  p.eval_interval_us = 0;
  p.dwell_us = 0;
  switch_log_t log = {0};
  p.on_switch = log_switch;
  p.on_switch_ud = &log;
  es_quality_mgr_t *q = make(&p);
  es_quality_decision_t d;
  for (int i = 0; i < 3; i++) assert_int_equal(es_quality_update(q, &s, i * SEC, &d), 0);
  assert_int_equal(d.signal, ES_SIGNAL_CPU);
  assert_int_equal(d.variant, 2); /* dwell 0: one rung per evaluation */
  assert_int_equal(log.n, 2);
  assert_string_equal(log.reason[1], "cpu 90% >= 85% for 3 evaluations (load high): int8 -> pq");
  es_quality_free(q);
}

static void calls_between_grid_points_do_not_evaluate(void **state) {
  (void)state;
  es_quality_params_t p = es_quality_default_params();
  es_quality_mgr_t *q = make(&p);
  es_load_sample_t c = calm(), hot = with_p95(900);
  es_quality_decision_t d;
  static const struct {
    int64_t t;
    int evaluated;
  } calls[] = {{0, 1},   {1, 0},  {29, 0}, {30, 1},
               {31, 0},  {59, 0}, {60, 1}, {155, 1}, /* several grid points skipped: next is 180 */
               {179, 0}, {180, 1}};
  for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
    assert_int_equal(es_quality_update(q, &c, calls[i].t * SEC, &d), 0);
    assert_int_equal(d.evaluated, calls[i].evaluated);
  }
  /* a burst between grid points is not seen at all */
  for (int t = 181; t < 210; t++) {
    assert_int_equal(es_quality_update(q, &hot, t * SEC, &d), 0);
    assert_int_equal(d.evaluated, 0);
  }
  es_quality_stats_t st;
  es_quality_stats(q, &st);
  assert_int_equal(st.evaluations, 5);
  assert_int_equal(st.level, ES_LOAD_OPTIMAL);
  assert_int_equal(st.time_in_level_us[ES_LOAD_OPTIMAL], 209 * SEC);
  es_quality_free(q);
}

static void own_ladders_use_their_names_and_clamp_the_rungs(void **state) {
  (void)state;
  static const char *const names[] = {"beam4", "greedy"};
  es_quality_params_t p = es_quality_default_params();
  p.nvariants = 2;
  p.names = names;
  p.eval_interval_us = 0;
  switch_log_t log = {0};
  p.on_switch = log_switch;
  p.on_switch_ud = &log;
  es_quality_mgr_t *q = make(&p); /* floor 3 and rungs 2, 3 clamp to rung 1 */
  es_load_sample_t s = with_p95(500);
  es_quality_decision_t d;
  for (int i = 0; i < 4; i++) assert_int_equal(es_quality_update(q, &s, i * SEC, &d), 0);
  assert_int_equal(d.level, ES_LOAD_CRITICAL);
  assert_int_equal(d.variant, 1);
  assert_int_equal(log.n, 1);
  assert_non_null(strstr(log.reason[0], ": beam4 -> greedy"));
  es_quality_free(q);

  /* a longer ladder without names: the classifier's, then v4, v5 */
  p = es_quality_default_params();
  p.nvariants = 6;
  p.level_variant[ES_LOAD_CRITICAL] = 5;
  p.floor = 5;
  p.eval_interval_us = 0;
  memset(&log, 0, sizeof log);
  p.on_switch = log_switch;
  p.on_switch_ud = &log;
  q = make(&p);
  for (int i = 0; i < 2; i++) assert_int_equal(es_quality_update(q, &s, i * SEC, &d), 0);
  assert_int_equal(d.variant, 5);
  assert_non_null(strstr(log.reason[0], ": dense -> v5"));
  es_quality_free(q);
}

/* The state and the switches reach the Prometheus exposition. */
static void switches_are_exported_as_metrics(void **state) {
  (void)state;
  es_error_t err = {0};
  es_metrics_t *reg = es_metrics_new(NULL, &err);
  assert_non_null(reg);
  es_inference_metrics_t im;
  assert_int_equal(es_metrics_register_inference(reg, &im, &err), 0);
  es_quality_params_t p = es_quality_default_params();
  p.eval_interval_us = 0;
  p.confirm_up = p.confirm_down = 1;
  p.dwell_us = 0;
  es_quality_mgr_t *q = es_quality_new(&p, &err);
  assert_non_null(q);
  es_quality_decision_t d;
  int64_t t = 0;
  es_load_sample_t hot = with_cpu(0.99), cool = calm();
  assert_int_equal(es_quality_update(q, &hot, t += 1000000, &d), 0);
  assert_int_equal(d.variant, 3); /* critical: straight to the critical rung */
  assert_int_equal(es_quality_export(q, &im, "media", &err), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(es_quality_update(q, &cool, t += 1000000, &d), 0);
  assert_int_equal(d.variant, 0); /* back up one rung per evaluation */
  assert_int_equal(es_quality_export(q, &im, "media", &err), 0);
  assert_int_equal(es_quality_export(q, &im, "media", &err), 0); /* idempotent */
  es_metrics_buf_t buf = {0};
  assert_int_equal(es_metrics_render(reg, &buf), 0);
  assert_non_null(
      strstr(buf.data, "edgeserve_quality_switches_total{model=\"media\",direction=\"down\"} 1\n"));
  assert_non_null(
      strstr(buf.data, "edgeserve_quality_switches_total{model=\"media\",direction=\"up\"} 3\n"));
  assert_non_null(strstr(buf.data, "edgeserve_quality_level{model=\"media\"} 0\n"));
  assert_non_null(
      strstr(buf.data, "edgeserve_quality_variant{model=\"media\",variant=\"dense\"} 1\n"));
  assert_non_null(
      strstr(buf.data, "edgeserve_quality_variant{model=\"media\",variant=\"pruned\"} 0\n"));
  assert_non_null(strstr(buf.data, "edgeserve_load_level{model=\"media\"} 0\n"));
  es_metrics_buf_free(&buf);
  es_quality_free(q);
  es_metrics_free(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_hold_the_users_figures),
      cmocka_unit_test(switches_are_exported_as_metrics),
      cmocka_unit_test(invalid_parameters_are_refused_with_a_reason),
      cmocka_unit_test(bad_calls_are_refused_and_change_nothing),
      cmocka_unit_test(ramp_up_then_down_follows_the_load_with_dwell),
      cmocka_unit_test(a_single_sample_spike_does_not_switch),
      cmocka_unit_test(oscillation_around_a_threshold_does_not_flap),
      cmocka_unit_test(recovery_climbs_back_one_rung_per_dwell),
      cmocka_unit_test(critical_takes_its_rung_at_once_despite_the_dwell),
      cmocka_unit_test(the_floor_is_never_crossed),
      cmocka_unit_test(priority_keeps_the_best_variant_unless_unaffordable),
      cmocka_unit_test(the_same_trace_gives_the_same_decisions),
      cmocka_unit_test(each_signal_alone_raises_the_level),
      cmocka_unit_test(unknown_signals_are_left_out),
      cmocka_unit_test(the_tie_names_the_first_signal_and_the_reason_says_so),
      cmocka_unit_test(calls_between_grid_points_do_not_evaluate),
      cmocka_unit_test(own_ladders_use_their_names_and_clamp_the_rungs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
