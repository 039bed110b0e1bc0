/*
 * sb.c - growable buffer and JSON text helpers (sb.h).
 */
#include "sb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(es_sb_t *sb, size_t need) {
  if (sb->oom) return -1;
  if (sb->len + need + 1 <= sb->cap) return 0;
  size_t cap = sb->cap ? sb->cap : 256;
  while (cap < sb->len + need + 1) {
    if (cap > SIZE_MAX / 2) {
      sb->oom = 1;
      return -1;
    }
    cap *= 2;
  }
  char *d = realloc(sb->data, cap);
  if (!d) {
    sb->oom = 1;
    return -1;
  }
  sb->data = d;
  sb->cap = cap;
  return 0;
}

void es_sb_put(es_sb_t *sb, const void *p, size_t n) {
  if (grow(sb, n)) return;
  memcpy(sb->data + sb->len, p, n);
  sb->len += n;
  sb->data[sb->len] = '\0';
}

void es_sb_puts(es_sb_t *sb, const char *s) { es_sb_put(sb, s, strlen(s)); }

void es_sb_printf(es_sb_t *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    es_sb_put(sb, small, (size_t)n);
    return;
  }
  if (grow(sb, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0)
    len = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0)
    len = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0)
    len = 4, cp = c & 0x07, min = 0x10000;
  else
    return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

int es_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    size_t l = utf8_seq(p + i, n - i);
    if (!l) return 0;
    i += l;
  }
  return 1;
}

void es_sb_json_str(es_sb_t *sb, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  if (grow(sb, n + 2)) return;
  sb->data[sb->len++] = '"';
  size_t run = 0; /* bytes copied as they are, flushed in one put */
  for (size_t i = 0; i < n;) {
    unsigned c = p[i];
    size_t l = c < 0x80 ? 1 : utf8_seq(p + i, n - i);
    const char *esc = NULL;
    char u[8];
    if (c < 0x80) {
      if (c == '"')
        esc = "\\\"";
      else if (c == '\\')
        esc = "\\\\";
      else if (c == '\n')
        esc = "\\n";
      else if (c == '\r')
        esc = "\\r";
      else if (c == '\t')
        esc = "\\t";
      else if (c < 0x20 || c == 0x7F) {
        u[0] = '\\', u[1] = 'u', u[2] = '0', u[3] = '0', u[4] = hex[c >> 4], u[5] = hex[c & 15],
        u[6] = 0;
        esc = u;
      }
    } else if (!l) {
      esc = "\xEF\xBF\xBD"; /* U+FFFD for an invalid byte */
      l = 1;
    }
    if (esc) {
      if (run) es_sb_put(sb, p + i - run, run), run = 0;
      es_sb_puts(sb, esc);
    } else {
      run += l;
    }
    i += l;
  }
  if (run) es_sb_put(sb, p + n - run, run);
  es_sb_put(sb, "\"", 1);
}

void es_sb_json_num(es_sb_t *sb, double v) {
  if (!isfinite(v)) {
    es_sb_puts(sb, "null");
    return;
  }
  if (v == (double)(int64_t)v && fabs(v) < 9e15)
    es_sb_printf(sb, "%lld", (long long)v);
  else
    es_sb_printf(sb, "%.6g", v);
}

char *es_sb_take(es_sb_t *sb, size_t *len) {
  if (sb->oom) {
    es_sb_free(sb);
    return NULL;
  }
  if (!sb->data && grow(sb, 0)) return NULL;
  if (!sb->data) return NULL;
  char *d = sb->data;
  if (len) *len = sb->len;
  sb->data = NULL, sb->len = sb->cap = 0;
  return d;
}

void es_sb_free(es_sb_t *sb) {
  free(sb->data);
  sb->data = NULL, sb->len = sb->cap = 0, sb->oom = 0;
}
