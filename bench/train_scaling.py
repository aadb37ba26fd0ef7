"""Benchmark: MLP weak scaling and the runtime's overhead against a minimal hand-written DDP loop.

Issue 4's targets (2-core machine, torch CPU, gloo, 1 thread per rank):
- weak scaling of a 256-1024-1024-10 MLP, batch 256 per rank: the runtime with 2 ranks vs one
  process: >= 1.5x samples/s (plain DDP measured ~1.43x);
- the runtime's overhead against a minimal DDP loop with the same model and data: <= 5%.

Four contenders run in alternating rounds, each in fresh processes: `single` (one process, a
hand-written loop), `ddp` (2 processes, a hand-written DDP loop, default DDP settings), and
`runtime` (`python -m runtime.train --workload mlp --nproc 2`, reading a partitioned dataset), and `runtime_fp16` (the same with `--comm-hook fp16`: gradients
all-reduced in float16, half the bytes).
Each reports samples/s over its training loop (data, compute and communication; not start-up).
Ratios are per round, then the median is taken.

    .venv/bin/python bench/train_scaling.py            # 5 rounds
    .venv/bin/python bench/train_scaling.py --quick    # 2 rounds, fewer steps
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import ROOT, save_result  # noqa: E402  (also puts the repository on sys.path)
FEATURES, CLASSES, HIDDEN, BATCH = 256, 10, (1024, 1024), 256


def make_data(n, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    y = (x[:, :CLASSES] * 3).argmax(1).astype(np.int64)
    return x, y


def child(kind, rank, world, port, steps, rows, out):
    """A hand-written loop: `single` (world 1) or minimal DDP."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    from runtime.model import MLP
    x, y = make_data(rows)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(0)
    model = MLP(FEATURES, CLASSES, HIDDEN)
    if world > 1:
        import torch.distributed as dist
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    per_epoch = rows // (BATCH * world)
    t0 = time.perf_counter()
    for s in range(steps):
        lo = ((s % per_epoch) * world + rank) * BATCH
        opt.zero_grad()
        loss = F.cross_entropy(model(x[lo:lo + BATCH]), y[lo:lo + BATCH])
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t0
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"samples_per_s": steps * BATCH * world / dt}, f)
    if world > 1:
        dist.destroy_process_group()


def run_handwritten(kind, steps, rows, tmp):
    from runtime.train.launcher import free_port
    world = 1 if kind == "single" else 2
    out = os.path.join(tmp, f"{kind}.json")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    procs = [subprocess.Popen([sys.executable, __file__, "--child", kind, "--rank", str(r), "--world", str(world),
                               "--port", str(port), "--steps", str(steps), "--rows", str(rows), "--out", out], env=env)
             for r in range(world)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{kind} child failed")
    return json.load(open(out))["samples_per_s"]


def run_runtime(dataset, steps, rows, tmp, extra=()):
    out = os.path.join(tmp, "rt")
    subprocess.run(["rm", "-rf", out], check=True)
    epochs = max(1, round(steps / (rows // (BATCH * 2))))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "runtime.train", "--workload", "mlp", "--data", dataset, "--label", "y",
                        "--hidden", ",".join(map(str, HIDDEN)), "--batch-size", str(BATCH), "--epochs", str(epochs),
                        "--test-fraction", "0", "--nproc", "2", "--out", out, "--log-every", "1000", *extra],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"runtime failed:\n{r.stderr[-3000:]}")
    return json.load(open(os.path.join(out, "metrics.json")))["samples_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--child")
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--world", type=int, default=1)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.rank, a.world, a.port, a.steps, a.rows, a.out)
    rounds = a.rounds or (2 if a.quick else 5)
    rows = 32768
    steps = 64 if a.quick else 192
    import pyarrow as pa
    from runtime.data import write_partitioned
    tmp = tempfile.mkdtemp(prefix="bench-train-")
    x, y = make_data(rows)
    cols = {f"f{i}": x[:, i] for i in range(FEATURES)}
    cols["y"] = y
    cols["id"] = __import__("numpy").arange(rows)
    dataset = os.path.join(tmp, "ds")
    write_partitioned(pa.table(cols), dataset, "hash", "id", num_partitions=4)
    res = {"single": [], "ddp": [], "runtime": [], "runtime_fp16": []}
    for r in range(rounds):
        order = ["single", "ddp", "runtime", "runtime_fp16"]
        for kind in (order if r % 2 == 0 else order[::-1]):
            if kind.startswith("runtime"):
                v = run_runtime(dataset, steps, rows, tmp, ["--comm-hook", "fp16"] if kind == "runtime_fp16" else [])
            else:
                v = run_handwritten(kind, steps, rows, tmp)
            res[kind].append(v)
            print(f"round {r + 1}/{rounds} {kind:8s} {v:10,.0f} samples/s", file=sys.stderr, flush=True)
    scale_rt = [rt / s for rt, s in zip(res["runtime"], res["single"])]
    scale_ddp = [d / s for d, s in zip(res["ddp"], res["single"])]
    overhead = [1 - rt / d for rt, d in zip(res["runtime"], res["ddp"])]
    scale_fp16 = [rt / s for rt, s in zip(res["runtime_fp16"], res["single"])]
    summary = {
        "model": f"{FEATURES}-{'-'.join(map(str, HIDDEN))}-{CLASSES}", "batch_per_rank": BATCH, "steps": steps,
        "rounds": rounds, "samples_per_s": res,
        "weak_scaling_runtime_2x1_vs_1x1": statistics.median(scale_rt),
        "weak_scaling_plain_ddp_2x1_vs_1x1": statistics.median(scale_ddp),
        "weak_scaling_runtime_fp16_hook_2x1_vs_1x1": statistics.median(scale_fp16),
        "runtime_overhead_vs_minimal_ddp": statistics.median(overhead),
        "targets": {"weak_scaling_runtime": ">= 1.5 and > plain DDP", "overhead": "<= 0.05"},
    }
    print(f"{'':28s}{'runtime':>10s}{'plain DDP':>12s}")
    print(f"{'weak scaling (2 ranks / 1)':28s}{summary['weak_scaling_runtime_2x1_vs_1x1']:10.2f}x"
          f"{summary['weak_scaling_plain_ddp_2x1_vs_1x1']:11.2f}x")
    print(f"{'  runtime with --comm-hook fp16':28s}{summary['weak_scaling_runtime_fp16_hook_2x1_vs_1x1']:10.2f}x")
    print(f"runtime overhead vs minimal DDP loop: {summary['runtime_overhead_vs_minimal_ddp'] * 100:+.1f}%")
    save_result("train_scaling", summary)


if __name__ == "__main__":
    main()
