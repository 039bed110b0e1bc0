/*
 * hw.c - what machine edgeserve runs on; see include/edgeserve/hw.h.
 *
 * What it is for: the runtime plans threads, memory and model choice from
 * this picture (the strategy in config.h turns it into a plan; nothing here
 * decides policy). It is taken once at start-up and may be retaken to watch
 * temperatures and throttling, so it is one pass over small procfs/sysfs files
 * (about 10 per CPU, a few per thermal zone and PCI device) with no
 * allocation beyond opendir()'s.
 *
 * How the pieces come together:
 *   proc/cpuinfo         model name, SIMD flags, ARM implementer/part per CPU,
 *                        Raspberry Pi "Model"/"Hardware" (board fallback)
 *   online CPUs          sys/devices/system/cpu/online, else the cpuinfo
 *                        processors, else the cpuN directories
 *   per CPU              cpu_capacity, cpufreq/{cpuinfo_max,scaling_cur,
 *                        scaling_max}_freq, topology/{core_id,
 *                        physical_package_id,thread_siblings_list}
 *   clusters             CPUs ranked by capacity (when it tells CPUs apart),
 *                        else cpuinfo_max_freq, fastest first
 *   board, quota, memory (memstat.c), thermal zones, NVIDIA GPUs
 *
 * Invariants:
 *   1. Every path goes through the root (sysfs.h), so tests run on recorded
 *      trees; nothing here reads the live system behind the root's back.
 *      `arch` is the compile-time target on the live system (what runs: an
 *      armhf build on a 64-bit kernel is armv7l), and what /proc/cpuinfo says
 *      under any other root.
 *   2. An absent file leaves its field 0 / "" (machines differ in what they
 *      expose); a present file that does not parse fails the whole detection
 *      with ES_EFORMAT naming it, rather than planning from garbage. Zones
 *      whose temperature cannot be read at all (a sensor that is off) are
 *      skipped.
 *   3. cpus[] is in ascending logical CPU order, every cpus[i].cluster <
 *      nclusters, the clusters' ncpus sum to ncpus, clusters are fastest
 *      first and big == 1 exactly for cluster 0 when nclusters > 1.
 *   4. A cluster is a run of CPUs whose key (capacity or max frequency) lies
 *      within 10% of the cluster's fastest member: Intel's "favored cores"
 *      (4.7 vs 4.6 GHz) and RK3588's two A76 pairs (2.4 vs 2.256 GHz when
 *      binned) are one kind of core, P vs E (4.7 vs 3.4) or A76 vs A55 are not.
 *   5. smt_primary is 1 for exactly one online CPU per physical core, so
 *      physical_cores == the number of primaries. thread_siblings_list decides
 *      (core_id repeats across clusters on recent arm64 kernels); (package,
 *      core) pairs only when it is absent.
 */
/* 32-bit builds (armhf): readdir() fails with EOVERFLOW on directories whose
 * entries carry 64-bit offsets or inode numbers (ext4, overlayfs, a 64-bit
 * kernel under a 32-bit userland) unless dirent is the 64-bit one: the build
 * defines _FILE_OFFSET_BITS=64 everywhere (CMakeLists.txt). */

#include "edgeserve/hw.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/fail.h"
#include "sysfs.h"

#define NSET (ES_HW_MAX_CPUS / 64)

/* What /proc/cpuinfo says, per logical CPU where it varies. */
typedef struct cpuinfo {
  int found;
  char model_name[128];
  char hardware[64];   /* ARM "Hardware" (Raspberry Pi: "BCM2835") */
  char rpi_model[128]; /* Raspberry Pi kernels' "Model" line */
  unsigned simd;       /* intersection over all processors */
  int saw_flags;
  int arm_arch;         /* ARM "CPU architecture": 7 or 8; 0 unknown */
  int x86_64;           /* an x86 "flags" line naming lm (long mode) */
  uint64_t procs[NSET]; /* "processor" numbers seen */
  int nprocs;
  short impl[ES_HW_MAX_CPUS], part[ES_HW_MAX_CPUS]; /* ARM; -1 unknown */
} cpuinfo_t;

static void copy_str(char *dst, size_t cap, const char *src) {
  /* collapses runs of blanks: "Intel(R) Xeon(R) CPU           E5-2670" */
  size_t n = 0;
  for (; *src && n + 1 < cap; src++) {
    int blank = *src == ' ' || *src == '\t';
    if (blank && (n == 0 || dst[n - 1] == ' ')) continue;
    dst[n++] = blank ? ' ' : *src;
  }
  while (n > 0 && dst[n - 1] == ' ') n--;
  dst[n] = 0;
}

/* SIMD bits named by a "flags" (x86) or "Features" (ARM) value. */
static unsigned simd_bits(const char *v) {
  static const struct {
    const char *name;
    unsigned bit;
  } names[] = {{"sse4_2", ES_HW_SSE42},    {"avx2", ES_HW_AVX2}, {"fma", ES_HW_FMA},
               {"avx512f", ES_HW_AVX512F}, {"neon", ES_HW_NEON}, {"asimd", ES_HW_NEON},
               {"asimddp", ES_HW_DOTPROD}};
  unsigned bits = 0;
  while (*v) {
    while (*v == ' ' || *v == '\t') v++;
    size_t n = strcspn(v, " \t");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      if (strlen(names[i].name) == n && memcmp(v, names[i].name, n) == 0) bits |= names[i].bit;
    v += n;
  }
  return bits;
}

static int parse_hex(const char *s, long *v) {
  char *end;
  *v = strtol(s, &end, 16);
  return end == s || *end || *v < 0 || *v > 0xfff ? -1 : 0;
}

static int read_cpuinfo(es__sysroot_t *r, cpuinfo_t *ci, es_error_t *err) {
  char buf[16384]; /* x86 "flags" lines reach 2 KB */
  es__lines_t l;
  memset(ci, 0, sizeof *ci);
  for (int i = 0; i < ES_HW_MAX_CPUS; i++) ci->impl[i] = ci->part[i] = -1;
  const char *path = es__at(r, "proc/cpuinfo");
  if (es__lines_open(&l, path, buf, sizeof buf)) return 0;
  ci->found = 1;
  int cur = -1, rc = 0;
  char *line, *key, *val;
  while (es__lines_next(&l, &line)) {
    if (es__split_kv(line, &key, &val)) continue;
    if (strcmp(key, "processor") == 0) {
      int64_t id;
      if (es__parse_i64(val, &id) || id < 0) {
        rc = es__fail(err, ES_EFORMAT, -1, "%s: processor number \"%.40s\" is not a number", path,
                      val);
        break;
      }
      cur = id < ES_HW_MAX_CPUS ? (int)id : -1;
      if (cur >= 0 && !es__bit(ci->procs, cur)) {
        ci->procs[cur >> 6] |= 1ull << (cur & 63);
        ci->nprocs++;
      }
    } else if (strcmp(key, "flags") == 0 || strcmp(key, "Features") == 0) {
      unsigned bits = simd_bits(val);
      if (key[0] == 'f' && strstr(val, " lm ")) ci->x86_64 = 1;
      ci->simd = ci->saw_flags ? ci->simd & bits : bits;
      ci->saw_flags = 1;
    } else if (strcmp(key, "model name") == 0 || strcmp(key, "Processor") == 0) {
      if (!ci->model_name[0]) copy_str(ci->model_name, sizeof ci->model_name, val);
    } else if (strcmp(key, "CPU implementer") == 0 || strcmp(key, "CPU part") == 0) {
      long v;
      if (parse_hex(val, &v)) {
        rc = es__fail(err, ES_EFORMAT, -1, "%s: %s \"%.40s\" is not a hex number like 0xd08", path,
                      key, val);
        break;
      }
      if (cur >= 0) (key[4] == 'i' ? ci->impl : ci->part)[cur] = (short)v;
    } else if (strcmp(key, "CPU architecture") == 0) {
      ci->arm_arch = atoi(val);
    } else if (strcmp(key, "Hardware") == 0) {
      copy_str(ci->hardware, sizeof ci->hardware, val);
    } else if (strcmp(key, "Model") == 0) {
      copy_str(ci->rpi_model, sizeof ci->rpi_model, val);
    }
  }
  es__lines_close(&l);
  return rc;
}

/* Names of Arm Ltd (implementer 0x41) cores by "CPU part". */
static const char *arm_core_name(int impl, int part) {
  static const struct {
    short part;
    const char *name;
  } parts[] = {{0xb76, "ARM1176"},     {0xc07, "Cortex-A7"},   {0xc09, "Cortex-A9"},
               {0xc0f, "Cortex-A15"},  {0xd03, "Cortex-A53"},  {0xd04, "Cortex-A35"},
               {0xd05, "Cortex-A55"},  {0xd07, "Cortex-A57"},  {0xd08, "Cortex-A72"},
               {0xd09, "Cortex-A73"},  {0xd0a, "Cortex-A75"},  {0xd0b, "Cortex-A76"},
               {0xd0c, "Neoverse-N1"}, {0xd0d, "Cortex-A77"},  {0xd0e, "Cortex-A76AE"},
               {0xd40, "Neoverse-V1"}, {0xd41, "Cortex-A78"},  {0xd44, "Cortex-X1"},
               {0xd46, "Cortex-A510"}, {0xd47, "Cortex-A710"}, {0xd48, "Cortex-X2"},
               {0xd49, "Neoverse-N2"}, {0xd4b, "Cortex-A78C"}, {0xd4d, "Cortex-A715"},
               {0xd4e, "Cortex-X3"},   {0xd4f, "Neoverse-V2"}, {0xd80, "Cortex-A520"},
               {0xd81, "Cortex-A720"}, {0xd82, "Cortex-X4"},   {0xd87, "Cortex-A725"}};
  if (impl != 0x41) return NULL;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (parts[i].part == part) return parts[i].name;
  return NULL;
}

/* The online CPUs: sys/devices/system/cpu/online, else the processors of
 * /proc/cpuinfo, else the cpuN directories. */
static int online_cpus(es__sysroot_t *r, const cpuinfo_t *ci, uint64_t *set, es_error_t *err) {
  char buf[4096];
  const char *path = es__at(r, "sys/devices/system/cpu/online");
  if (es__read_file(path, buf, sizeof buf) >= 0) {
    int n = es__parse_cpulist(buf, set, ES_HW_MAX_CPUS);
    if (n < 0)
      return es__fail(err, ES_EFORMAT, -1,
                      "%s: expected a CPU list like \"0-3,6\", found \"%.40s\"", path, buf);
    if (n > 0) return n;
  }
  if (ci->nprocs > 0) {
    memcpy(set, ci->procs, sizeof ci->procs);
    return ci->nprocs;
  }
  memset(set, 0, NSET * sizeof *set);
  int n = 0;
  DIR *d = opendir(es__at(r, "sys/devices/system/cpu") ? r->path : "");
  if (!d) return 0;
  for (struct dirent *e; (e = readdir(d));) {
    int64_t id;
    if (strncmp(e->d_name, "cpu", 3) || es__parse_i64(e->d_name + 3, &id)) continue;
    if (id < 0 || id >= ES_HW_MAX_CPUS || es__bit(set, (int)id)) continue;
    set[id >> 6] |= 1ull << (id & 63);
    n++;
  }
  closedir(d);
  return n;
}

/* One sysfs integer of a CPU into *v (left alone when absent). */
static int cpu_i64(es__sysroot_t *r, int cpu, const char *name, int64_t *v, es_error_t *err) {
  return es__sysfs_i64(es__at(r, "sys/devices/system/cpu/cpu%d/%s", cpu, name), v, err);
}

static int read_cpus(es__sysroot_t *r, const uint64_t *online, es_hw_t *hw, es_error_t *err) {
  char buf[1024];
  for (int id = 0; id < ES_HW_MAX_CPUS; id++) {
    if (!es__bit(online, id)) continue;
    es_hw_cpu_t *c = &hw->cpus[hw->ncpus++];
    int64_t cap = 0, core = -1, pkg = -1;
    c->id = id;
    int rc;
    if ((rc = cpu_i64(r, id, "cpu_capacity", &cap, err)) < 0 ||
        (rc = cpu_i64(r, id, "cpufreq/cpuinfo_max_freq", &c->max_khz, err)) < 0 ||
        (rc = cpu_i64(r, id, "cpufreq/scaling_cur_freq", &c->cur_khz, err)) < 0 ||
        (rc = cpu_i64(r, id, "cpufreq/scaling_max_freq", &c->cap_khz, err)) < 0 ||
        (rc = cpu_i64(r, id, "topology/core_id", &core, err)) < 0 ||
        (rc = cpu_i64(r, id, "topology/physical_package_id", &pkg, err)) < 0)
      return rc;
    if (cap < 0 || cap > 1024)
      return es__fail(err, ES_EFORMAT, -1,
                      "%.*s/sys/devices/system/cpu/cpu%d/cpu_capacity: %lld "
                      "is outside 1..1024",
                      (int)r->rootlen, r->path, id, (long long)cap);
    c->capacity = (int)cap;
    c->core_id = (int)core;
    c->package_id = (int)pkg;

    /* SMT: primary when no lower online CPU shares the core */
    c->smt_primary = 1;
    const char *path = es__at(r, "sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", id);
    if (es__read_file(path, buf, sizeof buf) >= 0) {
      uint64_t sib[NSET];
      if (es__parse_cpulist(buf, sib, ES_HW_MAX_CPUS) < 0)
        return es__fail(err, ES_EFORMAT, -1,
                        "%s: expected a CPU list like \"0-1\" or \"0,4\", found \"%.40s\"", path,
                        buf);
      for (int j = 0; j < id; j++)
        if (es__bit(sib, j) && es__bit(online, j)) c->smt_primary = 0;
    } else if (core >= 0) {
      for (es_hw_cpu_t *p = hw->cpus; p < c; p++)
        if (p->core_id == c->core_id && p->package_id == c->package_id) c->smt_primary = 0;
    }
    hw->physical_cores += c->smt_primary;
  }
  return 0;
}

/* Groups CPUs into clusters, fastest first (invariants 3 and 4). */
static void make_clusters(es_hw_t *hw) {
  int all_cap = 1, all_freq = 1, cap_varies = 0;
  for (int i = 0; i < hw->ncpus; i++) {
    all_cap &= hw->cpus[i].capacity > 0;
    all_freq &= hw->cpus[i].max_khz > 0;
    cap_varies |= hw->cpus[i].capacity != hw->cpus[0].capacity;
  }
  /* capacity only when it tells CPUs apart: recent x86 kernels write 1024
   * everywhere while the frequencies still differ */
  int by_cap = all_cap && (cap_varies || !all_freq);
  int order[ES_HW_MAX_CPUS];
  int64_t key[ES_HW_MAX_CPUS];
  for (int i = 0; i < hw->ncpus; i++) {
    order[i] = i;
    key[i] = by_cap ? hw->cpus[i].capacity : all_freq ? hw->cpus[i].max_khz : 0;
  }
  for (int i = 1; i < hw->ncpus; i++) { /* insertion sort: key desc, then id */
    int o = order[i], j = i;
    for (; j > 0 && key[order[j - 1]] < key[o]; j--) order[j] = order[j - 1];
    order[j] = o;
  }
  hw->nclusters = 0;
  int64_t head = 0;
  for (int i = 0; i < hw->ncpus; i++) {
    int64_t k = key[order[i]];
    if (hw->nclusters == 0 || (k * 10 < head * 9 && hw->nclusters < ES_HW_MAX_CLUSTERS)) {
      hw->nclusters++;
      head = k;
    }
    es_hw_cluster_t *cl = &hw->clusters[hw->nclusters - 1];
    es_hw_cpu_t *c = &hw->cpus[order[i]];
    c->cluster = hw->nclusters - 1;
    cl->ncpus++;
    if (c->capacity > cl->capacity) cl->capacity = c->capacity;
    if (c->max_khz > cl->max_khz) cl->max_khz = c->max_khz;
  }
  if (hw->nclusters == 0) hw->nclusters = 1; /* no CPU at all: one empty cluster */
  if (hw->nclusters > 1) hw->clusters[0].big = 1;
}

/* cpu_model: x86 "model name"; ARM core names from implementer/part, fastest
 * cluster first ("Cortex-A76 + Cortex-A55"), else whatever cpuinfo says. */
static void make_model(es_hw_t *hw, const cpuinfo_t *ci) {
  char *out = hw->cpu_model;
  size_t cap = sizeof hw->cpu_model, n = 0;
  const char *seen[ES_HW_MAX_CLUSTERS * 2];
  int nseen = 0, unknown = 0;
  out[0] = 0;
  for (int cl = 0; cl < hw->nclusters; cl++) {
    for (int i = 0; i < hw->ncpus; i++) {
      const es_hw_cpu_t *c = &hw->cpus[i];
      if (c->cluster != cl || ci->part[c->id] < 0) continue;
      const char *name = arm_core_name(ci->impl[c->id], ci->part[c->id]);
      if (!name) {
        unknown = 1;
        continue;
      }
      int dup = 0;
      for (int k = 0; k < nseen; k++) dup |= seen[k] == name;
      if (dup || nseen == (int)(sizeof seen / sizeof seen[0])) continue;
      seen[nseen++] = name;
      int w = snprintf(out + n, cap - n, "%s%s", n ? " + " : "", name);
      if (w > 0 && (size_t)w < cap - n) n += (size_t)w;
    }
  }
  if (n > 0 && !unknown) return;
  out[0] = 0;
  if (ci->model_name[0]) {
    snprintf(out, cap, "%s", ci->model_name);
    return;
  }
  for (int i = 0; i < hw->ncpus; i++) {
    int id = hw->cpus[i].id;
    if (ci->part[id] >= 0) {
      snprintf(out, cap, "CPU implementer 0x%02x part 0x%03x", ci->impl[id] & 0xff, ci->part[id]);
      return;
    }
  }
}

/* DMI strings firmware vendors leave unset. */
static int dmi_placeholder(const char *s) {
  static const char *const junk[] = {"To Be Filled By O.E.M.", "To be filled by O.E.M.",
                                     "System Product Name",    "Default string",
                                     "Not Applicable",         "System manufacturer"};
  if (!*s) return 1;
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
    if (strcmp(s, junk[i]) == 0) return 1;
  return 0;
}

static void read_board(es__sysroot_t *r, es_hw_t *hw, const cpuinfo_t *ci) {
  char buf[256], vendor[128];
  if (es__read_file(es__at(r, "proc/device-tree/model"), buf, sizeof buf) > 0 ||
      es__read_file(es__at(r, "sys/firmware/devicetree/base/model"), buf, sizeof buf) > 0) {
    copy_str(hw->board, sizeof hw->board, buf);
    return;
  }
  if (es__read_file(es__at(r, "sys/class/dmi/id/product_name"), buf, sizeof buf) > 0 &&
      !dmi_placeholder(buf)) {
    if (es__read_file(es__at(r, "sys/class/dmi/id/sys_vendor"), vendor, sizeof vendor) > 0 &&
        !dmi_placeholder(vendor) && strncmp(buf, vendor, strlen(vendor)) != 0) {
      char both[sizeof vendor + sizeof buf + 1];
      snprintf(both, sizeof both, "%s %s", vendor, buf);
      copy_str(hw->board, sizeof hw->board, both);
    } else {
      copy_str(hw->board, sizeof hw->board, buf);
    }
    return;
  }
  if (ci->rpi_model[0])
    snprintf(hw->board, sizeof hw->board, "%s", ci->rpi_model);
  else if (ci->hardware[0])
    snprintf(hw->board, sizeof hw->board, "%s", ci->hardware);
}

/* One cgroup level's CPU quota in CPUs: 1 (*q set, 0 = no quota), 0 absent,
 * ES_EFORMAT. v2 cpu.max is "QUOTA PERIOD" or "max PERIOD"; v1 splits them
 * into cpu.cfs_quota_us (-1 = none) and cpu.cfs_period_us. */
static int level_quota(es__sysroot_t *r, int v, const char *dir, double *q, es_error_t *err) {
  char buf[128];
  int64_t quota = -1, period = 100000;
  *q = 0;
  if (v == 1) {
    int rc = es__sysfs_i64(es__at(r, "%s/cpu.cfs_quota_us", dir), &quota, err);
    if (rc <= 0 || quota <= 0) return rc;
    const char *path = es__at(r, "%s/cpu.cfs_period_us", dir);
    if ((rc = es__sysfs_i64(path, &period, err)) < 0) return rc;
    if (period <= 0)
      return es__fail(err, ES_EFORMAT, -1, "%s: period %lld is not positive", path,
                      (long long)period);
    *q = (double)quota / (double)period;
    return 1;
  }
  const char *path = es__at(r, "%s/cpu.max", dir);
  if (es__read_file(path, buf, sizeof buf) < 0) return 0;
  char *sp = strchr(buf, ' ');
  if (sp) *sp = 0;
  int ok = sp && es__parse_i64(sp + 1, &period) == 0 && period > 0 &&
           (strcmp(buf, "max") == 0 || (es__parse_i64(buf, &quota) == 0 && quota > 0));
  if (!ok) {
    if (sp) *sp = ' ';
    return es__fail(err, ES_EFORMAT, -1,
                    "%s: expected \"QUOTA PERIOD\" or \"max PERIOD\" (microseconds), found "
                    "\"%.40s\"",
                    path, buf);
  }
  if (quota > 0) *q = (double)quota / (double)period;
  return 1;
}

/* The tightest CPU quota among the process's cgroup and its ancestors. */
static int read_quota(es__sysroot_t *r, es_hw_t *hw, es_error_t *err) {
  char dir[ES__PATH_MAX];
  size_t mountlen;
  int v = es__cgroup_dir(r, "cpu", dir, sizeof dir, &mountlen, err);
  if (v <= 0) return v;
  double best = 0, q;
  do {
    int rc = level_quota(r, v, dir, &q, err);
    if (rc < 0) return rc;
    if (q > 0 && (best == 0 || q < best)) best = q;
  } while (es__cgroup_up(dir, mountlen));
  hw->cpu_quota = best;
  return 0;
}

/* Thermal zones in zone-number order, with their trip points. */
static int read_zones(es__sysroot_t *r, es_hw_t *hw, es_error_t *err) {
  int ids[64];
  int n = es__thermal_zone_ids(r, ids, 64);
  char buf[64];
  for (int i = 0; i < n && hw->nzones < ES_HW_MAX_ZONES; i++) {
    es_hw_zone_t *z = &hw->zones[hw->nzones];
    int64_t milli;
    int rc = es__sysfs_i64(es__at(r, "sys/class/thermal/thermal_zone%d/temp", ids[i]), &milli, err);
    if (rc < 0) return rc;
    if (rc == 0) continue; /* sensor off or gone */
    memset(z, 0, sizeof *z);
    z->temp_c = (double)milli / 1000.0;
    es__read_file(es__at(r, "sys/class/thermal/thermal_zone%d/type", ids[i]), buf, sizeof buf);
    copy_str(z->type, sizeof z->type, buf);
    for (int t = 0; t < 32; t++) {
      if (es__read_file(es__at(r, "sys/class/thermal/thermal_zone%d/trip_point_%d_type", ids[i], t),
                        buf, sizeof buf) < 0)
        break;
      rc = es__sysfs_i64(
          es__at(r, "sys/class/thermal/thermal_zone%d/trip_point_%d_temp", ids[i], t), &milli, err);
      if (rc < 0) return rc;
      double c = (double)milli / 1000.0;
      if (rc == 0 || milli <= 0) continue; /* x86_pkg_temp's unset trips read 0 */
      double *dst = strcmp(buf, "passive") == 0                               ? &z->passive_c
                    : strcmp(buf, "critical") == 0 || strcmp(buf, "hot") == 0 ? &z->crit_c
                                                                              : NULL;
      if (dst && (*dst == 0 || c < *dst)) *dst = c;
    }
    hw->nzones++;
  }
  return 0;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

/* NVIDIA GPUs: the PCI display controllers of vendor 0x10de, or the driver's
 * own list when it shows more (a container may see the driver, not the bus). */
static int read_nvidia(es__sysroot_t *r, es_hw_t *hw, es_error_t *err) {
  char buf[64];
  int pci = 0, drv = 0;
  DIR *d = opendir(es__at(r, "sys/bus/pci/devices") ? r->path : "");
  if (d) {
    for (struct dirent *e; (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      if (es__read_file(es__at(r, "sys/bus/pci/devices/%s/vendor", e->d_name), buf, sizeof buf) <
              0 ||
          strcmp(buf, "0x10de") != 0)
        continue;
      const char *path = es__at(r, "sys/bus/pci/devices/%s/class", e->d_name);
      if (es__read_file(path, buf, sizeof buf) < 0) continue;
      char *end;
      unsigned long cls = strtoul(buf, &end, 16);
      if (end == buf || *end) {
        closedir(d);
        return es__fail(err, ES_EFORMAT, -1, "%s: expected a class like 0x030200, found \"%.40s\"",
                        path, buf);
      }
      pci += (cls >> 16) == 0x03; /* display controller: VGA, 3D, other */
    }
    closedir(d);
  }
  char names[16][64];
  d = opendir(es__at(r, "proc/driver/nvidia/gpus") ? r->path : "");
  if (d) {
    for (struct dirent *e; (e = readdir(d));)
      if (e->d_name[0] != '.' && drv < 16)
        snprintf(names[drv++], sizeof names[0], "%.63s", e->d_name);
    closedir(d);
  }
  hw->nvidia_gpus = pci > drv ? pci : drv;
  if (drv == 0) return 0;
  qsort(names, (size_t)drv, sizeof names[0], cmp_name);
  char line_buf[512];
  es__lines_t l;
  if (es__lines_open(&l, es__at(r, "proc/driver/nvidia/gpus/%s/information", names[0]), line_buf,
                     sizeof line_buf) == 0) {
    char *line, *key, *val;
    while (es__lines_next(&l, &line))
      if (es__split_kv(line, &key, &val) == 0 && strcmp(key, "Model") == 0) {
        copy_str(hw->gpu_name, sizeof hw->gpu_name, val);
        break;
      }
    es__lines_close(&l);
  }
  return 0;
}

static const char *compile_arch(void) {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7
  return "armv7l";
#elif defined(__arm__)
  return "armv6l";
#elif defined(__i386__)
  return "i686";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#else
  return "unknown";
#endif
}

int es_hw_detect(es_hw_t *out, const char *root, es_error_t *err) {
  es__sysroot_t r;
  cpuinfo_t ci;
  uint64_t online[NSET];
  memset(out, 0, sizeof *out);
  int rc = es__sysroot_init(&r, root, err);
  if (rc) return rc;
  snprintf(out->arch, sizeof out->arch, "%s", compile_arch());

  if ((rc = read_cpuinfo(&r, &ci, err)) < 0) goto fail;
  const char *cpudir = es__at(&r, "sys/devices/system/cpu");
  if (!ci.found && (!cpudir || access(cpudir, R_OK | X_OK) != 0)) {
    rc = es__fail(err, ES_EIO, -1,
                  "cannot read %s/proc/cpuinfo nor %s/sys/devices/system/cpu: is \"%s\" the root "
                  "of a Linux system?",
                  r.rootlen ? root : "", r.rootlen ? root : "", root ? root : "/");
    goto fail;
  }
  out->simd = ci.simd;
  if ((rc = online_cpus(&r, &ci, online, err)) < 0) goto fail;
  if ((rc = read_cpus(&r, online, out, err)) < 0) goto fail;
  make_clusters(out);
  make_model(out, &ci);
  if (r.rootlen && (ci.arm_arch || ci.x86_64)) /* a recorded machine */
    snprintf(out->arch, sizeof out->arch, "%s",
             ci.x86_64          ? "x86_64"
             : ci.arm_arch >= 8 ? "aarch64"
                                : "armv7l");
  read_board(&r, out, &ci);
  if ((rc = read_quota(&r, out, err)) < 0) goto fail;
  rc = es_memstat_read(&out->mem, root, err);
  if (rc == ES_EIO)
    memset(&out->mem, 0, sizeof out->mem); /* optional here */
  else if (rc < 0)
    goto fail;
  if ((rc = read_zones(&r, out, err)) < 0) goto fail;
  for (int i = 0; i < out->ncpus; i++) {
    const es_hw_cpu_t *c = &out->cpus[i];
    if (c->cap_khz > 0 && c->max_khz > 0 && c->cap_khz < c->max_khz) out->throttled = 1;
  }
  for (int i = 0; i < out->nzones; i++)
    if (out->zones[i].passive_c > 0 && out->zones[i].temp_c >= out->zones[i].passive_c)
      out->throttled = 1;
  if ((rc = read_nvidia(&r, out, err)) < 0) goto fail;
  return 0;
fail:
  memset(out, 0, sizeof *out);
  return rc;
}

double es_hw_max_temp(const es_hw_t *hw) {
  if (hw->nzones == 0) return 0;
  double t = hw->zones[0].temp_c;
  for (int i = 1; i < hw->nzones; i++)
    if (hw->zones[i].temp_c > t) t = hw->zones[i].temp_c;
  return t;
}

int es_hw_effective_cpus(const es_hw_t *hw) {
  int n = hw->ncpus > 0 ? hw->ncpus : 1;
  if (hw->cpu_quota > 0) {
    int q = (int)hw->cpu_quota;
    if ((double)q < hw->cpu_quota) q++; /* ceil: 1.5 CPUs of time keep 2 threads busy */
    if (q < 1) q = 1;
    if (q < n) n = q;
  }
  return n;
}
