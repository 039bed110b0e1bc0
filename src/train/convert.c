/*
 * convert.c - `edgeserve convert`: between fastText files (.bin, .ftz) and
 * edgeserve's native format (.esm, layout in model_impl.h), and to int8 /
 * int4 rows.
 *
 * int8 / int4 are per-row symmetric scalar quantization of the input
 * matrix: scale = max|x| / 127 (int8) or / 7 (int4), q = round(x / scale),
 * decoded as scale * q. The output matrix (labels x dim, small) stays as
 * it is. fastText formats hold f32 (.bin) or product-quantized (.ftz) input
 * only, and no metadata.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fail.h"
#include "binwrite.h"
#include "edgeserve/train.h"
#include "model_impl.h"

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

static uint64_t align64(uint64_t x) { return (x + 63) / 64 * 64; }

/* Quantizes one row: writes its scale and `bits`-bit values. */
static float quantize_row(const float *x, int n, int bits, uint8_t *out) {
  float amax = 0.0f;
  for (int j = 0; j < n; j++)
    if (fabsf(x[j]) > amax) amax = fabsf(x[j]);
  int qmax = bits == 8 ? 127 : 7;
  float scale = amax > 0.0f ? amax / (float)qmax : 0.0f;
  if (bits == 4) memset(out, 0, ((size_t)n + 1) / 2);
  for (int j = 0; j < n; j++) {
    long q = scale > 0.0f ? lrintf(x[j] / scale) : 0;
    if (q > qmax) q = qmax;
    if (q < -qmax) q = -qmax;
    if (bits == 8)
      out[j] = (uint8_t)(int8_t)q;
    else
      out[j / 2] |= (uint8_t)(((unsigned)q & 15u) << ((j & 1) * 4));
  }
  return scale;
}

/* Section sizes of a native matrix in the given scheme. */
static uint64_t native_matrix_size(const es__matrix *mx, int scheme) {
  if (scheme == ES__MAT_F32 || scheme == ES__MAT_PQ) {
    if (scheme == ES__MAT_F32 && mx->scheme != ES__MAT_F32)
      return 8 + 16 + (uint64_t)mx->m * (uint64_t)mx->n * 4;
    return 8 + mx->raw_len;
  }
  uint64_t stride = scheme == ES__MAT_I8 ? (uint64_t)mx->n : ((uint64_t)mx->n + 1) / 2;
  return align64(64 + 4 * (uint64_t)mx->m) + (uint64_t)mx->m * stride;
}

static void pad_to(es__bw *w, uint64_t *at, uint64_t to) {
  static const uint8_t zero[64];
  while (*at < to) {
    uint64_t k = to - *at > 64 ? 64 : to - *at;
    es__bw_bytes(w, zero, (size_t)k);
    *at += k;
  }
}

/* A matrix in fastText's dense layout (rows decoded when not f32). */
static int write_dense(es__bw *w, const es_model_t *m, int which, float *row) {
  const es__matrix *mx = which ? &m->out : &m->in;
  if (mx->scheme == ES__MAT_F32) {
    es__bw_bytes(w, mx->raw, mx->raw_len);
    return 0;
  }
  es__bw_i64(w, mx->m);
  es__bw_i64(w, mx->n);
  for (int64_t i = 0; i < mx->m; i++) {
    es_model_row(m, which, i, row);
    es__bw_bytes(w, row, (size_t)mx->n * sizeof *row);
  }
  return 0;
}

/* A native matrix section (without padding before it). */
static int write_native_matrix(es__bw *w, const es_model_t *m, int which, int scheme, float *row,
                               es_error_t *err) {
  const es__matrix *mx = which ? &m->out : &m->in;
  uint32_t hdr[2] = {(uint32_t)scheme, 0};
  es__bw_bytes(w, hdr, 8);
  if (scheme == ES__MAT_F32) return write_dense(w, m, which, row);
  if (scheme == ES__MAT_PQ) {
    es__bw_bytes(w, mx->raw, mx->raw_len);
    return 0;
  }
  int bits = scheme == ES__MAT_I8 ? 8 : 4, n = (int)mx->n;
  size_t stride = bits == 8 ? (size_t)n : ((size_t)n + 1) / 2;
  uint8_t *q = malloc(stride ? stride : 1);
  if (!q) return es__fail(err, ES_ENOMEM, -1, "out of memory");
  es__bw_i64(w, mx->m);
  es__bw_i64(w, mx->n);
  uint64_t at = 24;
  pad_to(w, &at, 64);
  /* First pass: scales; second: rows (each row quantized twice, which is
   * cheap and keeps memory at one row). */
  for (int64_t i = 0; i < mx->m; i++) {
    es_model_row(m, which, i, row);
    float sc = quantize_row(row, n, bits, q);
    es__bw_bytes(w, &sc, 4);
  }
  at += 4 * (uint64_t)mx->m;
  pad_to(w, &at, align64(at));
  for (int64_t i = 0; i < mx->m; i++) {
    es_model_row(m, which, i, row);
    quantize_row(row, n, bits, q);
    es__bw_bytes(w, q, stride);
  }
  free(q);
  return 0;
}

static int write_native(es__bw *w, const es_model_t *m, int in_scheme, const char *meta,
                        size_t meta_len, float *row, es_error_t *err) {
  int out_scheme = m->out.scheme;
  uint64_t size[4] = {m->fthd_len, meta_len, native_matrix_size(&m->in, in_scheme),
                      native_matrix_size(&m->out, out_scheme)};
  static const char tags[4][5] = {"FTHD", "META", "INPT", "OUTP"};
  uint64_t off[4], at = align64(24 + 24 * 4);
  for (int i = 0; i < 4; i++) {
    off[i] = at;
    at = align64(at + size[i]);
  }
  uint64_t total = off[3] + size[3];
  uint32_t version = ES__NATIVE_VERSION, nsec = 4;
  es__bw_bytes(w, ES__NATIVE_MAGIC, 8);
  es__bw_bytes(w, &version, 4);
  es__bw_bytes(w, &nsec, 4);
  es__bw_bytes(w, &total, 8);
  for (int i = 0; i < 4; i++) {
    uint32_t flags = 0;
    es__bw_bytes(w, tags[i], 4);
    es__bw_bytes(w, &flags, 4);
    es__bw_bytes(w, &off[i], 8);
    es__bw_bytes(w, &size[i], 8);
  }
  uint64_t pos = 24 + 24 * 4;
  pad_to(w, &pos, off[0]);
  es__bw_bytes(w, m->fthd, m->fthd_len);
  pos += size[0];
  pad_to(w, &pos, off[1]);
  es__bw_bytes(w, meta, meta_len);
  pos += size[1];
  pad_to(w, &pos, off[2]);
  int rc = write_native_matrix(w, m, 0, in_scheme, row, err);
  pos += size[2];
  pad_to(w, &pos, off[3]);
  if (!rc) rc = write_native_matrix(w, m, 1, out_scheme, row, err);
  return rc;
}

int es_convert(const char *in, const char *out, const es_convert_args_t *a, es_error_t *err) {
  es_convert_args_t def = {ES_SCHEME_KEEP, NULL, NULL};
  if (!a) a = &def;
  int native = ends_with(out, ".esm"), bin = ends_with(out, ".bin"), ftz = ends_with(out, ".ftz");
  if (!native && !bin && !ftz)
    return es__fail(err, ES_EINVAL, -1,
                    "%s: the output name must end in .esm (edgeserve), .bin or .ftz (fastText)",
                    out);
  es_model_t *m = NULL;
  int rc = es_model_open(&m, in, NULL, err);
  if (rc) return rc;
  int scheme = m->in.scheme;
  switch (a->scheme) {
  case ES_SCHEME_F32: scheme = ES__MAT_F32; break;
  case ES_SCHEME_INT8: scheme = ES__MAT_I8; break;
  case ES_SCHEME_INT4: scheme = ES__MAT_I4; break;
  default: break;
  }
  if (scheme != m->in.scheme && m->in.scheme == ES__MAT_PQ && m->dict.pruneidx_size >= 0 &&
      scheme == ES__MAT_F32 && !native)
    rc = es__fail(err, ES_EUNSUPPORTED, -1,
                  "%s has a pruned dictionary, which fastText reads only with a quantized input "
                  "(.ftz)",
                  in);
  if (!rc && bin && (scheme != ES__MAT_F32 || m->out.scheme != ES__MAT_F32))
    rc = es__fail(err, ES_EUNSUPPORTED, -1,
                  "a fastText .bin holds f32 matrices only: this model's input is %s%s (convert "
                  "with --f32, or write .esm)",
                  scheme == ES__MAT_PQ    ? "product-quantized"
                  : scheme == ES__MAT_F32 ? "f32"
                                          : "int",
                  m->out.scheme != ES__MAT_F32 ? " and its output quantized" : "");
  if (!rc && ftz && scheme != ES__MAT_PQ)
    rc = es__fail(err, ES_EUNSUPPORTED, -1,
                  "a fastText .ftz holds product-quantized input only (use edgeserve quantize "
                  "to make one from a .bin)");
  if (!rc && (scheme == ES__MAT_I8 || scheme == ES__MAT_I4) && m->in.scheme != scheme &&
      m->in.scheme != ES__MAT_F32 && m->in.scheme != ES__MAT_PQ)
    rc = es__fail(err, ES_EUNSUPPORTED, -1, "cannot requantize %s from int4 to int8 or back", in);
  /* metadata: the source's, with the normalizer replaced when given */
  char *meta = NULL;
  size_t meta_len = 0;
  if (!rc && native) {
    FILE *mf = open_memstream(&meta, &meta_len);
    if (!mf) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
    const char *p = m->meta, *end = m->meta ? m->meta + m->meta_len : NULL;
    while (mf && p && p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      size_t len = (size_t)((nl ? nl : end) - p);
      int drop = a->normalizer && len >= 11 && !memcmp(p, "normalizer=", 11);
      if (!drop && len) fprintf(mf, "%.*s\n", (int)len, p);
      p = nl ? nl + 1 : end;
    }
    if (mf && a->normalizer) fprintf(mf, "normalizer=%s\n", a->normalizer);
    if (mf && a->source && !es_model_meta(m, "source", &(size_t){0}))
      fprintf(mf, "source=%s\n", a->source);
    if (mf && fclose(mf) != 0) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  float *row = rc ? NULL : malloc((size_t)m->args.dim * sizeof *row);
  if (!rc && !row) rc = es__fail(err, ES_ENOMEM, -1, "out of memory");
  if (!rc) {
    es__bw w;
    rc = es__bw_open(&w, out, err);
    if (!rc) {
      if (native) {
        rc = write_native(&w, m, scheme, meta ? meta : "", meta_len, row, err);
      } else {
        es__bw_bytes(&w, m->fthd, m->fthd_len);
        uint8_t qin = ftz, qout = m->out.scheme == ES__MAT_PQ;
        es__bw_bytes(&w, &qin, 1);
        if (ftz)
          es__bw_bytes(&w, m->in.raw, m->in.raw_len);
        else
          write_dense(&w, m, 0, row);
        es__bw_bytes(&w, &qout, 1);
        es__bw_bytes(&w, m->out.raw, m->out.raw_len);
      }
      if (rc) w.failed = 1;
      int rc2 = es__bw_close(&w, rc ? NULL : err);
      if (!rc) rc = rc2;
    }
  }
  free(row);
  free(meta);
  es_model_close(m);
  return rc;
}
