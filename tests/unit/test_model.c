/* test_model.c - opening valid models: shape, dictionary, rows, mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "edgeserve/model.h"
#include "ftmodel.h"
#include "model_impl.h"

static void dense_model_exposes_its_shape_and_dictionary(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  size_t len;
  uint8_t *buf = ft_write(&spec, &len);
  es_model_t *m;
  assert_int_equal(es_model_open_mem(&m, buf, len, NULL, NULL), 0);
  es_model_info_t info;
  es_model_info(m, &info);
  assert_int_equal(info.version, 12);
  assert_int_equal(info.args.dim, 8);
  assert_int_equal(info.nwords, 6);
  assert_int_equal(info.nlabels, 3);
  assert_int_equal(info.input_rows, 6 + 100);
  assert_int_equal(info.output_rows, 3);
  assert_int_equal(info.pruneidx_size, -1);
  assert_false(info.quant_input);
  assert_int_equal(info.file_bytes, len);
  size_t n;
  const char *l = es_model_label(m, 1, &n);
  assert_int_equal(n, 10);
  assert_memory_equal(l, "__label__b", 10);
  assert_null(es_model_label(m, 3, &n));
  const char *text;
  int64_t count;
  int type;
  assert_int_equal(es_model_entry(m, 3, &text, &n, &count, &type), 0);
  assert_memory_equal(text, "caffè", n);
  assert_int_equal(count, 97);
  assert_int_equal(type, 0);
  assert_int_equal(es_model_entry(m, 9, &text, &n, &count, &type), ES_EINVAL);
  es_model_close(m);
  free(buf);
}

static void rows_are_read_in_place_without_copy(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  size_t len;
  uint8_t *buf = ft_write(&spec, &len);
  es_model_t *m;
  assert_int_equal(es_model_open_mem(&m, buf, len, NULL, NULL), 0);
  /* The input matrix points into the caller's buffer. */
  assert_true(m->in.data > buf && m->in.data < buf + len);
  float row[8], direct[8];
  assert_int_equal(es_model_row(m, 0, 5, row), 0);
  memcpy(direct, m->in.data + 5 * 8 * 4, sizeof direct);
  assert_memory_equal(row, direct, sizeof row);
  assert_int_equal(es_model_row(m, 1, 3, row), ES_EINVAL);
  es_model_close(m);
  free(buf);
}

static void quantized_rows_decode_to_centroids_times_norm(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  spec.quant = 1;
  spec.qnorm = 1;
  spec.dsub = 3; /* dim 8: sub-vectors 3, 3, 2 */
  size_t len;
  uint8_t *buf = ft_write(&spec, &len);
  es_model_t *m;
  es_error_t err = {0};
  assert_int_equal(es_model_open_mem(&m, buf, len, NULL, &err), 0);
  es_model_info_t info;
  es_model_info(m, &info);
  assert_true(info.quant_input && info.qnorm_input);
  assert_int_equal(info.dsub_input, 3);
  float row[8];
  assert_int_equal(es_model_row(m, 0, 7, row), 0);
  const uint8_t *code = m->in.codes + 7 * 3;
  float norm = es__matrix_norm(&m->in, 7);
  for (int j = 0; j < 3; j++) {
    const uint8_t *c = es__pqview_centroid(&m->in.pq, j, code[j]);
    for (int t = 0; t < (j == 2 ? 2 : 3); t++) {
      float f;
      memcpy(&f, c + 4 * t, 4);
      assert_true(row[j * 3 + t] == norm * f);
    }
  }
  es_model_close(m);
  free(buf);
}

static void pruned_index_maps_kept_buckets_only(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  int32_t keys[4] = {7, 99, 0, 7}, vals[4] = {3, 1, 2, 0}; /* 7 repeated: last wins */
  spec.quant = 1;
  spec.pruneidx_size = 4;
  spec.prune_keys = keys;
  spec.prune_vals = vals;
  size_t len;
  uint8_t *buf = ft_write(&spec, &len);
  es_model_t *m;
  es_error_t err = {0};
  assert_int_equal(es_model_open_mem(&m, buf, len, NULL, &err), 0);
  assert_int_equal(es__dict_prune(&m->dict, 7), 0);
  assert_int_equal(es__dict_prune(&m->dict, 99), 1);
  assert_int_equal(es__dict_prune(&m->dict, 0), 2);
  assert_int_equal(es__dict_prune(&m->dict, 8), -1);
  assert_int_equal(es__dict_prune(&m->dict, 63), -1);
  assert_non_null(m->dict.pbits); /* 100 buckets: the bitmap form */
  es_model_close(m);
  free(buf);
}

static void sparse_pruned_index_has_the_same_answers(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  int32_t keys[5] = {7, 1 << 29, 0, 7, (1 << 30) - 1}, vals[5] = {3, 1, 2, 0, 4};
  spec.quant = 1;
  spec.bucket = 1 << 30; /* a 1.5 bit/bucket bitmap would be 200 MB: sorted keys instead */
  spec.pruneidx_size = 5;
  spec.prune_keys = keys;
  spec.prune_vals = vals;
  size_t len;
  uint8_t *buf = ft_write(&spec, &len);
  es_model_t *m;
  es_error_t err = {0};
  assert_int_equal(es_model_open_mem(&m, buf, len, NULL, &err), 0);
  assert_null(m->dict.pbits);
  assert_int_equal(m->dict.npkeys, 4);
  assert_int_equal(es__dict_prune(&m->dict, 7), 0);
  assert_int_equal(es__dict_prune(&m->dict, 1 << 29), 1);
  assert_int_equal(es__dict_prune(&m->dict, 0), 2);
  assert_int_equal(es__dict_prune(&m->dict, (1 << 30) - 1), 4);
  assert_int_equal(es__dict_prune(&m->dict, 8), -1);
  es_model_info_t info;
  es_model_info(m, &info);
  assert_true(info.private_bytes < 64 * 1024);
  es_model_close(m);
  free(buf);
}

static void open_maps_a_file_and_reports_missing_ones(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  size_t len;
  uint8_t *buf = ft_write(&spec, &len);
  char *path = ft_tmpfile(buf, len);
  es_model_t *m;
  es_model_params_t p = es_model_default_params();
  p.populate = 1;
  assert_int_equal(es_model_open(&m, path, &p, NULL), 0);
  assert_int_equal(es_model_nlabels(m), 3);
  es_model_close(m);
  unlink(path);
  es_error_t err = {0};
  assert_int_equal(es_model_open(&m, path, NULL, &err), ES_EIO);
  assert_null(m);
  assert_non_null(strstr(err.msg, path));
  free(path);
  free(buf);
}

static void scalar_kernels_can_be_forced(void **state) {
  (void)state;
  ft_spec spec = ft_default_spec();
  size_t len;
  uint8_t *buf = ft_write(&spec, &len);
  es_model_t *m;
  es_model_params_t p = es_model_default_params();
  p.simd = ES_SIMD_SCALAR;
  assert_int_equal(es_model_open_mem(&m, buf, len, &p, NULL), 0);
  es_model_info_t info;
  es_model_info(m, &info);
  assert_int_equal(info.simd, ES_SIMD_SCALAR);
  es_model_close(m);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(dense_model_exposes_its_shape_and_dictionary),
      cmocka_unit_test(rows_are_read_in_place_without_copy),
      cmocka_unit_test(quantized_rows_decode_to_centroids_times_norm),
      cmocka_unit_test(pruned_index_maps_kept_buckets_only),
      cmocka_unit_test(sparse_pruned_index_has_the_same_answers),
      cmocka_unit_test(open_maps_a_file_and_reports_missing_ones),
      cmocka_unit_test(scalar_kernels_can_be_forced),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
