/*
 * latency.h - the latency monitor: per model and per stage latencies, SLA
 * targets with violation counts and rates, regression detection against a
 * baseline, and alert rules (warning / critical, "for" durations) that emit
 * events to a callback (the log) and to metrics.
 *
 * Models are registered by name at start-up; the handle is then used on the
 * request path, lock-free and allocation-free. A low-priority task calls
 * es_latmon_evaluate() every few seconds to run the alert rules.
 *
 *   es_latmon_params_t mp = es_latmon_default_params();
 *   mp.metrics = reg; mp.inference = &im;           // optional: NULL = no metrics
 *   mp.on_event = log_alert; mp.event_ctx = logger;  // optional
 *   es_latmon_t *mon = es_latmon_new(&mp, &err);
 *   es_latmodel_t *media;
 *   es_latmon_model(mon, "media", NULL, &media, &err);  // default SLAs, see below
 *   es_latmon_rule_params_t r = es_latmon_rule_default_params();  // p95 > 100/200 ms
 *   es_latmon_add_rule(mon, &r, &err);
 *
 *   es_latmon_record(media, ES_LAT_INFERENCE, t2 - t1, t2);  // any thread, per request
 *   es_latmon_record(media, ES_LAT_TOTAL, t2 - t0, t2);
 *
 *   es_latmon_evaluate(mon, es_hist_now_us());       // every few seconds
 *
 * Times are microseconds on one clock that never goes back (es_hist_now_us(),
 * or an injected clock in tests). Design, statistics and figures:
 * docs/observe/latency.md.
 */
#ifndef EDGESERVE_LATENCY_H
#define EDGESERVE_LATENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"
#include "edgeserve/histogram.h"
#include "edgeserve/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The stages of a request. TOTAL is end to end (arrival to response). */
typedef enum {
  ES_LAT_QUEUE = 0,       /* waiting for a worker */
  ES_LAT_BATCH = 1,       /* waiting for a batch to fill */
  ES_LAT_PREPROCESS = 2,  /* input decoding, tokenization */
  ES_LAT_INFERENCE = 3,   /* the model itself */
  ES_LAT_POSTPROCESS = 4, /* output decoding, encoding */
  ES_LAT_TOTAL = 5,       /* end to end */
  ES_LAT_NSTAGES = 6
} es_lat_stage_t;

/* "queue", "batch", "preprocess", "inference", "postprocess", "total"; "?"
 * otherwise. These are also the `stage` label values of
 * edgeserve_sla_violations_total. */
const char *es_lat_stage_name(es_lat_stage_t stage);

/* ---- regression detection (usable on its own, on any two histograms) ---- */

typedef struct es_latmon_regress_params {
  double q_split;       /* the baseline percentile whose exceedance is tested; 0.90 */
  double q_effect;      /* the percentile compared for the effect size; 0.95 */
  double min_effect;    /* flag only if current q_effect >= (1 + min_effect) x baseline's; 0.20 */
  double z_crit;        /* one-sided z threshold; 3.09 (false-positive rate 0.1% per test) */
  uint64_t min_samples; /* samples needed in each of baseline and current; 200 */
} es_latmon_regress_params_t;

es_latmon_regress_params_t es_latmon_regress_default_params(void);

typedef struct es_latmon_regress {
  uint64_t n_base, n_cur;       /* samples compared */
  uint64_t split_us;            /* baseline's q_split percentile */
  uint64_t x_base, x_cur;       /* samples above split_us in each */
  double z;                     /* two-proportion z statistic (pooled), 0 when not computed */
  double p_value;               /* one-sided, 1 when not computed */
  uint64_t base_q_us, cur_q_us; /* q_effect percentiles */
  double ratio;                 /* cur_q_us / base_q_us, 0 when the baseline is empty */
  bool enough;                  /* both samples >= min_samples and the normal approximation holds */
  bool flagged;                 /* enough, z >= z_crit and ratio >= 1 + min_effect */
} es_latmon_regress_t;

/* Compares `cur` with `base`: a one-sided two-proportion z-test on the share
 * of samples above base's q_split percentile (H0: the same share), gated by
 * a minimum sample size and a minimum effect size on the q_effect
 * percentile. Fills *out and returns 0; ES_EINVAL (out untouched) for
 * parameters out of range (quantiles not in (0, 1), min_effect < 0, z_crit
 * <= 0). p NULL = defaults. Reads the histograms (a few dozen percentile
 * queries, about 50 us); pass snapshots nobody records into for exact
 * figures. Thread-safe as es_hist_percentile(). */
int es_latmon_compare(const es_hist_t *base, const es_hist_t *cur,
                      const es_latmon_regress_params_t *p, es_latmon_regress_t *out);

/* ---- the monitor --------------------------------------------------------- */

typedef struct es_latmon es_latmon_t;
typedef struct es_latmodel es_latmodel_t; /* a model's handle, owned by its monitor */

typedef enum { ES_LATMON_WARNING = 1, ES_LATMON_CRITICAL = 2 } es_latmon_severity_t;

typedef enum {
  ES_LATMON_FIRING = 1,  /* a rule starts firing, or changes severity */
  ES_LATMON_RESOLVED = 2 /* a firing rule's condition cleared */
} es_latmon_event_kind_t;

/* What the event callback receives; the strings live as long as the monitor. */
typedef struct es_latmon_event {
  es_latmon_event_kind_t kind;
  es_latmon_severity_t severity; /* FIRING: the new severity; RESOLVED: the one that was firing */
  const char *rule, *model;
  double value;      /* the rule's value at this evaluation */
  double threshold;  /* the threshold of `severity` */
  uint64_t now_us;   /* the evaluation's time */
  uint64_t since_us; /* FIRING: when the condition started to hold; RESOLVED: when it fired */
} es_latmon_event_t;

/* Called by es_latmon_evaluate(), on its thread, with the monitor's lock
 * held: it must not call es_latmon_* functions other than es_latmon_record(). */
typedef void (*es_latmon_event_fn)(void *ctx, const es_latmon_event_t *ev);

typedef struct es_latmon_params {
  size_t max_models; /* models that can be registered; 16 */
  size_t max_rules;  /* alert rules that can be added; 16 */
  /* Optional metrics. `metrics`: the registry where the monitor registers
   * edgeserve_alerts_total{model,rule,severity} and
   * edgeserve_alert_state{model,rule} (0 inactive or pending, 1 warning,
   * 2 critical). `inference`: the standard families, already registered by
   * the caller with es_metrics_register_inference(): SLA violations go to
   * sla_violations{model,stage} and, when observe_durations, samples to
   * request_duration (TOTAL), queue_duration (QUEUE) and compute_duration
   * stage "input" / "infer" / "output" (PRE / INFERENCE / POSTPROCESS;
   * BATCH has no duration family). NULL = none. */
  es_metrics_t *metrics;
  const es_inference_metrics_t *inference;
  bool observe_durations;      /* true */
  es_latmon_event_fn on_event; /* NULL = events only counted */
  void *event_ctx;
  es_latmon_regress_params_t regress; /* es_latmon_regress_default_params() */
} es_latmon_params_t;

es_latmon_params_t es_latmon_default_params(void);

/* Makes a monitor (p NULL = defaults). Returns NULL with *err filled (when
 * not NULL): ES_EINVAL for max_models or max_rules 0 or invalid regress
 * parameters, ES_EINVAL / ES_EFULL / ES_ENOMEM from registering the alert
 * families (a family of that name already registered: one monitor per
 * registry), ES_ENOMEM; nothing is left allocated (registered families
 * cannot be removed from a registry and stay there, unused). Free with
 * es_latmon_free(). */
es_latmon_t *es_latmon_new(const es_latmon_params_t *p, es_error_t *err);

/* Frees the monitor and its models: every handle becomes invalid. NULL is a
 * no-op. No other call on `mon` or its handles may run or follow. */
void es_latmon_free(es_latmon_t *mon);

/* A stage's SLA target: "the q percentile <= bound_us"; a sample above
 * bound_us is a violation. bound_us 0 = no target. */
typedef struct es_lat_sla {
  double q;
  uint64_t bound_us;
} es_lat_sla_t;

typedef struct es_latmon_model_params {
  const char *version; /* the `version` label of the duration metrics; "1" */
  es_lat_sla_t sla[ES_LAT_NSTAGES];
  /* Stages (bit 1 << stage) that keep sliding windows (an es_latwin_t,
   * 553 KiB each): needed for percentiles, window violation rates,
   * regression detection and percentile / rate alerts on that stage. Other
   * stages keep only exact all-time counts (and feed the metrics).
   * Default: TOTAL and INFERENCE (1.1 MiB per model). */
  uint32_t windows;
} es_latmon_model_params_t;

/* Defaults from the users' figures (docs/observe/latency.md): TOTAL p95 <=
 * 80 ms, PREPROCESS p95 <= 10 ms, INFERENCE p95 <= 50 ms, POSTPROCESS p95
 * <= 5 ms, no target on QUEUE and BATCH; windows on TOTAL and INFERENCE. */
es_latmon_model_params_t es_latmon_model_default_params(void);

/* Registers model `name` (copied; non-empty) with params p (NULL =
 * defaults) and sets *out to its handle, valid until es_latmon_free().
 * Returns 0, or with nothing registered and *err filled: ES_EINVAL (empty
 * or duplicate name, an SLA q not in (0, 1) with a bound, windows with bits
 * past ES_LAT_NSTAGES), ES_EFULL (max_models reached), ES_ENOMEM, or the
 * error of creating its metric series (a series created before the failure
 * stays in the registry). Thread-safe (takes the monitor's lock). */
int es_latmon_model(es_latmon_t *mon, const char *name, const es_latmon_model_params_t *p,
                    es_latmodel_t **out, es_error_t *err);

/* The handle of model `name`, or NULL. Thread-safe. */
es_latmodel_t *es_latmon_find(es_latmon_t *mon, const char *name);

/* The model's name (owned by the monitor). */
const char *es_latmodel_name(const es_latmodel_t *m);

/* Records one sample of `stage` (`us` microseconds, finished at `now_us`):
 * exact all-time count and violation count, the stage's windows if it has
 * them, and the metrics. Lock-free and allocation-free (a few relaxed
 * atomic adds; with windows, four histogram records; a window's first
 * record of a new slice takes that window's mutex once per slice period).
 * Safe from any number of threads, alongside every call but es_latmon_free.
 * `stage` must be valid (asserted). */
void es_latmon_record(es_latmodel_t *m, es_lat_stage_t stage, uint64_t us, uint64_t now_us);

/* ---- SLA status ---------------------------------------------------------- */

typedef enum {
  ES_LATSLA_UNKNOWN = 0, /* no target, no window on the stage, or no sample in the window */
  ES_LATSLA_MET = 1,
  ES_LATSLA_VIOLATED = 2
} es_latsla_status_t;

typedef struct es_latmon_sla {
  es_lat_sla_t target;
  uint64_t count, violations; /* all time, exact */
  bool windowed;              /* the fields below are valid */
  uint64_t win_count;         /* samples in the window */
  uint64_t win_violations;    /* of which above target.bound_us (to the histogram's 0.8%) */
  double win_rate;            /* win_violations / win_count, 0 when empty */
  uint64_t win_percentile_us; /* the window's target.q percentile */
  es_latsla_status_t status;  /* win_percentile_us <= bound_us: MET */
} es_latmon_sla_t;

/* Fills *out with the SLA figures of `stage` over `span` at `now_us`.
 * Returns 0, or ES_EINVAL (out untouched) for an invalid stage or span.
 * Thread-safe (takes the monitor's lock; recording goes on). */
int es_latmon_sla(es_latmodel_t *m, es_lat_stage_t stage, es_latwin_span_t span, uint64_t now_us,
                  es_latmon_sla_t *out);

/* The window percentiles of `stage` over `span` at `now_us`: p50, p95 and
 * p99 in microseconds (within the histogram's 0.8%) and the window's sample
 * count. Returns 0, ES_EINVAL (invalid stage or span), or ES_EUNSUPPORTED
 * when the stage keeps no window (out untouched). All 0 for an empty
 * window. Thread-safe (takes the monitor's lock; recording goes on). */
typedef struct es_latmon_pcts {
  uint64_t count, p50_us, p95_us, p99_us;
} es_latmon_pcts_t;

int es_latmon_percentiles(es_latmodel_t *m, es_lat_stage_t stage, es_latwin_span_t span,
                          uint64_t now_us, es_latmon_pcts_t *out);

/* ---- regression ---------------------------------------------------------- */

/* Compares the last minute of `stage` with its baseline: the frozen
 * baseline set with es_latmon_set_baseline(), or else the samples of the
 * 5-minute window that are older than the last minute (about 230 s; the two
 * never overlap). Uses the monitor's regress parameters. Returns 0, or
 * ES_EINVAL for an invalid stage, ES_EUNSUPPORTED when the stage has no
 * windows (out untouched). Thread-safe (takes the monitor's lock). */
int es_latmon_regression(es_latmodel_t *m, es_lat_stage_t stage, uint64_t now_us,
                         es_latmon_regress_t *out);

/* Freezes a copy of `base` as the baseline of `stage` (say, the 5-minute
 * window after a known-good deploy); base NULL goes back to the rolling
 * baseline. Returns 0, or ES_EINVAL (invalid stage), ES_EUNSUPPORTED (no
 * windows on the stage), ES_ENOMEM (nothing changed). Thread-safe. */
int es_latmon_set_baseline(es_latmodel_t *m, es_lat_stage_t stage, const es_hist_t *base);

/* ---- alerts -------------------------------------------------------------- */

typedef enum {
  ES_LATMETRIC_PERCENTILE = 0, /* the stage's q percentile over span, in us */
  ES_LATMETRIC_VIOLATION_RATE =
      1,                       /* share (0..1) of the span's samples above the stage's SLA bound */
  ES_LATMETRIC_REGRESSION = 2, /* es_latmon_regression()'s ratio when flagged, else 0 */
  ES_LATMETRIC_CALLBACK = 3    /* fn(ctx, model, now_us): an error rate, a queue length... */
} es_latmetric_t;

/* Returns the value of a CALLBACK rule for `model` at `now_us`; NaN = no
 * data (the condition does not hold). Called under the monitor's lock. */
typedef double (*es_latmon_value_fn)(void *ctx, const char *model, uint64_t now_us);

typedef struct es_latmon_rule_params {
  const char *name;  /* [a-zA-Z0-9_.-]+, unique in the monitor; copied */
  const char *model; /* NULL = every model, present and future; else one model's name */
  es_latmetric_t metric;
  es_lat_stage_t stage;  /* PERCENTILE, VIOLATION_RATE, REGRESSION */
  double q;              /* PERCENTILE */
  es_latwin_span_t span; /* PERCENTILE, VIOLATION_RATE */
  uint64_t min_samples;  /* PERCENTILE, VIOLATION_RATE: fewer in the span = no data */
  es_latmon_value_fn fn; /* CALLBACK */
  void *ctx;
  double warning, critical; /* thresholds; NaN = no such level (at least one is set) */
  uint64_t warning_for_us, critical_for_us; /* how long the condition must hold to fire */
  bool below; /* the condition is value < threshold (throughput too low) instead of > */
} es_latmon_rule_params_t;

/* The Pi users' response-time rule: "latency_p95": TOTAL p95 over 1 min
 * (at least 20 samples), warning above 100 ms held 5 minutes, critical
 * above 200 ms at once. */
es_latmon_rule_params_t es_latmon_rule_default_params(void);

/* Adds a rule. Returns 0, or with nothing added and *err saying what to
 * change: ES_EINVAL (bad or duplicate name, unknown model, invalid metric,
 * stage, q or span, no fn for CALLBACK, both thresholds NaN, a rule on a
 * stage without windows, a VIOLATION_RATE rule on a stage without SLA
 * bound), ES_EFULL (max_rules reached), ES_ENOMEM, or the error of creating
 * its metric series. A rule for every model (model NULL) applies to the
 * models, present and future, that have what it reads (windows on its
 * stage; an SLA bound for VIOLATION_RATE) and skips the others. Rules
 * cannot be removed. Thread-safe. */
int es_latmon_add_rule(es_latmon_t *mon, const es_latmon_rule_params_t *p, es_error_t *err);

/* Evaluates every rule for every model it applies to, at `now_us`, and
 * moves each (rule, model) through inactive -> pending -> firing ->
 * inactive (resolved): a level (warning, critical) fires once its condition
 * has held at every evaluation for its "for" duration (0 = at the first
 * evaluation that sees it); the highest such level fires; an alert resolves
 * at the first evaluation where no level's condition holds. Each change of
 * firing severity calls on_event and counts edgeserve_alerts_total; the
 * state gauge follows. Rules whose model has too little data do not hold.
 * Returns 0, or ES_EINVAL when `now_us` is before the previous evaluation
 * (nothing done). Thread-safe (takes the monitor's lock; recording goes
 * on). Cost: per rule and model one window query (12-60 us) plus a few
 * percentile reads; REGRESSION about 100 us. */
int es_latmon_evaluate(es_latmon_t *mon, uint64_t now_us);

typedef enum {
  ES_LATALERT_INACTIVE = 0,
  ES_LATALERT_PENDING = 1, /* a level's condition holds, not yet for long enough */
  ES_LATALERT_FIRING = 2
} es_latalert_state_t;

typedef struct es_latmon_alert {
  es_latalert_state_t state;
  int severity;      /* firing severity (ES_LATMON_WARNING / CRITICAL), 0 when not firing */
  double value;      /* the value at the last evaluation (NaN before any or with no data) */
  uint64_t since_us; /* FIRING: when it fired; PENDING: when the condition started holding */
  uint64_t fired;    /* FIRING events so far */
} es_latmon_alert_t;

/* Fills *out with the state of rule `rule` for model `model` as of the last
 * es_latmon_evaluate(). Returns 0, or ES_EINVAL (out untouched) when there
 * is no such rule, model, or the rule does not apply to the model.
 * Thread-safe. */
int es_latmon_alert(es_latmon_t *mon, const char *rule, const char *model, es_latmon_alert_t *out);

#ifdef __cplusplus
}
#endif
#endif
