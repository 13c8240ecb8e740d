#!/usr/bin/env python3
"""Peer for `elohim bench embed`: sentence-transformers on the same model
folder, texts and batch shapes. Prints one JSON line per case and mode:
{"mode", "tokens", "batch", "median_ms", "sentences_per_s"}.

Modes: "e2e" times model.encode() on the texts (tokenize + encode, what a
user calls); "model" times the module chain alone (transformer, pooling,
normalize: `model(features)`) on features tokenized once and moved to the
device before timing, plus the copy of the sentence embeddings to host
memory (ours returns them there too).

Texts are built like ours: one vocabulary word repeated so that the
tokenizer gives exactly TOKENS ids with [CLS] and [SEP]; the tokenizer's
count is checked (and the shape of the pre-tokenized batch in "model"
mode). fp16 on the GPU is model.half(); f32 on the GPU allows no TF32 (as
ours)."""
import argparse
import json
import statistics
import sys
import time

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import batch_to_device


def make_text(tok, tokens):
    for word in ("hello", "world", "search", "the", "a"):
        if word in tok.get_vocab():
            break
    text = " ".join([word] * max(tokens - 2, 0))
    n = len(tok(text)["input_ids"])
    if n != tokens:
        raise SystemExit("peer: text gives %d tokens, wanted %d" % (n, tokens))
    return text


def tokenize(model, texts):
    """The features encode() builds for `texts` (preprocess() in
    sentence-transformers >= 6, tokenize() before)."""
    if hasattr(model, "preprocess"):
        return model.preprocess(texts)
    return model.tokenize(texts)


def measure(call, sync, seconds):
    """Median seconds per call and the calls' count and total, after 3
    warm-up calls; at least `seconds` and 5 calls."""
    for _ in range(3):
        call()
    sync()
    times = []
    total = 0.0
    while total < seconds or len(times) < 5:
        t0 = time.perf_counter()
        call()
        sync()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
    return statistics.median(times), len(times), total


def report(mode, tokens, batch, result):
    median, count, total = result
    print(json.dumps({"mode": mode, "tokens": tokens, "batch": batch,
                      "median_ms": median * 1e3,
                      "sentences_per_s": batch * count / total}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="f32")
    ap.add_argument("--cases", default="32x1,128x32")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--mode", choices=("e2e", "model", "both"), default="both")
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
        if a.mode in ("e2e", "both"):
            with torch.inference_mode():
                result = measure(
                    lambda: model.encode(texts, batch_size=batch, convert_to_numpy=True),
                    sync, a.seconds)
            report("e2e", tokens, batch, result)
        if a.mode in ("model", "both"):
            features = tokenize(model, texts)
            shape = tuple(features["input_ids"].shape)
            if shape != (batch, tokens):
                raise SystemExit("peer: features are %s, wanted (%d, %d)" % (shape, batch, tokens))
            features = batch_to_device(features, model.device)
            sync()

            def forward():
                # A fresh dict each call: the modules add their outputs to it.
                out = model(dict(features))
                return out["sentence_embedding"].cpu()

            with torch.inference_mode():
                result = measure(forward, sync, a.seconds)
            report("model", tokens, batch, result)


if __name__ == "__main__":
    sys.exit(main())
