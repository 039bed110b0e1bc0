/*
 * cmd_train.c - `edgeserve supervised` and `edgeserve quantize`, with
 * fastText's command-line flags.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "edgeserve/train.h"

static void usage(FILE *f, const char *cmd) {
  if (!strcmp(cmd, "quantize")) {
    fprintf(f, "usage: edgeserve quantize -output PREFIX [-input TRAIN] [options]\n"
               "  reads PREFIX.bin, writes PREFIX.ftz (fastText's quantize)\n\n"
               "  -input      training file (needed for -retrain)\n"
               "  -cutoff     number of input rows to keep (0: all) [0]\n"
               "  -retrain    fine-tune the kept rows on -input\n"
               "  -qnorm      quantize the norms separately\n"
               "  -qout       quantize the output matrix too\n"
               "  -dsub       size of each sub-vector [2]\n"
               "  -epoch -lr -thread -seed -verbose   for -retrain [5, 0.05, 12, 0, 2]\n");
    return;
  }
  fprintf(f, "usage: edgeserve supervised -input FILE -output PREFIX [options]\n"
             "  trains a classifier; writes PREFIX.bin and PREFIX.vec (fastText's supervised)\n\n"
             "  -lr              learning rate [0.1]\n"
             "  -dim             size of word vectors [100]\n"
             "  -ws              size of the context window (stored, unused) [5]\n"
             "  -epoch           number of epochs [5]\n"
             "  -minCount        minimal number of word occurrences [1]\n"
             "  -minCountLabel   minimal number of label occurrences [0]\n"
             "  -neg             number of negatives sampled [5]\n"
             "  -wordNgrams      max length of word n-grams [1]\n"
             "  -loss            softmax, hs, ns, ova (one-vs-all) [softmax]\n"
             "  -bucket          number of buckets [2000000]\n"
             "  -minn -maxn      min/max length of char n-grams [0 0]\n"
             "  -thread          number of threads [12]\n"
             "  -lrUpdateRate    rate of updates for the learning rate [100]\n"
             "  -t               sampling threshold (stored, unused) [0.0001]\n"
             "  -label           labels prefix [__label__]\n"
             "  -seed            random seed [0]\n"
             "  -verbose         verbosity level: 0 quiet, 2 progress on a terminal [2]\n"
             "  -pretrainedVectors  .vec file or fastText model to start from\n"
             "  -saveOutput      also write PREFIX.output (label vectors)\n"
             "  --deterministic  one thread: the same seed gives the same file\n"
             "  -normalize SPEC  normalize file names (normalize.h: default, lower,...)\n"
             "                   before training; also writes PREFIX.esm, which\n"
             "                   applies the same normalizer to every query\n");
}

static void show_progress(const es_train_progress_t *p, void *ctx) {
  (void)ctx;
  long eta = (long)(p->eta_sec + 0.5);
  fprintf(stderr,
          "\rProgress: %5.1f%% words/sec/thread: %7.0f lr: %9.6f avg.loss: %9.6f ETA: "
          "%3ldh%2ldm%2lds",
          p->progress * 100, p->words_per_sec, p->lr, p->loss, eta / 3600, eta / 60 % 60, eta % 60);
  if (p->progress >= 1.0) fputc('\n', stderr);
  fflush(stderr);
}

/* Parses fastText-style flags into *a. Returns 0, or 2 after reporting. */
static int parse_flags(int argc, char **argv, es_train_args_t *a, int quantize) {
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i];
    /* flags without a value */
    if (!strcmp(f, "-saveOutput")) {
      a->save_output = 1;
      continue;
    }
    if (!strcmp(f, "--deterministic") || !strcmp(f, "-deterministic")) {
      a->deterministic = 1;
      continue;
    }
    if (quantize && !strcmp(f, "-qnorm")) {
      a->qnorm = 1;
      continue;
    }
    if (quantize && !strcmp(f, "-qout")) {
      a->qout = 1;
      continue;
    }
    if (quantize && !strcmp(f, "-retrain")) {
      a->retrain = 1;
      continue;
    }
    if (!strcmp(f, "-h") || !strcmp(f, "--help") || !strcmp(f, "-help")) {
      usage(stdout, argv[0]);
      return -1;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "edgeserve: %s needs a value\n", f);
      return 2;
    }
    const char *v = argv[++i];
    int64_t n = 0;
    double d = 0;
    int32_t *i32 = NULL;
    if (!strcmp(f, "-input"))
      a->input = v;
    else if (!strcmp(f, "-output"))
      a->output = v;
    else if (!strcmp(f, "-lr")) {
      if (cli_parse_double(v, f, &d)) return 2;
      a->lr = d;
    } else if (!strcmp(f, "-t")) {
      if (cli_parse_double(v, f, &d)) return 2;
      a->t = d;
    } else if (!strcmp(f, "-label"))
      a->label = v;
    else if (!strcmp(f, "-pretrainedVectors"))
      a->pretrained_vectors = *v ? v : NULL;
    else if (!strcmp(f, "-normalize") || !strcmp(f, "--normalize"))
      a->normalize = v;
    else if (!strcmp(f, "-loss")) {
      if (!strcmp(v, "softmax"))
        a->loss = ES_LOSS_SOFTMAX;
      else if (!strcmp(v, "hs"))
        a->loss = ES_LOSS_HS;
      else if (!strcmp(v, "ns"))
        a->loss = ES_LOSS_NS;
      else if (!strcmp(v, "ova") || !strcmp(v, "one-vs-all"))
        a->loss = ES_LOSS_OVA;
      else {
        fprintf(stderr, "edgeserve: -loss: unknown loss \"%s\" (softmax, hs, ns, ova)\n", v);
        return 2;
      }
    } else if (!strcmp(f, "-cutoff")) {
      if (cli_parse_i64(v, f, &n)) return 2;
      a->cutoff = n;
    } else {
      static const struct {
        const char *name;
        size_t off;
      } ints[] = {{"-dim", offsetof(es_train_args_t, dim)},
                  {"-ws", offsetof(es_train_args_t, ws)},
                  {"-epoch", offsetof(es_train_args_t, epoch)},
                  {"-minCount", offsetof(es_train_args_t, min_count)},
                  {"-minCountLabel", offsetof(es_train_args_t, min_count_label)},
                  {"-neg", offsetof(es_train_args_t, neg)},
                  {"-wordNgrams", offsetof(es_train_args_t, word_ngrams)},
                  {"-bucket", offsetof(es_train_args_t, bucket)},
                  {"-minn", offsetof(es_train_args_t, minn)},
                  {"-maxn", offsetof(es_train_args_t, maxn)},
                  {"-thread", offsetof(es_train_args_t, thread)},
                  {"-lrUpdateRate", offsetof(es_train_args_t, lr_update_rate)},
                  {"-seed", offsetof(es_train_args_t, seed)},
                  {"-verbose", offsetof(es_train_args_t, verbose)},
                  {"-dsub", offsetof(es_train_args_t, dsub)}};
      for (size_t k = 0; k < sizeof ints / sizeof *ints; k++)
        if (!strcmp(f, ints[k].name)) i32 = (int32_t *)(void *)((char *)a + ints[k].off);
      if (!i32) {
        fprintf(stderr, "edgeserve: unknown argument \"%s\" (see edgeserve %s -h)\n", f, argv[0]);
        return 2;
      }
      if (cli_parse_i64(v, f, &n)) return 2;
      if (n < INT32_MIN || n > INT32_MAX) {
        fprintf(stderr, "edgeserve: %s: %s is out of range\n", f, v);
        return 2;
      }
      *i32 = (int32_t)n;
    }
  }
  return 0;
}

int es_cmd_train(int argc, char **argv) {
  int quantize = !strcmp(argv[0], "quantize");
  es_train_args_t a = es_train_default_args();
  if (quantize) { /* fastText's Args defaults outside `supervised` */
    a.lr = 0.05;
    a.epoch = 5;
  }
  if (argc < 2) {
    usage(stderr, argv[0]);
    return 2;
  }
  int rc = parse_flags(argc, argv, &a, quantize);
  if (rc) return rc < 0 ? 0 : rc;
  es_error_t err = {0, -1, ""};
  int tty = isatty(STDERR_FILENO) && a.verbose > 1;
  rc = quantize ? es_quantize(&a, tty ? show_progress : NULL, NULL, &err)
                : es_train_supervised(&a, tty ? show_progress : NULL, NULL, &err);
  if (rc) {
    fprintf(stderr, "edgeserve: %s\n", err.msg[0] ? err.msg : es_strerror(rc));
    return 1;
  }
  return 0;
}
