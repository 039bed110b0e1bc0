/*
 * config.c - the configuration schema and its five layers.
 *
 * One table (KEYS) describes every setting; nothing below knows any key by
 * name. The server, the runtime and the CLI read values through getters; the
 * strategy (strategy.c) reads what was configured and fills the plan layer.
 *
 * Each key holds one slot per layer, lowest first:
 *
 *   DEFAULT   from KEYS[i].def, set once by es_config_new
 *   PLAN      presets and hardware (ES_CFG_PRESET / ES_CFG_HARDWARE)
 *   FILE      INI files (inih)
 *   ENV       EDGESERVE_<SECTION>_<KEY>
 *   FLAG      command-line assignments
 *
 * Invariants:
 *   1. The effective value of a key is the highest explicit slot (FLAG, ENV,
 *      FILE) that is set; when that holds "auto", or none is set, the PLAN
 *      slot when set and not auto, else the DEFAULT slot (which may be
 *      auto). Precedence therefore never depends on the order of calls.
 *   2. A set slot always holds a value that passed its key's type and range
 *      checks, its canonical text (`text`, owned) and, for numeric types,
 *      its number (`num`). An auto slot has text "auto" and num 0.
 *   3. Loading a file or an environment is all or nothing: every assignment
 *      is parsed into a pending list first and committed only when all of
 *      them are valid, so a failed call leaves cfg unchanged.
 *   4. Error messages start with where the value came from ("x.ini:12",
 *      "env EDGESERVE_X_Y", "flag") and name the key and the value.
 *
 * inih is used with Debian's build options (INI_MAX_LINE 200, multi-line
 * values and ';' inline comments on) and its global switches are left as
 * they are. Lines are fed through our own reader so that errors carry the
 * line number and byte offset, and a too-long line is an error rather than
 * two half lines.
 */
#include "edgeserve/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/fail.h"
#include "../common/inilines.h"

#define KIB 1024LL
#define MIB (1024LL * KIB)
#define GIB (1024LL * MIB)
#define TIB (1024LL * GIB)
#define MS  1000LL
#define SEC (1000LL * MS)

#define FILE_MAX ((size_t)1 << 20) /* a config larger than this is a mistake */

/* ---- the schema ------------------------------------------------------------
 * Defaults of the keys a preset sets are the balanced preset's values
 * (strategy.c; test_strategy checks they agree). */
static const es_config_key_t KEYS[] = {
    {"server", "host", ES_CFG_STRING, 1, 255, "127.0.0.1", NULL, 0,
     "address to listen on (0.0.0.0: every interface)"},
    {"server", "port", ES_CFG_UINT, 0, 65535, "8080", NULL, 0, "TCP port (0: any free port)"},
    {"server", "models", ES_CFG_STRING, 1, 4095, "models", NULL, 0,
     "directory the server loads models from"},
    {"server", "data", ES_CFG_STRING, 0, 4095, "edgeserve-data", NULL, 0,
     "directory of the server's database (history, feedback, jobs, events; empty: none)"},
    {"server", "api_key", ES_CFG_STRING, 0, 255, "", NULL, 0,
     "API key required as 'Authorization: Bearer KEY' on every endpoint but liveness "
     "(empty: none)"},
    {"server", "max_body", ES_CFG_BYTES, 1 * KIB, 256 * MIB, "1M", NULL, 0,
     "largest request body accepted (larger: 413)"},
    {"server", "keep_alive", ES_CFG_DURATION, 1 * SEC, 3600 * SEC, "5s", NULL, 0,
     "an idle connection is closed after this"},
    {"server", "request_timeout", ES_CFG_DURATION, 1 * SEC, 3600 * SEC, "10s", NULL, 0,
     "a request's headers and body must arrive within this (slow clients are cut off)"},
    {"server", "cors", ES_CFG_STRING, 0, 1023, "", NULL, 0,
     "origins allowed by CORS, comma-separated, or * (empty: CORS off)"},
    {"server", "gzip_min", ES_CFG_BYTES, 0, 64 * MIB, "1000", NULL, 0,
     "responses at least this long are gzipped when the client accepts it (0: never)"},
    {"server", "io_threads", ES_CFG_UINT, 1, 64, "auto", NULL, ES_CFG_ZERO_AUTO,
     "threads that read requests and write responses (auto: one per CPU, at most 4)"},
    {"server", "inline_max", ES_CFG_DURATION, 0, 1 * SEC, "200us", NULL, 0,
     "a request whose model is idle and costs less than this is computed on the I/O thread "
     "(no queue hop; 0: always queue)"},
    {"server", "history_pct", ES_CFG_UINT, 0, 100, "100", NULL, 0,
     "share of requests recorded in the history database, in %"},
    {"server", "retention", ES_CFG_DURATION, 1 * SEC, 3650LL * 24 * 3600 * SEC, "720h", NULL, 0,
     "history older than this is deleted"},

    {"runtime", "strategy", ES_CFG_ENUM, 0, 0, "auto",
     "auto|latency_optimized|memory_optimized|balanced", 0,
     "preset of threads, batching, caches and quality (auto: from the hardware tier)"},
    {"runtime", "inference_threads", ES_CFG_UINT, 1, 1024, "auto", NULL, ES_CFG_ZERO_AUTO,
     "threads that run models (auto: one per inference CPU)"},
    {"runtime", "background_threads", ES_CFG_UINT, 1, 1024, "auto", NULL, ES_CFG_ZERO_AUTO,
     "threads for HTTP, logging and maintenance (auto: from the preset)"},
    {"runtime", "inference_cpus", ES_CFG_CPUSET, 0, 0, "auto", NULL, 0,
     "CPUs for inference threads (auto: big cores, P-cores, one thread per physical core)"},
    {"runtime", "background_cpus", ES_CFG_CPUSET, 0, 0, "auto", NULL, 0,
     "CPUs for background threads (auto: little cores, E-cores, what inference leaves)"},
    {"runtime", "pin", ES_CFG_BOOL, 0, 1, "true", NULL, 0,
     "pin threads to their CPUs (the plan turns it off under a CPU quota)"},

    {"memory", "budget", ES_CFG_BYTES, 16 * MIB, 1024 * TIB, "auto", NULL, ES_CFG_ZERO_AUTO,
     "memory edgeserve may use for models, caches and requests (auto or 0: the memory tier's)"},
    {"memory", "os_reserve", ES_CFG_BYTES, 0, 1024 * TIB, "auto", NULL, 0,
     "memory left to the OS and other processes (auto: the tier's)"},
    {"memory", "model_budget", ES_CFG_BYTES, 1 * MIB, 1024 * TIB, "auto", NULL, 0,
     "limit for models: mapped pages, private memory, scratch (auto: the tier's)"},
    {"memory", "cache_budget", ES_CFG_BYTES, 0, 1024 * TIB, "auto", NULL, 0,
     "limit for response caches and pools (auto: the tier's; half when memory_optimized)"},
    {"memory", "safety_margin", ES_CFG_BYTES, 0, 1024 * TIB, "auto", NULL, 0,
     "memory kept free on the machine, never handed out (auto: the tier's)"},
    {"memory", "warning_pct", ES_CFG_UINT, 1, 100, "75", NULL, 0,
     "memory use, in % of the budget, that raises a warning"},
    {"memory", "critical_pct", ES_CFG_UINT, 1, 100, "90", NULL, 0,
     "memory use, in % of the budget, that sheds load (above warning_pct)"},

    {"batching", "max_batch", ES_CFG_UINT, 1, 1024, "32", NULL, 0,
     "most requests run as one batch"},
    {"batching", "max_delay", ES_CFG_DURATION, 0, 1 * SEC, "10ms", NULL, 0,
     "longest a request waits for its batch to fill (0: never waits)"},
    {"batching", "queue_limit", ES_CFG_UINT, 1, 1000000, "256", NULL, 0,
     "requests waiting at most; beyond it requests are refused (busy)"},

    {"cache", "entries", ES_CFG_UINT, 0, 100000000, "1024", NULL, 0,
     "predictions kept in the response cache (0: no cache)"},
    {"cache", "ttl", ES_CFG_DURATION, 0, 24 * 3600 * SEC, "5s", NULL, 0,
     "how long a cached prediction is served (0: until the model changes)"},

    {"quality", "floor", ES_CFG_ENUM, 0, 0, "pq", "dense|int8|pq|pruned", 0,
     "the lowest model quality the runtime may degrade to under load or memory pressure"},
    {"quality", "sla_p95", ES_CFG_DURATION, 1 * MS, 60 * SEC, "100ms", NULL, 0,
     "p95 latency target; degradation starts when it is missed"},
    {"quality", "interval", ES_CFG_DURATION, 100 * MS, 3600 * SEC, "30s", NULL, 0,
     "how often the quality manager re-evaluates the load of each model"},
    {"quality", "dwell", ES_CFG_DURATION, 0, 3600 * SEC, "60s", NULL, 0,
     "least time between two switches of a model's variant"},
    {"quality", "signals", ES_CFG_STRING, 0, 127, "queue,p95,cpu,memory,temperature", NULL, 0,
     "the load signals the quality manager weighs (comma-separated; empty: none)"},
};
#define NKEYS (sizeof KEYS / sizeof *KEYS)

const es_config_key_t *es_config_keys(size_t *n) {
  if (n) *n = NKEYS;
  return KEYS;
}

const char *es_config_type_name(es_cfg_type_t type) {
  switch (type) {
  case ES_CFG_INT: return "int";
  case ES_CFG_UINT: return "uint";
  case ES_CFG_BYTES: return "bytes";
  case ES_CFG_DURATION: return "duration";
  case ES_CFG_BOOL: return "bool";
  case ES_CFG_ENUM: return "enum";
  case ES_CFG_CPUSET: return "cpuset";
  case ES_CFG_STRING: return "string";
  }
  return "?";
}

const char *es_config_source_name(es_cfg_source_t source) {
  switch (source) {
  case ES_CFG_DEFAULT: return "default";
  case ES_CFG_PRESET: return "preset";
  case ES_CFG_HARDWARE: return "hardware";
  case ES_CFG_FILE: return "file";
  case ES_CFG_ENV: return "env";
  case ES_CFG_FLAG: return "flag";
  }
  return "?";
}

/* ---- the configuration ----------------------------------------------------- */
enum { L_DEFAULT, L_PLAN, L_FILE, L_ENV, L_FLAG, NLAYERS };

typedef struct slot {
  int set, is_auto;
  int64_t num;
  char *text; /* canonical text, owned */
  es_cfg_source_t source;
  char *origin; /* owned, may be NULL */
} slot;

struct es_config {
  slot v[NKEYS][NLAYERS];
};

static int layer_of(es_cfg_source_t s) {
  switch (s) {
  case ES_CFG_DEFAULT: return L_DEFAULT;
  case ES_CFG_PRESET:
  case ES_CFG_HARDWARE: return L_PLAN;
  case ES_CFG_FILE: return L_FILE;
  case ES_CFG_ENV: return L_ENV;
  case ES_CFG_FLAG: return L_FLAG;
  }
  return -1;
}

static void slot_clear(slot *s) {
  free(s->text);
  free(s->origin);
  memset(s, 0, sizeof *s);
}

static char *dupstr(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* Index of "section.name" in KEYS, or -1. */
static int find_key(const char *key) {
  const char *dot = key ? strchr(key, '.') : NULL;
  if (!dot) return -1;
  size_t sl = (size_t)(dot - key);
  for (size_t i = 0; i < NKEYS; i++)
    if (strlen(KEYS[i].section) == sl && !strncmp(KEYS[i].section, key, sl) &&
        !strcmp(KEYS[i].name, dot + 1))
      return (int)i;
  return -1;
}

static int known_section(const char *section, size_t len) {
  for (size_t i = 0; i < NKEYS; i++)
    if (strlen(KEYS[i].section) == len && !strncmp(KEYS[i].section, section, len)) return 1;
  return 0;
}

static int find_in_section(const char *section, const char *name) {
  for (size_t i = 0; i < NKEYS; i++)
    if (!strcmp(KEYS[i].section, section) && !strcmp(KEYS[i].name, name)) return (int)i;
  return -1;
}

/* "max_batch, max_delay, queue_limit" for section, or every section's name
 * when section is NULL. */
static void known_list(const char *section, char *buf, size_t n) {
  size_t len = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < NKEYS && len < n; i++) {
    const char *item;
    if (section) {
      if (strcmp(KEYS[i].section, section)) continue;
      item = KEYS[i].name;
    } else {
      if (i > 0 && !strcmp(KEYS[i].section, KEYS[i - 1].section)) continue;
      item = KEYS[i].section;
    }
    int w = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", item);
    if (w < 0) break;
    len += (size_t)w;
  }
}

/* ---- sizes and durations ------------------------------------------------------ */
typedef struct unit {
  const char *name;
  uint64_t mult;
} unit;

static const unit BYTE_UNITS[] = {
    {"", 1},
    {"b", 1},
    {"k", 1ull << 10},
    {"kb", 1ull << 10},
    {"kib", 1ull << 10},
    {"m", 1ull << 20},
    {"mb", 1ull << 20},
    {"mib", 1ull << 20},
    {"g", 1ull << 30},
    {"gb", 1ull << 30},
    {"gib", 1ull << 30},
    {"t", 1ull << 40},
    {"tb", 1ull << 40},
    {"tib", 1ull << 40},
};

static const unit TIME_UNITS[] = {
    {"us", 1},       {"ms", 1000},      {"s", 1000000},
    {"m", 60000000}, {"min", 60000000}, {"h", 3600000000ull},
};

/* Parses "<digits> [unit]" (spaces around allowed) with one of `units`.
 * ES_EINVAL: not that shape or an unknown unit; ES_ERANGE: overflow of max. */
static int parse_with_unit(const char *text, const unit *units, size_t nunits, uint64_t max,
                           uint64_t *out) {
  const char *p = text;
  while (isspace((unsigned char)*p)) p++;
  if (!isdigit((unsigned char)*p)) return ES_EINVAL;
  uint64_t v = 0;
  int over = 0;
  for (; isdigit((unsigned char)*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      over = 1;
    else
      v = v * 10 + d;
  }
  while (isspace((unsigned char)*p)) p++;
  const char *u = p;
  size_t ul = strlen(u);
  while (ul && isspace((unsigned char)u[ul - 1])) ul--;
  for (size_t i = 0; i < nunits; i++) {
    if (strlen(units[i].name) != ul || strncasecmp(units[i].name, u, ul)) continue;
    if (over || v > max / units[i].mult) return ES_ERANGE;
    *out = v * units[i].mult;
    return 0;
  }
  return ES_EINVAL;
}

int es_config_parse_bytes(const char *text, uint64_t *out) {
  return parse_with_unit(text, BYTE_UNITS, sizeof BYTE_UNITS / sizeof *BYTE_UNITS, UINT64_MAX, out);
}

int es_config_parse_duration(const char *text, int64_t *out_us) {
  uint64_t v;
  /* "0" alone: the only unitless duration; the empty unit is not in the table. */
  const char *p = text;
  while (isspace((unsigned char)*p)) p++;
  if (*p == '0') {
    const char *q = p + 1;
    while (isspace((unsigned char)*q)) q++;
    if (*q == '\0') {
      *out_us = 0;
      return 0;
    }
  }
  int rc = parse_with_unit(text, TIME_UNITS, sizeof TIME_UNITS / sizeof *TIME_UNITS,
                           (uint64_t)INT64_MAX, &v);
  if (rc < 0) return rc;
  *out_us = (int64_t)v;
  return 0;
}

static size_t format_with_unit(uint64_t v, const unit *units, size_t nunits, char *buf, size_t n) {
  /* largest unit first: the tables are in ascending order */
  for (size_t i = nunits; i-- > 0;) {
    uint64_t m = units[i].mult;
    if (m > 1 && v && v % m == 0)
      return (size_t)snprintf(buf, n, "%" PRIu64 "%s", v / m, units[i].name);
  }
  return (size_t)snprintf(buf, n, "%" PRIu64, v);
}

size_t es_config_format_bytes(uint64_t bytes, char *buf, size_t n) {
  static const unit SHOWN[] = {
      {"", 1}, {"K", 1ull << 10}, {"M", 1ull << 20}, {"G", 1ull << 30}, {"T", 1ull << 40}};
  return format_with_unit(bytes, SHOWN, sizeof SHOWN / sizeof *SHOWN, buf, n);
}

size_t es_config_format_duration(int64_t us, char *buf, size_t n) {
  static const unit SHOWN[] = {
      {"us", 1}, {"ms", 1000}, {"s", 1000000}, {"m", 60000000}, {"h", 3600000000ull}};
  if (us < 0) return (size_t)snprintf(buf, n, "%" PRId64 "us", us);
  if (us == 0) return (size_t)snprintf(buf, n, "0");
  for (size_t i = sizeof SHOWN / sizeof *SHOWN; i-- > 0;)
    if ((uint64_t)us % SHOWN[i].mult == 0)
      return (size_t)snprintf(buf, n, "%" PRId64 "%s", us / (int64_t)SHOWN[i].mult, SHOWN[i].name);
  return 0; /* not reached: every number is a multiple of 1us */
}

/* ---- values --------------------------------------------------------------------- */

/* Formats a number of key k's type as canonical text. */
static void format_num(const es_config_key_t *k, int64_t v, char *buf, size_t n) {
  switch (k->type) {
  case ES_CFG_BYTES: es_config_format_bytes((uint64_t)v, buf, n); break;
  case ES_CFG_DURATION: es_config_format_duration(v, buf, n); break;
  default: snprintf(buf, n, "%" PRId64, v); break;
  }
}

static int parse_int(const char *s, int64_t *out) {
  if (!isdigit((unsigned char)*s) && !((*s == '-' || *s == '+') && isdigit((unsigned char)s[1])))
    return ES_EINVAL;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*end) return ES_EINVAL;
  if (errno == ERANGE) return ES_ERANGE;
  *out = v;
  return 0;
}

/* Parses text as a value of key k into *out (text and number; origin and
 * source are the caller's). Returns 0, or ES_EINVAL / ES_ERANGE / ES_ENOMEM
 * with `why` saying what is wrong with the value. */
static int parse_value(const es_config_key_t *k, const char *text, slot *out, char *why,
                       size_t whyn) {
  memset(out, 0, sizeof *out);
  /* values are compared trimmed, as inih trims file values */
  while (isspace((unsigned char)*text)) text++;
  size_t len = strlen(text);
  while (len && isspace((unsigned char)text[len - 1])) len--;
  char *t = malloc(len + 1);
  if (!t) return ES_ENOMEM;
  memcpy(t, text, len);
  t[len] = '\0';

  char buf[64];
  int rc = 0;
  int64_t v = 0;
  if (!strcasecmp(t, "auto")) {
    out->is_auto = 1;
    goto canonical;
  }
  switch (k->type) {
  case ES_CFG_INT:
  case ES_CFG_UINT:
    rc = parse_int(t, &v);
    if (rc == ES_EINVAL) snprintf(why, whyn, "not an integer");
    break;
  case ES_CFG_BYTES: {
    uint64_t u = 0;
    rc = es_config_parse_bytes(t, &u);
    if (rc == ES_EINVAL)
      snprintf(why, whyn, "not a size (a whole number with an optional unit: 512K, 64M, 2G)");
    v = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
    break;
  }
  case ES_CFG_DURATION:
    rc = es_config_parse_duration(t, &v);
    if (rc == ES_EINVAL)
      snprintf(why, whyn, "not a duration (a whole number with a unit: 250us, 5ms, 3s, 5m, 1h)");
    break;
  case ES_CFG_BOOL:
    if (!strcasecmp(t, "true") || !strcasecmp(t, "yes") || !strcasecmp(t, "on") || !strcmp(t, "1"))
      v = 1;
    else if (!strcasecmp(t, "false") || !strcasecmp(t, "no") || !strcasecmp(t, "off") ||
             !strcmp(t, "0"))
      v = 0;
    else {
      rc = ES_EINVAL;
      snprintf(why, whyn, "not a boolean (true/false, yes/no, on/off, 1/0)");
    }
    break;
  case ES_CFG_ENUM: {
    rc = ES_EINVAL;
    int idx = 0;
    for (const char *c = k->choices; *c; idx++) {
      size_t cl = strcspn(c, "|");
      if (cl == len && !strncasecmp(c, t, len)) {
        v = idx;
        rc = 0;
        break;
      }
      c += cl + (c[cl] == '|');
    }
    if (rc) {
      char opts[160];
      snprintf(opts, sizeof opts, "%s", k->choices);
      for (char *c = opts; *c; c++)
        if (*c == '|') *c = '/';
      snprintf(why, whyn, "not one of %s", opts);
    }
    break;
  }
  case ES_CFG_CPUSET: {
    es_cpuset_t *set = malloc(sizeof *set);
    if (!set) {
      rc = ES_ENOMEM;
      break;
    }
    rc = es_cpuset_parse(set, t, NULL);
    if (rc == ES_EINVAL) snprintf(why, whyn, "not a CPU list (like 0-3,6)");
    if (rc == ES_ERANGE) snprintf(why, whyn, "CPU numbers go up to %d", ES_CPUSET_MAX - 1);
    if (rc == 0 && es_cpuset_count(set) == 0) {
      rc = ES_EINVAL;
      snprintf(why, whyn, "no CPU (write auto to let the plan choose)");
    }
    if (rc == 0) {
      /* canonical text: at most 16 bytes per range (affinity.h) */
      size_t cap = 16 * (size_t)es_cpuset_count(set) + 1;
      char *c = malloc(cap);
      if (!c || es_cpuset_format(set, c, cap) < 0) {
        free(c);
        rc = ES_ENOMEM;
      } else {
        free(t);
        t = c;
      }
    }
    free(set);
    break;
  }
  case ES_CFG_STRING:
    for (size_t i = 0; i < len && !rc; i++)
      if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f) {
        rc = ES_EINVAL;
        snprintf(why, whyn, "contains a control character");
      }
    if (!rc && ((int64_t)len < k->min || (int64_t)len > k->max)) {
      rc = ES_ERANGE;
      if (len == 0)
        snprintf(why, whyn, "empty");
      else
        snprintf(why, whyn, "too long (at most %" PRId64 " characters)", k->max);
    }
    break;
  }
  if (rc == 0 && k->type != ES_CFG_STRING && k->type != ES_CFG_CPUSET && k->type != ES_CFG_BOOL &&
      k->type != ES_CFG_ENUM) {
    if (v == 0 && (k->flags & ES_CFG_ZERO_AUTO)) {
      out->is_auto = 1;
      goto canonical;
    }
    if (v < k->min || v > k->max) rc = ES_ERANGE;
  }
  if (rc == ES_ERANGE && !why[0]) {
    char lo[32], hi[32];
    format_num(k, k->min, lo, sizeof lo);
    format_num(k, k->max, hi, sizeof hi);
    snprintf(why, whyn, "out of range (%s..%s%s)", lo, hi,
             (k->flags & ES_CFG_ZERO_AUTO) ? ", or 0 for auto" : "");
  }
  if (rc < 0) {
    free(t);
    return rc;
  }
  out->num = v;
  if (k->type == ES_CFG_STRING || k->type == ES_CFG_CPUSET) {
    out->text = t;
    out->set = 1;
    return 0;
  }
canonical:
  if (out->is_auto)
    snprintf(buf, sizeof buf, "auto");
  else if (k->type == ES_CFG_BOOL)
    snprintf(buf, sizeof buf, "%s", v ? "true" : "false");
  else if (k->type == ES_CFG_ENUM) {
    const char *c = k->choices;
    for (int64_t i = 0; i < v; i++) c += strcspn(c, "|") + 1;
    snprintf(buf, sizeof buf, "%.*s", (int)strcspn(c, "|"), c);
  } else
    format_num(k, v, buf, sizeof buf);
  free(t);
  out->num = out->is_auto ? 0 : v;
  out->text = dupstr(buf);
  if (!out->text) return ES_ENOMEM;
  out->set = 1;
  return 0;
}

/* "file x.ini:12", "env EDGESERVE_X_Y", "flag", "preset balanced", ... */
static void describe(es_cfg_source_t source, const char *origin, char *buf, size_t n) {
  snprintf(buf, n, "%s%s%s", es_config_source_name(source), origin ? " " : "",
           origin ? origin : "");
}

/* Where a message starts: "x.ini:12" for files (the path is the place),
 * "env EDGESERVE_X_Y", "flag", ... for the others. */
static void where(es_cfg_source_t source, const char *origin, char *buf, size_t n) {
  if (source == ES_CFG_FILE && origin)
    snprintf(buf, n, "%s", origin);
  else
    describe(source, origin, buf, n);
}

/* Parses value for key index ki from (source, origin) into *out, with the
 * message of a bad value in *err. */
static int parse_for(int ki, const char *value, es_cfg_source_t source, const char *origin,
                     int64_t offset, slot *out, es_error_t *err) {
  const es_config_key_t *k = &KEYS[ki];
  char why[200] = "";
  int rc = parse_value(k, value, out, why, sizeof why);
  if (rc == ES_ENOMEM) return es__fail(err, rc, -1, "out of memory");
  if (rc < 0) {
    assert(why[0]);
    char w[200];
    where(source, origin, w, sizeof w);
    return es__fail(err, rc, offset, "%s: [%s] %s = '%.64s': %s", w, k->section, k->name, value,
                    why);
  }
  out->source = source;
  if (origin && !(out->origin = dupstr(origin))) {
    slot_clear(out);
    return es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  return 0;
}

static void commit(es_config_t *cfg, int ki, slot *s) {
  int l = layer_of(s->source);
  assert(l > L_DEFAULT);
  slot_clear(&cfg->v[ki][l]);
  cfg->v[ki][l] = *s;
  memset(s, 0, sizeof *s);
}

es_config_t *es_config_new(void) {
  es_config_t *cfg = calloc(1, sizeof *cfg);
  if (!cfg) return NULL;
  for (size_t i = 0; i < NKEYS; i++) {
    char why[200] = "";
    slot *d = &cfg->v[i][L_DEFAULT];
    int rc = parse_value(&KEYS[i], KEYS[i].def, d, why, sizeof why);
    if (rc == ES_ENOMEM) {
      es_config_free(cfg);
      return NULL;
    }
    assert(rc == 0 && "a default in KEYS does not parse");
    d->source = ES_CFG_DEFAULT;
  }
  return cfg;
}

void es_config_free(es_config_t *cfg) {
  if (!cfg) return;
  for (size_t i = 0; i < NKEYS; i++)
    for (int l = 0; l < NLAYERS; l++) slot_clear(&cfg->v[i][l]);
  free(cfg);
}

int es_config_set(es_config_t *cfg, const char *key, const char *value, es_cfg_source_t source,
                  const char *origin, es_error_t *err) {
  int l = layer_of(source);
  if (l <= L_DEFAULT)
    return es__fail(err, ES_EINVAL, -1, "%s: the default layer cannot be set", key ? key : "?");
  if (!key || !value) return es__fail(err, ES_EINVAL, -1, "es_config_set: NULL key or value");
  int ki = find_key(key);
  if (ki < 0) {
    char w[200], known[200];
    where(source, origin, w, sizeof w);
    const char *dot = key ? strchr(key, '.') : NULL;
    if (!dot) return es__fail(err, ES_EINVAL, -1, "%s: '%.64s': expected SECTION.KEY", w, key);
    if (!known_section(key, (size_t)(dot - key))) {
      known_list(NULL, known, sizeof known);
      return es__fail(err, ES_EINVAL, -1, "%s: [%.*s]: unknown section (known: %s)", w,
                      (int)(dot - key), key, known);
    }
    char section[32];
    snprintf(section, sizeof section, "%.*s", (int)(dot - key), key);
    known_list(section, known, sizeof known);
    return es__fail(err, ES_EINVAL, -1, "%s: [%s] %.64s: unknown key (known: %s)", w, section,
                    dot + 1, known);
  }
  slot s;
  int rc = parse_for(ki, value, source, origin, -1, &s, err);
  if (rc < 0) return rc;
  commit(cfg, ki, &s);
  return 0;
}

int es_config_set_flag(es_config_t *cfg, const char *assignment, es_error_t *err) {
  const char *eq = assignment ? strchr(assignment, '=') : NULL;
  if (!eq || !memchr(assignment, '.', (size_t)(eq - assignment)))
    return es__fail(err, ES_EINVAL, -1, "flag: '%.64s': expected SECTION.KEY=VALUE",
                    assignment ? assignment : "");
  char key[96];
  size_t kl = (size_t)(eq - assignment);
  while (kl && isspace((unsigned char)assignment[kl - 1])) kl--;
  snprintf(key, sizeof key, "%.*s", (int)kl, assignment);
  return es_config_set(cfg, key, eq + 1, ES_CFG_FLAG, NULL, err);
}

/* ---- pending assignments (all or nothing) ----------------------------------- */
typedef struct pending {
  int ki;
  slot s;
} pending;

typedef struct pending_list {
  pending *p;
  size_t n, cap;
} pending_list;

static int pending_push(pending_list *pl, int ki, slot *s) {
  if (pl->n == pl->cap) {
    size_t cap = pl->cap ? 2 * pl->cap : 16;
    pending *p = realloc(pl->p, cap * sizeof *p);
    if (!p) return ES_ENOMEM;
    pl->p = p;
    pl->cap = cap;
  }
  pl->p[pl->n].ki = ki;
  pl->p[pl->n].s = *s;
  pl->n++;
  memset(s, 0, sizeof *s);
  return 0;
}

static void pending_finish(es_config_t *cfg, pending_list *pl, int ok) {
  for (size_t i = 0; i < pl->n; i++) {
    if (ok)
      commit(cfg, pl->p[i].ki, &pl->p[i].s);
    else
      slot_clear(&pl->p[i].s);
  }
  free(pl->p);
  memset(pl, 0, sizeof *pl);
}

/* ---- INI files ------------------------------------------------------------------- */
typedef struct ini_ctx {
  es__inilines l;  /* the text, the current line, the first error */
  int seen[NKEYS]; /* line a key was set on in this file, 0 = not yet */
  pending_list pl;
} ini_ctx;

static int on_ini_pair(void *user, const char *section, const char *name, const char *value) {
  ini_ctx *c = user;
  es__inilines *l = &c->l;
  if (l->failed) return 0;
  if (!*section) return es__inilines_fail(l, ES_EINVAL, "%.64s: key outside any [section]", name);
  int ki = find_in_section(section, name);
  if (ki < 0) {
    char known[200];
    if (!known_section(section, strlen(section))) {
      known_list(NULL, known, sizeof known);
      return es__inilines_fail(l, ES_EINVAL, "[%.32s]: unknown section (known: %s)", section,
                               known);
    }
    known_list(section, known, sizeof known);
    return es__inilines_fail(l, ES_EINVAL, "[%s] %.64s: unknown key (known: %s)", section, name,
                             known);
  }
  if (c->seen[ki]) {
    int indented = *l->line == ' ' || *l->line == '\t';
    return es__inilines_fail(l, ES_EINVAL, "[%s] %s: already set on line %d%s", section, name,
                             c->seen[ki],
                             indented ? " (an indented line continues the value above it)" : "");
  }
  c->seen[ki] = l->lineno;
  char origin[300];
  snprintf(origin, sizeof origin, "%s:%d", l->name, l->lineno);
  slot s;
  es_error_t e;
  int rc = parse_for(ki, value, ES_CFG_FILE, origin, (int64_t)(l->line - l->text), &s, &e);
  if (rc == 0 && (rc = pending_push(&c->pl, ki, &s)) < 0) {
    slot_clear(&s);
    snprintf(e.msg, sizeof e.msg, "out of memory");
    e.offset = -1;
  }
  if (rc < 0) {
    /* parse_for's message already starts with "name:line" */
    l->failed = 1;
    l->fail_line = l->lineno;
    l->e = e;
    l->e.code = rc;
    return 0;
  }
  return 1;
}

int es_config_load_string(es_config_t *cfg, const char *text, const char *name, es_error_t *err) {
  ini_ctx *c = calloc(1, sizeof *c);
  if (!c) return es__fail(err, ES_ENOMEM, -1, "out of memory");
  es__inilines_init(&c->l, text, name);
  int rc = es__inilines_parse(&c->l, on_ini_pair, c, ES_EFORMAT, err);
  pending_finish(cfg, &c->pl, rc == 0);
  free(c);
  return rc;
}

int es_config_load_file(es_config_t *cfg, const char *path, es_error_t *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return es__fail(err, ES_EIO, -1, "%s: cannot open: %s", path, strerror(errno));
  char *buf = malloc(FILE_MAX + 1);
  if (!buf) {
    fclose(f);
    return es__fail(err, ES_ENOMEM, -1, "out of memory");
  }
  size_t n = fread(buf, 1, FILE_MAX + 1, f);
  int rerr = ferror(f);
  fclose(f);
  int rc;
  if (rerr)
    rc = es__fail(err, ES_EIO, -1, "%s: read error", path);
  else if (n > FILE_MAX)
    rc = es__fail(err, ES_EFORMAT, -1, "%s: larger than %zu bytes: not a configuration file", path,
                  FILE_MAX);
  else if (memchr(buf, '\0', n))
    rc = es__fail(err, ES_EFORMAT, (int64_t)((char *)memchr(buf, '\0', n) - buf),
                  "%s: contains a NUL byte: not a text file", path);
  else {
    buf[n] = '\0';
    rc = es_config_load_string(cfg, buf, path, err);
  }
  free(buf);
  return rc;
}

/* ---- environment ------------------------------------------------------------------ */
static void env_name(const es_config_key_t *k, char *buf, size_t n) {
  int w = snprintf(buf, n, "EDGESERVE_%s_%s", k->section, k->name);
  for (int i = 0; i < w && (size_t)i < n; i++) buf[i] = (char)toupper((unsigned char)buf[i]);
}

int es_config_apply_env(es_config_t *cfg, char *const *envp, es_error_t *err) {
  static const char PREFIX[] = "EDGESERVE_";
  pending_list pl = {0};
  for (size_t e = 0; envp && envp[e]; e++) {
    const char *var = envp[e];
    const char *eq = strchr(var, '=');
    if (!eq || strncmp(var, PREFIX, sizeof PREFIX - 1)) continue;
    size_t nl = (size_t)(eq - var);
    /* which section: EDGESERVE_<SECTION>_ with SECTION one of ours */
    const char *section = NULL;
    for (size_t i = 0; i < NKEYS && !section; i++) {
      size_t sl = strlen(KEYS[i].section);
      const char *s = var + sizeof PREFIX - 1;
      if (nl < sizeof PREFIX - 1 + sl + 1 || s[sl] != '_') continue;
      size_t j = 0;
      while (j < sl && s[j] == toupper((unsigned char)KEYS[i].section[j])) j++;
      if (j == sl) section = KEYS[i].section;
    }
    if (!section) continue; /* not ours: EDGESERVE_HOME and the like */
    char name[96];
    snprintf(name, sizeof name, "%.*s", (int)nl, var);
    int ki = -1;
    for (size_t i = 0; i < NKEYS && ki < 0; i++) {
      char en[96];
      env_name(&KEYS[i], en, sizeof en);
      if (!strcmp(en, name)) ki = (int)i;
    }
    if (ki < 0) {
      char known[200], lower[96];
      const char *k = name + sizeof PREFIX - 1 + strlen(section) + 1;
      size_t i = 0;
      for (; i < sizeof lower - 1 && k[i]; i++) lower[i] = (char)tolower((unsigned char)k[i]);
      lower[i] = '\0';
      known_list(section, known, sizeof known);
      pending_finish(cfg, &pl, 0);
      return es__fail(err, ES_EINVAL, -1, "env %s: [%s] %s: unknown key (known: %s)", name, section,
                      lower, known);
    }
    slot s;
    int rc = parse_for(ki, eq + 1, ES_CFG_ENV, name, -1, &s, err);
    if (rc == 0 && (rc = pending_push(&pl, ki, &s)) < 0) {
      slot_clear(&s);
      es__fail(err, rc, -1, "out of memory");
    }
    if (rc < 0) {
      pending_finish(cfg, &pl, 0);
      return rc;
    }
  }
  pending_finish(cfg, &pl, 1);
  return 0;
}

/* ---- reading ----------------------------------------------------------------------- */

/* The effective slot of key ki (invariant 1); *layer gets its layer. */
static const slot *effective(const es_config_t *cfg, int ki, int *layer) {
  int l = L_FLAG;
  for (; l >= L_FILE; l--) { /* the highest explicit value decides, even "auto" */
    const slot *s = &cfg->v[ki][l];
    if (!s->set) continue;
    if (s->is_auto) break;
    if (layer) *layer = l;
    return s;
  }
  const slot *s = &cfg->v[ki][L_PLAN];
  l = s->set && !s->is_auto ? L_PLAN : L_DEFAULT;
  if (layer) *layer = l;
  return &cfg->v[ki][l];
}

static int key_or_assert(const char *key) {
  int ki = find_key(key);
  assert(ki >= 0 && "not a key of the configuration schema");
  return ki;
}

int64_t es_config_get_int(const es_config_t *cfg, const char *key) {
  int ki = key_or_assert(key);
  if (ki < 0) return 0;
  return effective(cfg, ki, NULL)->num;
}

const char *es_config_get_str(const es_config_t *cfg, const char *key) {
  int ki = key_or_assert(key);
  if (ki < 0) return NULL;
  return effective(cfg, ki, NULL)->text;
}

int es_config_get_cpuset(const es_config_t *cfg, const char *key, es_cpuset_t *out) {
  memset(out, 0, sizeof *out);
  int ki = key_or_assert(key);
  if (ki < 0) return 1;
  assert(KEYS[ki].type == ES_CFG_CPUSET);
  const slot *s = effective(cfg, ki, NULL);
  if (s->is_auto || KEYS[ki].type != ES_CFG_CPUSET) return 1;
  int rc = es_cpuset_parse(out, s->text, NULL);
  assert(rc == 0); /* invariant 2 */
  (void)rc;
  return 0;
}

int es_config_is_auto(const es_config_t *cfg, const char *key) {
  int ki = key_or_assert(key);
  if (ki < 0) return 1;
  return effective(cfg, ki, NULL)->is_auto;
}

es_cfg_source_t es_config_source(const es_config_t *cfg, const char *key) {
  int ki = key_or_assert(key);
  if (ki < 0) return ES_CFG_DEFAULT;
  return effective(cfg, ki, NULL)->source;
}

size_t es_config_count(const es_config_t *cfg) {
  (void)cfg;
  return NKEYS;
}

void es_config_item(const es_config_t *cfg, size_t i, es_config_item_t *out) {
  assert(i < NKEYS);
  const es_config_key_t *k = &KEYS[i];
  memset(out, 0, sizeof *out);
  out->key = k;
  snprintf(out->name, sizeof out->name, "%s.%s", k->section, k->name);
  env_name(k, out->env, sizeof out->env);
  int l;
  const slot *s = effective(cfg, (int)i, &l);
  out->value = s->text;
  out->source = s->source;
  describe(s->source, s->origin, out->from, sizeof out->from);
  /* an explicit "auto" above the value deferred to it: say so */
  for (int h = NLAYERS; h-- > l + 1;) {
    const slot *a = &cfg->v[i][h];
    if (!a->set) continue;
    char d[200];
    describe(a->source, a->origin, d, sizeof d);
    size_t len = strlen(out->from);
    snprintf(out->from + len, sizeof out->from - len, " (auto from %s)", d);
    break;
  }
}

int es_config_lookup(const es_config_t *cfg, const char *key, es_config_item_t *out) {
  int ki = find_key(key);
  if (ki < 0) return ES_EINVAL;
  es_config_item(cfg, (size_t)ki, out);
  return 0;
}

/* ---- writing ---------------------------------------------------------------------- */
/* The JSON form (cJSON): {"section.name": {"value", "number", "type",
 * "source", "from", "env", "default", "help"}, ...}. Returns 0, ES_ENOMEM or
 * ES_EIO. */
static int write_json(const es_config_t *cfg, FILE *out) {
  cJSON *root = cJSON_CreateObject();
  es_config_item_t it;
  int ok = root != NULL;
  for (size_t i = 0; ok && i < NKEYS; i++) {
    es_config_item(cfg, i, &it);
    const es_config_key_t *k = it.key;
    cJSON *o = cJSON_AddObjectToObject(root, it.name);
    ok = o && cJSON_AddStringToObject(o, "value", it.value);
    int numeric = k->type == ES_CFG_INT || k->type == ES_CFG_UINT || k->type == ES_CFG_BYTES ||
                  k->type == ES_CFG_DURATION;
    if (ok && numeric && !es_config_is_auto(cfg, it.name))
      ok = cJSON_AddNumberToObject(o, "number", (double)es_config_get_int(cfg, it.name)) != NULL;
    ok = ok && cJSON_AddStringToObject(o, "type", es_config_type_name(k->type)) &&
         cJSON_AddStringToObject(o, "source", es_config_source_name(it.source)) &&
         cJSON_AddStringToObject(o, "from", it.from) && cJSON_AddStringToObject(o, "env", it.env) &&
         cJSON_AddStringToObject(o, "default", k->def) &&
         cJSON_AddStringToObject(o, "help", k->help);
  }
  char *text = ok ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  if (!text) return ES_ENOMEM;
  fputs(text, out);
  fputc('\n', out);
  cJSON_free(text);
  fflush(out);
  return ferror(out) ? ES_EIO : 0;
}

/* "1..1024", "16M..64T", "auto|latency_optimized|...", ... */
static void range_text(const es_config_key_t *k, char *buf, size_t n) {
  char lo[32], hi[32];
  switch (k->type) {
  case ES_CFG_BOOL: snprintf(buf, n, "true|false"); return;
  case ES_CFG_ENUM: snprintf(buf, n, "%s", k->choices); return;
  case ES_CFG_CPUSET: snprintf(buf, n, "CPU list like 0-3,6"); return;
  case ES_CFG_STRING:
    snprintf(buf, n, "%" PRId64 "..%" PRId64 " characters", k->min, k->max);
    return;
  default:
    format_num(k, k->min, lo, sizeof lo);
    format_num(k, k->max, hi, sizeof hi);
    snprintf(buf, n, "%s..%s%s", lo, hi, (k->flags & ES_CFG_ZERO_AUTO) ? " or 0 (auto)" : "");
  }
}

int es_config_write(const es_config_t *cfg, FILE *out, es_cfg_format_t format) {
  es_config_item_t it;
  char range[200];
  if (format == ES_CFG_FORMAT_JSON) return write_json(cfg, out);
  if (format == ES_CFG_FORMAT_INI)
    fputs("; edgeserve configuration: every key's effective value and where it came from\n", out);
  for (size_t i = 0; i < NKEYS; i++) {
    es_config_item(cfg, i, &it);
    const es_config_key_t *k = it.key;
    int first_of_section = i == 0 || strcmp(k->section, KEYS[i - 1].section);
    switch (format) {
    case ES_CFG_FORMAT_INI: {
      if (first_of_section) fprintf(out, "%s[%s]\n", i ? "\n" : "", k->section);
      int w = fprintf(out, "%s = %s", k->name, it.value);
      fprintf(out, "%*s ; %s\n", w < 40 ? 40 - w : 0, "", it.from);
      break;
    }
    case ES_CFG_FORMAT_JSON: break; /* write_json */
    case ES_CFG_FORMAT_HELP:
      range_text(k, range, sizeof range);
      if (first_of_section) fprintf(out, "%s[%s]\n", i ? "\n" : "", k->section);
      fprintf(out, "  %-20s %s, %s; default %s; env %s\n  %-20s %s\n", k->name,
              es_config_type_name(k->type), range, k->def, it.env, "", k->help);
      break;
    }
  }
  fflush(out);
  return ferror(out) ? ES_EIO : 0;
}
