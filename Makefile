# edgeserve - top-level driver for CMake.
#   make          build (Release) into build/
#   make test     install missing Debian packages, build with -Werror, run the
#                 whole suite, the whole suite again under ASan + UBSan (the
#                 library and the CLI), and the ARM check (test-arm)
#   make test-arm cross-build for arm64 and armhf and compare with fastText
#                 under qemu-user (tests/arm/arm-check.sh)
#   make bench    the benchmarks of bench/ (see README): predict.sh, train.sh, runtime.sh
#   make bench-train  bench/train.sh only (training + quantization)
#   make bench-runtime  the runtime's micro-benchmarks (bench/runtime.sh)
#   make model    the bundled media model (scripts/make-model.sh) into build/models
#   make format   clang-format every C file
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)

.PHONY: all deps build asan model test test-unit test-arm bench bench-train bench-runtime format clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DES_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DES_WERROR=ON -DES_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

test: build asan
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j$(JOBS)
	$(MAKE) --no-print-directory test-arm

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j$(JOBS)

test-arm: build
	@scripts/deps.sh arm
	tests/arm/arm-check.sh

model: build
	scripts/make-model.sh $(BUILD)

bench: build
	@scripts/deps.sh bench
	bench/predict.sh
	bench/train.sh
	bench/runtime.sh

bench-train: build
	@scripts/deps.sh bench
	bench/train.sh

bench-runtime: build
	bench/runtime.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-aarch64 build-armhf
