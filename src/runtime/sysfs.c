/*
 * sysfs.c - small-file reading and parsing under a root directory; see
 * sysfs.h.
 *
 * What it is for: hw.c and memstat.c read dozens of one-line files (sysfs),
 * a few key/value files (procfs) and the process's cgroup, always through a
 * root prefix so tests run on recorded trees.
 *
 * Invariants:
 *   1. Nothing allocates; every buffer is the caller's. The only kernel
 *      objects are file descriptors, closed before the function returns
 *      (es__lines_close closes the one es__lines_open opened).
 *   2. Absent and malformed are different answers: a file that cannot be
 *      opened is absent (the caller decides whether that matters, *err is
 *      untouched); a file that exists and does not parse is ES_EFORMAT with
 *      the full path and the offending text in *err.
 *   3. Paths never overflow: es__at returns NULL when root + name does not
 *      fit, and every reader treats a NULL path as absent.
 *   4. Parsing is locale-free (no <ctype.h>, no strtod): procfs text is ASCII.
 */
#include "sysfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/fail.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

int es__sysroot_init(es__sysroot_t *r, const char *root, es_error_t *err) {
  size_t n = root ? strlen(root) : 0;
  while (n > 0 && root[n - 1] == '/') n--; /* "/" and "dir/" both drop the slash */
  if (n + 2 >= sizeof r->path)
    return es__fail(err, ES_EINVAL, -1, "root directory path is %zu bytes long: at most %zu", n,
                    sizeof r->path - 2);
  memcpy(r->path, root ? root : "", n);
  r->path[n] = 0;
  r->rootlen = n;
  return 0;
}

const char *es__at(es__sysroot_t *r, const char *fmt, ...) {
  size_t room = sizeof r->path - r->rootlen;
  r->path[r->rootlen] = '/';
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->path + r->rootlen + 1, room - 1, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room - 1) return NULL;
  return r->path;
}

int es__read_file(const char *path, char *buf, size_t cap) {
  if (cap == 0) return ES_EIO;
  buf[0] = 0;
  if (!path) return ES_EIO;
  int fd;
  do fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return ES_EIO;
  size_t len = 0;
  while (len + 1 < cap) {
    ssize_t got = read(fd, buf + len, cap - 1 - len);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      close(fd);
      buf[0] = 0;
      return ES_EIO; /* sysfs attributes can fail at read time (a sensor that is off) */
    }
    if (got == 0) break;
    len += (size_t)got;
  }
  close(fd);
  while (len > 0 && (is_space(buf[len - 1]) || buf[len - 1] == 0)) len--;
  buf[len] = 0;
  return (int)len;
}

int es__parse_i64(const char *s, int64_t *v) {
  while (is_space(*s)) s++;
  int neg = 0;
  if (*s == '-' || *s == '+') neg = *s++ == '-';
  if (!is_digit(*s)) return -1;
  uint64_t acc = 0;
  for (; is_digit(*s); s++) {
    unsigned d = (unsigned)(*s - '0');
    if (acc > (UINT64_MAX - d) / 10) return -1;
    acc = acc * 10 + d;
  }
  while (is_space(*s)) s++;
  if (*s) return -1;
  if (acc > (uint64_t)INT64_MAX + (uint64_t)neg) return -1;
  *v = neg ? (int64_t)(0 - acc) : (int64_t)acc;
  return 0;
}

int es__sysfs_i64(const char *path, int64_t *v, es_error_t *err) {
  char buf[64];
  if (es__read_file(path, buf, sizeof buf) < 0) return 0;
  if (es__parse_i64(buf, v))
    return es__fail(err, ES_EFORMAT, -1, "%s: expected an integer, found \"%.40s\"", path, buf);
  return 1;
}

/* Reads an unsigned decimal number at *s, advancing it. Returns -1 when none. */
static int64_t take_uint(const char **s) {
  const char *p = *s;
  if (!is_digit(*p)) return -1;
  int64_t v = 0;
  for (; is_digit(*p); p++) {
    if (v > 100000000) return -1; /* no CPU number is this large */
    v = v * 10 + (*p - '0');
  }
  *s = p;
  return v;
}

int es__parse_cpulist(const char *s, uint64_t *set, int nbits) {
  memset(set, 0, (size_t)(nbits + 63) / 64 * sizeof *set);
  while (is_space(*s)) s++;
  int count = 0;
  while (*s && !is_space(*s)) {
    int64_t lo = take_uint(&s), hi = lo;
    if (lo < 0) return -1;
    if (*s == '-') {
      s++;
      hi = take_uint(&s);
      if (hi < lo) return -1;
    }
    for (int64_t i = lo; i <= hi && i < nbits; i++) {
      if (!es__bit(set, (int)i)) count++;
      set[i >> 6] |= 1ull << (i & 63);
    }
    if (*s == ',') {
      s++;
      if (!is_digit(*s)) return -1;
    } else if (*s && !is_space(*s)) {
      return -1;
    }
  }
  while (is_space(*s)) s++;
  return *s ? -1 : count;
}

int es__parse_kb(const char *s, uint64_t *bytes) {
  while (is_space(*s)) s++;
  if (!is_digit(*s)) return -1;
  uint64_t kb = 0;
  for (; is_digit(*s); s++) {
    if (kb > (UINT64_MAX / 1024 - 9) / 10) return -1;
    kb = kb * 10 + (uint64_t)(*s - '0');
  }
  while (is_space(*s)) s++;
  if (s[0] == 'k' && s[1] == 'B') s += 2;
  while (is_space(*s)) s++;
  if (*s) return -1;
  *bytes = kb * 1024;
  return 0;
}

int es__split_kv(char *line, char **key, char **val) {
  char *colon = strchr(line, ':');
  if (!colon) return -1;
  char *end = colon;
  while (end > line && is_space(end[-1])) end--;
  *end = 0;
  char *v = colon + 1;
  while (is_space(*v)) v++;
  size_t n = strlen(v);
  while (n > 0 && is_space(v[n - 1])) v[--n] = 0;
  *key = line;
  *val = v;
  return 0;
}

int es__lines_open(es__lines_t *l, const char *path, char *buf, size_t cap) {
  l->fd = -1;
  l->buf = buf;
  l->cap = cap;
  l->pos = l->end = 0;
  l->eof = 1;
  l->skip = 0;
  if (!path || cap < 2) return ES_EIO;
  do l->fd = open(path, O_RDONLY | O_CLOEXEC);
  while (l->fd < 0 && errno == EINTR);
  if (l->fd < 0) return ES_EIO;
  l->eof = 0;
  return 0;
}

int es__lines_next(es__lines_t *l, char **line) {
  for (;;) {
    char *start = l->buf + l->pos;
    char *nl = memchr(start, '\n', l->end - l->pos);
    if (nl) {
      *nl = 0;
      l->pos = (size_t)(nl - l->buf) + 1;
      if (l->skip) { /* the tail of a line already returned cut */
        l->skip = 0;
        continue;
      }
      *line = start;
      return 1;
    }
    if (l->eof) {
      if (l->pos == l->end || l->skip) return 0;
      l->buf[l->end] = 0; /* a last line without newline */
      *line = start;
      l->pos = l->end;
      return 1;
    }
    /* no newline in the buffered bytes: move them to the front, read more */
    memmove(l->buf, start, l->end - l->pos);
    l->end -= l->pos;
    l->pos = 0;
    if (l->end + 1 >= l->cap) { /* overlong line: return it cut, skip the rest */
      if (l->skip) {            /* still inside the line already returned */
        l->pos = l->end = 0;
        continue;
      }
      l->buf[l->end] = 0;
      *line = l->buf;
      l->pos = l->end = 0;
      l->skip = 1;
      return 1;
    }
    ssize_t got = read(l->fd, l->buf + l->end, l->cap - 1 - l->end);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      l->eof = 1;
      continue;
    }
    l->end += (size_t)got;
  }
}

void es__lines_close(es__lines_t *l) {
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
}

/* Is `name` one of the comma-separated controllers in list[len]? */
static int has_controller(const char *list, size_t len, const char *name) {
  size_t n = strlen(name);
  const char *p = list, *end = list + len;
  while (p < end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *stop = comma ? comma : end;
    if ((size_t)(stop - p) == n && memcmp(p, name, n) == 0) return 1;
    p = stop + 1;
  }
  return 0;
}

int es__cgroup_dir(es__sysroot_t *r, const char *controller, char *dir, size_t cap,
                   size_t *mountlen, es_error_t *err) {
  char buf[1024], v2[512] = "", v1[512] = "", mount[128] = "";
  int have_v1 = 0, have_v2 = 0;
  es__lines_t l;
  const char *path = es__at(r, "proc/self/cgroup");
  if (es__lines_open(&l, path, buf, sizeof buf)) return 0;
  char *line;
  while (es__lines_next(&l, &line)) {
    if (!*line) continue;
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2 || c1 == line) {
      es__lines_close(&l);
      return es__fail(err, ES_EFORMAT, -1,
                      "%s: expected lines \"ID:CONTROLLERS:PATH\", found \"%.60s\"", r->path, line);
    }
    const char *ctl = c1 + 1, *cpath = c2 + 1;
    size_t ctllen = (size_t)(c2 - ctl);
    if (*cpath != '/' || strncmp(cpath, "/..", 3) == 0)
      cpath = "/"; /* outside our cgroup namespace: the mount's root is ours */
    if (ctllen == 0 && line[0] == '0' && c1 == line + 1) {
      snprintf(v2, sizeof v2, "%s", cpath);
      have_v2 = 1;
    } else if (!have_v1 && has_controller(ctl, ctllen, controller)) {
      snprintf(v1, sizeof v1, "%s", cpath);
      snprintf(mount, sizeof mount, "%.*s", (int)ctllen, ctl);
      have_v1 = 1;
    }
  }
  es__lines_close(&l);
  int n;
  if (have_v1) {
    /* "cpu,cpuacct" is usually mounted under that name with "cpu" a symlink
     * to it; some systems mount only the single name */
    if (strcmp(mount, controller) != 0) {
      const char *p = es__at(r, "sys/fs/cgroup/%s", mount);
      if (!p || access(p, F_OK) != 0) snprintf(mount, sizeof mount, "%s", controller);
    }
    *mountlen = strlen("sys/fs/cgroup/") + strlen(mount);
    n = snprintf(dir, cap, "sys/fs/cgroup/%s%s", mount, v1);
  } else if (have_v2) {
    *mountlen = strlen("sys/fs/cgroup");
    n = snprintf(dir, cap, "sys/fs/cgroup%s", v2);
  } else {
    return 0;
  }
  if (n < 0 || (size_t)n >= cap) return 0;
  while (n > (int)*mountlen && dir[n - 1] == '/') dir[--n] = 0; /* "0::/" names the mount */
  return have_v1 ? 1 : 2;
}

int es__cgroup_up(char *dir, size_t mountlen) {
  size_t n = strlen(dir);
  if (n <= mountlen) return 0;
  while (n > mountlen && dir[n - 1] != '/') n--;
  while (n > mountlen && dir[n - 1] == '/') n--;
  dir[n] = 0;
  return 1;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

int es__thermal_zone_ids(es__sysroot_t *r, int *ids, int cap) {
  int n = 0;
  DIR *d = opendir(es__at(r, "sys/class/thermal") ? r->path : "");
  if (!d) return 0;
  for (struct dirent *e; (e = readdir(d)) && n < cap;) {
    int64_t id;
    if (strncmp(e->d_name, "thermal_zone", 12) == 0 && es__parse_i64(e->d_name + 12, &id) == 0 &&
        id >= 0 && id < 1000000)
      ids[n++] = (int)id;
  }
  closedir(d);
  qsort(ids, (size_t)n, sizeof ids[0], cmp_int);
  return n;
}
