/*
 * hash.h - fastText's hashes: FNV-1a over sign-extended bytes, and the
 * word n-gram mix. Inline: they sit on the tokenizer's hot path.
 */
#ifndef ES_ENGINE_HASH_H
#define ES_ENGINE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define ES__FNV_INIT  2166136261u
#define ES__FNV_PRIME 16777619u
#define ES__NGRAM_MIX 116049371u

/* One FNV step. fastText xors the byte after sign extension (char is signed
 * on x86), so bytes >= 0x80 differ from plain FNV-1a. */
static inline uint32_t es__fnv_step(uint32_t h, uint8_t b) {
  h ^= (uint32_t)(int32_t)(int8_t)b;
  return h * ES__FNV_PRIME;
}

static inline uint32_t es__fnv_continue(uint32_t h, const void *s, size_t n) {
  const uint8_t *p = s;
  for (size_t i = 0; i < n; i++) h = es__fnv_step(h, p[i]);
  return h;
}

/* fastText's Dictionary::hash. */
static inline uint32_t es__hash(const void *s, size_t n) {
  return es__fnv_continue(ES__FNV_INIT, s, n);
}

/* The bucket of the word n-gram hashes[i..j] (j > i), as fastText's
 * addWordNgrams: h = sext(hash[i]); h = h * 116049371 + sext(hash[x]). */
static inline uint64_t es__ngram_step(uint64_t h, int32_t next) {
  return h * ES__NGRAM_MIX + (uint64_t)(int64_t)next;
}

/* The dictionary's table hash: keyed with a random per-model seed, so a
 * hostile model file cannot aim many words at one slot (FNV collisions are
 * cheap to construct) and make opening or lookups quadratic. Not fastText's;
 * never stored. A multiply-xorshift mix per 8 bytes. */
static inline uint64_t es__mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 32;
  return x;
}

static inline uint64_t es__keyed_hash(const void *s, size_t n, uint64_t key) {
  const uint8_t *p = s;
  uint64_t h = key ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull);
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    h = es__mix64(h ^ v) + key;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return es__mix64(h ^ v ^ key);
}

#endif
