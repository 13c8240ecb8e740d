# test-cli.sh - the binary's front door: help, unknown commands, doctor,
# --device cuda without a GPU (exit 2, never a crash).
. tests/integration/lib.sh

expect_exit 0 "$BIN" --help
expect_contains "$TMP/out" "usage: elohim"
expect_exit 2 "$BIN"
expect_exit 2 "$BIN" no-such-command
expect_contains "$TMP/err" "unknown command"

expect_exit 0 "$BIN" doctor
expect_contains "$TMP/out" "CPU:"
expect_exit 0 "$BIN" doctor --json
expect_json "$TMP/out"
python3 - "$TMP/out" <<'PY' && ok || bad "doctor --json fields"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["cpu"]["cores"] >= 1 and "OpenBLAS" in d["cpu"]["blas"]
g = d["gpu"]
assert isinstance(g["available"], bool)
assert g["available"] or g["reason"]
PY

# --help starts fast because no CUDA library is loaded before a GPU is
# used: cudart is static and cuBLAS is opened with dlopen (timing itself
# is measured by the benchmarks, not asserted here).
if ldd "$BIN" | grep -q -E 'libcublas|libcudart'; then bad "binary links cuBLAS/cudart dynamically"; else ok; fi
finish
