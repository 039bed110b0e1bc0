/*
 * poison.h - marking memory a pool or an arena holds free (internal).
 *
 * Memory a pool or an arena has taken back stays mapped, so neither the
 * kernel nor a plain build notices a use after es_pool_put or after
 * es_arena_reset. Two debugging aids make it visible:
 *
 *   - Under AddressSanitizer (gcc -fsanitize=address defines
 *     __SANITIZE_ADDRESS__, clang answers __has_feature(address_sanitizer)),
 *     ES__POISON marks the bytes unaddressable, so the first read or write
 *     is reported with the stack of the access; ES__UNPOISON hands them out
 *     again. Without ASan both are no-ops.
 *   - In builds without NDEBUG, es__fill_freed overwrites freed memory with
 *     0xDD, so a stale pointer reads an obviously wrong value (0xDDDDDDDD)
 *     instead of the old, plausible one. With NDEBUG it does nothing.
 *
 * ASan tracks memory in 8-byte granules: poisoning starts and ends at the
 * object's boundaries only when they are multiples of 8, which the pools'
 * strides and the arena's chunks are.
 */
#ifndef ES_RUNTIME_POISON_H
#define ES_RUNTIME_POISON_H

#include <stddef.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define ES__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ES__ASAN 1
#endif
#endif

#ifdef ES__ASAN
#include <sanitizer/asan_interface.h>
#define ES__POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define ES__UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ES__POISON(p, n)   ((void)(p), (void)(n))
#define ES__UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ES__FREED_BYTE 0xDD

/* Fills n bytes at p with 0xDD in builds without NDEBUG. Call it before
 * ES__POISON: poisoned memory may not be written. */
static inline void es__fill_freed(void *p, size_t n) {
#ifndef NDEBUG
  memset(p, ES__FREED_BYTE, n);
#else
  (void)p, (void)n;
#endif
}

#endif
