"""AWS provider 5.x against the emulator: validate without a warning, plan, apply, plan again, destroy.

The aws target pins `>= 5.0, < 7.0`; the emulator target's default is the offline 3.39. Where a
filesystem mirror with provider 5.x is found on this machine, the full example stack (training,
serving, load balancer) is rendered with the aws target's spellings plus the emulator's override
and run for real against moto. Skipped, saying why, where there is none. Provider 6.x has no
offline build: its upgrade guide was checked by hand instead (see infra/render/providers.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from infra.render import render
from infra.render.providers import AWS_PROVIDERS, AwsProvider
from infra.render.render import EMULATOR_OVERRIDE, render_emulator_override
from infra.spec import load_stack
from infra.targets.emulator import EMULATOR_ENV
from infra.terraform.runner import Terraform, plan_summary

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = [sys.executable, "-m", "infra.terraform.embedded"]

pytestmark = pytest.mark.slow


# What moto 5.2 does not give back, which provider 5.x then reads as drift: a scaling policy's
# `Enabled` (absent from DescribePolicies, read as false) and an empty PredictiveScalingConfiguration
# (read as one empty block). Nothing else may differ after an apply.
MOTO_GAPS = {"module.serving_main.aws_autoscaling_policy.target_tracking[0]": {"enabled", "predictive_scaling_configuration"}}


def _drift(plan: dict) -> dict[str, set[str]]:
    """Address -> the attributes a plan would change, for every resource it would touch."""
    drift = {}
    for rc in plan.get("resource_changes", []):
        change = rc["change"]
        if change["actions"] in (["no-op"], ["read"]):
            continue
        before, after = change.get("before") or {}, change.get("after") or {}
        drift[rc["address"]] = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    return drift


def test_provider_5_validates_plans_applies_and_destroys(running_emulator, aws5_cli_config, tmp_path):
    config, version = aws5_cli_config
    aws = AWS_PROVIDERS["aws"]
    stack = load_stack(ROOT / "examples" / "aws-gpu-fleet.yaml")
    root = render(stack, tmp_path / "root", target="emulator",
                  provider=AwsProvider(aws.constraint, aws.major, emulated=True))
    (root / EMULATOR_OVERRIDE).write_text(render_emulator_override(running_emulator.endpoint, aws.major))
    tf = Terraform(root, offline=True, argv=EMBEDDED, description="embedded",
                   extra_env={**EMULATOR_ENV, "TF_CLI_CONFIG_FILE": str(config)})
    tf.init()
    assert f'version     = "{version}"' in (root / ".terraform.lock.hcl").read_text()
    assert [d.render() for d in tf.validate()] == []  # not one warning: nothing deprecated in 5.x

    planned = plan_summary(tf.plan())
    assert planned["aws_s3_object"]["add"] == 2 and "aws_s3_bucket_object" not in planned
    assert planned["aws_s3_bucket_versioning"]["add"] == 1 and planned["aws_lb"]["add"] == 1
    try:
        tf.apply()
        outputs = tf.output()
        assert outputs["load_balancer_dns_name"] and outputs["artifacts_bucket"]
        assert _drift(tf.plan()) == MOTO_GAPS, "a second plan changes nothing but what moto does not store"
    finally:
        tf.destroy()
    assert plan_summary(tf.plan()).get("aws_vpc", {}).get("add") == 1  # all gone: it would create them again
