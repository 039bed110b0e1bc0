#!/usr/bin/env bash
# make-model.sh - builds the bundled default model: the media organizer's
# TV-series classifier (`make model`; `make serve` serves it).
#
# usage: scripts/make-model.sh BUILD_DIR [OUT_DIR]
#
#   1. mediagen writes a deterministic corpus of release names for the
#      series of data/media/series.tsv: 60 per series to train on (seed 1),
#      10 per series held out (seed 2);
#   2. edgeserve supervised trains on raw names with the file-name
#      normalizer (-normalize default), one thread (--deterministic), so
#      the same sources give a bit-identical model;
#   3. edgeserve convert stores it as int8 (.esm, the normalizer inside);
#   4. edgeserve test reports precision at 1 on the held-out generated names
#      and on data/media/real-names.tsv, real release names the generator
#      never saw (written separately, by hand). Results: OUT_DIR/report.txt.
#
# Output: OUT_DIR/media.esm (default OUT_DIR: BUILD_DIR/models).
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:?usage: $0 BUILD_DIR [OUT_DIR]}
OUT=${2:-$BUILD/models}
ES=$BUILD/edgeserve
GEN=$BUILD/mediagen
SERIES=$ROOT/data/media/series.tsv
REAL=$ROOT/data/media/real-names.tsv
for f in "$ES" "$GEN"; do
  [ -x "$f" ] || { echo "make-model.sh: $f not built (run make)" >&2; exit 1; }
done
mkdir -p "$OUT"
WORK=$OUT/media-work
mkdir -p "$WORK"

start=$EPOCHREALTIME
"$GEN" --series "$SERIES" --seed 1 --per-series 60 --with-labels >"$WORK/train.txt"
"$GEN" --series "$SERIES" --seed 2 --per-series 10 --with-labels >"$WORK/heldout.txt"
"$GEN" --series "$SERIES" --map-titles "$REAL" >"$WORK/real.txt"
"$ES" supervised -input "$WORK/train.txt" -output "$WORK/media" -normalize default \
  -dim 32 -minn 2 -maxn 5 -wordNgrams 2 -bucket 100000 -epoch 25 -lr 0.5 \
  --deterministic -seed 1 -verbose 0
"$ES" convert "$WORK/media.esm" "$OUT/media.esm" --int8
end=$EPOCHREALTIME

p1() { "$ES" test "$1" "$2" | awk '$1 == "P@1" { print $2 }'; }
{
  echo "model        $OUT/media.esm ($(stat -c %s "$OUT/media.esm") bytes, int8)"
  echo "series       $(grep -vc '^#' "$SERIES")"
  echo "train lines  $(wc -l <"$WORK/train.txt") (mediagen seed 1, 60 per series)"
  echo "built in     $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f s", b - a }')"
  echo "P@1 held-out generated names ($(wc -l <"$WORK/heldout.txt")): $(p1 "$OUT/media.esm" "$WORK/heldout.txt")"
  echo "P@1 real release names ($(wc -l <"$WORK/real.txt")): $(p1 "$OUT/media.esm" "$WORK/real.txt")"
} | tee "$OUT/report.txt"
rm -f "$WORK/media.bin" "$WORK/media.vec"
