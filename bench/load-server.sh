#!/usr/bin/env bash
# load-server.sh - bounded load test of `elohim serve` on loopback with wrk
# (Debian package wrk): /healthz and an authenticated API route
# (GET /api/v1/auth/me with a Bearer token), then the peer (Python's
# ThreadingHTTPServer, bench/peer-server.py) on /healthz. Prints req/s and
# p99 side by side with the goal (>= 5000 req/s, p99 <= 10 ms on 2 cores).
# Each run is DURATION seconds (default 10; total well under 60 s).
# usage: bench/load-server.sh [BIN]   env: DURATION, CONNECTIONS, THREADS
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/elohim}
duration=${DURATION:-10}
conns=${CONNECTIONS:-16}
threads=${THREADS:-2}
command -v wrk >/dev/null || { echo "load-server: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/elohim-load.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

echo '{"per_ip_connections": 1024, "max_connections": 2048}' >"$tmp/config.json"
"$bin" serve --data "$tmp/data" --listen 127.0.0.1:0 --config "$tmp/config.json" >"$tmp/out" 2>"$tmp/err" &
pids+=($!)
for _ in $(seq 1 100); do grep -q "listening on" "$tmp/out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$tmp/out" | head -1)
token=$(awk '/^setup token:/{print $3}' "$tmp/out")
# One administrator through setup step 1 gives a session for the API route.
session=$(python3 - "$url" "$token" <<'PY'
import json, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
body = json.dumps({"username": "bench", "password": "bench password 1", "setup_token": token}).encode()
req = urllib.request.Request(url + "/api/v1/setup/step1", data=body, method="POST")
print(json.load(urllib.request.urlopen(req))["token"])
PY
)

python3 bench/peer-server.py 0 >"$tmp/peer.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "listening on" "$tmp/peer.out" 2>/dev/null && break; sleep 0.1; done
peer="http://127.0.0.1:$(awk '/listening on/{print $3}' "$tmp/peer.out")"

# wrk's "Requests/sec" and the 99% latency in milliseconds.
run() {   # label url [header]
    local args=(-t"$threads" -c"$conns" -d"${duration}s" --latency)
    [ $# -ge 3 ] && args+=(-H "$3")
    wrk "${args[@]}" "$2" >"$tmp/wrk.txt" 2>&1
    local rps p99 errors
    rps=$(awk '/^Requests\/sec:/{printf "%.0f", $2}' "$tmp/wrk.txt")
    p99=$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}' "$tmp/wrk.txt")
    errors=$(awk '/Non-2xx|Socket errors/{print}' "$tmp/wrk.txt" | tr '\n' ' ')
    printf '%-34s %10s %10s  %s\n' "$1" "$rps" "$p99" "$errors"
    eval "$4=$rps"
}
echo "load test: wrk -t$threads -c$conns -d${duration}s on loopback ($(nproc) CPUs)"
printf '%-34s %10s %10s\n' "target" "req/s" "p99 ms"
run "elohim GET /healthz" "$url/healthz" "X-Bench: 1" ours_h
run "elohim GET /api/v1/auth/me (auth)" "$url/api/v1/auth/me" "Authorization: Bearer $session" ours_a
run "peer (python ThreadingHTTPServer)" "$peer/healthz" "X-Bench: 1" peer_h
python3 - "$ours_h" "$ours_a" "$peer_h" <<'PY'
import sys
h, a, p = (float(x or 0) for x in sys.argv[1:])
print("ratio elohim/peer on /healthz: %.1fx; goal >= 5000 req/s: healthz %s, auth route %s"
      % (h / p if p else float("nan"), "met" if h >= 5000 else "NOT met", "met" if a >= 5000 else "NOT met"))
PY
