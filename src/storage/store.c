/*
 * store.c - the server's SQLite storage: request history written by a
 * background thread, feedback, jobs and events written synchronously.
 *
 * Two connections to one WAL database. The writer thread owns `wr` and
 * inserts history in batched transactions (BEGIN IMMEDIATE .. COMMIT); every
 * synchronous call uses `sync` under `dbmu`. WAL lets a reader on one run
 * while the other writes, so a feedback export or a top-inputs scan never
 * stalls history; the two writers serialise on SQLite's write lock, which
 * each holds for one small transaction (a batch of at most batch_max rows, a
 * cleanup chunk of 500 rows, one feedback row), and busy_timeout makes the
 * other wait instead of failing. One connection under one mutex would be
 * simpler, but then a long read would fill the history queue.
 *
 * The history queue is a ring of row copies (one malloc each, strings
 * inline) under `qmu`, which also guards every counter of es_store_stats().
 * history_add takes qmu once and never touches the database.
 *
 * Invariants:
 *   1. Rows held in memory (queued + inflight + reserved) never exceed
 *      queue_limit; a row is freed by exactly one party: the writer after its
 *      batch (written or dropped), or close.
 *   2. Batches are taken from the head of the ring in order, so done_seq (rows
 *      handled, written or dropped) only grows and a flush waiting for
 *      done_seq >= enq_seq-at-call waits exactly for the rows queued before
 *      it.
 *   3. `wr` is used by the writer thread only (by open before the thread
 *      starts, by close after it stops); `sync` only under dbmu. Lock order:
 *      dbmu before qmu; the writer never holds qmu across a database call.
 *   4. A failed batch is rolled back and dropped whole: a row is either in a
 *      committed transaction or counted in dropped_error, never half-written.
 *      After a failure the writer waits retry_ms before the next try and keeps
 *      taking batches, so the queue cannot fill for ever, and the first
 *      successful write makes the store healthy again.
 *   5. The schema is created and upgraded in one transaction together with
 *      PRAGMA user_version: a database is at a known version or untouched.
 *   6. Only the writer thread checkpoints the WAL (after its own commits, and
 *      when the sync connection's hook asks): a synchronous call never pays
 *      for a checkpoint.
 *   7. History ids are rowids (max + 1, rolled back inserts leave no hole);
 *      feedback and job ids are AUTOINCREMENT: never reused, since clients
 *      hold them.
 *
 * Every query is indexed (checked with EXPLAIN QUERY PLAN in the tests):
 * retention by history(ts_ms) and the rowid, top inputs by a rowid range
 * (the last top_window rows), feedback by feedback(model, id), interrupted
 * jobs by jobs(state). History has no index in another order than time on
 * purpose: an index on (model, text) puts every insert and every retention
 * delete on a random page, 11x the WAL bytes per row (docs/server/storage.md).
 */
#include "edgeserve/store.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fail.h"

#define CLEANUP_CHUNK    500  /* rows per retention transaction */
#define CHECKPOINT_PAGES 1000 /* WAL frames before a checkpoint (wal_autocheckpoint) */
/* How long the writer waits for a batch to fill once rows arrive (fewer
 * than batch_max / 2 queued): rows reach the disk at most this much later,
 * and a busy server commits every LINGER_MS instead of once per request. */
#define LINGER_MS     20
#define NO_PAGE_LIMIT 1073741823 /* SQLITE_MAX_PAGE_COUNT of SQLite 3.40 */

/* ---- the schema ---------------------------------------------------------- */

/* migrations[v] brings a database from version v - 1 to v. */
static const char *const migrations[ES_STORE_SCHEMA_VERSION + 1] = {
    NULL,
    "CREATE TABLE history("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  model TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  text TEXT NOT NULL,"
    "  cut INTEGER NOT NULL," /* 1: the text was cut at text_max */
    "  label TEXT,"
    "  prob REAL,"
    "  decision TEXT,"
    "  latency_us INTEGER NOT NULL,"
    "  cached INTEGER NOT NULL,"
    "  status INTEGER NOT NULL);"
    "CREATE INDEX history_ts ON history(ts_ms);"
    "CREATE TABLE feedback("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  ts_ms INTEGER NOT NULL,"
    "  model TEXT NOT NULL,"
    "  text TEXT NOT NULL,"
    "  label TEXT NOT NULL);"
    "CREATE INDEX feedback_model ON feedback(model, id);"
    "CREATE TABLE jobs("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  model TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),"
    "  progress REAL NOT NULL DEFAULT 0,"
    "  message TEXT NOT NULL DEFAULT '',"
    "  result_version INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "CREATE INDEX jobs_state ON jobs(state);"
    "CREATE TABLE events("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  model TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  message TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX events_ts ON events(ts_ms);"
    "CREATE INDEX events_model ON events(model, id);",
};

/* Statements, prepared on first use per connection and kept. */
enum {
  ST_HIST_INSERT,
  ST_HIST_DEL_OLD,
  ST_HIST_MAX_ID,
  ST_HIST_DEL_UPTO,
  ST_EVENT_DEL_OLD,
  ST_TOP_INPUTS,
  ST_FB_INSERT,
  ST_FB_COUNT_MODEL,
  ST_FB_COUNT_ALL,
  ST_FB_EXPORT,
  ST_JOB_INSERT,
  ST_JOB_UPDATE,
  ST_JOB_GET,
  ST_EVENT_INSERT,
  ST_COUNT
};

static const char *const sql_text[ST_COUNT] = {
    [ST_HIST_INSERT] = "INSERT INTO history(ts_ms, model, version, text, cut, label, prob,"
                       " decision, latency_us, cached, status)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_HIST_DEL_OLD] = "DELETE FROM history WHERE id IN"
                        " (SELECT id FROM history WHERE ts_ms < ?1 LIMIT ?2)",
    [ST_HIST_MAX_ID] = "SELECT max(id) FROM history",
    [ST_HIST_DEL_UPTO] = "DELETE FROM history WHERE id IN"
                         " (SELECT id FROM history WHERE id <= ?1 ORDER BY id LIMIT ?2)",
    [ST_EVENT_DEL_OLD] = "DELETE FROM events WHERE id IN"
                         " (SELECT id FROM events WHERE ts_ms < ?1 LIMIT ?2)",
    [ST_TOP_INPUTS] = "SELECT text, count(*) AS n FROM history"
                      " WHERE id > ?3 AND model = ?1 AND cut = 0"
                      " GROUP BY text ORDER BY n DESC, max(id) DESC LIMIT ?2",
    [ST_FB_INSERT] = "INSERT INTO feedback(ts_ms, model, text, label) VALUES (?1, ?2, ?3, ?4)",
    [ST_FB_COUNT_MODEL] = "SELECT count(*) FROM feedback WHERE model = ?1 AND id > ?2",
    [ST_FB_COUNT_ALL] = "SELECT count(*) FROM feedback WHERE id > ?1",
    [ST_FB_EXPORT] = "SELECT label, text FROM feedback WHERE model = ?1 ORDER BY id",
    [ST_JOB_INSERT] = "INSERT INTO jobs(model, kind, state, created_ms, updated_ms)"
                      " VALUES (?1, ?2, 'queued', ?3, ?3)",
    [ST_JOB_UPDATE] = "UPDATE jobs SET state = ?2, progress = ?3,"
                      " message = coalesce(?4, message),"
                      " result_version = CASE WHEN ?5 = 0 THEN result_version ELSE ?5 END,"
                      " updated_ms = ?6"
                      " WHERE id = ?1 AND state NOT IN ('succeeded', 'failed')",
    [ST_JOB_GET] = "SELECT id, model, kind, state, progress, message, result_version,"
                   " created_ms, updated_ms FROM jobs WHERE id = ?1",
    [ST_EVENT_INSERT] = "INSERT INTO events(ts_ms, model, kind, version, message)"
                        " VALUES (?1, ?2, ?3, ?4, coalesce(?5, ''))",
};

/* ---- the store ----------------------------------------------------------- */

typedef struct conn {
  sqlite3 *db;
  sqlite3_stmt *st[ST_COUNT];
} conn_t;

/* A queued history row: the strings follow the struct, each NUL-terminated. */
typedef struct qrow {
  int64_t time_ms, latency_us;
  double prob;
  int version, cached, status, cut;
  uint32_t model_len, text_len, label_len, decision_len;
  int has_label, has_decision;
  char data[];
} qrow_t;

struct es_store {
  es_store_params_t p;
  char *path;
  uint64_t sample_ppm; /* history_sample in millionths */

  pthread_mutex_t dbmu; /* guards sync */
  conn_t sync;
  conn_t wr; /* the writer thread's (invariant 3) */

  pthread_mutex_t qmu;   /* guards everything below */
  pthread_cond_t qcv;    /* wakes the writer */
  pthread_cond_t donecv; /* wakes flushers */
  qrow_t **ring;         /* queue_limit slots */
  int head, queued;      /* the ring's rows */
  int inflight;          /* rows of the batch being written */
  int reserved;          /* slots held by history_add while it copies a row */
  qrow_t **batch;        /* batch_max slots, the writer's */
  uint64_t calls, enq_seq, done_seq;
  int paused, stop;
  int wants_rows;  /* the writer sleeps with nothing queued: signal qcv */
  int flushing;    /* callers waiting in es_store_flush: no lingering */
  int ckpt_wanted; /* the sync connection's WAL is past CHECKPOINT_PAGES */
  int64_t pages_req;
  int pages_dirty;
  uint64_t written, batches, checkpoints, dropped_full, dropped_error, sampled_out, write_errors,
      cleanup_deleted;
  int64_t feedback_rows, jobs;
  int healthy;
  char last_error[256];

  pthread_t writer;
};

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec mono_deadline(int64_t at_ms) {
  struct timespec ts = {(time_t)(at_ms / 1000), (long)(at_ms % 1000) * 1000000L};
  return ts;
}

static sqlite3_stmt *stmt(conn_t *c, int k) {
  if (!c->st[k] && sqlite3_prepare_v3(c->db, sql_text[k], -1, SQLITE_PREPARE_PERSISTENT, &c->st[k],
                                      NULL) != SQLITE_OK)
    return NULL;
  return c->st[k];
}

static void conn_close(conn_t *c) {
  for (int k = 0; k < ST_COUNT; k++) sqlite3_finalize(c->st[k]);
  sqlite3_close(c->db); /* NULL is a no-op */
  memset(c, 0, sizeof *c);
}

/* Runs one statement of SQL returning at most one integer (pragmas). */
static int exec_int(sqlite3 *db, const char *sql, int64_t *out) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && out) *out = sqlite3_column_int64(st, 0);
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
  sqlite3_finalize(st);
  return rc;
}

static int set_max_pages(sqlite3 *db, int64_t pages) {
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
           (long long)(pages > 0 ? pages : NO_PAGE_LIMIT));
  return exec_int(db, sql, NULL);
}

/* Health: called after every write, history or synchronous. */
static void note_write(es_store_t *s, int ok, const char *msg) {
  pthread_mutex_lock(&s->qmu);
  if (ok) {
    s->healthy = 1;
  } else {
    s->healthy = 0;
    s->write_errors++;
    snprintf(s->last_error, sizeof s->last_error, "%s", msg);
  }
  pthread_mutex_unlock(&s->qmu);
}

/* Fails a synchronous call (dbmu held, right after the failing call on
 * s->sync): the code for SQLite's rc, its message and the file in *err. */
static int db_fail(es_store_t *s, es_error_t *err, int rc, int is_write, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s (%s)", what, sqlite3_errmsg(s->sync.db), s->path);
  if (is_write) note_write(s, 0, msg);
  int prim = rc & 0xff;
  int code = prim == SQLITE_NOMEM                           ? ES_ENOMEM
             : prim == SQLITE_BUSY || prim == SQLITE_LOCKED ? ES_ETIMEDOUT
                                                            : ES_EIO;
  return es__fail(err, code, -1, "%s", msg);
}

static int bad_name(const char *s, size_t max) { return !s || !*s || strlen(s) >= max; }

/* ---- history: the writer ------------------------------------------------- */

static int bind_text(sqlite3_stmt *st, int i, const char *s, uint32_t n, int present) {
  return present ? sqlite3_bind_text(st, i, s, (int)n, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* Inserts b[0..n) in one transaction on `wr`. Returns SQLITE_OK, or the
 * failing rc with its message in msg[cap] and the transaction rolled back. */
static int write_batch(es_store_t *s, qrow_t **b, int n, char *msg, size_t cap) {
  sqlite3 *db = s->wr.db;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc != SQLITE_OK) goto fail;
  if (!(st = stmt(&s->wr, ST_HIST_INSERT))) {
    rc = sqlite3_errcode(db);
    goto fail;
  }
  for (int i = 0; i < n; i++) {
    const qrow_t *r = b[i];
    const char *model = r->data, *text = model + r->model_len + 1;
    const char *label = text + r->text_len + 1;
    const char *decision = label + (r->has_label ? r->label_len + 1 : 0);
    sqlite3_bind_int64(st, 1, r->time_ms);
    sqlite3_bind_text(st, 2, model, (int)r->model_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, r->version);
    sqlite3_bind_text(st, 4, text, (int)r->text_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, r->cut);
    bind_text(st, 6, label, r->label_len, r->has_label);
    sqlite3_bind_double(st, 7, r->prob);
    bind_text(st, 8, decision, r->decision_len, r->has_decision);
    sqlite3_bind_int64(st, 9, r->latency_us);
    sqlite3_bind_int(st, 10, r->cached != 0);
    sqlite3_bind_int(st, 11, r->status);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) goto fail;
    sqlite3_reset(st);
  }
  rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  if (rc == SQLITE_OK) return SQLITE_OK;
fail:
  snprintf(msg, cap, "%s", sqlite3_errmsg(db));
  if (st) sqlite3_reset(st);
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

/* A retention pass, one small transaction per step, so that the writer can
 * write a history batch between two steps and a synchronous caller never
 * waits on SQLite's lock for more than one step. */
typedef struct cleanup {
  int phase; /* 0 history by age, 1 events by age, 2 history beyond max_rows,
                3 giving pages back, 4 done */
  int vacuums;
  int64_t now_ms, upto, deleted;
} cleanup_t;

static cleanup_t cleanup_start(int64_t now_ms);
static int cleanup_step(es_store_t *s, conn_t *c, cleanup_t *cl);

/* The sync connection's WAL hook, in place of its automatic checkpoint: a
 * checkpoint copies the WAL back into the file and syncs, tens to hundreds of
 * milliseconds, which a caller of feedback_add should not wait for. Past
 * CHECKPOINT_PAGES frames it asks the writer thread to checkpoint (the
 * writer's own connection checkpoints after its commits as usual). Runs in
 * a commit on `sync`, dbmu held: dbmu before qmu. */
static int sync_wal_hook(void *arg, sqlite3 *db, const char *name, int frames) {
  (void)db, (void)name;
  es_store_t *s = arg;
  if (frames >= CHECKPOINT_PAGES) {
    pthread_mutex_lock(&s->qmu);
    if (!s->ckpt_wanted) {
      s->ckpt_wanted = 1;
      pthread_cond_signal(&s->qcv);
    }
    pthread_mutex_unlock(&s->qmu);
  }
  return SQLITE_OK;
}

/* The writer: history batches when rows are queued (not paused, not waiting
 * to retry), one step of a due retention pass after each batch (so neither
 * starves the other), else sleep. While paused it writes nothing. */
static void *writer_main(void *arg) {
  es_store_t *s = arg;
  int64_t retry_at = 0;
  int64_t next_cleanup =
      s->p.cleanup_interval_s > 0 ? mono_ms() + s->p.cleanup_interval_s * 1000 : INT64_MAX;
  cleanup_t cl = cleanup_start(0);
  cl.phase = 4; /* none running */
  int last_was_batch = 0, lingered = 0;
  pthread_mutex_lock(&s->qmu);
  while (!s->stop) {
    int64_t now = mono_ms();
    int can_write = !s->paused && s->queued > 0 && now >= retry_at;
    int can_clean = !s->paused && (cl.phase < 4 || now >= next_cleanup);
    if (s->pages_dirty) {
      int64_t pages = s->pages_req;
      s->pages_dirty = 0;
      pthread_mutex_unlock(&s->qmu);
      set_max_pages(s->wr.db, pages);
      pthread_mutex_lock(&s->qmu);
      continue;
    }
    if (!s->paused && s->ckpt_wanted) {
      s->ckpt_wanted = 0;
      pthread_mutex_unlock(&s->qmu);
      int rc = sqlite3_wal_checkpoint_v2(s->wr.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
      pthread_mutex_lock(&s->qmu);
      if (rc == SQLITE_OK) s->checkpoints++;
      continue;
    }
    if (can_write && !lingered && s->queued < s->p.batch_max / 2 && !s->flushing && !s->stop) {
      /* a few rows: wait a little for more, so that a busy server writes
       * batches, not a transaction (locks, WAL write) per request */
      lingered = 1;
      struct timespec ts = mono_deadline(now + LINGER_MS);
      pthread_cond_timedwait(&s->qcv, &s->qmu, &ts);
      continue;
    }
    if (can_write && !(can_clean && last_was_batch)) {
      last_was_batch = 1;
      lingered = 0;
      int n = s->queued < s->p.batch_max ? s->queued : s->p.batch_max;
      for (int i = 0; i < n; i++) {
        s->batch[i] = s->ring[s->head];
        s->head = (s->head + 1) % s->p.queue_limit;
      }
      s->queued -= n;
      s->inflight = n;
      pthread_mutex_unlock(&s->qmu);

      char why[200], msg[256] = "";
      int rc = write_batch(s, s->batch, n, why, sizeof why);
      for (int i = 0; i < n; i++) free(s->batch[i]);
      if (rc != SQLITE_OK) {
        int r = s->p.retry_ms;
        snprintf(msg, sizeof msg, "%s (%s): history paused, retrying every %d%s", why, s->path,
                 r % 1000 ? r : r / 1000, r % 1000 ? "ms" : "s");
        retry_at = mono_ms() + s->p.retry_ms;
      } else {
        retry_at = 0;
      }
      note_write(s, rc == SQLITE_OK, msg);

      pthread_mutex_lock(&s->qmu);
      s->inflight = 0;
      s->done_seq += (uint64_t)n;
      if (rc == SQLITE_OK) {
        s->written += (uint64_t)n;
        s->batches++;
      } else {
        s->dropped_error += (uint64_t)n;
      }
      pthread_cond_broadcast(&s->donecv);
      continue;
    }
    if (can_clean) {
      last_was_batch = 0;
      if (cl.phase == 4) {
        cl = cleanup_start(wall_ms());
        next_cleanup = now + s->p.cleanup_interval_s * 1000;
      }
      pthread_mutex_unlock(&s->qmu);
      cleanup_step(s, &s->wr, &cl);
      pthread_mutex_lock(&s->qmu);
      continue;
    }
    int64_t wake = s->paused ? INT64_MAX : next_cleanup;
    if (!s->paused && s->queued > 0 && retry_at < wake) wake = retry_at;
    s->wants_rows = !s->paused && s->queued == 0;
    if (wake == INT64_MAX) {
      pthread_cond_wait(&s->qcv, &s->qmu);
    } else {
      struct timespec ts = mono_deadline(wake);
      pthread_cond_timedwait(&s->qcv, &s->qmu, &ts);
    }
    s->wants_rows = 0;
  }
  pthread_mutex_unlock(&s->qmu);
  return NULL;
}

/* Copies a row into one allocation (see qrow_t); NULL when out of memory. */
static qrow_t *qrow_new(const es_store_t *s, const es_history_row_t *row) {
  size_t tlen = row->text_len;
  int cut = 0;
  if (tlen > s->p.text_max) { /* cut at a UTF-8 boundary; kept out of top_inputs */
    tlen = s->p.text_max;
    while (tlen > 0 && ((unsigned char)row->text[tlen] & 0xc0) == 0x80) tlen--;
    cut = 1;
  }
  size_t mlen = strlen(row->model);
  size_t llen = row->label ? strnlen(row->label, ES_STORE_LABEL_MAX - 1) : 0;
  size_t dlen = row->decision ? strnlen(row->decision, ES_STORE_KIND_MAX - 1) : 0;
  qrow_t *r = malloc(sizeof *r + mlen + tlen + llen + dlen + 4);
  if (!r) return NULL;
  r->time_ms = row->time_ms ? row->time_ms : wall_ms();
  r->latency_us = row->latency_us;
  r->prob = row->prob;
  r->cut = cut;
  r->version = row->version;
  r->cached = row->cached;
  r->status = row->status;
  r->model_len = (uint32_t)mlen;
  r->text_len = (uint32_t)tlen;
  r->label_len = (uint32_t)llen;
  r->decision_len = (uint32_t)dlen;
  r->has_label = row->label != NULL;
  r->has_decision = row->decision != NULL;
  char *p = r->data;
  memcpy(p, row->model, mlen);
  p[mlen] = 0;
  p += mlen + 1;
  if (tlen) memcpy(p, row->text, tlen);
  p[tlen] = 0;
  p += tlen + 1;
  if (r->has_label) {
    memcpy(p, row->label, llen);
    p[llen] = 0;
    p += llen + 1;
  }
  if (r->has_decision) {
    memcpy(p, row->decision, dlen);
    p[dlen] = 0;
  }
  return r;
}

int es_store_history_add(es_store_t *s, const es_history_row_t *row) {
  if (!row || bad_name(row->model, ES_STORE_NAME_MAX) || !row->text) return ES_EINVAL;
  int rc = 0, sampled_out = 0;
  pthread_mutex_lock(&s->qmu);
  uint64_t n = s->calls++; /* kept iff floor((n+1)·rate) > floor(n·rate): evenly spread */
  if ((n + 1) * s->sample_ppm / 1000000 == n * s->sample_ppm / 1000000) {
    s->sampled_out++;
    sampled_out = 1;
  } else if (s->queued + s->inflight + s->reserved >= s->p.queue_limit) {
    s->dropped_full++;
    rc = ES_EFULL;
  } else {
    s->reserved++;
  }
  pthread_mutex_unlock(&s->qmu);
  if (rc || sampled_out) return rc;

  qrow_t *r = qrow_new(s, row); /* outside the lock: the copy is the costly part */
  pthread_mutex_lock(&s->qmu);
  s->reserved--;
  if (r) {
    s->ring[(s->head + s->queued) % s->p.queue_limit] = r;
    s->queued++;
    s->enq_seq++;
    if (s->wants_rows) { /* one wake-up per idle period, not one per row */
      s->wants_rows = 0;
      pthread_cond_signal(&s->qcv);
    }
  }
  pthread_mutex_unlock(&s->qmu);
  return r ? 0 : ES_ENOMEM;
}

int es_store_flush(es_store_t *s, int timeout_ms) {
  int rc = 0;
  int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
  pthread_mutex_lock(&s->qmu);
  uint64_t target = s->enq_seq;
  s->flushing++;
  pthread_cond_signal(&s->qcv);
  while (s->done_seq < target) {
    if (deadline == INT64_MAX) {
      pthread_cond_wait(&s->donecv, &s->qmu);
      continue;
    }
    if (mono_ms() >= deadline) {
      rc = ES_ETIMEDOUT;
      break;
    }
    struct timespec ts = mono_deadline(deadline);
    pthread_cond_timedwait(&s->donecv, &s->qmu, &ts);
  }
  s->flushing--;
  if (rc == 0 && !s->healthy) rc = ES_EIO;
  pthread_mutex_unlock(&s->qmu);
  return rc;
}

void es_store_pause(es_store_t *s, int paused) {
  pthread_mutex_lock(&s->qmu);
  s->paused = paused != 0;
  pthread_cond_signal(&s->qcv);
  pthread_mutex_unlock(&s->qmu);
}

/* ---- retention ------------------------------------------------------------ */

static cleanup_t cleanup_start(int64_t now_ms) { return (cleanup_t){.now_ms = now_ms, .upto = -1}; }

/* Deletes up to CLEANUP_CHUNK rows with statement k, bound ?1; *n gets how
 * many. One transaction (autocommit). */
static int delete_chunk(conn_t *c, int k, int64_t bound, int *n) {
  sqlite3_stmt *st = stmt(c, k);
  if (!st) return sqlite3_errcode(c->db);
  sqlite3_bind_int64(st, 1, bound);
  sqlite3_bind_int(st, 2, CLEANUP_CHUNK);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  *n = rc == SQLITE_DONE ? sqlite3_changes(c->db) : 0;
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Runs one step of pass *cl on connection c (the writer's, or sync under
 * dbmu). Returns an SQLite rc; cl->phase == 4 when the pass is over. A
 * failure is noted as a failed write and ends the pass. */
static int cleanup_step(es_store_t *s, conn_t *c, cleanup_t *cl) {
  int rc = SQLITE_OK, n = 0;
  int64_t cutoff = cl->now_ms - s->p.retention_s * 1000;
  switch (cl->phase) {
  case 0:
  case 1:
    if (s->p.retention_s > 0)
      rc = delete_chunk(c, cl->phase == 0 ? ST_HIST_DEL_OLD : ST_EVENT_DEL_OLD, cutoff, &n);
    if (n < CLEANUP_CHUNK) cl->phase++;
    break;
  case 2:
    if (s->p.max_rows > 0 && cl->upto < 0) {
      /* Ids are max + 1 (invariant 7), so the newest max_rows rows are those
       * above max(id) - max_rows, found without counting them (retention by
       * age may have left holes: then fewer are kept). */
      sqlite3_stmt *st = stmt(c, ST_HIST_MAX_ID);
      rc = st ? sqlite3_step(st) : sqlite3_errcode(c->db);
      cl->upto = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) - s->p.max_rows : 0;
      rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
      if (st) sqlite3_reset(st);
    }
    if (rc == SQLITE_OK && cl->upto > 0) rc = delete_chunk(c, ST_HIST_DEL_UPTO, cl->upto, &n);
    if (n < CLEANUP_CHUNK) cl->phase++;
    break;
  case 3: {
    /* Give pages back to the file system only after a big shrink (a quarter
     * of the file free): pages freed by routine retention are reused by the
     * next inserts anyway. */
    int64_t free_pages = 0, pages = 0;
    if (cl->deleted > 0 && cl->vacuums < 64 &&
        exec_int(c->db, "PRAGMA freelist_count", &free_pages) == SQLITE_OK &&
        exec_int(c->db, "PRAGMA page_count", &pages) == SQLITE_OK &&
        free_pages * 4 > pages * (cl->vacuums ? 0 : 1) && free_pages > 0) {
      rc = sqlite3_exec(c->db, "PRAGMA incremental_vacuum(256)", NULL, NULL, NULL);
      cl->vacuums++;
    } else {
      cl->phase++;
    }
    break;
  }
  default: return SQLITE_OK;
  }
  cl->deleted += n;
  if (rc != SQLITE_OK) {
    char msg[256];
    snprintf(msg, sizeof msg, "retention cleanup failed: %s (%s)", sqlite3_errmsg(c->db), s->path);
    note_write(s, 0, msg);
    cl->phase = 4;
  } else if (n > 0) { /* deleting nothing wrote nothing: says nothing on health */
    note_write(s, 1, NULL);
  }
  if (n > 0) {
    pthread_mutex_lock(&s->qmu);
    s->cleanup_deleted += (uint64_t)n;
    pthread_mutex_unlock(&s->qmu);
  }
  return rc;
}

int es_store_cleanup(es_store_t *s, int64_t now_ms, int64_t *deleted, es_error_t *err) {
  cleanup_t cl = cleanup_start(now_ms ? now_ms : wall_ms());
  int rc = SQLITE_OK, code = 0;
  while (rc == SQLITE_OK && cl.phase < 4) {
    pthread_mutex_lock(&s->dbmu); /* per step: other callers get in between */
    rc = cleanup_step(s, &s->sync, &cl);
    if (rc != SQLITE_OK)
      code = es__fail(err, rc == SQLITE_NOMEM ? ES_ENOMEM : ES_EIO, -1,
                      "retention cleanup failed: %s (%s)", sqlite3_errmsg(s->sync.db), s->path);
    pthread_mutex_unlock(&s->dbmu);
  }
  if (deleted) *deleted = cl.deleted;
  return code;
}

/* ---- top inputs ------------------------------------------------------------ */

typedef struct top_item {
  char *text;
  size_t len;
  int64_t count;
} top_item_t;

int es_store_top_inputs(es_store_t *s, const char *model, int limit, es_store_input_fn fn, void *ud,
                        es_error_t *err) {
  if (bad_name(model, ES_STORE_NAME_MAX) || limit < 1 || limit > 100000 || !fn)
    return es__fail(err, ES_EINVAL, -1, "top inputs: need a model, a callback and 1..100000");
  top_item_t *items = NULL;
  int n = 0, cap = 0, rc = 0, src = SQLITE_OK;
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *ms = stmt(&s->sync, ST_HIST_MAX_ID), *st = stmt(&s->sync, ST_TOP_INPUTS);
  if (!ms || !st) {
    rc = db_fail(s, err, sqlite3_errcode(s->sync.db), 0, "top inputs");
    goto out;
  }
  /* The window: the last top_window rows, by rowid (invariant 7). */
  src = sqlite3_step(ms);
  int64_t first = src == SQLITE_ROW ? sqlite3_column_int64(ms, 0) - s->p.top_window : 0;
  sqlite3_reset(ms);
  if (src != SQLITE_ROW) {
    rc = db_fail(s, err, src, 0, "top inputs");
    goto out;
  }
  sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, limit);
  sqlite3_bind_int64(st, 3, first);
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      int ncap = cap ? cap * 2 : 16;
      top_item_t *g = realloc(items, (size_t)ncap * sizeof *g);
      if (!g) break;
      items = g;
      cap = ncap;
    }
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    const void *text = sqlite3_column_blob(st, 0);
    char *copy = malloc(len + 1);
    if (!copy) break;
    if (len) memcpy(copy, text, len);
    copy[len] = 0;
    items[n++] = (top_item_t){copy, len, sqlite3_column_int64(st, 1)};
  }
  if (src == SQLITE_ROW)
    rc = es__fail(err, ES_ENOMEM, -1, "top inputs: out of memory");
  else if (src != SQLITE_DONE)
    rc = db_fail(s, err, src, 0, "top inputs");
  sqlite3_reset(st);
out:
  pthread_mutex_unlock(&s->dbmu);
  for (int i = 0; i < n; i++) {
    if (rc == 0 && fn(ud, items[i].text, items[i].len, items[i].count)) rc = 1;
    free(items[i].text);
  }
  free(items);
  return rc > 0 ? 0 : rc;
}

/* ---- feedback ---------------------------------------------------------------- */

int es_store_feedback_add(es_store_t *s, const char *model, const char *text, const char *label,
                          int64_t *id, es_error_t *err) {
  if (bad_name(model, ES_STORE_NAME_MAX) || !text || !*text || bad_name(label, ES_STORE_LABEL_MAX))
    return es__fail(err, ES_EINVAL, -1,
                    "feedback needs a model (1..63 bytes), a text and a label (1..255 bytes)");
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *st = stmt(&s->sync, ST_FB_INSERT);
  int rc = st ? SQLITE_OK : sqlite3_errcode(s->sync.db);
  if (st) {
    sqlite3_bind_int64(st, 1, wall_ms());
    sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, label, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
  }
  if (rc != SQLITE_DONE) {
    int code = db_fail(s, err, rc, 1, "feedback not saved");
    pthread_mutex_unlock(&s->dbmu);
    return code;
  }
  if (id) *id = sqlite3_last_insert_rowid(s->sync.db);
  pthread_mutex_unlock(&s->dbmu);
  note_write(s, 1, NULL);
  pthread_mutex_lock(&s->qmu);
  s->feedback_rows++;
  pthread_mutex_unlock(&s->qmu);
  return 0;
}

int es_store_feedback_count(es_store_t *s, const char *model, int64_t since_id, int64_t *n,
                            es_error_t *err) {
  if ((model && bad_name(model, ES_STORE_NAME_MAX)) || !n)
    return es__fail(err, ES_EINVAL, -1, "feedback count: bad model name or no result");
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *st = stmt(&s->sync, model ? ST_FB_COUNT_MODEL : ST_FB_COUNT_ALL);
  int rc = st ? SQLITE_OK : sqlite3_errcode(s->sync.db);
  if (st) {
    if (model) sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, model ? 2 : 1, since_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
  }
  int code = rc == SQLITE_ROW ? 0 : db_fail(s, err, rc, 0, "feedback count");
  pthread_mutex_unlock(&s->dbmu);
  return code;
}

/* fastText reads whitespace as a separator: a label must have none, a line
 * must end only at its end. */
static int put_label(FILE *out, const unsigned char *l, size_t n) {
  static const char prefix[] = "__label__";
  if (n >= sizeof prefix - 1 && !memcmp(l, prefix, sizeof prefix - 1)) {
    l += sizeof prefix - 1;
    n -= sizeof prefix - 1;
  }
  if (fputs(prefix, out) < 0) return -1;
  for (size_t i = 0; i < n; i++)
    if (putc(l[i] <= ' ' || l[i] == 0x7f ? '_' : l[i], out) == EOF) return -1;
  return 0;
}

static int put_text(FILE *out, const unsigned char *t, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (putc(t[i] < ' ' || t[i] == 0x7f ? ' ' : t[i], out) == EOF) return -1;
  return 0;
}

int es_store_feedback_export(es_store_t *s, const char *model, FILE *out, int64_t *rows,
                             es_error_t *err) {
  if (bad_name(model, ES_STORE_NAME_MAX) || !out)
    return es__fail(err, ES_EINVAL, -1, "feedback export: need a model and a file");
  int64_t n = 0;
  int code = 0;
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *st = stmt(&s->sync, ST_FB_EXPORT);
  int rc = st ? SQLITE_OK : sqlite3_errcode(s->sync.db);
  if (st) {
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      const unsigned char *label = sqlite3_column_blob(st, 0);
      size_t llen = (size_t)sqlite3_column_bytes(st, 0);
      const unsigned char *text = sqlite3_column_blob(st, 1);
      size_t tlen = (size_t)sqlite3_column_bytes(st, 1);
      if (put_label(out, label, llen) || putc(' ', out) == EOF || put_text(out, text, tlen) ||
          putc('\n', out) == EOF) {
        code = es__fail(err, ES_EIO, -1, "feedback export: writing failed: %s", strerror(errno));
        break;
      }
      n++;
    }
    sqlite3_reset(st);
  }
  if (!code && rc != SQLITE_DONE) code = db_fail(s, err, rc, 0, "feedback export");
  pthread_mutex_unlock(&s->dbmu);
  if (!code && fflush(out))
    code = es__fail(err, ES_EIO, -1, "feedback export: writing failed: %s", strerror(errno));
  if (rows) *rows = n;
  return code;
}

/* ---- jobs and events ------------------------------------------------------------- */

static int valid_state(const char *state) {
  static const char *const states[] = {"queued", "running", "succeeded", "failed"};
  for (size_t i = 0; state && i < sizeof states / sizeof *states; i++)
    if (!strcmp(state, states[i])) return 1;
  return 0;
}

int es_store_job_create(es_store_t *s, const char *model, const char *kind, int64_t *id,
                        es_error_t *err) {
  if (bad_name(model, ES_STORE_NAME_MAX) || bad_name(kind, ES_STORE_KIND_MAX) || !id)
    return es__fail(err, ES_EINVAL, -1, "job: need a model (1..63 bytes) and a kind (1..15)");
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *st = stmt(&s->sync, ST_JOB_INSERT);
  int rc = st ? SQLITE_OK : sqlite3_errcode(s->sync.db);
  if (st) {
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, wall_ms());
    rc = sqlite3_step(st);
    sqlite3_reset(st);
  }
  if (rc != SQLITE_DONE) {
    int code = db_fail(s, err, rc, 1, "job not created");
    pthread_mutex_unlock(&s->dbmu);
    return code;
  }
  *id = sqlite3_last_insert_rowid(s->sync.db);
  pthread_mutex_unlock(&s->dbmu);
  note_write(s, 1, NULL);
  pthread_mutex_lock(&s->qmu);
  s->jobs++;
  pthread_mutex_unlock(&s->qmu);
  return 0;
}

/* Reads job `id` into *out (dbmu held). Returns SQLITE_ROW, SQLITE_DONE
 * (none) or an error rc. */
static const char *col_str(sqlite3_stmt *st, int i) {
  const char *t = (const char *)sqlite3_column_text(st, i);
  return t ? t : "";
}

static int job_read(es_store_t *s, int64_t id, es_job_row_t *out) {
  sqlite3_stmt *st = stmt(&s->sync, ST_JOB_GET);
  if (!st) return sqlite3_errcode(s->sync.db);
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && out) {
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(st, 0);
    snprintf(out->model, sizeof out->model, "%s", col_str(st, 1));
    snprintf(out->kind, sizeof out->kind, "%s", col_str(st, 2));
    snprintf(out->state, sizeof out->state, "%s", col_str(st, 3));
    out->progress = sqlite3_column_double(st, 4);
    snprintf(out->message, sizeof out->message, "%s", col_str(st, 5));
    out->result_version = sqlite3_column_int(st, 6);
    out->created_ms = sqlite3_column_int64(st, 7);
    out->updated_ms = sqlite3_column_int64(st, 8);
  }
  sqlite3_reset(st);
  return rc;
}

int es_store_job_update(es_store_t *s, int64_t id, const char *state, double progress,
                        const char *message, int result_version, es_error_t *err) {
  if (!valid_state(state) || !(progress >= 0 && progress <= 1) || result_version < 0)
    return es__fail(err, ES_EINVAL, -1,
                    "job update: state must be queued, running, succeeded or failed, "
                    "progress 0..1");
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *st = stmt(&s->sync, ST_JOB_UPDATE);
  int rc = st ? SQLITE_OK : sqlite3_errcode(s->sync.db), code = 0;
  if (st) {
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, progress);
    if (message)
      sqlite3_bind_text(st, 4, message, -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 4);
    sqlite3_bind_int(st, 5, result_version);
    sqlite3_bind_int64(st, 6, wall_ms());
    rc = sqlite3_step(st);
    sqlite3_reset(st);
  }
  if (rc != SQLITE_DONE) {
    code = db_fail(s, err, rc, 1, "job not updated");
  } else if (sqlite3_changes(s->sync.db) == 0) { /* no such job, or a final state */
    es_job_row_t job;
    rc = job_read(s, id, &job);
    if (rc == SQLITE_ROW)
      code = es__fail(err, ES_ESTATE, -1, "job %lld has already %s", (long long)id, job.state);
    else if (rc == SQLITE_DONE)
      code = es__fail(err, ES_ENOTFOUND, -1, "no job %lld", (long long)id);
    else
      code = db_fail(s, err, rc, 0, "job update");
  }
  pthread_mutex_unlock(&s->dbmu);
  if (rc == SQLITE_DONE && code == 0) note_write(s, 1, NULL);
  return code;
}

int es_store_job_get(es_store_t *s, int64_t id, es_job_row_t *out, es_error_t *err) {
  if (!out) return es__fail(err, ES_EINVAL, -1, "job get: no result");
  pthread_mutex_lock(&s->dbmu);
  int rc = job_read(s, id, out);
  int code = rc == SQLITE_ROW    ? 0
             : rc == SQLITE_DONE ? es__fail(err, ES_ENOTFOUND, -1, "no job %lld", (long long)id)
                                 : db_fail(s, err, rc, 0, "job get");
  pthread_mutex_unlock(&s->dbmu);
  return code;
}

int es_store_event_add(es_store_t *s, const char *model, const char *kind, int version,
                       const char *message, es_error_t *err) {
  if (bad_name(model, ES_STORE_NAME_MAX) || bad_name(kind, ES_STORE_KIND_MAX))
    return es__fail(err, ES_EINVAL, -1, "event: need a model (1..63 bytes) and a kind (1..15)");
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *st = stmt(&s->sync, ST_EVENT_INSERT);
  int rc = st ? SQLITE_OK : sqlite3_errcode(s->sync.db), code = 0;
  if (st) {
    sqlite3_bind_int64(st, 1, wall_ms());
    sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, version);
    if (message)
      sqlite3_bind_text(st, 5, message, -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 5);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
  }
  if (rc != SQLITE_DONE) code = db_fail(s, err, rc, 1, "event not saved");
  pthread_mutex_unlock(&s->dbmu);
  if (!code) note_write(s, 1, NULL);
  return code;
}

/* ---- health ---------------------------------------------------------------------- */

void es_store_stats(es_store_t *s, es_store_stats_t *out) {
  pthread_mutex_lock(&s->qmu);
  out->history_written = s->written;
  out->history_batches = s->batches;
  out->checkpoints = s->checkpoints;
  out->dropped_full = s->dropped_full;
  out->dropped_error = s->dropped_error;
  out->sampled_out = s->sampled_out;
  out->write_errors = s->write_errors;
  out->cleanup_deleted = s->cleanup_deleted;
  out->queue_depth = s->queued + s->inflight + s->reserved;
  out->feedback_rows = s->feedback_rows;
  out->jobs = s->jobs;
  out->healthy = s->healthy;
  memcpy(out->last_error, s->last_error, sizeof out->last_error);
  pthread_mutex_unlock(&s->qmu);
}

int es_store_pragma(es_store_t *s, const char *name, char *out, size_t cap) {
  if (!name || !*name || strspn(name, "abcdefghijklmnopqrstuvwxyz_") != strlen(name) || !out ||
      !cap || strlen(name) > 64)
    return ES_EINVAL;
  char sql[80];
  snprintf(sql, sizeof sql, "PRAGMA %s", name);
  pthread_mutex_lock(&s->dbmu);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->sync.db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    const char *v = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    snprintf(out, cap, "%s", v ? v : "");
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&s->dbmu);
  return rc == SQLITE_OK ? 0 : ES_EIO;
}

int es_store_set_max_pages(es_store_t *s, int64_t pages) {
  if (pages < 0) return ES_EINVAL;
  pthread_mutex_lock(&s->dbmu);
  int rc = set_max_pages(s->sync.db, pages);
  pthread_mutex_unlock(&s->dbmu);
  pthread_mutex_lock(&s->qmu);
  s->pages_req = pages;
  s->pages_dirty = 1;
  pthread_cond_signal(&s->qcv);
  pthread_mutex_unlock(&s->qmu);
  return rc == SQLITE_OK ? 0 : ES_EIO;
}

/* ---- open and close ----------------------------------------------------------------- */

es_store_params_t es_store_default_params(void) {
  return (es_store_params_t){
      .path = NULL,
      .history_sample = 1.0,
      .retention_s = 30 * 24 * 3600,
      .max_rows = 1000000,
      .cleanup_interval_s = 600,
      .queue_limit = 4096,
      .batch_max = 256,
      .text_max = 2048,
      .top_window = 50000,
      .retry_ms = 1000,
      .close_timeout_ms = 5000,
      .cache_kib = 8192,
      .mmap_bytes = 64 << 20,
      .busy_timeout_ms = 30000,
      .max_pages = 0,
  };
}

static int check_params(const es_store_params_t *p, es_error_t *err) {
  const char *bad = !p->path || !*p->path                                 ? "path"
                    : !(p->history_sample >= 0 && p->history_sample <= 1) ? "history_sample"
                    : p->retention_s < 0                                  ? "retention_s"
                    : p->max_rows < 0                                     ? "max_rows"
                    : p->cleanup_interval_s < 0                           ? "cleanup_interval_s"
                    : p->queue_limit < 1 || p->queue_limit > (1 << 24)    ? "queue_limit"
                    : p->batch_max < 1 || p->batch_max > 100000           ? "batch_max"
                    : p->text_max < 1 || p->text_max > (1u << 30)         ? "text_max"
                    : p->top_window < 1                                   ? "top_window"
                    : p->retry_ms < 1 || p->retry_ms > 3600000            ? "retry_ms"
                    : p->close_timeout_ms < 0                             ? "close_timeout_ms"
                    : p->cache_kib < 0 || p->mmap_bytes < 0               ? "cache_kib/mmap_bytes"
                    : p->busy_timeout_ms < 0                              ? "busy_timeout_ms"
                    : p->max_pages < 0                                    ? "max_pages"
                                                                          : NULL;
  if (bad) return es__fail(err, ES_EINVAL, -1, "store: invalid parameter %s", bad);
  return 0;
}

/* The message for a failure while opening `path`. */
static int open_fail(const es_store_t *s, sqlite3 *db, int rc, es_error_t *err) {
  const char *why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
  case SQLITE_NOTADB:
    return es__fail(err, ES_EFORMAT, -1, "%s is not a SQLite database: move it away or delete it",
                    s->path);
  case SQLITE_CORRUPT:
    return es__fail(err, ES_EFORMAT, -1,
                    "%s is corrupt (%s): move it away or delete it (its history, feedback and "
                    "jobs are lost), or try `sqlite3 %s .recover`",
                    s->path, why, s->path);
  case SQLITE_CANTOPEN:
    return es__fail(err, ES_EIO, -1,
                    "cannot open %s (%s): check that its directory exists and is writable", s->path,
                    why);
  case SQLITE_READONLY:
  case SQLITE_PERM:
    return es__fail(err, ES_EIO, -1, "%s is read-only (%s): the server needs to write it", s->path,
                    why);
  case SQLITE_FULL: return es__fail(err, ES_EIO, -1, "%s: %s: free some space", s->path, why);
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return es__fail(err, ES_EIO, -1, "%s is locked by another process (%s)", s->path, why);
  case SQLITE_NOMEM: return es__fail(err, ES_ENOMEM, -1, "%s: out of memory", s->path);
  default: return es__fail(err, ES_EIO, -1, "%s: %s", s->path, why);
  }
}

/* Opens a connection with the per-connection pragmas. */
static int conn_open(es_store_t *s, conn_t *c, es_error_t *err) {
  int rc = sqlite3_open_v2(s->path, &c->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    int code = open_fail(s, c->db, rc, err);
    conn_close(c);
    return code;
  }
  sqlite3_extended_result_codes(c->db, 1);
  sqlite3_busy_timeout(c->db, s->p.busy_timeout_ms);
  int64_t cache = s->p.cache_kib / 2 > 64 ? s->p.cache_kib / 2 : 64;
  char sql[256];
  snprintf(sql, sizeof sql,
           "PRAGMA cache_size = -%lld; PRAGMA mmap_size = %lld; PRAGMA temp_store = MEMORY;"
           " PRAGMA foreign_keys = ON;",
           (long long)cache, (long long)s->p.mmap_bytes);
  rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK) return open_fail(s, c->db, rc, err);
  return 0;
}

/* The once-per-open work on `sync`: file checks, database-wide pragmas,
 * schema, interrupted jobs, counters. */
static int prepare_db(es_store_t *s, es_error_t *err) {
  sqlite3 *db = s->sync.db;
  int64_t version = 0, tables = 0;
  int rc = exec_int(db, "PRAGMA user_version", &version); /* reads the header */
  if (rc == SQLITE_OK) rc = exec_int(db, "SELECT count(*) FROM sqlite_master", &tables);
  if (rc != SQLITE_OK) return open_fail(s, db, rc, err);
  if (sqlite3_db_readonly(db, "main") == 1) return open_fail(s, db, SQLITE_READONLY, err);
  if (version > ES_STORE_SCHEMA_VERSION)
    return es__fail(err, ES_EVERSION, -1,
                    "%s has schema version %lld, newer than this edgeserve's (%d): upgrade "
                    "edgeserve, or move the file away",
                    s->path, (long long)version, ES_STORE_SCHEMA_VERSION);
  if (version == 0 && tables > 0)
    return es__fail(err, ES_EFORMAT, -1,
                    "%s is a SQLite database of another program: choose another path", s->path);
  if (tables == 0) /* a new file: only possible before the first table */
    rc = sqlite3_exec(db, "PRAGMA page_size = 4096; PRAGMA auto_vacuum = INCREMENTAL;", NULL, NULL,
                      NULL);
  if (rc != SQLITE_OK) return open_fail(s, db, rc, err);

  /* journal_mode is stored in the file: WAL once set (a file system without
   * shared memory keeps the rollback journal; everything still works). */
  rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
  if (rc != SQLITE_OK) return open_fail(s, db, rc, err);

  rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc == SQLITE_OK) rc = exec_int(db, "PRAGMA user_version", &version); /* under the lock */
  for (int64_t v = version + 1; rc == SQLITE_OK && v <= ES_STORE_SCHEMA_VERSION; v++)
    rc = sqlite3_exec(db, migrations[v], NULL, NULL, NULL);
  if (rc == SQLITE_OK && version < ES_STORE_SCHEMA_VERSION) {
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", ES_STORE_SCHEMA_VERSION);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  }
  if (rc == SQLITE_OK) {
    char sql[160];
    snprintf(sql, sizeof sql,
             "UPDATE jobs SET state = 'failed', message = 'interrupted by restart', "
             "updated_ms = %lld WHERE state IN ('running', 'queued')",
             (long long)wall_ms());
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  }
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  if (rc == SQLITE_OK) rc = exec_int(db, "SELECT count(*) FROM feedback", &s->feedback_rows);
  if (rc == SQLITE_OK) rc = exec_int(db, "SELECT count(*) FROM jobs", &s->jobs);
  if (rc != SQLITE_OK) {
    int code = open_fail(s, db, rc, err);
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return code;
  }
  /* Every statement compiles against the tables: a file whose schema was
   * changed by hand (or by a development build) fails here, clearly, rather
   * than at every write. */
  for (int k = 0; k < ST_COUNT; k++) {
    if (stmt(&s->sync, k)) continue;
    rc = sqlite3_errcode(db);
    if ((rc & 0xff) != SQLITE_ERROR) return open_fail(s, db, rc, err);
    return es__fail(err, ES_EFORMAT, -1,
                    "%s: its tables do not match schema version %d (%s): move it away or "
                    "delete it",
                    s->path, ES_STORE_SCHEMA_VERSION, sqlite3_errmsg(db));
  }
  return 0;
}

/* Per-connection pragmas that must follow journal_mode. The sync connection
 * (feedback, jobs, events: acknowledged to a client, and rare) syncs every
 * commit (FULL), so an acknowledged row survives a power cut too; the
 * history writer's batches sync at checkpoints only (NORMAL: a crash loses
 * nothing committed, a power cut may lose the last batches). */
static int conn_tune(es_store_t *s, conn_t *c, es_error_t *err) {
  char sql[96];
  snprintf(sql, sizeof sql, "PRAGMA synchronous = %s; PRAGMA wal_autocheckpoint = %d;",
           c == &s->sync ? "FULL" : "NORMAL", CHECKPOINT_PAGES);
  int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
  if (rc == SQLITE_OK && s->p.max_pages > 0) rc = set_max_pages(c->db, s->p.max_pages);
  return rc == SQLITE_OK ? 0 : open_fail(s, c->db, rc, err);
}

es_store_t *es_store_open(const es_store_params_t *p, es_error_t *err) {
  if (!p) {
    es__fail(err, ES_EINVAL, -1, "store: no parameters");
    return NULL;
  }
  if (check_params(p, err)) return NULL;
  es_store_t *s = calloc(1, sizeof *s);
  if (!s) goto fail_nomem;
  s->p = *p;
  s->path = strdup(p->path);
  s->ring = calloc((size_t)p->queue_limit, sizeof *s->ring);
  s->batch = calloc((size_t)p->batch_max, sizeof *s->batch);
  if (!s->path || !s->ring || !s->batch) goto fail_nomem;
  s->p.path = s->path;
  s->sample_ppm = (uint64_t)llround(p->history_sample * 1e6);
  s->healthy = 1;

  if (conn_open(s, &s->sync, err) || prepare_db(s, err) || conn_tune(s, &s->sync, err) ||
      conn_open(s, &s->wr, err) || conn_tune(s, &s->wr, err))
    goto fail_db;

  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca)) goto fail_nomem;
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int ok = !pthread_mutex_init(&s->dbmu, NULL);
  ok = ok && !pthread_mutex_init(&s->qmu, NULL);
  ok = ok && !pthread_cond_init(&s->qcv, &ca);
  ok = ok && !pthread_cond_init(&s->donecv, &ca);
  pthread_condattr_destroy(&ca);
  if (ok) sqlite3_wal_hook(s->sync.db, sync_wal_hook, s); /* replaces autocheckpoint */
  if (!ok || pthread_create(&s->writer, NULL, writer_main, s)) {
    /* Both cannot really fail on Linux; if they do, nothing waits on them. */
    es__fail(err, ES_ENOMEM, -1, "store: cannot start the history writer thread");
    goto fail_db;
  }
  return s;

fail_nomem:
  es__fail(err, ES_ENOMEM, -1, "store: out of memory");
fail_db:
  if (s) {
    conn_close(&s->wr);
    conn_close(&s->sync);
    free(s->batch);
    free(s->ring);
    free(s->path);
    free(s);
  }
  return NULL;
}

void es_store_close(es_store_t *s) {
  if (!s) return;
  es_store_pause(s, 0);
  es_store_flush(s, s->p.close_timeout_ms);
  pthread_mutex_lock(&s->qmu);
  s->stop = 1;
  pthread_cond_signal(&s->qcv);
  pthread_mutex_unlock(&s->qmu);
  pthread_join(s->writer, NULL);
  while (s->queued > 0) { /* not written in time: lost */
    free(s->ring[s->head]);
    s->head = (s->head + 1) % s->p.queue_limit;
    s->queued--;
  }
  conn_close(&s->wr);
  conn_close(&s->sync);
  pthread_cond_destroy(&s->donecv);
  pthread_cond_destroy(&s->qcv);
  pthread_mutex_destroy(&s->qmu);
  pthread_mutex_destroy(&s->dbmu);
  free(s->batch);
  free(s->ring);
  free(s->path);
  free(s);
}
