/* tmptree.c - see tmptree.h. */
#define _DEFAULT_SOURCE /* mkdtemp, DIR */
#include "tmptree.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tmptree_new(char *root, size_t cap, const char *prefix) {
  const char *tmp = getenv("TMPDIR");
  if ((size_t)snprintf(root, cap, "%s/%sXXXXXX", tmp && *tmp ? tmp : "/tmp", prefix) >= cap)
    return -1;
  return mkdtemp(root) ? 0 : -1;
}

int tmptree_put(const char *root, const char *rel, const char *text) {
  char path[1024];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", root, rel) >= sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = path + strlen(root) + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(path, 0755) && errno != EEXIST) return -1;
    *p = '/';
  }
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  int rc = fputs(text, f) < 0 ? -1 : 0;
  return fclose(f) ? -1 : rc;
}

void tmptree_rm(const char *path) {
  if (unlink(path) == 0) return;
  DIR *d = opendir(path);
  if (d) {
    for (struct dirent *e; (e = readdir(d));) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char sub[1024];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      tmptree_rm(sub);
    }
    closedir(d);
  }
  rmdir(path);
}

#ifndef ES_HW_FIXTURES
#define ES_HW_FIXTURES ""
#endif

const char *tmptree_fixture(const char *kind, const char *name, char *path, size_t cap) {
  if (ES_HW_FIXTURES[0]) {
    snprintf(path, cap, "%s/../%s/%s", ES_HW_FIXTURES, kind, name);
    return path;
  }
  const char *file = __FILE__, *slash = strrchr(file, '/');
  int dirlen = slash ? (int)(slash - file) : 1;
  snprintf(path, cap, "%.*s/../fixtures/%s/%s", dirlen, slash ? file : ".", kind, name);
  return path;
}
