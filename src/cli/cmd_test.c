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

static void on_line(void *arg, const es_model_t *m, es_scratch_t *s, cli_buf *out) {
  test_ctx *c = arg;
  (void)out;
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
    printf("%.6f", v);
  else
    printf("--------");
  printf("  ");
}

/* P@k / R@k as fastText prints them: 3 significant digits, or 3 decimals
 * once test-label has set std::fixed; 0/0 prints "nan" (never "-nan"). */
static void print_ratio(uint64_t num, uint64_t den, int fixed) {
  if (den == 0 && num == 0) {
    printf("nan");
    return;
  }
  printf(fixed ? "%.3f" : "%.3g", (double)num / (double)den);
}

int es_cmd_test(int argc, char **argv) {
  int per_label = strcmp(argv[0], "test-label") == 0, nthreads;
  test_ctx base = {1, 0.0f, NULL, 0, 0, {0, 0, 0}, NULL};
  if (cli_predict_args(&argc, argv, &base.k, &base.threshold, &nthreads)) return 2;
  es_model_t *m = cli_open_model(argv[1]);
  if (!m) return 1;
  int rc = 1, fd = cli_open_input(argv[2]);
  int32_t nl = es_model_nlabels(m);
  base.cap = es_predict_count(m, base.k);
  test_ctx *ctx = calloc((size_t)nthreads, sizeof *ctx);
  void **tctx = calloc((size_t)nthreads, sizeof *tctx);
  int ok = ctx && tctx;
  for (int t = 0; ok && t < nthreads; t++) {
    ctx[t] = base;
    ctx[t].pred = malloc((size_t)base.cap * sizeof *base.pred);
    ctx[t].per_label = calloc((size_t)nl, sizeof *base.per_label);
    tctx[t] = &ctx[t];
    ok = ctx[t].pred && ctx[t].per_label;
  }
  if (!ok) fprintf(stderr, "edgeserve: out of memory\n");
  if (ok && fd >= 0 && cli_run_lines(fd, m, nthreads, on_line, tctx) == 0) {
    test_ctx *c = &ctx[0]; /* merge every thread's counts into thread 0's */
    for (int t = 1; t < nthreads; t++) {
      c->nexamples += ctx[t].nexamples;
      c->all.gold += ctx[t].all.gold;
      c->all.predicted += ctx[t].all.predicted;
      c->all.predicted_gold += ctx[t].all.predicted_gold;
      for (int32_t i = 0; i < nl; i++) {
        c->per_label[i].gold += ctx[t].per_label[i].gold;
        c->per_label[i].predicted += ctx[t].per_label[i].predicted;
        c->per_label[i].predicted_gold += ctx[t].per_label[i].predicted_gold;
      }
    }
    if (per_label) {
      for (int32_t i = 0; i < nl; i++) {
        const counts *l = &c->per_label[i];
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
    printf("N\t%llu\n", (unsigned long long)c->nexamples);
    printf("P@%d\t", c->k);
    print_ratio(c->all.predicted_gold, c->all.predicted, per_label);
    printf("\nR@%d\t", c->k);
    print_ratio(c->all.predicted_gold, c->all.gold, per_label);
    printf("\n");
    rc = fflush(stdout) ? 1 : 0;
  }
  if (fd > 0) close(fd);
  for (int t = 0; ctx && t < nthreads; t++) {
    free(ctx[t].pred);
    free(ctx[t].per_label);
  }
  free(ctx);
  free(tctx);
  es_model_close(m);
  return rc;
}
