"""tamper.py - the audit log is tamper-evident: `elohim audit verify` passes
on an intact log and fails, naming the first bad entry, after an edited row,
a deleted middle row, a deleted newest row, a chain recomputed without the
key, a chain recomputed with the key but without the head, an edited or
missing head; and the server refuses to start on a tampered log.

usage: tamper.py BIN WORKDIR"""
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server  # noqa: E402

BIN, WORK = sys.argv[1], sys.argv[2]
PASSED = FAILED = 0


def check(cond, msg):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL:", msg, flush=True)


def verify(data):
    p = subprocess.run([BIN, "audit", "verify", "--data", data, "--json"], capture_output=True, text=True)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        out = {}
    return p.returncode, out, p.stderr


# Build a log through the real server: setup, users, grants, logins.
data = os.path.join(WORK, "data")
srv = Server(BIN, data).start()
T = srv.token
r = srv.request("POST", "/api/v1/setup/step1", {"username": "root", "password": "root password 123", "setup_token": T})
A = r.json["token"]
srv.request("POST", "/api/v1/setup/step2", {"founder_password": "founder password 1234", "setup_token": T}, token=A)
srv.request("POST", "/api/v1/setup/step3", {"enable_gpu_embeddings": True, "enable_gpu_vector_search": True,
                                           "enable_gpu_sql": True, "enable_smooth_ui": True, "setup_token": T}, token=A)
srv.request("POST", "/api/v1/setup/complete", {"setup_token": T}, token=A)
r = srv.request("POST", "/api/v1/users", {"username": "ann", "password": "ann password 1", "role": "member"}, token=A)
uid = r.json["id"]
srv.request("POST", "/api/v1/users/%d/permissions" % uid, {"permission": "audit.read"}, token=A)
srv.request("PUT", "/api/v1/users/%d/role" % uid, {"role": "admin"}, token=A)
srv.request("POST", "/api/v1/auth/login", {"username": "ann", "password": "wrong wrong"})
check(srv.stop() == 0, "server stops")

rc, out, err = verify(data)
N = out.get("entries", 0)
check(rc == 0 and out.get("ok") is True and N == 8, "intact log verifies: rc=%d %r %s" % (rc, out, err))
p = subprocess.run([BIN, "audit", "verify", "--data", data], capture_output=True, text=True)
check(p.returncode == 0 and "intact" in p.stdout and "8 entries" in p.stdout, "human output")

KEY = bytes.fromhex(open(os.path.join(data, "audit.key")).read().strip())


def entry_mac(key, prev, row):
    h = hashlib.blake2b(key=key, digest_size=32)
    h.update(prev)
    for v in row:
        b = b"" if v is None else str(v).encode()
        h.update(struct.pack("<Q", len(b)))
        h.update(b)
    return h.digest()


def copy(name):
    d = os.path.join(WORK, name)
    shutil.copytree(data, d)
    return d


def open_db(d):
    db = sqlite3.connect(os.path.join(d, "elohim.db"))
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute("DROP TRIGGER audit_log_no_delete")
    return db


def rechain(db, key):
    prev = b"\0" * 32
    rows = db.execute("SELECT id, ts, actor, actor_name, action, target, details FROM audit_log ORDER BY id").fetchall()
    for row in rows:
        mac = entry_mac(key, prev, row)
        db.execute("UPDATE audit_log SET mac=? WHERE id=?", (mac.hex(), row[0]))
        prev = mac
    db.commit()


# Our own MAC computation agrees with the stored chain (the format is as documented).
db = sqlite3.connect(os.path.join(data, "elohim.db"))
prev = b"\0" * 32
same = True
for row in db.execute("SELECT id, ts, actor, actor_name, action, target, details, mac FROM audit_log ORDER BY id"):
    mac = entry_mac(KEY, prev, row[:7])
    same &= mac.hex() == row[7]
    prev = mac
db.close()
check(same, "documented MAC format matches the stored chain")

# 1. an edited row
d = copy("edited")
db = open_db(d)
db.execute("""UPDATE audit_log SET details='{"from":"member","to":"viewer"}' WHERE id=7""")
db.commit()
db.close()
rc, out, err = verify(d)
check(rc == 1 and out.get("first_bad_entry") == 7 and "entry 7" in err, "edited row: %d %r %s" % (rc, out, err))

# 2. a deleted middle row
d = copy("deleted-middle")
db = open_db(d)
db.execute("DELETE FROM audit_log WHERE id=4")
db.commit()
db.close()
rc, out, err = verify(d)
check(rc == 1 and "entry 4" in err, "deleted middle row: %d %r %s" % (rc, out, err))

# 3. the newest row deleted
d = copy("deleted-newest")
db = open_db(d)
db.execute("DELETE FROM audit_log WHERE id=(SELECT max(id) FROM audit_log)")
db.commit()
db.close()
rc, out, err = verify(d)
check(rc == 1 and out.get("first_bad_entry") == N, "deleted newest row: %d %r %s" % (rc, out, err))

# 4. a chain recomputed without the key (a guessed key)
d = copy("rechained-guess")
db = open_db(d)
db.execute("UPDATE audit_log SET actor_name='mallory' WHERE id=7")
rechain(db, os.urandom(32))
db.close()
rc, out, err = verify(d)
check(rc == 1 and out.get("first_bad_entry") == 1, "chain recomputed without the key: %d %r %s" % (rc, out, err))

# 5. a chain recomputed with the key after deleting a row, head untouched
d = copy("rechained-key")
db = open_db(d)
db.execute("DELETE FROM audit_log WHERE id=5")
db.execute("UPDATE audit_log SET id=id-1 WHERE id>5")
rechain(db, KEY)
db.close()
rc, out, err = verify(d)
check(rc == 1 and "chain head" in err, "chain recomputed with the key but not the head: %d %r %s" % (rc, out, err))

# 6. an edited head, 7. a missing head, 8. a missing key
d = copy("head-edited")
path = os.path.join(d, "audit.head")
text = open(path).read().replace("count %d" % N, "count %d" % (N - 1))
open(path, "w").write(text)
rc, out, err = verify(d)
check(rc == 1 and "head" in err, "edited head: %d %s" % (rc, err))
d = copy("head-missing")
os.unlink(os.path.join(d, "audit.head"))
rc, out, err = verify(d)
check(rc == 1 and "missing" in err, "missing head: %d %s" % (rc, err))
d = copy("key-missing")
os.unlink(os.path.join(d, "audit.key"))
rc, out, err = verify(d)
check(rc == 1, "missing key: %d %s" % (rc, err))

# 9. the server will not run on a tampered log
p = subprocess.run([BIN, "serve", "--data", os.path.join(WORK, "edited"), "--listen", "127.0.0.1:0"],
                   capture_output=True, text=True, timeout=20)
check(p.returncode == 1 and "audit" in p.stderr and "entry 7" in p.stderr,
      "server refuses a tampered log: %d %s" % (p.returncode, p.stderr))
p = subprocess.run([BIN, "audit", "verify", "--data", os.path.join(WORK, "nope")], capture_output=True, text=True)
check(p.returncode == 1 and "no database" in p.stderr, "verify of a missing dir: %s" % p.stderr)

# The original is still intact after all of this.
rc, out, err = verify(data)
check(rc == 0, "original still verifies")
print("%d passed, %d failed" % (PASSED, FAILED))
sys.exit(1 if FAILED else 0)
