"""Saved plans: which stack a plan file belongs to, checked before Terraform applies it.

`gpufleet plan --out FILE` writes FILE (Terraform's own plan) and FILE.gpufleet.json beside it,
the *record*: the stack's name, target and root, the emulator run it was planned against, and
a fingerprint of the rendered configuration. `gpufleet apply --plan FILE` checks the record
against the stack it was asked to apply:

- before anything runs (`check_for_stack`): the file exists, and was made for this stack, target
  and root (BadInput naming both otherwise). A plan file without a record (made by plain
  `terraform plan`) is identified by the stack name in its configuration snapshot
  (`tfconfig/m-/main.tf`, where gpufleet's root declares `stack = "NAME"`).
- after rendering, before Terraform (`check_current`): the spec still renders to the planned
  configuration, and the emulator is the run the plan was made against. A saved plan carries
  its own copy of the configuration, so Terraform would otherwise apply the old spec quietly.

Terraform itself refuses a plan whose state moved on ("Saved plan is stale": runner.StalePlan).
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

from runtime.errors import BadInput
from runtime.store import write_json

RECORD_SUFFIX = ".gpufleet.json"
FORMAT = 1
# What a saved plan's values come from: the root's configuration and variables, the files that
# templates read at plan time (user_data, the runtime config). The bundle is built reproducibly
# from the code, and changes with it only.
_FINGERPRINTED = ("*.tf", "*.tfvars.json", "user_data/*", "runtime/*")


def record_path(plan_file: Path) -> Path:
    return plan_file.with_name(plan_file.name + RECORD_SUFFIX)


def config_fingerprint(root: Path) -> str:
    """sha256 over the rendered configuration files of `root` (names and bytes, sorted)."""
    h = hashlib.sha256()
    for path in sorted({p for pattern in _FINGERPRINTED for p in root.glob(pattern) if p.is_file()}):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def write_record(plan_file: Path, *, stack: str, target: str, root: Path, changes: bool,
                 emulator_run: str | None = None) -> Path:
    """Write the record beside `plan_file`; returns its path."""
    record = {
        "format": FORMAT,
        "stack": stack,
        "target": target,
        "root": str(root.resolve()),
        "emulator_run": emulator_run,
        "config_sha256": config_fingerprint(root),
        "changes": changes,
    }
    path = record_path(plan_file)
    write_json(path, record, indent=1)
    return path


def _stack_in_plan(plan_file: Path) -> str | None:
    """The stack name in a plan file's configuration snapshot, if gpufleet rendered it."""
    try:
        with zipfile.ZipFile(plan_file) as z:
            main = z.read("tfconfig/m-/main.tf").decode("utf-8", "replace")
    except (zipfile.BadZipFile, KeyError, OSError):
        return None
    m = re.search(r'^\s*stack\s*=\s*"([^"]*)"', main, re.MULTILINE)
    return m[1] if m else None


def check_for_stack(plan_file: Path, *, stack: str, target: str, root: Path) -> dict:
    """The record of `plan_file` if it was made for this stack, target and root; else BadInput.

    Runs no Terraform and writes nothing. A plan without a record yields {"stack": NAME}.
    """
    shown = str(plan_file)
    if not plan_file.is_file():
        raise BadInput(f"--plan: no such plan file (got {shown!r}; make one with `gpufleet plan SPEC --out FILE`)")
    if not zipfile.is_zipfile(plan_file):
        raise BadInput(f"--plan: not a Terraform plan file (got {shown!r})")
    rec_path = record_path(plan_file)
    if rec_path.is_file():
        try:
            record = json.loads(rec_path.read_text())
        except ValueError:
            raise BadInput(f"--plan: its record {str(rec_path)!r} is not JSON; plan again") from None
    else:
        found = _stack_in_plan(plan_file)
        if found is None:
            raise BadInput(
                f"--plan: cannot tell which stack {shown!r} belongs to: it has no {RECORD_SUFFIX} record beside it "
                "and was not rendered by gpufleet; plan it with `gpufleet plan SPEC --out FILE`"
            )
        record = {"stack": found}
    planned = record.get("stack")
    if planned != stack:
        where = f" (root {record['root']})" if record.get("root") else ""
        raise BadInput(
            f"--plan: {shown!r} is a plan of stack {planned!r}{where}, not of stack {stack!r} (root {root.resolve()}): "
            f"apply it with that stack's spec, or plan this one with `gpufleet plan SPEC --out FILE`"
        )
    if record.get("target") not in (None, target):
        raise BadInput(f"--plan: {shown!r} was planned for target {record['target']!r}, not {target!r}")
    if record.get("root") not in (None, str(root.resolve())):
        raise BadInput(
            f"--plan: {shown!r} is a plan of stack {stack!r} rendered in {record['root']}, not in {root.resolve()} "
            "(a root holds its own state): pass `--root` for that directory, or plan this one"
        )
    return record


def check_current(plan_file: Path, record: dict, *, root: Path, emulator_run: str | None) -> None:
    """BadInput if the stack was re-rendered differently, or the emulator restarted, since the plan."""
    shown = str(plan_file)
    planned_run = record.get("emulator_run")
    if planned_run and emulator_run and planned_run != emulator_run:
        raise BadInput(
            f"--plan: {shown!r} was planned against emulator run {planned_run}, which is gone (now: {emulator_run}); "
            "plan again"
        )
    fingerprint = record.get("config_sha256")
    if fingerprint and fingerprint != config_fingerprint(root):
        raise BadInput(
            f"--plan: the stack's configuration changed since {shown!r} was planned (the spec, or gpufleet itself): "
            "the saved plan would apply the old one. Plan again and apply the new plan"
        )
