/*
 * splitmix.h - splitmix64, the seeder of edgeserve's random generators
 * (training's xoshiro128++, the quantizer's xoshiro256**): turns any seed,
 * 0 included, into well-mixed state words. Internal.
 */
#ifndef ES_COMMON_SPLITMIX_H
#define ES_COMMON_SPLITMIX_H

#include <stdint.h>

/* Advances *x and returns its next output. */
static inline uint64_t es__splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#endif
