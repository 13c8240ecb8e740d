# lib.sh - sourced by the integration tests: the binary, a scratch folder,
# and assertions that count and report. A test ends with `finish`.
set -u
BIN=${ELOHIM_BIN:-$PWD/build/elohim}
SHARED=${ELOHIM_SHARED:-$PWD/../shared}
TMP=$(mktemp -d /tmp/elohim-it.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
T_PASS=0
T_FAIL=0

ok()   { T_PASS=$((T_PASS + 1)); }
bad()  { T_FAIL=$((T_FAIL + 1)); echo "FAIL: $*" >&2; }
# expect_exit CODE CMD... : runs CMD, checks its exit status
expect_exit() {
    local want=$1; shift
    "$@" >"$TMP/out" 2>"$TMP/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else
        bad "exit $got (want $want): $*"; sed 's/^/    stderr: /' "$TMP/err" | head -5 >&2; fi
}
# expect_contains FILE TEXT
expect_contains() { if grep -qF -- "$2" "$1"; then ok; else bad "$1 lacks '$2'"; fi; }
# expect_json FILE : every line of FILE parses as JSON
expect_json() { if python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1]) if l.strip()]' "$1" 2>/dev/null; then ok; else bad "$1 is not JSON lines"; fi; }
finish() { echo "$T_PASS passed, $T_FAIL failed"; [ "$T_FAIL" -eq 0 ]; }
