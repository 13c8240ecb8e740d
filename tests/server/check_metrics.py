"""check_metrics.py - checks a /metrics capture against the Prometheus text
format (names, labels, values, TYPE lines, cumulative histogram buckets with
+Inf equal to _count), then that every elohim_* metric a dashboard or rule
file uses is one the server exports (GPU memory gauges exist only with a
GPU).

usage: check_metrics.py METRICS.txt [DASHBOARD.json|RULES.yml ...]"""
import json
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(%s)(\{(.*)\})? (\S+)$" % NAME)
LABEL = re.compile(r'^(%s)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)' % r"[a-zA-Z_][a-zA-Z0-9_]*")
GPU_ONLY = {"elohim_gpu_memory_used_bytes", "elohim_gpu_memory_total_bytes"}

errors = []
types = {}
samples = []
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.rstrip("\n")
    if not line:
        continue
    if line.startswith("# TYPE "):
        parts = line.split()
        if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
            errors.append("line %d: bad TYPE" % n)
        elif parts[2] in types:
            errors.append("line %d: second TYPE for %s" % (n, parts[2]))
        else:
            types[parts[2]] = parts[3]
        continue
    if line.startswith("#"):
        continue
    m = SAMPLE.match(line)
    if not m:
        errors.append("line %d: not a sample: %s" % (n, line))
        continue
    name, _, labels, value = m.groups()
    parsed = {}
    rest = labels or ""
    while rest:
        lm = LABEL.match(rest)
        if not lm:
            errors.append("line %d: bad labels %s" % (n, labels))
            break
        parsed[lm.group(1)] = lm.group(2)
        rest = rest[lm.end():]
    try:
        v = float(value.replace("+Inf", "inf").replace("-Inf", "-inf"))
    except ValueError:
        errors.append("line %d: bad value %s" % (n, value))
        continue
    samples.append((name, parsed, v))

families = set()
for name, labels, v in samples:
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    fam = base if base in types and types[base] == "histogram" else name
    if fam not in types:
        errors.append("%s has no TYPE line" % name)
    if types.get(fam) == "counter" and v < 0:
        errors.append("%s: negative counter" % name)
    families.add(fam)

# Histograms: buckets cumulative, +Inf == _count.
series = {}
for name, labels, v in samples:
    if name.endswith("_bucket"):
        key = (name[:-7], tuple(sorted((k, x) for k, x in labels.items() if k != "le")))
        series.setdefault(key, []).append((float(labels["le"].replace("+Inf", "inf")), v))
counts = {(n[:-6], tuple(sorted(l.items()))): v for n, l, v in samples if n.endswith("_count")}
for key, buckets in series.items():
    values = [v for _, v in sorted(buckets)]
    if values != sorted(values):
        errors.append("%s%s: buckets not cumulative" % key)
    if sorted(buckets)[-1][0] != float("inf") or counts.get(key) != values[-1]:
        errors.append("%s%s: +Inf bucket != _count" % key)

required = ["elohim_http_requests_total", "elohim_http_request_duration_seconds",
            "elohim_gpu_operations_total", "elohim_embedding_duration_seconds",
            "elohim_vector_search_duration_seconds", "elohim_sql_query_duration_seconds",
            "elohim_sql_queries_total", "elohim_active_sessions", "elohim_users", "elohim_build_info"]
for r in required:
    if r not in types:
        errors.append("required family %s missing" % r)

for path in sys.argv[2:]:
    text = open(path).read()
    if path.endswith(".json"):
        dash = json.loads(text)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        if not exprs:
            errors.append("%s: no panel queries" % path)
        text = "\n".join(exprs)
    used = set(re.findall(r"\belohim_[a-z_]+", text))
    for u in sorted(used):
        fam = re.sub(r"_(bucket|sum|count)$", "", u)
        if fam not in types and u not in types and u not in GPU_ONLY:
            errors.append("%s uses %s, which the server does not export" % (path, u))

for e in errors:
    print("FAIL:", e)
print("%d samples, %d families, %d errors" % (len(samples), len(types), len(errors)))
sys.exit(1 if errors else 0)
