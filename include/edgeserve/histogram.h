/*
 * histogram.h - latency histograms: high dynamic range, lock-free recording,
 * percentiles, and sliding windows (last 10 s, 1 min, 5 min).
 *
 * An es_hist_t counts values (durations in microseconds, or any non-negative
 * integer quantity) in log-linear buckets: 64 linear sub-buckets per power of
 * two, exact below 128, so a percentile is within 1/128 (0.79%) of the exact
 * value from 1 us to 60 s (ES_HIST_MAX_US). Recording is a few relaxed atomic
 * increments, from any thread, without locks or allocation. An es_window_t
 * keeps the last `span` microseconds as a ring of sub-histograms (slices)
 * that rotate with the time the caller passes in; an es_latwin_t bundles the
 * three standard windows and an all-time histogram.
 *
 *   es_latwin_t *lw = es_latwin_new(NULL);
 *   es_hist_t *view = es_hist_new();
 *   uint64_t t0 = es_hist_now_us();
 *   ... serve the request ...
 *   uint64_t t1 = es_hist_now_us();
 *   es_latwin_record(lw, t1 - t0, t1);              // any thread, lock-free
 *
 *   es_latwin_query(lw, ES_LATWIN_1MIN, es_hist_now_us(), view);
 *   printf("p99 over the last minute: %llu us\n",
 *          (unsigned long long)es_hist_percentile(view, 0.99));
 *   es_hist_free(view);
 *   es_latwin_free(lw);
 *
 * Design, memory figures and measured costs: docs/observe/histogram.md.
 */
#ifndef EDGESERVE_HISTOGRAM_H
#define EDGESERVE_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest value tracked with the error bound: 60 s in microseconds.
 * Larger values are counted in an overflow bucket whose percentile value is
 * ES_HIST_MAX_US ("60 s or more"); es_hist_max() and es_hist_mean() still
 * use their true values. */
#define ES_HIST_MAX_US 60000000ull

/* Linear sub-buckets per power of two; the bound on a percentile's relative
 * error is 1 / (2 * ES_HIST_SUB_BUCKETS). */
#define ES_HIST_SUB_BUCKETS 64

/* ---- histograms ---------------------------------------------------------- */

typedef struct es_hist es_hist_t;

/* Makes an empty histogram (es_hist_bytes() bytes, one allocation). Returns
 * NULL when out of memory. Free with es_hist_free(). */
es_hist_t *es_hist_new(void);

/* Frees `h`. NULL is a no-op. No other call on `h` may run or follow. */
void es_hist_free(es_hist_t *h);

/* The size in bytes of one histogram (10,688 on every target: 1,332 64-bit
 * counters and 4 64-bit totals). */
size_t es_hist_bytes(void);

/* Counts the value `v` once (es_hist_record) or `n` times (es_hist_record_n;
 * n == 0 does nothing). 0 is counted in the lowest bucket, values above
 * ES_HIST_MAX_US in the overflow bucket. Lock-free and allocation-free; safe
 * from any number of threads at once, and alongside every other call except
 * es_hist_free(). */
void es_hist_record(es_hist_t *h, uint64_t v);
void es_hist_record_n(es_hist_t *h, uint64_t v, uint64_t n);

/* Totals. count: values recorded; sum: their sum (true values, overflow
 * included); min / max: the smallest / largest value recorded (true values),
 * 0 when empty; mean: sum / count, 0 when empty; overflow: values recorded
 * above ES_HIST_MAX_US. Safe at any time; while other threads record, each
 * figure is a recent value, but two figures may not describe the same set
 * of samples (see es_hist_percentile). */
uint64_t es_hist_count(const es_hist_t *h);
uint64_t es_hist_sum(const es_hist_t *h);
uint64_t es_hist_min(const es_hist_t *h);
uint64_t es_hist_max(const es_hist_t *h);
double es_hist_mean(const es_hist_t *h);
uint64_t es_hist_overflow(const es_hist_t *h);

/* The value at quantile q (nearest rank: the ceil(q * n)-th smallest of the
 * n values recorded, at least the first). Returns 0 when the histogram is
 * empty. q is clamped to [0, 1] (NaN reads as 0); q = 0 returns the minimum
 * and q = 1 the maximum, exactly (capped at ES_HIST_MAX_US). Otherwise it
 * returns the middle of the bucket that holds the ranked value, kept within
 * [min, max]: for a ranked value v <= ES_HIST_MAX_US the result r satisfies
 * |r - v| <= v / 128, and r == v for v < 128; a ranked value in the overflow
 * bucket reads as ES_HIST_MAX_US. Costs two passes over the 1,332 counters
 * (about 1 us). Safe while other threads record: the counters are read one
 * by one, so samples recorded during the call may or may not be included,
 * and a sample may already be in `count` but not yet in its bucket. */
uint64_t es_hist_percentile(const es_hist_t *h, double q);

/* A reporting summary, read in one pass (same caveats as above). */
typedef struct es_hist_summary {
  uint64_t count, sum, min, max, overflow;
  double mean;
  uint64_t p50, p90, p99, p999;
} es_hist_summary_t;

/* Fills *out with the totals and the 50th, 90th, 99th and 99.9th
 * percentiles (as es_hist_percentile). Never fails. */
void es_hist_summarize(const es_hist_t *h, es_hist_summary_t *out);

/* Adds every sample of `src` to `dst` (dst != src): afterwards `dst` answers
 * as if it had recorded both sets. Safe while other threads record into
 * either (dst's counters are updated atomically; src is read as in
 * es_hist_percentile). */
void es_hist_merge(es_hist_t *dst, const es_hist_t *src);

/* Empties `h`. Safe alongside recording threads (no undefined behaviour),
 * but a sample recorded during the reset may be kept in part (say, in its
 * bucket but not in `count`): reset a histogram nobody records into when the
 * figures must be exact. */
void es_hist_reset(es_hist_t *h);

/* Makes `dst` a copy of `src` (dst != src): es_hist_reset(dst) then
 * es_hist_merge(dst, src). A snapshot for reporting: read the copy at leisure
 * while recording goes on in `src`. */
void es_hist_copy(es_hist_t *dst, const es_hist_t *src);

/* CLOCK_MONOTONIC in microseconds: the clock the windows expect (any clock
 * that never goes back works, as long as all callers of a window share it). */
uint64_t es_hist_now_us(void);

/* ---- sliding windows ----------------------------------------------------- */

typedef struct es_window_params {
  uint64_t span_us; /* how far back the window sees; a multiple of `slices` */
  uint32_t slices;  /* sub-histograms in the ring, 1 .. 4096 */
} es_window_params_t;

/* The last 10 s in 10 slices of 1 s. */
es_window_params_t es_window_default_params(void);

typedef struct es_window es_window_t;

/* Makes a window of p->slices empty histograms, each covering
 * slice = span_us / slices microseconds of time: slice k covers
 * [k * slice, (k + 1) * slice). Returns NULL when p is invalid (span_us 0
 * or not a multiple of slices, slices not in 1 .. 4096) with *err filled
 * when not NULL (ES_EINVAL), or when out of memory (ES_ENOMEM); nothing is
 * left allocated. Memory: slices * es_hist_bytes() plus about 100 bytes.
 * Free with es_window_free(). */
es_window_t *es_window_new(const es_window_params_t *p, es_error_t *err);

/* Frees `w`. NULL is a no-op. No other call on `w` may run or follow. */
void es_window_free(es_window_t *w);

/* Records `v` at time `now_us` into the slice covering `now_us`. Lock-free
 * while that slice is current; the first record of a new slice empties the
 * ring slot it reuses under the window's mutex (once per slice period).
 * Safe from any number of threads. A sample older than the window's data
 * (its ring slot already holds a newer slice) is dropped and counted in
 * es_window_late(). Known race, documented in the design: a recorder
 * delayed by most of a span between reading its slot and counting may land
 * its sample in the newer slice that replaced it. */
void es_window_record(es_window_t *w, uint64_t v, uint64_t now_us);

/* Makes `out` (overwritten) the merge of the slices that cover the last
 * `slices` slice periods up to `now_us`, the current one included: every
 * sample recorded less than span_us - slice ago is in, every sample recorded
 * span_us ago or earlier is out (and samples stamped after now_us are out).
 * Takes the window's mutex (rotation waits for it); recording into the
 * current slices goes on. Costs about slices * 1,332 counter reads. */
void es_window_query(es_window_t *w, uint64_t now_us, es_hist_t *out);

/* The samples dropped by es_window_record() as older than the window. */
uint64_t es_window_late(const es_window_t *w);

/* ---- the standard latency windows ---------------------------------------- */

typedef enum {
  ES_LATWIN_10S = 0,  /* the last 10 s: 10 slices of 1 s */
  ES_LATWIN_1MIN = 1, /* the last minute: 12 slices of 5 s */
  ES_LATWIN_5MIN = 2, /* the last 5 minutes: 30 slices of 10 s */
  ES_LATWIN_ALL = 3,  /* everything since es_latwin_new() */
  ES_LATWIN_NSPANS = 4
} es_latwin_span_t;

/* "10s", "1min", "5min", "all"; "?" for anything else. */
const char *es_latwin_span_name(es_latwin_span_t span);

typedef struct es_latwin es_latwin_t;

/* Makes the three standard windows and an all-time histogram (53
 * histograms, 566,464 bytes plus about 400). Returns NULL when out of memory
 * with *err filled when not NULL (ES_ENOMEM); nothing is left allocated.
 * Free with es_latwin_free(). */
es_latwin_t *es_latwin_new(es_error_t *err);

/* Frees `lw`. NULL is a no-op. No other call on `lw` may run or follow. */
void es_latwin_free(es_latwin_t *lw);

/* Records `v` at `now_us` into the three windows and the all-time
 * histogram (four es_hist_record()s). Safe from any number of threads. */
void es_latwin_record(es_latwin_t *lw, uint64_t v, uint64_t now_us);

/* Makes `out` (overwritten) the histogram of `span` at `now_us` (ignored for
 * ES_LATWIN_ALL). Returns 0, or ES_EINVAL (out untouched) when `span` is
 * not one of the four. Thread safety as es_window_query() / es_hist_copy(). */
int es_latwin_query(es_latwin_t *lw, es_latwin_span_t span, uint64_t now_us, es_hist_t *out);

#ifdef __cplusplus
}
#endif
#endif
