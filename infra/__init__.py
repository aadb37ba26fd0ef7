"""gpufleet infra: stack spec -> Terraform -> a running (or emulated) cloud stack.

The way data flows: `infra.spec` validates the YAML into a resolved model, `infra.render`
writes a Terraform root under build/<stack>/, `infra.terraform` runs Terraform on it,
`infra.emulator` runs the local AWS emulator, `infra.targets` holds one module per deployment
target (emulator, aws: Terraform; local: the runtime on this machine) behind one interface,
and `infra.cli` is the `gpufleet` command, which dispatches on it.
"""

import os
from pathlib import Path

# Where templates/ and modules/ live: the repository (or sdist) root beside the packages.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"
MODULES_DIR = PROJECT_ROOT / "modules"
# Rendered stacks and the emulator's record; GPUFLEET_BUILD_DIR moves it (tests use a temporary one).
BUILD_DIR = Path(os.environ.get("GPUFLEET_BUILD_DIR") or PROJECT_ROOT / "build")
