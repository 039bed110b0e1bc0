/* test_hw.c - hardware detection on recorded trees (tests/fixtures/hw/) and
 * on small trees written to a temporary directory, plus one run on the live
 * system. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmptree.h"
#include "edgeserve/hw.h"
#include "../../src/runtime/sysfs.h"

#define KB  1024ull
#define MIB (1024ull * 1024)

/* tests/fixtures/hw/<name> (tmptree.h) */
static const char *fixture(const char *name) {
  static char path[1024];
  return tmptree_fixture("hw", name, path, sizeof path);
}

static void detect_fixture(const char *name, es_hw_t *hw) {
  es_error_t err = {0};
  int rc = es_hw_detect(hw, fixture(name), &err);
  if (rc) fail_msg("%s: %d %s", name, rc, err.msg);
}

/* ---- temporary trees ------------------------------------------------------ */

static char tmp_root[256];

static void put(const char *rel, const char *text) {
  if (tmptree_put(tmp_root, rel, text)) fail_msg("%s/%s: %s", tmp_root, rel, strerror(errno));
}

/* A minimal valid machine: 4 CPUs at 2 GHz, 1 GiB, cgroup v2 at the root. */
static int make_tree(void **state) {
  (void)state;
  if (tmptree_new(tmp_root, sizeof tmp_root, "es_hw_")) return -1;
  put("proc/cpuinfo", "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse4_2 avx2\n\n"
                      "processor\t: 1\nmodel name\t: Test CPU\nflags\t\t: fpu sse4_2 avx2\n\n"
                      "processor\t: 2\nmodel name\t: Test CPU\nflags\t\t: fpu sse4_2 avx2\n\n"
                      "processor\t: 3\nmodel name\t: Test CPU\nflags\t\t: fpu sse4_2 avx2\n\n");
  put("proc/meminfo", "MemTotal:        1048576 kB\nMemFree:          524288 kB\n"
                      "MemAvailable:     786432 kB\nCached:           131072 kB\n"
                      "SwapTotal:              0 kB\nSwapFree:               0 kB\n");
  put("proc/self/cgroup", "0::/\n");
  put("sys/devices/system/cpu/online", "0-3\n");
  for (int i = 0; i < 4; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "sys/devices/system/cpu/cpu%d/cpufreq/cpuinfo_max_freq", i);
    put(rel, "2000000\n");
  }
  return 0;
}

static int remove_tree(void **state) {
  (void)state;
  tmptree_rm(tmp_root);
  return 0;
}

static void detect_tmp(es_hw_t *hw) {
  es_error_t err = {0};
  int rc = es_hw_detect(hw, tmp_root, &err);
  if (rc) fail_msg("tmp tree: %d %s", rc, err.msg);
}

static void set_cpu_khz(int cpu, const char *khz) {
  char rel[128];
  snprintf(rel, sizeof rel, "sys/devices/system/cpu/cpu%d/cpufreq/cpuinfo_max_freq", cpu);
  put(rel, khz);
}

/* Invariants every detection keeps (hw.c invariants 3 and 5). */
static void check_invariants(const es_hw_t *hw) {
  int sum = 0, primaries = 0;
  assert_true(hw->nclusters >= 1 && hw->nclusters <= ES_HW_MAX_CLUSTERS);
  for (int c = 0; c < hw->nclusters; c++) {
    sum += hw->clusters[c].ncpus;
    assert_int_equal(hw->clusters[c].big, c == 0 && hw->nclusters > 1);
    if (c > 0)
      assert_true(hw->clusters[c].max_khz <= hw->clusters[c - 1].max_khz ||
                  hw->clusters[c].capacity < hw->clusters[c - 1].capacity);
  }
  assert_int_equal(sum, hw->ncpus);
  for (int i = 0; i < hw->ncpus; i++) {
    if (i > 0) assert_true(hw->cpus[i].id > hw->cpus[i - 1].id);
    assert_true(hw->cpus[i].cluster >= 0 && hw->cpus[i].cluster < hw->nclusters);
    primaries += hw->cpus[i].smt_primary;
  }
  assert_int_equal(primaries, hw->physical_cores);
}

/* ---- recorded machines ------------------------------------------------------ */

static void pi4_is_one_cluster_of_four_cortex_a72(void **state) {
  (void)state;
  static es_hw_t hw;
  detect_fixture("pi4-1gb", &hw);
  check_invariants(&hw);
  assert_int_equal(hw.ncpus, 4);
  assert_int_equal(hw.nclusters, 1);
  assert_int_equal(hw.clusters[0].ncpus, 4);
  assert_int_equal(hw.clusters[0].big, 0);
  assert_int_equal(hw.clusters[0].max_khz, 1500000);
  assert_int_equal(hw.clusters[0].capacity, 1024);
  assert_int_equal(hw.physical_cores, 4);
  assert_string_equal(hw.cpu_model, "Cortex-A72");
  assert_string_equal(hw.board, "Raspberry Pi 4 Model B Rev 1.1"); /* NUL-terminated in the DT */
  assert_int_equal(hw.simd, ES_HW_NEON);
  assert_int_equal(hw.cpus[2].cur_khz, 600000);
  assert_int_equal(hw.throttled, 0); /* idle at 600 MHz is not throttling */
  assert_int_equal(hw.nvidia_gpus, 0);
  assert_true(hw.cpu_quota == 0.0);
  assert_int_equal(es_hw_effective_cpus(&hw), 4);
}

static void pi4_memory_and_temperature(void **state) {
  (void)state;
  static es_hw_t hw;
  detect_fixture("pi4-1gb", &hw);
  assert_int_equal(hw.mem.sys_total, 944268 * KB);
  assert_int_equal(hw.mem.sys_available, 731872 * KB);
  assert_int_equal(hw.mem.swap_total, 102396 * KB);
  assert_int_equal(hw.mem.cg_version, 0); /* Raspberry Pi OS: no memory controller */
  assert_int_equal(hw.mem.effective_total, 944268 * KB);
  assert_int_equal(hw.mem.available, 731872 * KB);
  assert_int_equal(hw.nzones, 1);
  assert_string_equal(hw.zones[0].type, "cpu-thermal");
  assert_true(hw.zones[0].temp_c == 51.121);
  assert_true(hw.zones[0].crit_c == 90.0);
  assert_true(hw.zones[0].passive_c == 0.0);
  assert_true(es_hw_max_temp(&hw) == 51.121);
}

static void orangepi5_puts_the_a76_cluster_first(void **state) {
  (void)state;
  static es_hw_t hw;
  detect_fixture("orangepi5", &hw);
  check_invariants(&hw);
  assert_int_equal(hw.ncpus, 8);
  assert_int_equal(hw.nclusters, 2);
  assert_int_equal(hw.clusters[0].ncpus, 4);
  assert_int_equal(hw.clusters[0].big, 1);
  assert_int_equal(hw.clusters[0].capacity, 1024);
  assert_int_equal(hw.clusters[0].max_khz, 2400000);
  assert_int_equal(hw.clusters[1].ncpus, 4);
  assert_int_equal(hw.clusters[1].big, 0);
  assert_int_equal(hw.clusters[1].capacity, 397);
  assert_int_equal(hw.clusters[1].max_khz, 1800000);
  for (int i = 0; i < 8; i++) assert_int_equal(hw.cpus[i].cluster, i < 4 ? 1 : 0);
  assert_int_equal(hw.physical_cores, 8);
  assert_string_equal(hw.cpu_model, "Cortex-A76 + Cortex-A55");
  assert_string_equal(hw.board, "Orange Pi 5");
  assert_int_equal(hw.simd, ES_HW_NEON | ES_HW_DOTPROD);
  assert_int_equal(hw.mem.cg_version, 2);
  assert_int_equal(hw.mem.cg_limit, 0); /* "max" all the way up */
  assert_int_equal(hw.mem.cg_usage, 1318006784);
  assert_int_equal(hw.mem.effective_total, 7917760 * KB);
}

static void orangepi5_capped_a76_is_throttled(void **state) {
  (void)state;
  static es_hw_t hw;
  detect_fixture("orangepi5", &hw);
  assert_int_equal(hw.throttled, 1);
  assert_int_equal(hw.cpus[4].max_khz, 2400000);
  assert_int_equal(hw.cpus[4].cap_khz, 2016000);
  assert_int_equal(hw.nzones, 7);
  assert_string_equal(hw.zones[0].type, "soc-thermal");
  assert_true(hw.zones[0].passive_c == 75.0); /* the lower of 75 and 85 */
  assert_true(hw.zones[0].crit_c == 115.0);
  assert_string_equal(hw.zones[6].type, "npu-thermal");
  assert_true(es_hw_max_temp(&hw) == 79.538); /* bigcore0 */
}

static void intel_hybrid_splits_p_and_e_cores(void **state) {
  (void)state;
  static es_hw_t hw;
  detect_fixture("intel-hybrid", &hw);
  check_invariants(&hw);
  assert_int_equal(hw.ncpus, 16);
  assert_int_equal(hw.nclusters, 2);
  assert_int_equal(hw.clusters[0].ncpus, 8); /* 4 P-cores x 2 threads */
  assert_int_equal(hw.clusters[0].max_khz, 4700000);
  assert_int_equal(hw.clusters[0].big, 1);
  assert_int_equal(hw.clusters[0].capacity, 0);
  assert_int_equal(hw.clusters[1].ncpus, 8);
  assert_int_equal(hw.clusters[1].max_khz, 3400000);
  assert_int_equal(hw.physical_cores, 12);
  assert_int_equal(hw.cpus[0].smt_primary, 1);
  assert_int_equal(hw.cpus[1].smt_primary, 0);
  assert_int_equal(hw.cpus[6].smt_primary, 1);
  assert_int_equal(hw.cpus[7].smt_primary, 0);
  assert_int_equal(hw.cpus[8].smt_primary, 1);
  assert_int_equal(hw.cpus[8].core_id, 16);
  assert_string_equal(hw.cpu_model, "12th Gen Intel(R) Core(TM) i7-1260P");
  assert_string_equal(hw.board, "Dell Inc. Vostro 5620");
  assert_int_equal(hw.simd, ES_HW_SSE42 | ES_HW_AVX2 | ES_HW_FMA); /* no AVX-512 on Alder Lake */
}

static void intel_hybrid_finds_the_nvidia_gpu(void **state) {
  (void)state;
  static es_hw_t hw;
  detect_fixture("intel-hybrid", &hw);
  assert_int_equal(hw.nvidia_gpus, 1); /* the Intel VGA at 00:02.0 does not count */
  assert_string_equal(hw.gpu_name, "NVIDIA GeForce MX570");
}

static void intel_hybrid_zero_trip_points_are_not_throttling(void **state) {
  (void)state;
  static es_hw_t hw;
  detect_fixture("intel-hybrid", &hw);
  assert_int_equal(hw.nzones, 2); /* iwlwifi_1 has no readable temperature */
  assert_string_equal(hw.zones[0].type, "acpitz");
  assert_true(hw.zones[0].crit_c == 119.0);
  assert_string_equal(hw.zones[1].type, "x86_pkg_temp");
  assert_true(hw.zones[1].temp_c == 47.0);
  assert_true(hw.zones[1].passive_c == 0.0); /* its two passive trips read 0: unset */
  assert_int_equal(hw.throttled, 0);
  assert_int_equal(hw.mem.cg_version, 2);
  assert_int_equal(hw.mem.cg_usage, 437694464); /* the leaf scope's */
}

static void container_limits_memory_and_cpu(void **state) {
  (void)state;
  static es_hw_t hw;
  detect_fixture("container-512m", &hw);
  check_invariants(&hw);
  assert_int_equal(hw.ncpus, 8);
  assert_int_equal(hw.physical_cores, 4); /* siblings "0,4" */
  assert_int_equal(hw.cpus[4].smt_primary, 0);
  assert_int_equal(hw.nclusters, 1); /* no cpu_capacity, no cpufreq in the VM */
  assert_int_equal(hw.clusters[0].ncpus, 8);
  assert_int_equal(hw.clusters[0].max_khz, 0);
  assert_true(hw.cpu_quota == 1.5);
  assert_int_equal(es_hw_effective_cpus(&hw), 2);
  assert_int_equal(hw.mem.cg_version, 2);
  assert_int_equal(hw.mem.cg_limit, 512 * MIB);
  assert_int_equal(hw.mem.cg_usage, 288 * MIB);
  assert_int_equal(hw.mem.effective_total, 512 * MIB);
  assert_int_equal(hw.mem.available, 224 * MIB);
  assert_int_equal(hw.mem.sys_total, 32346676 * KB); /* the host's, as /proc shows it */
  assert_string_equal(hw.cpu_model, "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz");
  assert_string_equal(hw.board, "Amazon EC2 m6i.2xlarge");
  assert_true(hw.simd & ES_HW_AVX512F);
  assert_int_equal(hw.nzones, 0);
  assert_true(es_hw_max_temp(&hw) == 0.0);
  assert_int_equal(hw.throttled, 0);
  assert_int_equal(hw.nvidia_gpus, 0);
}

/* ---- temporary trees ---------------------------------------------------------- */

static void cgroup_v1_limits_are_found_from_the_container_mount(void **state) {
  (void)state;
  static es_hw_t hw;
  /* Docker on cgroup v1: /proc/self/cgroup names the host's path, the
   * container sees its own cgroup at the mount's root */
  put("proc/self/cgroup", "12:memory:/docker/3f9a\n5:cpu,cpuacct:/docker/3f9a\n"
                          "1:name=systemd:/docker/3f9a\n0::/system.slice/containerd.service\n");
  put("sys/fs/cgroup/memory/memory.limit_in_bytes", "268435456\n");
  put("sys/fs/cgroup/memory/memory.usage_in_bytes", "104857600\n");
  put("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "200000\n");
  put("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  detect_tmp(&hw);
  assert_int_equal(hw.mem.cg_version, 1);
  assert_int_equal(hw.mem.cg_limit, 256 * MIB);
  assert_int_equal(hw.mem.cg_usage, 100 * MIB);
  assert_int_equal(hw.mem.effective_total, 256 * MIB);
  assert_int_equal(hw.mem.available, 156 * MIB);
  assert_true(hw.cpu_quota == 2.0);
  assert_int_equal(es_hw_effective_cpus(&hw), 2);
}

static void cgroup_v1_unlimited_means_no_limit(void **state) {
  (void)state;
  static es_hw_t hw;
  put("proc/self/cgroup", "4:memory:/user.slice\n2:cpu,cpuacct:/user.slice\n");
  put("sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes", "9223372036854771712\n");
  put("sys/fs/cgroup/memory/user.slice/memory.usage_in_bytes", "52428800\n");
  put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  put("sys/fs/cgroup/cpu,cpuacct/user.slice/cpu.cfs_quota_us", "-1\n");
  detect_tmp(&hw);
  assert_int_equal(hw.mem.cg_version, 1);
  assert_int_equal(hw.mem.cg_limit, 0);
  assert_int_equal(hw.mem.cg_usage, 50 * MIB);
  assert_int_equal(hw.mem.effective_total, 1024 * MIB);
  assert_int_equal(hw.mem.available, 768 * MIB);
  assert_true(hw.cpu_quota == 0.0);
  assert_int_equal(es_hw_effective_cpus(&hw), 4);
}

static void tightest_ancestor_quota_wins(void **state) {
  (void)state;
  static es_hw_t hw;
  put("proc/self/cgroup", "0::/serve.slice/edgeserve.service\n");
  put("sys/fs/cgroup/serve.slice/edgeserve.service/cpu.max", "max 100000\n");
  put("sys/fs/cgroup/serve.slice/cpu.max", "50000 100000\n");
  detect_tmp(&hw);
  assert_true(hw.cpu_quota == 0.5);
  assert_int_equal(es_hw_effective_cpus(&hw), 1);
}

static void favored_cores_share_a_cluster(void **state) {
  (void)state;
  static es_hw_t hw;
  /* Turbo Boost Max 3.0: two favored cores run 100 MHz higher */
  set_cpu_khz(0, "4700000\n");
  set_cpu_khz(1, "4600000\n");
  set_cpu_khz(2, "4700000\n");
  set_cpu_khz(3, "3400000\n");
  detect_tmp(&hw);
  check_invariants(&hw);
  assert_int_equal(hw.nclusters, 2);
  assert_int_equal(hw.clusters[0].ncpus, 3);
  assert_int_equal(hw.clusters[0].max_khz, 4700000);
  assert_int_equal(hw.clusters[1].ncpus, 1);
  assert_int_equal(hw.cpus[1].cluster, 0);
  assert_int_equal(hw.cpus[3].cluster, 1);
}

static void equal_capacity_falls_back_to_frequency(void **state) {
  (void)state;
  static es_hw_t hw;
  /* recent x86 kernels write cpu_capacity 1024 on every CPU */
  for (int i = 0; i < 4; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "sys/devices/system/cpu/cpu%d/cpu_capacity", i);
    put(rel, "1024\n");
  }
  set_cpu_khz(2, "3400000\n");
  set_cpu_khz(3, "3400000\n");
  detect_tmp(&hw);
  check_invariants(&hw);
  assert_int_equal(hw.nclusters, 2);
  assert_int_equal(hw.clusters[0].max_khz, 3400000);
  assert_int_equal(hw.clusters[0].ncpus, 2);
  assert_int_equal(hw.cpus[2].cluster, 0);
  assert_int_equal(hw.cpus[0].cluster, 1);
}

static void capacity_orders_clusters_when_it_differs(void **state) {
  (void)state;
  static es_hw_t hw;
  const char *caps[4] = {"446\n", "446\n", "1024\n", "871\n"}; /* three kinds of core */
  for (int i = 0; i < 4; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "sys/devices/system/cpu/cpu%d/cpu_capacity", i);
    put(rel, caps[i]);
  }
  detect_tmp(&hw);
  check_invariants(&hw);
  assert_int_equal(hw.nclusters, 3);
  assert_int_equal(hw.clusters[0].capacity, 1024);
  assert_int_equal(hw.clusters[1].capacity, 871);
  assert_int_equal(hw.clusters[2].capacity, 446);
  assert_int_equal(hw.clusters[2].ncpus, 2);
  assert_int_equal(hw.cpus[2].cluster, 0);
}

static void offline_cpus_are_left_out(void **state) {
  (void)state;
  static es_hw_t hw;
  put("sys/devices/system/cpu/online", "0-1,3\n");
  put("sys/devices/system/cpu/cpu3/topology/thread_siblings_list", "2-3\n"); /* 2 is offline */
  detect_tmp(&hw);
  check_invariants(&hw);
  assert_int_equal(hw.ncpus, 3);
  assert_int_equal(hw.cpus[2].id, 3);
  assert_int_equal(hw.cpus[2].smt_primary, 1);
  assert_int_equal(hw.physical_cores, 3);
}

static void without_online_file_cpuinfo_counts(void **state) {
  (void)state;
  static es_hw_t hw;
  char path[512];
  snprintf(path, sizeof path, "%s/sys/devices/system/cpu/online", tmp_root);
  assert_int_equal(unlink(path), 0);
  detect_tmp(&hw);
  assert_int_equal(hw.ncpus, 4);
  assert_string_equal(hw.cpu_model, "Test CPU");
  assert_int_equal(hw.simd, ES_HW_SSE42 | ES_HW_AVX2);
}

static void simd_is_what_every_processor_has(void **state) {
  (void)state;
  static es_hw_t hw;
  put("proc/cpuinfo", "processor\t: 0\nflags\t\t: sse4_2 avx2 fma avx512f\n\n"
                      "processor\t: 1\nflags\t\t: sse4_2 avx2 fma\n\n"
                      "processor\t: 2\nflags\t\t: sse4_2 avx2 fma4\n\n");
  detect_tmp(&hw);
  assert_int_equal(hw.simd, ES_HW_SSE42 | ES_HW_AVX2); /* fma4 is not fma */
}

static void malformed_files_are_format_errors_naming_the_file(void **state) {
  (void)state;
  static const struct {
    const char *rel, *text;
  } bad[] = {
      {"sys/devices/system/cpu/online", "zero-three\n"},
      {"sys/devices/system/cpu/cpu1/cpu_capacity", "big\n"},
      {"sys/devices/system/cpu/cpu2/cpufreq/cpuinfo_max_freq", "2 GHz\n"},
      {"sys/devices/system/cpu/cpu0/topology/thread_siblings_list", "0-\n"},
      {"sys/class/thermal/thermal_zone0/temp", "hot\n"},
      {"sys/fs/cgroup/cpu.max", "150000\n"},
      {"sys/fs/cgroup/memory.max", "lots\n"},
      {"proc/meminfo", "MemTotal:       many kB\n"},
      {"proc/cpuinfo", "processor\t: zero\n"},
      {"proc/self/cgroup", "garbage\n"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    static es_hw_t hw;
    es_error_t err = {0};
    assert_int_equal(remove_tree(NULL), 0);
    assert_int_equal(make_tree(NULL), 0);
    if (strstr(bad[i].rel, "thermal")) put("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
    put(bad[i].rel, bad[i].text);
    int rc = es_hw_detect(&hw, tmp_root, &err);
    if (rc != ES_EFORMAT || !strstr(err.msg, bad[i].rel) || !strstr(err.msg, tmp_root))
      fail_msg("%s: rc %d, message \"%s\"", bad[i].rel, rc, err.msg);
    assert_int_equal(err.code, ES_EFORMAT);
    assert_int_equal(hw.ncpus, 0); /* nothing half-filled */
  }
}

static void missing_root_is_an_io_error(void **state) {
  (void)state;
  static es_hw_t hw;
  es_error_t err = {0};
  assert_int_equal(es_hw_detect(&hw, "/nonexistent/edgeserve-hw-root", &err), ES_EIO);
  assert_int_equal(err.code, ES_EIO);
  assert_non_null(strstr(err.msg, "/nonexistent/edgeserve-hw-root/proc/cpuinfo"));
}

/* ---- internal helpers ------------------------------------------------------------ */

static void cpu_lists_parse_ranges_and_singles(void **state) {
  (void)state;
  uint64_t set[ES_HW_MAX_CPUS / 64];
  assert_int_equal(es__parse_cpulist("0-3,6\n", set, ES_HW_MAX_CPUS), 5);
  assert_int_equal(set[0], 0x4full);
  assert_int_equal(es__parse_cpulist("0,4", set, ES_HW_MAX_CPUS), 2);
  assert_int_equal(set[0], 0x11ull);
  assert_int_equal(es__parse_cpulist("", set, ES_HW_MAX_CPUS), 0);
  assert_int_equal(es__parse_cpulist("64-65,511-600", set, ES_HW_MAX_CPUS), 3); /* >= 512 dropped */
  assert_int_equal(set[1], 3ull);
  assert_int_equal(set[7] >> 63, 1ull);
  assert_int_equal(es__parse_cpulist("3-1", set, ES_HW_MAX_CPUS), -1);
  assert_int_equal(es__parse_cpulist("1,,2", set, ES_HW_MAX_CPUS), -1);
  assert_int_equal(es__parse_cpulist("0-3,", set, ES_HW_MAX_CPUS), -1);
  assert_int_equal(es__parse_cpulist("a", set, ES_HW_MAX_CPUS), -1);
}

static void integers_parse_strictly(void **state) {
  (void)state;
  int64_t v;
  assert_int_equal(es__parse_i64(" -1\n", &v), 0);
  assert_int_equal(v, -1);
  assert_int_equal(es__parse_i64("9223372036854771712", &v), 0);
  assert_int_equal(v, 9223372036854771712ll);
  assert_int_equal(es__parse_i64("9223372036854775808", &v), -1);
  assert_int_equal(es__parse_i64("12 kB", &v), -1);
  assert_int_equal(es__parse_i64("", &v), -1);
}

static void long_lines_are_cut_and_their_rest_skipped(void **state) {
  (void)state;
  put("lines", "short\nlonglonglonglonglong\nnext\nlast");
  char path[512], buf[8], *line;
  snprintf(path, sizeof path, "%s/lines", tmp_root);
  es__lines_t l;
  assert_int_equal(es__lines_open(&l, path, buf, sizeof buf), 0);
  assert_int_equal(es__lines_next(&l, &line), 1);
  assert_string_equal(line, "short");
  assert_int_equal(es__lines_next(&l, &line), 1);
  assert_string_equal(line, "longlon"); /* cap - 1 bytes */
  assert_int_equal(es__lines_next(&l, &line), 1);
  assert_string_equal(line, "next");
  assert_int_equal(es__lines_next(&l, &line), 1);
  assert_string_equal(line, "last"); /* no final newline */
  assert_int_equal(es__lines_next(&l, &line), 0);
  es__lines_close(&l);
  assert_int_equal(es__lines_open(&l, "/nonexistent/edgeserve/x", buf, sizeof buf), ES_EIO);
}

/* ---- the live system ------------------------------------------------------------ */

static void live_system_is_detected(void **state) {
  (void)state;
  static es_hw_t hw, again;
  es_error_t err = {0};
  int rc = es_hw_detect(&hw, NULL, &err);
  if (rc) fail_msg("live: %d %s", rc, err.msg);
  check_invariants(&hw);
  assert_true(hw.ncpus >= 1);
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online <= ES_HW_MAX_CPUS) assert_int_equal(hw.ncpus, online);
  assert_true(hw.physical_cores >= 1 && hw.physical_cores <= hw.ncpus);
  assert_true(hw.mem.sys_total > 0);
  assert_true(hw.mem.rss > 0);
  assert_true(hw.mem.effective_total > 0 && hw.mem.effective_total <= hw.mem.sys_total);
  assert_true(hw.mem.available <= hw.mem.sys_available);
  assert_true(es_hw_effective_cpus(&hw) >= 1 && es_hw_effective_cpus(&hw) <= hw.ncpus);
  assert_true(hw.arch[0] != 0);
  assert_int_equal(es_hw_detect(&again, "/", &err), 0); /* "/" is the live system too */
  assert_int_equal(again.ncpus, hw.ncpus);
  assert_int_equal(again.nclusters, hw.nclusters);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pi4_is_one_cluster_of_four_cortex_a72),
      cmocka_unit_test(pi4_memory_and_temperature),
      cmocka_unit_test(orangepi5_puts_the_a76_cluster_first),
      cmocka_unit_test(orangepi5_capped_a76_is_throttled),
      cmocka_unit_test(intel_hybrid_splits_p_and_e_cores),
      cmocka_unit_test(intel_hybrid_finds_the_nvidia_gpu),
      cmocka_unit_test(intel_hybrid_zero_trip_points_are_not_throttling),
      cmocka_unit_test(container_limits_memory_and_cpu),
      cmocka_unit_test_setup_teardown(cgroup_v1_limits_are_found_from_the_container_mount,
                                      make_tree, remove_tree),
      cmocka_unit_test_setup_teardown(cgroup_v1_unlimited_means_no_limit, make_tree, remove_tree),
      cmocka_unit_test_setup_teardown(tightest_ancestor_quota_wins, make_tree, remove_tree),
      cmocka_unit_test_setup_teardown(favored_cores_share_a_cluster, make_tree, remove_tree),
      cmocka_unit_test_setup_teardown(equal_capacity_falls_back_to_frequency, make_tree,
                                      remove_tree),
      cmocka_unit_test_setup_teardown(capacity_orders_clusters_when_it_differs, make_tree,
                                      remove_tree),
      cmocka_unit_test_setup_teardown(offline_cpus_are_left_out, make_tree, remove_tree),
      cmocka_unit_test_setup_teardown(without_online_file_cpuinfo_counts, make_tree, remove_tree),
      cmocka_unit_test_setup_teardown(simd_is_what_every_processor_has, make_tree, remove_tree),
      cmocka_unit_test_setup_teardown(malformed_files_are_format_errors_naming_the_file, make_tree,
                                      remove_tree),
      cmocka_unit_test(missing_root_is_an_io_error),
      cmocka_unit_test(cpu_lists_parse_ranges_and_singles),
      cmocka_unit_test(integers_parse_strictly),
      cmocka_unit_test_setup_teardown(long_lines_are_cut_and_their_rest_skipped, make_tree,
                                      remove_tree),
      cmocka_unit_test(live_system_is_detected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
