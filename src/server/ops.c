/*
 * ops.c - operations endpoints: liveness and readiness, /health, /metrics,
 * /system-status, /hardware, /estimate-memory, /optimize-for-hardware,
 * /v1/status (the dashboard's feed) and the dashboard page itself.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/hwjson.h"
#include "edgeserve/estimate.h"
#include "edgeserve/quality.h"
#include "server_impl.h"

#define ES_VERSION_STRING "0.1.0"

static int count_ready(es_server_t *s, int *total) {
  int n = es_repo_list(s->repo, NULL, 0), ready = 0;
  *total = n > 0 ? n : 0;
  if (n <= 0) return 0;
  es_repo_entry_t *all = calloc((size_t)n, sizeof *all);
  if (!all) return 0;
  n = es_repo_list(s->repo, all, n);
  for (int i = 0; i < n; i++) ready += all[i].state == ES_MODEL_READY;
  free(all);
  return ready;
}

static es_sysmetrics_sample_t *latest_sample(es_server_t *s) {
  es_sysmetrics_sample_t *m = malloc(sizeof *m);
  if (m && es_sysmon_latest(s->sysmon, m)) {
    free(m);
    m = NULL;
  }
  return m;
}

static void health(es_req_t *r) {
  es_server_t *s = r->srv;
  int total, ready = count_ready(s, &total);
  es_budget_stats_t bs;
  es_budget_stats(s->budget, &bs);
  es_store_stats_t db = {0};
  if (s->store) es_store_stats(s->store, &db);
  int db_ok = s->store && db.healthy;
  const char *status = ready == 0                                                      ? "unhealthy"
                       : (ready < total || bs.level >= ES_PRESSURE_CRITICAL || !db_ok) ? "degraded"
                                                                                       : "ok";
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "status", status);
  cJSON_AddNumberToObject(o, "models_ready", ready);
  cJSON_AddNumberToObject(o, "models", total);
  cJSON_AddStringToObject(o, "memory_pressure", es_pressure_name(bs.level));
  cJSON_AddNumberToObject(o, "uptime_s", (double)(es__now_us() - s->start_us) / 1e6);
  cJSON *d = cJSON_AddObjectToObject(o, "database");
  cJSON_AddBoolToObject(d, "healthy", db_ok);
  if (!s->store)
    cJSON_AddStringToObject(d, "error", s->store_error);
  else if (!db.healthy)
    cJSON_AddStringToObject(d, "error", db.last_error);
  if (s->store) {
    cJSON_AddNumberToObject(d, "history_written", (double)db.history_written);
    cJSON_AddNumberToObject(d, "history_dropped", (double)(db.dropped_full + db.dropped_error));
  }
  es__reply_json(r, ready == 0 ? 503 : 200, o);
}

static void update_gauges(es_server_t *s) {
  es_budget_stats_t bs;
  es_budget_stats(s->budget, &bs);
  static const char *kinds[] = {"model", "cache", "work"};
  es_metric_t *m;
  if (es_metric_series(s->im.memory_budget, (const char *[]){"process"}, &m, NULL) == 0)
    es_gauge_set(m, (double)bs.budget);
  if (es_metric_series(s->im.memory_used, (const char *[]){"process"}, &m, NULL) == 0)
    es_gauge_set(m, (double)bs.used);
  for (int k = 0; k < ES_BUDGET_NKINDS; k++) {
    if (es_metric_series(s->im.memory_budget, (const char *[]){kinds[k]}, &m, NULL) == 0)
      es_gauge_set(m, (double)bs.limit[k]);
    if (es_metric_series(s->im.memory_used, (const char *[]){kinds[k]}, &m, NULL) == 0)
      es_gauge_set(m, (double)bs.reserved[k]);
  }
  if (es_metric_series(s->im.memory_pressure, NULL, &m, NULL) == 0)
    es_gauge_set(m, (double)bs.level);
  pthread_mutex_lock(&s->mlock);
  for (es_mstate_t *ms = s->models; ms; ms = ms->next) {
    pthread_mutex_lock(&ms->b.lock);
    int q = ms->b.total;
    pthread_mutex_unlock(&ms->b.lock);
    es_mseries_t ser;
    if (ms->series.version >= 0) {
      es__series(ms, ms->series.version, &ser);
      if (ser.pending) es_gauge_set(ser.pending, q);
    }
  }
  pthread_mutex_unlock(&s->mlock);
}

static void metrics(es_req_t *r) {
  es_server_t *s = r->srv;
  update_gauges(s);
  es_metrics_buf_t buf = {0};
  if (es_metrics_render(s->metrics, &buf)) {
    es_metrics_buf_free(&buf);
    es__reply_error(r, 503, "out of memory rendering the metrics");
    return;
  }
  char *body = malloc(buf.len + 1);
  if (!body) {
    es_metrics_buf_free(&buf);
    es__reply_error(r, 503, "out of memory");
    return;
  }
  memcpy(body, buf.data, buf.len);
  body[buf.len] = '\0';
  size_t len = buf.len;
  es_metrics_buf_free(&buf);
  es__reply(r, 200, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

static cJSON *memory_json(es_server_t *s) {
  es_budget_stats_t bs;
  es_budget_stats(s->budget, &bs);
  cJSON *m = cJSON_CreateObject();
  cJSON_AddNumberToObject(m, "rss_bytes", (double)bs.rss);
  cJSON_AddNumberToObject(m, "budget_bytes", (double)bs.budget);
  cJSON_AddNumberToObject(m, "used_bytes", (double)bs.used);
  cJSON_AddNumberToObject(m, "reserved_bytes", (double)bs.reserved_total);
  cJSON_AddNumberToObject(m, "model_reserved_bytes", (double)bs.reserved[ES_BUDGET_MODEL]);
  cJSON_AddNumberToObject(m, "model_limit_bytes", (double)bs.limit[ES_BUDGET_MODEL]);
  cJSON_AddNumberToObject(m, "available_bytes", (double)bs.available_now);
  cJSON_AddStringToObject(m, "pressure", es_pressure_name(bs.level));
  return m;
}

static void system_status(es_req_t *r) {
  es_server_t *s = r->srv;
  es_sysmetrics_sample_t *m = latest_sample(s);
  if (!m) {
    es__reply_error(r, 503, "no system sample yet");
    return;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "cpu_percent", m->cpu_pct);
  cJSON *cores = cJSON_AddArrayToObject(o, "cpu_per_core");
  for (int i = 0; i < m->ncores; i++) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "cpu", m->cores[i].id);
    cJSON_AddNumberToObject(c, "percent", m->cores[i].pct);
    cJSON_AddBoolToObject(c, "big", m->clusters[m->cores[i].cluster].big);
    cJSON_AddItemToArray(cores, c);
  }
  cJSON_AddNumberToObject(o, "load1", m->load1);
  cJSON_AddNumberToObject(o, "memory_percent", m->mem_pct);
  cJSON_AddNumberToObject(o, "memory_available_gb", (double)m->mem.available / 1073741824.0);
  cJSON_AddNumberToObject(o, "swap_percent", m->swap_pct);
  if (m->have & ES_SYSM_HAVE_DISK) cJSON_AddNumberToObject(o, "disk_percent", m->disk_pct);
  if (m->have & ES_SYSM_HAVE_TEMP)
    cJSON_AddNumberToObject(o, "temperature_c", m->max_temp_c);
  else
    cJSON_AddNullToObject(o, "temperature_c");
  cJSON_AddBoolToObject(o, "throttled", m->throttled);
  cJSON_AddNumberToObject(o, "gpu_count", s->hw.nvidia_gpus);
  cJSON *risk = cJSON_AddObjectToObject(o, "risks");
  cJSON_AddBoolToObject(risk, "memory_critical", (m->flags & ES_SYSM_MEMORY_CRITICAL) != 0);
  cJSON_AddBoolToObject(risk, "cpu_maxed", (m->flags & ES_SYSM_CPU_MAXED) != 0);
  cJSON_AddBoolToObject(risk, "thermal_likely", (m->flags & ES_SYSM_THERMAL_LIKELY) != 0);
  es_budget_stats_t bs;
  es_budget_stats(s->budget, &bs);
  cJSON_AddBoolToObject(risk, "budget_pressure", bs.level >= ES_PRESSURE_WARNING);
  cJSON_AddItemToObject(o, "budget", memory_json(s));
  const char *action = es_sysmetrics_action_str(m->action);
  if (m->action == ES_SYSM_OK && bs.level >= ES_PRESSURE_CRITICAL) action = "clear cache";
  cJSON_AddStringToObject(o, "recommended_action", action);
  free(m);
  es__reply_json(r, 200, o);
}

static void hardware(es_req_t *r) {
  es_server_t *s = r->srv;
  es__reply_json(r, 200, es__hw_json(&s->hw, &s->plan));
}

static void estimate(es_req_t *r) {
  es_server_t *s = r->srv;
  cJSON *in = es__parse_body(r, 0);
  if (!in) return;
  es_estimate_query_t q = es_estimate_default_query();
  es_text_cost_t tc;
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(in, "model");
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(in, "text");
  const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(in, "tokens");
  const cJSON *thr = cJSON_GetObjectItemCaseSensitive(in, "threads");
  const cJSON *batch = cJSON_GetObjectItemCaseSensitive(in, "batch");
  es_served_t *sv = NULL;
  char path[4096] = "";
  es_error_t err = {0};
  if (cJSON_IsString(model)) {
    if (!es_repo_valid_name(model->valuestring, strlen(model->valuestring))) {
      cJSON_Delete(in);
      es__reply_error(r, 400, "\"model\" must be a model name");
      return;
    }
    int rc = es_repo_acquire(s->repo, model->valuestring, &sv, &err);
    if (rc) {
      if (rc == ES_ENOTFOUND)
        es__reply_error(r, 404, "unknown model '%s'", model->valuestring);
      else
        es__reply_error(r, 503, "%s", err.msg);
      cJSON_Delete(in);
      return;
    }
    snprintf(path, sizeof path, "%s", sv->path);
    es_repo_release(s->repo, sv);
    q.model_path = path;
    q.what = model->valuestring;
    q.nthreads = cJSON_IsNumber(thr) && thr->valuedouble >= 1 && thr->valuedouble <= 1024
                     ? (int)thr->valuedouble
                     : s->plan.inference_threads;
    q.batch = cJSON_IsNumber(batch) && batch->valuedouble >= 1 && batch->valuedouble <= 1024
                  ? (int)batch->valuedouble
                  : (int)s->plan.max_batch;
  } else if (cJSON_IsString(text) || cJSON_IsNumber(tokens)) {
    es_budget_tier_t tier = es_budget_tier_for(s->plan.total);
    tc = es_text_cost_for_tier(&tier);
    q.text = &tc;
    q.text_bytes = cJSON_IsString(text) ? strlen(text->valuestring) : 0;
    q.tokens =
        cJSON_IsNumber(tokens) && tokens->valuedouble >= 0 ? (int64_t)tokens->valuedouble : -1;
  } else {
    cJSON_Delete(in);
    es__reply_error(r, 400, "send {\"model\": NAME} or {\"text\": \"...\"} or {\"tokens\": N}");
    return;
  }
  es_estimate_answer_t a;
  int rc = es_estimate_request(s->budget, &q, &a, &err);
  cJSON_Delete(in);
  if (rc) {
    es__reply_error(r, 400, "%s", err.msg[0] ? err.msg : es_strerror(rc));
    return;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "estimated_bytes", (double)a.estimated);
  cJSON_AddNumberToObject(o, "needed_bytes", (double)a.needed);
  cJSON_AddNumberToObject(o, "available_bytes", (double)a.available);
  cJSON_AddBoolToObject(o, "safe", a.safe);
  if (q.text) {
    cJSON_AddNumberToObject(o, "tokens", (double)a.tokens);
    cJSON_AddNumberToObject(o, "text_length", (double)a.text_bytes);
  } else {
    cJSON *m = cJSON_AddObjectToObject(o, "model");
    cJSON_AddNumberToObject(m, "mapped_bytes", (double)a.model.mapped_bytes);
    cJSON_AddNumberToObject(m, "private_bytes", (double)a.model.private_bytes);
    cJSON_AddNumberToObject(m, "scratch_bytes", (double)a.model.scratch_bytes);
    cJSON_AddNumberToObject(m, "batch_bytes", (double)a.model.batch_bytes);
    cJSON_AddNumberToObject(m, "threads", a.model.nthreads);
    cJSON_AddNumberToObject(m, "batch", a.model.batch);
  }
  cJSON_AddStringToObject(o, "recommendation", a.recommendation);
  es__reply_json(r, 200, o);
}

static cJSON *plan_brief(const es_plan_t *p) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "strategy", es_strategy_name(p->strategy));
  cJSON_AddNumberToObject(o, "threads", p->inference_threads);
  cJSON_AddNumberToObject(o, "max_batch", p->max_batch);
  cJSON_AddNumberToObject(o, "batch_delay_us", (double)p->max_delay_us);
  cJSON_AddNumberToObject(o, "cache_limit_bytes", (double)p->cache_budget);
  cJSON_AddNumberToObject(o, "budget_bytes", (double)p->budget);
  cJSON_AddNumberToObject(o, "model_budget_bytes", (double)p->model_budget);
  cJSON_AddNumberToObject(o, "max_text_length", 64 * 1024);
  return o;
}

/* Re-detects the machine and re-plans. What the running server can adopt
 * (caches) is applied; what needs a restart (threads, budgets) is listed. */
static void optimize(es_req_t *r) {
  es_server_t *s = r->srv;
  es_hw_t hw;
  es_plan_t plan;
  es_error_t err = {0};
  if (es_hw_detect(&hw, s->hw_root[0] ? s->hw_root : NULL, &err) ||
      es_plan_make(&hw, s->cfg, &plan, &err)) {
    es__reply_error(r, 500, "re-planning failed: %s", err.msg);
    return;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "previous", plan_brief(&s->plan));
  cJSON_AddItemToObject(o, "current", plan_brief(&plan));
  cJSON *acts = cJSON_AddArrayToObject(o, "actions");
  cJSON *restart = cJSON_AddArrayToObject(o, "restart_required");
  if (plan.inference_threads != s->plan.inference_threads)
    cJSON_AddItemToArray(restart, cJSON_CreateString("threads"));
  if (plan.budget != s->plan.budget) cJSON_AddItemToArray(restart, cJSON_CreateString("budget"));
  es_memstat_t m;
  if (es_memstat_read(&m, s->hw_root[0] ? s->hw_root : NULL, NULL) == 0) {
    es_budget_observe(s->budget, &m);
    cJSON_AddItemToArray(acts, cJSON_CreateString("memory re-sampled"));
  }
  es__optimize_caches(s, acts);
  es__reply_json(r, 200, o);
}

/* The dashboard's feed: docs/server/dashboard.md has the schema. */
static void status(es_req_t *r) {
  es_server_t *s = r->srv;
  cJSON *o = cJSON_CreateObject();
  cJSON *sv = cJSON_AddObjectToObject(o, "server");
  cJSON_AddStringToObject(sv, "version", ES_VERSION_STRING);
  cJSON_AddNumberToObject(sv, "uptime_s", (double)(es__now_us() - s->start_us) / 1e6);
  cJSON_AddNumberToObject(sv, "requests_total", (double)atomic_load(&s->c.requests));
  cJSON_AddNumberToObject(sv, "errors_total", (double)atomic_load(&s->c.errors));
  cJSON_AddNumberToObject(sv, "requests_per_s", (double)atomic_load(&s->rps_milli) / 1000.0);
  cJSON *models = es__models_json(s);
  int64_t now = es__now_us();
  int queued[ES_SCHED_NPRIO] = {0};
  int load_level = -1;
  for (cJSON *m = models ? models->child : NULL; m; m = m->next) {
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(m, "name"));
    pthread_mutex_lock(&s->mlock);
    es_mstate_t *ms = s->models;
    while (ms && name && strcmp(ms->name, name) != 0) ms = ms->next;
    pthread_mutex_unlock(&s->mlock);
    if (!ms) continue;
    cJSON_AddNumberToObject(m, "requests_total", (double)atomic_load(&ms->requests));
    uint64_t b = atomic_load(&ms->batches), it = atomic_load(&ms->items);
    cJSON_AddNumberToObject(m, "batch_avg", b ? (double)it / (double)b : 0);
    pthread_mutex_lock(&ms->b.lock);
    int mq[ES_SCHED_NPRIO];
    for (int p = 0; p < ES_SCHED_NPRIO; p++) queued[p] += ms->b.queued[p], mq[p] = ms->b.queued[p];
    pthread_mutex_unlock(&ms->b.lock);
    cJSON_AddItemToObject(m, "queue", cJSON_CreateIntArray(mq, ES_SCHED_NPRIO));
    int ll = es__quality_json(ms, m);
    if (ll > load_level) load_level = ll;
    if (!ms->lat) continue;
    cJSON *lat = cJSON_AddObjectToObject(m, "latency_us");
    static const struct {
      const char *name;
      es_lat_stage_t st;
    } stages[] = {{"total", ES_LAT_TOTAL}, {"inference", ES_LAT_INFERENCE}};
    for (size_t i = 0; i < sizeof stages / sizeof *stages; i++) {
      es_latmon_pcts_t p;
      if (es_latmon_percentiles(ms->lat, stages[i].st, ES_LATWIN_10S, (uint64_t)now, &p)) continue;
      cJSON *x = cJSON_AddObjectToObject(lat, stages[i].name);
      cJSON_AddNumberToObject(x, "p50", (double)p.p50_us);
      cJSON_AddNumberToObject(x, "p95", (double)p.p95_us);
      cJSON_AddNumberToObject(x, "p99", (double)p.p99_us);
      cJSON_AddNumberToObject(x, "count", (double)p.count);
    }
  }
  cJSON_AddItemToObject(o, "models", models);
  cJSON *q = cJSON_AddObjectToObject(o, "queues");
  static const char *pn[] = {"critical", "high", "normal", "low"};
  for (int p = 0; p < ES_SCHED_NPRIO; p++) cJSON_AddNumberToObject(q, pn[p], queued[p]);
  cJSON_AddItemToObject(o, "memory", memory_json(s));
  cJSON_AddItemToObject(o, "cache", es__cache_json(s));
  es_sysmetrics_sample_t *m = latest_sample(s);
  cJSON *sys = cJSON_AddObjectToObject(o, "system");
  if (load_level >= 0) /* the most loaded model's level */
    cJSON_AddStringToObject(sys, "load_level", es_load_level_name((es_load_level_t)load_level));
  if (m) {
    cJSON_AddNumberToObject(sys, "cpu_percent", m->cpu_pct);
    if (m->have & ES_SYSM_HAVE_TEMP)
      cJSON_AddNumberToObject(sys, "temperature_c", m->max_temp_c);
    else
      cJSON_AddNullToObject(sys, "temperature_c");
    free(m);
  }
  cJSON *rej = cJSON_AddObjectToObject(o, "rejected");
  for (int i = 0; i < ES_REJ_COUNT; i++)
    cJSON_AddNumberToObject(rej, es__reject_name((es_reject_t)i),
                            (double)atomic_load(&s->c.rejected[i]));
  es__reply_json(r, 200, o);
}

static void dashboard(es_req_t *r) {
  char *body = malloc(es__dashboard_html_len + 1);
  if (!body) {
    es__reply_error(r, 503, "out of memory");
    return;
  }
  memcpy(body, es__dashboard_html, es__dashboard_html_len);
  body[es__dashboard_html_len] = '\0';
  es__reply(r, 200, body, es__dashboard_html_len, "text/html; charset=utf-8");
}

static void simple(es_req_t *r, int status, const char *json) {
  size_t n = strlen(json);
  char *body = malloc(n + 1);
  if (!body) {
    es__reply_error(r, 503, "out of memory");
    return;
  }
  memcpy(body, json, n + 1);
  es__reply(r, status, body, n, "application/json");
}

void es__handle_ops(es_req_t *r) {
  es_server_t *s = r->srv;
  switch (r->route.id) {
  case ES_R_DASHBOARD: dashboard(r); break;
  case ES_R_HEALTH: health(r); break;
  case ES_R_METRICS: metrics(r); break;
  case ES_R_SYSTEM_STATUS: system_status(r); break;
  case ES_R_HARDWARE: hardware(r); break;
  case ES_R_ESTIMATE: estimate(r); break;
  case ES_R_OPTIMIZE: optimize(r); break;
  case ES_R_CACHE_CLEAR: es__cache_clear_endpoint(r); break;
  case ES_R_V1_STATUS: status(r); break;
  case ES_R_V2:
    simple(r, 200,
           "{\"name\":\"edgeserve\",\"version\":\"" ES_VERSION_STRING
           "\",\"extensions\":[\"model_repository\",\"statistics\"]}\n");
    break;
  case ES_R_V2_LIVE: simple(r, 200, "{\"live\":true}\n"); break;
  case ES_R_V2_READY: {
    int total, ready = count_ready(s, &total);
    int ok = ready > 0 && !atomic_load(&s->stopping);
    simple(r, ok ? 200 : 503, ok ? "{\"ready\":true}\n" : "{\"ready\":false}\n");
    break;
  }
  default: es__reply_error(r, 404, "no endpoint at %s", r->path); break;
  }
}
