/*
 * http.c - where a request enters: libmicrohttpd's callbacks.
 *
 * MHD runs `io_threads` threads, each with its own epoll set. A request
 * arrives in on_request() in up to three calls: headers (the es_req_t is
 * made, the path routed, the key and the declared length checked), body
 * chunks (appended up to server.max_body), and the end, where the endpoint
 * runs. An endpoint either sets the reply at once or submits a job and
 * suspends the connection; the worker that completes the job sets the reply
 * and resumes it, and MHD calls on_request() once more to send it.
 *
 * Invariants:
 *  1. A connection is suspended before its job is submitted, so the worker's
 *     resume can never come first.
 *  2. Every request gets exactly one reply; on_completed() frees it and
 *     returns its model reference, whatever happened to the connection.
 *  3. Slow clients: MHD closes a connection idle for keep_alive; a client
 *     that trickles its headers is cut by es__http_reap_slow() once it has
 *     spent request_timeout without completing a request; one that trickles
 *     its body is cut when its next byte arrives after request_timeout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <zlib.h>

#include "../common/fail.h"
#include "server_impl.h"

const char *es__header(es_req_t *r, const char *name) {
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

void es__reply(es_req_t *r, int status, char *body, size_t len, const char *content_type) {
  free(r->reply);
  r->status = status;
  r->reply = body;
  r->reply_len = body ? len : 0;
  r->content_type = content_type ? content_type : "application/json";
}

void es__reply_error(es_req_t *r, int status, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  es_sb_t sb = {0};
  es_sb_puts(&sb, "{\"error\":");
  es_sb_json_str(&sb, msg, strlen(msg));
  es_sb_puts(&sb, "}\n");
  size_t len = 0;
  char *body = es_sb_take(&sb, &len);
  es__reply(r, status, body, len, "application/json");
}

void es__resume(es_req_t *r) { MHD_resume_connection(r->conn); }

/* ---- response ---------------------------------------------------------------------------- */

static int accepts_gzip(es_req_t *r) {
  const char *ae = es__header(r, MHD_HTTP_HEADER_ACCEPT_ENCODING);
  if (!ae) return 0;
  const char *g = strcasestr(ae, "gzip");
  if (!g) return 0;
  const char *end = strchr(g, ',');
  const char *q = strstr(g, "q=0");
  return !(q && (!end || q < end) && !(q[3] == '.' && q[4] && q[4] != '0'));
}

/* gzip of body into a new buffer, or NULL when it does not pay. */
static char *gzip(const char *body, size_t len, size_t *out_len) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
  uLong cap = deflateBound(&z, (uLong)len);
  char *out = malloc(cap);
  if (!out) {
    deflateEnd(&z);
    return NULL;
  }
  z.next_in = (Bytef *)body;
  z.avail_in = (uInt)len;
  z.next_out = (Bytef *)out;
  z.avail_out = (uInt)cap;
  int rc = deflate(&z, Z_FINISH);
  *out_len = z.total_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END || *out_len >= len) {
    free(out);
    return NULL;
  }
  return out;
}

static void add_cors(es_req_t *r, struct MHD_Response *resp) {
  es_server_t *s = r->srv;
  if (!s->cors[0]) return;
  const char *origin = es__header(r, "Origin");
  if (!origin) return;
  if (strcmp(s->cors, "*") == 0) {
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    return;
  }
  size_t n = strlen(origin);
  for (const char *p = s->cors; *p;) {
    while (*p == ' ' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',' && *e != ' ') e++;
    if ((size_t)(e - p) == n && n && memcmp(p, origin, n) == 0) {
      MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
      MHD_add_response_header(resp, "Vary", "Origin");
      return;
    }
    p = e;
  }
}

static es_metric_t *http_series(es_server_t *s, es_req_t *r, int status) {
  char code[8];
  snprintf(code, sizeof code, "%d", status);
  es_metric_t *m = NULL;
  es_metric_series(s->f_http, (const char *[]){es__route_name(r->route.id), code}, &m, NULL);
  return m;
}

static enum MHD_Result send_reply(es_req_t *r) {
  es_server_t *s = r->srv;
  if (!r->reply && r->status == 0) es__reply_error(r, 500, "internal error: no reply");
  if (!r->reply && r->status != 204)
    es__reply_error(r, r->status ? r->status : 500, "out of memory");
  char *body = r->reply;
  size_t len = r->reply_len;
  int gz = 0;
  if (s->gzip_min && len >= s->gzip_min && accepts_gzip(r)) {
    size_t zlen;
    char *z = gzip(body, len, &zlen);
    if (z) {
      free(body);
      body = z, len = zlen, gz = 1;
    }
  }
  r->reply = NULL;
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!resp) {
    free(body);
    return MHD_NO;
  }
  if (r->status != 204)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
  if (gz) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
  if (s->gzip_min && r->reply_len >= s->gzip_min)
    MHD_add_response_header(resp, "Vary", "Accept-Encoding");
  if (r->retry_after > 0) {
    char ra[16];
    snprintf(ra, sizeof ra, "%d", r->retry_after);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
  }
  if (r->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
  if ((r->status == 405 || r->status == 204) && r->route.allow) {
    char allow[32];
    snprintf(allow, sizeof allow, "%s, OPTIONS", r->route.allow);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
  }
  if (r->status == 204 && s->cors[0]) {
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
  }
  add_cors(r, resp);
  enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  int cls = r->status / 100;
  if (cls >= 1 && cls <= 5) atomic_fetch_add(&s->c.status[cls], 1);
  if (r->status >= 500) atomic_fetch_add(&s->c.errors, 1);
  es_metric_t *m = http_series(s, r, r->status);
  if (m) es_counter_inc(m);
  return rc;
}

/* ---- the request ------------------------------------------------------------------------- */

static int key_ok(es_server_t *s, es_req_t *r) {
  if (!s->api_key[0] || es__route_public(r->route.id)) return 1;
  const char *h = es__header(r, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
  h += 7;
  while (*h == ' ') h++;
  size_t a = strlen(h), b = strlen(s->api_key);
  unsigned diff = (unsigned)(a ^ b);
  for (size_t i = 0; i < b; i++)
    diff |= (unsigned char)h[i < a ? i : 0] ^ (unsigned char)s->api_key[i];
  return diff == 0;
}

static es_conn_t *conn_of(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? (es_conn_t *)ci->socket_context : NULL;
}

static void dispatch(es_req_t *r) {
  es_server_t *s = r->srv;
  if (r->route_status == 404) {
    es__reply_error(r, 404, "no endpoint at %s (see GET /v2 and docs/server/README.md)", r->path);
    return;
  }
  if (r->route_status == 400) {
    es__reply_error(r, 400,
                    "invalid model name, version or id in the path (names: 1-63 of "
                    "A-Z a-z 0-9 . _ -, not starting with '.')");
    return;
  }
  if (strcmp(r->method, "OPTIONS") == 0) {
    es__reply(r, 204, NULL, 0, NULL);
    return;
  }
  if (r->route_status == 405) {
    es__reply_error(r, 405, "%s is not allowed here; use %s", r->method, r->route.allow);
    return;
  }
  if (!key_ok(s, r)) {
    es__reply_error(r, 401, "missing or wrong API key: send 'Authorization: Bearer <key>'");
    return;
  }
  if (r->too_large) {
    es__reply_error(r, 413, "request body larger than %llu bytes (server.max_body)",
                    (unsigned long long)s->max_body);
    return;
  }
  switch (r->route.id) {
  case ES_R_V1_CLASSIFY:
  case ES_R_V2_INFER: es__handle_infer(r); break;
  case ES_R_V1_FEEDBACK:
  case ES_R_V1_TRAIN:
  case ES_R_V1_JOB:
  case ES_R_V1_MODELS:
  case ES_R_V2_MODEL:
  case ES_R_V2_MODEL_READY:
  case ES_R_V2_STATS:
  case ES_R_V2_REPO_INDEX:
  case ES_R_V2_REPO_LOAD:
  case ES_R_V2_REPO_UNLOAD: es__handle_models(r); break;
  default: es__handle_ops(r); break;
  }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  es_server_t *s = cls;
  es_req_t *r = *con_cls;
  (void)version;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    r->srv = s;
    r->conn = conn;
    r->t0_us = es__now_us();
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", url);
    r->route_status = es__route(method, url, &r->route);
    if (strcmp(method, "OPTIONS") == 0 && r->route.id != ES_R_NONE) r->route_status = 200;
    *con_cls = r;
    atomic_fetch_add(&s->c.requests, 1);
    es_conn_t *c = conn_of(conn);
    if (c) {
      pthread_mutex_lock(&s->conn_lock);
      c->in_request = 1;
      pthread_mutex_unlock(&s->conn_lock);
    }
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->max_body) {
      /* refuse before reading it: MHD closes the connection after this */
      r->too_large = 1;
      es__reply_error(r, 413, "request body of %s bytes is larger than %llu (server.max_body)", cl,
                      (unsigned long long)s->max_body);
      return send_reply(r);
    }
    return MHD_YES;
  }
  if (*upload_size) {
    if (es__now_us() - r->t0_us > s->request_timeout_us) return MHD_NO; /* body trickle */
    if (!r->too_large && r->body.len + *upload_size <= s->max_body)
      es_sb_put(&r->body, upload, *upload_size);
    else
      r->too_large = 1, es_sb_free(&r->body);
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->suspended) { /* resumed: the worker set the reply */
    r->suspended = 0;
    return send_reply(r);
  }
  if (r->status) return MHD_YES; /* replied already (413 at the headers) */
  if (r->body.oom) {
    es__reply_error(r, 503, "out of memory reading the request body");
    return send_reply(r);
  }
  if (atomic_load(&s->stopping)) {
    r->retry_after = 1;
    es__reply_error(r, 503, "shutting down");
    return send_reply(r);
  }
  dispatch(r);
  if (r->suspended) return MHD_YES;
  return send_reply(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  es_server_t *s = cls;
  es_req_t *r = *con_cls;
  (void)toe;
  es_conn_t *c = conn_of(conn);
  if (c) {
    pthread_mutex_lock(&s->conn_lock);
    c->in_request = 0;
    c->since_us = es__now_us();
    pthread_mutex_unlock(&s->conn_lock);
  }
  if (!r) return;
  if (r->job.served) es_repo_release(s->repo, r->job.served);
  if (r->work_free) r->work_free(r);
  free(r->job.items);
  free(r->reply);
  es_sb_free(&r->body);
  free(r);
  *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  es_server_t *s = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    es_conn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : -1;
    c->since_us = es__now_us();
    pthread_mutex_lock(&s->conn_lock);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    pthread_mutex_unlock(&s->conn_lock);
    *socket_context = c;
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    es_conn_t *c = *socket_context;
    if (!c) return;
    pthread_mutex_lock(&s->conn_lock);
    if (c->prev)
      c->prev->next = c->next;
    else
      s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&s->conn_lock);
    free(c);
    *socket_context = NULL;
  }
}

void es__http_reap_slow(es_server_t *s, int64_t now_us) {
  int64_t limit =
      s->request_timeout_us > s->keep_alive_us ? s->request_timeout_us : s->keep_alive_us;
  pthread_mutex_lock(&s->conn_lock);
  for (es_conn_t *c = s->conns; c; c = c->next)
    if (!c->in_request && c->fd >= 0 && now_us - c->since_us > limit) {
      shutdown(c->fd, SHUT_RDWR); /* MHD sees the end and closes it */
      c->since_us = now_us;       /* once */
    }
  pthread_mutex_unlock(&s->conn_lock);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  es_server_t *s = cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
  es__log(s, "warn", "component=http msg=\"%s\"", msg);
}

int es__http_start(es_server_t *s, es_error_t *err) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_EPOLL_TURBO |
                   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  socklen_t slen;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, s->host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)s->port);
    slen = sizeof *a4;
  } else if (inet_pton(AF_INET6, s->host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)s->port);
    slen = sizeof *a6;
    flags |= MHD_USE_IPv6;
  } else {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(s->host, NULL, &hints, &ai) || !ai)
      return es__fail(err, ES_EINVAL, -1, "server.host '%s' is not an address or a known name",
                      s->host);
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    slen = ai->ai_addrlen;
    if (ai->ai_family == AF_INET6)
      flags |= MHD_USE_IPv6, a6->sin6_port = htons((uint16_t)s->port);
    else
      a4->sin_port = htons((uint16_t)s->port);
    freeaddrinfo(ai);
  }
  (void)slen;
  unsigned timeout_s = (unsigned)((s->keep_alive_us + 999999) / 1000000);
  s->mhd = MHD_start_daemon(
      flags, (uint16_t)s->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
      (unsigned)s->io_threads, MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
      MHD_OPTION_CONNECTION_LIMIT, 1000u, MHD_OPTION_END);
  if (!s->mhd)
    return es__fail(err, ES_EIO, -1,
                    "cannot listen on %s:%d (in use, or not an address of this "
                    "machine): choose another with --port or server.port",
                    s->host, s->port);
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
  if (di && di->port) s->port = di->port;
  const char *h = s->host;
  int v6 = strchr(h, ':') != NULL;
  snprintf(s->url, sizeof s->url, "http://%s%s%s:%d", v6 ? "[" : "", h, v6 ? "]" : "", s->port);
  return 0;
}

void es__http_stop(es_server_t *s) {
  if (!s->mhd) return;
  MHD_stop_daemon(s->mhd);
  s->mhd = NULL;
}
