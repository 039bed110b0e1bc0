/*
 * normalize.c - file names to the words a media classifier should see; see
 * normalize.h for the rules.
 *
 * One pass over the input, no allocation:
 *   1. the end of the text moves left past trailing extensions;
 *   2. tokens are read left to right with one token of lookahead (for
 *      "stagione 2", "h 264") and the previous raw token (for "blu ray");
 *   3. each token is classified (word, number, episode marker, quality tag)
 *      and kept or dropped; the title zone ends at the first marker or tag;
 *   4. kept tokens are copied, lowered when asked, through a writer that
 *      counts every byte but stores only what fits.
 * Invariants: every write goes through put(), which never writes at or past
 * cap - 1; the result never gets longer than the input (tokens are copied or
 * shrunk, one space is written only between two kept tokens, and at least one
 * separator byte stood between them).
 * Cost: O(len) bytes touched, plus a scan of the tag tables (about 200 short
 * strings) for each token of at most 15 ASCII bytes.
 */
#include "edgeserve/normalize.h"

#include <stdio.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof *(a))

/* ---- flags and specs -------------------------------------------------------- */

static const char *const flag_names[] = {"separators", "lower", "extension", "episode", "quality"};
#define NFLAGS 5

int es_normalizer_parse(es_normalizer_t *n, const char *spec, es_error_t *err) {
  unsigned flags = 0;
  const char *p = spec ? spec : "";
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    const char *w = p;
    while (*p && *p != ',') p++;
    const char *e = p;
    while (e > w && (e[-1] == ' ' || e[-1] == '\t')) e--;
    size_t wl = (size_t)(e - w);
    int known = 0;
    if (wl == 4 && !memcmp(w, "none", 4)) known = 1;
    if (wl == 7 && !memcmp(w, "default", 7)) known = 1, flags |= ES_NORM_DEFAULT;
    for (int i = 0; i < NFLAGS && !known; i++)
      if (strlen(flag_names[i]) == wl && !memcmp(w, flag_names[i], wl)) known = 1, flags |= 1u << i;
    if (!known) {
      if (err) {
        err->code = ES_EINVAL;
        err->offset = -1;
        if (wl == 0)
          snprintf(err->msg, sizeof err->msg,
                   "normalizer spec \"%.64s\" has an empty word: use comma-separated words from "
                   "separators, lower, extension, episode, quality, none, default",
                   spec ? spec : "");
        else
          snprintf(err->msg, sizeof err->msg,
                   "unknown normalizer word \"%.*s\": use separators, lower, extension, episode, "
                   "quality, none or default",
                   (int)(wl > 64 ? 64 : wl), w);
      }
      return ES_EINVAL;
    }
    if (!*p) break;
    p++; /* the comma */
  }
  n->flags = flags;
  return 0;
}

size_t es_normalizer_format(const es_normalizer_t *n, char *buf, size_t cap) {
  char tmp[64];
  size_t len = 0;
  for (int i = 0; i < NFLAGS; i++) {
    if (!(n->flags & (1u << i))) continue;
    if (len) tmp[len++] = ',';
    size_t l = strlen(flag_names[i]);
    memcpy(tmp + len, flag_names[i], l);
    len += l;
  }
  if (!len) memcpy(tmp, "none", 4), len = 4;
  if (cap) {
    size_t c = len < cap - 1 ? len : cap - 1;
    memcpy(buf, tmp, c);
    buf[c] = 0;
  }
  return len;
}

/* ---- character classes --------------------------------------------------------- */

static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static int is_sep(unsigned char c) { return (c && strchr("._-+[](){},;:!?'\"", c)) || is_space(c); }

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static unsigned char lower_ascii(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* ---- extensions ---------------------------------------------------------------- */

static const char *const extensions[] = {
    "mkv", "avi", "mp4", "m4v",  "srt", "sub",  "ass", "ssa",  "idx",  "vtt", "ts",  "m2ts",
    "wmv", "mov", "mpg", "mpeg", "flv", "webm", "ogm", "divx", "rmvb", "3gp", "nfo",
};

/* Length of s[0..len) once one known extension is removed from its end, or
 * len when it has none. */
static size_t strip_one_ext(const unsigned char *s, size_t len) {
  size_t i = len;
  while (i > 0 && len - i < 5 && s[i - 1] != '.') i--;
  if (i < 2 || s[i - 1] != '.' || is_space(s[i - 2])) return len; /* nothing before the dot */
  size_t el = len - i;
  for (size_t k = 0; k < sizeof extensions / sizeof *extensions; k++) {
    const char *e = extensions[k];
    if (strlen(e) != el) continue;
    size_t j = 0;
    while (j < el && lower_ascii(s[i + j]) == (unsigned char)e[j]) j++;
    if (j == el) return i - 1;
  }
  return len;
}

/* Strips every trailing extension and, with it, trailing whitespace. */
static size_t strip_exts(const unsigned char *s, size_t len) {
  for (;;) {
    size_t e = len;
    while (e > 0 && is_space(s[e - 1])) e--;
    size_t n = strip_one_ext(s, e);
    if (n == e) return len;
    len = n;
  }
}

/* ---- tokens -------------------------------------------------------------------- */

typedef struct tok {
  const unsigned char *p;
  size_t n;
  char lc[16]; /* ASCII-lowered copy when n < 16 and all bytes are 1..127, else "" */
} tok;

typedef struct lexer {
  const unsigned char *s;
  size_t end, pos;
  int seps;      /* split on separators, not just whitespace */
  int strip_ext; /* strip extensions from each token (whitespace mode) */
} lexer;

static int lex(lexer *lx, tok *t) {
  while (lx->pos < lx->end && (lx->seps ? is_sep(lx->s[lx->pos]) : is_space(lx->s[lx->pos])))
    lx->pos++;
  if (lx->pos == lx->end) return 0;
  size_t b = lx->pos;
  while (lx->pos < lx->end && !(lx->seps ? is_sep(lx->s[lx->pos]) : is_space(lx->s[lx->pos])))
    lx->pos++;
  t->p = lx->s + b;
  t->n = lx->pos - b;
  if (lx->strip_ext) t->n = strip_exts(t->p, t->n);
  t->lc[0] = 0;
  if (t->n < sizeof t->lc) {
    size_t i = 0;
    for (; i < t->n && t->p[i] && t->p[i] < 0x80; i++) t->lc[i] = (char)lower_ascii(t->p[i]);
    t->lc[i < t->n ? 0 : t->n] = 0;
  }
  return 1;
}

/* ---- token classes --------------------------------------------------------------- */

enum { C_WORD, C_NUMBER, C_EPISODE, C_QUALITY };

/* Tags that are never title words, by kind; compared to the ASCII-lowered
 * token (see also is_quality_pattern). */
static const char *const tags_resolution[] = {"4k", "8k", "uhd", "fhd",     "qhd",
                                              "hd", "sd", "hq",  "hdready", "hdlight"};
static const char *const tags_source[] = {
    "web",     "webdl",    "webrip",       "webmux",   "webdlmux", "dl",     "rip",     "mux",
    "hdtv",    "hdtvrip",  "hdtvmux",      "pdtv",     "sdtv",     "dsr",    "dsrip",   "dvb",
    "dvbrip",  "dtt",      "dttrip",       "satrip",   "tvrip",    "vhsrip", "bluray",  "bdrip",
    "brrip",   "bdmux",    "bdremux",      "remux",    "bd",       "blu",    "dvd",     "dvdrip",
    "dvdmux",  "dvd5",     "dvd9",         "dvdr",     "dvdscr",   "hddvd",  "hdrip",   "dlmux",
    "dlrip",   "uhdrip",   "amzn",         "nf",       "dsnp",     "dsny",   "hmax",    "atvp",
    "hulu",    "pcok",     "pmtp",         "stan",     "crav",     "cr",     "netflix", "amazon",
    "raiplay", "mediaset", "mediasetplay", "timvision"};
static const char *const tags_codec[] = {
    "x264",   "x265",  "h264", "h265",  "hevc",  "avc",  "xvid",  "divx",      "av1",   "vp9",
    "mpeg2",  "10bit", "8bit", "12bit", "hi10p", "hdr",  "hdr10", "hdr10plus", "dv",    "dovi",
    "dolby",  "sdr",   "aac",  "ac3",   "eac3",  "dd",   "ddp",   "dts",       "dtshd", "dtsx",
    "truehd", "atmos", "flac", "mp3",   "opus",  "lpcm", "pcm"};
static const char *const tags_language[] = {
    "ita",         "eng",           "italian",       "italiano", "itaeng", "multi",  "multisub",
    "multisubs",   "sub",           "subs",          "subbed",   "subita", "subeng", "subsita",
    "sottotitoli", "sottotitolato", "sottotitolati", "dual",     "dubbed", "vost",   "vostfr",
    "truefrench",  "fre",           "ger",           "spa",      "esp",    "jap",    "jpn",
    "kor",         "rus",           "itasa"};
static const char *const tags_release[] = {
    "proper",     "repack",     "rerip", "internal", "limited", "complete", "completa",
    "completo",   "readnfo",    "nfo",   "uncut",    "unrated", "extended", "dirfix",
    "remastered", "uncensored", "eztv",  "ettv",     "tgx",     "rarbg",    "copia"};

static const struct {
  const char *const *v;
  size_t n;
} tag_lists[] = {
    {tags_resolution, NELEM(tags_resolution)}, {tags_source, NELEM(tags_source)},
    {tags_codec, NELEM(tags_codec)},           {tags_language, NELEM(tags_language)},
    {tags_release, NELEM(tags_release)},
};

/* Words that mark an episode or season when a number follows them. */
static const char *const episode_words[] = {
    "stagione", "stagioni", "season",    "seasons", "episodio", "episodi",
    "episode",  "episodes", "ep",        "eps",     "puntata",  "puntate",
    "part",     "parte",    "temporada", "staffel", "saison"};

/* Runs for every token against ~150 tags: the first byte is compared
 * before the call, which skips most of them. */
static int in_list(const char *w, const char *const *list, size_t n) {
  if (!*w) return 0;
  for (size_t i = 0; i < n; i++)
    if (w[0] == list[i][0] && !strcmp(w, list[i])) return 1;
  return 0;
}

/* Number of digits at s[0..] (at most max + 1 are looked at). */
static size_t digits(const char *s, size_t max) {
  size_t i = 0;
  while (i <= max && is_digit((unsigned char)s[i])) i++;
  return i;
}

static int is_number(const tok *t) { return t->lc[0] && t->n <= 4 && digits(t->lc, 4) == t->n; }

static int is_year(const tok *t) {
  return is_number(t) && t->n == 4 &&
         ((t->lc[0] == '1' && t->lc[1] == '9') || (t->lc[0] == '2' && t->lc[1] == '0'));
}

static int is_codec_number(const tok *t) { return !strcmp(t->lc, "264") || !strcmp(t->lc, "265"); }

/* s01 s01e02 s1ep2e3 e02 ep02 e01e02 1x02 1of6 */
static int is_episode_pattern(const char *w) {
  const char *p = w;
  size_t d;
  if (*p == 's') {
    d = digits(p + 1, 4);
    if (d < 1 || d > 4) return 0;
    p += 1 + d;
  } else if (*p == 'e') {
    /* parsed by the loop below */
  } else {
    d = digits(p, 3);
    if (d < 1 || d > 3) return 0;
    if (p[d] == 'x' && d <= 2) {
      size_t d2 = digits(p + d + 1, 3);
      return d2 >= 1 && d2 <= 3 && !p[d + 1 + d2];
    }
    if (p[d] == 'o' && p[d + 1] == 'f') {
      size_t d2 = digits(p + d + 2, 3);
      return d2 >= 1 && d2 <= 3 && !p[d + 2 + d2];
    }
    return 0;
  }
  int parts = p != w;
  while (*p == 'e') {
    p += p[1] == 'p' ? 2 : 1;
    d = digits(p, 4);
    if (d < 1 || d > 4) return 0;
    p += d;
    parts++;
  }
  return parts > 0 && !*p;
}

/* 720p 1080i 1920x1080 aac2 dd5 ddp5 6ch rai1 abcd1234 */
static int is_quality_pattern(const char *w) {
  size_t d = digits(w, 4);
  if (d >= 3 && d <= 4 && (w[d] == 'p' || w[d] == 'i') && !w[d + 1]) return 1;
  if (d >= 3 && d <= 4 && w[d] == 'x') {
    size_t d2 = digits(w + d + 1, 4);
    return d2 >= 3 && d2 <= 4 && !w[d + 1 + d2];
  }
  if (d == 1 && !strcmp(w + 1, "ch")) return 1;
  if (strlen(w) == 8) { /* a CRC32 as fansubs append it: [ABCD1234] */
    int dig = 0, hex = 1;
    for (const char *c = w; *c; c++) {
      dig += is_digit((unsigned char)*c);
      hex &= is_digit((unsigned char)*c) || (*c >= 'a' && *c <= 'f');
    }
    if (hex && dig && dig < 8) return 1;
  }
  static const char *const prefixes[] = {"aac", "ddp", "dd", "rai"};
  for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
    size_t l = strlen(prefixes[i]);
    if (!strncmp(w, prefixes[i], l)) {
      size_t d2 = digits(w + l, 2);
      return d2 >= 1 && d2 <= 2 && !w[l + d2];
    }
  }
  return 0;
}

/* Classifies t given the previous raw token (prev, "" at the start) and the
 * next one (next, NULL at the end). Sets *pair when t and next form one
 * marker ("stagione 2", "h 264"), whose class both take. */
static int classify(const tok *t, const char *prev, const tok *next, int *pair) {
  const char *w = t->lc;
  *pair = 0;
  if (!w[0]) return C_WORD; /* long or not ASCII: never a tag */
  if (is_number(t)) return t->n >= 2 && w[0] == '0' ? C_EPISODE : C_NUMBER;
  if (next && is_number(next) && in_list(w, episode_words, NELEM(episode_words))) {
    *pair = 1;
    return C_EPISODE;
  }
  if (next && (!strcmp(w, "h") || !strcmp(w, "x")) && is_codec_number(next)) {
    *pair = 1;
    return C_QUALITY;
  }
  if (is_episode_pattern(w)) return C_EPISODE;
  for (size_t i = 0; i < NELEM(tag_lists); i++)
    if (in_list(w, tag_lists[i].v, tag_lists[i].n)) return C_QUALITY;
  if (is_quality_pattern(w)) return C_QUALITY;
  if ((!strcmp(w, "ray") && !strcmp(prev, "blu")) || (!strcmp(w, "ma") && !strcmp(prev, "hd")) ||
      (!strcmp(w, "vision") && !strcmp(prev, "dolby")))
    return C_QUALITY;
  return C_WORD;
}

/* ---- output ------------------------------------------------------------------------ */

typedef struct writer {
  char *out;
  size_t cap, n;
} writer;

static void put(writer *wr, unsigned char c) {
  if (wr->n + 1 < wr->cap) wr->out[wr->n] = (char)c;
  wr->n++;
}

/* Lower case of a code point in U+0100..U+017F (Latin Extended-A). U+0130
 * (I with dot above) stays: its lower case is two code points, and an ASCII
 * "i" could turn a word into a tag ("1992İ" into "1992i") on a second pass. */
static unsigned lower_ext_a(unsigned cp) {
  if (cp == 0x130) return cp;
  if (cp == 0x178) return 0xff;
  if ((cp <= 0x137 && cp != 0x131) || (cp >= 0x14a && cp <= 0x177)) return cp | 1u;
  if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e)) return (cp & 1u) ? cp + 1 : cp;
  return cp;
}

/* Copies s[0..n), lowering ASCII, Latin-1 and Latin Extended-A letters when
 * lower is set; every other byte, valid UTF-8 or not, is copied as is. A
 * lowered letter never takes more bytes than it did. */
static void put_span(writer *wr, const unsigned char *s, size_t n, int lower) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (!lower || c < 0x80) {
      put(wr, lower ? lower_ascii(c) : c);
      continue;
    }
    if (i + 1 < n && (c == 0xc3 || c == 0xc4 || c == 0xc5) && (s[i + 1] & 0xc0) == 0x80) {
      unsigned cp = ((unsigned)(c & 0x1f) << 6) | (s[i + 1] & 0x3fu);
      if (cp >= 0xc0 && cp <= 0xde && cp != 0xd7)
        cp += 0x20;
      else if (cp >= 0x100)
        cp = lower_ext_a(cp);
      put(wr, (unsigned char)(0xc0 | (cp >> 6))); /* still two bytes */
      put(wr, (unsigned char)(0x80 | (cp & 0x3f)));
      i++;
      continue;
    }
    put(wr, c);
  }
}

/* ---- the normalizer ---------------------------------------------------------------- */

size_t es_normalize(const es_normalizer_t *n, const char *in, size_t len, char *out, size_t cap) {
  const unsigned f = n->flags;
  const unsigned char *s = (const unsigned char *)in;
  const int lower = (f & ES_NORM_LOWER) != 0;
  const int drop = (f & (ES_NORM_EPISODE | ES_NORM_QUALITY)) != 0;
  writer wr = {out, cap, 0};
  if (len == 0) s = (const unsigned char *)"";

  size_t end = len;
  if (f & ES_NORM_EXTENSION) end = strip_exts(s, len);

  if (!(f & ES_NORM_SEPARATORS) && !drop) {
    put_span(&wr, s, end, lower);
  } else {
    lexer lx = {s, end, 0, (f & ES_NORM_SEPARATORS) != 0,
                (f & ES_NORM_EXTENSION) && !(f & ES_NORM_SEPARATORS)};
    tok q[2]; /* q[0]: the token at hand, q[1]: the next one */
    int nq = 0, zone = 1, kept = 0;
    char prev[16] = "";
    while (nq < 2 && lex(&lx, &q[nq])) nq++;
    while (nq) {
      int pair, cls = classify(&q[0], prev, nq > 1 ? &q[1] : NULL, &pair);
      int keep = 1;
      if (cls == C_EPISODE)
        keep = !(f & ES_NORM_EPISODE);
      else if (cls == C_QUALITY)
        keep = !(f & ES_NORM_QUALITY);
      else if (cls == C_NUMBER && !zone)
        keep = !(f & ES_NORM_EPISODE) &&
               !((f & ES_NORM_QUALITY) && (is_year(&q[0]) || is_codec_number(&q[0])));
      if (cls == C_EPISODE || cls == C_QUALITY) zone = 0;
      int used = pair ? 2 : 1;
      for (int k = 0; k < used; k++) {
        if (keep && q[k].n) {
          if (kept) put(&wr, ' ');
          put_span(&wr, q[k].p, q[k].n, lower);
          kept = 1;
        }
        memcpy(prev, q[k].lc, sizeof prev);
      }
      if (used == 2)
        nq = 0;
      else if (--nq)
        q[0] = q[1];
      while (nq < 2 && lex(&lx, &q[nq])) nq++;
    }
  }
  if (cap) out[wr.n < cap ? wr.n : cap - 1] = 0;
  return wr.n;
}
