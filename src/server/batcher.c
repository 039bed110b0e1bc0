/*
 * batcher.c - where a request waits: one queue per model, four priorities,
 * drained in batches by tasks on the runtime's scheduler.
 *
 * submit() appends the job to its priority's FIFO and, when fewer drain
 * tasks are active than the scheduler has workers, schedules one more at the
 * job's priority. A drain task takes jobs most urgent first until the batch
 * holds max_batch items (optionally waiting up to max_queue_delay for it to
 * fill), drops the jobs whose deadline has passed (504) or whose client has
 * gone (cancelled), runs the rest through the backend in one call per model
 * version, completes them, and loops until the queue is empty.
 *
 * Invariants:
 *  1. total == the sum of queued[] == the jobs linked in head[]..tail[].
 *  2. active counts drain tasks submitted and not yet returned; a task
 *     returns only after it saw total == 0 under the lock, so a queued job
 *     always has a task that will take it.
 *  3. Every job submitted successfully completes exactly once
 *     (es__job_complete), with status 0, ES_ETIMEDOUT, ES_ECANCELED or the
 *     backend's error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server_impl.h"

void es__batcher_init(es_batcher_t *b) {
  memset(b, 0, sizeof *b);
  pthread_mutex_init(&b->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&b->more, &ca);
  pthread_condattr_destroy(&ca);
}

void es__batcher_destroy(es_batcher_t *b) {
  pthread_mutex_destroy(&b->lock);
  pthread_cond_destroy(&b->more);
}

static es_job_t *pop(es_batcher_t *b) {
  for (int p = 0; p < ES_SCHED_NPRIO; p++) {
    es_job_t *j = b->head[p];
    if (!j) continue;
    b->head[p] = j->next;
    if (!b->head[p]) b->tail[p] = NULL;
    j->next = NULL;
    b->queued[p]--;
    b->total--;
    return j;
  }
  return NULL;
}

static es_job_t *peek(es_batcher_t *b) {
  for (int p = 0; p < ES_SCHED_NPRIO; p++)
    if (b->head[p]) return b->head[p];
  return NULL;
}

/* Whether the client of job j has closed its connection (a peek, no read). */
static int client_gone(es_job_t *j) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(j->req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!ci || ci->connect_fd < 0) return 0;
  char c;
  ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return 1;
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* Runs buf[0..n) (copies of the items refs[] point to, all of version sv)
 * and copies the results back. */
static void flush(es_mstate_t *ms, es_served_t *sv, es_infer_item_t *buf, es_infer_item_t **refs,
                  es_job_t **owner, int n) {
  for (int k = 0; k < n; k++) buf[k] = *refs[k];
  es_error_t err = {0};
  int64_t t0 = es__now_us();
  int rc = sv->backend->infer(sv->inst, buf, (size_t)n, &err);
  int64_t t1 = es__now_us();
  atomic_fetch_add(&ms->batches, 1);
  atomic_fetch_add(&ms->items, (uint64_t)n);
  /* per-item cost, an EWMA (1/8) in 1/16 us, for the inline decision */
  uint64_t per = (uint64_t)(t1 - t0) * 16 / (uint64_t)n;
  uint64_t old = atomic_load_explicit(&ms->item_cost, memory_order_relaxed);
  atomic_store_explicit(&ms->item_cost, old ? old - old / 8 + per / 8 : per, memory_order_relaxed);
  es_mseries_t ser;
  es__series(ms, sv->version, &ser);
  if (ser.exec) es_counter_inc(ser.exec);
  if (ser.count) es_counter_add(ser.count, n);
  if (ser.infer_dur) es_histo_observe(ser.infer_dur, (double)(t1 - t0) / 1e6);
  if (ms->lat) es_latmon_record(ms->lat, ES_LAT_INFERENCE, (uint64_t)(t1 - t0), (uint64_t)t1);
  for (int k = 0; k < n; k++) {
    refs[k]->n = rc ? 0 : buf[k].n;
    refs[k]->status = rc ? rc : buf[k].status;
    if (rc && !owner[k]->status) owner[k]->status = rc, owner[k]->err = err;
  }
}

/* Runs jobs[0..njobs). `queued`: they waited in the queue, so their
 * deadlines and clients are checked first (an inline job was read from its
 * connection a moment ago on this thread: a peek would only cost a system
 * call per request, EAGAIN). */
static void run_batch(es_mstate_t *ms, es_job_t **jobs, int njobs, es_infer_item_t *buf,
                      es_infer_item_t **refs, es_job_t **owner, int cap, int queued) {
  int64_t now = es__now_us();
  /* drop what can no longer be served */
  int live = 0;
  for (int i = 0; i < njobs; i++) {
    es_job_t *j = jobs[i];
    j->start_us = now;
    if (j->deadline_us && now > j->deadline_us)
      j->status = ES_ETIMEDOUT;
    else if (queued && client_gone(j))
      j->status = ES_ECANCELED;
    if (j->status) {
      j->done_us = now;
      es__job_complete(j);
    } else {
      jobs[live++] = j;
    }
  }
  /* run the rest in calls of at most `cap` items of one version each */
  int n = 0;
  es_served_t *sv = NULL;
  for (int i = 0; i < live; i++) {
    es_job_t *j = jobs[i];
    for (size_t it = 0; it < j->nitems; it++) {
      if (j->skip && j->skip[it]) continue; /* answered from the cache */
      if (n == cap || (n && j->served != sv)) {
        flush(ms, sv, buf, refs, owner, n);
        n = 0;
      }
      sv = j->served;
      refs[n] = &j->items[it];
      owner[n] = j;
      n++;
    }
  }
  if (n) flush(ms, sv, buf, refs, owner, n);
  now = es__now_us();
  for (int i = 0; i < live; i++) {
    jobs[i]->done_us = now;
    es__job_complete(jobs[i]);
  }
}

/* Stack buffers a drain starts with, and falls back to when a larger
 * max_batch cannot be allocated: out of memory makes batches smaller, never
 * strands a queued job. */
#define DRAIN_STACK 16

static void drain(void *arg) {
  es_mstate_t *ms = arg;
  es_batcher_t *b = &ms->b;
  es_infer_item_t sbuf[DRAIN_STACK], *srefs[DRAIN_STACK];
  es_job_t *sowner[DRAIN_STACK], *sjobs[DRAIN_STACK];
  int cap = DRAIN_STACK, jcap = DRAIN_STACK;
  es_infer_item_t *buf = sbuf, **refs = srefs;
  es_job_t **owner = sowner, **jobs = sjobs;
  for (;;) {
    pthread_mutex_lock(&b->lock);
    es_job_t *head = peek(b);
    if (!head) {
      b->active--;
      pthread_mutex_unlock(&b->lock);
      break;
    }
    const es_model_conf_t *conf = head->served->conf;
    int max_batch = conf->max_batch > 0 ? conf->max_batch : 1;
    int64_t delay = conf->max_queue_delay_us;
    if (delay > 0) { /* wait for the batch to fill, up to the oldest job's delay */
      for (;;) {
        int items = 0;
        for (int p = 0; p < ES_SCHED_NPRIO; p++)
          for (es_job_t *j = b->head[p]; j && items < max_batch; j = j->next)
            items += (int)j->nitems;
        es_job_t *h = peek(b);
        if (!h || items >= max_batch || atomic_load(&ms->srv->stopping)) break;
        int64_t until = h->enq_us + delay;
        if (es__now_us() >= until) break;
        struct timespec ts = {.tv_sec = (time_t)(until / 1000000),
                              .tv_nsec = (long)(until % 1000000) * 1000};
        pthread_cond_timedwait(&b->more, &b->lock, &ts);
      }
    }
    if (max_batch > cap) {
      es_infer_item_t *nb = malloc((size_t)max_batch * sizeof *nb);
      es_infer_item_t **nr = malloc((size_t)max_batch * sizeof *nr);
      es_job_t **no = malloc((size_t)max_batch * sizeof *no);
      if (nb && nr && no) {
        if (buf != sbuf) free(buf), free(refs), free(owner);
        buf = nb, refs = nr, owner = no, cap = max_batch;
      } else {
        free(nb), free(nr), free(no);
      }
    }
    if (max_batch > cap) max_batch = cap; /* out of memory: smaller batches */
    int nj = 0, items = 0;
    while (items < max_batch) {
      es_job_t *h = peek(b);
      if (!h || (nj > 0 && items + (int)h->nitems > max_batch)) break;
      if (nj == jcap) {
        es_job_t **nj2 = malloc((size_t)jcap * 2 * sizeof *nj2);
        if (!nj2) break; /* nj > 0 here: this batch is just smaller */
        memcpy(nj2, jobs, (size_t)jcap * sizeof *nj2);
        if (jobs != sjobs) free(jobs);
        jobs = nj2, jcap *= 2;
      }
      jobs[nj++] = pop(b);
      items += (int)h->nitems;
    }
    pthread_mutex_unlock(&b->lock);
    if (nj == 0) continue;
    run_batch(ms, jobs, nj, buf, refs, owner, cap, 1);
  }
  if (buf != sbuf) free(buf), free(refs), free(owner);
  if (jobs != sjobs) free(jobs);
}

int es__batcher_run_inline(es_mstate_t *ms, es_job_t *job) {
  es_server_t *s = ms->srv;
  es_batcher_t *b = &ms->b;
  const es_model_conf_t *conf = job->served->conf;
  uint64_t cost = atomic_load_explicit(&ms->item_cost, memory_order_relaxed);
  if (s->inline_max_us <= 0 || conf->max_queue_delay_us > 0 || cost == 0 ||
      cost * job->nitems / 16 > (uint64_t)s->inline_max_us || job->nitems > 8 ||
      (int)job->nitems > conf->max_batch)
    return 0;
  pthread_mutex_lock(&b->lock);
  if (b->total || b->active >= s->plan.inference_threads || atomic_load(&s->stopping)) {
    pthread_mutex_unlock(&b->lock);
    return 0;
  }
  b->active++; /* counts against the inference threads like a drain task */
  pthread_mutex_unlock(&b->lock);
  es_infer_item_t buf[8], *refs[8];
  es_job_t *owner[8], *jobs[1] = {job};
  run_batch(ms, jobs, 1, buf, refs, owner, 8, 0);
  /* jobs queued meanwhile saw this slot taken: give them a task */
  int spawn = 0, prio = ES_SCHED_LOW;
  pthread_mutex_lock(&b->lock);
  b->active--;
  es_job_t *h = peek(b);
  if (h && b->active < s->plan.inference_threads) b->active++, spawn = 1, prio = h->prio;
  pthread_mutex_unlock(&b->lock);
  if (spawn && es_sched_submit(s->sched, drain, ms, prio, NULL)) {
    /* no task: drain here rather than strand them */
    drain(ms);
  }
  return 1;
}

int es__batcher_submit(es_mstate_t *ms, es_job_t *job) {
  es_server_t *s = ms->srv;
  es_batcher_t *b = &ms->b;
  int limit = job->served->conf->queue_limit;
  int spawn = 0;
  pthread_mutex_lock(&b->lock);
  if (atomic_load(&s->stopping)) {
    pthread_mutex_unlock(&b->lock);
    return ES_ESTATE;
  }
  if (limit > 0 && b->total >= limit) {
    pthread_mutex_unlock(&b->lock);
    return ES_EFULL;
  }
  int p = job->prio;
  job->next = NULL;
  if (b->tail[p])
    b->tail[p]->next = job;
  else
    b->head[p] = job;
  b->tail[p] = job;
  b->queued[p]++;
  b->total++;
  if (b->active < s->plan.inference_threads) b->active++, spawn = 1;
  pthread_cond_signal(&b->more);
  pthread_mutex_unlock(&b->lock);
  if (!spawn) return 0;
  int rc = es_sched_submit(s->sched, drain, ms, job->prio, NULL);
  if (rc == 0) return 0;
  /* no task: take the job back unless another task already holds it */
  pthread_mutex_lock(&b->lock);
  b->active--;
  int found = 0;
  es_job_t **pp = &b->head[p], *prev = NULL;
  for (; *pp; prev = *pp, pp = &(*pp)->next)
    if (*pp == job) {
      *pp = job->next;
      if (b->tail[p] == job) b->tail[p] = prev;
      b->queued[p]--;
      b->total--;
      found = 1;
      break;
    }
  pthread_mutex_unlock(&b->lock);
  return found ? rc : 0;
}
