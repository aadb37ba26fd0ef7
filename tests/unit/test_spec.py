"""Stack spec validation: every error names its field and value, all at once, nothing written."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.spec import json_schema, load_stack, parse_stack
from infra.spec.gpus import gpus_for
from runtime.errors import BadInput

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("aws-*.yaml"))

MINIMAL = {
    "name": "tiny",
    "serving": {"instance_type": "g5.xlarge", "replicas": {"min": 1, "max": 2}},
}


def problems(data) -> list[str]:
    with pytest.raises(BadInput) as exc:
        parse_stack(data)
    return exc.value.problems


def with_(path: str, value, base=None):
    data = copy.deepcopy(base or MINIMAL)
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return data


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path):
    r = load_stack(path)
    assert r.pools, "every example serves"


def test_defaults_are_resolved():
    r = parse_stack(MINIMAL)
    s = r.spec
    assert s.cloud == "aws" and s.region == "us-east-1"
    assert s.serving.replicas.desired == 1  # desired defaults to min
    assert s.serving.load_balancer.health_check.path == "/readyz"
    (pool,) = r.pools
    assert pool.name == "main" and pool.group_name == "tiny-serve-main" and pool.gpus_per_node == 1
    assert pool.capacity.on_demand_percentage_above_base == 100
    assert r.tags == {"gpufleet:stack": "tiny"}
    assert s.serving.image.lookup is not None  # the default GPU image lookup


def test_weighted_example_resolves_pools():
    r = load_stack(ROOT / "examples/aws-serving-weighted.yaml")
    by_name = {p.name: p for p in r.pools}
    assert by_name["a10g"].weight == 3 and by_name["l4"].weight == 1
    assert by_name["a10g"].size.max == 6  # inherited from serving.replicas
    assert by_name["l4"].size.max == 4
    assert by_name["a10g"].capacity.on_demand_base == 1
    assert by_name["a10g"].capacity.on_demand_percentage_above_base == 25
    assert by_name["l4"].capacity.on_demand_percentage_above_base == 0  # spot


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("name", "Bad_Name", "name: invalid format (got 'Bad_Name'"),
        ("name", "x" * 21, "name: invalid format"),
        ("cloud", "azure", "cloud: not an allowed value (got 'azure'; allowed: 'aws' or 'gcp')"),
        # the AWS instance type of MINIMAL is checked against GCP's machine types (tests/unit/test_spec_gcp.py)
        ("cloud", "gcp", "serving.instance_type: not a GCP machine type (got 'g5.xlarge'"),
        ("region", "mars-1", "region: invalid format (got 'mars-1'"),
        ("network", {"cidr": "10.0.0.0/33"}, "network.cidr: not an IPv4 network"),
        ("network", {"cidr": "10.0.0.1/16"}, "network.cidr: not an IPv4 network"),
        ("network", {"cidr": "10.0.0.0/22", "zones": 6}, None),  # 16 subnets of /26
        ("network", {"cidr": "10.0.0.0/24"}, "network.cidr: prefix must be between /16 and /22 (got /24)"),
        ("serving.load_balancer", {"algorithm": "least_connections", "slow_start_s": 60},
         "serving.load_balancer.slow_start_s: AWS does not combine slow start with least outstanding requests"),
        ("serving.instance_type", "m5.large", "serving.instance_type: not a known GPU instance type (got 'm5.large'"),
        ("serving.gpus_per_node", 4, "serving.gpus_per_node: g5.xlarge has 1 GPU(s) per instance (got 4; allowed: 1)"),
        ("serving.replicas", {"min": 3, "desired": 2, "max": 4}, "serving.replicas: min <= desired <= max must hold (got min=3, desired=2, max=4)"),
        ("serving.replicas", {"min": 1}, "serving.replicas.max: required field is missing"),
        ("serving.autoscaling", {"metric": "qps", "target": 5}, "serving.autoscaling.metric: not an allowed value (got 'qps'"),
        ("serving.autoscaling", {"metric": "cpu_utilization", "target": 50, "scale_in_cooldown_s": -1},
         "serving.autoscaling.scale_in_cooldown_s: input should be greater than or equal to 0 (got -1)"),
        ("serving.load_balancer", {"algorithm": "random"}, "serving.load_balancer.algorithm: not an allowed value (got 'random'"),
        ("serving.load_balancer", {"health_check": {"path": "readyz"}}, "serving.load_balancer.health_check.path: must start with '/' (got 'readyz')"),
        ("serving.load_balancer", {"health_check": {"interval_s": 5, "timeout_s": 5}}, "health_check.timeout_s: must be less than interval_s"),
        ("serving.load_balancer", {"algorithm": "weighted_round_robin"}, "serving.pools: weighted_round_robin splits traffic across two or more pools"),
        ("serving.load_balancer", {"listener": {"certificate_arn": "not-an-arn"}}, "serving.load_balancer.listener.certificate_arn: invalid format"),
        ("serving.capacity", {"type": "mixed"}, "serving.capacity.spot_percentage: required when type is 'mixed'"),
        ("serving.capacity", "cheap", "serving.capacity.type: not an allowed value (got 'cheap'"),
        ("serving.image", {"id": "ami-0123456789abcdef0", "lookup": {"owner": "a", "name": "b"}}, "serving.image: give either id or lookup, not both"),
        ("serving.nodes", 3, "serving.nodes: unknown field (got 'nodes'; allowed: instance_type, gpus_per_node"),
        ("tags", {"aws:owner": "x"}, "tags: invalid tag key (got 'aws:owner'"),
        ("backend", {"type": "s3"}, "backend.bucket: required when backend.type is 's3'"),
        ("backend", {"type": "s3", "bucket": "tf-state"}, "backend.key: required when backend.type is 's3'"),
        ("backend", {"type": "s3", "bucket": "tf-state", "key": "/stacks/x.tfstate"},
         "backend.key: must not start or end with '/'"),
        ("backend", {"type": "s3", "bucket": "tf-state", "key": "k", "lock": "dynamodb"},
         "backend.dynamodb_table: required when backend.lock is 'dynamodb'"),
        ("backend", {"type": "s3", "bucket": "tf-state", "key": "k", "dynamodb_table": "locks"},
         "backend.dynamodb_table: only used when backend.lock is 'dynamodb' (got 'locks' with lock 'lockfile'"),
        ("backend", {"type": "s3", "bucket": "tf-state", "key": "k", "lock": "consul"},
         "backend.lock: not an allowed value (got 'consul'"),
        ("backend", {"type": "local", "bucket": "tf-state"}, "backend.bucket: only used when backend.type is 's3'"),
        ("backend", {"type": "s3", "bucket": "tf-state", "key": "k", "lock": "dynamodb", "dynamodb_table": "locks"}, None),
        ("regoin", "us-east-1", "regoin: unknown field (got 'regoin'; allowed: name, cloud, region"),
    ],
)
def test_bad_field_is_named(path, value, expected):
    data = with_(path, value)
    if expected is None:
        parse_stack(data)
        return
    found = problems(data)
    assert any(expected in line for line in found), found


def test_all_problems_are_reported_at_once():
    data = {
        "name": "Bad Name",
        "network": {"cidr": "nope"},
        "serving": {
            "instance_type": "m5.large",
            "replicas": {"min": 3, "max": 1},
            "load_balancer": {"health_check": {"path": "x"}},
        },
        "extra": 1,
    }
    found = problems(data)
    for field in ("name:", "network.cidr:", "serving.instance_type:", "serving.replicas:",
                  "serving.load_balancer.health_check.path:", "extra:"):
        assert any(line.startswith(field) for line in found), (field, found)


def test_cross_field_problems_are_reported_together():
    data = with_("serving.pools", [{"name": "a", "instance_type": "g5.xlarge"}, {"name": "a", "instance_type": "g6.xlarge"}])
    data["training"] = {"instance_type": "g5.12xlarge", "gpus_per_node": 8, "nodes": {"min": 1, "max": 2}}
    data["tags"] = {"aws:x": "y"}
    found = problems(data)
    assert any(line.startswith("serving.pools[1].name: pool names must be unique") or
               line.startswith("serving.pools[0].name: pool names must be unique") for line in found), found
    assert any(line.startswith("serving.pools: several pools split traffic by weight") for line in found), found
    assert any(line.startswith("training.gpus_per_node: g5.12xlarge has 4 GPU(s)") for line in found), found
    assert any(line.startswith("tags: invalid tag key") for line in found), found


def test_a_fleet_is_required():
    assert any("a stack needs at least one fleet" in p for p in problems({"name": "empty"}))


def test_gpu_table():
    assert gpus_for("g5.12xlarge") == 4
    assert gpus_for("p4d.24xlarge") == 8
    assert gpus_for("g4dn.xlarge") == 1
    assert gpus_for("m5.large") is None
    assert gpus_for("g5.huge") is None


def test_duplicate_yaml_keys_are_rejected(tmp_path):
    spec = tmp_path / "dup.yaml"
    spec.write_text("name: a-stack\nname: b-stack\nserving: {instance_type: g5.xlarge, replicas: {min: 1, max: 1}}\n")
    with pytest.raises(BadInput) as exc:
        load_stack(spec)
    assert "appears twice" in str(exc.value)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(BadInput, match="no such stack spec file"):
        load_stack(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_stack(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(BadInput, match="a stack spec is a YAML mapping"):
        load_stack(scalar)


def test_schema_describes_the_spec():
    schema = json_schema()
    assert schema["title"] == "gpufleet stack spec"
    assert {"name", "serving", "training", "network", "local"} <= set(schema["properties"])
    json.dumps(schema)  # serialisable


def test_cli_validate_exit_codes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_("serving.instance_type", "m5.large")))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "infra.cli", "render", str(bad), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "error: serving.instance_type: not a known GPU instance type (got 'm5.large'" in proc.stderr
    assert not out.exists(), "bad input must not write anything"
    ok = subprocess.run([sys.executable, "-m", "infra.cli", "validate", str(EXAMPLES[0])], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: stack")
    schema = subprocess.run([sys.executable, "-m", "infra.cli", "schema"], capture_output=True, text=True, cwd=ROOT)
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"] == "gpufleet stack spec"


def test_s3_backend_resolves_its_defaults():
    data = with_("backend", {"type": "s3", "bucket": "tf-state", "key": "stacks/x.tfstate"})
    data["region"] = "eu-west-1"
    b = parse_stack(data).backend
    assert (b.bucket, b.key, b.region, b.lock, b.dynamodb_table) == ("tf-state", "stacks/x.tfstate", "eu-west-1",
                                                                     "lockfile", None)
    assert b.uri == "s3://tf-state/stacks/x.tfstate"
    assert parse_stack(with_("backend", {"type": "local"})).backend is None
