"""HAProxy as the fleet manager drives it: its binary, the per-server options and its runtime API.

The config (rendered by the local target from templates/haproxy.cfg.j2) holds no servers. The
fleet manager adds each replica once its `/readyz` answers, with the spec's health check
(`/readyz`, interval, rise/fall thresholds) and, for weighted_round_robin, its pool's weight; a
replica leaves by `drain` (no new requests), then `maint` and `del server` once its process has
exited. None of this reloads HAProxy, so no connection is dropped.

`observe layer4 error-limit 1 on-error mark-down` takes a replica out at its first refused
connection, before the health check (at least 5 s apart in the spec) would notice; requests
that hit it meanwhile are retried on another replica (`retry-on`, `option redispatch`).
"""

from __future__ import annotations

import csv
import io
import socket
import subprocess
from pathlib import Path

from runtime.errors import OperationFailed
from runtime.fleet.config import HealthCheck

BACKEND = "replicas"
HAPROXY_BIN = "haproxy"
NOT_INSTALLED = "haproxy is not installed: run `make setup` or `apt-get install -y haproxy`"


def server_options(health: HealthCheck, weight: int) -> str:
    return (f"check inter {int(health.interval_s * 1000)}ms rise {health.healthy_threshold} "
            f"fall {health.unhealthy_threshold} weight {weight} observe layer4 error-limit 1 on-error mark-down")


def check_config(path: Path) -> None:
    """`haproxy -c`: raise OperationFailed with HAProxy's message if the config is refused."""
    try:
        out = subprocess.run([HAPROXY_BIN, "-c", "-q", "-f", str(path)], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise OperationFailed(NOT_INSTALLED) from None
    if out.returncode != 0:
        raise OperationFailed(f"haproxy refused {path}: {(out.stderr or out.stdout).strip()}")


class RuntimeAPI:
    """HAProxy's runtime API over its admin socket: one command per connection."""

    def __init__(self, socket_path: str | Path, backend: str = BACKEND, timeout: float = 2.0):
        self.path = str(socket_path)
        self.backend = backend
        self.timeout = timeout

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(self.timeout)
            s.connect(self.path)
            s.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def _server(self, name: str) -> str:
        return f"{self.backend}/{name}"

    def add_server(self, name: str, port: int, weight: int, health: HealthCheck) -> None:
        out = self.command(f"add server {self._server(name)} 127.0.0.1:{port} {server_options(health, weight)}")
        if "New server registered" not in out:
            raise OperationFailed(f"haproxy: add server {name} failed: {out.strip()}")
        self.command(f"enable health {self._server(name)}")
        self.command(f"enable server {self._server(name)}")

    def set_state(self, name: str, state: str) -> str:
        """state: ready | drain | maint."""
        return self.command(f"set server {self._server(name)} state {state}").strip()

    def delete_server(self, name: str) -> bool:
        """Put the server in maintenance and delete it; False while it still holds connections."""
        self.set_state(name, "maint")
        self.command(f"shutdown sessions server {self._server(name)}")
        out = self.command(f"del server {self._server(name)}")
        return "Server deleted" in out or "No such server" in out

    def servers(self) -> dict[str, dict]:
        """{server name: {status, sessions, weight, check}} from `show stat` for the backend."""
        text = self.command("show stat").lstrip("# ")
        out = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") != self.backend or row.get("svname") in ("BACKEND", "FRONTEND", None):
                continue
            out[row["svname"]] = {"status": row.get("status", ""), "sessions": int(row.get("scur") or 0),
                                  "queued": int(row.get("qcur") or 0), "weight": int(row.get("weight") or 0),
                                  "check": row.get("check_status", "")}
        return out
