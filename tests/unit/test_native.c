/*
 * test_native.c - edgeserve's native model format (.esm) and es_convert:
 * round trips, int8/int4 rows, metadata, and the loader against truncated
 * and mutated native files (never a crash; a clear error).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgeserve/model.h"
#include "edgeserve/predict.h"
#include "edgeserve/train.h"
#include "ftmodel.h"

static const char *const WORDS[] = {"alpha", "beta", "gamma", "delta", "</s>"};
static const char *const LABELS[] = {"__label__a", "__label__b", "__label__c"};

static char dir[] = "/tmp/es-native-XXXXXX";

static int setup(void **state) {
  (void)state;
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static void write_file(const char *p, const uint8_t *b, size_t n) {
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *p, size_t *n) {
  FILE *f = fopen(p, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  rewind(f);
  uint8_t *b = malloc(*n ? *n : 1);
  assert_int_equal(fread(b, 1, *n, f), *n);
  fclose(f);
  return b;
}

/* A small dense fastText model on disk; returns its path in buf. */
static void make_bin(char *buf, size_t n, int32_t dim) {
  ft_spec s = ft_default_spec();
  s.dim = dim;
  s.nwords = 5;
  s.words = WORDS;
  s.nlabels = 3;
  s.labels = LABELS;
  s.bucket = 300;
  s.minn = 2;
  s.maxn = 3;
  s.word_ngrams = 2;
  size_t len;
  uint8_t *b = ft_write(&s, &len);
  path(buf, n, dim == 17 ? "m17.bin" : "m.bin");
  write_file(buf, b, len);
  free(b);
}

static const char *TEXTS[] = {"alpha beta", "gamma delta alpha", "unknown words only", "",
                              "beta beta gamma zeta"};

/* Top-3 labels and probabilities of each text. */
static void predict_all(const es_model_t *m, int32_t *ids, float *probs) {
  es_scratch_t *s = es_scratch_new(m);
  assert_non_null(s);
  for (size_t t = 0; t < sizeof TEXTS / sizeof *TEXTS; t++) {
    es_prediction_t out[3];
    int32_t n = 0;
    assert_int_equal(es_predict(m, s, TEXTS[t], strlen(TEXTS[t]), 3, 0.0f, out, 3, &n), 0);
    for (int k = 0; k < 3; k++) {
      ids[t * 3 + k] = k < n ? out[k].label : -1;
      probs[t * 3 + k] = k < n ? out[k].prob : 0.0f;
    }
  }
  es_scratch_free(s);
}

static void test_f32_round_trip(void **state) {
  (void)state;
  char bin[256], esm[256], back[256];
  make_bin(bin, sizeof bin, 16);
  path(esm, sizeof esm, "m.esm");
  path(back, sizeof back, "back.bin");
  es_error_t err;
  assert_int_equal(es_convert(bin, esm, NULL, &err), 0);
  assert_int_equal(es_convert(esm, back, NULL, &err), 0);
  size_t a, b;
  uint8_t *x = read_file(bin, &a), *y = read_file(back, &b);
  assert_int_equal(a, b);
  assert_memory_equal(x, y, a);
  free(x);
  free(y);
  /* the .esm predicts bit-identically */
  es_model_t *m1, *m2;
  assert_int_equal(es_model_open(&m1, bin, NULL, &err), 0);
  assert_int_equal(es_model_open(&m2, esm, NULL, &err), 0);
  es_model_info_t info;
  es_model_info(m2, &info);
  assert_true(info.native);
  int32_t i1[15], i2[15];
  float p1[15], p2[15];
  predict_all(m1, i1, p1);
  predict_all(m2, i2, p2);
  assert_memory_equal(i1, i2, sizeof i1);
  assert_memory_equal(p1, p2, sizeof p1);
  es_model_close(m1);
  es_model_close(m2);
}

/* int8 / int4 rows decode to within half a step of the f32 rows. */
static void check_quantized(int bits, int32_t dim) {
  char bin[256], esm[256];
  make_bin(bin, sizeof bin, dim);
  path(esm, sizeof esm, bits == 8 ? "q8.esm" : "q4.esm");
  es_convert_args_t a = {bits == 8 ? ES_SCHEME_INT8 : ES_SCHEME_INT4, "lower", "m.bin"};
  es_error_t err;
  assert_int_equal(es_convert(bin, esm, &a, &err), 0);
  es_model_t *f, *q;
  assert_int_equal(es_model_open(&f, bin, NULL, &err), 0);
  assert_int_equal(es_model_open(&q, esm, NULL, &err), 0);
  es_model_info_t info;
  es_model_info(q, &info);
  assert_int_equal(info.input_scheme, bits);
  float rf[32], rq[32];
  for (int64_t r = 0; r < info.input_rows; r++) {
    es_model_row(f, 0, r, rf);
    es_model_row(q, 0, r, rq);
    float amax = 0;
    for (int j = 0; j < dim; j++) amax = fmaxf(amax, fabsf(rf[j]));
    float step = amax / (bits == 8 ? 127.0f : 7.0f);
    for (int j = 0; j < dim; j++) assert_true(fabsf(rf[j] - rq[j]) <= step * 0.5f + 1e-7f);
  }
  size_t len;
  const char *v = es_model_meta(q, "normalizer", &len);
  assert_non_null(v);
  assert_int_equal(len, 5);
  assert_memory_equal(v, "lower", 5);
  v = es_model_meta(q, "source", &len);
  assert_non_null(v);
  assert_memory_equal(v, "m.bin", 5);
  assert_null(es_model_meta(q, "missing", &len));
  assert_null(es_model_meta(f, "normalizer", &len));
  /* predictions work on every kernel and agree between them */
  es_model_params_t p = es_model_default_params();
  p.simd = ES_SIMD_SCALAR;
  es_model_t *qs;
  assert_int_equal(es_model_open(&qs, esm, &p, &err), 0);
  int32_t i1[15], i2[15];
  float p1[15], p2[15];
  predict_all(q, i1, p1);
  predict_all(qs, i2, p2);
  assert_memory_equal(i1, i2, sizeof i1);
  assert_memory_equal(p1, p2, sizeof p1);
  es_model_close(qs);
  es_model_close(f);
  es_model_close(q);
}

static void test_int8(void **state) {
  (void)state;
  check_quantized(8, 16);
  check_quantized(8, 17); /* a tail column */
}

static void test_int4(void **state) {
  (void)state;
  check_quantized(4, 16);
  check_quantized(4, 17); /* odd: the last byte holds one value */
}

static void test_refusals(void **state) {
  (void)state;
  char bin[256], esm[256], out[256];
  make_bin(bin, sizeof bin, 16);
  path(esm, sizeof esm, "r8.esm");
  es_convert_args_t a = {ES_SCHEME_INT8, NULL, NULL};
  es_error_t err;
  assert_int_equal(es_convert(bin, esm, &a, &err), 0);
  path(out, sizeof out, "r8.bin");
  assert_int_equal(es_convert(esm, out, NULL, &err), ES_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "f32"));
  assert_int_not_equal(access(out, F_OK), 0);
  assert_int_not_equal(access("r8.bin.tmp", F_OK), 0);
  a.scheme = ES_SCHEME_F32; /* dequantizing is allowed when asked for */
  assert_int_equal(es_convert(esm, out, &a, &err), 0);
  path(out, sizeof out, "x.ftz");
  assert_int_equal(es_convert(bin, out, NULL, &err), ES_EUNSUPPORTED);
  path(out, sizeof out, "x.txt");
  assert_int_equal(es_convert(bin, out, NULL, &err), ES_EINVAL);
}

/* Every truncation and thousands of byte mutations: an error or a model
 * that predicts safely; never a crash (ASan runs this too). */
static void test_corrupt(void **state) {
  (void)state;
  char bin[256], esm[256];
  make_bin(bin, sizeof bin, 16);
  path(esm, sizeof esm, "c.esm");
  es_convert_args_t a = {ES_SCHEME_INT4, "default", NULL};
  es_error_t err;
  assert_int_equal(es_convert(bin, esm, &a, &err), 0);
  size_t n;
  uint8_t *img = read_file(esm, &n);
  es_model_t *m;
  for (size_t cut = 0; cut < n; cut++) {
    int rc = es_model_open_mem(&m, img, cut, NULL, &err);
    assert_true(rc < 0);
    assert_true(err.msg[0] != 0);
    assert_true(err.offset >= -1 && err.offset <= (int64_t)cut); /* a position in the file */
  }
  uint8_t *mut = malloc(n);
  uint32_t x = 12345;
  int opened = 0;
  for (int t = 0; t < 3000; t++) {
    memcpy(mut, img, n);
    for (int k = 0; k < 1 + t % 4; k++) {
      x = x * 1103515245u + 12345u;
      size_t at = (x >> 8) % n;
      x = x * 1103515245u + 12345u;
      mut[at] = (uint8_t)(x >> 16);
    }
    if (es_model_open_mem(&m, mut, n, NULL, &err) == 0) {
      int32_t ids[15];
      float probs[15];
      predict_all(m, ids, probs);
      es_model_close(m);
      opened++;
    } else {
      assert_true(err.msg[0] != 0);
      assert_true(err.offset >= -1 && err.offset < (int64_t)n);
    }
  }
  assert_true(opened > 0); /* mutations in matrix values still open */
  /* the dictionary's magic sits at the FTHD section's offset, not at 0 */
  uint64_t fthd_off;
  memcpy(&fthd_off, img + 24 + 8, 8);
  memcpy(mut, img, n);
  mut[fthd_off] ^= 0xff;
  assert_int_equal(es_model_open_mem(&m, mut, n, NULL, &err), ES_EFORMAT);
  assert_int_equal(err.offset, (int64_t)fthd_off);
  free(mut);
  free(img);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_f32_round_trip), cmocka_unit_test(test_int8),
      cmocka_unit_test(test_int4),           cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_corrupt),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
