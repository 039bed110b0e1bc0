/*
 * cache.h - response caches: one interface, several tiers.
 *
 * A response cache maps a request to the bytes of a response computed
 * before, so a repeated request skips inference. The server holds an
 * es_cache_t and never knows which tier is behind it: the in-process tier
 * here (sharded, bounded in bytes, TTL, W-TinyLFU admission), or a shared
 * tier (Redis, next) implementing es_cache_ops_t and wrapped with
 * es_cache_wrap().
 *
 *   es_cache_memory_params_t p = es_cache_memory_default_params();
 *   p.max_bytes = 512u << 20;                 // everything counted, see below
 *   p.ttl_us = 5000000;                       // 5 s
 *   es_cache_t *c = es_cache_memory_new(&p, &err);
 *
 *   char key[1024], val[1024];
 *   size_t klen = es_cache_key(key, sizeof key, "media", 3, params, plen, text, tlen);
 *   size_t vlen;
 *   if (klen <= sizeof key && es_cache_get(c, key, klen, now_us, val, sizeof val, &vlen) == 0)
 *     reply(val, vlen);                        // hit
 *   else {
 *     vlen = infer_and_serialize(text, val, sizeof val);
 *     es_cache_put(c, key, klen, val, vlen, now_us);  // may be declined by admission
 *   }
 *   ...
 *   es_cache_erase_prefix(c, "media", sizeof "media", NULL);  // model swapped (name + NUL)
 *   es_cache_free(c);
 *
 * Keys and values are opaque bytes. es_cache_key() builds an unambiguous key
 * from (model, version, parameters, normalised input) with the model name
 * first, so a model's entries share a prefix. Time is passed in (now_us,
 * monotonic microseconds) so that tests control it.
 *
 * Statistics are cumulative (a clear does not reset them): feed them to the
 * Prometheus counters edgeserve_cache_hits_total / _misses_total.
 */
#ifndef EDGESERVE_CACHE_H
#define EDGESERVE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_cache es_cache_t;

/* A tier's statistics. Counters are cumulative since creation; `entries`,
 * `bytes` and `max_bytes` are the state now. While other threads use the
 * cache the figures may come from slightly different instants (the memory
 * tier reads each shard under its lock, one after the other); they are
 * exact when the cache is quiet.
 *
 *   every get counts once: hits (0 or ES_ERANGE) or misses (ES_ENOTFOUND;
 *     an expired entry is a miss); calls refused with ES_EINVAL count nowhere.
 *   puts        puts that returned 0, new keys and overwrites, including those
 *               that admission then declined
 *   admitted    entries that left the admission window for the main space
 *               (won against the main space's victim, or there was room)
 *   rejected    entries that left the window and lost: evicted at once
 *   evictions   entries removed to make room, rejected ones included
 *   expirations entries removed because their TTL had run out
 *   entries, bytes: what the tier holds now; bytes <= max_bytes always (the
 *               memory tier counts its tables and sketch in bytes too) */
typedef struct es_cache_stats {
  uint64_t hits, misses, puts, admitted, rejected, evictions, expirations;
  uint64_t entries, bytes, max_bytes;
} es_cache_stats_t;

/* What a tier implements. `impl` is the tier's own object. get, put, erase,
 * clear, stats and free are required; warm, erase_prefix and set_max_bytes
 * may be NULL (es_cache_warm then puts, the other two answer
 * ES_EUNSUPPORTED). Every function must be thread-safe except free. The
 * return values are those of the es_cache_* functions below; a remote tier
 * may also return ES_EIO or ES_ETIMEDOUT, which the server treats as a
 * miss / a put not done. */
typedef struct es_cache_ops {
  const char *name; /* "memory", "redis": for logs and metrics labels */
  int (*get)(void *impl, const void *key, size_t klen, int64_t now_us, void *buf, size_t cap,
             size_t *vlen);
  int (*put)(void *impl, const void *key, size_t klen, const void *val, size_t vlen,
             int64_t now_us);
  int (*erase)(void *impl, const void *key, size_t klen);
  void (*clear)(void *impl);
  void (*stats)(void *impl, es_cache_stats_t *out);
  void (*free)(void *impl);
  int (*warm)(void *impl, const void *key, size_t klen, const void *val, size_t vlen,
              uint32_t count, int64_t now_us);
  int (*erase_prefix)(void *impl, const void *prefix, size_t plen, uint64_t *erased);
  int (*set_max_bytes)(void *impl, uint64_t max_bytes);
} es_cache_ops_t;

/* Makes a cache handle of a tier: `ops` must outlive the handle (a static
 * table), `impl` becomes owned by the handle (es_cache_free calls
 * ops->free(impl)). Returns NULL with *err filled (when not NULL): ES_EINVAL
 * when ops or one of its required functions is NULL, ES_ENOMEM; on failure
 * impl is NOT freed (the caller still owns it). */
es_cache_t *es_cache_wrap(const es_cache_ops_t *ops, void *impl, es_error_t *err);

/* Frees the handle and its tier with every entry. No thread may use the
 * cache during or after the call. NULL is a no-op. */
void es_cache_free(es_cache_t *c);

/* The tier's name (ops->name); a static string. */
const char *es_cache_name(const es_cache_t *c);

/* Looks `key` up. On a hit, copies the value into buf (when it fits),
 * stores its length in *vlen and returns 0. Returns ES_ENOTFOUND on a miss
 * (an entry whose TTL has run out at now_us is a miss, and is freed);
 * ES_ERANGE with *vlen = the value's length when cap is smaller (counted as
 * a hit; buf is untouched; pass cap 0 to ask for the length); ES_EINVAL when
 * vlen is NULL, or key / buf is NULL with a non-zero length. A hit counts
 * as a use for the eviction policy. Thread-safe. */
int es_cache_get(es_cache_t *c, const void *key, size_t klen, int64_t now_us, void *buf, size_t cap,
                 size_t *vlen);

/* Stores a copy of (key, val), replacing the value of an existing key; the
 * entry expires at now_us + the tier's TTL. Returns 0 when done, which is
 * not a promise that a later get hits: with admission on, a new entry that
 * the policy judges colder than what it would displace is dropped (counted
 * in `rejected`), now or on a later put. Returns ES_ERANGE when the entry
 * alone cannot fit (memory tier: its charge, es_cache_memory_charge(),
 * exceeds a shard's capacity less the shard's tables), ES_ENOMEM, ES_EINVAL
 * as es_cache_get; on failure nothing changed (an overwritten key keeps its
 * old value). Thread-safe. */
int es_cache_put(es_cache_t *c, const void *key, size_t klen, const void *val, size_t vlen,
                 int64_t now_us);

/* Warming: es_cache_put for an entry known to be popular, seen `count`
 * times before (the server reads the most frequent inputs from its history
 * at start). The memory tier credits the frequency sketch with min(count,
 * 15) uses, so admission keeps the entry against colder ones; tiers without
 * a warm function just put. Returns as es_cache_put. Thread-safe. */
int es_cache_warm(es_cache_t *c, const void *key, size_t klen, const void *val, size_t vlen,
                  uint32_t count, int64_t now_us);

/* Removes `key`. Returns 0, ES_ENOTFOUND when absent, ES_EINVAL as
 * es_cache_get. Thread-safe. */
int es_cache_erase(es_cache_t *c, const void *key, size_t klen);

/* Removes every key that starts with the plen bytes at prefix (plen 0: all)
 * and stores how many in *erased (when not NULL). For a model swap: the
 * prefix of a model's keys is its name with the NUL (es_cache_key). O(entries)
 * with each shard locked in turn. Returns 0, ES_EUNSUPPORTED when the tier
 * cannot, ES_EINVAL when prefix is NULL with plen > 0. Thread-safe. */
int es_cache_erase_prefix(es_cache_t *c, const void *prefix, size_t plen, uint64_t *erased);

/* Removes every entry (all models); statistics are kept. The memory tier
 * also returns its tables and sketch to their sizes at creation. Thread-safe. */
void es_cache_clear(es_cache_t *c);

/* Fills *out; see es_cache_stats_t for what the figures mean. Thread-safe. */
void es_cache_stats(es_cache_t *c, es_cache_stats_t *out);

/* Changes the byte bound (the memory budget's pressure listener shrinks
 * caches). Shrinking evicts, by the tier's policy, down to the new bound
 * before returning. Returns 0, ES_EINVAL when the bound is below the tier's
 * minimum (memory tier: 4 KiB per shard), ES_EUNSUPPORTED when the tier has
 * no bound it controls. Thread-safe. */
int es_cache_set_max_bytes(es_cache_t *c, uint64_t max_bytes);

/* Builds the key of a response: the model name and its NUL, the version (8
 * bytes, little-endian), plen (4 bytes, little-endian), the parameters that
 * change the result (top-k, threshold... serialized by the caller in a fixed
 * form: the same request must give the same bytes), then the normalised
 * input. Writes it to buf when it fits in cap bytes (nothing otherwise) and
 * returns its length: compare with cap, like snprintf (SIZE_MAX, which
 * never fits, when plen >= 4 GiB or the length would not fit a size_t).
 * Parameters and input may be NULL when their length is 0; model must not be
 * NULL. */
size_t es_cache_key(void *buf, size_t cap, const char *model, uint64_t version, const void *params,
                    size_t plen, const void *input, size_t ilen);

/* ---- The in-process tier ----
 *
 * Entries live in the process's heap, spread over shards by the key's hash;
 * each shard has its own lock, byte bound (max_bytes / shards), hash table,
 * eviction lists and frequency sketch, so threads working on different
 * shards never wait on each other. A get is a hash, a lock, a lookup and a
 * copy.
 *
 * Policy, per shard: plain LRU (admission 0), or W-TinyLFU (admission 1):
 * new entries enter a window LRU (1% of the bytes); an entry leaving it
 * enters the main space (segmented LRU: probation, and protected up to 80%)
 * only if a count-min sketch of recent use (4-bit counters, halved every 10
 * x width increments) says it is used more often than the main space's
 * victim. On skewed traffic this keeps the popular entries that a burst of
 * one-time requests would flush out of an LRU (docs/server/cache.md has the
 * figures).
 *
 * Memory: `bytes` counts each entry's malloc block as glibc sizes it
 * (es_cache_memory_charge: the entry header, key and value, plus malloc's
 * own word, rounded), each shard's hash table, sketch and struct. The
 * tables and sketch grow with the entries, to at most a quarter of a shard.
 * Expiry: an entry expires at put + ttl_us. Expired entries are freed when
 * looked up, and, oldest first, by every put (up to 64) and get (up to 8)
 * of their shard; a shard nobody touches keeps them in `bytes` until then. */

typedef struct es_cache_memory_params {
  uint64_t max_bytes;   /* the bound on `bytes`; >= 4 KiB x shards */
  int64_t ttl_us;       /* lifetime of an entry after its put; 0: no expiry */
  uint64_t max_entries; /* 0: no bound on the count; else each shard holds at
                           most its share, max_entries / shards rounded up
                           (the policy picks what goes, as for bytes) */
  unsigned shards;      /* a power of two, 1..256; 0: from the core count
                           (next power of two of 4 x cores, 8..64, halved while
                           a shard would hold under 256 KiB) */
  int admission;        /* 1: W-TinyLFU; 0: plain LRU */
  uint64_t seed;        /* keys the hash (keys come from clients: a fixed seed
                           lets them aim at one chain); 0: from the clock and an
                           address; tests pass a fixed one */
} es_cache_memory_params_t;

/* 64 MiB, no TTL, no entry bound, shards from the core count, W-TinyLFU,
 * random seed. */
es_cache_memory_params_t es_cache_memory_default_params(void);

/* Creates an empty in-process tier (name "memory"). Returns NULL with *err
 * filled (when not NULL): ES_EINVAL for a parameter out of range (the
 * message says which), ES_ENOMEM; nothing is left allocated. Free with
 * es_cache_free. */
es_cache_t *es_cache_memory_new(const es_cache_memory_params_t *p, es_error_t *err);

/* The bytes an entry with these key and value lengths counts for in the
 * memory tier (its malloc block as glibc sizes it), on this platform: for
 * sizing (512 MiB holds about 512 MiB / charge entries, less the tables). */
uint64_t es_cache_memory_charge(size_t klen, size_t vlen);

#ifdef __cplusplus
}
#endif
#endif
