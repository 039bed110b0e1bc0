/*
 * budget.h - the memory budget: who may use how much, and how close to the
 * edge the process is.
 *
 * A budget splits the machine's usable memory (es_memstat_t.effective_total:
 * RAM, or the cgroup limit when lower) into a tier: a reserve left to the OS
 * and other processes, a safety margin never handed out, and what this
 * process may use, itself split into models, caches and work (requests in
 * flight and the rest of the process). Before a model load or a large
 * request, the caller reserves the bytes it will need; the reservation
 * succeeds only when the kind's limit, the process budget and the system's
 * available memory (minus the safety margin) all allow it, and a refusal says
 * why in bytes. Samples of the real usage (memstat.h) are handed in by the
 * caller; the budget never reads /proc itself, so its policy is deterministic.
 *
 *   es_memstat_t s; es_memstat_read(&s, NULL, NULL);
 *   es_budget_params_t p = es_budget_default_params();
 *   p.tier = es_budget_tier_for(s.effective_total);
 *   es_budget_t *b = es_budget_new(&p, NULL);
 *   es_budget_observe(b, &s);                      // again every few seconds
 *   es_budget_on_pressure(b, shrink_caches, cache); // called on level changes
 *
 *   es_budget_res_t r = {0};                       // caller-owned, empty
 *   es_budget_refusal_t why;
 *   if (es_budget_reserve_mapped(b, ES_BUDGET_MODEL, est.total_bytes, est.mapped_bytes,
 *                                "media.bin", &r, &why))
 *     log("%s", why.reason);                       // nothing was reserved
 *   else { load and serve ...; es_budget_release(b, &r); }
 *   es_budget_free(b);
 */
#ifndef EDGESERVE_BUDGET_H
#define EDGESERVE_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"
#include "edgeserve/memstat.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a machine's memory is split; figures in bytes. The table (anchors at
 * 512 MiB, 1, 2, 4, 8, 16 and 32 GiB, linear in between, proportional below
 * 512 MiB and above 32 GiB) and its reasoning are in docs/runtime/budget.md.
 * os_reserve + model + cache + safety + work == total. */
typedef struct es_budget_tier {
  const char *name;    /* "1GB", "2GB", "4GB", "8GB", "16GB", "32GB+" (or a sub-1GB name) */
  uint64_t total;      /* the memory the tier was chosen for (effective_total) */
  uint64_t os_reserve; /* left to the OS and other processes */
  uint64_t model;      /* for models: mapped pages + private memory + scratch */
  uint64_t cache;      /* for response caches and pools */
  uint64_t safety;     /* headroom never handed out */
  uint64_t work;       /* requests in flight and the rest of the process */
} es_budget_tier_t;

/* The tier for a machine whose usable memory is `total` bytes. Never fails.
 * `name` is the largest class the machine reaches within 15% (a Raspberry Pi
 * 4 "1 GB" reports about 905 MiB: "1GB"), "512MB", or "<512MB" below 435
 * MiB; the figures grow continuously with `total` (no field ever decreases
 * when `total` grows). The name points to a static string. */
es_budget_tier_t es_budget_tier_for(uint64_t total);

/* What a reservation is for. */
typedef enum {
  ES_BUDGET_MODEL = 0, /* a loaded model: mapped file + private memory + scratch */
  ES_BUDGET_CACHE = 1, /* response caches, pools */
  ES_BUDGET_WORK = 2,  /* a request in flight */
  ES_BUDGET_NKINDS = 3
} es_budget_kind_t;

/* "model", "cache", "work"; "?" for anything else. */
const char *es_budget_kind_name(es_budget_kind_t kind);

typedef enum {
  ES_PRESSURE_OK = 0,
  ES_PRESSURE_WARNING = 1,
  ES_PRESSURE_CRITICAL = 2
} es_pressure_t;

/* "ok", "warning", "critical". */
const char *es_pressure_name(es_pressure_t level);

typedef struct es_budget_params {
  /* The machine's split: es_budget_tier_for(effective_total), or figures of
   * the caller's own. Its process budget is total - os_reserve - safety and
   * its kind limits are model, cache and work. */
  es_budget_tier_t tier;
  /* Explicit process budget in bytes (--memory-budget); 0 = from the tier.
   * With an explicit budget, a kind is capped only by limit[kind]. */
  uint64_t budget;
  uint64_t limit[ES_BUDGET_NKINDS]; /* explicit per-kind caps; 0 = as above */
  uint64_t safety; /* kept free in the system's available memory; 0 = tier.safety */
  /* Pressure thresholds (a level is entered at its threshold and left only
   * `hysteresis` below it):
   *   budget: used / budget, default warning 0.75, critical 0.90;
   *   system: 1 - available / effective_total, i.e. the memory in use on the
   *   machine or in the cgroup, default warning 0.75, critical 0.85. */
  double warning, critical;
  double sys_warning, sys_critical;
  double hysteresis; /* default 0.05 */
} es_budget_params_t;

/* Default thresholds, every figure 0: set .tier (or .budget) before use. */
es_budget_params_t es_budget_default_params(void);

typedef struct es_budget es_budget_t;

/* Makes a budget. Returns NULL when `p` is invalid (no budget: tier and
 * budget both 0; thresholds not 0 < warning < critical <= 1; hysteresis not
 * in [0, warning)) with *err filled when not NULL (ES_EINVAL), or when out of
 * memory (ES_ENOMEM); nothing is left allocated. Free with es_budget_free(). */
es_budget_t *es_budget_new(const es_budget_params_t *p, es_error_t *err);

/* Frees the budget. NULL is a no-op. Reservations still held are forgotten;
 * no other call on `b` may run or follow. */
void es_budget_free(es_budget_t *b);

/* A reservation, owned by the caller (no allocation). All zero = empty;
 * es_budget_release() empties it. Do not copy a held reservation: release
 * it through one copy only. */
typedef struct es_budget_res {
  es_budget_t *budget; /* NULL when empty */
  es_budget_kind_t kind;
  uint64_t bytes;      /* reserved */
  uint64_t file_bytes; /* the part of `bytes` that is file-backed (mapped model) */
} es_budget_res_t;

/* Which check refused (or would refuse) a reservation. */
typedef enum {
  ES_BUDGET_BY_KIND = 0,   /* the kind's limit */
  ES_BUDGET_BY_TOTAL = 1,  /* the process budget */
  ES_BUDGET_BY_SYSTEM = 2, /* the system's (or cgroup's) available memory minus safety */
} es_budget_by_t;

/* Why a reservation was refused. `available` is what could have been
 * granted (the smallest headroom of the three checks), `limit` the figure of
 * the check that binds (kind limit, process budget, or available memory
 * at the last sample). */
typedef struct es_budget_refusal {
  es_budget_kind_t kind;
  es_budget_by_t by;
  uint64_t required;
  uint64_t available;
  uint64_t limit;
  char reason[224]; /* "model 'x.bin' needs 812.0 MiB, 190.3 MiB available in
                       the model budget (200.0 MiB)" */
} es_budget_refusal_t;

/* Reserves `bytes` of anonymous memory (heap) of `kind` for `what` (a name
 * for messages; NULL = the kind's name). Returns 0 and fills *res (which must
 * be empty) when the kind's limit, the process budget and the system's
 * available memory minus safety all allow it. Otherwise returns ES_EBUDGET,
 * leaves *res empty, counts a refusal of `kind` and fills *why when not NULL.
 * ES_EINVAL for a bad kind or a held *res. Thread-safe; may call pressure
 * listeners (on this thread, without the lock) when the level changes. */
int es_budget_reserve(es_budget_t *b, es_budget_kind_t kind, uint64_t bytes, const char *what,
                      es_budget_res_t *res, es_budget_refusal_t *why);

/* As es_budget_reserve(), where `file_bytes` (<= bytes, else ES_EINVAL) of
 * the bytes are a mapped file (a model's pages): they are matched against
 * the process's file-backed resident memory instead of its anonymous memory
 * (see "Accounting" in budget.c). */
int es_budget_reserve_mapped(es_budget_t *b, es_budget_kind_t kind, uint64_t bytes,
                             uint64_t file_bytes, const char *what, es_budget_res_t *res,
                             es_budget_refusal_t *why);

/* Grows or shrinks a held reservation to `bytes` in all (only its anonymous
 * part changes: `bytes` below res->file_bytes is ES_EINVAL). Shrinking always
 * succeeds; growing is checked as a reservation of the difference, and on
 * refusal returns ES_EBUDGET with *res unchanged and *why filled. ES_EINVAL
 * for an empty *res. Thread-safe. */
int es_budget_resize(es_budget_t *b, es_budget_res_t *res, uint64_t bytes, const char *what,
                     es_budget_refusal_t *why);

/* Returns the reservation's bytes to the budget and empties *res. An empty
 * *res is a no-op. Thread-safe; may call pressure listeners. */
void es_budget_release(es_budget_t *b, es_budget_res_t *res);

/* Would a reservation of `bytes` of `kind` succeed now? Returns 0 or
 * ES_EBUDGET with *why filled (a dry run: nothing is reserved or counted).
 * ES_EINVAL for a bad kind. Thread-safe. */
int es_budget_check(es_budget_t *b, es_budget_kind_t kind, uint64_t bytes, const char *what,
                    es_budget_refusal_t *why);

/* As es_budget_check() for several kinds at once: would reservations of
 * bytes[kind] of every kind (0 = none) all succeed together? A refusal
 * names the failing check with the least room. Thread-safe. */
int es_budget_check_parts(es_budget_t *b, const uint64_t bytes[ES_BUDGET_NKINDS], const char *what,
                          es_budget_refusal_t *why);

/* The most bytes a reservation of `kind` could get now (0 for a bad kind). */
uint64_t es_budget_available(es_budget_t *b, es_budget_kind_t kind);

typedef struct es_budget_stats {
  uint64_t budget; /* the process budget */
  uint64_t safety;
  uint64_t limit[ES_BUDGET_NKINDS];
  uint64_t reserved[ES_BUDGET_NKINDS];
  uint64_t peak[ES_BUDGET_NKINDS];     /* highest `reserved` so far */
  uint64_t held[ES_BUDGET_NKINDS];     /* reservations held */
  uint64_t refusals[ES_BUDGET_NKINDS]; /* reservations refused */
  uint64_t reserved_total;
  uint64_t unreserved; /* process memory no reservation covers (at the last sample) */
  uint64_t used;       /* reserved_total + unreserved: what counts against the budget */
  uint64_t peak_used;
  /* the last sample (all 0 before the first) */
  uint64_t samples; /* es_budget_observe() calls */
  uint64_t rss, rss_anon, rss_file, rss_peak;
  uint64_t available;       /* es_memstat_t.available at the sample */
  uint64_t available_now;   /* less reservations not yet resident (estimate) */
  uint64_t effective_total; /* es_memstat_t.effective_total at the sample */
  double budget_frac;       /* used / budget */
  double sys_frac;          /* 1 - available_now / effective_total (0 without a sample) */
  es_pressure_t level;
} es_budget_stats_t;

/* Fills *out with a consistent snapshot. Thread-safe. */
void es_budget_stats(es_budget_t *b, es_budget_stats_t *out);

/* The current pressure level. Thread-safe. */
es_pressure_t es_budget_level(es_budget_t *b);

/* Hands the budget a fresh sample of the process's and the system's memory
 * (taken by the caller, e.g. with es_memstat_read()) and recomputes the
 * pressure level; listeners are called, on this thread and without the lock,
 * when the level changed. Thread-safe. */
void es_budget_observe(es_budget_t *b, const es_memstat_t *sample);

/* A pressure listener: called with the previous and the new level and a
 * snapshot of the figures. Listeners run one at a time, in registration
 * order, on the thread whose call changed the level, without the budget's
 * lock: they may reserve, resize and release (freeing cache bytes lowers the
 * level at once). A change made meanwhile is delivered after they return. */
typedef void (*es_budget_pressure_fn)(es_budget_t *b, es_pressure_t old_level,
                                      es_pressure_t new_level, const es_budget_stats_t *stats,
                                      void *ud);

#define ES_BUDGET_MAX_LISTENERS 8

/* Registers fn(ud). Returns 0, or ES_EFULL when ES_BUDGET_MAX_LISTENERS are
 * registered. Thread-safe. */
int es_budget_on_pressure(es_budget_t *b, es_budget_pressure_fn fn, void *ud);

/* Unregisters fn(ud) (ES_EINVAL when not registered). Once it returns, fn is
 * not running and will not be called again, so `ud` may be freed; called
 * from inside a listener, it takes effect from the next notification.
 * Thread-safe. */
int es_budget_off_pressure(es_budget_t *b, es_budget_pressure_fn fn, void *ud);

/* Writes a short multi-line text report (budget, kinds, observed usage,
 * level) into buf (always NUL-terminated when cap > 0). Returns the length
 * the full report needs, as snprintf does. Thread-safe. */
size_t es_budget_report(es_budget_t *b, char *buf, size_t cap);

/* Writes `bytes` as "812.0 MiB" / "1.5 GiB" / "512 B" into buf (cap >= 16
 * is always enough); returns buf. */
char *es_budget_human(uint64_t bytes, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
