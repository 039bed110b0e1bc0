/*
 * sysmetrics.h - how busy, full and hot the machine is, sampled periodically.
 *
 * A sampler (es_sysmetrics_t) reads procfs and sysfs under a root directory
 * (NULL or "/" for the live system; tests pass recorded trees, as hw.h does):
 *
 *   /proc/stat          per-core and overall CPU use (ticks between two samples)
 *   /proc/loadavg       load average
 *   /proc/meminfo + the memory cgroup (memstat.h)       memory and swap
 *   statvfs(data_dir)   disk use of the data directory (NOT under the root:
 *                       it is a path of this process, so tests pass a tmp dir)
 *   /proc/net/dev       bytes and packets per interface, loopback left out of
 *                       the totals, rates from the previous sample
 *   /sys/class/thermal/thermal_zoneN/temp       temperature per zone
 *   cpuN/cpufreq/scaling_max_freq, the zones' passive trips and the Raspberry
 *   Pi firmware's get_throttled                 frequency throttling
 *
 * CPU use and rates need two readings: the sampler keeps the previous
 * counters, so its first sample reports 0 % and 0 B/s and says so (`have`
 * lacks ES_SYSM_HAVE_RATES). Per-core figures are grouped by hw.h's clusters
 * (big first). es_sysmetrics_assess() turns a sample into risk flags and a
 * recommended action with a fixed rule table (es_sysmetrics_rules_t).
 *
 *   es_sysmetrics_params_t p = es_sysmetrics_default_params();
 *   p.data_dir = "/var/lib/edgeserve";
 *   es_sysmetrics_t *s = es_sysmetrics_new(&p, &err);
 *   es_sysmetrics_sample_t *m = malloc(sizeof *m);     // about 9 KB
 *   es_sysmetrics_sample(s, m, &err);   // baseline
 *   sleep(1);
 *   es_sysmetrics_sample(s, m, &err);   // m->clusters[0].pct: big cores' use
 *   puts(es_sysmetrics_action_str(m->action));   // "OK", "reduce load", ...
 *
 * The monitor (es_sysmon_t) samples every interval_ms as an ES_SCHED_LOW task
 * of a scheduler and keeps the latest sample for any thread to copy:
 *
 *   es_sysmon_params_t mp = es_sysmon_default_params();
 *   mp.metrics.data_dir = "/var/lib/edgeserve";
 *   es_sysmon_t *mon = es_sysmon_start(bg_sched, &mp, &err);
 *   ...  es_sysmon_latest(mon, m);  if (m->flags & ES_SYSM_MEMORY_CRITICAL) ...
 *   es_sysmon_stop(mon);                // before es_sched_free(bg_sched)
 */
#ifndef EDGESERVE_SYSMETRICS_H
#define EDGESERVE_SYSMETRICS_H

#include <stdint.h>

#include "edgeserve/error.h"
#include "edgeserve/hw.h"
#include "edgeserve/memstat.h"
#include "edgeserve/sched.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_SYSM_MAX_IFACES 16 /* interfaces beyond the 16th still count in the totals */

/* es_sysmetrics_sample_t.have: which figures this sample holds. */
enum {
  ES_SYSM_HAVE_RATES = 1u << 0, /* CPU % and byte rates (not on a sampler's first sample) */
  ES_SYSM_HAVE_LOAD = 1u << 1,  /* /proc/loadavg was read */
  ES_SYSM_HAVE_DISK = 1u << 2,  /* data_dir was set and statvfs() worked */
  ES_SYSM_HAVE_NET = 1u << 3,   /* /proc/net/dev was read */
  ES_SYSM_HAVE_TEMP = 1u << 4,  /* at least one zone's temperature was read */
  ES_SYSM_HAVE_RPI = 1u << 5,   /* the Raspberry Pi firmware's get_throttled was read */
};

/* es_sysmetrics_sample_t.flags: risks, set by es_sysmetrics_assess(). */
enum {
  ES_SYSM_MEMORY_CRITICAL = 1u << 0, /* mem_pct > rules.memory_critical_pct */
  ES_SYSM_CPU_MAXED = 1u << 1,       /* busiest cluster's pct > rules.cpu_maxed_pct */
  ES_SYSM_THERMAL_LIKELY = 1u << 2,  /* throttled, or a zone at its passive trip
                                        (or at rules.thermal_c when it has none) */
};

/* Recommended actions, most urgent first (es_sysmetrics_assess()). */
enum {
  ES_SYSM_OK = 0,
  ES_SYSM_CLEAR_CACHE = 1, /* memory critical: drop caches, refuse big work */
  ES_SYSM_COOL_DOWN = 2,   /* thermal: "wait for the device to cool" */
  ES_SYSM_REDUCE_LOAD = 3, /* CPU maxed */
};

/* Alert levels of es_sysmetrics_sample_t.level[]. */
enum { ES_SYSM_LEVEL_OK = 0, ES_SYSM_LEVEL_WARN = 1, ES_SYSM_LEVEL_CRIT = 2 };
/* Indexes of es_sysmetrics_sample_t.level[] and of the rules' warn/crit. */
enum { ES_SYSM_CPU = 0, ES_SYSM_MEM = 1, ES_SYSM_DISK = 2, ES_SYSM_TEMP = 3, ES_SYSM_NALERTS = 4 };

/* The rule table (docs/observe/sysmetrics.md). Percentages are 0..100. */
typedef struct es_sysmetrics_rules {
  double memory_critical_pct; /* > this: ES_SYSM_MEMORY_CRITICAL. Default 85 */
  double cpu_maxed_pct;       /* busiest cluster > this: ES_SYSM_CPU_MAXED. Default 90 */
  double thermal_c; /* a zone without a passive trip is hot from here. Default 80 (Pi 4) */
  /* Alert levels: value >= warn -> WARN, >= crit -> CRIT, per ES_SYSM_CPU
   * (busiest cluster), _MEM, _DISK (%) and _TEMP (hottest zone, °C).
   * Defaults: CPU 70 / 85, memory 75 / 90, disk 80 / 95 (Orange Pi
   * classroom), temperature 80 / 85 (Pi 4). A threshold <= 0 disables it. */
  double warn[ES_SYSM_NALERTS], crit[ES_SYSM_NALERTS];
} es_sysmetrics_rules_t;

es_sysmetrics_rules_t es_sysmetrics_default_rules(void);

typedef struct es_sysmetrics_core {
  int id;      /* logical CPU number */
  int cluster; /* index into clusters[] */
  float pct;   /* use since the previous sample, 0..100; -1 when the CPU is
                  offline now (no cpuN line in /proc/stat) */
} es_sysmetrics_core_t;

typedef struct es_sysmetrics_cluster {
  int ncpus;       /* as detected when the sampler was made */
  int big;         /* 1 for the fastest cluster of a machine with several */
  double pct;      /* mean over its online CPUs */
  double max_pct;  /* its busiest CPU */
  int64_t max_khz; /* cpuinfo_max_freq, 0 unknown */
  int64_t cap_khz; /* lowest scaling_max_freq now, 0 unknown; < max_khz = capped */
} es_sysmetrics_cluster_t;

typedef struct es_sysmetrics_iface {
  char name[16];
  uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets; /* counters since boot */
  double rx_bps, tx_bps; /* bytes/s since the previous sample; 0 when the
                            interface is new or its counters went back */
} es_sysmetrics_iface_t;

typedef struct es_sysmetrics_zone {
  char type[32];    /* "cpu-thermal", "soc-thermal", "x86_pkg_temp", ... */
  int ok;           /* 0: the temperature could not be read this time */
  double temp_c;    /* now */
  double passive_c; /* throttling trip point (as hw.h), 0 unknown */
  double crit_c;    /* critical trip point, 0 unknown */
} es_sysmetrics_zone_t;

typedef struct es_sysmetrics_sample {
  uint64_t seq;      /* 1 for a sampler's first sample, then 2, 3, ... */
  unsigned have;     /* ES_SYSM_HAVE_* */
  double t;          /* the sampler's clock (monotonic seconds by default) */
  double interval_s; /* since the previous sample, 0 on the first */

  /* CPU (0 without ES_SYSM_HAVE_RATES) */
  double cpu_pct; /* all CPUs, from the aggregate "cpu" line */
  double iowait_pct;
  int ncores;
  es_sysmetrics_core_t cores[ES_HW_MAX_CPUS];
  int nclusters;
  es_sysmetrics_cluster_t clusters[ES_HW_MAX_CLUSTERS]; /* fastest first */
  double load1, load5, load15;
  int procs_running, procs_total;

  /* memory (memstat.h) */
  es_memstat_t mem;
  double mem_pct;  /* used of mem.effective_total: 100 * (1 - available / effective_total) */
  double swap_pct; /* used of swap_total, 0 without swap */

  /* disk: the data directory's file system (ES_SYSM_HAVE_DISK) */
  uint64_t disk_total, disk_avail; /* bytes; avail = what unprivileged users get */
  double disk_pct;                 /* used / (used + avail), as df */

  /* network (ES_SYSM_HAVE_NET): totals over every interface but loopback */
  uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
  double rx_bps, tx_bps;
  int nifaces; /* per interface, loopback included, in /proc/net/dev order */
  es_sysmetrics_iface_t ifaces[ES_SYSM_MAX_IFACES];

  /* temperature and throttling */
  int nzones; /* the zones hw.h found when the sampler was made */
  es_sysmetrics_zone_t zones[ES_HW_MAX_ZONES];
  double max_temp_c;     /* hottest readable zone, 0 when none */
  int freq_capped;       /* some CPU's scaling_max_freq < cpuinfo_max_freq */
  int64_t rpi_throttled; /* get_throttled bits (ES_SYSM_HAVE_RPI): 0x1 under-voltage,
                            0x2 frequency capped, 0x4 throttled, 0x8 soft temperature
                            limit, the same << 16 "has occurred since boot"; else -1 */
  int throttled;         /* freq_capped, a zone at or over its passive trip, or rpi
                            bits 0x2 / 0x4 / 0x8 now */

  /* assessment (es_sysmetrics_assess(), which es_sysmetrics_sample() runs) */
  unsigned flags;             /* ES_SYSM_MEMORY_CRITICAL | ... */
  int level[ES_SYSM_NALERTS]; /* ES_SYSM_LEVEL_* per ES_SYSM_CPU ... _TEMP */
  int action;                 /* ES_SYSM_OK ... */
} es_sysmetrics_sample_t;

typedef struct es_sysmetrics_params {
  const char *root;     /* procfs/sysfs root; NULL or "/" = the live system. Copied. */
  const char *data_dir; /* statvfs() target (a path of this process, not under
                           root); NULL = no disk figures. Copied. */
  es_sysmetrics_rules_t rules;
  /* The clock of `t` and of the rates; NULL = CLOCK_MONOTONIC in seconds.
   * Tests pass a fake one so that rates are exact. */
  double (*clock)(void *ud);
  void *clock_ud;
} es_sysmetrics_params_t;

es_sysmetrics_params_t es_sysmetrics_default_params(void);

typedef struct es_sysmetrics es_sysmetrics_t;

/* Makes a sampler: detects the machine under p->root once (es_hw_detect:
 * clusters, thermal zones and their trips, max frequencies; CPUs or zones
 * that appear later are not followed) and copies the strings it needs.
 * Returns it, or NULL with *err filled (when not NULL) and nothing allocated:
 * ES_EINVAL (p NULL, root or data_dir over 1 KB), es_hw_detect's errors
 * (ES_EIO: not a Linux root; ES_EFORMAT), ES_ENOMEM. Free with
 * es_sysmetrics_free(). Takes about as long as es_hw_detect (0.3-1.5 ms). */
es_sysmetrics_t *es_sysmetrics_new(const es_sysmetrics_params_t *p, es_error_t *err);

/* NULL is a no-op. */
void es_sysmetrics_free(es_sysmetrics_t *s);

/* Takes one sample into *out and assesses it with the sampler's rules.
 * Returns 0, or a negative code with *err filled (when not NULL), *out zeroed
 * and the sampler's previous counters kept (the next sample's rates then
 * span the gap): ES_EIO when /proc/stat or /proc/meminfo cannot be read,
 * ES_EFORMAT when a file that exists does not parse (the message names it).
 * Other sources are optional: absent, their `have` bit is clear and their
 * fields 0. Allocates nothing; not safe on one sampler from two threads at
 * once (different samplers are independent). Cost: see
 * docs/observe/sysmetrics.md (tens of microseconds). */
int es_sysmetrics_sample(es_sysmetrics_t *s, es_sysmetrics_sample_t *out, es_error_t *err);

/* Sets out->flags, out->level[] and out->action from the sample's figures
 * and the rules (NULL = defaults); pure and deterministic, any thread. CPU
 * rules need ES_SYSM_HAVE_RATES, disk ES_SYSM_HAVE_DISK, memory a nonzero
 * mem.effective_total. Actions by priority: memory critical -> CLEAR_CACHE,
 * else thermal likely -> COOL_DOWN, else CPU maxed -> REDUCE_LOAD, else OK. */
void es_sysmetrics_assess(es_sysmetrics_sample_t *out, const es_sysmetrics_rules_t *rules);

/* "OK", "clear cache", "wait for the device to cool", "reduce load"; "?" for
 * anything else. Static strings. */
const char *es_sysmetrics_action_str(int action);

/* ---- the periodic monitor ---- */

typedef struct es_sysmon_params {
  es_sysmetrics_params_t metrics;
  int interval_ms; /* between samples, >= 10; default 1000 */
  /* Optional: called after each sample is published, on the thread that took
   * it (a worker of the scheduler, or the monitor's timer thread), with the
   * sample (valid during the call only). Must not call es_sysmon_stop(). */
  void (*on_sample)(void *ud, const es_sysmetrics_sample_t *m);
  void *ud;
} es_sysmon_params_t;

es_sysmon_params_t es_sysmon_default_params(void);

typedef struct es_sysmon es_sysmon_t;

/* Starts a monitor: makes the sampler, takes the first sample on the calling
 * thread (so es_sysmon_latest() always has one, and a bad root fails here),
 * then starts a small timer thread that, every interval_ms, submits one
 * ES_SCHED_LOW task to `sched` which samples and publishes. A tick is skipped
 * while the previous task is still queued or running (a busy scheduler gets
 * no pile-up of samples). sched NULL: the timer thread samples itself.
 * Returns the monitor, or NULL with *err filled and nothing left running or
 * allocated: ES_EINVAL (p NULL, interval_ms < 10), es_sysmetrics_new()'s and
 * es_sysmetrics_sample()'s errors, ES_ENOMEM (also when the thread cannot
 * start). Stop it with es_sysmon_stop() before the scheduler is freed. */
es_sysmon_t *es_sysmon_start(es_sched_t *sched, const es_sysmon_params_t *p, es_error_t *err);

/* Copies the latest successful sample into *out (a short memcpy under the
 * monitor's mutex: safe from any thread, never waits on a sample being
 * taken). Returns 0, or ES_EINVAL when m or out is NULL. */
int es_sysmon_latest(es_sysmon_t *m, es_sysmetrics_sample_t *out);

/* 0 when the latest attempt succeeded, else its negative code: a failed
 * sample (a file went missing or bad), or ES_ESTATE / ES_EFULL when the
 * scheduler refused the task. Any thread. */
int es_sysmon_last_error(es_sysmon_t *m);

/* Stops the timer, waits for a sampling task in flight (or for the
 * scheduler to cancel it) and frees the monitor. NULL is a no-op. Not from
 * on_sample, nor from a worker of `sched` while sampling tasks may be queued
 * behind it. */
void es_sysmon_stop(es_sysmon_t *m);

#ifdef __cplusplus
}
#endif
#endif
