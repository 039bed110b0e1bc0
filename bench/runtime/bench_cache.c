/*
 * bench_cache.c - the in-process response cache: W-TinyLFU against plain LRU
 * on skewed traces (hit rate), and what a get and a put cost (ns per call,
 * 1 and 2 threads).
 *
 * Keys are what the server builds (es_cache_key): model "media", version 1,
 * 8 bytes of parameters, an input text of 16..112 bytes; values are 64..512
 * bytes (a serialized top-k result). Sizes are fixed per key, so the charge
 * of every key is known and the cache is given 1% of the bytes of all the
 * keys' entries.
 *
 * Traces (deterministic: splitmix64 and a fixed seed):
 *   zipf-S    2M requests over 1M distinct keys, rank r drawn with
 *             probability ~ 1/r^S (S = 0.8, 1.0, 1.2); ranks are mapped to
 *             keys through a fixed permutation. Each request is a get and, on
 *             a miss, a put of the key's value (what the server does).
 *   scan      zipf-1.0 interleaved with bursts of one-time keys: after every
 *             50k requests, 25k keys never seen before and never seen again
 *             (a batch job, a crawler); the hit rate is over the zipf
 *             requests only (the scan cannot hit).
 *   lru-100   the media organizer's cache before edgeserve: 100 entries'
 *             bytes, on zipf-0.8, 500k requests (its users reported ~23% on
 *             their own traffic; this synthetic tail is far longer).
 * Both policies run the same code (admission on / off) with the same shards
 * and seed.
 *
 * Cost: 64k keys and requests/2 calls on a zipf-1.0 trace of them: get (all
 * hits, the keys filled in first), put (overwrites), and the serving mix
 * (get, put on a miss) in a cache of 16% of the keys' bytes; by 1 thread and
 * by 2 threads at once, and by 2 threads on a cache each (the control: what
 * the machine gives 2 threads). Each figure: CPU ns per call (the threads'
 * CPU time, immune to other processes on a shared machine; a 2-thread rise
 * is contention) and wall ns per call (wall / all calls), of the run with
 * the median CPU time of 3.
 *
 * Build: gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -DNDEBUG -Iinclude -Isrc \
 *          src/common/error.c src/cache/cache.c src/cache/memory.c \
 *          bench/runtime/bench_cache.c -lpthread -lm -o /tmp/bench_cache
 * Run:   /tmp/bench_cache [requests, default 2000000] [hit | cost: one table only]
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgeserve/cache.h"

#define NKEYS 1000000u
#define MAXK  160
#define MAXV  512

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The sizes of key `id`: an input of 16..112 bytes, a value of 64..512. */
static size_t input_len(uint64_t id) { return 16 + (id * 2654435761u >> 7) % 97; }
static size_t value_len(uint64_t id) { return 64 + (id * 40503u >> 3) % 449; }

/* Writes key `id` into k (MAXK bytes); returns its length. */
static size_t make_key(char *k, uint64_t id) {
  char in[128];
  size_t n = input_len(id);
  static const char hex[] = "0123456789abcdef";
  memcpy(in, "request ", 8);
  for (int i = 0; i < 8; i++) in[8 + i] = hex[(id >> (4 * i)) & 15];
  for (size_t i = 16; i < n; i++) in[i] = (char)('a' + (id + i) % 26);
  const char params[8] = {3, 0, 0, 0, 0, 0, 0, 0}; /* k = 3, threshold 0 */
  return es_cache_key(k, MAXK, "media", 1, params, sizeof params, in, n);
}

static void make_value(char *v, uint64_t id) { memset(v, (int)('A' + id % 26), value_len(id)); }

/* ---- Zipf over NKEYS ranks: inverse CDF by binary search ---- */

typedef struct zipf {
  double *cdf;
  uint32_t n;
} zipf;

static void zipf_init(zipf *z, uint32_t n, double s) {
  z->n = n;
  z->cdf = malloc(n * sizeof *z->cdf);
  double sum = 0;
  for (uint32_t i = 0; i < n; i++) z->cdf[i] = (sum += 1.0 / pow(i + 1.0, s));
  for (uint32_t i = 0; i < n; i++) z->cdf[i] /= sum;
}

static uint32_t zipf_rank(const zipf *z, uint64_t *rng) {
  double u = (double)(splitmix(rng) >> 11) * 0x1p-53;
  uint32_t lo = 0, hi = z->n - 1;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (z->cdf[mid] < u)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* A fixed permutation of ranks to key ids (an odd multiplier mod 2^20 on the
 * low bits would do; this keeps ids < NKEYS: multiply mod a prime above). */
static uint64_t rank_to_id(uint32_t r) { return ((uint64_t)r * 7919u + 12345u) % NKEYS; }

static es_cache_t *new_cache(uint64_t max_bytes, int admission, unsigned shards) {
  es_cache_memory_params_t p = es_cache_memory_default_params();
  p.max_bytes = max_bytes;
  p.admission = admission;
  p.shards = shards;
  p.seed = 42;
  es_error_t err;
  es_cache_t *c = es_cache_memory_new(&p, &err);
  if (!c) {
    fprintf(stderr, "bench_cache: %s\n", err.msg);
    exit(1);
  }
  return c;
}

/* One request: get, and put on a miss. Returns 1 on a hit. */
static int serve(es_cache_t *c, uint64_t id) {
  char k[MAXK], v[MAXV];
  size_t kl = make_key(k, id), vl;
  if (es_cache_get(c, k, kl, 0, v, sizeof v, &vl) == 0) return 1;
  make_value(v, id);
  es_cache_put(c, k, kl, v, value_len(id), 0);
  return 0;
}

typedef struct run {
  double hit, zipf_hit;
  es_cache_stats_t st;
} run;

/* scan_every 0: a plain zipf trace. Otherwise bursts of scan_len one-time ids
 * (above NKEYS) after every scan_every zipf requests. */
static run trace(const zipf *z, uint64_t requests, uint64_t max_bytes, int admission,
                 unsigned scan_every, unsigned scan_len) {
  es_cache_t *c = new_cache(max_bytes, admission, 0);
  uint64_t rng = 7, hits = 0, zhits = 0, zreq = 0, one_time = NKEYS, done = 0;
  while (done < requests) {
    uint64_t id = rank_to_id(zipf_rank(z, &rng));
    int h = serve(c, id);
    hits += (uint64_t)h;
    zhits += (uint64_t)h;
    zreq++;
    done++;
    if (scan_every && zreq % scan_every == 0)
      for (unsigned i = 0; i < scan_len && done < requests; i++, done++)
        hits += (uint64_t)serve(c, one_time++);
  }
  run r = {.hit = (double)hits / (double)done, .zipf_hit = (double)zhits / (double)zreq};
  es_cache_stats(c, &r.st);
  es_cache_free(c);
  return r;
}

/* ---- cost ---- */

#define HOT 65536u

typedef struct job {
  es_cache_t *c;
  const zipf *z;
  int what; /* 0 get, 1 put, 2 serve */
  uint64_t calls, seed, hits;
  double sec, cpu; /* wall and this thread's CPU time */
} job;

static double cpu_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *job_main(void *arg) {
  job *j = arg;
  uint64_t rng = j->seed;
  char k[MAXK], v[MAXV];
  /* the trace first, so the timing holds only cache calls and key copies */
  uint32_t *ids = malloc(j->calls * sizeof *ids);
  for (uint64_t i = 0; i < j->calls; i++) {
    ids[i] = zipf_rank(j->z, &rng); /* ranks of the HOT keys: ids 0..HOT-1 */
  }
  memset(v, 'v', sizeof v);
  double t0 = now_sec(), c0 = cpu_sec();
  for (uint64_t i = 0; i < j->calls; i++) {
    size_t kl = make_key(k, ids[i]), vl;
    if (j->what == 0)
      j->hits += es_cache_get(j->c, k, kl, 0, v, sizeof v, &vl) == 0;
    else if (j->what == 1)
      es_cache_put(j->c, k, kl, v, value_len(ids[i]), 0);
    else if (es_cache_get(j->c, k, kl, 0, v, sizeof v, &vl) == 0)
      j->hits++;
    else
      es_cache_put(j->c, k, kl, v, value_len(ids[i]), 0);
  }
  j->sec = now_sec() - t0;
  j->cpu = cpu_sec() - c0;
  free(ids);
  return NULL;
}

/* A cache of the HOT keys: twice their bytes for get / put (all fit, filled
 * in), 16% of them for serve (empty). */
static es_cache_t *cost_cache(int admission, int what) {
  uint64_t bytes = 0;
  char k[MAXK], v[MAXV];
  for (uint32_t i = 0; i < HOT; i++) bytes += es_cache_memory_charge(make_key(k, i), value_len(i));
  es_cache_t *c = new_cache(what == 2 ? bytes * 16 / 100 : bytes * 2, admission, 0);
  memset(v, 'v', sizeof v);
  for (uint32_t i = 0; i < HOT && what != 2; i++)
    es_cache_put(c, k, make_key(k, i), v, value_len(i), 0);
  return c;
}

typedef struct cost_t {
  double wall, cpu; /* ns per call: wall time / all calls; CPU time of all threads / all calls */
} cost_t;

/* `own`: each thread on a cache of its own (the control: no sharing).
 * *hit_rate set when not NULL. */
static cost_t cost(const zipf *z, int admission, int what, unsigned threads, int own,
                   uint64_t calls, double *hit_rate) {
  es_cache_t *c[2] = {cost_cache(admission, what), NULL};
  if (own && threads == 2) c[1] = cost_cache(admission, what);
  job j[2];
  pthread_t t[2];
  for (unsigned i = 0; i < threads; i++) {
    j[i] = (job){
        .c = c[c[1] ? i : 0], .z = z, .what = what, .calls = calls / threads, .seed = 100 + i};
    pthread_create(&t[i], NULL, job_main, &j[i]);
  }
  double sec = 0, cpu = 0;
  uint64_t hits = 0;
  for (unsigned i = 0; i < threads; i++) {
    pthread_join(t[i], NULL);
    if (j[i].sec > sec) sec = j[i].sec;
    cpu += j[i].cpu;
    hits += j[i].hits;
  }
  es_cache_free(c[0]);
  es_cache_free(c[1]);
  double n = (double)(calls / threads * threads);
  if (hit_rate) *hit_rate = (double)hits / n;
  return (cost_t){.wall = sec * 1e9 / n, .cpu = cpu * 1e9 / n};
}

/* ns to build a key alone (part of every figure above). */
static double key_cost(uint64_t calls) {
  char k[MAXK];
  volatile size_t sink = 0;
  double t0 = now_sec();
  for (uint64_t i = 0; i < calls; i++) sink += make_key(k, i % HOT);
  (void)sink;
  return (now_sec() - t0) * 1e9 / (double)calls;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void hit_table(uint64_t requests) {
  uint64_t all = 0;
  size_t kmean = 0;
  for (uint32_t i = 0; i < NKEYS; i++) {
    char k[MAXK];
    size_t kl = make_key(k, i);
    kmean += kl;
    all += es_cache_memory_charge(kl, value_len(i));
  }
  uint64_t max_bytes = all / 100;
  printf("## Hit rate: W-TinyLFU vs LRU\n\n");
  printf("%u distinct keys (key %zu B mean, value 64..512 B), %llu requests per trace; cache = "
         "1%% of all entries' bytes = %.1f MiB (%.0f B charged per entry on average: ~%.0f "
         "entries); default shards.\n\n",
         NKEYS, kmean / NKEYS, (unsigned long long)requests, (double)max_bytes / 1048576.0,
         (double)all / NKEYS, (double)max_bytes / ((double)all / NKEYS));
  printf("| trace | LRU hit rate | W-TinyLFU hit rate | ratio | W-TinyLFU admitted / rejected |\n");
  printf("|---|---:|---:|---:|---:|\n");
  double s_values[] = {0.8, 1.0, 1.2};
  for (int i = 0; i < 3; i++) {
    zipf z;
    zipf_init(&z, NKEYS, s_values[i]);
    run lru = trace(&z, requests, max_bytes, 0, 0, 0);
    run tl = trace(&z, requests, max_bytes, 1, 0, 0);
    printf("| zipf-%.1f | %.1f%% | %.1f%% | %.2fx | %llu / %llu |\n", s_values[i], 100 * lru.hit,
           100 * tl.hit, tl.hit / lru.hit, (unsigned long long)tl.st.admitted,
           (unsigned long long)tl.st.rejected);
    fflush(stdout);
    if (s_values[i] == 1.0) {
      lru = trace(&z, requests, max_bytes, 0, 50000, 25000);
      tl = trace(&z, requests, max_bytes, 1, 50000, 25000);
      printf("| scan: zipf-1.0 + bursts of one-time keys (1/3 of requests); zipf part | %.1f%% | "
             "%.1f%% | %.2fx | %llu / %llu |\n",
             100 * lru.zipf_hit, 100 * tl.zipf_hit, tl.zipf_hit / lru.zipf_hit,
             (unsigned long long)tl.st.admitted, (unsigned long long)tl.st.rejected);
    }
    if (s_values[i] == 0.8) {
      uint64_t small = (uint64_t)((double)all / NKEYS * 100);
      if (small < 4096) small = 4096;
      run a = trace(&z, requests / 4, small, 0, 0, 0);
      run b = trace(&z, requests / 4, small, 1, 0, 0);
      printf("| lru-100: zipf-0.8, 100 entries' bytes (%llu B, 1 shard), %llu requests | %.1f%% | "
             "%.1f%% | %.2fx | %llu / %llu |\n",
             (unsigned long long)small, (unsigned long long)requests / 4, 100 * a.hit, 100 * b.hit,
             b.hit / a.hit, (unsigned long long)b.st.admitted, (unsigned long long)b.st.rejected);
    }
    fflush(stdout);
    free(z.cdf);
  }
}

static int cmp_cost(const void *a, const void *b) {
  return cmp_double(&((const cost_t *)a)->cpu, &((const cost_t *)b)->cpu);
}

/* The run of median CPU time among 3. */
static cost_t median3(const zipf *z, int admission, int what, unsigned threads, int own,
                      uint64_t calls, double *hit_rate) {
  cost_t rep[3];
  for (int r = 0; r < 3; r++) rep[r] = cost(z, admission, what, threads, own, calls, hit_rate);
  qsort(rep, 3, sizeof rep[0], cmp_cost);
  return rep[1];
}

static void cost_table(uint64_t calls) {
  zipf zh;
  zipf_init(&zh, HOT, 1.0);
  printf("\n## Cost per call\n\n");
  printf("%u keys; %llu calls on a zipf-1.0 trace of them; the run of median CPU time of 3. "
         "Each cell: CPU ns per call (all threads' CPU time / all calls: what a call costs, "
         "immune to other processes taking the CPUs; with 2 threads, a rise over 1 thread is "
         "contention) / wall ns per call (wall time / all calls: perfect 2-thread scaling halves "
         "it). \"own caches\": each thread on a cache of its own, the control for what the "
         "machine gives 2 threads. Building the key: %.0f ns of every call.\n\n",
         HOT, (unsigned long long)calls, key_cost(calls));
  printf("| call | LRU 1 thread | LRU 2 threads | W-TinyLFU 1 thread | W-TinyLFU 2 threads | "
         "W-TinyLFU 2 threads, own caches |\n");
  printf("|---|---:|---:|---:|---:|---:|\n");
  const char *names[] = {"get (hit)", "put (overwrite)", "serve: get + put on a miss"};
  double hr[4] = {0};
  for (int what = 0; what < 3; what++) {
    cost_t ns[5];
    for (int a = 0; a < 2; a++)
      for (unsigned th = 1; th <= 2; th++)
        ns[a * 2 + th - 1] = median3(&zh, a, what, th, 0, calls, &hr[a * 2 + th - 1]);
    ns[4] = median3(&zh, 1, what, 2, 1, calls, NULL);
    printf("| %s |", names[what]);
    for (int i = 0; i < 5; i++) printf(" %.0f / %.0f |", ns[i].cpu, ns[i].wall);
    printf("\n");
    fflush(stdout);
  }
  printf("| (serve: hit rate, cache = 16%% of the keys' bytes) | %.1f%% | %.1f%% | %.1f%% | %.1f%% "
         "| |\n",
         100 * hr[0], 100 * hr[1], 100 * hr[2], 100 * hr[3]);
  free(zh.cdf);
}

int main(int argc, char **argv) {
  uint64_t requests = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
  const char *only = argc > 2 ? argv[2] : "";
  double t0 = now_sec();
  if (strcmp(only, "cost") != 0) hit_table(requests);
  if (strcmp(only, "hit") != 0) cost_table(requests / 2);
  printf("\ntotal %.1f s\n", now_sec() - t0);
  return 0;
}
