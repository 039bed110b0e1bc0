/*
 * bench_store.c - what the SQLite store costs: a history batch, one feedback
 * or job transaction, the call that queues a history row; history throughput
 * by batch size; the durability settings compared on raw SQLite (WAL +
 * NORMAL, the store's, against WAL + FULL and SQLite's default rollback
 * journal + FULL); reads and retention on a 200,000-row history, and what a
 * feedback_add waits meanwhile. Results and discussion: docs/server/storage.md.
 *
 * Build and run (3.5 s on the 2-core VM, 25 s under heavy load) from the
 * repository root; the files go to $TMPDIR or /tmp, or to the directory
 * given, to measure another disk:
 *   gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Iinclude -Isrc bench/runtime/bench_store.c \
 *     src/storage/store.c src/common/error.c -lsqlite3 -lpthread -lm -o /tmp/bench_store
 *   /tmp/bench_store [dir]
 * Prints markdown tables.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "edgeserve/store.h"

static char dir[512];

static void path_of(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", dir, name);
}

static void remove_db(const char *path) {
  char p[1200]; /* path is at most 700 (see path_of's callers) + a suffix */
  remove(path);
  snprintf(p, sizeof p, "%s-wal", path);
  remove(p);
  snprintf(p, sizeof p, "%s-shm", path);
  remove(p);
  snprintf(p, sizeof p, "%s-journal", path);
  remove(p);
}

static es_store_t *fresh(const char *name, es_store_params_t *p) {
  static char path[700];
  path_of(path, sizeof path, name);
  remove_db(path);
  p->path = path;
  es_error_t err = {0};
  es_store_t *s = es_store_open(p, &err);
  if (!s) {
    fprintf(stderr, "open %s: %s\n", path, err.msg);
    exit(1);
  }
  return s;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* One row of the latency table from n samples (seconds), sorted in place. */
static void print_lat(const char *what, double *v, int n) {
  double sum = 0;
  for (int i = 0; i < n; i++) sum += v[i];
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  printf("| %s | %d | %.3f | %.3f | %.3f | %.3f |\n", what, n, sum / n * 1e3, v[n / 2] * 1e3,
         v[(int)(n * 0.99)] * 1e3, v[n - 1] * 1e3);
}

static es_history_row_t row_of(const char *text) {
  return (es_history_row_t){.model = "media",
                            .version = 1,
                            .text = text,
                            .text_len = strlen(text),
                            .label = "sports",
                            .prob = 0.9,
                            .decision = "auto",
                            .latency_us = 250,
                            .status = 200};
}

/* A realistic input: 60-120 bytes of words, one of `distinct` texts. */
static void text_of(char *out, size_t cap, unsigned k) {
  snprintf(out, cap, "headline number %u about the match, the election and the weather on day %u",
           k, k * 7919u % 1000u);
}

/* ---- 1. latency of the write paths -------------------------------------------- */

static void write_paths(void) {
  enum { N = 300 };
  static double v[4000];
  es_store_params_t p = es_store_default_params();
  es_store_t *s = fresh("bench-paths.db", &p);
  char text[160];

  printf("\n### Write paths (one store, default parameters)\n\n");
  printf(
      "| operation | n | mean ms | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|\n");
  /* A 100-row batch: queued while paused, then one transaction. */
  for (int i = 0; i < N; i++) {
    es_store_pause(s, 1);
    for (int k = 0; k < 100; k++) {
      text_of(text, sizeof text, (unsigned)(i * 100 + k));
      es_history_row_t r = row_of(text);
      es_store_history_add(s, &r);
    }
    double t0 = es__mono_sec();
    es_store_pause(s, 0);
    es_store_flush(s, -1);
    v[i] = es__mono_sec() - t0;
  }
  print_lat("history: one 100-row batch (resume to flush returned)", v, N);
  for (int i = 0; i < N; i++) {
    int64_t id;
    text_of(text, sizeof text, (unsigned)i);
    double t0 = es__mono_sec();
    es_store_feedback_add(s, "media", text, "sports", &id, NULL);
    v[i] = es__mono_sec() - t0;
  }
  print_lat("feedback_add (one transaction)", v, N);
  int64_t job;
  es_store_job_create(s, "media", "train", &job, NULL);
  for (int i = 0; i < N; i++) {
    double t0 = es__mono_sec();
    es_store_job_update(s, job, "running", i / (double)N, "epoch", 0, NULL);
    v[i] = es__mono_sec() - t0;
  }
  print_lat("job_update (one transaction)", v, N);
  for (int i = 0; i < N; i++) {
    double t0 = es__mono_sec();
    es_store_event_add(s, "media", "loaded", i, "bench", NULL);
    v[i] = es__mono_sec() - t0;
  }
  print_lat("event_add (one transaction)", v, N);

  /* The caller's cost of history_add: a copy and one lock, writer paused. */
  es_store_pause(s, 1);
  double t0 = es__mono_sec();
  for (int i = 0; i < 4000; i++) {
    es_history_row_t r = row_of("headline number 12 about the match, the election and the weather");
    es_store_history_add(s, &r);
  }
  double per = (es__mono_sec() - t0) / 4000;
  es_store_pause(s, 0);
  es_store_flush(s, -1);
  printf("\nhistory_add, the caller's cost (queue only, writer paused): %.0f ns per call\n",
         per * 1e9);
  es_store_close(s);
}

/* ---- 2. throughput by batch size --------------------------------------------------- */

static void throughput(void) {
  enum { ROWS = 20000 };
  static const int sizes[] = {1, 16, 256};
  double rate[3];
  char text[160];
  printf("\n### History throughput by rows per transaction (%d rows, added as fast as "
         "possible)\n\n",
         ROWS);
  printf("| batch_max | rows/s | transactions | vs 256 |\n|---:|---:|---:|---:|\n");
  uint64_t batches[3];
  for (int k = 0; k < 3; k++) {
    es_store_params_t p = es_store_default_params();
    p.batch_max = sizes[k];
    p.queue_limit = ROWS;
    es_store_t *s = fresh("bench-tput.db", &p);
    double t0 = es__mono_sec();
    for (int i = 0; i < ROWS; i++) {
      text_of(text, sizeof text, (unsigned)i);
      es_history_row_t r = row_of(text);
      es_store_history_add(s, &r);
    }
    es_store_flush(s, -1);
    rate[k] = ROWS / (es__mono_sec() - t0);
    es_store_stats_t st;
    es_store_stats(s, &st);
    batches[k] = st.history_batches;
    es_store_close(s);
  }
  for (int k = 0; k < 3; k++)
    printf("| %d | %.0f | %llu | %.2fx |\n", sizes[k], rate[k], (unsigned long long)batches[k],
           rate[k] / rate[2]);
}

/* ---- 3. durability settings on raw SQLite ------------------------------------------ */

static double raw_batch_ms(const char *journal, const char *sync, int rows, int reps) {
  char path[700];
  path_of(path, sizeof path, "bench-raw.db");
  remove_db(path);
  sqlite3 *db;
  sqlite3_open(path, &db);
  char sql[200];
  snprintf(sql, sizeof sql, "PRAGMA journal_mode = %s; PRAGMA synchronous = %s;", journal, sync);
  sqlite3_exec(db, sql, NULL, NULL, NULL);
  sqlite3_exec(db,
               "CREATE TABLE h(id INTEGER PRIMARY KEY, ts INTEGER, model TEXT, text TEXT,"
               " label TEXT); CREATE INDEX h_ts ON h(ts);",
               NULL, NULL, NULL);
  sqlite3_stmt *st;
  sqlite3_prepare_v2(db, "INSERT INTO h(ts, model, text, label) VALUES (?1, 'media', ?2, 'x')", -1,
                     &st, NULL);
  char text[160];
  double total = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = es__mono_sec();
    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (int i = 0; i < rows; i++) {
      text_of(text, sizeof text, (unsigned)(r * rows + i));
      sqlite3_bind_int64(st, 1, r * rows + i);
      sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
      sqlite3_step(st);
      sqlite3_reset(st);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    total += es__mono_sec() - t0;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  remove_db(path);
  return total / reps * 1e3;
}

static void durability(void) {
  static const struct {
    const char *name, *journal, *sync;
  } modes[] = {
      {"WAL, synchronous=NORMAL (the store)", "WAL", "NORMAL"},
      {"WAL, synchronous=FULL", "WAL", "FULL"},
      {"rollback journal, synchronous=FULL (SQLite's default)", "DELETE", "FULL"},
  };
  printf("\n### One transaction by durability setting (raw SQLite, mean of 100)\n\n");
  printf("| setting | 1 row ms | vs store | 100 rows ms | vs store |\n|---|---:|---:|---:|---:|\n");
  double one[3], hundred[3];
  for (int m = 0; m < 3; m++) {
    one[m] = raw_batch_ms(modes[m].journal, modes[m].sync, 1, 100);
    hundred[m] = raw_batch_ms(modes[m].journal, modes[m].sync, 100, 100);
  }
  for (int m = 0; m < 3; m++)
    printf("| %s | %.3f | %.2fx | %.3f | %.2fx |\n", modes[m].name, one[m], one[m] / one[0],
           hundred[m], hundred[m] / hundred[0]);
}

/* ---- 4. reads and retention on a big history ----------------------------------------- */

static int count_inputs(void *ud, const char *text, size_t len, int64_t count) {
  (void)text, (void)len, (void)count;
  ++*(int *)ud;
  return 0;
}

typedef struct {
  es_store_t *s;
  int64_t now_ms, deleted;
  double seconds;
  int done;
} cleaner_t;

static void *clean(void *arg) {
  cleaner_t *c = arg;
  double t0 = es__mono_sec();
  es_store_cleanup(c->s, c->now_ms, &c->deleted, NULL);
  c->seconds = es__mono_sec() - t0;
  __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void big_history(void) {
  enum { ROWS = 200000, DISTINCT = 5000 };
  es_store_params_t p = es_store_default_params();
  p.queue_limit = 8192;
  p.cleanup_interval_s = 0;
  es_store_t *s = fresh("bench-big.db", &p);
  char path[700];
  snprintf(path, sizeof path, "%s", p.path);
  char text[160];
  uint64_t x = 88172645463325252ull;
  int64_t t_base = 1700000000000;
  double t0 = es__mono_sec();
  for (int i = 0; i < ROWS; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    /* skewed: a few inputs are frequent, most are rare */
    unsigned k = (unsigned)((x % DISTINCT) * (x % DISTINCT) / DISTINCT);
    text_of(text, sizeof text, k);
    es_history_row_t r = row_of(text);
    r.time_ms = t_base + i; /* one row per ms: the first half is "old" below */
    while (es_store_history_add(s, &r) == ES_EFULL) es_store_flush(s, -1);
  }
  es_store_flush(s, -1);
  double fill = es__mono_sec() - t0;
  struct stat sb;
  stat(path, &sb);

  printf("\n### Reads and retention on a %d-row history (%d distinct inputs)\n\n", ROWS, DISTINCT);
  printf("| operation | time |\n|---|---:|\n");
  printf("| writing the %d rows (batches of up to 256) | %.2f s (%.0f rows/s) |\n", ROWS, fill,
         ROWS / fill);
  printf("| database file after them | %.1f MiB (%.0f bytes/row) |\n", sb.st_size / 1048576.0,
         (double)sb.st_size / ROWS);
  for (int limit = 10; limit <= 1000; limit *= 10) {
    int n = 0;
    t0 = es__mono_sec();
    es_store_top_inputs(s, "media", limit, count_inputs, &n, NULL);
    printf("| top_inputs, limit %d (%d returned) | %.1f ms |\n", limit, n,
           (es__mono_sec() - t0) * 1e3);
  }
  es_store_close(s);

  t0 = es__mono_sec();
  p.path = path;
  s = es_store_open(&p, NULL);
  printf("| es_store_open of this database | %.1f ms |\n", (es__mono_sec() - t0) * 1e3);
  /* Half of the rows are older than retention at "now" = base + ROWS/2 ms
   * + retention; feedback is added meanwhile from this thread. */
  cleaner_t c = {s, t_base + ROWS / 2 + p.retention_s * 1000, 0, 0, 0};
  pthread_t th;
  pthread_create(&th, NULL, clean, &c);
  static double v[100000];
  int nv = 0;
  while (!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE) && nv < 100000) {
    double t1 = es__mono_sec();
    es_store_feedback_add(s, "media", "a correction", "sports", NULL, NULL);
    v[nv++] = es__mono_sec() - t1;
  }
  pthread_join(th, NULL);
  long long tx = (long long)(c.deleted + 499) / 500;
  printf("| cleanup deleting %lld rows by age (%lld transactions of 500) | %.0f ms (%.1f ms "
         "each) |\n",
         (long long)c.deleted, tx, c.seconds * 1e3, c.seconds * 1e3 / (double)tx);
  es_store_close(s);
  remove_db(path);
  printf("\nfeedback_add meanwhile, from another thread:\n\n");
  printf(
      "| operation | n | mean ms | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|\n");
  print_lat("feedback_add during the cleanup", v, nv);
}

int main(int argc, char **argv) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : tmp && *tmp ? tmp : "/tmp");
  printf("SQLite %s, files in %s\n", sqlite3_libversion(), dir);
  write_paths();
  throughput();
  durability();
  big_history();
  char path[700];
  path_of(path, sizeof path, "bench-paths.db");
  remove_db(path);
  path_of(path, sizeof path, "bench-tput.db");
  remove_db(path);
  return 0;
}
