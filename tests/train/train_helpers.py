"""Shared helpers for tests/train: small datasets written as CSV or partitioned datasets, CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_csv(path, x, y=None, label="target"):
    names = [f"f{i}" for i in range(x.shape[1])] + ([label] if y is not None else [])
    arr = np.column_stack([x, y]) if y is not None else x
    np.savetxt(path, arr, delimiter=",", header=",".join(names), comments="", fmt="%.17g")
    return str(path)


def breast_cancer_csv(tmp_path):
    from sklearn.datasets import load_breast_cancer
    b = load_breast_cancer()
    return write_csv(tmp_path / "bc.csv", b.data, b.target), b.data, b.target


def run_cli(*args, env=None, timeout=240):
    e = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, "-m", "runtime.train", *map(str, args)], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)


def metrics(out):
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f)
