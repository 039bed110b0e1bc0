#!/usr/bin/env bash
# bench/server.sh - `edgeserve serve` against a FastAPI + uvicorn +
# fastText-Python service serving the same model, and against nginx returning
# a fixed body (the HTTP ceiling of the machine), side by side in one run with
# wrk: requests/s, p50/p99 latency at 16 connections for single-text
# POST /v1/classify, idle RSS and time to ready. See docs/server/benchmark.md.
#
#   1. the model: mediagen writes the media corpus, `edgeserve supervised
#      -normalize default --deterministic` trains media.bin (fastText format,
#      read by both edgeserve and python3-fasttext) and media.esm (the same
#      weights plus the file-name normalizer), `edgeserve convert --int8`
#      makes int8/media.esm, the bundled model of `make model`;
#   2. each server in turn (FastAPI on media.bin, edgeserve on media.bin and
#      on int8/media.esm when the binary has `serve`, nginx), pinned to
#      SERVER_CPU (wrk, curl and this script run on LOAD_CPU): start (the
#      timestamp taken just before exec), poll GET /health until it answers
#      200 (ready ms), one checked POST, 1 s idle, VmRSS (idle RSS), a WARMUP
#      wrk run, ROUNDS measured wrk runs with the CPU time of the server and
#      of everything else on both CPUs, SIGTERM;
#   3. a markdown table to stdout and bench/results/server-YYYY-MM-DD.md.
#
# Every server is started on 127.0.0.1 on a free ephemeral port, and stopped
# by this script (also on error or Ctrl-C, by the EXIT trap).
#
# Environment (all optional):
#   ES_BIN        edgeserve binary                  (default <repo>/build/edgeserve)
#   ES_MEDIAGEN   mediagen binary (the corpus)      (default next to ES_BIN)
#   PYTHON        Python with fastapi, uvicorn, fasttext (default /usr/bin/python3)
#   NGINX, WRK    binaries                          (default: on PATH, /usr/sbin/nginx)
#   DURATION      measured wrk run per server       (default 10s)
#   WARMUP        warm-up wrk run per server        (default 1s; 0 skips it)
#   CONNECTIONS   wrk connections                   (default 16)
#   ROUNDS        measured runs per server; the one with the most req/s is
#                 reported (default 1; 3 on a shared machine, with DURATION=5s)
#   WRK_THREADS   wrk threads                       (default 1)
#   SERVER_CPU    CPU list the servers run on       (default 0)
#   LOAD_CPU      CPU list wrk and this script run on (default 1)
#   BENCH_TEXT    the text classified               (default "breaking bad")
#   BENCH_SERIES  the media series list (the corpus) (default <repo>/data/media/series.tsv)
#   ES_SERVE_ARGS extra flags for `edgeserve serve`, after the script's own
#                 (--data TMPDIR --set cache.entries=0 --set runtime.pin=false,
#                 see the comment at "3. edgeserve" below)
#   BENCH_RESULTS output file (default <repo>/bench/results/server-YYYY-MM-DD.md)
#   KEEP_TMP      1: keep the temporary directory (logs, wrk outputs, replies)
set -euo pipefail
export LC_ALL=C
shopt -u patsub_replacement 2>/dev/null || true # '&' literal in ${v//x/y}

T_START=$EPOCHREALTIME
die() { printf 'server.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '[server.sh %5.1fs] %s\n' "$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN{print b-a}')" "$*" >&2; }

# ---- configuration ------------------------------------------------------------
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ES_BIN=${ES_BIN:-$REPO/build/edgeserve}
ES_MEDIAGEN=${ES_MEDIAGEN:-$(dirname "$ES_BIN")/mediagen}
PYTHON=${PYTHON:-/usr/bin/python3}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
WRK=${WRK:-$(command -v wrk || true)}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
CONNECTIONS=${CONNECTIONS:-16}
ROUNDS=${ROUNDS:-1}
WRK_THREADS=${WRK_THREADS:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BENCH_TEXT=${BENCH_TEXT:-breaking bad}
RESULTS=${BENCH_RESULTS:-$REPO/bench/results/server-$(date +%F).md}
SERIES=${BENCH_SERIES:-$REPO/data/media/series.tsv}
ES_SERVE_ARGS=${ES_SERVE_ARGS:-}
LUA=$HERE/server/classify.lua
APP_DIR=$HERE/server
NGINX_TPL=$HERE/server/nginx.conf.in
READY_TIMEOUT=30 # s; FastAPI imports take ~1-2 s on a busy small machine

# The exact command, with the settings that were changed from their defaults.
CMDLINE=""
for v in ES_BIN ES_MEDIAGEN PYTHON NGINX WRK DURATION WARMUP CONNECTIONS ROUNDS WRK_THREADS \
  SERVER_CPU LOAD_CPU BENCH_TEXT BENCH_SERIES ES_SERVE_ARGS BENCH_RESULTS KEEP_TMP; do
  if printenv "$v" >/dev/null; then CMDLINE+="$v=$(printf '%q' "${!v}") "; fi
done
CMDLINE+="bench/server.sh"
export BENCH_TEXT # read by classify.lua

# ---- preflight ------------------------------------------------------------------
{ [ -n "$WRK" ] && [ -x "$WRK" ]; } || die "wrk not found (apt-get install wrk, or scripts/deps.sh bench)"
[ -x "$NGINX" ] || die "nginx not found at $NGINX (apt-get install nginx-light, or set NGINX=)"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"
command -v taskset >/dev/null || die "taskset not found (apt-get install util-linux)"
[ -x "$ES_BIN" ] || die "edgeserve binary not found at $ES_BIN (run 'make' or set ES_BIN=)"
[ -x "$ES_MEDIAGEN" ] || die "mediagen not found at $ES_MEDIAGEN (run 'make' or set ES_MEDIAGEN=)"
[ -r "$SERIES" ] || die "$SERIES not found (set BENCH_SERIES=)"
"$PYTHON" -c 'import fastapi, uvicorn, fasttext' 2>/dev/null ||
  die "$PYTHON cannot import fastapi, uvicorn and fasttext (apt-get install python3-fastapi" \
    "python3-uvicorn python3-fasttext, or set PYTHON=)"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $WRK_THREADS =~ ^[1-9][0-9]*$ ]] || die "WRK_THREADS must be a positive integer"
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION must be like 10s, 1m (wrk syntax)"
[[ $WARMUP =~ ^[0-9]+[smh]?$ ]] || die "WARMUP must be like 2s, or 0 to skip it"
case $BENCH_TEXT in *[\"\\]*) die "BENCH_TEXT must not contain quotes or backslashes" ;; esac
ES_BIN=$(cd "$(dirname "$ES_BIN")" && pwd)/$(basename "$ES_BIN")

# Pinning: servers on SERVER_CPU, everything else (this script, hence wrk,
# curl and the readiness poll) on LOAD_CPU. Skipped on a single-CPU machine.
NCPU=$(nproc)
PIN=1
if [ "$NCPU" -lt 2 ]; then
  PIN=0
  log "only $NCPU CPU: servers and wrk are not pinned and share it"
else
  taskset -pc "$LOAD_CPU" $$ >/dev/null || die "cannot pin to LOAD_CPU=$LOAD_CPU"
  taskset -c "$SERVER_CPU" true || die "cannot pin to SERVER_CPU=$SERVER_CPU"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgeserve-bench-server.XXXXXX")
PIDS=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  local p
  # only servers still running: stop_server removes each one it stopped
  for p in "${PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null || continue
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
      alive "$p" || break
      sleep 0.1
    done
    # shellcheck disable=SC2046 # the children too (an nginx worker outlives a killed master)
    alive "$p" && kill -KILL "$p" $(ps -o pid= --ppid "$p" 2>/dev/null) 2>/dev/null
  done
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "server.sh: kept $TMP" >&2
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers ----------------------------------------------------------------------
free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_ok PORT PATH: 0 when GET PATH answers 200. Fork-free (bash /dev/tcp),
# so the readiness poll can spin at a fraction of a millisecond per try.
http_ok() {
  local fd line
  { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  { printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&"$fd"; } 2>/dev/null || {
    exec {fd}>&-
    return 1
  }
  line=
  read -r -t 2 line <&"$fd" || true
  exec {fd}>&-
  [[ $line == HTTP/1.?" 200"* ]]
}

# start_server NAME CMD...: starts CMD in the background on SERVER_CPU; the
# child pins itself, takes the start timestamp and execs CMD, so the time
# counted is the server's own (no taskset or shell start in it).
start_server() {
  local name=$1
  shift
  (
    [ "$PIN" = 1 ] && taskset -pc "$SERVER_CPU" "$BASHPID" >/dev/null
    printf '%s' "$EPOCHREALTIME" >"$TMP/$name.t0"
    exec "$@"
  ) </dev/null >"$TMP/$name.log" 2>&1 &
  SRV_PID=$!
  PIDS+=("$SRV_PID")
}

# wait_ready NAME PID PORT [READY_FILE]: spins until GET /health answers 200
# (and READY_FILE is non-empty, when given); sets READY_MS and FILE_MS (time of
# the ready file's appearance, "-" without one), relative to NAME.t0.
wait_ready() {
  local name=$1 pid=$2 port=$3 rf=${4:-} t_health='' t_file='' t0 deadline
  deadline=$(awk -v a="$EPOCHREALTIME" -v t="$READY_TIMEOUT" 'BEGIN{printf "%d", a + t}')
  while :; do
    if [ -z "$t_health" ] && http_ok "$port" /health; then t_health=$EPOCHREALTIME; fi
    if [ -n "$rf" ] && [ -z "$t_file" ] && [ -s "$rf" ]; then t_file=$EPOCHREALTIME; fi
    if [ -n "$t_health" ] && { [ -z "$rf" ] || [ -n "$t_file" ]; }; then break; fi
    if ! alive "$pid"; then
      log "$name exited before it was ready; its output:"
      sed 's/^/    /' "$TMP/$name.log" >&2
      return 1
    fi
    if [ "${EPOCHREALTIME%.*}" -ge "$deadline" ]; then
      log "$name not ready after ${READY_TIMEOUT}s; its output:"
      sed 's/^/    /' "$TMP/$name.log" >&2
      return 1
    fi
  done
  t0=$(cat "$TMP/$name.t0")
  READY_MS=$(awk -v a="$t0" -v b="$t_health" 'BEGIN{printf "%.1f", (b - a) * 1000}')
  FILE_MS=-
  [ -n "$t_file" ] && FILE_MS=$(awk -v a="$t0" -v b="$t_file" 'BEGIN{printf "%.1f", (b - a) * 1000}')
  return 0
}

# rss_kib PID: VmRSS of PID and all its descendants (nginx: master + worker).
rss_kib() {
  local total=0 p v todo=("$1")
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}
    todo=("${todo[@]:1}")
    v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
    # shellcheck disable=SC2207
    todo+=($(ps -o pid= --ppid "$p" 2>/dev/null || true))
  done
  echo "$total"
}

# alive PID: running (a zombie, an exited child not yet reaped, is not)
alive() {
  kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# stop_server NAME PID: SIGTERM, wait up to 5 s, then SIGKILL; sets STOP_MS
# ("killed" when SIGTERM was not enough).
stop_server() {
  local name=$1 pid=$2 t0 i
  t0=$EPOCHREALTIME
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 500; i++)); do
    alive "$pid" || break # a zombie is stopped: our child, reaped below
    sleep 0.01
  done
  if alive "$pid"; then
    log "$name did not stop within 5 s of SIGTERM: SIGKILL"
    # shellcheck disable=SC2046 # the children too (an nginx worker outlives a killed master)
    kill -KILL "$pid" $(ps -o pid= --ppid "$pid" 2>/dev/null) 2>/dev/null || true
    STOP_MS=killed
  else
    STOP_MS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", (b - a) * 1000}')
  fi
  wait "$pid" 2>/dev/null || true
  # forget it: once reaped, its PID may be reused by an unrelated process
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# cpu_ticks PID: user + system CPU time of PID and its descendants, in ticks
cpu_ticks() {
  local total=0 p v todo=("$1")
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}
    todo=("${todo[@]:1}")
    # fields 14 and 15 (utime, stime) counted from the end of "(comm)"
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true)
    total=$((total + ${v:-0}))
    # shellcheck disable=SC2207
    todo+=($(ps -o pid= --ppid "$p" 2>/dev/null || true))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# cpu_stat CPU: "busy steal total" ticks of one CPU from /proc/stat (busy =
# user + nice + system + irq + softirq); "- - -" when CPU is not one number.
cpu_stat() {
  [[ $1 =~ ^[0-9]+$ ]] || { echo "- - -"; return 0; }
  awk -v c="cpu$1" '$1 == c {
    t = 0; for (i = 2; i <= NF; i++) t += $i
    print $2 + $3 + $4 + $7 + $8, $9, t }' /proc/stat
}

# other_pct "B0 ST0 T0" "B1 ST1 T1" OWN_TICKS: % of a CPU's time in which it
# was busy with something else than OWN_TICKS; "-" without figures.
other_pct() {
  local b0 st0 t0 b1 st1 t1
  read -r b0 st0 t0 <<<"$1"
  read -r b1 st1 t1 <<<"$2"
  [[ $b0$b1 =~ ^[0-9]+$ ]] || { echo -; return 0; }
  awk -v b=$((b1 - b0)) -v c="$3" -v t=$((t1 - t0)) \
    'BEGIN{ v = t > 0 ? (b - c) / t * 100 : 0; printf "%.0f", (v < 0 ? 0 : v) }'
}

# steal_pct "B0 ST0 T0" "B1 ST1 T1": % of a CPU's time the hypervisor took
steal_pct() {
  local b0 st0 t0 b1 st1 t1
  read -r b0 st0 t0 <<<"$1"
  read -r b1 st1 t1 <<<"$2"
  [[ $st0$st1 =~ ^[0-9]+$ ]] || { echo -; return 0; }
  awk -v s=$((st1 - st0)) -v t=$((t1 - t0)) 'BEGIN{ printf "%.0f", (t > 0 ? s / t * 100 : 0) }'
}

# wrk_run PORT DURATION OUT: wrk's output in OUT, "real user sys" in OUT.cpu
wrk_run() {
  local TIMEFORMAT='%R %U %S'
  { time "$WRK" -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$2" --latency -s "$LUA" \
    "http://127.0.0.1:$1/v1/classify" >"$3" 2>&1; } 2>"$3.cpu"
}

# wrk latency ("812.00us", "1.20ms", "2.00s") to milliseconds
to_ms() {
  awk -v x="$1" 'BEGIN {
    if (x ~ /us$/) v = substr(x, 1, length(x) - 2) / 1000
    else if (x ~ /ms$/) v = substr(x, 1, length(x) - 2)
    else if (x ~ /m$/) v = substr(x, 1, length(x) - 1) * 60000
    else if (x ~ /s$/) v = substr(x, 1, length(x) - 1) * 1000
    else { print "?"; exit }
    printf "%.3f", v
  }'
}

# ---- the servers ----------------------------------------------------------------
declare -A RPS P50 P99 RSS RSS_LOAD READY READY_FILE STOP NOTE ERRS REQS WRK_CPU SRV_CPU US_REQ OTHER STEAL OTHER_LOAD
ROWS=()
REQ_BODY="{\"text\": \"$BENCH_TEXT\", \"k\": 1}"

# measure_round NAME PID PORT OUT: one measured wrk run; fills M[] with its
# figures (rps p50 p99 reqs errs wrk_cpu srv_cpu us_req other steal).
declare -A M
measure_round() {
  local name=$1 pid=$2 port=$3 w=$4 c0 c1 s0 s1 l0 l1 wall wu ws
  s0=$(cpu_stat "$SERVER_CPU")
  l0=$(cpu_stat "$LOAD_CPU")
  c0=$(cpu_ticks "$pid")
  wrk_run "$port" "$DURATION" "$w"
  c1=$(cpu_ticks "$pid")
  s1=$(cpu_stat "$SERVER_CPU")
  l1=$(cpu_stat "$LOAD_CPU")
  if ! alive "$pid"; then
    log "$name exited during the measured run; its output:"
    sed 's/^/    /' "$TMP/$name.log" >&2
    return 2
  fi
  M[rps]=$(awk '/^Requests\/sec:/{printf "%.0f", $2}' "$w")
  if [ -z "${M[rps]}" ]; then
    log "$name: no figures in the wrk output:"
    sed 's/^/    /' "$w" >&2
    return 1
  fi
  M[p50]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$w")")
  M[p99]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$w")")
  M[reqs]=$(awk '/ requests in /{print $1}' "$w")
  M[errs]=$(awk '/Non-2xx or 3xx responses:/{n += $NF}
    /Socket errors:/{gsub(/,/, ""); n += $4 + $6 + $8 + $10} END{print n + 0}' "$w")
  read -r wall wu ws <"$w.cpu" || true
  M[wrk_cpu]=$(awk -v r="$wall" -v u="$wu" -v s="$ws" 'BEGIN{printf "%.0f", (r > 0 ? (u + s) / r * 100 : 0)}')
  M[srv_cpu]=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v r="$wall" 'BEGIN{printf "%.0f", (r > 0 ? t / hz / r * 100 : 0)}')
  M[us_req]=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="${M[reqs]}" 'BEGIN{printf "%.1f", (n > 0 ? t / hz / n * 1e6 : 0)}')
  # what else ran on the two CPUs meanwhile (other processes, the VM's steal);
  # on one CPU (PIN=0) the load CPU's figure is not separate
  M[other]=$(other_pct "$s0" "$s1" $((c1 - c0)))
  M[steal]=$(steal_pct "$s0" "$s1")
  M[other_load]=-
  [ "$PIN" = 1 ] && M[other_load]=$(other_pct "$l0" "$l1" \
    "$(awk -v u="$wu" -v s="$ws" -v hz="$CLK_TCK" 'BEGIN{printf "%d", (u + s) * hz}')")
}

# bench_server NAME PORT EXPECT READY_FILE CMD...: one server, start to stop.
# EXPECT: an extended regex the /v1/classify reply must match ("" for none).
bench_server() {
  local name=$1 port=$2 expect=$3 rf=$4 code pid
  shift 4
  ROWS+=("$name")
  log "$name: starting on 127.0.0.1:$port"
  start_server "$name" "$@"
  pid=$SRV_PID
  if ! wait_ready "$name" "$pid" "$port" "$rf"; then
    stop_server "$name" "$pid"
    NOTE[$name]="did not start (see the log above)"
    return 1
  fi
  READY[$name]=$READY_MS
  READY_FILE[$name]=$FILE_MS
  code=$(curl -sS -o "$TMP/$name.reply" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data "$REQ_BODY" \
    "http://127.0.0.1:$port/v1/classify" 2>"$TMP/$name.curl") || code="curl failed: $(cat "$TMP/$name.curl")"
  if [ "$code" != 200 ] || { [ -n "$expect" ] && ! grep -qE -- "$expect" "$TMP/$name.reply"; }; then
    log "$name: POST /v1/classify answered $code: $(head -c 300 "$TMP/$name.reply" 2>/dev/null)"
    stop_server "$name" "$pid"
    NOTE[$name]="wrong reply to POST /v1/classify (HTTP $code)"
    return 1
  fi
  sleep 1
  RSS[$name]=$(rss_kib "$pid")
  log "$name: ready in ${READY_MS} ms, idle RSS ${RSS[$name]} KiB, reply $(head -c 200 "$TMP/$name.reply")"
  if [ "$WARMUP" != 0 ] && [ "$WARMUP" != 0s ]; then
    wrk_run "$port" "$WARMUP" "$TMP/$name.warmup"
  fi
  local i best=-1 errs=0 DIED=0
  for ((i = 1; i <= ROUNDS; i++)); do
    measure_round "$name" "$pid" "$port" "$TMP/$name.wrk.$i" || {
      [ $? = 2 ] && DIED=1 && break
      continue
    }
    errs=$((errs + M[errs]))
    [ "$ROUNDS" = 1 ] || log "$name: round $i: ${M[rps]} req/s, p99 ${M[p99]} ms, other load ${M[other]} % / ${M[other_load]} %"
    if [ "${M[rps]}" -gt "$best" ]; then
      best=${M[rps]}
      RPS[$name]=${M[rps]} P50[$name]=${M[p50]} P99[$name]=${M[p99]} REQS[$name]=${M[reqs]}
      WRK_CPU[$name]=${M[wrk_cpu]} SRV_CPU[$name]=${M[srv_cpu]} US_REQ[$name]=${M[us_req]}
      OTHER[$name]=${M[other]} STEAL[$name]=${M[steal]} OTHER_LOAD[$name]=${M[other_load]}
    fi
  done
  ERRS[$name]=$errs
  RSS_LOAD[$name]=$(rss_kib "$pid")
  stop_server "$name" "$pid"
  STOP[$name]=$STOP_MS
  if [ "$DIED" = 1 ]; then
    unset "RPS[$name]"
    NOTE[$name]="exited during the measured run (see the log above)"
    return 1
  fi
  if [ -z "${RPS[$name]:-}" ]; then
    NOTE[$name]="wrk gave no figures"
    return 1
  fi
  [ "${ERRS[$name]}" = 0 ] || log "WARNING: $name: ${ERRS[$name]} non-2xx responses or socket errors"
  log "$name: ${RPS[$name]} req/s, p50 ${P50[$name]} ms, p99 ${P99[$name]} ms"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
FAILED=0

# 1. the model
log "training the model (media corpus, edgeserve supervised --deterministic)"
"$ES_MEDIAGEN" --series "$SERIES" --seed 1 --per-series 60 --with-labels >"$TMP/train.txt"
"$ES_BIN" supervised -input "$TMP/train.txt" -output "$TMP/media" -normalize default \
  -dim 32 -minn 2 -maxn 5 -wordNgrams 2 -bucket 100000 -epoch 25 -lr 0.5 \
  --deterministic -seed 1 -verbose 0 >"$TMP/train.log" 2>&1 ||
  { cat "$TMP/train.log" >&2; die "training failed"; }
mkdir -p "$TMP/int8"
"$ES_BIN" convert "$TMP/media.esm" "$TMP/int8/media.esm" --int8 >/dev/null
EXPECT_LABEL=$(printf '%s\n' "$BENCH_TEXT" | "$ES_BIN" predict "$TMP/media.bin" - 1)
EXPECT_LABEL=${EXPECT_LABEL#__label__}
[ -n "$EXPECT_LABEL" ] || die "the model predicts no label for '$BENCH_TEXT'"
log "model: $TMP/media.bin ($(stat -c %s "$TMP/media.bin") bytes); '$BENCH_TEXT' -> $EXPECT_LABEL"
# the label as a JSON string, with or without fastText's prefix
EXPECT_RE="\"(__label__)?$(printf '%s' "$EXPECT_LABEL" | sed 's/[][\.*^$+?(){}|/]/\\&/g')\""

# 2. FastAPI + uvicorn + fastText (no __pycache__ left in bench/server/)
FA=fastapi
port=$(free_port)
bench_server "$FA" "$port" "$EXPECT_RE" "" \
  env FT_MODEL="$TMP/media.bin" PYTHONDONTWRITEBYTECODE=1 "$PYTHON" -m uvicorn fastapi_app:app --app-dir "$APP_DIR" \
  --host 127.0.0.1 --port "$port" --workers 1 --log-level warning --no-access-log || FAILED=1

# 3. edgeserve, when the binary has `serve`
ES_ROWS=()
SERVE_MISSING=
# `serve --help` under timeout: a serve that ignored --help would start serving
serve_help=$(timeout 5 "$ES_BIN" serve --help 2>&1 </dev/null || true)
if grep -qi 'unknown command' <<<"$serve_help"; then
  SERVE_MISSING="$ES_BIN has no 'serve' command yet: the edgeserve rows were not measured"
  log "NOTE: $SERVE_MISSING"
else
  # Its defaults, but: the history database in the temporary directory (not
  # ./data); no response cache: every request here is the same text, so with
  # the cache on all but the first would be answered from it, while FastAPI
  # computes each one; and no pinning of its own: edgeserve's plan ignores
  # the affinity mask it was started with (under taskset -c 0 it pins its
  # inference thread to CPU 1, wrk's), so its threads keep the mask they
  # inherit, SERVER_CPU, like the other servers' processes. ES_SERVE_ARGS
  # comes last and can change all three.
  # shellcheck disable=SC2206 # ES_SERVE_ARGS: flags split on spaces
  extra=($ES_SERVE_ARGS)
  for m in "bin:$TMP/media.bin" "esm:$TMP/int8/media.esm"; do
    name=edgeserve-${m%%:*}
    ES_ROWS+=("$name")
    port=$(free_port)
    mkdir -p "$TMP/$name.data"
    bench_server "$name" "$port" "$EXPECT_RE" "$TMP/$name.ready" \
      "$ES_BIN" serve --host 127.0.0.1 --port "$port" --model "${m#*:}" \
      --ready-file "$TMP/$name.ready" --data "$TMP/$name.data" --set cache.entries=0 --set runtime.pin=false \
      "${extra[@]}" || FAILED=1
  done
fi

# 4. nginx with a fixed body: edgeserve's reply when there is one (the same
# size), else FastAPI's, else one of the same shape.
NG_BODY="{\"predictions\":[{\"label\":\"$EXPECT_LABEL\",\"probability\":1.0000057220458984}]}"
BODY_FROM="a fixed reply of FastAPI's shape"
for src in edgeserve-bin "$FA"; do
  if [ -s "$TMP/$src.reply" ] && [ -n "${RPS[$src]:-}" ]; then
    b=$(tr -d '\n' <"$TMP/$src.reply")
    case $b in *[\'\\\$]*) continue ;; esac # would need escaping in nginx.conf
    NG_BODY=$b
    BODY_FROM="$src's reply"
    break
  fi
done
port=$(free_port)
mkdir -p "$TMP/nginx"
conf=$(cat "$NGINX_TPL")
conf=${conf//@DIR@/$TMP/nginx}
conf=${conf//@PORT@/$port}
conf=${conf//@BODY@/$NG_BODY}
printf '%s\n' "$conf" >"$TMP/nginx/nginx.conf"
bench_server nginx "$port" "" "" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" \
  -e "$TMP/nginx/nginx-error.log" -g 'daemon off;' || FAILED=1

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report -------------------------------------------------------------------------
ratio() { # ratio NAME REF -> "x.xx×" or "-"
  if [ -n "${RPS[$1]:-}" ] && [ -n "${RPS[$2]:-}" ] && [ "${RPS[$2]}" != 0 ]; then
    awk -v a="${RPS[$1]}" -v b="${RPS[$2]}" 'BEGIN{printf "%.2fx", a / b}'
  else
    echo -
  fi
}
mib() { [ -n "${1:-}" ] && awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}' || echo -; }
label() {
  case $1 in
  fastapi) echo "FastAPI + uvicorn + fastText (1 worker)" ;;
  edgeserve-bin) echo "edgeserve serve (media.bin, f32)" ;;
  edgeserve-esm) echo "edgeserve serve (media.esm, int8 + normalizer)" ;;
  nginx) echo "nginx, fixed body (1 worker)" ;;
  *) echo "$1" ;;
  esac
}
cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
[ -n "$cpu_model" ] || cpu_model=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/{print $2; exit}')
mem=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
py_versions=$("$PYTHON" - <<'EOF' 2>/dev/null
import importlib.util, platform, fastapi, uvicorn, numpy, pydantic
try:
    from importlib.metadata import version
    ft = version("fasttext")
except Exception:
    ft = "?"
loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
http = "httptools" if importlib.util.find_spec("httptools") else "h11"
print(f"Python {platform.python_version()}, FastAPI {fastapi.__version__}, "
      f"uvicorn {uvicorn.__version__} (loop {loop}, http {http}), fasttext {ft}, "
      f"numpy {numpy.__version__}, pydantic {pydantic.VERSION}")
EOF
)
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo ?)
git -C "$REPO" diff --quiet HEAD 2>/dev/null || commit+=" (with uncommitted changes)"
pin_line="servers on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU (taskset)"
[ "$PIN" = 1 ] || pin_line="not pinned (1 CPU)"

report() {
  echo "## Server benchmark: single-text POST /v1/classify, $CONNECTIONS connections"
  echo
  echo "| server | req/s | p50 ms | p99 ms | vs FastAPI | vs nginx | idle RSS MiB | ready ms |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|"
  local r
  for r in "$FA" "${ES_ROWS[@]}" nginx; do
    if [ -n "${RPS[$r]:-}" ]; then
      echo "| $(label "$r") | ${RPS[$r]} | ${P50[$r]} | ${P99[$r]} | $(ratio "$r" "$FA") | $(ratio "$r" nginx) | $(mib "${RSS[$r]:-}") | ${READY[$r]:--} |"
    else
      echo "| $(label "$r") | ${NOTE[$r]:-not measured} | | | | | | |"
    fi
  done
  [ -z "$SERVE_MISSING" ] || echo "| edgeserve serve | not measured: $SERVE_MISSING | | | | | | |"
  local busy=""
  for r in "$FA" "${ES_ROWS[@]}" nginx; do
    if { [[ ${OTHER[$r]:--} =~ ^[0-9]+$ ]] && [ "${OTHER[$r]}" -gt 20 ]; } ||
      { [[ ${OTHER_LOAD[$r]:--} =~ ^[0-9]+$ ]] && [ "${OTHER_LOAD[$r]}" -gt 20 ]; }; then
      busy+=" $(label "$r") ${OTHER[$r]} % / ${OTHER_LOAD[$r]} %,"
    fi
  done
  if [ -n "$busy" ]; then
    echo
    echo "**Warning: the CPUs were shared with other work during the run** (other load on the" \
      "server / wrk CPU:${busy%,})."
    echo "Those rows understate throughput and overstate p99; rerun on a quiet machine (details below)."
  fi
  echo
  echo "Machine: $NCPU CPUs ($cpu_model), $mem, Linux $(uname -r); load average" \
    "$LOAD_BEFORE before, $LOAD_AFTER after. Pinning: $pin_line."
  echo
  echo "Command: \`$CMDLINE\` (git $commit, $(date '+%F %H:%M %Z'))."
  echo "Each server: \`taskset -c $LOAD_CPU wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency" \
    "-s bench/server/classify.lua http://127.0.0.1:PORT/v1/classify\` after a $WARMUP warm-up run$([ "$ROUNDS" = 1 ] || echo ", best req/s of $ROUNDS runs");" \
    "body \`$REQ_BODY\` (already normalised text, so normalisation does not matter)."
  echo
  echo "Model: media.bin, trained by \`edgeserve supervised -normalize default --deterministic\` on the" \
    "media corpus ($(stat -c %s "$TMP/media.bin") bytes, served by FastAPI and the edgeserve .bin row);" \
    "media.esm is it converted to int8 with its normalizer (the bundled model of \`make model\`)." \
    "nginx returns $BODY_FROM ($(printf '%s' "$NG_BODY" | wc -c) bytes)."
  if [ ${#ES_ROWS[@]} -gt 0 ]; then
    echo
    echo "edgeserve: \`edgeserve serve --model FILE --data TMPDIR --set cache.entries=0 --set runtime.pin=false${ES_SERVE_ARGS:+ $ES_SERVE_ARGS}\`:" \
      "its default configuration (history recorded in SQLite, batching, I/O threads as planned)" \
      "without the response cache, which would answer every one of these identical requests" \
      "but the first from memory while FastAPI computes each, and without its own pinning, which" \
      "ignores taskset's mask (its threads stay on the server CPU like the other servers')."
  fi
  echo
  echo "Versions: $("$WRK" -v 2>&1 | head -1 | awk '{print $1, $2}'); $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'); $py_versions."
  echo
  echo "### Details"
  echo
  echo "| server | requests | errors | server CPU % | server CPU us/req | wrk CPU % | other load on server CPU % | other load on wrk CPU % | steal % | ready ms (/health) | ready ms (ready file) | RSS after load MiB | stop on SIGTERM ms |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  for r in "$FA" "${ES_ROWS[@]}" nginx; do
    [ -n "${RPS[$r]:-}" ] || continue
    echo "| $(label "$r") | ${REQS[$r]} | ${ERRS[$r]} | ${SRV_CPU[$r]} | ${US_REQ[$r]} | ${WRK_CPU[$r]} | ${OTHER[$r]} | ${OTHER_LOAD[$r]} | ${STEAL[$r]} | ${READY[$r]} | ${READY_FILE[$r]} | $(mib "${RSS_LOAD[$r]:-}") | ${STOP[$r]} |"
  done
  echo
  echo "requests: in the reported run. errors: non-2xx replies + socket errors counted by wrk, over"
  echo "all measured runs. server CPU: user + system time of the server's processes during the"
  echo "reported run, per second of it (100 % = the whole server"
  echo "CPU) and per request (less sensitive to other load on the machine than req/s). wrk CPU near"
  echo "100 % means the load generator, not the server, set the pace. other load: busy time of the"
  echo "server CPU not spent by the server, and of the wrk CPU not spent by wrk (other processes"
  echo "and interrupts; rows with a lot of it measured shared CPUs: a busy wrk CPU slows the load"
  echo "as surely as a busy server CPU slows the server); steal: time the hypervisor took from the"
  echo "server CPU. idle RSS: VmRSS (nginx: master"
  echo "+ worker) after start, one request and 1 s idle. ready: from just before exec to the first"
  echo "200 to GET /health, polled without forking from the load CPU."
  if [ ${#ES_ROWS[@]} -gt 0 ]; then
    echo
    echo "### Requirements (edgeserve)"
    echo
    echo "| requirement | media.bin | media.esm |"
    echo "|---|---|---|"
    req_row ">= 10x FastAPI req/s" 'r >= 10 * f' "$FA"
    req_row ">= 0.5x nginx req/s (aim 0.7x)" 'r >= 0.5 * f' nginx
    req_row "p99 <= 2 ms" 'p <= 2' ""
    req_row "idle RSS <= 15 MiB (media model: the .esm row)" 'k <= 15 * 1024' ""
    req_row "ready <= 100 ms after start" 'm <= 100' ""
  fi
}
# req_row TEXT AWK_CONDITION REF: PASS/FAIL per edgeserve row; the awk
# condition sees r (req/s), f (REF's req/s), p (p99 ms), k (idle RSS KiB), m (ready ms).
req_row() {
  local line="| $1 |" r v
  for r in edgeserve-bin edgeserve-esm; do
    if [ -z "${RPS[$r]:-}" ] || { [ -n "$3" ] && [ -z "${RPS[$3]:-}" ]; }; then
      line+=" - |"
      continue
    fi
    v=$(awk -v r="${RPS[$r]}" -v f="${RPS[${3:-$r}]}" -v p="${P99[$r]}" -v k="${RSS[$r]}" \
      -v m="${READY[$r]}" "BEGIN{ print ((${2}) ? \"PASS\" : \"FAIL\") }")
    line+=" $v |"
  done
  echo "$line"
}

mkdir -p "$(dirname "$RESULTS")"
report | tee "$RESULTS"
log "table written to $RESULTS"
[ -z "$SERVE_MISSING" ] || log "NOTE: $SERVE_MISSING"
if [ "$FAILED" = 1 ]; then
  log "FAIL: a server did not start, answered wrongly or gave no figures (see above)"
  exit 1
fi
exit 0
