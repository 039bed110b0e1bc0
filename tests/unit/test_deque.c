/* test_deque.c - the Chase-Lev deque: order, growth, wrap-around, and every
 * item taken exactly once with an owner and several thieves racing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <cmocka.h>

#include "../../src/runtime/deque.h"

#ifndef RACE_ITEMS /* -DRACE_ITEMS=n for slow runs (qemu) */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define RACE_ITEMS 60000 /* sanitizers slow every access down 5-20x */
#else
#define RACE_ITEMS 400000
#endif
#endif

#define ITEM(i)  ((void *)(uintptr_t)((i) + 1))
#define INDEX(x) ((size_t)(uintptr_t)(x)-1)

static void pop_is_lifo_and_steal_is_fifo(void **state) {
  (void)state;
  es__deque_t d;
  assert_int_equal(es__deque_init(&d, 8), 0);
  for (size_t i = 0; i < 6; i++) assert_int_equal(es__deque_push(&d, ITEM(i)), 0);
  assert_int_equal(es__deque_size(&d), 6);
  assert_ptr_equal(es__deque_peek(&d), ITEM(0));
  assert_ptr_equal(es__deque_pop(&d), ITEM(5));
  assert_ptr_equal(es__deque_pop(&d), ITEM(4));
  int lost = -1;
  assert_ptr_equal(es__deque_steal(&d, &lost), ITEM(0));
  assert_int_equal(lost, 0);
  assert_ptr_equal(es__deque_steal(&d, &lost), ITEM(1));
  assert_ptr_equal(es__deque_pop(&d), ITEM(3));
  assert_ptr_equal(es__deque_pop(&d), ITEM(2));
  assert_int_equal(es__deque_size(&d), 0);
  es__deque_destroy(&d);
}

static void empty_deque_gives_null_without_a_lost_race(void **state) {
  (void)state;
  es__deque_t d;
  assert_int_equal(es__deque_init(&d, 1), 0);
  int lost = -1;
  assert_null(es__deque_pop(&d));
  assert_null(es__deque_steal(&d, &lost));
  assert_int_equal(lost, 0);
  assert_null(es__deque_peek(&d));
  /* a pop on empty must leave it usable */
  assert_int_equal(es__deque_push(&d, ITEM(7)), 0);
  assert_ptr_equal(es__deque_pop(&d), ITEM(7));
  assert_null(es__deque_pop(&d));
  assert_int_equal(es__deque_size(&d), 0);
  es__deque_destroy(&d);
}

static void grows_far_past_its_initial_capacity_keeping_order(void **state) {
  (void)state;
  es__deque_t d;
  assert_int_equal(es__deque_init(&d, 2), 0);
  const size_t n = 10000;
  for (size_t i = 0; i < n; i++) assert_int_equal(es__deque_push(&d, ITEM(i)), 0);
  assert_int_equal(es__deque_size(&d), n);
  int lost;
  for (size_t i = 0; i < n / 2; i++) assert_ptr_equal(es__deque_steal(&d, &lost), ITEM(i));
  for (size_t i = n; i-- > n / 2;) assert_ptr_equal(es__deque_pop(&d), ITEM(i));
  assert_null(es__deque_pop(&d));
  es__deque_destroy(&d);
}

static void indices_wrap_around_size_max(void **state) {
  (void)state;
  es__deque_t d;
  assert_int_equal(es__deque_init(&d, 4), 0);
  /* start just below the wrap, as a deque that has moved SIZE_MAX items */
  atomic_store(&d.top, SIZE_MAX - 5);
  atomic_store(&d.bottom, SIZE_MAX - 5);
  for (size_t i = 0; i < 20; i++) assert_int_equal(es__deque_push(&d, ITEM(i)), 0);
  assert_int_equal(es__deque_size(&d), 20);
  int lost;
  for (size_t i = 0; i < 10; i++) assert_ptr_equal(es__deque_steal(&d, &lost), ITEM(i));
  for (size_t i = 20; i-- > 10;) assert_ptr_equal(es__deque_pop(&d), ITEM(i));
  assert_null(es__deque_pop(&d));
  assert_null(es__deque_steal(&d, &lost));
  es__deque_destroy(&d);
}

/* ---- owner + thieves -------------------------------------------------------- */

typedef struct {
  es__deque_t d;
  atomic_int done; /* the owner pushed everything */
  atomic_uchar *taken;
  atomic_size_t stolen;
  atomic_size_t lost_races;
  atomic_size_t bad; /* items out of range or taken twice (asserted on the main thread) */
} race_t;

static void take(race_t *r, void *x) {
  size_t i = INDEX(x);
  if (i >= RACE_ITEMS || atomic_fetch_add(&r->taken[i], 1) != 0) atomic_fetch_add(&r->bad, 1);
}

static void *thief(void *arg) {
  race_t *r = arg;
  size_t mine = 0, lost_n = 0;
  for (;;) {
    int lost;
    void *x = es__deque_steal(&r->d, &lost);
    if (x) {
      take(r, x);
      mine++;
    } else if (lost) {
      lost_n++;
    } else if (atomic_load(&r->done) && es__deque_size(&r->d) == 0) {
      break;
    }
  }
  atomic_fetch_add(&r->stolen, mine);
  atomic_fetch_add(&r->lost_races, lost_n);
  return NULL;
}

/* pop_every > 0: every pop_every pushes, the owner pops (down to empty on
 * most rounds); pop_every == 1: after every push it pops until empty, so the
 * deque holds 0 or 1 item and nearly every pop races thieves for the last
 * item on the same CAS. */
static void race(size_t nthieves, int pop_every) {
  race_t r;
  assert_int_equal(es__deque_init(&r.d, 2), 0); /* tiny: growth happens under steals */
  atomic_init(&r.done, 0);
  atomic_init(&r.stolen, 0);
  atomic_init(&r.lost_races, 0);
  atomic_init(&r.bad, 0);
  r.taken = calloc(RACE_ITEMS, sizeof *r.taken);
  assert_non_null(r.taken);
  pthread_t th[8];
  for (size_t i = 0; i < nthieves; i++)
    assert_int_equal(pthread_create(&th[i], NULL, thief, &r), 0);
  size_t popped = 0;
  for (size_t i = 0; i < RACE_ITEMS; i++) {
    assert_int_equal(es__deque_push(&r.d, ITEM(i)), 0);
    /* pop now and then, often down to the last item, where owner and
     * thieves race on the same CAS */
    if (pop_every && i % (size_t)pop_every == 0) {
      void *x;
      while ((x = es__deque_pop(&r.d))) {
        take(&r, x);
        popped++;
        if (pop_every > 1 && i % 3 == 0) break;
      }
    }
  }
  atomic_store(&r.done, 1);
  void *x;
  while ((x = es__deque_pop(&r.d))) take(&r, x), popped++;
  for (size_t i = 0; i < nthieves; i++) pthread_join(th[i], NULL);
  /* counts and checksum: each item once, none missing */
  assert_int_equal(atomic_load(&r.bad), 0);
  uint64_t sum = 0;
  for (size_t i = 0; i < RACE_ITEMS; i++) {
    assert_int_equal(atomic_load(&r.taken[i]), 1);
    sum += i;
  }
  assert_int_equal(sum, (uint64_t)RACE_ITEMS * (RACE_ITEMS - 1) / 2);
  assert_int_equal(popped + atomic_load(&r.stolen), RACE_ITEMS);
  free(r.taken);
  es__deque_destroy(&r.d);
}

static void one_thief_and_owner_take_every_item_once(void **state) {
  (void)state;
  race(1, 7);
}

static void three_thieves_and_owner_take_every_item_once(void **state) {
  (void)state;
  race(3, 5);
}

static void owner_and_thieves_race_for_the_last_item(void **state) {
  (void)state;
  race(2, 1);
}

static void thieves_alone_drain_a_growing_deque(void **state) {
  (void)state;
  race(3, 0); /* owner only pushes: the array grows while thieves read it */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pop_is_lifo_and_steal_is_fifo),
      cmocka_unit_test(empty_deque_gives_null_without_a_lost_race),
      cmocka_unit_test(grows_far_past_its_initial_capacity_keeping_order),
      cmocka_unit_test(indices_wrap_around_size_max),
      cmocka_unit_test(one_thief_and_owner_take_every_item_once),
      cmocka_unit_test(three_thieves_and_owner_take_every_item_once),
      cmocka_unit_test(owner_and_thieves_race_for_the_last_item),
      cmocka_unit_test(thieves_alone_drain_a_growing_deque),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
