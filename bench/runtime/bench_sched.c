/*
 * bench_sched.c - the work-stealing priority scheduler (sched.h) against two
 * baseline pools with the same number of workers:
 *   fifo   one mutex + condition variable around one FIFO ring
 *   prio4  one mutex + condition variable around four FIFO rings, the most
 *          urgent non-empty one first (a fair "priority pool" baseline)
 *
 * 1. Throughput of ~1 us tasks (a busy spin of 1 us):
 *      external   the main thread submits N tasks, workers run them
 *      fork-join  one task starts a binary tree: each task spins 1 us then
 *                 submits two children, down to a depth (2^18-1 tasks)
 *    Tasks count their completion in a per-thread slot (no cache line shared
 *    by all tasks), the main thread polls the sum every 50 us. Median of 3 runs, interleaved across
 * pools; tasks per second and the overhead per task (elapsed * workers / tasks - the task body's
 * own time, measured alone on one thread).
 * 2. Critical latency under a low-priority flood: a feeder thread keeps 512
 *    low tasks (1-20 us each, uniform) queued so every worker stays busy,
 *    while another thread submits a critical task (5 us) every 1 ms. Each
 *    critical task records its submit-to-start time; the table shows p50,
 *    p99 and max over the run, and how many low tasks ran per second.
 *
 * Usage: bench_sched [seconds-per-flood-run (3)] [workers (2)] [only-this-pool] [flood]
 * Build: gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Iinclude -Isrc \
 *          src/common/error.c src/runtime/deque.c src/runtime/affinity.c \
 *          src/runtime/sched.c bench/runtime/bench_sched.c -lpthread -lm \
 *          -o bench_sched
 * Prints markdown tables; docs/runtime/sched.md records a run.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edgeserve/sched.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Busy work of a known length: a calibrated loop, not a clock poll (a
 * clock_gettime costs ~40 ns here and ticks coarsely in a VM). */
static double iters_per_ns = 1.0;
static volatile uint32_t spin_sink;

static void spin_iters(uint64_t n) {
  uint32_t x = spin_sink;
  for (uint64_t i = 0; i < n; i++) x = x * 1103515245u + 12345u;
  spin_sink = x;
}

static void spin_ns(uint64_t ns) { spin_iters((uint64_t)((double)ns * iters_per_ns)); }

static void calibrate(void) {
  double best = 0;
  for (int r = 0; r < 5; r++) { /* the fastest of 5: least disturbed */
    uint64_t t0 = now_ns();
    spin_iters(2000000);
    double rate = 2000000.0 / (double)(now_ns() - t0);
    if (rate > best) best = rate;
  }
  iters_per_ns = best;
}

static void sleep_until(uint64_t t) {
  struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* ---- the pools behind one interface ---------------------------------------- */

typedef void (*job_fn)(void *);

typedef struct {
  const char *name;
  void *(*create)(int nworkers);
  int (*submit)(void *pool, job_fn fn, void *arg, int prio);
  void (*destroy)(void *pool); /* runs what is queued, joins */
} pool_ops_t;

/* es_sched */
static void *es_create(int n) {
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = n;
  return es_sched_new(&p, NULL);
}
static int es_submit(void *pool, job_fn fn, void *arg, int prio) {
  return es_sched_submit(pool, fn, arg, prio, NULL);
}
static void es_destroy(void *pool) {
  es_sched_shutdown(pool, ES_SCHED_DRAIN);
  es_sched_free(pool);
}

/* mutex pools: 1 ring (fifo) or 4 rings (prio4) under one mutex */
typedef struct {
  job_fn fn;
  void *arg;
} job_t;

typedef struct {
  job_t *a;
  size_t cap, head, n;
} ring_t;

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int nq, idle, stop, n;
  ring_t q[4];
  pthread_t th[64];
} mpool_t;

static int ring_push(ring_t *r, job_t j) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 1024;
    job_t *a = malloc(cap * sizeof *a);
    if (!a) return -1;
    for (size_t i = 0; i < r->n; i++) a[i] = r->a[(r->head + i) % r->cap];
    free(r->a);
    r->a = a, r->cap = cap, r->head = 0;
  }
  r->a[(r->head + r->n++) % r->cap] = j;
  return 0;
}

static void *mpool_worker(void *arg) {
  mpool_t *m = arg;
  pthread_mutex_lock(&m->mu);
  for (;;) {
    ring_t *r = NULL;
    for (int q = 0; q < m->nq && !r; q++)
      if (m->q[q].n) r = &m->q[q];
    if (r) {
      job_t j = r->a[r->head];
      r->head = (r->head + 1) % r->cap;
      r->n--;
      pthread_mutex_unlock(&m->mu);
      j.fn(j.arg);
      pthread_mutex_lock(&m->mu);
      continue;
    }
    if (m->stop) break;
    m->idle++;
    pthread_cond_wait(&m->cv, &m->mu);
    m->idle--;
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

static void *mpool_create(int n, int nq) {
  mpool_t *m = calloc(1, sizeof *m);
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->cv, NULL);
  m->nq = nq;
  m->n = n;
  for (int i = 0; i < n; i++) pthread_create(&m->th[i], NULL, mpool_worker, m);
  return m;
}
static void *fifo_create(int n) { return mpool_create(n, 1); }
static void *prio4_create(int n) { return mpool_create(n, 4); }

static int mpool_submit(void *pool, job_fn fn, void *arg, int prio) {
  mpool_t *m = pool;
  pthread_mutex_lock(&m->mu);
  int rc = ring_push(&m->q[m->nq == 1 ? 0 : prio], (job_t){fn, arg});
  if (m->idle) pthread_cond_signal(&m->cv);
  pthread_mutex_unlock(&m->mu);
  return rc;
}

static void mpool_destroy(void *pool) {
  mpool_t *m = pool;
  pthread_mutex_lock(&m->mu);
  m->stop = 1;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  for (int i = 0; i < m->n; i++) pthread_join(m->th[i], NULL);
  for (int q = 0; q < 4; q++) free(m->q[q].a);
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->cv);
  free(m);
}

static const pool_ops_t POOLS[] = {
    {"es_sched", es_create, es_submit, es_destroy},
    {"fifo", fifo_create, mpool_submit, mpool_destroy},
    {"prio4", prio4_create, mpool_submit, mpool_destroy},
};
enum { NPOOLS = sizeof POOLS / sizeof *POOLS };

/* ---- 1. throughput ------------------------------------------------------------ */

static const pool_ops_t *g_ops;
static void *g_pool;

/* Completed tasks, counted per thread (one writer per slot, no shared cache
 * line per task); the main thread sums the slots. */
static struct {
  atomic_long n;
  char pad[64 - sizeof(atomic_long)];
} done_slot[64];
static atomic_int done_next;
static _Thread_local int my_slot = -1;

static void count_done(void) {
  if (my_slot < 0) my_slot = atomic_fetch_add(&done_next, 1) % 64;
  atomic_long *c = &done_slot[my_slot].n;
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
}

static void reset_done(void) {
  atomic_store(&done_next, 0);
  for (int i = 0; i < 64; i++) atomic_store(&done_slot[i].n, 0);
}

static void wait_done(long n) {
  for (;;) {
    long sum = 0;
    for (int i = 0; i < 64; i++) sum += atomic_load_explicit(&done_slot[i].n, memory_order_relaxed);
    if (sum >= n) return;
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
  }
}

static void tiny_task(void *arg) {
  (void)arg;
  spin_ns(1000);
  count_done();
}

static void tree_task(void *arg) {
  intptr_t depth = (intptr_t)arg;
  spin_ns(1000);
  if (depth > 0)
    for (int i = 0; i < 2; i++)
      if (g_ops->submit(g_pool, tree_task, (void *)(depth - 1), ES_SCHED_NORMAL)) abort();
  count_done();
}

static double run_external(const pool_ops_t *ops, int nworkers, long ntasks) {
  g_ops = ops;
  g_pool = ops->create(nworkers);
  reset_done();
  uint64_t t0 = now_ns();
  for (long i = 0; i < ntasks; i++)
    if (ops->submit(g_pool, tiny_task, NULL, ES_SCHED_NORMAL)) abort();
  wait_done(ntasks);
  double t = (double)(now_ns() - t0) * 1e-9;
  ops->destroy(g_pool);
  return t;
}

static double run_forkjoin(const pool_ops_t *ops, int nworkers, int depth, long *ntasks) {
  g_ops = ops;
  g_pool = ops->create(nworkers);
  *ntasks = (2L << depth) - 1;
  reset_done();
  uint64_t t0 = now_ns();
  if (ops->submit(g_pool, tree_task, (void *)(intptr_t)depth, ES_SCHED_NORMAL)) abort();
  wait_done(*ntasks);
  double t = (double)(now_ns() - t0) * 1e-9;
  ops->destroy(g_pool);
  return t;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ---- 2. critical latency under a low flood ---------------------------------- */

#define LOW_BACKLOG 512
#define MAX_CRIT    20000

typedef struct {
  uint64_t submit_ns;
  uint64_t start_ns;
} crit_t;

static atomic_long low_submitted, low_done;
static atomic_int flood_stop;
static crit_t crits[MAX_CRIT];
static atomic_int crit_started;

static void low_task(void *arg) {
  spin_ns(1000 + (uint64_t)(uintptr_t)arg); /* 1-20 us */
  atomic_fetch_add_explicit(&low_done, 1, memory_order_relaxed);
}

static void crit_task(void *arg) {
  crit_t *c = arg;
  c->start_ns = now_ns();
  spin_ns(5000);
  atomic_fetch_add(&crit_started, 1);
}

static void *feeder(void *arg) {
  (void)arg;
  uint32_t r = 12345;
  while (!atomic_load(&flood_stop)) {
    long backlog = atomic_load(&low_submitted) - atomic_load(&low_done);
    if (backlog < LOW_BACKLOG / 2) {
      for (long i = backlog; i < LOW_BACKLOG; i++) {
        r ^= r << 13, r ^= r >> 17, r ^= r << 5;
        if (g_ops->submit(g_pool, low_task, (void *)(uintptr_t)(r % 19001), ES_SCHED_LOW)) abort();
        atomic_fetch_add(&low_submitted, 1);
      }
    }
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* One flood run of `seconds`: appends the critical tasks' submit-to-start
 * times (ns) to lat[*n...] and returns the low tasks run per second. */
static double run_flood(const pool_ops_t *ops, int nworkers, double seconds, uint64_t *lat, int *n,
                        es_sched_stats_t *es_stats) {
  g_ops = ops;
  g_pool = ops->create(nworkers);
  atomic_store(&low_submitted, 0);
  atomic_store(&low_done, 0);
  atomic_store(&flood_stop, 0);
  atomic_store(&crit_started, 0);
  pthread_t th;
  pthread_create(&th, NULL, feeder, NULL);
  /* let the flood fill the pool */
  while (atomic_load(&low_done) < 2000) sched_yield();
  long low0 = atomic_load(&low_done);
  uint64_t t0 = now_ns(), next = t0;
  int k = 0;
  while (*n + k < MAX_CRIT && next - t0 < (uint64_t)(seconds * 1e9)) {
    next += 1000000; /* 1 kHz */
    sleep_until(next);
    crits[k].start_ns = 0;
    crits[k].submit_ns = now_ns();
    if (ops->submit(g_pool, crit_task, &crits[k], ES_SCHED_CRITICAL)) abort();
    k++;
  }
  while (atomic_load(&crit_started) < k) sched_yield();
  double low_per_s = (double)(atomic_load(&low_done) - low0) / ((double)(now_ns() - t0) * 1e-9);
  atomic_store(&flood_stop, 1);
  pthread_join(th, NULL);
  if (es_stats && ops == &POOLS[0]) {
    es_sched_stats_t st;
    es_sched_stats(g_pool, &st);
    /* accumulate the counts of several runs; latencies: keep the last run's */
    st.stolen += es_stats->stolen, st.aged += es_stats->aged;
    *es_stats = st;
  }
  ops->destroy(g_pool);
  for (int i = 0; i < k; i++) lat[(*n)++] = crits[i].start_ns - crits[i].submit_ns;
  return low_per_s;
}

/* Ideal time for n bodies: nworkers plain threads, n / nworkers each, no pool. */
static long ideal_each;
static void *ideal_thread(void *arg) {
  (void)arg;
  for (long i = 0; i < ideal_each; i++) spin_ns(1000);
  return NULL;
}

static double run_ideal(int nworkers, long n) {
  pthread_t th[64];
  ideal_each = n / nworkers;
  uint64_t t0 = now_ns();
  for (int i = 0; i < nworkers; i++) pthread_create(&th[i], NULL, ideal_thread, NULL);
  for (int i = 0; i < nworkers; i++) pthread_join(th[i], NULL);
  return (double)(now_ns() - t0) * 1e-9;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3.0;
  int nworkers = argc > 2 ? atoi(argv[2]) : 2;
  const char *only = argc > 3 ? argv[3] : NULL;
  int flood_only = argc > 4 && strcmp(argv[4], "flood") == 0;
  double load[3] = {0};
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
    fclose(f);
  }
  calibrate();
  if (nworkers < 1 || nworkers > 64) nworkers = 2;
  printf("bench_sched: %d workers, %ld online cpus, load average %.2f at start\n\n", nworkers,
         sysconf(_SC_NPROCESSORS_ONLN), load[0]);

  /* 1. throughput */
  const long n_ext = 200000;
  const int depth = 17;
  long n_fj = (2L << depth) - 1;
  double a[NPOOLS][3], b[NPOOLS][3], ia[3], ib[3];
  for (int rep = 0; rep < 3 && !flood_only; rep++) { /* interleaved: load drifts hit all */
    ia[rep] = run_ideal(nworkers, n_ext);
    ib[rep] = run_ideal(nworkers, n_fj);
    for (int k = 0; k < NPOOLS; k++) {
      if (only && strcmp(only, POOLS[k].name)) continue;
      a[k][rep] = run_external(&POOLS[k], nworkers, n_ext);
      b[k][rep] = run_forkjoin(&POOLS[k], nworkers, depth, &n_fj);
    }
  }
  if (!flood_only) {
    qsort(ia, 3, sizeof *ia, cmp_double);
    qsort(ib, 3, sizeof *ib, cmp_double);
    printf("### Throughput of 1 us tasks (median of 3)\n\n");
    printf("ideal = %d plain threads running the same task bodies, no pool; overhead/task =\n"
           "(time - ideal time) * workers / tasks.\n\n",
           nworkers);
    printf("| workload | pool | tasks | Mtasks/s | overhead/task | vs fifo |\n");
    printf("|---|---|---:|---:|---:|---:|\n");
    for (int w = 0; w < 2; w++) {
      long n = w ? n_fj : n_ext;
      double ideal = w ? ib[1] : ia[1], t[NPOOLS];
      for (int k = 0; k < NPOOLS; k++) {
        if (only && strcmp(only, POOLS[k].name)) continue;
        double *r = w ? b[k] : a[k];
        qsort(r, 3, sizeof *r, cmp_double);
        t[k] = r[1];
      }
      const char *name = w ? "fork-join" : "external";
      printf("| %s | ideal | %ld | %.3f | - | - |\n", name, n, (double)n / ideal / 1e6);
      for (int k = 0; k < NPOOLS; k++) {
        if (only && strcmp(only, POOLS[k].name)) continue;
        double per = (t[k] - ideal) * nworkers / (double)n * 1e9;
        printf("| %s | %s | %ld | %.3f | %.0f ns | ", name, POOLS[k].name, n,
               (double)n / t[k] / 1e6, per);
        if (only)
          printf("- |\n");
        else
          printf("%.2fx |\n", t[1] / t[k]);
      }
    }
  }

  /* 2. flood: 3 rounds, pools interleaved, percentiles over all rounds */
  printf("\n### Critical submit-to-start latency under a low flood (3 x %.1f s per pool, 1 kHz)"
         "\n\n",
         seconds / 3);
  printf("| pool | critical tasks | p50 | p99 | max | low tasks/s |\n");
  printf("|---|---:|---:|---:|---:|---:|\n");
  static uint64_t lat[NPOOLS][MAX_CRIT];
  int nlat[NPOOLS] = {0};
  double low[NPOOLS] = {0};
  es_sched_stats_t st;
  memset(&st, 0, sizeof st);
  for (int rep = 0; rep < 3; rep++)
    for (int k = 0; k < NPOOLS; k++) {
      if (only && strcmp(only, POOLS[k].name)) continue;
      low[k] += run_flood(&POOLS[k], nworkers, seconds / 3, lat[k], &nlat[k], &st) / 3;
    }
  for (int k = 0; k < NPOOLS; k++) {
    if (only && strcmp(only, POOLS[k].name)) continue;
    int n = nlat[k];
    qsort(lat[k], (size_t)n, sizeof lat[k][0], cmp_u64);
    printf("| %s | %d | %.1f us | %.1f us | %.1f us | %.0f |\n", POOLS[k].name, n,
           lat[k][n / 2] / 1e3, lat[k][(size_t)(n * 0.99)] / 1e3, lat[k][n - 1] / 1e3, low[k]);
  }
  printf("\nes_sched's own statistics (its last flood run): critical p50 %.1f us, p99 %.1f us, "
         "max %.1f us (%llu tasks); low p50 %.0f us. Over all its runs: stolen %llu, aged %llu.\n",
         st.latency[ES_SCHED_CRITICAL].p50_us, st.latency[ES_SCHED_CRITICAL].p99_us,
         st.latency[ES_SCHED_CRITICAL].max_us,
         (unsigned long long)st.latency[ES_SCHED_CRITICAL].count, st.latency[ES_SCHED_LOW].p50_us,
         (unsigned long long)st.stolen, (unsigned long long)st.aged);
  return 0;
}
