/*
 * test_runtime.c - the runtime's modules together, on this machine: the plan
 * made from the detected hardware drives two pinned schedulers (inference and
 * background) whose tasks run on the planned CPUs, and the budget made from
 * the plan's tier admits and refuses with real memory samples.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edgeserve/budget.h"
#include "edgeserve/config.h"
#include "edgeserve/hw.h"
#include "edgeserve/memstat.h"
#include "edgeserve/sched.h"
#include "edgeserve/strategy.h"

typedef struct {
  int cpu;
} where_t;

static void record_cpu(void *arg) { ((where_t *)arg)->cpu = es_affinity_current_cpu(); }

/* Runs `n` tasks on a scheduler pinned to `cpus` and checks each ran on one
 * of them (when the kernel accepted the pinning; a refusal must be
 * explained in the affinity note). */
static void tasks_run_on(const es_cpuset_t *cpus, int nworkers, int pin_each) {
  es_sched_params_t p = es_sched_default_params();
  p.nworkers = nworkers;
  p.cpus = *cpus;
  p.pin_each = pin_each;
  es_error_t err = {0};
  es_sched_t *s = es_sched_new(&p, &err);
  assert_non_null(s);
  enum { N = 64 };
  where_t w[N];
  es_task_t *t[N];
  for (int i = 0; i < N; i++) {
    w[i].cpu = -2;
    es_task_opts_t o = {.handle = &t[i]};
    assert_int_equal(es_sched_submit(s, record_cpu, &w[i], ES_SCHED_NORMAL, &o), 0);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(es_task_wait(t[i], 10000), 0);
    es_task_release(t[i]);
  }
  es_sched_stats_t st;
  es_sched_stats(s, &st);
  if (st.pinned == nworkers) {
    for (int i = 0; i < N; i++)
      if (w[i].cpu >= 0) assert_true(es_cpuset_has(cpus, w[i].cpu));
  } else {
    assert_true(strlen(st.affinity_note) > 0); /* why pinning did not happen */
  }
  assert_int_equal(es_sched_shutdown(s, ES_SCHED_DRAIN), 0);
  es_sched_free(s);
}

static void the_live_plan_pins_inference_and_background_to_their_cpus(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  assert_non_null(hw);
  es_error_t err = {0};
  assert_int_equal(es_hw_detect(hw, NULL, &err), 0);
  es_plan_t plan;
  assert_int_equal(es_plan_make(hw, NULL, &plan, &err), 0);
  assert_true(plan.inference_threads >= 1);
  assert_true(plan.background_threads >= 1);
  assert_true(es_cpuset_count(&plan.inference_cpus) >= 1);
  /* every planned CPU is one of the machine's */
  for (int i = 0; i < es_cpuset_count(&plan.inference_cpus); i++) {
    int cpu = es_cpuset_nth(&plan.inference_cpus, i), found = 0;
    for (int j = 0; j < hw->ncpus; j++) found |= hw->cpus[j].id == cpu;
    assert_true(found);
  }
  if (plan.pin) {
    tasks_run_on(&plan.inference_cpus, plan.inference_threads, 1);
    tasks_run_on(&plan.background_cpus, plan.background_threads, 0);
  }
  free(hw);
}

static void a_recorded_big_little_plan_keeps_inference_off_the_little_cores(void **state) {
  (void)state;
  es_hw_t *hw = malloc(sizeof *hw);
  es_error_t err = {0};
  assert_int_equal(es_hw_detect(hw, ES_HW_FIXTURES "/orangepi5", &err), 0);
  es_plan_t plan;
  assert_int_equal(es_plan_make(hw, NULL, &plan, &err), 0);
  for (int j = 0; j < hw->ncpus; j++) {
    int big = hw->clusters[hw->cpus[j].cluster].big;
    assert_int_equal(es_cpuset_has(&plan.inference_cpus, hw->cpus[j].id), big);
    assert_int_equal(es_cpuset_has(&plan.background_cpus, hw->cpus[j].id), !big);
  }
  free(hw);
}

static void the_plans_budget_admits_then_refuses_with_real_samples(void **state) {
  (void)state;
  es_memstat_t m;
  es_error_t err = {0};
  assert_int_equal(es_memstat_read(&m, NULL, &err), 0);
  assert_true(m.rss > 0 && m.effective_total > 0);
  es_budget_params_t p = es_budget_default_params();
  p.budget = 64ull << 20; /* an explicit budget: 64 MiB for this process */
  es_budget_t *b = es_budget_new(&p, &err);
  assert_non_null(b);
  es_budget_observe(b, &m);
  es_budget_res_t small = {0}, big = {0};
  es_budget_refusal_t why;
  /* the test process itself uses a few MiB: 8 MiB more fits */
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_WORK, 8ull << 20, "small", &small, &why), 0);
  /* 128 MiB does not, and the refusal says how much was needed */
  assert_int_equal(es_budget_reserve(b, ES_BUDGET_WORK, 128ull << 20, "big", &big, &why),
                   ES_EBUDGET);
  assert_int_equal(why.required, 128ull << 20);
  assert_true(why.available < (64ull << 20));
  assert_non_null(strstr(why.reason, "big"));
  es_budget_release(b, &small);
  es_budget_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(the_live_plan_pins_inference_and_background_to_their_cpus),
      cmocka_unit_test(a_recorded_big_little_plan_keeps_inference_off_the_little_cores),
      cmocka_unit_test(the_plans_budget_admits_then_refuses_with_real_samples),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
