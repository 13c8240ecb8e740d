#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, after `make bundle`
# here and with .bundle carried: every GPU check and benchmark under
# scripts/gpu/*.sh (or only those named), each with BIN pointing at the
# bundled binary. Writes logs under $OUT when set.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -f .gpu-bundle.tar.xz ]; then rm -rf .bundle && mkdir .bundle && tar -C .bundle -xJf .gpu-bundle.tar.xz; fi
export LD_LIBRARY_PATH="$PWD/.bundle/lib:${LD_LIBRARY_PATH:-}:/usr/local/cuda/lib64"
export BIN="$PWD/.bundle/elohim"
export PATH="$PWD/.bundle/bin:$PATH"
export TESTS="$PWD/.bundle/tests"
export BUNDLE="$PWD/.bundle"
[ -d "$PWD/.bundle/shared" ] && export ELOHIM_SHARED="$PWD/.bundle/shared"
export OUT=${OUT:-/tmp/elohim-out}
export ELOHIM_NO_PROGRESS=1
mkdir -p "$OUT"
"$BIN" doctor
status=0
scripts=("$@")
[ ${#scripts[@]} -eq 0 ] && scripts=(scripts/gpu/*.sh)
for s in "${scripts[@]}"; do
    name=$(basename "$s" .sh)
    echo "=== $name"
    if bash "$s" 2>&1 | tee "$OUT/$name.log"; then :; else status=1; echo "=== $name FAILED"; fi
done
exit $status
