/*
 * cmd_serve.c - `edgeserve serve`: runs the inference server until SIGINT or
 * SIGTERM.
 *
 *   edgeserve serve [--config FILE] [--host H] [--port P] [--models DIR]
 *                   [--model FILE]... [--data DIR] [--api-key KEY]
 *                   [--strategy S] [--set SECTION.KEY=VALUE]... [--ready-file F]
 *
 * Settings come from the defaults, the file, EDGESERVE_* variables and the
 * flags, in that order (config.h); --host, --port, --models, --data and
 * --api-key are shorthands for --set server.*=.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "edgeserve/config.h"
#include "edgeserve/server.h"

extern char **environ;

static int usage(void) {
  fprintf(stderr,
          "usage: edgeserve serve [--config FILE] [--host H] [--port P] [--models DIR]\n"
          "                       [--model FILE]... [--data DIR] [--api-key KEY]\n"
          "                       [--strategy S] [--set SECTION.KEY=VALUE]... [--ready-file F]\n"
          "  --models DIR   serve a model repository (default: server.models)\n"
          "  --model FILE   serve a model file, named after it (repeatable)\n"
          "  --port 0       any free port; the URL is printed and written to --ready-file\n"
          "  `edgeserve config --keys` lists every setting\n");
  return 2;
}

int es_cmd_serve(int argc, char **argv) {
  es_error_t err = {0};
  es_config_t *cfg = es_config_new();
  if (!cfg) return 1;
  const char *file = NULL, *ready = NULL;
  const char **models = calloc((size_t)argc + 1, sizeof *models);
  char **sets = calloc((size_t)argc * 2 + 1, sizeof *sets);
  int nmodels = 0, nsets = 0, rc = 0;
  if (!models || !sets) return 1;
  static const struct {
    const char *flag, *key;
  } short_keys[] = {{"--host", "server.host"},       {"--port", "server.port"},
                    {"--models", "server.models"},   {"--data", "server.data"},
                    {"--api-key", "server.api_key"}, {"--strategy", "runtime.strategy"}};
  for (int i = 1; i < argc && !rc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    int matched = 0;
    for (size_t k = 0; k < sizeof short_keys / sizeof *short_keys; k++)
      if (!strcmp(a, short_keys[k].flag) && more) {
        size_t n = strlen(short_keys[k].key) + strlen(argv[i + 1]) + 2;
        char *s = malloc(n);
        if (!s) return 1;
        snprintf(s, n, "%s=%s", short_keys[k].key, argv[++i]);
        sets[nsets++] = s;
        matched = 1;
        break;
      }
    if (matched) continue;
    if (!strcmp(a, "--config") && more)
      file = argv[++i];
    else if (!strcmp(a, "--model") && more)
      models[nmodels++] = argv[++i];
    else if (!strcmp(a, "--ready-file") && more)
      ready = argv[++i];
    else if (!strcmp(a, "--set") && more) {
      sets[nsets++] = strdup(argv[++i]);
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      rc = 2;
    } else {
      fprintf(stderr, "edgeserve serve: unknown or incomplete argument \"%s\"\n", a);
      rc = 2;
    }
  }
  if (rc == 0 && file && es_config_load_file(cfg, file, &err) < 0) rc = 1;
  if (rc == 0 && es_config_apply_env(cfg, environ, &err) < 0) rc = 1;
  for (int i = 0; rc == 0 && i < nsets; i++)
    if (!sets[i] || es_config_set_flag(cfg, sets[i], &err) < 0) rc = 1;
  for (int i = 0; i < nsets; i++) free(sets[i]);
  free(sets);
  if (rc) {
    if (rc == 1)
      fprintf(stderr, "edgeserve serve: %s\n", err.msg);
    else
      usage();
    free(models);
    es_config_free(cfg);
    return rc;
  }
  /* signals are waited for, not handled: block them in every thread */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN); /* a file-size limit fails the write (EFBIG), not the server */

  es_server_params_t p = es_server_default_params();
  p.config = cfg;
  p.model_files = models;
  p.nmodel_files = nmodels;
  p.ready_file = ready;
  es_server_t *srv = es_server_new(&p, &err);
  if (!srv) {
    fprintf(stderr, "edgeserve serve: %s\n", err.msg[0] ? err.msg : es_strerror(err.code));
    free(models);
    es_config_free(cfg);
    return 1;
  }
  printf("edgeserve serving on %s (dashboard: %s/ , Ctrl-C stops)\n", es_server_url(srv),
         es_server_url(srv));
  fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  fprintf(stderr, "edgeserve: %s, stopping\n", sig == SIGINT ? "interrupted" : "terminated");
  es_server_free(srv);
  free(models);
  es_config_free(cfg);
  return 0;
}
