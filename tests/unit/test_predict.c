/* test_predict.c - prediction: one result whatever the path to it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edgeserve/edgeserve.h"
#include "ftmodel.h"
#include "model_impl.h"

static const char *texts[] = {
    "hello world",
    "la casa di carta caffè",
    "",
    "   ",
    "unknownword anotherone",
    "caffè \xff\xfe broken utf8 \xc3",
    "hello\tworld\r\x0b\x0c end",
    "__label__a hello __label__zzz world",
    "中文 emoji 😀 la casa",
};
#define NTEXTS (sizeof texts / sizeof *texts)

static uint32_t word_rows_bytes; /* es_model_params_t.word_rows_bytes of open_spec */

static es_model_t *open_spec(ft_spec *spec, uint8_t **buf, es_simd_t simd) {
  size_t len;
  *buf = ft_write(spec, &len);
  es_model_params_t p = es_model_default_params();
  p.simd = simd;
  p.word_rows_bytes = word_rows_bytes;
  es_model_t *m;
  es_error_t err = {0};
  int rc = es_model_open_mem(&m, *buf, len, &p, &err);
  if (rc) fail_msg("open: %s", err.msg);
  return m;
}

static void predict_all(es_model_t *m, es_scratch_t *s, const char *t, es_prediction_t *out,
                        int32_t *n) {
  assert_int_equal(es_predict(m, s, t, strlen(t), -1, 0.0f, out, 8, n), 0);
}

static void every_loss_and_format_agrees_across_kernels(void **state) {
  (void)state;
  for (int loss = 1; loss <= 4; loss++) {
    for (int quant = 0; quant <= 1; quant++) {
      ft_spec spec = ft_default_spec();
      spec.loss = loss;
      spec.quant = quant;
      spec.qnorm = quant;
      uint8_t *b1, *b2;
      es_model_t *auto_m = open_spec(&spec, &b1, ES_SIMD_AUTO);
      es_model_t *scal_m = open_spec(&spec, &b2, ES_SIMD_SCALAR);
      es_scratch_t *s1 = es_scratch_new(auto_m), *s2 = es_scratch_new(scal_m);
      for (size_t i = 0; i < NTEXTS; i++) {
        es_prediction_t a[8], b[8];
        int32_t na, nb;
        predict_all(auto_m, s1, texts[i], a, &na);
        predict_all(scal_m, s2, texts[i], b, &nb);
        assert_int_equal(na, 3);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, (size_t)na * sizeof *a);
        for (int j = 1; j < na; j++) assert_true(a[j - 1].logp >= a[j].logp);
      }
      es_scratch_free(s1);
      es_scratch_free(s2);
      es_model_close(auto_m);
      es_model_close(scal_m);
      free(b1);
      free(b2);
    }
  }
}

static void streaming_byte_by_byte_equals_whole_text(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  uint8_t *buf;
  es_model_t *m = open_spec(&spec, &buf, ES_SIMD_AUTO);
  es_scratch_t *s = es_scratch_new(m);
  for (size_t i = 0; i < NTEXTS; i++) {
    es_prediction_t a[8], b[8];
    int32_t na, nb, done = 0;
    predict_all(m, s, texts[i], a, &na);
    es_line_begin(s);
    size_t len = strlen(texts[i]);
    for (size_t j = 0; j < len && !done; j++) es_line_feed(m, s, texts[i] + j, 1, &done);
    if (!done) es_line_feed(m, s, "\n", 1, &done);
    assert_true(done);
    assert_int_equal(es_line_predict(m, s, -1, 0.0f, b, 8, &nb), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na * sizeof *a);
  }
  es_scratch_free(s);
  es_model_close(m);
  free(buf);
}

static void long_tokens_stream_with_the_same_result(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  uint8_t *buf;
  es_model_t *m = open_spec(&spec, &buf, ES_SIMD_AUTO);
  es_scratch_params_t small = es_scratch_default_params();
  small.token_bytes = 40; /* every token over ~38 bytes is spilled */
  es_scratch_t *big = es_scratch_new(m), *tiny = es_scratch_new_ex(m, &small);
  char *line = malloc(4000);
  const char *pieces[] = {"a", "è", "\x80", "中", "b"};
  for (int p = 0; p < 5; p++) {
    line[0] = 0;
    strcat(line, "hello ");
    while (strlen(line) < 3000) strcat(line, pieces[p]);
    strcat(line, " casa caffè world");
    es_prediction_t a[8], b[8];
    int32_t na, nb;
    predict_all(m, big, line, a, &na);
    predict_all(m, tiny, line, b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na * sizeof *a);
  }
  free(line);
  es_scratch_free(big);
  es_scratch_free(tiny);
  es_model_close(m);
  free(buf);
}

static void word_ngram_bound_keeps_memory_and_stays_close(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  uint8_t *buf;
  es_model_t *m = open_spec(&spec, &buf, ES_SIMD_AUTO);
  es_scratch_params_t p = es_scratch_default_params();
  p.max_line_words = 16;
  es_scratch_t *exact = es_scratch_new(m), *bounded = es_scratch_new_ex(m, &p);
  char line[20000] = "";
  for (int i = 0; i < 1500; i++) strcat(line, i % 3 ? "hello " : "casa ");
  es_prediction_t a[8], b[8];
  int32_t na, nb;
  predict_all(m, exact, line, a, &na);
  predict_all(m, bounded, line, b, &nb);
  assert_int_equal(na, nb);
  for (int i = 0; i < na; i++) {
    /* same features, summed in another order: equal up to rounding */
    float pa = 0, pb = 0;
    for (int j = 0; j < na; j++) {
      if (a[j].label == i) pa = a[j].prob;
      if (b[j].label == i) pb = b[j].prob;
    }
    assert_true(pa - pb < 1e-4f && pb - pa < 1e-4f);
  }
  es_scratch_free(exact);
  es_scratch_free(bounded);
  es_model_close(m);
  free(buf);
}

static void bad_arguments_are_refused(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  uint8_t *buf;
  es_model_t *m = open_spec(&spec, &buf, ES_SIMD_AUTO);
  es_scratch_t *s = es_scratch_new(m);
  es_prediction_t out[8];
  int32_t n;
  assert_int_equal(es_predict(m, s, "hello", 5, 0, 0.0f, out, 8, &n), ES_EINVAL);
  assert_int_equal(es_predict(m, s, "hello", 5, -2, 0.0f, out, 8, &n), ES_EINVAL);
  assert_int_equal(es_predict(m, s, "hello", 5, -1, 0.0f, out, 2, &n), ES_EINVAL);
  assert_int_equal(es_predict(m, s, "hello", 5, 5, 0.0f, out, 3, &n), 0); /* k > nlabels */
  assert_int_equal(n, 3);
  assert_int_equal(es_predict(m, s, "a\nb", 3, 1, 0.0f, out, 8, &n), ES_EMULTILINE);
  assert_int_equal(es_predict(m, s, "hello\n", 6, 1, 0.0f, out, 8, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(es_predict_count(m, -1), 3);
  assert_int_equal(es_predict_count(m, 2), 2);
  assert_int_equal(es_predict_count(m, 0), -1);
  es_scratch_free(s);
  es_model_close(m);
  free(buf);
}

static void threshold_filters_and_labels_are_collected(void **state) {
  (void)state;
  for (int loss = 1; loss <= 4; loss++) {
    ft_spec spec = ft_default_spec();
    spec.loss = loss;
    uint8_t *buf;
    es_model_t *m = open_spec(&spec, &buf, ES_SIMD_AUTO);
    es_scratch_t *s = es_scratch_new(m);
    es_prediction_t all[8], some[8];
    int32_t na, ns;
    predict_all(m, s, "hello world", all, &na);
    float th = all[1].prob - 1e-5f; /* keeps the first two, as p + 1e-5 >= th */
    assert_int_equal(es_predict(m, s, "hello world", 11, -1, th, some, 8, &ns), 0);
    assert_true(ns >= 1 && ns <= 2);
    for (int i = 0; i < ns; i++) assert_int_equal(some[i].label, all[i].label);
    int done;
    es_line_begin(s);
    es_line_feed(m, s, "__label__c x __label__a __label__nope y\n", 39, &done);
    es_line_end(m, s);
    int32_t nl;
    const int32_t *labels = es_line_labels(s, &nl);
    assert_int_equal(nl, 2);
    assert_int_equal(labels[0], 2);
    assert_int_equal(labels[1], 0);
    es_scratch_free(s);
    es_model_close(m);
    free(buf);
  }
}

static void a_line_without_features_has_no_prediction(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  spec.maxn = 0;
  spec.minn = 0;
  spec.word_ngrams = 1;
  uint8_t *buf;
  es_model_t *m = open_spec(&spec, &buf, ES_SIMD_AUTO);
  es_scratch_t *s = es_scratch_new(m);
  es_prediction_t out[8];
  int32_t n, done;
  /* A last line without newline gets no "</s>": unknown words only. */
  es_line_begin(s);
  es_line_feed(m, s, "zzz yyy", 7, &done);
  assert_int_equal(es_line_predict(m, s, 1, 0.0f, out, 8, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(es_line_nfeatures(s), 0);
  /* With its newline, "</s>" alone is a feature. */
  assert_int_equal(es_predict(m, s, "zzz yyy", 7, 1, 0.0f, out, 8, &n), 0);
  assert_int_equal(n, 1);
  es_scratch_free(s);
  es_model_close(m);
  free(buf);
}

typedef struct {
  es_model_t *m;
  es_prediction_t got[NTEXTS][8];
  int32_t n[NTEXTS];
} thread_arg;

static void *predict_thread(void *p) {
  thread_arg *a = p;
  es_scratch_t *s = es_scratch_new(a->m);
  for (int rep = 0; rep < 200; rep++)
    for (size_t i = 0; i < NTEXTS; i++)
      es_predict(a->m, s, texts[i], strlen(texts[i]), -1, 0.0f, a->got[i], 8, &a->n[i]);
  es_scratch_free(s);
  return NULL;
}

static void threads_share_one_model(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  spec.loss = 1;
  uint8_t *buf;
  es_model_t *m = open_spec(&spec, &buf, ES_SIMD_AUTO);
  thread_arg args[4];
  pthread_t tid[4];
  for (int t = 0; t < 4; t++) {
    memset(&args[t], 0, sizeof args[t]);
    args[t].m = m;
    pthread_create(&tid[t], NULL, predict_thread, &args[t]);
  }
  for (int t = 0; t < 4; t++) pthread_join(tid[t], NULL);
  for (int t = 1; t < 4; t++) assert_memory_equal(args[0].got, args[t].got, sizeof args[0].got);
  es_model_close(m);
  free(buf);
}

static void batch_equals_one_by_one(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  uint8_t *buf;
  es_model_t *m = open_spec(&spec, &buf, ES_SIMD_AUTO);
  es_scratch_t *s = es_scratch_new(m);
  size_t lens[NTEXTS];
  for (size_t i = 0; i < NTEXTS; i++) lens[i] = strlen(texts[i]);
  es_prediction_t batch[NTEXTS * 2], one[2];
  int32_t nb[NTEXTS], n1;
  assert_int_equal(es_predict_batch(m, s, texts, lens, NTEXTS, 2, 0.0f, batch, 2, nb), 0);
  for (size_t i = 0; i < NTEXTS; i++) {
    es_predict(m, s, texts[i], lens[i], 2, 0.0f, one, 2, &n1);
    assert_int_equal(nb[i], n1);
    assert_memory_equal(batch + 2 * i, one, (size_t)n1 * sizeof *one);
  }
  es_scratch_free(s);
  es_model_close(m);
  free(buf);
}

/* The AVX2 PQ kernel reads dsub-2 centroids in column blocks of 64 floats
 * from a padded pair table; every dim shape (odd dims with a 1-float last
 * sub-vector, odd sub-quantizer counts, more than one block, partial last
 * chunks) and batches over 32 rows must give the scalar kernel's bits. */
static void pq_models_agree_across_kernels_at_every_dim(void **state) {
  (void)state;
  static const int dims[] = {1,  2,  3,  4,  5,  7,  8,  9,  15, 16,  17,  31,
                             33, 49, 50, 51, 63, 64, 65, 66, 67, 100, 129, 130};
  int32_t keys[50], vals[50];
  for (int i = 0; i < 50; i++) keys[i] = 2 * i, vals[i] = 49 - i;
  const char *longer = "la casa di carta caffè hello world unknownword la casa hello lacasa "
                       "worldly hellos caffè carta cartas casas la la la world";
  for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
    for (int variant = 0; variant < 4; variant++) { /* qnorm, pruned */
      ft_spec spec = ft_default_spec();
      spec.dim = dims[di];
      spec.quant = 1;
      spec.qnorm = variant & 1;
      if (variant & 2) {
        spec.pruneidx_size = 50;
        spec.prune_keys = keys;
        spec.prune_vals = vals;
      }
      uint8_t *b1, *b2;
      es_model_t *auto_m = open_spec(&spec, &b1, ES_SIMD_AUTO);
      es_model_t *scal_m = open_spec(&spec, &b2, ES_SIMD_SCALAR);
      es_scratch_t *s1 = es_scratch_new(auto_m), *s2 = es_scratch_new(scal_m);
      for (size_t i = 0; i <= NTEXTS; i++) {
        const char *t = i < NTEXTS ? texts[i] : longer;
        es_prediction_t a[8], b[8];
        int32_t na, nb;
        predict_all(auto_m, s1, t, a, &na);
        predict_all(scal_m, s2, t, b, &nb);
        assert_int_equal(na, nb);
        if (memcmp(a, b, (size_t)na * sizeof *a))
          fail_msg("dim %d, qnorm %d, pruned %d: text %zu differs", dims[di], variant & 1,
                   variant >> 1, i);
      }
      es_scratch_free(s1);
      es_scratch_free(s2);
      es_model_close(auto_m);
      es_model_close(scal_m);
      free(b1);
      free(b2);
    }
  }
}

/* A known word's rows come from the table built at load when asked for
 * (all six words of the fixture fit); without it (the default) they are
 * computed per token: same answer. */
static void precomputed_word_rows_give_the_same_prediction(void **state) {
  (void)state;
  for (int quant = 0; quant <= 1; quant++) {
    ft_spec spec = ft_default_spec();
    spec.quant = quant;
    uint8_t *b1, *b2;
    word_rows_bytes = ES_MODEL_WORD_ROWS_BYTES;
    es_model_t *m1 = open_spec(&spec, &b1, ES_SIMD_AUTO);
    word_rows_bytes = 0;
    es_model_t *m2 = open_spec(&spec, &b2, ES_SIMD_AUTO);
    assert_int_equal(m1->nwrows, spec.nwords);
    assert_int_equal(m2->nwrows, 0);
    es_scratch_t *s1 = es_scratch_new(m1), *s2 = es_scratch_new(m2);
    for (size_t i = 0; i < NTEXTS; i++) {
      es_prediction_t a[8], b[8];
      int32_t na, nb;
      predict_all(m1, s1, texts[i], a, &na);
      predict_all(m2, s2, texts[i], b, &nb);
      assert_int_equal(na, nb);
      assert_memory_equal(a, b, (size_t)na * sizeof *a);
      assert_int_equal(es_line_nfeatures(s1), es_line_nfeatures(s2));
    }
    es_scratch_free(s1);
    es_scratch_free(s2);
    es_model_close(m1);
    es_model_close(m2);
    free(b1);
    free(b2);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_loss_and_format_agrees_across_kernels),
      cmocka_unit_test(streaming_byte_by_byte_equals_whole_text),
      cmocka_unit_test(long_tokens_stream_with_the_same_result),
      cmocka_unit_test(word_ngram_bound_keeps_memory_and_stays_close),
      cmocka_unit_test(bad_arguments_are_refused),
      cmocka_unit_test(threshold_filters_and_labels_are_collected),
      cmocka_unit_test(a_line_without_features_has_no_prediction),
      cmocka_unit_test(threads_share_one_model),
      cmocka_unit_test(batch_equals_one_by_one),
      cmocka_unit_test(pq_models_agree_across_kernels_at_every_dim),
      cmocka_unit_test(precomputed_word_rows_give_the_same_prediction),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
