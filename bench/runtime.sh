#!/usr/bin/env bash
# bench/runtime.sh - the runtime's micro-benchmarks (bench/runtime/bench_*.c,
# built by `make` into build/bench/): each program runs the compared
# implementations side by side in one run and prints a markdown table with
# the ratios. The output is collected into bench/results/runtime-DATE.md.
#
# Environment: ES_BUILD (default build), BENCH_RESULTS (default
# bench/results/runtime-YYYY-MM-DD.md).
set -euo pipefail
export LC_ALL=C

REPO=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
cd "$REPO" # the benchmarks read tests/fixtures relative to it
BUILD=${ES_BUILD:-$REPO/build}
OUT=${BENCH_RESULTS:-$REPO/bench/results/runtime-$(date +%F).md}
shopt -s nullglob
progs=("$BUILD"/bench/bench_*)
[ ${#progs[@]} -gt 0 ] || { echo "runtime.sh: no benchmarks in $BUILD/bench (run make)" >&2; exit 1; }

{
  echo "# Runtime micro-benchmarks, $(date +%F)"
  echo
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')."
  echo "Command: \`make bench-runtime\` (bench/runtime.sh)."
  for p in "${progs[@]}"; do
    echo
    echo "## $(basename "$p")"
    echo
    "$p"
  done
} | tee "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "runtime.sh: results in $OUT" >&2
