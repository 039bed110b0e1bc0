/*
 * repo.h - the model repository: which models the server serves, which
 * version of each is loaded, and swapping them without dropping a request.
 *
 * A repository directory has one folder per model, named after it:
 *
 *   models/
 *     media/
 *       config.ini        backend, variant ladder, batching, decision
 *                         thresholds, SLA, keep-alive (all optional)
 *       1/model.bin       numbered versions; the highest complete one is
 *       2/model.ftz       served unless config.ini pins one
 *
 * Models may also be added as single files (es_repo_add_file: named after
 * the file, version 1, default configuration).
 *
 *   es_repo_params_t p = es_repo_default_params();
 *   p.dir = "models"; p.budget = budget;
 *   es_repo_t *r = es_repo_new(&p, &err);
 *   es_repo_scan(r, &err);               // index, then load what fits
 *   es_served_t *s;
 *   if (es_repo_acquire(r, "media", &s, &err) == 0) {
 *     s->backend->infer(s->inst, items, n, &err);
 *     es_repo_release(r, s);
 *   }
 *   ...  es_repo_poll(r, now_us) every second: hot reload, keep-alive
 *   es_repo_free(r);
 *
 * Invariants the server relies on:
 *  1. A served version is reference-counted: acquire() hands out a
 *     reference, release() returns it, and an instance is unloaded only
 *     after it is no longer current and its last reference is released.
 *     So a swap is atomic for requests: those in flight finish on the old
 *     version, new ones get the new one.
 *  2. A new version replaces the current one only once it has loaded
 *     successfully and passed the budget's fit check; a corrupt or
 *     oversized new version leaves the current one serving, and the
 *     failure is reported (event FAILED or REFUSED, and in es_repo_list).
 *  3. Every function is thread-safe. acquire()/release() are O(1) with one
 *     short lock; loading happens outside that lock, so serving never waits
 *     on a load of another model.
 *  4. Model names are validated (es_repo_valid_name): a name can never
 *     point outside the repository.
 */
#ifndef EDGESERVE_REPO_H
#define EDGESERVE_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/backend.h"
#include "edgeserve/budget.h"
#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_repo es_repo_t;

#define ES_MODEL_NAME_MAX 64 /* including the NUL */
#define ES_MAX_VARIANTS   5

/* A model's configuration (config.ini, every key optional):
 *
 *   [model]
 *   backend = fasttext          ; default: the backend accepting the files
 *   version = 3                 ; pin a version (default: the highest)
 *   variants = model.bin, model.ftz   ; quality ladder, best first
 *                               ; (default: the backend's variants())
 *   keep_alive = 10m            ; unload after this idle time (0: never)
 *   [batching]
 *   max_batch = 32              ; 1..1024
 *   max_queue_delay = 0us       ; wait this long to fill a batch
 *   queue_limit = 256           ; queued requests before 503
 *   priority = normal           ; critical|high|normal|low
 *   timeout = 5s                ; default deadline of a request
 *   [decision]
 *   auto = 0.85                 ; >= auto: "auto"
 *   suggest = 0.50              ; >= suggest: "suggest" with alternatives
 *   alternatives = 3
 *   [sla]
 *   p99 = 50ms                  ; target end-to-end p99
 *   p95 = 0                     ; the quality manager's p95 target (0: the
 *                               ; server's quality.sla_p95)
 *   [training]
 *   data = train.txt            ; base data for retraining (in the model folder)
 *
 * Durations take us/ms/s/m/h suffixes (es_config_parse_duration). */
typedef struct es_model_conf {
  char name[ES_MODEL_NAME_MAX];
  const es_backend_t *backend;
  int pinned_version; /* 0: the highest */
  char variants[ES_MAX_VARIANTS][64];
  int nvariants;         /* 0: the backend's variants() */
  int64_t keep_alive_us; /* 0: never unload */
  int max_batch;
  int64_t max_queue_delay_us;
  int queue_limit;
  int priority; /* ES_SCHED_CRITICAL..ES_SCHED_LOW of sched.h */
  int64_t timeout_us;
  double auto_threshold, suggest_threshold;
  int alternatives;
  int64_t sla_p99_us;
  int64_t sla_p95_us;   /* 0: the server's quality.sla_p95 */
  char train_data[256]; /* path of the base training data, "" when none (as
                           written by es_model_conf_parse(); the repository
                           makes it <dir>/<model>/<data>) */
} es_model_conf_t;

/* The defaults above (name empty, backend NULL). */
es_model_conf_t es_model_conf_default(void);

/* Parses INI text into *conf (which holds the defaults or earlier values).
 * `name` is the file name messages start with ("config.ini:4: ..."). Returns
 * 0, or ES_EINVAL with *err naming the line and key (then *conf is
 * unchanged). */
int es_model_conf_parse(es_model_conf_t *conf, const char *text, const char *name, es_error_t *err);

/* Returns nonzero when `name` is a valid model name: 1 to 63 bytes of
 * [A-Za-z0-9._-], not starting with '.', so never "..", "/" or empty. */
int es_repo_valid_name(const char *name, size_t len);

/* One loaded version. Fields are read-only for holders of a reference. */
typedef struct es_served {
  const char *name;
  int version;
  const char *path;    /* the file loaded */
  const char *variant; /* its file name */
  int variant_index;   /* its place in the ladder (0: best) */
  const es_model_conf_t *conf;
  const es_backend_t *backend;
  void *inst; /* the backend's instance */
  es_backend_desc_t desc;
  uint64_t reserved_bytes; /* what the budget reserved for it */
  int64_t loaded_at_us;    /* monotonic clock, microseconds */
  uint64_t generation;     /* increases with every load in this repository */
} es_served_t;

typedef enum {
  ES_REPO_LOADED = 1, /* a model became ready (first load) */
  ES_REPO_SWAPPED,    /* a new version or variant replaced the current one */
  ES_REPO_UNLOADED,   /* unloaded (API, keep-alive, removed from disk) */
  ES_REPO_FAILED,     /* a load failed (corrupt, unreadable): old one kept */
  ES_REPO_REFUSED,    /* the budget refused a load: old one kept */
} es_repo_event_kind_t;

typedef struct es_repo_event {
  es_repo_event_kind_t kind;
  const char *name;
  int version, old_version; /* 0 when none */
  const char *message;      /* what happened, for logs and the events table */
} es_repo_event_t;

/* Called after the event, outside the repository's locks, on the thread
 * that caused it. */
typedef void (*es_repo_event_fn)(void *ud, const es_repo_event_t *ev);

typedef struct es_repo_params {
  const char *dir;     /* the repository directory, or NULL (files only) */
  es_budget_t *budget; /* fit checks and reservations (kind MODEL); NULL: none */
  es_backend_opts_t opts;
  int load_on_scan; /* nonzero (default): es_repo_scan() loads every model */
  es_repo_event_fn on_event;
  void *ud;
} es_repo_params_t;

es_repo_params_t es_repo_default_params(void);

/* A new, empty repository. NULL on failure with *err filled. */
es_repo_t *es_repo_new(const es_repo_params_t *p, es_error_t *err);

/* Unloads everything and frees the repository. Every reference must have
 * been released. NULL is a no-op. */
void es_repo_free(es_repo_t *r);

/* Serves the model file at `path` under `name` (NULL: the file's name
 * without directory and extension), as version 1 with the default
 * configuration (or `conf` when not NULL), and loads it now.
 * Returns 0, ES_EINVAL for a bad name or a name already used, or the
 * load's error. */
int es_repo_add_file(es_repo_t *r, const char *path, const char *name, const es_model_conf_t *conf,
                     es_error_t *err);

/* Indexes the directory: reads each model's config.ini and versions, and
 * (with load_on_scan) loads each model's chosen version. Models that fail
 * are indexed with their error and do not stop the others. Returns the
 * number of models ready, or a negative ES_E* code when the directory
 * cannot be read. */
int es_repo_scan(es_repo_t *r, es_error_t *err);

/* Loads (or reloads: re-reads config.ini and picks the version again) model
 * `name`. With a current version serving, the new one replaces it only on
 * success (invariant 2). Returns 0, ES_ENOTFOUND, or the load's error. */
int es_repo_load(es_repo_t *r, const char *name, es_error_t *err);

/* Loads variant `variant_index` of the ladder of `name`'s current version
 * in place of the current variant (the quality manager's switch). Returns
 * 0, ES_ENOTFOUND, ES_ERANGE (no such variant), or the load's error. */
int es_repo_load_variant(es_repo_t *r, const char *name, int variant_index, es_error_t *err);

/* Unloads `name`; it stays indexed and is loaded again by the next
 * acquire(). Returns 0 or ES_ENOTFOUND. */
int es_repo_unload(es_repo_t *r, const char *name, es_error_t *err);

/* Hands out a reference to the current version of `name`, loading it
 * first when it is indexed but not loaded (keep-alive). Returns 0,
 * ES_ENOTFOUND (unknown name), or the load's error. */
int es_repo_acquire(es_repo_t *r, const char *name, es_served_t **out, es_error_t *err);

/* Returns a reference from es_repo_acquire(). */
void es_repo_release(es_repo_t *r, es_served_t *s);

/* Periodic work, cheap when nothing changed (a stat per model folder):
 * reloads models whose config.ini or chosen version changed on disk, adds
 * new model folders, unloads models removed from disk, and unloads models
 * idle for longer than their keep_alive. Returns the number of changes. */
int es_repo_poll(es_repo_t *r, int64_t now_us);

typedef enum {
  ES_MODEL_UNAVAILABLE = 0, /* indexed, not loaded */
  ES_MODEL_READY,
  ES_MODEL_FAILED, /* the last load failed and nothing serves */
} es_model_state_t;

typedef struct es_repo_entry {
  char name[ES_MODEL_NAME_MAX];
  es_model_state_t state;
  int version;        /* serving version, 0 when none */
  int latest_version; /* highest on disk */
  char variant[64];   /* serving file name */
  char reason[256];   /* last failure, "" when none */
  uint64_t reserved_bytes;
  int64_t last_used_us;
  uint64_t requests; /* acquire() calls */
} es_repo_entry_t;

/* Copies up to `cap` entries, sorted by name, into out[]; returns how many
 * models are indexed (may exceed cap). */
int es_repo_list(es_repo_t *r, es_repo_entry_t *out, int cap);

/* The variant ladder of the version of `name` now serving: up to `cap`
 * file names, best first, into names[] and the serving rung into *current
 * (when not NULL). Returns the ladder's length (may exceed cap; at most 8),
 * 0 when nothing of `name` is loaded, or ES_ENOTFOUND. */
int es_repo_ladder(es_repo_t *r, const char *name, char (*names)[64], int cap, int *current);

/* The configuration of an indexed model, copied into *out. Returns 0 or
 * ES_ENOTFOUND. */
int es_repo_conf(es_repo_t *r, const char *name, es_model_conf_t *out);

/* The folder of model `name` in the repository ("" for file models), for
 * training data and feedback exports. Returns 0 or ES_ENOTFOUND (or
 * ES_ERANGE when it does not fit in cap bytes). */
int es_repo_model_dir(es_repo_t *r, const char *name, char *buf, size_t cap);

/* Writes a new version of `name` from the file at `src` (moved, not copied)
 * as version latest + 1, then loads it as es_repo_load() does. For the
 * retraining jobs. Returns 0 or an ES_E* code; a failed load leaves the
 * current version serving. File models get the new file beside the old
 * one. */
int es_repo_publish(es_repo_t *r, const char *name, const char *src, es_error_t *err);

/* As es_repo_publish(), for a version of several files: the variants of a
 * ladder (srcs[0..n), 1 <= n <= 8, distinct file names). A repository model
 * gets them all in its new version folder, which appears at once (a hidden
 * staging folder renamed into place); a file model gets srcs[0] only. */
int es_repo_publish_files(es_repo_t *r, const char *name, const char *const *srcs, int n,
                          es_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
