"""The serving agent on GCP: the scaling metric as a Cloud Monitoring custom metric per instance.

Metric contract with the managed instance group's autoscaler (a per-instance custom metric;
infra renders the autoscaler, do not change one side alone):
- metric type: the agent config's `metric_type`, default `custom.googleapis.com/gpufleet/inflight_requests`;
  GPU utilization (percent, only where NVML finds a GPU) under `gpu_metric_type`, default
  `custom.googleapis.com/gpufleet/gpu_utilization`. No metric labels.
- monitored resource `gce_instance` with labels `project_id`, `instance_id`, `zone`, read from
  the GCE metadata server: the autoscaler reads per-instance metrics from exactly that resource.
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

`GceMetadata` is a minimal reader of the GCE metadata server, for this agent only; it is to be
merged with runtime/gcp/metadata.py (written on another branch) once both are in main.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

from runtime.errors import BadInput

DEFAULT_METRIC_TYPE = "custom.googleapis.com/gpufleet/inflight_requests"
DEFAULT_GPU_METRIC_TYPE = "custom.googleapis.com/gpufleet/gpu_utilization"
METADATA_HOST = "metadata.google.internal"
TIMEOUT_S = 10.0  # one publish; a failed one is logged and the next interval tries again
_EXTRA = "the agent on GCP needs google-cloud-monitoring: pip install 'gpufleet[gcp]'"


class GceMetadata:
    """The GCE metadata server: `GET {base}/computeMetadata/v1/<path>` with `Metadata-Flavor: Google`.

    The base is the `host` argument, else `GCE_METADATA_HOST` (the variable Google's libraries
    read: a host[:port], or a URL), else `metadata.google.internal`. A 404 reads as None; any
    other failure raises OSError.
    """

    def __init__(self, host: str | None = None, timeout_s: float = 2.0):
        host = host or os.environ.get("GCE_METADATA_HOST") or METADATA_HOST
        self.url = (host if "://" in host else f"http://{host}").rstrip("/") + "/computeMetadata/v1"
        self.timeout_s = timeout_s

    def get(self, path: str) -> str | None:
        req = urllib.request.Request(f"{self.url}/{path}", headers={"Metadata-Flavor": "Google"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.read().decode().strip()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def _required(self, path: str) -> str:
        value = self.get(path)
        if not value:
            raise RuntimeError(f"GCE metadata at {self.url} has no {path}")
        return value

    def project_id(self) -> str:
        return self._required("project/project-id")

    def instance_id(self) -> str:
        return self._required("instance/id")

    def zone(self) -> str:
        """The zone's name: the server answers `projects/<number>/zones/<zone>`."""
        return self._required("instance/zone").rsplit("/", 1)[-1]

    def preempted(self) -> bool:
        """True once Compute Engine preempts this (spot) instance."""
        return (self.get("instance/preempted") or "").upper() == "TRUE"


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
        instance_project = self.metadata.project_id()
        self.project = project or instance_project
        self.resource = {"type": "gce_instance", "labels": {
            "project_id": instance_project, "instance_id": self.metadata.instance_id(), "zone": self.metadata.zone()}}
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
