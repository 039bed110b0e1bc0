/*
 * bench_config.c - what building the configuration costs at start-up: the
 * INI file of every key parsed (inih) and validated, the environment
 * applied, the plan made for a recorded machine and written back, next to
 * the hardware detection that precedes it. It runs once per start and per
 * POST /optimize-for-hardware, so the question is only "is it negligible".
 *
 *   make && build/bench/bench_config      (from the repository root)
 */
#include <stdio.h>
#include <stdlib.h>

#include "../../src/common/clock.h"
#include "edgeserve/config.h"
#include "edgeserve/hw.h"
#include "edgeserve/strategy.h"

#define RUN_SEC 0.3

static es_hw_t hw;
static char *ini;
static char *env[] = {"EDGESERVE_BATCHING_MAX_BATCH=12", "EDGESERVE_CACHE_TTL=3s", "HOME=/root",
                      NULL};
static volatile int sink;

static void load_only(void) {
  es_config_t *c = es_config_new();
  es_error_t err;
  sink += es_config_load_string(c, ini, "full.ini", &err);
  es_config_free(c);
}

static void full_setup(void) {
  es_config_t *c = es_config_new();
  es_error_t err;
  es_plan_t plan;
  sink += es_config_load_string(c, ini, "full.ini", &err);
  sink += es_config_apply_env(c, env, &err);
  sink += es_plan_make(&hw, c, &plan, &err);
  sink += es_plan_apply(&plan, c, &err);
  es_config_free(c);
}

static void detect(void) {
  es_error_t err;
  sink += es_hw_detect(&hw, "tests/fixtures/hw/orangepi5", &err);
}

static double per_call_us(void (*fn)(void)) {
  long n = 0;
  double t0 = es__mono_sec(), t;
  do {
    for (int i = 0; i < 16; i++) fn();
    n += 16;
  } while ((t = es__mono_sec() - t0) < RUN_SEC);
  return t / (double)n * 1e6;
}

int main(void) {
  FILE *f = fopen("tests/fixtures/config/full.ini", "rb");
  if (!f) {
    fprintf(stderr, "bench_config: run from the repository root\n");
    return 1;
  }
  ini = calloc(1, 1 << 16);
  size_t n = fread(ini, 1, (1 << 16) - 1, f);
  fclose(f);
  ini[n] = 0;
  es_error_t err;
  if (es_hw_detect(&hw, "tests/fixtures/hw/orangepi5", &err) < 0) {
    fprintf(stderr, "bench_config: %s\n", err.msg);
    return 1;
  }
  full_setup(); /* every step must succeed, or the figures mean nothing */
  if (sink != 0) {
    fprintf(stderr, "bench_config: a configuration step failed\n");
    return 1;
  }
  double d = per_call_us(detect), l = per_call_us(load_only), s = per_call_us(full_setup);
  printf("| step (recorded Orange Pi 5, tests/fixtures/config/full.ini) | us / call | vs "
         "detection |\n|---|---:|---:|\n");
  printf("| es_hw_detect (recorded tree) | %.1f | 1.00 |\n", d);
  printf("| es_config_load_string (every key) | %.1f | %.2f |\n", l, l / d);
  printf("| load + environment + es_plan_make + es_plan_apply | %.1f | %.2f |\n", s, s / d);
  free(ini);
  return 0;
}
