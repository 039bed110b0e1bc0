/*
 * fuzz_request.c - libFuzzer target: any bytes as the body of every POST
 * endpoint of the real server, over loopback HTTP.
 *
 * LLVMFuzzerInitialize starts an in-process server (es_server_new) on an
 * ephemeral 127.0.0.1 port with a small model (tests/unit/ftmodel.c) and a
 * database in a temporary directory. Each input's first byte picks the
 * endpoint (/v1/classify, /v2/models/m/infer, feedback, /estimate-memory,
 * ...); the rest is sent as the body of one HTTP/1.1 request. Checks, beyond
 * "no crash" under ASan and UBSan: every answer is a complete HTTP response
 * whose status is one the API documents for bad input (never 500), and
 * whose body is JSON.
 * Seeds: fuzz/corpus/request. Training (POST .../train) is left out: a job
 * per input would measure the trainer, not the parser.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "edgeserve/config.h"
#include "edgeserve/server.h"
#include "ftmodel.h"

static es_server_t *srv;
static int port;

static const char *const paths[] = {
    "/v1/classify",          "/v2/models/m/infer",     "/v2/models/m/versions/1/infer",
    "/v1/models/m/feedback", "/estimate-memory",       "/v2/repository/index",
    "/cache/clear",          "/optimize-for-hardware",
};
#define NPATHS (sizeof paths / sizeof *paths)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  static const char *const words[] = {"</s>", "la", "casa", "di", "carta"};
  static const char *const labels[] = {"__label__a", "__label__b", "__label__c"};
  ft_spec sp = ft_default_spec();
  sp.dim = 8, sp.bucket = 1000, sp.minn = 2, sp.maxn = 4, sp.word_ngrams = 2;
  sp.nwords = 5, sp.words = words, sp.nlabels = 3, sp.labels = labels;
  size_t len;
  uint8_t *bytes = ft_write(&sp, &len);
  static char dir[] = "/tmp/es-fuzz-req-XXXXXX";
  if (!bytes || !mkdtemp(dir)) abort();
  char model[128], data[128];
  snprintf(model, sizeof model, "%s/m.bin", dir);
  snprintf(data, sizeof data, "%s/data", dir);
  FILE *f = fopen(model, "wb");
  if (!f || fwrite(bytes, 1, len, f) != len || fclose(f)) abort();
  free(bytes);
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  if (!cfg || es_config_set(cfg, "server.port", "0", ES_CFG_FLAG, NULL, &err) ||
      es_config_set(cfg, "server.data", data, ES_CFG_FLAG, NULL, &err) ||
      es_config_set(cfg, "server.max_body", "256K", ES_CFG_FLAG, NULL, &err))
    abort();
  es_server_params_t p = es_server_default_params();
  p.config = cfg; /* lives as long as the process */
  const char *files[] = {model};
  p.model_files = files;
  p.nmodel_files = 1;
  p.log = getenv("FUZZ_LOG") ? stderr : fopen("/dev/null", "w");
  if (!(srv = es_server_new(&p, &err))) {
    fprintf(stderr, "fuzz_request: %s\n", err.msg);
    abort();
  }
  port = es_server_port(srv);
  return 0;
}

/* Checks hold in every build (assert() is compiled out with NDEBUG). */
static void fail(const char *what, const char *path, const char *got) {
  fprintf(stderr, "fuzz_request: %s for POST %s; got: %.300s\n", what, path, got);
  abort();
}

/* Sends one request; returns the status, with the body in *body. */
static int roundtrip(const char *path, const uint8_t *data, size_t size, char **body) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) abort();
  char head[256];
  int n = snprintf(head, sizeof head,
                   "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                   path, size);
  ssize_t hw;
  while ((hw = write(fd, head, (size_t)n)) < 0 && errno == EINTR) continue;
  if (hw != n) abort();
  for (size_t off = 0; off < size;) {
    ssize_t w = write(fd, data + off, size - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break; /* the server may answer (413) before reading it all */
    off += (size_t)w;
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  errno = 0;
  for (ssize_t r; buf;) { /* libFuzzer's timers interrupt reads: EINTR retries */
    r = read(fd, buf + len, cap - len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
    if (len + 1 == cap) buf = realloc(buf, cap *= 2);
  }
  close(fd);
  if (!buf) abort();
  buf[len] = '\0';
  int status = 0;
  char *b = strstr(buf, "\r\n\r\n");
  if (sscanf(buf, "HTTP/1.1 %d", &status) != 1 || !b) {
    fprintf(stderr, "fuzz_request: body of %zu bytes, %zu bytes back, errno %d\n", size, len,
            errno);
    fail("no complete HTTP response", path, buf);
  }
  *body = strdup(b + 4);
  free(buf);
  return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const char *path = paths[data[0] % NPATHS];
  char *body = NULL;
  int st = roundtrip(path, data + 1, size - 1, &body);
  /* what the API answers to bad input; 500 would be a server bug */
  if (!(st == 200 || st == 201 || st == 400 || st == 404 || st == 413 || st == 503 || st == 504 ||
        st == 507))
    fail("an undocumented status", path, body);
  cJSON *j = cJSON_Parse(body);
  if (!j) fail("a body that is not JSON", path, body); /* every answer here is JSON */
  cJSON_Delete(j);
  free(body);
  return 0;
}
