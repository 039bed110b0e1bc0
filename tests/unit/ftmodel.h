/*
 * ftmodel.h - test helper: writes small fastText 0.9.2 model files in
 * memory, with deterministic pseudo-random matrices, so unit tests can build
 * exactly the model (and the corruption) they need.
 */
#ifndef ES_TEST_FTMODEL_H
#define ES_TEST_FTMODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct ft_spec {
  int32_t dim, loss, bucket, minn, maxn, word_ngrams;
  int32_t nwords, nlabels;
  const char *const *words;  /* nwords entries */
  const char *const *labels; /* nlabels entries, with their __label__ prefix */
  int quant, qnorm, qout, dsub;
  int64_t pruneidx_size; /* -1 unpruned; > 0 uses prune_keys/prune_vals */
  const int32_t *prune_keys, *prune_vals;
  int64_t input_rows; /* 0: nwords + bucket (or nwords + pruneidx_size) */
  uint32_t seed;
} ft_spec;

ft_spec ft_default_spec(void);

/* Where the fields of one matrix block start in a written file. For a dense
 * matrix only rows, cols and data are set; the others are 0. */
typedef struct ft_matrix_layout {
  size_t start;      /* first byte of the block (qnorm flag when quantized) */
  size_t rows, cols; /* int64 m, int64 n */
  size_t codesize;   /* quantized: int32 code size */
  size_t codes;      /* quantized: first code byte */
  size_t pq;         /* quantized: quantizer block (int32 dim, nsubq, dsub, lastdsub) */
  size_t norm_codes; /* qnorm: first norm code */
  size_t npq;        /* qnorm: norm quantizer block */
  size_t data;       /* dense: first float */
  size_t end;        /* one past the block */
} ft_matrix_layout;

#define FT_MAX_LAYOUT_ENTRIES 64

/* Byte offsets of the fields of a file written by ft_write_layout(). */
typedef struct ft_layout {
  size_t version; /* int32 version (the magic is at 0) */
  size_t args;    /* int32 args: field i at args + 4 * i, in fastText's order
                     (dim, ws, epoch, minCount, neg, wordNgrams, loss, model,
                     bucket, minn, maxn, lrUpdateRate), then float64 t at args + 48 */
  size_t dict;    /* int32 size; nwords at +4, nlabels at +8, int64 ntokens at +12,
                     int64 pruneidx_size at +20 */
  size_t entry[FT_MAX_LAYOUT_ENTRIES];       /* entry i's string (first FT_MAX_LAYOUT_ENTRIES) */
  size_t entry_count[FT_MAX_LAYOUT_ENTRIES]; /* its int64 count; the int8 type follows */
  size_t entry_type[FT_MAX_LAYOUT_ENTRIES];
  size_t prune; /* first (int32 bucket, int32 row) pair; == quant when none */
  size_t quant; /* uint8 quant flag */
  ft_matrix_layout in;
  size_t qout; /* uint8 qout flag */
  ft_matrix_layout out;
  size_t end; /* file length */
} ft_layout;

#define FT_ARG_DIM         0
#define FT_ARG_WORD_NGRAMS 5
#define FT_ARG_LOSS        6
#define FT_ARG_MODEL       7
#define FT_ARG_BUCKET      8
#define FT_ARG_MINN        9
#define FT_ARG_MAXN        10

/* Writes the model; returns a malloc'd buffer (caller frees) and its size. */
uint8_t *ft_write(const ft_spec *s, size_t *len);

/* As ft_write(), and fills *layout (when not NULL) with the field offsets. */
uint8_t *ft_write_layout(const ft_spec *s, size_t *len, ft_layout *layout);

/* Little-endian field patching in a written buffer. */
void ft_set_i32(uint8_t *buf, size_t off, int32_t v);
void ft_set_i64(uint8_t *buf, size_t off, int64_t v);
int32_t ft_get_i32(const uint8_t *buf, size_t off);
int64_t ft_get_i64(const uint8_t *buf, size_t off);

/* Writes buf to a new temporary file; returns its malloc'd path. */
char *ft_tmpfile(const uint8_t *buf, size_t len);

#endif
