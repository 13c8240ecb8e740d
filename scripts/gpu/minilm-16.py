#!/usr/bin/env python3
"""scripts/gpu/minilm-16.py SRC DST - a copy of a sentence-transformers model
folder whose matrices (the 2-D tensors: embedding tables, dense weights) are
stored as F16 in model.safetensors, the rest (biases, LayerNorm) as they
were. The GPU machine cannot fetch the real model and the f32 file is too
large to carry with the bundle; at --precision f16 the encoder rounds those
matrices to f16 anyway, so this copy checks the f16 and bf16 paths on the
real weights (scripts/gpu/embed.sh, step 4). Needs numpy."""
import json
import os
import shutil
import struct
import sys

import numpy as np

src, dst = sys.argv[1], sys.argv[2]
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors", "*.bin", "onnx",
                                                          "openvino", "*.h5", "*.ot"))
raw = open(os.path.join(src, "model.safetensors"), "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
head = json.loads(raw[8:8 + n])
data = raw[8 + n:]
out_head, blobs, off = {}, [], 0
for name, t in head.items():
    if name == "__metadata__":
        out_head[name] = t
        continue
    b, dt = data[t["data_offsets"][0]:t["data_offsets"][1]], t["dtype"]
    if dt == "F32" and len(t["shape"]) == 2:
        b, dt = np.frombuffer(b, dtype="<f4").astype("<f2").tobytes(), "F16"
    out_head[name] = {"dtype": dt, "shape": t["shape"], "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
hj = json.dumps(out_head).encode()
hj += b" " * (-len(hj) % 8)
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hj)))
    f.write(hj)
    for b in blobs:
        f.write(b)
print(dst, off + len(hj) + 8, "bytes")
