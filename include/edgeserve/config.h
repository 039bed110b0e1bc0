/*
 * config.h - edgeserve's configuration: one schema, five layers, every value
 * knows where it came from.
 *
 * Every setting is a key "section.name" described by one row of a schema
 * table (es_config_keys()): its type, range, default and help text. The same
 * row drives the INI parser, the environment variable name, the flag syntax,
 * the help text and the JSON dump, so a key added to the table is everywhere.
 *
 *   es_config_t *cfg = es_config_new();                  // built-in defaults
 *   es_error_t err;
 *   if (es_config_load_file(cfg, "edgeserve.ini", &err) < 0 ||      // [batching] max_batch = 8
 *       es_config_apply_env(cfg, environ, &err) < 0 ||              //
 * EDGESERVE_BATCHING_MAX_BATCH=8 es_config_set_flag(cfg, "batching.max_batch=8", &err) < 0)  //
 * --set batching.max_batch=8 fprintf(stderr, "%s\n", err.msg);  // "edgeserve.ini:12: [batching]
 * max_batch = 'lots':
 *                                        //  not an integer"
 *   es_plan_t plan;                                       // strategy.h: presets + hardware
 *   es_plan_make(&hw, cfg, &plan, &err);
 *   es_plan_apply(&plan, cfg, &err);                      // fills what nobody configured
 *   int64_t batch = es_config_get_int(cfg, "batching.max_batch");
 *   es_config_write(cfg, stdout, ES_CFG_FORMAT_INI);      // values and where each came from
 *   es_config_free(cfg);
 *
 * Precedence, lowest first: built-in default < strategy preset and hardware
 * plan < INI file < environment (EDGESERVE_<SECTION>_<KEY>) < command-line
 * flag. A value set from a lower layer never replaces one from a higher layer,
 * whatever the order of the calls; within a layer the later call wins. Every
 * key accepts the value "auto": "let the plan decide". An explicit auto
 * overrides the explicit layers below it (EDGESERVE_RUNTIME_INFERENCE_THREADS
 * =auto undoes a file's setting) and the value then comes from the plan
 * layer, or the default. Keys flagged ES_CFG_ZERO_AUTO also read 0 as auto.
 *
 * Errors name the key and where the value came from; loading is all or
 * nothing (a file with one bad line changes nothing). Unknown sections and
 * keys are errors, and so are environment variables EDGESERVE_<SECTION>_*
 * whose SECTION is one of the schema's but whose key is not: a typo never
 * passes silently. Other EDGESERVE_* variables are left alone.
 *
 * Thread-safety: an es_config_t has no lock. Calls that change it (load,
 * apply, set, free) must not run concurrently with any other call on it;
 * the const getters may run concurrently with each other.
 */
#ifndef EDGESERVE_CONFIG_H
#define EDGESERVE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "edgeserve/affinity.h" /* es_cpuset_t */
#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- sizes and durations ----------------------------------------------------
 * Sizes: a whole number with an optional binary unit, case-insensitive:
 * B, K/KB/KiB (1024), M/MB/MiB, G/GB/GiB, T/TB/TiB ("512M", "1 GiB").
 * Durations: a whole number with a unit: us, ms, s, m/min, h ("5ms", "3 s");
 * a bare 0 is allowed, any other bare number is an error (5 what?). */

/* Parses a size into *out. Returns 0, ES_EINVAL (not a size) or ES_ERANGE
 * (more than 2^64-1 bytes). */
int es_config_parse_bytes(const char *text, uint64_t *out);

/* Writes a size with the largest unit that divides it exactly ("512M",
 * "1536K", "1000", "0"); the text parses back to the same value. Returns the
 * length the full text needs, like snprintf. */
size_t es_config_format_bytes(uint64_t bytes, char *buf, size_t n);

/* Parses a duration into *out_us (microseconds). Returns 0, ES_EINVAL (not a
 * duration: no unit, a sign, a fraction) or ES_ERANGE (more than 2^63-1 us). */
int es_config_parse_duration(const char *text, int64_t *out_us);

/* Writes a duration with the largest unit that divides it exactly ("5ms",
 * "3s", "250us", "0"); parses back to the same value. Returns the length the
 * full text needs. */
size_t es_config_format_duration(int64_t us, char *buf, size_t n);

/* ---- the schema ---------------------------------------------------------- */
typedef enum es_cfg_type {
  ES_CFG_INT,      /* signed decimal */
  ES_CFG_UINT,     /* unsigned decimal */
  ES_CFG_BYTES,    /* size with unit; read as bytes */
  ES_CFG_DURATION, /* duration with unit; read as microseconds */
  ES_CFG_BOOL,     /* true/false, yes/no, on/off, 1/0; read as 1/0 */
  ES_CFG_ENUM,     /* one of `choices`; read as its index */
  ES_CFG_CPUSET,   /* CPU list; read with es_config_get_cpuset */
  ES_CFG_STRING,   /* any text; min/max bound its length */
} es_cfg_type_t;

/* The layers, lowest precedence first. PRESET and HARDWARE are one layer
 * (what the plan decided; strategy.h), told apart for display. */
typedef enum es_cfg_source {
  ES_CFG_DEFAULT = 0,
  ES_CFG_PRESET = 1,
  ES_CFG_HARDWARE = 2,
  ES_CFG_FILE = 3,
  ES_CFG_ENV = 4,
  ES_CFG_FLAG = 5,
} es_cfg_source_t;

/* es_config_key_t.flags */
enum {
  ES_CFG_ZERO_AUTO = 1u << 0, /* 0 means "auto" (thread counts, memory.budget) */
};

/* One row of the schema. */
typedef struct es_config_key {
  const char *section; /* "batching" */
  const char *name;    /* "max_batch" */
  es_cfg_type_t type;
  int64_t min, max;    /* numeric bounds (bytes; duration in us); string: length */
  const char *def;     /* the built-in default, as text ("auto" = none) */
  const char *choices; /* ES_CFG_ENUM: "a|b|c", index 0 first; else NULL */
  unsigned flags;      /* ES_CFG_* flags */
  const char *help;    /* one line */
} es_config_key_t;

/* The schema: *n rows, in display order. Static; never freed. */
const es_config_key_t *es_config_keys(size_t *n);

/* Name of a type ("uint", "bytes", ...) and of a source kind ("default",
 * "preset", "hardware", "file", "env", "flag"). Static strings. */
const char *es_config_type_name(es_cfg_type_t type);
const char *es_config_source_name(es_cfg_source_t source);

/* ---- a configuration --------------------------------------------------- */
typedef struct es_config es_config_t;

/* A new configuration holding the built-in defaults, or NULL when out of
 * memory. Free with es_config_free. */
es_config_t *es_config_new(void);

/* Frees cfg and every string it handed out; NULL is a no-op. */
void es_config_free(es_config_t *cfg);

/* Reads an INI file (inih; ';' and '#' comments; at most 198 characters a
 * line; at most 1 MiB) into the FILE layer. Returns 0, or a negative code with
 * *err naming the file, line, key and problem; on failure cfg is unchanged.
 * ES_EIO: the file cannot be read; ES_EFORMAT: not INI (a line that is not
 * "[section]" or "key = value", a line too long, a NUL byte); ES_EINVAL:
 * unknown section or key, a key outside any section, a key given twice in the
 * file, a bad value; ES_ERANGE: a value out of range; ES_ENOMEM. err->offset
 * is the byte offset of the offending line's start, or -1. */
int es_config_load_file(es_config_t *cfg, const char *path, es_error_t *err);

/* es_config_load_file on text in memory; `name` (e.g. "edgeserve.ini")
 * stands for the path in sources and messages. */
int es_config_load_string(es_config_t *cfg, const char *text, const char *name, es_error_t *err);

/* Applies the environment `envp` ("NAME=VALUE" strings, NULL-terminated, as
 * main()'s third argument or POSIX `environ`; NULL = none) to the ENV layer:
 * EDGESERVE_<SECTION>_<KEY> with SECTION and KEY upper case
 * (EDGESERVE_BATCHING_MAX_BATCH). A variable EDGESERVE_<SECTION>_* for a
 * known SECTION but an unknown key is an error (ES_EINVAL); a bad value is
 * ES_EINVAL or ES_ERANGE naming the variable. All or nothing. Never reads the
 * process environment itself. */
int es_config_apply_env(es_config_t *cfg, char *const *envp, es_error_t *err);

/* Sets key ("section.name") to value text at layer `source` (not
 * ES_CFG_DEFAULT: ES_EINVAL). `origin` (may be NULL) says where exactly:
 * "edgeserve.ini:12" for FILE, the variable name for ENV, the flag for FLAG
 * ("--threads"), the strategy name for PRESET; it is copied. Each layer keeps
 * its own value: one set beneath a higher layer's is kept, and shows when
 * the higher one is removed from view (a plan value beneath an explicit
 * "auto"). Returns
 * 0, ES_EINVAL (unknown key, bad value) or ES_ERANGE (out of range) with
 * *err naming the key and origin, or ES_ENOMEM; on failure nothing changed. */
int es_config_set(es_config_t *cfg, const char *key, const char *value, es_cfg_source_t source,
                  const char *origin, es_error_t *err);

/* A command-line assignment "section.name=value" into the FLAG layer (the
 * CLI's `--set`/`-c` argument). Errors as es_config_set, plus ES_EINVAL when
 * the text has no '=' or no '.'. */
int es_config_set_flag(es_config_t *cfg, const char *assignment, es_error_t *err);

/* ---- reading values --------------------------------------------------------
 * The getters read the effective value: the highest explicit layer's (flag,
 * env, file), or when that is "auto" or nothing was configured, the plan
 * layer's, else the default. `key` must be in the schema (asserted: a misspelt key in
 * code is a programmer error; without assertions the getters return 0/NULL). */

/* The value as a number: INT/UINT as is, BYTES in bytes, DURATION in
 * microseconds, BOOL 1/0, ENUM the index of the choice; 0 when the value is
 * auto or the key is a CPUSET or STRING. */
int64_t es_config_get_int(const es_config_t *cfg, const char *key);

/* The value as canonical text ("512M", "5ms", "true", "balanced", "0-3",
 * "auto", the string itself). The pointer stays valid until cfg is next
 * changed or freed. */
const char *es_config_get_str(const es_config_t *cfg, const char *key);

/* Fills *out with a CPUSET key's set; returns 1 when the value is auto (*out
 * empty), 0 otherwise. */
int es_config_get_cpuset(const es_config_t *cfg, const char *key, es_cpuset_t *out);

/* 1 when no layer holds a value other than auto for key. */
int es_config_is_auto(const es_config_t *cfg, const char *key);

/* The layer the effective value came from (ES_CFG_DEFAULT for auto). A source
 * >= ES_CFG_FILE means somebody configured the key explicitly. */
es_cfg_source_t es_config_source(const es_config_t *cfg, const char *key);

/* ---- listing ------------------------------------------------------------- */
typedef struct es_config_item {
  const es_config_key_t *key; /* the schema row */
  char name[48];              /* "batching.max_batch" */
  char env[64];               /* "EDGESERVE_BATCHING_MAX_BATCH" */
  const char *value;          /* canonical text of the effective value; valid
                                 until cfg is next changed */
  es_cfg_source_t source;     /* as es_config_source */
  char from[320];             /* "default", "preset balanced", "hardware",
                                 "file edgeserve.ini:12", "env EDGESERVE_X_Y",
                                 "flag"; a value an explicit "auto" deferred to
                                 adds it: "hardware (auto from flag)" */
} es_config_item_t;

/* Number of keys (the schema's row count). */
size_t es_config_count(const es_config_t *cfg);

/* Fills *out for key number i (0 <= i < es_config_count, asserted). */
void es_config_item(const es_config_t *cfg, size_t i, es_config_item_t *out);

/* Fills *out for key "section.name". Returns 0, or ES_EINVAL when there is no
 * such key (*out untouched). */
int es_config_lookup(const es_config_t *cfg, const char *key, es_config_item_t *out);

typedef enum es_cfg_format {
  ES_CFG_FORMAT_INI,  /* effective values as an INI file, each line commented
                         with its source; loads back to the same values */
  ES_CFG_FORMAT_JSON, /* {"section.name": {"value", "number", "type",
                         "source", "from", "env", "default", "help"}, ...} */
  ES_CFG_FORMAT_HELP, /* every key: type, range, default, env name, help */
} es_cfg_format_t;

/* Writes cfg in `format` to out. Returns 0, or ES_EIO when writing failed. */
int es_config_write(const es_config_t *cfg, FILE *out, es_cfg_format_t format);

#ifdef __cplusplus
}
#endif
#endif
