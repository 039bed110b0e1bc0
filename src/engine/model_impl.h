/*
 * model_impl.h - the in-memory form of an open model, shared by the loader
 * (model.c), prediction (predict.c) and its helpers. Not public.
 *
 * Invariants established by the loader, which prediction relies on without
 * re-checking:
 *  1. every matrix block lies inside the mapping;
 *  2. input rows >= nwords + bucket when unpruned, and every pruned-index
 *     target + nwords < input rows, so every feature row exists;
 *  3. output rows == nlabels >= 1, both matrices have dim columns;
 *  4. entries [0, nwords) are words and [nwords, size) labels;
 *  5. for hs, the tree is a proper binary tree over 2*nlabels-1 nodes.
 */
#ifndef ES_ENGINE_MODEL_IMPL_H
#define ES_ENGINE_MODEL_IMPL_H

#include "edgeserve/model.h"
#include "edgeserve/normalize.h"
#include "edgeserve/predict.h"
#include "kernels.h"

#define ES__KSUB 256

/* The dictionary: the strings stay in the mapping; the loader builds a
 * lookup table (ids at load factor <= 0.7) and, for pruned models, the pruned
 * index as a rank bitmap over buckets plus bit-packed rows. 4 bytes per
 * entry + 4 per table slot, and 1.5 bits per bucket + row bits per kept
 * bucket, so a large vocabulary costs little private memory. */
typedef struct es__dict {
  int32_t size, nwords, nlabels;
  int64_t ntokens, pruneidx_size;
  const uint8_t *base; /* the mapping */
  uint32_t *offsets;   /* entry -> offset of its NUL-terminated string */
  uint64_t key;        /* random seed of the keyed hash */
  uint32_t *table;     /* open addressing: hash tag | (entry id + 1), 0 = empty */
  uint32_t id_mask;    /* the id bits of a table slot; the rest is the tag */
  uint32_t nslots;     /* table size: ceil(size / 0.7) */
  uint64_t *pbits;     /* pruned index: bit b set when bucket b is kept */
  uint32_t *prank;     /* set bits before each 64-bit word of pbits */
  uint32_t *pkeys;     /* sparse form instead of pbits: kept buckets, sorted */
  size_t npkeys;
  uint8_t *pvals; /* rows of kept buckets, by rank, pval_bits each */
  int pval_bits;
  int hw_popcnt;      /* the CPU has POPCNT (x86-64) */
  size_t prune_start; /* file offset of the pruned index pairs */
  size_t max_len;     /* longest entry */
  int32_t eos;        /* id of "</s>", -1 when absent */
} es__dict;

typedef struct es__pqview {
  int32_t dim, nsubq, dsub, lastdsub;
  const uint8_t *centroids; /* dim * 256 floats, any alignment */
} es__pqview;

/* edgeserve's native model file (.esm), little-endian:
 *   bytes 0-7   magic "ESMODEL\0"; 8-11 version (1); 12-15 section count;
 *   16-23       file size (a truncated or extended file is refused);
 *   24...       section table, 24 bytes each: tag[4], flags u32, offset
 *               u64, size u64; sections start at multiples of 64.
 * Sections: FTHD the fastText header, args and dictionary (the bytes a .bin
 * starts with); META "key=value" lines (optional: "normalizer", "source");
 * INPT and OUTP the matrices: u32 scheme, u32 0, then for f32 and pq
 * fastText's own matrix bytes, for int8/int4 i64 rows, i64 cols, the row
 * scales (floats) from the section's byte 64 and the rows from the next
 * multiple of 64 (int8: cols bytes a row; int4: (cols + 1) / 2). Unknown
 * sections are skipped. */
#define ES__NATIVE_MAGIC   "ESMODEL\0"
#define ES__NATIVE_VERSION 1

/* How a matrix stores its rows. */
enum { ES__MAT_F32 = 0, ES__MAT_PQ = 1, ES__MAT_I8 = 2, ES__MAT_I4 = 3 };

typedef struct es__matrix {
  int quant;  /* product-quantized (fastText .ftz) */
  int scheme; /* ES__MAT_* */
  int64_t m, n;
  const uint8_t *data;   /* dense: m * n floats; int8/int4: m rows of stride bytes */
  const uint8_t *scales; /* int8/int4: m floats, one scale per row */
  size_t stride;
  const uint8_t *raw; /* f32/pq: the matrix's bytes in fastText's layout */
  size_t raw_len;
  int qnorm;
  const uint8_t *codes; /* m * nsubq */
  es__pqview pq;
  const uint8_t *norm_codes; /* m, when qnorm */
  es__pqview npq;            /* 1-d quantizer of the norms */
  uint8_t *pairs;            /* input, dsub 2, kernels with add_rows_pq2: the pair table; owned */
} es__matrix;

struct es_model {
  const uint8_t *map;
  size_t map_len;
  int owns_map; /* munmap on close */
  int32_t version;
  es_model_args_t args;
  es__dict dict;
  es__matrix in, out;
  int32_t *tree_left, *tree_right; /* hs only: 2*nlabels-1 nodes */
  float sigmoid_table[513];
  const es__kernels *k;
  uint64_t private_bytes;
  int dict_only;       /* es__model_open_dict(): no matrices */
  int native;          /* an edgeserve native (.esm) file */
  const uint8_t *fthd; /* the fastText header + dictionary bytes */
  size_t fthd_len;
  const char *meta; /* native META section (key=value lines), or NULL */
  size_t meta_len;
  int has_norm; /* META names a normalizer: applied to every line */
  es_normalizer_t norm;
  /* Words [0, nwrows), the most frequent: their feature rows (the word's
   * own, then its char n-grams' through the pruned index), precomputed. */
  int32_t *wrows;
  uint32_t *wrow_at; /* word w's rows: wrows[wrow_at[w] .. wrow_at[w + 1]) */
  int32_t nwrows;
  uint32_t word_rows_bytes; /* es_model_params_t's: the budget of wrows */
  char label[64];           /* label prefix for unknown tokens ("__label__") */
  size_t label_len;
};

/* Address of centroid `c` of sub-quantizer `j`. */
static inline const uint8_t *es__pqview_centroid(const es__pqview *pq, int32_t j, uint8_t c) {
  if (j == pq->nsubq - 1)
    return pq->centroids + 4 * ((size_t)j * ES__KSUB * pq->dsub + (size_t)c * pq->lastdsub);
  return pq->centroids + 4 * (((size_t)j * ES__KSUB + c) * pq->dsub);
}

/* Norm of row i of a qnorm matrix, 1 otherwise. */
float es__matrix_norm(const es__matrix *mx, int64_t i);

/* The NUL-terminated text of entry i. */
static inline const char *es__dict_str(const es__dict *d, int32_t i) {
  return (const char *)d->base + d->offsets[i];
}

/* Looks up a token (no NUL inside); returns its entry id or -1. */
int32_t es__dict_find(const es__dict *d, const char *s, size_t len);

/* Bit count without relying on a POPCNT instruction (not in baseline
 * x86-64, where the builtin becomes a library call). */
static inline uint32_t es__popcount64(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

/* Pruned index, step 1: the rank of bucket b among the kept buckets, or -1
 * when b is not kept. Cheap (bitmap and rank words, or a binary search). */
static inline int64_t es__prune_rank(const es__dict *d, uint32_t b) {
  if (d->pkeys) {
    size_t lo = 0, hi = d->npkeys;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (d->pkeys[mid] < b)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo < d->npkeys && d->pkeys[lo] == b ? (int64_t)lo : -1;
  }
  uint32_t w = b >> 6;
  uint64_t bits = d->pbits[w], below = bits & ((1ull << (b & 63)) - 1);
  if (!(bits >> (b & 63) & 1)) return -1;
#if defined(__x86_64__) && defined(__GNUC__)
  /* The instruction, where the CPU has it: the rank is on the path from a
   * char n-gram to its row, and the SWAR sum cost .ftz prediction 7%. */
  if (d->hw_popcnt) {
    uint64_t c;
    __asm__("popcnt %1, %0" : "=r"(c) : "r"(below) : "cc");
    return d->prank[w] + (int64_t)c;
  }
#endif
  return d->prank[w] + es__popcount64(below);
}

/* Pruned index, step 2: the row (relative to nwords) of the kept bucket at
 * `rank` (bit-packed, pval_bits each). */
static inline uint32_t es__prune_row(const es__dict *d, uint32_t rank) {
  uint64_t bit = (uint64_t)rank * (uint64_t)d->pval_bits, v;
  __builtin_memcpy(&v, d->pvals + (bit >> 3), 8);
  return (uint32_t)((v >> (bit & 7)) & ((1ull << d->pval_bits) - 1));
}

/* Maps a bucket to its input row offset (relative to nwords) through the
 * pruned index: returns -1 when dropped. */
static inline int32_t es__dict_prune(const es__dict *d, int32_t bucket) {
  int64_t r = es__prune_rank(d, (uint32_t)bucket);
  return r < 0 ? -1 : (int32_t)es__prune_row(d, (uint32_t)r);
}

/* Opens only the header, args and dictionary of a fastText model image in
 * data[0..len) (the caller keeps it valid until es_model_close): enough to
 * turn text into feature rows (training), not to predict. `label` is the
 * label prefix for tokens not in the dictionary (NULL: "__label__"). The
 * input row count is taken as nwords + bucket, or nwords + the pruned index
 * targets. Returns 0 or an ES_E* code with err filled. */
int es__model_open_dict(es_model_t **out, const void *data, size_t len, const char *label,
                        es_error_t *err);

/* Training support (predict.c): a scratch in "collect" mode records the
 * feature rows of each line (in fastText's order, repeats kept) instead of
 * summing them, with no bound on words per line. NULL when out of memory. */
es_scratch_t *es__scratch_collect_new(const es_model_t *m);
/* After es_line_end(): the line's feature rows, and how many tokens the line
 * had (words, labels and the closing </s>, as fastText's getLine counts). A
 * nonzero *oom says a feature did not fit in memory (the list is short). */
const int32_t *es__line_features(const es_scratch_t *s, int64_t *n, int *oom);
int64_t es__line_ntokens(const es_scratch_t *s);

/* Models with a normalizer: the first ES__NORM_CAP bytes of a line are
 * normalized; label tokens (prefix `label`) are kept as they are and put
 * first, the other tokens go through es_normalize(). tmp needs
 * ES__NORM_CAP + 1 bytes, out 2 * ES__NORM_CAP + 2. Returns out's length
 * (no newline, no NUL). Used by prediction and by training (predict.c). */
#define ES__NORM_CAP (16 * 1024)
size_t es__normalize_labeled(const es_normalizer_t *n, const char *label, size_t label_len,
                             const char *in, size_t len, char *tmp, char *out);

/* fastText's Huffman tree over n label counts sorted descending
 * (HierarchicalSoftmaxLoss::buildTree): nodes [0, n) are the labels, node i
 * >= n has children left[i], right[i] (-1 for leaves); count needs 2n - 1
 * entries, the first n set (the rest are written). The choice never picks a
 * node that is not built yet, so the tree is well-formed for any counts. */
void es__huffman(int64_t *count, int32_t n, int32_t *left, int32_t *right);

/* Precomputes the feature rows of the most frequent words, as many as fit
 * in `budget` bytes (fastText keeps every word's in Dictionary::words_; a
 * bounded prefix here, words being sorted by decreasing count): a known
 * word then costs no hashing and no pruned-index lookups. Needs the
 * dictionary and args. Returns 0 (m->wrows set, or none fit) or ES_ENOMEM
 * with nothing kept (predict.c). */
int es__word_rows_build(es_model_t *m, uint64_t budget);

/* Bytes one es_scratch_t for this model takes (predict.c). */
uint64_t es__scratch_bytes(const es_model_t *m);

#endif
