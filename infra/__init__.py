"""gpufleet infra: stack spec -> Terraform -> a running (or emulated) cloud stack.

The way data flows: `infra.spec` validates the YAML into a resolved model, `infra.render`
writes a self-contained Terraform root under build/<stack>/ in the current directory,
`infra.terraform` runs Terraform on it, `infra.emulator` runs the local AWS emulator,
`infra.targets` holds one module per deployment target (emulator, aws: Terraform; local: the
runtime on this machine) behind one interface, `infra.scaffold` writes a user's repository
(`gpufleet init`), and `infra.cli` is the `gpufleet` command, which dispatches on it.

gpufleet is installed into users' environments, so it never writes inside its own package:
templates and modules are package data read through `infra.assets`, and everything gpufleet
writes goes under the current directory (`build_dir()`) or where the user says (`--out`).
"""

import os
from pathlib import Path

# The directory holding the infra and runtime packages: a checkout, or site-packages. Read
# only, to start processes that import them (never written to; not where templates live).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def build_dir() -> Path:
    """Where rendered stacks and the emulator's record go: $GPUFLEET_BUILD_DIR, else ./build.

    Read at each call (not at import), relative to the current directory, made absolute.
    """
    return Path(os.environ.get("GPUFLEET_BUILD_DIR") or "build").absolute()
