#!/usr/bin/env python3
"""Writes a sentence-transformers model folder with random weights of a
given BERT shape (default: all-MiniLM-L6-v2's), for benchmarks where the
real model cannot be carried (the GPU machine has no network). Needs only
numpy; safetensors is written by hand (8-byte header length, JSON header,
little-endian data).

Usage: make-random-bert.py OUT_DIR [--hidden 384] [--layers 6] [--heads 12]
       [--intermediate 1536] [--vocab 30522] [--max-pos 512] [--max-seq 256]
       [--dtype F32|F16|BF16] [--seed 0]"""
import argparse
import json
import os
import struct

import numpy as np


def to_bytes(arr, dtype):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if dtype == "F16":
        return arr.astype("<f2").tobytes()
    if dtype == "BF16":
        bits = arr.view(np.uint32)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
        return rounded.tobytes()
    return arr.astype("<f4").tobytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--intermediate", type=int, default=1536)
    ap.add_argument("--vocab", type=int, default=30522)
    ap.add_argument("--max-pos", type=int, default=512)
    ap.add_argument("--max-seq", type=int, default=256)
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    H, I = a.hidden, a.intermediate
    tensors = {}

    def normal(*shape, std=0.02):
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    tensors["embeddings.word_embeddings.weight"] = normal(a.vocab, H)
    tensors["embeddings.position_embeddings.weight"] = normal(a.max_pos, H)
    tensors["embeddings.token_type_embeddings.weight"] = normal(2, H)
    tensors["embeddings.LayerNorm.weight"] = 1.0 + normal(H, std=0.1)
    tensors["embeddings.LayerNorm.bias"] = normal(H)
    for l in range(a.layers):
        p = "encoder.layer.%d." % l
        for n in ("query", "key", "value"):
            tensors[p + "attention.self.%s.weight" % n] = normal(H, H, std=0.05)
            tensors[p + "attention.self.%s.bias" % n] = normal(H)
        tensors[p + "attention.output.dense.weight"] = normal(H, H, std=0.05)
        tensors[p + "attention.output.dense.bias"] = normal(H)
        tensors[p + "attention.output.LayerNorm.weight"] = 1.0 + normal(H, std=0.1)
        tensors[p + "attention.output.LayerNorm.bias"] = normal(H)
        tensors[p + "intermediate.dense.weight"] = normal(I, H, std=0.05)
        tensors[p + "intermediate.dense.bias"] = normal(I)
        tensors[p + "output.dense.weight"] = normal(H, I, std=0.05)
        tensors[p + "output.dense.bias"] = normal(H)
        tensors[p + "output.LayerNorm.weight"] = 1.0 + normal(H, std=0.1)
        tensors[p + "output.LayerNorm.bias"] = normal(H)

    os.makedirs(os.path.join(a.out, "1_Pooling"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "2_Normalize"), exist_ok=True)
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = to_bytes(t, a.dtype)
        header[name] = {"dtype": a.dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)

    # A vocabulary of the right size: specials, ASCII, words, then fillers.
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += [chr(c) for c in range(33, 127)]
    words += ["##" + chr(c) for c in range(97, 123)]
    words += ["hello", "world", "search", "the", "a", "vector", "gpu", "fast", "text"]
    seen = set(words)
    words = [w for i, w in enumerate(words) if w not in words[:i]]
    i = 0
    while len(words) < a.vocab:
        w = "w%d" % i
        if w not in seen:
            words.append(w)
        i += 1
    words = words[:a.vocab]
    with open(os.path.join(a.out, "vocab.txt"), "w") as f:
        f.write("\n".join(words) + "\n")
    def dump(name, obj):
        with open(os.path.join(a.out, name), "w") as f:
            json.dump(obj, f, indent=2)
    dump("config.json", {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "hidden_size": H, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
        "intermediate_size": I, "vocab_size": a.vocab, "max_position_embeddings": a.max_pos,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "position_embedding_type": "absolute", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02})
    dump("tokenizer_config.json", {
        "do_lower_case": True, "tokenize_chinese_chars": True, "strip_accents": None,
        "tokenizer_class": "BertTokenizer", "model_max_length": a.max_pos,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "cls_token": "[CLS]", "mask_token": "[MASK]"})
    dump("sentence_bert_config.json", {"max_seq_length": a.max_seq, "do_lower_case": False})
    dump("modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    dump("1_Pooling/config.json", {
        "word_embedding_dimension": H, "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False})
    print("%s: random BERT H=%d L=%d heads=%d I=%d vocab=%d (%s)" % (
        a.out, H, a.layers, a.heads, I, a.vocab, a.dtype))


if __name__ == "__main__":
    main()
