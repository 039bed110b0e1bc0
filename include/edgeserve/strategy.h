/*
 * strategy.h - from a machine and a configuration to a plan: how many
 * threads run where, how memory is split, how requests are batched and
 * cached, how far quality may drop.
 *
 * Three presets (es_strategy_preset()) hold the figures users asked for:
 *
 *   latency_optimized  batches of at most 4 waiting at most 5 ms, L1 TTL 3 s,
 *                      p95 target 80 ms, short queue
 *   memory_optimized   caches and pools halved, batches of 16
 *   balanced           the default: batches of 32 waiting 10 ms
 *
 * With runtime.strategy = auto the preset follows the hardware
 * (es_strategy_choose): memory tier 1GB or below -> memory_optimized; tier
 * 8GB or above with at least 4 inference cores -> latency_optimized; else
 * balanced. The hardware also decides the thread placement: inference on the
 * big cores (RK3588 A76, Intel P-cores), one thread per physical core
 * (SMT siblings left to background work), background on the little cores,
 * E-cores, SMT siblings or, on a uniform machine without SMT, CPU 0.
 *
 *   es_hw_t hw;        es_hw_detect(&hw, NULL, &err);
 *   es_config_t *cfg = es_config_new();  ... load file, env, flags ...
 *   es_plan_t plan;
 *   if (es_plan_make(&hw, cfg, &plan, &err) < 0)   // "runtime.inference_cpus = 8-15
 *     fprintf(stderr, "%s\n", err.msg);            //  (file x.ini:4): CPUs 8-15 ..."
 *   es_plan_apply(&plan, cfg, &err);               // cfg now shows every value and its source
 *   es_plan_write(&plan, stdout);                  // threads, affinity, budgets
 *
 * Whatever was configured explicitly (file, environment, flag) wins over
 * the plan; the plan fills the rest. Plans are plain data: no allocation
 * outlives a call, and every function here is safe from any thread as long
 * as the es_config_t it reads is not being changed.
 */
#ifndef EDGESERVE_STRATEGY_H
#define EDGESERVE_STRATEGY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "edgeserve/affinity.h"
#include "edgeserve/config.h"
#include "edgeserve/error.h"
#include "edgeserve/hw.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The order is the order of runtime.strategy's choices. */
typedef enum es_strategy {
  ES_STRATEGY_AUTO = 0,
  ES_STRATEGY_LATENCY_OPTIMIZED = 1,
  ES_STRATEGY_MEMORY_OPTIMIZED = 2,
  ES_STRATEGY_BALANCED = 3,
} es_strategy_t;

/* Model quality levels, best first (quality.floor's choices): dense float
 * rows, int8 rows, product-quantized (.ftz), vocabulary-pruned. */
typedef enum es_quality {
  ES_QUALITY_DENSE = 0,
  ES_QUALITY_INT8 = 1,
  ES_QUALITY_PQ = 2,
  ES_QUALITY_PRUNED = 3,
} es_quality_t;

/* A preset: the figures a strategy sets (the config keys in brackets). */
typedef struct es_strategy_preset {
  es_strategy_t strategy;
  const char *name;           /* "balanced": as in runtime.strategy */
  int background_threads_max; /* [runtime] background_threads: at most this many,
                                 one per background CPU */
  uint32_t max_batch;         /* [batching] max_batch */
  int64_t max_delay_us;       /* [batching] max_delay */
  uint32_t queue_limit;       /* [batching] queue_limit */
  uint32_t cache_entries;     /* [cache] entries */
  int64_t cache_ttl_us;       /* [cache] ttl */
  int cache_budget_pct;       /* [memory] cache_budget: % of the tier's cache share */
  es_quality_t quality_floor; /* [quality] floor */
  int64_t sla_p95_us;         /* [quality] sla_p95 */
} es_strategy_preset_t;

/* The preset of a strategy (static data), or NULL for ES_STRATEGY_AUTO and
 * values outside the enum. */
const es_strategy_preset_t *es_strategy_preset(es_strategy_t strategy);

/* "auto", "latency_optimized", "memory_optimized", "balanced"; "?" otherwise. */
const char *es_strategy_name(es_strategy_t strategy);

/* "dense", "int8", "pq", "pruned"; "?" otherwise. */
const char *es_quality_name(es_quality_t quality);

/* The strategy the hardware calls for (never AUTO), with the reason written
 * into why[n] when why is not NULL ("memory tier 1GB (905M): memory_optimized").
 * The rule, on the memory tier of hw->mem.effective_total (budget.h: a board
 * reaching 85% of a class is in it) and the inference cores (see es_plan_make,
 * limited by the CPU quota): tier 1GB or below -> memory_optimized; tier 8GB or
 * above and >= 4 inference cores -> latency_optimized; else balanced. Unknown
 * memory (0) -> balanced. */
es_strategy_t es_strategy_choose(const es_hw_t *hw, char *why, size_t n);

/* A plan: every figure the runtime needs, each from the configuration when
 * it was set explicitly, else from the preset or the hardware. */
typedef struct es_plan {
  es_strategy_t strategy; /* never AUTO */
  char strategy_why[192]; /* "configured (flag)", or es_strategy_choose's reason */

  int inference_threads;
  es_cpuset_t inference_cpus;
  int background_threads;
  es_cpuset_t background_cpus;
  int pin;               /* pin threads to their sets (off under a CPU quota) */
  char threads_why[256]; /* how the CPUs were split */

  /* memory, in bytes (budget.h: total = os_reserve + safety + budget,
   * budget = model + cache + work) */
  char tier[16];          /* the memory tier's name ("1GB") */
  uint64_t total;         /* hw->mem.effective_total */
  uint64_t os_reserve;    /* [memory] os_reserve */
  uint64_t safety_margin; /* [memory] safety_margin */
  uint64_t budget;        /* [memory] budget: what edgeserve may use */
  uint64_t model_budget;  /* [memory] model_budget */
  uint64_t cache_budget;  /* [memory] cache_budget */
  uint64_t work;          /* budget - model - cache: requests in flight, the rest */
  int warning_pct, critical_pct;
  char memory_why[192];

  uint32_t max_batch;
  int64_t max_delay_us;
  uint32_t queue_limit;
  uint32_t cache_entries;
  int64_t cache_ttl_us;
  es_quality_t quality_floor;
  int64_t sla_p95_us;
} es_plan_t;

/* Makes the plan for machine hw under configuration cfg (NULL: nothing
 * configured). Values configured explicitly (es_config_source >= ES_CFG_FILE)
 * are used as they are; the rest come from the strategy's preset and the
 * hardware:
 *
 *   inference CPUs  the fastest clusters (every cluster within 80% of the
 *                   fastest's capacity, else max frequency; more clusters
 *                   while fewer than 2 CPUs), one logical CPU per physical
 *                   core (smt_primary)
 *   background CPUs the other clusters; on a uniform machine the SMT
 *                   siblings, else the lowest-numbered CPU (CPU 0 takes most
 *                   interrupts); a single CPU is shared
 *   threads         one inference thread per inference CPU; background
 *                   threads one per background CPU up to the preset's
 *                   maximum. A CPU quota (containers) that leaves fewer CPUs
 *                   than the machine has: inference = quota CPUs - 1 (at
 *                   least 1), background 1, CPU sets = every online CPU and
 *                   pin off (a quota limits time, not CPUs)
 *   memory          es_budget_tier_for(effective_total); an explicit budget
 *                   scales the tier's model/cache split to it
 *
 * Returns 0 and fills *out, or a negative code with *err naming the key and
 * where its value came from, *out then unspecified: ES_EINVAL for a
 * configured CPU set naming CPUs that are not online, for warning_pct >=
 * critical_pct, and for a hardware description without CPUs or with a CPU
 * outside its clusters; ES_ERANGE when configured memory figures do not fit
 * (os_reserve + safety_margin + budget > effective memory, model_budget +
 * cache_budget > budget) or memory is unknown and memory.budget unset;
 * ES_ENOMEM. */
int es_plan_make(const es_hw_t *hw, const es_config_t *cfg, es_plan_t *out, es_error_t *err);

/* Writes the plan into cfg's plan layer (ES_CFG_PRESET "preset <name>" for
 * the preset's keys, ES_CFG_HARDWARE for threads, CPUs, pin, memory and an
 * auto strategy), so that es_config_item() lists every value with its
 * source. Explicit values stay in force (they are in higher layers). Returns
 * 0 or ES_ENOMEM (cfg may then hold part of the plan). */
int es_plan_apply(const es_plan_t *plan, es_config_t *cfg, es_error_t *err);

/* Writes the plan for people, one line per part (strategy, inference,
 * background, memory, batching, cache, quality). Returns 0 or ES_EIO. */
int es_plan_write(const es_plan_t *plan, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
