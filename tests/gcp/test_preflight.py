"""GCP preflight against the fake Compute Engine API (tests/gcp/fake_compute.py), over real HTTP
through google-cloud-compute: every problem of a stack in one run, each naming its field."""

from __future__ import annotations

import pytest

from infra.targets.gcp_preflight import FleetNeed, preflight, quota_metric
from runtime.errors import OperationFailed

REGION, ZONES = "us-central1", ["us-central1-a", "us-central1-b", "us-central1-f"]


def _stack(compute, t4_zones=ZONES, t4_quota=16, a100_quota=8, all_regions=64):
    """A project where n1-standard-8 exists everywhere, a2-highgpu-1g (1 x A100 built in) in a and b."""
    for zone in ZONES:
        compute.add_machine_type(zone, "n1-standard-8")
        compute.offer(zone, "nvidia-tesla-p4")
    for zone in t4_zones:
        compute.offer(zone, "nvidia-tesla-t4", max_cards=4)
    for zone in ZONES[:2]:
        compute.offer(zone, "nvidia-tesla-a100", max_cards=16)
        compute.add_machine_type(zone, "a2-highgpu-1g", cpus=12, memory_mb=87040,
                                 accelerators=(("nvidia-tesla-a100", 1),))
    compute.set_region_quota(REGION, "CPUS", 96)
    compute.set_region_quota(REGION, "NVIDIA_T4_GPUS", t4_quota)
    compute.set_region_quota(REGION, "PREEMPTIBLE_NVIDIA_T4_GPUS", t4_quota)
    compute.set_region_quota(REGION, "NVIDIA_A100_GPUS", a100_quota, usage=1)
    compute.set_project_quota("GPUS_ALL_REGIONS", all_regions)


def _run(compute, needs, zones=ZONES, region=REGION):
    return preflight("demo-project", region, zones, needs, **compute.client_kwargs())


SERVING = FleetNeed("serving", "n1-standard-8", "nvidia-tesla-t4", per_instance=1, max_instances=8)
TRAINING = FleetNeed("training", "a2-highgpu-1g", None, per_instance=1, max_instances=4)


def test_a_stack_that_fits_has_no_problems_and_the_api_was_asked(compute):
    _stack(compute)
    assert _run(compute, [SERVING, FleetNeed("training", "a2-highgpu-1g", None, 1, 4)], zones=ZONES[:2]) == []
    paths = {p for _, p in compute.requests}
    assert "/compute/v1/projects/demo-project/regions/us-central1" in paths
    assert "/compute/v1/projects/demo-project" in paths
    assert "/compute/v1/projects/demo-project/zones/us-central1-b/acceleratorTypes" in paths
    assert "/compute/v1/projects/demo-project/zones/us-central1-a/machineTypes/a2-highgpu-1g" in paths


def test_a_zone_without_the_gpu_and_a_quota_below_max_are_both_reported_in_one_run(compute):
    _stack(compute, t4_zones=ZONES[:2], t4_quota=4)
    problems = _run(compute, [SERVING])
    print("\n".join(problems))
    assert problems == [
        "serving.gpus.type: nvidia-tesla-t4 is not offered in zone us-central1-f "
        "(offered in us-central1-a, us-central1-b; allowed: zones that offer it)",
        "serving.replicas.max: 8 replicas x 1 NVIDIA_T4_GPUS = 8 exceeds the region's quota of 4 (us-central1); "
        "request a quota increase: gcloud quotas preferences create --service=compute.googleapis.com "
        "--project=demo-project --quota-id=NVIDIA-T4-GPUS-per-project-region --dimensions=region=us-central1 "
        "--preferred-value=8 (or https://console.cloud.google.com/iam-admin/quotas?project=demo-project)",
    ]


def test_a_missing_machine_type_and_the_built_in_gpus_quota(compute):
    _stack(compute, a100_quota=2)
    problems = _run(compute, [TRAINING])
    print("\n".join(problems))
    assert problems[0] == "training.instance_type: a2-highgpu-1g does not exist in us-central1-f"
    assert problems[1].startswith("training.nodes.max: 4 nodes x 1 NVIDIA_A100_GPUS = 4 exceeds the region's "
                                  "quota of 2 (us-central1, 1 in use); request a quota increase")
    assert len(problems) == 2


def test_gpus_all_regions_at_zero_names_the_fix(compute):
    _stack(compute, all_regions=0)
    training = FleetNeed("training", "n1-standard-8", "nvidia-tesla-t4", per_instance=4, max_instances=2)
    problems = _run(compute, [training, FleetNeed("serving", "n1-standard-8", "nvidia-tesla-t4", 1, 3, spot=True)])
    print("\n".join(problems))
    assert problems == [
        "training.nodes.max + serving.replicas.max: 2 nodes x 4 + 3 replicas x 1 GPUs = 11 exceeds the project's "
        "GPUS_ALL_REGIONS quota of 0 (project demo-project; new projects start at 0); request a quota increase: "
        "gcloud quotas preferences create --service=compute.googleapis.com --project=demo-project "
        "--quota-id=GPUS-ALL-REGIONS-per-project --preferred-value=11 "
        "(or https://console.cloud.google.com/iam-admin/quotas?project=demo-project)"]


def test_fleets_sharing_a_metric_are_summed_and_spot_draws_on_preemptible(compute):
    _stack(compute, t4_quota=10)
    compute.set_region_quota(REGION, "PREEMPTIBLE_NVIDIA_T4_GPUS", 2)
    needs = [FleetNeed("training", "n1-standard-8", "nvidia-tesla-t4", 2, 3),
             FleetNeed("serving.pools[0]", "n1-standard-8", "nvidia-tesla-t4", 1, 6),
             FleetNeed("serving.pools[1]", "n1-standard-8", "nvidia-tesla-t4", 1, 3, spot=True)]
    problems = _run(compute, needs)
    print("\n".join(problems))
    assert [p.split("; ")[0] for p in problems] == [
        "training.nodes.max + serving.pools[0].replicas.max: 3 nodes x 2 + 6 replicas x 1 NVIDIA_T4_GPUS = 12 "
        "exceeds the region's quota of 10 (us-central1)",
        "serving.pools[1].replicas.max: 3 replicas x 1 PREEMPTIBLE_NVIDIA_T4_GPUS = 3 exceeds the region's "
        "quota of 2 (us-central1)"]


def test_zones_cards_per_instance_and_built_in_gpus(compute):
    _stack(compute)
    needs = [FleetNeed("serving", "n1-standard-8", "nvidia-tesla-t4", per_instance=8, max_instances=1),
             FleetNeed("training", "a2-highgpu-1g", "nvidia-tesla-t4", per_instance=1, max_instances=1)]
    problems = _run(compute, needs, zones=["us-central1-a", "us-central1-z", "us-east1-b"])
    assert problems == [
        "zones: us-east1-b is not in region us-central1",
        "zones: us-central1-z does not exist in region us-central1",
        "serving.gpus.count: at most 4 nvidia-tesla-t4 per instance (got 8)",
        "training.gpus.type: a2-highgpu-1g comes with 1 x nvidia-tesla-a100 and takes no other GPU type "
        "(got nvidia-tesla-t4; allowed: nvidia-tesla-a100 or none)"]


def test_a_gpu_type_the_region_has_no_quota_for(compute):
    _stack(compute)
    compute.offer("us-central1-a", "nvidia-l4")
    problems = _run(compute, [FleetNeed("serving", "n1-standard-8", "nvidia-l4", 1, 2)], zones=["us-central1-a"])
    assert len(problems) == 1 and problems[0].startswith(
        "serving.replicas.max: 2 replicas x 1 NVIDIA_L4_GPUS = 2 but region us-central1 has no NVIDIA_L4_GPUS quota")


def test_an_unknown_region_is_reported_and_api_errors_are_operation_failures(compute):
    _stack(compute)
    assert _run(compute, [], zones=[], region="us-north9") == [
        "region: us-north9 does not exist in project demo-project"]
    with pytest.raises(OperationFailed, match="Compute Engine API.*other-project.*403"):
        preflight("other-project", REGION, ZONES, [SERVING], **compute.client_kwargs())


@pytest.mark.parametrize("accelerator, spot, metric", [
    ("nvidia-tesla-t4", False, "NVIDIA_T4_GPUS"), ("nvidia-tesla-t4", True, "PREEMPTIBLE_NVIDIA_T4_GPUS"),
    ("nvidia-tesla-a100", False, "NVIDIA_A100_GPUS"), ("nvidia-a100-80gb", False, "NVIDIA_A100_80GB_GPUS"),
    ("nvidia-l4", True, "PREEMPTIBLE_NVIDIA_L4_GPUS"), ("nvidia-tesla-t4-vws", False, "NVIDIA_T4_VWS_GPUS"),
    ("nvidia-h100-80gb", False, "NVIDIA_H100_GPUS"), ("nvidia-tesla-v100", False, "NVIDIA_V100_GPUS"),
])
def test_quota_metric_names(accelerator, spot, metric):
    assert quota_metric(accelerator, spot) == metric


def test_the_mapped_metrics_are_the_apis_own_names():
    compute_v1 = pytest.importorskip("google.cloud.compute_v1", reason="google-cloud-compute is not installed")
    known = set(compute_v1.Quota.Metric.__members__)
    for acc in ("nvidia-tesla-t4", "nvidia-tesla-a100", "nvidia-a100-80gb", "nvidia-l4", "nvidia-tesla-v100",
                "nvidia-tesla-p100", "nvidia-tesla-p4", "nvidia-tesla-k80", "nvidia-tesla-t4-vws"):
        assert quota_metric(acc) in known and quota_metric(acc, spot=True) in known


def test_without_google_cloud_compute_both_sides_name_the_extra(monkeypatch):
    import sys

    from runtime.gcp.compute import in_service_addresses
    monkeypatch.setitem(sys.modules, "google.cloud.compute_v1", None)  # as if not installed
    if "google.cloud" in sys.modules:
        monkeypatch.delattr(sys.modules["google.cloud"], "compute_v1", raising=False)
    with pytest.raises(OperationFailed, match=r"needs google-cloud-compute: pip install 'gpufleet\[gcp\]'"):
        preflight("demo-project", REGION, ZONES, [SERVING])
    with pytest.raises(OperationFailed, match=r"pip install 'gpufleet\[gcp\]'"):
        in_service_addresses("demo-train", "demo-project", REGION)
