"""runtime.agent on GCP: the real google-cloud-monitoring client against a fake Cloud Monitoring
MetricService on 127.0.0.1 that records the CreateTimeSeries requests it receives (gRPC: the
library ships no REST transport), the fake GCE metadata server of tests/gcp, and a real replica.
The AWS behaviour is tests/serve/test_agent.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from runtime.agent import Agent, AgentConfig
from runtime.agent.gcp_monitoring import DEFAULT_METRIC_TYPE
from runtime.serve.role import agent_settings, serve_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gcp"))
from fake_metadata import FakeGceMetadata  # noqa: E402

monitoring_v3 = pytest.importorskip("google.cloud.monitoring_v3", reason="the agent on GCP needs the gcp extra")
grpc = pytest.importorskip("grpc", reason="google-cloud-monitoring brings grpcio")

ROOT = Path(__file__).resolve().parents[2]
GAUGE, DOUBLE = 1, 3  # google.api.MetricDescriptor's MetricKind.GAUGE and ValueType.DOUBLE


def _which(typed_value) -> str | None:
    """The field set in a TypedValue's `value` oneof."""
    return type(typed_value).pb(typed_value).WhichOneof("value")


class FakeMonitoring:
    """google.monitoring.v3.MetricService/CreateTimeSeries on 127.0.0.1: decodes the request with
    the library's own message types, checks what the real API requires of each series (metric
    type, resource type, exactly one point with an end time and a value; at most 200 series),
    records it with its call metadata and answers Empty, or INVALID_ARGUMENT naming the problem.
    With `fail_with` (a grpc.StatusCode), answers that instead."""

    def __init__(self):
        from google.protobuf import empty_pb2

        self.requests: list = []  # (CreateTimeSeriesRequest, {metadata key: value})
        self.fail_with = None

        def create(request, context):
            if self.fail_with is not None:
                context.abort(self.fail_with, "injected")
            problem = self.check(request)
            if problem:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
            self.requests.append((request, dict(context.invocation_metadata())))
            return empty_pb2.Empty()

        handler = grpc.method_handlers_generic_handler("google.monitoring.v3.MetricService", {
            "CreateTimeSeries": grpc.unary_unary_rpc_method_handler(
                create, request_deserializer=monitoring_v3.CreateTimeSeriesRequest.deserialize,
                response_serializer=empty_pb2.Empty.SerializeToString)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.url = f"http://127.0.0.1:{port}"

    @staticmethod
    def check(request) -> str | None:
        if not request.name.startswith("projects/") or not 1 <= len(request.time_series) <= 200:
            return "name projects/P and 1 to 200 time series are required"
        for ts in request.time_series:
            if not ts.metric.type or not ts.resource.type:
                return "metric.type and resource.type are required"
            if len(ts.points) != 1 or not ts.points[0].interval.end_time or not _which(ts.points[0].value):
                return "exactly one point with interval.end_time and a value is required"
        return None

    def series(self) -> list:
        return [ts for request, _ in self.requests for ts in request.time_series]

    def close(self):
        self.server.stop(grace=None).wait()


@pytest.fixture
def gcp(monkeypatch):
    """(metadata server, monitoring fake) for an instance 4242 of project proj-1 in us-central1-a."""
    md = FakeGceMetadata({"project/project-id": "proj-1", "instance/id": "4242",
                          "instance/zone": "projects/123456/zones/us-central1-a"})
    mon = FakeMonitoring()
    monkeypatch.setenv("GCE_METADATA_HOST", md.host)
    yield md, mon
    md.close()
    mon.close()


def test_publishes_inflight_to_cloud_monitoring_then_drains_on_preemption(
        gcp, replica, artifacts, tmp_path, wait_until):
    md, mon = gcp
    pid_file = tmp_path / "replica.pid"
    r = replica("--model", str(artifacts["mlp"]), "--test-delay-ms", "250", "--max-batch-size", "1",
                "--pid-file", str(pid_file), "--drain-timeout-s", "5")
    agent = Agent(AgentConfig(cloud="gcp", monitoring_endpoint=mon.url, server_urls=(r.url,),
                              server_pid_files=(str(pid_file),), publish_interval_s=10,
                              lifecycle_hook_suffix="-drain"))  # an AWS-only setting, ignored on GCP
    assert agent.instance_id == "4242" and agent.lifecycle_hook_name is None
    with ThreadPoolExecutor(4) as pool:
        busy = [pool.submit(httpx.post, f"{r.url}/v1/predict", json={"instances": [[0, 0, 0, 0]]}, timeout=10)
                for _ in range(4)]
        assert wait_until(lambda: (agent.sample() or 0) >= 3, timeout=5)
        samples = list(agent._samples)
        before = time.time()
        sent = agent.publish()
        assert sent == {"InflightRequests": pytest.approx(sum(samples) / len(samples))} and max(samples) >= 3
        agent.step(time.monotonic())  # not preempted yet
        assert not agent.terminated and r.proc.poll() is None
        md.set("instance/preempted", "TRUE")
        agent._next_lifecycle = 0.0
        agent.step(time.monotonic())
        assert agent.terminated
        assert [f.result().status_code for f in busy] == [200] * 4  # in-flight requests finished
    assert r.wait(timeout=5) == 0 and not pid_file.exists()

    request, metadata = mon.requests[0]
    assert request.name == "projects/proj-1" and "authorization" not in metadata  # http: no credentials sent
    (ts,) = request.time_series
    assert ts.metric.type == DEFAULT_METRIC_TYPE and dict(ts.metric.labels) == {}
    assert ts.resource.type == "gce_instance"
    assert dict(ts.resource.labels) == {"project_id": "proj-1", "instance_id": "4242", "zone": "us-central1-a"}
    assert (ts.metric_kind, ts.value_type) == (GAUGE, DOUBLE)
    (point,) = ts.points
    assert point.value.double_value == pytest.approx(sent["InflightRequests"])
    assert before - 1 <= point.interval.end_time.timestamp() <= time.time()
    assert len(mon.requests) == 2  # step() published again


def test_publish_failure_is_survived_and_a_bad_cloud_is_bad_input(gcp):
    from runtime.errors import BadInput

    _, mon = gcp
    mon.fail_with = grpc.StatusCode.UNAVAILABLE
    agent = Agent(AgentConfig(cloud="gcp", monitoring_endpoint=mon.url, server_urls=("http://127.0.0.1:9",)))
    assert agent.sample() is None  # no replica answering: no sample, no crash
    agent._samples.append(2.0)
    agent.step(0.0)  # publish fails, is logged, the agent carries on
    assert not agent.terminated and mon.requests == [] and agent._samples  # kept for the next interval
    mon.fail_with = None
    agent._next_publish = 0.0
    agent.step(0.0)
    assert [ts.points[0].value.double_value for ts in mon.series()] == [2.0]
    with pytest.raises(BadInput, match=r"agent.cloud: unknown cloud \(got 'azure'; allowed: aws, gcp\)"):
        AgentConfig(cloud="azure")


def test_runtime_config_on_gcp_reaches_the_agent_cli(gcp, replica, artifacts, tmp_path):
    """The serve role's agent settings (cloud, project, the rendered metric_type) through
    `python -m runtime.agent --config ... --once`, as the serve role starts it."""
    md, mon = gcp
    config = {"cloud": "gcp", "region": "us-central1", "gcp": {"project": "proj-1", "zones": ["us-central1-a"]},
              "artifacts": {"bucket": "art-1", "bucket_env": "GPUFLEET_BUCKET", "scheme": "gs", "models": "models/latest/"},
              "serve": {"port": 8080}, "agent": {"metric_type": "custom.googleapis.com/demo/inflight",
                                                 "monitoring_endpoint": mon.url, "publish_interval_s": 30.0}}
    assert serve_config(config).model == "gs://art-1/models/latest/"
    settings = agent_settings(config)
    assert settings["cloud"] == "gcp" and settings["project"] == "proj-1"
    assert agent_settings({"cloud": "aws", "agent": {"namespace": "GPUFleet"}}) == {"namespace": "GPUFleet", "cloud": "aws"}
    r = replica("--model", str(artifacts["mlp"]))
    (tmp_path / "agent.json").write_text(json.dumps({"agent": settings}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GCE_METADATA_HOST": md.host}
    p = subprocess.run([sys.executable, "-m", "runtime.agent", "--config", str(tmp_path / "agent.json"),
                        "--server-url", r.url, "--once"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    (ts,) = mon.series()
    assert ts.metric.type == "custom.googleapis.com/demo/inflight"
    assert ts.resource.labels["instance_id"] == "4242" and ts.points[0].value.double_value == 0.0
    assert _which(ts.points[0].value) == "double_value"  # an idle replica: a real 0, not an unset value
