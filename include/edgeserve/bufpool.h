/*
 * bufpool.h - pooled byte buffers of any size (request bodies, audio chunks,
 * batch tensors).
 *
 * A buffer pool rounds each request up to a size class and serves it from
 * that class's object pool (pool.h), so buffers come back to the next
 * request instead of to malloc, with the same per-thread caches and idle
 * trimming. Classes run from min_size to max_size, `steps` per power of two
 * (steps 4: 64, 80, 96, 112, 128, 160, ...), so a buffer wastes at most
 * 1/steps of its size to rounding. Requests above the largest class are
 * passed to malloc (counted as misses). A byte limit, which the memory
 * budget may change at any time, refuses buffers that would take the pool
 * past it.
 *
 *   es_bufpool_params_t bp = es_bufpool_default_params();
 *   bp.byte_limit = 64u << 20;
 *   es_bufpool_t *bufs = es_bufpool_new(&bp, &err);
 *   size_t cap;
 *   char *body = es_buf_get(bufs, content_length, &cap);  // cap >= length
 *   ...
 *   es_buf_put(bufs, body);                               // no size needed
 *   es_bufpool_free(bufs);
 *
 * Overhead: each buffer carries a 16-byte header in front of it (its class,
 * so es_buf_put needs no size), counted in the class's memory and the byte
 * limit; plus the object pools' bookkeeping (pool.h).
 */
#ifndef EDGESERVE_BUFPOOL_H
#define EDGESERVE_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"
#include "edgeserve/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_bufpool es_bufpool_t;

typedef struct es_bufpool_params {
  size_t min_size;      /* smallest class, >= 1 (rounded up onto the class grid) */
  size_t max_size;      /* largest class, >= min_size, <= 1 GiB; bigger
                           requests go to malloc */
  unsigned steps;       /* classes per power of two, 1 .. 16 */
  uint64_t byte_limit;  /* most bytes of buffers (chunks of every class +
                           buffers from malloc) held at once; 0: none */
  size_t chunk_bytes;   /* memory a class takes from the system at a time
                           (at least one buffer) */
  size_t cache_bytes;   /* bytes of free buffers a thread may keep per class;
                           classes where that is under 2 buffers have no
                           thread cache */
  double idle_trim_sec; /* as es_pool_params_t */
} es_bufpool_params_t;

/* Statistics: `total` sums the classes and the malloc'd buffers, except:
 * total.refusals counts es_buf_get calls that returned NULL; total.bytes and
 * total.bytes_high are the bytes charged against the limit (exact peak);
 * total.in_use_high and total.chunks_high are sums of per-class peaks (an
 * upper bound of the peak of the sum). Malloc'd buffers count as misses and
 * are not in `chunks`. Same accuracy as es_pool_stats. */
typedef struct es_bufpool_stats {
  es_pool_stats_t total;
  uint64_t large_in_use; /* buffers above the largest class now out */
  uint64_t large_bytes;  /* their bytes, headers included */
  uint64_t byte_limit;   /* the limit now, 0: none */
} es_bufpool_stats_t;

/* Classes 64 B .. 256 KiB, 4 per power of two (49 classes), no byte limit,
 * 16 KiB chunks (one buffer per chunk from 8 KiB up), 32 KiB thread caches
 * per class (none from 16 KiB up), idle trim after 10 s. */
es_bufpool_params_t es_bufpool_default_params(void);

/* Creates a buffer pool; takes no memory for buffers until the first get.
 * Returns NULL with *err filled (when not NULL): ES_EINVAL for parameters
 * out of range, ES_ENOMEM; nothing is left allocated. */
es_bufpool_t *es_bufpool_new(const es_bufpool_params_t *params, es_error_t *err);

/* Frees the pool and every buffer it holds, as es_pool_free: no thread may
 * use it during or after; buffers not yet put are freed with it. NULL is a
 * no-op. */
void es_bufpool_free(es_bufpool_t *bp);

/* Returns a buffer of at least `size` bytes (0 is served as the smallest
 * class), aligned to alignof(max_align_t), and stores its usable size in
 * *cap when cap is not NULL (the class size; `size` itself above the
 * largest class). Returns NULL when the byte limit would be exceeded even
 * after giving back every entirely free chunk, or when memory runs out.
 * Thread-safe. */
void *es_buf_get(es_bufpool_t *bp, size_t size, size_t *cap);

/* Gives back a buffer got from this pool, from any thread. NULL is a
 * no-op. Thread-safe. */
void es_buf_put(es_bufpool_t *bp, void *buf);

/* Changes the byte limit (0: none). Lowering it below what is held frees
 * nothing: gets that need new memory are refused until enough is put back
 * and trimmed. Thread-safe. */
void es_bufpool_set_limit(es_bufpool_t *bp, uint64_t bytes);

/* es_pool_trim / es_pool_trim_idle / es_pool_flush_cache over every class;
 * the trims return the bytes given back. Thread-safe. */
uint64_t es_bufpool_trim(es_bufpool_t *bp);
uint64_t es_bufpool_trim_idle(es_bufpool_t *bp, double idle_sec);
void es_bufpool_flush_cache(es_bufpool_t *bp);

/* The number of size classes. */
unsigned es_bufpool_classes(const es_bufpool_t *bp);

/* Stores class `cls`'s buffer size in *size (when not NULL) and its
 * statistics in *out (when not NULL); returns 0, or ES_ERANGE when cls >=
 * es_bufpool_classes(). Thread-safe. */
int es_bufpool_class_stats(es_bufpool_t *bp, unsigned cls, size_t *size, es_pool_stats_t *out);

/* Fills *out; thread-safe. */
void es_bufpool_stats(es_bufpool_t *bp, es_bufpool_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
