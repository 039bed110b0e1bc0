/*
 * edgeserve.h - libedgeserve, ML serving for small machines.
 *
 * This header includes the whole public API. The pieces, today:
 *
 *   error.h    ES_E* codes, es_error_t reports, es_strerror()
 *   model.h    es_model_t: fastText 0.9.2 .bin/.ftz classifiers, opened by
 *              memory-mapping the file read-only; every field is validated
 *              before use, so a corrupt file is an error, never a crash
 *   predict.h  es_scratch_t and es_predict(): fastText-exact prediction,
 *              thread-safe with one scratch per thread, no allocation on the
 *              hot path; single text, batch and streaming (any line length)
 *   normalize.h  the file-name normalizer a model can carry
 *   train.h    es_train_supervised(), es_quantize(), es_convert(): fastText's
 *              training and quantization, and edgeserve's native .esm format
 *   autotune.h es_autotune(): hyperparameter search within a size and
 *              latency budget
 *
 * The runtime (docs/runtime/README.md):
 *
 *   pool.h, bufpool.h, arena.h  objects, size-classed buffers and per-request
 *              bump allocation, with statistics and idle trimming
 *   devpool.h  best-fit sub-allocator over regions from a provider (host
 *              memory today; device memory later)
 *   hw.h, memstat.h  the machine (through a root path, so recorded trees
 *              stand in for real boards) and the process's memory
 *   budget.h, estimate.h  memory tiers, reservations before work, pressure
 *              levels; what serving a model or a text will cost
 *   sched.h, affinity.h  work-stealing scheduler, four priorities with
 *              aging, CPU pinning
 *   config.h, strategy.h  INI / environment / flag configuration with
 *              sources; latency / memory / balanced presets and the plan
 *   quality.h  the adaptive quality manager: which model variant to serve
 *              under the current load
 *
 * Observability (docs/observe/):
 *
 *   histogram.h  HDR latency histograms and sliding windows
 *   metrics.h  counters, gauges and histograms in Prometheus' text format
 *   latency.h  latency per model and stage, SLA targets, regression
 *              detection, alert rules
 *   sysmetrics.h  CPU per core and cluster, memory, disk, network, thermal;
 *              risk flags and a recommended action, sampled periodically
 *
 * A first program:
 *
 *   #include <edgeserve/edgeserve.h>
 *
 *   es_model_t *m;
 *   es_error_t err;
 *   if (es_model_open(&m, "media.ftz", NULL, &err) < 0) {
 *     fprintf(stderr, "%s\n", err.msg);     // names the problem and byte offset
 *     return 1;
 *   }
 *   es_scratch_t *s = es_scratch_new(m);    // one per thread
 *   es_prediction_t top[3];
 *   int32_t n;
 *   const char *name = "la casa di carta s02e05 ita eng";
 *   es_predict(m, s, name, strlen(name), 3, 0.0f, top, 3, &n);
 *   for (int32_t i = 0; i < n; i++) {
 *     size_t len;
 *     const char *label = es_model_label(m, top[i].label, &len);
 *     printf("%.*s %g\n", (int)len, label, top[i].prob);
 *   }
 *   es_scratch_free(s);
 *   es_model_close(m);
 *
 * Conventions: functions that can fail return 0 or a negative ES_E* code;
 * every _new/_open has its _free/_close; nothing in the library exits or
 * keeps hidden global state.
 */
#ifndef EDGESERVE_H
#define EDGESERVE_H

#include "edgeserve/error.h"
#include "edgeserve/model.h"
#include "edgeserve/predict.h"
#include "edgeserve/normalize.h"
#include "edgeserve/train.h"
#include "edgeserve/autotune.h"
#include "edgeserve/pool.h"
#include "edgeserve/bufpool.h"
#include "edgeserve/arena.h"
#include "edgeserve/devpool.h"
#include "edgeserve/memstat.h"
#include "edgeserve/hw.h"
#include "edgeserve/budget.h"
#include "edgeserve/estimate.h"
#include "edgeserve/affinity.h"
#include "edgeserve/sched.h"
#include "edgeserve/config.h"
#include "edgeserve/strategy.h"
#include "edgeserve/quality.h"
#include "edgeserve/histogram.h"
#include "edgeserve/metrics.h"
#include "edgeserve/sysmetrics.h"
#include "edgeserve/latency.h"

#endif
