/*
 * vocab.h - building a training dictionary, as fastText's Dictionary does
 * (readFromFile, add, threshold), with memory sized to the data: a hash
 * table that grows with the vocabulary instead of fastText's fixed 30M slots.
 *
 * Entries end sorted as fastText sorts them: words before labels, each by
 * count descending; ties keep first-appearance order (fastText's std::sort
 * leaves them unspecified), so the result is deterministic.
 */
#ifndef ES_TRAIN_VOCAB_H
#define ES_TRAIN_VOCAB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "edgeserve/error.h"

typedef struct es__ventry {
  size_t off;    /* string offset in the arena (NUL-terminated) */
  uint32_t len;  /* string length */
  uint32_t hash; /* fastText's FNV hash of the string */
  int64_t count;
  int64_t first; /* order of first appearance (tie-break) */
  int8_t type;   /* 0 word, 1 label */
} es__ventry;

typedef struct es__vocab {
  char *arena;
  size_t arena_len, arena_cap;
  es__ventry *e;
  int32_t n, cap;
  uint32_t *table; /* entry index + 1, 0 empty; power-of-two size */
  uint32_t mask;
  int64_t ntokens, nadded;
  int32_t nwords, nlabels;
  char label[64];
  size_t label_len;
} es__vocab;

/* Initializes an empty vocabulary with the label prefix (NULL: __label__). */
int es__vocab_init(es__vocab *v, const char *label, es_error_t *err);
void es__vocab_free(es__vocab *v);

/* Adds one occurrence of the token s[0..len): fastText's Dictionary::add
 * (ntokens counts every call). */
int es__vocab_add(es__vocab *v, const char *s, size_t len, es_error_t *err);

/* Reads every token of the file (fastText's readWord: separators
 * space \n \r \t \v \f \0; a newline is the token "</s>"), adding each, with
 * fastText's safety valve of raising the threshold when the vocabulary
 * passes 22.5M entries; then applies threshold(min_count, min_count_label).
 * `path` "-" is not accepted (the trainer needs to seek). */
int es__vocab_read(es__vocab *v, const char *path, int32_t min_count, int32_t min_count_label,
                   es_error_t *err);

/* fastText's threshold(): sorts, then drops words with count < t and labels
 * with count < tl, and recounts nwords/nlabels. */
int es__vocab_threshold(es__vocab *v, int64_t t, int64_t tl, es_error_t *err);

/* Entry id of the string, or -1. */
int32_t es__vocab_find(const es__vocab *v, const char *s, size_t len);

static inline const char *es__vocab_str(const es__vocab *v, int32_t i) {
  return v->arena + v->e[i].off;
}

#endif
