/*
 * topk.h - fastText's top-k selection, reproduced operation for operation.
 *
 * fastText keeps a min-heap of (log p, label) with std::push_heap/pop_heap
 * and finally std::sort_heap, comparing only the score. With equal scores
 * (frequent with the coarse sigmoid table of ova/ns) the order of the output
 * is whatever libstdc++'s heap algorithms produce, so these functions follow
 * libstdc++'s __push_heap / __adjust_heap / __pop_heap exactly: same moves,
 * same comparisons, hence the same order for ties.
 */
#ifndef ES_ENGINE_TOPK_H
#define ES_ENGINE_TOPK_H

#include <stdint.h>

typedef struct es__pair {
  float score;
  int32_t id;
} es__pair;

/* comp(l, r) = l.score > r.score, as fastText's comparePairs. */
static inline int es__pair_gt(es__pair l, es__pair r) { return l.score > r.score; }

static inline void es__heap_sift_up(es__pair *h, long hole, long top, es__pair v) {
  long parent = (hole - 1) / 2;
  while (hole > top && es__pair_gt(h[parent], v)) {
    h[hole] = h[parent];
    hole = parent;
    parent = (hole - 1) / 2;
  }
  h[hole] = v;
}

/* std::push_heap(h, h + len): the new element is h[len - 1]. */
static inline void es__heap_push(es__pair *h, long len) {
  es__heap_sift_up(h, len - 1, 0, h[len - 1]);
}

static inline void es__heap_adjust(es__pair *h, long hole, long len, es__pair v) {
  const long top = hole;
  long child = hole;
  while (child < (len - 1) / 2) {
    child = 2 * (child + 1);
    if (es__pair_gt(h[child], h[child - 1])) child--;
    h[hole] = h[child];
    hole = child;
  }
  if ((len & 1) == 0 && child == (len - 2) / 2) {
    child = 2 * (child + 1);
    h[hole] = h[child - 1];
    hole = child - 1;
  }
  es__heap_sift_up(h, hole, top, v);
}

/* std::pop_heap(h, h + len): moves the top to h[len - 1]. */
static inline void es__heap_pop(es__pair *h, long len) {
  if (len > 1) {
    es__pair v = h[len - 1];
    h[len - 1] = h[0];
    es__heap_adjust(h, 0, len - 1, v);
  }
}

/* std::sort_heap(h, h + len): descending by score. */
static inline void es__heap_sort(es__pair *h, long len) {
  while (len > 1) {
    es__heap_pop(h, len);
    len--;
  }
}

#endif
