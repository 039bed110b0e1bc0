#!/usr/bin/env bash
# media.sh - the bundled media model (scripts/make-model.sh):
#   - two builds from the same sources are bit-identical;
#   - precision at 1 is at least 0.97 on held-out generated names and at
#     least 0.93 on data/media/real-names.tsv (real release names the
#     generator never saw);
#   - the model classifies raw file names (the normalizer travels inside
#     the .esm): a raw name and its hand-normalized form get the same label.
# usage: bash tests/compat/media.sh BUILD_DIR
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/es-media.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

"$ROOT/scripts/make-model.sh" "$BUILD" "$WORK/a" >"$WORK/report-a.txt"
"$ROOT/scripts/make-model.sh" "$BUILD" "$WORK/b" >/dev/null
cat "$WORK/report-a.txt"
if cmp -s "$WORK/a/media.esm" "$WORK/b/media.esm"; then ok "reproducible build"; else
  fail "reproducible build"; fi
held=$(awk -F': ' '/held-out/ { print $2 }' "$WORK/report-a.txt")
real=$(awk -F': ' '/real release/ { print $2 }' "$WORK/report-a.txt")
if awk -v p="$held" 'BEGIN { exit !(p >= 0.97) }'; then ok "held-out P@1 $held >= 0.97"; else
  fail "held-out P@1 $held >= 0.97"; fi
if awk -v p="$real" 'BEGIN { exit !(p >= 0.93) }'; then ok "real-name P@1 $real >= 0.93"; else
  fail "real-name P@1 $real >= 0.93"; fi

ES=$BUILD/edgeserve
M=$WORK/a/media.esm
printf '%s\n' 'Breaking.Bad.S05E14.Ozymandias.720p.HDTV.x264-EVOLVE.mkv' \
  'Il.Trono.di.Spade.S08E03.ITA.ENG.1080p.WEB-DL.x264-NovaRip.mkv' >"$WORK/raw.txt"
printf '%s\n' 'breaking bad ozymandias' 'il trono di spade' >"$WORK/clean.txt"
"$ES" predict "$M" "$WORK/raw.txt" >"$WORK/raw.out"
"$ES" predict "$M" "$WORK/clean.txt" >"$WORK/clean.out"
if cmp -s "$WORK/raw.out" "$WORK/clean.out" &&
  [ "$(cat "$WORK/raw.out")" = "$(printf '__label__breaking_bad\n__label__game_of_thrones')" ]; then
  ok "raw file names are normalized by the model"
else
  fail "raw file names are normalized by the model: $(tr '\n' ' ' <"$WORK/raw.out")"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
