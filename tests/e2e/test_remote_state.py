"""Remote state against the emulator: the S3 backend with a lock, exercised through the CLI.

A small training-only stack (no load balancer, so an apply takes seconds) keeps its state in
the emulator's S3. Two `gpufleet apply` runs started together, from two rendered roots as two
CI runners would, share that state: exactly one proceeds, the other stops naming the lock and
its holder, and the state is intact afterwards. Real Terraform (the embedded one), real moto.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from e2e_helpers import ENV, ROOT, aws_client, run_gpufleet  # noqa: E402

pytestmark = pytest.mark.slow


def _spec(tmp_path, backend: dict) -> tuple[str, dict]:
    suffix = uuid.uuid4().hex[:6]  # the emulator may be shared with earlier runs: fresh names
    backend = {"type": "s3", "bucket": f"gpufleet-state-{suffix}", "key": f"stacks/lock-{suffix}.tfstate", **backend}
    spec = {
        "name": f"lock-{suffix}",
        "network": {"cidr": "10.40.0.0/16", "zones": 1},
        "training": {"instance_type": "g5.xlarge", "nodes": {"min": 1, "max": 1}},
        "backend": backend,
    }
    path = tmp_path / "stack.yaml"
    path.write_text(json.dumps(spec))  # YAML is a superset of JSON
    return str(path), backend


def _s3(info):
    return aws_client("s3", info.endpoint)


def test_missing_state_bucket_stops_before_init(running_emulator, tmp_path):
    spec, backend = _spec(tmp_path, {})
    out = tmp_path / "root"
    res = run_gpufleet("plan", spec, "--root", str(out), check=False)
    assert res.returncode == 2, res.stderr
    assert (f"error: backend.bucket: the state bucket {backend['bucket']!r} does not exist in the emulator at "
            f"{running_emulator.endpoint}; create it with `gpufleet state bootstrap {spec}`") in res.stderr
    assert not (out / ".terraform").exists() and not (out / "terraform.tfstate").exists()


def test_two_applies_one_lock(running_emulator, tmp_path):
    spec, backend = _spec(tmp_path, {})
    boot = run_gpufleet("state", "bootstrap", spec)
    assert f"bucket s3://{backend['bucket']} created" in boot.stdout
    assert "exists" in run_gpufleet("state", "bootstrap", spec).stdout  # idempotent
    roots = [tmp_path / "runner-a", tmp_path / "runner-b"]
    for root in roots:  # init both first, so the race below is between the applies themselves
        assert "Plan: " in run_gpufleet("plan", spec, "--root", str(root)).stdout

    procs = [subprocess.Popen([sys.executable, "-m", "infra.cli", "apply", spec, "--root", str(root)], cwd=ROOT,
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for root in roots]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 1], "\n".join(err for _, _, err in results)
    winner = next(i for i, (rc, _, _) in enumerate(results) if rc == 0)
    loser_err = results[1 - winner][2]
    print(loser_err)
    assert "failed: the stack's state is locked by another Terraform run, so this apply did not start" in loser_err
    lock_id = re.search(r"lock:\s+([0-9a-f-]{36})", loser_err).group(1)
    assert re.search(r"held by:\s+\S+@\S+", loser_err) and "operation: apply" in loser_err
    assert f"gpufleet state unlock SPEC {lock_id}" in loser_err
    assert "applying stack" in loser_err and " done " not in loser_err  # it changed nothing

    # The state is intact: one state, every resource of the winner's apply, no lock left behind.
    s3 = _s3(running_emulator)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=backend["bucket"])["Contents"]}
    assert keys == {backend["key"]}
    state = json.loads(s3.get_object(Bucket=backend["bucket"], Key=backend["key"])["Body"].read())
    applied = int(re.search(r"applied (\d+) resource", results[winner][2]).group(1))
    managed = [r for r in state["resources"] if r["mode"] == "managed"]
    assert sum(len(r["instances"]) for r in managed) == applied
    loser_root = str(roots[1 - winner])
    try:
        assert "Plan: 0 to add, 0 to change, 0 to destroy." in run_gpufleet("plan", spec, "--root", loser_root).stdout
        assert "applied 0 resource(s)" in run_gpufleet("apply", spec, "--root", loser_root).stderr
    finally:
        run_gpufleet("destroy", spec, "--root", loser_root)


@pytest.mark.parametrize("lock", ["lockfile", "dynamodb"])
def test_a_held_lock_is_named_and_released(running_emulator, tmp_path, lock):
    """A lock left by a run that died: plan names it; `gpufleet state unlock` releases it."""
    extra = {"lock": "dynamodb", "dynamodb_table": f"locks-{uuid.uuid4().hex[:6]}"} if lock == "dynamodb" else {}
    spec, backend = _spec(tmp_path, extra)
    out = str(tmp_path / "root")
    run_gpufleet("state", "bootstrap", spec)
    run_gpufleet("plan", spec, "--root", out)
    held = {"ID": str(uuid.uuid4()), "Operation": "OperationTypeApply", "Info": "", "Who": "ci@runner-7",
            "Version": "1.15.5", "Created": "2026-01-01T00:00:00Z", "Path": f"{backend['bucket']}/{backend['key']}"}
    if lock == "lockfile":
        _s3(running_emulator).put_object(Bucket=backend["bucket"], Key=backend["key"] + ".tflock",
                                         Body=json.dumps(held).encode())
    else:
        aws_client("dynamodb", running_emulator.endpoint).put_item(
            TableName=backend["dynamodb_table"], Item={"LockID": {"S": held["Path"]}, "Info": {"S": json.dumps(held)}})

    res = run_gpufleet("plan", spec, "--root", out, check=False)
    assert res.returncode == 1, res.stderr
    assert "so this plan did not start" in res.stderr and f"lock:      {held['ID']}" in res.stderr
    assert "held by:   ci@runner-7" in res.stderr

    released = run_gpufleet("state", "unlock", spec, held["ID"], "--root", out)
    assert f"released lock {held['ID']}" in released.stdout
    assert "Plan: " in run_gpufleet("plan", spec, "--root", out).stdout
