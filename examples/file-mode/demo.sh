#!/bin/sh
# make demo (until the local-mesh issue lands): bookinfo's backends on
# loopback, one sinew-proxy in front of them as productpage's sidecar, and
# Istio's own task files applied to it by rewriting its config file.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SINEW_BIN:-$ROOT/build/release/bin}
SHARED=${SINEW_SHARED:-$ROOT/../shared}
NET=$SHARED/conformance/istio-bookinfo/networking
RUN=$(mktemp -d /tmp/sinew-demo.XXXXXX)
PIDS=""

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$RUN"
	echo "demo: stopped; nothing left behind"
}
trap cleanup EXIT INT TERM HUP PIPE

backend() { # name version port
	/usr/bin/python3 "$ROOT/tests/integration/backend.py" --port "$3" --service "$1" --version "$2" \
		>"$RUN/$1-$2.log" 2>&1 &
	PIDS="$PIDS $!"
}
backend reviews v1 19081
backend reviews v2 19082
backend reviews v3 19083
backend ratings v1 19084
backend details v1 19085

use() { # VirtualService files to apply on top of the mesh
	{ cat "$ROOT/examples/file-mode/mesh.yaml"; printf -- '---\n'; cat "$NET/destination-rule-all.yaml"; } > "$RUN/sinew.yaml.tmp"
	for f in "$@"; do printf -- '---\n' >> "$RUN/sinew.yaml.tmp"; cat "$NET/$f" >> "$RUN/sinew.yaml.tmp"; done
	mv "$RUN/sinew.yaml.tmp" "$RUN/sinew.yaml"   # the proxy sees the rename and reloads
}
for port in 19081 19082 19083 19084 19085; do
	for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/__requests" >/dev/null 2>&1 && break; sleep 0.1; done
done
use
"$BIN/sinew-proxy" --config "$RUN/sinew.yaml" --outbound 127.0.0.1:15001 --admin 127.0.0.1:15020 \
	--service productpage --labels app=productpage,version=v1 --access-log "$RUN/access.log" \
	2>"$RUN/proxy.log" &
PIDS="$PIDS $!"
for _ in $(seq 50); do curl -sf http://127.0.0.1:15020/ready >/dev/null 2>&1 && break; sleep 0.1; done

versions() { # N requests to reviews [header]
	for _ in $(seq "$1"); do
		if [ $# -gt 1 ]; then
			curl -s -w "\n" -x http://127.0.0.1:15001 -H "$2" http://reviews:9080/reviews/0
		else
			curl -s -w "\n" -x http://127.0.0.1:15001 http://reviews:9080/reviews/0
		fi | sed -n 's/.*"version": "\(v[0-9]\)".*/\1/p'
	done | sort | uniq -c | tr '\n' ' '
	echo
}
wait_version() { # the proxy reloads within ~100 ms of a file change
	for _ in $(seq 30); do
		v=$(curl -s http://127.0.0.1:15020/ready | sed -n 's/.*version \([0-9]*\).*/\1/p')
		[ "$v" = "$1" ] && return 0
		sleep 0.1
	done
}

echo "== no VirtualService: reviews is balanced over v1, v2, v3 (P2C peak-EWMA)"
echo "   $(versions 30)"
use virtual-service-reviews-jason-v2-v3.yaml; wait_version 2
echo "== virtual-service-reviews-jason-v2-v3.yaml: jason -> v2, everyone else -> v3"
echo "   jason:  $(versions 10 'end-user: jason')"
echo "   others: $(versions 10)"
use virtual-service-reviews-80-20.yaml; wait_version 3
echo "== virtual-service-reviews-80-20.yaml: 80 % v1, 20 % v2"
echo "   $(versions 100)"
use virtual-service-ratings-test-abort.yaml; wait_version 4
echo "== virtual-service-ratings-test-abort.yaml: jason's calls to ratings get a 500 made by the proxy"
curl -s -i -x http://127.0.0.1:15001 -H 'end-user: jason' http://ratings:9080/ratings/0 | grep -iE '^HTTP|^sinew-error' | sed 's/^/   /'
echo
echo "The proxy is running. Try it yourself:"
echo "   curl -x http://127.0.0.1:15001 http://reviews:9080/reviews/0"
echo "   curl -x http://127.0.0.1:15001 -H 'end-user: jason' http://ratings:9080/ratings/0 -i"
echo "   curl http://127.0.0.1:15020/metrics | grep sinew_requests_total"
echo "   curl http://127.0.0.1:15020/config_dump"
echo "   edit $RUN/sinew.yaml (it reloads on save), tail -f $RUN/access.log"
echo "Ctrl-C stops everything."
if [ -n "${SINEW_DEMO_ONESHOT:-}" ]; then cat "$RUN/proxy.log"; head -40 "$RUN/access.log" | cut -c1-400; exit 0; fi
while :; do sleep 3600; done
