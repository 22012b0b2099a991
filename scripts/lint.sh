#!/bin/sh
# make lint: clang-tidy with the tree's profile (.clang-tidy) over every
# source file, against build/release's compile_commands.json; any finding
# fails. LINT_FILES="a.c b.c" limits it to those files.
set -eu
cd "$(dirname "$0")/.."
TIDY=$(command -v clang-tidy-14 || command -v clang-tidy || true)
if [ -z "$TIDY" ]; then
	echo "lint: clang-tidy not installed (Debian package clang-tidy-14; make deps installs it)" >&2
	exit 1
fi
if [ ! -f build/release/compile_commands.json ]; then
	echo "lint: no build/release/compile_commands.json; run make build first" >&2
	exit 1
fi
FILES=${LINT_FILES:-$(ls src/*/*.c)}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# one clang-tidy per core, six files per run
if printf '%s\n' $FILES | xargs -P "$(nproc)" -n 6 "$TIDY" -p build/release --quiet >"$out" 2>/dev/null; then
	n=$(printf '%s\n' $FILES | wc -l)
	echo "lint: clang-tidy clean on $n files"
	exit 0
fi
grep -E "(warning|error):" "$out" | sort -u >&2 || cat "$out" >&2
echo "lint: clang-tidy found the above; fix them (the profile and why each check is on or off: .clang-tidy)" >&2
exit 1
