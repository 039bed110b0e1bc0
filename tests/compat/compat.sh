#!/usr/bin/env bash
# compat.sh - edgeserve is a drop-in for Debian's fastText 0.9.2 CLI.
#
# usage: bash tests/compat/compat.sh EDGESERVE FASTTEXT
#
# What it proves: for models trained by fastText itself at test time, edgeserve
# prints byte-identical output to fastText for
#   - predict and predict-prob (k = 1, 3, 5, -1, with and without a threshold),
#   - test (k = 1 and 5, with and without a threshold),
#   - dump args and dump dict (every model), dump input/output (dense models),
#   - test-label, except the recall and F1 columns (fastText 0.9.2 prints its
#     recall as "--------"; edgeserve computes it, on purpose),
# over every loss (softmax, hs, one-vs-all, ns), with and without character
# n-grams, with and without word n-grams, odd and even dims, dense .bin and
# quantized .ftz (qnorm or not, cutoff with and without retrain, dsub 2, 3
# and 4, and a quantized output matrix on a 300-label corpus), on held-out
# text and on hostile input (non-ASCII, invalid UTF-8, NUL bytes, CRLF,
# control whitespace, empty and blank lines, unknown words, literal </s> and
# __label__ tokens, a 200,000-word line, no final newline, standard input).
#
# Everything is deterministic: fastText trains with one thread and a fixed
# seed, and the synthetic data comes from awk with fixed srand() seeds. The
# real corpus (debian-sections) is read from shared/ beside the repository;
# without it the corpus models are skipped and the synthetic ones still run.
#
# ES_COMPAT_KEEP=1 keeps the work directory (models, inputs) for debugging.
#
# Output: one "ok NAME" / "FAIL NAME" line per check (a FAIL shows the first
# differing lines), then "N passed, M failed"; the exit status is non-zero
# when any check failed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${ES_COMPAT_DATA:-$HERE/../../../shared/data/debian-sections}
# shellcheck source=tests/compat/lib.sh
. "$HERE/lib.sh"
compat_args "$@"

compat_workdir es-compat

# ---------------------------------------------------------------- checking

# compare NAME: compares es.out/es.rc with ft.out/ft.rc left by run_both.
compare() {
  local name=$1
  if [ "$(cat es.rc)" != "$(cat ft.rc)" ]; then
    failed=$((failed + 1))
    echo "FAIL $name (exit status: edgeserve $(cat es.rc), fasttext $(cat ft.rc))"
    head -c 400 es.err | sed 's/^/    edgeserve stderr: /'
    head -c 400 ft.err | sed 's/^/    fasttext stderr: /'
  elif cmp -s es.out ft.out; then
    passed=$((passed + 1))
    echo "ok $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    show_diff es.out ft.out
  fi
}

# run_both STDIN ARGS...: runs "$ES ARGS" and "$FT ARGS" with STDIN as
# standard input, into es.out/es.err/es.rc and ft.out/ft.err/ft.rc.
run_both() {
  local in=$1 rc
  shift
  rc=0; "$ES" "$@" <"$in" >es.out 2>es.err || rc=$?; echo "$rc" >es.rc
  rc=0; "$FT" "$@" <"$in" >ft.out 2>ft.err || rc=$?; echo "$rc" >ft.rc
}

# check_same NAME ARGS...: edgeserve and fasttext print the same bytes.
check_same() {
  local name=$1
  shift
  run_both /dev/null "$@"
  compare "$name"
}

# check_stdin NAME FILE ARGS...: the same, with FILE on standard input (ARGS
# name it "-").
check_stdin() {
  local name=$1 in=$2
  shift 2
  run_both "$in" "$@"
  compare "$name"
}

# check_threads NAME MODEL FILE K: edgeserve predicts on 1 and on 3 threads
# (blocks of whole lines, long lines streamed) and prints fastText's bytes.
check_threads() {
  local name=$1 m=$2 f=$3 k=$4 t rc
  rc=0; "$FT" predict-prob "$m" "$f" "$k" >ft.out 2>ft.err || rc=$?; echo "$rc" >ft.rc
  for t in 1 3; do
    rc=0; "$ES" predict-prob "$m" "$f" "$k" --threads "$t" >es.out 2>es.err || rc=$?
    echo "$rc" >es.rc
    compare "$name --threads $t"
  done
}

# check_test_label NAME MODEL FILE: test-label with the F1 and Recall values
# masked (fastText 0.9.2 cannot compute recall); all else byte for byte.
check_test_label() {
  local name=$1
  shift
  run_both /dev/null test-label "$@"
  local f
  for f in es.out ft.out; do
    sed -E 's/^F1-Score : *[^ ]+  /F1-Score : #  /; s/  Recall : *[^ ]+   /  Recall : #   /' \
      "$f" >"$f.masked"
    mv "$f.masked" "$f"
  done
  compare "$name"
}

# ---------------------------------------------------------------- models

# train NAME FILE ARGS...: fastText supervised -> NAME.bin (one thread, so
# the model is reproducible).
train() {
  local name=$1 input=$2
  shift 2
  "$FT" supervised -input "$input" -output "$name" -thread 1 -seed 0 -verbose 0 "$@" >/dev/null
  rm -f "$name.vec"
}

# quantize NAME FROM FILE ARGS...: fastText quantize FROM.bin -> NAME.ftz.
quantize() {
  local name=$1 from=$2 input=$3
  shift 3
  cp "$from.bin" "$name.bin"
  "$FT" quantize -input "$input" -output "$name" -thread 1 -verbose 0 "$@" >/dev/null
  rm -f "$name.bin" "$name.vec"
}

# check_model MODEL HELDOUT LABELLED_TRICKY: the checks run on every model.
check_model() {
  local m=$1 held=$2 tl=$3
  check_same "$m predict k=1" predict "$m" "$held"
  check_same "$m predict-prob k=1" predict-prob "$m" "$held" 1
  check_same "$m predict-prob k=3" predict-prob "$m" "$held" 3
  check_same "$m predict-prob k=-1" predict-prob "$m" "$held" -1
  check_same "$m predict-prob k=-1 t=0.1" predict-prob "$m" "$held" -1 0.1
  check_same "$m tricky predict-prob k=3" predict-prob "$m" tricky.txt 3
  check_same "$m tricky predict k=-1" predict "$m" tricky.txt -1
  check_same "$m tricky predict-prob k=-1 t=0.1" predict-prob "$m" tricky.txt -1 0.1
  check_same "$m long line predict-prob k=5" predict-prob "$m" long.txt 5
  check_same "$m no final newline predict-prob k=2" predict-prob "$m" nonl.txt 2
  check_stdin "$m stdin predict-prob k=3" tricky.txt predict-prob "$m" - 3
  check_same "$m test k=1" test "$m" "$held"
  check_same "$m test k=5" test "$m" "$held" 5
  check_same "$m test k=5 t=0.1" test "$m" "$held" 5 0.1
  check_same "$m tricky test k=1" test "$m" "$tl" 1
  check_test_label "$m test-label k=1" "$m" "$held"
  check_same "$m dump args" dump "$m" args
  check_same "$m dump dict" dump "$m" dict
  case $m in
    *.bin) check_same "$m dump output" dump "$m" output ;;
  esac
}

# ---------------------------------------------------------------- data

# Hostile held-out input, fed to predict/predict-prob. Words known to the
# corpus models (python, library, game...) and to the synthetic ones (t001a,
# città...) are mixed with unknown ones. The file has no final newline.
make_tricky() {
  {
    printf 'python library for parsing files\n'
    printf 'perché l'\''éditeur à côté du château città été\n'        # accents
    printf '中文 日本語 한국어 文字 library 中文\n'                  # CJK
    printf 'game 🎉🚀 python 👍🏽 emoji 🇮🇹\n'                      # emoji
    printf 'abc \xff\xfe def \xc3 library \xe4\xb8 \x80\x80 perl\n' # invalid UTF-8
    printf 'library\0python\0\0 module \0\n'                         # NUL bytes
    printf 'python library\r\ngame puzzle\r\n\r\n'                   # CRLF
    printf 'game\tpuzzle\vdocumentation\ffonts\t\t\v\f\n'           # control blanks
    printf '\n\n'                                                    # empty lines
    printf '     \n\t \n'                                            # blank lines
    printf 'zzqx qqqzz xyzzy plugh frobnicate\n'                     # unknown words
    printf 'python </s> game </s></s> library\n'                     # literal </s>
    printf '</s>\n'
    printf '__label__games python __label__nonexistent library\n'    # label tokens
    printf '__label__games\n__label__c001 t001a\n__label__zzz\n__label__ python\n'
    printf 'mac\rline\rendings\rpython\n'                            # lone CRs
    printf 'xserver x11 __label__x11 font driver\n'
    printf ' leading and trailing blanks   \n'
    printf 't001a t001b t002c n17 città 中文 t299f\n'               # synthetic words
    awk 'BEGIN { w = ""; for (i = 0; i < 3000; i++) w = w "x"; print w " library" }'
    awk 'BEGIN { w = ""; for (i = 0; i < 500; i++) w = w "é中"; print w }'
    printf 'a b c d e f g h i j k l m n o p q r s t u v w x y z\n'
    printf 'python game'                                             # no newline
  } >tricky.txt
  # One line of 200,000 words (longer than any read buffer or token array).
  awk 'BEGIN {
    srand(1)
    split("python library game perl module font x11 devel doc utils data " \
          "t001a t002b n5 città 中文 zzunknown qqq", w, " ")
    for (i = 0; i < 200000; i++) printf "%s%s", (i ? " " : ""), w[1 + int(rand() * 18)]
    printf "\n"
    print "python library"
  }' >long.txt
  printf 'python library\ngame puzzle arcade  \t' >nonl.txt
}

# Labelled hostile input for `test`: duplicate, unknown and label-only lines.
make_tricky_labelled() {
  local held=$1 out=$2 a b
  a=$(sed -n '1s/ .*//p' "$held")
  b=$(sed -n '2s/ .*//p' "$held")
  {
    head -n 50 "$held"
    printf '%s %s python library\n' "$a" "$a"
    printf '%s\n' "$a"
    printf '__label__nonexistent python library\n'
    printf '%s __label__nonexistent game\r\n' "$b"
    printf 'python %s library %s\n' "$a" "$b"
    printf '%s zzqx qqqzz\n' "$b"
    printf '%s \xff\xfe\0 中文\n' "$a"
    printf '\n   \n'
    tail -n 20 "$held" | tr '\n' '\f'
    printf '\n%s %s' "$b" "python game"
  } >"$out"
}

make_tricky
make_synthetic 1 9000 >syn-train.txt
make_synthetic 2 1500 >syn-held.txt
make_tricky_labelled syn-held.txt syn-tricky.txt
printf 'foo bar\n' >unlabelled.txt
: >empty.txt
printf '\n' >newline.txt

# ---------------------------------------------------------------- corpus models

dense=()
quant=()
have_corpus=0
if [ -f "$DATA/train.txt" ] && [ -f "$DATA/test.txt" ]; then
  have_corpus=1
  head -n 6000 "$DATA/train.txt" >train.txt
  head -n 1500 "$DATA/test.txt" >held.txt
  make_tricky_labelled held.txt tricky-labelled.txt
  sed 's/__label__/#/g' train.txt >hash-train.txt
  sed 's/__label__/#/g' held.txt >hash-held.txt
  common=(-lr 0.5 -epoch 3 -bucket 30000)

  # name loss char-n-grams word-n-grams dim
  train sm-char-wng2 train.txt "${common[@]}" -loss softmax -dim 16 -minn 2 -maxn 4 -wordNgrams 2
  train sm-plain train.txt "${common[@]}" -loss softmax -dim 11 -maxn 0 -wordNgrams 1
  train hs-char train.txt "${common[@]}" -loss hs -dim 13 -minn 3 -maxn 5 -wordNgrams 1
  train hs-wng3 train.txt "${common[@]}" -loss hs -dim 10 -maxn 0 -wordNgrams 3 -bucket 20000
  train ova-char-wng2 train.txt "${common[@]}" -loss ova -dim 15 -minn 2 -maxn 3 -wordNgrams 2
  train ova-plain train.txt "${common[@]}" -loss ova -dim 12 -maxn 0 -wordNgrams 1 -minCount 2
  train ns-char1-wng3 train.txt "${common[@]}" -loss ns -dim 10 -minn 1 -maxn 4 -wordNgrams 3 -neg 3
  train ns-wng2 train.txt "${common[@]}" -loss ns -dim 14 -maxn 0 -wordNgrams 2
  train sm-hashlabel hash-train.txt "${common[@]}" -loss softmax -dim 10 -label '#' -minn 3 -maxn 3
  dense+=(sm-char-wng2 sm-plain hs-char hs-wng3 ova-char-wng2 ova-plain ns-char1-wng3 ns-wng2)

  quantize q-sm-qnorm sm-char-wng2 train.txt -qnorm                    # dsub 2, dim 16
  quantize q-hs-odd hs-char train.txt                                  # dim 13: lastdsub 1
  quantize q-ova-cutoff-retrain ova-char-wng2 train.txt -cutoff 3000 -retrain -epoch 1 -qnorm
  quantize q-hs-cutoff hs-wng3 train.txt -cutoff 1500                  # word n-grams pruned
  quantize q-sm-cutoff-nobucket sm-plain train.txt -cutoff 400         # pruneidx_size 0
  quantize q-ns-dsub4 ns-char1-wng3 train.txt -dsub 4                  # dim 10: lastdsub 2
  quantize q-ns-dsub3 ns-wng2 train.txt -dsub 3 -qnorm                 # dim 14: lastdsub 2
  quantize q-hs-dsub3 hs-char train.txt -dsub 3                        # dim 13: lastdsub 1
  quantize q-ova-dsub16 ova-plain train.txt -dsub 16                   # dim 12 < dsub
  quantize q-ova-dsub4 ova-plain train.txt -dsub 4 -qnorm              # dim 12: lastdsub 4
  quant+=(q-sm-qnorm q-hs-odd q-ova-cutoff-retrain q-hs-cutoff q-sm-cutoff-nobucket
    q-ns-dsub4 q-ns-dsub3 q-hs-dsub3 q-ova-dsub4 q-ova-dsub16)
  echo "# corpus models trained and quantized (${SECONDS}s)"
else
  echo "SKIP corpus models: no debian-sections corpus at $DATA (set ES_COMPAT_DATA)"
fi

# ---------------------------------------------------------------- synthetic models

syn=(-lr 0.5 -epoch 10 -bucket 20000)
train syn-sm syn-train.txt "${syn[@]}" -loss softmax -dim 10 -minn 2 -maxn 4 -wordNgrams 2
train syn-hs syn-train.txt "${syn[@]}" -loss hs -dim 9 -maxn 0 -wordNgrams 1
train syn-ova syn-train.txt "${syn[@]}" -loss ova -dim 12 -maxn 0 -wordNgrams 2
train syn-ns syn-train.txt "${syn[@]}" -loss ns -dim 8 -minn 3 -maxn 3 -wordNgrams 1
quantize q-syn-sm-qout-qnorm syn-sm syn-train.txt -qout -qnorm
quantize q-syn-hs-qout syn-hs syn-train.txt -qout                     # dim 9: output lastdsub 1
quantize q-syn-ova-qout-dsub4 syn-ova syn-train.txt -qout -qnorm -dsub 4
quantize q-syn-ns-qout-cutoff syn-ns syn-train.txt -qout -cutoff 1000 -retrain -epoch 1
echo "# synthetic models trained and quantized (${SECONDS}s)"

# ---------------------------------------------------------------- checks

if [ "$have_corpus" = 1 ]; then
  for m in "${dense[@]}"; do check_model "$m.bin" held.txt tricky-labelled.txt; done
  for m in "${quant[@]}"; do check_model "$m.ftz" held.txt tricky-labelled.txt; done
  check_model sm-hashlabel.bin hash-held.txt hash-held.txt
  check_same "sm-plain.bin dump input" dump sm-plain.bin input
  check_same "hs-wng3.bin dump input" dump hs-wng3.bin input
fi
for m in syn-sm syn-hs syn-ova syn-ns; do check_model "$m.bin" syn-held.txt syn-tricky.txt; done
for m in q-syn-sm-qout-qnorm q-syn-hs-qout q-syn-ova-qout-dsub4 q-syn-ns-qout-cutoff; do
  check_model "$m.ftz" syn-held.txt syn-tricky.txt
done
check_same "syn-hs.bin dump input" dump syn-hs.bin input

# Thread counts, on input that mixes short lines with lines longer than a
# block (the CLI streams those through one thread, mid-input).
awk 'BEGIN { srand(3)
  for (i = 0; i < 400; i++) {
    n = (i % 37 == 5) ? 30000 : 1 + int(rand() * 20)
    line = ""
    for (j = 0; j < n; j++) line = line (j ? " " : "") "w" int(rand() * 500)
    print (i % 11 == 3) ? "" : line
  }
  printf "last line without newline"
}' >mixed.txt
for m in syn-sm.bin syn-ova.bin q-syn-sm-qout-qnorm.ftz; do
  check_threads "$m mixed lines" "$m" mixed.txt 3
  check_threads "$m tricky" "$m" tricky.txt -1
  check_threads "$m long line" "$m" long.txt 2
done

# Degenerate inputs, on one dense and one quantized model.
for m in syn-sm.bin q-syn-sm-qout-qnorm.ftz; do
  check_same "$m empty file predict" predict "$m" empty.txt
  check_same "$m lone newline predict-prob" predict-prob "$m" newline.txt 3
  check_same "$m k above nlabels predict-prob" predict-prob "$m" syn-held.txt 1000
  check_same "$m threshold above 1 predict-prob" predict-prob "$m" syn-held.txt -1 1.5
  check_same "$m test on unlabelled input" test "$m" unlabelled.txt
  check_same "$m test on empty file" test "$m" empty.txt
  check_same "$m test k=-1" test "$m" syn-held.txt -1
  check_same "$m test threshold above 1" test "$m" syn-held.txt 1 1.5
done

echo "# checks done in ${SECONDS}s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
