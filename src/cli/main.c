/*
 * main.c - the edgeserve command-line program: dispatch to src/cli/cmd_*.c.
 * The prediction commands are drop-in replacements for fastText's.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: edgeserve <command> <args>\n\n"
          "commands:\n"
          "  predict       MODEL FILE|- [k] [threshold]  most likely labels, one line per input\n"
          "  predict-prob  MODEL FILE|- [k] [threshold]  ... with probabilities\n"
          "  test          MODEL FILE|- [k] [threshold]  precision and recall at k\n"
          "  test-label    MODEL FILE|- [k] [threshold]  ... and per label\n"
          "  dump          MODEL args|dict|input|output  print part of a model\n"
          "  info          MODEL                         shape, sizes, memory to serve it\n"
          "  supervised    -input FILE -output PREFIX ... train a classifier (fastText flags)\n"
          "  quantize      -output PREFIX [-input FILE] ... PREFIX.bin -> PREFIX.ftz\n"
          "  convert       IN OUT [--int8|--int4|--f32] [--normalize SPEC]  .bin/.ftz/.esm\n"
          "  hardware      [--json] [--config FILE] [--strategy S]  the machine and the plan\n"
          "  config        [--json|--keys] [--config FILE] [--strategy S] [--set K=V]\n"
          "                the effective configuration and where each value came from\n"
          "  serve         [--model FILE]... [--models DIR] [--port P] ...  the HTTP server\n"
          "\nMODEL is a fastText .bin or .ftz file or an edgeserve .esm file; FILE - reads\n"
          "standard input.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "predict") || !strcmp(cmd, "predict-prob"))
    return es_cmd_predict(argc - 1, argv + 1);
  if (!strcmp(cmd, "test") || !strcmp(cmd, "test-label")) return es_cmd_test(argc - 1, argv + 1);
  if (!strcmp(cmd, "dump")) return es_cmd_dump(argc - 1, argv + 1);
  if (!strcmp(cmd, "info")) return es_cmd_info(argc - 1, argv + 1);
  if (!strcmp(cmd, "supervised") || !strcmp(cmd, "quantize"))
    return es_cmd_train(argc - 1, argv + 1);
  if (!strcmp(cmd, "autotune")) return es_cmd_autotune(argc - 1, argv + 1);
  if (!strcmp(cmd, "convert")) return es_cmd_convert(argc - 1, argv + 1);
  if (!strcmp(cmd, "hardware")) return es_cmd_hardware(argc - 1, argv + 1);
  if (!strcmp(cmd, "config")) return es_cmd_config(argc - 1, argv + 1);
#ifdef ES_HAVE_SERVER
  if (!strcmp(cmd, "serve")) return es_cmd_serve(argc - 1, argv + 1);
#endif
  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "edgeserve: unknown command \"%s\"\n\n", cmd);
  usage(stderr);
  return 2;
}
