# test-embed.sh - `elohim embed` end to end on the tiny-bert fixture: token
# ids exact and embeddings within 1e-5 of the float64 reference (CPU f32),
# JSONL streaming in and out, and every bad input a clear error with the
# right exit code and nothing half-written; and `elohim bench embed`'s
# tables and JSON (both modes) with the peer's lines faked.
. tests/integration/lib.sh
MODEL="$SHARED/fixtures/tiny-bert"
REF="$SHARED/fixtures/tiny_bert_public.json"

# --- the fixture, through TEXT arguments and through --input ------------
python3 - "$REF" "$TMP/in.jsonl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for c in d["cases"]:
        f.write(json.dumps(c["text"]) + "\n")
PY
check_ref() {   # FILE: output lines vs the reference
    python3 - "$REF" "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
lines = [json.loads(l) for l in open(sys.argv[2])]
assert len(lines) == len(d["cases"]), (len(lines), len(d["cases"]))
worst = 0.0
for c, o in zip(d["cases"], lines):
    assert o["input_ids"] == c["input_ids"], (c["text"], o["input_ids"], c["input_ids"])
    assert len(o["embedding"]) == len(c["embedding"])
    worst = max(worst, max(abs(a - b) for a, b in zip(o["embedding"], c["embedding"])))
print("max abs error", worst)
assert worst <= 1e-5, worst
PY
}
expect_exit 0 "$BIN" embed --model "$MODEL" --device cpu --input "$TMP/in.jsonl" --ids
if check_ref "$TMP/out"; then ok; else bad "tiny-bert reference via --input"; fi
mapfile -t texts < <(python3 -c 'import json,sys; [print(c["text"]) for c in json.load(open(sys.argv[1]))["cases"] if "\n" not in c["text"] and "\t" not in c["text"]]' "$REF")
expect_exit 0 "$BIN" embed --model "$MODEL" --ids -- "${texts[@]}"
python3 - "$REF" "$TMP/out" <<'PY' && ok || bad "TEXT arguments disagree with the reference"
import json, sys
cases = [c for c in json.load(open(sys.argv[1]))["cases"] if "\n" not in c["text"] and "\t" not in c["text"]]
lines = [json.loads(l) for l in open(sys.argv[2])]
assert len(lines) == len(cases)
for c, o in zip(cases, lines):
    assert o["input_ids"] == c["input_ids"]
    assert max(abs(a - b) for a, b in zip(o["embedding"], c["embedding"])) <= 1e-5
    assert set(o) == {"embedding", "input_ids"}
PY
# Without --ids: only the embedding; --batch 1 streams one text at a time
# and must give the same numbers as one big batch.
expect_exit 0 "$BIN" embed --model "$MODEL" --input "$TMP/in.jsonl" --batch 1 --output "$TMP/b1.jsonl"
expect_exit 0 "$BIN" embed --model "$MODEL" --input "$TMP/in.jsonl" --batch 7 --output "$TMP/b7.jsonl"
python3 - "$TMP/b1.jsonl" "$TMP/b7.jsonl" <<'PY' && ok || bad "batch sizes disagree"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 18 and all(set(x) == {"embedding"} for x in a)
assert max(abs(p - q) for x, y in zip(a, b) for p, q in zip(x["embedding"], y["embedding"])) <= 1e-6
PY
# Blank lines are skipped; stdin works.
printf '"a"\n\n   \n"Hello world!"\n' | "$BIN" embed --model "$MODEL" --input - >"$TMP/stdin.out" 2>"$TMP/err"
[ "$(wc -l <"$TMP/stdin.out")" -eq 2 ] && ok || bad "stdin with blank lines"

# --- usage errors (exit 2) ----------------------------------------------
expect_exit 2 "$BIN" embed --model "$MODEL"
expect_exit 2 "$BIN" embed --model "$MODEL" --device cpu --precision f16 "text"
expect_contains "$TMP/err" "GPU"
expect_exit 2 "$BIN" embed --model "$MODEL" --precision f64 "text"
expect_exit 2 "$BIN" embed --model "$MODEL" --device tpu "text"
expect_exit 2 "$BIN" embed --model "$MODEL" --input "$TMP/in.jsonl" "text"
expect_exit 2 "$BIN" embed --model "$MODEL" --output "$TMP/x.jsonl" "text"
expect_exit 2 "$BIN" embed --model "$MODEL" --batch 0 --input "$TMP/in.jsonl"
if ! "$BIN" doctor --json | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["gpu"]["available"] else 1)'; then
    expect_exit 2 "$BIN" embed --model "$MODEL" --device cuda "text"
    expect_contains "$TMP/err" "cuda"
    expect_exit 2 "$BIN" embed --model "$MODEL" --precision f16 "text"
fi
expect_exit 0 "$BIN" embed --help
expect_contains "$TMP/out" "usage: elohim embed"

# --- bad data (exit 1) ---------------------------------------------------
expect_exit 1 "$BIN" embed --model "$TMP/no-such-model" "text"
expect_contains "$TMP/err" "make model"
expect_exit 1 "$BIN" embed "text" --model "$TMP/no-such-model"
# Invalid UTF-8 names the byte offset (here 6: "hello " then 0xff).
expect_exit 1 "$BIN" embed --model "$MODEL" "$(printf 'hello \xffworld')"
expect_contains "$TMP/err" "byte offset 6"
# In a large batch (tokenized in parallel) the bad text is still named.
many=(); for i in $(seq 1 20); do many+=("text number $i"); done
many[16]=$(printf 'seventeen \xc3(')
expect_exit 1 "$BIN" embed --model "$MODEL" "${many[@]}"
expect_contains "$TMP/err" "text 17: invalid UTF-8 at byte offset 10"
# Raw invalid UTF-8 inside a JSONL string: the line and the byte are named.
printf '"good"\n"bad \xff here"\n' >"$TMP/badutf8.jsonl"
expect_exit 1 "$BIN" embed --model "$MODEL" --input "$TMP/badutf8.jsonl"
expect_contains "$TMP/err" "badutf8.jsonl:2"
expect_contains "$TMP/err" "byte"
printf '"ok"\n"fine"\n42\n' >"$TMP/bad.jsonl"
expect_exit 1 "$BIN" embed --model "$MODEL" --input "$TMP/bad.jsonl" --output "$TMP/never.jsonl"
expect_contains "$TMP/err" "bad.jsonl:3"
[ ! -e "$TMP/never.jsonl" ] && ok || bad "a failed run left its output file"
ls "$TMP" | grep -q 'never.jsonl.tmp' && bad "a failed run left a temp file" || ok
printf '"ok"\n"unterminated\n' >"$TMP/bad2.jsonl"
expect_exit 1 "$BIN" embed --model "$MODEL" --input "$TMP/bad2.jsonl"
expect_contains "$TMP/err" "bad2.jsonl:2"
expect_exit 1 "$BIN" embed --model "$MODEL" --input "$TMP/missing.jsonl"
# JSON escapes of invalid UTF-16 are rejected by the JSON reader; a NUL is data.
printf '"nul\\u0000inside"\n' >"$TMP/nul.jsonl"
expect_exit 0 "$BIN" embed --model "$MODEL" --input "$TMP/nul.jsonl" --ids
expect_json "$TMP/out"

# --- broken model folders --------------------------------------------------
broken() {   # NAME: a copy of the fixture to break
    rm -rf "$TMP/$1"; cp -R "$MODEL" "$TMP/$1"; chmod -R u+w "$TMP/$1"; echo "$TMP/$1"
}
m=$(broken nocfg); rm "$m/config.json"
expect_exit 1 "$BIN" embed --model "$m" "text"
expect_contains "$TMP/err" "config.json"
m=$(broken noweights); rm "$m/model.safetensors"
expect_exit 1 "$BIN" embed --model "$m" "text"
expect_contains "$TMP/err" "model.safetensors"
expect_contains "$TMP/err" "make model"
m=$(broken truncated); head -c 5000 "$MODEL/model.safetensors" >"$m/model.safetensors"
expect_exit 1 "$BIN" embed --model "$m" "text"
expect_contains "$TMP/err" "model.safetensors"
m=$(broken shape); sed -i 's/"hidden_size": 64/"hidden_size": 32/' "$m/config.json"
expect_exit 1 "$BIN" embed --model "$m" "text"
expect_contains "$TMP/err" "shape"
m=$(broken badjson); echo '{"hidden_size": ' >"$m/config.json"
expect_exit 1 "$BIN" embed --model "$m" "text"
expect_contains "$TMP/err" "config.json"
m=$(broken notok); rm "$m/tokenizer.json" "$m/vocab.txt"
expect_exit 1 "$BIN" embed --model "$m" "text"
expect_contains "$TMP/err" "vocab.txt"
# vocab.txt alone (no tokenizer.json) gives the same ids.
m=$(broken vocabonly); rm "$m/tokenizer.json"
expect_exit 0 "$BIN" embed --model "$m" --ids -- "${texts[@]}"
python3 - "$REF" "$TMP/out" <<'PY' && ok || bad "vocab.txt tokenizer disagrees"
import json, sys
cases = [c for c in json.load(open(sys.argv[1]))["cases"] if "\n" not in c["text"] and "\t" not in c["text"]]
lines = [json.loads(l) for l in open(sys.argv[2])]
assert [o["input_ids"] for o in lines] == [c["input_ids"] for c in cases]
PY
# CLS pooling changes the vector; no Normalize leaves it unnormalized.
m=$(broken cls); sed -i 's/"pooling_mode_cls_token": false/"pooling_mode_cls_token": true/; s/"pooling_mode_mean_tokens": true/"pooling_mode_mean_tokens": false/' "$m/1_Pooling/config.json"
expect_exit 0 "$BIN" embed --model "$m" "Hello world!"
cp "$TMP/out" "$TMP/cls.out"
expect_exit 0 "$BIN" embed --model "$MODEL" "Hello world!"
cmp -s "$TMP/out" "$TMP/cls.out" && bad "CLS pooling gave the mean-pooled vector" || ok
m=$(broken nonorm); echo '[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]' >"$m/modules.json"
expect_exit 0 "$BIN" embed --model "$m" "Hello world!"
python3 -c 'import json,sys,math; v=json.loads(open(sys.argv[1]).read())["embedding"]; n=math.sqrt(sum(x*x for x in v)); sys.exit(0 if abs(n-1)>1e-3 else 1)' "$TMP/out" && ok || bad "without Normalize the vector should not be unit length"

# --- bench embed: both tables, the JSON fields, the peer's lines ----------
# Timing is not asserted: the benchmark's own figures are measured, not
# tested. A fake peer (ELOHIM_PEER_PYTHON) prints fixed lines, one without
# "mode" (an older peer: end to end) and one "model", so the parsing is.
expect_exit 0 "$BIN" bench embed --model "$MODEL" --cases 8x1,16x4 --seconds 0.02 --no-peer
expect_contains "$TMP/out" "end to end (tokenize + encode):"
expect_contains "$TMP/out" "model only (pre-tokenized ids):"
[ "$(grep -c '^16x4 ' "$TMP/out")" -eq 2 ] && ok || bad "bench embed: 16x4 should have a row in each table"
expect_exit 0 "$BIN" bench embed --model "$MODEL" --cases 8x1 --seconds 0.02 --mode e2e --no-peer
grep -q "model only" "$TMP/out" && bad "bench embed --mode e2e printed the model-only table" || ok
expect_exit 2 "$BIN" bench embed --model "$MODEL" --mode fast
expect_contains "$TMP/err" "--mode"
cat >"$TMP/fake-python" <<SH
#!/bin/sh
echo "\$@" >"$TMP/peer-args"
echo 'loading...'
echo '{"tokens": 8, "batch": 1, "median_ms": 2.5, "sentences_per_s": 400.0}'
echo '{"mode": "model", "tokens": 8, "batch": 1, "median_ms": 1.25, "sentences_per_s": 800.0}'
SH
chmod +x "$TMP/fake-python"
ELOHIM_PEER_PYTHON="$TMP/fake-python" expect_exit 0 "$BIN" bench embed --model "$MODEL" \
    --cases 8x1,16x4 --seconds 0.02 --json
expect_contains "$TMP/peer-args" "--mode both"
python3 - "$TMP/out" <<'PY' && ok || bad "bench embed --json: model-only fields"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["mode"] == "both", d["mode"]
a, b = d["cases"]
assert (a["tokens"], a["batch"], b["tokens"], b["batch"]) == (8, 1, 16, 4)
for c in (a, b):
    for k in ("ours_median_ms", "ours_sentences_per_s", "ours_model_median_ms",
              "ours_model_sentences_per_s", "ours_model_cpu_ms_per_call"):
        assert c[k] > 0, (k, c[k])
assert (a["peer_median_ms"], a["peer_sentences_per_s"]) == (2.5, 400.0), a
assert (a["peer_model_median_ms"], a["peer_model_sentences_per_s"]) == (1.25, 800.0), a
assert b["peer_median_ms"] is None and b["peer_model_median_ms"] is None, b
PY
ELOHIM_PEER_PYTHON="$TMP/fake-python" expect_exit 0 "$BIN" bench embed --model "$MODEL" \
    --cases 8x1 --seconds 0.02 --mode model --json
expect_contains "$TMP/peer-args" "--mode model"
python3 - "$TMP/out" <<'PY' && ok || bad "bench embed --mode model --json"
import json, sys
c = json.load(open(sys.argv[1]))["cases"][0]
assert c["ours_median_ms"] is None and c["ours_model_median_ms"] > 0, c
assert c["peer_model_median_ms"] == 1.25, c
PY
finish
