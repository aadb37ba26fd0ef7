"""The per-replica metric the local autoscaler reads, one reading at a time.

`sample(metric, ...)` returns a replica's current value of one of `SUPPORTED_METRICS`:
in-flight requests and the request rate come from the replica's /metrics (read with
`runtime.serve.metrics.parse_metrics`, the one parser of that format), CPU use from /proc.
Rates need the previous counter reading, which the caller keeps and passes back in.
"""

from __future__ import annotations

import http.client
import os

from runtime.fleet.state import start_time
from runtime.serve.metrics import parse_metrics

__all__ = ["SUPPORTED_METRICS", "http_get", "parse_metrics", "sample"]

# Metrics the local autoscaler can read, and how.
SUPPORTED_METRICS = {
    "inflight_requests": "gpufleet_serve_inflight_requests from each replica's /metrics",
    "requests_per_target": "requests per minute per replica, the rate of gpufleet_serve_requests_total",
    "cpu_utilization": "the replica process's CPU time as a percent of one core, from /proc",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")

Reading = tuple[float, float]  # (time, counter): the previous reading of a rate metric


def http_get(port: int, path: str, timeout: float = 0.5) -> tuple[int, bytes]:
    """GET http://127.0.0.1:port/path: (status, body); raises OSError when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError):
        return None


def _rate(prev: Reading | None, now: float, counter: float, per_s: float) -> float | None:
    return None if prev is None else per_s * max(0.0, counter - prev[1]) / max(now - prev[0], 1e-6)


def sample(metric: str, pid: int, port: int, prev: Reading | None, now: float) -> tuple[float | None, Reading | None]:
    """(the replica's `metric` now, or None when it cannot be read yet; the reading to pass next time)."""
    if metric == "cpu_utilization":
        ticks = _cpu_ticks(pid)
        if ticks is None:
            return None, prev
        value = _rate(prev, now, ticks / CLK_TCK, 100.0) if start_time(pid) is not None else None
        return value, (now, ticks / CLK_TCK)
    try:
        code, body = http_get(port, "/metrics")
    except OSError:
        return None, prev
    if code != 200:
        return None, prev
    inflight, total = parse_metrics(body.decode(errors="replace"))
    if metric == "requests_per_target":
        return _rate(prev, now, total, 60.0), (now, total)
    return inflight, prev
