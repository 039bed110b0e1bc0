/* test_pool.c - object pools: reuse, statistics, caps, trimming, threads, poisoning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>

#include "edgeserve/pool.h"

#include "poison.h" /* ES__ASAN: built with AddressSanitizer */

static es_pool_t *new_pool(size_t size, size_t per_chunk, size_t cache, uint64_t max, double idle) {
  es_pool_params_t pp = es_pool_default_params(size);
  pp.objs_per_chunk = per_chunk;
  pp.cache_size = cache;
  pp.max_objects = max;
  pp.idle_trim_sec = idle;
  es_error_t err;
  es_pool_t *p = es_pool_new(&pp, &err);
  assert_non_null(p);
  return p;
}

static es_pool_stats_t stats(es_pool_t *p) {
  es_pool_stats_t s;
  es_pool_stats(p, &s);
  return s;
}

static void run_threads(int n, void *(*fn)(void *), void *arg) {
  pthread_t t[128];
  for (int i = 0; i < n; i++) assert_int_equal(pthread_create(&t[i], NULL, fn, arg), 0);
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
}

/* ---- single thread ----------------------------------------------------------------------------
 */

static void default_params_size_chunks_and_caches_by_object_size(void **state) {
  (void)state;
  es_pool_params_t small = es_pool_default_params(200);
  assert_int_equal(small.align, _Alignof(max_align_t));
  size_t stride = (200 + small.align - 1) / small.align * small.align;
  assert_int_equal(small.objs_per_chunk, 65536 / stride);
  assert_int_equal(small.cache_size, 64);
  es_pool_params_t big = es_pool_default_params(20000);
  assert_int_equal(big.objs_per_chunk, 3);
  assert_int_equal(big.cache_size, 0); /* objects over 16 KiB have no thread cache */
  assert_int_equal(big.max_objects, 0);
  assert_true(big.idle_trim_sec > 0);
}

static void new_rejects_invalid_parameters(void **state) {
  (void)state;
  es_error_t err;
  es_pool_params_t pp = es_pool_default_params(0);
  assert_null(es_pool_new(&pp, &err));
  assert_int_equal(err.code, ES_EINVAL);
  pp = es_pool_default_params(32);
  pp.align = 24;
  assert_null(es_pool_new(&pp, &err));
  assert_int_equal(err.code, ES_EINVAL);
  pp = es_pool_default_params(32);
  pp.objs_per_chunk = 0;
  assert_null(es_pool_new(&pp, &err));
  assert_int_equal(err.code, ES_EINVAL);
  pp = es_pool_default_params(32);
  pp.cache_size = 100000;
  assert_null(es_pool_new(&pp, &err));
  assert_int_equal(err.code, ES_EINVAL);
  pp = es_pool_default_params(SIZE_MAX / 2);
  pp.objs_per_chunk = 4;
  assert_null(es_pool_new(&pp, &err));
  assert_int_equal(err.code, ES_EINVAL);
}

static void get_returns_distinct_aligned_writable_objects(void **state) {
  (void)state;
  es_pool_t *p = new_pool(40, 16, 8, 0, -1);
  void *o[100];
  for (int i = 0; i < 100; i++) {
    o[i] = es_pool_get(p);
    assert_non_null(o[i]);
    assert_int_equal((uintptr_t)o[i] % _Alignof(max_align_t), 0);
    memset(o[i], i, 40);
  }
  for (int i = 0; i < 100; i++)
    for (int j = i + 1; j < 100; j++) assert_true(o[i] != o[j]);
  for (int i = 0; i < 100; i++) assert_int_equal(((unsigned char *)o[i])[39], (unsigned char)i);
  for (int i = 0; i < 100; i++) es_pool_put(p, o[i]);
  es_pool_free(p);
}

static void alignment_parameter_is_honoured(void **state) {
  (void)state;
  size_t aligns[] = {64, 256, 4096};
  for (int k = 0; k < 3; k++) {
    es_pool_params_t pp = es_pool_default_params(33);
    pp.align = aligns[k];
    pp.objs_per_chunk = 5;
    es_pool_t *p = es_pool_new(&pp, NULL);
    assert_non_null(p);
    void *o[12];
    for (int i = 0; i < 12; i++) {
      o[i] = es_pool_get(p);
      assert_non_null(o[i]);
      assert_int_equal((uintptr_t)o[i] % aligns[k], 0);
    }
    for (int i = 0; i < 12; i++) es_pool_put(p, o[i]);
    es_pool_free(p);
  }
}

static void put_objects_are_reused_without_new_chunks(void **state) {
  (void)state;
  es_pool_t *p = new_pool(64, 32, 8, 0, -1);
  void *o[32];
  for (int round = 0; round < 10; round++) {
    for (int i = 0; i < 32; i++) o[i] = es_pool_get(p);
    for (int i = 0; i < 32; i++) es_pool_put(p, o[i]);
  }
  es_pool_stats_t s = stats(p);
  assert_int_equal(s.chunks, 1);
  assert_int_equal(s.misses, 1);
  assert_int_equal(s.gets, 320);
  assert_int_equal(s.hits, 319);
  assert_int_equal(s.puts, 320);
  es_pool_free(p);
}

static void stats_count_in_use_free_and_high_water(void **state) {
  (void)state;
  es_pool_t *p = new_pool(24, 10, 0, 0, -1); /* no cache: in_use_high is exact */
  void *o[25];
  for (int i = 0; i < 25; i++) o[i] = es_pool_get(p);
  es_pool_stats_t s = stats(p);
  assert_int_equal(s.in_use, 25);
  assert_int_equal(s.free, 5);
  assert_int_equal(s.chunks, 3);
  assert_int_equal(s.misses, 3);
  assert_int_equal(s.hits, 22);
  size_t stride = (24 + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) * _Alignof(max_align_t);
  assert_int_equal(s.bytes, 30 * stride);
  for (int i = 0; i < 20; i++) es_pool_put(p, o[i]);
  s = stats(p);
  assert_int_equal(s.in_use, 5);
  assert_int_equal(s.free, 25);
  assert_int_equal(s.in_use_high, 25);
  assert_int_equal(s.chunks_high, 3);
  assert_int_equal(s.bytes_high, 30 * stride);
  for (int i = 20; i < 25; i++) es_pool_put(p, o[i]);
  assert_int_equal(stats(p).in_use, 0);
  es_pool_free(p);
}

static void max_objects_refuses_gets_and_counts_refusals(void **state) {
  (void)state;
  es_pool_t *p = new_pool(32, 4, 4, 10, -1); /* chunks of 4, 4, then 2 */
  void *o[10];
  for (int i = 0; i < 10; i++) assert_non_null(o[i] = es_pool_get(p));
  assert_null(es_pool_get(p));
  assert_null(es_pool_get(p));
  es_pool_stats_t s = stats(p);
  assert_int_equal(s.refusals, 2);
  assert_int_equal(s.gets, 10);
  assert_int_equal(s.chunks, 3);
  assert_int_equal(s.bytes, 10 * 32);
  es_pool_put(p, o[3]);
  void *again = es_pool_get(p);
  assert_ptr_equal(again, o[3]);
  es_pool_put(p, again);
  for (int i = 0; i < 10; i++)
    if (i != 3) es_pool_put(p, o[i]);
  es_pool_free(p);
}

static int charged_calls;
static int64_t charged_bytes;
static int64_t charge_cap;
static int test_charge(void *ctx, int64_t delta) {
  (void)ctx;
  charged_calls++;
  if (delta > 0 && charged_bytes + delta > charge_cap) return ES_EBUDGET;
  charged_bytes += delta;
  return 0;
}

static void charge_callback_sees_chunk_bytes_and_can_refuse(void **state) {
  (void)state;
  charged_calls = 0;
  charged_bytes = 0;
  charge_cap = 2 * 8 * 64;
  es_pool_params_t pp = es_pool_default_params(64);
  pp.objs_per_chunk = 8;
  pp.cache_size = 0;
  pp.charge = test_charge;
  es_pool_t *p = es_pool_new(&pp, NULL);
  void *o[17];
  for (int i = 0; i < 16; i++) assert_non_null(o[i] = es_pool_get(p));
  assert_int_equal(charged_bytes, 2 * 8 * 64);
  assert_null(es_pool_get(p)); /* a third chunk would pass the cap */
  assert_int_equal(stats(p).refusals, 1);
  for (int i = 0; i < 16; i++) es_pool_put(p, o[i]);
  assert_int_equal(es_pool_trim_idle(p, 0), 2 * 8 * 64);
  assert_int_equal(charged_bytes, 0);
  es_pool_free(p);
}

static void trim_gives_back_entirely_free_chunks_only(void **state) {
  (void)state;
  es_pool_t *p = new_pool(100, 4, 8, 0, 3600);
  void *o[12];
  for (int i = 0; i < 12; i++) o[i] = es_pool_get(p);
  assert_int_equal(stats(p).chunks, 3);
  /* keep one object of the first chunk: that chunk must stay */
  for (int i = 1; i < 12; i++) es_pool_put(p, o[i]);
  size_t stride = (100 + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) * _Alignof(max_align_t);
  assert_int_equal(es_pool_trim_idle(p, 0), 2 * 4 * stride);
  es_pool_stats_t s = stats(p);
  assert_int_equal(s.chunks, 1);
  assert_int_equal(s.trimmed, 2);
  assert_int_equal(s.bytes, 4 * stride);
  assert_int_equal(s.in_use, 1);
  assert_int_equal(s.free, 3);
  assert_int_equal(es_pool_trim_idle(p, 0), 0);
  es_pool_put(p, o[0]);
  assert_int_equal(es_pool_trim_idle(p, 0), 4 * stride);
  assert_int_equal(stats(p).chunks, 0);
  /* the pool grows again after a trim */
  void *x = es_pool_get(p);
  assert_non_null(x);
  es_pool_put(p, x);
  es_pool_free(p);
}

static void trim_uses_the_configured_idle_time(void **state) {
  (void)state;
  es_pool_t *p = new_pool(64, 4, 8, 0, 0);
  void *o[4];
  for (int i = 0; i < 4; i++) o[i] = es_pool_get(p);
  for (int i = 0; i < 4; i++) es_pool_put(p, o[i]); /* into this thread's cache */
  es_pool_put(p, NULL);                             /* a no-op */
  assert_int_equal(es_pool_trim(p), 4 * 64);
  assert_int_equal(stats(p).chunks, 0);
  es_pool_free(p);
}

static void trim_keeps_chunks_not_idle_long_enough(void **state) {
  (void)state;
  es_pool_t *p = new_pool(100, 4, 8, 0, 3600);
  void *o[8];
  for (int i = 0; i < 8; i++) o[i] = es_pool_get(p);
  for (int i = 0; i < 8; i++) es_pool_put(p, o[i]);
  assert_int_equal(es_pool_trim(p), 0);
  assert_int_equal(stats(p).chunks, 2);
  assert_true(es_pool_trim_idle(p, 0) > 0); /* an explicit idle time overrides */
  assert_int_equal(stats(p).chunks, 0);
  es_pool_free(p);
}

static void trim_never_frees_when_idle_time_is_negative(void **state) {
  (void)state;
  es_pool_t *p = new_pool(100, 4, 8, 0, -1);
  void *o = es_pool_get(p);
  es_pool_put(p, o);
  assert_int_equal(es_pool_trim(p), 0);
  assert_int_equal(stats(p).chunks, 1);
  es_pool_free(p);
}

static void put_runs_an_opportunistic_trim_once_a_second(void **state) {
  (void)state;
  es_pool_t *p = new_pool(100, 4, 0, 0, 0);
  void *o = es_pool_get(p);
  assert_int_equal(stats(p).chunks, 1);
  struct timespec ts = {1, 100 * 1000 * 1000};
  nanosleep(&ts, NULL); /* past the 1 s between opportunistic checks */
  es_pool_put(p, o);    /* the chunk becomes entirely free, and the check is due */
  es_pool_stats_t s = stats(p);
  assert_int_equal(s.chunks, 0);
  assert_int_equal(s.trimmed, 1);
  es_pool_free(p);
}

static void flush_cache_returns_the_threads_objects_to_the_depot(void **state) {
  (void)state;
  es_pool_t *p = new_pool(64, 8, 16, 0, 3600);
  void *o[8];
  for (int i = 0; i < 8; i++) o[i] = es_pool_get(p);
  for (int i = 0; i < 8; i++) es_pool_put(p, o[i]);
  es_pool_flush_cache(p);
  /* all 8 back in the depot: the chunk is entirely free */
  assert_int_equal(es_pool_trim_idle(p, 0), 8 * 64);
  es_pool_free(p);
}

static void poisoned_or_filled_after_put(void **state) {
  (void)state;
#if defined(ES__ASAN)
  es_pool_t *p = new_pool(48, 8, 8, 0, -1);
  unsigned char *o = es_pool_get(p);
  assert_false(__asan_address_is_poisoned(o));
  assert_false(__asan_address_is_poisoned(o + 47));
  es_pool_put(p, o);
  assert_true(__asan_address_is_poisoned(o));
  assert_true(__asan_address_is_poisoned(o + 47));
  assert_ptr_equal(es_pool_get(p), o); /* handed out again: addressable */
  assert_false(__asan_address_is_poisoned(o));
  es_pool_put(p, o);
  es_pool_free(p);
#elif !defined(NDEBUG)
  es_pool_t *p = new_pool(48, 8, 8, 0, -1);
  unsigned char *o = es_pool_get(p);
  memset(o, 0x11, 48);
  es_pool_put(p, o);
  /* still mapped (the pool keeps it): the fill shows a stale pointer */
  for (int i = 0; i < 48; i++) assert_int_equal(o[i], 0xDD);
  es_pool_free(p);
#else
  skip();
#endif
}

/* ---- threads -----------------------------------------------------------------------------------
 */

typedef struct xfer {
  es_pool_t *p;
  void *objs[256];
  int n;
} xfer;

static void *get_all(void *arg) {
  xfer *x = arg;
  for (int i = 0; i < x->n; i++) x->objs[i] = es_pool_get(x->p);
  return NULL;
}

static void *put_all(void *arg) {
  xfer *x = arg;
  for (int i = 0; i < x->n; i++) es_pool_put(x->p, x->objs[i]);
  return NULL;
}

static void objects_put_from_another_thread_are_reused(void **state) {
  (void)state;
  es_pool_t *p = new_pool(128, 64, 16, 0, -1);
  xfer x = {p, {0}, 256};
  for (int round = 0; round < 4; round++) {
    run_threads(1, get_all, &x); /* one thread gets ... */
    for (int i = 0; i < 256; i++) assert_non_null(x.objs[i]);
    run_threads(1, put_all, &x); /* ... another puts */
  }
  es_pool_stats_t s = stats(p);
  assert_int_equal(s.in_use, 0);
  assert_int_equal(s.gets, 4 * 256);
  assert_int_equal(s.puts, 4 * 256);
  /* 256 objects need 4 chunks; a putting thread's leftover cache (at most
   * 16 objects) is inherited by the next thread that takes its index, or
   * else costs one more chunk */
  assert_true(s.chunks >= 4 && s.chunks <= 5);
  es_pool_free(p);
}

static void *fill_own_cache_and_exit(void *arg) {
  es_pool_t *p = arg;
  void *o[8];
  for (int i = 0; i < 8; i++) o[i] = es_pool_get(p);
  for (int i = 0; i < 8; i++) es_pool_put(p, o[i]);
  return NULL;
}

static void capped_get_finds_objects_cached_by_an_exited_thread(void **state) {
  (void)state;
  es_pool_t *p = new_pool(32, 8, 16, 8, -1); /* all 8 objects fit one thread's cache */
  run_threads(1, fill_own_cache_and_exit, p);
  void *o[8];
  for (int i = 0; i < 8; i++) assert_non_null(o[i] = es_pool_get(p));
  assert_int_equal(stats(p).refusals, 0);
  for (int i = 0; i < 8; i++) es_pool_put(p, o[i]);
  es_pool_free(p);
}

static void trim_takes_back_the_cache_of_an_exited_thread(void **state) {
  (void)state;
  es_pool_t *p = new_pool(32, 8, 16, 0, 3600);
  run_threads(1, fill_own_cache_and_exit, p);
  assert_int_equal(stats(p).free, 8);
  assert_int_equal(es_pool_trim_idle(p, 0), 8 * 32);
  assert_int_equal(stats(p).chunks, 0);
  es_pool_free(p);
}

typedef struct holder {
  es_pool_t *p;
  pthread_mutex_t m;
  pthread_cond_t cv;
  int step; /* 1: cached, 2: main reacted, 3: second get done */
  void *got;
} holder;

static void wait_step(holder *h, int step) {
  pthread_mutex_lock(&h->m);
  while (h->step < step) pthread_cond_wait(&h->cv, &h->m);
  pthread_mutex_unlock(&h->m);
}

static void set_step(holder *h, int step) {
  pthread_mutex_lock(&h->m);
  h->step = step;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->m);
}

/* Takes the whole (capped) pool, parks 7 objects in its cache, waits, then
 * makes one call. */
static void *hold_cache(void *arg) {
  holder *h = arg;
  void *o[8];
  for (int i = 0; i < 8; i++) o[i] = es_pool_get(h->p);
  for (int i = 1; i < 8; i++) es_pool_put(h->p, o[i]);
  set_step(h, 1);
  wait_step(h, 2);
  es_pool_put(h->p, o[0]); /* sees the flush request: the 7 go to the depot */
  set_step(h, 3);
  return NULL;
}

static void live_thread_returns_its_cache_after_a_refusal(void **state) {
  (void)state;
  holder h = {new_pool(32, 8, 16, 8, -1), PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0,
              NULL};
  pthread_t t;
  pthread_create(&t, NULL, hold_cache, &h);
  wait_step(&h, 1);
  assert_null(es_pool_get(h.p)); /* everything parked in the live thread's cache */
  assert_int_equal(stats(h.p).refusals, 1);
  set_step(&h, 2);
  wait_step(&h, 3);
  void *o = es_pool_get(h.p);
  assert_non_null(o);
  es_pool_put(h.p, o);
  pthread_join(t, NULL);
  es_pool_free(h.p);
}

typedef struct reuser {
  holder h;
  es_pool_t *p2;
} reuser;

/* Caches objects of pool 1, waits while main frees it, then uses pool 2. */
static void *outlive_pool(void *arg) {
  reuser *r = arg;
  void *o[20];
  for (int i = 0; i < 20; i++) o[i] = es_pool_get(r->h.p);
  for (int i = 0; i < 20; i++) es_pool_put(r->h.p, o[i]);
  set_step(&r->h, 1);
  wait_step(&r->h, 2);
  for (int i = 0; i < 20; i++) {
    o[i] = es_pool_get(r->p2);
    memset(o[i], 0x5a, 80);
  }
  for (int i = 0; i < 20; i++) es_pool_put(r->p2, o[i]);
  set_step(&r->h, 3);
  return NULL;
}

static void freeing_a_pool_with_objects_cached_by_a_live_thread_is_safe(void **state) {
  (void)state;
  reuser r = {
      {new_pool(80, 16, 32, 0, -1), PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL},
      NULL};
  pthread_t t;
  pthread_create(&t, NULL, outlive_pool, &r);
  wait_step(&r.h, 1);
  es_pool_free(r.h.p);                /* the thread's cache for it is reclaimed here */
  r.p2 = new_pool(80, 16, 32, 0, -1); /* may well reuse the same address */
  set_step(&r.h, 2);
  wait_step(&r.h, 3);
  pthread_join(t, NULL);
  es_pool_stats_t s = stats(r.p2);
  assert_int_equal(s.gets, 20);
  assert_int_equal(s.in_use, 0);
  es_pool_free(r.p2);
}

typedef struct churn {
  es_pool_t *p;
  pthread_mutex_t m;
  void *shared[64]; /* objects handed between threads */
  int nshared;
  unsigned seed;
} churn;

typedef struct tagged {
  uint64_t owner;
  uint64_t check;
} tagged;

static void *churn_thread(void *arg) {
  churn *c = arg;
  pthread_mutex_lock(&c->m);
  unsigned seed = c->seed++;
  pthread_mutex_unlock(&c->m);
  uint64_t me = (uint64_t)(uintptr_t)&seed;
  tagged *held[32];
  int n = 0;
  for (int it = 0; it < 20000; it++) {
    unsigned r = (seed = seed * 1103515245u + 12345u) >> 16;
    if (n < 32 && (r % 3 != 0 || n == 0)) {
      tagged *o = es_pool_get(c->p);
      assert_non_null(o);
      o->owner = me;
      o->check = me ^ 0x1234;
      held[n++] = o;
    } else {
      tagged *o = held[--n];
      assert_true(o->owner == me && o->check == (me ^ 0x1234)); /* nobody else had it */
      if (r % 4 == 0) { /* hand it to whichever thread comes next */
        pthread_mutex_lock(&c->m);
        if (c->nshared < 64) {
          o->owner = 0;
          c->shared[c->nshared++] = o;
          o = NULL;
        }
        pthread_mutex_unlock(&c->m);
      }
      if (o) es_pool_put(c->p, o);
    }
    if (r % 7 == 0) { /* put something another thread got */
      pthread_mutex_lock(&c->m);
      void *o = c->nshared ? c->shared[--c->nshared] : NULL;
      pthread_mutex_unlock(&c->m);
      es_pool_put(c->p, o);
    }
  }
  while (n) es_pool_put(c->p, held[--n]);
  return NULL;
}

static void concurrent_gets_and_puts_never_share_an_object(void **state) {
  (void)state;
  churn c = {new_pool(sizeof(tagged), 64, 16, 0, 0), PTHREAD_MUTEX_INITIALIZER, {0}, 0, 1};
  run_threads(4, churn_thread, &c);
  while (c.nshared) es_pool_put(c.p, c.shared[--c.nshared]);
  es_pool_stats_t s = stats(c.p);
  assert_int_equal(s.in_use, 0);
  assert_int_equal(s.gets, s.puts);
  assert_int_equal(s.gets, s.hits + s.misses);
  assert_int_equal(s.free, s.chunks * 64);
  /* every cache of an exited thread comes back: all chunks are free */
  es_pool_trim_idle(c.p, 0);
  assert_int_equal(stats(c.p).chunks, 0);
  es_pool_free(c.p);
}

typedef struct crowd {
  es_pool_t *p;
  pthread_barrier_t b;
} crowd;

static void *crowd_thread(void *arg) {
  crowd *c = arg;
  pthread_barrier_wait(&c->b); /* all alive at once: some get no thread index */
  void *o[4];
  for (int r = 0; r < 50; r++) {
    for (int i = 0; i < 4; i++) o[i] = es_pool_get(c->p);
    for (int i = 0; i < 4; i++) es_pool_put(c->p, o[i]);
  }
  pthread_barrier_wait(&c->b);
  return NULL;
}

static void more_threads_than_cache_indices_still_work(void **state) {
  (void)state;
  enum { N = ES_POOL_MAX_THREADS + 8 };
  crowd c;
  c.p = new_pool(48, 32, 8, 0, -1);
  pthread_barrier_init(&c.b, NULL, N);
  run_threads(N, crowd_thread, &c);
  pthread_barrier_destroy(&c.b);
  es_pool_stats_t s = stats(c.p);
  assert_int_equal(s.gets, N * 200);
  assert_int_equal(s.in_use, 0);
  es_pool_free(c.p);
}

static void many_pools_share_one_threads_caches(void **state) {
  (void)state;
  es_pool_t *p[40];
  void *o[40][3];
  for (int i = 0; i < 40; i++) p[i] = new_pool(16 + 8 * (size_t)i, 8, 4, 0, -1);
  for (int r = 0; r < 5; r++) {
    for (int i = 0; i < 40; i++)
      for (int k = 0; k < 3; k++) memset(o[i][k] = es_pool_get(p[i]), i, 16 + 8 * (size_t)i);
    for (int i = 0; i < 40; i++)
      for (int k = 0; k < 3; k++) {
        assert_int_equal(((unsigned char *)o[i][k])[15], (unsigned char)i);
        es_pool_put(p[i], o[i][k]);
      }
  }
  for (int i = 0; i < 40; i += 2) es_pool_free(p[i]); /* free in any order */
  for (int i = 1; i < 40; i += 2) {
    assert_int_equal(stats(p[i]).in_use, 0);
    es_pool_free(p[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(default_params_size_chunks_and_caches_by_object_size),
      cmocka_unit_test(new_rejects_invalid_parameters),
      cmocka_unit_test(get_returns_distinct_aligned_writable_objects),
      cmocka_unit_test(alignment_parameter_is_honoured),
      cmocka_unit_test(put_objects_are_reused_without_new_chunks),
      cmocka_unit_test(stats_count_in_use_free_and_high_water),
      cmocka_unit_test(max_objects_refuses_gets_and_counts_refusals),
      cmocka_unit_test(charge_callback_sees_chunk_bytes_and_can_refuse),
      cmocka_unit_test(trim_gives_back_entirely_free_chunks_only),
      cmocka_unit_test(trim_uses_the_configured_idle_time),
      cmocka_unit_test(trim_keeps_chunks_not_idle_long_enough),
      cmocka_unit_test(trim_never_frees_when_idle_time_is_negative),
      cmocka_unit_test(put_runs_an_opportunistic_trim_once_a_second),
      cmocka_unit_test(flush_cache_returns_the_threads_objects_to_the_depot),
      cmocka_unit_test(poisoned_or_filled_after_put),
      cmocka_unit_test(objects_put_from_another_thread_are_reused),
      cmocka_unit_test(capped_get_finds_objects_cached_by_an_exited_thread),
      cmocka_unit_test(trim_takes_back_the_cache_of_an_exited_thread),
      cmocka_unit_test(live_thread_returns_its_cache_after_a_refusal),
      cmocka_unit_test(freeing_a_pool_with_objects_cached_by_a_live_thread_is_safe),
      cmocka_unit_test(concurrent_gets_and_puts_never_share_an_object),
      cmocka_unit_test(more_threads_than_cache_indices_still_work),
      cmocka_unit_test(many_pools_share_one_threads_caches),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
