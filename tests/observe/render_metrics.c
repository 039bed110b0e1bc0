/* render_metrics.c - prints a full metrics registry (the standard set with
 * samples in every family, awkward label values, a callback and a scrape
 * hook) in the Prometheus text format, for tests/observe/promtool.sh.
 * Usage: render_metrics > metrics.txt */
#include <stdio.h>

#include "edgeserve/metrics.h"

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    int rc_ = (x);                                                                                 \
    if (rc_) {                                                                                     \
      fprintf(stderr, "render_metrics: %s failed: %s (%s)\n", #x, es_strerror(rc_), err.msg);      \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

static double used_bytes(void *ctx, const char *const *values) {
  (void)ctx;
  return values[0][0] == 'p' ? 201326592.0 : 52428800.0; /* process / the kinds */
}

static void pressure_hook(es_metrics_t *reg, void *ctx) {
  (void)reg;
  es_gauge_set(ctx, 1); /* warning */
}

int main(void) {
  es_error_t err = {0};
  es_metrics_t *reg = es_metrics_new(NULL, &err);
  if (!reg) {
    fprintf(stderr, "render_metrics: %s\n", err.msg);
    return 1;
  }
  es_inference_metrics_t im;
  CHECK(es_metrics_register_inference(reg, &im, &err));
  es_metric_t *m;
  const char *models[] = {"media", "text \"v2\" \\ ünïcode\nline"};
  for (int i = 0; i < 2; i++) {
    const char *md = models[i], *v = i ? "2" : "1";
    CHECK(es_metric_series(im.requests, (const char *[]){md, v, "success"}, &m, &err));
    es_counter_add(m, 1000 + i);
    CHECK(es_metric_series(im.requests, (const char *[]){md, v, "failure"}, &m, &err));
    es_counter_add(m, 7);
    const char *reasons[] = {"rejected", "canceled", "timeout", "invalid",
                             "memory",   "backend",  "other"};
    for (int r = 0; r < 7; r++) {
      CHECK(es_metric_series(im.failures, (const char *[]){md, v, reasons[r]}, &m, &err));
      es_counter_inc(m);
    }
    CHECK(es_metric_series(im.inferences, (const char *[]){md, v}, &m, &err));
    es_counter_add(m, 4000);
    CHECK(es_metric_series(im.executions, (const char *[]){md, v}, &m, &err));
    es_counter_add(m, 900);
    es_metric_family_t *hs[] = {im.request_duration, im.queue_duration};
    for (int h = 0; h < 2; h++) {
      CHECK(es_metric_series(hs[h], (const char *[]){md, v}, &m, &err));
      for (int k = 0; k < 100; k++) es_histo_observe(m, 0.0001 * k * k);
    }
    const char *stages[] = {"input", "infer", "output"};
    for (int s = 0; s < 3; s++) {
      CHECK(es_metric_series(im.compute_duration, (const char *[]){md, v, stages[s]}, &m, &err));
      es_histo_observe(m, 0.002 * (s + 1));
      es_histo_observe(m, 20); /* +Inf bucket only */
    }
    CHECK(es_metric_series(im.pending, (const char *[]){md, v}, &m, &err));
    es_gauge_set(m, 3);
    CHECK(es_metric_series(im.cache_hits, (const char *[]){md, v}, &m, &err));
    es_counter_add(m, 250);
    CHECK(es_metric_series(im.cache_misses, (const char *[]){md, v}, &m, &err));
    es_counter_add(m, 750.5);
    const char *sla[] = {"queue", "compute", "total"};
    for (int s = 0; s < 3; s++) {
      CHECK(es_metric_series(im.sla_violations, (const char *[]){md, sla[s]}, &m, &err));
      es_counter_add(m, s);
    }
    CHECK(es_metric_series(im.quality_level, (const char *[]){md}, &m, &err));
    es_gauge_set(m, i);
    CHECK(es_metric_series(im.quality_variant, (const char *[]){md, "full"}, &m, &err));
    es_gauge_set(m, i == 0);
    CHECK(es_metric_series(im.quality_variant, (const char *[]){md, "int8"}, &m, &err));
    es_gauge_set(m, i == 1);
  }
  const char *kinds[] = {"process", "model", "cache", "work"};
  for (int k = 0; k < 4; k++) {
    CHECK(es_metric_series(im.memory_budget, (const char *[]){kinds[k]}, &m, &err));
    es_gauge_set(m, 335544320.0 / (k + 1));
    CHECK(es_metric_series(im.memory_used, (const char *[]){kinds[k]}, &m, &err));
    CHECK(es_metric_set_callback(m, used_bytes, NULL));
    if (k) {
      CHECK(es_metric_series(im.memory_refusals, (const char *[]){kinds[k]}, &m, &err));
      es_counter_add(m, k);
    }
  }
  CHECK(es_metric_series(im.memory_pressure, NULL, &m, &err));
  CHECK(es_metrics_on_scrape(reg, pressure_hook, m));
  /* special values a gauge may take */
  es_metric_family_t *f;
  es_family_params_t p = es_family_default_params();
  p.type = ES_METRIC_GAUGE;
  p.name = "edgeserve_test_special_values";
  p.help = "Values the format spells specially (test only).";
  p.labels = (const char *[]){"value"};
  p.nlabels = 1;
  CHECK(es_metrics_register(reg, &p, &f, &err));
  const char *names[] = {"inf", "neg_inf", "nan", "tiny", "third"};
  const double vals[] = {1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0, 4.9e-324, 1.0 / 3};
  for (int i = 0; i < 5; i++) {
    CHECK(es_metric_series(f, (const char *[]){names[i]}, &m, &err));
    es_gauge_set(m, vals[i]);
  }
  int rc = es_metrics_write(reg, stdout);
  es_metrics_free(reg);
  return rc ? 1 : 0;
}
