/*
 * metrics.h - counters, gauges and histograms with labels, rendered in the
 * Prometheus text exposition format 0.0.4 (what the server serves at /metrics).
 *
 * A registry holds families (a name, a help text, a type and label names),
 * registered once at start-up; a family holds series, one per set of label
 * values, created on first lookup. The lookup locks and allocates; the handle
 * it returns (es_metric_t *) is then updated lock-free and allocation-free on
 * the hot path, for the registry's lifetime. Rendering walks the registry
 * under its lock and never blocks an update.
 *
 *   es_metrics_t *reg = es_metrics_new(NULL, &err);
 *   es_inference_metrics_t im;
 *   es_metrics_register_inference(reg, &im, &err);      // the standard set
 *   es_metric_t *ok, *queue;                             // once per model
 *   es_metric_series(im.requests, (const char *[]){"media", "1", "success"}, &ok, &err);
 *   es_metric_series(im.queue_duration, (const char *[]){"media", "1"}, &queue, &err);
 *   es_counter_inc(ok);                                  // per request: atomics only
 *   es_histo_observe(queue, 0.0042);                     // seconds
 *   es_metrics_buf_t out = {0};
 *   es_metrics_render(reg, &out);                        // per scrape; out.data, out.len
 *   es_metrics_buf_free(&out);
 *   es_metrics_free(reg);
 *
 * Names follow the Prometheus conventions and are checked at registration:
 * base units (_seconds, _bytes), counters end in _total, nothing else does.
 * Every family of the standard set is described in docs/observe/metrics.md.
 *
 * Thread-safety: every function may be called from any thread, except
 * es_metrics_free(), which must follow every other call on the registry.
 */
#ifndef EDGESERVE_METRICS_H
#define EDGESERVE_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_metrics es_metrics_t;             /* a registry */
typedef struct es_metric_family es_metric_family_t; /* owned by its registry */
typedef struct es_metric es_metric_t;               /* a series, owned by its registry */

typedef enum {
  ES_METRIC_COUNTER = 0,   /* only goes up; name ends in _total */
  ES_METRIC_GAUGE = 1,     /* goes up and down */
  ES_METRIC_HISTOGRAM = 2, /* observations counted in fixed buckets, with _sum and _count */
} es_metric_type_t;

#define ES_METRICS_MAX_LABELS  16 /* label names per family */
#define ES_METRICS_MAX_BUCKETS 64 /* finite bucket bounds per histogram family */
#define ES_METRICS_MAX_HOOKS   8  /* scrape hooks per registry */

typedef struct es_metrics_params {
  /* Series allowed in the whole registry (a guard against label values
   * taken from user input); default 10000. */
  size_t max_series;
} es_metrics_params_t;

es_metrics_params_t es_metrics_default_params(void);

/* Makes an empty registry (p NULL = defaults). Returns NULL with *err filled
 * (when not NULL) on max_series == 0 (ES_EINVAL) or out of memory
 * (ES_ENOMEM); nothing is left allocated. Free with es_metrics_free(). */
es_metrics_t *es_metrics_new(const es_metrics_params_t *p, es_error_t *err);

/* Frees the registry, its families and series: every handle becomes
 * invalid. NULL is a no-op. No other call on `reg` may run or follow. */
void es_metrics_free(es_metrics_t *reg);

/* What a family is. Strings are copied at registration. */
typedef struct es_family_params {
  es_metric_type_t type;
  const char *name;          /* [a-zA-Z_][a-zA-Z0-9_]*, not "__..."; see es_metrics_register() */
  const char *help;          /* non-empty UTF-8; one line is best (\ and newlines are escaped) */
  const char *const *labels; /* nlabels label names, [a-zA-Z_][a-zA-Z0-9_]*, not "__..." */
  size_t nlabels;
  /* Histograms: the buckets' finite upper bounds, strictly increasing (the
   * +Inf bucket is implicit); NULL = ES_METRICS_LATENCY_BUCKETS. */
  const double *buckets;
  size_t nbuckets;
} es_family_params_t;

/* type COUNTER, everything else NULL / 0. */
es_family_params_t es_family_default_params(void);

/* Default histogram bounds, in seconds, for request latencies on small
 * machines: 0.5 ms to 10 s (14 bounds). */
extern const double ES_METRICS_LATENCY_BUCKETS[14];

/* Registers a family and sets *out (when not NULL) to it; the family lives
 * as long as the registry. A family without labels gets its one series at
 * once (es_metric_series(f, NULL, ...) returns it), so it renders even
 * before the first update. Returns 0, or, with nothing registered and
 * *err's message saying what to change:
 *   ES_EINVAL  a name not per the Prometheus data model, a name starting with
 *              "__", a ':' (kept for recording rules), a counter whose name
 *              does not end in _total or a non-counter whose name does, a
 *              name ending in _bucket, _sum or _count (histogram series
 *              names), a bad or duplicate label name, "le" on a histogram,
 *              an empty help, invalid UTF-8, buckets not finite and strictly
 *              increasing, more than ES_METRICS_MAX_LABELS labels or
 *              ES_METRICS_MAX_BUCKETS buckets, a name already registered;
 *   ES_EFULL   the family's own series would pass max_series;
 *   ES_ENOMEM  out of memory.
 * Thread-safe (locks the registry). */
int es_metrics_register(es_metrics_t *reg, const es_family_params_t *p, es_metric_family_t **out,
                        es_error_t *err);

/* Finds or creates the series of `f` with label `values` (f's nlabels UTF-8
 * strings, in the order of its label names; NULL when it has none) and sets
 * *out to it. The same values always give the same handle; it stays valid
 * until es_metrics_free(). Returns 0, or (with *out NULL and *err filled)
 * ES_EINVAL for a NULL value or invalid UTF-8, ES_EFULL when a new series
 * would pass max_series, ES_ENOMEM. Thread-safe: locks the registry and
 * allocates when creating. Cache the handle; do not call this per request. */
int es_metric_series(es_metric_family_t *f, const char *const *values, es_metric_t **out,
                     es_error_t *err);

/* ---- the hot path: lock-free, allocation-free, wait-free for integers --------- */

/* Adds v (>= 0) to a counter. Whole v below 2^53 goes through an atomic
 * integer add; other v through a compare-and-swap loop on a double. Returns
 * 0, or ES_EINVAL for negative or NaN v (the counter is unchanged: counters
 * never go down). `m` must be a counter (asserted). */
int es_counter_add(es_metric_t *m, double v);

/* es_counter_add(m, 1). */
void es_counter_inc(es_metric_t *m);

/* Sets / adds to a gauge (any v, NaN and infinities included). `m` must be
 * a gauge (asserted). */
void es_gauge_set(es_metric_t *m, double v);
void es_gauge_add(es_metric_t *m, double v);

/* Counts v (seconds, bytes, ...) in the first bucket whose bound is >= v
 * (+Inf otherwise) and adds it to the sum. Returns 0, or ES_EINVAL for NaN
 * (not counted). `m` must be a histogram (asserted). */
int es_histo_observe(es_metric_t *m, double v);

/* ---- reading back (tests, the CLI) ---------------------------------------------- */

/* A counter's or gauge's current value (a series with a callback: the last
 * value set directly, not the callback's); a histogram's sum. */
double es_metric_value(const es_metric_t *m);

/* A histogram's figures: cumulative[i] (when not NULL; nbuckets + 1
 * entries, the last one +Inf) counts observations <= bound i; *count (when
 * not NULL) equals the last cumulative entry; *sum (when not NULL) is the
 * sum, which may miss an observation made during the read. Returns 0, or
 * ES_EINVAL when `m` is not a histogram. */
int es_histo_read(const es_metric_t *m, uint64_t *cumulative, uint64_t *count, double *sum);

/* ---- values computed at scrape time -------------------------------------------------- */

/* A callback for a counter or gauge series: returns its value at render
 * time, given the series' label values. Runs under the registry's lock:
 * it must not call es_metrics_* / es_metric_series on the same registry
 * (hot-path updates are fine). A counter's callback must not go down. */
typedef double (*es_metric_fn)(void *ctx, const char *const *values);

/* Makes `m` (a counter or gauge) render fn(ctx, values) instead of its
 * stored value; fn NULL goes back to the stored value. Returns 0, or
 * ES_EINVAL for a histogram. Thread-safe. */
int es_metric_set_callback(es_metric_t *m, es_metric_fn fn, void *ctx);

/* A hook run at the start of every render, before the lock is taken, on the
 * rendering thread: the place to take one snapshot (es_budget_stats) and
 * set several gauges from it. It may create series. Two renders at once run
 * their hooks at once. */
typedef void (*es_metrics_hook_fn)(es_metrics_t *reg, void *ctx);

/* Adds a hook (hooks cannot be removed; they run in the order added).
 * Returns 0, or ES_EFULL past ES_METRICS_MAX_HOOKS. Thread-safe. */
int es_metrics_on_scrape(es_metrics_t *reg, es_metrics_hook_fn fn, void *ctx);

/* ---- rendering ------------------------------------------------------------------------ */

/* A growable text buffer owned by the caller: start it zeroed, reuse it from
 * one scrape to the next (it only grows), free it with es_metrics_buf_free(). */
typedef struct es_metrics_buf {
  char *data; /* NUL-terminated text once rendered; NULL before */
  size_t len; /* bytes of text, without the NUL */
  size_t cap;
} es_metrics_buf_t;

void es_metrics_buf_free(es_metrics_buf_t *buf);

/* Runs the scrape hooks, then replaces buf's text with the registry in the
 * text exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4):
 * families sorted by name, each with one # HELP and one # TYPE line and its
 * series sorted by label values; histograms with cumulative _bucket lines in
 * increasing le order ending in le="+Inf", then _sum and _count. Families
 * with labels but no series yet are left out. Values round-trip (the
 * shortest of %.15g / %.16g / %.17g that parses back to the same double;
 * +Inf, -Inf, NaN) with '.' as decimal point whatever the locale. Returns 0,
 * or ES_ENOMEM with buf->len 0. Thread-safe. */
int es_metrics_render(es_metrics_t *reg, es_metrics_buf_t *buf);

/* As es_metrics_render() into `f` (through a temporary buffer). Returns 0,
 * ES_ENOMEM, or ES_EIO when the write fails. Thread-safe. */
int es_metrics_write(es_metrics_t *reg, FILE *f);

/* ---- the standard set ------------------------------------------------------------------- */

/* The families the server exports, after Triton's nv_inference_* metrics,
 * in edgeserve's namespace. Label values, in label order, are listed after
 * each family; docs/observe/metrics.md says when each is updated. */
typedef struct es_inference_metrics {
  es_metric_family_t *requests;         /* edgeserve_inference_requests_total{model,version,outcome}
                                           outcome: "success" | "failure" */
  es_metric_family_t *failures;         /* edgeserve_inference_failures_total{model,version,reason}
                                           reason: "rejected" | "canceled" | "timeout" |
                                           "invalid" | "memory" | "backend" | "other" */
  es_metric_family_t *inferences;       /* edgeserve_inference_count_total{model,version}
                                           inputs computed (a batch of 8 counts 8) */
  es_metric_family_t *executions;       /* edgeserve_inference_executions_total{model,version}
                                           batches computed */
  es_metric_family_t *request_duration; /* edgeserve_inference_request_duration_seconds
                                           {model,version}: arrival to response */
  es_metric_family_t *queue_duration;   /* edgeserve_inference_queue_duration_seconds
                                           {model,version}: waiting for a worker */
  es_metric_family_t *compute_duration; /* edgeserve_inference_compute_duration_seconds
                                           {model,version,stage}: stage "input" | "infer" |
                                           "output" */
  es_metric_family_t *pending;          /* edgeserve_inference_pending_requests{model,version} */
  es_metric_family_t *cache_hits;       /* edgeserve_cache_hits_total{model,version} */
  es_metric_family_t *cache_misses;     /* edgeserve_cache_misses_total{model,version} */
  es_metric_family_t *sla_violations;   /* edgeserve_sla_violations_total{model,stage}
                                           stage: latency.h's stage names: "queue" |
                                           "batch" | "preprocess" | "inference" |
                                           "postprocess" | "total" */
  es_metric_family_t *quality_level;    /* edgeserve_quality_level{model}: 0 = full quality,
                                           n = n steps degraded */
  es_metric_family_t *quality_variant;  /* edgeserve_quality_variant{model,variant}: 1 for the
                                           variant serving now, 0 for the others */
  es_metric_family_t *memory_budget;    /* edgeserve_memory_budget_bytes{kind}
                                           kind: "process" | "model" | "cache" | "work" */
  es_metric_family_t *memory_used;      /* edgeserve_memory_used_bytes{kind}: as memory_budget */
  es_metric_family_t *memory_refusals;  /* edgeserve_memory_budget_refusals_total{kind}
                                           kind: "model" | "cache" | "work" */
  es_metric_family_t *memory_pressure;  /* edgeserve_memory_pressure_level: 0 ok, 1 warning,
                                           2 critical */
  es_metric_family_t *quality_switches; /* edgeserve_quality_switches_total{model,direction}
                                           direction: "down" (cheaper, under load) | "up" */
  es_metric_family_t *load_level;       /* edgeserve_load_level{model}: 0 optimal, 1 elevated,
                                           2 high, 3 critical (quality.h) */
} es_inference_metrics_t;

/* Registers the standard set in `reg` (histograms with
 * ES_METRICS_LATENCY_BUCKETS) and fills *out. Returns 0, or the first
 * failure of es_metrics_register() (ES_EINVAL when one of the names is
 * already registered): the families registered before it stay registered.
 * Thread-safe. */
int es_metrics_register_inference(es_metrics_t *reg, es_inference_metrics_t *out, es_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
