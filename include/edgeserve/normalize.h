/*
 * normalize.h - the file-name normalizer stored with a model.
 *
 * A media classifier is trained on release names such as
 * "La.Casa.di.Carta.S02E05.ITA.ENG.1080p.WEB-DL.x264.mkv" and must see the
 * same words at prediction time, so the normalizer's flags are saved with the
 * model (as the spec string es_normalizer_format() writes) and the same
 * es_normalize() runs on every training line and every query. Callers can
 * then pass raw file names.
 *
 *   es_normalizer_t n; es_error_t err;
 *   es_normalizer_parse(&n, "default", &err);
 *   char out[256];
 *   es_normalize(&n, name, strlen(name), out, sizeof out);
 *   // "la casa di carta"
 *
 * The steps, in this order, each enabled by one flag:
 *   1. EXTENSION  strips known extensions (mkv avi mp4 m4v srt sub ass ssa
 *                 idx vtt ts m2ts wmv mov mpg mpeg flv webm ogm divx rmvb
 *                 3gp nfo, any case) from the end, repeatedly, with any
 *                 trailing whitespace: "x.ita.srt" -> "x.ita". A byte other
 *                 than whitespace must precede the dot. When tokens are
 *                 split on whitespace only (EPISODE or QUALITY without
 *                 SEPARATORS), every token is stripped too, so that
 *                 "x.mkv 720p" and "x.mkv" agree.
 *   2. tokens     with SEPARATORS, a token is a maximal run of bytes that are
 *                 none of  . _ - + [ ] ( ) { } , ; : ! ? ' "  space \t \n
 *                 \v \f \r  (so "CSI: Miami", "CSI.Miami" and "L'amica",
 *                 "L.Amica" give the same words);
 *                 without it, a maximal run of bytes that are not ASCII
 *                 whitespace. (Without SEPARATORS, EPISODE or QUALITY the text
 *                 is not split at all and keeps its bytes.)
 *   3. EPISODE / QUALITY drop whole tokens (below).
 *   4. the kept tokens are written joined by one space, without leading or
 *      trailing space, and LOWER lowers each of their letters: A-Z, U+00C0 to
 *      U+00DE but U+00D7, and the capitals of U+0100 to U+017E (U+0178 to
 *      U+00FF) but U+0130, each in as many bytes as before.
 * Token tests are ASCII case-insensitive, so they do not depend on LOWER.
 *
 * Which tokens are dropped. The "title zone" is the run of tokens before the
 * first token that is an episode marker or a quality tag (whether or not its
 * flag is set). Titles hold numbers and years (24, 1992, 1883, The 100, 9-1-1,
 * 13 Reasons Why, Doctor Who 2005), so numbers are kept in the title zone and
 * dropped after it:
 *   EPISODE  s01 s01e02 s01e01e02 s1ep2 (s + 1-4 digits, then e/ep + 1-4
 *            digits any number of times), e02 ep02, 1x02 (1-2 digits x 1-3
 *            digits), 1of6; "stagione" "stagioni" "season" "seasons"
 *            "episodio" "episodi" "episode" "episodes" "ep" "eps" "puntata"
 *            "puntate" "part" "parte" "temporada" "staffel" "saison" when the
 *            next token is a number, together with that number; a number of
 *            1-4 digits with a leading zero (01, 005) anywhere; any other
 *            number of 1-4 digits outside the title zone.
 *   QUALITY  resolutions (720p 1080i 4k 1920x1080 ...), sources and services
 *            (web webdl webrip hdtv bluray bdrip dlmux bdmux amzn nf dsnp
 *            hmax atvp raiplay ...), codecs (x264 h264 hevc xvid 10bit hdr
 *            ...), audio (aac ac3 dd5 ddp5 eac3 dts truehd atmos 6ch ...),
 *            language tags (ita eng italian multi sub subita dual ...),
 *            release words (proper repack internal complete completa copia ...),
 *            fansub CRCs (8 hex digits, letters and digits mixed); "blu" and
 *            a "ray" right after it, "dolby" and a "vision" right after it,
 *            "ma" right after "hd", "h"/"x" right before "264"/"265" (with
 *            it); and, outside the title zone, years 1900-2099 and 264/265.
 *            Tokens of 16 bytes or more are never markers or tags. Words
 *            common in titles are never tags, even where releases use them
 *            so: the, doc, dark, lost, real, max, now, sky, rai, full, tv,
 *            english, serie, series.
 *
 * The output is never longer than the input, normalizing twice gives the same
 * result as once, and invalid UTF-8 and NUL bytes pass through as other bytes
 * (a token holding a NUL or a non-ASCII byte is never a marker or a tag).
 */
#ifndef EDGESERVE_NORMALIZE_H
#define EDGESERVE_NORMALIZE_H

#include <stddef.h>

#include "edgeserve/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_normalizer {
  unsigned flags; /* ES_NORM_* bits; unknown bits are ignored */
} es_normalizer_t;

enum {
  ES_NORM_SEPARATORS = 1u << 0, /* . _ - + [ ] ( ) { } , ; : ! ? ' " whitespace split words */
  ES_NORM_LOWER = 1u << 1,      /* ASCII, Latin-1, Latin Extended-A letters lowered (not U+0130) */
  ES_NORM_EXTENSION = 1u << 2,  /* trailing media/subtitle extensions dropped */
  ES_NORM_EPISODE = 1u << 3,    /* episode markers and episode numbers dropped */
  ES_NORM_QUALITY = 1u << 4,    /* quality, release and language tags, late years dropped */
  ES_NORM_DEFAULT = 0x1fu,      /* all five */
};

/* Parses a spec: comma-separated lowercase words from "separators", "lower",
 * "extension", "episode", "quality", "none" (no flag) and "default" (all
 * five), spaces around words allowed, e.g. "separators,lower". Returns 0 and
 * sets n->flags; or ES_EINVAL, leaves *n unchanged and, when err is not NULL,
 * fills it with a message naming the bad word (an empty spec or empty word is
 * bad too). */
int es_normalizer_parse(es_normalizer_t *n, const char *spec, es_error_t *err);

/* Writes the canonical spec of n (the flag names in the order of the enum,
 * comma-separated; "none" when no flag is set) to buf, truncated to cap - 1
 * bytes and NUL-terminated when cap > 0. Returns the length of the full spec,
 * as snprintf does; it is at most 43. es_normalizer_parse() reads it back to
 * the same flags. */
size_t es_normalizer_format(const es_normalizer_t *n, char *buf, size_t cap);

/* Normalizes in[0..len) (need not be NUL-terminated; in may be NULL when len
 * is 0) into out, as described at the top of this file. The result is never
 * longer than len bytes, so cap = len + 1 always suffices; with a smaller cap
 * the result is truncated to cap - 1 bytes (cap 0: nothing written). out is
 * NUL-terminated when cap > 0 (out may be NULL when cap is 0). Returns the
 * length of the full result, which may hold NUL bytes of the input. in and
 * out must not overlap. Thread-safe, allocates nothing. */
size_t es_normalize(const es_normalizer_t *n, const char *in, size_t len, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
