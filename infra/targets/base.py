"""The interface every target implements, and what the Terraform targets share.

A `Target` has a `name` (from infra.target_names), a one-line `summary` for `--target`'s help,
and the set of CLI `verbs` it answers; the CLI offers `--target NAME` on a command only where
the target lists the verb, and calls the method of the same name.

- Targets that deploy a rendered root (`emulator`, `aws`, `gcp`; then `kubernetes` with
  manifests): `render`, and `prepare` (render plus what the engine needs: the emulator, its
  state check, credentials, a provider mirror) followed by `plan`, `apply` (of a saved plan,
  or planning as it goes), `refresh`, `drift`, `destroy`, `outputs` on the result. They
  also answer `state` (the remote state's bucket and lock: infra/commands/state.py, through
  `prepare` and, for the emulator, `connect`).
  `real_cloud` ones make `apply` and `destroy` ask for confirmation.
- Targets that run the stack on this machine (`local`): `up`, `down`, `status`, `demo`.

`load(spec_path)` reads the spec with whatever checks the target adds to the spec's own.
Nothing heavy is imported until a verb runs, so building the CLI stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

STATE_FILE = "terraform.tfstate"
PLAN_FILE = "plan.json"  # `terraform show -json` of the last plan, in the root
SAVED_PLAN = "tfplan"  # the last plan itself, in the root, unless `plan --out FILE` names another
DRIFT_PLAN = "drift.tfplan"  # a refresh-only plan, removed once read
RENDER_VERBS = frozenset({"render", "plan", "apply", "destroy", "outputs", "drift", "state"})
LOCAL_VERBS = frozenset({"up", "down", "status", "demo"})


class Target:
    """The interface; a target implements the methods of the verbs it lists (the CLI calls no other)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    verbs: ClassVar[frozenset[str]] = frozenset()
    real_cloud: ClassVar[bool] = False

    def load(self, spec_path: str):
        """The resolved stack of the spec at `spec_path` (BadInput naming every problem)."""
        from infra.spec import load_stack

        return load_stack(spec_path)

    def _missing(self, verb: str):
        return NotImplementedError(f"target {self.name} does not implement {verb} (its verbs: {sorted(self.verbs)})")

    # -- a rendered root: render, then prepare and plan | apply | destroy | outputs
    def render(self, stack, out_dir: Path | None = None) -> Path:
        raise self._missing("render")

    def prepare(self, stack, out_dir: Path | None = None, *, offline: bool = False, recreate: bool = False,
                start_emulator: bool = True, cli_config: Path | None = None,
                endpoint: str | None = None) -> tuple["Prepared", bool]:
        raise self._missing("prepare")

    def plan(self, prepared: "Prepared", out: Path | None = None, progress: Callable[[dict], None] | None = None):
        raise self._missing("plan")

    def apply(self, prepared: "Prepared", progress: Callable[[dict], None] | None = None,
              plan_file: Path | None = None) -> None:
        raise self._missing("apply")

    def refresh(self, prepared: "Prepared", progress: Callable[[dict], None] | None = None) -> None:
        raise self._missing("refresh")

    def drift(self, prepared: "Prepared", progress: Callable[[dict], None] | None = None) -> dict:
        raise self._missing("drift")

    def destroy(self, prepared: "Prepared", progress: Callable[[dict], None] | None = None) -> None:
        raise self._missing("destroy")

    def outputs(self, prepared: "Prepared") -> dict:
        raise self._missing("outputs")

    # -- on this machine: up, down, status (and its text), demo
    def up(self, spec_path: str, **options) -> dict:
        raise self._missing("up")

    def down(self, spec_path: str) -> list[dict] | None:
        raise self._missing("down")

    def status(self, spec_path: str) -> dict:
        raise self._missing("status")

    def format_status(self, status: dict) -> str:
        raise self._missing("status")

    def demo(self, spec_path: str, **options) -> int:
        raise self._missing("demo")


@dataclass
class Prepared:
    """A rendered root and the Terraform that runs it, ready for plan, apply, destroy or outputs."""

    stack: Any  # infra.spec.resolve.ResolvedStack
    target: str
    workdir: Path
    terraform: Any  # infra.terraform.runner.Terraform
    emulator: Any = None  # infra.emulator.EmulatorInfo or targets.emulator.Endpoint, for the emulator target

    def has_state(self) -> bool:
        """Whether there may be something to destroy: a local state file, or any remote backend
        (its state is not read here; Terraform finds out)."""
        return self.stack.backend is not None or (self.workdir / STATE_FILE).is_file()

    @property
    def emulator_run(self) -> str | None:
        """Which emulator run this root talks to (None on a real cloud): saved plans record it."""
        return self.emulator.run_id if self.emulator is not None else None


class TerraformTarget(Target):
    """A target whose stack is a Terraform root rendered by infra.render (an AWS or a GCP root).

    `clouds`: the spec clouds it deploys (a spec for another cloud is refused when loaded).
    `plans_offline`: whether `plan --offline` still runs Terraform's plan (with a bundled
    provider); a target without one checks the rendered root offline instead (`check_offline`).
    """

    verbs = RENDER_VERBS
    clouds: ClassVar[tuple[str, ...]] = ("aws",)
    plans_offline: ClassVar[bool] = True

    def load(self, spec_path: str):
        """The resolved stack, refused (BadInput naming --target) when it is for a cloud this target does not deploy."""
        from runtime.errors import BadInput

        stack = super().load(spec_path)
        if stack.spec.cloud not in self.clouds:
            from infra.targets import names_for_cloud

            others = ", ".join(names_for_cloud(stack.spec.cloud)) or "none yet"
            raise BadInput(f"--target: the {self.name} target deploys {'/'.join(self.clouds)} stacks (got cloud "
                           f"{stack.spec.cloud!r} in {spec_path}; targets for it: {others})")
        return stack

    def check_offline(self, stack, out_dir: Path | None = None, progress: Callable[[str], None] | None = None,
                      provider_mirror: Path | None = None) -> list:
        """`plan --offline` where no offline provider exists: render, then check the root (results, each
        passed, failed or skipped with why)."""
        raise self._missing("check_offline")

    def render(self, stack, out_dir: Path | None = None) -> Path:
        from infra.render import render

        return render(stack, out_dir, target=self.name)

    @property
    def provider_constraint(self) -> str | None:
        """The AWS provider versions this target's rendered root accepts (a provider mirror must hold one)."""
        from infra.render.providers import AWS_PROVIDERS

        provider = AWS_PROVIDERS.get(self.name)
        return provider.constraint if provider else None

    def mirror_cli_config(self, provider_mirror: Path | str, flag: str = "--provider-mirror") -> Path:
        """The Terraform CLI config that installs providers from a user's mirror, for `prepare`.

        BadInput (naming `flag`) unless the mirror holds an AWS provider this target's root accepts.
        """
        from infra.terraform.mirror import user_mirror_cli_config

        return user_mirror_cli_config(provider_mirror, self.provider_constraint, flag=flag, who=f"the {self.name} target")

    def prepare(self, stack, out_dir: Path | None = None, *, offline: bool = False, recreate: bool = False,
                start_emulator: bool = True, cli_config: Path | None = None,
                endpoint: str | None = None) -> tuple[Prepared, bool]:
        """Render the stack and return a Terraform for it; (prepared, emulator_started_now).

        `cli_config`: Terraform's CLI config for a user's provider mirror (`mirror_cli_config`).
        """
        from infra.terraform.runner import Terraform
        from runtime.errors import BadInput

        if endpoint is not None:
            raise BadInput(f"--endpoint: only the emulator target talks to an AWS-compatible endpoint (got --target {self.name})")
        workdir = self.render(stack, out_dir)
        return Prepared(stack, self.name, workdir, Terraform(workdir, offline=offline, cli_config=cli_config)), False

    def plan(self, prepared: Prepared, out: Path | None = None, progress: Callable[[dict], None] | None = None):
        """Plan into `out` (default <root>/tfplan), write `show -json` of it to <root>/plan.json;
        returns the runner's PlanResult (the plan, and whether Terraform found changes)."""
        from runtime.store import write_json

        result = prepared.terraform.saved_plan(out or SAVED_PLAN, progress=progress)
        write_json(prepared.workdir / PLAN_FILE, result.plan, indent=1)
        return result

    def apply(self, prepared: Prepared, progress: Callable[[dict], None] | None = None,
              plan_file: Path | None = None) -> None:
        """Apply `plan_file` exactly (runner.StalePlan if the state moved on), or plan and apply."""
        prepared.terraform.apply(progress=progress, planfile=str(plan_file) if plan_file else None)

    def refresh(self, prepared: Prepared, progress: Callable[[dict], None] | None = None) -> None:
        """Record what the cloud reports as the state: the baseline `drift` compares with."""
        prepared.terraform.refresh(progress=progress)

    def drift(self, prepared: Prepared, progress: Callable[[dict], None] | None = None) -> dict:
        """A refresh-only plan (writes no state) as `show -json`; infra.terraform.drift reads it."""
        path = prepared.workdir / DRIFT_PLAN
        try:
            return prepared.terraform.saved_plan(path, refresh_only=True, progress=progress).plan
        finally:
            path.unlink(missing_ok=True)

    def destroy(self, prepared: Prepared, progress: Callable[[dict], None] | None = None) -> None:
        prepared.terraform.destroy(progress=progress)

    def outputs(self, prepared: Prepared) -> dict:
        return prepared.terraform.output()
