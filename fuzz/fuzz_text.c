/*
 * fuzz_text.c - libFuzzer target: any bytes as the text to classify, through
 * the tokenizer, hashing, char n-grams over (possibly invalid) UTF-8, word
 * n-grams and top-k; and through the file-name normalizer. The model is a
 * small one built in memory (tests/unit/ftmodel.c) with char n-grams 2..4 and
 * word bigrams, so every feature path runs.
 * Seeds: fuzz/corpus/text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "edgeserve/model.h"
#include "edgeserve/normalize.h"
#include "edgeserve/predict.h"
#include "ftmodel.h"

static es_model_t *model;
static es_scratch_t *scratch;
static uint8_t *bytes;
static es_normalizer_t norm;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  static const char *const words[] = {"</s>", "la", "casa", "di", "carta", "ita", "eng"};
  static const char *const labels[] = {"__label__a", "__label__b", "__label__c"};
  ft_spec sp = ft_default_spec();
  sp.dim = 8;
  sp.bucket = 1000;
  sp.minn = 2;
  sp.maxn = 4;
  sp.word_ngrams = 2;
  sp.nwords = 7;
  sp.words = words;
  sp.nlabels = 3;
  sp.labels = labels;
  size_t len;
  bytes = ft_write(&sp, &len);
  es_error_t err;
  if (!bytes || es_model_open_mem(&model, bytes, len, NULL, &err) < 0) abort();
  scratch = es_scratch_new(model);
  if (!scratch || es_normalizer_parse(&norm, "default", &err) < 0) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  es_prediction_t top[4];
  int32_t n;
  es_predict(model, scratch, (const char *)data, size, -1, 0.0f, top, 4, &n);
  es_predict(model, scratch, (const char *)data, size, 2, 0.5f, top, 4, &n);
  char out[512];
  es_normalize(&norm, (const char *)data, size, out, sizeof out);
  return 0;
}
