"""Warm pools: a warm-pooled instance installs everything, serves only once the instance metadata
says InService, and completes the launch lifecycle hook only after /readyz answers 200.

The metadata service is conftest's fake IMDSv2 on 127.0.0.1 (its values are changed while the
test runs, as Auto Scaling would); the AWS CLI is a stand-in script on PATH that records its
arguments (a real Auto Scaling API cannot run here); the runtime is a small HTTP server process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime import bootstrap

sys.path.insert(0, os.path.dirname(__file__))
from bootmachine import INSTANCE, ROOT, Machine  # noqa: E402

STATE = "meta-data/autoscaling/target-lifecycle-state"
GROUP = "demo-serve-main"
WARM = {"warm_pool": {"state": "stopped", "launch_hook_suffix": "-launch"}}

# The runtime stand-in: /readyz answers 503 until the file argv[2] exists, then 200; it writes
# its pid to argv[3] when it starts and exits 0 on SIGTERM.
RUNTIME = """
import http.server, os, signal, sys
port, ready, started = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if os.path.exists(ready) else 503)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), H)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
open(started, "w").write(str(os.getpid()))
server.serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("state", ["Warmed:Stopped", "Warmed:Running"])
def test_a_warmed_instance_installs_enters_the_pool_and_waits(tmp_path, fake_imds, state):
    imds = fake_imds({"meta-data/instance-id": INSTANCE, STATE: state})
    m = Machine(tmp_path, imds.url, config=WARM, env=f"GPUFLEET_GROUP={GROUP}\n")
    assert bootstrap.run(m.boot) == 0, m.lines()
    assert m.steps()[-3:] == ["write unit", "start", "enter warm pool"]
    assert m.completed == [(GROUP, f"{GROUP}-launch", INSTANCE, "us-east-1")]
    unit = (m.root / "etc" / "systemd" / "system" / "gpufleet-serve.service").read_text()
    execstart = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    assert execstart.startswith(f"ExecStart={m.root}/opt/gpufleet/venv/bin/python -m runtime.warm_pool ")
    assert execstart.endswith(f"-- {m.root}/opt/gpufleet/venv/bin/gpufleet run --config {m.root}/etc/gpufleet/runtime.json")
    assert m.lines()[-1].endswith(f"installed in the warm pool ({state}): it serves once the instance is InService")


def test_an_instance_launched_in_service_leaves_the_hook_to_the_waiter(tmp_path, fake_imds):
    imds = fake_imds({"meta-data/instance-id": INSTANCE, STATE: "InService"})
    m = Machine(tmp_path, imds.url, config=WARM, env=f"GPUFLEET_GROUP={GROUP}\n")
    assert bootstrap.run(m.boot) == 0, m.lines()
    assert m.completed == []  # not before /readyz
    assert "enter warm pool" not in m.steps()


def test_a_warm_pool_needs_the_group_name(tmp_path, fake_imds):
    imds = fake_imds({"meta-data/instance-id": INSTANCE, STATE: "Warmed:Stopped"})
    m = Machine(tmp_path, imds.url, config=WARM)
    assert bootstrap.run(m.boot) == 1
    assert "read config FAILED:" in m.failed_line() and "has no GPUFLEET_GROUP" in m.failed_line()
    m.started_nothing()


def test_serves_only_in_service_and_completes_the_hook_after_readyz(tmp_path, fake_imds):
    imds = fake_imds({"meta-data/instance-id": INSTANCE, STATE: "Warmed:Running"})
    port = _free_port()
    m = Machine(tmp_path, imds.url, config={**WARM, "serve": {"port": port}}, env=f"GPUFLEET_GROUP={GROUP}\n")
    bin_dir, calls, ready, started = tmp_path / "bin", tmp_path / "aws.calls", tmp_path / "ready", tmp_path / "started"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    # records its arguments, and whether /readyz answered 200 at that moment (it does iff `ready` exists)
    aws.write_text(f'#!/bin/sh\necho "$@" >>{calls}\n[ -e {ready} ] && echo ready >>{calls} || echo not-ready >>{calls}\n')
    aws.chmod(0o755)
    runtime = tmp_path / "runtime.py"
    runtime.write_text(RUNTIME)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    waiter = subprocess.Popen(
        [sys.executable, "-m", "runtime.warm_pool", "--root", str(m.root),
         "--metadata-url", imds.url, "--metadata-timeout-s", "1", "--console", str(m.console), "--poll-s", "0.1", "--",
         sys.executable, str(runtime), str(port), str(ready), str(started)], env=env)
    try:
        time.sleep(1.0)
        imds.values[STATE] = "Warmed:Stopped"
        time.sleep(0.5)
        assert not started.exists() and not calls.exists()  # not serving while warmed
        assert [ln for ln in m.lines() if "not serving" in ln] == [
            f"{bootstrap.PREFIX} not serving: the instance is Warmed:Running; waiting for InService",
            f"{bootstrap.PREFIX} not serving: the instance is Warmed:Stopped; waiting for InService"]
        imds.values[STATE] = "InService"
        _wait_for(started.exists)
        time.sleep(0.5)
        assert not calls.exists()  # serving, but /readyz is 503: the hook waits
        ready.touch()
        _wait_for(lambda: calls.exists() and len(calls.read_text().splitlines()) == 2)
        args, readyz = calls.read_text().splitlines()
        assert args == (f"autoscaling complete-lifecycle-action --region us-east-1 --lifecycle-action-result CONTINUE "
                        f"--instance-id {INSTANCE} --lifecycle-hook-name {GROUP}-launch --auto-scaling-group-name {GROUP}")
        assert readyz == "ready"
        assert any(f"launch lifecycle action {GROUP}-launch completed" in ln for ln in m.lines())
        child = int(started.read_text())
        waiter.send_signal(signal.SIGTERM)  # systemd's KillSignal: forwarded to the runtime
        assert waiter.wait(timeout=20) == 0
        _wait_for(lambda: not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text())
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_complete_lifecycle_through_the_cli():
    calls = []

    def fake_run(argv, **kw):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")
    bootstrap.aws_complete_lifecycle(run=fake_run, which=lambda name: "/usr/bin/aws")("g", "g-launch", "i-1", "eu-west-1")
    assert calls == [["aws", "autoscaling", "complete-lifecycle-action", "--region", "eu-west-1",
                      "--lifecycle-action-result", "CONTINUE", "--instance-id", "i-1", "--lifecycle-hook-name",
                      "g-launch", "--auto-scaling-group-name", "g"]]


# --- the spec and what renders ---------------------------------------------------------------------

def _stack(**serving):
    return {"name": "warm-fleet", "serving": {"instance_type": "g5.xlarge", "replicas": {"min": 1, "max": 4},
                                              "warm_pool": {"min": 2, "state": "running"}, **serving}}


def _problems(data: dict) -> list[str]:
    from infra.spec.load import parse_stack
    from runtime.errors import BadInput

    try:
        parse_stack(data)
    except BadInput as e:
        return e.problems
    return []


def test_warm_pool_renders_the_pool_the_launch_hook_and_no_mixed_policy():
    from infra.render.render import render_files
    from infra.spec.load import parse_stack

    files = render_files(parse_stack(_stack()), "aws")
    main = files["main.tf"].decode()
    assert 'warm_pool = {\n    "min_size"              = 2\n    "state"                 = "Running"' in main
    assert json.loads(files["runtime/serve.json"])["warm_pool"] == {"state": "running", "launch_hook_suffix": "-launch"}
    assert "group = \"warm-fleet-serve-main\"" in main.replace("  ", " ").replace("  ", " ")
    asg = files["modules/aws/gpu-asg/main.tf"].decode()
    assert 'dynamic "initial_lifecycle_hook"' in asg and "autoscaling:EC2_INSTANCE_LAUNCHING" in asg
    assert 'for_each = var.warm_pool == null ? [1] : []' in asg  # the mixed instances policy only without one


def test_warm_pool_refused_on_gcp_by_name():
    data = {**_stack(), "cloud": "gcp", "region": "us-central1", "gcp": {"project": "my-project-1"}}
    data["serving"]["instance_type"] = "g2-standard-4"
    assert any(p.startswith("serving.warm_pool: warm pools are AWS Auto Scaling's") for p in _problems(data))


def test_warm_pool_needs_on_demand_capacity():
    problems = _problems(_stack(capacity="spot"))
    assert any(p.startswith("serving.capacity: a warm pool needs on-demand instances") and "'spot'" in p
               for p in problems), problems


def test_warm_pool_min_above_the_groups_max_is_named():
    problems = _problems(_stack(warm_pool={"min": 9, "state": "stopped"}))
    assert any(p.startswith("serving.warm_pool.min:") and "(got 9 with serving.replicas.max 4" in p for p in problems)
