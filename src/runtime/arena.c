/*
 * arena.c - bump allocation for one request's scratch memory; see arena.h.
 *
 * The arena is a singly linked list of chunks in allocation order, the
 * first one allocated together with the arena struct. `cur` is the chunk
 * being bumped; the chunks after it are empty ones kept from earlier
 * requests (reset) or steps (rewind), reused before any new malloc. A
 * request that does not fit the rest of `cur` moves to the next kept chunk
 * when that one is big enough, else to a new chunk inserted after `cur`,
 * twice the size of the previous new one (at most max_chunk, at least the
 * request). The tail left in `cur` is wasted until the next reset or rewind.
 *
 * Invariants:
 *   1. first is the head of the list and is never freed before the arena.
 *   2. cur is on the list; chunks after it have no live allocation.
 *   3. base == sum of `used` of the chunks before cur; the bump pointer is
 *      cur->data + cur->used, and base + cur->used only grows between
 *      rewinds and resets (so used_high is brought up to date only before
 *      those, and in es_arena_stats).
 *   4. held == sum of `size` over the list; nchunks its length.
 *   5. Under ASan, the bytes of a chunk that are not part of a live
 *      allocation are poisoned (alignment padding included where it spans
 *      whole 8-byte granules).
 */
#include "edgeserve/arena.h"

#include <assert.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "poison.h"

typedef struct chunk {
  struct chunk *next;
  size_t size; /* bytes in data[] */
  size_t used; /* bytes of data[] bumped past */
  alignas(max_align_t) unsigned char data[];
} chunk;

struct es_arena {
  es_arena_params_t p;
  chunk *first, *cur;
  size_t base;      /* invariant 3 */
  size_t last_size; /* size of the newest chunk that was not oversized */
  uint64_t used_high, held, held_high, nchunks, allocs, resets;
};

#define FIRST_OFF ((sizeof(es_arena_t) + alignof(chunk) - 1) / alignof(chunk) * alignof(chunk))

es_arena_params_t es_arena_default_params(void) {
  es_arena_params_t p;
  p.first_chunk = 4096;
  p.max_chunk = 64u * 1024u;
  p.keep_bytes = 64u * 1024u;
  return p;
}

es_arena_t *es_arena_new(const es_arena_params_t *params) {
  es_arena_params_t p = es_arena_default_params();
  if (params) {
    p.keep_bytes = params->keep_bytes;
    if (params->first_chunk) p.first_chunk = params->first_chunk;
    if (params->max_chunk) p.max_chunk = params->max_chunk;
  }
  if (p.max_chunk < p.first_chunk) p.max_chunk = p.first_chunk;
  if (p.first_chunk > SIZE_MAX - FIRST_OFF - sizeof(chunk)) return NULL;
  es_arena_t *a = malloc(FIRST_OFF + sizeof(chunk) + p.first_chunk);
  if (!a) return NULL;
  memset(a, 0, sizeof *a);
  a->p = p;
  a->first = a->cur = (chunk *)((char *)a + FIRST_OFF);
  a->first->next = NULL;
  a->first->size = p.first_chunk;
  a->first->used = 0;
  a->last_size = p.first_chunk;
  a->held = a->held_high = p.first_chunk;
  a->nchunks = 1;
  ES__POISON(a->first->data, p.first_chunk);
  return a;
}

void es_arena_free(es_arena_t *a) {
  if (!a) return;
  ES__UNPOISON(a->first->data, a->first->size);
  for (chunk *c = a->first->next, *next; c; c = next) {
    next = c->next;
    ES__UNPOISON(c->data, c->size);
    free(c);
  }
  free(a);
}

static void note_high(es_arena_t *a) {
  uint64_t used = (uint64_t)a->base + a->cur->used;
  if (used > a->used_high) a->used_high = used;
}

/* Bumps in c, which is known to have room; returns the allocation. */
static void *bump(es_arena_t *a, chunk *c, size_t size, size_t align) {
  uintptr_t at = ((uintptr_t)(c->data + c->used) + align - 1) & ~(uintptr_t)(align - 1);
  unsigned char *p = (unsigned char *)at;
  c->used = (size_t)(p - c->data) + size;
  a->allocs++;
  ES__UNPOISON(p, size);
  return p;
}

/* Makes c (kept or new, empty) the bump chunk. */
static void move_to(es_arena_t *a, chunk *c) {
  note_high(a);
  a->base += a->cur->used;
  c->used = 0;
  a->cur = c;
}

static void *alloc_slow(es_arena_t *a, size_t size, size_t align) {
  size_t slack = align > alignof(max_align_t) ? align - 1 : 0;
  if (size > (size_t)PTRDIFF_MAX - slack - sizeof(chunk)) return NULL; /* no malloc could */
  size_t need = size + slack;
  chunk *next = a->cur->next;
  if (next && next->size >= need) {
    move_to(a, next);
    return bump(a, next, size, align);
  }
  size_t sz = a->last_size <= a->p.max_chunk / 2 ? 2 * a->last_size : a->p.max_chunk;
  if (sz < need) sz = need;
  chunk *c = malloc(sizeof(chunk) + sz);
  if (!c) return NULL;
  c->size = sz;
  c->used = 0;
  c->next = next;
  a->cur->next = c;
  if (sz <= a->p.max_chunk) a->last_size = sz;
  a->nchunks++;
  a->held += sz;
  if (a->held > a->held_high) a->held_high = a->held;
  ES__POISON(c->data, sz);
  move_to(a, c);
  return bump(a, c, size, align);
}

void *es_arena_alloc_aligned(es_arena_t *a, size_t size, size_t align) {
  assert(align && !(align & (align - 1)) && "es_arena_alloc_aligned: align not a power of two");
  chunk *c = a->cur;
  uintptr_t start = (uintptr_t)c->data;
  uintptr_t at = (start + c->used + align - 1) & ~(uintptr_t)(align - 1);
  size_t off = (size_t)(at - start);
  if (off <= c->size && size <= c->size - off) {
    c->used = off + size;
    a->allocs++;
    ES__UNPOISON((void *)at, size);
    return (void *)at;
  }
  return alloc_slow(a, size, align);
}

void *es_arena_alloc(es_arena_t *a, size_t size) {
  return es_arena_alloc_aligned(a, size, alignof(max_align_t));
}

char *es_arena_strndup(es_arena_t *a, const char *s, size_t n) {
  const char *nul = memchr(s, '\0', n);
  size_t len = nul ? (size_t)(nul - s) : n;
  if (len == SIZE_MAX) return NULL;
  char *d = es_arena_alloc_aligned(a, len + 1, 1);
  if (!d) return NULL;
  memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

char *es_arena_strdup(es_arena_t *a, const char *s) { return es_arena_strndup(a, s, strlen(s)); }

es_arena_mark_t es_arena_mark(const es_arena_t *a) {
  es_arena_mark_t m = {a->cur, a->cur->used, a->base};
  return m;
}

/* Frees the bytes [from, used) of c: 0xDD without NDEBUG, poisoned under
 * ASan (alignment padding in between is poisoned already: unpoison first). */
static void release(chunk *c, size_t from) {
  ES__UNPOISON(c->data + from, c->used - from);
  es__fill_freed(c->data + from, c->used - from);
  ES__POISON(c->data + from, c->used - from);
}

void es_arena_rewind(es_arena_t *a, es_arena_mark_t m) {
  chunk *mc = m.chunk;
#ifndef NDEBUG
  chunk *c = a->first;
  while (c != mc && c != a->cur) c = c->next;
  assert(c == mc && (mc != a->cur || m.used <= mc->used) && "es_arena_rewind: stale mark");
#endif
  note_high(a);
  for (chunk *c = mc; c != a->cur->next; c = c->next) release(c, c == mc ? m.used : 0);
  mc->used = m.used;
  a->cur = mc;
  a->base = m.base;
}

void es_arena_reset(es_arena_t *a) {
  note_high(a);
  for (chunk *c = a->first; c != a->cur->next; c = c->next) release(c, 0);
  if (a->held - a->first->size > a->p.keep_bytes) {
    uint64_t kept = 0;
    chunk *prev = a->first;
    for (chunk *c = a->first->next, *next; c; c = next) {
      next = c->next;
      if (kept + c->size <= a->p.keep_bytes) {
        kept += c->size;
        prev = c;
        continue;
      }
      prev->next = next;
      a->held -= c->size;
      a->nchunks--;
      ES__UNPOISON(c->data, c->size);
      free(c);
    }
  }
  a->first->used = 0;
  a->cur = a->first;
  a->base = 0;
  a->resets++;
}

void es_arena_stats(const es_arena_t *a, es_arena_stats_t *out) {
  out->used = (uint64_t)a->base + a->cur->used;
  out->used_high = out->used > a->used_high ? out->used : a->used_high;
  out->held = a->held;
  out->held_high = a->held_high;
  out->chunks = a->nchunks;
  out->allocs = a->allocs;
  out->resets = a->resets;
}
