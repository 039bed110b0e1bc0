/*
 * bench_pool.c - object pool + buffer pool + request arena against plain
 * malloc/free, on a serving-loop workload.
 *
 * Per simulated request: a request object (200 B), a body buffer (60% 64 B-1
 * KiB, 30% 1-8 KiB, 10% 8-64 KiB; one byte written per 4 KiB page and the
 * last byte, as a recv would fault them in), 1..8 result objects (64 B), 12
 * short strings (8..40 B, header names, labels). Each thread keeps 16
 * requests in flight (a request is released when the one 16 later starts),
 * then releases everything: with 2 threads, a quarter of the requests have
 * their results freed by the other thread (handed over through a ring).
 *
 * Variants, identical sequences of sizes (same seeds):
 *   malloc     malloc/free, strndup/free (glibc's defaults)
 *   malloc-notrim  the same with glibc told not to give memory back
 *              (mallopt M_TRIM_THRESHOLD 1 GiB): what tuning glibc buys
 *   pools      es_pool (requests, results) + es_bufpool (bodies) + one
 *              es_arena per in-flight slot (strings; reset per request)
 *   no-cache   the same with thread caches off (every get/put takes a lock)
 *
 * Each variant runs in a child process (fork), so its peak RSS (the child's
 * own ru_maxrss) is its own; the table shows the median of 3 runs and the peak
 * RSS above an idle child. A second table times the three parts alone.
 *
 * Build: gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -DNDEBUG -Iinclude -Isrc \
 *          src/common/error.c src/runtime/{pool,bufpool,arena}.c \
 *          bench/runtime/bench_pool.c -lpthread -o /tmp/bench_pool
 * Run:   /tmp/bench_pool [requests per thread, default 200000]
 */
#define _GNU_SOURCE /* mallopt, for the malloc-notrim variant */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "edgeserve/arena.h"
#include "edgeserve/bufpool.h"
#include "edgeserve/pool.h"

#define INFLIGHT 16
#define MAXRES   8
#define NSTR     12
#define RING     4096

enum { MODE_MALLOC, MODE_NOTRIM, MODE_POOLS, MODE_NOCACHE };
static const char *mode_name[] = {"malloc", "malloc-notrim", "pools", "no-cache"};

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rnd(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static size_t body_size(uint64_t *s) {
  uint64_t r = rnd(s);
  unsigned pct = (unsigned)(r % 100);
  r >>= 8;
  if (pct < 60) return 64 + (size_t)(r % (1024 - 64));
  if (pct < 90) return 1024 + (size_t)(r % (7 * 1024));
  return 8192 + (size_t)(r % (56 * 1024));
}

static const char text[] =
    "content-type: application/json; accept: */*; user-agent: edgeserve-bench/1.0; "
    "__label__positive __label__negative __label__neutral x-request-id: 7f3a9c";

typedef struct result {
  uint64_t id;
  float score;
  char label[52];
} result; /* 64 B */

typedef struct request {
  uint64_t id;
  void *body;
  size_t body_len;
  result *res[MAXRES];
  int nres;
  char *strs[NSTR];
  es_arena_t *arena;
  char tag[8];
} request; /* 208 B on 64-bit targets, 120 B on 32-bit ones */

typedef struct ring { /* single producer, single consumer */
  _Atomic size_t head;
  char pad1[64];
  _Atomic size_t tail;
  char pad2[64];
  void *slot[RING];
} ring;

static int ring_push(ring *r, void *p) {
  size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  if (t - atomic_load_explicit(&r->head, memory_order_acquire) == RING) return 0;
  r->slot[t % RING] = p;
  atomic_store_explicit(&r->tail, t + 1, memory_order_release);
  return 1;
}

static void *ring_pop(ring *r) {
  size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  if (h == atomic_load_explicit(&r->tail, memory_order_acquire)) return NULL;
  void *p = r->slot[h % RING];
  atomic_store_explicit(&r->head, h + 1, memory_order_release);
  return p;
}

typedef struct shared {
  int mode, nthreads;
  long nreq;
  es_pool_t *reqs, *results;
  es_bufpool_t *bufs;
  ring rings[2];
  pthread_barrier_t done;
} shared;

typedef struct worker {
  shared *sh;
  int id;
  uint64_t seed;
  uint64_t sum;
  es_arena_t *arenas[INFLIGHT];
} worker;

static void free_result(shared *sh, result *r) {
  if (sh->mode <= MODE_NOTRIM)
    free(r);
  else
    es_pool_put(sh->results, r);
}

static request *new_request(worker *w, long i, int slot) {
  shared *sh = w->sh;
  int pools = sh->mode >= MODE_POOLS;
  request *r = pools ? es_pool_get(sh->reqs) : malloc(sizeof *r);
  r->id = (uint64_t)i;
  r->arena = pools ? w->arenas[slot] : NULL;
  size_t n = body_size(&w->seed);
  unsigned char *b = pools ? es_buf_get(sh->bufs, n, NULL) : malloc(n);
  for (size_t k = 0; k < n; k += 4096) b[k] = (unsigned char)k;
  b[n - 1] = 1;
  r->body = b;
  r->body_len = n;
  r->nres = 1 + (int)(rnd(&w->seed) % MAXRES);
  for (int j = 0; j < r->nres; j++) {
    result *x = pools ? es_pool_get(sh->results) : malloc(sizeof *x);
    x->id = r->id;
    x->score = (float)j;
    x->label[0] = (char)j;
    r->res[j] = x;
  }
  for (int j = 0; j < NSTR; j++) {
    uint64_t v = rnd(&w->seed);
    size_t len = 8 + (size_t)(v % 33), off = (size_t)((v >> 8) % (sizeof text - 41));
    r->strs[j] = pools ? es_arena_strndup(r->arena, text + off, len) : strndup(text + off, len);
  }
  return r;
}

static void release_request(worker *w, request *r) {
  shared *sh = w->sh;
  int pools = sh->mode >= MODE_POOLS;
  w->sum += ((unsigned char *)r->body)[r->body_len - 1] + (unsigned char)r->strs[NSTR - 1][0];
  int handoff = sh->nthreads == 2 && rnd(&w->seed) % 4 == 0;
  for (int j = 0; j < r->nres; j++)
    if (!handoff || !ring_push(&sh->rings[1 - w->id], r->res[j])) free_result(sh, r->res[j]);
  if (pools) {
    es_buf_put(sh->bufs, r->body);
    es_arena_reset(r->arena);
    es_pool_put(sh->reqs, r);
  } else {
    free(r->body);
    for (int j = 0; j < NSTR; j++) free(r->strs[j]);
    free(r);
  }
}

static void drain(worker *w) {
  void *p;
  while ((p = ring_pop(&w->sh->rings[w->id]))) free_result(w->sh, p);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  shared *sh = w->sh;
  request *inflight[INFLIGHT] = {0};
  for (long i = 0; i < sh->nreq; i++) {
    int slot = (int)(i % INFLIGHT);
    if (inflight[slot]) release_request(w, inflight[slot]);
    inflight[slot] = new_request(w, i, slot);
    if (sh->nthreads == 2) drain(w);
  }
  for (int k = 0; k < INFLIGHT; k++) release_request(w, inflight[k]);
  pthread_barrier_wait(&sh->done); /* nobody pushes any more */
  drain(w);
  return NULL;
}

typedef struct outcome {
  double ns_per_req;
  long rss_kib;
  uint64_t sum;
  es_pool_stats_t reqs;
  es_bufpool_stats_t bufs;
} outcome;

/* One run of the serving loop in this process. */
static void serve(int mode, int nthreads, long nreq, outcome *out) {
  shared *sh = calloc(1, sizeof *sh);
  sh->mode = mode;
  sh->nthreads = nthreads;
  sh->nreq = nreq;
  pthread_barrier_init(&sh->done, NULL, (unsigned)nthreads);
  worker w[2];
  memset(w, 0, sizeof w);
  if (mode == MODE_NOTRIM) {
#ifdef __GLIBC__
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  }
  if (mode >= MODE_POOLS) {
    es_pool_params_t rp = es_pool_default_params(sizeof(request));
    es_pool_params_t xp = es_pool_default_params(sizeof(result));
    es_bufpool_params_t bp = es_bufpool_default_params();
    if (mode == MODE_NOCACHE) rp.cache_size = xp.cache_size = bp.cache_bytes = 0;
    sh->reqs = es_pool_new(&rp, NULL);
    sh->results = es_pool_new(&xp, NULL);
    sh->bufs = es_bufpool_new(&bp, NULL);
    es_arena_params_t ap = es_arena_default_params();
    ap.first_chunk = 1024;
    for (int t = 0; t < nthreads; t++)
      for (int k = 0; k < INFLIGHT; k++) w[t].arenas[k] = es_arena_new(&ap);
  }
  pthread_t th[2];
  double t0 = now_sec();
  for (int t = 0; t < nthreads; t++) {
    w[t].sh = sh;
    w[t].id = t;
    w[t].seed = 42 + (uint64_t)t;
    pthread_create(&th[t], NULL, worker_main, &w[t]);
  }
  for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
  double sec = now_sec() - t0;
  out->ns_per_req = sec * 1e9 / ((double)nreq * nthreads);
  out->sum = w[0].sum + w[1].sum;
  if (mode >= MODE_POOLS) {
    es_pool_stats(sh->reqs, &out->reqs);
    es_bufpool_stats(sh->bufs, &out->bufs);
    es_pool_free(sh->reqs);
    es_pool_free(sh->results);
    es_bufpool_free(sh->bufs);
    for (int t = 0; t < nthreads; t++)
      for (int k = 0; k < INFLIGHT; k++) es_arena_free(w[t].arenas[k]);
  }
  pthread_barrier_destroy(&sh->done);
  free(sh);
}

/* Runs serve() in a child; mode -1 is the idle child (RSS baseline). */
static int run_child(int mode, int nthreads, long nreq, outcome *out) {
  int fd[2];
  if (pipe(fd) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(fd[0]);
    outcome o;
    memset(&o, 0, sizeof o);
    if (mode >= 0) serve(mode, nthreads, nreq, &o);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    o.rss_kib = ru.ru_maxrss;
    ssize_t wr = write(fd[1], &o, sizeof o);
    _exit(wr == (ssize_t)sizeof o ? 0 : 1);
  }
  close(fd[1]);
  ssize_t rd = read(fd[0], out, sizeof *out);
  close(fd[0]);
  int status;
  if (waitpid(pid, &status, 0) < 0 || rd != (ssize_t)sizeof *out || status != 0) return -1;
  return 0;
}

static int cmp_outcome(const void *a, const void *b) {
  double x = ((const outcome *)a)->ns_per_req, y = ((const outcome *)b)->ns_per_req;
  return (x > y) - (x < y);
}

/* ---- the parts alone ------------------------------------------------------------------------ */

static volatile uint64_t sink;

static double micro_objects(int pools, long n) {
  es_pool_params_t pp = es_pool_default_params(sizeof(request));
  es_pool_t *p = es_pool_new(&pp, NULL);
  void *o[INFLIGHT] = {0};
  double t0 = now_sec();
  for (long i = 0; i < n; i++) {
    int k = (int)(i % INFLIGHT);
    if (pools)
      es_pool_put(p, o[k]);
    else
      free(o[k]);
    o[k] = pools ? es_pool_get(p) : malloc(sizeof(request));
    *(volatile char *)o[k] = 1;
  }
  double ns = (now_sec() - t0) * 1e9 / (double)n;
  for (int k = 0; k < INFLIGHT; k++) pools ? es_pool_put(p, o[k]) : free(o[k]);
  es_pool_free(p);
  return ns;
}

static double micro_buffers(int pools, long n) {
  es_bufpool_params_t bp = es_bufpool_default_params();
  es_bufpool_t *p = es_bufpool_new(&bp, NULL);
  void *o[INFLIGHT] = {0};
  uint64_t seed = 7;
  double t0 = now_sec();
  for (long i = 0; i < n; i++) {
    int k = (int)(i % INFLIGHT);
    if (pools)
      es_buf_put(p, o[k]);
    else
      free(o[k]);
    size_t size = body_size(&seed);
    o[k] = pools ? es_buf_get(p, size, NULL) : malloc(size);
    *(volatile char *)o[k] = 1;
  }
  double ns = (now_sec() - t0) * 1e9 / (double)n;
  for (int k = 0; k < INFLIGHT; k++) pools ? es_buf_put(p, o[k]) : free(o[k]);
  es_bufpool_free(p);
  return ns;
}

static double micro_strings(int arena, long n) {
  es_arena_t *a = es_arena_new(NULL);
  char *s[NSTR];
  uint64_t seed = 9;
  double t0 = now_sec();
  for (long i = 0; i < n; i++) {
    for (int j = 0; j < NSTR; j++) {
      uint64_t v = rnd(&seed);
      size_t len = 8 + (size_t)(v % 33), off = (size_t)((v >> 8) % (sizeof text - 41));
      s[j] = arena ? es_arena_strndup(a, text + off, len) : strndup(text + off, len);
    }
    sink += (unsigned char)s[NSTR - 1][0];
    if (arena)
      es_arena_reset(a);
    else
      for (int j = 0; j < NSTR; j++) free(s[j]);
  }
  double ns = (now_sec() - t0) * 1e9 / (double)n;
  es_arena_free(a);
  return ns;
}

int main(int argc, char **argv) {
  long nreq = argc > 1 ? atol(argv[1]) : 200000;
  if (nreq < INFLIGHT) nreq = INFLIGHT;
  outcome idle;
  if (run_child(-1, 1, 0, &idle) != 0) return 1;

  printf("## Serving loop (%ld requests per thread, median of 3 runs)\n\n", nreq);
  printf("| threads | variant | ns / request | vs malloc | peak RSS above idle | pool hits "
         "(req / buf) | buf bytes high |\n");
  printf("|---|---|---|---|---|---|---|\n");
  for (int nt = 1; nt <= 2; nt++) {
    double base = 0;
    for (int mode = MODE_MALLOC; mode <= MODE_NOCACHE; mode++) {
      outcome o[3];
      for (int r = 0; r < 3; r++)
        if (run_child(mode, nt, nreq, &o[r]) != 0) return 1;
      qsort(o, 3, sizeof *o, cmp_outcome);
      outcome *m = &o[1];
      if (mode == MODE_MALLOC) base = m->ns_per_req;
      printf("| %d | %s | %.0f | %.2fx | %.1f MiB |", nt, mode_name[mode], m->ns_per_req,
             base / m->ns_per_req, (double)(m->rss_kib - idle.rss_kib) / 1024.0);
      if (mode < MODE_POOLS) {
        printf(" - | - |\n");
      } else {
        printf(" %.4f / %.4f | %.1f MiB |\n",
               (double)m->reqs.hits / (double)(m->reqs.gets ? m->reqs.gets : 1),
               (double)m->bufs.total.hits / (double)(m->bufs.total.gets ? m->bufs.total.gets : 1),
               (double)m->bufs.total.bytes_high / 1048576.0);
      }
    }
  }

  long n = 4 * nreq;
  printf("\n## The parts alone (1 thread, %ld operations, 16 live at a time)\n\n", n);
  double ma[3], pa[3], na[3];
  ma[0] = micro_objects(0, n), ma[1] = micro_buffers(0, n), ma[2] = micro_strings(0, n / 4);
  pa[0] = micro_objects(1, n), pa[1] = micro_buffers(1, n), pa[2] = micro_strings(1, n / 4);
#ifdef __GLIBC__
  mallopt(M_TRIM_THRESHOLD, 1 << 30); /* from here on: malloc-notrim */
#endif
  na[0] = micro_objects(0, n), na[1] = micro_buffers(0, n), na[2] = micro_strings(0, n / 4);
  const char *what[] = {"200 B object put + get", "body buffer (64 B-64 KiB) put + get",
                        "12 strings (8-40 B) + release"};
  printf("| operation | malloc ns | malloc-notrim ns | pool/arena ns | vs malloc | vs notrim |\n");
  printf("|---|---|---|---|---|---|\n");
  for (int i = 0; i < 3; i++)
    printf("| %s | %.1f | %.1f | %.1f | %.2fx | %.2fx |\n", what[i], ma[i], na[i], pa[i],
           ma[i] / pa[i], na[i] / pa[i]);
  return 0;
}
