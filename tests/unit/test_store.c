/* test_store.c - the SQLite store: schema and pragmas, history through the
 * writer thread (batching, sampling, a full queue, retention), feedback and
 * its fastText export, jobs, events, top inputs, files that are not a store,
 * a full database and its recovery, and kill -9 in the middle of writes.
 *
 * Every test works on real files in its own directory under $TMPDIR and
 * checks what is in them with a separate SQLite connection. Nothing asserts
 * on time: waits are for events, with generous bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "edgeserve/store.h"
#include "tmptree.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct {
  char dir[512];
  char path[600];
} tdir_t;

static void tdir_new(tdir_t *t) {
  assert_int_equal(tmptree_new(t->dir, sizeof t->dir, "es-store-"), 0);
  snprintf(t->path, sizeof t->path, "%s/history.db", t->dir);
}

static void tdir_rm(tdir_t *t) { tmptree_rm(t->dir); }

static es_store_t *open_at(const tdir_t *t, es_store_params_t *p) {
  es_store_params_t d = es_store_default_params();
  if (!p) p = &d;
  p->path = t->path;
  es_error_t err = {0};
  es_store_t *s = es_store_open(p, &err);
  if (!s) fail_msg("es_store_open: %s", err.msg);
  return s;
}

/* One integer from `sql` on a connection of its own. */
static int64_t q_int(const char *path, const char *sql) {
  sqlite3 *db;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

/* One text (copied into out[cap]) from `sql`. */
static void q_text(const char *path, const char *sql, char *out, size_t cap) {
  sqlite3 *db;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  const char *v = (const char *)sqlite3_column_text(st, 0);
  snprintf(out, cap, "%s", v ? v : "(null)");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static es_history_row_t hrow(const char *model, const char *text, int64_t time_ms) {
  return (es_history_row_t){.time_ms = time_ms,
                            .model = model,
                            .version = 2,
                            .text = text,
                            .text_len = strlen(text),
                            .label = "sports",
                            .prob = 0.75,
                            .decision = "suggest",
                            .latency_us = 321,
                            .cached = 1,
                            .status = 200};
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- parameters and opening ----------------------------------------------- */

static void default_params_have_the_documented_values(void **state) {
  (void)state;
  es_store_params_t p = es_store_default_params();
  assert_null(p.path);
  assert_true(p.history_sample == 1.0);
  assert_int_equal(p.retention_s, 30 * 24 * 3600);
  assert_int_equal(p.max_rows, 1000000);
  assert_int_equal(p.cleanup_interval_s, 600);
  assert_int_equal(p.queue_limit, 4096);
  assert_int_equal(p.batch_max, 256);
  assert_int_equal(p.text_max, 2048);
  assert_int_equal(p.top_window, 50000);
  assert_int_equal(p.retry_ms, 1000);
  assert_int_equal(p.cache_kib, 8192);
  assert_int_equal(p.mmap_bytes, 64 << 20);
  assert_int_equal(p.busy_timeout_ms, 30000);
  assert_int_equal(p.max_pages, 0);
}

static void invalid_params_are_refused_with_the_name(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_error_t err = {0};
  assert_null(es_store_open(NULL, &err));
  assert_int_equal(err.code, ES_EINVAL);
  es_store_params_t p = es_store_default_params();
  assert_null(es_store_open(&p, &err)); /* no path */
  assert_non_null(strstr(err.msg, "path"));
  p.path = t.path;
  p.history_sample = 1.5;
  assert_null(es_store_open(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  assert_non_null(strstr(err.msg, "history_sample"));
  p = es_store_default_params();
  p.path = t.path;
  p.queue_limit = 0;
  assert_null(es_store_open(&p, &err));
  assert_non_null(strstr(err.msg, "queue_limit"));
  assert_int_equal(access(t.path, F_OK), -1); /* nothing was created */
  tdir_rm(&t);
}

static void a_new_database_has_the_schema_and_the_pragmas(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_t *s = open_at(&t, NULL);
  char v[64];
  assert_int_equal(es_store_pragma(s, "journal_mode", v, sizeof v), 0);
  assert_string_equal(v, "wal");
  assert_int_equal(es_store_pragma(s, "synchronous", v, sizeof v), 0);
  assert_string_equal(v, "2"); /* FULL on the connection of acknowledged writes */
  assert_int_equal(es_store_pragma(s, "foreign_keys", v, sizeof v), 0);
  assert_string_equal(v, "1");
  assert_int_equal(es_store_pragma(s, "temp_store", v, sizeof v), 0);
  assert_string_equal(v, "2"); /* MEMORY */
  assert_int_equal(es_store_pragma(s, "busy_timeout", v, sizeof v), 0);
  assert_string_equal(v, "30000");
  assert_int_equal(es_store_pragma(s, "cache_size", v, sizeof v), 0);
  assert_string_equal(v, "-4096"); /* half of 8 MiB, in KiB */
  assert_int_equal(es_store_pragma(s, "mmap_size", v, sizeof v), 0);
  assert_string_equal(v, "67108864");
  assert_int_equal(es_store_pragma(s, "auto_vacuum", v, sizeof v), 0);
  assert_string_equal(v, "2"); /* INCREMENTAL */
  assert_int_equal(es_store_pragma(s, "page_size", v, sizeof v), 0);
  assert_string_equal(v, "4096");
  assert_int_equal(es_store_pragma(s, "user_version", v, sizeof v), 0);
  assert_int_equal(atoi(v), ES_STORE_SCHEMA_VERSION);
  /* 0 here: this connection hands its checkpoints to the writer thread. */
  assert_int_equal(es_store_pragma(s, "wal_autocheckpoint", v, sizeof v), 0);
  assert_string_equal(v, "0");
  assert_int_equal(es_store_pragma(s, "no such; drop", v, sizeof v), ES_EINVAL);
  es_store_close(s);

  assert_int_equal(q_int(t.path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                 "name IN ('history', 'feedback', 'jobs', 'events')"),
                   4);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                                 "name IN ('history_ts', 'feedback_model', 'jobs_state', "
                                 "'events_ts', 'events_model')"),
                   5);
  s = open_at(&t, NULL); /* reopening an existing store changes nothing */
  es_store_close(s);
  assert_int_equal(q_int(t.path, "PRAGMA user_version"), ES_STORE_SCHEMA_VERSION);
  tdir_rm(&t);
}

/* The statements store.c runs (their texts copied from sql_text[] there, and
 * the open-time job fix-up): each must be a SEARCH through an index or the
 * rowid, never a SCAN, whose cost would grow with the history. */
static void every_query_uses_an_index(void **state) {
  (void)state;
  static const char *const queries[] = {
      "DELETE FROM history WHERE id IN (SELECT id FROM history WHERE ts_ms < ?1 LIMIT ?2)",
      "SELECT max(id) FROM history",
      "DELETE FROM history WHERE id IN"
      " (SELECT id FROM history WHERE id <= ?1 ORDER BY id LIMIT ?2)",
      "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts_ms < ?1 LIMIT ?2)",
      ("SELECT text, count(*) AS n FROM history WHERE id > ?3 AND model = ?1 AND cut = 0"
       " GROUP BY text ORDER BY n DESC, max(id) DESC LIMIT ?2"),
      "SELECT count(*) FROM feedback WHERE model = ?1 AND id > ?2",
      "SELECT count(*) FROM feedback WHERE id > ?1",
      "SELECT label, text FROM feedback WHERE model = ?1 ORDER BY id",
      "UPDATE jobs SET state = ?2, progress = ?3 WHERE id = ?1"
      " AND state NOT IN ('succeeded', 'failed')",
      "SELECT id, model, kind, state FROM jobs WHERE id = ?1",
      "UPDATE jobs SET state = 'failed' WHERE state IN ('running', 'queued')",
  };
  tdir_t t;
  tdir_new(&t);
  es_store_close(open_at(&t, NULL));
  sqlite3 *db;
  assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
  for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
    char sql[512];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", queries[i]);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *d = (const char *)sqlite3_column_text(st, 3);
      if (!strncmp(d, "SCAN", 4)) fail_msg("%s: %s", queries[i], d);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  tdir_rm(&t);
}

static void a_file_that_is_not_a_database_is_refused_with_advice(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  char garbage[8192];
  for (size_t i = 0; i < sizeof garbage - 1; i++) garbage[i] = (char)('a' + i * 7 % 26);
  garbage[sizeof garbage - 1] = 0;
  assert_int_equal(tmptree_put(t.dir, "history.db", garbage), 0);
  es_store_params_t p = es_store_default_params();
  p.path = t.path;
  es_error_t err = {0};
  assert_null(es_store_open(&p, &err));
  assert_int_equal(err.code, ES_EFORMAT);
  assert_non_null(
      strstr(err.msg, "history.db is not a SQLite database: move it away or delete it"));
  tdir_rm(&t);
}

static void a_missing_directory_is_reported(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  char path[700];
  snprintf(path, sizeof path, "%s/no/such/dir/history.db", t.dir);
  es_store_params_t p = es_store_default_params();
  p.path = path;
  es_error_t err = {0};
  assert_null(es_store_open(&p, &err));
  assert_int_equal(err.code, ES_EIO);
  assert_non_null(strstr(err.msg, "cannot open"));
  assert_non_null(strstr(err.msg, "directory exists and is writable"));
  tdir_rm(&t);
}

static void another_programs_database_a_newer_or_a_changed_schema_is_refused(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "CREATE TABLE photos(x)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  es_store_params_t p = es_store_default_params();
  p.path = t.path;
  es_error_t err = {0};
  assert_null(es_store_open(&p, &err));
  assert_int_equal(err.code, ES_EFORMAT);
  assert_non_null(strstr(err.msg, "another program"));

  assert_int_equal(unlink(t.path), 0);
  es_store_close(open_at(&t, NULL));
  assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  assert_null(es_store_open(&p, &err));
  assert_int_equal(err.code, ES_EVERSION);
  assert_non_null(strstr(err.msg, "schema version 99"));

  /* The right version, but a table changed by hand. */
  assert_int_equal(unlink(t.path), 0);
  es_store_close(open_at(&t, NULL));
  assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "ALTER TABLE history DROP COLUMN cut", NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  assert_null(es_store_open(&p, &err));
  assert_int_equal(err.code, ES_EFORMAT);
  assert_non_null(strstr(err.msg, "do not match schema version 1"));
  assert_non_null(strstr(err.msg, "move it away or delete it"));
  tdir_rm(&t);
}

/* ---- history ---------------------------------------------------------------- */

static void history_rows_are_written_in_batches_by_flush(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_params_t p = es_store_default_params();
  p.batch_max = 256;
  es_store_t *s = open_at(&t, &p);
  es_store_pause(s, 1); /* everything queued first: the batches are known */
  for (int i = 0; i < 600; i++) {
    char text[32];
    snprintf(text, sizeof text, "input %d", i);
    es_history_row_t r = hrow("media", text, 1700000000000 + i);
    assert_int_equal(es_store_history_add(s, &r), 0);
  }
  es_store_stats_t st;
  es_store_stats(s, &st);
  assert_int_equal(st.queue_depth, 600);
  assert_int_equal(st.history_written, 0);
  es_store_pause(s, 0);
  assert_int_equal(es_store_flush(s, 10000), 0);
  es_store_stats(s, &st);
  assert_int_equal(st.history_written, 600);
  assert_int_equal(st.history_batches, 3); /* 256 + 256 + 88 */
  assert_int_equal(st.queue_depth, 0);
  assert_int_equal(st.healthy, 1);
  assert_string_equal(st.last_error, "");

  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history"), 600);
  char v[128];
  q_text(t.path,
         "SELECT printf('%d|%s|%d|%s|%s|%.2f|%s|%d|%d|%d', ts_ms - 1700000000000, model, version,"
         " text, label, prob, decision, latency_us, cached, status) FROM history WHERE id = 8",
         v, sizeof v);
  assert_string_equal(v, "7|media|2|input 7|sports|0.75|suggest|321|1|200");
  es_store_close(s);
  tdir_rm(&t);
}

static void a_row_without_time_label_or_decision_gets_now_and_nulls(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_t *s = open_at(&t, NULL);
  int64_t before = now_ms();
  es_history_row_t r = {.model = "m", .text = "a\nb", .text_len = 3, .status = 500};
  assert_int_equal(es_store_history_add(s, &r), 0);
  es_history_row_t bad = {.model = NULL, .text = "x", .text_len = 1};
  assert_int_equal(es_store_history_add(s, &bad), ES_EINVAL);
  bad = (es_history_row_t){.model = "m", .text = NULL};
  assert_int_equal(es_store_history_add(s, &bad), ES_EINVAL);
  assert_int_equal(es_store_flush(s, 10000), 0);
  es_store_close(s);
  assert_true(q_int(t.path, "SELECT ts_ms FROM history") >= before);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history WHERE label IS NULL AND decision "
                                 "IS NULL AND text = char(97, 10, 98) AND status = 500"),
                   1);
  tdir_rm(&t);
}

static void sampling_a_quarter_records_exactly_every_fourth_row(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_params_t p = es_store_default_params();
  p.history_sample = 0.25;
  es_store_t *s = open_at(&t, &p);
  for (int i = 0; i < 1000; i++) {
    char text[32];
    snprintf(text, sizeof text, "%d", i);
    es_history_row_t r = hrow("media", text, 0);
    assert_int_equal(es_store_history_add(s, &r), 0);
  }
  assert_int_equal(es_store_flush(s, 10000), 0);
  es_store_stats_t st;
  es_store_stats(s, &st);
  assert_int_equal(st.history_written, 250);
  assert_int_equal(st.sampled_out, 750);
  es_store_close(s);
  /* Evenly spread: the 4th, 8th, ... calls. */
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history WHERE (CAST(text AS INT) + 1) % 4 "
                                 "= 0"),
                   250);

  tdir_rm(&t);
  tdir_new(&t);
  p.history_sample = 0;
  s = open_at(&t, &p);
  es_history_row_t r = hrow("media", "x", 0);
  for (int i = 0; i < 10; i++) assert_int_equal(es_store_history_add(s, &r), 0);
  assert_int_equal(es_store_flush(s, 10000), 0);
  es_store_close(s);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history"), 0);
  tdir_rm(&t);
}

static void a_full_queue_refuses_with_efull_and_counts_the_drop(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_params_t p = es_store_default_params();
  p.queue_limit = 4;
  es_store_t *s = open_at(&t, &p);
  es_store_pause(s, 1);
  es_history_row_t r = hrow("media", "x", 0);
  for (int i = 0; i < 4; i++) assert_int_equal(es_store_history_add(s, &r), 0);
  assert_int_equal(es_store_history_add(s, &r), ES_EFULL);
  assert_int_equal(es_store_history_add(s, &r), ES_EFULL);
  es_store_stats_t st;
  es_store_stats(s, &st);
  assert_int_equal(st.dropped_full, 2);
  assert_int_equal(st.queue_depth, 4);
  assert_int_equal(es_store_flush(s, 50), ES_ETIMEDOUT); /* paused: nothing moves */
  es_store_pause(s, 0);
  assert_int_equal(es_store_flush(s, 10000), 0);
  assert_int_equal(es_store_history_add(s, &r), 0); /* room again */
  assert_int_equal(es_store_flush(s, 10000), 0);
  es_store_stats(s, &st);
  assert_int_equal(st.history_written, 5);
  assert_int_equal(st.dropped_full, 2);
  es_store_close(s);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history"), 5);
  tdir_rm(&t);
}

static void close_writes_what_is_still_queued(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_t *s = open_at(&t, NULL);
  es_store_pause(s, 1);
  es_history_row_t r = hrow("media", "x", 0);
  for (int i = 0; i < 300; i++) assert_int_equal(es_store_history_add(s, &r), 0);
  es_store_close(s); /* resumes, flushes, closes */
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history"), 300);
  tdir_rm(&t);
}

static void retention_deletes_rows_older_than_the_limit(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_params_t p = es_store_default_params();
  p.retention_s = 30 * 24 * 3600;
  es_store_t *s = open_at(&t, &p);
  int64_t now = now_ms(), day = 24 * 3600 * 1000LL;
  for (int i = 0; i < 10; i++) {
    es_history_row_t r = hrow("media", "old", now - 40 * day + i);
    assert_int_equal(es_store_history_add(s, &r), 0);
  }
  for (int i = 0; i < 5; i++) {
    es_history_row_t r = hrow("media", "new", now - 29 * day + i);
    assert_int_equal(es_store_history_add(s, &r), 0);
  }
  assert_int_equal(es_store_flush(s, 10000), 0);
  assert_int_equal(es_store_event_add(s, "media", "loaded", 1, NULL, NULL), 0);
  int64_t deleted = -1;
  es_error_t err = {0};
  assert_int_equal(es_store_cleanup(s, now, &deleted, &err), 0);
  assert_int_equal(deleted, 10);
  assert_int_equal(es_store_cleanup(s, now, &deleted, &err), 0);
  assert_int_equal(deleted, 0);
  /* Forty days later, the event and the rest are old too. */
  assert_int_equal(es_store_cleanup(s, now + 40 * day, &deleted, &err), 0);
  assert_int_equal(deleted, 6);
  es_store_stats_t st;
  es_store_stats(s, &st);
  assert_int_equal(st.cleanup_deleted, 16);
  es_store_close(s);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history"), 0);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM events"), 0);
  tdir_rm(&t);
}

static void max_rows_keeps_the_newest_rows(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_params_t p = es_store_default_params();
  p.max_rows = 10;
  es_store_t *s = open_at(&t, &p);
  for (int i = 0; i < 4500; i++) { /* more than two cleanup chunks */
    char text[32];
    snprintf(text, sizeof text, "%d", i);
    es_history_row_t r = hrow("media", text, 0);
    assert_int_equal(es_store_history_add(s, &r), 0);
    if (i % 1000 == 999) assert_int_equal(es_store_flush(s, 10000), 0);
  }
  assert_int_equal(es_store_flush(s, 10000), 0);
  int64_t deleted = 0;
  assert_int_equal(es_store_cleanup(s, 0, &deleted, NULL), 0);
  assert_int_equal(deleted, 4490);
  es_store_close(s);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history"), 10);
  assert_int_equal(q_int(t.path, "SELECT min(CAST(text AS INT)) FROM history"), 4490);
  tdir_rm(&t);
}

static void the_writer_applies_retention_on_its_own(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_params_t p = es_store_default_params();
  p.cleanup_interval_s = 1;
  p.retention_s = 3600;
  es_store_t *s = open_at(&t, &p);
  es_history_row_t r = hrow("media", "old", now_ms() - 7200 * 1000LL);
  for (int i = 0; i < 3; i++) assert_int_equal(es_store_history_add(s, &r), 0);
  assert_int_equal(es_store_flush(s, 10000), 0);
  es_store_stats_t st;
  for (int i = 0; i < 400; i++) { /* the first pass is due one second after open */
    es_store_stats(s, &st);
    if (st.cleanup_deleted == 3) break;
    sleep_ms(10);
  }
  assert_int_equal(st.cleanup_deleted, 3);
  es_store_close(s);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history"), 0);
  tdir_rm(&t);
}

/* ---- top inputs -------------------------------------------------------------- */

typedef struct {
  char text[8][64];
  int64_t count[8];
  int n, stop_after;
} seen_t;

static int collect(void *ud, const char *text, size_t len, int64_t count) {
  seen_t *s = ud;
  assert_int_equal(strlen(text), len);
  snprintf(s->text[s->n], sizeof s->text[0], "%s", text);
  s->count[s->n++] = count;
  return s->stop_after && s->n == s->stop_after;
}

static void top_inputs_come_most_frequent_first(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_params_t p = es_store_default_params();
  p.text_max = 16;
  es_store_t *s = open_at(&t, &p);
  const char *texts[] = {"b", "a", "c", "a", "b", "a", "a", "b", "a", "d"};
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
    es_history_row_t r = hrow("media", texts[i], 0);
    assert_int_equal(es_store_history_add(s, &r), 0);
  }
  const char *longtext = "a text longer than sixteen bytes";
  for (int i = 0; i < 20; i++) {
    es_history_row_t r = hrow("media", longtext, 0); /* cut: never a top input */
    assert_int_equal(es_store_history_add(s, &r), 0);
    r = hrow("other", "x", 0); /* another model's */
    assert_int_equal(es_store_history_add(s, &r), 0);
  }
  assert_int_equal(es_store_flush(s, 10000), 0);

  seen_t seen = {0};
  assert_int_equal(es_store_top_inputs(s, "media", 2, collect, &seen, NULL), 0);
  assert_int_equal(seen.n, 2);
  assert_string_equal(seen.text[0], "a");
  assert_int_equal(seen.count[0], 5);
  assert_string_equal(seen.text[1], "b");
  assert_int_equal(seen.count[1], 3);

  memset(&seen, 0, sizeof seen);
  assert_int_equal(es_store_top_inputs(s, "media", 8, collect, &seen, NULL), 0);
  assert_int_equal(seen.n, 4);
  assert_string_equal(seen.text[2], "d"); /* a tie with "c": the most recent first */
  assert_string_equal(seen.text[3], "c");

  memset(&seen, 0, sizeof seen);
  seen.stop_after = 1;
  assert_int_equal(es_store_top_inputs(s, "media", 8, collect, &seen, NULL), 0);
  assert_int_equal(seen.n, 1);

  memset(&seen, 0, sizeof seen);
  assert_int_equal(es_store_top_inputs(s, "nobody", 8, collect, &seen, NULL), 0);
  assert_int_equal(seen.n, 0);
  assert_int_equal(es_store_top_inputs(s, "media", 0, collect, &seen, NULL), ES_EINVAL);
  es_store_close(s);
  /* The long text was recorded, cut at 16 bytes. */
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history WHERE text = 'a text longer th' "
                                 "AND cut = 1"),
                   20);
  tdir_rm(&t);
}

static void top_inputs_count_only_the_last_window_rows(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_params_t p = es_store_default_params();
  p.top_window = 6;
  es_store_t *s = open_at(&t, &p);
  const char *texts[] = {"old", "old", "old", "old", "old", "new", "x", "new", "x", "new", "y"};
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
    es_history_row_t r = hrow("media", texts[i], 0);
    assert_int_equal(es_store_history_add(s, &r), 0);
  }
  assert_int_equal(es_store_flush(s, 10000), 0);
  seen_t seen = {0};
  assert_int_equal(es_store_top_inputs(s, "media", 8, collect, &seen, NULL), 0);
  assert_int_equal(seen.n, 3); /* the last 6 rows: new x new x new y */
  assert_string_equal(seen.text[0], "new");
  assert_int_equal(seen.count[0], 3);
  assert_string_equal(seen.text[1], "x");
  assert_int_equal(seen.count[1], 2);
  assert_string_equal(seen.text[2], "y");
  es_store_close(s);
  tdir_rm(&t);
}

static void the_writer_checkpoints_for_synchronous_writes(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_t *s = open_at(&t, NULL);
  /* Each feedback commit adds about 3 WAL frames: well past 1000. */
  for (int i = 0; i < 600; i++)
    assert_int_equal(es_store_feedback_add(s, "media", "some text", "label", NULL, NULL), 0);
  es_store_stats_t st;
  for (int i = 0; i < 500; i++) {
    es_store_stats(s, &st);
    if (st.checkpoints > 0) break;
    sleep_ms(10);
  }
  assert_true(st.checkpoints > 0);
  es_store_close(s);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM feedback"), 600);
  tdir_rm(&t);
}

/* ---- feedback ------------------------------------------------------------------ */

static void feedback_is_counted_and_exported_as_fasttext_lines(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_t *s = open_at(&t, NULL);
  es_error_t err = {0};
  int64_t id1 = 0, id2 = 0, id3 = 0, id4 = 0;
  assert_int_equal(
      es_store_feedback_add(s, "media", "goal in the last minute", "sports", &id1, &err), 0);
  assert_int_equal(es_store_feedback_add(s, "media", "line one\nline\ttwo\r", "sci fi", &id2, &err),
                   0);
  assert_int_equal(es_store_feedback_add(s, "other", "x", "y", &id3, &err), 0);
  assert_int_equal(es_store_feedback_add(s, "media", "élan", "__label__arts", &id4, &err), 0);
  assert_true(id1 > 0 && id2 > id1 && id3 > id2 && id4 > id3);

  int64_t n = -1;
  assert_int_equal(es_store_feedback_count(s, NULL, 0, &n, &err), 0);
  assert_int_equal(n, 4);
  assert_int_equal(es_store_feedback_count(s, "media", 0, &n, &err), 0);
  assert_int_equal(n, 3);
  assert_int_equal(es_store_feedback_count(s, "media", id1, &n, &err), 0);
  assert_int_equal(n, 2);
  assert_int_equal(es_store_feedback_count(s, "nobody", 0, &n, &err), 0);
  assert_int_equal(n, 0);

  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  int64_t rows = -1;
  assert_int_equal(es_store_feedback_export(s, "media", f, &rows, &err), 0);
  fclose(f);
  assert_int_equal(rows, 3);
  assert_string_equal(buf, "__label__sports goal in the last minute\n"
                           "__label__sci_fi line one line two \n"
                           "__label__arts élan\n");
  free(buf);

  es_store_stats_t st;
  es_store_stats(s, &st);
  assert_int_equal(st.feedback_rows, 4);
  es_store_close(s);
  s = open_at(&t, NULL); /* counted from the file at open */
  es_store_stats(s, &st);
  assert_int_equal(st.feedback_rows, 4);
  es_store_close(s);
  tdir_rm(&t);
}

static void feedback_with_missing_arguments_is_refused(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_t *s = open_at(&t, NULL);
  es_error_t err = {0};
  int64_t id;
  assert_int_equal(es_store_feedback_add(s, NULL, "t", "l", &id, &err), ES_EINVAL);
  assert_int_equal(es_store_feedback_add(s, "m", "", "l", &id, &err), ES_EINVAL);
  assert_int_equal(es_store_feedback_add(s, "m", "t", "", &id, &err), ES_EINVAL);
  char longname[80];
  memset(longname, 'm', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_int_equal(es_store_feedback_add(s, longname, "t", "l", &id, &err), ES_EINVAL);
  assert_int_equal(es_store_feedback_export(s, "m", NULL, NULL, &err), ES_EINVAL);
  es_store_close(s);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM feedback"), 0);
  tdir_rm(&t);
}

/* ---- jobs and events ----------------------------------------------------------- */

static void a_job_goes_from_queued_to_succeeded_and_then_stays(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_t *s = open_at(&t, NULL);
  es_error_t err = {0};
  int64_t id = 0;
  assert_int_equal(es_store_job_create(s, "media", "train", &id, &err), 0);
  es_job_row_t j;
  assert_int_equal(es_store_job_get(s, id, &j, &err), 0);
  assert_int_equal(j.id, id);
  assert_string_equal(j.model, "media");
  assert_string_equal(j.kind, "train");
  assert_string_equal(j.state, "queued");
  assert_true(j.progress == 0);
  assert_string_equal(j.message, "");
  assert_int_equal(j.result_version, 0);
  assert_true(j.created_ms > 0 && j.updated_ms == j.created_ms);

  assert_int_equal(es_store_job_update(s, id, "running", 0.5, "epoch 3/5", 0, &err), 0);
  assert_int_equal(es_store_job_get(s, id, &j, &err), 0);
  assert_string_equal(j.state, "running");
  assert_true(j.progress == 0.5);
  assert_string_equal(j.message, "epoch 3/5");

  assert_int_equal(es_store_job_update(s, id, "succeeded", 1.0, NULL, 4, &err), 0);
  assert_int_equal(es_store_job_get(s, id, &j, &err), 0);
  assert_string_equal(j.state, "succeeded");
  assert_string_equal(j.message, "epoch 3/5"); /* NULL kept it */
  assert_int_equal(j.result_version, 4);

  assert_int_equal(es_store_job_update(s, id, "running", 0.1, "again", 0, &err), ES_ESTATE);
  assert_non_null(strstr(err.msg, "already succeeded"));
  assert_int_equal(es_store_job_update(s, id + 100, "running", 0.1, NULL, 0, &err), ES_ENOTFOUND);
  assert_int_equal(es_store_job_get(s, id + 100, &j, &err), ES_ENOTFOUND);
  assert_int_equal(es_store_job_update(s, id, "paused", 0.1, NULL, 0, &err), ES_EINVAL);
  assert_int_equal(es_store_job_update(s, id, "running", 1.5, NULL, 0, &err), ES_EINVAL);
  assert_int_equal(es_store_job_create(s, "media", "", &id, &err), ES_EINVAL);
  es_store_stats_t st;
  es_store_stats(s, &st);
  assert_int_equal(st.jobs, 1);
  es_store_close(s);
  tdir_rm(&t);
}

static void jobs_left_running_fail_with_interrupted_by_restart_on_reopen(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_t *s = open_at(&t, NULL);
  int64_t running, queued, done;
  assert_int_equal(es_store_job_create(s, "media", "train", &running, NULL), 0);
  assert_int_equal(es_store_job_create(s, "media", "train", &queued, NULL), 0);
  assert_int_equal(es_store_job_create(s, "media", "train", &done, NULL), 0);
  assert_int_equal(es_store_job_update(s, running, "running", 0.3, "epoch 2/5", 0, NULL), 0);
  assert_int_equal(es_store_job_update(s, done, "succeeded", 1, "ok", 2, NULL), 0);
  es_store_close(s);

  s = open_at(&t, NULL);
  es_job_row_t j;
  assert_int_equal(es_store_job_get(s, running, &j, NULL), 0);
  assert_string_equal(j.state, "failed");
  assert_string_equal(j.message, "interrupted by restart");
  assert_true(j.progress == 0.3); /* how far it got */
  assert_int_equal(es_store_job_get(s, queued, &j, NULL), 0);
  assert_string_equal(j.state, "failed");
  assert_int_equal(es_store_job_get(s, done, &j, NULL), 0);
  assert_string_equal(j.state, "succeeded");
  assert_string_equal(j.message, "ok");
  assert_int_equal(j.result_version, 2);
  int64_t next;
  assert_int_equal(es_store_job_create(s, "media", "train", &next, NULL), 0);
  assert_true(next > done); /* ids are never reused */
  es_store_close(s);
  tdir_rm(&t);
}

static void events_are_recorded(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_t *s = open_at(&t, NULL);
  es_error_t err = {0};
  assert_int_equal(es_store_event_add(s, "media", "loaded", 3, "12 MB in 40 ms", &err), 0);
  assert_int_equal(es_store_event_add(s, "media", "swapped", 4, NULL, &err), 0);
  assert_int_equal(es_store_event_add(s, "media", "", 4, NULL, &err), ES_EINVAL);
  es_store_close(s);
  char v[128];
  q_text(t.path,
         "SELECT group_concat(model || '/' || kind || '/' || version || '/' || message, "
         "';') FROM events ORDER BY id",
         v, sizeof v);
  assert_string_equal(v, "media/loaded/3/12 MB in 40 ms;media/swapped/4/");
  tdir_rm(&t);
}

/* ---- failures --------------------------------------------------------------------- */

static void a_full_database_pauses_history_until_space_returns(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_params_t p = es_store_default_params();
  p.max_pages = 40; /* the empty schema takes 12 pages of 4 KiB */
  p.retry_ms = 20;
  p.batch_max = 4; /* small batches fill the file up to the limit */
  p.text_max = 8192;
  es_store_t *s = open_at(&t, &p);
  /* Rows of more than a page, queued while the writer is paused: every batch
   * is 4 identical rows needing new pages, and a failed batch rolls back to
   * the same file, so once one fails, every later one fails the same way. */
  char text[6001];
  memset(text, 'z', sizeof text - 1);
  text[sizeof text - 1] = 0;
  es_history_row_t r = hrow("media", text, 0);
  es_store_pause(s, 1);
  for (int i = 0; i < 60; i++) assert_int_equal(es_store_history_add(s, &r), 0);
  es_store_pause(s, 0);
  assert_int_equal(es_store_flush(s, 10000), ES_EIO);
  es_store_stats_t st;
  es_store_stats(s, &st);
  assert_int_equal(st.healthy, 0);
  assert_true(st.history_written > 0); /* until it was full */
  assert_true(st.dropped_error > 0);
  assert_int_equal(st.history_written + st.dropped_error, 60);
  assert_true(st.write_errors > 0);
  assert_non_null(strstr(st.last_error, "database or disk is full"));
  assert_non_null(strstr(st.last_error, "history.db"));
  assert_non_null(strstr(st.last_error, "history paused, retrying every 20ms"));

  /* Rows keep being accepted (and dropped) while it is full. */
  uint64_t dropped = st.dropped_error;
  es_store_pause(s, 1);
  for (int i = 0; i < 20; i++) assert_int_equal(es_store_history_add(s, &r), 0);
  es_store_pause(s, 0);
  assert_int_equal(es_store_flush(s, 10000), ES_EIO);
  es_store_stats(s, &st);
  assert_int_equal(st.dropped_error, dropped + 20);

  es_error_t err = {0};
  int64_t id;
  static char big[65536]; /* 16 new pages: more than a failed 4-row batch leaves free */
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(es_store_feedback_add(s, "media", big, "sports", &id, &err), ES_EIO);
  assert_non_null(strstr(err.msg, "feedback not saved: database or disk is full"));

  /* Space returns: the next retry writes, and the store is healthy again. */
  assert_int_equal(es_store_set_max_pages(s, 0), 0);
  uint64_t written = st.history_written;
  es_history_row_t small = hrow("media", "back", 0);
  assert_int_equal(es_store_history_add(s, &small), 0);
  assert_int_equal(es_store_flush(s, 10000), 0);
  es_store_stats(s, &st);
  assert_int_equal(st.healthy, 1);
  assert_int_equal(st.history_written, written + 1);
  assert_non_null(strstr(st.last_error, "full")); /* kept, for the record */
  assert_int_equal(es_store_feedback_add(s, "media", "x", "sports", &id, &err), 0);
  es_store_close(s);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history WHERE text = 'back'"), 1);
  char v[16];
  q_text(t.path, "PRAGMA integrity_check", v, sizeof v);
  assert_string_equal(v, "ok");
  tdir_rm(&t);
}

/* The child writes what it knows is committed to the pipe: positive values
 * are feedback ids, negative ones -(history rows committed so far). */
static _Noreturn void child_writes_until_killed(const char *path, int fd) {
  es_store_params_t p = es_store_default_params();
  p.path = path;
  es_store_t *s = es_store_open(&p, NULL);
  if (!s) _exit(2);
  char text[64];
  for (int64_t i = 0;; i++) {
    int64_t id;
    snprintf(text, sizeof text, "feedback %lld", (long long)i);
    if (es_store_feedback_add(s, "media", text, "sports", &id, NULL)) _exit(3);
    if (write(fd, &id, sizeof id) != sizeof id) _exit(4);
    if (i % 4 == 0) {
      for (int k = 0; k < 25; k++) {
        es_history_row_t r = hrow("media", text, 0);
        if (es_store_history_add(s, &r)) _exit(5);
      }
      if (es_store_flush(s, 10000)) _exit(6);
      es_store_stats_t st;
      es_store_stats(s, &st);
      int64_t h = -(int64_t)st.history_written;
      if (write(fd, &h, sizeof h) != sizeof h) _exit(4);
    }
  }
}

/* The child runs in the forked process, which is fine: the tests leave no
 * thread behind. Under ThreadSanitizer (whose own threads make every process
 * "multi-threaded" to it) the child is this program run again instead
 * ("--store-child PATH FD", see main); not elsewhere, since under qemu-user
 * /proc/self/exe is the emulator. */
#ifdef __SANITIZE_THREAD__
#define UNDER_TSAN 1
#endif
#ifdef __has_feature
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
static void kill_9_loses_no_committed_row(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_close(open_at(&t, NULL)); /* the schema exists before the child starts */
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
#ifdef UNDER_TSAN
    char fd[16];
    snprintf(fd, sizeof fd, "%d", fds[1]);
    execl("/proc/self/exe", "test_store", "--store-child", t.path, fd, (char *)NULL);
    _exit(7);
#else
    child_writes_until_killed(t.path, fds[1]);
#endif
  }
  close(fds[1]);
  int64_t ids[400], history = 0;
  int n = 0;
  while (n < 200) {
    int64_t v;
    if (read(fds[0], &v, sizeof v) != sizeof v) break;
    if (v > 0)
      ids[n++] = v;
    else
      history = -v;
  }
  kill(pid, SIGKILL); /* in the middle of whatever it is doing */
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  close(fds[0]);
  assert_int_equal(n, 200); /* the child ran until killed */
  assert_true(WIFSIGNALED(status));
  assert_true(history >= 25 * 40);

  char v[16];
  q_text(t.path, "PRAGMA integrity_check", v, sizeof v);
  assert_string_equal(v, "ok");
  sqlite3 *db;
  assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(
      sqlite3_prepare_v2(db, "SELECT count(*) FROM feedback WHERE id = ?1", -1, &st, NULL),
      SQLITE_OK);
  for (int i = 0; i < n; i++) {
    sqlite3_bind_int64(st, 1, ids[i]);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    if (sqlite3_column_int(st, 0) != 1) fail_msg("feedback %lld lost", (long long)ids[i]);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  assert_true(q_int(t.path, "SELECT count(*) FROM history") >= history);

  es_store_t *s = open_at(&t, NULL); /* and it opens as usual */
  es_store_stats_t sst;
  es_store_stats(s, &sst);
  assert_true(sst.feedback_rows >= n);
  es_store_close(s);
  tdir_rm(&t);
}

/* ---- threads ------------------------------------------------------------------------ */

typedef struct {
  es_store_t *s;
  int k;
} worker_t;

static void *add_from_a_thread(void *arg) {
  worker_t *w = arg;
  char text[32];
  for (int i = 0; i < 500; i++) {
    snprintf(text, sizeof text, "t%d-%d", w->k, i % 7);
    es_history_row_t r = hrow("media", text, 0);
    assert_int_equal(es_store_history_add(w->s, &r), 0);
    if (i % 50 == 0) {
      assert_int_equal(es_store_feedback_add(w->s, "media", text, "x", NULL, NULL), 0);
      es_store_stats_t st;
      es_store_stats(w->s, &st);
    }
    if (i % 200 == 0) es_store_flush(w->s, 10000);
  }
  return NULL;
}

static void rows_from_many_threads_are_all_written(void **state) {
  (void)state;
  tdir_t t;
  tdir_new(&t);
  es_store_params_t p = es_store_default_params();
  p.batch_max = 64;
  es_store_t *s = open_at(&t, &p);
  pthread_t th[4];
  worker_t w[4];
  for (int k = 0; k < 4; k++) {
    w[k] = (worker_t){s, k};
    assert_int_equal(pthread_create(&th[k], NULL, add_from_a_thread, &w[k]), 0);
  }
  seen_t seen = {0};
  assert_int_equal(es_store_top_inputs(s, "media", 4, collect, &seen, NULL), 0);
  for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
  assert_int_equal(es_store_flush(s, 10000), 0);
  es_store_stats_t st;
  es_store_stats(s, &st);
  assert_int_equal(st.history_written, 2000);
  assert_int_equal(st.dropped_full + st.dropped_error, 0);
  assert_int_equal(st.feedback_rows, 40);
  es_store_close(s);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM history"), 2000);
  assert_int_equal(q_int(t.path, "SELECT count(*) FROM feedback"), 40);
  tdir_rm(&t);
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "--store-child"))
    child_writes_until_killed(argv[2], atoi(argv[3])); /* never returns */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(default_params_have_the_documented_values),
      cmocka_unit_test(invalid_params_are_refused_with_the_name),
      cmocka_unit_test(a_new_database_has_the_schema_and_the_pragmas),
      cmocka_unit_test(every_query_uses_an_index),
      cmocka_unit_test(a_file_that_is_not_a_database_is_refused_with_advice),
      cmocka_unit_test(a_missing_directory_is_reported),
      cmocka_unit_test(another_programs_database_a_newer_or_a_changed_schema_is_refused),
      cmocka_unit_test(history_rows_are_written_in_batches_by_flush),
      cmocka_unit_test(a_row_without_time_label_or_decision_gets_now_and_nulls),
      cmocka_unit_test(sampling_a_quarter_records_exactly_every_fourth_row),
      cmocka_unit_test(a_full_queue_refuses_with_efull_and_counts_the_drop),
      cmocka_unit_test(close_writes_what_is_still_queued),
      cmocka_unit_test(retention_deletes_rows_older_than_the_limit),
      cmocka_unit_test(max_rows_keeps_the_newest_rows),
      cmocka_unit_test(the_writer_applies_retention_on_its_own),
      cmocka_unit_test(top_inputs_come_most_frequent_first),
      cmocka_unit_test(top_inputs_count_only_the_last_window_rows),
      cmocka_unit_test(the_writer_checkpoints_for_synchronous_writes),
      cmocka_unit_test(feedback_is_counted_and_exported_as_fasttext_lines),
      cmocka_unit_test(feedback_with_missing_arguments_is_refused),
      cmocka_unit_test(a_job_goes_from_queued_to_succeeded_and_then_stays),
      cmocka_unit_test(jobs_left_running_fail_with_interrupted_by_restart_on_reopen),
      cmocka_unit_test(events_are_recorded),
      cmocka_unit_test(a_full_database_pauses_history_until_space_returns),
      cmocka_unit_test(kill_9_loses_no_committed_row),
      cmocka_unit_test(rows_from_many_threads_are_all_written),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
