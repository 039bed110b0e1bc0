/*
 * hw.h - what machine edgeserve runs on.
 *
 * es_hw_detect() reads procfs and sysfs under a root directory (NULL or "/"
 * for the live system; tests pass recorded trees under tests/fixtures/hw/):
 *
 *   /proc/cpuinfo                          model name, SIMD flags (x86 "flags",
 *                                          ARM "Features"), ARM "Hardware"
 *   /sys/devices/system/cpu/online         online CPUs ("0-3,6")
 *   /sys/devices/system/cpu/cpuN/cpu_capacity            big.LITTLE capacity
 *   /sys/devices/system/cpu/cpuN/cpufreq/{cpuinfo_max_freq,scaling_cur_freq,
 *                                          scaling_max_freq}
 *   /sys/devices/system/cpu/cpuN/topology/{core_id,physical_package_id,
 *                                          thread_siblings_list}
 *   /proc/device-tree/model, else /sys/firmware/devicetree/base/model,
 *   else /sys/class/dmi/id/{sys_vendor,product_name}     the board
 *   /sys/class/thermal/thermal_zoneN/{type,temp,trip_point_*}
 *   /proc/meminfo, the cgroup (through memstat.h), cgroup cpu.max /
 *   cpu.cfs_quota_us + cpu.cfs_period_us                 the CPU quota
 *   /proc/driver/nvidia/gpus/, /sys/bus/pci/devices/ (vendor 0x10de, class
 *   0x03xxxx)                                            NVIDIA GPUs
 *
 * Clusters group CPUs of one kind, fastest first: CPUs are ranked by
 * cpu_capacity when it differs between CPUs, else by cpuinfo_max_freq, and a
 * CPU within 10% of its cluster's fastest joins it (Intel's favored cores run
 * 100 MHz above their siblings and are still one kind). A Raspberry Pi 4 has
 * one cluster of 4, an RK3588 two (4 x A76, 4 x A55), a hybrid Intel laptop
 * two (P and E cores); CPUs with neither capacity nor frequency form one.
 * Nothing here decides policy: the strategy (config.h) turns this into a plan.
 *
 *   es_hw_t *hw = malloc(sizeof *hw);          // 26 KB: keep it off small stacks
 *   es_error_t err;
 *   if (es_hw_detect(hw, NULL, &err)) fprintf(stderr, "%s\n", err.msg);
 *   int threads = hw->clusters[0].ncpus;       // the big cores
 *   if (threads > es_hw_effective_cpus(hw)) threads = es_hw_effective_cpus(hw);
 */
#ifndef EDGESERVE_HW_H
#define EDGESERVE_HW_H

#include <stdint.h>

#include "edgeserve/error.h"
#include "edgeserve/memstat.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_HW_MAX_CPUS     512 /* CPUs numbered from 512 up are left out */
#define ES_HW_MAX_CLUSTERS 8
#define ES_HW_MAX_ZONES    16

/* SIMD feature bits (es_hw_t.simd) */
enum {
  ES_HW_SSE42 = 1u << 0,
  ES_HW_AVX2 = 1u << 1,
  ES_HW_FMA = 1u << 2,
  ES_HW_AVX512F = 1u << 3,
  ES_HW_NEON = 1u << 4, /* ARMv7 "neon" or AArch64 "asimd" */
  ES_HW_DOTPROD = 1u << 5,
};

typedef struct es_hw_cpu {
  int id;          /* logical CPU number */
  int cluster;     /* index into es_hw_t.clusters */
  int core_id;     /* topology/core_id, -1 unknown */
  int package_id;  /* topology/physical_package_id, -1 unknown */
  int smt_primary; /* 1 for the lowest-numbered online thread of its physical
                      core (thread_siblings_list, else core_id + package_id) */
  int capacity;    /* cpu_capacity (1..1024), 0 when sysfs has none */
  int64_t max_khz; /* cpuinfo_max_freq, 0 unknown */
  int64_t cur_khz; /* scaling_cur_freq, 0 unknown */
  int64_t cap_khz; /* scaling_max_freq (the current cap), 0 unknown */
} es_hw_cpu_t;

typedef struct es_hw_cluster {
  int ncpus;
  int capacity;    /* highest cpu_capacity in the cluster, 0 when unknown */
  int64_t max_khz; /* highest cpuinfo_max_freq in the cluster */
  int big;         /* 1 for the fastest cluster of a machine with several */
} es_hw_cluster_t;

typedef struct es_hw_zone {
  char type[32];    /* "cpu-thermal", "x86_pkg_temp", "soc-thermal", ... */
  double temp_c;    /* current temperature */
  double crit_c;    /* lowest "critical" or "hot" trip point, 0 unknown */
  double passive_c; /* lowest "passive" trip point (throttling), 0 unknown;
                       trip points at or below 0 are unset (x86_pkg_temp) */
} es_hw_zone_t;

typedef struct es_hw {
  char arch[16];       /* "x86_64", "aarch64", "armv7l": compile-time target */
  char cpu_model[128]; /* x86 "model name" ("12th Gen Intel(R) Core(TM) i7-1260P");
                          ARM core names from CPU implementer/part, fastest
                          first ("Cortex-A72", "Cortex-A76 + Cortex-A55") */
  char board[128];     /* "Raspberry Pi 4 Model B Rev 1.4", DMI product, or "" */
  unsigned simd;       /* ES_HW_* bits, from /proc/cpuinfo */
  int ncpus;           /* online CPUs = entries in cpus[] */
  es_hw_cpu_t cpus[ES_HW_MAX_CPUS];
  int nclusters; /* >= 1 */
  es_hw_cluster_t clusters[ES_HW_MAX_CLUSTERS];
  int physical_cores; /* physical cores among online CPUs = CPUs with
                         smt_primary (arm64 kernels may repeat core_id across
                         clusters, so (package, core) pairs can undercount) */
  double cpu_quota;   /* cgroup CPU quota in CPUs, 0 = unlimited */
  es_memstat_t mem;   /* RAM, swap, cgroup memory limit at detection time */
  int nzones;         /* zones whose temperature could be read, by zone number */
  es_hw_zone_t zones[ES_HW_MAX_ZONES];
  int throttled;     /* frequency is being held down: some online CPU's
                        scaling_max_freq is below its cpuinfo_max_freq
                        (thermal cooling caps it), or a zone is at or above
                        its passive trip point. A low scaling_cur_freq alone
                        is not throttling: idle CPUs clock down. */
  int nvidia_gpus;   /* NVIDIA display/3D controllers on the PCI bus, or the
                        driver's /proc list when that shows more */
  char gpu_name[64]; /* first GPU's model when the driver says, else "" */
} es_hw_t;

/* Detects the machine under `root` (NULL or "/" = the live system). Returns 0
 * and fills *out (missing optional files leave their fields 0 / empty, a
 * missing /proc/meminfo included), or a negative ES_E* code with *err filled
 * when not NULL and *out zeroed: ES_EIO when neither /proc/cpuinfo nor
 * /sys/devices/system/cpu can be read, ES_EFORMAT when a file that exists is
 * malformed (the message names it), ES_EINVAL when root is over 1 KB long.
 * Allocates nothing that outlives the call; uses about 30 KB of stack; safe
 * from any thread. Takes about 0.3-1.5 ms (docs/runtime/hw.md). */
int es_hw_detect(es_hw_t *out, const char *root, es_error_t *err);

/* The hottest zone's temperature in °C, or 0 when there are no zones. */
double es_hw_max_temp(const es_hw_t *hw);

/* Effective CPUs for planning: min(ncpus, ceil(cpu_quota)) when limited. */
int es_hw_effective_cpus(const es_hw_t *hw);

#ifdef __cplusplus
}
#endif
#endif
