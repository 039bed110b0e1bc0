/*
 * sgd.c - fastText's supervised training loop (see sgd.h).
 *
 * Per example (fastText's Model::update): hidden = mean of the feature rows;
 * the loss walks the output rows it touches, each time adding
 * alpha * row to the gradient and alpha * hidden to the row (alpha =
 * lr * (target - p)); finally gradient / nfeatures is added to every feature
 * row. Element-wise loops are written for the vectorizer (built -O3, with an
 * AVX2 clone on x86-64); sums that fastText does sequentially (dot products)
 * stay sequential, so every machine computes the same floats.
 *
 * Rows are shared between threads without locks, as in fastText: a
 * concurrent update of the same row may lose an addition, which SGD
 * tolerates. One thread is fully deterministic.
 */
#include "sgd.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/clock.h"
#include "../common/fail.h"
#include "../common/splitmix.h"

#define READ_BLOCK         (64 * 1024)
#define SIGMOID_TABLE_SIZE 512
#define MAX_SIGMOID        8
#define LOG_TABLE_SIZE     512

/* An AVX2 clone of the element-wise loops, picked at load time (ifunc).
 * Not under ThreadSanitizer: its instrumented ifunc resolver runs during
 * relocation, before the TSan runtime is up, and crashes the program. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define ES_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ES_CLONES
#endif

/* ---- random numbers: splitmix64-seeded xoshiro128++ -------------------- */

typedef struct rng {
  uint32_t s[4];
} rng_t;

static void rng_seed(rng_t *r, uint64_t seed) {
  uint64_t a = es__splitmix64(&seed), b = es__splitmix64(&seed);
  r->s[0] = (uint32_t)a;
  r->s[1] = (uint32_t)(a >> 32);
  r->s[2] = (uint32_t)b;
  r->s[3] = (uint32_t)(b >> 32) | 1;
}

static inline uint32_t rotl32(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static inline uint32_t rng_next(rng_t *r) {
  uint32_t *s = r->s;
  uint32_t out = rotl32(s[0] + s[3], 7) + s[0];
  uint32_t t = s[1] << 9;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl32(s[3], 11);
  return out;
}

/* Uniform in [0, n), n >= 1 (multiply-shift; bias < n / 2^32). */
static inline uint32_t rng_below(rng_t *r, uint32_t n) {
  return (uint32_t)(((uint64_t)rng_next(r) * n) >> 32);
}

void es__sgd_uniform(float *x, int64_t n, float bound, uint64_t seed) {
  rng_t r;
  rng_seed(&r, seed ^ 0x5eedf00dull);
  for (int64_t i = 0; i < n; i++) {
    /* 24 random bits: a float in [0, 1) exactly, then [-bound, bound). */
    float u = (float)(rng_next(&r) >> 8) * (1.0f / 16777216.0f);
    x[i] = (2.0f * u - 1.0f) * bound;
  }
}

/* ---- element-wise kernels ------------------------------------------------ */

ES_CLONES static void axpy2(float *restrict g, float *restrict w, const float *restrict h, float a,
                            int n) {
  /* g += a * w (w before its update); w += a * h: fastText's order. */
  for (int j = 0; j < n; j++) {
    float wj = w[j];
    g[j] += a * wj;
    w[j] = wj + a * h[j];
  }
}

ES_CLONES static void add_to(float *restrict w, const float *restrict g, int n) {
  for (int j = 0; j < n; j++) w[j] += g[j];
}

ES_CLONES static void scale(float *restrict x, float a, int n) {
  for (int j = 0; j < n; j++) x[j] *= a;
}

static inline float dot(const float *a, const float *b, int n) {
  float d = 0.0f;
  for (int j = 0; j < n; j++) d += a[j] * b[j];
  return d;
}

/* ---- shared state -------------------------------------------------------- */

typedef struct hs_path {
  int32_t *node; /* output rows along the path to the root */
  uint8_t *code; /* 1: the node is a right child */
  int32_t len;
} hs_path;

typedef struct shared {
  const es__sgd *t;
  float sigmoid[SIGMOID_TABLE_SIZE + 1];
  float logt[LOG_TABLE_SIZE + 1];
  /* negative sampling: alias table over labels, weights count^0.5 */
  float *alias_p;
  int32_t *alias_i;
  /* hs */
  hs_path *paths;
  int32_t *path_nodes;
  uint8_t *path_codes;
  off_t file_size;
  _Atomic int64_t token_count;
  _Atomic int stop; /* 1: error or diverged */
  _Atomic float loss0;
  int failed;
  es_error_t err;
  pthread_mutex_t lock;
} shared_t;

static void fail_shared(shared_t *sh, const es_error_t *e) {
  pthread_mutex_lock(&sh->lock);
  if (!sh->failed) {
    sh->failed = 1;
    sh->err = *e;
  }
  pthread_mutex_unlock(&sh->lock);
  atomic_store(&sh->stop, 1);
}

static inline float fsigmoid(const shared_t *sh, float x) {
  if (x < -MAX_SIGMOID) return 0.0f;
  if (x > MAX_SIGMOID) return 1.0f;
  int64_t i = (int64_t)((x + MAX_SIGMOID) * SIGMOID_TABLE_SIZE / MAX_SIGMOID / 2);
  return sh->sigmoid[i];
}

static inline float flog(const shared_t *sh, float x) {
  if (x > 1.0f) return 0.0f;
  int64_t i = (int64_t)(x * LOG_TABLE_SIZE);
  return sh->logt[i];
}

/* ---- per-thread state ---------------------------------------------------- */

typedef struct worker {
  shared_t *sh;
  int id;
  rng_t rng;
  float *hidden, *grad, *output;
  es_scratch_t *s;
  FILE *f;
  char *buf;
  size_t buf_len, buf_pos;
  double loss_sum;
  int64_t nexamples;
} worker_t;

static float binary_logistic(worker_t *w, int32_t target, int label, float lr) {
  const es__sgd *t = w->sh->t;
  float *row = t->wo + (size_t)target * t->dim;
  float score = fsigmoid(w->sh, dot(row, w->hidden, t->dim));
  float alpha = lr * ((float)label - score);
  axpy2(w->grad, row, w->hidden, alpha, t->dim);
  return label ? -flog(w->sh, score) : -flog(w->sh, 1.0f - score);
}

static int32_t negative(worker_t *w) {
  const shared_t *sh = w->sh;
  uint32_t i = rng_below(&w->rng, (uint32_t)sh->t->osz);
  float u = (float)(rng_next(&w->rng) >> 8) * (1.0f / 16777216.0f);
  return u < sh->alias_p[i] ? (int32_t)i : sh->alias_i[i];
}

static float forward(worker_t *w, const int32_t *labels, int32_t nlab, float lr) {
  const es__sgd *t = w->sh->t;
  int dim = t->dim;
  switch (t->loss) {
  case ES_LOSS_OVA: {
    float loss = 0.0f;
    for (int32_t i = 0; i < t->osz; i++) {
      int match = 0;
      for (int32_t k = 0; k < nlab && !match; k++) match = labels[k] == i;
      loss += binary_logistic(w, i, match, lr);
    }
    return loss;
  }
  case ES_LOSS_NS: {
    int32_t target = labels[nlab == 1 ? 0 : rng_below(&w->rng, (uint32_t)nlab)];
    float loss = binary_logistic(w, target, 1, lr);
    for (int32_t n = 0; n < t->neg; n++) {
      int32_t neg;
      do neg = negative(w);
      while (neg == target && t->osz > 1);
      if (neg == target) break;
      loss += binary_logistic(w, neg, 0, lr);
    }
    return loss;
  }
  case ES_LOSS_HS: {
    int32_t target = labels[nlab == 1 ? 0 : rng_below(&w->rng, (uint32_t)nlab)];
    const hs_path *p = &w->sh->paths[target];
    float loss = 0.0f;
    for (int32_t i = 0; i < p->len; i++) loss += binary_logistic(w, p->node[i], p->code[i], lr);
    return loss;
  }
  default: { /* softmax */
    int32_t target = labels[nlab == 1 ? 0 : rng_below(&w->rng, (uint32_t)nlab)];
    float *out = w->output;
    t->dm->k->dot_rows((const uint8_t *)t->wo, t->osz, dim, w->hidden, out);
    float max = out[0], z = 0.0f;
    for (int32_t i = 1; i < t->osz; i++)
      if (out[i] > max) max = out[i];
    for (int32_t i = 0; i < t->osz; i++) {
      out[i] = expf(out[i] - max);
      z += out[i];
    }
    for (int32_t i = 0; i < t->osz; i++) out[i] /= z;
    for (int32_t i = 0; i < t->osz; i++) {
      float alpha = lr * ((float)(i == target) - out[i]);
      axpy2(w->grad, t->wo + (size_t)i * dim, w->hidden, alpha, dim);
    }
    return -flog(w->sh, out[target]);
  }
  }
}

/* fastText's Model::update for one line. */
static void update(worker_t *w, const int32_t *feats, int64_t nf, const int32_t *labels,
                   int32_t nlab, float lr) {
  const es__sgd *t = w->sh->t;
  int dim = t->dim;
  const uint8_t *base = (const uint8_t *)t->wi;
  for (int64_t i = 0; i < nf && i < 64; i++) __builtin_prefetch(t->wi + (size_t)feats[i] * dim);
  memset(w->hidden, 0, (size_t)dim * sizeof(float));
  for (int64_t i = 0; i < nf; i += 1 << 20) {
    int64_t c = nf - i < (1 << 20) ? nf - i : (1 << 20);
    t->dm->k->add_rows(w->hidden, base, feats + i, (int)c, dim);
  }
  scale(w->hidden, (float)(1.0 / (double)nf), dim);
  memset(w->grad, 0, (size_t)dim * sizeof(float));
  float loss = forward(w, labels, nlab, lr);
  w->loss_sum += loss;
  w->nexamples++;
  scale(w->grad, (float)(1.0 / (double)nf), dim);
  for (int64_t i = 0; i < nf; i++) add_to(t->wi + (size_t)feats[i] * dim, w->grad, dim);
}

/* ---- reading lines ------------------------------------------------------- */

/* Fills the buffer; at the end of the file rewinds (fastText's reset).
 * Returns 1 when the end was reached (the caller ends the line), 0 on data,
 * -1 on error. */
static int refill(worker_t *w, es_error_t *e) {
  w->buf_len = fread(w->buf, 1, READ_BLOCK, w->f);
  w->buf_pos = 0;
  if (w->buf_len) return 0;
  if (ferror(w->f)) {
    es__fail(e, ES_EIO, -1, "cannot read %s: %s", w->sh->t->input, strerror(errno));
    return -1;
  }
  if (fseeko(w->f, 0, SEEK_SET) != 0) {
    es__fail(e, ES_EIO, -1, "cannot seek in %s: %s", w->sh->t->input, strerror(errno));
    return -1;
  }
  return 1;
}

/* Reads the next line's features into the scratch (es_line_end done).
 * Returns 0, or -1 with *e filled. */
static int next_line(worker_t *w, es_error_t *e) {
  const es_model_t *m = w->sh->t->dm;
  es_line_begin(w->s);
  for (;;) {
    if (w->buf_pos == w->buf_len) {
      int r = refill(w, e);
      if (r < 0) return -1;
      if (r > 0) break; /* end of file ends the line */
    }
    int done;
    size_t used = es_line_feed(m, w->s, w->buf + w->buf_pos, w->buf_len - w->buf_pos, &done);
    w->buf_pos += used;
    if (done) break;
  }
  es_line_end(m, w->s);
  return 0;
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  shared_t *sh = w->sh;
  const es__sgd *t = sh->t;
  es_error_t e = {0, -1, ""};
  int64_t total = (int64_t)t->epoch * t->ntokens, local = 0;
  off_t start = (off_t)((double)sh->file_size * w->id / t->thread);
  if (fseeko(w->f, start, SEEK_SET) != 0) {
    es__fail(&e, ES_EIO, -1, "cannot seek in %s: %s", t->input, strerror(errno));
    fail_shared(sh, &e);
    return NULL;
  }
  w->buf_len = w->buf_pos = 0;
  while (atomic_load_explicit(&sh->token_count, memory_order_relaxed) < total &&
         !atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
    double progress =
        (double)atomic_load_explicit(&sh->token_count, memory_order_relaxed) / (double)total;
    float lr = (float)(t->lr * (1.0 - progress));
    if (next_line(w, &e)) {
      fail_shared(sh, &e);
      return NULL;
    }
    local += es__line_ntokens(w->s);
    int64_t nf;
    int oom;
    const int32_t *feats = es__line_features(w->s, &nf, &oom);
    int32_t nlab;
    const int32_t *labels = es_line_labels(w->s, &nlab);
    if (oom) {
      es__fail(&e, ES_ENOMEM, -1, "out of memory: a line of %s has too many features", t->input);
      fail_shared(sh, &e);
      return NULL;
    }
    if (nlab > 0 && nf > 0) update(w, feats, nf, labels, nlab, lr);
    if (local > t->lr_update_rate) {
      atomic_fetch_add_explicit(&sh->token_count, local, memory_order_relaxed);
      local = 0;
      if (w->id == 0 && w->nexamples) {
        float avg = (float)(w->loss_sum / (double)w->nexamples);
        atomic_store_explicit(&sh->loss0, avg, memory_order_relaxed);
        if (!isfinite(avg)) {
          es__fail(&e, ES_ERANGE, -1,
                   "training diverged (the loss is not finite): try a smaller -lr");
          fail_shared(sh, &e);
          return NULL;
        }
      }
    }
  }
  return NULL;
}

/* ---- set-up ---------------------------------------------------------------- */

/* Walker's alias method over count^0.5: the distribution of fastText's
 * 10M-entry negative table, in 8 bytes per label. */
static int build_alias(shared_t *sh) {
  const es__sgd *t = sh->t;
  int32_t n = t->osz;
  sh->alias_p = malloc((size_t)n * sizeof *sh->alias_p);
  sh->alias_i = malloc((size_t)n * sizeof *sh->alias_i);
  double *q = malloc((size_t)n * sizeof *q);
  int32_t *small = malloc((size_t)n * sizeof *small), *large = malloc((size_t)n * sizeof *large);
  int ok = sh->alias_p && sh->alias_i && q && small && large;
  if (ok) {
    double z = 0.0;
    for (int32_t i = 0; i < n; i++) z += sqrt((double)t->label_counts[i]);
    int32_t ns = 0, nl = 0;
    for (int32_t i = 0; i < n; i++) {
      q[i] = z > 0 ? sqrt((double)t->label_counts[i]) * n / z : 1.0;
      sh->alias_i[i] = i;
      if (q[i] < 1.0)
        small[ns++] = i;
      else
        large[nl++] = i;
    }
    while (ns && nl) {
      int32_t s = small[--ns], l = large[nl - 1];
      sh->alias_p[s] = (float)q[s];
      sh->alias_i[s] = l;
      q[l] -= 1.0 - q[s];
      if (q[l] < 1.0) {
        nl--;
        small[ns++] = l;
      }
    }
    while (nl) sh->alias_p[large[--nl]] = 1.0f;
    while (ns) sh->alias_p[small[--ns]] = 1.0f;
  }
  free(q);
  free(small);
  free(large);
  return ok ? 0 : -1;
}

/* Each label's path to the root of fastText's Huffman tree (es__huffman)
 * as (output row, code) pairs: the row is the inner node's index - osz, the
 * code 1 for a right child. */
static int build_paths(shared_t *sh) {
  const es__sgd *t = sh->t;
  int32_t n = t->osz, total = 2 * n - 1;
  int64_t *count = malloc((size_t)total * sizeof *count);
  int32_t *left = malloc((size_t)total * sizeof *left),
          *right = malloc((size_t)total * sizeof *right);
  int32_t *parent = malloc((size_t)total * sizeof *parent);
  uint8_t *binary = calloc((size_t)total, 1);
  sh->paths = calloc((size_t)n, sizeof *sh->paths);
  int ok = count && left && right && parent && binary && sh->paths;
  if (ok) {
    for (int32_t i = 0; i < n; i++) count[i] = t->label_counts[i];
    es__huffman(count, n, left, right);
    for (int32_t i = 0; i < total; i++) parent[i] = -1;
    for (int32_t i = n; i < total; i++) {
      parent[left[i]] = i;
      parent[right[i]] = i;
      binary[right[i]] = 1;
    }
    int64_t len = 0;
    for (int32_t i = 0; i < n; i++)
      for (int32_t j = i; parent[j] != -1; j = parent[j]) len++;
    sh->path_nodes = malloc((size_t)(len ? len : 1) * sizeof *sh->path_nodes);
    sh->path_codes = malloc((size_t)(len ? len : 1));
    ok = sh->path_nodes && sh->path_codes;
    int64_t at = 0;
    for (int32_t i = 0; ok && i < n; i++) {
      hs_path *p = &sh->paths[i];
      p->node = sh->path_nodes + at;
      p->code = sh->path_codes + at;
      for (int32_t j = i; parent[j] != -1; j = parent[j]) {
        p->node[p->len] = parent[j] - n;
        p->code[p->len] = binary[j];
        p->len++;
      }
      at += p->len;
    }
  }
  free(count);
  free(left);
  free(right);
  free(parent);
  free(binary);
  return ok ? 0 : -1;
}

static void free_worker(worker_t *w) {
  free(w->hidden);
  free(w->grad);
  free(w->output);
  free(w->buf);
  es_scratch_free(w->s);
  if (w->f) fclose(w->f);
}

int es__sgd_run(const es__sgd *t, es_error_t *err) {
  if (t->thread < 1 || t->osz < 1 || t->dim < 1 || t->epoch < 0)
    return es__fail(err, ES_EINVAL, -1, "invalid training parameters");
  shared_t *sh = calloc(1, sizeof *sh);
  worker_t *ws = calloc((size_t)t->thread, sizeof *ws);
  pthread_t *tids = calloc((size_t)t->thread, sizeof *tids);
  if (!sh || !ws || !tids) {
    free(sh);
    free(ws);
    free(tids);
    return es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  sh->t = t;
  pthread_mutex_init(&sh->lock, NULL);
  atomic_init(&sh->token_count, 0);
  atomic_init(&sh->stop, 0);
  atomic_init(&sh->loss0, 0.0f);
  for (int i = 0; i <= SIGMOID_TABLE_SIZE; i++) {
    float x = (float)(i * 2 * MAX_SIGMOID) / SIGMOID_TABLE_SIZE - MAX_SIGMOID;
    sh->sigmoid[i] = (float)(1.0 / (1.0 + exp(-(double)x)));
  }
  for (int i = 0; i <= LOG_TABLE_SIZE; i++)
    sh->logt[i] = (float)log(((double)i + 1e-5) / LOG_TABLE_SIZE);
  int rc = 0;
  if (t->loss == ES_LOSS_NS && build_alias(sh)) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
  if (!rc && t->loss == ES_LOSS_HS && build_paths(sh))
    rc = es__fail(err, ES_ENOMEM, -1, "out of memory");

  int started = 0;
  for (int i = 0; !rc && i < t->thread; i++) {
    worker_t *w = &ws[i];
    w->sh = sh;
    w->id = i;
    rng_seed(&w->rng, (uint64_t)(int64_t)t->seed + (uint64_t)i);
    w->hidden = malloc((size_t)t->dim * sizeof(float));
    w->grad = malloc((size_t)t->dim * sizeof(float));
    w->output = malloc((size_t)t->osz * sizeof(float));
    w->buf = malloc(READ_BLOCK);
    w->s = es__scratch_collect_new(t->dm);
    if (!w->hidden || !w->grad || !w->output || !w->buf || !w->s) {
      rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
      break;
    }
    w->f = fopen(t->input, "rb");
    if (!w->f) {
      rc = es__fail(err, ES_EIO, -1, "cannot open %s: %s", t->input, strerror(errno));
      break;
    }
  }
  if (!rc) {
    if (fseeko(ws[0].f, 0, SEEK_END) != 0 || (sh->file_size = ftello(ws[0].f)) < 0)
      rc = es__fail(err, ES_EIO, -1, "cannot seek in %s: %s", t->input, strerror(errno));
  }
  double t0 = es__mono_sec();
  int64_t total = (int64_t)t->epoch * t->ntokens;
  for (int i = 0; !rc && i < t->thread; i++) {
    if (pthread_create(&tids[i], NULL, worker_main, &ws[i]) != 0) {
      rc = es__fail(err, ES_ENOMEM, -1, "cannot start training thread %d", i);
      atomic_store(&sh->stop, 1);
      break;
    }
    started++;
  }
  /* The calling thread reports progress until the workers finish. */
  while (!rc && atomic_load(&sh->token_count) < total && !atomic_load(&sh->stop)) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (t->cancel && t->cancel(t->cancel_ctx)) {
      atomic_store(&sh->stop, 1); /* the workers stop at their next line */
      rc = es__fail(err, ES_ECANCELED, -1, "training cancelled");
      break;
    }
    if (t->progress) {
      double el = es__mono_sec() - t0, p = (double)atomic_load(&sh->token_count) / (double)total;
      es_train_progress_t pr = {
          p > 1 ? 1 : p, el > 0 ? (double)atomic_load(&sh->token_count) / el / t->thread : 0,
          t->lr * (1.0 - (p > 1 ? 1 : p)), atomic_load(&sh->loss0), p > 0 ? el / p * (1.0 - p) : 0};
      t->progress(&pr, t->ctx);
    }
  }
  for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
  if (!rc && sh->failed) rc = es__fail(err, sh->err.code, sh->err.offset, "%s", sh->err.msg);
  if (!rc && t->progress) {
    double el = es__mono_sec() - t0;
    float loss = ws[0].nexamples ? (float)(ws[0].loss_sum / (double)ws[0].nexamples) : 0.0f;
    es_train_progress_t pr = {1.0, el > 0 ? (double)total / el / t->thread : 0, 0.0, loss, 0.0};
    t->progress(&pr, t->ctx);
  }
  for (int i = 0; i < t->thread; i++) free_worker(&ws[i]);
  free(sh->alias_p);
  free(sh->alias_i);
  free(sh->paths);
  free(sh->path_nodes);
  free(sh->path_codes);
  pthread_mutex_destroy(&sh->lock);
  free(sh);
  free(ws);
  free(tids);
  return rc;
}
