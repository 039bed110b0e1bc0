/*
 * metrics.c - the metrics registry and its Prometheus text exposition.
 *
 * What it is for: the server counts what it does (requests, failures, queue
 * and compute time, cache hits, SLA violations, memory) in series that a
 * Prometheus server scrapes from /metrics. Counting happens on the request's
 * hot path, so an update is one or two atomic instructions on a series the
 * caller looked up once; everything that locks or allocates (registering a
 * family, creating a series, rendering) happens off that path.
 *
 * Storage of values (all through gcc's __atomic builtins on uint64_t, which
 * are lock-free on x86-64, arm64 and armv7 armhf):
 *   - a counter keeps two words: `ival`, an integer added with fetch_add
 *     (whole increments below 2^53, i.e. nearly all of them), and `bits`, a
 *     double's bits updated by compare-and-swap for fractional increments;
 *     its value is ival + bits. (The scheme of Prometheus' Go client.)
 *   - a gauge keeps a double's bits in `bits`: set is a store, add a CAS loop.
 *   - a histogram keeps one non-cumulative count per bucket (fetch_add) and
 *     the sum's bits in `bits` (CAS). Its _count is rendered as the sum of
 *     the bucket counts, so _count always equals the +Inf bucket; the sum may
 *     lag by the observations in flight during a scrape.
 * Series are allocated 64-byte aligned so that two hot series never share a
 * cache line.
 *
 * Invariants (under reg->mu, except where said):
 *   1. reg->fams is sorted by name, with no two families of the same name and
 *      no name that another family's rendered series could take (names ending
 *      in _bucket, _sum, _count are refused, _total is only for counters).
 *   2. f->series is sorted by label values (strcmp, label by label), with no
 *      two series of equal values; reg->nseries is the sum of the nseries.
 *   3. A series, once created, is never moved or freed before
 *      es_metrics_free(): handles stay valid without a lock.
 *   4. A counter's ival and bits never decrease (negative adds are refused).
 *   5. hooks[0 .. nhooks) are set before nhooks is published (release store)
 *      and never change, so a render may call them without the lock.
 */
#include "edgeserve/metrics.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fail.h"

const double ES_METRICS_LATENCY_BUCKETS[14] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1,     2.5,  5,     10};

#define TWO53 9007199254740992.0

struct es_metric {
  /* hot: written by updates */
  uint64_t ival; /* counter: whole increments */
  uint64_t bits; /* counter: fractional increments; gauge: value; histogram: sum */
  /* cold: set at creation (and cb under reg->mu) */
  es_metric_family_t *fam;
  char **values; /* fam->nlabels strings */
  es_metric_fn cb;
  void *cb_ctx;
  uint64_t counts[]; /* histogram: fam->nbuckets + 1 non-cumulative counts, last = +Inf */
};

struct es_metric_family {
  es_metrics_t *reg;
  es_metric_type_t type;
  char *name, *help;
  char **labels;
  size_t nlabels;
  double *bounds;
  size_t nbuckets;
  es_metric_t **series;
  size_t nseries, cap;
};

struct es_metrics {
  pthread_mutex_t mu;
  es_metric_family_t **fams;
  size_t nfams, cap;
  size_t nseries, max_series;
  struct {
    es_metrics_hook_fn fn;
    void *ctx;
  } hooks[ES_METRICS_MAX_HOOKS];
  size_t nhooks; /* atomic: see invariant 5 */
};

/* ---- doubles in uint64 words ----------------------------------------------------- */

static inline uint64_t d2u(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static inline double u2d(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

static inline void atomic_add_double(uint64_t *w, double v) {
  uint64_t old = __atomic_load_n(w, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(w, &old, d2u(u2d(old) + v), true, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED)) {
  }
}

/* ---- validation ----------------------------------------------------------------------- */

/* Is s valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF)? */
static bool utf8_valid(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned c = *p;
    size_t n;
    unsigned min;
    if (c < 0x80) {
      p++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, min = 0x10000, c &= 0x07;
    } else {
      return false;
    }
    for (size_t i = 1; i <= n; i++) {
      if ((p[i] & 0xC0) != 0x80) return false;
      c = (c << 6) | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
    p += n + 1;
  }
  return true;
}

/* [a-zA-Z_][a-zA-Z0-9_]* (the data model also allows ':' in metric names;
 * edgeserve leaves those to recording rules). */
static bool ident_valid(const char *s) {
  if (!s || !*s) return false;
  for (const char *p = s; *p; p++) {
    char c = *p;
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(p > s && c >= '0' && c <= '9')) return false;
  }
  return true;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static const char *type_name(es_metric_type_t t) {
  switch (t) {
  case ES_METRIC_COUNTER: return "counter";
  case ES_METRIC_GAUGE: return "gauge";
  case ES_METRIC_HISTOGRAM: return "histogram";
  }
  return "?";
}

static int check_params(const es_family_params_t *p, es_error_t *err) {
  if (p->type != ES_METRIC_COUNTER && p->type != ES_METRIC_GAUGE && p->type != ES_METRIC_HISTOGRAM)
    return es__fail(err, ES_EINVAL, -1, "metric type %d is not a counter, gauge or histogram",
                    (int)p->type);
  const char *n = p->name;
  if (!ident_valid(n))
    return es__fail(err, ES_EINVAL, -1,
                    "metric name '%s' is invalid: use [a-zA-Z_][a-zA-Z0-9_]*, e.g. "
                    "edgeserve_requests_total",
                    n ? n : "(null)");
  if (strncmp(n, "__", 2) == 0)
    return es__fail(err, ES_EINVAL, -1, "metric name '%s': names starting with __ are reserved", n);
  bool total = ends_with(n, "_total");
  if (p->type == ES_METRIC_COUNTER && !total)
    return es__fail(err, ES_EINVAL, -1, "counter '%s' must end in _total (Prometheus naming)", n);
  if (p->type != ES_METRIC_COUNTER && total)
    return es__fail(err, ES_EINVAL, -1, "%s '%s' must not end in _total: only counters do",
                    type_name(p->type), n);
  if (ends_with(n, "_bucket") || ends_with(n, "_sum") || ends_with(n, "_count"))
    return es__fail(err, ES_EINVAL, -1,
                    "metric name '%s' ends in _bucket, _sum or _count, which histograms use for "
                    "their series: rename it",
                    n);
  if (!p->help || !*p->help)
    return es__fail(err, ES_EINVAL, -1, "metric '%s' has no help text: say what it counts", n);
  if (!utf8_valid(p->help))
    return es__fail(err, ES_EINVAL, -1, "metric '%s': help text is not valid UTF-8", n);
  if (p->nlabels > ES_METRICS_MAX_LABELS || (p->nlabels && !p->labels))
    return es__fail(err, ES_EINVAL, -1, "metric '%s': %zu label names (at most %d, non-NULL)", n,
                    p->nlabels, ES_METRICS_MAX_LABELS);
  for (size_t i = 0; i < p->nlabels; i++) {
    const char *l = p->labels[i];
    if (!ident_valid(l))
      return es__fail(err, ES_EINVAL, -1,
                      "metric '%s': label name '%s' is invalid: use [a-zA-Z_][a-zA-Z0-9_]*", n,
                      l ? l : "(null)");
    if (strncmp(l, "__", 2) == 0)
      return es__fail(err, ES_EINVAL, -1,
                      "metric '%s': label name '%s': names starting with __ are reserved", n, l);
    if (p->type == ES_METRIC_HISTOGRAM && strcmp(l, "le") == 0)
      return es__fail(err, ES_EINVAL, -1,
                      "histogram '%s': label 'le' is reserved for the bucket bounds", n);
    for (size_t j = 0; j < i; j++)
      if (strcmp(l, p->labels[j]) == 0)
        return es__fail(err, ES_EINVAL, -1, "metric '%s': label '%s' appears twice", n, l);
  }
  if (p->type == ES_METRIC_HISTOGRAM && p->buckets) {
    if (p->nbuckets == 0 || p->nbuckets > ES_METRICS_MAX_BUCKETS)
      return es__fail(err, ES_EINVAL, -1, "histogram '%s': %zu buckets (1 to %d)", n, p->nbuckets,
                      ES_METRICS_MAX_BUCKETS);
    for (size_t i = 0; i < p->nbuckets; i++) {
      if (!isfinite(p->buckets[i]))
        return es__fail(err, ES_EINVAL, -1,
                        "histogram '%s': bucket bound %zu is not finite (+Inf is implicit)", n, i);
      if (i > 0 && !(p->buckets[i] > p->buckets[i - 1]))
        return es__fail(err, ES_EINVAL, -1,
                        "histogram '%s': bucket bounds must increase strictly (bound %zu)", n, i);
    }
  }
  return 0;
}

/* ---- registry ------------------------------------------------------------------------- */

es_metrics_params_t es_metrics_default_params(void) {
  es_metrics_params_t p = {.max_series = 10000};
  return p;
}

es_family_params_t es_family_default_params(void) {
  es_family_params_t p = {.type = ES_METRIC_COUNTER};
  return p;
}

es_metrics_t *es_metrics_new(const es_metrics_params_t *p, es_error_t *err) {
  es_metrics_params_t d = es_metrics_default_params();
  if (!p) p = &d;
  if (p->max_series == 0) {
    es__fail(err, ES_EINVAL, -1, "metrics: max_series is 0: allow at least one series");
    return NULL;
  }
  es_metrics_t *reg = calloc(1, sizeof *reg);
  if (!reg) goto fail_alloc;
  if (pthread_mutex_init(&reg->mu, NULL) != 0) goto fail_mutex;
  reg->max_series = p->max_series;
  return reg;

fail_mutex:
  free(reg);
fail_alloc:
  es__fail(err, ES_ENOMEM, -1, "metrics: out of memory making a registry");
  return NULL;
}

static void free_strv(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* NULL when out of memory, with nothing left allocated. n == 0 gives a
 * non-NULL empty vector. */
static char **dup_strv(const char *const *v, size_t n) {
  char **out = calloc(n ? n : 1, sizeof *out);
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (!(out[i] = strdup(v[i]))) {
      free_strv(out, i);
      return NULL;
    }
  }
  return out;
}

static void series_free(es_metric_t *m, size_t nlabels) {
  free_strv(m->values, nlabels);
  free(m);
}

static void family_free(es_metric_family_t *f) {
  if (!f) return;
  for (size_t i = 0; i < f->nseries; i++) series_free(f->series[i], f->nlabels);
  free(f->series);
  free(f->bounds);
  free_strv(f->labels, f->nlabels);
  free(f->help);
  free(f->name);
  free(f);
}

void es_metrics_free(es_metrics_t *reg) {
  if (!reg) return;
  for (size_t i = 0; i < reg->nfams; i++) family_free(reg->fams[i]);
  free(reg->fams);
  pthread_mutex_destroy(&reg->mu);
  free(reg);
}

/* Index of the first family whose name is >= name; *found when equal. */
static size_t find_family(const es_metrics_t *reg, const char *name, bool *found) {
  size_t lo = 0, hi = reg->nfams;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(reg->fams[mid]->name, name) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < reg->nfams && strcmp(reg->fams[lo]->name, name) == 0;
  return lo;
}

static int values_cmp(const es_metric_family_t *f, char *const *a, const char *const *b) {
  for (size_t i = 0; i < f->nlabels; i++) {
    int c = strcmp(a[i], b[i]);
    if (c) return c;
  }
  return 0;
}

static size_t find_series(const es_metric_family_t *f, const char *const *values, bool *found) {
  size_t lo = 0, hi = f->nseries;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (values_cmp(f, f->series[mid]->values, values) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < f->nseries && values_cmp(f, f->series[lo]->values, values) == 0;
  return lo;
}

/* Returns arr grown to hold n + 1 elements of `elem` bytes (or arr itself
 * when it does), updating *cap; NULL when out of memory (arr unchanged). */
static void *grow(void *arr, size_t n, size_t *cap, size_t elem) {
  if (n < *cap) return arr;
  size_t ncap = *cap ? *cap * 2 : 8;
  void *p = realloc(arr, ncap * elem);
  if (p) *cap = ncap;
  return p;
}

/* Creates the series of f with `values` at index `at` (under reg->mu). */
static int series_create(es_metric_family_t *f, size_t at, const char *const *values,
                         es_metric_t **out, es_error_t *err) {
  es_metrics_t *reg = f->reg;
  if (reg->nseries >= reg->max_series)
    return es__fail(err, ES_EFULL, -1,
                    "metric '%s': the registry holds its %zu series already: are label values "
                    "taken from user input? (raise max_series otherwise)",
                    f->name, reg->max_series);
  es_metric_t **sv = grow(f->series, f->nseries, &f->cap, sizeof *sv);
  if (!sv) goto fail_alloc;
  f->series = sv;
  size_t ncounts = f->type == ES_METRIC_HISTOGRAM ? f->nbuckets + 1 : 0;
  size_t size = sizeof(es_metric_t) + ncounts * sizeof(uint64_t);
  size = (size + 63) & ~(size_t)63;
  void *mem;
  if (posix_memalign(&mem, 64, size) != 0) goto fail_alloc;
  es_metric_t *m = mem;
  memset(m, 0, size);
  m->fam = f;
  if (!(m->values = dup_strv(values, f->nlabels))) {
    free(m);
    goto fail_alloc;
  }
  memmove(f->series + at + 1, f->series + at, (f->nseries - at) * sizeof *f->series);
  f->series[at] = m;
  f->nseries++;
  reg->nseries++;
  *out = m;
  return 0;

fail_alloc:
  return es__fail(err, ES_ENOMEM, -1, "metric '%s': out of memory creating a series", f->name);
}

int es_metrics_register(es_metrics_t *reg, const es_family_params_t *p, es_metric_family_t **out,
                        es_error_t *err) {
  assert(reg && p);
  if (out) *out = NULL;
  int rc = check_params(p, err);
  if (rc) return rc;

  es_metric_family_t *f = calloc(1, sizeof *f);
  if (!f) goto fail_alloc;
  f->reg = reg;
  f->type = p->type;
  f->nlabels = p->nlabels;
  if (!(f->name = strdup(p->name)) || !(f->help = strdup(p->help)) ||
      !(f->labels = dup_strv(p->labels, p->nlabels)))
    goto fail_family;
  if (p->type == ES_METRIC_HISTOGRAM) {
    const double *b = p->buckets ? p->buckets : ES_METRICS_LATENCY_BUCKETS;
    f->nbuckets = p->buckets ? p->nbuckets : sizeof ES_METRICS_LATENCY_BUCKETS / sizeof(double);
    if (!(f->bounds = malloc(f->nbuckets * sizeof *f->bounds))) goto fail_family;
    memcpy(f->bounds, b, f->nbuckets * sizeof *f->bounds);
  }

  pthread_mutex_lock(&reg->mu);
  bool found;
  size_t at = find_family(reg, p->name, &found);
  if (found) {
    const char *was = type_name(reg->fams[at]->type);
    pthread_mutex_unlock(&reg->mu);
    family_free(f);
    return es__fail(err, ES_EINVAL, -1, "metric '%s' is already registered (as a %s)", p->name,
                    was);
  }
  es_metric_family_t **fv = grow(reg->fams, reg->nfams, &reg->cap, sizeof *fv);
  if (!fv) {
    pthread_mutex_unlock(&reg->mu);
    goto fail_family;
  }
  reg->fams = fv;
  if (p->nlabels == 0) {
    es_metric_t *m;
    if ((rc = series_create(f, 0, NULL, &m, err)) != 0) {
      pthread_mutex_unlock(&reg->mu);
      family_free(f);
      return rc;
    }
  }
  memmove(reg->fams + at + 1, reg->fams + at, (reg->nfams - at) * sizeof *reg->fams);
  reg->fams[at] = f;
  reg->nfams++;
  pthread_mutex_unlock(&reg->mu);
  if (out) *out = f;
  return 0;

fail_family:
  family_free(f);
fail_alloc:
  return es__fail(err, ES_ENOMEM, -1, "metric '%s': out of memory registering it", p->name);
}

int es_metric_series(es_metric_family_t *f, const char *const *values, es_metric_t **out,
                     es_error_t *err) {
  assert(f && out);
  *out = NULL;
  for (size_t i = 0; i < f->nlabels; i++) {
    if (!values || !values[i])
      return es__fail(err, ES_EINVAL, -1, "metric '%s': label '%s' has no value (NULL)", f->name,
                      f->labels[i]);
    if (!utf8_valid(values[i]))
      return es__fail(err, ES_EINVAL, -1, "metric '%s': value of label '%s' is not valid UTF-8",
                      f->name, f->labels[i]);
  }
  es_metrics_t *reg = f->reg;
  pthread_mutex_lock(&reg->mu);
  bool found;
  size_t at = find_series(f, values, &found);
  int rc = 0;
  if (found)
    *out = f->series[at];
  else
    rc = series_create(f, at, values, out, err);
  pthread_mutex_unlock(&reg->mu);
  return rc;
}

/* ---- hot path --------------------------------------------------------------------------- */

int es_counter_add(es_metric_t *m, double v) {
  assert(m && m->fam->type == ES_METRIC_COUNTER && "es_counter_add on a non-counter");
  if (!(v >= 0)) return ES_EINVAL; /* negative or NaN */
  if (v < TWO53 && v == (double)(uint64_t)v)
    __atomic_fetch_add(&m->ival, (uint64_t)v, __ATOMIC_RELAXED);
  else
    atomic_add_double(&m->bits, v);
  return 0;
}

void es_counter_inc(es_metric_t *m) {
  assert(m && m->fam->type == ES_METRIC_COUNTER && "es_counter_inc on a non-counter");
  __atomic_fetch_add(&m->ival, 1, __ATOMIC_RELAXED);
}

void es_gauge_set(es_metric_t *m, double v) {
  assert(m && m->fam->type == ES_METRIC_GAUGE && "es_gauge_set on a non-gauge");
  __atomic_store_n(&m->bits, d2u(v), __ATOMIC_RELAXED);
}

void es_gauge_add(es_metric_t *m, double v) {
  assert(m && m->fam->type == ES_METRIC_GAUGE && "es_gauge_add on a non-gauge");
  atomic_add_double(&m->bits, v);
}

int es_histo_observe(es_metric_t *m, double v) {
  assert(m && m->fam->type == ES_METRIC_HISTOGRAM && "es_histo_observe on a non-histogram");
  if (isnan(v)) return ES_EINVAL;
  const es_metric_family_t *f = m->fam;
  size_t lo = 0, hi = f->nbuckets; /* first bound >= v; nbuckets = +Inf */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (f->bounds[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  __atomic_fetch_add(&m->counts[lo], 1, __ATOMIC_RELAXED);
  atomic_add_double(&m->bits, v);
  return 0;
}

/* ---- reading ------------------------------------------------------------------------------ */

static double stored_value(const es_metric_t *m) {
  double d = u2d(__atomic_load_n(&m->bits, __ATOMIC_RELAXED));
  if (m->fam->type == ES_METRIC_COUNTER) d += (double)__atomic_load_n(&m->ival, __ATOMIC_RELAXED);
  return d;
}

double es_metric_value(const es_metric_t *m) {
  assert(m);
  return stored_value(m);
}

int es_histo_read(const es_metric_t *m, uint64_t *cumulative, uint64_t *count, double *sum) {
  assert(m);
  if (m->fam->type != ES_METRIC_HISTOGRAM) return ES_EINVAL;
  uint64_t c = 0;
  for (size_t i = 0; i <= m->fam->nbuckets; i++) {
    c += __atomic_load_n(&m->counts[i], __ATOMIC_RELAXED);
    if (cumulative) cumulative[i] = c;
  }
  if (count) *count = c;
  if (sum) *sum = u2d(__atomic_load_n(&m->bits, __ATOMIC_RELAXED));
  return 0;
}

int es_metric_set_callback(es_metric_t *m, es_metric_fn fn, void *ctx) {
  assert(m);
  if (m->fam->type == ES_METRIC_HISTOGRAM) return ES_EINVAL;
  es_metrics_t *reg = m->fam->reg;
  pthread_mutex_lock(&reg->mu);
  m->cb = fn;
  m->cb_ctx = ctx;
  pthread_mutex_unlock(&reg->mu);
  return 0;
}

int es_metrics_on_scrape(es_metrics_t *reg, es_metrics_hook_fn fn, void *ctx) {
  assert(reg && fn);
  int rc = 0;
  pthread_mutex_lock(&reg->mu);
  size_t n = reg->nhooks;
  if (n >= ES_METRICS_MAX_HOOKS) {
    rc = ES_EFULL;
  } else {
    reg->hooks[n].fn = fn;
    reg->hooks[n].ctx = ctx;
    __atomic_store_n(&reg->nhooks, n + 1, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&reg->mu);
  return rc;
}

/* ---- rendering ---------------------------------------------------------------------------- */

typedef struct {
  es_metrics_buf_t *b;
  bool oom;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
  if (o->oom) return;
  es_metrics_buf_t *b = o->b;
  if (b->len + n + 1 > b->cap) {
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + n + 1) ncap *= 2;
    char *p = realloc(b->data, ncap);
    if (!p) {
      o->oom = true;
      return;
    }
    b->data = p;
    b->cap = ncap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void puts_(out_t *o, const char *s) { put(o, s, strlen(s)); }

/* Writes s escaping backslash and newline, and '"' when `quote`. */
static void put_escaped(out_t *o, const char *s, bool quote) {
  const char *run = s;
  for (; *s; s++) {
    const char *rep = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : quote && *s == '"' ? "\\\"" : 0;
    if (!rep) continue;
    put(o, run, (size_t)(s - run));
    put(o, rep, 2);
    run = s + 1;
  }
  put(o, run, (size_t)(s - run));
}

/* Formats v so that it parses back to the same double: integers exactly,
 * otherwise the shortest %.15g..%.17g that round-trips; '.' as decimal point
 * even under a locale with another one (strtod and snprintf agree on the
 * locale, so the round-trip test holds either way). */
static void fmt_double(char buf[40], double v) {
  if (isnan(v)) {
    strcpy(buf, "NaN");
  } else if (isinf(v)) {
    strcpy(buf, v > 0 ? "+Inf" : "-Inf");
  } else if (v == floor(v) && fabs(v) < 1e15) {
    snprintf(buf, 40, "%lld", (long long)v);
  } else {
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(buf, 40, "%.*g", prec, v);
      if (strtod(buf, NULL) == v) break;
    }
    /* a locale's decimal point (maybe several bytes) becomes '.' */
    char *w = buf;
    bool in_point = false;
    for (const char *r = buf; *r; r++) {
      char c = *r;
      bool plain = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e';
      if (plain)
        *w++ = c;
      else if (!in_point)
        *w++ = '.';
      in_point = !plain;
    }
    *w = '\0';
  }
}

static void put_double(out_t *o, double v) {
  char buf[40];
  fmt_double(buf, v);
  puts_(o, buf);
}

static void put_u64(out_t *o, uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
  puts_(o, buf);
}

/* name{labels[,le="bound"]} -- the leading part of a sample line. */
static void put_series_name(out_t *o, const es_metric_t *m, const char *suffix, const char *le) {
  const es_metric_family_t *f = m->fam;
  puts_(o, f->name);
  puts_(o, suffix);
  if (f->nlabels == 0 && !le) return;
  put(o, "{", 1);
  for (size_t i = 0; i < f->nlabels; i++) {
    if (i) put(o, ",", 1);
    puts_(o, f->labels[i]);
    put(o, "=\"", 2);
    put_escaped(o, m->values[i], true);
    put(o, "\"", 1);
  }
  if (le) {
    if (f->nlabels) put(o, ",", 1);
    put(o, "le=\"", 4);
    puts_(o, le);
    put(o, "\"", 1);
  }
  put(o, "}", 1);
}

static void render_series(out_t *o, const es_metric_t *m) {
  const es_metric_family_t *f = m->fam;
  if (f->type != ES_METRIC_HISTOGRAM) {
    double v = m->cb ? m->cb(m->cb_ctx, (const char *const *)m->values) : stored_value(m);
    put_series_name(o, m, "", NULL);
    put(o, " ", 1);
    put_double(o, v);
    put(o, "\n", 1);
    return;
  }
  uint64_t cum = 0;
  char le[40];
  for (size_t i = 0; i <= f->nbuckets; i++) {
    cum += __atomic_load_n(&m->counts[i], __ATOMIC_RELAXED);
    if (i < f->nbuckets)
      fmt_double(le, f->bounds[i]);
    else
      strcpy(le, "+Inf");
    put_series_name(o, m, "_bucket", le);
    put(o, " ", 1);
    put_u64(o, cum);
    put(o, "\n", 1);
  }
  put_series_name(o, m, "_sum", NULL);
  put(o, " ", 1);
  put_double(o, u2d(__atomic_load_n(&m->bits, __ATOMIC_RELAXED)));
  put(o, "\n", 1);
  put_series_name(o, m, "_count", NULL);
  put(o, " ", 1);
  put_u64(o, cum);
  put(o, "\n", 1);
}

void es_metrics_buf_free(es_metrics_buf_t *buf) {
  if (!buf) return;
  free(buf->data);
  buf->data = NULL;
  buf->len = buf->cap = 0;
}

int es_metrics_render(es_metrics_t *reg, es_metrics_buf_t *buf) {
  assert(reg && buf);
  size_t nhooks = __atomic_load_n(&reg->nhooks, __ATOMIC_ACQUIRE);
  for (size_t i = 0; i < nhooks; i++) reg->hooks[i].fn(reg, reg->hooks[i].ctx);

  out_t o = {.b = buf};
  buf->len = 0;
  put(&o, "", 0); /* an empty registry still gives a NUL-terminated "" */
  pthread_mutex_lock(&reg->mu);
  for (size_t i = 0; i < reg->nfams; i++) {
    const es_metric_family_t *f = reg->fams[i];
    if (f->nseries == 0) continue;
    puts_(&o, "# HELP ");
    puts_(&o, f->name);
    put(&o, " ", 1);
    put_escaped(&o, f->help, false);
    puts_(&o, "\n# TYPE ");
    puts_(&o, f->name);
    put(&o, " ", 1);
    puts_(&o, type_name(f->type));
    put(&o, "\n", 1);
    for (size_t j = 0; j < f->nseries; j++) render_series(&o, f->series[j]);
  }
  pthread_mutex_unlock(&reg->mu);
  if (o.oom) {
    buf->len = 0;
    if (buf->data) buf->data[0] = '\0';
    return ES_ENOMEM;
  }
  return 0;
}

int es_metrics_write(es_metrics_t *reg, FILE *f) {
  es_metrics_buf_t b = {0};
  int rc = es_metrics_render(reg, &b);
  if (rc == 0 && (fwrite(b.data, 1, b.len, f) != b.len || fflush(f) != 0)) rc = ES_EIO;
  es_metrics_buf_free(&b);
  return rc;
}

/* ---- the standard set --------------------------------------------------------------------- */

int es_metrics_register_inference(es_metrics_t *reg, es_inference_metrics_t *out, es_error_t *err) {
  assert(reg && out);
  static const char *const mv[] = {"model", "version"};
  static const char *const mvo[] = {"model", "version", "outcome"};
  static const char *const mvr[] = {"model", "version", "reason"};
  static const char *const mvs[] = {"model", "version", "stage"};
  static const char *const ms[] = {"model", "stage"};
  static const char *const m1[] = {"model"};
  static const char *const mvar[] = {"model", "variant"};
  static const char *const mdir[] = {"model", "direction"};
  static const char *const kind[] = {"kind"};
  const es_metric_type_t C = ES_METRIC_COUNTER, G = ES_METRIC_GAUGE, H = ES_METRIC_HISTOGRAM;
  /* clang-format off */
  const struct {
    es_metric_family_t **slot;
    es_metric_type_t type;
    const char *name;
    const char *const *labels;
    size_t nlabels;
    const char *help;
  } t[] = {
    {&out->requests, C, "edgeserve_inference_requests_total", mvo, 3,
     "Inference requests answered, by outcome (success or failure)."},
    {&out->failures, C, "edgeserve_inference_failures_total", mvr, 3,
     "Inference requests that failed, by reason."},
    {&out->inferences, C, "edgeserve_inference_count_total", mv, 2,
     "Inputs computed (a batch of n inputs counts n)."},
    {&out->executions, C, "edgeserve_inference_executions_total", mv, 2,
     "Batches computed by the model."},
    {&out->request_duration, H, "edgeserve_inference_request_duration_seconds", mv, 2,
     "Time from a request's arrival to its response."},
    {&out->queue_duration, H, "edgeserve_inference_queue_duration_seconds", mv, 2,
     "Time a request waited for a worker."},
    {&out->compute_duration, H, "edgeserve_inference_compute_duration_seconds", mvs, 3,
     "Time computing a request, by stage (input, infer, output)."},
    {&out->pending, G, "edgeserve_inference_pending_requests", mv, 2,
     "Requests received and not yet answered."},
    {&out->cache_hits, C, "edgeserve_cache_hits_total", mv, 2,
     "Requests answered from the response cache."},
    {&out->cache_misses, C, "edgeserve_cache_misses_total", mv, 2,
     "Requests looked up in the response cache and not found."},
    {&out->sla_violations, C, "edgeserve_sla_violations_total", ms, 2,
     "Requests that exceeded their latency objective, by stage."},
    {&out->quality_level, G, "edgeserve_quality_level", m1, 1,
     "Degradation level a model serves at: 0 is full quality."},
    {&out->quality_variant, G, "edgeserve_quality_variant", mvar, 2,
     "1 for the model variant serving now, 0 for the others."},
    {&out->memory_budget, G, "edgeserve_memory_budget_bytes", kind, 1,
     "Memory budget of the process and of each kind of use."},
    {&out->memory_used, G, "edgeserve_memory_used_bytes", kind, 1,
     "Memory counted against the budget, for the process and each kind of use."},
    {&out->memory_refusals, C, "edgeserve_memory_budget_refusals_total", kind, 1,
     "Memory reservations the budget refused."},
    {&out->memory_pressure, G, "edgeserve_memory_pressure_level", NULL, 0,
     "Memory pressure: 0 ok, 1 warning, 2 critical."},
    {&out->quality_switches, C, "edgeserve_quality_switches_total", mdir, 2,
     "Switches of the served model variant, down (cheaper, under load) or up."},
    {&out->load_level, G, "edgeserve_load_level", m1, 1,
     "Load level the quality manager sees: 0 optimal, 1 elevated, 2 high, 3 critical."},
  };
  /* clang-format on */
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    es_family_params_t p = es_family_default_params();
    p.type = t[i].type;
    p.name = t[i].name;
    p.help = t[i].help;
    p.labels = t[i].labels;
    p.nlabels = t[i].nlabels;
    int rc = es_metrics_register(reg, &p, t[i].slot, err);
    if (rc) return rc;
  }
  return 0;
}
