/*
 * respcache.c - the response cache in the request path: keys, values,
 * lookups before a job, puts after it, clearing on model swaps, warming
 * from history, and the /cache/clear endpoint.
 *
 * Key (es_cache_key): model, version, the parameters that change the
 * answer (labels computed, threshold), and the input as the backend will
 * see it (normalised when the backend can say how: backend->normalize).
 * Value: n (u16), then per prediction prob (f32), label length (u16) and
 * the label's bytes.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "edgeserve/cache.h"
#include "server_impl.h"

#define KEY_MAX 2048

static size_t make_key(es_served_t *sv, const es_infer_item_t *it, char *key) {
  char norm[1024];
  const char *in = it->text;
  size_t ilen = it->len;
  if (sv->backend->normalize) {
    size_t n = sv->backend->normalize(sv->inst, it->text, it->len, norm, sizeof norm);
    if (n < sizeof norm) in = norm, ilen = n;
  }
  unsigned char params[8];
  int32_t k = it->cap;
  memcpy(params, &k, 4);
  memcpy(params + 4, &it->threshold, 4);
  size_t n =
      es_cache_key(key, KEY_MAX, sv->name, ((uint64_t)sv->generation << 20) ^ (uint64_t)sv->version,
                   params, sizeof params, in, ilen);
  return n <= KEY_MAX ? n : 0;
}

int es__cache_lookup(es_req_t *r, es_infer_item_t *it, char **hold) {
  es_server_t *s = r->srv;
  if (!s->cache) return 0;
  char key[KEY_MAX];
  size_t klen = make_key(r->job.served, it, key);
  if (!klen) return 0;
  char val[4096];
  size_t vlen = 0;
  if (es_cache_get(s->cache, key, klen, es__now_us(), val, sizeof val, &vlen) || vlen < 2) return 0;
  char *copy = malloc(vlen);
  if (!copy) return 0;
  memcpy(copy, val, vlen);
  uint16_t n;
  memcpy(&n, copy, 2);
  size_t off = 2;
  int got = 0;
  for (int i = 0; i < n && i < it->cap; i++) {
    if (off + 6 > vlen) break;
    float p;
    uint16_t l;
    memcpy(&p, copy + off, 4);
    memcpy(&l, copy + off + 4, 2);
    off += 6;
    if (off + l > vlen) break;
    it->out[i] = (es_label_prob_t){.label = copy + off, .len = l, .prob = p};
    off += l;
    got++;
  }
  if (got != n) {
    free(copy);
    return 0;
  }
  it->n = got;
  it->status = 0;
  *hold = copy;
  return 1;
}

/* The value of item `it` into val[cap]: its length, or 0 when it does not
 * fit (not worth caching). */
static size_t encode(const es_infer_item_t *it, char *val, size_t cap) {
  size_t off = 2;
  uint16_t n = 0;
  for (int i = 0; i < it->n; i++) {
    size_t l = it->out[i].len;
    if (l > 1024 || off + 6 + l > cap) return 0;
    memcpy(val + off, &it->out[i].prob, 4);
    uint16_t l16 = (uint16_t)l;
    memcpy(val + off + 4, &l16, 2);
    memcpy(val + off + 6, it->out[i].label, l);
    off += 6 + l;
    n++;
  }
  memcpy(val, &n, 2);
  return off;
}

void es__cache_store(es_server_t *s, es_served_t *sv, const es_infer_item_t *it) {
  if (!s->cache || it->status) return;
  char key[KEY_MAX], val[4096];
  size_t klen = make_key(sv, it, key), vlen = encode(it, val, sizeof val);
  if (klen && vlen) es_cache_put(s->cache, key, klen, val, vlen, es__now_us());
}

void es__cache_drop_model(es_server_t *s, const char *name) {
  if (!s->cache) return;
  uint64_t n = 0;
  if (es_cache_erase_prefix(s->cache, name, strlen(name) + 1, &n)) es_cache_clear(s->cache);
}

cJSON *es__cache_json(es_server_t *s) {
  cJSON *o = cJSON_CreateObject();
  if (!s->cache) {
    cJSON_AddBoolToObject(o, "enabled", 0);
    return o;
  }
  es_cache_stats_t st;
  es_cache_stats(s->cache, &st);
  cJSON_AddBoolToObject(o, "enabled", 1);
  cJSON_AddStringToObject(o, "tier", es_cache_name(s->cache));
  cJSON_AddNumberToObject(o, "hits", (double)st.hits);
  cJSON_AddNumberToObject(o, "misses", (double)st.misses);
  uint64_t g = st.hits + st.misses;
  cJSON_AddNumberToObject(o, "hit_rate", g ? (double)st.hits / (double)g : 0.0);
  cJSON_AddNumberToObject(o, "entries", (double)st.entries);
  cJSON_AddNumberToObject(o, "bytes", (double)st.bytes);
  cJSON_AddNumberToObject(o, "max_bytes", (double)st.max_bytes);
  cJSON_AddNumberToObject(o, "evictions", (double)st.evictions);
  cJSON_AddNumberToObject(o, "rejected", (double)st.rejected);
  return o;
}

void es__optimize_caches(es_server_t *s, cJSON *actions) {
  if (!s->cache) return;
  es_cache_stats_t st;
  es_cache_stats(s->cache, &st);
  es_cache_clear(s->cache);
  char msg[96];
  snprintf(msg, sizeof msg, "response cache cleared (%llu entries)",
           (unsigned long long)st.entries);
  cJSON_AddItemToArray(actions, cJSON_CreateString(msg));
}

void es__cache_clear_endpoint(es_req_t *r) {
  es_server_t *s = r->srv;
  cJSON *o = cJSON_CreateObject();
  uint64_t before = 0;
  if (s->cache) {
    es_cache_stats_t st;
    es_cache_stats(s->cache, &st);
    before = st.entries;
    es_cache_clear(s->cache);
  }
  cJSON_AddBoolToObject(o, "cleared", s->cache != NULL);
  cJSON_AddNumberToObject(o, "entries_removed", (double)before);
  es__reply_json(r, 200, o);
}

/* Warming: the most frequent inputs of `name` in the history, computed now
 * and put with their counts. */
typedef struct {
  es_server_t *s;
  es_served_t *sv;
  int done;
} warm_t;

static int warm_one(void *ud, const char *text, size_t len, int64_t count) {
  warm_t *w = ud;
  es_label_prob_t preds[8];
  es_infer_item_t it = {.text = text, .len = len, .k = 3, .out = preds, .cap = 3};
  if (w->sv->conf->alternatives > 3 && w->sv->conf->alternatives <= 8)
    it.k = it.cap = w->sv->conf->alternatives;
  if (w->sv->backend->infer(w->sv->inst, &it, 1, NULL) || it.status) return 0;
  char key[KEY_MAX], val[4096];
  size_t klen = make_key(w->sv, &it, key), vlen = encode(&it, val, sizeof val);
  if (klen && vlen &&
      es_cache_warm(w->s->cache, key, klen, val, vlen, count > 15 ? 15u : (uint32_t)count,
                    es__now_us()) == 0)
    w->done++;
  return 0;
}

int es__cache_warm_model(es_server_t *s, const char *name, int limit) {
  if (!s->cache || !s->store) return 0;
  es_served_t *sv = NULL;
  if (es_repo_acquire(s->repo, name, &sv, NULL)) return 0;
  warm_t w = {s, sv, 0};
  es_store_top_inputs(s->store, name, limit, warm_one, &w, NULL);
  es_repo_release(s->repo, sv);
  return w.done;
}
