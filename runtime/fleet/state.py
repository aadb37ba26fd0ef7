"""A local stack's state directory, and the process bookkeeping the manager and the target share.

The local target chooses the directory (build/<name>/local/) and passes it to the manager:
    fleet-config.json   what the fleet manager runs (runtime.fleet.config): written by `up`
    manager.pid         the fleet manager's process record (pid and start time)
    fleet.json          the manager's view, rewritten every tick: replicas, HAProxy, last decision
    decisions.jsonl     every scaling decision and replacement, one JSON object per line
    haproxy.cfg, haproxy.sock, haproxy.log, manager.log, replicas/<name>.log|.pid
    data/, model/       the partitioned example data and the trained model

A process is identified by its pid *and* its start time (from /proc), so a pid the kernel has
reused for something else is never signalled.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

FLEET_CONFIG = "fleet-config.json"
FLEET_STATE = "fleet.json"
MANAGER_PID = "manager.pid"
DECISIONS = "decisions.jsonl"
HAPROXY_CONFIG = "haproxy.cfg"
HAPROXY_SOCKET = "haproxy.sock"


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if fields[0] == "Z":  # a zombie has exited: only its parent's wait is left
        return None
    return int(fields[19])


def record(pid: int) -> dict:
    return {"pid": pid, "start": start_time(pid)}


def alive(rec: dict | None) -> bool:
    if not rec or not rec.get("pid"):
        return False
    st = start_time(int(rec["pid"]))
    return st is not None and (rec.get("start") is None or st == rec["start"])


def signal_process(rec: dict | None, sig: int = signal.SIGTERM) -> bool:
    """Send `sig` to the recorded process if it is still that process; True if sent."""
    if not alive(rec):
        return False
    try:
        os.kill(int(rec["pid"]), sig)
        return True
    except ProcessLookupError:
        return False


def wait_gone(recs: list[dict], timeout: float) -> list[dict]:
    """Wait until none of `recs` is alive or `timeout` passes; returns those still alive."""
    end = time.monotonic() + timeout
    left = [r for r in recs if alive(r)]
    while left and time.monotonic() < end:
        time.sleep(0.05)
        left = [r for r in left if alive(r)]
    return left


def port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (SO_REUSEADDR, as HAProxy and uvicorn bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_decisions(directory: Path) -> list[dict]:
    try:
        lines = (directory / DECISIONS).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out
