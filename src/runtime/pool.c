/*
 * pool.c - pools of fixed-size objects with per-thread caches; see pool.h.
 *
 * Where a free object can be:
 *
 *   thread cache   one per (pool, thread index): an array of up to
 *                  cache_size pointers, used as a stack. Gets and puts of the
 *                  owning thread touch only it (no lock, no atomic
 *                  read-modify-write). An empty cache refills with `batch`
 *                  (half a cache) objects from the depot; a full one gives
 *                  its older half back.
 *   depot          shared, behind pool->lock: per chunk a bitmap of the free
 *                  objects. Gets take from the lowest-addressed chunk with a
 *                  free object, so use packs into few chunks and the others
 *                  drain, become entirely free and can be trimmed.
 *
 * Memory comes from the system a chunk at a time (objs_per_chunk objects,
 * obj_size rounded up to align apart); chunks[] is sorted by address, so a
 * put finds an object's chunk by binary search (only when the object
 * reaches the depot: log2(chunks) compares per object, once per batch).
 *
 * Thread indices: a thread gets one of ES_POOL_MAX_THREADS indices on its
 * first call into any pool (tids_*, the module's one process-wide state)
 * and gives it back when it exits (a pthread key destructor). Pools keep
 * their caches in slots[index], allocated by the owning thread on first
 * use, so every byte of a cache belongs to the pool: es_pool_free frees the
 * caches of all threads, and no thread ever holds a pointer to a dead pool.
 * A later thread that receives the index inherits the slot and its objects.
 *
 * Invariants:
 *   1. A free object is in exactly one place: one slot's objs[], or the
 *      depot (its bit set in its chunk's bitmap). Objects handed out are in
 *      neither.
 *   2. c->nfree == popcount(c->bits) and pool->depot_free == sum of nfree;
 *      no bitmap word below c->hint has a bit set; no chunk below
 *      chunks[pool->lo] has a free object.
 *   3. c->free_since >= 0 exactly when c->nfree == c->nobj (the time it
 *      became entirely free, now_sec, a coarse monotonic clock).
 *   4. chunks[] is sorted by base; chunks do not overlap.
 *   5. A slot's objs[] and n are touched only by the thread owning its
 *      index, or, while no thread owns it, under tids_lock. Its gets and
 *      puts counters are written only by that same owner; they are folded
 *      into the pool's totals under pool->lock. Anyone may set its flush
 *      flag; the owner clears it.
 *   6. Lock order: tids_lock, then pool->lock. charge() is called with
 *      pool->lock held.
 *   7. Free objects are poisoned under ASan and filled with 0xDD without
 *      NDEBUG (poison.h); objects handed out are not poisoned.
 */
#include "edgeserve/pool.h"

#include <assert.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/clock.h"
#include "../common/fail.h"
#include "poison.h"

#define MAX_OBJS_PER_CHUNK 65536u
#define MAX_CACHE          1024u
#define CHUNK_TARGET       (64u * 1024u) /* default chunk size */
#define CACHE_TARGET       (32u * 1024u) /* default bytes per thread cache */
#define FOLD_AT            (1u << 30)    /* slot counters fold before they can wrap */
#define MIN_CHECK_SEC      1.0           /* fewest seconds between opportunistic trims */

typedef struct chunk {
  char *base;
  uint32_t nobj, nfree;
  uint32_t hint;     /* lowest bitmap word that may have a bit set */
  double free_since; /* invariant 3 */
  uint64_t bits[];   /* bit i: object i is in the depot */
} chunk;

typedef struct slot {
  _Atomic uint32_t gets, puts; /* since the last fold (invariant 5) */
  atomic_int flush;            /* set by a trim: give the cache back on the next call */
  uint32_t n;                  /* objects in objs[] */
  void *objs[];
} slot;

struct es_pool {
  /* read-only after es_pool_new, read by every call */
  es_pool_params_t p;
  size_t stride;
  uint32_t cap, batch; /* thread cache size; objects moved per refill or flush */
  _Atomic(slot *) slots[ES_POOL_MAX_THREADS];
  char pad_[64]; /* keeps the locked part off the cache line read above */

  /* under lock */
  pthread_mutex_t lock;
  chunk **chunks;
  size_t nchunks, chunks_cap;
  size_t lo;           /* invariant 2 */
  uint64_t created;    /* objects in chunks */
  uint64_t depot_free; /* objects in the depot */
  uint64_t gets, puts, misses, refusals, trimmed;
  uint64_t out_high, chunks_high, bytes, bytes_high;
  double last_check; /* last opportunistic trim */
};

/* Idle times are seconds long: a coarse clock (a few ms resolution, ~8 ns a
 * read where a precise read costs ~60 ns under KVM) is precise enough. */
static double now_sec(void) {
#ifdef CLOCK_MONOTONIC_COARSE
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
#endif
  return es__mono_sec();
}

/* ---- thread indices (process-wide) --------------------------------------------------------- */

static pthread_mutex_t tids_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t tids_used; /* bit t: index t belongs to a live thread; under tids_lock */
static pthread_once_t tids_once = PTHREAD_ONCE_INIT;
static pthread_key_t tids_key;
static int tids_key_ok;
static _Thread_local int tid = -1; /* this thread's index; -1 none yet, -2 none to be had */

static void tid_release(void *v) {
  int t = (int)((uintptr_t)v - 1);
  pthread_mutex_lock(&tids_lock);
  tids_used &= ~((uint64_t)1 << t);
  pthread_mutex_unlock(&tids_lock);
  /* A later destructor that uses a pool acquires a fresh index. */
  tid = -1;
}

static void tids_init(void) { tids_key_ok = pthread_key_create(&tids_key, tid_release) == 0; }

static int tid_acquire(void) {
  pthread_once(&tids_once, tids_init);
  if (!tids_key_ok) return tid = -2;
  pthread_mutex_lock(&tids_lock);
  int t = 0;
  while (t < ES_POOL_MAX_THREADS && (tids_used >> t & 1)) t++;
  if (t < ES_POOL_MAX_THREADS) tids_used |= (uint64_t)1 << t;
  pthread_mutex_unlock(&tids_lock);
  if (t == ES_POOL_MAX_THREADS) return tid = -2;
  if (pthread_setspecific(tids_key, (void *)(uintptr_t)(t + 1)) != 0) {
    tid_release((void *)(uintptr_t)(t + 1));
    return tid = -2;
  }
  return tid = t;
}

/* ---- the depot (pool->lock held) ------------------------------------------------------------ */

static void chunk_release(es_pool_t *p, chunk *c) {
  size_t bytes = (size_t)c->nobj * p->stride;
  ES__UNPOISON(c->base, bytes);
  free(c->base);
  free(c);
  if (p->p.charge) p->p.charge(p->p.charge_ctx, -(int64_t)bytes);
}

/* Takes a new chunk from the system; returns 0, or nonzero when refused. */
static int chunk_new(es_pool_t *p) {
  uint64_t nobj = p->p.objs_per_chunk;
  if (p->p.max_objects) {
    if (p->created >= p->p.max_objects) return -1;
    if (nobj > p->p.max_objects - p->created) nobj = p->p.max_objects - p->created;
  }
  size_t bytes = (size_t)nobj * p->stride; /* fits: checked by es_pool_new */
  if (p->nchunks == p->chunks_cap) {
    size_t ncap = p->chunks_cap ? 2 * p->chunks_cap : 8;
    chunk **nc = realloc(p->chunks, ncap * sizeof *nc);
    if (!nc) return -1;
    p->chunks = nc;
    p->chunks_cap = ncap;
  }
  if (p->p.charge && p->p.charge(p->p.charge_ctx, (int64_t)bytes) != 0) return -1;
  size_t words = (size_t)(nobj + 63) / 64;
  chunk *c = malloc(sizeof *c + words * sizeof(uint64_t));
  void *base = NULL;
  if (p->p.align <= alignof(max_align_t)) {
    base = malloc(bytes);
  } else if (posix_memalign(&base, p->p.align, bytes) != 0) {
    base = NULL;
  }
  if (!c || !base) {
    free(c);
    free(base);
    if (p->p.charge) p->p.charge(p->p.charge_ctx, -(int64_t)bytes);
    return -1;
  }
  c->base = base;
  c->nobj = c->nfree = (uint32_t)nobj;
  c->hint = 0;
  c->free_since = now_sec();
  memset(c->bits, 0xff, words * sizeof(uint64_t));
  if (nobj % 64) c->bits[words - 1] = ((uint64_t)1 << (nobj % 64)) - 1;
  es__fill_freed(base, bytes);
  ES__POISON(base, bytes);

  size_t i = p->nchunks; /* keep chunks[] sorted (invariant 4) */
  while (i > 0 && (uintptr_t)p->chunks[i - 1]->base > (uintptr_t)base) i--;
  memmove(p->chunks + i + 1, p->chunks + i, (p->nchunks - i) * sizeof *p->chunks);
  p->chunks[i] = c;
  p->nchunks++;
  if (i < p->lo) p->lo = i;
  p->created += nobj;
  p->depot_free += nobj;
  p->bytes += bytes;
  if (p->bytes > p->bytes_high) p->bytes_high = p->bytes;
  if (p->nchunks > p->chunks_high) p->chunks_high = p->nchunks;
  return 0;
}

/* Index of the chunk holding obj, or -1. */
static ptrdiff_t chunk_of(const es_pool_t *p, const void *obj) {
  uintptr_t a = (uintptr_t)obj;
  size_t lo = 0, hi = p->nchunks; /* find the last chunk with base <= a */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if ((uintptr_t)p->chunks[mid]->base <= a)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0) return -1;
  const chunk *c = p->chunks[lo - 1];
  if (a >= (uintptr_t)c->base + (size_t)c->nobj * p->stride) return -1;
  return (ptrdiff_t)(lo - 1);
}

/* Moves up to `want` objects from the depot to out[]; returns how many. An
 * empty depot first takes one new chunk (the get is then a miss); 0 means
 * the pool may not grow. */
static size_t depot_take(es_pool_t *p, void **out, size_t want) {
  if (p->depot_free == 0) {
    if (chunk_new(p) != 0) return 0;
    p->misses++;
  }
  size_t got = 0;
  while (got < want && p->depot_free) {
    while (p->chunks[p->lo]->nfree == 0) p->lo++;
    chunk *c = p->chunks[p->lo];
    if (c->nfree == c->nobj) c->free_since = -1;
    while (got < want && c->nfree) {
      while (!c->bits[c->hint]) c->hint++;
      uint64_t w = c->bits[c->hint];
      unsigned b = (unsigned)__builtin_ctzll(w);
      c->bits[c->hint] = w & (w - 1);
      c->nfree--;
      p->depot_free--;
      out[got++] = c->base + ((size_t)c->hint * 64 + b) * p->stride;
    }
  }
  if (p->created - p->depot_free > p->out_high) p->out_high = p->created - p->depot_free;
  return got;
}

/* Returns n objects to the depot; now is the time to stamp chunks that
 * become entirely free. */
static void depot_put(es_pool_t *p, void *const *objs, size_t n, double now) {
  for (size_t k = 0; k < n; k++) {
    ptrdiff_t ci = chunk_of(p, objs[k]);
    assert(ci >= 0 && "es_pool_put: object not from this pool");
    if (ci < 0) continue;
    chunk *c = p->chunks[ci];
    size_t off = (size_t)((char *)objs[k] - c->base);
    assert(off % p->stride == 0 && "es_pool_put: pointer inside an object");
    size_t i = off / p->stride;
    uint64_t bit = (uint64_t)1 << (i % 64);
    assert(!(c->bits[i / 64] & bit) && "es_pool_put: object put twice");
    if (off % p->stride || (c->bits[i / 64] & bit)) continue;
    c->bits[i / 64] |= bit;
    if (i / 64 < c->hint) c->hint = (uint32_t)(i / 64);
    if (++c->nfree == c->nobj) c->free_since = now;
    if ((size_t)ci < p->lo) p->lo = (size_t)ci;
    p->depot_free++;
  }
}

/* Gives back the chunks entirely free for at least idle seconds at `now`;
 * returns their bytes. */
static uint64_t trim_chunks(es_pool_t *p, double idle, double now) {
  uint64_t freed = 0;
  size_t j = 0;
  for (size_t i = 0; i < p->nchunks; i++) {
    chunk *c = p->chunks[i];
    if (c->nfree == c->nobj && c->free_since >= 0 && now - c->free_since >= idle) {
      size_t bytes = (size_t)c->nobj * p->stride;
      p->created -= c->nobj;
      p->depot_free -= c->nobj;
      p->bytes -= bytes;
      p->trimmed++;
      freed += bytes;
      chunk_release(p, c);
    } else {
      p->chunks[j++] = c;
    }
  }
  p->nchunks = j;
  p->lo = 0;
  p->last_check = now;
  return freed;
}

/* ---- thread caches --------------------------------------------------------------------------- */

/* Adds a slot's counters to the pool's totals (pool->lock held; by the
 * slot's owner, or under tids_lock for an unowned slot). */
static void fold(es_pool_t *p, slot *s) {
  p->gets += atomic_load_explicit(&s->gets, memory_order_relaxed);
  p->puts += atomic_load_explicit(&s->puts, memory_order_relaxed);
  atomic_store_explicit(&s->gets, 0, memory_order_relaxed);
  atomic_store_explicit(&s->puts, 0, memory_order_relaxed);
}

/* Empties a slot into the depot (pool->lock held; same rule as fold). */
static void drain(es_pool_t *p, slot *s, double now) {
  fold(p, s);
  depot_put(p, s->objs, s->n, now);
  s->n = 0;
  atomic_store_explicit(&s->flush, 0, memory_order_relaxed);
}

/* The calling thread's slot, created on first use; NULL when the pool has
 * no caches or no thread index is to be had. */
static slot *my_slot(es_pool_t *p) {
  if (p->cap == 0) return NULL;
  int t = tid;
  if (t == -1) t = tid_acquire();
  if (t < 0) return NULL;
  slot *s = atomic_load_explicit(&p->slots[t], memory_order_relaxed);
  if (s) return s;
  size_t bytes = sizeof *s + p->cap * sizeof(void *);
  bytes = (bytes + 63) & ~(size_t)63; /* no cache line shared with another thread's slot */
  void *mem;
  if (posix_memalign(&mem, 64, bytes) != 0) return NULL;
  s = mem;
  atomic_init(&s->gets, 0);
  atomic_init(&s->puts, 0);
  atomic_init(&s->flush, 0);
  s->n = 0;
  atomic_store_explicit(&p->slots[t], s, memory_order_release);
  return s;
}

/* Drains the slots of exited threads; asks live threads to drain theirs on
 * their next call; drains the caller's own at once. */
static void reclaim_caches(es_pool_t *p) {
  if (p->cap == 0) return;
  int me = tid;
  pthread_mutex_lock(&tids_lock);
  pthread_mutex_lock(&p->lock);
  double now = now_sec();
  for (int t = 0; t < ES_POOL_MAX_THREADS; t++) {
    slot *s = atomic_load_explicit(&p->slots[t], memory_order_acquire);
    if (!s) continue;
    if (t == me || !(tids_used >> t & 1))
      drain(p, s, now);
    else
      atomic_store_explicit(&s->flush, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&p->lock);
  pthread_mutex_unlock(&tids_lock);
}

/* ---- the API -----------------------------------------------------------------------------------
 */

es_pool_params_t es_pool_default_params(size_t obj_size) {
  es_pool_params_t pp;
  memset(&pp, 0, sizeof pp);
  pp.obj_size = obj_size;
  pp.align = alignof(max_align_t);
  size_t stride = obj_size ? (obj_size + pp.align - 1) & ~(pp.align - 1) : pp.align;
  if (stride < obj_size) stride = obj_size; /* overflow: es_pool_new refuses it */
  pp.objs_per_chunk = stride >= CHUNK_TARGET ? 1 : CHUNK_TARGET / stride;
  size_t cache = CACHE_TARGET / stride;
  pp.cache_size = cache < 2 ? 0 : cache > 64 ? 64 : cache;
  pp.idle_trim_sec = 10.0;
  return pp;
}

es_pool_t *es_pool_new(const es_pool_params_t *params, es_error_t *err) {
  es_pool_params_t pp = *params;
  if (pp.align == 0) pp.align = alignof(max_align_t);
  if (pp.obj_size == 0 || (pp.align & (pp.align - 1))) {
    es__fail(err, ES_EINVAL, -1,
             "pool: obj_size %zu, align %zu: need obj_size > 0 and a power of two", pp.obj_size,
             pp.align);
    return NULL;
  }
  if (pp.objs_per_chunk == 0 || pp.objs_per_chunk > MAX_OBJS_PER_CHUNK) {
    es__fail(err, ES_EINVAL, -1, "pool: objs_per_chunk %zu: need 1 .. %u", pp.objs_per_chunk,
             MAX_OBJS_PER_CHUNK);
    return NULL;
  }
  if (pp.cache_size > MAX_CACHE) {
    es__fail(err, ES_EINVAL, -1, "pool: cache_size %zu: at most %u", pp.cache_size, MAX_CACHE);
    return NULL;
  }
  size_t stride = (pp.obj_size + (pp.align - 1)) & ~(pp.align - 1);
  if (stride < pp.obj_size || stride > (size_t)PTRDIFF_MAX / pp.objs_per_chunk) {
    es__fail(err, ES_EINVAL, -1, "pool: %zu objects of %zu bytes do not fit in one chunk",
             pp.objs_per_chunk, pp.obj_size);
    return NULL;
  }
  es_pool_t *p = calloc(1, sizeof *p);
  if (!p) {
    es__fail(err, ES_ENOMEM, -1, "pool: out of memory");
    return NULL;
  }
  if (pthread_mutex_init(&p->lock, NULL) != 0) {
    free(p);
    es__fail(err, ES_ENOMEM, -1, "pool: cannot create a mutex");
    return NULL;
  }
  p->p = pp;
  p->stride = stride;
  p->cap = (uint32_t)pp.cache_size;
  p->batch = p->cap > 1 ? p->cap / 2 : 1;
  for (int t = 0; t < ES_POOL_MAX_THREADS; t++) atomic_init(&p->slots[t], NULL);
  p->last_check = now_sec();
  return p;
}

void es_pool_free(es_pool_t *p) {
  if (!p) return;
  for (int t = 0; t < ES_POOL_MAX_THREADS; t++)
    free(atomic_load_explicit(&p->slots[t], memory_order_acquire));
  for (size_t i = 0; i < p->nchunks; i++) chunk_release(p, p->chunks[i]);
  free(p->chunks);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

/* Hands obj out: unpoisons it and, without NDEBUG, checks that nobody wrote
 * to it while it was free. */
static void *hand_out(const es_pool_t *p, void *obj) {
  ES__UNPOISON(obj, p->p.obj_size);
#ifndef NDEBUG
  const unsigned char *b = obj;
  for (size_t i = 0; i < p->p.obj_size; i++)
    assert(b[i] == ES__FREED_BYTE && "pool object written after es_pool_put");
#endif
  return obj;
}

/* Takes one object under the lock: from the refilled cache, or straight
 * from the depot when there is no cache. */
static void *take_locked(es_pool_t *p, slot *s) {
  void *obj = NULL;
  pthread_mutex_lock(&p->lock);
  if (s) {
    if (atomic_load_explicit(&s->flush, memory_order_relaxed)) drain(p, s, now_sec());
    fold(p, s);
    if (s->n == 0) s->n = (uint32_t)depot_take(p, s->objs, p->batch);
    if (s->n) obj = s->objs[--s->n];
  } else {
    depot_take(p, &obj, 1);
  }
  if (obj) p->gets++;
  pthread_mutex_unlock(&p->lock);
  return obj;
}

static void *get_slow(es_pool_t *p) {
  slot *s = my_slot(p);
  void *obj = take_locked(p, s);
  if (!obj) {
    /* Refused: objects parked in other threads' caches may be all that is
     * left. Take back those of exited threads, ask live ones, retry once. */
    reclaim_caches(p);
    obj = take_locked(p, s);
    if (!obj) {
      pthread_mutex_lock(&p->lock);
      p->refusals++;
      pthread_mutex_unlock(&p->lock);
      return NULL;
    }
  }
  return hand_out(p, obj);
}

void *es_pool_get(es_pool_t *p) {
  int t = tid;
  slot *s = t >= 0 ? atomic_load_explicit(&p->slots[t], memory_order_relaxed) : NULL;
  if (s && s->n && !atomic_load_explicit(&s->flush, memory_order_relaxed)) {
    uint32_t g = atomic_load_explicit(&s->gets, memory_order_relaxed) + 1;
    atomic_store_explicit(&s->gets, g, memory_order_relaxed);
    void *obj = s->objs[--s->n];
    if (g >= FOLD_AT) {
      pthread_mutex_lock(&p->lock);
      fold(p, s);
      pthread_mutex_unlock(&p->lock);
    }
    return hand_out(p, obj);
  }
  return get_slow(p);
}

static void put_slow(es_pool_t *p, void *obj) {
  slot *s = my_slot(p);
  pthread_mutex_lock(&p->lock);
  double now = now_sec();
  if (s) {
    if (atomic_load_explicit(&s->flush, memory_order_relaxed)) {
      drain(p, s, now);
    } else if (s->n == p->cap) { /* give the older half back, keep the recent (cache-warm) one */
      depot_put(p, s->objs, p->batch, now);
      s->n -= p->batch;
      memmove(s->objs, s->objs + p->batch, s->n * sizeof(void *));
    }
    fold(p, s);
    s->objs[s->n++] = obj;
  } else {
    depot_put(p, &obj, 1, now);
  }
  p->puts++;
  double every = p->p.idle_trim_sec > MIN_CHECK_SEC ? p->p.idle_trim_sec : MIN_CHECK_SEC;
  if (p->p.idle_trim_sec >= 0 && now - p->last_check >= every)
    trim_chunks(p, p->p.idle_trim_sec, now);
  pthread_mutex_unlock(&p->lock);
}

void es_pool_put(es_pool_t *p, void *obj) {
  if (!obj) return;
  es__fill_freed(obj, p->p.obj_size);
  ES__POISON(obj, p->p.obj_size);
  int t = tid;
  slot *s = t >= 0 ? atomic_load_explicit(&p->slots[t], memory_order_relaxed) : NULL;
  if (s && s->n < p->cap && !atomic_load_explicit(&s->flush, memory_order_relaxed)) {
    uint32_t n = atomic_load_explicit(&s->puts, memory_order_relaxed) + 1;
    atomic_store_explicit(&s->puts, n, memory_order_relaxed);
    s->objs[s->n++] = obj;
    if (n >= FOLD_AT) {
      pthread_mutex_lock(&p->lock);
      fold(p, s);
      pthread_mutex_unlock(&p->lock);
    }
    return;
  }
  put_slow(p, obj);
}

void es_pool_flush_cache(es_pool_t *p) {
  int t = tid;
  slot *s = t >= 0 && p->cap ? atomic_load_explicit(&p->slots[t], memory_order_relaxed) : NULL;
  if (!s) return;
  pthread_mutex_lock(&p->lock);
  drain(p, s, now_sec());
  pthread_mutex_unlock(&p->lock);
}

uint64_t es_pool_trim_idle(es_pool_t *p, double idle_sec) {
  if (idle_sec < 0) return 0;
  reclaim_caches(p);
  pthread_mutex_lock(&p->lock);
  uint64_t freed = trim_chunks(p, idle_sec, now_sec());
  pthread_mutex_unlock(&p->lock);
  return freed;
}

uint64_t es_pool_trim(es_pool_t *p) { return es_pool_trim_idle(p, p->p.idle_trim_sec); }

void es_pool_stats(es_pool_t *p, es_pool_stats_t *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&p->lock);
  uint64_t gets = p->gets, puts = p->puts;
  for (int t = 0; t < ES_POOL_MAX_THREADS; t++) {
    slot *s = atomic_load_explicit(&p->slots[t], memory_order_acquire);
    if (!s) continue;
    gets += atomic_load_explicit(&s->gets, memory_order_relaxed);
    puts += atomic_load_explicit(&s->puts, memory_order_relaxed);
  }
  /* Counters of running threads are read one after another, not at one
   * instant: a put may be seen without its get. */
  out->in_use = gets > puts ? gets - puts : 0;
  if (out->in_use > p->created) out->in_use = p->created;
  out->free = p->created - out->in_use;
  out->in_use_high = p->out_high;
  out->gets = gets;
  out->misses = p->misses;
  out->hits = gets > p->misses ? gets - p->misses : 0;
  out->refusals = p->refusals;
  out->puts = puts;
  out->chunks = p->nchunks;
  out->chunks_high = p->chunks_high;
  out->bytes = p->bytes;
  out->bytes_high = p->bytes_high;
  out->trimmed = p->trimmed;
  pthread_mutex_unlock(&p->lock);
}
