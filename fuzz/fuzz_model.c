/*
 * fuzz_model.c - libFuzzer target: any bytes as a model file (.bin, .ftz,
 * .esm). Opening must fail with an error or give a model that predicts,
 * describes itself and closes without a sanitizer report.
 * Seeds: fuzz/corpus/model (small real models of each format and loss).
 */
#include <stddef.h>
#include <stdint.h>

#include "edgeserve/model.h"
#include "edgeserve/predict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  es_model_t *m;
  es_error_t err;
  if (es_model_open_mem(&m, data, size, NULL, &err) < 0) return 0;
  es_model_info_t info;
  es_model_info(m, &info);
  es_scratch_t *s = es_scratch_new(m);
  if (s) {
    static const char text[] = "la casa di carta s02e05 ita eng 1080p";
    es_prediction_t top[8];
    int32_t n;
    es_predict(m, s, text, sizeof text - 1, -1, 0.0f, top, 8, &n);
    es_predict(m, s, text, sizeof text - 1, 3, 0.1f, top, 8, &n);
    es_scratch_free(s);
  }
  size_t len;
  for (int32_t i = 0; i < es_model_nlabels(m) && i < 4; i++) (void)es_model_label(m, i, &len);
  (void)es_model_meta(m, "normalizer", &len);
  es_model_close(m);
  return 0;
}
