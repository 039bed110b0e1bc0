/*
 * sb.h - a growable byte buffer for building response bodies.
 *
 * The hot path (classification replies) writes JSON through these helpers
 * instead of building a cJSON tree: one buffer, no per-node allocation.
 * An allocation failure sticks (sb->oom) and later appends do nothing, so a
 * caller checks once at the end.
 */
#ifndef ES_SERVER_SB_H
#define ES_SERVER_SB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct es_sb {
  char *data;
  size_t len, cap;
  int oom;
} es_sb_t;

/* Appends n bytes. */
void es_sb_put(es_sb_t *sb, const void *p, size_t n);
void es_sb_puts(es_sb_t *sb, const char *s);
void es_sb_printf(es_sb_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s (n bytes) as a JSON string literal with its quotes; invalid
 * UTF-8 bytes become U+FFFD so the output is always valid JSON. */
void es_sb_json_str(es_sb_t *sb, const char *s, size_t n);
/* Appends a number as JSON (finite; NaN and infinities become null). */
void es_sb_json_num(es_sb_t *sb, double v);
/* Hands the bytes over (NUL-terminated; the caller frees) and resets sb. */
char *es_sb_take(es_sb_t *sb, size_t *len);
void es_sb_free(es_sb_t *sb);

/* Nonzero when s[0..n) is valid UTF-8 (no overlongs, no surrogates). */
int es_utf8_valid(const char *s, size_t n);

#endif
