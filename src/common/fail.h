/*
 * fail.h - filling an es_error_t (internal).
 */
#ifndef ES_COMMON_FAIL_H
#define ES_COMMON_FAIL_H

#include <stdint.h>

#include "edgeserve/error.h"

/* Fills *err (when not NULL) with code, offset and a printf-style message;
 * returns code, so callers can `return es__fail(err, ES_EINVAL, -1, ...)`. */
int es__fail(es_error_t *err, int code, int64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
