/*
 * fuzz_config.c - libFuzzer target: any bytes as an INI configuration
 * (inih, the schema's validation and every value parser), as a --set
 * assignment, and as a CPU list, size and duration. Loading is all or
 * nothing: a failed load must leave the configuration as it was.
 * Seeds: fuzz/corpus/config.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edgeserve/affinity.h"
#include "edgeserve/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  es_config_t *cfg = es_config_new();
  es_error_t err;
  if (cfg) {
    es_config_load_string(cfg, text, "fuzz.ini", &err);
    es_config_set_flag(cfg, text, &err);
    for (size_t i = 0; i < es_config_count(cfg); i++) {
      es_config_item_t it;
      es_config_item(cfg, i, &it);
    }
    es_config_free(cfg);
  }
  es_cpuset_t set;
  es_cpuset_parse(&set, text, &err);
  uint64_t bytes;
  int64_t us;
  es_config_parse_bytes(text, &bytes);
  es_config_parse_duration(text, &us);
  free(text);
  return 0;
}
