/*
 * fasttext.c - the fastText classifier backend: .bin, .ftz and .esm files
 * served through the backend table of backend.h.
 *
 * An instance is one memory-mapped model (model.h) and a fixed set of
 * working areas, made at load: opts.nthreads slots, each an es_scratch_t and
 * room for one prediction per label. infer() takes a free slot for the whole
 * batch and gives it back at the end; when every slot is taken it waits on a
 * condition variable. So nthreads batches run at once, and the hot path
 * allocates nothing (es_predict itself grows a scratch once, on a line of more
 * than 4096 words, up to a bound).
 *
 * Texts are handed to es_predict() raw: a model that carries a normalizer
 * (an .esm converted with --normalize) applies it inside the engine, on every
 * line (predict.c, es_line_feed), so normalising here as well would only do
 * the work twice. .bin and .ftz files carry none and see the text as is.
 * normalize() says what the engine will see (the response cache's key): the
 * engine's own function (es__normalize_labeled), so equal forms always get
 * equal answers.
 *
 * Invariants:
 *  1. Every slot is either on the free stack or held by exactly one infer()
 *     call; nfree counts the stack (under mu).
 *  2. An item's predictions are written to its own out[] only; the slot's
 *     preds[] is the only shared buffer and belongs to the slot's holder.
 *  3. Labels handed out point into the model's mapping (+ the stripped
 *     prefix), valid until unload() (backend.h, contract 3).
 *  4. An item longer than the engine reads in one line (ES__NORM_CAP bytes
 *     for a model with a normalizer, FT_MAX_TEXT otherwise) is refused with
 *     ES_ERANGE rather than silently cut.
 *  5. normalize() forms: an empty text is "\n" (no other text normalises to
 *     it: the engine splits on newlines); a text infer() refuses (multi-line,
 *     too long) or one too long for the stack buffers has no form
 *     (SIZE_MAX), so the caller keys on the raw text.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <dirent.h>

#include "edgeserve/backend.h"
#include "edgeserve/estimate.h"
#include "edgeserve/model.h"
#include "edgeserve/predict.h"

#include "../common/fail.h"
#include "../engine/model_impl.h" /* ES__NORM_CAP: what the engine normalises of a line */

/* The longest item a model without a normalizer accepts. The engine would
 * take any length (bounded memory), but the server has no use for a 64 KiB
 * "file name", and a bound keeps one item's cost bounded too. */
#define FT_MAX_TEXT (64 * 1024)

/* The longest text normalize() forms (on the stack: 3 x this); longer ones
 * return SIZE_MAX. es__normalize_labeled() writes at most 2 x len + 2 bytes
 * to out and len + 1 to tmp for an input of len bytes. */
#define FT_NORM_STACK 2048

/* fastText's default label prefix, stripped from the labels handed out when
 * every label of the model starts with it. */
#define FT_LABEL_PREFIX     "__label__"
#define FT_LABEL_PREFIX_LEN 9

typedef struct ft_slot {
  es_scratch_t *scratch;
  es_prediction_t *preds; /* nlabels entries */
} ft_slot;

typedef struct ft_inst {
  es_model_t *m;
  es_model_info_t info;
  size_t prefix; /* bytes stripped from every label: 0 or FT_LABEL_PREFIX_LEN */
  size_t max_text;
  int max_batch;
  const char *format;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int nslots, nfree;
  ft_slot *slots;
  int *free_stack; /* indices of free slots, nfree of them */
  uint64_t private_bytes;
} ft_inst;

static int ends_with(const char *s, size_t n, const char *ext) {
  size_t e = strlen(ext);
  return n > e && !strcasecmp(s + n - e, ext);
}

/* 0 dense .bin, 1 .esm, 2 .ftz, -1 none: the quality order of variants(). */
static int kind_rank(const char *name) {
  size_t n = strlen(name);
  if (ends_with(name, n, ".bin")) return 0;
  if (ends_with(name, n, ".esm")) return 1;
  if (ends_with(name, n, ".ftz")) return 2;
  return -1;
}

static int ft_accepts(const char *path) { return path && kind_rank(path) >= 0; }

static int ft_estimate(const char *path, const es_backend_opts_t *o, es_model_estimate_t *out,
                       es_error_t *err) {
  es_backend_opts_t d = es_backend_default_opts();
  if (!o) o = &d;
  return es_estimate_model_file(path, o->nthreads, o->max_batch, out, err);
}

static void ft_free(ft_inst *f) {
  if (!f) return;
  for (int i = 0; i < f->nslots; i++) {
    es_scratch_free(f->slots[i].scratch);
    free(f->slots[i].preds);
  }
  free(f->slots);
  free(f->free_stack);
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  es_model_close(f->m);
  free(f);
}

static int ft_load(const char *path, const es_backend_opts_t *o, void **inst, es_error_t *err) {
  *inst = NULL;
  es_backend_opts_t d = es_backend_default_opts();
  if (!o) o = &d;
  if (o->nthreads < 1 || o->max_batch < 1)
    return es__fail(err, ES_EINVAL, -1, "%s: nthreads (%d) and max_batch (%d) must be at least 1",
                    path, o->nthreads, o->max_batch);
  ft_inst *f = calloc(1, sizeof *f);
  if (!f) return es__fail(err, ES_ENOMEM, -1, "%s: out of memory", path);
  if (pthread_mutex_init(&f->mu, NULL)) {
    free(f);
    return es__fail(err, ES_ENOMEM, -1, "%s: cannot make a mutex", path);
  }
  if (pthread_cond_init(&f->cv, NULL)) {
    pthread_mutex_destroy(&f->mu);
    free(f);
    return es__fail(err, ES_ENOMEM, -1, "%s: cannot make a condition variable", path);
  }
  es_model_params_t mp = es_model_default_params();
  mp.populate = o->populate;
  mp.word_rows_bytes = ES_MODEL_WORD_ROWS_BYTES; /* a server: 256 KiB for 3-10% per request */
  if (err) err->msg[0] = 0;
  int rc = es_model_open(&f->m, path, &mp, err);
  if (rc) {
    if (err && !err->msg[0]) es__fail(err, rc, -1, "%s: %s", path, es_strerror(rc));
    ft_free(f);
    return rc;
  }
  es_model_info(f->m, &f->info);
  int32_t nl = f->info.nlabels;
  f->format = f->info.native ? "esm" : f->info.quant_input ? "ftz" : "bin";
  f->max_text = f->m->has_norm ? ES__NORM_CAP : FT_MAX_TEXT;
  f->max_batch = o->max_batch;
  f->prefix = FT_LABEL_PREFIX_LEN;
  for (int32_t i = 0; i < nl && f->prefix; i++) {
    size_t len;
    const char *l = es_model_label(f->m, i, &len);
    if (!l || len < FT_LABEL_PREFIX_LEN || memcmp(l, FT_LABEL_PREFIX, FT_LABEL_PREFIX_LEN))
      f->prefix = 0;
  }
  f->slots = calloc((size_t)o->nthreads, sizeof *f->slots);
  f->free_stack = calloc((size_t)o->nthreads, sizeof *f->free_stack);
  if (!f->slots || !f->free_stack) goto oom;
  for (int i = 0; i < o->nthreads; i++) {
    f->slots[i].scratch = es_scratch_new(f->m);
    f->slots[i].preds = malloc((size_t)nl * sizeof(es_prediction_t));
    f->nslots = i + 1; /* ft_free() frees what was made */
    if (!f->slots[i].scratch || !f->slots[i].preds) goto oom;
    f->free_stack[f->nfree++] = i;
  }
  f->private_bytes = f->info.private_bytes + sizeof *f +
                     (uint64_t)o->nthreads * (f->info.scratch_bytes + sizeof(ft_slot) +
                                              sizeof(int) + (uint64_t)nl * sizeof(es_prediction_t));
  *inst = f;
  return 0;
oom:
  ft_free(f);
  return es__fail(err, ES_ENOMEM, -1, "%s: out of memory making %d scratch areas", path,
                  o->nthreads);
}

/* Runs one item in slot s (invariant 2). */
static void ft_item(const ft_inst *f, ft_slot *s, es_infer_item_t *it) {
  it->n = 0;
  it->status = 0;
  if (!it->text && it->len) {
    it->status = ES_EINVAL;
    return;
  }
  /* An empty text has no word: no prediction (fastText would predict on
   * the end-of-sentence token alone). */
  if (it->len == 0 || (it->len == 1 && it->text[0] == '\n')) return;
  if (memchr(it->text, '\n', it->len - 1)) {
    it->status = ES_EMULTILINE;
    return;
  }
  if (it->len > f->max_text) {
    it->status = ES_ERANGE;
    return;
  }
  int32_t want = es_predict_count(f->m, it->k);
  if (want < 0 || it->cap < want || (!it->out && want > 0)) {
    it->status = ES_EINVAL;
    return;
  }
  int32_t n = 0;
  int rc = es_predict(f->m, s->scratch, it->text, it->len, it->k, it->threshold, s->preds,
                      f->info.nlabels, &n);
  if (rc) {
    it->status = rc;
    return;
  }
  for (int32_t i = 0; i < n; i++) {
    size_t len = 0;
    const char *l = es_model_label(f->m, s->preds[i].label, &len);
    it->out[i].label = l + f->prefix;
    it->out[i].len = len - f->prefix;
    it->out[i].prob = s->preds[i].prob;
  }
  it->n = n;
}

static int ft_infer(void *inst, es_infer_item_t *items, size_t count, es_error_t *err) {
  ft_inst *f = inst;
  if (!f || (!items && count))
    return es__fail(err, ES_EINVAL, -1, "infer: no instance or no items");
  if (count > (size_t)f->max_batch)
    return es__fail(err, ES_EINVAL, -1, "infer: batch of %zu items, the instance takes at most %d",
                    count, f->max_batch);
  if (count == 0) return 0;
  pthread_mutex_lock(&f->mu);
  while (f->nfree == 0) pthread_cond_wait(&f->cv, &f->mu);
  int si = f->free_stack[--f->nfree];
  pthread_mutex_unlock(&f->mu);

  for (size_t i = 0; i < count; i++) ft_item(f, &f->slots[si], &items[i]);

  pthread_mutex_lock(&f->mu);
  f->free_stack[f->nfree++] = si;
  pthread_cond_signal(&f->cv);
  pthread_mutex_unlock(&f->mu);
  return 0;
}

static size_t ft_normalize(void *inst, const char *text, size_t len, char *out, size_t cap) {
  const ft_inst *f = inst;
  if (!text) len = 0;
  if (len == 0 || (len == 1 && text[0] == '\n')) { /* invariant 5 */
    if (cap >= 2) memcpy(out, "\n", 2);
    return 1;
  }
  if (memchr(text, '\n', len - 1) || len > f->max_text) return SIZE_MAX;
  const es_model_t *m = f->m;
  if (!m->has_norm) { /* the engine sees the text as it is */
    if (len < cap) {
      memcpy(out, text, len);
      out[len] = '\0';
    }
    return len;
  }
  if (len > FT_NORM_STACK) return SIZE_MAX;
  char tmp[FT_NORM_STACK + 1], form[2 * FT_NORM_STACK + 2];
  size_t n = es__normalize_labeled(&m->norm, m->label, m->label_len, text, len, tmp, form);
  if (n < cap) {
    memcpy(out, form, n);
    out[n] = '\0';
  }
  return n;
}

static void ft_describe(void *inst, es_backend_desc_t *out) {
  const ft_inst *f = inst;
  out->platform = "fasttext";
  out->format = f->format;
  out->nlabels = f->info.nlabels;
  out->mapped_bytes = f->info.file_bytes;
  out->private_bytes = f->private_bytes;
}

typedef struct ft_file {
  char name[64];
  int rank;
  uint64_t size;
} ft_file;

static int ft_file_cmp(const void *a, const void *b) {
  const ft_file *x = a, *y = b;
  if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int ft_variants(const char *dir, char (*names)[64], int cap, es_error_t *err) {
  DIR *d = opendir(dir);
  if (!d) return es__fail(err, ES_EIO, -1, "%s: cannot open: %s", dir, strerror(errno));
  ft_file *v = NULL;
  size_t n = 0, vcap = 0;
  char path[4096];
  for (struct dirent *e; (e = readdir(d));) {
    /* hidden files are half-written copies (rsync, editors, es_convert's .tmp) */
    if (e->d_name[0] == '.' || strlen(e->d_name) >= 64) continue;
    int rank = kind_rank(e->d_name);
    if (rank < 0) continue;
    struct stat st;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) continue;
    if (stat(path, &st) || !S_ISREG(st.st_mode)) continue;
    if (n == vcap) {
      size_t nc = vcap ? 2 * vcap : 8;
      ft_file *nv = realloc(v, nc * sizeof *nv);
      if (!nv) {
        free(v);
        closedir(d);
        return es__fail(err, ES_ENOMEM, -1, "%s: out of memory listing variants", dir);
      }
      v = nv;
      vcap = nc;
    }
    memcpy(v[n].name, e->d_name, strlen(e->d_name) + 1);
    v[n].rank = rank;
    v[n].size = (uint64_t)st.st_size;
    n++;
  }
  closedir(d);
  if (n) qsort(v, n, sizeof *v, ft_file_cmp);
  for (size_t i = 0; i < n && (int)i < cap; i++) memcpy(names[i], v[i].name, 64);
  free(v);
  return n > INT32_MAX ? INT32_MAX : (int)n;
}

static void ft_unload(void *inst) { ft_free(inst); }

static const es_backend_t fasttext_backend = {
    .name = "fasttext",
    .accepts = ft_accepts,
    .estimate = ft_estimate,
    .load = ft_load,
    .infer = ft_infer,
    .describe = ft_describe,
    .variants = ft_variants,
    .unload = ft_unload,
    .normalize = ft_normalize,
    .session_open = NULL,
    .session_feed = NULL,
    .session_close = NULL,
};

const es_backend_t *es_backend_fasttext(void) { return &fasttext_backend; }
