#!/usr/bin/env python3
"""peer-boot.py - the peer for `elohim bench boot`: the same work done the
usual way, with PyTorch on the GPU (torch.cuda) or NumPy on the CPU.

  discovery  a vectorised scan of an N-entry index (extension hash compare,
             compaction, prefix sum of sizes)
  load       read every .gpuapp of a directory and place the bytes in one
             device buffer (torch: pinned host tensor -> cuda)
  frame      composite the same resolved draw list as our frame, one
             alpha-blended rectangle at a time (glyphs drawn as solid cells)

Prints one JSON object of microseconds (medians)."""
import argparse, glob, json, os, statistics, sys, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--index", type=int, default=10000)
    ap.add_argument("--load", action="append", default=[])
    ap.add_argument("--draws", action="append", default=[])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    import numpy as np
    torch = None
    if a.device == "cuda":
        import torch as _t
        torch = _t
        dev = torch.device("cuda")

    def sync():
        if torch is not None:
            torch.cuda.synchronize()

    def timed(fn):
        fn()  # warm-up
        ts = []
        for _ in range(a.repeat):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append((time.perf_counter() - t0) * 1e6)
        return statistics.median(ts)

    out = {"peer": ("pytorch-" + torch.__version__) if torch else ("numpy-" + np.__version__)}
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 1 << 62, a.index, dtype=np.int64)
    hashes[:: max(1, a.index // 10)] = 12345
    sizes = rng.integers(64, 4096, a.index, dtype=np.int64)
    if torch is not None:
        th, ts = torch.from_numpy(hashes).to(dev), torch.from_numpy(sizes).to(dev)
        def disc():
            m = th == 12345
            idx = torch.nonzero(m).flatten()
            off = torch.cumsum(ts[idx], 0)
            return idx, off
    else:
        def disc():
            idx = np.nonzero(hashes == 12345)[0]
            return idx, np.cumsum(sizes[idx])
    out["discovery_us"] = timed(disc)

    for d in a.load:
        files = sorted(glob.glob(os.path.join(d, "*.gpuapp")))
        def load():
            blobs = []
            for f in files:
                with open(f, "rb") as fh:
                    blobs.append(fh.read())
            buf = np.frombuffer(b"".join(blobs), dtype=np.uint8)
            if torch is not None:
                return torch.from_numpy(buf.copy()).pin_memory().to(dev, non_blocking=True)
            return buf.copy()
        out["load%d_us" % len(files)] = timed(load)

    for path in a.draws:
        d = np.fromfile(path, dtype=np.int32).reshape(-1, 6)
        name = os.path.basename(path).split(".")[0]
        if torch is not None:
            fb = torch.zeros((800, 1280, 3), dtype=torch.int32, device=dev)
        else:
            fb = np.zeros((800, 1280, 3), dtype=np.int32)
        rows = [(int(x0), int(y0), int(x1), int(y1), int(c)) for x0, y0, x1, y1, c, g in d if x1 > x0]
        def frame():
            fb[:] = 0
            for x0, y0, x1, y1, c in rows:
                c &= 0xffffffff
                r, g_, b, al = c & 255, (c >> 8) & 255, (c >> 16) & 255, c >> 24
                reg = fb[y0:y1, x0:x1]
                if al == 255:
                    reg[..., 0] = r; reg[..., 1] = g_; reg[..., 2] = b
                else:
                    for k, s in enumerate((r, g_, b)):
                        reg[..., k] = (reg[..., k] * (255 - al) + s * al + 127) // 255
        out[name + "_us"] = timed(frame)
        out[name + "_draws"] = len(rows)
    print(json.dumps(out))

if __name__ == "__main__":
    sys.exit(main())
