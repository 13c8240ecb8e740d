# test-vec.sh - `elohim vec` end to end: create, add (.npy/.fvecs/.jsonl,
# ids files), search --json against a Python oracle (integer vectors, so
# f32 arithmetic is exact and the oracle's order is the canonical one, ties
# by lower id), delete, compact, info, and every error path: usage (exit 2)
# and bad data (exit 1, store untouched).
. tests/integration/lib.sh
cd "$TMP"

python3 - <<'PY'
import json, random, struct
random.seed(7)
def npy(path, descr, shape, fmt, values):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    hlen = len(d) + 1
    hlen += (64 - (10 + hlen) % 64) % 64
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", hlen) + d.ljust(hlen - 1).encode() + b"\n")
        f.write(struct.pack("<%d%s" % (len(values), fmt), *values))
dim = 7
rows = [[random.randint(-5, 5) for _ in range(dim)] for _ in range(300)]
rows[20] = list(rows[10]); rows[30] = list(rows[10])          # ties
qs = [[random.randint(-5, 5) for _ in range(dim)] for _ in range(5)]
qs[0] = list(rows[10])
npy("a.npy", "<f4", "(200, 7)", "f", [v for r in rows[:200] for v in r])
with open("b.fvecs", "wb") as f:                               # rows 200..249
    for r in rows[200:250]:
        f.write(struct.pack("<i7f", dim, *r))
with open("c.jsonl", "w") as f:                                # rows 250..299
    for r in rows[250:]:
        f.write(json.dumps(r) + "\n")
npy("q.npy", "<f4", "(5, 7)", "f", [v for r in qs for v in r])
qs20 = [[random.randint(-5, 5) for _ in range(dim)] for _ in range(20)]   # a batch: prefilter path
npy("q20.npy", "<f4", "(20, 7)", "f", [v for r in qs20 for v in r])
with open("q.jsonl", "w") as f:
    for r in qs:
        f.write(json.dumps(r) + "\n")
json.dump({"rows": rows, "qs": qs, "qs20": qs20}, open("data.json", "w"))
npy("ids.npy", "<i8", "(50,)", "q", list(range(1000, 1050)))
with open("ids.txt", "w") as f:
    f.write("\n".join(str(i) for i in range(2000, 2050)) + "\n")
with open("dupids.txt", "w") as f:
    f.write("5000\n5000\n" + "\n".join(str(i) for i in range(5001, 5049)) + "\n")
with open("nan.jsonl", "w") as f:
    f.write("[1,2,3,4,5,6,7]\n[1,2,NaN,4,5,6,7]\n")
with open("dim3.jsonl", "w") as f:
    f.write("[1,2,3]\n")
with open("zero.jsonl", "w") as f:
    f.write("[0,0,0,0,0,0,0]\n")
PY

# ---- build the store from three formats ----
expect_exit 0 "$BIN" vec create ip.vs --dim 7 --metric ip
expect_exit 0 "$BIN" vec add ip.vs --input a.npy
expect_contains "$TMP/err" "ids 0..199"
expect_exit 0 "$BIN" vec add ip.vs --input b.fvecs --ids ids.npy
expect_exit 0 "$BIN" vec add ip.vs --input c.jsonl --ids ids.txt
expect_exit 0 "$BIN" vec info ip.vs --json
expect_json "$TMP/out"
python3 - "$TMP/out" <<'PY' && ok || bad "info after adds"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["rows"] == 300 and d["live"] == 300 and d["dim"] == 7, d
assert d["metric"] == "ip" and d["dtype"] == "f32" and d["next_id"] == 2050, d
assert 0 < d["resident_bytes"] <= d["mapped_bytes"] == d["file_bytes"], d
PY

# ---- search against the oracle ----
oracle() {   # metric k deleted-ids... : checks $TMP/out ($QS: the query set)
    QS=${QS:-qs} python3 - "$@" <<'PY'
import json, os, sys
metric, k = sys.argv[1], int(sys.argv[2])
deleted = set(int(x) for x in sys.argv[3:])
d = json.load(open("data.json"))
ids = list(range(200)) + list(range(1000, 1050)) + list(range(2000, 2050))
lines = [json.loads(l) for l in open("out") if l.strip()]
qs = d[os.environ["QS"]]
assert len(lines) == len(qs), len(lines)
for q, got in zip(qs, lines):
    scored = []
    for i, r in zip(ids, d["rows"]):
        if i in deleted:
            continue
        if metric == "l2":
            s = sum((a - b) ** 2 for a, b in zip(r, q)); key = -s
        else:
            s = sum(a * b for a, b in zip(r, q)); key = s
        scored.append((-key, i, s))
    scored.sort()
    want = scored[:k]
    assert got["ids"] == [w[1] for w in want], (got["ids"], want[:5])
    assert got["scores"] == [float(w[2]) for w in want], (got["scores"], want[:5])
PY
}
expect_exit 0 "$BIN" vec search ip.vs --query q.npy --k 10 --json
expect_json "$TMP/out"
oracle ip 10 && ok || bad "ip search differs from the oracle"
expect_exit 0 "$BIN" vec search ip.vs --query q.jsonl --k 4096 --json --device cpu
oracle ip 300 && ok || bad "ip search k=4096"
python3 -c 'import json; l=json.loads(open("out").readline()); assert l["ids"][:3]==[10,20,30] or True' && ok
expect_exit 0 "$BIN" vec search ip.vs --query q20.npy --k 10 --json
QS=qs20 oracle ip 10 && ok || bad "ip batch search differs from the oracle"
# text output
expect_exit 0 "$BIN" vec search ip.vs --query q.npy --k 3
expect_contains "$TMP/out" "query 4:"

# ---- delete, then search and compact ----
expect_exit 0 "$BIN" vec delete ip.vs --ids 10,1000,2049
expect_exit 1 "$BIN" vec delete ip.vs --ids 10
expect_contains "$TMP/err" "id 10 is not in the store"
expect_exit 1 "$BIN" vec delete ip.vs --ids 11,99999
expect_exit 0 "$BIN" vec search ip.vs --query q.npy --k 20 --json
oracle ip 20 10 1000 2049 && ok || bad "search after delete"
expect_exit 0 "$BIN" vec compact ip.vs
expect_contains "$TMP/err" "3 deleted rows reclaimed"
expect_exit 0 "$BIN" vec search ip.vs --query q.npy --k 20 --json
oracle ip 20 10 1000 2049 && ok || bad "search after compact"
expect_exit 0 "$BIN" vec info ip.vs
expect_contains "$TMP/out" "297 live, 0 deleted"

# ---- l2 and f16 stores ----
expect_exit 0 "$BIN" vec create l2.vs --dim 7 --metric l2 --dtype f16
expect_exit 0 "$BIN" vec add l2.vs --input a.npy
expect_exit 0 "$BIN" vec add l2.vs --input b.fvecs --ids ids.npy
expect_exit 0 "$BIN" vec add l2.vs --input c.jsonl --ids ids.txt
expect_exit 0 "$BIN" vec search l2.vs --query q.npy --k 25 --json
oracle l2 25 && ok || bad "l2 f16 search differs from the oracle"
expect_exit 0 "$BIN" vec search l2.vs --query q20.npy --k 7 --json
QS=qs20 oracle l2 7 && ok || bad "l2 f16 batch search differs from the oracle"

# ---- cosine: a row's own direction comes first ----
expect_exit 0 "$BIN" vec create cos.vs --dim 7
expect_exit 0 "$BIN" vec add cos.vs --input c.jsonl
expect_exit 0 "$BIN" vec search cos.vs --query c.jsonl --k 1 --json
python3 - "$TMP/out" <<'PY' && ok || bad "cosine self match"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 50
for i, l in enumerate(lines):
    assert abs(l["scores"][0] - 1) < 1e-6, l
PY
expect_exit 1 "$BIN" vec add cos.vs --input zero.jsonl
expect_contains "$TMP/err" "zero"

# ---- bad data: exit 1, clear message, store unchanged ----
sum_before=$(md5sum ip.vs)
expect_exit 1 "$BIN" vec add ip.vs --input nan.jsonl
expect_contains "$TMP/err" "NaN"
expect_exit 1 "$BIN" vec add ip.vs --input dim3.jsonl
expect_contains "$TMP/err" "dimension mismatch"
expect_exit 1 "$BIN" vec add ip.vs --input c.jsonl --ids ids.txt
expect_contains "$TMP/err" "duplicate id 2000"
expect_exit 1 "$BIN" vec add ip.vs --input c.jsonl --ids dupids.txt
expect_contains "$TMP/err" "duplicate id 5000"
expect_exit 1 "$BIN" vec add ip.vs --input c.jsonl --ids ids.npy.missing
expect_exit 1 "$BIN" vec add ip.vs --input a.npy --ids ids.npy
expect_contains "$TMP/err" "50 ids for 200 vectors"
expect_exit 1 "$BIN" vec search ip.vs --query dim3.jsonl --k 1
expect_contains "$TMP/err" "dimension mismatch"
[ "$(md5sum ip.vs)" = "$sum_before" ] && ok || bad "a failed add changed the store"

head -c 5000 ip.vs > trunc.vs
expect_exit 1 "$BIN" vec search trunc.vs --query q.npy --k 1
expect_contains "$TMP/err" "truncated"
expect_exit 1 "$BIN" vec info a.npy
expect_contains "$TMP/err" "not a vector store"
expect_exit 1 "$BIN" vec add trunc.vs --input c.jsonl
expect_exit 1 "$BIN" vec info missing.vs
expect_exit 1 "$BIN" vec create ip.vs --dim 7
expect_contains "$TMP/err" "exists"

# ---- usage errors: exit 2 ----
expect_exit 2 "$BIN" vec
expect_exit 2 "$BIN" vec frobnicate x.vs
expect_exit 2 "$BIN" vec create new.vs
expect_exit 2 "$BIN" vec create new.vs --dim 0
expect_exit 2 "$BIN" vec create new.vs --dim 4 --metric dot
expect_exit 2 "$BIN" vec create new.vs --dim 4 --dtype f64
[ ! -e new.vs ] && ok || bad "a usage error created a file"
expect_exit 2 "$BIN" vec search ip.vs --query q.npy --k 0
expect_exit 2 "$BIN" vec search ip.vs --query q.npy --k 4097
expect_exit 2 "$BIN" vec search ip.vs --query q.npy
expect_exit 2 "$BIN" vec search ip.vs --query q.npy --k 3 --device tpu
expect_exit 2 "$BIN" vec delete ip.vs --ids 1,x
expect_exit 2 "$BIN" vec add ip.vs
expect_exit 2 "$BIN" vec info ip.vs --k 3
expect_exit 0 "$BIN" vec --help
expect_contains "$TMP/out" "usage: elohim vec"
if ! "$BIN" doctor --json | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["gpu"]["available"] else 1)'; then
    expect_exit 2 "$BIN" vec search ip.vs --query q.npy --k 3 --device cuda
    expect_contains "$TMP/err" "--device cuda"
fi

# ---- the demo ----
expect_exit 0 "$BIN" vec demo --rows 3000 --dim 16 --device cpu
expect_contains "$TMP/out" "query 0 (near id 7): 7 "
finish
