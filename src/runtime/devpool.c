/*
 * devpool.c - a best-fit sub-allocator over regions obtained from a provider
 * (host mmap by default; device memory with a device provider).
 *
 * A pool holds a list of regions (newest first). Each region is tiled by
 * blocks, linked in address order; a block is free or held. Free blocks are
 * also in the free index, a treap keyed by (size, address): best fit is the
 * lower bound of the request, O(log n) expected in free blocks, the lowest
 * address winning among equal sizes (address-ordered best fit, the policy
 * with the least fragmentation in Wilson et al.'s survey). Allocation takes
 * the best fit, cuts off an alignment gap in front (a free block of its own)
 * and a tail of at least min_split bytes; freeing merges the block with its
 * free neighbours. When nothing fits, a region of max(min_region, request)
 * bytes is added while the regions stay within max_bytes; es_devpool_trim
 * gives wholly free regions back.
 *
 * A held block's descriptor is the caller's handle (es_devblock_t *): it
 * knows its pool, so freeing needs no pool argument. Descriptors are host
 * memory; freed ones wait on a spare list for reuse (bounded by the peak
 * number of blocks; trim shortens it), so allocation mallocs only when the
 * pool has more blocks than ever before.
 *
 * Invariants (es_devpool_check verifies every one):
 *   1. The blocks of a region tile its usable range [ubase, ubase + usize):
 *      in prev/next order the first starts at offset 0, each starts where
 *      the previous ends, the last ends at usize.
 *   2. No two free blocks are neighbours.
 *   3. Every free block is in the free index exactly once, under its size
 *      and address (key == size, kaddr == address); no held block is. Tree
 *      order is (key, kaddr), priorities form a max-heap.
 *   4. ubase, every block offset and every block size are multiples of the
 *      pool's alignment; a held block's address is a multiple of the
 *      alignment it was asked for.
 *   5. A held block is the request rounded up to the pool's alignment plus
 *      a tail shorter than min_split (longer tails are split off).
 *   6. The counters (used, requested, free, free blocks, held blocks,
 *      regions, region bytes) equal their sums over regions and blocks;
 *      region bytes never exceed max_bytes when there is a limit.
 *   7. The pool never reads or writes region memory: addresses are only
 *      computed, so regions may belong to a device the CPU cannot address.
 *
 * All state is behind one mutex: uncontended, its two lock/unlock pairs are a
 * few percent of an alloc+free; threads allocating at once take turns (see
 * docs/runtime/devpool.md). Providers are called with the lock held.
 *
 * A descriptor is 104 bytes on 64-bit hosts (80 on 32-bit), one per block.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include "edgeserve/devpool.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../common/fail.h"
#include "../common/splitmix.h"

#define MAX_SIZE    (UINT64_C(1) << 62) /* larger requests: ES_ERANGE */
#define MAX_ALIGN   (UINT64_C(1) << 40)
#define FIT_SCAN    16 /* candidates tried for an alignment above the pool's */
#define SPARE_AFTER 3  /* spare descriptors kept by trim (one allocation's worth) */

enum { BLK_FREE = 0x46524545, BLK_HELD = 0x48454c44, BLK_SPARE = 0x53504152 };

typedef struct es__region es__region_t;

struct es_devblock {
  es_devpool_t *pool;
  es__region_t *region;
  uint64_t off;               /* from the region's ubase */
  uint64_t size;              /* a multiple of the pool's alignment */
  uint64_t req;               /* held: the bytes asked for */
  uint64_t key, kaddr;        /* free: the size and address it is indexed under */
  uint64_t prio;              /* free: treap priority */
  es_devblock_t *prev, *next; /* address order in the region; next links the spare list */
  es_devblock_t *left, *right;
  uint32_t state;      /* BLK_* */
  uint32_t align_log2; /* held: the alignment asked for */
};

struct es__region {
  void *base;        /* from the provider */
  uint64_t raw_size; /* as asked from the provider */
  uint64_t ubase;    /* base rounded up to the pool's alignment */
  uint64_t usize;    /* usable bytes from ubase, a multiple of the alignment */
  es_devblock_t *first;
  es__region_t *prev, *next;
};

struct es_devpool {
  pthread_mutex_t lock;
  es_devmem_provider_t prov;
  uint64_t align, min_region, max_bytes, min_split;
  es__region_t *regions; /* newest first */
  es_devblock_t *root;   /* the free index */
  es_devblock_t *spare;  /* recycled descriptors */
  uint64_t nspare;
  uint64_t rng;          /* treap priorities: splitmix64 from a fixed seed, so runs repeat */
  es_devpool_stats_t st; /* largest_free and fragmentation are computed on demand */
};

static inline int is_pow2(uint64_t x) { return x && !(x & (x - 1)); }
static inline uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }
static inline uint64_t blk_addr(const es_devblock_t *b) { return b->region->ubase + b->off; }

static inline int ctz64(uint64_t x) {
  int n = 0;
  while (!(x & 1)) x >>= 1, n++;
  return n;
}

/* ---- the free index: a treap ordered by (key, address) ------------------------ */

static inline int key_less(const es_devblock_t *a, const es_devblock_t *b) {
  return a->key < b->key || (a->key == b->key && a->kaddr < b->kaddr);
}

/* Splits t into the nodes before k (*l) and the others (*r). */
static void tr_split(es_devblock_t *t, const es_devblock_t *k, es_devblock_t **l,
                     es_devblock_t **r) {
  if (!t) {
    *l = *r = NULL;
  } else if (key_less(t, k)) {
    tr_split(t->right, k, &t->right, r);
    *l = t;
  } else {
    tr_split(t->left, k, l, &t->left);
    *r = t;
  }
}

/* Joins two treaps, every key of a before every key of b. */
static es_devblock_t *tr_merge(es_devblock_t *a, es_devblock_t *b) {
  if (!a) return b;
  if (!b) return a;
  if (a->prio > b->prio) {
    a->right = tr_merge(a->right, b);
    return a;
  }
  b->left = tr_merge(a, b->left);
  return b;
}

static es_devblock_t *tr_insert(es_devblock_t *t, es_devblock_t *n) {
  if (!t) return n;
  if (n->prio > t->prio) {
    tr_split(t, n, &n->left, &n->right);
    return n;
  }
  if (key_less(n, t))
    t->left = tr_insert(t->left, n);
  else
    t->right = tr_insert(t->right, n);
  return t;
}

static es_devblock_t *tr_erase(es_devblock_t *t, es_devblock_t *n) {
  assert(t && "devpool: erasing a block that is not in the free index");
  if (t == n) return tr_merge(t->left, t->right);
  if (key_less(n, t))
    t->left = tr_erase(t->left, n);
  else
    t->right = tr_erase(t->right, n);
  return t;
}

/* The free block with the smallest key >= size (lowest address among equals). */
static es_devblock_t *tr_lower_bound(es_devblock_t *t, uint64_t size) {
  es_devblock_t *best = NULL;
  while (t) {
    if (t->key >= size)
      best = t, t = t->left;
    else
      t = t->right;
  }
  return best;
}

/* The free block right after b in index order. */
static es_devblock_t *tr_next(es_devblock_t *t, const es_devblock_t *b) {
  es_devblock_t *best = NULL;
  while (t) {
    if (key_less(b, t))
      best = t, t = t->left;
    else
      t = t->right;
  }
  return best;
}

static void idx_insert(es_devpool_t *p, es_devblock_t *b) {
  b->state = BLK_FREE;
  b->key = b->size;
  b->kaddr = blk_addr(b);
  b->prio = es__splitmix64(&p->rng);
  b->left = b->right = NULL;
  p->root = tr_insert(p->root, b);
  p->st.free_blocks++;
  p->st.free_bytes += b->size;
}

static void idx_erase(es_devpool_t *p, es_devblock_t *b) {
  assert(b->state == BLK_FREE && b->key == b->size && b->kaddr == blk_addr(b));
  p->root = tr_erase(p->root, b);
  b->left = b->right = NULL;
  p->st.free_blocks--;
  p->st.free_bytes -= b->size;
}

static uint64_t largest_free(const es_devpool_t *p) {
  const es_devblock_t *t = p->root;
  if (!t) return 0;
  while (t->right) t = t->right;
  return t->key;
}

/* ---- descriptors ---------------------------------------------------------------- */

/* Makes sure n descriptors wait on the spare list, so that the steps after it
 * cannot fail. Returns 0 or ES_ENOMEM (the list may have grown). */
static int reserve_spares(es_devpool_t *p, uint64_t n) {
  while (p->nspare < n) {
    es_devblock_t *b = malloc(sizeof *b);
    if (!b) return ES_ENOMEM;
    b->state = BLK_SPARE;
    b->next = p->spare;
    p->spare = b;
    p->nspare++;
  }
  return 0;
}

static es_devblock_t *take_spare(es_devpool_t *p, es__region_t *r, uint64_t off, uint64_t size) {
  es_devblock_t *b = p->spare;
  assert(b && b->state == BLK_SPARE && "devpool: spare descriptors were not reserved");
  p->spare = b->next;
  p->nspare--;
  memset(b, 0, sizeof *b);
  b->pool = p;
  b->region = r;
  b->off = off;
  b->size = size;
  return b;
}

static void put_spare(es_devpool_t *p, es_devblock_t *b) {
  b->state = BLK_SPARE;
  b->next = p->spare;
  p->spare = b;
  p->nspare++;
}

/* Removes b from its region's address list. */
static void unlink_block(es_devblock_t *b) {
  if (b->prev)
    b->prev->next = b->next;
  else
    b->region->first = b->next;
  if (b->next) b->next->prev = b->prev;
}

/* Puts n into b's region's address list just before b. */
static void link_before(es_devblock_t *b, es_devblock_t *n) {
  n->prev = b->prev;
  n->next = b;
  if (b->prev)
    b->prev->next = n;
  else
    b->region->first = n;
  b->prev = n;
}

static void link_after(es_devblock_t *b, es_devblock_t *n) {
  n->prev = b;
  n->next = b->next;
  if (b->next) b->next->prev = n;
  b->next = n;
}

/* ---- regions -------------------------------------------------------------------- */

/* Adds a region whose usable range holds at least `need` bytes, at least
 * `floor` bytes large when the limit allows, and indexes its one free block.
 * Needs one spare descriptor. Returns 0 with *out = the block, ES_EBUDGET
 * when the limit leaves no room (*want = the smallest region that would do),
 * or ES_ENOMEM. */
static int grow(es_devpool_t *p, uint64_t need, uint64_t floor, es_devblock_t **out,
                uint64_t *want) {
  uint64_t gran = p->prov.granularity;
  uint64_t base_pad = p->align > p->prov.align ? p->align - p->prov.align : 0;
  uint64_t min_raw = round_up(need + base_pad, gran);
  uint64_t raw = floor > min_raw ? round_up(floor, gran) : min_raw;
  *want = min_raw;
  if (p->max_bytes) {
    uint64_t room = p->max_bytes - p->st.region_bytes;
    if (raw > room) raw = room & ~(gran - 1);
    if (raw < min_raw) return ES_EBUDGET;
  }
  es__region_t *r = malloc(sizeof *r);
  if (!r) return ES_ENOMEM;
  void *base = p->prov.alloc_region(p->prov.ctx, raw);
  if (!base) {
    free(r);
    return ES_ENOMEM;
  }
  uint64_t b0 = (uint64_t)(uintptr_t)base;
  r->base = base;
  r->raw_size = raw;
  r->ubase = round_up(b0, p->align);
  r->usize = r->ubase - b0 < raw ? (raw - (r->ubase - b0)) & ~(p->align - 1) : 0;
  if (r->usize < need) { /* the provider broke its alignment promise */
    p->prov.free_region(p->prov.ctx, base, raw);
    free(r);
    return ES_ENOMEM;
  }
  r->prev = NULL;
  r->next = p->regions;
  if (p->regions) p->regions->prev = r;
  p->regions = r;
  r->first = take_spare(p, r, 0, r->usize);
  idx_insert(p, r->first);
  p->st.regions++;
  p->st.region_bytes += raw;
  p->st.grows++;
  *out = r->first;
  return 0;
}

static void drop_region(es_devpool_t *p, es__region_t *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    p->regions = r->next;
  if (r->next) r->next->prev = r->prev;
  p->prov.free_region(p->prov.ctx, r->base, r->raw_size);
  p->st.regions--;
  p->st.region_bytes -= r->raw_size;
  p->st.releases++;
  free(r);
}

static uint64_t trim_locked(es_devpool_t *p, uint64_t keep_bytes) {
  uint64_t released = 0;
  es__region_t *next;
  for (es__region_t *r = p->regions; r; r = next) {
    next = r->next;
    es_devblock_t *b = r->first;
    if (b->state != BLK_FREE || b->next) continue;
    if (p->st.region_bytes - r->raw_size < keep_bytes) continue;
    idx_erase(p, b);
    put_spare(p, b);
    released += r->raw_size;
    drop_region(p, r);
  }
  return released;
}

/* ---- the pool ------------------------------------------------------------------- */

es_devpool_params_t es_devpool_default_params(void) {
  es_devpool_params_t d = {
      .provider = NULL,
      .alignment = 256,
      .min_region_bytes = UINT64_C(16) << 20,
      .max_bytes = 0,
      .initial_bytes = 0,
      .min_split_bytes = 0,
  };
  return d;
}

/* Frees the descriptors kept for reuse. */
static void free_spares(es_devpool_t *p) {
  while (p->spare) {
    es_devblock_t *b = p->spare;
    p->spare = b->next;
    free(b);
  }
}

es_devpool_t *es_devpool_new(const es_devpool_params_t *params, es_error_t *err) {
  es_devpool_params_t d = es_devpool_default_params();
  const es_devpool_params_t *q = params ? params : &d;
  const es_devmem_provider_t *prov = q->provider ? q->provider : es_devmem_host_provider();
  const char *pname = prov->name ? prov->name : "(unnamed)";
  if (!prov->alloc_region || !prov->free_region) {
    es__fail(err, ES_EINVAL, -1, "devpool: provider %s lacks alloc_region or free_region", pname);
    return NULL;
  }
  if (!is_pow2(prov->align) || !is_pow2(prov->granularity) || prov->granularity > MAX_ALIGN) {
    es__fail(err, ES_EINVAL, -1,
             "devpool: provider %s: align %" PRIu64 " and granularity %" PRIu64
             " must be powers of two up to 2^40",
             pname, prov->align, prov->granularity);
    return NULL;
  }
  if (!is_pow2(q->alignment) || q->alignment > MAX_ALIGN) {
    es__fail(err, ES_EINVAL, -1,
             "devpool: alignment %" PRIu64 " is not a power of two up to 2^40 (256 is usual)",
             q->alignment);
    return NULL;
  }
  if (q->min_region_bytes > MAX_SIZE || q->min_split_bytes > MAX_SIZE ||
      q->initial_bytes > MAX_SIZE) {
    es__fail(err, ES_ERANGE, -1,
             "devpool: min_region_bytes, min_split_bytes and initial_bytes must be below 2^62");
    return NULL;
  }
  if (q->max_bytes && q->initial_bytes > q->max_bytes) {
    es__fail(err, ES_EBUDGET, -1,
             "devpool: initial_bytes %" PRIu64 " exceed max_bytes %" PRIu64
             ": lower one or raise the other",
             q->initial_bytes, q->max_bytes);
    return NULL;
  }
  es_devpool_t *p = calloc(1, sizeof *p);
  if (!p) goto fail_calloc;
  if (pthread_mutex_init(&p->lock, NULL) != 0) goto fail_mutex;
  p->prov = *prov;
  p->align = q->alignment;
  p->min_region = q->min_region_bytes;
  p->max_bytes = q->max_bytes;
  p->min_split = round_up(q->min_split_bytes > p->align ? q->min_split_bytes : p->align, p->align);
  p->rng = UINT64_C(0x6465767030303031); /* "devp0001" */
  if (q->initial_bytes) {
    es_devblock_t *b;
    uint64_t want;
    if (reserve_spares(p, 1) < 0) goto fail_grow;
    int rc = grow(p, round_up(q->initial_bytes, p->align), 0, &b, &want);
    if (rc == ES_EBUDGET) {
      es__fail(err, rc, -1,
               "devpool: initial region of %" PRIu64 " bytes passes max_bytes %" PRIu64
               " once rounded up to the provider's granularity %" PRIu64,
               q->initial_bytes, q->max_bytes, prov->granularity);
      goto fail_grow_reported;
    }
    if (rc < 0) {
      es__fail(err, rc, -1, "devpool: provider %s has no initial region of %" PRIu64 " bytes",
               pname, q->initial_bytes);
      goto fail_grow_reported;
    }
  }
  return p;

fail_grow:
  es__fail(err, ES_ENOMEM, -1, "devpool: out of host memory for the pool");
fail_grow_reported:
  free_spares(p);
  pthread_mutex_destroy(&p->lock);
  free(p);
  return NULL;
fail_mutex:
  free(p);
fail_calloc:
  es__fail(err, ES_ENOMEM, -1, "devpool: out of host memory for the pool");
  return NULL;
}

int es_devpool_free(es_devpool_t *p) {
  if (!p) return 0;
  pthread_mutex_lock(&p->lock);
  uint64_t held = p->st.held_blocks;
  pthread_mutex_unlock(&p->lock);
  if (held) return ES_ESTATE;
  while (p->regions) {
    es__region_t *r = p->regions;
    assert(r->first && r->first->state == BLK_FREE && !r->first->next);
    idx_erase(p, r->first);
    put_spare(p, r->first);
    drop_region(p, r);
  }
  assert(!p->root);
  free_spares(p);
  pthread_mutex_destroy(&p->lock);
  free(p);
  return 0;
}

/* The best fit for `need` bytes at alignment a, or NULL. For a == the pool's
 * alignment every free block fits from its start, so the lower bound is the
 * answer. A larger a may need a gap in front: the first FIT_SCAN candidates
 * from the lower bound are tried, then the smallest block that fits whatever
 * its address (need + a - align; block addresses are multiples of align, so
 * the gap is at most a - align). O(FIT_SCAN log n). */
static es_devblock_t *find_fit(es_devpool_t *p, uint64_t need, uint64_t a) {
  es_devblock_t *c = tr_lower_bound(p->root, need);
  if (a == p->align) return c;
  for (int i = 0; c && i < FIT_SCAN; i++, c = tr_next(p->root, c)) {
    uint64_t gap = round_up(blk_addr(c), a) - blk_addr(c);
    if (c->size >= gap + need) return c;
  }
  return tr_lower_bound(p->root, need + a - p->align);
}

/* Turns free block b into a held block of `need` bytes at alignment a, cutting
 * off the gap in front and a long enough tail as free blocks. Needs two spare
 * descriptors. */
static void carve(es_devpool_t *p, es_devblock_t *b, uint64_t need, uint64_t a, uint64_t req) {
  idx_erase(p, b);
  uint64_t gap = round_up(blk_addr(b), a) - blk_addr(b);
  assert(b->size >= gap + need);
  if (gap) { /* b's neighbours are held (invariant 2), so the pieces need no merging */
    es_devblock_t *f = take_spare(p, b->region, b->off, gap);
    link_before(b, f);
    idx_insert(p, f);
    b->off += gap;
    b->size -= gap;
    p->st.splits++;
  }
  if (b->size - need >= p->min_split) {
    es_devblock_t *t = take_spare(p, b->region, b->off + need, b->size - need);
    link_after(b, t);
    idx_insert(p, t);
    b->size = need;
    p->st.splits++;
  }
  b->state = BLK_HELD;
  b->req = req;
  b->align_log2 = (uint32_t)ctz64(a);
  p->st.used_bytes += b->size;
  p->st.requested_bytes += req;
  p->st.held_blocks++;
  p->st.allocs++;
  if (p->st.used_bytes > p->st.peak_used) p->st.peak_used = p->st.used_bytes;
}

es_devblock_t *es_devpool_alloc_aligned(es_devpool_t *p, uint64_t size, uint64_t align,
                                        es_error_t *err) {
  assert(p && "devpool: allocating from a NULL pool");
  int rc = 0;
  if (size == 0 || (align && !is_pow2(align)) || align > MAX_ALIGN || size > MAX_SIZE) {
    rc = size > MAX_SIZE ? ES_ERANGE : ES_EINVAL;
    pthread_mutex_lock(&p->lock);
    p->st.failures++;
    pthread_mutex_unlock(&p->lock);
    if (size == 0)
      es__fail(err, rc, -1, "devpool: 0 bytes asked for: ask for at least 1 byte");
    else if (size > MAX_SIZE)
      es__fail(err, rc, -1, "devpool: %" PRIu64 " bytes asked for: more than 2^62", size);
    else
      es__fail(err, rc, -1,
               "devpool: alignment %" PRIu64 " is not a power of two up to 2^40 (0 = pool's)",
               align);
    return NULL;
  }
  uint64_t a = align > p->align ? align : p->align;
  uint64_t need = round_up(size, p->align);
  uint64_t want = 0;
  es_devblock_t *b = NULL;
  pthread_mutex_lock(&p->lock);
  int host_oom = reserve_spares(p, 3) < 0; /* a gap, a tail, a new region's block */
  if (!host_oom) b = find_fit(p, need, a);
  if (!host_oom && !b) {
    rc = grow(p, need + (a - p->align), p->min_region, &b, &want);
    if (rc < 0 && trim_locked(p, 0) > 0)
      rc = grow(p, need + (a - p->align), p->min_region, &b, &want);
  }
  if (host_oom || rc < 0) {
    p->st.failures++;
    uint64_t lf = largest_free(p), held = p->st.region_bytes, nreg = p->st.regions;
    pthread_mutex_unlock(&p->lock);
    if (host_oom)
      es__fail(err, ES_ENOMEM, -1, "devpool: out of host memory for block descriptors");
    else if (rc == ES_EBUDGET)
      es__fail(err, rc, -1,
               "devpool: no room for %" PRIu64 " bytes (align %" PRIu64
               "): largest free block %" PRIu64 " bytes, %" PRIu64 " regions hold %" PRIu64
               " of max_bytes %" PRIu64 ", a new region needs %" PRIu64
               ": free blocks or raise max_bytes",
               size, a, lf, nreg, held, p->max_bytes, want);
    else
      es__fail(err, rc, -1,
               "devpool: provider %s has no region for %" PRIu64
               " bytes (largest free block %" PRIu64 ", %" PRIu64 " bytes held)",
               p->prov.name ? p->prov.name : "(unnamed)", size, lf, held);
    return NULL;
  }
  carve(p, b, need, a, size);
  pthread_mutex_unlock(&p->lock);
  return b;
}

es_devblock_t *es_devpool_alloc(es_devpool_t *p, uint64_t size, es_error_t *err) {
  return es_devpool_alloc_aligned(p, size, 0, err);
}

void es_devblock_free(es_devblock_t *b) {
  if (!b) return;
  es_devpool_t *p = b->pool;
  pthread_mutex_lock(&p->lock);
  assert(b->state == BLK_HELD && "devpool: freeing a block that is not held (double free?)");
  p->st.used_bytes -= b->size;
  p->st.requested_bytes -= b->req;
  p->st.held_blocks--;
  p->st.frees++;
  b->req = 0;
  if (b->prev && b->prev->state == BLK_FREE) {
    es_devblock_t *prev = b->prev;
    idx_erase(p, prev);
    prev->size += b->size;
    unlink_block(b);
    put_spare(p, b);
    b = prev;
    p->st.merges++;
  }
  if (b->next && b->next->state == BLK_FREE) {
    es_devblock_t *next = b->next;
    idx_erase(p, next);
    b->size += next->size;
    unlink_block(next);
    put_spare(p, next);
    p->st.merges++;
  }
  idx_insert(p, b);
  pthread_mutex_unlock(&p->lock);
}

void *es_devblock_ptr(const es_devblock_t *b) { return b ? (void *)(uintptr_t)blk_addr(b) : NULL; }

uint64_t es_devblock_size(const es_devblock_t *b) { return b ? b->req : 0; }

uint64_t es_devpool_trim(es_devpool_t *p, uint64_t keep_bytes) {
  pthread_mutex_lock(&p->lock);
  uint64_t released = trim_locked(p, keep_bytes);
  while (p->nspare > SPARE_AFTER) {
    es_devblock_t *b = p->spare;
    p->spare = b->next;
    p->nspare--;
    free(b);
  }
  pthread_mutex_unlock(&p->lock);
  return released;
}

void es_devpool_stats(es_devpool_t *p, es_devpool_stats_t *out) {
  pthread_mutex_lock(&p->lock);
  *out = p->st;
  out->largest_free = largest_free(p);
  pthread_mutex_unlock(&p->lock);
  out->fragmentation =
      out->free_bytes ? 1.0 - (double)out->largest_free / (double)out->free_bytes : 0.0;
}

/* ---- the invariant checker ------------------------------------------------------ */

/* Is b reachable in the index by its own key? */
static int tr_contains(const es_devblock_t *t, const es_devblock_t *b) {
  while (t && t != b) t = key_less(b, t) ? t->left : t->right;
  return t == b;
}

/* Checks order, heap and state below t; counts nodes into *n, stopping past
 * `limit` (a cycle). Returns 0 or a message. */
static const char *tr_check(const es_devpool_t *p, const es_devblock_t *t, const es_devblock_t *lo,
                            const es_devblock_t *hi, uint64_t *n, uint64_t limit) {
  if (!t) return NULL;
  if (++*n > limit) return "the free index holds more nodes than there are free blocks";
  if (t->state != BLK_FREE || t->pool != p) return "the free index holds a block that is not free";
  if ((lo && !key_less(lo, t)) || (hi && !key_less(t, hi)))
    return "the free index is not ordered by (size, address)";
  if ((t->left && t->left->prio > t->prio) || (t->right && t->right->prio > t->prio))
    return "the free index's priorities are not a heap";
  const char *m = tr_check(p, t->left, lo, t, n, limit);
  return m ? m : tr_check(p, t->right, t, hi, n, limit);
}

#define BAD(...) return es__fail(err, ES_ESTATE, -1, "devpool check: " __VA_ARGS__)

static int check_locked(es_devpool_t *p, es_error_t *err) {
  uint64_t used = 0, req = 0, fbytes = 0, nfree = 0, nheld = 0, nreg = 0, rbytes = 0;
  const es__region_t *rprev = NULL;
  for (const es__region_t *r = p->regions; r; rprev = r, r = r->next) {
    uint64_t b0 = (uint64_t)(uintptr_t)r->base;
    nreg++;
    rbytes += r->raw_size;
    if (r->prev != rprev) BAD("region %" PRIu64 " has a wrong prev link", nreg);
    if (r->ubase % p->align || r->usize % p->align)
      BAD("region %" PRIu64 " usable range is not aligned to %" PRIu64, nreg, p->align);
    if (r->ubase < b0 || r->ubase - b0 + r->usize > r->raw_size || !r->usize)
      BAD("region %" PRIu64 " usable range lies outside what the provider gave", nreg);
    uint64_t off = 0;
    const es_devblock_t *prev = NULL;
    for (const es_devblock_t *b = r->first; b; prev = b, b = b->next) {
      if (b->pool != p || b->region != r || b->prev != prev)
        BAD("block at offset %" PRIu64 " of region %" PRIu64 " has wrong links", b->off, nreg);
      if (b->off != off)
        BAD("block at offset %" PRIu64 " of region %" PRIu64 " should start at %" PRIu64
            ": blocks must tile the region",
            b->off, nreg, off);
      if (!b->size || b->size % p->align)
        BAD("block at offset %" PRIu64 " has size %" PRIu64 ", not a multiple of %" PRIu64, b->off,
            b->size, p->align);
      if (b->size > r->usize - off)
        BAD("block at offset %" PRIu64 " runs past its region's end", b->off);
      off += b->size;
      if (b->state == BLK_FREE) {
        if (prev && prev->state == BLK_FREE)
          BAD("free blocks at offsets %" PRIu64 " and %" PRIu64 " are neighbours", prev->off,
              b->off);
        if (b->key != b->size || b->kaddr != blk_addr(b))
          BAD("free block at offset %" PRIu64 " is indexed under (size %" PRIu64
              ", address %#" PRIx64 "), it is (%" PRIu64 ", %#" PRIx64 ")",
              b->off, b->key, b->kaddr, b->size, blk_addr(b));
        if (!tr_contains(p->root, b))
          BAD("free block at offset %" PRIu64 " is not in the free index", b->off);
        fbytes += b->size;
        nfree++;
      } else if (b->state == BLK_HELD) {
        uint64_t need = round_up(b->req, p->align);
        if (!b->req || b->size < need || b->size - need >= p->min_split)
          BAD("held block at offset %" PRIu64 " has size %" PRIu64 " for a request of %" PRIu64
              " (min split %" PRIu64 ")",
              b->off, b->size, b->req, p->min_split);
        if (b->align_log2 >= 64 || blk_addr(b) & ((UINT64_C(1) << b->align_log2) - 1))
          BAD("held block at offset %" PRIu64 " is not aligned to 2^%u", b->off,
              (unsigned)b->align_log2);
        used += b->size;
        req += b->req;
        nheld++;
      } else {
        BAD("block at offset %" PRIu64 " has state %#x", b->off, (unsigned)b->state);
      }
    }
    if (off != r->usize)
      BAD("the blocks of region %" PRIu64 " cover %" PRIu64 " of %" PRIu64 " bytes", nreg, off,
          r->usize);
  }
  uint64_t nidx = 0;
  const char *m = tr_check(p, p->root, NULL, NULL, &nidx, nfree);
  if (m) BAD("%s", m);
  if (nidx != nfree)
    BAD("the free index holds %" PRIu64 " blocks, the regions %" PRIu64, nidx, nfree);
  const es_devpool_stats_t *s = &p->st;
  if (s->used_bytes != used || s->requested_bytes != req || s->free_bytes != fbytes)
    BAD("used/requested/free bytes are %" PRIu64 "/%" PRIu64 "/%" PRIu64 ", the blocks say %" PRIu64
        "/%" PRIu64 "/%" PRIu64,
        s->used_bytes, s->requested_bytes, s->free_bytes, used, req, fbytes);
  if (s->free_blocks != nfree || s->held_blocks != nheld || s->regions != nreg ||
      s->region_bytes != rbytes)
    BAD("free/held blocks, regions, region bytes are %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
        ", recounted %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64,
        s->free_blocks, s->held_blocks, s->regions, s->region_bytes, nfree, nheld, nreg, rbytes);
  if (s->allocs - s->frees != nheld)
    BAD("%" PRIu64 " allocations - %" PRIu64 " frees != %" PRIu64 " held", s->allocs, s->frees,
        nheld);
  if (s->grows - s->releases != nreg) BAD("grows - releases != regions");
  if (s->peak_used < used) BAD("peak_used %" PRIu64 " below used %" PRIu64, s->peak_used, used);
  if (p->max_bytes && rbytes > p->max_bytes)
    BAD("regions hold %" PRIu64 " bytes, above max_bytes %" PRIu64, rbytes, p->max_bytes);
  uint64_t ns = 0;
  for (const es_devblock_t *b = p->spare; b && ns <= p->nspare; b = b->next, ns++)
    if (b->state != BLK_SPARE) BAD("a spare descriptor is in use");
  if (ns != p->nspare) BAD("the spare list holds %" PRIu64 ", counted %" PRIu64, ns, p->nspare);
  return 0;
}

#undef BAD

int es_devpool_check(es_devpool_t *p, es_error_t *err) {
  pthread_mutex_lock(&p->lock);
  int rc = check_locked(p, err);
  pthread_mutex_unlock(&p->lock);
  return rc;
}

/* ---- the host provider ---------------------------------------------------------- */

static void *host_alloc(void *ctx, uint64_t size) {
  (void)ctx;
  if ((uint64_t)(size_t)size != size) return NULL; /* armhf: more than the address space */
  void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void host_free(void *ctx, void *base, uint64_t size) {
  (void)ctx;
  munmap(base, (size_t)size);
}

/* 4096 holds for every page size Linux uses (4, 16, 64 KiB), as mmap returns
 * page-aligned bases and munmap takes back the pages a length covers. */
static const es_devmem_provider_t es__host_provider = {
    .name = "host-mmap",
    .ctx = NULL,
    .align = 4096,
    .granularity = 4096,
    .alloc_region = host_alloc,
    .free_region = host_free,
};

const es_devmem_provider_t *es_devmem_host_provider(void) { return &es__host_provider; }
