"""The rendered bootstrap, executed: serving and training instances booted in private namespaces.

Each instance is a private mount + network namespace (tests/bootstrap/netns.py) with a fake
IMDSv2 on 169.254.169.254, the emulator (moto) relayed to 127.0.0.1 as its only reachable
service, a systemctl stand-in, and no route out. The user_data is what the emulator target's
apply put in the launch template (training) or what render writes (serving); it runs as root
with bash, writes the runtime config, and runs runtime/bootstrap.py, which fetches the bundle
the apply uploaded, checks its digest, installs it into a venv and starts the unit. What is
stood in, and why, is in conftest.py and netns.py. Skipped where unshare is not permitted.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import netns  # noqa: E402

pytestmark = pytest.mark.slow

SERVE_PORT = 8080


def wait_for(predicate, timeout: float, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()


def _diagnose(inst, role) -> str:
    return f"\n--- console\n{inst.console()}\n--- bootstrap log\n{inst.bootstrap_log()}\n--- unit log\n{inst.unit_log(role)[-4000:]}"


def test_serving_instance_boots_offline_and_serves_predictions(fleet):
    inst = fleet.instance("serve", fleet.metadata("i-0a5e00000000000001", "10.20.0.50", "us-east-1a",
                                                f"{fleet.stack}-serve"))
    # No route out of the namespace: PyPI, the internet, the host's other services.
    probe = inst.run(sys.executable, "-c", "import socket; socket.create_connection(('151.101.0.223', 443), timeout=3)",
                     check=False)
    assert probe.returncode != 0 and "unreachable" in probe.stderr.lower(), probe.stderr

    code, _ = inst.boot(fleet.user_data["serve"], fleet.region)
    assert code == 0, _diagnose(inst, "serve")
    console = inst.console()
    for step in ("read config", "read metadata", "fetch bundle", "verify bundle", "create venv", "check torch",
                 "fetch wheelhouse", "install", "write unit", "start"):
        assert re.search(rf"gpufleet-bootstrap: {step} ok \(\d+\.\d+ s\)", console), (step, console)
    assert inst.imds.requests and "meta-data/instance-id" in inst.imds.requests

    ready = wait_for(lambda: inst.http_get(f"http://127.0.0.1:{SERVE_PORT}/readyz")[0] == 200, timeout=60)
    assert ready, _diagnose(inst, "serve")
    status, body = inst.http_post(f"http://127.0.0.1:{SERVE_PORT}/v1/predict",
                                  json.dumps({"instances": [[0.5, -1.0, 0.25, 2.0], [-3.0, 0.0, 0.0, 1.0]]}))
    assert status == 200, body
    assert len(json.loads(body)["predictions"]) == 2
    # Everything the instance fetched came through the emulator (the bucket): the bundle and, of
    # the wheelhouse the apply uploaded, only what the image lacks (xxhash, see build_image).
    fetched = sorted(p.name for p in inst.path("/opt/gpufleet/wheelhouse").glob("*.whl"))
    assert len(fetched) == 1 and fetched[0].startswith("xxhash-"), fetched
    assert 10_000 < inst.relay.bytes_in < fleet.wheelhouse_bytes / 4, (inst.relay.bytes_in, fleet.wheelhouse_bytes)
    site = next(inst.path("/opt/gpufleet/venv/lib").glob("python*/site-packages"))
    assert list(site.glob("xxhash-*.dist-info")) and not list(site.glob("numpy-*.dist-info"))

    # systemctl stop sends the unit's KillSignal (SIGTERM): the replica drains and exits 0.
    inst.run("systemctl", "stop", "gpufleet-serve.service", env=inst.environment(fleet.region), timeout=120)
    assert inst.unit_exit("serve") == 0, inst.unit_log("serve")[-3000:]
    # Nothing leaked to the host.
    assert not Path("/etc/gpufleet").exists() and not Path("/opt/gpufleet").exists()


def _boot_all(instances, user_data, region):
    results = {}

    def one(inst):
        results[inst.name] = inst.boot(user_data, region)

    threads = [threading.Thread(target=one, args=(i,)) for i in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _checkpoints(fleet):
    s3, bucket = fleet.client("s3"), fleet.bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="checkpoints/").get("Contents", [])]
    return sorted(keys)


def test_training_fleet_trains_together_then_checkpoints_on_a_spot_notice(fleet):
    (id0, addr0, zone0), (id1, addr1, zone1) = fleet.train_instances
    group = f"{fleet.stack}-train"
    fabric = netns.Fabric()
    try:
        a = fleet.instance("train-a", fleet.metadata(id0, addr0, zone0, group))
        b = fleet.instance("train-b", fleet.metadata(id1, addr1, zone1, group))
        fabric.attach(a, addr0, 16)
        fabric.attach(b, addr1, 16)

        results = _boot_all([a, b], fleet.user_data["train"], fleet.region)
        for inst in (a, b):
            assert results[inst.name][0] == 0, _diagnose(inst, "train")

        # Both ranks joined one group (rank 0 on the lowest address) and are taking steps.
        def training():
            if a.unit_exit("train") is not None or b.unit_exit("train") is not None:
                return "ended"
            return _checkpoints(fleet) and "step" in a.unit_log("train") + b.unit_log("train")
        assert wait_for(training, timeout=90, every=0.5) is True, _diagnose(a, "train") + _diagnose(b, "train")

        b.imds.values["meta-data/spot/instance-action"] = json.dumps({"action": "terminate",
                                                                      "time": "2026-12-02T00:02:00Z"})
        ended = wait_for(lambda: a.unit_exit("train") is not None and b.unit_exit("train") is not None, timeout=60)
        assert ended, _diagnose(a, "train") + _diagnose(b, "train")
        logs = a.unit_log("train") + b.unit_log("train")
        # Rank 0 (on the lowest address, a) stopped for its peer's notice: one group across both.
        stop = re.search(r"\[train\] stopped step=(\d+) reason=peer checkpoint=s3://([^/]+)/checkpoints", a.unit_log("train"))
        assert stop and stop[2] == fleet.bucket, logs[-3000:]
        assert "spot/instance-action" in " ".join(b.imds.requests)
        # Both units ended with EXIT_STOPPED (143), after the checkpoint of the step they stopped at.
        assert (a.unit_exit("train"), b.unit_exit("train")) == (143, 143), logs[-3000:]
        steps = {int(m[1]) for m in (re.match(r"checkpoints/step-0*(\d+)/", k) for k in _checkpoints(fleet)) if m}
        assert max(steps) == int(stop[1]), (steps, stop[0])
    finally:
        fabric.close()


def test_tampered_bundle_stops_the_boot_naming_the_digest(fleet):
    """A bundle whose bytes differ from the digest in user_data: one FAILED line, nothing started."""
    s3 = fleet.client("s3")
    tampered = f"{fleet.stack}-tampered"
    s3.create_bucket(Bucket=tampered)
    # The bundle's files and the wheelhouse's manifest (its wheels are not reached: the digest
    # fails first), with one line added to requirements.txt.
    for key in (o["Key"] for o in s3.list_objects_v2(Bucket=fleet.bucket, Prefix="bundle/")["Contents"]
                if not o["Key"].startswith("bundle/wheelhouse/") or not o["Key"].endswith(".whl")):
        body = s3.get_object(Bucket=fleet.bucket, Key=key)["Body"].read()
        if key == "bundle/requirements.txt":
            body += b"evil-package==6.6.6\n"
        s3.put_object(Bucket=tampered, Key=key, Body=body)
    user_data = fleet.user_data["serve"].replace(fleet.bucket, tampered)
    digest = re.search(r"\b([0-9a-f]{64})\b", user_data)[1]
    # One of the group's own instances (the training fleet's first; its run is over): the
    # bootstrap marks it unhealthy in its Auto Scaling group, which the emulator records.
    instance_id, address, zone = fleet.train_instances[0]
    inst = fleet.instance("tampered", fleet.metadata(instance_id, address, zone, f"{fleet.stack}-train"))

    code, _ = inst.boot(user_data, fleet.region)
    console = inst.console()
    assert code != 0
    failed = [ln for ln in console.splitlines() if "FAILED" in ln]
    assert len(failed) == 1 and "verify bundle FAILED" in failed[0] and digest in failed[0], console
    assert "install ok" not in console and "start ok" not in console
    assert not inst.unit_started("serve") and not inst.path("/etc/systemd/system/gpufleet-serve.service").exists()
    assert f"marked {instance_id} unhealthy" in console, console
    health = fleet.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])
    assert health["AutoScalingInstances"][0]["HealthStatus"].lower() == "unhealthy"
