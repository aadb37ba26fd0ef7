"""Where a stack is deployed: one module per target, each implementing `Target` (base.py).

emulator.py (the default: Terraform against the local AWS emulator), aws.py (real AWS),
gcp.py (real GCP; offline: render and the checks in gcp_offline.py),
kubernetes.py (plain manifests for a cluster the user has; kubectl.py runs the cluster side),
local/ (the runtime on this machine: replicas behind HAProxy, the local autoscaler). base.py
holds the interface and what the Terraform targets share. `TARGETS` is the registry the CLI
reads: its `--target` choices are the targets that list a command among their verbs.
"""

from __future__ import annotations

from pathlib import Path

from infra.target_names import DEFAULT
from infra.targets.aws import AwsTarget
from infra.targets.base import Prepared, Target
from infra.targets.emulator import EmulatorTarget
from infra.targets.gcp import GcpTarget
from infra.targets.kubernetes import KubernetesTarget
from infra.targets.local import LocalTarget
from runtime.errors import BadInput

TARGETS: dict[str, Target] = {t.name: t for t in (EmulatorTarget(), AwsTarget(), GcpTarget(), KubernetesTarget(),
                                                  LocalTarget())}


def names_for(verb: str) -> list[str]:
    """The targets that answer the CLI command `verb`, in registry order."""
    return [name for name, t in TARGETS.items() if verb in t.verbs]


def names_for_cloud(cloud: str) -> list[str]:
    """The Terraform targets that deploy a spec of `cloud` ("aws": emulator, aws; "gcp": gcp)."""
    return [name for name, t in TARGETS.items() if cloud in getattr(t, "clouds", ())]


def get_target(name: str, verb: str | None = None) -> Target:
    """The target called `name` (that answers `verb`, if given); BadInput naming the allowed ones."""
    allowed = names_for(verb) if verb else list(TARGETS)
    if name not in allowed:
        what = f"`{verb}` targets" if verb else "targets"
        raise BadInput(f"--target: unknown target (got {name!r}; {what}: {', '.join(allowed)})")
    return TARGETS[name]


def prepare(stack, target: str = DEFAULT, out_dir: Path | None = None, offline: bool = False, recreate: bool = False,
            start_emulator: bool = True) -> tuple[Prepared, bool]:
    """Render `stack` for a Terraform target and return a Terraform for it; (prepared, emulator_started_now)."""
    return get_target(target, "plan").prepare(stack, out_dir, offline=offline, recreate=recreate,
                                              start_emulator=start_emulator)
