/* test_histogram.c - bucket accuracy against an exact sorted reference, edge
 * values, merge/copy/reset, concurrent recording, sliding windows with
 * injected time, the standard latency windows. */
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

#include "../../src/common/splitmix.h"
#include "edgeserve/histogram.h"

#define SEC 1000000ull

/* The nearest-rank value at quantile q of n sorted values (the definition
 * es_hist_percentile documents). */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, double q) {
  uint64_t rank = (uint64_t)ceil(q * (double)n);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Log-uniform in [1, ES_HIST_MAX_US]. */
static uint64_t log_uniform(uint64_t *rng) {
  double u = (double)(es__splitmix64(rng) >> 11) * 0x1.0p-53;
  uint64_t v = (uint64_t)exp(u * log((double)ES_HIST_MAX_US));
  return v < 1 ? 1 : v > ES_HIST_MAX_US ? ES_HIST_MAX_US : v;
}

/* Checks 1001 quantiles of h against the sorted reference, within 1/128. */
static void assert_percentiles_within_bound(const es_hist_t *h, uint64_t *vals, size_t n) {
  qsort(vals, n, sizeof *vals, cmp_u64);
  double worst = 0;
  for (int k = 0; k <= 1000; k++) {
    double q = k / 1000.0;
    uint64_t want = exact_percentile(vals, n, q), got = es_hist_percentile(h, q);
    double err = fabs((double)got - (double)want) / (double)want;
    if (err > worst) worst = err;
    if (want < 128) assert_int_equal(got, want);
    if (err > 1.0 / 128)
      fail_msg("q=%.3f: got %llu, exact %llu (%.4f%%)", q, (unsigned long long)got,
               (unsigned long long)want, err * 100);
  }
  assert_true(worst <= 0.01);
}

/* ---- histograms --------------------------------------------------------------- */

static void empty_histogram_reads_zero_everywhere(void **state) {
  (void)state;
  es_hist_t *h = es_hist_new();
  assert_non_null(h);
  assert_int_equal(es_hist_count(h), 0);
  assert_int_equal(es_hist_min(h), 0);
  assert_int_equal(es_hist_max(h), 0);
  assert_true(es_hist_mean(h) == 0.0);
  assert_int_equal(es_hist_percentile(h, 0.0), 0);
  assert_int_equal(es_hist_percentile(h, 0.5), 0);
  assert_int_equal(es_hist_percentile(h, 1.0), 0);
  es_hist_summary_t s;
  es_hist_summarize(h, &s);
  assert_int_equal(s.count + s.sum + s.min + s.max + s.p50 + s.p99 + s.p999, 0);
  es_hist_free(h);
  es_hist_free(NULL);
}

static void histogram_size_is_the_documented_figure(void **state) {
  (void)state;
  assert_int_equal(es_hist_bytes(), 10688);
}

static void percentiles_of_log_uniform_values_are_within_one_percent(void **state) {
  (void)state;
  enum { N = 200000 };
  uint64_t *vals = malloc(N * sizeof *vals);
  es_hist_t *h = es_hist_new();
  uint64_t rng = 42, sum = 0;
  for (size_t i = 0; i < N; i++) {
    vals[i] = log_uniform(&rng);
    sum += vals[i];
    es_hist_record(h, vals[i]);
  }
  assert_int_equal(es_hist_count(h), N);
  assert_int_equal(es_hist_sum(h), sum);
  assert_percentiles_within_bound(h, vals, N);
  assert_int_equal(es_hist_min(h), vals[0]);
  assert_int_equal(es_hist_max(h), vals[N - 1]);
  es_hist_free(h);
  free(vals);
}

static void percentiles_of_every_value_up_to_100000_are_within_one_percent(void **state) {
  (void)state;
  enum { N = 100000 };
  uint64_t *vals = malloc(N * sizeof *vals);
  es_hist_t *h = es_hist_new();
  for (size_t i = 0; i < N; i++) {
    vals[i] = N - i; /* recorded in descending order */
    es_hist_record(h, vals[i]);
  }
  assert_percentiles_within_bound(h, vals, N);
  es_hist_free(h);
  free(vals);
}

/* Each single value v, ranked between a smaller and a larger one (so that
 * clamping to min/max does not hide the bucket), reads within v / 128; the
 * boundaries of every bucket are checked. */
static void every_bucket_boundary_reads_within_the_bound(void **state) {
  (void)state;
  es_hist_t *h = es_hist_new();
  for (int e = 0; e < 26; e++)
    for (uint64_t m = 64; m < 128; m++)
      for (int d = -1; d <= 1; d++) {
        int64_t sv = (int64_t)(m << e) + d;
        if (sv < 2 || (uint64_t)sv >= ES_HIST_MAX_US) continue;
        uint64_t v = (uint64_t)sv;
        es_hist_reset(h);
        es_hist_record(h, 0);
        es_hist_record(h, v);
        es_hist_record(h, ES_HIST_MAX_US);
        uint64_t got = es_hist_percentile(h, 0.5);
        uint64_t diff = got > v ? got - v : v - got;
        if (v < 128) assert_int_equal(got, v);
        if (diff * 128 > v)
          fail_msg("v=%llu read as %llu", (unsigned long long)v, (unsigned long long)got);
      }
  es_hist_free(h);
}

static void edge_values_zero_one_max_and_above_max(void **state) {
  (void)state;
  es_hist_t *h = es_hist_new();
  es_hist_record(h, 0);
  assert_int_equal(es_hist_count(h), 1);
  assert_int_equal(es_hist_percentile(h, 0.5), 0);
  assert_int_equal(es_hist_min(h), 0);
  assert_int_equal(es_hist_max(h), 0);
  es_hist_record(h, 1);
  assert_int_equal(es_hist_percentile(h, 0.0), 0);
  assert_int_equal(es_hist_percentile(h, 1.0), 1);

  es_hist_reset(h);
  es_hist_record(h, ES_HIST_MAX_US);
  assert_int_equal(es_hist_percentile(h, 0.5), ES_HIST_MAX_US);
  assert_int_equal(es_hist_overflow(h), 0);

  /* above the max: counted in the overflow bucket, read as ES_HIST_MAX_US;
   * max and mean keep the true value */
  es_hist_reset(h);
  for (int i = 0; i < 3; i++) es_hist_record(h, 10);
  es_hist_record(h, 1000 * SEC);
  es_hist_record(h, UINT64_MAX / 4);
  assert_int_equal(es_hist_overflow(h), 2);
  assert_int_equal(es_hist_count(h), 5);
  assert_int_equal(es_hist_percentile(h, 0.8), ES_HIST_MAX_US);
  assert_int_equal(es_hist_percentile(h, 1.0), ES_HIST_MAX_US);
  assert_int_equal(es_hist_max(h), UINT64_MAX / 4);
  assert_int_equal(es_hist_percentile(h, 0.5), 10);
  es_hist_free(h);
}

static void quantiles_outside_zero_one_are_clamped(void **state) {
  (void)state;
  es_hist_t *h = es_hist_new();
  for (uint64_t v = 1; v <= 1000; v++) es_hist_record(h, v * 1000);
  assert_int_equal(es_hist_percentile(h, -3.0), 1000);
  assert_int_equal(es_hist_percentile(h, NAN), 1000);
  assert_int_equal(es_hist_percentile(h, 7.0), 1000000);
  assert_int_equal(es_hist_percentile(h, 1.0), 1000000);
  es_hist_free(h);
}

static void record_n_equals_n_records(void **state) {
  (void)state;
  es_hist_t *a = es_hist_new(), *b = es_hist_new();
  es_hist_record_n(a, 12345, 7);
  es_hist_record_n(a, 99, 0);
  for (int i = 0; i < 7; i++) es_hist_record(b, 12345);
  assert_int_equal(es_hist_count(a), 7);
  assert_int_equal(es_hist_sum(a), es_hist_sum(b));
  assert_int_equal(es_hist_min(a), 12345);
  assert_int_equal(es_hist_percentile(a, 0.5), es_hist_percentile(b, 0.5));
  es_hist_free(a);
  es_hist_free(b);
}

static void assert_same(const es_hist_t *a, const es_hist_t *b) {
  assert_int_equal(es_hist_count(a), es_hist_count(b));
  assert_int_equal(es_hist_sum(a), es_hist_sum(b));
  assert_int_equal(es_hist_min(a), es_hist_min(b));
  assert_int_equal(es_hist_max(a), es_hist_max(b));
  assert_int_equal(es_hist_overflow(a), es_hist_overflow(b));
  for (int k = 0; k <= 1000; k++)
    assert_int_equal(es_hist_percentile(a, k / 1000.0), es_hist_percentile(b, k / 1000.0));
}

static void merge_equals_recording_both(void **state) {
  (void)state;
  es_hist_t *a = es_hist_new(), *b = es_hist_new(), *both = es_hist_new();
  uint64_t rng = 7;
  for (int i = 0; i < 20000; i++) {
    uint64_t v = log_uniform(&rng);
    es_hist_record(a, v);
    es_hist_record(both, v);
  }
  for (int i = 0; i < 5000; i++) {
    uint64_t v = log_uniform(&rng) * 3; /* some above the max */
    es_hist_record(b, v);
    es_hist_record(both, v);
  }
  es_hist_merge(a, b);
  assert_same(a, both);
  es_hist_t *empty = es_hist_new();
  es_hist_merge(a, empty); /* merging nothing changes nothing */
  assert_same(a, both);
  es_hist_merge(empty, b);
  assert_same(empty, b);
  es_hist_free(a);
  es_hist_free(b);
  es_hist_free(both);
  es_hist_free(empty);
}

static void copy_is_a_snapshot_and_reset_empties(void **state) {
  (void)state;
  es_hist_t *h = es_hist_new(), *c = es_hist_new();
  for (uint64_t v = 1; v < 5000; v++) es_hist_record(h, v * 7);
  es_hist_record(c, 3); /* overwritten by the copy */
  es_hist_copy(c, h);
  assert_same(c, h);
  es_hist_record(h, 1);
  assert_int_equal(es_hist_count(c), 4999);
  assert_int_equal(es_hist_min(c), 7);
  es_hist_reset(h);
  assert_int_equal(es_hist_count(h), 0);
  assert_int_equal(es_hist_min(h), 0);
  assert_int_equal(es_hist_max(h), 0);
  assert_int_equal(es_hist_percentile(h, 0.5), 0);
  es_hist_free(h);
  es_hist_free(c);
}

static void summary_matches_the_single_calls(void **state) {
  (void)state;
  es_hist_t *h = es_hist_new();
  uint64_t rng = 9;
  for (int i = 0; i < 10000; i++) es_hist_record(h, log_uniform(&rng));
  es_hist_summary_t s;
  es_hist_summarize(h, &s);
  assert_int_equal(s.count, 10000);
  assert_int_equal(s.sum, es_hist_sum(h));
  assert_int_equal(s.min, es_hist_min(h));
  assert_int_equal(s.max, es_hist_max(h));
  assert_true(s.mean == es_hist_mean(h));
  assert_int_equal(s.p50, es_hist_percentile(h, 0.5));
  assert_int_equal(s.p90, es_hist_percentile(h, 0.9));
  assert_int_equal(s.p99, es_hist_percentile(h, 0.99));
  assert_int_equal(s.p999, es_hist_percentile(h, 0.999));
  es_hist_free(h);
}

/* ---- concurrency -------------------------------------------------------------- */

#define NTHREADS   4
#define PER_THREAD 50000

typedef struct {
  es_hist_t *h;
  uint64_t seed;
} rec_job_t;

static void *record_job(void *arg) {
  rec_job_t *j = arg;
  uint64_t rng = j->seed;
  for (int i = 0; i < PER_THREAD; i++) es_hist_record(j->h, log_uniform(&rng));
  return NULL;
}

static void concurrent_recording_from_4_threads_gives_exact_counts(void **state) {
  (void)state;
  es_hist_t *shared = es_hist_new(), *ref = es_hist_new();
  rec_job_t jobs[NTHREADS];
  pthread_t th[NTHREADS];
  for (int t = 0; t < NTHREADS; t++) {
    jobs[t] = (rec_job_t){shared, 1000 + (uint64_t)t};
    assert_int_equal(pthread_create(&th[t], NULL, record_job, &jobs[t]), 0);
  }
  /* concurrent readers and a concurrent merge must be safe */
  es_hist_t *snap = es_hist_new();
  for (int k = 0; k < 20; k++) {
    es_hist_copy(snap, shared);
    (void)es_hist_percentile(shared, 0.99);
  }
  for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < NTHREADS; t++) {
    jobs[t] = (rec_job_t){ref, 1000 + (uint64_t)t};
    record_job(&jobs[t]);
  }
  assert_int_equal(es_hist_count(shared), NTHREADS * PER_THREAD);
  assert_same(shared, ref);
  es_hist_free(shared);
  es_hist_free(ref);
  es_hist_free(snap);
}

/* ---- windows ------------------------------------------------------------------ */

static void window_rejects_invalid_params(void **state) {
  (void)state;
  es_error_t err;
  es_window_params_t p = es_window_default_params();
  assert_int_equal(p.span_us, 10 * SEC);
  assert_int_equal(p.slices, 10);
  p.slices = 0;
  assert_null(es_window_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  p.slices = 5000;
  assert_null(es_window_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  p.slices = 7;
  assert_null(es_window_new(&p, &err)); /* 10 s is not a multiple of 7 */
  assert_int_equal(err.code, ES_EINVAL);
  assert_non_null(strstr(err.msg, "multiple"));
  p.span_us = 0;
  assert_null(es_window_new(&p, NULL));
  es_window_free(NULL);
}

static void window_forgets_samples_older_than_its_span(void **state) {
  (void)state;
  es_window_params_t p = {10 * SEC, 10};
  es_window_t *w = es_window_new(&p, NULL);
  es_hist_t *out = es_hist_new();
  assert_non_null(w);
  uint64_t t0 = 1000 * SEC; /* a slice boundary */
  es_window_record(w, 111, t0);
  es_window_record(w, 222, t0 + 5 * SEC + 500000);
  es_window_query(w, t0, out);
  assert_int_equal(es_hist_count(out), 1);
  es_window_query(w, t0 + 9 * SEC + 999999, out); /* 10 s minus 1 us later: kept */
  assert_int_equal(es_hist_count(out), 2);
  assert_int_equal(es_hist_min(out), 111);
  es_window_query(w, t0 + 10 * SEC, out); /* 10 s later: gone */
  assert_int_equal(es_hist_count(out), 1);
  assert_int_equal(es_hist_min(out), 222);
  /* 222 (at 5.5 s) stays while its slice (5 .. 6 s) is one of the last ten */
  es_window_query(w, t0 + 14 * SEC + 999999, out);
  assert_int_equal(es_hist_count(out), 1);
  es_window_query(w, t0 + 15 * SEC, out); /* 9.5 s old, but its slice left */
  assert_int_equal(es_hist_count(out), 0);
  es_window_query(w, t0 + 16 * SEC, out);
  assert_int_equal(es_hist_count(out), 0);
  es_window_query(w, t0 - SEC, out); /* before both: nothing */
  assert_int_equal(es_hist_count(out), 0);
  es_hist_free(out);
  es_window_free(w);
}

/* One sample per 100 ms for 60 s: at every step the window holds exactly
 * the samples of the current slice and the nine before it; slots are reused
 * five times over. */
static void window_keeps_the_last_slices_as_time_moves_on(void **state) {
  (void)state;
  es_window_params_t p = {10 * SEC, 10};
  es_window_t *w = es_window_new(&p, NULL);
  es_hist_t *out = es_hist_new();
  for (uint64_t i = 0; i < 600; i++) {
    uint64_t now = i * 100000;
    es_window_record(w, i + 1, now);
    es_window_query(w, now, out);
    uint64_t first = now / SEC >= 9 ? (now / SEC - 9) * 10 : 0; /* oldest sample kept */
    assert_int_equal(es_hist_count(out), i - first + 1);
    assert_int_equal(es_hist_min(out), first + 1);
    assert_int_equal(es_hist_max(out), i + 1);
  }
  /* a jump over the whole span empties it */
  es_window_record(w, 5, 600 * SEC);
  es_window_query(w, 600 * SEC, out);
  assert_int_equal(es_hist_count(out), 1);
  assert_int_equal(es_window_late(w), 0);
  es_hist_free(out);
  es_window_free(w);
}

static void window_drops_samples_older_than_its_data_as_late(void **state) {
  (void)state;
  es_window_params_t p = {10 * SEC, 10};
  es_window_t *w = es_window_new(&p, NULL);
  es_hist_t *out = es_hist_new();
  es_window_record(w, 1, 30 * SEC);
  es_window_record(w, 2, 20 * SEC + 1); /* same slot, an older slice: dropped */
  es_window_record(w, 3, 29 * SEC);     /* older but still in the window: kept */
  assert_int_equal(es_window_late(w), 1);
  es_window_query(w, 30 * SEC, out);
  assert_int_equal(es_hist_count(out), 2);
  assert_int_equal(es_hist_sum(out), 4);
  es_hist_free(out);
  es_window_free(w);
}

static void window_with_one_slice_holds_the_current_slice_only(void **state) {
  (void)state;
  es_window_params_t p = {SEC, 1};
  es_window_t *w = es_window_new(&p, NULL);
  es_hist_t *out = es_hist_new();
  es_window_record(w, 10, 5 * SEC + 1);
  es_window_record(w, 20, 5 * SEC + 999999);
  es_window_query(w, 5 * SEC + 999999, out);
  assert_int_equal(es_hist_count(out), 2);
  es_window_record(w, 30, 6 * SEC);
  es_window_query(w, 6 * SEC, out);
  assert_int_equal(es_hist_count(out), 1);
  assert_int_equal(es_hist_min(out), 30);
  es_hist_free(out);
  es_window_free(w);
}

/* Four threads record in lockstep (a barrier per slice period), so every
 * rotation races with recorders of the same period; no sample of a live
 * period may be lost or doubled. */
#define WIN_PERIODS 40
#define WIN_PER     2000

typedef struct {
  es_window_t *w;
  pthread_barrier_t *bar;
  es_hist_t *out; /* thread 0 checks between periods */
  int id;
  int bad;
} win_job_t;

static void *window_job(void *arg) {
  win_job_t *j = arg;
  const uint64_t slice = SEC / 10; /* 1 s window, 10 slices */
  for (uint64_t k = 0; k < WIN_PERIODS; k++) {
    for (int i = 0; i < WIN_PER; i++)
      es_window_record(j->w, (uint64_t)(j->id * 1000 + i), k * slice + (uint64_t)i % slice);
    pthread_barrier_wait(j->bar);
    if (j->id == 0) {
      es_window_query(j->w, k * slice + slice - 1, j->out);
      uint64_t live = k + 1 < 10 ? k + 1 : 10;
      if (es_hist_count(j->out) != live * NTHREADS * WIN_PER) j->bad++;
    }
    pthread_barrier_wait(j->bar);
  }
  return NULL;
}

static void window_rotation_under_concurrent_recording_loses_nothing(void **state) {
  (void)state;
  es_window_params_t p = {SEC, 10};
  es_window_t *w = es_window_new(&p, NULL);
  es_hist_t *out = es_hist_new();
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, NTHREADS);
  win_job_t jobs[NTHREADS];
  pthread_t th[NTHREADS];
  for (int t = 0; t < NTHREADS; t++) {
    jobs[t] = (win_job_t){w, &bar, out, t, 0};
    assert_int_equal(pthread_create(&th[t], NULL, window_job, &jobs[t]), 0);
  }
  for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
  assert_int_equal(jobs[0].bad, 0);
  assert_int_equal(es_window_late(w), 0);
  es_window_query(w, WIN_PERIODS * (SEC / 10) - 1, out);
  assert_int_equal(es_hist_count(out), 10 * NTHREADS * WIN_PER);
  assert_int_equal(es_hist_max(out), (NTHREADS - 1) * 1000 + WIN_PER - 1);
  pthread_barrier_destroy(&bar);
  es_hist_free(out);
  es_window_free(w);
}

/* ---- standard windows --------------------------------------------------------- */

static void latwin_spans_forget_at_10s_1min_5min_and_never(void **state) {
  (void)state;
  es_latwin_t *lw = es_latwin_new(NULL);
  es_hist_t *out = es_hist_new();
  assert_non_null(lw);
  uint64_t t0 = 3600 * SEC;
  es_latwin_record(lw, 1500, t0);
  struct {
    uint64_t at;
    uint64_t n[ES_LATWIN_NSPANS];
  } cases[] = {
      {t0, {1, 1, 1, 1}},
      {t0 + 9 * SEC, {1, 1, 1, 1}},
      {t0 + 10 * SEC, {0, 1, 1, 1}},
      {t0 + 55 * SEC - 1, {0, 1, 1, 1}},
      {t0 + 60 * SEC, {0, 0, 1, 1}},
      {t0 + 290 * SEC - 1, {0, 0, 1, 1}},
      {t0 + 300 * SEC, {0, 0, 0, 1}},
      {t0 + 86400 * SEC, {0, 0, 0, 1}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (int s = 0; s < ES_LATWIN_NSPANS; s++) {
      assert_int_equal(es_latwin_query(lw, (es_latwin_span_t)s, cases[c].at, out), 0);
      if (es_hist_count(out) != cases[c].n[s])
        fail_msg("case %zu span %s: %llu samples", c, es_latwin_span_name((es_latwin_span_t)s),
                 (unsigned long long)es_hist_count(out));
      if (cases[c].n[s]) assert_int_equal(es_hist_percentile(out, 0.5), 1500);
    }
  assert_int_equal(es_latwin_query(lw, ES_LATWIN_NSPANS, t0, out), ES_EINVAL);
  assert_string_equal(es_latwin_span_name(ES_LATWIN_1MIN), "1min");
  assert_string_equal(es_latwin_span_name(ES_LATWIN_NSPANS), "?");
  es_hist_free(out);
  es_latwin_free(lw);
  es_latwin_free(NULL);
}

static void now_us_is_monotonic(void **state) {
  (void)state;
  uint64_t a = es_hist_now_us(), b = es_hist_now_us();
  assert_true(a > 0);
  assert_true(b >= a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(empty_histogram_reads_zero_everywhere),
      cmocka_unit_test(histogram_size_is_the_documented_figure),
      cmocka_unit_test(percentiles_of_log_uniform_values_are_within_one_percent),
      cmocka_unit_test(percentiles_of_every_value_up_to_100000_are_within_one_percent),
      cmocka_unit_test(every_bucket_boundary_reads_within_the_bound),
      cmocka_unit_test(edge_values_zero_one_max_and_above_max),
      cmocka_unit_test(quantiles_outside_zero_one_are_clamped),
      cmocka_unit_test(record_n_equals_n_records),
      cmocka_unit_test(merge_equals_recording_both),
      cmocka_unit_test(copy_is_a_snapshot_and_reset_empties),
      cmocka_unit_test(summary_matches_the_single_calls),
      cmocka_unit_test(concurrent_recording_from_4_threads_gives_exact_counts),
      cmocka_unit_test(window_rejects_invalid_params),
      cmocka_unit_test(window_forgets_samples_older_than_its_span),
      cmocka_unit_test(window_keeps_the_last_slices_as_time_moves_on),
      cmocka_unit_test(window_drops_samples_older_than_its_data_as_late),
      cmocka_unit_test(window_with_one_slice_holds_the_current_slice_only),
      cmocka_unit_test(window_rotation_under_concurrent_recording_loses_nothing),
      cmocka_unit_test(latwin_spans_forget_at_10s_1min_5min_and_never),
      cmocka_unit_test(now_us_is_monotonic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
