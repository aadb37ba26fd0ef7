"""Benchmark: checkpoint stall and step time while a checkpoint is written, async vs sync save.

Issue 4's targets, 2 ranks on CPU/gloo: for a ~200 MB state (an MLP 256-4096-4096-10 with
Adam: 17.8M parameters x 3 float32 tensors), the training stall per checkpoint <= 50 ms with
asynchronous save (synchronous measured ~285 ms), steps while a checkpoint is being written
no more than 10% slower than steps without, and no deadlock (every run must finish).

Each round runs the runtime (`python -m runtime.train --workload mlp --nproc 2
--checkpoint-every N`) once with async save and once with `--sync-checkpoint`, alternating the
order; stalls and per-step times come from its metrics.json.

    .venv/bin/python bench/train_checkpoint.py            # 3 rounds, 100 steps
    .venv/bin/python bench/train_checkpoint.py --quick    # 1 round, 30 steps
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from common import ROOT, save_result  # noqa: E402  (also puts the repository on sys.path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--hidden", default="4096,4096")
    a = ap.parse_args()
    rounds = a.rounds or (1 if a.quick else 3)
    steps, every, batch = (30, 10, 32) if a.quick else (100, 10, 32)
    import numpy as np
    import pyarrow as pa
    from runtime.data import write_partitioned
    tmp = tempfile.mkdtemp(prefix="bench-ckpt-")
    rows = steps * batch * 2
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 256)).astype(np.float32)
    cols = {f"f{i}": x[:, i] for i in range(256)}
    cols["y"] = rng.integers(0, 10, rows)
    cols["id"] = np.arange(rows)
    ds = os.path.join(tmp, "ds")
    write_partitioned(pa.table(cols), ds, "hash", "id", num_partitions=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    res = {"async": [], "sync": []}
    for r in range(rounds):
        for mode in (["async", "sync"] if r % 2 == 0 else ["sync", "async"]):
            out = os.path.join(tmp, f"{mode}-{r}")
            cmd = [sys.executable, "-m", "runtime.train", "--workload", "mlp", "--data", ds, "--label", "y",
                   "--hidden", a.hidden, "--batch-size", str(batch), "--epochs", "1", "--test-fraction", "0",
                   "--nproc", "2", "--checkpoint-every", str(every), "--keep", "2", "--out", out]
            if mode == "sync":
                cmd.append("--sync-checkpoint")
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if p.returncode != 0:
                raise SystemExit(f"{mode} run failed (deadlock or error):\n{p.stderr[-3000:]}")
            m = json.load(open(os.path.join(out, "metrics.json")))
            secs, writing = m["step_seconds"][2:], m["step_during_checkpoint_write"][2:]  # skip warm-up
            during = [t for t, w in zip(secs, writing) if w]
            idle = [t for t, w in zip(secs, writing) if not w]
            entry = {"stall_s": m["checkpoint_stall_s"], "step_s_median": statistics.median(idle or secs),
                     "step_s_mean_all": statistics.mean(secs),
                     "step_s_while_writing_median": statistics.median(during) if during else None,
                     "state_bytes": os.path.getsize(os.path.join(out, "checkpoints", sorted(
                         os.listdir(os.path.join(out, "checkpoints")))[-1], "state.pt"))}
            res[mode].append(entry)
            print(f"round {r + 1}/{rounds} {mode:5s} stall median {statistics.median(entry['stall_s']) * 1e3:6.1f} ms, "
                  f"step {entry['step_s_median'] * 1e3:6.1f} ms, while writing "
                  f"{(entry['step_s_while_writing_median'] or 0) * 1e3:6.1f} ms", file=sys.stderr, flush=True)
    stall = {k: statistics.median([s for e in v for s in e["stall_s"]]) for k, v in res.items()}
    slow = [e["step_s_while_writing_median"] / e["step_s_median"] for e in res["async"] if e["step_s_while_writing_median"]]
    cost = [e["step_s_mean_all"] / e["step_s_median"] for e in res["async"]]
    summary = {"state_bytes": res["async"][0]["state_bytes"], "rounds": rounds, "runs": res,
               "async_mean_step_over_idle_median": statistics.median(cost),
               "stall_s_median": stall, "async_step_slowdown_while_writing": statistics.median(slow) if slow else None,
               "targets": {"async_stall_s": "<= 0.050", "slowdown": "<= 1.10", "deadlock": "never"}}
    print(f"{'':30s}{'async':>10s}{'sync':>10s}")
    print(f"{'stall per checkpoint (ms)':30s}{stall['async'] * 1e3:10.1f}{stall['sync'] * 1e3:10.1f}")
    if summary["async_step_slowdown_while_writing"]:
        print(f"async: step time while writing / without: {summary['async_step_slowdown_while_writing']:.2f}x")
    print(f"async: mean of all steps / median step without writing: {summary['async_mean_step_over_idle_median']:.2f}x")
    print(f"state: {summary['state_bytes'] / 1e6:.0f} MB; all runs finished (no deadlock)")
    save_result("train_checkpoint", summary)


if __name__ == "__main__":
    main()
