/*
 * backend.c - the table of built-in backends (backend.h).
 *
 * The server finds a backend by the name in a model's config.ini
 * (es_backend_find) or by the model file's name (es_backend_for_file). The
 * table is a constant array: adding a backend is one line here and its own
 * file beside fasttext.c.
 *
 * Invariants:
 *  1. The table never changes at run time (no registration, no globals to
 *     lock): every function here is thread-safe and allocates nothing.
 *  2. es_backend_for_file() asks the backends in table order, so an earlier
 *     backend wins a file two backends accept.
 */
#include <string.h>

#include "edgeserve/backend.h"

typedef const es_backend_t *(*backend_get_fn)(void);

static const backend_get_fn builtins[] = {
    es_backend_fasttext,
};
#define NBUILTINS (sizeof builtins / sizeof builtins[0])

es_backend_opts_t es_backend_default_opts(void) {
  es_backend_opts_t o = {.nthreads = 1, .max_batch = 32, .populate = 0};
  return o;
}

const es_backend_t *es_backend_find(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < NBUILTINS; i++) {
    const es_backend_t *b = builtins[i]();
    if (!strcmp(b->name, name)) return b;
  }
  return NULL;
}

const es_backend_t *es_backend_for_file(const char *path) {
  if (!path) return NULL;
  for (size_t i = 0; i < NBUILTINS; i++) {
    const es_backend_t *b = builtins[i]();
    if (b->accepts(path)) return b;
  }
  return NULL;
}
