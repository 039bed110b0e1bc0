#!/usr/bin/env bash
# bench/predict.sh - edgeserve vs fastText (Debian's /usr/bin/fasttext 0.9.2),
# side by side in one run: `predict-prob MODEL FILE` wall time, peak RSS, peak
# anonymous memory, byte-identical output, and time to first prediction, on
# three models trained here by fasttext (dense .bin, its quantized .ftz, and a
# default-bucket 2M-row .bin). See bench/README.md.
#
# Environment (all optional):
#   ES_BIN          edgeserve binary            (default <repo>/build/edgeserve)
#   FASTTEXT        fasttext binary             (default: fasttext on PATH)
#   BENCH_OUT       work dir: models, input, outputs (default <repo>/bench/out)
#   BENCH_DATA      dir with train.txt/test.txt (default <repo>/../shared/data/debian-sections)
#   BENCH_RUNS      timed runs per command, best is kept (default 3)
#   BENCH_REPEAT    copies of test.txt in the input      (default 20)
#   BENCH_FP_RUNS   runs of the time-to-first-prediction probe (default 5)
#   BENCH_SKIP_BIG  1: skip the 812 MB default-bucket model
#   BENCH_QUICK     1: development mode: REPEAT=2, RUNS=1, SKIP_BIG=1, and the
#                   table goes to BENCH_OUT instead of bench/results/
set -euo pipefail
export LC_ALL=C

T_START=$EPOCHREALTIME
die() { printf 'predict.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '[predict.sh %5.1fs] %s\n' "$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN{print b-a}')" "$*" >&2; }

# ---- configuration ------------------------------------------------------------
REPO=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel 2>/dev/null) ||
  die "cannot find the repository root (run from inside the edgeserve git checkout)"
ES_BIN=${ES_BIN:-$REPO/build/edgeserve}
FASTTEXT=${FASTTEXT:-$(command -v fasttext || true)}
DATA=${BENCH_DATA:-$REPO/../shared/data/debian-sections}
WORK=${BENCH_OUT:-$REPO/bench/out}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  RUNS=${BENCH_RUNS:-1}; REPEAT=${BENCH_REPEAT:-2}; SKIP_BIG=1
else
  RUNS=${BENCH_RUNS:-3}; REPEAT=${BENCH_REPEAT:-20}; SKIP_BIG=${BENCH_SKIP_BIG:-0}
fi
FP_RUNS=${BENCH_FP_RUNS:-5}
GNU_TIME=/usr/bin/time
FP_TEXT="some text"

# ---- preflight ------------------------------------------------------------------
[ -n "$FASTTEXT" ] && [ -x "$FASTTEXT" ] ||
  die "fasttext not found (apt-get install fasttext, or scripts/deps.sh bench, or set FASTTEXT=)"
[ -x "$ES_BIN" ] || die "edgeserve binary not found at $ES_BIN (run 'make' or set ES_BIN=)"
[ -x "$GNU_TIME" ] && "$GNU_TIME" -f %M -o /dev/null true 2>/dev/null ||
  die "GNU time not found at $GNU_TIME (apt-get install time, or scripts/deps.sh bench)"
[ -r "$DATA/train.txt" ] && [ -r "$DATA/test.txt" ] ||
  die "data not found: $DATA/{train,test}.txt (set BENCH_DATA=)"
for v in RUNS REPEAT FP_RUNS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
mkdir -p "$WORK/outputs"
ES_BIN=$(cd "$(dirname "$ES_BIN")" && pwd)/$(basename "$ES_BIN")

# awk helpers (outside of any timed region)
calc() { awk "BEGIN{ printf \"$1\", $2 }"; }
now() { printf '%s' "$EPOCHREALTIME"; }

# A fork-free ~5 ms nap for the memory sampler: read with a timeout on a pipe
# that never gets data (we hold both ends). Falls back to sleep(1).
if { exec {NAP_FD}<> <(:); } 2>/dev/null; then
  nap() { read -r -t 0.005 -u "$NAP_FD" _ || true; }
else
  nap() { sleep 0.005; }
fi

# ---- models ---------------------------------------------------------------------
# Each model is retrained only when missing or when its training command changed
# (the command is kept next to it in NAME.cmd).
train() { # train NAME FILE CMD...
  local name=$1 file=$2; shift 2
  local cmd="$*"
  if [ -s "$WORK/$file" ] && [ -f "$WORK/$name.cmd" ] && [ "$(cat "$WORK/$name.cmd")" = "$cmd" ]; then
    log "reusing $WORK/$file"
    return
  fi
  log "training $file: $cmd"
  rm -f "$WORK/$file" "$WORK/$name.cmd"
  local t0; t0=$(now)
  (cd "$WORK" && "$@" >"$WORK/$name.train.log" 2>&1) ||
    { tail -n 20 "$WORK/$name.train.log" >&2; die "training $file failed (log: $WORK/$name.train.log)"; }
  [ -s "$WORK/$file" ] || die "training did not produce $WORK/$file"
  printf '%s' "$cmd" >"$WORK/$name.cmd"
  log "trained $file in $(calc %.1f "$(now) - $t0") s"
}

cp -f "$DATA/train.txt" "$WORK/train.txt"
train dense dense.bin "$FASTTEXT" supervised -input train.txt -output dense -dim 50 -bucket 200000 \
  -wordNgrams 2 -minn 2 -maxn 4 -epoch 25 -lr 0.5 -thread 2 -verbose 0
# quantize reads dense.bin and writes dense.ftz; redo it whenever dense.bin is newer
if [ -s "$WORK/dense.ftz" ] && [ "$WORK/dense.ftz" -ot "$WORK/dense.bin" ]; then rm -f "$WORK/dense.ftz"; fi
train dense-ftz dense.ftz "$FASTTEXT" quantize -input train.txt -output dense -qnorm -retrain \
  -cutoff 100000 -thread 2
MODELS=(dense.bin dense.ftz)
if [ "$SKIP_BIG" != 1 ]; then
  train big big.bin "$FASTTEXT" supervised -input train.txt -output big -dim 100 -wordNgrams 2 \
    -minn 2 -maxn 4 -epoch 1 -thread 2 -verbose 0
  MODELS+=(big.bin)
fi
declare -A MODEL_DESC=(
  [dense.bin]="dense.bin (dim 50, bucket 200k, epoch 25)"
  [dense.ftz]="dense.ftz (quantized dense.bin, qnorm, cutoff 100k)"
  [big.bin]="big.bin (dim 100, bucket 2M default, epoch 1)"
)

# ---- input -----------------------------------------------------------------------
INPUT=$WORK/input-${REPEAT}x.txt
if [ ! -s "$INPUT" ] || [ "$INPUT" -ot "$DATA/test.txt" ]; then
  : >"$INPUT.tmp"
  for ((i = 0; i < REPEAT; i++)); do cat "$DATA/test.txt" >>"$INPUT.tmp"; done
  mv "$INPUT.tmp" "$INPUT"
fi
LINES=$(wc -l <"$INPUT")
log "input: $INPUT ($LINES lines = test.txt x $REPEAT)"

# ---- tools -----------------------------------------------------------------------
# A tool variant is a label plus the words that go between the binary's
# subcommand and MODEL ("" for none).
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)
probe_in=$WORK/probe.txt
head -n 50 "$DATA/test.txt" >"$probe_in"
THREADS_NOTE=
if "$ES_BIN" predict-prob --threads 1 "$WORK/dense.bin" "$probe_in" >"$WORK/probe.t1" 2>"$WORK/probe.err" &&
   "$ES_BIN" predict-prob "$WORK/dense.bin" "$probe_in" >"$WORK/probe.t0" 2>&1 &&
   cmp -s "$WORK/probe.t1" "$WORK/probe.t0"; then
  TOOLS=(fasttext "es1" "esN")
  THREADS_NOTE="edgeserve accepts --threads: measured with --threads 1 and with its default (all $NCPU online CPUs)."
else
  TOOLS=(fasttext "es")
  THREADS_NOTE="\`edgeserve predict-prob --threads 1 ...\` was rejected by this binary ($(head -c 120 "$WORK/probe.err" | tr '\n' ' ')); edgeserve was run without the option (its built-in default threading)."
fi
log "$THREADS_NOTE"
declare -A TOOL_NAME=([fasttext]="fasttext" [es]="edgeserve" [es1]="edgeserve --threads 1"
  [esN]="edgeserve (default: $NCPU threads)")
tool_cmd() { # tool_cmd TOOL SUBCMD -> prints nothing, fills CMD array
  case $1 in
    fasttext) CMD=("$FASTTEXT" "$2") ;;
    es)       CMD=("$ES_BIN" "$2") ;;
    es1)      CMD=("$ES_BIN" "$2" --threads 1) ;;
    esN)      CMD=("$ES_BIN" "$2") ;;
  esac
}
short() { # command line as it reads in the report: binaries by short name
  local s="$*"
  s=${s//"$FASTTEXT"/fasttext}; s=${s//"$ES_BIN"/edgeserve}; s=${s//"$WORK/"/}
  printf '%s' "$s"
}

# ---- measurement -----------------------------------------------------------------
# Peak RssAnon of the child of PID $1 (GNU time's child), in kB, by sampling
# /proc/CHILD/status every ~5 ms until it exits. A lower bound of the true peak.
sample_anon() {
  local tp=$1 pid= max=0 k v _u alive
  while [ -z "$pid" ] && [ -e "/proc/$tp" ]; do
    { read -r pid _u <"/proc/$tp/task/$tp/children"; } 2>/dev/null || true
    [ -n "$pid" ] || nap
  done
  while [ -n "$pid" ]; do
    alive=0
    { while read -r k v _u; do
        if [ "$k" = RssAnon: ]; then alive=1; ((v > max)) && max=$v; break; fi
      done <"/proc/$pid/status"; } 2>/dev/null || true
    [ "$alive" = 1 ] || break
    nap
  done
  echo "$max"
}

declare -A WALL RSS ANON FP CMDLINE
# measure MODEL TOOL: one warm-up run under GNU time + the RssAnon sampler (also
# warms the page cache), then RUNS timed runs; the best wall time is kept. Every
# run's output is written to a file; the last is compared with fasttext's.
measure() {
  local model=$1 tool=$2 key="$1|$2" out="$WORK/outputs/$1.$2.txt"
  local CMD; tool_cmd "$tool" predict-prob
  CMD+=("$WORK/$model" "$INPUT")
  CMDLINE[$key]="$(short "${CMD[@]}") > out.txt"
  log "$model / ${TOOL_NAME[$tool]}: memory run"
  local tf="$WORK/time.$$" af="$WORK/anon.$$"
  "$GNU_TIME" -f %M -o "$tf" -- "${CMD[@]}" >"$out" 2>"$WORK/stderr.$$" &
  local tp=$!
  sample_anon "$tp" >"$af" &
  local sp=$!
  local rc=0
  wait "$tp" || rc=$?
  wait "$sp" || true
  if [ "$rc" != 0 ]; then
    cat "$WORK/stderr.$$" >&2
    die "'${CMDLINE[$key]}' exited with status $rc"
  fi
  RSS[$key]=$(tail -n 1 "$tf")
  ANON[$key]=$(cat "$af")
  rm -f "$tf" "$af" "$WORK/stderr.$$"
  local best= t0 t1 dt r
  for ((r = 1; r <= RUNS; r++)); do
    t0=$EPOCHREALTIME
    "${CMD[@]}" >"$out"
    t1=$EPOCHREALTIME
    dt=$(calc %.6f "$t1 - $t0")
    if [ -z "$best" ] || awk -v a="$dt" -v b="$best" 'BEGIN{exit !(a < b)}'; then best=$dt; fi
  done
  WALL[$key]=$best
  log "$model / ${TOOL_NAME[$tool]}: best ${best}s, peak RSS ${RSS[$key]} kB, peak anon ${ANON[$key]} kB"
  if [ "$tool" != fasttext ]; then
    local ref="$WORK/outputs/$model.fasttext.txt"
    if ! cmp -s "$ref" "$out"; then
      printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
      printf '!!! FAIL: %s output differs from fasttext on %s\n' "${TOOL_NAME[$tool]}" "$model" >&2
      printf '!!! cmp %s %s:\n' "$ref" "$out" >&2
      cmp "$ref" "$out" >&2 || true
      printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' >&2
      exit 1
    fi
  fi
}

# first_prediction MODEL TOOL: `echo "some text" | CMD predict MODEL -`, best of
# FP_RUNS, warm page cache (the model was just read by the runs above).
first_prediction() {
  local model=$1 tool=$2 key="$1|$2" best= t0 t1 dt r
  local CMD; tool_cmd "$tool" predict
  CMD+=("$WORK/$model" -)
  # `predict` may not take --threads even where `predict-prob` does: then the
  # probe runs without it (noted in the commands).
  if ! echo "$FP_TEXT" | "${CMD[@]}" >/dev/null 2>&1; then
    [ "$tool" = es1 ] || die "'$(short "${CMD[@]}")' failed"
    tool_cmd esN predict
    CMD+=("$WORK/$model" -)
    echo "$FP_TEXT" | "${CMD[@]}" >/dev/null || die "'$(short "${CMD[@]}")' failed"
  fi
  for ((r = 1; r <= FP_RUNS; r++)); do
    t0=$EPOCHREALTIME
    echo "$FP_TEXT" | "${CMD[@]}" >/dev/null
    t1=$EPOCHREALTIME
    dt=$(calc %.6f "$t1 - $t0")
    if [ -z "$best" ] || awk -v a="$dt" -v b="$best" 'BEGIN{exit !(a < b)}'; then best=$dt; fi
  done
  FP[$key]=$best
  CMDLINE["fp|$key"]="echo \"$FP_TEXT\" | $(short "${CMD[@]}")"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for model in "${MODELS[@]}"; do
  for tool in "${TOOLS[@]}"; do measure "$model" "$tool"; done
  for tool in "${TOOLS[@]}"; do first_prediction "$model" "$tool"; done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ------------------------------------------------------------------------
ELAPSED=$(calc %.0f "$EPOCHREALTIME - $T_START")
DATE=$(date +%Y-%m-%d)
if [ "$QUICK" = 1 ]; then
  RESULT=$WORK/predict-$DATE-quick.md
else
  mkdir -p "$REPO/bench/results"
  RESULT=$REPO/bench/results/predict-$DATE.md
fi
mb() { calc %.1f "$1 / 1024"; }
cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
git_rev=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
ft_ver=$(dpkg-query -W -f='${Version}' fasttext 2>/dev/null || echo unknown)

{
  echo "# edgeserve vs fastText: predict-prob benchmark ($DATE)"
  [ "$QUICK" = 1 ] && printf '\n**QUICK MODE** (BENCH_QUICK=1): not for comparison.\n'
  echo
  echo "Input: test.txt x $REPEAT = $LINES lines. Wall time = best of $RUNS run(s), output written to a file;"
  echo "all outputs byte-identical to fasttext's (cmp). Warm page cache (nothing is dropped)."
  echo
  echo "| model | tool | wall s | lines/s | speedup vs fasttext | peak RSS MiB | peak anon MiB | anon % of fasttext peak RSS | first prediction ms |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|"
  for model in "${MODELS[@]}"; do
    ftk="$model|fasttext"
    for tool in "${TOOLS[@]}"; do
      k="$model|$tool"
      printf '| %s | %s | %.3f | %s | %.2fx | %s | %s | %.1f%% | %.1f |\n' \
        "${MODEL_DESC[$model]}" "${TOOL_NAME[$tool]}" "${WALL[$k]}" \
        "$(calc %.0f "$LINES / ${WALL[$k]}")" "$(calc %.6f "${WALL[$ftk]} / ${WALL[$k]}")" \
        "$(mb "${RSS[$k]}")" "$(mb "${ANON[$k]}")" \
        "$(calc %.6f "100 * ${ANON[$k]} / ${RSS[$ftk]}")" "$(calc %.6f "1000 * ${FP[$k]}")"
    done
  done
  echo
  echo "- speedup = fasttext wall / tool wall, same model. MiB = 2^20 bytes."
  echo "- peak RSS: GNU time %M (ru_maxrss). peak anon: highest RssAnon seen sampling"
  echo "  /proc/PID/status every ~5 ms during a separate warm-up run (a lower bound;"
  echo "  RssAnon has no kernel peak field). For edgeserve, the mmap'd model is file-backed"
  echo "  page cache (RssFile), shared and reclaimable, so peak RSS counts it but anon does not."
  echo "- first prediction: \`echo \"$FP_TEXT\" | TOOL predict MODEL -\`, wall time of the"
  echo "  whole process (start, load, one prediction, exit), best of $FP_RUNS, warm page cache."
  echo "- $THREADS_NOTE"
  echo
  echo "## Models"
  echo
  echo "| model | size MiB | trained by |"
  echo "|---|--:|---|"
  for model in "${MODELS[@]}"; do
    name=${model%.bin}; [ "$model" = dense.ftz ] && name=dense-ftz
    printf '| %s | %s | `%s` |\n' "$model" "$(calc %.1f "$(stat -c %s "$WORK/$model") / 1048576")" \
      "$(short "$(cat "$WORK/$name.cmd")")"
  done
  [ "$SKIP_BIG" = 1 ] && echo && echo "big.bin skipped (BENCH_SKIP_BIG=1 or BENCH_QUICK=1)."
  echo
  echo "Training data: train.txt ($(wc -l <"$DATA/train.txt") lines); models are trained once by"
  echo "fasttext (2 threads, so not bit-reproducible across retrains) and reused."
  echo
  echo "## Machine"
  echo
  echo "- CPU: $cpu; nproc: $(nproc); online CPUs: $NCPU; memory: $mem"
  echo "- kernel: $(uname -sr); $(uname -m)"
  echo "- fasttext: $FASTTEXT (Debian $ft_ver)"
  echo "- edgeserve: $ES_BIN (sha256 $(sha256sum "$ES_BIN" | cut -c1-12), modified $(date -r "$ES_BIN" '+%F %T'));"
  echo "  repository HEAD at run time: $git_rev (the binary may have been built from another state)"
  echo "- load average before / after: $LOAD_BEFORE / $LOAD_AFTER"
  echo "- script runtime: ${ELAPSED} s (including any training)"
  echo
  echo "## Commands"
  echo
  echo '```sh'
  for model in "${MODELS[@]}"; do
    for tool in "${TOOLS[@]}"; do echo "${CMDLINE[$model|$tool]}"; done
  done
  for model in "${MODELS[@]}"; do
    for tool in "${TOOLS[@]}"; do echo "${CMDLINE[fp|$model|$tool]}"; done
  done
  echo '```'
  echo
  echo "Reproduce: \`make bench\` (or \`bench/predict.sh\`; see bench/README.md)."
} >"$RESULT.tmp"
mv "$RESULT.tmp" "$RESULT"

cat "$RESULT"
echo
echo "Results written to ${RESULT#"$REPO"/} (${ELAPSED} s)."
echo "Reproduce this table with: make bench"
