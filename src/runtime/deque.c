/*
 * deque.c - Chase-Lev work-stealing deque (Chase & Lev, SPAA 2005), with the
 * C11 memory orderings of Le, Pop, Cohen & Zappa Nardelli, "Correct and
 * Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013).
 *
 * The scheduler gives each worker one deque per priority; this file knows
 * nothing about tasks, only non-NULL pointers.
 *
 * Invariants:
 *   1. Items live in slots top .. bottom-1 (mod capacity) of the current
 *      array. `top` only grows (by CAS); `bottom` is written by the owner
 *      only. Indices are size_t and wrap: sizes are computed as the signed
 *      difference bottom - top, which stays right through a wrap because a
 *      deque never holds anywhere near SIZE_MAX/2 items.
 *   2. The owner writes a slot only when bottom - top <= mask (a stale,
 *      smaller `top` makes it grow early, never overwrite), so a slot a
 *      thief may still take is never overwritten; a thief that read a slot
 *      after it was recycled fails its CAS and drops what it read.
 *   3. An item is taken exactly once: a steal takes it by moving `top` past
 *      it (CAS), the owner's pop takes it by moving `bottom` below it, and
 *      when a single item is left both sides race on the same CAS of `top`.
 *   4. Arrays replaced by a larger one are never freed before
 *      es__deque_destroy() and never written again: a thief that loaded the
 *      old array reads values identical to the new one's for every index it
 *      can win.
 *
 * Memory orderings. Le et al. write the owner's pop as a relaxed store of
 * bottom, a seq_cst fence, a relaxed load of top (and the thief symmetric).
 * Here the fence is folded into the accesses: the store of bottom in pop
 * (an exchange, see sc_store) and the loads of top and bottom in steal are
 * seq_cst. That is the original (sequentially consistent) Chase-Lev
 * algorithm, costs the same on x86-64 (xchg instead of mov + mfence), and
 * is understood by ThreadSanitizer, which ignores stand-alone fences (gcc
 * even warns about them under -fsanitize=thread). push publishes the
 * item with a (seq_cst, see there) store of bottom; growth publishes the new
 * array with a release store that thieves read with acquire.
 */
#include "deque.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#include "edgeserve/error.h"

/* A seq_cst store written as an exchange. The C11 meaning is the same, and
 * so is the code on x86-64 (xchg); on arm64 it is swpal/ldaxr-stlxr instead
 * of stlr. The point is a store that no later load can pass on any
 * implementation: qemu-user (used to test the ARM builds on x86-64 hosts)
 * lets a load-acquire pass an earlier store-release, which broke the
 * owner/thief handshake in pop under qemu-aarch64 (two takers for one item)
 * although arm64 hardware orders stlr before ldar. */
static void sc_store(atomic_size_t *p, size_t v) {
  (void)atomic_exchange_explicit(p, v, memory_order_seq_cst);
}

static es__deque_array_t *array_new(size_t cap) {
  es__deque_array_t *a = malloc(sizeof *a + cap * sizeof(a->slot[0]));
  if (!a) return NULL;
  a->mask = cap - 1;
  a->older = NULL;
  for (size_t i = 0; i < cap; i++) atomic_init(&a->slot[i], NULL);
  return a;
}

int es__deque_init(es__deque_t *d, size_t capacity) {
  size_t cap = 2;
  while (cap < capacity) cap *= 2;
  es__deque_array_t *a = array_new(cap);
  if (!a) return ES_ENOMEM;
  atomic_init(&d->top, 0);
  atomic_init(&d->bottom, 0);
  atomic_init(&d->array, a);
  return 0;
}

void es__deque_destroy(es__deque_t *d) {
  es__deque_array_t *a = atomic_load_explicit(&d->array, memory_order_relaxed);
  while (a) {
    es__deque_array_t *older = a->older;
    free(a);
    a = older;
  }
  atomic_store_explicit(&d->array, NULL, memory_order_relaxed);
}

/* Owner: replaces `a` (holding items t .. b-1) with an array twice as large. */
static es__deque_array_t *grow(es__deque_t *d, es__deque_array_t *a, size_t t, size_t b) {
  es__deque_array_t *n = array_new((a->mask + 1) * 2);
  if (!n) return NULL;
  for (size_t i = t; i != b; i++)
    atomic_store_explicit(&n->slot[i & n->mask],
                          atomic_load_explicit(&a->slot[i & a->mask], memory_order_relaxed),
                          memory_order_relaxed);
  n->older = a;
  atomic_store_explicit(&d->array, n, memory_order_release);
  return n;
}

int es__deque_push(es__deque_t *d, void *item) {
  assert(item != NULL);
  size_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
  size_t t = atomic_load_explicit(&d->top, memory_order_acquire);
  es__deque_array_t *a = atomic_load_explicit(&d->array, memory_order_relaxed);
  if (b - t > a->mask) {
    a = grow(d, a, t, b);
    if (!a) return ES_ENOMEM;
  }
  atomic_store_explicit(&a->slot[b & a->mask], item, memory_order_relaxed);
  /* release: a thief that sees the new bottom also sees the slot and
   * everything the owner wrote into *item before pushing it. A seq_cst
   * exchange rather than a release store, so that the deque itself can be
   * the flag of a store-then-load handshake (the scheduler's sleeping
   * workers read sizes with es__deque_size): see `sc_store` below. */
  sc_store(&d->bottom, b + 1);
  return 0;
}

void *es__deque_pop(es__deque_t *d) {
  size_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
  es__deque_array_t *a = atomic_load_explicit(&d->array, memory_order_relaxed);
  /* seq_cst store then seq_cst load: a thief either sees the smaller bottom
   * or the owner sees the thief's larger top (the fence of Le et al.) */
  sc_store(&d->bottom, b);
  size_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
  if ((ptrdiff_t)(b - t) < 0) { /* empty */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return NULL;
  }
  void *x = atomic_load_explicit(&a->slot[b & a->mask], memory_order_relaxed);
  if (b != t) return x; /* more than one item: no thief can reach slot b */
  /* the last item: whoever moves top past it owns it */
  if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                               memory_order_relaxed))
    x = NULL;
  atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
  return x;
}

void *es__deque_steal(es__deque_t *d, int *lost) {
  *lost = 0;
  size_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
  size_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
  if ((ptrdiff_t)(b - t) <= 0) return NULL;
  es__deque_array_t *a = atomic_load_explicit(&d->array, memory_order_acquire);
  void *x = atomic_load_explicit(&a->slot[t & a->mask], memory_order_relaxed);
  if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                               memory_order_relaxed)) {
    *lost = 1;
    return NULL;
  }
  return x;
}

void *es__deque_peek(es__deque_t *d) {
  size_t t = atomic_load_explicit(&d->top, memory_order_acquire);
  size_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
  if ((ptrdiff_t)(b - t) <= 0) return NULL;
  es__deque_array_t *a = atomic_load_explicit(&d->array, memory_order_acquire);
  return atomic_load_explicit(&a->slot[t & a->mask], memory_order_relaxed);
}

size_t es__deque_size(es__deque_t *d) {
  size_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
  size_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
  ptrdiff_t n = (ptrdiff_t)(b - t);
  return n > 0 ? (size_t)n : 0;
}
