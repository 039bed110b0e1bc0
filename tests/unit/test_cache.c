/* test_cache.c - response caches: the tier interface, the key builder, and the in-process tier
 * (hits, overwrite, byte bound, TTL, clear/erase, ES_ERANGE, LRU order, W-TinyLFU scan
 * resistance, counters, threads). Time is passed in, so nothing here waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "edgeserve/cache.h"

#define SEED 0x5eed

static es_cache_t *new_cache(uint64_t max_bytes, unsigned shards, int admission, int64_t ttl) {
  es_cache_memory_params_t p = es_cache_memory_default_params();
  p.max_bytes = max_bytes;
  p.shards = shards;
  p.admission = admission;
  p.ttl_us = ttl;
  p.seed = SEED;
  es_error_t err;
  es_cache_t *c = es_cache_memory_new(&p, &err);
  assert_non_null(c);
  return c;
}

static es_cache_stats_t stats(es_cache_t *c) {
  es_cache_stats_t s;
  es_cache_stats(c, &s);
  return s;
}

static int put_str(es_cache_t *c, const char *k, const char *v, int64_t now) {
  return es_cache_put(c, k, strlen(k), v, strlen(v), now);
}

/* Returns 1 on a hit whose value equals `want` (NULL: any), 0 on a miss. */
static int hit(es_cache_t *c, const char *k, const char *want, int64_t now) {
  char buf[2048];
  size_t n = 0;
  int rc = es_cache_get(c, k, strlen(k), now, buf, sizeof buf, &n);
  if (rc == ES_ENOTFOUND) return 0;
  assert_int_equal(rc, 0);
  if (want) {
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
  }
  return 1;
}

static void key_of(char *k, unsigned i) { snprintf(k, 32, "key-%06u", i); }

static void max_entries_bounds_the_count_per_shard_share(void **state) {
  (void)state;
  for (int admission = 0; admission <= 1; admission++) {
    es_cache_memory_params_t p = es_cache_memory_default_params();
    p.max_bytes = 1 << 20; /* far more than 100 small entries need */
    p.shards = 4;
    p.max_entries = 10; /* 3 per shard: at most 12 */
    p.admission = admission;
    p.seed = SEED;
    es_error_t err;
    es_cache_t *c = es_cache_memory_new(&p, &err);
    assert_non_null(c);
    char k[32];
    for (unsigned i = 0; i < 100; i++) {
      key_of(k, i);
      assert_int_equal(put_str(c, k, "v", 0), 0);
      assert_true(stats(c).entries <= 12);
    }
    es_cache_stats_t st = stats(c);
    assert_true(st.entries >= 4); /* every shard keeps what its share allows */
    assert_int_equal(st.evictions, 100 - st.entries);
    /* the last key put is there without admission (LRU keeps the newest) */
    if (!admission) assert_true(hit(c, "key-000099", "v", 0));
    es_cache_free(c);
  }
}

static void a_put_value_is_returned_by_get(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 0, 1, 0);
  assert_string_equal(es_cache_name(c), "memory");
  assert_int_equal(put_str(c, "media|1|a cat video", "{\"label\":\"video\"}", 0), 0);
  assert_true(hit(c, "media|1|a cat video", "{\"label\":\"video\"}", 1));
  es_cache_stats_t s = stats(c);
  assert_int_equal(s.entries, 1);
  assert_int_equal(s.hits, 1);
  assert_int_equal(s.puts, 1);
  assert_int_equal(s.max_bytes, 1 << 20);
  es_cache_free(c);
}

static void an_absent_key_misses(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 0, 1, 0);
  put_str(c, "a", "1", 0);
  assert_false(hit(c, "b", NULL, 0));
  assert_false(hit(c, "", NULL, 0));
  assert_false(hit(c, "aa", NULL, 0));
  assert_int_equal(stats(c).misses, 3);
  es_cache_free(c);
}

static void empty_keys_and_values_are_entries_like_any_other(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 0, 1, 0);
  assert_int_equal(es_cache_put(c, NULL, 0, NULL, 0, 0), 0);
  size_t n = 99;
  assert_int_equal(es_cache_get(c, NULL, 0, 0, NULL, 0, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(es_cache_erase(c, NULL, 0), 0);
  assert_int_equal(es_cache_get(c, NULL, 0, 0, NULL, 0, &n), ES_ENOTFOUND);
  es_cache_free(c);
}

static void a_put_overwrites_an_existing_key(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 1, 1, 0);
  put_str(c, "k", "short", 0);
  uint64_t before = stats(c).bytes;
  char big[600];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(put_str(c, "k", big, 1), 0);
  assert_true(hit(c, "k", big, 2));
  es_cache_stats_t s = stats(c);
  assert_int_equal(s.entries, 1);
  assert_int_equal(s.puts, 2);
  assert_int_equal(s.bytes - before,
                   es_cache_memory_charge(1, 599) - es_cache_memory_charge(1, strlen("short")));
  es_cache_free(c);
}

static void bytes_grow_by_the_entrys_charge(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 1, 1, 0);
  uint64_t empty = stats(c).bytes;
  assert_true(empty > 0); /* the shard's tables count too */
  put_str(c, "0123456789", "abcdefghijklmnopqrstuvwxyz", 0);
  assert_int_equal(stats(c).bytes - empty, es_cache_memory_charge(10, 26));
  /* the charge covers the key, the value and a header: never less */
  assert_true(es_cache_memory_charge(10, 26) >= 36 + 3 * sizeof(void *));
  for (size_t v = 0; v < 300; v++)
    assert_true(es_cache_memory_charge(7, v + 1) >= es_cache_memory_charge(7, v));
  es_cache_free(c);
}

/* A random mix of puts (sizes 0..1.5 KiB, some overwrites), gets, erases, and a
 * shrink of the bound halfway: bytes stay within max_bytes after every call. */
static void bytes_never_exceed_max_bytes(void **state) {
  (void)state;
  for (int admission = 0; admission <= 1; admission++) {
    es_cache_t *c = new_cache(64 << 10, 4, admission, 20);
    uint64_t max = 64 << 10;
    uint64_t x = 12345;
    char val[1536], k[32];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 20000; i++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      unsigned r = (unsigned)(x >> 33);
      key_of(k, r % 700);
      int64_t now = i / 4;
      switch (r % 8) {
      case 0: es_cache_erase(c, k, strlen(k)); break;
      case 1:
      case 2:
      case 3: hit(c, k, NULL, now); break;
      default: assert_int_equal(es_cache_put(c, k, strlen(k), val, (r >> 8) % 1536, now), 0);
      }
      if (i == 10000) {
        assert_int_equal(es_cache_set_max_bytes(c, 24 << 10), 0);
        max = 24 << 10;
      }
      es_cache_stats_t s = stats(c);
      assert_true(s.bytes <= max);
      assert_int_equal(s.max_bytes, max);
    }
    es_cache_stats_t s = stats(c);
    assert_true(s.evictions > 0);
    assert_true(s.expirations > 0);
    es_cache_free(c);
  }
}

static void an_entry_expires_when_now_reaches_put_plus_ttl(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 1, 1, 5000000); /* 5 s */
  put_str(c, "k", "v", 1000);
  assert_true(hit(c, "k", "v", 1000 + 4999999));
  assert_false(hit(c, "k", NULL, 1000 + 5000000));
  es_cache_stats_t s = stats(c);
  assert_int_equal(s.expirations, 1);
  assert_int_equal(s.entries, 0);
  assert_int_equal(s.hits, 1);
  assert_int_equal(s.misses, 1);
  es_cache_free(c);
}

static void an_overwrite_restarts_the_ttl(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 1, 1, 100);
  put_str(c, "k", "old", 0);
  put_str(c, "k", "new", 90);
  assert_true(hit(c, "k", "new", 150));
  assert_false(hit(c, "k", NULL, 190));
  es_cache_free(c);
}

static void expired_entries_are_freed_by_later_calls_oldest_first(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 1, 1, 100);
  put_str(c, "a", "1", 0);
  put_str(c, "b", "2", 10);
  put_str(c, "c", "3", 50);
  put_str(c, "d", "4", 120); /* a and b have expired: freed by this put */
  es_cache_stats_t s = stats(c);
  assert_int_equal(s.expirations, 2);
  assert_int_equal(s.entries, 2);
  assert_true(hit(c, "c", "3", 120));
  es_cache_free(c);
}

static void no_ttl_means_entries_never_expire(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 1, 1, 0);
  put_str(c, "k", "v", 0);
  assert_true(hit(c, "k", "v", INT64_MAX - 1));
  assert_int_equal(stats(c).expirations, 0);
  es_cache_free(c);
}

static void clear_empties_the_cache_and_keeps_the_counters(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 4, 1, 0);
  uint64_t empty = stats(c).bytes;
  char k[32];
  for (unsigned i = 0; i < 100; i++) {
    key_of(k, i);
    put_str(c, k, "value", 0);
  }
  assert_true(hit(c, "key-000007", "value", 0));
  es_cache_clear(c);
  es_cache_stats_t s = stats(c);
  assert_int_equal(s.entries, 0);
  assert_int_equal(s.bytes, empty);
  assert_int_equal(s.puts, 100);
  assert_int_equal(s.hits, 1);
  for (unsigned i = 0; i < 100; i++) {
    key_of(k, i);
    assert_false(hit(c, k, NULL, 0));
  }
  put_str(c, "again", "works", 1);
  assert_true(hit(c, "again", "works", 1));
  es_cache_free(c);
}

static void erase_removes_one_key(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 1, 1, 0);
  put_str(c, "a", "1", 0);
  put_str(c, "b", "2", 0);
  assert_int_equal(es_cache_erase(c, "a", 1), 0);
  assert_int_equal(es_cache_erase(c, "a", 1), ES_ENOTFOUND);
  assert_false(hit(c, "a", NULL, 0));
  assert_true(hit(c, "b", "2", 0));
  assert_int_equal(stats(c).entries, 1);
  es_cache_free(c);
}

static void the_key_builder_lays_out_model_version_params_input(void **state) {
  (void)state;
  unsigned char buf[64];
  size_t n = es_cache_key(buf, sizeof buf, "ab", 0x0102, "P", 1, "text", 4);
  const unsigned char want[] = {'a', 'b', 0, 2, 1, 0,   0,   0,   0,   0,
                                0,   1,   0, 0, 0, 'P', 't', 'e', 'x', 't'};
  assert_int_equal(n, sizeof want);
  assert_memory_equal(buf, want, sizeof want);
  /* too small: nothing written, the length still returned */
  memset(buf, 0xaa, sizeof buf);
  assert_int_equal(es_cache_key(buf, 5, "ab", 1, "P", 1, "text", 4), sizeof want);
  assert_int_equal(buf[0], 0xaa);
  assert_int_equal(es_cache_key(NULL, 0, "ab", 1, NULL, 0, NULL, 0), 3 + 12);
  /* moving a byte between model, parameters and input changes the key */
  unsigned char a[64], b[64];
  size_t na = es_cache_key(a, sizeof a, "ab", 1, "c", 1, "d", 1);
  size_t nb = es_cache_key(b, sizeof b, "a", 1, "bc", 2, "d", 1);
  assert_true(na != nb || memcmp(a, b, na) != 0);
  na = es_cache_key(a, sizeof a, "m", 1, "pq", 2, "r", 1);
  nb = es_cache_key(b, sizeof b, "m", 1, "p", 1, "qr", 2);
  assert_int_equal(na, nb);
  assert_memory_not_equal(a, b, na);
}

static void erase_prefix_removes_one_models_entries(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 4, 1, 0);
  char k[128];
  for (unsigned i = 0; i < 50; i++) {
    char in[16];
    snprintf(in, sizeof in, "input %u", i);
    size_t n = es_cache_key(k, sizeof k, "media", 1, NULL, 0, in, strlen(in));
    es_cache_put(c, k, n, "m", 1, 0);
    n = es_cache_key(k, sizeof k, "mediax", 1, NULL, 0, in, strlen(in));
    es_cache_put(c, k, n, "x", 1, 0);
  }
  uint64_t erased = 0;
  assert_int_equal(es_cache_erase_prefix(c, "media", sizeof "media", &erased), 0);
  assert_int_equal(erased, 50);
  assert_int_equal(stats(c).entries, 50);
  size_t n = es_cache_key(k, sizeof k, "mediax", 1, NULL, 0, "input 3", 7);
  size_t vl;
  char v[4];
  assert_int_equal(es_cache_get(c, k, n, 0, v, sizeof v, &vl), 0);
  assert_int_equal(v[0], 'x');
  n = es_cache_key(k, sizeof k, "media", 1, NULL, 0, "input 3", 7);
  assert_int_equal(es_cache_get(c, k, n, 0, v, sizeof v, &vl), ES_ENOTFOUND);
  assert_int_equal(es_cache_erase_prefix(c, NULL, 0, &erased), 0); /* plen 0: all */
  assert_int_equal(erased, 50);
  assert_int_equal(stats(c).entries, 0);
  es_cache_free(c);
}

static void a_small_buffer_gets_erange_and_the_length(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 1, 1, 0);
  put_str(c, "k", "0123456789", 0);
  char buf[4] = "abc";
  size_t n = 0;
  assert_int_equal(es_cache_get(c, "k", 1, 0, buf, 4, &n), ES_ERANGE);
  assert_int_equal(n, 10);
  assert_string_equal(buf, "abc"); /* untouched */
  assert_int_equal(es_cache_get(c, "k", 1, 0, NULL, 0, &n), ES_ERANGE);
  assert_int_equal(n, 10);
  es_cache_stats_t s = stats(c);
  assert_int_equal(s.hits, 2); /* ES_ERANGE counts as a hit */
  assert_int_equal(s.misses, 0);
  es_cache_free(c);
}

static void an_entry_larger_than_a_shard_gets_erange_and_changes_nothing(void **state) {
  (void)state;
  es_cache_t *c = new_cache(64 << 10, 4, 1, 0); /* 16 KiB shards */
  put_str(c, "k", "old", 0);
  es_cache_stats_t before = stats(c);
  size_t big = 16 << 10;
  char *v = calloc(1, big);
  assert_int_equal(es_cache_put(c, "k", 1, v, big, 1), ES_ERANGE);
  assert_int_equal(es_cache_put(c, "other", 5, v, big, 1), ES_ERANGE);
  assert_true(hit(c, "k", "old", 2));
  es_cache_stats_t s = stats(c);
  assert_int_equal(s.puts, before.puts);
  assert_int_equal(s.entries, 1);
  assert_int_equal(s.bytes, before.bytes);
  /* half a shard fits */
  assert_int_equal(es_cache_put(c, "k", 1, v, 8 << 10, 3), 0);
  free(v);
  es_cache_free(c);
}

static void invalid_arguments_are_refused_and_not_counted(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 1, 1, 0);
  char buf[8];
  size_t n;
  assert_int_equal(es_cache_get(c, "k", 1, 0, buf, sizeof buf, NULL), ES_EINVAL);
  assert_int_equal(es_cache_get(c, NULL, 1, 0, buf, sizeof buf, &n), ES_EINVAL);
  assert_int_equal(es_cache_get(c, "k", 1, 0, NULL, 8, &n), ES_EINVAL);
  assert_int_equal(es_cache_put(c, NULL, 1, "v", 1, 0), ES_EINVAL);
  assert_int_equal(es_cache_put(c, "k", 1, NULL, 1, 0), ES_EINVAL);
  assert_int_equal(es_cache_erase(c, NULL, 3), ES_EINVAL);
  assert_int_equal(es_cache_erase_prefix(c, NULL, 3, NULL), ES_EINVAL);
  assert_int_equal(es_cache_set_max_bytes(c, 100), ES_EINVAL);
  es_cache_stats_t s = stats(c);
  assert_int_equal(s.hits + s.misses + s.puts, 0);
  assert_int_equal(s.max_bytes, 1 << 20);
  es_cache_free(c);
}

static void new_rejects_invalid_parameters(void **state) {
  (void)state;
  es_error_t err;
  es_cache_memory_params_t p = es_cache_memory_default_params();
  assert_int_equal(p.max_bytes, 64u << 20);
  assert_int_equal(p.admission, 1);
  p.shards = 3;
  assert_null(es_cache_memory_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  assert_non_null(strstr(err.msg, "power of two"));
  p.shards = 512;
  assert_null(es_cache_memory_new(&p, &err));
  p = es_cache_memory_default_params();
  p.shards = 16;
  p.max_bytes = 16 * 4096 - 1;
  assert_null(es_cache_memory_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  assert_non_null(strstr(err.msg, "max_bytes"));
  p = es_cache_memory_default_params();
  p.ttl_us = -1;
  assert_null(es_cache_memory_new(&p, &err));
  assert_null(es_cache_memory_new(NULL, &err));
  /* automatic shards fit small caches: down to one 4 KiB shard */
  p = es_cache_memory_default_params();
  p.max_bytes = 4096;
  es_cache_t *c = es_cache_memory_new(&p, &err);
  assert_non_null(c);
  assert_int_equal(put_str(c, "k", "v", 0), 0);
  assert_true(hit(c, "k", "v", 0));
  es_cache_free(c);
  es_cache_free(NULL);
}

static void lru_mode_evicts_the_least_recently_used(void **state) {
  (void)state;
  es_cache_t *c = new_cache(8192, 1, 0, 0);
  char k[32], v[101];
  memset(v, 'v', 100);
  v[100] = 0;
  unsigned n = 0;
  while (stats(c).evictions == 0) {
    key_of(k, n++);
    put_str(c, k, v, 0);
  }
  assert_true(n > 10);
  assert_int_equal(stats(c).evictions, 1);
  assert_false(hit(c, "key-000000", NULL, 0)); /* the oldest went */
  assert_true(hit(c, "key-000001", v, 0));     /* now the most recent */
  key_of(k, n++);
  put_str(c, k, v, 0);
  assert_true(hit(c, "key-000001", v, 0)); /* kept: used */
  assert_false(hit(c, "key-000002", NULL, 0));
  for (unsigned i = 3; i < n; i++) {
    key_of(k, i);
    assert_true(hit(c, k, v, 0));
  }
  es_cache_stats_t s = stats(c);
  assert_int_equal(s.evictions, 2);
  assert_int_equal(s.admitted + s.rejected, 0); /* no admission in LRU mode */
  es_cache_free(c);
}

/* One shard of ~64 KiB holds ~300 entries. Fill it, make one key hot, then
 * put a scan of 700 one-time keys. LRU ends with nothing but the scan's tail;
 * W-TinyLFU turns the scan away and keeps the hot key and the older entries.
 * "Most": the older entries were used once, like the scan, and the sketch is
 * a count-min sketch, so a few scan keys that collide with used counters
 * look more frequent than them and get in (about 1 in 25 here). */
static unsigned scan_survivors(int admission, int *hot_kept, es_cache_stats_t *out) {
  es_cache_t *c = new_cache(64 << 10, 1, admission, 0);
  char k[32], v[101];
  memset(v, 'v', 100);
  v[100] = 0;
  for (unsigned i = 0; i < 250; i++) {
    key_of(k, i);
    put_str(c, k, v, 0);
  }
  put_str(c, "hot", v, 0);
  for (int i = 0; i < 8; i++) assert_true(hit(c, "hot", v, 0));
  for (unsigned i = 100000; i < 100700; i++) {
    key_of(k, i);
    assert_int_equal(put_str(c, k, v, 0), 0); /* 0 even when turned away */
  }
  *hot_kept = hit(c, "hot", v, 0);
  unsigned kept = 0;
  for (unsigned i = 0; i < 250; i++) {
    key_of(k, i);
    kept += (unsigned)hit(c, k, v, 0);
  }
  *out = stats(c);
  es_cache_free(c);
  return kept;
}

static void tinylfu_keeps_a_hot_key_that_a_scan_flushes_out_of_lru(void **state) {
  (void)state;
  int hot;
  es_cache_stats_t s;
  unsigned kept = scan_survivors(0, &hot, &s);
  assert_false(hot);
  assert_int_equal(kept, 0);
  kept = scan_survivors(1, &hot, &s);
  assert_true(hot);
  assert_true(kept >= 200);       /* LRU: 0 */
  assert_true(s.rejected >= 350); /* most of the scan was turned away at the window's exit */
  assert_true(s.evictions >= s.rejected);
}

static void warm_entries_are_kept_against_colder_puts(void **state) {
  (void)state;
  es_cache_t *c = new_cache(64 << 10, 1, 1, 0);
  char k[32], v[101];
  memset(v, 'v', 100);
  v[100] = 0;
  for (unsigned i = 0; i < 200; i++) { /* history says: these 200 were asked 10 times each */
    key_of(k, i);
    assert_int_equal(es_cache_warm(c, k, strlen(k), v, 100, 10, 0), 0);
  }
  for (unsigned i = 1000; i < 3000; i++) { /* a flood of one-time requests */
    key_of(k, i);
    put_str(c, k, v, 0);
  }
  unsigned kept = 0;
  for (unsigned i = 0; i < 200; i++) {
    key_of(k, i);
    kept += (unsigned)hit(c, k, v, 0);
  }
  assert_true(kept >= 180); /* (count-min collisions, as above) */
  /* without the warm counts they would be one-time keys like the flood: */
  es_cache_clear(c);
  for (unsigned i = 0; i < 200; i++) {
    key_of(k, i);
    es_cache_put(c, k, strlen(k), v, 100, 0);
  }
  for (unsigned i = 1000; i < 3000; i++) {
    key_of(k, i);
    put_str(c, k, v, 0);
  }
  unsigned cold = 0;
  for (unsigned i = 0; i < 200; i++) {
    key_of(k, i);
    cold += (unsigned)hit(c, k, v, 0);
  }
  assert_true(cold < kept);
  es_cache_free(c);
}

static void set_max_bytes_shrinks_at_once_and_can_grow_back(void **state) {
  (void)state;
  es_cache_t *c = new_cache(1 << 20, 2, 1, 0);
  char k[32], v[200];
  memset(v, 'v', sizeof v);
  for (unsigned i = 0; i < 4000; i++) {
    key_of(k, i);
    es_cache_put(c, k, strlen(k), v, sizeof v, 0);
  }
  es_cache_stats_t s = stats(c);
  assert_true(s.bytes > (1 << 20) - 2 * 1024);
  assert_int_equal(es_cache_set_max_bytes(c, 64 << 10), 0);
  s = stats(c);
  assert_true(s.bytes <= 64 << 10);
  assert_int_equal(s.max_bytes, 64 << 10);
  assert_true(s.entries > 100);
  assert_int_equal(es_cache_set_max_bytes(c, 2 * 4096 - 1), ES_EINVAL);
  assert_int_equal(es_cache_set_max_bytes(c, 4 << 20), 0);
  for (unsigned i = 0; i < 4000; i++) {
    key_of(k, i);
    es_cache_put(c, k, strlen(k), v, sizeof v, 0);
  }
  s = stats(c);
  assert_int_equal(s.entries, 4000); /* everything fits again */
  assert_true(s.bytes <= 4 << 20);
  es_cache_free(c);
}

/* hits + misses == gets; puts == successful put calls; entries == new keys -
 * evictions - expirations - erased, in both modes. */
static void the_counters_add_up(void **state) {
  (void)state;
  for (int admission = 0; admission <= 1; admission++) {
    es_cache_t *c = new_cache(32 << 10, 2, admission, 400);
    uint64_t gets = 0, puts = 0, erased = 0, x = 99;
    char k[32], buf[512];
    memset(buf, 'b', sizeof buf);
    for (int i = 0; i < 5000; i++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      unsigned r = (unsigned)(x >> 33);
      key_of(k, (r % 1000) * (r % 1000) / 1000); /* skewed */
      size_t n;
      if (r % 3 == 0) {
        assert_int_equal(es_cache_put(c, k, strlen(k), buf, 64 + r % 256, i), 0);
        puts++;
      } else if (r % 17 == 1) {
        erased += es_cache_erase(c, k, strlen(k)) == 0;
      } else {
        int rc = es_cache_get(c, k, strlen(k), i, buf, r % 5 ? sizeof buf : 16, &n);
        assert_true(rc == 0 || rc == ES_ENOTFOUND || rc == ES_ERANGE);
        gets++;
      }
    }
    es_cache_stats_t s = stats(c);
    assert_int_equal(s.hits + s.misses, gets);
    assert_int_equal(s.puts, puts);
    /* every put either made a new entry or overwrote one; count the new ones by
     * replaying nothing: entries + evictions + expirations + erased = new keys,
     * and new keys <= puts */
    assert_true(s.entries + s.evictions + s.expirations + erased <= s.puts);
    assert_true(s.hits > 0 && s.misses > 0 && s.evictions > 0 && s.expirations > 0);
    if (admission) {
      assert_true(s.admitted > 0 && s.rejected > 0);
      assert_true(s.rejected <= s.evictions);
    }
    es_cache_free(c);
  }
}

/* Exact accounting on a sequence where every put is a new key. */
static void new_entries_are_kept_evicted_expired_or_erased(void **state) {
  (void)state;
  es_cache_t *c = new_cache(16 << 10, 1, 1, 300);
  char k[32], v[64] = {0};
  uint64_t erased = 0;
  for (unsigned i = 0; i < 2000; i++) {
    key_of(k, i);
    assert_int_equal(es_cache_put(c, k, strlen(k), v, sizeof v, i), 0);
    if (i % 7 == 0) erased += es_cache_erase(c, k, strlen(k)) == 0;
    if (i % 3 == 0) hit(c, k, NULL, i);
  }
  es_cache_stats_t s = stats(c);
  assert_int_equal(s.entries + s.evictions + s.expirations + erased, 2000);
  assert_int_equal(s.puts, 2000);
  es_cache_free(c);
}

/* ---- threads ---- */

typedef struct hammer {
  es_cache_t *c;
  unsigned id;
  uint64_t gets, bad;
} hammer;

/* Values say which key they belong to ("key-000123:" then filler), so a hit
 * returning another key's bytes, or torn bytes, is caught. */
static void *hammer_main(void *arg) {
  hammer *h = arg;
  uint64_t x = 0x9e3779b97f4a7c15ull * (h->id + 1);
  char k[32], v[700], got[700];
  for (int i = 0; i < 20000; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    unsigned r = (unsigned)(x >> 33);
    unsigned key = r % 2 ? r % 64 : r % 1024; /* overlapping, half on a hot set */
    key_of(k, key);
    int64_t now = i;
    size_t n;
    switch (r % 10) {
    case 0:
    case 1:
    case 2: {
      size_t len = 12 + (r >> 10) % 600;
      memcpy(v, k, 10);
      v[10] = ':';
      memset(v + 11, 'a' + (int)(key % 26), len - 11);
      es_cache_put(h->c, k, 10, v, len, now);
      break;
    }
    case 3: es_cache_erase(h->c, k, 10); break;
    default:
      h->gets++;
      if (es_cache_get(h->c, k, 10, now, got, sizeof got, &n) == 0) {
        int ok = n >= 12 && memcmp(got, k, 10) == 0 && got[10] == ':';
        for (size_t j = 11; ok && j < n; j++) ok = got[j] == 'a' + (int)(key % 26);
        h->bad += !ok;
      }
    }
    if (h->id == 0 && i % 5000 == 4999) es_cache_clear(h->c);
    if (h->id == 1 && i % 1000 == 0) {
      es_cache_stats_t s;
      es_cache_stats(h->c, &s);
      h->bad += s.bytes > s.max_bytes;
    }
    if (h->id == 2 && i == 10000) es_cache_set_max_bytes(h->c, 96 << 10);
  }
  return NULL;
}

static void four_threads_on_overlapping_keys_stay_consistent(void **state) {
  (void)state;
  for (int admission = 0; admission <= 1; admission++) {
    es_cache_t *c = new_cache(128 << 10, 4, admission, 3000);
    pthread_t t[4];
    hammer h[4];
    for (unsigned i = 0; i < 4; i++) {
      h[i] = (hammer){.c = c, .id = i};
      assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
    }
    uint64_t gets = 0;
    for (unsigned i = 0; i < 4; i++) {
      pthread_join(t[i], NULL);
      assert_int_equal(h[i].bad, 0);
      gets += h[i].gets;
    }
    es_cache_stats_t s = stats(c);
    assert_int_equal(s.hits + s.misses, gets);
    assert_true(s.hits > 0);
    assert_true(s.bytes <= 96 << 10);
    es_cache_free(c);
  }
}

/* ---- the interface ---- */

typedef struct fake {
  int gets, puts, erases, clears, statss, frees;
  int64_t last_now;
  size_t last_klen;
  int *freed;
} fake;

static int fake_get(void *impl, const void *key, size_t klen, int64_t now_us, void *buf, size_t cap,
                    size_t *vlen) {
  fake *f = impl;
  (void)key;
  f->gets++;
  f->last_now = now_us;
  f->last_klen = klen;
  if (cap < 2) return ES_ERANGE;
  memcpy(buf, "hi", 2);
  *vlen = 2;
  return 0;
}
static int fake_put(void *impl, const void *key, size_t klen, const void *val, size_t vlen,
                    int64_t now_us) {
  fake *f = impl;
  (void)key, (void)val, (void)vlen;
  f->puts++;
  f->last_now = now_us;
  f->last_klen = klen;
  return 0;
}
static int fake_erase(void *impl, const void *key, size_t klen) {
  (void)key, (void)klen;
  ((fake *)impl)->erases++;
  return ES_ENOTFOUND;
}
static void fake_clear(void *impl) { ((fake *)impl)->clears++; }
static void fake_stats(void *impl, es_cache_stats_t *out) {
  ((fake *)impl)->statss++;
  out->hits = 42;
}
static void fake_free(void *impl) { *((fake *)impl)->freed = 1; }

static const es_cache_ops_t fake_ops = {.name = "fake",
                                        .get = fake_get,
                                        .put = fake_put,
                                        .erase = fake_erase,
                                        .clear = fake_clear,
                                        .stats = fake_stats,
                                        .free = fake_free};

static void the_interface_dispatches_through_the_tiers_functions(void **state) {
  (void)state;
  int freed = 0;
  fake f = {.freed = &freed};
  es_error_t err;
  es_cache_t *c = es_cache_wrap(&fake_ops, &f, &err);
  assert_non_null(c);
  assert_string_equal(es_cache_name(c), "fake");
  char buf[8];
  size_t n = 0;
  assert_int_equal(es_cache_get(c, "abc", 3, 77, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 2);
  assert_memory_equal(buf, "hi", 2);
  assert_int_equal(f.last_now, 77);
  assert_int_equal(f.last_klen, 3);
  assert_int_equal(es_cache_put(c, "abcd", 4, "v", 1, 78), 0);
  assert_int_equal(f.last_klen, 4);
  /* optional functions: warm falls back to put, the others are unsupported */
  assert_int_equal(es_cache_warm(c, "w", 1, "v", 1, 9, 79), 0);
  assert_int_equal(f.puts, 2);
  assert_int_equal(f.last_now, 79);
  uint64_t erased = 5;
  assert_int_equal(es_cache_erase_prefix(c, "m", 1, &erased), ES_EUNSUPPORTED);
  assert_int_equal(erased, 0);
  assert_int_equal(es_cache_set_max_bytes(c, 1 << 20), ES_EUNSUPPORTED);
  assert_int_equal(es_cache_erase(c, "k", 1), ES_ENOTFOUND);
  es_cache_clear(c);
  es_cache_stats_t s;
  es_cache_stats(c, &s);
  assert_int_equal(s.hits, 42);
  assert_int_equal(s.misses, 0); /* zeroed before the tier fills it */
  assert_int_equal(f.gets, 1);
  assert_int_equal(f.erases, 1);
  assert_int_equal(f.clears, 1);
  assert_int_equal(f.statss, 1);
  /* argument checks happen before the tier sees anything */
  assert_int_equal(es_cache_get(c, "k", 1, 0, buf, sizeof buf, NULL), ES_EINVAL);
  assert_int_equal(f.gets, 1);
  es_cache_free(c);
  assert_int_equal(freed, 1);
}

static void wrap_refuses_a_table_without_a_required_function(void **state) {
  (void)state;
  es_cache_ops_t ops = fake_ops;
  ops.stats = NULL;
  es_error_t err;
  assert_null(es_cache_wrap(&ops, NULL, &err));
  assert_int_equal(err.code, ES_EINVAL);
  assert_null(es_cache_wrap(NULL, NULL, &err));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_put_value_is_returned_by_get),
      cmocka_unit_test(an_absent_key_misses),
      cmocka_unit_test(empty_keys_and_values_are_entries_like_any_other),
      cmocka_unit_test(a_put_overwrites_an_existing_key),
      cmocka_unit_test(bytes_grow_by_the_entrys_charge),
      cmocka_unit_test(bytes_never_exceed_max_bytes),
      cmocka_unit_test(an_entry_expires_when_now_reaches_put_plus_ttl),
      cmocka_unit_test(an_overwrite_restarts_the_ttl),
      cmocka_unit_test(expired_entries_are_freed_by_later_calls_oldest_first),
      cmocka_unit_test(no_ttl_means_entries_never_expire),
      cmocka_unit_test(clear_empties_the_cache_and_keeps_the_counters),
      cmocka_unit_test(erase_removes_one_key),
      cmocka_unit_test(the_key_builder_lays_out_model_version_params_input),
      cmocka_unit_test(erase_prefix_removes_one_models_entries),
      cmocka_unit_test(a_small_buffer_gets_erange_and_the_length),
      cmocka_unit_test(an_entry_larger_than_a_shard_gets_erange_and_changes_nothing),
      cmocka_unit_test(invalid_arguments_are_refused_and_not_counted),
      cmocka_unit_test(new_rejects_invalid_parameters),
      cmocka_unit_test(lru_mode_evicts_the_least_recently_used),
      cmocka_unit_test(tinylfu_keeps_a_hot_key_that_a_scan_flushes_out_of_lru),
      cmocka_unit_test(warm_entries_are_kept_against_colder_puts),
      cmocka_unit_test(set_max_bytes_shrinks_at_once_and_can_grow_back),
      cmocka_unit_test(the_counters_add_up),
      cmocka_unit_test(new_entries_are_kept_evicted_expired_or_erased),
      cmocka_unit_test(four_threads_on_overlapping_keys_stay_consistent),
      cmocka_unit_test(the_interface_dispatches_through_the_tiers_functions),
      cmocka_unit_test(wrap_refuses_a_table_without_a_required_function),
      cmocka_unit_test(max_entries_bounds_the_count_per_shard_share),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
