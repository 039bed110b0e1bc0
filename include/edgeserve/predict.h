/*
 * predict.h - fastText-exact prediction over a memory-mapped model.
 *
 * Every prediction runs in an es_scratch_t: the per-thread working memory
 * (hidden vector, label scores, top-k heap, token buffer) sized for one model
 * when it is made. With a scratch per thread, prediction is thread-safe and
 * allocates nothing on the hot path (a line of more than 4096 words in a
 * word-n-gram model grows one array once, up to a bound).
 *
 * Semantics are fastText 0.9.2's, bit for bit: the same tokens, hashes,
 * features, float operations in the same order, the same top-k heap (so ties
 * come out in the same order), and probabilities reported as
 * exp(log(p + 1e-5)) as fastText prints them.
 *
 *   es_model_t *m; es_model_open(&m, "model.bin", NULL, NULL);
 *   es_scratch_t *s = es_scratch_new(m);
 *   es_prediction_t top[3]; int32_t n;
 *   es_predict(m, s, "some text", 9, 3, 0.0f, top, 3, &n);
 *   // top[0..n-1].label, es_model_label(m, top[i].label, &len), top[i].prob
 *   es_scratch_free(s); es_model_close(m);
 */
#ifndef EDGESERVE_PREDICT_H
#define EDGESERVE_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_scratch es_scratch_t;

typedef struct es_prediction {
  int32_t label; /* label id, 0 <= label < nlabels */
  float prob;    /* exp(logp): p + 1e-5 as fastText reports it (may exceed 1) */
  float logp;    /* log(p + 1e-5), the value fastText ranks by */
} es_prediction_t;

/* Limits of a scratch; see es_scratch_new_ex(). */
typedef struct es_scratch_params {
  /* Most word hashes kept for one line in a word-n-gram model (4 bytes
   * each). Lines longer than this are still predicted, with bounded memory:
   * the word n-grams beyond the limit are summed in a separate accumulator,
   * which may change the last bits of the result. Default 1,048,576. */
  int64_t max_line_words;
  /* Bytes buffered for one token (default 4096; never less than the longest
   * dictionary entry plus a char n-gram window). Longer tokens cannot be in
   * the dictionary and are streamed through the buffer with the same result. */
  size_t token_bytes;
} es_scratch_params_t;

es_scratch_params_t es_scratch_default_params(void);

/* Makes a scratch for model `m`. Returns NULL when out of memory. The
 * scratch must be freed with es_scratch_free() before `m` is closed, and be
 * used by one thread at a time. */
es_scratch_t *es_scratch_new(const es_model_t *m);
es_scratch_t *es_scratch_new_ex(const es_model_t *m, const es_scratch_params_t *p);
void es_scratch_free(es_scratch_t *s);

/* Number of predictions es_predict() can return for k: nlabels when k == -1,
 * else min(k, nlabels). Returns -1 when k is 0 or below -1. */
int32_t es_predict_count(const es_model_t *m, int32_t k);

/* Predicts the top `k` labels (k = -1: all) with probability >= threshold
 * for one line of text (`len` bytes, need not be NUL-terminated), as
 * fastText's predict does for that line followed by a newline. Writes up to
 * `cap` predictions, best first, to out[] and their number to *n.
 * Returns 0; ES_EINVAL when k is invalid or cap < es_predict_count(m, k);
 * ES_EMULTILINE when the text has a newline other than as its last byte. */
int es_predict(const es_model_t *m, es_scratch_t *s, const char *text, size_t len, int32_t k,
               float threshold, es_prediction_t *out, int32_t cap, int32_t *n);

/* Batch form: texts[i] of lens[i] bytes for i < count; the predictions of
 * text i go to out[i * cap ...], their number to n[i]. Returns 0 or the
 * first error (then n[] is filled up to the failing text). */
int es_predict_batch(const es_model_t *m, es_scratch_t *s, const char *const *texts,
                     const size_t *lens, size_t count, int32_t k, float threshold,
                     es_prediction_t *out, int32_t cap, int32_t *n);

/*
 * Streaming form, for files and pipes: lines of any length with bounded
 * memory, and fastText's end-of-file rule (a last line without a newline
 * gets no end-of-sentence token).
 *
 *   es_line_begin(s);
 *   while (!done && more input) used = es_line_feed(m, s, buf, len, &done);
 *   es_line_predict(m, s, k, threshold, out, cap, &n);
 */
void es_line_begin(es_scratch_t *s);

/* Consumes bytes of the current line, up to and including its newline.
 * Returns how many bytes of buf were consumed; sets *done to 1 when the
 * newline was consumed (the rest of buf belongs to the next line). */
size_t es_line_feed(const es_model_t *m, es_scratch_t *s, const char *buf, size_t len, int *done);

/* Ends the current line: adds its word n-grams and fixes its features.
 * Called by es_line_predict() when the caller has not; evaluation calls it
 * first to look at the line's labels. */
void es_line_end(const es_model_t *m, es_scratch_t *s);

/* Ends the current line and predicts it; same results as es_predict(). A
 * line with no feature at all gets no prediction (*n = 0), as in fastText. */
int es_line_predict(const es_model_t *m, es_scratch_t *s, int32_t k, float threshold,
                    es_prediction_t *out, int32_t cap, int32_t *n);

/* After es_line_end(): the known labels the line carried (its gold
 * labels, for evaluation), and its number of features. */
const int32_t *es_line_labels(const es_scratch_t *s, int32_t *count);
int64_t es_line_nfeatures(const es_scratch_t *s);

#ifdef __cplusplus
}
#endif
#endif
