/*
 * quantize.c - `edgeserve quantize`: fastText's FastText::quantize, from
 * OUTPUT.bin to OUTPUT.ftz.
 *
 *   1. -cutoff N: keep N input rows, "</s>" first, then by L2 norm
 *      descending (ties by row); kept words keep dictionary order, kept
 *      buckets go into the pruned index in norm order; every label stays.
 *   2. -retrain: fine-tune the kept rows on -input (sgd.c, through the
 *      pruned dictionary, so training sees what prediction will).
 *   3. -qnorm: rows are divided by their norms, which get a 1-d quantizer.
 *   4. the input rows get a product quantizer (-dsub wide sub-vectors);
 *      -qout: the output rows too (dsub 2).
 * Quantizers are trained with edgeserve's k-means (pq.c, seed 1234).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/fail.h"
#include "binwrite.h"
#include "edgeserve/train.h"
#include "model_impl.h"
#include "pq.h"
#include "sgd.h"
#include "train_impl.h"

#define PQ_SEED 1234

typedef struct qmat {
  int qnorm;
  es__pq pq, npq;
  uint8_t *codes, *norm_codes;
} qmat;

static void qmat_free(qmat *q) {
  es__pq_free(&q->pq);
  es__pq_free(&q->npq);
  free(q->codes);
  free(q->norm_codes);
}

/* fastText's l2NormRow: float products summed in double, then sqrt. */
static float row_norm(const float *x, int32_t n) {
  double s = 0.0;
  for (int32_t j = 0; j < n; j++) s += (double)(x[j] * x[j]);
  return (float)sqrt(s);
}

/* QuantMatrix(mat, dsub, qnorm): x (rows x dim) is normalised in place. */
static int quantize_matrix(qmat *q, float *x, int64_t rows, int32_t dim, int32_t dsub, int qnorm,
                           int nthreads, es_error_t *err) {
  memset(q, 0, sizeof *q);
  q->qnorm = qnorm;
  int rc = 0;
  if (qnorm) {
    float *norms = malloc((size_t)rows * sizeof *norms);
    q->norm_codes = malloc((size_t)rows);
    if (!norms || !q->norm_codes) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
    for (int64_t i = 0; !rc && i < rows; i++) {
      float *r = x + (size_t)i * dim;
      norms[i] = row_norm(r, dim);
      if (norms[i] != 0.0f)
        for (int32_t j = 0; j < dim; j++) r[j] /= norms[i];
    }
    if (!rc) rc = es__pq_train(&q->npq, norms, rows, 1, 1, 1, PQ_SEED, nthreads, err);
    if (!rc) es__pq_codes(&q->npq, norms, rows, 1, q->norm_codes, nthreads);
    free(norms);
  }
  if (!rc) rc = es__pq_train(&q->pq, x, rows, dim, dim, dsub, PQ_SEED, nthreads, err);
  if (!rc) {
    q->codes = malloc((size_t)rows * (size_t)q->pq.nsubq);
    if (!q->codes)
      rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
    else
      es__pq_codes(&q->pq, x, rows, dim, q->codes, nthreads);
  }
  return rc;
}

static void write_qmat(es__bw *w, const qmat *q, int64_t rows, int32_t dim) {
  uint8_t qn = (uint8_t)q->qnorm;
  es__bw_bytes(w, &qn, 1);
  es__bw_i64(w, rows);
  es__bw_i64(w, dim);
  es__bw_i32(w, (int32_t)(rows * q->pq.nsubq));
  es__bw_bytes(w, q->codes, (size_t)rows * (size_t)q->pq.nsubq);
  es__bw_pq(w, q->pq.dim, q->pq.nsubq, q->pq.dsub, q->pq.lastdsub, q->pq.centroids);
  if (q->qnorm) {
    es__bw_bytes(w, q->norm_codes, (size_t)rows);
    es__bw_pq(w, q->npq.dim, q->npq.nsubq, q->npq.dsub, q->npq.lastdsub, q->npq.centroids);
  }
}

/* Ordering of selectEmbeddings: eos first, then norm descending, then row. */
typedef struct ranked {
  float norm;
  int32_t row;
  int32_t eos;
} ranked;

static int cmp_rows(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->eos != y->eos) return y->eos - x->eos;
  if (x->norm != y->norm) return x->norm > y->norm ? -1 : 1;
  return (x->row > y->row) - (x->row < y->row);
}

static int cmp_rows_plain(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* The quantized model being built. */
typedef struct qbuild {
  es_model_args_t args;
  const es_model_t *src;
  int32_t *words; /* kept word ids (sorted) */
  int32_t nkw;
  int32_t *ngrams; /* kept bucket rows (source row - nwords), norm order */
  int64_t nkn;
  int pruned; /* a cutoff applied */
  float *wi;  /* rows: kept words, then kept buckets (or every row) */
  int64_t rows;
  float *wo;
} qbuild;

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void write_prune(es__bw *w, const qbuild *b) {
  if (!b->pruned || b->nkn == 0) return;
  int64_t *pairs = malloc((size_t)b->nkn * sizeof *pairs);
  if (!pairs) {
    w->failed = 1;
    return;
  }
  for (int64_t j = 0; j < b->nkn; j++) pairs[j] = (int64_t)b->ngrams[j] << 32 | (uint32_t)j;
  qsort(pairs, (size_t)b->nkn, sizeof *pairs, cmp_i64);
  for (int64_t j = 0; j < b->nkn; j++) {
    es__bw_i32(w, (int32_t)(pairs[j] >> 32));
    es__bw_i32(w, (int32_t)(uint32_t)pairs[j]);
  }
  free(pairs);
}

static void write_dict(es__bw *w, const qbuild *b) {
  const es__dict *d = &b->src->dict;
  es__bw_header(w, &b->args);
  int32_t nwords = b->pruned ? b->nkw : d->nwords;
  es__bw_dict_header(w, nwords + d->nlabels, nwords, d->nlabels, d->ntokens,
                     b->pruned ? b->nkn : d->pruneidx_size);
  for (int32_t i = 0; i < nwords + d->nlabels; i++) {
    int32_t id = i < nwords ? (b->pruned ? b->words[i] : i) : d->nwords + (i - nwords);
    const char *s;
    size_t len;
    int64_t count;
    int type;
    es_model_entry(b->src, id, &s, &len, &count, &type);
    es__bw_entry(w, s, len, count, (int8_t)type);
  }
  write_prune(w, b);
}

/* -cutoff: selectEmbeddings + Dictionary::prune + the pruned matrix. */
int es__rank_rows(const es_model_t *m, int32_t **order, es_error_t *err) {
  int32_t dim = m->args.dim;
  int64_t n = m->in.m;
  ranked *r = malloc((size_t)n * sizeof *r);
  float *row = malloc((size_t)dim * sizeof *row);
  int rc = 0;
  *order = NULL;
  if (!r || !row) {
    rc = es__fail(err, ES_ENOMEM, -1, "out of memory ranking %lld rows", (long long)n);
    goto out;
  }
  for (int64_t i = 0; i < n; i++) {
    es_model_row(m, 0, i, row);
    r[i].norm = row_norm(row, dim);
    r[i].row = (int32_t)i;
    r[i].eos = i == m->dict.eos;
    if (isnan(r[i].norm)) {
      rc = es__fail(err, ES_ERANGE, -1, "input row %lld contains NaN", (long long)i);
      goto out;
    }
  }
  qsort(r, (size_t)n, sizeof *r, cmp_rows);
  /* the ids, in place over the (larger) ranked array */
  int32_t *ids = (int32_t *)(void *)r;
  for (int64_t i = 0; i < n; i++) ids[i] = r[i].row;
  *order = ids;
  r = NULL;
out:
  free(r);
  free(row);
  return rc;
}

static int apply_cutoff(qbuild *b, int64_t cutoff, es_error_t *err) {
  const es_model_t *m = b->src;
  int32_t dim = m->args.dim, nwords = m->dict.nwords;
  int32_t *idx;
  int rc = es__rank_rows(m, &idx, err);
  if (rc) return rc;
  b->words = malloc((size_t)cutoff * sizeof *b->words);
  b->ngrams = malloc((size_t)cutoff * sizeof *b->ngrams);
  float *nw = malloc((size_t)cutoff * (size_t)dim * sizeof *nw);
  if (!b->words || !b->ngrams || !nw) {
    free(idx);
    free(nw);
    return es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  b->nkw = 0;
  b->nkn = 0;
  for (int64_t i = 0; i < cutoff; i++) {
    if (idx[i] < nwords)
      b->words[b->nkw++] = idx[i];
    else
      b->ngrams[b->nkn++] = idx[i] - nwords;
  }
  qsort(b->words, (size_t)b->nkw, sizeof *b->words, cmp_rows_plain);
  int64_t r = 0;
  for (int32_t i = 0; i < b->nkw; i++, r++) es_model_row(m, 0, b->words[i], nw + (size_t)r * dim);
  for (int64_t i = 0; i < b->nkn; i++, r++)
    es_model_row(m, 0, (int64_t)nwords + b->ngrams[i], nw + (size_t)r * dim);
  b->wi = nw;
  b->rows = cutoff;
  b->pruned = 1;
  free(idx);
  return 0;
}

/* -retrain: fine-tunes the pruned rows on the training file. */
static int retrain(qbuild *b, const es_train_args_t *a, es_train_progress_fn progress, void *ctx,
                   es_error_t *err) {
  char *img = NULL;
  size_t len = 0;
  es__bw w = {0};
  w.f = open_memstream(&img, &len);
  if (!w.f) return es__fail(err, ES_ENOMEM, -1, "out of memory");
  write_dict(&w, b);
  int bad = w.failed;
  if (fclose(w.f) != 0 || bad) {
    free(img);
    return es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  es_model_t *dm = NULL;
  int rc = es__model_open_dict(&dm, img, len, a->label, err);
  const es__dict *d = &b->src->dict;
  int64_t *counts = malloc((size_t)d->nlabels * sizeof *counts);
  if (!rc && !counts) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
  for (int32_t i = 0; !rc && i < d->nlabels; i++) {
    const char *s;
    size_t sl;
    int type;
    es_model_entry(b->src, d->nwords + i, &s, &sl, &counts[i], &type);
  }
  if (!rc) {
    es__sgd t = {
        dm,          a->input,     a->lr,        a->epoch,   a->thread, b->args.lr_update_rate,
        b->args.neg, b->args.dim,  b->args.loss, a->seed,    b->wi,     b->rows,
        b->wo,       d->nlabels,   counts,       d->ntokens, progress,  ctx,
        a->cancel,   a->cancel_ctx};
    rc = es__sgd_run(&t, err);
  }
  free(counts);
  es_model_close(dm);
  free(img);
  return rc;
}

static int online_cpus(int want) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  return want < n ? want : (int)n;
}

int es_quantize(const es_train_args_t *in, es_train_progress_fn progress, void *ctx,
                es_error_t *err) {
  es_train_args_t a = *in;
  if (!a.output || !*a.output) return es__fail(err, ES_EINVAL, -1, "-output is required");
  if (a.dsub < 1) return es__fail(err, ES_EINVAL, -1, "-dsub must be >= 1, got %d", a.dsub);
  if (a.cutoff < 0) return es__fail(err, ES_EINVAL, -1, "-cutoff must be >= 0");
  if (a.retrain && a.cutoff == 0)
    return es__fail(err, ES_EINVAL, -1, "-retrain needs -cutoff (it fine-tunes the kept rows)");
  if (a.retrain && (!a.input || !*a.input))
    return es__fail(err, ES_EINVAL, -1, "-retrain needs -input (the training file)");
  if (a.retrain && (!(a.lr > 0) || a.epoch < 1 || a.thread < 1 || a.thread > 1024))
    return es__fail(err, ES_EINVAL, -1, "-retrain needs -lr > 0, -epoch >= 1, -thread 1..1024");
  if (a.deterministic) a.thread = 1;
  if (!a.label || !*a.label) a.label = "__label__";
  char *bin = es__train_path(a.output, ".bin"), *ftz = es__train_path(a.output, ".ftz");
  qbuild b;
  memset(&b, 0, sizeof b);
  qmat qin, qout;
  memset(&qin, 0, sizeof qin);
  memset(&qout, 0, sizeof qout);
  es_model_t *m = NULL;
  int rc = !bin || !ftz ? es__fail(err, ES_ENOMEM, -1, "out of memory") : 0;
  if (!rc) rc = es_model_open(&m, bin, NULL, err);
  if (!rc && m->in.quant) rc = es__fail(err, ES_EINVAL, -1, "%s is already quantized", bin);
  if (!rc && m->args.model != ES_MODEL_SUPERVISED)
    rc = es__fail(err, ES_EUNSUPPORTED, -1, "only supervised models can be quantized");
  if (!rc && a.qout && m->dict.nlabels < 256)
    rc = es__fail(err, ES_EINVAL, -1,
                  "-qout needs at least 256 labels (the model has %d): the output matrix is too "
                  "small to quantize",
                  m->dict.nlabels);
  int32_t dim = 0;
  if (!rc) {
    b.src = m;
    b.args = m->args;
    dim = m->args.dim;
    b.rows = m->in.m;
    int64_t cut = a.cutoff > 0 && a.cutoff < m->in.m ? a.cutoff : 0;
    if ((cut ? cut : b.rows) < 256)
      rc = es__fail(err, ES_EINVAL, -1,
                    "too few input rows to quantize: %lld kept, at least 256 needed",
                    (long long)(cut ? cut : b.rows));
    if (!rc) {
      /* With a cutoff only the kept rows are copied (apply_cutoff). */
      b.wi = cut ? NULL : malloc((size_t)b.rows * (size_t)dim * sizeof(float));
      b.wo = malloc((size_t)m->out.m * (size_t)dim * sizeof(float));
      if ((!cut && !b.wi) || !b.wo)
        rc = es__fail(err, ES_ENOMEM, -1, "out of memory for the matrices");
    }
    for (int64_t i = 0; !rc && !cut && i < b.rows; i++)
      es_model_row(m, 0, i, b.wi + (size_t)i * dim);
    for (int64_t i = 0; !rc && i < m->out.m; i++) es_model_row(m, 1, i, b.wo + (size_t)i * dim);
    if (!rc && cut) rc = apply_cutoff(&b, cut, err);
    if (!rc && cut && a.retrain) {
      b.args.epoch = a.epoch;
      rc = retrain(&b, &a, progress, ctx, err);
    }
  }
  int nth = online_cpus(a.thread > 0 ? a.thread : 1);
  if (!rc) rc = quantize_matrix(&qin, b.wi, b.rows, dim, a.dsub, a.qnorm, nth, err);
  if (!rc && a.qout) rc = quantize_matrix(&qout, b.wo, m->out.m, dim, 2, a.qnorm, nth, err);
  if (!rc) {
    es__bw w;
    rc = es__bw_open(&w, ftz, err);
    if (!rc) {
      write_dict(&w, &b);
      es__bw_bytes(&w, "\1", 1); /* quant_input */
      write_qmat(&w, &qin, b.rows, dim);
      uint8_t qo = (uint8_t)(a.qout != 0);
      es__bw_bytes(&w, &qo, 1);
      if (a.qout)
        write_qmat(&w, &qout, m->out.m, dim);
      else
        es__bw_dense(&w, b.wo, m->out.m, dim);
      rc = es__bw_close(&w, err);
    }
  }
  qmat_free(&qin);
  qmat_free(&qout);
  free(b.words);
  free(b.ngrams);
  free(b.wi);
  free(b.wo);
  es_model_close(m);
  free(bin);
  free(ftz);
  return rc;
}
