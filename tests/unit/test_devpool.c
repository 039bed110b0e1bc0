/*
 * test_devpool.c - the device-memory pool: best fit, splitting, merging,
 * alignment, growth and its limit, trim, handles, statistics, and thousands
 * of random operations with the invariant checker after each.
 *
 * Regions come from a test provider that plays a device: each region is a
 * PROT_NONE mapping, so any read or write the pool made into a region would
 * crash the test, and its bases are aligned to exactly what the provider
 * promises (256, as cudaMalloc), never more. A random run that fails prints
 * its seed; ES_DEVPOOL_SEED=N re-runs that seed alone.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "edgeserve/devpool.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)

/* ---- a provider of untouchable regions ------------------------------------------ */

#define TP_MAX 256

typedef struct tprov {
  uint64_t align; /* bases are multiples of align, never of 2 * align */
  int fail_after; /* allocations that succeed before every later one fails; -1 never */
  int allocs, frees, live, bad_frees;
  uint64_t live_bytes;
  struct {
    void *map, *base;
    size_t maplen;
    uint64_t size;
  } r[TP_MAX];
} tprov_t;

static void *tp_alloc(void *ctx, uint64_t size) {
  tprov_t *t = ctx;
  if (t->fail_after >= 0 && t->allocs >= t->fail_after) return NULL;
  int i = 0;
  while (i < TP_MAX && t->r[i].map) i++;
  if (i == TP_MAX) return NULL;
  size_t maplen = (size_t)(size + 3 * t->align);
  void *map = mmap(NULL, maplen, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) return NULL;
  uintptr_t a2 = (uintptr_t)(2 * t->align);
  uintptr_t base = (((uintptr_t)map + a2 - 1) & ~(a2 - 1)) + (uintptr_t)t->align;
  t->r[i].map = map;
  t->r[i].maplen = maplen;
  t->r[i].base = (void *)base;
  t->r[i].size = size;
  t->allocs++;
  t->live++;
  t->live_bytes += size;
  return (void *)base;
}

static void tp_free(void *ctx, void *base, uint64_t size) {
  tprov_t *t = ctx;
  for (int i = 0; i < TP_MAX; i++) {
    if (t->r[i].map && t->r[i].base == base) {
      if (t->r[i].size != size) t->bad_frees++;
      munmap(t->r[i].map, t->r[i].maplen);
      memset(&t->r[i], 0, sizeof t->r[i]);
      t->frees++;
      t->live--;
      t->live_bytes -= size;
      return;
    }
  }
  t->bad_frees++;
}

static es_devmem_provider_t tp_provider(tprov_t *t, uint64_t align) {
  memset(t, 0, sizeof *t);
  t->align = align;
  t->fail_after = -1;
  es_devmem_provider_t p = {"test-device", t, align, 4096, tp_alloc, tp_free};
  return p;
}

/* A pool over a fresh test provider; min_split 0 (= alignment), no limit. */
typedef struct fixture {
  tprov_t tp;
  es_devmem_provider_t prov;
  es_devpool_params_t params;
  es_devpool_t *pool;
} fixture_t;

static void fx_init(fixture_t *f, uint64_t align, uint64_t min_region, uint64_t max_bytes) {
  f->prov = tp_provider(&f->tp, 256);
  f->params = es_devpool_default_params();
  f->params.provider = &f->prov;
  f->params.alignment = align;
  f->params.min_region_bytes = min_region;
  f->params.max_bytes = max_bytes;
}

static void fx_open(fixture_t *f) {
  es_error_t err = {0};
  f->pool = es_devpool_new(&f->params, &err);
  if (!f->pool) fail_msg("es_devpool_new: %s", err.msg);
}

static void fx_check(fixture_t *f) {
  es_error_t err = {0};
  if (es_devpool_check(f->pool, &err) != 0) fail_msg("%s", err.msg);
}

/* Frees the pool; every region must be back with the provider. */
static void fx_close(fixture_t *f) {
  assert_int_equal(es_devpool_free(f->pool), 0);
  assert_int_equal(f->tp.live, 0);
  assert_int_equal(f->tp.live_bytes, 0);
  assert_int_equal(f->tp.bad_frees, 0);
}

static es_devblock_t *must_alloc(es_devpool_t *pool, uint64_t size, uint64_t align) {
  es_error_t err = {0};
  es_devblock_t *b = es_devpool_alloc_aligned(pool, size, align, &err);
  if (!b) fail_msg("alloc %" PRIu64 " align %" PRIu64 ": %s", size, align, err.msg);
  return b;
}

static uintptr_t addr(const es_devblock_t *b) { return (uintptr_t)es_devblock_ptr(b); }

static es_devpool_stats_t stats(es_devpool_t *pool) {
  es_devpool_stats_t s;
  es_devpool_stats(pool, &s);
  return s;
}

/* ---- behaviour ------------------------------------------------------------------- */

static void default_params_are_the_documented_ones(void **state) {
  (void)state;
  es_devpool_params_t d = es_devpool_default_params();
  assert_null(d.provider);
  assert_int_equal(d.alignment, 256);
  assert_int_equal(d.min_region_bytes, 16 * MiB);
  assert_int_equal(d.max_bytes, 0);
  assert_int_equal(d.initial_bytes, 0);
  assert_int_equal(d.min_split_bytes, 0);
  const es_devmem_provider_t *h = es_devmem_host_provider();
  assert_string_equal(h->name, "host-mmap");
  assert_int_equal(h->align, 4096);
}

static void host_provider_pool_hands_out_writable_memory(void **state) {
  (void)state;
  es_devpool_params_t p = es_devpool_default_params();
  p.min_region_bytes = 1 * MiB;
  es_devpool_t *pool = es_devpool_new(&p, NULL);
  assert_non_null(pool);
  es_devblock_t *a = must_alloc(pool, 1000, 0), *b = must_alloc(pool, 3000, 0);
  memset(es_devblock_ptr(a), 0xaa, 1000); /* host memory: the caller may write it */
  memset(es_devblock_ptr(b), 0x55, 3000);
  assert_int_equal(((unsigned char *)es_devblock_ptr(a))[999], 0xaa);
  assert_int_equal(addr(b) - addr(a), 1024); /* 1000 rounded up to 256 */
  es_devblock_free(a);
  es_devblock_free(b);
  assert_int_equal(stats(pool).regions, 1);
  assert_int_equal(stats(pool).region_bytes, 1 * MiB);
  assert_int_equal(es_devpool_free(pool), 0);
}

static void blocks_are_aligned_and_report_the_requested_size(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  es_devblock_t *b[5];
  uint64_t sizes[5] = {1, 255, 256, 257, 100000};
  for (int i = 0; i < 5; i++) {
    b[i] = must_alloc(f.pool, sizes[i], 0);
    assert_int_equal(addr(b[i]) % 256, 0);
    assert_int_equal(es_devblock_size(b[i]), sizes[i]);
  }
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.used_bytes, 256 + 256 + 256 + 512 + 100096);
  assert_int_equal(s.requested_bytes, 1 + 255 + 256 + 257 + 100000);
  assert_int_equal(s.held_blocks, 5);
  assert_int_equal(s.allocs, 5);
  fx_check(&f);
  for (int i = 0; i < 5; i++) es_devblock_free(b[i]);
  fx_check(&f);
  fx_close(&f);
}

static void null_handles_are_harmless(void **state) {
  (void)state;
  es_devblock_free(NULL);
  assert_null(es_devblock_ptr(NULL));
  assert_int_equal(es_devblock_size(NULL), 0);
  assert_int_equal(es_devpool_free(NULL), 0);
}

static void zero_size_is_refused_with_einval(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  es_error_t err = {0};
  assert_null(es_devpool_alloc(f.pool, 0, &err));
  assert_int_equal(err.code, ES_EINVAL);
  assert_non_null(strstr(err.msg, "0 bytes"));
  assert_int_equal(stats(f.pool).failures, 1);
  assert_int_equal(stats(f.pool).regions, 0);
  fx_close(&f);
}

static void absurd_size_is_refused_with_erange(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  es_error_t err = {0};
  assert_null(es_devpool_alloc(f.pool, UINT64_MAX, &err));
  assert_int_equal(err.code, ES_ERANGE);
  assert_null(es_devpool_alloc(f.pool, (UINT64_C(1) << 62) + 1, &err));
  assert_int_equal(err.code, ES_ERANGE);
  fx_check(&f);
  fx_close(&f);
}

static void bad_alignments_are_refused_with_einval(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 3, 1 * MiB, 0);
  es_error_t err = {0};
  assert_null(es_devpool_new(&f.params, &err));
  assert_int_equal(err.code, ES_EINVAL);
  assert_non_null(strstr(err.msg, "alignment 3"));
  f.params.alignment = 256;
  fx_open(&f);
  assert_null(es_devpool_alloc_aligned(f.pool, 100, 768, &err));
  assert_int_equal(err.code, ES_EINVAL);
  assert_null(es_devpool_alloc_aligned(f.pool, 100, UINT64_C(1) << 41, &err));
  assert_int_equal(err.code, ES_EINVAL);
  assert_int_equal(stats(f.pool).failures, 2);
  fx_close(&f);
}

static void provider_without_functions_is_refused(void **state) {
  (void)state;
  es_devmem_provider_t bad = {"broken", NULL, 256, 4096, NULL, NULL};
  es_devpool_params_t p = es_devpool_default_params();
  p.provider = &bad;
  es_error_t err = {0};
  assert_null(es_devpool_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  assert_non_null(strstr(err.msg, "broken"));
}

static void huge_size_over_the_limit_is_ebudget_with_the_reason(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 4 * MiB);
  fx_open(&f);
  es_devblock_t *a = must_alloc(f.pool, 1000, 0);
  es_error_t err = {0};
  assert_null(es_devpool_alloc(f.pool, 5 * MiB, &err));
  assert_int_equal(err.code, ES_EBUDGET);
  /* the request, the largest free block, the bytes held and the limit */
  assert_non_null(strstr(err.msg, "5242880 bytes"));
  assert_non_null(strstr(err.msg, "largest free block 1047552"));
  assert_non_null(strstr(err.msg, "hold 1048576 of max_bytes 4194304"));
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.failures, 1);
  assert_int_equal(s.regions, 1);
  es_devblock_free(a);
  fx_check(&f);
  fx_close(&f);
}

static void best_fit_picks_the_smallest_free_block_that_fits(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  /* free holes of 4 KiB, 1 KiB and 2 KiB, in that address order, kept apart */
  es_devblock_t *h4 = must_alloc(f.pool, 4 * KiB, 0), *s1 = must_alloc(f.pool, 256, 0);
  es_devblock_t *h1 = must_alloc(f.pool, 1 * KiB, 0), *s2 = must_alloc(f.pool, 256, 0);
  es_devblock_t *h2 = must_alloc(f.pool, 2 * KiB, 0), *s3 = must_alloc(f.pool, 256, 0);
  uintptr_t a4 = addr(h4), a1 = addr(h1), a2 = addr(h2);
  es_devblock_free(h4);
  es_devblock_free(h1);
  es_devblock_free(h2);
  fx_check(&f);
  assert_int_equal(stats(f.pool).free_blocks, 4); /* three holes and the region's tail */
  es_devblock_t *x = must_alloc(f.pool, 1500, 0);
  assert_int_equal(addr(x), a2); /* 2 KiB is the best fit for 1.5 KiB */
  es_devblock_t *y = must_alloc(f.pool, 1000, 0);
  assert_int_equal(addr(y), a1);
  es_devblock_t *z = must_alloc(f.pool, 3 * KiB, 0);
  assert_int_equal(addr(z), a4);
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.free_blocks, 3); /* 1 KiB of the 4 KiB hole, 512 of the 2 KiB, the tail */
  assert_int_equal(s.regions, 1);
  fx_check(&f);
  es_devblock_t *all[] = {s1, s2, s3, x, y, z};
  for (int i = 0; i < 6; i++) es_devblock_free(all[i]);
  fx_close(&f);
}

static void equal_sizes_go_to_the_lowest_address(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  es_devblock_t *b[6];
  for (int i = 0; i < 6; i++) b[i] = must_alloc(f.pool, 512, 0);
  es_devblock_free(b[4]); /* holes at 4, 2, 0: freed high to low */
  es_devblock_free(b[2]);
  uintptr_t lowest = addr(b[0]);
  es_devblock_free(b[0]);
  es_devblock_t *x = must_alloc(f.pool, 512, 0);
  assert_int_equal(addr(x), lowest);
  es_devblock_free(x);
  for (int i = 1; i < 6; i += 2) es_devblock_free(b[i]);
  fx_check(&f);
  fx_close(&f);
}

static void remainder_below_min_split_stays_in_the_block(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  f.params.min_split_bytes = 1000; /* rounded up to 1024 */
  fx_open(&f);
  es_devblock_t *hole = must_alloc(f.pool, 1280, 0), *sep = must_alloc(f.pool, 256, 0);
  es_devblock_free(hole);
  uint64_t splits = stats(f.pool).splits;
  es_devblock_t *b = must_alloc(f.pool, 512, 0); /* 768 would be left: below 1024 */
  assert_int_equal(es_devblock_size(b), 512);
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.used_bytes, 1280 + 256);
  assert_int_equal(s.splits, splits);
  fx_check(&f);
  es_devblock_free(b);
  /* a remainder of exactly min_split is split off */
  b = must_alloc(f.pool, 256, 0);
  assert_int_equal(stats(f.pool).used_bytes, 256 + 256);
  assert_int_equal(stats(f.pool).splits, splits + 1);
  fx_check(&f);
  es_devblock_free(b);
  es_devblock_free(sep);
  fx_close(&f);
}

static void freeing_merges_with_both_free_neighbours(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  es_devblock_t *a = must_alloc(f.pool, 1024, 0), *b = must_alloc(f.pool, 2048, 0);
  es_devblock_t *c = must_alloc(f.pool, 4096, 0), *d = must_alloc(f.pool, 256, 0);
  es_devblock_free(a);
  es_devblock_free(c);
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.free_blocks, 3);
  assert_int_equal(s.merges, 0);
  es_devblock_free(b); /* joins a and c */
  s = stats(f.pool);
  assert_int_equal(s.free_blocks, 2);
  assert_int_equal(s.merges, 2);
  assert_int_equal(s.largest_free, 1 * MiB - 1024 - 2048 - 4096 - 256);
  fx_check(&f);
  es_devblock_free(d); /* joins both sides: one block covers the region */
  s = stats(f.pool);
  assert_int_equal(s.free_blocks, 1);
  assert_int_equal(s.merges, 4);
  assert_int_equal(s.largest_free, 1 * MiB);
  assert_true(s.fragmentation == 0.0);
  fx_check(&f);
  fx_close(&f);
}

static void fragmentation_is_one_minus_largest_over_free(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 64 * KiB, 64 * KiB);
  fx_open(&f);
  assert_true(stats(f.pool).fragmentation == 0.0); /* no free memory at all */
  es_devblock_t *b[16];
  for (int i = 0; i < 16; i++) b[i] = must_alloc(f.pool, 4 * KiB, 0);
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.free_bytes, 0);
  assert_true(s.fragmentation == 0.0);
  for (int i = 0; i < 16; i += 2) es_devblock_free(b[i]); /* 8 holes of 4 KiB */
  s = stats(f.pool);
  assert_int_equal(s.free_bytes, 32 * KiB);
  assert_int_equal(s.largest_free, 4 * KiB);
  assert_true(s.fragmentation == 1.0 - 4.0 / 32.0);
  es_error_t err = {0};
  assert_null(es_devpool_alloc(f.pool, 8 * KiB, &err)); /* 32 KiB free, none in one piece */
  assert_int_equal(err.code, ES_EBUDGET);
  for (int i = 1; i < 16; i += 2) es_devblock_free(b[i]);
  fx_check(&f);
  fx_close(&f);
}

static void pool_grows_by_min_region_up_to_max_bytes(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 3 * MiB);
  fx_open(&f);
  es_devblock_t *b[3];
  for (int i = 0; i < 3; i++) {
    b[i] = must_alloc(f.pool, 1 * MiB, 0);
    assert_int_equal(stats(f.pool).regions, (uint64_t)i + 1);
  }
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.region_bytes, 3 * MiB);
  assert_int_equal(s.grows, 3);
  assert_int_equal(f.tp.live_bytes, 3 * MiB);
  es_error_t err = {0};
  assert_null(es_devpool_alloc(f.pool, 256, &err));
  assert_int_equal(err.code, ES_EBUDGET);
  fx_check(&f);
  for (int i = 0; i < 3; i++) es_devblock_free(b[i]);
  fx_close(&f);
}

static void large_request_gets_a_region_of_its_own_size(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  es_devblock_t *b = must_alloc(f.pool, 5 * MiB + 1, 0);
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.regions, 1);
  assert_int_equal(s.region_bytes, 5 * MiB + 4096); /* rounded to the provider's granularity */
  es_devblock_free(b);
  fx_check(&f);
  fx_close(&f);
}

static void last_region_shrinks_to_fit_under_the_limit(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 1 * MiB + 512 * KiB);
  fx_open(&f);
  es_devblock_t *a = must_alloc(f.pool, 1 * MiB, 0);
  es_devblock_t *b = must_alloc(f.pool, 100 * KiB, 0);
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.regions, 2);
  assert_int_equal(s.region_bytes, 1 * MiB + 512 * KiB); /* not 2 MiB */
  es_devblock_free(a);
  es_devblock_free(b);
  fx_check(&f);
  fx_close(&f);
}

static void trim_gives_back_wholly_free_regions_keeping_a_minimum(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  es_devblock_t *b[4];
  for (int i = 0; i < 4; i++) b[i] = must_alloc(f.pool, 1 * MiB, 0);
  es_devblock_t *small = must_alloc(f.pool, 256, 0); /* a fifth region, kept busy */
  assert_int_equal(stats(f.pool).regions, 5);
  assert_int_equal(es_devpool_trim(f.pool, 0), 0); /* nothing wholly free */
  for (int i = 0; i < 4; i++) es_devblock_free(b[i]);
  assert_int_equal(es_devpool_trim(f.pool, 3 * MiB), 2 * MiB); /* keeps 3 of 5 MiB */
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.regions, 3);
  assert_int_equal(s.releases, 2);
  assert_int_equal(f.tp.live, 3);
  fx_check(&f);
  assert_int_equal(es_devpool_trim(f.pool, 0), 2 * MiB);
  assert_int_equal(stats(f.pool).regions, 1); /* the busy one stays */
  fx_check(&f);
  es_devblock_free(small);
  assert_int_equal(es_devpool_trim(f.pool, 0), 1 * MiB);
  assert_int_equal(f.tp.live, 0);
  fx_check(&f);
  fx_close(&f);
}

static void allocation_gives_back_free_regions_before_failing(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 2 * MiB);
  fx_open(&f);
  es_devblock_t *a = must_alloc(f.pool, 1 * MiB, 0), *b = must_alloc(f.pool, 1 * MiB, 0);
  es_devblock_free(a);
  es_devblock_free(b);
  /* 2 MiB are free but in two regions: the pool returns both and takes one */
  es_devblock_t *c = must_alloc(f.pool, 1536 * KiB, 0);
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.releases, 2);
  assert_int_equal(s.regions, 1);
  assert_int_equal(s.region_bytes, 1536 * KiB);
  fx_check(&f);
  es_devblock_free(c);
  fx_close(&f);
}

static void provider_failure_is_enomem_naming_the_provider(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  f.tp.fail_after = 1;
  es_devblock_t *a = must_alloc(f.pool, 1 * MiB, 0);
  es_error_t err = {0};
  assert_null(es_devpool_alloc(f.pool, 1000, &err));
  assert_int_equal(err.code, ES_ENOMEM);
  assert_non_null(strstr(err.msg, "test-device"));
  assert_int_equal(stats(f.pool).failures, 1);
  fx_check(&f);
  es_devblock_free(a);
  fx_close(&f);
}

static void per_allocation_alignment_leaves_a_free_gap_in_front(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  es_devblock_t *a = must_alloc(f.pool, 256, 0);
  /* test regions start at an odd multiple of 256: the first 64 KiB boundary is inside */
  es_devblock_t *b = must_alloc(f.pool, 1000, 64 * KiB);
  assert_int_equal(addr(b) % (64 * KiB), 0);
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.regions, 1);
  assert_int_equal(s.free_blocks, 2); /* the gap and the tail */
  assert_int_equal(s.splits, 3);
  fx_check(&f);
  es_devblock_t *c = must_alloc(f.pool, 256, 0); /* best fit: the gap, not the tail */
  assert_true(addr(c) > addr(a) && addr(c) < addr(b));
  es_devblock_free(a);
  es_devblock_free(b);
  es_devblock_free(c);
  fx_check(&f);
  assert_int_equal(stats(f.pool).free_blocks, 1);
  fx_close(&f);
}

static void pool_alignment_above_the_providers_holds(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 8 * KiB, 64 * KiB, 0); /* provider promises 256 only */
  fx_open(&f);
  es_devblock_t *b[8];
  for (int i = 0; i < 8; i++) {
    b[i] = must_alloc(f.pool, 3000 + (uint64_t)i * 5000, 0);
    assert_int_equal(addr(b[i]) % (8 * KiB), 0);
  }
  fx_check(&f);
  for (int i = 0; i < 8; i++) es_devblock_free(b[i]);
  fx_check(&f);
  fx_close(&f);
}

static void freeing_a_pool_with_held_blocks_is_estate_and_keeps_it(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  es_devblock_t *b = must_alloc(f.pool, 4096, 0);
  assert_int_equal(es_devpool_free(f.pool), ES_ESTATE);
  assert_int_equal(f.tp.live, 1); /* nothing was given back */
  fx_check(&f);
  assert_int_equal(es_devblock_size(b), 4096); /* the handle still works */
  es_devblock_t *c = must_alloc(f.pool, 4096, 0);
  es_devblock_free(b);
  es_devblock_free(c);
  fx_close(&f);
}

static void initial_bytes_are_obtained_at_creation(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  f.params.initial_bytes = 200 * KiB;
  fx_open(&f);
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.regions, 1);
  assert_int_equal(s.region_bytes, 200 * KiB);
  assert_int_equal(s.free_bytes, 200 * KiB);
  fx_close(&f);
  fx_init(&f, 256, 1 * MiB, 100 * KiB);
  f.params.initial_bytes = 200 * KiB;
  es_error_t err = {0};
  assert_null(es_devpool_new(&f.params, &err));
  assert_int_equal(err.code, ES_EBUDGET);
  fx_init(&f, 256, 1 * MiB, 0);
  f.params.initial_bytes = 200 * KiB;
  f.tp.fail_after = 0;
  assert_null(es_devpool_new(&f.params, &err));
  assert_int_equal(err.code, ES_ENOMEM);
  assert_int_equal(f.tp.live, 0);
}

/* Allocates in a scope and leaves it early; returns the held count inside. */
static uint64_t use_scoped_blocks(es_devpool_t *pool, int leave_early) {
  ES_DEVBLOCK_SCOPED(a) = es_devpool_alloc(pool, 1000, NULL);
  ES_DEVBLOCK_SCOPED(b) = es_devpool_alloc(pool, 2000, NULL);
  assert_true(a && b);
  uint64_t held = stats(pool).held_blocks;
  if (leave_early) return held;
  ES_DEVBLOCK_SCOPED(c) = es_devpool_alloc(pool, 3000, NULL);
  assert_non_null(c);
  return stats(pool).held_blocks;
}

static void scoped_blocks_are_freed_when_they_leave_scope(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  assert_int_equal(use_scoped_blocks(f.pool, 0), 3);
  assert_int_equal(stats(f.pool).held_blocks, 0);
  assert_int_equal(use_scoped_blocks(f.pool, 1), 2);
  assert_int_equal(stats(f.pool).held_blocks, 0);
  for (int i = 0; i < 3; i++) {
    ES_DEVBLOCK_SCOPED(x) = es_devpool_alloc(f.pool, 512, NULL);
    assert_non_null(x);
    if (i == 1) continue; /* every iteration ends the scope */
  }
  assert_int_equal(stats(f.pool).held_blocks, 0);
  assert_int_equal(stats(f.pool).frees, 8);
  fx_check(&f);
  fx_close(&f);
}

static void stolen_scoped_block_outlives_its_scope(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 1 * MiB, 0);
  fx_open(&f);
  es_devblock_t *kept;
  {
    ES_DEVBLOCK_SCOPED(b) = es_devpool_alloc(f.pool, 777, NULL);
    kept = es_devblock_steal(&b);
    assert_null(b);
  }
  assert_int_equal(stats(f.pool).held_blocks, 1);
  assert_int_equal(es_devblock_size(kept), 777);
  es_devblock_free(kept);
  fx_close(&f);
}

/* ---- random operations under the checker ------------------------------------------ */

typedef struct live {
  es_devblock_t *b;
  uintptr_t lo, hi; /* [ptr, ptr + size) */
} live_t;

static uint64_t rnd(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#define NLIVE 400

/* One run: `ops` random operations with the checker after each. The pool
 * alignment, the limit and min_split vary with the seed. */
static void random_run(uint64_t seed, int ops) {
  uint64_t rs = seed;
  fixture_t f;
  uint64_t align = UINT64_C(256) << (rnd(&rs) % 3); /* 256, 512 (above the provider's), 1024 */
  uint64_t max_bytes = (8 + rnd(&rs) % 24) * MiB;
  fx_init(&f, align, (256 + rnd(&rs) % 2048) * KiB, max_bytes);
  f.params.min_split_bytes = rnd(&rs) % 2 ? 0 : 4 * KiB;
  fx_open(&f);
  static live_t live[NLIVE];
  int nlive = 0;
  es_error_t err = {0};
#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      fail_msg("seed %" PRIu64 " op %d: %s (re-run with ES_DEVPOOL_SEED=%" PRIu64 ")", seed, op,   \
               #cond, seed);                                                                       \
  } while (0)
  for (int op = 0; op < ops; op++) {
    uint64_t r = rnd(&rs) % 100, alloc_pct = (op / 500) % 2 ? 35 : 70; /* fill, then drain */
    if (r < alloc_pct && nlive < NLIVE) {
      uint64_t size = 1 + rnd(&rs) % (UINT64_C(1) << (rnd(&rs) % 22)); /* log-uniform, to 2 MiB */
      uint64_t al = rnd(&rs) % 4 ? 0 : UINT64_C(1) << (rnd(&rs) % 17);
      es_devblock_t *b = es_devpool_alloc_aligned(f.pool, size, al, &err);
      if (!b) {
        /* a refusal must be real: no free block fits and no region fits under the limit */
        CHECK(err.code == ES_EBUDGET);
        es_devpool_stats_t s = stats(f.pool);
        uint64_t a = al > align ? al : align, need = (size + align - 1) & ~(align - 1);
        uint64_t base_pad = align > 256 ? align - 256 : 0;
        uint64_t min_region = (need + (a - align) + base_pad + 4095) & ~UINT64_C(4095);
        CHECK(s.largest_free < need + (a - align));
        CHECK(s.region_bytes + min_region > max_bytes);
      } else {
        uintptr_t lo = addr(b), hi = lo + (uintptr_t)size;
        CHECK(lo % (al > align ? al : align) == 0);
        CHECK(es_devblock_size(b) == size);
        for (int i = 0; i < nlive; i++) CHECK(hi <= live[i].lo || lo >= live[i].hi);
        live[nlive++] = (live_t){b, lo, hi};
      }
    } else if (r < 95 && nlive > 0) {
      int i = (int)(rnd(&rs) % (uint64_t)nlive);
      es_devblock_free(live[i].b);
      live[i] = live[--nlive];
    } else if (r < 97) {
      uint64_t before = stats(f.pool).region_bytes, keep = rnd(&rs) % (8 * MiB);
      uint64_t got = es_devpool_trim(f.pool, keep);
      CHECK(stats(f.pool).region_bytes == before - got);
      CHECK(got == 0 || before - got >= keep);
    } else if (r < 98) {
      CHECK(es_devpool_alloc(f.pool, 0, &err) == NULL && err.code == ES_EINVAL);
    } else if (r < 99) {
      CHECK(es_devpool_alloc(f.pool, max_bytes + 1 + rnd(&rs) % MiB, &err) == NULL);
      CHECK(err.code == ES_EBUDGET);
    } else {
      es_devpool_stats_t s = stats(f.pool);
      CHECK(s.fragmentation >= 0.0 && s.fragmentation < 1.0);
      CHECK(s.free_bytes == 0
                ? s.fragmentation == 0.0
                : s.fragmentation == 1.0 - (double)s.largest_free / (double)s.free_bytes);
      CHECK(s.held_blocks == (uint64_t)nlive);
      CHECK(f.tp.live_bytes == s.region_bytes);
    }
    if (es_devpool_check(f.pool, &err) != 0)
      fail_msg("seed %" PRIu64 " op %d: %s (re-run with ES_DEVPOOL_SEED=%" PRIu64 ")", seed, op,
               err.msg, seed);
  }
  int op = ops;
  while (nlive > 0) es_devblock_free(live[--nlive].b);
  es_devpool_stats_t s = stats(f.pool);
  CHECK(s.used_bytes == 0 && s.held_blocks == 0 && s.requested_bytes == 0);
  CHECK(s.free_blocks == s.regions); /* every region merged back into one block */
  CHECK(s.allocs == s.frees);
  CHECK(es_devpool_check(f.pool, &err) == 0);
#undef CHECK
  fx_close(&f);
}

static void random_alloc_free_keeps_every_invariant(void **state) {
  (void)state;
  const char *env = getenv("ES_DEVPOOL_SEED");
  if (env) {
    random_run(strtoull(env, NULL, 10), 20000);
    return;
  }
  for (uint64_t seed = 1; seed <= 8; seed++) random_run(seed, 4000);
}

/* ---- threads --------------------------------------------------------------------- */

typedef struct worker {
  es_devpool_t *pool;
  uint64_t seed;
  int failures;
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  es_devblock_t *mine[64];
  int n = 0;
  for (int op = 0; op < 3000; op++) {
    if (n < 64 && (n == 0 || rnd(&w->seed) % 2)) {
      es_devblock_t *b = es_devpool_alloc(w->pool, 1 + rnd(&w->seed) % (64 * KiB), NULL);
      if (b)
        mine[n++] = b;
      else
        w->failures++;
    } else {
      int i = (int)(rnd(&w->seed) % (uint64_t)n);
      es_devblock_free(mine[i]);
      mine[i] = mine[--n];
    }
  }
  while (n > 0) es_devblock_free(mine[--n]);
  return NULL;
}

static void threads_sharing_a_pool_keep_every_invariant(void **state) {
  (void)state;
  fixture_t f;
  fx_init(&f, 256, 512 * KiB, 0);
  fx_open(&f);
  worker_t w[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker_t){f.pool, (uint64_t)i + 100, 0};
    assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].failures, 0);
  }
  fx_check(&f);
  es_devpool_stats_t s = stats(f.pool);
  assert_int_equal(s.held_blocks, 0);
  assert_int_equal(s.allocs, s.frees);
  assert_int_equal(s.free_blocks, s.regions);
  fx_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(default_params_are_the_documented_ones),
      cmocka_unit_test(host_provider_pool_hands_out_writable_memory),
      cmocka_unit_test(blocks_are_aligned_and_report_the_requested_size),
      cmocka_unit_test(null_handles_are_harmless),
      cmocka_unit_test(zero_size_is_refused_with_einval),
      cmocka_unit_test(absurd_size_is_refused_with_erange),
      cmocka_unit_test(bad_alignments_are_refused_with_einval),
      cmocka_unit_test(provider_without_functions_is_refused),
      cmocka_unit_test(huge_size_over_the_limit_is_ebudget_with_the_reason),
      cmocka_unit_test(best_fit_picks_the_smallest_free_block_that_fits),
      cmocka_unit_test(equal_sizes_go_to_the_lowest_address),
      cmocka_unit_test(remainder_below_min_split_stays_in_the_block),
      cmocka_unit_test(freeing_merges_with_both_free_neighbours),
      cmocka_unit_test(fragmentation_is_one_minus_largest_over_free),
      cmocka_unit_test(pool_grows_by_min_region_up_to_max_bytes),
      cmocka_unit_test(large_request_gets_a_region_of_its_own_size),
      cmocka_unit_test(last_region_shrinks_to_fit_under_the_limit),
      cmocka_unit_test(trim_gives_back_wholly_free_regions_keeping_a_minimum),
      cmocka_unit_test(allocation_gives_back_free_regions_before_failing),
      cmocka_unit_test(provider_failure_is_enomem_naming_the_provider),
      cmocka_unit_test(per_allocation_alignment_leaves_a_free_gap_in_front),
      cmocka_unit_test(pool_alignment_above_the_providers_holds),
      cmocka_unit_test(freeing_a_pool_with_held_blocks_is_estate_and_keeps_it),
      cmocka_unit_test(initial_bytes_are_obtained_at_creation),
      cmocka_unit_test(scoped_blocks_are_freed_when_they_leave_scope),
      cmocka_unit_test(stolen_scoped_block_outlives_its_scope),
      cmocka_unit_test(random_alloc_free_keeps_every_invariant),
      cmocka_unit_test(threads_sharing_a_pool_keep_every_invariant),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
