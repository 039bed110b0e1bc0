/*
 * clock.h - monotonic time in seconds, for progress, ETAs and deadlines.
 * Internal.
 */
#ifndef ES_COMMON_CLOCK_H
#define ES_COMMON_CLOCK_H

#include <time.h>

static inline double es__mono_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
