#!/usr/bin/env python3
"""Peer for `elohim bench sql`: the db-benchmark groupby shapes q1-q5 on
DuckDB (CPU) or PyTorch scatter/index_add on CUDA (--gpu), over the same
deterministic data our benchmark generates (splitmix64 per column; see
src/cli/bench-sql.c). Prints one JSON line: {"peer": ..., "queries":
[{"ms": best-of-reps, "checksum": sum of the aggregate columns}, ...]}."""
import argparse
import json
import sys
import time

import numpy as np

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
CARD = [100, 100, 1000000, 100, 100, 1000000, 5, 15]


def mix(col, n):
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(col) * np.uint64(0x632BE59BD9B4E019) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def gen(n):
    cols = {}
    for c in range(8):
        cols[c] = (1 + (mix(c + 1, n) % np.uint64(CARD[c]))).astype(np.int64)
    cols[8] = (mix(9, n) % np.uint64(100000000)).astype(np.float64) / 1e6
    return cols


QUERIES = [
    "SELECT id1, SUM(v1) AS v1 FROM x GROUP BY id1",
    "SELECT id1, id2, SUM(v1) AS v1 FROM x GROUP BY id1, id2",
    "SELECT id3, SUM(v1) AS v1, AVG(v3) AS v3 FROM x GROUP BY id3",
    "SELECT id4, AVG(v1) AS v1, AVG(v2) AS v2, AVG(v3) AS v3 FROM x GROUP BY id4",
    "SELECT id6, SUM(v1) AS v1, SUM(v2) AS v2, SUM(v3) AS v3 FROM x GROUP BY id6",
]
NKEYS = [1, 2, 1, 1, 1]


def run_duckdb(n, reps):
    import duckdb
    import pandas as pd

    c = gen(n)
    df = pd.DataFrame({"k1": c[0], "k2": c[1], "k3": c[2], "id4": c[3], "id5": c[4],
                       "id6": c[5], "v1": c[6], "v2": c[7], "v3": c[8]})
    con = duckdb.connect()
    con.register("src", df)
    con.execute("CREATE TABLE x AS SELECT 'id' || lpad(CAST(k1 AS VARCHAR), 3, '0') AS id1, "
                "'id' || lpad(CAST(k2 AS VARCHAR), 3, '0') AS id2, "
                "'id' || lpad(CAST(k3 AS VARCHAR), 10, '0') AS id3, id4, id5, id6, v1, v2, v3 FROM src")
    con.unregister("src")
    del df
    out = []
    for q, sql in enumerate(QUERIES):
        best = 1e30
        rows = None
        for _ in range(reps):
            t0 = time.perf_counter()
            rows = con.execute(sql).fetchall()
            best = min(best, time.perf_counter() - t0)
        cs = sum(float(v) for r in rows for v in r[NKEYS[q]:] if v is not None)
        out.append({"ms": best * 1e3, "checksum": cs, "groups": len(rows)})
    return "DuckDB " + duckdb.__version__, out


def run_torch(n, reps):
    import torch

    dev = torch.device("cuda")
    c = gen(n)
    t = {k: torch.from_numpy(v).to(dev) for k, v in c.items()}
    torch.cuda.synchronize()

    def group_sum(key, ngroups, vals):
        res = []
        for v in vals:
            acc = torch.zeros(ngroups, dtype=v.dtype, device=dev)
            acc.scatter_add_(0, key, v)
            res.append(acc)
        return res

    def q(i):
        if i == 0:
            return group_sum(t[0] - 1, 100, [t[6]])
        if i == 1:
            return group_sum((t[0] - 1) * 100 + (t[1] - 1), 10000, [t[6]])
        if i == 2:
            k = t[2] - 1
            s = group_sum(k, 1000000, [t[6], t[8]])
            cnt = torch.bincount(k, minlength=1000000)
            return [s[0], s[1] / cnt]
        if i == 3:
            k = t[3] - 1
            s = group_sum(k, 100, [t[6].double(), t[7].double(), t[8]])
            cnt = torch.bincount(k, minlength=100)
            return [x / cnt for x in s]
        k = t[5] - 1
        return group_sum(k, 1000000, [t[6], t[7], t[8]])

    out = []
    for i in range(5):
        best = 1e30
        res = None
        for _ in range(reps + 1):  # the first run warms up kernels
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            res = q(i)
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        cs = float(sum(torch.nansum(r.double()).item() for r in res))
        out.append({"ms": best * 1e3, "checksum": cs})
    return "PyTorch " + torch.__version__ + " scatter_add", out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--gpu", action="store_true")
    a = ap.parse_args()
    name, out = (run_torch if a.gpu else run_duckdb)(a.rows, a.reps)
    print(json.dumps({"peer": name, "rows": a.rows, "queries": out}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
