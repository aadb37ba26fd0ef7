"""`status` for the local target: the fleet manager's view (fleet.json), HAProxy's live view of
each replica (its runtime API) and the autoscaler's last decisions, as a dict or as text."""

from __future__ import annotations

import time

from infra.targets.local.processes import manager_alive, stack_processes
from infra.targets.local.stack import load, stack_dir
from runtime.fleet import state as st
from runtime.fleet.haproxy import RuntimeAPI


def status(spec_path: str) -> dict:
    """The stack's state as a dict (what `status --json` prints)."""
    r = load(spec_path)
    directory = stack_dir(r.name)
    fleet = st.read_json(directory / st.FLEET_STATE)
    m = manager_alive(directory)
    if fleet is None or not m:
        left = stack_processes(directory)
        return {"stack": r.name, "up": False, "state_dir": str(directory),
                "leftover_processes": [{"what": p["what"], "pid": p["pid"]} for p in left]}
    lb_live = None
    try:
        lb_live = RuntimeAPI(directory / st.HAPROXY_SOCKET).servers()
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
