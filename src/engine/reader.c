/* reader.c - bounds-checked cursor; see reader.h. */
#include "reader.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void es__reader_init(es__reader *r, const void *base, size_t len, es_error_t *err) {
  r->base = base;
  r->len = len;
  r->pos = 0;
  r->err = err;
  r->failed = 0;
}

int es__reader_fail(es__reader *r, int code, size_t offset, const char *fmt, ...) {
  if (!r->failed) {
    r->failed = code;
    if (r->err) {
      va_list ap;
      va_start(ap, fmt);
      r->err->code = code;
      r->err->offset = (int64_t)offset;
      vsnprintf(r->err->msg, sizeof r->err->msg, fmt, ap);
      va_end(ap);
    }
  }
  return r->failed;
}

static int need(es__reader *r, uint64_t n, const char *what) {
  if (r->failed) return r->failed;
  if (n > r->len - r->pos)
    return es__reader_fail(r, ES_EFORMAT, r->pos,
                           "truncated: %s needs %llu bytes at byte %zu, the file has %zu", what,
                           (unsigned long long)n, r->pos, r->len);
  return 0;
}

#define READ_FIXED(name, type)                                                                     \
  int name(es__reader *r, type *v, const char *what) {                                             \
    int rc = need(r, sizeof(type), what);                                                          \
    if (rc) return rc;                                                                             \
    memcpy(v, r->base + r->pos, sizeof(type));                                                     \
    r->pos += sizeof(type);                                                                        \
    return 0;                                                                                      \
  }
READ_FIXED(es__read_u8, uint8_t)
READ_FIXED(es__read_i8, int8_t)
READ_FIXED(es__read_i32, int32_t)
READ_FIXED(es__read_i64, int64_t)
READ_FIXED(es__read_f64, double)

int es__read_span(es__reader *r, uint64_t n, const uint8_t **p, const char *what) {
  int rc = need(r, n, what);
  if (rc) return rc;
  *p = r->base + r->pos;
  r->pos += (size_t)n;
  return 0;
}

int es__read_cstr(es__reader *r, const char **s, size_t *len, const char *what) {
  if (r->failed) return r->failed;
  const uint8_t *start = r->base + r->pos;
  const uint8_t *nul = memchr(start, 0, r->len - r->pos);
  if (!nul)
    return es__reader_fail(r, ES_EFORMAT, r->pos,
                           "%s at byte %zu is not NUL-terminated before the end of the file", what,
                           r->pos);
  *s = (const char *)start;
  *len = (size_t)(nul - start);
  r->pos += *len + 1;
  return 0;
}
