/*
 * memstat.h - how much memory this process uses and how much it can still get.
 *
 * One sample reads /proc/self/status (resident set, split anonymous / file /
 * shared), /proc/meminfo (the system) and the process's cgroup (v2
 * memory.max / memory.current, or v1 memory.limit_in_bytes /
 * memory.usage_in_bytes). Every path is read under a root directory, so tests
 * run on recorded trees (tests/fixtures/hw/NAME/...); NULL or "/" is the live
 * system. The memory budget (budget.h) consumes samples; it never reads /proc
 * itself, so its policy is tested with synthetic samples.
 *
 *   es_memstat_t s;
 *   if (es_memstat_read(&s, NULL, NULL) == 0 && s.available < need) ... // about 70 us
 */
#ifndef EDGESERVE_MEMSTAT_H
#define EDGESERVE_MEMSTAT_H

#include <stdint.h>

#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* All sizes in bytes; 0 where the source does not say. */
typedef struct es_memstat {
  /* this process (/proc/self/status) */
  uint64_t rss;       /* VmRSS */
  uint64_t rss_anon;  /* RssAnon: private heap and stacks, what OOM counts */
  uint64_t rss_file;  /* RssFile: mapped files (models), reclaimable cache */
  uint64_t rss_shmem; /* RssShmem */
  uint64_t rss_peak;  /* VmHWM */
  /* the system (/proc/meminfo) */
  uint64_t sys_total;     /* MemTotal */
  uint64_t sys_available; /* MemAvailable (MemFree + Cached on old kernels) */
  uint64_t swap_total, swap_free;
  /* the process's memory cgroup; cg_limit 0 = no limit ("max", or v1's
   * "unlimited" >= 2^60). The limit is the tightest among the process's
   * cgroup and its ancestors (a MemoryMax= on a slice binds its services),
   * cg_usage the usage of the cgroup that sets it (of the process's own
   * cgroup when nothing limits); usage counts page cache too. */
  int cg_version; /* 1, 2, or 0 when no memory controller was found */
  uint64_t cg_limit, cg_usage;
  /* derived: what this process may still allocate =
   * min(sys_available, cg_limit - cg_usage when limited) */
  uint64_t available;
  /* derived: the memory this process may use at most = min(sys_total, cg_limit) */
  uint64_t effective_total;
} es_memstat_t;

/* Takes one sample under `root` (NULL or "/" for the live system). Returns 0
 * and fills *out, or a negative ES_E* code (ES_EIO when /proc/meminfo cannot
 * be read, ES_EFORMAT when it has no MemTotal or a field of any file read
 * does not parse, the message naming the file) with *err filled when not NULL
 * and *out zeroed. A missing cgroup or /proc/self/status is not an error:
 * those fields stay 0. Allocates nothing (under 5 KB of stack); safe from any
 * thread; about 70 us on a 2-core VM (docs/runtime/hw.md). */
int es_memstat_read(es_memstat_t *out, const char *root, es_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
