/*
 * router.c - the server's endpoint table, matched segment by segment.
 *
 * Invariants:
 *  1. A path is split into at most 8 segments of at most 255 bytes; anything
 *     longer is not an endpoint (404), never truncated into one.
 *  2. A model segment reaches the caller only when es_repo_valid_name()
 *     accepts it, a version only when it is a decimal in 1..2^31-1, a job id
 *     only when it is a decimal in 1..2^62.
 *  3. One trailing slash is ignored ("/v2/" is "/v2").
 */
#include "router.h"

#include <string.h>

#define MAX_SEGS 8
#define MAX_SEG  255

typedef struct {
  const char *p[MAX_SEGS];
  size_t n[MAX_SEGS];
  int count;
} segs_t;

static int split(const char *path, segs_t *s) {
  s->count = 0;
  if (path[0] != '/') return -1;
  const char *c = path + 1;
  size_t total = strlen(path);
  if (total > 1 && path[total - 1] == '/') total--;
  const char *end = path + total;
  if (c >= end) return 0; /* "/" */
  while (c <= end) {
    const char *slash = memchr(c, '/', (size_t)(end - c));
    const char *e = slash ? slash : end;
    if (s->count == MAX_SEGS || e - c > MAX_SEG || e == c) return -1;
    s->p[s->count] = c;
    s->n[s->count] = (size_t)(e - c);
    s->count++;
    if (!slash) break;
    c = slash + 1;
  }
  return 0;
}

static int is(const segs_t *s, int i, const char *lit) {
  size_t n = strlen(lit);
  return i < s->count && s->n[i] == n && memcmp(s->p[i], lit, n) == 0;
}

static int decimal(const char *p, size_t n, int64_t max, int64_t *out) {
  if (n == 0 || n > 19) return -1;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    if (v > (max - (p[i] - '0')) / 10) return -1;
    v = v * 10 + (p[i] - '0');
  }
  if (v < 1) return -1;
  *out = v;
  return 0;
}

static int model_seg(const segs_t *s, int i, es_route_t *out) {
  if (i >= s->count || !es_repo_valid_name(s->p[i], s->n[i])) return -1;
  memcpy(out->model, s->p[i], s->n[i]);
  out->model[s->n[i]] = '\0';
  return 0;
}

/* The endpoint for the segments, or ES_R_NONE; *allow gets its method.
 * Returns -1 (bad name/number: 400) or 0. */
static int match(const segs_t *s, es_route_t *out, const char **allow) {
  static const char *GET = "GET", *POST = "POST";
  int n = s->count;
  out->id = ES_R_NONE;
  if (n == 0) {
    out->id = ES_R_DASHBOARD, *allow = GET;
    return 0;
  }
  if (n == 1) {
    if (is(s, 0, "health"))
      out->id = ES_R_HEALTH, *allow = GET;
    else if (is(s, 0, "metrics"))
      out->id = ES_R_METRICS, *allow = GET;
    else if (is(s, 0, "system-status"))
      out->id = ES_R_SYSTEM_STATUS, *allow = GET;
    else if (is(s, 0, "hardware"))
      out->id = ES_R_HARDWARE, *allow = GET;
    else if (is(s, 0, "estimate-memory"))
      out->id = ES_R_ESTIMATE, *allow = POST;
    else if (is(s, 0, "optimize-for-hardware"))
      out->id = ES_R_OPTIMIZE, *allow = POST;
    else if (is(s, 0, "v2"))
      out->id = ES_R_V2, *allow = GET;
    return 0;
  }
  if (n == 2 && is(s, 0, "cache") && is(s, 1, "clear")) {
    out->id = ES_R_CACHE_CLEAR, *allow = POST;
    return 0;
  }
  if (is(s, 0, "v1")) {
    if (n == 2 && is(s, 1, "status"))
      out->id = ES_R_V1_STATUS, *allow = GET;
    else if (n == 2 && is(s, 1, "models"))
      out->id = ES_R_V1_MODELS, *allow = GET;
    else if (n == 2 && is(s, 1, "classify"))
      out->id = ES_R_V1_CLASSIFY, *allow = POST;
    else if (n == 3 && is(s, 1, "jobs")) {
      if (decimal(s->p[2], s->n[2], (int64_t)1 << 62, &out->job)) return -1;
      out->id = ES_R_V1_JOB, *allow = GET;
    } else if (n == 4 && is(s, 1, "models") && (is(s, 3, "feedback") || is(s, 3, "train"))) {
      if (model_seg(s, 2, out)) return -1;
      out->id = is(s, 3, "feedback") ? ES_R_V1_FEEDBACK : ES_R_V1_TRAIN, *allow = POST;
    }
    return 0;
  }
  if (!is(s, 0, "v2")) return 0;
  if (n == 3 && is(s, 1, "health")) {
    if (is(s, 2, "live"))
      out->id = ES_R_V2_LIVE, *allow = GET;
    else if (is(s, 2, "ready"))
      out->id = ES_R_V2_READY, *allow = GET;
    return 0;
  }
  if (is(s, 1, "repository")) {
    if (n == 3 && is(s, 2, "index"))
      out->id = ES_R_V2_REPO_INDEX, *allow = POST;
    else if (n == 5 && is(s, 2, "models") && (is(s, 4, "load") || is(s, 4, "unload"))) {
      if (model_seg(s, 3, out)) return -1;
      out->id = is(s, 4, "load") ? ES_R_V2_REPO_LOAD : ES_R_V2_REPO_UNLOAD, *allow = POST;
    }
    return 0;
  }
  if (!is(s, 1, "models") || n < 3) return 0;
  int i = 3; /* after the name */
  if (n >= 5 && is(s, 3, "versions")) {
    int64_t v;
    if (decimal(s->p[4], s->n[4], INT32_MAX, &v)) return -1;
    out->version = (int)v;
    i = 5;
  }
  if (n == i)
    out->id = ES_R_V2_MODEL, *allow = GET;
  else if (n == i + 1 && is(s, i, "ready"))
    out->id = ES_R_V2_MODEL_READY, *allow = GET;
  else if (n == i + 1 && is(s, i, "infer"))
    out->id = ES_R_V2_INFER, *allow = POST;
  else if (n == i + 1 && is(s, i, "stats"))
    out->id = ES_R_V2_STATS, *allow = GET;
  else {
    out->version = 0;
    return 0;
  }
  return model_seg(s, 2, out);
}

int es__route(const char *method, const char *path, es_route_t *out) {
  segs_t s;
  const char *allow = NULL;
  memset(out, 0, sizeof *out);
  if (!method || !path || split(path, &s)) return 404;
  if (match(&s, out, &allow)) {
    out->id = ES_R_NONE;
    return 400;
  }
  if (out->id == ES_R_NONE) return 404;
  out->allow = allow;
  if (strcmp(method, allow) == 0) return 200;
  if (strcmp(allow, "GET") == 0 && strcmp(method, "HEAD") == 0) return 200;
  return 405;
}

const char *es__route_name(es_route_id_t id) {
  static const char *names[ES_R_COUNT] = {
      "none",      "dashboard",   "health",        "metrics",      "system_status",
      "hardware",  "estimate",    "optimize",      "cache_clear",  "v1_status",
      "v1_models", "v1_classify", "v1_feedback",   "v1_train",     "v1_job",
      "v2",        "v2_live",     "v2_ready",      "v2_model",     "v2_model_ready",
      "v2_infer",  "v2_stats",    "v2_repo_index", "v2_repo_load", "v2_repo_unload"};
  return (id >= 0 && id < ES_R_COUNT) ? names[id] : "none";
}

/* Liveness, health for load balancers, and the dashboard page (a browser
 * cannot send the header when someone types the URL; the page holds no data
 * and sends ?key= as the header on its /v1/status calls). */
int es__route_public(es_route_id_t id) {
  return id == ES_R_V2_LIVE || id == ES_R_HEALTH || id == ES_R_DASHBOARD;
}
