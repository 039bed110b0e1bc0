/* test_sched.c - the work-stealing priority scheduler: every task runs or is
 * cancelled exactly once, priorities and aging decide the order, shutdown
 * drains or cancels, statistics count, pinning failures do not stop it.
 *
 * Assertions are on orders and counts, never on how long something took;
 * a "gate" task holds a worker so that the queue contents are known. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <cmocka.h>

#include "edgeserve/sched.h"

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static void spin_us(long us) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  do clock_gettime(CLOCK_MONOTONIC, &b);
  while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

/* ---- a gate: a task that holds its worker until opened --------------------- */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int open;
  atomic_int entered;
} gate_t;

static void gate_init(gate_t *g) {
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->open = 0;
  atomic_init(&g->entered, 0);
}

static void gate_task(void *arg) {
  gate_t *g = arg;
  atomic_fetch_add(&g->entered, 1);
  pthread_mutex_lock(&g->mu);
  while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static void gate_open(gate_t *g) {
  pthread_mutex_lock(&g->mu);
  g->open = 1;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static void gate_wait_entered(gate_t *g, int n) {
  while (atomic_load(&g->entered) < n) sleep_us(100);
}

static void gate_destroy(gate_t *g) {
  pthread_mutex_destroy(&g->mu);
  pthread_cond_destroy(&g->cv);
}

/* A one-worker scheduler held by a gate: what is submitted next waits. */
static es_sched_t *held_sched(gate_t *g, es_sched_params_t *p) {
  es_sched_params_t d = es_sched_default_params();
  if (!p) p = &d;
  p->nworkers = 1;
  es_sched_t *s = es_sched_new(p, NULL);
  assert_non_null(s);
  gate_init(g);
  assert_int_equal(es_sched_submit(s, gate_task, g, ES_SCHED_CRITICAL, NULL), 0);
  gate_wait_entered(g, 1);
  return s;
}

/* ---- recording the order tasks run in ------------------------------------ */

typedef struct {
  atomic_int n;
  int order[4096];
} log_t;

typedef struct {
  log_t *log;
  int id;
} item_t;

static void log_task(void *arg) {
  item_t *it = arg;
  int i = atomic_fetch_add(&it->log->n, 1);
  if (i < 4096) it->log->order[i] = it->id;
}

static void count_task(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

/* ---- parameters ----------------------------------------------------------- */

static void default_params_have_the_documented_values(void **state) {
  (void)state;
  es_sched_params_t p = es_sched_default_params();
  assert_int_equal(p.nworkers, 0);
  assert_int_equal(es_cpuset_count(&p.cpus), 0);
  assert_int_equal(p.aging_us[ES_SCHED_HIGH], 5000);
  assert_int_equal(p.aging_us[ES_SCHED_NORMAL], 20000);
  assert_int_equal(p.aging_us[ES_SCHED_LOW], 50000);
  for (int i = 0; i < ES_SCHED_NPRIO; i++) assert_int_equal(p.max_queued[i], 0);
  assert_int_equal(p.spin_us, 50);
  assert_null(p.log);
}

static void invalid_params_are_refused(void **state) {
  (void)state;
  es_sched_params_t p = es_sched_default_params();
  es_error_t err = {0};
  p.nworkers = -1;
  assert_null(es_sched_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  p.nworkers = 257;
  assert_null(es_sched_new(&p, &err));
  p = es_sched_default_params();
  p.aging_us[ES_SCHED_LOW] = -5;
  err.code = 0;
  assert_null(es_sched_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  p = es_sched_default_params();
  p.max_queued[ES_SCHED_HIGH] = -1;
  assert_null(es_sched_new(&p, NULL));
  p = es_sched_default_params();
  p.spin_us = -1;
  assert_null(es_sched_new(&p, NULL));
}

static void zero_workers_means_one_per_allowed_cpu(void **state) {
  (void)state;
  es_cpuset_t allowed;
  assert_int_equal(es_affinity_get(&allowed, NULL), 0);
  es_sched_t *s = es_sched_new(NULL, NULL);
  assert_non_null(s);
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  assert_int_equal(st.nworkers, es_cpuset_count(&allowed));
  assert_string_equal(st.affinity_note, "not pinned (no cpus requested)");
  es_sched_free(s);
}

/* ---- running ---------------------------------------------------------------- */

typedef struct {
  atomic_int *runs;
  int i;
} once_t;

static void once_task(void *arg) {
  once_t *o = arg;
  atomic_fetch_add(&o->runs[o->i], 1);
}

static void every_task_runs_exactly_once(void **state) {
  (void)state;
  enum { N = 20000 };
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 3;
  es_sched_t *s = es_sched_new(&p, NULL);
  assert_non_null(s);
  atomic_int *runs = calloc(N, sizeof *runs);
  once_t *args = calloc(N, sizeof *args);
  for (int i = 0; i < N; i++) {
    args[i] = (once_t){runs, i};
    assert_int_equal(es_sched_submit(s, once_task, &args[i], i % ES_SCHED_NPRIO, NULL), 0);
  }
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  for (int i = 0; i < N; i++) assert_int_equal(atomic_load(&runs[i]), 1);
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  assert_int_equal(st.executed, N);
  assert_int_equal(st.latency_all.count, N);
  for (int q = 0; q < ES_SCHED_NPRIO; q++) {
    assert_int_equal(st.latency[q].count, N / ES_SCHED_NPRIO);
    assert_int_equal(st.queued[q], 0);
  }
  es_sched_free(s);
  free(runs);
  free(args);
}

typedef struct {
  atomic_int ran, done_calls, done_status, done_after_run, done_worker;
  es_sched_t *s;
} track_t;

static void track_task(void *arg) {
  track_t *t = arg;
  atomic_fetch_add(&t->ran, 1);
}

static void track_done(void *arg, int status) {
  track_t *t = arg;
  atomic_store(&t->done_status, status);
  atomic_store(&t->done_after_run, atomic_load(&t->ran));
  atomic_store(&t->done_worker, es_sched_worker(t->s));
  atomic_fetch_add(&t->done_calls, 1);
}

static void done_callback_runs_on_a_worker_after_the_task(void **state) {
  (void)state;
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 2;
  es_sched_t *s = es_sched_new(&p, NULL);
  track_t t = {.s = s};
  atomic_store(&t.done_worker, -2);
  atomic_store(&t.done_status, 99);
  es_task_t *h;
  es_task_opts_t o = {.done = track_done, .handle = &h};
  assert_int_equal(es_sched_submit(s, track_task, &t, ES_SCHED_NORMAL, &o), 0);
  assert_non_null(h);
  assert_int_equal(es_task_wait(h, -1), 0);
  /* wait returns only after the callback returned */
  assert_int_equal(atomic_load(&t.done_calls), 1);
  assert_int_equal(atomic_load(&t.done_status), 0);
  assert_int_equal(atomic_load(&t.done_after_run), 1);
  assert_true(atomic_load(&t.done_worker) >= 0 && atomic_load(&t.done_worker) < 2);
  assert_int_equal(es_task_wait(h, 0), 0); /* and stays done */
  es_task_release(h);
  es_sched_free(s);
}

static void wait_times_out_while_the_task_is_held(void **state) {
  (void)state;
  gate_t g;
  es_sched_t *s = held_sched(&g, NULL);
  atomic_int n = 0;
  es_task_t *h;
  es_task_opts_t o = {.handle = &h};
  assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_CRITICAL, &o), 0);
  assert_int_equal(es_task_wait(h, 0), ES_ETIMEDOUT);
  assert_int_equal(es_task_wait(h, 20), ES_ETIMEDOUT);
  assert_int_equal(atomic_load(&n), 0);
  gate_open(&g);
  assert_int_equal(es_task_wait(h, 10000), 0);
  assert_int_equal(atomic_load(&n), 1);
  es_task_release(h);
  es_sched_free(s);
  gate_destroy(&g);
}

static void worker_index_is_known_only_inside_tasks(void **state) {
  (void)state;
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 2;
  es_sched_t *s = es_sched_new(&p, NULL);
  es_sched_t *other = es_sched_new(&p, NULL);
  track_t t = {.s = other}; /* asks about the other scheduler: -1 */
  atomic_store(&t.done_worker, -2);
  es_task_t *h;
  es_task_opts_t o = {.done = track_done, .handle = &h};
  assert_int_equal(es_sched_worker(s), -1);
  assert_int_equal(es_sched_submit(s, track_task, &t, ES_SCHED_NORMAL, &o), 0);
  assert_int_equal(es_task_wait(h, -1), 0);
  assert_int_equal(atomic_load(&t.done_worker), -1);
  es_task_release(h);
  es_sched_free(s);
  es_sched_free(other);
}

/* ---- priorities and aging ------------------------------------------------- */

static void most_urgent_priority_runs_first_fifo_within_one(void **state) {
  (void)state;
  gate_t g;
  es_sched_params_t p = es_sched_default_params();
  for (int i = 0; i < ES_SCHED_NPRIO; i++) p.aging_us[i] = 0; /* no aging here */
  es_sched_t *s = held_sched(&g, &p);
  static log_t log;
  atomic_init(&log.n, 0);
  item_t items[40];
  /* interleave priorities: low, normal, high, critical, low, ... */
  for (int i = 0; i < 40; i++) {
    int prio = ES_SCHED_LOW - i % 4;
    items[i] = (item_t){&log, i};
    assert_int_equal(es_sched_submit(s, log_task, &items[i], prio, NULL), 0);
  }
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  for (int q = 0; q < ES_SCHED_NPRIO; q++) assert_int_equal(st.queued[q], 10);
  gate_open(&g);
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  assert_int_equal(atomic_load(&log.n), 40);
  /* critical (ids 3,7,..), then high (2,6,..), normal (1,5,..), low (0,4,..) */
  int k = 0;
  for (int rem = 3; rem >= 0; rem--)
    for (int i = rem; i < 40; i += 4) assert_int_equal(log.order[k++], i);
  es_sched_free(s);
  gate_destroy(&g);
}

static void an_overdue_low_task_goes_before_critical_work(void **state) {
  (void)state;
  gate_t g;
  es_sched_params_t p = es_sched_default_params();
  p.aging_us[ES_SCHED_LOW] = 2000;
  es_sched_t *s = held_sched(&g, &p);
  static log_t log;
  atomic_init(&log.n, 0);
  item_t low = {&log, 100}, crit[10];
  assert_int_equal(es_sched_submit(s, log_task, &low, ES_SCHED_LOW, NULL), 0);
  for (int i = 0; i < 10; i++) {
    crit[i] = (item_t){&log, i};
    assert_int_equal(es_sched_submit(s, log_task, &crit[i], ES_SCHED_CRITICAL, NULL), 0);
  }
  sleep_us(10000); /* at least 5x the low task's aging bound */
  gate_open(&g);
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  assert_int_equal(atomic_load(&log.n), 11);
  assert_int_equal(log.order[0], 100); /* the overdue low task first */
  for (int i = 0; i < 10; i++) assert_int_equal(log.order[1 + i], i);
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  assert_int_equal(st.aged, 1);
  es_sched_free(s);
  gate_destroy(&g);
}

/* Low never starves: a critical chain keeps the critical queue non-empty
 * forever (each critical task submits its successor before it returns) and
 * another thread floods high tasks. The low task still runs, while critical
 * work is queued, and no high task submitted after it runs before it. */
typedef struct {
  es_sched_t *s;
  atomic_int stop;
  atomic_int chain_errors;
  atomic_long crit_runs;
  atomic_int highs_submitted, highs_started;
  pthread_mutex_t submit_mu; /* orders the flooder's submissions and the low one */
  /* seen by the low task when it runs */
  atomic_int low_ran, low_highs_started;
  atomic_long low_crit_queued, low_crit_runs;
} flood_t;

static void crit_chain(void *arg) {
  flood_t *f = arg;
  atomic_fetch_add(&f->crit_runs, 1);
  if (!atomic_load(&f->stop) && es_sched_submit(f->s, crit_chain, f, ES_SCHED_CRITICAL, NULL))
    atomic_fetch_add(&f->chain_errors, 1);
}

static void high_task(void *arg) {
  flood_t *f = arg;
  atomic_fetch_add(&f->highs_started, 1);
}

static void low_task(void *arg) {
  flood_t *f = arg;
  es_sched_stats_t st;
  es_sched_stats(f->s, &st);
  atomic_store(&f->low_crit_queued, st.queued[ES_SCHED_CRITICAL]);
  atomic_store(&f->low_crit_runs, atomic_load(&f->crit_runs));
  atomic_store(&f->low_highs_started, atomic_load(&f->highs_started));
  atomic_store(&f->low_ran, 1);
}

static void *high_flooder(void *arg) {
  flood_t *f = arg;
  while (!atomic_load(&f->stop)) {
    pthread_mutex_lock(&f->submit_mu);
    atomic_fetch_add(&f->highs_submitted, 1); /* counted before its submit time */
    int rc = es_sched_submit(f->s, high_task, f, ES_SCHED_HIGH, NULL);
    if (rc) atomic_fetch_sub(&f->highs_submitted, 1);
    pthread_mutex_unlock(&f->submit_mu);
    sleep_us(rc == ES_EFULL ? 1000 : 50);
  }
  return NULL;
}

static void low_work_never_starves_under_an_endless_critical_flood(void **state) {
  (void)state;
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 1;
  p.aging_us[ES_SCHED_HIGH] = 2000; /* same bound: "oldest overdue first" */
  p.aging_us[ES_SCHED_LOW] = 2000;  /* decides between high and low alone */
  p.max_queued[ES_SCHED_HIGH] = 200;
  static flood_t f;
  memset(&f, 0, sizeof f);
  f.s = es_sched_new(&p, NULL);
  assert_non_null(f.s);
  pthread_mutex_init(&f.submit_mu, NULL);
  assert_int_equal(es_sched_submit(f.s, crit_chain, &f, ES_SCHED_CRITICAL, NULL), 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, high_flooder, &f), 0);
  while (atomic_load(&f.crit_runs) < 1000) sleep_us(100); /* the flood is on */

  es_task_t *h;
  es_task_opts_t o = {.handle = &h};
  pthread_mutex_lock(&f.submit_mu);
  assert_int_equal(es_sched_submit(f.s, low_task, &f, ES_SCHED_LOW, &o), 0);
  int highs_before_low = atomic_load(&f.highs_submitted);
  pthread_mutex_unlock(&f.submit_mu);

  int rc = es_task_wait(h, 20000);
  atomic_store(&f.stop, 1);
  pthread_join(th, NULL);
  assert_int_equal(rc, 0);
  es_task_release(h);
  assert_int_equal(es_sched_shutdown(f.s, ES_SCHED_DRAIN), 0);

  assert_int_equal(atomic_load(&f.low_ran), 1);
  assert_int_equal(atomic_load(&f.chain_errors), 0);
  /* it ran while critical work was queued: only aging can have started it */
  assert_true(atomic_load(&f.low_crit_queued) >= 1);
  assert_true(atomic_load(&f.low_crit_runs) >= 1000);
  /* oldest overdue first: no high task younger than it went before it */
  assert_true(atomic_load(&f.low_highs_started) <= highs_before_low);
  es_sched_stats_t st;
  es_sched_stats(f.s, &st);
  assert_true(st.aged >= 1);
  /* and every high task of the flood ran too (drain) */
  assert_int_equal(atomic_load(&f.highs_started), atomic_load(&f.highs_submitted));
  es_sched_free(f.s);
  pthread_mutex_destroy(&f.submit_mu);
}

/* ---- work from inside tasks ---------------------------------------------- */

typedef struct {
  es_sched_t *s;
  atomic_int children_run, other_worker_runs, submit_errors;
  int root_worker;
} fan_t;

static void child_task(void *arg) {
  fan_t *f = arg;
  if (es_sched_worker(f->s) != f->root_worker) atomic_fetch_add(&f->other_worker_runs, 1);
  spin_us(20);
  atomic_fetch_add(&f->children_run, 1);
}

static void root_task(void *arg) {
  fan_t *f = arg;
  f->root_worker = es_sched_worker(f->s);
  for (int i = 0; i < 1000; i++)
    if (es_sched_submit(f->s, child_task, f, ES_SCHED_NORMAL, NULL))
      atomic_fetch_add(&f->submit_errors, 1);
  /* stay busy until the other worker has taken some of our children */
  for (int i = 0; i < 50000 && !atomic_load(&f->other_worker_runs); i++) spin_us(100);
}

static void tasks_submitted_by_tasks_run_and_are_stolen(void **state) {
  (void)state;
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 2;
  fan_t f = {0};
  f.s = es_sched_new(&p, NULL);
  assert_int_equal(es_sched_submit(f.s, root_task, &f, ES_SCHED_NORMAL, NULL), 0);
  assert_int_equal(es_sched_shutdown(f.s, ES_SCHED_DRAIN), 0);
  assert_int_equal(atomic_load(&f.submit_errors), 0);
  assert_int_equal(atomic_load(&f.children_run), 1000);
  assert_true(atomic_load(&f.other_worker_runs) >= 1);
  es_sched_stats_t st;
  es_sched_stats(f.s, &st);
  assert_int_equal(st.executed, 1001);
  assert_true(st.stolen >= 1);
  es_sched_free(f.s);
}

/* ---- bounds and cancellation -------------------------------------------- */

static void a_full_priority_refuses_with_efull(void **state) {
  (void)state;
  gate_t g;
  es_sched_params_t p = es_sched_default_params();
  p.max_queued[ES_SCHED_NORMAL] = 3;
  es_sched_t *s = held_sched(&g, &p);
  atomic_int n = 0;
  es_task_t *h[3];
  for (int i = 0; i < 3; i++) {
    es_task_opts_t o = {.handle = &h[i]};
    assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_NORMAL, &o), 0);
  }
  es_task_t *x = (es_task_t *)&n;
  es_task_opts_t ox = {.handle = &x};
  assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_NORMAL, &ox), ES_EFULL);
  assert_null(x);
  /* other priorities are not bounded by it */
  assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_LOW, NULL), 0);
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  assert_int_equal(st.rejected, 1);
  assert_int_equal(st.queued[ES_SCHED_NORMAL], 3);
  /* a cancelled task frees its place at once */
  assert_int_equal(es_task_cancel(h[1]), 0);
  assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_NORMAL, NULL), 0);
  assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_NORMAL, NULL), ES_EFULL);
  gate_open(&g);
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  assert_int_equal(atomic_load(&n), 4); /* 2 + 1 normal, 1 low */
  for (int i = 0; i < 3; i++) es_task_release(h[i]);
  es_sched_free(s);
  gate_destroy(&g);
}

static void a_cancelled_task_never_runs_and_its_callback_says_so(void **state) {
  (void)state;
  gate_t g;
  es_sched_t *s = held_sched(&g, NULL);
  track_t t = {.s = s};
  atomic_store(&t.done_status, 99);
  es_task_t *h;
  es_task_opts_t o = {.done = track_done, .handle = &h};
  assert_int_equal(es_sched_submit(s, track_task, &t, ES_SCHED_HIGH, &o), 0);
  assert_int_equal(es_task_cancel(h), 0);
  assert_int_equal(es_task_cancel(h), ES_ESTATE); /* only once */
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  assert_int_equal(st.queued[ES_SCHED_HIGH], 0);
  assert_int_equal(st.cancelled, 1);
  gate_open(&g);
  /* the callback runs on the worker; the wait returns after it */
  assert_int_equal(es_task_wait(h, -1), ES_ECANCELED);
  assert_int_equal(atomic_load(&t.done_calls), 1);
  assert_int_equal(atomic_load(&t.done_status), ES_ECANCELED);
  assert_true(atomic_load(&t.done_worker) == 0);
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  assert_int_equal(atomic_load(&t.ran), 0);
  assert_int_equal(atomic_load(&t.done_calls), 1);
  es_sched_stats(s, &st);
  assert_int_equal(st.executed, 1); /* the gate */
  es_task_release(h);
  es_sched_free(s);
  gate_destroy(&g);
}

static void cancelling_a_task_without_callback_wakes_waiters_at_once(void **state) {
  (void)state;
  gate_t g;
  es_sched_t *s = held_sched(&g, NULL);
  atomic_int n = 0;
  es_task_t *h;
  es_task_opts_t o = {.handle = &h};
  assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_LOW, &o), 0);
  assert_int_equal(es_task_cancel(h), 0);
  assert_int_equal(es_task_wait(h, 0), ES_ECANCELED); /* worker still held */
  gate_open(&g);
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  assert_int_equal(atomic_load(&n), 0);
  es_task_release(h);
  es_sched_free(s);
  gate_destroy(&g);
}

static void a_started_task_cannot_be_cancelled(void **state) {
  (void)state;
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 1;
  es_sched_t *s = es_sched_new(&p, NULL);
  gate_t g;
  gate_init(&g);
  es_task_t *h;
  es_task_opts_t o = {.handle = &h};
  assert_int_equal(es_sched_submit(s, gate_task, &g, ES_SCHED_NORMAL, &o), 0);
  gate_wait_entered(&g, 1);
  assert_int_equal(es_task_cancel(h), ES_ESTATE);
  gate_open(&g);
  assert_int_equal(es_task_wait(h, -1), 0);
  assert_int_equal(es_task_cancel(h), ES_ESTATE);
  es_task_release(h);
  es_sched_free(s);
  gate_destroy(&g);
}

static void a_handle_released_early_leaves_the_task_running(void **state) {
  (void)state;
  gate_t g;
  es_sched_t *s = held_sched(&g, NULL);
  atomic_int n = 0;
  es_task_t *h;
  es_task_opts_t o = {.handle = &h};
  assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_NORMAL, &o), 0);
  es_task_release(h);
  es_task_release(NULL);
  gate_open(&g);
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  assert_int_equal(atomic_load(&n), 1);
  es_sched_free(s);
  gate_destroy(&g);
}

/* ---- shutdown -------------------------------------------------------------- */

typedef struct {
  es_sched_t *s;
  atomic_int runs, late_refused;
  int depth;
} tree_t;

typedef struct {
  tree_t *t;
  int depth;
} node_t;

static node_t tree_nodes[1 << 10];

typedef struct {
  es_sched_t *s;
  int mode, rc;
} shut_arg_t;

static void *shutdown_thread(void *arg) {
  shut_arg_t *a = arg;
  a->rc = es_sched_shutdown(a->s, a->mode);
  return NULL;
}
static atomic_int tree_next;

static void tree_task(void *arg) {
  node_t *n = arg;
  atomic_fetch_add(&n->t->runs, 1);
  if (n->depth == 0) return;
  for (int i = 0; i < 2; i++) {
    node_t *c = &tree_nodes[atomic_fetch_add(&tree_next, 1)];
    *c = (node_t){n->t, n->depth - 1};
    if (es_sched_submit(n->t->s, tree_task, c, ES_SCHED_NORMAL, NULL))
      atomic_fetch_add(&n->t->late_refused, 1);
  }
}

static void drain_runs_queued_tasks_and_the_tasks_they_submit(void **state) {
  (void)state;
  gate_t g;
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 2;
  es_sched_t *s = es_sched_new(&p, NULL);
  gate_init(&g);
  assert_int_equal(es_sched_submit(s, gate_task, &g, ES_SCHED_CRITICAL, NULL), 0);
  assert_int_equal(es_sched_submit(s, gate_task, &g, ES_SCHED_CRITICAL, NULL), 0);
  gate_wait_entered(&g, 2); /* both workers held: nothing below runs yet */
  static tree_t t;
  memset(&t, 0, sizeof t);
  t.s = s;
  atomic_store(&tree_next, 1);
  tree_nodes[0] = (node_t){&t, 8}; /* a binary tree of 511 tasks */
  assert_int_equal(es_sched_submit(s, tree_task, &tree_nodes[0], ES_SCHED_LOW, NULL), 0);
  atomic_int n = 0;
  for (int i = 0; i < 100; i++)
    assert_int_equal(es_sched_submit(s, count_task, &n, i % ES_SCHED_NPRIO, NULL), 0);

  /* shut down from another thread while the workers are held */
  shut_arg_t a = {s, ES_SCHED_DRAIN, -1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, shutdown_thread, &a), 0);
  /* once shutdown started, outside submissions are refused */
  while (es_sched_submit(s, count_task, &n, ES_SCHED_NORMAL, NULL) != ES_ESTATE) sleep_us(100);
  gate_open(&g);
  pthread_join(th, NULL);
  assert_int_equal(a.rc, 0);
  assert_int_equal(atomic_load(&t.runs), 511);
  assert_int_equal(atomic_load(&t.late_refused), 0);
  /* the submissions that raced the shutdown ran too: n = 100 + those */
  assert_true(atomic_load(&n) >= 100);
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  assert_int_equal(st.executed, 2 + 511 + (uint64_t)atomic_load(&n));
  assert_int_equal(st.cancelled, 0);
  assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_NORMAL, NULL), ES_ESTATE);
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), ES_ESTATE);
  es_sched_free(s);
  gate_destroy(&g);
}

/* During a drain, a worker with nothing to do stays until no task runs:
 * work that running tasks submit later still gets every worker. */
typedef struct {
  es_sched_t *s;
  atomic_int entered, both_seen, submit_errors;
} pair_t;

static void pair_child(void *arg) {
  pair_t *p = arg;
  atomic_fetch_add(&p->entered, 1);
  /* wait (bounded) until the other child runs at the same time */
  for (int i = 0; i < 100000 && atomic_load(&p->entered) < 2; i++) sleep_us(100);
  if (atomic_load(&p->entered) >= 2) atomic_fetch_add(&p->both_seen, 1);
}

static void pair_root(void *arg) {
  pair_t *p = arg;
  sleep_us(20000); /* the other worker has long found nothing to do */
  for (int i = 0; i < 2; i++)
    if (es_sched_submit(p->s, pair_child, p, ES_SCHED_NORMAL, NULL))
      atomic_fetch_add(&p->submit_errors, 1);
}

static void drain_keeps_every_worker_until_no_task_runs(void **state) {
  (void)state;
  es_sched_params_t prm = es_sched_default_params();
  prm.nworkers = 2;
  pair_t p = {0};
  p.s = es_sched_new(&prm, NULL);
  assert_int_equal(es_sched_submit(p.s, pair_root, &p, ES_SCHED_NORMAL, NULL), 0);
  assert_int_equal(es_sched_shutdown(p.s, ES_SCHED_DRAIN), 0);
  assert_int_equal(atomic_load(&p.submit_errors), 0);
  assert_int_equal(atomic_load(&p.entered), 2);
  assert_int_equal(atomic_load(&p.both_seen), 2); /* the two ran side by side */
  es_sched_free(p.s);
}

typedef struct {
  es_task_t *h;
  int rc;
} waiter_t;

static void *waiter_thread(void *arg) {
  waiter_t *w = arg;
  w->rc = es_task_wait(w->h, -1);
  return NULL;
}

static void cancel_shutdown_cancels_queued_tasks_and_wakes_waiters(void **state) {
  (void)state;
  enum { N = 64 };
  gate_t g;
  es_sched_t *s = held_sched(&g, NULL);
  static track_t t[N];
  es_task_t *h[N];
  for (int i = 0; i < N; i++) {
    memset(&t[i], 0, sizeof t[i]);
    t[i].s = s;
    atomic_store(&t[i].done_status, 99);
    es_task_opts_t o = {.done = track_done, .handle = i % 2 ? &h[i] : NULL};
    h[i] = NULL;
    assert_int_equal(es_sched_submit(s, track_task, &t[i], i % ES_SCHED_NPRIO, &o), 0);
  }
  waiter_t w = {h[1], 99};
  pthread_t wt, ct;
  assert_int_equal(pthread_create(&wt, NULL, waiter_thread, &w), 0);
  shut_arg_t ca = {s, ES_SCHED_CANCEL, -1};
  assert_int_equal(pthread_create(&ct, NULL, shutdown_thread, &ca), 0);
  atomic_int n = 0;
  int raced = 0; /* accepted before the shutdown began: cancelled with the rest */
  while (es_sched_submit(s, count_task, &n, ES_SCHED_NORMAL, NULL) != ES_ESTATE) {
    raced++;
    sleep_us(100);
  }
  gate_open(&g); /* the running gate task finishes; the rest is cancelled */
  pthread_join(ct, NULL);
  pthread_join(wt, NULL);
  assert_int_equal(ca.rc, 0);
  assert_int_equal(w.rc, ES_ECANCELED);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&t[i].ran), 0);
    assert_int_equal(atomic_load(&t[i].done_calls), 1);
    assert_int_equal(atomic_load(&t[i].done_status), ES_ECANCELED);
    if (h[i]) {
      assert_int_equal(es_task_wait(h[i], 0), ES_ECANCELED);
      assert_int_equal(es_task_cancel(h[i]), ES_ESTATE);
      es_task_release(h[i]);
    }
  }
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  assert_int_equal(atomic_load(&n), 0);
  assert_int_equal(st.cancelled, N + (uint64_t)raced);
  assert_int_equal(st.executed, 1);
  for (int q = 0; q < ES_SCHED_NPRIO; q++) assert_int_equal(st.queued[q], 0);
  es_sched_free(s);
  gate_destroy(&g);
}

typedef struct {
  es_sched_t *s;
  atomic_int rc_shutdown;
} self_t;

static void self_shutdown_task(void *arg) {
  self_t *x = arg;
  atomic_store(&x->rc_shutdown, es_sched_shutdown(x->s, ES_SCHED_DRAIN));
}

static void shutdown_from_a_worker_is_refused(void **state) {
  (void)state;
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 1;
  self_t x = {es_sched_new(&p, NULL), 0};
  es_task_t *h;
  es_task_opts_t o = {.handle = &h};
  assert_int_equal(es_sched_submit(x.s, self_shutdown_task, &x, ES_SCHED_NORMAL, &o), 0);
  assert_int_equal(es_task_wait(h, -1), 0);
  assert_int_equal(atomic_load(&x.rc_shutdown), ES_ESTATE);
  es_task_release(h);
  assert_int_equal(es_sched_shutdown(x.s, 7), ES_EINVAL);
  assert_int_equal(es_sched_shutdown(x.s, ES_SCHED_CANCEL), 0);
  es_sched_free(x.s);
  es_sched_free(NULL);
}

static void bad_submissions_are_refused(void **state) {
  (void)state;
  es_sched_t *s = es_sched_new(NULL, NULL);
  atomic_int n = 0;
  es_task_t *h = (es_task_t *)&n;
  es_task_opts_t o = {.handle = &h};
  assert_int_equal(es_sched_submit(s, NULL, &n, ES_SCHED_LOW, &o), ES_EINVAL);
  assert_null(h);
  assert_int_equal(es_sched_submit(s, count_task, &n, -1, NULL), ES_EINVAL);
  assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_NPRIO, NULL), ES_EINVAL);
  assert_int_equal(es_sched_submit(NULL, count_task, &n, ES_SCHED_LOW, NULL), ES_EINVAL);
  es_sched_free(s); /* never shut down: free cancels */
}

/* ---- idling ------------------------------------------------------------------ */

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Bursts of submissions into an idle pool, at random moments relative to
 * the workers' spin and sleep: every task runs (a lost wake-up would leave
 * one queued with every worker asleep, and the wait would time out). */
static void bursts_into_an_idle_pool_always_run(void **state) {
  (void)state;
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 3;
  p.spin_us = 20;
  es_sched_t *s = es_sched_new(&p, NULL);
  uint32_t r = 42;
  for (int round = 0; round < 200; round++) {
    r ^= r << 13, r ^= r >> 17, r ^= r << 5;
    sleep_us(r % 300);
    int k = 1 + (int)(r % 6);
    atomic_int n = 0;
    es_task_t *h[6];
    for (int i = 0; i < k; i++) {
      es_task_opts_t o = {.handle = &h[i]};
      assert_int_equal(es_sched_submit(s, count_task, &n, (int)((r >> 8) % 4), &o), 0);
    }
    for (int i = 0; i < k; i++) {
      assert_int_equal(es_task_wait(h[i], 10000), 0);
      es_task_release(h[i]);
    }
    assert_int_equal(atomic_load(&n), k);
  }
  es_sched_free(s);
}

/* One worker is held by a long task; the other sleeps. A new task must
 * wake the sleeper, not wait for the busy one. */
static void a_sleeping_worker_wakes_while_another_is_busy(void **state) {
  (void)state;
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 2;
  es_sched_t *s = es_sched_new(&p, NULL);
  gate_t g;
  gate_init(&g);
  assert_int_equal(es_sched_submit(s, gate_task, &g, ES_SCHED_LOW, NULL), 0);
  gate_wait_entered(&g, 1);
  for (int round = 0; round < 20; round++) {
    sleep_us(round % 2 ? 2000 : 10); /* the other worker asleep, or spinning */
    atomic_int n = 0;
    es_task_t *h;
    es_task_opts_t o = {.handle = &h};
    assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_CRITICAL, &o), 0);
    assert_int_equal(es_task_wait(h, 10000), 0); /* the gate is still closed */
    es_task_release(h);
  }
  gate_open(&g);
  es_sched_free(s);
  gate_destroy(&g);
}

static void idle_workers_sleep_and_a_submission_wakes_one(void **state) {
  (void)state;
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 4;
  es_sched_t *s = es_sched_new(&p, NULL);
  sleep_us(20000); /* past the spin */
  double c0 = cpu_seconds();
  sleep_us(200000);
  double used = cpu_seconds() - c0;
  /* 4 spinning workers would burn ~0.8 s of cpu here; sleeping ones ~0 */
  assert_true(used < 0.05);
  for (int round = 0; round < 3; round++) {
    atomic_int n = 0;
    es_task_t *h;
    es_task_opts_t o = {.handle = &h};
    assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_CRITICAL, &o), 0);
    assert_int_equal(es_task_wait(h, 10000), 0);
    assert_int_equal(atomic_load(&n), 1);
    es_task_release(h);
    sleep_us(5000);
  }
  es_sched_free(s);
}

/* ---- statistics -------------------------------------------------------------- */

static void latency_is_counted_per_priority(void **state) {
  (void)state;
  gate_t g;
  es_sched_t *s = held_sched(&g, NULL);
  atomic_int n = 0;
  for (int i = 0; i < 30; i++)
    assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_HIGH, NULL), 0);
  sleep_us(2000); /* they wait at least 2 ms */
  gate_open(&g);
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  assert_int_equal(st.latency[ES_SCHED_HIGH].count, 30);
  assert_int_equal(st.latency[ES_SCHED_NORMAL].count, 0);
  assert_int_equal(st.latency[ES_SCHED_LOW].count, 0);
  assert_int_equal(st.latency[ES_SCHED_CRITICAL].count, 1); /* the gate */
  assert_int_equal(st.latency_all.count, 31);
  const es_sched_latency_t *l = &st.latency[ES_SCHED_HIGH];
  assert_true(l->mean_us >= 2000.0);
  assert_true(l->p50_us >= 2000.0 * 0.875); /* buckets: within 12.5% */
  assert_true(l->p50_us <= l->p99_us);
  assert_true(l->p99_us <= l->max_us);
  assert_true(l->max_us >= l->mean_us);
  es_sched_free(s);
  gate_destroy(&g);
}

/* ---- many threads at once ------------------------------------------------------ */

typedef struct {
  es_sched_t *s;
  atomic_int *ran;
  atomic_int *done_ok;
  atomic_int *done_cancelled;
  int base, count;
  int cancelled_ok; /* es_task_cancel returned 0 */
  int errors;
} producer_t;

typedef struct {
  producer_t *p;
  int i;
} ptask_t;

static void p_task(void *arg) {
  ptask_t *t = arg;
  atomic_fetch_add(&t->p->ran[t->i], 1);
}

static void p_done(void *arg, int status) {
  ptask_t *t = arg;
  atomic_fetch_add(status == 0 ? &t->p->done_ok[t->i] : &t->p->done_cancelled[t->i], 1);
}

static ptask_t ptasks[4 * 4000];

static void *producer(void *arg) {
  producer_t *p = arg;
  uint32_t r = (uint32_t)p->base * 2654435761u + 1;
  for (int k = 0; k < p->count; k++) {
    int i = p->base + k;
    ptasks[i] = (ptask_t){p, i};
    r ^= r << 13, r ^= r >> 17, r ^= r << 5;
    es_task_t *h = NULL;
    es_task_opts_t o = {.done = p_done, .handle = r % 3 ? &h : NULL};
    if (es_sched_submit(p->s, p_task, &ptasks[i], (int)(r % 4), &o)) p->errors++;
    if (h) {
      if (r % 5 == 0 && es_task_cancel(h) == 0) p->cancelled_ok++;
      if (r % 7 == 0) es_task_wait(h, -1);
      es_task_release(h);
    }
  }
  return NULL;
}

static void concurrent_producers_every_task_ends_exactly_once(void **state) {
  (void)state;
  enum { P = 4, PER = 4000, N = P * PER };
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 3;
  es_sched_t *s = es_sched_new(&p, NULL);
  atomic_int *ran = calloc(N, sizeof *ran), *ok = calloc(N, sizeof *ok),
             *canc = calloc(N, sizeof *canc);
  producer_t prod[P];
  pthread_t th[P];
  for (int i = 0; i < P; i++) {
    prod[i] = (producer_t){s, ran, ok, canc, i * PER, PER, 0, 0};
    assert_int_equal(pthread_create(&th[i], NULL, producer, &prod[i]), 0);
  }
  int cancelled_ok = 0;
  for (int i = 0; i < P; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(prod[i].errors, 0);
    cancelled_ok += prod[i].cancelled_ok;
  }
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  int nran = 0, ncanc = 0;
  for (int i = 0; i < N; i++) {
    /* each task: ran once with done(0), or never ran with done(ES_ECANCELED) */
    assert_int_equal(atomic_load(&ran[i]) + atomic_load(&canc[i]), 1);
    assert_int_equal(atomic_load(&ok[i]), atomic_load(&ran[i]));
    nran += atomic_load(&ran[i]);
    ncanc += atomic_load(&canc[i]);
  }
  assert_int_equal(ncanc, cancelled_ok);
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  assert_int_equal(st.executed, (uint64_t)nran);
  assert_int_equal(st.cancelled, (uint64_t)ncanc);
  es_sched_free(s);
  free(ran);
  free(ok);
  free(canc);
}

/* ---- affinity -------------------------------------------------------------- */

typedef struct {
  char msg[400];
  int calls;
} logbuf_t;

static void log_to_buf(void *ud, const char *msg) {
  logbuf_t *l = ud;
  snprintf(l->msg, sizeof l->msg, "%s", msg);
  l->calls++;
}

static void an_impossible_cpu_leaves_workers_unpinned_but_working(void **state) {
  (void)state;
  logbuf_t log = {{0}, 0};
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = 2;
  assert_int_equal(es_cpuset_parse(&p.cpus, "4000", NULL), 0);
  p.log = log_to_buf;
  p.log_ud = &log;
  es_sched_t *s = es_sched_new(&p, NULL);
  assert_non_null(s); /* creation never fails because of affinity */
  assert_int_equal(log.calls, 1);
  assert_non_null(strstr(log.msg, "4000"));
  assert_non_null(strstr(log.msg, "unpinned"));
  assert_non_null(strstr(log.msg, "allowed"));
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  assert_int_equal(st.pinned, 0);
  assert_non_null(strstr(st.affinity_note, "2 of 2 workers run unpinned"));
  atomic_int n = 0;
  for (int i = 0; i < 100; i++)
    assert_int_equal(es_sched_submit(s, count_task, &n, ES_SCHED_NORMAL, NULL), 0);
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  assert_int_equal(atomic_load(&n), 100);
  es_sched_free(s);
}

typedef struct {
  es_sched_t *s;
  gate_t *g;
  atomic_int cpu_of[8];
} where_t;

static void where_task(void *arg) {
  where_t *w = arg;
  atomic_store(&w->cpu_of[es_sched_worker(w->s)], es_affinity_current_cpu());
  gate_task(w->g); /* hold this worker so the next task goes to the other */
}

static void pinned_workers_run_on_their_own_cpu(void **state) {
  (void)state;
  es_cpuset_t allowed;
  assert_int_equal(es_affinity_get(&allowed, NULL), 0);
  int n = es_cpuset_count(&allowed);
  if (n > 8) n = 8;
  logbuf_t log = {{0}, 0};
  es_sched_params_t p = es_sched_default_params();
  p.cpus = allowed;
  p.pin_each = 1;
  p.nworkers = n;
  p.log = log_to_buf;
  p.log_ud = &log;
  es_sched_t *s = es_sched_new(&p, NULL);
  assert_non_null(s);
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  assert_int_equal(st.pinned, n);
  assert_non_null(strstr(st.affinity_note, "pinned one per cpu"));
  assert_int_equal(log.calls, 1);
  gate_t g;
  gate_init(&g);
  static where_t w;
  w.s = s;
  w.g = &g;
  for (int i = 0; i < 8; i++) atomic_store(&w.cpu_of[i], -1);
  for (int i = 0; i < n; i++)
    assert_int_equal(es_sched_submit(s, where_task, &w, ES_SCHED_NORMAL, NULL), 0);
  gate_wait_entered(&g, n); /* each worker holds one: all n ran one each */
  gate_open(&g);
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  for (int i = 0; i < n; i++)
    assert_int_equal(atomic_load(&w.cpu_of[i]), es_cpuset_nth(&allowed, i));
  es_sched_free(s);
  gate_destroy(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(default_params_have_the_documented_values),
      cmocka_unit_test(invalid_params_are_refused),
      cmocka_unit_test(zero_workers_means_one_per_allowed_cpu),
      cmocka_unit_test(every_task_runs_exactly_once),
      cmocka_unit_test(done_callback_runs_on_a_worker_after_the_task),
      cmocka_unit_test(wait_times_out_while_the_task_is_held),
      cmocka_unit_test(worker_index_is_known_only_inside_tasks),
      cmocka_unit_test(most_urgent_priority_runs_first_fifo_within_one),
      cmocka_unit_test(an_overdue_low_task_goes_before_critical_work),
      cmocka_unit_test(low_work_never_starves_under_an_endless_critical_flood),
      cmocka_unit_test(tasks_submitted_by_tasks_run_and_are_stolen),
      cmocka_unit_test(a_full_priority_refuses_with_efull),
      cmocka_unit_test(a_cancelled_task_never_runs_and_its_callback_says_so),
      cmocka_unit_test(cancelling_a_task_without_callback_wakes_waiters_at_once),
      cmocka_unit_test(a_started_task_cannot_be_cancelled),
      cmocka_unit_test(a_handle_released_early_leaves_the_task_running),
      cmocka_unit_test(drain_runs_queued_tasks_and_the_tasks_they_submit),
      cmocka_unit_test(drain_keeps_every_worker_until_no_task_runs),
      cmocka_unit_test(cancel_shutdown_cancels_queued_tasks_and_wakes_waiters),
      cmocka_unit_test(shutdown_from_a_worker_is_refused),
      cmocka_unit_test(bad_submissions_are_refused),
      cmocka_unit_test(idle_workers_sleep_and_a_submission_wakes_one),
      cmocka_unit_test(bursts_into_an_idle_pool_always_run),
      cmocka_unit_test(a_sleeping_worker_wakes_while_another_is_busy),
      cmocka_unit_test(latency_is_counted_per_priority),
      cmocka_unit_test(concurrent_producers_every_task_ends_exactly_once),
      cmocka_unit_test(an_impossible_cpu_leaves_workers_unpinned_but_working),
      cmocka_unit_test(pinned_workers_run_on_their_own_cpu),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
