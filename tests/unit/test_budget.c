/* test_budget.c - tiers, reservations and refusals, accounting against
 * samples, pressure levels with hysteresis and listeners, thread safety. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "edgeserve/budget.h"

#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)

static void assert_tier(es_budget_tier_t t, const char *name, uint64_t os, uint64_t model,
                        uint64_t cache, uint64_t safety) {
  assert_string_equal(t.name, name);
  assert_int_equal(t.os_reserve, os);
  assert_int_equal(t.model, model);
  assert_int_equal(t.cache, cache);
  assert_int_equal(t.safety, safety);
  assert_int_equal(t.os_reserve + t.model + t.cache + t.safety + t.work, t.total);
}

/* ---- tiers ------------------------------------------------------------------ */

static void tiers_match_the_users_laptop_table(void **state) {
  (void)state;
  /* total / OS reserve / max model / max cache / safety margin, GB */
  assert_tier(es_budget_tier_for(8 * GiB), "8GB", 2 * GiB, 2 * GiB, 1 * GiB, 1536 * MiB);
  assert_tier(es_budget_tier_for(16 * GiB), "16GB", 3 * GiB, 3 * GiB, 1536 * MiB, 2 * GiB);
  assert_tier(es_budget_tier_for(32 * GiB), "32GB+", 4 * GiB, 6 * GiB, 3 * GiB, 3 * GiB);
  assert_int_equal(es_budget_tier_for(8 * GiB).work, 1536 * MiB);
}

static void small_tiers_are_the_documented_anchors(void **state) {
  (void)state;
  assert_tier(es_budget_tier_for(512 * MiB), "512MB", 224 * MiB, 48 * MiB, 16 * MiB, 80 * MiB);
  assert_tier(es_budget_tier_for(1 * GiB), "1GB", 544 * MiB, 64 * MiB, 32 * MiB, 160 * MiB);
  assert_tier(es_budget_tier_for(2 * GiB), "2GB", 640 * MiB, 384 * MiB, 128 * MiB, 256 * MiB);
  assert_tier(es_budget_tier_for(4 * GiB), "4GB", 1 * GiB, 1 * GiB, 512 * MiB, 512 * MiB);
  /* 1 GB: the process gets 320 MiB, the users' critical alert figure */
  es_budget_tier_t t = es_budget_tier_for(1 * GiB);
  assert_int_equal(t.total - t.os_reserve - t.safety, 320 * MiB);
}

static void raspberry_pi_1gb_gets_the_1gb_tier_and_a_sub_300mb_budget(void **state) {
  (void)state;
  /* A Pi 4 "1 GB" reports about 905 MiB of MemTotal. */
  es_budget_tier_t t = es_budget_tier_for(905 * MiB);
  assert_string_equal(t.name, "1GB");
  uint64_t process = t.total - t.os_reserve - t.safety;
  assert_true(process < 300 * MiB); /* "whole service < 300 MB" */
  assert_true(process > 250 * MiB);
  assert_true(t.model >= 50 * MiB); /* a 25 MB model and its replacement */
  assert_true(t.os_reserve >= 400 * MiB);
}

static void tier_names_tolerate_firmware_carveouts(void **state) {
  (void)state;
  assert_string_equal(es_budget_tier_for((uint64_t)(7.6 * (double)GiB)).name, "8GB");
  assert_string_equal(es_budget_tier_for((uint64_t)(3.7 * (double)GiB)).name, "4GB");
  assert_string_equal(es_budget_tier_for(6 * GiB).name, "4GB");
  assert_string_equal(es_budget_tier_for((uint64_t)(15.4 * (double)GiB)).name, "16GB");
  assert_string_equal(es_budget_tier_for(512 * MiB).name, "512MB");
  assert_string_equal(es_budget_tier_for(450 * MiB).name, "512MB");
  assert_string_equal(es_budget_tier_for(256 * MiB).name, "<512MB");
  assert_string_equal(es_budget_tier_for(64 * GiB).name, "32GB+");
}

static void tiers_below_512mb_and_above_32gb_scale_in_proportion(void **state) {
  (void)state;
  assert_tier(es_budget_tier_for(256 * MiB), "<512MB", 112 * MiB, 24 * MiB, 8 * MiB, 40 * MiB);
  assert_tier(es_budget_tier_for(64 * GiB), "32GB+", 8 * GiB, 12 * GiB, 6 * GiB, 6 * GiB);
  es_budget_tier_t z = es_budget_tier_for(0);
  assert_int_equal(z.os_reserve + z.model + z.cache + z.safety + z.work, 0);
  es_budget_tier_t huge = es_budget_tier_for(UINT64_MAX); /* no overflow */
  assert_int_equal(huge.total, UINT64_MAX);
  assert_true(huge.work > huge.model);
  assert_int_equal(huge.os_reserve + huge.model + huge.cache + huge.safety + huge.work, UINT64_MAX);
}

static void tier_figures_add_up_and_never_shrink_as_memory_grows(void **state) {
  (void)state;
  es_budget_tier_t prev = es_budget_tier_for(16 * MiB);
  for (uint64_t total = 17 * MiB; total <= 128 * GiB; total += total / 37 + 4096) {
    es_budget_tier_t t = es_budget_tier_for(total);
    assert_int_equal(t.os_reserve + t.model + t.cache + t.safety + t.work, total);
    assert_true(t.os_reserve >= prev.os_reserve);
    assert_true(t.model >= prev.model);
    assert_true(t.cache >= prev.cache);
    assert_true(t.safety >= prev.safety);
    assert_true(t.work >= prev.work);
    prev = t;
  }
}

/* ---- construction -------------------------------------------------------------- */

static es_budget_t *explicit_budget(uint64_t budget, uint64_t model, uint64_t cache, uint64_t work,
                                    uint64_t safety) {
  es_budget_params_t p = es_budget_default_params();
  p.budget = budget;
  p.limit[ES_BUDGET_MODEL] = model;
  p.limit[ES_BUDGET_CACHE] = cache;
  p.limit[ES_BUDGET_WORK] = work;
  p.safety = safety;
  es_budget_t *b = es_budget_new(&p, NULL);
  assert_non_null(b);
  return b;
}

static void new_refuses_params_without_a_budget_or_with_bad_thresholds(void **state) {
  (void)state;
  es_error_t err = {0};
  es_budget_params_t p = es_budget_default_params();
  assert_null(es_budget_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  assert_non_null(strstr(err.msg, "es_budget_tier_for"));
  p.tier = es_budget_tier_for(1 * GiB);
  p.warning = 0.95; /* above critical */
  assert_null(es_budget_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  p.warning = 0.75;
  p.hysteresis = 0.80; /* wider than warning */
  assert_null(es_budget_new(&p, &err));
  p.hysteresis = 0.05;
  p.sys_critical = 1.5;
  assert_null(es_budget_new(&p, &err));
  p.sys_critical = 0.85;
  es_budget_t *b = es_budget_new(&p, &err);
  assert_non_null(b);
  es_budget_free(b);
}

static void tier_budget_limits_kinds_by_the_tier(void **state) {
  (void)state;
  es_budget_params_t p = es_budget_default_params();
  p.tier = es_budget_tier_for(8 * GiB);
  es_budget_t *b = es_budget_new(&p, NULL);
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_int_equal(st.budget, 8 * GiB - 2 * GiB - 1536 * MiB);
  assert_int_equal(st.limit[ES_BUDGET_MODEL], 2 * GiB);
  assert_int_equal(st.limit[ES_BUDGET_CACHE], 1 * GiB);
  assert_int_equal(st.limit[ES_BUDGET_WORK], 1536 * MiB);
  assert_int_equal(st.safety, 1536 * MiB);
  assert_int_equal(st.level, ES_PRESSURE_OK);
  es_budget_free(b);
  /* An explicit budget caps kinds only where asked. */
  b = explicit_budget(300 * MiB, 0, 50 * MiB, 0, 0);
  es_budget_stats(b, &st);
  assert_int_equal(st.budget, 300 * MiB);
  assert_int_equal(st.limit[ES_BUDGET_MODEL], 300 * MiB);
  assert_int_equal(st.limit[ES_BUDGET_CACHE], 50 * MiB);
  es_budget_free(b);
}

/* ---- reservations ------------------------------------------------------------------ */

static void reserve_and_release_move_bytes_and_track_peaks(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(1 * GiB, 200 * MiB, 100 * MiB, 0, 0);
  es_budget_res_t r1 = {0}, r2 = {0};
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_MODEL, 120 * MiB, "a.bin", &r1, NULL), 0);
  assert_ptr_equal(r1.budget, b);
  assert_int_equal(r1.bytes, 120 * MiB);
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_MODEL, 80 * MiB, "b.bin", &r2, NULL), 0);
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_int_equal(st.reserved[ES_BUDGET_MODEL], 200 * MiB);
  assert_int_equal(st.held[ES_BUDGET_MODEL], 2);
  assert_int_equal(st.used, 200 * MiB);
  es_budget_release(b, &r1);
  assert_null(r1.budget);
  assert_int_equal(r1.bytes, 0);
  es_budget_release(b, &r1); /* empty: no-op */
  es_budget_stats(b, &st);
  assert_int_equal(st.reserved[ES_BUDGET_MODEL], 80 * MiB);
  assert_int_equal(st.peak[ES_BUDGET_MODEL], 200 * MiB);
  assert_int_equal(st.held[ES_BUDGET_MODEL], 1);
  assert_int_equal(st.peak_used, 200 * MiB);
  es_budget_release(b, &r2);
  es_budget_stats(b, &st);
  assert_int_equal(st.reserved_total, 0);
  assert_int_equal(st.held[ES_BUDGET_MODEL], 0);
  es_budget_free(b);
}

static void refusal_by_the_kind_limit_says_required_and_available(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(1 * GiB, 200 * MiB, 0, 0, 0);
  es_budget_res_t held = {0}, r = {0};
  /* leave 190.3 MiB of the 200 MiB model budget */
  uint64_t taken = 200 * MiB - (uint64_t)(190.3 * (double)MiB);
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_MODEL, taken, "old.bin", &held, NULL), 0);
  es_budget_refusal_t why;
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_MODEL, 812 * MiB, "x.bin", &r, &why), ES_EBUDGET);
  assert_null(r.budget);
  assert_int_equal(why.kind, ES_BUDGET_MODEL);
  assert_int_equal(why.by, ES_BUDGET_BY_KIND);
  assert_int_equal(why.required, 812 * MiB);
  assert_int_equal(why.available, 200 * MiB - taken);
  assert_int_equal(why.limit, 200 * MiB);
  assert_string_equal(why.reason,
                      "model 'x.bin' needs 812.0 MiB, 190.3 MiB available in the model budget "
                      "(200.0 MiB)");
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_int_equal(st.refusals[ES_BUDGET_MODEL], 1);
  assert_int_equal(st.refusals[ES_BUDGET_CACHE], 0);
  assert_int_equal(st.reserved[ES_BUDGET_MODEL], taken);
  es_budget_release(b, &held);
  es_budget_free(b);
}

static es_memstat_t sample(uint64_t anon, uint64_t file, uint64_t available, uint64_t total) {
  es_memstat_t s;
  memset(&s, 0, sizeof s);
  s.rss_anon = anon;
  s.rss_file = file;
  s.rss = anon + file;
  s.rss_peak = s.rss;
  s.sys_total = total;
  s.sys_available = available;
  s.available = available;
  s.effective_total = total;
  return s;
}

static void unreserved_process_memory_counts_against_the_budget(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(400 * MiB, 0, 0, 0, 0);
  es_memstat_t s = sample(300 * MiB, 10 * MiB, 0, 0); /* no system figures */
  es_budget_observe(b, &s);
  es_budget_res_t r = {0};
  es_budget_refusal_t why;
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_WORK, 150 * MiB, "req", &r, &why), ES_EBUDGET);
  assert_int_equal(why.by, ES_BUDGET_BY_TOTAL);
  assert_int_equal(why.available, 100 * MiB);
  assert_int_equal(why.limit, 400 * MiB);
  assert_non_null(strstr(why.reason, "left in the process budget"));
  assert_int_equal(es_budget_available(b, ES_BUDGET_WORK), 100 * MiB);
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_WORK, 100 * MiB, "req", &r, NULL), 0);
  es_budget_release(b, &r);
  es_budget_free(b);
}

static void resident_reservations_are_not_counted_twice(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(1 * GiB, 0, 0, 0, 0);
  es_budget_res_t model = {0}, cache = {0}, req = {0};
  /* a model: 80 MiB mapped file + 20 MiB private; a 50 MiB cache */
  assert_int_equal(
      es_budget_reserve_mapped(b, ES_BUDGET_MODEL, 100 * MiB, 80 * MiB, "m", &model, NULL), 0);
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_CACHE, 50 * MiB, "lru", &cache, NULL), 0);
  /* resident: model 20 + cache 50 + 20 of the server's own heap; the
   * mapping plus 5 MiB of libraries file-backed */
  es_memstat_t s = sample(90 * MiB, 85 * MiB, 0, 0);
  es_budget_observe(b, &s);
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_int_equal(st.unreserved, 20 * MiB);
  assert_int_equal(st.used, 170 * MiB);
  /* a reservation made after the sample counts in full */
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_WORK, 30 * MiB, "req", &req, NULL), 0);
  es_budget_stats(b, &st);
  assert_int_equal(st.used, 200 * MiB);
  es_budget_release(b, &req);
  es_budget_release(b, &cache);
  es_budget_stats(b, &st);
  assert_int_equal(st.used, 120 * MiB); /* model 100 + unreserved 20 */
  es_budget_release(b, &model);
  es_budget_free(b);
}

static void system_available_memory_minus_safety_limits_reservations(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(2 * GiB, 0, 0, 0, 100 * MiB);
  es_memstat_t s = sample(0, 0, 300 * MiB, 1 * GiB);
  es_budget_observe(b, &s);
  es_budget_res_t r1 = {0}, r2 = {0};
  es_budget_refusal_t why;
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_MODEL, 250 * MiB, "big", &r1, &why), ES_EBUDGET);
  assert_int_equal(why.by, ES_BUDGET_BY_SYSTEM);
  assert_int_equal(why.available, 200 * MiB);
  assert_int_equal(why.limit, 300 * MiB);
  assert_non_null(strstr(why.reason, "safety margin"));
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_MODEL, 150 * MiB, "ok", &r1, NULL), 0);
  /* not resident yet: the next reservation sees 300 - 150 - 100 safety */
  assert_int_equal(es_budget_available(b, ES_BUDGET_WORK), 50 * MiB);
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_WORK, 60 * MiB, "req", &r2, &why), ES_EBUDGET);
  assert_int_equal(why.available, 50 * MiB);
  /* once it is resident, the sample shows it in rss and not in available */
  s = sample(150 * MiB, 0, 150 * MiB, 1 * GiB);
  es_budget_observe(b, &s);
  assert_int_equal(es_budget_available(b, ES_BUDGET_WORK), 50 * MiB);
  es_budget_release(b, &r1);
  es_budget_free(b);
}

static void a_cgroup_limit_is_seen_through_the_sample(void **state) {
  (void)state;
  /* a 512 MiB container on a big host: memstat gives effective_total =
   * the limit and available = limit - usage */
  es_budget_params_t p = es_budget_default_params();
  p.tier = es_budget_tier_for(512 * MiB);
  assert_string_equal(p.tier.name, "512MB");
  es_budget_t *b = es_budget_new(&p, NULL);
  es_memstat_t s = sample(40 * MiB, 5 * MiB, 0, 0);
  s.sys_total = 64 * GiB;
  s.sys_available = 40 * GiB;
  s.cg_version = 2;
  s.cg_limit = 512 * MiB;
  s.cg_usage = 450 * MiB;
  s.available = s.cg_limit - s.cg_usage;
  s.effective_total = s.cg_limit;
  es_budget_observe(b, &s);
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_true(st.sys_frac > 0.85); /* 450 of 512 MiB in use in the cgroup */
  assert_int_equal(st.level, ES_PRESSURE_CRITICAL);
  es_budget_res_t r = {0};
  es_budget_refusal_t why;
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_MODEL, 20 * MiB, "m", &r, &why), ES_EBUDGET);
  assert_int_equal(why.by, ES_BUDGET_BY_SYSTEM);
  assert_int_equal(why.available, 0); /* 62 MiB left, less the 80 MiB safety margin */
  es_budget_free(b);
}

static void resize_grows_within_limits_and_always_shrinks(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(1 * GiB, 0, 100 * MiB, 0, 0);
  es_budget_res_t c = {0};
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_CACHE, 10 * MiB, "lru", &c, NULL), 0);
  assert_int_equal(es_budget_resize(b, &c, 60 * MiB, "lru", NULL), 0);
  assert_int_equal(c.bytes, 60 * MiB);
  es_budget_refusal_t why;
  assert_int_equal(es_budget_resize(b, &c, 120 * MiB, "lru", &why), ES_EBUDGET);
  assert_int_equal(c.bytes, 60 * MiB); /* unchanged */
  assert_int_equal(why.required, 60 * MiB);
  assert_int_equal(why.available, 40 * MiB);
  assert_int_equal(es_budget_resize(b, &c, 5 * MiB, "lru", NULL), 0);
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_int_equal(st.reserved[ES_BUDGET_CACHE], 5 * MiB);
  assert_int_equal(st.peak[ES_BUDGET_CACHE], 60 * MiB);
  assert_int_equal(st.refusals[ES_BUDGET_CACHE], 1);
  es_budget_res_t empty = {0};
  assert_int_equal(es_budget_resize(b, &empty, 5 * MiB, NULL, NULL), ES_EINVAL);
  es_budget_release(b, &c);
  es_budget_free(b);
}

static void misuse_is_rejected_with_einval(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(1 * GiB, 0, 0, 0, 0);
  es_budget_res_t r = {0};
  assert_int_equal(es_budget_reserve(b, (es_budget_kind_t)7, 1, NULL, &r, NULL), ES_EINVAL);
  assert_int_equal(es_budget_reserve_mapped(b, ES_BUDGET_MODEL, 10, 20, NULL, &r, NULL), ES_EINVAL);
  assert_int_equal(es_budget_reserve_mapped(b, ES_BUDGET_MODEL, 20, 10, NULL, &r, NULL), 0);
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_MODEL, 1, NULL, &r, NULL), ES_EINVAL); /* held */
  assert_int_equal(es_budget_resize(b, &r, 5, NULL, NULL), ES_EINVAL); /* below the file part */
  assert_int_equal(es_budget_check(b, (es_budget_kind_t)-1, 1, NULL, NULL), ES_EINVAL);
  assert_int_equal(es_budget_available(b, ES_BUDGET_NKINDS), 0);
  es_budget_release(b, &r);
  es_budget_free(b);
}

static void check_is_a_dry_run(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(100 * MiB, 0, 0, 0, 0);
  es_budget_refusal_t why;
  assert_int_equal(es_budget_check(b, ES_BUDGET_WORK, 50 * MiB, "req", &why), 0);
  assert_int_equal(es_budget_check(b, ES_BUDGET_WORK, 150 * MiB, "req", &why), ES_EBUDGET);
  assert_int_equal(why.by, ES_BUDGET_BY_KIND); /* the kind's limit is the budget: same room */
  assert_int_equal(why.available, 100 * MiB);
  /* several kinds at once must fit together */
  uint64_t parts[ES_BUDGET_NKINDS] = {60 * MiB, 0, 50 * MiB};
  assert_int_equal(es_budget_check_parts(b, parts, "tts", &why), ES_EBUDGET);
  assert_int_equal(why.by, ES_BUDGET_BY_TOTAL);
  assert_int_equal(why.required, 110 * MiB);
  parts[2] = 40 * MiB;
  assert_int_equal(es_budget_check_parts(b, parts, "tts", NULL), 0);
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_int_equal(st.reserved_total, 0);
  assert_int_equal(st.refusals[ES_BUDGET_WORK], 0);
  es_budget_free(b);
}

/* ---- pressure ------------------------------------------------------------------------ */

static es_pressure_t observe_anon(es_budget_t *b, uint64_t anon) {
  es_memstat_t s = sample(anon, 0, 0, 0);
  es_budget_observe(b, &s);
  return es_budget_level(b);
}

static void budget_levels_have_hysteresis(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(1000 * MiB, 0, 0, 0, 0); /* warning 75%, critical 90% */
  assert_int_equal(observe_anon(b, 700 * MiB), ES_PRESSURE_OK);
  assert_int_equal(observe_anon(b, 760 * MiB), ES_PRESSURE_WARNING);
  assert_int_equal(observe_anon(b, 730 * MiB), ES_PRESSURE_WARNING); /* above 70% */
  assert_int_equal(observe_anon(b, 745 * MiB), ES_PRESSURE_WARNING);
  assert_int_equal(observe_anon(b, 690 * MiB), ES_PRESSURE_OK);
  assert_int_equal(observe_anon(b, 740 * MiB), ES_PRESSURE_OK); /* not yet 75% */
  assert_int_equal(observe_anon(b, 910 * MiB), ES_PRESSURE_CRITICAL);
  assert_int_equal(observe_anon(b, 860 * MiB), ES_PRESSURE_CRITICAL); /* above 85% */
  assert_int_equal(observe_anon(b, 840 * MiB), ES_PRESSURE_WARNING);
  assert_int_equal(observe_anon(b, 100 * MiB), ES_PRESSURE_OK);
  es_budget_free(b);
}

static void system_levels_follow_memavailable(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(10 * GiB, 0, 0, 0, 0);
  es_memstat_t s = sample(10 * MiB, 0, 500 * MiB, 1000 * MiB);
  es_budget_observe(b, &s);
  assert_int_equal(es_budget_level(b), ES_PRESSURE_OK); /* 50% in use */
  s = sample(10 * MiB, 0, 200 * MiB, 1000 * MiB);
  es_budget_observe(b, &s);
  assert_int_equal(es_budget_level(b), ES_PRESSURE_WARNING); /* 80% */
  s = sample(10 * MiB, 0, 100 * MiB, 1000 * MiB);
  es_budget_observe(b, &s);
  assert_int_equal(es_budget_level(b), ES_PRESSURE_CRITICAL); /* 90% > 85% */
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_true(st.sys_frac > 0.89 && st.sys_frac < 0.91);
  es_budget_free(b);
}

typedef struct {
  int calls;
  es_pressure_t olds[8], news[8];
  es_budget_res_t *cache; /* shrunk to `keep` at warning or above */
  uint64_t keep;
  uint64_t seen_used[8];
} listener_t;

static void on_pressure(es_budget_t *b, es_pressure_t old_level, es_pressure_t new_level,
                        const es_budget_stats_t *st, void *ud) {
  listener_t *l = ud;
  if (l->calls < 8) {
    l->olds[l->calls] = old_level;
    l->news[l->calls] = new_level;
    l->seen_used[l->calls] = st->used;
  }
  l->calls++;
  if (l->cache && new_level >= ES_PRESSURE_WARNING && l->cache->bytes > l->keep)
    assert_int_equal(es_budget_resize(b, l->cache, l->keep, "lru", NULL), 0);
}

static void listeners_hear_each_level_change_once(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(1000 * MiB, 0, 0, 0, 0);
  listener_t l = {0};
  assert_int_equal(es_budget_on_pressure(b, on_pressure, &l), 0);
  observe_anon(b, 500 * MiB);
  assert_int_equal(l.calls, 0);
  observe_anon(b, 800 * MiB);
  observe_anon(b, 810 * MiB); /* same level: no call */
  observe_anon(b, 950 * MiB);
  observe_anon(b, 100 * MiB);
  assert_int_equal(l.calls, 3);
  assert_int_equal(l.olds[0], ES_PRESSURE_OK);
  assert_int_equal(l.news[0], ES_PRESSURE_WARNING);
  assert_int_equal(l.seen_used[0], 800 * MiB);
  assert_int_equal(l.olds[1], ES_PRESSURE_WARNING);
  assert_int_equal(l.news[1], ES_PRESSURE_CRITICAL);
  assert_int_equal(l.olds[2], ES_PRESSURE_CRITICAL);
  assert_int_equal(l.news[2], ES_PRESSURE_OK);
  assert_int_equal(es_budget_off_pressure(b, on_pressure, &l), 0);
  assert_int_equal(es_budget_off_pressure(b, on_pressure, &l), ES_EINVAL);
  observe_anon(b, 950 * MiB);
  assert_int_equal(l.calls, 3);
  es_budget_free(b);
}

static void a_listener_that_frees_cache_lowers_the_level(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(1000 * MiB, 0, 0, 0, 0);
  es_budget_res_t cache = {0}, req = {0};
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_CACHE, 400 * MiB, "lru", &cache, NULL), 0);
  listener_t l = {0};
  l.cache = &cache;
  l.keep = 100 * MiB;
  assert_int_equal(es_budget_on_pressure(b, on_pressure, &l), 0);
  /* the cache is resident, plus 120 MiB of the server: 52% used */
  assert_int_equal(observe_anon(b, 520 * MiB), ES_PRESSURE_OK);
  /* a big request takes it to 92%: critical; the listener drops 300 MiB of cache */
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_WORK, 400 * MiB, "req", &req, NULL), 0);
  assert_int_equal(cache.bytes, 100 * MiB);
  assert_int_equal(es_budget_level(b), ES_PRESSURE_OK); /* 62% */
  assert_int_equal(l.calls, 2);
  assert_int_equal(l.news[0], ES_PRESSURE_CRITICAL);
  assert_int_equal(l.seen_used[0], 920 * MiB);
  assert_int_equal(l.olds[1], ES_PRESSURE_CRITICAL);
  assert_int_equal(l.news[1], ES_PRESSURE_OK);
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_int_equal(st.used, 620 * MiB);
  es_budget_release(b, &req);
  es_budget_release(b, &cache);
  es_budget_free(b);
}

static void noop_listener(es_budget_t *b, es_pressure_t o, es_pressure_t n,
                          const es_budget_stats_t *st, void *ud) {
  (void)b, (void)o, (void)n, (void)st, (void)ud;
}

static void listener_table_is_bounded(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(1 * GiB, 0, 0, 0, 0);
  int ud[ES_BUDGET_MAX_LISTENERS + 1];
  for (int i = 0; i < ES_BUDGET_MAX_LISTENERS; i++)
    assert_int_equal(es_budget_on_pressure(b, noop_listener, &ud[i]), 0);
  assert_int_equal(es_budget_on_pressure(b, noop_listener, &ud[ES_BUDGET_MAX_LISTENERS]), ES_EFULL);
  assert_int_equal(es_budget_off_pressure(b, noop_listener, &ud[3]), 0);
  assert_int_equal(es_budget_on_pressure(b, noop_listener, &ud[ES_BUDGET_MAX_LISTENERS]), 0);
  assert_int_equal(es_budget_on_pressure(b, NULL, NULL), ES_EINVAL);
  es_budget_free(b);
}

/* ---- report, formatting ------------------------------------------------------------------ */

static void report_shows_budget_kinds_usage_and_level(void **state) {
  (void)state;
  es_budget_params_t p = es_budget_default_params();
  p.tier = es_budget_tier_for(1 * GiB);
  es_budget_t *b = es_budget_new(&p, NULL);
  char buf[1024];
  size_t n = es_budget_report(b, buf, sizeof buf);
  assert_int_equal(n, strlen(buf));
  assert_non_null(strstr(buf, "memory budget 320.0 MiB (tier 1GB"));
  assert_non_null(strstr(buf, "no memory sample yet"));
  es_budget_res_t r = {0};
  es_budget_reserve(b, ES_BUDGET_MODEL, 20 * MiB, "m", &r, NULL);
  es_memstat_t s = sample(30 * MiB, 25 * MiB, 400 * MiB, 1 * GiB);
  es_budget_observe(b, &s);
  n = es_budget_report(b, buf, sizeof buf);
  assert_int_equal(n, strlen(buf));
  assert_non_null(strstr(buf, "model 20.0 MiB of 64.0 MiB reserved"));
  assert_non_null(strstr(buf, "used  30.0 MiB = 20.0 MiB reserved + 10.0 MiB unreserved"));
  assert_non_null(strstr(buf, "process rss 55.0 MiB (anon 30.0 MiB, file 25.0 MiB)"));
  assert_non_null(strstr(buf, "level ok"));
  /* truncation: the full length is still returned */
  char small[16];
  assert_int_equal(es_budget_report(b, small, sizeof small), n);
  assert_int_equal(strlen(small), 15);
  es_budget_release(b, &r);
  es_budget_free(b);
}

static void human_sizes_pick_a_readable_unit(void **state) {
  (void)state;
  char h[32];
  assert_string_equal(es_budget_human(512, h, sizeof h), "512 B");
  assert_string_equal(es_budget_human(1536, h, sizeof h), "1.5 KiB");
  assert_string_equal(es_budget_human(812 * MiB, h, sizeof h), "812.0 MiB");
  assert_string_equal(es_budget_human(1536 * MiB, h, sizeof h), "1.50 GiB");
  assert_string_equal(es_budget_kind_name(ES_BUDGET_CACHE), "cache");
  assert_string_equal(es_pressure_name(ES_PRESSURE_CRITICAL), "critical");
}

/* ---- threads ------------------------------------------------------------------------------ */

typedef struct {
  es_budget_t *b;
  unsigned seed;
  int refused;
} worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  es_budget_res_t r[16] = {{0}}; /* 16 x 64 MiB: the limits will be reached */
  for (int i = 0; i < 20000; i++) {
    w->seed = w->seed * 1103515245u + 12345u;
    int slot = (int)(w->seed >> 16) % 16;
    if (r[slot].budget) {
      if ((w->seed >> 8) & 1)
        es_budget_release(w->b, &r[slot]);
      else
        es_budget_resize(w->b, &r[slot], ((w->seed >> 10) % 64 + 1) * MiB, "grow", NULL);
    } else if (es_budget_reserve(w->b, (es_budget_kind_t)(slot % ES_BUDGET_NKINDS),
                                 ((w->seed >> 12) % 64 + 1) * MiB, "t", &r[slot], NULL)) {
      w->refused++;
    }
  }
  for (int s = 0; s < 16; s++) es_budget_release(w->b, &r[s]);
  return NULL;
}

static void concurrent_reservations_keep_the_books_balanced(void **state) {
  (void)state;
  es_budget_t *b = explicit_budget(400 * MiB, 200 * MiB, 150 * MiB, 200 * MiB, 0);
  listener_t l = {0};
  es_budget_on_pressure(b, on_pressure, &l);
  pthread_t th[4];
  worker_t w[4];
  for (int i = 0; i < 4; i++) {
    w[i].b = b;
    w[i].seed = 7u + (unsigned)i * 101u;
    w[i].refused = 0;
    assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  uint64_t refused = 0;
  for (int k = 0; k < ES_BUDGET_NKINDS; k++) {
    assert_int_equal(st.reserved[k], 0);
    assert_int_equal(st.held[k], 0);
    assert_true(st.peak[k] <= st.limit[k]);
    refused += st.refusals[k];
  }
  assert_true(st.peak_used <= 400 * MiB);
  assert_true(refused > 0); /* the limits were reached */
  assert_true(l.calls > 0);
  assert_int_equal(st.level, ES_PRESSURE_OK);
  es_budget_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tiers_match_the_users_laptop_table),
      cmocka_unit_test(small_tiers_are_the_documented_anchors),
      cmocka_unit_test(raspberry_pi_1gb_gets_the_1gb_tier_and_a_sub_300mb_budget),
      cmocka_unit_test(tier_names_tolerate_firmware_carveouts),
      cmocka_unit_test(tiers_below_512mb_and_above_32gb_scale_in_proportion),
      cmocka_unit_test(tier_figures_add_up_and_never_shrink_as_memory_grows),
      cmocka_unit_test(new_refuses_params_without_a_budget_or_with_bad_thresholds),
      cmocka_unit_test(tier_budget_limits_kinds_by_the_tier),
      cmocka_unit_test(reserve_and_release_move_bytes_and_track_peaks),
      cmocka_unit_test(refusal_by_the_kind_limit_says_required_and_available),
      cmocka_unit_test(unreserved_process_memory_counts_against_the_budget),
      cmocka_unit_test(resident_reservations_are_not_counted_twice),
      cmocka_unit_test(system_available_memory_minus_safety_limits_reservations),
      cmocka_unit_test(a_cgroup_limit_is_seen_through_the_sample),
      cmocka_unit_test(resize_grows_within_limits_and_always_shrinks),
      cmocka_unit_test(misuse_is_rejected_with_einval),
      cmocka_unit_test(check_is_a_dry_run),
      cmocka_unit_test(budget_levels_have_hysteresis),
      cmocka_unit_test(system_levels_follow_memavailable),
      cmocka_unit_test(listeners_hear_each_level_change_once),
      cmocka_unit_test(a_listener_that_frees_cache_lowers_the_level),
      cmocka_unit_test(listener_table_is_bounded),
      cmocka_unit_test(report_shows_budget_kinds_usage_and_level),
      cmocka_unit_test(human_sizes_pick_a_readable_unit),
      cmocka_unit_test(concurrent_reservations_keep_the_books_balanced),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
