"""runtime/bootstrap.py run for real in a temp dir: a real venv and pip, a fake metadata server on
127.0.0.1, a local folder standing in for the bucket, and a systemctl stand-in that records calls.

Nothing leaves the machine: pip runs with --no-index against a wheelhouse of tiny wheels built here.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest

from runtime import bootstrap

sys.path.insert(0, os.path.dirname(__file__))
from bootmachine import INSTANCE, ROOT, WHEEL, Machine  # noqa: E402


@pytest.fixture
def imds(fake_imds):
    return fake_imds({"meta-data/instance-id": INSTANCE}).url


@pytest.fixture
def silent_metadata():
    """A listening socket that accepts connections (backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_good_bundle_installs_writes_the_unit_and_starts_it(tmp_path, imds):
    m = Machine(tmp_path, imds)
    assert bootstrap.run(m.boot) == 0
    venv = m.root / "opt" / "gpufleet" / "venv"
    assert (venv / "bin" / "gpufleet").is_file()
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import tinydep_mod, gpufleet_mod"], capture_output=True)
    assert out.returncode == 0, out.stderr
    unit = (m.root / "etc" / "systemd" / "system" / "gpufleet-serve.service").read_text()
    assert f"ExecStart={venv}/bin/gpufleet run --config {m.root}/etc/gpufleet/runtime.json" in unit
    assert "TimeoutStopSec=42" in unit
    assert m.calls.read_text().splitlines() == ["daemon-reload", "enable --now gpufleet-serve.service"]
    steps = [ln.split(" ok (")[0] for ln in m.lines() if " ok (" in ln]
    assert steps == [f"{bootstrap.PREFIX} {s}" for s in ("read config", "read metadata", "fetch bundle",
                                                          "verify bundle", "create venv", "install",
                                                          "write unit", "start")]
    assert all(ln.endswith(" s)") for ln in m.lines() if " ok (" in ln)
    assert m.lines()[-1] == f"{bootstrap.PREFIX} serve runtime started"
    log = (m.root / "var" / "log" / "gpufleet-bootstrap.log").read_text().splitlines()
    assert log == m.lines()
    assert m.marks == []


def test_tampered_bundle_stops_with_the_digest_named(tmp_path, imds):
    m = Machine(tmp_path, imds)
    wheel = m.bucket / "bundle" / WHEEL
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    assert bootstrap.run(m.boot) == 1
    got = hashlib.sha256(wheel.read_bytes() + (m.bucket / "bundle" / "requirements.txt").read_bytes()).hexdigest()
    line = m.failed_line()
    assert line.startswith(f"{bootstrap.PREFIX} verify bundle FAILED: sha256 of {WHEEL} + requirements.txt is {got}")
    assert "(expected " in line
    m.started_nothing()
    assert not (m.root / "opt" / "gpufleet" / "venv").exists()
    assert m.marks == [("i-0123456789abcdef0", "us-east-1")]


def test_unparsable_config_is_named_with_line_and_column(tmp_path, imds):
    m = Machine(tmp_path, imds)
    (m.root / "etc" / "gpufleet" / "runtime.json").write_text('{\n "role": "serve",\n "bundle": {,}\n}\n')
    assert bootstrap.run(m.boot) == 1
    line = m.failed_line()
    assert "read config FAILED:" in line and "runtime.json is not valid JSON" in line
    assert "line 3 column 13" in line
    m.started_nothing()


def test_metadata_that_never_answers_is_a_named_timeout(tmp_path, silent_metadata):
    m = Machine(tmp_path, silent_metadata)
    assert bootstrap.run(m.boot) == 1
    assert m.failed_line() == (f"{bootstrap.PREFIX} read metadata FAILED: instance metadata at "
                               f"{silent_metadata} did not answer within 0.5 s")
    m.started_nothing()
    assert m.marks == []  # no instance id to mark; said so
    assert "not marked unhealthy: no instance id" in m.lines()[-1]


def test_wheelhouse_missing_a_wheel_names_the_requirement(tmp_path, imds):
    m = Machine(tmp_path, imds, requirements="tinydep==1.0\nabsentdep==2.0\n")
    assert bootstrap.run(m.boot) == 1
    assert m.failed_line() == (f"{bootstrap.PREFIX} install FAILED: no wheel for absentdep==2.0 "
                               "in the wheelhouse or index")
    m.started_nothing()
    assert m.marks == [("i-0123456789abcdef0", "us-east-1")]


def test_gcp_marks_nothing(tmp_path, silent_metadata):
    m = Machine(tmp_path, silent_metadata)
    path = m.root / "etc" / "gpufleet" / "runtime.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "cloud": "gcp"}))
    assert bootstrap.run(m.boot) == 1
    assert "read metadata FAILED" in m.failed_line()
    assert m.marks == [] and "not marked" not in m.lines()[-1]


def test_aws_unhealthy_through_the_cli():
    calls = []

    def fake_run(argv, **kw):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")
    bootstrap.aws_mark_unhealthy(run=fake_run, which=lambda name: "/usr/bin/aws")("i-1", "eu-west-1")
    assert calls == [["aws", "autoscaling", "set-instance-health", "--region", "eu-west-1", "--instance-id", "i-1",
                      "--health-status", "Unhealthy", "--no-should-respect-grace-period"]]


def test_aws_unhealthy_through_boto3_without_the_cli(monkeypatch, moto_reset):
    import boto3

    asg = boto3.client("autoscaling", endpoint_url=moto_reset, region_name="us-east-1")
    ec2 = boto3.client("ec2", endpoint_url=moto_reset, region_name="us-east-1")
    ec2.create_launch_template(LaunchTemplateName="boot-lt", LaunchTemplateData={"ImageId": "ami-12c6146b",
                                                                             "InstanceType": "t3.micro"})
    asg.create_auto_scaling_group(AutoScalingGroupName="g", MinSize=1, MaxSize=1, DesiredCapacity=1,
                                  LaunchTemplate={"LaunchTemplateName": "boot-lt"}, AvailabilityZones=["us-east-1a"])
    instance = asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_reset)
    bootstrap.aws_mark_unhealthy(which=lambda name: None)(instance, "us-east-1")
    health = asg.describe_auto_scaling_instances(InstanceIds=[instance])["AutoScalingInstances"][0]["HealthStatus"]
    assert health.upper() == "UNHEALTHY"


def test_runs_as_a_lone_script_with_stdlib_only(tmp_path):
    """The file is copied alone, as on an instance, and run with -I (no project on sys.path)."""
    script = tmp_path / "bootstrap.py"
    shutil.copyfile(ROOT / "runtime" / "bootstrap.py", script)
    etc = tmp_path / "root" / "etc" / "gpufleet"
    etc.mkdir(parents=True)
    (etc / "runtime.json").write_text("{not json")
    proc = subprocess.run([sys.executable, "-I", str(script), "--root", str(tmp_path / "root"), "--console", "-"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[0].startswith(f"{bootstrap.PREFIX} read config FAILED:")
    assert "line 1 column 2" in proc.stderr


def _code(source: str) -> str:
    """The program without docstrings (and the `pass` that stands in for a docstring-only body)."""
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [n for n in body if not (isinstance(n, ast.Pass) or (
                isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)))]
    return ast.dump(tree)


def test_the_embedded_bootstrap_runs_as_a_lone_script(tmp_path):
    """What user_data carries (docstrings and comments stripped) is the same program, and runs."""
    from infra.render.render import embedded_bootstrap

    script = tmp_path / "bootstrap.py"
    script.write_text(embedded_bootstrap())
    assert _code(script.read_text()) == _code((ROOT / "runtime" / "bootstrap.py").read_text())
    proc = subprocess.run([sys.executable, "-I", str(script), "--root", str(tmp_path / "root"), "--console", "-"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{bootstrap.PREFIX} read config FAILED: cannot read ")


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("aws-*.yaml")), ids=lambda p: p.stem)
def test_aws_user_data_embeds_this_bootstrap_within_ec2s_limit(example, tmp_path):
    from infra.render.render import AWS_USER_DATA_LIMIT, render_files
    from infra.spec import load_stack

    for name, data in render_files(load_stack(example), "aws").items():
        if not name.startswith("user_data/"):
            continue
        script = data.decode()
        assert len(data) + 63 <= AWS_USER_DATA_LIMIT, (name, len(data))
        (blob,) = re.findall(r"base64 -d <<<'([A-Za-z0-9+/=]+)' \| gunzip >/opt/gpufleet/bootstrap.py", script)
        embedded = gzip.decompress(base64.b64decode(blob)).decode()
        assert _code(embedded) == _code((ROOT / "runtime" / "bootstrap.py").read_text())
        assert re.search(r'\nexec "\$PY" /opt/gpufleet/bootstrap.py --stop-timeout-s \d+$', script.rstrip())
        path = tmp_path / "user_data.sh"
        path.write_text(script)
        assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
