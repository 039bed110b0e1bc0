/*
 * hwjson.h - the machine and the plan made for it, as JSON: what
 * `edgeserve hardware --json` prints and the server's GET /hardware returns.
 */
#ifndef ES_RUNTIME_HWJSON_H
#define ES_RUNTIME_HWJSON_H

#include <cjson/cJSON.h>

#include "edgeserve/hw.h"
#include "edgeserve/strategy.h"

/* {"hardware": {...}, "plan": {...}} (plan omitted when NULL); NULL when out
 * of memory. The caller frees it with cJSON_Delete(). */
cJSON *es__hw_json(const es_hw_t *hw, const es_plan_t *p);

/* The words of an ES_HW_* SIMD bit set ("avx2 fma"), into buf. */
const char *es__simd_text(unsigned simd, char *buf, size_t n);

#endif
