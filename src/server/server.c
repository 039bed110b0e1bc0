/*
 * server.c - the server's lifecycle and its maintenance thread.
 *
 * es_server_new() builds the parts in dependency order: hardware and plan,
 * memory budget, scheduler (inference workers on the plan's CPUs), metrics,
 * latency monitor, model repository, HTTP. The maintenance thread wakes
 * every second: repository poll (hot reload, keep-alive), slow-client
 * reaping, memory sampling into the budget, log flushing.
 *
 * Shutdown runs in reverse: stop accepting (MHD quiesce), mark stopping so
 * that batchers refuse new work, drain the scheduler (every queued job
 * completes and resumes its connection), stop HTTP, free the rest.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/fail.h"
#include "edgeserve/memstat.h"
#include "edgeserve/quality.h"
#include "server_impl.h"

int64_t es__now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *es__reject_name(es_reject_t r) {
  static const char *n[ES_REJ_COUNT] = {"queue_full", "deadline", "budget",
                                        "cancelled",  "invalid",  "unavailable"};
  return r < ES_REJ_COUNT ? n[r] : "?";
}

/* ---- logging: logfmt lines into a 64 KiB buffer, flushed when full, on
 * errors, and every second ---- */

void es__log_flush(es_server_t *s) {
  pthread_mutex_lock(&s->log_lock);
  if (s->logbuf.len) {
    fwrite(s->logbuf.data, 1, s->logbuf.len, s->log);
    fflush(s->log);
    s->logbuf.len = 0;
  }
  pthread_mutex_unlock(&s->log_lock);
}

void es__log(es_server_t *s, const char *level, const char *fmt, ...) {
  char line[1024];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000, level);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = strlen(line);
  line[len++] = '\n';
  pthread_mutex_lock(&s->log_lock);
  if (s->logbuf.len + len > 64 * 1024) {
    fwrite(s->logbuf.data, 1, s->logbuf.len, s->log);
    s->logbuf.len = 0;
  }
  es_sb_put(&s->logbuf, line, len);
  int urgent = strcmp(level, "error") == 0 || s->logbuf.oom;
  if (urgent) {
    if (s->logbuf.len)
      fwrite(s->logbuf.data, 1, s->logbuf.len, s->log);
    else
      fwrite(line, 1, len, s->log);
    fflush(s->log);
    s->logbuf.len = 0;
    s->logbuf.oom = 0;
  }
  pthread_mutex_unlock(&s->log_lock);
}

/* ---- per-model state ---- */

es_mstate_t *es__mstate(es_server_t *s, const char *name) {
  pthread_mutex_lock(&s->mlock);
  es_mstate_t *ms = s->models;
  while (ms && strcmp(ms->name, name) != 0) ms = ms->next;
  if (!ms && (ms = calloc(1, sizeof *ms))) {
    snprintf(ms->name, sizeof ms->name, "%s", name);
    ms->srv = s;
    es__batcher_init(&ms->b);
    pthread_mutex_init(&ms->slock, NULL);
    ms->series.version = -1;
    ms->feedback_total = -1;
    es_latmon_model_params_t lp = es_latmon_model_default_params();
    es_model_conf_t conf;
    if (es_repo_conf(s->repo, name, &conf) == 0 && conf.sla_p99_us > 0)
      lp.sla[ES_LAT_TOTAL] = (es_lat_sla_t){.q = 0.99, .bound_us = (uint64_t)conf.sla_p99_us};
    if (s->lat && es_latmon_model(s->lat, name, &lp, &ms->lat, NULL))
      ms->lat = es_latmon_find(s->lat, name);
    ms->next = s->models;
    s->models = ms;
  }
  pthread_mutex_unlock(&s->mlock);
  return ms;
}

/* The metric series of (model, version), looked up once per version. */
void es__series(es_mstate_t *ms, int version, es_mseries_t *out) {
  pthread_mutex_lock(&ms->slock);
  if (ms->series.version != version) {
    es_server_t *s = ms->srv;
    es_inference_metrics_t *im = &s->im;
    es_mseries_t n = {.version = version};
    char v[16];
    snprintf(v, sizeof v, "%d", version);
    const char *mv[] = {ms->name, v};
    static const char *reasons[7] = {"rejected", "canceled", "timeout", "invalid",
                                     "memory",   "backend",  "other"};
    es_metric_series(im->requests, (const char *[]){ms->name, v, "success"}, &n.ok, NULL);
    for (int i = 0; i < 7; i++)
      es_metric_series(im->failures, (const char *[]){ms->name, v, reasons[i]}, &n.fail[i], NULL);
    es_metric_series(im->inferences, mv, &n.count, NULL);
    es_metric_series(im->executions, mv, &n.exec, NULL);
    es_metric_series(im->request_duration, mv, &n.req_dur, NULL);
    es_metric_series(im->queue_duration, mv, &n.queue_dur, NULL);
    es_metric_series(im->compute_duration, (const char *[]){ms->name, v, "infer"}, &n.infer_dur,
                     NULL);
    es_metric_series(im->pending, mv, &n.pending, NULL);
    es_metric_series(im->cache_hits, mv, &n.hits, NULL);
    es_metric_series(im->cache_misses, mv, &n.misses, NULL);
    ms->series = n;
  }
  *out = ms->series;
  pthread_mutex_unlock(&ms->slock);
}

/* ---- the database's health, at scrape time ---- */

static double store_stat(void *ctx, const char *const *values) {
  es_server_t *s = ctx;
  es_store_stats_t st;
  es_store_stats(s->store, &st);
  const char *v = values ? values[0] : NULL;
  if (!v) return st.healthy;
  if (!strcmp(v, "written")) return (double)st.history_written;
  if (!strcmp(v, "dropped_full")) return (double)st.dropped_full;
  if (!strcmp(v, "dropped_error")) return (double)st.dropped_error;
  if (!strcmp(v, "sampled_out")) return (double)st.sampled_out;
  return 0;
}

static int store_metrics(es_server_t *s, es_error_t *err) {
  es_family_params_t fp = es_family_default_params();
  es_metric_family_t *rows, *healthy;
  fp.name = "edgeserve_history_rows_total";
  fp.help = "history rows by what became of them: written, dropped_full (queue full), "
            "dropped_error (the write failed), sampled_out";
  fp.labels = (const char *[]){"outcome"};
  fp.nlabels = 1;
  if (es_metrics_register(s->metrics, &fp, &rows, err)) return err ? err->code : ES_EINVAL;
  fp = es_family_default_params();
  fp.type = ES_METRIC_GAUGE;
  fp.name = "edgeserve_database_healthy";
  fp.help = "1 when the database's last write succeeded, 0 while writes fail (disk full...)";
  if (es_metrics_register(s->metrics, &fp, &healthy, err)) return err ? err->code : ES_EINVAL;
  static const char *outcomes[] = {"written", "dropped_full", "dropped_error", "sampled_out"};
  es_metric_t *m;
  for (int i = 0; i < 4; i++)
    if (es_metric_series(rows, (const char *[]){outcomes[i]}, &m, err) == 0)
      es_metric_set_callback(m, store_stat, s);
  if (es_metric_series(healthy, NULL, &m, err) == 0) es_metric_set_callback(m, store_stat, s);
  return 0;
}

/* Logs the database going unhealthy (disk full, read-only...) at once, a
 * reminder every minute while it lasts, and its recovery. */
static void store_health(es_server_t *s, int64_t now) {
  if (!s->store) return;
  es_store_stats_t st;
  es_store_stats(s->store, &st);
  if (!st.healthy && (s->store_was_healthy || now - s->store_warned_us >= 60000000)) {
    es__log(s, "error",
            "component=store msg=\"database writes failing: %s; serving continues, history "
            "dropped (%llu rows so far)\"",
            st.last_error, (unsigned long long)(st.dropped_error + st.dropped_full));
    s->store_warned_us = now;
  } else if (st.healthy && !s->store_was_healthy) {
    es__log(s, "info", "component=store msg=\"database writes succeed again: history resumed\"");
  }
  s->store_was_healthy = st.healthy;
}

/* ---- repository events ---- */

static void on_repo_event(void *ud, const es_repo_event_t *ev) {
  es_server_t *s = ud;
  static const char *kinds[] = {"", "loaded", "swapped", "unloaded", "failed", "refused"};
  const char *level = ev->kind >= ES_REPO_FAILED ? "warn" : "info";
  if (ev->kind == ES_REPO_SWAPPED || ev->kind == ES_REPO_UNLOADED)
    es__cache_drop_model(s, ev->name); /* answers of the old version go */
  if (s->store)
    es_store_event_add(s->store, ev->name, kinds[ev->kind], ev->version, ev->message, NULL);
  es__log(s, level, "component=repo event=%s model=%s version=%d old_version=%d msg=\"%s\"",
          kinds[ev->kind], ev->name, ev->version, ev->old_version, ev->message ? ev->message : "");
}

/* ---- maintenance ---- */

static void *maintenance(void *arg) {
  es_server_t *s = arg;
  uint64_t last_req = atomic_load(&s->c.requests);
  int64_t last_t = es__now_us();
  pthread_mutex_lock(&s->maint_lock);
  while (!atomic_load(&s->stopping)) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&s->maint_cond, &s->maint_lock, &ts);
    if (atomic_load(&s->stopping)) break;
    pthread_mutex_unlock(&s->maint_lock);
    int64_t now = es__now_us();
    uint64_t req = atomic_load(&s->c.requests);
    if (now > last_t)
      atomic_store(&s->rps_milli, (req - last_req) * 1000000000ull / (uint64_t)(now - last_t));
    last_req = req, last_t = now;
    es_repo_poll(s->repo, now);
    es__http_reap_slow(s, now);
    es__jobs_reap(s, 0);
    store_health(s, now);
    es__quality_tick(s, now);
    es_memstat_t m;
    if (es_memstat_read(&m, s->hw_root[0] ? s->hw_root : NULL, NULL) == 0)
      es_budget_observe(s->budget, &m);
    es__log_flush(s);
    pthread_mutex_lock(&s->maint_lock);
  }
  pthread_mutex_unlock(&s->maint_lock);
  return NULL;
}

/* ---- lifecycle ---- */

es_server_params_t es_server_default_params(void) {
  es_server_params_t p;
  memset(&p, 0, sizeof p);
  return p;
}

/* The plan is made from the machine; the process may have been started on
 * fewer CPUs (taskset, a cpuset): keep the inference CPUs within them, so
 * pinning never moves a worker outside what it was given. */
static void within_affinity(es_server_t *s) {
  cpu_set_t cur;
  if (sched_getaffinity(0, sizeof cur, &cur)) return;
  es_cpuset_t keep, all;
  es_cpuset_clear(&keep);
  es_cpuset_clear(&all);
  for (int i = 0; i < CPU_SETSIZE; i++)
    if (CPU_ISSET(i, &cur)) es_cpuset_add(&all, i);
  for (int i = 0, n = es_cpuset_count(&s->plan.inference_cpus); i < n; i++) {
    int cpu = es_cpuset_nth(&s->plan.inference_cpus, i);
    if (es_cpuset_has(&all, cpu)) es_cpuset_add(&keep, cpu);
  }
  if (es_cpuset_count(&s->plan.inference_cpus) == 0 ||
      es_cpuset_count(&keep) == es_cpuset_count(&s->plan.inference_cpus))
    return;
  s->plan.inference_cpus = es_cpuset_count(&keep) ? keep : all;
  if (s->plan.inference_threads > es_cpuset_count(&s->plan.inference_cpus))
    s->plan.inference_threads = es_cpuset_count(&s->plan.inference_cpus);
  es__log(s, "info",
          "component=server msg=\"inference CPUs limited to the %d this process may use\"",
          es_cpuset_count(&s->plan.inference_cpus));
}

static int write_ready(const char *path, const char *url, es_error_t *err) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return es__fail(err, ES_EIO, -1, "cannot write %s: %s", tmp, strerror(errno));
  fprintf(f, "%s\n", url);
  if (fclose(f) || rename(tmp, path))
    return es__fail(err, ES_EIO, -1, "cannot write %s: %s", path, strerror(errno));
  return 0;
}

static void settings(es_server_t *s) {
  const es_config_t *c = s->cfg;
  snprintf(s->host, sizeof s->host, "%s", es_config_get_str(c, "server.host"));
  s->port = (int)es_config_get_int(c, "server.port");
  snprintf(s->api_key, sizeof s->api_key, "%s", es_config_get_str(c, "server.api_key"));
  snprintf(s->cors, sizeof s->cors, "%s", es_config_get_str(c, "server.cors"));
  s->max_body = (uint64_t)es_config_get_int(c, "server.max_body");
  s->gzip_min = (uint64_t)es_config_get_int(c, "server.gzip_min");
  s->keep_alive_us = es_config_get_int(c, "server.keep_alive");
  s->request_timeout_us = es_config_get_int(c, "server.request_timeout");
  s->io_threads = (int)es_config_get_int(c, "server.io_threads");
  s->inline_max_us = es_config_get_int(c, "server.inline_max");
  if (s->io_threads <= 0) { /* one per CPU this process may use, at most 4 */
    int n = es_hw_effective_cpus(&s->hw);
    cpu_set_t cur;
    if (sched_getaffinity(0, sizeof cur, &cur) == 0 && CPU_COUNT(&cur) < n) n = CPU_COUNT(&cur);
    s->io_threads = n < 1 ? 1 : n > 4 ? 4 : n;
  }
}

es_server_t *es_server_new(const es_server_params_t *p, es_error_t *err) {
  es_server_params_t dp = es_server_default_params();
  if (!p) p = &dp;
  es_server_t *s = calloc(1, sizeof *s);
  if (!s) {
    es__fail(err, ES_ENOMEM, -1, "out of memory");
    return NULL;
  }
  s->log = p->log ? p->log : stderr;
  pthread_mutex_init(&s->log_lock, NULL);
  pthread_mutex_init(&s->mlock, NULL);
  pthread_mutex_init(&s->conn_lock, NULL);
  pthread_mutex_init(&s->maint_lock, NULL);
  pthread_mutex_init(&s->jobs_lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->maint_cond, &ca);
  pthread_condattr_destroy(&ca);
  s->start_us = es__now_us();
  if (p->hw_root) snprintf(s->hw_root, sizeof s->hw_root, "%s", p->hw_root);
  s->cfg = p->config;
  if (!s->cfg && !(s->cfg = s->own_cfg = es_config_new())) {
    es__fail(err, ES_ENOMEM, -1, "out of memory");
    goto fail;
  }
  if (es_hw_detect(&s->hw, p->hw_root, err)) goto fail;
  if (es_plan_make(&s->hw, s->cfg, &s->plan, err)) goto fail;
  if (!p->hw_root) within_affinity(s);
  settings(s);
  if (es__quality_signals(es_config_get_str(s->cfg, "quality.signals"), &s->quality_signals, err))
    goto fail;

  es_budget_params_t bp = es_budget_default_params();
  bp.tier = es_budget_tier_for(s->plan.total);
  bp.budget = s->plan.budget;
  bp.limit[ES_BUDGET_MODEL] = s->plan.model_budget;
  bp.limit[ES_BUDGET_CACHE] = s->plan.cache_budget;
  bp.limit[ES_BUDGET_WORK] = s->plan.work;
  bp.safety = s->plan.safety_margin;
  bp.warning = s->plan.warning_pct / 100.0;
  bp.critical = s->plan.critical_pct / 100.0;
  if (!(s->budget = es_budget_new(&bp, err))) goto fail;

  es_sched_params_t sp = es_sched_default_params();
  sp.nworkers = s->plan.inference_threads;
  if (s->plan.pin) sp.cpus = s->plan.inference_cpus;
  if (!(s->sched = es_sched_new(&sp, err))) goto fail;

  es_sysmon_params_t smp = es_sysmon_default_params();
  smp.metrics.root = p->hw_root;
  smp.metrics.data_dir =
      es_config_get_str(s->cfg, "server.data")[0] ? es_config_get_str(s->cfg, "server.data") : NULL;
  if (smp.metrics.data_dir && access(smp.metrics.data_dir, F_OK)) smp.metrics.data_dir = NULL;
  if (!(s->sysmon = es_sysmon_start(s->sched, &smp, err))) goto fail;

  if (!(s->metrics = es_metrics_new(NULL, err))) goto fail;
  if (es_metrics_register_inference(s->metrics, &s->im, err)) goto fail;
  es_family_params_t fp = es_family_default_params();
  fp.name = "edgeserve_http_requests_total";
  fp.help = "HTTP requests answered, by endpoint and status code";
  fp.type = ES_METRIC_COUNTER;
  fp.labels = (const char *[]){"endpoint", "code"};
  fp.nlabels = 2;
  if (es_metrics_register(s->metrics, &fp, &s->f_http, err)) goto fail;
  es_latmon_params_t lp = es_latmon_default_params();
  lp.metrics = s->metrics;
  lp.inference = &s->im;
  lp.observe_durations = false; /* the server observes per version itself */
  if (!(s->lat = es_latmon_new(&lp, err))) goto fail;

  /* the response cache: at most cache.entries answers within the cache
   * budget's bytes, TTL from cache.ttl */
  if (s->plan.cache_entries > 0 && s->plan.cache_budget >= 64 * 1024) {
    es_cache_memory_params_t cp = es_cache_memory_default_params();
    cp.max_bytes = s->plan.cache_budget;
    cp.ttl_us = s->plan.cache_ttl_us;
    cp.max_entries = s->plan.cache_entries;
    if (!(s->cache = es_cache_memory_new(&cp, err))) goto fail;
  }
  /* the database */
  const char *data = es_config_get_str(s->cfg, "server.data");
  if (data && data[0]) {
    if (mkdir(data, 0755) && errno != EEXIST) { /* as an unusable database: serve without */
      snprintf(s->store_error, sizeof s->store_error, "cannot create the data directory %s: %s",
               data, strerror(errno));
      es__log(s, "error", "component=store msg=\"%s: serving without a database\"", s->store_error);
      data = NULL;
    }
  }
  if (data && data[0]) {
    char path[4200];
    snprintf(path, sizeof path, "%s/edgeserve.db", data);
    es_store_params_t stp = es_store_default_params();
    stp.path = path;
    stp.history_sample = (double)es_config_get_int(s->cfg, "server.history_pct") / 100.0;
    stp.retention_s = es_config_get_int(s->cfg, "server.retention") / 1000000;
    es_error_t serr = {0};
    if (!(s->store = es_store_open(&stp, &serr))) {
      /* serving goes on without history and feedback; /health says so */
      snprintf(s->store_error, sizeof s->store_error, "%s", serr.msg);
      es__log(s, "error", "component=store msg=\"%s: serving without a database\"", serr.msg);
    }
  } else if (!s->store_error[0]) {
    snprintf(s->store_error, sizeof s->store_error, "server.data is empty: no database");
  }
  if (s->store && store_metrics(s, err)) goto fail;
  s->store_was_healthy = 1;

  es_repo_params_t rp = es_repo_default_params();
  rp.budget = s->budget;
  rp.opts.nthreads = s->plan.inference_threads;
  rp.opts.max_batch = (int)s->plan.max_batch;
  rp.on_event = on_repo_event;
  rp.ud = s;
  if (p->nmodel_files == 0) rp.dir = es_config_get_str(s->cfg, "server.models");
  if (!(s->repo = es_repo_new(&rp, err))) goto fail;
  if (p->nmodel_files) {
    for (int i = 0; i < p->nmodel_files; i++)
      if (es_repo_add_file(s->repo, p->model_files[i], NULL, NULL, err)) goto fail;
  } else {
    int n = es_repo_scan(s->repo, err);
    if (n < 0) goto fail;
    if (n == 0) es__log(s, "warn", "component=repo msg=\"no model ready in %s\"", rp.dir);
  }

  /* warm the cache from the history's most frequent inputs */
  if (s->cache && s->store) {
    int n = es_repo_list(s->repo, NULL, 0);
    es_repo_entry_t *all = n > 0 ? calloc((size_t)n, sizeof *all) : NULL;
    if (all) {
      n = es_repo_list(s->repo, all, n);
      for (int i = 0; i < n; i++)
        if (all[i].state == ES_MODEL_READY) {
          int w = es__cache_warm_model(s, all[i].name, 500);
          if (w) es__log(s, "info", "component=cache model=%s warmed=%d", all[i].name, w);
        }
      free(all);
    }
  }

  if (es__http_start(s, err)) goto fail;
  if (pthread_create(&s->maint, NULL, maintenance, s) == 0) s->maint_started = 1;
  es__log(s, "info",
          "component=server msg=\"serving\" url=%s io_threads=%d workers=%d "
          "strategy=%s budget=%llu start_ms=%.1f",
          s->url, s->io_threads, s->plan.inference_threads, es_strategy_name(s->plan.strategy),
          (unsigned long long)s->plan.budget, (double)(es__now_us() - s->start_us) / 1000.0);
  es__log_flush(s);
  if (p->ready_file && write_ready(p->ready_file, s->url, err)) goto fail;
  return s;
fail:
  if (err)
    es__log(s, "error", "component=server msg=\"%s\"", err->msg[0] ? err->msg : "start failed");
  es_server_free(s);
  return NULL;
}

int es_server_port(const es_server_t *s) { return s->port; }
const char *es_server_url(const es_server_t *s) { return s->url; }

void es_server_free(es_server_t *s) {
  if (!s) return;
  if (s->mhd) MHD_quiesce_daemon(s->mhd); /* no new connections */
  pthread_mutex_lock(&s->maint_lock);
  atomic_store(&s->stopping, 1);
  pthread_cond_broadcast(&s->maint_cond);
  pthread_mutex_unlock(&s->maint_lock);
  if (s->maint_started) pthread_join(s->maint, NULL);
  /* every queued job completes and resumes its connection */
  es_sysmon_stop(s->sysmon);
  if (s->sched) es_sched_shutdown(s->sched, ES_SCHED_DRAIN);
  /* give resumed replies a moment to go out */
  for (int i = 0; i < 50 && s->mhd; i++) {
    int busy = 0;
    pthread_mutex_lock(&s->conn_lock);
    for (es_conn_t *c = s->conns; c; c = c->next) busy |= c->in_request;
    pthread_mutex_unlock(&s->conn_lock);
    if (!busy) break;
    usleep(10000);
  }
  es__http_stop(s);
  es_sched_free(s->sched);
  es_mstate_t *ms = s->models;
  while (ms) {
    es_mstate_t *next = ms->next;
    es__batcher_destroy(&ms->b);
    pthread_mutex_destroy(&ms->slock);
    es_quality_free(ms->q);
    free(ms);
    ms = next;
  }
  es__jobs_reap(s, 1);
  es_repo_free(s->repo);
  es_cache_free(s->cache);
  es_store_close(s->store);
  es_latmon_free(s->lat);
  es_metrics_free(s->metrics);
  es_budget_free(s->budget);
  es_config_free(s->own_cfg);
  es__log(s, "info", "component=server msg=\"stopped\"");
  es__log_flush(s);
  es_sb_free(&s->logbuf);
  pthread_mutex_destroy(&s->log_lock);
  pthread_mutex_destroy(&s->mlock);
  pthread_mutex_destroy(&s->conn_lock);
  pthread_mutex_destroy(&s->maint_lock);
  pthread_mutex_destroy(&s->jobs_lock);
  pthread_cond_destroy(&s->maint_cond);
  free(s);
}
