/*
 * cmd_autotune.c - `edgeserve autotune`: the best classifier that fits a
 * size and latency budget (es_autotune, include/edgeserve/autotune.h).
 *
 * Prints a table on stdout, one line per trial with -verbose 2, then the
 * best trial as a command line that trains it again. Ctrl-C ends the
 * search and keeps the best model so far; a second Ctrl-C kills.
 * Exit status: 0 with a model written, 1 when nothing fit the budget or the
 * search failed, 2 for a bad command line.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "edgeserve/autotune.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
  static const char msg[] =
      "\nedgeserve: interrupted: stopping the search, keeping the best model so far (Ctrl-C "
      "again to abort)\n";
  (void)sig;
  interrupted = 1;
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
}

static void usage(FILE *f) {
  fprintf(f, "usage: edgeserve autotune -input TRAIN -validation VALID -output PREFIX [options]\n"
             "  searches training hyperparameters for the best classifier on VALID that fits\n"
             "  the budget; writes PREFIX.bin, or PREFIX.ftz with --max-size\n\n"
             "  --max-size SIZE      largest model file: bytes, or with K, M, G (1024-based)\n"
             "  --max-p99-us N       largest p99 latency of one prediction (one thread), us\n"
             "  --duration SECONDS   time to search [300]; Ctrl-C stops early, keeping the best\n"
             "  --metric p1|f1       what to maximise: precision at 1, micro F1 at 1 [p1]\n"
             "  -thread N            training threads [online CPUs, at most 12]\n"
             "  -seed N              seed of the search and of training [0]\n"
             "  -verbose N           0: the result only, 2: a line per trial [2]\n\n"
             "  Given, these are kept and not searched (as `edgeserve supervised`):\n"
             "  -epoch -lr -dim -wordNgrams -minn -maxn -bucket -loss -dsub\n"
             "  Used as given: -minCount -minCountLabel -neg -ws -lrUpdateRate -t -label\n"
             "  -pretrainedVectors (with -dim) --deterministic\n"
             "  fastText's spellings also work: -autotune-validation, -autotune-duration,\n"
             "  -autotune-modelsize, -autotune-metric\n");
}

/* "300K", "2M", "1.5G", "123456": bytes, 1024-based. */
static int parse_size(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  static const char units[] = "kKmMgG";
  double mul = 1;
  const char *u = end != s && *end && !end[1] ? strchr(units, *end) : NULL;
  if (u) {
    mul = ldexp(1.0, 10 * (1 + (int)(u - units) / 2)); /* K 2^10, M 2^20, G 2^30 */
    end++;
  }
  if (errno || end == s || *end || !(v > 0) || !isfinite(v) || v * mul > 9e18 || v * mul < 1) {
    fprintf(stderr,
            "edgeserve: --max-size: \"%s\" is not a size (bytes, or a number with K, M or G: "
            "300K, 2M)\n",
            s);
    return -1;
  }
  *out = (uint64_t)(v * mul);
  return 0;
}

static int parse_int(const char *s, const char *what, int32_t *out) {
  int64_t v;
  if (cli_parse_i64(s, what, &v)) return -1;
  if (v < INT32_MIN || v > INT32_MAX) {
    fprintf(stderr, "edgeserve: %s: \"%s\" is not an integer\n", what, s);
    return -1;
  }
  *out = (int32_t)v;
  return 0;
}

/* Integer flags of `supervised`; `bit` marks the searched ones. */
static const struct {
  const char *name;
  size_t off;
  unsigned bit;
} int_flags[] = {
    {"-dim", offsetof(es_train_args_t, dim), ES_AUTOTUNE_DIM},
    {"-epoch", offsetof(es_train_args_t, epoch), ES_AUTOTUNE_EPOCH},
    {"-wordNgrams", offsetof(es_train_args_t, word_ngrams), ES_AUTOTUNE_WORD_NGRAMS},
    {"-minn", offsetof(es_train_args_t, minn), ES_AUTOTUNE_MINN},
    {"-maxn", offsetof(es_train_args_t, maxn), ES_AUTOTUNE_MAXN},
    {"-bucket", offsetof(es_train_args_t, bucket), ES_AUTOTUNE_BUCKET},
    {"-dsub", offsetof(es_train_args_t, dsub), ES_AUTOTUNE_DSUB},
    {"-ws", offsetof(es_train_args_t, ws), 0},
    {"-minCount", offsetof(es_train_args_t, min_count), 0},
    {"-minCountLabel", offsetof(es_train_args_t, min_count_label), 0},
    {"-neg", offsetof(es_train_args_t, neg), 0},
    {"-thread", offsetof(es_train_args_t, thread), 0},
    {"-lrUpdateRate", offsetof(es_train_args_t, lr_update_rate), 0},
    {"-seed", offsetof(es_train_args_t, seed), 0},
};

/* Parses the command line into *a and *verbose. Returns 0, -1 after
 * printing the help, or 2 after reporting a problem. */
static int parse_flags(int argc, char **argv, es_autotune_args_t *a, int *verbose) {
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i];
    if (f[0] == '-' && f[1] == '-') f++; /* --flag and -flag are the same */
    if (!strcmp(f, "-h") || !strcmp(f, "-help")) {
      usage(stdout);
      return -1;
    }
    if (!strcmp(f, "-deterministic")) {
      a->train.deterministic = 1;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "edgeserve: %s needs a value\n", argv[i]);
      return 2;
    }
    const char *v = argv[++i];
    double d;
    int32_t n;
    if (!strcmp(f, "-input"))
      a->train.input = v;
    else if (!strcmp(f, "-output"))
      a->train.output = v;
    else if (!strcmp(f, "-validation") || !strcmp(f, "-autotune-validation"))
      a->validation = v;
    else if (!strcmp(f, "-label"))
      a->train.label = v;
    else if (!strcmp(f, "-pretrainedVectors"))
      a->train.pretrained_vectors = *v ? v : NULL;
    else if (!strcmp(f, "-max-size") || !strcmp(f, "-autotune-modelsize")) {
      if (parse_size(v, &a->max_size)) return 2;
    } else if (!strcmp(f, "-max-p99-us")) {
      if (cli_parse_double(v, argv[i - 1], &d)) return 2;
      if (!(d > 0)) {
        fprintf(stderr, "edgeserve: %s must be more than 0 microseconds, got %s\n", argv[i - 1], v);
        return 2;
      }
      a->max_p99_us = d;
    } else if (!strcmp(f, "-duration") || !strcmp(f, "-autotune-duration")) {
      if (cli_parse_double(v, argv[i - 1], &d)) return 2;
      if (!(d > 0)) {
        fprintf(stderr, "edgeserve: %s must be more than 0 seconds, got %s\n", argv[i - 1], v);
        return 2;
      }
      a->duration = d;
    } else if (!strcmp(f, "-metric") || !strcmp(f, "-autotune-metric")) {
      if (!strcasecmp(v, "p1") || !strcasecmp(v, "p@1") || !strcasecmp(v, "precision"))
        a->metric = ES_AUTOTUNE_P1;
      else if (!strcasecmp(v, "f1"))
        a->metric = ES_AUTOTUNE_F1;
      else {
        fprintf(stderr, "edgeserve: %s: unknown metric \"%s\" (p1 or f1)\n", argv[i - 1], v);
        return 2;
      }
    } else if (!strcmp(f, "-verbose")) {
      if (parse_int(v, f, &n)) return 2;
      *verbose = n;
    } else if (!strcmp(f, "-lr")) {
      if (cli_parse_double(v, f, &d)) return 2;
      a->train.lr = d;
      a->fixed |= ES_AUTOTUNE_LR;
    } else if (!strcmp(f, "-t")) {
      if (cli_parse_double(v, f, &d)) return 2;
      a->train.t = d;
    } else if (!strcmp(f, "-loss")) {
      if (!strcmp(v, "softmax"))
        a->train.loss = ES_LOSS_SOFTMAX;
      else if (!strcmp(v, "hs"))
        a->train.loss = ES_LOSS_HS;
      else if (!strcmp(v, "ns"))
        a->train.loss = ES_LOSS_NS;
      else if (!strcmp(v, "ova") || !strcmp(v, "one-vs-all"))
        a->train.loss = ES_LOSS_OVA;
      else {
        fprintf(stderr, "edgeserve: -loss: unknown loss \"%s\" (softmax, hs, ns, ova)\n", v);
        return 2;
      }
      a->fixed |= ES_AUTOTUNE_LOSS;
    } else {
      size_t k = 0, nf = sizeof int_flags / sizeof *int_flags;
      while (k < nf && strcmp(f, int_flags[k].name)) k++;
      if (k == nf) {
        fprintf(stderr, "edgeserve: unknown argument \"%s\" (see edgeserve autotune -h)\n",
                argv[i - 1]);
        return 2;
      }
      if (parse_int(v, f, &n)) return 2;
      *(int32_t *)(void *)((char *)&a->train + int_flags[k].off) = n;
      a->fixed |= int_flags[k].bit;
    }
  }
  if (!a->train.input || !a->validation || !a->train.output) {
    fprintf(stderr, "edgeserve: autotune needs -input, -validation and -output\n");
    usage(stderr);
    return 2;
  }
  return 0;
}

/* ---- the report ------------------------------------------------------------ */

static const char *loss_name(int32_t loss) {
  switch (loss) {
  case ES_LOSS_HS: return "hs";
  case ES_LOSS_NS: return "ns";
  case ES_LOSS_OVA: return "ova";
  default: return "softmax";
  }
}

/* A shell word: quoted unless it is plain. */
static void put_word(FILE *f, const char *s) {
  if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.,/:@+=%") ==
                strlen(s)) {
    fputs(s, f);
    return;
  }
  fputc('\'', f);
  for (; *s; s++)
    if (*s == '\'')
      fputs("'\\''", f);
    else
      fputc(*s, f);
  fputc('\'', f);
}

static void put_flag(FILE *f, const char *flag, const char *value) {
  fprintf(f, " %s ", flag);
  put_word(f, value);
}

/* The commands that train trial p again (the same model with one thread or
 * --deterministic; one as good otherwise). */
static void print_command(FILE *f, const es_train_args_t *p, int quantized) {
  es_train_args_t d = es_train_default_args();
  fputs("edgeserve supervised", f);
  put_flag(f, "-input", p->input);
  put_flag(f, "-output", p->output);
  fprintf(f, " -lr %g -epoch %d -dim %d -wordNgrams %d -minn %d -maxn %d -bucket %d -loss %s",
          p->lr, p->epoch, p->dim, p->word_ngrams, p->minn, p->maxn, p->bucket, loss_name(p->loss));
  if (p->min_count != d.min_count) fprintf(f, " -minCount %d", p->min_count);
  if (p->min_count_label != d.min_count_label) fprintf(f, " -minCountLabel %d", p->min_count_label);
  if (p->neg != d.neg) fprintf(f, " -neg %d", p->neg);
  if (p->ws != d.ws) fprintf(f, " -ws %d", p->ws);
  if (p->lr_update_rate != d.lr_update_rate) fprintf(f, " -lrUpdateRate %d", p->lr_update_rate);
  if (p->t != d.t) fprintf(f, " -t %g", p->t);
  if (strcmp(p->label, d.label)) put_flag(f, "-label", p->label);
  if (p->pretrained_vectors) put_flag(f, "-pretrainedVectors", p->pretrained_vectors);
  fprintf(f, " -thread %d -seed %d%s", p->thread, p->seed,
          p->deterministic ? " --deterministic" : "");
  if (quantized) {
    fputs(" && edgeserve quantize", f);
    put_flag(f, "-input", p->input);
    put_flag(f, "-output", p->output);
    fprintf(f, " -qnorm%s -dsub %d", p->qout ? " -qout" : "", p->dsub);
    if (p->cutoff)
      fprintf(f, " -cutoff %lld -retrain -epoch %d -lr %g", (long long)p->cutoff, p->epoch, p->lr);
    if (strcmp(p->label, d.label)) put_flag(f, "-label", p->label);
    fprintf(f, " -thread %d -seed %d", p->thread, p->seed);
  }
}

typedef struct report {
  const es_autotune_args_t *a;
  int verbose;
  int header_done;
} report;

static const char *metric_name(const es_autotune_args_t *a) {
  return a->metric == ES_AUTOTUNE_F1 ? "F1" : "P@1";
}

static void on_trial(const es_autotune_trial_t *t, int is_best, void *ctx) {
  report *r = ctx;
  if (r->verbose < 2) return;
  const es_train_args_t *p = &t->args;
  if (!r->header_done) {
    printf("trial    secs epoch       lr  dim wng minn maxn   bucket loss    dsub qout   cutoff "
           "%8s      bytes p50_us p99_us result\n",
           metric_name(r->a));
    r->header_done = 1;
  }
  printf("%5d %7.1f %5d %8g %4d %3d %4d %4d %8d %-7s", t->index, t->seconds, p->epoch, p->lr,
         p->dim, p->word_ngrams, p->minn, p->maxn, p->bucket, loss_name(p->loss));
  if (t->quantized || (r->a->max_size && t->status != ES_TRIAL_FAILED))
    printf(" %4d %4s %8lld", p->dsub, p->qout ? "yes" : "no", (long long)p->cutoff);
  else
    printf(" %4s %4s %8s", "-", "-", "-");
  if (isnan(t->metric))
    printf(" %8s", "-");
  else
    printf(" %8.4f", t->metric);
  if (t->size)
    printf(" %10llu", (unsigned long long)t->size);
  else
    printf(" %10s", "-");
  if (isnan(t->p99_us))
    printf(" %6s %6s", "-", "-");
  else
    printf(" %6.1f %6.1f", t->p50_us, t->p99_us);
  switch (t->status) {
  case ES_TRIAL_FIT: printf(" %s\n", is_best ? "fit, best" : "fit"); break;
  case ES_TRIAL_TOO_BIG: printf(" too big%s%s\n", t->note[0] ? ": " : "", t->note); break;
  case ES_TRIAL_TOO_SLOW: printf(" too slow\n"); break;
  case ES_TRIAL_FAILED: printf(" failed: %s\n", t->note); break;
  }
  fflush(stdout);
}

int es_cmd_autotune(int argc, char **argv) {
  es_autotune_args_t a = es_autotune_default_args();
  int verbose = 2;
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  int rc = parse_flags(argc, argv, &a, &verbose);
  if (rc) return rc < 0 ? 0 : rc;
  a.stop = &interrupted;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);

  report r = {&a, verbose, 0};
  es_autotune_result_t res;
  es_error_t err = {0, -1, ""};
  rc = es_autotune(&a, &res, on_trial, &r, &err);
  sigaction(SIGINT, &old, NULL);
  if (rc && rc != ES_ERANGE) {
    fprintf(stderr, "edgeserve: %s\n", err.msg[0] ? err.msg : es_strerror(rc));
    return 1;
  }
  const es_autotune_trial_t *b = &res.best;
  if (rc == ES_ERANGE) {
    fprintf(stderr, "edgeserve: %s\n", err.msg);
    if (b->index > 0) {
      fprintf(stderr, "edgeserve: closest: trial %d, %llu bytes", b->index,
              (unsigned long long)b->size);
      if (!isnan(b->p99_us)) fprintf(stderr, ", p99 %.2f us", b->p99_us);
      if (!isnan(b->metric)) fprintf(stderr, ", %s %.4f", metric_name(&a), b->metric);
      fprintf(stderr, ": ");
      print_command(stderr, &b->args, b->quantized);
      fputc('\n', stderr);
    }
    if (res.trials > 0) {
      if (a.max_size && res.too_big)
        fprintf(stderr, "edgeserve: raise --max-size (or fix a smaller -dim)\n");
      if (a.max_p99_us > 0 && res.too_slow)
        fprintf(stderr, "edgeserve: raise --max-p99-us (or fix a smaller -dim, -loss hs)\n");
    }
    return 1;
  }
  printf("best      trial %d of %d (%.2f trials/s over %.1f s; %d fit, %d too big, %d too "
         "slow, %d failed)\n",
         b->index, res.trials, res.seconds > 0 ? res.trials / res.seconds : 0, res.seconds,
         res.fitted, res.too_big, res.too_slow, res.failed);
  printf("metric    %s %.6f (%lld validation lines)\n", metric_name(&a), b->metric,
         (long long)b->nexamples);
  printf("size      %llu bytes (%s%s)\n", (unsigned long long)b->size, a.train.output,
         b->quantized ? ".ftz" : ".bin");
  printf("latency   p50 %.2f us, p99 %.2f us (one es_predict, one thread)\n", b->p50_us, b->p99_us);
  printf("command   ");
  print_command(stdout, &b->args, b->quantized);
  printf("\n");
  return fflush(stdout) ? 1 : 0;
}
