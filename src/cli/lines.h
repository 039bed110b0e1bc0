/*
 * lines.h - feeding input to the engine line by line, on one or many cores.
 *
 * fastText's line rules: a line ends at a newline (or at a literal "</s>"
 * token, the rest then forming the next line), and a last line without a
 * newline is still a line. Cutting the input just after any newline never
 * splits a line, so blocks of whole lines are predicted in parallel (one
 * scratch per thread) and their outputs written in input order. A line
 * longer than a block is streamed through one scratch, so memory stays
 * bounded whatever the line length.
 */
#ifndef ES_CLI_LINES_H
#define ES_CLI_LINES_H

#include <stddef.h>

#include "edgeserve/predict.h"

/* Growable output buffer of one block. */
typedef struct cli_buf {
  char *p;
  size_t len, cap;
  int oom;
} cli_buf;

void cli_buf_put(cli_buf *b, const void *s, size_t n);
void cli_buf_putc(cli_buf *b, char c);
/* fastText's float printing: iostream default, i.e. "%g" (6 significant). */
void cli_buf_float(cli_buf *b, double v);

/* Called once per line with the line fed but not ended (call
 * es_line_end()/es_line_predict()); `tctx` is the calling thread's context,
 * `out` the buffer whose contents are written to stdout in input order. */
typedef void (*cli_line_fn)(void *tctx, const es_model_t *m, es_scratch_t *s, cli_buf *out);

/* Runs fn over every line of fd with `nthreads` threads (>= 1); tctx[t] is
 * thread t's context. Returns 0, or -1 after reporting an error. */
int cli_run_lines(int fd, const es_model_t *m, int nthreads, cli_line_fn fn, void **tctx);

/* Thread count: "--threads N" / "-t N" removed from argv if present, else
 * the number of online CPUs (at most 16). Returns -1 on a malformed value. */
int cli_take_threads(int *argc, char **argv);

#endif
