#!/usr/bin/env python3
"""bench/trace/summary.py TRACE.tsv [BATCHES] - per-step GPU times from a
kernel-trace.c trace of `elohim bench embed --mode model` (one case).

A batch runs from the host-to-device copy of its ids to the device-to-host
copy of its embeddings. For the last BATCHES batches (default 20) it prints
the mean span, the sum of the activities in it and of the idle time between
them, then each activity in order: mean duration and mean idle gap before it
(the launch and drain time the GPU spent on nothing)."""
import signal
import sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head

rows = []
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 7:
        continue
    rows.append((f[0], int(f[1]), int(f[2]), int(f[3]), int(f[4]), int(f[5]), f[6]))
rows.sort(key=lambda r: r[1])
want = int(sys.argv[2]) if len(sys.argv) > 2 else 20

batches, cur = [], None
for r in rows:
    if r[0] == "C" and " kind 1 " in r[6]:
        if cur is None or any(x[0] == "K" for x in cur):
            cur = []
            batches.append(cur)
    if cur is not None:
        cur.append(r)
    if r[0] == "C" and " kind 2 " in r[6]:
        cur = None
# keep complete batches with the common shape (the most frequent length)
full = [b for b in batches if b and b[-1][0] == "C" and " kind 2 " in b[-1][6]]
if not full:
    sys.exit("no complete batch in the trace")
lens = {}
for b in full:
    lens[len(b)] = lens.get(len(b), 0) + 1
n = max(lens, key=lens.get)
full = [b for b in full if len(b) == n][-want:]

def short(name):
    s = name.split("(")[0]
    return (s[:58] + "..") if len(s) > 60 else s

span = busy = 0.0
dur = [0.0] * n
gap = [0.0] * n
for b in full:
    span += (b[-1][2] - b[0][1]) / 1e3
    for i, r in enumerate(b):
        dur[i] += (r[2] - r[1]) / 1e3
        busy += (r[2] - r[1]) / 1e3
        if i:
            gap[i] += (r[1] - b[i - 1][2]) / 1e3
k = len(full)
print("%d batches of %d activities: span %.1f us, busy %.1f us, idle %.1f us (%.1f %%)"
      % (k, n, span / k, busy / k, (span - busy) / k, 100 * (span - busy) / span))
if k > 1:
    between = sum((full[i][0][1] - full[i - 1][-1][2]) / 1e3 for i in range(1, k)) / (k - 1)
    print("idle between batches: %.1f us" % between)
print("%4s %9s %9s %7s %5s  %s" % ("#", "dur us", "gap us", "grid", "block", "name"))
for i, r in enumerate(full[-1]):
    print("%4d %9.2f %9.2f %7d %5d  %s" % (i, dur[i] / k, gap[i] / k, r[3], r[4], short(r[6])))
# by name
agg = {}
for i, r in enumerate(full[-1]):
    a = agg.setdefault(short(r[6]), [0, 0.0, 0.0])
    a[0] += 1
    a[1] += dur[i] / k
    a[2] += gap[i] / k
print("\nby name: count, total dur us, total gap before us")
for name, a in sorted(agg.items(), key=lambda x: -x[1][1]):
    print("%4d %9.1f %9.1f  %s" % (a[0], a[1], a[2], name))
