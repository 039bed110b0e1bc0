/*
 * memstat.c - one sample of this process's memory and of what it may still
 * get; see include/edgeserve/memstat.h.
 *
 * What it is for: the memory budget (budget.h) samples this every second
 * while serving, and es_hw_detect() takes one sample at start-up. A sample is
 * three or more small procfs/cgroupfs reads:
 *   proc/self/status   VmHWM, VmRSS, RssAnon, RssFile, RssShmem (kB)
 *   proc/meminfo       MemTotal, MemFree, MemAvailable, Cached, SwapTotal,
 *                      SwapFree (kB)
 *   proc/self/cgroup   which memory cgroup, then up its ancestors:
 *                      v2 memory.max ("max" = none) + memory.current,
 *                      v1 memory.limit_in_bytes (>= 2^60 = none) +
 *                      memory.usage_in_bytes
 * /proc/self/status, not smaps_rollup: smaps_rollup walks every mapping of
 * the process (its cost grows with the mapped model), status reads counters
 * the kernel keeps (docs/runtime/hw.md has the figures).
 *
 * Invariants:
 *   1. No allocation, no global state: buffers are on the stack (under 5 KB),
 *      so a sample is safe from any thread at any time.
 *   2. Only /proc/meminfo is required (ES_EIO without it, ES_EFORMAT when it
 *      has no MemTotal); a missing status file or cgroup leaves those fields 0.
 *      A field that is present but unparsable is ES_EFORMAT naming the file.
 *   3. The cgroup limit is the tightest among the process's cgroup and its
 *      ancestors (systemd puts MemoryMax= on slices, containers on their own
 *      cgroup, whose path may not exist under the container's mount: the
 *      walk simply starts higher). cg_usage is the usage of the cgroup whose
 *      limit that is, so cg_limit - cg_usage is the headroom that binds.
 *   4. available <= sys_available and effective_total <= sys_total always;
 *      a usage above the limit (v1 allows it briefly) gives available 0.
 */
#include "edgeserve/memstat.h"

#include <string.h>

#include "../common/fail.h"
#include "sysfs.h"

#define V1_UNLIMITED (1ull << 60) /* v1 writes "no limit" as ~2^63 rounded to pages */

/* One "Key: N kB" file: fills the fields whose keys are listed, stops early
 * once all are found. Returns 1 read, 0 absent, ES_EFORMAT. */
typedef struct kb_field {
  const char *key;
  uint64_t *dst;
  int *seen;
} kb_field;

static int read_kb_file(const char *path, kb_field *f, int nf, es_error_t *err) {
  char buf[512]; /* the longest lines here are about 30 bytes */
  es__lines_t l;
  if (es__lines_open(&l, path, buf, sizeof buf)) return 0;
  int left = nf, rc = 1;
  char *line, *key, *val;
  while (left > 0 && es__lines_next(&l, &line)) {
    if (es__split_kv(line, &key, &val)) continue;
    for (int i = 0; i < nf; i++) {
      if (*f[i].seen || strcmp(key, f[i].key) != 0) continue;
      if (es__parse_kb(val, f[i].dst)) {
        rc = es__fail(err, ES_EFORMAT, -1, "%s: %s is \"%.40s\", expected a size like \"1234 kB\"",
                      path, key, val);
        goto done;
      }
      *f[i].seen = 1;
      left--;
      break;
    }
  }
done:
  es__lines_close(&l);
  return rc;
}

/* A cgroup limit or usage file: "max" or a byte count. Returns 1 (*v set, 0
 * for no limit), 0 absent, ES_EFORMAT. */
static int read_cg_bytes(const char *path, uint64_t *v, es_error_t *err) {
  char buf[64];
  if (es__read_file(path, buf, sizeof buf) < 0) return 0;
  int64_t n;
  if (strcmp(buf, "max") == 0) {
    *v = 0;
  } else if (es__parse_i64(buf, &n) == 0 && n >= 0) {
    *v = (uint64_t)n >= V1_UNLIMITED ? 0 : (uint64_t)n;
  } else {
    return es__fail(err, ES_EFORMAT, -1, "%s: expected a byte count or \"max\", found \"%.40s\"",
                    path, buf);
  }
  return 1;
}

static int read_cgroup(es__sysroot_t *r, es_memstat_t *out, es_error_t *err) {
  char dir[ES__PATH_MAX];
  size_t mountlen;
  int v = es__cgroup_dir(r, "memory", dir, sizeof dir, &mountlen, err);
  if (v <= 0) return v;
  const char *limit_name = v == 2 ? "memory.max" : "memory.limit_in_bytes";
  const char *usage_name = v == 2 ? "memory.current" : "memory.usage_in_bytes";
  int found = 0, rc;
  uint64_t limit = 0, usage = 0, first_usage = 0, lim = 0, use = 0;
  do {
    rc = read_cg_bytes(es__at(r, "%s/%s", dir, limit_name), &lim, err);
    if (rc < 0) return rc;
    int here = rc;
    /* the leaf-most cgroup that exists gives the usage when nothing limits */
    if (!found || (rc && lim && (!limit || lim < limit))) {
      rc = read_cg_bytes(es__at(r, "%s/%s", dir, usage_name), &use, err);
      if (rc < 0) return rc;
      if (rc && !found) first_usage = use;
      if (here && lim && (!limit || lim < limit)) {
        limit = lim;
        usage = rc ? use : 0;
      }
      here |= rc;
    }
    found |= here;
  } while (es__cgroup_up(dir, mountlen));
  if (!found) return 0; /* v2 without the memory controller (Raspberry Pi OS) */
  out->cg_version = v;
  out->cg_limit = limit;
  out->cg_usage = limit ? usage : first_usage;
  return 0;
}

int es_memstat_read(es_memstat_t *out, const char *root, es_error_t *err) {
  es__sysroot_t r;
  memset(out, 0, sizeof *out);
  int rc = es__sysroot_init(&r, root, err);
  if (rc) return rc;

  int s[5] = {0};
  kb_field status[] = {{"VmHWM", &out->rss_peak, &s[0]},
                       {"VmRSS", &out->rss, &s[1]},
                       {"RssAnon", &out->rss_anon, &s[2]},
                       {"RssFile", &out->rss_file, &s[3]},
                       {"RssShmem", &out->rss_shmem, &s[4]}};
  rc = read_kb_file(es__at(&r, "proc/self/status"), status, 5, err);
  if (rc < 0) goto fail;

  int m[6] = {0};
  uint64_t mem_free = 0, cached = 0;
  kb_field meminfo[] = {
      {"MemTotal", &out->sys_total, &m[0]},         {"MemFree", &mem_free, &m[1]},
      {"MemAvailable", &out->sys_available, &m[2]}, {"Cached", &cached, &m[3]},
      {"SwapTotal", &out->swap_total, &m[4]},       {"SwapFree", &out->swap_free, &m[5]}};
  const char *path = es__at(&r, "proc/meminfo");
  rc = read_kb_file(path, meminfo, 6, err);
  if (rc < 0) goto fail;
  if (rc == 0) {
    rc = es__fail(err, ES_EIO, -1, "cannot read %s", path ? path : "proc/meminfo (path too long)");
    goto fail;
  }
  if (!m[0]) {
    rc = es__fail(err, ES_EFORMAT, -1, "%s: no MemTotal line", path);
    goto fail;
  }
  if (!m[2]) out->sys_available = mem_free + cached; /* kernels before 3.14 */
  if (out->sys_available > out->sys_total) out->sys_available = out->sys_total;

  rc = read_cgroup(&r, out, err);
  if (rc < 0) goto fail;

  out->available = out->sys_available;
  out->effective_total = out->sys_total;
  if (out->cg_limit) {
    uint64_t room = out->cg_usage < out->cg_limit ? out->cg_limit - out->cg_usage : 0;
    if (room < out->available) out->available = room;
    if (out->cg_limit < out->effective_total) out->effective_total = out->cg_limit;
  }
  return 0;
fail:
  memset(out, 0, sizeof *out);
  return rc;
}
