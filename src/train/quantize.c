/* quantize.c - in progress */
#include "../common/fail.h"
#include "edgeserve/train.h"
int es_quantize(const es_train_args_t *args, es_train_progress_fn progress, void *ctx,
                es_error_t *err) {
  (void)args; (void)progress; (void)ctx;
  return es__fail(err, ES_EUNSUPPORTED, -1, "quantize: not built yet");
}
