/*
 * repo.c - the model repository (repo.h): which models are served, which
 * version of each is loaded, and swapping versions under live traffic.
 *
 * Every model is a `model` entry in an array sorted by name; what serves it
 * is an `inst` (one loaded version: the backend's instance, its budget
 * reservation, a copy of its configuration). A load runs in three steps:
 *   plan     (I/O, no lock) read config.ini, list the version folders, pick
 *            the version and the file (the "plan"), and stat them;
 *   load     (no repository lock) the backend's estimate, the budget's
 *            reservation, the backend's load;
 *   install  (under mu, O(1)) the new inst becomes current; the old one is
 *            unloaded at once when nobody holds it, else by its last release.
 * Change detection compares a plan's key (version, file path, the file's and
 * config.ini's stat signatures) with the current inst's key and with the key
 * of the last failed attempt: a change on disk loads once, a corrupt file is
 * reported once, not every poll.
 *
 * Locks, always taken in this order: poll_mu (one es_repo_poll() at a time),
 * a model's load_mu (one load of that model at a time; held through its
 * I/O), mu (the index, states, reference counts; never held through I/O or
 * a callback). Events are queued while working and delivered at the end of
 * the public call, with no lock held.
 *
 * Invariants:
 *  1. Under mu, an inst is current (m->cur == it, it->current == 1) or is
 *     held (refs > 0) or is being freed by the one thread that saw both
 *     drop; whoever makes the second of them false frees it, outside mu.
 *  2. m->cur changes only in install() (to a fully loaded, reserved inst)
 *     and in detach() (unload, keep-alive, removal): a failed load never
 *     touches it (repo.h, invariant 2).
 *  3. A model entry leaves the array only under mu (gone = 1) and is freed
 *     when it is gone and unpinned; a thread working on it without mu holds
 *     a pin.
 *  4. Every inst holds exactly one budget reservation (possibly empty), made
 *     before its backend load and released after its backend unload.
 *  5. m->fail_key is the plan key of the last failed attempt at the model's
 *     target (not of a fallback to an older version), so a poll retries a
 *     failure only when something on disk changed.
 */
#include "edgeserve/repo.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "edgeserve/config.h"
#include "edgeserve/sched.h"

#include "../common/fail.h"
#include "../common/inilines.h"

#define PATH_CAP   1024 /* longest path handled, with its NUL */
#define LADDER_MAX 8    /* variants of one version considered */
#define MAX_CAND   32   /* highest version folders considered when picking one */
#define CONF_MAX   (64 * 1024)
#define CONF_FILE  "config.ini"

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* snprintf into a buffer that may cut the text (messages, never paths). */
static void say(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
}

/* snprintf for paths: returns 0, or -1 when the path does not fit. */
static int mkpath(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int mkpath(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- configuration ------------------------------------------------------------ */

es_model_conf_t es_model_conf_default(void) {
  es_model_conf_t c;
  memset(&c, 0, sizeof c);
  c.keep_alive_us = 10ll * 60 * 1000000;
  c.max_batch = 32;
  c.max_queue_delay_us = 0;
  c.queue_limit = 256;
  c.priority = ES_SCHED_NORMAL;
  c.timeout_us = 5ll * 1000000;
  c.auto_threshold = 0.85;
  c.suggest_threshold = 0.50;
  c.alternatives = 3;
  c.sla_p99_us = 50ll * 1000;
  return c;
}

enum {
  K_BACKEND,
  K_VERSION,
  K_VARIANTS,
  K_KEEP_ALIVE,
  K_MAX_BATCH,
  K_MAX_QUEUE_DELAY,
  K_QUEUE_LIMIT,
  K_PRIORITY,
  K_TIMEOUT,
  K_AUTO,
  K_SUGGEST,
  K_ALTERNATIVES,
  K_P99,
  K_P95,
  K_DATA,
  NKEYS
};

static const struct {
  const char *section, *name;
} conf_keys[NKEYS] = {
    [K_BACKEND] = {"model", "backend"},
    [K_VERSION] = {"model", "version"},
    [K_VARIANTS] = {"model", "variants"},
    [K_KEEP_ALIVE] = {"model", "keep_alive"},
    [K_MAX_BATCH] = {"batching", "max_batch"},
    [K_MAX_QUEUE_DELAY] = {"batching", "max_queue_delay"},
    [K_QUEUE_LIMIT] = {"batching", "queue_limit"},
    [K_PRIORITY] = {"batching", "priority"},
    [K_TIMEOUT] = {"batching", "timeout"},
    [K_AUTO] = {"decision", "auto"},
    [K_SUGGEST] = {"decision", "suggest"},
    [K_ALTERNATIVES] = {"decision", "alternatives"},
    [K_P99] = {"sla", "p99"},
    [K_P95] = {"sla", "p95"},
    [K_DATA] = {"training", "data"},
};

static const char *const priority_names[] = {"critical", "high", "normal", "low"};

typedef struct conf_ctx {
  es__inilines l;  /* the text, the current line, the first error */
  int seen[NKEYS]; /* line a key was set on, 0 = not yet */
  es_model_conf_t c;
} conf_ctx;

static int conf_fail(conf_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int conf_fail(conf_ctx *x, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  es__inilines_vfail(&x->l, ES_EINVAL, fmt, ap);
  va_end(ap);
  return 0;
}

static int parse_int(const char *v, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (end == v || *end || errno || n < lo || n > hi) return -1;
  *out = n;
  return 0;
}

static int parse_prob(const char *v, double *out) {
  char *end;
  double d = strtod(v, &end);
  if (end == v || *end || !(d >= 0.0 && d <= 1.0)) return -1;
  *out = d;
  return 0;
}

/* A file name a variant may have: no directory, not hidden, < 64 bytes. */
static int plain_file_name(const char *s, size_t n) {
  return n > 0 && n < 64 && s[0] != '.' && !memchr(s, '/', n) && !memchr(s, '\0', n);
}

static int conf_variants(conf_ctx *x, const char *v) {
  es_model_conf_t *c = &x->c;
  c->nvariants = 0;
  for (const char *p = v;;) {
    while (*p == ' ' || *p == '\t') p++;
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    if (!plain_file_name(p, n))
      return conf_fail(x,
                       "[model] variants: '%.*s' is not a file name (1 to 63 bytes, no '/', "
                       "not starting with '.')",
                       (int)(n > 64 ? 64 : n), p);
    if (c->nvariants == ES_MAX_VARIANTS)
      return conf_fail(x, "[model] variants: more than %d variants", ES_MAX_VARIANTS);
    memcpy(c->variants[c->nvariants], p, n);
    c->variants[c->nvariants][n] = '\0';
    c->nvariants++;
    if (!e) return 1;
    p = e + 1;
  }
}

static int conf_duration(conf_ctx *x, int k, const char *v, int64_t *out) {
  int64_t us;
  if (es_config_parse_duration(v, &us))
    return conf_fail(x, "[%s] %s = '%.64s': not a duration (a whole number with us, ms, s, m or h)",
                     conf_keys[k].section, conf_keys[k].name, v);
  *out = us;
  return 1;
}

static int on_conf_pair(void *user, const char *section, const char *name, const char *value) {
  conf_ctx *x = user;
  if (x->l.failed) return 0;
  if (!*section) return conf_fail(x, "key '%.64s' outside any [section]", name);
  int k = -1, section_known = 0;
  for (int i = 0; i < NKEYS; i++) {
    if (strcmp(conf_keys[i].section, section)) continue;
    section_known = 1;
    if (!strcmp(conf_keys[i].name, name)) k = i;
  }
  if (!section_known)
    return conf_fail(x, "unknown section [%.64s] (known: model, batching, decision, sla, training)",
                     section);
  if (k < 0) {
    char known[160] = "";
    for (int i = 0; i < NKEYS; i++) {
      if (strcmp(conf_keys[i].section, section)) continue;
      size_t l = strlen(known);
      say(known + l, sizeof known - l, "%s%s", l ? ", " : "", conf_keys[i].name);
    }
    return conf_fail(x, "unknown key '%.64s' in [%s] (known: %s)", name, section, known);
  }
  if (x->seen[k])
    return conf_fail(x, "[%s] %s already set on line %d%s", section, name, x->seen[k],
                     *x->l.line == ' ' || *x->l.line == '\t'
                         ? " (an indented line continues the value above it)"
                         : "");
  x->seen[k] = x->l.lineno;
  es_model_conf_t *c = &x->c;
  long n;
  switch (k) {
  case K_BACKEND:
    c->backend = es_backend_find(value);
    if (!c->backend)
      return conf_fail(x, "[model] backend = '%.64s': unknown (known: fasttext)", value);
    return 1;
  case K_VERSION:
    if (parse_int(value, 0, INT_MAX, &n))
      return conf_fail(x, "[model] version = '%.64s': not a version number (1, 2, ...; 0: highest)",
                       value);
    c->pinned_version = (int)n;
    return 1;
  case K_VARIANTS: return conf_variants(x, value);
  case K_KEEP_ALIVE: return conf_duration(x, k, value, &c->keep_alive_us);
  case K_MAX_BATCH:
    if (parse_int(value, 1, 1024, &n))
      return conf_fail(x, "[batching] max_batch = '%.64s': not a number from 1 to 1024", value);
    c->max_batch = (int)n;
    return 1;
  case K_MAX_QUEUE_DELAY: return conf_duration(x, k, value, &c->max_queue_delay_us);
  case K_QUEUE_LIMIT:
    if (parse_int(value, 1, 1000000, &n))
      return conf_fail(x, "[batching] queue_limit = '%.64s': not a number from 1 to 1000000",
                       value);
    c->queue_limit = (int)n;
    return 1;
  case K_PRIORITY:
    for (int i = 0; i < 4; i++)
      if (!strcmp(value, priority_names[i])) {
        c->priority = ES_SCHED_CRITICAL + i;
        return 1;
      }
    return conf_fail(x, "[batching] priority = '%.64s': not one of critical, high, normal, low",
                     value);
  case K_TIMEOUT: return conf_duration(x, k, value, &c->timeout_us);
  case K_AUTO:
  case K_SUGGEST:
    if (parse_prob(value, k == K_AUTO ? &c->auto_threshold : &c->suggest_threshold))
      return conf_fail(x, "[decision] %s = '%.64s': not a probability from 0 to 1",
                       conf_keys[k].name, value);
    return 1;
  case K_ALTERNATIVES:
    if (parse_int(value, 0, 100, &n))
      return conf_fail(x, "[decision] alternatives = '%.64s': not a number from 0 to 100", value);
    c->alternatives = (int)n;
    return 1;
  case K_P99: return conf_duration(x, k, value, &c->sla_p99_us);
  case K_P95: return conf_duration(x, k, value, &c->sla_p95_us);
  case K_DATA: {
    size_t l = strlen(value);
    if (l == 0 || l >= sizeof c->train_data || value[0] == '/' || !strncmp(value, "../", 3) ||
        strstr(value, "/../") || !strcmp(value, "..") || (l >= 3 && !strcmp(value + l - 3, "/..")))
      return conf_fail(x, "[training] data = '%.64s': not a path inside the model folder", value);
    memcpy(c->train_data, value, l + 1);
    return 1;
  }
  }
  return 0;
}

int es_model_conf_parse(es_model_conf_t *conf, const char *text, const char *name,
                        es_error_t *err) {
  if (!conf || !text) return es__fail(err, ES_EINVAL, -1, "model configuration: no text");
  conf_ctx *x = calloc(1, sizeof *x);
  if (!x) return es__fail(err, ES_ENOMEM, -1, "out of memory");
  es__inilines_init(&x->l, text, name ? name : CONF_FILE);
  x->c = *conf;
  int rc = es__inilines_parse(&x->l, on_conf_pair, x, ES_EINVAL, err);
  if (!rc && x->c.suggest_threshold > x->c.auto_threshold) {
    x->l.lineno = x->seen[K_SUGGEST] > x->seen[K_AUTO] ? x->seen[K_SUGGEST] : x->seen[K_AUTO];
    rc = es__fail(err, ES_EINVAL, -1, "%s:%d: [decision] suggest (%.2f) is above auto (%.2f)",
                  x->l.name, x->l.lineno, x->c.suggest_threshold, x->c.auto_threshold);
  }
  if (rc) {
    free(x);
    if (rc == ES_ENOMEM) return rc;
    if (err) err->code = ES_EINVAL; /* every other failure reads as invalid configuration */
    return ES_EINVAL;
  }
  *conf = x->c;
  free(x);
  return 0;
}

int es_repo_valid_name(const char *name, size_t len) {
  if (!name || len == 0 || len >= ES_MODEL_NAME_MAX || name[0] == '.') return 0;
  for (size_t i = 0; i < len; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '.' || ch == '_' || ch == '-'))
      return 0;
  }
  return 1;
}

/* ---- the repository's state ------------------------------------------------------ */

/* What a file was when looked at: a change of any field is a change. */
typedef struct fsig {
  uint64_t dev, ino, size;
  int64_t mtime_ns;
  int present;
} fsig;

static fsig sig_of(const struct stat *st) {
  fsig s = {(uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
            (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec, 1};
  return s;
}

static int sig_eq(const fsig *a, const fsig *b) {
  return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime_ns == b->mtime_ns;
}

/* What a load is made from; equal keys mean nothing changed on disk. */
typedef struct pkey {
  int version;
  char path[PATH_CAP];
  fsig file, conf;
} pkey;

static int key_eq(const pkey *a, const pkey *b) {
  return a->version == b->version && !strcmp(a->path, b->path) && sig_eq(&a->file, &b->file) &&
         sig_eq(&a->conf, &b->conf);
}

/* A plan: what to load for a model, found on disk (see the top). */
typedef struct plan {
  int rc; /* 0, or why there is nothing to load (reason says more) */
  char reason[256];
  pkey key;
  es_model_conf_t conf;
  const es_backend_t *be;
  int latest;
  char ladder[LADDER_MAX][64];
  int nladder, variant_index;
  int ncand, cand[MAX_CAND]; /* older versions to fall back to, highest first */
} plan;

/* One loaded version (es_served_t is its public face). */
typedef struct inst {
  es_served_t pub;
  int refs;    /* references handed out (under mu) */
  int current; /* it is its model's m->cur (under mu) */
  pkey key;
  char name[ES_MODEL_NAME_MAX];
  char variant[64];
  char ladder[LADDER_MAX][64]; /* the version's variants, best first */
  int nladder;
  es_model_conf_t conf;
  es_budget_t *budget;
  es_budget_res_t res;
} inst;

typedef struct model {
  char name[ES_MODEL_NAME_MAX];
  int is_file;          /* added by es_repo_add_file */
  char file[PATH_CAP];  /* file models: the file served */
  int file_version;     /* file models: its version */
  es_model_conf_t conf; /* the last good configuration */
  fsig conf_sig;        /* config.ini it came from (dir models) */
  int conf_cached;
  es_model_state_t state;
  inst *cur;
  int latest;
  int want_variant; /* the ladder rung loads aim at (es_repo_load_variant) */
  int fail_code, has_fail;
  pkey fail_key;          /* invariant 5 */
  uint64_t refused_bytes; /* what the budget refused last (fail_code ES_EBUDGET) */
  char reason[256];
  int64_t last_used_us;
  uint64_t requests;
  int pins, gone; /* invariant 3 */
  pthread_mutex_t load_mu;
} model;

struct es_repo {
  char *dir;
  es_budget_t *budget;
  es_backend_opts_t opts;
  int load_on_scan;
  es_repo_event_fn on_event;
  void *ud;
  pthread_mutex_t mu, poll_mu;
  model **models; /* sorted by name */
  int nmodels, cap;
  uint64_t generation;
};

/* Events, queued during a call and delivered at its end without locks. */
typedef struct qev {
  es_repo_event_kind_t kind;
  char name[ES_MODEL_NAME_MAX];
  int version, old_version;
  char msg[320];
} qev;

typedef struct evq {
  int n, cap;
  qev *e; /* grown as needed; an event that finds no memory is dropped */
} evq;

static void evq_add(evq *q, es_repo_event_kind_t kind, const char *name, int version,
                    int old_version, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void evq_add(evq *q, es_repo_event_kind_t kind, const char *name, int version,
                    int old_version, const char *fmt, ...) {
  if (q->n == q->cap) {
    int nc = q->cap ? 2 * q->cap : 4;
    qev *ne = realloc(q->e, (size_t)nc * sizeof *ne);
    if (!ne) return;
    q->e = ne;
    q->cap = nc;
  }
  qev *e = &q->e[q->n++];
  e->kind = kind;
  say(e->name, sizeof e->name, "%s", name);
  e->version = version;
  e->old_version = old_version;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
}

static void evq_flush(es_repo_t *r, evq *q) {
  for (int i = 0; i < q->n; i++) {
    if (!r->on_event) continue;
    es_repo_event_t ev = {q->e[i].kind, q->e[i].name, q->e[i].version, q->e[i].old_version,
                          q->e[i].msg};
    r->on_event(r->ud, &ev);
  }
  free(q->e);
  memset(q, 0, sizeof *q);
}

/* Binary search under mu: the index of `name`, or -(insertion point) - 1. */
static int find_at(const es_repo_t *r, const char *name) {
  int lo = 0, hi = r->nmodels;
  while (lo < hi) {
    int mid = (lo + hi) / 2, c = strcmp(r->models[mid]->name, name);
    if (c == 0) return mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -lo - 1;
}

static model *find(const es_repo_t *r, const char *name) {
  int i = find_at(r, name);
  return i >= 0 ? r->models[i] : NULL;
}

static void model_free(model *m) {
  pthread_mutex_destroy(&m->load_mu);
  free(m);
}

/* Unpins m; frees it when it was the last pin of a gone model. */
static void unpin(es_repo_t *r, model *m) {
  pthread_mutex_lock(&r->mu);
  int last = --m->pins == 0 && m->gone;
  pthread_mutex_unlock(&r->mu);
  if (last) model_free(m);
}

/* Unloads an inst nobody holds any more (invariant 1, 4). */
static void inst_free(inst *in) {
  if (!in) return;
  in->pub.backend->unload(in->pub.inst);
  if (in->res.budget) es_budget_release(in->budget, &in->res);
  free(in);
}

/* Takes m->cur out of service under mu; returns it when it must be freed
 * now (nobody holds it), else NULL (the last release frees it). */
static inst *detach(model *m) {
  inst *in = m->cur;
  if (!in) return NULL;
  m->cur = NULL;
  in->current = 0;
  return in->refs == 0 ? in : NULL;
}

/* A new model entry (state UNAVAILABLE), inserted under mu at index -(at)-1;
 * NULL when out of memory. */
static model *insert(es_repo_t *r, const char *name, int at) {
  if (r->nmodels == r->cap) {
    int nc = r->cap ? 2 * r->cap : 16;
    model **nm = realloc(r->models, (size_t)nc * sizeof *nm);
    if (!nm) return NULL;
    r->models = nm;
    r->cap = nc;
  }
  model *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  if (pthread_mutex_init(&m->load_mu, NULL)) {
    free(m);
    return NULL;
  }
  say(m->name, sizeof m->name, "%s", name);
  m->conf = es_model_conf_default();
  say(m->conf.name, sizeof m->conf.name, "%s", name);
  m->state = ES_MODEL_UNAVAILABLE;
  int pos = -at - 1;
  memmove(r->models + pos + 1, r->models + pos, (size_t)(r->nmodels - pos) * sizeof *r->models);
  r->models[pos] = m;
  r->nmodels++;
  return m;
}

/* Takes m out of the index under mu (invariant 3); returns the inst to free
 * now, if any. The caller frees m itself when this returns with no pin. */
static inst *remove_model(es_repo_t *r, model *m) {
  int i = find_at(r, m->name);
  assert(i >= 0 && r->models[i] == m);
  memmove(r->models + i, r->models + i + 1, (size_t)(r->nmodels - i - 1) * sizeof *r->models);
  r->nmodels--;
  m->gone = 1;
  return detach(m);
}

/* ---- plans ------------------------------------------------------------------ */

static int plan_fail(plan *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int plan_fail(plan *p, int rc, const char *fmt, ...) {
  p->rc = rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->reason, sizeof p->reason, fmt, ap);
  va_end(ap);
  return rc;
}

/* "1", "2", ...: a positive decimal integer without leading zeros. */
static int version_number(const char *s) {
  if (*s < '1' || *s > '9') return 0;
  long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return 0;
    v = v * 10 + (*p - '0');
    if (v > INT_MAX) return 0;
  }
  return (int)v;
}

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *dir, const char *name) {
  char path[PATH_CAP];
  struct stat st;
  return !mkpath(path, sizeof path, "%s/%s", dir, name) && stat(path, &st) == 0 &&
         S_ISREG(st.st_mode);
}

/* The version folders of mdir, highest first, up to cap of them in v[];
 * returns how many there are (all of them) and the highest in *latest. */
static int list_versions(const char *mdir, int *v, int cap, int *latest) {
  *latest = 0;
  DIR *d = opendir(mdir);
  if (!d) return -1;
  int n = 0, kept = 0;
  char path[PATH_CAP];
  for (struct dirent *e; (e = readdir(d));) {
    int ver = version_number(e->d_name);
    if (!ver || mkpath(path, sizeof path, "%s/%s", mdir, e->d_name) || !is_dir(path)) continue;
    n++;
    if (ver > *latest) *latest = ver;
    /* keep the `cap` highest, sorted descending (insertion) */
    int i = kept < cap ? kept++ : cap;
    if (i == cap && ver < v[cap - 1]) continue;
    if (i == cap) i = cap - 1;
    while (i > 0 && v[i - 1] < ver) {
      v[i] = v[i - 1];
      i--;
    }
    v[i] = ver;
  }
  closedir(d);
  return n < cap ? n : cap;
}

/* The backend for the files of vdir when config.ini names none: the one
 * accepting the first model file found. */
static const es_backend_t *detect_backend(const char *vdir) {
  DIR *d = opendir(vdir);
  if (!d) return NULL;
  const es_backend_t *be = NULL;
  for (struct dirent *e; !be && (e = readdir(d));)
    if (e->d_name[0] != '.') be = es_backend_for_file(e->d_name);
  closedir(d);
  return be;
}

/* Fills p's ladder for version folder vdir: the configured variants present
 * there, in their order, or else the backend's variants(). Returns the
 * number of rungs (0: the version is not complete). */
static int ladder_of(const char *vdir, const es_model_conf_t *c, plan *p) {
  p->nladder = 0;
  p->be = c->backend ? c->backend : detect_backend(vdir);
  if (!p->be) return 0;
  for (int i = 0; i < c->nvariants && p->nladder < LADDER_MAX; i++)
    if (p->be->accepts(c->variants[i]) && is_file(vdir, c->variants[i]))
      memcpy(p->ladder[p->nladder++], c->variants[i], 64);
  if (p->nladder) return p->nladder;
  int n = p->be->variants(vdir, p->ladder, LADDER_MAX, NULL);
  p->nladder = n < 0 ? 0 : n > LADDER_MAX ? LADDER_MAX : n;
  return p->nladder;
}

/* Reads config.ini of mdir into p->conf (cached in m while its stat
 * signature stays the same). */
static int plan_conf(es_repo_t *r, model *m, const char *mdir, plan *p) {
  char path[PATH_CAP];
  if (mkpath(path, sizeof path, "%s/%s", mdir, CONF_FILE))
    return plan_fail(p, ES_ERANGE, "%s/%s: path too long", mdir, CONF_FILE);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  if (fd < 0) {
    if (errno != ENOENT) return plan_fail(p, ES_EIO, "%s: %s", path, strerror(errno));
    memset(&p->key.conf, 0, sizeof p->key.conf); /* absent: the defaults */
  } else if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    close(fd);
    return plan_fail(p, ES_EIO, "%s: not a regular file", path);
  } else {
    p->key.conf = sig_of(&st);
  }
  pthread_mutex_lock(&r->mu);
  int cached = m->conf_cached && sig_eq(&m->conf_sig, &p->key.conf);
  if (cached) p->conf = m->conf;
  pthread_mutex_unlock(&r->mu);
  if (cached) {
    if (fd >= 0) close(fd);
    return 0;
  }
  p->conf = es_model_conf_default();
  say(p->conf.name, sizeof p->conf.name, "%s", m->name);
  if (fd >= 0) {
    if (st.st_size > CONF_MAX) {
      close(fd);
      return plan_fail(p, ES_EINVAL, "%s is larger than %d KiB", CONF_FILE, CONF_MAX / 1024);
    }
    char *text = malloc((size_t)st.st_size + 1);
    if (!text) {
      close(fd);
      return plan_fail(p, ES_ENOMEM, "out of memory reading %s", path);
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
      ssize_t k = read(fd, text + got, (size_t)st.st_size - got);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) break;
      got += (size_t)k;
    }
    close(fd);
    text[got] = '\0';
    es_error_t e;
    int rc = strlen(text) != got ? es__fail(&e, ES_EINVAL, -1, "%s: holds a NUL byte", CONF_FILE)
                                 : es_model_conf_parse(&p->conf, text, CONF_FILE, &e);
    free(text);
    if (rc) return plan_fail(p, rc, "%s", e.msg);
    if (p->conf.train_data[0]) {
      char full[PATH_CAP];
      if (mkpath(full, sizeof full, "%s/%s", mdir, p->conf.train_data) ||
          strlen(full) >= sizeof p->conf.train_data)
        return plan_fail(p, ES_EINVAL, "%s: [training] data: the path %s/%s is too long", CONF_FILE,
                         mdir, p->conf.train_data);
      memcpy(p->conf.train_data, full, strlen(full) + 1);
    }
  }
  pthread_mutex_lock(&r->mu);
  m->conf = p->conf;
  m->conf_sig = p->key.conf;
  m->conf_cached = 1;
  pthread_mutex_unlock(&r->mu);
  return 0;
}

/* Stats the chosen rung into p->key. */
static int plan_file(plan *p, const char *vdir) {
  if (mkpath(p->key.path, sizeof p->key.path, "%s/%s", vdir, p->ladder[p->variant_index]))
    return plan_fail(p, ES_ERANGE, "%s/%s: path too long", vdir, p->ladder[p->variant_index]);
  struct stat st;
  if (stat(p->key.path, &st)) return plan_fail(p, ES_EIO, "%s: %s", p->key.path, strerror(errno));
  p->key.file = sig_of(&st);
  return 0;
}

/* The plan of a model folder: version `force` (0: the pinned one, or the
 * highest complete one), rung `variant` of its ladder (0 when it has no
 * such rung). I/O only; m's conf cache under mu. */
static int plan_dir(es_repo_t *r, model *m, int force, int variant, plan *p) {
  memset(p, 0, sizeof *p);
  char mdir[PATH_CAP], vdir[PATH_CAP];
  if (mkpath(mdir, sizeof mdir, "%s/%s", r->dir, m->name))
    return plan_fail(p, ES_ERANGE, "%s/%s: path too long", r->dir, m->name);
  if (plan_conf(r, m, mdir, p)) return p->rc;
  int v[MAX_CAND];
  int n = list_versions(mdir, v, MAX_CAND, &p->latest);
  if (n < 0) return plan_fail(p, ES_ENOTFOUND, "%s: %s", mdir, strerror(errno));
  int want = force ? force : p->conf.pinned_version;
  if (want) {
    if (mkpath(vdir, sizeof vdir, "%s/%d", mdir, want) || !is_dir(vdir))
      return plan_fail(p, ES_ENOTFOUND, "version %d is not on disk (%s/%d/)", want, m->name, want);
    if (!ladder_of(vdir, &p->conf, p))
      return plan_fail(p, ES_ENOTFOUND, "version %d holds no model file (%s/%d/)", want, m->name,
                       want);
    p->key.version = want;
  } else {
    int i = 0;
    for (; i < n; i++) {
      if (mkpath(vdir, sizeof vdir, "%s/%d", mdir, v[i])) continue;
      if (ladder_of(vdir, &p->conf, p)) break;
    }
    if (i == n)
      return plan_fail(p, ES_ENOTFOUND,
                       n ? "no version folder of %s holds a model file"
                         : "%s has no version folder (1/, 2/, ...)",
                       m->name);
    p->key.version = v[i];
    for (int j = i + 1; j < n; j++) p->cand[p->ncand++] = v[j];
  }
  p->variant_index = variant < p->nladder ? variant : 0;
  return plan_file(p, vdir);
}

/* The plan of a file model: its file, as it is now. */
static int plan_single(es_repo_t *r, model *m, plan *p) {
  memset(p, 0, sizeof *p);
  pthread_mutex_lock(&r->mu);
  p->conf = m->conf;
  p->key.version = p->latest = m->file_version;
  say(p->key.path, sizeof p->key.path, "%s", m->file);
  pthread_mutex_unlock(&r->mu);
  p->be = p->conf.backend;
  const char *base = strrchr(p->key.path, '/');
  base = base ? base + 1 : p->key.path;
  say(p->ladder[0], sizeof p->ladder[0], "%s", base);
  p->nladder = 1;
  struct stat st;
  if (stat(p->key.path, &st)) return plan_fail(p, ES_EIO, "%s: %s", p->key.path, strerror(errno));
  p->key.file = sig_of(&st);
  return 0;
}

static int plan_model(es_repo_t *r, model *m, int force, int variant, plan *p) {
  return m->is_file ? plan_single(r, m, p) : plan_dir(r, m, force, variant, p);
}

/* ---- loading ------------------------------------------------------------------- */

/* Records a failed attempt under mu (invariant 5: a fallback's failure
 * does not replace the target's). */
static void record_failure(es_repo_t *r, model *m, const plan *p, int rc, const char *msg,
                           uint64_t refused_bytes, int fallback) {
  pthread_mutex_lock(&r->mu);
  if (!fallback) {
    m->has_fail = 1;
    m->fail_key = p->key;
    m->fail_code = rc;
    m->refused_bytes = refused_bytes;
    say(m->reason, sizeof m->reason, "%s", msg);
  }
  if (p->latest > m->latest) m->latest = p->latest;
  if (!m->cur && !m->gone) m->state = ES_MODEL_FAILED;
  pthread_mutex_unlock(&r->mu);
}

/* Loads plan p of model m (pinned; its load_mu held) and installs it
 * (invariant 2). With take_ref, hands a reference to *out as acquire() does.
 * Queues the events. Returns 0 or the load's error, with *err filled. */
static int try_load(es_repo_t *r, model *m, const plan *p, int fallback, int take_ref,
                    es_served_t **out, evq *q, es_error_t *err) {
  int v = p->key.version;
  if (p->rc) {
    record_failure(r, m, p, p->rc, p->reason, 0, fallback);
    evq_add(q, ES_REPO_FAILED, m->name, v, 0, "model '%s': %s", m->name, p->reason);
    return es__fail(err, p->rc, -1, "model '%s': %s", m->name, p->reason);
  }
  es_backend_opts_t o = r->opts;
  if (p->conf.max_batch > o.max_batch) o.max_batch = p->conf.max_batch;
  es_error_t e;
  memset(&e, 0, sizeof e);
  es_model_estimate_t est;
  int rc = p->be->estimate(p->key.path, &o, &est, &e);
  inst *in = NULL;
  if (rc) goto failed;
  in = calloc(1, sizeof *in);
  if (!in) {
    rc = es__fail(&e, ES_ENOMEM, -1, "out of memory");
    goto failed;
  }
  in->budget = r->budget;
  if (r->budget) {
    es_budget_refusal_t why;
    rc = es_budget_reserve_mapped(r->budget, ES_BUDGET_MODEL, est.total_bytes, est.mapped_bytes,
                                  m->name, &in->res, &why);
    if (rc == ES_EBUDGET) {
      /* budget.c says "model 'media' needs ...": name the version too */
      char subject[96], msg[320];
      say(subject, sizeof subject, "model '%s'", m->name);
      size_t sl = strlen(subject);
      if (!strncmp(why.reason, subject, sl))
        say(msg, sizeof msg, "%s v%d%s", subject, v, why.reason + sl);
      else
        say(msg, sizeof msg, "model '%s' v%d: %s", m->name, v, why.reason);
      free(in);
      record_failure(r, m, p, ES_EBUDGET, msg, why.required, fallback);
      evq_add(q, ES_REPO_REFUSED, m->name, v, 0, "%s", msg);
      return es__fail(err, ES_EBUDGET, -1, "%s", msg);
    }
    if (rc) {
      es__fail(&e, rc, -1, "budget: %s", es_strerror(rc));
      goto failed;
    }
  }
  void *bi = NULL;
  rc = p->be->load(p->key.path, &o, &bi, &e);
  if (rc) goto failed;

  in->pub.inst = bi;
  in->pub.backend = p->be;
  in->key = p->key;
  in->conf = p->conf;
  say(in->name, sizeof in->name, "%s", m->name);
  memcpy(in->variant, p->ladder[p->variant_index], 64);
  memcpy(in->ladder, p->ladder, sizeof in->ladder);
  in->nladder = p->nladder;
  in->pub.name = in->name;
  in->pub.version = v;
  in->pub.path = in->key.path;
  in->pub.variant = in->variant;
  in->pub.variant_index = p->variant_index;
  in->pub.conf = &in->conf;
  p->be->describe(bi, &in->pub.desc);
  in->pub.reserved_bytes = in->res.bytes;
  in->pub.loaded_at_us = mono_us();

  /* what the event says, taken now: once installed, `in` may be freed by
   * another thread at any time (an unload, a keep-alive) */
  char res[32];
  es_budget_human(in->res.bytes, res, sizeof res);
  const char *platform = in->pub.desc.platform, *format = in->pub.desc.format;
  const char *variant = p->ladder[p->variant_index];

  pthread_mutex_lock(&r->mu);
  if (m->gone) { /* removed from disk while loading */
    pthread_mutex_unlock(&r->mu);
    inst_free(in);
    return es__fail(err, ES_ENOTFOUND, -1, "model '%s' was removed", m->name);
  }
  int old_version = m->cur ? m->cur->pub.version : 0;
  in->pub.generation = ++r->generation;
  in->current = 1;
  inst *to_free = detach(m);
  m->cur = in;
  m->state = ES_MODEL_READY;
  m->last_used_us = in->pub.loaded_at_us;
  if (p->latest > m->latest) m->latest = p->latest;
  if (!fallback) {
    m->has_fail = 0;
    m->reason[0] = '\0';
  }
  if (take_ref) {
    in->refs++;
    *out = &in->pub;
  }
  pthread_mutex_unlock(&r->mu);
  inst_free(to_free);

  if (old_version)
    evq_add(q, ES_REPO_SWAPPED, m->name, v, old_version, "model '%s' v%d (%s) replaced v%d%s",
            m->name, v, variant, old_version,
            fallback ? " (an older version: the newest failed)" : "");
  else
    evq_add(q, ES_REPO_LOADED, m->name, v, 0, "model '%s' v%d loaded (%s, %s %s, %s reserved)%s",
            m->name, v, variant, platform, format, r->budget ? res : "none",
            fallback ? "; the newest version failed" : "");
  return 0;

failed:
  if (in) {
    if (in->res.budget) es_budget_release(r->budget, &in->res);
    free(in);
  }
  if (!e.msg[0]) say(e.msg, sizeof e.msg, "%s: %s", p->key.path, es_strerror(rc));
  record_failure(r, m, p, rc, e.msg, 0, fallback);
  evq_add(q, ES_REPO_FAILED, m->name, v, 0, "model '%s' v%d: %s", m->name, v, e.msg);
  return es__fail(err, rc, e.offset, "model '%s' v%d: %s", m->name, v, e.msg);
}

/* Loads p; when it fails (not for the budget) and nothing serves, falls
 * back to the older complete versions of p, newest first. */
static int load_plan(es_repo_t *r, model *m, const plan *p, int take_ref, es_served_t **out, evq *q,
                     es_error_t *err) {
  int rc = try_load(r, m, p, 0, take_ref, out, q, err);
  if (rc == 0 || rc == ES_EBUDGET || p->rc) return rc;
  for (int i = 0; i < p->ncand; i++) {
    pthread_mutex_lock(&r->mu);
    int serving = m->cur != NULL, want = m->want_variant;
    pthread_mutex_unlock(&r->mu);
    if (serving) break;
    plan *fp = malloc(sizeof *fp);
    if (!fp) break;
    int frc = plan_dir(r, m, p->cand[i], want, fp);
    if (frc == 0) frc = try_load(r, m, fp, 1, take_ref, out, q, NULL);
    free(fp);
    if (frc == 0) return 0;
    if (frc == ES_EBUDGET) break;
  }
  return rc;
}

/* Plans and loads m (pinned) under its load_mu. force: version to load (0:
 * the plan's). Unless `always`, does nothing when the plan is what serves
 * or what failed last. Returns 0, or the load's error. */
static int reload(es_repo_t *r, model *m, int force, int always, int take_ref, es_served_t **out,
                  evq *q, int *changed, es_error_t *err) {
  plan *p = malloc(sizeof *p);
  if (!p) return es__fail(err, ES_ENOMEM, -1, "out of memory");
  pthread_mutex_lock(&m->load_mu);
  pthread_mutex_lock(&r->mu);
  int want = m->want_variant, gone = m->gone;
  pthread_mutex_unlock(&r->mu);
  int rc = 0;
  if (gone) {
    rc = es__fail(err, ES_ENOTFOUND, -1, "model '%s' was removed", m->name);
    goto done;
  }
  if (take_ref) {
    pthread_mutex_lock(&r->mu);
    if (m->cur) { /* loaded meanwhile by another thread */
      m->cur->refs++;
      *out = &m->cur->pub;
    }
    pthread_mutex_unlock(&r->mu);
    if (*out) goto done;
  }
  plan_model(r, m, force, want, p);
  pthread_mutex_lock(&r->mu);
  if (p->latest > m->latest) m->latest = p->latest;
  int same =
      (m->cur && key_eq(&m->cur->key, &p->key)) || (m->has_fail && key_eq(&m->fail_key, &p->key));
  int refused = m->has_fail && m->fail_code == ES_EBUDGET && key_eq(&m->fail_key, &p->key);
  uint64_t need = m->refused_bytes;
  pthread_mutex_unlock(&r->mu);
  /* a budget refusal is retried once the budget could grant it */
  int retry = refused && r->budget && es_budget_available(r->budget, ES_BUDGET_MODEL) >= need;
  if (!always && same && !retry) goto done;
  if (changed) (*changed)++;
  rc = load_plan(r, m, p, take_ref, out, q, err);
done:
  pthread_mutex_unlock(&m->load_mu);
  free(p);
  return rc;
}

/* ---- the API ----------------------------------------------------------------- */

es_repo_params_t es_repo_default_params(void) {
  es_repo_params_t p;
  memset(&p, 0, sizeof p);
  p.opts = es_backend_default_opts();
  p.load_on_scan = 1;
  return p;
}

es_repo_t *es_repo_new(const es_repo_params_t *p, es_error_t *err) {
  if (!p || p->opts.nthreads < 1 || p->opts.max_batch < 1) {
    es__fail(err, ES_EINVAL, -1, "repository: opts.nthreads and opts.max_batch must be at least 1");
    return NULL;
  }
  if (p->dir && !is_dir(p->dir)) {
    es__fail(err, ES_EIO, -1, "model repository %s: not a directory", p->dir);
    return NULL;
  }
  if (p->dir && strlen(p->dir) > PATH_CAP / 2) {
    es__fail(err, ES_ERANGE, -1, "model repository %.64s...: path too long", p->dir);
    return NULL;
  }
  es_repo_t *r = calloc(1, sizeof *r);
  if (!r) goto oom;
  if (p->dir && !(r->dir = strdup(p->dir))) goto oom;
  if (pthread_mutex_init(&r->mu, NULL)) goto oom;
  if (pthread_mutex_init(&r->poll_mu, NULL)) {
    pthread_mutex_destroy(&r->mu);
    goto oom;
  }
  r->budget = p->budget;
  r->opts = p->opts;
  r->load_on_scan = p->load_on_scan;
  r->on_event = p->on_event;
  r->ud = p->ud;
  return r;
oom:
  if (r) free(r->dir);
  free(r);
  es__fail(err, ES_ENOMEM, -1, "out of memory");
  return NULL;
}

void es_repo_free(es_repo_t *r) {
  if (!r) return;
  for (int i = 0; i < r->nmodels; i++) {
    model *m = r->models[i];
    inst *in = m->cur;
    if (in) {
      assert(in->refs == 0 && "es_repo_free: a reference is still held");
      in->current = 0;
      if (in->refs == 0) inst_free(in); /* else leaked rather than freed under a holder */
    }
    model_free(m);
  }
  free(r->models);
  pthread_mutex_destroy(&r->poll_mu);
  pthread_mutex_destroy(&r->mu);
  free(r->dir);
  free(r);
}

int es_repo_add_file(es_repo_t *r, const char *path, const char *name, const es_model_conf_t *conf,
                     es_error_t *err) {
  if (!r || !path || !*path) return es__fail(err, ES_EINVAL, -1, "add_file: no path");
  if (strlen(path) >= PATH_CAP)
    return es__fail(err, ES_EINVAL, -1, "%.64s...: path too long", path);
  char derived[ES_MODEL_NAME_MAX];
  if (!name) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (n >= sizeof derived) n = 0; /* too long: refused below as empty */
    memcpy(derived, base, n);
    derived[n] = '\0';
    name = derived;
  }
  if (!es_repo_valid_name(name, strlen(name)))
    return es__fail(err, ES_EINVAL, -1,
                    "'%.64s' is not a valid model name (1 to 63 of A-Z a-z 0-9 . _ -, not starting "
                    "with '.')",
                    name);
  es_model_conf_t c = conf ? *conf : es_model_conf_default();
  say(c.name, sizeof c.name, "%s", name);
  if (!c.backend) c.backend = es_backend_for_file(path);
  if (!c.backend)
    return es__fail(err, ES_EINVAL, -1, "%s: no backend loads this kind of file (.bin, .ftz, .esm)",
                    path);
  pthread_mutex_lock(&r->mu);
  int at = find_at(r, name);
  model *m = at >= 0 ? NULL : insert(r, name, at);
  if (m) {
    m->is_file = 1;
    say(m->file, sizeof m->file, "%s", path);
    m->file_version = m->latest = 1;
    m->conf = c;
    m->pins = 1;
  }
  pthread_mutex_unlock(&r->mu);
  if (at >= 0) return es__fail(err, ES_EINVAL, -1, "model name '%s' is already used", name);
  if (!m) return es__fail(err, ES_ENOMEM, -1, "out of memory");
  evq q = {0};
  int rc = reload(r, m, 0, 1, 0, NULL, &q, NULL, err);
  if (rc) { /* nothing was added */
    pthread_mutex_lock(&r->mu);
    inst *in = m->gone ? NULL : remove_model(r, m);
    pthread_mutex_unlock(&r->mu);
    inst_free(in);
  }
  unpin(r, m);
  evq_flush(r, &q);
  return rc;
}

/* Indexes the model folders of r->dir not indexed yet; pins and returns
 * the new entries in *added (malloc'd, *nadded of them). With `prune`, also
 * takes out of the index the folder models no longer on disk (at most 16 a
 * call), queuing their events, and counts them in *removed. Returns 0 or
 * ES_EIO. */
static int index_dir(es_repo_t *r, model ***added, int *nadded, int prune, int *removed, evq *q,
                     es_error_t *err) {
  *added = NULL;
  *nadded = 0;
  DIR *d = opendir(r->dir);
  if (!d) return es__fail(err, ES_EIO, -1, "model repository %s: %s", r->dir, strerror(errno));
  char(*names)[ES_MODEL_NAME_MAX] = NULL;
  int n = 0, cap = 0, listed = 1;
  char path[PATH_CAP];
  errno = 0;
  for (struct dirent *e; (e = readdir(d)); errno = 0) {
    size_t l = strlen(e->d_name);
    if (!es_repo_valid_name(e->d_name, l)) continue;
    if (mkpath(path, sizeof path, "%s/%s", r->dir, e->d_name) || !is_dir(path)) continue;
    if (n == cap) {
      int nc = cap ? 2 * cap : 16;
      char(*nn)[ES_MODEL_NAME_MAX] = realloc(names, (size_t)nc * sizeof *nn);
      if (!nn) {
        listed = 0;
        break;
      }
      names = nn;
      cap = nc;
    }
    memcpy(names[n++], e->d_name, l + 1);
  }
  if (errno) listed = 0; /* a partial listing must not unload anything */
  closedir(d);
  model **out = n ? malloc((size_t)n * sizeof *out) : NULL;
  inst *drop[16];
  int ndrop = 0;
  model *gone[16];
  int ngone = 0;
  pthread_mutex_lock(&r->mu);
  for (int i = 0; i < n && out; i++) {
    int at = find_at(r, names[i]);
    if (at >= 0) continue; /* known (a folder, or a file model of that name) */
    model *m = insert(r, names[i], at);
    if (!m) break;
    m->pins++;
    out[(*nadded)++] = m;
  }
  if (prune && listed) {
    for (int i = r->nmodels - 1; i >= 0 && ndrop < 16 && ngone < 16; i--) {
      model *m = r->models[i];
      if (m->is_file) continue;
      int found = 0;
      for (int j = 0; j < n && !found; j++) found = !strcmp(names[j], m->name);
      if (found) continue;
      int v = m->cur ? m->cur->pub.version : 0;
      inst *in = remove_model(r, m);
      if (in) drop[ndrop++] = in;
      if (m->pins == 0) gone[ngone++] = m;
      evq_add(q, ES_REPO_UNLOADED, m->name, v, 0, "model '%s' removed from disk%s", m->name,
              v ? ": unloaded once its requests finish" : "");
      if (removed) (*removed)++;
    }
  }
  pthread_mutex_unlock(&r->mu);
  for (int i = 0; i < ndrop; i++) inst_free(drop[i]);
  for (int i = 0; i < ngone; i++) model_free(gone[i]);
  free(names);
  *added = out;
  return 0;
}

int es_repo_scan(es_repo_t *r, es_error_t *err) {
  if (!r) return es__fail(err, ES_EINVAL, -1, "scan: no repository");
  if (r->dir) {
    model **added;
    int nadded;
    evq q = {0};
    int rc = index_dir(r, &added, &nadded, 0, NULL, &q, err);
    if (rc) return rc;
    for (int i = 0; i < nadded; i++) unpin(r, added[i]);
    free(added);
    /* load (or, without load_on_scan, plan to find bad configurations)
     * every folder model not serving */
    pthread_mutex_lock(&r->mu);
    int n = r->nmodels;
    model **todo = malloc((size_t)(n ? n : 1) * sizeof *todo);
    int nt = 0;
    for (int i = 0; todo && i < n; i++) {
      model *m = r->models[i];
      if (m->is_file || m->cur) continue;
      m->pins++;
      todo[nt++] = m;
    }
    pthread_mutex_unlock(&r->mu);
    if (!todo) return es__fail(err, ES_ENOMEM, -1, "out of memory");
    for (int i = 0; i < nt; i++) {
      model *m = todo[i];
      if (r->load_on_scan) {
        reload(r, m, 0, 1, 0, NULL, &q, NULL, NULL);
      } else {
        plan *p = malloc(sizeof *p);
        if (p && plan_dir(r, m, 0, 0, p)) {
          record_failure(r, m, p, p->rc, p->reason, 0, 0);
          evq_add(&q, ES_REPO_FAILED, m->name, 0, 0, "model '%s': %s", m->name, p->reason);
        } else if (p) {
          pthread_mutex_lock(&r->mu);
          if (p->latest > m->latest) m->latest = p->latest;
          pthread_mutex_unlock(&r->mu);
        }
        free(p);
      }
      unpin(r, m);
      evq_flush(r, &q);
    }
    free(todo);
  }
  int ready = 0;
  pthread_mutex_lock(&r->mu);
  for (int i = 0; i < r->nmodels; i++) ready += r->models[i]->state == ES_MODEL_READY;
  pthread_mutex_unlock(&r->mu);
  return ready;
}

/* Finds and pins `name`; NULL with *err filled when unknown. */
static model *pin(es_repo_t *r, const char *name, es_error_t *err) {
  pthread_mutex_lock(&r->mu);
  model *m = name ? find(r, name) : NULL;
  if (m) m->pins++;
  pthread_mutex_unlock(&r->mu);
  if (!m) es__fail(err, ES_ENOTFOUND, -1, "no model named '%.64s'", name ? name : "(null)");
  return m;
}

int es_repo_load(es_repo_t *r, const char *name, es_error_t *err) {
  if (!r) return es__fail(err, ES_EINVAL, -1, "load: no repository");
  model *m = pin(r, name, err);
  if (!m) return ES_ENOTFOUND;
  evq q = {0};
  int rc = reload(r, m, 0, 1, 0, NULL, &q, NULL, err);
  unpin(r, m);
  evq_flush(r, &q);
  return rc;
}

int es_repo_load_variant(es_repo_t *r, const char *name, int variant_index, es_error_t *err) {
  if (!r) return es__fail(err, ES_EINVAL, -1, "load_variant: no repository");
  model *m = pin(r, name, err);
  if (!m) return ES_ENOTFOUND;
  evq q = {0};
  int rc = 0;
  plan *p = malloc(sizeof *p);
  if (!p) {
    unpin(r, m);
    return es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  pthread_mutex_lock(&m->load_mu);
  pthread_mutex_lock(&r->mu);
  int version = m->cur ? m->cur->pub.version : 0;
  pthread_mutex_unlock(&r->mu);
  if (plan_model(r, m, version, variant_index, p)) {
    rc = es__fail(err, p->rc, -1, "model '%s': %s", m->name, p->reason);
  } else if (variant_index < 0 || variant_index >= p->nladder) {
    rc = es__fail(err, ES_ERANGE, -1, "model '%s' v%d has %d variant%s, no variant %d", m->name,
                  p->key.version, p->nladder, p->nladder == 1 ? "" : "s", variant_index);
  } else {
    rc = try_load(r, m, p, 0, 0, NULL, &q, err);
    if (rc == 0) {
      pthread_mutex_lock(&r->mu);
      m->want_variant = variant_index;
      pthread_mutex_unlock(&r->mu);
    }
  }
  pthread_mutex_unlock(&m->load_mu);
  free(p);
  unpin(r, m);
  evq_flush(r, &q);
  return rc;
}

int es_repo_unload(es_repo_t *r, const char *name, es_error_t *err) {
  if (!r) return es__fail(err, ES_EINVAL, -1, "unload: no repository");
  pthread_mutex_lock(&r->mu);
  model *m = name ? find(r, name) : NULL;
  if (!m) {
    pthread_mutex_unlock(&r->mu);
    return es__fail(err, ES_ENOTFOUND, -1, "no model named '%.64s'", name ? name : "(null)");
  }
  int v = m->cur ? m->cur->pub.version : 0;
  inst *in = detach(m);
  m->state = ES_MODEL_UNAVAILABLE;
  char mname[ES_MODEL_NAME_MAX];
  memcpy(mname, m->name, sizeof mname);
  pthread_mutex_unlock(&r->mu);
  inst_free(in);
  if (v) {
    evq q = {0};
    evq_add(&q, ES_REPO_UNLOADED, mname, v, 0, "model '%s' v%d unloaded", mname, v);
    evq_flush(r, &q);
  }
  return 0;
}

int es_repo_acquire(es_repo_t *r, const char *name, es_served_t **out, es_error_t *err) {
  *out = NULL;
  if (!r) return es__fail(err, ES_EINVAL, -1, "acquire: no repository");
  int64_t now = mono_us();
  pthread_mutex_lock(&r->mu);
  model *m = name ? find(r, name) : NULL;
  if (!m) {
    pthread_mutex_unlock(&r->mu);
    return es__fail(err, ES_ENOTFOUND, -1, "no model named '%.64s'", name ? name : "(null)");
  }
  m->requests++;
  m->last_used_us = now;
  if (m->cur) {
    m->cur->refs++;
    *out = &m->cur->pub;
    pthread_mutex_unlock(&r->mu);
    return 0;
  }
  if (m->state == ES_MODEL_FAILED) { /* retried on a change on disk or es_repo_load() */
    int rc = m->fail_code ? m->fail_code : ES_ESTATE;
    es__fail(err, rc, -1, "model '%s': %s", m->name, m->reason);
    pthread_mutex_unlock(&r->mu);
    return rc;
  }
  m->pins++;
  pthread_mutex_unlock(&r->mu);
  evq q = {0};
  int rc = reload(r, m, 0, 1, 1, out, &q, NULL, err);
  if (rc == 0 && !*out) rc = es__fail(err, ES_ESTATE, -1, "model '%s' is not loaded", name);
  unpin(r, m);
  evq_flush(r, &q);
  return rc;
}

void es_repo_release(es_repo_t *r, es_served_t *s) {
  if (!r || !s) return;
  inst *in = (inst *)s; /* pub is the first member */
  pthread_mutex_lock(&r->mu);
  assert(in->refs > 0);
  int last = --in->refs == 0 && !in->current;
  pthread_mutex_unlock(&r->mu);
  if (last) inst_free(in);
}

int es_repo_poll(es_repo_t *r, int64_t now_us) {
  if (!r) return 0;
  int changes = 0;
  evq q = {0};
  pthread_mutex_lock(&r->poll_mu);
  model **added = NULL;
  int nadded = 0;
  if (r->dir && index_dir(r, &added, &nadded, 1, &changes, &q, NULL) == 0) {
    for (int i = 0; i < nadded; i++) {
      reload(r, added[i], 0, 1, 0, NULL, &q, NULL, NULL);
      changes++;
      unpin(r, added[i]);
    }
    free(added);
  }
  /* changes on disk, for the models serving or failed (the others load on
   * their next acquire), and keep-alive */
  pthread_mutex_lock(&r->mu);
  int n = r->nmodels;
  model **todo = malloc((size_t)(n ? n : 1) * sizeof *todo);
  inst **idle = malloc((size_t)(n ? n : 1) * sizeof *idle);
  int nt = 0, ni = 0;
  for (int i = 0; todo && idle && i < n; i++) {
    model *m = r->models[i];
    int64_t ka = m->cur ? m->cur->conf.keep_alive_us : 0;
    if (ka > 0 && now_us - m->last_used_us > ka) {
      char t[32];
      es_config_format_duration(ka, t, sizeof t);
      evq_add(&q, ES_REPO_UNLOADED, m->name, m->cur->pub.version, 0,
              "model '%s' v%d unloaded: idle for more than %s", m->name, m->cur->pub.version, t);
      idle[ni] = detach(m);
      ni += idle[ni] != NULL;
      m->state = ES_MODEL_UNAVAILABLE;
      changes++;
      continue;
    }
    if (!m->cur && m->state != ES_MODEL_FAILED) continue;
    m->pins++;
    todo[nt++] = m;
  }
  pthread_mutex_unlock(&r->mu);
  for (int i = 0; i < ni; i++) inst_free(idle[i]);
  for (int i = 0; i < nt; i++) {
    reload(r, todo[i], 0, 0, 0, NULL, &q, &changes, NULL);
    unpin(r, todo[i]);
  }
  free(todo);
  free(idle);
  pthread_mutex_unlock(&r->poll_mu);
  evq_flush(r, &q);
  return changes;
}

int es_repo_list(es_repo_t *r, es_repo_entry_t *out, int cap) {
  if (!r) return 0;
  pthread_mutex_lock(&r->mu);
  int n = r->nmodels;
  for (int i = 0; i < n && i < cap; i++) {
    const model *m = r->models[i];
    es_repo_entry_t *e = &out[i];
    memset(e, 0, sizeof *e);
    memcpy(e->name, m->name, sizeof e->name);
    e->state = m->state;
    e->version = m->cur ? m->cur->pub.version : 0;
    e->latest_version = m->latest;
    if (m->cur) memcpy(e->variant, m->cur->variant, sizeof e->variant);
    memcpy(e->reason, m->reason, sizeof e->reason);
    e->reserved_bytes = m->cur ? m->cur->pub.reserved_bytes : 0;
    e->last_used_us = m->last_used_us;
    e->requests = m->requests;
  }
  pthread_mutex_unlock(&r->mu);
  return n;
}

int es_repo_ladder(es_repo_t *r, const char *name, char (*names)[64], int cap, int *current) {
  if (!r || !name) return ES_ENOTFOUND;
  pthread_mutex_lock(&r->mu);
  model *m = find(r, name);
  int n = m ? 0 : ES_ENOTFOUND;
  if (m && m->cur) {
    const inst *in = m->cur;
    n = in->nladder;
    for (int i = 0; i < n && i < cap; i++) memcpy(names[i], in->ladder[i], 64);
    if (current) *current = in->pub.variant_index;
  }
  pthread_mutex_unlock(&r->mu);
  return n;
}

int es_repo_conf(es_repo_t *r, const char *name, es_model_conf_t *out) {
  if (!r || !name) return ES_ENOTFOUND;
  pthread_mutex_lock(&r->mu);
  model *m = find(r, name);
  if (m) *out = m->conf;
  pthread_mutex_unlock(&r->mu);
  return m ? 0 : ES_ENOTFOUND;
}

int es_repo_model_dir(es_repo_t *r, const char *name, char *buf, size_t cap) {
  if (!r || !name) return ES_ENOTFOUND;
  pthread_mutex_lock(&r->mu);
  model *m = find(r, name);
  int rc = m ? 0 : ES_ENOTFOUND;
  if (m && cap) {
    if (m->is_file)
      buf[0] = '\0';
    else if (mkpath(buf, cap, "%s/%s", r->dir, m->name))
      rc = ES_ERANGE;
  }
  pthread_mutex_unlock(&r->mu);
  return rc;
}

/* Copies src to the new file dst (O_EXCL). Returns 0 or -1 with errno set;
 * a partial dst is removed. */
static int copy_file(const char *src, const char *dst) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) return -1;
  int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    int e = errno;
    close(in);
    errno = e;
    return -1;
  }
  char buf[65536];
  int rc = 0;
  for (;;) {
    ssize_t k = read(in, buf, sizeof buf);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      rc = -1;
      break;
    }
    if (k == 0) break;
    for (ssize_t w = 0; w < k;) {
      ssize_t x = write(out, buf + w, (size_t)(k - w));
      if (x < 0 && errno == EINTR) continue;
      if (x < 0) {
        rc = -1;
        break;
      }
      w += x;
    }
    if (rc) break;
  }
  if (rc == 0 && fsync(out)) rc = -1;
  int e = errno;
  close(in);
  if (close(out) && rc == 0) rc = -1;
  if (rc) {
    e = errno ? errno : e;
    unlink(dst);
  }
  errno = e;
  return rc;
}

/* Moves src to dst without replacing an existing dst: a hard link then an
 * unlink on one file system, a copy (to a hidden name in dst's folder, which
 * no backend lists) then a link across file systems. Returns 0 or -1 with
 * errno set (EEXIST: dst exists). */
static int move_file(const char *src, const char *dst) {
  if (link(src, dst) == 0) {
    unlink(src); /* published either way; a leftover source is harmless */
    return 0;
  }
  if (errno == EEXIST) return -1;
  if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOTSUP) return -1;
  char tmp[PATH_CAP];
  const char *slash = strrchr(dst, '/');
  int dl = slash ? (int)(slash - dst) : 0;
  if (mkpath(tmp, sizeof tmp, "%.*s%s.%s.%ld.tmp", dl, dst, slash ? "/" : "",
             slash ? slash + 1 : dst, (long)getpid())) {
    errno = ENAMETOOLONG;
    return -1;
  }
  unlink(tmp);
  if (copy_file(src, tmp)) return -1;
  if (link(tmp, dst)) {
    int e = errno;
    unlink(tmp);
    errno = e;
    return -1;
  }
  unlink(tmp);
  unlink(src);
  return 0;
}

int es_repo_publish(es_repo_t *r, const char *name, const char *src, es_error_t *err) {
  return es_repo_publish_files(r, name, &src, 1, err);
}

/* Removes the staging folder `sdir` and what was moved into it. */
static void unstage(const char *sdir, const char *const *srcs, int n) {
  char f[PATH_CAP];
  for (int i = 0; i < n; i++) {
    const char *b = strrchr(srcs[i], '/');
    if (mkpath(f, sizeof f, "%s/%s", sdir, b ? b + 1 : srcs[i]) == 0) unlink(f);
  }
  rmdir(sdir);
}

int es_repo_publish_files(es_repo_t *r, const char *name, const char *const *srcs, int nsrc,
                          es_error_t *err) {
  if (!r || !srcs || nsrc < 1 || nsrc > LADDER_MAX)
    return es__fail(err, ES_EINVAL, -1, "publish: 1 to %d source files", LADDER_MAX);
  for (int i = 0; i < nsrc; i++)
    if (!srcs[i] || !*srcs[i]) return es__fail(err, ES_EINVAL, -1, "publish: no source file");
  model *m = pin(r, name, err);
  if (!m) return ES_ENOTFOUND;
  const char *src = srcs[0];
  const char *base = strrchr(src, '/');
  base = base ? base + 1 : src;
  evq q = {0};
  int rc = 0;
  char dst[PATH_CAP];
  plan *p = malloc(sizeof *p);
  if (!p) {
    unpin(r, m);
    return es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  pthread_mutex_lock(&m->load_mu);
  pthread_mutex_lock(&r->mu);
  es_model_conf_t conf = m->conf;
  int latest = m->latest, file_version = m->file_version;
  char file[PATH_CAP];
  memcpy(file, m->file, sizeof file);
  pthread_mutex_unlock(&r->mu);
  for (int i = 0; i < nsrc; i++) {
    const char *bi = strrchr(srcs[i], '/');
    bi = bi ? bi + 1 : srcs[i];
    const es_backend_t *be = conf.backend ? conf.backend : es_backend_for_file(bi);
    int dup = 0;
    for (int k = 0; k < i; k++) {
      const char *bk = strrchr(srcs[k], '/');
      dup |= !strcmp(bk ? bk + 1 : srcs[k], bi);
    }
    if (!be || !be->accepts(bi) || !plain_file_name(bi, strlen(bi)) || dup) {
      rc = es__fail(err, ES_EINVAL, -1,
                    "publish: %s: not a file name model '%s' can load (a .bin, .ftz or .esm file, "
                    "1 to 63 bytes, not starting with '.', each name once)",
                    srcs[i], m->name);
      goto done;
    }
  }
  if (!m->is_file) {
    /* the files go into a hidden staging folder, which is then renamed into
     * place as the next version: a poll never sees a half-filled version */
    char mdir[PATH_CAP], vdir[PATH_CAP], sdir[PATH_CAP];
    int v[1], disk_latest = 0;
    if (mkpath(mdir, sizeof mdir, "%s/%s", r->dir, m->name) ||
        list_versions(mdir, v, 1, &disk_latest) < 0 ||
        mkpath(sdir, sizeof sdir, "%s/.publish-XXXXXX", mdir) || !mkdtemp(sdir)) {
      rc = es__fail(err, ES_EIO, -1, "publish: %s/%s: %s", r->dir, m->name, strerror(errno));
      goto done;
    }
    for (int i = 0; i < nsrc; i++) {
      const char *bi = strrchr(srcs[i], '/');
      if (mkpath(dst, sizeof dst, "%s/%s", sdir, bi ? bi + 1 : srcs[i]) ||
          move_file(srcs[i], dst)) {
        rc = es__fail(err, ES_EIO, -1, "publish: cannot move %s to %s: %s", srcs[i], sdir,
                      strerror(errno));
        unstage(sdir, srcs, i);
        goto done;
      }
    }
    int n = (disk_latest > latest ? disk_latest : latest) + 1, made = 0;
    for (int tries = 0; tries < 1000 && !made; tries++, n++) {
      if (mkpath(vdir, sizeof vdir, "%s/%d", mdir, n)) break;
      struct stat vst;
      if (lstat(vdir, &vst) == 0) continue; /* taken (rename would replace an empty one) */
      if (rename(sdir, vdir) == 0)
        made = 1;
      else if (errno != EEXIST && errno != ENOTEMPTY)
        break;
    }
    if (!made) {
      rc = es__fail(err, ES_EIO, -1, "publish: cannot make a version folder in %s: %s", mdir,
                    strerror(errno));
      unstage(sdir, srcs, nsrc);
      goto done;
    }
    int want;
    pthread_mutex_lock(&r->mu);
    want = m->want_variant;
    pthread_mutex_unlock(&r->mu);
    plan_dir(r, m, 0, want, p);
    rc = load_plan(r, m, p, 0, NULL, &q, err);
  } else {
    /* beside the served file: <stem>.v<N>.<ext> */
    const char *fb = strrchr(file, '/');
    int dl = fb ? (int)(fb - file) + 1 : 0;
    fb = fb ? fb + 1 : file;
    const char *dot = strrchr(fb, '.');
    int sl = dot && dot != fb ? (int)(dot - fb) : (int)strlen(fb);
    const char *ext = strrchr(base, '.'); /* the new file's kind (accepted: it has one) */
    /* a file published before keeps its stem: media.v2.bin -> media.v3.bin */
    char stem[PATH_CAP];
    snprintf(stem, sizeof stem, "%.*s", sl, fb);
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".v%d", file_version);
    size_t stl = strlen(stem), sfl = strlen(suffix);
    if (file_version > 1 && stl > sfl && !strcmp(stem + stl - sfl, suffix)) stem[stl - sfl] = '\0';
    int n = (latest > file_version ? latest : file_version) + 1, moved = 0;
    for (int tries = 0; tries < 1000 && !moved; tries++, n++) {
      if (mkpath(dst, sizeof dst, "%.*s%s.v%d%s", dl, file, stem, n, ext)) break;
      if (move_file(src, dst) == 0)
        moved = 1;
      else if (errno != EEXIST)
        break;
    }
    if (!moved) {
      rc = es__fail(err, ES_EIO, -1, "publish: cannot move %s beside %s: %s", src, file,
                    strerror(errno));
      goto done;
    }
    n--;
    memset(p, 0, sizeof *p);
    p->conf = conf;
    p->be = conf.backend;
    p->key.version = p->latest = n;
    say(p->key.path, sizeof p->key.path, "%s", dst);
    const char *db = strrchr(dst, '/');
    say(p->ladder[0], sizeof p->ladder[0], "%s", db ? db + 1 : dst);
    p->nladder = 1;
    struct stat st;
    if (stat(dst, &st))
      plan_fail(p, ES_EIO, "%s: %s", dst, strerror(errno));
    else
      p->key.file = sig_of(&st);
    pthread_mutex_lock(&r->mu);
    if (n > m->latest) m->latest = n;
    pthread_mutex_unlock(&r->mu);
    rc = try_load(r, m, p, 0, 0, NULL, &q, err);
    if (rc == 0) {
      pthread_mutex_lock(&r->mu);
      memcpy(m->file, dst, sizeof m->file);
      m->file_version = n;
      pthread_mutex_unlock(&r->mu);
    }
  }
done:
  pthread_mutex_unlock(&m->load_mu);
  free(p);
  unpin(r, m);
  evq_flush(r, &q);
  return rc;
}
