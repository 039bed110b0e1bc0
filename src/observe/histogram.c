/*
 * histogram.c - high-dynamic-range latency histograms and sliding windows.
 *
 * What it is for: the server, the scheduler and the benchmarks need latency
 * percentiles (p50, p99, p99.9) over the last seconds and minutes, recorded
 * from every worker thread without a lock on the request path, in a fixed
 * amount of memory whatever the traffic. Exact percentiles would need every
 * sample; a log-linear histogram answers within 0.79% in 10.4 KiB.
 *
 * Buckets. A value v < 128 has its own bucket (index v). Above, with
 * e = floor(log2 v) and shift = e - 6, the value falls in the linear
 * sub-bucket (v >> shift) of its power of two, 64 sub-buckets per power:
 *   index(v) = shift * 64 + (v >> shift)        (shift = max(0, e - 6))
 * which is continuous with the exact part (shift 0 covers 0 .. 127). Bucket
 * i >= 128 covers [m << s, (m + 1) << s) with s = i / 64 - 1, m = 64 + i % 64.
 * ES_HIST_MAX_US (60e6) lands in bucket 1330; anything above goes to the
 * overflow bucket 1331. A percentile reports the middle of its bucket,
 * lo + (width - 1) / 2: the distance to any value of the bucket is at most
 * width / 2 <= lo / 128.
 *
 * Invariants:
 *   1. Each counter only changes by atomic operations: relaxed fetch-add
 *      when recording or merging, relaxed stores when resetting. Nothing
 *      orders them: a reader racing with writers sees each counter at some
 *      recent value, never a torn one.
 *   2. Quiescent (no call in flight), count == sum of the buckets,
 *      min <= max when count > 0, and min == UINT64_MAX, max == 0 when
 *      count == 0 (min and max read as 0 then).
 *   3. A window slot's tag is 0 (never used) or 1 + the number of the slice
 *      period it holds; tags only grow, and a tag grows only under the
 *      window's mutex, after the slot's histogram was emptied (release
 *      store, paired with the recorders' acquire load: a recorder that sees
 *      the new tag counts after the reset).
 *   4. A recorder counts into a slot only after seeing its own tag in it:
 *      current-period samples are never lost to a rotation. A recorder whose
 *      tag is older than the slot's drops its sample (late).
 *   5. Queries hold the mutex, so no slot rotates during a query.
 *
 * How it fits: include/edgeserve/histogram.h is the API; the server keeps an
 * es_latwin_t per endpoint and model, the scheduler and bench/ use es_hist_t
 * directly. Design notes and figures: docs/observe/histogram.md.
 */
#include "edgeserve/histogram.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "../common/fail.h"

#define SUB_BITS 6
#define SUB      ES_HIST_SUB_BUCKETS /* 64 */
#define NREG     1331                /* index(ES_HIST_MAX_US) + 1 */
#define OVERFLOW NREG                /* the overflow bucket's index */
#define NBUCKETS (NREG + 1)

_Static_assert(SUB == (1 << SUB_BITS), "sub-buckets must be 2^SUB_BITS");

struct es_hist {
  _Atomic uint64_t count, sum, min, max;
  _Atomic uint64_t b[NBUCKETS];
};

static const memory_order rlx = memory_order_relaxed;

/* ---- buckets ------------------------------------------------------------------ */

static inline uint32_t bucket_of(uint64_t v) {
  if (v > ES_HIST_MAX_US) return OVERFLOW;
  if (v < 2 * SUB) return (uint32_t)v;
  uint32_t shift = (uint32_t)(63 - __builtin_clzll(v)) - SUB_BITS;
  return shift * SUB + (uint32_t)(v >> shift);
}

/* The value a bucket reports: its middle (exact below 128). */
static uint64_t bucket_value(uint32_t i) {
  if (i == OVERFLOW) return ES_HIST_MAX_US;
  if (i < 2 * SUB) return i;
  uint32_t shift = i / SUB - 1;
  uint64_t lo = (uint64_t)(SUB + i % SUB) << shift;
  return lo + ((1ull << shift) - 1) / 2;
}

/* ---- histograms --------------------------------------------------------------- */

es_hist_t *es_hist_new(void) {
  es_hist_t *h = malloc(sizeof *h);
  if (!h) return NULL;
  es_hist_reset(h);
  return h;
}

void es_hist_free(es_hist_t *h) { free(h); }

size_t es_hist_bytes(void) { return sizeof(es_hist_t); }

static inline void update_min_max(es_hist_t *h, uint64_t lo, uint64_t hi) {
  uint64_t cur = atomic_load_explicit(&h->min, rlx);
  while (lo < cur && !atomic_compare_exchange_weak_explicit(&h->min, &cur, lo, rlx, rlx)) {
  }
  cur = atomic_load_explicit(&h->max, rlx);
  while (hi > cur && !atomic_compare_exchange_weak_explicit(&h->max, &cur, hi, rlx, rlx)) {
  }
}

/* Hot path: three relaxed fetch-adds and two relaxed loads (the CAS loops
 * run only when the value is a new minimum or maximum). */
void es_hist_record_n(es_hist_t *h, uint64_t v, uint64_t n) {
  if (n == 0) return;
  atomic_fetch_add_explicit(&h->b[bucket_of(v)], n, rlx);
  update_min_max(h, v, v);
  atomic_fetch_add_explicit(&h->sum, v * n, rlx);
  atomic_fetch_add_explicit(&h->count, n, rlx);
}

void es_hist_record(es_hist_t *h, uint64_t v) { es_hist_record_n(h, v, 1); }

uint64_t es_hist_count(const es_hist_t *h) { return atomic_load_explicit(&h->count, rlx); }
uint64_t es_hist_sum(const es_hist_t *h) { return atomic_load_explicit(&h->sum, rlx); }
uint64_t es_hist_overflow(const es_hist_t *h) { return atomic_load_explicit(&h->b[OVERFLOW], rlx); }

uint64_t es_hist_min(const es_hist_t *h) {
  uint64_t m = atomic_load_explicit(&h->min, rlx);
  return m == UINT64_MAX ? 0 : m;
}

uint64_t es_hist_max(const es_hist_t *h) { return atomic_load_explicit(&h->max, rlx); }

double es_hist_mean(const es_hist_t *h) {
  uint64_t n = es_hist_count(h);
  return n ? (double)es_hist_sum(h) / (double)n : 0.0;
}

/* Fills out[k] with the value at quantile qs[k] for k < nq (qs ascending):
 * one pass to total the buckets (the ranks must agree with the counts being
 * scanned, not with `count`, which may be ahead or behind), one to find the
 * ranks. */
static void percentiles(const es_hist_t *h, const double *qs, uint64_t *out, int nq) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < NBUCKETS; i++) total += atomic_load_explicit(&h->b[i], rlx);
  if (total == 0) {
    for (int k = 0; k < nq; k++) out[k] = 0;
    return;
  }
  uint64_t mn = es_hist_min(h), mx = es_hist_max(h);
  if (mn > ES_HIST_MAX_US) mn = ES_HIST_MAX_US;
  if (mx > ES_HIST_MAX_US) mx = ES_HIST_MAX_US;
  if (mx < mn) mx = mn; /* racing with a reset or a first record */
  uint64_t cum = 0;
  uint32_t i = 0, last = 0;
  for (int k = 0; k < nq; k++) {
    double q = qs[k];
    if (!(q > 0)) q = 0; /* NaN too */
    if (q > 1) q = 1;
    uint64_t rank = (uint64_t)ceil(q * (double)total);
    if (rank < 1) rank = 1;
    if (rank > total) rank = total;
    if (rank == 1) {
      out[k] = mn;
      continue;
    }
    if (rank == total) {
      out[k] = mx;
      continue;
    }
    while (cum < rank && i < NBUCKETS) {
      uint64_t c = atomic_load_explicit(&h->b[i], rlx);
      if (c) last = i;
      cum += c;
      i++;
    }
    /* cum < rank only when buckets were reset between the passes */
    uint64_t v = bucket_value(last);
    out[k] = v < mn ? mn : v > mx ? mx : v;
  }
}

uint64_t es_hist_percentile(const es_hist_t *h, double q) {
  uint64_t v;
  percentiles(h, &q, &v, 1);
  return v;
}

void es_hist_summarize(const es_hist_t *h, es_hist_summary_t *out) {
  static const double qs[4] = {0.5, 0.9, 0.99, 0.999};
  uint64_t v[4];
  percentiles(h, qs, v, 4);
  out->count = es_hist_count(h);
  out->sum = es_hist_sum(h);
  out->min = es_hist_min(h);
  out->max = es_hist_max(h);
  out->overflow = es_hist_overflow(h);
  out->mean = out->count ? (double)out->sum / (double)out->count : 0.0;
  out->p50 = v[0];
  out->p90 = v[1];
  out->p99 = v[2];
  out->p999 = v[3];
}

void es_hist_merge(es_hist_t *dst, const es_hist_t *src) {
  assert(dst != src && "es_hist_merge: dst and src must differ");
  for (uint32_t i = 0; i < NBUCKETS; i++) {
    uint64_t c = atomic_load_explicit(&src->b[i], rlx);
    if (c) atomic_fetch_add_explicit(&dst->b[i], c, rlx);
  }
  uint64_t n = atomic_load_explicit(&src->count, rlx);
  if (n == 0) return;
  update_min_max(dst, atomic_load_explicit(&src->min, rlx), atomic_load_explicit(&src->max, rlx));
  atomic_fetch_add_explicit(&dst->sum, atomic_load_explicit(&src->sum, rlx), rlx);
  atomic_fetch_add_explicit(&dst->count, n, rlx);
}

void es_hist_reset(es_hist_t *h) {
  atomic_store_explicit(&h->count, 0, rlx);
  atomic_store_explicit(&h->sum, 0, rlx);
  atomic_store_explicit(&h->min, UINT64_MAX, rlx);
  atomic_store_explicit(&h->max, 0, rlx);
  for (uint32_t i = 0; i < NBUCKETS; i++) atomic_store_explicit(&h->b[i], 0, rlx);
}

void es_hist_copy(es_hist_t *dst, const es_hist_t *src) {
  assert(dst != src && "es_hist_copy: dst and src must differ");
  es_hist_reset(dst);
  es_hist_merge(dst, src);
}

uint64_t es_hist_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- sliding windows ---------------------------------------------------------- */

typedef struct slot {
  _Atomic uint64_t tag; /* 0 = never used, else 1 + slice period number */
  es_hist_t *h;
} slot_t;

struct es_window {
  uint64_t slice_us;
  uint32_t nslots;
  pthread_mutex_t mu; /* rotations and queries */
  _Atomic uint64_t late;
  slot_t *slots;
};

es_window_params_t es_window_default_params(void) {
  es_window_params_t p = {10u * 1000000u, 10};
  return p;
}

es_window_t *es_window_new(const es_window_params_t *p, es_error_t *err) {
  if (!p || p->slices < 1 || p->slices > 4096) {
    es__fail(err, ES_EINVAL, -1, "window slices must be 1 .. 4096 (got %u)", p ? p->slices : 0u);
    return NULL;
  }
  if (p->span_us == 0 || p->span_us % p->slices != 0) {
    es__fail(err, ES_EINVAL, -1,
             "window span %llu us is not a positive multiple of its %u slices: "
             "use span = slices x slice length",
             (unsigned long long)p->span_us, p->slices);
    return NULL;
  }
  es_window_t *w = calloc(1, sizeof *w);
  if (!w) goto fail_w;
  w->slots = calloc(p->slices, sizeof *w->slots);
  if (!w->slots) goto fail_slots;
  w->slice_us = p->span_us / p->slices;
  w->nslots = p->slices;
  for (uint32_t i = 0; i < w->nslots; i++) {
    atomic_init(&w->slots[i].tag, 0);
    if (!(w->slots[i].h = es_hist_new())) goto fail_hists;
  }
  atomic_init(&w->late, 0);
  if (pthread_mutex_init(&w->mu, NULL) != 0) goto fail_hists;
  return w;

fail_hists:
  for (uint32_t i = 0; i < w->nslots; i++) es_hist_free(w->slots[i].h);
  free(w->slots);
fail_slots:
  free(w);
fail_w:
  es__fail(err, ES_ENOMEM, -1, "out of memory for a window of %u slices", p->slices);
  return NULL;
}

void es_window_free(es_window_t *w) {
  if (!w) return;
  pthread_mutex_destroy(&w->mu);
  for (uint32_t i = 0; i < w->nslots; i++) es_hist_free(w->slots[i].h);
  free(w->slots);
  free(w);
}

/* The slow path, once per slice period: empty the slot and give it `tag`
 * unless another thread did (or moved it further) first. */
static void rotate(es_window_t *w, slot_t *s, uint64_t tag) {
  pthread_mutex_lock(&w->mu);
  if (atomic_load_explicit(&s->tag, rlx) < tag) {
    es_hist_reset(s->h);
    atomic_store_explicit(&s->tag, tag, memory_order_release);
  }
  pthread_mutex_unlock(&w->mu);
}

void es_window_record(es_window_t *w, uint64_t v, uint64_t now_us) {
  uint64_t period = now_us / w->slice_us;
  uint64_t tag = period + 1;
  slot_t *s = &w->slots[period % w->nslots];
  uint64_t cur = atomic_load_explicit(&s->tag, memory_order_acquire);
  if (cur < tag) {
    rotate(w, s, tag);
    cur = atomic_load_explicit(&s->tag, memory_order_acquire);
  }
  if (cur != tag) {
    atomic_fetch_add_explicit(&w->late, 1, rlx);
    return;
  }
  es_hist_record(s->h, v);
}

void es_window_query(es_window_t *w, uint64_t now_us, es_hist_t *out) {
  uint64_t tag = now_us / w->slice_us + 1;
  es_hist_reset(out);
  pthread_mutex_lock(&w->mu);
  for (uint32_t i = 0; i < w->nslots; i++) {
    uint64_t t = atomic_load_explicit(&w->slots[i].tag, memory_order_acquire);
    if (t != 0 && t <= tag && t + w->nslots > tag) es_hist_merge(out, w->slots[i].h);
  }
  pthread_mutex_unlock(&w->mu);
}

uint64_t es_window_late(const es_window_t *w) { return atomic_load_explicit(&w->late, rlx); }

/* ---- the standard latency windows --------------------------------------------- */

struct es_latwin {
  es_window_t *win[3];
  es_hist_t *all;
};

static const es_window_params_t latwin_params[3] = {
    {10u * 1000000u, 10}, /* 10 s = 10 x 1 s */
    {60u * 1000000u, 12}, /* 1 min = 12 x 5 s */
    {300u * 1000000u, 30} /* 5 min = 30 x 10 s */
};

const char *es_latwin_span_name(es_latwin_span_t span) {
  switch (span) {
  case ES_LATWIN_10S: return "10s";
  case ES_LATWIN_1MIN: return "1min";
  case ES_LATWIN_5MIN: return "5min";
  case ES_LATWIN_ALL: return "all";
  default: return "?";
  }
}

es_latwin_t *es_latwin_new(es_error_t *err) {
  es_latwin_t *lw = calloc(1, sizeof *lw);
  if (!lw) goto fail;
  for (int k = 0; k < 3; k++)
    if (!(lw->win[k] = es_window_new(&latwin_params[k], err))) goto fail;
  if (!(lw->all = es_hist_new())) goto fail;
  return lw;

fail:
  es_latwin_free(lw); /* frees what was made; NULL members are no-ops */
  es__fail(err, ES_ENOMEM, -1, "out of memory for the latency windows");
  return NULL;
}

void es_latwin_free(es_latwin_t *lw) {
  if (!lw) return;
  for (int k = 0; k < 3; k++) es_window_free(lw->win[k]);
  es_hist_free(lw->all);
  free(lw);
}

void es_latwin_record(es_latwin_t *lw, uint64_t v, uint64_t now_us) {
  for (int k = 0; k < 3; k++) es_window_record(lw->win[k], v, now_us);
  es_hist_record(lw->all, v);
}

int es_latwin_query(es_latwin_t *lw, es_latwin_span_t span, uint64_t now_us, es_hist_t *out) {
  switch (span) {
  case ES_LATWIN_10S:
  case ES_LATWIN_1MIN:
  case ES_LATWIN_5MIN: es_window_query(lw->win[span], now_us, out); return 0;
  case ES_LATWIN_ALL: es_hist_copy(out, lw->all); return 0;
  default: return ES_EINVAL;
  }
}
