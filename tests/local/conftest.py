"""Fixtures for the local target: a temporary build dir, a model artifact, specs on free ports,
and the CLI run as a subprocess (as a user runs it). Every fleet a test starts is stopped by
`down` in the fixture's teardown, which signals only this stack's pids."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runtime.fleet import state as st
from runtime.model import MLP, save_artifact

ROOT = Path(__file__).resolve().parents[2]


def free_base_port(span: int) -> int:
    for _ in range(200):
        base = random.randrange(20000, 40000)
        if all(st.port_free(p) for p in range(base, base + span + 1)):
            return base
    raise RuntimeError("no free port range")


class LocalStack:
    def __init__(self, tmp: Path, build: Path, model: Path):
        self.tmp, self.build, self.model = tmp, build, model
        self.env = dict(os.environ, GPUFLEET_BUILD_DIR=str(build), PYTHONPATH=str(ROOT))
        self.specs: list[Path] = []

    def spec(self, name="t-local", rmin=1, rmax=2, algorithm="least_connections", autoscaling=None,
             drain_timeout_s=10, base_port=None) -> Path:
        doc = {
            "name": name,
            "serving": {"instance_type": "g5.xlarge", "replicas": {"min": 1, "max": 4}, "max_batch_size": 1,
                        "drain_timeout_s": drain_timeout_s,
                        "load_balancer": {"algorithm": algorithm,
                                          "health_check": {"interval_s": 5, "timeout_s": 2}}},
            "local": {"ranks": 1, "replicas": {"min": rmin, "max": rmax},
                      "base_port": base_port or free_base_port(2 * rmax)},
        }
        if autoscaling:
            doc["serving"]["autoscaling"] = autoscaling
        path = self.tmp / f"{name}.yaml"
        path.write_text(json.dumps(doc))  # JSON is YAML
        self.specs.append(path)
        return path

    def cli(self, *args, timeout=120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "infra.cli", *map(str, args)], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def up(self, spec, *extra) -> subprocess.CompletedProcess:
        out = self.cli("up", spec, "--target", "local", "--model", self.model, *extra)
        assert out.returncode == 0, out.stdout + out.stderr
        return out

    def status(self, spec) -> dict:
        return json.loads(self.cli("status", spec, "--json").stdout)

    def dir(self, name="t-local") -> Path:
        return self.build / name / "local"


@pytest.fixture(scope="session")
def mlp_artifact(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_artifact(tmp_path_factory.mktemp("local-model") / "mlp", "mlp", MLP(8, 2, (16,)),
                         {"n_features": 8, "classes": [0, 1], "hidden": [16]})


@pytest.fixture
def local_stack(tmp_path, mlp_artifact):
    s = LocalStack(tmp_path, tmp_path / "build", mlp_artifact)
    yield s
    for spec in s.specs:
        s.cli("down", spec)
