#!/bin/sh
# gRPC through sinew-proxy: two echo servers (python3-grpcio), one proxy in
# file mode, a client making calls on one channel. Prints what it saw and
# the proxy's gRPC metrics, then stops everything.
#   examples/grpc/demo.sh
# Ports (override with the environment): ECHO_A_PORT 50061, ECHO_B_PORT
# 50062, PROXY_PORT 15101, ADMIN_PORT 15120.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SINEW_BIN:-$ROOT/build/release/bin}
A=${ECHO_A_PORT:-50061}; B=${ECHO_B_PORT:-50062}
PROXY=${PROXY_PORT:-15101}; ADMIN=${ADMIN_PORT:-15120}
RUN=$(mktemp -d /tmp/sinew-grpc.XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$RUN"
}
trap cleanup EXIT INT TERM HUP
PY=/usr/bin/python3
$PY "$ROOT/examples/grpc/echo.py" serve "$A" server-a & PIDS="$PIDS $!"
$PY "$ROOT/examples/grpc/echo.py" serve "$B" server-b & PIDS="$PIDS $!"
sed -e "s/ECHO_A_PORT/$A/" -e "s/ECHO_B_PORT/$B/" "$ROOT/examples/grpc/mesh.yaml" > "$RUN/sinew.yaml"
"$BIN/sinew-proxy" --config "$RUN/sinew.yaml" --outbound "127.0.0.1:$PROXY" --admin "127.0.0.1:$ADMIN" \
	2>"$RUN/proxy.log" & PIDS="$PIDS $!"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/ready" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.5   # the servers' ports
echo "== 20 calls to echo:50051 through the proxy at 127.0.0.1:$PROXY (HTTP/2 both sides)"
$PY "$ROOT/examples/grpc/echo.py" call "127.0.0.1:$PROXY" echo:50051 20
echo "== the proxy's gRPC metrics (sinew_requests_total by grpc_response_status)"
curl -s "http://127.0.0.1:$ADMIN/metrics" | grep '^sinew_requests_total' | grep 'request_protocol="grpc"' |
	sed -e 's/.*destination_workload="\([^"]*\)".*grpc_response_status="\([^"]*\)".*} \(.*\)/workload=\1 grpc_response_status=\2 count=\3/'
