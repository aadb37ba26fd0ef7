"""A user's provider mirror with the current AWS provider (5.x) serves the aws target's root:
init installs from it alone and the root validates, with the embedded Terraform.

Only some machines carry such a mirror; it is found at test time (tests/conftest.py's
`aws_mirror`: `$GPUFLEET_TEST_PROVIDER_MIRROR`, else a search for the provider binary), and the
test is skipped with the reason where there is none. The bundled 3.39 provider's mirror is covered end to end in
tests/e2e/test_plan_apply_drift.py.
"""

from __future__ import annotations

import sys
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


def test_aws_root_inits_and_validates_from_a_user_mirror(aws_mirror, tmp_path):
    mirror, _ = aws_mirror
    root = render(load_stack(ROOT / "examples" / "aws-gpu-fleet.yaml"), tmp_path / "demo", target=AWS)
    config = user_mirror_cli_config(mirror, AWS_PROVIDERS[AWS].constraint)
    tf = Terraform(root, offline=False, cli_config=config, argv=EMBEDDED, description="embedded")
    assert tf.env()["TF_CLI_CONFIG_FILE"] == str(config)
    tf.init()
    assert [d.render() for d in tf.validate() if d.severity == "error"] == []
    lock = (root / ".terraform.lock.hcl").read_text()
    version = lock.split('version     = "', 1)[1].split('"', 1)[0]
    assert version in mirrored_versions(mirror) and satisfies(version, AWS_PROVIDERS[AWS].constraint)
