"""The live processes of a local stack, from the records in its state directory.

A process counts as this stack's only if its command line names the stack's state directory
(and its start time matches the record), so a reused pid is never signalled.
"""

from __future__ import annotations

from pathlib import Path

from runtime.fleet import state as st


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
    """The fleet manager's process record while it runs, else None."""
    m = st.read_json(directory / st.MANAGER_PID)
    return m if m and st.alive(m) and _owned(int(m["pid"]), directory) else None
