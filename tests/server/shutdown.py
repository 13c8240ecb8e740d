"""shutdown.py - graceful shutdown: on SIGTERM the server stops accepting at
once, still finishes a request that is in flight, then exits 0 with the
database closed cleanly; a request that never finishes is cut off after the
bounded wait.

usage: shutdown.py BIN WORKDIR"""
import json
import os
import signal
import socket
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, recv_all  # noqa: E402

BIN, WORK = sys.argv[1], sys.argv[2]
PASSED = FAILED = 0


def check(cond, msg):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL:", msg, flush=True)


config = os.path.join(WORK, "config.json")
with open(config, "w") as f:
    json.dump({"request_timeout_s": 30, "shutdown_timeout_s": 2}, f)

# 1. an in-flight request completes during the drain
data = os.path.join(WORK, "data")
srv = Server(BIN, data, config=config).start()
check(srv.request("GET", "/readyz").status == 200, "ready before shutdown")
body = json.dumps({"username": "someone", "password": "a password here"}).encode()
a = srv.connect()
a.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
time.sleep(0.3)
t0 = time.time()
srv.proc.send_signal(signal.SIGTERM)
time.sleep(0.4)
refused = False
try:
    socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
except OSError:
    refused = True
check(refused, "new connections refused once shutdown starts")
check(srv.proc.poll() is None, "server waits for the in-flight request")
a.sendall(body[10:])
out, _ = recv_all(a, 5)
a.close()
check(out.startswith(b"HTTP/1.1 401") and b"invalid_credentials" in out,
      "in-flight request answered during the drain: %r" % out[:60])
try:
    rc = srv.proc.wait(5)
except Exception:
    rc = None
check(rc == 0 and time.time() - t0 < 5, "exit 0 soon after the drain (rc=%r)" % rc)
srv.err.close()
check("stopped cleanly" in srv.stderr_text(), "clean stop reported: %s" % srv.stderr_text()[-300:])
db = sqlite3.connect(os.path.join(data, "elohim.db"))
check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "database intact")
db.close()
wal = os.path.join(data, "elohim.db-wal")
check(not os.path.exists(wal) or os.path.getsize(wal) == 0, "WAL checkpointed at close")

# 2. a request that never completes is cut off after shutdown_timeout_s
data2 = os.path.join(WORK, "data2")
srv = Server(BIN, data2, config=config).start()
b = srv.connect()
b.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
time.sleep(0.3)
t0 = time.time()
srv.proc.send_signal(signal.SIGINT)
try:
    rc = srv.proc.wait(10)
except Exception:
    rc = None
took = time.time() - t0
b.close()
check(rc == 0 and 1.5 < took < 6, "bounded wait for a stuck request: rc=%r took %.1fs" % (rc, took))
srv.err.close()
check("cut off" in srv.stderr_text(), "stuck request reported")

print("%d passed, %d failed" % (PASSED, FAILED))
sys.exit(1 if FAILED else 0)
