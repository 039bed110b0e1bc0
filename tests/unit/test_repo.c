/*
 * test_repo.c - the model repository (repo.h) on real folders: the model
 * configuration parser, name validation, scanning and version choice, hot
 * reload by es_repo_poll(), failures that leave the old version serving,
 * budget refusals, reference counting across swaps, keep-alive, removal,
 * publishing, and a swap storm under 4 request threads.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "edgeserve/backend.h"
#include "edgeserve/budget.h"
#include "edgeserve/estimate.h"
#include "edgeserve/repo.h"
#include "edgeserve/sched.h"

#include "ftmodel.h"
#include "tmptree.h"

/* ---- fixtures ------------------------------------------------------------------- */

static char root[512];   /* per test */
static char models[600]; /* root/models */

typedef struct rec_ev {
  es_repo_event_kind_t kind;
  char name[64];
  int version, old_version;
  char msg[320];
} rec_ev;

static struct {
  pthread_mutex_t mu;
  rec_ev ev[256];
  int n;
} events = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0};

static void on_event(void *ud, const es_repo_event_t *e) {
  (void)ud;
  pthread_mutex_lock(&events.mu);
  if (events.n < 256) {
    rec_ev *r = &events.ev[events.n++];
    r->kind = e->kind;
    snprintf(r->name, sizeof r->name, "%s", e->name);
    r->version = e->version;
    r->old_version = e->old_version;
    snprintf(r->msg, sizeof r->msg, "%s", e->message);
  }
  pthread_mutex_unlock(&events.mu);
}

/* The number of recorded events of `kind` (0: any) for `name`. */
static int count_events(es_repo_event_kind_t kind, const char *name) {
  int c = 0;
  pthread_mutex_lock(&events.mu);
  for (int i = 0; i < events.n; i++)
    if ((!kind || events.ev[i].kind == kind) && !strcmp(events.ev[i].name, name)) c++;
  pthread_mutex_unlock(&events.mu);
  return c;
}

/* The last recorded event of `kind` (NULL when none). */
static const rec_ev *last_event(es_repo_event_kind_t kind) {
  const rec_ev *e = NULL;
  pthread_mutex_lock(&events.mu);
  for (int i = 0; i < events.n; i++)
    if (events.ev[i].kind == kind) e = &events.ev[i];
  pthread_mutex_unlock(&events.mu);
  return e;
}

static int setup(void **state) {
  (void)state;
  events.n = 0;
  if (tmptree_new(root, sizeof root, "es-repo-")) return -1;
  snprintf(models, sizeof models, "%s/models", root);
  return mkdir(models, 0755);
}

static int teardown(void **state) {
  (void)state;
  tmptree_rm(root);
  return 0;
}

/* mkdir -p of the parent of path. */
static void mkparents(const char *path) {
  char p[1024];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0755) && errno != EEXIST) fail_msg("mkdir %s: %s", p, strerror(errno));
    *s = '/';
  }
}

/* Writes a model with `dim` dimensions (size grows with it) at models/rel. */
static void put_model_dim(const char *rel, int dim, int quant) {
  ft_spec s = ft_default_spec();
  s.dim = dim;
  s.quant = quant;
  size_t len;
  uint8_t *data = ft_write(&s, &len);
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", models, rel);
  mkparents(path);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
  free(data);
}

static void put_model(const char *rel) { put_model_dim(rel, 8, 0); }

/* A model file outside the repository, at root/rel; returns its path. */
static const char *put_outside(const char *rel, int dim, char *buf, size_t cap) {
  ft_spec s = ft_default_spec();
  s.dim = dim;
  size_t len;
  uint8_t *data = ft_write(&s, &len);
  snprintf(buf, cap, "%s/%s", root, rel);
  mkparents(buf);
  FILE *f = fopen(buf, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
  free(data);
  return buf;
}

static void put_text(const char *rel, const char *text) {
  assert_int_equal(tmptree_put(models, rel, text), 0);
}

static void put_truncated(const char *rel) {
  ft_spec s = ft_default_spec();
  size_t len;
  uint8_t *data = ft_write(&s, &len);
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", models, rel);
  mkparents(path);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len / 3, f), len / 3);
  fclose(f);
  free(data);
}

static es_repo_t *new_repo(es_budget_t *b) {
  es_repo_params_t p = es_repo_default_params();
  p.dir = models;
  p.budget = b;
  p.on_event = on_event;
  es_error_t err;
  es_repo_t *r = es_repo_new(&p, &err);
  if (!r) fail_msg("es_repo_new: %s", err.msg);
  return r;
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The version serving `name` now (acquire + release), or the negative error. */
static int serving(es_repo_t *r, const char *name) {
  es_served_t *s;
  es_error_t err;
  int rc = es_repo_acquire(r, name, &s, &err);
  if (rc) return rc;
  int v = s->version;
  es_repo_release(r, s);
  return v;
}

static int find_entry(es_repo_t *r, const char *name, es_repo_entry_t *out) {
  es_repo_entry_t e[16];
  int n = es_repo_list(r, e, 16);
  for (int i = 0; i < n && i < 16; i++)
    if (!strcmp(e[i].name, name)) {
      *out = e[i];
      return 1;
    }
  return 0;
}

/* Predicts one text on a served version; returns the status. */
static int infer_one(es_served_t *s, const char *text) {
  es_label_prob_t out[3];
  es_infer_item_t it = {.text = text, .len = strlen(text), .k = 3, .out = out, .cap = 3};
  int rc = s->backend->infer(s->inst, &it, 1, NULL);
  if (rc) return rc;
  if (it.status) return it.status;
  return it.n == 3 ? 0 : -100;
}

/* ---- configuration -------------------------------------------------------------- */

static void test_conf_defaults_match_the_header(void **state) {
  (void)state;
  es_model_conf_t c = es_model_conf_default();
  assert_string_equal(c.name, "");
  assert_null(c.backend);
  assert_int_equal(c.pinned_version, 0);
  assert_int_equal(c.nvariants, 0);
  assert_int_equal(c.keep_alive_us, 600000000);
  assert_int_equal(c.max_batch, 32);
  assert_int_equal(c.max_queue_delay_us, 0);
  assert_int_equal(c.queue_limit, 256);
  assert_int_equal(c.priority, ES_SCHED_NORMAL);
  assert_int_equal(c.timeout_us, 5000000);
  assert_true(c.auto_threshold == 0.85);
  assert_true(c.suggest_threshold == 0.50);
  assert_int_equal(c.alternatives, 3);
  assert_int_equal(c.sla_p99_us, 50000);
  assert_int_equal(c.sla_p95_us, 0);
  assert_string_equal(c.train_data, "");
}

static void test_conf_parse_reads_every_key(void **state) {
  (void)state;
  const char *text = "; media classifier\n"
                     "[model]\n"
                     "backend = fasttext\n"
                     "version = 3\n"
                     "variants = model.bin, model.ftz ,m.esm\n"
                     "keep_alive = 0\n"
                     "[batching]\n"
                     "max_batch = 64\n"
                     "max_queue_delay = 2ms\n"
                     "queue_limit = 10\n"
                     "priority = critical\n"
                     "timeout = 1s\n"
                     "[decision]\n"
                     "auto = 0.9\n"
                     "suggest = 0.4\n"
                     "alternatives = 5\n"
                     "[sla]\n"
                     "p99 = 20ms\n"
                     "p95 = 8ms\n"
                     "[training]\n"
                     "data = data/train.txt\n";
  es_model_conf_t c = es_model_conf_default();
  es_error_t err;
  assert_int_equal(es_model_conf_parse(&c, text, "config.ini", &err), 0);
  assert_ptr_equal(c.backend, es_backend_fasttext());
  assert_int_equal(c.pinned_version, 3);
  assert_int_equal(c.nvariants, 3);
  assert_string_equal(c.variants[0], "model.bin");
  assert_string_equal(c.variants[1], "model.ftz");
  assert_string_equal(c.variants[2], "m.esm");
  assert_int_equal(c.keep_alive_us, 0);
  assert_int_equal(c.max_batch, 64);
  assert_int_equal(c.max_queue_delay_us, 2000);
  assert_int_equal(c.queue_limit, 10);
  assert_int_equal(c.priority, ES_SCHED_CRITICAL);
  assert_int_equal(c.timeout_us, 1000000);
  assert_true(c.auto_threshold == 0.9);
  assert_true(c.suggest_threshold == 0.4);
  assert_int_equal(c.alternatives, 5);
  assert_int_equal(c.sla_p99_us, 20000);
  assert_int_equal(c.sla_p95_us, 8000);
  assert_string_equal(c.train_data, "data/train.txt");
  /* the other priorities; keys absent keep the earlier values */
  const char *names[] = {"high", "normal", "low"};
  const int want[] = {ES_SCHED_HIGH, ES_SCHED_NORMAL, ES_SCHED_LOW};
  for (int i = 0; i < 3; i++) {
    char t[64];
    snprintf(t, sizeof t, "[batching]\npriority = %s\n", names[i]);
    assert_int_equal(es_model_conf_parse(&c, t, "config.ini", &err), 0);
    assert_int_equal(c.priority, want[i]);
    assert_int_equal(c.max_batch, 64);
  }
}

static void check_conf_error(const char *text, const char *want) {
  es_model_conf_t c = es_model_conf_default(), before = c;
  es_error_t err;
  memset(&err, 0, sizeof err);
  assert_int_equal(es_model_conf_parse(&c, text, "config.ini", &err), ES_EINVAL);
  assert_int_equal(err.code, ES_EINVAL);
  if (strncmp(err.msg, want, strlen(want))) fail_msg("got '%s', want '%s...'", err.msg, want);
  assert_memory_equal(&c, &before, sizeof c); /* unchanged on failure */
}

static void test_conf_errors_name_the_line_and_key(void **state) {
  (void)state;
  check_conf_error("[model]\nversion = 2\n\n[batching]\nmax_bach = 8\n",
                   "config.ini:5: unknown key 'max_bach' in [batching]");
  check_conf_error("[batching]\nmax_batch = 8\n[batch]\nx = 1\n",
                   "config.ini:4: unknown section [batch]");
  check_conf_error("[batching]\nmax_batch = 0\n", "config.ini:2: [batching] max_batch = '0'");
  check_conf_error("[batching]\nmax_batch = 2000\n", "config.ini:2: [batching] max_batch");
  check_conf_error("[batching]\npriority = urgent\n", "config.ini:2: [batching] priority");
  check_conf_error("[batching]\ntimeout = 5\n", "config.ini:2: [batching] timeout = '5'");
  check_conf_error("[decision]\nauto = 1.5\n", "config.ini:2: [decision] auto");
  check_conf_error("[decision]\nauto = 0.3\nsuggest = 0.6\n",
                   "config.ini:3: [decision] suggest (0.60) is above auto (0.30)");
  check_conf_error("[model]\nbackend = onnx\n", "config.ini:2: [model] backend = 'onnx'");
  check_conf_error("[model]\nvariants = a.bin, ../b.bin\n", "config.ini:2: [model] variants");
  check_conf_error("[model]\nvariants = a,b,c,d,e,f\n", "config.ini:2: [model] variants: more");
  check_conf_error("[model]\nversion = -1\n", "config.ini:2: [model] version");
  check_conf_error("[model]\nversion = 2\nversion = 3\n",
                   "config.ini:3: [model] version already set on line 2");
  check_conf_error("[training]\ndata = ../../etc/passwd\n", "config.ini:2: [training] data");
  check_conf_error("[training]\ndata = /etc/passwd\n", "config.ini:2: [training] data");
  check_conf_error("max_batch = 3\n", "config.ini:1: key 'max_batch' outside any [section]");
  check_conf_error("[model]\nthis is not ini\n", "config.ini:2: 'this is not ini': expected");
}

static void test_valid_names(void **state) {
  (void)state;
  assert_true(es_repo_valid_name("media", 5));
  assert_true(es_repo_valid_name("Media-v2_final.x", 16));
  assert_true(es_repo_valid_name("media/extra", 5)); /* only len bytes count */
  char n63[64], n64[65];
  memset(n63, 'a', 63);
  n63[63] = 0;
  memset(n64, 'a', 64);
  n64[64] = 0;
  assert_true(es_repo_valid_name(n63, 63));
  assert_false(es_repo_valid_name(n64, 64));
  assert_false(es_repo_valid_name("../x", 4));
  assert_false(es_repo_valid_name("..", 2));
  assert_false(es_repo_valid_name("", 0));
  assert_false(es_repo_valid_name(NULL, 0));
  assert_false(es_repo_valid_name(".hidden", 7));
  assert_false(es_repo_valid_name("a/b", 3));
  assert_false(es_repo_valid_name("a b", 3));
  assert_false(es_repo_valid_name("caff\xc3\xa8", 6));
  assert_false(es_repo_valid_name("a\0b", 3));
}

/* ---- scanning and versions --------------------------------------------------------- */

static void test_scan_serves_the_highest_complete_version(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  put_model("media/2/model.bin");
  put_text("media/3/README", "copy in progress"); /* incomplete: skipped */
  put_text("media/old/model.txt", "not a version");
  put_model("media/02/model.bin"); /* not a version name */
  put_model("other/7/x.ftz");
  put_text(".cache/1/x", "hidden folders are no models");
  es_repo_t *r = new_repo(NULL);
  es_error_t err;
  assert_int_equal(es_repo_scan(r, &err), 2);
  assert_int_equal(serving(r, "media"), 2);
  assert_int_equal(serving(r, "other"), 7);
  es_repo_entry_t e[4];
  assert_int_equal(es_repo_list(r, e, 1), 2); /* the count, whatever the room */
  assert_int_equal(es_repo_list(r, e, 4), 2);
  assert_string_equal(e[0].name, "media"); /* sorted */
  assert_string_equal(e[1].name, "other");
  assert_int_equal(e[0].state, ES_MODEL_READY);
  assert_int_equal(e[0].version, 2);
  assert_int_equal(e[0].latest_version, 3);
  assert_string_equal(e[0].variant, "model.bin");
  assert_string_equal(e[0].reason, "");
  assert_int_equal(e[0].requests, 1);
  assert_int_equal(count_events(ES_REPO_LOADED, "media"), 1);
  /* the served fields */
  es_served_t *s;
  assert_int_equal(es_repo_acquire(r, "media", &s, &err), 0);
  assert_string_equal(s->name, "media");
  assert_string_equal(s->variant, "model.bin");
  assert_int_equal(s->variant_index, 0);
  assert_non_null(strstr(s->path, "media/2/model.bin"));
  assert_ptr_equal(s->backend, es_backend_fasttext());
  assert_string_equal(s->desc.platform, "fasttext");
  assert_string_equal(s->desc.format, "bin");
  assert_int_equal(s->desc.nlabels, 3);
  assert_string_equal(s->conf->name, "media");
  assert_true(s->loaded_at_us > 0 && s->loaded_at_us <= now_us());
  assert_int_equal(infer_one(s, "hello world"), 0);
  es_repo_release(r, s);
  assert_int_equal(es_repo_acquire(r, "nope", &s, &err), ES_ENOTFOUND);
  assert_null(s);
  es_repo_free(r);
}

static void test_config_pins_a_version_and_orders_variants(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  put_model_dim("media/1/model.ftz", 8, 1);
  put_model("media/2/model.bin");
  put_text("media/config.ini", "[model]\nversion = 1\nvariants = model.ftz, model.bin\n");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  es_served_t *s;
  assert_int_equal(es_repo_acquire(r, "media", &s, NULL), 0);
  assert_int_equal(s->version, 1);
  assert_string_equal(s->variant, "model.ftz");
  assert_string_equal(s->desc.format, "ftz");
  es_repo_release(r, s);
  /* the quality manager's switch: rung 1 of the ladder, then no rung 2 */
  es_error_t err;
  assert_int_equal(es_repo_load_variant(r, "media", 1, &err), 0);
  assert_int_equal(es_repo_acquire(r, "media", &s, NULL), 0);
  assert_int_equal(s->version, 1);
  assert_string_equal(s->variant, "model.bin");
  assert_int_equal(s->variant_index, 1);
  es_repo_release(r, s);
  assert_int_equal(es_repo_load_variant(r, "media", 2, &err), ES_ERANGE);
  assert_int_equal(es_repo_load_variant(r, "none", 0, &err), ES_ENOTFOUND);
  /* the ladder as the quality manager sees it */
  char names[4][64];
  int cur = -1;
  assert_int_equal(es_repo_ladder(r, "media", names, 4, &cur), 2);
  assert_string_equal(names[0], "model.ftz");
  assert_string_equal(names[1], "model.bin");
  assert_int_equal(cur, 1);
  assert_int_equal(es_repo_ladder(r, "none", names, 4, &cur), ES_ENOTFOUND);
  /* the chosen rung sticks across polls */
  assert_int_equal(es_repo_poll(r, now_us()), 0);
  assert_int_equal(es_repo_acquire(r, "media", &s, NULL), 0);
  assert_string_equal(s->variant, "model.bin");
  es_repo_release(r, s);
  es_repo_free(r);
}

static void test_default_ladder_is_the_backends_variants(void **state) {
  (void)state;
  put_model_dim("m/1/small.ftz", 8, 1);
  put_model_dim("m/1/big.bin", 16, 0);
  put_model_dim("m/1/small.bin", 8, 0);
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  es_served_t *s;
  assert_int_equal(es_repo_acquire(r, "m", &s, NULL), 0);
  assert_string_equal(s->variant, "big.bin");
  es_repo_release(r, s);
  assert_int_equal(es_repo_load_variant(r, "m", 2, NULL), 0);
  assert_int_equal(es_repo_acquire(r, "m", &s, NULL), 0);
  assert_string_equal(s->variant, "small.ftz");
  es_repo_release(r, s);
  es_repo_free(r);
}

static void test_bad_config_fails_that_model_only(void **state) {
  (void)state;
  put_model("bad/1/model.bin");
  put_text("bad/config.ini", "[model]\nkeep_alive = 1m\n\n[batching]\nmax_bach = 8\n");
  put_model("good/1/model.bin");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  es_repo_entry_t e;
  assert_true(find_entry(r, "bad", &e));
  assert_int_equal(e.state, ES_MODEL_FAILED);
  assert_int_equal(e.version, 0);
  assert_string_equal(e.reason, "config.ini:5: unknown key 'max_bach' in [batching] (known: "
                                "max_batch, max_queue_delay, queue_limit, priority, timeout)");
  assert_true(find_entry(r, "good", &e));
  assert_int_equal(e.state, ES_MODEL_READY);
  const rec_ev *ev = last_event(ES_REPO_FAILED);
  assert_non_null(ev);
  assert_string_equal(ev->name, "bad");
  assert_non_null(strstr(ev->msg, "config.ini:5"));
  es_served_t *s;
  es_error_t err;
  assert_int_equal(es_repo_acquire(r, "bad", &s, &err), ES_EINVAL);
  assert_non_null(strstr(err.msg, "max_bach"));
  /* polling again reports nothing new; fixing the file loads it */
  int failed = count_events(ES_REPO_FAILED, "bad");
  assert_int_equal(es_repo_poll(r, now_us()), 0);
  assert_int_equal(count_events(ES_REPO_FAILED, "bad"), failed);
  put_text("bad/config.ini", "[model]\nkeep_alive = 1m\n\n[batching]\nmax_batch = 8\n");
  assert_int_equal(es_repo_poll(r, now_us()), 1);
  assert_int_equal(serving(r, "bad"), 1);
  es_model_conf_t c;
  assert_int_equal(es_repo_conf(r, "bad", &c), 0);
  assert_int_equal(c.max_batch, 8);
  assert_int_equal(c.keep_alive_us, 60000000);
  es_repo_free(r);
}

/* ---- failures keep the old version ------------------------------------------------ */

static void test_corrupt_new_version_leaves_the_old_one_serving(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  put_model("media/2/model.bin");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  assert_int_equal(serving(r, "media"), 2);
  put_truncated("media/3/model.bin");
  assert_int_equal(es_repo_poll(r, now_us()), 1);
  const rec_ev *ev = last_event(ES_REPO_FAILED);
  assert_non_null(ev);
  assert_string_equal(ev->name, "media");
  assert_int_equal(ev->version, 3);
  assert_non_null(strstr(ev->msg, "3/model.bin"));
  assert_int_equal(serving(r, "media"), 2);
  es_repo_entry_t e;
  assert_true(find_entry(r, "media", &e));
  assert_int_equal(e.state, ES_MODEL_READY);
  assert_int_equal(e.version, 2);
  assert_int_equal(e.latest_version, 3);
  assert_non_null(strstr(e.reason, "3/model.bin"));
  /* reported once, not at every poll */
  assert_int_equal(es_repo_poll(r, now_us()), 0);
  assert_int_equal(count_events(ES_REPO_FAILED, "media"), 1);
  /* an explicit load retries and fails the same way */
  es_error_t err;
  assert_int_not_equal(es_repo_load(r, "media", &err), 0);
  assert_int_equal(serving(r, "media"), 2);
  es_repo_free(r);
}

static void test_scan_falls_back_when_the_newest_version_is_corrupt(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  put_truncated("media/2/model.bin");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  assert_int_equal(serving(r, "media"), 1);
  assert_int_equal(count_events(ES_REPO_FAILED, "media"), 1);
  es_repo_entry_t e;
  assert_true(find_entry(r, "media", &e));
  assert_non_null(strstr(e.reason, "2/model.bin"));
  assert_int_equal(es_repo_poll(r, now_us()), 0); /* v2 is not retried */
  es_repo_free(r);
}

static void test_budget_refusal_leaves_the_old_one_serving(void **state) {
  (void)state;
  put_model_dim("media/1/model.bin", 8, 0);
  char p1[1024], p2[1024];
  snprintf(p1, sizeof p1, "%s/media/1/model.bin", models);
  put_outside("big.bin", 64, p2, sizeof p2);
  es_backend_opts_t o = es_backend_default_opts();
  es_model_estimate_t e1, e2;
  assert_int_equal(es_estimate_model_file(p1, o.nthreads, o.max_batch, &e1, NULL), 0);
  assert_int_equal(es_estimate_model_file(p2, o.nthreads, o.max_batch, &e2, NULL), 0);
  es_budget_params_t bp = es_budget_default_params();
  bp.budget = e1.total_bytes + e2.total_bytes - 1; /* either alone, not both */
  es_budget_t *b = es_budget_new(&bp, NULL);
  assert_non_null(b);
  es_repo_t *r = new_repo(b);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_int_equal(st.reserved[ES_BUDGET_MODEL], e1.total_bytes);
  es_served_t *s;
  assert_int_equal(es_repo_acquire(r, "media", &s, NULL), 0);
  assert_int_equal(s->reserved_bytes, e1.total_bytes);
  es_repo_release(r, s);
  es_error_t err;
  assert_int_equal(es_repo_publish(r, "media", p2, &err), ES_EBUDGET);
  assert_non_null(strstr(err.msg, "model 'media' v2 needs "));
  const rec_ev *ev = last_event(ES_REPO_REFUSED);
  assert_non_null(ev);
  assert_int_equal(ev->version, 2);
  assert_true(!strncmp(ev->msg, "model 'media' v2 needs ", 23));
  assert_non_null(strstr(ev->msg, "available in the model budget"));
  assert_int_equal(serving(r, "media"), 1);
  es_repo_entry_t en;
  assert_true(find_entry(r, "media", &en));
  assert_int_equal(en.state, ES_MODEL_READY);
  assert_int_equal(en.latest_version, 2);
  assert_true(!strncmp(en.reason, "model 'media' v2 needs", 22));
  es_budget_stats(b, &st);
  assert_int_equal(st.reserved[ES_BUDGET_MODEL], e1.total_bytes);
  assert_int_equal(st.refusals[ES_BUDGET_MODEL], 1);
  /* unloading gives the reservation back, and then v2 fits */
  assert_int_equal(es_repo_unload(r, "media", &err), 0);
  es_budget_stats(b, &st);
  assert_int_equal(st.reserved[ES_BUDGET_MODEL], 0);
  assert_int_equal(es_repo_load(r, "media", &err), 0);
  assert_int_equal(serving(r, "media"), 2);
  es_repo_free(r);
  es_budget_stats(b, &st);
  assert_int_equal(st.reserved[ES_BUDGET_MODEL], 0);
  assert_int_equal(st.held[ES_BUDGET_MODEL], 0);
  es_budget_free(b);
}

static void test_refused_model_loads_once_the_budget_has_room(void **state) {
  (void)state;
  put_model_dim("a/1/model.bin", 8, 0);
  put_model_dim("b/1/model.bin", 64, 0);
  char pa[1024], pb[1024];
  snprintf(pa, sizeof pa, "%s/a/1/model.bin", models);
  snprintf(pb, sizeof pb, "%s/b/1/model.bin", models);
  es_model_estimate_t ea, eb;
  assert_int_equal(es_estimate_model_file(pa, 1, 32, &ea, NULL), 0);
  assert_int_equal(es_estimate_model_file(pb, 1, 32, &eb, NULL), 0);
  es_budget_params_t bp = es_budget_default_params();
  bp.budget = ea.total_bytes + eb.total_bytes - 1;
  es_budget_t *b = es_budget_new(&bp, NULL);
  es_repo_t *r = new_repo(b);
  assert_int_equal(es_repo_scan(r, NULL), 1); /* a first (sorted), then b is refused */
  es_repo_entry_t e;
  assert_true(find_entry(r, "b", &e));
  assert_int_equal(e.state, ES_MODEL_FAILED);
  assert_true(!strncmp(e.reason, "model 'b' v1 needs ", 19));
  es_served_t *s;
  assert_int_equal(es_repo_acquire(r, "b", &s, NULL), ES_EBUDGET);
  assert_int_equal(es_repo_poll(r, now_us()), 0); /* still no room: not retried */
  assert_int_equal(count_events(ES_REPO_REFUSED, "b"), 1);
  assert_int_equal(es_repo_unload(r, "a", NULL), 0);
  assert_int_equal(es_repo_poll(r, now_us()), 1);
  assert_int_equal(serving(r, "b"), 1);
  assert_true(find_entry(r, "b", &e));
  assert_string_equal(e.reason, "");
  es_repo_free(r);
  es_budget_free(b);
}

/* ---- swaps and references ----------------------------------------------------------- */

static void test_swap_keeps_the_held_version_until_release(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  es_budget_params_t bp = es_budget_default_params();
  bp.budget = 1ull << 30;
  es_budget_t *b = es_budget_new(&bp, NULL);
  es_repo_t *r = new_repo(b);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  es_served_t *old;
  assert_int_equal(es_repo_acquire(r, "media", &old, NULL), 0);
  assert_int_equal(old->version, 1);
  uint64_t gen1 = old->generation;
  put_model_dim("media/2/model.bin", 16, 0);
  assert_int_equal(es_repo_poll(r, now_us()), 1);
  const rec_ev *ev = last_event(ES_REPO_SWAPPED);
  assert_non_null(ev);
  assert_int_equal(ev->version, 2);
  assert_int_equal(ev->old_version, 1);
  /* new requests get v2; the held v1 still predicts */
  es_served_t *cur;
  assert_int_equal(es_repo_acquire(r, "media", &cur, NULL), 0);
  assert_int_equal(cur->version, 2);
  assert_true(cur->generation > gen1);
  assert_int_equal(infer_one(old, "hello world"), 0);
  assert_int_equal(old->version, 1);
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  assert_int_equal(st.held[ES_BUDGET_MODEL], 2);
  es_repo_release(r, old); /* the last reference: v1 is unloaded now */
  es_budget_stats(b, &st);
  assert_int_equal(st.held[ES_BUDGET_MODEL], 1);
  assert_int_equal(st.reserved[ES_BUDGET_MODEL], cur->reserved_bytes);
  es_repo_release(r, cur);
  es_budget_stats(b, &st);
  assert_int_equal(st.held[ES_BUDGET_MODEL], 1); /* v2 is current */
  es_repo_free(r);
  es_budget_free(b);
}

static void test_poll_sees_new_versions_and_config_changes(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  assert_int_equal(es_repo_poll(r, now_us()), 0); /* nothing changed */
  put_model("media/2/model.bin");
  assert_int_equal(es_repo_poll(r, now_us()), 1);
  assert_int_equal(serving(r, "media"), 2);
  put_text("media/config.ini", "[model]\nversion = 1\n");
  assert_int_equal(es_repo_poll(r, now_us()), 1);
  assert_int_equal(serving(r, "media"), 1);
  /* a change that keeps the version reloads too, with the new settings */
  put_text("media/config.ini", "[model]\nversion = 1\n[batching]\nmax_batch = 4\n");
  assert_int_equal(es_repo_poll(r, now_us()), 1);
  es_served_t *s;
  assert_int_equal(es_repo_acquire(r, "media", &s, NULL), 0);
  assert_int_equal(s->version, 1);
  assert_int_equal(s->conf->max_batch, 4);
  es_repo_release(r, s);
  /* a new model folder is indexed and loaded */
  put_model("second/4/model.bin");
  assert_int_equal(es_repo_poll(r, now_us()), 1);
  assert_int_equal(serving(r, "second"), 4);
  assert_int_equal(count_events(ES_REPO_LOADED, "second"), 1);
  es_repo_free(r);
}

static void test_removing_the_served_version_falls_back_to_the_previous(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  put_model("media/2/model.bin");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  assert_int_equal(serving(r, "media"), 2);
  char path[1024];
  snprintf(path, sizeof path, "%s/media/2", models);
  tmptree_rm(path);
  assert_int_equal(es_repo_poll(r, now_us()), 1);
  assert_int_equal(serving(r, "media"), 1);
  const rec_ev *ev = last_event(ES_REPO_SWAPPED);
  assert_non_null(ev);
  assert_int_equal(ev->version, 1);
  assert_int_equal(ev->old_version, 2);
  es_repo_free(r);
}

static void test_keep_alive_unloads_idle_models_and_acquire_reloads(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  put_text("media/config.ini", "[model]\nkeep_alive = 2s\n");
  put_model("never/1/model.bin");
  put_text("never/config.ini", "[model]\nkeep_alive = 0\n");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 2);
  assert_int_equal(serving(r, "media"), 1);
  int64_t t = now_us();
  assert_int_equal(es_repo_poll(r, t), 0); /* used just now */
  assert_int_equal(es_repo_poll(r, t + 3000000), 1);
  const rec_ev *ev = last_event(ES_REPO_UNLOADED);
  assert_non_null(ev);
  assert_string_equal(ev->name, "media");
  assert_int_equal(ev->version, 1); /* the version unloaded */
  assert_int_equal(ev->old_version, 0);
  assert_non_null(strstr(ev->msg, "idle for more than 2s"));
  es_repo_entry_t e;
  assert_true(find_entry(r, "media", &e));
  assert_int_equal(e.state, ES_MODEL_UNAVAILABLE);
  assert_int_equal(e.version, 0);
  assert_true(find_entry(r, "never", &e));
  assert_int_equal(e.state, ES_MODEL_READY);
  /* not reloaded by polls, only by a request */
  assert_int_equal(es_repo_poll(r, t + 4000000), 0);
  int loaded = count_events(ES_REPO_LOADED, "media");
  assert_int_equal(serving(r, "media"), 1);
  assert_int_equal(count_events(ES_REPO_LOADED, "media"), loaded + 1);
  assert_true(find_entry(r, "media", &e));
  assert_int_equal(e.state, ES_MODEL_READY);
  es_repo_free(r);
}

static void test_unload_then_acquire_loads_again(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  es_error_t err;
  assert_int_equal(es_repo_unload(r, "media", &err), 0);
  assert_int_equal(count_events(ES_REPO_UNLOADED, "media"), 1);
  assert_int_equal(es_repo_unload(r, "none", &err), ES_ENOTFOUND);
  es_repo_entry_t e;
  assert_true(find_entry(r, "media", &e));
  assert_int_equal(e.state, ES_MODEL_UNAVAILABLE);
  assert_int_equal(serving(r, "media"), 1);
  assert_int_equal(es_repo_load(r, "none", &err), ES_ENOTFOUND);
  es_repo_free(r);
}

static void test_removed_folder_unloads_once_released(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  put_model("gone/1/model.bin");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 2);
  es_served_t *s;
  assert_int_equal(es_repo_acquire(r, "gone", &s, NULL), 0);
  char path[1024];
  snprintf(path, sizeof path, "%s/gone", models);
  tmptree_rm(path);
  assert_int_equal(es_repo_poll(r, now_us()), 1);
  const rec_ev *ev = last_event(ES_REPO_UNLOADED);
  assert_non_null(ev);
  assert_string_equal(ev->name, "gone");
  assert_int_equal(ev->version, 1);
  es_served_t *t;
  assert_int_equal(es_repo_acquire(r, "gone", &t, NULL), ES_ENOTFOUND);
  es_repo_entry_t e[4];
  assert_int_equal(es_repo_list(r, e, 4), 1);
  assert_int_equal(infer_one(s, "la casa"), 0); /* still mapped while held */
  es_repo_release(r, s);
  assert_int_equal(serving(r, "media"), 1);
  es_repo_free(r);
}

/* ---- files and publishing ------------------------------------------------------------ */

static void test_add_file_names_and_errors(void **state) {
  (void)state;
  es_repo_params_t p = es_repo_default_params();
  p.on_event = on_event;
  es_repo_t *r = es_repo_new(&p, NULL); /* no directory: files only */
  assert_non_null(r);
  char path[1024], other[1024];
  put_outside("files/media.bin", 8, path, sizeof path);
  put_outside("files/x.v7.ftz.bin", 8, other, sizeof other);
  es_error_t err;
  assert_int_equal(es_repo_add_file(r, path, NULL, NULL, &err), 0);
  assert_int_equal(es_repo_add_file(r, other, NULL, NULL, &err), 0);
  assert_int_equal(serving(r, "media"), 1);
  assert_int_equal(serving(r, "x.v7.ftz"), 1);
  assert_int_equal(es_repo_add_file(r, path, NULL, NULL, &err), ES_EINVAL); /* used */
  assert_non_null(strstr(err.msg, "already used"));
  const char *bad[] = {"../x", "", ".hidden", "a/b"};
  for (int i = 0; i < 4; i++)
    assert_int_equal(es_repo_add_file(r, path, bad[i], NULL, &err), ES_EINVAL);
  char n64[65];
  memset(n64, 'n', 64);
  n64[64] = 0;
  assert_int_equal(es_repo_add_file(r, path, n64, NULL, &err), ES_EINVAL);
  /* a name and a configuration of the caller's */
  es_model_conf_t c = es_model_conf_default();
  c.max_batch = 7;
  assert_int_equal(es_repo_add_file(r, path, "alias", &c, &err), 0);
  es_served_t *s;
  assert_int_equal(es_repo_acquire(r, "alias", &s, NULL), 0);
  assert_int_equal(s->conf->max_batch, 7);
  assert_string_equal(s->conf->name, "alias");
  assert_string_equal(s->variant, "media.bin");
  es_repo_release(r, s);
  /* unknown kinds and missing files add nothing */
  snprintf(other, sizeof other, "%s/files/model.onnx", root);
  assert_int_equal(es_repo_add_file(r, other, NULL, NULL, &err), ES_EINVAL);
  snprintf(other, sizeof other, "%s/files/missing.bin", root);
  assert_int_equal(es_repo_add_file(r, other, NULL, NULL, &err), ES_EIO);
  assert_int_equal(es_repo_acquire(r, "missing", &s, NULL), ES_ENOTFOUND);
  es_repo_entry_t e[8];
  assert_int_equal(es_repo_list(r, e, 8), 3);
  char dir[64] = "x";
  assert_int_equal(es_repo_model_dir(r, "media", dir, sizeof dir), 0);
  assert_string_equal(dir, "");
  assert_int_equal(es_repo_scan(r, &err), 3); /* nothing to index */
  es_repo_free(r);
}

static void test_publish_creates_the_next_version(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  put_model("media/2/model.bin");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  char src[1024], dst[1200];
  put_outside("job/retrained.bin", 16, src, sizeof src);
  es_error_t err;
  assert_int_equal(es_repo_publish(r, "media", src, &err), 0);
  snprintf(dst, sizeof dst, "%s/media/3/retrained.bin", models);
  struct stat st;
  assert_int_equal(stat(dst, &st), 0);
  assert_int_not_equal(stat(src, &st), 0); /* moved, not copied */
  es_served_t *s;
  assert_int_equal(es_repo_acquire(r, "media", &s, NULL), 0);
  assert_int_equal(s->version, 3);
  assert_string_equal(s->variant, "retrained.bin");
  es_repo_release(r, s);
  assert_int_equal(count_events(ES_REPO_SWAPPED, "media"), 1);
  /* the poll that follows sees nothing new */
  assert_int_equal(es_repo_poll(r, now_us()), 0);
  /* from another file system (tmpfs, where there is one): copied, then removed */
  char shm[64] = "/dev/shm/es-repo-XXXXXX";
  if (mkdtemp(shm)) {
    snprintf(src, sizeof src, "%s/x.bin", shm);
    ft_spec sp = ft_default_spec();
    size_t len;
    uint8_t *data = ft_write(&sp, &len);
    FILE *f = fopen(src, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    free(data);
    assert_int_equal(es_repo_publish(r, "media", src, &err), 0);
    assert_int_not_equal(stat(src, &st), 0);
    snprintf(dst, sizeof dst, "%s/media/4/x.bin", models);
    assert_int_equal(stat(dst, &st), 0);
    assert_int_equal(st.st_size, len);
    assert_int_equal(serving(r, "media"), 4);
    rmdir(shm);
  }
  /* a source no backend takes, a missing one, an unknown model */
  put_outside("job/notes.txt", 8, src, sizeof src);
  assert_int_equal(es_repo_publish(r, "media", src, &err), ES_EINVAL);
  snprintf(src, sizeof src, "%s/job/none.bin", root);
  assert_int_equal(es_repo_publish(r, "media", src, &err), ES_EIO);
  assert_int_equal(es_repo_publish(r, "nope", src, &err), ES_ENOTFOUND);
  int v = serving(r, "media");
  assert_true(v == 3 || v == 4);
  /* the folder */
  char dir[1024];
  assert_int_equal(es_repo_model_dir(r, "media", dir, sizeof dir), 0);
  snprintf(dst, sizeof dst, "%s/media", models);
  assert_string_equal(dir, dst);
  assert_int_equal(es_repo_model_dir(r, "nope", dir, sizeof dir), ES_ENOTFOUND);
  es_repo_free(r);
}

static void test_publish_files_makes_one_version_of_a_ladder(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  put_model_dim("media/1/model.ftz", 8, 1);
  put_text("media/config.ini", "[model]\nvariants = model.bin, model.ftz\n");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  es_error_t err;
  assert_int_equal(es_repo_load_variant(r, "media", 1, &err), 0); /* serving the cheap rung */
  char a[1024], b[1024];
  put_outside("job/model.bin", 16, a, sizeof a);
  put_outside("job/model.ftz", 16, b, sizeof b);
  const char *two[] = {a, b}, *dup[] = {a, a};
  assert_int_equal(es_repo_publish_files(r, "media", dup, 2, &err), ES_EINVAL);
  assert_int_equal(es_repo_publish_files(r, "media", two, 0, &err), ES_EINVAL);
  assert_int_equal(es_repo_publish_files(r, "media", two, 2, &err), 0);
  char names[8][64];
  int cur = -1;
  assert_int_equal(es_repo_ladder(r, "media", names, 8, &cur), 2);
  assert_int_equal(cur, 1); /* the rung in use is kept across versions */
  assert_int_equal(serving(r, "media"), 2);
  char dst[1200];
  struct stat st;
  snprintf(dst, sizeof dst, "%s/media/2/model.ftz", models);
  assert_int_equal(stat(dst, &st), 0);
  snprintf(dst, sizeof dst, "%s/media/2/model.bin", models);
  assert_int_equal(stat(dst, &st), 0);
  /* nothing staged is left behind */
  snprintf(dst, sizeof dst, "%s/media", models);
  DIR *d = opendir(dst);
  assert_non_null(d);
  for (struct dirent *e; (e = readdir(d));)
    assert_true(!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || e->d_name[0] != '.');
  closedir(d);
  es_repo_free(r);
}

static void test_publish_beside_a_file_model(void **state) {
  (void)state;
  es_repo_params_t p = es_repo_default_params();
  es_repo_t *r = es_repo_new(&p, NULL);
  char path[1024], src[1024], want[1200];
  put_outside("files/media.bin", 8, path, sizeof path);
  assert_int_equal(es_repo_add_file(r, path, NULL, NULL, NULL), 0);
  for (int v = 2; v <= 3; v++) {
    put_outside("job/new.bin", 16, src, sizeof src);
    es_error_t err;
    assert_int_equal(es_repo_publish(r, "media", src, &err), 0);
    snprintf(want, sizeof want, "%s/files/media.v%d.bin", root, v);
    es_served_t *s;
    assert_int_equal(es_repo_acquire(r, "media", &s, NULL), 0);
    assert_int_equal(s->version, v);
    assert_string_equal(s->path, want);
    es_repo_release(r, s);
  }
  /* the new file keeps its own kind */
  put_outside("job/small.ftz", 8, src, sizeof src);
  assert_int_equal(es_repo_publish(r, "media", src, NULL), 0);
  snprintf(want, sizeof want, "%s/files/media.v4.ftz", root);
  es_served_t *s;
  assert_int_equal(es_repo_acquire(r, "media", &s, NULL), 0);
  assert_string_equal(s->path, want);
  assert_string_equal(s->variant, "media.v4.ftz");
  es_repo_release(r, s);
  es_repo_entry_t e;
  assert_true(find_entry(r, "media", &e));
  assert_int_equal(e.latest_version, 4);
  es_repo_free(r);
}

static void test_training_data_resolves_inside_the_model_folder(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  put_text("media/config.ini", "[training]\ndata = train.txt\n");
  es_repo_t *r = new_repo(NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  es_model_conf_t c;
  assert_int_equal(es_repo_conf(r, "media", &c), 0);
  char want[1024];
  snprintf(want, sizeof want, "%s/media/train.txt", models);
  assert_string_equal(c.train_data, want);
  assert_string_equal(c.name, "media");
  assert_int_equal(es_repo_conf(r, "nope", &c), ES_ENOTFOUND);
  es_repo_free(r);
}

static void test_new_rejects_a_missing_directory(void **state) {
  (void)state;
  es_repo_params_t p = es_repo_default_params();
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/nope", root);
  p.dir = dir;
  es_error_t err;
  assert_null(es_repo_new(&p, &err));
  assert_int_equal(err.code, ES_EIO);
  p.dir = models;
  p.opts.nthreads = 0;
  assert_null(es_repo_new(&p, &err));
  assert_int_equal(err.code, ES_EINVAL);
  es_repo_free(NULL);
}

static void test_without_load_on_scan_models_load_on_first_acquire(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  put_model("bad/1/model.bin");
  put_text("bad/config.ini", "[sla]\np99 = fast\n");
  es_repo_params_t p = es_repo_default_params();
  p.dir = models;
  p.load_on_scan = 0;
  p.on_event = on_event;
  es_repo_t *r = es_repo_new(&p, NULL);
  assert_int_equal(es_repo_scan(r, NULL), 0);
  es_repo_entry_t e;
  assert_true(find_entry(r, "media", &e));
  assert_int_equal(e.state, ES_MODEL_UNAVAILABLE);
  assert_int_equal(e.latest_version, 1);
  assert_true(find_entry(r, "bad", &e));
  assert_int_equal(e.state, ES_MODEL_FAILED);
  assert_non_null(strstr(e.reason, "config.ini:2: [sla] p99 = 'fast'"));
  assert_int_equal(serving(r, "media"), 1);
  es_repo_free(r);
}

/* ---- under load ---------------------------------------------------------------------- */

typedef struct {
  es_repo_t *r;
  int *stop;
  int failed_acquires, failed_infers, max_version;
  int rounds; /* attempts, read by the main thread: atomic */
} client_arg;

static void *client(void *p) {
  client_arg *a = p;
  while (!__atomic_load_n(a->stop, __ATOMIC_ACQUIRE)) {
    es_served_t *s;
    if (es_repo_acquire(a->r, "media", &s, NULL)) {
      a->failed_acquires++;
    } else {
      if (infer_one(s, "hello world la casa")) a->failed_infers++;
      if (s->version > a->max_version) a->max_version = s->version;
      es_repo_release(a->r, s);
    }
    __atomic_add_fetch(&a->rounds, 1, __ATOMIC_RELEASE); /* attempts: never stuck */
  }
  return NULL;
}

/* Waits until every client made `n` more requests (synchronisation, not
 * timing: requests run between any two swaps). */
static void wait_rounds(client_arg *a, int nclients, int n) {
  for (int i = 0; i < nclients; i++) {
    int seen = __atomic_load_n(&a[i].rounds, __ATOMIC_ACQUIRE);
    while (__atomic_load_n(&a[i].rounds, __ATOMIC_ACQUIRE) < seen + n) sched_yield();
  }
}

static void test_four_threads_serve_through_five_publishes(void **state) {
  (void)state;
  put_model("media/1/model.bin");
  es_repo_params_t p = es_repo_default_params();
  p.dir = models;
  p.opts.nthreads = 2;
  p.on_event = on_event;
  es_repo_t *r = es_repo_new(&p, NULL);
  assert_int_equal(es_repo_scan(r, NULL), 1);
  int stop = 0;
  pthread_t th[4];
  client_arg a[4];
  for (int i = 0; i < 4; i++) {
    a[i] = (client_arg){r, &stop, 0, 0, 0, 0};
    assert_int_equal(pthread_create(&th[i], NULL, client, &a[i]), 0);
  }
  for (int v = 2; v <= 6; v++) {
    wait_rounds(a, 4, 20);
    char src[1024];
    put_outside("job/next.bin", 8 + 4 * v, src, sizeof src);
    es_error_t err;
    if (es_repo_publish(r, "media", src, &err)) fail_msg("publish v%d: %s", v, err.msg);
    es_repo_poll(r, now_us());
  }
  wait_rounds(a, 4, 20);
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(a[i].failed_acquires, 0);
    assert_int_equal(a[i].failed_infers, 0);
    assert_int_equal(a[i].max_version, 6); /* every client saw the last swap */
  }
  assert_int_equal(serving(r, "media"), 6);
  assert_int_equal(count_events(ES_REPO_SWAPPED, "media"), 5);
  assert_int_equal(count_events(ES_REPO_FAILED, "media"), 0);
  es_repo_free(r);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_conf_defaults_match_the_header),
      T(test_conf_parse_reads_every_key),
      T(test_conf_errors_name_the_line_and_key),
      T(test_valid_names),
      T(test_scan_serves_the_highest_complete_version),
      T(test_config_pins_a_version_and_orders_variants),
      T(test_default_ladder_is_the_backends_variants),
      T(test_bad_config_fails_that_model_only),
      T(test_corrupt_new_version_leaves_the_old_one_serving),
      T(test_scan_falls_back_when_the_newest_version_is_corrupt),
      T(test_budget_refusal_leaves_the_old_one_serving),
      T(test_refused_model_loads_once_the_budget_has_room),
      T(test_swap_keeps_the_held_version_until_release),
      T(test_poll_sees_new_versions_and_config_changes),
      T(test_removing_the_served_version_falls_back_to_the_previous),
      T(test_keep_alive_unloads_idle_models_and_acquire_reloads),
      T(test_unload_then_acquire_loads_again),
      T(test_removed_folder_unloads_once_released),
      T(test_add_file_names_and_errors),
      T(test_publish_creates_the_next_version),
      T(test_publish_files_makes_one_version_of_a_ladder),
      T(test_publish_beside_a_file_model),
      T(test_training_data_resolves_inside_the_model_folder),
      T(test_new_rejects_a_missing_directory),
      T(test_without_load_on_scan_models_load_on_first_acquire),
      T(test_four_threads_serve_through_five_publishes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
