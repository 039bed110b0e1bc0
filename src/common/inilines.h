/*
 * inilines.h - INI text through inih (Debian libinih-dev), with the file name
 * and line number in every message (internal; config.c and repo.c).
 *
 * inih reads through a fgets-like callback: es__inilines_read hands it one
 * line of an in-memory text per call and counts the lines, so the handler
 * knows where it is (l->lineno, l->line) and es__inilines_fail can say
 * "config.ini:4: ...". A line longer than inih's buffer is an error, not two
 * half lines.
 *
 *   typedef struct { es__inilines l; ... } my_ctx;
 *   static int on_pair(void *user, const char *sec, const char *key, const char *val) {
 *     my_ctx *x = user;
 *     if (bad) return es__inilines_fail(&x->l, ES_EINVAL, "[%s] %s: ...", sec, key);
 *     return 1;
 *   }
 *   es__inilines_init(&x->l, text, "config.ini");
 *   int rc = es__inilines_parse(&x->l, on_pair, x, ES_EINVAL, err);
 */
#ifndef ES_COMMON_INILINES_H
#define ES_COMMON_INILINES_H

#include <stdarg.h>

#include "edgeserve/error.h"

typedef struct es__inilines {
  const char *name; /* what messages start with ("config.ini") */
  const char *text; /* the whole text, NUL-terminated */
  const char *pos;  /* the next line */
  const char *line; /* the current line (for offsets and indentation) */
  int lineno;       /* the current line's number, from 1 */
  int failed;       /* an error was recorded: reading stops */
  int fail_line;    /* the line it was recorded on */
  es_error_t e;     /* the first error (code, offset of its line, message) */
} es__inilines;

/* Starts reading `text` (kept valid by the caller); name NULL: "(string)". */
void es__inilines_init(es__inilines *l, const char *text, const char *name);

/* inih's reader (ini_reader); `stream` is the es__inilines. */
char *es__inilines_read(char *str, int num, void *stream);

/* Records the first error of the text: code, the offset of the current line
 * and "name:line: " + the message. Returns 0, which stops inih when a
 * handler returns it. */
int es__inilines_fail(es__inilines *l, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int es__inilines_vfail(es__inilines *l, int code, const char *fmt, va_list ap);

/* Runs inih over the text with handler(user, section, name, value). Returns
 * 0; or ES_ENOMEM; or, for a line inih cannot read ("key" without "="...)
 * before any error of ours, `syntax_code` with "name:N: 'the line': expected
 * '[section]' or 'key = value'"; or the first error recorded. *err (when not
 * NULL) is filled on failure. */
typedef int (*es__ini_handler)(void *user, const char *section, const char *name,
                               const char *value);
int es__inilines_parse(es__inilines *l, es__ini_handler handler, void *user, int syntax_code,
                       es_error_t *err);

#endif
