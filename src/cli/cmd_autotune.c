/* cmd_autotune.c - placeholder being written by a helper session. */
#include <stdio.h>

#include "cli.h"

int es_cmd_autotune(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "edgeserve: autotune is not available yet\n");
  return 2;
}
