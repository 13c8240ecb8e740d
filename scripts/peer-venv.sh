#!/usr/bin/env bash
# Creates .venv (idempotent) and installs the benchmark peers / test oracles
# listed in the given requirement files (bench/requirements-*.txt), from
# PyPI. Prints the venv's python on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${ELOHIM_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --upgrade pip >&2
fi
for req in "$@"; do
    stamp="$venv/.installed-$(basename "$req")-$(md5sum "$req" | cut -c1-8)"
    if [ ! -f "$stamp" ]; then
        "$venv/bin/pip" install -q -r "$req" >&2
        touch "$stamp"
    fi
done
echo "$PWD/$venv/bin/python"
