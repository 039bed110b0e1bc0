/*
 * hwjson.c - es_hw_t and es_plan_t as JSON (cJSON), shared by the CLI's
 * `hardware --json` and the server's GET /hardware.
 */
#include "hwjson.h"

#include <string.h>

#include "edgeserve/affinity.h"

const char *es__simd_text(unsigned simd, char *buf, size_t n) {
  static const struct {
    unsigned bit;
    const char *name;
  } f[] = {{ES_HW_SSE42, "sse4.2"},    {ES_HW_AVX2, "avx2"}, {ES_HW_FMA, "fma"},
           {ES_HW_AVX512F, "avx512f"}, {ES_HW_NEON, "neon"}, {ES_HW_DOTPROD, "dotprod"}};
  buf[0] = 0;
  for (size_t i = 0; i < sizeof f / sizeof *f; i++)
    if (simd & f[i].bit)
      snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", *buf ? " " : "", f[i].name);
  if (!*buf) snprintf(buf, n, "none");
  return buf;
}

/* "4-7" for the CPUs of cluster c */
static cJSON *cpuset_json(const es_cpuset_t *set) {
  cJSON *arr = cJSON_CreateArray();
  for (int i = 0, n = es_cpuset_count(set); arr && i < n; i++)
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(es_cpuset_nth(set, i)));
  return arr;
}

cJSON *es__hw_json(const es_hw_t *hw, const es_plan_t *p) {
  const es_memstat_t *m = &hw->mem;
  char buf[256];
  cJSON *root = cJSON_CreateObject(), *h = cJSON_AddObjectToObject(root, "hardware");
  cJSON_AddStringToObject(h, "arch", hw->arch);
  cJSON_AddStringToObject(h, "cpu_model", hw->cpu_model);
  cJSON_AddStringToObject(h, "board", hw->board);
  cJSON *simd = cJSON_AddArrayToObject(h, "simd");
  es__simd_text(hw->simd, buf, sizeof buf);
  for (char *t = strtok(buf, " "); t && hw->simd; t = strtok(NULL, " "))
    cJSON_AddItemToArray(simd, cJSON_CreateString(t));
  cJSON_AddNumberToObject(h, "cpus", hw->ncpus);
  cJSON_AddNumberToObject(h, "physical_cores", hw->physical_cores);
  cJSON *cls = cJSON_AddArrayToObject(h, "clusters");
  for (int i = 0; i < hw->nclusters; i++) {
    cJSON *c = cJSON_CreateObject();
    es_cpuset_t set;
    es_cpuset_clear(&set);
    for (int j = 0; j < hw->ncpus; j++)
      if (hw->cpus[j].cluster == i) es_cpuset_add(&set, hw->cpus[j].id);
    cJSON_AddItemToObject(c, "cpus", cpuset_json(&set));
    cJSON_AddNumberToObject(c, "max_khz", (double)hw->clusters[i].max_khz);
    cJSON_AddNumberToObject(c, "capacity", hw->clusters[i].capacity);
    cJSON_AddBoolToObject(c, "big", hw->clusters[i].big);
    cJSON_AddItemToArray(cls, c);
  }
  cJSON_AddNumberToObject(h, "cpu_quota", hw->cpu_quota);
  cJSON_AddNumberToObject(h, "effective_cpus", es_hw_effective_cpus(hw));
  cJSON *mem = cJSON_AddObjectToObject(h, "memory");
  cJSON_AddNumberToObject(mem, "total_bytes", (double)m->sys_total);
  cJSON_AddNumberToObject(mem, "available_bytes", (double)m->sys_available);
  cJSON_AddNumberToObject(mem, "swap_bytes", (double)m->swap_total);
  cJSON_AddNumberToObject(mem, "cgroup_version", m->cg_version);
  cJSON_AddNumberToObject(mem, "cgroup_limit_bytes", (double)m->cg_limit);
  cJSON_AddNumberToObject(mem, "effective_total_bytes", (double)m->effective_total);
  cJSON *zones = cJSON_AddArrayToObject(h, "thermal");
  for (int i = 0; i < hw->nzones; i++) {
    cJSON *z = cJSON_CreateObject();
    cJSON_AddStringToObject(z, "type", hw->zones[i].type);
    cJSON_AddNumberToObject(z, "temp_c", hw->zones[i].temp_c);
    cJSON_AddNumberToObject(z, "passive_c", hw->zones[i].passive_c);
    cJSON_AddNumberToObject(z, "critical_c", hw->zones[i].crit_c);
    cJSON_AddItemToArray(zones, z);
  }
  cJSON_AddBoolToObject(h, "throttled", hw->throttled);
  cJSON_AddNumberToObject(h, "nvidia_gpus", hw->nvidia_gpus);
  cJSON_AddStringToObject(h, "gpu_name", hw->gpu_name);

  if (!p) return root;
  cJSON *pl = cJSON_AddObjectToObject(root, "plan");
  cJSON_AddStringToObject(pl, "strategy", es_strategy_name(p->strategy));
  cJSON_AddStringToObject(pl, "strategy_why", p->strategy_why);
  cJSON_AddNumberToObject(pl, "inference_threads", p->inference_threads);
  cJSON_AddItemToObject(pl, "inference_cpus", cpuset_json(&p->inference_cpus));
  cJSON_AddNumberToObject(pl, "background_threads", p->background_threads);
  cJSON_AddItemToObject(pl, "background_cpus", cpuset_json(&p->background_cpus));
  cJSON_AddBoolToObject(pl, "pin", p->pin);
  cJSON_AddStringToObject(pl, "threads_why", p->threads_why);
  cJSON_AddStringToObject(pl, "tier", p->tier);
  cJSON_AddNumberToObject(pl, "total_bytes", (double)p->total);
  cJSON_AddNumberToObject(pl, "os_reserve_bytes", (double)p->os_reserve);
  cJSON_AddNumberToObject(pl, "safety_margin_bytes", (double)p->safety_margin);
  cJSON_AddNumberToObject(pl, "budget_bytes", (double)p->budget);
  cJSON_AddNumberToObject(pl, "model_budget_bytes", (double)p->model_budget);
  cJSON_AddNumberToObject(pl, "cache_budget_bytes", (double)p->cache_budget);
  cJSON_AddNumberToObject(pl, "work_bytes", (double)p->work);
  cJSON_AddNumberToObject(pl, "warning_pct", p->warning_pct);
  cJSON_AddNumberToObject(pl, "critical_pct", p->critical_pct);
  cJSON_AddStringToObject(pl, "memory_why", p->memory_why);
  cJSON_AddNumberToObject(pl, "max_batch", p->max_batch);
  cJSON_AddNumberToObject(pl, "max_delay_us", (double)p->max_delay_us);
  cJSON_AddNumberToObject(pl, "queue_limit", p->queue_limit);
  cJSON_AddNumberToObject(pl, "cache_entries", p->cache_entries);
  cJSON_AddNumberToObject(pl, "cache_ttl_us", (double)p->cache_ttl_us);
  cJSON_AddStringToObject(pl, "quality_floor", es_quality_name(p->quality_floor));
  cJSON_AddNumberToObject(pl, "sla_p95_us", (double)p->sla_p95_us);
  return root;
}
