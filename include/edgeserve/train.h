/*
 * train.h - training and quantizing fastText-compatible classifiers.
 *
 * es_train_supervised() is fastText 0.9.2's `supervised`: the same flags,
 * defaults and semantics (dictionary rules, n-gram features, the four losses,
 * lock-free multi-threaded SGD with a linearly decaying learning rate), and
 * it writes a .bin (and .vec) that Debian's fasttext loads and predicts from
 * exactly as edgeserve does. Differences, all deliberate:
 *  - memory is sized to the data (no fixed 30M-slot dictionary table, no
 *    10M-entry negative table);
 *  - `deterministic` (or one thread) gives a bit-identical model file for a
 *    given seed, on every x86-64 and ARM machine with the same libm;
 *  - random numbers come from edgeserve's own generator, so a model is not
 *    the one fastText would train with the same seed (it is as good).
 *
 * es_quantize() is fastText's `quantize`: -cutoff, -retrain, -qnorm, -qout,
 * -dsub, writing a .ftz.
 *
 * Both report progress through an optional callback and never call exit();
 * every failure is a negative ES_E* code with `err` filled.
 */
#ifndef EDGESERVE_TRAIN_H
#define EDGESERVE_TRAIN_H

#include <stdint.h>

#include "edgeserve/error.h"
#include "edgeserve/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* fastText's training arguments, with fastText's names. */
typedef struct es_train_args {
  const char *input;              /* training file (required) */
  const char *output;             /* output prefix: writes OUTPUT.bin/.vec (required) */
  double lr;                      /* 0.1 */
  int32_t dim;                    /* 100 */
  int32_t ws;                     /* 5 (stored; unused by supervised training) */
  int32_t epoch;                  /* 5 */
  int32_t min_count;              /* 1 */
  int32_t min_count_label;        /* 0 */
  int32_t neg;                    /* 5 */
  int32_t word_ngrams;            /* 1 */
  es_loss_t loss;                 /* softmax */
  int32_t bucket;                 /* 2000000; -1 = default: 0 when word_ngrams <= 1 and maxn 0 */
  int32_t minn, maxn;             /* 0, 0 */
  int32_t thread;                 /* 12 */
  int32_t lr_update_rate;         /* 100 */
  double t;                       /* 1e-4 (stored; unused by supervised training) */
  const char *label;              /* "__label__" */
  int32_t seed;                   /* 0 */
  int verbose;                    /* 2: progress line on a terminal */
  const char *pretrained_vectors; /* .vec text file, or a fastText .bin/.ftz */
  int save_output;                /* also write OUTPUT.output (label vectors) */
  int deterministic;              /* one thread: bit-identical output per seed */
  int write_vec;                  /* write OUTPUT.vec as fastText does (default 1) */
  const char *normalize;          /* a normalizer spec (normalize.h): training lines are
                                   * normalized (labels kept), and OUTPUT.esm is written
                                   * too, carrying the normalizer for prediction */
  /* quantize only */
  int64_t cutoff; /* 0: keep every input row */
  int retrain;    /* fine-tune after the cutoff (needs input and cutoff) */
  int qnorm, qout;
  int32_t dsub; /* 2 */
  /* Cancellation (optional): polled about 20 times a second while the model
   * trains (and fine-tunes after a cutoff); when it returns nonzero, the
   * training threads stop and es_train_supervised / es_quantize return
   * ES_ECANCELED without writing the output files. Called on the thread
   * that called es_train_*. NULL: never cancelled. */
  int (*cancel)(void *cancel_ctx);
  void *cancel_ctx;
} es_train_args_t;

/* fastText's defaults for `supervised`. (fastText's `quantize` parses its
 * retraining flags with lr 0.05 and epoch 5: callers of es_quantize set
 * those themselves, as the CLI does.) */
es_train_args_t es_train_default_args(void);

/* Progress of training: called from the first training thread about 20
 * times a second, and once with progress 1.0 at the end. */
typedef struct es_train_progress {
  double progress;      /* 0..1 */
  double words_per_sec; /* per thread */
  double lr;
  double loss; /* average loss of the first thread's recent examples */
  double eta_sec;
} es_train_progress_t;
typedef void (*es_train_progress_fn)(const es_train_progress_t *p, void *ctx);

/* Trains a supervised model from args->input and writes args->output +
 * ".bin" (and ".vec", and ".output" with save_output). Arguments are
 * checked, and the input is read once for the dictionary, before any
 * training: a missing file, an empty vocabulary, no labels, or impossible
 * flags fail fast. Returns 0 or a negative ES_E* code. */
int es_train_supervised(const es_train_args_t *args, es_train_progress_fn progress, void *ctx,
                        es_error_t *err);

/* Quantizes args->output + ".bin" into args->output + ".ftz" (fastText's
 * `quantize`). args->input is the training file, needed for retrain. */
int es_quantize(const es_train_args_t *args, es_train_progress_fn progress, void *ctx,
                es_error_t *err);

/* Storage of the input matrix in a converted model. */
typedef enum {
  ES_SCHEME_KEEP = 0, /* as in the source */
  ES_SCHEME_F32,      /* dense floats (decodes quantized sources) */
  ES_SCHEME_INT8,     /* per-row scale + int8 values (native .esm only) */
  ES_SCHEME_INT4      /* per-row scale + int4 values (native .esm only) */
} es_scheme_t;

typedef struct es_convert_args {
  es_scheme_t scheme;
  const char *normalizer; /* stored in the native metadata (NULL: keep the source's) */
  const char *source;     /* recorded as "source" in new native metadata (may be NULL) */
} es_convert_args_t;

/* Writes the model at `in` (.bin, .ftz or .esm) to `out`, whose extension
 * picks the format: .esm (edgeserve native: any scheme, metadata), .bin
 * (f32 input and output only) or .ftz (product-quantized input). What a
 * format cannot hold is refused with ES_EUNSUPPORTED and a message, never
 * silently dropped, except the metadata, which fastText files cannot carry.
 * Writes go to OUT.tmp, renamed over OUT on success. `a` may be NULL. */
int es_convert(const char *in, const char *out, const es_convert_args_t *a, es_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
