/*
 * sysmetrics.c - system metrics: a sampler over procfs/sysfs and a monitor
 * that runs it periodically; see include/edgeserve/sysmetrics.h.
 *
 * What it is for: /health, /metrics and the runtime's own decisions (shed
 * load, drop caches, wait for a hot board) need a cheap, current picture of
 * the machine. es_hw_detect() (hw.c) gives the static picture once; this
 * module keeps the few counters that change and reads only those per sample:
 *   proc/stat (cpu lines only), proc/loadavg, memstat (meminfo + cgroup),
 *   statvfs(data_dir), proc/net/dev, one temp file per thermal zone, one
 *   scaling_max_freq per CPU, the Pi firmware's get_throttled.
 *
 * Invariants:
 *   1. Every procfs/sysfs path goes through the root (src/runtime/sysfs.h);
 *      only data_dir, a path of this process, is used as given.
 *   2. A sample either succeeds whole, or returns an error with *out zeroed
 *      and the sampler's previous counters untouched; rates are always
 *      computed against the last successful sample.
 *   3. Rates and CPU % come from counter deltas: a counter that went back (an
 *      interface re-created, a CPU's counters reset) gives 0 for that sample,
 *      never a huge or negative figure. The first sample has no rates and
 *      says so (ES_SYSM_HAVE_RATES clear).
 *   4. The assessment (es_sysmetrics_assess) is a pure function of the
 *      sample's figures and the rules, so the rule table is tested with
 *      synthetic samples.
 *   5. Monitor: at most one sampling task is in flight (`pending`), so the
 *      sampler and the `work` sample are used by one thread at a time; the
 *      latest sample is only copied under `mu`; es_sysmon_stop() returns only
 *      once the timer thread is joined and no task is pending.
 *
 * Why a timer thread rather than a self-rescheduling task: a task cannot wait
 * for its interval without occupying a worker, and the scheduler has no
 * timers; a thread asleep on a condition variable costs nothing between
 * ticks and wakes at once on stop. The sampling itself still runs as an
 * ES_SCHED_LOW task, on the cores the scheduler was given (the little cores
 * of a big.LITTLE board).
 */
#include "edgeserve/sysmetrics.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "../common/clock.h"
#include "../common/fail.h"
#include "../runtime/sysfs.h"

#define MAX_NET 64 /* interfaces whose previous counters are kept */

typedef struct net_prev {
  char name[16];
  uint64_t rx, tx;
} net_prev_t;

struct es_sysmetrics {
  es__sysroot_t r;
  char root[ES__PATH_MAX];
  char data_dir[ES__PATH_MAX]; /* "" = none */
  es_sysmetrics_rules_t rules;
  double (*clock)(void *);
  void *clock_ud;
  es_hw_t hw;                       /* detected once */
  int16_t index_of[ES_HW_MAX_CPUS]; /* cpu id -> index in hw.cpus, -1 */
  int zone_id[ES_HW_MAX_ZONES];     /* thermal_zoneN of hw.zones[k] */
  /* the last successful sample's counters */
  uint64_t seq;
  double t;
  uint64_t busy, total, iowait; /* aggregate line */
  uint64_t cbusy[ES_HW_MAX_CPUS], ctotal[ES_HW_MAX_CPUS];
  uint8_t cseen[ES_HW_MAX_CPUS];
  int nnet;
  net_prev_t net[MAX_NET];
};

es_sysmetrics_rules_t es_sysmetrics_default_rules(void) {
  es_sysmetrics_rules_t r = {
      .memory_critical_pct = 85,
      .cpu_maxed_pct = 90,
      .thermal_c = 80,
      .warn = {[ES_SYSM_CPU] = 70, [ES_SYSM_MEM] = 75, [ES_SYSM_DISK] = 80, [ES_SYSM_TEMP] = 80},
      .crit = {[ES_SYSM_CPU] = 85, [ES_SYSM_MEM] = 90, [ES_SYSM_DISK] = 95, [ES_SYSM_TEMP] = 85},
  };
  return r;
}

es_sysmetrics_params_t es_sysmetrics_default_params(void) {
  es_sysmetrics_params_t p = {.rules = es_sysmetrics_default_rules()};
  return p;
}

static double mono_clock(void *ud) {
  (void)ud;
  return es__mono_sec();
}

/* The zone numbers behind hw.zones[]: es_hw_detect keeps, in zone-number
 * order, the zones whose temperature it could read; the same walk here
 * recovers their numbers. */
static void find_zone_ids(es_sysmetrics_t *s) {
  int ids[64];
  int n = es__thermal_zone_ids(&s->r, ids, 64);
  int k = 0;
  char buf[32];
  for (int i = 0; i < n && k < s->hw.nzones; i++)
    if (es__read_file(es__at(&s->r, "sys/class/thermal/thermal_zone%d/temp", ids[i]), buf,
                      sizeof buf) > 0)
      s->zone_id[k++] = ids[i];
  s->hw.nzones = k; /* a sensor that went off in between: drop the tail */
}

es_sysmetrics_t *es_sysmetrics_new(const es_sysmetrics_params_t *p, es_error_t *err) {
  if (!p) {
    es__fail(err, ES_EINVAL, -1, "es_sysmetrics_new: params are NULL");
    return NULL;
  }
  const char *root = p->root ? p->root : "";
  const char *dd = p->data_dir ? p->data_dir : "";
  if (strlen(root) >= ES__PATH_MAX || strlen(dd) >= ES__PATH_MAX) {
    es__fail(err, ES_EINVAL, -1, "sysmetrics: root or data_dir longer than %d bytes",
             ES__PATH_MAX - 1);
    return NULL;
  }
  es_sysmetrics_t *s = calloc(1, sizeof *s);
  if (!s) {
    es__fail(err, ES_ENOMEM, -1, "sysmetrics: out of memory (%zu bytes)", sizeof *s);
    return NULL;
  }
  memcpy(s->root, root, strlen(root) + 1);
  memcpy(s->data_dir, dd, strlen(dd) + 1);
  s->rules = p->rules;
  s->clock = p->clock ? p->clock : mono_clock;
  s->clock_ud = p->clock_ud;
  if (es__sysroot_init(&s->r, s->root, err) || es_hw_detect(&s->hw, s->root, err)) {
    free(s);
    return NULL;
  }
  for (int i = 0; i < ES_HW_MAX_CPUS; i++) s->index_of[i] = -1;
  for (int i = 0; i < s->hw.ncpus; i++) s->index_of[s->hw.cpus[i].id] = (int16_t)i;
  find_zone_ids(s);
  return s;
}

void es_sysmetrics_free(es_sysmetrics_t *s) { free(s); }

/* Parses the next unsigned decimal of *p, advancing it. Returns 0, or -1 when
 * there is none. */
static int next_u64(char **p, uint64_t *v) {
  char *s = *p, *end;
  while (*s == ' ' || *s == '\t') s++;
  if (*s < '0' || *s > '9') return -1;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 10);
  if (errno) return -1;
  *v = x;
  *p = end;
  return 0;
}

static double pct(uint64_t part, uint64_t whole) {
  return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* "cpu[N] user nice system idle iowait irq softirq steal [guest guest_nice]":
 * guest time is already inside user, so it is left out of the total. */
static int parse_cpu_line(char *p, uint64_t *busy, uint64_t *total, uint64_t *iowait) {
  uint64_t f[8] = {0};
  int n = 0;
  while (n < 8 && next_u64(&p, &f[n]) == 0) n++;
  if (n < 4) return -1;
  uint64_t t = 0;
  for (int i = 0; i < n; i++) t += f[i];
  *total = t;
  *iowait = f[4];
  *busy = t - f[3] - f[4];
  return 0;
}

static int read_stat(es_sysmetrics_t *s, uint64_t *cb, uint64_t *ct, uint8_t *seen, uint64_t agg[3],
                     es_error_t *err) {
  char buf[1024]; /* cpu lines are under 200 bytes; the long intr line is cut */
  es__lines_t l;
  const char *path = es__at(&s->r, "proc/stat");
  if (es__lines_open(&l, path, buf, sizeof buf))
    return es__fail(err, ES_EIO, -1, "cannot read %s: is \"%s\" the root of a Linux system?",
                    path ? path : "proc/stat", s->root[0] ? s->root : "/");
  int rc = 0, got_agg = 0;
  char *line;
  while (es__lines_next(&l, &line)) {
    if (strncmp(line, "cpu", 3) != 0) break; /* the cpu lines come first */
    uint64_t b, t, w;
    char *p = line + 3;
    int id = -1;
    if (*p >= '0' && *p <= '9') {
      uint64_t v;
      if (next_u64(&p, &v)) goto bad;
      id = v < ES_HW_MAX_CPUS ? (int)v : ES_HW_MAX_CPUS;
    }
    if (parse_cpu_line(p, &b, &t, &w)) goto bad;
    if (id < 0) {
      agg[0] = b, agg[1] = t, agg[2] = w;
      got_agg = 1;
    } else if (id < ES_HW_MAX_CPUS && s->index_of[id] >= 0) {
      int k = s->index_of[id];
      cb[k] = b, ct[k] = t, seen[k] = 1;
    }
    continue;
  bad:
    rc = es__fail(err, ES_EFORMAT, -1, "%s: malformed line \"%.60s\"", path, line);
    break;
  }
  es__lines_close(&l);
  if (rc == 0 && !got_agg) rc = es__fail(err, ES_EFORMAT, -1, "%s: no \"cpu\" line", path);
  return rc;
}

static void cpu_figures(es_sysmetrics_t *s, es_sysmetrics_sample_t *out, const uint64_t *cb,
                        const uint64_t *ct, const uint8_t *seen, const uint64_t agg[3], int rates) {
  if (rates && agg[1] > s->total && agg[0] >= s->busy && agg[2] >= s->iowait) {
    out->cpu_pct = pct(agg[0] - s->busy, agg[1] - s->total);
    out->iowait_pct = pct(agg[2] - s->iowait, agg[1] - s->total);
  }
  out->ncores = s->hw.ncpus;
  out->nclusters = s->hw.nclusters;
  for (int c = 0; c < s->hw.nclusters; c++) {
    out->clusters[c].ncpus = s->hw.clusters[c].ncpus;
    out->clusters[c].big = s->hw.clusters[c].big;
    out->clusters[c].max_khz = s->hw.clusters[c].max_khz;
  }
  int online[ES_HW_MAX_CLUSTERS] = {0};
  for (int i = 0; i < s->hw.ncpus; i++) {
    es_sysmetrics_core_t *c = &out->cores[i];
    c->id = s->hw.cpus[i].id;
    c->cluster = s->hw.cpus[i].cluster;
    if (!seen[i]) {
      c->pct = -1;
      continue;
    }
    double v = 0;
    if (rates && s->cseen[i] && ct[i] > s->ctotal[i] && cb[i] >= s->cbusy[i])
      v = pct(cb[i] - s->cbusy[i], ct[i] - s->ctotal[i]);
    c->pct = (float)v;
    es_sysmetrics_cluster_t *cl = &out->clusters[c->cluster];
    cl->pct += v;
    if (v > cl->max_pct) cl->max_pct = v;
    online[c->cluster]++;
  }
  for (int c = 0; c < s->hw.nclusters; c++)
    if (online[c]) out->clusters[c].pct /= online[c];
}

static int read_loadavg(es_sysmetrics_t *s, es_sysmetrics_sample_t *out, es_error_t *err) {
  char buf[128];
  const char *path = es__at(&s->r, "proc/loadavg");
  if (es__read_file(path, buf, sizeof buf) < 0) return 0;
  char *p = buf, *end;
  double v[3];
  for (int i = 0; i < 3; i++, p = end) {
    v[i] = strtod(p, &end);
    if (end == p) return es__fail(err, ES_EFORMAT, -1, "%s: malformed \"%.60s\"", path, buf);
  }
  out->load1 = v[0], out->load5 = v[1], out->load15 = v[2];
  uint64_t run, tot;
  if (next_u64(&p, &run) == 0 && *p == '/' && (p++, next_u64(&p, &tot) == 0)) {
    out->procs_running = (int)run;
    out->procs_total = (int)tot;
  }
  out->have |= ES_SYSM_HAVE_LOAD;
  return 0;
}

static void read_disk(es_sysmetrics_t *s, es_sysmetrics_sample_t *out) {
  struct statvfs v;
  if (!s->data_dir[0] || statvfs(s->data_dir, &v) != 0) return;
  uint64_t bs = v.f_frsize ? (uint64_t)v.f_frsize : (uint64_t)v.f_bsize;
  uint64_t used = ((uint64_t)v.f_blocks - (uint64_t)v.f_bfree) * bs;
  out->disk_total = (uint64_t)v.f_blocks * bs;
  out->disk_avail = (uint64_t)v.f_bavail * bs;
  out->disk_pct = pct(used, used + out->disk_avail);
  out->have |= ES_SYSM_HAVE_DISK;
}

/* "  eth0: rxbytes rxpackets errs drop fifo frame compressed multicast
 *          txbytes txpackets ..." after two header lines. */
static int read_net(es_sysmetrics_t *s, es_sysmetrics_sample_t *out, net_prev_t *now, int *nnow,
                    double dt, int rates, es_error_t *err) {
  char buf[512];
  es__lines_t l;
  const char *path = es__at(&s->r, "proc/net/dev");
  if (es__lines_open(&l, path, buf, sizeof buf)) return 0;
  int rc = 0;
  char *line;
  *nnow = 0;
  while (es__lines_next(&l, &line)) {
    char *colon = strchr(line, ':');
    if (!colon || strchr(line, '|')) continue; /* the two header lines */
    *colon = 0;
    char *name = line;
    while (*name == ' ') name++;
    uint64_t f[10];
    char *p = colon + 1;
    for (int i = 0; i < 10; i++)
      if (next_u64(&p, &f[i])) {
        rc = es__fail(err, ES_EFORMAT, -1, "%s: malformed counters of \"%.15s\"", path, name);
        goto out;
      }
    uint64_t rx = f[0], rxp = f[1], tx = f[8], txp = f[9];
    int lo = strcmp(name, "lo") == 0;
    double rbps = 0, tbps = 0;
    if (rates && dt > 0)
      for (int j = 0; j < s->nnet; j++)
        if (strncmp(s->net[j].name, name, sizeof s->net[j].name - 1) == 0) {
          if (rx >= s->net[j].rx) rbps = (double)(rx - s->net[j].rx) / dt;
          if (tx >= s->net[j].tx) tbps = (double)(tx - s->net[j].tx) / dt;
          break;
        }
    if (*nnow < MAX_NET) {
      net_prev_t *n = &now[(*nnow)++];
      snprintf(n->name, sizeof n->name, "%s", name);
      n->rx = rx, n->tx = tx;
    }
    if (out->nifaces < ES_SYSM_MAX_IFACES) {
      es_sysmetrics_iface_t *i = &out->ifaces[out->nifaces++];
      snprintf(i->name, sizeof i->name, "%s", name);
      i->rx_bytes = rx, i->tx_bytes = tx, i->rx_packets = rxp, i->tx_packets = txp;
      i->rx_bps = rbps, i->tx_bps = tbps;
    }
    if (lo) continue;
    out->rx_bytes += rx, out->tx_bytes += tx, out->rx_packets += rxp, out->tx_packets += txp;
    out->rx_bps += rbps, out->tx_bps += tbps;
  }
  out->have |= ES_SYSM_HAVE_NET;
out:
  es__lines_close(&l);
  return rc;
}

static int read_thermal(es_sysmetrics_t *s, es_sysmetrics_sample_t *out, es_error_t *err) {
  out->nzones = s->hw.nzones;
  for (int k = 0; k < s->hw.nzones; k++) {
    es_sysmetrics_zone_t *z = &out->zones[k];
    const es_hw_zone_t *h = &s->hw.zones[k];
    memcpy(z->type, h->type, sizeof z->type);
    z->passive_c = h->passive_c;
    z->crit_c = h->crit_c;
    int64_t milli;
    int rc = es__sysfs_i64(es__at(&s->r, "sys/class/thermal/thermal_zone%d/temp", s->zone_id[k]),
                           &milli, err);
    if (rc < 0) return rc;
    if (rc == 0) continue;
    z->ok = 1;
    z->temp_c = (double)milli / 1000.0;
    if (!(out->have & ES_SYSM_HAVE_TEMP) || z->temp_c > out->max_temp_c)
      out->max_temp_c = z->temp_c;
    out->have |= ES_SYSM_HAVE_TEMP;
    if (z->passive_c > 0 && z->temp_c >= z->passive_c) out->throttled = 1;
  }
  return 0;
}

static int read_freq(es_sysmetrics_t *s, es_sysmetrics_sample_t *out, es_error_t *err) {
  for (int i = 0; i < s->hw.ncpus; i++) {
    const es_hw_cpu_t *c = &s->hw.cpus[i];
    if (c->max_khz <= 0) continue;
    int64_t cap;
    int rc = es__sysfs_i64(
        es__at(&s->r, "sys/devices/system/cpu/cpu%d/cpufreq/scaling_max_freq", c->id), &cap, err);
    if (rc < 0) return rc;
    if (rc == 0 || cap <= 0) continue;
    es_sysmetrics_cluster_t *cl = &out->clusters[c->cluster];
    if (cl->cap_khz == 0 || cap < cl->cap_khz) cl->cap_khz = cap;
    if (cap < c->max_khz) out->freq_capped = out->throttled = 1;
  }
  return 0;
}

static int read_rpi(es_sysmetrics_t *s, es_sysmetrics_sample_t *out, es_error_t *err) {
  char buf[32], *end;
  out->rpi_throttled = -1;
  const char *path = es__at(&s->r, "sys/devices/platform/soc/soc:firmware/get_throttled");
  if (es__read_file(path, buf, sizeof buf) <= 0) return 0;
  errno = 0;
  unsigned long long v = strtoull(buf, &end, 16); /* the driver prints "%x"; 0x accepted */
  if (errno || end == buf || *end)
    return es__fail(err, ES_EFORMAT, -1, "%s: not a hex number: \"%s\"", path, buf);
  out->rpi_throttled = (int64_t)(v & 0xffffffffu);
  out->have |= ES_SYSM_HAVE_RPI;
  if (v & 0xe) out->throttled = 1;
  return 0;
}

int es_sysmetrics_sample(es_sysmetrics_t *s, es_sysmetrics_sample_t *out, es_error_t *err) {
  assert(s && out);
  /* this sample's counters, committed to *s only on success (invariant 2) */
  uint64_t cb[ES_HW_MAX_CPUS], ct[ES_HW_MAX_CPUS], agg[3] = {0};
  uint8_t seen[ES_HW_MAX_CPUS];
  net_prev_t net[MAX_NET];
  int nnet = 0;
  memset(out, 0, sizeof *out);
  memset(seen, 0, (size_t)s->hw.ncpus);
  out->t = s->clock(s->clock_ud);
  int rates = s->seq > 0;
  double dt = rates ? out->t - s->t : 0;
  int rc;
  if ((rc = read_stat(s, cb, ct, seen, agg, err))) goto fail;
  cpu_figures(s, out, cb, ct, seen, agg, rates);
  if ((rc = read_loadavg(s, out, err))) goto fail;
  if ((rc = es_memstat_read(&out->mem, s->root, err))) goto fail;
  if (out->mem.effective_total)
    out->mem_pct = 100.0 - pct(out->mem.available, out->mem.effective_total);
  if (out->mem.swap_total && out->mem.swap_free <= out->mem.swap_total)
    out->swap_pct = pct(out->mem.swap_total - out->mem.swap_free, out->mem.swap_total);
  read_disk(s, out);
  if ((rc = read_net(s, out, net, &nnet, dt, rates, err))) goto fail;
  if ((rc = read_thermal(s, out, err))) goto fail;
  if ((rc = read_freq(s, out, err))) goto fail;
  if ((rc = read_rpi(s, out, err))) goto fail;

  s->seq++;
  out->seq = s->seq;
  if (rates) {
    out->have |= ES_SYSM_HAVE_RATES;
    out->interval_s = dt;
  }
  s->t = out->t;
  s->busy = agg[0], s->total = agg[1], s->iowait = agg[2];
  for (int i = 0; i < s->hw.ncpus; i++) {
    s->cseen[i] = seen[i];
    if (seen[i]) s->cbusy[i] = cb[i], s->ctotal[i] = ct[i];
  }
  s->nnet = nnet;
  memcpy(s->net, net, (size_t)nnet * sizeof net[0]);
  es_sysmetrics_assess(out, &s->rules);
  return 0;
fail:
  memset(out, 0, sizeof *out);
  return rc;
}

static int level(double v, double warn, double crit) {
  if (crit > 0 && v >= crit) return ES_SYSM_LEVEL_CRIT;
  if (warn > 0 && v >= warn) return ES_SYSM_LEVEL_WARN;
  return ES_SYSM_LEVEL_OK;
}

void es_sysmetrics_assess(es_sysmetrics_sample_t *m, const es_sysmetrics_rules_t *rules) {
  es_sysmetrics_rules_t def;
  if (!rules) {
    def = es_sysmetrics_default_rules();
    rules = &def;
  }
  m->flags = 0;
  memset(m->level, 0, sizeof m->level);

  /* CPU: the busiest cluster (big cores maxed while the little idle is
   * maxed for inference); the overall figure when there are no clusters. */
  if (m->have & ES_SYSM_HAVE_RATES) {
    double busiest = m->nclusters ? 0 : m->cpu_pct;
    for (int c = 0; c < m->nclusters; c++)
      if (m->clusters[c].pct > busiest) busiest = m->clusters[c].pct;
    if (busiest > rules->cpu_maxed_pct) m->flags |= ES_SYSM_CPU_MAXED;
    m->level[ES_SYSM_CPU] = level(busiest, rules->warn[ES_SYSM_CPU], rules->crit[ES_SYSM_CPU]);
  }
  if (m->mem.effective_total) {
    if (m->mem_pct > rules->memory_critical_pct) m->flags |= ES_SYSM_MEMORY_CRITICAL;
    m->level[ES_SYSM_MEM] = level(m->mem_pct, rules->warn[ES_SYSM_MEM], rules->crit[ES_SYSM_MEM]);
  }
  if (m->have & ES_SYSM_HAVE_DISK)
    m->level[ES_SYSM_DISK] =
        level(m->disk_pct, rules->warn[ES_SYSM_DISK], rules->crit[ES_SYSM_DISK]);

  int hot = m->throttled;
  for (int k = 0; k < m->nzones; k++) {
    const es_sysmetrics_zone_t *z = &m->zones[k];
    double trip = z->passive_c > 0 ? z->passive_c : rules->thermal_c;
    if (z->ok && trip > 0 && z->temp_c >= trip) hot = 1;
  }
  if (hot) m->flags |= ES_SYSM_THERMAL_LIKELY;
  if (m->have & ES_SYSM_HAVE_TEMP)
    m->level[ES_SYSM_TEMP] =
        level(m->max_temp_c, rules->warn[ES_SYSM_TEMP], rules->crit[ES_SYSM_TEMP]);

  m->action = (m->flags & ES_SYSM_MEMORY_CRITICAL)  ? ES_SYSM_CLEAR_CACHE
              : (m->flags & ES_SYSM_THERMAL_LIKELY) ? ES_SYSM_COOL_DOWN
              : (m->flags & ES_SYSM_CPU_MAXED)      ? ES_SYSM_REDUCE_LOAD
                                                    : ES_SYSM_OK;
}

const char *es_sysmetrics_action_str(int action) {
  switch (action) {
  case ES_SYSM_OK: return "OK";
  case ES_SYSM_CLEAR_CACHE: return "clear cache";
  case ES_SYSM_COOL_DOWN: return "wait for the device to cool";
  case ES_SYSM_REDUCE_LOAD: return "reduce load";
  default: return "?";
  }
}

/* ---- the monitor ---- */

struct es_sysmon {
  es_sched_t *sched;
  es_sysmetrics_t *s;
  int interval_ms;
  void (*on_sample)(void *, const es_sysmetrics_sample_t *);
  void *ud;
  pthread_t timer;
  pthread_mutex_t mu;
  pthread_cond_t cv;             /* stop requested, or pending went to 0 (CLOCK_MONOTONIC) */
  int stop, pending;             /* under mu */
  int last_rc;                   /* under mu */
  es_sysmetrics_sample_t work;   /* used by the one sampling thread (invariant 5) */
  es_sysmetrics_sample_t latest; /* under mu */
};

es_sysmon_params_t es_sysmon_default_params(void) {
  es_sysmon_params_t p = {.metrics = es_sysmetrics_default_params(), .interval_ms = 1000};
  return p;
}

/* Takes a sample into m->work and publishes it; on the one thread allowed. */
static void sysmon_sample(es_sysmon_t *m) {
  int rc = es_sysmetrics_sample(m->s, &m->work, NULL);
  pthread_mutex_lock(&m->mu);
  m->last_rc = rc;
  if (rc == 0) m->latest = m->work;
  pthread_mutex_unlock(&m->mu);
  if (rc == 0 && m->on_sample) m->on_sample(m->ud, &m->work);
}

static void sysmon_task(void *arg) { sysmon_sample(arg); }

static void sysmon_done(void *arg, int status) {
  es_sysmon_t *m = arg;
  pthread_mutex_lock(&m->mu);
  if (status) m->last_rc = status;
  m->pending = 0;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

static void add_ms(struct timespec *t, int ms) {
  t->tv_sec += ms / 1000;
  t->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (t->tv_nsec >= 1000000000L) t->tv_sec++, t->tv_nsec -= 1000000000L;
}

static void *sysmon_timer(void *arg) {
  es_sysmon_t *m = arg;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  pthread_mutex_lock(&m->mu);
  for (;;) {
    add_ms(&next, m->interval_ms);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec)) {
      next = now; /* fell behind (a slow sample, a suspended machine): no burst */
      add_ms(&next, m->interval_ms);
    }
    while (!m->stop && pthread_cond_timedwait(&m->cv, &m->mu, &next) != ETIMEDOUT) {
    }
    if (m->stop) break;
    if (!m->sched) {
      pthread_mutex_unlock(&m->mu);
      sysmon_sample(m);
      pthread_mutex_lock(&m->mu);
      continue;
    }
    if (m->pending) continue; /* the previous tick's task has not finished */
    m->pending = 1;
    pthread_mutex_unlock(&m->mu);
    es_task_opts_t o = {.done = sysmon_done};
    int rc = es_sched_submit(m->sched, sysmon_task, m, ES_SCHED_LOW, &o);
    pthread_mutex_lock(&m->mu);
    if (rc) {
      m->pending = 0;
      m->last_rc = rc;
    }
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

es_sysmon_t *es_sysmon_start(es_sched_t *sched, const es_sysmon_params_t *p, es_error_t *err) {
  if (!p || p->interval_ms < 10) {
    es__fail(err, ES_EINVAL, -1, "es_sysmon_start: %s", p ? "interval_ms below 10" : "NULL params");
    return NULL;
  }
  es_sysmon_t *m = calloc(1, sizeof *m);
  if (!m) {
    es__fail(err, ES_ENOMEM, -1, "sysmon: out of memory (%zu bytes)", sizeof *m);
    return NULL;
  }
  m->sched = sched;
  m->interval_ms = p->interval_ms;
  m->on_sample = p->on_sample;
  m->ud = p->ud;
  if (!(m->s = es_sysmetrics_new(&p->metrics, err))) goto fail_s;
  int rc = es_sysmetrics_sample(m->s, &m->latest, err);
  if (rc) goto fail_sample;
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca)) goto fail_sys;
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  rc = pthread_cond_init(&m->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (rc) goto fail_sys;
  if (pthread_mutex_init(&m->mu, NULL)) goto fail_mu;
  pthread_attr_t ta;
  if (pthread_attr_init(&ta)) goto fail_attr;
  /* it sleeps and submits, or (sched NULL) samples: about 20 KB of frames */
  pthread_attr_setstacksize(&ta, 256 * 1024);
  rc = pthread_create(&m->timer, &ta, sysmon_timer, m);
  pthread_attr_destroy(&ta);
  if (rc) goto fail_attr;
  return m;
fail_attr:
  pthread_mutex_destroy(&m->mu);
fail_mu:
  pthread_cond_destroy(&m->cv);
fail_sys:
  es__fail(err, ES_ENOMEM, -1, "sysmon: cannot start the timer thread");
fail_sample:
  es_sysmetrics_free(m->s);
fail_s:
  free(m);
  return NULL;
}

int es_sysmon_latest(es_sysmon_t *m, es_sysmetrics_sample_t *out) {
  if (!m || !out) return ES_EINVAL;
  pthread_mutex_lock(&m->mu);
  *out = m->latest;
  pthread_mutex_unlock(&m->mu);
  return 0;
}

int es_sysmon_last_error(es_sysmon_t *m) {
  pthread_mutex_lock(&m->mu);
  int rc = m->last_rc;
  pthread_mutex_unlock(&m->mu);
  return rc;
}

void es_sysmon_stop(es_sysmon_t *m) {
  if (!m) return;
  pthread_mutex_lock(&m->mu);
  m->stop = 1;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  pthread_join(m->timer, NULL);
  pthread_mutex_lock(&m->mu);
  while (m->pending) pthread_cond_wait(&m->cv, &m->mu);
  pthread_mutex_unlock(&m->mu);
  pthread_cond_destroy(&m->cv);
  pthread_mutex_destroy(&m->mu);
  es_sysmetrics_free(m->s);
  free(m);
}
