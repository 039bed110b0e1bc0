/*
 * autotune.c - es_autotune(): fastText's hyperparameter search under a
 * budget of model file size and prediction latency (see autotune.h).
 *
 *   1. check: the arguments (es__train_check), TRAIN's dictionary (read
 *      once, with training's own rules: its words and labels size the
 *      search), VALID (read into memory: the metric streams it, the latency
 *      pass times its texts), OUTPUT writable, the size limit reachable;
 *   2. search until the deadline or *stop: ask() samples a trial around the
 *      centre, fit_time() shrinks its epochs to the time left, run_trial()
 *      trains it, quantizes it to the size limit (plan_ftz() computes the
 *      cutoff), and measure() scores and times it; a better fit is renamed
 *      to the best file;
 *   3. finish: the best file becomes OUTPUT.bin or OUTPUT.ftz.
 *
 * Invariants:
 *   1. until the final rename every file made is named T->tmp + something
 *      (OUTPUT.autotune-PID.*), and cleanup() removes each on every exit;
 *   2. T->best.index > 0 exactly when T->best_path holds that trial's model;
 *   3. the centre is the best fit, or, while nothing fits, the trial closest
 *      to the budget; trial 1 is the starting point itself.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/fail.h"
#include "edgeserve/autotune.h"
#include "edgeserve/predict.h"
#include "train_impl.h"
#include "vocab.h"

#define MIN_ROWS        256 /* es_quantize's k-means needs 256 rows */
#define MIN_BUCKET      10000
#define MAX_BUCKET      10000000
#define LAT_MIN_SAMPLES 1000
#define LAT_MAX_SAMPLES 20000
#define LAT_PASSES      3  /* timed passes; each text keeps its fastest */
#define LEN_HIST        64 /* distinct words by length in characters, the last bin is ">= 63" */

typedef struct valid_set {
  char *buf; /* the whole file, streamed by the metric pass */
  size_t len;
  char *tbuf; /* the texts: each line's words without its labels */
  size_t *toff, *tlen;
  size_t ntexts;
} valid_set;

typedef struct tune {
  const es_autotune_args_t *a;
  es_train_args_t base; /* trial 1 */
  /* TRAIN, from its dictionary */
  double lines, line_words; /* examples per epoch, words per example */
  int32_t nwords, nlabels;
  int64_t label_bytes;
  int64_t wlen[LEN_HIST];
  int qout; /* the output matrix can be quantized (256 labels or more) */
  valid_set v;
  double *lat; /* latency samples, ns */
  size_t nlat;
  char *tmp, *tmp_bin, *tmp_ftz, *best_path, *out_path;
  uint64_t rng;
  double t0;
  /* the search */
  es_autotune_trial_t best, closest;
  double closest_v;
  es_train_args_t centre;
  int32_t centre_bucket;   /* the centre's last nonzero bucket */
  double r_train, r_quant; /* seconds per unit of estimated work; 0 until measured */
} tune;

static int stopped(const tune *T) { return T->a->stop && *T->a->stop; }

/* ---- random numbers: splitmix64, Box-Muller ------------------------------- */

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double rng_normal(uint64_t *s) {
  double u1 = ((double)(rng_next(s) >> 11) + 0.5) * 0x1p-53;
  double u2 = ((double)(rng_next(s) >> 11) + 0.5) * 0x1p-53;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* fastText's schedule: sigma s0 until a quarter of the time, then linearly
 * down to s1 at three quarters. */
static double sigma(double s0, double s1, double t) {
  double d = t - 0.25;
  return s0 - (s0 - s1) / 0.5 * (d < 0 ? 0 : d > 0.5 ? 0.5 : d);
}

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* v * 2^N(0, sigma), within [lo, hi]. */
static double gauss_log(tune *T, double v, double lo, double hi, double s0, double s1, double t) {
  return clampd(v * pow(2.0, sigma(s0, s1, t) * rng_normal(&T->rng)), lo, hi);
}

static int32_t gauss_log_int(tune *T, double v, double lo, double hi, double s0, double s1,
                             double t) {
  return (int32_t)lround(gauss_log(T, v, lo, hi, s0, s1, t));
}

/* round(v + N(0, sigma)), within [lo, hi]: rounding keeps the step symmetric. */
static int32_t gauss_lin_int(tune *T, int32_t v, int32_t lo, int32_t hi, double s0, double s1,
                             double t) {
  return (int32_t)clampd((double)lround(v + sigma(s0, s1, t) * rng_normal(&T->rng)), lo, hi);
}

/* Three significant digits, so the printed command line trains the same. */
static double round3(double x) {
  char b[32];
  snprintf(b, sizeof b, "%.3g", x);
  return strtod(b, NULL);
}

/* ---- what TRAIN says about a trial's cost ---------------------------------- */

/* Upper bound on the distinct char n-grams of the dictionary's words
 * (fastText's computeSubwords over "<word>"). */
static double char_ngrams(const tune *T, int32_t minn, int32_t maxn) {
  if (maxn <= 0) return 0;
  double s = 0;
  for (int l = 1; l < LEN_HIST; l++)
    for (int32_t n = minn; n <= maxn; n++)
      if (l + 3 - n > 0) s += (double)T->wlen[l] * (l + 3 - n);
  return s;
}

/* Buckets beyond the distinct hashed features would only be empty rows. */
static int32_t bucket_cap(const tune *T, const es_train_args_t *p) {
  double n = T->lines * T->line_words * (p->word_ngrams - 1) + char_ngrams(T, p->minn, p->maxn);
  return (int32_t)clampd(n, MIN_BUCKET, MAX_BUCKET);
}

/* Estimated work of training p: per example, forward and backward over
 * dim x (features + output rows), plus tokenizing and hashing. */
static double work_train(const tune *T, const es_train_args_t *p) {
  double ff = p->word_ngrams + (T->nwords ? char_ngrams(T, p->minn, p->maxn) / T->nwords : 0);
  double oc = p->loss == ES_LOSS_HS   ? log2((double)T->nlabels) + 1
              : p->loss == ES_LOSS_NS ? p->neg + 1
                                      : T->nlabels;
  double per_line = 2.0 * p->dim * (T->line_words * ff + oc) + 50.0 * T->line_words * ff;
  return (double)p->epoch * T->lines * per_line;
}

/* Estimated work of quantizing p: the retraining plus the k-means. */
static double work_quant(const tune *T, const es_train_args_t *p) {
  double rows = (double)T->nwords + p->bucket;
  double fit = (double)T->a->max_size / ((p->dim + p->dsub - 1) / p->dsub + 11);
  rows = fmin(fmin(rows, fit), 65536);
  double km = 6400.0 * (rows + (p->qout ? T->nlabels : 0)) * p->dim / p->thread;
  return work_train(T, p) + km;
}

static double predict_secs(const tune *T, const es_train_args_t *p) {
  return T->r_train * work_train(T, p) + (T->a->max_size ? T->r_quant * work_quant(T, p) : 0);
}

/* Shrinks p's epochs so the trial should end by the deadline and take at
 * most a quarter of the whole duration (training cannot be interrupted, so
 * a long trial would overrun it); returns its estimated seconds (0 before
 * any trial was measured). */
static double fit_time(const tune *T, es_train_args_t *p, double remaining) {
  double est = predict_secs(T, p), limit = fmin(remaining, T->a->duration / 4);
  if (est > limit && !(T->a->fixed & ES_AUTOTUNE_EPOCH) && p->epoch > 1) {
    double e = floor(p->epoch * fmax(limit, 0) / est);
    p->epoch = e < 1 ? 1 : (int32_t)e;
    est = predict_secs(T, p);
  }
  return est;
}

/* ---- sampling a trial ---------------------------------------------------- */

static const int32_t minn_choices[] = {0, 2, 3};

static int32_t minn_index(int32_t minn) {
  for (int i = 2; i > 0; i--)
    if (minn >= minn_choices[i]) return i;
  return 0;
}

static int32_t dsub_exp(int32_t dsub) {
  int32_t e = 0;
  while (e < 4 && (1 << (e + 1)) <= dsub) e++;
  return e < 1 ? 1 : e;
}

static uint64_t ftz_fixed(int64_t dim, int64_t nlabels, int64_t label_bytes, int qout);

/* -qout (256 labels or more): searched under a latency limit, since a
 * quantized output matrix is smaller but slower; else used where it makes
 * the file smaller (fastText's autotune always uses it, but at a small dim
 * the codebook outweighs the matrix). */
static int qout_searched(const tune *T) { return T->qout && T->a->max_p99_us > 0; }

static int qout_smaller(const tune *T, int64_t dim) {
  return T->qout && ftz_fixed(dim, T->nlabels, T->label_bytes, 1) <
                        ftz_fixed(dim, T->nlabels, T->label_bytes, 0);
}

/* Makes p consistent: maxn from minn (fastText: minn + 3), or minn under a
 * fixed maxn; no n-grams under a fixed -bucket 0. */
static void resolve_ngrams(unsigned fx, es_train_args_t *p) {
  if ((fx & ES_AUTOTUNE_BUCKET) && p->bucket == 0) {
    if (!(fx & ES_AUTOTUNE_WORD_NGRAMS)) p->word_ngrams = 1;
    if (!(fx & ES_AUTOTUNE_MINN)) p->minn = 0;
    if (!(fx & ES_AUTOTUNE_MAXN)) p->maxn = 0;
  }
  if (!(fx & ES_AUTOTUNE_MAXN)) {
    p->maxn = p->minn ? p->minn + 3 : 0;
  } else if (!(fx & ES_AUTOTUNE_MINN)) {
    if (p->maxn == 0)
      p->minn = 0;
    else if (p->minn < 1)
      p->minn = p->maxn < 2 ? p->maxn : 2;
    else if (p->minn > p->maxn)
      p->minn = p->maxn;
  }
}

/* As resolve_ngrams, and buckets only where something hashes and no more
 * than can be used, the input matrix under max_matrix_bytes. */
static void resolve(tune *T, es_train_args_t *p, int32_t trial, double t) {
  unsigned fx = T->a->fixed;
  resolve_ngrams(fx, p);
  if (!(fx & ES_AUTOTUNE_BUCKET)) {
    int32_t cap = bucket_cap(T, p);
    if (p->word_ngrams <= 1 && p->maxn == 0)
      p->bucket = 0;
    else if (trial == 1)
      p->bucket = cap < 2000000 ? cap : 2000000;
    else
      p->bucket = gauss_log_int(T, T->centre_bucket, MIN_BUCKET, cap, 2.0, 1.5, t);
  } else if (p->bucket < 0) {
    p->bucket = p->word_ngrams <= 1 && p->maxn == 0 ? 0 : 2000000;
  }
  double rows = (double)T->nwords + p->bucket, lim = (double)T->a->max_matrix_bytes / 4;
  if (rows * p->dim > lim && !(fx & ES_AUTOTUNE_DIM)) {
    double d = floor(lim / rows);
    p->dim = d < 1 ? 1 : (int32_t)d;
  }
  if (rows * p->dim > lim && !(fx & ES_AUTOTUNE_BUCKET) && p->bucket > 0) {
    double b = floor(lim / p->dim) - T->nwords;
    p->bucket = b < MIN_BUCKET ? MIN_BUCKET : (int32_t)b;
  }
  /* dsub > dim quantizes exactly as dsub = dim, in a file edgeserve's loader
   * rejects (fastText 0.9.2 accepts it). */
  if (p->dsub > p->dim) p->dsub = p->dim;
  if (!qout_searched(T)) p->qout = qout_smaller(T, p->dim);
}

/* The arguments of trial number `trial` at time fraction t. */
static void ask(tune *T, int32_t trial, double t, es_train_args_t *p) {
  unsigned fx = T->a->fixed;
  *p = trial == 1 ? T->base : T->centre;
  if (trial > 1) {
    if (!(fx & ES_AUTOTUNE_EPOCH)) p->epoch = gauss_log_int(T, p->epoch, 1, 100, 2.8, 2.5, t);
    if (!(fx & ES_AUTOTUNE_LR)) p->lr = round3(gauss_log(T, p->lr, 0.01, 5.0, 1.9, 1.0, t));
    if (!(fx & ES_AUTOTUNE_DIM)) p->dim = gauss_log_int(T, p->dim, 1, 1000, 1.4, 0.3, t);
    if (!(fx & ES_AUTOTUNE_WORD_NGRAMS))
      p->word_ngrams = gauss_lin_int(T, p->word_ngrams, 1, 5, 4.3, 2.4, t);
    if (T->a->max_size && !(fx & ES_AUTOTUNE_DSUB))
      p->dsub = 1 << gauss_lin_int(T, dsub_exp(p->dsub), 1, 4, 2.0, 1.0, t);
    if (!(fx & ES_AUTOTUNE_MINN))
      p->minn = minn_choices[gauss_lin_int(T, minn_index(p->minn), 0, 2, 4.0, 1.4, t)];
    if (qout_searched(T)) p->qout = gauss_lin_int(T, p->qout, 0, 1, 1.0, 0.5, t);
    if (!(fx & ES_AUTOTUNE_LOSS) && T->a->max_p99_us > 0)
      p->loss =
          gauss_lin_int(T, p->loss == ES_LOSS_HS, 0, 1, 1.0, 0.5, t) ? ES_LOSS_HS : ES_LOSS_SOFTMAX;
  }
  resolve(T, p, trial, t);
}

/* ---- the size of a .ftz, exactly ----------------------------------------- */

/* Bytes of a .ftz that do not depend on the kept rows: header (64),
 * dictionary header (28), label entries (string, NUL, count, type), the
 * input matrix's header (1 + 21), product quantizer (16 + dim x 256 floats)
 * and norm quantizer (16 + 256 floats), the qout byte, the output matrix. */
static uint64_t ftz_fixed(int64_t dim, int64_t nlabels, int64_t label_bytes, int qout) {
  uint64_t s = 64 + 28 + (uint64_t)(label_bytes + 10 * nlabels) + 1 + 21 + 16 +
               (uint64_t)dim * 1024 + 16 + 1024 + 1;
  if (qout)
    s += 21 + (uint64_t)(nlabels * ((dim + 1) / 2)) + 16 + (uint64_t)dim * 1024 +
         (uint64_t)nlabels + 16 + 1024;
  else
    s += 16 + (uint64_t)(nlabels * dim) * 4;
  return s;
}

typedef struct ftz_plan {
  int64_t cutoff;    /* rows kept; 0: all */
  uint64_t size;     /* the file es_quantize will write */
  uint64_t min_size; /* with the fewest rows quantizing allows */
  int32_t min_row;   /* bytes of the cheapest row */
  int64_t rows;      /* input rows of the .bin */
  int fits;
} ftz_plan;

/* The largest cutoff whose .ftz (qnorm, dsub, qout) fits
 * max_size, from the trained .bin: each kept row costs its codes and norm
 * code, plus its dictionary entry (a word) or pruned-index pair (a bucket).
 * Returns 0 or ES_ENOMEM / a model-open error. */
static int plan_ftz(const tune *T, const char *bin, int32_t dsub, int qout, ftz_plan *p,
                    es_error_t *err) {
  es_model_t *m;
  int rc = es_model_open(&m, bin, NULL, err);
  if (rc) return rc;
  es_model_info_t info;
  es_model_info(m, &info);
  int64_t dim = info.input_cols, rows = info.input_rows, nw = info.nwords;
  int64_t nsubq = (dim + dsub - 1) / dsub, label_bytes = 0, words_bytes = 0;
  for (int32_t i = 0; i < info.nwords + info.nlabels; i++) {
    const char *s;
    size_t len;
    int64_t count;
    int type;
    es_model_entry(m, i, &s, &len, &count, &type);
    if (i >= info.nwords)
      label_bytes += (int64_t)len;
    else
      words_bytes += (int64_t)len + 10;
  }
  uint64_t fixed = ftz_fixed(dim, info.nlabels, label_bytes, qout);
  memset(p, 0, sizeof *p);
  p->min_row = (int32_t)(nsubq + 1 + 8);
  p->rows = rows;
  if (rows < MIN_ROWS) { /* nothing to quantize with */
    p->min_size = fixed + (uint64_t)words_bytes + (uint64_t)(rows * (nsubq + 1));
    es_model_close(m);
    return 0;
  }
  uint64_t whole = fixed + (uint64_t)words_bytes + (uint64_t)(rows * (nsubq + 1));
  if (whole <= T->a->max_size) {
    p->fits = 1;
    p->size = p->min_size = whole;
    es_model_close(m);
    return 0;
  }
  int32_t *r;
  if ((rc = es__rank_rows(m, &r, err))) goto out;
  uint64_t size = fixed;
  int64_t c = 0;
  for (; c < rows; c++) {
    const char *s;
    size_t len = 0;
    int64_t count;
    int type;
    if (r[c] < nw) es_model_entry(m, r[c], &s, &len, &count, &type);
    uint64_t cost = (uint64_t)(nsubq + 1) + (r[c] < nw ? len + 10 : 8);
    if (c == MIN_ROWS) p->min_size = size;
    if (size + cost > T->a->max_size && c >= MIN_ROWS) break;
    size += cost;
  }
  if (c >= MIN_ROWS && size <= T->a->max_size) {
    p->fits = 1;
    p->cutoff = c;
    p->size = size;
  }
out:
  free(r);
  es_model_close(m);
  return rc;
}

/* ---- measuring ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* One validation line, fed and not ended: counted as `edgeserve test`
 * counts it (k = 1, threshold 0). */
static void count_line(const es_model_t *m, es_scratch_t *s, uint64_t c[4]) {
  es_line_end(m, s);
  int32_t nlab, n = 0;
  const int32_t *labels = es_line_labels(s, &nlab);
  if (nlab == 0 || es_line_nfeatures(s) == 0) return;
  es_prediction_t top[1];
  es_line_predict(m, s, 1, 0.0f, top, 1, &n);
  c[0]++;                 /* examples */
  c[1] += (uint64_t)nlab; /* gold labels */
  c[2] += (uint64_t)n;    /* predictions */
  for (int32_t j = 0; n && j < nlab; j++)
    if (labels[j] == top[0].label) {
      c[3]++; /* correct */
      break;
    }
}

/* Scores the model at `path` on VALID and times its texts. */
static int measure(tune *T, const char *path, es_autotune_trial_t *tr, es_error_t *err) {
  es_model_t *m;
  int rc = es_model_open(&m, path, NULL, err);
  if (rc) return rc;
  es_scratch_t *s = es_scratch_new(m);
  if (!s) {
    es_model_close(m);
    return es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  /* the metric, streaming VALID as `edgeserve test` reads a file */
  uint64_t c[4] = {0, 0, 0, 0};
  size_t pos = 0;
  int open = 0;
  es_line_begin(s);
  while (pos < T->v.len) {
    int done = 0;
    open = 1;
    pos += es_line_feed(m, s, T->v.buf + pos, T->v.len - pos, &done);
    if (done) {
      count_line(m, s, c);
      es_line_begin(s);
      open = 0;
    }
  }
  if (open) count_line(m, s, c);
  double p = c[2] ? (double)c[3] / (double)c[2] : 0, r = c[1] ? (double)c[3] / (double)c[1] : 0;
  tr->nexamples = (int64_t)c[0];
  tr->metric = T->a->metric == ES_AUTOTUNE_F1 ? (p + r > 0 ? 2 * p * r / (p + r) : 0) : p;

  /* Latency: a warm-up pass, then LAT_PASSES timed passes over the same
   * texts, each text keeping its fastest time: the spread over texts is the
   * model's, while a preemption or an interrupt hitting one call (this
   * machine's other load) is not. Cost: (1 + LAT_PASSES) x nlat predictions. */
  es_prediction_t top[1];
  int32_t n;
  size_t nt = T->v.ntexts;
  for (int pass = 0; pass <= LAT_PASSES; pass++)
    for (size_t i = 0; i < T->nlat; i++) {
      size_t k = nt >= T->nlat ? i * nt / T->nlat : i % nt;
      struct timespec a, b;
      clock_gettime(CLOCK_MONOTONIC, &a);
      es_predict(m, s, T->v.tbuf + T->v.toff[k], T->v.tlen[k], 1, 0.0f, top, 1, &n);
      clock_gettime(CLOCK_MONOTONIC, &b);
      double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
      if (pass <= 1 || ns < T->lat[i]) T->lat[i] = ns;
    }
  qsort(T->lat, T->nlat, sizeof *T->lat, cmp_double);
  /* nearest rank: the smallest sample with at least q of them at or below */
  tr->p50_us = T->lat[(size_t)ceil(0.50 * (double)T->nlat) - 1] / 1000.0;
  tr->p99_us = T->lat[(size_t)ceil(0.99 * (double)T->nlat) - 1] / 1000.0;
  es_scratch_free(s);
  es_model_close(m);
  return 0;
}

/* ---- one trial ------------------------------------------------------------ */

static uint64_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* A failure that ends this trial, not the search: a diverged loss (ES_ERANGE)
 * or a trial too large for memory. */
static int trial_failure(int rc) { return rc == ES_ERANGE || rc == ES_ENOMEM; }

/* Seconds per unit of work: up at once when a trial was slower than
 * thought (the machine got busy), down by halves, so estimates err long. */
static void update_rate(double *r, double seen) {
  *r = *r == 0 || seen > *r ? seen : 0.5 * (*r + seen);
}

/* After a failed training or quantization: marks tr FAILED and returns 0
 * when the failure is the trial's own, else passes rc and e on. */
static int trial_error(int rc, const es_error_t *e, es_autotune_trial_t *tr, es_error_t *err) {
  if (!trial_failure(rc)) {
    if (err) *err = *e;
    return rc;
  }
  tr->status = ES_TRIAL_FAILED;
  memcpy(tr->note, e->msg, sizeof tr->note);
  tr->note[sizeof tr->note - 1] = '\0';
  return 0;
}

/* Runs trial tr (args filled). Returns 0 with tr->status set, 1 when *stop
 * was seen (the trial is dropped), or a negative code ending the search. */
static int run_trial(tune *T, es_autotune_trial_t *tr, es_error_t *err) {
  const es_autotune_args_t *a = T->a;
  es_error_t e = {0, -1, ""};
  double t0 = es__mono_sec();
  es_train_args_t *p = &tr->args;
  p->output = T->tmp;
  p->verbose = 0;
  p->write_vec = 0;
  p->save_output = 0;
  p->cutoff = 0;
  p->qnorm = p->retrain = 0;
  double w_train = work_train(T, p), w_quant = a->max_size ? work_quant(T, p) : 0;
  int rc = es_train_supervised(p, NULL, NULL, &e);
  if (rc) return trial_error(rc, &e, tr, err);
  double t1 = es__mono_sec();
  update_rate(&T->r_train, (t1 - t0) / w_train);
  if (stopped(T)) return 1;
  const char *path = T->tmp_bin;
  if (a->max_size) {
    ftz_plan plan;
    if ((rc = plan_ftz(T, T->tmp_bin, p->dsub, p->qout, &plan, &e)))
      return trial_error(rc, &e, tr, err);
    for (int attempt = 0; plan.fits && attempt < 3; attempt++) {
      p->cutoff = plan.cutoff;
      p->retrain = plan.cutoff > 0;
      p->qnorm = 1;
      if ((rc = es_quantize(p, NULL, NULL, &e))) return trial_error(rc, &e, tr, err);
      tr->size = file_size(T->tmp_ftz);
      if (tr->size <= a->max_size) break;
      /* The plan is exact; should the file still be larger, drop enough
       * rows to cover the excess and quantize again. */
      int64_t kept = plan.cutoff ? plan.cutoff : (int64_t)T->nwords + p->bucket;
      plan.cutoff = kept - (int64_t)((tr->size - a->max_size) / (uint64_t)plan.min_row) - 1;
      plan.fits = plan.cutoff >= MIN_ROWS;
    }
    if (!plan.fits) {
      tr->status = ES_TRIAL_TOO_BIG;
      tr->size = plan.min_size;
      if (plan.rows < MIN_ROWS)
        snprintf(tr->note, sizeof tr->note,
                 "%lld input rows: quantizing needs %d (word or char n-grams add rows)",
                 (long long)plan.rows, MIN_ROWS);
      else
        snprintf(tr->note, sizeof tr->note, "no cutoff fits: %d rows need at least %llu bytes",
                 MIN_ROWS, (unsigned long long)plan.min_size);
      return 0;
    }
    tr->quantized = 1;
    path = T->tmp_ftz;
    double t2 = es__mono_sec();
    update_rate(&T->r_quant, (t2 - t1) / w_quant);
  } else {
    tr->size = file_size(T->tmp_bin);
  }
  if (stopped(T)) return 1;
  if ((rc = measure(T, path, tr, err))) return rc;
  if (a->max_size && tr->size > a->max_size)
    tr->status = ES_TRIAL_TOO_BIG;
  else if (a->max_p99_us > 0 && tr->p99_us > a->max_p99_us)
    tr->status = ES_TRIAL_TOO_SLOW;
  else
    tr->status = ES_TRIAL_FIT;
  return 0;
}

/* How far over the budget: max of size / max_size and p99 / max_p99_us
 * over the limits set (<= 1 fits). A latency never measured (no file fit
 * the size) counts one more: such a trial is a worse guide than one that
 * was timed. */
static double violation(const tune *T, const es_autotune_trial_t *tr) {
  double v = 0;
  if (T->a->max_size) v = fmax(v, (double)tr->size / (double)T->a->max_size);
  if (T->a->max_p99_us > 0) v = isnan(tr->p99_us) ? v + 1 : fmax(v, tr->p99_us / T->a->max_p99_us);
  return v;
}

/* Better fit: higher metric, then smaller, then faster. */
static int better(const es_autotune_trial_t *x, const es_autotune_trial_t *y) {
  if (x->metric != y->metric) return x->metric > y->metric;
  if (x->size != y->size) return x->size < y->size;
  return x->p99_us < y->p99_us;
}

static void set_centre(tune *T, const es_train_args_t *p) {
  T->centre = *p;
  if (p->bucket) T->centre_bucket = p->bucket;
}

/* ---- setting up ---------------------------------------------------------- */

/* Reads VALID into memory and makes its texts (each line's words, labels
 * removed). Some line must carry a label of TRAIN's dictionary: others are
 * still timed, and scored as `edgeserve test` would (not counted). */
static int read_valid(tune *T, const es__vocab *voc, es_error_t *err) {
  const char *path = T->a->validation;
  valid_set *v = &T->v;
  FILE *f = fopen(path, "rb");
  if (!f) return es__fail(err, ES_EIO, -1, "cannot open %s: %s", path, strerror(errno));
  size_t cap = 1 << 16;
  v->buf = malloc(cap);
  int rc = v->buf ? 0 : es__fail(err, ES_ENOMEM, -1, "out of memory");
  while (!rc) {
    if (v->len == cap) {
      char *nb = realloc(v->buf, cap *= 2);
      if (!nb) {
        rc = es__fail(err, ES_ENOMEM, -1, "out of memory reading %s", path);
        break;
      }
      v->buf = nb;
    }
    size_t got = fread(v->buf + v->len, 1, cap - v->len, f);
    v->len += got;
    if (got == 0) {
      if (ferror(f)) rc = es__fail(err, ES_EIO, -1, "cannot read %s: %s", path, strerror(errno));
      break;
    }
  }
  fclose(f);
  if (rc) return rc;
  size_t nlines = 0;
  for (size_t i = 0; i < v->len; i++) nlines += v->buf[i] == '\n';
  nlines += v->len && v->buf[v->len - 1] != '\n';
  v->tbuf = malloc(v->len + 1);
  v->toff = malloc((nlines + 1) * sizeof *v->toff);
  v->tlen = malloc((nlines + 1) * sizeof *v->tlen);
  if (!v->tbuf || !v->toff || !v->tlen) return es__fail(err, ES_ENOMEM, -1, "out of memory");
  size_t labelled = 0, known = 0, out = 0, i = 0, llen = strlen(T->base.label);
  while (i < v->len) {
    int has_label = 0, has_known = 0;
    v->toff[v->ntexts] = out;
    while (i < v->len && v->buf[i] != '\n') {
      size_t s = i;
      while (i < v->len && !strchr(" \r\t\v\f\n", v->buf[i]) && v->buf[i] != '\0') i++;
      size_t n = i - s;
      if (n >= llen && !memcmp(v->buf + s, T->base.label, llen)) {
        int32_t id = es__vocab_find(voc, v->buf + s, n);
        has_label = 1;
        has_known |= id >= 0 && voc->e[id].type == 1;
      } else if (n) {
        if (out > v->toff[v->ntexts]) v->tbuf[out++] = ' ';
        memcpy(v->tbuf + out, v->buf + s, n);
        out += n;
      }
      if (i < v->len && v->buf[i] != '\n') i++;
    }
    i++; /* the newline */
    v->tlen[v->ntexts] = out - v->toff[v->ntexts];
    v->ntexts++;
    labelled += has_label;
    known += has_known;
  }
  if (labelled == 0)
    return es__fail(err, ES_EINVAL, -1,
                    "%s has no labels: validation lines need a token starting with \"%s\" to be "
                    "scored",
                    path, T->base.label);
  if (known == 0)
    return es__fail(err, ES_EINVAL, -1,
                    "no line of %s has a label that %s has: the validation file must be labelled "
                    "like the training file",
                    path, T->base.input);
  T->nlat = v->ntexts < LAT_MIN_SAMPLES   ? LAT_MIN_SAMPLES
            : v->ntexts > LAT_MAX_SAMPLES ? LAT_MAX_SAMPLES
                                          : v->ntexts;
  T->lat = malloc(T->nlat * sizeof *T->lat);
  if (!T->lat) return es__fail(err, ES_ENOMEM, -1, "out of memory");
  return 0;
}

/* Reads TRAIN's dictionary as training will, for the sizes that steer the
 * search; then VALID against it. */
static int read_data(tune *T, es_error_t *err) {
  const es_train_args_t *b = &T->base;
  es__vocab voc;
  int rc = es__vocab_init(&voc, b->label, err);
  if (rc) return rc;
  rc = es__vocab_read(&voc, b->input, b->min_count, b->min_count_label, err);
  if (!rc && voc.nlabels == 0)
    rc = es__fail(err, ES_EINVAL, -1,
                  "%s has no labels: every training line needs at least one token starting "
                  "with \"%s\"",
                  b->input, b->label);
  if (!rc && voc.nwords == 0)
    rc = es__fail(err, ES_EINVAL, -1, "%s has labels but no words", b->input);
  if (!rc) {
    int64_t label_tokens = 0, eos = 1;
    for (int32_t i = 0; i < voc.n; i++) {
      const char *s = es__vocab_str(&voc, i);
      if (voc.e[i].type == 1) {
        label_tokens += voc.e[i].count;
        T->label_bytes += voc.e[i].len;
        continue;
      }
      if (voc.e[i].len == 4 && !memcmp(s, "</s>", 4)) eos = voc.e[i].count;
      int64_t chars = 0;
      for (uint32_t j = 0; j < voc.e[i].len; j++) chars += ((unsigned char)s[j] & 0xC0) != 0x80;
      T->wlen[chars < LEN_HIST ? chars : LEN_HIST - 1]++;
    }
    T->nwords = voc.nwords;
    T->nlabels = voc.nlabels;
    T->qout = voc.nlabels >= MIN_ROWS;
    T->base.qout = T->qout; /* where searched, it starts as fastText's rule */
    T->lines = (double)(eos > 0 ? eos : 1);
    T->line_words = (double)(voc.ntokens - label_tokens) / T->lines;
    rc = read_valid(T, &voc, err);
  }
  es__vocab_free(&voc);
  return rc;
}

static void cleanup(tune *T) {
  static const char *const ext[] = {".bin", ".bin.tmp", ".ftz", ".ftz.tmp", ".vec", ".output"};
  for (size_t i = 0; T->tmp && i < sizeof ext / sizeof *ext; i++) {
    char *p = es__train_path(T->tmp, ext[i]);
    if (p) remove(p);
    free(p);
  }
  if (T->best_path) remove(T->best_path);
  free(T->tmp);
  free(T->tmp_bin);
  free(T->tmp_ftz);
  free(T->best_path);
  free(T->out_path);
  free(T->v.buf);
  free(T->v.tbuf);
  free(T->v.toff);
  free(T->v.tlen);
  free(T->lat);
}

/* Checks what can be checked before any work. */
static int check(tune *T, es_error_t *err) {
  const es_autotune_args_t *a = T->a;
  if (!a->validation || !*a->validation)
    return es__fail(err, ES_EINVAL, -1, "a validation file is required (-validation FILE)");
  if (!(a->duration > 0) || !isfinite(a->duration))
    return es__fail(err, ES_EINVAL, -1, "the duration must be more than 0 seconds, got %g",
                    a->duration);
  if (!(a->max_p99_us >= 0) || !isfinite(a->max_p99_us))
    return es__fail(err, ES_EINVAL, -1, "the p99 limit must be a positive number of us, got %g",
                    a->max_p99_us);
  if (a->metric != ES_AUTOTUNE_P1 && a->metric != ES_AUTOTUNE_F1)
    return es__fail(err, ES_EINVAL, -1, "unknown metric %d", (int)a->metric);
  if (a->train.pretrained_vectors && !(a->fixed & ES_AUTOTUNE_DIM))
    return es__fail(err, ES_EINVAL, -1,
                    "-pretrainedVectors needs -dim (the vectors' dimension): the search must not "
                    "change it");
  if (a->train.normalize)
    return es__fail(err, ES_EUNSUPPORTED, -1,
                    "autotune does not take a normalizer yet: normalize the training and "
                    "validation files first, or train with -normalize the command autotune "
                    "prints");
  if ((a->fixed & ES_AUTOTUNE_DSUB) && a->train.dsub < 1)
    return es__fail(err, ES_EINVAL, -1, "-dsub must be >= 1, got %d", a->train.dsub);
  es_train_args_t c = T->base;
  if (!(a->fixed & ES_AUTOTUNE_BUCKET)) c.bucket = -1;
  int rc = es__train_check(&c, err);
  if (rc) return rc;
  if (!a->max_matrix_bytes)
    return es__fail(err, ES_EINVAL, -1, "max_matrix_bytes must be more than 0");
  return 0;
}

/* Makes the temporary names and proves OUTPUT's directory writable. */
static int make_paths(tune *T, es_error_t *err) {
  const char *out = T->a->train.output;
  int ftz = T->a->max_size > 0;
  char suffix[48];
  snprintf(suffix, sizeof suffix, ".autotune-%ld", (long)getpid());
  T->tmp = es__train_path(out, suffix);
  T->tmp_bin = T->tmp ? es__train_path(T->tmp, ".bin") : NULL;
  T->tmp_ftz = T->tmp ? es__train_path(T->tmp, ".ftz") : NULL;
  T->best_path = T->tmp ? es__train_path(T->tmp, ftz ? ".best.ftz" : ".best.bin") : NULL;
  T->out_path = es__train_path(out, ftz ? ".ftz" : ".bin");
  if (!T->tmp || !T->tmp_bin || !T->tmp_ftz || !T->best_path || !T->out_path)
    return es__fail(err, ES_ENOMEM, -1, "out of memory");
  FILE *f = fopen(T->tmp_bin, "wb");
  if (!f)
    return es__fail(err, ES_EIO, -1, "cannot write beside %s (%s): %s", out, T->tmp_bin,
                    strerror(errno));
  fclose(f);
  remove(T->tmp_bin);
  return 0;
}

/* ---- the search ---------------------------------------------------------- */

es_autotune_args_t es_autotune_default_args(void) {
  es_autotune_args_t a;
  memset(&a, 0, sizeof a);
  a.train = es_train_default_args();
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  a.train.thread = n < 1 ? 1 : n > 12 ? 12 : (int32_t)n;
  a.train.verbose = 0;
  a.train.write_vec = 0;
  a.duration = 300;
  a.metric = ES_AUTOTUNE_P1;
  /* a quarter of the machine's memory, at most 1 GiB: a trial must not push
   * a 1 GB board into swap */
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  uint64_t quarter = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 4 : 0;
  a.max_matrix_bytes = quarter && quarter < ((uint64_t)1 << 30) ? quarter : (uint64_t)1 << 30;
  return a;
}

static void no_fit_message(const tune *T, const es_autotune_result_t *res, es_error_t *err) {
  const es_autotune_args_t *a = T->a;
  char why[200] = "";
  size_t n = 0;
  if (a->max_size && res->too_big)
    n += (size_t)snprintf(why + n, sizeof why - n, "%d over the size limit (%llu bytes)",
                          res->too_big, (unsigned long long)a->max_size);
  if (a->max_p99_us > 0 && res->too_slow && n < sizeof why)
    n += (size_t)snprintf(why + n, sizeof why - n, "%s%d over the p99 limit (%g us)", n ? ", " : "",
                          res->too_slow, a->max_p99_us);
  if (res->failed && n < sizeof why)
    snprintf(why + n, sizeof why - n, "%s%d failed", n ? ", " : "", res->failed);
  if (res->trials == 0)
    es__fail(err, ES_ERANGE, -1, "no trial finished (stopped after %.1f s)", res->seconds);
  else
    es__fail(err, ES_ERANGE, -1, "no trial fit the budget: of %d trials, %s", res->trials, why);
}

int es_autotune(const es_autotune_args_t *a, es_autotune_result_t *res,
                es_autotune_trial_fn on_trial, void *ctx, es_error_t *err) {
  tune T;
  memset(&T, 0, sizeof T);
  memset(res, 0, sizeof *res);
  res->best.metric = res->best.p50_us = res->best.p99_us = NAN;
  T.a = a;
  T.t0 = es__mono_sec();
  T.base = a->train;
  T.base.write_vec = 0;
  if (!T.base.label || !*T.base.label) T.base.label = "__label__";
  if (!(a->fixed & ES_AUTOTUNE_LOSS)) T.base.loss = ES_LOSS_SOFTMAX;
  if (!(a->fixed & ES_AUTOTUNE_DSUB) && a->max_size) T.base.dsub = 2;
  resolve_ngrams(a->fixed, &T.base);
  T.rng = (uint64_t)(int64_t)a->train.seed * 0x9e3779b97f4a7c15ull + 1;
  T.closest_v = INFINITY;
  T.closest.metric = T.closest.p50_us = T.closest.p99_us = NAN;
  int rc = check(&T, err);
  if (!rc) rc = read_data(&T, err);
  if (!rc && a->max_size) {
    int64_t dim = a->fixed & ES_AUTOTUNE_DIM ? a->train.dim : 1;
    int32_t dsub = a->fixed & ES_AUTOTUNE_DSUB ? a->train.dsub : 16;
    int qout = qout_smaller(&T, dim);
    uint64_t least = ftz_fixed(dim, T.nlabels, T.label_bytes, qout) +
                     (uint64_t)MIN_ROWS * (uint64_t)((dim + dsub - 1) / dsub + 1 + 8);
    if (least > a->max_size)
      rc = es__fail(err, ES_ERANGE, -1,
                    "no model of %s fits %llu bytes: with %d labels%s the smallest .ftz (dim "
                    "%lld, %d rows) is %llu bytes",
                    a->train.input, (unsigned long long)a->max_size, T.nlabels,
                    qout ? " (output quantized)" : "", (long long)dim, MIN_ROWS,
                    (unsigned long long)least);
  }
  if (!rc) rc = make_paths(&T, err);
  if (rc) {
    cleanup(&T);
    return rc;
  }
  T.centre = T.base;
  T.centre_bucket = 2000000;

  for (int32_t trial = 1;; trial++) {
    double elapsed = es__mono_sec() - T.t0, remaining = a->duration - elapsed;
    if (stopped(&T) || (trial > 1 && remaining <= 0)) break;
    es_autotune_trial_t tr;
    memset(&tr, 0, sizeof tr);
    tr.index = trial;
    tr.metric = tr.p50_us = tr.p99_us = NAN;
    ask(&T, trial, fmin(1.0, elapsed / a->duration), &tr.args);
    /* Do not start what cannot end near the deadline. */
    double est = trial > 1 ? fit_time(&T, &tr.args, remaining) : 0;
    if (trial > 1 && est > 1.5 * remaining) break;
    double t0 = es__mono_sec();
    rc = run_trial(&T, &tr, err);
    if (rc < 0) break;
    if (rc == 1) { /* stopped during the trial: dropped */
      rc = 0;
      break;
    }
    tr.seconds = es__mono_sec() - t0;
    res->trials++;
    int is_best = 0;
    switch (tr.status) {
    case ES_TRIAL_FIT: res->fitted++; break;
    case ES_TRIAL_TOO_BIG: res->too_big++; break;
    case ES_TRIAL_TOO_SLOW: res->too_slow++; break;
    case ES_TRIAL_FAILED: res->failed++; break;
    }
    if (tr.status == ES_TRIAL_FIT && (T.best.index == 0 || better(&tr, &T.best))) {
      if (rename(tr.quantized ? T.tmp_ftz : T.tmp_bin, T.best_path) != 0) {
        rc = es__fail(err, ES_EIO, -1, "cannot rename to %s: %s", T.best_path, strerror(errno));
        break;
      }
      T.best = tr;
      is_best = 1;
      set_centre(&T, &tr.args);
    } else if (tr.status != ES_TRIAL_FIT && tr.status != ES_TRIAL_FAILED) {
      double v = violation(&T, &tr);
      if (v < T.closest_v || (v == T.closest_v && tr.metric > T.closest.metric)) {
        T.closest = tr;
        T.closest_v = v;
        if (T.best.index == 0) set_centre(&T, &tr.args);
      }
    }
    if (on_trial) on_trial(&tr, is_best, ctx);
  }

  res->seconds = es__mono_sec() - T.t0;
  if (!rc && T.best.index == 0) {
    res->best = T.closest;
    res->best.args.output = a->train.output;
    no_fit_message(&T, res, err);
    rc = ES_ERANGE;
  } else if (!rc) {
    if (rename(T.best_path, T.out_path) != 0)
      rc = es__fail(err, ES_EIO, -1, "cannot rename %s to %s: %s", T.best_path, T.out_path,
                    strerror(errno));
    res->best = T.best;
    res->best.args.output = a->train.output;
  }
  cleanup(&T);
  return rc;
}
