/*
 * devpool.h - a pool of device memory: one big region, many small blocks.
 *
 * Asking the device for memory is slow (cudaMalloc/cudaFree synchronise the
 * device; mmap/munmap take the kernel's mm lock and fault pages in again), and
 * a batch of tensors asks for it hundreds of times a second. The pool asks a
 * provider for a few large regions and hands out blocks carved from them:
 * best fit, split on allocation, merged with free neighbours on release, grown
 * by new regions up to a limit, and trimmed back on request.
 *
 *   es_devpool_params_t p = es_devpool_default_params(); // host memory, 256-byte alignment
 *   p.max_bytes = 256u << 20;                             // never hold more than 256 MiB
 *   es_devpool_t *pool = es_devpool_new(&p, &err);
 *   es_devblock_t *b = es_devpool_alloc(pool, n_bytes, &err); // NULL: err says why
 *   use(es_devblock_ptr(b), es_devblock_size(b));
 *   es_devblock_free(b);                                  // the block knows its pool
 *   {
 *     ES_DEVBLOCK_SCOPED(tmp) = es_devpool_alloc(pool, 4096, NULL);
 *     ...                                                 // freed when tmp leaves scope
 *   }
 *   es_devpool_free(pool);                                // ES_ESTATE while blocks are out
 *
 * The memory of a region is never read or written by the pool: block
 * descriptors live in host memory, outside the regions, so the regions may be
 * device memory the CPU cannot address. A provider is a struct of function
 * pointers; the host provider (mmap) is built in. A CUDA provider is not part
 * of edgeserve yet: it would be cuMemAlloc/cuMemFree (or cudaMalloc/cudaFree)
 * behind es_devmem_provider_t, with align 256 and granularity 2 MiB; nothing
 * in the pool needs to change for it.
 *
 * Thread-safety: a pool is guarded by one mutex; every function may be called
 * from any thread, except es_devpool_free, which must not race with any other
 * use of the pool. A block's pointer and size never change while it is held,
 * so es_devblock_ptr/es_devblock_size take no lock.
 */
#ifndef EDGESERVE_DEVPOOL_H
#define EDGESERVE_DEVPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where regions come from. The pool copies the struct; `ctx` must outlive
 * the pool. The functions are called with the pool's lock held and must not
 * call back into the pool. */
typedef struct es_devmem_provider {
  const char *name;     /* "host-mmap", "cuda:0": for messages */
  void *ctx;            /* passed back to the functions */
  uint64_t align;       /* every region base is a multiple of this (power of two) */
  uint64_t granularity; /* region sizes are rounded up to a multiple of this (power of two) */
  /* Returns the base of a new region of `size` bytes (a multiple of
   * granularity), aligned to `align`, or NULL when there is none. The base is
   * an address on the provider's device: the pool only does arithmetic on it. */
  void *(*alloc_region)(void *ctx, uint64_t size);
  /* Gives back a region that alloc_region returned, with the same size. */
  void (*free_region)(void *ctx, void *base, uint64_t size);
} es_devmem_provider_t;

/* The host provider: anonymous private mmap (pages are committed when first
 * touched), align and granularity 4096 (mmap's bases are page-aligned, and
 * every Linux page size is a multiple of 4096). A static, read-only struct;
 * thread-safe. */
const es_devmem_provider_t *es_devmem_host_provider(void);

typedef struct es_devpool_params {
  const es_devmem_provider_t *provider; /* NULL: es_devmem_host_provider() */
  uint64_t alignment;        /* every block starts and ends on this (power of two); 256 */
  uint64_t min_region_bytes; /* a new region is at least this large; 16 MiB */
  uint64_t max_bytes;        /* the regions together never exceed this; 0 = no limit */
  uint64_t initial_bytes;    /* one region of this size obtained by es_devpool_new; 0 */
  uint64_t min_split_bytes;  /* a block is split only if the rest is at least this
                                large (rounded up to alignment); 0 = alignment */
} es_devpool_params_t;

/* The defaults documented above. */
es_devpool_params_t es_devpool_default_params(void);

typedef struct es_devpool es_devpool_t;
typedef struct es_devblock es_devblock_t;

/* Creates a pool. params NULL = defaults. Returns NULL with *err filled (when
 * not NULL) and nothing allocated: ES_EINVAL for an alignment or provider
 * that is not usable (the message says which field), ES_ERANGE for sizes
 * above 2^62, ES_EBUDGET when initial_bytes exceeds max_bytes, ES_ENOMEM when
 * the host or the provider has no memory. */
es_devpool_t *es_devpool_new(const es_devpool_params_t *params, es_error_t *err);

/* Destroys a pool and gives every region back to the provider. Returns 0, or
 * ES_ESTATE when blocks are still held: then nothing is changed, every handle
 * stays valid, and the pool must be freed again after the blocks. NULL is a
 * no-op returning 0. Must not race with any other use of the pool. */
int es_devpool_free(es_devpool_t *pool);

/* Allocates `size` bytes aligned to the pool's alignment. Returns a handle
 * the caller owns and releases with es_devblock_free, or NULL with *err
 * filled (when not NULL):
 *   ES_EINVAL   size 0;
 *   ES_ERANGE   size above 2^62;
 *   ES_EBUDGET  no free block fits and a new region would pass max_bytes
 *               (the message gives the request, the largest free block, the
 *               bytes held and the limit);
 *   ES_ENOMEM   the provider or the host has no memory.
 * Before refusing because a new region does not fit under max_bytes or the
 * provider has none, the pool gives back its wholly free regions and tries
 * once more. Never fails because of fragmentation alone while a region can
 * still be added. */
es_devblock_t *es_devpool_alloc(es_devpool_t *pool, uint64_t size, es_error_t *err);

/* As es_devpool_alloc, with the block's start aligned to `align` (a power of
 * two; 0 or anything below the pool's alignment means the pool's). ES_EINVAL
 * for an align that is not a power of two or is above 2^40. */
es_devblock_t *es_devpool_alloc_aligned(es_devpool_t *pool, uint64_t size, uint64_t align,
                                        es_error_t *err);

/* Returns the block to its pool; the handle is invalid afterwards. NULL is a
 * no-op. Thread-safe; a double free is a programmer error (assert). */
void es_devblock_free(es_devblock_t *block);

/* The block's device address (not dereferenceable for device providers);
 * NULL for NULL. */
void *es_devblock_ptr(const es_devblock_t *block);

/* The size that was asked for (the block may be larger: see used_bytes);
 * 0 for NULL. */
uint64_t es_devblock_size(const es_devblock_t *block);

/* Gives wholly free regions back to the provider, newest first, as long as
 * the regions left hold at least keep_bytes. Returns the bytes given back. */
uint64_t es_devpool_trim(es_devpool_t *pool, uint64_t keep_bytes);

typedef struct es_devpool_stats {
  uint64_t used_bytes;      /* bytes in held blocks (sizes rounded to alignment) */
  uint64_t requested_bytes; /* bytes asked for by the held blocks */
  uint64_t free_bytes;      /* bytes in free blocks */
  uint64_t region_bytes;    /* bytes obtained from the provider and not given back */
  uint64_t largest_free;    /* the largest free block */
  double fragmentation;     /* 1 - largest_free / free_bytes; 0 when free_bytes is 0 */
  uint64_t regions;         /* regions held */
  uint64_t held_blocks;     /* blocks allocated and not freed */
  uint64_t free_blocks;     /* free blocks (the free index's size) */
  uint64_t peak_used;       /* highest used_bytes so far */
  /* counters since the pool was created */
  uint64_t allocs;   /* successful allocations */
  uint64_t frees;    /* blocks freed */
  uint64_t failures; /* refused allocations, whatever the reason */
  uint64_t splits;   /* free blocks cut in two (a tail, or an alignment gap in front) */
  uint64_t merges;   /* free blocks joined with a free neighbour */
  uint64_t grows;    /* regions obtained from the provider */
  uint64_t releases; /* regions given back to the provider */
} es_devpool_stats_t;

/* Fills *out with one consistent snapshot. Thread-safe. */
void es_devpool_stats(es_devpool_t *pool, es_devpool_stats_t *out);

/* A debugging aid for tests, O(n log n) in blocks: verifies every invariant
 * of the pool (blocks tile each region in address order, no two free
 * neighbours, every free block indexed once under its size, statistics equal
 * their recomputed sums, alignment, splitting). Returns 0, or ES_ESTATE with
 * *err naming the first broken invariant. Touches no region memory. */
int es_devpool_check(es_devpool_t *pool, es_error_t *err);

/* Scope-bound blocks (GNU C cleanup attribute, gcc and clang):
 *   ES_DEVBLOCK_SCOPED(b) = es_devpool_alloc(pool, n, &err);
 * frees b when it leaves scope, by any path; es_devblock_steal(&b) keeps it. */
#define ES_DEVBLOCK_SCOPED(name) __attribute__((cleanup(es_devblock_freep))) es_devblock_t *name

/* The cleanup function of ES_DEVBLOCK_SCOPED: frees *block and sets it NULL. */
static inline void es_devblock_freep(es_devblock_t **block) {
  es_devblock_free(*block);
  *block = NULL;
}

/* Takes a block out of a scoped variable: returns *block and sets it NULL,
 * so leaving the scope frees nothing. */
static inline es_devblock_t *es_devblock_steal(es_devblock_t **block) {
  es_devblock_t *b = *block;
  *block = NULL;
  return b;
}

#ifdef __cplusplus
}
#endif
#endif
