#!/bin/sh
# make demo: Istio's bookinfo -- the C version in examples/bookinfo -- on
# the local mesh. sinewd starts (sinew up) with a pod network; each
# service runs in its own pod behind a sinew-proxy with transparent
# capture and a certificate from sinewd (sinew run); an ingress gateway
# (sinew gateway run) serves productpage on the host through Istio's
# bookinfo-gateway.yaml, applied unchanged, as in Istio's getting-started;
# Istio's destination-rule-all.yaml is applied; light traffic flows. Runs until
# Ctrl-C, then removes every pod, namespace, rule and process it made.
#
# Needs root (network namespaces and iptables). Without root it falls back
# to examples/file-mode/demo.sh (one proxy on loopback).
#
# Environment (tests): SINEW_BIN, SINEW_SHARED, DEMO_PAGE_PORT (9080),
# DEMO_API_PORT (15080), DEMO_MESH_PORT (15012), DEMO_NETNS (sn-mesh),
# DEMO_CIDR (10.88.0.0/16), DEMO_ONCE=1 (exit once the page works).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SINEW_BIN:-$ROOT/build/release/bin}
SHARED=${SINEW_SHARED:-$ROOT/../shared}
NET=$SHARED/conformance/istio-bookinfo/networking
PAGE_PORT=${DEMO_PAGE_PORT:-9080}
API=127.0.0.1:${DEMO_API_PORT:-15080}
MESH=127.0.0.1:${DEMO_MESH_PORT:-15012}
NETNS=${DEMO_NETNS:-sn-mesh}
CIDR=${DEMO_CIDR:-10.88.0.0/16}
PAGE=http://127.0.0.1:$PAGE_PORT/productpage

if [ ! -d "$NET" ]; then
	echo "demo: Istio's bookinfo files are not at $NET; point SINEW_SHARED at the shared/ directory" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "demo: pods need root (network namespaces, iptables); running the file-mode demo instead." >&2
	echo "demo: for the full mesh: sudo make demo" >&2
	exec "$ROOT/examples/file-mode/demo.sh"
fi

START=$(date +%s.%N)
export SINEW_HOME
SINEW_HOME=$(mktemp -d /tmp/sinew-demo.XXXXXX)
export SINEW_SERVER=http://$API
PIDS=""
sinew() { "$BIN/sinew" "$@"; }

cleanup() {
	trap - EXIT INT TERM HUP
	[ -n "$PIDS" ] && kill $PIDS 2>/dev/null || true
	wait 2>/dev/null || true
	sinew down >/dev/null 2>&1 || sinew down || true
	rm -rf "$SINEW_HOME"
	echo "demo: stopped; pods, namespaces, rules and processes removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

for port in "$PAGE_PORT" "${DEMO_API_PORT:-15080}" "${DEMO_MESH_PORT:-15012}"; do
	if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; [ $? -ne 7 ]; then
		echo "demo: 127.0.0.1:$port is in use; stop what holds it (a previous demo? sinew down) and retry" >&2
		exit 1
	fi
done

echo "demo: starting sinewd with a pod network ($CIDR in network namespace $NETNS)"
sinew up --api "$API" --mesh "$MESH" --mesh-netns "$NETNS" --pod-cidr "$CIDR" >/dev/null

pod() { # service version [extra sinew run flags]
	svc=$1; ver=$2; shift 2
	sinew run --service "$svc" --labels "app=$svc,version=$ver" --service-account "bookinfo-$svc" \
		--port 9080 --ready-timeout 30 "$@" -- "$BIN/bookinfo" "$svc" --listen 0.0.0.0:9080 --version "$ver" \
		>"$SINEW_HOME/$svc-$ver.out" 2>"$SINEW_HOME/$svc-$ver.err" &
	PIDS="$PIDS $!"
}
pod details v1
pod ratings v1
pod reviews v1
pod reviews v2
pod reviews v3
pod productpage v1
# The ingress gateway, Istio's istio-ingressgateway: it opens the ports of
# the Gateways that select it (istio=ingressgateway) as they are applied.
sinew gateway run --publish "$PAGE_PORT:8080" --ready-timeout 30 \
	>"$SINEW_HOME/ingressgateway.out" 2>"$SINEW_HOME/ingressgateway.err" &
PIDS="$PIDS $!"

i=0
until [ "$(sinew ps 2>/dev/null | grep -c ' ready ')" -ge 7 ]; do
	i=$((i + 1))
	if [ $i -gt 600 ]; then
		echo "demo: pods not ready after 60 s:" >&2
		sinew ps >&2 || true
		tail -n 5 "$SINEW_HOME"/*.err >&2 || true
		exit 1
	fi
	sleep 0.1
done
sinew apply -f "$NET/destination-rule-all.yaml" >/dev/null
# Istio's Gateway (port 8080, hosts "*") and the VirtualService bound to it
# (/productpage, /static, /login, /logout, /api/v1/products), unchanged; after
# the Services exist, which its route names.
sinew apply -f "$NET/bookinfo-gateway.yaml" >/dev/null
sinew apply -f "$ROOT/examples/bookinfo/telemetry.yaml" >/dev/null
until curl -sf -o /dev/null --max-time 5 "$PAGE"; do sleep 0.1; done
NOW=$(date +%s.%N)
echo "demo: bookinfo is up in $(awk "BEGIN { printf \"%.1f\", $NOW - $START }") s"
echo
sinew ps
echo

if [ "${DEMO_ONCE:-0}" = 1 ]; then
	curl -s "$PAGE" | grep -q "The Comedy of Errors" || { echo "demo: productpage is wrong" >&2; exit 1; }
	echo "demo: productpage answered; stopping (DEMO_ONCE)"
	exit 0
fi

( while :; do curl -s -o /dev/null --max-time 10 "$PAGE" || true; sleep 1; done ) &
PIDS="$PIDS $!"

cat <<EOF
Open $PAGE (sign in as jason to see the header-based routes): it comes
through the ingress gateway (sinew gateway run), routed by Istio's
bookinfo-gateway.yaml.
Light traffic is flowing (one page a second). Try Istio's task files, unchanged:

  export SINEW_HOME=$SINEW_HOME SINEW_SERVER=$SINEW_SERVER
  $BIN/sinew apply -f $NET/virtual-service-all-v1.yaml              # every page: no stars
  $BIN/sinew apply -f $NET/virtual-service-reviews-test-v2.yaml     # jason: black stars
  $BIN/sinew apply -f $NET/virtual-service-ratings-test-delay.yaml  # jason: 7 s delay, reviews unavailable
  $BIN/sinew apply -f $NET/virtual-service-ratings-test-abort.yaml  # jason: ratings unavailable
  $BIN/sinew delete vs ratings
  $BIN/sinew apply -f $NET/virtual-service-reviews-50-v3.yaml       # half red stars
  $BIN/sinew apply -f $NET/virtual-service-reviews-v3.yaml          # all red stars

And look around:

  $BIN/sinew ps                     # pods, addresses, proxy state, config version
  $BIN/sinew proxy-status           # what each proxy runs
  $BIN/sinew logs productpage --proxy
  $BIN/sinew identity <proxy id>    # its certificate and SPIFFE ID
  $BIN/sinew check                  # mTLS everywhere? certificates far from expiry?
  $BIN/sinew traces                 # each page load, one trace across four services
  $BIN/sinew traces <trace id>      # one as a waterfall
  $BIN/sinew ca rotate --wait       # rotate the root under traffic

Ctrl-C stops the demo and removes everything it made.
EOF
wait
