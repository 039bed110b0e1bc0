/*
 * deque.h - Chase-Lev work-stealing deque of pointers (internal).
 *
 * One owner thread pushes and pops at the bottom (LIFO: the task it just
 * made is still in cache); any number of thieves steal at the top (FIFO: the
 * oldest task, usually the largest piece of work left). No locks: the owner's
 * push and pop are a few loads and stores, a pop of the last item and every
 * steal are one compare-and-swap on `top`.
 *
 *   es__deque_t d;
 *   es__deque_init(&d, 64);              // owner thread or before sharing
 *   es__deque_push(&d, item);            // owner only
 *   void *x = es__deque_pop(&d);         // owner only; NULL when empty
 *   int lost; void *y = es__deque_steal(&d, &lost);  // any thread
 *   es__deque_destroy(&d);               // when no thread uses it any more
 *
 * The array grows (doubles) when full; the old arrays stay allocated until
 * es__deque_destroy() because a slow thief may still read them (items are
 * never written to an old array again, so what it reads there is valid).
 * The memory kept is at most the size of the current array.
 *
 * Items must not be NULL (NULL means "nothing").
 */
#ifndef ES_RUNTIME_DEQUE_H
#define ES_RUNTIME_DEQUE_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct es__deque_array {
  size_t mask;                   /* capacity - 1; capacity is a power of two */
  struct es__deque_array *older; /* the array this one replaced, kept for thieves */
  _Atomic(void *) slot[];
} es__deque_array_t;

/* `top` (CASed by thieves) and `bottom` + `array` (written by the owner,
 * read by thieves together) sit on cache lines of their own; a deque must
 * therefore be 64-byte aligned (stack and static objects are; heap ones
 * need aligned_alloc). */
typedef struct es__deque {
  _Alignas(64) atomic_size_t top;    /* next item to steal; only ever incremented (CAS) */
  _Alignas(64) atomic_size_t bottom; /* next free slot; written by the owner only */
  _Atomic(es__deque_array_t *) array;
} es__deque_t;

/* Makes an empty deque holding `capacity` items before it first grows
 * (rounded up to a power of two, at least 2). Returns 0 or ES_ENOMEM
 * (nothing allocated). */
int es__deque_init(es__deque_t *d, size_t capacity);

/* Frees the arrays. No thread may use the deque during or after the call;
 * items still in it are dropped (they are the caller's). */
void es__deque_destroy(es__deque_t *d);

/* Owner only: adds `item` (not NULL) at the bottom. Returns 0, or ES_ENOMEM
 * when the array had to grow and could not (the item is then not added). */
int es__deque_push(es__deque_t *d, void *item);

/* Owner only: removes and returns the bottom item (the newest), or NULL when
 * the deque is empty or a thief took the last item first. */
void *es__deque_pop(es__deque_t *d);

/* Any thread: removes and returns the top item (the oldest). Returns NULL
 * with *lost = 0 when the deque was empty, or NULL with *lost = 1 when
 * another thread took that item first (trying again may succeed). */
void *es__deque_steal(es__deque_t *d, int *lost);

/* Any thread: the top item without removing it, or NULL when empty. Only a
 * hint: by the time the caller looks, the item may have been taken (and, if
 * the caller recycles items, reused); read it only through atomics. */
void *es__deque_peek(es__deque_t *d);

/* Any thread: number of items, exact when no other thread is using the
 * deque, else a snapshot. Its loads are seq_cst, and so is push's store:
 * a thread that announces something (a seq_cst store) and then finds the
 * deque empty here is guaranteed that a concurrent pusher, after its push,
 * sees the announcement. */
size_t es__deque_size(es__deque_t *d);

#endif
