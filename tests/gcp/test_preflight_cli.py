"""`gpufleet preflight SPEC` as a user runs it: its own process, real HTTP to the fake Compute
Engine API on 127.0.0.1 (tests/gcp/fake_compute.py, a fake: no Compute Engine emulator exists)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/gcp-gpu-fleet.yaml"


def preflight(spec: Path, url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.cli", "preflight", str(spec), "--endpoint", url],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def stage(compute, t4_zones=("us-central1-a", "us-central1-c"), spot_a100_quota=16) -> None:
    """The example's project: A100 machines in a and c; T4s in `t4_zones`; quotas as given."""
    for zone in ("us-central1-a", "us-central1-c"):
        compute.add_machine_type(zone, "n1-standard-8")
        compute.add_machine_type(zone, "a2-highgpu-1g", cpus=12, memory_mb=87040,
                                 accelerators=(("nvidia-tesla-a100", 1),))
        compute.offer(zone, "nvidia-tesla-a100", max_cards=16)
    for zone in t4_zones:
        compute.offer(zone, "nvidia-tesla-t4", max_cards=4)
    compute.set_region_quota("us-central1", "NVIDIA_T4_GPUS", 16)
    compute.set_region_quota("us-central1", "PREEMPTIBLE_NVIDIA_T4_GPUS", 16)
    compute.set_region_quota("us-central1", "PREEMPTIBLE_NVIDIA_A100_GPUS", spot_a100_quota)
    compute.set_project_quota("GPUS_ALL_REGIONS", 64)


def spec_for(tmp_path: Path) -> Path:
    spec = tmp_path / "stack.yaml"
    spec.write_text(EXAMPLE.read_text().replace("project: my-ml-project", "project: demo-project"))
    return spec


def test_a_stack_that_fits_passes(compute, tmp_path):
    stage(compute)
    p = preflight(spec_for(tmp_path), compute.url)
    assert p.returncode == 0, p.stderr
    assert "preflight: 3 group(s) of" in p.stdout and "us-central1-a, us-central1-c" in p.stdout


def test_a_missing_gpu_zone_and_a_short_quota_are_reported_in_one_run(compute, tmp_path):
    stage(compute, t4_zones=("us-central1-a",), spot_a100_quota=2)
    p = preflight(spec_for(tmp_path), compute.url)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "serving.gpus.type: nvidia-tesla-t4 is not offered in zone us-central1-c" in p.stderr, p.stderr
    assert "training.nodes.max: 4 nodes x 1 PREEMPTIBLE_NVIDIA_A100_GPUS = 4 exceeds the region's quota of 2" \
        in p.stderr, p.stderr


def test_an_aws_stack_is_refused_naming_the_cloud(tmp_path):
    p = preflight(ROOT / "examples/aws-gpu-fleet.yaml", "http://127.0.0.1:9")
    assert p.returncode == 2
    assert "cloud: preflight asks gcp (got 'aws'" in p.stderr
