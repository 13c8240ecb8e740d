#!/usr/bin/env bash
# scripts/gpu/embed.sh - sentence embeddings on the GPU machine (run by
# scripts/gpu-check.sh with BIN, TESTS, OUT set). Exits non-zero on any
# mismatch:
#   1. the unit tests' CUDA-vs-CPU check (fresh random token sequences; f32
#      within 1e-4, f16/bf16 cosine >= 0.999, graph replays included), also
#      with each attention path forced (ELOHIM_EMBED_ATTENTION), and the
#      Hopper FF1 kernel against a double product (required on a 9.0 GPU);
#   2. the tiny-bert fixture with --device cuda: ids exact, f32 within 1e-4
#      of the float64 reference, f16 and bf16 cosine >= 0.999;
#   3. CPU vs CUDA through the CLI on random texts with random-weight
#      MiniLM-shaped models (bench/make-random-bert.py), head size 32 (12
#      heads) and 64 (6 heads), at f32, f16 and bf16;
#   4. the real all-MiniLM-L6-v2 (its matrices carried as f16, see
#      scripts/gpu/minilm-16.py) at f16 and bf16 against the reference
#      vectors sentence-transformers made (tests/fixtures/minilm): ids
#      identical, cosine >= 0.999 on each of the 62 texts;
#   5. the GPU benchmark: ours (f32, f16) vs sentence-transformers (fp32,
#      fp16) on that model: 32 tokens batch 1, 32x1024, 128x256.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/elohim}
TESTS=${TESTS:-build/tests}
OUT=${OUT:-/tmp/elohim-out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
work=$(mktemp -d /tmp/elohim-embed-gpu.XXXXXX)
trap 'rm -rf "$work"' EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }

# The tiny-bert fixture lives in the shared folder beside the checkout.
shared=""
for d in "${ELOHIM_SHARED:-}" ../shared shared; do
    if [ -n "$d" ] && [ -f "$d/fixtures/tiny_bert_public.json" ]; then shared=$(cd "$d" && pwd); break; fi
done

echo "--- 1. unit tests (CUDA vs CPU on random token ids)"
if [ -n "$shared" ] && [ -x "$TESTS/test-embed" ]; then
    ELOHIM_SHARED="$shared" "$TESTS/test-embed" 2>&1 | tee "$OUT/embed-unit.log" | grep -E "cuda|sm90|OK|FAIL|PASSED|SKIPPED" || true
    grep -q "FAILED" "$OUT/embed-unit.log" && fail "unit tests"
    grep -q "SKIPPED ] test_cuda_matches_cpu" "$OUT/embed-unit.log" && fail "the CUDA test was skipped on a GPU machine"
    # the Hopper FF1 kernel's own check must run on a compute capability 9.0 GPU
    if nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | grep -q '^9\.0'; then
        grep -q "SKIPPED ] test_sm90_ff_gelu" "$OUT/embed-unit.log" && fail "the sm90 FF1 check was skipped on a 9.0 GPU"
    fi
    # every attention path, forced, whatever the batch size would pick
    for mode in tc rows warp unfused; do
        if ELOHIM_SHARED="$shared" ELOHIM_EMBED_ATTENTION=$mode "$TESTS/test-embed" \
                > "$OUT/embed-unit-$mode.log" 2>&1; then
            echo "attention=$mode: $(grep -E 'cuda f16' "$OUT/embed-unit-$mode.log" | head -1)"
        else
            fail "unit tests with ELOHIM_EMBED_ATTENTION=$mode"
        fi
    done
else
    echo "(no tiny-bert fixture or unit-test binary here: step 3 covers CPU vs CUDA)"
fi

echo "--- 2. tiny-bert fixture on --device cuda"
if [ -n "$shared" ]; then
    "$PY" - "$shared/fixtures/tiny_bert_public.json" "$work/tiny.jsonl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for c in d["cases"]:
        f.write(json.dumps(c["text"]) + "\n")
PY
    for prec in f32 f16 bf16; do
        if ! "$BIN" embed --model "$shared/fixtures/tiny-bert" --device cuda --precision $prec \
                --input "$work/tiny.jsonl" --ids --output "$work/tiny-$prec.jsonl"; then
            fail "embed --device cuda --precision $prec"; continue
        fi
        "$PY" - "$shared/fixtures/tiny_bert_public.json" "$work/tiny-$prec.jsonl" $prec <<'PY' || fail "tiny-bert $prec"
import json, math, sys
d = json.load(open(sys.argv[1])); prec = sys.argv[3]
ours = [json.loads(l) for l in open(sys.argv[2])]
assert len(ours) == len(d["cases"])
worst_abs, worst_cos = 0.0, 1.0
for c, o in zip(d["cases"], ours):
    assert o["input_ids"] == c["input_ids"], c["text"]
    a, b = o["embedding"], c["embedding"]
    worst_abs = max(worst_abs, max(abs(x - y) for x, y in zip(a, b)))
    worst_cos = min(worst_cos, sum(x * y for x, y in zip(a, b)) /
                    math.sqrt(sum(x * x for x in a) * sum(y * y for y in b)))
print("tiny-bert cuda %s: max abs %.3g, min cosine %.8f" % (prec, worst_abs, worst_cos))
assert (worst_abs <= 1e-4) if prec == "f32" else (worst_cos >= 0.999)
PY
    done
else
    echo "(no shared fixtures on this machine: skipped; steps 1 and 3 still compare CUDA with the CPU)"
fi

echo "--- 3. CPU vs CUDA on random texts (random MiniLM-shaped models, head sizes 32 and 64)"
model="$work/minilm-random"
"$PY" bench/make-random-bert.py "$model" >/dev/null || fail "make-random-bert.py"
"$PY" bench/make-random-bert.py "$work/heads6-random" --heads 6 >/dev/null || fail "make-random-bert.py --heads 6"
"$PY" - "$work/random.jsonl" <<'PY'
import json, random, sys
random.seed()
words = ["hello", "world", "search", "the", "a", "vector", "gpu", "fast", "text"] + ["w%d" % i for i in range(3000)]
with open(sys.argv[1], "w") as f:
    for i in range(300):
        n = random.choice([0, 1, 3, 10, 30, 62, 63, 100, 126, 200, 300])
        f.write(json.dumps(" ".join(random.choice(words) for _ in range(n))) + "\n")
    # many short texts: buckets of hundreds of sequences
    for i in range(1700):
        n = random.randint(0, 20)
        f.write(json.dumps(" ".join(random.choice(words) for _ in range(n))) + "\n")
PY
for m in "$model" "$work/heads6-random"; do
  "$BIN" embed --model "$m" --device cpu --input "$work/random.jsonl" --ids --output "$work/cpu.jsonl" || fail "cpu run"
  for prec in f32 f16 bf16; do
    "$BIN" embed --model "$m" --device cuda --precision $prec --input "$work/random.jsonl" --ids \
        --output "$work/cuda-$prec.jsonl" || { fail "cuda $prec run"; continue; }
    "$PY" - "$work/cpu.jsonl" "$work/cuda-$prec.jsonl" $prec "$(basename "$m")" <<'PY' || fail "CPU vs CUDA $prec"
import json, math, sys
cpu = [json.loads(l) for l in open(sys.argv[1])]
gpu = [json.loads(l) for l in open(sys.argv[2])]
prec = sys.argv[3]
assert len(cpu) == len(gpu) == 2000
worst_abs, worst_cos = 0.0, 1.0
for a, b in zip(cpu, gpu):
    assert a["input_ids"] == b["input_ids"]
    x, y = a["embedding"], b["embedding"]
    worst_abs = max(worst_abs, max(abs(p - q) for p, q in zip(x, y)))
    worst_cos = min(worst_cos, sum(p * q for p, q in zip(x, y)) /
                    math.sqrt(sum(p * p for p in x) * sum(q * q for q in y)))
print("random texts %s cuda %s vs cpu: max abs %.3g, min cosine %.8f" % (sys.argv[4], prec, worst_abs, worst_cos))
assert (worst_abs <= 1e-4) if prec == "f32" else (worst_cos >= 0.999)
PY
  done
  # batches of one sequence (the tensor-core attention takes those too)
  for i in 5 6 7; do
    sed -n "${i}p" "$work/random.jsonl" > "$work/one.jsonl"
    sed -n "${i}p" "$work/cpu.jsonl" > "$work/one-cpu.jsonl"
    "$BIN" embed --model "$m" --device cuda --precision f16 --input "$work/one.jsonl" \
        --output "$work/one-cuda.jsonl" || { fail "cuda single-text run"; continue; }
    "$PY" - "$work/one-cpu.jsonl" "$work/one-cuda.jsonl" <<'PY' || fail "CPU vs CUDA f16, one text"
import json, math, sys
x = json.loads(open(sys.argv[1]).readline())["embedding"]
y = json.loads(open(sys.argv[2]).readline())["embedding"]
cos = sum(p * q for p, q in zip(x, y)) / math.sqrt(sum(p * p for p in x) * sum(q * q for q in y))
print("one text cuda f16 vs cpu: cosine %.8f" % cos)
assert cos >= 0.999
PY
  done
done

echo "--- 4. the real all-MiniLM-L6-v2 against sentence-transformers' vectors"
# .gpu-model/ holds the model with its matrices stored as f16
# (scripts/gpu/minilm-16.py, made where the model was fetched): the f16
# and bf16 paths round those matrices to 16 bits anyway.
real=${ELOHIM_MINILM16:-.gpu-model/all-MiniLM-L6-v2-f16}
ref=tests/fixtures/minilm/reference.json
if [ -f "$real/model.safetensors" ] && [ -f "$ref" ]; then
    "$PY" -c 'import json,sys; [print(json.dumps(c["text"])) for c in json.load(open(sys.argv[1]))["cases"]]' \
        "$ref" > "$work/real.jsonl"
    for prec in f16 bf16 f32; do
        "$BIN" embed --model "$real" --device cuda --precision $prec --ids \
            --input "$work/real.jsonl" --output "$work/real-$prec.jsonl" 2>"$OUT/real-$prec.err" ||
            { fail "embed the real model at $prec"; continue; }
        # f32 runs the 16-bit matrices in f32: shown, held to the f16 bound
        "$PY" - "$ref" "$work/real-$prec.jsonl" $prec <<'PY' || fail "real model cuda $prec"
import json, math, sys
d = json.load(open(sys.argv[1]))
ours = [json.loads(l) for l in open(sys.argv[2])]
assert len(ours) == len(d["cases"]) >= 50
worst = 1.0
for c, o in zip(d["cases"], ours):
    assert o["input_ids"] == c["input_ids"], c["text"][:60]
    a, b = o["embedding"], c["embedding"]
    cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    worst = min(worst, cos)
print("real all-MiniLM-L6-v2 cuda %s vs sentence-transformers: %d texts, ids identical, min cosine %.8f"
      % (sys.argv[3], len(ours), worst))
assert worst >= 0.999
PY
    done
else
    echo "(no $real: run scripts/gpu/minilm-16.py models/all-MiniLM-L6-v2 $real and carry it)"
fi

echo "--- 5. benchmark (random-weight MiniLM shape; peer: sentence-transformers)"
export ELOHIM_PEER_PYTHON="$PY"
for prec in f32 f16; do
    "$BIN" bench embed --device cuda --precision $prec --model "$model" --seconds 1 \
        2>"$OUT/embed-bench-$prec.err" | tee "$OUT/embed-bench-$prec.txt" || fail "bench $prec"
done
[ $status -eq 0 ] && echo "embed GPU checks: all passed" || echo "embed GPU checks: FAILED"
exit $status
