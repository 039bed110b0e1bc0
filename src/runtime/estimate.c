/*
 * estimate.c - memory estimates for serving a model and for text-driven
 * work, and the /estimate-memory answer.
 *
 * The model estimate is itemised from es_model_info(), which the engine
 * keeps exact for what it allocates: private_bytes counts every heap block
 * the model owns, scratch_bytes what es_scratch_new() allocates. What it
 * cannot know is the allocator's overhead (glibc: 8-16 bytes a block, heap
 * growth in 128 KiB steps), so a measured growth of RssAnon may exceed the
 * anonymous estimate by that much; tests/unit/test_estimate.c measures it
 * and states its tolerance. Untouched calloc'd pages (the dictionary's hash
 * table is sparse) make the measured growth smaller, never larger.
 *
 * Invariants:
 *   1. anon_bytes == private_bytes + scratch_bytes + batch_bytes and
 *      total_bytes == mapped_bytes + anon_bytes; every sum saturates at
 *      UINT64_MAX instead of wrapping.
 *   2. es_estimate_text() is non-decreasing in tokens, and for
 *      t = es_text_max_tokens(c, n), the per-token part of t tokens is <= n.
 *   3. es_estimate_request() reserves nothing and counts no refusal: it
 *      asks the budget with es_budget_check_parts().
 */
#include "edgeserve/estimate.h"

#include <stdio.h>
#include <string.h>

#include "../common/fail.h"
#include "edgeserve/predict.h"

#define MiB (1024ull * 1024ull)

static uint64_t add_sat(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
static uint64_t mul_sat(uint64_t a, uint64_t b) {
  return a && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}
static uint64_t sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

/* Mapped bytes after converting a dense f32 input matrix to `bits` per
 * value: convert.c's section (a 64-byte header, a scale per row, aligned to
 * 64, then the rows) replaces rows x cols floats. About: the .esm header
 * and dictionary sections differ a little from fastText's. */
static uint64_t requantized(const es_model_info_t *info, int bits) {
  uint64_t rows = (uint64_t)info->input_rows, cols = (uint64_t)info->input_cols;
  uint64_t stride = bits == 8 ? cols : (cols + 1) / 2;
  uint64_t section = (64 + 4 * rows + 63) / 64 * 64 + rows * stride;
  return add_sat(sat_sub(info->file_bytes, rows * cols * 4), section);
}

int es_estimate_model_info(const es_model_info_t *info, int nthreads, int batch,
                           es_model_estimate_t *out) {
  memset(out, 0, sizeof *out);
  if (nthreads < 1 || batch < 1 || info->nlabels < 0) return ES_EINVAL;
  uint64_t n = (uint64_t)nthreads;
  out->nthreads = nthreads;
  out->batch = batch;
  out->mapped_bytes = info->file_bytes;
  out->private_bytes = info->private_bytes;
  out->scratch_bytes = mul_sat(n, info->scratch_bytes);
  uint64_t item = ES_ESTIMATE_LINE_BYTES + (uint64_t)info->nlabels * sizeof(es_prediction_t) +
                  sizeof(const char *) + sizeof(size_t) + sizeof(int32_t);
  out->batch_bytes = mul_sat(mul_sat(n, (uint64_t)batch), item);
  out->anon_bytes = add_sat(add_sat(out->private_bytes, out->scratch_bytes), out->batch_bytes);
  out->total_bytes = add_sat(out->mapped_bytes, out->anon_bytes);
  /* predict.c's word-hash buffer: 4096 hashes at first, up to
   * max_line_words (4 bytes each) on long lines of word-n-gram models. */
  if (info->args.word_ngrams > 1 && info->args.bucket > 0 && info->pruneidx_size != 0) {
    uint64_t most = (uint64_t)es_scratch_default_params().max_line_words;
    out->long_line_bytes = mul_sat(n, sat_sub(most, 4096) * 4);
  }
  if (!info->quant_input && !info->input_scheme && info->input_rows > 0 && info->input_cols > 0) {
    out->int8_total = add_sat(requantized(info, 8), out->anon_bytes);
    out->int4_total = add_sat(requantized(info, 4), out->anon_bytes);
  }
  return 0;
}

int es_estimate_model_file(const char *path, int nthreads, int batch, es_model_estimate_t *out,
                           es_error_t *err) {
  memset(out, 0, sizeof *out);
  if (nthreads < 1 || batch < 1)
    return es__fail(err, ES_EINVAL, -1, "nthreads (%d) and batch (%d) must be at least 1", nthreads,
                    batch);
  es_model_t *m;
  es_model_params_t mp = es_model_default_params();
  mp.word_rows_bytes = ES_MODEL_WORD_ROWS_BYTES; /* as the server's backend loads it */
  int rc = es_model_open(&m, path, &mp, err);
  if (rc) return rc;
  es_model_info_t info;
  es_model_info(m, &info);
  es_model_close(m);
  return es_estimate_model_info(&info, nthreads, batch, out);
}

/* ---- text-driven work ---------------------------------------------------------- */

static const char *variant_name(int bits) {
  switch (bits) {
  case 4: return "int4";
  case 8: return "int8";
  case 16: return "f16";
  default: return "f32";
  }
}

es_text_cost_t es_text_cost_at_bits(const es_text_cost_t *c, int bits) {
  es_text_cost_t r = *c;
  if ((bits != 4 && bits != 8 && bits != 16 && bits != 32) || c->bits <= 0) return r;
  uint64_t from = (uint64_t)c->bits, to = (uint64_t)bits;
  uint64_t w = mul_sat(c->weights / from, to) + c->weights % from * to / from;
  r.base = add_sat(sat_sub(c->base, c->weights), w);
  r.weights = w;
  r.bits = bits;
  r.variant = variant_name(bits);
  return r;
}

es_text_cost_t es_text_cost_for_tier(const es_budget_tier_t *tier) {
  /* The users' figure (TTS, int8, Intel i5 16 GB): 2500 MB + 60 MB per 100
   * tokens + 250 MB cache. Weights are taken as 2000 of the 2500 MiB. */
  es_text_cost_t c = {"int8", 8, 2500 * MiB, 2000 * MiB, 60 * MiB, 250 * MiB};
  uint64_t process = sat_sub(sat_sub(tier->total, tier->os_reserve), tier->safety);
  if (process < 6144 * MiB) c = es_text_cost_at_bits(&c, 4); /* "int4 below 6 GB" */
  if (c.cache > tier->cache / 4) c.cache = tier->cache / 4;
  return c;
}

/* ceil(per_100_tokens x tokens / 100), saturating. */
static uint64_t token_part(const es_text_cost_t *c, int64_t tokens) {
  uint64_t t = tokens > 0 ? (uint64_t)tokens : 0, p = c->per_100_tokens;
  uint64_t whole = mul_sat(t / 100, p);
  uint64_t rest = t % 100 * (p / 100) + (t % 100 * (p % 100) + 99) / 100;
  return add_sat(whole, rest);
}

uint64_t es_estimate_text(const es_text_cost_t *c, int64_t tokens) {
  return add_sat(add_sat(c->base, token_part(c, tokens)), c->cache);
}

int64_t es_text_max_tokens(const es_text_cost_t *c, uint64_t bytes) {
  uint64_t p = c->per_100_tokens;
  if (!p) return INT64_MAX;
  /* floor(bytes x 100 / p): then ceil(p x t / 100) <= bytes. */
  uint64_t t = add_sat(mul_sat(bytes / p, 100), bytes % p * 100 / p);
  return t > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)t;
}

/* ---- /estimate-memory ----------------------------------------------------------- */

es_estimate_query_t es_estimate_default_query(void) {
  es_estimate_query_t q;
  memset(&q, 0, sizeof q);
  q.nthreads = 1;
  q.batch = 1;
  q.tokens = -1;
  return q;
}

/* What the process budget and the system have left (for a safe answer). */
static uint64_t room_left(const es_budget_stats_t *st) {
  uint64_t r = sat_sub(st->budget, st->used);
  if (st->effective_total) {
    uint64_t s = sat_sub(st->available_now, st->safety);
    if (s < r) r = s;
  }
  return r;
}

/* The last resort: what the refusing check has, and what to change. */
static void too_large(es_estimate_answer_t *a) {
  char h1[32], h2[32];
  if (a->why.by == ES_BUDGET_BY_SYSTEM)
    snprintf(a->recommendation, sizeof a->recommendation,
             "free memory on the machine: other processes hold it (%s needed, %s available)",
             es_budget_human(a->why.required, h1, sizeof h1),
             es_budget_human(a->why.available, h2, sizeof h2));
  else
    snprintf(a->recommendation, sizeof a->recommendation,
             "too large for this machine's %s budget (%s): use a smaller model or a larger budget",
             a->why.by == ES_BUDGET_BY_KIND ? es_budget_kind_name(a->why.kind) : "process",
             es_budget_human(a->why.limit, h1, sizeof h1));
}

/* Recommendations for a model load the budget refused. */
static void recommend_model(es_budget_t *b, const es_budget_stats_t *st, es_estimate_answer_t *a) {
  char h1[32];
  uint64_t need = a->needed, models = st->reserved[ES_BUDGET_MODEL];
  uint64_t sys = st->effective_total ? sat_sub(st->available_now, st->safety) : UINT64_MAX;
  /* Would it fit with the models now held released? */
  if (models && need <= st->limit[ES_BUDGET_MODEL] &&
      need <= sat_sub(st->budget, sat_sub(st->used, models)) && need <= add_sat(sys, models)) {
    snprintf(a->recommendation, sizeof a->recommendation,
             "close the other model first (%s held by %llu model%s)",
             es_budget_human(models, h1, sizeof h1), (unsigned long long)st->held[ES_BUDGET_MODEL],
             st->held[ES_BUDGET_MODEL] == 1 ? "" : "s");
    return;
  }
  static const int bits[2] = {8, 4};
  const uint64_t smaller[2] = {a->model.int8_total, a->model.int4_total};
  for (int i = 0; i < 2; i++)
    if (smaller[i] && es_budget_check(b, ES_BUDGET_MODEL, smaller[i], NULL, NULL) == 0) {
      snprintf(a->recommendation, sizeof a->recommendation,
               "use the int%d variant (edgeserve convert IN OUT.esm --int%d): about %s", bits[i],
               bits[i], es_budget_human(smaller[i], h1, sizeof h1));
      return;
    }
  too_large(a);
}

/* Recommendations for text work the budget refused. */
static void recommend_text(es_budget_t *b, const es_estimate_query_t *q,
                           const es_budget_stats_t *st, es_estimate_answer_t *a) {
  char h1[32];
  const es_text_cost_t *c = q->text;
  uint64_t tokens_part = token_part(c, a->tokens), work = st->reserved[ES_BUDGET_WORK];
  if (a->why.by == ES_BUDGET_BY_KIND && a->why.kind == ES_BUDGET_WORK && work &&
      tokens_part <= st->limit[ES_BUDGET_WORK]) {
    snprintf(a->recommendation, sizeof a->recommendation,
             "retry when the requests in flight finish (%s held)",
             es_budget_human(work, h1, sizeof h1));
    return;
  }
  /* Split: how many tokens fit in what the refusing check has left? */
  if (!(a->why.by == ES_BUDGET_BY_KIND && a->why.kind != ES_BUDGET_WORK)) {
    uint64_t fixed = q->loaded || a->why.by == ES_BUDGET_BY_KIND ? 0 : add_sat(c->base, c->cache);
    int64_t n = es_text_max_tokens(c, sat_sub(a->why.available, fixed));
    if (n > 0 && n < a->tokens) {
      snprintf(a->recommendation, sizeof a->recommendation,
               "split the text into parts of at most %lld tokens", (long long)n);
      return;
    }
  }
  if (!q->loaded && c->bits > 4) {
    es_text_cost_t c4 = es_text_cost_at_bits(c, 4);
    uint64_t need[ES_BUDGET_NKINDS] = {c4.base, c4.cache, token_part(&c4, a->tokens)};
    if (es_budget_check_parts(b, need, NULL, NULL) == 0) {
      snprintf(a->recommendation, sizeof a->recommendation, "use the int4 variant: about %s",
               es_budget_human(es_estimate_text(&c4, a->tokens), h1, sizeof h1));
      return;
    }
  }
  too_large(a);
}

int es_estimate_request(es_budget_t *b, const es_estimate_query_t *q, es_estimate_answer_t *out,
                        es_error_t *err) {
  memset(out, 0, sizeof *out);
  if (!q->model_path == !q->text)
    return es__fail(err, ES_EINVAL, -1,
                    "an estimate needs a model path or a text cost (one, not both)");
  uint64_t need[ES_BUDGET_NKINDS] = {0};
  const char *what = q->what;
  if (q->model_path) {
    int rc = es_estimate_model_file(q->model_path, q->nthreads > 0 ? q->nthreads : 1,
                                    q->batch > 0 ? q->batch : 1, &out->model, err);
    if (rc) return rc;
    out->estimated = out->needed = need[ES_BUDGET_MODEL] = out->model.total_bytes;
    if (!what) what = q->model_path;
  } else {
    out->text_bytes = q->text_bytes;
    out->tokens = q->tokens >= 0 ? q->tokens : (int64_t)((q->text_bytes + 3) / 4);
    out->estimated = es_estimate_text(q->text, out->tokens);
    need[ES_BUDGET_WORK] = token_part(q->text, out->tokens);
    if (!q->loaded) {
      need[ES_BUDGET_MODEL] = q->text->base;
      need[ES_BUDGET_CACHE] = q->text->cache;
    }
    out->needed = add_sat(add_sat(need[0], need[1]), need[2]);
    if (!what) what = "text";
  }
  out->safe = es_budget_check_parts(b, need, what, &out->why) == 0;
  es_budget_stats_t st;
  es_budget_stats(b, &st);
  if (out->safe) {
    out->available = room_left(&st);
    memset(&out->why, 0, sizeof out->why);
    char h[32];
    if (sat_sub(out->available, out->needed) < out->available / 5)
      snprintf(out->recommendation, sizeof out->recommendation, "safe, but it leaves only %s",
               es_budget_human(sat_sub(out->available, out->needed), h, sizeof h));
    else
      snprintf(out->recommendation, sizeof out->recommendation, "safe");
  } else {
    out->available = out->why.available;
    if (q->model_path)
      recommend_model(b, &st, out);
    else
      recommend_text(b, q, &st, out);
  }
  return 0;
}
