#!/usr/bin/env bash
# runtime-cli.sh - `edgeserve hardware` and `edgeserve config` on the recorded
# machines of tests/fixtures/hw: the detection, the tier, the plan, and the
# configuration layers (file < environment < flag) with their sources and
# their errors.
# Usage: tests/cli/runtime-cli.sh EDGESERVE
set -uo pipefail
es=${1:?usage: runtime-cli.sh EDGESERVE}
here=$(cd "$(dirname "$0")" && pwd)
fx=$here/../fixtures/hw
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# the environment must not leak into the checks
for v in $(env | grep -o '^EDGESERVE_[A-Z_]*'); do unset "$v"; done
pass=0 fail=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; shift; printf '  %s\n' "$@" | head -8; fail=$((fail + 1)); }
# has NAME OUTPUT-FILE LITERAL-LINE-PART...: every part appears in the output
has() {
  local name=$1 f=$2; shift 2
  for p in "$@"; do
    grep -qF -- "$p" "$f" || { bad "$name" "missing: $p" "$(cat "$f")"; return; }
  done
  ok "$name"
}
# fails NAME STATUS TEXT CMD...: exits with STATUS and says TEXT on stderr
fails() {
  local name=$1 want=$2 text=$3; shift 3
  "$@" > "$work/out" 2> "$work/err"
  local st=$?
  if [ $st -eq "$want" ] && grep -qF -- "$text" "$work/err"; then ok "$name"; else
    bad "$name" "status $st (want $want)" "$(cat "$work/err")"
  fi
}

"$es" hardware --root "$fx/pi4-1gb" > "$work/pi4"
has "Raspberry Pi 4 1 GB: board, tier, memory_optimized, 3 inference cores" "$work/pi4" \
  "machine     armv7l, Cortex-A72, Raspberry Pi 4 Model B" "tier        1GB" \
  "strategy    memory_optimized" "inference   3 threads on CPUs 1-3, pinned" \
  "background  1 thread on CPU 0, pinned"
"$es" hardware --root "$fx/orangepi5" > "$work/opi"
has "Orange Pi 5: A76 cluster is big and runs inference, A55 background" "$work/opi" \
  "cluster 0   CPUs 4-7: 4 x 2.40 GHz, capacity 1024 (big)" \
  "inference   4 threads on CPUs 4-7, pinned" "background  4 threads on CPUs 0-3, pinned" \
  "throttled   yes"
"$es" hardware --root "$fx/intel-hybrid" > "$work/intel"
has "hybrid Intel: P-core primary threads for inference, E-cores background, NVIDIA GPU" \
  "$work/intel" "inference   4 threads on CPUs 0,2,4,6, pinned" \
  "background  4 threads on CPUs 8-15, pinned" "gpu         1 NVIDIA: NVIDIA GeForce"
"$es" hardware --root "$fx/container-512m" > "$work/ct"
has "512 MB container: cgroup limit, CPU quota, nothing pinned" "$work/ct" \
  "cgroup v2 limit 512.0 MiB" "cpu quota   1.50 CPUs (plan for 2)" "tier        512MB" \
  "inference   1 thread on CPUs 0-7, not pinned"
"$es" hardware --root "$fx/orangepi5" --json > "$work/opi.json"
has "hardware --json carries the detection and the plan" "$work/opi.json" \
  '"board":	"Orange Pi 5"' '"inference_cpus":	[4, 5, 6, 7]' '"big":	true' \
  '"strategy":	"latency_optimized"'
if "$es" hardware > "$work/live" 2>&1 && grep -q '^tier ' "$work/live"; then
  ok "hardware on this machine"
else bad "hardware on this machine" "$(cat "$work/live")"; fi

# configuration layers
cat > "$work/a.ini" <<'INI'
; test
[batching]
max_batch = 8

[server]
port = 9090
INI
"$es" config --root "$fx/pi4-1gb" --config "$work/a.ini" > "$work/c1"
has "a file value beats the preset and names file:line" "$work/c1" \
  "max_batch = 8" "file $work/a.ini:3" "port = 9090"
EDGESERVE_BATCHING_MAX_BATCH=12 "$es" config --root "$fx/pi4-1gb" --config "$work/a.ini" \
  > "$work/c2"
has "the environment beats the file" "$work/c2" "max_batch = 12" "env EDGESERVE_BATCHING_MAX_BATCH"
EDGESERVE_BATCHING_MAX_BATCH=12 "$es" config --root "$fx/pi4-1gb" --config "$work/a.ini" \
  --set batching.max_batch=20 > "$work/c3"
has "a flag beats the environment" "$work/c3" "max_batch = 20" "flag"
"$es" config --root "$fx/pi4-1gb" --strategy latency_optimized > "$work/c4"
has "--strategy picks the preset whatever the hardware says" "$work/c4" \
  "strategy = latency_optimized" "max_batch = 4" "preset latency_optimized"
"$es" config --root "$fx/pi4-1gb" --json > "$work/c5.json"
has "config --json lists values with their sources" "$work/c5.json" \
  '"batching.max_batch":' '"source":	"preset"' '"env":	"EDGESERVE_BATCHING_MAX_BATCH"'
"$es" config --keys > "$work/keys"
has "config --keys documents every key" "$work/keys" "max_batch" "EDGESERVE_MEMORY_BUDGET"

fails "a bad value in the file names file, line and key" 1 "bad_value.ini:12" \
  "$es" config --config "$here/../fixtures/config/bad_value.ini"
fails "an unknown key in the environment is an error naming it" 1 "EDGESERVE_BATCHING_MAXBATCH" \
  env EDGESERVE_BATCHING_MAXBATCH=3 "$es" config
fails "an unknown --set key is an error naming it" 1 "[batching] nope: unknown key" \
  "$es" config --set batching.nope=1
fails "inference CPUs that do not exist are an error" 1 "runtime.inference_cpus" \
  "$es" hardware --root "$fx/pi4-1gb" --set runtime.inference_cpus=6-7
fails "a missing configuration file is an error naming it" 1 "/nonexistent.ini" \
  "$es" config --config /nonexistent.ini
fails "an unknown argument is a usage error" 2 "unknown argument" "$es" hardware --frobnicate
fails "a root that is not a Linux tree is an error" 1 "/nonexistent-root" \
  "$es" hardware --root /nonexistent-root

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
