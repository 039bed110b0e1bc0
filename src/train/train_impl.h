/*
 * train_impl.h - helpers shared by supervised.c and quantize.c (internal).
 */
#ifndef ES_TRAIN_TRAIN_IMPL_H
#define ES_TRAIN_TRAIN_IMPL_H

#include <stddef.h>

#include "edgeserve/train.h"
#include "vocab.h"

#define ES__MAX_DIM  (1 << 20) /* as the loader accepts */
#define ES__MAX_MAXN 1024

/* Checks the arguments and resolves fastText's implicit rules (bucket 0
 * when nothing hashes; one thread when deterministic). */
int es__train_check(es_train_args_t *a, es_error_t *err);

/* The .bin image of header + dictionary (unpruned) for v: malloc'd. */
int es__train_dict_image(const es_model_args_t *ma, const es__vocab *v, char **img, size_t *len,
                         es_error_t *err);

/* The input rows of m in quantize's -cutoff order (fastText's
 * selectEmbeddings): "</s>" first, then by L2 norm descending (float products
 * summed in double), ties by row. On success *order is a malloc'd array of
 * the m->in.m row ids; else ES_ENOMEM or ES_ERANGE (a row holds NaN) with err
 * filled and *order NULL (quantize.c). */
int es__rank_rows(const es_model_t *m, int32_t **order, es_error_t *err);

/* prefix + ext, malloc'd (NULL when out of memory). */
char *es__train_path(const char *prefix, const char *ext);

#endif
