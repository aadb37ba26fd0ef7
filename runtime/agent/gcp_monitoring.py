"""The serving agent on GCP: the scaling metric as a Cloud Monitoring custom metric per instance.

Metric contract with the managed instance group's autoscaler (a per-instance custom metric;
infra renders the autoscaler, do not change one side alone):
- metric type: the agent config's `metric_type`, default `custom.googleapis.com/gpufleet/inflight_requests`;
  GPU utilization (percent, only where NVML finds a GPU) under `gpu_metric_type`, default
  `custom.googleapis.com/gpufleet/gpu_utilization`. No metric labels.
- monitored resource `gce_instance` with labels `project_id`, `instance_id` (the numeric id),
  `zone`, read from the GCE metadata server (runtime.gcp.metadata, `GCE_METADATA_HOST`): the
  autoscaler reads per-instance metrics from exactly that resource.
- kind GAUGE, value type DOUBLE: the mean over the publish interval of the in-flight requests
  per replica on this instance (the same value the AWS agent sends to CloudWatch).
One CreateTimeSeries call (REST: `projects.timeSeries.create`) per publish, through
google-cloud-monitoring's MetricServiceClient. That library speaks gRPC only (it ships no REST
transport), so the call goes over gRPC, as every Monitoring client of Google's does.

Endpoint: the agent config's `monitoring_endpoint`, else Google (monitoring.googleapis.com:443).
`http://host:port` is a local fake or emulator: a plaintext gRPC channel, no credentials.
`host:port` or `https://host[:port]` is TLS with Application Default Credentials (the
instance's service account), as is Google's own endpoint.
google-cloud-monitoring is imported only when an agent runs with `"cloud": "gcp"`.
"""

from __future__ import annotations

import time

from runtime.errors import BadInput
from runtime.gcp.metadata import GceMetadata

DEFAULT_METRIC_TYPE = "custom.googleapis.com/gpufleet/inflight_requests"
DEFAULT_GPU_METRIC_TYPE = "custom.googleapis.com/gpufleet/gpu_utilization"
TIMEOUT_S = 10.0  # one publish; a failed one is logged and the next interval tries again
_EXTRA = "the agent on GCP needs google-cloud-monitoring: pip install 'gpufleet[gcp]'"


def instance_resource(metadata: GceMetadata) -> dict:
    """The `gce_instance` monitored resource of the instance `metadata` describes."""
    instance_id = metadata.get("instance/id")
    if not instance_id:
        raise RuntimeError(f"GCE metadata at {metadata.url} has no instance/id")
    return {"type": "gce_instance",
            "labels": {"project_id": metadata.project(), "instance_id": instance_id, "zone": metadata.zone()}}


def monitoring_client(endpoint: str | None = None):
    """A MetricServiceClient for `endpoint` by the rule above (None: Google's)."""
    try:
        from google.cloud import monitoring_v3
    except ImportError:
        raise BadInput(_EXTRA) from None
    if not endpoint:
        return monitoring_v3.MetricServiceClient()
    if endpoint.startswith("http://"):
        import grpc
        from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

        channel = grpc.insecure_channel(endpoint.removeprefix("http://").rstrip("/"))
        return monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
    return monitoring_v3.MetricServiceClient(client_options={"api_endpoint": endpoint.removeprefix("https://").rstrip("/")})


class CloudMonitoring:
    """Writes the agent's values for one instance as `gce_instance` time series."""

    def __init__(self, metric_types: dict, project: str | None = None, endpoint: str | None = None,
                 client=None, metadata: GceMetadata | None = None):
        """`metric_types` maps the agent's value names ("InflightRequests", "GPUUtilization") to
        metric types; the project defaults to the instance's."""
        self.metric_types = metric_types
        self.metadata = metadata or GceMetadata()
        self.resource = instance_resource(self.metadata)
        self.project = project or self.resource["labels"]["project_id"]
        self.client = client or monitoring_client(endpoint)

    @property
    def instance_id(self) -> str:
        return self.resource["labels"]["instance_id"]

    def time_series(self, values: dict, now: float | None = None) -> list:
        """One GAUGE DOUBLE point per value at `now` (seconds since the epoch)."""
        from google.api.metric_pb2 import MetricDescriptor
        from google.cloud import monitoring_v3

        now = time.time() if now is None else now
        end = {"seconds": int(now), "nanos": int((now - int(now)) * 1e9)}
        kind, vtype = MetricDescriptor.GAUGE, MetricDescriptor.DOUBLE
        return [monitoring_v3.TimeSeries(
            metric={"type": self.metric_types[name]}, resource=self.resource, metric_kind=kind, value_type=vtype,
            points=[{"interval": {"end_time": end}, "value": {"double_value": float(value)}}])
            for name, value in values.items() if name in self.metric_types]

    def write(self, values: dict, now: float | None = None) -> None:
        series = self.time_series(values, now)
        if series:
            self.client.create_time_series(name=f"projects/{self.project}", time_series=series, timeout=TIMEOUT_S)
