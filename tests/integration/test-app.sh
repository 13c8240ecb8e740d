# test-app.sh - `elohim app build` and `elohim app inspect`: the sample
# apps assemble and read back; source errors name the line; bad files are
# rejected with exit 1 and nothing on stdout under --json.
. tests/integration/lib.sh

for a in apps/*.gasm; do
    name=$(basename "$a" .gasm)
    expect_exit 0 "$BIN" app build "$a" -o "$TMP/$name.gpuapp"
    expect_exit 0 "$BIN" app inspect "$TMP/$name.gpuapp" --json
    expect_json "$TMP/out"
    python3 - "$TMP/out" "$TMP/$name.gpuapp" <<'PY' && ok || bad "inspect $name"
import json, os, sys
d = json.load(open(sys.argv[1]))
assert d["version"] == 1 and d["code_offset"] == 64
assert d["file_size"] == os.path.getsize(sys.argv[2]) == 64 + 8 * d["code_size"]
assert len(d["code"]) == d["code_size"] and d["code"][-1] == "halt"
assert 0 < len(d["name"]) < 24
PY
done
expect_exit 0 "$BIN" app inspect "$TMP/clock.gpuapp"
expect_contains "$TMP/out" '"Clock"'
expect_contains "$TMP/out" "sin r10, r9"

# assembler errors: file and line
printf '.name "x"\nmovi r1, 2\nfrobnicate r1\n' > "$TMP/bad.gasm"
expect_exit 1 "$BIN" app build "$TMP/bad.gasm" -o "$TMP/bad.gpuapp"
expect_contains "$TMP/err" "bad.gasm:3: unknown instruction 'frobnicate'"
if [ -e "$TMP/bad.gpuapp" ]; then bad "output written for a bad source"; else ok; fi
printf '.name "x"\njz r1, missing\nhalt\n' > "$TMP/bad2.gasm"
expect_exit 1 "$BIN" app build "$TMP/bad2.gasm" -o "$TMP/bad2.gpuapp"
expect_contains "$TMP/err" "bad2.gasm:2: unknown label 'missing'"
expect_exit 2 "$BIN" app build "$TMP/bad.gasm"
expect_exit 2 "$BIN" app
expect_exit 2 "$BIN" app frob
expect_exit 1 "$BIN" app build "$TMP/nope.gasm" -o "$TMP/x.gpuapp"

# inspect rejects bad files with the reason
head -c 30 "$TMP/clock.gpuapp" > "$TMP/short.gpuapp"
expect_exit 1 "$BIN" app inspect "$TMP/short.gpuapp" --json
expect_contains "$TMP/err" "truncated"
if [ -s "$TMP/out" ]; then bad "stdout not empty on error"; else ok; fi
printf 'GPUAPP\x02\x00' | cat - "$TMP/clock.gpuapp" | head -c 500 > "$TMP/v2.gpuapp"
expect_exit 1 "$BIN" app inspect "$TMP/v2.gpuapp"
expect_contains "$TMP/err" "version"
expect_exit 1 "$BIN" app inspect "$TMP/missing.gpuapp"
finish
