/*
 * tmptree.h - throwaway directory trees for tests that read files under a
 * root path (recorded /proc and /sys trees: test_hw.c, test_memstat.c).
 */
#ifndef ES_TEST_TMPTREE_H
#define ES_TEST_TMPTREE_H

#include <stddef.h>

/* Creates a new empty directory "$TMPDIR/<prefix>XXXXXX" (TMPDIR defaults to
 * /tmp) and writes its path into root[cap]. Returns 0, or -1 on failure. */
int tmptree_new(char *root, size_t cap, const char *prefix);

/* Writes `text` to root/rel, creating the directories on the way. Returns 0,
 * or -1 with errno set. */
int tmptree_put(const char *root, const char *rel, const char *text);

/* Removes `path` and everything below it (best effort). */
void tmptree_rm(const char *path);

#endif
