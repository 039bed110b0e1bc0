/*
 * model.c - opening fastText 0.9.2 .bin/.ftz files by memory mapping.
 *
 * The loader walks the file once with a bounds-checked reader (reader.h),
 * validates every count and size before using it, and records where each
 * matrix block lies in the mapping. It copies nothing but what fastText
 * itself rebuilds on load: the word lookup table, the pruned-index map and,
 * for hs models, the Huffman tree. The invariants it establishes are listed
 * in model_impl.h.
 */
#define _GNU_SOURCE
#include "model_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "reader.h"

#define FT_MAGIC   793712314
#define FT_VERSION 12
#define MAX_DIM    (1 << 20)
#define MAX_MAXN   1024

es_model_params_t es_model_default_params(void) {
  es_model_params_t p = {ES_SIMD_AUTO, 0, 0};
  return p;
}

/* The table has exactly ceil(size / 0.7) slots (no power-of-two rounding):
 * the low half of the keyed hash picks the slot by multiply-shift, the high
 * half gives the tag kept beside the id. */
static inline uint32_t slot_of(const es__dict *d, uint64_t h) {
  return (uint32_t)(((uint64_t)(uint32_t)h * d->nslots) >> 32);
}

static inline uint32_t tag_of(const es__dict *d, uint64_t h) {
  return (uint32_t)(h >> 32) & ~d->id_mask;
}

int32_t es__dict_find(const es__dict *d, const char *s, size_t len) {
  uint64_t h = es__keyed_hash(s, len, d->key);
  uint32_t i = slot_of(d, h), tag = tag_of(d, h), idm = d->id_mask;
  for (;;) {
    uint32_t v = d->table[i];
    if (!v) return -1;
    if ((v & ~idm) == tag) {
      v &= idm;
      /* strncmp stops at the entry's NUL: a shorter entry is never read
       * past its end (tokens contain no NUL). */
      const char *e = es__dict_str(d, (int32_t)(v - 1));
      if (strncmp(e, s, len) == 0 && e[len] == 0) return (int32_t)(v - 1);
    }
    if (++i == d->nslots) i = 0;
  }
}

static inline void pval_set(es__dict *d, uint32_t i, uint32_t val) {
  uint64_t bit = (uint64_t)i * (uint64_t)d->pval_bits, v, mask = (1ull << d->pval_bits) - 1;
  memcpy(&v, d->pvals + (bit >> 3), 8);
  v = (v & ~(mask << (bit & 7))) | ((uint64_t)val << (bit & 7));
  memcpy(d->pvals + (bit >> 3), &v, 8);
}

float es__matrix_norm(const es__matrix *mx, int64_t i) {
  if (!mx->qnorm) return 1.0f;
  return es__ld_f32(es__pqview_centroid(&mx->npq, 0, mx->norm_codes[i]));
}

/* A seed the model file cannot know: getrandom(), else addresses and time. */
static uint64_t random_key(const void *salt) {
  uint64_t k = 0;
  if (getrandom(&k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    k = (uint64_t)(uintptr_t)salt ^ ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec;
  }
  return es__mix64(k) | 1;
}

static void dict_free(es__dict *d) {
  free(d->offsets);
  free(d->table);
  free(d->pbits);
  free(d->prank);
  free(d->pkeys);
  free(d->pvals);
  memset(d, 0, sizeof *d);
}

static int load_args(es__reader *r, es_model_t *m) {
  es_model_args_t *a = &m->args;
  size_t at = r->pos; /* 8 in a fastText file */
  int32_t *fields[] = {&a->dim,    &a->ws,          &a->epoch, &a->min_count,
                       &a->neg,    &a->word_ngrams, &a->loss,  &a->model,
                       &a->bucket, &a->minn,        &a->maxn,  &a->lr_update_rate};
  static const char *names[] = {
      "args.dim",  "args.ws",    "args.epoch",  "args.minCount", "args.neg",  "args.wordNgrams",
      "args.loss", "args.model", "args.bucket", "args.minn",     "args.maxn", "args.lrUpdateRate"};
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) es__read_i32(r, fields[i], names[i]);
  if (es__read_f64(r, &a->t, "args.t")) return r->failed;
  if (m->version == 11 && a->model == ES_MODEL_SUPERVISED) a->maxn = 0;
  if (a->dim <= 0 || a->dim > MAX_DIM)
    return es__reader_fail(r, ES_EFORMAT, at, "dim %d at byte %zu is out of range (1..%d)", a->dim,
                           at, MAX_DIM);
  if (a->loss < ES_LOSS_HS || a->loss > ES_LOSS_OVA)
    return es__reader_fail(r, ES_EFORMAT, at + 24, "unknown loss code %d at byte %zu", a->loss,
                           at + 24);
  if (a->model < ES_MODEL_CBOW || a->model > ES_MODEL_SUPERVISED)
    return es__reader_fail(r, ES_EFORMAT, at + 28, "unknown model code %d at byte %zu", a->model,
                           at + 28);
  if (a->model != ES_MODEL_SUPERVISED)
    return es__reader_fail(r, ES_EUNSUPPORTED, at + 28,
                           "this is a %s word-vector model; edgeserve serves supervised "
                           "classifiers only",
                           a->model == ES_MODEL_CBOW ? "cbow" : "skipgram");
  if (a->bucket < 0)
    return es__reader_fail(r, ES_EFORMAT, at + 32, "bucket %d at byte %zu is negative", a->bucket,
                           at + 32);
  if (a->maxn > MAX_MAXN || a->minn > MAX_MAXN)
    return es__reader_fail(r, ES_EFORMAT, at + 36,
                           "char n-gram lengths minn %d / maxn %d at byte %zu exceed %d", a->minn,
                           a->maxn, at + 36, MAX_MAXN);
  if (a->word_ngrams > 1 << 16)
    return es__reader_fail(r, ES_EFORMAT, at + 20, "wordNgrams %d at byte %zu is implausible",
                           a->word_ngrams, at + 20);
  return 0;
}

/* The pruned index: pairs (bucket, row) in file order; a repeated bucket
 * keeps its last row, as fastText's map does. Two passes: mark the buckets,
 * then store each row at its bucket's rank. Rows are range-checked against
 * the input matrix once it is known (load()). */
static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int load_prune(es__reader *r, es_model_t *m) {
  es__dict *d = &m->dict;
  size_t start = r->pos;
  int32_t bucket = m->args.bucket;
  d->prune_start = start;
  if ((uint64_t)d->pruneidx_size > (r->len - r->pos) / 8)
    return es__reader_fail(r, ES_EFORMAT, start,
                           "pruneidx_size %lld cannot fit in the %zu bytes left at byte %zu",
                           (long long)d->pruneidx_size, r->len - r->pos, start);
  if (bucket <= 0)
    return es__reader_fail(r, ES_EFORMAT, start,
                           "pruned index at byte %zu, but the model has no buckets", start);
  size_t n = (size_t)d->pruneidx_size, nwords64 = ((size_t)bucket + 63) / 64;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  d->hw_popcnt = __builtin_cpu_supports("popcnt");
#endif
  /* The bitmap costs 12 bytes per 64 buckets whatever is kept; when that is
   * more than 16 bytes per kept bucket (few kept of many, or a hostile
   * bucket count), the sorted list of kept buckets is used instead. */
  int sparse = (uint64_t)nwords64 * 12 > (uint64_t)n * 16 + 65536;
  uint32_t maxval = 0;
  if (sparse) {
    d->pkeys = malloc(n * sizeof *d->pkeys);
    if (!d->pkeys) return es__reader_fail(r, ES_ENOMEM, start, "out of memory");
  } else {
    d->pbits = calloc(nwords64, 8);
    d->prank = calloc(nwords64, 4);
    if (!d->pbits || !d->prank) return es__reader_fail(r, ES_ENOMEM, start, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    int32_t key, val;
    size_t epos = r->pos;
    es__read_i32(r, &key, "pruned index key");
    if (es__read_i32(r, &val, "pruned index value")) return r->failed;
    if (key < 0 || key >= bucket || val < 0)
      return es__reader_fail(r, ES_EFORMAT, epos,
                             "pruned index entry %zu at byte %zu is out of range (%d -> %d, "
                             "bucket %d)",
                             i, epos, key, val, bucket);
    if (sparse)
      d->pkeys[i] = (uint32_t)key;
    else
      d->pbits[(uint32_t)key >> 6] |= 1ull << (key & 63);
    if ((uint32_t)val > maxval) maxval = (uint32_t)val;
  }
  size_t total = 0;
  if (sparse) {
    qsort(d->pkeys, n, sizeof *d->pkeys, cmp_u32);
    for (size_t i = 0; i < n; i++)
      if (total == 0 || d->pkeys[total - 1] != d->pkeys[i]) d->pkeys[total++] = d->pkeys[i];
    d->npkeys = total;
  } else {
    for (size_t w = 0; w < nwords64; w++) {
      d->prank[w] = (uint32_t)total;
      total += es__popcount64(d->pbits[w]);
    }
  }
  d->pval_bits = 1;
  while (d->pval_bits < 32 && (maxval >> d->pval_bits)) d->pval_bits++;
  size_t vbytes = ((uint64_t)total * d->pval_bits + 7) / 8 + 8;
  d->pvals = calloc(vbytes, 1);
  if (!d->pvals) return es__reader_fail(r, ES_ENOMEM, start, "out of memory");
  m->private_bytes += (sparse ? total * 4 : nwords64 * 12) + vbytes;
  /* Second pass, in file order: a repeated bucket keeps its last row. */
  for (size_t i = 0; i < n; i++) {
    int32_t key, val;
    memcpy(&key, r->base + start + 8 * i, 4);
    memcpy(&val, r->base + start + 8 * i + 4, 4);
    uint32_t at = (uint32_t)es__prune_rank(d, (uint32_t)key);
    pval_set(d, at, (uint32_t)val);
  }
  return 0;
}

static int load_dict(es__reader *r, es_model_t *m) {
  es__dict *d = &m->dict;
  size_t at = r->pos;
  es__read_i32(r, &d->size, "dictionary size");
  es__read_i32(r, &d->nwords, "dictionary nwords");
  es__read_i32(r, &d->nlabels, "dictionary nlabels");
  es__read_i64(r, &d->ntokens, "dictionary ntokens");
  if (es__read_i64(r, &d->pruneidx_size, "dictionary pruneidx_size")) return r->failed;
  if (d->size < 0 || d->nwords < 0 || d->nlabels < 0 || (int64_t)d->nwords + d->nlabels != d->size)
    return es__reader_fail(r, ES_EFORMAT, at,
                           "dictionary counts at byte %zu are inconsistent: size %d, nwords %d, "
                           "nlabels %d",
                           at, d->size, d->nwords, d->nlabels);
  /* Each entry takes at least 10 bytes: a size larger than the rest of the
   * file can hold is corrupt, and checking first bounds the allocation. */
  if ((uint64_t)d->size * 10 > r->len - r->pos)
    return es__reader_fail(r, ES_EFORMAT, at,
                           "dictionary size %d at byte %zu cannot fit in the %zu bytes left",
                           d->size, at, r->len - r->pos);
  if (d->nlabels == 0)
    return es__reader_fail(r, ES_EFORMAT, at + 8, "the model has no labels (nlabels 0 at byte %zu)",
                           at + 8);
  if (d->pruneidx_size < -1)
    return es__reader_fail(r, ES_EFORMAT, at + 20, "pruneidx_size %lld at byte %zu is negative",
                           (long long)d->pruneidx_size, at + 20);

  size_t n = (size_t)d->size ? (size_t)d->size : 1;
  d->base = r->base;
  d->key = random_key(d);
  d->offsets = malloc(n * sizeof *d->offsets);
  d->nslots = (uint32_t)((uint64_t)d->size * 10 / 7 + 2); /* load factor <= 0.7 */
  d->table = calloc(d->nslots, sizeof *d->table);
  /* A slot holds id + 1 in the low bits and the hash's high bits above as a
   * tag, so most mismatches cost no string compare. size < 2^31 leaves at
   * least one tag bit. */
  d->id_mask = 1;
  while (d->id_mask <= (uint32_t)d->size) d->id_mask = d->id_mask << 1 | 1;
  if (!d->offsets || !d->table) return es__reader_fail(r, ES_ENOMEM, at, "out of memory");
  m->private_bytes += (uint64_t)n * 4 + (uint64_t)d->nslots * 4;
  d->eos = -1;
  for (int32_t i = 0; i < d->size; i++) {
    const char *s;
    size_t len, epos = r->pos;
    int64_t count;
    int8_t type;
    if (es__read_cstr(r, &s, &len, "dictionary entry")) return r->failed;
    es__read_i64(r, &count, "entry count");
    if (es__read_i8(r, &type, "entry type")) return r->failed;
    int want = i < d->nwords ? 0 : 1;
    if (type != want)
      return es__reader_fail(r, ES_EFORMAT, r->pos - 1,
                             "dictionary entry %d: type %d at byte %zu, expected %s", i, type,
                             r->pos - 1, want ? "label (1)" : "word (0)");
    if (epos > UINT32_MAX)
      return es__reader_fail(r, ES_EUNSUPPORTED, epos,
                             "dictionary entry %d at byte %zu: dictionaries past 4 GiB are not "
                             "supported",
                             i, epos);
    uint64_t h = es__keyed_hash(s, len, d->key);
    d->offsets[i] = (uint32_t)epos;
    if (len > d->max_len) d->max_len = len;
    /* Insert; a repeated word maps to its last entry, as in fastText. */
    uint32_t j = slot_of(d, h), tag = tag_of(d, h);
    while (d->table[j]) {
      uint32_t v = d->table[j];
      if ((v & ~d->id_mask) == tag &&
          strcmp(es__dict_str(d, (int32_t)((v & d->id_mask) - 1)), s) == 0)
        break;
      if (++j == d->nslots) j = 0;
    }
    d->table[j] = tag | ((uint32_t)i + 1);
  }
  d->eos = es__dict_find(d, "</s>", 4);

  if (d->pruneidx_size > 0 && load_prune(r, m)) return r->failed;
  return 0;
}

static int load_pq(es__reader *r, es__pqview *pq, int64_t want_dim, const char *what) {
  size_t at = r->pos;
  es__read_i32(r, &pq->dim, "quantizer dim");
  es__read_i32(r, &pq->nsubq, "quantizer nsubq");
  es__read_i32(r, &pq->dsub, "quantizer dsub");
  if (es__read_i32(r, &pq->lastdsub, "quantizer lastdsub")) return r->failed;
  /* dsub may exceed dim (one sub-quantizer of width dim), as fastText allows */
  int ok = pq->dim == want_dim && pq->dsub >= 1 &&
           pq->nsubq == ((int64_t)pq->dim + pq->dsub - 1) / pq->dsub &&
           pq->lastdsub == (pq->dim % pq->dsub ? pq->dim % pq->dsub : pq->dsub);
  if (!ok)
    return es__reader_fail(r, ES_EFORMAT, at,
                           "%s quantizer at byte %zu is inconsistent: dim %d (matrix has %lld), "
                           "nsubq %d, dsub %d, lastdsub %d",
                           what, at, pq->dim, (long long)want_dim, pq->nsubq, pq->dsub,
                           pq->lastdsub);
  return es__read_span(r, (uint64_t)pq->dim * ES__KSUB * 4, &pq->centroids, "quantizer centroids");
}

static int load_matrix_body(es__reader *r, es__matrix *mx, int quant, int64_t want_rows,
                            int64_t min_rows, int32_t dim, const char *what);

static int load_matrix(es__reader *r, es__matrix *mx, int quant, int64_t want_rows,
                       int64_t min_rows, int32_t dim, const char *what) {
  size_t start = r->pos;
  if (load_matrix_body(r, mx, quant, want_rows, min_rows, dim, what)) return r->failed;
  mx->scheme = quant ? ES__MAT_PQ : ES__MAT_F32;
  mx->raw = r->base + start;
  mx->raw_len = r->pos - start;
  return 0;
}

static int load_matrix_body(es__reader *r, es__matrix *mx, int quant, int64_t want_rows,
                            int64_t min_rows, int32_t dim, const char *what) {
  size_t at = r->pos;
  int32_t codesize = 0;
  mx->quant = quant;
  if (quant) {
    uint8_t qnorm;
    es__read_u8(r, &qnorm, "qnorm flag");
    es__read_i64(r, &mx->m, "matrix rows");
    es__read_i64(r, &mx->n, "matrix cols");
    if (es__read_i32(r, &codesize, "code size")) return r->failed;
    mx->qnorm = qnorm != 0;
    at += 1;
  } else {
    es__read_i64(r, &mx->m, "matrix rows");
    if (es__read_i64(r, &mx->n, "matrix cols")) return r->failed;
  }
  if (mx->n != dim || mx->m < 0 || (want_rows >= 0 && mx->m != want_rows) || mx->m < min_rows)
    return es__reader_fail(r, ES_EFORMAT, at,
                           "%s matrix at byte %zu is %lld x %lld; expected %s%lld rows of %d "
                           "columns",
                           what, at, (long long)mx->m, (long long)mx->n,
                           want_rows >= 0 ? "" : "at least ",
                           (long long)(want_rows >= 0 ? want_rows : min_rows), dim);
  if (!quant) {
    if ((uint64_t)mx->m > (r->len - r->pos) / 4 / (uint64_t)mx->n)
      return es__reader_fail(r, ES_EFORMAT, at,
                             "%s matrix at byte %zu: %lld x %lld floats need more than the %zu "
                             "bytes left",
                             what, at, (long long)mx->m, (long long)mx->n, r->len - r->pos);
    return es__read_span(r, (uint64_t)mx->m * (uint64_t)mx->n * 4, &mx->data, "matrix data");
  }
  /* Quantized: codes, product quantizer, then norms. */
  size_t cpos = r->pos;
  if (codesize < 0 || (uint64_t)codesize > r->len - r->pos)
    return es__reader_fail(r, ES_EFORMAT, cpos - 4,
                           "%s code size %d at byte %zu does not fit in the file", what, codesize,
                           cpos - 4);
  if (mx->m > codesize) /* m * nsubq == codesize with nsubq >= 1; bounds m before multiplying */
    return es__reader_fail(r, ES_EFORMAT, cpos - 4,
                           "%s code size %d at byte %zu is smaller than the %lld rows", what,
                           codesize, cpos - 4, (long long)mx->m);
  if (es__read_span(r, (uint64_t)codesize, &mx->codes, "codes")) return r->failed;
  if (load_pq(r, &mx->pq, mx->n, what)) return r->failed;
  if ((int64_t)codesize != mx->m * mx->pq.nsubq)
    return es__reader_fail(r, ES_EFORMAT, cpos - 4,
                           "%s code size %d at byte %zu != rows %lld x nsubq %d", what, codesize,
                           cpos - 4, (long long)mx->m, mx->pq.nsubq);
  if (mx->qnorm) {
    if (es__read_span(r, (uint64_t)mx->m, &mx->norm_codes, "norm codes")) return r->failed;
    if (load_pq(r, &mx->npq, 1, "norm")) return r->failed;
  }
  return 0;
}

void es__huffman(int64_t *count, int32_t n, int32_t *left, int32_t *right) {
  int32_t total = 2 * n - 1, leaf = n - 1, node = n;
  for (int32_t i = 0; i < total; i++) left[i] = right[i] = -1;
  for (int32_t i = n; i < total; i++) {
    int32_t mini[2];
    for (int j = 0; j < 2; j++) {
      if (leaf >= 0 && (node >= i || count[leaf] < count[node]))
        mini[j] = leaf--;
      else
        mini[j] = node++;
    }
    left[i] = mini[0];
    right[i] = mini[1];
    /* Saturating: counts may come from a file. Real counts never get near. */
    if (__builtin_add_overflow(count[mini[0]], count[mini[1]], &count[i]))
      count[i] = count[mini[0]] > 0 ? INT64_MAX : INT64_MIN;
  }
}

/* The hs label tree of a model, from the label counts in its dictionary. */
static int build_tree(es_model_t *m) {
  int32_t n = m->dict.nlabels, total = 2 * n - 1;
  int64_t *count = malloc((size_t)total * sizeof *count);
  m->tree_left = malloc((size_t)total * sizeof(int32_t));
  m->tree_right = malloc((size_t)total * sizeof(int32_t));
  if (!count || !m->tree_left || !m->tree_right) {
    free(count);
    return ES_ENOMEM;
  }
  m->private_bytes += (uint64_t)total * 8;
  for (int32_t i = 0; i < n; i++) {
    const char *e = es__dict_str(&m->dict, m->dict.nwords + i);
    count[i] = es__ld_i64((const uint8_t *)e + strlen(e) + 1);
  }
  es__huffman(count, n, m->tree_left, m->tree_right);
  free(count);
  return 0;
}

/* Magic, version, args and dictionary: the start of a fastText file, and the
 * FTHD section of a native one. */
static int load_head(es__reader *r, es_model_t *m) {
  size_t s0 = r->pos; /* 0, or the FTHD section's offset */
  int32_t magic;
  es__read_i32(r, &magic, "magic");
  if (es__read_i32(r, &m->version, "version")) return r->failed;
  if (magic != FT_MAGIC)
    return es__reader_fail(r, ES_EFORMAT, s0,
                           "not a fastText model: magic %d at byte %zu, expected %d", magic, s0,
                           FT_MAGIC);
  if (m->version > FT_VERSION || m->version < 11)
    return es__reader_fail(r, ES_EVERSION, s0 + 4,
                           "fastText format version %d at byte %zu is not supported (11 or 12)",
                           m->version, s0 + 4);
  if (load_args(r, m) || load_dict(r, m)) return r->failed;
  m->fthd = r->base + s0;
  m->fthd_len = r->pos - s0;
  return 0;
}

/* Every pruned-index target names an input row. */
static int check_prune_targets(es__reader *r, es_model_t *m) {
  const es__dict *d = &m->dict;
  for (int64_t i = 0; d->pruneidx_size > 0 && i < d->pruneidx_size; i++) {
    size_t at = d->prune_start + 8 * (size_t)i;
    int32_t val;
    memcpy(&val, d->base + at + 4, 4);
    if ((int64_t)d->nwords + val >= m->in.m)
      return es__reader_fail(r, ES_EFORMAT, at + 4,
                             "pruned index entry %lld: row %d at byte %zu is beyond the %lld "
                             "input rows (nwords %d)",
                             (long long)i, val, at + 4, (long long)m->in.m, d->nwords);
  }
  return 0;
}

static int finish(es__reader *r, es_model_t *m) {
  if (m->args.loss == ES_LOSS_HS && build_tree(m))
    return es__reader_fail(r, ES_ENOMEM, r->pos, "out of memory building the label tree");
  /* Vector PQ kernels read dsub-2 centroids from a padded, aligned copy:
   * dim KiB (+ 2 KiB) private, the size of the file's table. */
  const es__matrix *in = &m->in;
  if (in->scheme == ES__MAT_PQ && in->pq.dsub == 2 && m->k->add_rows_pq2) {
    size_t bytes;
    m->in.pairs = es__pq_pairs_new(in->pq.centroids, in->pq.nsubq, in->pq.lastdsub, &bytes);
    if (!m->in.pairs) return es__reader_fail(r, ES_ENOMEM, r->pos, "out of memory");
    m->private_bytes += bytes;
  }
  if (m->word_rows_bytes && es__word_rows_build(m, m->word_rows_bytes))
    return es__reader_fail(r, ES_ENOMEM, r->pos, "out of memory");
  /* fastText's sigmoid table (Loss::Loss): float x, expf, double division. */
  for (int i = 0; i < 513; i++) {
    float x = (float)(i * 2 * 8) / 512 - 8;
    m->sigmoid_table[i] = (float)(1.0 / (1.0 + expf(-x)));
  }
  return 0;
}

static int load_fasttext(es_model_t *m, es_error_t *err) {
  es__reader rd, *r = &rd;
  es__reader_init(r, m->map, m->map_len, err);
  if (load_head(r, m)) return r->failed;
  const es_model_args_t *a = &m->args;
  const es__dict *d = &m->dict;
  if (m->dict_only) {
    m->in.m = d->nwords + (d->pruneidx_size < 0 ? (int64_t)a->bucket : 0);
    for (int64_t i = 0; i < d->pruneidx_size; i++) {
      int32_t val;
      memcpy(&val, r->base + d->prune_start + 8 * (size_t)i + 4, 4);
      if ((int64_t)d->nwords + val + 1 > m->in.m) m->in.m = (int64_t)d->nwords + val + 1;
    }
    m->in.n = m->out.n = a->dim;
    m->out.m = d->nlabels;
    return 0;
  }
  uint8_t qin, qout;
  size_t qpos = r->pos;
  if (es__read_u8(r, &qin, "quant flag")) return r->failed;
  if (qin > 1)
    return es__reader_fail(r, ES_EFORMAT, qpos, "quant flag %u at byte %zu is not 0 or 1", qin,
                           qpos);
  if (!qin && d->pruneidx_size >= 0)
    return es__reader_fail(r, ES_EFORMAT, qpos,
                           "invalid model: dictionary is pruned but the input matrix is not "
                           "quantized (quant flag at byte %zu)",
                           qpos);
  int64_t min_rows = d->nwords + (d->pruneidx_size < 0 ? (int64_t)a->bucket : 0);
  if (load_matrix(r, &m->in, qin, -1, min_rows, a->dim, "input")) return r->failed;
  if (check_prune_targets(r, m)) return r->failed;
  qpos = r->pos;
  if (es__read_u8(r, &qout, "qout flag")) return r->failed;
  if (qout > 1)
    return es__reader_fail(r, ES_EFORMAT, qpos, "qout flag %u at byte %zu is not 0 or 1", qout,
                           qpos);
  if (load_matrix(r, &m->out, qin && qout, d->nlabels, 0, a->dim, "output")) return r->failed;
  if (r->pos != r->len)
    return es__reader_fail(r, ES_EFORMAT, r->pos,
                           "%zu unexpected bytes after the output matrix at byte %zu",
                           r->len - r->pos, r->pos);
  return finish(r, m);
}

/* ---- edgeserve native files (format in model_impl.h) ------------------------ */

/* One matrix section: scheme, then fastText's own matrix bytes (f32, pq) or
 * rows, cols, a per-row scale table and the rows (int8, int4). */
static int load_native_matrix(es__reader *r, es_model_t *m, es__matrix *mx, int64_t want_rows,
                              int64_t min_rows, const char *what) {
  uint32_t scheme = 0, reserved = 0;
  size_t at = r->pos;
  const uint8_t *p;
  if (es__read_span(r, 8, &p, "matrix scheme")) return r->failed;
  memcpy(&scheme, p, 4);
  memcpy(&reserved, p + 4, 4);
  int32_t dim = m->args.dim;
  switch (scheme) {
  case ES__MAT_F32:
  case ES__MAT_PQ:
    if (load_matrix(r, mx, scheme == ES__MAT_PQ, want_rows, min_rows, dim, what)) return r->failed;
    if (r->pos != r->len)
      return es__reader_fail(r, ES_EFORMAT, r->pos, "%s matrix section: %zu bytes too many", what,
                             r->len - r->pos);
    return 0;
  case ES__MAT_I8:
  case ES__MAT_I4: {
    es__read_i64(r, &mx->m, "matrix rows");
    if (es__read_i64(r, &mx->n, "matrix cols")) return r->failed;
    if (mx->n != dim || mx->m < 0 || (want_rows >= 0 && mx->m != want_rows) || mx->m < min_rows)
      return es__reader_fail(r, ES_EFORMAT, at, "%s matrix in section at byte %zu is %lld x %lld",
                             what, at, (long long)mx->m, (long long)mx->n);
    mx->scheme = (int)scheme;
    mx->stride = scheme == ES__MAT_I8 ? (size_t)dim : ((size_t)dim + 1) / 2;
    /* scales at the section's byte 64, rows at the next multiple of 64 */
    size_t len = r->len - at;
    if ((uint64_t)mx->m > len / 4)
      return es__reader_fail(r, ES_EFORMAT, at + 8, "%s matrix: %lld rows cannot fit in %zu bytes",
                             what, (long long)mx->m, len);
    size_t rel = (size_t)((64 + 4 * (uint64_t)mx->m + 63) / 64 * 64);
    if (rel > len || (uint64_t)mx->m > (len - rel) / mx->stride ||
        rel + (uint64_t)mx->m * mx->stride != len)
      return es__reader_fail(r, ES_EFORMAT, at,
                             "%s matrix section at byte %zu: %zu bytes do not hold %lld rows of "
                             "%zu bytes and their scales",
                             what, at, len, (long long)mx->m, mx->stride);
    size_t sc = at + 64;
    mx->scales = r->base + sc;
    mx->data = r->base + at + rel;
    r->pos = r->len;
    for (int64_t i = 0; i < mx->m; i++)
      if (!isfinite(es__ld_f32(mx->scales + 4 * (size_t)i)))
        return es__reader_fail(r, ES_EFORMAT, sc + 4 * (size_t)i,
                               "%s row %lld has a scale that is not finite", what, (long long)i);
    return 0;
  }
  default:
    return es__reader_fail(r, ES_EUNSUPPORTED, at, "%s matrix: unknown storage scheme %u", what,
                           scheme);
  }
}

static int load_native(es_model_t *m, es_error_t *err) {
  es__reader rd, *r = &rd;
  es__reader_init(r, m->map, m->map_len, err);
  const uint8_t *p;
  if (es__read_span(r, 24, &p, "native header")) return r->failed;
  uint32_t version, nsec;
  uint64_t size;
  memcpy(&version, p + 8, 4);
  memcpy(&nsec, p + 12, 4);
  memcpy(&size, p + 16, 8);
  if (version != ES__NATIVE_VERSION)
    return es__reader_fail(r, ES_EVERSION, 8,
                           "edgeserve model format version %u is not "
                           "supported (this build reads %d)",
                           version, ES__NATIVE_VERSION);
  if (size != m->map_len)
    return es__reader_fail(r, ES_EFORMAT, 16,
                           "the header says %llu bytes but the file has %zu "
                           "(truncated or appended to)",
                           (unsigned long long)size, m->map_len);
  if (nsec > 64) return es__reader_fail(r, ES_EFORMAT, 12, "%u sections is too many", nsec);
  const uint8_t *sec[4] = {0};
  size_t seclen[4] = {0}, secoff[4] = {0};
  static const char tags[4][5] = {"FTHD", "META", "INPT", "OUTP"};
  for (uint32_t i = 0; i < nsec; i++) {
    size_t at = r->pos;
    if (es__read_span(r, 24, &p, "section table")) return r->failed;
    uint64_t off, len;
    memcpy(&off, p + 8, 8);
    memcpy(&len, p + 16, 8);
    if (off < 24 + 24 * (uint64_t)nsec || off > m->map_len || len > m->map_len - off)
      return es__reader_fail(r, ES_EFORMAT, at,
                             "section %.4s at byte %zu lies outside the file "
                             "(offset %llu, %llu bytes)",
                             (const char *)p, at, (unsigned long long)off, (unsigned long long)len);
    int k = -1;
    for (int t = 0; t < 4; t++)
      if (!memcmp(p, tags[t], 4)) k = t;
    if (k < 0) continue; /* unknown sections are for newer readers */
    if (sec[k]) return es__reader_fail(r, ES_EFORMAT, at, "section %s appears twice", tags[k]);
    sec[k] = m->map + off;
    seclen[k] = (size_t)len;
    secoff[k] = (size_t)off;
  }
  for (int t = 0; t < 4; t++)
    if (!sec[t] && t != 1)
      return es__reader_fail(r, ES_EFORMAT, 12, "section %s is missing", tags[t]);
  m->native = 1;
  if (sec[1]) {
    m->meta = (const char *)sec[1];
    m->meta_len = seclen[1];
  }
  /* Each section is read with its own end as the bound; positions (and the
   * offsets errors name) stay file-relative. */
  es__reader s;
  es__reader_init(&s, m->map, secoff[0] + seclen[0], err);
  s.pos = secoff[0];
  if (load_head(&s, m)) return s.failed;
  if (s.pos != s.len)
    return es__reader_fail(&s, ES_EFORMAT, s.pos,
                           "section FTHD (at byte %zu) has %zu bytes "
                           "after the dictionary",
                           secoff[0], s.len - s.pos);
  const es__dict *d = &m->dict;
  int64_t min_rows = d->nwords + (d->pruneidx_size < 0 ? (int64_t)m->args.bucket : 0);
  es__reader_init(&s, m->map, secoff[2] + seclen[2], err);
  s.pos = secoff[2];
  if (load_native_matrix(&s, m, &m->in, -1, min_rows, "input")) return s.failed;
  if (d->pruneidx_size >= 0 && m->in.scheme == ES__MAT_F32)
    return es__reader_fail(&s, ES_EFORMAT, secoff[2],
                           "a pruned dictionary needs a quantized input (section at byte %zu)",
                           secoff[2]);
  if (check_prune_targets(&s, m)) return s.failed;
  es__reader_init(&s, m->map, secoff[3] + seclen[3], err);
  s.pos = secoff[3];
  if (load_native_matrix(&s, m, &m->out, d->nlabels, 0, "output")) return s.failed;
  if (m->out.scheme == ES__MAT_I8 || m->out.scheme == ES__MAT_I4)
    return es__reader_fail(&s, ES_EUNSUPPORTED, secoff[3],
                           "int8/int4 output matrices are not supported (section at byte %zu)",
                           secoff[3]);
  size_t nlen;
  const char *spec = es_model_meta(m, "normalizer", &nlen);
  if (spec) {
    char buf[256];
    es_error_t e;
    if (nlen >= sizeof buf)
      return es__reader_fail(r, ES_EFORMAT, secoff[1], "META normalizer is too long");
    memcpy(buf, spec, nlen);
    buf[nlen] = 0;
    if (es_normalizer_parse(&m->norm, buf, &e))
      return es__reader_fail(r, ES_EFORMAT, secoff[1], "META normalizer: %s", e.msg);
    m->has_norm = m->norm.flags != 0;
  }
  return finish(r, m);
}

static int load(es_model_t *m, es_error_t *err) {
  if (m->map_len >= 8 && !memcmp(m->map, ES__NATIVE_MAGIC, 8) && !m->dict_only)
    return load_native(m, err);
  return load_fasttext(m, err);
}

static int open_common(es_model_t **out, es_model_t *m, const es_model_params_t *params,
                       es_error_t *err) {
  es_model_params_t p = params ? *params : es_model_default_params();
  if (!m->label_len) {
    memcpy(m->label, "__label__", 10);
    m->label_len = 9;
  }
  m->k = es__kernels_get(p.simd);
  m->word_rows_bytes = p.word_rows_bytes;
  if (!m->k) {
    if (err) {
      err->code = ES_EUNSUPPORTED;
      err->offset = -1;
      snprintf(err->msg, sizeof err->msg, "%s kernels are not available on this CPU or build",
               es_simd_name(p.simd));
    }
    es_model_close(m);
    return ES_EUNSUPPORTED;
  }
  int rc = load(m, err);
  if (rc) {
    es_model_close(m);
    return rc;
  }
  *out = m;
  return 0;
}

static int fail_errno(es_error_t *err, const char *what, const char *path) {
  if (err) {
    err->code = ES_EIO;
    err->offset = -1;
    snprintf(err->msg, sizeof err->msg, "cannot %s %s: %s", what, path, strerror(errno));
  }
  return ES_EIO;
}

int es_model_open(es_model_t **out, const char *path, const es_model_params_t *params,
                  es_error_t *err) {
  *out = NULL;
  /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
   * refused as not a regular file); it changes nothing for regular files. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return fail_errno(err, "open", path);
  struct stat st;
  if (fstat(fd, &st) < 0) {
    close(fd);
    return fail_errno(err, "stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    errno = EINVAL;
    return fail_errno(err, "map (not a regular file)", path);
  }
  if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX / 2) {
    close(fd);
    if (err) {
      err->code = ES_ERANGE;
      err->offset = -1;
      snprintf(err->msg, sizeof err->msg,
               "%s is %llu bytes, too large to map in this %zu-bit address space", path,
               (unsigned long long)st.st_size, sizeof(size_t) * 8);
    }
    return ES_ERANGE;
  }
  size_t len = (size_t)st.st_size;
  void *map = NULL;
  if (len > 0) {
    int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
    if (params && params->populate) flags |= MAP_POPULATE;
#endif
    map = mmap(NULL, len, PROT_READ, flags, fd, 0);
    if (map == MAP_FAILED) {
      close(fd);
      return fail_errno(err, "map", path);
    }
  }
  close(fd);
  es_model_t *m = calloc(1, sizeof *m);
  if (!m) {
    if (map) munmap(map, len);
    return ES_ENOMEM;
  }
  m->map = map ? map : (const uint8_t *)"";
  m->map_len = len;
  m->owns_map = map != NULL;
  int rc = open_common(out, m, params, err);
  if (rc && err && err->msg[0]) {
    char tmp[sizeof err->msg + 4096];
    snprintf(tmp, sizeof tmp, "%s: %s", path, err->msg);
    memcpy(err->msg, tmp, sizeof err->msg - 1);
    err->msg[sizeof err->msg - 1] = 0;
  }
  return rc;
}

int es_model_open_mem(es_model_t **out, const void *data, size_t len,
                      const es_model_params_t *params, es_error_t *err) {
  *out = NULL;
  es_model_t *m = calloc(1, sizeof *m);
  if (!m) return ES_ENOMEM;
  m->map = data ? data : (const uint8_t *)"";
  m->map_len = data ? len : 0;
  return open_common(out, m, params, err);
}

int es__model_open_dict(es_model_t **out, const void *data, size_t len, const char *label,
                        es_error_t *err) {
  *out = NULL;
  if (label && strlen(label) >= sizeof((es_model_t *)0)->label) {
    if (err) {
      err->code = ES_EINVAL;
      err->offset = -1;
      snprintf(err->msg, sizeof err->msg, "label prefix is longer than %zu bytes",
               sizeof((es_model_t *)0)->label - 1);
    }
    return ES_EINVAL;
  }
  es_model_t *m = calloc(1, sizeof *m);
  if (!m) return ES_ENOMEM;
  m->map = data ? data : (const uint8_t *)"";
  m->map_len = data ? len : 0;
  m->dict_only = 1;
  if (label && *label) {
    m->label_len = strlen(label);
    memcpy(m->label, label, m->label_len + 1);
  }
  return open_common(out, m, NULL, err);
}

void es_model_close(es_model_t *m) {
  if (!m) return;
  if (m->owns_map) munmap((void *)m->map, m->map_len);
  dict_free(&m->dict);
  free(m->in.pairs);
  free(m->wrows);
  free(m->wrow_at);
  free(m->tree_left);
  free(m->tree_right);
  free(m);
}

const es_model_args_t *es_model_args(const es_model_t *m) { return &m->args; }
int32_t es_model_nlabels(const es_model_t *m) { return m->dict.nlabels; }
int32_t es_model_nwords(const es_model_t *m) { return m->dict.nwords; }

const char *es_model_label(const es_model_t *m, int32_t id, size_t *len) {
  if (id < 0 || id >= m->dict.nlabels) return NULL;
  const char *e = es__dict_str(&m->dict, m->dict.nwords + id);
  *len = strlen(e);
  return e;
}

int es_model_entry(const es_model_t *m, int32_t i, const char **text, size_t *len, int64_t *count,
                   int *type) {
  if (i < 0 || i >= m->dict.size) return ES_EINVAL;
  const char *e = es__dict_str(&m->dict, i);
  *text = e;
  *len = strlen(e);
  *count = es__ld_i64((const uint8_t *)e + *len + 1);
  *type = i < m->dict.nwords ? 0 : 1;
  return 0;
}

int es_model_row(const es_model_t *m, int which, int64_t row, float *dst) {
  const es__matrix *mx = which ? &m->out : &m->in;
  if (row < 0 || row >= mx->m) return ES_EINVAL;
  int n = (int)mx->n;
  if (mx->scheme == ES__MAT_I8 || mx->scheme == ES__MAT_I4) {
    memset(dst, 0, (size_t)n * sizeof *dst);
    int32_t r32 = (int32_t)row;
    es__add_rows_q_scalar(dst, mx->data, mx->stride, mx->scales, &r32, 1, n,
                          mx->scheme == ES__MAT_I8 ? 8 : 4);
    return 0;
  }
  if (!mx->quant) {
    for (int j = 0; j < n; j++) dst[j] = es__ld_f32(mx->data + 4 * ((size_t)row * n + j));
    return 0;
  }
  float norm = es__matrix_norm(mx, row);
  const uint8_t *code = mx->codes + (size_t)row * mx->pq.nsubq;
  for (int32_t j = 0; j < mx->pq.nsubq; j++) {
    const uint8_t *c = es__pqview_centroid(&mx->pq, j, code[j]);
    int d = j == mx->pq.nsubq - 1 ? mx->pq.lastdsub : mx->pq.dsub;
    for (int t = 0; t < d; t++) dst[j * mx->pq.dsub + t] = norm * es__ld_f32(c + 4 * t);
  }
  return 0;
}

const char *es_model_meta(const es_model_t *m, const char *key, size_t *len) {
  size_t klen = strlen(key);
  const char *p = m->meta, *end = m->meta ? m->meta + m->meta_len : NULL;
  while (p && p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *eol = nl ? nl : end;
    if ((size_t)(eol - p) > klen && !memcmp(p, key, klen) && p[klen] == '=') {
      *len = (size_t)(eol - p - (ptrdiff_t)klen - 1);
      return p + klen + 1;
    }
    p = nl ? nl + 1 : end;
  }
  *len = 0;
  return NULL;
}

void es_model_info(const es_model_t *m, es_model_info_t *o) {
  memset(o, 0, sizeof *o);
  o->version = m->version;
  o->args = m->args;
  o->nwords = m->dict.nwords;
  o->nlabels = m->dict.nlabels;
  o->nentries = m->dict.size;
  o->ntokens = m->dict.ntokens;
  o->pruneidx_size = m->dict.pruneidx_size;
  o->quant_input = m->in.quant;
  o->native = m->native;
  o->input_scheme = m->in.scheme == ES__MAT_I8 ? 8 : m->in.scheme == ES__MAT_I4 ? 4 : 0;
  o->qnorm_input = m->in.qnorm;
  o->quant_output = m->out.quant;
  o->qnorm_output = m->out.qnorm;
  o->dsub_input = m->in.quant ? m->in.pq.dsub : 0;
  o->input_rows = m->in.m;
  o->input_cols = m->in.n;
  o->output_rows = m->out.m;
  o->output_cols = m->out.n;
  o->file_bytes = m->map_len;
  o->private_bytes = m->private_bytes + sizeof *m;
  o->simd = m->k->level;
  o->scratch_bytes = es__scratch_bytes(m);
}
