"""Run one replica: bind, load the model, serve, and drain on SIGTERM.

Startup order: the socket is bound first so `/livez` answers while a large model downloads;
`/readyz` stays 503 until the model is loaded and warmed. A missing or corrupt artifact stops
the process with its BadInput message and exit code 2.

Drain (SIGTERM from scale-in, a lifecycle hook, or the agent; SIGINT too):
  1. readiness turns false at once, so the load balancer's health check takes the replica out;
  2. for `deregistration_window_s` requests are still served (the balancer may still route
     some while it deregisters the target);
  3. then the listening socket closes and new requests on open connections get 503 with
     `Connection: close`;
  4. requests in flight and queued finish; the process exits as soon as none are left, and in
     any case within `drain_timeout_s` of the signal (what is still running then is cancelled).
A second signal exits at once. Exit code 0 after a drain.

The HTTP stack is uvicorn with httptools and uvloop when they are installed (they roughly
double requests/s over h11 and asyncio on 2 cores; see bench/serve_bench.py).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import signal
import sys
import time

import uvicorn

from runtime.errors import EXIT_BAD_INPUT, EXIT_OK, BadInput
from runtime.serve.app import ServeApp
from runtime.serve.config import ServeConfig

log = logging.getLogger("gpufleet.serve")


class _DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first exit signal starts a drain instead of stopping at once."""

    def __init__(self, uv_config: uvicorn.Config, app: ServeApp, cfg: ServeConfig):
        super().__init__(uv_config)
        self.app = app
        self.cfg = cfg
        self.loop: asyncio.AbstractEventLoop | None = None
        self.drain_task: asyncio.Task | None = None
        self.drained_cleanly = True

    def handle_exit(self, sig, frame) -> None:
        # Runs in a signal handler: only schedule work on the loop. Not recording the signal
        # (as uvicorn does) keeps it from being re-raised after shutdown, so the exit code is ours.
        if self.drain_task is not None or self.loop is None:
            self.should_exit = True
            self.force_exit = True
            return
        self.loop.call_soon_threadsafe(self.start_drain, signal.Signals(sig).name)

    def start_drain(self, reason: str = "request") -> None:
        if self.drain_task is None:
            self.drain_task = asyncio.ensure_future(self._drain(reason))

    async def _drain(self, reason: str) -> None:
        cfg, app = self.cfg, self.app
        t0 = time.monotonic()
        end = t0 + cfg.drain_timeout_s
        app.set_draining()
        log.warning("drain started (%s): readiness false, accepting for %.1f s more", reason, cfg.deregistration_window_s)
        await asyncio.sleep(max(0.0, min(cfg.deregistration_window_s, end - time.monotonic())))
        app.accepting = False
        for s in self.servers:  # new connections are refused from now on
            s.close()
        while time.monotonic() < end and (app.inflight or (app.batcher is not None and not app.batcher.idle)):
            await asyncio.sleep(0.005)
        self.drained_cleanly = app.inflight == 0
        if not self.drained_cleanly:
            log.error("drain timeout of %.1f s reached with %d requests in flight; cancelling them",
                      cfg.drain_timeout_s, app.inflight)
        # uvicorn's shutdown polls every 0.1 s and sleeps 0.1 s: keep the total within the timeout.
        self.config.timeout_graceful_shutdown = max(0.05, end - time.monotonic() - 0.25)
        self.should_exit = True


def _uvicorn_config(app: ServeApp, cfg: ServeConfig) -> uvicorn.Config:
    fast_loop = importlib.util.find_spec("uvloop") is not None
    fast_http = importlib.util.find_spec("httptools") is not None
    return uvicorn.Config(
        app, host=cfg.host, port=cfg.port, lifespan="on", access_log=False, log_level=cfg.log_level,
        loop="uvloop" if fast_loop else "asyncio", http="httptools" if fast_http else "h11",
        backlog=4096, timeout_keep_alive=30, server_header=False, date_header=False,
    )


def run_replica(cfg: ServeConfig, pid_file: str | None = None) -> int:
    """Serve until drained; return the process exit code (0, or 2 for an unusable model)."""
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = ServeApp(cfg)
    server = _DrainingServer(_uvicorn_config(app, cfg), app, cfg)
    if pid_file:
        with open(pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    try:
        loop_factory = server.config.get_loop_factory()
        if loop_factory is None:
            code = asyncio.run(_main(server, app, cfg))
        else:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                code = runner.run(_main(server, app, cfg))
        if app.batcher is not None and not app.batcher.idle or not app.stopped_cleanly:
            # The drain timeout passed with a forward pass still running: exit without waiting
            # for it (a daemon thread inside torch at interpreter shutdown can crash the exit).
            _remove(pid_file)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    finally:
        _remove(pid_file)


def _remove(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


async def _main(server: _DrainingServer, app: ServeApp, cfg: ServeConfig) -> int:
    from runtime.model import load_artifact

    loop = asyncio.get_running_loop()
    server.loop = loop
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.005)
    if serving.done():  # bind failed: uvicorn logged why
        serving.result()
        return 1
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    print(f"gpufleet serve: listening on http://{host}:{port}", flush=True)
    t0 = time.monotonic()
    try:
        predictor = await loop.run_in_executor(None, load_artifact, cfg.model)
        await loop.run_in_executor(None, app.load, predictor, time.monotonic() - t0)
    except BadInput as e:
        print(f"gpufleet serve: error: {e}", file=sys.stderr, flush=True)
        server.should_exit = True
        await serving
        return EXIT_BAD_INPUT
    print(f"gpufleet serve: ready ({predictor.kind}, {predictor.n_features} features, "
          f"loaded in {time.monotonic() - t0:.2f} s)", flush=True)
    await serving
    return EXIT_OK
