#!/usr/bin/env bash
# sql.sh - GPU checks and benchmark of the SQL engine, run on a CUDA machine
# by scripts/gpu-check.sh with BIN (the bundled elohim), TESTS (bundled unit
# test binaries) and OUT (logs). Exits non-zero on any mismatch.
#   1. every sqllogictest script with --device cuda (must all pass);
#   2. the differential fuzzer with the CUDA engine against SQLite, on small
#      tables and on tables large enough for both kernel variants (shared-
#      memory and global), and CUDA vs CPU checksums in the benchmark data;
#   3. the GPU benchmark: q1-q5 at 1e8 rows resident vs PyTorch scatter_add.
set -uo pipefail
BIN=${BIN:-build/elohim}
TESTS=${TESTS:-build/tests}
OUT=${OUT:-/tmp/elohim-out}
ROWS=${ELOHIM_SQL_GPU_ROWS:-100000000}
mkdir -p "$OUT"
status=0

slt=""
for d in "${ELOHIM_SHARED:-../shared}/sqllogictest" shared/sqllogictest .bundle/sqllogictest \
         "$(dirname "$BIN")/sqllogictest"; do
    if [ -d "$d/random/groupby" ]; then slt=$d; break; fi
done
echo "== 1. sqllogictest --device cuda ($slt)"
if [ -z "$slt" ]; then
    echo "FAIL: sqllogictest scripts not found (set ELOHIM_SHARED)"; status=1
elif ! "$BIN" sqllogictest --device cuda "$slt"/evidence/*.test "$slt"/random/groupby/*.test \
        > "$OUT/sql-slt-cuda.txt" 2> "$OUT/sql-slt-cuda.err"; then
    tail -20 "$OUT/sql-slt-cuda.txt" "$OUT/sql-slt-cuda.err"; echo "FAIL: sqllogictest on CUDA"; status=1
else
    tail -3 "$OUT/sql-slt-cuda.txt"
fi

echo "== 2. differential: CUDA engine vs SQLite"
for cfg in "40 20000" "3000 3000" "30000 600"; do
    set -- $cfg
    if ! ELOHIM_SQL_DIFF_DEVICE=cuda ELOHIM_SQL_DIFF_ROWS=$1 ELOHIM_SQL_DIFF_ITERS=$2 \
            ELOHIM_SQL_DIFF_SEED=$RANDOM "$TESTS/test-sql-diff" > "$OUT/sql-diff-$1.log" 2>&1; then
        grep -E 'MISMATCH|row |differential' "$OUT/sql-diff-$1.log" | head -20
        echo "FAIL: differential (tables up to $1 rows)"; status=1
    else
        grep differential "$OUT/sql-diff-$1.log"
    fi
done
echo "== 2b. CUDA vs CPU on the benchmark data (1e6 rows, exact for integer sums)"
if ! "$BIN" bench sql --device cuda --rows 1000000 --reps 1 --no-peer --json > "$OUT/sql-cuda-1e6.json" ||
   ! "$BIN" bench sql --device cpu --rows 1000000 --reps 1 --no-peer --no-sqlite --json \
        > "$OUT/sql-cpu-1e6.json"; then
    echo "FAIL: bench runs"; status=1
else
    python3 - "$OUT/sql-cuda-1e6.json" "$OUT/sql-cpu-1e6.json" <<'PY' || status=1
import json, sys
g, c = (json.load(open(p)) for p in sys.argv[1:3])
bad = 0
for a, b in zip(g["queries"], c["queries"]):
    ok = a["groups"] == b["groups"] and abs(a["checksum"] - b["checksum"]) <= 1e-9 * abs(b["checksum"])
    print("%-28s cuda %-6s groups %8d checksum %.17g | cpu %.17g %s" % (a["query"], a["engine"],
          a["groups"], a["checksum"], b["checksum"], "ok" if ok else "MISMATCH"))
    bad += not ok or a["engine"] != "cuda"
sys.exit(1 if bad else 0)
PY
fi

echo "== 3. benchmark: $ROWS rows resident on the GPU vs PyTorch"
if ! "$BIN" bench sql --device cuda --rows "$ROWS" --reps 10 --peer bench/peer-sql.py \
        2> "$OUT/sql-bench.err" | tee "$OUT/sql-bench.txt"; then
    tail -5 "$OUT/sql-bench.err"; echo "FAIL: benchmark"; status=1
fi
exit $status
