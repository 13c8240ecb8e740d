#!/usr/bin/env bash
# scripts/gpu/server.sh - the server on a GPU machine. The server itself runs
# no kernels (it has no CUDA path to compare with a CPU path); what changes
# with a GPU is what it reports. So this (1) runs the server's unit tests
# with the bundled libraries, (2) starts `$BIN serve` and checks that
# /api/v1/setup/status reports the GPU that `$BIN doctor --json` sees and
# that /metrics exports GPU memory gauges matching the device (used <= total,
# total equal to doctor's figure), exiting non-zero on any mismatch, then
# (3) runs a short keep-alive load test of /healthz against the peer
# (Python's ThreadingHTTPServer) and prints a table.
# Env: BIN (bundled elohim), TESTS (bundled unit tests), OUT (logs).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/elohim}
TESTS=${TESTS:-build/tests}
OUT=${OUT:-/tmp/elohim-out}
mkdir -p "$OUT"
status=0
for t in "$TESTS"/test-server "$TESTS"/test-audit; do
    [ -x "$t" ] || continue
    if "$t" >"$OUT/$(basename "$t").log" 2>&1; then echo "ok   $(basename "$t")"; else
        echo "FAIL $(basename "$t") (see $OUT/$(basename "$t").log)"; status=1; fi
done

tmp=$(mktemp -d /tmp/elohim-gpu-server.XXXXXX)
"$BIN" serve --data "$tmp/data" --listen 127.0.0.1:0 --web web >"$tmp/out" 2>"$OUT/server-stderr.log" &
pid=$!
for _ in $(seq 1 150); do grep -q "listening on" "$tmp/out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$tmp/out" | head -1)
"$BIN" doctor --json >"$tmp/doctor.json"
python3 - "$url" "$tmp/doctor.json" <<'PY' || status=1
import json, sys, urllib.request, threading, time, http.client, subprocess
url, doctor = sys.argv[1], json.load(open(sys.argv[2]))
fail = 0
def check(cond, msg):
    global fail
    print(("ok   " if cond else "FAIL ") + msg)
    fail |= not cond
st = json.load(urllib.request.urlopen(url + "/api/v1/setup/status"))
g = doctor["gpu"]
check(st["gpu_available"] == g["available"], "setup/status gpu_available matches doctor (%s)" % g["available"])
if g["available"]:
    check(st["gpu_name"] == g["name"], "gpu_name %r matches doctor" % st["gpu_name"])
metrics = urllib.request.urlopen(url + "/metrics").read().decode()
vals = {}
for line in metrics.splitlines():
    if line.startswith("elohim_gpu_memory_"):
        k, v = line.split()
        vals[k] = float(v)
if g["available"]:
    total, used = vals.get("elohim_gpu_memory_total_bytes"), vals.get("elohim_gpu_memory_used_bytes")
    check(total == g["memory_total_bytes"], "metrics GPU memory total %s = doctor %s" % (total, g["memory_total_bytes"]))
    check(used is not None and 0 <= used <= total, "GPU memory used %s within total" % used)
else:
    check(not vals, "no GPU memory gauges without a GPU")
check('elohim_build_info{version=' in metrics and ('gpu="%s"' % ("true" if g["available"] else "false")) in metrics,
      "build_info carries the GPU flag")

# keep-alive load: 8 client threads for 5 s each against ours and the peer
def load(host, port, seconds=5.0, threads=8):
    counts, lat = [0] * threads, []
    stop = time.time() + seconds
    def worker(i):
        c = http.client.HTTPConnection(host, port, timeout=10)
        mine = []
        while time.time() < stop:
            t0 = time.perf_counter()
            c.request("GET", "/healthz")
            c.getresponse().read()
            mine.append(time.perf_counter() - t0)
            counts[i] += 1
        lat.extend(mine)
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    lat.sort()
    return sum(counts) / seconds, lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")
host, port = url[len("http://"):].split(":")
ours = load(host, int(port))
peer_proc = subprocess.Popen([sys.executable, "bench/peer-server.py", "0"], stdout=subprocess.PIPE, text=True)
peer_port = int(peer_proc.stdout.readline().split()[-1])
peer = load("127.0.0.1", peer_port)
peer_proc.terminate()
print("%-38s %10s %9s" % ("GET /healthz, 8 keep-alive clients", "req/s", "p99 ms"))
print("%-38s %10.0f %9.2f" % ("elohim serve", ours[0], ours[1]))
print("%-38s %10.0f %9.2f" % ("peer: python ThreadingHTTPServer", peer[0], peer[1]))
print("ratio elohim/peer: %.1fx (the Python client itself bounds both figures)" % (ours[0] / peer[0]))
sys.exit(1 if fail else 0)
PY
kill -TERM "$pid"
wait "$pid" || status=1
rm -rf "$tmp"
exit $status
