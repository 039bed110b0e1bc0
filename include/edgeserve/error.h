/*
 * error.h - error codes and error reports shared by every edgeserve module.
 *
 * Functions that can fail return 0 or a negative ES_E* code. Where a caller
 * needs to know more than the code (a corrupt model file: which field, at
 * which byte), the function also fills an es_error_t the caller owns.
 */
#ifndef EDGESERVE_ERROR_H
#define EDGESERVE_ERROR_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  ES_OK = 0,
  ES_ENOMEM = -1,       /* an allocation failed */
  ES_EIO = -2,          /* a read, write, open or mmap failed (see errno text) */
  ES_EFORMAT = -3,      /* a file is not in the expected format or is corrupt */
  ES_EVERSION = -4,     /* a file's format version is not supported */
  ES_EINVAL = -5,       /* an argument is invalid */
  ES_ERANGE = -6,       /* a value is out of range (too large to map, ...) */
  ES_EUNSUPPORTED = -7, /* valid, but not something edgeserve does */
  ES_EMULTILINE = -8,   /* a single text contains a newline before its end */
  ES_ECANCELED = -9,    /* the work was cancelled before it started */
  ES_ETIMEDOUT = -10,   /* a wait or a deadline ran out */
  ES_EFULL = -11,       /* a bounded queue or pool is full: try again later */
  ES_EBUDGET = -12,     /* refused by the memory budget (the report says how much) */
  ES_ESTATE = -13,      /* not possible in the object's current state (shut down) */
  ES_ENOTFOUND = -14,   /* no such model, version, job or entry */
};

/* A detailed error report. `offset` is the byte offset in the file the error
 * concerns, or -1 when not about a position. */
typedef struct es_error {
  int code;
  int64_t offset;
  char msg[256];
} es_error_t;

/* Returns a static, human-readable description of an ES_E* code. */
const char *es_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
