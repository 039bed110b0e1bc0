#!/usr/bin/env bash
# autotune.sh - edgeserve autotune, checked against Debian's fastText 0.9.2.
#
# usage: bash tests/compat/autotune.sh EDGESERVE FASTTEXT
#
# What it proves, on the synthetic 300-label corpus of lib.sh (6000 training
# lines, 1000 validation lines), in about a minute and a half:
#   - no limits: the result is PREFIX.bin alone; fastText loads it, predicts
#     identically, and its `test` prints the P@1 autotune reported; the
#     report's size is the file's;
#   - --max-size 300K: the result is a .ftz of at most 300 KiB that fastText
#     loads and predicts identically; the printed command line, run again
#     (-thread 1), makes the same file byte for byte;
#   - impossible budgets (--max-p99-us 0.001, --max-size 1K) exit 1 with a
#     message naming the constraint and leave no file;
#   - Ctrl-C (SIGINT) ends the search early, keeping the best model so far;
#   - bad arguments fail in well under a second with a clear message;
#   - no temporary file is ever left beside the output.
#
# Output: "ok NAME" / "FAIL NAME" lines, then "N passed, M failed"; exit
# status non-zero when anything failed. ES_COMPAT_KEEP=1 keeps the work dir.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/compat/lib.sh
. "$HERE/lib.sh"
compat_args "$@"

compat_workdir es-autotune

# only_file NAME PREFIX FILE: FILE is the only PREFIX.* file, and no
# temporary of any run remains in the work directory.
only_file() {
  local left
  left=$(find . -maxdepth 1 \( -name "$2.*" -o -name '*.autotune-*' \) ! -name '*.txt' \
    ! -name '*.out' ! -name '*.err' | sort | tr '\n' ' ')
  if [ "$left" = "${3:+./$3 }" ]; then ok "$1"; else fail "$1" "files: ${left:-none}"; fi
}

# field REPORT KEY N: field N of the report line starting with KEY.
field() { awk -v k="$2" -v n="$3" '$1 == k { print $n; exit }' "$1"; }

# same3 NAME A B: A and B agree to 3 decimals (fastText prints P@1 as %.3g).
same3() {
  if awk -v a="$2" -v b="$3" 'BEGIN { d = a - b; exit !(a != "" && b != "" &&
      d < 0.0005 + 1e-9 && -d < 0.0005 + 1e-9) }'; then
    ok "$1 ($2 vs $3)"
  else
    fail "$1" "autotune reported '$2', fastText test prints '$3'"
  fi
}

p1() { "$FT" test "$1" "$2" | awk '$1 == "P@1" { print $2 }'; }

make_synthetic 1 6000 >train.txt
make_synthetic 2 1000 >valid.txt
tune=(autotune -input train.txt -validation valid.txt)

# ---------------------------------------------------------------- (a) no limits

rc=0
"$ES" "${tune[@]}" -output a --duration 25 -thread 2 >a.out 2>a.err || rc=$?
if [ "$rc" -ne 0 ] || [ ! -f a.bin ]; then
  fail "no limits: exit 0 with a.bin" "exit $rc: $(head -c 300 a.err)"
else
  ok "no limits: exit 0 with a.bin ($(field a.out best 5) trials)"
  only_file "no limits: a.bin is the only file left" a a.bin
  trials=$(awk '$1 ~ /^[0-9]+$/ && NF > 10' a.out | wc -l)
  if [ "$trials" -ge 2 ] && [ "$trials" = "$(field a.out best 5)" ]; then
    ok "no limits: one report line per trial ($trials)"
  else
    fail "no limits: one report line per trial" "$trials lines, report says $(field a.out best 5)"
  fi
  "$FT" predict-prob a.bin valid.txt 3 >ft.pred
  "$ES" predict-prob a.bin valid.txt 3 >es.pred
  same "no limits: fastText loads a.bin and predicts identically" es.pred ft.pred
  same3 "no limits: fastText's P@1 is the reported metric" "$(field a.out metric 3)" \
    "$(p1 a.bin valid.txt)"
  if [ "$(field a.out size 2)" = "$(wc -c <a.bin)" ]; then ok "no limits: reported size"; else
    fail "no limits: reported size" "report $(field a.out size 2), file $(wc -c <a.bin)"; fi
fi

# ---------------------------------------------------------------- (b) size limit

rc=0
"$ES" "${tune[@]}" -output b --duration 25 --max-size 300K -thread 1 >b.out 2>b.err || rc=$?
if [ "$rc" -ne 0 ] || [ ! -f b.ftz ]; then
  fail "--max-size 300K: exit 0 with b.ftz" "exit $rc: $(head -c 300 b.err)"
else
  size=$(wc -c <b.ftz)
  if [ "$size" -le $((300 * 1024)) ]; then ok "--max-size 300K: b.ftz is $size bytes"; else
    fail "--max-size 300K: b.ftz within 300K" "$size bytes"; fi
  only_file "--max-size: b.ftz is the only file left" b b.ftz
  "$FT" predict-prob b.ftz valid.txt 3 >ft.pred
  "$ES" predict-prob b.ftz valid.txt 3 >es.pred
  same "--max-size: fastText loads b.ftz and predicts identically" es.pred ft.pred
  same3 "--max-size: fastText's P@1 is the reported metric" "$(field b.out metric 3)" \
    "$(p1 b.ftz valid.txt)"
  # the report's command line trains the same model again
  mkdir re
  ln -s ../train.txt re/train.txt
  cmd=$(sed -n 's/^command *//p' b.out)
  if (cd re && eval "${cmd//edgeserve /\"\$ES\" }" >/dev/null 2>&1) && cmp -s re/b.ftz b.ftz; then
    ok "--max-size: the printed command makes the same .ftz"
  else
    fail "--max-size: the printed command makes the same .ftz" "$cmd"
  fi
fi

# ---------------------------------------------------------------- (c) impossible budgets

# infeasible NAME WANT ARGS...: exit 1, WANT on stderr, no c.* file.
infeasible() {
  local name=$1 want=$2 rc=0
  shift 2
  "$ES" "${tune[@]}" -output c -thread 1 "$@" >c.out 2>c.err || rc=$?
  if [ "$rc" -ne 1 ]; then
    fail "$name" "exit $rc (want 1): $(head -c 300 c.err)"
  elif ! grep -qF -- "$want" c.err; then
    fail "$name" "stderr lacks \"$want\": $(head -c 300 c.err)"
  else
    ok "$name"
  fi
  only_file "$name: no file left" c ""
}
infeasible "--max-p99-us 0.001: nothing fits" "over the p99 limit" --max-p99-us 0.001 \
  --duration 4
if grep -qF "closest: trial" c.err; then ok "--max-p99-us 0.001: names the closest trial"; else
  fail "--max-p99-us 0.001: names the closest trial" "$(head -c 300 c.err)"; fi
infeasible "--max-size 1K: nothing fits" "fits 1024 bytes" --max-size 1K

# ---------------------------------------------------------------- Ctrl-C

"$ES" "${tune[@]}" -output d --duration 120 --metric f1 -thread 1 >d.out 2>d.err &
pid=$!
# Interrupt once a first trial has finished (its report line says "best"):
# a fixed sleep is too short under the sanitizers.
for _ in $(seq 1 600); do
  grep -q 'best' d.out 2>/dev/null && break
  sleep 0.2
done
kill -INT "$pid"
t0=$SECONDS
rc=0
wait "$pid" || rc=$?
if [ "$rc" -eq 0 ] && [ -f d.bin ] && [ $((SECONDS - t0)) -lt 30 ]; then
  ok "SIGINT: stops early, keeps the best so far ($(field d.out best 5) trials)"
else
  fail "SIGINT: stops early, keeps the best so far" "exit $rc after $((SECONDS - t0)) s"
fi
only_file "SIGINT: d.bin is the only file left" d d.bin
# F1 at k = 1 from fastText's own P@1 and R@1 (printed to 3 digits)
f1=$("$FT" test d.bin valid.txt | awk '$1 == "P@1" { p = $2 } $1 == "R@1" { r = $2 }
  END { printf "%.3f", 2 * p * r / (p + r) }')
if awk -v a="$(field d.out metric 3)" -v b="$f1" 'BEGIN { exit !(a - b < 0.003 && b - a < 0.003) }'
then ok "--metric f1: micro F1 as fastText's P@1 and R@1 give it"; else
  fail "--metric f1: micro F1" "reported $(field d.out metric 3), from fastText $f1"; fi

# ---------------------------------------------------------------- (d) bad arguments

printf 'no labels\nat all\n' >unlabelled.txt
printf '__label__nobody word\n' >unknown.txt
# bad NAME WANT ARGS...: fails within a second with WANT on stderr, no file.
bad() {
  local name=$1 want=$2 rc=0 t0
  shift 2
  t0=$(date +%s%N)
  "$ES" autotune "$@" >bad.out 2>bad.err || rc=$?
  local ms=$((($(date +%s%N) - t0) / 1000000))
  if [ "$rc" -eq 0 ]; then
    fail "$name" "exit status 0"
  elif ! grep -qF -- "$want" bad.err; then
    fail "$name" "stderr lacks \"$want\": $(head -c 300 bad.err)"
  elif [ "$ms" -gt 1000 ]; then
    fail "$name" "took $ms ms"
  else
    ok "$name"
  fi
  only_file "$name: no file left" bad ""
}
ok_args=(-input train.txt -validation valid.txt -output bad)
bad "missing training file" "cannot open nope.txt" -input nope.txt -validation valid.txt \
  -output bad
bad "missing validation file" "cannot open nope.txt" -input train.txt -validation nope.txt \
  -output bad
bad "validation without labels" "has no labels" -input train.txt -validation unlabelled.txt \
  -output bad
bad "validation with unknown labels only" "labelled like the training file" -input train.txt \
  -validation unknown.txt -output bad
bad "training without labels" "has no labels" -input unlabelled.txt -validation valid.txt \
  -output bad
bad "no -validation" "needs -input, -validation and -output" -input train.txt -output bad
bad "bad size" "is not a size" "${ok_args[@]}" --max-size 12Q
bad "size 0" "is not a size" "${ok_args[@]}" --max-size 0
bad "negative size" "is not a size" "${ok_args[@]}" --max-size -3M
bad "duration 0" "must be more than 0 seconds" "${ok_args[@]}" --duration 0
bad "negative duration" "must be more than 0 seconds" "${ok_args[@]}" --duration -5
bad "duration not a number" "is not a number" "${ok_args[@]}" --duration soon
bad "p99 limit 0" "must be more than 0 microseconds" "${ok_args[@]}" --max-p99-us 0
bad "unknown metric" "unknown metric" "${ok_args[@]}" --metric recall
bad "unknown flag" "unknown argument" "${ok_args[@]}" -bogus 1
bad "flag without value" "needs a value" "${ok_args[@]}" --duration
bad "fixed -dim 0" "-dim must be" "${ok_args[@]}" -dim 0
bad "fixed -minn > -maxn" "-minn 5 is larger than -maxn 3" "${ok_args[@]}" -minn 5 -maxn 3
bad "unknown loss" "unknown loss" "${ok_args[@]}" -loss bogus
bad "unwritable output" "cannot write beside" -input train.txt -validation valid.txt \
  -output /nonexistent/dir/m

echo "$passed passed, $failed failed (${SECONDS}s)"
[ "$failed" -eq 0 ]
