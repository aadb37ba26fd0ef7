"""The fleet manager: the background process the local target's `up` starts
(`python -m runtime.fleet DIR`), reading `DIR/fleet-config.json` (runtime.fleet.config).

It owns HAProxy and the serving replicas (`python -m runtime.serve`), all its children, and
runs one loop every `tick_s`:

1. reap replicas that exited: an expected exit (a drained replica) is deleted from HAProxy;
   an unexpected one (a crash, SIGKILL) is deleted at once and replaced, and the replacement
   is logged as a decision;
2. a starting replica whose `/readyz` answers 200 is added to HAProxy (runtime API) and is
   ready from then on;
3. a draining replica (set to `drain` in HAProxy, so it gets no new requests) is sent SIGTERM
   once HAProxy holds no connection to it: scale-in only ever stops a replica that has
   drained, so it fails no request;
4. ready replicas' metric is sampled (runtime.fleet.scrape); every `eval_interval_s` the
   autoscaler applies `runtime.fleet.policy.decide` to the fleet average and starts or drains
   replicas;
5. `fleet.json` is rewritten for `status`, and decisions go to `decisions.jsonl`.

SIGTERM stops the fleet: every replica is drained, then HAProxy stops, then the manager exits.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from runtime.fleet import state as st
from runtime.fleet.config import FleetConfig
from runtime.fleet.haproxy import HAPROXY_BIN, RuntimeAPI
from runtime.fleet.policy import ScalingPolicy, decide, fleet_metric
from runtime.fleet.scrape import http_get, sample
from runtime.store import write_json

START_TIMEOUT_S = 90.0


@dataclass
class Replica:
    name: str
    pool: str
    weight: int
    port: int
    delay_ms: float
    proc: subprocess.Popen
    started_at: float
    state: str = "starting"  # starting | ready | draining | stopping
    ready_at: float | None = None
    in_lb: bool = False
    reason: str = ""  # why it started (scale_out, replace, min)
    crossed_at: float | None = None  # when the metric crossed the target (for scale-out reaction)
    drain_at: float | None = None
    signalled: bool = False
    samples: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    prev: tuple | None = None  # (time, counter) for rate metrics
    rec: dict = field(default_factory=dict)

    def value(self, now: float, window: float) -> float | None:
        vals = [v for t, v in self.samples if now - t <= window]
        return sum(vals) / len(vals) if vals else None


class FleetManager:
    def __init__(self, cfg: FleetConfig, directory: Path):
        self.cfg = cfg
        self.dir = directory
        self.health = cfg.health
        self.api = RuntimeAPI(directory / st.HAPROXY_SOCKET)
        a = cfg.autoscaling
        self.policy = None if a is None else ScalingPolicy(
            **{**dataclasses.asdict(a), "target": float(a.target)}, min_replicas=cfg.min, max_replicas=cfg.max)
        self.desired = cfg.min
        self.replicas: list[Replica] = []
        self.pending_delete: set[str] = set()
        self.counter = 0
        self.haproxy: subprocess.Popen | None = None
        self.haproxy_rec: dict = {}
        self.stopping = False
        self.phase = "starting"
        self.last_scale_out: float | None = None
        self.last_scale_in: float | None = None
        self.last_decision: dict | None = None
        self.last_eval = 0.0
        self.metric_value: float | None = None
        self.above_since: float | None = None
        self.lb_view: dict = {}
        self.start_failures = 0
        self.hold_spawn_until = 0.0
        (directory / "replicas").mkdir(exist_ok=True)

    # -- bookkeeping -----------------------------------------------------------------------
    def log_decision(self, doc: dict) -> None:
        doc = {"time": time.time(), **doc}
        with open(self.dir / st.DECISIONS, "a") as f:
            f.write(json.dumps(doc) + "\n")
        print(f"{time.strftime('%H:%M:%S')} {doc.get('action', doc.get('event'))}: {doc.get('reason', '')}", flush=True)

    def write_state(self) -> None:
        now = time.time()
        reps = []
        for r in self.replicas:
            lb = self.lb_view.get(r.name)
            reps.append({"name": r.name, "pid": r.proc.pid, "start": r.rec.get("start"), "port": r.port, "pool": r.pool,
                         "weight": r.weight, "state": r.state, "test_delay_ms": r.delay_ms,
                         "started_at": r.started_at, "ready_at": r.ready_at, "reason": r.reason,
                         "warming": bool(self.policy and r.ready_at and now - r.ready_at < self.policy.warmup_s),
                         "metric": r.value(now, self.cfg.metric_window_s),
                         "lb": lb or {"status": "not registered"}})
        a = self.cfg.autoscaling
        doc = {"stack": self.cfg.stack, "phase": self.phase, "updated_at": now,
               "url": f"http://127.0.0.1:{self.cfg.port}", "manager": st.record(os.getpid()),
               "haproxy": {**self.haproxy_rec, "socket": str(self.dir / st.HAPROXY_SOCKET),
                           "algorithm": self.cfg.algorithm},
               "desired": self.desired, "min": self.cfg.min, "max": self.cfg.max,
               "autoscaling": None if a is None else dataclasses.asdict(a),
               "metric": None if self.policy is None else {"name": self.policy.metric, "value": self.metric_value,
                                                           "target": self.policy.target},
               "last_decision": self.last_decision, "replicas": reps}
        write_json(self.dir / st.FLEET_STATE, doc, indent=1)

    # -- HAProxy ---------------------------------------------------------------------------
    def start_haproxy(self) -> None:
        (self.dir / st.HAPROXY_SOCKET).unlink(missing_ok=True)
        log = open(self.dir / "haproxy.log", "ab")
        self.haproxy = subprocess.Popen([HAPROXY_BIN, "-f", str(self.dir / st.HAPROXY_CONFIG), "-db"],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.haproxy_rec = st.record(self.haproxy.pid)
        end = time.time() + 10
        while time.time() < end:
            if self.haproxy.poll() is not None:
                raise SystemExit(f"haproxy exited with code {self.haproxy.returncode}; see {self.dir / 'haproxy.log'}")
            try:
                self.api.command("show info")
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("haproxy did not open its admin socket within 10 s")

    # -- replicas --------------------------------------------------------------------------
    def _free_port(self) -> int:
        used = {r.port for r in self.replicas}
        lo, hi = self.cfg.replica_ports
        for port in range(lo, hi + 1):
            if port not in used and st.port_free(port):
                return port
        raise RuntimeError(f"no free replica port in {lo}-{hi}")

    def _pool(self) -> tuple[str, int]:
        live = collections.Counter(r.pool for r in self.replicas if r.state in ("starting", "ready"))
        p = min(self.cfg.pools, key=lambda p: live[p.name])
        return p.name, p.weight if self.cfg.algorithm == "weighted_round_robin" else 1

    def spawn(self, reason: str, crossed_at: float | None = None) -> Replica:
        self.counter += 1
        name = f"r{self.counter}"
        port = self._free_port()
        pool, weight = self._pool()
        delays = self.cfg.test_delay_ms or (0.0,)
        delay = float(delays[(self.counter - 1) % len(delays)])
        s = self.cfg.serve
        cmd = [self.cfg.python, "-m", "runtime.serve", "--model", self.cfg.model,
               "--port", str(port), "--pid-file", str(self.dir / "replicas" / f"{name}.pid"),
               "--max-batch-size", str(s.max_batch_size), "--max-delay-ms", str(s.max_delay_ms),
               "--drain-timeout-s", str(s.drain_timeout_s),
               "--deregistration-window-s", str(s.deregistration_window_s)]
        if delay:
            cmd += ["--test-delay-ms", str(delay)]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        log = open(self.dir / "replicas" / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                cwd=self.cfg.project_root or None)
        log.close()
        r = Replica(name, pool, weight, port, delay, proc, time.time(), reason=reason, crossed_at=crossed_at)
        r.rec = st.record(proc.pid)
        self.replicas.append(r)
        return r

    def _check_starting(self, r: Replica, now: float) -> None:
        try:
            code, _ = http_get(r.port, "/readyz", timeout=0.3)
        except OSError:
            code = 0
        if code == 200:
            try:
                self.api.add_server(r.name, r.port, r.weight, self.health)
            except Exception as e:  # haproxy restarting: try again next tick
                print(f"add server {r.name}: {e}", flush=True)
                return
            r.in_lb, r.state, r.ready_at = True, "ready", now
            ev = {"event": "ready", "replica": r.name, "port": r.port, "start_s": round(now - r.started_at, 3),
                  "reason": f"{r.name} ready on port {r.port} after {now - r.started_at:.1f} s ({r.reason})"}
            if r.crossed_at is not None:
                ev["reaction_s"] = round(now - r.crossed_at, 3)
            self.log_decision(ev)
        elif now - r.started_at > START_TIMEOUT_S:
            self.log_decision({"event": "start_failed", "replica": r.name,
                               "reason": f"{r.name} not ready after {START_TIMEOUT_S:.0f} s; killed"})
            r.proc.kill()
            r.state = "stopping"

    def drain(self, r: Replica, now: float) -> None:
        if r.state == "starting":
            r.proc.terminate()
            r.state, r.signalled = "stopping", True
            return
        r.state, r.drain_at = "draining", now
        if r.in_lb:
            self.api.set_state(r.name, "drain")

    def _check_draining(self, r: Replica, now: float) -> None:
        lb = self.lb_view.get(r.name, {})
        idle = lb.get("sessions", 0) == 0 and lb.get("queued", 0) == 0
        # HAProxy's counters lag by a request or two: wait a moment after setting drain.
        if (idle and now - r.drain_at > 0.5) or now - r.drain_at > self.cfg.serve.drain_timeout_s:
            r.proc.terminate()
            r.state, r.signalled = "stopping", True

    def _reap(self, r: Replica, now: float) -> None:
        code = r.proc.returncode
        if r.in_lb:
            self.pending_delete.add(r.name)
        self.replicas.remove(r)
        if r.state in ("draining", "stopping") or self.stopping:
            self.log_decision({"event": "stopped", "replica": r.name,
                               "reason": f"{r.name} drained and stopped (exit {code})"})
            return
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
        if r.ready_at is None:
            log = (self.dir / "replicas" / f"{r.name}.log").read_text(errors="replace")
            at = log.find("gpufleet serve: error:")
            at = at if at >= 0 else log.rfind("error:")
            said = " ".join((log[at:] if at >= 0 else log[-600:]).split())[:600]
            if self.phase == "starting":  # `up` is waiting: fail it now, with the replica's words
                raise SystemExit(f"replica {r.name} exited with {how} before it was ready: {said}")
            # a replica that never got ready: back off before the next start (1, 2, 4 ... 30 s)
            self.start_failures += 1
            self.hold_spawn_until = now + min(30.0, 2.0 ** (self.start_failures - 1))
        else:
            self.start_failures = 0
        doc = {"action": "replace", "current": len(self.live()), "desired": self.desired, "metric": self.metric_value,
               "replica": r.name, "reason": f"{r.name} (pid {r.proc.pid}, {r.state}) exited with {how}: replacing it"}
        self.last_decision = {"time": time.time(), **doc}
        self.log_decision(doc)

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.state in ("starting", "ready")]

    # -- metrics and scaling ---------------------------------------------------------------
    def scrape(self, r: Replica, now: float) -> None:
        metric = self.policy.metric if self.policy else "inflight_requests"
        value, r.prev = sample(metric, r.proc.pid, r.port, r.prev, now)
        if value is not None:
            r.samples.append((now, value))

    def autoscale(self, now: float) -> None:
        live = self.live()
        current = len(live)
        window = self.cfg.metric_window_s
        samples = [(r.ready_at, v) for r in live if r.state == "ready" for v in [r.value(now, window)] if v is not None]
        metric, warming = fleet_metric(samples, now, self.policy.warmup_s)
        self.metric_value = metric
        if metric is not None and metric > self.policy.target:
            self.above_since = self.above_since or now
        else:
            self.above_since = None
        d = decide(self.policy, current, metric, now, self.last_scale_out, self.last_scale_in, warming)
        doc = {"time": now, **d.to_dict()}
        self.last_decision = doc
        if d.action == "scale_out":
            doc["crossed_at"] = self.above_since
            self.log_decision({k: v for k, v in doc.items() if k != "time"})
            self.last_scale_out = now
            self.desired = d.desired
            for _ in range(d.desired - current):
                self.spawn("scale_out", crossed_at=self.above_since)
        elif d.action == "scale_in":
            self.log_decision({k: v for k, v in doc.items() if k != "time"})
            self.last_scale_in = now
            self.desired = d.desired
            # Newest first: starting replicas cost nothing to stop; older ones are warmed up.
            victims = sorted(live, key=lambda r: (r.state != "starting", -r.started_at))[: current - d.desired]
            for r in victims:
                self.drain(r, now)

    # -- the loop --------------------------------------------------------------------------
    def tick(self) -> None:
        now = time.time()
        if self.haproxy is not None and self.haproxy.poll() is not None and not self.stopping:
            self.log_decision({"event": "haproxy_restart", "reason": f"haproxy exited ({self.haproxy.returncode}); restarting"})
            self.start_haproxy()
            for r in self.replicas:
                if r.in_lb:
                    self.api.add_server(r.name, r.port, r.weight, self.health)
                    if r.state == "draining":
                        self.api.set_state(r.name, "drain")
        try:
            self.lb_view = self.api.servers()
        except OSError:
            self.lb_view = {}
        for r in list(self.replicas):
            if r.proc.poll() is not None:
                self._reap(r, now)
        for name in list(self.pending_delete):
            try:
                if self.api.delete_server(name):
                    self.pending_delete.discard(name)
            except OSError:
                pass
        for r in self.replicas:
            if r.state == "starting":
                self._check_starting(r, now)
            elif r.state == "draining":
                self._check_draining(r, now)
            elif r.state == "ready" and not self.stopping:
                self.scrape(r, now)
        if self.stopping:
            return
        if self.policy is not None and self.phase == "up" and now - self.last_eval >= self.cfg.eval_interval_s:
            self.last_eval = now
            self.autoscale(now)
        elif self.policy is None:
            self.last_decision = {"time": now, "action": "hold", "current": len(self.live()), "desired": self.desired,
                                  "metric": None, "reason": "no autoscaling section in the spec: fixed at local.replicas.min"}
        for _ in range(self.desired - len(self.live()) if now >= self.hold_spawn_until else 0):
            self.spawn("replace" if self.phase == "up" else "min")
        if self.phase == "starting" and sum(r.state == "ready" for r in self.replicas) >= self.cfg.min:
            self.phase = "up"
            self.log_decision({"event": "up", "reason": f"{self.cfg.min} replica(s) ready behind haproxy"})

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stopping", True))
        self.start_haproxy()
        self.write_state()
        try:
            while not self.stopping:
                t0 = time.time()
                self.tick()
                self.write_state()
                time.sleep(max(0.0, self.cfg.tick_s - (time.time() - t0)))
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        """Drain every replica, then stop HAProxy: what `down` asks for with SIGTERM."""
        self.stopping = True
        self.phase = "stopping"
        now = time.time()
        for r in self.replicas:
            if r.state in ("starting", "ready"):
                self.drain(r, now)
        end = now + self.cfg.shutdown_s
        while self.replicas and time.time() < end:
            self.tick()
            for r in self.replicas:
                if r.state == "draining" and time.time() - r.drain_at > 0.5 and not r.signalled:
                    r.proc.terminate()
                    r.state, r.signalled = "stopping", True
            self.write_state()
            time.sleep(0.05)
        for r in self.replicas:
            r.proc.kill()
            r.proc.wait()
        self.replicas = []
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(5)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait()
        self.phase = "stopped"
        self.write_state()


def main(directory: str) -> int:
    d = Path(directory)
    cfg = FleetConfig.from_dict(json.loads((d / st.FLEET_CONFIG).read_text()))
    return FleetManager(cfg, d).run()
