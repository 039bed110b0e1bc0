/*
 * affinity.h - CPU sets and pinning threads to them.
 *
 * A big.LITTLE SoC (RK3588: 4 x A76 + 4 x A55) or a hybrid Intel laptop (P
 * and E cores) runs inference fastest on its big cores and background work
 * (model loading, logging, metrics) best on the little ones. An es_cpuset_t
 * names a set of logical CPUs; es_affinity_pin_thread() restricts the calling
 * thread to it. The scheduler (sched.h) pins its workers this way.
 *
 *   es_cpuset_t big;
 *   es_error_t err;
 *   if (es_cpuset_parse(&big, "4-7", &err) == 0 &&
 *       es_affinity_pin_thread(&big, &err) != 0)
 *     fprintf(stderr, "running unpinned: %s\n", err.msg);
 *
 * Pinning is a hint that may be refused: the CPUs may lie outside the
 * process's allowed set (taskset, a cgroup cpuset in a container), or the
 * platform may have no thread affinity at all (non-Linux). Callers then run
 * unpinned; the error text says why.
 *
 * Everything here is thread-safe: the cpuset functions touch only their
 * arguments, the affinity functions only the calling thread.
 */
#ifndef EDGESERVE_AFFINITY_H
#define EDGESERVE_AFFINITY_H

#include <stddef.h>
#include <stdint.h>

#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Highest CPU number + 1 a set can hold (512 bytes per set). */
#define ES_CPUSET_MAX 4096

/* A set of logical CPU numbers 0 <= cpu < ES_CPUSET_MAX. A plain value:
 * copy it, compare it with memcmp. Zero-initialized = empty. */
typedef struct es_cpuset {
  uint64_t bits[ES_CPUSET_MAX / 64];
} es_cpuset_t;

/* Empties the set. */
void es_cpuset_clear(es_cpuset_t *s);

/* Adds `cpu`. Returns 0, or ES_ERANGE when cpu < 0 or >= ES_CPUSET_MAX (the
 * set is unchanged). */
int es_cpuset_add(es_cpuset_t *s, int cpu);

/* 1 when `cpu` is in the set, else 0 (also for out-of-range numbers). */
int es_cpuset_has(const es_cpuset_t *s, int cpu);

/* Number of CPUs in the set. */
int es_cpuset_count(const es_cpuset_t *s);

/* The n-th CPU of the set in ascending order (n = 0 is the lowest), or -1
 * when the set has n or fewer CPUs. */
int es_cpuset_nth(const es_cpuset_t *s, int n);

/* Parses a Linux CPU list ("0-3,6", as in /sys/devices/system/cpu/online and
 * taskset -c): comma-separated numbers and inclusive ranges, blanks allowed
 * around items, a trailing newline accepted. "" (or only blanks) is the empty
 * set. Returns 0 and fills *out; on failure returns ES_EINVAL (not a CPU
 * list: *err says at which byte and what was expected) or ES_ERANGE (a CPU
 * number >= ES_CPUSET_MAX), and *out is empty. `err` may be NULL. */
int es_cpuset_parse(es_cpuset_t *out, const char *text, es_error_t *err);

/* Writes the set as a canonical CPU list ("0-3,6": ascending, ranges merged,
 * "" for the empty set) into buf[cap], NUL-terminated. Returns 0, or
 * ES_ERANGE when cap is too small (buf then holds a NUL-terminated prefix,
 * cut at an item boundary) or ES_EINVAL when cap is 0. 16 bytes per range
 * always suffice; es_cpuset_parse(format(s)) == s. */
int es_cpuset_format(const es_cpuset_t *s, char *buf, size_t cap);

/* The CPUs the calling thread may run on (sched_getaffinity). Returns 0, or
 * ES_EUNSUPPORTED (no thread affinity on this platform: *out is then every
 * online CPU when the count is known, else empty) or ES_EIO, with *err
 * filled when not NULL. */
int es_affinity_get(es_cpuset_t *out, es_error_t *err);

/* Restricts the calling thread to the CPUs in `cpus`. Returns 0 when the
 * kernel accepted the set (it keeps only the CPUs the process may use, so a
 * set that overlaps the allowed set partly succeeds: read the effective set
 * back with es_affinity_get), or a negative code with *err saying why and
 * what to do, the thread's affinity then unchanged:
 *   ES_EINVAL       `cpus` is empty, or none of its CPUs is online and
 *                   allowed to this process (taskset, cgroup cpuset): the
 *                   message lists the allowed CPUs
 *   ES_EUNSUPPORTED no permission to change affinity (some containers), or
 *                   no thread affinity on this platform (non-Linux)
 *   ES_EIO          any other refusal (the errno text is in the message)
 * `err` may be NULL. */
int es_affinity_pin_thread(const es_cpuset_t *cpus, es_error_t *err);

/* The CPU the calling thread is running on now (sched_getcpu), or -1 when
 * the platform does not say. Only a snapshot: an unpinned thread may move. */
int es_affinity_current_cpu(void);

#ifdef __cplusplus
}
#endif
#endif
