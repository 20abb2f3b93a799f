"""A stand-in HTTP peer for the integration tests: echo endpoints, a slow one, big
bodies, and a tiny central task server (/api/tasks...). Prints its port, then serves.
Usage: http_standin.py [CERT KEY]; with a certificate and key (PEM), it speaks HTTPS."""

import json
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TASKS = {}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def _json(self, status, obj):
        data = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("x-standin", "yes")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _echo(self):
        u = urlparse(self.path)
        body = self._body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self._json(
            200,
            {
                "method": self.command,
                "path": u.path,
                "query": {k: v[0] for k, v in parse_qs(u.query).items()},
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "json": parsed,
            },
        )

    def _tasks(self):
        parts = [p for p in urlparse(self.path).path.split("/") if p][2:]
        body = self._body()
        req = json.loads(body) if body else {}
        if self.command == "POST" and not parts:
            tid = f"T-{len(TASKS) + 1}"
            TASKS[tid] = {"task_id": tid, "status": "running", "request": req}
            return self._json(200, {"success": True, "data": TASKS[tid]})
        if not parts or parts[0] not in TASKS:
            return self._json(404, {"success": False, "error": "no such task"})
        task = TASKS[parts[0]]
        if self.command == "GET" and len(parts) == 1:
            return self._json(200, {"success": True, "data": task})
        if self.command == "POST" and parts[1:] == ["stop"]:
            task["status"] = "stopped"
            return self._json(200, {"success": True, "data": task})
        if self.command == "POST" and parts[1:] == ["execute"]:
            task["status"] = "executing"
            task["execute"] = req
            return self._json(200, {"success": True, "data": task})
        return self._json(400, {"success": False, "error": "bad request"})

    def _route(self):
        path = urlparse(self.path).path
        if path.startswith("/api/tasks"):
            return self._tasks()
        if path == "/slow":
            time.sleep(3)
            return self._json(200, {"slow": True})
        if path == "/big":
            data = b"x" * 2_000_000
            self.send_response(200)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if path == "/bigstream":
            # No length: the body ends when the connection closes.
            self.send_response(200)
            self.send_header("connection", "close")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"y" * 50_000)
            return
        if path == "/text":
            data = "纯文本".encode()
            self.send_response(201)
            self.send_header("content-type", "text/plain; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        return self._echo()

    def _serve(self):
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            # The runtime hangs up on purpose (timeouts, size limits).
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    if len(sys.argv) > 2:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[1], sys.argv[2])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
