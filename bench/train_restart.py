"""Benchmark: restart after SIGKILL of one rank, from the kill to the first resumed step.

Issue 4's targets: the first resumed step <= 2.5 s after the kill, and 20 of 20 trials succeed
(torchrun's default, which shares one rendezvous store across restarts, failed about half the
time here; the runtime launches with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1).

Each trial runs `python -m runtime.train --workload mlp --nproc 2 --max-restarts 1
--checkpoint-every 5` with GPUFLEET_TRAIN_FAULT=1:STEP (rank 1 SIGKILLs itself at STEP on the
first attempt) and reads OUT/events.jsonl: `kill` (written just before the kill), `init` (the new
rank 0 imported and joined the process group) and `first_step` (its first resumed step done).

    .venv/bin/python bench/train_restart.py            # 20 trials
    .venv/bin/python bench/train_restart.py --quick    # 3 trials
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
    ap.add_argument("--trials", type=int)
    a = ap.parse_args()
    trials = a.trials or (3 if a.quick else 20)
    import numpy as np
    tmp = tempfile.mkdtemp(prefix="bench-restart-")
    sys.path.insert(0, os.path.join(ROOT, "tests", "train"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4096, 16))
    names = [f"f{i}" for i in range(16)] + ["y"]
    data = os.path.join(tmp, "d.csv")
    np.savetxt(data, np.column_stack([x, (x[:, 0] > 0).astype(int)]), delimiter=",", header=",".join(names),
               comments="", fmt="%.9g")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, "GPUFLEET_TRAIN_FAULT": "1:23"}
    results = []
    for t in range(trials):
        out = os.path.join(tmp, f"t{t}")
        p = subprocess.run([sys.executable, "-m", "runtime.train", "--workload", "mlp", "--data", data, "--label", "y",
                            "--hidden", "64,64", "--batch-size", "64", "--epochs", "1", "--nproc", "2",
                            "--max-restarts", "1", "--checkpoint-every", "5", "--out", out],
                           env=env, capture_output=True, text=True, timeout=300)
        ev = {}
        if os.path.exists(os.path.join(out, "events.jsonl")):
            for line in open(os.path.join(out, "events.jsonl")):
                e = json.loads(line)
                ev.setdefault((e["event"], e["restart"]), e)
        ok = p.returncode == 0 and ("first_step", 1) in ev and ("kill", 0) in ev
        r = {"ok": ok, "exit": p.returncode}
        if ok:
            kill = ev[("kill", 0)]["time"]
            r.update(kill_to_first_step_s=ev[("first_step", 1)]["time"] - kill,
                     kill_to_process_start_s=ev[("init", 1)]["imported"] - kill if ("init", 1) in ev else None,
                     kill_to_group_joined_s=ev[("init", 1)]["time"] - kill if ("init", 1) in ev else None)
        results.append(r)
        print(f"trial {t + 1}/{trials}: " + (f"ok, kill -> first step {r['kill_to_first_step_s']:.2f} s "
                                               f"(imported {r['kill_to_process_start_s']:.2f}, joined "
                                               f"{r['kill_to_group_joined_s']:.2f})" if ok else f"FAILED (exit {p.returncode})"),
              file=sys.stderr, flush=True)
    good = [r["kill_to_first_step_s"] for r in results if r["ok"]]
    summary = {"trials": trials, "succeeded": len(good), "results": results,
               "kill_to_first_step_s_median": statistics.median(good) if good else None,
               "kill_to_first_step_s_max": max(good) if good else None,
               "targets": {"kill_to_first_step_s": "<= 2.5", "succeeded": f"{trials}/{trials}"}}
    print(f"succeeded {len(good)}/{trials}; kill -> first resumed step: median "
          f"{summary['kill_to_first_step_s_median'] or float('nan'):.2f} s, max {summary['kill_to_first_step_s_max'] or float('nan'):.2f} s")
    save_result("train_restart", summary)


if __name__ == "__main__":
    main()
