/*
 * bench_latency.c - what the latency monitor costs and how its regression
 * test behaves.
 *
 *  1. es_latmon_record per sample, 1 and 2 threads: a stage with windows,
 *     without, and with the metrics fed; a bare es_hist_record for scale.
 *  2. es_latmon_evaluate with 1, 4 and 16 models (two window rules and a
 *     regression rule per model).
 *  3. The regression test on synthetic lognormal latencies (sigma 0.5):
 *     false-positive rate on identical distributions and detection rate by
 *     slowdown and current-window size.
 *
 * Build: gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Iinclude -Isrc \
 *   bench/runtime/bench_latency.c src/observe/latency.c src/observe/histogram.c \
 *   src/observe/metrics.c src/common/error.c -lpthread -lm -o /tmp/bench_latency
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "edgeserve/latency.h"

#define SEC 1000000ull

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static double rng_unit(uint64_t *s) {
  return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}
static uint64_t lognormal(uint64_t *s, double median, double sigma) {
  double z = sqrt(-2 * log(rng_unit(s))) * cos(6.283185307179586 * rng_unit(s));
  return (uint64_t)(median * exp(sigma * z));
}

/* ---- 1. recording ------------------------------------------------------------ */

enum { V_HIST, V_NOWIN, V_WIN, V_WIN_METRICS, NV };
static const char *vname[NV] = {"es_hist_record (reference)", "record, stage without windows",
                                "record, stage with windows", "record, windows + metrics"};

typedef struct {
  int v;
  es_hist_t *h;
  es_latmodel_t *m;
  uint64_t n;
} job_t;

static void *work(void *arg) {
  job_t *j = arg;
  uint64_t t = 1000 * SEC;
  for (uint64_t i = 0; i < j->n; i++) {
    uint64_t us = 1000 + (i & 1023) * 97; /* 1 .. 100 ms, some above the 80 ms bound */
    t += 100;                             /* 10,000 samples per simulated second */
    switch (j->v) {
    case V_HIST: es_hist_record(j->h, us); break;
    case V_NOWIN: es_latmon_record(j->m, ES_LAT_PREPROCESS, us, t); break;
    default: es_latmon_record(j->m, ES_LAT_TOTAL, us, t); break;
    }
  }
  return NULL;
}

static double record_ns(int v, int threads, es_hist_t *h, es_latmodel_t *m) {
  const uint64_t n = 2000000;
  double best = 1e30;
  for (int rep = 0; rep < 3; rep++) {
    pthread_t t[2];
    job_t j[2];
    double t0 = now_s();
    for (int k = 0; k < threads; k++) {
      j[k] = (job_t){v, h, m, n};
      pthread_create(&t[k], NULL, work, &j[k]);
    }
    for (int k = 0; k < threads; k++) pthread_join(t[k], NULL);
    double ns = (now_s() - t0) * 1e9 / (double)(n * (uint64_t)threads);
    if (ns < best) best = ns;
  }
  return best;
}

static void bench_record(void) {
  es_latmon_t *plain = es_latmon_new(NULL, NULL);
  es_metrics_t *reg = es_metrics_new(NULL, NULL);
  es_inference_metrics_t im;
  es_metrics_register_inference(reg, &im, NULL);
  es_latmon_params_t p = es_latmon_default_params();
  p.metrics = reg, p.inference = &im;
  es_latmon_t *fed = es_latmon_new(&p, NULL);
  es_latmodel_t *m0, *m1;
  es_latmon_model(plain, "media", NULL, &m0, NULL);
  es_latmon_model(fed, "media", NULL, &m1, NULL);
  es_hist_t *h = es_hist_new();
  printf("## Recording cost (ns per sample, best of 3 x 2M samples per thread)\n\n");
  printf("| variant | 1 thread | vs es_hist_record | 2 threads | vs es_hist_record |\n");
  printf("|---|---:|---:|---:|---:|\n");
  double ref[3] = {0};
  for (int v = 0; v < NV; v++) {
    double r[3];
    for (int th = 1; th <= 2; th++) r[th] = record_ns(v, th, h, v == V_WIN_METRICS ? m1 : m0);
    if (v == V_HIST) ref[1] = r[1], ref[2] = r[2];
    printf("| %s | %.1f | %.2fx | %.1f | %.2fx |\n", vname[v], r[1], r[1] / ref[1], r[2],
           r[2] / ref[2]);
  }
  printf("\n");
  es_hist_free(h);
  es_latmon_free(plain);
  es_latmon_free(fed);
  es_metrics_free(reg);
}

/* ---- 2. evaluation ------------------------------------------------------------ */

static void bench_evaluate(void) {
  printf("## es_latmon_evaluate cost (3 rules per model: p95 over 1 min, violation rate over "
         "1 min, regression; windows filled for 5 min at 20 samples/s)\n\n");
  printf("| models | rule evaluations | us per evaluate | us per rule evaluation |\n");
  printf("|---:|---:|---:|---:|\n");
  int ns[3] = {1, 4, 16};
  for (int k = 0; k < 3; k++) {
    es_latmon_t *mon = es_latmon_new(NULL, NULL);
    uint64_t seed = 1;
    for (int i = 0; i < ns[k]; i++) {
      char name[16];
      snprintf(name, sizeof name, "m%d", i);
      es_latmodel_t *m;
      es_latmon_model(mon, name, NULL, &m, NULL);
      for (uint64_t t = 0; t < 300 * SEC; t += 50000)
        es_latmon_record(m, ES_LAT_TOTAL, lognormal(&seed, 20000, 0.5), t);
    }
    es_latmon_rule_params_t r = es_latmon_rule_default_params();
    es_latmon_add_rule(mon, &r, NULL);
    r.name = "sla_rate", r.metric = ES_LATMETRIC_VIOLATION_RATE, r.warning = 0.05, r.critical = 0.1;
    es_latmon_add_rule(mon, &r, NULL);
    r.name = "regress", r.metric = ES_LATMETRIC_REGRESSION, r.warning = 1.2, r.critical = 2;
    es_latmon_add_rule(mon, &r, NULL);
    int reps = 200 / ns[k];
    double t0 = now_s();
    for (int i = 0; i < reps; i++) es_latmon_evaluate(mon, 300 * SEC);
    double us = (now_s() - t0) * 1e6 / reps;
    printf("| %d | %d | %.0f | %.1f |\n", ns[k], 3 * ns[k], us, us / (3 * ns[k]));
    es_latmon_free(mon);
  }
  printf("\n");
}

/* ---- 3. the regression test's behaviour ------------------------------------------ */

static double flag_rate(double slowdown, uint64_t n_base, uint64_t n_cur, int seeds,
                        double *cost_us) {
  es_hist_t *b = es_hist_new(), *c = es_hist_new();
  int flagged = 0;
  double t = 0;
  for (int i = 0; i < seeds; i++) {
    uint64_t s = 1000003ull * (uint64_t)i + 17;
    es_hist_reset(b), es_hist_reset(c);
    for (uint64_t k = 0; k < n_base; k++) es_hist_record(b, lognormal(&s, 20000, 0.5));
    for (uint64_t k = 0; k < n_cur; k++) es_hist_record(c, lognormal(&s, 20000 * slowdown, 0.5));
    es_latmon_regress_t r;
    double t0 = now_s();
    es_latmon_compare(b, c, NULL, &r);
    t += now_s() - t0;
    flagged += r.flagged;
  }
  es_hist_free(b), es_hist_free(c);
  if (cost_us) *cost_us = t * 1e6 / seeds;
  return (double)flagged / seeds;
}

static void bench_regression(void) {
  printf("## Regression test: share of runs flagged (lognormal sigma 0.5, median 20 ms; "
         "baseline 2,300 samples; defaults: split p90, z >= 3.09, p95 >= 1.2x, >= 200 "
         "samples)\n\n");
  printf("| slowdown | current n = 200 | n = 300 | n = 600 | n = 1200 |\n");
  printf("|---:|---:|---:|---:|---:|\n");
  double slow[5] = {1.0, 1.1, 1.2, 1.3, 1.5};
  uint64_t nc[4] = {200, 300, 600, 1200};
  double cost = 0;
  for (int i = 0; i < 5; i++) {
    int seeds = i == 0 ? 2000 : 300;
    printf("| %.1fx%s |", slow[i], i == 0 ? " (false positives, 2,000 runs)" : "");
    for (int k = 0; k < 4; k++)
      printf(" %.3f |", flag_rate(slow[i], 2300, nc[k], seeds, i == 4 && k == 2 ? &cost : NULL));
    printf("\n");
  }
  printf("\nes_latmon_compare cost (2,300 vs 600 samples): %.1f us\n\n", cost);
}

int main(void) {
  double t0 = now_s();
  bench_record();
  bench_evaluate();
  bench_regression();
  printf("(total bench time %.1f s)\n", now_s() - t0);
  return 0;
}
