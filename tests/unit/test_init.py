"""`gpufleet init`: the scaffold of a user's repository, and the CI workflow it writes.

The workflow is examples/ci/github-actions.yml, byte for byte; it is checked by the workflow
JSON Schema (check-jsonschema) and audited by zizmor, both offline, and by the rules the
project holds it to: actions pinned by commit, OIDC only, least permissions, logic in make.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.cli import main
from infra.scaffold import SCAFFOLD, init, scaffold_files
from infra.spec import load_stack
from runtime import __version__
from runtime.errors import BadInput

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"
WORKFLOW = ".github/workflows/gpufleet.yml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str | None:
    return shutil.which(name, path=str(BIN)) or shutil.which(name)


def test_init_writes_the_scaffold(tmp_path, capsys):
    assert main(["init", str(tmp_path / "repo")]) == 0
    repo = tmp_path / "repo"
    written = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
    assert written == sorted(SCAFFOLD)
    assert (repo / WORKFLOW).read_bytes() == EXAMPLE_WORKFLOW.read_bytes()
    stack = load_stack(repo / "stacks" / "example.yaml")
    assert stack.name == "example-fleet"
    assert f"gpufleet[terraform,emulator]=={__version__}" in (repo / "Makefile").read_text()
    assert "build/" in (repo / ".gitignore").read_text().split()
    assert f"wrote {repo / 'Makefile'}" in capsys.readouterr().out


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "Makefile").write_text("all:\n\techo mine\n")
    (tmp_path / ".gitignore").write_text("mine\n")
    assert main(["init", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'Makefile'}: already exists" in err
    assert f"error: {tmp_path / '.gitignore'}: already exists" in err  # every conflict, at once
    assert (tmp_path / "Makefile").read_text() == "all:\n\techo mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "Makefile"], "something was written"


def test_init_force_overwrites_files(tmp_path):
    (tmp_path / "Makefile").write_text("mine\n")
    assert main(["init", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "Makefile").read_bytes() == scaffold_files()["Makefile"]


def test_init_never_replaces_a_file_where_a_folder_goes(tmp_path):
    (tmp_path / ".github").write_text("not a folder\n")
    with pytest.raises(BadInput) as exc:
        init(tmp_path, force=True)
    assert exc.value.problems == [f"{tmp_path / '.github'}: exists and is not a directory (gpufleet init writes {WORKFLOW})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".github"]


def test_init_into_the_current_directory_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert (tmp_path / "stacks" / "example.yaml").is_file()


def test_makefile_targets_call_the_cli(tmp_path):
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on this machine")
    init(tmp_path)

    def dry(target: str, **env: str) -> str:
        args = [make, "-n", target] + [f"{k}={v}" for k, v in env.items()]
        return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    plan = dry("plan")
    assert ("gpufleet plan stacks/example.yaml --target emulator --out plans/example.tfplan "
            "--summary plans/example.md --detailed-exitcode") in plan
    assert "gpufleet apply stacks/prod.yaml --target aws --plan plans/prod.tfplan --yes" in dry(
        "apply", STACK="prod", TARGET="aws")
    assert "gpufleet drift stacks/example.yaml --target emulator" in dry("drift")
    assert "gpufleet state bootstrap stacks/example.yaml --target emulator" in dry("bootstrap")
    assert "gpufleet state bootstrap stacks/prod.yaml --target aws" in dry("bootstrap", STACK="prod", TARGET="aws")
    assert "gpufleet destroy stacks/example.yaml" in dry("destroy")


# -- the workflow ----------------------------------------------------------------------------
def workflow() -> dict:
    return yaml.safe_load(EXAMPLE_WORKFLOW.read_text())


def steps(job: dict) -> list[dict]:
    return job["steps"]


def test_workflow_is_the_one_init_writes():
    assert scaffold_files()[WORKFLOW] == EXAMPLE_WORKFLOW.read_bytes()


def test_actions_are_pinned_to_commits():
    uses = re.findall(r"^\s*- uses: (\S+)(.*)$", EXAMPLE_WORKFLOW.read_text(), re.MULTILINE)
    assert len(uses) >= 4
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"{action}: not pinned to a full commit SHA"
        assert re.fullmatch(r"\s*# v\d+(\.\d+)*", comment), f"{action}: no `# vX` comment naming the release"


def test_least_permissions_and_oidc_only_where_needed():
    wf = workflow()
    assert wf["permissions"] == {}
    text = EXAMPLE_WORKFLOW.read_text()
    assert "aws-access-key-id" not in text and "aws-secret-access-key" not in text and "secrets." not in text
    for name, job in wf["jobs"].items():
        perms = job.get("permissions", {})
        assert set(perms) <= {"contents", "id-token"}, name
        assert perms.get("contents") in (None, "read"), name
        uses_aws = any("configure-aws-credentials" in s.get("uses", "") for s in steps(job))
        assert (perms.get("id-token") == "write") == uses_aws, f"{name}: id-token only where credentials are assumed"
        for s in steps(job):
            if "configure-aws-credentials" in s.get("uses", ""):
                assert s["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"


def test_plan_on_pull_requests_apply_the_plan_on_main():
    wf = workflow()
    triggers = wf.get("on") or wf.get(True)  # YAML 1.1 reads the key `on` as True
    assert {"pull_request", "push"} <= set(triggers)
    plan, apply = wf["jobs"]["plan"], wf["jobs"]["apply"]
    runs = [s["run"] for s in steps(plan) if "run" in s]
    assert runs == ["make setup", "make plan", "make summary"]
    upload = next(s for s in steps(plan) if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "plans/"
    assert apply["needs"] == "plan" and "refs/heads/main" in apply["if"] and apply["environment"]
    download = next(s for s in steps(apply) if "download-artifact" in s.get("uses", ""))
    assert download["with"]["name"] == upload["with"]["name"]
    assert [s["run"] for s in steps(apply) if "run" in s] == ["make setup", "make apply"]
    for job in wf["jobs"].values():
        assert "${{ matrix.stack }}" in job["concurrency"]["group"]
        assert all(s["run"].startswith("make ") for s in steps(job) if "run" in s), "logic belongs in make targets"


def test_makefile_summary_goes_to_the_step_summary(tmp_path):
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on this machine")
    init(tmp_path)
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "example.md").write_text("### Plan: 3 to add\n")
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    subprocess.run([make, "summary"], cwd=tmp_path, check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.read_text() == "earlier step\n### Plan: 3 to add\n"


def test_workflow_matches_the_github_workflow_schema():
    exe = tool("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install 'gpufleet[dev]')")
    proc = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(EXAMPLE_WORKFLOW)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing_at_medium_or_above():
    exe = tool("zizmor")
    if exe is None:
        pytest.skip("zizmor is not installed (pip install 'gpufleet[dev]')")
    proc = subprocess.run([exe, "--offline", "--min-severity", "medium", str(EXAMPLE_WORKFLOW)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout + proc.stderr


def test_zizmor_would_catch_an_unpinned_action(tmp_path):
    """The audit is not vacuous: the same workflow with one action on a tag fails it."""
    exe = tool("zizmor")
    if exe is None:
        pytest.skip("zizmor is not installed (pip install 'gpufleet[dev]')")
    broken = tmp_path / "workflow.yml"
    broken.write_text(re.sub(r"actions/checkout@[0-9a-f]{40} # v[\d.]+", "actions/checkout@v6",
                             EXAMPLE_WORKFLOW.read_text()))
    proc = subprocess.run([exe, "--offline", "--min-severity", "medium", str(broken)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "unpinned" in proc.stdout + proc.stderr
