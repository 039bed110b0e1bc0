/* ftmodel.c - see ftmodel.h. */
#include "ftmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  uint8_t *p;
  size_t len, cap;
} buf_t;

static void put(buf_t *b, const void *v, size_t n) {
  if (b->len + n > b->cap) {
    while (b->len + n > b->cap) b->cap = b->cap ? b->cap * 2 : 4096;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->len, v, n);
  b->len += n;
}
static void put_i32(buf_t *b, int32_t v) { put(b, &v, 4); }
static void put_i64(buf_t *b, int64_t v) { put(b, &v, 8); }
static void put_u8(buf_t *b, uint8_t v) { put(b, &v, 1); }
static void put_f32(buf_t *b, float v) { put(b, &v, 4); }

static uint32_t rnd(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}
static float frnd(uint32_t *s) { return (float)(rnd(s) % 20001) / 10000.0f - 1.0f; }

ft_spec ft_default_spec(void) {
  static const char *words[] = {"</s>", "hello", "world", "caffè", "la", "casa"};
  static const char *labels[] = {"__label__a", "__label__b", "__label__c"};
  ft_spec s;
  memset(&s, 0, sizeof s);
  s.dim = 8;
  s.loss = 3;
  s.bucket = 100;
  s.minn = 2;
  s.maxn = 3;
  s.word_ngrams = 2;
  s.nwords = 6;
  s.nlabels = 3;
  s.words = words;
  s.labels = labels;
  s.dsub = 2;
  s.pruneidx_size = -1;
  s.seed = 12345;
  return s;
}

static void put_pq(buf_t *b, int32_t dim, int32_t dsub, uint32_t *seed) {
  int32_t nsubq = (dim + dsub - 1) / dsub;
  put_i32(b, dim);
  put_i32(b, nsubq);
  put_i32(b, dsub);
  put_i32(b, dim % dsub ? dim % dsub : dsub);
  for (int32_t i = 0; i < dim * 256; i++) put_f32(b, frnd(seed));
}

static void put_matrix(buf_t *b, int quant, int qnorm, int64_t m, int32_t n, int32_t dsub,
                       uint32_t *seed, ft_matrix_layout *lay) {
  memset(lay, 0, sizeof *lay);
  lay->start = b->len;
  if (!quant) {
    lay->rows = b->len;
    put_i64(b, m);
    lay->cols = b->len;
    put_i64(b, n);
    lay->data = b->len;
    for (int64_t i = 0; i < m * n; i++) put_f32(b, frnd(seed));
    lay->end = b->len;
    return;
  }
  int32_t nsubq = (n + dsub - 1) / dsub;
  put_u8(b, (uint8_t)qnorm);
  lay->rows = b->len;
  put_i64(b, m);
  lay->cols = b->len;
  put_i64(b, n);
  lay->codesize = b->len;
  put_i32(b, (int32_t)(m * nsubq));
  lay->codes = b->len;
  for (int64_t i = 0; i < m * nsubq; i++) put_u8(b, (uint8_t)rnd(seed));
  lay->pq = b->len;
  put_pq(b, n, dsub, seed);
  if (qnorm) {
    lay->norm_codes = b->len;
    for (int64_t i = 0; i < m; i++) put_u8(b, (uint8_t)rnd(seed));
    lay->npq = b->len;
    put_i32(b, 1);
    put_i32(b, 1);
    put_i32(b, 1);
    put_i32(b, 1);
    for (int i = 0; i < 256; i++) put_f32(b, 0.5f + (float)(rnd(seed) % 1000) / 1000.0f);
  }
  lay->end = b->len;
}

uint8_t *ft_write(const ft_spec *s, size_t *len) { return ft_write_layout(s, len, NULL); }

uint8_t *ft_write_layout(const ft_spec *s, size_t *len, ft_layout *layout) {
  buf_t b = {0};
  ft_layout lay;
  memset(&lay, 0, sizeof lay);
  uint32_t seed = s->seed ? s->seed : 1;
  put_i32(&b, 793712314);
  lay.version = b.len;
  put_i32(&b, 12);
  lay.args = b.len;
  int32_t args[12] = {s->dim,  5, 5,         1,       5,       s->word_ngrams,
                      s->loss, 3, s->bucket, s->minn, s->maxn, 100};
  for (int i = 0; i < 12; i++) put_i32(&b, args[i]);
  double t = 1e-4;
  put(&b, &t, 8);
  lay.dict = b.len;
  put_i32(&b, s->nwords + s->nlabels);
  put_i32(&b, s->nwords);
  put_i32(&b, s->nlabels);
  put_i64(&b, 1000);
  put_i64(&b, s->pruneidx_size);
  for (int i = 0; i < s->nwords + s->nlabels; i++) {
    int label = i >= s->nwords;
    const char *text = label ? s->labels[i - s->nwords] : s->words[i];
    if (i < FT_MAX_LAYOUT_ENTRIES) lay.entry[i] = b.len;
    put(&b, text, strlen(text) + 1);
    if (i < FT_MAX_LAYOUT_ENTRIES) lay.entry_count[i] = b.len;
    put_i64(&b, label ? 50 - (i - s->nwords) : 100 - i);
    if (i < FT_MAX_LAYOUT_ENTRIES) lay.entry_type[i] = b.len;
    put_u8(&b, (uint8_t)label);
  }
  lay.prune = b.len;
  for (int64_t i = 0; i < s->pruneidx_size; i++) {
    put_i32(&b, s->prune_keys[i]);
    put_i32(&b, s->prune_vals[i]);
  }
  int64_t rows = s->input_rows;
  if (!rows) rows = s->nwords + (s->pruneidx_size >= 0 ? s->pruneidx_size : s->bucket);
  lay.quant = b.len;
  put_u8(&b, (uint8_t)s->quant);
  put_matrix(&b, s->quant, s->qnorm, rows, s->dim, s->dsub, &seed, &lay.in);
  lay.qout = b.len;
  put_u8(&b, (uint8_t)s->qout);
  put_matrix(&b, s->quant && s->qout, s->qnorm, s->nlabels, s->dim, 2, &seed, &lay.out);
  lay.end = b.len;
  if (layout) *layout = lay;
  *len = b.len;
  return b.p;
}

void ft_set_i32(uint8_t *buf, size_t off, int32_t v) { memcpy(buf + off, &v, 4); }
void ft_set_i64(uint8_t *buf, size_t off, int64_t v) { memcpy(buf + off, &v, 8); }
int32_t ft_get_i32(const uint8_t *buf, size_t off) {
  int32_t v;
  memcpy(&v, buf + off, 4);
  return v;
}
int64_t ft_get_i64(const uint8_t *buf, size_t off) {
  int64_t v;
  memcpy(&v, buf + off, 8);
  return v;
}

char *ft_tmpfile(const uint8_t *buf, size_t len) {
  char *path = strdup("/tmp/es-test-model-XXXXXX");
  int fd = mkstemp(path);
  if (fd < 0) {
    free(path);
    return NULL;
  }
  FILE *f = fdopen(fd, "wb");
  fwrite(buf, 1, len, f);
  fclose(f);
  return path;
}
