/*
 * reader.h - a bounds-checked little-endian cursor over a mapped file.
 *
 * Every read checks the remaining length first; on failure the reader keeps
 * the first error (message + byte offset) and all later reads fail too, so
 * a loader can read a run of fields and check once. Values are assembled
 * from bytes, so any alignment is fine.
 */
#ifndef ES_ENGINE_READER_H
#define ES_ENGINE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"

typedef struct es__reader {
  const uint8_t *base;
  size_t len, pos;
  es_error_t *err; /* may be NULL */
  int failed;
} es__reader;

void es__reader_init(es__reader *r, const void *base, size_t len, es_error_t *err);

/* Records an error at byte `offset` (first error wins). Returns `code`. */
int es__reader_fail(es__reader *r, int code, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Each returns 0, or ES_EFORMAT ("truncated: need N bytes for WHAT at byte
 * P, file has L") when fewer bytes remain. `what` names the field. */
int es__read_u8(es__reader *r, uint8_t *v, const char *what);
int es__read_i8(es__reader *r, int8_t *v, const char *what);
int es__read_i32(es__reader *r, int32_t *v, const char *what);
int es__read_i64(es__reader *r, int64_t *v, const char *what);
int es__read_f64(es__reader *r, double *v, const char *what);

/* Skips `n` bytes (a block to use in place) and returns its start in *p. */
int es__read_span(es__reader *r, uint64_t n, const uint8_t **p, const char *what);

/* Reads a NUL-terminated string in place: *s its first byte, *len without
 * the NUL. Fails when no NUL comes before the end of the file. */
int es__read_cstr(es__reader *r, const char **s, size_t *len, const char *what);

/* Unaligned little-endian loads (the targets are little-endian). */
static inline float es__ld_f32(const uint8_t *p) {
  float f;
  __builtin_memcpy(&f, p, 4);
  return f;
}
static inline int64_t es__ld_i64(const uint8_t *p) {
  int64_t v;
  __builtin_memcpy(&v, p, 8);
  return v;
}

#endif
