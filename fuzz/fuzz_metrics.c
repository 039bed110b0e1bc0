/*
 * fuzz_metrics.c - libFuzzer target: any bytes as label values (split at NUL
 * bytes) and as a metric name, through series creation and the Prometheus
 * renderer (escaping, UTF-8 checks, float formatting).
 * Seeds: fuzz/corpus/metrics.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edgeserve/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 2);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = text[size + 1] = 0;
  const char *parts[3] = {text, "", ""};
  size_t p = 1;
  for (size_t i = 0; i < size && p < 3; i++)
    if (text[i] == 0) parts[p++] = text + i + 1;
  es_error_t err;
  es_metrics_t *reg = es_metrics_new(NULL, &err);
  if (reg) {
    static const char *const labels[] = {"model", "stage"};
    es_family_params_t fp = es_family_default_params();
    es_metric_family_t *f;
    fp.type = ES_METRIC_COUNTER;
    fp.name = "edgeserve_fuzz_total";
    fp.help = parts[2];
    fp.labels = labels;
    fp.nlabels = 2;
    if (es_metrics_register(reg, &fp, &f, &err) == 0) {
      es_metric_t *m;
      const char *values[2] = {parts[0], parts[1]};
      if (es_metric_series(f, values, &m, &err) == 0) es_counter_add(m, (double)size / 3.0);
    }
    fp.name = parts[0]; /* any name: must be refused or rendered validly */
    fp.type = ES_METRIC_GAUGE;
    es_metrics_register(reg, &fp, &f, &err);
    es_metrics_buf_t buf = {0};
    es_metrics_render(reg, &buf);
    es_metrics_buf_free(&buf);
    es_metrics_free(reg);
  }
  free(text);
  return 0;
}
