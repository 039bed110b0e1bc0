/*
 * jobs.c - learning from confirmations: POST /v1/models/{m}/feedback stores a
 * confirmed (text, label); POST /v1/models/{m}/train starts a retraining on
 * the model's base data plus its feedback; GET /v1/jobs/{id} reports it.
 *
 * A retraining runs on its own thread at the lowest CPU priority (nice 19),
 * never on an inference worker: it takes seconds to minutes, and requests
 * keep their latency meanwhile. It trains with the served model's
 * hyperparameters (and its normaliser, when it has one), converts to the
 * served file's format, and publishes the result as the next version
 * (es_repo_publish): the repository swaps it in atomically, and requests in
 * flight finish on the old version. One job per model at a time.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common/fail.h"
#include "edgeserve/model.h"
#include "edgeserve/store.h"
#include "edgeserve/train.h"
#include "server_impl.h"

typedef struct train_job {
  struct train_job *next;
  es_server_t *srv;
  int64_t id;
  char model[ES_MODEL_NAME_MAX];
  char base[4096]; /* base data file, "" none */
  char src[4096];  /* the served file, for its format and normaliser */
  double lr;
  int epoch;
  int weight; /* each confirmation is repeated this many times in the data */
  pthread_t thread;
  _Atomic int done;
} train_job_t;

static void progress(const es_train_progress_t *p, void *ctx) {
  train_job_t *j = ctx;
  static const double step = 0.05;
  (void)step;
  es_store_job_update(j->srv->store, j->id, "running", 0.05 + 0.8 * p->progress, NULL, 0, NULL);
}

static int append_file(FILE *out, const char *path) {
  FILE *in = fopen(path, "rb");
  if (!in) return -1;
  char buf[65536];
  size_t n;
  int rc = 0;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) {
      rc = -1;
      break;
    }
  if (ferror(in)) rc = -1;
  fclose(in);
  return rc;
}

/* Training stops when the server does (es_train_args_t.cancel). */
static int job_cancelled(void *ctx) {
  train_job_t *j = ctx;
  return atomic_load(&j->srv->stopping);
}

static void fail_job(train_job_t *j, const char *msg) {
  es_store_job_update(j->srv->store, j->id, "failed", 1.0, msg, 0, NULL);
  es__log(j->srv, "warn", "component=jobs job=%lld model=%s msg=\"%s\"", (long long)j->id, j->model,
          msg);
}

/* Writes the trained model (prefix.bin) to `out` in the format of the
 * existing rung file `rung`: a native .esm with its input scheme, a .ftz
 * (product-quantized, qnorm), or a .bin. Returns 0 or an ES_E* code. */
static int make_rung(const es_train_args_t *a, const char *rung, const char *bin,
                     const char *prefix, const char *out, es_error_t *err) {
  es_model_t *m = NULL;
  if (es_model_open(&m, rung, NULL, err)) return err->code ? err->code : ES_EIO;
  es_model_info_t info;
  es_model_info(m, &info);
  int native = info.native, scheme = info.input_scheme, quant = info.quant_input;
  es_model_close(m);
  if (native || !quant) {
    es_convert_args_t ca = {.scheme = !native       ? ES_SCHEME_KEEP
                                      : scheme == 8 ? ES_SCHEME_INT8
                                      : scheme == 4 ? ES_SCHEME_INT4
                                                    : ES_SCHEME_KEEP,
                            .normalizer = a->normalize,
                            .source = "edgeserve retraining"};
    return es_convert(bin, out, &ca, err);
  }
  es_train_args_t q = *a;
  q.qnorm = 1;
  q.dsub = 2;
  int rc = es_quantize(&q, NULL, NULL, err);
  if (rc) return rc;
  char ftz[4300];
  snprintf(ftz, sizeof ftz, "%s.ftz", prefix);
  if (rename(ftz, out))
    return es__fail(err, ES_EIO, -1, "cannot move %s to %s: %s", ftz, out, strerror(errno));
  return 0;
}

static void *train_main(void *arg) {
  train_job_t *j = arg;
  es_server_t *s = j->srv;
  setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
  es_error_t err = {0};
  char dir[] = "/tmp/edgeserve-train-XXXXXX";
  char data[4200], prefix[4200], msg[512];
  if (!mkdtemp(dir)) {
    fail_job(j, "cannot make a work directory in /tmp");
    goto done;
  }
  snprintf(data, sizeof data, "%s/data.txt", dir);
  snprintf(prefix, sizeof prefix, "%s/model", dir);
  es_store_job_update(s->store, j->id, "running", 0.01, "preparing data", 0, NULL);
  char fb[4200];
  snprintf(fb, sizeof fb, "%s/feedback.txt", dir);
  FILE *ff = fopen(fb, "wb");
  int64_t rows = 0;
  int ok = ff && es_store_feedback_export(s->store, j->model, ff, &rows, &err) == 0;
  if (ff && fclose(ff)) ok = 0;
  FILE *f = ok ? fopen(data, "wb") : NULL;
  ok = f && append_file(f, j->base) == 0;
  for (int i = 0; ok && i < j->weight; i++) ok = append_file(f, fb) == 0;
  if (f && fclose(f)) ok = 0;
  if (!ok) {
    snprintf(msg, sizeof msg, "cannot prepare the training data: %s",
             err.msg[0] ? err.msg : strerror(errno));
    fail_job(j, msg);
    goto cleanup;
  }
  /* the served model's hyperparameters and normaliser */
  es_model_t *m = NULL;
  if (es_model_open(&m, j->src, NULL, &err)) {
    snprintf(msg, sizeof msg, "cannot read the served model: %s", err.msg);
    fail_job(j, msg);
    goto cleanup;
  }
  es_model_info_t info;
  es_model_info(m, &info);
  es_train_args_t a = es_train_default_args();
  a.input = data;
  a.output = prefix;
  a.dim = info.args.dim;
  a.epoch = j->epoch > 0 ? j->epoch : info.args.epoch;
  a.lr = j->lr > 0 ? j->lr : a.lr;
  a.min_count = info.args.min_count;
  a.neg = info.args.neg;
  a.word_ngrams = info.args.word_ngrams;
  a.loss = (es_loss_t)info.args.loss;
  a.bucket = info.args.bucket;
  a.minn = info.args.minn;
  a.maxn = info.args.maxn;
  a.lr_update_rate = info.args.lr_update_rate;
  a.thread = 1;
  a.verbose = 0;
  a.write_vec = 0;
  a.cancel = job_cancelled;
  a.cancel_ctx = j;
  char norm[512] = "";
  size_t nlen = 0;
  const char *nz = es_model_meta(m, "normalizer", &nlen);
  if (nz && nlen < sizeof norm) memcpy(norm, nz, nlen), norm[nlen] = '\0', a.normalize = norm;
  es_model_close(m);
  snprintf(msg, sizeof msg, "training on %lld feedback rows%s", (long long)rows,
           j->base[0] ? " and the base data" : "");
  es_store_job_update(s->store, j->id, "running", 0.05, msg, 0, NULL);
  if (es_train_supervised(&a, progress, j, &err)) {
    snprintf(msg, sizeof msg, "training %s: %s",
             err.code == ES_ECANCELED ? "cancelled (the server is stopping)" : "failed", err.msg);
    fail_job(j, msg);
    goto cleanup;
  }
  /* every rung of the served version's ladder, each in its own file's
   * format (the quality manager switches between them) */
  char bin[4300], odir[4300];
  snprintf(bin, sizeof bin, "%s.bin", prefix);
  snprintf(odir, sizeof odir, "%s/out", dir);
  es_store_job_update(s->store, j->id, "running", 0.9, "converting", 0, NULL);
  char rungs[8][64];
  int nr = es_repo_ladder(s->repo, j->model, rungs, 8, NULL);
  if (nr <= 0) { /* unloaded meanwhile: the file the job started from */
    const char *b = strrchr(j->src, '/');
    snprintf(rungs[0], sizeof rungs[0], "%.63s", b ? b + 1 : j->src);
    nr = 1;
  }
  if (nr > 8) nr = 8;
  char srcdir[4096];
  snprintf(srcdir, sizeof srcdir, "%s", j->src);
  char *slash = strrchr(srcdir, '/');
  if (slash) *slash = '\0';
  if (mkdir(odir, 0700)) {
    fail_job(j, "cannot make a work directory in /tmp");
    goto cleanup;
  }
  char outs[8][4400];
  const char *outp[8];
  for (int i = 0; i < nr; i++) {
    char rung[4200];
    snprintf(rung, sizeof rung, "%.4096s/%.63s", slash ? srcdir : ".", rungs[i]);
    snprintf(outs[i], sizeof outs[i], "%.4300s/%.63s", odir, rungs[i]);
    outp[i] = outs[i];
    if (make_rung(&a, rung, bin, prefix, outs[i], &err)) {
      snprintf(msg, sizeof msg, "%.63s: %.255s", rungs[i], err.msg);
      fail_job(j, msg);
      goto cleanup;
    }
  }
  if (es_repo_publish_files(s->repo, j->model, outp, nr, &err)) {
    snprintf(msg, sizeof msg, "the new version was refused: %s", err.msg);
    fail_job(j, msg);
    goto cleanup;
  }
  es_repo_entry_t e = {0};
  int n = es_repo_list(s->repo, NULL, 0);
  es_repo_entry_t *all = n > 0 ? calloc((size_t)n, sizeof *all) : NULL;
  if (all) {
    n = es_repo_list(s->repo, all, n);
    for (int i = 0; i < n; i++)
      if (strcmp(all[i].name, j->model) == 0) e = all[i];
    free(all);
  }
  snprintf(msg, sizeof msg, "version %d serving (trained on %lld feedback rows)", e.version,
           (long long)rows);
  es_store_job_update(s->store, j->id, "succeeded", 1.0, msg, e.version, NULL);
  es__log(s, "info", "component=jobs job=%lld model=%s msg=\"%s\"", (long long)j->id, j->model,
          msg);
cleanup : {
  char p[4400];
  const char *names[] = {"data.txt",  "feedback.txt", "model.bin",
                         "model.esm", "model.ftz",    "model.vec"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  snprintf(p, sizeof p, "%s/out", dir);
  DIR *od = opendir(p);
  for (struct dirent *de; od && (de = readdir(od));) {
    if (de->d_name[0] == '.') continue;
    char q[4700];
    snprintf(q, sizeof q, "%s/%s", p, de->d_name);
    unlink(q);
  }
  if (od) closedir(od);
  rmdir(p);
  rmdir(dir);
}
done:
  atomic_store(&j->done, 1);
  return NULL;
}

/* Joins finished jobs; with `all`, waits for every job (shutdown). */
void es__jobs_reap(es_server_t *s, int all) {
  pthread_mutex_lock(&s->jobs_lock);
  train_job_t **pp = (train_job_t **)&s->jobs;
  while (*pp) {
    train_job_t *j = *pp;
    if (all || atomic_load(&j->done)) {
      *pp = j->next;
      pthread_mutex_unlock(&s->jobs_lock);
      pthread_join(j->thread, NULL);
      free(j);
      pthread_mutex_lock(&s->jobs_lock);
      pp = (train_job_t **)&s->jobs;
    } else {
      pp = &j->next;
    }
  }
  pthread_mutex_unlock(&s->jobs_lock);
}

/* The model's configuration and the request's JSON object; NULL with the
 * reply set (404, 400). */
static cJSON *model_body(es_req_t *r, es_model_conf_t *conf) {
  if (es_repo_conf(r->srv->repo, r->route.model, conf)) {
    es__reply_error(r, 404, "unknown model '%s'", r->route.model);
    return NULL;
  }
  return es__parse_body(r, 1);
}

static void feedback(es_req_t *r) {
  es_server_t *s = r->srv;
  es_model_conf_t conf;
  cJSON *o = model_body(r, &conf);
  if (!o) return;
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
  const cJSON *label = cJSON_GetObjectItemCaseSensitive(o, "label");
  if (!cJSON_IsString(text) || !text->valuestring[0] || !cJSON_IsString(label) ||
      !label->valuestring[0] || strlen(label->valuestring) > 255 ||
      strlen(text->valuestring) > 65536) {
    cJSON_Delete(o);
    es__reply_error(r, 400,
                    "send {\"text\": \"...\", \"label\": \"...\"} (label 1-255 bytes, "
                    "text 1-65536)");
    return;
  }
  int64_t id = 0, n = 0;
  es_error_t err = {0};
  int rc = es_store_feedback_add(s->store, r->route.model, text->valuestring, label->valuestring,
                                 &id, &err);
  cJSON_Delete(o);
  if (rc) {
    es__reply_error(r, rc == ES_EINVAL ? 400 : 503, "%s", err.msg);
    return;
  }
  /* counted once per model, then kept: a COUNT per insert grows with the table */
  es_mstate_t *ms = es__mstate(s, r->route.model);
  n = ms ? atomic_fetch_add(&ms->feedback_total, 1) + 1 : 0;
  if (ms && n <= 0) {
    int64_t c = 0;
    if (es_store_feedback_count(s->store, r->route.model, 0, &c, NULL) == 0) {
      atomic_store(&ms->feedback_total, c);
      n = c;
    } else {
      atomic_store(&ms->feedback_total, -1);
    }
  }
  cJSON *out = cJSON_CreateObject();
  cJSON_AddNumberToObject(out, "id", (double)id);
  cJSON_AddStringToObject(out, "model", r->route.model);
  cJSON_AddNumberToObject(out, "feedback_total", (double)n);
  es__reply_json(r, 201, out);
}

static void train(es_req_t *r) {
  es_server_t *s = r->srv;
  es_model_conf_t conf;
  cJSON *o = model_body(r, &conf);
  if (!o) return;
  const cJSON *lr = cJSON_GetObjectItemCaseSensitive(o, "lr");
  const cJSON *ep = cJSON_GetObjectItemCaseSensitive(o, "epoch");
  const cJSON *fw = cJSON_GetObjectItemCaseSensitive(o, "feedback_weight");
  if ((lr && (!cJSON_IsNumber(lr) || !(lr->valuedouble > 0 && lr->valuedouble <= 10))) ||
      (ep && (!cJSON_IsNumber(ep) || !(ep->valuedouble >= 1 && ep->valuedouble <= 1000))) ||
      (fw && (!cJSON_IsNumber(fw) || !(fw->valuedouble >= 1 && fw->valuedouble <= 100)))) {
    cJSON_Delete(o);
    es__reply_error(r, 400,
                    "\"lr\" must be in (0, 10], \"epoch\" in 1..1000 and "
                    "\"feedback_weight\" in 1..100");
    return;
  }
  train_job_t *j = calloc(1, sizeof *j);
  if (!j) {
    cJSON_Delete(o);
    es__reply_error(r, 503, "out of memory");
    return;
  }
  j->srv = s;
  snprintf(j->model, sizeof j->model, "%s", r->route.model);
  j->lr = lr ? lr->valuedouble : 0;
  j->epoch = ep ? (int)ep->valuedouble : 0;
  j->weight = fw ? (int)fw->valuedouble : 5;
  cJSON_Delete(o);
  /* the repository resolved it to <models>/<model>/<data> */
  snprintf(j->base, sizeof j->base, "%s", conf.train_data);
  if (!j->base[0] || access(j->base, R_OK)) {
    free(j);
    es__reply_error(r, 409,
                    "model '%s' has no readable base training data: set [training] data "
                    "in its config.ini",
                    r->route.model);
    return;
  }
  es_served_t *sv = NULL;
  es_error_t err = {0};
  if (es_repo_acquire(s->repo, j->model, &sv, &err)) {
    free(j);
    es__reply_error(r, 503, "model '%s' is not available: %s", r->route.model, err.msg);
    return;
  }
  snprintf(j->src, sizeof j->src, "%s", sv->path);
  es_repo_release(s->repo, sv);
  es__jobs_reap(s, 0);
  pthread_mutex_lock(&s->jobs_lock);
  for (train_job_t *x = s->jobs; x; x = x->next)
    if (!atomic_load(&x->done) && strcmp(x->model, j->model) == 0) {
      int64_t busy = x->id;
      pthread_mutex_unlock(&s->jobs_lock);
      free(j);
      es__reply_error(r, 409, "job %lld is already training '%s'", (long long)busy, r->route.model);
      return;
    }
  if (es_store_job_create(s->store, j->model, "train", &j->id, &err) ||
      pthread_create(&j->thread, NULL, train_main, j)) {
    pthread_mutex_unlock(&s->jobs_lock);
    if (j->id) es_store_job_update(s->store, j->id, "failed", 1, "could not start", 0, NULL);
    free(j);
    es__reply_error(r, 503, "cannot start the job: %s", err.msg[0] ? err.msg : "no thread");
    return;
  }
  j->next = s->jobs;
  s->jobs = j;
  pthread_mutex_unlock(&s->jobs_lock);
  cJSON *out = cJSON_CreateObject();
  cJSON_AddNumberToObject(out, "job", (double)j->id);
  cJSON_AddStringToObject(out, "model", j->model);
  cJSON_AddStringToObject(out, "state", "queued");
  char url[64];
  snprintf(url, sizeof url, "/v1/jobs/%lld", (long long)j->id);
  cJSON_AddStringToObject(out, "status_url", url);
  es__reply_json(r, 202, out);
}

static void job(es_req_t *r) {
  es_job_row_t row;
  es_error_t err = {0};
  int rc = es_store_job_get(r->srv->store, r->route.job, &row, &err);
  if (rc == ES_ENOTFOUND) {
    es__reply_error(r, 404, "no job %lld", (long long)r->route.job);
    return;
  }
  if (rc) {
    es__reply_error(r, 503, "%s", err.msg);
    return;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", (double)row.id);
  cJSON_AddStringToObject(o, "model", row.model);
  cJSON_AddStringToObject(o, "kind", row.kind);
  cJSON_AddStringToObject(o, "state", row.state);
  cJSON_AddNumberToObject(o, "progress", row.progress);
  cJSON_AddStringToObject(o, "message", row.message);
  if (row.result_version) cJSON_AddNumberToObject(o, "version", row.result_version);
  cJSON_AddNumberToObject(o, "created_ms", (double)row.created_ms);
  cJSON_AddNumberToObject(o, "updated_ms", (double)row.updated_ms);
  es__reply_json(r, 200, o);
}

void es__handle_jobs(es_req_t *r) {
  if (!r->srv->store) {
    es__reply_error(r, 503, "no database (%s): set server.data to a writable directory",
                    r->srv->store_error);
    return;
  }
  switch (r->route.id) {
  case ES_R_V1_FEEDBACK: feedback(r); break;
  case ES_R_V1_TRAIN: train(r); break;
  case ES_R_V1_JOB: job(r); break;
  default: es__reply_error(r, 404, "no endpoint at %s", r->path); break;
  }
}
