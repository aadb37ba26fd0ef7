"""A user's provider mirror with the current AWS provider (5.x) serves the aws target's root:
init installs from it alone and the root validates, with the embedded Terraform.

Only some machines carry such a mirror; it is found at test time (`$GPUFLEET_TEST_PROVIDER_MIRROR`,
else a shallow search for a `registry.terraform.io` folder), and the test is skipped with the
reason where there is none. The bundled 3.39 provider's mirror is covered end to end in
tests/e2e/test_plan_apply_drift.py.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from infra.render import render
from infra.render.providers import AWS_PROVIDERS
from infra.spec import load_stack
from infra.target_names import AWS
from infra.terraform.mirror import mirrored_versions, satisfies, user_mirror_cli_config
from infra.terraform.runner import Terraform

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = [sys.executable, "-m", "infra.terraform.embedded"]
SKIP_TOPS = {"proc", "sys", "dev", "run", "tmp", "boot", "lost+found"}


def _accepts(mirror: Path) -> bool:
    return any(satisfies(v, AWS_PROVIDERS[AWS].constraint) for v in mirrored_versions(mirror))


def find_mirror(max_depth: int = 3, budget_s: float = 5.0) -> Path | None:
    """A filesystem mirror holding an AWS provider the aws target accepts, or None."""
    named = os.environ.get("GPUFLEET_TEST_PROVIDER_MIRROR")
    if named:
        return Path(named) if _accepts(Path(named)) else None
    deadline = time.monotonic() + budget_s
    tops = [p for p in Path("/").iterdir() if p.name not in SKIP_TOPS and p.is_dir() and not p.is_symlink()]
    for top in tops:
        for here, dirs, _ in os.walk(top):
            depth = len(Path(here).relative_to(top).parts)
            if "registry.terraform.io" in dirs and _accepts(Path(here)):
                return Path(here)
            if depth >= max_depth or time.monotonic() > deadline:
                dirs[:] = []
            else:
                dirs[:] = [d for d in dirs if not d.startswith(".") or d == ".terraform.d"]
    return None


MIRROR = find_mirror()


@pytest.mark.skipif(MIRROR is None, reason="no filesystem mirror with an AWS provider the aws target accepts "
                                           f"({AWS_PROVIDERS[AWS].constraint}) on this machine; "
                                           "set GPUFLEET_TEST_PROVIDER_MIRROR to one")
def test_aws_root_inits_and_validates_from_a_user_mirror(tmp_path):
    root = render(load_stack(ROOT / "examples" / "aws-gpu-fleet.yaml"), tmp_path / "demo", target=AWS)
    config = user_mirror_cli_config(MIRROR, AWS_PROVIDERS[AWS].constraint)
    tf = Terraform(root, offline=False, cli_config=config, argv=EMBEDDED, description="embedded")
    assert tf.env()["TF_CLI_CONFIG_FILE"] == str(config)
    tf.init()
    assert [d.render() for d in tf.validate() if d.severity == "error"] == []
    lock = (root / ".terraform.lock.hcl").read_text()
    version = lock.split('version     = "', 1)[1].split('"', 1)[0]
    assert version in mirrored_versions(MIRROR) and satisfies(version, AWS_PROVIDERS[AWS].constraint)
