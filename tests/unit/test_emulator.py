"""The emulator's lifecycle (start, reuse, status, stop by pid) and stale-state detection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra import emulator
from runtime.process import pid_alive
from infra.targets.emulator import RUN_RECORD, STATE_FILE, StaleState, check_state

ROOT = Path(__file__).resolve().parents[2]


def test_start_reuse_status_stop(tmp_path):
    info, started = emulator.start(tmp_path)
    try:
        assert started and info.endpoint.startswith("http://127.0.0.1:")
        again, started_again = emulator.start(tmp_path)
        assert not started_again and again.run_id == info.run_id and again.pid == info.pid
        assert emulator.status(tmp_path).port == info.port
        import boto3

        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=info.endpoint,
                           aws_access_key_id="test", aws_secret_access_key="test")
        names = [i["Name"] for i in ec2.describe_images(Owners=["amazon"])["Images"]]
        assert any(n.startswith("Deep Learning OSS Nvidia Driver AMI GPU PyTorch") for n in names)
    finally:
        assert emulator.stop(tmp_path)
    assert emulator.status(tmp_path) is None
    assert not (tmp_path / "emulator.json").exists()
    assert not pid_alive(info.pid)  # gone (or a zombie awaiting this test process's reap)
    assert emulator.stop(tmp_path) is False


def test_unresponsive_emulator_is_still_stopped_by_pid(tmp_path):
    """A process that lives but does not answer (moto crashed inside) is not leaked."""
    import time

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "emulator.json").write_text(json.dumps(
            {"pid": proc.pid, "port": 1, "run_id": "x", "started_at": time.time(), "log": "x"}))
        assert emulator.status(tmp_path) is None
        assert (tmp_path / "emulator.json").exists(), "the record is kept so stop can find the pid"
        assert emulator.stop(tmp_path) is True
        assert proc.wait(timeout=10) is not None
    finally:
        proc.kill()


def test_two_regions_work(tmp_path):
    """The seeded AMI list must not break the second region a stack uses."""
    import boto3

    info, _ = emulator.start(tmp_path)
    try:
        for region in ("us-east-1", "us-west-2", "eu-west-1"):
            ec2 = boto3.client("ec2", region_name=region, endpoint_url=info.endpoint,
                               aws_access_key_id="test", aws_secret_access_key="test")
            assert ec2.describe_availability_zones()["AvailabilityZones"]
    finally:
        emulator.stop(tmp_path)


def test_stale_record_is_cleared(tmp_path):
    (tmp_path / "emulator.json").write_text(json.dumps(
        {"pid": 999999, "port": 1, "run_id": "x", "started_at": 0, "log": "x"}))
    assert emulator.status(tmp_path) is None
    assert not (tmp_path / "emulator.json").exists()


def _state(workdir: Path, resources: int) -> None:
    (workdir / STATE_FILE).write_text(json.dumps({"version": 4, "resources": [{}] * resources}))


def test_state_from_another_emulator_run_is_refused(tmp_path):
    _state(tmp_path, 3)
    (tmp_path / RUN_RECORD).write_text("old-run\n")
    with pytest.raises(StaleState, match="--recreate"):
        check_state(tmp_path, "new-run")
    check_state(tmp_path, "old-run")  # same run: fine
    check_state(tmp_path, "new-run", recreate=True)
    assert not (tmp_path / STATE_FILE).exists()
    assert list(tmp_path.glob(f"{STATE_FILE}.stale-*")), "the old state is kept aside, not deleted"


def test_empty_state_is_not_stale(tmp_path):
    _state(tmp_path, 0)
    check_state(tmp_path, "any-run")


def test_cli_reports_stale_state(tmp_path):
    """After an emulator restart, plan says what happened and how to recover, exit 1."""
    env = {**os.environ, "GPUFLEET_BUILD_DIR": str(tmp_path)}
    spec = ROOT / "examples" / "aws-gpu-fleet.yaml"
    out = tmp_path / "demo"
    out.mkdir()
    _state(out, 5)
    (out / RUN_RECORD).write_text("gone-run\n")
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "infra.cli", *args, str(spec), "--root", str(out)],
                              capture_output=True, text=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)

    try:
        proc = cli("plan")
        assert proc.returncode == 1, proc.stderr
        assert "was written against emulator run gone-run" in proc.stderr
        assert "gpufleet apply SPEC --recreate" in proc.stderr
        assert (out / STATE_FILE).exists(), "nothing is discarded without being asked"
        forget = cli("destroy", "--forget")
        assert forget.returncode == 0, forget.stderr
        assert "nothing to destroy" in forget.stderr
        assert not (out / STATE_FILE).exists() and list(out.glob(f"{STATE_FILE}.stale-*"))
    finally:
        subprocess.run([sys.executable, "-m", "infra.cli", "emulator", "stop"], env=env, cwd=ROOT)


def test_status_survives_a_second_launch_template_version(tmp_path):
    """moto 5.2's /moto-api/data.json answers 500 once a launch template has a second version (an
    apply that changes user_data makes one); the emulator must still count as running, or gpufleet
    would restart it and every resource would be lost."""
    import base64
    import urllib.error
    import urllib.request

    import boto3

    info, _ = emulator.start(tmp_path)
    try:
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=info.endpoint,
                           aws_access_key_id="test", aws_secret_access_key="test")
        lt = ec2.create_launch_template(LaunchTemplateName="t", LaunchTemplateData={
            "ImageId": "ami-12c6146b", "InstanceType": "g5.xlarge", "UserData": base64.b64encode(b"a").decode()})
        asg = boto3.client("autoscaling", region_name="us-east-1", endpoint_url=info.endpoint,
                           aws_access_key_id="test", aws_secret_access_key="test")
        asg.create_auto_scaling_group(
            AutoScalingGroupName="g", MinSize=0, MaxSize=1, AvailabilityZones=["us-east-1a"],
            MixedInstancesPolicy={"LaunchTemplate": {"LaunchTemplateSpecification": {
                "LaunchTemplateId": lt["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"}}})
        ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplate"]["LaunchTemplateId"], SourceVersion="1",
                                           LaunchTemplateData={"UserData": base64.b64encode(b"b").decode()})
        with pytest.raises(urllib.error.HTTPError):  # the condition this guards against still holds
            urllib.request.urlopen(f"{info.endpoint}/moto-api/data.json")
        assert emulator.status(tmp_path) is not None
        again, started = emulator.start(tmp_path)
        assert not started and again.pid == info.pid
    finally:
        emulator.stop(tmp_path)
