/*
 * bench_devpool.c - the device-memory pool against malloc/free and against
 * asking the provider for every block (mmap/munmap: what raw cudaMalloc /
 * cudaFree per tensor would be on a GPU).
 *
 * The workload replays one trace, the same for every variant: 3000
 * iterations of a batch that allocates 8..24 tensors of 4 KiB..8 MiB (sizes
 * log-uniform, multiples of 64 bytes), each living 1..4 iterations. Each
 * variant runs it twice: allocation and free only, and with one byte written
 * per 4 KiB page of every tensor (what a kernel writing its output costs in
 * page faults). The pool's lock is measured alone (an uncontended
 * pthread_mutex lock/unlock pair) and under two threads replaying the trace
 * on one shared pool.
 *
 *   gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Iinclude -Isrc \
 *     bench/runtime/bench_devpool.c src/runtime/devpool.c src/common/error.c \
 *     -lpthread -o /tmp/bench_devpool && /tmp/bench_devpool
 *
 * Prints markdown tables: medians of as many replays as fit in 1.5 s (at
 * least one) per variant and mode, after one untimed warm-up replay. Takes
 * about 15 s.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/clock.h"
#include "common/splitmix.h"
#include "edgeserve/devpool.h"

#define ITERS       1000 /* batches in the main trace */
#define TOUCH_ITERS 50   /* batches in the trace that writes its tensors */
#define MAX_REPS    41

typedef struct op {
  uint32_t id;
  uint64_t size; /* 0: free tensor id */
} op_t;

typedef struct trace {
  op_t *ops;
  size_t n, nalloc;
  uint64_t *sizes; /* by id */
  uint32_t nids;
  uint64_t peak_live;
} trace_t;

static void trace_build(trace_t *t, uint32_t iters, uint64_t seed) {
  uint32_t max_id = iters * 24;
  t->ops = malloc((size_t)max_id * 2 * sizeof *t->ops);
  t->sizes = calloc(max_id, sizeof *t->sizes);
  uint32_t *death = malloc(max_id * sizeof *death);
  uint32_t *start = malloc((iters + 1) * sizeof *start); /* first id of each batch */
  if (!t->ops || !t->sizes || !death || !start) exit(1);
  t->n = t->nalloc = 0;
  uint32_t next = 0;
  uint64_t live = 0;
  t->peak_live = 0;
  for (uint32_t it = 0; it <= iters; it++) { /* a tensor lives at most 4 batches */
    for (uint32_t id = it >= 4 ? start[it - 4] : 0; id < next; id++) {
      if (t->sizes[id] && death[id] == it) {
        t->ops[t->n++] = (op_t){id, 0};
        live -= t->sizes[id];
        death[id] = UINT32_MAX;
      }
    }
    if (it == iters) break;
    start[it] = next;
    int k = 8 + (int)(es__splitmix64(&seed) % 17);
    for (int i = 0; i < k; i++) {
      uint64_t base = UINT64_C(4096) << (es__splitmix64(&seed) % 11); /* 4 KiB .. 4 MiB */
      uint64_t size = (base + es__splitmix64(&seed) % base) & ~UINT64_C(63);
      if (size > (UINT64_C(8) << 20)) size = UINT64_C(8) << 20;
      t->sizes[next] = size;
      death[next] = it + 1 + (uint32_t)(es__splitmix64(&seed) % 4);
      t->ops[t->n++] = (op_t){next, size};
      t->nalloc++;
      live += size;
      next++;
    }
    if (live > t->peak_live) t->peak_live = live;
  }
  /* everything still alive dies at ITERS+1..: free it at the end */
  for (uint32_t id = 0; id < next; id++)
    if (death[id] != UINT32_MAX) t->ops[t->n++] = (op_t){id, 0};
  t->nids = next;
  free(death);
  free(start);
}

/* ---- the variants ---------------------------------------------------------------- */

typedef struct variant {
  const char *name;
  void *(*alloc)(void *ctx, uint64_t size, void **ptr); /* returns the handle */
  void (*free)(void *ctx, void *handle, uint64_t size);
} variant_t;

static void *pool_alloc(void *ctx, uint64_t size, void **ptr) {
  es_devblock_t *b = es_devpool_alloc(ctx, size, NULL);
  if (!b) {
    fprintf(stderr, "devpool allocation of %" PRIu64 " failed\n", size);
    exit(1);
  }
  *ptr = es_devblock_ptr(b);
  return b;
}
static void pool_free(void *ctx, void *h, uint64_t size) {
  (void)ctx, (void)size;
  es_devblock_free(h);
}

static void *malloc_alloc(void *ctx, uint64_t size, void **ptr) {
  (void)ctx;
  void *p = malloc((size_t)size);
  if (!p) exit(1);
  return *ptr = p;
}
static void malloc_free(void *ctx, void *h, uint64_t size) {
  (void)ctx, (void)size;
  free(h);
}

static void *mmap_alloc(void *ctx, uint64_t size, void **ptr) {
  (void)ctx;
  void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) exit(1);
  return *ptr = p;
}
static void mmap_free(void *ctx, void *h, uint64_t size) {
  (void)ctx;
  munmap(h, (size_t)size);
}

static const variant_t V_POOL = {"devpool", pool_alloc, pool_free};
static const variant_t V_MALLOC = {"malloc/free", malloc_alloc, malloc_free};
static const variant_t V_MMAP = {"mmap/munmap per block", mmap_alloc, mmap_free};

typedef struct replay {
  const trace_t *t;
  const variant_t *v;
  void *ctx;
  int touch;
  void **handles; /* by id */
} replay_t;

/* Replays the trace; returns seconds. */
static double replay(replay_t *r) {
  const trace_t *t = r->t;
  double t0 = es__mono_sec();
  for (size_t i = 0; i < t->n; i++) {
    const op_t *o = &t->ops[i];
    if (o->size) {
      void *ptr;
      r->handles[o->id] = r->v->alloc(r->ctx, o->size, &ptr);
      if (r->touch)
        for (uint64_t off = 0; off < o->size; off += 4096) ((volatile char *)ptr)[off] = 1;
    } else {
      r->v->free(r->ctx, r->handles[o->id], t->sizes[o->id]);
    }
  }
  return es__mono_sec() - t0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static es_devpool_t *new_pool_min(uint64_t min_region) {
  es_devpool_params_t p = es_devpool_default_params();
  if (min_region) p.min_region_bytes = min_region;
  es_error_t err = {0};
  es_devpool_t *pool = es_devpool_new(&p, &err);
  if (!pool) {
    fprintf(stderr, "%s\n", err.msg);
    exit(1);
  }
  return pool;
}

static es_devpool_t *new_pool(void) { return new_pool_min(0); }

/* Median seconds of the replays that fit in `budget` seconds (at least one,
 * at most MAX_REPS), after one untimed replay on the same allocator (a
 * server's steady state: its pool's pages are already faulted in). The
 * median, because other processes share this machine. */
static double measure(const trace_t *t, const variant_t *v, int touch, double budget) {
  double s[MAX_REPS];
  int n = 0;
  void **handles = calloc(t->nids, sizeof *handles);
  es_devpool_t *pool = v == &V_POOL ? new_pool() : NULL;
  replay_t r = {t, v, pool, touch, handles};
  if (v != &V_MMAP) replay(&r); /* every mmap is fresh anyway */
  double t0 = es__mono_sec();
  do s[n++] = replay(&r);
  while (n < MAX_REPS && es__mono_sec() - t0 < budget);
  if (pool && es_devpool_free(pool) != 0) exit(1);
  free(handles);
  qsort(s, (size_t)n, sizeof *s, cmp_double);
  return s[n / 2];
}

/* The pool's fragmentation along the trace: after each batch's allocations. */
static void pool_fragmentation(const trace_t *t, uint64_t min_region, double *mean, double *max,
                               double *end, es_devpool_stats_t *st) {
  es_devpool_t *pool = new_pool_min(min_region);
  void **h = calloc(t->nids, sizeof *h);
  double sum = 0;
  uint64_t n = 0;
  *max = 0;
  for (size_t i = 0; i < t->n; i++) {
    const op_t *o = &t->ops[i];
    if (o->size) {
      void *ptr;
      h[o->id] = pool_alloc(pool, o->size, &ptr);
      if (i + 1 < t->n && t->ops[i + 1].size == 0) { /* the batch is complete */
        es_devpool_stats_t s;
        es_devpool_stats(pool, &s);
        sum += s.fragmentation, n++;
        if (s.fragmentation > *max) *max = s.fragmentation;
        *end = s.fragmentation;
        *st = s;
      }
    } else {
      pool_free(pool, h[o->id], 0);
    }
  }
  *mean = n ? sum / (double)n : 0;
  es_devpool_stats(pool, st + 1);
  free(h);
  es_devpool_free(pool);
}

/* ---- threads --------------------------------------------------------------------- */

typedef struct thr {
  replay_t r;
  pthread_t th;
  double secs;
} thr_t;

static void *thr_main(void *arg) {
  thr_t *t = arg;
  t->secs = replay(&t->r);
  return NULL;
}

/* Two threads replaying the trace at once on one allocator, after one
 * untimed pair of replays; returns wall seconds (median, as measure). */
static double measure2(const trace_t *t, const variant_t *v, double budget) {
  double s[MAX_REPS + 1];
  int n = 0;
  es_devpool_t *pool = v == &V_POOL ? new_pool() : NULL;
  thr_t th[2];
  for (int i = 0; i < 2; i++) th[i].r = (replay_t){t, v, pool, 0, calloc(t->nids, sizeof(void *))};
  double t0 = 0;
  do {
    double t1 = es__mono_sec();
    for (int i = 0; i < 2; i++) pthread_create(&th[i].th, NULL, thr_main, &th[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i].th, NULL);
    s[n++] = es__mono_sec() - t1;
    if (n == 1) t0 = es__mono_sec();
  } while (n < MAX_REPS + 1 && (n == 1 || es__mono_sec() - t0 < budget));
  for (int i = 0; i < 2; i++) free(th[i].r.handles);
  if (pool && es_devpool_free(pool) != 0) exit(1);
  qsort(s + 1, (size_t)(n - 1), sizeof *s, cmp_double);
  return s[1 + (n - 1) / 2];
}

static double mutex_pair_ns(void) {
  pthread_mutex_t m;
  pthread_mutex_init(&m, NULL);
  const int n = 10 * 1000 * 1000;
  double t0 = es__mono_sec();
  for (int i = 0; i < n; i++) {
    pthread_mutex_lock(&m);
    pthread_mutex_unlock(&m);
  }
  double s = es__mono_sec() - t0;
  pthread_mutex_destroy(&m);
  return s * 1e9 / n;
}

int main(void) {
  trace_t t, tt;
  trace_build(&t, ITERS, 42);
  trace_build(&tt, TOUCH_ITERS, 42);
  double total0 = es__mono_sec();
  printf("trace: %d batches, %zu allocations of 4 KiB..8 MiB, peak live %.1f MiB; "
         "written: the first %d batches (%zu allocations)\n\n",
         ITERS, t.nalloc, (double)t.peak_live / (1 << 20), TOUCH_ITERS, tt.nalloc);

  const variant_t *vs[3] = {&V_POOL, &V_MALLOC, &V_MMAP};
  double ns[2][3];
  for (int i = 0; i < 3; i++) {
    ns[0][i] = measure(&t, vs[i], 0, 1.5) * 1e9 / (double)t.nalloc;
    ns[1][i] = measure(&tt, vs[i], 1, 1.5) * 1e9 / (double)tt.nalloc;
  }
  printf("| variant | ns per alloc+free | vs devpool | with 1 byte per page written | vs devpool "
         "|\n|---|---:|---:|---:|---:|\n");
  for (int i = 0; i < 3; i++)
    printf("| %s | %.0f | %.2fx | %.0f | %.2fx |\n", vs[i]->name, ns[0][i], ns[0][i] / ns[0][0],
           ns[1][i], ns[1][i] / ns[1][0]);

  printf("\n| devpool along the trace | min_region 16 MiB (default) | min_region 64 MiB |\n"
         "|---|---:|---:|\n");
  double mean[2] = {0}, max[2] = {0}, end[2] = {0};
  es_devpool_stats_t fs[2][2];
  for (int k = 0; k < 2; k++)
    pool_fragmentation(&t, (UINT64_C(16) << 20) << (2 * k), &mean[k], &max[k], &end[k], fs[k]);
  printf("| fragmentation after each batch: mean / max / last | %.3f / %.3f / %.3f | %.3f / %.3f / "
         "%.3f |\n",
         mean[0], max[0], end[0], mean[1], max[1], end[1]);
  printf("| regions, region MiB at the end | %" PRIu64 ", %.1f | %" PRIu64 ", %.1f |\n",
         fs[0][1].regions, (double)fs[0][1].region_bytes / (1 << 20), fs[1][1].regions,
         (double)fs[1][1].region_bytes / (1 << 20));
  printf("| peak used MiB (the trace's peak live: %.1f) | %.1f | %.1f |\n",
         (double)t.peak_live / (1 << 20), (double)fs[0][1].peak_used / (1 << 20),
         (double)fs[1][1].peak_used / (1 << 20));
  printf("| peak used / region bytes | %.2f | %.2f |\n",
         (double)fs[0][1].peak_used / (double)fs[0][1].region_bytes,
         (double)fs[1][1].peak_used / (double)fs[1][1].region_bytes);
  printf("| splits, merges, region grows | %" PRIu64 ", %" PRIu64 ", %" PRIu64 " | %" PRIu64
         ", %" PRIu64 ", %" PRIu64 " |\n",
         fs[0][1].splits, fs[0][1].merges, fs[0][1].grows, fs[1][1].splits, fs[1][1].merges,
         fs[1][1].grows);

  double m = mutex_pair_ns();
  double p2 = measure2(&t, &V_POOL, 1.5) * 1e9 / (double)(2 * t.nalloc);
  double m2 = measure2(&t, &V_MALLOC, 1.5) * 1e9 / (double)(2 * t.nalloc);
  printf("\n| the lock | value |\n|---|---:|\n");
  printf("| uncontended pthread_mutex lock+unlock, ns | %.1f |\n", m);
  printf("| its share of devpool's alloc+free (2 pairs) | %.0f%% |\n", 200.0 * m / ns[0][0]);
  printf("| 2 threads on one pool: wall ns per alloc+free | %.0f (1 thread: %.0f) |\n", p2,
         ns[0][0]);
  printf("| 2 threads, malloc/free: wall ns per alloc+free | %.0f (1 thread: %.0f) |\n", m2,
         ns[0][1]);
  printf("\ntotal %.1f s\n", es__mono_sec() - total0);
  free(t.ops);
  free(t.sizes);
  free(tt.ops);
  free(tt.sizes);
  return 0;
}
