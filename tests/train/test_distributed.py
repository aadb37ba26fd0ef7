"""Multi-process runs with gloo: DDP equals one process, resume on another world size, SIGKILL restart."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from train_helpers import metrics, run_cli, write_csv  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from sklearn.datasets import make_classification
    d = tmp_path_factory.mktemp("dist")
    x, y = make_classification(n_samples=1203, n_features=12, n_informative=6, n_classes=3, random_state=0)
    return d, write_csv(d / "cls.csv", x, y)


def _weights(out):
    return torch.load(os.path.join(out, "weights.pt"), weights_only=True)


def test_two_ranks_equal_one_process_full_batch(data, tmp_path):
    _, path = data
    common = ["--workload", "logreg", "--data", path, "--label", "target", "--epochs", "40", "--dtype", "float64"]
    r1 = run_cli(*common, "--out", tmp_path / "one")
    r2 = run_cli(*common, "--out", tmp_path / "two", "--nproc", "2")
    assert r1.returncode == 0 and r2.returncode == 0, r2.stderr[-2000:]
    w1, w2 = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in w1:
        assert torch.allclose(w1[k], w2[k], rtol=0, atol=1e-6), k
    assert metrics(tmp_path / "two")["world_size"] == 2


def test_sigkill_restart_gives_bitwise_equal_weights(data, tmp_path):
    _, path = data
    common = ["--workload", "mlp", "--data", path, "--label", "target", "--epochs", "2", "--batch-size", "32",
              "--hidden", "32,32", "--nproc", "2", "--checkpoint-every", "5", "--max-restarts", "2"]
    clean = run_cli(*common, "--out", tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr[-2000:]
    faulty = run_cli(*common, "--out", tmp_path / "faulty", env={"GPUFLEET_TRAIN_FAULT": "1:17"})
    assert faulty.returncode == 0, faulty.stderr[-3000:]
    events = [json.loads(line) for line in (tmp_path / "faulty" / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "kill" for e in events)
    # saves are asynchronous (the step-15 one paced over half an interval): when rank 1 is killed at
    # step 17 the newest committed checkpoint may be an older one; whichever it is, the weights match
    assert metrics(tmp_path / "faulty")["resumed_from_step"] in (5, 10, 15)
    a = (tmp_path / "clean" / "weights.pt").read_bytes()
    w1, w2 = _weights(tmp_path / "clean"), _weights(tmp_path / "faulty")
    for k in w1:
        assert torch.equal(w1[k], w2[k]), k
    assert a is not None


def test_resume_with_a_different_world_size(data, tmp_path):
    _, path = data
    # synchronous saves: a full-batch step takes milliseconds, and an asynchronous step-10 save
    # may not be committed when the writing rank is killed at step 14 on a busy machine
    common = ["--workload", "logreg", "--data", path, "--label", "target", "--epochs", "30", "--dtype", "float64",
              "--checkpoint-every", "10", "--sync-checkpoint"]
    first = run_cli(*common, "--out", tmp_path / "r", "--nproc", "2", env={"GPUFLEET_TRAIN_FAULT": "0:14"})
    assert first.returncode != 0
    second = run_cli(*common, "--out", tmp_path / "r", "--nproc", "1")
    assert second.returncode == 0, second.stderr[-2000:]
    m = metrics(tmp_path / "r")
    assert m["resumed_from_step"] == 10 and m["world_size"] == 1 and m["steps"] == 30
    ref = run_cli(*common, "--out", tmp_path / "ref")
    assert ref.returncode == 0
    w1, w2 = _weights(tmp_path / "ref"), _weights(tmp_path / "r")
    for k in w1:
        assert torch.allclose(w1[k], w2[k], rtol=0, atol=1e-6), k


def test_kmeans_two_ranks_equal_one(tmp_path):
    from sklearn.datasets import make_blobs
    x, _ = make_blobs(n_samples=2001, centers=4, random_state=2)
    path = write_csv(tmp_path / "b.csv", x)
    common = ["--workload", "kmeans", "--data", path, "--k", "4", "--test-fraction", "0", "--dtype", "float64"]
    assert run_cli(*common, "--out", tmp_path / "a").returncode == 0
    r = run_cli(*common, "--out", tmp_path / "b", "--nproc", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    ia, ib = metrics(tmp_path / "a")["inertia"], metrics(tmp_path / "b")["inertia"]
    assert abs(ia - ib) / ia < 1e-9
    assert np.allclose(metrics(tmp_path / "a")["centroids"], metrics(tmp_path / "b")["centroids"], atol=1e-9)


def test_sigterm_checkpoints_and_the_next_run_resumes(data, tmp_path):
    import signal
    import subprocess
    import time

    from train_helpers import ROOT
    _, path = data
    out = tmp_path / "t"
    args = ["--workload", "mlp", "--data", path, "--label", "target", "--batch-size", "8", "--hidden", "16",
            "--nproc", "2", "--out", out]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    p = subprocess.Popen([sys.executable, "-m", "runtime.train", *map(str, args), "--epochs", "500"], cwd=ROOT,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (out / "events.jsonl").exists() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, err[-2000:]
    assert "stopped" in err
    steps = sorted(os.listdir(out / "checkpoints"))
    assert steps and (out / "checkpoints" / steps[-1] / "COMMIT").exists()
    assert not (out / "metrics.json").exists()
    r = run_cli(*args, "--epochs", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert metrics(out)["resumed_from_step"] == int(steps[-1].split("-")[1])
