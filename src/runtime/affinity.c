/*
 * affinity.c - CPU sets ("0-3,6") and pinning the calling thread to one.
 *
 * The scheduler pins its workers through es_affinity_pin_thread(); the server
 * and the CLI parse user-given CPU lists with es_cpuset_parse(). Pinning is a
 * hint: when the kernel refuses it, the caller keeps running unpinned and
 * shows the reason this file writes.
 *
 * Invariants:
 *   1. An es_cpuset_t holds CPUs 0 .. ES_CPUSET_MAX-1 only; every function
 *      that adds a number checks the bound first (ES_ERANGE otherwise).
 *   2. A failed call leaves its output set empty (parse) or the thread's
 *      affinity unchanged (pin): no half-done results.
 *   3. Only the calling thread is ever changed (sched_setaffinity with pid 0
 *      is per-thread on Linux), never the whole process.
 *   4. Linux-only calls sit behind __linux__; elsewhere the functions return
 *      ES_EUNSUPPORTED with a message, so callers need no #ifdefs.
 */
#define _GNU_SOURCE /* sched_setaffinity, sched_getcpu, CPU_ALLOC */
#include "edgeserve/affinity.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sched.h>
#endif

#include "../common/fail.h"

void es_cpuset_clear(es_cpuset_t *s) { memset(s, 0, sizeof *s); }

int es_cpuset_add(es_cpuset_t *s, int cpu) {
  if (cpu < 0 || cpu >= ES_CPUSET_MAX) return ES_ERANGE;
  s->bits[cpu / 64] |= (uint64_t)1 << (cpu % 64);
  return 0;
}

int es_cpuset_has(const es_cpuset_t *s, int cpu) {
  if (cpu < 0 || cpu >= ES_CPUSET_MAX) return 0;
  return (int)((s->bits[cpu / 64] >> (cpu % 64)) & 1);
}

static int popcount64(uint64_t x) {
  int n = 0;
  for (; x; x &= x - 1) n++;
  return n;
}

int es_cpuset_count(const es_cpuset_t *s) {
  int n = 0;
  for (size_t i = 0; i < ES_CPUSET_MAX / 64; i++) n += popcount64(s->bits[i]);
  return n;
}

int es_cpuset_nth(const es_cpuset_t *s, int n) {
  if (n < 0) return -1;
  for (int w = 0; w < ES_CPUSET_MAX / 64; w++) {
    int c = popcount64(s->bits[w]);
    if (n >= c) {
      n -= c;
      continue;
    }
    for (int b = 0; b < 64; b++)
      if (((s->bits[w] >> b) & 1) && n-- == 0) return w * 64 + b;
  }
  return -1;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Reads a decimal CPU number at text[*i]; returns 0 or an error code. */
static int parse_cpu(const char *text, size_t *i, int *cpu, es_error_t *err) {
  size_t start = *i;
  long v = 0;
  if (text[*i] < '0' || text[*i] > '9')
    return es__fail(err, ES_EINVAL, (int64_t)start,
                    "cpu list \"%s\": expected a cpu number at byte %zu (format: 0-3,6)", text,
                    start);
  while (text[*i] >= '0' && text[*i] <= '9') {
    v = v * 10 + (text[*i] - '0');
    if (v >= ES_CPUSET_MAX)
      return es__fail(err, ES_ERANGE, (int64_t)start,
                      "cpu list \"%s\": cpu number at byte %zu is %d or more, beyond the %d cpus "
                      "edgeserve can name",
                      text, start, ES_CPUSET_MAX, ES_CPUSET_MAX);
    (*i)++;
  }
  *cpu = (int)v;
  return 0;
}

int es_cpuset_parse(es_cpuset_t *out, const char *text, es_error_t *err) {
  es_cpuset_clear(out);
  if (!text) return es__fail(err, ES_EINVAL, -1, "cpu list is NULL");
  size_t i = 0;
  while (is_blank(text[i])) i++;
  if (!text[i]) return 0; /* the empty set */
  int rc;
  for (;;) {
    int lo, hi;
    while (is_blank(text[i])) i++;
    if ((rc = parse_cpu(text, &i, &lo, err))) goto fail;
    hi = lo;
    while (is_blank(text[i])) i++;
    if (text[i] == '-') {
      i++;
      while (is_blank(text[i])) i++;
      size_t at = i;
      if ((rc = parse_cpu(text, &i, &hi, err))) goto fail;
      if (hi < lo) {
        rc = es__fail(err, ES_EINVAL, (int64_t)at,
                      "cpu list \"%s\": range %d-%d at byte %zu runs backwards (write %d-%d)", text,
                      lo, hi, at, hi, lo);
        goto fail;
      }
      while (is_blank(text[i])) i++;
    }
    for (int c = lo; c <= hi; c++) es_cpuset_add(out, c);
    if (!text[i]) return 0;
    if (text[i] != ',') {
      rc = es__fail(err, ES_EINVAL, (int64_t)i,
                    "cpu list \"%s\": unexpected '%c' at byte %zu (format: 0-3,6)", text, text[i],
                    i);
      goto fail;
    }
    i++;
  }
fail:
  es_cpuset_clear(out);
  return rc;
}

int es_cpuset_format(const es_cpuset_t *s, char *buf, size_t cap) {
  if (cap == 0) return ES_EINVAL;
  size_t len = 0;
  buf[0] = '\0';
  for (int c = 0; c < ES_CPUSET_MAX; c++) {
    if (!es_cpuset_has(s, c)) continue;
    int e = c;
    while (e + 1 < ES_CPUSET_MAX && es_cpuset_has(s, e + 1)) e++;
    char item[32];
    int n = e == c ? snprintf(item, sizeof item, "%s%d", len ? "," : "", c)
                   : snprintf(item, sizeof item, "%s%d-%d", len ? "," : "", c, e);
    if (len + (size_t)n + 1 > cap) return ES_ERANGE; /* buf keeps the items so far */
    memcpy(buf + len, item, (size_t)n + 1);
    len += (size_t)n;
    c = e;
  }
  return 0;
}

#ifdef __linux__

/* A kernel cpu mask as large as an es_cpuset_t; NULL when out of memory. */
static cpu_set_t *to_kernel(const es_cpuset_t *s, size_t *size) {
  cpu_set_t *k = CPU_ALLOC(ES_CPUSET_MAX);
  if (!k) return NULL;
  *size = CPU_ALLOC_SIZE(ES_CPUSET_MAX);
  CPU_ZERO_S(*size, k);
  if (s)
    for (int c = 0; c < ES_CPUSET_MAX; c++)
      if (es_cpuset_has(s, c)) CPU_SET_S((size_t)c, *size, k);
  return k;
}

int es_affinity_get(es_cpuset_t *out, es_error_t *err) {
  es_cpuset_clear(out);
  size_t size;
  cpu_set_t *k = to_kernel(NULL, &size);
  if (!k) return es__fail(err, ES_ENOMEM, -1, "out of memory for a cpu mask");
  int rc = 0;
  if (sched_getaffinity(0, size, k) != 0) {
    rc = es__fail(err, ES_EIO, -1, "sched_getaffinity failed: %s", strerror(errno));
  } else {
    for (int c = 0; c < ES_CPUSET_MAX; c++)
      if (CPU_ISSET_S((size_t)c, size, k)) es_cpuset_add(out, c);
  }
  CPU_FREE(k);
  return rc;
}

int es_affinity_pin_thread(const es_cpuset_t *cpus, es_error_t *err) {
  char want[256];
  if (es_cpuset_count(cpus) == 0)
    return es__fail(err, ES_EINVAL, -1, "cannot pin to an empty cpu set: give at least one cpu");
  es_cpuset_format(cpus, want, sizeof want);
  size_t size;
  cpu_set_t *k = to_kernel(cpus, &size);
  if (!k) return es__fail(err, ES_ENOMEM, -1, "out of memory for a cpu mask");
  int rc = sched_setaffinity(0, size, k) == 0 ? 0 : errno;
  CPU_FREE(k);
  if (rc == 0) return 0;
  if (rc == EINVAL) {
    es_cpuset_t allowed;
    char have[256] = "unknown";
    if (es_affinity_get(&allowed, NULL) == 0) es_cpuset_format(&allowed, have, sizeof have);
    return es__fail(err, ES_EINVAL, -1,
                    "cannot pin to cpus %s: none of them is online and allowed to this process "
                    "(allowed: %s, see taskset or the cgroup cpuset); choose cpus from that list",
                    want, have);
  }
  if (rc == EPERM)
    return es__fail(err, ES_EUNSUPPORTED, -1,
                    "cannot pin to cpus %s: changing cpu affinity is not permitted here (a "
                    "container or sandbox policy)",
                    want);
  return es__fail(err, ES_EIO, -1, "cannot pin to cpus %s: sched_setaffinity: %s", want,
                  strerror(rc));
}

int es_affinity_current_cpu(void) { return sched_getcpu(); }

#else /* no thread affinity on this platform */

int es_affinity_get(es_cpuset_t *out, es_error_t *err) {
  es_cpuset_clear(out);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  for (long c = 0; c < n && c < ES_CPUSET_MAX; c++) es_cpuset_add(out, (int)c);
  return es__fail(err, ES_EUNSUPPORTED, -1,
                  "thread affinity is not available on this platform (Linux only)");
}

int es_affinity_pin_thread(const es_cpuset_t *cpus, es_error_t *err) {
  if (es_cpuset_count(cpus) == 0)
    return es__fail(err, ES_EINVAL, -1, "cannot pin to an empty cpu set: give at least one cpu");
  return es__fail(err, ES_EUNSUPPORTED, -1,
                  "thread affinity is not available on this platform (Linux only): running "
                  "unpinned");
}

int es_affinity_current_cpu(void) { return -1; }

#endif
