"""Target-tracking autoscaling policy: one pure function, shared by the local autoscaler and
anything else that needs the cloud's behaviour (tests, benchmarks, plan-time explanations).

The rule is the one AWS target tracking applies to an Auto Scaling group:

    desired = ceil(current x metric / target), clamped to [min, max]

- `metric` is the fleet average of the per-replica metric over replicas past their warm-up;
  replicas still warming are left out of it (`fleet_metric`), and while any replica warms the
  fleet does not scale in (it would remove capacity the metric has not seen yet).
- Scale-out waits `scale_out_cooldown_s` after the previous scale-out; scale-in waits
  `scale_in_cooldown_s` after the previous scale-in. A scale-out is never delayed by a scale-in.
- Below `min` or above `max` (e.g. a replica died) the fleet is brought back at once, with no
  cooldown: that is a replacement, not a scaling decision.

Nothing here reads clocks, files or sockets: time and state come in as arguments, so every
branch is unit-tested (tests/local/test_policy.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from runtime.fleet.config import Autoscaling

# ceil(2 x 1.0 / 1.0) must be 2, not 3 from floating-point noise.
_EPS = 1e-9


@dataclass(frozen=True, kw_only=True)
class ScalingPolicy(Autoscaling):
    """The spec's autoscaling settings and the fleet's bounds."""

    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class Decision:
    action: str  # "scale_out" | "scale_in" | "hold"
    current: int
    desired: int
    metric: float | None
    reason: str

    def to_dict(self) -> dict:
        return {"action": self.action, "current": self.current, "desired": self.desired,
                "metric": self.metric, "reason": self.reason}


def fleet_metric(samples: list[tuple[float, float]], now: float, warmup_s: float) -> tuple[float | None, int]:
    """(average metric over warmed-up replicas or None, number of replicas still warming).

    `samples` holds one (ready_since, value) per ready replica; a replica is warmed up once
    `now - ready_since >= warmup_s`.
    """
    warmed = [v for since, v in samples if now - since >= warmup_s]
    warming = len(samples) - len(warmed)
    return (sum(warmed) / len(warmed) if warmed else None), warming


def decide(policy: ScalingPolicy, current: int, metric: float | None, now: float,
           last_scale_out: float | None = None, last_scale_in: float | None = None, warming: int = 0) -> Decision:
    """The target-tracking decision for a fleet of `current` replicas; see the module docstring."""
    p = policy
    name = p.metric
    if current < p.min_replicas:
        return Decision("scale_out", current, p.min_replicas, metric,
                        f"{current} replica(s) is below min {p.min_replicas}")
    if current > p.max_replicas:
        return Decision("scale_in", current, p.max_replicas, metric,
                        f"{current} replica(s) is above max {p.max_replicas}")
    if metric is None:
        return Decision("hold", current, current, None, f"no {name} yet: every ready replica is still warming up")
    raw = math.ceil(current * metric / p.target - _EPS)
    desired = max(p.min_replicas, min(p.max_replicas, raw))
    formula = f"ceil({current} x {metric:.2f} / {p.target:g}) = {raw}"
    clamp = "" if desired == raw else f", clamped to {desired} (min {p.min_replicas}, max {p.max_replicas})"
    if desired > current:
        if last_scale_out is not None and now - last_scale_out < p.scale_out_cooldown_s:
            left = p.scale_out_cooldown_s - (now - last_scale_out)
            return Decision("hold", current, current, metric,
                            f"{name} {metric:.2f} > target {p.target:g} ({formula}) but scale-out cooldown has {left:.1f} s left")
        return Decision("scale_out", current, desired, metric, f"{name} {metric:.2f} > target {p.target:g}: {formula}{clamp}")
    if desired < current:
        if warming:
            return Decision("hold", current, current, metric,
                            f"{name} {metric:.2f} < target {p.target:g} ({formula}) but {warming} replica(s) still warming up")
        if last_scale_in is not None and now - last_scale_in < p.scale_in_cooldown_s:
            left = p.scale_in_cooldown_s - (now - last_scale_in)
            return Decision("hold", current, current, metric,
                            f"{name} {metric:.2f} < target {p.target:g} ({formula}) but scale-in cooldown has {left:.1f} s left")
        return Decision("scale_in", current, desired, metric, f"{name} {metric:.2f} < target {p.target:g}: {formula}{clamp}")
    why = clamp.lstrip(", ") or "no change"
    return Decision("hold", current, current, metric, f"{name} {metric:.2f} vs target {p.target:g}: {formula} ({why})")
