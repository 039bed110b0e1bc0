/*
 * sgd.h - fastText's supervised training loop: lock-free ("Hogwild")
 * multi-threaded SGD over the training file with a linearly decaying
 * learning rate, and the four losses (softmax, hs, ns, ova).
 *
 * Thread i reads the file from byte i * size / nthreads on, wrapping at the
 * end, until the shared token count reaches epoch * ntokens; the learning
 * rate of each example is lr * (1 - progress). Text becomes features through
 * the engine's own tokenizer (predict.c in collect mode), so training sees
 * exactly the features prediction will.
 */
#ifndef ES_TRAIN_SGD_H
#define ES_TRAIN_SGD_H

#include <stdint.h>

#include "edgeserve/train.h"
#include "model_impl.h"

typedef struct es__sgd {
  const es_model_t *dm; /* dictionary-only model (es__model_open_dict) */
  const char *input;
  double lr;
  int32_t epoch, thread, lr_update_rate, neg, dim;
  int32_t loss; /* es_loss_t */
  int32_t seed;
  float *wi; /* input matrix, wi_rows x dim, updated in place */
  int64_t wi_rows;
  float *wo; /* output matrix, osz x dim */
  int32_t osz;
  const int64_t *label_counts; /* osz counts (hs tree, negatives) */
  int64_t ntokens;             /* tokens per epoch (the dictionary's) */
  es_train_progress_fn progress;
  void *ctx;
  int (*cancel)(void *cancel_ctx); /* es_train_args_t's; NULL: never */
  void *cancel_ctx;
} es__sgd;

/* Trains in place. Returns 0, or an ES_E* code with err filled (I/O
 * errors, out of memory, a diverged loss, or ES_ECANCELED when cancel
 * said so). */
int es__sgd_run(const es__sgd *t, es_error_t *err);

/* fastText's uniform initialisation of the input matrix: every value
 * uniform in [-bound, bound], from `seed`; deterministic. */
void es__sgd_uniform(float *x, int64_t n, float bound, uint64_t seed);

#endif
