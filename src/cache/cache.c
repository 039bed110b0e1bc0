/*
 * cache.c - the response cache interface: a handle that dispatches to a
 * tier's function table, and the key builder. See cache.h; the in-process
 * tier is memory.c.
 *
 * The server holds an es_cache_t and never sees the tier behind it, so a
 * shared tier (Redis) plugs in by filling an es_cache_ops_t. This file adds
 * only what every tier shares: argument checks (so a tier sees valid
 * arguments only), the fallbacks of the optional functions, and the key
 * layout.
 *
 * Invariants:
 *   1. c->ops and every required function in it are non-NULL; c->impl is
 *      owned by c and freed once, by es_cache_free.
 *   2. A tier's functions are called only with valid pointers: key/val/buf
 *      NULL only with a zero length, vlen never NULL.
 */
#include "edgeserve/cache.h"

#include <stdlib.h>
#include <string.h>

#include "../common/fail.h"

struct es_cache {
  const es_cache_ops_t *ops;
  void *impl;
};

es_cache_t *es_cache_wrap(const es_cache_ops_t *ops, void *impl, es_error_t *err) {
  if (!ops || !ops->get || !ops->put || !ops->erase || !ops->clear || !ops->stats || !ops->free) {
    es__fail(err, ES_EINVAL, -1,
             "cache tier: a required function (get, put, erase, clear, "
             "stats, free) is missing");
    return NULL;
  }
  es_cache_t *c = malloc(sizeof *c);
  if (!c) {
    es__fail(err, ES_ENOMEM, -1, "cache: out of memory");
    return NULL;
  }
  c->ops = ops;
  c->impl = impl;
  return c;
}

void es_cache_free(es_cache_t *c) {
  if (!c) return;
  c->ops->free(c->impl);
  free(c);
}

const char *es_cache_name(const es_cache_t *c) { return c->ops->name ? c->ops->name : "?"; }

/* Invariant 2: a pointer may be NULL only when its length is 0. */
static int bad(const void *p, size_t n) { return !p && n; }

int es_cache_get(es_cache_t *c, const void *key, size_t klen, int64_t now_us, void *buf, size_t cap,
                 size_t *vlen) {
  if (!vlen || bad(key, klen) || bad(buf, cap)) return ES_EINVAL;
  return c->ops->get(c->impl, key, klen, now_us, buf, cap, vlen);
}

int es_cache_put(es_cache_t *c, const void *key, size_t klen, const void *val, size_t vlen,
                 int64_t now_us) {
  if (bad(key, klen) || bad(val, vlen)) return ES_EINVAL;
  return c->ops->put(c->impl, key, klen, val, vlen, now_us);
}

int es_cache_warm(es_cache_t *c, const void *key, size_t klen, const void *val, size_t vlen,
                  uint32_t count, int64_t now_us) {
  if (bad(key, klen) || bad(val, vlen)) return ES_EINVAL;
  if (!c->ops->warm) return c->ops->put(c->impl, key, klen, val, vlen, now_us);
  return c->ops->warm(c->impl, key, klen, val, vlen, count, now_us);
}

int es_cache_erase(es_cache_t *c, const void *key, size_t klen) {
  if (bad(key, klen)) return ES_EINVAL;
  return c->ops->erase(c->impl, key, klen);
}

int es_cache_erase_prefix(es_cache_t *c, const void *prefix, size_t plen, uint64_t *erased) {
  if (erased) *erased = 0;
  if (bad(prefix, plen)) return ES_EINVAL;
  if (!c->ops->erase_prefix) return ES_EUNSUPPORTED;
  return c->ops->erase_prefix(c->impl, prefix, plen, erased);
}

void es_cache_clear(es_cache_t *c) { c->ops->clear(c->impl); }

void es_cache_stats(es_cache_t *c, es_cache_stats_t *out) {
  memset(out, 0, sizeof *out);
  c->ops->stats(c->impl, out);
}

int es_cache_set_max_bytes(es_cache_t *c, uint64_t max_bytes) {
  if (!c->ops->set_max_bytes) return ES_EUNSUPPORTED;
  return c->ops->set_max_bytes(c->impl, max_bytes);
}

static void put_le(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

size_t es_cache_key(void *buf, size_t cap, const char *model, uint64_t version, const void *params,
                    size_t plen, const void *input, size_t ilen) {
  size_t mlen = strlen(model) + 1; /* with its NUL: "ab"+"c..." and "a"+"bc..." differ */
  uint64_t need64 = (uint64_t)mlen + 8 + 4 + (uint64_t)plen + (uint64_t)ilen;
#if SIZE_MAX > UINT32_MAX
  if (plen > UINT32_MAX)
    return SIZE_MAX; /* plen must fit its 4 bytes, or two keys could read
                        the same */
#endif
  if (need64 >= SIZE_MAX) return SIZE_MAX;
  size_t need = (size_t)need64;
  if (!buf || need > cap) return need;
  unsigned char *p = buf;
  memcpy(p, model, mlen);
  p += mlen;
  put_le(p, version, 8);
  put_le(p + 8, (uint64_t)plen, 4);
  p += 12;
  if (plen) memcpy(p, params, plen);
  if (ilen) memcpy(p + plen, input, ilen);
  return need;
}
