"""The `emulator` target (the default): Terraform run for real against the local AWS emulator.

`prepare` starts the moto server on 127.0.0.1 when needed and writes a provider override that
points the rendered root at it. moto keeps resources in memory, so a stack's state is tied to
the emulator run that created it: the run id is recorded next to the state after an apply,
and a state from another run is refused (`check_state`) unless the user discards it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from infra.target_names import EMULATOR
from infra.targets.base import STATE_FILE, Prepared, TerraformTarget
from runtime.errors import OperationFailed

RUN_RECORD = ".gpufleet-emulator-run"
# The emulator accepts any credentials; none from the user's environment may leak in.
EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_PROFILE": None,
    "AWS_SESSION_TOKEN": None,
}


class StaleState(OperationFailed):
    """The local state describes an emulator run that is gone."""


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


class EmulatorTarget(TerraformTarget):
    name = EMULATOR
    summary = "a local moto server"

    def prepare(self, stack, out_dir: Path | None = None, *, offline: bool = False, recreate: bool = False,
                start_emulator: bool = True) -> tuple[Prepared, bool]:
        """Render, make sure the emulator runs (starting it unless told not to), check the state
        against its run, point the root at it; `offline` is always on (the bundled provider)."""
        from infra import emulator
        from infra.render.render import AWS_PROVIDERS, EMULATOR_OVERRIDE, render_emulator_override
        from infra.terraform.runner import Terraform

        workdir = self.render(stack, out_dir)
        info, started = emulator.status(), False
        if info is None:
            if not start_emulator:
                raise OperationFailed("the emulator is not running: `gpufleet emulator start`")
            info, started = emulator.start()
        check_state(workdir, info.run_id, recreate=recreate)
        # the provider, and an S3 state backend if the stack has one, point at the emulator
        override = render_emulator_override(info.endpoint, AWS_PROVIDERS[self.name].major, stack.backend).encode()
        path = workdir / EMULATOR_OVERRIDE
        if not path.is_file() or path.read_bytes() != override:
            path.write_bytes(override)
        tf = Terraform(workdir, offline=True, extra_env=dict(EMULATOR_ENV), reconfigure=stack.backend is not None)
        return Prepared(stack, self.name, workdir, tf, info), started

    def apply(self, prepared: Prepared, progress=None) -> None:
        try:
            super().apply(prepared, progress)
        finally:
            record_run(prepared)  # even a partial apply created resources in this run

    def destroy(self, prepared: Prepared, progress=None) -> None:
        super().destroy(prepared, progress)
        (prepared.workdir / RUN_RECORD).unlink(missing_ok=True)
