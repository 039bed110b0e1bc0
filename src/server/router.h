/*
 * router.h - maps a request's method and path to an endpoint.
 *
 * Pure: no allocation, no I/O, so it is fuzzed directly (fuzz/fuzz_route.c).
 * Model names in paths are validated here (es_repo_valid_name): a name that
 * could leave the repository never reaches a handler.
 */
#ifndef ES_SERVER_ROUTER_H
#define ES_SERVER_ROUTER_H

#include <stdint.h>

#include "edgeserve/repo.h"

typedef enum {
  ES_R_NONE = 0,
  /* operations */
  ES_R_DASHBOARD,     /* GET  /                                  */
  ES_R_HEALTH,        /* GET  /health                            */
  ES_R_METRICS,       /* GET  /metrics                           */
  ES_R_SYSTEM_STATUS, /* GET  /system-status                     */
  ES_R_HARDWARE,      /* GET  /hardware                          */
  ES_R_ESTIMATE,      /* POST /estimate-memory                   */
  ES_R_OPTIMIZE,      /* POST /optimize-for-hardware             */
  ES_R_CACHE_CLEAR,   /* POST /cache/clear                       */
  /* the simple JSON API */
  ES_R_V1_STATUS,   /* GET  /v1/status                         */
  ES_R_V1_MODELS,   /* GET  /v1/models                         */
  ES_R_V1_CLASSIFY, /* POST /v1/classify                       */
  ES_R_V1_FEEDBACK, /* POST /v1/models/{m}/feedback            */
  ES_R_V1_TRAIN,    /* POST /v1/models/{m}/train               */
  ES_R_V1_JOB,      /* GET  /v1/jobs/{id}                      */
  /* KServe v2 / Open Inference Protocol */
  ES_R_V2,             /* GET  /v2                                     */
  ES_R_V2_LIVE,        /* GET  /v2/health/live                         */
  ES_R_V2_READY,       /* GET  /v2/health/ready                        */
  ES_R_V2_MODEL,       /* GET  /v2/models/{m}[/versions/{v}]           */
  ES_R_V2_MODEL_READY, /* GET  /v2/models/{m}[/versions/{v}]/ready     */
  ES_R_V2_INFER,       /* POST /v2/models/{m}[/versions/{v}]/infer     */
  ES_R_V2_STATS,       /* GET  /v2/models/{m}[/versions/{v}]/stats     */
  ES_R_V2_REPO_INDEX,  /* POST /v2/repository/index                    */
  ES_R_V2_REPO_LOAD,   /* POST /v2/repository/models/{m}/load          */
  ES_R_V2_REPO_UNLOAD, /* POST /v2/repository/models/{m}/unload        */
  ES_R_COUNT
} es_route_id_t;

typedef struct es_route {
  es_route_id_t id;
  char model[ES_MODEL_NAME_MAX]; /* "" when the path has none */
  int version;                   /* 0 when the path names none */
  int64_t job;                   /* ES_R_V1_JOB */
  const char *allow;             /* the methods the path accepts ("GET", "POST") */
} es_route_t;

/* Routes `method` `path` (the decoded path, without query string).
 * Returns 200 with *out filled; 404 for an unknown path; 405 when the path
 * exists but not for this method (out->id and out->allow are set); 400 when
 * a model name, version or job id in the path is invalid. */
int es__route(const char *method, const char *path, es_route_t *out);

/* A name for logs and metrics ("v1_classify"). */
const char *es__route_name(es_route_id_t id);

/* Whether the endpoint needs no API key: liveness, /health, the dashboard
 * page. */
int es__route_public(es_route_id_t id);

#endif
