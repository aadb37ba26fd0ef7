"""The CLI's surface (help, exit codes) and the Terraform runner's pure parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.cli import build_parser, main
from infra.render.render import render_emulator_override, render_files
from infra.spec import parse_stack
from infra.terraform.runner import Diagnostic, Terraform, format_plan_summary, plan_summary

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["init", "validate", "schema", "render", "plan", "apply", "destroy", "outputs", "drift", "preflight", "emulator",
            "state", "run", "data", "serve", "agent", "train", "up", "down", "status", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    proc = subprocess.run([sys.executable, "-m", "infra.cli", command, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "usage: gpufleet" in proc.stdout


def test_missing_spec_is_bad_input(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "nope.yaml")]) == 2
    assert "no such stack spec file" in capsys.readouterr().err


def test_real_cloud_apply_needs_confirmation(tmp_path, capsys, monkeypatch):
    """Without a terminal and without --yes, apply to AWS refuses before touching anything."""
    import infra.commands.deploy as deploy

    calls = []
    monkeypatch.setattr(deploy, "prepare", lambda args, recreate=False: calls.append(args) or _FakePrepared())
    monkeypatch.setattr(sys, "stdin", open("/dev/null"))
    assert main(["apply", str(ROOT / "examples/aws-gpu-fleet.yaml"), "--target", "aws"]) == 2
    assert "--yes: required to apply on target aws" in capsys.readouterr().err
    assert _FakePrepared.applied == 0


class _FakePrepared:
    applied = 0

    class terraform:  # noqa: N801 - stands in for a Terraform instance
        @staticmethod
        def apply(progress=None):
            _FakePrepared.applied += 1


def test_offline_and_online_cli_configs(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUFLEET_HOME", str(tmp_path))
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", "/does/not/exist")
    offline = Path(Terraform(tmp_path, offline=True, argv=["tf"]).env()["TF_CLI_CONFIG_FILE"]).read_text()
    assert "filesystem_mirror" in offline and 'include = ["registry.terraform.io/hashicorp/aws"]' in offline
    assert (tmp_path / "terraform/mirror/registry.terraform.io/hashicorp/aws").is_dir()
    online = Path(Terraform(tmp_path, offline=False, argv=["tf"]).env()["TF_CLI_CONFIG_FILE"]).read_text()
    assert "filesystem_mirror" not in online and "plugin_cache_dir" in online
    env = Terraform(tmp_path, argv=["tf"], extra_env={"AWS_PROFILE": None, "X": "1"}).env()
    assert "AWS_PROFILE" not in env and env["X"] == "1" and env["TF_IN_AUTOMATION"] == "1"


def test_plan_summary_counts_actions():
    plan = {"resource_changes": [
        {"type": "aws_lb", "change": {"actions": ["create"]}},
        {"type": "aws_lb", "change": {"actions": ["delete", "create"]}},
        {"type": "aws_vpc", "change": {"actions": ["update"]}},
        {"type": "aws_vpc", "change": {"actions": ["no-op"]}},
        {"type": "aws_ami", "change": {"actions": ["read"]}},
    ]}
    summary = plan_summary(plan)
    assert summary == {"aws_lb": {"add": 2, "change": 0, "destroy": 1}, "aws_vpc": {"add": 0, "change": 1, "destroy": 0}}
    lines = list(format_plan_summary(summary))
    assert lines[0] == "Plan: 2 to add, 1 to change, 1 to destroy."


def test_diagnostic_rendering():
    d = Diagnostic.from_json({"severity": "error", "summary": "Bad thing", "detail": "why\nmore",
                              "range": {"filename": "main.tf", "start": {"line": 7}}})
    assert d.render() == "error: Bad thing (main.tf:7)\n  why\n  more"


def test_s3_backend_renders_with_locking():
    """A lock file by default (and Terraform 1.10 for it), a DynamoDB table when asked; the
    emulator's override repeats the whole backend with the emulator's endpoints."""
    data = {
        "name": "remote",
        "serving": {"instance_type": "g5.xlarge", "replicas": {"min": 1, "max": 2}},
        "backend": {"type": "s3", "bucket": "tf-state-bucket", "key": "gpufleet/remote.tfstate"},
    }
    stack = parse_stack(data)
    providers = render_files(stack, "aws")["providers.tf"].decode()
    assert 'backend "s3" {' in providers and 'required_version = ">= 1.10"' in providers
    assert 'use_lockfile = true' in providers and "encrypt      = true" in providers
    assert 'region       = "us-east-1"' in providers and "dynamodb_table" not in providers
    assert "endpoints" not in providers and "skip_" not in providers  # real AWS: nothing of the emulator's

    override = render_emulator_override("http://127.0.0.1:5555", 3, stack.backend)
    backend = override[override.index('backend "s3"'):]
    assert 'bucket       = "tf-state-bucket"' in backend and "use_lockfile = true" in backend
    assert 's3       = "http://127.0.0.1:5555"' in backend and "use_path_style              = true" in backend
    assert 'backend "s3"' not in render_emulator_override("http://127.0.0.1:5555", 3, None)

    ddb = parse_stack({**data, "backend": {**data["backend"], "lock": "dynamodb", "dynamodb_table": "tf-locks"}})
    providers = render_files(ddb, "aws")["providers.tf"].decode()
    assert 'dynamodb_table = "tf-locks"' in providers and "use_lockfile" not in providers
    assert 'required_version = ">= 1.3"' in providers
    local = render_files(parse_stack({**data, "backend": {"type": "local"}}), "aws")["providers.tf"].decode()
    assert "backend" not in local


def test_parser_lists_runtime_commands_without_importing_them():
    parser = build_parser("render")
    help_text = parser.format_help()
    for name in ("data", "serve"):
        assert name in help_text
    code = "import sys, infra.cli; infra.cli.build_parser('render'); print(sorted(m for m in sys.modules if m in ('torch', 'pyarrow')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert json.loads(proc.stdout.strip().replace("'", '"')) == []
