#!/usr/bin/env bash
# train.sh - edgeserve supervised / quantize against Debian's fastText 0.9.2.
#
# usage: bash tests/compat/train.sh EDGESERVE FASTTEXT
#
# What it proves, on a synthetic 300-label corpus (awk, fixed seeds) with
# hostile lines mixed into the training text (the debian-sections figures
# are bench/train.sh's):
#   - for every loss, with and without char and word n-grams: fastText loads
#     the .bin edgeserve writes and prints byte-identical predict-prob
#     output; the dictionary (words, labels, counts) and the args block are
#     the ones fastText builds from the same flags; precision at 1 is no
#     worse than fastText's own model's minus 0.02; OUTPUT.vec holds what
#     fastText's print-word-vectors computes from the .bin;
#   - --deterministic and -thread 1 give bit-identical files for a seed, and
#     another seed another file; several threads train a valid model;
#   - -pretrainedVectors from a .vec and from a fastText .bin; -saveOutput;
#   - quantize (-qnorm, -cutoff, -retrain, -dsub 3, -qout): fastText loads
#     each .ftz and predicts identically; P@1 within 0.02 of fastText's own
#     quantization of the same .bin;
#   - bad input and impossible flags fail before any work with a clear
#     message, and leave no model file behind.
#
# Output: "ok NAME" / "FAIL NAME" lines, then "N passed, M failed"; exit
# status non-zero when anything failed. ES_COMPAT_KEEP=1 keeps the work dir.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/compat/lib.sh
. "$HERE/lib.sh"
compat_args "$@"

compat_workdir es-train

# p1 MODEL FILE: precision at 1 as printed by fastText's test.
p1() { "$FT" test "$1" "$2" | awk '$1 == "P@1" { print $2 }'; }

# at_least NAME A B SLACK: A >= B - SLACK.
at_least() {
  if awk -v a="$2" -v b="$3" -v s="$4" 'BEGIN { exit !(a >= b - s) }'; then
    ok "$1 ($2 vs $3)"
  else
    fail "$1" "edgeserve $2, fastText $3, allowed slack $4"
  fi
}

# ---------------------------------------------------------------- data

make_synthetic 1 9000 >syn-base.txt
make_synthetic 2 1500 >syn-held.txt
{ # hostile lines in the training text: fastText's rules must hold in both
  cat syn-base.txt
  printf '__label__c001 città été 中文 \xff\xfe t001a \xc3 x\n'
  printf '__label__c002\n\n   \n'                       # label only, empty, blank
  printf 'words without any label t001a t002b\n'
  printf '__label__c003 t003a\r\n__label__c003\tt003b\vt003c\fx\n'
  printf '__label__c004 lib\0rary t004a </s> __label__c005 t005a\n'
  printf '__label__c006 t006a t006b'                      # no final newline
} >syn-train.txt
awk '{ for (i = 1; i <= NF; i++) if ($i !~ /^__label__/) print $i }' syn-held.txt |
  sort -u | awk 'NR <= 300' >words.txt # not head: pipefail + SIGPIPE

declare -A FLAGS=(
  [sm-char-wng2]="-loss softmax -dim 16 -minn 2 -maxn 4 -wordNgrams 2 -bucket 30000"
  [sm-plain]="-loss softmax -dim 11 -wordNgrams 1 -minCount 2"
  [hs-char]="-loss hs -dim 13 -minn 3 -maxn 5 -bucket 20000"
  [ova-wng2]="-loss one-vs-all -dim 12 -wordNgrams 2 -bucket 20000"
  [ns-char1-wng3]="-loss ns -dim 10 -minn 1 -maxn 4 -wordNgrams 3 -neg 3 -bucket 20000"
)
common=(-lr 0.5 -epoch 5 -verbose 0)

# ---------------------------------------------------------------- supervised

for name in sm-char-wng2 sm-plain hs-char ova-wng2 ns-char1-wng3; do
  # shellcheck disable=SC2206
  flags=(${FLAGS[$name]})
  "$FT" supervised -input syn-train.txt -output "ft-$name" -thread 1 -seed 0 "${common[@]}" \
    "${flags[@]}" >/dev/null 2>&1
  if ! "$ES" supervised -input syn-train.txt -output "es-$name" -thread 1 -seed 1 \
    "${common[@]}" "${flags[@]}" 2>es.err; then
    fail "$name: supervised" "$(head -c 300 es.err)"
    continue
  fi
  "$FT" predict-prob "es-$name.bin" syn-held.txt 3 >ft.out
  "$ES" predict-prob "es-$name.bin" syn-held.txt 3 >es.out
  same "$name: fastText loads the .bin and predicts identically" es.out ft.out
  "$FT" dump "es-$name.bin" args >ft.out
  "$FT" dump "ft-$name.bin" args >es.out
  same "$name: args block as fastText's" es.out ft.out
  "$FT" dump "es-$name.bin" dict | sort >es.out
  "$FT" dump "ft-$name.bin" dict | sort >ft.out
  same "$name: dictionary (entries and counts) as fastText's" es.out ft.out
  at_least "$name: P@1 no worse than fastText's - 0.02" "$(p1 "es-$name.bin" syn-held.txt)" \
    "$(p1 "ft-$name.bin" syn-held.txt)" 0.02
  # OUTPUT.vec rows of held-out words vs fastText's print-word-vectors of them
  "$FT" print-word-vectors "es-$name.bin" <words.txt | sort >ft.vec.all
  awk 'NR == FNR { want[$1] = 1; next } FNR > 1 && ($1 in want)' words.txt "es-$name.vec" |
    sort >es.vec.out
  awk 'NR == FNR { have[$1] = 1; next } ($1 in have)' es.vec.out ft.vec.all >ft.vec.out
  if [ -s es.vec.out ]; then
    same "$name: .vec rows are fastText's print-word-vectors" es.vec.out ft.vec.out
  else
    fail "$name: .vec rows are fastText's print-word-vectors" "no known words compared"
  fi
done

# -label: a custom label prefix
sed 's/__label__/#/g' syn-base.txt >hash-train.txt
sed 's/__label__/#/g' syn-held.txt >hash-held.txt
"$ES" supervised -input hash-train.txt -output es-hash -label '#' -thread 1 "${common[@]}" \
  -dim 10 -minn 3 -maxn 3 -bucket 10000
"$FT" supervised -input hash-train.txt -output ft-hash -label '#' -thread 1 "${common[@]}" \
  -dim 10 -minn 3 -maxn 3 -bucket 10000 >/dev/null 2>&1
"$FT" dump es-hash.bin dict | sort >es.out
"$FT" dump ft-hash.bin dict | sort >ft.out
same "-label '#': dictionary as fastText's" es.out ft.out
"$FT" predict-prob es-hash.bin hash-held.txt 2 >ft.out
"$ES" predict-prob es-hash.bin hash-held.txt 2 >es.out
same "-label '#': fastText predicts identically" es.out ft.out

# ---------------------------------------------------------------- reproducibility

det=(-input syn-train.txt -dim 8 -minn 2 -maxn 3 -bucket 5000 -wordNgrams 2 "${common[@]}")
"$ES" supervised "${det[@]}" -output det-a --deterministic -seed 7 -thread 4
"$ES" supervised "${det[@]}" -output det-b --deterministic -seed 7
"$ES" supervised "${det[@]}" -output det-t1 -thread 1 -seed 7
"$ES" supervised "${det[@]}" -output det-c --deterministic -seed 8
same "--deterministic: same seed, same .bin" det-a.bin det-b.bin
same "--deterministic equals -thread 1" det-a.bin det-t1.bin
same "--deterministic: same seed, same .vec" det-a.vec det-b.vec
if cmp -s det-a.bin det-c.bin; then fail "another seed gives another model"; else
  ok "another seed gives another model"; fi
"$ES" supervised "${det[@]}" -output mt -thread 3
"$FT" predict-prob mt.bin syn-held.txt 2 >ft.out
"$ES" predict-prob mt.bin syn-held.txt 2 >es.out
same "-thread 3: fastText loads it and predicts identically" es.out ft.out
at_least "-thread 3: P@1 close to one thread's" "$(p1 mt.bin syn-held.txt)" \
  "$(p1 det-t1.bin syn-held.txt)" 0.1

# ---------------------------------------------------------------- progress line

# Quiet when stderr is not a terminal; a live progress line on a terminal
# (script(1) gives the command a pseudo-terminal).
"$ES" supervised "${det[@]}" -output quiet -thread 1 -verbose 2 2>quiet.err
if [ ! -s quiet.err ]; then ok "no progress output when not a terminal"; else
  fail "no progress output when not a terminal" "$(head -c 200 quiet.err)"; fi
if command -v script >/dev/null; then
  script -qec "$(printf '%q ' "$ES" supervised "${det[@]}" -output tty -thread 1 -verbose 2)" \
    /dev/null >tty.out 2>&1 || true
  if grep -q 'Progress: 100.0% words/sec/thread: *[0-9]* lr:  *0.000000 avg.loss: ' tty.out &&
    grep -q 'ETA: ' tty.out; then
    ok "progress line on a terminal"
  else
    fail "progress line on a terminal" "$(tr '\r' '\n' <tty.out | tail -n 2)"
  fi
fi

# ---------------------------------------------------------------- pretrained, saveOutput

# Starting from vectors must beat starting from random (one short epoch).
"$FT" supervised -input syn-base.txt -output pre -dim 12 -thread 1 "${common[@]}" >/dev/null 2>&1
one=(-input syn-train.txt -dim 12 -epoch 1 -thread 1 -lr 0.1 -verbose 0)
"$ES" supervised "${one[@]}" -output from-random
random_p1=$(p1 from-random.bin syn-held.txt)
if "$ES" supervised "${one[@]}" -output from-vec -pretrainedVectors pre.vec -saveOutput \
  2>es.err; then
  at_least "-pretrainedVectors .vec: beats a random start by 0.2" \
    "$(p1 from-vec.bin syn-held.txt)" "$(awk -v r="$random_p1" 'BEGIN { print r + 0.2 }')" 0
  n=$(wc -l <from-vec.output)
  labels=$("$FT" dump from-vec.bin dict | awk '$NF == "label"' | wc -l)
  if [ "$n" -eq $((labels + 1)) ]; then ok "-saveOutput: one row per label"; else
    fail "-saveOutput: one row per label" "$n lines for $labels labels"; fi
else
  fail "-pretrainedVectors .vec" "$(head -c 300 es.err)"
fi
if "$ES" supervised "${one[@]}" -output from-bin -pretrainedVectors pre.bin 2>es.err; then
  at_least "-pretrainedVectors .bin: beats a random start by 0.2" \
    "$(p1 from-bin.bin syn-held.txt)" "$(awk -v r="$random_p1" 'BEGIN { print r + 0.2 }')" 0
else
  fail "-pretrainedVectors .bin" "$(head -c 300 es.err)"
fi

# ---------------------------------------------------------------- quantize

# qcheck NAME SRC FLAGS...: both tools quantize a copy of SRC.bin with FLAGS.
qcheck() {
  local name=$1 src=$2
  shift 2
  cp "$src.bin" "q-es-$name.bin"
  cp "$src.bin" "q-ft-$name.bin"
  if ! "$ES" quantize -input syn-train.txt -output "q-es-$name" -thread 1 -verbose 0 "$@" \
    2>es.err; then
    fail "quantize $name" "$(head -c 300 es.err)"
    return
  fi
  if ! "$FT" quantize -input syn-train.txt -output "q-ft-$name" -thread 1 -verbose 0 "$@" \
    >ft.err 2>&1; then
    fail "quantize $name: fastText's own quantize" "$(head -c 300 ft.err)"
    return
  fi
  "$FT" predict-prob "q-es-$name.ftz" syn-held.txt 3 >ft.out
  "$ES" predict-prob "q-es-$name.ftz" syn-held.txt 3 >es.out
  same "quantize $name: fastText loads the .ftz and predicts identically" es.out ft.out
  at_least "quantize $name: P@1 within ${QSLACK:-0.02} of fastText's .ftz" \
    "$(p1 "q-es-$name.ftz" syn-held.txt)" "$(p1 "q-ft-$name.ftz" syn-held.txt)" "${QSLACK:-0.02}"
}
qcheck qnorm es-sm-char-wng2 -qnorm
qcheck cutoff-retrain es-sm-char-wng2 -cutoff 3000 -retrain -epoch 1 -qnorm
qcheck cutoff-words-only es-sm-plain -cutoff 400
qcheck dsub3-odd es-hs-char -dsub 3
qcheck qout es-ova-wng2 -qout -qnorm
# dim 12, one 12-wide sub-quantizer of 256 centroids: coarse, so k-means
# seeds matter more; the point is that both tools read the file
QSLACK=0.05 qcheck dsub-over-dim es-ova-wng2 -dsub 16
qcheck fasttext-bin ft-ns-char1-wng3 -cutoff 5000 -retrain -epoch 1

# ---------------------------------------------------------------- convert

# es_p1 MODEL FILE: precision at 1 as edgeserve's test prints it (.esm).
es_p1() { "$ES" test "$1" "$2" | awk '$1 == "P@1" { print $2 }'; }
"$ES" convert es-sm-char-wng2.bin native.esm
"$ES" predict-prob native.esm syn-held.txt 3 >es.out
"$FT" predict-prob es-sm-char-wng2.bin syn-held.txt 3 >ft.out
same "convert .bin -> .esm (f32): fastText's bytes from the native file" es.out ft.out
"$ES" convert native.esm back.bin
same "convert .esm -> .bin: the original file" back.bin es-sm-char-wng2.bin
"$ES" convert q-es-qnorm.ftz native-pq.esm
"$ES" convert native-pq.esm back.ftz
same "convert .ftz -> .esm -> .ftz: the original file" back.ftz q-es-qnorm.ftz
"$ES" convert es-sm-char-wng2.bin int8.esm --int8
"$ES" convert es-sm-char-wng2.bin int4.esm --int4 --normalize lower,separators
dense_p1=$(es_p1 es-sm-char-wng2.bin syn-held.txt)
at_least "--int8: P@1 within 0.005 of the dense model" "$(es_p1 int8.esm syn-held.txt)" \
  "$dense_p1" 0.005
at_least "--int4: P@1 within 0.03 of the dense model" "$(es_p1 int4.esm syn-held.txt)" \
  "$dense_p1" 0.03
if [ "$(stat -c %s int8.esm)" -lt $(($(stat -c %s es-sm-char-wng2.bin) / 3)) ]; then
  ok "--int8: under a third of the .bin"; else fail "--int8: under a third of the .bin"; fi

# ---------------------------------------------------------------- bad input

printf 'no labels here\njust words\n' >unlabelled.txt
: >empty.txt
printf '\n\n\n' >blank.txt
# bad NAME EXPECTED_TEXT ARGS...: fails with EXPECTED_TEXT, writes no model.
bad() {
  local name=$1 want=$2 rc=0
  shift 2
  rm -f bad.bin bad.ftz bad.vec
  "$ES" "$@" >es.out 2>es.err || rc=$?
  if [ "$rc" -eq 0 ]; then
    fail "$name" "exit status 0"
  elif ! grep -qF -- "$want" es.err; then
    fail "$name" "stderr lacks \"$want\": $(head -c 300 es.err)"
  elif [ -e bad.bin ] || [ -e bad.vec ] || [ -e bad.bin.tmp ]; then
    fail "$name" "a model file was left behind"
  else
    ok "$name"
  fi
}
bad "missing input file" "cannot open" supervised -input nope.txt -output bad
bad "empty input file" "empty vocabulary" supervised -input empty.txt -output bad
bad "blank lines only" "no labels" supervised -input blank.txt -output bad
bad "no labels" "no labels" supervised -input unlabelled.txt -output bad
bad "-minn > -maxn" "-minn 5 is larger than -maxn 3" supervised -input syn-base.txt -output bad \
  -minn 5 -maxn 3
bad "-dim 0" "-dim must be" supervised -input syn-base.txt -output bad -dim 0
bad "-epoch 0" "-epoch must be" supervised -input syn-base.txt -output bad -epoch 0
bad "-lr -1" "-lr must be" supervised -input syn-base.txt -output bad -lr -1
bad "unknown loss" "unknown loss" supervised -input syn-base.txt -output bad -loss bogus
bad "unknown flag" "unknown argument" supervised -input syn-base.txt -output bad -foo 1
bad "flag without value" "needs a value" supervised -input syn-base.txt -output
bad "non-numeric value" "is not an integer" supervised -input syn-base.txt -output bad -dim x
bad "word n-grams without buckets" "-bucket must be > 0" supervised -input syn-base.txt \
  -output bad -wordNgrams 2 -bucket 0
bad "ns with -neg 0" "-neg" supervised -input syn-base.txt -output bad -loss ns -neg 0
bad "pretrained dimension mismatch" "does not match" supervised -input syn-base.txt \
  -output bad -dim 5 -pretrainedVectors pre.vec
bad "pretrained file missing" "cannot open" supervised -input syn-base.txt -output bad \
  -pretrainedVectors nope.vec
bad "unwritable output" "cannot open" supervised -input syn-base.txt -output /nonexistent/dir/m \
  -epoch 1 -thread 1
bad "quantize: missing model" "cannot open" quantize -output bad
cp es-sm-plain.bin few.bin
bad "quantize: -retrain without -cutoff" "-retrain needs -cutoff" quantize -output few -retrain \
  -input syn-base.txt
bad "quantize: -retrain without -input" "-retrain needs -input" quantize -output few -retrain \
  -cutoff 300
bad "quantize: -cutoff under 256 rows" "at least 256" quantize -output few -cutoff 100
awk '$1 < "__label__c020"' syn-base.txt >few-labels.txt
"$ES" supervised -input few-labels.txt -output tiny -dim 8 -epoch 1 -thread 1 -verbose 0
bad "quantize: -qout with fewer than 256 labels" "-qout needs at least 256 labels" \
  quantize -output tiny -qout
cp q-es-qnorm.ftz again.bin
bad "quantize: a quantized model" "already quantized" quantize -output again
bad "convert: int8 to .bin" "holds f32 matrices only" convert int8.esm bad.bin
bad "convert: .bin to .ftz" "product-quantized input only" convert es-sm-plain.bin bad.ftz
bad "convert: unknown extension" "must end in .esm" convert es-sm-plain.bin bad.model
bad "convert: bad normalizer" "--normalize" convert es-sm-plain.bin bad.esm --normalize bogus
bad "convert: missing model" "cannot open" convert nope.bin bad.esm
mkfifo fifo.txt
bad "training from a FIFO" "regular file" supervised -input fifo.txt -output bad

echo "$passed passed, $failed failed (${SECONDS}s)"
[ "$failed" -eq 0 ]
