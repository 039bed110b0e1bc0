/* error.c - texts of the ES_E* codes. */
#include "edgeserve/error.h"

#include <stdarg.h>
#include <stdio.h>

#include "fail.h"

const char *es_strerror(int code) {
  switch (code) {
  case ES_OK: return "success";
  case ES_ENOMEM: return "out of memory";
  case ES_EIO: return "input/output error";
  case ES_EFORMAT: return "invalid or corrupt file";
  case ES_EVERSION: return "unsupported format version";
  case ES_EINVAL: return "invalid argument";
  case ES_ERANGE: return "value out of range";
  case ES_EUNSUPPORTED: return "not supported";
  case ES_EMULTILINE: return "text contains a newline before its end";
  case ES_ECANCELED: return "cancelled";
  case ES_ETIMEDOUT: return "timed out";
  case ES_EFULL: return "full, try again later";
  case ES_EBUDGET: return "memory budget exceeded";
  case ES_ESTATE: return "not possible in the current state";
  case ES_ENOTFOUND: return "not found";
  default: return "unknown error";
  }
}

int es__fail(es_error_t *err, int code, int64_t offset, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    err->offset = offset;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}
