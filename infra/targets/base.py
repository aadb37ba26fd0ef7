"""The interface every target implements, and what the Terraform targets share.

A `Target` has a `name` (from infra.target_names), a one-line `summary` for `--target`'s help,
and the set of CLI `verbs` it answers; the CLI offers `--target NAME` on a command only where
the target lists the verb, and calls the method of the same name.

- Targets that deploy a rendered root (`emulator`, `aws`; then `gcp`; `kubernetes` with
  manifests): `render`, and `prepare` (render plus what the engine needs: the emulator, its
  state check, credentials) followed by `plan`, `apply`, `destroy`, `outputs` on the result.
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
PLAN_FILE = "plan.json"
RENDER_VERBS = frozenset({"render", "plan", "apply", "destroy", "outputs"})
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
                start_emulator: bool = True) -> tuple["Prepared", bool]:
        raise self._missing("prepare")

    def plan(self, prepared: "Prepared") -> dict:
        raise self._missing("plan")

    def apply(self, prepared: "Prepared", progress: Callable[[dict], None] | None = None) -> None:
        raise self._missing("apply")

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
    emulator: Any = None  # infra.emulator.EmulatorInfo, for the emulator target

    def has_state(self) -> bool:
        """Whether there may be something to destroy: a local state file, or any remote backend
        (its state is not read here; Terraform finds out)."""
        return self.stack.backend is not None or (self.workdir / STATE_FILE).is_file()


class TerraformTarget(Target):
    """A target whose stack is a Terraform root rendered by infra.render (the AWS root for now)."""

    verbs = RENDER_VERBS

    def render(self, stack, out_dir: Path | None = None) -> Path:
        from infra.render import render

        return render(stack, out_dir, target=self.name)

    def prepare(self, stack, out_dir: Path | None = None, *, offline: bool = False, recreate: bool = False,
                start_emulator: bool = True) -> tuple[Prepared, bool]:
        """Render the stack and return a Terraform for it; (prepared, emulator_started_now)."""
        from infra.terraform.runner import Terraform

        workdir = self.render(stack, out_dir)
        return Prepared(stack, self.name, workdir, Terraform(workdir, offline=offline)), False

    def plan(self, prepared: Prepared) -> dict:
        """Plan and write the plan as JSON to <root>/plan.json; returns it."""
        from runtime.store import write_json

        plan = prepared.terraform.plan()
        write_json(prepared.workdir / PLAN_FILE, plan, indent=1)
        return plan

    def apply(self, prepared: Prepared, progress: Callable[[dict], None] | None = None) -> None:
        prepared.terraform.apply(progress=progress)

    def destroy(self, prepared: Prepared, progress: Callable[[dict], None] | None = None) -> None:
        prepared.terraform.destroy(progress=progress)

    def outputs(self, prepared: Prepared) -> dict:
        return prepared.terraform.output()
