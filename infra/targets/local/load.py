"""An open-loop HTTP load generator: requests arrive at a set rate whatever the server does.

A closed-loop generator (N clients, each waiting for its answer) slows down when a server falls
behind and so hides queueing; here request i is due at the time where the integral of
`rate(t)` reaches i, evenly spread, and is sent then on an idle keep-alive connection (a new
one if none is idle). Latency is measured from the due time, so time spent waiting for a
connection counts (no coordinated omission).

Plain asyncio streams and a minimal HTTP/1.1 client: httpx costs several times more CPU per
request, and the generator shares 2 cores with the fleet it measures.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class Result:
    due: float  # seconds since the run started
    latency: float  # seconds from due time to the full response (or to the failure)
    status: int  # HTTP status, 0 for a transport failure or timeout


class _Pool:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.idle: list = []

    async def get(self):
        if self.idle:
            return self.idle.pop()
        return await asyncio.open_connection(self.host, self.port)

    def put(self, conn) -> None:
        self.idle.append(conn)

    def close(self) -> None:
        for _, w in self.idle:
            w.close()
        self.idle.clear()


async def _request(pool: _Pool, raw: bytes, timeout: float) -> int:
    conn = await pool.get()
    reader, writer = conn
    keep = False
    try:
        writer.write(raw)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, keep = 0, True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        if length:
            await asyncio.wait_for(reader.readexactly(length), timeout)
        return status
    finally:
        if keep:
            pool.put(conn)
        else:
            writer.close()


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def open_loop(host: str, port: int, path: str, body: bytes, rate, duration: float, timeout: float = 10.0,
                    on_tick=None, stop=None) -> list[Result]:
    """Send requests at `rate(t)` per second (a number or a function of seconds since start)
    for `duration` seconds; returns one Result per request. `on_tick(t, results)` is called
    about once a second (progress); `stop()` returning True ends the run early."""
    rate_fn = rate if callable(rate) else (lambda t, r=float(rate): r)
    pool = _Pool(host, port)
    raw = request_bytes(host, port, path, body)
    results: list[Result] = []
    tasks: set = set()
    clock = time.perf_counter  # uvloop's loop.time() has 1 ms resolution
    t0 = clock()

    async def one(due: float):
        try:
            status = await asyncio.wait_for(_request(pool, raw, timeout), timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            status = 0
        results.append(Result(due, clock() - t0 - due, status))

    next_tick, due = 1.0, 0.0
    while due < duration and not (stop and stop()):
        r = max(rate_fn(due), 0.0)
        if r <= 0:
            due += 0.01
            continue
        due += 1.0 / r
        now = clock() - t0
        if due > now:
            await asyncio.sleep(due - now)
        task = asyncio.ensure_future(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if on_tick and due >= next_tick:
            next_tick += 1.0
            on_tick(due, results)
    if tasks:
        await asyncio.wait(list(tasks), timeout=timeout + 1)
    pool.close()
    return sorted(results, key=lambda x: x.due)


async def closed_loop(host: str, port: int, path: str, body: bytes, n: int, timeout: float = 10.0) -> list[float]:
    """`n` requests one after another on one keep-alive connection; latencies in seconds."""
    pool = _Pool(host, port)
    raw = request_bytes(host, port, path, body)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status = await _request(pool, raw, timeout)
        if status != 200:
            raise RuntimeError(f"status {status} from {host}:{port}{path}")
        out.append(time.perf_counter() - t)
    pool.close()
    return out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(q / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def summarize(results: list[Result], duration: float | None = None) -> dict:
    ok = [r.latency for r in results if r.status == 200]
    failed = len(results) - len(ok)
    span = duration or (max((r.due for r in results), default=0) or 1)
    return {"requests": len(results), "failed": failed, "failed_pct": 100.0 * failed / max(len(results), 1),
            "rps": len(results) / span,
            "p50_ms": None if not ok else 1000 * percentile(ok, 50),
            "p90_ms": None if not ok else 1000 * percentile(ok, 90),
            "p99_ms": None if not ok else 1000 * percentile(ok, 99),
            "statuses": {str(s): sum(1 for r in results if r.status == s) for s in sorted({r.status for r in results})}}


def run(coro):
    """Run with uvloop when installed (about twice the requests per CPU second)."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)
