/*
 * cmd_convert.c - `edgeserve convert IN OUT [--int8|--int4|--f32]
 * [--normalize SPEC]`: between fastText files and edgeserve's native format.
 */
#include <string.h>

#include "cli.h"
#include "edgeserve/normalize.h"
#include "edgeserve/train.h"

static void usage(FILE *f) {
  fprintf(f, "usage: edgeserve convert IN OUT [--int8|--int4|--f32] [--normalize SPEC]\n"
             "  IN: .bin, .ftz or .esm; OUT's extension picks the format:\n"
             "  .esm edgeserve native (any storage, metadata), .bin (f32), .ftz (product-"
             "quantized)\n"
             "  --int8 / --int4  per-row scalar quantization of the input matrix (.esm)\n"
             "  --f32            dense floats (decodes quantized input)\n"
             "  --normalize SPEC store a file-name normalizer (e.g. default, none,\n"
             "                   separators,lower,extension,episode,quality) in the .esm\n");
}

int es_cmd_convert(int argc, char **argv) {
  es_convert_args_t a = {ES_SCHEME_KEEP, NULL, NULL};
  const char *in = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--int8"))
      a.scheme = ES_SCHEME_INT8;
    else if (!strcmp(argv[i], "--int4"))
      a.scheme = ES_SCHEME_INT4;
    else if (!strcmp(argv[i], "--f32"))
      a.scheme = ES_SCHEME_F32;
    else if (!strcmp(argv[i], "--normalize") && i + 1 < argc)
      a.normalizer = argv[++i];
    else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "edgeserve: convert: unknown option \"%s\"\n", argv[i]);
      usage(stderr);
      return 2;
    } else if (!in)
      in = argv[i];
    else if (!out)
      out = argv[i];
    else {
      usage(stderr);
      return 2;
    }
  }
  if (!in || !out) {
    usage(stderr);
    return 2;
  }
  es_error_t err = {0, -1, ""};
  char spec[256];
  if (a.normalizer) { /* validate and store the canonical form */
    es_normalizer_t n;
    if (es_normalizer_parse(&n, a.normalizer, &err)) {
      fprintf(stderr, "edgeserve: --normalize: %s\n", err.msg);
      return 2;
    }
    es_normalizer_format(&n, spec, sizeof spec);
    a.normalizer = spec;
  }
  const char *base = strrchr(in, '/');
  a.source = base ? base + 1 : in;
  int rc = es_convert(in, out, &a, &err);
  if (rc) {
    fprintf(stderr, "edgeserve: %s\n", err.msg[0] ? err.msg : es_strerror(rc));
    return 1;
  }
  return 0;
}
