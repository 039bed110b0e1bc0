/*
 * quality.h - the adaptive quality manager: which variant of a model to
 * serve, given how loaded the machine is.
 *
 * A model may come as a ladder of variants, best first (the classifier's:
 * dense -> int8 -> product-quantized -> pruned, strategy.h's es_quality_t;
 * later backends: cheaper decoding settings). The manager turns samples of
 * the load (queue depth, p95 latency against the SLA, CPU, memory pressure,
 * temperature) into a load level, optimal / elevated / high / critical, and
 * moves the served variant down the ladder under load and back up when the
 * load subsides: with hysteresis per signal, a confirmation count and a
 * minimum dwell time between switches, so that it never flaps. Priority
 * requests keep the best variant the caller can still afford.
 *
 * It is pure policy: no threads, no clock reads, no allocation after
 * es_quality_new(). The caller samples, passes its monotonic time, and gets a
 * decision; the same trace always gives the same decisions.
 *
 *   static void on_switch(void *ud, const es_quality_decision_t *d) {
 *     log_info("quality: %s", d->reason);   // "p95 142 ms > SLA 80 ms for 2
 *   }                                        //  evaluations (load high): int8 -> pq"
 *
 *   es_quality_params_t p = es_quality_default_params();   // 4 rungs, users' figures
 *   p.floor = plan.quality_floor;                          // never below it
 *   p.on_switch = on_switch;
 *   es_quality_mgr_t *q = es_quality_new(&p, &err);
 *
 *   every second (or every 30 s: p.eval_interval_us decides when it evaluates):
 *     es_load_sample_t s = {.queue_depth = depth, .queue_limit = plan.queue_limit,
 *                           .p95_us = p95, .sla_p95_us = plan.sla_p95_us,
 *                           .cpu = busy, .memory = es_budget_level(b),
 *                           .temp_c = es_hw_max_temp(&hw)};
 *     es_quality_decision_t d;
 *     es_quality_update(q, &s, now_us, &d);
 *     atomic_store(&served, d.variant);                    // request threads read these
 *     atomic_store(&served_priority, d.priority_variant);
 *   es_quality_free(q);
 *
 * Thread-safety: a manager is not locked. One thread calls es_quality_update
 * (the monitor's); publish the decision to request threads yourself (two
 * atomics, as above). Different managers are independent. The load-level and
 * signal names are static and safe from any thread.
 */
#ifndef EDGESERVE_QUALITY_H
#define EDGESERVE_QUALITY_H

#include <stdint.h>

#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Load levels, calmest first. The users' mapping to quality: optimal ->
 * high, elevated -> medium, high -> low, critical -> ultra-low, i.e. with the
 * default ladder rung = level (dense, int8, pq, pruned). */
typedef enum es_load_level {
  ES_LOAD_OPTIMAL = 0,
  ES_LOAD_ELEVATED = 1,
  ES_LOAD_HIGH = 2,
  ES_LOAD_CRITICAL = 3,
  ES_LOAD_NLEVELS = 4
} es_load_level_t;

/* "optimal", "elevated", "high", "critical"; "?" otherwise. */
const char *es_load_level_name(es_load_level_t level);

/* The signals a load level is computed from. The order breaks ties: when
 * several signals are at the load level, the first one is named the cause. */
typedef enum es_load_signal {
  ES_SIGNAL_NONE = -1,
  ES_SIGNAL_QUEUE = 0,  /* requests waiting */
  ES_SIGNAL_P95 = 1,    /* p95 latency / SLA p95 */
  ES_SIGNAL_CPU = 2,    /* busy fraction, 0..1 */
  ES_SIGNAL_MEMORY = 3, /* budget pressure level: 0 ok, 1 warning, 2 critical */
  ES_SIGNAL_TEMP = 4,   /* hottest zone, degrees C */
  ES_SIGNAL_N = 5
} es_load_signal_t;

/* "queue", "p95", "cpu", "memory", "temperature"; "none" for ES_SIGNAL_NONE;
 * "?" otherwise. */
const char *es_load_signal_name(es_load_signal_t signal);

/* One sample of the load, filled by the caller. A field at its "unknown"
 * value leaves its signal out of the evaluation. */
typedef struct es_load_sample {
  uint32_t queue_depth;   /* requests waiting now */
  uint32_t queue_limit;   /* the queue's bound (batching.queue_limit); 0 = unbounded */
  int64_t p95_us;         /* p95 latency over the last window; 0 = no requests */
  int64_t sla_p95_us;     /* the target (quality.sla_p95); 0 = leave p95 out */
  double cpu;             /* busy fraction of the inference CPUs, 0..1; < 0 = unknown */
  int memory;             /* es_pressure_t (budget.h): 0 ok, 1 warning, 2 critical */
  double temp_c;          /* hottest thermal zone (es_hw_max_temp); <= 0 = unknown */
  double temp_throttle_c; /* that zone's throttling point (passive trip); 0 = params' */
  double temp_critical_c; /* that zone's critical point; 0 = params' */
} es_load_sample_t;

/* When one signal puts the load at a level: the level is entered when the
 * signal's value reaches enter[level] (>=) and left only when it falls below
 * enter[level] - hysteresis. enter[ES_LOAD_OPTIMAL] is unused; enter[l] <= 0
 * means this signal never raises the load to level l. The enabled thresholds
 * must not decrease from level to level. */
typedef struct es_quality_thresholds {
  double enter[ES_LOAD_NLEVELS];
  double hysteresis; /* >= 0, in the signal's unit */
} es_quality_thresholds_t;

#define ES_QUALITY_MAX_VARIANTS 16

typedef struct es_quality_decision es_quality_decision_t; /* below */

/* Called on every switch of the variant served to normal requests, from
 * inside es_quality_update (the same thread), after the counters were
 * updated. `d` is the decision being returned (switched = 1, from, variant,
 * reason). It may call es_quality_stats; not es_quality_update or
 * es_quality_free on the same manager. */
typedef void (*es_quality_switch_fn)(void *ud, const es_quality_decision_t *d);

/* Whether variant `v` can serve a priority request now (loaded, or its
 * memory affordable under the budget): nonzero yes. Called from inside
 * es_quality_update for the variants better than the one served to normal
 * requests, best first, until one answers yes. */
typedef int (*es_quality_affordable_fn)(void *ud, int variant);

/* The parameters; es_quality_default_params() holds the users' figures
 * (docs/runtime/quality.md has the table and where each comes from):
 *
 *   signal       unit             elevated  high  critical  hysteresis
 *   queue        requests         20        40    80        5
 *                or of the limit  25%       50%   80%       (the lower applies)
 *   p95          p95 / SLA        1.0       1.25  2.5       0.1
 *   cpu          busy fraction    0.70      0.85  0.95      0.05
 *   memory       pressure level   1         2     2         0  (budget has its own)
 *   temperature  degrees C        70        80    85        3
 *
 * The temperature's high and critical thresholds are the sample's throttle
 * and critical points when it gives them, elevated stays (high - elevated)
 * below the throttle point. */
typedef struct es_quality_params {
  int nvariants; /* ladder length, 1..ES_QUALITY_MAX_VARIANTS; default 4 */
  /* nvariants names for the reasons (copied, truncated to 23 bytes); NULL:
   * the classifier ladder's "dense", "int8", "pq", "pruned" for rungs 0..3
   * and "v4", "v5"... beyond. Default NULL. */
  const char *const *names;
  /* The worst rung normal requests may get (strategy's quality floor);
   * values >= nvariants - 1 mean no floor. Default 3 (pruned). */
  int floor;
  /* The rung each load level calls for; non-decreasing, >= 0; values past
   * the floor or the ladder are clamped. Default {0, 1, 2, 3}. */
  int level_variant[ES_LOAD_NLEVELS];
  es_quality_thresholds_t signal[ES_SIGNAL_N]; /* indexed by es_load_signal_t */
  /* Queue thresholds as fractions of the sample's queue_limit (0 = off);
   * with a limit, a level's queue threshold is the lower of the two. */
  double queue_fraction[ES_LOAD_NLEVELS];
  /* A higher load level is entered after confirm_up consecutive evaluations
   * above the current one (at the lowest level seen among them), a lower
   * one after confirm_down evaluations below it (at the highest seen).
   * Defaults 2 and 3; >= 1. */
  int confirm_up, confirm_down;
  /* Evaluations run on a grid of this period: a call earlier than the next
   * grid point only accounts time and refreshes priority_variant. 0 = every
   * call evaluates. Default 30 s (the users' re-evaluation period). */
  int64_t eval_interval_us;
  /* Minimum time between two switches; the first switch needs none. A
   * switch moves one rung, except into the critical level's rung, which is
   * taken at once, several rungs if need be, dwell or not. Default 60 s. */
  int64_t dwell_us;
  es_quality_affordable_fn affordable; /* NULL: every variant is affordable */
  void *affordable_ud;
  es_quality_switch_fn on_switch; /* NULL: none */
  void *on_switch_ud;
} es_quality_params_t;

/* The users' figures (table above), 4 rungs, floor 3, no callbacks. */
es_quality_params_t es_quality_default_params(void);

/* What to serve, as decided by the last evaluation. */
struct es_quality_decision {
  es_load_level_t level;   /* the confirmed load level */
  int variant;             /* rung for normal requests, 0..floor */
  int priority_variant;    /* rung for priority requests: the best affordable
                              one, never worse than `variant` */
  int switched;            /* 1 when this call moved `variant` */
  int from;                /* `variant` before this call */
  int evaluated;           /* 0 when the call fell between grid points */
  es_load_signal_t signal; /* the signal at the load level (ties: the first in
                              es_load_signal_t order), ES_SIGNAL_NONE when the
                              level is optimal or no signal is at it now */
  int64_t now_us;          /* the time passed to the call */
  char reason[160];        /* why it switched; "" when switched is 0 */
};

/* Counters for metrics (another module renders them). */
typedef struct es_quality_stats {
  es_load_level_t level;
  int variant;
  uint64_t evaluations;
  uint64_t level_changes;
  uint64_t switches_down;                    /* to a cheaper rung (higher index), under load */
  uint64_t switches_up;                      /* back to a better rung */
  int64_t time_in_level_us[ES_LOAD_NLEVELS]; /* between the first and the last call */
} es_quality_stats_t;

typedef struct es_quality_mgr es_quality_mgr_t;

/* Makes a manager serving rung 0 at level optimal. Returns NULL when `p` is
 * NULL or invalid (ES_EINVAL, *err says which field and why: nvariants out
 * of 1..16, a negative floor or rung, rungs decreasing with the level,
 * decreasing or non-finite thresholds, a hysteresis negative or not below
 * a threshold, fractions out of 0..1, confirm counts < 1, negative periods)
 * or out of memory (ES_ENOMEM),
 * with *err filled when not NULL; nothing is left allocated. Free with
 * es_quality_free(). */
es_quality_mgr_t *es_quality_new(const es_quality_params_t *p, es_error_t *err);

/* Frees the manager; NULL is a no-op. */
void es_quality_free(es_quality_mgr_t *q);

/* Hands in one sample taken at now_us (the caller's monotonic clock, in
 * microseconds) and fills *out with the decision. Adds the time since the
 * previous call to the level that was in force; when now_us reaches the
 * evaluation grid, computes each signal's level (with hysteresis), the
 * candidate load level (the highest), confirms it (confirm_up/down),
 * moves the variant toward the level's rung (dwell, one rung at a time; the
 * critical rung at once) and calls on_switch when it moved. Then asks
 * `affordable` for priority_variant. Returns 0, or ES_EINVAL with nothing
 * changed when an argument is NULL or now_us is earlier than the previous
 * call's. Not thread-safe (see the top of this file). */
int es_quality_update(es_quality_mgr_t *q, const es_load_sample_t *s, int64_t now_us,
                      es_quality_decision_t *out);

/* Copies the counters into *out. Never fails. */
void es_quality_stats(const es_quality_mgr_t *q, es_quality_stats_t *out);

/* Publishes q's state for `model` into the standard metrics (metrics.h,
 * es_metrics_register_inference): edgeserve_load_level{model},
 * edgeserve_quality_level{model} = the served rung (0 = full quality),
 * edgeserve_quality_variant{model,variant} = 1 for the served rung's name and
 * 0 for the others, edgeserve_quality_switches_total{model,direction} brought
 * up to the manager's counts (idempotent: call it after every update or from
 * a scrape hook; one manager per model). Returns 0, or the error of creating
 * a series (ES_EINVAL, ES_ENOMEM, ES_EFULL at the registry's series cap)
 * with *err filled. Not thread-safe with es_quality_update on the same q. */
struct es_inference_metrics;
int es_quality_export(const es_quality_mgr_t *q, const struct es_inference_metrics *im,
                      const char *model, es_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
