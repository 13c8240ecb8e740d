#!/usr/bin/env python3
"""Peer for `elohim bench vector`: exact top-k by the usual tools, timed the
same way as ours, printed as one JSON object on stdout.

--cpu: numpy (scores = Q @ X.T, argpartition + sort) and faiss-cpu
       IndexFlatIP on the vectors in --data / --queries (.npy).
--gpu: PyTorch torch.topk(Q @ X.T) on CUDA, random data of --rows x --dim
       generated on the GPU, timed with CUDA events (best of --repeat; the CPU
       figures are best of --repeat too).
"""
import argparse
import json
import sys
import time


def cpu(args):
    import numpy as np
    X = np.load(args.data)
    Q = np.load(args.queries)
    k = args.k
    out = {"numpy": {"ms": {}}, "faiss": {"ms": {}, "ids": {}}}
    for nq in args.nq:
        q = np.ascontiguousarray(Q[:nq])
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            s = q @ X.T
            part = np.argpartition(-s, k - 1, axis=1)[:, :k]
            order = np.take_along_axis(s, part, 1).argsort(axis=1)[:, ::-1]
            np.take_along_axis(part, order, 1)
            times.append((time.perf_counter() - t0) * 1e3)
        out["numpy"]["ms"][str(nq)] = min(times)
    try:
        import faiss
    except ImportError as e:
        print("peer-vector: faiss unavailable: %s" % e, file=sys.stderr)
        return out
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    for nq in args.nq:
        q = np.ascontiguousarray(Q[:nq])
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            _, ids = index.search(q, k)
            times.append((time.perf_counter() - t0) * 1e3)
        out["faiss"]["ms"][str(nq)] = min(times)
        out["faiss"]["ids"][str(nq)] = ids.tolist()
    out["faiss"]["version"] = getattr(faiss, "__version__", "?")
    return out


def gpu(args):
    import torch
    dev = torch.device("cuda")
    dtype = torch.float16 if args.dtype == "f16" else torch.float32
    g = torch.Generator(device=dev)
    g.manual_seed(1)
    X = (torch.rand(args.rows, args.dim, device=dev, generator=g, dtype=torch.float32) * 2 - 1).to(dtype)
    Qall = (torch.rand(max(args.nq), args.dim, device=dev, generator=g) * 2 - 1).to(dtype)
    k = args.k
    # Chunk the rows when the full score matrix would not be reasonable.
    budget = 4 << 30

    def search(q):
        n = X.shape[0]
        per = max(1, budget // (q.shape[0] * X.element_size()))
        if per >= n:
            return torch.topk(q @ X.T, k, dim=1)
        best_v, best_i = None, None
        for a in range(0, n, per):
            v, i = torch.topk(q @ X[a:a + per].T, min(k, min(per, n - a)), dim=1)
            i = i + a
            if best_v is None:
                best_v, best_i = v, i
            else:
                cv = torch.cat([best_v, v], 1)
                ci = torch.cat([best_i, i], 1)
                best_v, pos = torch.topk(cv, k, dim=1)
                best_i = torch.gather(ci, 1, pos)
        return best_v, best_i

    out = {"torch": {args.dtype: {}}, "device": torch.cuda.get_device_name(0)}
    for nq in args.nq:
        q = Qall[:nq].contiguous()
        search(q)
        torch.cuda.synchronize()
        times = []
        for _ in range(args.repeat):
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            search(q)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        out["torch"][args.dtype][str(nq)] = min(times)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--data")
    p.add_argument("--queries")
    p.add_argument("--rows", type=int, default=1000000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--dtype", default="f32", choices=["f32", "f16"])
    p.add_argument("--nq", default="1,16")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    args.nq = [int(x) for x in args.nq.split(",")]
    if args.gpu:
        out = gpu(args)
    elif args.cpu:
        out = cpu(args)
    else:
        p.error("--cpu or --gpu")
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
