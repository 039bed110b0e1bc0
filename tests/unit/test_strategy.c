/* test_strategy.c - presets, the strategy each machine gets, and the plan:
 * threads and CPU sets, memory split, explicit configuration winning, errors
 * naming the key. Machines are described by hand (es_hw_t), not detected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edgeserve/budget.h"
#include "edgeserve/config.h"
#include "edgeserve/strategy.h"

#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)

/* ---- hand-made machines ---------------------------------------------------------- */

static void cluster(es_hw_t *hw, int capacity, int64_t max_khz, int big) {
  es_hw_cluster_t *c = &hw->clusters[hw->nclusters++];
  c->capacity = capacity;
  c->max_khz = max_khz;
  c->big = big;
}

static void cpu(es_hw_t *hw, int id, int cl, int core, int primary) {
  es_hw_cpu_t *c = &hw->cpus[hw->ncpus++];
  c->id = id;
  c->cluster = cl;
  c->core_id = core;
  c->package_id = 0;
  c->smt_primary = primary;
  c->capacity = hw->clusters[cl].capacity;
  c->max_khz = c->cap_khz = c->cur_khz = hw->clusters[cl].max_khz;
  hw->clusters[cl].ncpus++;
}

static void memory(es_hw_t *hw, uint64_t total) {
  hw->mem.sys_total = hw->mem.effective_total = hw->mem.available = total;
}

/* Raspberry Pi 4 1 GB: 4 equal Cortex-A72 cores, one cluster; the kernel
 * reports about 905 MiB. */
static void pi4(es_hw_t *hw) {
  memset(hw, 0, sizeof *hw);
  snprintf(hw->board, sizeof hw->board, "Raspberry Pi 4 Model B Rev 1.4");
  hw->simd = ES_HW_NEON;
  cluster(hw, 0, 1500000, 0);
  for (int i = 0; i < 4; i++) cpu(hw, i, 0, i, 1);
  hw->physical_cores = 4;
  memory(hw, 905 * MIB);
}

/* Orange Pi 5 (RK3588): cluster 0 = 4 x A76 (CPUs 4-7), cluster 1 = 4 x A55
 * (CPUs 0-3), as Linux numbers them. */
static void opi5(es_hw_t *hw, uint64_t mem) {
  memset(hw, 0, sizeof *hw);
  snprintf(hw->board, sizeof hw->board, "Orange Pi 5");
  hw->simd = ES_HW_NEON | ES_HW_DOTPROD;
  cluster(hw, 1024, 2400000, 1);
  cluster(hw, 414, 1800000, 0);
  for (int i = 0; i < 4; i++) cpu(hw, i, 1, i, 1);
  for (int i = 4; i < 8; i++) cpu(hw, i, 0, i, 1);
  hw->physical_cores = 8;
  memory(hw, mem);
}

/* Hybrid Intel laptop, 16 GB: 4 P-cores with 2 threads each (CPUs 0-7,
 * siblings 0/1, 2/3, ...) and 8 E-cores (CPUs 8-15); no cpu_capacity. */
static void intel_hybrid(es_hw_t *hw) {
  memset(hw, 0, sizeof *hw);
  hw->simd = ES_HW_SSE42 | ES_HW_AVX2 | ES_HW_FMA;
  cluster(hw, 0, 4700000, 1);
  cluster(hw, 0, 3400000, 0);
  for (int i = 0; i < 8; i++) cpu(hw, i, 0, i / 2, i % 2 == 0);
  for (int i = 8; i < 16; i++) cpu(hw, i, 1, i - 4, 1);
  hw->physical_cores = 12;
  memory(hw, 15600 * MIB);
}

/* Uniform AMD desktop, 8 cores / 16 threads, 32 GB. adjacent: siblings are
 * 0/1, 2/3, ...; else 0/8, 1/9, ... (both numberings exist). */
static void amd(es_hw_t *hw, int adjacent) {
  memset(hw, 0, sizeof *hw);
  hw->simd = ES_HW_SSE42 | ES_HW_AVX2 | ES_HW_FMA;
  cluster(hw, 0, 4500000, 0);
  for (int i = 0; i < 16; i++) {
    int core = adjacent ? i / 2 : i % 8;
    cpu(hw, i, 0, core, adjacent ? i % 2 == 0 : i < 8);
  }
  hw->physical_cores = 8;
  memory(hw, 31 * GIB);
}

/* A container limited to 512 MB and 1.5 CPUs on a 4-core host with 16 GB. */
static void container(es_hw_t *hw) {
  memset(hw, 0, sizeof *hw);
  hw->simd = ES_HW_SSE42 | ES_HW_AVX2;
  cluster(hw, 0, 3000000, 0);
  for (int i = 0; i < 4; i++) cpu(hw, i, 0, i, 1);
  hw->physical_cores = 4;
  hw->cpu_quota = 1.5;
  memory(hw, 512 * MIB);
  hw->mem.sys_total = 16 * GIB;
  hw->mem.cg_version = 2;
  hw->mem.cg_limit = 512 * MIB;
}

/* ---- helpers ------------------------------------------------------------------------ */

static const char *cpus(const es_cpuset_t *s) {
  static char buf[4][256];
  static int n;
  char *b = buf[n++ % 4];
  assert_int_equal(es_cpuset_format(s, b, 256), 0);
  return b;
}

static void plan_ok(const es_hw_t *hw, const es_config_t *cfg, es_plan_t *p) {
  es_error_t err = {0};
  int rc = es_plan_make(hw, cfg, p, &err);
  if (rc) fprintf(stderr, "es_plan_make: %s\n", err.msg);
  assert_int_equal(rc, 0);
}

static es_config_t *config(const char *ini, const char *flag) {
  es_config_t *cfg = es_config_new();
  es_error_t err = {0};
  assert_non_null(cfg);
  if (ini) assert_int_equal(es_config_load_string(cfg, ini, "site.ini", &err), 0);
  if (flag) assert_int_equal(es_config_set_flag(cfg, flag, &err), 0);
  return cfg;
}

/* Plan must fail with rc and a message containing each of the texts. */
static void plan_fails(const es_hw_t *hw, const es_config_t *cfg, int rc, const char *a,
                       const char *b) {
  es_plan_t p;
  es_error_t err = {0};
  assert_int_equal(es_plan_make(hw, cfg, &p, &err), rc);
  if (a && !strstr(err.msg, a)) fprintf(stderr, "message: %s\n", err.msg);
  if (a) assert_non_null(strstr(err.msg, a));
  if (b) assert_non_null(strstr(err.msg, b));
}

/* ---- presets ------------------------------------------------------------------------- */

static void presets_hold_the_documented_figures(void **state) {
  (void)state;
  const es_strategy_preset_t *l = es_strategy_preset(ES_STRATEGY_LATENCY_OPTIMIZED);
  const es_strategy_preset_t *m = es_strategy_preset(ES_STRATEGY_MEMORY_OPTIMIZED);
  const es_strategy_preset_t *b = es_strategy_preset(ES_STRATEGY_BALANCED);
  assert_non_null(l);
  assert_non_null(m);
  assert_non_null(b);
  assert_null(es_strategy_preset(ES_STRATEGY_AUTO));
  assert_null(es_strategy_preset((es_strategy_t)9));

  /* latency_optimized: batch 4, 5 ms, L1 TTL 3 s, SLA 80 ms */
  assert_string_equal(l->name, "latency_optimized");
  assert_int_equal(l->max_batch, 4);
  assert_int_equal(l->max_delay_us, 5000);
  assert_int_equal(l->cache_ttl_us, 3000000);
  assert_int_equal(l->sla_p95_us, 80000);
  assert_int_equal(l->queue_limit, 64);
  assert_int_equal(l->cache_entries, 1024);
  assert_int_equal(l->cache_budget_pct, 100);
  assert_int_equal(l->background_threads_max, 4);
  assert_int_equal(l->quality_floor, ES_QUALITY_INT8);

  /* memory_optimized: batch 16, pools and caches halved */
  assert_string_equal(m->name, "memory_optimized");
  assert_int_equal(m->max_batch, 16);
  assert_int_equal(m->max_delay_us, 10000);
  assert_int_equal(m->queue_limit, b->queue_limit / 2);
  assert_int_equal(m->cache_entries, b->cache_entries / 2);
  assert_int_equal(m->cache_budget_pct, 50);
  assert_int_equal(m->background_threads_max, 1);
  assert_int_equal(m->cache_ttl_us, 5000000);
  assert_int_equal(m->sla_p95_us, 100000);
  assert_int_equal(m->quality_floor, ES_QUALITY_PRUNED);

  /* balanced: dynamic batching up to 32, 10 ms */
  assert_string_equal(b->name, "balanced");
  assert_int_equal(b->max_batch, 32);
  assert_int_equal(b->max_delay_us, 10000);
  assert_int_equal(b->queue_limit, 256);
  assert_int_equal(b->cache_entries, 1024);
  assert_int_equal(b->cache_ttl_us, 5000000);
  assert_int_equal(b->cache_budget_pct, 100);
  assert_int_equal(b->background_threads_max, 2);
  assert_int_equal(b->quality_floor, ES_QUALITY_PQ);
  assert_int_equal(b->sla_p95_us, 100000);
}

static void config_defaults_are_the_balanced_preset(void **state) {
  (void)state;
  es_config_t *cfg = es_config_new();
  const es_strategy_preset_t *b = es_strategy_preset(ES_STRATEGY_BALANCED);
  assert_int_equal(es_config_get_int(cfg, "batching.max_batch"), b->max_batch);
  assert_int_equal(es_config_get_int(cfg, "batching.max_delay"), b->max_delay_us);
  assert_int_equal(es_config_get_int(cfg, "batching.queue_limit"), b->queue_limit);
  assert_int_equal(es_config_get_int(cfg, "cache.entries"), b->cache_entries);
  assert_int_equal(es_config_get_int(cfg, "cache.ttl"), b->cache_ttl_us);
  assert_int_equal(es_config_get_int(cfg, "quality.floor"), b->quality_floor);
  assert_int_equal(es_config_get_int(cfg, "quality.sla_p95"), b->sla_p95_us);
  es_config_free(cfg);
}

static void enum_orders_match_the_config_choices(void **state) {
  (void)state;
  size_t n;
  const es_config_key_t *keys = es_config_keys(&n);
  int checked = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name = keys[i].name, *c = keys[i].choices;
    int strategy = !strcmp(name, "strategy"), floor = !strcmp(name, "floor");
    if (!strategy && !floor) continue;
    for (int idx = 0; *c; idx++) {
      size_t len = strcspn(c, "|");
      const char *want =
          strategy ? es_strategy_name((es_strategy_t)idx) : es_quality_name((es_quality_t)idx);
      assert_int_equal(strlen(want), len);
      assert_memory_equal(want, c, len);
      c += len + (c[len] == '|');
    }
    checked++;
  }
  assert_int_equal(checked, 2);
}

/* ---- machines -------------------------------------------------------------------------- */

static void raspberry_pi4_1gb_is_memory_optimized_on_three_inference_cores(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  pi4(hw);
  plan_ok(hw, NULL, &p);
  assert_int_equal(p.strategy, ES_STRATEGY_MEMORY_OPTIMIZED);
  assert_non_null(strstr(p.strategy_why, "memory tier 1GB"));
  assert_string_equal(cpus(&p.inference_cpus), "1-3");
  assert_string_equal(cpus(&p.background_cpus), "0");
  assert_int_equal(p.inference_threads, 3);
  assert_int_equal(p.background_threads, 1);
  assert_int_equal(p.pin, 1);
  assert_int_equal(p.max_batch, 16);
  assert_int_equal(p.cache_entries, 512);
  assert_string_equal(p.tier, "1GB");
  free(hw);
}

static void orange_pi5_runs_inference_on_the_a76_cluster(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  opi5(hw, 7900 * MIB); /* an 8 GB board */
  plan_ok(hw, NULL, &p);
  assert_int_equal(p.strategy, ES_STRATEGY_LATENCY_OPTIMIZED);
  assert_string_equal(cpus(&p.inference_cpus), "4-7");
  assert_string_equal(cpus(&p.background_cpus), "0-3");
  assert_int_equal(p.inference_threads, 4);
  assert_int_equal(p.background_threads, 4);
  assert_int_equal(p.pin, 1);
  assert_int_equal(p.max_batch, 4);
  assert_int_equal(p.max_delay_us, 5000);

  opi5(hw, 3900 * MIB); /* the 4 GB board: same cores, balanced */
  plan_ok(hw, NULL, &p);
  assert_int_equal(p.strategy, ES_STRATEGY_BALANCED);
  assert_string_equal(cpus(&p.inference_cpus), "4-7");
  assert_string_equal(cpus(&p.background_cpus), "0-3");
  assert_int_equal(p.background_threads, 2);
  assert_int_equal(p.max_batch, 32);
  free(hw);
}

static void hybrid_intel_runs_inference_on_p_core_primary_threads(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  intel_hybrid(hw);
  plan_ok(hw, NULL, &p);
  assert_int_equal(p.strategy, ES_STRATEGY_LATENCY_OPTIMIZED);
  assert_string_equal(cpus(&p.inference_cpus), "0,2,4,6");
  assert_string_equal(cpus(&p.background_cpus), "8-15");
  assert_int_equal(p.inference_threads, 4);
  assert_int_equal(p.background_threads, 4);
  assert_non_null(strstr(p.threads_why, "one thread per physical core"));
  free(hw);
}

static void amd_smt_runs_one_inference_thread_per_physical_core(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  amd(hw, 1);
  plan_ok(hw, NULL, &p);
  assert_int_equal(p.strategy, ES_STRATEGY_LATENCY_OPTIMIZED);
  assert_string_equal(cpus(&p.inference_cpus), "0,2,4,6,8,10,12,14");
  assert_string_equal(cpus(&p.background_cpus), "1,3,5,7,9,11,13,15");
  assert_int_equal(p.inference_threads, 8);
  assert_int_equal(p.background_threads, 4);
  assert_non_null(strstr(p.threads_why, "SMT siblings"));

  amd(hw, 0); /* siblings 0/8, 1/9, ...: the rule follows topology, not numbering */
  plan_ok(hw, NULL, &p);
  assert_string_equal(cpus(&p.inference_cpus), "0-7");
  assert_string_equal(cpus(&p.background_cpus), "8-15");
  free(hw);
}

static void container_with_a_cpu_quota_gets_one_floating_inference_thread(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  container(hw);
  plan_ok(hw, NULL, &p);
  assert_int_equal(p.strategy, ES_STRATEGY_MEMORY_OPTIMIZED);
  assert_int_equal(p.inference_threads, 1);
  assert_int_equal(p.background_threads, 1);
  assert_int_equal(p.pin, 0);
  assert_string_equal(cpus(&p.inference_cpus), "0-3");
  assert_string_equal(cpus(&p.background_cpus), "0-3");
  assert_non_null(strstr(p.threads_why, "CPU quota 1.5 of 4 CPUs: 1 inference + 1 background"));
  assert_int_equal(p.total, 512 * MIB);
  assert_true(p.os_reserve + p.safety_margin + p.budget <= 512 * MIB);

  hw->cpu_quota = 3; /* 3 CPUs of 4: 2 inference threads */
  plan_ok(hw, NULL, &p);
  assert_int_equal(p.inference_threads, 2);
  hw->cpu_quota = 8; /* a quota above the CPU count does not bind */
  plan_ok(hw, NULL, &p);
  assert_int_equal(p.pin, 1);
  assert_string_equal(cpus(&p.inference_cpus), "1-3");
  free(hw);
}

static void cores_of_nearly_equal_speed_form_one_inference_pool(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  /* an 8-core desktop whose 2 favoured cores boost 6% higher */
  memset(hw, 0, sizeof *hw);
  cluster(hw, 0, 5000000, 1);
  cluster(hw, 0, 4700000, 0);
  for (int i = 0; i < 8; i++) cpu(hw, i, i == 2 || i == 5 ? 0 : 1, i, 1);
  memory(hw, 16 * GIB);
  plan_ok(hw, NULL, &p);
  assert_string_equal(cpus(&p.inference_cpus), "1-7");
  assert_string_equal(cpus(&p.background_cpus), "0");
  free(hw);
}

static void a_single_fast_core_pulls_in_the_next_cluster(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  /* 1 prime + 3 mid + 4 little cores (phone-class SoC) */
  memset(hw, 0, sizeof *hw);
  cluster(hw, 1024, 3000000, 1);
  cluster(hw, 700, 2400000, 0);
  cluster(hw, 300, 1800000, 0);
  for (int i = 0; i < 4; i++) cpu(hw, i, 2, i, 1);
  for (int i = 4; i < 7; i++) cpu(hw, i, 1, i, 1);
  cpu(hw, 7, 0, 7, 1);
  memory(hw, 12 * GIB);
  plan_ok(hw, NULL, &p);
  assert_string_equal(cpus(&p.inference_cpus), "4-7");
  assert_string_equal(cpus(&p.background_cpus), "0-3");
  free(hw);
}

/* ---- configuration over the plan --------------------------------------------------------- */

static void explicit_configuration_wins_over_the_plan(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  es_error_t err = {0};
  opi5(hw, 7900 * MIB);
  es_config_t *cfg = config("[runtime]\nstrategy = balanced\npin = off\n[quality]\nfloor = dense\n",
                            "batching.max_batch=7");
  char *env[] = {"EDGESERVE_RUNTIME_INFERENCE_THREADS=2", "EDGESERVE_CACHE_TTL=1s", NULL};
  assert_int_equal(es_config_apply_env(cfg, env, &err), 0);
  plan_ok(hw, cfg, &p);
  assert_int_equal(p.strategy, ES_STRATEGY_BALANCED);
  assert_string_equal(p.strategy_why, "configured (file site.ini:2)");
  assert_int_equal(p.max_batch, 7);
  assert_int_equal(p.inference_threads, 2);
  assert_int_equal(p.cache_ttl_us, 1000000);
  assert_int_equal(p.quality_floor, ES_QUALITY_DENSE);
  assert_int_equal(p.pin, 0);
  /* the rest from the configured preset and the hardware */
  assert_int_equal(p.max_delay_us, 10000);
  assert_int_equal(p.queue_limit, 256);
  assert_string_equal(cpus(&p.inference_cpus), "4-7");
  es_config_free(cfg);
  free(hw);
}

static void configured_cpus_that_are_not_online_name_the_key(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  pi4(hw);
  es_config_t *cfg = config("[runtime]\ninference_cpus = 2-5\n", NULL);
  plan_fails(hw, cfg, ES_EINVAL,
             "runtime.inference_cpus = 2-5 (file site.ini:2): CPU 4-5 not online here (online: "
             "0-3)",
             NULL);
  es_config_free(cfg);
  cfg = config(NULL, "runtime.background_cpus=7");
  plan_fails(hw, cfg, ES_EINVAL, "runtime.background_cpus = 7 (flag): CPU 7 not online", NULL);
  es_config_free(cfg);
  free(hw);
}

static void configured_cpus_leave_the_rest_to_the_other_pool(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  opi5(hw, 7900 * MIB);
  es_config_t *cfg = config(NULL, "runtime.inference_cpus=4-5");
  plan_ok(hw, cfg, &p);
  assert_string_equal(cpus(&p.inference_cpus), "4-5");
  assert_string_equal(cpus(&p.background_cpus), "0-3");
  assert_int_equal(p.inference_threads, 2);
  assert_non_null(strstr(p.threads_why, "inference CPUs configured (flag)"));
  es_config_free(cfg);

  cfg = config(NULL, "runtime.background_cpus=4");
  plan_ok(hw, cfg, &p);
  assert_string_equal(cpus(&p.inference_cpus), "5-7");
  assert_string_equal(cpus(&p.background_cpus), "4");
  assert_int_equal(p.background_threads, 1);
  es_config_free(cfg);

  pi4(hw); /* inference on every CPU: background shares them */
  cfg = config(NULL, "runtime.inference_cpus=0-3");
  plan_ok(hw, cfg, &p);
  assert_string_equal(cpus(&p.inference_cpus), "0-3");
  assert_string_equal(cpus(&p.background_cpus), "0-3");
  es_config_free(cfg);
  free(hw);
}

/* ---- memory ------------------------------------------------------------------------------ */

#define MIB_DOWN(x) ((x) & ~(MIB - 1))

static void memory_split_follows_the_tier(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  opi5(hw, 3900 * MIB + 123456); /* balanced: the tier in whole MiB */
  plan_ok(hw, NULL, &p);
  es_budget_tier_t t = es_budget_tier_for(3900 * MIB + 123456);
  assert_string_equal(p.tier, t.name);
  assert_true(p.os_reserve == MIB_DOWN(t.os_reserve));
  assert_true(p.safety_margin == MIB_DOWN(t.safety));
  assert_true(p.model_budget == MIB_DOWN(t.model));
  assert_true(p.cache_budget == MIB_DOWN(t.cache));
  assert_true(p.budget == MIB_DOWN(p.total - p.os_reserve - p.safety_margin));
  assert_true(p.total - (p.os_reserve + p.safety_margin + p.budget) < MIB);
  assert_true(p.model_budget + p.cache_budget + p.work == p.budget);
  assert_true(p.work + 3 * MIB >= t.work && p.work <= t.work + 3 * MIB);
  assert_int_equal(p.warning_pct, 75);
  assert_int_equal(p.critical_pct, 90);

  pi4(hw); /* memory_optimized: half the cache share, left to the OS */
  plan_ok(hw, NULL, &p);
  t = es_budget_tier_for(905 * MIB);
  uint64_t half = t.cache / 100 * 50 + t.cache % 100 * 50 / 100;
  assert_true(p.cache_budget == MIB_DOWN(half));
  assert_true(p.model_budget == MIB_DOWN(t.model));
  assert_true(p.os_reserve == MIB_DOWN(t.os_reserve));
  assert_true(p.budget == MIB_DOWN(905 * MIB - p.os_reserve - p.safety_margin - (t.cache - half)));
  assert_true(p.model_budget + p.cache_budget + p.work == p.budget);
  free(hw);
}

static void configured_budget_scales_the_tier_split(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  opi5(hw, 3900 * MIB);
  es_budget_tier_t t = es_budget_tier_for(3900 * MIB);
  es_config_t *cfg = config("[memory]\nbudget = 1G\ncache_budget = 100M\n", NULL);
  plan_ok(hw, cfg, &p);
  assert_true(p.budget == GIB);
  assert_true(p.cache_budget == 100 * MIB);
  uint64_t shape = t.model + t.cache + t.work;
  uint64_t want = (uint64_t)((double)t.model * ((double)GIB / (double)shape));
  assert_true(p.model_budget == MIB_DOWN(want));
  assert_true(p.model_budget + p.cache_budget + p.work == p.budget);
  assert_non_null(strstr(p.memory_why, "memory.budget configured"));
  es_config_free(cfg);
  free(hw);
}

static void memory_figures_that_do_not_fit_name_the_keys(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  pi4(hw);
  es_config_t *cfg = config(NULL, "memory.budget=2G");
  plan_fails(hw, cfg, ES_ERANGE, "memory.budget 2G (flag) + memory.os_reserve",
             "> 905M effective memory");
  es_config_free(cfg);
  cfg = config("[memory]\nmodel_budget = 600M\n", NULL);
  plan_fails(hw, cfg, ES_ERANGE, "memory.model_budget 600M (file site.ini:2) + memory.cache_budget",
             "(tier)");
  es_config_free(cfg);
  cfg = config("[memory]\nos_reserve = 900M\n", NULL);
  plan_fails(hw, cfg, ES_ERANGE, "memory.os_reserve 900M (file site.ini:2) + memory.safety_margin",
             "leave nothing of 905M effective memory");
  es_config_free(cfg);
  free(hw);
}

static void warning_not_below_critical_names_both_keys(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  pi4(hw);
  es_config_t *cfg = config(NULL, "memory.warning_pct=95");
  plan_fails(hw, cfg, ES_EINVAL,
             "memory.warning_pct = 95 (flag) must be below memory.critical_pct = 90 (default)",
             NULL);
  es_config_free(cfg);
  free(hw);
}

static void unknown_memory_needs_a_configured_budget(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  pi4(hw);
  memory(hw, 0);
  plan_fails(hw, NULL, ES_ERANGE, "memory size unknown: set memory.budget", NULL);
  es_config_t *cfg = config(NULL, "memory.budget=256M");
  plan_ok(hw, cfg, &p);
  assert_int_equal(p.strategy, ES_STRATEGY_BALANCED);
  assert_non_null(strstr(p.strategy_why, "memory size unknown"));
  assert_true(p.budget == 256 * MIB);
  assert_true(p.model_budget + p.cache_budget + p.work == p.budget);
  es_config_free(cfg);
  free(hw);
}

static void hardware_without_cpus_or_with_bad_clusters_is_invalid(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  pi4(hw);
  hw->ncpus = 0;
  plan_fails(hw, NULL, ES_EINVAL, "hardware: no CPUs", NULL);
  pi4(hw);
  hw->cpus[2].cluster = 5;
  plan_fails(hw, NULL, ES_EINVAL, "CPU 2 (entry 2) has cluster 5 of 1", NULL);
  free(hw);
}

/* ---- showing the plan ---------------------------------------------------------------------- */

static void applied_plan_lists_every_value_with_its_source(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p, again;
  es_error_t err = {0};
  pi4(hw);
  es_config_t *cfg = config(NULL, "batching.max_batch=8");
  plan_ok(hw, cfg, &p);
  assert_int_equal(es_plan_apply(&p, cfg, &err), 0);
  static const struct {
    const char *key, *value, *from;
  } want[] = {
      {"runtime.strategy", "memory_optimized", "hardware"},
      {"runtime.inference_threads", "3", "hardware"},
      {"runtime.inference_cpus", "1-3", "hardware"},
      {"runtime.background_cpus", "0", "hardware"},
      {"runtime.pin", "true", "hardware"},
      {"batching.max_batch", "8", "flag"},
      {"batching.max_delay", "10ms", "preset memory_optimized"},
      {"batching.queue_limit", "128", "preset memory_optimized"},
      {"cache.entries", "512", "preset memory_optimized"},
      {"quality.floor", "pruned", "preset memory_optimized"},
      {"memory.warning_pct", "75", "default"},
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    es_config_item_t it;
    assert_int_equal(es_config_lookup(cfg, want[i].key, &it), 0);
    assert_string_equal(it.value, want[i].value);
    assert_string_equal(it.from, want[i].from);
  }
  char b[32];
  es_config_format_bytes(p.budget, b, sizeof b);
  assert_string_equal(es_config_get_str(cfg, "memory.budget"), b);
  assert_int_equal(es_config_source(cfg, "memory.model_budget"), ES_CFG_HARDWARE);
  /* planning again from the applied configuration gives the same plan */
  plan_ok(hw, cfg, &again);
  assert_memory_equal(&p, &again, sizeof p);
  es_config_free(cfg);
  free(hw);
}

static void written_plan_shows_threads_cpus_and_budgets(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t p;
  pi4(hw);
  plan_ok(hw, NULL, &p);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  assert_int_equal(es_plan_write(&p, f), 0);
  fclose(f);
  assert_non_null(strstr(text, "strategy    memory_optimized: memory tier 1GB"));
  assert_non_null(strstr(text, "inference   3 threads on CPUs 1-3, pinned\n"));
  assert_non_null(strstr(text, "background  1 thread on CPU 0, pinned\n"));
  assert_non_null(strstr(text, "memory      budget "));
  assert_non_null(
      strstr(text, "batching    up to 16 per batch, waiting at most 10ms; queue 128\n"));
  assert_non_null(strstr(text, "quality     floor pruned, p95 target 100ms\n"));
  free(text);
  free(hw);
}

static void no_configuration_plans_like_the_defaults(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_plan_t a, b;
  intel_hybrid(hw);
  es_config_t *cfg = es_config_new();
  plan_ok(hw, NULL, &a);
  plan_ok(hw, cfg, &b);
  assert_memory_equal(&a, &b, sizeof a);
  es_config_free(cfg);
  free(hw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(presets_hold_the_documented_figures),
      cmocka_unit_test(config_defaults_are_the_balanced_preset),
      cmocka_unit_test(enum_orders_match_the_config_choices),
      cmocka_unit_test(raspberry_pi4_1gb_is_memory_optimized_on_three_inference_cores),
      cmocka_unit_test(orange_pi5_runs_inference_on_the_a76_cluster),
      cmocka_unit_test(hybrid_intel_runs_inference_on_p_core_primary_threads),
      cmocka_unit_test(amd_smt_runs_one_inference_thread_per_physical_core),
      cmocka_unit_test(container_with_a_cpu_quota_gets_one_floating_inference_thread),
      cmocka_unit_test(cores_of_nearly_equal_speed_form_one_inference_pool),
      cmocka_unit_test(a_single_fast_core_pulls_in_the_next_cluster),
      cmocka_unit_test(explicit_configuration_wins_over_the_plan),
      cmocka_unit_test(configured_cpus_that_are_not_online_name_the_key),
      cmocka_unit_test(configured_cpus_leave_the_rest_to_the_other_pool),
      cmocka_unit_test(memory_split_follows_the_tier),
      cmocka_unit_test(configured_budget_scales_the_tier_split),
      cmocka_unit_test(memory_figures_that_do_not_fit_name_the_keys),
      cmocka_unit_test(warning_not_below_critical_names_both_keys),
      cmocka_unit_test(unknown_memory_needs_a_configured_budget),
      cmocka_unit_test(hardware_without_cpus_or_with_bad_clusters_is_invalid),
      cmocka_unit_test(applied_plan_lists_every_value_with_its_source),
      cmocka_unit_test(written_plan_shows_threads_cpus_and_budgets),
      cmocka_unit_test(no_configuration_plans_like_the_defaults),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
