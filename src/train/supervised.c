/*
 * supervised.c - `edgeserve supervised`: fastText's FastText::train for
 * supervised models, from arguments to the .bin/.vec files.
 *
 *   1. check the arguments (fail before any work);
 *   2. read the dictionary (vocab.c), add pretrained words;
 *   3. serialize header + dictionary, which is both the start of the .bin
 *      and, opened dictionary-only, the tokenizer training runs through;
 *   4. initialise the matrices (uniform input, zero output, pretrained rows);
 *   5. train (sgd.c), then write OUTPUT.bin, OUTPUT.vec, OUTPUT.output.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/fail.h"
#include "binwrite.h"
#include "edgeserve/normalize.h"
#include "edgeserve/predict.h"
#include "edgeserve/train.h"
#include "model_impl.h"
#include "sgd.h"
#include "train_impl.h"
#include "vocab.h"

es_train_args_t es_train_default_args(void) {
  es_train_args_t a;
  memset(&a, 0, sizeof a);
  a.lr = 0.1;
  a.dim = 100;
  a.ws = 5;
  a.epoch = 5;
  a.min_count = 1;
  a.min_count_label = 0;
  a.neg = 5;
  a.word_ngrams = 1;
  a.loss = ES_LOSS_SOFTMAX;
  a.bucket = -1;
  a.minn = 0;
  a.maxn = 0;
  a.thread = 12;
  a.lr_update_rate = 100;
  a.t = 1e-4;
  a.label = "__label__";
  a.seed = 0;
  a.verbose = 2;
  a.write_vec = 1;
  a.dsub = 2;
  return a;
}

int es__train_check(es_train_args_t *a, es_error_t *err) {
  if (!a->input || !*a->input) return es__fail(err, ES_EINVAL, -1, "-input is required");
  if (!a->output || !*a->output) return es__fail(err, ES_EINVAL, -1, "-output is required");
  if (!(a->lr > 0) || !isfinite(a->lr))
    return es__fail(err, ES_EINVAL, -1, "-lr must be a positive number, got %g", a->lr);
  if (a->dim < 1 || a->dim > ES__MAX_DIM)
    return es__fail(err, ES_EINVAL, -1, "-dim must be 1..%d, got %d", ES__MAX_DIM, a->dim);
  if (a->epoch < 1) return es__fail(err, ES_EINVAL, -1, "-epoch must be >= 1, got %d", a->epoch);
  if (a->min_count < 0 || a->min_count_label < 0)
    return es__fail(err, ES_EINVAL, -1, "-minCount and -minCountLabel must be >= 0");
  if (a->word_ngrams < 1)
    return es__fail(err, ES_EINVAL, -1, "-wordNgrams must be >= 1, got %d", a->word_ngrams);
  if (a->minn < 0 || a->maxn < 0 || a->maxn > ES__MAX_MAXN)
    return es__fail(err, ES_EINVAL, -1, "-minn and -maxn must be 0..%d", ES__MAX_MAXN);
  if (a->maxn > 0 && a->minn > a->maxn)
    return es__fail(err, ES_EINVAL, -1, "-minn %d is larger than -maxn %d", a->minn, a->maxn);
  if (a->maxn > 0 && a->minn == 0)
    return es__fail(err, ES_EINVAL, -1,
                    "-minn 0 with -maxn %d would make every single byte a feature; set -minn "
                    ">= 1",
                    a->maxn);
  if (a->loss < ES_LOSS_HS || a->loss > ES_LOSS_OVA)
    return es__fail(err, ES_EINVAL, -1, "unknown loss %d", (int)a->loss);
  if (a->loss == ES_LOSS_NS && a->neg < 1)
    return es__fail(err, ES_EINVAL, -1, "-loss ns needs -neg >= 1, got %d", a->neg);
  if (a->neg < 0) return es__fail(err, ES_EINVAL, -1, "-neg must be >= 0");
  if (a->thread < 1 || a->thread > 1024)
    return es__fail(err, ES_EINVAL, -1, "-thread must be 1..1024, got %d", a->thread);
  if (a->lr_update_rate < 1)
    return es__fail(err, ES_EINVAL, -1, "-lrUpdateRate must be >= 1, got %d", a->lr_update_rate);
  if (!a->label || !*a->label || strlen(a->label) >= 64)
    return es__fail(err, ES_EINVAL, -1, "-label must be 1 to 63 bytes");
  if (a->dsub < 1) return es__fail(err, ES_EINVAL, -1, "-dsub must be >= 1, got %d", a->dsub);
  if (a->cutoff < 0) return es__fail(err, ES_EINVAL, -1, "-cutoff must be >= 0");
  /* fastText: no buckets unless something hashes into them. */
  if (a->bucket < 0) a->bucket = 2000000;
  if (a->word_ngrams <= 1 && a->maxn == 0) a->bucket = 0;
  if (a->bucket == 0 && (a->word_ngrams > 1 || a->maxn > 0))
    return es__fail(err, ES_EINVAL, -1,
                    "-wordNgrams > 1 and -maxn > 0 hash into buckets: -bucket must be > 0");
  if (a->deterministic) a->thread = 1;
  struct stat st;
  if (stat(a->input, &st) != 0)
    return es__fail(err, ES_EIO, -1, "cannot open %s: %s", a->input, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return es__fail(err, ES_EINVAL, -1,
                    "%s is not a regular file (training reads it several times, from several "
                    "offsets)",
                    a->input);
  return 0;
}

/* ---- pretrained vectors ------------------------------------------------- */

typedef struct pretrained {
  char **words;
  float *vecs; /* n x dim */
  int32_t n;
  es_model_t *bin; /* when the file is a fastText model */
} pretrained;

static void pretrained_free(pretrained *p) {
  for (int32_t i = 0; i < p->n && p->words; i++) free(p->words[i]);
  free(p->words);
  free(p->vecs);
  es_model_close(p->bin);
  memset(p, 0, sizeof *p);
}

/* Reads a .vec ("n dim" then "word v1 .. vdim" lines), as fastText's
 * getInputMatrixFromFile, or takes the words of a fastText model. */
static int pretrained_read(pretrained *p, const char *path, int32_t dim, es__vocab *v,
                           es_error_t *err) {
  memset(p, 0, sizeof *p);
  FILE *f = fopen(path, "rb");
  if (!f) return es__fail(err, ES_EIO, -1, "cannot open %s: %s", path, strerror(errno));
  int32_t magic = 0;
  size_t got = fread(&magic, 1, 4, f);
  if (got == 4 && magic == 793712314) {
    fclose(f);
    int rc = es_model_open(&p->bin, path, NULL, err);
    if (rc) return rc;
    if (p->bin->args.dim != dim)
      return es__fail(err, ES_EINVAL, -1,
                      "dimension of the pretrained model %s (%d) does not match -dim %d", path,
                      p->bin->args.dim, dim);
    for (int32_t i = 0; i < p->bin->dict.nwords; i++) {
      const char *s = es__dict_str(&p->bin->dict, i);
      if ((rc = es__vocab_add(v, s, strlen(s), err))) return rc;
    }
    return 0;
  }
  rewind(f);
  long long n = 0, d = 0;
  int rc = 0;
  if (fscanf(f, "%lld %lld", &n, &d) != 2 || n < 0 || n > INT32_MAX || d < 1) {
    fclose(f);
    return es__fail(err, ES_EFORMAT, 0,
                    "%s: not a .vec file (first line must be \"<count> <dim>\") nor a fastText "
                    "model",
                    path);
  }
  if (d != dim) {
    fclose(f);
    return es__fail(err, ES_EINVAL, -1,
                    "dimension of pretrained vectors (%lld) does not match dimension (%d)", d, dim);
  }
  p->words = calloc((size_t)n ? (size_t)n : 1, sizeof *p->words);
  p->vecs = malloc(((size_t)n ? (size_t)n : 1) * (size_t)dim * sizeof(float));
  if (!p->words || !p->vecs) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
  char word[4096];
  for (long long i = 0; !rc && i < n; i++) {
    if (fscanf(f, "%4095s", word) != 1) {
      rc = es__fail(err, ES_EFORMAT, -1, "%s: vector %lld of %lld is missing", path, i + 1, n);
      break;
    }
    p->words[i] = strdup(word);
    p->n = (int32_t)i + 1;
    if (!p->words[i]) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
    for (int32_t j = 0; !rc && j < dim; j++)
      if (fscanf(f, "%f", &p->vecs[(size_t)i * dim + j]) != 1)
        rc = es__fail(err, ES_EFORMAT, -1, "%s: vector %lld (\"%s\") has fewer than %d values",
                      path, i + 1, word, dim);
    if (!rc) rc = es__vocab_add(v, word, strlen(word), err);
  }
  fclose(f);
  return rc;
}

/* Copies pretrained rows over the random initialisation: word rows by
 * word, and for a fastText model with the same buckets its bucket rows. */
static int pretrained_apply(const pretrained *p, const es__vocab *v, float *wi, int32_t dim,
                            int32_t bucket) {
  if (p->bin) {
    const es_model_t *m = p->bin;
    for (int32_t i = 0; i < m->dict.nwords; i++) {
      const char *s = es__dict_str(&m->dict, i);
      int32_t id = es__vocab_find(v, s, strlen(s));
      if (id >= 0 && id < v->nwords) es_model_row(m, 0, i, wi + (size_t)id * dim);
    }
    if (m->args.bucket == bucket && m->dict.pruneidx_size < 0 &&
        m->in.m == (int64_t)m->dict.nwords + bucket)
      for (int32_t b = 0; b < bucket; b++)
        es_model_row(m, 0, (int64_t)m->dict.nwords + b, wi + ((size_t)v->nwords + b) * dim);
    return 0;
  }
  for (int32_t i = 0; i < p->n; i++) {
    int32_t id = es__vocab_find(v, p->words[i], strlen(p->words[i]));
    if (id >= 0 && id < v->nwords)
      memcpy(wi + (size_t)id * dim, p->vecs + (size_t)i * dim, (size_t)dim * sizeof(float));
  }
  return 0;
}

/* ---- the dictionary image --------------------------------------------------- */

int es__train_dict_image(const es_model_args_t *ma, const es__vocab *v, char **img, size_t *len,
                         es_error_t *err) {
  *img = NULL;
  *len = 0;
  es__bw w = {0};
  w.f = open_memstream(img, len);
  if (!w.f) return es__fail(err, ES_ENOMEM, -1, "out of memory");
  es__bw_header(&w, ma);
  es__bw_dict_header(&w, v->n, v->nwords, v->nlabels, v->ntokens, -1);
  for (int32_t i = 0; i < v->n; i++)
    es__bw_entry(&w, es__vocab_str(v, i), v->e[i].len, v->e[i].count, v->e[i].type);
  int bad = w.failed;
  if (fclose(w.f) != 0) bad = 1;
  if (bad) {
    free(*img);
    *img = NULL;
    return es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  return 0;
}

/* ---- text outputs ------------------------------------------------------------ */

static void put_vec(FILE *f, const float *x, int32_t dim) {
  for (int32_t j = 0; j < dim; j++) fprintf(f, "%.5g ", (double)x[j]);
  fputc('\n', f);
}

/* OUTPUT.vec: each word's vector, the mean of its subword rows (fastText's
 * getWordVector), through the same tokenizer as training. */
static int write_vec(const char *path, const es_model_t *dm, const float *wi, es_error_t *err) {
  int32_t dim = dm->args.dim;
  FILE *f = fopen(path, "w");
  if (!f) return es__fail(err, ES_EIO, -1, "cannot open %s for saving: %s", path, strerror(errno));
  es_scratch_t *s = es__scratch_collect_new(dm);
  float *vec = malloc((size_t)dim * sizeof(float));
  int rc = 0;
  if (!s || !vec) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
  if (!rc) fprintf(f, "%d %d\n", dm->dict.nwords, dim);
  for (int32_t i = 0; !rc && i < dm->dict.nwords; i++) {
    const char *w = es__dict_str(&dm->dict, i);
    int done;
    es_line_begin(s);
    es_line_feed(dm, s, w, strlen(w), &done);
    es_line_end(dm, s);
    int64_t nf;
    int oom;
    const int32_t *fe = es__line_features(s, &nf, &oom);
    memset(vec, 0, (size_t)dim * sizeof(float));
    for (int64_t k = 0; k < nf; k++)
      for (int32_t j = 0; j < dim; j++) vec[j] += wi[(size_t)fe[k] * dim + j];
    if (nf > 0) {
      float sc = (float)(1.0 / (double)nf);
      for (int32_t j = 0; j < dim; j++) vec[j] *= sc;
    }
    fprintf(f, "%s ", w);
    put_vec(f, vec, dim);
  }
  es_scratch_free(s);
  free(vec);
  if (fclose(f) != 0 && !rc) rc = es__fail(err, ES_EIO, -1, "cannot write %s", path);
  return rc;
}

static int write_output(const char *path, const es_model_t *dm, const float *wo, es_error_t *err) {
  FILE *f = fopen(path, "w");
  if (!f) return es__fail(err, ES_EIO, -1, "cannot open %s for saving: %s", path, strerror(errno));
  fprintf(f, "%d %d\n", dm->dict.nlabels, dm->args.dim);
  for (int32_t i = 0; i < dm->dict.nlabels; i++) {
    fprintf(f, "%s ", es__dict_str(&dm->dict, dm->dict.nwords + i));
    put_vec(f, wo + (size_t)i * dm->args.dim, dm->args.dim);
  }
  if (fclose(f) != 0) return es__fail(err, ES_EIO, -1, "cannot write %s", path);
  return 0;
}

char *es__train_path(const char *prefix, const char *ext) {
  size_t a = strlen(prefix), b = strlen(ext);
  char *p = malloc(a + b + 1);
  if (p) {
    memcpy(p, prefix, a);
    memcpy(p + a, ext, b + 1);
  }
  return p;
}

/* ---- the whole command ---------------------------------------------------- */

/* -normalize: a copy of the training file with every line normalized as
 * prediction will normalize it (es__normalize_labeled). */
static int normalize_file(const char *in, const char *out, const es_normalizer_t *n,
                          const char *label, es_error_t *err) {
  FILE *f = fopen(in, "rb");
  if (!f) return es__fail(err, ES_EIO, -1, "cannot open %s: %s", in, strerror(errno));
  FILE *g = fopen(out, "wb");
  if (!g) {
    fclose(f);
    return es__fail(err, ES_EIO, -1, "cannot open %s for writing: %s", out, strerror(errno));
  }
  char *line = NULL, *tmp = malloc(ES__NORM_CAP + 1), *res = malloc(2 * ES__NORM_CAP + 2);
  size_t cap = 0;
  ssize_t got;
  int rc = !tmp || !res ? es__fail(err, ES_ENOMEM, -1, "out of memory") : 0;
  while (!rc && (got = getline(&line, &cap, f)) > 0) {
    size_t len = (size_t)got;
    int nl = line[len - 1] == '\n';
    size_t o = es__normalize_labeled(n, label, strlen(label), line, len - (size_t)nl, tmp, res);
    if (fwrite(res, 1, o, g) != o || (nl && fputc('\n', g) == EOF))
      rc = es__fail(err, ES_EIO, -1, "cannot write %s: %s", out, strerror(errno));
  }
  if (!rc && ferror(f)) rc = es__fail(err, ES_EIO, -1, "cannot read %s", in);
  free(line);
  free(tmp);
  free(res);
  fclose(f);
  if (fclose(g) != 0 && !rc) rc = es__fail(err, ES_EIO, -1, "cannot write %s", out);
  return rc;
}

static int train_plain(const es_train_args_t *in, es_train_progress_fn progress, void *ctx,
                       es_error_t *err);

int es_train_supervised(const es_train_args_t *in, es_train_progress_fn progress, void *ctx,
                        es_error_t *err) {
  if (!in->normalize) return train_plain(in, progress, ctx, err);
  es_normalizer_t n;
  int rc = es_normalizer_parse(&n, in->normalize, err);
  if (rc) return rc;
  es_train_args_t a = *in;
  if ((rc = es__train_check(&a, err))) return rc;
  char *tmp = es__train_path(a.output, ".normalized.tmp");
  char *bin = es__train_path(a.output, ".bin"), *esm = es__train_path(a.output, ".esm");
  if (!tmp || !bin || !esm) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
  if (!rc) rc = normalize_file(a.input, tmp, &n, a.label, err);
  if (!rc) {
    a.input = tmp;
    a.normalize = NULL;
    rc = train_plain(&a, progress, ctx, err);
  }
  if (!rc) {
    char spec[256];
    es_normalizer_format(&n, spec, sizeof spec);
    const char *base = strrchr(in->input, '/');
    es_convert_args_t ca = {ES_SCHEME_KEEP, spec, base ? base + 1 : in->input};
    rc = es_convert(bin, esm, &ca, err);
  }
  if (tmp) remove(tmp);
  free(tmp);
  free(bin);
  free(esm);
  return rc;
}

static int train_plain(const es_train_args_t *in, es_train_progress_fn progress, void *ctx,
                       es_error_t *err) {
  es_train_args_t a = *in;
  int rc = es__train_check(&a, err);
  if (rc) return rc;
  es__vocab v;
  if ((rc = es__vocab_init(&v, a.label, err))) return rc;
  pretrained pre;
  memset(&pre, 0, sizeof pre);
  char *img = NULL, *bin = NULL, *vec = NULL, *outp = NULL;
  size_t img_len = 0;
  es_model_t *dm = NULL;
  float *wi = NULL, *wo = NULL;
  int64_t *counts = NULL;

  rc = es__vocab_read(&v, a.input, a.min_count, a.min_count_label, err);
  if (!rc && a.pretrained_vectors) {
    rc = pretrained_read(&pre, a.pretrained_vectors, a.dim, &v, err);
    if (!rc) rc = es__vocab_threshold(&v, 1, 0, err);
  }
  if (!rc && v.n == 0)
    rc = es__fail(err, ES_EINVAL, -1, "%s: empty vocabulary. Try a smaller -minCount value.",
                  a.input);
  if (!rc && v.nlabels == 0)
    rc =
        es__fail(err, ES_EINVAL, -1,
                 "%s has no labels: every training line needs at least one token starting "
                 "with \"%s\"%s",
                 a.input, a.label, a.min_count_label > 1 ? " (or -minCountLabel is too high)" : "");
  if (!rc && v.nwords == 0)
    rc = es__fail(err, ES_EINVAL, -1, "%s has labels but no words", a.input);
  es_model_args_t ma = {a.dim,    a.ws,          a.epoch, a.min_count,
                        a.neg,    a.word_ngrams, a.loss,  ES_MODEL_SUPERVISED,
                        a.bucket, a.minn,        a.maxn,  a.lr_update_rate,
                        a.t};
  if (!rc) rc = es__train_dict_image(&ma, &v, &img, &img_len, err);
  if (!rc) rc = es__model_open_dict(&dm, img, img_len, a.label, err);
  int64_t rows = (int64_t)v.nwords + a.bucket;
  if (!rc) {
    wi = malloc((size_t)rows * (size_t)a.dim * sizeof(float));
    wo = calloc((size_t)v.nlabels * (size_t)a.dim, sizeof(float));
    counts = malloc((size_t)v.nlabels * sizeof *counts);
    if (!wi || !wo || !counts) rc = es__fail(err, ES_ENOMEM, -1, "out of memory for the matrices");
  }
  if (!rc) {
    es__sgd_uniform(wi, rows * a.dim, (float)(1.0 / a.dim), (uint64_t)(int64_t)a.seed);
    if (a.pretrained_vectors) pretrained_apply(&pre, &v, wi, a.dim, a.bucket);
    pretrained_free(&pre);
    for (int32_t i = 0; i < v.nlabels; i++) counts[i] = v.e[v.nwords + i].count;
    es__sgd t = {dm,       a.input,     a.lr,   a.epoch,   a.thread, a.lr_update_rate,
                 a.neg,    a.dim,       a.loss, a.seed,    wi,       rows,
                 wo,       v.nlabels,   counts, v.ntokens, progress, ctx,
                 a.cancel, a.cancel_ctx};
    rc = es__sgd_run(&t, err);
  }
  if (!rc) {
    bin = es__train_path(a.output, ".bin");
    vec = es__train_path(a.output, ".vec");
    outp = es__train_path(a.output, ".output");
    if (!bin || !vec || !outp) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  if (!rc) {
    es__bw w;
    rc = es__bw_open(&w, bin, err);
    if (!rc) {
      es__bw_bytes(&w, img, img_len);
      es__bw_bytes(&w, "", 1); /* quant_input false */
      es__bw_dense(&w, wi, rows, a.dim);
      es__bw_bytes(&w, "", 1); /* qout false */
      es__bw_dense(&w, wo, v.nlabels, a.dim);
      rc = es__bw_close(&w, err);
    }
  }
  if (!rc && a.write_vec) rc = write_vec(vec, dm, wi, err);
  if (!rc && a.save_output) rc = write_output(outp, dm, wo, err);
  pretrained_free(&pre);
  es_model_close(dm);
  es__vocab_free(&v);
  free(img);
  free(wi);
  free(wo);
  free(counts);
  free(bin);
  free(vec);
  free(outp);
  return rc;
}
