#!/bin/sh
# Installs the Debian packages Sinew needs, if missing. Idempotent: prints
# nothing and touches nothing when all are present.
#   scripts/deps.sh          build and test (make build, make test)
#   scripts/deps.sh bench    also what the benchmarks compare against
# Packages that ship daemons (prometheus for promtool, haproxy, nginx) are
# installed with their services kept from starting: the tests start what
# they need themselves, on loopback.
set -eu
PKGS="build-essential cmake clang pkg-config libssl-dev libnghttp2-dev \
libyaml-dev libfyaml-dev libcmocka-dev libclang-rt-14-dev libfuzzer-14-dev clang-tidy-14 curl \
python3 python3-h2 python3-websockets python3-grpcio python3-grpc-tools python3-jwt python3-cryptography nghttp2-client nghttp2-server iproute2 iptables prometheus openssl \
testssl.sh sslscan chromium chromium-driver python3-selenium etcd-server"
if [ "${1:-}" = "bench" ]; then
	PKGS="$PKGS haproxy nginx"
fi
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
# Node.js and npm (for @grpc/grpc-js in the gRPC tests), unless some
# node is already on PATH.
if ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi
npm_deps() {
	# @grpc/grpc-js from the npm registry, pinned by package-lock.json.
	dir="$(dirname "$0")/../tests/integration/grpc-js"
	if [ ! -d "$dir/node_modules/@grpc/grpc-js" ]; then
		echo "deps: npm ci in tests/integration/grpc-js"
		(cd "$dir" && npm ci --no-audit --no-fund --silent)
	fi
}
if [ -z "$missing" ]; then
	npm_deps
	exit 0
fi
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Keep package scripts from starting services (Debian's policy-rc.d hook).
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
if [ ! -e "$POLICY" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
	$SUDO chmod +x "$POLICY"
	OWN_POLICY=1
fi
cleanup() { [ "$OWN_POLICY" = 1 ] && $SUDO rm -f "$POLICY"; return 0; }
trap cleanup EXIT
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
npm_deps
