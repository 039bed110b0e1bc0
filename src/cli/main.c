/*
 * main.c - the edgeserve command-line program: dispatch to src/cli/cmd_*.c.
 * The prediction commands are drop-in replacements for fastText's. `serve`
 * runs the edgeserve-serve program that sits beside this one
 * (serve_main.c), in this process (execv: same pid, signals and exit
 * status), so that the other commands never load the server's libraries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Replaces this process with edgeserve-serve from this program's folder,
 * with the arguments after "serve". Returns only on failure. */
static int exec_serve(int argc, char **argv) {
  char self[PATH_MAX], prog[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    fprintf(stderr, "edgeserve: serve: cannot find this program's folder: %s\n", strerror(errno));
    return 1;
  }
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (slash) *slash = '\0';
  snprintf(prog, sizeof prog, "%s/edgeserve-serve", slash ? self : ".");
  char **args = calloc((size_t)argc + 1, sizeof *args);
  if (!args) return 1;
  args[0] = prog;
  for (int i = 1; i < argc; i++) args[i] = argv[i];
  execv(prog, args);
  fprintf(stderr,
          "edgeserve: serve: cannot run %s: %s (it is built with the server: libmicrohttpd, "
          "SQLite and zlib; scripts/deps.sh installs them, then make)\n",
          prog, strerror(errno));
  free(args);
  return 1;
}

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
  if (!strcmp(cmd, "serve")) return exec_serve(argc - 1, argv + 1);
  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "edgeserve: unknown command \"%s\"\n\n", cmd);
  usage(stderr);
  return 2;
}
