/*
 * bench_sysmetrics.c - what one system-metrics sample costs, next to the
 * alternatives it replaces: re-running hardware detection every tick, and
 * the memory sample alone (es_memstat_read, part of every sample). Also the
 * cost of reading the monitor's latest sample (es_sysmon_latest).
 *
 *   gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Iinclude -Isrc \
 *     src/common/error.c src/runtime/sysfs.c src/runtime/memstat.c src/runtime/hw.c \
 *     src/runtime/affinity.c src/runtime/deque.c src/runtime/sched.c \
 *     src/observe/sysmetrics.c bench/runtime/bench_sysmetrics.c -lpthread -lm \
 *     -o /tmp/bench_sysmetrics
 *   /tmp/bench_sysmetrics [root] [data_dir]     (default: the live system, "/")
 *
 * Prints a markdown table: mean and median microseconds per call over
 * repeated rounds (about 5 s in all), and the ratio to a full sample.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "edgeserve/hw.h"
#include "edgeserve/memstat.h"
#include "edgeserve/sysmetrics.h"

typedef struct ctx {
  const char *root;
  es_sysmetrics_t *s;
  es_sysmetrics_sample_t *m;
  es_hw_t *hw;
  es_memstat_t mem;
  es_sysmon_t *mon;
} ctx_t;

static int run_sample(ctx_t *c) { return es_sysmetrics_sample(c->s, c->m, NULL); }
static int run_hw(ctx_t *c) { return es_hw_detect(c->hw, c->root, NULL); }
static int run_mem(ctx_t *c) { return es_memstat_read(&c->mem, c->root, NULL); }
static int run_latest(ctx_t *c) { return es_sysmon_latest(c->mon, c->m); }

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Rounds of `iters` calls for about `budget` seconds; returns mean and median
 * of the per-round means, in microseconds. */
static void measure(int (*fn)(ctx_t *), ctx_t *c, int iters, double budget, double *mean,
                    double *median) {
  double per[200];
  int n = 0;
  double start = es__mono_sec();
  for (int i = 0; i < iters; i++) fn(c); /* warm-up */
  while (n < 200 && (n < 5 || es__mono_sec() - start < budget)) {
    double t0 = es__mono_sec();
    for (int i = 0; i < iters; i++)
      if (fn(c)) {
        fprintf(stderr, "call failed\n");
        exit(1);
      }
    per[n++] = (es__mono_sec() - t0) * 1e6 / iters;
  }
  double sum = 0;
  for (int i = 0; i < n; i++) sum += per[i];
  qsort(per, (size_t)n, sizeof per[0], cmp_dbl);
  *mean = sum / n;
  *median = per[n / 2];
}

int main(int argc, char **argv) {
  ctx_t c = {.root = argc > 1 ? argv[1] : NULL};
  es_sysmetrics_params_t p = es_sysmetrics_default_params();
  p.root = c.root;
  p.data_dir = argc > 2 ? argv[2] : "/";
  es_error_t err;
  c.s = es_sysmetrics_new(&p, &err);
  c.m = malloc(sizeof *c.m);
  c.hw = malloc(sizeof *c.hw);
  if (!c.s || !c.m || !c.hw) {
    fprintf(stderr, "setup: %s\n", c.s ? "out of memory" : err.msg);
    return 1;
  }
  es_sysmon_params_t mp = es_sysmon_default_params();
  mp.metrics = p;
  mp.interval_ms = 1000; /* ticks stay out of the way of the measurement */
  c.mon = es_sysmon_start(NULL, &mp, &err);
  if (!c.mon) {
    fprintf(stderr, "sysmon: %s\n", err.msg);
    return 1;
  }
  run_sample(&c);
  printf("root %s, %d CPUs in %d clusters, %d thermal zones, %d interfaces, sample %zu bytes\n\n",
         c.root ? c.root : "/", c.m->ncores, c.m->nclusters, c.m->nzones, c.m->nifaces,
         sizeof *c.m);
  struct {
    const char *name;
    int (*fn)(ctx_t *);
    int iters;
  } rows[] = {
      {"es_sysmetrics_sample (everything)", run_sample, 50},
      {"es_hw_detect (re-detect each tick)", run_hw, 20},
      {"es_memstat_read (memory only)", run_mem, 100},
      {"es_sysmon_latest (copy the latest)", run_latest, 1000},
  };
  double mean[4], median[4];
  for (int i = 0; i < 4; i++) measure(rows[i].fn, &c, rows[i].iters, 1.2, &mean[i], &median[i]);
  printf("| call | mean us | median us | vs sample |\n|---|---:|---:|---:|\n");
  for (int i = 0; i < 4; i++)
    printf("| %s | %.1f | %.1f | %.2fx |\n", rows[i].name, mean[i], median[i],
           median[i] / median[0]);
  es_sysmon_stop(c.mon);
  es_sysmetrics_free(c.s);
  free(c.m);
  free(c.hw);
  return 0;
}
