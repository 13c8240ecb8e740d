#!/usr/bin/env python3
"""Peer for `elohim bench embed`: sentence-transformers on the same model
folder, texts and batch shapes. Prints one JSON line per case:
{"tokens", "batch", "median_ms", "sentences_per_s"}.

Texts are built like ours: one vocabulary word repeated so that the
tokenizer gives exactly TOKENS ids with [CLS] and [SEP]; the tokenizer's
count is checked. fp16 on the GPU is model.half(); f32 on the GPU allows no
TF32 (as ours)."""
import argparse
import json
import statistics
import sys
import time

import torch
from sentence_transformers import SentenceTransformer


def make_text(tok, tokens):
    for word in ("hello", "world", "search", "the", "a"):
        if word in tok.get_vocab():
            break
    text = " ".join([word] * max(tokens - 2, 0))
    n = len(tok(text)["input_ids"])
    if n != tokens:
        raise SystemExit("peer: text gives %d tokens, wanted %d" % (n, tokens))
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="f32")
    ap.add_argument("--cases", default="32x1,128x32")
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = SentenceTransformer(a.model, device=a.device)
    if a.precision == "f16":
        model = model.half()
    elif a.precision == "bf16":
        model = model.to(torch.bfloat16)
    model.eval()
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    for spec in a.cases.split(","):
        tokens, batch = (int(x) for x in spec.split("x"))
        texts = [make_text(model.tokenizer, tokens)] * batch
        with torch.inference_mode():
            for _ in range(3):
                model.encode(texts, batch_size=batch, convert_to_numpy=True)
            sync()
            times = []
            total = 0.0
            while total < a.seconds or len(times) < 5:
                t0 = time.perf_counter()
                model.encode(texts, batch_size=batch, convert_to_numpy=True)
                sync()
                dt = time.perf_counter() - t0
                times.append(dt)
                total += dt
        print(json.dumps({"tokens": tokens, "batch": batch,
                          "median_ms": statistics.median(times) * 1e3,
                          "sentences_per_s": batch * len(times) / total}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
