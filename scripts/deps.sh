#!/bin/sh
# Installs the Debian packages Sinew needs to build and test, if missing.
# Idempotent: prints nothing and touches nothing when all are present.
set -eu
PKGS="build-essential cmake clang pkg-config libssl-dev libnghttp2-dev \
libfyaml-dev libcmocka-dev libclang-rt-14-dev libfuzzer-14-dev curl \
python3 nghttp2-client iproute2 prometheus haproxy nginx"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
