"""harness.py - start `elohim serve` on a random loopback port and talk to it
(python3 standard library only). Used by the server's integration tests."""
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import time


class Server:
    def __init__(self, binary, data, web=None, config=None, env=None):
        self.binary, self.data, self.web, self.config = binary, data, web, config
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.port = None
        self.token = None
        self.stdout_lines = []
        self.err_path = data.rstrip("/") + ".stderr"

    def start(self, timeout=15):
        cmd = [self.binary, "serve", "--data", self.data, "--listen", "127.0.0.1:0"]
        if self.web:
            cmd += ["--web", self.web]
        if self.config:
            cmd += ["--config", self.config]
        self.err = open(self.err_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err, env=self.env)
        deadline = time.time() + timeout
        buf = b""
        while time.time() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.decode()
                    self.stdout_lines.append(line)
                    if line.startswith("setup token: "):
                        self.token = line.split(": ", 1)[1].strip()
                    if "listening on http://" in line:
                        self.port = int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
                        return self
            if self.proc.poll() is not None:
                break
        raise RuntimeError("server did not start: %s" % open(self.err_path).read()[-2000:])

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("server did not stop within %ss" % timeout)
        self.err.close()
        return self.proc.returncode

    def stderr_text(self):
        with open(self.err_path) as f:
            return f.read()

    def request(self, method, path, body=None, token=None, cookie=None, headers=None, raw=None,
                timeout=20):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if cookie:
            h["Cookie"] = cookie
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        text = r.read()
        conn.close()
        parsed = None
        ctype = r.getheader("Content-Type", "")
        if ctype.startswith("application/json") and text:
            parsed = json.loads(text)
        return Response(r.status, r, text, parsed)

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


class Response:
    def __init__(self, status, raw, body, data):
        self.status, self.raw, self.body, self.json = status, raw, body, data

    def header(self, name):
        return self.raw.getheader(name)

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:200])


def recv_all(sock, timeout):
    """Reads until the peer closes or `timeout` passes; returns (bytes, closed)."""
    sock.settimeout(0.2)
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return out, True
        if not chunk:
            return out, True
        out += chunk
    return out, False
