/*
 * backend.h - how the server runs a model, whatever kind of model it is.
 *
 * The server core (batching, repository, caches, API) knows models only
 * through this table of functions, so a speech, synthesis or upstream backend
 * plugs in without touching it. A backend turns a model file into an
 * instance (load), runs batches of items through it (infer), and says what
 * the file will cost before it is loaded (estimate), so that the memory
 * budget can refuse it first.
 *
 *   const es_backend_t *be = es_backend_find("fasttext");
 *   es_backend_opts_t o = es_backend_default_opts();
 *   void *inst;
 *   if (be->load("media.esm", &o, &inst, &err) == 0) {
 *     es_label_prob_t preds[3];
 *     es_infer_item_t it = {.text = "Dark.S01E01.720p.mkv", .len = 20, .k = 3,
 *                           .out = preds, .cap = 3};
 *     be->infer(inst, &it, 1, &err);   // it.n predictions in preds, best first
 *     be->unload(inst);
 *   }
 *
 * Contract for every backend:
 *  1. load() leaves nothing allocated on failure and fills *err with a
 *     message that names the file and the problem.
 *  2. infer() may be called from several threads at once on one instance
 *     (the instance keeps what each concurrent call needs, up to
 *     opts.nthreads calls without waiting); it never allocates per item on
 *     the hot path once warm.
 *  3. Label strings returned by infer() point into the instance and stay
 *     valid until unload().
 *  4. unload() is called once, after the last infer() has returned.
 */
#ifndef EDGESERVE_BACKEND_H
#define EDGESERVE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"
#include "edgeserve/estimate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_backend_opts {
  int nthreads;  /* infer() calls that may run at once without waiting (>= 1) */
  int max_batch; /* the largest batch infer() will be given (>= 1) */
  int populate;  /* nonzero: pre-fault the model's pages at load */
} es_backend_opts_t;

/* nthreads 1, max_batch 32, populate 0. */
es_backend_opts_t es_backend_default_opts(void);

/* One prediction: a label and its probability. `label` points into the
 * instance (contract 3) and is not NUL-terminated; `len` is its length. */
typedef struct es_label_prob {
  const char *label;
  size_t len;
  float prob;
} es_label_prob_t;

/* One item of a batch: the input, the request's parameters, and room for
 * the result. */
typedef struct es_infer_item {
  const char *text;     /* in: the raw input (the backend normalises it) */
  size_t len;           /* in: its length in bytes */
  int32_t k;            /* in: how many labels (-1: all) */
  float threshold;      /* in: drop labels below this probability */
  es_label_prob_t *out; /* in: room for `cap` predictions */
  int32_t cap;          /* in */
  int32_t n;            /* out: predictions written, best first */
  int status;           /* out: 0, or the ES_E* code of this item alone */
} es_infer_item_t;

/* What a loaded instance is, for /v2/models/{m} and /v1/status. */
typedef struct es_backend_desc {
  const char *platform;   /* "fasttext" */
  const char *format;     /* "bin", "ftz", "esm" */
  int32_t nlabels;        /* labels it can return */
  uint64_t mapped_bytes;  /* file-backed memory (shared, reclaimable) */
  uint64_t private_bytes; /* anonymous memory it holds (heap, scratches) */
} es_backend_desc_t;

typedef struct es_backend {
  const char *name; /* "fasttext": the backend= of a model's config */

  /* Returns nonzero when the backend can load the file at `path` (by its
   * name; nothing is read). */
  int (*accepts)(const char *path);

  /* Estimates what loading `path` with `o` will cost, reading only what it
   * needs (a header, a memory map). Returns 0 or a negative ES_E* code with
   * *err filled. */
  int (*estimate)(const char *path, const es_backend_opts_t *o, es_model_estimate_t *out,
                  es_error_t *err);

  /* Loads `path`. On success stores the instance in *inst and returns 0. */
  int (*load)(const char *path, const es_backend_opts_t *o, void **inst, es_error_t *err);

  /* Runs `count` items (count <= opts.max_batch). Fills each item's n and
   * status; returns 0 when the batch ran (items may still carry their own
   * errors), or a negative ES_E* code when none ran. Thread-safe. */
  int (*infer)(void *inst, es_infer_item_t *items, size_t count, es_error_t *err);

  /* Describes a loaded instance. */
  void (*describe)(void *inst, es_backend_desc_t *out);

  /* Lists the files of `dir` this backend can load, best quality first (for
   * the fastText backend: dense .bin, then .esm, then .ftz, larger before
   * smaller), as file names without the directory, into names[cap][64].
   * Returns how many there are (may exceed cap) or a negative ES_E* code. */
  int (*variants)(const char *dir, char (*names)[64], int cap, es_error_t *err);

  /* Frees an instance (contract 4). NULL is a no-op. */
  void (*unload)(void *inst);

  /* Optional (NULL: inputs are used as they are): writes the form of the
   * input the model actually sees (a model's normaliser applied) into
   * out[cap] and returns its length; a return >= cap means it did not fit.
   * Two inputs with the same normal form get the same answer, so the
   * response cache keys on it. Thread-safe. */
  size_t (*normalize)(void *inst, const char *text, size_t len, char *out, size_t cap);

  /* Streaming sessions for audio backends: NULL when not supported (the
   * fastText backend). */
  int (*session_open)(void *inst, void **session, es_error_t *err);
  int (*session_feed)(void *session, const void *data, size_t len, es_infer_item_t *partial,
                      es_error_t *err);
  int (*session_close)(void *session, es_infer_item_t *final, es_error_t *err);
} es_backend_t;

/* The built-in backends by name; NULL when unknown. */
const es_backend_t *es_backend_find(const char *name);

/* The first built-in backend that accepts the file `path`; NULL if none. */
const es_backend_t *es_backend_for_file(const char *path);

/* The fastText classifier backend (.bin, .ftz, .esm). */
const es_backend_t *es_backend_fasttext(void);

#ifdef __cplusplus
}
#endif
#endif
