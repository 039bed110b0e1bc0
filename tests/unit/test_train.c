/*
 * test_train.c - training's cancellation (es_train_args_t.cancel). Training
 * itself is tested against fastText in tests/train/ (the compatibility and
 * determinism scripts); here only what needs a callback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgeserve/error.h"
#include "edgeserve/train.h"
#include "tmptree.h"

static char root[512], input[600], output[600], bin[640];

static int setup(void **state) {
  (void)state;
  if (tmptree_new(root, sizeof root, "es-train-")) return -1;
  char text[8192] = "";
  for (int i = 0; i < 60; i++) { /* two labels, a few words each */
    char line[128];
    snprintf(line, sizeof line, "__label__%s %s s%02de%02d %s\n", i % 2 ? "dark" : "bad",
             i % 2 ? "dark" : "breaking bad", i % 5 + 1, i % 9 + 1, i % 3 ? "720p" : "mkv");
    strcat(text, line);
  }
  if (tmptree_put(root, "train.txt", text)) return -1;
  snprintf(input, sizeof input, "%s/train.txt", root);
  snprintf(output, sizeof output, "%s/model", root);
  snprintf(bin, sizeof bin, "%s/model.bin", root);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tmptree_rm(root);
  return 0;
}

static int calls;
static int cancel_now(void *ctx) {
  calls++;
  return *(int *)ctx;
}

static es_train_args_t args(int epoch, int *flag) {
  es_train_args_t a = es_train_default_args();
  a.input = input;
  a.output = output;
  a.dim = 8;
  a.epoch = epoch;
  a.thread = 1;
  a.verbose = 0;
  a.write_vec = 0;
  a.cancel = cancel_now;
  a.cancel_ctx = flag;
  return a;
}

static void cancel_stops_training_and_writes_nothing(void **state) {
  (void)state;
  unlink(bin);
  int flag = 1;
  calls = 0;
  es_train_args_t a = args(1000000, &flag); /* hours of epochs without the cancel */
  es_error_t err = {0};
  assert_int_equal(es_train_supervised(&a, NULL, NULL, &err), ES_ECANCELED);
  assert_int_equal(err.code, ES_ECANCELED);
  assert_non_null(strstr(err.msg, "cancelled"));
  assert_true(calls >= 1);
  assert_int_not_equal(access(bin, F_OK), 0);
}

static void cancel_returning_zero_lets_training_finish(void **state) {
  (void)state;
  unlink(bin);
  int flag = 0;
  es_train_args_t a = args(5, &flag);
  es_error_t err = {0};
  assert_int_equal(es_train_supervised(&a, NULL, NULL, &err), 0);
  assert_int_equal(access(bin, F_OK), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cancel_stops_training_and_writes_nothing),
      cmocka_unit_test(cancel_returning_zero_lets_training_finish),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
