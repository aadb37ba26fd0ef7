"""The replica's HTTP application: a plain ASGI callable run by uvicorn.

Why plain ASGI and not a framework: on 2 cores, HTTP and JSON handling, not the model, bound
throughput (see bench/serve_bench.py). A framework's routing, request objects and response
classes cost more per request than the small model's share of a batched forward pass; this app
does one dict lookup for the route, one pass over the headers, `orjson` both ways and one
`numpy` conversion.

Routes: POST /v1/predict, GET /livez, /readyz, /metrics, /openapi.json. Every error a client
can cause is a 4xx with a JSON body `{"error": "..."}`; a 500 only comes from a bug or a
failing model, and the server keeps serving either way.

States: `ready` turns true once the model is loaded and warmed; `draining` (set by the drain
sequence in server.py) turns readiness false; `accepting` false makes new predictions 503 with
`Connection: close`, after the load balancer's deregistration window.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import numpy as np
import orjson

from runtime.serve.batcher import DEADLINE, Batcher, DeadlineUnmeetable, QueueFull
from runtime.serve.config import ServeConfig
from runtime.serve.metrics import ServeMetrics
from runtime.serve.openapi import FLOAT32_MAX, build_openapi

log = logging.getLogger("gpufleet.serve")

_JSON = [(b"content-type", b"application/json")]
_CLOSE = [(b"connection", b"close")]


class ServeApp:
    """ASGI app of one replica. `load(predictor)` makes it ready; see the module docstring."""

    def __init__(self, config: ServeConfig, predictor=None):
        self.config = config
        self.predictor = None
        self.batcher: Batcher | None = None
        self.ready = False
        self.draining = False
        self.accepting = True
        self.inflight = 0
        self.stopped_cleanly = True
        self.metrics = ServeMetrics(inflight=lambda: self.inflight,
                                    queue_depth=lambda: self.batcher.queued if self.batcher else 0)
        self._openapi = orjson.dumps(build_openapi(None, None, config.max_body_bytes))
        self._gets = {"/livez": self._livez, "/readyz": self._readyz, "/metrics": self._metrics,
                      "/openapi.json": self._openapi_doc}
        if predictor is not None:
            self.load(predictor)

    # -- model ---------------------------------------------------------------------------------
    def load(self, predictor, load_seconds: float | None = None) -> None:
        """Install a loaded model, warm it at batch sizes 1 and max, then report ready.

        Warming runs the forward passes whose first call allocates (oneDNN primitives, buffers),
        so the first user request is not the slow one. Afterwards the objects alive now (model,
        modules, imports) are frozen out of the cyclic garbage collector's reach, so its full
        collections stay short while serving.
        """
        import torch

        torch.set_num_threads(1)
        t0 = time.monotonic()
        cfg = self.config
        for n in sorted({1, cfg.max_batch_size}):
            predictor.predict(np.zeros((n, predictor.n_features), dtype=np.float32))
        self.predictor = predictor
        self.batcher = Batcher(predictor.predict, cfg.max_batch_size, cfg.max_delay_ms, cfg.queue_size,
                               cfg.test_delay_ms, observe=self.metrics.batch)
        self._openapi = orjson.dumps(build_openapi(predictor.n_features, predictor.kind, cfg.max_body_bytes))
        self.metrics.model_load.set((load_seconds or 0.0) + time.monotonic() - t0)
        gc.collect()
        gc.freeze()
        self.ready = True
        self.metrics.ready.set(1)

    def set_draining(self) -> None:
        self.draining = True
        self.metrics.ready.set(0)

    # -- ASGI ----------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == "/v1/predict":
                await self._predict(scope, receive, send)
                return
            handler = self._gets.get(path)
            if handler is None:
                await _reply(send, 404, {"error": f"no such path {path!r}; see /openapi.json"})
            elif scope["method"] not in ("GET", "HEAD"):
                await _reply(send, 405, {"error": f"{scope['method']} is not allowed on {path}; use GET"},
                             [(b"allow", b"GET, HEAD")])
            else:
                status, body, headers = handler()
                await send({"type": "http.response.start", "status": status,
                            "headers": headers + [(b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.batcher is not None:  # a forward still running past the drain timeout is abandoned
                    self.stopped_cleanly = self.batcher.stop(timeout_s=0.0 if self.draining else 1.0)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _livez(self):
        return 200, b'{"status":"alive"}', _JSON

    def _readyz(self):
        if self.ready and not self.draining:
            return 200, b'{"status":"ready"}', _JSON
        why = "draining" if self.draining else "model not loaded yet"
        return 503, orjson.dumps({"error": f"not ready: {why}"}), _JSON

    def _metrics(self):
        return 200, self.metrics.render(), [(b"content-type", self.metrics.content_type.encode())]

    def _openapi_doc(self):
        return 200, self._openapi, _JSON

    # -- /v1/predict ---------------------------------------------------------------------------
    async def _predict(self, scope, receive, send):
        start = time.monotonic()
        self.inflight += 1
        try:
            try:
                status, payload, headers = await self._answer(scope, receive, start)
            except Exception:  # a bug or a failing model: log it, answer 500, keep serving
                log.exception("predict failed")
                status, payload, headers = 500, {"error": "internal error while predicting; see the server log"}, _CLOSE
            if status is None:  # the client went away before sending its body
                self.metrics.request(499, None)
                return
            body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            await send({"type": "http.response.start", "status": status,
                        "headers": _JSON + headers + [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            self.metrics.request(status, time.monotonic() - start)
        finally:
            self.inflight -= 1

    async def _answer(self, scope, receive, start):
        """(status, body, extra headers) for one prediction request; status None: client gone."""
        if scope["method"] != "POST":
            return 405, {"error": f"{scope['method']} is not allowed on /v1/predict; use POST"}, [(b"allow", b"POST")]
        if not self.accepting:
            return 503, {"error": "draining: this replica no longer accepts requests"}, _CLOSE
        if not self.ready:
            return 503, {"error": "not ready: model not loaded yet"}, [(b"retry-after", b"1")]
        cfg = self.config
        content_type = length = deadline_ms = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == b"x-deadline-ms":
                deadline_ms = value
        if content_type is None or content_type.split(b";", 1)[0].strip().lower() != b"application/json":
            got = content_type.decode("latin-1") if content_type is not None else "none"
            return 415, {"error": f"content-type must be application/json (got {got!r})"}, _CLOSE
        if length is not None and length.isdigit() and int(length) > cfg.max_body_bytes:
            return 413, {"error": f"body of {int(length)} bytes is over the limit of {cfg.max_body_bytes} bytes"}, _CLOSE
        budget = cfg.default_deadline_ms
        if deadline_ms is not None:
            try:
                budget = float(deadline_ms)
            except ValueError:
                budget = float("nan")
            if not (budget > 0 and budget != float("inf")):
                got = deadline_ms.decode("latin-1")
                return 400, {"error": f"X-Deadline-Ms must be a positive number of milliseconds (got {got!r})"}, []
        body = await _read_body(receive, cfg.max_body_bytes)
        if body is None:
            return None, None, None
        if body is _TOO_LARGE:
            return 413, {"error": f"body is over the limit of {cfg.max_body_bytes} bytes"}, _CLOSE
        rows = self._parse(body)
        if isinstance(rows, tuple):
            return rows
        if not self.batcher.started:  # first request: the worker binds to the serving loop
            self.batcher.start(asyncio.get_running_loop())
        try:
            future = self.batcher.submit(rows, start + budget / 1000.0)
        except QueueFull:
            return 429, {"error": f"queue full ({cfg.queue_size} requests waiting); retry later"}, [(b"retry-after", b"1")]
        except DeadlineUnmeetable:
            return 504, {"error": f"deadline of {budget:g} ms cannot be met with the current queue"}, []
        result = await future
        if result is DEADLINE:
            return 504, {"error": f"deadline of {budget:g} ms passed while queued"}, []
        return 200, orjson.dumps({"predictions": result}), []

    def _parse(self, body: bytes):
        """float32 [n, n_features] rows, or a (status, error, headers) tuple naming the problem."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            return 400, {"error": f"body is not valid JSON ({e}); NaN and Infinity are not JSON"}, []
        if not isinstance(doc, dict) or "instances" not in doc:
            return 422, {"error": 'body must be a JSON object {"instances": [[...], ...]}'}, []
        extra = sorted(set(doc) - {"instances"})
        if extra:
            return 422, {"error": f"unknown fields {extra}; the body holds only 'instances'"}, []
        instances = doc["instances"]
        n = self.predictor.n_features
        if not isinstance(instances, list) or not instances:
            return 422, {"error": f"instances must be a non-empty list of rows of {n} numbers"}, []
        try:
            arr = np.asarray(instances)
        except (ValueError, TypeError, OverflowError):
            arr = None
        if arr is None or arr.ndim != 2 or arr.dtype.kind not in "fiu":
            return 422, {"error": _shape_error(instances, n)}, []
        # numpy takes JSON true/false among numbers as 1/0. Neither numbers nor the key "instances"
        # hold a "u" (true) or an "f" (false): two memchr scans, and a walk only when one is there.
        if (b"u" in body or b"f" in body) and (problem := _non_number(instances)):
            return 422, {"error": problem}, []
        if arr.shape[1] != n:
            return 422, {"error": f"each instance needs {n} features (got {arr.shape[1]})"}, []
        # JSON has no NaN or Infinity (orjson refuses them) and int64 lies within float32's range,
        # so only float64 values can be out of range; a value within it converts to a finite one.
        if arr.dtype.kind == "f" and (arr.max() > FLOAT32_MAX or arr.min() < -FLOAT32_MAX):
            i, j = np.argwhere(np.abs(arr) > FLOAT32_MAX)[0]
            return 422, {"error": f"instances[{i}][{j}] is {float(arr[i, j])!r}, beyond float32 range "
                                  f"(|x| <= {FLOAT32_MAX!r})"}, []
        return arr.astype(np.float32)


_TOO_LARGE = object()


def _non_number(instances: list) -> str | None:
    """Name the first entry of `instances` that is not a list of numbers; None if all are.
    A Python walk over every value, so `_parse` calls it only for a body already refused or one
    with a "u" or "f" byte (a boolean, or a key written with escapes): never on the hot path."""
    for i, row in enumerate(instances):
        if not isinstance(row, list):
            return f"instances[{i}] is {_show(row)}, not a list of numbers"
        for j, value in enumerate(row):
            if isinstance(value, bool):
                return f"instances[{i}][{j}] is {_show(value)}, a boolean; each feature must be a number"
            if not isinstance(value, (int, float)):
                return f"instances[{i}][{j}] is {_show(value)}, not a number"
    return None


def _shape_error(instances: list, n: int) -> str:
    """Why `instances` is not an [m, n] array of numbers: its first non-number, or its first row
    of the wrong width."""
    problem = _non_number(instances)
    if problem:
        return problem
    for i, row in enumerate(instances):
        if len(row) != n:
            return f"each instance needs {n} features (got {len(row)} in instances[{i}])"
    return f"instances must be a list of rows, each a list of {n} numbers"


def _show(value) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 40 else text[:37] + "..."


async def _read_body(receive, limit: int):
    """The request body, `_TOO_LARGE` past `limit` bytes, or None if the client disconnected."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return _TOO_LARGE
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _reply(send, status: int, payload: dict, headers=()):
    body = orjson.dumps(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": _JSON + list(headers) + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
