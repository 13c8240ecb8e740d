# test-server-lifecycle.sh - graceful shutdown (tests/server/shutdown.py),
# command-line errors of `elohim serve`, and scripts/run-main.sh (what
# `make run` starts) printing the URL and the setup token.
. tests/integration/lib.sh
if timeout 120 python3 tests/server/shutdown.py "$BIN" "$TMP" >"$TMP/shutdown.log" 2>&1; then ok; else
    bad "tests/server/shutdown.py"; cat "$TMP/shutdown.log" >&2; fi
tail -n 1 "$TMP/shutdown.log"

expect_exit 0 "$BIN" serve --help
expect_contains "$TMP/out" "usage: elohim serve"
expect_exit 2 "$BIN" serve --listen nonsense
expect_contains "$TMP/err" "ADDR:PORT"
expect_exit 2 "$BIN" serve --listen 127.0.0.1:70000
expect_exit 2 "$BIN" serve --listen 999.1.1.1:80
expect_exit 2 "$BIN" serve extra-argument
expect_exit 1 "$BIN" serve --data /proc/elohim-data --listen 127.0.0.1:0
expect_contains "$TMP/err" "/proc/elohim-data"
expect_exit 2 "$BIN" serve --config "$TMP/missing.json"
echo '{"max_body_bytes": "big"}' >"$TMP/bad.json"
expect_exit 2 "$BIN" serve --config "$TMP/bad.json"
expect_contains "$TMP/err" "max_body_bytes"
echo '{"threads": 4,' >"$TMP/trunc.json"
expect_exit 2 "$BIN" serve --config "$TMP/trunc.json"
expect_contains "$TMP/err" "trunc.json:"

# run-main.sh: URL and token on stdout at once, even into a file.
ELOHIM_DATA="$TMP/run-data" ELOHIM_LISTEN=127.0.0.1:0 ELOHIM_BIN="$BIN" \
    scripts/run-main.sh >"$TMP/run.out" 2>"$TMP/run.err" &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$TMP/run.out" 2>/dev/null && break; sleep 0.1; done
expect_contains "$TMP/run.out" "listening on http://127.0.0.1:"
if grep -qE '^setup token: [0-9a-f]{64}$' "$TMP/run.out"; then ok; else bad "run-main prints the setup token"; fi
# a second server on the same data directory is refused (one audit chain)
expect_exit 1 "$BIN" serve --data "$TMP/run-data" --listen 127.0.0.1:0
expect_contains "$TMP/err" "another elohim serve"
kill -TERM "$pid"
if wait "$pid"; then ok; else bad "run-main server exit status"; fi
if [ -f "$TMP/run-data/elohim.db" ]; then ok; else bad "run-main data dir"; fi
finish
