#!/usr/bin/env bash
# Runs every test that needs no GPU and ends with one summary line,
# "N passed, N failed". Usage: run-tests.sh BUILD_DIR [unit|all]
set -uo pipefail
build=${1:-build}
what=${2:-all}
export ELOHIM_BIN="$PWD/$build/elohim"
export ELOHIM_NO_PROGRESS=1
export ELOHIM_SHARED="${ELOHIM_SHARED:-$PWD/../shared}"
passed=0
failed=0
failures=()
logdir="$build/test-logs"
mkdir -p "$logdir"

run_one() {   # name, command...
    local name=$1; shift
    local log="$logdir/$(echo "$name" | tr '/ ' '__').log"
    local t0=$(date +%s%N)
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        printf '  ok    %-44s %4d.%01ds\n' "$name" $((ms / 1000)) $(((ms % 1000) / 100))
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf '  FAIL  %-44s (log: %s)\n' "$name" "$log"
        tail -n 30 "$log" | sed 's/^/        /'
    fi
}

echo "unit tests ($build):"
for t in "$build"/tests/test-*; do
    [ -x "$t" ] || continue
    run_one "unit/$(basename "$t")" "$t"
done

if [ "$what" = all ]; then
    echo "integration tests:"
    for t in tests/integration/test-*.sh; do
        [ -f "$t" ] || continue
        run_one "integration/$(basename "$t" .sh)" bash "$t"
    done
fi

if [ ${#failures[@]} -gt 0 ]; then
    echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
