#!/usr/bin/env bash
# promtool.sh - renders a full metrics registry (the standard set with
# samples, tests/observe/render_metrics.c) and validates it with
# `promtool check metrics`: fails on any parse error or lint problem.
# Also checks that promtool does flag a known-bad exposition, so a promtool
# that accepts everything cannot pass the test.
# Usage: tests/observe/promtool.sh [RENDER_METRICS]
#   RENDER_METRICS: the built render_metrics program; without it the script
#   compiles one from the sources with ${CC:-cc} into a temporary folder.
# Needs promtool (Debian package `prometheus`).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! command -v promtool > /dev/null 2>&1; then
  echo "FAIL promtool not found: install it (apt-get install prometheus; it is a declared" \
    "test dependency of edgeserve)" >&2
  exit 1
fi

render=${1:-}
if [ -z "$render" ]; then
  render=$work/render_metrics
  ${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -ffp-contract=off -O1 \
    -I"$root/include" -I"$root/src" "$root/src/common/error.c" "$root/src/observe/metrics.c" \
    "$here/render_metrics.c" -lpthread -lm -o "$render" || { echo "FAIL building render_metrics" >&2; exit 1; }
fi

pass=0 fail=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; shift; printf '  %s\n' "$@" | head -20; fail=$((fail + 1)); }

# check NAME FILE: promtool exits 0 and prints nothing
check() {
  promtool check metrics < "$2" > "$work/out" 2>&1
  local st=$?
  if [ $st -eq 0 ] && [ ! -s "$work/out" ]; then ok "$1"; else
    bad "$1" "promtool exit status $st" "$(cat "$work/out")"
  fi
}

if "$render" > "$work/metrics.txt" 2> "$work/render.err"; then
  ok "render_metrics renders a registry ($(wc -l < "$work/metrics.txt") lines)"
  check "promtool accepts the full registry without lint problems" "$work/metrics.txt"
  for fam in edgeserve_inference_requests_total edgeserve_inference_failures_total \
    edgeserve_inference_count_total edgeserve_inference_executions_total \
    edgeserve_inference_request_duration_seconds edgeserve_inference_queue_duration_seconds \
    edgeserve_inference_compute_duration_seconds edgeserve_inference_pending_requests \
    edgeserve_cache_hits_total edgeserve_cache_misses_total edgeserve_sla_violations_total \
    edgeserve_quality_level edgeserve_quality_variant edgeserve_memory_budget_bytes \
    edgeserve_memory_used_bytes edgeserve_memory_budget_refusals_total \
    edgeserve_memory_pressure_level; do
    grep -q "^# TYPE $fam " "$work/metrics.txt" || missing="${missing:-} $fam"
  done
  if [ -z "${missing:-}" ]; then ok "every family of the standard set is rendered"; else
    bad "every family of the standard set is rendered" "missing:$missing"
  fi
else
  bad "render_metrics renders a registry" "$(cat "$work/render.err")"
fi

# negative control: a counter without _total and a metric without help
printf '# TYPE bad_requests counter\nbad_requests 1\n' > "$work/bad.txt"
promtool check metrics < "$work/bad.txt" > "$work/out" 2>&1
if [ -s "$work/out" ]; then ok "promtool flags a known-bad exposition"; else
  bad "promtool flags a known-bad exposition" "it printed nothing: is it a real promtool?"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
