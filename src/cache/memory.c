/*
 * memory.c - the in-process response cache tier: sharded, bounded in bytes,
 * with a TTL, and plain LRU or W-TinyLFU admission. cache.h has the
 * contract, docs/server/cache.md the design and the measured hit rates.
 *
 * A key's 64-bit hash (keyed with a per-cache seed) picks its shard (top
 * bits) and its bucket in the shard's hash table (low bits). Each shard is
 * an independent cache behind one mutex: a chained hash table, three LRU
 * lists (window, probation, protected), an expiry FIFO, a count-min sketch
 * and its statistics. No operation ever holds two shard locks, and entries
 * are freed after the lock is released.
 *
 * W-TinyLFU, as Caffeine does it (Einziger, Friedman, Manes: "TinyLFU: A
 * Highly Efficient Cache Admission Policy", 2017), by bytes instead of
 * entries:
 *   - a put enters the window's MRU end; while the window holds more than
 *     wmax bytes (1%), its LRU entries move to probation's MRU end: they
 *     are this round's candidates;
 *   - while the shard holds more than cap bytes, the oldest candidate is
 *     compared with probation's LRU entry (the victim) and the one the
 *     sketch says is used less often is evicted. A tie evicts the
 *     candidate; a candidate with frequency >= 6 that loses is let in 1
 *     time in 128 anyway, so nobody can keep a victim pinned by hammering
 *     keys that collide with it in the sketch. With no candidate left,
 *     victims go without contest; with probation empty, protected's and
 *     then the window's LRU entries;
 *   - a hit in probation promotes to protected; protected over rmax bytes
 *     (80% of the main space) demotes its LRU entries to probation.
 * Plain LRU is the same code with an unbounded window: every entry stays in
 * the window, and eviction takes its LRU end.
 *
 * The sketch: 4-bit counters packed 16 to a 64-bit word, one word per entry
 * the shard holds (grown with the entries); a key has 4 counters, in 4
 * hashed words at 4 different offsets. Every put and hit adds 1 to the
 * key's smallest counters (conservative update; up to 15); the estimate is
 * the least of the 4. After 10 x words additions every counter is halved,
 * so frequencies follow recent traffic. A key's word index is its hash
 * masked, so doubling the sketch sends word i to i or i + W: growing copies
 * the words into both halves and no key's estimate changes (history
 * survives the cache filling up); halving keeps each counter's larger twin.
 *
 * Invariants (per shard, whenever its lock is free):
 *   1. Every entry is in exactly one hash chain, in the list its `region`
 *      names, and in the expiry FIFO.
 *   2. wbytes, pbytes and rbytes are the charges (es_cache_memory_charge)
 *      of the entries in window, probation and protected; nent counts
 *      them. used() = wbytes + pbytes + rbytes + fixed(), where fixed() is
 *      the shard struct, hash table and sketch.
 *   3. used() <= cap. fixed() <= cap: the tables start under 1 KiB + cap/32
 *      (cap >= 4 KiB) and grow only while they stay within cap/4. With an
 *      entry bound, nent <= maxent too.
 *   4. Admission off: probation and protected are empty and sk is NULL.
 *   5. The expiry FIFO is in put order. With one TTL for the tier that is
 *      expiry order, up to differences between the now_us that different
 *      threads pass (harmless: a lookup checks its own entry's expiry).
 */
#include "edgeserve/cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/fail.h"
#include "../common/splitmix.h"

#define MIN_SHARD_BYTES  4096u
#define AUTO_SHARD_BYTES (256u << 10)
#define MAX_SHARDS       256u
#define MIN_BUCKETS      16u
#define MIN_SKETCH       8u  /* words */
#define SWEEP_ON_GET     8u  /* expired entries a get frees at most */
#define SWEEP_ON_PUT     64u /* ... a put (> 1: sweeping outpaces the puts) */
#define HASHDOS_FREQ     6u  /* Caffeine's threshold for the random admission */
#define SKETCH_DIV       512 /* initial sketch: a word per 512 bytes of the shard */

enum { WINDOW, PROBATION, PROTECTED };

typedef struct node {
  struct node *prev, *next;
} node;

typedef struct ent {
  node lru;          /* in its region's list */
  node ttl;          /* in the shard's expiry FIFO */
  struct ent *hnext; /* hash chain; after removal, the list of entries to free */
  uint64_t hash;
  int64_t expires; /* INT64_MAX: never */
  uint32_t klen, vlen;
  uint8_t region;
  unsigned char data[]; /* key, then value */
} ent;

#define ENT_OF(l, field) ((ent *)(void *)((char *)(l)-offsetof(ent, field)))

typedef struct shard {
  alignas(64) pthread_mutex_t lock; /* 64: two shards never share a cache line */
  ent **tab;
  uint32_t nb;   /* buckets, a power of two */
  uint32_t skw;  /* sketch words, a power of two; 0 with admission off */
  uint32_t skw0; /* ... at creation, what a clear returns to */
  uint64_t *sk;
  uint64_t sksize, sksample; /* additions since the last halving; when to halve */
  uint64_t rng;
  node win, prob, prot, ttl; /* sentinels; LRU end at .next, MRU end at .prev */
  uint64_t nent, wbytes, pbytes, rbytes;
  uint64_t cap, wmax, rmax;
  uint64_t maxent; /* the shard's share of max_entries; 0: no bound */
  uint64_t hits, misses, puts, admitted, rejected, evictions, expirations;
} shard;

typedef struct mem {
  int admission;
  int64_t ttl_us;
  uint64_t seed;
  unsigned nshards, shift; /* shard = hash >> shift when nshards > 1 */
  _Atomic uint64_t max_bytes, shard_cap;
  pthread_mutex_t resize; /* set_max_bytes against stats: a sum of shards under one bound */
  shard *shards;
} mem;

/* ---- hashing ---- */

#define P1 0x9e3779b185ebca87ull
#define P2 0xc2b2ae3d27d4eb4full
#define P3 0x165667b19e3779f9ull
#define P4 0x85ebca77c2b2ae63ull
#define P5 0x27d4eb2f165667c5ull

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* A 64-bit keyed hash in the manner of xxHash64's short-input path: 8 bytes
 * per multiply-rotate-multiply round, then a full avalanche. Not
 * cryptographic: the seed only makes collisions expensive to aim. Bytes are
 * read in native order (the hash never leaves the process). */
static uint64_t hash64(const void *key, size_t n, uint64_t seed) {
  const unsigned char *p = key;
  uint64_t h = seed + P5 + (uint64_t)n;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    h ^= rotl(v * P2, 31) * P1;
    h = rotl(h, 27) * P1 + P4;
  }
  if (n >= 4) {
    uint32_t v;
    memcpy(&v, p, 4);
    h ^= (uint64_t)v * P1;
    h = rotl(h, 23) * P2 + P3;
    p += 4;
    n -= 4;
  }
  for (; n; n--, p++) {
    h ^= *p * P5;
    h = rotl(h, 11) * P1;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  return h ^ (h >> 32);
}

/* ---- lists ---- */

static void l_init(node *s) { s->prev = s->next = s; }
static int l_empty(const node *s) { return s->next == s; }
static void l_del(node *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
}
/* Appends l at the MRU end (before the sentinel). */
static void l_push(node *s, node *l) {
  l->prev = s->prev;
  l->next = s;
  s->prev->next = l;
  s->prev = l;
}

/* ---- sizes ---- */

uint64_t es_cache_memory_charge(size_t klen, size_t vlen) {
  /* glibc: the request + one size word, rounded up to MALLOC_ALIGNMENT
   * (alignof(max_align_t) where it is at least 2 words), at least 4 words */
  uint64_t a =
      alignof(max_align_t) > 2 * sizeof(size_t) ? alignof(max_align_t) : 2 * sizeof(size_t);
  uint64_t n = (uint64_t)offsetof(ent, data) + klen + vlen + sizeof(size_t);
  n = (n + a - 1) / a * a;
  return n < 4 * sizeof(size_t) ? 4 * sizeof(size_t) : n;
}

static uint64_t charge(const ent *e) { return es_cache_memory_charge(e->klen, e->vlen); }

static uint64_t fixed(const shard *s) {
  return sizeof(shard) + (uint64_t)s->nb * sizeof(ent *) + (uint64_t)s->skw * sizeof(uint64_t);
}

static uint64_t used(const shard *s) { return s->wbytes + s->pbytes + s->rbytes + fixed(s); }

static uint32_t pow2_at_least(uint64_t n, uint32_t lo, uint32_t hi) {
  uint32_t p = lo;
  while (p < n && p < hi) p *= 2;
  return p;
}

/* ---- the sketch ---- */

static const uint64_t SK_SEED[4] = {0xc3a5c85c97cb3127ull, 0xb492b66fbe98f273ull,
                                    0x9ae16a3b2f90404full, 0xcbf29ce484222325ull};

static uint32_t sk_index(uint64_t h, int i, uint32_t mask) {
  uint64_t x = (h + SK_SEED[i]) * SK_SEED[i];
  x += x >> 32;
  return (uint32_t)x & mask;
}

/* The key's estimated frequency, 0..15: the least of its 4 counters. */
static unsigned sk_freq(const shard *s, uint64_t h) {
  unsigned start = (unsigned)(h & 3) << 2, f = 15;
  for (int i = 0; i < 4; i++) {
    uint64_t w = s->sk[sk_index(h, i, s->skw - 1)];
    unsigned c = (unsigned)(w >> ((start + (unsigned)i) << 2)) & 15;
    if (c < f) f = c;
  }
  return f;
}

/* Halves every counter; sksize loses the halves the truncation dropped. */
static void sk_halve(shard *s) {
  uint64_t odd = 0;
  for (uint32_t i = 0; i < s->skw; i++) {
    odd += (uint64_t)__builtin_popcountll(s->sk[i] & 0x1111111111111111ull);
    s->sk[i] = (s->sk[i] >> 1) & 0x7777777777777777ull;
  }
  s->sksize = (s->sksize - (odd >> 2)) >> 1;
}

/* Conservative update: only the counters at the key's current minimum go
 * up, so a key colliding with a popular one does not inflate the popular
 * one's counters (measured: +0.1..0.2 points of hit rate, 5-25% fewer
 * admissions, i.e. less churn, on bench_cache's traces). */
static void sk_add(shard *s, uint64_t h) {
  unsigned start = (unsigned)(h & 3) << 2;
  int added = 0;
  uint64_t *w[4];
  unsigned c[4], min = 15;
  for (int i = 0; i < 4; i++) {
    w[i] = &s->sk[sk_index(h, i, s->skw - 1)];
    c[i] = (unsigned)(*w[i] >> ((start + (unsigned)i) << 2)) & 15;
    if (c[i] < min) min = c[i];
  }
  for (int i = 0; i < 4; i++) {
    unsigned off = (start + (unsigned)i) << 2;
    if (c[i] == min && min != 15) {
      *w[i] += (uint64_t)1 << off;
      added = 1;
    }
  }
  if (added && ++s->sksize >= s->sksample) sk_halve(s);
}

/* A new, empty sketch of `words` words (shard creation). */
static int sk_init(shard *s, uint32_t words) {
  s->sk = calloc(words, sizeof *s->sk);
  if (!s->sk) return ES_ENOMEM;
  s->skw = s->skw0 = words;
  s->sksize = 0;
  s->sksample = 10 * (uint64_t)words;
  return 0;
}

/* Doubles the sketch keeping every estimate (see the top of the file).
 * ES_ENOMEM: left as it was. */
static int sk_grow(shard *s) {
  uint64_t *t = realloc(s->sk, (size_t)s->skw * 2 * sizeof *t);
  if (!t) return ES_ENOMEM;
  memcpy(t + s->skw, t, (size_t)s->skw * sizeof *t);
  s->sk = t;
  s->skw *= 2;
  s->sksample *= 2;
  return 0;
}

/* Halves the sketch: each counter keeps the larger of itself and its twin
 * (a count-min estimate may only err upwards). Never fails: the array stays
 * where it is when realloc cannot give a smaller one. */
static void sk_shrink(shard *s) {
  uint32_t half = s->skw / 2;
  for (uint32_t i = 0; i < half; i++) {
    uint64_t a = s->sk[i], b = s->sk[i + half], m = 0;
    for (unsigned off = 0; off < 64; off += 4) {
      uint64_t ca = (a >> off) & 15, cb = (b >> off) & 15;
      m |= (ca > cb ? ca : cb) << off;
    }
    s->sk[i] = m;
  }
  uint64_t *t = realloc(s->sk, (size_t)half * sizeof *t);
  if (t) s->sk = t;
  s->skw = half;
  s->sksample /= 2;
  if (s->sksize >= s->sksample) sk_halve(s);
}

/* ---- the hash table ---- */

static ent **bucket(const shard *s, uint64_t h) { return &s->tab[h & (s->nb - 1)]; }

static ent *find(const shard *s, uint64_t h, const void *key, size_t klen) {
  for (ent *e = *bucket(s, h); e; e = e->hnext)
    if (e->hash == h && e->klen == klen && (klen == 0 || memcmp(e->data, key, klen) == 0)) return e;
  return NULL;
}

static void h_del(shard *s, ent *e) {
  ent **pp = bucket(s, e->hash);
  while (*pp != e) pp = &(*pp)->hnext;
  *pp = e->hnext;
}

/* Doubles the table (ES_ENOMEM: left as it was). */
static int h_grow(shard *s) {
  uint32_t nb = s->nb * 2;
  ent **t = calloc(nb, sizeof *t);
  if (!t) return ES_ENOMEM;
  for (uint32_t i = 0; i < s->nb; i++) {
    for (ent *e = s->tab[i], *next; e; e = next) {
      next = e->hnext;
      ent **b = &t[e->hash & (nb - 1)];
      e->hnext = *b;
      *b = e;
    }
  }
  free(s->tab);
  s->tab = t;
  s->nb = nb;
  return 0;
}

/* Halves the table in place: bucket i + nb/2 joins bucket i. Never fails. */
static void h_shrink(shard *s) {
  uint32_t half = s->nb / 2;
  for (uint32_t i = 0; i < half; i++) {
    ent **pp = &s->tab[i];
    while (*pp) pp = &(*pp)->hnext;
    *pp = s->tab[i + half];
  }
  ent **t = realloc(s->tab, (size_t)half * sizeof *t);
  if (t) s->tab = t;
  s->nb = half;
}

/* Before a new entry: grows the table and the sketch to one slot / one word
 * per entry, while they stay within a quarter of the shard (invariant 3).
 * Out of memory, they stay as they are (longer chains, a coarser sketch). */
static void grow_tables(shard *s) {
  uint64_t n = s->nent + 1;
  if (n > s->nb && s->nb < (1u << 30) && fixed(s) + (uint64_t)s->nb * sizeof(ent *) <= s->cap / 4)
    (void)h_grow(s);
  if (s->sk && n > s->skw && s->skw < (1u << 28) &&
      fixed(s) + (uint64_t)s->skw * sizeof(uint64_t) <= s->cap / 4)
    (void)sk_grow(s);
}

/* After the cap went down: shrinks the tables back within cap/4, the larger
 * first (not below their minimum sizes). */
static void fit_tables(shard *s) {
  while (fixed(s) > s->cap / 4) {
    uint64_t tb = (uint64_t)s->nb * sizeof(ent *), sb = (uint64_t)s->skw * sizeof(uint64_t);
    if (s->sk && s->skw > MIN_SKETCH && (sb >= tb || s->nb <= MIN_BUCKETS))
      sk_shrink(s);
    else if (s->nb > MIN_BUCKETS)
      h_shrink(s);
    else
      break;
  }
}

/* ---- regions ---- */

static node *region_list(shard *s, int r) {
  return r == WINDOW ? &s->win : r == PROBATION ? &s->prob : &s->prot;
}

static uint64_t *region_bytes(shard *s, int r) {
  return r == WINDOW ? &s->wbytes : r == PROBATION ? &s->pbytes : &s->rbytes;
}

static ent *oldest(node *list) { return l_empty(list) ? NULL : ENT_OF(list->next, lru); }

/* The entry after e towards the MRU end of its list, or NULL. */
static ent *newer(shard *s, ent *e) {
  node *l = e->lru.next;
  return l == region_list(s, e->region) ? NULL : ENT_OF(l, lru);
}

/* Moves e to the MRU end of region r (its own region: a use). */
static void move_to(shard *s, ent *e, int r) {
  uint64_t c = charge(e);
  l_del(&e->lru);
  *region_bytes(s, e->region) -= c;
  e->region = (uint8_t)r;
  l_push(region_list(s, r), &e->lru);
  *region_bytes(s, r) += c;
}

/* A hit: window and protected entries move to their MRU end (a hot key
 * usually is there already: then nothing is written, which spares the
 * cache lines of its neighbours), probation entries are promoted to
 * protected, which demotes its overflow. */
static void touch(shard *s, ent *e) {
  if (e->region != PROBATION) {
    if (e->lru.next != region_list(s, e->region)) move_to(s, e, e->region);
    return;
  }
  move_to(s, e, PROTECTED);
  while (s->rbytes > s->rmax) move_to(s, oldest(&s->prot), PROBATION);
}

/* Unlinks e everywhere and queues it on *dead, to be freed after the lock. */
static void drop(shard *s, ent *e, ent **dead) {
  h_del(s, e);
  l_del(&e->lru);
  l_del(&e->ttl);
  *region_bytes(s, e->region) -= charge(e);
  s->nent--;
  e->hnext = *dead;
  *dead = e;
}

static void free_dead(ent *d) {
  while (d) {
    ent *next = d->hnext;
    free(d);
    d = next;
  }
}

/* Frees expired entries, oldest first, `max` at most. */
static void sweep(shard *s, int64_t now, unsigned max, ent **dead) {
  for (; max && !l_empty(&s->ttl); max--) {
    ent *e = ENT_OF(s->ttl.next, ttl);
    if (e->expires > now) break;
    drop(s, e, dead);
    s->expirations++;
  }
}

static uint64_t xorshift(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static int admit(shard *s, const ent *cand, const ent *victim) {
  unsigned fc = sk_freq(s, cand->hash), fv = sk_freq(s, victim->hash);
  if (fc > fv) return 1;
  if (fc >= HASHDOS_FREQ) return (xorshift(&s->rng) & 127) == 0;
  return 0;
}

/* Restores invariant 3 by the policy described at the top of the file. */
static void evict(shard *s, ent **dead) {
  ent *cand = NULL;
  uint64_t ncand = 0;
  while (s->wbytes > s->wmax) {
    ent *e = oldest(&s->win);
    move_to(s, e, PROBATION);
    if (!cand) cand = e;
    ncand++;
  }
  ent *victim = oldest(&s->prob);
  while (used(s) > s->cap || (s->maxent && s->nent > s->maxent)) {
    if (!victim) { /* probation is empty, so there is no candidate either */
      ent *e = oldest(&s->prot);
      if (!e) e = oldest(&s->win);
      assert(e && "fixed() <= cap, so something is left to evict");
      drop(s, e, dead);
      s->evictions++;
      continue;
    }
    if (!ncand || cand == victim) { /* nothing to compare with */
      ent *next = newer(s, victim);
      if (ncand) { /* the victim is the oldest candidate */
        ncand--;
        s->rejected++;
        cand = next;
      }
      drop(s, victim, dead);
      s->evictions++;
      victim = next;
      continue;
    }
    ent *next_cand = newer(s, cand); /* the victim is older than the candidate */
    ncand--;
    if (admit(s, cand, victim)) {
      ent *next_victim = newer(s, victim);
      drop(s, victim, dead);
      s->admitted++;
      victim = next_victim;
    } else {
      drop(s, cand, dead);
      s->rejected++;
    }
    s->evictions++;
    cand = next_cand;
  }
  s->admitted += ncand; /* candidates that found room */
}

/* ---- the tier's functions ---- */

static shard *shard_of(const mem *m, uint64_t h) {
  return m->nshards == 1 ? m->shards : &m->shards[h >> m->shift];
}

static void set_cap(shard *s, uint64_t cap, int admission) {
  s->cap = cap;
  s->wmax = admission ? cap / 100 : UINT64_MAX;
  s->rmax = (cap - cap / 100) / 10 * 8;
}

static int mem_get(void *impl, const void *key, size_t klen, int64_t now_us, void *buf, size_t cap,
                   size_t *vlen) {
  mem *m = impl;
  uint64_t h = hash64(key, klen, m->seed);
  shard *s = shard_of(m, h);
  ent *dead = NULL;
  int rc = 0;
  pthread_mutex_lock(&s->lock);
  sweep(s, now_us, SWEEP_ON_GET, &dead);
  ent *e = find(s, h, key, klen);
  if (e && e->expires <= now_us) {
    drop(s, e, &dead);
    s->expirations++;
    e = NULL;
  }
  if (!e) {
    s->misses++;
    rc = ES_ENOTFOUND;
  } else {
    s->hits++;
    if (s->sk) sk_add(s, h);
    touch(s, e);
    *vlen = e->vlen;
    if (e->vlen > cap)
      rc = ES_ERANGE;
    else if (e->vlen)
      memcpy(buf, e->data + e->klen, e->vlen);
  }
  pthread_mutex_unlock(&s->lock);
  free_dead(dead);
  return rc;
}

/* put and warm: `uses` sketch additions (1 for a put). */
static int put_entry(mem *m, const void *key, size_t klen, const void *val, size_t vlen,
                     unsigned uses, int64_t now_us) {
#if SIZE_MAX > UINT32_MAX
  if (klen > UINT32_MAX || vlen > UINT32_MAX) return ES_ERANGE; /* e->klen, e->vlen */
#endif
  uint64_t ch = es_cache_memory_charge(klen, vlen);
  if (ch > atomic_load_explicit(&m->shard_cap, memory_order_relaxed)) return ES_ERANGE;
  ent *n = malloc(offsetof(ent, data) + klen + vlen);
  if (!n) return ES_ENOMEM;
  uint64_t h = hash64(key, klen, m->seed);
  n->hash = h;
  n->klen = (uint32_t)klen;
  n->vlen = (uint32_t)vlen;
  n->expires = !m->ttl_us || now_us > INT64_MAX - m->ttl_us ? INT64_MAX : now_us + m->ttl_us;
  if (klen) memcpy(n->data, key, klen);
  if (vlen) memcpy(n->data + klen, val, vlen);

  shard *s = shard_of(m, h);
  ent *dead = NULL;
  pthread_mutex_lock(&s->lock);
  sweep(s, now_us, SWEEP_ON_PUT, &dead);
  ent *old = find(s, h, key, klen);
  if (!old) grow_tables(s);
  if (ch > s->cap - fixed(s)) {
    pthread_mutex_unlock(&s->lock);
    free(n);
    free_dead(dead);
    return ES_ERANGE;
  }
  if (s->sk)
    for (unsigned i = 0; i < uses; i++) sk_add(s, h);
  if (old) { /* n takes old's place in its chain and list, then counts as a use */
    ent **pp = bucket(s, h);
    while (*pp != old) pp = &(*pp)->hnext;
    *pp = n;
    n->hnext = old->hnext;
    n->lru = old->lru;
    n->lru.prev->next = &n->lru;
    n->lru.next->prev = &n->lru;
    n->region = old->region;
    *region_bytes(s, n->region) += ch - charge(old);
    l_del(&old->ttl);
    l_push(&s->ttl, &n->ttl);
    old->hnext = dead;
    dead = old;
    touch(s, n);
  } else {
    ent **b = bucket(s, h);
    n->hnext = *b;
    *b = n;
    n->region = WINDOW;
    l_push(&s->win, &n->lru);
    l_push(&s->ttl, &n->ttl);
    s->wbytes += ch;
    s->nent++;
  }
  s->puts++;
  evict(s, &dead);
  assert(used(s) <= s->cap);
  pthread_mutex_unlock(&s->lock);
  free_dead(dead);
  return 0;
}

static int mem_put(void *impl, const void *key, size_t klen, const void *val, size_t vlen,
                   int64_t now_us) {
  return put_entry(impl, key, klen, val, vlen, 1, now_us);
}

static int mem_warm(void *impl, const void *key, size_t klen, const void *val, size_t vlen,
                    uint32_t count, int64_t now_us) {
  unsigned uses = count < 1 ? 1 : count > 15 ? 15 : (unsigned)count;
  return put_entry(impl, key, klen, val, vlen, uses, now_us);
}

static int mem_erase(void *impl, const void *key, size_t klen) {
  mem *m = impl;
  uint64_t h = hash64(key, klen, m->seed);
  shard *s = shard_of(m, h);
  ent *dead = NULL;
  pthread_mutex_lock(&s->lock);
  ent *e = find(s, h, key, klen);
  if (e) drop(s, e, &dead);
  pthread_mutex_unlock(&s->lock);
  free_dead(dead);
  return e ? 0 : ES_ENOTFOUND;
}

static int mem_erase_prefix(void *impl, const void *prefix, size_t plen, uint64_t *erased) {
  mem *m = impl;
  uint64_t n = 0;
  for (unsigned i = 0; i < m->nshards; i++) {
    shard *s = &m->shards[i];
    ent *dead = NULL;
    pthread_mutex_lock(&s->lock);
    for (node *l = s->ttl.next; l != &s->ttl;) {
      ent *e = ENT_OF(l, ttl);
      l = l->next;
      if (e->klen >= plen && (plen == 0 || memcmp(e->data, prefix, plen) == 0)) {
        drop(s, e, &dead);
        n++;
      }
    }
    pthread_mutex_unlock(&s->lock);
    free_dead(dead);
  }
  if (erased) *erased = n;
  return 0;
}

/* Empties a shard (lock held) and returns its entries, chained by hnext. */
static ent *empty_shard(shard *s) {
  ent *dead = NULL;
  for (node *l = s->ttl.next; l != &s->ttl;) {
    ent *e = ENT_OF(l, ttl);
    l = l->next;
    e->hnext = dead;
    dead = e;
  }
  memset(s->tab, 0, (size_t)s->nb * sizeof *s->tab);
  l_init(&s->win);
  l_init(&s->prob);
  l_init(&s->prot);
  l_init(&s->ttl);
  s->nent = s->wbytes = s->pbytes = s->rbytes = 0;
  if (s->sk) {
    memset(s->sk, 0, (size_t)s->skw * sizeof *s->sk);
    s->sksize = 0;
  }
  return dead;
}

static void mem_clear(void *impl) {
  mem *m = impl;
  for (unsigned i = 0; i < m->nshards; i++) {
    shard *s = &m->shards[i];
    pthread_mutex_lock(&s->lock);
    ent *dead = empty_shard(s);
    while (s->nb > MIN_BUCKETS) h_shrink(s); /* back to the sizes at creation */
    while (s->skw > s->skw0) sk_shrink(s);
    s->sksize = 0;
    pthread_mutex_unlock(&s->lock);
    free_dead(dead);
  }
}

static void mem_stats(void *impl, es_cache_stats_t *out) {
  mem *m = impl;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&m->resize);
  for (unsigned i = 0; i < m->nshards; i++) {
    shard *s = &m->shards[i];
    pthread_mutex_lock(&s->lock);
    out->hits += s->hits;
    out->misses += s->misses;
    out->puts += s->puts;
    out->admitted += s->admitted;
    out->rejected += s->rejected;
    out->evictions += s->evictions;
    out->expirations += s->expirations;
    out->entries += s->nent;
    out->bytes += used(s);
    pthread_mutex_unlock(&s->lock);
  }
  out->max_bytes = atomic_load(&m->max_bytes);
  pthread_mutex_unlock(&m->resize);
}

static int mem_set_max_bytes(void *impl, uint64_t max_bytes) {
  mem *m = impl;
  uint64_t cap = max_bytes / m->nshards;
  if (cap < MIN_SHARD_BYTES) return ES_EINVAL;
  pthread_mutex_lock(&m->resize);
  atomic_store(&m->max_bytes, max_bytes);
  atomic_store(&m->shard_cap, cap);
  for (unsigned i = 0; i < m->nshards; i++) {
    shard *s = &m->shards[i];
    ent *dead = NULL;
    pthread_mutex_lock(&s->lock);
    set_cap(s, cap, m->admission);
    fit_tables(s);
    while (s->rbytes > s->rmax) move_to(s, oldest(&s->prot), PROBATION);
    evict(s, &dead);
    assert(used(s) <= s->cap);
    pthread_mutex_unlock(&s->lock);
    free_dead(dead);
  }
  pthread_mutex_unlock(&m->resize);
  return 0;
}

/* Frees the tier; `ninit` shards were initialised (new's unwinding). */
static void destroy(mem *m, unsigned ninit) {
  for (unsigned i = 0; i < ninit; i++) {
    shard *s = &m->shards[i];
    free_dead(empty_shard(s));
    free(s->tab);
    free(s->sk);
    pthread_mutex_destroy(&s->lock);
  }
  free(m->shards);
  pthread_mutex_destroy(&m->resize);
  free(m);
}

static void mem_free(void *impl) {
  mem *m = impl;
  destroy(m, m->nshards);
}

static const es_cache_ops_t memory_ops = {
    .name = "memory",
    .get = mem_get,
    .put = mem_put,
    .erase = mem_erase,
    .clear = mem_clear,
    .stats = mem_stats,
    .free = mem_free,
    .warm = mem_warm,
    .erase_prefix = mem_erase_prefix,
    .set_max_bytes = mem_set_max_bytes,
};

es_cache_memory_params_t es_cache_memory_default_params(void) {
  es_cache_memory_params_t p = {0};
  p.max_bytes = 64u << 20;
  p.admission = 1;
  return p;
}

static unsigned auto_shards(uint64_t max_bytes) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned n = 8;
  while (cores > 0 && n < 4 * (unsigned long)cores && n < 64) n *= 2;
  while (n > 1 && max_bytes / n < AUTO_SHARD_BYTES) n /= 2;
  return n;
}

static int shard_init(shard *s, uint64_t cap, int admission, uint64_t rng_seed) {
  memset(s, 0, sizeof *s);
  l_init(&s->win);
  l_init(&s->prob);
  l_init(&s->prot);
  l_init(&s->ttl);
  set_cap(s, cap, admission);
  s->rng = es__splitmix64(&rng_seed) | 1; /* xorshift state must not be 0 */
  if (pthread_mutex_init(&s->lock, NULL)) return ES_ENOMEM;
  s->nb = MIN_BUCKETS;
  s->tab = calloc(s->nb, sizeof *s->tab);
  if (!s->tab) goto fail;
  if (admission && sk_init(s, pow2_at_least(cap / SKETCH_DIV, MIN_SKETCH, 1u << 28))) goto fail;
  assert(fixed(s) <= cap);
  return 0;
fail:
  free(s->tab);
  pthread_mutex_destroy(&s->lock);
  return ES_ENOMEM;
}

es_cache_t *es_cache_memory_new(const es_cache_memory_params_t *p, es_error_t *err) {
  if (!p) {
    es__fail(err, ES_EINVAL, -1, "memory cache: no parameters");
    return NULL;
  }
  if (p->ttl_us < 0) {
    es__fail(err, ES_EINVAL, -1, "memory cache: ttl_us %lld is negative (0: no expiry)",
             (long long)p->ttl_us);
    return NULL;
  }
  unsigned n = p->shards ? p->shards : auto_shards(p->max_bytes);
  if (n > MAX_SHARDS || (n & (n - 1))) {
    es__fail(err, ES_EINVAL, -1, "memory cache: shards %u is not a power of two in 1..%u", n,
             MAX_SHARDS);
    return NULL;
  }
  if (p->max_bytes / n < MIN_SHARD_BYTES) {
    es__fail(err, ES_EINVAL, -1,
             "memory cache: max_bytes %llu leaves under %u bytes to each of %u shards: "
             "raise max_bytes or lower shards",
             (unsigned long long)p->max_bytes, MIN_SHARD_BYTES, n);
    return NULL;
  }
  mem *m = calloc(1, sizeof *m);
  if (!m) goto nomem;
  m->admission = p->admission != 0;
  m->ttl_us = p->ttl_us;
  m->nshards = n;
  for (m->shift = 64; n > 1; n /= 2) m->shift--;
  m->seed = p->seed;
  if (!m->seed) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x =
        ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ (uint64_t)(uintptr_t)m;
    m->seed = es__splitmix64(&x);
  }
  uint64_t cap = p->max_bytes / m->nshards;
  atomic_init(&m->max_bytes, p->max_bytes);
  atomic_init(&m->shard_cap, cap);
  void *mem_shards;
  if (pthread_mutex_init(&m->resize, NULL)) {
    free(m);
    goto nomem;
  }
  if (posix_memalign(&mem_shards, alignof(shard), (size_t)m->nshards * sizeof(shard))) {
    pthread_mutex_destroy(&m->resize);
    free(m);
    goto nomem;
  }
  m->shards = mem_shards;
  for (unsigned i = 0; i < m->nshards; i++) {
    if (shard_init(&m->shards[i], cap, m->admission, m->seed + i)) {
      destroy(m, i);
      goto nomem;
    }
    m->shards[i].maxent = p->max_entries ? (p->max_entries + m->nshards - 1) / m->nshards : 0;
  }
  es_cache_t *c = es_cache_wrap(&memory_ops, m, err);
  if (!c) destroy(m, m->nshards);
  return c;
nomem:
  es__fail(err, ES_ENOMEM, -1, "memory cache: out of memory");
  return NULL;
}
