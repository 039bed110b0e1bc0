/*
 * autotune.h - searching training hyperparameters under a hardware budget.
 *
 * es_autotune() is fastText's `-autotune-validation` search with the budget
 * widened from "model file size" to "model file size and prediction
 * latency": it trains trial models (es_train_supervised), quantizes them
 * when a size limit is set (es_quantize), scores each on a validation file
 * with edgeserve's own prediction, times single-text es_predict() calls on
 * one thread, and keeps the best model that fits the budget.
 *
 *   es_autotune_args_t a = es_autotune_default_args();
 *   a.train.input = "train.txt";
 *   a.train.output = "model";           // writes model.bin, or model.ftz
 *   a.validation = "valid.txt";
 *   a.max_size = 300 * 1024;            // bytes; 0: no limit
 *   a.max_p99_us = 20;                  // microseconds; 0: no limit
 *   a.duration = 60;                    // seconds of search
 *   es_autotune_result_t r;
 *   es_error_t err;
 *   int rc = es_autotune(&a, &r, NULL, NULL, &err);
 *   // rc 0: r.best is in model.bin (model.ftz when r.best.quantized)
 *   // rc ES_ERANGE: nothing fit; r.best is the closest trial, no file written
 *
 * The search (fastText's strategy): trial 1 trains the starting values
 * (a.train); every later trial perturbs the best trial so far with
 * Gaussian noise, wide during the first quarter of the time (a random
 * search) and narrowing to a local refinement by three quarters. Searched:
 * epoch, lr, dim, wordNgrams, minn/maxn, bucket; dsub when quantizing;
 * under a latency limit also the loss (softmax or hs) and -qout.
 * Parameters named in a.fixed keep a.train's values. Until some trial fits,
 * the search centres on the trial closest to the budget.
 *
 * With a size limit every trial is quantized as fastText's autotune does:
 * -qnorm, -retrain; -qout (256 labels or more) where it makes the file
 * smaller, or searched under a latency limit (smaller, but slower); -cutoff chosen
 * so the .ftz fits (computed exactly from the trained rows, then checked
 * against the real file). The result is then always a .ftz.
 *
 * Measures, per trial: the metric on the validation file, counted as
 * `edgeserve test` counts (a line with no label the model knows, or no
 * feature, does not count), k = 1, threshold 0; latency p50/p99 over
 * single-text es_predict() calls on the validation texts (labels removed),
 * one thread, CLOCK_MONOTONIC, after a warm-up pass; the model file's size.
 *
 * Files: trials train into temporary prefixes beside a.train.output
 * (OUTPUT.autotune-PID.*), all removed before es_autotune() returns; the only
 * file left is the result. Nothing is printed; never exits.
 */
#ifndef EDGESERVE_AUTOTUNE_H
#define EDGESERVE_AUTOTUNE_H

#include <signal.h>
#include <stdint.h>

#include "edgeserve/error.h"
#include "edgeserve/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parameters the search may change; set a bit in es_autotune_args_t.fixed
 * to keep the value given in its `train`. */
enum {
  ES_AUTOTUNE_EPOCH = 1 << 0,
  ES_AUTOTUNE_LR = 1 << 1,
  ES_AUTOTUNE_DIM = 1 << 2,
  ES_AUTOTUNE_WORD_NGRAMS = 1 << 3,
  ES_AUTOTUNE_MINN = 1 << 4,
  ES_AUTOTUNE_MAXN = 1 << 5,
  ES_AUTOTUNE_BUCKET = 1 << 6,
  ES_AUTOTUNE_LOSS = 1 << 7,
  ES_AUTOTUNE_DSUB = 1 << 8,
};

/* What a trial is scored by (higher is better). */
typedef enum {
  ES_AUTOTUNE_P1 = 0, /* precision at 1, as `edgeserve test` prints it */
  ES_AUTOTUNE_F1 = 1, /* micro-averaged F1 at k = 1 (fastText's autotune default) */
} es_autotune_metric_t;

typedef struct es_autotune_args {
  /* input, output (the result's prefix), thread, seed, label, minCount,
   * neg, pretrained_vectors...: used as given; normalize must be NULL.
   * epoch, lr, dim, wordNgrams, minn, maxn, bucket, loss, dsub: the
   * starting point, or the value when fixed. verbose, write_vec,
   * save_output and the quantize fields are ignored (the search sets them).
   * Default: es_train_default_args() with thread = online CPUs (at most 12). */
  es_train_args_t train;
  unsigned fixed;              /* ES_AUTOTUNE_* bits; 0 by default */
  const char *validation;      /* labelled validation file (required) */
  uint64_t max_size;           /* bytes of the model file; 0: no limit (default) */
  double max_p99_us;           /* p99 latency of one es_predict(); 0: no limit (default) */
  double duration;             /* seconds of search, > 0 (default 300); the running trial
                                  finishes, and no trial is started that is estimated
                                  to end far past it */
  es_autotune_metric_t metric; /* default ES_AUTOTUNE_P1 */
  uint64_t max_matrix_bytes;   /* a trial's dense input matrix is kept under this
                                  (dim shrunk, then bucket); default a quarter
                                  of physical memory, at most 1 GiB */
  volatile sig_atomic_t *stop; /* may be NULL. Polled between the steps of a trial:
                                  once nonzero the search ends as at the deadline
                                  (the trial in progress is dropped) */
} es_autotune_args_t;

/* Default arguments: see the fields. */
es_autotune_args_t es_autotune_default_args(void);

/* How a trial ended. */
typedef enum {
  ES_TRIAL_FIT = 0,  /* measured and within the budget */
  ES_TRIAL_TOO_BIG,  /* the file is over max_size, or no cutoff (>= 256 rows) fits it */
  ES_TRIAL_TOO_SLOW, /* measured p99 over max_p99_us */
  ES_TRIAL_FAILED,   /* training diverged or ran out of memory: skipped */
} es_trial_status_t;

typedef struct es_autotune_trial {
  int32_t index;        /* 1, 2, ...; 0 in a result when no trial finished */
  es_train_args_t args; /* as trained; when quantized, cutoff/qnorm/qout/retrain/
                           dsub as quantized (retrain with args.lr, args.epoch).
                           Its strings belong to the es_autotune_args_t; in a
                           callback args.output is the trial's temporary prefix,
                           in a result the final one */
  int quantized;        /* the model is a .ftz */
  es_trial_status_t status;
  double metric;         /* NAN when not measured */
  int64_t nexamples;     /* validation lines that counted */
  uint64_t size;         /* bytes of the model file; when TOO_BIG without a file,
                            the smallest .ftz it could have made */
  double p50_us, p99_us; /* NAN when not measured */
  double seconds;        /* wall time of the trial */
  char note[256];        /* why, when FAILED or TOO_BIG without a file */
} es_autotune_trial_t;

/* Called after each finished trial, from the thread running es_autotune();
 * is_best: it is the new best (it fits and beats every earlier fit). */
typedef void (*es_autotune_trial_fn)(const es_autotune_trial_t *t, int is_best, void *ctx);

typedef struct es_autotune_result {
  es_autotune_trial_t best; /* rc 0: the best fit; ES_ERANGE: the closest trial */
  int32_t trials;           /* trials finished */
  int32_t fitted;           /* of which within the budget */
  int32_t too_big, too_slow, failed;
  double seconds; /* wall time of the whole search */
} es_autotune_result_t;

/* Runs the search described at the top of this file. Everything that can
 * be checked is checked before the first trial: the arguments (as
 * es_train_supervised checks them, plus duration > 0, limits >= 0, -dim
 * given with pretrained vectors), TRAIN and VALID readable, VALID holding at
 * least one line with a label TRAIN has, OUTPUT writable, max_size not below
 * the smallest .ftz this data can make.
 *
 * Returns 0 with *res filled and the best model written to
 * a->train.output + ".bin" (".ftz" when res->best.quantized), replacing
 * any file of that name. Returns ES_ERANGE when no trial fit the budget
 * (max_size below the smallest .ftz: before any trial), or none finished
 * before the deadline or *stop: *res tells the closest trial (index 0 if
 * none) and how many failed each constraint, err says which constraint
 * failed, and no file is written. Other negative ES_E* codes: bad arguments
 * or input (ES_EINVAL, ES_EIO, ES_EUNSUPPORTED; nothing done) or a failure
 * during the search (ES_EIO writing, ES_ENOMEM, a trial's model failing to
 * load); err filled. In every case no temporary file remains. Runs on the
 * calling thread (training uses a->train.thread more). `on_trial` and `err`
 * may be NULL. */
int es_autotune(const es_autotune_args_t *a, es_autotune_result_t *res,
                es_autotune_trial_fn on_trial, void *ctx, es_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
