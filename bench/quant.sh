#!/usr/bin/env bash
# bench/quant.sh - edgeserve's storage schemes side by side in one run: the
# dense .bin, its int8 and int4 conversions (.esm) and the fastText-quantized
# .ftz, on the debian-sections models bench/predict.sh trains (run it first,
# or set BENCH_OUT to a directory with dense.bin, dense.ftz, input-20x.txt).
#
# For each model: file size, P@1 on test.txt, and single-thread predict-prob
# time over input-20x.txt. Timing is interleaved (one run of each model per
# round, BENCH_ROUNDS rounds, pinned to one CPU with taskset when present)
# and the ratio to dense is the median of the per-round ratios, which a
# noisy shared machine disturbs far less than absolute times.
#
# Environment: ES_BIN, BENCH_OUT, BENCH_DATA, BENCH_ROUNDS (default 9),
# BENCH_CPU (default 0).
set -euo pipefail
export LC_ALL=C

REPO=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
ES=${ES_BIN:-$REPO/build/edgeserve}
WORK=${BENCH_OUT:-$REPO/bench/out}
DATA=${BENCH_DATA:-$REPO/../shared/data/debian-sections}
ROUNDS=${BENCH_ROUNDS:-9}
CPU=${BENCH_CPU:-0}
die() { echo "quant.sh: error: $*" >&2; exit 1; }
[ -x "$ES" ] || die "edgeserve not found at $ES (run make)"
for f in dense.bin dense.ftz input-20x.txt; do
  [ -f "$WORK/$f" ] || die "$WORK/$f missing: run bench/predict.sh first (it trains the models)"
done
[ -f "$DATA/test.txt" ] || die "$DATA/test.txt missing (set BENCH_DATA)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
PIN=()
command -v taskset >/dev/null && PIN=(taskset -c "$CPU")

cd "$WORK"
"$ES" convert dense.bin dense-int8.esm --int8
"$ES" convert dense.bin dense-int4.esm --int4
models=(dense.bin dense-int8.esm dense-int4.esm dense.ftz)

declare -A p1 size
for m in "${models[@]}"; do
  p1[$m]=$("$ES" test "$m" "$DATA/test.txt" | awk '$1 == "P@1" { print $2 }')
  size[$m]=$(stat -c %s "$m")
done
# identical labels where the model is the same (f32 .esm would be exact;
# int8/int4 are not expected to be): report agreement with dense
"$ES" predict dense.bin "$DATA/test.txt" >q-dense.out
declare -A agree
for m in "${models[@]}"; do
  "$ES" predict "$m" "$DATA/test.txt" >q-m.out
  agree[$m]=$(paste -d' ' q-dense.out q-m.out | awk '$1 == $2 { s++ } END { printf "%.4f", s / NR }')
done

declare -A times
for r in $(seq 1 "$ROUNDS"); do
  for m in "${models[@]}"; do
    s=$EPOCHREALTIME
    "${PIN[@]}" "$ES" predict-prob --threads 1 "$m" input-20x.txt >/dev/null
    e=$EPOCHREALTIME
    times[$m]+="$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.4f", b - a }') "
  done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratios() { # per-round dense time / model time
  paste -d' ' <(tr ' ' '\n' <<<"${times[dense.bin]}" | grep .) <(tr ' ' '\n' <<<"${times[$1]}" | grep .) |
    awk '{ printf "%.4f ", $1 / $2 }'
}

out=$REPO/bench/results/quant-$(date +%F).md
{
  echo "# edgeserve storage schemes, debian-sections model ($(date +%F))"
  echo
  echo "Single-thread \`predict-prob\` over input-20x.txt (253,760 lines), $ROUNDS interleaved rounds${PIN:+, pinned to CPU $CPU};"
  echo "speed = median over rounds of (dense time / model time). P@1 on test.txt."
  echo
  echo "| model | bytes | P@1 | P@1 - dense | labels as dense | median s | speed vs dense |"
  echo "|---|--:|--:|--:|--:|--:|--:|"
  for m in "${models[@]}"; do
    printf '| %s | %s | %s | %+.4f | %s | %s | %sx |\n' "$m" "${size[$m]}" "${p1[$m]}" \
      "$(awk -v a="${p1[$m]}" -v b="${p1[dense.bin]}" 'BEGIN { print a - b }')" "${agree[$m]}" \
      "$(median <<<"${times[$m]}")" "$(ratios "$m" | median)"
  done
  echo
  echo "Machine: $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) CPUs; edgeserve $(git -C "$REPO" rev-parse --short HEAD)."
  echo "Reproduce: bench/predict.sh (once, to train the models), then bench/quant.sh."
} | tee "$out"
rm -f q-dense.out q-m.out
