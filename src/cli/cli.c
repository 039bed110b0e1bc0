/* cli.c - helpers shared by the edgeserve commands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

es_model_t *cli_open_model_with(const char *path, const es_model_params_t *params) {
  es_model_t *m;
  es_error_t err = {0};
  int rc = es_model_open(&m, path, params, &err);
  if (rc) {
    fprintf(stderr, "edgeserve: %s\n", err.msg[0] ? err.msg : es_strerror(rc));
    return NULL;
  }
  return m;
}

es_model_t *cli_open_model(const char *path) { return cli_open_model_with(path, NULL); }

int cli_parse_int(const char *s, const char *what, int32_t *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < INT32_MIN || v > INT32_MAX) {
    fprintf(stderr, "edgeserve: %s must be an integer, got \"%s\"\n", what, s);
    return -1;
  }
  *out = (int32_t)v;
  return 0;
}

int cli_parse_float(const char *s, const char *what, float *out) {
  char *end;
  errno = 0;
  float v = strtof(s, &end);
  if (errno || end == s || *end) {
    fprintf(stderr, "edgeserve: %s must be a number, got \"%s\"\n", what, s);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_parse_i64(const char *s, const char *what, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end) {
    fprintf(stderr, "edgeserve: %s: \"%s\" is not an integer\n", what, s);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_parse_double(const char *s, const char *what, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v)) {
    fprintf(stderr, "edgeserve: %s: \"%s\" is not a number\n", what, s);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_open_input(const char *path) {
  if (strcmp(path, "-") == 0) return 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fprintf(stderr, "edgeserve: cannot open input %s: %s\n", path, strerror(errno));
  return fd;
}

int cli_predict_args(int *argc, char **argv, int32_t *k, float *threshold, int *nthreads) {
  *nthreads = cli_take_threads(argc, argv);
  if (*nthreads < 0) return 2;
  if (*argc < 3 || *argc > 5) {
    fprintf(stderr,
            "usage: edgeserve %s MODEL FILE|- [k] [threshold] [--threads N]\n"
            "  k          number of labels (default 1, -1 for all)\n"
            "  threshold  minimum probability (default 0.0)\n"
            "  --threads  threads predicting (default: all online CPUs)\n",
            argv[0]);
    return 2;
  }
  *k = 1;
  *threshold = 0.0f;
  if (*argc > 3 && cli_parse_int(argv[3], "k", k)) return 2;
  if (*argc > 4 && cli_parse_float(argv[4], "threshold", threshold)) return 2;
  if (*k == 0 || *k < -1) {
    fprintf(stderr, "edgeserve: k must be 1 or higher, or -1 for all labels\n");
    return 2;
  }
  return 0;
}
