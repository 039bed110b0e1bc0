/* lines.c - see lines.h. */
#include "lines.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK (8 * 1024) /* bytes of input per block */
/* Blocks cut per round, per thread. Each costs 16 KiB (input and output);
 * 2 measured within 2% of 4 on two threads and keeps the .ftz benchmark's
 * private memory under 5% of fastText's (bench/results/predict-*.md). */
#define BLOCKS_PER_THREAD 2

void cli_buf_put(cli_buf *b, const void *s, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

void cli_buf_putc(cli_buf *b, char c) {
  if (b->len < b->cap)
    b->p[b->len++] = c;
  else
    cli_buf_put(b, &c, 1);
}

void cli_buf_float(cli_buf *b, double v) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%g", v);
  cli_buf_put(b, tmp, (size_t)n);
}

typedef struct block {
  char *in;
  size_t len;
  int partial; /* ends inside a line: the line goes on in the next block */
  cli_buf out;
} block;

typedef struct worker {
  const es_model_t *m;
  es_scratch_t *s;
  cli_line_fn fn;
  void *tctx;
  block *blocks;
  int count;
  int *next; /* shared: the next block to take */
  pthread_t tid;
} worker;

/* Feeds a block; `*open` says a line is in progress on entry and exit. */
static void run_block(const es_model_t *m, es_scratch_t *s, cli_line_fn fn, void *tctx, block *b,
                      int *open, int last) {
  size_t pos = 0;
  while (pos < b->len) {
    int done;
    *open = 1;
    pos += es_line_feed(m, s, b->in + pos, b->len - pos, &done);
    if (done) {
      fn(tctx, m, s, &b->out);
      es_line_begin(s);
      *open = 0;
    }
  }
  if (last && *open) {
    fn(tctx, m, s, &b->out);
    es_line_begin(s);
    *open = 0;
  }
}

/* Takes blocks until none is left: threads that get short lines take more
 * blocks, so a round ends when the work does, not at the slowest thread. */
static void *worker_main(void *arg) {
  worker *w = arg;
  for (;;) {
    int i = __atomic_fetch_add(w->next, 1, __ATOMIC_RELAXED);
    if (i >= w->count) break;
    int open = 0;
    run_block(w->m, w->s, w->fn, w->tctx, &w->blocks[i], &open, 1);
  }
  return NULL;
}

/* Reads until buf holds `want` bytes or EOF. Returns bytes held, -1 on error. */
static ssize_t fill(int fd, char *buf, size_t have, size_t want, int *eof) {
  while (have < want && !*eof) {
    ssize_t got = read(fd, buf + have, want - have);
    if (got < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "edgeserve: read error: %s\n", strerror(errno));
      return -1;
    }
    if (got == 0) *eof = 1;
    have += (size_t)got;
  }
  return (ssize_t)have;
}

/* Fills b with the carried-over bytes plus fresh input, cut just after its
 * last newline; what follows the cut is carried to the next block. Without
 * any newline (a line longer than BLOCK), b is marked partial. */
static int cut_block(int fd, block *b, char *carry, size_t *ncarry, int *eof) {
  memcpy(b->in, carry, *ncarry);
  ssize_t have = fill(fd, b->in, *ncarry, BLOCK, eof);
  if (have < 0) return -1;
  size_t cut = (size_t)have;
  if (!*eof) {
    while (cut > 0 && b->in[cut - 1] != '\n') cut--;
    if (cut == 0) cut = (size_t)have;
  }
  b->len = cut;
  b->partial = !*eof && cut == (size_t)have && b->in[cut - 1] != '\n';
  *ncarry = (size_t)have - cut;
  memcpy(carry, b->in + cut, *ncarry);
  return 0;
}

static int write_out(cli_buf *b) {
  if (b->oom) {
    fprintf(stderr, "edgeserve: out of memory\n");
    return -1;
  }
  if (b->len && fwrite(b->p, 1, b->len, stdout) != b->len) {
    fprintf(stderr, "edgeserve: write error: %s\n", strerror(errno));
    return -1;
  }
  b->len = 0;
  return 0;
}

/* Predicts blocks[0..n) on up to nthreads threads, each with its own
 * scratch. A worker whose thread cannot be started simply takes no blocks:
 * the others (at least this thread) do them. */
static void run_parallel(worker *workers, int nthreads, int n) {
  int nt = nthreads < n ? nthreads : n, spawned[256] = {0}, next = 0;
  for (int t = 0; t < nt; t++) {
    workers[t].count = n;
    workers[t].next = &next;
    if (t > 0) spawned[t] = pthread_create(&workers[t].tid, NULL, worker_main, &workers[t]) == 0;
  }
  worker_main(&workers[0]);
  for (int t = 1; t < nt; t++)
    if (spawned[t]) pthread_join(workers[t].tid, NULL);
}

int cli_run_lines(int fd, const es_model_t *m, int nthreads, cli_line_fn fn, void **tctx) {
  int nblocks = nthreads * BLOCKS_PER_THREAD, rc = -1, eof = 0;
  block *blocks = calloc((size_t)nblocks, sizeof *blocks);
  worker *workers = calloc((size_t)nthreads, sizeof *workers);
  char *carry = malloc(BLOCK);
  size_t ncarry = 0;
  if (!blocks || !workers || !carry) goto oom;
  /* Output buffers sized here, so workers rarely allocate (a thread that
   * mallocs gets an arena of its own). */
  for (int i = 0; i < nblocks; i++) {
    blocks[i].out.cap = BLOCK;
    if (!(blocks[i].in = malloc(BLOCK)) || !(blocks[i].out.p = malloc(blocks[i].out.cap))) goto oom;
  }
  for (int t = 0; t < nthreads; t++) {
    workers[t] = (worker){m, es_scratch_new(m), fn, tctx[t], blocks, 0, NULL, 0};
    if (!workers[t].s) goto oom;
  }
  while (!eof || ncarry) {
    int n = 0;
    while (n < nblocks && (!eof || ncarry)) {
      if (cut_block(fd, &blocks[n], carry, &ncarry, &eof)) goto done;
      if (blocks[n].len == 0) break;
      if (blocks[n++].partial) break;
    }
    if (n == 0) break;
    int whole = blocks[n - 1].partial ? n - 1 : n;
    if (whole > 0) {
      run_parallel(workers, nthreads, whole);
      for (int i = 0; i < whole; i++)
        if (write_out(&blocks[i].out)) goto done;
    }
    if (whole == n) continue;
    /* A line longer than a block: stream it through thread 0's scratch,
     * block after block, until a block ends at a line boundary. */
    block *b = &blocks[n - 1];
    int open = 0;
    for (;;) {
      int last = eof && !ncarry;
      run_block(m, workers[0].s, fn, workers[0].tctx, b, &open, last);
      if (write_out(&b->out)) goto done;
      if (!b->partial || last) break;
      if (cut_block(fd, b, carry, &ncarry, &eof)) goto done;
    }
  }
  rc = 0;
  goto done;
oom:
  fprintf(stderr, "edgeserve: out of memory\n");
done:
  if (workers)
    for (int t = 0; t < nthreads; t++) es_scratch_free(workers[t].s);
  if (blocks)
    for (int i = 0; i < nblocks; i++) {
      free(blocks[i].in);
      free(blocks[i].out.p);
    }
  free(blocks);
  free(workers);
  free(carry);
  return rc;
}

int cli_take_threads(int *argc, char **argv) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  if (n > 16) n = 16;
  for (int i = 1; i < *argc; i++) {
    if (strcmp(argv[i], "--threads") && strcmp(argv[i], "-t")) continue;
    char *end;
    long v = i + 1 < *argc ? strtol(argv[i + 1], &end, 10) : 0;
    if (i + 1 >= *argc || *end || v < 1 || v > 256) {
      fprintf(stderr, "edgeserve: --threads needs a number from 1 to 256\n");
      return -1;
    }
    memmove(argv + i, argv + i + 2, (size_t)(*argc - i - 2) * sizeof *argv);
    *argc -= 2;
    return (int)v;
  }
  return (int)n;
}
