"""Cloud pieces against the emulator and a fake instance-metadata server on 127.0.0.1:
termination notices (checkpoint, then complete the lifecycle action), rendezvous discovery
from the Auto Scaling group, and the instance's train role.

moto does not implement CompleteLifecycleAction (it answers 500), so that one call goes to a
stub that records its parameters; every other call reaches the emulator.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from train_helpers import write_csv  # noqa: E402

from runtime.train import TrainConfig, launch, validate  # noqa: E402
from runtime.train.checkpoint import Checkpointer  # noqa: E402


@pytest.fixture
def metadata(fake_imds):
    """The instance's metadata (tests/conftest.py's fake IMDSv2): id, address, lifecycle state."""
    return fake_imds({"meta-data/instance-id": "i-0123456789abcdef0", "meta-data/local-ipv4": "10.0.0.9",
                      "meta-data/autoscaling/target-lifecycle-state": "InService"})


class LifecycleStub:
    """Auto Scaling client: the emulator for everything but CompleteLifecycleAction."""

    def __init__(self, real):
        self.real, self.completed = real, []

    def complete_lifecycle_action(self, **kw):
        self.completed.append(kw)
        return {}

    def __getattr__(self, name):
        return getattr(self.real, name)


def _group(aws_client, name="demo-train", n=3):
    ec2, asg = aws_client("ec2"), aws_client("autoscaling")
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.create_launch_template(LaunchTemplateName="train-lt", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"})
    asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=n, MaxSize=n, DesiredCapacity=n,
                                  LaunchTemplate={"LaunchTemplateName": "train-lt"}, AvailabilityZones=["us-east-1a"])
    ids = [i["InstanceId"] for i in asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
           ["AutoScalingGroups"][0]["Instances"]]
    addrs = {i["InstanceId"]: i["PrivateIpAddress"] for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
             for i in r["Instances"]}
    return asg, ec2, addrs


def test_discovery_picks_the_lowest_private_address(aws_client):
    import ipaddress

    from runtime.train.discovery import discover
    asg, ec2, addrs = _group(aws_client)
    ordered = sorted(addrs.values(), key=ipaddress.IPv4Address)
    r = discover("demo-train", ordered[-1], autoscaling=asg, ec2=ec2)
    assert r.members == ordered and r.host == ordered[0] and not r.is_host
    assert r.endpoint == f"{ordered[0]}:29400"
    assert discover("demo-train", ordered[0], autoscaling=asg, ec2=ec2).is_host


def _small(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    return write_csv(tmp_path / "d.csv", x, (x[:, 0] > 0).astype(int))


def test_lifecycle_notice_checkpoints_then_completes_the_action(tmp_path, metadata, aws_client, monkeypatch):
    asg, _, addrs = _group(aws_client)
    instance = sorted(addrs)[0]
    metadata.values["meta-data/instance-id"] = instance
    metadata.values["meta-data/autoscaling/target-lifecycle-state"] = "Terminated"
    stub = LifecycleStub(asg)
    import runtime.train.termination as term
    monkeypatch.setattr(term, "autoscaling_client", lambda *a, **k: stub)
    cfg = validate(TrainConfig(workload="mlp", data=_small(tmp_path), label="target", out=str(tmp_path / "o"),
                               epochs=50, batch_size=8, hidden=[8],
                               termination_watch={"metadata_url": metadata.url, "hook": "demo-train-drain",
                                                  "poll_s": 0.01}))
    assert launch(cfg) == 143
    assert Checkpointer(cfg.checkpoint_dir).load_latest()["step"] >= 1
    assert stub.completed == [{"LifecycleHookName": "demo-train-drain", "AutoScalingGroupName": "demo-train",
                               "InstanceId": instance, "LifecycleActionResult": "CONTINUE"}]
    assert not (tmp_path / "o" / "metrics.json").exists()
    # the next run resumes from that checkpoint and finishes
    cfg2 = validate(TrainConfig(workload="mlp", data=cfg.data, label="target", out=str(tmp_path / "o"),
                                epochs=2, batch_size=8, hidden=[8]))
    assert launch(cfg2) == 0
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["resumed_from_step"] >= 1


def test_spot_notice_checkpoints_without_a_lifecycle_call(tmp_path, metadata, monkeypatch):
    metadata.values["meta-data/spot/instance-action"] = json.dumps({"action": "terminate", "time": "2026-01-01T00:00:00Z"})
    called = []
    import runtime.train.termination as term
    monkeypatch.setattr(term, "autoscaling_client", lambda *a, **k: called.append(1))
    cfg = validate(TrainConfig(workload="kmeans", data=_small(tmp_path), k=3, out=str(tmp_path / "o"), epochs=100,
                               tol=-1.0, termination_watch={"metadata_url": metadata.url, "hook": "h", "poll_s": 0.01}))
    assert launch(cfg) == 143
    assert Checkpointer(cfg.checkpoint_dir).load_latest() is not None and not called


def test_role_runs_from_the_runtime_config(tmp_path, metadata, aws_client, monkeypatch):
    asg, ec2, addrs = _group(aws_client, n=2)
    s3 = aws_client("s3")
    s3.create_bucket(Bucket="art")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.meta.endpoint_url)
    monkeypatch.setattr("runtime.train.role.WORKDIR", str(tmp_path / "work"))
    import runtime.train.role as role
    seen = {}

    def fake_launch(cfg, **kw):
        seen.update(cfg=cfg, **kw)
        from runtime.train.launcher import launch as real
        cfg.nproc, cfg.termination_watch = 1, None
        return real(cfg)

    me = sorted(addrs.values())[0]
    config = {"region": "us-east-1", "stack": "demo",
              "train": {"group": "demo-train", "nodes": {"min": 1, "max": 2}, "gpus_per_node": 0,
                        "lifecycle_hook": "demo-train-drain", "checkpoint_timeout_s": 600},
              "artifacts": {"bucket": "art", "checkpoints": "checkpoints/", "models": "models/latest/"},
              "workload": {"workload": "logreg", "data": _small(tmp_path), "label": "target", "epochs": 20}}
    assert role.run_from_config(config, launch=fake_launch, address=me) == 0
    assert seen["min_nodes"] == 1 and seen["max_nodes"] == 2 and seen["local"] is False
    assert seen["rdzv_endpoint"].split(":")[0] in addrs.values()
    assert seen["cfg"].checkpoint_dir == "s3://art/checkpoints"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="art")["Contents"]}
    assert {"models/latest/model.json", "models/latest/weights.pt"} <= keys
    assert any(k.startswith("checkpoints/step-") for k in keys)
    from runtime.model import load_artifact
    assert load_artifact("s3://art/models/latest").kind == "logreg"


def test_role_without_a_workload_is_bad_input():
    from runtime.errors import BadInput
    from runtime.train.role import run_from_config
    with pytest.raises(BadInput, match="workload.data"):
        run_from_config({"train": {"group": "g", "nodes": {"min": 1, "max": 1}}, "artifacts": {}})
