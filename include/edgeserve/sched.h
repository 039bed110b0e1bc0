/*
 * sched.h - a work-stealing thread pool with four priorities.
 *
 * A scheduler owns a fixed set of worker threads. Any thread submits tasks
 * (a function and its argument) at one of four priorities; idle workers
 * sleep, a submission wakes one. Workers take the most urgent task first,
 * except that a task which has waited longer than its priority's aging bound
 * goes ahead of everything (so low work never starves). Tasks submitted
 * from inside a task stay on that worker (cache-warm) until another worker
 * steals them.
 *
 *   static void infer(void *req) { ... }
 *   static void reply(void *req, int status) { ... status 0 or ES_ECANCELED }
 *
 *   es_sched_params_t p = es_sched_default_params();
 *   p.nworkers = 4;
 *   es_sched_t *s = es_sched_new(&p, NULL);
 *   es_task_opts_t o = {.done = reply};
 *   es_sched_submit(s, infer, req, ES_SCHED_HIGH, &o);   // fire and forget
 *
 *   es_task_t *t;
 *   es_task_opts_t w = {.handle = &t};
 *   if (es_sched_submit(s, infer, req2, ES_SCHED_NORMAL, &w) == 0) {
 *     if (es_task_wait(t, 100) == ES_ETIMEDOUT && es_task_cancel(t) == 0)
 *       ...;                               // req2 will never run
 *     es_task_release(t);
 *   }
 *   es_sched_shutdown(s, ES_SCHED_DRAIN);   // runs what is queued, joins
 *   es_sched_free(s);
 *
 * Two pools on a big.LITTLE SoC (RK3588: cpus 4-7 are A76, 0-3 are A55;
 * hw.h's clusters say which are which): inference on the big cores, one
 * worker per core, background work on the little ones.
 *
 *   es_sched_params_t ip = es_sched_default_params();
 *   es_cpuset_parse(&ip.cpus, "4-7", NULL);   // or from es_hw_t clusters
 *   ip.pin_each = 1;                          // worker i on the i-th cpu
 *   ip.log = my_log;                          // says when pinning failed
 *   es_sched_t *infer = es_sched_new(&ip, NULL);   // 4 workers (= cpus)
 *
 *   es_sched_params_t bp = es_sched_default_params();
 *   es_cpuset_parse(&bp.cpus, "0-3", NULL);
 *   bp.nworkers = 1;                          // may run on any of 0-3
 *   es_sched_t *bg = es_sched_new(&bp, NULL);
 *
 * Pinning never makes creation fail: a refused pin (cpus outside the
 * process's allowed set, a container, non-Linux) leaves the workers
 * unpinned and the reason in es_sched_stats().affinity_note and the log.
 *
 * Thread-safety: every function may be called from any thread, including
 * from inside tasks, with two exceptions: es_sched_shutdown() and
 * es_sched_free() not from a worker of the same scheduler (they would wait
 * for themselves), and es_sched_free() only once every other call on the
 * scheduler and its handles has returned.
 */
#ifndef EDGESERVE_SCHED_H
#define EDGESERVE_SCHED_H

#include <stdint.h>

#include "edgeserve/affinity.h"
#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Priorities, most urgent first. */
enum {
  ES_SCHED_CRITICAL = 0, /* interactive requests on the hot path */
  ES_SCHED_HIGH = 1,
  ES_SCHED_NORMAL = 2,
  ES_SCHED_LOW = 3, /* batch and background work */
  ES_SCHED_NPRIO = 4
};

/* es_sched_shutdown() modes. */
enum {
  ES_SCHED_DRAIN = 0, /* run every queued task, then stop */
  ES_SCHED_CANCEL = 1 /* cancel every queued task, then stop */
};

typedef struct es_sched es_sched_t;
typedef struct es_task es_task_t;

typedef void (*es_task_fn)(void *arg);
/* Completion callback: status 0 when the task ran, ES_ECANCELED when it was
 * cancelled before it started. Runs on a worker thread, exactly once. */
typedef void (*es_task_done_fn)(void *arg, int status);

typedef struct es_sched_params {
  /* Worker threads; 0 = one per cpu of `cpus` when it is set, else one per
   * cpu this thread may run on. At most 256. */
  int nworkers;
  /* Cpus to pin the workers to; empty (the default) = no pinning. */
  es_cpuset_t cpus;
  /* 0: every worker may run on any cpu of `cpus` (the kernel balances them
   * within the set; best when other threads share those cpus). 1: worker i
   * is pinned to the (i mod n)-th cpu of the n in `cpus` (one per core,
   * stable caches; best for a dedicated inference pool). */
  int pin_each;
  /* Aging bounds in microseconds, per priority: a queued task that has
   * waited longer is taken before any other work. 0 = never ages. The entry
   * of ES_SCHED_CRITICAL is unused. Default {0, 5000, 20000, 50000}. */
  int aging_us[ES_SCHED_NPRIO];
  /* Most tasks queued per priority (not counting running ones); a submit
   * beyond it returns ES_EFULL. 0 (default) = unbounded. */
  int max_queued[ES_SCHED_NPRIO];
  /* How long an idle worker keeps looking for work before it sleeps, in
   * microseconds (default 50; 0 = sleep at once). */
  int spin_us;
  /* Optional log of notable events (pinning done or refused), called from
   * the thread that runs es_sched_new(). */
  void (*log)(void *ud, const char *msg);
  void *log_ud;
} es_sched_params_t;

es_sched_params_t es_sched_default_params(void);

/* Submit-to-start latency of the tasks that started, in microseconds.
 * Percentiles come from a log-bucketed histogram (4 buckets per power of
 * two): within 12.5% of the exact value. */
typedef struct es_sched_latency {
  uint64_t count;
  double mean_us, p50_us, p99_us, max_us;
} es_sched_latency_t;

typedef struct es_sched_stats {
  int nworkers;
  int64_t queued[ES_SCHED_NPRIO]; /* waiting now, cancelled ones not counted (a
                                     snapshot of the queues, not one instant) */
  uint64_t executed;              /* tasks whose function returned */
  uint64_t stolen;                /* tasks a worker took from another's deque */
  uint64_t cancelled;             /* by es_task_cancel or ES_SCHED_CANCEL */
  uint64_t rejected;              /* submissions refused with ES_EFULL */
  uint64_t aged; /* tasks the aging rule started ahead of queued more urgent work */
  es_sched_latency_t latency[ES_SCHED_NPRIO]; /* per priority */
  es_sched_latency_t latency_all;
  int pinned;              /* workers whose pinning the kernel accepted */
  char affinity_note[160]; /* what pinning did, or why it did not */
} es_sched_stats_t;

/* Starts a scheduler with p (NULL = defaults). Returns it once every worker
 * is running (and pinned, where pinning works), or NULL with *err filled
 * (when not NULL) on invalid params (ES_EINVAL: nworkers < 0 or > 256,
 * negative aging, bounds or spin) or when memory or threads run out
 * (ES_ENOMEM); then nothing is left running or allocated. The caller frees
 * it with es_sched_free(). */
es_sched_t *es_sched_new(const es_sched_params_t *p, es_error_t *err);

/* Completion options of one submission; NULL = none. */
typedef struct es_task_opts {
  es_task_done_fn done; /* called with the task's arg once it ran or was cancelled */
  es_task_t **handle;   /* when not NULL, receives a handle to wait on or
                           cancel; the caller must es_task_release() it */
} es_task_opts_t;

/* Queues fn(arg) at priority prio. From a worker of s, the task goes on that
 * worker's own deque; from any other thread, on the priority's injection
 * queue. Returns 0, or (nothing queued, *opts->handle set to NULL, done not
 * called):
 *   ES_EINVAL  s or fn is NULL or prio is not an ES_SCHED_* priority
 *   ES_EFULL   the priority already holds max_queued tasks: try again later
 *   ES_ESTATE  the scheduler is shut down or shutting down. During an
 *              ES_SCHED_DRAIN, tasks that submit tasks are still accepted
 *              (from its workers only), so work that fans out completes.
 *   ES_ENOMEM  out of memory
 * Fire-and-forget submissions allocate nothing once the scheduler's pool of
 * task nodes has grown to the peak number in flight. */
int es_sched_submit(es_sched_t *s, es_task_fn fn, void *arg, int prio, const es_task_opts_t *opts);

/* Waits until the task finished: its function and its done callback
 * returned (0), or it was cancelled and its done callback, if any, returned
 * (ES_ECANCELED). timeout_ms < 0 waits without limit, 0 only looks; when the
 * time runs out returns ES_ETIMEDOUT. Safe from several threads at once. Do
 * not wait from inside a task of the same scheduler for a task that may be
 * queued behind it: if every worker waits, nothing runs the task. */
int es_task_wait(es_task_t *t, int timeout_ms);

/* Cancels a task that has not started: returns 0 and the task will never
 * run (its done callback gets ES_ECANCELED on a worker soon after; waiters
 * wake once it returned), or ES_ESTATE when it already started, finished or
 * was cancelled. */
int es_task_cancel(es_task_t *t);

/* Gives up the handle. The task itself is unaffected (it still runs unless
 * cancelled). Every handle must be released exactly once, before
 * es_sched_free(); it may not be used afterwards. */
void es_task_release(es_task_t *t);

/* Stops the scheduler: ES_SCHED_DRAIN runs every queued task and the tasks
 * they submit (every worker stays until no task runs and nothing is queued);
 * ES_SCHED_CANCEL cancels every queued task (done callbacks get
 * ES_ECANCELED on a worker, waiters wake) and refuses new ones, while tasks
 * already running finish. Then joins the workers. Submissions from outside
 * the workers fail with ES_ESTATE from the moment it is called (a
 * submission racing the call is either refused or drained/cancelled with
 * the rest, never lost). Blocks as long as running tasks run.
 * Returns 0, ES_EINVAL for a bad mode, or ES_ESTATE when the scheduler is
 * already shut down (or being shut down) or when called from one of its own
 * workers (it would wait for itself). */
int es_sched_shutdown(es_sched_t *s, int mode);

/* Shuts down with ES_SCHED_CANCEL when that was not done, and frees the
 * scheduler with its task nodes (so every handle must have been released).
 * NULL is a no-op. Calling it from one of its own workers is a programmer
 * error (assert). */
void es_sched_free(es_sched_t *s);

/* Fills *out with the counters (each exact when read, not all read at the
 * same instant; queued is a snapshot of the queues). Costs a pass over every
 * worker's histograms (5 KB each). Any thread, any time before
 * es_sched_free(). */
void es_sched_stats(const es_sched_t *s, es_sched_stats_t *out);

/* 0 .. nworkers-1 when called from a worker of s (to index per-worker
 * state such as a prediction scratch), else -1. */
int es_sched_worker(const es_sched_t *s);

#ifdef __cplusplus
}
#endif
#endif
