"""runtime.agent against the AWS emulator (moto) and a fake instance metadata server on 127.0.0.1
(`fake_imds`, tests/conftest.py)."""

from __future__ import annotations

import time
import types
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from runtime.agent import Agent, AgentConfig
from runtime.imds import InstanceMetadata


def make_group(aws_client, name="serving"):
    ec2, asg = aws_client("ec2"), aws_client("autoscaling")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_launch_template(LaunchTemplateName="serving-lt", LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"})
    asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": "serving-lt"},
                                  MinSize=1, MaxSize=1, DesiredCapacity=1, AvailabilityZones=["us-east-1a"])
    asg.put_lifecycle_hook(LifecycleHookName="drain", AutoScalingGroupName=name,
                           LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING", HeartbeatTimeout=300)
    instance = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["Instances"][0]
    return asg, instance["InstanceId"]


def record_completions(client) -> list:
    """moto does not implement CompleteLifecycleAction: answer it locally and record the call."""
    calls = []

    def answer(params, **kwargs):
        calls.append({k: v for k, v in params["body"].items() if k not in ("Action", "Version")})
        return types.SimpleNamespace(status_code=200, headers={}), {"ResponseMetadata": {"HTTPStatusCode": 200}}

    client.meta.events.register("before-call.autoscaling.CompleteLifecycleAction", answer)
    return calls


def test_imdsv2_token_flow_and_renewal(fake_imds):
    imds = fake_imds({"meta-data/instance-id": "i-0123456789abcdef0"}, rotate_tokens=True)
    md = InstanceMetadata(imds.url)
    assert md.instance_id() == "i-0123456789abcdef0" and imds.tokens_issued == 1
    imds.tokens_issued += 1  # the token expired on the server side
    assert md.instance_id() == "i-0123456789abcdef0" and imds.tokens_issued == 3
    assert md.group_name() is None and md.target_lifecycle_state() is None


def test_publishes_inflight_then_drains_and_completes_the_lifecycle_action(
        aws_client, fake_imds, replica, artifacts, tmp_path, wait_until):
    asg, instance_id = make_group(aws_client)
    cloudwatch = aws_client("cloudwatch")
    imds = fake_imds({"meta-data/instance-id": instance_id, "meta-data/autoscaling/target-lifecycle-state": "InService"})
    pid_file = tmp_path / "replica.pid"
    r = replica("--model", str(artifacts["mlp"]), "--test-delay-ms", "250", "--max-batch-size", "1",
                "--pid-file", str(pid_file), "--drain-timeout-s", "5")
    completions = record_completions(asg)
    agent = Agent(AgentConfig(metadata_url=imds.url, server_urls=(r.url,), server_pid_files=(str(pid_file),),
                              lifecycle_hook_name="drain", publish_interval_s=10), cloudwatch=cloudwatch, autoscaling=asg)
    assert agent.group_name == "serving"  # no metadata tag: found through Auto Scaling
    with ThreadPoolExecutor(4) as pool:
        busy = [pool.submit(httpx.post, f"{r.url}/v1/predict", json={"instances": [[0, 0, 0, 0]]}, timeout=10) for _ in range(4)]
        assert wait_until(lambda: (agent.sample() or 0) >= 3, timeout=5)
        samples = list(agent._samples)
        sent = agent.publish()  # the mean of the interval's samples
        assert sent["InflightRequests"] == pytest.approx(sum(samples) / len(samples)) and max(samples) >= 3
        assert "GPUUtilization" not in sent  # no GPU here
        agent.step(time.monotonic())  # not terminating yet
        assert not agent.terminated and r.proc.poll() is None
        imds.values["meta-data/autoscaling/target-lifecycle-state"] = "Terminated"
        agent._next_lifecycle = 0.0
        agent.step(time.monotonic())
        assert agent.terminated
        assert [f.result().status_code for f in busy] == [200] * 4  # in-flight requests finished
    assert r.wait(timeout=5) == 0 and not pid_file.exists()
    assert completions == [{"LifecycleHookName": "drain", "AutoScalingGroupName": "serving",
                            "LifecycleActionResult": "CONTINUE", "InstanceId": instance_id}]
    metrics = cloudwatch.list_metrics(Namespace="GPUFleet")["Metrics"]
    assert {"MetricName": "InflightRequests", "Namespace": "GPUFleet",
            "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "serving"}]} in metrics
    stats = cloudwatch.get_metric_statistics(
        Namespace="GPUFleet", MetricName="InflightRequests", Dimensions=[{"Name": "AutoScalingGroupName", "Value": "serving"}],
        StartTime=time.time() - 600, EndTime=time.time() + 600, Period=60, Statistics=["Maximum"])["Datapoints"]
    assert stats and stats[0]["Maximum"] >= sent["InflightRequests"] > 0  # step() published again


def test_group_from_metadata_tag_and_publish_failure_is_survived(aws_client, fake_imds):
    imds = fake_imds({"meta-data/instance-id": "i-1", "meta-data/tags/instance/aws:autoscaling:groupName": "fleet-a",
                      "meta-data/autoscaling/target-lifecycle-state": "InService"})

    class BrokenCloudWatch:
        def put_metric_data(self, **kw):
            raise ConnectionError("throttled")

    agent = Agent(AgentConfig(metadata_url=imds.url, server_urls=("http://127.0.0.1:9",), namespace="Custom"),
                  cloudwatch=BrokenCloudWatch(), autoscaling=aws_client("autoscaling"))
    assert agent.group_name == "fleet-a"
    assert agent.sample() is None  # no replica answering: no sample, no crash
    agent._samples.append(2.0)
    agent.step(0.0)  # publish fails, is logged, the agent carries on
    assert not agent.terminated
