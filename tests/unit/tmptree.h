/*
 * tmptree.h - file trees for tests that read files under a root path: the
 * recorded machines of tests/fixtures/ and throwaway trees in $TMPDIR
 * (test_hw.c, test_memstat.c, test_sysmetrics.c).
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

/* Writes the path of tests/fixtures/<kind>/<name> into path[cap] and returns
 * path: from ES_HW_FIXTURES (".../tests/fixtures/hw", defined by the build)
 * when set, else found next to this file (a direct compiler run from the
 * repository root). */
const char *tmptree_fixture(const char *kind, const char *name, char *path, size_t cap);

#endif
