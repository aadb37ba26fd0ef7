"""`gpufleet plan --target gcp` asks the project first: with credentials, preflight runs (here
against the fake Compute Engine API) before anything is rendered, and its problems stop the
plan with exit 2, each naming the spec field."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from infra.cli import main
from infra.spec import load_stack
from infra.targets import gcp as gcp_target
from infra.targets import gcp_preflight

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/gcp-gpu-fleet.yaml"


def test_fleet_needs_one_per_group():
    needs = gcp_target.fleet_needs(load_stack(EXAMPLE))
    assert [(n.fleet, n.machine_type, n.accelerator, n.per_instance, n.max_instances, n.spot) for n in needs] == [
        ("training", "a2-highgpu-1g", None, 1, 4, True),           # GPUs built in; spot quota
        ("serving", "n1-standard-8", "nvidia-tesla-t4", 1, 1, False),  # the on-demand group
        ("serving", "n1-standard-8", "nvidia-tesla-t4", 1, 7, True),   # the spot group
    ]
    weighted = gcp_target.fleet_needs(load_stack(ROOT / "examples/gcp-serving-weighted.yaml"))
    assert [(n.fleet, n.accelerator, n.spot) for n in weighted] == [
        ("serving.pools[0]", None, True), ("serving.pools[1]", "nvidia-tesla-t4", False)]


@pytest.fixture
def project(compute, monkeypatch, tmp_path):
    """The example's project in the fake API: A100s in a and c, T4s only in a; credentials set."""
    for zone in ("us-central1-a", "us-central1-c"):
        compute.add_machine_type(zone, "n1-standard-8")
        compute.add_machine_type(zone, "a2-highgpu-1g", cpus=12, memory_mb=87040, accelerators=(("nvidia-tesla-a100", 1),))
        compute.offer(zone, "nvidia-tesla-a100", max_cards=16)
    compute.offer("us-central1-a", "nvidia-tesla-t4", max_cards=4)
    for metric in ("NVIDIA_T4_GPUS", "PREEMPTIBLE_NVIDIA_T4_GPUS", "PREEMPTIBLE_NVIDIA_A100_GPUS"):
        compute.set_region_quota("us-central1", metric, 16)
    compute.set_project_quota("GPUS_ALL_REGIONS", 64)
    monkeypatch.setattr(gcp_preflight, "preflight",
                        functools.partial(gcp_preflight.preflight, **compute.client_kwargs()))
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "test-token")
    monkeypatch.chdir(tmp_path)
    return compute


def test_plan_stops_on_preflight_problems_before_rendering(project, capsys, tmp_path, monkeypatch):
    data = EXAMPLE.read_text().replace("project: my-ml-project", "project: demo-project")
    spec = tmp_path / "stack.yaml"
    spec.write_text(data)
    assert main(["plan", str(spec), "--target", "gcp"]) == 2
    err = capsys.readouterr().err
    assert "error: serving.gpus.type: nvidia-tesla-t4 is not offered in zone us-central1-c" in err, err
    assert not (tmp_path / "build").exists(), "nothing is rendered when preflight finds problems"
    assert any(path.endswith("/zones/us-central1-c/acceleratorTypes") for _, path in project.requests)
