"""What the fleet manager runs, as data: `FleetConfig`, written by the local target as JSON.

The target (infra.targets.local) builds it from the resolved stack and writes it to
`fleet-config.json` in the stack's state directory (`to_dict`); the manager reads it back
(`from_dict`). Nothing here reads a spec. The timeouts that follow from the replicas' drain
(HAProxy's server timeout, how long `down` waits for the manager) are derived here, once.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field

# HAProxy's `timeout server` is the longer of this and a replica's drain budget.
MIN_SERVER_TIMEOUT_S = 30.0
# After SIGTERM the manager drains every replica (at most the drain budget) and then gives them
# this long to exit before it kills them; `down` waits that long plus its own margin.
SHUTDOWN_MARGIN_S = 5.0
STOP_MARGIN_S = 10.0


@dataclass(frozen=True)
class HealthCheck:
    """HAProxy's check of each replica (the spec's load_balancer.health_check)."""

    path: str = "/readyz"
    interval_s: float = 10
    timeout_s: float = 5
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2


@dataclass(frozen=True)
class Autoscaling:
    """The target-tracking settings (the spec's serving.autoscaling); see runtime.fleet.policy."""

    metric: str
    target: float
    scale_out_cooldown_s: float = 60.0
    scale_in_cooldown_s: float = 300.0
    warmup_s: float = 120.0


@dataclass(frozen=True)
class ServeSettings:
    """The `python -m runtime.serve` flags every replica gets."""

    max_batch_size: int = 64
    max_delay_ms: float = 1.0
    drain_timeout_s: float = 30.0
    # HAProxy drains a replica before it gets SIGTERM, so no deregistration window is needed.
    deregistration_window_s: float = 0.0

    @property
    def drain_s(self) -> float:
        """A replica's drain budget: from SIGTERM, the window it still takes requests, then its drain."""
        return self.deregistration_window_s + self.drain_timeout_s


@dataclass(frozen=True)
class Pool:
    name: str
    weight: int = 1


@dataclass(frozen=True)
class FleetConfig:
    stack: str
    port: int  # HAProxy's, on 127.0.0.1
    replica_ports: tuple[int, int]  # (first, last) a replica may listen on
    model: str  # the model artifact directory every replica serves
    algorithm: str = "least_connections"  # the spec's name; HAProxy's `balance` is in haproxy.cfg
    health: HealthCheck = field(default_factory=HealthCheck)
    pools: tuple[Pool, ...] = (Pool("main"),)
    min: int = 1
    max: int = 1
    autoscaling: Autoscaling | None = None
    serve: ServeSettings = field(default_factory=ServeSettings)
    test_delay_ms: tuple[float, ...] = (0.0,)  # per replica in start order, cycled
    tick_s: float = 0.25
    eval_interval_s: float = 1.0
    metric_window_s: float = 3.0
    python: str = sys.executable
    project_root: str | None = None  # the replicas' working directory

    @property
    def server_timeout_s(self) -> float:
        """HAProxy's `timeout server`: a draining replica's last answers must not be cut off."""
        return max(MIN_SERVER_TIMEOUT_S, self.serve.drain_s)

    @property
    def shutdown_s(self) -> float:
        """How long the manager, once told to stop, waits for its replicas to drain and exit."""
        return self.serve.drain_s + SHUTDOWN_MARGIN_S

    @property
    def stop_grace_s(self) -> float:
        """How long `down` waits for the manager to exit after SIGTERM before killing what is left."""
        return self.serve.drain_s + STOP_MARGIN_S

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FleetConfig":
        d = dict(data)
        d["health"] = HealthCheck(**d.get("health", {}))
        d["pools"] = tuple(Pool(**p) for p in d.get("pools", ({"name": "main"},)))
        d["autoscaling"] = None if d.get("autoscaling") is None else Autoscaling(**d["autoscaling"])
        d["serve"] = ServeSettings(**d.get("serve", {}))
        d["replica_ports"] = tuple(d["replica_ports"])
        d["test_delay_ms"] = tuple(float(v) for v in d.get("test_delay_ms") or (0.0,))
        return cls(**d)
