/* test_memstat.c - memory samples from recorded trees (tests/fixtures/hw/),
 * from small trees written to a temporary directory, and from this process. */
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
#include <unistd.h>

#include "tmptree.h"
#include "edgeserve/memstat.h"

#define KB  1024ull
#define MIB (1024ull * 1024)

/* tests/fixtures/hw/<name> (tmptree.h) */
static const char *fixture(const char *name) {
  static char path[1024];
  return tmptree_fixture("hw", name, path, sizeof path);
}

static char tmp_root[256];

static void put(const char *rel, const char *text) {
  if (tmptree_put(tmp_root, rel, text)) fail_msg("%s/%s: %s", tmp_root, rel, strerror(errno));
}

/* 2 GiB of RAM, 1.5 GiB available; no status file, no cgroup. */
static int make_tree(void **state) {
  (void)state;
  if (tmptree_new(tmp_root, sizeof tmp_root, "es_memstat_")) return -1;
  put("proc/meminfo", "MemTotal:        2097152 kB\nMemFree:          524288 kB\n"
                      "MemAvailable:    1572864 kB\nBuffers:           65536 kB\n"
                      "Cached:          1048576 kB\nSwapCached:            0 kB\n"
                      "SwapTotal:        1048576 kB\nSwapFree:         1044480 kB\n");
  return 0;
}

static int remove_tree(void **state) {
  (void)state;
  tmptree_rm(tmp_root);
  return 0;
}

static void sample_tmp(es_memstat_t *m) {
  es_error_t err = {0};
  int rc = es_memstat_read(m, tmp_root, &err);
  if (rc) fail_msg("tmp tree: %d %s", rc, err.msg);
}

static void container_sample_has_every_field(void **state) {
  (void)state;
  es_memstat_t m;
  es_error_t err = {0};
  assert_int_equal(es_memstat_read(&m, fixture("container-512m"), &err), 0);
  assert_int_equal(m.rss, 262144 * KB);
  assert_int_equal(m.rss_anon, 57344 * KB);
  assert_int_equal(m.rss_file, 204800 * KB);
  assert_int_equal(m.rss_shmem, 0);
  assert_int_equal(m.rss_peak, 268412 * KB);
  assert_int_equal(m.sys_total, 32346676 * KB);
  assert_int_equal(m.sys_available, 30533220 * KB);
  assert_int_equal(m.swap_total, 0);
  assert_int_equal(m.cg_version, 2);
  assert_int_equal(m.cg_limit, 512 * MIB);
  assert_int_equal(m.cg_usage, 288 * MIB);
  assert_int_equal(m.available, 224 * MIB); /* the cgroup binds, not the host */
  assert_int_equal(m.effective_total, 512 * MIB);
}

static void pi4_sample_without_memory_controller(void **state) {
  (void)state;
  es_memstat_t m;
  es_error_t err = {0};
  assert_int_equal(es_memstat_read(&m, fixture("pi4-1gb"), &err), 0);
  assert_int_equal(m.rss, 143360 * KB);
  assert_int_equal(m.rss_anon + m.rss_file + m.rss_shmem, m.rss);
  assert_int_equal(m.rss_peak, 150212 * KB);
  assert_int_equal(m.sys_total, 944268 * KB);
  assert_int_equal(m.swap_total, 102396 * KB);
  assert_int_equal(m.swap_free, 102396 * KB);
  assert_int_equal(m.cg_version, 0);
  assert_int_equal(m.cg_limit, 0);
  assert_int_equal(m.available, 731872 * KB);
  assert_int_equal(m.effective_total, 944268 * KB);
}

static void missing_status_and_cgroup_are_not_errors(void **state) {
  (void)state;
  es_memstat_t m;
  sample_tmp(&m);
  assert_int_equal(m.rss, 0);
  assert_int_equal(m.rss_anon, 0);
  assert_int_equal(m.cg_version, 0);
  assert_int_equal(m.sys_total, 2048 * MIB);
  assert_int_equal(m.available, 1536 * MIB);
  assert_int_equal(m.effective_total, 2048 * MIB);
  assert_int_equal(m.swap_free, 1020 * MIB);
}

static void missing_meminfo_is_an_io_error(void **state) {
  (void)state;
  es_memstat_t m;
  es_error_t err = {0};
  assert_int_equal(es_memstat_read(&m, "/nonexistent/edgeserve-root", &err), ES_EIO);
  assert_non_null(strstr(err.msg, "/nonexistent/edgeserve-root/proc/meminfo"));
  assert_int_equal(m.sys_total, 0);
}

static void old_kernel_available_is_free_plus_cached(void **state) {
  (void)state;
  es_memstat_t m;
  put("proc/meminfo", "MemTotal:        2097152 kB\nMemFree:          524288 kB\n"
                      "Buffers:           65536 kB\nCached:          1048576 kB\n");
  sample_tmp(&m);
  assert_int_equal(m.sys_available, 1536 * MIB);
}

static void malformed_fields_name_the_file(void **state) {
  (void)state;
  es_memstat_t m;
  es_error_t err = {0};
  put("proc/self/status", "Name:\tx\nVmHWM:\t    1000 kB\nVmRSS:\t  lots kB\n");
  assert_int_equal(es_memstat_read(&m, tmp_root, &err), ES_EFORMAT);
  assert_non_null(strstr(err.msg, "proc/self/status"));
  assert_non_null(strstr(err.msg, "VmRSS"));
  assert_int_equal(m.rss_peak, 0); /* nothing half-filled */

  put("proc/self/status", "VmRSS:\t    1000 kB\n");
  put("proc/meminfo", "MemFree:          524288 kB\n");
  assert_int_equal(es_memstat_read(&m, tmp_root, &err), ES_EFORMAT);
  assert_non_null(strstr(err.msg, "proc/meminfo"));
  assert_non_null(strstr(err.msg, "MemTotal"));
}

static void tightest_ancestor_limit_binds(void **state) {
  (void)state;
  es_memstat_t m;
  /* systemd: MemoryMax= on the slice, none on the service */
  put("proc/self/cgroup", "0::/serve.slice/edgeserve.service\n");
  put("sys/fs/cgroup/serve.slice/edgeserve.service/memory.max", "max\n");
  put("sys/fs/cgroup/serve.slice/edgeserve.service/memory.current", "104857600\n");
  put("sys/fs/cgroup/serve.slice/memory.max", "268435456\n");
  put("sys/fs/cgroup/serve.slice/memory.current", "209715200\n");
  sample_tmp(&m);
  assert_int_equal(m.cg_version, 2);
  assert_int_equal(m.cg_limit, 256 * MIB);
  assert_int_equal(m.cg_usage, 200 * MIB); /* the slice's: its headroom is what binds */
  assert_int_equal(m.available, 56 * MIB);
  assert_int_equal(m.effective_total, 256 * MIB);
}

static void usage_above_limit_leaves_nothing_available(void **state) {
  (void)state;
  es_memstat_t m;
  put("proc/self/cgroup", "7:memory:/\n");
  put("sys/fs/cgroup/memory/memory.limit_in_bytes", "104857600\n");
  put("sys/fs/cgroup/memory/memory.usage_in_bytes", "110100480\n");
  sample_tmp(&m);
  assert_int_equal(m.cg_version, 1);
  assert_int_equal(m.available, 0);
  assert_int_equal(m.effective_total, 100 * MIB);
}

static void v1_memory_line_wins_on_hybrid_hosts(void **state) {
  (void)state;
  es_memstat_t m;
  /* hybrid: the v2 hierarchy exists but holds no memory controller */
  put("proc/self/cgroup", "4:memory:/app\n1:cpu:/\n0::/\n");
  put("sys/fs/cgroup/memory/app/memory.limit_in_bytes", "1073741824\n");
  put("sys/fs/cgroup/memory/app/memory.usage_in_bytes", "1048576\n");
  put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  put("sys/fs/cgroup/unified/cgroup.procs", "1\n");
  sample_tmp(&m);
  assert_int_equal(m.cg_version, 1);
  assert_int_equal(m.cg_limit, 1024 * MIB);
  assert_int_equal(m.cg_usage, 1 * MIB);
  assert_int_equal(m.available, 1023 * MIB);
}

static void live_sample_sees_anonymous_memory_grow(void **state) {
  (void)state;
  es_memstat_t before, after;
  es_error_t err = {0};
  assert_int_equal(es_memstat_read(&before, NULL, &err), 0);
  assert_true(before.rss > 0);
  assert_true(before.sys_total > 0);
  assert_true(before.available <= before.sys_available);
  assert_true(before.effective_total > 0 && before.effective_total <= before.sys_total);

  size_t n = 32 * MIB;
  unsigned char *buf = malloc(n);
  assert_non_null(buf);
  memset(buf, 1, n); /* touch every page */
  assert_int_equal(es_memstat_read(&after, "/", &err), 0);
  unsigned sum = 0;
  for (size_t i = 0; i < n; i += 4096) sum += buf[i];
  free(buf);
  assert_int_equal(sum, n / 4096);
  /* RssAnon is a per-CPU-batched counter: allow some slack below 32 MiB */
  assert_true(after.rss_anon >= before.rss_anon + 24 * MIB);
  assert_true(after.rss >= before.rss + 24 * MIB);
  assert_true(after.rss_peak >= after.rss);
}

/* Samples share nothing: threads sampling at once all read the same figures. */
static void *sample_many(void *root) {
  for (int i = 0; i < 200; i++) {
    es_memstat_t m;
    if (es_memstat_read(&m, root, NULL) || m.available != 224 * MIB || m.rss_anon != 57344 * KB)
      return (void *)1;
  }
  return NULL;
}

static void concurrent_samples_agree(void **state) {
  (void)state;
  char root[1024];
  snprintf(root, sizeof root, "%s", fixture("container-512m"));
  pthread_t t[4];
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, sample_many, root), 0);
  for (int i = 0; i < 4; i++) {
    void *rc;
    assert_int_equal(pthread_join(t[i], &rc), 0);
    assert_null(rc);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(container_sample_has_every_field),
      cmocka_unit_test(pi4_sample_without_memory_controller),
      cmocka_unit_test_setup_teardown(missing_status_and_cgroup_are_not_errors, make_tree,
                                      remove_tree),
      cmocka_unit_test(missing_meminfo_is_an_io_error),
      cmocka_unit_test_setup_teardown(old_kernel_available_is_free_plus_cached, make_tree,
                                      remove_tree),
      cmocka_unit_test_setup_teardown(malformed_fields_name_the_file, make_tree, remove_tree),
      cmocka_unit_test_setup_teardown(tightest_ancestor_limit_binds, make_tree, remove_tree),
      cmocka_unit_test_setup_teardown(usage_above_limit_leaves_nothing_available, make_tree,
                                      remove_tree),
      cmocka_unit_test_setup_teardown(v1_memory_line_wins_on_hybrid_hosts, make_tree, remove_tree),
      cmocka_unit_test(live_sample_sees_anonymous_memory_grow),
      cmocka_unit_test(concurrent_samples_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
