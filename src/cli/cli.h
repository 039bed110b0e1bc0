/*
 * cli.h - helpers shared by the edgeserve commands (src/cli/cmd_*.c).
 */
#ifndef ES_CLI_H
#define ES_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "edgeserve/predict.h"
#include "lines.h"

/* Each command: argc/argv start at the command name. Returns the exit code. */
int es_cmd_predict(int argc, char **argv);
int es_cmd_test(int argc, char **argv);
int es_cmd_dump(int argc, char **argv);
int es_cmd_info(int argc, char **argv);
int es_cmd_train(int argc, char **argv); /* supervised, quantize */
int es_cmd_autotune(int argc, char **argv);
int es_cmd_convert(int argc, char **argv);
int es_cmd_hardware(int argc, char **argv); /* cmd_hardware.c */
int es_cmd_config(int argc, char **argv);   /* cmd_hardware.c */
int es_cmd_serve(int argc, char **argv);    /* cmd_serve.c */

/* Opens a model, printing "edgeserve: <reason>" to stderr on failure. */
es_model_t *cli_open_model(const char *path);
/* The same with load parameters (NULL: the defaults). */
es_model_t *cli_open_model_with(const char *path, const es_model_params_t *params);

/* Parses an int / float argument; prints an error naming `what` and returns
 * -1 on malformed input. */
int cli_parse_int(const char *s, const char *what, int32_t *out);
int cli_parse_float(const char *s, const char *what, float *out);
/* The same, for the training commands: "edgeserve: WHAT: "S" is not an
 * integer / a number" on malformed input (and a non-finite double). */
int cli_parse_i64(const char *s, const char *what, int64_t *out);
int cli_parse_double(const char *s, const char *what, double *out);

/* The arguments predict and test share: "CMD MODEL FILE|- [k] [threshold]
 * [--threads N]". Fills *k (default 1), *threshold (default 0) and *nthreads
 * and returns 0; prints the usage or the problem and returns 2 otherwise. */
int cli_predict_args(int *argc, char **argv, int32_t *k, float *threshold, int *nthreads);

/* Opens `path` for reading ("-" is stdin). Returns an fd or -1 (reported). */
int cli_open_input(const char *path);

#endif
