/*
 * cmd_predict.c - `edgeserve predict|predict-prob MODEL FILE|- [k] [threshold]`,
 * output byte-identical to fastText's.
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

static void on_line(void *arg, const es_model_t *m, es_scratch_t *s) {
  predict_ctx *c = arg;
  int32_t n = 0;
  es_line_predict(m, s, c->k, c->threshold, c->pred, c->cap, &n);
  for (int32_t i = 0; i < n; i++) {
    size_t len;
    const char *label = es_model_label(m, c->pred[i].label, &len);
    if (i) putchar(' ');
    fwrite(label, 1, len, stdout);
    if (c->prob) {
      putchar(' ');
      cli_print_float(stdout, c->pred[i].prob);
    }
  }
  putchar('\n');
}

int es_cmd_predict(int argc, char **argv) {
  if (argc < 3 || argc > 5) {
    fprintf(stderr, "usage: edgeserve %s MODEL FILE|- [k] [threshold]\n"
                    "  k          number of labels to print (default 1, -1 for all)\n"
                    "  threshold  minimum probability (default 0.0)\n",
            argv[0]);
    return 2;
  }
  predict_ctx c = {1, 0.0f, strcmp(argv[0], "predict-prob") == 0, NULL, 0};
  if (argc > 3 && cli_parse_int(argv[3], "k", &c.k)) return 2;
  if (argc > 4 && cli_parse_float(argv[4], "threshold", &c.threshold)) return 2;
  if (c.k == 0 || c.k < -1) {
    fprintf(stderr, "edgeserve: k must be 1 or higher, or -1 for all labels\n");
    return 2;
  }
  es_model_t *m = cli_open_model(argv[1]);
  if (!m) return 1;
  int rc = 1;
  es_scratch_t *s = es_scratch_new(m);
  c.cap = es_predict_count(m, c.k);
  c.pred = malloc((size_t)c.cap * sizeof *c.pred);
  int fd = cli_open_input(argv[2]);
  if (s && c.pred && fd >= 0) {
    static char out[1 << 14];
    setvbuf(stdout, out, _IOFBF, sizeof out);
    rc = cli_for_each_line(fd, m, s, on_line, &c) ? 1 : 0;
    if (fflush(stdout)) rc = 1;
  } else if (fd >= 0) {
    fprintf(stderr, "edgeserve: out of memory\n");
  }
  if (fd > 0) close(fd);
  free(c.pred);
  es_scratch_free(s);
  es_model_close(m);
  return rc;
}
