/*
 * cmd_test.c - `edgeserve test|test-label MODEL FILE|- [k] [threshold]`.
 *
 * `test` prints fastText's N / P@k / R@k lines byte for byte. `test-label`
 * adds fastText's per-label lines, with the recall (and so F1) that 0.9.2
 * prints as "--------" computed correctly.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct {
  uint64_t gold, predicted, predicted_gold;
} counts;

typedef struct {
  int32_t k;
  float threshold;
  es_prediction_t *pred;
  int32_t cap;
  uint64_t nexamples;
  counts all;
  counts *per_label;
} test_ctx;

static void on_line(void *arg, const es_model_t *m, es_scratch_t *s) {
  test_ctx *c = arg;
  es_line_end(m, s);
  int32_t nlab, n = 0;
  const int32_t *labels = es_line_labels(s, &nlab);
  if (nlab == 0 || es_line_nfeatures(s) == 0) return;
  es_line_predict(m, s, c->k, c->threshold, c->pred, c->cap, &n);
  c->nexamples++;
  c->all.gold += (uint64_t)nlab;
  c->all.predicted += (uint64_t)n;
  for (int32_t i = 0; i < n; i++) {
    int32_t id = c->pred[i].label;
    c->per_label[id].predicted++;
    for (int32_t j = 0; j < nlab; j++) {
      if (labels[j] == id) {
        c->per_label[id].predicted_gold++;
        c->all.predicted_gold++;
        break;
      }
    }
  }
  for (int32_t j = 0; j < nlab; j++) c->per_label[labels[j]].gold++;
}

static void metric(const char *name, double v) {
  printf("%s : ", name);
  if (isfinite(v))
    printf("%9.6f", v);
  else
    printf("--------");
  printf("  ");
}

int es_cmd_test(int argc, char **argv) {
  if (argc < 3 || argc > 5) {
    fprintf(stderr, "usage: edgeserve %s MODEL FILE|- [k] [threshold]\n", argv[0]);
    return 2;
  }
  int per_label = strcmp(argv[0], "test-label") == 0;
  test_ctx c = {1, 0.0f, NULL, 0, 0, {0, 0, 0}, NULL};
  if (argc > 3 && cli_parse_int(argv[3], "k", &c.k)) return 2;
  if (argc > 4 && cli_parse_float(argv[4], "threshold", &c.threshold)) return 2;
  if (c.k == 0 || c.k < -1) {
    fprintf(stderr, "edgeserve: k must be 1 or higher, or -1 for all labels\n");
    return 2;
  }
  es_model_t *m = cli_open_model(argv[1]);
  if (!m) return 1;
  int rc = 1;
  int32_t nl = es_model_nlabels(m);
  es_scratch_t *s = es_scratch_new(m);
  c.cap = es_predict_count(m, c.k);
  c.pred = malloc((size_t)c.cap * sizeof *c.pred);
  c.per_label = calloc((size_t)nl, sizeof *c.per_label);
  int fd = cli_open_input(argv[2]);
  if (!s || !c.pred || !c.per_label) fprintf(stderr, "edgeserve: out of memory\n");
  if (s && c.pred && c.per_label && fd >= 0 && cli_for_each_line(fd, m, s, on_line, &c) == 0) {
    if (per_label) {
      for (int32_t i = 0; i < nl; i++) {
        const counts *l = &c.per_label[i];
        double p = (double)l->predicted_gold / (double)l->predicted;
        double r = (double)l->predicted_gold / (double)l->gold;
        double f1 = p + r != 0 ? 2 * p * r / (p + r) : NAN;
        size_t len;
        const char *label = es_model_label(m, i, &len);
        metric("F1-Score", f1);
        metric("Precision", p);
        metric("Recall", r);
        printf(" %.*s\n", (int)len, label);
      }
    }
    const char *fmt = per_label ? "%.3f" : "%.3g";
    printf("N\t%llu\n", (unsigned long long)c.nexamples);
    printf("P@%d\t", c.k);
    printf(fmt, (double)c.all.predicted_gold / (double)c.all.predicted);
    printf("\nR@%d\t", c.k);
    printf(fmt, (double)c.all.predicted_gold / (double)c.all.gold);
    printf("\n");
    rc = fflush(stdout) ? 1 : 0;
  }
  if (fd > 0) close(fd);
  free(c.pred);
  free(c.per_label);
  es_scratch_free(s);
  es_model_close(m);
  return rc;
}
