"""Where a stack is deployed: preparing a rendered root and a Terraform for each target.

`emulator` (the default) starts the local moto server when needed and writes a provider
override that points at it; `aws` uses real AWS with the usual credential chain. A stack's
state under the emulator is tied to the emulator run that created it (see `check_state`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from infra import emulator
from infra.render.render import EMULATOR_OVERRIDE, PROVIDER_MAJOR, render, render_emulator_override
from infra.spec.resolve import ResolvedStack
from infra.terraform.runner import Terraform
from runtime.errors import OperationFailed

TARGETS = ("emulator", "aws")
RUN_RECORD = ".gpufleet-emulator-run"
STATE_FILE = "terraform.tfstate"


class StaleState(OperationFailed):
    """The local state describes an emulator run that is gone."""


@dataclass
class Prepared:
    stack: ResolvedStack
    target: str
    workdir: Path
    terraform: Terraform
    emulator: emulator.EmulatorInfo | None = None


def _state_resources(workdir: Path) -> int:
    path = workdir / STATE_FILE
    if not path.is_file():
        return 0
    try:
        return len(json.loads(path.read_text()).get("resources", []))
    except ValueError:
        return 0


def check_state(workdir: Path, run_id: str, recreate: bool = False) -> None:
    """Refuse to use a state written against another emulator run, unless told to discard it.

    moto keeps resources in memory: after a restart the state's ids point at nothing, and
    Terraform would fail with obscure "not found" errors on refresh.
    """
    record = workdir / RUN_RECORD
    recorded = record.read_text().strip() if record.is_file() else None
    if _state_resources(workdir) == 0 or recorded == run_id:
        return
    if not recreate:
        raise StaleState(
            f"{workdir / STATE_FILE} was written against emulator run {recorded or 'unknown'}, "
            f"but the emulator now running is run {run_id}: the emulator keeps resources in memory, "
            "so that state describes resources that no longer exist.\n"
            "  To create the stack again:  gpufleet apply SPEC --recreate\n"
            "  To forget the old state:    gpufleet destroy SPEC --forget"
        )
    stale = workdir / f"{STATE_FILE}.stale-{int(time.time())}"
    (workdir / STATE_FILE).replace(stale)
    (workdir / f"{STATE_FILE}.backup").unlink(missing_ok=True)
    record.unlink(missing_ok=True)


def record_run(prepared: Prepared) -> None:
    if prepared.emulator is not None:
        (prepared.workdir / RUN_RECORD).write_text(prepared.emulator.run_id + "\n")


def prepare(
    stack: ResolvedStack,
    target: str = "emulator",
    out_dir: Path | None = None,
    offline: bool = False,
    recreate: bool = False,
    start_emulator: bool = True,
) -> tuple[Prepared, bool]:
    """Render the stack for `target` and return a Terraform for it; (prepared, emulator_started_now)."""
    workdir = render(stack, out_dir, target=target)
    if target == "aws":
        return Prepared(stack, target, workdir, Terraform(workdir, offline=offline)), False
    info, started = emulator.status(), False
    if info is None:
        if not start_emulator:
            raise OperationFailed("the emulator is not running: `gpufleet emulator start`")
        info, started = emulator.start()
    check_state(workdir, info.run_id, recreate=recreate)
    override = render_emulator_override(info.endpoint, PROVIDER_MAJOR[target]).encode()
    path = workdir / EMULATOR_OVERRIDE
    if not path.is_file() or path.read_bytes() != override:
        path.write_bytes(override)
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PROFILE": None,
        "AWS_SESSION_TOKEN": None,
    }
    tf = Terraform(workdir, offline=True, extra_env=env)
    return Prepared(stack, target, workdir, tf, info), started
