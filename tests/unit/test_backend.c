/*
 * test_backend.c - the backend table and the fastText backend (backend.h):
 * loading .bin/.ftz/.esm files, predictions equal to es_predict()'s with
 * the label prefix stripped, per-item errors, concurrent infer() over a
 * few scratches, variants() ordering, and clean errors on corrupt files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "edgeserve/backend.h"
#include "edgeserve/estimate.h"
#include "edgeserve/model.h"
#include "edgeserve/predict.h"
#include "edgeserve/train.h"

#include "ftmodel.h"
#include "tmptree.h"

static char root[512];

static const char *WORDS[] = {"</s>", "hello", "world", "caffè", "la", "casa", "dark", "lost"};
static const char *LABELS[] = {"__label__breaking_bad", "__label__dark",
                               "__label__la_casa_di_carta", "__label__lost"};
static const char *TEXTS[] = {
    "hello world",    "la casa", "Dark.S01E01.720p.mkv", "lost caffè", "something unknown entirely",
    "casa hello dark"};
#define NTEXTS (int)(sizeof TEXTS / sizeof TEXTS[0])

static ft_spec spec_default(void) {
  ft_spec s = ft_default_spec();
  s.nwords = 8;
  s.words = WORDS;
  s.nlabels = 4;
  s.labels = LABELS;
  return s;
}

/* Writes the model of spec s to root/name and returns the path in buf. */
static const char *write_model(const ft_spec *s, const char *name, char *buf, size_t cap) {
  size_t len;
  uint8_t *data = ft_write(s, &len);
  snprintf(buf, cap, "%s/%s", root, name);
  FILE *f = fopen(buf, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
  free(data);
  return buf;
}

static const char *write_bytes(const char *name, const void *data, size_t len, char *buf,
                               size_t cap) {
  snprintf(buf, cap, "%s/%s", root, name);
  FILE *f = fopen(buf, "wb");
  assert_non_null(f);
  if (len) assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
  return buf;
}

static int setup(void **state) {
  (void)state;
  return tmptree_new(root, sizeof root, "es-backend-");
}

static int teardown(void **state) {
  (void)state;
  tmptree_rm(root);
  return 0;
}

static void *load_ok(const char *path, int nthreads, int max_batch) {
  const es_backend_t *be = es_backend_fasttext();
  es_backend_opts_t o = es_backend_default_opts();
  o.nthreads = nthreads;
  o.max_batch = max_batch;
  void *inst = NULL;
  es_error_t err;
  int rc = be->load(path, &o, &inst, &err);
  if (rc) fail_msg("load %s: %s", path, err.msg);
  assert_non_null(inst);
  return inst;
}

/* Checks that infer() gives exactly what es_predict() gives on the same
 * file, with "__label__" stripped when `stripped`. */
static void check_equal_to_predict(const char *path, void *inst, int32_t k, float threshold,
                                   int stripped) {
  const es_backend_t *be = es_backend_fasttext();
  es_model_t *m;
  assert_int_equal(es_model_open(&m, path, NULL, NULL), 0);
  es_scratch_t *s = es_scratch_new(m);
  int32_t nl = es_model_nlabels(m);
  es_label_prob_t out[NTEXTS][8];
  es_infer_item_t items[NTEXTS];
  memset(items, 0, sizeof items);
  for (int i = 0; i < NTEXTS; i++) {
    items[i].text = TEXTS[i];
    items[i].len = strlen(TEXTS[i]);
    items[i].k = k;
    items[i].threshold = threshold;
    items[i].out = out[i];
    items[i].cap = 8;
  }
  es_error_t err;
  assert_int_equal(be->infer(inst, items, NTEXTS, &err), 0);
  for (int i = 0; i < NTEXTS; i++) {
    es_prediction_t want[8];
    int32_t n;
    assert_int_equal(es_predict(m, s, TEXTS[i], strlen(TEXTS[i]), k, threshold, want, 8, &n), 0);
    assert_int_equal(items[i].status, 0);
    assert_int_equal(items[i].n, n);
    assert_true(n <= nl);
    for (int j = 0; j < n; j++) {
      size_t len;
      const char *l = es_model_label(m, want[j].label, &len);
      size_t skip = stripped ? 9 : 0;
      assert_int_equal(out[i][j].len, len - skip);
      assert_memory_equal(out[i][j].label, l + skip, len - skip);
      assert_true(out[i][j].prob == want[j].prob);
    }
  }
  es_scratch_free(s);
  es_model_close(m);
}

static void test_default_opts_are_one_thread_batch_32(void **state) {
  (void)state;
  es_backend_opts_t o = es_backend_default_opts();
  assert_int_equal(o.nthreads, 1);
  assert_int_equal(o.max_batch, 32);
  assert_int_equal(o.populate, 0);
}

static void test_find_by_name_and_by_file(void **state) {
  (void)state;
  const es_backend_t *ft = es_backend_fasttext();
  assert_ptr_equal(es_backend_find("fasttext"), ft);
  assert_string_equal(ft->name, "fasttext");
  assert_null(es_backend_find("whisper"));
  assert_null(es_backend_find(NULL));
  assert_ptr_equal(es_backend_for_file("models/media.bin"), ft);
  assert_ptr_equal(es_backend_for_file("m.FTZ"), ft);
  assert_ptr_equal(es_backend_for_file("/x/m.esm"), ft);
  assert_null(es_backend_for_file("m.onnx"));
  assert_null(es_backend_for_file("m.bin.tmp"));
  assert_null(es_backend_for_file(".bin"));
  assert_null(es_backend_for_file(NULL));
  assert_null(ft->session_open);
  assert_null(ft->session_feed);
  assert_null(ft->session_close);
}

static void test_bin_predictions_equal_es_predict_with_prefix_stripped(void **state) {
  (void)state;
  ft_spec s = spec_default();
  char path[600];
  write_model(&s, "m.bin", path, sizeof path);
  void *inst = load_ok(path, 1, 32);
  check_equal_to_predict(path, inst, 3, 0.0f, 1);
  check_equal_to_predict(path, inst, -1, 0.0f, 1);
  check_equal_to_predict(path, inst, 4, 0.3f, 1);
  /* the label text itself: underscores are kept, only the prefix goes */
  es_label_prob_t out[4];
  es_infer_item_t it = {.text = "hello", .len = 5, .k = -1, .out = out, .cap = 4};
  assert_int_equal(es_backend_fasttext()->infer(inst, &it, 1, NULL), 0);
  assert_int_equal(it.n, 4);
  int seen = 0;
  for (int i = 0; i < 4; i++)
    if (out[i].len == 12 && !memcmp(out[i].label, "breaking_bad", 12)) seen++;
  assert_int_equal(seen, 1);
  es_backend_desc_t d;
  es_backend_fasttext()->describe(inst, &d);
  assert_string_equal(d.platform, "fasttext");
  assert_string_equal(d.format, "bin");
  assert_int_equal(d.nlabels, 4);
  es_model_estimate_t est;
  assert_int_equal(es_estimate_model_file(path, 1, 32, &est, NULL), 0);
  assert_int_equal(d.mapped_bytes, est.mapped_bytes);
  assert_true(d.private_bytes > est.private_bytes); /* + a scratch */
  es_backend_fasttext()->unload(inst);
}

static void test_labels_without_the_shared_prefix_are_kept_whole(void **state) {
  (void)state;
  static const char *labels[] = {"__label__a", "b_without_prefix", "__label__c"};
  ft_spec s = ft_default_spec();
  s.labels = labels;
  char path[600];
  write_model(&s, "mixed.bin", path, sizeof path);
  void *inst = load_ok(path, 1, 8);
  check_equal_to_predict(path, inst, -1, 0.0f, 0);
  es_backend_fasttext()->unload(inst);
}

static void test_ftz_loads_and_predicts_like_es_predict(void **state) {
  (void)state;
  ft_spec s = spec_default();
  s.quant = 1;
  s.qnorm = 1;
  char path[600];
  write_model(&s, "m.ftz", path, sizeof path);
  void *inst = load_ok(path, 2, 8);
  es_backend_desc_t d;
  es_backend_fasttext()->describe(inst, &d);
  assert_string_equal(d.format, "ftz");
  check_equal_to_predict(path, inst, 2, 0.0f, 1);
  es_backend_fasttext()->unload(inst);
}

/* An .esm with a normalizer: the engine applies it, so raw file names give
 * what their normalised form gives. */
static void test_esm_with_normalizer_predicts_on_normalised_text(void **state) {
  (void)state;
  ft_spec s = spec_default();
  char bin[600], esm[600];
  write_model(&s, "n.bin", bin, sizeof bin);
  snprintf(esm, sizeof esm, "%s/n.esm", root);
  es_convert_args_t a = {ES_SCHEME_KEEP, "default", "n.bin"};
  es_error_t err;
  assert_int_equal(es_convert(bin, esm, &a, &err), 0);
  void *inst = load_ok(esm, 1, 8);
  es_backend_desc_t d;
  es_backend_fasttext()->describe(inst, &d);
  assert_string_equal(d.format, "esm");
  check_equal_to_predict(esm, inst, 3, 0.0f, 1);
  /* "Dark.S01E01.720p.mkv" predicts as the .bin predicts "dark" */
  es_model_t *m;
  assert_int_equal(es_model_open(&m, bin, NULL, NULL), 0);
  es_scratch_t *sc = es_scratch_new(m);
  es_prediction_t want[3];
  int32_t n;
  assert_int_equal(es_predict(m, sc, "dark", 4, 3, 0.0f, want, 3, &n), 0);
  es_label_prob_t out[3];
  es_infer_item_t it = {.text = "Dark.S01E01.720p.mkv", .len = 20, .k = 3, .out = out, .cap = 3};
  assert_int_equal(es_backend_fasttext()->infer(inst, &it, 1, NULL), 0);
  assert_int_equal(it.status, 0);
  assert_int_equal(it.n, n);
  for (int i = 0; i < n; i++) {
    size_t len;
    const char *l = es_model_label(m, want[i].label, &len);
    assert_int_equal(out[i].len, len - 9);
    assert_memory_equal(out[i].label, l + 9, len - 9);
    assert_true(out[i].prob == want[i].prob);
  }
  /* the engine normalises the first 16 KiB of a line: longer items are
   * refused, not cut */
  char *big = malloc(20000);
  memset(big, 'x', 20000);
  es_infer_item_t two[2] = {{.text = big, .len = 16 * 1024, .k = 1, .out = out, .cap = 3},
                            {.text = big, .len = 16 * 1024 + 1, .k = 1, .out = out + 1, .cap = 2}};
  assert_int_equal(es_backend_fasttext()->infer(inst, two, 2, NULL), 0);
  assert_int_equal(two[0].status, 0);
  assert_int_equal(two[1].status, ES_ERANGE);
  free(big);
  es_scratch_free(sc);
  es_model_close(m);
  es_backend_fasttext()->unload(inst);
}

/* The form normalize() gives is what the engine sees: equal forms, equal
 * answers; texts infer() refuses have none. */
static void test_normalize_gives_the_form_the_model_sees(void **state) {
  (void)state;
  const es_backend_t *be = es_backend_fasttext();
  ft_spec s = spec_default();
  char bin[600], esm[600];
  write_model(&s, "f.bin", bin, sizeof bin);
  snprintf(esm, sizeof esm, "%s/f.esm", root);
  es_convert_args_t a = {ES_SCHEME_KEEP, "default", NULL};
  assert_int_equal(es_convert(bin, esm, &a, NULL), 0);
  void *plain = load_ok(bin, 1, 4), *norm = load_ok(esm, 1, 4);
  char out[64];
  /* without a normalizer: the text itself */
  assert_int_equal(be->normalize(plain, "Hello World", 11, out, sizeof out), 11);
  assert_string_equal(out, "Hello World");
  assert_int_equal(be->normalize(plain, "hello\n", 6, out, sizeof out), 6);
  assert_int_equal(be->normalize(plain, "", 0, out, sizeof out), 1);
  assert_string_equal(out, "\n");
  assert_int_equal(be->normalize(plain, "\n", 1, out, sizeof out), 1);
  assert_int_equal(be->normalize(plain, "a\nb", 3, out, sizeof out), SIZE_MAX);
  /* with one */
  assert_int_equal(be->normalize(norm, "Dark.S01E01.720p.mkv", 20, out, sizeof out), 4);
  assert_string_equal(out, "dark");
  assert_int_equal(be->normalize(norm, "DARK - s02e03 [1080p].avi", 25, out, sizeof out), 4);
  assert_string_equal(out, "dark");
  assert_int_equal(be->normalize(norm, "__label__x La.Casa", 18, out, sizeof out), 18);
  assert_string_equal(out, "__label__x la casa");
  assert_int_equal(be->normalize(norm, "720p.mkv", 8, out, sizeof out), 0); /* not "empty" */
  assert_string_equal(out, "");
  assert_int_equal(be->normalize(norm, "", 0, out, sizeof out), 1);
  assert_string_equal(out, "\n");
  assert_int_equal(be->normalize(norm, "La.Casa.Di.Carta", 16, out, 4), 16); /* too small */
  assert_int_equal(be->normalize(norm, "a\nb", 3, out, sizeof out), SIZE_MAX);
  char *big = malloc(3000);
  memset(big, 'x', 3000);
  assert_int_equal(be->normalize(norm, big, 3000, out, sizeof out), SIZE_MAX);
  free(big);
  /* equal forms, equal answers */
  es_label_prob_t p1[3], p2[3];
  es_infer_item_t it[2] = {
      {.text = "Dark.S01E01.720p.mkv", .len = 20, .k = 3, .out = p1, .cap = 3},
      {.text = "DARK - s02e03 [1080p].avi", .len = 25, .k = 3, .out = p2, .cap = 3}};
  assert_int_equal(be->infer(norm, it, 2, NULL), 0);
  assert_int_equal(it[0].n, 3);
  assert_int_equal(it[1].n, 3);
  for (int i = 0; i < 3; i++) {
    assert_ptr_equal(p1[i].label, p2[i].label);
    assert_true(p1[i].prob == p2[i].prob);
  }
  be->unload(plain);
  be->unload(norm);
}

static void test_item_errors_stay_with_their_item(void **state) {
  (void)state;
  ft_spec s = spec_default();
  char path[600];
  write_model(&s, "e.bin", path, sizeof path);
  void *inst = load_ok(path, 1, 16);
  size_t big = 64 * 1024 + 1;
  char *huge = malloc(big);
  memset(huge, 'a', big);
  es_label_prob_t out[8][4];
  es_infer_item_t it[8];
  memset(it, 0, sizeof it);
  const char *texts[8] = {"hello", "hello\nworld", "hello\n", "", "\n", "la casa", "casa", NULL};
  for (int i = 0; i < 8; i++) {
    it[i].text = texts[i];
    it[i].len = texts[i] ? strlen(texts[i]) : big;
    it[i].k = 2;
    it[i].out = out[i];
    it[i].cap = 4;
    it[i].n = 99;
  }
  it[5].k = 0;       /* invalid k */
  it[6].k = -1;      /* all 4 labels... */
  it[6].cap = 3;     /* ...do not fit */
  it[7].text = huge; /* longer than 64 KiB */
  es_error_t err;
  assert_int_equal(es_backend_fasttext()->infer(inst, it, 8, &err), 0);
  assert_int_equal(it[0].status, 0);
  assert_int_equal(it[0].n, 2);
  assert_int_equal(it[1].status, ES_EMULTILINE);
  assert_int_equal(it[1].n, 0);
  assert_int_equal(it[2].status, 0); /* a trailing newline is fine */
  assert_int_equal(it[2].n, 2);
  assert_int_equal(it[3].status, 0); /* empty: no prediction */
  assert_int_equal(it[3].n, 0);
  assert_int_equal(it[4].status, 0);
  assert_int_equal(it[4].n, 0);
  assert_int_equal(it[5].status, ES_EINVAL);
  assert_int_equal(it[5].n, 0);
  assert_int_equal(it[6].status, ES_EINVAL);
  assert_int_equal(it[7].status, ES_ERANGE);
  assert_int_equal(it[7].n, 0);
  /* item 0 and item 2 agree: the newline changes nothing */
  for (int j = 0; j < 2; j++) {
    assert_ptr_equal(out[0][j].label, out[2][j].label);
    assert_true(out[0][j].prob == out[2][j].prob);
  }
  /* a batch larger than max_batch runs nothing */
  es_infer_item_t many[17];
  memset(many, 0, sizeof many);
  assert_int_equal(es_backend_fasttext()->infer(inst, many, 17, &err), ES_EINVAL);
  assert_int_equal(err.code, ES_EINVAL);
  assert_int_equal(es_backend_fasttext()->infer(inst, many, 0, &err), 0);
  free(huge);
  es_backend_fasttext()->unload(inst);
}

typedef struct {
  void *inst;
  int iters;
  const float *want; /* NTEXTS x 3 probabilities */
  int mismatches;
} worker_arg;

static void *worker(void *p) {
  worker_arg *a = p;
  for (int it = 0; it < a->iters; it++) {
    es_label_prob_t out[NTEXTS][3];
    es_infer_item_t items[NTEXTS];
    memset(items, 0, sizeof items);
    for (int i = 0; i < NTEXTS; i++) {
      items[i].text = TEXTS[i];
      items[i].len = strlen(TEXTS[i]);
      items[i].k = 3;
      items[i].out = out[i];
      items[i].cap = 3;
    }
    if (es_backend_fasttext()->infer(a->inst, items, NTEXTS, NULL)) a->mismatches++;
    for (int i = 0; i < NTEXTS; i++)
      for (int j = 0; j < 3; j++)
        if (items[i].status || items[i].n != 3 || out[i][j].prob != a->want[i * 3 + j])
          a->mismatches++;
  }
  return NULL;
}

static void test_four_threads_share_two_scratches(void **state) {
  (void)state;
  ft_spec s = spec_default();
  char path[600];
  write_model(&s, "t.bin", path, sizeof path);
  void *inst = load_ok(path, 2, NTEXTS);
  float want[NTEXTS * 3];
  es_label_prob_t out[NTEXTS][3];
  es_infer_item_t items[NTEXTS];
  memset(items, 0, sizeof items);
  for (int i = 0; i < NTEXTS; i++) {
    items[i].text = TEXTS[i];
    items[i].len = strlen(TEXTS[i]);
    items[i].k = 3;
    items[i].out = out[i];
    items[i].cap = 3;
  }
  assert_int_equal(es_backend_fasttext()->infer(inst, items, NTEXTS, NULL), 0);
  for (int i = 0; i < NTEXTS; i++)
    for (int j = 0; j < 3; j++) want[i * 3 + j] = out[i][j].prob;
  pthread_t th[4];
  worker_arg args[4];
  for (int t = 0; t < 4; t++) {
    args[t] = (worker_arg){inst, 300, want, 0};
    assert_int_equal(pthread_create(&th[t], NULL, worker, &args[t]), 0);
  }
  for (int t = 0; t < 4; t++) {
    pthread_join(th[t], NULL);
    assert_int_equal(args[t].mismatches, 0);
  }
  es_backend_fasttext()->unload(inst);
}

static void test_corrupt_or_missing_files_fail_cleanly(void **state) {
  (void)state;
  const es_backend_t *be = es_backend_fasttext();
  es_backend_opts_t o = es_backend_default_opts();
  es_error_t err;
  void *inst = (void *)1;
  char path[600];
  /* truncated */
  ft_spec s = spec_default();
  size_t len;
  uint8_t *data = ft_write(&s, &len);
  write_bytes("trunc.bin", data, len / 2, path, sizeof path);
  int rc = be->load(path, &o, &inst, &err);
  assert_true(rc == ES_EFORMAT || rc == ES_EIO);
  assert_null(inst);
  assert_non_null(strstr(err.msg, "trunc.bin"));
  es_model_estimate_t est;
  assert_int_equal(be->estimate(path, &o, &est, &err), rc);
  /* garbage */
  write_bytes("junk.ftz", "not a model at all", 18, path, sizeof path);
  inst = (void *)1;
  assert_int_equal(be->load(path, &o, &inst, &err), ES_EFORMAT);
  assert_null(inst);
  assert_non_null(strstr(err.msg, "junk.ftz"));
  /* empty */
  write_bytes("empty.bin", "", 0, path, sizeof path);
  assert_int_not_equal(be->load(path, &o, &inst, &err), 0);
  assert_null(inst);
  /* missing */
  snprintf(path, sizeof path, "%s/none.bin", root);
  assert_int_equal(be->load(path, &o, &inst, &err), ES_EIO);
  assert_null(inst);
  assert_non_null(strstr(err.msg, "none.bin"));
  /* bad options */
  write_bytes("ok.bin", data, len, path, sizeof path);
  o.nthreads = 0;
  assert_int_equal(be->load(path, &o, &inst, &err), ES_EINVAL);
  assert_null(inst);
  free(data);
  be->unload(NULL);
}

static void test_variants_lists_bin_then_esm_then_ftz_larger_first(void **state) {
  (void)state;
  char dir[600], path[700];
  snprintf(dir, sizeof dir, "%s/v", root);
  assert_int_equal(tmptree_put(root, "v/notes.txt", "x"), 0);
  ft_spec small = spec_default(), big = spec_default();
  big.dim = 32;
  size_t ls, lb;
  uint8_t *ds = ft_write(&small, &ls), *db = ft_write(&big, &lb);
  write_bytes("v/small.bin", ds, ls, path, sizeof path);
  write_bytes("v/big.bin", db, lb, path, sizeof path);
  write_bytes("v/q.ftz", ds, ls, path, sizeof path);
  write_bytes("v/n.esm", ds, ls, path, sizeof path);
  write_bytes("v/.partial.bin", db, lb, path, sizeof path);
  assert_int_equal(tmptree_put(root, "v/dir.bin/x", "x"), 0); /* a folder, not a file */
  free(ds);
  free(db);
  char names[8][64];
  es_error_t err;
  const es_backend_t *be = es_backend_fasttext();
  assert_int_equal(be->variants(dir, names, 8, &err), 4);
  assert_string_equal(names[0], "big.bin");
  assert_string_equal(names[1], "small.bin");
  assert_string_equal(names[2], "n.esm");
  assert_string_equal(names[3], "q.ftz");
  /* cap smaller than the count: the best ones, and the full count */
  memset(names, 0, sizeof names);
  assert_int_equal(be->variants(dir, names, 1, &err), 4);
  assert_string_equal(names[0], "big.bin");
  assert_string_equal(names[1], "");
  snprintf(dir, sizeof dir, "%s/nope", root);
  assert_int_equal(be->variants(dir, names, 8, &err), ES_EIO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_opts_are_one_thread_batch_32),
      cmocka_unit_test(test_find_by_name_and_by_file),
      cmocka_unit_test(test_bin_predictions_equal_es_predict_with_prefix_stripped),
      cmocka_unit_test(test_labels_without_the_shared_prefix_are_kept_whole),
      cmocka_unit_test(test_ftz_loads_and_predicts_like_es_predict),
      cmocka_unit_test(test_esm_with_normalizer_predicts_on_normalised_text),
      cmocka_unit_test(test_normalize_gives_the_form_the_model_sees),
      cmocka_unit_test(test_item_errors_stay_with_their_item),
      cmocka_unit_test(test_four_threads_share_two_scratches),
      cmocka_unit_test(test_corrupt_or_missing_files_fail_cleanly),
      cmocka_unit_test(test_variants_lists_bin_then_esm_then_ftz_larger_first),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
