/*
 * quality.c - the adaptive quality manager: from load samples to the rung of
 * a model's variant ladder to serve.
 *
 * Under load, a cheaper variant (int8, product-quantized, pruned) keeps the
 * latency inside the SLA at a small cost in accuracy; when the load subsides
 * the best variant comes back. Switching has a cost too (a cold variant, a
 * visible change of answers), so the policy is built not to flap: hysteresis
 * per signal, a confirmation count per level change, a minimum dwell time
 * between switches, and one rung at a time except into the critical rung.
 *
 * One evaluation (es_quality_update on the grid):
 *   1. each signal's value x_s and effective thresholds t_s[l] (queue: the
 *      lower of the absolute and the queue_limit fraction; temperature: the
 *      sample's throttle/critical points) give its level
 *        sig_s = max(strict_s, min(sig_s_before, relaxed_s))
 *      where strict_s is the highest l with x_s >= t_s[l] and relaxed_s the
 *      highest with x_s >= t_s[l] - hysteresis_s (budget.c does the same);
 *   2. the candidate is max_s sig_s; a streak of confirm_up candidates above
 *      the level (confirm_down below it) moves the level to the lowest
 *      (highest) candidate of the streak;
 *   3. the variant moves toward rung[level]: into the critical level's rung
 *      at once; otherwise one rung, and only dwell_us after the last switch.
 *
 * Invariants (between calls):
 *   1. 0 <= priority_variant <= variant <= floor < nvariants, and
 *      rung[l] <= floor for every level, rung[] non-decreasing.
 *   2. level changed only after a full streak: streak_n < confirm of its
 *      direction, streak_dir == 0 when streak_n == 0.
 *   3. Two switches are at least dwell_us apart, unless the later one went
 *      into the critical rung with level == critical.
 *   4. switches_up + switches_down == the number of on_switch calls;
 *      sum of time_in_level_us == last_now - first call's now.
 *   5. Nothing reads a clock or allocates after es_quality_new: the same
 *      samples at the same times give the same decisions.
 *
 * The monitor (issue 5) samples memstat/budget/hw and the server's latency
 * histogram, calls es_quality_update and publishes the decision; the model
 * registry serves the rung it names.
 */
#include "edgeserve/quality.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fail.h"
#include "edgeserve/metrics.h"
#include "edgeserve/strategy.h"

#define NAME_MAX_LEN 24

struct es_quality_mgr {
  es_quality_params_t p; /* a copy; p.names is not kept (names[] is) */
  char names[ES_QUALITY_MAX_VARIANTS][NAME_MAX_LEN];
  int floor;                 /* effective: min(p.floor, nvariants - 1) */
  int rung[ES_LOAD_NLEVELS]; /* p.level_variant clamped to the floor */

  int started; /* a call was made: last_now and next_eval are set */
  int64_t last_now, next_eval;

  es_load_level_t level;
  int variant, priority_variant;
  int switched_once;
  int64_t last_switch_us;

  int sig[ES_SIGNAL_N];                   /* each signal's level */
  int sig_run[ES_SIGNAL_N];               /* evaluations at that level in a row */
  double x[ES_SIGNAL_N];                  /* last values (NAN: unknown) */
  double t[ES_SIGNAL_N][ES_LOAD_NLEVELS]; /* last effective thresholds */
  es_load_sample_t last;                  /* last evaluated sample, for reasons */
  es_load_signal_t dom;                   /* the signal at the level, or NONE */

  int streak_dir, streak_n; /* +1 up, -1 down, 0 none */
  es_load_level_t streak_lvl;
  int level_evals; /* evaluations at the level, its confirming streak included */

  es_quality_stats_t st;
};

const char *es_load_level_name(es_load_level_t level) {
  switch (level) {
  case ES_LOAD_OPTIMAL: return "optimal";
  case ES_LOAD_ELEVATED: return "elevated";
  case ES_LOAD_HIGH: return "high";
  case ES_LOAD_CRITICAL: return "critical";
  default: return "?";
  }
}

const char *es_load_signal_name(es_load_signal_t signal) {
  switch (signal) {
  case ES_SIGNAL_NONE: return "none";
  case ES_SIGNAL_QUEUE: return "queue";
  case ES_SIGNAL_P95: return "p95";
  case ES_SIGNAL_CPU: return "cpu";
  case ES_SIGNAL_MEMORY: return "memory";
  case ES_SIGNAL_TEMP: return "temperature";
  default: return "?";
  }
}

es_quality_params_t es_quality_default_params(void) {
  /* The users' figures (requirements digest): queue alert > 20; SLA p95 80 ms
   * with warning at 100 ms (x1.25) and critical at 200 ms (x2.5); CPU
   * 70/85/95 %; memory: budget warning/critical; temperature: throttling 80,
   * critical 85 degrees C. */
  es_quality_params_t p = {
      .nvariants = 4,
      .names = NULL,
      .floor = ES_QUALITY_PRUNED,
      .level_variant = {ES_QUALITY_DENSE, ES_QUALITY_INT8, ES_QUALITY_PQ, ES_QUALITY_PRUNED},
      .signal =
          {
              [ES_SIGNAL_QUEUE] = {{0, 20, 40, 80}, 5},
              [ES_SIGNAL_P95] = {{0, 1.0, 1.25, 2.5}, 0.1},
              [ES_SIGNAL_CPU] = {{0, 0.70, 0.85, 0.95}, 0.05},
              [ES_SIGNAL_MEMORY] = {{0, 1, 2, 2}, 0},
              [ES_SIGNAL_TEMP] = {{0, 70, 80, 85}, 3},
          },
      .queue_fraction = {0, 0.25, 0.50, 0.80},
      .confirm_up = 2,
      .confirm_down = 3,
      .eval_interval_us = 30 * 1000000LL,
      .dwell_us = 60 * 1000000LL,
  };
  return p;
}

/* ---- creation ----------------------------------------------------------------- */

static int check_params(const es_quality_params_t *p, es_error_t *err) {
  if (p->nvariants < 1 || p->nvariants > ES_QUALITY_MAX_VARIANTS)
    return es__fail(err, ES_EINVAL, -1, "quality: nvariants %d is not in 1..%d", p->nvariants,
                    ES_QUALITY_MAX_VARIANTS);
  if (p->floor < 0)
    return es__fail(err, ES_EINVAL, -1, "quality: floor %d is negative (0 is the best rung)",
                    p->floor);
  for (int l = 0; l < ES_LOAD_NLEVELS; l++) {
    if (p->level_variant[l] < 0)
      return es__fail(err, ES_EINVAL, -1, "quality: level_variant[%s] = %d is negative",
                      es_load_level_name((es_load_level_t)l), p->level_variant[l]);
    if (l > 0 && p->level_variant[l] < p->level_variant[l - 1])
      return es__fail(err, ES_EINVAL, -1,
                      "quality: level_variant[%s] = %d is better than level_variant[%s] = %d: "
                      "a higher load must not call for a better rung",
                      es_load_level_name((es_load_level_t)l), p->level_variant[l],
                      es_load_level_name((es_load_level_t)(l - 1)), p->level_variant[l - 1]);
    if (!(p->queue_fraction[l] >= 0 && p->queue_fraction[l] <= 1))
      return es__fail(err, ES_EINVAL, -1, "quality: queue_fraction[%s] = %g is not in 0..1",
                      es_load_level_name((es_load_level_t)l), p->queue_fraction[l]);
  }
  for (int s = 0; s < ES_SIGNAL_N; s++) {
    const es_quality_thresholds_t *t = &p->signal[s];
    const char *sn = es_load_signal_name((es_load_signal_t)s);
    if (!(t->hysteresis >= 0 && isfinite(t->hysteresis)))
      return es__fail(err, ES_EINVAL, -1, "quality: %s hysteresis %g is not a finite value >= 0",
                      sn, t->hysteresis);
    double prev = 0;
    for (int l = 1; l < ES_LOAD_NLEVELS; l++) {
      double e = t->enter[l];
      if (!isfinite(e))
        return es__fail(err, ES_EINVAL, -1, "quality: %s threshold for %s is not finite", sn,
                        es_load_level_name((es_load_level_t)l));
      if (e <= 0) continue; /* this signal does not raise the load to l */
      if (e < prev)
        return es__fail(err, ES_EINVAL, -1,
                        "quality: %s threshold for %s (%g) is below the one for a lower level "
                        "(%g): thresholds must not decrease",
                        sn, es_load_level_name((es_load_level_t)l), e, prev);
      if (t->hysteresis >= e)
        return es__fail(err, ES_EINVAL, -1,
                        "quality: %s hysteresis %g is not below its %s threshold %g: the level "
                        "could never be left",
                        sn, t->hysteresis, es_load_level_name((es_load_level_t)l), e);
      prev = e;
    }
  }
  if (p->confirm_up < 1 || p->confirm_down < 1)
    return es__fail(err, ES_EINVAL, -1, "quality: confirm_up %d and confirm_down %d must be >= 1",
                    p->confirm_up, p->confirm_down);
  if (p->eval_interval_us < 0 || p->dwell_us < 0)
    return es__fail(err, ES_EINVAL, -1,
                    "quality: eval_interval_us %lld and dwell_us %lld must be >= 0",
                    (long long)p->eval_interval_us, (long long)p->dwell_us);
  return 0;
}

es_quality_mgr_t *es_quality_new(const es_quality_params_t *p, es_error_t *err) {
  static const char *const classifier[] = {
      [ES_QUALITY_DENSE] = "dense",
      [ES_QUALITY_INT8] = "int8",
      [ES_QUALITY_PQ] = "pq",
      [ES_QUALITY_PRUNED] = "pruned",
  };
  if (!p) {
    es__fail(err, ES_EINVAL, -1, "quality: no parameters (use es_quality_default_params())");
    return NULL;
  }
  if (check_params(p, err) < 0) return NULL;
  es_quality_mgr_t *q = calloc(1, sizeof *q);
  if (!q) {
    es__fail(err, ES_ENOMEM, -1, "quality: out of memory (%zu bytes)", sizeof *q);
    return NULL;
  }
  q->p = *p;
  q->p.names = NULL;
  for (int v = 0; v < p->nvariants; v++) {
    const char *name = p->names ? p->names[v] : v < 4 ? classifier[v] : NULL;
    if (name)
      snprintf(q->names[v], NAME_MAX_LEN, "%s", name);
    else
      snprintf(q->names[v], NAME_MAX_LEN, "v%d", v);
  }
  q->floor = p->floor < p->nvariants - 1 ? p->floor : p->nvariants - 1;
  for (int l = 0; l < ES_LOAD_NLEVELS; l++)
    q->rung[l] = p->level_variant[l] < q->floor ? p->level_variant[l] : q->floor;
  q->dom = ES_SIGNAL_NONE;
  for (int s = 0; s < ES_SIGNAL_N; s++) q->x[s] = NAN;
  return q;
}

void es_quality_free(es_quality_mgr_t *q) { free(q); }

void es_quality_stats(const es_quality_mgr_t *q, es_quality_stats_t *out) {
  *out = q->st;
  out->level = q->level;
  out->variant = q->variant;
}

/* Gauge family[model] (or [model, name]) = v. */
static int set_gauge(es_metric_family_t *f, const char *model, const char *name, double v,
                     es_error_t *err) {
  const char *values[2] = {model, name};
  es_metric_t *m;
  int rc = es_metric_series(f, values, &m, err);
  if (rc == 0) es_gauge_set(m, v);
  return rc;
}

/* Adds to a counter what it lacks to reach `total` (counters only grow). */
static int raise_counter(es_metric_family_t *f, const char *model, const char *dir, uint64_t total,
                         es_error_t *err) {
  const char *values[2] = {model, dir};
  es_metric_t *m;
  int rc = es_metric_series(f, values, &m, err);
  if (rc == 0 && (double)total > es_metric_value(m))
    rc = es_counter_add(m, (double)total - es_metric_value(m));
  return rc;
}

int es_quality_export(const es_quality_mgr_t *q, const es_inference_metrics_t *im,
                      const char *model, es_error_t *err) {
  if (!q || !im || !model) return es__fail(err, ES_EINVAL, -1, "es_quality_export: NULL argument");
  int rc = set_gauge(im->load_level, model, NULL, q->level, err);
  if (rc == 0) rc = set_gauge(im->quality_level, model, NULL, q->variant, err);
  for (int v = 0; rc == 0 && v < q->p.nvariants; v++)
    rc = set_gauge(im->quality_variant, model, q->names[v], v == q->variant, err);
  if (rc == 0) rc = raise_counter(im->quality_switches, model, "down", q->st.switches_down, err);
  if (rc == 0) rc = raise_counter(im->quality_switches, model, "up", q->st.switches_up, err);
  return rc;
}

/* Writes the switch's reason; a reason longer than the field is cut (it is
 * a message, not data). */
static void set_reason(es_quality_decision_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_reason(es_quality_decision_t *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->reason, sizeof d->reason, fmt, ap);
  va_end(ap);
}

/* ---- one evaluation ----------------------------------------------------------- */

/* Fills the value of every signal (NAN: unknown) and its effective
 * thresholds for this sample. */
static void signal_values(es_quality_mgr_t *q, const es_load_sample_t *s) {
  for (int g = 0; g < ES_SIGNAL_N; g++)
    for (int l = 0; l < ES_LOAD_NLEVELS; l++) q->t[g][l] = q->p.signal[g].enter[l];

  q->x[ES_SIGNAL_QUEUE] = (double)s->queue_depth;
  if (s->queue_limit > 0)
    for (int l = 1; l < ES_LOAD_NLEVELS; l++) {
      double f = q->p.queue_fraction[l] * (double)s->queue_limit, *t = &q->t[ES_SIGNAL_QUEUE][l];
      if (f > 0 && (*t <= 0 || f < *t)) *t = f;
    }

  q->x[ES_SIGNAL_P95] = s->sla_p95_us > 0 ? (double)s->p95_us / (double)s->sla_p95_us : NAN;
  q->x[ES_SIGNAL_CPU] = s->cpu >= 0 ? s->cpu : NAN;
  q->x[ES_SIGNAL_MEMORY] = s->memory < 0 ? 0 : s->memory > 2 ? 2 : s->memory;

  double *tt = q->t[ES_SIGNAL_TEMP];
  q->x[ES_SIGNAL_TEMP] = s->temp_c > 0 ? s->temp_c : NAN;
  if (s->temp_throttle_c > 0) {
    /* elevated keeps its distance below the throttle point */
    if (tt[ES_LOAD_ELEVATED] > 0 && tt[ES_LOAD_HIGH] > 0)
      tt[ES_LOAD_ELEVATED] = s->temp_throttle_c - (tt[ES_LOAD_HIGH] - tt[ES_LOAD_ELEVATED]);
    tt[ES_LOAD_HIGH] = s->temp_throttle_c;
  }
  if (s->temp_critical_c > 0) tt[ES_LOAD_CRITICAL] = s->temp_critical_c;
}

/* Invariant 3 of budget.c, per signal: entered at t, left below t - h. An
 * unknown value (NAN) compares false everywhere: level optimal. */
static int signal_level(const double t[ES_LOAD_NLEVELS], double h, double x, int before) {
  int strict = 0, relaxed = 0;
  for (int l = 1; l < ES_LOAD_NLEVELS; l++) {
    if (t[l] <= 0) continue;
    if (x >= t[l]) strict = l;
    if (x >= t[l] - h) relaxed = l;
  }
  int kept = before < relaxed ? before : relaxed;
  return strict > kept ? strict : kept;
}

static void fmt_ms(char *b, size_t n, int64_t us) {
  if (us >= 10000 || us <= -10000)
    snprintf(b, n, "%.0f ms", (double)us / 1000.0);
  else
    snprintf(b, n, "%.1f ms", (double)us / 1000.0);
}

/* "p95 142 ms > SLA 80 ms", "queue 34/64 >= 32", "cpu 91% >= 85%" ... */
static void describe(const es_quality_mgr_t *q, es_load_signal_t g, char *b, size_t n) {
  const es_load_sample_t *s = &q->last;
  double t = q->t[g][q->sig[g]];
  switch (g) {
  case ES_SIGNAL_QUEUE:
    if (s->queue_limit)
      snprintf(b, n, "queue %u/%u >= %.4g", (unsigned)s->queue_depth, (unsigned)s->queue_limit, t);
    else
      snprintf(b, n, "queue %u >= %.4g", (unsigned)s->queue_depth, t);
    break;
  case ES_SIGNAL_P95: {
    char a[24], c[24];
    fmt_ms(a, sizeof a, s->p95_us);
    fmt_ms(c, sizeof c, s->sla_p95_us);
    const char *op = s->p95_us > s->sla_p95_us ? ">" : s->p95_us == s->sla_p95_us ? "=" : "<";
    snprintf(b, n, "p95 %s %s SLA %s", a, op, c);
    break;
  }
  case ES_SIGNAL_CPU: snprintf(b, n, "cpu %.0f%% >= %.0f%%", s->cpu * 100, t * 100); break;
  case ES_SIGNAL_MEMORY:
    snprintf(b, n, "memory pressure %s", s->memory >= 2 ? "critical" : "warning");
    break;
  case ES_SIGNAL_TEMP: snprintf(b, n, "temperature %.0f C >= %.0f C", s->temp_c, t); break;
  default: snprintf(b, n, "no signal"); break;
  }
}

static void confirm_level(es_quality_mgr_t *q, es_load_level_t cand) {
  int dir = cand > q->level ? 1 : cand < q->level ? -1 : 0;
  if (dir == 0) {
    q->streak_dir = q->streak_n = 0;
    q->level_evals++;
    return;
  }
  if (q->streak_dir != dir) {
    q->streak_dir = dir;
    q->streak_n = 0;
    q->streak_lvl = cand;
  }
  q->streak_n++;
  if (dir > 0 ? cand < q->streak_lvl : cand > q->streak_lvl) q->streak_lvl = cand;
  q->level_evals++;
  if (q->streak_n < (dir > 0 ? q->p.confirm_up : q->p.confirm_down)) return;
  q->level = q->streak_lvl;
  q->level_evals = q->streak_n;
  q->streak_dir = q->streak_n = 0;
  q->st.level_changes++;
}

static void evaluate(es_quality_mgr_t *q, const es_load_sample_t *s, int64_t now,
                     es_quality_decision_t *d) {
  q->last = *s;
  signal_values(q, s);
  int cand = 0;
  for (int g = 0; g < ES_SIGNAL_N; g++) {
    int lv = signal_level(q->t[g], q->p.signal[g].hysteresis, q->x[g], q->sig[g]);
    q->sig_run[g] = lv == q->sig[g] ? q->sig_run[g] + 1 : 1;
    q->sig[g] = lv;
    if (lv > cand) cand = lv;
  }
  confirm_level(q, (es_load_level_t)cand);
  q->st.evaluations++;

  q->dom = ES_SIGNAL_NONE;
  if (q->level > ES_LOAD_OPTIMAL && cand >= (int)q->level)
    for (int g = 0; g < ES_SIGNAL_N && q->dom == ES_SIGNAL_NONE; g++)
      if (q->sig[g] == cand) q->dom = (es_load_signal_t)g;

  int target = q->rung[q->level], to = q->variant;
  int dwelt = !q->switched_once || now - q->last_switch_us >= q->p.dwell_us;
  if (target > q->variant) {
    if (q->level == ES_LOAD_CRITICAL)
      to = target;
    else if (dwelt)
      to = q->variant + 1;
  } else if (target < q->variant && dwelt) {
    to = q->variant - 1;
  }
  if (to == q->variant) return;

  char why[96];
  const char *lvl = es_load_level_name(q->level);
  if (q->dom != ES_SIGNAL_NONE) describe(q, q->dom, why, sizeof why);
  if (to > q->variant && q->dom != ES_SIGNAL_NONE)
    set_reason(d, "%s for %d evaluations (load %s): %s -> %s", why, q->sig_run[q->dom], lvl,
               q->names[q->variant], q->names[to]);
  else if (q->dom != ES_SIGNAL_NONE)
    set_reason(d, "load %s for %d evaluations (%s): %s -> %s", lvl, q->level_evals, why,
               q->names[q->variant], q->names[to]);
  else
    set_reason(d, "load %s for %d evaluations: %s -> %s", lvl, q->level_evals, q->names[q->variant],
               q->names[to]);

  if (to > q->variant)
    q->st.switches_down++;
  else
    q->st.switches_up++;
  q->variant = to;
  q->switched_once = 1;
  q->last_switch_us = now;
  d->switched = 1;
  assert(q->variant >= 0 && q->variant <= q->floor);
}

int es_quality_update(es_quality_mgr_t *q, const es_load_sample_t *s, int64_t now_us,
                      es_quality_decision_t *out) {
  if (!q || !s || !out) return ES_EINVAL;
  if (q->started && now_us < q->last_now) return ES_EINVAL;

  es_quality_decision_t d;
  memset(&d, 0, sizeof d);
  d.from = q->variant;
  d.now_us = now_us;

  if (q->started) q->st.time_in_level_us[q->level] += now_us - q->last_now;
  int due = !q->started || q->p.eval_interval_us == 0 || now_us >= q->next_eval;
  if (due && q->p.eval_interval_us > 0) {
    if (!q->started)
      q->next_eval = now_us + q->p.eval_interval_us;
    else /* the next grid point after now (calls may skip several) */
      q->next_eval += ((now_us - q->next_eval) / q->p.eval_interval_us + 1) * q->p.eval_interval_us;
  }
  q->started = 1;
  q->last_now = now_us;
  if (due) {
    d.evaluated = 1;
    evaluate(q, s, now_us, &d);
  }

  /* Priority: the best rung the caller can afford, never worse than normal. */
  q->priority_variant = q->variant;
  for (int v = 0; v < q->variant; v++)
    if (!q->p.affordable || q->p.affordable(q->p.affordable_ud, v)) {
      q->priority_variant = v;
      break;
    }

  d.level = q->level;
  d.variant = q->variant;
  d.priority_variant = q->priority_variant;
  d.signal = q->dom;
  *out = d;
  if (d.switched && q->p.on_switch) q->p.on_switch(q->p.on_switch_ud, out);
  return 0;
}
