# test-server-audit.sh - tamper evidence of the audit log: edited, deleted
# (middle and newest) rows, recomputed chains, edited/missing head, and the
# server refusing a tampered log (tests/server/tamper.py).
. tests/integration/lib.sh
if timeout 180 python3 tests/server/tamper.py "$BIN" "$TMP" >"$TMP/tamper.log" 2>&1; then ok; else
    bad "tests/server/tamper.py"; cat "$TMP/tamper.log" >&2; fi
tail -n 1 "$TMP/tamper.log"
expect_exit 2 "$BIN" audit
expect_exit 2 "$BIN" audit check
expect_exit 0 "$BIN" audit --help
expect_exit 1 "$BIN" audit verify --data "$TMP/does-not-exist"
expect_contains "$TMP/err" "no database"
finish
