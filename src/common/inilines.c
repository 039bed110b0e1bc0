/*
 * inilines.c - INI text through inih with line numbers (inilines.h).
 */
#include "inilines.h"

#include <ini.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fail.h"

void es__inilines_init(es__inilines *l, const char *text, const char *name) {
  memset(l, 0, sizeof *l);
  l->name = name ? name : "(string)";
  l->text = l->pos = l->line = text;
}

char *es__inilines_read(char *str, int num, void *stream) {
  es__inilines *l = stream;
  if (l->failed || *l->pos == '\0') return NULL;
  const char *nl = strchr(l->pos, '\n');
  size_t len = nl ? (size_t)(nl - l->pos) + 1 : strlen(l->pos);
  l->lineno++;
  l->line = l->pos;
  if (len + 1 > (size_t)num) {
    es__inilines_fail(l, ES_EFORMAT, "line longer than %d characters", num - 2);
    return NULL;
  }
  memcpy(str, l->pos, len);
  str[len] = '\0';
  l->pos += len;
  return str;
}

int es__inilines_vfail(es__inilines *l, int code, const char *fmt, va_list ap) {
  if (l->failed) return 0;
  l->failed = 1;
  l->fail_line = l->lineno;
  l->e.code = code;
  l->e.offset = (int64_t)(l->line - l->text);
  int n = snprintf(l->e.msg, sizeof l->e.msg, "%s:%d: ", l->name, l->lineno);
  if (n < 0 || (size_t)n >= sizeof l->e.msg) n = 0;
  vsnprintf(l->e.msg + n, sizeof l->e.msg - (size_t)n, fmt, ap);
  return 0;
}

int es__inilines_fail(es__inilines *l, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  es__inilines_vfail(l, code, fmt, ap);
  va_end(ap);
  return 0;
}

int es__inilines_parse(es__inilines *l, es__ini_handler handler, void *user, int syntax_code,
                       es_error_t *err) {
  int rc = ini_parse_stream(es__inilines_read, l, handler, user);
  if (rc == -2) return es__fail(err, ES_ENOMEM, -1, "out of memory");
  if (rc > 0 && (!l->failed || rc < l->fail_line)) {
    /* inih's own syntax error, earlier than any of ours: quote its line */
    const char *s = l->text;
    for (int i = 1; i < rc && s; i++) {
      s = strchr(s, '\n');
      if (s) s++;
    }
    if (!s) s = l->text;
    size_t sl = strcspn(s, "\r\n");
    return es__fail(err, syntax_code, (int64_t)(s - l->text),
                    "%s:%d: '%.*s': expected '[section]' or 'key = value'", l->name, rc,
                    (int)(sl > 64 ? 64 : sl), s);
  }
  if (l->failed) {
    if (err) *err = l->e;
    return l->e.code;
  }
  return 0;
}
