# test-boot.sh - `elohim boot` end to end on the CPU path: the PRD's five
# cases (system apps, 3 apps, no apps directory, 10 apps, boot stats), bad
# files counted as errors, more apps than slots, an endless loop preempted,
# an app writing outside its state contained, deterministic frames, PNG.
. tests/integration/lib.sh

mkdir -p "$TMP/apps" "$TMP/three" "$TMP/ten" "$TMP/one" "$TMP/home/apps"
for a in apps/*.gasm; do
    expect_exit 0 "$BIN" app build "$a" -o "$TMP/apps/$(basename "$a" .gasm).gpuapp"
done
for i in 1 2 3; do cp "$TMP/apps/clock.gpuapp" "$TMP/three/c$i.gpuapp"; done
for i in 0 1 2 3 4 5 6 7 8 9; do cp "$TMP/apps/ball.gpuapp" "$TMP/ten/b$i.gpuapp"; done
cp "$TMP/apps/barchart.gpuapp" "$TMP/one/"

# jq-like checks with python: check FILE 'python expression over d'
check() {
    if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; then ok
    else bad "$2 (in $(head -c 300 "$1"))"; fi
}

# 1. system apps at boot; 3. no apps directory
expect_exit 0 "$BIN" boot --apps "$TMP/does-not-exist" --json --device cpu
expect_json "$TMP/out"
check "$TMP/out" 'd["app_count"]==4 and d["system_app_count"]==4 and d["error_count"]==0'
check "$TMP/out" '[(a["slot"],a["name"],a["type"]) for a in d["apps"]]==[(0,"Compositor","system"),(1,"Dock","system"),(2,"MenuBar","system"),(3,"WindowChrome","system")]'
check "$TMP/out" 'd["device"]=="cpu" and d["boot_frames"]>0 and set(d["phase_us"])=={"system_init","system_apps","discovery","loading","boot_complete"}'
# 2. discovery of 3 apps
expect_exit 0 "$BIN" boot --apps "$TMP/three" --json
check "$TMP/out" 'd["app_count"]==7 and d["discovered_count"]==3 and d["loaded_count"]==3'
check "$TMP/out" '[a["slot"] for a in d["apps"] if a["type"]=="user"]==[4,5,6]'
# 4. ten apps
expect_exit 0 "$BIN" boot --apps "$TMP/ten" --json
check "$TMP/out" 'd["app_count"]==14 and d["loaded_count"]==10 and d["error_count"]==0'
# 5. boot stats
expect_exit 0 "$BIN" boot --apps "$TMP/one" --json
check "$TMP/out" 'd["discovered_count"]==1 and d["loaded_count"]==1 and d["error_count"]==0 and d["boot_frames"]>0'
# default --apps is ~/apps
cp "$TMP/apps/clock.gpuapp" "$TMP/home/apps/"
expect_exit 0 env HOME="$TMP/home" "$BIN" boot --json
check "$TMP/out" 'd["loaded_count"]==1 and d["apps"][4]["name"]=="Clock"'

# bad files: each an error, never a crash, exit 0
mkdir -p "$TMP/bad"
python3 - "$TMP/apps/clock.gpuapp" "$TMP/bad" <<'PY'
import struct, sys, os
good = open(sys.argv[1], 'rb').read()
out = sys.argv[2]
def put(name, data): open(os.path.join(out, name), 'wb').write(data)
def field(off, val):
    b = bytearray(good); b[off:off+4] = struct.pack('<I', val); return bytes(b)
put('00-good.gpuapp', good)
put('01-truncated.gpuapp', good[:50])
put('02-magic.gpuapp', b'XPUAPP' + good[6:])
put('03-version.gpuapp', good[:6] + b'\x07\x00' + good[8:])
put('04-code-past-end.gpuapp', good[:-4])
put('05-state.gpuapp', field(20, 1 << 24))
put('06-vertices.gpuapp', field(24, 100000))
put('07-entry.gpuapp', field(32, 1 << 30))
put('08-empty.gpuapp', b'')
put('09-garbage.gpuapp', os.urandom(3000))
put('10-unreadable.gpuapp', good)
os.mkdir(os.path.join(out, '11-dir.gpuapp'))
PY
chmod 000 "$TMP/bad/10-unreadable.gpuapp"
if [ -r "$TMP/bad/10-unreadable.gpuapp" ]; then want_err=10; else want_err=11; fi
expect_exit 0 "$BIN" boot --apps "$TMP/bad" --json --frames 2
check "$TMP/out" "d['discovered_count']==12 and d['error_count']==$want_err and d['loaded_count']==12-$want_err"
check "$TMP/out" 'any("wrong magic" in r["reason"] for r in d["rejected"]) and any(r["path"].endswith("11-dir.gpuapp") for r in d["rejected"])'
expect_exit 0 "$BIN" boot --apps "$TMP/bad"
expect_contains "$TMP/out" "rejected"

# more apps than slots
expect_exit 0 "$BIN" boot --apps "$TMP/ten" --slots 8 --json
check "$TMP/out" 'd["app_count"]==8 and d["loaded_count"]==4 and d["no_slot_count"]==6 and d["slots"]==8'
# the boot load limit
expect_exit 0 "$BIN" boot --apps "$TMP/ten" --load 3 --json
check "$TMP/out" 'd["loaded_count"]==3 and d["app_count"]==7 and d["error_count"]==0'

# an endless loop is preempted, a wild store is contained, others run on
mkdir -p "$TMP/hard"
printf '.name "Spin"\nloop: jmp loop\n' > "$TMP/spin.gasm"
printf '.name "Wild"\n.state 8\nmovi r1, 100000\nst [r1], r1\nhalt\n' > "$TMP/wild.gasm"
expect_exit 0 "$BIN" app build "$TMP/spin.gasm" -o "$TMP/hard/a-spin.gpuapp"
expect_exit 0 "$BIN" app build "$TMP/wild.gasm" -o "$TMP/hard/b-wild.gpuapp"
cp "$TMP/apps/ball.gpuapp" "$TMP/hard/c-ball.gpuapp"
expect_exit 0 "$BIN" boot --apps "$TMP/hard" --frames 3 --budget 50000 --json
check "$TMP/out" '[(a["name"],a["status"]) for a in d["apps"][4:]]==[("Spin","running"),("Wild","faulted"),("Bouncing Ball","running")]'
check "$TMP/out" 'd["apps"][4]["preempt_count"]==4 and d["fault_count"]==1 and d["apps"][6]["quad_count"]==4'

# frames are deterministic; the PNG is a 1280x800 RGBA image
expect_exit 0 "$BIN" boot --apps "$TMP/apps" --frames 5 --png "$TMP/a.png" --json
cp "$TMP/out" "$TMP/run1.json"
expect_exit 0 "$BIN" boot --apps "$TMP/apps" --frames 5 --png "$TMP/b.png" --json
python3 - "$TMP/run1.json" "$TMP/out" <<'PY' && ok || bad "frame hashes differ between runs"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["frame_hash"] == b["frame_hash"] and a["frames"] == 6
PY
if cmp -s "$TMP/a.png" "$TMP/b.png"; then ok; else bad "PNG bytes differ between runs"; fi
python3 - "$TMP/a.png" <<'PY' && ok || bad "PNG header"
import struct, sys
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n' and d[12:16] == b'IHDR'
w, h, depth, ctype = struct.unpack('>IIBB', d[16:26])
assert (w, h, depth, ctype) == (1280, 800, 8, 6)
PY
expect_exit 0 "$BIN" boot --apps "$TMP/apps" --frames 6 --json
python3 - "$TMP/run1.json" "$TMP/out" <<'PY' && ok || bad "a later frame has the same hash"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["frame_hash"] != b["frame_hash"] and b["frames"] == 7
PY

# pixel-exact whatever the number of CPU threads
ELOHIM_THREADS=1 "$BIN" boot --apps "$TMP/apps" --frames 5 --json > "$TMP/t1.json" 2>/dev/null
python3 - "$TMP/run1.json" "$TMP/t1.json" <<'PY' && ok || bad "1 thread and N threads draw different frames"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["frame_hash"] == b["frame_hash"]
PY

# --events: a click on a dock icon focuses that app; bad scripts are
# errors naming the line
printf '{"frame": 1, "mouse": [600, 780], "buttons": 1}\n\n{"frame": 2, "key": 65}\n' > "$TMP/click.jsonl"
expect_exit 0 "$BIN" boot --apps "$TMP/apps" --frames 3 --json --device cpu
check "$TMP/out" 'd["focused_slot"]==7'
expect_exit 0 "$BIN" boot --apps "$TMP/apps" --frames 3 --json --device cpu --events "$TMP/click.jsonl"
check "$TMP/out" 'd["focused_slot"]==5 and d["frames"]==4'
printf '{"frame": 0}\n{"frame": "one"}\n' > "$TMP/bad-events.jsonl"
expect_exit 2 "$BIN" boot --apps "$TMP/apps" --frames 3 --events "$TMP/bad-events.jsonl"
grep -q 'bad-events.jsonl:2: "frame" must be an integer' "$TMP/err" && ok || bad "events error names the line"
printf '{"frame": 0' > "$TMP/cut-events.jsonl"
expect_exit 2 "$BIN" boot --apps "$TMP/apps" --frames 3 --events "$TMP/cut-events.jsonl"
expect_exit 2 "$BIN" boot --apps "$TMP/apps" --events "$TMP/click.jsonl"
expect_exit 1 "$BIN" boot --apps "$TMP/apps" --frames 3 --events "$TMP/no-such-file.jsonl"

# usage errors and devices
expect_exit 2 "$BIN" boot --slots 2
expect_exit 2 "$BIN" boot --frames lots
expect_exit 2 "$BIN" boot --device tpu
expect_exit 2 "$BIN" boot --bogus
expect_exit 1 "$BIN" boot --apps "$TMP/apps" --png /nonexistent/dir/x.png
if "$BIN" doctor --json | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["gpu"]["available"] else 1)'; then
    expect_exit 0 "$BIN" boot --apps "$TMP/apps" --device cuda --json
else
    expect_exit 2 "$BIN" boot --apps "$TMP/apps" --device cuda
    expect_contains "$TMP/err" "--device cuda"
fi
finish
