"""The local target's data and training step: a synthetic dataset, partitioned, then trained.

Training runs as `python -m runtime.train ... --nproc N` (N = `local.ranks`), the same command
a user would type; no spec is passed to it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from runtime.errors import OperationFailed
from runtime.fleet.state import read_json

DATA_ROWS = 20_000
DATA_FEATURES = 8


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def training_available() -> bool:
    try:
        return importlib.util.find_spec("runtime.train.cli") is not None
    except ModuleNotFoundError:
        return False


def make_example_data(out: Path, seed: int = 0) -> Path:
    """A synthetic two-class CSV (an `id` key, DATA_FEATURES features, `label`)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(DATA_ROWS, DATA_FEATURES)).astype(np.float32)
    w = rng.normal(size=DATA_FEATURES)
    y = ((x @ w + 0.3 * rng.normal(size=DATA_ROWS)) > 0).astype(int)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        f.write("id," + ",".join(f"x{i}" for i in range(DATA_FEATURES)) + ",label\n")
        for i in range(DATA_ROWS):
            f.write(f"{i}," + ",".join(f"{v:.5f}" for v in x[i]) + f",{y[i]}\n")
    return out


def partition_and_train(r, directory: Path, workload: str, epochs: int | None, hidden: str | None) -> Path:
    """Write and partition the example data under `directory`/data, train on it; the model's directory."""
    from runtime.data.storage import write_partitioned

    data = directory / "data"
    if data.exists():
        shutil.rmtree(data)
    raw = make_example_data(data / "example.csv")
    t0 = time.monotonic()
    n = max(2, r.spec.local.ranks)  # runtime.train wants at least one partition per rank
    write_partitioned(str(raw), str(data / "partitioned"), "hash", ["id"], num_partitions=n)
    _say(f"partitioned {DATA_ROWS:,} rows by hash of id into {n} partitions in {time.monotonic() - t0:.1f}s: "
         f"{data / 'partitioned'}")
    model = directory / "model"
    if model.exists():
        shutil.rmtree(model)
    cmd = [sys.executable, "-m", "runtime.train", "--workload", workload, "--data", str(data / "partitioned"),
           "--label", "label", "--features", ",".join(f"x{i}" for i in range(DATA_FEATURES)),
           "--nproc", str(r.spec.local.ranks), "--out", str(model)]
    if epochs:
        cmd += ["--epochs", str(epochs)]
    if workload == "mlp" and hidden:
        cmd += ["--hidden", hidden]
    _say(f"training {workload} with {r.spec.local.ranks} rank(s): {' '.join(cmd[1:])}")
    t0 = time.monotonic()
    rc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1")).returncode
    if rc != 0:
        raise OperationFailed(f"training failed (exit {rc}); nothing is serving")
    if not (model / "model.json").is_file():
        raise OperationFailed(f"training wrote no model artifact at {model}")
    metrics = read_json(model / "metrics.json") or {}
    shown = {k: metrics[k] for k in ("world_size", "epochs", "final_loss", "accuracy") if k in metrics}
    _say(f"trained in {time.monotonic() - t0:.1f}s: {model} {json.dumps(shown)}")
    return model
