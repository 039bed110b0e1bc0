/* test_estimate.c - model and text memory estimates, checked against a real
 * model's measured memory, and the /estimate-memory answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "edgeserve/estimate.h"
#include "edgeserve/predict.h"
#include "ftmodel.h"

#define KiB 1024ull
#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)

/* ASan puts shadow memory, redzones and a quarantine of freed blocks in
 * RssAnon: the comparison with reality then gets a wider tolerance. TSan and
 * MSan shadow every byte several times over: there it is skipped. */
#if defined(__SANITIZE_ADDRESS__)
#define ES_ASAN 1
#elif defined(__SANITIZE_THREAD__)
#define ES_NO_RSS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ES_ASAN 1
#elif __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define ES_NO_RSS 1
#endif
#endif

/* RssAnon of this process in bytes, read directly (not through memstat). */
static uint64_t rss_anon(void) {
  FILE *f = fopen("/proc/self/status", "r");
  assert_non_null(f);
  char line[256];
  unsigned long long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "RssAnon: %llu kB", &kb) == 1) break;
  fclose(f);
  return kb * 1024;
}

/* A model with a big dictionary and many labels, written to a file. */
typedef struct {
  char **words, **labels;
  char *path;
  size_t len;
} big_model_t;

static void big_model_make(big_model_t *bm, int32_t nwords, int32_t nlabels) {
  bm->words = malloc((size_t)nwords * sizeof *bm->words);
  bm->labels = malloc((size_t)nlabels * sizeof *bm->labels);
  for (int32_t i = 0; i < nwords; i++) {
    bm->words[i] = malloc(16);
    snprintf(bm->words[i], 16, i ? "w%d" : "</s>", (int)i);
  }
  for (int32_t i = 0; i < nlabels; i++) {
    bm->labels[i] = malloc(24);
    snprintf(bm->labels[i], 24, "__label__l%d", (int)i);
  }
  ft_spec spec = ft_default_spec();
  spec.dim = 16;
  spec.bucket = 20000;
  spec.nwords = nwords;
  spec.nlabels = nlabels;
  spec.words = (const char *const *)bm->words;
  spec.labels = (const char *const *)bm->labels;
  uint8_t *buf = ft_write(&spec, &bm->len);
  bm->path = ft_tmpfile(buf, bm->len);
  assert_non_null(bm->path);
  free(buf);
}

static void big_model_free(big_model_t *bm, int32_t nwords, int32_t nlabels) {
  unlink(bm->path);
  free(bm->path);
  for (int32_t i = 0; i < nwords; i++) free(bm->words[i]);
  for (int32_t i = 0; i < nlabels; i++) free(bm->labels[i]);
  free(bm->words);
  free(bm->labels);
}

/* ---- the estimate against reality ---------------------------------------------- */

/* Opens a model with a 200,000-word dictionary and 2,000 labels, makes 4
 * scratches and the batch buffers the estimate assumes (8 lines of 4 KiB,
 * every label predicted), predicts, and compares the growth of RssAnon with
 * the estimate's anonymous part.
 * Tolerance: 512 KiB (allocator block headers and its 128 KiB heap-top
 * padding, and the kernel's RSS counters, which may lag by 64 pages per
 * thread), 4 MiB + 50% under ASan (shadow memory, redzones). */
static void model_estimate_covers_the_measured_anonymous_growth(void **state) {
  (void)state;
#ifdef ES_NO_RSS
  print_message("    skipped: RssAnon is dominated by the sanitizer's shadow memory\n");
  skip();
#endif
  const int32_t nwords = 200000, nlabels = 2000;
  const int nthreads = 4, batch = 8;
  big_model_t bm;
  big_model_make(&bm, nwords, nlabels);
  es_model_estimate_t est;
  es_error_t err = {0};
  assert_int_equal(es_estimate_model_file(bm.path, nthreads, batch, &est, &err), 0);
  assert_int_equal(est.mapped_bytes, bm.len);

  /* the batch inputs: lines of ES_ESTIMATE_LINE_BYTES bytes of words */
  uint64_t before = rss_anon();
  es_model_t *m;
  assert_int_equal(es_model_open(&m, bm.path, NULL, &err), 0);
  es_scratch_t *s[4];
  for (int t = 0; t < nthreads; t++) assert_non_null(s[t] = es_scratch_new(m));
  char *texts[4][8];
  size_t lens[8];
  es_prediction_t *out[4];
  int32_t n[4][8];
  for (int t = 0; t < nthreads; t++) {
    out[t] = malloc((size_t)batch * (size_t)nlabels * sizeof(es_prediction_t));
    for (int i = 0; i < batch; i++) {
      texts[t][i] = malloc(ES_ESTIMATE_LINE_BYTES);
      size_t len = 0;
      for (int w = 0; len + 16 < ES_ESTIMATE_LINE_BYTES; w++)
        len +=
            (size_t)snprintf(texts[t][i] + len, 16, "w%d ", (t * 7919 + i * 104729 + w) % nwords);
      lens[i] = len;
    }
  }
  for (int t = 0; t < nthreads; t++)
    assert_int_equal(es_predict_batch(m, s[t], (const char *const *)texts[t], lens, (size_t)batch,
                                      -1, 0.0f, out[t], nlabels, n[t]),
                     0);
  uint64_t after = rss_anon();
  uint64_t grown = after > before ? after - before : 0;
  assert_int_equal(n[0][0], nlabels);

#ifdef ES_ASAN
  uint64_t tolerance = 4 * MiB + est.anon_bytes / 2;
#else
  uint64_t tolerance = 512 * KiB;
#endif
  print_message("    anon estimate %.2f MiB (private %.2f, scratch %.2f, batch %.2f), measured "
                "RssAnon growth %.2f MiB, tolerance %.2f MiB\n",
                (double)est.anon_bytes / MiB, (double)est.private_bytes / MiB,
                (double)est.scratch_bytes / MiB, (double)est.batch_bytes / MiB, (double)grown / MiB,
                (double)tolerance / MiB);
  assert_true(grown <= est.anon_bytes + tolerance);
  /* and the estimate is not inflated: most of it is really touched */
  assert_true(grown >= est.anon_bytes / 2);

  for (int t = 0; t < nthreads; t++) {
    for (int i = 0; i < batch; i++) free(texts[t][i]);
    free(out[t]);
    es_scratch_free(s[t]);
  }
  es_model_close(m);
  big_model_free(&bm, nwords, nlabels);
}

/* ---- model estimates -------------------------------------------------------------- */

static es_model_info_t synthetic_info(void) {
  es_model_info_t info;
  memset(&info, 0, sizeof info);
  info.nlabels = 100;
  info.args.word_ngrams = 1;
  info.file_bytes = 50 * MiB;
  info.private_bytes = 3 * MiB;
  info.scratch_bytes = 40 * KiB;
  info.input_rows = 400000;
  info.input_cols = 30; /* 400000 x 30 floats = 45.8 MiB of the file */
  return info;
}

static void model_estimate_is_itemised_from_the_info(void **state) {
  (void)state;
  es_model_info_t info = synthetic_info();
  es_model_estimate_t e;
  assert_int_equal(es_estimate_model_info(&info, 4, 20, &e), 0);
  assert_int_equal(e.nthreads, 4);
  assert_int_equal(e.batch, 20);
  assert_int_equal(e.mapped_bytes, 50 * MiB);
  assert_int_equal(e.private_bytes, 3 * MiB);
  assert_int_equal(e.scratch_bytes, 160 * KiB);
  uint64_t item =
      ES_ESTIMATE_LINE_BYTES + 100 * sizeof(es_prediction_t) + sizeof(char *) + sizeof(size_t) + 4;
  assert_int_equal(e.batch_bytes, 4 * 20 * item);
  assert_int_equal(e.anon_bytes, 3 * MiB + 160 * KiB + 80 * item);
  assert_int_equal(e.total_bytes, e.mapped_bytes + e.anon_bytes);
  assert_int_equal(e.long_line_bytes, 0); /* no word n-grams */
  /* int8: the 4-byte floats become a byte (+ a 4-byte scale per row) */
  uint64_t floats = 400000ull * 30 * 4;
  uint64_t i8 = (64 + 4 * 400000ull + 63) / 64 * 64 + 400000ull * 30;
  assert_int_equal(e.int8_total, 50 * MiB - floats + i8 + e.anon_bytes);
  assert_true(e.int4_total < e.int8_total && e.int8_total < e.total_bytes);
  /* word n-grams: each scratch's hash buffer may grow on very long lines */
  info.args.word_ngrams = 2;
  info.args.bucket = 1000;
  info.pruneidx_size = -1;
  assert_int_equal(es_estimate_model_info(&info, 2, 1, &e), 0);
  assert_int_equal(e.long_line_bytes, 2 * ((1u << 20) - 4096) * 4ull);
  /* already quantized: no smaller variant to suggest */
  info.quant_input = 1;
  assert_int_equal(es_estimate_model_info(&info, 2, 1, &e), 0);
  assert_int_equal(e.int8_total, 0);
}

static void model_estimate_rejects_zero_threads_or_batch(void **state) {
  (void)state;
  es_model_info_t info = synthetic_info();
  es_model_estimate_t e;
  assert_int_equal(es_estimate_model_info(&info, 0, 1, &e), ES_EINVAL);
  assert_int_equal(es_estimate_model_info(&info, 1, 0, &e), ES_EINVAL);
  assert_int_equal(e.total_bytes, 0);
  es_error_t err = {0};
  assert_int_equal(es_estimate_model_file("/nonexistent", 0, 1, &e, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "nthreads"));
}

static void model_file_estimate_uses_the_models_own_figures(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  size_t len;
  uint8_t *buf = ft_write(&spec, &len);
  char *path = ft_tmpfile(buf, len);
  es_model_t *m;
  es_model_params_t mp = es_model_default_params(); /* as the server loads it */
  mp.word_rows_bytes = ES_MODEL_WORD_ROWS_BYTES;
  assert_int_equal(es_model_open_mem(&m, buf, len, &mp, NULL), 0);
  es_model_info_t info;
  es_model_info(m, &info);
  es_model_close(m);
  assert_int_equal(es_model_open_mem(&m, buf, len, NULL, NULL), 0);
  es_model_info_t plain;
  es_model_info(m, &plain);
  es_model_close(m);
  assert_true(info.private_bytes > plain.private_bytes); /* the word rows */
  es_model_estimate_t e;
  assert_int_equal(es_estimate_model_file(path, 2, 3, &e, NULL), 0);
  assert_int_equal(e.mapped_bytes, len);
  assert_int_equal(e.private_bytes, info.private_bytes);
  assert_int_equal(e.scratch_bytes, 2 * info.scratch_bytes);
  assert_true(e.long_line_bytes > 0); /* the default spec has word bigrams */
  unlink(path);
  free(path);
  free(buf);
}

static void model_file_estimate_reports_open_errors(void **state) {
  (void)state;
  es_model_estimate_t e;
  es_error_t err = {0};
  assert_int_equal(es_estimate_model_file("/nonexistent/model.bin", 1, 1, &e, &err), ES_EIO);
  assert_int_equal(err.code, ES_EIO);
  assert_int_equal(e.total_bytes, 0);
}

/* ---- text estimates --------------------------------------------------------------- */

static const es_text_cost_t users_i5 = {"int8", 8, 2500 * MiB, 2000 * MiB, 60 * MiB, 250 * MiB};

static void text_estimate_is_base_plus_tokens_plus_cache(void **state) {
  (void)state;
  /* the users' example: 2500 MB + 60 MB per 100 tokens + 250 MB */
  assert_int_equal(es_estimate_text(&users_i5, 1000), (2500 + 600 + 250) * MiB);
  assert_int_equal(es_estimate_text(&users_i5, 150), (2500 + 90 + 250) * MiB);
  assert_int_equal(es_estimate_text(&users_i5, 0), 2750 * MiB);
  assert_int_equal(es_estimate_text(&users_i5, -5), 2750 * MiB);
  es_text_cost_t odd = {"int8", 8, 0, 0, 61, 0}; /* rounds up */
  assert_int_equal(es_estimate_text(&odd, 1), 1);
  assert_int_equal(es_estimate_text(&odd, 100), 61);
  assert_int_equal(es_estimate_text(&odd, 101), 62);
  es_text_cost_t huge = {"f32", 32, UINT64_MAX / 2, 0, UINT64_MAX / 4, UINT64_MAX / 2};
  assert_int_equal(es_estimate_text(&huge, INT64_MAX), UINT64_MAX); /* saturates */
}

static void text_max_tokens_inverts_the_per_token_part(void **state) {
  (void)state;
  assert_int_equal(es_text_max_tokens(&users_i5, 600 * MiB), 1000);
  es_text_cost_t odd = {"int8", 8, 7, 0, 61, 3};
  for (uint64_t bytes = 0; bytes < 5000; bytes += 7) {
    int64_t t = es_text_max_tokens(&odd, bytes);
    assert_true(es_estimate_text(&odd, t) - 10 <= bytes);
    assert_true(es_estimate_text(&odd, t + 1) - 10 > bytes);
  }
  es_text_cost_t free_tokens = {"int8", 8, 1, 0, 0, 0};
  assert_int_equal(es_text_max_tokens(&free_tokens, 10), INT64_MAX);
}

static void text_costs_per_tier_follow_the_documented_rules(void **state) {
  (void)state;
  es_budget_tier_t t16 = es_budget_tier_for(16 * GiB);
  es_text_cost_t c = es_text_cost_for_tier(&t16);
  assert_string_equal(c.variant, "int8");
  assert_int_equal(c.base, 2500 * MiB);
  assert_int_equal(c.per_100_tokens, 60 * MiB);
  assert_int_equal(c.cache, 250 * MiB);
  es_budget_tier_t t8 = es_budget_tier_for(8 * GiB); /* 4.5 GiB process budget: int4 */
  c = es_text_cost_for_tier(&t8);
  assert_string_equal(c.variant, "int4");
  assert_int_equal(c.bits, 4);
  assert_int_equal(c.base, 1500 * MiB);
  assert_int_equal(c.weights, 1000 * MiB);
  assert_int_equal(c.per_100_tokens, 60 * MiB);
  assert_int_equal(c.cache, 250 * MiB);
  es_budget_tier_t t1 = es_budget_tier_for(1 * GiB);
  c = es_text_cost_for_tier(&t1);
  assert_int_equal(c.cache, 8 * MiB); /* a quarter of the 32 MiB cache budget */
  es_text_cost_t c16 = es_text_cost_at_bits(&users_i5, 16);
  assert_string_equal(c16.variant, "f16");
  assert_int_equal(c16.base, 4500 * MiB);
  es_text_cost_t same = es_text_cost_at_bits(&users_i5, 3);
  assert_int_equal(same.base, users_i5.base);
}

/* ---- /estimate-memory ------------------------------------------------------------------ */

static es_budget_t *budget_with(uint64_t budget, uint64_t model_limit) {
  es_budget_params_t p = es_budget_default_params();
  p.budget = budget;
  p.limit[ES_BUDGET_MODEL] = model_limit;
  es_budget_t *b = es_budget_new(&p, NULL);
  assert_non_null(b);
  return b;
}

static char *write_default_model(size_t *len, int nwords_extra) {
  ft_spec spec = ft_default_spec();
  spec.bucket = 100 + nwords_extra;
  uint8_t *buf = ft_write(&spec, len);
  char *path = ft_tmpfile(buf, *len);
  free(buf);
  return path;
}

static void request_for_a_small_model_is_safe(void **state) {
  (void)state;
  es_budget_params_t p = es_budget_default_params();
  p.tier = es_budget_tier_for(1 * GiB);
  es_budget_t *b = es_budget_new(&p, NULL);
  size_t len;
  char *path = write_default_model(&len, 0);
  es_estimate_query_t q = es_estimate_default_query();
  q.model_path = path;
  q.nthreads = 2;
  q.batch = 20;
  es_estimate_answer_t a;
  assert_int_equal(es_estimate_request(b, &q, &a, NULL), 0);
  assert_true(a.safe);
  assert_string_equal(a.recommendation, "safe");
  assert_int_equal(a.estimated, a.model.total_bytes);
  assert_int_equal(a.needed, a.estimated);
  assert_int_equal(a.available, 320 * MiB);
  assert_int_equal(a.model.nthreads, 2);
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_int_equal(st.reserved_total, 0); /* nothing was reserved */
  unlink(path);
  free(path);
  es_budget_free(b);
}

static void request_recommends_closing_the_other_model(void **state) {
  (void)state;
  size_t len;
  char *path = write_default_model(&len, 0);
  es_model_estimate_t e;
  assert_int_equal(es_estimate_model_file(path, 1, 1, &e, NULL), 0);
  es_budget_t *b = budget_with(100 * MiB, e.total_bytes + 1000);
  es_budget_res_t other = {0};
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_MODEL, 5000, "other.bin", &other, NULL), 0);
  es_estimate_query_t q = es_estimate_default_query();
  q.model_path = path;
  q.what = "media.bin";
  es_estimate_answer_t a;
  assert_int_equal(es_estimate_request(b, &q, &a, NULL), 0);
  assert_false(a.safe);
  assert_int_equal(a.why.by, ES_BUDGET_BY_KIND);
  assert_int_equal(a.available, e.total_bytes + 1000 - 5000);
  assert_non_null(strstr(a.why.reason, "model 'media.bin' needs"));
  assert_string_equal(a.recommendation, "close the other model first (4.9 KiB held by 1 model)");
  es_budget_release(b, &other);
  unlink(path);
  free(path);
  es_budget_free(b);
}

static void request_recommends_the_int8_variant_of_a_float_model(void **state) {
  (void)state;
  size_t len;
  char *path = write_default_model(&len, 100000); /* 100,100 x 8 floats: 3.1 MiB */
  es_model_estimate_t e;
  assert_int_equal(es_estimate_model_file(path, 1, 1, &e, NULL), 0);
  assert_true(e.int8_total < e.total_bytes / 2);
  es_budget_t *b = budget_with(100 * MiB, e.int8_total + 1000);
  es_estimate_query_t q = es_estimate_default_query();
  q.model_path = path;
  es_estimate_answer_t a;
  assert_int_equal(es_estimate_request(b, &q, &a, NULL), 0);
  assert_false(a.safe);
  assert_non_null(strstr(a.recommendation, "use the int8 variant (edgeserve convert"));
  es_budget_free(b);
  /* room for neither variant: say which budget is too small */
  b = budget_with(100 * MiB, e.int4_total / 2);
  assert_int_equal(es_estimate_request(b, &q, &a, NULL), 0);
  assert_false(a.safe);
  assert_non_null(strstr(a.recommendation, "too large for this machine's model budget"));
  es_budget_free(b);
  unlink(path);
  free(path);
}

static void text_request_counts_tokens_from_bytes_and_splits_long_texts(void **state) {
  (void)state;
  es_budget_t *b = budget_with(4 * GiB, 0);
  es_estimate_query_t q = es_estimate_default_query();
  q.text = &users_i5;
  q.text_bytes = 4000; /* about 1000 tokens */
  es_estimate_answer_t a;
  assert_int_equal(es_estimate_request(b, &q, &a, NULL), 0);
  assert_int_equal(a.tokens, 1000);
  assert_int_equal(a.text_bytes, 4000);
  assert_int_equal(a.estimated, 3350 * MiB);
  assert_true(a.safe);
  /* 4096 - 2750 leaves room for 2243 tokens */
  q.tokens = 3000;
  assert_int_equal(es_estimate_request(b, &q, &a, NULL), 0);
  assert_false(a.safe);
  assert_int_equal(a.why.by, ES_BUDGET_BY_TOTAL);
  assert_string_equal(a.recommendation, "split the text into parts of at most 2243 tokens");
  /* with the model loaded, only the per-token part is needed */
  q.loaded = 1;
  q.tokens = 1000;
  assert_int_equal(es_estimate_request(b, &q, &a, NULL), 0);
  assert_int_equal(a.estimated, 3350 * MiB);
  assert_int_equal(a.needed, 600 * MiB);
  assert_true(a.safe);
  es_budget_free(b);
}

static void text_request_recommends_int4_when_int8_does_not_fit(void **state) {
  (void)state;
  es_budget_t *b = budget_with(4 * GiB, 2 * GiB); /* the int8 base of 2500 MiB does not fit */
  es_estimate_query_t q = es_estimate_default_query();
  q.text = &users_i5;
  q.tokens = 500;
  es_estimate_answer_t a;
  assert_int_equal(es_estimate_request(b, &q, &a, NULL), 0);
  assert_false(a.safe);
  assert_int_equal(a.why.by, ES_BUDGET_BY_KIND);
  assert_int_equal(a.why.kind, ES_BUDGET_MODEL);
  assert_string_equal(a.recommendation, "use the int4 variant: about 2.00 GiB");
  es_budget_free(b);
}

static void query_needs_exactly_one_subject(void **state) {
  (void)state;
  es_budget_t *b = budget_with(1 * GiB, 0);
  es_estimate_query_t q = es_estimate_default_query();
  es_estimate_answer_t a;
  es_error_t err = {0};
  assert_int_equal(es_estimate_request(b, &q, &a, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "model path or a text cost"));
  q.model_path = "x.bin";
  q.text = &users_i5;
  assert_int_equal(es_estimate_request(b, &q, &a, &err), ES_EINVAL);
  q.text = NULL;
  q.model_path = "/nonexistent/x.bin";
  assert_int_equal(es_estimate_request(b, &q, &a, &err), ES_EIO);
  es_budget_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      /* first: the measurement is cleanest in a fresh heap */
      cmocka_unit_test(model_estimate_covers_the_measured_anonymous_growth),
      cmocka_unit_test(model_estimate_is_itemised_from_the_info),
      cmocka_unit_test(model_estimate_rejects_zero_threads_or_batch),
      cmocka_unit_test(model_file_estimate_uses_the_models_own_figures),
      cmocka_unit_test(model_file_estimate_reports_open_errors),
      cmocka_unit_test(text_estimate_is_base_plus_tokens_plus_cache),
      cmocka_unit_test(text_max_tokens_inverts_the_per_token_part),
      cmocka_unit_test(text_costs_per_tier_follow_the_documented_rules),
      cmocka_unit_test(request_for_a_small_model_is_safe),
      cmocka_unit_test(request_recommends_closing_the_other_model),
      cmocka_unit_test(request_recommends_the_int8_variant_of_a_float_model),
      cmocka_unit_test(text_request_counts_tokens_from_bytes_and_splits_long_texts),
      cmocka_unit_test(text_request_recommends_int4_when_int8_does_not_fit),
      cmocka_unit_test(query_needs_exactly_one_subject),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
