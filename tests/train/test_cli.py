"""The spec-less CLI: outputs, and bad input refused (exit 2) before any rank starts."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from train_helpers import ROOT, run_cli, write_csv  # noqa: E402


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return d, write_csv(d / "small.csv", x, y)


def test_cli_writes_metrics_and_artifact(small, tmp_path):
    _, path = small
    r = run_cli("--workload", "logreg", "--data", path, "--label", "target", "--epochs", "50",
                "--out", tmp_path / "o", "--json-logs")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert {"final_loss", "samples_per_s", "accuracy", "loss_curve"} <= set(m)
    assert m["accuracy"] > 0.9
    assert (tmp_path / "o" / "model.json").exists()
    assert any(json.loads(line).get("event") == "step" for line in r.stderr.splitlines() if line.startswith("{"))


@pytest.mark.parametrize("args,needle", [
    (["--workload", "kmeans", "--k", "500"], "--k"),
    (["--workload", "logreg", "--label", "target", "--lr", "0"], "--lr"),
    (["--workload", "logreg", "--label", "target", "--lr", "-1"], "--lr"),
    (["--workload", "mlp", "--label", "target", "--batch-size", "0"], "--batch-size"),
    (["--workload", "logreg", "--label", "nope"], "--label"),
    (["--workload", "logreg", "--label", "target", "--nproc", "9"], "partitions"),
])
def test_bad_input_exits_2_with_a_clear_message(small, tmp_path, args, needle):
    d, path = small
    from runtime.data import write_partitioned
    ds = d / "ds2"
    if not ds.exists():
        import pyarrow.csv as pacsv
        t = pacsv.read_csv(path)
        t = t.append_column("id", __import__("pyarrow").array(np.arange(t.num_rows)))
        write_partitioned(t, str(ds), "hash", "id", num_partitions=2)
    r = run_cli("--data", ds, "--out", tmp_path / "o", *args, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_missing_data_path_exits_2(tmp_path):
    r = run_cli("--workload", "logreg", "--data", tmp_path / "missing.csv", "--label", "y", "--out", tmp_path / "o")
    assert r.returncode == 2 and "--data" in r.stderr and "does not exist" in r.stderr


def test_gpufleet_cli_registers_train(tmp_path):
    import subprocess
    r = subprocess.run([sys.executable, "-m", "infra.cli", "train", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 0 and "--workload" in r.stdout


@pytest.mark.slow
def test_nproc_sets_the_world_size(small, tmp_path):
    _, path = small
    r = run_cli("--nproc", "2", "--workload", "logreg", "--data", path, "--label", "target",
                "--epochs", "5", "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["world_size"] == 2


def test_a_stack_spec_is_not_an_argument(small, tmp_path):
    """The runtime never reads a spec: `gpufleet train SPEC` is refused before anything starts."""
    _, path = small
    r = run_cli(tmp_path / "missing.yaml", "--workload", "logreg", "--data", path, "--label", "target",
                "--out", tmp_path / "o")
    assert r.returncode == 2 and "missing.yaml" in r.stderr and "unrecognized arguments" in r.stderr
    assert not (tmp_path / "o").exists()
