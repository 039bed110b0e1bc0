/*
 * arena.h - a request's scratch memory: bump allocation, freed all at once.
 *
 * Everything a request allocates that dies with it (parsed headers, label
 * strings, token lists) comes from its arena: an allocation moves a pointer
 * forward in the current chunk, nothing is freed one by one, and
 * es_arena_reset at the end of the request gives it all back in one step.
 * A mark / rewind pair frees everything allocated after the mark (scratch
 * space inside one step of a request).
 *
 *   es_arena_t *a = es_arena_new(NULL);            // one per worker, reused
 *   for (;;) {                                     // per request
 *     char *path = es_arena_strndup(a, line, n);
 *     es_arena_mark_t m = es_arena_mark(a);
 *     float *tmp = es_arena_alloc(a, k * sizeof *tmp);
 *     ...
 *     es_arena_rewind(a, m);                       // tmp is gone, path stays
 *     es_arena_reset(a);                           // everything is gone
 *   }
 *   es_arena_free(a);
 *
 * Not thread-safe: an arena belongs to one request (one thread) at a time.
 * Under AddressSanitizer the unused and released parts of chunks are
 * poisoned, so a use after reset or rewind is reported.
 */
#ifndef EDGESERVE_ARENA_H
#define EDGESERVE_ARENA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_arena es_arena_t;

typedef struct es_arena_params {
  size_t first_chunk; /* bytes of the first chunk, allocated with the arena
                         and kept until es_arena_free */
  size_t max_chunk;   /* chunks grow by doubling up to this (a bigger
                         request gets a chunk of its own size) */
  size_t keep_bytes;  /* on reset, chunks after the first are kept (for the
                         next request) while their total stays within this;
                         the rest are freed. 0: free them all; SIZE_MAX:
                         keep all */
} es_arena_params_t;

/* A save point: where the arena was. Plain data, copied freely. */
typedef struct es_arena_mark {
  void *chunk;
  size_t used, base;
} es_arena_mark_t;

typedef struct es_arena_stats {
  uint64_t used;      /* bytes allocated, alignment padding included (the
                         unused tails of chunks left behind are not) */
  uint64_t used_high; /* most `used` since creation */
  uint64_t held;      /* bytes of all chunks (without their 16-32 byte headers) */
  uint64_t held_high; /* most `held` since creation */
  uint64_t chunks;    /* chunks held, the first included */
  uint64_t allocs;    /* allocations since creation */
  uint64_t resets;    /* es_arena_reset calls since creation */
} es_arena_stats_t;

/* First chunk 4 KiB, chunks up to 64 KiB, keep 64 KiB across resets. */
es_arena_params_t es_arena_default_params(void);

/* Creates an arena with its first chunk (params NULL: the defaults; a
 * first_chunk or max_chunk of 0 is taken from them too). Returns NULL when
 * memory runs out; nothing is left allocated. */
es_arena_t *es_arena_new(const es_arena_params_t *params);

/* Frees the arena and everything allocated from it. NULL is a no-op. */
void es_arena_free(es_arena_t *a);

/* Returns size bytes aligned to alignof(max_align_t), valid until the next
 * reset, a rewind to an earlier mark, or es_arena_free; NULL when memory
 * runs out (the arena is unchanged). Size 0 returns a valid pointer to no
 * bytes. Cost: an add and a compare, plus a malloc when a chunk fills. */
void *es_arena_alloc(es_arena_t *a, size_t size);

/* As es_arena_alloc with a chosen alignment: a power of two (asserted). */
void *es_arena_alloc_aligned(es_arena_t *a, size_t size, size_t align);

/* Copies the NUL-terminated s into the arena; NULL when memory runs out. */
char *es_arena_strdup(es_arena_t *a, const char *s);

/* Copies at most n bytes of s, stopping at a NUL, and terminates the copy;
 * NULL when memory runs out. */
char *es_arena_strndup(es_arena_t *a, const char *s, size_t n);

/* Where the arena is now, for es_arena_rewind. */
es_arena_mark_t es_arena_mark(const es_arena_t *a);

/* Frees everything allocated after mark m. m must come from this arena,
 * taken since its last reset, and nothing may have been rewound to before
 * m since (asserted in builds without NDEBUG). Chunks after m's are kept
 * for reuse until the next reset. */
void es_arena_rewind(es_arena_t *a, es_arena_mark_t m);

/* Frees everything allocated; keeps the first chunk and, per keep_bytes,
 * some of the others. O(1) apart from freeing the chunks not kept. */
void es_arena_reset(es_arena_t *a);

/* Fills *out. */
void es_arena_stats(const es_arena_t *a, es_arena_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
