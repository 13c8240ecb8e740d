#!/usr/bin/env bash
# gpuos.sh - on the GPU machine: the GPU-native runtime's CUDA path against
# its CPU path, then its benchmark. Needs $BIN (elohim), $TESTS (unit test
# binaries), $OUT (logs). Exits non-zero on any mismatch.
#  1. the boot scenarios of the test suite (system apps, 3 apps, no apps
#     directory, 10 apps, bad files, more apps than slots, an endless loop,
#     a wild store, the sample apps over 30 frames, 1000 apps in 1024
#     slots) booted with --device cpu and --device cuda: the app tables,
#     the counters and the framebuffer hash must be identical, and so must
#     the PNG bytes of the sample-app desktop;
#  2. fresh random programs (random arithmetic, sin/cos, hash, lanes,
#     translucent quads and glyphs), 40 frames each, same comparison;
#  3. `elohim bench boot --device cuda` (peer: PyTorch).
set -uo pipefail
BIN=${BIN:-build/elohim}
OUT=${OUT:-/tmp/elohim-out}
W=$(mktemp -d /tmp/gpuos-gpu.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT"
fail=0
say() { echo "gpuos: $*"; }

if ! "$BIN" doctor --json | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["gpu"]["available"] else 1)'; then
    say "no usable GPU: $("$BIN" doctor | grep GPU)"; exit 1
fi
[ -x "${TESTS:-}/test-gpuos" ] && { "$TESTS/test-gpuos" > "$OUT/test-gpuos.log" 2>&1 || { say "unit tests FAILED"; fail=1; }; }

mkdir -p "$W/apps" "$W/none" "$W/three" "$W/ten" "$W/bad" "$W/hard" "$W/k1000" "$W/rand"
for a in apps/*.gasm; do "$BIN" app build "$a" -o "$W/apps/$(basename "$a" .gasm).gpuapp" || fail=1; done
for i in 1 2 3; do cp "$W/apps/clock.gpuapp" "$W/three/c$i.gpuapp"; done
for i in $(seq 0 9); do cp "$W/apps/ball.gpuapp" "$W/ten/b$i.gpuapp"; done
for i in $(seq -w 0 999); do cp "$W/apps/spiral.gpuapp" "$W/k1000/s$i.gpuapp"; done
printf '.name "Spin"\nloop: jmp loop\n' > "$W/spin.gasm"
printf '.name "Wild"\n.state 8\nmovi r1, 100000\nst [r1], r1\nhalt\n' > "$W/wild.gasm"
"$BIN" app build "$W/spin.gasm" -o "$W/hard/a-spin.gpuapp"
"$BIN" app build "$W/wild.gasm" -o "$W/hard/b-wild.gpuapp"
cp "$W/apps/ball.gpuapp" "$W/hard/c-ball.gpuapp"
python3 - "$W/apps/clock.gpuapp" "$W/bad" <<'PY'
import struct, sys, os
good = open(sys.argv[1], 'rb').read(); out = sys.argv[2]
def put(n, d): open(os.path.join(out, n), 'wb').write(d)
def field(off, val):
    b = bytearray(good); b[off:off+4] = struct.pack('<I', val); return bytes(b)
put('00-good.gpuapp', good); put('01-trunc.gpuapp', good[:50])
put('02-magic.gpuapp', b'XPUAPP' + good[6:]); put('03-version.gpuapp', good[:6] + b'\x07\x00' + good[8:])
put('04-past-end.gpuapp', good[:-4]); put('05-state.gpuapp', field(20, 1 << 24))
put('06-vertices.gpuapp', field(24, 100000)); put('07-entry.gpuapp', field(32, 1 << 30))
put('08-empty.gpuapp', b''); os.mkdir(os.path.join(out, '09-dir.gpuapp'))
PY
# random programs: deterministic per seed, fresh seed per run
seed=${GPUOS_SEED:-$RANDOM$RANDOM}
say "random program seed $seed"
python3 - "$W/rand" "$seed" <<'PY'
import random, sys
out, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
ops3 = ["add", "sub", "mul", "div", "min", "max", "mod", "lt", "le", "eq", "ne"]
ops2 = ["mov", "floor", "abs", "sin", "cos", "sqrt", "hash"]
for n in range(12):
    L = [f'.name "R{n}"', ".state 64", f".threads {rnd.randint(1, 6)}", ".vertices 400"]
    L += ["lane r10", "time r11", "frame r12", "ld r13, [0]", "addi r13, r13, 1", "st [0], r13"]
    for k in range(rnd.randint(20, 60)):
        d, a, b = rnd.randint(4, 9), rnd.randint(4, 13), rnd.randint(4, 13)
        c = rnd.random()
        if c < 0.4: L.append(f"{rnd.choice(ops3)} r{d}, r{a}, r{b}")
        elif c < 0.65: L.append(f"{rnd.choice(ops2)} r{d}, r{a}")
        elif c < 0.8: L.append(f"{rnd.choice(['addi', 'muli'])} r{d}, r{a}, {rnd.uniform(-3, 3):.6f}")
        elif c < 0.88: L.append(f"movi r{d}, {rnd.uniform(-50, 300):.5f}")
        else:
            L += [f"muli r0, r{a}, {rnd.uniform(-40, 40):.4f}", "abs r0, r0", "movi r14, 290",
                  "mod r0, r0, r14", f"muli r1, r{b}, {rnd.uniform(-40, 40):.4f}", "abs r1, r1",
                  "movi r14, 190", "mod r1, r1, r14",
                  f"movi r2, {rnd.randint(1, 80)}", f"movi r3, {rnd.randint(1, 60)}"]
            if rnd.random() < 0.5:
                L.append("color #%02x%02x%02x%02x" % tuple(rnd.randrange(256) for _ in range(4)))
            else:
                L += [f"hash r4, r{a}", f"hash r5, r{b}", "movi r6, 0.5", "rgb r4"]
            L.append("quad r0" if rnd.random() < 0.8 else f"glyph r0, '{rnd.choice('ELOHIM0123456789')}'")
    L.append("halt")
    open(f"{out}/r{n:02d}.gasm", "w").write("\n".join(L) + "\n")
PY
for g in "$W"/rand/*.gasm; do "$BIN" app build "$g" -o "${g%.gasm}.gpuapp" || fail=1; done

compare() {  # name, boot args...
    local name=$1; shift
    "$BIN" boot "$@" --device cpu --json > "$W/$name.cpu.json" 2>"$W/$name.cpu.err" || { say "$name: cpu boot failed"; cat "$W/$name.cpu.err"; fail=1; return; }
    "$BIN" boot "$@" --device cuda --json > "$W/$name.cuda.json" 2>"$W/$name.cuda.err" || { say "$name: cuda boot failed"; cat "$W/$name.cuda.err"; fail=1; return; }
    if python3 - "$W/$name.cpu.json" "$W/$name.cuda.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
keys = ["app_count", "system_app_count", "discovered_count", "loaded_count", "error_count",
        "no_slot_count", "boot_frames", "frames", "focused_slot", "fault_count", "preempt_count",
        "frame_hash"]
bad = [k for k in keys if a[k] != b[k]]
fields = ["slot", "name", "type", "status", "preempt_count", "fault_code", "quad_count"]
ta = [[x.get(f) for f in fields] for x in a["apps"]]
tb = [[x.get(f) for f in fields] for x in b["apps"]]
if ta != tb: bad.append("apps")
if [r["reason"] for r in a["rejected"]] != [r["reason"] for r in b["rejected"]]: bad.append("rejected")
if bad:
    print("MISMATCH", bad, {k: (a.get(k), b.get(k)) for k in bad if k != "apps"})
    sys.exit(1)
print("same: %d apps, hash %s, cuda boot %.0f us" % (a["app_count"], a["frame_hash"], b["boot_us"]))
PY
    then say "$name: ok"; else say "$name: CPU and CUDA DIFFER"; fail=1; fi
}
compare system   --apps "$W/none"
compare three    --apps "$W/three"
compare ten      --apps "$W/ten" --frames 10
compare bad      --apps "$W/bad" --frames 2
compare slots    --apps "$W/ten" --slots 8 --frames 3
compare hard     --apps "$W/hard" --frames 5 --budget 50000
compare samples  --apps "$W/apps" --frames 30
compare k1000    --apps "$W/k1000" --slots 1024 --frames 2
compare random   --apps "$W/rand" --frames 40
# input events: clicks on dock icons, a key, the mouse moving over windows
printf '%s\n' '{"frame": 2, "mouse": [600, 780], "buttons": 1}' '{"frame": 5, "key": 65}' \
    '{"frame": 9, "mouse": [300, 200]}' '{"frame": 12, "mouse": [680, 780], "buttons": 1}' \
    > "$W/events.jsonl"
compare events   --apps "$W/apps" --frames 20 --events "$W/events.jsonl"
"$BIN" boot --apps "$W/apps" --frames 30 --device cpu --png "$W/cpu.png" >/dev/null 2>&1
"$BIN" boot --apps "$W/apps" --frames 30 --device cuda --png "$W/cuda.png" >/dev/null 2>&1
if cmp -s "$W/cpu.png" "$W/cuda.png"; then say "PNG bytes identical"; else say "PNG bytes DIFFER"; fail=1; fi
cp "$W/cuda.png" "$OUT/gpuos-desktop.png" 2>/dev/null
cp "$W"/*.json "$OUT/" 2>/dev/null

echo "=== elohim bench boot --device cuda"
"$BIN" bench boot --device cuda || fail=1
[ $fail -eq 0 ] && say "all checks passed" || say "FAILED"
exit $fail
