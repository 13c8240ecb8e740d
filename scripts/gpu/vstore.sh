#!/usr/bin/env bash
# vstore.sh - vector search on the GPU machine. Run by scripts/gpu-check.sh
# with BIN (the bundled elohim), TESTS (the unit-test binaries) and OUT (a
# folder for logs).
#  1. correctness: random stores (f32/f16; cosine/ip/l2; with deletions;
#     dims 384/100/7; 1..200K rows; k 1/10/100/4096; 1/16/300 queries):
#     `vec search --device cuda --json` must give the ids of
#     `--device cpu --json` exactly, scores within 1e-6 relative; plus the
#     unit tests (test-vstore compares the resident GPU copy, updated by
#     appends and deletes, with the CPU in-process). Exit 1 on a mismatch.
#  2. speed: `bench vector --device cuda` (store resident, 1M and 10M x 384,
#     f32 and f16, 1/16/1024 queries, k 10) against PyTorch topk(Q @ X.T).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-$PWD/build/elohim}
TESTS=${TESTS:-$PWD/build/tests}
OUT=${OUT:-/tmp/elohim-out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0

echo "== vstore: unit tests (CUDA vs CPU in-process)"
if [ -x "$TESTS/test-vstore" ]; then
    if "$TESTS/test-vstore" >"$OUT/test-vstore.log" 2>&1; then
        echo "test-vstore: ok"
    else
        echo "test-vstore: FAILED"; tail -n 30 "$OUT/test-vstore.log"; status=1
    fi
else
    echo "test-vstore: not bundled"; status=1
fi

echo "== vstore: vec search --device cuda vs --device cpu"
# name dtype metric dim rows k queries delete-fraction
cases="
a f32 ip 384 200000 10 16 0.01
b f16 ip 384 200000 100 300 0
c f32 cosine 384 50000 4096 16 0.05
d f16 cosine 100 100000 10 300 0.02
e f32 l2 100 20000 100 1 0.1
f f16 l2 7 200000 10 16 0.001
g f32 ip 7 1 1 1 0
h f32 l2 7 5 4096 16 0
i f32 cosine 100 3000 4096 300 0.3
j f16 ip 100 1000 1 1 0.5
k f32 ip 384 100000 1 300 0
l f16 l2 384 30000 4096 1 0.01
m f32 l2 384 199999 10 16 0.0
n f16 cosine 7 10000 100 16 0.9
"
checked=0
while read -r name dtype metric dim rows k nq del; do
    [ -n "$name" ] || continue
    d="$work/$name"
    mkdir -p "$d"
    if ! "$PY" - "$d" "$dim" "$rows" "$nq" "$del" <<'PY'
import sys, numpy as np
d, dim, rows, nq, frac = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
import zlib
rng = np.random.default_rng(zlib.crc32(d.encode()))
x = rng.standard_normal((rows, dim)).astype(np.float32)
if rows > 10:
    x[rows // 2] = x[1]          # exact duplicates: ties broken by the lower id
q = rng.standard_normal((nq, dim)).astype(np.float32)
np.save(d + "/x.npy", x)
np.save(d + "/q.npy", q)
n = int(rows * frac)
dels = rng.choice(rows, size=n, replace=False) if n else np.array([], dtype=np.int64)
open(d + "/del.txt", "w").write(",".join(str(int(i)) for i in dels))
PY
    then echo "case $name: input generation failed"; status=1; continue; fi
    s="$d/s.vs"
    "$BIN" vec create "$s" --dim "$dim" --dtype "$dtype" --metric "$metric" 2>>"$OUT/vstore-cases.log" &&
    "$BIN" vec add "$s" --input "$d/x.npy" 2>>"$OUT/vstore-cases.log" || { echo "case $name: build failed"; status=1; continue; }
    if [ -s "$d/del.txt" ]; then
        "$BIN" vec delete "$s" --ids "$(cat "$d/del.txt")" 2>>"$OUT/vstore-cases.log" || { echo "case $name: delete failed"; status=1; continue; }
    fi
    "$BIN" vec search "$s" --query "$d/q.npy" --k "$k" --device cpu --json >"$d/cpu.jsonl" 2>>"$OUT/vstore-cases.log" || { echo "case $name: cpu search failed"; status=1; continue; }
    if ! "$BIN" vec search "$s" --query "$d/q.npy" --k "$k" --device cuda --json >"$d/cuda.jsonl" 2>"$d/cuda.err"; then
        echo "case $name: cuda search failed: $(head -c 300 "$d/cuda.err")"; status=1; continue
    fi
    if "$PY" - "$d/cpu.jsonl" "$d/cuda.jsonl" "$name $dtype $metric dim $dim rows $rows k $k nq $nq del $del" <<'PY'
import json, sys
cpu = [json.loads(l) for l in open(sys.argv[1])]
gpu = [json.loads(l) for l in open(sys.argv[2])]
label = sys.argv[3]
if len(cpu) != len(gpu):
    sys.exit("case %s: %d cpu lines, %d cuda lines" % (label, len(cpu), len(gpu)))
for qi, (c, g) in enumerate(zip(cpu, gpu)):
    if c["ids"] != g["ids"]:
        first = next((i for i, (a, b) in enumerate(zip(c["ids"], g["ids"])) if a != b), min(len(c["ids"]), len(g["ids"])))
        sys.exit("case %s: query %d: ids differ at rank %d (cpu %s, cuda %s; %d vs %d results)" % (
            label, qi, first, c["ids"][first:first + 3], g["ids"][first:first + 3], len(c["ids"]), len(g["ids"])))
    for i, (a, b) in enumerate(zip(c["scores"], g["scores"])):
        if abs(a - b) > 1e-6 * max(abs(a), 1e-6):
            sys.exit("case %s: query %d rank %d: score cpu %r cuda %r" % (label, qi, i, a, b))
print("case %s: %d queries identical" % (label, len(cpu)))
PY
    then checked=$((checked + 1)); else status=1; fi
done <<<"$cases"
echo "correctness: $checked cases identical"

echo "== vstore: bench vector --device cuda (ours, resident) vs PyTorch"
if ! "$BIN" bench vector --device cuda --python "$PY" --peer bench/peer-vector.py --repeat 10 \
        --dir "$work" 2>&1 | tee "$OUT/bench-vector-gpu.txt"; then
    echo "bench vector --device cuda: FAILED"; status=1
fi
exit $status
