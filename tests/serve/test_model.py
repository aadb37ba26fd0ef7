"""runtime.model: artifacts round-trip, predictions, S3 loading, and clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from runtime.errors import BadInput
from runtime.model import load_artifact


def test_round_trip_predictions(artifacts):
    x = np.array([[0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 4.0], [-5.0, -6.0, -5.0, -5.0]], dtype=np.float32)
    km = load_artifact(artifacts["kmeans"])
    assert km.predict(x) == [0, 1, 2]
    lr = load_artifact(artifacts["logreg"])
    labels = lr.predict(x)
    assert len(labels) == 3 and set(labels) <= {"a", "b", "c"}
    # standardization is applied: the same logits as computing it by hand
    w, b = lr.module.linear.weight, lr.module.linear.bias
    logits = ((torch.from_numpy(x) - 0.5) / 2.0) @ w.T + b
    assert labels == [["a", "b", "c"][i] for i in logits.argmax(1).tolist()]
    meta = json.loads((artifacts["logreg"] / "model.json").read_text())
    assert meta["standardization"]["std"] == [2.0] * 4 and meta["format_version"] == 1
    mlp = load_artifact(str(artifacts["mlp"]))
    assert mlp.predict(x) == mlp.module(torch.from_numpy(x)).argmax(1).tolist()


def test_missing_and_corrupt_artifacts(artifacts, tmp_path):
    with pytest.raises(BadInput, match="no such artifact directory"):
        load_artifact(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    shutil.copytree(artifacts["mlp"], bad)
    (bad / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(BadInput, match="weights.pt is not a readable torch state_dict"):
        load_artifact(bad)
    shutil.copy(artifacts["mlp"] / "weights.pt", bad / "weights.pt")
    (bad / "model.json").write_text("{")
    with pytest.raises(BadInput, match="model.json is not valid JSON"):
        load_artifact(bad)
    (bad / "model.json").write_text(json.dumps({"format_version": 1, "kind": "mlp", "n_features": 5,
                                                "classes": [0, 1], "hidden": [8, 8]}))
    with pytest.raises(BadInput, match="does not match model.json"):
        load_artifact(bad)
    (bad / "model.json").write_text(json.dumps({"format_version": 9, "kind": "svm", "n_features": 0}))
    with pytest.raises(BadInput) as e:
        load_artifact(bad)
    assert len(e.value.problems) == 3  # every problem reported at once
    (bad / "weights.pt").unlink()
    (bad / "model.json").write_text("{}")
    with pytest.raises(BadInput, match="cannot read weights.pt"):
        load_artifact(bad)


def test_load_from_s3(artifacts, aws_client, moto_endpoint, monkeypatch):
    s3 = aws_client("s3")
    s3.create_bucket(Bucket="models")
    for name in ("model.json", "weights.pt"):
        s3.put_object(Bucket="models", Key=f"runs/7/{name}", Body=(artifacts["kmeans"] / name).read_bytes())
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    predictor = load_artifact("s3://models/runs/7/")
    assert predictor.kind == "kmeans" and predictor.predict(np.full((1, 4), 5.0, dtype=np.float32)) == [1]
    with pytest.raises(BadInput, match=r"cannot read s3://models/runs/8/model.json \(NoSuchKey\)"):
        load_artifact("s3://models/runs/8")
