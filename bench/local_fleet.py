"""Benchmark: the local target's load balancer and autoscaler, each figure against its baseline, in one run.

1. least_connections vs round_robin (the baseline): two replicas behind HAProxy, one 3 x slower
   (`--test-delay-ms` per forward pass, `--max-batch-size 1` so it applies per request), under an
   open-loop load at 70% of the fleet's capacity. Target: p99(leastconn) <= 0.5 x p99(roundrobin).
2. HAProxy's added latency: one replica with no delay, called directly (the baseline) and through
   HAProxy, one request at a time on a keep-alive connection, interleaved in blocks.
   Target: p50 difference <= 1 ms.
3. Scale-out reaction: one replica (capacity 50 requests/s), then a step to 80 requests/s. From the
   in-flight metric crossing the target (seen by this script polling the replica's /metrics at
   10 Hz, and as the autoscaler saw it) to the new replica ready behind HAProxy.
   Target: <= scale_out_cooldown_s + the replica's start time + 2 s.

Writes bench/results/local_fleet.json and bench/results/local_fleet.png (p99 per second for both
algorithms; the scale-out timeline).

    .venv/bin/python bench/local_fleet.py            # about 2 minutes
    .venv/bin/python bench/local_fleet.py --quick    # about 1 minute
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
BODY = json.dumps({"instances": [[0.5] * 8]}).encode()


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_base(span: int) -> int:
    from runtime.fleet.state import port_free

    while True:
        base = random.randrange(20000, 40000)
        if all(port_free(p) for p in range(base, base + span + 1)):
            return base


def write_spec(work: Path, name: str, algorithm: str, rmin: int, rmax: int, autoscaling=None) -> Path:
    doc = {"name": name,
           "serving": {"instance_type": "g5.xlarge", "replicas": {"min": 1, "max": 4}, "max_batch_size": 1,
                       "drain_timeout_s": 10, "load_balancer": {"algorithm": algorithm}},
           "local": {"ranks": 1, "replicas": {"min": rmin, "max": rmax}, "base_port": free_base(2 * rmax)}}
    if autoscaling:
        doc["serving"]["autoscaling"] = autoscaling
    path = work / f"{name}.yaml"
    path.write_text(json.dumps(doc))
    return path


class Fleet:
    """`up` on enter, `down` on exit (by pid), through the local target (infra.targets.local)."""

    def __init__(self, spec: Path, model: Path, delays):
        self.spec, self.model, self.delays = spec, model, delays

    def __enter__(self):
        from infra.target_names import LOCAL
        from infra.targets import get_target

        self.target = get_target(LOCAL)
        self.target.up(str(self.spec), model=str(self.model), test_delay_ms=self.delays)
        self.status = self.target.status(str(self.spec))
        self.port = int(self.status["url"].rsplit(":", 1)[1])
        return self

    def __exit__(self, *exc):
        self.target.down(str(self.spec))


def open_load(port: int, rate, seconds: float, label: str):
    from infra.targets.local.load import open_loop, run

    def tick(t, results):
        if int(t) % 5 == 0:
            failed = sum(1 for r in results if r.status != 200)
            say(f"  {label}: {t:4.0f}/{seconds:.0f} s, {len(results)} answered, {failed} failed")

    return run(open_loop("127.0.0.1", port, "/v1/predict", BODY, rate, seconds, on_tick=tick))


def bench_algorithms(work: Path, model: Path, fast_ms: float, seconds: float) -> dict:
    from infra.targets.local.load import percentile, summarize

    capacity = 1000.0 / fast_ms + 1000.0 / (3 * fast_ms)
    rate = 0.7 * capacity
    out = {"fast_ms": fast_ms, "slow_ms": 3 * fast_ms, "capacity_rps": capacity, "rate_rps": rate, "seconds": seconds}
    for algorithm in ("round_robin", "least_connections"):
        say(f"[1/3] {algorithm}: 2 replicas ({fast_ms:g} ms and {3 * fast_ms:g} ms per request), "
            f"{rate:.0f} requests/s open loop for {seconds:.0f} s")
        with Fleet(write_spec(work, f"b-{algorithm[:5]}", algorithm, 2, 2), model, [fast_ms, 3 * fast_ms]) as f:
            open_load(f.port, 10.0, 1.5, "warm-up")
            results = open_load(f.port, rate, seconds, algorithm)
        s = summarize(results, seconds)
        s["p99_per_second_ms"] = [
            (1000 * (percentile([r.latency for r in results if sec <= r.due < sec + 1 and r.status == 200], 99) or 0))
            for sec in range(int(seconds))]
        out[algorithm] = s
        say(f"  {algorithm}: p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, failed {s['failed']}")
    out["p99_ratio"] = out["least_connections"]["p99_ms"] / out["round_robin"]["p99_ms"]
    out["pass"] = out["p99_ratio"] <= 0.5
    return out


def bench_overhead(work: Path, model: Path, n: int) -> dict:
    from infra.targets.local.load import closed_loop, percentile, run

    say(f"[2/3] HAProxy overhead: 1 replica, {n} requests each way, one at a time, interleaved in blocks of 50")
    with Fleet(write_spec(work, "b-overhead", "round_robin", 1, 1), model, [0.0]) as f:
        replica = f.status["replicas"][0]["port"]
        direct, via = [], []
        run(closed_loop("127.0.0.1", replica, "/v1/predict", BODY, 100))  # warm-up
        run(closed_loop("127.0.0.1", f.port, "/v1/predict", BODY, 100))
        for _ in range(max(1, n // 50)):
            direct += run(closed_loop("127.0.0.1", replica, "/v1/predict", BODY, 50))
            via += run(closed_loop("127.0.0.1", f.port, "/v1/predict", BODY, 50))
    d50, v50 = 1000 * percentile(direct, 50), 1000 * percentile(via, 50)
    out = {"requests_each": len(direct), "direct_p50_ms": d50, "haproxy_p50_ms": v50,
           "direct_p99_ms": 1000 * percentile(direct, 99), "haproxy_p99_ms": 1000 * percentile(via, 99),
           "added_p50_ms": v50 - d50, "ratio_p50": v50 / d50}
    out["pass"] = out["added_p50_ms"] <= 1.0
    say(f"  direct p50 {d50:.2f} ms, via HAProxy p50 {v50:.2f} ms: +{v50 - d50:.2f} ms")
    return out


def bench_scale_out(work: Path, model: Path, cooldown_s: int) -> dict:
    from infra.targets.local.stack import stack_dir
    from runtime.fleet import state as st
    from runtime.serve.metrics import parse_metrics

    say("[3/3] scale-out reaction: 1 replica at 20 ms per request (50 requests/s), inflight target 1, "
        f"scale-out cooldown {cooldown_s} s; 10 requests/s, then a step to 80 requests/s")
    a = {"metric": "inflight_requests", "target": 1, "scale_out_cooldown_s": cooldown_s,
         "scale_in_cooldown_s": 300, "warmup_s": 1}
    spec = write_spec(work, "b-scale", "least_connections", 1, 2, a)
    with Fleet(spec, model, [20.0]) as f:
        directory = stack_dir("b-scale")
        replica = f.status["replicas"][0]["port"]
        raw, stop = [], threading.Event()

        def poll():  # what the replica reports, independently of the autoscaler
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{replica}/metrics", timeout=1) as resp:
                        inflight, _ = parse_metrics(resp.read().decode())
                    if inflight is not None:
                        raw.append((time.time(), inflight))
                except OSError:
                    pass
                time.sleep(0.1)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        t0 = time.time()
        results = open_load(f.port, lambda t: 10.0 if t < 3 else 80.0, 15.0, "step")
        stop.set()
        th.join()
        events = st.read_decisions(directory)
    ready = next(e for e in events if e.get("event") == "ready" and "scale_out" in e.get("reason", "") and e["time"] > t0)
    decision = next(e for e in events if e.get("action") == "scale_out" and e["time"] > t0)
    crossed_raw = next(t for t, v in raw if v > 1 and t > t0 + 3)  # after the step
    out = {"cooldown_s": cooldown_s, "replica_start_s": ready["start_s"],
           "crossed_raw_to_ready_s": ready["time"] - crossed_raw,
           "crossed_autoscaler_to_ready_s": ready.get("reaction_s"),
           "crossed_raw_to_decision_s": decision["time"] - crossed_raw,
           "bound_s": cooldown_s + ready["start_s"] + 2.0, "failed": sum(1 for r in results if r.status != 200),
           "raw_metric": [(t - t0, v) for t, v in raw], "ready_at": ready["time"] - t0,
           "decision_at": decision["time"] - t0, "decision": decision["reason"]}
    out["pass"] = out["crossed_raw_to_ready_s"] <= out["bound_s"]
    say(f"  metric crossed -> decision {out['crossed_raw_to_decision_s']:.2f} s -> ready "
        f"{out['crossed_raw_to_ready_s']:.2f} s (replica start {ready['start_s']:.2f} s; bound {out['bound_s']:.2f} s)")
    return out


def plot(path: Path, alg: dict, scale: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 7))
    for name, color in (("round_robin", "tab:red"), ("least_connections", "tab:green")):
        series = alg[name]["p99_per_second_ms"]
        a1.plot(range(len(series)), series, color=color, label=f"{name} (p99 {alg[name]['p99_ms']:.0f} ms)")
    a1.set_yscale("log")
    a1.set_ylabel("p99 latency per second (ms)")
    a1.set_xlabel("seconds")
    a1.set_title(f"2 replicas ({alg['fast_ms']:g} ms, {alg['slow_ms']:g} ms per request), "
                 f"open loop at {alg['rate_rps']:.0f} req/s (70% of capacity)")
    a1.legend()
    t = [x for x, _ in scale["raw_metric"]]
    a2.plot(t, [v for _, v in scale["raw_metric"]], color="tab:blue", label="replica r1 in-flight requests")
    a2.axhline(1, color="gray", linestyle=":", label="target")
    a2.axvline(scale["decision_at"], color="tab:green", linestyle="--", label="scale-out decision")
    a2.axvline(scale["ready_at"], color="tab:purple", linestyle="--", label="new replica ready")
    a2.set_xlabel("seconds since the load started (step to 80 req/s at 3 s)")
    a2.set_ylabel("in-flight requests")
    a2.set_title(f"scale-out reaction {scale['crossed_raw_to_ready_s']:.2f} s (bound {scale['bound_s']:.2f} s)")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs (8 s per algorithm, 400 requests each way)")
    ap.add_argument("--fast-ms", type=float, default=10.0, help="per-request delay of the fast replica (the slow one: 3 x)")
    ap.add_argument("--seconds", type=float, help="seconds of load per algorithm (default 20, quick 8)")
    args = ap.parse_args()
    seconds = args.seconds or (8.0 if args.quick else 20.0)

    import torch

    from runtime.model import MLP, save_artifact

    work = Path(tempfile.mkdtemp(prefix="bench-local-"))
    os.environ["GPUFLEET_BUILD_DIR"] = str(work / "build")
    torch.manual_seed(0)
    model = save_artifact(work / "model", "mlp", MLP(8, 2, (16,)), {"n_features": 8, "classes": [0, 1], "hidden": [16]})
    t0 = time.monotonic()
    alg = bench_algorithms(work, model, args.fast_ms, seconds)
    over = bench_overhead(work, model, 400 if args.quick else 1000)
    scale = bench_scale_out(work, model, cooldown_s=5)
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / "local_fleet.png"
    plot(png, alg, scale)
    doc = {"bench": "local_fleet", "quick": args.quick, "cpus": os.cpu_count(), "wall_s": time.monotonic() - t0,
           "load_balancing": alg, "haproxy_overhead": over, "scale_out": scale}
    (RESULTS / "local_fleet.json").write_text(json.dumps(doc, indent=1))
    rr, lc = alg["round_robin"], alg["least_connections"]
    print(f"{'figure':42} {'measured':>12} {'baseline':>12} {'ratio':>7}  target")
    print(f"{'p99 least_connections vs round_robin (ms)':42} {lc['p99_ms']:12.1f} {rr['p99_ms']:12.1f} "
          f"{alg['p99_ratio']:7.2f}  <= 0.50 {'ok' if alg['pass'] else 'MISSED'}")
    print(f"{'p50 via HAProxy vs direct (ms)':42} {over['haproxy_p50_ms']:12.2f} {over['direct_p50_ms']:12.2f} "
          f"{over['ratio_p50']:7.2f}  +{over['added_p50_ms']:.2f} ms <= 1 ms {'ok' if over['pass'] else 'MISSED'}")
    print(f"{'scale-out reaction vs bound (s)':42} {scale['crossed_raw_to_ready_s']:12.2f} {scale['bound_s']:12.2f} "
          f"{scale['crossed_raw_to_ready_s'] / scale['bound_s']:7.2f}  <= 1.00 {'ok' if scale['pass'] else 'MISSED'}")
    print(f"failed requests: rr {rr['failed']}, lc {lc['failed']}, scale-out {scale['failed']}")
    print(f"wrote {RESULTS / 'local_fleet.json'} and {png} ({doc['wall_s']:.0f} s)")
    return 0 if alg["pass"] and over["pass"] and scale["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
