"""A local GCS emulator for the tests: `python tests/gcs_emulator.py` prints its port, then serves.

It is PyPI's gcp-storage-emulator (its request handler and in-memory storage: the JSON API,
uploads simple, multipart and resumable, ranged downloads) served from a threading HTTP server
on 127.0.0.1 and a free port. Not the package's own `gcp-storage-emulator start`: that serves one
connection at a time, and pyarrow's GcsFileSystem keeps a whole-object download open while it
issues ranged reads on another connection, so a dataset file larger than the socket buffers
never finishes reading through it (real GCS serves both at once).

It runs in a process of its own, never in the test process: pyarrow holds the GIL in some
blocking calls, which would stop a server thread in the same process from answering.
Stop it with SIGTERM (the fixture in tests/conftest.py does, by its pid).
"""

from __future__ import annotations

import http.server
import signal
import sys
from functools import partial

from gcp_storage_emulator.server import RequestHandler
from gcp_storage_emulator.storage import Storage


class QuietHandler(RequestHandler):
    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a client that closes a download early (pyarrow does, after a ranged read) resets the
        # connection mid-write: expected, not worth a traceback
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main() -> None:
    server = Server(("127.0.0.1", 0), partial(QuietHandler, Storage(use_memory_fs=True)))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
