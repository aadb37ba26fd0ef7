"""templates/haproxy.cfg.j2: the spec's algorithm, health check and retries; checked by haproxy -c."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from infra.targets.local.haproxy import render_config
from runtime.fleet.haproxy import HealthCheck, server_options

HEALTH = HealthCheck(path="/readyz", interval_s=7, timeout_s=3, healthy_threshold=3, unhealthy_threshold=4)


@pytest.mark.parametrize("algorithm,balance", [("round_robin", "roundrobin"), ("least_connections", "leastconn"),
                                               ("weighted_round_robin", "roundrobin")])
def test_algorithm_health_and_retries(tmp_path, algorithm, balance):
    text = render_config(stack="demo", port=18000, socket_path=str(tmp_path / "s.sock"), algorithm=algorithm, health=HEALTH)
    assert f"    balance {balance}\n" in text
    assert "bind 127.0.0.1:18000\n" in text
    assert "option httpchk GET /readyz" in text and "timeout check 3s" in text
    assert "retry-on conn-failure empty-response 503" in text and "option redispatch" in text
    assert "level admin" in text
    if shutil.which("haproxy"):
        cfg = tmp_path / "h.cfg"
        cfg.write_text(text)
        out = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


def test_server_options_carry_the_spec_thresholds_and_pool_weight():
    opts = server_options(HEALTH, 3)
    assert "check inter 7000ms rise 3 fall 4 weight 3" in opts
    assert "on-error mark-down" in opts


def test_only_loopback():
    with pytest.raises(ValueError):
        render_config(stack="d", port=1, socket_path="s", algorithm="round_robin", health=HEALTH, host="0.0.0.0")
