/*
 * quality.c - the adaptive quality manager in the server: one manager
 * (quality.h) per model with requests, fed once a second by the maintenance
 * thread, which switches the model's served variant along its ladder
 * (repo.h: config.ini's variants, or every model file of the version, best
 * first) when the manager decides so.
 *
 * A sample, per model: its queue (all priorities) against its queue_limit;
 * its end-to-end p95 over the last 10 s against [sla] p95 (or the server's
 * quality.sla_p95); the busy fraction of the inference CPUs; the memory
 * budget's pressure level; the hottest thermal zone with its trip points.
 * Evaluations run every quality.interval, switches are at least
 * quality.dwell apart (the critical rung is taken at once), and the worst
 * rung normal requests get is quality.floor (a rung number: dense 0,
 * int8 1, pq 2, pruned 3; a shorter ladder has no floor below its end).
 * quality.signals picks the signals weighed (an operator whose machine runs
 * other CPU-heavy work may leave cpu out).
 *
 * Invariants:
 *  1. Only the maintenance thread touches ms->q, ms->q_names and
 *     ms->q_retry_us; es__quality_json reads the published copy (q_pub)
 *     under ms->slock.
 *  2. The manager's rung and the served rung may differ for a while (a new
 *     version with another ladder, a failed load): every tick loads the
 *     manager's rung when they differ, at most once per 30 s after a
 *     failure.
 *  3. A model with a one-rung ladder keeps its manager (the load level is
 *     still reported) and never switches.
 *
 * Not done: priority requests on a better rung than normal ones (quality.h's
 * priority_variant) would need two variants loaded at once; the server
 * serves one variant per model, so every request gets the served one.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fail.h"
#include "edgeserve/quality.h"
#include "server_impl.h"

#define RETRY_US (30ll * 1000000)

/* Builds (or rebuilds, when the ladder changed) the manager of ms. */
static int ensure_manager(es_mstate_t *ms, char (*names)[64], int n) {
  es_server_t *s = ms->srv;
  if (ms->q && ms->q_nrungs == n && !memcmp(ms->q_names, names, (size_t)n * 64)) return 0;
  es_quality_params_t p = es_quality_default_params();
  const char *nm[ES_QUALITY_MAX_VARIANTS];
  for (int i = 0; i < n; i++) nm[i] = names[i];
  p.nvariants = n;
  p.names = nm;
  p.floor = (int)s->plan.quality_floor;
  p.eval_interval_us = es_config_get_int(s->cfg, "quality.interval");
  p.dwell_us = es_config_get_int(s->cfg, "quality.dwell");
  for (int g = 0; g < ES_SIGNAL_N; g++) /* signals left out never raise the level */
    if (!(s->quality_signals & 1u << g)) {
      memset(p.signal[g].enter, 0, sizeof p.signal[g].enter);
      p.signal[g].hysteresis = 0;
      if (g == ES_SIGNAL_QUEUE) memset(p.queue_fraction, 0, sizeof p.queue_fraction);
    }
  es_error_t err = {0};
  es_quality_mgr_t *q = es_quality_new(&p, &err);
  if (!q) {
    es__log(s, "warn", "component=quality model=%s msg=\"%s\"", ms->name, err.msg);
    return -1;
  }
  es_quality_free(ms->q);
  ms->q = q;
  ms->q_nrungs = n;
  memcpy(ms->q_names, names, (size_t)n * 64);
  return 0;
}

/* The busy fraction of the inference CPUs (0..1), -1 when unknown. */
static double inference_busy(es_server_t *s, const es_sysmetrics_sample_t *m) {
  if (!(m->have & ES_SYSM_HAVE_RATES)) return -1;
  double sum = 0;
  int n = 0;
  for (int i = 0; i < m->ncores; i++)
    if (m->cores[i].pct >= 0 && es_cpuset_has(&s->plan.inference_cpus, m->cores[i].id))
      sum += m->cores[i].pct, n++;
  return (n ? sum / n : m->cpu_pct) / 100.0;
}

static void sample_model(es_mstate_t *ms, const es_model_conf_t *conf,
                         const es_sysmetrics_sample_t *m, int64_t now, es_load_sample_t *out) {
  es_server_t *s = ms->srv;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&ms->b.lock);
  out->queue_depth = (uint32_t)ms->b.total;
  pthread_mutex_unlock(&ms->b.lock);
  out->queue_limit = (uint32_t)conf->queue_limit;
  es_latmon_pcts_t p;
  if (ms->lat &&
      es_latmon_percentiles(ms->lat, ES_LAT_TOTAL, ES_LATWIN_10S, (uint64_t)now, &p) == 0)
    out->p95_us = (int64_t)p.p95_us;
  out->sla_p95_us = conf->sla_p95_us > 0 ? conf->sla_p95_us : s->plan.sla_p95_us;
  out->cpu = m ? inference_busy(s, m) : -1;
  out->memory = (int)es_budget_level(s->budget);
  if (m && (m->have & ES_SYSM_HAVE_TEMP)) {
    out->temp_c = m->max_temp_c;
    for (int z = 0; z < m->nzones; z++) /* the hottest zone's trip points */
      if (m->zones[z].ok && m->zones[z].temp_c == m->max_temp_c) {
        out->temp_throttle_c = m->zones[z].passive_c;
        out->temp_critical_c = m->zones[z].crit_c;
        break;
      }
  }
}

static void tick_model(es_mstate_t *ms, const es_sysmetrics_sample_t *m, int64_t now) {
  es_server_t *s = ms->srv;
  char names[8][64];
  int cur = 0;
  int n = es_repo_ladder(s->repo, ms->name, names, 8, &cur);
  es_model_conf_t conf;
  if (n <= 0 || es_repo_conf(s->repo, ms->name, &conf)) return; /* not loaded: no load */
  if (n > 8) n = 8;
  if (ensure_manager(ms, names, n)) return;
  es_load_sample_t smp;
  sample_model(ms, &conf, m, now, &smp);
  es_quality_decision_t d;
  if (es_quality_update(ms->q, &smp, now, &d)) return;
  es_quality_export(ms->q, &s->im, ms->name, NULL);
  if (d.switched)
    es__log(s, "info", "component=quality model=%s level=%s from=%s to=%s msg=\"%s\"", ms->name,
            es_load_level_name(d.level), names[d.from], names[d.variant], d.reason);
  if (d.variant != cur && d.variant < n && now >= ms->q_retry_us) {
    es_error_t err = {0};
    if (es_repo_load_variant(s->repo, ms->name, d.variant, &err)) {
      ms->q_retry_us = now + RETRY_US;
      es__log(s, "warn", "component=quality model=%s variant=%s msg=\"switch failed: %s\"",
              ms->name, names[d.variant], err.msg);
    } else {
      ms->q_retry_us = 0;
      cur = d.variant;
    }
  }
  es_quality_stats_t st;
  es_quality_stats(ms->q, &st);
  pthread_mutex_lock(&ms->slock);
  ms->q_pub.valid = 1;
  ms->q_pub.level = d.level;
  ms->q_pub.signal = d.signal;
  ms->q_pub.rung = cur;
  ms->q_pub.target = d.variant;
  ms->q_pub.rungs = n;
  memcpy(ms->q_pub.variant, names[cur], 64);
  ms->q_pub.down = st.switches_down;
  ms->q_pub.up = st.switches_up;
  if (d.switched) snprintf(ms->q_pub.reason, sizeof ms->q_pub.reason, "%s", d.reason);
  pthread_mutex_unlock(&ms->slock);
}

int es__quality_signals(const char *list, unsigned *mask, es_error_t *err) {
  *mask = 0;
  for (const char *p = list; *p;) {
    size_t n = strcspn(p, ", ");
    int found = 0;
    for (int g = 0; n && g < ES_SIGNAL_N; g++) {
      const char *name = es_load_signal_name((es_load_signal_t)g);
      if (strlen(name) == n && !memcmp(p, name, n)) *mask |= 1u << g, found = 1;
    }
    if (n && !found)
      return es__fail(err, ES_EINVAL, -1,
                      "quality.signals: '%.*s' is not one of queue, p95, cpu, memory, temperature",
                      (int)(n > 32 ? 32 : n), p);
    p += n;
    p += strspn(p, ", ");
  }
  return 0;
}

void es__quality_tick(es_server_t *s, int64_t now) {
  es_sysmetrics_sample_t *m = malloc(sizeof *m); /* large: not on the stack */
  if (m && es_sysmon_latest(s->sysmon, m)) {
    free(m);
    m = NULL;
  }
  pthread_mutex_lock(&s->mlock);
  es_mstate_t *head = s->models; /* the list only grows, at its head */
  pthread_mutex_unlock(&s->mlock);
  for (es_mstate_t *ms = head; ms; ms = ms->next) tick_model(ms, m, now);
  free(m);
}

int es__quality_json(es_mstate_t *ms, cJSON *model) {
  pthread_mutex_lock(&ms->slock);
  es_qpub_t q = ms->q_pub;
  pthread_mutex_unlock(&ms->slock);
  if (!q.valid) return -1;
  cJSON *o = cJSON_AddObjectToObject(model, "quality");
  cJSON_AddStringToObject(o, "level", es_load_level_name(q.level));
  cJSON_AddStringToObject(o, "signal", es_load_signal_name(q.signal));
  cJSON_AddStringToObject(o, "variant", q.variant);
  cJSON_AddNumberToObject(o, "rung", q.rung);
  cJSON_AddNumberToObject(o, "target_rung", q.target);
  cJSON_AddNumberToObject(o, "rungs", q.rungs);
  cJSON_AddNumberToObject(o, "switches_down", (double)q.down);
  cJSON_AddNumberToObject(o, "switches_up", (double)q.up);
  cJSON_AddStringToObject(o, "last_switch", q.reason);
  return (int)q.level;
}
