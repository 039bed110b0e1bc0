/*
 * server_impl.h - the server's internal state, shared by its modules:
 *
 *   http.c      libmicrohttpd glue: connections, bodies, auth, CORS, gzip,
 *               slow clients; a request enters here (es__http_*)
 *   router.c    method + path -> endpoint
 *   batcher.c   per-model queues: priorities, deadlines, bounds, batches
 *               run on the scheduler; a request waits here
 *   infer.c     /v1/classify and /v2/models/{m}/infer: parse, cache,
 *               submit, reply; where a request is computed and measured
 *   models.c    repository endpoints, feedback, training jobs
 *   ops.c       health, metrics, status, hardware, estimate, optimize,
 *               caches, dashboard
 *   server.c    lifecycle and the maintenance thread
 */
#ifndef ES_SERVER_IMPL_H
#define ES_SERVER_IMPL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "edgeserve/backend.h"
#include "edgeserve/budget.h"
#include "edgeserve/cache.h"
#include "edgeserve/config.h"
#include "edgeserve/hw.h"
#include "edgeserve/latency.h"
#include "edgeserve/metrics.h"
#include "edgeserve/repo.h"
#include "edgeserve/sched.h"
#include "edgeserve/store.h"
#include "edgeserve/server.h"
#include "edgeserve/strategy.h"
#include "edgeserve/sysmetrics.h"
#include "router.h"
#include "sb.h"

typedef struct es_server es_server_t;
struct cJSON;
typedef struct es_mstate es_mstate_t;
typedef struct es_job es_job_t;
typedef struct es_req es_req_t;

/* Why a request was refused; counted per reason and exported. */
typedef enum {
  ES_REJ_QUEUE_FULL = 0, /* 503: the model's queue is at its limit */
  ES_REJ_DEADLINE,       /* 504: the deadline passed before work started */
  ES_REJ_BUDGET,         /* 503: the memory budget refused the work */
  ES_REJ_CANCELLED,      /* the client went away before work started */
  ES_REJ_INVALID,        /* 4xx: malformed or invalid request */
  ES_REJ_UNAVAILABLE,    /* 503: shutting down, or the model failed to load */
  ES_REJ_COUNT
} es_reject_t;

const char *es__reject_name(es_reject_t r);

/* ---- a job: the inference work of one request, queued in a batcher ---- */
struct es_job {
  es_job_t *next;
  es_req_t *req; /* the HTTP request waiting for it */
  int prio;
  int64_t enq_us, deadline_us; /* monotonic; deadline 0: none */
  es_served_t *served;         /* a reference, released by the request */
  es_infer_item_t *items;
  size_t nitems;
  const uint8_t *skip; /* per item: nonzero = already answered (a cache hit); NULL: none */
  int status;          /* 0, ES_ETIMEDOUT, ES_ECANCELED, or the backend's error */
  int64_t start_us, done_us;
  es_error_t err;
};

/* ---- per-model serving state ---- */
typedef struct es_batcher {
  pthread_mutex_t lock;
  pthread_cond_t more; /* signalled when a job arrives (delayed batching) */
  es_job_t *head[ES_SCHED_NPRIO], *tail[ES_SCHED_NPRIO];
  int queued[ES_SCHED_NPRIO];
  int total;  /* queued jobs, all priorities */
  int active; /* drain tasks scheduled or running */
} es_batcher_t;

/* Metric series of one model version, looked up once per version. */
typedef struct es_mseries {
  int version;
  es_metric_t *ok, *fail[7], *count, *exec, *req_dur, *queue_dur, *infer_dur, *pending, *hits,
      *misses;
} es_mseries_t;

/* What the quality manager last decided for a model (quality.c). */
typedef struct es_qpub {
  int valid;
  int level, signal; /* es_load_level_t, es_load_signal_t */
  int rung, target;  /* served rung, the manager's rung */
  int rungs;         /* ladder length */
  char variant[64];  /* served file */
  uint64_t down, up; /* switches */
  char reason[160];  /* the last switch's reason */
} es_qpub_t;

struct es_quality_mgr;

struct es_mstate {
  es_mstate_t *next;
  char name[ES_MODEL_NAME_MAX];
  es_server_t *srv;
  es_batcher_t b;
  pthread_mutex_t slock; /* guards series */
  es_mseries_t series;
  es_latmodel_t *lat;
  _Atomic uint64_t requests, items, batches, errors;
  _Atomic uint64_t item_cost;     /* EWMA of the backend's time per item, 1/16 us */
  _Atomic int64_t feedback_total; /* rows of feedback, counted once then kept; -1 unknown */
  /* quality.c (maintenance thread only, but q_pub: under slock) */
  struct es_quality_mgr *q;
  int q_nrungs;
  char q_names[8][64];
  int64_t q_retry_us;
  es_qpub_t q_pub;
};

/* ---- one HTTP request (MHD's con_cls) ---- */
struct es_req {
  es_server_t *srv;
  struct MHD_Connection *conn;
  es_route_t route;
  int route_status;
  char method[8];
  char path[160]; /* for messages, truncated */
  int64_t t0_us;
  es_sb_t body;
  int too_large;
  int suspended;
  /* the reply, once known */
  int status;
  char *reply;
  size_t reply_len;
  const char *content_type;
  int retry_after; /* seconds, for 503 */
  /* inference state */
  es_job_t job;
  es_mstate_t *ms;
  void *work;                     /* the endpoint's own state, freed by work_free */
  void (*work_done)(es_req_t *r); /* runs on the worker when the job completes */
  void (*work_free)(es_req_t *r);
};

/* ---- connection tracking (slow clients) ---- */
typedef struct es_conn {
  struct es_conn *prev, *next;
  int fd;
  int64_t since_us; /* connection start or end of the last request */
  int in_request;
} es_conn_t;

typedef struct es_counters {
  _Atomic uint64_t requests, errors, rejected[ES_REJ_COUNT], status[6]; /* 1xx..5xx */
} es_counters_t;

struct es_server {
  const es_config_t *cfg;
  es_config_t *own_cfg; /* when params had none */
  es_hw_t hw;
  es_plan_t plan;
  char hw_root[256];
  FILE *log;
  pthread_mutex_t log_lock;
  es_sb_t logbuf;

  es_budget_t *budget;
  es_sched_t *sched;
  es_metrics_t *metrics;
  es_inference_metrics_t im;
  es_metric_family_t *f_http, *f_rejected, *f_http_dur;
  es_latmon_t *lat;
  es_repo_t *repo;
  es_sysmon_t *sysmon;
  es_cache_t *cache; /* NULL: no response cache */
  es_store_t *store; /* NULL: no database (store_error says why) */
  char store_error[320];
  int store_was_healthy; /* maintenance thread: logs the database's health changes */
  int64_t store_warned_us;
  pthread_mutex_t jobs_lock;
  void *jobs; /* training jobs (jobs.c) */

  pthread_mutex_t mlock;
  es_mstate_t *models;

  struct MHD_Daemon *mhd;
  int port;
  char url[300];
  char host[256];

  /* settings */
  char api_key[256];
  char cors[1024];
  uint64_t max_body, gzip_min;
  int64_t keep_alive_us, request_timeout_us;
  int io_threads;
  int64_t inline_max_us;
  unsigned quality_signals; /* bit es_load_signal_t: weighed by the quality manager */

  pthread_mutex_t conn_lock;
  es_conn_t *conns;

  es_counters_t c;
  _Atomic uint64_t rps_milli; /* requests/s over the last second, x1000 */
  int64_t start_us;
  _Atomic int stopping;

  pthread_t maint;
  int maint_started;
  pthread_mutex_t maint_lock;
  pthread_cond_t maint_cond;
};

/* server.c */
es_mstate_t *es__mstate(es_server_t *s, const char *name);
void es__series(es_mstate_t *ms, int version, es_mseries_t *out);
void es__log(es_server_t *s, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void es__log_flush(es_server_t *s);
int64_t es__now_us(void);

/* batcher.c */
void es__batcher_init(es_batcher_t *b);
void es__batcher_destroy(es_batcher_t *b);
/* Queues job for model ms. Returns 0, ES_EFULL (queue at its limit),
 * ES_ESTATE (shutting down) or ES_ENOMEM. On success the job completes
 * exactly once through es__job_complete(). */
int es__batcher_submit(es_mstate_t *ms, es_job_t *job);
/* Runs job at once on the calling thread when that is cheaper than a trip
 * through the queue: the model's queue is empty, an inference thread's
 * share is free, the job is at most 8 items and the model's measured cost
 * per item times its items is under server.inline_max. Returns 1 when it
 * ran (the job was completed through es__job_complete), 0 otherwise. */
int es__batcher_run_inline(es_mstate_t *ms, es_job_t *job);

/* http.c */
int es__http_start(es_server_t *s, es_error_t *err);
void es__http_stop(es_server_t *s);
void es__http_reap_slow(es_server_t *s, int64_t now_us);
/* Sets the reply of r: status, body (taken over: freed by the server). */
void es__reply(es_req_t *r, int status, char *body, size_t len, const char *content_type);
/* A JSON error reply {"error": msg} with status. */
void es__reply_error(es_req_t *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Resumes the suspended request r: its reply has been set (worker threads). */
void es__resume(es_req_t *r);
/* The value of request header `name`, or NULL. */
const char *es__header(es_req_t *r, const char *name);

/* endpoint handlers: each sets a reply, or suspends r for a job (infer.c) */
void es__handle_infer(es_req_t *r);
void es__handle_models(es_req_t *r);
void es__handle_ops(es_req_t *r);
void es__job_complete(es_job_t *job);

/* models.c */
void es__reply_json(es_req_t *r, int status, struct cJSON *root);
struct cJSON *es__models_json(es_server_t *s);
/* The body as a JSON object (empty: {} when allow_empty); NULL with a 400
 * reply set when it is not valid UTF-8 or not a JSON object. */
struct cJSON *es__parse_body(es_req_t *r, int allow_empty);

/* respcache.c */
int es__cache_lookup(es_req_t *r, es_infer_item_t *it, char **hold);
void es__cache_store(es_server_t *s, es_served_t *sv, const es_infer_item_t *it);
void es__cache_drop_model(es_server_t *s, const char *name);
struct cJSON *es__cache_json(es_server_t *s);
void es__optimize_caches(es_server_t *s, struct cJSON *actions);
void es__cache_clear_endpoint(es_req_t *r);
int es__cache_warm_model(es_server_t *s, const char *name, int limit);

/* quality.c */
/* One evaluation step for every model with requests: samples its load,
 * updates its manager, switches its variant when the manager says so. The
 * maintenance thread's, once a second. */
void es__quality_tick(es_server_t *s, int64_t now_us);
/* Adds "quality" (level, variant, rungs, switches) to a model's status
 * object; returns the model's load level, or -1 when not evaluated yet. */
int es__quality_json(es_mstate_t *ms, struct cJSON *model);
/* Parses quality.signals ("queue,p95,...") into a bit mask. Returns 0, or
 * ES_EINVAL naming the unknown signal. */
int es__quality_signals(const char *list, unsigned *mask, es_error_t *err);

/* jobs.c */
void es__handle_jobs(es_req_t *r);
void es__jobs_reap(es_server_t *s, int all);

/* dashboard.html, embedded by the build (cmake/embed.cmake) */
extern const unsigned char es__dashboard_html[];
extern const size_t es__dashboard_html_len;

#endif
