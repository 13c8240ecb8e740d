"""e2e.py - end-to-end tests of `elohim serve` on loopback: the setup flow and
its token, 409 after completion (also after a restart), login/logout with
Bearer and cookie, every protected route without a session (401) and with
too small a role (403), grants/revokes and the audit query, the founder
login, malformed JSON, wrong types, huge bodies, slow clients, the per-IP
connection limit, path traversal on static files, failed-login back-off,
/metrics, and that secrets never reach the database in plaintext.

usage: e2e.py BIN WORKDIR WEBDIR   (prints one line per failure; exit 1 on any)"""
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, recv_all  # noqa: E402

BIN, WORK, WEB = sys.argv[1], sys.argv[2], sys.argv[3]
PASSED = 0
FAILED = 0


def check(cond, msg):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL:", msg, flush=True)
    return cond


def err_code(r):
    return (r.json or {}).get("error", {}).get("code")


data = os.path.join(WORK, "data")
config = os.path.join(WORK, "config.json")
with open(config, "w") as f:
    json.dump({"request_timeout_s": 2, "per_ip_connections": 16, "max_body_bytes": 65536,
               "shutdown_timeout_s": 5, "threads": 4, "some_future_key": 1}, f)

srv = Server(BIN, data, web=WEB, config=config).start()
check(srv.token and re.fullmatch(r"[0-9a-f]{64}", srv.token), "setup token line on stdout")
TOKEN = srv.token

# ---- setup wizard -----------------------------------------------------------------
r = srv.request("GET", "/api/v1/setup/status")
check(r.status == 200 and r.json["setup_required"] is True and r.json["step"] == 1
      and r.json["founder_password_set"] is False and isinstance(r.json["gpu_available"], bool)
      and "gpu_name" in r.json, "status before setup: %r" % r)

ADMIN_PW = "admin password 12345"
FOUNDER_PW = "break glass founder pass"
r = srv.request("POST", "/api/v1/setup/step1", {"username": "admin", "password": ADMIN_PW})
check(r.status == 400 and err_code(r) == "bad_request", "step1 without token is 400: %r" % r)
r = srv.request("POST", "/api/v1/setup/step1",
                {"username": "admin", "password": ADMIN_PW, "setup_token": "0" * 64})
check(r.status == 403 and err_code(r) == "bad_setup_token", "step1 wrong token is 403: %r" % r)
r = srv.request("POST", "/api/v1/setup/step1",
                {"username": "admin", "password": "short", "setup_token": TOKEN})
check(r.status == 400, "step1 short password is 400")
r = srv.request("POST", "/api/v1/setup/step1",
                {"username": "ab", "password": ADMIN_PW, "setup_token": TOKEN})
check(r.status == 400, "step1 short username is 400")
r = srv.request("POST", "/api/v1/setup/step1",
                {"username": ["admin"], "password": ADMIN_PW, "setup_token": TOKEN})
check(r.status == 400 and "must be a string" in r.json["error"]["message"], "step1 wrong type")
r = srv.request("POST", "/api/v1/setup/step2", {"founder_password": FOUNDER_PW, "setup_token": TOKEN})
check(r.status == 401, "step2 without a session is 401: %r" % r)
r = srv.request("POST", "/api/v1/setup/step1",
                {"username": "admin", "password": ADMIN_PW, "setup_token": TOKEN, "extra": {"x": 1}})
check(r.status == 201 and r.json["user"]["role"] == "super_admin" and r.json["step"] == 2,
      "step1 creates the super_admin: %r" % r)
ADMIN = r.json["token"]
ADMIN_ID = r.json["user"]["id"]
r = srv.request("POST", "/api/v1/setup/step1",
                {"username": "admin2", "password": ADMIN_PW, "setup_token": TOKEN})
check(r.status == 409, "step1 twice is 409")
r = srv.request("POST", "/api/v1/setup/complete", {"setup_token": TOKEN}, token=ADMIN)
check(r.status == 409 and err_code(r) == "setup_order", "complete before step2 is 409: %r" % r)
r = srv.request("POST", "/api/v1/setup/step2", {"founder_password": "too short", "setup_token": TOKEN},
                token=ADMIN)
check(r.status == 400, "step2 founder password < 16 is 400")
r = srv.request("POST", "/api/v1/setup/step2", {"founder_password": FOUNDER_PW, "setup_token": TOKEN},
                token=ADMIN)
check(r.status == 200 and r.json["step"] == 3, "step2: %r" % r)
r = srv.request("GET", "/api/v1/setup/status")
check(r.json["founder_password_set"] is True and r.json["step"] == 3, "status after step2")
prefs = {"enable_gpu_embeddings": True, "enable_gpu_vector_search": False,
         "enable_gpu_sql": True, "enable_smooth_ui": False}
r = srv.request("POST", "/api/v1/setup/step3", dict(prefs, enable_gpu_sql="yes", setup_token=TOKEN),
                token=ADMIN)
check(r.status == 400, "step3 wrong type is 400")
r = srv.request("POST", "/api/v1/setup/step3", dict(prefs, setup_token=TOKEN), token=ADMIN)
check(r.status == 200 and r.json["step"] == 4, "step3: %r" % r)
with open(os.path.join(data, "settings.json")) as f:
    check(json.load(f) == prefs, "settings.json holds the preferences")
r = srv.request("POST", "/api/v1/setup/complete", {"setup_token": TOKEN}, token=ADMIN)
check(r.status == 200, "complete: %r" % r)
for step in ("step1", "step2", "step3", "complete"):
    r = srv.request("POST", "/api/v1/setup/" + step, {"setup_token": TOKEN}, token=ADMIN)
    check(r.status == 409 and err_code(r) == "setup_complete", "%s after completion is 409" % step)
r = srv.request("GET", "/api/v1/setup/status")
check(r.json["setup_required"] is False and r.json["step"] == 0, "setup_required false")

# ---- restart: setup stays complete, no token printed ----------------------------------------
check(srv.stop() == 0, "clean exit on SIGTERM")
srv = Server(BIN, data, web=WEB, config=config).start()
check(srv.token is None, "no setup token after completion")
r = srv.request("GET", "/api/v1/setup/status")
check(r.json["setup_required"] is False, "setup_required false after restart")
r = srv.request("POST", "/api/v1/setup/step1",
                {"username": "x" * 5, "password": ADMIN_PW, "setup_token": TOKEN})
check(r.status == 409, "setup 409 after restart")

# ---- login / logout ------------------------------------------------------------------------
r = srv.request("GET", "/api/v1/auth/me", token=ADMIN)
check(r.status == 200 and r.json["user"]["username"] == "admin", "session survives restart")
r = srv.request("POST", "/api/v1/auth/login", {"username": "admin", "password": "wrong password!"})
check(r.status == 401 and err_code(r) == "invalid_credentials", "wrong password is 401")
r = srv.request("POST", "/api/v1/auth/login", {"username": "nobody", "password": "whatever123"})
check(r.status == 401, "unknown user is 401")
r = srv.request("POST", "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PW})
check(r.status == 200 and re.fullmatch(r"[0-9a-f]{64}", r.json["token"]) and
      r.json["user"] == {"id": ADMIN_ID, "username": "admin", "role": "super_admin"},
      "login: %r" % r)
tok = r.json["token"]
cookie = r.header("Set-Cookie") or ""
check("HttpOnly" in cookie and "SameSite=Strict" in cookie and tok in cookie, "session cookie flags")
r = srv.request("GET", "/api/v1/auth/me", cookie="elohim_session=" + tok)
check(r.status == 200 and "users.manage" in r.json["user"]["permissions"], "me with the cookie")
r = srv.request("POST", "/api/v1/auth/logout", token=tok)
check(r.status == 200, "logout")
r = srv.request("GET", "/api/v1/auth/me", token=tok)
check(r.status == 401, "token dead after logout")
r = srv.request("GET", "/api/v1/auth/me", token="f" * 64)
check(r.status == 401, "made-up token is 401")
r = srv.request("GET", "/api/v1/auth/me", headers={"Authorization": "Bearer ../../etc"})
check(r.status == 401, "malformed bearer is 401")

# ---- users and roles -------------------------------------------------------------------------
def create(tok_, name, role, expect=201):
    rr = srv.request("POST", "/api/v1/users", {"username": name, "password": name + "-password-1",
                                               "role": role}, token=tok_)
    check(rr.status == expect, "create %s (%s): %r" % (name, role, rr))
    return rr.json.get("id") if rr.json else None


def login(name, pw=None):
    rr = srv.request("POST", "/api/v1/auth/login", {"username": name, "password": pw or name + "-password-1"})
    check(rr.status == 200, "login %s: %r" % (name, rr))
    return rr.json["token"] if rr.status == 200 else ""


ADM2_ID = create(ADMIN, "alice", "admin")
MEM_ID = create(ADMIN, "bob", "member")
VIEW_ID = create(ADMIN, "carol", "viewer")
create(ADMIN, "bob", "member", expect=409)
r = srv.request("POST", "/api/v1/users", {"username": "dave", "password": "dave-password-1",
                                          "role": "emperor"}, token=ADMIN)
check(r.status == 400, "unknown role is 400")
r = srv.request("POST", "/api/v1/users", {"username": "elohim_founder", "password": "x" * 20,
                                          "role": "viewer"}, token=ADMIN)
check(r.status == 400, "founder name reserved")
ALICE, BOB, CAROL = login("alice"), login("bob"), login("carol")

protected = [
    ("POST", "/api/v1/auth/logout", None), ("GET", "/api/v1/auth/me", None),
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/users", {"username": "eve", "password": "eve-password-1", "role": "viewer"}),
    ("PUT", "/api/v1/users/%d/role" % MEM_ID, {"role": "admin"}),
    ("POST", "/api/v1/users/%d/permissions" % MEM_ID, {"permission": "audit.read"}),
    ("DELETE", "/api/v1/users/%d/permissions/audit.read" % MEM_ID, None),
    ("DELETE", "/api/v1/users/%d" % MEM_ID, None),
    ("GET", "/api/v1/audit", None),
]
for method, path, body in protected:
    r = srv.request(method, path, body)
    check(r.status == 401 and err_code(r) == "unauthorized", "%s %s without session: %r" % (method, path, r))
    r = srv.request(method, path, body, token="0" * 64)
    check(r.status == 401, "%s %s with a bad token" % (method, path))
for who, tok_ in (("viewer", CAROL), ("member", BOB)):
    for method, path, body in protected[2:]:
        r = srv.request(method, path, body, token=tok_)
        check(r.status == 403 and err_code(r) == "forbidden", "%s %s as %s: %r" % (method, path, who, r))
r = srv.request("GET", "/api/v1/auth/me", token=CAROL)
check(r.status == 200 and r.json["user"]["permissions"] == ["docs.read"], "viewer me: %r" % r)

# grants: admin grants audit.read to bob; bob can read the audit; revoke takes it away
r = srv.request("POST", "/api/v1/users/%d/permissions" % MEM_ID, {"permission": "audit.read"}, token=ALICE)
check(r.status == 200 and r.json["permissions"] == ["audit.read"], "grant: %r" % r)
r = srv.request("GET", "/api/v1/audit", token=BOB)
check(r.status == 200, "granted audit.read works")
r = srv.request("GET", "/api/v1/audit?target=%d&action=PERMISSION_GRANTED" % MEM_ID, token=ADMIN)
e = r.json["entries"] if r.status == 200 else []
check(len(e) == 1 and e[0]["actor"] == ADM2_ID and e[0]["actor_name"] == "alice" and
      e[0]["details"]["permission"] == "audit.read", "audit says alice granted audit.read: %r" % r)
r = srv.request("DELETE", "/api/v1/users/%d/permissions/audit.read" % MEM_ID, token=ALICE)
check(r.status == 200, "revoke: %r" % r)
r = srv.request("GET", "/api/v1/audit", token=BOB)
check(r.status == 403, "revoked audit.read is gone")
r = srv.request("DELETE", "/api/v1/users/%d/permissions/audit.read" % MEM_ID, token=ALICE)
check(r.status == 404, "revoking twice is 404")
r = srv.request("DELETE", "/api/v1/users/%d/permissions/docs.read" % MEM_ID, token=ALICE)
check(r.status == 409 and err_code(r) == "held_by_role", "role permission cannot be revoked as a grant")
r = srv.request("POST", "/api/v1/users/%d/permissions" % MEM_ID, {"permission": "root"}, token=ALICE)
check(r.status == 400, "unknown permission is 400")
r = srv.request("POST", "/api/v1/users/%d/permissions" % MEM_ID, {"permission": 5}, token=ALICE)
check(r.status == 400, "permission wrong type is 400")
r = srv.request("POST", "/api/v1/users/999/permissions", {"permission": "sql.query"}, token=ALICE)
check(r.status == 404, "grant to a missing user is 404")

# no one grants what they do not hold: bob gets users.manage only
r = srv.request("POST", "/api/v1/users/%d/permissions" % MEM_ID, {"permission": "users.manage"}, token=ADMIN)
check(r.status == 200, "grant users.manage to bob")
r = srv.request("POST", "/api/v1/users/%d/permissions" % VIEW_ID, {"permission": "audit.read"}, token=BOB)
check(r.status == 403, "bob cannot grant audit.read he does not hold: %r" % r)
r = srv.request("POST", "/api/v1/users/%d/permissions" % VIEW_ID, {"permission": "sql.query"}, token=BOB)
check(r.status == 200, "bob can grant sql.query he holds")
create(BOB, "mallory", "admin", expect=403)
r = srv.request("PUT", "/api/v1/users/%d/role" % VIEW_ID, {"role": "admin"}, token=BOB)
check(r.status == 403, "member cannot make an admin")
r = srv.request("PUT", "/api/v1/users/%d/role" % ADM2_ID, {"role": "viewer"}, token=BOB)
check(r.status == 403, "member cannot demote an admin")
r = srv.request("PUT", "/api/v1/users/%d/role" % ADMIN_ID, {"role": "viewer"}, token=ALICE)
check(r.status == 403, "admin cannot demote a super_admin")
r = srv.request("DELETE", "/api/v1/users/%d" % ADMIN_ID, token=ALICE)
check(r.status == 403, "admin cannot delete a super_admin")
r = srv.request("PUT", "/api/v1/users/%d/role" % ADMIN_ID, {"role": "admin"}, token=ADMIN)
check(r.status == 409 and err_code(r) == "last_super_admin", "last super_admin cannot be demoted")
r = srv.request("DELETE", "/api/v1/users/%d" % ADMIN_ID, token=ADMIN)
check(r.status == 409 and err_code(r) == "last_super_admin", "last super_admin cannot be deleted")
r = srv.request("PUT", "/api/v1/users/%d/role" % MEM_ID, {"role": 3}, token=ALICE)
check(r.status == 400, "role wrong type is 400")

# who granted admin to bob?
r = srv.request("PUT", "/api/v1/users/%d/role" % MEM_ID, {"role": "admin"}, token=ALICE)
check(r.status == 200 and r.json["role"] == "admin", "alice makes bob admin")
r = srv.request("GET", "/api/v1/audit?target=%d&action=ROLE_CHANGED" % MEM_ID, token=ADMIN)
e = r.json["entries"] if r.status == 200 else []
check(len(e) == 1 and e[0]["actor_name"] == "alice" and e[0]["details"]["to"] == "admin"
      and e[0]["details"]["from"] == "member", "audit answers who granted admin: %r" % r)
r = srv.request("GET", "/api/v1/audit?actor=alice&since=2000-01-01&until=2999-12-31T23:59:59Z", token=ADMIN)
check(r.status == 200 and len(r.json["entries"]) >= 2 and
      all(x["actor_name"] == "alice" for x in r.json["entries"]), "audit by actor name and time")
r = srv.request("GET", "/api/v1/audit?since=2999-01-01", token=ADMIN)
check(r.status == 200 and r.json["entries"] == [], "audit since the future is empty")
for q in ("target=abc", "since=yesterday", "action=drop%20table", "limit=0", "limit=x"):
    r = srv.request("GET", "/api/v1/audit?" + q, token=ADMIN)
    check(r.status == 400, "audit query %s is 400" % q)
r = srv.request("GET", "/api/v1/users", token=ALICE)
names = [u["username"] for u in r.json["users"]] if r.status == 200 else []
check(names == ["admin", "alice", "bob", "carol"], "user list: %r" % names)

# delete: carol goes, her session dies, the audit has it
r = srv.request("DELETE", "/api/v1/users/%d" % VIEW_ID, token=ALICE)
check(r.status == 200, "delete carol: %r" % r)
r = srv.request("GET", "/api/v1/auth/me", token=CAROL)
check(r.status == 401, "deleted user's session is dead")
r = srv.request("DELETE", "/api/v1/users/%d" % VIEW_ID, token=ALICE)
check(r.status == 404, "delete twice is 404")
r = srv.request("GET", "/api/v1/audit?target=%d&action=USER_DELETED" % VIEW_ID, token=ADMIN)
check(r.status == 200 and len(r.json["entries"]) == 1, "USER_DELETED audited")

# ---- concurrency: parallel reads while users are created and deleted ---------------------------
errors = []


def reader(n):
    # one keep-alive connection per client (as browsers and scrapers do), so
    # the per-IP limit sees exactly one connection per thread
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
    for i in range(40):
        path = ("/api/v1/auth/me", "/api/v1/users", "/metrics", "/api/v1/audit?limit=5")[i % 4]
        try:
            conn.request("GET", path, headers={"Authorization": "Bearer " + ADMIN})
            rr = conn.getresponse()
            rr.read()
        except OSError as exc:
            errors.append((path, str(exc)))
            break
        if rr.status != 200:
            errors.append((path, rr.status))
    conn.close()


def writer():
    try:
        writes()
    except OSError as exc:
        errors.append(("write", str(exc)))


def writes():
    for i in range(4):
        rr = srv.request("POST", "/api/v1/users", {"username": "tmp%d" % i, "password": "temporary pass 1",
                                                   "role": "viewer"}, token=ALICE)
        if rr.status != 201:
            errors.append(("create", rr.status))
            continue
        rr = srv.request("DELETE", "/api/v1/users/%d" % rr.json["id"], token=ALICE)
        if rr.status != 200:
            errors.append(("delete", rr.status))


threads = [threading.Thread(target=reader, args=(n,)) for n in range(6)] + [threading.Thread(target=writer)]
[t.start() for t in threads]
[t.join() for t in threads]
check(not errors, "parallel requests all succeed: %r" % errors[:5])
r = srv.request("HEAD", "/healthz")
check(r.status == 200 and r.body == b"", "HEAD answers without a body")

# ---- founder break-glass login ------------------------------------------------------------------
r = srv.request("POST", "/api/v1/auth/login", {"username": "elohim_founder", "password": "not it at all!!"})
check(r.status == 401, "founder wrong password is 401")
r = srv.request("POST", "/api/v1/auth/login", {"username": "elohim_founder", "password": FOUNDER_PW})
check(r.status == 200 and r.json["user"]["role"] == "super_admin" and r.json["user"].get("founder") is True,
      "founder login: %r" % r)
FOUNDER = r.json["token"] if r.status == 200 else ""
fid = create(FOUNDER, "frank", "member")
r = srv.request("GET", "/api/v1/audit?action=FOUNDER_LOGIN", token=ADMIN)
check(r.status == 200 and len(r.json["entries"]) == 1 and r.json["entries"][0]["actor_name"] == "elohim_founder",
      "FOUNDER_LOGIN audited")
r = srv.request("GET", "/api/v1/audit?target=%s&action=USER_CREATED" % fid, token=ADMIN)
e = r.json["entries"] if r.status == 200 else []
check(len(e) == 1 and e[0]["actor_name"] == "elohim_founder" and e[0]["details"].get("founder") is True,
      "founder action audited as founder: %r" % e)

# ---- malformed requests ---------------------------------------------------------------------------
bad_bodies = [b"{", b"[]", b"\"x\"", b"", b"{\"username\":\"a\",\"username\":\"b\"}", b"\xff\xfe{}",
              b"[" * 5000, b"{\"username\":\"ad\\u0000min\",\"password\":\"x\"}", b"nul\x00l"]
for raw in bad_bodies:
    r = srv.request("POST", "/api/v1/auth/login", raw=raw, headers={"Content-Type": "application/json"})
    check(r.status == 400 and err_code(r) == "bad_request", "malformed body %r: %r" % (raw[:20], r))
for body in ({"username": 1, "password": "x"}, {"username": "admin", "password": None},
             {"username": "admin"}, {"username": {"a": 1}, "password": []}):
    r = srv.request("POST", "/api/v1/auth/login", body)
    check(r.status == 400, "wrong types %r: %r" % (body, r))
r = srv.request("POST", "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PW, "remember": [1, 2]})
check(r.status == 200, "unknown fields are ignored")
r = srv.request("GET", "/api/v1/nothing-here")
check(r.status == 404 and err_code(r) == "not_found", "unknown API route is 404 JSON")
r = srv.request("PATCH", "/api/v1/users")
check(r.status == 405 and "GET" in (r.header("Allow") or ""), "wrong method is 405 with Allow")

# ---- huge bodies and headers --------------------------------------------------------------------
r = srv.request("POST", "/api/v1/auth/login", raw=b"{" + b" " * 70000 + b"}")
check(r.status == 413 and err_code(r) == "too_large", "declared oversized body is 413: %r" % r)
s = srv.connect()
s.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
chunk = b"{" + b" " * 8190
for _ in range(10):
    s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
s.sendall(b"0\r\n\r\n")
out, _ = recv_all(s, 5)
s.close()
check(out.startswith(b"HTTP/1.1 413"), "chunked oversized body is 413: %r" % out[:40])
s = srv.connect()
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
out, _ = recv_all(s, 5)
s.close()
check(not out.startswith(b"HTTP/1.1 200"), "oversized headers are refused: %r" % out[:40])
check(srv.request("GET", "/healthz").status == 200, "alive after huge inputs")

# ---- slow clients ----------------------------------------------------------------------------------
t0 = time.time()
slow_hdr = srv.connect()
slow_hdr.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")   # never finishes the headers
slow_body = srv.connect()
slow_body.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
result = {}


def trickle():
    try:
        for _ in range(20):
            time.sleep(0.4)
            slow_body.sendall(b" ")
    except OSError:
        result["closed_at"] = time.time() - t0
        return
    result["closed_at"] = None


th = threading.Thread(target=trickle)
th.start()
r = srv.request("GET", "/healthz")
check(r.status == 200 and time.time() - t0 < 1.5, "server answers others while slow clients hang")
out, closed = recv_all(slow_hdr, 6)
check(closed and time.time() - t0 < 6, "slow header client cut off after the timeout")
th.join()
out, closed = recv_all(slow_body, 2)
check(result.get("closed_at") is not None or closed, "slow body client cut off: %r" % result)
slow_hdr.close()
slow_body.close()

# ---- per-IP connection limit --------------------------------------------------------------------
idle = [srv.connect() for _ in range(16)]
time.sleep(0.3)
extra = srv.connect()
try:
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    out, closed = recv_all(extra, 3)
except OSError:
    out, closed = b"", True
check(not out.startswith(b"HTTP/1.1 200"), "connection over the per-IP limit refused: %r" % out[:30])
extra.close()
for c in idle:
    c.close()
time.sleep(0.3)
check(srv.request("GET", "/healthz").status == 200, "alive after the per-IP limit")

# ---- static files ---------------------------------------------------------------------------------
r = srv.request("GET", "/")
check(r.status == 200 and b"ElohimOS" in r.body and r.header("Content-Type").startswith("text/html")
      and "default-src" in (r.header("Content-Security-Policy") or ""), "index page")
r = srv.request("GET", "/status.js")
check(r.status == 200 and b"/api/v1/setup/status" in r.body, "status.js served")
os.symlink("/etc/passwd", os.path.join(WEB, "leak.txt"))
os.makedirs(os.path.join(WORK, "outside"), exist_ok=True)
with open(os.path.join(WORK, "outside", "secret.txt"), "w") as f:
    f.write("TOPSECRET")
with open(os.path.join(WEB, ".hidden"), "w") as f:
    f.write("TOPSECRET")
for path in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd",
             "/leak.txt", "/.hidden", "/%2ehidden", "/status.js/../../outside/secret.txt",
             "/..\\..\\etc\\passwd", "/%00", "/web/../../outside/secret.txt", "//etc/passwd"):
    s = srv.connect()
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out, _ = recv_all(s, 5)
    s.close()
    check(b"root:" not in out and b"TOPSECRET" not in out and not out.startswith(b"HTTP/1.1 200"),
          "traversal %s refused: %r" % (path, out[:40]))
r = srv.request("POST", "/index.html", raw=b"x")
check(r.status == 405, "static files are read-only")

# ---- errors leak no paths or secrets -----------------------------------------------------------------
for r in (srv.request("GET", "/nope.html"), srv.request("POST", "/api/v1/auth/login", raw=b"{")):
    check(WORK.encode() not in r.body and b"/tmp" not in r.body, "no path in error bodies")

# ---- failed-login back-off ------------------------------------------------------------------------
for i in range(3):
    r = srv.request("POST", "/api/v1/auth/login", {"username": "alice", "password": "bad guess %d" % i})
    check(r.status == 401, "alice failure %d is 401" % i)
r = srv.request("POST", "/api/v1/auth/login", {"username": "alice", "password": "alice-password-1"})
check(r.status == 429 and int(r.header("Retry-After") or 0) >= 1,
      "after 3 failures alice is slowed down, even with the right password: %r" % r)
r = srv.request("POST", "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PW})
check(r.status == 200, "another user from the same IP still logs in")
r = srv.request("GET", "/api/v1/audit?action=LOGIN_FAILED&target=%d" % ADM2_ID, token=ADMIN)
check(r.status == 200 and len(r.json["entries"]) == 3, "failed logins audited against the user")
throttled = False
for i in range(12):
    r = srv.request("POST", "/api/v1/auth/login", {"username": "ghost%d" % i, "password": "nope nope"})
    if r.status == 429:
        throttled = True
        break
check(throttled, "failures from one IP are slowed down")
r = srv.request("POST", "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PW})
check(r.status == 429, "the throttled IP waits even for a good login")

# ---- health, readiness, metrics -----------------------------------------------------------------
check(srv.request("GET", "/readyz").status == 200, "readyz")
r = srv.request("GET", "/metrics")
text = r.body.decode()
check(r.status == 200 and r.header("Content-Type").startswith("text/plain"), "metrics content type")
for needle in ('elohim_http_requests_total{method="POST",route="/api/v1/auth/login",status="401"}',
               'elohim_http_request_duration_seconds_bucket{route="/healthz",le="+Inf"}',
               "elohim_embedding_duration_seconds_bucket{le=\"0.001\"} 0",
               "elohim_embedding_duration_seconds_bucket{le=\"0.5\"} 0",
               "# TYPE elohim_gpu_operations_total counter", "elohim_active_sessions ",
               "elohim_users 4", "elohim_build_info{", "# TYPE elohim_sql_queries_total counter",
               "# TYPE elohim_vector_search_duration_seconds histogram"):
    check(needle in text, "metrics have %s" % needle)
with open(os.path.join(WORK, "metrics.txt"), "w") as f:
    f.write(text)

# ---- secrets at rest ------------------------------------------------------------------------------
check(srv.stop() == 0, "second clean exit")
blob = b""
for name in os.listdir(data):
    with open(os.path.join(data, name), "rb") as f:
        blob += f.read()
check(FOUNDER_PW.encode() not in blob and ADMIN_PW.encode() not in blob, "no plaintext password on disk")
check(ADMIN.encode() not in blob and FOUNDER.encode() not in blob, "no plaintext session token on disk")
db = sqlite3.connect(os.path.join(data, "elohim.db"))
check(all(h.startswith("$argon2id$") for (h,) in db.execute("SELECT pw_hash FROM users")), "argon2id hashes")
(fh,) = db.execute("SELECT value FROM settings WHERE key='founder.hash'").fetchone()
check(fh.startswith("$argon2id$"), "founder hash is argon2id")
check(db.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "database in WAL mode")
check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "database intact after shutdown")
try:
    db.execute("UPDATE audit_log SET action='X' WHERE id=1")
    db.commit()
    check(False, "audit_log UPDATE must be refused")
except sqlite3.DatabaseError as exc:
    check("append-only" in str(exc), "audit_log is append-only")
db.close()
check(oct(os.stat(os.path.join(data, "audit.key")).st_mode & 0o777) == "0o600", "audit.key is 0600")

print("%d passed, %d failed" % (PASSED, FAILED))
sys.exit(1 if FAILED else 0)
