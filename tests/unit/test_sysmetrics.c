/* test_sysmetrics.c - system metrics from recorded machines (tests/fixtures/hw/)
 * overlaid with two snapshots each (tests/fixtures/sys/), the rule table on
 * synthetic samples, the live system, and the periodic monitor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tmptree.h"
#include "edgeserve/sysmetrics.h"

/* |a - b| <= eps, with both values in the failure message (this cmocka's
 * assert_float_equal rounds to float). */
#define assert_near(a, b, eps) near_((double)(a), (double)(b), (double)(eps), #a, __LINE__)
static void near_(double a, double b, double eps, const char *what, int line) {
  if (!(a - b <= eps && b - a <= eps))
    fail_msg("line %d: %s = %.9g, expected %.9g", line, what, a, b);
}

static const char *fixture(const char *kind, const char *name, char *path, size_t cap) {
  return tmptree_fixture(kind, name, path, cap);
}

/* Copies every regular file under src (recursively) to dst/rel. */
static void overlay_dir(const char *src, const char *dst, const char *rel) {
  char path[2048];
  snprintf(path, sizeof path, "%s/%s", src, rel);
  DIR *d = opendir(path);
  assert_non_null(d);
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char sub[1024], full[2048];
    snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
    snprintf(full, sizeof full, "%s/%s", src, sub);
    struct stat st;
    assert_int_equal(lstat(full, &st), 0);
    if (S_ISDIR(st.st_mode)) {
      overlay_dir(src, dst, sub);
    } else if (S_ISREG(st.st_mode)) {
      FILE *f = fopen(full, "rb");
      assert_non_null(f);
      static char buf[1 << 16];
      size_t n = fread(buf, 1, sizeof buf - 1, f);
      fclose(f);
      buf[n] = 0;
      assert_int_equal(tmptree_put(dst, sub, buf), 0);
    }
  }
  closedir(d);
}

static void overlay(const char *kind, const char *name, const char *root) {
  char path[1024];
  overlay_dir(fixture(kind, name, path, sizeof path), root, "");
}

static char root[256];
static double fake_now;
static double fake_clock(void *ud) { return *(double *)ud; }

static int setup(void **state) {
  (void)state;
  return tmptree_new(root, sizeof root, "es-sysm-");
}
static int teardown(void **state) {
  (void)state;
  tmptree_rm(root);
  return 0;
}

/* A sampler on tmp root = hw machine `base` + sys/<scene>/t0. */
static es_sysmetrics_t *scene(const char *base, const char *scene_name) {
  char rel[128];
  overlay("hw", base, root);
  if (scene_name) {
    snprintf(rel, sizeof rel, "%s/t0", scene_name);
    overlay("sys", rel, root);
  }
  es_sysmetrics_params_t p = es_sysmetrics_default_params();
  p.root = root;
  p.clock = fake_clock;
  p.clock_ud = &fake_now;
  fake_now = 100.0;
  es_error_t err;
  es_sysmetrics_t *s = es_sysmetrics_new(&p, &err);
  if (!s) fprintf(stderr, "es_sysmetrics_new: %s\n", err.msg);
  assert_non_null(s);
  return s;
}

/* Samples t0, then t1 2 s later (fake clock); *m holds the second. */
static void two_samples(es_sysmetrics_t *s, const char *scene_name, es_sysmetrics_sample_t *m) {
  char rel[128];
  es_error_t err;
  assert_int_equal(es_sysmetrics_sample(s, m, &err), 0);
  snprintf(rel, sizeof rel, "%s/t1", scene_name);
  overlay("sys", rel, root);
  fake_now += 2.0;
  int rc = es_sysmetrics_sample(s, m, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(rc, 0);
}

static es_sysmetrics_sample_t *new_sample(void) {
  es_sysmetrics_sample_t *m = calloc(1, sizeof *m);
  assert_non_null(m);
  return m;
}

static const es_sysmetrics_iface_t *iface(const es_sysmetrics_sample_t *m, const char *name) {
  for (int i = 0; i < m->nifaces; i++)
    if (strcmp(m->ifaces[i].name, name) == 0) return &m->ifaces[i];
  fail_msg("no interface %s", name);
  return NULL;
}

static void first_sample_reports_no_rates_and_says_so(void **state) {
  (void)state;
  es_sysmetrics_t *s = scene("pi4-1gb", "pi4-hot");
  es_sysmetrics_sample_t *m = new_sample();
  assert_int_equal(es_sysmetrics_sample(s, m, NULL), 0);
  assert_int_equal(m->seq, 1);
  assert_false(m->have & ES_SYSM_HAVE_RATES);
  assert_true(m->have & ES_SYSM_HAVE_LOAD);
  assert_true(m->have & ES_SYSM_HAVE_NET);
  assert_true(m->have & ES_SYSM_HAVE_TEMP);
  assert_true(m->have & ES_SYSM_HAVE_RPI);
  assert_false(m->have & ES_SYSM_HAVE_DISK); /* no data_dir */
  assert_true(m->cpu_pct == 0 && m->interval_s == 0 && m->rx_bps == 0);
  assert_int_equal(m->ncores, 4);
  for (int i = 0; i < 4; i++) assert_true(m->cores[i].pct == 0);
  assert_false(m->flags & ES_SYSM_CPU_MAXED); /* unknown is not maxed */
  assert_true(m->flags & ES_SYSM_THERMAL_LIKELY);
  assert_int_equal(m->action, ES_SYSM_COOL_DOWN);
  /* counters without a previous sample are still reported */
  assert_int_equal(m->rx_bytes, 123456789);
  assert_int_equal(m->tx_bytes, 98765432);
  free(m);
  es_sysmetrics_free(s);
}

static void pi4_at_95_percent_and_82c_is_maxed_and_hot(void **state) {
  (void)state;
  es_sysmetrics_t *s = scene("pi4-1gb", "pi4-hot");
  es_sysmetrics_sample_t *m = new_sample();
  two_samples(s, "pi4-hot", m);
  assert_int_equal(m->seq, 2);
  assert_true(m->have & ES_SYSM_HAVE_RATES);
  assert_near(m->interval_s, 2.0, 1e-12);
  assert_near(m->cpu_pct, 95.0, 1e-9);
  assert_near(m->iowait_pct, 0.5, 1e-9);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(m->cores[i].id, i);
    assert_near(m->cores[i].pct, 95.0, 1e-4);
  }
  assert_int_equal(m->nclusters, 1);
  assert_int_equal(m->clusters[0].ncpus, 4);
  assert_near(m->clusters[0].pct, 95.0, 1e-4);
  assert_near(m->load1, 3.97, 1e-9);
  assert_near(m->load15, 2.12, 1e-9);
  assert_int_equal(m->procs_running, 4);
  assert_int_equal(m->procs_total, 312);
  /* network: loopback left out of the totals */
  assert_near(m->rx_bps, 1000000.0, 1e-6);
  assert_near(m->tx_bps, 250000.0, 1e-6);
  assert_int_equal(m->rx_bytes, 125456789);
  assert_int_equal(m->rx_packets, 201500);
  assert_int_equal(m->nifaces, 3);
  assert_near(iface(m, "lo")->rx_bps, 500.0, 1e-9);
  assert_near(iface(m, "eth0")->tx_bps, 250000.0, 1e-6);
  /* memory: the Pi's meminfo, no cgroup limit */
  assert_int_equal(m->mem.effective_total, 944268ull * 1024);
  assert_near(m->mem_pct, 100.0 * (1.0 - 731872.0 / 944268.0), 1e-9);
  assert_near(m->swap_pct, 0.0, 0);
  /* temperature and throttling */
  assert_int_equal(m->nzones, 1);
  assert_string_equal(m->zones[0].type, "cpu-thermal");
  assert_true(m->zones[0].ok);
  assert_near(m->zones[0].temp_c, 82.0, 1e-9);
  assert_near(m->zones[0].crit_c, 90.0, 1e-9);
  assert_near(m->max_temp_c, 82.0, 1e-9);
  assert_int_equal(m->rpi_throttled, 0x80008);
  assert_false(m->freq_capped);
  assert_true(m->throttled); /* the firmware's soft temperature limit */
  /* assessment */
  assert_int_equal(m->flags, ES_SYSM_CPU_MAXED | ES_SYSM_THERMAL_LIKELY);
  assert_int_equal(m->action, ES_SYSM_COOL_DOWN);
  assert_string_equal(es_sysmetrics_action_str(m->action), "wait for the device to cool");
  assert_int_equal(m->level[ES_SYSM_CPU], ES_SYSM_LEVEL_CRIT);
  assert_int_equal(m->level[ES_SYSM_MEM], ES_SYSM_LEVEL_OK);
  assert_int_equal(m->level[ES_SYSM_TEMP], ES_SYSM_LEVEL_WARN);
  assert_int_equal(m->level[ES_SYSM_DISK], ES_SYSM_LEVEL_OK);
  free(m);
  es_sysmetrics_free(s);
}

static void hot_zone_without_passive_trip_is_thermal_from_80c(void **state) {
  (void)state;
  es_sysmetrics_t *s = scene("pi4-1gb", "pi4-hot");
  char path[512];
  snprintf(path, sizeof path, "%s/sys/devices/platform/soc/soc:firmware/get_throttled", root);
  assert_int_equal(unlink(path), 0); /* a kernel without the firmware file */
  es_sysmetrics_sample_t *m = new_sample();
  assert_int_equal(es_sysmetrics_sample(s, m, NULL), 0);
  assert_int_equal(m->rpi_throttled, -1);
  assert_false(m->have & ES_SYSM_HAVE_RPI);
  assert_false(m->throttled);
  assert_true(m->flags & ES_SYSM_THERMAL_LIKELY); /* 82 C >= rules.thermal_c 80 */
  assert_int_equal(tmptree_put(root, "sys/class/thermal/thermal_zone0/temp", "79999\n"), 0);
  assert_int_equal(es_sysmetrics_sample(s, m, NULL), 0);
  assert_false(m->flags & ES_SYSM_THERMAL_LIKELY);
  assert_int_equal(m->action, ES_SYSM_OK);
  free(m);
  es_sysmetrics_free(s);
}

static void orangepi5_big_busy_little_idle_gives_per_cluster_figures(void **state) {
  (void)state;
  es_sysmetrics_t *s = scene("orangepi5", "orangepi5-busy");
  es_sysmetrics_sample_t *m = new_sample();
  two_samples(s, "orangepi5-busy", m);
  assert_int_equal(m->ncores, 8);
  assert_int_equal(m->nclusters, 2);
  /* cluster 0 is the A76 (cpu4-7), fastest first */
  assert_true(m->clusters[0].big);
  assert_int_equal(m->clusters[0].ncpus, 4);
  assert_int_equal(m->clusters[0].max_khz, 2400000);
  assert_int_equal(m->clusters[0].cap_khz, 2400000);
  assert_near(m->clusters[0].pct, 97.75, 1e-9);
  assert_near(m->clusters[0].max_pct, 98.0, 1e-9);
  assert_false(m->clusters[1].big);
  assert_int_equal(m->clusters[1].max_khz, 1800000);
  assert_near(m->clusters[1].pct, 5.0, 1e-9);
  assert_near(m->clusters[1].max_pct, 5.0, 1e-9);
  assert_near(m->cpu_pct, 100.0 * 822 / 1600, 1e-9);
  for (int i = 0; i < 8; i++) {
    const es_sysmetrics_core_t *c = &m->cores[i];
    assert_int_equal(c->cluster, c->id >= 4 ? 0 : 1);
    assert_near(c->pct, c->id < 4 ? 5.0 : c->id == 5 ? 97.0 : 98.0, 1e-4);
  }
  /* cooled and uncapped: only the CPU rule fires */
  assert_int_equal(m->nzones, 7);
  assert_string_equal(m->zones[0].type, "soc-thermal");
  assert_near(m->zones[0].passive_c, 75.0, 1e-9);
  assert_near(m->max_temp_c, 56.538, 1e-9);
  assert_false(m->throttled);
  assert_int_equal(m->flags, ES_SYSM_CPU_MAXED);
  assert_int_equal(m->action, ES_SYSM_REDUCE_LOAD);
  assert_string_equal(es_sysmetrics_action_str(m->action), "reduce load");
  /* wlan0 was re-created (counters went back): rate 0, not a wrap-around */
  assert_near(iface(m, "wlan0")->rx_bps, 0.0, 0);
  assert_near(iface(m, "eth0")->rx_bps, 15000000.0, 1e-6);
  assert_near(m->rx_bps, 15000000.0, 1e-6);
  assert_near(m->tx_bps, 300000.0, 1e-6); /* wlan0 tx went back too */
  assert_near(m->swap_pct, 0.0, 0);
  free(m);
  es_sysmetrics_free(s);
}

static void orangepi5_recorded_capped_and_over_passive_trip_is_throttled(void **state) {
  (void)state;
  es_sysmetrics_t *s = scene("orangepi5", NULL); /* the recorded hot board */
  overlay("sys", "orangepi5-busy/t1", root);     /* /proc/stat and net only */
  es_sysmetrics_sample_t *m = new_sample();
  assert_int_equal(es_sysmetrics_sample(s, m, NULL), 0);
  assert_true(m->freq_capped);
  assert_true(m->throttled);
  assert_int_equal(m->clusters[0].cap_khz, 2016000);
  assert_int_equal(m->clusters[1].cap_khz, 1800000);
  assert_near(m->zones[0].temp_c, 78.615, 1e-9);
  assert_near(m->max_temp_c, 79.538, 1e-9);
  assert_false(m->have & ES_SYSM_HAVE_RPI);
  assert_true(m->flags & ES_SYSM_THERMAL_LIKELY);
  assert_int_equal(m->action, ES_SYSM_COOL_DOWN);
  assert_int_equal(m->level[ES_SYSM_TEMP], ES_SYSM_LEVEL_OK); /* 79.5 < 80 */
  free(m);
  es_sysmetrics_free(s);
}

static void container_near_its_memory_limit_is_critical_clear_cache(void **state) {
  (void)state;
  es_sysmetrics_t *s = scene("container-512m", "container-full");
  es_sysmetrics_sample_t *m = new_sample();
  two_samples(s, "container-full", m);
  assert_int_equal(m->mem.cg_limit, 512ull << 20);
  assert_int_equal(m->mem.effective_total, 512ull << 20);
  assert_int_equal(m->mem.available, 32ull << 20);
  assert_near(m->mem_pct, 93.75, 1e-9);
  assert_near(m->cpu_pct, 30.0, 1e-9);
  assert_int_equal(m->nclusters, 1);
  assert_near(m->clusters[0].pct, 30.0, 1e-9);
  assert_int_equal(m->nzones, 0);
  assert_false(m->have & ES_SYSM_HAVE_TEMP);
  assert_int_equal(m->rpi_throttled, -1);
  assert_near(m->rx_bps, 262144.0, 1e-9);
  assert_near(m->tx_bps, 65536.0, 1e-9);
  assert_int_equal(m->flags, ES_SYSM_MEMORY_CRITICAL);
  assert_int_equal(m->level[ES_SYSM_MEM], ES_SYSM_LEVEL_CRIT);
  assert_int_equal(m->level[ES_SYSM_CPU], ES_SYSM_LEVEL_OK);
  assert_int_equal(m->action, ES_SYSM_CLEAR_CACHE);
  assert_string_equal(es_sysmetrics_action_str(m->action), "clear cache");
  free(m);
  es_sysmetrics_free(s);
}

static const char *stat_without_cpu3 = "cpu  1000 0 0 9000 0 0 0 0 0 0\n"
                                       "cpu0 100 0 0 1000 0 0 0 0 0 0\n"
                                       "cpu1 100 0 0 1000 0 0 0 0 0 0\n"
                                       "cpu2 100 0 0 1000 0 0 0 0 0 0\n"
                                       "intr 1 2 3\n";
static const char *stat_without_cpu3_later = "cpu  1300 0 0 9300 0 0 0 0 0 0\n"
                                             "cpu0 200 0 0 1100 0 0 0 0 0 0\n"
                                             "cpu1 150 0 0 1150 0 0 0 0 0 0\n"
                                             "cpu2 100 0 0 1200 0 0 0 0 0 0\n";

static void offline_cpu_reports_minus_one_and_is_left_out_of_its_cluster(void **state) {
  (void)state;
  es_sysmetrics_t *s = scene("pi4-1gb", "pi4-hot");
  es_sysmetrics_sample_t *m = new_sample();
  assert_int_equal(tmptree_put(root, "proc/stat", stat_without_cpu3), 0);
  assert_int_equal(es_sysmetrics_sample(s, m, NULL), 0);
  assert_int_equal(tmptree_put(root, "proc/stat", stat_without_cpu3_later), 0);
  fake_now += 1;
  assert_int_equal(es_sysmetrics_sample(s, m, NULL), 0);
  assert_near(m->cores[0].pct, 50.0, 1e-4);
  assert_near(m->cores[1].pct, 25.0, 1e-4);
  assert_near(m->cores[2].pct, 0.0, 1e-4);
  assert_near(m->cores[3].pct, -1.0, 0);
  assert_near(m->clusters[0].pct, 25.0, 1e-9); /* over the 3 online */
  assert_near(m->clusters[0].max_pct, 50.0, 1e-9);
  assert_near(m->cpu_pct, 50.0, 1e-9);
  free(m);
  es_sysmetrics_free(s);
}

static void failed_sample_is_zeroed_and_keeps_the_previous_counters(void **state) {
  (void)state;
  es_sysmetrics_t *s = scene("pi4-1gb", "pi4-hot");
  es_sysmetrics_sample_t *m = new_sample();
  es_error_t err;
  assert_int_equal(es_sysmetrics_sample(s, m, &err), 0);
  char path[512];
  snprintf(path, sizeof path, "%s/proc/stat", root);
  assert_int_equal(unlink(path), 0);
  fake_now += 1;
  assert_int_equal(es_sysmetrics_sample(s, m, &err), ES_EIO);
  assert_non_null(strstr(err.msg, "proc/stat"));
  assert_int_equal(m->seq, 0);
  assert_int_equal(m->ncores, 0);
  overlay("sys", "pi4-hot/t1", root);
  fake_now += 1; /* 2 s after the last good sample */
  assert_int_equal(es_sysmetrics_sample(s, m, &err), 0);
  assert_int_equal(m->seq, 2);
  assert_near(m->interval_s, 2.0, 1e-12);
  assert_near(m->cpu_pct, 95.0, 1e-9);
  assert_near(m->rx_bps, 1000000.0, 1e-6);
  free(m);
  es_sysmetrics_free(s);
}

static void malformed_files_fail_with_eformat_naming_them(void **state) {
  (void)state;
  es_sysmetrics_t *s = scene("pi4-1gb", "pi4-hot");
  es_sysmetrics_sample_t *m = new_sample();
  es_error_t err;
  static const struct {
    const char *rel, *text;
  } bad[] = {
      {"proc/stat", "cpu  1 2 x\n"},
      {"proc/stat", "intr 1 2 3\n"},
      {"proc/loadavg", "high\n"},
      {"proc/net/dev", "h|\nh|\n  eth0: 1 2 3\n"},
      {"sys/class/thermal/thermal_zone0/temp", "warm\n"},
      {"sys/devices/platform/soc/soc:firmware/get_throttled", "zz\n"},
      {"sys/devices/system/cpu/cpu2/cpufreq/scaling_max_freq", "fast\n"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char keep[1 << 16], path[512];
    snprintf(path, sizeof path, "%s/%s", root, bad[i].rel);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(keep, 1, sizeof keep - 1, f);
    fclose(f);
    keep[n] = 0;
    assert_int_equal(tmptree_put(root, bad[i].rel, bad[i].text), 0);
    assert_int_equal(es_sysmetrics_sample(s, m, &err), ES_EFORMAT);
    assert_non_null(strstr(err.msg, bad[i].rel));
    assert_int_equal(m->seq, 0);
    assert_int_equal(tmptree_put(root, bad[i].rel, keep), 0);
  }
  assert_int_equal(es_sysmetrics_sample(s, m, &err), 0);
  assert_int_equal(m->seq, 1);
  free(m);
  es_sysmetrics_free(s);
}

static void disk_usage_comes_from_the_data_dir(void **state) {
  (void)state;
  overlay("hw", "pi4-1gb", root);
  overlay("sys", "pi4-hot/t0", root);
  es_sysmetrics_params_t p = es_sysmetrics_default_params();
  p.root = root;
  p.data_dir = root; /* any directory of this process */
  es_sysmetrics_t *s = es_sysmetrics_new(&p, NULL);
  assert_non_null(s);
  es_sysmetrics_sample_t *m = new_sample();
  assert_int_equal(es_sysmetrics_sample(s, m, NULL), 0);
  assert_true(m->have & ES_SYSM_HAVE_DISK);
  assert_true(m->disk_total > 0);
  assert_true(m->disk_avail <= m->disk_total);
  assert_true(m->disk_pct >= 0 && m->disk_pct <= 100);
  es_sysmetrics_free(s);
  char missing[512];
  snprintf(missing, sizeof missing, "%s/no-such-dir", root);
  p.data_dir = missing;
  s = es_sysmetrics_new(&p, NULL);
  assert_non_null(s);
  assert_int_equal(es_sysmetrics_sample(s, m, NULL), 0);
  assert_false(m->have & ES_SYSM_HAVE_DISK);
  assert_int_equal(m->disk_total, 0);
  free(m);
  es_sysmetrics_free(s);
}

/* ---- the rule table, on synthetic samples ---- */

static es_sysmetrics_sample_t *synthetic(void) {
  es_sysmetrics_sample_t *m = new_sample();
  m->have = ES_SYSM_HAVE_RATES | ES_SYSM_HAVE_DISK | ES_SYSM_HAVE_TEMP;
  m->nclusters = 2;
  m->clusters[0].pct = 50, m->clusters[1].pct = 10;
  m->mem.effective_total = 1000;
  m->mem_pct = 50;
  m->disk_pct = 50;
  m->nzones = 1;
  m->zones[0].ok = 1;
  m->zones[0].temp_c = 50;
  m->max_temp_c = 50;
  return m;
}

static void rule_table_thresholds_are_strict_and_prioritized(void **state) {
  (void)state;
  static const struct {
    double big, mem, temp, passive;
    int throttled;
    unsigned flags;
    int action;
  } rows[] = {
      {50, 50, 50, 0, 0, 0, ES_SYSM_OK},
      {90, 85, 79.9, 0, 0, 0, ES_SYSM_OK}, /* at the threshold is not over it */
      {90.1, 50, 50, 0, 0, ES_SYSM_CPU_MAXED, ES_SYSM_REDUCE_LOAD},
      {50, 85.1, 50, 0, 0, ES_SYSM_MEMORY_CRITICAL, ES_SYSM_CLEAR_CACHE},
      {50, 50, 80, 0, 0, ES_SYSM_THERMAL_LIKELY, ES_SYSM_COOL_DOWN},
      {50, 50, 70, 70, 0, ES_SYSM_THERMAL_LIKELY, ES_SYSM_COOL_DOWN}, /* passive trip */
      {50, 50, 85, 95, 0, 0, ES_SYSM_OK},                             /* trip above 80 wins */
      {50, 50, 40, 0, 1, ES_SYSM_THERMAL_LIKELY, ES_SYSM_COOL_DOWN},  /* capped */
      {95, 50, 82, 0, 0, ES_SYSM_CPU_MAXED | ES_SYSM_THERMAL_LIKELY, ES_SYSM_COOL_DOWN},
      {95, 95, 82, 0, 0, ES_SYSM_CPU_MAXED | ES_SYSM_THERMAL_LIKELY | ES_SYSM_MEMORY_CRITICAL,
       ES_SYSM_CLEAR_CACHE},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    es_sysmetrics_sample_t *m = synthetic();
    m->clusters[0].pct = rows[i].big;
    m->mem_pct = rows[i].mem;
    m->zones[0].temp_c = m->max_temp_c = rows[i].temp;
    m->zones[0].passive_c = rows[i].passive;
    m->throttled = rows[i].throttled;
    es_sysmetrics_assess(m, NULL);
    if (m->flags != rows[i].flags || m->action != rows[i].action)
      fail_msg("row %zu: flags %u action %d", i, m->flags, m->action);
    free(m);
  }
}

static void rule_table_cpu_uses_the_busiest_cluster_and_needs_rates(void **state) {
  (void)state;
  es_sysmetrics_sample_t *m = synthetic();
  m->cpu_pct = 50; /* overall half busy ... */
  m->clusters[0].pct = 10;
  m->clusters[1].pct = 95; /* ... but one cluster maxed */
  es_sysmetrics_assess(m, NULL);
  assert_int_equal(m->flags, ES_SYSM_CPU_MAXED);
  m->have &= ~(unsigned)ES_SYSM_HAVE_RATES;
  es_sysmetrics_assess(m, NULL);
  assert_int_equal(m->flags, 0);
  assert_int_equal(m->level[ES_SYSM_CPU], ES_SYSM_LEVEL_OK);
  m->have |= ES_SYSM_HAVE_RATES;
  m->nclusters = 0; /* no clusters: the overall figure */
  m->cpu_pct = 91;
  es_sysmetrics_assess(m, NULL);
  assert_int_equal(m->flags, ES_SYSM_CPU_MAXED);
  free(m);
}

static void alert_levels_follow_warn_and_crit_thresholds(void **state) {
  (void)state;
  es_sysmetrics_rules_t r = es_sysmetrics_default_rules();
  assert_near(r.warn[ES_SYSM_CPU], 70, 0);
  assert_near(r.crit[ES_SYSM_MEM], 90, 0);
  assert_near(r.warn[ES_SYSM_DISK], 80, 0);
  assert_near(r.crit[ES_SYSM_TEMP], 85, 0);
  es_sysmetrics_sample_t *m = synthetic();
  m->clusters[0].pct = 70;
  m->mem_pct = 89.9;
  m->disk_pct = 95;
  m->max_temp_c = m->zones[0].temp_c = 60;
  es_sysmetrics_assess(m, &r);
  assert_int_equal(m->level[ES_SYSM_CPU], ES_SYSM_LEVEL_WARN);
  assert_int_equal(m->level[ES_SYSM_MEM], ES_SYSM_LEVEL_WARN);
  assert_int_equal(m->level[ES_SYSM_DISK], ES_SYSM_LEVEL_CRIT);
  assert_int_equal(m->level[ES_SYSM_TEMP], ES_SYSM_LEVEL_OK);
  r.warn[ES_SYSM_DISK] = r.crit[ES_SYSM_DISK] = 0; /* disabled */
  m->have &= ~(unsigned)ES_SYSM_HAVE_TEMP;
  m->max_temp_c = 99;
  r.memory_critical_pct = 80; /* user thresholds */
  es_sysmetrics_assess(m, &r);
  assert_int_equal(m->level[ES_SYSM_DISK], ES_SYSM_LEVEL_OK);
  assert_int_equal(m->level[ES_SYSM_TEMP], ES_SYSM_LEVEL_OK); /* no temperature read */
  assert_int_equal(m->flags, ES_SYSM_MEMORY_CRITICAL);
  free(m);
}

static void action_strings_are_the_documented_ones(void **state) {
  (void)state;
  assert_string_equal(es_sysmetrics_action_str(ES_SYSM_OK), "OK");
  assert_string_equal(es_sysmetrics_action_str(ES_SYSM_CLEAR_CACHE), "clear cache");
  assert_string_equal(es_sysmetrics_action_str(ES_SYSM_COOL_DOWN), "wait for the device to cool");
  assert_string_equal(es_sysmetrics_action_str(ES_SYSM_REDUCE_LOAD), "reduce load");
  assert_string_equal(es_sysmetrics_action_str(42), "?");
}

static void new_rejects_bad_params_and_roots(void **state) {
  (void)state;
  es_error_t err;
  assert_null(es_sysmetrics_new(NULL, &err));
  assert_int_equal(err.code, ES_EINVAL);
  es_sysmetrics_params_t p = es_sysmetrics_default_params();
  p.root = root; /* empty directory */
  assert_null(es_sysmetrics_new(&p, &err));
  assert_int_equal(err.code, ES_EIO);
  static char longpath[2000];
  memset(longpath, 'a', sizeof longpath - 1);
  p.root = NULL;
  p.data_dir = longpath;
  assert_null(es_sysmetrics_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
}

static void live_system_samples_are_in_sane_ranges(void **state) {
  (void)state;
  es_sysmetrics_params_t p = es_sysmetrics_default_params();
  p.data_dir = "/";
  es_error_t err;
  es_sysmetrics_t *s = es_sysmetrics_new(&p, &err);
  assert_non_null(s);
  es_sysmetrics_sample_t *m = new_sample();
  for (int round = 0; round < 2; round++) {
    if (round) {
      struct timespec ts = {0, 20 * 1000000L}; /* some ticks pass */
      nanosleep(&ts, NULL);
    }
    int rc = es_sysmetrics_sample(s, m, &err);
    if (rc) fail_msg("%s", err.msg);
  }
  assert_int_equal(m->seq, 2);
  assert_true(m->have & ES_SYSM_HAVE_RATES);
  assert_true(m->have & ES_SYSM_HAVE_DISK);
  assert_true(m->interval_s > 0);
  assert_true(m->ncores >= 1 && m->nclusters >= 1);
  assert_true(m->cpu_pct >= 0 && m->cpu_pct <= 100);
  for (int i = 0; i < m->ncores; i++) assert_true(m->cores[i].pct >= -1 && m->cores[i].pct <= 100);
  assert_true(m->mem.sys_total > 0);
  assert_true(m->mem_pct > 0 && m->mem_pct < 100);
  assert_true(m->disk_total > 0 && m->disk_pct >= 0 && m->disk_pct <= 100);
  assert_true(m->load1 >= 0);
  assert_true(m->rx_bps >= 0 && m->tx_bps >= 0);
  assert_true(m->action >= ES_SYSM_OK && m->action <= ES_SYSM_REDUCE_LOAD);
  free(m);
  es_sysmetrics_free(s);
}

/* ---- the monitor ---- */

typedef struct counter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int n;
} counter_t;

static void count_sample(void *ud, const es_sysmetrics_sample_t *m) {
  counter_t *c = ud;
  assert_true(m->seq >= 2);
  pthread_mutex_lock(&c->mu);
  c->n++;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

/* Waits until c->n >= n; the 10 s bound only keeps a broken build from
 * hanging, it asserts nothing about time. */
static void wait_count(counter_t *c, int n) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 10;
  pthread_mutex_lock(&c->mu);
  while (c->n < n && pthread_cond_timedwait(&c->cv, &c->mu, &dl) != ETIMEDOUT) {
  }
  int got = c->n;
  pthread_mutex_unlock(&c->mu);
  assert_true(got >= n);
}

typedef struct reader {
  es_sysmon_t *mon;
  volatile int *stop;
  int reads;
} reader_t;

static void *read_latest(void *arg) {
  reader_t *r = arg;
  es_sysmetrics_sample_t *m = malloc(sizeof *m);
  while (!__atomic_load_n(r->stop, __ATOMIC_ACQUIRE) || r->reads < 10) {
    assert_int_equal(es_sysmon_latest(r->mon, m), 0);
    assert_true(m->seq >= 1 && m->ncores == 4);
    r->reads++;
  }
  free(m);
  return NULL;
}

static void run_monitor(es_sched_t *sched) {
  overlay("hw", "pi4-1gb", root);
  overlay("sys", "pi4-hot/t0", root);
  counter_t c = {.n = 0};
  pthread_mutex_init(&c.mu, NULL);
  pthread_cond_init(&c.cv, NULL);
  es_sysmon_params_t p = es_sysmon_default_params();
  assert_int_equal(p.interval_ms, 1000);
  p.metrics.root = root;
  p.interval_ms = 10;
  p.on_sample = count_sample;
  p.ud = &c;
  es_error_t err;
  es_sysmon_t *mon = es_sysmon_start(sched, &p, &err);
  assert_non_null(mon);
  es_sysmetrics_sample_t *m = new_sample();
  assert_int_equal(es_sysmon_latest(mon, m), 0); /* the first, synchronous sample */
  assert_true(m->seq >= 1);
  assert_near(m->zones[0].temp_c, 82.0, 1e-9);
  volatile int stop = 0;
  reader_t rd[2] = {{mon, &stop, 0}, {mon, &stop, 0}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, read_latest, &rd[i]), 0);
  wait_count(&c, 3);
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  assert_int_equal(es_sysmon_latest(mon, m), 0);
  assert_true(m->seq >= 3);
  assert_true(m->have & ES_SYSM_HAVE_RATES);
  assert_int_equal(m->action, ES_SYSM_COOL_DOWN);
  assert_int_equal(es_sysmon_last_error(mon), 0);
  es_sysmon_stop(mon);
  free(m);
  pthread_cond_destroy(&c.cv);
  pthread_mutex_destroy(&c.mu);
}

static void monitor_samples_as_low_priority_scheduler_tasks(void **state) {
  (void)state;
  es_sched_params_t sp = es_sched_default_params();
  sp.nworkers = 1;
  es_sched_t *sched = es_sched_new(&sp, NULL);
  assert_non_null(sched);
  run_monitor(sched);
  es_sched_stats_t st;
  es_sched_stats(sched, &st);
  assert_true(st.latency[ES_SCHED_LOW].count >= 3); /* the samples ran as LOW tasks */
  assert_int_equal(st.latency[ES_SCHED_CRITICAL].count, 0);
  es_sched_free(sched);
}

static void monitor_without_scheduler_samples_on_its_timer_thread(void **state) {
  (void)state;
  run_monitor(NULL);
}

static void monitor_reports_refused_tasks_and_stops_cleanly(void **state) {
  (void)state;
  overlay("hw", "pi4-1gb", root);
  overlay("sys", "pi4-hot/t0", root);
  es_sched_t *sched = es_sched_new(NULL, NULL);
  assert_non_null(sched);
  es_sysmon_params_t p = es_sysmon_default_params();
  p.metrics.root = root;
  p.interval_ms = 10;
  es_sysmon_t *mon = es_sysmon_start(sched, &p, NULL);
  assert_non_null(mon);
  assert_int_equal(es_sched_shutdown(sched, ES_SCHED_CANCEL), 0);
  for (int i = 0; i < 1000 && es_sysmon_last_error(mon) == 0; i++) {
    struct timespec ts = {0, 5 * 1000000L};
    nanosleep(&ts, NULL);
  }
  assert_int_equal(es_sysmon_last_error(mon), ES_ESTATE);
  es_sysmetrics_sample_t *m = new_sample();
  assert_int_equal(es_sysmon_latest(mon, m), 0); /* the last good sample stays */
  assert_true(m->seq >= 1);
  es_sysmon_stop(mon);
  es_sched_free(sched);
  free(m);
}

static void monitor_start_rejects_bad_params(void **state) {
  (void)state;
  es_error_t err;
  assert_null(es_sysmon_start(NULL, NULL, &err));
  assert_int_equal(err.code, ES_EINVAL);
  es_sysmon_params_t p = es_sysmon_default_params();
  p.interval_ms = 9;
  assert_null(es_sysmon_start(NULL, &p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  p.interval_ms = 100;
  p.metrics.root = root; /* empty: not a Linux root */
  assert_null(es_sysmon_start(NULL, &p, &err));
  assert_int_equal(err.code, ES_EIO);
  assert_int_equal(es_sysmon_latest(NULL, NULL), ES_EINVAL);
  es_sysmon_stop(NULL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(first_sample_reports_no_rates_and_says_so),
      T(pi4_at_95_percent_and_82c_is_maxed_and_hot),
      T(hot_zone_without_passive_trip_is_thermal_from_80c),
      T(orangepi5_big_busy_little_idle_gives_per_cluster_figures),
      T(orangepi5_recorded_capped_and_over_passive_trip_is_throttled),
      T(container_near_its_memory_limit_is_critical_clear_cache),
      T(offline_cpu_reports_minus_one_and_is_left_out_of_its_cluster),
      T(failed_sample_is_zeroed_and_keeps_the_previous_counters),
      T(malformed_files_fail_with_eformat_naming_them),
      T(disk_usage_comes_from_the_data_dir),
      cmocka_unit_test(rule_table_thresholds_are_strict_and_prioritized),
      cmocka_unit_test(rule_table_cpu_uses_the_busiest_cluster_and_needs_rates),
      cmocka_unit_test(alert_levels_follow_warn_and_crit_thresholds),
      cmocka_unit_test(action_strings_are_the_documented_ones),
      T(new_rejects_bad_params_and_roots),
      cmocka_unit_test(live_system_samples_are_in_sane_ranges),
      T(monitor_samples_as_low_priority_scheduler_tasks),
      T(monitor_without_scheduler_samples_on_its_timer_thread),
      T(monitor_reports_refused_tasks_and_stops_cleanly),
      T(monitor_start_rejects_bad_params),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
