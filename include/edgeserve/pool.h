/*
 * pool.h - pools of fixed-size objects (request structs, result records).
 *
 * A pool hands out objects of one size and takes them back, keeping the
 * memory for the next request instead of returning it to malloc. Any thread
 * may get and put; each thread keeps a small cache of free objects, so most
 * gets and puts touch nothing shared. Objects are carved out of chunks (64
 * KiB by default); a chunk that has been entirely free for idle_trim_sec is
 * given back to the system by es_pool_trim.
 *
 *   es_pool_params_t pp = es_pool_default_params(sizeof(request_t));
 *   pp.max_objects = 4096;                   // optional cap
 *   es_pool_t *reqs = es_pool_new(&pp, &err);
 *   request_t *r = es_pool_get(reqs);        // NULL: cap or memory reached
 *   ...
 *   es_pool_put(reqs, r);                    // any thread may put it back
 *   es_pool_trim(reqs);                      // from a housekeeping task
 *   es_pool_free(reqs);                      // once no thread uses it
 *
 * Objects are not zeroed: a get returns whatever the last user left (0xDD
 * bytes in builds without NDEBUG). Under AddressSanitizer a free object is
 * poisoned, so touching it after es_pool_put is reported.
 *
 * Thread caches: every thread that uses any pool takes one of
 * ES_POOL_MAX_THREADS process-wide thread indices (given back when the
 * thread exits); a pool keeps one cache per index. This table of indices is
 * the module's only process-wide state. A thread that finds all indices
 * taken still works, through the pool's lock on every call, for the rest
 * of its life.
 */
#ifndef EDGESERVE_POOL_H
#define EDGESERVE_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Threads that can hold a cache at once (process-wide). */
#define ES_POOL_MAX_THREADS 64

typedef struct es_pool es_pool_t;

typedef struct es_pool_params {
  size_t obj_size;       /* bytes per object, > 0 */
  size_t align;          /* power of two (alignof(max_align_t) by default, 0 means
                            that too); objects lie obj_size rounded up to it apart */
  size_t objs_per_chunk; /* objects per chunk (memory is taken from the
                            system a chunk at a time), 1 .. 65536 */
  size_t cache_size;     /* free objects each thread may keep, <= 1024; 0: no
                            thread caches, every call takes the pool's lock */
  uint64_t max_objects;  /* most objects the pool creates, 0: no cap. When
                            reached, a get with nothing free returns NULL.
                            Free objects parked in other live threads'
                            caches are not seen (those threads are asked to
                            return them on their next call): with
                            cache_size 0 the cap is exact */
  double idle_trim_sec;  /* a chunk entirely free for this long is given
                            back by a trim; < 0: never */
  /* Optional: asked before the pool takes a chunk from the system (delta =
   * its bytes > 0) and told when it gives one back (delta < 0, the return
   * is then ignored). A nonzero return refuses the chunk: the get returns
   * NULL. Called with the pool's lock held, from any thread using the
   * pool: it must not call into this pool. The memory budget and es_bufpool
   * plug in here. */
  int (*charge)(void *ctx, int64_t delta);
  void *charge_ctx;
} es_pool_params_t;

/* Statistics. Exact when no other thread is using the pool; while threads
 * run, counters from their caches may be a call or two behind. */
typedef struct es_pool_stats {
  uint64_t in_use;      /* objects got and not yet put */
  uint64_t free;        /* objects held free: shared depot + thread caches */
  uint64_t in_use_high; /* peak of objects outside the shared depot (in use
                           + parked in thread caches): the true in-use peak
                           plus at most the caches' contents; exact with
                           cache_size 0 */
  uint64_t gets;        /* successful gets = hits + misses */
  uint64_t hits;        /* gets served without asking the system for memory */
  uint64_t misses;      /* gets that had to take a new chunk */
  uint64_t refusals;    /* gets that returned NULL (max_objects, charge or
                           malloc refused) */
  uint64_t puts;
  uint64_t chunks, chunks_high; /* chunks held now / at most */
  uint64_t bytes, bytes_high;   /* bytes of those chunks: object memory only;
                                   bookkeeping adds 1 bit per object and 32 B
                                   per chunk, and per thread that uses the
                                   pool 16 B + 8 B per cache entry */
  uint64_t trimmed;             /* chunks given back by trims */
} es_pool_stats_t;

/* Parameters for objects of obj_size bytes: alignment alignof(max_align_t),
 * chunks of about 64 KiB (at least one object), thread caches of up to 64
 * objects and about 32 KiB (none for objects over 16 KiB), no cap, idle
 * trim after 10 s, no charge callback. */
es_pool_params_t es_pool_default_params(size_t obj_size);

/* Creates a pool; takes no chunk until the first get. Returns NULL with
 * *err filled (when not NULL) on an invalid parameter (ES_EINVAL: obj_size
 * 0, align not a power of two, objs_per_chunk out of range, a chunk larger
 * than memory can address) or ES_ENOMEM; nothing is left allocated. */
es_pool_t *es_pool_new(const es_pool_params_t *params, es_error_t *err);

/* Frees the pool and all its memory: chunks, the shared depot and every
 * thread's cache (those other threads hold no pointer into the pool, so
 * their caches are reclaimed here). No thread may use the pool during or
 * after the call; objects not yet put are freed with it and must not be
 * touched again. NULL is a no-op. */
void es_pool_free(es_pool_t *pool);

/* Returns an object of obj_size bytes, aligned to align, or NULL when the
 * pool may not grow (max_objects reached, charge refused, malloc failed;
 * counted as a refusal). Thread-safe. Costs a few loads and stores when the
 * calling thread's cache has an object; otherwise takes the pool's lock and
 * moves half a cache's worth from the shared depot. */
void *es_pool_get(es_pool_t *pool);

/* Gives back an object got from this pool, from any thread. NULL is a
 * no-op. Putting an object twice, or one from another pool, is a
 * programmer error (caught by assert when the object reaches the shared
 * depot, and by ASan at once). Thread-safe. */
void es_pool_put(es_pool_t *pool, void *obj);

/* Gives back to the system the chunks that have been entirely free for at
 * least idle_trim_sec (none when it is < 0); returns the bytes given back.
 * First takes back the caller's cache and those of threads that have
 * exited, and asks live threads to return theirs on their next call (a chunk
 * parked in a live, idle thread's cache stays until that thread calls
 * again or calls es_pool_flush_cache). Meant for a housekeeping task;
 * thread-safe. Pools also run the chunk part of it on their own, at most
 * once per max(idle_trim_sec, 1 s), when a put reaches the shared depot (a
 * thread cache overflowing, or a pool without caches). */
uint64_t es_pool_trim(es_pool_t *pool);

/* As es_pool_trim, with idle_sec instead of the pool's idle_trim_sec: 0
 * gives back every chunk entirely free now (used when memory runs short). */
uint64_t es_pool_trim_idle(es_pool_t *pool, double idle_sec);

/* Returns the calling thread's cached objects for this pool to the shared
 * depot (a thread about to sleep for long can call it). Thread-safe. */
void es_pool_flush_cache(es_pool_t *pool);

/* Fills *out; thread-safe (takes the pool's lock). */
void es_pool_stats(es_pool_t *pool, es_pool_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
