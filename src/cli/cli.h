/*
 * cli.h - helpers shared by the edgeserve commands (src/cli/cmd_*.c).
 */
#ifndef ES_CLI_H
#define ES_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "edgeserve/predict.h"

/* Each command: argc/argv start at the command name. Returns the exit code. */
int es_cmd_predict(int argc, char **argv);
int es_cmd_test(int argc, char **argv);
int es_cmd_dump(int argc, char **argv);
int es_cmd_info(int argc, char **argv);

/* Opens a model, printing "edgeserve: <reason>" to stderr on failure. */
es_model_t *cli_open_model(const char *path);

/* Parses an int / float argument; prints an error naming `what` and returns
 * -1 on malformed input. */
int cli_parse_int(const char *s, const char *what, int32_t *out);
int cli_parse_float(const char *s, const char *what, float *out);

/* Opens `path` for reading ("-" is stdin). Returns an fd or -1 (reported). */
int cli_open_input(const char *path);

/* Feeds fd to the scratch line by line, fastText's way (a line ends at a
 * newline or a literal "</s>" token; a last line without newline is still a
 * line), and calls fn(ctx, m, s) once per line with the line fed but not
 * ended: fn calls es_line_end() or es_line_predict(). Returns 0, or -1 after
 * reporting a read error. */
typedef void (*cli_line_fn)(void *ctx, const es_model_t *m, es_scratch_t *s);
int cli_for_each_line(int fd, const es_model_t *m, es_scratch_t *s, cli_line_fn fn, void *ctx);

/* fastText's "%g" float printing (iostream default, 6 significant digits). */
void cli_print_float(FILE *f, double v);

#endif
