"""A real replica process over real HTTP: batching, backpressure, deadlines, drain, startup errors."""

from __future__ import annotations

import argparse
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from runtime.serve import cli

X = {"instances": [[0.5, 0.5, 0.5, 0.5]]}


def post(url, body=X, headers=None, timeout=10.0):
    return httpx.post(f"{url}/v1/predict", json=body, headers=headers, timeout=timeout)


def metric(url, name) -> float:
    text = httpx.get(f"{url}/metrics").text
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_real_http_predicts_batches_and_rejects_bad_input(replica, artifacts):
    r = replica("--model", str(artifacts["logreg"]), "--test-delay-ms", "30")
    assert httpx.get(f"{r.url}/readyz").status_code == 200
    ok = post(r.url, {"instances": [[0, 0, 0, 0], [9, 9, 9, 9]]})
    assert ok.status_code == 200 and set(ok.json()["predictions"]) <= {"a", "b", "c"}
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: post(r.url), range(32)))
    assert all(a.status_code == 200 for a in answers)
    batches = metric(r.url, "gpufleet_serve_batch_size_rows_count")
    assert batches < 33  # 33 requests took fewer forward passes: they were merged
    assert metric(r.url, "gpufleet_serve_batch_size_rows_sum") == 34
    big = httpx.post(f"{r.url}/v1/predict", content=b"[" + b"1," * 600_000 + b"1]",
                     headers={"content-type": "application/json"}, timeout=10)
    assert big.status_code == 413 and "limit" in big.json()["error"]
    for body, code in ((b"{", 400), (b'{"instances": []}', 422), (b'{"instances": [[1, 2]]}', 422)):
        resp = httpx.post(f"{r.url}/v1/predict", content=body, headers={"content-type": "application/json"})
        assert resp.status_code == code and resp.json()["error"]
    assert httpx.post(f"{r.url}/v1/predict", content=b"{}", headers={"content-type": "text/csv"}).status_code == 415
    assert httpx.get(f"{r.url}/nope").status_code == 404
    assert httpx.delete(f"{r.url}/v1/predict").status_code == 405
    assert post(r.url).status_code == 200  # still serving
    assert metric(r.url, 'gpufleet_serve_requests_total{code="400"}') == 1
    assert metric(r.url, "gpufleet_serve_model_load_seconds") > 0


def test_full_queue_gets_429_and_a_missed_deadline_504(replica, artifacts, wait_until):
    r = replica("--model", str(artifacts["mlp"]), "--test-delay-ms", "800", "--max-batch-size", "1", "--queue-size", "2")
    with ThreadPoolExecutor(5) as pool:
        busy = [pool.submit(post, r.url)]  # runs for 800 ms
        assert wait_until(lambda: metric(r.url, "gpufleet_serve_inflight_requests") == 1, timeout=5)
        late = post(r.url, headers={"X-Deadline-Ms": "50"})
        assert late.status_code == 504 and "deadline" in late.json()["error"]
        busy += [pool.submit(post, r.url) for _ in range(2)]  # the queue is full now
        assert wait_until(lambda: metric(r.url, "gpufleet_serve_queue_depth") == 2, timeout=5)
        full = post(r.url)
        assert full.status_code == 429 and full.headers["retry-after"] == "1" and "queue full" in full.json()["error"]
        assert [f.result().status_code for f in busy] == [200] * 3
    assert metric(r.url, "gpufleet_serve_batch_size_rows_count") == 3  # the 504 never took a batch slot


def test_sigterm_drains_in_flight_requests_then_exits(replica, artifacts, wait_until):
    r = replica("--model", str(artifacts["mlp"]), "--test-delay-ms", "400", "--max-batch-size", "1",
                "--deregistration-window-s", "0.5", "--drain-timeout-s", "5")
    with ThreadPoolExecutor(4) as pool:
        in_flight = [pool.submit(post, r.url) for _ in range(3)]  # ~1.2 s of work queued
        assert wait_until(lambda: metric(r.url, "gpufleet_serve_inflight_requests") == 3, timeout=5)
        t0 = time.monotonic()
        r.signal()
        assert wait_until(lambda: httpx.get(f"{r.url}/readyz").status_code == 503, timeout=2)
        within_window = pool.submit(post, r.url)  # the load balancer may still send some
        time.sleep(0.7)
        try:
            refused = post(r.url).status_code
        except httpx.TransportError:
            refused = "connection refused"
        assert refused in (503, "connection refused")
        assert [f.result().status_code for f in in_flight] == [200, 200, 200]
        assert within_window.result().status_code == 200
    assert r.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5


@pytest.mark.slow
def test_drain_timeout_bounds_the_exit(replica, artifacts, wait_until):
    r = replica("--model", str(artifacts["mlp"]), "--test-delay-ms", "5000", "--drain-timeout-s", "1")
    with ThreadPoolExecutor(1) as pool:
        pool.submit(post, r.url)
        assert wait_until(lambda: metric(r.url, "gpufleet_serve_inflight_requests") == 1, timeout=5)
        t0 = time.monotonic()
        r.signal()
        r.wait(timeout=10)
        assert time.monotonic() - t0 < 1.5


@pytest.mark.parametrize("what", ["missing", "corrupt"])
def test_unusable_model_fails_startup_with_exit_2(replica, artifacts, tmp_path, what):
    path = tmp_path / "model"
    if what == "corrupt":
        path.mkdir()
        (path / "model.json").write_text((artifacts["mlp"] / "model.json").read_text())
        (path / "weights.pt").write_bytes(b"\x00garbage")
    r = replica("--model", str(path), wait_ready=False)
    assert r.wait(timeout=30) == 2
    err = r.proc.stderr.read()
    assert f"model {path}" in err and ("no such artifact" in err or "not a readable torch state_dict" in err)
    assert "Traceback" not in err


def test_cli_registers_serve_and_reads_a_config(tmp_path):
    parser = argparse.ArgumentParser(prog="gpufleet")
    cli.register(parser.add_subparsers(dest="command"))
    conf = tmp_path / "runtime.json"
    conf.write_text(json.dumps({"serve": {"model": "/m", "max_batch_size": 8, "port": 9000}}))
    args = parser.parse_args(["serve", "--config", str(conf), "--port", "9001", "--max-delay-ms", "0"])
    assert callable(args.func)
    cfg = cli.config_from_args(args)
    assert (cfg.model, cfg.max_batch_size, cfg.port, cfg.max_delay_ms, cfg.host) == ("/m", 8, 9001, 0.0, "127.0.0.1")
    assert cfg.to_dict()["max_body_bytes"] == 1 << 20
    bad = parser.parse_args(["serve", "--model", "/m", "--max-batch-size", "0"])
    assert bad.func(bad) == 2
