/*
 * cmd_info.c - `edgeserve info MODEL`: shape, labels, sizes, and what
 * serving it costs in memory.
 */
#include <string.h>

#include "cli.h"

static void human(char *buf, size_t n, double bytes) {
  const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    u++;
  }
  snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
}

static const char *loss_name(int32_t l) {
  static const char *names[] = {"?", "hs", "ns", "softmax", "one-vs-all"};
  return l >= 1 && l <= 4 ? names[l] : "?";
}

int es_cmd_info(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: edgeserve info MODEL\n");
    return 2;
  }
  es_model_params_t mp = es_model_default_params();
  mp.word_rows_bytes = ES_MODEL_WORD_ROWS_BYTES; /* the figures of serving it */
  es_model_t *m = cli_open_model_with(argv[1], &mp);
  if (!m) return 1;
  es_model_info_t i;
  es_model_info(m, &i);
  char a[32], b[32], c[32], d[32];
  printf("model        %s\n", argv[1]);
  const char *store = i.input_scheme == 8   ? "int8 rows"
                      : i.input_scheme == 4 ? "int4 rows"
                      : i.quant_input       ? "product-quantized"
                                            : "dense";
  if (i.native)
    printf("format       edgeserve native .esm (%s input%s%s)\n", store,
           i.qnorm_input ? ", qnorm" : "", i.quant_output ? ", quantized output" : "");
  else
    printf("format       fastText v%d %s (%s input%s%s)\n", i.version,
           i.quant_input ? ".ftz" : ".bin", store, i.qnorm_input ? ", qnorm" : "",
           i.quant_output ? ", quantized output" : "");
  size_t nlen;
  const char *norm = es_model_meta(m, "normalizer", &nlen);
  if (norm) printf("normalizer   %.*s\n", (int)nlen, norm);
  printf("loss         %s\n", loss_name(i.args.loss));
  printf("dim          %d\n", i.args.dim);
  printf("words        %d\n", i.nwords);
  printf("labels       %d\n", i.nlabels);
  printf("buckets      %d%s\n", i.args.bucket, i.pruneidx_size >= 0 ? " (pruned index)" : "");
  if (i.pruneidx_size > 0) printf("kept buckets %lld\n", (long long)i.pruneidx_size);
  printf("char ngrams  %d..%d\n", i.args.minn, i.args.maxn);
  printf("word ngrams  %d\n", i.args.word_ngrams);
  printf("input        %lld x %lld%s\n", (long long)i.input_rows, (long long)i.input_cols,
         i.input_scheme == 8   ? " int8 + a scale per row"
         : i.input_scheme == 4 ? " int4 + a scale per row"
         : i.quant_input       ? ""
                               : " float32");
  if (i.quant_input) printf("dsub         %d\n", i.dsub_input);
  printf("output       %lld x %lld\n", (long long)i.output_rows, (long long)i.output_cols);
  printf("kernels      %s\n", es_simd_name(i.simd));
  human(a, sizeof a, (double)i.file_bytes);
  human(b, sizeof b, (double)i.private_bytes);
  human(c, sizeof c, (double)i.scratch_bytes);
  human(d, sizeof d, (double)(i.private_bytes + 4 * i.scratch_bytes));
  printf("file         %s (mapped read-only: shared page cache, reclaimable)\n", a);
  printf("private      %s (served: dictionary table, frequent words' rows%s)\n", b,
         i.args.loss == ES_LOSS_HS ? ", label tree" : "");
  printf("scratch      %s per predicting thread\n", c);
  printf("serving      %s private with 4 threads + up to %s of page cache for the pages "
         "touched\n",
         d, a);
  es_model_close(m);
  return 0;
}
