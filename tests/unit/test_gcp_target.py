"""The `gcp` target: it stops before Terraform without Google credentials, and `plan --offline`
renders the root and runs the offline checks (checkov; `terraform validate` only where a
filesystem mirror holds the Google provider, skipped with the reason otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.cli import main
from infra.targets import TARGETS, gcp_offline, names_for, names_for_cloud
from infra.targets import gcp as gcp_target
from infra.targets.gcp_offline import CheckResult, OfflineOptions, check_terraform_validate
from runtime.errors import BadInput

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/gcp-gpu-fleet.yaml"
CHECKOV = ROOT / ".tools/checkov/bin/checkov"
CREDENTIAL_VARS = ("GOOGLE_APPLICATION_CREDENTIALS", *gcp_target.CREDENTIAL_ENV, "CLOUDSDK_CONFIG")


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """A machine without any Google credentials: no variables, no gcloud file, not a GCE VM."""
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(gcp_target, "GCE_PRODUCT_FILE", tmp_path / "no-dmi")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_registry():
    assert "gcp" in TARGETS and "gcp" in names_for("plan") and "gcp" not in names_for("up")
    assert names_for_cloud("gcp") == ["gcp"] and names_for_cloud("aws") == ["emulator", "aws"]
    assert TARGETS["gcp"].real_cloud and not TARGETS["gcp"].plans_offline


def test_plan_without_credentials_stops_before_terraform(no_credentials, capsys, monkeypatch):
    import infra.terraform.runner

    def forbidden(*a, **k):
        raise AssertionError("Terraform ran without credentials")

    monkeypatch.setattr(infra.terraform.runner.Terraform, "__post_init__", forbidden)
    rc = main(["plan", str(EXAMPLE), "--target", "gcp"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "the gcp target needs Google credentials and found none: GOOGLE_APPLICATION_CREDENTIALS is not set" in err
    assert str(no_credentials / "home/.config/gcloud/application_default_credentials.json") in err
    assert "--offline" in err
    assert not (no_credentials / "build").exists(), "nothing is rendered without credentials"


def test_credentials_are_found_where_the_provider_looks(no_credentials, monkeypatch):
    with pytest.raises(BadInput, match="found none"):
        gcp_target.find_credentials()
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(no_credentials / "missing.json"))
    with pytest.raises(BadInput, match="GOOGLE_APPLICATION_CREDENTIALS: no such credentials file"):
        gcp_target.find_credentials()
    key = no_credentials / "key.json"
    key.write_text("{}")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    assert str(key) in gcp_target.find_credentials()
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    adc = no_credentials / "home/.config/gcloud/application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    adc.write_text("{}")
    assert "gcloud application default credentials" in gcp_target.find_credentials()
    adc.unlink()
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.x")
    assert gcp_target.find_credentials() == "$GOOGLE_OAUTH_ACCESS_TOKEN"
    monkeypatch.delenv("GOOGLE_OAUTH_ACCESS_TOKEN")
    dmi = no_credentials / "product_name"
    dmi.write_text("Google Compute Engine\n")
    monkeypatch.setattr(gcp_target, "GCE_PRODUCT_FILE", dmi)
    assert gcp_target.find_credentials() == "the Compute Engine metadata server"


def test_plan_offline_renders_and_runs_the_checks(no_credentials, capsys, monkeypatch):
    seen = []

    def fake_check(root, options):
        seen.append(root)
        return CheckResult("fake", "passed", "looked")

    def skipping(root, options):
        return CheckResult("skipper", "skipped", "no tool")

    monkeypatch.setattr(gcp_offline, "OFFLINE_CHECKS", [fake_check, skipping])
    rc = main(["plan", str(EXAMPLE), "--target", "gcp", "--offline"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    root = no_credentials / "build" / "gcp-fleet"
    assert seen == [root] and (root / "main.tf").is_file() and (root / "modules/gcp/gpu-mig/main.tf").is_file()
    assert out.splitlines() == [f"passed: render: {root}", "passed: fake: looked", "skipped: skipper: no tool"]
    assert "offline checks: 2 passed, 0 failed, 1 skipped (skipper)" in err
    assert not (root / "tfplan").exists() and not (root / ".terraform").exists(), "no Terraform offline"

    monkeypatch.setattr(gcp_offline, "OFFLINE_CHECKS", [lambda root, options: CheckResult("bad", "failed", "CKV_X")])
    assert main(["plan", str(EXAMPLE), "--target", "gcp", "--offline"]) == 1
    assert "failed: bad: CKV_X" in capsys.readouterr().out


def test_other_verbs_refuse_offline(no_credentials, capsys):
    assert main(["apply", str(EXAMPLE), "--target", "gcp", "--offline", "--yes"]) == 2
    assert "--offline: the gcp target has no offline Google provider" in capsys.readouterr().err
    assert not (no_credentials / "build").exists()


def test_a_spec_of_another_cloud_is_refused_by_name(no_credentials, capsys):
    assert main(["plan", str(EXAMPLE)]) == 2  # the default target: the AWS emulator
    err = capsys.readouterr().err
    assert "--target: the emulator target deploys aws stacks (got cloud 'gcp'" in err and "targets for it: gcp" in err
    assert main(["render", str(ROOT / "examples/aws-gpu-fleet.yaml"), "--target", "gcp"]) == 2
    assert "targets for it: emulator, aws" in capsys.readouterr().err
    assert not (no_credentials / "build").exists()


def test_terraform_validate_is_skipped_without_a_google_provider(tmp_path, monkeypatch):
    monkeypatch.delenv("GPUFLEET_PROVIDER_MIRROR", raising=False)
    result = check_terraform_validate(tmp_path, OfflineOptions())
    assert result.status == "skipped" and "no filesystem mirror was given" in result.detail
    mirror = tmp_path / "mirror"
    (mirror / "registry.terraform.io/hashicorp/aws").mkdir(parents=True)
    result = check_terraform_validate(tmp_path, OfflineOptions(provider_mirror=mirror))
    assert result.status == "skipped" and "holds no hashicorp/google >= 6.0, < 8.0" in result.detail


def test_checkov_is_skipped_when_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(gcp_offline, "find_checkov", lambda: None)
    result = gcp_offline.check_checkov(tmp_path, OfflineOptions())
    assert result.status == "skipped" and "checkov is not installed" in result.detail


def test_mirror_flag_needs_a_google_provider(tmp_path):
    (tmp_path / "registry.terraform.io/hashicorp/aws").mkdir(parents=True)
    with pytest.raises(BadInput, match="no hashicorp/google provider for"):
        TARGETS["gcp"].mirror_cli_config(tmp_path)


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is not installed: run `make setup` (it goes in .tools/checkov)")
def test_cli_plan_offline_end_to_end(tmp_path):
    """The bar: without credentials, `plan --target gcp` exits 2; with --offline, render and checkov pass."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS and k != "GPUFLEET_PROVIDER_MIRROR"}
    env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "infra.cli", "plan", str(EXAMPLE), "--target", "gcp"]
    if not gcp_target.on_compute_engine():
        denied = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
        assert denied.returncode == 2 and "needs Google credentials" in denied.stderr
        assert not (tmp_path / "build").exists()
    offline = subprocess.run([*cmd, "--offline"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    lines = offline.stdout.splitlines()
    assert lines[0].startswith("passed: render: ")
    assert any(line.startswith("passed: checkov: ") and ", 0 failed, " in line for line in lines), lines
    assert any(line.startswith("skipped: terraform validate: ") for line in lines), lines


def test_plan_summary_lists_each_group_and_says_why_two():
    from infra.spec import load_stack
    from infra.terraform.summary import markdown_summary

    md = markdown_summary({"resource_changes": []}, load_stack(EXAMPLE), "gcp")
    assert "| fleet | managed instance group |" in md
    assert "| training | `gcp-fleet-train` | a2-highgpu-1g | NVIDIA A100 40GB (40 GiB) | 1 | 1 | 2 | 4 |" in md
    assert ("| serving pool `main` (spot) | `gcp-fleet-serve-main-spot` | n1-standard-8 + 1 x nvidia-tesla-t4 | "
            "NVIDIA T4 (16 GiB) | 1 | 1 | 1 | 7 |") in md
    assert ("runs as `gcp-fleet-serve-main-ondemand` (on-demand, 1-1) and `gcp-fleet-serve-main-spot` (spot, 1-7), "
            "both behind the pool's one backend service") in md


@pytest.mark.parametrize("flag", [["--out", "plan.tfplan"], ["--summary", "s.md"], ["--endpoint", "http://127.0.0.1:1"]])
def test_plan_offline_refuses_what_it_would_ignore(no_credentials, capsys, flag):
    assert main(["plan", str(EXAMPLE), "--target", "gcp", "--offline", *flag]) == 2
    assert f"{flag[0]}: --offline on the gcp target makes no plan" in capsys.readouterr().err
    assert not (no_credentials / "build").exists()
