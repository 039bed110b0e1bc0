/*
 * serve_main.c - the edgeserve-serve program: the inference server alone,
 * so that the other commands do not load the server's libraries
 * (libmicrohttpd and, through it, GnuTLS: about 0.4 MiB of private memory
 * per process). `edgeserve serve ARGS` runs `edgeserve-serve ARGS`
 * (main.c); running it directly works the same.
 */
#include "cli.h"

int main(int argc, char **argv) { return es_cmd_serve(argc, argv); }
