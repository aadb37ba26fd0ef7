"""Prometheus metrics of one replica (served at /metrics).

Each app owns its own `CollectorRegistry`, so several replicas (or tests) in one process do not
collide. In-flight requests and queue depth are callback gauges read at scrape time: they cost
nothing per request. The agent reads `gpufleet_serve_inflight_requests` to publish the scaling
metric and the local fleet manager reads it and `gpufleet_serve_requests_total` to scale, so
those names are a contract with runtime/agent and runtime/fleet: both read /metrics with
`parse_metrics`, here beside the names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

INFLIGHT_METRIC = "gpufleet_serve_inflight_requests"
REQUESTS_METRIC = "gpufleet_serve_requests"  # a counter: its samples are named ..._total, labelled by code

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    """The metrics the serving issue names; `request(code, seconds)` is the per-request hot path."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, inflight=lambda: 0, queue_depth=lambda: 0):
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(REQUESTS_METRIC, "Requests answered, by HTTP status code.", ["code"], registry=r)
        self.latency = Histogram("gpufleet_serve_request_latency_seconds", "Time from request start to response, /v1/predict.",
                                 buckets=_LATENCY_BUCKETS, registry=r)
        g = Gauge(INFLIGHT_METRIC, "Requests being handled by /v1/predict now.", registry=r)
        g.set_function(inflight)
        q = Gauge("gpufleet_serve_queue_depth", "Requests waiting for the forward worker.", registry=r)
        q.set_function(queue_depth)
        self.batch_size = Histogram("gpufleet_serve_batch_size_rows", "Rows per forward pass.", buckets=_BATCH_BUCKETS, registry=r)
        self.queue_wait = Histogram("gpufleet_serve_queue_wait_seconds", "Time a request waited before its forward pass started.",
                                    buckets=_LATENCY_BUCKETS, registry=r)
        self.forward = Histogram("gpufleet_serve_forward_seconds", "Duration of one forward pass.", buckets=_LATENCY_BUCKETS, registry=r)
        self.model_load = Gauge("gpufleet_serve_model_load_seconds", "Time to load and warm the model at startup.", registry=r)
        self.ready = Gauge("gpufleet_serve_ready", "1 when the replica accepts traffic (loaded, warmed, not draining).", registry=r)
        self._by_code: dict[int, object] = {}

    def request(self, code: int, seconds: float | None) -> None:
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self.requests.labels(code=str(code))
        child.inc()
        if seconds is not None:
            self.latency.observe(seconds)

    def batch(self, rows: int, waits: list, forward_s: float) -> None:
        self.batch_size.observe(rows)
        for w in waits:
            self.queue_wait.observe(w)
        self.forward.observe(forward_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def parse_metrics(text: str) -> tuple[float | None, float]:
    """(in-flight gauge or None, requests answered so far summed over status codes) from a
    replica's /metrics text.

    Only the lines of those two families go to prometheus-client's parser: parsing the whole
    text (histograms included) costs about 15 times more, and the fleet manager scrapes every
    ready replica several times a second.
    """
    names = (INFLIGHT_METRIC, REQUESTS_METRIC)
    kept = []
    for line in text.splitlines():
        # a sample line starts with its name; a comment line is "# HELP|TYPE name ..."
        name = line.split(None, 3)[2] if line.startswith("# ") and line.count(" ") >= 2 else line
        if name.startswith(names):
            kept.append(line)
    inflight, total = None, 0.0
    for family in text_string_to_metric_families("\n".join(kept) + "\n"):
        for sample in family.samples:
            if sample.name == INFLIGHT_METRIC and inflight is None:
                inflight = float(sample.value)
            elif sample.name == REQUESTS_METRIC + "_total":
                total += float(sample.value)
    return inflight, total
