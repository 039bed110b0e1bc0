/*
 * latency.c - the latency monitor: per model and stage latencies, SLA
 * targets, regression detection, alert rules.
 *
 * A monitor holds up to max_models models and max_rules rules, in arrays
 * sized at creation, so model handles never move and the hot path never
 * touches the arrays. Each model has six stages; a stage counts its samples
 * and its SLA violations exactly (two relaxed atomics) and, when it is in
 * the model's `windows` set, records into an es_latwin_t (10 s, 1 min,
 * 5 min, all time). Everything else (SLA status, regression tests, alert
 * evaluation) reads window snapshots into the monitor's scratch histograms
 * under the monitor's mutex, off the request path.
 *
 * Invariants:
 *  1. es_latmon_record() takes no lock of the monitor and allocates nothing;
 *     the fields it reads (bound, windows, metric handles) are written once
 *     at registration, before the handle is returned.
 *  2. Every other function takes mon->mu; the scratch histograms, the rule
 *     and state arrays are only touched under it.
 *  3. A (rule, model) state exists (st->used) iff the rule applies to the
 *     model; it is created when the later of the two is added, with its
 *     metric series, so evaluation never allocates.
 *  4. st->since[L] is NONE exactly when level L's condition did not hold at
 *     the last evaluation; st->level is the severity last announced by an
 *     event (0 = none), so events alternate FIRING ... RESOLVED per pair.
 *  5. Evaluation times never go back (last_eval_us).
 *
 * Regression test (docs/observe/latency.md has the reasoning): split at the
 * baseline's p90; count the samples above the split in the baseline (x0 of
 * n0) and in the current minute (x1 of n1); a pooled two-proportion z-test,
 * one-sided. The histogram module does not expose bucket counts, so "count
 * <= x" is found by a binary search on ranks with es_hist_percentile():
 * log2(n) percentile reads of about 1 us each.
 */
#include "edgeserve/latency.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/fail.h"

#define NONE UINT64_MAX
#define rlx  memory_order_relaxed

/* The rolling baseline is the 5-minute window queried this far in the past:
 * its newest slice (10 s) then ends before the 1-minute window's oldest. */
#define BASELINE_LAG_US (70u * 1000000ull)

struct stage {
  _Atomic uint64_t count, violations;
  uint64_t bound_us; /* 0 = no target */
  double q;
  es_latwin_t *lw;   /* NULL = no windows */
  es_hist_t *frozen; /* frozen baseline, or NULL */
  es_metric_t *m_viol, *m_dur;
};

struct es_latmodel {
  es_latmon_t *mon;
  char *name;
  size_t index;
  struct stage st[ES_LAT_NSTAGES];
};

struct rule {
  es_latmon_rule_params_t p; /* p.name and p.model point to owned copies */
};

struct astate {
  bool used;
  int level;
  uint64_t since[3]; /* [1] warning, [2] critical */
  uint64_t fired_at, fired;
  double value;
  es_metric_t *m_state, *m_total[3];
};

struct es_latmon {
  es_latmon_params_t p;
  pthread_mutex_t mu;
  es_latmodel_t **models;
  size_t nmodels;
  struct rule *rules;
  size_t nrules;
  struct astate *states; /* [rule * max_models + model] */
  es_hist_t *h0, *h1;    /* scratch */
  uint64_t last_eval_us;
  es_metric_family_t *f_total, *f_state;
};

static const char *const stage_names[ES_LAT_NSTAGES] = {"queue",     "batch",       "preprocess",
                                                        "inference", "postprocess", "total"};

const char *es_lat_stage_name(es_lat_stage_t stage) {
  return (unsigned)stage < ES_LAT_NSTAGES ? stage_names[stage] : "?";
}

/* ---- regression ------------------------------------------------------------ */

es_latmon_regress_params_t es_latmon_regress_default_params(void) {
  return (es_latmon_regress_params_t){
      .q_split = 0.90, .q_effect = 0.95, .min_effect = 0.20, .z_crit = 3.09, .min_samples = 200};
}

static bool regress_params_ok(const es_latmon_regress_params_t *p) {
  return p->q_split > 0 && p->q_split < 1 && p->q_effect > 0 && p->q_effect < 1 &&
         p->min_effect >= 0 && p->z_crit > 0;
}

/* Samples of h (n of them) whose reported value is <= x: the largest rank r
 * with percentile((r - 0.5) / n) <= x. The query (r - 0.5) / n lands
 * strictly inside rank r's interval, so rounding cannot pick a neighbour.
 * Cost: about log2(n) percentile reads. */
static uint64_t count_le(const es_hist_t *h, uint64_t n, uint64_t x) {
  uint64_t lo = 0, hi = n;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo + 1) / 2;
    if (es_hist_percentile(h, ((double)mid - 0.5) / (double)n) <= x)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

int es_latmon_compare(const es_hist_t *base, const es_hist_t *cur,
                      const es_latmon_regress_params_t *p, es_latmon_regress_t *out) {
  assert(base && cur && out);
  es_latmon_regress_params_t d = es_latmon_regress_default_params();
  if (!p) p = &d;
  if (!regress_params_ok(p)) return ES_EINVAL;
  es_latmon_regress_t r = {0};
  r.p_value = 1;
  r.n_base = es_hist_count(base);
  r.n_cur = es_hist_count(cur);
  r.base_q_us = es_hist_percentile(base, p->q_effect);
  r.cur_q_us = es_hist_percentile(cur, p->q_effect);
  r.ratio = r.base_q_us ? (double)r.cur_q_us / (double)r.base_q_us : 0;
  if (r.n_base == 0 || r.n_cur == 0) goto done;
  r.split_us = es_hist_percentile(base, p->q_split);
  r.x_base = r.n_base - count_le(base, r.n_base, r.split_us);
  r.x_cur = r.n_cur - count_le(cur, r.n_cur, r.split_us);
  double n0 = (double)r.n_base, n1 = (double)r.n_cur;
  double pool = ((double)r.x_base + (double)r.x_cur) / (n0 + n1);
  /* The normal approximation needs about 5 expected samples on each side
   * of the split in each sample, whatever min_samples says. */
  double lo = pool < 1 - pool ? pool : 1 - pool;
  r.enough =
      r.n_base >= p->min_samples && r.n_cur >= p->min_samples && n0 * lo >= 5 && n1 * lo >= 5;
  if (!r.enough) goto done;
  double se = sqrt(pool * (1 - pool) * (1 / n0 + 1 / n1));
  r.z = ((double)r.x_cur / n1 - (double)r.x_base / n0) / se;
  r.p_value = 0.5 * erfc(r.z / sqrt(2.0));
  r.flagged = r.z >= p->z_crit && r.ratio >= 1 + p->min_effect;
done:
  *out = r;
  return 0;
}

/* ---- the monitor ------------------------------------------------------------ */

es_latmon_params_t es_latmon_default_params(void) {
  return (es_latmon_params_t){.max_models = 16,
                              .max_rules = 16,
                              .observe_durations = true,
                              .regress = es_latmon_regress_default_params()};
}

es_latmon_model_params_t es_latmon_model_default_params(void) {
  es_latmon_model_params_t p = {.version = "1",
                                .windows = 1u << ES_LAT_TOTAL | 1u << ES_LAT_INFERENCE};
  p.sla[ES_LAT_TOTAL] = (es_lat_sla_t){0.95, 80000};
  p.sla[ES_LAT_PREPROCESS] = (es_lat_sla_t){0.95, 10000};
  p.sla[ES_LAT_INFERENCE] = (es_lat_sla_t){0.95, 50000};
  p.sla[ES_LAT_POSTPROCESS] = (es_lat_sla_t){0.95, 5000};
  return p;
}

es_latmon_rule_params_t es_latmon_rule_default_params(void) {
  return (es_latmon_rule_params_t){.name = "latency_p95",
                                   .metric = ES_LATMETRIC_PERCENTILE,
                                   .stage = ES_LAT_TOTAL,
                                   .q = 0.95,
                                   .span = ES_LATWIN_1MIN,
                                   .min_samples = 20,
                                   .warning = 100000,
                                   .critical = 200000,
                                   .warning_for_us = 300u * 1000000ull,
                                   .critical_for_us = 0};
}

es_latmon_t *es_latmon_new(const es_latmon_params_t *p, es_error_t *err) {
  es_latmon_params_t d = es_latmon_default_params();
  if (!p) p = &d;
  if (!p->max_models || !p->max_rules || !regress_params_ok(&p->regress)) {
    es__fail(err, ES_EINVAL, -1,
             "latency monitor: max_models and max_rules must be > 0 and the regress parameters "
             "in range (quantiles in (0, 1), min_effect >= 0, z_crit > 0)");
    return NULL;
  }
  es_latmon_t *mon = calloc(1, sizeof *mon);
  if (!mon) goto nomem;
  mon->p = *p;
  if (pthread_mutex_init(&mon->mu, NULL)) {
    free(mon);
    goto nomem;
  }
  mon->models = calloc(p->max_models, sizeof *mon->models);
  mon->rules = calloc(p->max_rules, sizeof *mon->rules);
  mon->states = calloc(p->max_models * p->max_rules, sizeof *mon->states);
  mon->h0 = es_hist_new();
  mon->h1 = es_hist_new();
  if (!mon->models || !mon->rules || !mon->states || !mon->h0 || !mon->h1) {
    es_latmon_free(mon);
    goto nomem;
  }
  if (p->metrics) {
    static const char *const mrs[] = {"model", "rule", "severity"};
    es_family_params_t fp = es_family_default_params();
    fp.type = ES_METRIC_COUNTER;
    fp.name = "edgeserve_alerts_total";
    fp.help = "Latency monitor alerts that started firing (or changed severity), by severity.";
    fp.labels = mrs;
    fp.nlabels = 3;
    int rc = es_metrics_register(p->metrics, &fp, &mon->f_total, err);
    if (!rc) {
      fp.type = ES_METRIC_GAUGE;
      fp.name = "edgeserve_alert_state";
      fp.help = "Latency monitor alert severity firing now: 0 none, 1 warning, 2 critical.";
      fp.nlabels = 2;
      rc = es_metrics_register(p->metrics, &fp, &mon->f_state, err);
    }
    if (rc) {
      es_latmon_free(mon);
      return NULL;
    }
  }
  return mon;
nomem:
  es__fail(err, ES_ENOMEM, -1, "latency monitor: out of memory");
  return NULL;
}

static void model_free(es_latmodel_t *m) {
  if (!m) return;
  for (int s = 0; s < ES_LAT_NSTAGES; s++) {
    es_latwin_free(m->st[s].lw);
    es_hist_free(m->st[s].frozen);
  }
  free(m->name);
  free(m);
}

void es_latmon_free(es_latmon_t *mon) {
  if (!mon) return;
  for (size_t i = 0; i < mon->nmodels; i++) model_free(mon->models[i]);
  for (size_t i = 0; i < mon->nrules; i++) {
    free((char *)mon->rules[i].p.name);
    free((char *)mon->rules[i].p.model);
  }
  free(mon->models);
  free(mon->rules);
  free(mon->states);
  es_hist_free(mon->h0);
  es_hist_free(mon->h1);
  pthread_mutex_destroy(&mon->mu);
  free(mon);
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static es_latmodel_t *find_locked(es_latmon_t *mon, const char *name) {
  for (size_t i = 0; i < mon->nmodels; i++)
    if (!strcmp(mon->models[i]->name, name)) return mon->models[i];
  return NULL;
}

/* Whether rule r can be evaluated on model m (what the rule reads exists). */
static bool rule_fits(const struct rule *r, const es_latmodel_t *m) {
  if (r->p.metric == ES_LATMETRIC_CALLBACK) return true;
  const struct stage *s = &m->st[r->p.stage];
  if (!s->lw) return false;
  return r->p.metric != ES_LATMETRIC_VIOLATION_RATE || s->bound_us;
}

static bool rule_applies(const struct rule *r, const es_latmodel_t *m) {
  return (!r->p.model || !strcmp(r->p.model, m->name)) && rule_fits(r, m);
}

/* Makes the state of (rule ri, model m) with its metric series (inv. 3). */
static int state_init(es_latmon_t *mon, size_t ri, es_latmodel_t *m, es_error_t *err) {
  struct rule *r = &mon->rules[ri];
  struct astate *st = &mon->states[ri * mon->p.max_models + m->index];
  struct astate s = {.since = {NONE, NONE, NONE}, .value = NAN};
  if (mon->f_state) {
    const char *v[3] = {m->name, r->p.name, NULL};
    int rc = es_metric_series(mon->f_state, v, &s.m_state, err);
    for (int l = 1; l <= 2 && !rc; l++) {
      if (isnan(l == 1 ? r->p.warning : r->p.critical)) continue;
      v[2] = l == 1 ? "warning" : "critical";
      rc = es_metric_series(mon->f_total, v, &s.m_total[l], err);
    }
    if (rc) return rc;
  }
  s.used = true;
  *st = s;
  return 0;
}

static void state_clear(es_latmon_t *mon, size_t ri, size_t mi) {
  mon->states[ri * mon->p.max_models + mi].used = false;
}

int es_latmon_model(es_latmon_t *mon, const char *name, const es_latmon_model_params_t *p,
                    es_latmodel_t **out, es_error_t *err) {
  assert(mon && name && out);
  es_latmon_model_params_t d = es_latmon_model_default_params();
  if (!p) p = &d;
  *out = NULL;
  int rc = 0;
  es_latmodel_t *m = NULL;
  pthread_mutex_lock(&mon->mu);
  if (!*name || find_locked(mon, name)) {
    rc = es__fail(err, ES_EINVAL, -1, "latency monitor: model name \"%s\" is %s", name,
                  *name ? "already registered" : "empty");
    goto fail;
  }
  if (p->windows >> ES_LAT_NSTAGES) {
    rc = es__fail(err, ES_EINVAL, -1,
                  "latency monitor: model \"%s\": windows 0x%x has bits past the %d stages", name,
                  (unsigned)p->windows, ES_LAT_NSTAGES);
    goto fail;
  }
  for (int s = 0; s < ES_LAT_NSTAGES; s++)
    if (p->sla[s].bound_us && !(p->sla[s].q > 0 && p->sla[s].q < 1)) {
      rc = es__fail(err, ES_EINVAL, -1,
                    "latency monitor: model \"%s\": SLA of stage %s: the percentile %g must be "
                    "in (0, 1), e.g. 0.95 for p95",
                    name, stage_names[s], p->sla[s].q);
      goto fail;
    }
  if (mon->nmodels == mon->p.max_models) {
    rc = es__fail(err, ES_EFULL, -1,
                  "latency monitor: cannot add model \"%s\": max_models (%zu) reached", name,
                  mon->p.max_models);
    goto fail;
  }
  if (!(m = calloc(1, sizeof *m)) || !(m->name = dupstr(name))) goto nomem;
  m->mon = mon;
  m->index = mon->nmodels;
  const es_inference_metrics_t *im = mon->p.inference;
  const char *version = p->version ? p->version : "1";
  for (int s = 0; s < ES_LAT_NSTAGES; s++) {
    struct stage *st = &m->st[s];
    st->bound_us = p->sla[s].bound_us;
    st->q = p->sla[s].q;
    if (p->windows >> s & 1 && !(st->lw = es_latwin_new(err))) goto nomem;
    if (!im) continue;
    if (st->bound_us && im->sla_violations) {
      const char *v[2] = {name, stage_names[s]};
      if ((rc = es_metric_series(im->sla_violations, v, &st->m_viol, err))) goto fail;
    }
    if (!mon->p.observe_durations) continue;
    es_metric_family_t *f = NULL;
    const char *v[3] = {name, version, NULL};
    switch (s) {
    case ES_LAT_TOTAL: f = im->request_duration; break;
    case ES_LAT_QUEUE: f = im->queue_duration; break;
    case ES_LAT_PREPROCESS: f = im->compute_duration, v[2] = "input"; break;
    case ES_LAT_INFERENCE: f = im->compute_duration, v[2] = "infer"; break;
    case ES_LAT_POSTPROCESS: f = im->compute_duration, v[2] = "output"; break;
    default: break;
    }
    if (f && (rc = es_metric_series(f, v, &st->m_dur, err))) goto fail;
  }
  for (size_t ri = 0; ri < mon->nrules; ri++)
    if (rule_applies(&mon->rules[ri], m) && (rc = state_init(mon, ri, m, err))) {
      for (size_t k = 0; k < ri; k++) state_clear(mon, k, m->index);
      goto fail;
    }
  mon->models[mon->nmodels++] = m;
  pthread_mutex_unlock(&mon->mu);
  *out = m;
  return 0;
nomem:
  rc = es__fail(err, ES_ENOMEM, -1, "latency monitor: out of memory adding model \"%s\"", name);
fail:
  pthread_mutex_unlock(&mon->mu);
  model_free(m);
  return rc;
}

es_latmodel_t *es_latmon_find(es_latmon_t *mon, const char *name) {
  assert(mon && name);
  pthread_mutex_lock(&mon->mu);
  es_latmodel_t *m = find_locked(mon, name);
  pthread_mutex_unlock(&mon->mu);
  return m;
}

const char *es_latmodel_name(const es_latmodel_t *m) { return m->name; }

void es_latmon_record(es_latmodel_t *m, es_lat_stage_t stage, uint64_t us, uint64_t now_us) {
  assert(m && (unsigned)stage < ES_LAT_NSTAGES);
  struct stage *s = &m->st[stage];
  atomic_fetch_add_explicit(&s->count, 1, rlx);
  if (s->lw) es_latwin_record(s->lw, us, now_us);
  if (s->bound_us && us > s->bound_us) {
    atomic_fetch_add_explicit(&s->violations, 1, rlx);
    if (s->m_viol) es_counter_inc(s->m_viol);
  }
  if (s->m_dur) es_histo_observe(s->m_dur, (double)us * 1e-6);
}

/* ---- SLA and regression ------------------------------------------------------- */

static bool span_ok(es_latwin_span_t span) { return (unsigned)span < ES_LATWIN_NSPANS; }

int es_latmon_sla(es_latmodel_t *m, es_lat_stage_t stage, es_latwin_span_t span, uint64_t now_us,
                  es_latmon_sla_t *out) {
  assert(m && out);
  if ((unsigned)stage >= ES_LAT_NSTAGES || !span_ok(span)) return ES_EINVAL;
  es_latmon_t *mon = m->mon;
  struct stage *s = &m->st[stage];
  es_latmon_sla_t r = {.target = {s->q, s->bound_us}};
  r.count = atomic_load_explicit(&s->count, rlx);
  r.violations = atomic_load_explicit(&s->violations, rlx);
  if (s->lw) {
    pthread_mutex_lock(&mon->mu);
    es_latwin_query(s->lw, span, now_us, mon->h0);
    r.windowed = true;
    r.win_count = es_hist_count(mon->h0);
    if (s->bound_us && r.win_count) {
      r.win_violations = r.win_count - count_le(mon->h0, r.win_count, s->bound_us);
      r.win_rate = (double)r.win_violations / (double)r.win_count;
      r.win_percentile_us = es_hist_percentile(mon->h0, s->q);
      r.status = r.win_percentile_us <= s->bound_us ? ES_LATSLA_MET : ES_LATSLA_VIOLATED;
    }
    pthread_mutex_unlock(&mon->mu);
  }
  *out = r;
  return 0;
}

int es_latmon_percentiles(es_latmodel_t *m, es_lat_stage_t stage, es_latwin_span_t span,
                          uint64_t now_us, es_latmon_pcts_t *out) {
  assert(m && out);
  if ((unsigned)stage >= ES_LAT_NSTAGES || !span_ok(span)) return ES_EINVAL;
  struct stage *s = &m->st[stage];
  if (!s->lw) return ES_EUNSUPPORTED;
  es_latmon_t *mon = m->mon;
  es_latmon_pcts_t r = {0};
  pthread_mutex_lock(&mon->mu);
  es_latwin_query(s->lw, span, now_us, mon->h0);
  r.count = es_hist_count(mon->h0);
  if (r.count) {
    r.p50_us = es_hist_percentile(mon->h0, 0.50);
    r.p95_us = es_hist_percentile(mon->h0, 0.95);
    r.p99_us = es_hist_percentile(mon->h0, 0.99);
  }
  pthread_mutex_unlock(&mon->mu);
  *out = r;
  return 0;
}

/* Needs mon->mu; uses both scratch histograms. */
static void regression_locked(es_latmodel_t *m, struct stage *s, uint64_t now_us,
                              es_latmon_regress_t *out) {
  es_latmon_t *mon = m->mon;
  if (s->frozen)
    es_hist_copy(mon->h0, s->frozen);
  else if (now_us >= BASELINE_LAG_US)
    es_latwin_query(s->lw, ES_LATWIN_5MIN, now_us - BASELINE_LAG_US, mon->h0);
  else
    es_hist_reset(mon->h0);
  es_latwin_query(s->lw, ES_LATWIN_1MIN, now_us, mon->h1);
  int rc = es_latmon_compare(mon->h0, mon->h1, &mon->p.regress, out);
  assert(rc == 0); /* the parameters were checked by es_latmon_new() */
  (void)rc;
}

int es_latmon_regression(es_latmodel_t *m, es_lat_stage_t stage, uint64_t now_us,
                         es_latmon_regress_t *out) {
  assert(m && out);
  if ((unsigned)stage >= ES_LAT_NSTAGES) return ES_EINVAL;
  struct stage *s = &m->st[stage];
  if (!s->lw) return ES_EUNSUPPORTED;
  pthread_mutex_lock(&m->mon->mu);
  regression_locked(m, s, now_us, out);
  pthread_mutex_unlock(&m->mon->mu);
  return 0;
}

int es_latmon_set_baseline(es_latmodel_t *m, es_lat_stage_t stage, const es_hist_t *base) {
  assert(m);
  if ((unsigned)stage >= ES_LAT_NSTAGES) return ES_EINVAL;
  struct stage *s = &m->st[stage];
  if (!s->lw) return ES_EUNSUPPORTED;
  es_hist_t *h = NULL;
  if (base) {
    if (!(h = es_hist_new())) return ES_ENOMEM;
    es_hist_copy(h, base);
  }
  pthread_mutex_lock(&m->mon->mu);
  es_hist_t *old = s->frozen;
  s->frozen = h;
  pthread_mutex_unlock(&m->mon->mu);
  es_hist_free(old);
  return 0;
}

/* ---- alerts ------------------------------------------------------------------- */

static bool rule_name_ok(const char *s) {
  if (!s || !*s) return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_' || *s == '.' || *s == '-'))
      return false;
  return true;
}

static struct rule *rule_find(es_latmon_t *mon, const char *name) {
  for (size_t i = 0; i < mon->nrules; i++)
    if (!strcmp(mon->rules[i].p.name, name)) return &mon->rules[i];
  return NULL;
}

int es_latmon_add_rule(es_latmon_t *mon, const es_latmon_rule_params_t *p, es_error_t *err) {
  assert(mon && p);
  int rc = 0;
  const char *n = p->name ? p->name : "";
  pthread_mutex_lock(&mon->mu);
  es_latmodel_t *only = p->model ? find_locked(mon, p->model) : NULL;
  const char *why = NULL;
  if (!rule_name_ok(p->name))
    why = "its name must be non-empty [a-zA-Z0-9_.-]";
  else if (rule_find(mon, p->name))
    why = "a rule of that name exists";
  else if (p->model && !only)
    why = "its model is not registered (register models first)";
  else if ((unsigned)p->metric > ES_LATMETRIC_CALLBACK)
    why = "unknown metric";
  else if (p->metric == ES_LATMETRIC_CALLBACK && !p->fn)
    why = "a CALLBACK rule needs fn";
  else if (p->metric != ES_LATMETRIC_CALLBACK && (unsigned)p->stage >= ES_LAT_NSTAGES)
    why = "unknown stage";
  else if (p->metric == ES_LATMETRIC_PERCENTILE && !(p->q >= 0 && p->q <= 1))
    why = "q must be in [0, 1]";
  else if ((p->metric == ES_LATMETRIC_PERCENTILE || p->metric == ES_LATMETRIC_VIOLATION_RATE) &&
           !span_ok(p->span))
    why = "unknown span";
  else if (isnan(p->warning) && isnan(p->critical))
    why = "set a warning or a critical threshold";
  if (why) {
    rc = es__fail(err, ES_EINVAL, -1, "latency monitor: rule \"%s\": %s", n, why);
    goto out;
  }
  if (mon->nrules == mon->p.max_rules) {
    rc = es__fail(err, ES_EFULL, -1, "latency monitor: rule \"%s\": max_rules (%zu) reached", n,
                  mon->p.max_rules);
    goto out;
  }
  size_t ri = mon->nrules;
  struct rule *r = &mon->rules[ri];
  r->p = *p;
  r->p.name = dupstr(p->name);
  r->p.model = p->model ? dupstr(p->model) : NULL;
  if (!r->p.name || (p->model && !r->p.model)) {
    rc = es__fail(err, ES_ENOMEM, -1, "latency monitor: rule \"%s\": out of memory", n);
    goto undo;
  }
  if (only && !rule_fits(r, only)) {
    rc = es__fail(err, ES_EINVAL, -1,
                  "latency monitor: rule \"%s\": model \"%s\" has no windows on stage %s%s "
                  "(set its `windows`%s)",
                  n, only->name, stage_names[p->stage],
                  p->metric == ES_LATMETRIC_VIOLATION_RATE ? " or no SLA bound there" : "",
                  p->metric == ES_LATMETRIC_VIOLATION_RATE ? " and `sla`" : "");
    goto undo;
  }
  for (size_t mi = 0; mi < mon->nmodels; mi++)
    if (rule_applies(r, mon->models[mi]) && (rc = state_init(mon, ri, mon->models[mi], err))) {
      for (size_t k = 0; k < mi; k++) state_clear(mon, ri, k);
      goto undo;
    }
  mon->nrules++;
  goto out;
undo:
  free((char *)r->p.name);
  free((char *)r->p.model);
  memset(r, 0, sizeof *r);
out:
  pthread_mutex_unlock(&mon->mu);
  return rc;
}

/* The value of rule r for model m at now_us (NaN = no data). Needs mon->mu. */
static double rule_value(es_latmon_t *mon, const struct rule *r, es_latmodel_t *m,
                         uint64_t now_us) {
  const es_latmon_rule_params_t *p = &r->p;
  if (p->metric == ES_LATMETRIC_CALLBACK) return p->fn(p->ctx, m->name, now_us);
  struct stage *s = &m->st[p->stage];
  if (p->metric == ES_LATMETRIC_REGRESSION) {
    es_latmon_regress_t g;
    regression_locked(m, s, now_us, &g);
    return g.flagged ? g.ratio : 0;
  }
  es_latwin_query(s->lw, p->span, now_us, mon->h0);
  uint64_t n = es_hist_count(mon->h0);
  if (n == 0 || n < p->min_samples) return NAN;
  if (p->metric == ES_LATMETRIC_PERCENTILE) return (double)es_hist_percentile(mon->h0, p->q);
  return (double)(n - count_le(mon->h0, n, s->bound_us)) / (double)n;
}

static double threshold(const struct rule *r, int level) {
  return level == 1 ? r->p.warning : r->p.critical;
}

/* One evaluation of one (rule, model) pair (inv. 4). */
static void step(es_latmon_t *mon, const struct rule *r, es_latmodel_t *m, struct astate *st,
                 double v, uint64_t now_us) {
  const es_latmon_rule_params_t *p = &r->p;
  st->value = v;
  bool held[3] = {false, false, false};
  for (int l = 1; l <= 2; l++) {
    double t = threshold(r, l);
    held[l] = !isnan(t) && !isnan(v) && (p->below ? v < t : v > t);
    if (!held[l])
      st->since[l] = NONE;
    else if (st->since[l] == NONE)
      st->since[l] = now_us;
  }
  int target = 0;
  if (held[2] && now_us - st->since[2] >= p->critical_for_us)
    target = 2;
  else if (held[1] && now_us - st->since[1] >= p->warning_for_us)
    target = 1;
  if (target == st->level) return;
  es_latmon_event_t ev = {.rule = p->name, .model = m->name, .value = v, .now_us = now_us};
  if (target) {
    ev.kind = ES_LATMON_FIRING;
    ev.severity = (es_latmon_severity_t)target;
    ev.threshold = threshold(r, target);
    ev.since_us = st->since[target];
    st->fired++;
    st->fired_at = now_us;
    if (st->m_total[target]) es_counter_inc(st->m_total[target]);
  } else {
    ev.kind = ES_LATMON_RESOLVED;
    ev.severity = (es_latmon_severity_t)st->level;
    ev.threshold = threshold(r, st->level);
    ev.since_us = st->fired_at;
  }
  st->level = target;
  if (st->m_state) es_gauge_set(st->m_state, target);
  if (mon->p.on_event) mon->p.on_event(mon->p.event_ctx, &ev);
}

int es_latmon_evaluate(es_latmon_t *mon, uint64_t now_us) {
  assert(mon);
  pthread_mutex_lock(&mon->mu);
  if (now_us < mon->last_eval_us) {
    pthread_mutex_unlock(&mon->mu);
    return ES_EINVAL;
  }
  mon->last_eval_us = now_us;
  for (size_t ri = 0; ri < mon->nrules; ri++)
    for (size_t mi = 0; mi < mon->nmodels; mi++) {
      struct astate *st = &mon->states[ri * mon->p.max_models + mi];
      if (!st->used) continue;
      double v = rule_value(mon, &mon->rules[ri], mon->models[mi], now_us);
      step(mon, &mon->rules[ri], mon->models[mi], st, v, now_us);
    }
  pthread_mutex_unlock(&mon->mu);
  return 0;
}

int es_latmon_alert(es_latmon_t *mon, const char *rule, const char *model, es_latmon_alert_t *out) {
  assert(mon && rule && model && out);
  int rc = ES_EINVAL;
  pthread_mutex_lock(&mon->mu);
  struct rule *r = rule_find(mon, rule);
  es_latmodel_t *m = find_locked(mon, model);
  if (r && m) {
    struct astate *st = &mon->states[(size_t)(r - mon->rules) * mon->p.max_models + m->index];
    if (st->used) {
      es_latmon_alert_t a = {.severity = st->level, .value = st->value, .fired = st->fired};
      uint64_t since = st->since[1] < st->since[2] ? st->since[1] : st->since[2];
      if (st->level)
        a.state = ES_LATALERT_FIRING, a.since_us = st->fired_at;
      else if (since != NONE)
        a.state = ES_LATALERT_PENDING, a.since_us = since;
      *out = a;
      rc = 0;
    }
  }
  pthread_mutex_unlock(&mon->mu);
  return rc;
}
