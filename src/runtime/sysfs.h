/*
 * sysfs.h - reading small procfs / sysfs / cgroupfs files under a root
 * directory (internal to src/runtime).
 *
 * Hardware detection (hw.c) and memory sampling (memstat.c) read every file
 * through an es__sysroot_t, so the same code runs on the live system (root
 * "/" or NULL) and on recorded trees (tests/fixtures/hw/NAME). Nothing here
 * allocates: paths and contents live in buffers the caller owns, so the
 * helpers are safe from any thread and cheap enough to sample every second.
 *
 *   es__sysroot_t r;
 *   if (es__sysroot_init(&r, root, err)) return ...;
 *   int64_t khz;
 *   const char *p = es__at(&r, "sys/devices/system/cpu/cpu%d/cpufreq/cpuinfo_max_freq", id);
 *   int rc = es__sysfs_i64(p, &khz, err);   // 1 read, 0 absent, ES_EFORMAT (err names p)
 *
 * Convention for "optional" files: a file that cannot be opened or read is
 * absent (0 / ES_EIO, *err untouched); a file that exists but does not parse
 * is ES_EFORMAT with *err naming the full path and quoting the content.
 */
#ifndef ES_RUNTIME_SYSFS_H
#define ES_RUNTIME_SYSFS_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"

#define ES__PATH_MAX 1024

/* A root directory and a scratch buffer holding root + "/" + a relative path.
 * Live system: rootlen 0, so paths read "/proc/cpuinfo". */
typedef struct es__sysroot {
  char path[ES__PATH_MAX];
  size_t rootlen;
} es__sysroot_t;

/* Sets up `r` for `root` (NULL, "" or "/" = the live system; trailing slashes
 * are dropped). Returns 0, or ES_EINVAL (with *err) when root is too long. */
int es__sysroot_init(es__sysroot_t *r, const char *root, es_error_t *err);

/* Formats the path of a relative name under the root into r->path and returns
 * it, or NULL when it does not fit. The pointer is valid until the next
 * es__at() on the same `r`. */
const char *es__at(es__sysroot_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads the file at `path` (NULL = absent) into buf[cap], NUL-terminated, with
 * trailing whitespace and NUL bytes removed (device-tree strings end in NUL).
 * A file longer than cap - 1 bytes is cut there. Returns the length, or
 * ES_EIO when it cannot be opened or read. */
int es__read_file(const char *path, char *buf, size_t cap);

/* Reads a file holding one decimal integer (surrounding whitespace allowed).
 * Returns 1 and sets *v, 0 when the file is absent, or ES_EFORMAT with *err
 * filled (path and content) when it holds anything else. */
int es__sysfs_i64(const char *path, int64_t *v, es_error_t *err);

/* Parses a whole string as a decimal integer with optional sign and
 * surrounding whitespace. Returns 0, or -1 (not a number, or overflow). */
int es__parse_i64(const char *s, int64_t *v);

/* Parses a kernel CPU list ("0-3,6", "0,4", "" = none) into the bitset
 * set[nbits / 64] (cleared first). CPUs >= nbits are ignored. Returns the
 * number of CPUs set, or -1 when the text is not a CPU list. */
int es__parse_cpulist(const char *s, uint64_t *set, int nbits);

static inline int es__bit(const uint64_t *set, int i) {
  return (int)((set[i >> 6] >> (i & 63)) & 1);
}

/* Parses "1234 kB" (the unit of /proc/meminfo and /proc/self/status; a bare
 * number is taken as kB too) into bytes. Returns 0, or -1 when malformed. */
int es__parse_kb(const char *s, uint64_t *bytes);

/* Splits "key<ws>:<ws>value" in place: *key and *val point into line, both
 * trimmed. Returns 0, or -1 when the line has no ':'. */
int es__split_kv(char *line, char **key, char **val);

/* Line-by-line reading of a procfs text file through a caller's buffer. A
 * line longer than the buffer is returned cut to cap - 1 bytes, the rest of it
 * skipped. */
typedef struct es__lines {
  int fd;
  char *buf;
  size_t cap, pos, end; /* unread bytes are buf[pos, end) */
  int eof, skip;        /* skip: discarding the tail of an overlong line */
} es__lines_t;

/* Opens `path` (NULL = absent). Returns 0, or ES_EIO when it cannot be opened. */
int es__lines_open(es__lines_t *l, const char *path, char *buf, size_t cap);
/* Returns 1 with *line (NUL-terminated, without its newline), or 0 at the end
 * of the file or on a read error. */
int es__lines_next(es__lines_t *l, char **line);
void es__lines_close(es__lines_t *l);

/* The process's cgroup directory for `controller` ("memory", "cpu"), found
 * from proc/self/cgroup: a v1 line "N:memory:/path" (or "N:cpu,cpuacct:/path")
 * wins over the v2 line "0::/path", as on hybrid hosts where v2 holds no
 * controllers. Writes the directory relative to the root into dir[cap]
 * ("sys/fs/cgroup/memory/path" for v1, "sys/fs/cgroup/path" for v2) and the
 * length of its mount part ("sys/fs/cgroup/memory") into *mountlen, so walks
 * up to the mount stop there. Returns the version (1 or 2), 0 when
 * proc/self/cgroup is absent or names neither, or ES_EFORMAT (*err filled)
 * when a line of it has no "N:controllers:path" shape. */
int es__cgroup_dir(es__sysroot_t *r, const char *controller, char *dir, size_t cap,
                   size_t *mountlen, es_error_t *err);

/* Cuts the last component off a cgroup directory, never above mountlen.
 * Returns 1, or 0 when dir already is the mount. */
int es__cgroup_up(char *dir, size_t mountlen);

/* The numbers N of sys/class/thermal/thermal_zoneN under r, ascending, at
 * most `cap` of them, into ids[]; returns how many (0 when the folder is
 * missing). */
int es__thermal_zone_ids(es__sysroot_t *r, int *ids, int cap);

#endif
