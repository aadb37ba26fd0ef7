"""The serving instance's agent: publish the scaling metric, drain before termination.

On AWS (`cloud: "aws"`, the default), as below. On GCP (`cloud: "gcp"`) the same values go to
Cloud Monitoring as per-instance custom metrics (runtime.agent.gcp_monitoring states that
contract), the instance is known from the GCE metadata server, and termination is a preemption
notice (`instance/preempted`); there is no lifecycle action to complete.

Metric contract with the Terraform scaling policy (infra renders it; do not change one side alone):
namespace `GPUFleet` (configurable), metrics `InflightRequests` (Count: the mean over the
publish interval of the in-flight requests per replica on this instance) and `GPUUtilization`
(Percent, only where NVML finds a GPU), dimension `AutoScalingGroupName` = this instance's group.
Every instance publishes its own datapoints under the group dimension, so the policy's Average
statistic is the fleet-wide in-flight requests per replica.

Loop: sample every `sample_interval_s`, publish every `publish_interval_s`, and check every
`lifecycle_poll_s` whether Auto Scaling is terminating this instance (instance metadata
`target-lifecycle-state` == "Terminated", or Auto Scaling's `Terminating:Wait` state). Then the
agent drains the replicas (SIGTERM to the pids in their pid files, see runtime.serve.server),
waits until they have exited or `drain_timeout_s` passed, and completes the lifecycle action
with CONTINUE so termination goes ahead. A publish failure is logged and retried at the next
interval: a metric gap is better than an agent that dies.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass

from runtime.agent.gcp_monitoring import DEFAULT_GPU_METRIC_TYPE, DEFAULT_METRIC_TYPE
from runtime.agent.metadata import gpu_utilization, read_inflight
from runtime.imds import InstanceMetadata
from runtime.errors import BadInput
from runtime.process import pid_alive

log = logging.getLogger("gpufleet.agent")
CLOUDS = ("aws", "gcp")


@dataclass(frozen=True)
class AgentConfig:
    namespace: str = "GPUFleet"
    group_name: str | None = None  # None: from instance metadata tags, else from Auto Scaling
    region: str | None = None
    publish_interval_s: float = 60.0
    sample_interval_s: float = 1.0
    lifecycle_hook_name: str | None = None  # None: the suffix rule below, else no hook to answer
    lifecycle_hook_suffix: str | None = None  # hook named "<group><suffix>", as modules/aws/gpu-asg names it
    lifecycle_poll_s: float = 5.0
    metadata_url: str = "http://169.254.169.254"
    endpoint_url: str | None = None  # None: AWS_ENDPOINT_URL or the real AWS endpoints
    server_urls: tuple[str, ...] = ("http://127.0.0.1:8080",)
    server_pid_files: tuple[str, ...] = ()
    drain_timeout_s: float = 60.0
    # GCP (cloud "gcp"): Cloud Monitoring metric types, the project written to (None: the
    # instance's, from the metadata server) and the API endpoint (None: Google's)
    cloud: str = "aws"
    metric_type: str = DEFAULT_METRIC_TYPE
    gpu_metric_type: str = DEFAULT_GPU_METRIC_TYPE
    project: str | None = None
    monitoring_endpoint: str | None = None

    def __post_init__(self):
        problems = []
        if self.cloud not in CLOUDS:
            problems.append(f"agent.cloud: unknown cloud (got {self.cloud!r}; allowed: {', '.join(CLOUDS)})")
        for name in ("metric_type", "gpu_metric_type"):
            if not getattr(self, name):
                problems.append(f"agent.{name}: must not be empty")
        for name in ("publish_interval_s", "sample_interval_s", "lifecycle_poll_s", "drain_timeout_s"):
            if not getattr(self, name) > 0:
                problems.append(f"agent.{name}: must be > 0 (got {getattr(self, name)!r})")
        if not self.namespace:
            problems.append("agent.namespace: must not be empty")
        if problems:
            raise BadInput(problems)


class Agent:
    """One agent per instance. `step(now)` does whatever is due; `run()` loops until terminated."""

    def __init__(self, config: AgentConfig, cloudwatch=None, autoscaling=None, metadata=None, monitoring=None):
        """AWS: `cloudwatch`, `autoscaling` (boto3 clients) and `metadata` (InstanceMetadata) are
        made from the config when not given. GCP: `monitoring` (a MetricServiceClient) and
        `metadata` (GceMetadata) likewise."""
        self.config = config
        self._samples: list[float] = []
        self._next_publish = self._next_lifecycle = 0.0
        self.terminated = False
        if config.cloud == "gcp":
            self._init_gcp(monitoring, metadata)
            return
        import boto3

        endpoint = config.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        self.cloudwatch = cloudwatch or boto3.client("cloudwatch", region_name=config.region, endpoint_url=endpoint)
        self.autoscaling = autoscaling or boto3.client("autoscaling", region_name=config.region, endpoint_url=endpoint)
        self.metadata = metadata or InstanceMetadata(config.metadata_url)
        self.instance_id = self.metadata.instance_id()
        self.group_name = config.group_name or self.metadata.group_name() or self._group_from_autoscaling()

    def _init_gcp(self, client, metadata) -> None:
        from runtime.agent.gcp_monitoring import CloudMonitoring

        c = self.config
        self.monitoring = CloudMonitoring(
            {"InflightRequests": c.metric_type, "GPUUtilization": c.gpu_metric_type}, project=c.project,
            endpoint=c.monitoring_endpoint, client=client, metadata=metadata)
        self.metadata = self.monitoring.metadata
        self.instance_id = self.monitoring.instance_id
        self.group_name = c.group_name  # the autoscaler reads per-instance series: no group needed

    def _group_from_autoscaling(self) -> str:
        found = self.autoscaling.describe_auto_scaling_instances(InstanceIds=[self.instance_id])["AutoScalingInstances"]
        if not found:
            raise BadInput(f"agent.group_name: not given, and instance {self.instance_id} is in no Auto Scaling group")
        return found[0]["AutoScalingGroupName"]

    # -- metrics -------------------------------------------------------------------------------
    def sample(self) -> float | None:
        """In-flight requests per replica now (mean over the replicas that answer)."""
        values = [v for v in (read_inflight(u) for u in self.config.server_urls) if v is not None]
        if not values:
            return None
        value = sum(values) / len(values)
        self._samples.append(value)
        return value

    def publish(self) -> dict:
        """Put the interval's datapoints; returns what was sent (name -> value)."""
        if self.config.cloud == "gcp":
            return self._publish_gcp()
        sent = {}
        dims = [{"Name": "AutoScalingGroupName", "Value": self.group_name}]
        data = []
        if self._samples:
            sent["InflightRequests"] = sum(self._samples) / len(self._samples)
            data.append({"MetricName": "InflightRequests", "Dimensions": dims, "Value": sent["InflightRequests"], "Unit": "Count"})
        gpu = gpu_utilization()
        if gpu is not None:
            sent["GPUUtilization"] = gpu
            data.append({"MetricName": "GPUUtilization", "Dimensions": dims, "Value": gpu, "Unit": "Percent"})
        if self.config.publish_interval_s < 60:  # sub-minute publishing needs high-resolution metrics
            for d in data:
                d["StorageResolution"] = 1
        if data:
            self.cloudwatch.put_metric_data(Namespace=self.config.namespace, MetricData=data)
        self._samples.clear()
        return sent

    def _publish_gcp(self) -> dict:
        sent = {}
        if self._samples:
            sent["InflightRequests"] = sum(self._samples) / len(self._samples)
        gpu = gpu_utilization()
        if gpu is not None:
            sent["GPUUtilization"] = gpu
        self.monitoring.write(sent)
        self._samples.clear()
        return sent

    # -- termination ---------------------------------------------------------------------------
    def terminating(self) -> bool:
        if self.config.cloud == "gcp":
            return self.metadata.preempted()
        state = self.metadata.target_lifecycle_state()
        if state is not None:
            return state == "Terminated"
        found = self.autoscaling.describe_auto_scaling_instances(InstanceIds=[self.instance_id])["AutoScalingInstances"]
        return bool(found) and found[0]["LifecycleState"].startswith("Terminating")

    def drain(self) -> bool:
        """SIGTERM every replica and wait for them to exit; True when all exited in time."""
        pids = []
        for path in self.config.server_pid_files:
            try:
                pids.append(int(open(path).read().strip()))
            except (OSError, ValueError):
                log.warning("no replica pid in %s (already stopped?)", path)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        end = time.monotonic() + self.config.drain_timeout_s
        while time.monotonic() < end:
            if not any(pid_alive(p) for p in pids):
                return True
            time.sleep(0.05)
        log.error("replicas %s still running after %.0f s of drain", [p for p in pids if pid_alive(p)], self.config.drain_timeout_s)
        return False

    @property
    def lifecycle_hook_name(self) -> str | None:
        if self.config.cloud == "gcp":  # a managed instance group has no lifecycle actions
            return None
        if self.config.lifecycle_hook_name:
            return self.config.lifecycle_hook_name
        if self.config.lifecycle_hook_suffix:
            return self.group_name + self.config.lifecycle_hook_suffix
        return None

    def complete_lifecycle(self) -> None:
        self.autoscaling.complete_lifecycle_action(
            LifecycleHookName=self.lifecycle_hook_name, AutoScalingGroupName=self.group_name,
            LifecycleActionResult="CONTINUE", InstanceId=self.instance_id)

    def on_termination(self) -> None:
        log.warning("instance %s is being terminated: draining replicas", self.instance_id)
        self.drain()
        if self.lifecycle_hook_name:
            self.complete_lifecycle()
        self.terminated = True

    # -- loop ----------------------------------------------------------------------------------
    def step(self, now: float) -> None:
        self.sample()
        if now >= self._next_publish:
            self._next_publish = now + self.config.publish_interval_s
            try:
                self.publish()
            except Exception:  # network or throttling: keep the agent alive, try next interval
                log.exception("publishing metrics failed")
        if now >= self._next_lifecycle:
            self._next_lifecycle = now + self.config.lifecycle_poll_s
            try:
                terminating = self.terminating()
            except Exception:  # metadata or Auto Scaling unreachable for a moment: ask again later
                log.exception("checking the lifecycle state failed")
                terminating = False
            if terminating:
                self.on_termination()

    def run(self, stop=lambda: False) -> None:
        self._next_publish = time.monotonic() + self.config.publish_interval_s
        while not self.terminated and not stop():
            self.step(time.monotonic())
            time.sleep(self.config.sample_interval_s)


