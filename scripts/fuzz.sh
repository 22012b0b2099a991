#!/bin/sh
# Runs libFuzzer targets from the sanitized build (make build-asan).
#   scripts/fuzz.sh TARGET SECONDS   one target (fuzz/fuzz_TARGET.c)
#   scripts/fuzz.sh all SECONDS      every target in turn
# Leak detection is on and nothing is suppressed. New inputs go to
# build/fuzz-corpus/TARGET (fuzz/corpus/TARGET is read, never written);
# a crash is written to build/fuzz-crash/TARGET/ and stops the run.
# Afterwards: libFuzzer's last stats line (execs, cov) per target.
set -eu
cd "$(dirname "$0")/.."
target=$1
seconds=$2
if [ "$target" = all ]; then
	targets=$(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_||; s|\.c$||')
else
	targets=$target
fi
status=0
for t in $targets; do
	bin=build/asan/fuzz/fuzz_$t
	[ -x "$bin" ] || { echo "fuzz: $bin missing (make build-asan)"; exit 1; }
	mkdir -p "build/fuzz-corpus/$t" "build/fuzz-crash/$t"
	dict=""
	[ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
	echo "fuzz: $t for ${seconds}s"
	# shellcheck disable=SC2086
	if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
	     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	     "$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
	     -artifact_prefix="build/fuzz-crash/$t/" $dict \
	     "build/fuzz-corpus/$t" "fuzz/corpus/$t" >"build/fuzz-crash/$t.log" 2>&1; then
		echo "fuzz: $t FOUND A PROBLEM: see build/fuzz-crash/$t.log and build/fuzz-crash/$t/"
		status=1
	fi
	grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "build/fuzz-crash/$t.log" | tail -1 || true
	grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "build/fuzz-crash/$t.log" || true
done
exit $status
