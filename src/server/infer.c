/*
 * infer.c - where a request is computed and measured: POST /v1/classify and
 * POST /v2/models/{m}/infer.
 *
 * Both parse their body into items (texts with k and threshold), hold a
 * reference to the model's current version, and submit one job to the
 * model's batcher with the request's priority and deadline. The connection
 * waits suspended; es__job_complete() runs on the worker that computed the
 * batch, writes the reply (the /v1 decision policy or the v2 tensors) and
 * resumes it. The reference is returned when the request is freed, so a
 * version swapped out meanwhile stays loaded until its last reply is out.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server_impl.h"

#define MAX_ITEMS 1024         /* texts in one request */
#define MAX_TEXT  (64 * 1024)  /* bytes in one text */
#define MAX_PREDS (256 * 1024) /* items x labels asked for in one request */

typedef struct infer_work {
  cJSON *root; /* the parsed body: item texts point into it */
  int v2;
  int single; /* /v1 with "text" (not "texts") */
  int k;      /* labels asked for (-1: all) */
  int kcap;   /* room per item: max(k, alternatives), or nlabels */
  float threshold;
  char id[128]; /* v2 "id", echoed */
  es_label_prob_t *preds;
  uint8_t *cached; /* per item: served from the cache */
  char **hold;     /* per item: the cached value its labels point into */
} infer_work_t;

static void work_free(es_req_t *r) {
  infer_work_t *w = r->work;
  if (!w) return;
  cJSON_Delete(w->root);
  free(w->preds);
  if (w->hold)
    for (size_t i = 0; i < r->job.nitems; i++) free(w->hold[i]);
  free(w->hold);
  free(w->cached);
  free(w);
  r->work = NULL;
}

static int parse_priority(const cJSON *v, int *out) {
  static const char *names[] = {"critical", "high", "normal", "low"};
  if (cJSON_IsNumber(v)) {
    if (v->valuedouble < 0 || v->valuedouble > 3 || v->valuedouble != (int)v->valuedouble)
      return -1;
    *out = (int)v->valuedouble;
    return 0;
  }
  if (!cJSON_IsString(v)) return -1;
  for (int i = 0; i < 4; i++)
    if (strcasecmp(v->valuestring, names[i]) == 0) return *out = i, 0;
  return -1;
}

/* Reads k, threshold, priority and timeout_ms from object o (the body for
 * /v1, "parameters" for v2). Returns 0, or -1 with the reply set. */
static int parse_params(es_req_t *r, const cJSON *o, infer_work_t *w, const es_model_conf_t *c,
                        int *prio, int64_t *timeout_us) {
  const cJSON *v;
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "k"))) {
    if (!cJSON_IsNumber(v) || v->valuedouble != (int)v->valuedouble ||
        (v->valuedouble < 1 && v->valuedouble != -1) || v->valuedouble > 100000) {
      es__reply_error(r, 400, "\"k\" must be a positive integer, or -1 for every label");
      return -1;
    }
    w->k = (int)v->valuedouble;
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "threshold"))) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1)) {
      es__reply_error(r, 400, "\"threshold\" must be a number from 0 to 1");
      return -1;
    }
    w->threshold = (float)v->valuedouble;
  }
  *prio = c->priority;
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "priority")) && parse_priority(v, prio)) {
    es__reply_error(r, 400, "\"priority\" must be critical, high, normal or low (or 0-3)");
    return -1;
  }
  *timeout_us = c->timeout_us;
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "timeout_ms"))) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0 && v->valuedouble <= 3600e3)) {
      es__reply_error(r, 400, "\"timeout_ms\" must be a number of milliseconds, 0 < t <= 3600000");
      return -1;
    }
    *timeout_us = (int64_t)(v->valuedouble * 1000);
  }
  return 0;
}

/* Checks one text; returns 0 or -1 with the reply set. */
static int check_text(es_req_t *r, const cJSON *t, size_t i, const char *field) {
  if (!cJSON_IsString(t)) {
    es__reply_error(r, 400, "%s[%zu] is not a string", field, i);
    return -1;
  }
  size_t n = strlen(t->valuestring);
  if (n > MAX_TEXT) {
    es__reply_error(r, 413, "%s[%zu] is %zu bytes; at most %d per text", field, i, n, MAX_TEXT);
    return -1;
  }
  const char *nl = memchr(t->valuestring, '\n', n);
  if (nl && nl != t->valuestring + n - 1) {
    es__reply_error(r, 400, "%s[%zu] contains a newline: send one line per text", field, i);
    return -1;
  }
  return 0;
}

static void add_texts(es_req_t *r, infer_work_t *w, const cJSON *arr, int *count, int *bad) {
  (void)r, (void)w;
  for (const cJSON *t = arr ? arr->child : NULL; t; t = t->next) {
    if (cJSON_IsArray(t)) {
      add_texts(r, w, t, count, bad);
      continue;
    }
    if (*bad) return;
    if (check_text(r, t, (size_t)*count, "texts")) {
      *bad = 1;
      return;
    }
    (*count)++;
  }
}

static void collect(const cJSON *arr, es_infer_item_t *items, int *n) {
  for (const cJSON *t = arr ? arr->child : NULL; t; t = t->next) {
    if (cJSON_IsArray(t)) {
      collect(t, items, n);
      continue;
    }
    items[*n].text = t->valuestring;
    items[*n].len = strlen(t->valuestring);
    (*n)++;
  }
}

static const char *default_model(es_server_t *s, char *buf, size_t cap) {
  es_repo_entry_t e[2];
  int n = es_repo_list(s->repo, e, 2);
  if (n < 1) return NULL;
  if (n == 1) {
    snprintf(buf, cap, "%s", e[0].name);
    return buf;
  }
  /* several: "media" when served (the bundled model), else the first */
  es_repo_entry_t *all = calloc((size_t)n, sizeof *all);
  if (!all) return NULL;
  n = es_repo_list(s->repo, all, n);
  snprintf(buf, cap, "%s", all[0].name);
  for (int i = 0; i < n; i++)
    if (strcmp(all[i].name, "media") == 0) snprintf(buf, cap, "media");
  free(all);
  return buf;
}

static void model_error(es_req_t *r, const char *name, int rc, const es_error_t *err) {
  if (rc == ES_ENOTFOUND) {
    es__reply_error(r, 404, "unknown model '%s' (GET /v1/models lists them)", name);
    return;
  }
  r->retry_after = 5;
  es__reply_error(r, 503, "model '%s' is not available: %s", name,
                  err->msg[0] ? err->msg : es_strerror(rc));
}

void es__handle_infer(es_req_t *r) {
  es_server_t *s = r->srv;
  int v2 = r->route.id == ES_R_V2_INFER;
  if (!es_utf8_valid(r->body.data ? r->body.data : "", r->body.len)) {
    es__reply_error(r, 400, "request body is not valid UTF-8");
    return;
  }
  if (r->body.len == 0) {
    es__reply_error(r, 400,
                    v2 ? "empty body: send {\"inputs\": [{\"name\": \"text\", "
                         "\"datatype\": \"BYTES\", \"shape\": [1], \"data\": [\"...\"]}]}"
                       : "empty body: send {\"text\": \"...\"} or {\"texts\": [...]}");
    return;
  }
  infer_work_t *w = calloc(1, sizeof *w);
  if (!w) {
    es__reply_error(r, 503, "out of memory");
    return;
  }
  r->work = w;
  r->work_free = work_free;
  w->v2 = v2;
  w->k = 1;
  w->root = cJSON_ParseWithLength(r->body.data, r->body.len);
  if (!w->root) {
    const char *at = cJSON_GetErrorPtr();
    long off = at && at >= r->body.data && at <= r->body.data + r->body.len
                   ? (long)(at - r->body.data)
                   : -1;
    es__reply_error(r, 400, "malformed JSON near byte %ld", off);
    return;
  }
  if (!cJSON_IsObject(w->root)) {
    es__reply_error(r, 400, "the body must be a JSON object");
    return;
  }
  /* the model */
  char namebuf[ES_MODEL_NAME_MAX];
  const char *name = r->route.model;
  if (!v2) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(w->root, "model");
    if (m) {
      if (!cJSON_IsString(m) || !es_repo_valid_name(m->valuestring, strlen(m->valuestring))) {
        es__reply_error(r, 400, "\"model\" must be a model name (1-63 of A-Z a-z 0-9 . _ -)");
        return;
      }
      name = m->valuestring;
    } else if (!(name = default_model(s, namebuf, sizeof namebuf))) {
      es__reply_error(r, 404, "no model is served");
      return;
    }
  }
  es_error_t err = {0};
  es_served_t *sv = NULL;
  int rc = es_repo_acquire(s->repo, name, &sv, &err);
  if (rc) {
    model_error(r, name, rc, &err);
    return;
  }
  r->job.served = sv; /* released when the request is freed */
  if (v2 && r->route.version && r->route.version != sv->version) {
    es__reply_error(r, 404, "version %d of model '%s' is not loaded (serving version %d)",
                    r->route.version, name, sv->version);
    return;
  }
  const es_model_conf_t *conf = sv->conf;
  /* inputs and parameters */
  int prio;
  int64_t timeout_us;
  const cJSON *texts = NULL, *params = w->root;
  if (v2) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(w->root, "id");
    if (cJSON_IsString(id)) snprintf(w->id, sizeof w->id, "%s", id->valuestring);
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(w->root, "inputs");
    const cJSON *in0 = cJSON_IsArray(inputs) ? inputs->child : NULL;
    if (!in0 || !cJSON_IsObject(in0)) {
      es__reply_error(r, 400, "\"inputs\" must be an array with one tensor");
      return;
    }
    if (in0->next) {
      es__reply_error(r, 400, "the model takes one input tensor, got several");
      return;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(in0, "datatype");
    if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "BYTES") != 0) {
      es__reply_error(r, 400, "input datatype must be \"BYTES\" (texts)");
      return;
    }
    texts = cJSON_GetObjectItemCaseSensitive(in0, "data");
    if (!cJSON_IsArray(texts)) {
      es__reply_error(r, 400, "input \"data\" must be an array of strings");
      return;
    }
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(w->root, "parameters");
    params = cJSON_IsObject(pp) ? pp : NULL;
  } else {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(w->root, "text");
    texts = cJSON_GetObjectItemCaseSensitive(w->root, "texts");
    if (t && texts) {
      es__reply_error(r, 400, "send \"text\" or \"texts\", not both");
      return;
    }
    if (t) {
      if (check_text(r, t, 0, "text")) return;
      w->single = 1;
      texts = t;
    } else if (!cJSON_IsArray(texts)) {
      es__reply_error(r, 400, "missing \"text\" (a string) or \"texts\" (an array of strings)");
      return;
    }
  }
  if (parse_params(r, params, w, conf, &prio, &timeout_us)) return;
  int count = 0, bad = 0;
  if (w->single)
    count = 1;
  else
    add_texts(r, w, texts, &count, &bad);
  if (bad) return;
  if (count == 0) {
    es__reply_error(r, 400, "no text to classify");
    return;
  }
  if (count > MAX_ITEMS) {
    es__reply_error(r, 413, "%d texts in one request; at most %d", count, MAX_ITEMS);
    return;
  }
  int nlabels = sv->desc.nlabels > 0 ? sv->desc.nlabels : 1;
  int k = w->k < 0 || w->k > nlabels ? nlabels : w->k;
  int kcap = k;
  if (!v2 && conf->alternatives > kcap)
    kcap = conf->alternatives < nlabels ? conf->alternatives : nlabels;
  if ((int64_t)count * kcap > MAX_PREDS) {
    es__reply_error(r, 413, "%d texts x %d labels is too much for one request (at most %d)", count,
                    kcap, MAX_PREDS);
    return;
  }
  w->k = k;
  w->kcap = kcap;
  r->job.items = calloc((size_t)count, sizeof *r->job.items);
  w->preds = calloc((size_t)count * (size_t)kcap, sizeof *w->preds);
  w->cached = calloc((size_t)count, 1);
  w->hold = calloc((size_t)count, sizeof *w->hold);
  if (!r->job.items || !w->preds || !w->cached || !w->hold) {
    es__reply_error(r, 503, "out of memory");
    return;
  }
  int n = 0;
  if (w->single) {
    r->job.items[0].text = texts->valuestring;
    r->job.items[0].len = strlen(texts->valuestring);
    n = 1;
  } else {
    collect(texts, r->job.items, &n);
  }
  for (int i = 0; i < n; i++) {
    es_infer_item_t *it = &r->job.items[i];
    if (it->len && it->text[it->len - 1] == '\n') it->len--;
    it->k = kcap;
    it->threshold = w->threshold;
    it->out = w->preds + (size_t)i * (size_t)kcap;
    it->cap = kcap;
  }
  r->job.nitems = (size_t)n;
  r->job.req = r;
  r->job.prio = prio;
  r->job.enq_us = es__now_us();
  r->job.deadline_us = timeout_us > 0 ? r->t0_us + timeout_us : 0;
  es_mstate_t *ms = es__mstate(s, name);
  if (!ms) {
    es__reply_error(r, 503, "out of memory");
    return;
  }
  r->ms = ms;
  atomic_fetch_add(&ms->requests, 1);
  /* the cache: answered here when every text hits; otherwise only the
   * texts that missed are computed */
  if (s->cache) {
    int hits = 0;
    for (int i = 0; i < n; i++) {
      w->cached[i] = (uint8_t)es__cache_lookup(r, &r->job.items[i], &w->hold[i]);
      hits += w->cached[i];
    }
    es_mseries_t ser;
    es__series(ms, sv->version, &ser);
    if (hits && ser.hits) es_counter_add(ser.hits, hits);
    if (hits == n) {
      r->job.start_us = r->job.done_us = es__now_us();
      es__job_complete(&r->job);
      return;
    }
    if (ser.misses) es_counter_add(ser.misses, n - hits);
    if (hits) r->job.skip = w->cached;
  }
  if (es__batcher_run_inline(ms, &r->job)) return; /* answered on this thread */
  MHD_suspend_connection(r->conn);                 /* before the submit: http.c invariant 1 */
  r->suspended = 1;
  rc = es__batcher_submit(ms, &r->job);
  if (rc == 0) return;
  es_reject_t why = rc == ES_EFULL ? ES_REJ_QUEUE_FULL : ES_REJ_UNAVAILABLE;
  atomic_fetch_add(&s->c.rejected[why], 1);
  es_mseries_t ser;
  es__series(ms, sv->version, &ser);
  if (ser.fail[0]) es_counter_inc(ser.fail[0]); /* "rejected" */
  r->retry_after = 1;
  if (rc == ES_EFULL)
    es__reply_error(r, 503, "model '%s' is busy: %d requests queued (queue_limit); retry later",
                    name, conf->queue_limit);
  else
    es__reply_error(r, 503, "the server is shutting down");
  es__resume(r);
}

/* ---- the reply --------------------------------------------------------------------------- */

static float clamp01(float p) { return p > 1.0f ? 1.0f : p < 0.0f ? 0.0f : p; }

static void put_pred(es_sb_t *sb, const es_label_prob_t *p) {
  es_sb_puts(sb, "{\"label\":");
  es_sb_json_str(sb, p->label, p->len);
  es_sb_printf(sb, ",\"probability\":%.6g}", (double)clamp01(p->prob));
}

static void put_result(es_sb_t *sb, const infer_work_t *w, const es_infer_item_t *it,
                       const es_model_conf_t *c, int cached) {
  int shown = it->n < w->k ? it->n : w->k;
  es_sb_puts(sb, "\"predictions\":[");
  for (int i = 0; i < shown; i++) {
    if (i) es_sb_put(sb, ",", 1);
    put_pred(sb, &it->out[i]);
  }
  es_sb_puts(sb, "],");
  float top = it->n ? clamp01(it->out[0].prob) : 0.0f;
  const char *decision = it->n && top >= c->auto_threshold      ? "auto"
                         : it->n && top >= c->suggest_threshold ? "suggest"
                                                                : "unknown";
  es_sb_puts(sb, "\"label\":");
  if (decision[0] == 'u')
    es_sb_puts(sb, "null");
  else
    es_sb_json_str(sb, it->out[0].label, it->out[0].len);
  es_sb_printf(sb, ",\"decision\":\"%s\"", decision);
  if (decision[0] == 's') {
    es_sb_puts(sb, ",\"alternatives\":[");
    int na = it->n < c->alternatives ? it->n : c->alternatives;
    for (int i = 0; i < na; i++) {
      if (i) es_sb_put(sb, ",", 1);
      put_pred(sb, &it->out[i]);
    }
    es_sb_put(sb, "]", 1);
  }
  es_sb_printf(sb, ",\"cached\":%s", cached ? "true" : "false");
}

static void reply_v1(es_req_t *r, infer_work_t *w, es_served_t *sv, int64_t now) {
  es_sb_t sb = {0};
  es_sb_puts(&sb, "{\"model\":");
  es_sb_json_str(&sb, sv->name, strlen(sv->name));
  es_sb_printf(&sb, ",\"version\":%d,", sv->version);
  if (w->single) {
    put_result(&sb, w, &r->job.items[0], sv->conf, w->cached[0]);
  } else {
    es_sb_puts(&sb, "\"results\":[");
    for (size_t i = 0; i < r->job.nitems; i++) {
      es_sb_puts(&sb, i ? ",{" : "{");
      put_result(&sb, w, &r->job.items[i], sv->conf, w->cached[i]);
      es_sb_put(&sb, "}", 1);
    }
    es_sb_put(&sb, "]", 1);
  }
  es_sb_printf(&sb, ",\"time_ms\":%.3f}\n", (double)(now - r->t0_us) / 1000.0);
  size_t len = 0;
  char *body = es_sb_take(&sb, &len);
  if (body)
    es__reply(r, 200, body, len, "application/json");
  else
    es__reply_error(r, 503, "out of memory");
}

static void reply_v2(es_req_t *r, infer_work_t *w, es_served_t *sv) {
  es_sb_t sb = {0};
  size_t n = r->job.nitems;
  int k = w->k;
  es_sb_puts(&sb, "{\"model_name\":");
  es_sb_json_str(&sb, sv->name, strlen(sv->name));
  es_sb_printf(&sb, ",\"model_version\":\"%d\"", sv->version);
  if (w->id[0]) {
    es_sb_puts(&sb, ",\"id\":");
    es_sb_json_str(&sb, w->id, strlen(w->id));
  }
  es_sb_printf(&sb,
               ",\"outputs\":[{\"name\":\"label\",\"datatype\":\"BYTES\",\"shape\":[%zu,%d],"
               "\"data\":[",
               n, k);
  for (size_t i = 0; i < n; i++)
    for (int j = 0; j < k; j++) {
      const es_infer_item_t *it = &r->job.items[i];
      if (i || j) es_sb_put(&sb, ",", 1);
      if (j < it->n)
        es_sb_json_str(&sb, it->out[j].label, it->out[j].len);
      else
        es_sb_puts(&sb, "\"\"");
    }
  es_sb_printf(&sb,
               "]},{\"name\":\"probability\",\"datatype\":\"FP32\",\"shape\":[%zu,%d],"
               "\"data\":[",
               n, k);
  for (size_t i = 0; i < n; i++)
    for (int j = 0; j < k; j++) {
      const es_infer_item_t *it = &r->job.items[i];
      if (i || j) es_sb_put(&sb, ",", 1);
      es_sb_printf(&sb, "%.6g", j < it->n ? (double)clamp01(it->out[j].prob) : 0.0);
    }
  es_sb_puts(&sb, "]}]}\n");
  size_t len = 0;
  char *body = es_sb_take(&sb, &len);
  if (body)
    es__reply(r, 200, body, len, "application/json");
  else
    es__reply_error(r, 503, "out of memory");
}

void es__job_complete(es_job_t *job) {
  es_req_t *r = job->req;
  es_server_t *s = r->srv;
  es_mstate_t *ms = r->ms;
  infer_work_t *w = r->work;
  es_served_t *sv = job->served;
  int64_t now = es__now_us();
  es_mseries_t ser;
  es__series(ms, sv->version, &ser);
  int fail_reason = -1; /* index into es_inference_metrics_t's reasons */
  if (job->status == ES_ETIMEDOUT) {
    atomic_fetch_add(&s->c.rejected[ES_REJ_DEADLINE], 1);
    fail_reason = 2;
    es__reply_error(r, 504, "deadline passed after %.1f ms in the queue, before the work started",
                    (double)(job->start_us - job->enq_us) / 1000.0);
  } else if (job->status == ES_ECANCELED) {
    atomic_fetch_add(&s->c.rejected[ES_REJ_CANCELLED], 1);
    fail_reason = 1;
    es__reply_error(r, 503, "cancelled: the client closed the connection");
  } else if (job->status) {
    fail_reason = job->status == ES_ENOMEM ? 4 : 5;
    es__reply_error(r, 500, "model '%s' failed: %s", sv->name,
                    job->err.msg[0] ? job->err.msg : es_strerror(job->status));
  } else {
    int bad = 0;
    for (size_t i = 0; i < job->nitems && !bad; i++)
      if (job->items[i].status) {
        bad = 1;
        fail_reason = 3;
        es__reply_error(r, job->items[i].status == ES_ERANGE ? 413 : 400, "text %zu: %s", i,
                        es_strerror(job->items[i].status));
      }
    if (!bad) {
      if (w->v2)
        reply_v2(r, w, sv);
      else
        reply_v1(r, w, sv, now);
      for (size_t i = 0; i < job->nitems; i++)
        if (!w->cached[i]) es__cache_store(s, sv, &job->items[i]);
    }
  }
  if (fail_reason >= 0) {
    atomic_fetch_add(&ms->errors, 1);
    if (ser.fail[fail_reason]) es_counter_inc(ser.fail[fail_reason]);
  } else if (ser.ok) {
    es_counter_inc(ser.ok);
  }
  if (job->start_us) {
    if (ser.queue_dur) es_histo_observe(ser.queue_dur, (double)(job->start_us - job->enq_us) / 1e6);
    if (ms->lat)
      es_latmon_record(ms->lat, ES_LAT_QUEUE, (uint64_t)(job->start_us - job->enq_us),
                       (uint64_t)now);
  }
  if (ser.req_dur) es_histo_observe(ser.req_dur, (double)(now - r->t0_us) / 1e6);
  if (ms->lat) es_latmon_record(ms->lat, ES_LAT_TOTAL, (uint64_t)(now - r->t0_us), (uint64_t)now);
  if (s->store) { /* the history: one row per text (sampled by the store) */
    for (size_t i = 0; i < job->nitems; i++) {
      const es_infer_item_t *it = &job->items[i];
      float top = it->n ? clamp01(it->out[0].prob) : 0.0f;
      const char *decision = !it->n || r->status != 200           ? NULL
                             : top >= sv->conf->auto_threshold    ? "auto"
                             : top >= sv->conf->suggest_threshold ? "suggest"
                                                                  : "unknown";
      char label[256];
      size_t ll = it->n ? it->out[0].len : 0;
      if (ll >= sizeof label) ll = sizeof label - 1;
      if (ll) memcpy(label, it->out[0].label, ll);
      label[ll] = '\0';
      es_history_row_t row = {.model = sv->name,
                              .version = sv->version,
                              .text = it->text,
                              .text_len = it->len,
                              .label = ll ? label : NULL,
                              .prob = top,
                              .decision = decision,
                              .latency_us = now - r->t0_us,
                              .cached = w->cached[i],
                              .status = r->status};
      es_store_history_add(s->store, &row);
    }
  }
  if (r->suspended) es__resume(r);
}
