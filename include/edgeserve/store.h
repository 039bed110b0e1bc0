/*
 * store.h - the server's SQLite storage: request history, user feedback,
 * training jobs and model events, in one SQLite file (data/edgeserve.db).
 *
 * Serving must never wait on the disk, so history rows are not written by
 * the caller: es_store_history_add() copies the row into a bounded queue and
 * returns; one writer thread inserts what is queued in batched transactions.
 * Everything else (feedback, jobs, events, queries) is a small synchronous
 * transaction on the caller's thread.
 *
 *   es_store_params_t p = es_store_default_params();
 *   p.path = "data/edgeserve.db";
 *   es_store_t *st = es_store_open(&p, &err);        // schema, pragmas, writer
 *   es_history_row_t row = {.model = "media", .version = 3, .text = text,
 *                           .text_len = len, .label = "sports", .prob = 0.93,
 *                           .decision = "auto", .latency_us = 180, .status = 200};
 *   es_store_history_add(st, &row);                  // per request: never blocks
 *   es_store_feedback_add(st, "media", text, "politics", &id, &err);
 *   es_store_feedback_export(st, "media", f, &rows, &err);   // fastText lines
 *   es_store_job_create(st, "media", "train", &job, &err);
 *   es_store_job_update(st, job, "running", 0.5, "epoch 3/5", 0, &err);
 *   es_store_stats(st, &stats);                      // for /metrics and health
 *   es_store_close(st);                              // flushes, then closes
 *
 * Durability: WAL with synchronous=NORMAL. A committed row survives the
 * process being killed (kill -9, a crash); a power cut may lose the last
 * transactions committed before it, never the database's integrity.
 *
 * Failures: when the disk is full or the data directory becomes unwritable,
 * history rows are dropped (and counted), es_store_stats() says why in
 * last_error and healthy == 0, and the writer retries every retry_ms; once a
 * write succeeds, history resumes on its own. Synchronous calls return
 * ES_EIO with SQLite's message in *err. Nothing here exits or aborts.
 *
 * Thread-safety: every function may be called from any thread, at the same
 * time, except es_store_close(), which must follow every other call.
 * One process per database: opening it also marks the jobs left "running"
 * or "queued" as failed ("interrupted by restart").
 */
#ifndef EDGESERVE_STORE_H
#define EDGESERVE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_store es_store_t;

#define ES_STORE_SCHEMA_VERSION 1   /* PRAGMA user_version of the database */
#define ES_STORE_NAME_MAX       64  /* model names, including the NUL */
#define ES_STORE_KIND_MAX       16  /* job and event kinds, job states, decisions */
#define ES_STORE_LABEL_MAX      256 /* labels, including the NUL */
#define ES_STORE_MESSAGE_MAX    256 /* job messages as es_store_job_get() returns them */

typedef struct es_store_params {
  const char *path; /* the database file, created when missing (required) */

  /* History. */
  double history_sample;      /* fraction of rows recorded, 0..1 (default 1.0):
                                 exactly floor(n * sample) of the first n calls,
                                 spread evenly (a counter, not a random draw) */
  int64_t retention_s;        /* rows older than this are deleted (default 30
                                 days; 0: no age limit) */
  int64_t max_rows;           /* at most this many rows, the newest (default
                                 1,000,000; 0: no limit) */
  int64_t cleanup_interval_s; /* the writer applies retention this often
                                 (default 600; 0: only es_store_cleanup()) */
  int queue_limit;            /* rows held in memory, queued or being written
                                 (default 4096); more: ES_EFULL */
  int batch_max;              /* rows per transaction at most (default 256) */
  size_t text_max;            /* input bytes kept per row (default 2048); a
                                 longer text is cut at a UTF-8 boundary and
                                 left out of es_store_top_inputs() */
  int64_t top_window;         /* es_store_top_inputs() counts the inputs of
                                 the last top_window rows (default 50,000) */
  int retry_ms;               /* after a failed write, the writer waits this
                                 long before the next try (default 1000) */
  int close_timeout_ms;       /* es_store_close() waits this long for the queue
                                 to be written (default 5000) */

  /* SQLite. Defaults sized for a 1 GB Raspberry Pi; a bigger server may
   * raise them (64 MiB cache and 256 MiB mmap are good on 8 GB). */
  int64_t cache_kib;   /* page cache, split between the two connections
                          (default 8192: 8 MiB) */
  int64_t mmap_bytes;  /* PRAGMA mmap_size per connection (default 64 MiB;
                          shared page cache of the OS, address space only) */
  int busy_timeout_ms; /* wait for another writer's lock (default 30000) */

  /* Test-only: PRAGMA max_page_count, to make the database "full" without
   * filling a disk (0, the default: SQLite's limit). See
   * es_store_set_max_pages(). */
  int64_t max_pages;
} es_store_params_t;

/* The defaults documented above; path is NULL. */
es_store_params_t es_store_default_params(void);

/* Opens (or creates) the database at p->path: sets the pragmas (WAL,
 * synchronous=NORMAL, busy_timeout, cache, mmap, temp_store=MEMORY,
 * foreign_keys, wal_autocheckpoint=1000 run by the writer thread, never by
 * a synchronous caller; page_size=4096 and auto_vacuum=INCREMENTAL when it
 * creates the file), creates or upgrades the schema (PRAGMA user_version),
 * checks that every statement compiles against it, marks interrupted jobs
 * failed, and starts the writer thread. Returns the store, or NULL with *err
 * filled (when not NULL) and nothing left open:
 *   ES_EINVAL   a parameter out of range (the message names it);
 *   ES_EFORMAT  the file is not a SQLite database, is corrupt, is another
 *               program's database, or its tables were changed ("... is not
 *               a SQLite database: move it away or delete it");
 *   ES_EVERSION the schema is newer than this edgeserve;
 *   ES_EIO      the file cannot be opened or written (missing directory,
 *               permissions, read-only file system, disk full);
 *   ES_ENOMEM.
 * Close with es_store_close(). */
es_store_t *es_store_open(const es_store_params_t *p, es_error_t *err);

/* Waits up to close_timeout_ms for the queued history rows to be written,
 * stops the writer, and closes the database. Rows still queued then are
 * lost. NULL is a no-op. No other call on `s` may run or follow. */
void es_store_close(es_store_t *s);

/* ---- history ----------------------------------------------------------- */

/* One answered request. Strings are copied by es_store_history_add(). */
typedef struct es_history_row {
  int64_t time_ms;      /* wall clock, ms since the epoch; 0: now */
  const char *model;    /* 1..63 bytes (required) */
  int version;          /* the model version that answered */
  const char *text;     /* the input (required); may hold any bytes */
  size_t text_len;      /* bytes of text */
  const char *label;    /* top label, NULL when none (an error) */
  double prob;          /* its probability */
  const char *decision; /* "auto", "suggest", "unknown", or NULL */
  int64_t latency_us;   /* end to end */
  int cached;           /* nonzero: answered from a cache */
  int status;           /* HTTP status */
} es_history_row_t;

/* Records a row, or not: never waits on the disk (one short lock and a
 * copy). Returns
 *   0           queued, or left out by history_sample (counted in sampled_out);
 *   ES_EFULL    queue_limit rows are held: the row is dropped (dropped_full);
 *   ES_EINVAL   model or text missing, model too long;
 *   ES_ENOMEM;
 * While writes fail the rows are still queued; the writer drops each batch it
 * fails to write (dropped_error), so nothing queues up for ever. */
int es_store_history_add(es_store_t *s, const es_history_row_t *row);

/* Waits until every row queued before the call has been handled (written or
 * dropped), at most timeout_ms (< 0: no limit). Returns 0, ES_ETIMEDOUT
 * (also when the writer is paused), or ES_EIO when the store is unhealthy
 * at the end (rows were dropped: see es_store_stats()). */
int es_store_flush(es_store_t *s, int timeout_ms);

/* Pauses (paused != 0) or resumes the writer thread: while paused, rows
 * queue up (then ES_EFULL) and neither history nor the periodic retention is
 * written; synchronous calls still write. For tests and maintenance. A batch
 * or retention step already under way finishes. */
void es_store_pause(es_store_t *s, int paused);

/* Calls fn(ud, text, len, count) for the `limit` most frequent inputs of
 * `model` among the last top_window history rows (all models' rows count
 * towards the window), most frequent first (ties: the most recent first);
 * for warming a cache at model load. text is valid during the call only;
 * fn returns nonzero to stop. The query reads the window by rowid and groups
 * it in memory (temp_store=MEMORY): its cost grows with top_window, never
 * with the whole history (~40 ms for 50,000 rows on a laptop). fn runs after
 * the store's lock is released and may call the store. Returns 0 (also when
 * there are none), ES_EINVAL (limit < 1 or > 100000, no model), ES_EIO or
 * ES_ENOMEM. */
typedef int (*es_store_input_fn)(void *ud, const char *text, size_t len, int64_t count);
int es_store_top_inputs(es_store_t *s, const char *model, int limit, es_store_input_fn fn, void *ud,
                        es_error_t *err);

/* Applies retention now, as the writer does every cleanup_interval_s: deletes
 * history rows older than retention_s before now_ms (0: now) and the oldest
 * ones beyond max_rows, and events older than retention_s, in transactions of
 * at most 500 rows, so other writers wait a few milliseconds at most. *deleted
 * (may be NULL) gets the history and event rows deleted. Returns 0, or
 * ES_EIO with *err. Feedback and jobs are never deleted. */
int es_store_cleanup(es_store_t *s, int64_t now_ms, int64_t *deleted, es_error_t *err);

/* ---- feedback ----------------------------------------------------------- */

/* Saves a correction: `text` should have had `label` (1..255 bytes). *id (may
 * be NULL) gets the row's id: ids only grow and are never reused. Returns 0,
 * ES_EINVAL (missing or empty argument, too long), or ES_EIO with SQLite's
 * message in *err (the row was not saved). */
int es_store_feedback_add(es_store_t *s, const char *model, const char *text, const char *label,
                          int64_t *id, es_error_t *err);

/* *n = feedback rows of `model` (NULL: every model) with id > since_id (0:
 * all). Returns 0 or ES_EIO. */
int es_store_feedback_count(es_store_t *s, const char *model, int64_t since_id, int64_t *n,
                            es_error_t *err);

/* Writes the feedback of `model` to `out` as fastText training lines, oldest
 * first: "__label__<label> <text>\n", where whitespace in the label becomes
 * '_' (a leading "__label__" is not doubled) and newlines, tabs and other
 * control characters in the text become spaces. *rows (may be NULL) gets the
 * lines written. Returns 0, ES_EINVAL, or ES_EIO (a database error, or
 * writing `out` failed). The store is locked while it writes: export to a
 * file, not to a slow socket. */
int es_store_feedback_export(es_store_t *s, const char *model, FILE *out, int64_t *rows,
                             es_error_t *err);

/* ---- jobs --------------------------------------------------------------- */

typedef struct es_job_row {
  int64_t id;
  char model[ES_STORE_NAME_MAX];
  char kind[ES_STORE_KIND_MAX];  /* "train", ... */
  char state[ES_STORE_KIND_MAX]; /* "queued", "running", "succeeded", "failed" */
  double progress;               /* 0..1 */
  char message[ES_STORE_MESSAGE_MAX];
  int result_version; /* the version it produced, 0: none (yet) */
  int64_t created_ms, updated_ms;
} es_job_row_t;

/* Records a new job of `kind` (1..15 bytes) for `model`, state "queued",
 * progress 0. *id gets its id (never reused). Returns 0, ES_EINVAL or
 * ES_EIO. */
int es_store_job_create(es_store_t *s, const char *model, const char *kind, int64_t *id,
                        es_error_t *err);

/* Moves job `id` to `state` with `progress` (0..1). `message` NULL keeps the
 * current one; result_version 0 keeps the current one. Returns 0,
 * ES_ENOTFOUND (no such job), ES_ESTATE (the job has already succeeded or
 * failed: final states stay), ES_EINVAL (unknown state, progress outside
 * 0..1) or ES_EIO. */
int es_store_job_update(es_store_t *s, int64_t id, const char *state, double progress,
                        const char *message, int result_version, es_error_t *err);

/* Fills *out with job `id` (a message longer than ES_STORE_MESSAGE_MAX - 1 is
 * cut). Returns 0, ES_ENOTFOUND or ES_EIO. */
int es_store_job_get(es_store_t *s, int64_t id, es_job_row_t *out, es_error_t *err);

/* ---- events ------------------------------------------------------------- */

/* Records that something happened to a model version: kind (1..15 bytes:
 * "loaded", "swapped", "failed", "refused", "unloaded"...), message may be
 * NULL. Returns 0, ES_EINVAL or ES_EIO. */
int es_store_event_add(es_store_t *s, const char *model, const char *kind, int version,
                       const char *message, es_error_t *err);

/* ---- health ------------------------------------------------------------- */

typedef struct es_store_stats {
  uint64_t history_written; /* rows committed by this process */
  uint64_t history_batches; /* ... in this many transactions */
  uint64_t checkpoints;     /* WAL checkpoints the writer ran for synchronous writes */
  uint64_t dropped_full;    /* refused: the queue was full */
  uint64_t dropped_error;   /* queued, then dropped: their batch failed */
  uint64_t sampled_out;     /* left out by history_sample */
  uint64_t write_errors;    /* failed write transactions, history or synchronous */
  uint64_t cleanup_deleted; /* rows deleted by retention */
  int queue_depth;          /* rows queued or being written */
  int64_t feedback_rows;    /* rows in the feedback table */
  int64_t jobs;             /* rows in the jobs table */
  int healthy;              /* 0 while the last write failed */
  char last_error[256];     /* the last failure, "" when none ever (kept after
                               recovery: healthy says whether it is current) */
} es_store_stats_t;

/* Fills *out. Never touches the database: counters only, one short lock. */
void es_store_stats(es_store_t *s, es_store_stats_t *out);

/* Reads `PRAGMA <name>` on the store's connection for synchronous calls
 * (the writer's is set up by the same code) into out[cap], as text: e.g.
 * "journal_mode" -> "wal", "synchronous" -> "1" (NORMAL). For diagnostics and
 * tests. Returns 0, ES_EINVAL (name not [a-z_]+, or cap 0) or ES_EIO. */
int es_store_pragma(es_store_t *s, const char *name, char *out, size_t cap);

/* Test-only: sets PRAGMA max_page_count on both connections (0: SQLite's
 * limit), e.g. to lift the limit set by params.max_pages. The writer applies
 * it before its next batch. Returns 0 or ES_EIO. */
int es_store_set_max_pages(es_store_t *s, int64_t pages);

#ifdef __cplusplus
}
#endif
#endif
