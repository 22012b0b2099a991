#!/bin/sh
# make demo (until `sinew run` lands): Istio's bookinfo application -- the C
# version in examples/bookinfo -- on loopback, every service sending its
# calls through one sinew-proxy (as its http_proxy), and Istio's own task
# files applied to that proxy live by rewriting its config file.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SINEW_BIN:-$ROOT/build/release/bin}
SHARED=${SINEW_SHARED:-$ROOT/../shared}
NET=$SHARED/conformance/istio-bookinfo/networking
RUN=$(mktemp -d /tmp/sinew-demo.XXXXXX)
PIDS=""
PAGE=http://127.0.0.1:9080/productpage

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$RUN"
	echo "demo: stopped; nothing left behind"
}
trap cleanup EXIT INT TERM HUP PIPE

for port in 9080 9081 9082 9083 9084 9085 15001 15020; do
	# curl exits 7 when nothing listens there
	if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; [ $? -ne 7 ]; then
		echo "demo: 127.0.0.1:$port is in use; stop what holds it (a previous demo?) and retry" >&2
		exit 1
	fi
done

use() { # the proxy's config: the services + Istio's destination rules + task files
	{ cat "$ROOT/examples/bookinfo/mesh.yaml"; printf -- '---\n'; cat "$NET/destination-rule-all.yaml"
	  for f in "$@"; do printf -- '---\n'; cat "$NET/$f"; done; } > "$RUN/sinew.yaml.tmp"
	mv "$RUN/sinew.yaml.tmp" "$RUN/sinew.yaml"   # the proxy sees the rename and reloads
}
use
"$BIN/sinew-proxy" --config "$RUN/sinew.yaml" --outbound 127.0.0.1:15001 --admin 127.0.0.1:15020 \
	--service bookinfo --access-log "$RUN/access.log" 2>"$RUN/proxy.log" &
PIDS="$PIDS $!"
app() { # role listen [--version v]
	name=$1; listen=$2; shift 2
	http_proxy=http://127.0.0.1:15001 "$BIN/bookinfo" "$name" --listen "127.0.0.1:$listen" "$@" \
		2>"$RUN/$name-$listen.log" &
	PIDS="$PIDS $!"
}
app productpage 9080
app details 9081
app ratings 9082
app reviews 9083 --version v1
app reviews 9084 --version v2
app reviews 9085 --version v3
for url in http://127.0.0.1:15020/ready http://127.0.0.1:9080/health http://127.0.0.1:9081/health \
	   http://127.0.0.1:9082/health http://127.0.0.1:9083/health http://127.0.0.1:9084/health \
	   http://127.0.0.1:9085/health; do
	for _ in $(seq 100); do curl -sf "$url" >/dev/null 2>&1 && break; sleep 0.1; done
done

stars() { # N page loads [as user] -> which reviews version rendered them
	for _ in $(seq "$1"); do
		if [ $# -gt 1 ]; then
			curl -s -H "end-user: $2" "$PAGE"
		else
			curl -s "$PAGE"
		fi | awk '/color="black"/ {b=1} /color="red"/ {r=1} /unavailable/ {u=1}
			  END { if (u) print "ratings-unavailable"; else if (b) print "v2(black)"; else if (r) print "v3(red)"; else print "v1(no-stars)" }'
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

echo "== bookinfo is up: $PAGE (through sinew-proxy, config version 1)"
echo "== no VirtualService: reviews is balanced over v1, v2, v3 (P2C peak-EWMA)"
echo "   $(stars 12)"
use virtual-service-reviews-jason-v2-v3.yaml; wait_version 2
echo "== virtual-service-reviews-jason-v2-v3.yaml: jason sees black stars (v2), everyone else red (v3)"
echo "   jason:  $(stars 5 jason)"
echo "   others: $(stars 5)"
use virtual-service-reviews-80-20.yaml; wait_version 3
echo "== virtual-service-reviews-80-20.yaml: 80 % v1, 20 % v2"
echo "   $(stars 40)"
use virtual-service-reviews-test-v2.yaml virtual-service-ratings-test-abort.yaml; wait_version 4
echo "== virtual-service-ratings-test-abort.yaml: ratings aborts jason's calls with HTTP 500 (made by the proxy)"
echo "   jason:  $(stars 3 jason)"
echo "   others: $(stars 3)"
use
echo
echo "bookinfo keeps running with no VirtualService. Try it yourself:"
echo "   open $PAGE  (Sign in as jason to see routing by user)"
echo "   edit $RUN/sinew.yaml, e.g. append a task file from $NET (it reloads on save)"
echo "   curl http://127.0.0.1:15020/metrics | grep sinew_requests_total"
echo "   curl http://127.0.0.1:15020/config_dump; tail -f $RUN/access.log"
echo "Ctrl-C stops everything."
if [ -n "${SINEW_DEMO_ONESHOT:-}" ]; then exit 0; fi
# `wait` (unlike a foreground sleep) is interrupted by signals, so Ctrl-C and
# SIGTERM run the cleanup at once.
while :; do sleep 3600 & PIDS="$PIDS $!"; wait $!; done
