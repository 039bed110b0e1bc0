/*
 * estimate.h - how much memory a model or a request will need, before it
 * runs, and whether the budget (budget.h) can give it.
 *
 * Two kinds of work are estimated:
 *  - serving a model file: its mapped pages (file-backed: they stay resident
 *    while the model serves; the kernel may reclaim them, but then every
 *    prediction reads the disk), its private heap (dictionary table, label
 *    tree), one scratch per thread and the batch buffers;
 *  - text-length-driven work (speech synthesis, generation): the users' form
 *    base + per-100-tokens x tokens / 100 + cache overhead, with constants
 *    per tier (es_text_cost_for_tier) until a backend measures its own.
 *
 * es_estimate_request() is the one entry point of the server's
 * /estimate-memory: it estimates, checks the budget without reserving, and
 * answers estimated / available / safe and a recommendation.
 *
 *   es_estimate_query_t q = es_estimate_default_query();
 *   q.model_path = "media.bin"; q.nthreads = 2; q.batch = 20;
 *   es_estimate_answer_t a;
 *   if (es_estimate_request(budget, &q, &a, &err) == 0)
 *     printf("%s: %s\n", a.safe ? "safe" : "unsafe", a.recommendation);
 */
#ifndef EDGESERVE_ESTIMATE_H
#define EDGESERVE_ESTIMATE_H

#include <stdint.h>

#include "edgeserve/budget.h"
#include "edgeserve/error.h"
#include "edgeserve/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of text buffered per batch item (a request's line) in the batch
 * estimate; predictions are counted for every label (k = -1, the worst case). */
#define ES_ESTIMATE_LINE_BYTES 4096

/* The memory to serve one model; all in bytes. */
typedef struct es_model_estimate {
  int nthreads, batch;      /* what the estimate is for */
  uint64_t mapped_bytes;    /* the file, mapped (file-backed) */
  uint64_t private_bytes;   /* the model's heap */
  uint64_t scratch_bytes;   /* nthreads scratches (es_scratch_new) */
  uint64_t batch_bytes;     /* nthreads x batch x (line + a prediction per label + pointers) */
  uint64_t anon_bytes;      /* private + scratch + batch: anonymous memory (what OOM counts) */
  uint64_t total_bytes;     /* mapped + anon */
  uint64_t long_line_bytes; /* not in total: each scratch of a word-n-gram model grows by up to
                               this / nthreads on lines of more than 4096 words */
  uint64_t int8_total;      /* total_bytes with an int8 input matrix (edgeserve convert
                               --int8), 0 when the input is already quantized */
  uint64_t int4_total;      /* the same with int4 (--int4) */
} es_model_estimate_t;

/* Estimates from a model's info (es_model_info()) for `nthreads` threads
 * (>= 1) predicting batches of `batch` texts (>= 1). Returns 0, or ES_EINVAL
 * (then *out is zeroed). Pure: no I/O. */
int es_estimate_model_info(const es_model_info_t *info, int nthreads, int batch,
                           es_model_estimate_t *out);

/* Opens the model at `path` as the server's backend does (a memory map:
 * cheap, reads no matrix; with ES_MODEL_WORD_ROWS_BYTES of word rows), fills
 * *out as es_estimate_model_info() does, and closes it. Returns 0, or the
 * negative ES_E* code of es_model_open() (ES_EIO, ES_EFORMAT, ...) or
 * ES_EINVAL, with *err filled when not NULL; *out is zeroed on failure. */
int es_estimate_model_file(const char *path, int nthreads, int batch, es_model_estimate_t *out,
                           es_error_t *err);

/* Text-length-driven cost: bytes = base + per_100_tokens x tokens / 100 + cache. */
typedef struct es_text_cost {
  const char *variant;     /* "int8", "int4", ... (static string) */
  int bits;                /* width of the weights: 4, 8, 16, 32 */
  uint64_t base;           /* the loaded model: weights and runtime */
  uint64_t weights;        /* the part of base that scales with bits */
  uint64_t per_100_tokens; /* working memory per 100 tokens */
  uint64_t cache;          /* cache overhead */
} es_text_cost_t;

/* The default constants for a tier (table and reasoning in
 * docs/runtime/budget.md): the users' measurement on a 16 GB laptop, 2500
 * MiB + 60 MiB per 100 tokens + 250 MiB with int8 weights; int4 weights
 * where the tier's process budget is below 6 GiB; the cache overhead capped
 * at a quarter of the tier's cache budget. Never fails. */
es_text_cost_t es_text_cost_for_tier(const es_budget_tier_t *tier);

/* The same cost with the weights at `bits` (4, 8, 16 or 32; anything else
 * returns *c unchanged): weights scale by bits / c->bits. */
es_text_cost_t es_text_cost_at_bits(const es_text_cost_t *c, int bits);

/* base + ceil(per_100_tokens x tokens / 100) + cache; tokens < 0 count as 0.
 * Saturates at UINT64_MAX. */
uint64_t es_estimate_text(const es_text_cost_t *c, int64_t tokens);

/* The most tokens whose per-token part fits in `bytes` (base and cache not
 * included); INT64_MAX when per_100_tokens is 0. */
int64_t es_text_max_tokens(const es_text_cost_t *c, uint64_t bytes);

/* What /estimate-memory is asked: a model to load (model_path) or a text to
 * process (text), not both. */
typedef struct es_estimate_query {
  const char *model_path;     /* counts against the model budget */
  int nthreads, batch;        /* for the model; default 1, 1 */
  const es_text_cost_t *text; /* text work: base against the model budget, cache against
                                 the cache budget, per-token part against the work budget */
  int64_t tokens;             /* tokens of the text; < 0: text_bytes / 4 */
  uint64_t text_bytes;        /* length of the text in bytes */
  int loaded;                 /* the text model is loaded: base and cache are held already, only the
                                 per-token part is needed */
  const char *what;           /* a name for messages; default the model path or "text" */
} es_estimate_query_t;

es_estimate_query_t es_estimate_default_query(void);

typedef struct es_estimate_answer {
  uint64_t estimated; /* the whole estimate (model total, or the text formula) */
  uint64_t needed;    /* what must still be reserved (estimated, or the per-token part) */
  uint64_t available; /* when safe: what the process budget and the system have left; when
                         not: what the refusing check has left (why.available) */
  int safe;           /* needed fits in the budget now */
  int64_t tokens;     /* tokens counted */
  uint64_t text_bytes;
  es_model_estimate_t model; /* for a model query */
  es_budget_refusal_t why;   /* when not safe */
  char recommendation[192];  /* "safe", "close the other model first (...)", "use the int8
                                variant (...)", "split the text into parts of at most N
                                tokens", ... */
} es_estimate_answer_t;

/* Estimates the query and checks it against `b` without reserving anything
 * (nothing is counted as a refusal). Returns 0 with *out filled, safe or
 * not; or ES_EINVAL for a query with neither or both subjects, or the error
 * of es_estimate_model_file(), with *err filled when not NULL. Thread-safe
 * as the budget is. */
int es_estimate_request(es_budget_t *b, const es_estimate_query_t *q, es_estimate_answer_t *out,
                        es_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
