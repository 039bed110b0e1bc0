/*
 * bench_budget.c - what the memory budget's calls cost, next to the floor
 * of any thread-safe call (an uncontended mutex lock + unlock).
 *
 * Build and run (about 3 s; x86-64, from the repository root):
 *   E=src/engine; gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Iinclude -I$E -DES_HAVE_AVX2 \
 *     bench/runtime/bench_budget.c src/runtime/budget.c src/runtime/estimate.c \
 *     $E/reader.c $E/kernels.c $E/model.c $E/predict.c src/text/normalize.c \
 *     src/common/error.c /tmp/kernels_avx2.o -lpthread -lm -o /tmp/bench_budget
 *   (after: gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -mavx2 -Iinclude -I$E \
 *     -DES_HAVE_AVX2 -c $E/kernels_avx2.c -o /tmp/kernels_avx2.o), then /tmp/bench_budget
 * Prints a markdown table: ns per call and the ratio to the mutex pair.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../../src/common/clock.h"
#include "edgeserve/budget.h"
#include "edgeserve/estimate.h"

#define MiB     (1024ull * 1024ull)
#define RUN_SEC 0.25

static es_budget_t *budget;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static volatile uint64_t sink;

typedef void (*op_fn)(uint64_t i);

static void op_mutex(uint64_t i) {
  pthread_mutex_lock(&mu);
  sink += i;
  pthread_mutex_unlock(&mu);
}

static void op_reserve_release(uint64_t i) {
  es_budget_res_t r = {0};
  if (es_budget_reserve(budget, ES_BUDGET_WORK, (i & 1023) * 4096 + 1, "req", &r, NULL) == 0)
    es_budget_release(budget, &r);
}

static void op_refused(uint64_t i) {
  es_budget_res_t r = {0};
  es_budget_refusal_t why;
  sink += (uint64_t)es_budget_reserve(budget, ES_BUDGET_MODEL, 900 * MiB + i, "big.bin", &r, &why);
}

static es_budget_res_t cache_res;
static void op_resize(uint64_t i) {
  es_budget_resize(budget, &cache_res, (i & 1) ? 8 * MiB : 4 * MiB, "lru", NULL);
}

static void op_check(uint64_t i) {
  sink += (uint64_t)es_budget_check(budget, ES_BUDGET_WORK, (i & 1023) * 4096, "req", NULL);
}

static void op_available(uint64_t i) {
  (void)i;
  sink += es_budget_available(budget, ES_BUDGET_CACHE);
}

static void op_observe(uint64_t i) {
  es_memstat_t s;
  memset(&s, 0, sizeof s);
  s.rss_anon = 100 * MiB + (i & 255) * 4096;
  s.rss_file = 20 * MiB;
  s.available = 600 * MiB;
  s.effective_total = 1024 * MiB;
  es_budget_observe(budget, &s);
}

static void op_estimate(uint64_t i) {
  es_model_info_t info;
  memset(&info, 0, sizeof info);
  info.nlabels = 200 + (int32_t)(i & 7);
  info.file_bytes = 25 * MiB;
  info.private_bytes = MiB;
  info.scratch_bytes = 20000;
  info.input_rows = 100000;
  info.input_cols = 50;
  es_model_estimate_t e;
  es_estimate_model_info(&info, 2, 20, &e);
  sink += e.total_bytes;
}

typedef struct {
  op_fn fn;
  uint64_t n;
  double sec;
} job_t;

static void *run_job(void *arg) {
  job_t *j = arg;
  double t0 = es__mono_sec();
  uint64_t n = 0;
  while (es__mono_sec() - t0 < RUN_SEC)
    for (int k = 0; k < 256; k++) j->fn(n++);
  j->n = n;
  j->sec = es__mono_sec() - t0;
  return NULL;
}

/* ns per call with `threads` threads calling at once (wall time / calls). */
static double measure(op_fn fn, int threads) {
  job_t jobs[2];
  pthread_t th[2];
  for (int t = 0; t < threads; t++) {
    jobs[t].fn = fn;
    pthread_create(&th[t], NULL, run_job, &jobs[t]);
  }
  uint64_t n = 0;
  double sec = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(th[t], NULL);
    n += jobs[t].n;
    if (jobs[t].sec > sec) sec = jobs[t].sec;
  }
  return sec * 1e9 / (double)n;
}

int main(void) {
  es_budget_params_t p = es_budget_default_params();
  p.tier = es_budget_tier_for(1024 * MiB);
  budget = es_budget_new(&p, NULL);
  es_budget_reserve(budget, ES_BUDGET_CACHE, 4 * MiB, "lru", &cache_res, NULL);

  static const struct {
    const char *name;
    op_fn fn;
    int threads;
  } rows[] = {
      {"mutex lock + unlock (floor)", op_mutex, 1},
      {"reserve + release", op_reserve_release, 1},
      {"reserve refused (reason formatted)", op_refused, 1},
      {"resize (grow / shrink)", op_resize, 1},
      {"check (dry run)", op_check, 1},
      {"available", op_available, 1},
      {"observe (no level change)", op_observe, 1},
      {"estimate_model_info (no lock)", op_estimate, 1},
      {"mutex lock + unlock, 2 threads", op_mutex, 2},
      {"reserve + release, 2 threads", op_reserve_release, 2},
  };
  double floor1 = 0;
  printf("| call | threads | ns / call | x mutex pair |\n|---|---:|---:|---:|\n");
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    double ns = measure(rows[i].fn, rows[i].threads);
    if (i == 0) floor1 = ns;
    printf("| %s | %d | %.1f | %.1f |\n", rows[i].name, rows[i].threads, ns, ns / floor1);
  }
  es_budget_release(budget, &cache_res);
  es_budget_free(budget);
  return (int)(sink & 0);
}
