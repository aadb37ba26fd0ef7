"""`gpufleet demo SPEC`: a load ramp that makes an `up` fleet scale out and back in.

The ramp is open-loop (load.py): low, up to a peak that needs about 70% of
`local.replicas.max` replicas at the autoscaling target, hold, back down, and low again until
the fleet is back at min (or a timeout). The peak is derived from a short probe of the
fleet's latency: a replica at the `inflight_requests` target serves about target / latency
requests per second (Little's law).

Writes build/<name>/local/demo.json (per-second series and the decisions) and demo.png
(replicas, requests per second and p99 latency over time, scaling decisions marked), and
prints a report. The fleet stays up afterwards.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from infra.targets.local.load import closed_loop, open_loop, percentile, run, summarize
from infra.targets.local.processes import manager_alive
from infra.targets.local.stack import load, stack_dir
from runtime.errors import OperationFailed
from runtime.fleet import state as st
from runtime.store import write_json

MAX_RPS = 400.0  # the generator shares 2 cores with the fleet


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def body_for(directory: Path) -> bytes:
    cfg = st.read_json(directory / st.FLEET_CONFIG) or {}
    meta = st.read_json(Path(cfg.get("model", "")) / "model.json") or {}
    n = int(meta.get("n_features", 8))
    return json.dumps({"instances": [[0.5] * n]}).encode()


def profile(low: float, peak: float, hold_s: float):
    """rate(t) and the time the ramp is over (after that: low until scaled in)."""
    t1, t2 = 8.0, 18.0
    t3 = t2 + hold_s
    t4 = t3 + 5.0

    def rate(t: float) -> float:
        if t < t1:
            return low
        if t < t2:
            return low + (peak - low) * (t - t1) / (t2 - t1)
        if t < t3:
            return peak
        if t < t4:
            return peak - (peak - low) * (t - t3) / (t4 - t3)
        return low

    return rate, t4


def series(results, samples, start: float, end: float) -> list[dict]:
    out = []
    for sec in range(int(end) + 1):
        rs = [r for r in results if sec <= r.due < sec + 1]
        ok = [r.latency for r in rs if r.status == 200]
        reps = [n for t, n in samples if sec <= t < sec + 1]
        out.append({"t": sec, "rps": len(rs), "failed": len(rs) - len(ok),
                    "p99_ms": None if not ok else 1000 * percentile(ok, 99),
                    "replicas": reps[-1] if reps else (out[-1]["replicas"] if out else None)})
    return out


def plot(path: Path, points: list[dict], decisions: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [p["t"] for p in points]
    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    axes[0].step(t, [p["replicas"] or 0 for p in points], where="post", color="tab:blue")
    axes[0].set_ylabel("ready replicas")
    axes[1].plot(t, [p["rps"] for p in points], color="tab:green", label="requests/s (offered)")
    axes[1].plot(t, [p["failed"] for p in points], color="tab:red", label="failed/s")
    axes[1].set_ylabel("requests / s")
    axes[1].legend(loc="upper right", fontsize=8)
    axes[2].plot(t, [p["p99_ms"] for p in points], color="tab:purple")
    axes[2].set_ylabel("p99 latency (ms)")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("seconds since the ramp started")
    colors = {"scale_out": "tab:green", "scale_in": "tab:red", "replace": "tab:orange"}
    for d in decisions:
        for ax in axes:
            ax.axvline(d["t"], color=colors.get(d["action"], "gray"), linestyle="--", linewidth=1)
        axes[0].annotate(f"{d['action']} -> {d['desired']}", (d["t"], axes[0].get_ylim()[1]), fontsize=7,
                         rotation=90, va="top", ha="right", color=colors.get(d["action"], "gray"))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_demo(spec_path: str, peak_rps: float | None = None, duration_s: float | None = None, out: str | None = None) -> int:
    r = load(spec_path)
    directory = stack_dir(r.name)
    if not manager_alive(directory):
        raise OperationFailed(f"stack {r.name} is not up: run `gpufleet up {spec_path} --target local` first")
    fleet = st.read_json(directory / st.FLEET_STATE)
    port = int(fleet["url"].rsplit(":", 1)[1])
    body = body_for(directory)
    a = r.spec.serving.autoscaling
    lat = percentile(run(closed_loop("127.0.0.1", port, "/v1/predict", body, 20)), 50)
    per_replica = (a.target if a and a.metric == "inflight_requests" else 1.0) / max(lat, 1e-4)
    if peak_rps is None:
        peak_rps = min(MAX_RPS, 0.7 * r.spec.local.replicas.max * per_replica)
    low = min(peak_rps / 6, 0.3 * per_replica)
    hold = duration_s or 25.0
    rate, ramp_end = profile(low, peak_rps, hold)
    cooldown = a.scale_in_cooldown_s if a else 0
    limit = ramp_end + 3 * cooldown + 30
    _say(f"demo: probe p50 {1000 * lat:.1f} ms; ramp {low:.0f} -> {peak_rps:.0f} -> {low:.0f} requests/s "
         f"(open loop), then {low:.0f}/s until back at {r.spec.local.replicas.min} replica(s) (at most {limit:.0f} s)")
    t_start = time.time()

    def ready_count() -> int:
        f = st.read_json(directory / st.FLEET_STATE) or {}
        return sum(1 for x in f.get("replicas", []) if x["state"] == "ready")

    samples: list[tuple[float, int]] = [(0.0, ready_count())]

    def on_tick(t, results):
        n = ready_count()
        samples.append((t, n))
        recent = [x for x in results if x.due >= t - 1]
        ok = [x.latency for x in recent if x.status == 200]
        p99 = "-" if not ok else f"{1000 * percentile(ok, 99):.0f} ms"
        _say(f"  t={t:5.0f}s  {rate(t):6.0f} req/s offered  replicas {n}  p99 {p99}  "
             f"failed {sum(1 for x in results if x.status != 200)}")

    def stop() -> bool:
        t = time.time() - t_start
        return t > ramp_end + 5 and samples and samples[-1][1] <= r.spec.local.replicas.min

    results = run(open_loop("127.0.0.1", port, "/v1/predict", body, rate, limit, on_tick=on_tick, stop=stop))
    end = max((x.due for x in results), default=0.0)
    decisions = [{**d, "t": d["time"] - t_start} for d in st.read_decisions(directory)
                 if "action" in d and d["time"] >= t_start]
    points = series(results, samples, t_start, end)
    summary = summarize(results, end)
    out_dir = Path(out) if out else directory
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "demo.png"
    plot(png, points, decisions, f"{r.name}: open-loop ramp to {peak_rps:.0f} req/s "
                                 f"({r.spec.serving.load_balancer.algorithm}, {a.metric if a else 'no'} autoscaling)")
    doc = {"stack": r.name, "peak_rps": peak_rps, "low_rps": low, "summary": summary, "series": points,
           "decisions": decisions}
    write_json(out_dir / "demo.json", doc, indent=1)
    reps = [n for _, n in samples]
    print(f"demo report for stack {r.name} ({end:.0f} s of open-loop load)")
    print(f"  requests {summary['requests']}, failed {summary['failed']} ({summary['failed_pct']:.2f}%), "
          f"p50 {summary['p50_ms'] or 0:.1f} ms, p99 {summary['p99_ms'] or 0:.1f} ms")
    print(f"  replicas ready: {min(reps, default=0)} .. {max(reps, default=0)}")
    for d in decisions:
        print(f"  t={d['t']:5.1f}s {d['action']:9} {d['current']} -> {d['desired']}: {d['reason']}")
    print(f"  plot: {png}\n  data: {out_dir / 'demo.json'}")
    print(f"the fleet stays up at {fleet['url']}: try\n"
          f"  curl -s -H 'content-type: application/json' -d '{body.decode()}' {fleet['url']}/v1/predict\n"
          f"  gpufleet status {spec_path}\n"
          f"and stop it with `make down` (gpufleet down {spec_path})")
    return 0
