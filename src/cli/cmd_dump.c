/*
 * cmd_dump.c - `edgeserve dump MODEL args|dict|input|output`, in fastText's
 * format. Unlike fastText, quantized matrices are dumped too (decoded).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *loss_name(int32_t l) {
  switch (l) {
  case ES_LOSS_HS: return "hs";
  case ES_LOSS_NS: return "ns";
  case ES_LOSS_SOFTMAX: return "softmax";
  case ES_LOSS_OVA: return "one-vs-all";
  }
  return "unknown";
}

static const char *model_name(int32_t mo) {
  switch (mo) {
  case ES_MODEL_CBOW: return "cbow";
  case ES_MODEL_SKIPGRAM: return "sg";
  case ES_MODEL_SUPERVISED: return "sup";
  }
  return "unknown";
}

static int dump_matrix(const es_model_t *m, int which) {
  es_model_info_t info;
  es_model_info(m, &info);
  int64_t rows = which ? info.output_rows : info.input_rows;
  int64_t cols = which ? info.output_cols : info.input_cols;
  float *row = malloc((size_t)cols * sizeof *row);
  if (!row) {
    fprintf(stderr, "edgeserve: out of memory\n");
    return 1;
  }
  printf("%lld %lld\n", (long long)rows, (long long)cols);
  for (int64_t i = 0; i < rows; i++) {
    es_model_row(m, which, i, row);
    for (int64_t j = 0; j < cols; j++) {
      if (j) putchar(' ');
      printf("%g", row[j]);
    }
    putchar('\n');
  }
  free(row);
  return 0;
}

int es_cmd_dump(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[2], "args") && strcmp(argv[2], "dict") &&
                    strcmp(argv[2], "input") && strcmp(argv[2], "output"))) {
    fprintf(stderr, "usage: edgeserve dump MODEL args|dict|input|output\n");
    return 2;
  }
  es_model_t *m = cli_open_model(argv[1]);
  if (!m) return 1;
  int rc = 0;
  const char *what = argv[2];
  if (!strcmp(what, "args")) {
    const es_model_args_t *a = es_model_args(m);
    printf("dim %d\nws %d\nepoch %d\nminCount %d\nneg %d\nwordNgrams %d\n", a->dim, a->ws, a->epoch,
           a->min_count, a->neg, a->word_ngrams);
    printf("loss %s\nmodel %s\nbucket %d\nminn %d\nmaxn %d\nlrUpdateRate %d\nt ",
           loss_name(a->loss), model_name(a->model), a->bucket, a->minn, a->maxn,
           a->lr_update_rate);
    printf("%g", a->t);
    putchar('\n');
  } else if (!strcmp(what, "dict")) {
    es_model_info_t info;
    es_model_info(m, &info);
    printf("%d\n", info.nentries);
    for (int32_t i = 0; i < info.nentries; i++) {
      const char *text;
      size_t len;
      int64_t count;
      int type;
      es_model_entry(m, i, &text, &len, &count, &type);
      fwrite(text, 1, len, stdout);
      printf(" %lld %s\n", (long long)count, type ? "label" : "word");
    }
  } else {
    rc = dump_matrix(m, !strcmp(what, "output"));
  }
  if (fflush(stdout)) rc = 1;
  es_model_close(m);
  return rc;
}
