/*
 * bufpool.c - size-classed byte buffers on top of object pools; see
 * bufpool.h.
 *
 * One es_pool per class; a class's objects are a 16-byte header followed by
 * the buffer. The header says which class the buffer came from, so
 * es_buf_put needs no size. Buffers above the largest class are a header +
 * the buffer from malloc, marked LARGE.
 *
 * Every byte a class takes from the system goes through charge(), which
 * adds it to `held` and refuses it when that would pass the byte limit;
 * malloc'd buffers are charged the same way. When a get is refused, the
 * pool gives back every entirely free chunk of every class (memory idle in
 * one class can serve another) and tries once more.
 *
 * Invariants:
 *   1. sizes[] is strictly increasing, each a multiple of HDR; sizes[i] is
 *      the usable size of class i.
 *   2. A buffer handed out has hdr.magic == MAGIC and hdr.cls either < nclass
 *      or LARGE (then hdr.size is its size). Free buffers are poisoned with
 *      their header (pool.c), so a put of a freed buffer is caught by ASan,
 *      or by the magic check (0xDD fill) without NDEBUG.
 *   3. held == bytes of all class chunks + HDR + size of every LARGE buffer
 *      out; held <= limit whenever a charge succeeded under that limit.
 */
#include "edgeserve/bufpool.h"

#include <assert.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fail.h"

#define HDR         16u
#define MAGIC       0xb0f5b0f5u
#define LARGE       UINT32_MAX
#define MAX_CLASSES 256u
#define MAX_SIZE    ((size_t)1 << 30)

typedef struct hdr {
  uint32_t cls;
  uint32_t magic;
  uint64_t size; /* requested size (LARGE: the buffer's size) */
} hdr;

_Static_assert(sizeof(hdr) <= HDR, "header fits");
_Static_assert(HDR % alignof(max_align_t) == 0, "buffers stay aligned");

struct es_bufpool {
  es_bufpool_params_t p;
  unsigned nclass;
  size_t *sizes;      /* invariant 1 */
  uint16_t first[64]; /* first[k]: the smallest class >= 2^k + 1 (nclass when none) */
  es_pool_t **pools;  /* one per class */
  _Atomic uint64_t held, held_high, limit;
  pthread_mutex_t lock; /* the counters below */
  uint64_t large_gets, large_puts, large_bytes, refusals;
};

/* The charge callback of every class, and of LARGE buffers. Runs on the
 * chunk path only (rare), so 64-bit atomics on 32-bit ARM cost nothing that
 * matters. */
static int charge(void *ctx, int64_t delta) {
  es_bufpool_t *bp = ctx;
  if (delta <= 0) {
    atomic_fetch_sub(&bp->held, (uint64_t)-delta);
    return 0;
  }
  uint64_t lim = atomic_load(&bp->limit);
  uint64_t now = atomic_fetch_add(&bp->held, (uint64_t)delta) + (uint64_t)delta;
  if (lim && now > lim) {
    atomic_fetch_sub(&bp->held, (uint64_t)delta);
    return ES_EBUDGET;
  }
  uint64_t high = atomic_load(&bp->held_high);
  while (now > high && !atomic_compare_exchange_weak(&bp->held_high, &high, now)) {
  }
  return 0;
}

es_bufpool_params_t es_bufpool_default_params(void) {
  es_bufpool_params_t p;
  memset(&p, 0, sizeof p);
  p.min_size = 64;
  p.max_size = 256u * 1024u;
  p.steps = 4;
  p.chunk_bytes = 16u * 1024u;
  p.cache_bytes = 32u * 1024u;
  p.idle_trim_sec = 10.0;
  return p;
}

/* Fills sizes[] (MAX_CLASSES entries) with the class grid: per power of two
 * 2^k, the sizes 2^k + j * 2^k / steps, rounded up to HDR, from the first
 * >= min to the first >= max. Returns the number of classes. */
static unsigned class_grid(size_t min, size_t max, unsigned steps, size_t *sizes) {
  unsigned n = 0;
  uint64_t oct = 1;
  while (oct * 2 <= min) oct *= 2;
  for (;; oct *= 2) {
    for (unsigned j = 0; j < steps; j++) {
      uint64_t s = oct + j * oct / steps;
      s = (s + HDR - 1) / HDR * HDR;
      if (s < min || (n && s <= sizes[n - 1])) continue;
      if (n == MAX_CLASSES) return 0;
      sizes[n++] = (size_t)s;
      if (s >= max) return n;
    }
  }
}

/* The smallest class >= size, or nclass when none is: by binary search
 * (es_bufpool_new) ... */
static unsigned class_search(const es_bufpool_t *bp, uint64_t size) {
  unsigned lo = 0, hi = bp->nclass;
  while (lo < hi) {
    unsigned mid = lo + (hi - lo) / 2;
    if (bp->sizes[mid] < size)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* ... or, per request, from the power of two above size - 1 and a short
 * walk (at most steps + 1 classes lie in one power of two): no
 * hard-to-predict branches for random sizes. */
static unsigned class_of(const es_bufpool_t *bp, size_t size) {
  if (size <= bp->sizes[0]) return 0;
  unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
  unsigned c = bp->first[k];
  while (c < bp->nclass && bp->sizes[c] < size) c++;
  return c;
}

es_bufpool_t *es_bufpool_new(const es_bufpool_params_t *params, es_error_t *err) {
  const es_bufpool_params_t *pp = params;
  if (pp->min_size == 0 || pp->max_size < pp->min_size || pp->max_size > MAX_SIZE ||
      pp->steps == 0 || pp->steps > 16 || pp->chunk_bytes == 0) {
    es__fail(err, ES_EINVAL, -1,
             "bufpool: min_size %zu, max_size %zu, steps %u, chunk_bytes %zu: need 1 <= min <= "
             "max <= 1 GiB, steps 1 .. 16, chunk_bytes > 0",
             pp->min_size, pp->max_size, pp->steps, pp->chunk_bytes);
    return NULL;
  }
  size_t grid[MAX_CLASSES];
  unsigned n = class_grid(pp->min_size, pp->max_size, pp->steps, grid);
  if (n == 0) {
    es__fail(err, ES_EINVAL, -1,
             "bufpool: more than %u size classes: raise min_size or lower steps", MAX_CLASSES);
    return NULL;
  }
  es_bufpool_t *bp = calloc(1, sizeof *bp);
  if (!bp) goto fail_nomem;
  if (pthread_mutex_init(&bp->lock, NULL) != 0) goto fail_mutex;
  bp->p = *pp;
  atomic_init(&bp->held, 0);
  atomic_init(&bp->held_high, 0);
  atomic_init(&bp->limit, pp->byte_limit);
  bp->sizes = malloc(n * sizeof *bp->sizes);
  bp->pools = calloc(n, sizeof *bp->pools);
  if (!bp->sizes || !bp->pools) goto fail_arrays;
  memcpy(bp->sizes, grid, n * sizeof *grid);
  bp->nclass = n;
  for (unsigned k = 0; k < 64; k++)
    bp->first[k] = (uint16_t)class_search(bp, ((uint64_t)1 << k) + 1);
  for (unsigned i = 0; i < n; i++) {
    size_t obj = HDR + grid[i];
    es_pool_params_t op = es_pool_default_params(obj);
    op.objs_per_chunk = pp->chunk_bytes > obj ? pp->chunk_bytes / obj : 1;
    if (op.objs_per_chunk > 65536) op.objs_per_chunk = 65536;
    size_t cache = pp->cache_bytes / obj;
    op.cache_size = cache < 2 ? 0 : cache > 64 ? 64 : cache;
    op.idle_trim_sec = pp->idle_trim_sec;
    op.charge = charge;
    op.charge_ctx = bp;
    bp->pools[i] = es_pool_new(&op, err); /* fills *err on failure */
    if (!bp->pools[i]) {
      while (i--) es_pool_free(bp->pools[i]);
      goto fail_pools;
    }
  }
  return bp;

fail_arrays:
  es__fail(err, ES_ENOMEM, -1, "bufpool: out of memory");
fail_pools:
  free(bp->sizes);
  free(bp->pools);
  pthread_mutex_destroy(&bp->lock);
  free(bp);
  return NULL;
fail_mutex:
  free(bp);
fail_nomem:
  es__fail(err, ES_ENOMEM, -1, "bufpool: out of memory");
  return NULL;
}

void es_bufpool_free(es_bufpool_t *bp) {
  if (!bp) return;
  for (unsigned i = 0; i < bp->nclass; i++) es_pool_free(bp->pools[i]);
  free(bp->pools);
  free(bp->sizes);
  pthread_mutex_destroy(&bp->lock);
  free(bp);
}

static void *get_large(es_bufpool_t *bp, size_t size) {
  if (size > (size_t)PTRDIFF_MAX - HDR) return NULL; /* also fits charge()'s int64_t */
  if (charge(bp, (int64_t)(HDR + size)) != 0) return NULL;
  hdr *h = malloc(HDR + size);
  if (!h) {
    charge(bp, -(int64_t)(HDR + size));
    return NULL;
  }
  h->cls = LARGE;
  h->size = size;
  pthread_mutex_lock(&bp->lock);
  bp->large_gets++;
  bp->large_bytes += HDR + size;
  pthread_mutex_unlock(&bp->lock);
  return h;
}

void *es_buf_get(es_bufpool_t *bp, size_t size, size_t *cap) {
  unsigned c = class_of(bp, size);
  hdr *h = c < bp->nclass ? es_pool_get(bp->pools[c]) : get_large(bp, size);
  if (!h) {
    /* Free chunks of other classes count against the limit too. */
    es_bufpool_trim_idle(bp, 0);
    h = c < bp->nclass ? es_pool_get(bp->pools[c]) : get_large(bp, size);
    if (!h) {
      pthread_mutex_lock(&bp->lock);
      bp->refusals++;
      pthread_mutex_unlock(&bp->lock);
      return NULL;
    }
  }
  if (c < bp->nclass) {
    h->cls = c;
    h->size = size;
  }
  h->magic = MAGIC;
  if (cap) *cap = c < bp->nclass ? bp->sizes[c] : size;
  return (char *)h + HDR;
}

void es_buf_put(es_bufpool_t *bp, void *buf) {
  if (!buf) return;
  hdr *h = (hdr *)((char *)buf - HDR);
  assert(h->magic == MAGIC && "es_buf_put: not a buffer from a bufpool, or put twice");
  if (h->cls == LARGE) {
    uint64_t bytes = HDR + h->size;
    h->magic = 0;
    free(h);
    charge(bp, -(int64_t)bytes);
    pthread_mutex_lock(&bp->lock);
    bp->large_puts++;
    bp->large_bytes -= bytes;
    pthread_mutex_unlock(&bp->lock);
    return;
  }
  assert(h->cls < bp->nclass && "es_buf_put: corrupt buffer header");
  es_pool_put(bp->pools[h->cls], h);
}

void es_bufpool_set_limit(es_bufpool_t *bp, uint64_t bytes) { atomic_store(&bp->limit, bytes); }

uint64_t es_bufpool_trim_idle(es_bufpool_t *bp, double idle_sec) {
  uint64_t freed = 0;
  for (unsigned i = 0; i < bp->nclass; i++) freed += es_pool_trim_idle(bp->pools[i], idle_sec);
  return freed;
}

uint64_t es_bufpool_trim(es_bufpool_t *bp) { return es_bufpool_trim_idle(bp, bp->p.idle_trim_sec); }

void es_bufpool_flush_cache(es_bufpool_t *bp) {
  for (unsigned i = 0; i < bp->nclass; i++) es_pool_flush_cache(bp->pools[i]);
}

unsigned es_bufpool_classes(const es_bufpool_t *bp) { return bp->nclass; }

int es_bufpool_class_stats(es_bufpool_t *bp, unsigned cls, size_t *size, es_pool_stats_t *out) {
  if (cls >= bp->nclass) return ES_ERANGE;
  if (size) *size = bp->sizes[cls];
  if (out) es_pool_stats(bp->pools[cls], out);
  return 0;
}

void es_bufpool_stats(es_bufpool_t *bp, es_bufpool_stats_t *out) {
  memset(out, 0, sizeof *out);
  es_pool_stats_t *t = &out->total;
  for (unsigned i = 0; i < bp->nclass; i++) {
    es_pool_stats_t s;
    es_pool_stats(bp->pools[i], &s);
    t->in_use += s.in_use;
    t->free += s.free;
    t->in_use_high += s.in_use_high;
    t->gets += s.gets;
    t->hits += s.hits;
    t->misses += s.misses;
    t->puts += s.puts;
    t->chunks += s.chunks;
    t->chunks_high += s.chunks_high;
    t->trimmed += s.trimmed;
  }
  pthread_mutex_lock(&bp->lock);
  out->large_in_use = bp->large_gets - bp->large_puts;
  out->large_bytes = bp->large_bytes;
  t->in_use += out->large_in_use;
  t->gets += bp->large_gets;
  t->misses += bp->large_gets;
  t->puts += bp->large_puts;
  t->refusals = bp->refusals;
  pthread_mutex_unlock(&bp->lock);
  t->bytes = atomic_load(&bp->held);
  t->bytes_high = atomic_load(&bp->held_high);
  out->byte_limit = atomic_load(&bp->limit);
}
