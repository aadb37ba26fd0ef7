"""A FAKE GCE metadata server on 127.0.0.1, for tests: `GET /computeMetadata/v1/<path>` answers the
text in `values` (404 when absent), as the real one does:

- requests without `Metadata-Flavor: Google` get 403; answers carry `Metadata-Flavor: Google`
  and an `ETag` of the value;
- `?wait_for_change=true` holds the request until the value changes (`set`), returning at once
  when `last_etag` is given and differs from the current ETag, and with the current value after
  `timeout_sec` seconds.

Point clients at it with `GCE_METADATA_HOST=fake.host` (host:port, no scheme), as Google's
libraries read it. `requests` records the paths asked for (with their query strings); `waiting`
is set once a `wait_for_change` request is being held, so a test can change a value while a
client waits on it.
"""

from __future__ import annotations

import hashlib
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULTS = {
    "instance/name": "demo-train-x1b2",
    "instance/zone": "projects/123456789/zones/us-central1-a",
    "instance/network-interfaces/0/ip": "10.128.0.7",
    "instance/preempted": "FALSE",
    "instance/maintenance-event": "NONE",
    "project/project-id": "demo-project",
}


def etag(value: str | None) -> str:
    return hashlib.sha1((value or "").encode()).hexdigest()[:16]


class FakeGceMetadata:
    def __init__(self, values: dict | None = None):
        self.values = dict(DEFAULTS, **(values or {}))
        self.requests: list[str] = []
        self.waiting = threading.Event()  # set once a wait_for_change request is being held
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True,
                                        name="fake-gce-metadata")
        self._thread.start()

    def set(self, path: str, value: str | None) -> None:
        """Change (or, with None, remove) a value and wake the requests waiting for it to change."""
        with self._changed:
            if value is None:
                self.values.pop(path, None)
            else:
                self.values[path] = value
            self._changed.notify_all()

    def set_later(self, delay_s: float, path: str, value: str) -> threading.Timer:
        timer = threading.Timer(delay_s, self.set, (path, value))
        timer.daemon = True
        timer.start()
        return timer

    def read(self, path: str, query: dict) -> str | None:
        with self._changed:
            if query.get("wait_for_change") == "true":
                start = etag(self.values.get(path))
                last = query.get("last_etag")
                if last is None or last == start:
                    self.waiting.set()
                    timeout = float(query.get("timeout_sec", 60))
                    self._changed.wait_for(lambda: etag(self.values.get(path)) != (last or start), timeout)
            return self.values.get(path)

    def close(self) -> None:
        with self._changed:
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(fake: FakeGceMetadata):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code: int, text: str = "") -> None:
            body = text.encode()
            self.send_response(code)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", "application/text")
            self.send_header("ETag", etag(text))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            fake.requests.append(self.path)
            if self.headers.get("Metadata-Flavor") != "Google":
                return self._send(403, "Missing Metadata-Flavor:Google header.")
            if not url.path.startswith("/computeMetadata/v1/"):
                return self._send(404)
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            value = fake.read(url.path.removeprefix("/computeMetadata/v1/"), query)
            self._send(404, "") if value is None else self._send(200, value)

    return Handler
