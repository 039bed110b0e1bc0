/*
 * vocab.c - the training dictionary (see vocab.h).
 */
#include "vocab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fail.h"
#include "hash.h"

#define MAX_VOCAB_SIZE 30000000 /* fastText's table size: the pruning valve */
#define READ_BLOCK     (64 * 1024)

int es__vocab_init(es__vocab *v, const char *label, es_error_t *err) {
  memset(v, 0, sizeof *v);
  if (!label) label = "__label__";
  v->label_len = strlen(label);
  if (v->label_len == 0 || v->label_len >= sizeof v->label)
    return es__fail(err, ES_EINVAL, -1, "label prefix must be 1 to %zu bytes", sizeof v->label - 1);
  memcpy(v->label, label, v->label_len + 1);
  v->mask = 1023;
  v->table = calloc((size_t)v->mask + 1, sizeof *v->table);
  if (!v->table) return es__fail(err, ES_ENOMEM, -1, "out of memory");
  return 0;
}

void es__vocab_free(es__vocab *v) {
  free(v->arena);
  free(v->e);
  free(v->table);
  memset(v, 0, sizeof *v);
}

static uint32_t *slot_for(const es__vocab *v, const char *s, size_t len, uint32_t h) {
  uint32_t i = (h * 0x9E3779B1u) & v->mask;
  for (;;) {
    uint32_t x = v->table[i];
    if (!x) return &v->table[i];
    const es__ventry *e = &v->e[x - 1];
    if (e->hash == h && e->len == len && memcmp(v->arena + e->off, s, len) == 0)
      return &v->table[i];
    i = (i + 1) & v->mask;
  }
}

int32_t es__vocab_find(const es__vocab *v, const char *s, size_t len) {
  uint32_t x = *slot_for(v, s, len, es__hash(s, len));
  return (int32_t)x - 1;
}

static int rebuild_table(es__vocab *v, uint32_t nslots, es_error_t *err) {
  uint32_t *t = calloc(nslots, sizeof *t);
  if (!t) return es__fail(err, ES_ENOMEM, -1, "out of memory (dictionary table)");
  free(v->table);
  v->table = t;
  v->mask = nslots - 1;
  for (int32_t i = 0; i < v->n; i++)
    *slot_for(v, v->arena + v->e[i].off, v->e[i].len, v->e[i].hash) = (uint32_t)i + 1;
  return 0;
}

int es__vocab_add(es__vocab *v, const char *s, size_t len, es_error_t *err) {
  uint32_t h = es__hash(s, len);
  uint32_t *slot = slot_for(v, s, len, h);
  v->ntokens++;
  if (*slot) {
    v->e[*slot - 1].count++;
    return 0;
  }
  if (len > UINT32_MAX / 2) return es__fail(err, ES_ERANGE, -1, "a token of %zu bytes", len);
  if (v->n == INT32_MAX - 1) return es__fail(err, ES_ERANGE, -1, "too many distinct tokens");
  if (v->n == v->cap) {
    int32_t cap = v->cap ? (v->cap > INT32_MAX / 2 ? INT32_MAX - 1 : v->cap * 2) : 1024;
    es__ventry *ne = realloc(v->e, (size_t)cap * sizeof *ne);
    if (!ne) return es__fail(err, ES_ENOMEM, -1, "out of memory (dictionary entries)");
    v->e = ne;
    v->cap = cap;
  }
  if (v->arena_len + len + 1 > v->arena_cap) {
    size_t cap = v->arena_cap ? v->arena_cap : 65536;
    while (cap < v->arena_len + len + 1) cap *= 2;
    char *na = realloc(v->arena, cap);
    if (!na) return es__fail(err, ES_ENOMEM, -1, "out of memory (dictionary strings)");
    v->arena = na;
    v->arena_cap = cap;
  }
  es__ventry *e = &v->e[v->n];
  e->off = v->arena_len;
  e->len = (uint32_t)len;
  e->hash = h;
  e->count = 1;
  e->first = v->nadded++;
  e->type = len >= v->label_len && memcmp(s, v->label, v->label_len) == 0;
  memcpy(v->arena + v->arena_len, s, len);
  v->arena[v->arena_len + len] = 0;
  v->arena_len += len + 1;
  *slot = (uint32_t)++v->n;
  /* Grow at load 1/2: probes stay short. */
  if ((uint32_t)v->n > (v->mask + 1) / 2) {
    if (v->mask >= 0x7fffffffu) return es__fail(err, ES_ERANGE, -1, "dictionary table too large");
    return rebuild_table(v, (v->mask + 1) * 2, err);
  }
  return 0;
}

static int cmp_entry(const void *a, const void *b) {
  const es__ventry *x = a, *y = b;
  if (x->type != y->type) return x->type < y->type ? -1 : 1;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  return x->first < y->first ? -1 : x->first > y->first;
}

int es__vocab_threshold(es__vocab *v, int64_t t, int64_t tl, es_error_t *err) {
  if (v->n) qsort(v->e, (size_t)v->n, sizeof *v->e, cmp_entry);
  int32_t k = 0;
  v->nwords = v->nlabels = 0;
  for (int32_t i = 0; i < v->n; i++) {
    const es__ventry *e = &v->e[i];
    if (e->type == 0 ? e->count < t : e->count < tl) continue;
    v->e[k++] = *e;
    if (e->type == 0)
      v->nwords++;
    else
      v->nlabels++;
  }
  v->n = k;
  /* Compact the arena too: dropped strings would otherwise stay. */
  size_t used = 0;
  for (int32_t i = 0; i < v->n; i++) used += v->e[i].len + 1;
  char *na = malloc(used ? used : 1);
  if (!na) return es__fail(err, ES_ENOMEM, -1, "out of memory (dictionary strings)");
  size_t at = 0;
  for (int32_t i = 0; i < v->n; i++) {
    memcpy(na + at, v->arena + v->e[i].off, v->e[i].len + 1);
    v->e[i].off = at;
    at += v->e[i].len + 1;
  }
  free(v->arena);
  v->arena = na;
  v->arena_len = v->arena_cap = used ? used : 1;
  uint32_t nslots = 1024;
  while (nslots / 2 < (uint32_t)v->n + 1) nslots *= 2;
  return rebuild_table(v, nslots, err);
}

static inline int is_sep(unsigned char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f' || c == '\0';
}

int es__vocab_read(es__vocab *v, const char *path, int32_t min_count, int32_t min_count_label,
                   es_error_t *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return es__fail(err, ES_EIO, -1, "cannot open %s: %s", path, strerror(errno));
  char *buf = malloc(READ_BLOCK);
  size_t tcap = 4096, tlen = 0;
  char *tok = malloc(tcap);
  int rc = 0;
  int64_t min_threshold = 1;
  if (!buf || !tok) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
  size_t got;
  while (!rc && (got = fread(buf, 1, READ_BLOCK, f)) > 0) {
    for (size_t i = 0; i < got && !rc; i++) {
      unsigned char c = (unsigned char)buf[i];
      if (!is_sep(c)) {
        if (tlen == tcap) {
          char *nt = tcap < SIZE_MAX / 2 ? realloc(tok, tcap * 2) : NULL;
          if (!nt) {
            rc = es__fail(err, ES_ENOMEM, -1, "out of memory (a token of %zu bytes)", tlen);
            break;
          }
          tok = nt;
          tcap *= 2;
        }
        tok[tlen++] = (char)c;
        continue;
      }
      if (tlen) {
        rc = es__vocab_add(v, tok, tlen, err);
        tlen = 0;
      }
      if (!rc && c == '\n') rc = es__vocab_add(v, "</s>", 4, err);
      if (!rc && v->n > MAX_VOCAB_SIZE * 3 / 4) {
        min_threshold++;
        rc = es__vocab_threshold(v, min_threshold, min_threshold, err);
      }
    }
  }
  if (!rc && ferror(f)) rc = es__fail(err, ES_EIO, -1, "cannot read %s: %s", path, strerror(errno));
  if (!rc && tlen) rc = es__vocab_add(v, tok, tlen, err);
  fclose(f);
  free(buf);
  free(tok);
  if (!rc) rc = es__vocab_threshold(v, min_count, min_count_label, err);
  return rc;
}
