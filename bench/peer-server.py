"""peer-server.py - the load test's peer: Python's standard-library
ThreadingHTTPServer answering GET /healthz with the same small JSON body as
`elohim serve`. Prints "listening on PORT" once bound.

usage: peer-server.py [PORT]   (0 or absent: any free port)"""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b'{"status":"ok"}\n'
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
srv.daemon_threads = True
print("listening on", srv.server_address[1], flush=True)
srv.serve_forever()
