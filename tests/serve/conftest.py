"""Fixtures for the serving tests: small model artifacts and a real replica process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from runtime.model import KMeans, LogisticRegression, MLP, save_artifact

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict:
    """One artifact per kind, 4 features each, with fixed weights."""
    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("artifacts")
    logreg = LogisticRegression(4, 3)
    logreg.standardize.mean.fill_(0.5)
    logreg.standardize.std.fill_(2.0)
    kmeans = KMeans(4, 3)
    kmeans.centroids.copy_(torch.tensor([[0.0] * 4, [5.0] * 4, [-5.0] * 4]))
    mlp = MLP(4, 2, (8, 8))
    return {
        "logreg": save_artifact(base / "logreg", "logreg", logreg, {"n_features": 4, "classes": ["a", "b", "c"]}),
        "kmeans": save_artifact(base / "kmeans", "kmeans", kmeans, {"n_features": 4, "k": 3}),
        "mlp": save_artifact(base / "mlp", "mlp", mlp, {"n_features": 4, "classes": [0, 1], "hidden": [8, 8]}),
    }


class Replica:
    """A `python -m runtime.serve` process on a free loopback port; stopped by pid."""

    def __init__(self, *args: str, wait_ready: bool = True):
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "runtime.serve", "--port", "0", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = None
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            self.url = m.group(1)
            if wait_ready:
                ready = self.proc.stdout.readline()
                assert "ready" in ready, ready + self.proc.stderr.read()

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=30) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


@pytest.fixture
def replica():
    """Factory: replica(*flags) -> Replica; every replica is killed at the end of the test."""
    started = []

    def start(*args, **kw):
        r = Replica(*args, **kw)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


@pytest.fixture(scope="session")
def wait_until():
    """wait_until(predicate, timeout=10) -> bool: poll until true (fixtures, not imports, share
    helpers here: pytest runs with --import-mode=importlib, so test folders are not on sys.path)."""
    return _wait_until


def _wait_until(predicate, timeout=10.0, every=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return False
