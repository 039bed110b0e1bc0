/*
 * fuzz_route.c - libFuzzer target: any bytes as a request line for the
 * server's router (method, NUL, path), and as text for the JSON string
 * writer. Checks, beyond "no crash":
 *  - a routed model name is always valid (es_repo_valid_name) and a 200
 *    never comes with ES_R_NONE;
 *  - es_sb_json_str() always writes a JSON string cJSON parses, and for
 *    valid UTF-8 without NUL it parses back to the same bytes.
 * Seeds: fuzz/corpus/route.
 */
#include <assert.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edgeserve/repo.h"
#include "server/router.h"
#include "server/sb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size + 2);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = buf[size + 1] = '\0';
  const char *method = buf;
  const char *nul = memchr(buf, '\0', size);
  const char *path = nul ? nul + 1 : "/";
  es_route_t r;
  int st = es__route(method, path, &r);
  assert(st == 200 || st == 400 || st == 404 || st == 405);
  if (st == 200) assert(r.id != ES_R_NONE);
  if (r.model[0]) assert(es_repo_valid_name(r.model, strlen(r.model)));
  (void)es__route_name(r.id);

  es_sb_t sb = {0};
  es_sb_json_str(&sb, (const char *)data, size);
  size_t len = 0;
  char *json = es_sb_take(&sb, &len);
  if (json) {
    cJSON *v = cJSON_ParseWithLength(json, len);
    assert(v && cJSON_IsString(v));
    if (es_utf8_valid((const char *)data, size) && !memchr(data, '\0', size))
      assert(strlen(v->valuestring) == size && memcmp(v->valuestring, data, size) == 0);
    cJSON_Delete(v);
    free(json);
  }
  free(buf);
  return 0;
}
