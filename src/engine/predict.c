/*
 * predict.c - from bytes of text to ranked labels, as fastText does it.
 *
 * The path of one line:
 *   1. es_line_feed() splits bytes into tokens (fastText's separators) and
 *      turns each token into features as it ends (process_token): a known
 *      word's row and its char n-gram buckets (for the most frequent words
 *      precomputed at load, as fastText's getSubwords: es__word_rows_build),
 *      an unknown word's n-gram buckets, a known label into the line's
 *      labels. The line text is never stored; only word hashes are kept,
 *      for word n-grams.
 *   2. Features are buffered a few at a time and summed into the hidden
 *      vector in order (flush), so rows can be prefetched ahead.
 *   3. es_line_end() adds the word n-gram features after all unigrams, as
 *      fastText's getLine does, and scales the sum by 1/count.
 *   4. The loss turns the hidden vector into scores and the heap of topk.h
 *      picks the best k, in fastText's tie order.
 * Each float operation is fastText's, in fastText's order; see kernels.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edgeserve/predict.h"
#include "hash.h"
#include "model_impl.h"
#include "reader.h"
#include "topk.h"

#define FEAT_BATCH    32
#define MIN_TOKCAP    4096
#define MAX_TOKCAP    (16u << 20)
#define INITIAL_WHASH 4096
#define NORM_CAP      ES__NORM_CAP

struct es_scratch {
  const es_model_t *m;
  uint64_t bucket_magic; /* fastmod reciprocal of bucket (0: no buckets) */
  int dim;
  int32_t nlabels;
  float *hidden, *overflow, *output;
  es__pair *heap;
  int32_t *stack; /* hs depth-first search: node ids */
  float *stack_score;
  /* Current token, stored as "<" + token so char n-grams need no copy. */
  uint8_t *tok;
  size_t tokcap, toklen; /* toklen counts the leading '<' */
  int tok_long;          /* token outgrew tok: unknown, streamed */
  int tok_long_label;    /* ... and it is an (unknown, dropped) label */
  int tok_long_at_start; /* tok[0] is still the word's '<' */
  uint32_t tok_hash;     /* long tokens: FNV of the token so far */
  int32_t feats[FEAT_BATCH];
  int nfeats;
  float *acc; /* where flush() sums: hidden, or overflow */
  int64_t nfeat_total;
  int32_t *whash;
  int64_t nwhash, whash_cap, whash_max;
  int whash_overflowed;
  int32_t *labels;
  int32_t nlab, labcap;
  int ended;
  int64_t ntokens;
  /* collect mode (training): rows recorded instead of summed */
  int collect, col_oom;
  int32_t *col;
  int64_t ncol, colcap;
  /* models with a normalizer: the raw line is buffered, then normalized */
  char *nraw, *ntmp, *nout;
  size_t nlen;
};

es_scratch_params_t es_scratch_default_params(void) {
  es_scratch_params_t p = {1 << 20, MIN_TOKCAP};
  return p;
}

static int uses_word_ngrams(const es_model_t *m) {
  return m->args.word_ngrams > 1 && m->args.bucket > 0 && m->dict.pruneidx_size != 0;
}

static size_t tokcap_for(const es_model_t *m, size_t want) {
  size_t cap = m->dict.max_len + 2;
  size_t win = m->args.maxn > 0 ? (size_t)m->args.maxn * 8 + 16 : 16; /* maxn < 0: none */
  if (cap < win) cap = win;
  if (cap < want) cap = want;
  return cap;
}

uint64_t es__scratch_bytes(const es_model_t *m) {
  uint64_t dim = (uint64_t)m->args.dim, nl = (uint64_t)m->dict.nlabels;
  uint64_t b = sizeof(struct es_scratch) + 3 * dim * 4 + nl * 4 + (nl + 1) * sizeof(es__pair) +
               tokcap_for(m, MIN_TOKCAP) + 16 * 4;
  if (m->args.loss == ES_LOSS_HS) b += 2 * nl * 8;
  if (m->has_norm) b += 4 * NORM_CAP + 3;
  if (uses_word_ngrams(m)) b += INITIAL_WHASH * 4;
  return b;
}

void es_scratch_free(es_scratch_t *s) {
  if (!s) return;
  free(s->hidden);
  free(s->overflow);
  free(s->output);
  free(s->heap);
  free(s->stack);
  free(s->stack_score);
  free(s->tok);
  free(s->whash);
  free(s->labels);
  free(s->col);
  free(s->nraw);
  free(s->ntmp);
  free(s->nout);
  free(s);
}

es_scratch_t *es_scratch_new_ex(const es_model_t *m, const es_scratch_params_t *p) {
  es_scratch_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->m = m;
  if (m->args.bucket > 0) s->bucket_magic = UINT64_MAX / (uint32_t)m->args.bucket + 1;
  s->dim = m->args.dim;
  s->nlabels = m->dict.nlabels;
  s->hidden = malloc((size_t)s->dim * sizeof(float));
  s->overflow = malloc((size_t)s->dim * sizeof(float));
  s->output = malloc((size_t)s->nlabels * sizeof(float));
  s->heap = malloc(((size_t)s->nlabels + 1) * sizeof(es__pair));
  s->tokcap = tokcap_for(m, p && p->token_bytes ? p->token_bytes : MIN_TOKCAP);
  s->tok = malloc(s->tokcap);
  s->labcap = 16;
  s->labels = malloc((size_t)s->labcap * sizeof(int32_t));
  int ok = s->hidden && s->overflow && s->output && s->heap && s->tok && s->labels;
  if (m->args.loss == ES_LOSS_HS) {
    s->stack = malloc(2 * (size_t)s->nlabels * sizeof(int32_t));
    s->stack_score = malloc(2 * (size_t)s->nlabels * sizeof(float));
    ok = ok && s->stack && s->stack_score;
  }
  if (m->has_norm) {
    s->nraw = malloc(NORM_CAP);
    s->ntmp = malloc(NORM_CAP + 1);
    s->nout = malloc(2 * NORM_CAP + 2);
    ok = ok && s->nraw && s->ntmp && s->nout;
  }
  if (uses_word_ngrams(m)) {
    s->whash_cap = INITIAL_WHASH;
    s->whash_max = p && p->max_line_words > 0 ? p->max_line_words : (1 << 20);
    if (s->whash_max < m->args.word_ngrams) s->whash_max = m->args.word_ngrams;
    if (s->whash_cap > s->whash_max) s->whash_cap = s->whash_max;
    s->whash = malloc((size_t)s->whash_cap * sizeof(int32_t));
    ok = ok && s->whash;
  }
  if (!ok) {
    es_scratch_free(s);
    return NULL;
  }
  es_line_begin(s);
  return s;
}

es_scratch_t *es_scratch_new(const es_model_t *m) { return es_scratch_new_ex(m, NULL); }

es_scratch_t *es__scratch_collect_new(const es_model_t *m) {
  es_scratch_params_t p = es_scratch_default_params();
  p.max_line_words = INT64_MAX / 8;
  es_scratch_t *s = es_scratch_new_ex(m, &p);
  if (!s) return NULL;
  s->collect = 1;
  s->colcap = 1024;
  s->col = malloc((size_t)s->colcap * sizeof *s->col);
  if (!s->col) {
    es_scratch_free(s);
    return NULL;
  }
  return s;
}

const int32_t *es__line_features(const es_scratch_t *s, int64_t *n, int *oom) {
  *n = s->ncol;
  *oom = s->col_oom;
  return s->col;
}

int64_t es__line_ntokens(const es_scratch_t *s) { return s->ntokens; }

void es_line_begin(es_scratch_t *s) {
  memset(s->hidden, 0, (size_t)s->dim * sizeof(float));
  s->acc = s->hidden;
  s->toklen = 1;
  s->tok[0] = '<';
  s->tok_long = 0;
  s->nfeats = 0;
  s->nfeat_total = 0;
  s->nwhash = 0;
  s->whash_overflowed = 0;
  s->nlab = 0;
  s->ended = 0;
  s->ntokens = 0;
  s->ncol = 0;
  s->col_oom = 0;
  s->nlen = 0;
}

/* ---- features ---------------------------------------------------------- */

/* Collect mode: appends the buffered rows to the line's feature list. */
static void collect(es_scratch_t *s, int n) {
  if (s->ncol + n > s->colcap) {
    int64_t cap = s->colcap * 2;
    int32_t *nc = realloc(s->col, (size_t)cap * sizeof *nc);
    if (!nc) {
      s->col_oom = 1;
      return;
    }
    s->col = nc;
    s->colcap = cap;
  }
  memcpy(s->col + s->ncol, s->feats, (size_t)n * sizeof *s->feats);
  s->ncol += n;
}

/* Sums the buffered features into s->acc, in order (or records them, in
 * collect mode). Quantized rows are decoded on the fly: centroid values
 * (times the row's norm with qnorm), as fastText's ProductQuantizer::addcode;
 * int8/int4 rows as scale * value. */
static void flush(es_scratch_t *s) {
  const es_model_t *m = s->m;
  int n = s->nfeats;
  if (!n) return;
  if (s->collect) {
    collect(s, n);
    s->nfeat_total += n;
    s->nfeats = 0;
    return;
  }
  if (m->in.scheme == ES__MAT_I8 || m->in.scheme == ES__MAT_I4) {
    m->k->add_rows_q(s->acc, m->in.data, m->in.stride, m->in.scales, s->feats, n, s->dim,
                     m->in.scheme == ES__MAT_I8 ? 8 : 4);
  } else if (!m->in.quant) {
    m->k->add_rows(s->acc, m->in.data, s->feats, n, s->dim);
  } else {
    const es__matrix *mx = &m->in;
    float norms[FEAT_BATCH];
    if (mx->qnorm) /* the norm quantizer is 1-d: centroid c is float c */
      for (int i = 0; i < n; i++)
        norms[i] = es__ld_f32(mx->npq.centroids + 4 * (size_t)mx->norm_codes[s->feats[i]]);
    if (mx->pairs) {
      es__pq2rows pq = {mx->codes, mx->pairs, mx->pq.nsubq, mx->pq.lastdsub};
      m->k->add_rows_pq2(s->acc, &pq, s->feats, mx->qnorm ? norms : NULL, n);
    } else {
      es__pqrows pq = {mx->codes, mx->pq.centroids, mx->pq.nsubq, mx->pq.dsub, mx->pq.lastdsub};
      m->k->add_rows_pq(s->acc, &pq, s->feats, mx->qnorm ? norms : NULL, n);
    }
  }
  s->nfeat_total += n;
  s->nfeats = 0;
}

/* Queues a feature row and starts fetching it: by the time flush() sums
 * the batch, the row is usually in cache. Not PQ rows: their codes are
 * fetched by the kernel's first pass over the batch, which measured faster
 * than a prefetch here, whose address waits on the pruned index. */
static inline void push_row(es_scratch_t *s, int32_t row) {
  const es__matrix *in = &s->m->in;
  if (s->collect) {
    /* no matrix to prefetch from */
  } else if (in->scheme == ES__MAT_I8 || in->scheme == ES__MAT_I4) {
    const uint8_t *p = in->data + (size_t)row * in->stride;
    for (size_t o = 0; o < in->stride; o += 64) __builtin_prefetch(p + o);
    __builtin_prefetch(in->scales + 4 * (size_t)row);
  } else if (!in->quant) {
    const uint8_t *p = in->data + (size_t)row * (size_t)s->dim * 4;
    for (int o = 0; o < s->dim * 4; o += 64) __builtin_prefetch(p + o);
  }
  s->feats[s->nfeats++] = row;
  if (s->nfeats == FEAT_BATCH) flush(s);
}

/* fastText's pushHash: a bucket through the pruned index to a row. */
static inline void push_bucket(es_scratch_t *s, uint32_t bucket) {
  const es__dict *d = &s->m->dict;
  int32_t id = (int32_t)bucket;
  if (d->pruneidx_size == 0 || id < 0) return;
  if (d->pruneidx_size > 0) {
    id = es__dict_prune(d, id);
    if (id < 0) return;
  }
  push_row(s, d->nwords + id);
}

/* h % bucket for 32-bit h without a division (Lemire's fastmod: exact for
 * every 32-bit h and divisor). */
static inline uint32_t bucket_of(const es_scratch_t *s, uint32_t h) {
  uint64_t low = s->bucket_magic * h, d = (uint32_t)s->m->args.bucket;
#if defined(__SIZEOF_INT128__)
  return (uint32_t)(((unsigned __int128)low * d) >> 64);
#else /* 32-bit targets: the high 64 bits of a 64 x 32-bit product */
  return (uint32_t)(((low >> 32) * d + (((low & 0xffffffffu) * d) >> 32)) >> 32);
#endif
}

static inline int is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

/* Char n-grams of w[0..len) (which is "<" + word + ">" when final), for the
 * start positions from `from` on, as fastText's computeSubwords. When not
 * final, stops at the first start whose maxn-character window is not yet
 * complete in w and returns it; `at_start`: w[0] is the word's '<'. */
static size_t char_ngrams(es_scratch_t *s, const uint8_t *w, size_t len, size_t from, int final,
                          int at_start) {
  const es_model_args_t *a = &s->m->args;
  if (a->bucket == 0) return len; /* fastText would divide by zero; no buckets */
  for (size_t i = from; i < len; i++) {
    if (is_cont(w[i])) continue;
    if (!final) {
      size_t j = i;
      for (int32_t n = 1; n <= a->maxn && j < len; n++) {
        j++;
        while (j < len && is_cont(w[j])) j++;
      }
      if (j >= len) return i;
    }
    uint32_t h = ES__FNV_INIT;
    size_t j = i;
    for (int32_t n = 1; j < len && n <= a->maxn; n++) {
      h = es__fnv_step(h, w[j++]);
      while (j < len && is_cont(w[j])) h = es__fnv_step(h, w[j++]);
      if (n >= a->minn && !(n == 1 && ((at_start && i == 0) || (final && j == len))))
        push_bucket(s, bucket_of(s, h));
    }
  }
  return len;
}

static void push_word_hash(es_scratch_t *s, uint32_t h);

/* One complete token (fastText's getLine loop body). Returns 1 when the
 * token is "</s>", which ends the line. */
static int process_token(es_scratch_t *s, const uint8_t *t, size_t len) {
  const es_model_t *m = s->m;
  s->ntokens++;
  const es__dict *d = &m->dict;
  uint32_t h = es__hash(t, len);
  int32_t wid = es__dict_find(d, (const char *)t, len);
  int is_eos = len == 4 && memcmp(t, "</s>", 4) == 0;
  int is_label =
      wid >= 0 ? wid >= d->nwords : len >= m->label_len && memcmp(t, m->label, m->label_len) == 0;
  if (!is_label) {
    if (wid >= 0 && wid < m->nwrows) {
      for (uint32_t i = m->wrow_at[wid]; i < m->wrow_at[wid + 1]; i++) push_row(s, m->wrows[i]);
    } else if (wid >= 0) {
      push_row(s, wid);
      if (m->args.maxn > 0 && !is_eos) {
        s->tok[s->toklen] = '>';
        char_ngrams(s, s->tok, s->toklen + 1, 0, 1, 1);
      }
    } else if (!is_eos && m->args.maxn > 0) {
      s->tok[s->toklen] = '>';
      char_ngrams(s, s->tok, s->toklen + 1, 0, 1, 1);
    }
    push_word_hash(s, h);
  } else if (wid >= 0) {
    if (s->nlab == s->labcap) {
      int32_t *nl = realloc(s->labels, (size_t)s->labcap * 2 * sizeof(int32_t));
      if (nl) {
        s->labels = nl;
        s->labcap *= 2;
      }
    }
    if (s->nlab < s->labcap) s->labels[s->nlab++] = wid - d->nwords;
  }
  return is_eos;
}

/* Appends v to the growing array *a (*n used, *cap allocated). */
static int append_u32(uint32_t **a, size_t *n, size_t *cap, uint32_t v) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 256;
    uint32_t *na = realloc(*a, c * sizeof *na);
    if (!na) return ES_ENOMEM;
    *a = na;
    *cap = c;
  }
  (*a)[(*n)++] = v;
  return 0;
}

int es__word_rows_build(es_model_t *m, uint64_t budget) {
  const es__dict *d = &m->dict;
  es_scratch_t *s = es__scratch_collect_new(m);
  uint32_t *rows = NULL, *at = NULL;
  size_t nrows = 0, rcap = 0, nat = 0, acap = 0;
  int rc = s ? append_u32(&at, &nat, &acap, 0) : ES_ENOMEM;
  /* Words are in decreasing frequency: the budget goes to the first ones. */
  for (int32_t w = 0; !rc && w < d->nwords; w++) {
    const char *t = es__dict_str(d, w);
    size_t len = strlen(t);
    es_line_begin(s);
    push_row(s, w); /* as process_token does for a known word */
    if (m->args.maxn > 0 && w != d->eos) {
      memcpy(s->tok + 1, t, len); /* tok holds "<" + word; tokcap > max_len + 1 */
      s->tok[len + 1] = '>';
      char_ngrams(s, s->tok, len + 2, 0, 1, 1);
    }
    flush(s);
    if (s->col_oom) rc = ES_ENOMEM;
    if (rc || (nrows + (size_t)s->ncol + nat + 1) * 4 > budget) break;
    for (int64_t i = 0; !rc && i < s->ncol; i++)
      rc = append_u32(&rows, &nrows, &rcap, (uint32_t)s->col[i]);
    if (!rc) rc = append_u32(&at, &nat, &acap, (uint32_t)nrows);
  }
  es_scratch_free(s);
  if (rc || nat < 2) {
    free(rows);
    free(at);
    return rc;
  }
  uint32_t *r2 = realloc(rows, nrows * sizeof *rows), *a2 = realloc(at, nat * sizeof *at);
  m->wrows = (int32_t *)(r2 ? r2 : rows);
  m->wrow_at = a2 ? a2 : at;
  m->nwrows = (int32_t)nat - 1;
  m->private_bytes += (uint64_t)(nrows + nat) * 4;
  return 0;
}

/* ---- word n-grams ------------------------------------------------------ */

/* Word n-gram features of the hashes, for start positions [0, upto). */
static void word_ngrams(es_scratch_t *s, int64_t upto) {
  int64_t n = s->m->args.word_ngrams;
  uint64_t bucket = (uint64_t)s->m->args.bucket;
  for (int64_t i = 0; i < upto; i++) {
    uint64_t h = (uint64_t)(int64_t)s->whash[i];
    for (int64_t j = i + 1; j < s->nwhash && j < i + n; j++) {
      h = es__ngram_step(h, s->whash[j]);
      push_bucket(s, (uint32_t)(h % bucket));
    }
  }
}

static void push_word_hash(es_scratch_t *s, uint32_t h) {
  if (!s->whash) return;
  if (s->nwhash == s->whash_cap) {
    int64_t cap = s->whash_cap * 2;
    if (cap > s->whash_max) cap = s->whash_max;
    int32_t *nw = cap > s->whash_cap ? realloc(s->whash, (size_t)cap * sizeof(int32_t)) : NULL;
    if (nw) {
      s->whash = nw;
      s->whash_cap = cap;
    } else {
      /* At the bound (or out of memory): sum the n-grams that start in the
       * stored part into a separate accumulator and keep only the last
       * wordNgrams-1 hashes. Exactness ends here; memory stays bounded. */
      int64_t keep = s->m->args.word_ngrams - 1;
      if (keep > s->nwhash) keep = s->nwhash;
      flush(s);
      if (!s->whash_overflowed) memset(s->overflow, 0, (size_t)s->dim * sizeof(float));
      s->whash_overflowed = 1;
      s->acc = s->overflow;
      word_ngrams(s, s->nwhash - keep);
      flush(s);
      s->acc = s->hidden;
      memmove(s->whash, s->whash + s->nwhash - keep, (size_t)keep * sizeof(int32_t));
      s->nwhash = keep;
    }
  }
  s->whash[s->nwhash++] = (int32_t)h;
}

/* ---- tokens ------------------------------------------------------------ */

/* The token outgrew the buffer: it cannot be in the dictionary (longer than
 * any entry), so stream it: emit the char n-grams whose windows are complete
 * and keep only the tail. Labels are dropped, as unknown labels are. */
static void spill_token(es_scratch_t *s) {
  const es_model_t *m = s->m;
  if (!s->tok_long) {
    s->tok_long = 1;
    s->tok_long_label =
        s->toklen - 1 >= m->label_len && memcmp(s->tok + 1, m->label, m->label_len) == 0;
    s->tok_long_at_start = 1;
    s->tok_hash = es__hash(s->tok + 1, s->toklen - 1);
  }
  if (s->tok_long_label || m->args.maxn <= 0) {
    s->toklen = 1;
    return;
  }
  size_t next = char_ngrams(s, s->tok, s->toklen, 0, 0, s->tok_long_at_start);
  if (next == 0) {
    /* One "character" (a run of continuation bytes) fills the buffer: grow
     * up to MAX_TOKCAP; past it, cut the run (documented deviation). */
    uint8_t *nt = s->tokcap < MAX_TOKCAP ? realloc(s->tok, s->tokcap * 2) : NULL;
    if (nt) {
      s->tok = nt;
      s->tokcap *= 2;
      return;
    }
    next = s->toklen / 2;
    while (next > 1 && is_cont(s->tok[next])) next--;
    if (next == 0) next = 1;
  }
  memmove(s->tok, s->tok + next, s->toklen - next);
  s->toklen -= next;
  s->tok_long_at_start = 0;
}

static int end_long_token(es_scratch_t *s) {
  s->ntokens++;
  if (!s->tok_long_label) {
    if (s->m->args.maxn > 0) {
      s->tok[s->toklen] = '>';
      char_ngrams(s, s->tok, s->toklen + 1, 0, 1, s->tok_long_at_start);
    }
    push_word_hash(s, s->tok_hash);
  }
  s->tok_long = 0;
  s->tok[0] = '<'; /* spilling moved the tail of the token over it */
  s->toklen = 1;
  return 0;
}

/* Ends the token in progress; returns 1 when it was "</s>". */
static int end_token(es_scratch_t *s) {
  if (s->tok_long) return end_long_token(s);
  int eos = process_token(s, s->tok + 1, s->toklen - 1);
  s->toklen = 1;
  return eos;
}

static inline int is_sep(uint8_t c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f' || c == '\0';
}

static size_t feed_raw(es_scratch_t *s, const char *buf, size_t len, int *done);

size_t es__normalize_labeled(const es_normalizer_t *n, const char *label, size_t label_len,
                             const char *in, size_t len, char *tmp, char *out) {
  size_t o = 0, t = 0, i = 0;
  if (len > ES__NORM_CAP) len = ES__NORM_CAP;
  while (i < len) {
    while (i < len && is_sep((uint8_t)in[i])) i++;
    size_t st = i;
    while (i < len && !is_sep((uint8_t)in[i])) i++;
    if (i == st) break;
    size_t tl = i - st;
    if (tl >= label_len && !memcmp(in + st, label, label_len)) {
      memcpy(out + o, in + st, tl);
      o += tl;
      out[o++] = ' ';
    } else {
      if (t) tmp[t++] = ' ';
      memcpy(tmp + t, in + st, tl);
      t += tl;
    }
  }
  return o + es_normalize(n, tmp, t, out + o, 2 * ES__NORM_CAP + 2 - o);
}

/* The buffered raw line, normalized, then tokenized. */
static void feed_normalized(const es_model_t *m, es_scratch_t *s, int newline) {
  size_t o =
      es__normalize_labeled(&m->norm, m->label, m->label_len, s->nraw, s->nlen, s->ntmp, s->nout);
  if (newline) s->nout[o++] = '\n';
  int d;
  feed_raw(s, s->nout, o, &d);
  s->nlen = 0;
}

size_t es_line_feed(const es_model_t *m, es_scratch_t *s, const char *buf, size_t len, int *done) {
  if (!m->has_norm) return feed_raw(s, buf, len, done);
  /* Whole lines are normalized (the extension is at the end): keep up to
   * NORM_CAP bytes of the line, drop the rest (documented limit). */
  *done = 0;
  const char *nl = memchr(buf, '\n', len);
  size_t take = nl ? (size_t)(nl - buf) : len;
  size_t room = NORM_CAP - s->nlen;
  memcpy(s->nraw + s->nlen, buf, take < room ? take : room);
  s->nlen += take < room ? take : room;
  if (!nl) return len;
  feed_normalized(m, s, 1);
  *done = 1;
  return take + 1;
}

static size_t feed_raw(es_scratch_t *s, const char *buf, size_t len, int *done) {
  const uint8_t *p = (const uint8_t *)buf;
  *done = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = p[i];
    if (!is_sep(c)) {
      /* One byte stays free for the closing '>'. */
      if (s->toklen + 1 >= s->tokcap) spill_token(s);
      if (s->tok_long) s->tok_hash = es__fnv_step(s->tok_hash, c);
      s->tok[s->toklen++] = c;
      continue;
    }
    if (s->toklen > 1 || s->tok_long) {
      if (end_token(s)) { /* a literal "</s>" token ends the line */
        *done = 1;
        return c == '\n' ? i : i + 1;
      }
    }
    if (c == '\n') {
      process_token(s, (const uint8_t *)"</s>", 4);
      *done = 1;
      return i + 1;
    }
  }
  return len;
}

/* ---- prediction -------------------------------------------------------- */

void es_line_end(const es_model_t *m, es_scratch_t *s) {
  if (s->ended) return;
  if (m->has_norm && s->nlen) feed_normalized(m, s, 0);
  if (s->toklen > 1 || s->tok_long) end_token(s);
  flush(s);
  if (s->whash) {
    if (s->whash_overflowed) s->acc = s->overflow;
    word_ngrams(s, s->nwhash);
    flush(s);
    s->acc = s->hidden;
    if (s->whash_overflowed)
      for (int j = 0; j < s->dim; j++) s->hidden[j] += s->overflow[j];
  }
  if (s->nfeat_total > 0) {
    float scale = (float)(1.0 / (double)s->nfeat_total);
    for (int j = 0; j < s->dim; j++) s->hidden[j] *= scale;
  }
  (void)m;
  s->ended = 1;
}

const int32_t *es_line_labels(const es_scratch_t *s, int32_t *count) {
  *count = s->nlab;
  return s->labels;
}

int64_t es_line_nfeatures(const es_scratch_t *s) { return s->nfeat_total; }

int32_t es_predict_count(const es_model_t *m, int32_t k) {
  if (k == -1) return m->dict.nlabels;
  if (k <= 0) return -1;
  return k < m->dict.nlabels ? k : m->dict.nlabels;
}

static inline float std_log(float x) { return (float)log((double)x + 1e-5); }

/* Scores of every output row: sequential dot products (dotRow). */
static void output_scores(const es_model_t *m, const float *h, float *out) {
  const es__matrix *mx = &m->out;
  if (!mx->quant) {
    m->k->dot_rows(mx->data, mx->m, (int)mx->n, h, out);
    return;
  }
  const es__pqview *pq = &mx->pq;
  for (int64_t r = 0; r < mx->m; r++) {
    const uint8_t *code = mx->codes + (size_t)r * pq->nsubq;
    float res = 0.0f;
    for (int32_t j = 0; j < pq->nsubq; j++) {
      const uint8_t *c = es__pqview_centroid(pq, j, code[j]);
      int d = j == pq->nsubq - 1 ? pq->lastdsub : pq->dsub;
      const float *x = h + j * pq->dsub;
      for (int t = 0; t < d; t++) res += x[t] * es__ld_f32(c + 4 * t);
    }
    out[r] = res * es__matrix_norm(mx, r);
  }
}

static float dot_output_row(const es_model_t *m, const float *h, int64_t r) {
  const es__matrix *mx = &m->out;
  if (!mx->quant) return es__dot_row(mx->data + (size_t)r * mx->n * 4, h, (int)mx->n);
  const es__pqview *pq = &mx->pq;
  const uint8_t *code = mx->codes + (size_t)r * pq->nsubq;
  float res = 0.0f;
  for (int32_t j = 0; j < pq->nsubq; j++) {
    const uint8_t *c = es__pqview_centroid(pq, j, code[j]);
    int d = j == pq->nsubq - 1 ? pq->lastdsub : pq->dsub;
    for (int t = 0; t < d; t++) res += h[j * pq->dsub + t] * es__ld_f32(c + 4 * t);
  }
  return res * es__matrix_norm(mx, r);
}

/* Loss::findKBest. Returns the heap size. */
static long find_k_best(es_scratch_t *s, int32_t k, float threshold, const float *out) {
  es__pair *heap = s->heap;
  long len = 0;
  for (int32_t i = 0; i < s->nlabels; i++) {
    if (out[i] < threshold) continue;
    /* A full heap rejects x when std_log(x) < the top's score. When x + 1e-5
     * is below the top's p + 1e-5 by a relative 1e-5, the two logs differ by
     * more than a float ulp (|log| < 16 here), so std_log(x) is strictly
     * smaller and fastText rejects x too: skip the log. */
    if (len == k && (double)out[i] + 1e-5 < ((double)out[heap[0].id] + 1e-5) * (1.0 - 1e-5))
      continue;
    float lp = std_log(out[i]);
    if (len == k && lp < heap[0].score) continue;
    heap[len].score = lp;
    heap[len].id = i;
    es__heap_push(heap, ++len);
    if (len > k) {
      es__heap_pop(heap, len);
      len--;
    }
  }
  return len;
}

/* HierarchicalSoftmaxLoss::dfs without recursion: an explicit stack visits
 * the nodes in the same order, so pruning sees the same heap. */
static long hs_search(es_scratch_t *s, int32_t k, float threshold) {
  const es_model_t *m = s->m;
  int32_t osz = s->nlabels;
  float min_score = std_log(threshold);
  es__pair *heap = s->heap;
  long len = 0;
  int64_t top = 0;
  s->stack[top] = 2 * osz - 2;
  s->stack_score[top++] = 0.0f;
  while (top > 0) {
    top--;
    int32_t node = s->stack[top];
    float score = s->stack_score[top];
    if (score < min_score) continue;
    if (len == k && score < heap[0].score) continue;
    if (m->tree_left[node] == -1 && m->tree_right[node] == -1) {
      heap[len].score = score;
      heap[len].id = node;
      es__heap_push(heap, ++len);
      if (len > k) {
        es__heap_pop(heap, len);
        len--;
      }
      continue;
    }
    float f = dot_output_row(m, s->hidden, node - osz);
    f = (float)(1. / (1.0f + expf(-f)));
    /* Right is pushed first so that left is visited first. */
    s->stack[top] = m->tree_right[node];
    s->stack_score[top++] = score + std_log(f);
    s->stack[top] = m->tree_left[node];
    s->stack_score[top++] = score + std_log((float)(1.0 - (double)f));
  }
  return len;
}

int es_line_predict(const es_model_t *m, es_scratch_t *s, int32_t k, float threshold,
                    es_prediction_t *out, int32_t cap, int32_t *n) {
  *n = 0;
  int32_t want = es_predict_count(m, k);
  if (want < 0 || cap < want) return ES_EINVAL;
  es_line_end(m, s);
  if (s->nfeat_total == 0) return 0;
  if (k == -1) k = s->nlabels;
  long len;
  float *o = s->output;
  switch (m->args.loss) {
  case ES_LOSS_HS: len = hs_search(s, k, threshold); break;
  case ES_LOSS_SOFTMAX: {
    output_scores(m, s->hidden, o);
    float max = o[0], z = 0.0f;
    for (int32_t i = 0; i < s->nlabels; i++) max = o[i] > max ? o[i] : max;
    for (int32_t i = 0; i < s->nlabels; i++) {
      o[i] = (float)exp((double)(o[i] - max));
      z += o[i];
    }
    for (int32_t i = 0; i < s->nlabels; i++) o[i] /= z;
    len = find_k_best(s, k, threshold, o);
    break;
  }
  default: /* ova, ns: the sigmoid table */
    output_scores(m, s->hidden, o);
    for (int32_t i = 0; i < s->nlabels; i++) {
      float x = o[i];
      if (!(x >= -8)) /* and NaN (from a hostile file): never an index */
        o[i] = 0.0f;
      else if (x > 8)
        o[i] = 1.0f;
      else
        o[i] = m->sigmoid_table[(int64_t)((x + 8) * 512 / 8 / 2)];
    }
    len = find_k_best(s, k, threshold, o);
    break;
  }
  es__heap_sort(s->heap, len);
  for (long i = 0; i < len; i++) {
    out[i].label = s->heap[i].id;
    out[i].logp = s->heap[i].score;
    out[i].prob = expf(s->heap[i].score);
  }
  *n = (int32_t)len;
  return 0;
}

int es_predict(const es_model_t *m, es_scratch_t *s, const char *text, size_t len, int32_t k,
               float threshold, es_prediction_t *out, int32_t cap, int32_t *n) {
  *n = 0;
  int32_t want = es_predict_count(m, k);
  if (want < 0 || cap < want) return ES_EINVAL;
  const char *nl = len ? memchr(text, '\n', len) : NULL;
  if (nl && nl != text + len - 1) return ES_EMULTILINE;
  es_line_begin(s);
  int done = 0;
  size_t used = es_line_feed(m, s, text, len, &done);
  if (!done && used == len) es_line_feed(m, s, "\n", 1, &done);
  return es_line_predict(m, s, k, threshold, out, cap, n);
}

int es_predict_batch(const es_model_t *m, es_scratch_t *s, const char *const *texts,
                     const size_t *lens, size_t count, int32_t k, float threshold,
                     es_prediction_t *out, int32_t cap, int32_t *n) {
  for (size_t i = 0; i < count; i++) {
    int rc = es_predict(m, s, texts[i], lens[i], k, threshold, out + i * (size_t)cap, cap, &n[i]);
    if (rc) return rc;
  }
  return 0;
}
