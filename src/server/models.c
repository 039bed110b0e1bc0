/*
 * models.c - the repository's endpoints: model lists and metadata (v1 and
 * KServe v2), readiness, statistics, and load / unload / index.
 * Feedback, retraining and jobs live in jobs.c.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "server_impl.h"

static const char *state_name(es_model_state_t st) {
  return st == ES_MODEL_READY ? "READY" : st == ES_MODEL_FAILED ? "FAILED" : "UNAVAILABLE";
}

/* Sends a cJSON tree as the reply (and frees it). */
void es__reply_json(es_req_t *r, int status, cJSON *root) {
  char *text = root ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (!text) {
    es__reply_error(r, 503, "out of memory");
    return;
  }
  size_t n = strlen(text);
  char *body = malloc(n + 2);
  if (!body) {
    cJSON_free(text);
    es__reply_error(r, 503, "out of memory");
    return;
  }
  memcpy(body, text, n);
  body[n] = '\n';
  body[n + 1] = '\0';
  cJSON_free(text);
  es__reply(r, status, body, n + 1, "application/json");
}

cJSON *es__parse_body(es_req_t *r, int allow_empty) {
  if (r->body.len == 0 && allow_empty) return cJSON_CreateObject();
  if (!es_utf8_valid(r->body.data ? r->body.data : "", r->body.len)) {
    es__reply_error(r, 400, "request body is not valid UTF-8");
    return NULL;
  }
  cJSON *root = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    es__reply_error(r, 400, "the body must be a JSON object");
    return NULL;
  }
  return root;
}

static int find_entry(es_server_t *s, const char *name, es_repo_entry_t *out) {
  int n = es_repo_list(s->repo, NULL, 0);
  if (n <= 0) return -1;
  es_repo_entry_t *all = calloc((size_t)n, sizeof *all);
  if (!all) return -1;
  n = es_repo_list(s->repo, all, n);
  int found = -1;
  for (int i = 0; i < n; i++)
    if (strcmp(all[i].name, name) == 0) {
      *out = all[i];
      found = 0;
      break;
    }
  free(all);
  return found;
}

cJSON *es__models_json(es_server_t *s) {
  int n = es_repo_list(s->repo, NULL, 0);
  es_repo_entry_t *all = n > 0 ? calloc((size_t)n, sizeof *all) : NULL;
  if (n > 0 && all)
    n = es_repo_list(s->repo, all, n);
  else
    n = 0;
  cJSON *arr = cJSON_CreateArray();
  for (int i = 0; i < n; i++) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "name", all[i].name);
    cJSON_AddNumberToObject(m, "version", all[i].version);
    cJSON_AddNumberToObject(m, "latest_version", all[i].latest_version);
    cJSON_AddStringToObject(m, "state", state_name(all[i].state));
    cJSON_AddStringToObject(m, "variant", all[i].variant);
    if (all[i].reason[0]) cJSON_AddStringToObject(m, "reason", all[i].reason);
    cJSON_AddNumberToObject(m, "reserved_bytes", (double)all[i].reserved_bytes);
    cJSON_AddNumberToObject(m, "requests", (double)all[i].requests);
    cJSON_AddItemToArray(arr, m);
  }
  free(all);
  return arr;
}

static void v2_model(es_req_t *r, int ready_only) {
  es_server_t *s = r->srv;
  es_repo_entry_t e;
  if (find_entry(s, r->route.model, &e)) {
    es__reply_error(r, 404, "unknown model '%s'", r->route.model);
    return;
  }
  int ready = e.state == ES_MODEL_READY && (!r->route.version || r->route.version == e.version);
  if (ready_only) {
    /* KServe: 200 when ready, 400-class otherwise; a JSON body for people */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", e.name);
    cJSON_AddBoolToObject(o, "ready", ready);
    es__reply_json(r, ready ? 200 : 503, o);
    return;
  }
  if (r->route.version && r->route.version != e.version) {
    es__reply_error(r, 404, "version %d of '%s' is not loaded (serving %d)", r->route.version,
                    e.name, e.version);
    return;
  }
  es_served_t *sv = NULL;
  es_error_t err = {0};
  int rc = es_repo_acquire(s->repo, e.name, &sv, &err);
  if (rc) {
    es__reply_error(r, 503, "model '%s' is not available: %s", e.name, err.msg);
    return;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", sv->name);
  cJSON *vs = cJSON_AddArrayToObject(o, "versions");
  char v[16];
  snprintf(v, sizeof v, "%d", sv->version);
  cJSON_AddItemToArray(vs, cJSON_CreateString(v));
  cJSON_AddStringToObject(o, "platform", sv->desc.platform ? sv->desc.platform : sv->backend->name);
  cJSON *in = cJSON_CreateObject();
  cJSON_AddStringToObject(in, "name", "text");
  cJSON_AddStringToObject(in, "datatype", "BYTES");
  cJSON_AddItemToObject(in, "shape", cJSON_CreateIntArray((const int[]){-1}, 1));
  cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "inputs"), in);
  cJSON *outs = cJSON_AddArrayToObject(o, "outputs");
  cJSON *o1 = cJSON_CreateObject(), *o2 = cJSON_CreateObject();
  cJSON_AddStringToObject(o1, "name", "label");
  cJSON_AddStringToObject(o1, "datatype", "BYTES");
  cJSON_AddItemToObject(o1, "shape", cJSON_CreateIntArray((const int[]){-1, -1}, 2));
  cJSON_AddStringToObject(o2, "name", "probability");
  cJSON_AddStringToObject(o2, "datatype", "FP32");
  cJSON_AddItemToObject(o2, "shape", cJSON_CreateIntArray((const int[]){-1, -1}, 2));
  cJSON_AddItemToArray(outs, o1);
  cJSON_AddItemToArray(outs, o2);
  cJSON *pm = cJSON_AddObjectToObject(o, "parameters");
  cJSON_AddStringToObject(pm, "format", sv->desc.format ? sv->desc.format : "");
  cJSON_AddStringToObject(pm, "variant", sv->variant ? sv->variant : "");
  cJSON_AddNumberToObject(pm, "labels", sv->desc.nlabels);
  cJSON_AddNumberToObject(pm, "mapped_bytes", (double)sv->desc.mapped_bytes);
  cJSON_AddNumberToObject(pm, "private_bytes", (double)sv->desc.private_bytes);
  cJSON_AddNumberToObject(pm, "max_batch", sv->conf->max_batch);
  cJSON_AddNumberToObject(pm, "queue_limit", sv->conf->queue_limit);
  es_repo_release(s->repo, sv);
  es__reply_json(r, 200, o);
}

static void v2_stats(es_req_t *r) {
  es_server_t *s = r->srv;
  es_repo_entry_t e;
  if (find_entry(s, r->route.model, &e)) {
    es__reply_error(r, 404, "unknown model '%s'", r->route.model);
    return;
  }
  cJSON *root = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(root, "model_stats");
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "name", e.name);
  char v[16];
  snprintf(v, sizeof v, "%d", e.version);
  cJSON_AddStringToObject(m, "version", v);
  pthread_mutex_lock(&s->mlock);
  es_mstate_t *ms = s->models;
  while (ms && strcmp(ms->name, e.name) != 0) ms = ms->next;
  pthread_mutex_unlock(&s->mlock);
  uint64_t req = ms ? atomic_load(&ms->requests) : 0, items = ms ? atomic_load(&ms->items) : 0,
           batches = ms ? atomic_load(&ms->batches) : 0, errs = ms ? atomic_load(&ms->errors) : 0;
  cJSON_AddNumberToObject(m, "inference_count", (double)items);
  cJSON_AddNumberToObject(m, "execution_count", (double)batches);
  cJSON *is = cJSON_AddObjectToObject(m, "inference_stats");
  cJSON_AddItemToObject(is, "success", cJSON_CreateObject());
  cJSON_AddNumberToObject(cJSON_GetObjectItem(is, "success"), "count", (double)(req - errs));
  cJSON_AddItemToObject(is, "fail", cJSON_CreateObject());
  cJSON_AddNumberToObject(cJSON_GetObjectItem(is, "fail"), "count", (double)errs);
  if (ms && ms->lat) {
    static const struct {
      const char *name;
      es_lat_stage_t st;
    } stages[] = {
        {"queue", ES_LAT_QUEUE}, {"compute_infer", ES_LAT_INFERENCE}, {"total", ES_LAT_TOTAL}};
    cJSON *lat = cJSON_AddObjectToObject(m, "latency_us");
    for (size_t i = 0; i < sizeof stages / sizeof *stages; i++) {
      es_latmon_pcts_t st;
      if (es_latmon_percentiles(ms->lat, stages[i].st, ES_LATWIN_1MIN, (uint64_t)es__now_us(), &st))
        continue;
      cJSON *o = cJSON_AddObjectToObject(lat, stages[i].name);
      cJSON_AddNumberToObject(o, "count", (double)st.count);
      cJSON_AddNumberToObject(o, "p50", (double)st.p50_us);
      cJSON_AddNumberToObject(o, "p95", (double)st.p95_us);
      cJSON_AddNumberToObject(o, "p99", (double)st.p99_us);
    }
  }
  cJSON_AddItemToArray(arr, m);
  es__reply_json(r, 200, root);
}

static void repo_action(es_req_t *r) {
  es_server_t *s = r->srv;
  es_error_t err = {0};
  int rc;
  if (r->route.id == ES_R_V2_REPO_INDEX) {
    rc = es_repo_scan(s->repo, &err);
    if (rc < 0) {
      es__reply_error(r, 500, "%s", err.msg);
      return;
    }
    cJSON *arr = es__models_json(s);
    es__reply_json(r, 200, arr);
    return;
  }
  const char *name = r->route.model;
  rc = r->route.id == ES_R_V2_REPO_LOAD ? es_repo_load(s->repo, name, &err)
                                        : es_repo_unload(s->repo, name, &err);
  if (rc == ES_ENOTFOUND) {
    es__reply_error(r, 404, "unknown model '%s'", name);
    return;
  }
  if (rc == ES_EBUDGET) {
    atomic_fetch_add(&s->c.rejected[ES_REJ_BUDGET], 1);
    es__reply_error(r, 507, "%s", err.msg[0] ? err.msg : es_strerror(rc));
    return;
  }
  if (rc) {
    es__reply_error(r, 400, "%s", err.msg[0] ? err.msg : es_strerror(rc));
    return;
  }
  es_repo_entry_t e;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", name);
  if (find_entry(s, name, &e) == 0) {
    cJSON_AddStringToObject(o, "state", state_name(e.state));
    cJSON_AddNumberToObject(o, "version", e.version);
  }
  es__reply_json(r, 200, o);
}

void es__handle_jobs(es_req_t *r);

void es__handle_models(es_req_t *r) {
  switch (r->route.id) {
  case ES_R_V1_MODELS: {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "models", es__models_json(r->srv));
    es__reply_json(r, 200, o);
    break;
  }
  case ES_R_V2_MODEL: v2_model(r, 0); break;
  case ES_R_V2_MODEL_READY: v2_model(r, 1); break;
  case ES_R_V2_STATS: v2_stats(r); break;
  case ES_R_V2_REPO_INDEX:
  case ES_R_V2_REPO_LOAD:
  case ES_R_V2_REPO_UNLOAD: repo_action(r); break;
  default: es__handle_jobs(r); break;
  }
}
