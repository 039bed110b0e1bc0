/*
 * budget.c - the memory budget: tiers, reservations, pressure levels.
 *
 * A server on a 1 GB board dies by the OOM killer, not by a slow request: so
 * every large allocation (a model load, a cache, a big request) is reserved
 * here first, and refused up front, with a reason in bytes, when it would not
 * fit. The budget also turns samples of the real usage (memstat.h, taken by
 * the caller) into a pressure level, and tells listeners (caches, the model
 * registry) when it changes so that they shrink before the kernel steps in.
 *
 * Accounting. Reservations are promises, samples are facts, and a loaded
 * model's reservation is also part of the sampled RSS: adding both would
 * count it twice. At each sample the budget records
 *   unreserved = max(0, rss_anon + rss_shmem - reserved_anon)
 * (the process's anonymous memory that no reservation explains: the server's
 * own heap, stacks, libraries' data) and counts, until the next sample,
 *   used = reserved (now) + unreserved (at the sample).
 * A reservation made after the sample counts in full (it is not resident
 * yet); one released after it stops counting at once. File-backed resident
 * pages beyond the reservations' file part (the binary, libc) are not
 * counted: they are small and reclaimable. The blind spot: anonymous memory
 * that was reserved but not yet allocated at the sample hides as much
 * unreserved memory; the safety margin covers it, and the next sample after
 * the allocation corrects it.
 *
 * The system check uses the sample's `available` (MemAvailable, or the
 * cgroup's headroom when lower) less what the reservations will still take:
 *   available_now = available - pending - max(0, reserved - reserved_at_sample)
 * where pending = reserved bytes not resident at the sample
 * (max(0, reserved_anon - anon) + max(0, reserved_file - rss_file)). A
 * reservation must fit in available_now - safety. Before the first sample
 * (or with a sample without effective_total) there is no system check.
 *
 * Invariants (under b->mu):
 *   1. reserved[k] is the sum of the held reservations of kind k, and
 *      reserved_file <= sum of reserved[k]; peak[k] >= reserved[k].
 *   2. A reservation is granted only if bytes <= min(limit[k] - reserved[k],
 *      budget - used, available_now - safety); so reserved[k] <= limit[k]
 *      and used <= budget hold after every grant made since the last sample.
 *      (A sample may show used > budget: the process grew without asking.)
 *   3. level == max(strict, min(level_before, relaxed)), where strict uses
 *      the thresholds and relaxed the thresholds less hysteresis: a level is
 *      entered at its threshold and left only below threshold - hysteresis.
 *   4. Listeners run on one thread at a time (dispatching), never under mu,
 *      and see the levels in order: notified follows level until equal.
 */
#include "edgeserve/budget.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fail.h"

#define MiB (1024ull * 1024ull)

/* ---- tiers -------------------------------------------------------------------- */

/* Anchors in MiB (work = total - the others). Every column is non-decreasing
 * from row to row, so linear interpolation never gives a bigger machine less
 * of anything. The reasoning behind each row is in docs/runtime/budget.md. */
/* clang-format off */
static const struct {
  const char *name;
  uint64_t total, os, model, cache, safety;
} tiers[] = {
  /* name     total    os      model   cache   safety */
  {"512MB",   512,     224,    48,     16,     80},
  {"1GB",     1024,    544,    64,     32,     160},   /* Pi 4: process budget 320 */
  {"2GB",     2048,    640,    384,    128,    256},
  {"4GB",     4096,    1024,   1024,   512,    512},   /* Orange Pi 5 split */
  {"8GB",     8192,    2048,   2048,   1024,   1536},  /* users' laptop table */
  {"16GB",    16384,   3072,   3072,   1536,   2048},  /* users' laptop table */
  {"32GB+",   32768,   4096,   6144,   3072,   3072},  /* users' laptop table */
};
/* clang-format on */
#define NTIERS (sizeof tiers / sizeof tiers[0])

/* A figure between anchors i and i + 1 for `total` bytes (a0, a1 in MiB). */
static uint64_t lerp(uint64_t a0, uint64_t a1, size_t i, uint64_t total) {
  uint64_t t0 = tiers[i].total, t1 = tiers[i + 1].total;
  assert(a1 >= a0 && total >= t0 * MiB && total <= t1 * MiB);
  /* (a1 - a0) < 2^14 MiB and total - t0 < 2^35 bytes: no overflow. */
  return a0 * MiB + (a1 - a0) * (total - t0 * MiB) / (t1 - t0);
}

/* A figure scaled from anchor i in proportion to `total` (a in MiB):
 * a * total / tiers[i].total, split so that it cannot overflow for
 * total < 2^50 (the caller clamps). */
static uint64_t scale(uint64_t a, size_t i, uint64_t total) {
  uint64_t t = tiers[i].total;
  return a * (total / t) + a * (total % t) / t;
}

es_budget_tier_t es_budget_tier_for(uint64_t total) {
  es_budget_tier_t t = {0};
  t.total = total;
  t.name = "<512MB";
  for (size_t i = 0; i < NTIERS; i++)
    if (total >= tiers[i].total * MiB / 20 * 17) t.name = tiers[i].name; /* within 15% */
  size_t last = NTIERS - 1;
  if (total > (1ull << 50)) total = 1ull << 50; /* figures stop growing at 1 PiB */
  if (total <= tiers[0].total * MiB || total >= tiers[last].total * MiB) {
    size_t i = total <= tiers[0].total * MiB ? 0 : last;
    t.os_reserve = scale(tiers[i].os, i, total);
    t.model = scale(tiers[i].model, i, total);
    t.cache = scale(tiers[i].cache, i, total);
    t.safety = scale(tiers[i].safety, i, total);
  } else {
    size_t i = 0;
    while (total > tiers[i + 1].total * MiB) i++;
    t.os_reserve = lerp(tiers[i].os, tiers[i + 1].os, i, total);
    t.model = lerp(tiers[i].model, tiers[i + 1].model, i, total);
    t.cache = lerp(tiers[i].cache, tiers[i + 1].cache, i, total);
    t.safety = lerp(tiers[i].safety, tiers[i + 1].safety, i, total);
  }
  t.work = t.total - t.os_reserve - t.model - t.cache - t.safety;
  return t;
}

/* ---- names and sizes ---------------------------------------------------------- */

const char *es_budget_kind_name(es_budget_kind_t kind) {
  switch (kind) {
  case ES_BUDGET_MODEL: return "model";
  case ES_BUDGET_CACHE: return "cache";
  case ES_BUDGET_WORK: return "work";
  default: return "?";
  }
}

const char *es_pressure_name(es_pressure_t level) {
  switch (level) {
  case ES_PRESSURE_OK: return "ok";
  case ES_PRESSURE_WARNING: return "warning";
  case ES_PRESSURE_CRITICAL: return "critical";
  default: return "?";
  }
}

char *es_budget_human(uint64_t bytes, char *buf, size_t cap) {
  if (bytes < 1024)
    snprintf(buf, cap, "%u B", (unsigned)bytes);
  else if (bytes < MiB)
    snprintf(buf, cap, "%.1f KiB", (double)bytes / 1024.0);
  else if (bytes < 1024 * MiB)
    snprintf(buf, cap, "%.1f MiB", (double)bytes / (double)MiB);
  else
    snprintf(buf, cap, "%.2f GiB", (double)bytes / (double)(1024 * MiB));
  return buf;
}

/* ---- the budget --------------------------------------------------------------- */

struct es_budget {
  pthread_mutex_t mu;
  pthread_cond_t idle; /* signalled when a dispatch ends (for off_pressure) */
  /* configuration (immutable after es_budget_new) */
  es_budget_tier_t tier;
  int explicit_budget;
  uint64_t budget, safety, limit[ES_BUDGET_NKINDS];
  double warning, critical, sys_warning, sys_critical, hyst;
  /* reservations (invariant 1) */
  uint64_t reserved[ES_BUDGET_NKINDS], reserved_file;
  uint64_t peak[ES_BUDGET_NKINDS], held[ES_BUDGET_NKINDS], refusals[ES_BUDGET_NKINDS];
  uint64_t peak_used;
  /* the last sample and what was derived from it (see "Accounting") */
  uint64_t samples;
  es_memstat_t last;
  uint64_t unreserved, pending, reserved_at_sample;
  /* pressure (invariants 3, 4) */
  es_pressure_t level, notified;
  int dispatching;
  pthread_t dispatcher;
  int nlisteners;
  struct {
    es_budget_pressure_fn fn;
    void *ud;
  } listeners[ES_BUDGET_MAX_LISTENERS];
};

static uint64_t sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

static uint64_t reserved_total(const es_budget_t *b) {
  uint64_t r = 0;
  for (int k = 0; k < ES_BUDGET_NKINDS; k++) r += b->reserved[k];
  return r;
}

static uint64_t used(const es_budget_t *b) { return reserved_total(b) + b->unreserved; }

static int has_system(const es_budget_t *b) { return b->last.effective_total > 0; }

/* The sample's available memory less what reservations will still take. */
static uint64_t available_now(const es_budget_t *b) {
  uint64_t grown = sat_sub(reserved_total(b), b->reserved_at_sample);
  return sat_sub(sat_sub(b->last.available, b->pending), grown);
}

/* Headroom of the process budget and of the system (UINT64_MAX without a
 * sample), under mu. */
static uint64_t total_room(const es_budget_t *b) { return sat_sub(b->budget, used(b)); }
static uint64_t system_room(const es_budget_t *b) {
  return has_system(b) ? sat_sub(available_now(b), b->safety) : UINT64_MAX;
}

/* snprintf for messages that may be cut (a long model path): never fails. */
static void say(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
}

/* Fills *why for a refusal of `bytes` (of `kind`, for `what`) by check `by`,
 * which had `room` left, under mu. */
static void explain(const es_budget_t *b, es_budget_kind_t kind, es_budget_by_t by, uint64_t bytes,
                    uint64_t room, const char *what, es_budget_refusal_t *why) {
  if (!why) return;
  why->kind = kind;
  why->by = by;
  why->required = bytes;
  why->available = room;
  why->limit = by == ES_BUDGET_BY_KIND    ? b->limit[kind]
               : by == ES_BUDGET_BY_TOTAL ? b->budget
                                          : b->last.available;
  char need[32], avail[32], limit[32], extra[32], subject[96];
  const char *kname = es_budget_kind_name(kind);
  if (what)
    say(subject, sizeof subject, "%s '%s'", kname, what);
  else
    say(subject, sizeof subject, "%s", kname);
  es_budget_human(bytes, need, sizeof need);
  es_budget_human(room, avail, sizeof avail);
  es_budget_human(why->limit, limit, sizeof limit);
  if (by == ES_BUDGET_BY_KIND)
    say(why->reason, sizeof why->reason, "%s needs %s, %s available in the %s budget (%s)", subject,
        need, avail, kname, limit);
  else if (by == ES_BUDGET_BY_TOTAL)
    say(why->reason, sizeof why->reason,
        "%s needs %s, %s left in the process budget (%s, %s in use)", subject, need, avail, limit,
        es_budget_human(used(b), extra, sizeof extra));
  else
    say(why->reason, sizeof why->reason,
        "%s needs %s, %s available on the system after the %s safety margin (%s available "
        "at the last sample)",
        subject, need, avail, es_budget_human(b->safety, extra, sizeof extra), limit);
}

/* Do need[kind] bytes of each kind fit at once (invariant 2)? Returns 0, or
 * ES_EBUDGET with *why filled for the failing check with the least room
 * (for one part, the least room of all: what could have been granted).
 * Under mu. */
static int fits(const es_budget_t *b, const uint64_t need[ES_BUDGET_NKINDS], const char *what,
                es_budget_refusal_t *why) {
  int failed = 0, first = -1;
  es_budget_kind_t kind = ES_BUDGET_MODEL;
  es_budget_by_t by = ES_BUDGET_BY_KIND;
  uint64_t sum = 0, required = 0, room = 0;
  for (int k = 0; k < ES_BUDGET_NKINDS; k++) {
    if (!need[k]) continue;
    if (first < 0) first = k;
    sum += need[k];
    uint64_t r = sat_sub(b->limit[k], b->reserved[k]);
    if (need[k] > r && (!failed || r < room))
      failed = 1, kind = (es_budget_kind_t)k, by = ES_BUDGET_BY_KIND, required = need[k], room = r;
  }
  if (first < 0) return 0;
  const es_budget_by_t whole[2] = {ES_BUDGET_BY_TOTAL, ES_BUDGET_BY_SYSTEM};
  const uint64_t rooms[2] = {total_room(b), system_room(b)};
  for (int i = 0; i < 2; i++)
    if (sum > rooms[i] && (!failed || rooms[i] < room))
      failed = 1, kind = (es_budget_kind_t)first, by = whole[i], required = sum, room = rooms[i];
  if (!failed) return 0;
  explain(b, kind, by, required, room, what, why);
  return ES_EBUDGET;
}

static es_pressure_t level_of(double x, double warning, double critical) {
  return x >= critical ? ES_PRESSURE_CRITICAL : x >= warning ? ES_PRESSURE_WARNING : ES_PRESSURE_OK;
}

static double budget_frac(const es_budget_t *b) { return (double)used(b) / (double)b->budget; }

static double sys_frac(const es_budget_t *b) {
  if (!has_system(b)) return 0.0;
  uint64_t avail = available_now(b);
  if (avail >= b->last.effective_total) return 0.0;
  return 1.0 - (double)avail / (double)b->last.effective_total;
}

/* Recomputes the level (invariant 3), under mu. */
static void update_level(es_budget_t *b) {
  double bf = budget_frac(b), sf = sys_frac(b), h = b->hyst;
  es_pressure_t strict = level_of(bf, b->warning, b->critical);
  es_pressure_t s2 = level_of(sf, b->sys_warning, b->sys_critical);
  if (s2 > strict) strict = s2;
  es_pressure_t relaxed = level_of(bf, b->warning - h, b->critical - h);
  s2 = level_of(sf, b->sys_warning - h, b->sys_critical - h);
  if (s2 > relaxed) relaxed = s2;
  es_pressure_t next = b->level < relaxed ? b->level : relaxed;
  b->level = strict > next ? strict : next;
  uint64_t u = used(b);
  if (u > b->peak_used) b->peak_used = u;
}

static void stats_locked(const es_budget_t *b, es_budget_stats_t *o) {
  memset(o, 0, sizeof *o);
  o->budget = b->budget;
  o->safety = b->safety;
  for (int k = 0; k < ES_BUDGET_NKINDS; k++) {
    o->limit[k] = b->limit[k];
    o->reserved[k] = b->reserved[k];
    o->peak[k] = b->peak[k];
    o->held[k] = b->held[k];
    o->refusals[k] = b->refusals[k];
  }
  o->reserved_total = reserved_total(b);
  o->unreserved = b->unreserved;
  o->used = used(b);
  o->peak_used = b->peak_used;
  o->samples = b->samples;
  o->rss = b->last.rss;
  o->rss_anon = b->last.rss_anon;
  o->rss_file = b->last.rss_file;
  o->rss_peak = b->last.rss_peak;
  o->available = b->last.available;
  o->available_now = has_system(b) ? available_now(b) : 0;
  o->effective_total = b->last.effective_total;
  o->budget_frac = budget_frac(b);
  o->sys_frac = sys_frac(b);
  o->level = b->level;
}

/* Unlocks mu and delivers level changes to the listeners (invariant 4): the
 * thread that finds no dispatch running becomes the dispatcher and loops
 * until the listeners have seen the current level; any other returns at
 * once, its change picked up by that loop. */
static void unlock_and_notify(es_budget_t *b) {
  if (b->dispatching || b->notified == b->level) {
    pthread_mutex_unlock(&b->mu);
    return;
  }
  b->dispatching = 1;
  b->dispatcher = pthread_self();
  while (b->notified != b->level) {
    es_pressure_t old = b->notified, now = b->level;
    b->notified = now;
    es_budget_stats_t st;
    stats_locked(b, &st);
    int n = b->nlisteners;
    es_budget_pressure_fn fns[ES_BUDGET_MAX_LISTENERS];
    void *uds[ES_BUDGET_MAX_LISTENERS];
    for (int i = 0; i < n; i++) fns[i] = b->listeners[i].fn, uds[i] = b->listeners[i].ud;
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < n; i++) fns[i](b, old, now, &st, uds[i]);
    pthread_mutex_lock(&b->mu);
  }
  b->dispatching = 0;
  pthread_cond_broadcast(&b->idle);
  pthread_mutex_unlock(&b->mu);
}

es_budget_params_t es_budget_default_params(void) {
  es_budget_params_t p;
  memset(&p, 0, sizeof p);
  p.warning = 0.75;
  p.critical = 0.90;
  p.sys_warning = 0.75;
  p.sys_critical = 0.85;
  p.hysteresis = 0.05;
  return p;
}

static int thresholds_ok(double w, double c, double h) {
  return w > 0.0 && w < c && c <= 1.0 && h >= 0.0 && h < w;
}

es_budget_t *es_budget_new(const es_budget_params_t *p, es_error_t *err) {
  uint64_t safety = p->safety ? p->safety : p->tier.safety;
  uint64_t budget =
      p->budget ? p->budget : sat_sub(sat_sub(p->tier.total, p->tier.os_reserve), p->tier.safety);
  if (!budget) {
    es__fail(err, ES_EINVAL, -1,
             "no memory budget: set params.tier (es_budget_tier_for) or params.budget");
    return NULL;
  }
  if (!thresholds_ok(p->warning, p->critical, p->hysteresis) ||
      !thresholds_ok(p->sys_warning, p->sys_critical, p->hysteresis)) {
    es__fail(err, ES_EINVAL, -1,
             "pressure thresholds must satisfy 0 < warning < critical <= 1 and 0 <= hysteresis "
             "< warning (budget %g/%g, system %g/%g, hysteresis %g)",
             p->warning, p->critical, p->sys_warning, p->sys_critical, p->hysteresis);
    return NULL;
  }
  es_budget_t *b = calloc(1, sizeof *b);
  if (!b) {
    es__fail(err, ES_ENOMEM, -1, "out of memory");
    return NULL;
  }
  if (pthread_mutex_init(&b->mu, NULL)) goto fail_free;
  if (pthread_cond_init(&b->idle, NULL)) goto fail_mutex;
  b->tier = p->tier;
  b->explicit_budget = p->budget != 0;
  b->budget = budget;
  b->safety = safety;
  const uint64_t tier_limit[ES_BUDGET_NKINDS] = {p->tier.model, p->tier.cache, p->tier.work};
  for (int k = 0; k < ES_BUDGET_NKINDS; k++)
    b->limit[k] = p->limit[k] ? p->limit[k] : p->budget ? budget : tier_limit[k];
  b->warning = p->warning;
  b->critical = p->critical;
  b->sys_warning = p->sys_warning;
  b->sys_critical = p->sys_critical;
  b->hyst = p->hysteresis;
  return b;

fail_mutex:
  pthread_mutex_destroy(&b->mu);
fail_free:
  free(b);
  es__fail(err, ES_ENOMEM, -1, "out of memory (pthread init)");
  return NULL;
}

void es_budget_free(es_budget_t *b) {
  if (!b) return;
  pthread_cond_destroy(&b->idle);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

static int valid_kind(es_budget_kind_t kind) { return kind >= 0 && kind < ES_BUDGET_NKINDS; }

/* Grants `bytes` of `kind` (file part `file_bytes`) if the three checks
 * allow it, under mu. Returns 0 or ES_EBUDGET (why filled, refusal counted). */
static int grant(es_budget_t *b, es_budget_kind_t kind, uint64_t bytes, uint64_t file_bytes,
                 const char *what, es_budget_refusal_t *why) {
  uint64_t need[ES_BUDGET_NKINDS] = {0};
  need[kind] = bytes;
  if (fits(b, need, what, why)) {
    b->refusals[kind]++;
    return ES_EBUDGET;
  }
  b->reserved[kind] += bytes;
  b->reserved_file += file_bytes;
  if (b->reserved[kind] > b->peak[kind]) b->peak[kind] = b->reserved[kind];
  return 0;
}

int es_budget_reserve_mapped(es_budget_t *b, es_budget_kind_t kind, uint64_t bytes,
                             uint64_t file_bytes, const char *what, es_budget_res_t *res,
                             es_budget_refusal_t *why) {
  if (!valid_kind(kind) || file_bytes > bytes || res->budget) return ES_EINVAL;
  pthread_mutex_lock(&b->mu);
  int rc = grant(b, kind, bytes, file_bytes, what, why);
  if (rc == 0) {
    b->held[kind]++;
    res->budget = b;
    res->kind = kind;
    res->bytes = bytes;
    res->file_bytes = file_bytes;
    update_level(b);
  }
  unlock_and_notify(b);
  return rc;
}

int es_budget_reserve(es_budget_t *b, es_budget_kind_t kind, uint64_t bytes, const char *what,
                      es_budget_res_t *res, es_budget_refusal_t *why) {
  return es_budget_reserve_mapped(b, kind, bytes, 0, what, res, why);
}

int es_budget_resize(es_budget_t *b, es_budget_res_t *res, uint64_t bytes, const char *what,
                     es_budget_refusal_t *why) {
  if (res->budget != b || bytes < res->file_bytes) return ES_EINVAL;
  pthread_mutex_lock(&b->mu);
  int rc = 0;
  if (bytes > res->bytes) {
    rc = grant(b, res->kind, bytes - res->bytes, 0, what, why);
  } else {
    assert(b->reserved[res->kind] >= res->bytes);
    b->reserved[res->kind] -= res->bytes - bytes;
  }
  if (rc == 0) {
    res->bytes = bytes;
    update_level(b);
  }
  unlock_and_notify(b);
  return rc;
}

void es_budget_release(es_budget_t *b, es_budget_res_t *res) {
  if (!res->budget) return;
  assert(res->budget == b && valid_kind(res->kind));
  pthread_mutex_lock(&b->mu);
  assert(b->reserved[res->kind] >= res->bytes && b->reserved_file >= res->file_bytes);
  b->reserved[res->kind] = sat_sub(b->reserved[res->kind], res->bytes);
  b->reserved_file = sat_sub(b->reserved_file, res->file_bytes);
  b->held[res->kind]--;
  memset(res, 0, sizeof *res);
  update_level(b);
  unlock_and_notify(b);
}

int es_budget_check_parts(es_budget_t *b, const uint64_t bytes[ES_BUDGET_NKINDS], const char *what,
                          es_budget_refusal_t *why) {
  pthread_mutex_lock(&b->mu);
  int rc = fits(b, bytes, what, why);
  pthread_mutex_unlock(&b->mu);
  return rc;
}

int es_budget_check(es_budget_t *b, es_budget_kind_t kind, uint64_t bytes, const char *what,
                    es_budget_refusal_t *why) {
  if (!valid_kind(kind)) return ES_EINVAL;
  uint64_t need[ES_BUDGET_NKINDS] = {0};
  need[kind] = bytes;
  return es_budget_check_parts(b, need, what, why);
}

uint64_t es_budget_available(es_budget_t *b, es_budget_kind_t kind) {
  if (!valid_kind(kind)) return 0;
  pthread_mutex_lock(&b->mu);
  uint64_t r = sat_sub(b->limit[kind], b->reserved[kind]);
  uint64_t t = total_room(b), s = system_room(b);
  pthread_mutex_unlock(&b->mu);
  if (t < r) r = t;
  return s < r ? s : r;
}

void es_budget_observe(es_budget_t *b, const es_memstat_t *s) {
  pthread_mutex_lock(&b->mu);
  b->samples++;
  b->last = *s;
  uint64_t total = reserved_total(b);
  uint64_t anon = s->rss_anon + s->rss_shmem, reserved_anon = total - b->reserved_file;
  b->unreserved = sat_sub(anon, reserved_anon);
  b->pending = sat_sub(reserved_anon, anon) + sat_sub(b->reserved_file, s->rss_file);
  b->reserved_at_sample = total;
  update_level(b);
  unlock_and_notify(b);
}

void es_budget_stats(es_budget_t *b, es_budget_stats_t *out) {
  pthread_mutex_lock(&b->mu);
  stats_locked(b, out);
  pthread_mutex_unlock(&b->mu);
}

es_pressure_t es_budget_level(es_budget_t *b) {
  pthread_mutex_lock(&b->mu);
  es_pressure_t l = b->level;
  pthread_mutex_unlock(&b->mu);
  return l;
}

int es_budget_on_pressure(es_budget_t *b, es_budget_pressure_fn fn, void *ud) {
  if (!fn) return ES_EINVAL;
  pthread_mutex_lock(&b->mu);
  int rc = ES_EFULL;
  if (b->nlisteners < ES_BUDGET_MAX_LISTENERS) {
    b->listeners[b->nlisteners].fn = fn;
    b->listeners[b->nlisteners].ud = ud;
    b->nlisteners++;
    rc = 0;
  }
  pthread_mutex_unlock(&b->mu);
  return rc;
}

int es_budget_off_pressure(es_budget_t *b, es_budget_pressure_fn fn, void *ud) {
  pthread_mutex_lock(&b->mu);
  int i = 0;
  while (i < b->nlisteners && !(b->listeners[i].fn == fn && b->listeners[i].ud == ud)) i++;
  if (i == b->nlisteners) {
    pthread_mutex_unlock(&b->mu);
    return ES_EINVAL;
  }
  memmove(&b->listeners[i], &b->listeners[i + 1],
          (size_t)(b->nlisteners - i - 1) * sizeof b->listeners[0]);
  b->nlisteners--;
  /* A dispatch in flight on another thread may still hold fn: wait for it. */
  while (b->dispatching && !pthread_equal(b->dispatcher, pthread_self()))
    pthread_cond_wait(&b->idle, &b->mu);
  pthread_mutex_unlock(&b->mu);
  return 0;
}

/* snprintf into buf at *len, keeping *len the length the full text needs. */
static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(*len < cap ? buf + *len : NULL, *len < cap ? cap - *len : 0, fmt, ap);
  va_end(ap);
  if (n > 0) *len += (size_t)n;
}

size_t es_budget_report(es_budget_t *b, char *buf, size_t cap) {
  es_budget_stats_t s;
  pthread_mutex_lock(&b->mu);
  stats_locked(b, &s);
  es_budget_tier_t tier = b->tier;
  int explicit_budget = b->explicit_budget;
  pthread_mutex_unlock(&b->mu);

  char h[6][32];
  size_t len = 0;
  if (cap) buf[0] = '\0';
  if (explicit_budget)
    put(buf, cap, &len, "memory budget %s (explicit), level %s\n",
        es_budget_human(s.budget, h[0], 32), es_pressure_name(s.level));
  else
    put(buf, cap, &len, "memory budget %s (tier %s of %s: os %s, safety %s), level %s\n",
        es_budget_human(s.budget, h[0], 32), tier.name ? tier.name : "custom",
        es_budget_human(tier.total, h[1], 32), es_budget_human(tier.os_reserve, h[2], 32),
        es_budget_human(tier.safety, h[3], 32), es_pressure_name(s.level));
  for (int k = 0; k < ES_BUDGET_NKINDS; k++)
    put(buf, cap, &len, "  %-5s %s of %s reserved, peak %s, %llu held, %llu refused\n",
        es_budget_kind_name((es_budget_kind_t)k), es_budget_human(s.reserved[k], h[0], 32),
        es_budget_human(s.limit[k], h[1], 32), es_budget_human(s.peak[k], h[2], 32),
        (unsigned long long)s.held[k], (unsigned long long)s.refusals[k]);
  put(buf, cap, &len, "  used  %s = %s reserved + %s unreserved (%.0f%% of budget), peak %s\n",
      es_budget_human(s.used, h[0], 32), es_budget_human(s.reserved_total, h[1], 32),
      es_budget_human(s.unreserved, h[2], 32), 100.0 * s.budget_frac,
      es_budget_human(s.peak_used, h[3], 32));
  if (!s.samples) {
    put(buf, cap, &len, "  no memory sample yet\n");
    return len;
  }
  put(buf, cap, &len, "  process rss %s (anon %s, file %s), peak %s\n",
      es_budget_human(s.rss, h[0], 32), es_budget_human(s.rss_anon, h[1], 32),
      es_budget_human(s.rss_file, h[2], 32), es_budget_human(s.rss_peak, h[3], 32));
  if (s.effective_total)
    put(buf, cap, &len, "  system %s available of %s (%.0f%% in use), safety %s\n",
        es_budget_human(s.available_now, h[0], 32), es_budget_human(s.effective_total, h[1], 32),
        100.0 * s.sys_frac, es_budget_human(s.safety, h[2], 32));
  return len;
}
