/*
 * cmd_predict.c - `edgeserve predict|predict-prob MODEL FILE|- [k] [threshold]`,
 * output byte-identical to fastText's; lines are predicted on all cores
 * (--threads N to choose) and printed in input order.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct {
  int32_t k;
  float threshold;
  int prob;
  es_prediction_t *pred;
  int32_t cap;
} predict_ctx;

static void on_line(void *arg, const es_model_t *m, es_scratch_t *s, cli_buf *out) {
  predict_ctx *c = arg;
  int32_t n = 0;
  es_line_predict(m, s, c->k, c->threshold, c->pred, c->cap, &n);
  for (int32_t i = 0; i < n; i++) {
    size_t len;
    const char *label = es_model_label(m, c->pred[i].label, &len);
    if (i) cli_buf_putc(out, ' ');
    cli_buf_put(out, label, len);
    if (c->prob) {
      cli_buf_putc(out, ' ');
      cli_buf_float(out, c->pred[i].prob);
    }
  }
  cli_buf_putc(out, '\n');
}

int es_cmd_predict(int argc, char **argv) {
  predict_ctx base = {1, 0.0f, strcmp(argv[0], "predict-prob") == 0, NULL, 0};
  int nthreads;
  if (cli_predict_args(&argc, argv, &base.k, &base.threshold, &nthreads)) return 2;
  es_model_t *m = cli_open_model(argv[1]);
  if (!m) return 1;
  int rc = 1, fd = cli_open_input(argv[2]);
  base.cap = es_predict_count(m, base.k);
  predict_ctx *ctx = calloc((size_t)nthreads, sizeof *ctx);
  void **tctx = calloc((size_t)nthreads, sizeof *tctx);
  int ok = ctx && tctx;
  for (int t = 0; ok && t < nthreads; t++) {
    ctx[t] = base;
    ctx[t].pred = malloc((size_t)base.cap * sizeof *base.pred);
    tctx[t] = &ctx[t];
    ok = ctx[t].pred != NULL;
  }
  if (!ok) fprintf(stderr, "edgeserve: out of memory\n");
  if (ok && fd >= 0) {
    rc = cli_run_lines(fd, m, nthreads, on_line, tctx) ? 1 : 0;
    if (fflush(stdout)) rc = 1;
  }
  if (fd > 0) close(fd);
  for (int t = 0; ctx && t < nthreads; t++) free(ctx[t].pred);
  free(ctx);
  free(tctx);
  es_model_close(m);
  return rc;
}
