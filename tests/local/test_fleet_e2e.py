"""The local target for real: `up`, HAProxy, replicas, the autoscaler and `down`, under open-loop load.

Replicas run with `--max-batch-size 1` and a per-request delay, so a replica's capacity is
known (1000 / delay requests per second) and the load generator stays light on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.request

import pytest

from infra.targets.local.load import open_loop, run, summarize
from runtime.fleet import state as st

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")]
BODY = json.dumps({"instances": [[0.5] * 8]}).encode()


def predict(url: str):
    req = urllib.request.Request(url + "/v1/predict", data=BODY, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


def events(local_stack, name="t-local"):
    return st.read_decisions(local_stack.dir(name))


def test_up_status_up_again_down(local_stack, tmp_path):
    spec = local_stack.spec(rmin=2, rmax=2, algorithm="weighted_round_robin")
    doc = json.loads(spec.read_text())
    doc["serving"]["pools"] = [{"name": "big", "instance_type": "g5.xlarge", "weight": 3},
                               {"name": "small", "instance_type": "g5.xlarge", "weight": 1}]
    spec.write_text(json.dumps(doc))
    out = local_stack.up(spec)
    assert "stop it with: gpufleet down" in out.stdout
    s = local_stack.status(spec)
    assert s["up"] and s["url"] == f"http://127.0.0.1:{doc['local']['base_port']}"
    reps = s["replicas"]
    assert [r["state"] for r in reps] == ["ready", "ready"]
    assert sorted((r["pool"], r["lb"]["weight"]) for r in reps) == [("big", 3), ("small", 1)]
    assert all(r["lb"]["status"].startswith("UP") and r["pid"] > 0 and r["port"] > 0 for r in reps)
    assert s["haproxy"]["algorithm"] == "weighted_round_robin" and s["last_decision"]["reason"]
    for _ in range(8):
        assert predict(s["url"])[0] == 200
    text = local_stack.cli("status", spec).stdout
    assert "big" in text and "UP" in text and "last decision" in text

    again = local_stack.cli("up", spec, "--model", local_stack.model)
    assert again.returncode == 1 and "already up" in again.stderr and "nothing changed" in again.stderr
    assert [r["pid"] for r in local_stack.status(spec)["replicas"]] == [r["pid"] for r in reps]

    pids = [s["manager"]["pid"], s["haproxy"]["pid"], *(r["pid"] for r in reps)]
    out = local_stack.cli("down", spec)
    assert out.returncode == 0 and "stopped" in out.stdout
    for pid in pids:
        assert st.start_time(pid) is None, f"pid {pid} still running"
    assert local_stack.status(spec)["up"] is False
    assert all(st.port_free(p) for p in range(doc["local"]["base_port"], doc["local"]["base_port"] + 5))


def test_sigkill_one_replica_at_half_capacity(local_stack):
    """2 replicas of 100 requests/s each; 100 requests/s for 30 s; one replica SIGKILLed at 10 s."""
    spec = local_stack.spec(rmin=2, rmax=3, autoscaling={"metric": "inflight_requests", "target": 50,
                                                         "scale_out_cooldown_s": 1, "scale_in_cooldown_s": 60, "warmup_s": 1})
    local_stack.up(spec, "--test-delay-ms", "10")
    s = local_stack.status(spec)
    victim = s["replicas"][0]
    port = int(s["url"].rsplit(":", 1)[1])
    killed = []

    def on_tick(t, results):
        if t >= 10 and not killed:
            os.kill(victim["pid"], signal.SIGKILL)
            killed.append(t)

    results = run(open_loop("127.0.0.1", port, "/v1/predict", BODY, 100.0, 30.0, on_tick=on_tick))
    summary = summarize(results, 30.0)
    print(f"SIGKILL at {killed}: {summary}")
    assert killed
    assert summary["requests"] >= 2900
    assert summary["failed"] <= 0.001 * summary["requests"], summary
    ev = events(local_stack)
    replaced = [e for e in ev if e.get("action") == "replace"]
    assert replaced and victim["name"] in replaced[0]["reason"] and "SIGKILL" in replaced[0]["reason"]
    after = local_stack.status(spec)
    ready = [r for r in after["replicas"] if r["state"] == "ready"]
    assert len(ready) == 2 and victim["pid"] not in [r["pid"] for r in ready]


def test_scale_out_then_scale_in_during_load_fails_nothing(local_stack):
    """1 replica of 50 requests/s; 70/s makes it scale out, then 15/s makes it drain one and scale in."""
    spec = local_stack.spec(rmin=1, rmax=2, autoscaling={"metric": "inflight_requests", "target": 1,
                                                         "scale_out_cooldown_s": 1, "scale_in_cooldown_s": 2, "warmup_s": 1})
    local_stack.up(spec, "--test-delay-ms", "20")
    port = int(local_stack.status(spec)["url"].rsplit(":", 1)[1])
    seen = {}

    def stop():
        ev = events(local_stack)
        if "stopped" not in seen and any(e.get("event") == "stopped" for e in ev):
            seen["stopped"] = time.monotonic()
        return "stopped" in seen and time.monotonic() - seen["stopped"] > 3

    results = run(open_loop("127.0.0.1", port, "/v1/predict", BODY, lambda t: 70.0 if t < 8 else 15.0, 60.0, stop=stop))
    summary = summarize(results)
    print(f"scale-in under load: {summary}")
    actions = [e.get("action") for e in events(local_stack)]
    assert "scale_out" in actions and "scale_in" in actions, actions
    assert "stopped" in seen, "no replica was drained and stopped"
    ready = next(e for e in events(local_stack) if e.get("event") == "ready" and "reaction_s" in e)
    assert ready["reaction_s"] <= 1 + ready["start_s"] + 2, ready  # cooldown + start + 2 s
    assert summary["failed"] == 0, summary
    assert [r["state"] for r in local_stack.status(spec)["replicas"]] == ["ready"]
