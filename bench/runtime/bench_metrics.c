/*
 * bench_metrics.c - the cost of the metrics hot path and of a scrape.
 *
 * Compares, side by side in one run: a counter increment (atomic integer
 * add), a fractional counter add and a gauge add (compare-and-swap on a
 * double), a histogram observation, and a counter behind a pthread mutex,
 * on 1 thread and on 2 threads hammering one series; then the time to
 * render a registry of about 1000 series (the standard set for 40 models).
 * Prints a markdown table. Bounded to a few seconds.
 *
 * Build: gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Iinclude -Isrc src/common/error.c \
 *          src/observe/metrics.c bench/runtime/bench_metrics.c -lpthread -lm -o bench_metrics
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgeserve/metrics.h"

#include "common/clock.h"

enum { OPS = 4000000 }; /* per thread and variant */

typedef enum { V_INC, V_ADD_INT, V_ADD_FRAC, V_GAUGE_ADD, V_HISTO, V_MUTEX, NV } variant_t;

static const char *vname[NV] = {
    "es_counter_inc",           "es_counter_add(m, 1)", "es_counter_add(m, 0.5) (CAS)",
    "es_gauge_add(m, 1) (CAS)", "es_histo_observe",     "mutex-protected uint64 counter",
};

typedef struct {
  pthread_mutex_t mu;
  uint64_t n;
} mutex_counter_t;

typedef struct {
  variant_t v;
  es_metric_t *counter, *gauge, *histo;
  mutex_counter_t *mc;
  pthread_barrier_t *start;
  double sec;
} job_t;

static void *run(void *arg) {
  job_t *j = arg;
  if (j->start) pthread_barrier_wait(j->start);
  double t0 = es__mono_sec();
  switch (j->v) {
  case V_INC:
    for (int i = 0; i < OPS; i++) es_counter_inc(j->counter);
    break;
  case V_ADD_INT:
    for (int i = 0; i < OPS; i++) es_counter_add(j->counter, 1.0);
    break;
  case V_ADD_FRAC:
    for (int i = 0; i < OPS; i++) es_counter_add(j->counter, 0.5);
    break;
  case V_GAUGE_ADD:
    for (int i = 0; i < OPS; i++) es_gauge_add(j->gauge, 1.0);
    break;
  case V_HISTO:
    /* latencies spread over the default buckets: 0.1 ms .. 1.6 s */
    for (int i = 0; i < OPS; i++) es_histo_observe(j->histo, 0.0001 * (double)(1 << (i & 15)));
    break;
  case V_MUTEX:
    for (int i = 0; i < OPS; i++) {
      pthread_mutex_lock(&j->mc->mu);
      j->mc->n++;
      pthread_mutex_unlock(&j->mc->mu);
    }
    break;
  default: break;
  }
  j->sec = es__mono_sec() - t0;
  return NULL;
}

/* ns per operation with `nthreads` threads on the same series (the slowest
 * thread's time over its own operations). */
static double measure(variant_t v, int nthreads, es_metric_t *c, es_metric_t *g, es_metric_t *h,
                      mutex_counter_t *mc) {
  pthread_barrier_t b;
  pthread_barrier_init(&b, NULL, (unsigned)nthreads);
  job_t jobs[2];
  pthread_t t[2];
  for (int i = 0; i < nthreads; i++) {
    jobs[i] = (job_t){.v = v, .counter = c, .gauge = g, .histo = h, .mc = mc, .start = &b};
    pthread_create(&t[i], NULL, run, &jobs[i]);
  }
  double worst = 0;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(t[i], NULL);
    if (jobs[i].sec > worst) worst = jobs[i].sec;
  }
  pthread_barrier_destroy(&b);
  return worst * 1e9 / OPS;
}

static int fill_standard_set(es_metrics_t *reg, int nmodels) {
  es_inference_metrics_t im;
  es_error_t err;
  if (es_metrics_register_inference(reg, &im, &err)) return -1;
  es_metric_t *m;
  char model[32];
  const char *reasons[] = {"rejected", "canceled", "timeout", "invalid",
                           "memory",   "backend",  "other"};
  const char *stages[] = {"input", "infer", "output"};
  const char *sla[] = {"queue", "compute", "total"};
#define S(f, ...)                                                                                  \
  if (es_metric_series(f, (const char *[]){__VA_ARGS__}, &m, &err)) return -1
  for (int i = 0; i < nmodels; i++) {
    snprintf(model, sizeof model, "model-%02d", i);
    S(im.requests, model, "1", "success");
    es_counter_add(m, 123456);
    S(im.requests, model, "1", "failure");
    es_counter_add(m, 12);
    for (int r = 0; r < 7; r++) {
      S(im.failures, model, "1", reasons[r]);
      es_counter_inc(m);
    }
    S(im.inferences, model, "1");
    S(im.executions, model, "1");
    S(im.pending, model, "1");
    S(im.cache_hits, model, "1");
    S(im.cache_misses, model, "1");
    S(im.request_duration, model, "1");
    es_histo_observe(m, 0.012);
    S(im.queue_duration, model, "1");
    es_histo_observe(m, 0.0012);
    for (int s = 0; s < 3; s++) {
      S(im.compute_duration, model, "1", stages[s]);
      es_histo_observe(m, 0.0031);
      S(im.sla_violations, model, sla[s]);
    }
    S(im.quality_level, model);
    S(im.quality_variant, model, "full");
    es_gauge_set(m, 1);
    S(im.quality_variant, model, "int8");
  }
#undef S
  return 0;
}

int main(void) {
  es_metrics_t *reg = es_metrics_new(NULL, NULL);
  es_family_params_t p = es_family_default_params();
  es_metric_family_t *fc, *fg, *fh;
  p.name = "bench_total", p.help = "bench";
  es_metrics_register(reg, &p, &fc, NULL);
  p.type = ES_METRIC_GAUGE, p.name = "bench_gauge";
  es_metrics_register(reg, &p, &fg, NULL);
  p.type = ES_METRIC_HISTOGRAM, p.name = "bench_seconds";
  es_metrics_register(reg, &p, &fh, NULL);
  es_metric_t *c, *g, *h;
  es_metric_series(fc, NULL, &c, NULL);
  es_metric_series(fg, NULL, &g, NULL);
  es_metric_series(fh, NULL, &h, NULL);
  mutex_counter_t mc = {.n = 0};
  pthread_mutex_init(&mc.mu, NULL);

  double ns[NV][2];
  for (int v = 0; v < NV; v++)
    for (int t = 1; t <= 2; t++) ns[v][t - 1] = measure((variant_t)v, t, c, g, h, &mc);

  printf("## Hot path: ns per update (%d updates per thread, one series)\n\n", OPS);
  printf("| variant | 1 thread | 2 threads, same series | vs mutex (1 thr) | vs mutex (2 thr) |\n");
  printf("|---|---:|---:|---:|---:|\n");
  for (int v = 0; v < NV; v++)
    printf("| %s | %.1f | %.1f | %.2fx | %.2fx |\n", vname[v], ns[v][0], ns[v][1],
           ns[V_MUTEX][0] / ns[v][0], ns[V_MUTEX][1] / ns[v][1]);

  es_metrics_free(reg);
  pthread_mutex_destroy(&mc.mu);

  printf("\n## Scrape: rendering the standard set\n\n");
  printf("| models | series | lines | bytes | us per render | ns per line |\n");
  printf("|---:|---:|---:|---:|---:|---:|\n");
  const int sizes[] = {1, 40};
  for (int k = 0; k < 2; k++) {
    es_metrics_t *r = es_metrics_new(NULL, NULL);
    if (fill_standard_set(r, sizes[k])) {
      fprintf(stderr, "bench_metrics: filling the registry failed\n");
      return 1;
    }
    es_metrics_buf_t buf = {0};
    es_metrics_render(r, &buf); /* warm: the buffer reaches its size */
    int reps = sizes[k] == 1 ? 20000 : 300;
    double t0 = es__mono_sec();
    for (int i = 0; i < reps; i++) es_metrics_render(r, &buf);
    double us = (es__mono_sec() - t0) * 1e6 / reps;
    /* series: sample lines, a histogram counting once (its _count line) */
    size_t lines = 0, series = 0;
    for (char *l = buf.data; *l; lines++) {
      char *end = strchr(l, '\n');
      *end = '\0';
      if (*l != '#' && !strstr(l, "_bucket{") && !strstr(l, "_sum{") && !strstr(l, "_sum "))
        series++;
      *end = '\n';
      l = end + 1;
    }
    printf("| %d | %zu | %zu | %zu | %.1f | %.0f |\n", sizes[k], series, lines, buf.len, us,
           us * 1e3 / (double)lines);
    es_metrics_buf_free(&buf);
    es_metrics_free(r);
  }
  return 0;
}
