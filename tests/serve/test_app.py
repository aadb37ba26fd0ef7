"""The replica's ASGI app in-process: routes, bad input, metrics, and a 10,000-request fuzz."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from runtime.model import load_artifact
from runtime.serve.app import ServeApp
from runtime.serve.config import ServeConfig


JSON = {"content-type": "application/json"}


def predict_body(rows) -> bytes:
    return orjson.dumps({"instances": rows})


async def call(app, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """A minimal in-process ASGI client (no sockets, fast enough for 10,000 requests):
    send one request to `app`; return (status, headers dict, body bytes)."""
    hdrs = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode("utf-8", "replace"), "query_string": b"", "headers": hdrs,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    assert start["type"] == "http.response.start"
    out_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], out_headers, b"".join(m.get("body", b"") for m in sent[1:])



@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def app(artifacts):
    app = ServeApp(ServeConfig(model=str(artifacts["mlp"]), max_body_bytes=4096), load_artifact(artifacts["mlp"]))
    yield app
    app.batcher.stop()


def request(loop, app, method, path, body=b"", headers=None):
    status, hdrs, raw = loop.run_until_complete(call(app, method, path, body, headers))
    return status, hdrs, raw


def test_predict_and_health(loop, app):
    status, hdrs, raw = request(loop, app, "POST", "/v1/predict", predict_body([[0, 1, 2, 3], [1.5, -2, 0, 1e3]]), JSON)
    assert status == 200 and hdrs["content-type"] == "application/json"
    assert json.loads(raw)["predictions"] in ([a, b] for a in (0, 1) for b in (0, 1))
    assert request(loop, app, "GET", "/livez")[0] == 200
    assert request(loop, app, "GET", "/readyz")[0] == 200
    doc = json.loads(request(loop, app, "GET", "/openapi.json")[2])
    assert doc["openapi"].startswith("3.") and "/v1/predict" in doc["paths"]
    row = doc["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["instances"]["items"]
    assert row["minItems"] == row["maxItems"] == 4


def test_readiness_follows_loading_and_draining(artifacts, loop):
    app = ServeApp(ServeConfig(model="unused"))
    assert request(loop, app, "GET", "/livez")[0] == 200
    status, _, raw = request(loop, app, "GET", "/readyz")
    assert status == 503 and b"not loaded" in raw
    assert request(loop, app, "POST", "/v1/predict", predict_body([[0] * 4]), JSON)[0] == 503
    app.load(load_artifact(artifacts["kmeans"]))
    assert request(loop, app, "GET", "/readyz")[0] == 200
    app.set_draining()
    assert request(loop, app, "GET", "/readyz")[0] == 503
    assert request(loop, app, "POST", "/v1/predict", predict_body([[0] * 4]), JSON)[0] == 200  # still inside the window
    app.accepting = False
    status, hdrs, _ = request(loop, app, "POST", "/v1/predict", predict_body([[0] * 4]), JSON)
    assert status == 503 and hdrs["connection"] == "close"
    app.batcher.stop()


BAD = [
    ("malformed JSON", "POST", "/v1/predict", b'{"instances": [[1,2', JSON, 400),
    ("NaN literal", "POST", "/v1/predict", b'{"instances": [[NaN, 1, 2, 3]]}', JSON, 400),
    ("overflowing number", "POST", "/v1/predict", b'{"instances": [[1e999, 1, 2, 3]]}', JSON, 400),
    ("beyond float32", "POST", "/v1/predict", b'{"instances": [[1e300, 1, 2, 3]]}', JSON, 422),
    ("wrong feature count", "POST", "/v1/predict", predict_body([[1, 2, 3]]), JSON, 422),
    ("ragged rows", "POST", "/v1/predict", predict_body([[1, 2, 3, 4], [1, 2]]), JSON, 422),
    ("strings", "POST", "/v1/predict", predict_body([["1", "2", "3", "4"]]), JSON, 422),
    ("nulls", "POST", "/v1/predict", predict_body([[None, 2, 3, 4]]), JSON, 422),
    ("integer beyond float32", "POST", "/v1/predict", b'{"instances": [[1' + b"0" * 40 + b', 1, 2, 3]]}', JSON, 422),
    ("empty list", "POST", "/v1/predict", predict_body([]), JSON, 422),
    ("flat list", "POST", "/v1/predict", predict_body([1, 2, 3, 4]), JSON, 422),
    ("not an object", "POST", "/v1/predict", b"[[1,2,3,4]]", JSON, 422),
    ("extra field", "POST", "/v1/predict", b'{"instances": [[1,2,3,4]], "x": 1}', JSON, 422),
    ("body over the limit", "POST", "/v1/predict", predict_body([[1.0, 2.0, 3.0, 4.0]] * 400), JSON, 413),
    ("declared length over the limit", "POST", "/v1/predict", b"{}", {**JSON, "content-length": "999999"}, 413),
    ("wrong content type", "POST", "/v1/predict", predict_body([[1, 2, 3, 4]]), {"content-type": "text/plain"}, 415),
    ("no content type", "POST", "/v1/predict", predict_body([[1, 2, 3, 4]]), {}, 415),
    ("bad deadline", "POST", "/v1/predict", predict_body([[1, 2, 3, 4]]), {**JSON, "x-deadline-ms": "soon"}, 400),
    ("negative deadline", "POST", "/v1/predict", predict_body([[1, 2, 3, 4]]), {**JSON, "x-deadline-ms": "-5"}, 400),
    ("unknown path", "GET", "/v2/predict", b"", {}, 404),
    ("wrong method", "GET", "/v1/predict", b"", {}, 405),
    ("wrong method on health", "POST", "/livez", b"", {}, 405),
]


@pytest.mark.parametrize("what,method,path,body,headers,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_with_a_json_message(loop, app, what, method, path, body, headers, expected):
    status, hdrs, raw = request(loop, app, method, path, body, headers)
    assert status == expected, raw
    assert hdrs["content-type"] == "application/json" and json.loads(raw)["error"]
    assert request(loop, app, "POST", "/v1/predict", predict_body([[0, 0, 0, 0]]), JSON)[0] == 200


def test_metrics_name_every_required_series(loop, app):
    request(loop, app, "POST", "/v1/predict", predict_body([[0, 0, 0, 0]]), JSON)
    text = request(loop, app, "GET", "/metrics")[2].decode()
    for name in ("gpufleet_serve_requests_total{code=\"200\"}", "gpufleet_serve_request_latency_seconds_bucket",
                 "gpufleet_serve_inflight_requests", "gpufleet_serve_queue_depth", "gpufleet_serve_batch_size_rows_bucket",
                 "gpufleet_serve_queue_wait_seconds_bucket", "gpufleet_serve_model_load_seconds"):
        assert name in text, name


def test_httpx_asgi_client_sees_the_same_api(loop, app):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replica") as client:
            ok = await client.post("/v1/predict", json={"instances": [[1, 2, 3, 4]]})
            bad = await client.post("/v1/predict", content=b"nope", headers=JSON)
            return ok, bad

    ok, bad = loop.run_until_complete(go())
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1
    assert bad.status_code == 400 and "valid JSON" in bad.json()["error"]


# -- fuzz ----------------------------------------------------------------------------------------
_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70))
_json = st.recursive(st.none() | st.booleans() | _numbers | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=20)
_rows = st.lists(st.lists(_numbers, min_size=3, max_size=5), min_size=0, max_size=6)


def _encode(doc) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


_bodies = st.one_of(
    _rows.map(lambda rows: _encode({"instances": rows})),
    st.fixed_dictionaries({"instances": _json}).map(_encode),
    _json.map(_encode),
    st.binary(max_size=64),
    st.lists(st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4), min_size=1, max_size=120).map(lambda r: _encode({"instances": r})),
)
_paths = st.one_of(st.sampled_from(["/v1/predict"] * 6 + ["/livez", "/readyz", "/metrics", "/openapi.json", "/"]),
                   st.text(max_size=10).map(lambda s: "/" + s))
_methods = st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"])
_ctypes = st.one_of(st.just("application/json"), st.just("application/json; charset=utf-8"), st.just("text/plain"),
                    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20), st.none())
_deadlines = st.one_of(st.none(), st.floats(allow_nan=True).map(str), st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8))


_requests = st.tuples(_methods, _paths, _ctypes, _bodies, _deadlines)


def test_fuzz_10000_requests_find_no_5xx(loop, app):
    """200 hypothesis examples of 50 generated requests each: per-example overhead dominates
    hypothesis's cost, so batching the requests keeps 10,000 of them within seconds."""
    seen = {"n": 0, "codes": {}}

    @settings(max_examples=200, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.lists(_requests, min_size=50, max_size=50))
    def fuzz(requests):
        for method, path, ctype, body, deadline in requests:
            headers = {}
            if ctype is not None:
                headers["content-type"] = ctype
            if deadline is not None:
                headers["x-deadline-ms"] = deadline
            status, hdrs, raw = request(loop, app, method, path, body, headers)
            seen["n"] += 1
            seen["codes"][status] = seen["codes"].get(status, 0) + 1
            assert status < 500, (method, path, headers, body, status, raw)
            if status >= 400 and method != "HEAD":
                assert json.loads(raw)["error"]

    fuzz()
    assert seen["n"] >= 10_000, seen
    assert seen["codes"].get(200, 0) > 100 and len(seen["codes"]) >= 6, seen["codes"]
    assert request(loop, app, "POST", "/v1/predict", predict_body([[0, 0, 0, 0]]), JSON)[0] == 200


# -- the contract /openapi.json states: numbers within float32's range, and no booleans ---------
F32_MAX = float(np.finfo(np.float32).max)  # 3.4028234663852886e+38

CONTRACT = [
    ("false among numbers", b'{"instances": [[false, 0, 0, 0]]}', 422, "instances[0][0] is false, a boolean"),
    ("true among floats", b'{"instances": [[1.5, 2, 3, 4], [1, true, 0.5, 2]]}', 422,
     "instances[1][1] is true, a boolean"),
    ("only booleans", b'{"instances": [[true, true, false, true]]}', 422, "instances[0][0] is true, a boolean"),
    ("a string", b'{"instances": [[1, 2, "x", 4]]}', 422, 'instances[0][2] is "x", not a number'),
    ("a row that is no list", b'{"instances": [[1, 2, 3, 4], 5]}', 422, "instances[1] is 5, not a list"),
    ("a short row among full ones", b'{"instances": [[1, 2, 3, 4], [1, 2]]}', 422, "got 2 in instances[1]"),
    ("float32 max", predict_body([[F32_MAX, -F32_MAX, 0, 1]]), 200, None),
    ("just past float32 max", predict_body([[0, 0, 3.402823466385289e38, 0]]), 422,
     "instances[0][2] is 3.402823466385289e+38, beyond float32 range"),
    ("just past -float32 max", predict_body([[0, -3.402823466385289e38, 0, 0]]), 422, "instances[0][1] is -3.4028"),
    ("1e39", predict_body([[1, 2, 3, 4], [1, 2, 3, 1e39]]), 422, "instances[1][3] is 1e+39, beyond float32 range"),
    ("largest integers", predict_body([[2**64 - 1, -(2**63), 2**63, 0]]), 200, None),
    ("a key written with escapes", b'{"\\u0069nstances": [[1, 2, 3, 4]]}', 200, None),
    ("a name with u and f bytes in a field refused", b'{"instances": [[1, 2, 3, 4]], "fu": 1}', 422, "unknown fields"),
]


@pytest.mark.parametrize("what,body,expected,message", CONTRACT, ids=[c[0] for c in CONTRACT])
def test_features_are_float32_numbers_as_the_schema_says(loop, app, what, body, expected, message):
    status, _, raw = request(loop, app, "POST", "/v1/predict", body, JSON)
    assert status == expected, raw
    if message:
        assert message in json.loads(raw)["error"], raw


def test_schema_states_the_float32_bounds(loop, app):
    doc = json.loads(request(loop, app, "GET", "/openapi.json")[2])
    body = doc["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    feature = body["properties"]["instances"]["items"]["items"]
    assert feature["type"] == "number"  # JSON Schema: true and false are not numbers
    assert (feature["minimum"], feature["maximum"]) == (-F32_MAX, F32_MAX)
    ok = doc["paths"]["/openapi.json"]["get"]["responses"]["200"]
    assert "application/json" in ok["content"]
