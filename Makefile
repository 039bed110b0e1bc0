# edgeserve - top-level driver for CMake.
#   make          build (Release) into build/
#   make test     install missing Debian packages, build with -Werror, run the
#                 whole suite, the whole suite again under ASan + UBSan (the
#                 library, the CLI and the server), the threaded tests and the
#                 server under TSan, each fuzz target briefly, and the ARM
#                 check (test-arm)
#   make tsan     the threaded runtime and observability tests under
#                 ThreadSanitizer (part of make test)
#   make fuzz     each libFuzzer target of fuzz/ for FUZZ_SECONDS (default 60)
#                 from the seed corpora in fuzz/corpus (clang; docs/fuzzing.md);
#                 make test runs it for 15 s a target
#   make test-arm cross-build for arm64 and armhf and compare with fastText
#                 under qemu-user (tests/arm/arm-check.sh)
#   make bench    the benchmarks of bench/ (see README): predict.sh, train.sh, runtime.sh
#   make bench-train  bench/train.sh only (training + quantization)
#   make bench-runtime  the runtime's micro-benchmarks (bench/runtime.sh)
#   make bench-server   the server against FastAPI and nginx with wrk (bench/server.sh)
#   make soak     the server under mixed load for SOAK_SECONDS (default 120;
#                 make test runs it too): no crash, only intended errors, flat memory
#   make model    the bundled media model (scripts/make-model.sh) into build/models
#   make serve    build, prepare the repository with the media model
#                 (scripts/prepare-repo.sh) and run the server on 127.0.0.1:8080
#                 (SERVE_ARGS="--port 9000 ..." adds flags; Ctrl-C stops it)
#   make format   clang-format every C file
SHELL := bash
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = fuzz_model fuzz_text fuzz_config fuzz_metrics fuzz_route fuzz_request
# The tests of code that runs on several threads on purpose (training's
# lock-free Hogwild SGD races by design and is left out).
TSAN_TESTS = test_sched test_deque test_affinity test_pool test_bufpool test_devpool \
  test_budget test_estimate test_histogram test_metrics test_latency test_sysmetrics \
  test_memstat test_runtime test_cache test_repo test_backend test_store
JOBS ?= $(shell nproc)

.PHONY: all deps build asan tsan fuzz model serve soak bench-server test test-unit test-arm bench bench-train bench-runtime format clean

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
	  ES_MODEL_BUILD=$(CURDIR)/$(BUILD) ctest --output-on-failure -j$(JOBS)
	$(MAKE) --no-print-directory tsan
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=15
	$(MAKE) --no-print-directory soak SOAK_SECONDS=120
	$(MAKE) --no-print-directory test-arm

# setarch -R: no address-space randomisation, which TSan's fixed shadow
# layout needs on kernels with large mmap_rnd_bits.
tsan: build
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DES_WERROR=ON -DES_TSAN=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j$(JOBS) --target $(TSAN_TESTS) edgeserve-cli edgeserve-serve
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  setarch $$(uname -m) -R ctest --output-on-failure -j$(JOBS) \
	  -R '^($(shell echo $(TSAN_TESTS) | tr ' ' '|'))$$'
	# the server under TSan (the retraining check is left out: 3 minutes here)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ES_MODEL_BUILD=$(BUILD) SKIP=t_train \
	  setarch $$(uname -m) -R bash tests/server/server.sh $(TSAN_BUILD) api

# New inputs go to $(FUZZ_BUILD)/corpus/T (the seeds in fuzz/corpus/T stay as
# they are); a crash stops the run and leaves $(FUZZ_BUILD)/crash-T-*.
fuzz:
	@scripts/deps.sh fuzz
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DES_FUZZ=ON \
	  -DES_BUILD_TESTS=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS) --target $(FUZZ_TARGETS)
	@for t in $(FUZZ_TARGETS); do \
	  c=$${t#fuzz_}; mkdir -p $(FUZZ_BUILD)/corpus/$$c; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/fuzz/$$t $(FUZZ_BUILD)/corpus/$$c fuzz/corpus/$$c \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix=$(FUZZ_BUILD)/crash-$$c- -print_final_stats=1 2>&1 | \
	    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|INFO: (Loaded|seed))" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j$(JOBS)

test-arm: build
	@scripts/deps.sh arm
	tests/arm/arm-check.sh

model: build
	scripts/make-model.sh $(BUILD)

serve: build
	@scripts/prepare-repo.sh $(BUILD) >/dev/null
	$(BUILD)/edgeserve serve --models $(BUILD)/repo --data $(BUILD)/data $(SERVE_ARGS)

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

# The server under wrk with mixed priorities and malformed requests for
# SOAK_SECONDS (docs/server/soak.md); make test runs 120 s.
SOAK_SECONDS ?= 120
soak: build
	bash tests/soak/soak.sh $(BUILD) $(SOAK_SECONDS)

bench-server: build
	@scripts/deps.sh bench
	bench/server.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) build-aarch64 build-armhf
