#!/usr/bin/env bash
# What `make run` runs (after the build): `elohim doctor`, a short vector
# search demo on generated data, then `elohim serve` on the default data
# directory ($ELOHIM_DATA or ./elohim-data). It prints the URL and, while
# first-run setup is pending, the line `setup token: <token>`. Ctrl-C (or
# SIGTERM) stops it gracefully. $ELOHIM_LISTEN overrides 127.0.0.1:8420.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${ELOHIM_BIN:-build/elohim}
data=${ELOHIM_DATA:-./elohim-data}
listen=${ELOHIM_LISTEN:-127.0.0.1:8420}
# What this machine offers, and the vector search on generated data, first.
"$bin" doctor || true
"$bin" vec demo --rows 200000 || true
echo "run-main: starting elohim serve (data: $data); open the URL below in a browser" >&2
exec "$bin" serve --data "$data" --listen "$listen" --web web
