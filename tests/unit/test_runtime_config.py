"""The runtime config each role reads: built from the resolved stack, accepted by the runtime."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from infra.render.render import render_files
from infra.render.runtime_config import runtime_config
from infra.spec import load_stack
from runtime.agent.agent import AgentConfig
from runtime.errors import BadInput
from runtime.role import load_config, run_role
from runtime.serve.role import serve_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack():
    return load_stack(ROOT / "examples/aws-gpu-fleet.yaml")


def test_serve_section_is_a_serve_config(stack, monkeypatch):
    config = runtime_config(stack, "serve")
    config["artifacts"]["bucket"] = "demo-bucket"
    cfg = serve_config(config)
    assert cfg.port == 8080 and cfg.host == "0.0.0.0"
    assert cfg.model == "s3://demo-bucket/models/latest/"
    assert cfg.deregistration_window_s == stack.spec.serving.load_balancer.deregistration_delay_s
    agent = AgentConfig(**config["agent"])
    assert agent.namespace == "GPUFleet" and agent.lifecycle_hook_suffix == "-drain"
    assert config["scaling"]["metric_name"] == "InflightRequests"


def test_serve_without_model_or_bucket_is_bad_input(stack):
    config = runtime_config(stack, "serve")
    config["artifacts"]["bucket"] = None
    with pytest.raises(BadInput, match="serve.model: not set"):
        serve_config(config)


def test_train_section(stack):
    config = runtime_config(stack, "train")
    assert config["train"]["group"] == "demo-fleet-train"
    assert config["train"]["gpus_per_node"] == 4
    assert config["train"]["nodes"] == {"min": 1, "max": 4}
    assert config["train"]["lifecycle_hook"] == "demo-fleet-train-drain"


def test_user_data_embeds_the_config(stack):
    files = render_files(stack, "emulator")
    script = files["user_data/serve.sh.tftpl"].decode()
    (b64,) = re.findall(r"echo '([A-Za-z0-9+/=]+)' \| base64 -d", script)
    assert json.loads(base64.b64decode(b64)) == runtime_config(stack, "serve")
    assert "${bucket}" in script
    # the only Terraform template sequences are the bucket and the group: everything else is plain text
    assert set(re.findall(r"[$%]\{[^}]*\}", script)) == {"${bucket}", "${group}"}
    assert "GPUFLEET_BUNDLE_SHA256=%s" in script and "0" * 64 in script


def test_load_config_checks_format_and_role(tmp_path, monkeypatch, stack):
    path = tmp_path / "runtime.json"
    path.write_text(json.dumps(runtime_config(stack, "serve")))
    monkeypatch.setenv("GPUFLEET_BUCKET", "b1")
    assert load_config(path)["artifacts"]["bucket"] == "b1"
    path.write_text(json.dumps({"format": 9, "role": "serve"}))
    with pytest.raises(BadInput, match="format"):
        load_config(path)
    path.write_text("{not json")
    with pytest.raises(BadInput, match="not valid JSON"):
        load_config(path)
    with pytest.raises(BadInput, match="no such runtime config"):
        load_config(tmp_path / "missing.json")


def test_run_dispatches_to_the_train_role(tmp_path, stack):
    """`gpufleet run` hands a train config to runtime.train.role, which checks it before starting anything."""
    config = runtime_config(stack, "train")
    del config["workload"]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(config))
    with pytest.raises(BadInput, match="workload.data"):
        run_role(path)


def test_workload_section_is_a_train_config(stack):
    from runtime.train.config import TrainConfig

    config = runtime_config(stack, "train")
    assert config["workload"] == {"workload": "mlp", "data": "s3://demo-datasets/clicks/", "label": "clicked",
                                  "hidden": [1024, 1024], "epochs": 5, "checkpoint_every": 500}
    cfg = TrainConfig.from_dict(config["workload"])
    assert cfg.workload == "mlp" and cfg.hidden == [1024, 1024]


def test_workload_rules():
    from infra.spec import parse_stack

    base = {"name": "t-stack", "training": {"instance_type": "g5.xlarge", "nodes": {"min": 1, "max": 1},
                                            "workload": {"type": "kmeans", "data": "s3://b/d/"}}}
    with pytest.raises(BadInput, match="training.workload.k: required for kmeans"):
        parse_stack(base)
    base["training"]["workload"] = {"type": "mlp", "data": "s3://b/d/", "hidden": [0]}
    with pytest.raises(BadInput) as exc:
        parse_stack(base)
    assert any(p.startswith("training.workload.hidden: layer sizes must be positive") for p in exc.value.problems)


def test_parallel_and_sweep_reach_the_train_config():
    from infra.spec import parse_stack
    from runtime.train.config import TrainConfig

    base = {"name": "t-stack", "training": {"instance_type": "g5.xlarge", "nodes": {"min": 1, "max": 1}}}
    base["training"]["workload"] = {"type": "kmeans", "data": "s3://b/d/", "k": 4,
                                    "sweep": {"param": "k", "values": [2, 4, 8]}}
    cfg = TrainConfig.from_dict({**runtime_config(parse_stack(base), "train")["workload"], "out": "run/"})
    assert cfg.sweep == {"param": "k", "values": [2, 4, 8]} and all(type(v) is int for v in cfg.sweep["values"])
    assert not cfg.problems()
    base["training"]["workload"] = {"type": "mlp", "data": "s3://b/d/", "label": "y", "hidden": [64, 64],
                                    "parallel": "pipeline", "microbatches": 8}
    cfg = TrainConfig.from_dict({**runtime_config(parse_stack(base), "train")["workload"], "out": "run/"})
    assert cfg.parallel == "pipeline" and cfg.microbatches == 8 and not cfg.problems()


@pytest.mark.parametrize("workload,needle", [
    ({"type": "logreg", "label": "y", "parallel": "pipeline"}, "training.workload.parallel: pipeline splits an MLP"),
    ({"type": "mlp", "label": "y", "parallel": "pipeline", "checkpoint_every": 10}, "keeps no checkpoints"),
    ({"type": "mlp", "label": "y", "microbatches": 4}, "training.workload.microbatches: only for parallel"),
    ({"type": "logreg", "label": "y", "sweep": {"param": "k", "values": [2]}}, "k is a k-means setting"),
    ({"type": "kmeans", "k": 3, "sweep": {"param": "k", "values": [2.5]}}, "whole numbers"),
    ({"type": "logreg", "label": "y", "sweep": {"param": "lr", "values": [0.1, 0.1]}}, "values repeat"),
    ({"type": "logreg", "label": "y", "sweep": {"param": "lr", "values": [-1]}}, "lr must be positive"),
    ({"type": "logreg", "label": "y", "sweep": {"param": "depth", "values": [1]}}, "training.workload.sweep.param"),
])
def test_bad_parallel_workload_names_the_field(workload, needle):
    from infra.spec import parse_stack

    data = {"name": "t-stack", "training": {"instance_type": "g5.xlarge", "nodes": {"min": 1, "max": 1},
                                            "workload": {"data": "s3://b/d/", **workload}}}
    with pytest.raises(BadInput) as exc:
        parse_stack(data)
    assert any(needle in p for p in exc.value.problems), exc.value.problems
