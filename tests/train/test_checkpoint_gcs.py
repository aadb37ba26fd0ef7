"""Checkpoints on gs:// against a GCS emulator over HTTP (tests/gcs_emulator.py): the Checkpointer's
contract (commit marker, keep K, corrupt latest skipped), and a real training run killed mid-way
that resumes from its gs:// checkpoint to the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch

from runtime import store
from runtime.train.checkpoint import COMMIT, STATE, Checkpointer

sys.path.insert(0, os.path.dirname(__file__))
from train_helpers import metrics, run_cli, write_csv  # noqa: E402


def _state(step):
    return {"step": step, "model": {"w": torch.full((4,), float(step))}, "data": {"epoch": 0, "position": step}}


def test_gcs_checkpoints_on_the_emulator(gcs_endpoint, gcs_bucket):
    root = f"gs://{gcs_bucket}/runs/a"
    c = Checkpointer(root, keep=2, async_save=True, endpoint=gcs_endpoint)
    for s in (1, 2, 3):
        c.save(s, _state(s))
    c.wait()
    assert store.list_keys(root, gcs_endpoint) == [f"step-00000000{s}/{n}" for s in (2, 3) for n in (COMMIT, STATE)]
    st = Checkpointer(root, endpoint=gcs_endpoint).load_latest()
    assert st["step"] == 3 and torch.equal(st["model"]["w"], torch.full((4,), 3.0))
    store.put_bytes(f"{root}/step-000000003/{STATE}", b"garbage", gcs_endpoint)
    store.put_bytes(f"{root}/step-000000009/{STATE}", b"uncommitted: no marker", gcs_endpoint)
    warnings = []
    c2 = Checkpointer(root, endpoint=gcs_endpoint, log=warnings.append)
    assert c2.load_latest()["step"] == 2
    assert warnings and "step-000000003" in warnings[0] and "corrupt" in warnings[0]


@pytest.fixture(scope="module")
def classification_csv(tmp_path_factory):
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=1203, n_features=12, n_informative=6, n_classes=3, random_state=0)
    return write_csv(tmp_path_factory.mktemp("gcs-train") / "cls.csv", x, y)


def test_training_killed_mid_run_resumes_from_gs_to_the_same_weights(gcs_endpoint, gcs_bucket, classification_csv,
                                                                      tmp_path):
    """The endpoint comes from STORAGE_EMULATOR_HOST, the variable Google's own tools read."""
    env = {"STORAGE_EMULATOR_HOST": gcs_endpoint.removeprefix("http://"), "GPUFLEET_GCS_ENDPOINT": ""}
    common = ["--workload", "mlp", "--data", classification_csv, "--label", "target", "--epochs", "2",
              "--batch-size", "32", "--hidden", "32,32", "--checkpoint-every", "5", "--sync-checkpoint"]
    ckpt = f"gs://{gcs_bucket}/runs/mlp"

    clean = run_cli(*common, "--out", tmp_path / "clean", "--checkpoint-dir", f"gs://{gcs_bucket}/runs/clean", env=env)
    assert clean.returncode == 0, clean.stderr[-2000:]

    killed = run_cli(*common, "--out", tmp_path / "r", "--checkpoint-dir", ckpt,
                     env={**env, "GPUFLEET_TRAIN_FAULT": "0:17"})  # SIGKILL at step 17: no chance to save
    assert killed.returncode != 0 and not (tmp_path / "r" / "metrics.json").exists()
    events = [json.loads(line) for line in (tmp_path / "r" / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "kill" and e["step"] == 17 for e in events)
    keys = store.list_keys(ckpt, gcs_endpoint)
    assert f"step-000000015/{COMMIT}" in keys and not any(k.startswith("step-000000020") for k in keys)
    assert not os.path.exists(tmp_path / "r" / "checkpoints")  # nothing went to local disk

    resumed = run_cli(*common, "--out", tmp_path / "r", "--checkpoint-dir", ckpt, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert metrics(tmp_path / "r")["resumed_from_step"] == 15
    assert metrics(tmp_path / "r")["steps"] == metrics(tmp_path / "clean")["steps"]
    w_clean = torch.load(tmp_path / "clean" / "weights.pt", weights_only=True)
    w_resumed = torch.load(tmp_path / "r" / "weights.pt", weights_only=True)
    for k in w_clean:
        assert torch.equal(w_clean[k], w_resumed[k]), k
    newest = max(k.split("/")[0] for k in store.list_keys(ckpt, gcs_endpoint))
    assert Checkpointer(ckpt, endpoint=gcs_endpoint).load_latest()["step"] == int(newest.split("-")[1])
