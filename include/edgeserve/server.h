/*
 * server.h - edgeserve's inference server (`edgeserve serve`), embeddable.
 *
 * One process that serves models over HTTP (libmicrohttpd): KServe v2 / the
 * Open Inference Protocol under /v2, a simple JSON API under /v1, operations
 * endpoints (/health, /metrics, /system-status, /hardware, ...) and a
 * dashboard at /. Requests are batched per model and computed on the
 * runtime's scheduler, within the memory budget; see docs/server/README.md
 * for every endpoint and the request's path through the code.
 *
 *   es_server_params_t p = es_server_default_params();
 *   p.config = cfg;                          // server.*, memory.*, ... (config.h)
 *   p.model_files = (const char *[]){"media.esm"}; p.nmodel_files = 1;
 *   es_server_t *srv = es_server_new(&p, &err);   // loads, binds, serves
 *   printf("%s\n", es_server_url(srv));
 *   ... wait for a signal ...
 *   es_server_free(srv);                     // stops, drains, closes
 */
#ifndef EDGESERVE_SERVER_H
#define EDGESERVE_SERVER_H

#include <stdio.h>

#include "edgeserve/config.h"
#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_server es_server_t;

typedef struct es_server_params {
  /* Every setting (server.*, runtime.*, memory.*, batching.*, cache.*,
   * quality.*); NULL: the defaults. Borrowed until es_server_free(). */
  const es_config_t *config;
  /* Model files served directly, each named after its file (media.esm ->
   * "media"). With none, the server.models directory is served. */
  const char *const *model_files;
  int nmodel_files;
  /* Once the server accepts connections, its base URL
   * ("http://127.0.0.1:8080") is written to this file (NULL: not written). */
  const char *ready_file;
  /* Log lines (logfmt, buffered) go here; NULL: stderr. */
  FILE *log;
  /* Root of /proc and /sys for hardware detection (tests); NULL: "/". */
  const char *hw_root;
} es_server_params_t;

es_server_params_t es_server_default_params(void);

/* Detects the hardware, plans, loads the models, opens the database and
 * starts listening. Returns the running server, or NULL with *err filled
 * (a port in use, an unreadable model directory, a model that does not
 * fit...); then nothing is left running. */
es_server_t *es_server_new(const es_server_params_t *p, es_error_t *err);

/* The port it listens on (the one chosen when server.port is 0). */
int es_server_port(const es_server_t *s);

/* "http://HOST:PORT", valid until es_server_free(). */
const char *es_server_url(const es_server_t *s);

/* Stops accepting, lets requests in flight finish (at most a few seconds),
 * stops background jobs, flushes the history and frees everything. NULL is
 * a no-op. */
void es_server_free(es_server_t *s);

#ifdef __cplusplus
}
#endif
#endif
