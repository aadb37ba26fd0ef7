"""Benchmark: gpufleet serve (batching on and off) against FastAPI, LitServe and Ray Serve.

    sudo-less root:  .venv/bin/python bench/serve_bench.py [--quick] [--rounds N] [--duration S]

What it measures, with `hey` as the external load generator (one-row requests, 64 concurrent):
- small model (MLP 64-256-256-2): ours with batching, ours without (max_batch_size 1), and the
  peers; plus ours at concurrency 1 (p50 must stay <= 1 ms: a lone request never waits for the
  batch timer);
- heavy model (MLP 64-2048-2048-2048-2): ours with batching vs without, at saturation.
Each row reports requests/s, p50, p99, non-200 answers and resident memory (the server's whole
process tree, read from /proc after its runs). Noise on a 2-core machine is large, so every
round runs each server once, in an order that rotates between rounds, and rows report the
median over rounds (each round's figures are in the JSON).

Isolation: Ray binds every interface, so the whole benchmark re-runs itself inside a private
network namespace (`unshare -n`, loopback only) when it can; without one, Ray is left out and
the output says why. Results go to bench/results/serve_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PEERS = ROOT / "bench" / "serve_peers.py"
TRANSIENT = {"small/ray serve batch"}


def make_models(tmp: Path) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from runtime.model import MLP, save_artifact

    torch.manual_seed(0)
    out = {}
    for name, hidden in (("small", (256, 256)), ("heavy", (2048, 2048, 2048))):
        out[name] = str(save_artifact(tmp / name, "mlp", MLP(64, 2, hidden), {"n_features": 64, "classes": [0, 1], "hidden": list(hidden)}))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process; `start()` waits until a one-row prediction answers 200."""

    def __init__(self, name: str, argv: list[str], port: int, startup_s: float = 60):
        self.name, self.argv, self.port, self.startup_s = name, argv, port, startup_s
        self.proc: subprocess.Popen | None = None
        self.rss_mb = 0.0
        self.error = None

    def start(self, body: bytes) -> bool:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        end = time.monotonic() + self.startup_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/predict", data=body,
                                             headers={"content-type": "application/json"})
                if urllib.request.urlopen(req, timeout=2).status == 200:
                    return True
            except OSError:
                time.sleep(0.3)
        self.log.seek(0)
        self.error = f"did not start within {self.startup_s:.0f} s: " + self.log.read()[-600:].decode(errors="replace")
        self.stop()
        return False

    def measure_rss(self) -> None:
        self.rss_mb = max(self.rss_mb, tree_rss_mb(self.proc.pid))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the server and its children
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except OSError:
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            m = re.search(r"VmRSS:\s+(\d+) kB", open(f"/proc/{p}/status").read())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total / 1024


def hey(port: int, body_file: str, concurrency: int, seconds: float) -> dict:
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json",
                          "-D", body_file, f"http://127.0.0.1:{port}/v1/predict"],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {int(p): float(v) * 1000 for p, v in re.findall(r"(\d+)% in ([\d.]+) secs", out)}
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    errors = len(re.findall(r"^\s+\[\d+\]\s+(?:Get|Post)", out, re.M))
    return {"rps": rps, "p50_ms": pct.get(50, float("nan")), "p99_ms": pct.get(99, float("nan")),
            "non200": sum(n for c, n in codes.items() if c != 200) + errors}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round of 3 s per server")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of load per measurement")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--only", default="", help="comma-separated row names to run (default all)")
    ap.add_argument("--no-netns", action="store_true", help="do not re-run inside a private network namespace")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve_bench.json"))
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3.0

    if not args.no_netns and os.environ.get("GPUFLEET_BENCH_NETNS") != "1" and os.geteuid() == 0 and shutil.which("unshare"):
        cmd = " ".join(map(_quote, [PY, *sys.argv]))
        env = dict(os.environ, GPUFLEET_BENCH_NETNS="1")
        return subprocess.call(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {cmd}"], env=env)
    in_netns = os.environ.get("GPUFLEET_BENCH_NETNS") == "1"
    if not shutil.which("hey"):
        print("hey not found: apt-get install -y hey", file=sys.stderr)
        return 1

    tmp = Path(tempfile.mkdtemp(prefix="serve_bench_"))
    models = make_models(tmp)
    body = json.dumps({"instances": [[0.5] * 64]}).encode()
    body_file = tmp / "body.json"
    body_file.write_bytes(body)

    def ours(model, batch):
        port = free_port()
        return Server(f"gpufleet serve ({'batch 64' if batch > 1 else 'no batching'})",
                      [PY, "-m", "runtime.serve", "--model", models[model], "--port", str(port),
                       "--max-batch-size", str(batch), "--queue-size", "4096"], port)

    def peer(kind, name):
        port = free_port()
        return Server(name, [PY, str(PEERS), kind, models["small"], str(port)], port, startup_s=120)

    # (row name, model, concurrency, server factory)
    plan = [
        ("small/ours batch", "small", args.concurrency, lambda: ours("small", 64)),
        ("small/ours no-batch", "small", args.concurrency, lambda: ours("small", 1)),
        ("small/ours batch c=1", "small", 1, None),  # same server as the first row
        ("small/fastapi plain", "small", args.concurrency, lambda: peer("fastapi", "FastAPI+uvicorn, no batching")),
        ("small/litserve batch", "small", args.concurrency, lambda: peer("litserve", "LitServe, batch 64")),
        ("small/ray serve batch", "small", args.concurrency, lambda: peer("ray", "Ray Serve, batch 64")),
        ("heavy/ours batch", "heavy", args.concurrency, lambda: ours("heavy", 64)),
        ("heavy/ours no-batch", "heavy", args.concurrency, lambda: ours("heavy", 1)),
    ]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    skipped: dict[str, str] = {}
    if not in_netns:
        skipped["small/ray serve batch"] = "Ray binds every interface; no private network namespace here (needs root and unshare)"
    for mod, row in (("fastapi", "small/fastapi plain"), ("litserve", "small/litserve batch"), ("ray", "small/ray serve batch")):
        if _missing(mod):
            skipped[row] = f"python package {mod} is not installed"
    rows = [r for r in plan if (not only or r[0] in only) and r[0] not in skipped]

    # Servers stay up for the whole run (idle ones take no CPU), except Ray: its background
    # processes keep using CPU while idle, so it runs only during its own measurements.
    servers: dict[str, Server] = {}
    for name, model, conc, factory in rows:
        if factory is None:
            continue
        s = factory()
        servers[name] = s
        if name in TRANSIENT:
            continue
        print(f"starting {name} ...", flush=True)
        if not s.start(body):
            skipped[name] = s.error
            del servers[name]
            continue
        hey(s.port, str(body_file), args.concurrency, 1.0)  # warm-up, not recorded
    servers["small/ours batch c=1"] = servers.get("small/ours batch")
    rows = [r for r in rows if servers.get(r[0]) is not None]

    results: dict[str, list] = {r[0]: [] for r in rows}
    try:
        for rnd in range(args.rounds):
            order = rows[rnd % len(rows):] + rows[:rnd % len(rows)]
            for name, model, conc, _ in order:
                s = servers[name]
                if name in skipped:
                    continue
                if name in TRANSIENT:
                    print(f"starting {name} ...", flush=True)
                    if not s.start(body):
                        skipped[name] = s.error
                        continue
                    hey(s.port, str(body_file), conc, 1.0)
                m = hey(s.port, str(body_file), conc, args.duration)
                s.measure_rss()
                if name in TRANSIENT:
                    s.stop()
                results[name].append(m)
                print(f"  round {rnd + 1}/{args.rounds} {name:24s} {m['rps']:9.0f} req/s  p50 {m['p50_ms']:6.2f} ms  "
                      f"p99 {m['p99_ms']:7.2f} ms  non-200 {m['non200']}", flush=True)
    finally:
        for s in {id(s): s for s in servers.values() if s}.values():
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    summary = {}
    print(f"\nmedian of {args.rounds} round(s), {args.duration:g} s each, one-row requests, hey "
          f"(cores: {os.cpu_count()}, netns: {in_netns})")
    print(f"{'row':26s} {'conc':>4s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-200':>8s} {'RSS MB':>8s}")
    for name, model, conc, _ in rows:
        ms = results[name]
        if not ms:
            continue
        med = {k: statistics.median(m[k] for m in ms) for k in ("rps", "p50_ms", "p99_ms")}
        med["non200"] = sum(m["non200"] for m in ms)
        med["rss_mb"] = round(servers[name].rss_mb, 1)
        summary[name] = {"concurrency": conc, "rounds": ms, **med}
        print(f"{name:26s} {conc:4d} {med['rps']:9.0f} {med['p50_ms']:8.2f} {med['p99_ms']:8.2f} {med['non200']:8d} {med['rss_mb']:8.1f}")
    for name, why in skipped.items():
        print(f"{name:26s} left out: {why}")
    checks = _checks(summary)
    for c in checks:
        print(("PASS " if c["ok"] else "FAIL ") + c["what"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rounds": args.rounds, "duration_s": args.duration, "concurrency": args.concurrency,
                                          "netns": in_netns, "rows": summary, "left_out": skipped, "checks": checks}, indent=2))
    print(f"wrote {args.out}")
    return 0


def _checks(s: dict) -> list[dict]:
    out = []
    ours = s.get("small/ours batch")
    peers = [s[k] for k in ("small/fastapi plain", "small/litserve batch", "small/ray serve batch") if k in s]
    if ours and peers:
        best = max(p["rps"] for p in peers)
        plain = s.get("small/fastapi plain")
        out.append({"what": f"small: batching {ours['rps']:.0f} req/s >= best peer {best:.0f}", "ok": ours["rps"] >= best})
        if plain:
            out.append({"what": f"small: p99 {ours['p99_ms']:.2f} ms <= plain FastAPI's {plain['p99_ms']:.2f} ms",
                        "ok": ours["p99_ms"] <= plain["p99_ms"]})
    if "small/ours batch c=1" in s:
        p50 = s["small/ours batch c=1"]["p50_ms"]
        out.append({"what": f"small: concurrency 1 p50 {p50:.2f} ms <= 1 ms", "ok": p50 <= 1.0})
    if ours:
        out.append({"what": f"small: resident memory {ours['rss_mb']:.0f} MB <= 400 MB", "ok": ours["rss_mb"] <= 400})
    on, off = s.get("heavy/ours batch"), s.get("heavy/ours no-batch")
    if on and off:
        out.append({"what": f"heavy: batching {on['rps']:.0f} req/s >= 3 x no batching {off['rps']:.0f}, "
                            f"p99 {on['p99_ms']:.1f} <= {off['p99_ms']:.1f} ms",
                    "ok": on["rps"] >= 3 * off["rps"] and on["p99_ms"] <= off["p99_ms"]})
    return out


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


if __name__ == "__main__":
    raise SystemExit(main())
