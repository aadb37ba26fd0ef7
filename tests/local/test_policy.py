"""The target-tracking rule (runtime.fleet.policy): every branch, no processes."""

from __future__ import annotations

import pytest

from runtime.fleet.policy import ScalingPolicy, decide, fleet_metric

P = ScalingPolicy(metric="inflight_requests", target=2.0, min_replicas=1, max_replicas=4,
                  scale_out_cooldown_s=10, scale_in_cooldown_s=30, warmup_s=5)


@pytest.mark.parametrize("current,metric,desired", [
    (1, 2.0, 1),    # on target
    (1, 2.1, 2),    # just over: ceil(1.05)
    (2, 3.0, 3),    # ceil(2 x 3 / 2)
    (2, 2.0, 2),    # exact: no float noise pushes it to 3
    (3, 0.5, 1),    # ceil(0.75) = 1
    (2, 100.0, 4),  # clamped to max
    (3, 0.0, 1),    # clamped to min
])
def test_desired_is_ceil_of_current_times_metric_over_target(current, metric, desired):
    d = decide(P, current, metric, now=1000.0)
    assert d.desired == desired
    assert d.action == ("scale_out" if desired > current else "scale_in" if desired < current else "hold")
    assert "ceil(" in d.reason


def test_scale_out_cooldown_holds_then_allows():
    held = decide(P, 1, 5.0, now=105.0, last_scale_out=100.0)
    assert held.action == "hold" and "scale-out cooldown" in held.reason and "5.0 s left" in held.reason
    assert decide(P, 1, 5.0, now=110.0, last_scale_out=100.0).action == "scale_out"


def test_scale_in_cooldown_counts_from_the_last_scale_in_only():
    assert decide(P, 3, 0.1, now=110.0, last_scale_in=100.0).action == "hold"
    assert decide(P, 3, 0.1, now=130.0, last_scale_in=100.0).action == "scale_in"
    # a recent scale-out does not block scale-in (AWS target tracking), warm-up does
    assert decide(P, 3, 0.1, now=101.0, last_scale_out=100.0).action == "scale_in"


def test_scale_out_is_not_delayed_by_a_recent_scale_in():
    assert decide(P, 1, 5.0, now=101.0, last_scale_in=100.0).action == "scale_out"


def test_no_scale_in_while_a_replica_warms_up():
    d = decide(P, 3, 0.1, now=200.0, warming=1)
    assert d.action == "hold" and "warming" in d.reason


def test_outside_bounds_is_corrected_without_cooldown():
    assert decide(P, 0, None, now=1.0, last_scale_out=0.5).desired == 1
    d = decide(P, 6, 1.0, now=1.0, last_scale_in=0.5)
    assert d.action == "scale_in" and d.desired == 4


def test_no_metric_holds():
    d = decide(P, 2, None, now=1.0)
    assert d.action == "hold" and "warming" in d.reason


def test_fleet_metric_leaves_warming_replicas_out():
    # ready at 0 (warmed at 10) and at 8 (still warming at 10 with warmup 5)
    assert fleet_metric([(0.0, 4.0), (8.0, 0.0)], now=10.0, warmup_s=5) == (4.0, 1)
    assert fleet_metric([(0.0, 4.0), (2.0, 2.0)], now=10.0, warmup_s=5) == (3.0, 0)
    assert fleet_metric([(9.0, 4.0)], now=10.0, warmup_s=5) == (None, 1)
    assert fleet_metric([], now=10.0, warmup_s=5) == (None, 0)


def test_metrics_the_local_autoscaler_reads():
    from runtime.fleet.scrape import SUPPORTED_METRICS, parse_metrics
    from runtime.serve.metrics import ServeMetrics

    m = ServeMetrics(inflight=lambda: 3)
    for code in (200, 200, 429):
        m.request(code, 0.01)
    assert parse_metrics(m.render().decode()) == (3.0, 3.0)
    assert set(SUPPORTED_METRICS) == {"inflight_requests", "requests_per_target", "cpu_utilization"}
