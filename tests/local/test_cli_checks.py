"""`up`/`down`/`status` checks that change nothing: not up, ports in use, bad input, no training."""

from __future__ import annotations

import shutil
import socket

import pytest

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")


def test_down_and_status_on_a_stack_that_is_not_up(local_stack):
    spec = local_stack.spec()
    out = local_stack.cli("down", spec)
    assert out.returncode == 0 and "not up: nothing to stop" in out.stderr
    assert not local_stack.build.exists()
    out = local_stack.cli("status", spec)
    assert out.returncode == 1 and "is not up" in out.stdout
    assert local_stack.status(spec)["up"] is False


@needs_haproxy
def test_ports_in_use_are_reported_and_nothing_starts(local_stack):
    spec = local_stack.spec()
    import json

    base = json.loads(spec.read_text())["local"]["base_port"]
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", base + 2))
        s.listen()
        out = local_stack.cli("up", spec, "--model", local_stack.model)
    assert out.returncode == 1
    assert f"port(s) in use on 127.0.0.1: {base + 2}" in out.stderr and "nothing changed" in out.stderr
    assert not (local_stack.dir() / "manager.pid").exists()


def test_bad_input_is_exit_2(local_stack, tmp_path):
    spec = local_stack.spec()
    out = local_stack.cli("up", spec, "--model", tmp_path)
    assert out.returncode == 2 and "--model: not a model artifact" in out.stderr
    bad = tmp_path / "noserve.yaml"
    bad.write_text("name: no-serving\ntraining: {instance_type: g5.xlarge, nodes: {min: 1, max: 1}}\n")
    out = local_stack.cli("up", bad, "--model", local_stack.model)
    assert out.returncode == 2 and "serving: the local target needs a serving section" in out.stderr


@needs_haproxy
def test_training_step_absence_is_a_clear_error(local_stack, monkeypatch):
    from runtime.errors import OperationFailed
    from infra.targets.local import stack

    monkeypatch.setattr(stack, "training_available", lambda: False)
    r = stack.load(str(local_stack.spec()))
    with pytest.raises(OperationFailed, match=r"runtime/train .*--model DIR"):
        stack.preflight(r, local_stack.dir(), None)


@pytest.mark.slow
@needs_haproxy
def test_a_replica_that_cannot_start_fails_up_with_its_message(local_stack, tmp_path):
    import shutil as sh

    bad = tmp_path / "bad-model"
    sh.copytree(local_stack.model, bad)
    (bad / "weights.pt").write_bytes(b"not a torch file")
    spec = local_stack.spec()
    out = local_stack.cli("up", spec, "--model", bad, timeout=60)
    assert out.returncode == 1
    assert "before it was ready" in out.stderr and "weights.pt" in out.stderr, out.stderr
    assert local_stack.status(spec)["up"] is False
    assert local_stack.status(spec)["leftover_processes"] == []
