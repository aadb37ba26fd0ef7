"""A fake instance metadata service (IMDSv2), shared by the runtime's tests and the executed
bootstrap's namespaces (tests/bootstrap/netns.py), which hand it a socket made inside one."""

from __future__ import annotations

import http.server
import socket
import threading


class FakeMetadata:
    """IMDSv2: `PUT /latest/api/token` (with the TTL header) issues token-N, and GETs must carry
    an issued token; `values` maps paths under /latest/ to text (404 otherwise), and a test
    changes what it answers (a spot notice, a lifecycle state) by assigning to it. `requests`
    lists the paths asked for, in order.

    It listens on 127.0.0.1 and a free port, or on `sock` (a bound, listening socket) when
    given. With `rotate_tokens`, only the newest token is accepted, as if the older ones had
    expired: that is how a client's renewal after a 401 is tested.
    """

    def __init__(self, values: dict, rotate_tokens: bool = False, sock: socket.socket | None = None):
        self.values, self.rotate_tokens, self.tokens_issued = values, rotate_tokens, 0
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, text=""):
                body = text.encode()
                self.send_response(code)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                if self.path != "/latest/api/token" or "X-aws-ec2-metadata-token-ttl-seconds" not in self.headers:
                    return self._send(400)
                owner.tokens_issued += 1
                self._send(200, f"token-{owner.tokens_issued}")

            def do_GET(self):
                if not owner.valid(self.headers.get("X-aws-ec2-metadata-token")):
                    return self._send(401)
                path = self.path.removeprefix("/latest/")
                owner.requests.append(path)
                value = owner.values.get(path)
                self._send(404) if value is None else self._send(200, value)

        if sock is None:
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        else:
            self.server = http.server.ThreadingHTTPServer(sock.getsockname()[:2], Handler, bind_and_activate=False)
            self.server.socket.close()
            self.server.socket = sock
        self.server.daemon_threads = True
        host, port = self.server.socket.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def valid(self, token) -> bool:
        if not token or not token.startswith("token-") or not token[6:].isdigit():
            return False
        n = int(token[6:])
        return n == self.tokens_issued if self.rotate_tokens else 1 <= n <= self.tokens_issued

    def close(self):
        self.server.shutdown()
        self.server.server_close()
