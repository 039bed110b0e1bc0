/*
 * strategy.c - the presets, the choice of a strategy, and the plan.
 *
 * The plan is where hardware detection (hw.h), the memory tiers (budget.h)
 * and the configuration (config.h) meet; the server and the scheduler read
 * the plan, never the hardware. Nothing here reads /proc or sysfs: hw is
 * handed in, so tests plan for machines described by hand.
 *
 * Invariants:
 *   1. A key configured explicitly (source file, env or flag) is used as it
 *      is; the plan computes only what nobody configured, and
 *      es_plan_apply() writes into the plan layer, beneath every explicit
 *      value.
 *   2. Every plan has at least one inference and one background thread,
 *      and non-empty CPU sets of online CPUs (a configured set naming an
 *      offline CPU is an error, not a silent trim).
 *   3. Memory figures add up: os_reserve + safety_margin + budget <=
 *      effective memory (when known) and model_budget + cache_budget + work
 *      == budget.
 *   4. The config's defaults for the preset keys are the balanced preset's
 *      figures (test_strategy checks it), so a program that never plans
 *      sees the same values as a balanced plan.
 */
#include "edgeserve/strategy.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fail.h"
#include "edgeserve/budget.h"

#define MS          1000LL
#define SEC         (1000LL * MS)
#define MIB         (1024ull * 1024ull)
#define GIB         (1024ull * MIB)
#define MIB_DOWN(x) ((x) & ~(MIB - 1))

/* ---- presets ----------------------------------------------------------------
 * Figures from the users' requirements (docs/runtime/config.md has the table
 * with the reasons). */
static const es_strategy_preset_t PRESETS[] = {
    {ES_STRATEGY_LATENCY_OPTIMIZED, "latency_optimized", 4, 4, 5 * MS, 64, 1024, 3 * SEC, 100,
     ES_QUALITY_INT8, 80 * MS},
    {ES_STRATEGY_MEMORY_OPTIMIZED, "memory_optimized", 1, 16, 10 * MS, 128, 512, 5 * SEC, 50,
     ES_QUALITY_PRUNED, 100 * MS},
    {ES_STRATEGY_BALANCED, "balanced", 2, 32, 10 * MS, 256, 1024, 5 * SEC, 100, ES_QUALITY_PQ,
     100 * MS},
};

const es_strategy_preset_t *es_strategy_preset(es_strategy_t strategy) {
  for (size_t i = 0; i < sizeof PRESETS / sizeof *PRESETS; i++)
    if (PRESETS[i].strategy == strategy) return &PRESETS[i];
  return NULL;
}

const char *es_strategy_name(es_strategy_t strategy) {
  if (strategy == ES_STRATEGY_AUTO) return "auto";
  const es_strategy_preset_t *p = es_strategy_preset(strategy);
  return p ? p->name : "?";
}

const char *es_quality_name(es_quality_t quality) {
  switch (quality) {
  case ES_QUALITY_DENSE: return "dense";
  case ES_QUALITY_INT8: return "int8";
  case ES_QUALITY_PQ: return "pq";
  case ES_QUALITY_PRUNED: return "pruned";
  }
  return "?";
}

/* ---- the hardware's CPU split -------------------------------------------------- */

/* ES_EINVAL when hw cannot be planned for (hand-made descriptions included). */
static int hw_check(const es_hw_t *hw, es_error_t *err) {
  if (!hw || hw->ncpus < 1 || hw->ncpus > ES_HW_MAX_CPUS)
    return es__fail(err, ES_EINVAL, -1, "hardware: no CPUs described");
  if (hw->nclusters < 1 || hw->nclusters > ES_HW_MAX_CLUSTERS)
    return es__fail(err, ES_EINVAL, -1, "hardware: %d CPU clusters", hw ? hw->nclusters : 0);
  for (int i = 0; i < hw->ncpus; i++) {
    const es_hw_cpu_t *c = &hw->cpus[i];
    if (c->id < 0 || c->id >= ES_CPUSET_MAX || c->cluster < 0 || c->cluster >= hw->nclusters)
      return es__fail(err, ES_EINVAL, -1, "hardware: CPU %d (entry %d) has cluster %d of %d", c->id,
                      i, c->cluster, hw->nclusters);
  }
  return 0;
}

static void set_minus(es_cpuset_t *a, const es_cpuset_t *b) {
  for (size_t i = 0; i < sizeof a->bits / sizeof *a->bits; i++) a->bits[i] &= ~b->bits[i];
}

static int lowest(const es_cpuset_t *s) { return es_cpuset_nth(s, 0); }

static void set_text(const es_cpuset_t *s, char *buf, size_t n) {
  es_cpuset_format(s, buf, n); /* a cut list is still a readable message */
}

/* The split the hardware calls for: inf = one logical CPU per physical core
 * of the fastest clusters, bg = the rest (see es_plan_make in strategy.h). */
static void auto_split(const es_hw_t *hw, es_cpuset_t *inf, es_cpuset_t *bg, char *why, size_t n) {
  int64_t speed[ES_HW_MAX_CLUSTERS];
  int by_capacity = 1, by_khz = 1;
  for (int c = 0; c < hw->nclusters; c++) {
    by_capacity &= hw->clusters[c].capacity > 0;
    by_khz &= hw->clusters[c].max_khz > 0;
  }
  int64_t fast = 0;
  for (int c = 0; c < hw->nclusters; c++) {
    speed[c] = by_capacity ? hw->clusters[c].capacity : by_khz ? hw->clusters[c].max_khz : 1;
    if (speed[c] > fast) fast = speed[c];
  }
  int any_primary = 0;
  for (int i = 0; i < hw->ncpus; i++) any_primary |= hw->cpus[i].smt_primary;

  /* inference clusters: within 80% of the fastest (favoured cores of one
   * design differ by a few %; big.LITTLE and P/E differ by 30% or more),
   * then the next fastest while fewer than 2 CPUs */
  int in[ES_HW_MAX_CLUSTERS];
  for (int c = 0; c < hw->nclusters; c++) in[c] = speed[c] * 10 >= fast * 8;
  for (;;) {
    int ninf = 0, next = -1;
    for (int i = 0; i < hw->ncpus; i++)
      ninf += in[hw->cpus[i].cluster] && (!any_primary || hw->cpus[i].smt_primary);
    for (int c = 0; c < hw->nclusters; c++)
      if (!in[c] && (next < 0 || speed[c] > speed[next])) next = c;
    if (ninf >= 2 || next < 0) break;
    in[next] = 1;
  }

  es_cpuset_t sib;
  memset(inf, 0, sizeof *inf);
  memset(bg, 0, sizeof *bg);
  memset(&sib, 0, sizeof sib);
  for (int i = 0; i < hw->ncpus; i++) {
    const es_hw_cpu_t *c = &hw->cpus[i];
    if (!in[c->cluster])
      es_cpuset_add(bg, c->id);
    else if (!any_primary || c->smt_primary)
      es_cpuset_add(inf, c->id);
    else
      es_cpuset_add(&sib, c->id);
  }
  char a[128], b[128];
  int smt = es_cpuset_count(&sib) > 0;
  if (es_cpuset_count(bg) > 0) {
    set_text(inf, a, sizeof a);
    set_text(bg, b, sizeof b);
    snprintf(why, n,
             "inference on the fastest cores (CPUs %.72s%s), background on the slower ones (%.72s)",
             a, smt ? ", one thread per physical core" : "", b);
  } else if (smt) {
    *bg = sib;
    set_text(inf, a, sizeof a);
    set_text(bg, b, sizeof b);
    snprintf(why, n,
             "inference on one thread per physical core (CPUs %.80s), background on their "
             "SMT siblings (%.80s)",
             a, b);
  } else if (es_cpuset_count(inf) >= 2) {
    int c0 = lowest(inf);
    es_cpuset_add(bg, c0);
    set_minus(inf, bg);
    set_text(inf, a, sizeof a);
    snprintf(why, n, "inference on CPUs %s; CPU %d kept for background work%s", a, c0,
             c0 == 0 ? " (it takes most interrupts)" : "");
  } else {
    *bg = *inf;
    snprintf(why, n, "one CPU: inference and background share it");
  }
}

/* Number of inference cores the hardware offers, limited by the CPU quota. */
static int inference_cores(const es_hw_t *hw) {
  es_cpuset_t inf, bg;
  char why[8];
  auto_split(hw, &inf, &bg, why, sizeof why);
  int n = es_cpuset_count(&inf);
  int eff = es_hw_effective_cpus(hw);
  return n < eff ? n : eff;
}

/* The class of a tier name in bytes ("1GB" -> 1 GiB, "32GB+" -> 32 GiB,
 * "<512MB" -> 0). */
static uint64_t tier_class(const char *name) {
  char buf[16];
  uint64_t v;
  if (!name || name[0] == '<') return 0;
  snprintf(buf, sizeof buf, "%.*s", (int)strcspn(name, "+"), name);
  return es_config_parse_bytes(buf, &v) == 0 ? v : 0;
}

es_strategy_t es_strategy_choose(const es_hw_t *hw, char *why, size_t n) {
  assert(hw);
  char tmp[8];
  if (!why) {
    why = tmp;
    n = sizeof tmp;
  }
  uint64_t mem = hw->mem.effective_total;
  if (mem == 0) {
    snprintf(why, n, "memory size unknown: balanced");
    return ES_STRATEGY_BALANCED;
  }
  es_budget_tier_t t = es_budget_tier_for(mem);
  uint64_t cls = tier_class(t.name);
  int cores = hw_check(hw, NULL) == 0 ? inference_cores(hw) : 0;
  char h[32];
  es_budget_human(mem, h, sizeof h);
  if (cls < 2 * GIB) {
    snprintf(why, n, "memory tier %s (%s): 1GB tier or below", t.name, h);
    return ES_STRATEGY_MEMORY_OPTIMIZED;
  }
  if (cls >= 8 * GIB && cores >= 4) {
    snprintf(why, n,
             "memory tier %s (%s) and %d inference cores: 8GB tier or above, 4 cores or more",
             t.name, h, cores);
    return ES_STRATEGY_LATENCY_OPTIMIZED;
  }
  snprintf(why, n, "memory tier %s (%s), %d inference cores: %s", t.name, h, cores,
           cls >= 8 * GIB ? "fewer than 4 inference cores" : "between the 1GB and 8GB tiers");
  return ES_STRATEGY_BALANCED;
}

/* ---- the plan ------------------------------------------------------------------------ */

/* 1 and *v when key was configured explicitly (invariant 1). */
static int configured(const es_config_t *cfg, const char *key, int64_t *v) {
  if (es_config_source(cfg, key) < ES_CFG_FILE) return 0;
  *v = es_config_get_int(cfg, key);
  return 1;
}

/* "file x.ini:4" for messages. */
static const char *from(const es_config_t *cfg, const char *key, es_config_item_t *it) {
  if (es_config_lookup(cfg, key, it) < 0) return "?";
  return it->from;
}

/* A configured CPU set, checked against the online CPUs. Returns 1 when key
 * is configured (*out filled), 0 when not, or ES_EINVAL. */
static int configured_cpus(const es_config_t *cfg, const char *key, const es_cpuset_t *online,
                           es_cpuset_t *out, es_error_t *err) {
  if (es_config_source(cfg, key) < ES_CFG_FILE) return 0;
  es_config_get_cpuset(cfg, key, out);
  es_cpuset_t off = *out;
  set_minus(&off, online);
  if (es_cpuset_count(&off) == 0) return 1;
  char bad[64], on[64];
  es_config_item_t it;
  set_text(&off, bad, sizeof bad);
  set_text(online, on, sizeof on);
  return es__fail(err, ES_EINVAL, -1, "%s = %.64s (%s): CPU %s not online here (online: %s)", key,
                  es_config_get_str(cfg, key), from(cfg, key, &it), bad, on);
}

static int plan_cpus(const es_hw_t *hw, const es_config_t *cfg, const es_strategy_preset_t *p,
                     es_plan_t *out, es_error_t *err) {
  es_cpuset_t online, ainf, abg;
  memset(&online, 0, sizeof online);
  for (int i = 0; i < hw->ncpus; i++) es_cpuset_add(&online, hw->cpus[i].id);
  auto_split(hw, &ainf, &abg, out->threads_why, sizeof out->threads_why);

  int xi = configured_cpus(cfg, "runtime.inference_cpus", &online, &out->inference_cpus, err);
  if (xi < 0) return xi;
  int xb = configured_cpus(cfg, "runtime.background_cpus", &online, &out->background_cpus, err);
  if (xb < 0) return xb;
  es_cpuset_t *inf = &out->inference_cpus, *bg = &out->background_cpus;
  if (!xi && !xb) {
    *inf = ainf;
    *bg = abg;
  } else if (xi && !xb) { /* background: what the hardware split leaves, else any other CPU */
    *bg = abg;
    set_minus(bg, inf);
    if (es_cpuset_count(bg) == 0) {
      *bg = online;
      set_minus(bg, inf);
    }
    if (es_cpuset_count(bg) == 0) *bg = *inf;
  } else if (!xi && xb) {
    *inf = ainf;
    set_minus(inf, bg);
    if (es_cpuset_count(inf) == 0) {
      *inf = online;
      set_minus(inf, bg);
    }
    if (es_cpuset_count(inf) == 0) *inf = *bg;
  }
  es_config_item_t it;
  size_t len = strlen(out->threads_why);
  if (xi || xb)
    snprintf(out->threads_why + len, sizeof out->threads_why - len, "; %s CPUs configured (%s)",
             xi && xb ? "inference and background"
             : xi     ? "inference"
                      : "background",
             from(cfg, xi ? "runtime.inference_cpus" : "runtime.background_cpus", &it));

  /* threads: one per CPU; a CPU quota that binds caps them and unpins */
  int eff = es_hw_effective_cpus(hw);
  int quota = hw->cpu_quota > 0 && eff < hw->ncpus;
  int64_t v;
  int ninf = es_cpuset_count(inf), nbg = es_cpuset_count(bg);
  if (quota) {
    out->inference_threads = eff - 1 < 1 ? 1 : eff - 1 < ninf ? eff - 1 : ninf;
    out->background_threads = 1;
    if (!xi) *inf = online;
    if (!xb) *bg = online;
    char q[160];
    snprintf(q, sizeof q,
             "CPU quota %.2g of %d CPUs: %d inference + 1 background thread on any CPU (a "
             "quota limits CPU time, not CPUs)",
             hw->cpu_quota, hw->ncpus, out->inference_threads);
    if (!xi && !xb)
      snprintf(out->threads_why, sizeof out->threads_why, "%s", q);
    else {
      len = strlen(out->threads_why);
      snprintf(out->threads_why + len, sizeof out->threads_why - len, "; %s", q);
    }
  } else {
    out->inference_threads = ninf;
    out->background_threads = nbg < p->background_threads_max ? nbg : p->background_threads_max;
    if (out->background_threads < 1) out->background_threads = 1;
  }
  out->pin = !quota;
  if (configured(cfg, "runtime.inference_threads", &v)) out->inference_threads = (int)v;
  if (configured(cfg, "runtime.background_threads", &v)) out->background_threads = (int)v;
  if (configured(cfg, "runtime.pin", &v)) out->pin = (int)v;
  assert(out->inference_threads >= 1 && out->background_threads >= 1);
  assert(es_cpuset_count(inf) > 0 && es_cpuset_count(bg) > 0);
  return 0;
}

/* "memory.os_reserve 2G (file x.ini:3)" or "memory.os_reserve 400M (tier)". */
static void part(const es_config_t *cfg, const char *key, uint64_t v, int explicit_, char *buf,
                 size_t n) {
  char b[32];
  es_config_item_t it;
  es_config_format_bytes(v, b, sizeof b);
  snprintf(buf, n, "%s %s (%.60s)", key, b, explicit_ ? from(cfg, key, &it) : "tier");
}

static int plan_memory(const es_hw_t *hw, const es_config_t *cfg, const es_strategy_preset_t *p,
                       es_plan_t *out, es_error_t *err) {
  uint64_t total = hw->mem.effective_total;
  int64_t v;
  int xbud = configured(cfg, "memory.budget", &v);
  uint64_t budget = xbud ? (uint64_t)v : 0;
  if (!total && !xbud)
    return es__fail(err, ES_ERANGE, -1,
                    "memory size unknown: set memory.budget (EDGESERVE_MEMORY_BUDGET, or the "
                    "[memory] budget key)");
  /* the tier's shape: the machine's, or the budget's when memory is unknown */
  es_budget_tier_t t = es_budget_tier_for(total ? total : budget);
  snprintf(out->tier, sizeof out->tier, "%s", t.name);
  out->total = total;

  /* tier figures are used in whole MiB (readable, and the remainder below
   * 1 MiB is left unassigned); configured ones as they are */
  int xos = configured(cfg, "memory.os_reserve", &v);
  uint64_t os = xos ? (uint64_t)v : MIB_DOWN(t.os_reserve);
  int xsafe = configured(cfg, "memory.safety_margin", &v);
  uint64_t safety = xsafe ? (uint64_t)v : MIB_DOWN(t.safety);
  /* the preset's cache share; what it gives up is left to the OS */
  uint64_t cache_share = t.cache / 100 * (uint64_t)p->cache_budget_pct +
                         t.cache % 100 * (uint64_t)p->cache_budget_pct / 100;
  uint64_t given_up = t.cache - cache_share;

  char a[128], b[128], c[128], tot[32];
  if (!xbud) {
    if (os + safety + given_up >= total) {
      part(cfg, "memory.os_reserve", os, xos, a, sizeof a);
      part(cfg, "memory.safety_margin", safety, xsafe, b, sizeof b);
      es_config_format_bytes(total, tot, sizeof tot);
      return es__fail(err, ES_ERANGE, -1, "%s + %s leave nothing of %s effective memory", a, b,
                      tot);
    }
    budget = MIB_DOWN(total - os - safety - given_up);
  } else if (total && os + safety + budget > total) {
    part(cfg, "memory.os_reserve", os, xos, a, sizeof a);
    part(cfg, "memory.safety_margin", safety, xsafe, b, sizeof b);
    part(cfg, "memory.budget", budget, 1, c, sizeof c);
    es_config_format_bytes(total, tot, sizeof tot);
    return es__fail(err, ES_ERANGE, -1, "%s + %s + %s > %s effective memory: lower one of them", c,
                    a, b, tot);
  }
  if (budget < 16 * MIB) {
    es_config_format_bytes(budget, tot, sizeof tot);
    return es__fail(err, ES_ERANGE, -1,
                    "memory: %s left for edgeserve (tier %s), at least 16M needed: raise the "
                    "memory limit or lower memory.os_reserve / memory.safety_margin",
                    tot, t.name);
  }
  /* model and cache: the tier's shares, scaled to the budget when a
   * configured figure moved it away from the tier's own */
  uint64_t model = t.model, cache = cache_share;
  uint64_t shape = t.model + cache_share + t.work; /* the tier's process share */
  if ((xbud || xos || xsafe) && shape > 0) {
    double f = (double)budget / (double)shape;
    model = (uint64_t)((double)t.model * f);
    cache = (uint64_t)((double)cache_share * f);
  }
  model = MIB_DOWN(model);
  cache = MIB_DOWN(cache);
  if (model < MIB) model = MIB; /* a scaled share of a tiny budget */
  int xmodel = configured(cfg, "memory.model_budget", &v);
  if (xmodel) model = (uint64_t)v;
  int xcache = configured(cfg, "memory.cache_budget", &v);
  if (xcache) cache = (uint64_t)v;
  if (!xmodel && !xcache && model + cache > budget) cache = budget - model; /* rounding */
  if (model + cache > budget) {
    part(cfg, "memory.model_budget", model, xmodel, a, sizeof a);
    part(cfg, "memory.cache_budget", cache, xcache, b, sizeof b);
    part(cfg, "memory.budget", budget, xbud, c, sizeof c);
    return es__fail(err, ES_ERANGE, -1, "%s + %s > %s: lower one of them", a, b, c);
  }
  out->os_reserve = os;
  out->safety_margin = safety;
  out->budget = budget;
  out->model_budget = model;
  out->cache_budget = cache;
  out->work = budget - model - cache;

  out->warning_pct = (int)es_config_get_int(cfg, "memory.warning_pct");
  out->critical_pct = (int)es_config_get_int(cfg, "memory.critical_pct");
  if (out->warning_pct >= out->critical_pct) {
    es_config_item_t iw, ic;
    return es__fail(err, ES_EINVAL, -1,
                    "memory.warning_pct = %d (%s) must be below memory.critical_pct = %d (%s)",
                    out->warning_pct, from(cfg, "memory.warning_pct", &iw), out->critical_pct,
                    from(cfg, "memory.critical_pct", &ic));
  }

  char h[32];
  es_budget_human(total, h, sizeof h);
  if (xbud)
    snprintf(out->memory_why, sizeof out->memory_why,
             "memory.budget configured; tier %s's model/cache split scaled to it", t.name);
  else
    snprintf(out->memory_why, sizeof out->memory_why, "tier %s of %s effective memory%s", t.name, h,
             given_up ? "; cache share cut by the preset, left to the OS" : "");
  return 0;
}

int es_plan_make(const es_hw_t *hw, const es_config_t *cfg, es_plan_t *out, es_error_t *err) {
  int rc = hw_check(hw, err);
  if (rc < 0) return rc;
  es_config_t *own = NULL;
  if (!cfg) {
    if (!(own = es_config_new())) return es__fail(err, ES_ENOMEM, -1, "out of memory");
    cfg = own;
  }
  memset(out, 0, sizeof *out);

  int64_t v;
  es_config_item_t it;
  if (configured(cfg, "runtime.strategy", &v) && v != ES_STRATEGY_AUTO) {
    out->strategy = (es_strategy_t)v;
    snprintf(out->strategy_why, sizeof out->strategy_why, "configured (%.170s)",
             from(cfg, "runtime.strategy", &it));
  } else {
    out->strategy = es_strategy_choose(hw, out->strategy_why, sizeof out->strategy_why);
  }
  const es_strategy_preset_t *p = es_strategy_preset(out->strategy);
  assert(p);

  if ((rc = plan_cpus(hw, cfg, p, out, err)) < 0 || (rc = plan_memory(hw, cfg, p, out, err)) < 0)
    goto done;

  out->max_batch = configured(cfg, "batching.max_batch", &v) ? (uint32_t)v : p->max_batch;
  out->max_delay_us = configured(cfg, "batching.max_delay", &v) ? v : p->max_delay_us;
  out->queue_limit = configured(cfg, "batching.queue_limit", &v) ? (uint32_t)v : p->queue_limit;
  out->cache_entries = configured(cfg, "cache.entries", &v) ? (uint32_t)v : p->cache_entries;
  out->cache_ttl_us = configured(cfg, "cache.ttl", &v) ? v : p->cache_ttl_us;
  out->quality_floor = configured(cfg, "quality.floor", &v) ? (es_quality_t)v : p->quality_floor;
  out->sla_p95_us = configured(cfg, "quality.sla_p95", &v) ? v : p->sla_p95_us;
done:
  es_config_free(own);
  return rc;
}

/* ---- showing the plan ----------------------------------------------------------------- */
/* Sets one plan-layer value; rc chains: does nothing once rc < 0. */
static int put(es_config_t *cfg, int rc, const char *key, const char *value, es_cfg_source_t src,
               const char *origin, es_error_t *err) {
  return rc < 0 ? rc : es_config_set(cfg, key, value, src, origin, err);
}

int es_plan_apply(const es_plan_t *plan, es_config_t *cfg, es_error_t *err) {
  const es_cfg_source_t HW = ES_CFG_HARDWARE, PRE = ES_CFG_PRESET;
  const char *preset = es_strategy_name(plan->strategy);
  char t[10][32];
  int rc = 0;
  rc = put(cfg, rc, "runtime.strategy", preset, HW, NULL, err);
  snprintf(t[0], sizeof t[0], "%d", plan->inference_threads);
  rc = put(cfg, rc, "runtime.inference_threads", t[0], HW, NULL, err);
  snprintf(t[1], sizeof t[1], "%d", plan->background_threads);
  rc = put(cfg, rc, "runtime.background_threads", t[1], HW, NULL, err);
  for (int i = 0; i < 2; i++) {
    const es_cpuset_t *s = i ? &plan->background_cpus : &plan->inference_cpus;
    size_t cap = 16 * (size_t)es_cpuset_count(s) + 1;
    char *text = malloc(cap);
    if (!text) return es__fail(err, ES_ENOMEM, -1, "out of memory");
    es_cpuset_format(s, text, cap);
    rc =
        put(cfg, rc, i ? "runtime.background_cpus" : "runtime.inference_cpus", text, HW, NULL, err);
    free(text);
  }
  rc = put(cfg, rc, "runtime.pin", plan->pin ? "true" : "false", HW, NULL, err);
  static const char *const MEM[] = {"memory.budget", "memory.os_reserve", "memory.model_budget",
                                    "memory.cache_budget", "memory.safety_margin"};
  const uint64_t mem[] = {plan->budget, plan->os_reserve, plan->model_budget, plan->cache_budget,
                          plan->safety_margin};
  for (int i = 0; i < 5; i++) {
    es_config_format_bytes(mem[i], t[2 + i], sizeof t[2 + i]);
    rc = put(cfg, rc, MEM[i], t[2 + i], HW, NULL, err);
  }
  snprintf(t[7], sizeof t[7], "%" PRIu32, plan->max_batch);
  rc = put(cfg, rc, "batching.max_batch", t[7], PRE, preset, err);
  es_config_format_duration(plan->max_delay_us, t[8], sizeof t[8]);
  rc = put(cfg, rc, "batching.max_delay", t[8], PRE, preset, err);
  snprintf(t[9], sizeof t[9], "%" PRIu32, plan->queue_limit);
  rc = put(cfg, rc, "batching.queue_limit", t[9], PRE, preset, err);
  snprintf(t[0], sizeof t[0], "%" PRIu32, plan->cache_entries);
  rc = put(cfg, rc, "cache.entries", t[0], PRE, preset, err);
  es_config_format_duration(plan->cache_ttl_us, t[1], sizeof t[1]);
  rc = put(cfg, rc, "cache.ttl", t[1], PRE, preset, err);
  rc = put(cfg, rc, "quality.floor", es_quality_name(plan->quality_floor), PRE, preset, err);
  es_config_format_duration(plan->sla_p95_us, t[2], sizeof t[2]);
  rc = put(cfg, rc, "quality.sla_p95", t[2], PRE, preset, err);
  return rc;
}

int es_plan_write(const es_plan_t *p, FILE *out) {
  char inf[256], bg[256], b[6][32], d[3][32];
  set_text(&p->inference_cpus, inf, sizeof inf);
  set_text(&p->background_cpus, bg, sizeof bg);
  es_config_format_bytes(p->budget, b[0], sizeof b[0]);
  es_config_format_bytes(p->os_reserve, b[1], sizeof b[1]);
  es_config_format_bytes(p->model_budget, b[2], sizeof b[2]);
  es_config_format_bytes(p->cache_budget, b[3], sizeof b[3]);
  es_config_format_bytes(p->work, b[4], sizeof b[4]);
  es_config_format_bytes(p->safety_margin, b[5], sizeof b[5]);
  es_config_format_duration(p->max_delay_us, d[0], sizeof d[0]);
  es_config_format_duration(p->cache_ttl_us, d[1], sizeof d[1]);
  es_config_format_duration(p->sla_p95_us, d[2], sizeof d[2]);
  fprintf(out, "strategy    %s: %s\n", es_strategy_name(p->strategy), p->strategy_why);
  fprintf(out, "inference   %d thread%s on CPU%s %s%s\n", p->inference_threads,
          p->inference_threads == 1 ? "" : "s", es_cpuset_count(&p->inference_cpus) == 1 ? "" : "s",
          inf, p->pin ? ", pinned" : ", not pinned");
  fprintf(out, "background  %d thread%s on CPU%s %s%s\n", p->background_threads,
          p->background_threads == 1 ? "" : "s",
          es_cpuset_count(&p->background_cpus) == 1 ? "" : "s", bg,
          p->pin ? ", pinned" : ", not pinned");
  fprintf(out, "            %s\n", p->threads_why);
  fprintf(out,
          "memory      budget %s (models %s, caches %s, work %s); OS %s, safety %s; "
          "warning at %d%%, critical at %d%%\n",
          b[0], b[2], b[3], b[4], b[1], b[5], p->warning_pct, p->critical_pct);
  fprintf(out, "            %s\n", p->memory_why);
  fprintf(out, "batching    up to %" PRIu32 " per batch, waiting at most %s; queue %" PRIu32 "\n",
          p->max_batch, d[0], p->queue_limit);
  fprintf(out, "cache       %" PRIu32 " entries, ttl %s\n", p->cache_entries, d[1]);
  fprintf(out, "quality     floor %s, p95 target %s\n", es_quality_name(p->quality_floor), d[2]);
  fflush(out);
  return ferror(out) ? ES_EIO : 0;
}
