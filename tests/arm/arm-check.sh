#!/usr/bin/env bash
# arm-check.sh - proves the ARM builds (arm64, and armhf = 32-bit Raspberry Pi
# OS) work: cross-builds edgeserve and the unit tests for each (dynamically
# linked against Debian's multiarch libraries), runs the unit tests under
# qemu-user (ctest, through CMAKE_CROSSCOMPILING_EMULATOR), then runs the
# program on models trained on this machine by Debian's fasttext and
# compares with fastText's output byte for byte.
# The NEON kernels are what runs there (checked with `edgeserve info`).
# Training and the native format too: with --deterministic each ARM build
# trains, quantizes and converts to the very bytes the x86-64 build writes,
# and predicts from int8/int4 .esm files what x86-64 predicts.
# Usage: tests/arm/arm-check.sh   (run by `make test-arm`; needs build/edgeserve)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
data="$root/../shared/data/debian-sections"
[ -f "$data/train.txt" ] || { echo "arm-check: $data not found"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() { # name, expected file, command...
  local name=$1 want=$2; shift 2
  if "$@" > "$work/got" 2> "$work/err" && cmp -s "$work/got" "$want"; then
    echo "ok $name"; pass=$((pass + 1))
  else
    echo "FAIL $name"; diff "$work/got" "$want" | head -5 || true; head -3 "$work/err"
    fail=$((fail + 1))
  fi
}

head -6000 "$data/train.txt" > "$work/train.txt"
head -2000 "$data/test.txt" > "$work/test.txt"
printf 'caffè latte 中文 \xff\xfe\n\n   \nfoo </s> bar\nno newline at end' >> "$work/test.txt"
ft() { fasttext "$@" > /dev/null 2>&1; }
ft supervised -input "$work/train.txt" -output "$work/soft" -dim 20 -epoch 3 -lr 0.5 \
  -wordNgrams 2 -minn 2 -maxn 4 -bucket 50000 -thread 2 -verbose 0
ft supervised -input "$work/train.txt" -output "$work/hs" -dim 16 -epoch 3 -lr 0.5 \
  -wordNgrams 2 -bucket 50000 -loss hs -thread 2 -verbose 0
ft supervised -input "$work/train.txt" -output "$work/ova" -dim 16 -epoch 3 -lr 0.5 \
  -minn 3 -maxn 5 -bucket 50000 -loss ova -thread 2 -verbose 0
ft quantize -input "$work/train.txt" -output "$work/soft" -qnorm -cutoff 20000 -retrain -thread 2

# x86-64 references from this machine's build: a deterministic training run,
# its quantization, int8/int4 conversions and their predictions.
x86="$root/build/edgeserve"
[ -x "$x86" ] || { echo "arm-check: $x86 not built (run make)"; exit 1; }
train_args=(-input "$work/train.txt" -dim 12 -epoch 2 -lr 0.5 -wordNgrams 2 -minn 2 -maxn 3
  -bucket 20000 --deterministic -seed 5 -verbose 0)
train_ref() { # DIR ES...: DIR/m.* (one basename: .esm files record their source's)
  mkdir -p "$1"
  local out=$1/m; shift
  "$@" supervised "${train_args[@]}" -output "$out"
  "$@" quantize -input "$work/train.txt" -output "$out" -qnorm -cutoff 5000 -retrain -epoch 1 \
    --deterministic -verbose 0
  "$@" convert "$out.bin" "$out-int8.esm" --int8
  "$@" convert "$out.bin" "$out-int4.esm" --int4 --normalize lower
}
train_ref "$work/x86" "$x86"
for f in int8 int4; do
  "$x86" predict-prob "$work/x86/m-$f.esm" "$work/test.txt" 3 > "$work/x86-$f.want"
done

for arch in aarch64 armhf; do
  qemu=qemu-aarch64-static
  [ $arch = armhf ] && qemu=qemu-arm-static
  build="$root/build-$arch"
  # a build directory configured with another toolchain (or none) is stale
  if [ -f "$build/CMakeCache.txt" ] &&
    ! grep -q "toolchain-$arch.cmake" "$build/CMakeCache.txt"; then rm -rf "$build"; fi
  cmake -S "$root" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-$arch.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DES_WERROR=ON -DES_BUILD_TESTS=ON > /dev/null
  cmake --build "$build" -j"$(nproc)" > /dev/null
  if (cd "$build" && ctest -L unit -j"$(nproc)" --output-on-failure > "$work/ctest.log" 2>&1); then
    echo "ok $arch unit tests under qemu ($(grep -o 'failed out of [0-9]*' "$work/ctest.log" | sed 's/failed out of/all/') tests)"
    pass=$((pass + 1))
  else
    echo "FAIL $arch unit tests under qemu"; grep -E "Failed|FAILED|ERROR" "$work/ctest.log" | head -20
    fail=$((fail + 1))
  fi
  es="$qemu $build/edgeserve"
  if $es info "$work/soft.bin" | grep -q 'kernels *neon'; then
    echo "ok $arch uses NEON"; pass=$((pass + 1))
  else
    echo "FAIL $arch does not use NEON"; fail=$((fail + 1))
  fi
  for m in soft.bin soft.ftz hs.bin ova.bin; do
    for k in 1 -1; do
      fasttext predict-prob "$work/$m" "$work/test.txt" $k > "$work/want"
      check "$arch predict-prob $m k=$k" "$work/want" $es predict-prob "$work/$m" "$work/test.txt" $k
    done
    fasttext test "$work/$m" "$work/test.txt" > "$work/want"
    check "$arch test $m" "$work/want" $es test "$work/$m" "$work/test.txt"
  done
  # shellcheck disable=SC2086
  train_ref "$work/$arch" $es
  for f in .bin .vec .ftz -int8.esm -int4.esm; do
    check "$arch trains/quantizes/converts the x86-64 bytes: $f" "$work/x86/m$f" \
      cat "$work/$arch/m$f"
  done
  for f in int8 int4; do
    check "$arch predict-prob $f .esm" "$work/x86-$f.want" \
      $es predict-prob "$work/x86/m-$f.esm" "$work/test.txt" 3
  done
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
