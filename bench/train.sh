#!/usr/bin/env bash
# bench/train.sh - edgeserve vs fastText (Debian's /usr/bin/fasttext 0.9.2),
# side by side in one run: `supervised` training wall time, peak RSS and P@1 on
# test.txt for each seed, then `quantize` of each tool's first-seed model
# (wall time, peak RSS, .ftz size, P@1). fasttext must load every edgeserve
# model and print the same P@1 line as `edgeserve test` on it. See
# bench/README.md.
#
# Environment (all optional):
#   ES_BIN       edgeserve binary            (default <repo>/build/edgeserve)
#   FASTTEXT     fasttext binary             (default: fasttext on PATH)
#   BENCH_OUT    work dir: models, logs, test outputs (default <repo>/bench/out/train)
#   BENCH_DATA   dir with train.txt/test.txt (default <repo>/../shared/data/debian-sections)
#   BENCH_SEEDS  training seeds, space or comma separated (default "1 2 3");
#                the first one's models are quantized
#   BENCH_QUICK  1: development mode: -epoch 5, seed 1 only (unless BENCH_SEEDS
#                is set), and the table goes to BENCH_OUT instead of bench/results/
set -euo pipefail
export LC_ALL=C

T_START=$EPOCHREALTIME
die() { printf 'train.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '[train.sh %5.1fs] %s\n' "$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN{print b-a}')" "$*" >&2; }

# ---- configuration ------------------------------------------------------------
REPO=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel 2>/dev/null) ||
  die "cannot find the repository root (run from inside the edgeserve git checkout)"
ES_BIN=${ES_BIN:-$REPO/build/edgeserve}
FASTTEXT=${FASTTEXT:-fasttext}
DATA=${BENCH_DATA:-$REPO/../shared/data/debian-sections}
WORK=${BENCH_OUT:-$REPO/bench/out/train}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  EPOCH=5; SEEDS_IN=${BENCH_SEEDS:-1}
else
  EPOCH=25; SEEDS_IN=${BENCH_SEEDS:-1 2 3}
fi
read -r -a SEEDS <<<"${SEEDS_IN//,/ }"
GNU_TIME=/usr/bin/time
# Every tool command runs under timeout(1): a hung or runaway process ends the
# run instead of blocking it (fastText needs ~10-30 s per training here).
CMD_TIMEOUT=1200
# The flags under test, identical for both tools. -seed N and -input/-output
# are added per run.
TRAIN_FLAGS=(-dim 50 -bucket 200000 -wordNgrams 2 -minn 2 -maxn 4 -epoch "$EPOCH" -lr 0.5 -thread 2)
QUANT_FLAGS=(-qnorm -retrain -cutoff 100000 -thread 2)

# ---- preflight ------------------------------------------------------------------
# A bare name (FASTTEXT=fasttext) is looked up on PATH.
[[ $FASTTEXT == */* ]] || FASTTEXT=$(command -v "$FASTTEXT" || true)
[[ $ES_BIN == */* ]] || ES_BIN=$(command -v "$ES_BIN" || echo "$ES_BIN")
[ -n "$FASTTEXT" ] && [ -x "$FASTTEXT" ] ||
  die "fasttext not found (apt-get install fasttext, or scripts/deps.sh bench, or set FASTTEXT=)"
[ -x "$ES_BIN" ] || die "edgeserve binary not found at $ES_BIN (run 'make' or set ES_BIN=)"
[ -x "$GNU_TIME" ] && "$GNU_TIME" -f %M -o /dev/null true 2>/dev/null ||
  die "GNU time not found at $GNU_TIME (apt-get install time, or scripts/deps.sh bench)"
command -v timeout >/dev/null || die "timeout(1) not found (coreutils)"
[ -r "$DATA/train.txt" ] && [ -r "$DATA/test.txt" ] ||
  die "data not found: $DATA/{train,test}.txt (set BENCH_DATA=)"
[ ${#SEEDS[@]} -gt 0 ] || die "BENCH_SEEDS is empty"
declare -A seen=()
for s in "${SEEDS[@]}"; do
  [[ $s =~ ^[0-9]+$ ]] || die "BENCH_SEEDS must be non-negative integers, got '$s'"
  [ -z "${seen[$s]:-}" ] || die "BENCH_SEEDS lists seed $s twice"
  seen[$s]=1
done
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
ES_BIN=$(cd "$(dirname "$ES_BIN")" && pwd)/$(basename "$ES_BIN")
FASTTEXT=$(cd "$(dirname "$FASTTEXT")" && pwd)/$(basename "$FASTTEXT")
QSEED=${SEEDS[0]}

# awk helpers (outside of any timed region)
calc() { awk "BEGIN{ printf \"$1\", $2 }"; }
mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.6f", s / NR }'; }

declare -A TOOL_BIN=([ft]="$FASTTEXT" [es]="$ES_BIN")
declare -A TOOL_NAME=([ft]="fasttext" [es]="edgeserve")
short() { # command line as it reads in the report: binaries by short name
  local s="$*"
  s=${s//"$FASTTEXT"/fasttext}; s=${s//"$ES_BIN"/edgeserve}; s=${s//"$WORK/"/}
  printf '%s' "$s"
}

# ---- measurement -----------------------------------------------------------------
declare -A WALL RSS P1 SIZE CMDLINE
COMPAT_FAILS=0
COMPAT_CHECKS=0
COMPAT_LINES=()

loud() {
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
  printf '!!! %s\n' "$@" >&2
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' >&2
}

# timed KEY LOGFILE CMD...: runs CMD in WORK under GNU time (and timeout), all
# of its output to LOGFILE; WALL[KEY] = elapsed s (%e), RSS[KEY] = peak RSS kB (%M).
timed() {
  local key=$1 logf=$2; shift 2
  local tf="$WORK/time.$$" rc=0
  CMDLINE[$key]=$(short "$@")
  (cd "$WORK" && timeout "$CMD_TIMEOUT" "$GNU_TIME" -f '%e %M' -o "$tf" -- "$@" >"$logf" 2>&1) || rc=$?
  if [ "$rc" != 0 ]; then
    tail -n 20 "$logf" | tr '\r' '\n' | tail -n 20 >&2
    rm -f "$tf"
    [ "$rc" = 124 ] && die "'${CMDLINE[$key]}' ran past ${CMD_TIMEOUT} s and was killed (log: $logf)"
    die "'${CMDLINE[$key]}' exited with status $rc (log: $logf)"
  fi
  local e m
  read -r e m < <(tail -n 1 "$tf")
  rm -f "$tf"
  [[ $e =~ ^[0-9.]+$ && $m =~ ^[0-9]+$ ]] || die "cannot parse GNU time output '$e $m' for '${CMDLINE[$key]}'"
  WALL[$key]=$e
  RSS[$key]=$m
}

# p_at_1 BIN MODEL OUTFILE: `BIN test MODEL test.txt` > OUTFILE; prints its P@1
# line (tab included). Returns non-zero if the command fails or prints none.
p_at_1() {
  local bin=$1 model=$2 out=$3
  (cd "$WORK" && timeout "$CMD_TIMEOUT" "$bin" test "$model" test.txt >"$out" 2>"$out.err") || return 1
  awk -F '\t' '$1 == "P@1" { print; found = 1; exit } END { exit !found }' "$out"
}

# evaluate TOOL MODEL KEY: P@1 with the tool's own `test`; for edgeserve models,
# also fasttext's `test` on the same file, which must print the same P@1 line.
evaluate() {
  local tool=$1 model=$2 key=$3 line ftline
  line=$(p_at_1 "${TOOL_BIN[$tool]}" "$model" "$WORK/$model.test.$tool.txt") ||
    die "'$(short "${TOOL_BIN[$tool]}") test $model test.txt' failed or printed no P@1 line (see $WORK/$model.test.$tool.txt{,.err})"
  P1[$key]=$(cut -f 2 <<<"$line")
  CMDLINE["test|$key"]="$(short "${TOOL_BIN[$tool]}") test $model test.txt"
  [ "$tool" = es ] || return 0
  COMPAT_CHECKS=$((COMPAT_CHECKS + 1))
  if ! ftline=$(p_at_1 "$FASTTEXT" "$model" "$WORK/$model.test.ft.txt"); then
    COMPAT_FAILS=$((COMPAT_FAILS + 1))
    COMPAT_LINES+=("$model: fasttext test failed or printed no P@1 line (edgeserve: \`$line\`)")
    loud "FAIL: fasttext cannot evaluate edgeserve's $model" \
      "$(short "$FASTTEXT") test $model test.txt:" \
      "$(tail -n 5 "$WORK/$model.test.ft.txt.err" "$WORK/$model.test.ft.txt" 2>/dev/null)"
  elif [ "$ftline" != "$line" ]; then
    COMPAT_FAILS=$((COMPAT_FAILS + 1))
    COMPAT_LINES+=("$model: fasttext \`$ftline\` != edgeserve \`$line\`")
    loud "FAIL: fasttext and edgeserve disagree on edgeserve's $model" \
      "fasttext test:  $ftline" "edgeserve test: $line"
  else
    COMPAT_LINES+=("$model: both print \`$line\`")
  fi
  CMDLINE["xtest|$key"]="$(short "$FASTTEXT") test $model test.txt"
}

cp -f "$DATA/train.txt" "$WORK/train.txt"
cp -f "$DATA/test.txt" "$WORK/test.txt"
log "work dir $WORK; seeds ${SEEDS[*]}; epoch $EPOCH"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# Training: the tool order alternates from one seed to the next (edgeserve first
# on the first seed, so that a binary without `supervised` fails early).
order=(es ft)
for seed in "${SEEDS[@]}"; do
  for tool in "${order[@]}"; do
    prefix=$tool-seed$seed
    rm -f "$WORK/$prefix.bin" "$WORK/$prefix.vec"
    log "${TOOL_NAME[$tool]} supervised, seed $seed"
    timed "$tool|$seed" "$WORK/$prefix.train.log" "${TOOL_BIN[$tool]}" supervised \
      -input train.txt -output "$prefix" "${TRAIN_FLAGS[@]}" -seed "$seed"
    [ -s "$WORK/$prefix.bin" ] || die "'${CMDLINE[$tool|$seed]}' did not write $WORK/$prefix.bin"
    SIZE[$tool|$seed]=$(stat -c %s "$WORK/$prefix.bin")
    evaluate "$tool" "$prefix.bin" "$tool|$seed"
    log "${TOOL_NAME[$tool]} seed $seed: ${WALL[$tool|$seed]} s, peak RSS ${RSS[$tool|$seed]} kB, P@1 ${P1[$tool|$seed]}"
  done
  order=("${order[1]}" "${order[0]}")
done

# Quantization of each tool's first-seed model: PREFIX.bin -> PREFIX.ftz.
for tool in es ft; do
  prefix=$tool-seed$QSEED
  rm -f "$WORK/$prefix.ftz"
  log "${TOOL_NAME[$tool]} quantize $prefix.bin"
  timed "$tool|q" "$WORK/$prefix.quantize.log" "${TOOL_BIN[$tool]}" quantize \
    -input train.txt -output "$prefix" "${QUANT_FLAGS[@]}"
  [ -s "$WORK/$prefix.ftz" ] || die "'${CMDLINE[$tool|q]}' did not write $WORK/$prefix.ftz"
  SIZE[$tool|q]=$(stat -c %s "$WORK/$prefix.ftz")
  evaluate "$tool" "$prefix.ftz" "$tool|q"
  log "${TOOL_NAME[$tool]} quantize: ${WALL[$tool|q]} s, peak RSS ${RSS[$tool|q]} kB, ${SIZE[$tool|q]} bytes, P@1 ${P1[$tool|q]}"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- summary ---------------------------------------------------------------------
declare -A M_WALL M_RSS M_P1
for tool in ft es; do
  w=() r=() p=()
  for seed in "${SEEDS[@]}"; do
    w+=("${WALL[$tool|$seed]}"); r+=("${RSS[$tool|$seed]}"); p+=("${P1[$tool|$seed]}")
  done
  M_WALL[$tool]=$(mean "${w[@]}"); M_RSS[$tool]=$(mean "${r[@]}"); M_P1[$tool]=$(mean "${p[@]}")
done
TIME_RATIO=$(calc %.6f "${M_WALL[ft]} / ${M_WALL[es]}")
RSS_RATIO=$(calc %.6f "${M_RSS[es]} / ${M_RSS[ft]}")
P1_DIFF=$(calc %.6f "${M_P1[es]} - ${M_P1[ft]}")
Q_DIFF=$(calc %.6f "${P1[es|q]} - ${P1[ft|q]}")
# pf COND: PASS if the awk condition holds, else FAIL
pf() { if awk "BEGIN{ exit !($1) }"; then echo PASS; else echo FAIL; fi; }
# Differences are compared with a 1e-9 slack so that, e.g., exactly -0.005 passes.
R_P1=$(pf "$P1_DIFF >= -0.005 - 1e-9"); R_TIME=$(pf "$TIME_RATIO >= 1.3")
R_RSS=$(pf "$RSS_RATIO <= 0.5"); R_Q=$(pf "$Q_DIFF <= 0.005 + 1e-9 && $Q_DIFF >= -0.005 - 1e-9")
if [ "$COMPAT_FAILS" = 0 ]; then R_COMPAT=PASS; else R_COMPAT=FAIL; fi
N_PASS=0
for r in "$R_P1" "$R_TIME" "$R_RSS" "$R_Q" "$R_COMPAT"; do
  if [ "$r" = PASS ]; then N_PASS=$((N_PASS + 1)); fi
done

# ---- report ------------------------------------------------------------------------
ELAPSED=$(calc %.0f "$EPOCHREALTIME - $T_START")
DATE=$(date +%Y-%m-%d)
if [ "$QUICK" = 1 ]; then
  RESULT=$WORK/train-$DATE-quick.md
else
  mkdir -p "$REPO/bench/results"
  RESULT=$REPO/bench/results/train-$DATE.md
fi
mb() { calc %.1f "$1 / 1024"; }
mib() { calc %.2f "$1 / 1048576"; }
cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
git_rev=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
ft_ver=$(dpkg-query -W -f='${Version}' fasttext 2>/dev/null || echo unknown)
NSEEDS=${#SEEDS[@]}

{
  echo "# edgeserve vs fastText: supervised training benchmark ($DATE)"
  [ "$QUICK" = 1 ] && printf '\n**QUICK MODE** (BENCH_QUICK=1, -epoch %s): not for comparison.\n' "$EPOCH"
  echo
  echo "Data: train.txt ($(wc -l <"$WORK/train.txt") lines), P@1 on test.txt ($(wc -l <"$WORK/test.txt") lines)."
  echo "Both tools: \`supervised -input train.txt -output PREFIX ${TRAIN_FLAGS[*]} -seed N\`,"
  echo "seeds ${SEEDS[*]}; then \`quantize -input train.txt -output PREFIX ${QUANT_FLAGS[*]}\` on the seed-$QSEED model."
  echo
  echo "## Summary"
  echo
  echo "| measure | fasttext | edgeserve | ratio |"
  echo "|---|--:|--:|--:|"
  printf '| training wall s (mean of %s) | %.2f | %.2f | fasttext / edgeserve = %.2fx |\n' \
    "$NSEEDS" "${M_WALL[ft]}" "${M_WALL[es]}" "$TIME_RATIO"
  printf '| training peak RSS MiB (mean of %s) | %s | %s | edgeserve / fasttext = %.3f |\n' \
    "$NSEEDS" "$(mb "${M_RSS[ft]}")" "$(mb "${M_RSS[es]}")" "$RSS_RATIO"
  printf '| P@1 (mean of %s) | %.4f | %.4f | edgeserve - fasttext = %+.4f |\n' \
    "$NSEEDS" "${M_P1[ft]}" "${M_P1[es]}" "$P1_DIFF"
  printf '| quantize wall s (seed %s) | %.2f | %.2f | fasttext / edgeserve = %.2fx |\n' "$QSEED" \
    "${WALL[ft|q]}" "${WALL[es|q]}" "$(calc %.6f "${WALL[ft|q]} / ${WALL[es|q]}")"
  printf '| quantize peak RSS MiB (seed %s) | %s | %s | edgeserve / fasttext = %.3f |\n' "$QSEED" \
    "$(mb "${RSS[ft|q]}")" "$(mb "${RSS[es|q]}")" "$(calc %.6f "${RSS[es|q]} / ${RSS[ft|q]}")"
  printf '| .ftz size MiB (seed %s) | %s | %s | edgeserve / fasttext = %.3f |\n' "$QSEED" \
    "$(mib "${SIZE[ft|q]}")" "$(mib "${SIZE[es|q]}")" "$(calc %.6f "${SIZE[es|q]} / ${SIZE[ft|q]}")"
  printf '| .ftz P@1 (seed %s) | %.4f | %.4f | edgeserve - fasttext = %+.4f |\n' "$QSEED" \
    "${P1[ft|q]}" "${P1[es|q]}" "$Q_DIFF"
  echo
  echo "## Requirements"
  echo
  echo "| requirement | measured | result |"
  echo "|---|---|---|"
  printf '| training P@1: edgeserve mean >= fasttext mean - 0.005 | %+.4f | **%s** |\n' "$P1_DIFF" "$R_P1"
  printf '| training time: fasttext mean / edgeserve mean >= 1.3 | %.2fx | **%s** |\n' "$TIME_RATIO" "$R_TIME"
  printf '| training peak RSS: edgeserve mean / fasttext mean <= 0.5 | %.3f | **%s** |\n' "$RSS_RATIO" "$R_RSS"
  printf '| .ftz P@1: within 0.005 of fasttext'"'"'s .ftz | %+.4f | **%s** |\n' "$Q_DIFF" "$R_Q"
  printf '| compatibility: fasttext loads each edgeserve model and prints the same P@1 line | %s of %s differ | **%s** |\n' \
    "$COMPAT_FAILS" "$COMPAT_CHECKS" "$R_COMPAT"
  echo
  echo "## Per seed"
  echo
  echo "| tool | seed | wall s | peak RSS MiB | P@1 | .bin MiB |"
  echo "|---|--:|--:|--:|--:|--:|"
  for tool in ft es; do
    for seed in "${SEEDS[@]}"; do
      k="$tool|$seed"
      printf '| %s | %s | %.2f | %s | %.4f | %s |\n' "${TOOL_NAME[$tool]}" "$seed" "${WALL[$k]}" \
        "$(mb "${RSS[$k]}")" "${P1[$k]}" "$(mib "${SIZE[$k]}")"
    done
    printf '| %s | **mean** | %.2f | %s | %.4f | |\n' "${TOOL_NAME[$tool]}" "${M_WALL[$tool]}" \
      "$(mb "${M_RSS[$tool]}")" "${M_P1[$tool]}"
  done
  echo
  echo "- wall s and peak RSS: GNU \`/usr/bin/time -f '%e %M'\` around the training (or"
  echo "  quantize) process: elapsed time (10 ms resolution) and ru_maxrss. MiB = 2^20 bytes."
  echo "- P@1: the \`P@1\` line of each tool's own \`test MODEL test.txt\` (fastText prints 3"
  echo "  significant digits); means are plain averages over the seeds."
  echo "- Training uses 2 threads, so a model is not reproducible from its seed: P@1 varies"
  echo "  from seed to seed and from run to run; compare the means."
  echo "- Order: the tools alternate per seed (edgeserve first on seed ${SEEDS[0]}); warm page cache."
  echo
  echo "### Compatibility: \`fasttext test\` on edgeserve's models"
  echo
  for l in "${COMPAT_LINES[@]}"; do echo "- $l"; done
  echo
  echo "## Machine"
  echo
  echo "- CPU: $cpu; nproc: $(nproc); memory: $mem"
  echo "- kernel: $(uname -sr); $(uname -m)"
  echo "- fasttext: $FASTTEXT (Debian $ft_ver)"
  echo "- edgeserve: $ES_BIN (sha256 $(sha256sum "$ES_BIN" | cut -c1-12), modified $(date -r "$ES_BIN" '+%F %T'));"
  echo "  repository HEAD at run time: $git_rev (the binary may have been built from another state)"
  echo "- load average before / after: $LOAD_BEFORE / $LOAD_AFTER"
  echo "- script runtime: ${ELAPSED} s"
  echo
  echo "## Commands"
  echo
  echo "Run in the work dir ${WORK#"$REPO"/}/ (models, training logs and test outputs are kept there):"
  echo
  echo '```sh'
  for seed in "${SEEDS[@]}"; do
    for tool in ft es; do echo "${CMDLINE[$tool|$seed]}"; done
  done
  for tool in ft es; do echo "${CMDLINE[$tool|q]}"; done
  for seed in "${SEEDS[@]}" q; do
    for tool in ft es; do echo "${CMDLINE[test|$tool|$seed]}"; done
    echo "${CMDLINE[xtest|es|$seed]}"
  done
  echo '```'
  echo
  echo "Reproduce: \`make bench-train\` (or \`bench/train.sh\`; see bench/README.md)."
} >"$RESULT.tmp"
mv "$RESULT.tmp" "$RESULT"

cat "$RESULT"
echo
echo "Results written to ${RESULT#"$REPO"/} (${ELAPSED} s)."
echo "Reproduce this table with: make bench-train"
echo "Requirements: $N_PASS of 5 PASS (see the table above)."
if [ "$COMPAT_FAILS" != 0 ]; then
  loud "FAIL: fasttext does not give the same P@1 line on $COMPAT_FAILS of $COMPAT_CHECKS edgeserve model(s):" \
    "${COMPAT_LINES[@]}"
  exit 1
fi
