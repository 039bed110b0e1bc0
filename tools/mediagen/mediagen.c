/*
 * mediagen.c - release names for training edgeserve's media classifier, and
 * labels for real release names.
 *
 *   mediagen --series data/media/series.tsv --seed N --per-series K [--with-labels]
 *   mediagen --series data/media/series.tsv --map-titles real-names.tsv
 *
 * Generation writes K names per series, in the order of series.tsv, one a
 * line ("__label__<slug> <name>" with --with-labels). A name is drawn as real
 * ones come about:
 *   1. a family of releases is drawn for the series (Italian scene, Italian
 *      forum uploads, international scene, p2p re-uploads, anime fansubs,
 *      Italian TV recordings, hand-renamed files, subtitle files), weighted by
 *      the series' language and kind (anime, daily soap);
 *   2. a release group of that family is drawn; each group has a house style
 *      (separator, case, episode format, language tag, source, codec and
 *      audio spellings, where its name goes, how often it writes episode
 *      titles and years) derived once from its name, so tokens are correlated
 *      the way one group's releases are, and a group breaks its style now and
 *      then;
 *   3. season, episode, era (an old show in an old release, or remastered),
 *      title (any of the series' titles), episode title, typos, dropped
 *      articles and packs are drawn per name.
 * Every choice comes from one xoshiro256** stream per series, seeded from
 * --seed and the slug, using integer arithmetic only: the output is the same
 * bytes on every platform, and adding a series does not change the others.
 *
 * --map-titles reads TITLE<TAB>FILENAME lines (# lines are comments) and
 * writes "__label__<slug> FILENAME" for each, matching TITLE against every
 * title of series.tsv ignoring case, accents and everything but letters and
 * digits. If any TITLE matches no series, it names each one on stderr, writes
 * nothing and exits 1.
 *
 * Exit status: 0 ok, 1 unmapped titles, 2 bad arguments or input files.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof *(a))

/* ---- errors --------------------------------------------------------------------- */

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("mediagen: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die("out of memory");
  return p;
}

static char *xstrndup(const char *s, size_t n) {
  char *p = xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

/* ---- random numbers ----------------------------------------------------------------- */

typedef struct rng {
  uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3u;
  return h;
}

static void rng_seed(rng_t *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng_t *r) { /* xoshiro256** */
  uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
  return out;
}

/* Uniform in [0, n), n > 0, without modulo bias. */
static uint32_t below(rng_t *r, uint32_t n) {
  uint64_t lim = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = rng_next(r);
  while (x >= lim);
  return (uint32_t)(x % n);
}

static int chance(rng_t *r, unsigned pct) { return below(r, 100) < pct; }

/* Index drawn with the given integer weights (not all zero). */
static size_t pickw(rng_t *r, const unsigned *w, size_t n) {
  unsigned tot = 0;
  for (size_t i = 0; i < n; i++) tot += w[i];
  unsigned x = below(r, tot);
  for (size_t i = 0; i < n; i++) {
    if (x < w[i]) return i;
    x -= w[i];
  }
  return n - 1;
}

#define PICK(r, list) ((list)[below((r), (uint32_t)NELEM(list))])

/* ---- strings -------------------------------------------------------------------------- */

/* A bounded string builder: text past the capacity is dropped. */
typedef struct sb {
  char s[1024];
  size_t n;
} sb_t;

static void sb_clear(sb_t *b) { b->n = 0, b->s[0] = 0; }

static void sb_putn(sb_t *b, const char *s, size_t n) {
  if (n > sizeof b->s - 1 - b->n) n = sizeof b->s - 1 - b->n;
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
}

static void sb_put(sb_t *b, const char *s) { sb_putn(b, s, strlen(s)); }
static void sb_putc(sb_t *b, char c) { sb_putn(b, &c, 1); }

static void sb_printf(sb_t *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap); /* integers and strings only: no locale effect */
  va_end(ap);
  sb_put(b, tmp);
}

static int is_upper(int c) { return c >= 'A' && c <= 'Z'; }
static int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static int is_alpha(int c) { return is_upper(c) || is_lower(c); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int to_lower(int c) { return is_upper(c) ? c + 32 : c; }
static int to_upper(int c) { return is_lower(c) ? c - 32 : c; }

/* ASCII spellings of the non-ASCII characters in series titles (Latin-1,
 * Latin Extended-A, a few punctuation marks). */
static const struct {
  const char *utf8, *ascii;
} folds[] = {
    {"\xc3\x80", "A"},     {"\xc3\x81", "A"},     {"\xc3\x82", "A"},     {"\xc3\x83", "A"},
    {"\xc3\x84", "A"},     {"\xc3\x85", "A"},     {"\xc3\x86", "AE"},    {"\xc3\x87", "C"},
    {"\xc3\x88", "E"},     {"\xc3\x89", "E"},     {"\xc3\x8a", "E"},     {"\xc3\x8b", "E"},
    {"\xc3\x8c", "I"},     {"\xc3\x8d", "I"},     {"\xc3\x8e", "I"},     {"\xc3\x8f", "I"},
    {"\xc3\x91", "N"},     {"\xc3\x92", "O"},     {"\xc3\x93", "O"},     {"\xc3\x94", "O"},
    {"\xc3\x95", "O"},     {"\xc3\x96", "O"},     {"\xc3\x98", "O"},     {"\xc3\x99", "U"},
    {"\xc3\x9a", "U"},     {"\xc3\x9b", "U"},     {"\xc3\x9c", "U"},     {"\xc3\x9d", "Y"},
    {"\xc3\x9f", "ss"},    {"\xc3\xa0", "a"},     {"\xc3\xa1", "a"},     {"\xc3\xa2", "a"},
    {"\xc3\xa3", "a"},     {"\xc3\xa4", "a"},     {"\xc3\xa5", "a"},     {"\xc3\xa6", "ae"},
    {"\xc3\xa7", "c"},     {"\xc3\xa8", "e"},     {"\xc3\xa9", "e"},     {"\xc3\xaa", "e"},
    {"\xc3\xab", "e"},     {"\xc3\xac", "i"},     {"\xc3\xad", "i"},     {"\xc3\xae", "i"},
    {"\xc3\xaf", "i"},     {"\xc3\xb1", "n"},     {"\xc3\xb2", "o"},     {"\xc3\xb3", "o"},
    {"\xc3\xb4", "o"},     {"\xc3\xb5", "o"},     {"\xc3\xb6", "o"},     {"\xc3\xb8", "o"},
    {"\xc3\xb9", "u"},     {"\xc3\xba", "u"},     {"\xc3\xbb", "u"},     {"\xc3\xbc", "u"},
    {"\xc3\xbd", "y"},     {"\xc3\xbf", "y"},     {"\xc2\xaa", "a"},     {"\xc2\xba", "o"},
    {"\xc4\x9e", "G"},     {"\xc4\x9f", "g"},     {"\xc4\xb0", "I"},     {"\xc4\xb1", "i"},
    {"\xc5\x8c", "O"},     {"\xc5\x8d", "o"},     {"\xc5\x92", "OE"},    {"\xc5\x93", "oe"},
    {"\xc5\x9e", "S"},     {"\xc5\x9f", "s"},     {"\xc5\xaa", "U"},     {"\xc5\xab", "u"},
    {"\xc5\xa0", "S"},     {"\xc5\xa1", "s"},     {"\xc5\xbd", "Z"},     {"\xc5\xbe", "z"},
    {"\xe2\x80\x93", "-"}, {"\xe2\x80\x94", "-"}, {"\xe2\x80\x99", "'"}, {"\xe2\x80\xa6", "..."},
};

/* Writes s with accents folded to ASCII; other non-ASCII bytes are kept. */
static void fold_accents(sb_t *out, const char *s) {
  while (*s) {
    size_t k = 0;
    if ((unsigned char)*s >= 0x80)
      for (; k < NELEM(folds); k++)
        if (!strncmp(s, folds[k].utf8, strlen(folds[k].utf8))) break;
    if ((unsigned char)*s >= 0x80 && k < NELEM(folds)) {
      sb_put(out, folds[k].ascii);
      s += strlen(folds[k].utf8);
    } else {
      sb_putc(out, *s++);
    }
  }
}

/* The matching key of a title: accents folded, ASCII lowered, only letters
 * and digits kept. "L'Amica Geniale" and "l amica geniale" share "lamicageniale". */
static void title_key(sb_t *out, const char *title) {
  sb_t f;
  sb_clear(&f);
  fold_accents(&f, title);
  sb_clear(out);
  for (const char *p = f.s; *p; p++)
    if (is_alpha(*p) || is_digit(*p)) sb_putc(out, (char)to_lower(*p));
}

/* ---- series.tsv -------------------------------------------------------------------------- */

typedef struct series {
  char *slug, *lang;
  int first_year, seasons, eps;
  char **titles, **eptitles;
  int ntitles, neptitles;
  int line;
} series_t;

typedef struct catalog {
  series_t *v;
  int n;
  char **keys; /* title keys, nkeys, with the series index of each */
  int *key_series;
  int nkeys;
} catalog_t;

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die("cannot open %s: check the path", path);
  size_t cap = 1 << 16, n = 0;
  char *buf = xmalloc(cap);
  for (;;) {
    if (n + 1 >= cap) {
      cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb) die("out of memory reading %s", path);
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - 1 - n, f);
    n += got;
    if (got == 0) break;
  }
  if (ferror(f)) die("cannot read %s", path);
  fclose(f);
  buf[n] = 0;
  if (memchr(buf, 0, n)) die("%s holds a NUL byte: it is not a text file", path);
  *len = n;
  return buf;
}

/* Splits s at sep into at most max fields (in place); returns the count. */
static int split(char *s, char sep, char **f, int max) {
  int n = 0;
  for (;;) {
    if (n == max) return max + 1;
    f[n++] = s;
    char *e = strchr(s, sep);
    if (!e) return n;
    *e = 0;
    s = e + 1;
  }
}

static int parse_int(const char *s, int lo, int hi, int *out) {
  if (!*s || strlen(s) > 9) return -1;
  int v = 0;
  for (const char *p = s; *p; p++) {
    if (!is_digit(*p)) return -1;
    v = v * 10 + (*p - '0');
  }
  if (v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

/* Splits a |-separated list into a new array of strings; a NULL return means
 * an empty element or one with spaces around it (line given for messages). */
static char **split_list(const char *path, int line, const char *what, char *s, int *count) {
  int n = 1;
  for (const char *p = s; *p; p++) n += *p == '|';
  char **v = xmalloc(sizeof *v * (size_t)n);
  char *f[4096];
  if (n > 4096) die("%s:%d: too many %s (at most 4096)", path, line, what);
  split(s, '|', f, n);
  for (int i = 0; i < n; i++) {
    size_t l = strlen(f[i]);
    if (!l) die("%s:%d: empty entry in %s: remove the stray '|'", path, line, what);
    if (f[i][0] == ' ' || f[i][l - 1] == ' ')
      die("%s:%d: %s entry \"%s\" has spaces around it", path, line, what, f[i]);
    v[i] = xstrndup(f[i], l);
  }
  *count = n;
  return v;
}

/* The next data row of a NUL-terminated buffer, cut in place: line endings
 * (LF or CRLF) removed, empty and '#' comment lines skipped; *line counts
 * every line read. NULL at the end. */
static char *next_row(char **pp, int *line) {
  char *p = *pp;
  while (*p) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    ++*line;
    size_t l = strlen(p);
    if (l && p[l - 1] == '\r') p[--l] = 0;
    char *row = p;
    p = nl ? nl + 1 : p + l;
    if (l && row[0] != '#') {
      *pp = p;
      return row;
    }
  }
  *pp = p;
  return NULL;
}

static void load_catalog(catalog_t *c, const char *path) {
  size_t len;
  char *buf = read_file(path, &len);
  memset(c, 0, sizeof *c);
  int cap = 0, kcap = 0, line = 0;
  char *p = buf;
  char *row;
  while ((row = next_row(&p, &line))) {
    char *f[8] = {0};
    int nf = split(row, '\t', f, 7);
    if (nf < 6 || nf > 7)
      die("%s:%d: expected 6 or 7 tab-separated columns (slug language first_year seasons "
          "episodes_per_season titles [episode_titles]), found %s%d",
          path, line, nf > 7 ? "more than " : "", nf > 7 ? 7 : nf);
    series_t s = {0};
    s.line = line;
    if (!*f[0] || strlen(f[0]) > 64) die("%s:%d: slug must be 1-64 characters", path, line);
    for (const char *q = f[0]; *q; q++)
      if (!(is_lower(*q) || is_digit(*q) || *q == '_'))
        die("%s:%d: slug \"%s\" may hold only a-z, 0-9 and _", path, line, f[0]);
    size_t ll = strlen(f[1]);
    if (ll < 2 || ll > 3 || !is_lower(f[1][0]) || !is_lower(f[1][1]) ||
        (ll == 3 && !is_lower(f[1][2])))
      die("%s:%d: language \"%s\" must be a 2- or 3-letter lowercase code (it, en, ...)", path,
          line, f[1]);
    if (parse_int(f[2], 1900, 2100, &s.first_year))
      die("%s:%d: first_year \"%s\" must be a year from 1900 to 2100", path, line, f[2]);
    if (parse_int(f[3], 1, 99, &s.seasons))
      die("%s:%d: seasons \"%s\" must be a number from 1 to 99", path, line, f[3]);
    if (parse_int(f[4], 1, 999, &s.eps))
      die("%s:%d: episodes_per_season \"%s\" must be a number from 1 to 999", path, line, f[4]);
    for (int i = 0; i < c->n; i++)
      if (!strcmp(c->v[i].slug, f[0]))
        die("%s:%d: slug \"%s\" already used on line %d", path, line, f[0], c->v[i].line);
    s.slug = xstrndup(f[0], strlen(f[0]));
    s.lang = xstrndup(f[1], ll);
    if (!*f[5]) die("%s:%d: no titles: give at least the canonical title", path, line);
    s.titles = split_list(path, line, "titles", f[5], &s.ntitles);
    if (nf == 7 && *f[6]) s.eptitles = split_list(path, line, "episode_titles", f[6], &s.neptitles);
    for (int t = 0; t < s.ntitles; t++) {
      sb_t k;
      title_key(&k, s.titles[t]);
      if (!k.n) die("%s:%d: title \"%s\" has no letters or digits", path, line, s.titles[t]);
      int dup = 0;
      for (int i = 0; i < c->nkeys; i++) {
        if (strcmp(c->keys[i], k.s)) continue;
        if (c->key_series[i] != c->n)
          die("%s:%d: title \"%s\" of %s is also a title of %s (line %d): a title must name one "
              "series",
              path, line, s.titles[t], s.slug, c->v[c->key_series[i]].slug,
              c->v[c->key_series[i]].line);
        dup = 1;
      }
      if (dup) continue;
      if (c->nkeys == kcap) {
        kcap = kcap ? kcap * 2 : 256;
        c->keys = realloc(c->keys, sizeof *c->keys * (size_t)kcap);
        c->key_series = realloc(c->key_series, sizeof *c->key_series * (size_t)kcap);
        if (!c->keys || !c->key_series) die("out of memory");
      }
      c->keys[c->nkeys] = xstrndup(k.s, k.n);
      c->key_series[c->nkeys++] = c->n;
    }
    if (c->n == cap) {
      cap = cap ? cap * 2 : 256;
      c->v = realloc(c->v, sizeof *c->v * (size_t)cap);
      if (!c->v) die("out of memory");
    }
    c->v[c->n++] = s;
  }
  if (!c->n) die("%s: no series (every line is empty or a comment)", path);
  free(buf);
}

static void free_catalog(catalog_t *c) {
  for (int i = 0; i < c->n; i++) {
    series_t *s = &c->v[i];
    for (int t = 0; t < s->ntitles; t++) free(s->titles[t]);
    for (int t = 0; t < s->neptitles; t++) free(s->eptitles[t]);
    free(s->titles), free(s->eptitles), free(s->slug), free(s->lang);
  }
  for (int i = 0; i < c->nkeys; i++) free(c->keys[i]);
  free(c->keys), free(c->key_series), free(c->v);
}

/* ---- release families and groups ---------------------------------------------------------- */

enum { F_IT_SCENE, F_IT_UPLOAD, F_EN_SCENE, F_P2P, F_FANSUB, F_TV, F_HAND, F_SUBS, NFAM };

/* Real names of release groups, uploaders, fansubbers and subtitle teams, by
 * the family whose naming they use. Hand-renamed files and TV recordings have
 * no group: their entries name house styles of people. */
static const char *const it_scene_groups[] = {
    "MIRCrew", "iDN_CreW", "DarkSideMux", "NovaRip", "MeM.GP", "UBi",      "CiNEFiLE",
    "PSYCHO",  "SiNNERS",  "iGM",         "KSi",     "FoV",    "Mux-Crew", "TrTd_TeaM",
    "LLS",     "CrE",      "BlackBit",    "WMS",     "T7T",    "G66",      "ZMachine",
};
static const char *const it_upload_groups[] = {
    "Pir8",      "Morpheus", "TheBlackKing", "robbyrs",   "Marty",   "Nahom",
    "Hyde",      "Freddy",   "Bradipo",      "icv",       "Vicky",   "TNT Village",
    "lorenzo88", "Tex",      "LoneWolf",     "Sbirulino", "ilGatto", "Marco74",
};
static const char *const en_scene_groups[] = {
    "LOL",    "DIMENSION", "KILLERS", "FLEET",  "EVOLVE",     "2HD",     "ASAP",   "IMMERSE",
    "AFG",    "SVA",       "AVS",     "BATV",   "FQM",        "XOR",     "NoTV",   "TLA",
    "ORENJi", "RiVER",     "DEFLATE", "DEMAND", "REWARD",     "ROVERS",  "CtrlHD", "DON",
    "NTb",    "FLUX",      "CAKES",   "KiNGS",  "ION10",      "EDITH",   "GLHF",   "TEPES",
    "SMURF",  "playWEB",   "NOGRP",   "HONE",   "ELiTE",      "MEMENTO", "BAE",    "TOMMY",
    "NTG",    "SiGMA",     "SYNCOPY", "MiNX",   "SHORTBREHD", "BiA",     "TOPAZ",  "SAiNTS",
};
static const char *const p2p_groups[] = {
    "MeGusta", "PSA",  "Pahe",  "Silence", "Joy",      "QxR",    "Tigole",  "GalaxyTV",
    "ION265",  "x0r",  "mSD",   "RMTeam",  "ShAaNiG",  "d3g",    "Vyndros", "BONE",
    "TGx",     "EZTV", "RARBG", "ettv",    "GalaxyRG", "HETeam", "SARTRE",  "YAWNiX",
};
static const char *const fansub_groups[] = {
    "SubsPlease", "Erai-raws", "HorribleSubs", "Judas",      "EMBER",      "ASW",   "Golumpa",
    "Commie",     "GJM",       "Yamato",       "AnimeWorld", "AnimeUnity", "Dynit", "Crunchyroll",
};
static const char *const tv_people[] = {"rec1", "rec2", "rec3", "rec4", "rec5",
                                        "rec6", "rec7", "rec8", "rec9", "rec10"};
static const char *const hand_people[] = {"hand1",  "hand2",  "hand3",  "hand4", "hand5",
                                          "hand6",  "hand7",  "hand8",  "hand9", "hand10",
                                          "hand11", "hand12", "hand13", "hand14"};
static const char *const subs_teams[] = {"itasa",       "Subsfactory", "Subspedia",
                                         "ItalianSubs", "Addic7ed",    "OpenSubtitles"};

static const struct {
  const char *const *names;
  size_t n;
} fam_groups[NFAM] = {
    {it_scene_groups, NELEM(it_scene_groups)}, {it_upload_groups, NELEM(it_upload_groups)},
    {en_scene_groups, NELEM(en_scene_groups)}, {p2p_groups, NELEM(p2p_groups)},
    {fansub_groups, NELEM(fansub_groups)},     {tv_people, NELEM(tv_people)},
    {hand_people, NELEM(hand_people)},         {subs_teams, NELEM(subs_teams)},
};

/* A house style. Fields are indexes into the spelling tables below. */
typedef struct style {
  const char *name;
  int fam;
  char sep;      /* '.', ' ' or '_' between words */
  int tcase;     /* title: 0 as written, 1 Title Case, 2 lower, 3 UPPER */
  int all_lower; /* the whole name lowercased (old scene, some people) */
  int apos;      /* apostrophes: 0 kept, 1 as separators, 2 removed */
  int keep_accents;
  int keep_punct; /* ':' '!' ',' kept in space-separated titles */
  int epfmt, epfmt2;
  int lang_it, lang_dual, lang_sub;
  int src_web, src_old, vcodec, hevc_pct, audio;
  int res, service_pct;
  int gplace; /* how the group name is attached */
  int layout; /* family-specific template */
  int eptitle_pct, year_pct, extra_pct, pack_pct;
  int ext; /* preferred extension set */
} style_t;

/* Episode formats. */
enum {
  EP_SXXEXX,   /* S01E02 */
  EP_sxxexx,   /* s01e02 */
  EP_NXNN,     /* 1x02 */
  EP_NNXNN,    /* 01x02 */
  EP_NXN,      /* 1x2 */
  EP_SNEN,     /* S1E2 / s1e2 */
  EP_S_E,      /* S01 E02 */
  EP_STAGIONE, /* Stagione 1 Episodio 2 */
  EP_ST_EP,    /* Stagione 1 Ep 02 */
  EP_EP,       /* Ep 02 (no season) */
  EP_EPISODIO, /* Episodio 2 (no season) */
  EP_SEASON,   /* Season 1 Episode 2 */
  EP_ABS,      /* 102: absolute number */
  EP_PUNTATA,  /* Puntata 123 */
  EP_NNN,      /* 305: old scene season+episode */
  EP_N_NN,     /* 1 - 02, hand made */
  EP_N_EP_N,   /* 2 ep 5, hand made */
  NEPFMT
};

static const char *const lang_it_tags[] = {"ITA", "iTALiAN", "iTA",     "ITALIAN",
                                           "Ita", "ita",     "ITA AC3", "Italian"};
/* dual audio: %s is the original language code */
static const char *const lang_dual_tags[] = {"ITA %s",     "ITA-%s", "iTALiAN %s", "Ita %s",
                                             "ITA %s AC3", "%s ITA", "MULTi",      "ITA.%s"};
static const char *const lang_sub_tags[] = {"SUB ITA",        "Sub Ita",    "SUBITA",  "%s SUB ITA",
                                            "iTALiAN SUBBED", "%s Sub Ita", "sub ita", "SUB-ITA"};
static const char *const src_web_tags[] = {"WEB-DL",    "WEBDL", "WEBRip",    "WEBMux",  "DLMux",
                                           "WEB-DLMux", "WEB",   "WEB-DLRip", "WEBDLMux"};
static const char *const src_old_tags[] = {"DVDRip", "DVDMux", "SATRip", "HDTV",
                                           "TVRip",  "DVBRip", "PDTV",   "DTTRip"};
static const char *const src_bd_tags[] = {"BluRay", "BDRip",   "BDMux",
                                          "BRRip",  "Blu-Ray", "BDRemux"};
static const char *const vcodec_tags[][2] = {
    {"x264", "x265"}, {"H264", "H265"},       {"H.264", "H.265"}, {"h264", "HEVC"},
    {"AVC", "HEVC"},  {"x264", "x265 10bit"}, {"H 264", "H 265"}};
static const char *const audio_tags[] = {"AC3",     "AAC", "DD5.1",  "DDP5.1", "EAC3", "E-AC3",
                                         "AC3 5.1", "DTS", "AAC2.0", "DD+5.1", "MP3",  ""};
static const char *const res_tags[] = {"1080p", "720p", "2160p", "1080i", "576p", "480p", ""};
static const char *const services[] = {"AMZN", "NF",   "DSNP", "ATVP", "HMAX", "MAX",
                                       "NOW",  "PCOK", "PMTP", "HULU", "iP",   "SKY"};
static const char *const it_services[] = {"NF",      "AMZN", "DSNP",      "NOW", "RAI",
                                          "RaiPlay", "iNF",  "TIMVISION", "SKY", "ATVP"};
/* release words; the first 7 belong to any era, the rest to recent releases */
static const char *const extras[] = {"PROPER", "REPACK", "iNTERNAL", "REAL", "READNFO", "UNCUT",
                                     "DUBBED", "10bit",  "HDR",      "DV",   "Atmos",   "HDR10"};
static const char *const channels[] = {"Rai1",
                                       "Rai 1",
                                       "Rai2",
                                       "Rai3",
                                       "Rai 3",
                                       "Canale 5",
                                       "Canale5",
                                       "Italia 1",
                                       "Italia1",
                                       "Rete 4",
                                       "La7",
                                       "Rai 4",
                                       "Sky Atlantic",
                                       "Sky Serie",
                                       "TV8",
                                       "Nove",
                                       "Cielo",
                                       "RaiPlay",
                                       "Mediaset Infinity",
                                       "Real Time",
                                       "Paramount Network",
                                       "Rai Premium"};
static const char *const encoders[] = {"Silence", "Joy",   "Tigole", "Vyndros",
                                       "t3nzin",  "Panda", "r00t",   "FreetheFish"};
static const char *const site_prefixes[] = {"www.Torrenting.com - ", "[ www.Speed.cd ] - ",
                                            "www.UIndex.org    -    ", "[ TorrentCouch.com ].",
                                            "www.SceneTime.com - "};
static const char *const site_tags[] = {"[eztv]", "[TGx]",     "[rarbg]", "[EZTVx.to]",
                                        "[ettv]", "[eztv.re]", "[QxR]",   "[TGx]"};
static const char *const mesi[] = {"gennaio",   "febbraio", "marzo",    "aprile",
                                   "maggio",    "giugno",   "luglio",   "agosto",
                                   "settembre", "ottobre",  "novembre", "dicembre"};

/* Original-language code as Italian releases write it. */
static const char *lang_code(const char *lang) {
  static const struct {
    const char *lang, *code;
  } m[] = {{"en", "ENG"}, {"es", "SPA"}, {"de", "GER"}, {"fr", "FRE"}, {"ja", "JAP"},
           {"ko", "KOR"}, {"no", "NOR"}, {"tr", "TUR"}, {"la", "LAT"}, {"it", "ITA"}};
  for (size_t i = 0; i < NELEM(m); i++)
    if (!strcmp(m[i].lang, lang)) return m[i].code;
  return "ENG";
}

/* Draws the house style of group `name` of family `fam`; the same name gives
 * the same style whatever the seed. */
static style_t make_style(const char *name, int fam) {
  rng_t r;
  rng_seed(&r, fnv1a(name) ^ 0x6d656469616765ull);
  style_t st = {0};
  st.name = name;
  st.fam = fam;
  st.sep = '.';
  st.tcase = 1;
  st.apos = 1 + (int)below(&r, 2);
  st.lang_it = (int)below(&r, 6);
  st.lang_dual = (int)below(&r, NELEM(lang_dual_tags));
  st.lang_sub = (int)below(&r, NELEM(lang_sub_tags));
  st.src_web = (int)below(&r, NELEM(src_web_tags));
  st.src_old = (int)below(&r, NELEM(src_old_tags));
  st.vcodec = (int)below(&r, NELEM(vcodec_tags));
  st.hevc_pct = (int)PICK(&r, ((const int[]){0, 10, 30, 60, 90}));
  st.audio = (int)below(&r, NELEM(audio_tags));
  st.res = (int)PICK(&r, ((const int[]){0, 0, 0, 1, 1, 2, 6}));
  st.service_pct = (int)PICK(&r, ((const int[]){0, 30, 60, 90}));
  st.eptitle_pct = (int)PICK(&r, ((const int[]){0, 0, 30, 60, 90}));
  st.year_pct = (int)PICK(&r, ((const int[]){0, 0, 5, 15, 40}));
  st.extra_pct = (int)PICK(&r, ((const int[]){0, 5, 10, 20}));
  st.pack_pct = (int)PICK(&r, ((const int[]){3, 6, 10}));
  st.layout = (int)below(&r, 6);
  st.epfmt = EP_SXXEXX;
  st.epfmt2 = EP_SXXEXX;
  switch (fam) {
  case F_IT_SCENE:
    st.sep = PICK(&r, ((const char[]){'.', '.', '.', '.', '.', '.', ' ', '_'}));
    st.tcase = (int)PICK(&r, ((const int[]){1, 1, 1, 0, 0, 3}));
    st.epfmt = (int)PICK(&r, ((const int[]){EP_SXXEXX, EP_SXXEXX, EP_SXXEXX, EP_NXNN, EP_sxxexx}));
    st.epfmt2 = (int)PICK(&r, ((const int[]){EP_SXXEXX, EP_NXNN, EP_NNXNN}));
    st.gplace = (int)PICK(&r, ((const int[]){0, 0, 0, 0, 1, 2, 3}));
    st.audio = (int)PICK(&r, ((const int[]){0, 0, 1, 2, 3, 4, 6, 11}));
    break;
  case F_IT_UPLOAD:
    st.sep = ' ';
    st.tcase = (int)PICK(&r, ((const int[]){0, 0, 0, 1, 1, 3}));
    st.apos = (int)PICK(&r, ((const int[]){0, 0, 0, 1}));
    st.keep_accents = chance(&r, 50);
    st.keep_punct = chance(&r, 60);
    st.epfmt = (int)PICK(&r, ((const int[]){EP_SXXEXX, EP_SXXEXX, EP_NXNN, EP_NXNN, EP_NNXNN,
                                            EP_STAGIONE, EP_S_E, EP_NXN, EP_ST_EP}));
    st.epfmt2 = (int)PICK(&r, ((const int[]){EP_SXXEXX, EP_NXNN, EP_EP, EP_EPISODIO}));
    st.gplace = (int)PICK(&r, ((const int[]){4, 4, 4, 5, 6, 7, 0}));
    st.lang_it = (int)below(&r, NELEM(lang_it_tags));
    break;
  case F_EN_SCENE:
    st.all_lower = chance(&r, 25);
    st.tcase = (int)PICK(&r, ((const int[]){1, 1, 1, 0}));
    st.epfmt = st.all_lower ? EP_sxxexx : EP_SXXEXX;
    st.epfmt2 = (int)PICK(&r, ((const int[]){EP_SXXEXX, EP_NNN, EP_NXNN}));
    st.audio = (int)PICK(&r, ((const int[]){11, 11, 2, 3, 3, 4, 6, 9}));
    st.gplace = 0;
    break;
  case F_P2P:
    st.sep = PICK(&r, ((const char[]){'.', ' ', ' '}));
    st.tcase = (int)PICK(&r, ((const int[]){1, 1, 0}));
    st.gplace = (int)PICK(&r, ((const int[]){0, 0, 8, 9}));
    break;
  case F_FANSUB:
    st.sep = ' ';
    st.tcase = 0;
    st.keep_punct = chance(&r, 70);
    st.apos = 0;
    break;
  case F_TV:
    st.sep = ' ';
    st.tcase = (int)PICK(&r, ((const int[]){0, 0, 1, 2}));
    st.keep_accents = chance(&r, 70);
    st.keep_punct = chance(&r, 50);
    st.apos = 0;
    break;
  case F_HAND:
    st.sep = PICK(&r, ((const char[]){' ', ' ', ' ', ' ', '.', '_'}));
    st.tcase = (int)PICK(&r, ((const int[]){0, 0, 2, 2, 2, 1, 3}));
    st.keep_accents = chance(&r, 40);
    st.keep_punct = chance(&r, 30);
    st.apos = (int)PICK(&r, ((const int[]){0, 0, 1, 2}));
    st.epfmt = (int)PICK(&r, ((const int[]){EP_NXN, EP_NXN, EP_NXNN, EP_SNEN, EP_SXXEXX, EP_sxxexx,
                                            EP_N_NN, EP_N_EP_N, EP_STAGIONE, EP_EP, EP_ABS}));
    st.epfmt2 = (int)PICK(&r, ((const int[]){EP_NXN, EP_NXNN, EP_SXXEXX}));
    break;
  case F_SUBS:
    st.sep = PICK(&r, ((const char[]){'.', '.', ' '}));
    st.all_lower = chance(&r, 40);
    st.epfmt = (int)PICK(&r, ((const int[]){EP_SXXEXX, EP_sxxexx, EP_NXNN}));
    break;
  }
  return st;
}

typedef struct groups {
  style_t *v[NFAM];
} groups_t;

static void make_groups(groups_t *g) {
  for (int f = 0; f < NFAM; f++) {
    g->v[f] = xmalloc(sizeof *g->v[f] * fam_groups[f].n);
    for (size_t i = 0; i < fam_groups[f].n; i++) g->v[f][i] = make_style(fam_groups[f].names[i], f);
  }
}

/* ---- one release name ---------------------------------------------------------------------- */

typedef struct draw {
  const series_t *s;
  const style_t *st;
  rng_t *r;
  int season, ep, ep2, absno, year, air_year, old, pack, pack_to;
  const char *title, *eptitle;
} draw_t;

static int is_abbrev(const char *t) {
  int up = 0;
  size_t n = strlen(t);
  if (n > 5) return 0;
  for (const char *p = t; *p; p++) {
    if (*p == ' ') return 0;
    up += is_upper(*p);
  }
  return up >= 2;
}

/* Appends word w to b with the style's case applied. */
static void put_cased(sb_t *b, const char *w, size_t n, int tcase) {
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)w[i];
    if (tcase == 1 && i == 0)
      c = to_upper(c);
    else if (tcase == 2)
      c = to_lower(c);
    else if (tcase == 3)
      c = to_upper(c);
    sb_putc(b, (char)c);
  }
}

static const char *const articles[] = {"The ", "Il ", "La ", "Lo ", "I ",
                                       "Gli ", "Le ", "L'",  "Un ", "A "};

/* Renders a title or an episode title as words joined by the style's
 * separator, with the style's treatment of accents, apostrophes,
 * punctuation and case, and now and then a typo or a dropped article. */
static void render_words(sb_t *out, draw_t *d, const char *text, int is_title) {
  const style_t *st = d->st;
  rng_t *r = d->r;
  sb_t a, w;
  sb_clear(&a);
  if (st->keep_accents && st->sep == ' ')
    sb_put(&a, text);
  else
    fold_accents(&a, text);

  /* article dropped: "Trono di Spade", "Office US" */
  const char *t = a.s;
  if (is_title && chance(r, 6))
    for (size_t i = 0; i < NELEM(articles); i++) {
      size_t l = strlen(articles[i]);
      if (!strncmp(t, articles[i], l) && strlen(t) > l + 3) {
        t += l;
        break;
      }
    }

  /* words: split on spaces; punctuation handled per style */
  int space = st->sep == ' ';
  int tcase = st->all_lower ? 2 : st->tcase;
  int typo = is_title && chance(r, 4) ? (int)below(r, 4) + 1 : 0;
  int nwords = 0;
  sb_clear(&w);
  for (const char *p = t;; p++) {
    int c = (unsigned char)*p;
    int boundary = !c || c == ' ' || c == '/';
    if (!boundary) {
      if (c == '\'') {
        if (st->apos == 0) sb_putc(&w, '\'');
        if (st->apos != 1) continue;
        boundary = 1; /* L'amica -> L.Amica */
      } else if (c == '&') {
        sb_put(&w, space && chance(r, 60) ? "&" : "and");
        continue;
      } else if (strchr(":!?,;.()\"", c)) {
        if (space && st->keep_punct) sb_putc(&w, (char)c);
        continue;
      } else if (c == '-' && w.n == 0 && (p[1] == ' ' || !p[1])) {
        if (space) sb_putc(&w, '-'); /* "Gomorra - La serie"; dropped between dots */
        continue;
      } else {
        sb_putc(&w, (char)c);
        continue;
      }
    }
    if (w.n) {
      /* typos hit one long word: swap, drop, double a letter, or glue to the next */
      if (typo && w.n >= 5 && typo != 4) {
        size_t i = 1 + below(r, (uint32_t)w.n - 3);
        if (is_alpha(w.s[i]) && is_alpha(w.s[i + 1])) {
          if (typo == 1) {
            char x = w.s[i];
            w.s[i] = w.s[i + 1], w.s[i + 1] = x;
          } else if (typo == 2) {
            memmove(w.s + i, w.s + i + 1, w.n - i), w.n--;
          } else if (w.n + 1 < sizeof w.s) {
            memmove(w.s + i + 1, w.s + i, w.n - i + 1), w.n++;
          }
          typo = 0;
        }
      }
      int glue = typo == 4 && nwords > 0;
      if (glue) typo = 0;
      if (nwords && !glue) sb_putc(out, st->sep);
      put_cased(out, w.s, w.n, glue && tcase == 0 ? 1 : tcase);
      nwords++;
      sb_clear(&w);
    }
    if (!c) break;
  }
}

/* Appends the episode marker in format f. */
static void render_ep(sb_t *b, draw_t *d, int f) {
  const style_t *st = d->st;
  char sep = st->sep;
  int s = d->season, e = d->ep;
  switch (f) {
  case EP_SXXEXX: sb_printf(b, "S%02dE%02d", s, e); break;
  case EP_sxxexx: sb_printf(b, "s%02de%02d", s, e); break;
  case EP_NXNN: sb_printf(b, "%dx%02d", s, e); break;
  case EP_NNXNN: sb_printf(b, "%02dx%02d", s, e); break;
  case EP_NXN: sb_printf(b, "%dx%d", s, e); break;
  case EP_SNEN: sb_printf(b, st->tcase == 2 ? "s%de%d" : "S%dE%d", s, e); break;
  case EP_S_E: sb_printf(b, "S%02d%cE%02d", s, sep, e); break;
  case EP_STAGIONE: sb_printf(b, "Stagione%c%d%cEpisodio%c%d", sep, s, sep, sep, e); break;
  case EP_ST_EP: sb_printf(b, "Stagione%c%d%cEp%c%02d", sep, s, sep, sep, e); break;
  case EP_EP:
    sb_printf(b, "Ep%c%02d", sep == '_' ? '_' : sep == '.' || below(d->r, 2) ? '.' : ' ', e);
    break;
  case EP_EPISODIO: sb_printf(b, "Episodio%c%d", sep, e); break;
  case EP_SEASON: sb_printf(b, "Season%c%d%cEpisode%c%d", sep, s, sep, sep, e); break;
  case EP_ABS: sb_printf(b, d->absno < 100 ? "%02d" : "%d", d->absno); break;
  case EP_PUNTATA: sb_printf(b, "Puntata%c%d", sep, d->absno); break;
  case EP_NNN: sb_printf(b, "%d%02d", s, e); break;
  case EP_N_NN:
    if (sep == ' ')
      sb_printf(b, "%d - %02d", s, e);
    else
      sb_printf(b, "%d%c%02d", s, sep, e);
    break;
  case EP_N_EP_N: sb_printf(b, "%d ep %d", s, e); break;
  }
  if (d->ep2 && (f == EP_SXXEXX || f == EP_sxxexx || f == EP_NXNN)) {
    switch (below(d->r, 4)) {
    case 0: sb_printf(b, f == EP_sxxexx ? "e%02d" : "E%02d", d->ep2); break;
    case 1: sb_printf(b, f == EP_sxxexx ? "-e%02d" : "-E%02d", d->ep2); break;
    default: sb_printf(b, "-%02d", d->ep2); break;
    }
  }
}

/* Appends the season pack marker: S01, S01-S03, Stagione 1, Stagioni 1-3 ... */
static void render_pack(sb_t *b, draw_t *d) {
  const style_t *st = d->st;
  char sep = st->sep;
  int s = d->season, to = d->pack_to;
  int italian = st->fam == F_IT_UPLOAD || (st->fam == F_IT_SCENE && chance(d->r, 20));
  if (italian) {
    if (to > s)
      sb_printf(b, "Stagioni%c%d-%d", sep, s, to);
    else
      sb_printf(b, "Stagione%c%d", sep, s);
    if (chance(d->r, 60)) sb_printf(b, "%c%s", sep, chance(d->r, 50) ? "Completa" : "COMPLETA");
    return;
  }
  if (st->fam == F_P2P && chance(d->r, 50)) {
    if (to > s)
      sb_printf(b, "Season%c%d-%d", sep, s, to);
    else
      sb_printf(b, "Season%c%d", sep, s);
    sb_printf(b, "%cComplete", sep);
    return;
  }
  if (to > s)
    sb_printf(b, "S%02d-S%02d", s, to);
  else
    sb_printf(b, "S%02d", s);
  if (chance(d->r, 50)) sb_printf(b, "%cCOMPLETE", sep);
}

/* Appends a tag, separated; spaces inside tags follow the separator. */
static void tag(sb_t *b, const style_t *st, const char *t) {
  if (!*t) return;
  if (b->n) sb_putc(b, st->sep);
  for (const char *p = t; *p; p++) {
    char c = *p == ' ' ? st->sep : *p;
    if (st->all_lower) c = (char)to_lower(c);
    sb_putc(b, c);
  }
}

static void tagf(sb_t *b, const style_t *st, const char *fmt, const char *arg) {
  char tmp[64];
  snprintf(tmp, sizeof tmp, fmt, arg);
  tag(b, st, tmp);
}

static int is_anime(const series_t *s) { return !strcmp(s->lang, "ja"); }
static int is_daily(const series_t *s) { return s->eps >= 100; }
static int is_it(const series_t *s) { return !strcmp(s->lang, "it"); }

/* Language tag of an Italian release of this series. */
static void lang_tag(sb_t *b, draw_t *d) {
  const style_t *st = d->st;
  rng_t *r = d->r;
  if (is_it(d->s)) {
    if (chance(r, 92)) tag(b, st, lang_it_tags[st->lang_it]);
    return;
  }
  const char *code = lang_code(d->s->lang);
  unsigned w[] = {55, 20, 15, 10}; /* dubbed + original, dubbed only, subbed, none */
  switch (pickw(r, w, 4)) {
  case 0: tagf(b, st, lang_dual_tags[st->lang_dual], code); break;
  case 1: tag(b, st, lang_it_tags[st->lang_it]); break;
  case 2: tagf(b, st, lang_sub_tags[st->lang_sub], code); break;
  default: break;
  }
}

static const char *vcodec(draw_t *d) {
  const style_t *st = d->st;
  if (d->old) return chance(d->r, 70) ? "XviD" : "DivX";
  return vcodec_tags[st->vcodec][chance(d->r, (unsigned)st->hevc_pct) ? 1 : 0];
}

static const char *resolution(draw_t *d) {
  if (d->old) return chance(d->r, 80) ? "" : "576p";
  static const unsigned w[] = {50, 35, 8, 0, 0, 7, 0};
  int i = chance(d->r, 80) ? d->st->res : (int)pickw(d->r, w, NELEM(w));
  if (i == 2 && d->air_year < 2015) i = 0;
  return res_tags[i];
}

static const char *source(draw_t *d) {
  const style_t *st = d->st;
  if (d->old)
    return src_old_tags[chance(d->r, 75) ? st->src_old : (int)below(d->r, NELEM(src_old_tags))];
  if (d->air_year < 2012 && chance(d->r, 50))
    return chance(d->r, 50) ? "HDTV" : src_bd_tags[below(d->r, NELEM(src_bd_tags))];
  if (chance(d->r, 15)) return src_bd_tags[below(d->r, NELEM(src_bd_tags))];
  return src_web_tags[chance(d->r, 80) ? st->src_web : (int)below(d->r, NELEM(src_web_tags))];
}

static void extra(sb_t *b, draw_t *d) {
  if (chance(d->r, (unsigned)d->st->extra_pct))
    tag(b, d->st, extras[below(d->r, d->old ? 7 : (uint32_t)NELEM(extras))]);
}

/* Audio as the group writes it; old releases carry old codecs. */
static const char *audio(draw_t *d) {
  const char *a = audio_tags[d->st->audio];
  if (d->old && *a && strncmp(a, "AC3", 3) && strcmp(a, "MP3"))
    return chance(d->r, 60) ? "AC3" : "MP3";
  return a;
}

static void group_tag(sb_t *b, draw_t *d) {
  const style_t *st = d->st;
  const char *g = st->name;
  switch (st->gplace) {
  case 0: sb_printf(b, "-%s", g); break;
  case 1: sb_printf(b, "_%s", g); break;
  case 2: sb_printf(b, ".%s", g); break;
  case 3: sb_printf(b, " - %s", g); break;
  case 4: sb_printf(b, " by %s", g); break;
  case 5: sb_printf(b, " [%s]", g); break;
  case 6: sb_printf(b, " {by %s}", g); break;
  case 7: sb_printf(b, " (%s)", g); break;
  case 8: sb_printf(b, "-%s %s", g, PICK(d->r, site_tags)); break;
  case 9: sb_printf(b, "-%s%s", g, PICK(d->r, site_tags)); break;
  }
}

static int title_has_year(const char *t) {
  for (const char *p = t; *p; p++)
    if (is_digit(p[0]) && is_digit(p[1]) && is_digit(p[2]) && is_digit(p[3])) return 1;
  return 0;
}

static void title_and_ep(sb_t *b, draw_t *d, int with_year) {
  const style_t *st = d->st;
  render_words(b, d, d->title, 1);
  if (with_year) {
    if (st->sep == ' ' && chance(d->r, 70))
      sb_printf(b, " (%d)", d->year);
    else
      sb_printf(b, "%c%d", st->sep, d->year);
  }
  sb_putc(b, st->sep);
  if (d->pack)
    render_pack(b, d);
  else
    render_ep(b, d, chance(d->r, 85) ? st->epfmt : st->epfmt2);
  if (d->eptitle && !d->pack) {
    sb_putc(b, st->sep);
    render_words(b, d, d->eptitle, 0);
  }
}

static int wants_year(draw_t *d) {
  return !title_has_year(d->title) && chance(d->r, (unsigned)d->st->year_pct);
}

/* Italian scene: Title.S01E02.Ep.Title.ITA.ENG.1080p.NF.WEB-DLMux.DD5.1.x264-GROUP */
static void gen_it_scene(sb_t *b, draw_t *d) {
  const style_t *st = d->st;
  rng_t *r = d->r;
  title_and_ep(b, d, wants_year(d));
  int order = st->layout % 3;
  if (order == 0) lang_tag(b, d);
  extra(b, d);
  tag(b, st, resolution(d));
  if (!d->old && chance(r, (unsigned)st->service_pct))
    tag(b, st, is_it(d->s) && chance(r, 70) ? PICK(r, it_services) : PICK(r, services));
  tag(b, st, source(d));
  if (order == 1) lang_tag(b, d);
  if (order != 2) tag(b, st, audio(d));
  tag(b, st, vcodec(d));
  if (order == 2) {
    lang_tag(b, d);
    tag(b, st, audio(d));
  }
  group_tag(b, d);
}

/* Italian forum uploads: "Title - 1x02 - Ep Title [DLMux 720p - H264 - Ita Aac] by xyz" */
static void gen_it_upload(sb_t *b, draw_t *d) {
  const style_t *st = d->st;
  rng_t *r = d->r;
  render_words(b, d, d->title, 1);
  int dash = st->layout % 2;
  if (wants_year(d)) sb_printf(b, " (%d)", d->year);
  sb_put(b, dash ? " - " : " ");
  if (d->pack)
    render_pack(b, d);
  else
    render_ep(b, d, chance(r, 85) ? st->epfmt : st->epfmt2);
  if (d->eptitle && !d->pack) {
    sb_put(b, dash ? " - " : " ");
    render_words(b, d, d->eptitle, 0);
  }
  sb_t lang;
  sb_clear(&lang);
  style_t sp = *st;
  sp.sep = ' ';
  draw_t dl = *d;
  dl.st = &sp;
  lang_tag(&lang, &dl);
  const char *res = resolution(d), *src = source(d), *vc = vcodec(d), *au = audio(d);
  switch (st->layout % 4) {
  case 0: /* [ITA] [1080p] [WEBDL] [H264] */
    if (lang.n) sb_printf(b, " [%s]", lang.s);
    if (*res) sb_printf(b, " [%s]", res);
    sb_printf(b, " [%s] [%s]", src, vc);
    break;
  case 1: /* [DLMux 720p - H264 - Ita Aac] */
    sb_printf(b, " [%s%s%s - %s - %s%s%s]", src, *res ? " " : "", res, vc, lang.s, *au ? " " : "",
              au);
    break;
  case 2: /* ITA 720p WEBRip H.264 AAC */
    if (lang.n) sb_printf(b, " %s", lang.s);
    if (*res) sb_printf(b, " %s", res);
    sb_printf(b, " %s %s", src, vc);
    if (*au) sb_printf(b, " %s", au);
    break;
  default: /* (ITA ENG) 1080p [WEBDL] */
    if (lang.n) sb_printf(b, " (%s)", lang.s);
    if (*res) sb_printf(b, " %s", res);
    sb_printf(b, " [%s]", src);
    break;
  }
  if (chance(r, 85)) group_tag(b, d);
}

/* International scene: Title.S01E02.Ep.Title.720p.HDTV.x264-GROUP */
static void gen_en_scene(sb_t *b, draw_t *d) {
  const style_t *st = d->st;
  rng_t *r = d->r;
  title_and_ep(b, d, wants_year(d));
  if (!is_it(d->s) && strcmp(d->s->lang, "en") && chance(r, 30)) {
    static const char *const multi[] = {"MULTi", "MULTI", "SUBBED", "DUBBED"};
    tag(b, st, PICK(r, multi));
  }
  extra(b, d);
  if (d->old) {
    tag(b, st, chance(r, 60) ? "HDTV" : "DVDRip");
    tag(b, st, vcodec(d));
  } else if (d->air_year < 2013 && chance(r, 60)) {
    tag(b, st, chance(r, 60) ? "720p" : "");
    tag(b, st, chance(r, 70) ? "HDTV" : src_bd_tags[0]);
    tag(b, st, "x264");
  } else {
    tag(b, st, resolution(d));
    if (chance(r, (unsigned)st->service_pct)) tag(b, st, PICK(r, services));
    tag(b, st,
        chance(r, 70)   ? (chance(r, 50) ? "WEB-DL" : "WEB")
        : chance(r, 60) ? "WEBRip"
                        : "BluRay");
    tag(b, st, audio(d));
    tag(b, st, vcodec(d));
  }
  sb_putc(b, '-');
  for (const char *g = st->name; *g; g++) sb_putc(b, (char)(st->all_lower ? to_lower(*g) : *g));
}

/* p2p re-uploads: "Title S01E02 1080p WEB H264-GROUP [eztv]",
 * "Title (2019) S01E02 (1080p AMZN WEB-DL x265 HEVC 10bit EAC3 5.1 Silence) [QxR]" */
static void gen_p2p(sb_t *b, draw_t *d) {
  const style_t *st = d->st;
  rng_t *r = d->r;
  if (st->layout % 3 == 0 && st->sep == ' ') {
    render_words(b, d, d->title, 1);
    if (title_has_year(d->title))
      sb_putc(b, ' ');
    else
      sb_printf(b, " (%d) ", d->year);
    if (d->pack)
      render_pack(b, d);
    else
      render_ep(b, d, EP_SXXEXX);
    /* one draw per statement: argument evaluation order is unspecified */
    const char *res = resolution(d);
    int web = chance(r, 50);
    const char *src = web ? PICK(r, services) : d->old ? "DVD" : "BluRay";
    const char *au = chance(r, 50) ? "AAC 5.1" : web ? "EAC3 5.1" : "DTS-HD MA 5.1";
    const char *enc = PICK(r, encoders);
    sb_printf(b, " (%s%s%s%s x265 HEVC 10bit %s %s)", res, *res ? " " : "", src,
              web ? " WEB-DL" : "", au, enc);
    sb_put(b, chance(r, 60) ? " [QxR]" : "");
    return;
  }
  if (chance(r, 3)) sb_put(b, PICK(r, site_prefixes));
  title_and_ep(b, d, wants_year(d));
  extra(b, d);
  tag(b, st, resolution(d));
  if (chance(r, (unsigned)st->service_pct)) tag(b, st, PICK(r, services));
  tag(b, st, d->old ? "DVDRip" : chance(r, 60) ? "WEB" : chance(r, 50) ? "WEB-DL" : "WEBRip");
  if (st->sep == ' ' && chance(r, 40)) tag(b, st, "DDP5 1"); /* dots turned to spaces */
  tag(b, st, d->old ? "XviD" : chance(r, 40) ? "H 264" : chance(r, 50) ? "x264" : "h264");
  group_tag(b, d);
}

/* Anime fansubs: "[SubsPlease] Title - 05 (1080p) [ABCD1234]", "[Yamato] Title 05 SUB ITA" */
static void gen_fansub(sb_t *b, draw_t *d) {
  const style_t *st = d->st;
  rng_t *r = d->r;
  static const char *const res[] = {"1080p", "720p", "480p"};
  int italian = st->layout % 2 || !strcmp(st->name, "Yamato") || !strcmp(st->name, "AnimeWorld") ||
                !strcmp(st->name, "AnimeUnity") || !strcmp(st->name, "Dynit");
  if (!italian) {
    sb_printf(b, "[%s] ", st->name);
    render_words(b, d, d->title, 1);
    if (chance(r, 80))
      sb_printf(b, d->absno < 100 ? " - %02d" : " - %d", d->absno);
    else
      sb_printf(b, " - S%02dE%02d", d->season, d->ep);
    if (st->layout % 3 == 0)
      sb_printf(b, " (%s)", PICK(r, res));
    else
      sb_printf(b, " [%s]", PICK(r, res));
    if (chance(r, 30)) sb_put(b, "[HEVC x265 10bit]");
    if (chance(r, 30)) sb_put(b, "[Multiple Subtitle]");
    if (chance(r, 60)) {
      static const char hex[] = "0123456789ABCDEF";
      sb_put(b, " [");
      for (int i = 0; i < 8; i++) sb_putc(b, hex[below(r, 16)]);
      sb_putc(b, ']');
    }
    return;
  }
  if (st->layout % 3 == 1) sb_printf(b, "[%s] ", st->name);
  render_words(b, d, d->title, 1);
  static const char *const ep[] = {" %d", " Ep. %d", " - %d", " Episodio %d", " %03d"};
  sb_printf(b, PICK(r, ep), d->absno);
  static const char *const sub[] = {" SUB ITA", " Sub Ita", " ITA", " [SUB ITA]", " (ITA)"};
  sb_put(b, PICK(r, sub));
  if (chance(r, 50)) sb_printf(b, " %s", PICK(r, res));
  if (st->layout % 3 == 2) sb_printf(b, " [%s]", st->name);
}

/* Italian TV recordings: "Un Posto al Sole - Puntata del 12-03-2024", "Don Matteo 13 - Ep 5 (Rai1
 * HD)" */
static void gen_tv(sb_t *b, draw_t *d) {
  const style_t *st = d->st;
  rng_t *r = d->r;
  render_words(b, d, d->title, 1);
  int day = 1 + (int)below(r, 28), month = 1 + (int)below(r, 12), y = d->air_year;
  switch (is_daily(d->s) ? st->layout % 4 : 4 + st->layout % 3) {
  case 0: sb_printf(b, " - Puntata del %02d-%02d-%04d", day, month, y); break;
  case 1: sb_printf(b, " %d (%04d-%02d-%02d)", d->absno, y, month, day); break;
  case 2: sb_printf(b, " del %d %s %d", day, mesi[month - 1], y); break;
  case 3: sb_printf(b, " %dx%02d (%02d.%02d.%04d)", d->season, d->ep, day, month, y); break;
  case 4: sb_printf(b, " %d - Puntata %d", d->season, d->ep); break;
  case 5: sb_printf(b, " %dx%02d", d->season, d->ep); break;
  default: sb_printf(b, " S%02dE%02d", d->season, d->ep); break;
  }
  if (d->eptitle && chance(r, 50)) {
    sb_put(b, " - ");
    render_words(b, d, d->eptitle, 0);
  }
  static const char *const tails[] = {" (%s HD)", " %s", " [%s]", " - %s", " %s HD 1080i DVB-S2",
                                      " %s HD"};
  const char *tail = PICK(r, tails);
  sb_printf(b, tail, PICK(r, channels));
}

/* Hand-renamed files: "montalbano 2x3", "GoT 8x03", "Dark - S01E05 - Truths" */
static void gen_hand(sb_t *b, draw_t *d) {
  const style_t *st = d->st;
  rng_t *r = d->r;
  render_words(b, d, d->title, 1);
  if (d->eptitle && chance(r, 10)) { /* only the episode title: "montalbano - la gita a tindari" */
    sb_put(b, st->sep == ' ' ? " - " : (char[]){st->sep, 0});
    render_words(b, d, d->eptitle, 0);
    return;
  }
  int dash = st->layout % 3 == 0 && st->sep == ' ';
  sb_put(b, dash ? " - " : (char[]){st->sep, 0});
  render_ep(b, d, chance(r, 80) ? st->epfmt : st->epfmt2);
  if (d->eptitle && chance(r, 40)) {
    sb_put(b, dash ? " - " : (char[]){st->sep, 0});
    render_words(b, d, d->eptitle, 0);
  }
  if (chance(r, 8))
    sb_put(b, chance(r, 50) ? " (1)" : " - Copia");
  else if (chance(r, 8))
    sb_put(b, chance(r, 50) ? " ITA" : " sub ita");
}

static void gen_video(sb_t *b, draw_t *d);

/* Subtitle files: a release name + ".ita", itasa/Subsfactory names, hand names. */
static void gen_subs(sb_t *b, draw_t *d, int *ext) {
  const style_t *st = d->st;
  rng_t *r = d->r;
  static const char *const suffix[] = {".ita", ".it", ".eng", ".en", "", "", ".ITA", ".forced.ita"};
  switch (st->layout % 3) {
  case 0: { /* the subtitles of a release */
    int fam = is_it(d->s) || chance(r, 40) ? F_IT_SCENE : F_EN_SCENE;
    style_t rel =
        make_style(fam == F_IT_SCENE ? PICK(r, it_scene_groups) : PICK(r, en_scene_groups), fam);
    draw_t dr = *d;
    dr.st = &rel;
    gen_video(b, &dr);
    sb_put(b, PICK(r, suffix));
    break;
  }
  case 1: /* team names */
    if (st->all_lower) {
      style_t low = *st;
      low.tcase = 2;
      low.sep = '.';
      draw_t dl = *d;
      dl.st = &low;
      render_words(b, &dl, d->title, 1);
      sb_printf(b, ".s%02de%02d.sub.%s", d->season, d->ep, chance(r, 70) ? "itasa" : "ita");
    } else {
      title_and_ep(b, d, 0);
      sb_printf(b, st->sep == ' ' ? " (%s)" : ".%s", st->name);
    }
    break;
  default: /* hand made */
    title_and_ep(b, d, 0);
    sb_put(b, chance(r, 60) ? " sub ita" : " ITA");
    break;
  }
  *ext = is_anime(d->s) && chance(r, 50) ? 2 : chance(r, 85) ? 0 : 1;
}

static void gen_video(sb_t *b, draw_t *d) {
  switch (d->st->fam) {
  case F_IT_SCENE: gen_it_scene(b, d); break;
  case F_IT_UPLOAD: gen_it_upload(b, d); break;
  case F_EN_SCENE: gen_en_scene(b, d); break;
  case F_P2P: gen_p2p(b, d); break;
  case F_FANSUB: gen_fansub(b, d); break;
  case F_TV: gen_tv(b, d); break;
  default: gen_hand(b, d); break;
  }
}

/* Family weights: Italian series, international, anime, daily soaps. */
static const unsigned fam_weights[4][NFAM] = {
    /*       itscene itup enscene p2p fansub tv hand subs */
    /* it */ {30, 22, 4, 5, 0, 15, 20, 4},
    /* en */ {28, 14, 16, 12, 0, 4, 14, 12},
    /* ja */ {10, 15, 4, 8, 40, 3, 12, 8},
    /* daily */ {14, 18, 2, 2, 0, 36, 24, 4},
};

static void gen_name(sb_t *b, const series_t *s, const groups_t *g, rng_t *r) {
  int kind = is_anime(s) ? 2 : is_daily(s) ? 3 : is_it(s) ? 0 : 1;
  int fam = (int)pickw(r, fam_weights[kind], NFAM);
  const style_t *st = &g->v[fam][below(r, (uint32_t)fam_groups[fam].n)];
  draw_t d = {0};
  d.s = s;
  d.st = st;
  d.r = r;
  /* later seasons of long shows are downloaded as much as early ones */
  d.season = 1 + (int)below(r, (uint32_t)s->seasons);
  d.ep = 1 + (int)below(r, (uint32_t)s->eps);
  d.absno = (d.season - 1) * s->eps + d.ep;
  d.year = s->first_year;
  d.air_year = s->first_year + d.season - 1;
  if (d.air_year > 2025) d.air_year = 2025;
  /* an old show in a release of its time, or remastered later */
  d.old = d.air_year < 2006 && chance(r, 65);
  if ((fam == F_IT_SCENE || fam == F_EN_SCENE) && s->eps > 1 && d.ep < s->eps && chance(r, 4))
    d.ep2 = d.ep + 1;
  if ((fam == F_IT_SCENE || fam == F_IT_UPLOAD || fam == F_P2P) && !is_daily(s) &&
      chance(r, (unsigned)st->pack_pct)) {
    d.pack = 1;
    d.pack_to = d.season;
    if (s->seasons > 1 && chance(r, 35)) {
      d.season = 1;
      d.pack_to = 2 + (int)below(r, (uint32_t)s->seasons - 1);
    }
  }
  /* title: canonical 3, alternatives 2, abbreviations 1 (3 by hand) */
  unsigned w[64];
  int nt = s->ntitles < 64 ? s->ntitles : 64;
  for (int i = 0; i < nt; i++)
    w[i] = i == 0 ? 3 : is_abbrev(s->titles[i]) ? (fam == F_HAND ? 3 : 1) : 2;
  d.title = s->titles[pickw(r, w, (size_t)nt)];
  if (s->neptitles && chance(r, (unsigned)(st->eptitle_pct ? st->eptitle_pct : 15)))
    d.eptitle = s->eptitles[below(r, (uint32_t)s->neptitles)];

  sb_clear(b);
  int ext = 0; /* 0 video/srt, 1 second choice, 2 third */
  if (fam == F_SUBS) {
    gen_subs(b, &d, &ext);
    static const char *const sub_ext[] = {".srt", ".sub", ".ass"};
    sb_put(b, sub_ext[ext]);
    return;
  }
  gen_video(b, &d);
  if (d.pack && chance(r, 85)) return; /* a folder or torrent name */
  static const char *const exts[] = {".mkv", ".mp4", ".avi", ".m4v", ".ts", ".MKV"};
  unsigned ew[6] = {70, 18, 6, 1, 0, 1};
  if (d.old) ew[2] = 80, ew[0] = 15;
  if (fam == F_HAND) ew[0] = 30, ew[1] = 40, ew[2] = 25;
  if (fam == F_TV) ew[4] = 45, ew[1] = 40, ew[0] = 15;
  if (fam == F_FANSUB && !strchr(b->s, '[')) ew[1] = 60;
  sb_put(b, exts[pickw(r, ew, 6)]);
}

/* Collapses what templates can leave behind: doubled separators, spaces at
 * the ends, a separator before a closing bracket. */
static void tidy(sb_t *b) {
  size_t j = 0;
  for (size_t i = 0; i < b->n; i++) {
    char c = b->s[i];
    if ((c == ' ' || c == '.' || c == '_') && (j == 0 || b->s[j - 1] == c)) continue;
    if ((c == ']' || c == ')') && j && b->s[j - 1] == ' ') j--;
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    b->s[j++] = c;
  }
  while (j && b->s[j - 1] == ' ') j--;
  b->s[j] = 0;
  b->n = j;
}

/* ---- commands ------------------------------------------------------------------------------- */

static void generate(const catalog_t *c, uint64_t seed, long per, int labels) {
  groups_t g;
  make_groups(&g);
  static char obuf[1 << 16];
  setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
  sb_t b;
  for (int i = 0; i < c->n; i++) {
    const series_t *s = &c->v[i];
    rng_t r;
    rng_seed(&r, seed ^ fnv1a(s->slug));
    for (long k = 0; k < per; k++) {
      gen_name(&b, s, &g, &r);
      tidy(&b);
      if (labels)
        printf("__label__%s %s\n", s->slug, b.s);
      else
        printf("%s\n", b.s);
    }
  }
  for (int f = 0; f < NFAM; f++) free(g.v[f]);
  if (fflush(stdout) || ferror(stdout)) die("cannot write the output");
}

static int map_titles(const catalog_t *c, const char *path) {
  size_t len;
  char *buf = read_file(path, &len);
  size_t cap = 1024, n = 0;
  struct row {
    int series;
    char *name;
  } *rows = xmalloc(sizeof *rows * cap);
  const char **badv = NULL;
  int nbad = 0, badcap = 0, line = 0;
  char *p = buf;
  char *row;
  while ((row = next_row(&p, &line))) {
    char *tab = strchr(row, '\t');
    if (!tab || tab == row || !tab[1])
      die("%s:%d: expected TITLE<TAB>FILENAME with both non-empty", path, line);
    *tab = 0;
    if (strchr(tab + 1, '\t'))
      die("%s:%d: more than one tab: FILENAME may not hold tabs", path, line);
    sb_t k;
    title_key(&k, row);
    int found = -1;
    for (int i = 0; i < c->nkeys && found < 0; i++)
      if (!strcmp(c->keys[i], k.s)) found = c->key_series[i];
    if (found < 0) {
      int seen = 0; /* each unmapped title is named once, at its first line */
      for (int i = 0; i < nbad && !seen; i++) seen = !strcmp(badv[i], row);
      if (!seen) {
        fprintf(stderr,
                "mediagen: %s:%d: title \"%s\" matches no series: add it to the titles "
                "of its series in series.tsv\n",
                path, line, row);
        if (nbad == badcap) {
          badcap = badcap ? badcap * 2 : 16;
          badv = realloc(badv, sizeof *badv * (size_t)badcap);
          if (!badv) die("out of memory");
        }
        badv[nbad++] = row;
      }
      continue;
    }
    if (n == cap) {
      cap *= 2;
      rows = realloc(rows, sizeof *rows * cap);
      if (!rows) die("out of memory");
    }
    rows[n].series = found;
    rows[n++].name = tab + 1;
  }
  free(badv);
  if (nbad) {
    fprintf(stderr, "mediagen: %d title%s unmapped; nothing written\n", nbad, nbad > 1 ? "s" : "");
    free(rows);
    free(buf);
    return 1;
  }
  for (size_t i = 0; i < n; i++)
    printf("__label__%s %s\n", c->v[rows[i].series].slug, rows[i].name);
  free(rows);
  free(buf);
  if (fflush(stdout) || ferror(stdout)) die("cannot write the output");
  return 0;
}

static void usage(FILE *f) {
  fputs("usage: mediagen --series FILE --seed N --per-series K [--with-labels]\n"
        "       mediagen --series FILE --map-titles FILE\n"
        "  --series FILE     the series table (data/media/series.tsv)\n"
        "  --seed N          0 .. 18446744073709551615; the same arguments give the same bytes\n"
        "  --per-series K    release names per series, 1 .. 1000000\n"
        "  --with-labels     prefix each name with __label__<slug> and a space\n"
        "  --map-titles FILE label the FILENAMEs of a TITLE<TAB>FILENAME file by their TITLE\n",
        f);
}

static int parse_u64(const char *s, uint64_t *out) {
  if (!*s) return -1;
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (!is_digit(*p)) return -1;
    unsigned dgt = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - dgt) / 10) return -1;
    v = v * 10 + dgt;
  }
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  const char *series = NULL, *map = NULL, *seed_s = NULL, *per_s = NULL;
  int labels = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], **dst = NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--with-labels")) {
      labels = 1;
      continue;
    }
    static const char *const opts[] = {"--series", "--map-titles", "--seed", "--per-series"};
    const char **dsts[] = {&series, &map, &seed_s, &per_s};
    const char *val = NULL;
    for (size_t o = 0; o < NELEM(opts) && !dst; o++) {
      size_t l = strlen(opts[o]);
      if (!strncmp(a, opts[o], l) && (a[l] == 0 || a[l] == '=')) {
        dst = dsts[o];
        if (a[l] == '=')
          val = a + l + 1;
        else if (i + 1 < argc)
          val = argv[++i];
        else
          die("%s needs a value (see --help)", opts[o]);
      }
    }
    if (!dst) {
      usage(stderr);
      die("unknown argument \"%s\"", a);
    }
    if (*dst)
      die("%.*s given twice", (int)(strchr(a, '=') ? strchr(a, '=') - a : (long)strlen(a)), a);
    *dst = val;
  }
  if (!series) die("--series FILE is required (see --help)");
  if (map && (seed_s || per_s || labels))
    die("--map-titles cannot be combined with --seed, --per-series or --with-labels");
  if (!map && (!seed_s || !per_s))
    die("give --seed and --per-series, or --map-titles (see --help)");
  uint64_t seed = 0, per = 0;
  if (seed_s && parse_u64(seed_s, &seed))
    die("--seed \"%s\" is not a number from 0 to 18446744073709551615", seed_s);
  if (per_s && (parse_u64(per_s, &per) || per < 1 || per > 1000000))
    die("--per-series \"%s\" is not a number from 1 to 1000000", per_s);
  catalog_t c;
  load_catalog(&c, series);
  int rc = 0;
  if (map)
    rc = map_titles(&c, map);
  else
    generate(&c, seed, (long)per, labels);
  free_catalog(&c);
  return rc;
}
