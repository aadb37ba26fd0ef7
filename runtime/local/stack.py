"""`up`, `down` and `status` for the local target: one stack on this machine.

`up` checks first and changes nothing when a check fails (already up, ports in use, HAProxy
missing, no serving section, training unavailable); then it partitions the example data,
trains with `local.ranks` ranks, renders HAProxy's config and starts the fleet manager
(runtime.local.fleet) in a session of its own. The manager starts HAProxy and the replicas;
`up` returns once `local.replicas.min` replicas are ready behind HAProxy.

`down` sends the manager SIGTERM (it drains the replicas and stops HAProxy), then signals
anything of this stack still alive by pid. A process counts as this stack's only if its
command line names the stack's state directory, so a reused pid is never signalled.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from runtime.errors import BadInput, OperationFailed
from runtime.local import state as st

WORKLOADS = ("logreg", "kmeans", "mlp")
DATA_ROWS = 20_000
DATA_FEATURES = 8


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load(spec_path: str):
    from infra.spec import load_stack

    r = load_stack(spec_path)
    if r.spec.serving is None:
        raise BadInput("serving: the local target needs a serving section (the replicas it runs behind HAProxy)")
    a = r.spec.serving.autoscaling
    if a is not None and a.metric == "gpu_utilization":
        from runtime.local.fleet import SUPPORTED_METRICS

        raise BadInput(f"serving.autoscaling.metric: gpu_utilization cannot be measured by the local target "
                       f"(got 'gpu_utilization'; allowed locally {sorted(SUPPORTED_METRICS)})")
    local = r.spec.local
    if local.replicas.min > local.replicas.max:
        raise BadInput(f"local.replicas: min <= max must hold (got min={local.replicas.min}, max={local.replicas.max})")
    return r


def ports(r) -> tuple[int, tuple[int, int]]:
    """(load balancer port, (first, last) replica port): replicas get 2 x max slots for replacements."""
    base = r.spec.local.base_port
    return base, (base + 1, base + 2 * r.spec.local.replicas.max)


def _owned(pid: int, directory: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return str(directory) in cmdline and st.start_time(pid) is not None


def stack_processes(directory: Path) -> list[dict]:
    """Every live process of this stack: manager, HAProxy, replicas (from fleet.json and pid files)."""
    recs = []
    m = st.read_json(directory / st.MANAGER_PID)
    if m:
        recs.append({**m, "what": "fleet manager"})
    fleet = st.read_json(directory / st.FLEET_STATE) or {}
    if fleet.get("haproxy", {}).get("pid"):
        recs.append({**fleet["haproxy"], "what": "haproxy"})
    for rep in fleet.get("replicas", []):
        recs.append({"pid": rep["pid"], "start": rep.get("start"), "what": f"replica {rep['name']}"})
    for f in sorted((directory / "replicas").glob("*.pid")) if (directory / "replicas").is_dir() else []:
        try:
            recs.append({"pid": int(f.read_text().strip()), "start": None, "what": f"replica {f.stem}"})
        except (OSError, ValueError):
            pass
    seen, out = set(), []
    for rec in recs:
        if rec["pid"] not in seen and st.alive(rec) and _owned(int(rec["pid"]), directory):
            seen.add(rec["pid"])
            out.append(rec)
    return out


def manager_alive(directory: Path) -> dict | None:
    m = st.read_json(directory / st.MANAGER_PID)
    return m if m and st.alive(m) and _owned(int(m["pid"]), directory) else None


# -- up ----------------------------------------------------------------------------------------
def preflight(r, directory: Path, model: str | None) -> None:
    """Every check `up` makes before it changes anything; raises with the user's fix."""
    from runtime.local.haproxy import HAPROXY_BIN
    import shutil

    name = r.name
    m = manager_alive(directory)
    if m:
        fleet = st.read_json(directory / st.FLEET_STATE) or {}
        raise OperationFailed(f"stack {name} is already up (fleet manager pid {m['pid']}, {fleet.get('url', '?')}); "
                              f"nothing changed. `gpufleet status` shows it, `gpufleet down` stops it")
    left = stack_processes(directory)
    if left:
        what = ", ".join(f"{p['what']} pid {p['pid']}" for p in left)
        raise OperationFailed(f"stack {name} has processes left from an earlier run ({what}); "
                              f"run `gpufleet down` first; nothing changed")
    lb_port, (lo, hi) = ports(r)
    busy = [p for p in [lb_port, *range(lo, hi + 1)] if not st.port_free(p)]
    if busy:
        raise OperationFailed(f"port(s) in use on 127.0.0.1: {', '.join(map(str, busy))} (the local target uses "
                              f"{lb_port} for the load balancer and {lo}-{hi} for replicas); stop what listens there "
                              f"or change local.base_port in the spec; nothing changed")
    if shutil.which(HAPROXY_BIN) is None:
        raise OperationFailed("haproxy is not installed: run `make setup` or `apt-get install -y haproxy`")
    if model is not None:
        if not (Path(model) / "model.json").is_file():
            raise BadInput(f"--model: not a model artifact directory (got {model!r}; expected a directory with model.json)")
    elif not training_available():
        raise OperationFailed("the training step needs runtime/train (python -m runtime.train), which is not "
                              "installed in this checkout; pass --model DIR to serve an existing artifact instead")


def training_available() -> bool:
    try:
        return importlib.util.find_spec("runtime.train.cli") is not None
    except ModuleNotFoundError:
        return False


def make_example_data(out: Path, seed: int = 0) -> Path:
    """A synthetic two-class CSV (an `id` key, DATA_FEATURES features, `label`)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(DATA_ROWS, DATA_FEATURES)).astype(np.float32)
    w = rng.normal(size=DATA_FEATURES)
    y = ((x @ w + 0.3 * rng.normal(size=DATA_ROWS)) > 0).astype(int)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        f.write("id," + ",".join(f"x{i}" for i in range(DATA_FEATURES)) + ",label\n")
        for i in range(DATA_ROWS):
            f.write(f"{i}," + ",".join(f"{v:.5f}" for v in x[i]) + f",{y[i]}\n")
    return out


def partition_and_train(r, directory: Path, workload: str, epochs: int | None, hidden: str | None) -> Path:
    import shutil

    from runtime.data.storage import write_partitioned

    data = directory / "data"
    if data.exists():
        shutil.rmtree(data)
    raw = make_example_data(data / "example.csv")
    t0 = time.monotonic()
    n = max(2, r.spec.local.ranks)  # runtime.train wants at least one partition per rank
    write_partitioned(str(raw), str(data / "partitioned"), "hash", ["id"], num_partitions=n)
    _say(f"partitioned {DATA_ROWS:,} rows by hash of id into {n} partitions in {time.monotonic() - t0:.1f}s: "
         f"{data / 'partitioned'}")
    model = directory / "model"
    if model.exists():
        shutil.rmtree(model)
    cmd = [sys.executable, "-m", "runtime.train", "--workload", workload, "--data", str(data / "partitioned"),
           "--label", "label", "--features", ",".join(f"x{i}" for i in range(DATA_FEATURES)),
           "--nproc", str(r.spec.local.ranks), "--out", str(model)]
    if epochs:
        cmd += ["--epochs", str(epochs)]
    if workload == "mlp" and hidden:
        cmd += ["--hidden", hidden]
    _say(f"training {workload} with {r.spec.local.ranks} rank(s): {' '.join(cmd[1:])}")
    t0 = time.monotonic()
    rc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1")).returncode
    if rc != 0:
        raise OperationFailed(f"training failed (exit {rc}); nothing is serving")
    if not (model / "model.json").is_file():
        raise OperationFailed(f"training wrote no model artifact at {model}")
    metrics = st.read_json(model / "metrics.json") or {}
    shown = {k: metrics[k] for k in ("world_size", "epochs", "final_loss", "accuracy") if k in metrics}
    _say(f"trained in {time.monotonic() - t0:.1f}s: {model} {json.dumps(shown)}")
    return model


def fleet_config(r, directory: Path, model: str, test_delay_ms: list[float] | None) -> dict:
    import infra

    s = r.spec.serving
    lb = s.load_balancer
    a = s.autoscaling
    lb_port, replica_ports = ports(r)
    return {
        "stack": r.name, "port": lb_port, "replica_ports": list(replica_ports),
        "algorithm": lb.algorithm,
        "health": {"path": lb.health_check.path, "interval_s": lb.health_check.interval_s,
                   "timeout_s": lb.health_check.timeout_s, "healthy_threshold": lb.health_check.healthy_threshold,
                   "unhealthy_threshold": lb.health_check.unhealthy_threshold},
        "pools": [{"name": p.name, "weight": p.weight} for p in r.pools],
        "min": r.spec.local.replicas.min, "max": r.spec.local.replicas.max,
        "autoscaling": None if a is None else {"metric": a.metric, "target": a.target,
                                               "scale_out_cooldown_s": a.scale_out_cooldown_s,
                                               "scale_in_cooldown_s": a.scale_in_cooldown_s, "warmup_s": a.warmup_s},
        "model": str(Path(model).resolve()),
        # HAProxy drains a replica before it gets SIGTERM, so no deregistration window is needed.
        "serve": {"max_batch_size": s.max_batch_size, "max_delay_ms": s.max_delay_ms,
                  "drain_timeout_s": s.drain_timeout_s, "deregistration_window_s": 0.0},
        "test_delay_ms": test_delay_ms or [0.0],
        "tick_s": 0.25, "eval_interval_s": 1.0, "metric_window_s": 3.0,
        "python": sys.executable, "project_root": str(infra.PROJECT_ROOT),
    }


def up(spec_path: str, model: str | None = None, workload: str = "mlp", epochs: int | None = None,
       hidden: str | None = "64,64", test_delay_ms: list[float] | None = None, timeout_s: float = 120.0) -> dict:
    from runtime.local.haproxy import HealthCheck, check_config, render_config

    r = load(spec_path)
    directory = st.stack_dir(r.name)
    preflight(r, directory, model)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (st.FLEET_STATE, st.DECISIONS, st.MANAGER_PID, "haproxy.sock"):
        (directory / stale).unlink(missing_ok=True)
    if model is None:
        model = str(partition_and_train(r, directory, workload, epochs, hidden))
    cfg = fleet_config(r, directory, model, test_delay_ms)
    (directory / "haproxy.cfg").write_text(render_config(
        stack=r.name, port=cfg["port"], socket_path=str(directory / "haproxy.sock"), algorithm=cfg["algorithm"],
        health=HealthCheck(**cfg["health"]), server_timeout_s=max(30, r.spec.serving.drain_timeout_s)))
    check_config(directory / "haproxy.cfg")
    st.write_json(directory / st.FLEET_CONFIG, cfg)
    log = open(directory / "manager.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "runtime.local", "manager", str(directory)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                            cwd=cfg["project_root"])
    log.close()
    st.write_json(directory / st.MANAGER_PID, st.record(proc.pid))
    _say(f"starting {cfg['min']} replica(s) behind haproxy ({cfg['algorithm']}) on 127.0.0.1:{cfg['port']} ...")
    t0 = time.monotonic()
    while True:
        fleet = st.read_json(directory / st.FLEET_STATE) or {}
        if fleet.get("phase") == "up":
            break
        if proc.poll() is not None or time.monotonic() - t0 > timeout_s:
            why = f"exited with code {proc.returncode}" if proc.poll() is not None else f"not up after {timeout_s:.0f} s"
            tail = (directory / "manager.log").read_text(errors="replace")[-2000:]
            down_directory(directory, quiet=True)
            raise OperationFailed(f"the fleet manager {why}; stopped what it started. manager.log ends:\n{tail}")
        time.sleep(0.1)
    _say(f"up in {time.monotonic() - t0:.1f}s")
    return fleet


# -- down --------------------------------------------------------------------------------------
def down_directory(directory: Path, quiet: bool = False, timeout_s: float = 60.0) -> list[dict]:
    """Stop every process of the stack in `directory`; returns what was running."""
    running = stack_processes(directory)
    m = manager_alive(directory)
    if m:
        st.signal_process(m, signal.SIGTERM)
        cfg = st.read_json(directory / st.FLEET_CONFIG) or {}
        grace = min(timeout_s, cfg.get("serve", {}).get("drain_timeout_s", 30) + 10)
        if st.wait_gone([m], grace):
            _say(f"fleet manager pid {m['pid']} did not stop within {grace:.0f} s; killing what is left")
    for rec in stack_processes(directory):
        st.signal_process(rec, signal.SIGKILL)
    left = st.wait_gone(stack_processes(directory), 5)
    if left:
        raise OperationFailed("could not stop: " + ", ".join(f"{p['what']} pid {p['pid']}" for p in left))
    for f in (st.MANAGER_PID, "haproxy.sock"):
        (directory / f).unlink(missing_ok=True)
    if (directory / "replicas").is_dir():
        for f in (directory / "replicas").glob("*.pid"):
            f.unlink(missing_ok=True)
    fleet = st.read_json(directory / st.FLEET_STATE)
    if fleet is not None and fleet.get("phase") != "stopped":
        fleet["phase"] = "stopped"
        st.write_json(directory / st.FLEET_STATE, fleet)
    return running


def down(spec_path: str) -> list[dict] | None:
    """Stop the stack; None (and nothing changed) when it is not up."""
    r = load(spec_path)
    directory = st.stack_dir(r.name)
    if not stack_processes(directory):
        return None
    return down_directory(directory)


# -- status ------------------------------------------------------------------------------------
def status(spec_path: str) -> dict:
    """The stack's state as a dict (what `status --json` prints)."""
    r = load(spec_path)
    directory = st.stack_dir(r.name)
    fleet = st.read_json(directory / st.FLEET_STATE)
    m = manager_alive(directory)
    if fleet is None or not m:
        left = stack_processes(directory)
        return {"stack": r.name, "up": False, "state_dir": str(directory),
                "leftover_processes": [{"what": p["what"], "pid": p["pid"]} for p in left]}
    lb_live = None
    try:
        from runtime.local.haproxy import RuntimeAPI

        lb_live = RuntimeAPI(directory / "haproxy.sock").servers()
    except OSError:
        pass
    replicas = []
    for rep in fleet.get("replicas", []):
        lb = (lb_live or {}).get(rep["name"]) or (rep.get("lb") if lb_live is None else {"status": "not registered"})
        replicas.append({"name": rep["name"], "pid": rep["pid"], "port": rep["port"], "pool": rep["pool"],
                         "weight": rep["weight"], "state": rep["state"], "warming": rep.get("warming", False),
                         "lb": lb, "metric": rep.get("metric"), "url": f"http://127.0.0.1:{rep['port']}",
                         "started_at": rep.get("started_at"), "ready_at": rep.get("ready_at")})
    decisions = [d for d in st.read_decisions(directory) if "action" in d]
    return {"stack": r.name, "up": True, "phase": fleet.get("phase"), "url": fleet.get("url"),
            "predict_url": f"{fleet.get('url')}/v1/predict", "state_dir": str(directory),
            "manager": {"pid": m["pid"]}, "haproxy": {"pid": fleet["haproxy"].get("pid"),
                                                      "algorithm": fleet["haproxy"].get("algorithm"),
                                                      "socket": fleet["haproxy"].get("socket")},
            "desired": fleet.get("desired"), "min": fleet.get("min"), "max": fleet.get("max"),
            "autoscaling": fleet.get("autoscaling"), "metric": fleet.get("metric"),
            "last_decision": fleet.get("last_decision"),
            "last_scaling_decision": decisions[-1] if decisions else None,
            "replicas": replicas, "updated_at": fleet.get("updated_at")}


def format_status(s: dict) -> str:
    if not s["up"]:
        extra = ""
        if s.get("leftover_processes"):
            extra = "; processes left from an earlier run: " + ", ".join(
                f"{p['what']} pid {p['pid']}" for p in s["leftover_processes"]) + " (`gpufleet down` stops them)"
        return f"stack {s['stack']} is not up{extra}"
    now = time.time()
    lines = [f"stack {s['stack']}: {s['phase']}  {s['url']}  (haproxy pid {s['haproxy']['pid']}, "
             f"{s['haproxy']['algorithm']}; fleet manager pid {s['manager']['pid']})"]
    metric = (s.get("metric") or {}).get("name", "metric")
    lines.append(f"{'REPLICA':8} {'PID':>7} {'PORT':>6} {'POOL':8} {'STATE':9} {'LOAD BALANCER':22} {metric[:17]:>17} {'AGE':>6}")
    for rep in s["replicas"]:
        lb = rep["lb"] or {}
        view = lb.get("status", "?") + (f" ({lb['check']})" if lb.get("check") else "")
        if lb.get("sessions"):
            view += f" {lb['sessions']} conn"
        state = rep["state"] + ("*" if rep.get("warming") else "")
        m = "-" if rep.get("metric") is None else f"{rep['metric']:.2f}"
        age = f"{now - rep['started_at']:.0f}s" if rep.get("started_at") else "-"
        lines.append(f"{rep['name']:8} {rep['pid']:>7} {rep['port']:>6} {rep['pool']:8} {state:9} {view[:22]:22} "
                     f"{m:>17} {age:>6}")
    if any(rep.get("warming") for rep in s["replicas"]):
        lines.append("(* warming up: left out of the scaling metric)")
    a = s.get("autoscaling")
    if a:
        v = (s.get("metric") or {}).get("value")
        lines.append(f"autoscaler: {a['metric']} target {a['target']:g}, now {'-' if v is None else f'{v:.2f}'}; "
                     f"desired {s['desired']} (min {s['min']}, max {s['max']}); cooldowns out {a['scale_out_cooldown_s']} s, "
                     f"in {a['scale_in_cooldown_s']} s; warm-up {a['warmup_s']} s")
    else:
        lines.append(f"autoscaler: off (no serving.autoscaling in the spec); {s['desired']} replica(s)")
    d = s.get("last_decision")
    if d:
        lines.append(f"last decision {time.strftime('%H:%M:%S', time.localtime(d['time']))}: {d['action']} - {d['reason']}")
    d = s.get("last_scaling_decision")
    if d:
        lines.append(f"last scaling action {time.strftime('%H:%M:%S', time.localtime(d['time']))}: {d['action']} - {d['reason']}")
    lines.append(f"try: curl -s -H 'content-type: application/json' -d '{{\"instances\": [[...]]}}' {s['predict_url']}")
    return "\n".join(lines)
