#!/usr/bin/env bash
# `make bench`: every benchmark on this machine, ours beside the peer a user
# would pick instead (each `elohim bench X` runs its peer script in the same
# run and prints both and the ratio), then the server load test.
# Results are summarized by hand in docs/benchmarks.md.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${ELOHIM_BIN:-build/elohim}
status=0
for b in vector embed sql boot; do
    if "$bin" bench --help 2>/dev/null | grep -q "^  $b "; then
        echo "=== elohim bench $b"
        "$bin" bench "$b" || status=1
    fi
done
echo "=== server load test"
bench/load-server.sh "$bin" || status=1
exit $status
