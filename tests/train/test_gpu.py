"""The CUDA path, on a machine with a GPU (skipped elsewhere, with the reason).

One GPU is what the lent check machine has, so these cover one rank per GPU: training on the
device, the elastic launcher spawning a CUDA rank and restarting it after SIGKILL, asynchronous
checkpoints of GPU tensors (staged in pinned host memory), k-means on the device against the
CPU result, and the clear refusal of more ranks than GPUs (NCCL refuses two ranks on one GPU,
so the multi-rank NCCL all-reduce itself needs a machine with two or more GPUs).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from train_helpers import breast_cancer_csv, metrics, run_cli, write_csv  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs CUDA: the GPU path is exercised on a machine with a GPU")


def test_logreg_trains_on_the_gpu(tmp_path):
    path, _, _ = breast_cancer_csv(tmp_path)
    r = run_cli("--workload", "logreg", "--data", path, "--label", "target", "--epochs", "50", "--out", tmp_path / "g")
    assert r.returncode == 0, r.stderr[-2000:]
    assert metrics(tmp_path / "g")["accuracy"] > 0.9


def test_sigkill_restart_of_a_cuda_rank_resumes_from_its_checkpoint(tmp_path):
    """Through the elastic launcher (spawned, as on every machine with a GPU): the rank
    checkpoints GPU state asynchronously, is killed, restarts and ends where an uninterrupted
    run ends."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 16))
    path = write_csv(tmp_path / "d.csv", x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5))
    common = ["--workload", "mlp", "--data", path, "--label", "target", "--epochs", "2", "--batch-size", "64",
              "--hidden", "64,64", "--checkpoint-every", "5", "--max-restarts", "1", "--dtype", "float64"]
    clean = run_cli(*common, "--out", tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr[-3000:]
    faulty = run_cli(*common, "--out", tmp_path / "faulty", env={"GPUFLEET_TRAIN_FAULT": "0:17"})
    assert faulty.returncode == 0, faulty.stderr[-3000:]
    m = metrics(tmp_path / "faulty")
    assert m["resumed_from_step"] in (5, 10, 15) and m["restarts"] == 1  # the newest committed when killed
    a = torch.load(tmp_path / "clean" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "faulty" / "weights.pt", weights_only=True)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k  # artifacts are float32


def test_async_checkpoint_of_gpu_tensors_is_isolated_after_the_fence(tmp_path):
    from runtime.train.checkpoint import Checkpointer
    c = Checkpointer(str(tmp_path / "ck"), keep=2, async_save=True)
    w = torch.zeros(4_000_000, device="cuda")
    c.save(1, {"step": 1, "w": w})
    assert c.fence() >= 0.0
    w += 7  # training goes on once the state has reached pinned host memory
    c.wait()
    st = c.load_latest()
    assert st["w"].device.type == "cpu" and torch.count_nonzero(st["w"]) == 0
    assert torch.cuda.memory_allocated() <= w.numel() * 4 + (1 << 20)  # no second copy on the GPU


def test_kmeans_on_the_gpu_matches_the_cpu(tmp_path):
    rng = np.random.default_rng(1)
    centers = rng.normal(scale=5, size=(6, 4))
    x = centers[rng.integers(0, 6, 3000)] + rng.normal(size=(3000, 4))
    path = write_csv(tmp_path / "blobs.csv", x)
    args = ["--workload", "kmeans", "--data", path, "--k", "6", "--dtype", "float64", "--test-fraction", "0"]
    gpu = run_cli(*args, "--out", tmp_path / "gpu")
    cpu = run_cli(*args, "--out", tmp_path / "cpu", env={"CUDA_VISIBLE_DEVICES": ""})
    assert gpu.returncode == 0 and cpu.returncode == 0, (gpu.stderr[-2000:], cpu.stderr[-2000:])
    a, b = metrics(tmp_path / "gpu"), metrics(tmp_path / "cpu")
    assert abs(a["inertia"] - b["inertia"]) <= 1e-6 * b["inertia"]


def test_more_ranks_than_gpus_is_refused_clearly(tmp_path):
    path, _, _ = breast_cancer_csv(tmp_path)
    r = run_cli("--workload", "logreg", "--data", path, "--label", "target", "--epochs", "2",
                "--nproc", str(torch.cuda.device_count() + 1), "--out", tmp_path / "o")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "--nproc" in r.stderr and "this machine has" in r.stderr and "Traceback" not in r.stderr


def test_pipeline_and_sweep_run_on_the_gpu(tmp_path):
    """One stage on the GPU gives the CPU's losses (float64); a sweep's jobs train on the rank's GPU."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(512, 6))
    path = write_csv(tmp_path / "p.csv", x, (x[:, 0] + x[:, 1] > 0).astype(int))
    pipe = ["--workload", "mlp", "--data", path, "--label", "target", "--parallel", "pipeline", "--hidden", "16",
            "--epochs", "2", "--batch-size", "64", "--optimizer", "sgd", "--lr", "0.1", "--dtype", "float64"]
    gpu = run_cli(*pipe, "--out", tmp_path / "pg")
    cpu = run_cli(*pipe, "--out", tmp_path / "pc", env={"CUDA_VISIBLE_DEVICES": ""})
    assert gpu.returncode == 0 and cpu.returncode == 0, (gpu.stderr[-2000:], cpu.stderr[-2000:])
    for a, b in zip(metrics(tmp_path / "pg")["loss_curve"], metrics(tmp_path / "pc")["loss_curve"]):
        assert abs(a - b) < 1e-6
    sweep = run_cli("--workload", "logreg", "--data", path, "--label", "target", "--epochs", "20",
                    "--sweep", "lr=0.1,1.0", "--out", tmp_path / "s")
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert (tmp_path / "s" / "sweep.json").exists()
