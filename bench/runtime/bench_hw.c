/*
 * bench_hw.c - what one memory sample and one hardware detection cost, next
 * to the raw reads they are made of and to the alternative memstat.c
 * rejected (/proc/self/smaps_rollup), with a small process and again after
 * the process has 256 MiB resident (smaps_rollup walks the pages).
 *
 * Build and run (about 4 s):
 *   gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Iinclude bench/runtime/bench_hw.c \
 *     src/runtime/hw.c src/runtime/memstat.c src/runtime/sysfs.c src/common/error.c \
 *     -o /tmp/bench_hw
 *   /tmp/bench_hw [FIXTURE_ROOT]   (default tests/fixtures/hw/intel-hybrid)
 * Prints a markdown table: microseconds per call and the ratio to
 * es_memstat_read().
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/clock.h"
#include "edgeserve/hw.h"
#include "edgeserve/memstat.h"

#define MiB     (1024ull * 1024ull)
#define RUN_SEC 0.3

static volatile uint64_t sink;
static const char *fixture_root = "tests/fixtures/hw/intel-hybrid";
static es_hw_t hw;

typedef void (*op_fn)(void);

static void read_whole(const char *path) {
  char buf[8192];
  int fd = open(path, O_RDONLY);
  if (fd < 0) return;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) sink += (uint64_t)n;
  close(fd);
}

static void op_memstat(void) {
  es_memstat_t m;
  if (es_memstat_read(&m, NULL, NULL) == 0) sink += m.rss;
}
static void op_status_raw(void) { read_whole("/proc/self/status"); }
static void op_meminfo_raw(void) { read_whole("/proc/meminfo"); }
static void op_smaps_rollup_raw(void) { read_whole("/proc/self/smaps_rollup"); }
static void op_detect_live(void) {
  if (es_hw_detect(&hw, NULL, NULL) == 0) sink += (uint64_t)hw.ncpus;
}
static void op_detect_fixture(void) {
  if (es_hw_detect(&hw, fixture_root, NULL) == 0) sink += (uint64_t)hw.ncpus;
}

/* Microseconds per call, timed over about RUN_SEC seconds. */
static double time_op(op_fn op) {
  for (int i = 0; i < 10; i++) op(); /* warm the dentry cache */
  uint64_t n = 0, batch = 1;
  double t0 = es__mono_sec(), t;
  do {
    for (uint64_t i = 0; i < batch; i++) op();
    n += batch;
    if (batch < 1024) batch *= 2;
    t = es__mono_sec() - t0;
  } while (t < RUN_SEC);
  return t / (double)n * 1e6;
}

int main(int argc, char **argv) {
  if (argc > 1) fixture_root = argv[1];
  static const struct {
    const char *name;
    op_fn op;
  } ops[] = {
      {"es_memstat_read (status + meminfo + cgroup)", op_memstat},
      {"read /proc/self/status (raw, no parsing)", op_status_raw},
      {"read /proc/meminfo (raw, no parsing)", op_meminfo_raw},
      {"read /proc/self/smaps_rollup (raw, rejected)", op_smaps_rollup_raw},
      {"es_hw_detect (live system)", op_detect_live},
      {"es_hw_detect (recorded tree)", op_detect_fixture},
  };
  enum { NOPS = sizeof ops / sizeof ops[0] };
  double small[NOPS], big[NOPS];
  for (int i = 0; i < NOPS; i++) small[i] = time_op(ops[i].op);

  size_t n = 256 * MiB; /* a resident model-sized heap */
  unsigned char *heap = malloc(n);
  if (!heap) return 1;
  memset(heap, 1, n);
  for (int i = 0; i < NOPS; i++) big[i] = time_op(ops[i].op);
  sink += heap[n / 2];
  free(heap);

  es_memstat_read(&hw.mem, NULL, NULL);
  es_hw_detect(&hw, NULL, NULL);
  printf("live: %d CPUs, %d clusters, %d thermal zones; recorded tree: %s\n\n", hw.ncpus,
         hw.nclusters, hw.nzones, fixture_root);
  printf("| call | us/call, RSS ~2 MiB | ratio | us/call, RSS +256 MiB | ratio |\n");
  printf("|---|---:|---:|---:|---:|\n");
  for (int i = 0; i < NOPS; i++)
    printf("| %s | %.1f | %.2f | %.1f | %.2f |\n", ops[i].name, small[i], small[i] / small[0],
           big[i], big[i] / big[0]);
  return 0;
}
