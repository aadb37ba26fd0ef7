"""Model and task parallelism through the CLI: `--parallel pipeline` and `--sweep PARAM=...`."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from train_helpers import metrics, run_cli, write_csv  # noqa: E402


@pytest.fixture(scope="module")
def three_class(tmp_path_factory):
    d = tmp_path_factory.mktemp("parallel-cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5))
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    return write_csv(d / "three.csv", x, y)


PIPE = ["--workload", "mlp", "--label", "target", "--parallel", "pipeline", "--hidden", "16,16", "--epochs", "3",
        "--batch-size", "64", "--optimizer", "sgd", "--lr", "0.1", "--l2", "0.001", "--dtype", "float64"]


@pytest.mark.slow
def test_pipeline_over_two_ranks_matches_one_process(three_class, tmp_path):
    """Two stages exchanging activations and gradients give one process's losses (within 1e-5), and
    rank 0 assembles the whole model into an artifact that serving loads."""
    one = run_cli("--data", three_class, "--out", tmp_path / "one", "--nproc", "1", *PIPE)
    two = run_cli("--data", three_class, "--out", tmp_path / "two", "--nproc", "2", *PIPE)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    a, b = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert b["parallel"] == "pipeline" and b["stages"] == 2 and a["stages"] == 1
    assert len(a["loss_curve"]) == len(b["loss_curve"]) == 3
    for la, lb in zip(a["loss_curve"], b["loss_curve"]):
        assert abs(la - lb) < 1e-5
    assert abs(a["final_loss"] - b["final_loss"]) < 1e-5 and a["accuracy"] == b["accuracy"]
    assert a["loss_curve"][-1] < a["loss_curve"][0]  # it trained
    from runtime.model import load_artifact
    model = load_artifact(str(tmp_path / "two"))
    assert model is not None


@pytest.mark.slow
def test_sweep_spreads_runs_over_ranks_and_gathers_on_rank_0(three_class, tmp_path):
    r = run_cli("--data", three_class, "--out", tmp_path / "s", "--nproc", "2", "--workload", "logreg",
                "--label", "target", "--epochs", "40", "--sweep", "lr=0.001,0.1,1.0")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert [x["value"] for x in s["results"]] == [0.001, 0.1, 1.0]
    assert [x["rank"] for x in s["results"]] == [0, 1, 0]  # job i on rank i % 2
    for x in s["results"]:
        m = metrics(tmp_path / "s" / f"lr={x['value']}")  # each job is a whole run with its own artifact
        assert m["final_loss"] == x["final_loss"] and m["world_size"] == 1
        assert (tmp_path / "s" / f"lr={x['value']}" / "model.json").exists()
    losses = [x["final_loss"] for x in s["results"]]
    assert losses[0] > losses[1] > losses[2]  # 40 steps of lr 0.001 barely move
    best = max(s["results"], key=lambda x: x["accuracy"])
    assert s["best"]["lr"] == best["value"]
    assert "best lr=" in r.stderr


def test_kmeans_k_sweep_in_one_process_reports_inertia_per_k(three_class, tmp_path):
    r = run_cli("--data", three_class, "--out", tmp_path / "k", "--workload", "kmeans", "--sweep", "k=1,2,4")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "k" / "sweep.json").read_text())
    inertia = [x["inertia"] for x in s["results"]]
    assert inertia[0] > inertia[1] > inertia[2] and s["best"] is None  # no best k: inertia falls with k


@pytest.mark.parametrize("args,needle", [
    (["--workload", "kmeans", "--sweep", "k=2,5000"], "--sweep k=5000"),
    (["--workload", "logreg", "--label", "target", "--sweep", "k=2,3"], "k is a k-means setting"),
    (["--workload", "logreg", "--label", "target", "--sweep", "lr=0.1,-1"], "--sweep lr=-1.0: --lr"),
    (["--workload", "logreg", "--label", "target", "--sweep", "lr=0.1,0.1"], "repeat"),
    (["--workload", "logreg", "--label", "target", "--sweep", "depth=1"], "--sweep"),
    (["--workload", "logreg", "--label", "target", "--sweep", "lr=a"], "--sweep"),
    (["--workload", "logreg", "--label", "target", "--parallel", "pipeline"], "--workload mlp"),
    (["--workload", "mlp", "--label", "target", "--parallel", "pipeline", "--hidden", "8", "--nproc", "3"],
     "needs at least 3 layers"),
    (["--workload", "mlp", "--label", "target", "--parallel", "pipeline", "--checkpoint-every", "5"],
     "keeps no checkpoints"),
    (["--workload", "mlp", "--label", "target", "--parallel", "pipeline", "--microbatches", "0"], "--microbatches"),
])
def test_bad_parallel_input_exits_2_and_writes_nothing(three_class, tmp_path, args, needle):
    r = run_cli("--data", three_class, "--out", tmp_path / "o", *args, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()  # not even the dataset copied from the CSV
