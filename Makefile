# Thin wrapper around CMake. Binaries: build/release/bin/ (make build),
# build/asan/bin/ (the sanitized build that make test runs).
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build build-asan test lint unit integration fuzz fuzz-all clean demo bench bench-control bench-stats

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc $(CMAKE_FLAGS) >/dev/null
	@cmake --build build/release -j$(JOBS)

# The sanitized build with clang (ASan + UBSan + libFuzzer targets).
build-asan: deps
	@cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DSN_SANITIZE=ON -DSN_FUZZ=ON -DSN_TEST_HOOKS=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build/asan -j$(JOBS)

# make test: gcc -Werror release build, clang-tidy (make lint), then every
# test under clang with ASan and UBSan: unit, fuzz-corpus replay and
# integration.
test: build build-asan lint
	@cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j2 --timeout 300

# clang-tidy with the tree's profile (.clang-tidy), warnings as errors.
lint: build
	@./scripts/lint.sh

unit: build-asan
	@cd build/asan && ctest --output-on-failure -L unit

integration: build-asan
	@cd build/asan && ctest --output-on-failure -L integration

# Run one fuzz target for a while: make fuzz TARGET=h1_request SECONDS=60
# (leak detection on; fuzz/<target>.dict is used when present). New
# inputs go to build/fuzz-corpus/<target>; crashes to build/fuzz-crash/.
# make fuzz-all SECONDS=N runs every target in turn, N seconds each.
TARGET ?= h1_request
SECONDS ?= 60
fuzz: build-asan
	@./scripts/fuzz.sh $(TARGET) $(SECONDS)

fuzz-all: build-asan
	@./scripts/fuzz.sh all $(SECONDS)

clean:
	rm -rf build

# The local mesh: sinewd, and bookinfo's services each in a pod behind its
# sidecar (sinew run), productpage on http://127.0.0.1:9080/productpage.
# Needs root (else the file-mode demo runs). Runs until Ctrl-C.
demo: build
	@./examples/bookinfo/demo.sh

# Benchmarks (never part of make test): sinew-proxy vs HAProxy vs nginx vs a
# direct connection, in two network namespaces, then sinewd's memory with
# 1,000 simulated proxies reporting live stats. Needs root. Results in
# bench/results/. make bench QUICK=1 for the short run.
bench: build
	@./scripts/deps.sh bench
	@/usr/bin/python3 bench/run.py $(if $(filter-out 0,$(QUICK)),--quick)
	@SINEW_BIN=build/release/bin /usr/bin/python3 bench/stats_memory.py --workloads 1000 $(if $(filter-out 0,$(QUICK)),--rounds 3)

# Control-plane scale: 1,000 simulated proxies against a real sinewd.
bench-control: build
	@./scripts/deps.sh
	@/usr/bin/python3 bench/control.py $(if $(filter-out 0,$(QUICK)),--quick)

# sinewd's live stats (sinew stat): memory with 1,000 simulated proxies
# reporting, at 100 workloads and at one workload per proxy.
bench-stats: build
	@./scripts/deps.sh
	@/usr/bin/python3 bench/stats_memory.py --workloads 100
	@/usr/bin/python3 bench/stats_memory.py --workloads 1000
