/*
 * cmd_hardware.c - `edgeserve hardware` and `edgeserve config`: what machine
 * this is, the memory tier, the plan (threads, affinity, budgets), and the
 * effective configuration with where each value came from.
 *
 * Both build the configuration the same way the server will: built-in
 * defaults < strategy preset and hardware plan < --config FILE < environment
 * (EDGESERVE_<SECTION>_<KEY>) < --set / --strategy flags.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/hwjson.h"
#include "cli.h"
#include "edgeserve/budget.h"
#include "edgeserve/config.h"
#include "edgeserve/hw.h"
#include "edgeserve/strategy.h"

extern char **environ;

/* What both commands share: the parsed flags, the machine and the plan. */
typedef struct {
  int json, keys;
  const char *root; /* --root DIR: a recorded procfs/sysfs tree */
  es_hw_t hw;
  es_config_t *cfg;
  es_plan_t plan;
} setup_t;

static int usage(const char *cmd) {
  fprintf(
      stderr,
      "usage: edgeserve %s [--json] [--config FILE] [--strategy S] [--set SECTION.KEY=VALUE]...\n"
      "                 [--root DIR]%s\n"
      "  S is auto, latency_optimized, memory_optimized or balanced; --root reads /proc\n"
      "  and /sys under DIR (a recorded machine, as in tests/fixtures/hw/)\n",
      cmd, strcmp(cmd, "config") ? "" : " [--keys]");
  return 2;
}

/* Parses the flags, detects the machine, loads the configuration and makes
 * the plan. Returns 0, 2 (usage) or 1 (an error, reported). */
static int setup(int argc, char **argv, setup_t *s) {
  es_error_t err = {0};
  const char *file = NULL;
  memset(s, 0, sizeof *s);
  s->cfg = es_config_new();
  if (!s->cfg) {
    fprintf(stderr, "edgeserve: out of memory\n");
    return 1;
  }
  /* flags are applied after the file and the environment, but checked first */
  int nflags = 0;
  const char **flags = calloc((size_t)argc + 1, sizeof *flags);
  if (!flags) return 1;
  int rc = 0;
  for (int i = 1; i < argc && rc == 0; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "--json")) {
      s->json = 1;
    } else if (!strcmp(a, "--keys") && !strcmp(argv[0], "config")) {
      s->keys = 1;
    } else if (!strcmp(a, "--config") && more) {
      file = argv[++i];
    } else if (!strcmp(a, "--root") && more) {
      s->root = argv[++i];
    } else if (!strcmp(a, "--set") && more) {
      flags[nflags++] = argv[++i];
    } else if (!strcmp(a, "--strategy") && more) {
      flags[nflags++] = NULL; /* marker: the next argument is a strategy */
      flags[nflags++] = argv[++i];
    } else {
      int valued = !strcmp(a, "--config") || !strcmp(a, "--root") || !strcmp(a, "--set") ||
                   !strcmp(a, "--strategy");
      if (valued)
        fprintf(stderr, "edgeserve %s: %s needs a value\n", argv[0], a);
      else
        fprintf(stderr, "edgeserve %s: unknown argument \"%s\"\n", argv[0], a);
      rc = 2;
    }
  }
  if (rc == 0 && file && es_config_load_file(s->cfg, file, &err) < 0) rc = 1;
  if (rc == 0 && es_config_apply_env(s->cfg, environ, &err) < 0) rc = 1;
  for (int i = 0; rc == 0 && i < nflags; i++) {
    if (flags[i] == NULL) {
      i++;
      if (es_config_set(s->cfg, "runtime.strategy", flags[i], ES_CFG_FLAG, "--strategy", &err) < 0)
        rc = 1;
    } else if (es_config_set_flag(s->cfg, flags[i], &err) < 0) {
      rc = 1;
    }
  }
  free(flags);
  if (rc == 0 && es_hw_detect(&s->hw, s->root, &err) < 0) rc = 1;
  if (rc == 0 && es_plan_make(&s->hw, s->cfg, &s->plan, &err) < 0) rc = 1;
  if (rc == 0 && es_plan_apply(&s->plan, s->cfg, &err) < 0) rc = 1;
  if (rc == 1) fprintf(stderr, "edgeserve: %s\n", err.msg[0] ? err.msg : es_strerror(err.code));
  if (rc == 2) usage(argv[0]);
  return rc;
}

static void cluster_cpus(const es_hw_t *hw, int c, char *buf, size_t n) {
  es_cpuset_t set;
  es_cpuset_clear(&set);
  for (int i = 0; i < hw->ncpus; i++)
    if (hw->cpus[i].cluster == c) es_cpuset_add(&set, hw->cpus[i].id);
  es_cpuset_format(&set, buf, n);
}

static void print_text(const setup_t *s) {
  const es_hw_t *hw = &s->hw;
  const es_memstat_t *m = &hw->mem;
  char a[32], b[32], c[32], buf[512];
  printf("machine     %s, %s%s%s\n", hw->arch, hw->cpu_model[0] ? hw->cpu_model : "unknown CPU",
         hw->board[0] ? ", " : "", hw->board);
  printf("cpus        %d online, %d physical core%s, SIMD %s\n", hw->ncpus, hw->physical_cores,
         hw->physical_cores == 1 ? "" : "s", es__simd_text(hw->simd, buf, sizeof buf));
  for (int i = 0; i < hw->nclusters; i++) {
    const es_hw_cluster_t *cl = &hw->clusters[i];
    cluster_cpus(hw, i, buf, sizeof buf);
    printf("cluster %d   CPUs %s: %d x ", i, buf, cl->ncpus);
    if (cl->max_khz)
      printf("%.2f GHz", (double)cl->max_khz / 1e6);
    else
      printf("unknown frequency");
    if (cl->capacity) printf(", capacity %d", cl->capacity);
    printf("%s\n", cl->big ? " (big)" : "");
  }
  printf("memory      %s RAM, %s available, swap %s", es_budget_human(m->sys_total, a, sizeof a),
         es_budget_human(m->sys_available, b, sizeof b),
         es_budget_human(m->swap_total, c, sizeof c));
  if (m->cg_limit)
    printf("; cgroup v%d limit %s (%s used)", m->cg_version,
           es_budget_human(m->cg_limit, a, sizeof a), es_budget_human(m->cg_usage, b, sizeof b));
  printf("\n");
  if (hw->cpu_quota > 0)
    printf("cpu quota   %.2f CPUs (plan for %d)\n", hw->cpu_quota, es_hw_effective_cpus(hw));
  if (hw->nzones == 0) printf("thermal     no thermal zones\n");
  for (int i = 0; i < hw->nzones; i++) {
    const es_hw_zone_t *z = &hw->zones[i];
    printf("thermal     %s %.1f C", z->type, z->temp_c);
    if (z->passive_c > 0) printf(", throttles at %.0f C", z->passive_c);
    if (z->crit_c > 0) printf(", critical at %.0f C", z->crit_c);
    printf("\n");
  }
  printf("throttled   %s\n", hw->throttled ? "yes: frequency is held down" : "no");
  if (hw->nvidia_gpus)
    printf("gpu         %d NVIDIA%s%s\n", hw->nvidia_gpus, hw->gpu_name[0] ? ": " : "",
           hw->gpu_name);
  else
    printf("gpu         none\n");
  printf("tier        %s (usable memory %s)\n", s->plan.tier,
         es_budget_human(s->plan.total, a, sizeof a));
  printf("\nplan\n");
  es_plan_write(&s->plan, stdout);
}

static int print_json(const setup_t *s) {
  cJSON *root = es__hw_json(&s->hw, &s->plan);
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  if (!text) {
    fprintf(stderr, "edgeserve: out of memory\n");
    return 1;
  }
  puts(text);
  cJSON_free(text);
  return 0;
}

int es_cmd_hardware(int argc, char **argv) {
  setup_t s;
  int rc = setup(argc, argv, &s);
  if (rc == 0) {
    if (s.json)
      rc = print_json(&s);
    else
      print_text(&s);
  }
  es_config_free(s.cfg);
  return rc;
}

int es_cmd_config(int argc, char **argv) {
  setup_t s;
  int rc = setup(argc, argv, &s);
  if (rc == 0) {
    es_cfg_format_t f = s.keys   ? ES_CFG_FORMAT_HELP
                        : s.json ? ES_CFG_FORMAT_JSON
                                 : ES_CFG_FORMAT_INI;
    if (es_config_write(s.cfg, stdout, f) < 0) {
      fprintf(stderr, "edgeserve: cannot write the configuration\n");
      rc = 1;
    }
  }
  es_config_free(s.cfg);
  return rc;
}
