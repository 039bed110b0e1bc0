/*
 * sched.c - work-stealing thread pool with four priorities, aging, cancellable
 * tasks and pinned workers.
 *
 * Where a task waits. Each worker owns one Chase-Lev deque per priority
 * (deque.c); a task submitted from inside a task goes on its worker's deque.
 * Tasks submitted from other threads go on one injection queue per priority
 * (a mutex-protected intrusive FIFO list). A worker looks for work in this
 * order:
 *   0. at most once per scan period (1/8 of the smallest aging bound), the
 *      heads of every low/normal/high queue: a task that has waited longer
 *      than its priority's aging bound is "overdue", and the oldest overdue
 *      task is taken before anything else;
 *   1. then, for each priority from critical to low: the bottom of its own
 *      deque (newest, cache-warm), the injection queue (oldest first), the
 *      top of the other workers' deques (steal, oldest first).
 * Heads are the oldest tasks of their queues (FIFO injection lists; the top
 * of a deque), so step 0 sees every queue's oldest task.
 *
 * Why low never starves. Once a task T is overdue, every scan of every
 * worker takes the oldest overdue head. Only tasks submitted before T can be
 * older than T, and there are finitely many of them, so T starts after at
 * most that many scans (plus one task per worker in progress) however much
 * critical work keeps arriving. Conversely, aged tasks take at most one pick
 * per worker per scan period, so they cannot starve critical work either:
 * under a flood of overdue low work, critical tasks still get all the other
 * picks.
 *
 * No shared counter is touched per task: whether there is work is read from
 * the queues themselves (deque sizes, injection list lengths), so workers
 * that run their own tasks share no cache line. The only per-task shared
 * writes are the injection queue's (external submissions) and, when a
 * priority has a max_queued bound, its admission counter.
 *
 * Idle workers spin for spin_us (yielding the cpu between looks), then
 * sleep on a condition variable; a submission wakes one sleeping worker. The
 * handshake is a store-then-load (Dekker) pattern with seq_cst on both
 * sides: the worker increments `nsleep`, then reads every queue's size; the
 * submitter stores its task into a queue (the injection list length, or the
 * deque's bottom), then reads `nsleep`. One of them sees the other. A waker
 * claims a sleeper under the mutex (nsleep - 1, tokens + 1), so a burst of
 * submissions wakes each sleeper once instead of locking on every submit
 * (see sleep_or_settle for how a claimed announcement is settled).
 *
 * Invariants:
 *   1. A task node is in exactly one queue (a deque or an injection list)
 *      from its submission until a worker takes it out, cancelled ones
 *      included. A worker never sleeps while it sees a non-empty queue, and
 *      exits only when the scheduler is shutting down and it sees every
 *      queue empty.
 *   2. The state leaves RUNNING under every injection queue's mutex, and
 *      external submissions check it under their queue's mutex: none gets
 *      in after a worker saw the new state. Only workers can add work after
 *      that (tasks submitting tasks during a drain), onto their own deque,
 *      which they look at again before they exit; so no task is left behind.
 *   3. A task with a handle moves QUEUED -> RUNNING -> DONE or QUEUED ->
 *      CANCELLED -> CANCELLED_DONE, each move by one CAS or by the only
 *      party that can make it. DONE and CANCELLED_DONE are final: waiters
 *      return then, after the done callback returned. Fire-and-forget tasks
 *      cannot be cancelled one by one and skip the state machine.
 *   4. The done callback runs exactly once, on a worker: after fn (0), or
 *      when the worker removes the cancelled node (ES_ECANCELED).
 *   5. Task nodes come from slabs that live until es_sched_free(), so a
 *      racy peek at a queue head always reads valid memory (the aging scan
 *      reads only the node's atomic submit_tick). Free nodes are kept per
 *      priority (under that priority's injection mutex, and in small
 *      per-worker caches), so the nodes a priority frees are the ones its
 *      submitters reuse and the pool is bounded by the peak in flight.
 *   6. live[p] (only kept when max_queued[p] > 0) counts the queued tasks
 *      of p that can still run. It is decremented exactly once per task, by
 *      whoever wins the task's state CAS (the worker starting it,
 *      es_task_cancel, or the cancelling shutdown).
 *   7. Per-worker statistics have one writer (the worker): they are relaxed
 *      atomic loads and stores, never read-modify-writes. On 64-bit targets
 *      they are plain moves; on armhf each is an ldrexd/strexd pair.
 *
 * Cost per task: see docs/runtime/sched.md (bench/runtime/bench_sched.c).
 * A task submitted from a worker takes no lock; one submitted from another
 * thread takes its priority's injection mutex once.
 */
#include "edgeserve/sched.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/fail.h"
#include "deque.h"

#define MAX_WORKERS 256
#define NBUCKETS    160 /* latency histogram: 8 exact + 4 per octave up to 2^41 ns */
#define NWAITQ      16  /* wait queues shared by all handles, by address */
#define SLAB_NODES  64
#define CACHE_MAX   32 /* free nodes a worker keeps per priority before returning half */
#define DEQUE_CAP   64

enum { T_QUEUED, T_RUNNING, T_DONE, T_CANCELLED, T_CANCELLED_DONE };
enum { S_RUNNING, S_DRAINING, S_CANCELLING };

struct es_task {
  es_task_fn fn;
  void *arg;
  es_task_done_fn done;
  es_sched_t *sched;
  es_task_t *next;         /* injection list, free lists */
  uint64_t submit_ns;      /* read by the worker that took the node */
  atomic_uint submit_tick; /* submit time in ticks (ns >> 10) mod 2^32, for aging peeks */
  int prio;
  int handle;         /* a handle was given out: the state machine applies */
  atomic_int state;   /* T_* */
  atomic_int refs;    /* handles: 2 (scheduler + user) at submit */
  atomic_int waiters; /* threads inside es_task_wait */
};

typedef struct slab {
  struct slab *next;
  es_task_t node[SLAB_NODES];
} slab_t;

typedef atomic_uint_least64_t ctr_t;

typedef struct worker {
  es_sched_t *s;
  int id;
  pthread_t thread;
  es__deque_t dq[ES_SCHED_NPRIO];
  uint64_t clock_ns;  /* read at the top of each loop: start time of the next task */
  uint32_t last_scan; /* tick of the last aging scan */
  uint32_t rng;
  es_task_t *cache[ES_SCHED_NPRIO]; /* owner-only free nodes, per priority */
  int ncache[ES_SCHED_NPRIO];
  int pin_rc;
  char pin_msg[256];
  char pin_eff[64];
  /* statistics: written by this worker only (invariant 7) */
  ctr_t executed, stolen, aged;
  ctr_t lat_n[ES_SCHED_NPRIO], lat_sum[ES_SCHED_NPRIO], lat_max[ES_SCHED_NPRIO];
  ctr_t hist[ES_SCHED_NPRIO][NBUCKETS];
} worker_t;

/* One priority's injection queue and free nodes, under one mutex (a cache
 * line, or two, of its own). */
typedef struct {
  _Alignas(64) pthread_mutex_t mu;
  _Atomic(es_task_t *) head; /* written under mu; peeked without it */
  es_task_t *tail;
  atomic_long n;    /* nodes in the list; changed under mu (seq_cst RMW), read anywhere */
  es_task_t *free;  /* free nodes of this priority */
  atomic_long live; /* invariant 6; only when max_queued > 0 */
  atomic_long tomb; /* cancelled nodes still in some queue (for stats) */
} prioq_t;

struct es_sched {
  int n;
  worker_t **w;
  prioq_t q[ES_SCHED_NPRIO];
  long max_queued[ES_SCHED_NPRIO];
  uint32_t aging[ES_SCHED_NPRIO]; /* in ticks; 0 = never */
  uint32_t scan_period;           /* in ticks; 0 = no aging at all */
  uint64_t spin_ns;
  uint64_t epoch_ns;
  atomic_int state;
  /* sleeping */
  atomic_int nsleep; /* sleepers no waker has claimed yet */
  int tokens;        /* wakes handed out and not yet taken; under sleep_mu */
  int waiting;       /* workers in the wait loop; under sleep_mu */
  int done;          /* shut down and every worker idle: exit; under sleep_mu */
  int nthreads;      /* worker threads running (n, or fewer when creation failed) */
  pthread_mutex_t sleep_mu;
  pthread_cond_t sleep_cv;
  /* slabs of task nodes */
  pthread_mutex_t slab_mu;
  slab_t *slabs;
  /* handle waits */
  struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
  } waitq[NWAITQ];
  /* counters with many writers (rare events) */
  ctr_t cancelled, rejected;
  /* life cycle */
  pthread_mutex_t life_mu;
  pthread_cond_t life_cv;
  int started;
  int pinned;
  char note[160];
  char log_msg[320]; /* the note in full, for params.log */
};

/* The worker running on this thread, if any (documented thread-local). */
static _Thread_local worker_t *es__self;

static worker_t *self_of(const es_sched_t *s) {
  return es__self && es__self->s == s ? es__self : NULL;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t tick_of(const es_sched_t *s, uint64_t ns) {
  return (uint32_t)((ns - s->epoch_ns) >> 10);
}

static void bump(ctr_t *c, uint64_t d) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d, memory_order_relaxed);
}

static uint64_t get(const ctr_t *c) {
  return atomic_load_explicit((ctr_t *)c, memory_order_relaxed);
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield");
#endif
}

/* Locks a queue mutex, spinning briefly first: its critical sections are a
 * few dozen instructions, far shorter than a futex sleep and wake. */
static void lock_q(prioq_t *q) {
  if (pthread_mutex_trylock(&q->mu) == 0) return;
  for (int i = 0; i < 64; i++) {
    cpu_relax();
    if (pthread_mutex_trylock(&q->mu) == 0) return;
  }
  pthread_mutex_lock(&q->mu);
}

/* Whether any queue of priority p holds a node (seq_cst loads: the
 * sleeper's side of the handshake). */
static int level_busy(es_sched_t *s, int p) {
  if (atomic_load(&s->q[p].n) > 0) return 1;
  for (int v = 0; v < s->n; v++)
    if (es__deque_size(&s->w[v]->dq[p]) > 0) return 1;
  return 0;
}

static int any_work(es_sched_t *s) {
  for (int p = 0; p < ES_SCHED_NPRIO; p++)
    if (level_busy(s, p)) return 1;
  return 0;
}

/* ---- task nodes ------------------------------------------------------------ */

/* Makes a slab of free nodes, linked first to *last; NULL when out of
 * memory. Takes no queue lock (page faults happen outside them). */
static es_task_t *slab_new(es_sched_t *s, es_task_t **last) {
  slab_t *sl = malloc(sizeof *sl);
  if (!sl) return NULL;
  for (int i = 0; i < SLAB_NODES; i++) {
    es_task_t *t = &sl->node[i];
    memset(t, 0, sizeof *t);
    atomic_init(&t->submit_tick, 0);
    atomic_init(&t->state, T_QUEUED);
    atomic_init(&t->refs, 0);
    atomic_init(&t->waiters, 0);
    t->sched = s;
    t->next = i + 1 < SLAB_NODES ? &sl->node[i + 1] : NULL;
  }
  pthread_mutex_lock(&s->slab_mu);
  sl->next = s->slabs;
  s->slabs = sl;
  pthread_mutex_unlock(&s->slab_mu);
  *last = &sl->node[SLAB_NODES - 1];
  return &sl->node[0];
}

/* A free node of q's pool. Called and returns with q->mu held, but drops it
 * while a new slab is made. NULL when out of memory. */
static es_task_t *pool_take_locked(es_sched_t *s, prioq_t *q) {
  if (!q->free) {
    pthread_mutex_unlock(&q->mu);
    es_task_t *last, *first = slab_new(s, &last);
    lock_q(q);
    if (first) {
      last->next = q->free;
      q->free = first;
    }
    if (!q->free) return NULL;
  }
  es_task_t *t = q->free;
  q->free = t->next;
  return t;
}

/* A node for a task of priority p submitted by worker w (NULL: another
 * thread, which then holds q[p].mu, see es_sched_submit). */
static es_task_t *node_alloc_worker(es_sched_t *s, worker_t *w, int p) {
  if (!w->cache[p]) { /* refill half a cache under one lock */
    prioq_t *q = &s->q[p];
    lock_q(q);
    for (int i = 0; i < CACHE_MAX / 2; i++) {
      es_task_t *x = pool_take_locked(s, q);
      if (!x) break;
      x->next = w->cache[p];
      w->cache[p] = x;
      w->ncache[p]++;
    }
    pthread_mutex_unlock(&q->mu);
    if (!w->cache[p]) return NULL;
  }
  es_task_t *t = w->cache[p];
  w->cache[p] = t->next;
  w->ncache[p]--;
  return t;
}

static void node_free(es_sched_t *s, worker_t *w, es_task_t *t) {
  int p = t->prio;
  prioq_t *q = &s->q[p];
  if (w) {
    t->next = w->cache[p];
    w->cache[p] = t;
    if (++w->ncache[p] <= CACHE_MAX) return;
    /* return half of the cache under one lock */
    es_task_t *first = w->cache[p], *last = first;
    for (int i = 1; i < CACHE_MAX / 2; i++) last = last->next;
    w->cache[p] = last->next;
    w->ncache[p] -= CACHE_MAX / 2;
    lock_q(q);
    last->next = q->free;
    q->free = first;
    pthread_mutex_unlock(&q->mu);
    return;
  }
  lock_q(q);
  t->next = q->free;
  q->free = t;
  pthread_mutex_unlock(&q->mu);
}

static void task_unref(es_sched_t *s, worker_t *w, es_task_t *t) {
  if (atomic_fetch_sub(&t->refs, 1) == 1) node_free(s, w, t);
}

/* ---- sleeping and waking ------------------------------------------------- */

/* Wakes one sleeping worker when there is one. */
static void wake(es_sched_t *s) {
  if (atomic_load(&s->nsleep) <= 0) return;
  pthread_mutex_lock(&s->sleep_mu);
  if (atomic_load(&s->nsleep) > 0) {
    atomic_fetch_sub(&s->nsleep, 1);
    s->tokens++;
    pthread_cond_signal(&s->sleep_cv);
  }
  pthread_mutex_unlock(&s->sleep_mu);
}

/* The end of a shutdown: the state is no longer RUNNING and every worker
 * waits with no wake pending. Then no task runs, so none can submit, and
 * every queue is empty (each worker saw so after announcing its sleep, and
 * any later push would have left a token); the workers may exit. Called
 * under sleep_mu whenever one of these conditions may have become true. */
static void check_done_locked(es_sched_t *s) {
  if (atomic_load(&s->state) != S_RUNNING && s->waiting == s->nthreads && s->tokens == 0) {
    s->done = 1;
    pthread_cond_broadcast(&s->sleep_cv);
  }
}

/* After announcing its sleep (nsleep + 1) and looking at the queues
 * (`work`), a worker sleeps until a waker hands it a token or the shutdown
 * is done, unless there was work. Either way its announcement is settled
 * exactly once: a waker claimed it and left a token, which the worker
 * takes, or the worker takes its count back. A worker that did not sleep
 * takes a token only when there are more tokens than waiting workers:
 * otherwise the token is for a sleeper, which must wake (this worker is
 * about to run other work, maybe long). Returns 1 when the worker should
 * exit. */
static int sleep_or_settle(es_sched_t *s, int work) {
  pthread_mutex_lock(&s->sleep_mu);
  if (work) {
    if (s->tokens > s->waiting)
      s->tokens--;
    else
      atomic_fetch_sub(&s->nsleep, 1);
  } else {
    s->waiting++;
    check_done_locked(s);
    while (s->tokens == 0 && !s->done) pthread_cond_wait(&s->sleep_cv, &s->sleep_mu);
    s->waiting--;
    if (s->tokens > 0)
      s->tokens--;
    else
      atomic_fetch_sub(&s->nsleep, 1); /* done */
  }
  int done = s->done;
  pthread_mutex_unlock(&s->sleep_mu);
  return done;
}

/* Moves a handle task to a final state and wakes its waiters. The store of
 * the state and the load of `waiters` are a store-then-load handshake with
 * es_task_wait: the store is an exchange, which no later load passes on any
 * implementation (qemu-user lets a load-acquire pass a store-release; see
 * deque.c). */
static void task_final(es_sched_t *s, es_task_t *t, int state) {
  (void)atomic_exchange(&t->state, state);
  if (atomic_load(&t->waiters) > 0) {
    size_t q = ((uintptr_t)t >> 6) % NWAITQ;
    pthread_mutex_lock(&s->waitq[q].mu);
    pthread_cond_broadcast(&s->waitq[q].cv);
    pthread_mutex_unlock(&s->waitq[q].mu);
  }
}

/* ---- queues ---------------------------------------------------------------- */

/* Appends t to its injection list; q->mu held. */
static void inj_append_locked(prioq_t *q, es_task_t *t) {
  t->next = NULL;
  if (q->tail)
    q->tail->next = t;
  else /* release: a peek (take_overdue) that sees t sees its initialized fields */
    atomic_store_explicit(&q->head, t, memory_order_release);
  q->tail = t;
  atomic_fetch_add(&q->n, 1); /* an RMW: see task_final */
}

static es_task_t *inj_pop(es_sched_t *s, int p) {
  prioq_t *q = &s->q[p];
  if (atomic_load_explicit(&q->n, memory_order_relaxed) <= 0) return NULL;
  lock_q(q);
  es_task_t *t = atomic_load_explicit(&q->head, memory_order_relaxed);
  if (t) {
    atomic_store_explicit(&q->head, t->next, memory_order_release);
    if (!t->next) q->tail = NULL;
    atomic_fetch_sub(&q->n, 1);
  }
  pthread_mutex_unlock(&q->mu);
  return t;
}

static es_task_t *steal_level(es_sched_t *s, worker_t *w, int p) {
  if (s->n < 2) return NULL;
  w->rng ^= w->rng << 13;
  w->rng ^= w->rng >> 17;
  w->rng ^= w->rng << 5;
  int v = (int)(w->rng % (uint32_t)s->n);
  for (int i = 0; i < s->n; i++, v = v + 1 == s->n ? 0 : v + 1) {
    if (v == w->id) continue;
    es__deque_t *d = &s->w[v]->dq[p];
    for (int tries = 0; tries < 4 && es__deque_size(d) > 0; tries++) {
      int lost;
      es_task_t *t = es__deque_steal(d, &lost);
      if (t) return t;
      if (!lost) break;
    }
  }
  return NULL;
}

static es_task_t *take_level(es_sched_t *s, worker_t *w, int p) {
  es_task_t *t = NULL;
  if (es__deque_size(&w->dq[p]) > 0) t = es__deque_pop(&w->dq[p]);
  if (!t) t = inj_pop(s, p);
  if (!t && (t = steal_level(s, w, p))) bump(&w->stolen, 1);
  return t;
}

/* Step 0 of the search: the oldest overdue queue head, or NULL. */
static es_task_t *take_overdue(es_sched_t *s, worker_t *w, uint32_t now) {
  int bp = -1, bv = -2; /* priority and queue (-1: injection, else worker) */
  int32_t bage = 0;
  for (int p = 1; p < ES_SCHED_NPRIO; p++) {
    if (!s->aging[p]) continue;
    for (int v = -1; v < s->n; v++) {
      es_task_t *h = v < 0 ? atomic_load_explicit(&s->q[p].head, memory_order_acquire)
                           : es__deque_peek(&s->w[v]->dq[p]);
      if (!h) continue;
      /* signed: a node recycled after `now` was read looks young, not old */
      int32_t age = (int32_t)(now - atomic_load_explicit(&h->submit_tick, memory_order_relaxed));
      if (age > (int32_t)s->aging[p] && age > bage) bage = age, bp = p, bv = v;
    }
  }
  if (bp < 0) return NULL;
  es_task_t *t = NULL;
  if (bv < 0) {
    t = inj_pop(s, bp);
  } else {
    for (int tries = 0; tries < 4 && !t; tries++) {
      int lost;
      t = es__deque_steal(&s->w[bv]->dq[bp], &lost);
      if (!lost) break;
    }
  }
  if (!t) return NULL;
  if (bv >= 0 && bv != w->id) bump(&w->stolen, 1);
  for (int q = 0; q < bp; q++)
    if (level_busy(s, q)) {
      bump(&w->aged, 1);
      break;
    }
  return t;
}

static es_task_t *pick(es_sched_t *s, worker_t *w) {
  if (s->scan_period) {
    uint32_t now = tick_of(s, w->clock_ns);
    if (now - w->last_scan >= s->scan_period) {
      w->last_scan = now;
      es_task_t *t = take_overdue(s, w, now);
      if (t) return t;
    }
  }
  for (int p = 0; p < ES_SCHED_NPRIO; p++) {
    es_task_t *t = take_level(s, w, p);
    if (t) return t;
  }
  return NULL;
}

/* ---- running --------------------------------------------------------------- */

static int lat_bucket(uint64_t v) {
  if (v < 8) return (int)v;
  int e = 63 - __builtin_clzll(v); /* >= 3 */
  int b = 8 + (e - 3) * 4 + (int)((v >> (e - 2)) & 3);
  return b < NBUCKETS ? b : NBUCKETS - 1;
}

static void bucket_range(int b, double *lo, double *hi) {
  if (b < 8) {
    *lo = b, *hi = b + 1;
    return;
  }
  int e = 3 + (b - 8) / 4, sub = (b - 8) % 4;
  *lo = (double)((uint64_t)(4 + sub) << (e - 2));
  *hi = (double)((uint64_t)(5 + sub) << (e - 2));
}

static void unlive(es_sched_t *s, int p) {
  if (s->max_queued[p]) atomic_fetch_sub_explicit(&s->q[p].live, 1, memory_order_relaxed);
}

/* Finishes a task that will never run (state CANCELLED or CANCELLED_DONE). */
static void finish_cancelled(es_sched_t *s, worker_t *w, es_task_t *t) {
  if (atomic_load(&t->state) == T_CANCELLED) {
    if (t->done) t->done(t->arg, ES_ECANCELED);
    task_final(s, t, T_CANCELLED_DONE);
  }
  task_unref(s, w, t);
}

static void exec(es_sched_t *s, worker_t *w, es_task_t *t) {
  int p = t->prio;
  int cancelling = atomic_load_explicit(&s->state, memory_order_relaxed) == S_CANCELLING;
  if (t->handle) {
    int expect = T_QUEUED;
    if (!atomic_compare_exchange_strong(&t->state, &expect, cancelling ? T_CANCELLED : T_RUNNING)) {
      atomic_fetch_sub_explicit(&s->q[p].tomb, 1, memory_order_relaxed);
      finish_cancelled(s, w, t); /* es_task_cancel got there first */
      return;
    }
    if (cancelling) {
      unlive(s, p);
      atomic_fetch_add(&s->cancelled, 1);
      finish_cancelled(s, w, t);
      return;
    }
  } else if (cancelling) {
    unlive(s, p);
    atomic_fetch_add(&s->cancelled, 1);
    if (t->done) t->done(t->arg, ES_ECANCELED);
    node_free(s, w, t);
    return;
  }
  unlive(s, p);

  uint64_t lat = w->clock_ns > t->submit_ns ? w->clock_ns - t->submit_ns : 0;
  bump(&w->lat_n[p], 1);
  bump(&w->lat_sum[p], lat);
  if (lat > get(&w->lat_max[p])) atomic_store_explicit(&w->lat_max[p], lat, memory_order_relaxed);
  bump(&w->hist[p][lat_bucket(lat)], 1);

  t->fn(t->arg);
  bump(&w->executed, 1);
  if (t->done) t->done(t->arg, 0);
  if (t->handle) {
    task_final(s, t, T_DONE);
    task_unref(s, w, t);
  } else {
    node_free(s, w, t);
  }
}

static void pin_self(worker_t *w, const es_cpuset_t *cpus, int pin_each) {
  int n = es_cpuset_count(cpus);
  if (n == 0) return;
  es_cpuset_t one;
  const es_cpuset_t *mine = cpus;
  if (pin_each) {
    es_cpuset_clear(&one);
    es_cpuset_add(&one, es_cpuset_nth(cpus, w->id % n));
    mine = &one;
  }
  es_error_t err = {0};
  w->pin_rc = es_affinity_pin_thread(mine, &err);
  if (w->pin_rc) {
    snprintf(w->pin_msg, sizeof w->pin_msg, "%s", err.msg);
  } else {
    es_cpuset_t eff;
    if (es_affinity_get(&eff, NULL) == 0) es_cpuset_format(&eff, w->pin_eff, sizeof w->pin_eff);
  }
}

typedef struct {
  worker_t *w;
  const es_sched_params_t *p;
} start_arg_t;

static void *worker_main(void *arg) {
  start_arg_t *a = arg;
  worker_t *w = a->w;
  es_sched_t *s = w->s;
  es__self = w;
  pin_self(w, &a->p->cpus, a->p->pin_each);
  pthread_mutex_lock(&s->life_mu); /* `a` is invalid once es_sched_new sees us */
  s->started++;
  pthread_cond_broadcast(&s->life_cv);
  pthread_mutex_unlock(&s->life_mu);

  uint64_t idle_since = 0;
  for (;;) {
    w->clock_ns = now_ns();
    es_task_t *t = pick(s, w);
    if (t) {
      exec(s, w, t);
      idle_since = 0;
      continue;
    }
    if (!idle_since) idle_since = w->clock_ns;
    if (w->clock_ns - idle_since < s->spin_ns) {
      for (int i = 0; i < 32 && !any_work(s); i++) cpu_relax();
      sched_yield(); /* on a busy machine, let a submitter on this cpu run */
      continue;
    }
    /* sleep: announce, then recheck (the handshake with submitters), wait */
    atomic_fetch_add(&s->nsleep, 1);
    int work = any_work(s);
    if (sleep_or_settle(s, work)) break; /* shut down: invariants 1, 2 */
    if (work) sched_yield();             /* someone else is taking it */
    idle_since = 0;
  }
  es__self = NULL;
  return NULL;
}

/* ---- public ---------------------------------------------------------------- */

es_sched_params_t es_sched_default_params(void) {
  es_sched_params_t p;
  memset(&p, 0, sizeof p);
  p.aging_us[ES_SCHED_HIGH] = 5000;
  p.aging_us[ES_SCHED_NORMAL] = 20000;
  p.aging_us[ES_SCHED_LOW] = 50000;
  p.spin_us = 50;
  return p;
}

static void sched_destroy(es_sched_t *s) {
  for (int i = 0; i < s->n; i++) {
    worker_t *w = s->w[i];
    if (!w) continue;
    for (int p = 0; p < ES_SCHED_NPRIO; p++) es__deque_destroy(&w->dq[p]);
    free(w);
  }
  free(s->w);
  while (s->slabs) {
    slab_t *next = s->slabs->next;
    free(s->slabs);
    s->slabs = next;
  }
  for (int p = 0; p < ES_SCHED_NPRIO; p++) pthread_mutex_destroy(&s->q[p].mu);
  pthread_mutex_destroy(&s->slab_mu);
  for (int q = 0; q < NWAITQ; q++) {
    pthread_mutex_destroy(&s->waitq[q].mu);
    pthread_cond_destroy(&s->waitq[q].cv);
  }
  pthread_mutex_destroy(&s->sleep_mu);
  pthread_cond_destroy(&s->sleep_cv);
  pthread_mutex_destroy(&s->life_mu);
  pthread_cond_destroy(&s->life_cv);
  free(s);
}

/* Joins the workers once the state has left RUNNING. */
static void join_all(es_sched_t *s) {
  pthread_mutex_lock(&s->sleep_mu);
  check_done_locked(s); /* when every worker already sleeps */
  pthread_mutex_unlock(&s->sleep_mu);
  for (int i = 0; i < s->nthreads; i++) pthread_join(s->w[i]->thread, NULL);
}

static void make_note(es_sched_t *s, const es_sched_params_t *p) {
  char set[64];
  if (!es_cpuset_count(&p->cpus)) {
    snprintf(s->note, sizeof s->note, "not pinned (no cpus requested)");
    return;
  }
  es_cpuset_format(&p->cpus, set, sizeof set);
  int failed = 0;
  const worker_t *first = NULL;
  for (int i = 0; i < s->n; i++) {
    if (s->w[i]->pin_rc == 0)
      s->pinned++;
    else if (!failed++)
      first = s->w[i];
  }
  const char *eff = s->w[0]->pin_eff;
  if (failed)
    snprintf(s->log_msg, sizeof s->log_msg, "%d of %d workers run unpinned: %s", failed, s->n,
             first->pin_msg);
  else if (p->pin_each)
    snprintf(s->log_msg, sizeof s->log_msg, "%d workers pinned one per cpu of %s", s->n, set);
  else if (eff[0] && strcmp(eff, set) != 0)
    snprintf(s->log_msg, sizeof s->log_msg, "%d workers pinned to cpus %s (effective %s)", s->n,
             set, eff);
  else
    snprintf(s->log_msg, sizeof s->log_msg, "%d workers pinned to cpus %s", s->n, set);
  /* the note is the same text, cut to its 160 bytes */
  memcpy(s->note, s->log_msg, sizeof s->note - 1);
  s->note[sizeof s->note - 1] = '\0';
}

es_sched_t *es_sched_new(const es_sched_params_t *params, es_error_t *err) {
  es_sched_params_t p = params ? *params : es_sched_default_params();
  if (p.nworkers < 0 || p.nworkers > MAX_WORKERS || p.spin_us < 0) {
    es__fail(err, ES_EINVAL, -1, "sched: nworkers must be 0..%d and spin_us >= 0 (got %d, %d)",
             MAX_WORKERS, p.nworkers, p.spin_us);
    return NULL;
  }
  for (int i = 0; i < ES_SCHED_NPRIO; i++)
    if (p.aging_us[i] < 0 || p.max_queued[i] < 0) {
      es__fail(err, ES_EINVAL, -1,
               "sched: aging_us and max_queued must be >= 0 (priority %d: %d, %d)", i,
               p.aging_us[i], p.max_queued[i]);
      return NULL;
    }
  if (p.nworkers == 0) {
    es_cpuset_t allowed;
    p.nworkers = es_cpuset_count(&p.cpus);
    if (!p.nworkers && es_affinity_get(&allowed, NULL) == 0) p.nworkers = es_cpuset_count(&allowed);
    if (!p.nworkers) p.nworkers = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (p.nworkers < 1) p.nworkers = 1;
    if (p.nworkers > MAX_WORKERS) p.nworkers = MAX_WORKERS;
  }

  es_sched_t *s = aligned_alloc(64, (sizeof *s + 63) / 64 * 64); /* prioq_t is aligned */
  if (!s) goto nomem;
  memset(s, 0, sizeof *s);
  s->w = calloc((size_t)p.nworkers, sizeof *s->w);
  if (!s->w) {
    free(s);
    goto nomem;
  }
  s->n = p.nworkers;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  for (int i = 0; i < ES_SCHED_NPRIO; i++) {
    pthread_mutex_init(&s->q[i].mu, NULL);
    atomic_init(&s->q[i].head, NULL);
    atomic_init(&s->q[i].n, 0);
    atomic_init(&s->q[i].live, 0);
    atomic_init(&s->q[i].tomb, 0);
    s->max_queued[i] = p.max_queued[i];
    s->aging[i] = i == 0 ? 0 : (uint32_t)(((uint64_t)p.aging_us[i] * 1000) >> 10);
    if (p.aging_us[i] > 0 && s->aging[i] == 0) s->aging[i] = 1;
    if (s->aging[i] && (!s->scan_period || s->aging[i] / 8 < s->scan_period))
      s->scan_period = s->aging[i] / 8 ? s->aging[i] / 8 : 1;
  }
  for (int q = 0; q < NWAITQ; q++) {
    pthread_mutex_init(&s->waitq[q].mu, NULL);
    pthread_cond_init(&s->waitq[q].cv, &ca);
  }
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&s->sleep_mu, NULL);
  pthread_cond_init(&s->sleep_cv, NULL);
  pthread_mutex_init(&s->slab_mu, NULL);
  pthread_mutex_init(&s->life_mu, NULL);
  pthread_cond_init(&s->life_cv, NULL);
  atomic_init(&s->state, S_RUNNING);
  atomic_init(&s->nsleep, 0);
  atomic_init(&s->cancelled, 0);
  atomic_init(&s->rejected, 0);
  s->spin_ns = (uint64_t)p.spin_us * 1000;
  s->epoch_ns = now_ns();

  for (int i = 0; i < s->n; i++) {
    /* 64-byte aligned: the deques' hot words get cache lines of their own */
    worker_t *w = aligned_alloc(64, (sizeof *w + 63) / 64 * 64);
    if (!w) goto fail_nomem;
    memset(w, 0, sizeof *w);
    s->w[i] = w;
    w->s = s;
    w->id = i;
    w->rng = 0x9e3779b9u * (uint32_t)(i + 1);
    for (int q = 0; q < ES_SCHED_NPRIO; q++) {
      if (es__deque_init(&w->dq[q], DEQUE_CAP) != 0) {
        for (int r = 0; r < q; r++) es__deque_destroy(&w->dq[r]);
        free(w);
        s->w[i] = NULL;
        goto fail_nomem;
      }
      atomic_init(&w->lat_n[q], 0);
      atomic_init(&w->lat_sum[q], 0);
      atomic_init(&w->lat_max[q], 0);
      for (int b = 0; b < NBUCKETS; b++) atomic_init(&w->hist[q][b], 0);
    }
    atomic_init(&w->executed, 0);
    atomic_init(&w->stolen, 0);
    atomic_init(&w->aged, 0);
  }

  start_arg_t a = {NULL, &p};
  start_arg_t *args = malloc((size_t)s->n * sizeof *args);
  if (!args) goto fail_nomem;
  int started = 0;
  for (; started < s->n; started++) {
    args[started] = a;
    args[started].w = s->w[started];
    int rc = pthread_create(&s->w[started]->thread, NULL, worker_main, &args[started]);
    if (rc != 0) {
      es__fail(err, ES_ENOMEM, -1, "sched: could not start worker thread %d of %d: %s", started + 1,
               s->n, strerror(rc));
      break;
    }
  }
  pthread_mutex_lock(&s->life_mu);
  while (s->started < started) pthread_cond_wait(&s->life_cv, &s->life_mu);
  pthread_mutex_unlock(&s->life_mu);
  free(args);
  pthread_mutex_lock(&s->sleep_mu);
  s->nthreads = started;
  pthread_mutex_unlock(&s->sleep_mu);
  if (started < s->n) {
    atomic_store(&s->state, S_CANCELLING);
    join_all(s);
    sched_destroy(s);
    return NULL;
  }
  make_note(s, &p);
  if (p.log && es_cpuset_count(&p.cpus)) {
    char msg[340];
    snprintf(msg, sizeof msg, "sched: %s", s->log_msg);
    p.log(p.log_ud, msg);
  }
  return s;

fail_nomem:
  sched_destroy(s);
nomem:
  es__fail(err, ES_ENOMEM, -1, "sched: out of memory creating the scheduler");
  return NULL;
}

static void task_fill(es_sched_t *s, es_task_t *t, es_task_fn fn, void *arg, int prio,
                      const es_task_opts_t *opts, uint64_t now) {
  t->fn = fn;
  t->arg = arg;
  t->done = opts ? opts->done : NULL;
  t->prio = prio;
  t->handle = opts && opts->handle;
  t->submit_ns = now;
  atomic_store_explicit(&t->submit_tick, tick_of(s, now), memory_order_relaxed);
  if (t->handle) {
    atomic_store_explicit(&t->state, T_QUEUED, memory_order_relaxed);
    atomic_store_explicit(&t->refs, 2, memory_order_relaxed);
  }
}

int es_sched_submit(es_sched_t *s, es_task_fn fn, void *arg, int prio, const es_task_opts_t *opts) {
  es_task_t **hp = opts ? opts->handle : NULL;
  if (hp) *hp = NULL;
  if (!s || !fn || prio < 0 || prio >= ES_SCHED_NPRIO) return ES_EINVAL;
  worker_t *w = self_of(s);
  int st = atomic_load_explicit(&s->state, memory_order_relaxed);
  if (st != S_RUNNING && !(st == S_DRAINING && w)) return ES_ESTATE;
  prioq_t *q = &s->q[prio];
  if (s->max_queued[prio] &&
      atomic_fetch_add_explicit(&q->live, 1, memory_order_relaxed) >= s->max_queued[prio]) {
    atomic_fetch_sub_explicit(&q->live, 1, memory_order_relaxed);
    atomic_fetch_add(&s->rejected, 1);
    return ES_EFULL;
  }
  uint64_t now = now_ns();
  es_task_t *t;
  int rc = 0;
  if (w) { /* from a task: onto this worker's deque, no lock */
    t = node_alloc_worker(s, w, prio);
    if (!t) {
      rc = ES_ENOMEM;
    } else {
      task_fill(s, t, fn, arg, prio, opts, now);
      if ((rc = es__deque_push(&w->dq[prio], t))) node_free(s, w, t);
    }
  } else { /* from outside: node and injection list under one lock */
    lock_q(q);
    if (!(t = pool_take_locked(s, q))) {
      rc = ES_ENOMEM;
    } else if (atomic_load_explicit(&s->state, memory_order_relaxed) != S_RUNNING) {
      t->next = q->free; /* invariant 2: checked under the lock, after any slab */
      q->free = t;
      rc = ES_ESTATE;
    } else {
      task_fill(s, t, fn, arg, prio, opts, now);
      inj_append_locked(q, t);
    }
    pthread_mutex_unlock(&q->mu);
  }
  if (rc) {
    unlive(s, prio);
    return rc;
  }
  wake(s);
  if (hp) *hp = t;
  return 0;
}

int es_task_wait(es_task_t *t, int timeout_ms) {
  int st = atomic_load(&t->state);
  if (st == T_DONE) return 0;
  if (st == T_CANCELLED_DONE) return ES_ECANCELED;
  if (timeout_ms == 0) return ES_ETIMEDOUT;
  es_sched_t *s = t->sched;
  size_t q = ((uintptr_t)t >> 6) % NWAITQ;
  struct timespec dl;
  if (timeout_ms > 0) {
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&s->waitq[q].mu);
  atomic_fetch_add(&t->waiters, 1);
  for (;;) {
    st = atomic_load(&t->state);
    if (st == T_DONE || st == T_CANCELLED_DONE) break;
    if (timeout_ms < 0) {
      pthread_cond_wait(&s->waitq[q].cv, &s->waitq[q].mu);
    } else if (pthread_cond_timedwait(&s->waitq[q].cv, &s->waitq[q].mu, &dl) == ETIMEDOUT) {
      st = atomic_load(&t->state);
      break;
    }
  }
  atomic_fetch_sub(&t->waiters, 1);
  pthread_mutex_unlock(&s->waitq[q].mu);
  return st == T_DONE ? 0 : st == T_CANCELLED_DONE ? ES_ECANCELED : ES_ETIMEDOUT;
}

int es_task_cancel(es_task_t *t) {
  es_sched_t *s = t->sched;
  int expect = T_QUEUED;
  if (!atomic_compare_exchange_strong(&t->state, &expect, T_CANCELLED)) return ES_ESTATE;
  unlive(s, t->prio);
  atomic_fetch_add_explicit(&s->q[t->prio].tomb, 1, memory_order_relaxed);
  atomic_fetch_add(&s->cancelled, 1);
  if (!t->done)
    task_final(s, t, T_CANCELLED_DONE); /* nothing left to run: waiters wake now */
  else
    wake(s); /* a worker removes the node and runs the callback */
  return 0;
}

void es_task_release(es_task_t *t) {
  if (!t) return;
  task_unref(t->sched, self_of(t->sched), t);
}

int es_sched_shutdown(es_sched_t *s, int mode) {
  if (!s || (mode != ES_SCHED_DRAIN && mode != ES_SCHED_CANCEL)) return ES_EINVAL;
  if (self_of(s)) return ES_ESTATE;
  pthread_mutex_lock(&s->life_mu);
  int st = atomic_load(&s->state);
  if (st == S_RUNNING) { /* under every injection mutex: invariant 2 */
    for (int p = 0; p < ES_SCHED_NPRIO; p++) pthread_mutex_lock(&s->q[p].mu);
    atomic_store(&s->state, mode == ES_SCHED_DRAIN ? S_DRAINING : S_CANCELLING);
    for (int p = ES_SCHED_NPRIO; p-- > 0;) pthread_mutex_unlock(&s->q[p].mu);
  }
  pthread_mutex_unlock(&s->life_mu);
  if (st != S_RUNNING) return ES_ESTATE;
  join_all(s);
  assert(!any_work(s));
  return 0;
}

void es_sched_free(es_sched_t *s) {
  if (!s) return;
  assert(!self_of(s) && "es_sched_free called from one of its own workers");
  if (atomic_load(&s->state) == S_RUNNING) es_sched_shutdown(s, ES_SCHED_CANCEL);
  sched_destroy(s);
}

static void fill_latency(es_sched_latency_t *out, uint64_t n, uint64_t sum, uint64_t max,
                         const uint64_t *hist) {
  memset(out, 0, sizeof *out);
  out->count = n;
  if (!n) return;
  out->mean_us = (double)sum / (double)n / 1000.0;
  out->max_us = (double)max / 1000.0;
  uint64_t total = 0;
  for (int b = 0; b < NBUCKETS; b++) total += hist[b];
  const double qs[2] = {0.50, 0.99};
  double *res[2] = {&out->p50_us, &out->p99_us};
  for (int k = 0; k < 2; k++) {
    uint64_t rank = (uint64_t)(qs[k] * (double)total + 0.999999), acc = 0;
    if (rank < 1) rank = 1;
    for (int b = 0; b < NBUCKETS; b++) {
      acc += hist[b];
      if (acc >= rank) {
        double lo, hi;
        bucket_range(b, &lo, &hi);
        double v = (lo + hi) / 2.0;
        if (v > (double)max) v = (double)max;
        *res[k] = v / 1000.0;
        break;
      }
    }
  }
}

void es_sched_stats(const es_sched_t *cs, es_sched_stats_t *out) {
  es_sched_t *s = (es_sched_t *)cs; /* counters are atomics: reading writes nothing */
  memset(out, 0, sizeof *out);
  out->nworkers = s->n;
  for (int p = 0; p < ES_SCHED_NPRIO; p++) {
    long q = atomic_load(&s->q[p].n) - atomic_load(&s->q[p].tomb);
    for (int i = 0; i < s->n; i++) q += (long)es__deque_size(&s->w[i]->dq[p]);
    out->queued[p] = q > 0 ? q : 0;
  }
  out->cancelled = get(&s->cancelled);
  out->rejected = get(&s->rejected);
  uint64_t all_hist[NBUCKETS] = {0}, all_n = 0, all_sum = 0, all_max = 0;
  for (int p = 0; p < ES_SCHED_NPRIO; p++) {
    uint64_t hist[NBUCKETS] = {0}, n = 0, sum = 0, max = 0;
    for (int i = 0; i < s->n; i++) {
      const worker_t *w = s->w[i];
      n += get(&w->lat_n[p]);
      sum += get(&w->lat_sum[p]);
      if (get(&w->lat_max[p]) > max) max = get(&w->lat_max[p]);
      for (int b = 0; b < NBUCKETS; b++) hist[b] += get(&w->hist[p][b]);
    }
    fill_latency(&out->latency[p], n, sum, max, hist);
    all_n += n, all_sum += sum;
    if (max > all_max) all_max = max;
    for (int b = 0; b < NBUCKETS; b++) all_hist[b] += hist[b];
  }
  fill_latency(&out->latency_all, all_n, all_sum, all_max, all_hist);
  for (int i = 0; i < s->n; i++) {
    out->executed += get(&s->w[i]->executed);
    out->stolen += get(&s->w[i]->stolen);
    out->aged += get(&s->w[i]->aged);
  }
  out->pinned = s->pinned;
  snprintf(out->affinity_note, sizeof out->affinity_note, "%s", s->note);
}

int es_sched_worker(const es_sched_t *s) {
  worker_t *w = self_of(s);
  return w ? w->id : -1;
}
