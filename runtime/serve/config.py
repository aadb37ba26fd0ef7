"""Settings of one serving replica, as data.

`ServeConfig` is what infra's renderer writes into the runtime config JSON (`to_dict`) and what
the CLI builds from flags (`from_dict` for the JSON, flags override). It is passed down whole;
nothing below reads files or the environment for settings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from runtime.errors import BadInput


@dataclass(frozen=True)
class ServeConfig:
    """One replica's settings.

    - `model`: artifact directory, `s3://` or `gs://bucket/prefix` (see runtime.model).
    - `host`/`port`: where to listen; loopback by default, an instance sets 0.0.0.0 behind its LB.
    - `max_batch_size`: most rows per forward pass; 1 turns batching off.
    - `max_delay_ms`: longest a queued request may wait for a batch to fill once the worker is
      free. An idle replica dispatches a lone request at once and never waits for this timer.
    - `queue_size`: most requests waiting for the worker; beyond it, 429 with Retry-After.
    - `default_deadline_ms`: a request's deadline when it sends no `X-Deadline-Ms` header; a
      request that cannot finish in time gets 504 and never takes a batch slot.
    - `drain_timeout_s`: from SIGTERM to process exit, at most.
    - `deregistration_window_s`: after SIGTERM, how long requests are still accepted (readiness
      already false) while the load balancer stops routing here; then new requests get 503.
    - `max_body_bytes`: larger request bodies get 413.
    - `test_delay_ms`: extra sleep per forward pass, to make a replica slow on purpose (benchmarks
      of load balancing); 0 in production.
    """

    model: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    max_batch_size: int = 64
    max_delay_ms: float = 1.0
    queue_size: int = 1024
    default_deadline_ms: float = 10_000.0
    drain_timeout_s: float = 30.0
    deregistration_window_s: float = 0.0
    max_body_bytes: int = 1 << 20
    test_delay_ms: float = 0.0
    log_level: str = "warning"

    def __post_init__(self):
        problems = []

        def need(name, ok, allowed):
            if not ok:
                problems.append(f"serve.{name}: invalid (got {getattr(self, name)!r}; allowed {allowed})")

        def number(name):
            v = getattr(self, name)
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        need("port", isinstance(self.port, int) and 0 <= self.port <= 65535, "0..65535, 0 picks a free port")
        need("max_batch_size", isinstance(self.max_batch_size, int) and self.max_batch_size >= 1, "an integer >= 1")
        need("queue_size", isinstance(self.queue_size, int) and self.queue_size >= 1, "an integer >= 1")
        need("max_body_bytes", isinstance(self.max_body_bytes, int) and self.max_body_bytes >= 64, "an integer >= 64")
        for name in ("max_delay_ms", "default_deadline_ms", "drain_timeout_s", "deregistration_window_s", "test_delay_ms"):
            need(name, number(name) and getattr(self, name) >= 0, "a number >= 0")
        need("log_level", self.log_level in ("critical", "error", "warning", "info", "debug"), "critical|error|warning|info|debug")
        if problems:
            raise BadInput(problems)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ServeConfig":
        """Build from a runtime config JSON section; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise BadInput([f"serve.{k}: unknown setting (allowed {sorted(names)})" for k in unknown])
        return cls(**data)
