"""The CI workflow users copy, run here: its own `run:` steps, in order, against the emulator.

`gpufleet init` writes a repository; this test reads the workflow it wrote
(.github/workflows/gpufleet.yml, the same file as examples/ci/github-actions.yml) and runs the
`run:` steps of its plan job, then its apply job, then its drift job, each with bash in the
repository, as a runner would. What differs from GitHub, and why:
- `uses:` steps are not run (checkout, setup-python, OIDC credentials, artifacts need GitHub);
  the plan file that upload/download-artifact carry between the jobs stays in plans/.
- TARGET is `emulator` instead of the workflow's `aws`: there is no cloud here.
- `make setup` installs `gpufleet` unpinned, which the test's environment already satisfies.
The stack is the init's example cut down to a training fleet (no load balancer: an apply
against moto takes ~20 s instead of ~75 s); the steps do not depend on what the stack holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from e2e_helpers import ENV, aws_client, run_gpufleet  # noqa: E402

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def run_steps(workflow: dict, job: str) -> list[str]:
    return [step["run"] for step in workflow["jobs"][job]["steps"] if "run" in step]


def test_the_workflow_steps_plan_apply_and_find_no_drift(running_emulator, tmp_path):
    repo = tmp_path / "repo"
    run_gpufleet("init", str(repo))
    workflow = yaml.safe_load((repo / ".github" / "workflows" / "gpufleet.yml").read_text())
    (stack,) = workflow["jobs"]["plan"]["strategy"]["matrix"]["stack"]
    spec = yaml.safe_load((repo / "stacks" / f"{stack}.yaml").read_text())
    spec = {k: spec[k] for k in ("name", "cloud", "region", "network", "tags")} | {
        "training": {"instance_type": "g5.xlarge", "nodes": {"min": 1, "desired": 1, "max": 2}}}
    (repo / "stacks" / f"{stack}.yaml").write_text(yaml.safe_dump(spec))

    summary = tmp_path / "step-summary.md"
    env = {**ENV, "STACK": stack, "TARGET": "emulator", "GITHUB_STEP_SUMMARY": str(summary),
           "GPUFLEET_EMULATOR_ENDPOINT": running_emulator.endpoint, "PYTHON": sys.executable,
           "GPUFLEET": str(BIN / "gpufleet"), "GPUFLEET_REQUIREMENT": "gpufleet",
           "PATH": f"{BIN}{os.pathsep}{ENV['PATH']}"}
    ran = []
    try:
        for job in ("plan", "apply", "drift"):
            assert workflow["jobs"][job]["env"]["STACK"] == "${{ matrix.stack }}"
            for command in run_steps(workflow, job):
                p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command], cwd=repo, env=env,
                                   capture_output=True, text=True, timeout=600)
                assert p.returncode == 0, f"{job}: {command}\n{p.stdout}\n{p.stderr}"
                ran.append((job, command, p))
        assert [(j, c) for j, c, _ in ran] == [("plan", "make setup"), ("plan", "make plan"), ("plan", "make summary"),
                                               ("apply", "make setup"), ("apply", "make apply"),
                                               ("drift", "make setup"), ("drift", "make drift")]
        md = summary.read_text()
        assert "`aws_autoscaling_group`" in md and "g5.xlarge" in md, md
        (group,) = aws_client("autoscaling", running_emulator.endpoint).describe_auto_scaling_groups(
            AutoScalingGroupNames=[f"{spec['name']}-train"])["AutoScalingGroups"]
        assert group["MaxSize"] == 2
        drift = ran[-1][2]  # make echoes the command first
        assert any(line.startswith("No drift") for line in drift.stdout.splitlines()), drift.stdout
    finally:
        run_gpufleet("destroy", str(repo / "stacks" / f"{stack}.yaml"), "--root",
                     str(repo / "build" / spec["name"]), check=False,
                     env={"GPUFLEET_EMULATOR_ENDPOINT": running_emulator.endpoint})
