"""`up` and `down` for the local target, and the spec checks and FleetConfig they share.

`up` checks first and changes nothing when a check fails (already up, ports in use, HAProxy
missing, no serving section, training unavailable); then it partitions the example data,
trains with `local.ranks` ranks, renders HAProxy's config, writes the fleet's config and starts
the fleet manager (runtime.fleet) in a session of its own. The manager starts HAProxy and the
replicas; `up` returns once `local.replicas.min` replicas are ready behind HAProxy.

`down` sends the manager SIGTERM (it drains the replicas and stops HAProxy), then signals
anything of this stack still alive by pid (see processes.py).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from infra.targets.local.processes import manager_alive, stack_processes
from infra.targets.local.training import partition_and_train, training_available
from runtime.errors import BadInput, OperationFailed
from runtime.fleet import state as st
from runtime.fleet.config import Autoscaling, FleetConfig, HealthCheck, Pool, ServeSettings
from runtime.fleet.haproxy import HAPROXY_BIN, NOT_INSTALLED
from runtime.fleet.scrape import SUPPORTED_METRICS
from runtime.store import write_json

# fleet.json's last phase once `down` has stopped everything
STOPPED = "stopped"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load(spec_path: str):
    """The resolved stack, with the local target's own checks."""
    from infra.spec import load_stack

    r = load_stack(spec_path)
    if r.spec.serving is None:
        raise BadInput("serving: the local target needs a serving section (the replicas it runs behind HAProxy)")
    a = r.spec.serving.autoscaling
    if a is not None and a.metric not in SUPPORTED_METRICS:
        raise BadInput(f"serving.autoscaling.metric: {a.metric} cannot be measured by the local target "
                       f"(got {a.metric!r}; allowed locally {sorted(SUPPORTED_METRICS)})")
    local = r.spec.local
    if local.replicas.min > local.replicas.max:
        raise BadInput(f"local.replicas: min <= max must hold (got min={local.replicas.min}, max={local.replicas.max})")
    return r


def stack_dir(name: str) -> Path:
    """build/<name>/local/: the stack's state directory (runtime.fleet.state lists its files)."""
    import infra

    return infra.build_dir() / name / "local"


def ports(r) -> tuple[int, tuple[int, int]]:
    """(load balancer port, (first, last) replica port): replicas get 2 x max slots for replacements."""
    base = r.spec.local.base_port
    return base, (base + 1, base + 2 * r.spec.local.replicas.max)


def fleet_config(r, model: str, test_delay_ms: list[float] | None) -> FleetConfig:
    """What the fleet manager runs for the resolved stack `r`, serving the artifact at `model`."""
    import infra

    s = r.spec.serving
    hc = s.load_balancer.health_check
    a = s.autoscaling
    lb_port, replica_ports = ports(r)
    return FleetConfig(
        stack=r.name, port=lb_port, replica_ports=replica_ports, model=str(Path(model).resolve()),
        algorithm=s.load_balancer.algorithm,
        health=HealthCheck(path=hc.path, interval_s=hc.interval_s, timeout_s=hc.timeout_s,
                           healthy_threshold=hc.healthy_threshold, unhealthy_threshold=hc.unhealthy_threshold),
        pools=tuple(Pool(p.name, p.weight) for p in r.pools),
        min=r.spec.local.replicas.min, max=r.spec.local.replicas.max,
        autoscaling=None if a is None else Autoscaling(
            metric=a.metric, target=a.target, scale_out_cooldown_s=a.scale_out_cooldown_s,
            scale_in_cooldown_s=a.scale_in_cooldown_s, warmup_s=a.warmup_s),
        serve=ServeSettings(max_batch_size=s.max_batch_size, max_delay_ms=s.max_delay_ms,
                            drain_timeout_s=s.drain_timeout_s),
        test_delay_ms=tuple(test_delay_ms or (0.0,)),
        python=sys.executable, project_root=str(infra.PROJECT_ROOT),
    )


# -- up ----------------------------------------------------------------------------------------
def preflight(r, directory: Path, model: str | None) -> None:
    """Every check `up` makes before it changes anything; raises with the user's fix."""
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
        raise OperationFailed(NOT_INSTALLED)
    if model is not None:
        if not (Path(model) / "model.json").is_file():
            raise BadInput(f"--model: not a model artifact directory (got {model!r}; expected a directory with model.json)")
    elif not training_available():
        raise OperationFailed("the training step needs runtime/train (python -m runtime.train), which is not "
                              "installed in this checkout; pass --model DIR to serve an existing artifact instead")


def up(spec_path: str, model: str | None = None, workload: str = "mlp", epochs: int | None = None,
       hidden: str | None = "64,64", test_delay_ms: list[float] | None = None, timeout_s: float = 120.0) -> dict:
    from runtime.fleet.haproxy import check_config
    from infra.targets.local.haproxy import render_config

    r = load(spec_path)
    directory = stack_dir(r.name)
    preflight(r, directory, model)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (st.FLEET_STATE, st.DECISIONS, st.MANAGER_PID, st.HAPROXY_SOCKET):
        (directory / stale).unlink(missing_ok=True)
    if model is None:
        model = str(partition_and_train(r, directory, workload, epochs, hidden))
    cfg = fleet_config(r, model, test_delay_ms)
    (directory / st.HAPROXY_CONFIG).write_text(render_config(
        stack=r.name, port=cfg.port, socket_path=str(directory / st.HAPROXY_SOCKET), algorithm=cfg.algorithm,
        health=cfg.health, server_timeout_s=cfg.server_timeout_s))
    check_config(directory / st.HAPROXY_CONFIG)
    write_json(directory / st.FLEET_CONFIG, cfg.to_dict(), indent=1)
    log = open(directory / "manager.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "runtime.fleet", str(directory)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                            cwd=cfg.project_root)
    log.close()
    write_json(directory / st.MANAGER_PID, st.record(proc.pid), indent=1)
    _say(f"starting {cfg.min} replica(s) behind haproxy ({cfg.algorithm}) on 127.0.0.1:{cfg.port} ...")
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
def _stop_grace_s(directory: Path) -> float:
    """How long the manager may take to drain and stop (its FleetConfig's); a default fleet's without one."""
    try:
        return FleetConfig.from_dict(st.read_json(directory / st.FLEET_CONFIG)).stop_grace_s
    except (TypeError, KeyError, ValueError):  # no config, or one this version cannot read
        return FleetConfig(stack="", port=0, replica_ports=(0, 0), model="").stop_grace_s


def down_directory(directory: Path, quiet: bool = False, timeout_s: float = 60.0) -> list[dict]:
    """Stop every process of the stack in `directory`; returns what was running."""
    running = stack_processes(directory)
    m = manager_alive(directory)
    if m:
        st.signal_process(m, signal.SIGTERM)
        grace = min(timeout_s, _stop_grace_s(directory))
        if st.wait_gone([m], grace):
            _say(f"fleet manager pid {m['pid']} did not stop within {grace:.0f} s; killing what is left")
    for rec in stack_processes(directory):
        st.signal_process(rec, signal.SIGKILL)
    left = st.wait_gone(stack_processes(directory), 5)
    if left:
        raise OperationFailed("could not stop: " + ", ".join(f"{p['what']} pid {p['pid']}" for p in left))
    for f in (st.MANAGER_PID, st.HAPROXY_SOCKET):
        (directory / f).unlink(missing_ok=True)
    if (directory / "replicas").is_dir():
        for f in (directory / "replicas").glob("*.pid"):
            f.unlink(missing_ok=True)
    fleet = st.read_json(directory / st.FLEET_STATE)
    if fleet is not None and fleet.get("phase") != STOPPED:
        fleet["phase"] = STOPPED
        write_json(directory / st.FLEET_STATE, fleet, indent=1)
    return running


def down(spec_path: str) -> list[dict] | None:
    """Stop the stack; None (and nothing changed) when it is not up."""
    r = load(spec_path)
    directory = stack_dir(r.name)
    if not stack_processes(directory):
        return None
    return down_directory(directory)
