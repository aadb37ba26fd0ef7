"""A `cloud: gcp` stack spec: GCP machine types, zones, capacity, the fields each cloud refuses.

Every bad input names its field, and the CLI exits 2 writing nothing.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.spec import load_stack, parse_stack
from infra.spec.gcp import groups_for, split_capacity
from infra.spec.gpus import gcp_builtin_gpus, gcp_zones_offering, n1_vcpus
from infra.spec.model import Size
from infra.spec.resolve import ResolvedCapacity
from runtime.errors import BadInput

ROOT = Path(__file__).resolve().parents[2]
GCP_EXAMPLES = sorted((ROOT / "examples").glob("gcp-*.yaml"))

BASE = {
    "name": "g-stack",
    "cloud": "gcp",
    "region": "us-central1",
    "gcp": {"project": "my-project-1"},
    "training": {"instance_type": "a2-highgpu-1g", "nodes": {"min": 1, "max": 2}, "capacity": "spot"},
    "serving": {"instance_type": "n1-standard-8", "gpus": {"type": "nvidia-tesla-t4", "count": 1},
                "replicas": {"min": 1, "max": 4}},
}


def problems(data) -> list[str]:
    with pytest.raises(BadInput) as exc:
        parse_stack(data)
    return exc.value.problems


def with_(path: str, value, base=None):
    data = copy.deepcopy(base or BASE)
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


DELETE = object()


@pytest.mark.parametrize("path", GCP_EXAMPLES, ids=lambda p: p.name)
def test_gcp_examples_are_valid(path):
    r = load_stack(path)
    assert r.spec.cloud == "gcp" and r.gcp is not None and r.gcp.zones


def test_base_resolves():
    r = parse_stack(BASE)
    g = r.gcp
    assert g.project == "my-project-1"
    # default: network.zones' default (2) of the region's zones that offer both A100 and T4
    assert g.zones == tuple(gcp_zones_offering("us-central1", {"nvidia-tesla-a100", "nvidia-tesla-t4"})[:2])
    assert g.training.accelerator == "nvidia-tesla-a100" and g.training.gpus == 1 and not g.training.attached
    assert [grp.name for grp in g.training.groups] == ["g-stack-train"] and g.training.groups[0].spot
    (pool,) = g.pools
    assert pool.accelerator == "nvidia-tesla-t4" and pool.attached and pool.gpus == 1
    assert [grp.name for grp in pool.groups] == ["g-stack-serve-main"] and not pool.groups[0].spot
    assert r.pools[0].gpus_per_node == 1 and r.training_gpus_per_node == 1
    assert r.spec.serving.image.project == "deeplearning-platform-release" and r.spec.serving.image.lookup is None


def test_example_mixes_on_demand_and_spot_in_two_groups():
    r = load_stack(ROOT / "examples/gcp-gpu-fleet.yaml")
    (pool,) = r.gcp.pools
    ondemand, spot = pool.groups
    assert (ondemand.name, ondemand.spot, ondemand.min, ondemand.desired, ondemand.max) == (
        "gcp-fleet-serve-main-ondemand", False, 1, 1, 1)
    assert (spot.name, spot.spot, spot.min, spot.desired, spot.max) == ("gcp-fleet-serve-main-spot", True, 1, 1, 7)
    assert not ondemand.autoscaled and spot.autoscaled
    assert r.gcp.zones == ("us-central1-a", "us-central1-c")


@pytest.mark.parametrize("capacity, n, expected", [
    (ResolvedCapacity(0, 100), 5, (5, 0)),       # on_demand
    (ResolvedCapacity(0, 0), 5, (0, 5)),         # spot
    (ResolvedCapacity(1, 0), 5, (1, 4)),         # a base, all spot above it
    (ResolvedCapacity(1, 50), 6, (4, 2)),        # 1 + ceil(5 * 0.5)
    (ResolvedCapacity(3, 0), 2, (2, 0)),         # fewer VMs than the base
    (ResolvedCapacity(1, 25), 0, (0, 0)),
])
def test_split_capacity(capacity, n, expected):
    assert split_capacity(capacity, n) == expected


def test_groups_for_drops_a_kind_that_never_holds_a_vm():
    groups = groups_for("s-serve-main", ResolvedCapacity(2, 100), Size(min=2, desired=3, max=5))
    assert [(g.name, g.spot) for g in groups] == [("s-serve-main", False)]
    groups = groups_for("s-serve-main", ResolvedCapacity(1, 50), Size(min=1, desired=3, max=9))
    assert [(g.name, g.spot, g.min, g.desired, g.max) for g in groups] == [
        ("s-serve-main-ondemand", False, 1, 2, 5), ("s-serve-main-spot", True, 0, 1, 4)]


def test_gpu_tables():
    assert gcp_builtin_gpus("a2-highgpu-4g") == ("nvidia-tesla-a100", 4)
    assert gcp_builtin_gpus("g2-standard-48") == ("nvidia-l4", 4)
    assert gcp_builtin_gpus("n1-standard-8") is None and n1_vcpus("n1-standard-8") == 8
    assert n1_vcpus("e2-standard-8") is None


@pytest.mark.parametrize("path, value, expected", [
    # machine types and GPUs
    ("serving.instance_type", "e2-standard-8", "serving.instance_type: not a GCP machine type with GPUs (got 'e2-standard-8'"),
    ("serving.instance_type", "g5.xlarge", "serving.instance_type: not a GCP machine type (got 'g5.xlarge'"),
    ("serving.gpus", DELETE, "serving.gpus: required for n1-standard-8, an N1 machine type without GPUs of its own"),
    ("training.gpus", {"type": "nvidia-tesla-t4", "count": 1},
     "training.gpus: a2-highgpu-1g has its GPUs built in (1 x nvidia-tesla-a100)"),
    ("serving.gpus", {"type": "nvidia-tesla-t4", "count": 3},
     "serving.gpus.count: nvidia-tesla-t4 attaches in counts of 1, 2, 4 (got 3)"),
    ("serving.gpus", {"type": "nvidia-l4", "count": 1}, "serving.gpus.type: not an accelerator N1 machine types take (got 'nvidia-l4'"),
    ("serving.instance_type", "n1-standard-96",
     "serving.instance_type: 1 x nvidia-tesla-t4 allow at most 48 vCPUs (got n1-standard-96, 96 vCPUs"),
    ("training.gpus_per_node", 2, "training.gpus_per_node: a2-highgpu-1g has 1 GPU(s) per VM (got 2; allowed: 1)"),
    # zones and regions
    ("gcp.zones", ["us-east1-b"], "gcp.zones[0]: not a zone of region us-central1 (got 'us-east1-b'"),
    ("gcp.zones", ["us-central1-f", "us-central1-a"], None),  # f offers A100 and T4
    ("training.instance_type", "g2-standard-8", None),
    # us-east1 offers A100s (zone b) and T4s (c, d), but never both in one zone
    ("region", "us-east1", "region: no zone of us-east1 offers all of nvidia-tesla-a100, nvidia-tesla-t4 (got 'us-east1'"),
    ("region", "us-east4", "training.instance_type: no zone of us-east4 offers nvidia-tesla-a100 (got region 'us-east4'"),
    ("region", "us-east-1", "region: not a GCP region (got 'us-east-1'"),
    ("region", "mars-west1", "region: no GPU zone table for this GCP region (got 'mars-west1'"),
    ("region", DELETE, "region: required when cloud is 'gcp'"),
    ("gcp", DELETE, "gcp: required when cloud is 'gcp'"),
    ("gcp", {"project": "Bad_Project"}, "gcp.project: invalid format (got 'Bad_Project'"),
    ("gcp", {"project": "my-project-1", "zones": ["us-central1-a", "us-central1-a"]}, "gcp.zones: a zone is listed twice"),
    ("network", {"zones": 5}, "network.zones: us-central1 has 4 zone(s) offering nvidia-tesla-a100, nvidia-tesla-t4 (got 5"),
    # maintenance and capacity
    ("training.on_host_maintenance", "MIGRATE",
     "training.on_host_maintenance: spot VMs are stopped, never migrated, on host maintenance (got 'MIGRATE' with capacity 'spot'; allowed: TERMINATE)"),
    ("serving.on_host_maintenance", "MIGRATE", "serving.on_host_maintenance: VMs with GPUs cannot live-migrate"),
    ("serving.on_host_maintenance", "TERMINATE", None),
    ("training.capacity", {"type": "mixed", "on_demand_base": 1, "spot_percentage": 50},
     "training.capacity: a GCP managed instance group holds spot or on-demand VMs, not both"),
    # AWS's settings, refused by name
    ("serving.image", {"id": "ami-0123456789abcdef0"}, "serving.image: id: an AMI is AWS's"),
    ("serving.image", {"project": "my-images-1"}, "serving.image: family or name: required with project"),
    ("serving.load_balancer", {"listener": {"certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc"}},
     "serving.load_balancer.listener.certificate_arn: an ACM certificate is AWS's"),
    ("serving.load_balancer", {"slow_start_s": 60}, "serving.load_balancer.slow_start_s: GCP backend services have no slow start"),
    ("serving.load_balancer", {"listener": {"port": 8443}}, "serving.load_balancer.listener.port: a global external Application Load Balancer serves HTTP on 80 or 8080"),
    ("serving.load_balancer", {"listener": {"domain": "api.example.com", "port": 80}}, "listener.port: HTTPS with a managed certificate listens on 443"),
    ("serving.load_balancer", {"listener": {"domain": "api.example.com"}}, None),
    ("backend", {"type": "s3", "bucket": "state-b", "key": "k", "region": "us-east-1"}, "backend.type: the S3 state backend is AWS's"),
    ("tags", {"Team": "x"}, "tags: not a GCP label key (got 'Team'"),
    ("tags", {"team": "ML Platform"}, "tags.team: not a GCP label value (got 'ML Platform'"),
    ("training.workload", {"type": "kmeans", "k": 3, "data": "s3://b/d/"}, "training.workload.data: an s3:// dataset"),
    ("training.workload", {"type": "kmeans", "k": 3, "data": "gs://b/d/"}, None),
    ("serving.model_uri", "s3://m/latest/", "serving.model_uri: an s3:// model needs AWS credentials"),
    ("serving.autoscaling", {"metric": "cpu_utilization", "target": 150}, "serving.autoscaling.target: cpu_utilization is a percentage"),
])
def test_bad_gcp_field_is_named(path, value, expected):
    data = with_(path, value)
    if expected is None:
        parse_stack(data)
        return
    found = problems(data)
    assert any(expected in line for line in found), found


def test_a_zone_without_the_gpu_is_refused():
    # us-central1-f offers A100s and T4s, not L4s
    data = with_("gcp.zones", ["us-central1-a", "us-central1-f"], with_("serving.instance_type", "g2-standard-8"))
    del data["serving"]["gpus"]
    found = problems(data)
    assert any(p.startswith("gcp.zones[1]: us-central1-f does not offer nvidia-l4, which serving.instance_type needs")
               for p in found), found


def test_pool_gpus_and_weights():
    data = with_("serving.pools", [
        {"name": "l4", "instance_type": "g2-standard-8", "weight": 3},
        {"name": "t4", "instance_type": "n1-standard-4", "gpus": {"type": "nvidia-tesla-t4", "count": 2}, "weight": 1},
    ], with_("serving.load_balancer", {"algorithm": "weighted_round_robin"}))
    r = parse_stack(data)
    assert [(f.pool, f.accelerator, f.gpus) for f in r.gcp.pools] == [("l4", "nvidia-l4", 1), ("t4", "nvidia-tesla-t4", 2)]
    assert [p.gpus_per_node for p in r.pools] == [1, 2]
    data["serving"]["pools"][1]["gpus"] = None
    assert any(p.startswith("serving.pools[1].gpus: required for n1-standard-4") for p in problems(data))


@pytest.mark.parametrize("path, value, expected", [
    ("gcp", {"project": "my-project-1"}, "gcp: only for cloud 'gcp'"),
    ("serving.gpus", {"type": "nvidia-tesla-t4", "count": 1}, "serving.gpus: attached GPUs are for GCP N1 machine types"),
    ("serving.on_host_maintenance", "TERMINATE", "serving.on_host_maintenance: a GCP setting"),
    ("serving.load_balancer", {"listener": {"domain": "api.example.com"}},
     "serving.load_balancer.listener.domain: a Google-managed certificate is GCP's"),
    ("serving.image", {"project": "my-images-1", "family": "f"}, "serving.image: project: a GCP image field"),
    ("region", "us-central1", "region: not an AWS region (got 'us-central1'"),
])
def test_gcp_fields_are_refused_on_aws(path, value, expected):
    aws = {"name": "a-stack", "serving": {"instance_type": "g5.xlarge", "replicas": {"min": 1, "max": 2}}}
    found = problems(with_(path, value, aws))
    assert any(expected in line for line in found), found


def test_all_problems_at_once():
    data = with_("serving.gpus", {"type": "nvidia-tesla-t4", "count": 3},
                 with_("training.on_host_maintenance", "MIGRATE", with_("tags", {"Bad": "x"})))
    found = problems(data)
    for field in ("serving.gpus.count:", "training.on_host_maintenance:", "tags:"):
        assert any(line.startswith(field) for line in found), (field, found)
    # field-level errors (a bad machine type next to a bad project) come together too
    data = with_("gcp", {"project": "X"}, with_("serving.instance_type", "e2-small"))
    found = problems(data)
    assert any(p.startswith("gcp.project:") for p in found) and any(p.startswith("serving.instance_type:") for p in found)


def test_cli_bad_gcp_spec_exits_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_("serving.gpus", {"type": "nvidia-tesla-t4", "count": 3})))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "infra.cli", "render", str(bad), "--target", "gcp", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "error: serving.gpus.count: nvidia-tesla-t4 attaches in counts of 1, 2, 4 (got 3)" in proc.stderr
    assert not out.exists()
