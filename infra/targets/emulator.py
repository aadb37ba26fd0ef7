"""The `emulator` target (the default): Terraform run for real against an AWS-compatible endpoint.

By default that is the bundled moto server: `prepare` starts it on 127.0.0.1 when needed. With
`endpoint` (`--endpoint URL`, `$GPUFLEET_EMULATOR_ENDPOINT`) it is a server the user runs (a
LocalStack, another moto), which gpufleet neither starts nor stops; it must answer HTTP there.
Either way a provider override points the rendered root at it.

Emulators keep resources in memory, so a stack's state is tied to the emulator run that
created it: the run id (for a user's endpoint, its URL) is recorded next to the state after
an apply, and a state from another run is refused (`check_state`) unless the user discards it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from infra.target_names import EMULATOR
from infra.targets.base import STATE_FILE, Prepared, TerraformTarget
from runtime.errors import BadInput, OperationFailed

RUN_RECORD = ".gpufleet-emulator-run"
# The emulator accepts any credentials; none from the user's environment may leak in.
EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_PROFILE": None,
    "AWS_SESSION_TOKEN": None,
}


_ENDPOINT_RUN = "endpoint "


class StaleState(OperationFailed):
    """The local state describes an emulator run that is gone."""


@dataclass(frozen=True)
class Endpoint:
    """An AWS-compatible endpoint the user runs; its run id is its URL (nothing tells its restarts apart)."""

    endpoint: str

    @property
    def run_id(self) -> str:
        return _ENDPOINT_RUN + self.endpoint


def _describe(run: str | None) -> str:
    if run and run.startswith(_ENDPOINT_RUN):
        return f"the endpoint {run[len(_ENDPOINT_RUN):]}"
    return f"emulator run {run or 'unknown'}"


def check_endpoint(url: str, timeout_s: float = 5.0) -> Endpoint:
    """A user's endpoint: BadInput unless an http(s) URL of a host (and port); OperationFailed
    unless something answers HTTP there (any status: an emulator answers 404 at its root)."""
    parsed = urllib.parse.urlsplit(url)
    try:
        port_ok = parsed.port is None or 0 < parsed.port < 65536
    except ValueError:
        port_ok = False
    if parsed.scheme not in ("http", "https") or not parsed.hostname or not port_ok \
            or parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise BadInput(f"--endpoint: not an http(s) URL of an AWS-compatible endpoint (got {url!r}; "
                       "e.g. http://127.0.0.1:4566)")
    base = f"{parsed.scheme}://{parsed.netloc}"
    try:
        urllib.request.urlopen(base + "/", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        pass  # it answered
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OperationFailed(f"--endpoint: nothing answers at {base} ({reason}); start the emulator there first") from None
    return Endpoint(base)


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
            f"{workdir / STATE_FILE} was written against {_describe(recorded)}, "
            f"but this run talks to {_describe(run_id)}: an emulator keeps resources in memory, "
            "so that state describes resources that do not exist there.\n"
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
                start_emulator: bool = True, cli_config: Path | None = None,
                endpoint: str | None = None) -> tuple[Prepared, bool]:
        """Check the endpoint, render, make sure the bundled emulator runs
        (starting it unless told not to) or the user's endpoint answers, check the state against
        that run, point the root at it. `offline` is always on: the bundled provider, or `cli_config`'s mirror."""
        from infra.render.providers import AWS_PROVIDERS
        from infra.render.render import EMULATOR_OVERRIDE, render_emulator_override
        from infra.terraform.runner import Terraform

        external = check_endpoint(endpoint) if endpoint is not None else None
        workdir = self.render(stack, out_dir)
        info, started = (external, False) if external else self.connect(start=start_emulator)
        check_state(workdir, info.run_id, recreate=recreate)
        # the provider, and an S3 state backend if the stack has one, point at the emulator
        override = render_emulator_override(info.endpoint, AWS_PROVIDERS[self.name].major, stack.backend).encode()
        path = workdir / EMULATOR_OVERRIDE
        if not path.is_file() or path.read_bytes() != override:
            path.write_bytes(override)
        tf = Terraform(workdir, offline=True, extra_env=dict(EMULATOR_ENV), cli_config=cli_config,
                       reconfigure=stack.backend is not None)
        return Prepared(stack, self.name, workdir, tf, info), started

    def connect(self, endpoint: str | None = None, start: bool = True):
        """The endpoint this target talks to: the user's (checked to answer), else the bundled
        emulator, started unless `start` is False; (its info, whether it was started now)."""
        from infra import emulator

        if endpoint is not None:
            return check_endpoint(endpoint), False
        info = emulator.status()
        if info is not None:
            return info, False
        if not start:
            raise OperationFailed("the emulator is not running: `gpufleet emulator start`")
        return emulator.start()

    def apply(self, prepared: Prepared, progress=None, plan_file: Path | None = None) -> None:
        try:
            super().apply(prepared, progress, plan_file)
        finally:
            record_run(prepared)  # even a partial apply created resources in this run

    def destroy(self, prepared: Prepared, progress=None) -> None:
        super().destroy(prepared, progress)
        (prepared.workdir / RUN_RECORD).unlink(missing_ok=True)
