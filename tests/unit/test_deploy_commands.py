"""The Terraform verbs' pure parts and their refusals: every bad input here is refused before
anything is rendered, started or run (the root directory is never created, the emulator never
started). Terraform itself runs in tests/e2e/test_plan_apply_drift.py."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from infra.cli import main
from infra.spec import parse_stack
from infra.terraform import mirror
from infra.terraform.drift import drift_from_plan, format_drift
from infra.terraform.mirror import mirrored_versions, satisfies, this_platform, user_mirror_cli_config
from infra.terraform.saved_plan import record_path
from infra.terraform.summary import count_changes, markdown_summary, replacements

TRAIN_ONLY = {"name": "stack-a", "training": {"instance_type": "g5.12xlarge", "nodes": {"min": 1, "desired": 2, "max": 4}}}


@pytest.fixture
def no_side_effects(monkeypatch):
    """Any attempt to start the emulator or render fails the test."""
    import infra.emulator
    import infra.render

    def forbidden(*a, **k):
        raise AssertionError("started or rendered something before refusing")

    monkeypatch.setattr(infra.emulator, "start", forbidden)
    monkeypatch.setattr(infra.render, "render", forbidden)


def write_spec(tmp_path: Path, name: str = "stack-a") -> Path:
    import yaml

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**TRAIN_ONLY, "name": name}))
    return path


# -- the Markdown summary ---------------------------------------------------------------------
def _asg(group, before, after, actions):
    return {"address": f"module.x.aws_autoscaling_group.this", "mode": "managed", "type": "aws_autoscaling_group",
            "change": {"actions": actions, "before": before, "after": after}}


def test_summary_counts_replacements_and_gpus_per_fleet():
    stack = parse_stack(TRAIN_ONLY)
    sizes = lambda lo, want, hi: {"name": "stack-a-train", "min_size": lo, "desired_capacity": want, "max_size": hi}  # noqa: E731
    plan = {"resource_changes": [
        _asg("stack-a-train", sizes(1, 2, 4), sizes(1, 2, 6), ["update"]),
        {"address": "module.training.aws_launch_template.this", "mode": "managed", "type": "aws_launch_template",
         "change": {"actions": ["delete", "create"], "replace_paths": [["instance_type"]], "before": {}, "after": {}},
         "action_reason": "replace_because_cannot_update"},
        {"address": "aws_vpc.main", "mode": "managed", "type": "aws_vpc", "change": {"actions": ["create"]}},
        {"address": "data.aws_ami.x", "mode": "data", "type": "aws_ami", "change": {"actions": ["read"]}},
    ]}
    assert count_changes(plan)["aws_launch_template"] == {"add": 1, "change": 0, "destroy": 1, "replace": 1}
    assert replacements(plan) == [("module.training.aws_launch_template.this", "forced by `instance_type`")]
    md = markdown_summary(plan, stack, "emulator")
    assert "**2 to add, 1 to change, 1 to destroy** (1 of them replacements)" in md
    assert "- `module.training.aws_launch_template.this`: forced by `instance_type`" in md
    assert "| `aws_ami` |" not in md  # data sources are read, not changed
    # 4 GPUs per g5.12xlarge: min 1, desired 2, max 4 -> 6 instances
    assert "| training | `stack-a-train` | g5.12xlarge | NVIDIA A10G (24 GiB) | 4 | 4 | 8 | 16 -> 24 |" in md


def test_summary_without_changes_uses_the_spec_sizes():
    md = markdown_summary({"resource_changes": []}, parse_stack(TRAIN_ONLY), "aws")
    assert "**No changes.**" in md and "| 4 | 4 | 8 | 16 |" in md


# -- drift ------------------------------------------------------------------------------------
def test_drift_lists_attributes_and_ignores_empty_spellings():
    plan = {"resource_drift": [
        {"address": "module.training.aws_autoscaling_group.this", "mode": "managed", "type": "aws_autoscaling_group",
         "change": {"actions": ["update"],
                    "before": {"max_size": 4, "load_balancers": None, "tag": [{"key": "a", "value": "1"}], "x": ""},
                    "after": {"max_size": 6, "load_balancers": [], "tag": [{"key": "a", "value": "2"}], "x": None}}},
        {"address": "aws_iam_role.r", "mode": "managed", "type": "aws_iam_role",
         "change": {"actions": ["update"], "before": {"tags": None}, "after": {"tags": {}}}},
        {"address": "aws_s3_bucket.b", "mode": "managed", "type": "aws_s3_bucket",
         "change": {"actions": ["delete"], "before": {"bucket": "b"}, "after": None}},
        {"address": "aws_db.d", "mode": "managed", "type": "aws_db",
         "change": {"actions": ["update"], "before": {"password": "old", "rules": [1]}, "after": {"password": "new", "rules": [1, 2]},
                    "before_sensitive": {"password": True}, "after_sensitive": {"password": True}}},
    ]}
    drift = drift_from_plan(plan)
    assert [d.address for d in drift] == ["aws_db.d", "aws_s3_bucket.b", "module.training.aws_autoscaling_group.this"]
    asg = drift[2]
    assert [(c.path, c.before, c.after) for c in asg.changes] == [("max_size", 4, 6), ("tag[0].value", "1", "2")]
    assert drift[1].deleted
    assert [(c.path, c.before, c.after) for c in drift[0].changes] == [("password", "(sensitive)", "(sensitive)"),
                                                                       ("rules", [1], [1, 2])]
    text = "\n".join(format_drift(drift))
    assert "    max_size: 4 -> 6" in text and "aws_s3_bucket.b: deleted outside Terraform" in text
    assert "old" not in text and "new" not in text
    assert list(format_drift([]))[0].startswith("No drift")


# -- provider mirrors -------------------------------------------------------------------------
@pytest.mark.parametrize("constraint,yes,no", [
    ("= 3.39.0", ["3.39.0"], ["3.39.1", "5.100.0"]),
    (">= 5.0, < 6.0", ["5.0.0", "5.100.0"], ["4.67.0", "6.0.0", "5.1.0-beta1"]),
    ("~> 5.1", ["5.1.0", "5.99.3"], ["5.0.9", "6.0.0"]),
    ("~> 5.1.0", ["5.1.0", "5.1.9"], ["5.2.0"]),
    (">= 3.39, != 4.0.0", ["3.39.0", "4.0.1"], ["4.0.0", "3.38.0"]),
])
def test_version_constraints(constraint, yes, no):
    assert all(satisfies(v, constraint) for v in yes)
    assert not any(satisfies(v, constraint) for v in no)


def _provider_dir(root: Path) -> Path:
    d = root / "registry.terraform.io" / "hashicorp" / "aws"
    d.mkdir(parents=True)
    return d


def test_mirror_layouts_and_the_cli_config(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUFLEET_HOME", str(tmp_path / "home"))
    packed = tmp_path / "packed"
    d = _provider_dir(packed)
    (d / f"terraform-provider-aws_3.39.0_{this_platform()}.zip").write_bytes(b"")
    (d / "terraform-provider-aws_9.9.9_plan9_mips.zip").write_bytes(b"")  # another platform: not counted
    unpacked = tmp_path / "unpacked"
    (_provider_dir(unpacked) / "5.100.0" / this_platform()).mkdir(parents=True)
    (unpacked / "registry.terraform.io/hashicorp/aws/5.100.0" / this_platform() / "terraform-provider-aws_v5.100.0_x5").write_bytes(b"")
    assert mirrored_versions(packed) == ["3.39.0"]
    assert mirrored_versions(unpacked) == ["5.100.0"]
    config = user_mirror_cli_config(unpacked, ">= 5.0, < 6.0").read_text()
    assert f'path    = "{unpacked.resolve()}"' in config
    assert 'include = ["registry.terraform.io/hashicorp/aws"]' in config
    assert 'exclude = ["registry.terraform.io/hashicorp/aws"]' in config and "plugin_cache_dir" in config
    with pytest.raises(mirror.BadInput, match=r"accepts \(got 5.100.0 .*allowed: = 3.39.0\)"):
        user_mirror_cli_config(unpacked, "= 3.39.0")


def test_plan_refuses_a_mirror_without_the_provider(tmp_path, capsys, no_side_effects):
    spec, root, empty = write_spec(tmp_path), tmp_path / "root", tmp_path / "mirror"
    empty.mkdir()
    assert main(["plan", str(spec), "--root", str(root), "--provider-mirror", str(empty)]) == 2
    err = capsys.readouterr().err
    assert f"error: --provider-mirror: no AWS provider for {this_platform()} in the mirror" in err
    assert "registry.terraform.io/hashicorp/aws/terraform-provider-aws_VERSION_" in err
    assert not root.exists()
    assert main(["plan", str(spec), "--root", str(root), "--provider-mirror", str(tmp_path / "nope")]) == 2
    assert "--provider-mirror: not a directory" in capsys.readouterr().err


def test_a_mirror_with_another_version_names_the_target(tmp_path, capsys, monkeypatch, no_side_effects):
    spec, root, mirror_dir = write_spec(tmp_path), tmp_path / "root", tmp_path / "mirror"
    (_provider_dir(mirror_dir) / f"terraform-provider-aws_5.100.0_{this_platform()}.zip").write_bytes(b"")
    monkeypatch.setenv("GPUFLEET_PROVIDER_MIRROR", str(mirror_dir))
    assert main(["plan", str(spec), "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "error: GPUFLEET_PROVIDER_MIRROR: the mirror holds no AWS provider that the emulator target accepts" in err
    assert "got 5.100.0" in err and "allowed: = 3.39.0" in err
    # drift's exit 2 means drift, so its errors exit 1
    assert main(["drift", str(spec), "--root", str(root)]) == 1
    assert "GPUFLEET_PROVIDER_MIRROR" in capsys.readouterr().err
    assert not root.exists()


# -- saved plans ------------------------------------------------------------------------------
def _fake_plan(path: Path, stack: str | None = "stack-a") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tfplan", b"")
        if stack:
            z.writestr("tfconfig/m-/main.tf", f'locals {{\n  stack = "{stack}"\n}}\n')
    return path


def test_apply_refuses_a_plan_of_another_stack(tmp_path, capsys, no_side_effects):
    spec_b, root_b = write_spec(tmp_path, "stack-b"), tmp_path / "root-b"
    plan = _fake_plan(tmp_path / "a.tfplan")
    record_path(plan).write_text(json.dumps({"stack": "stack-a", "target": "emulator", "root": str(tmp_path / "root-a")}))
    assert main(["apply", str(spec_b), "--root", str(root_b), "--plan", str(plan)]) == 2
    err = capsys.readouterr().err
    assert "is a plan of stack 'stack-a'" in err and "not of stack 'stack-b'" in err and str(tmp_path / "root-a") in err
    assert not root_b.exists()


def test_apply_refuses_a_plan_of_the_same_stack_in_another_root_or_target(tmp_path, capsys, no_side_effects):
    spec, root = write_spec(tmp_path), tmp_path / "root"
    plan = _fake_plan(tmp_path / "a.tfplan")
    record_path(plan).write_text(json.dumps({"stack": "stack-a", "target": "emulator", "root": str(tmp_path / "other")}))
    assert main(["apply", str(spec), "--root", str(root), "--plan", str(plan)]) == 2
    assert f"rendered in {tmp_path / 'other'}, not in {root}" in capsys.readouterr().err
    record_path(plan).write_text(json.dumps({"stack": "stack-a", "target": "aws", "root": str(root)}))
    assert main(["apply", str(spec), "--root", str(root), "--plan", str(plan)]) == 2
    assert "was planned for target 'aws', not 'emulator'" in capsys.readouterr().err
    assert not root.exists()


def test_a_plan_without_a_record_is_known_by_its_configuration(tmp_path, capsys, no_side_effects):
    spec, root = write_spec(tmp_path), tmp_path / "root"
    assert main(["apply", str(spec), "--root", str(root), "--plan", str(_fake_plan(tmp_path / "o.tfplan", "other"))]) == 2
    assert "is a plan of stack 'other', not of stack 'stack-a'" in capsys.readouterr().err
    assert main(["apply", str(spec), "--root", str(root), "--plan", str(_fake_plan(tmp_path / "x.tfplan", None))]) == 2
    assert "cannot tell which stack" in capsys.readouterr().err
    (tmp_path / "junk").write_text("not a plan")
    assert main(["apply", str(spec), "--root", str(root), "--plan", str(tmp_path / "junk")]) == 2
    assert "not a Terraform plan file" in capsys.readouterr().err
    assert not root.exists()


def test_apply_plan_flag_refusals(tmp_path, capsys, no_side_effects):
    spec, root = write_spec(tmp_path), tmp_path / "root"
    assert main(["apply", str(spec), "--root", str(root), "--plan", str(tmp_path / "missing.tfplan")]) == 2
    assert "error: --plan: no such plan file" in capsys.readouterr().err
    plan = _fake_plan(tmp_path / "a.tfplan")
    assert main(["apply", str(spec), "--root", str(root), "--plan", str(plan), "--recreate"]) == 2
    assert "--recreate: not with --plan" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["apply", str(spec), "--plan", str(plan), "--detailed-exitcode"])
    assert exc.value.code == 2
    assert "--detailed-exitcode: plan's and drift's option, not apply's" in capsys.readouterr().err
    assert not root.exists()


def test_usage_errors_exit_1_where_2_means_changes(tmp_path, capsys):
    spec = str(write_spec(tmp_path))
    for argv, code in ((["drift", spec, "--bogus"], 1), (["plan", spec, "--detailed-exitcode", "--bogus"], 1),
                       (["plan", spec, "--bogus"], 2)):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == code, argv
        assert "--bogus" in capsys.readouterr().err


def test_plan_out_must_be_a_file(tmp_path, capsys, no_side_effects):
    spec = write_spec(tmp_path)
    assert main(["plan", str(spec), "--out", str(tmp_path)]) == 2
    assert "--out names the saved plan's file" in capsys.readouterr().err
    # with --detailed-exitcode, 2 means changes: bad input exits 1
    assert main(["plan", str(spec), "--out", str(tmp_path), "--detailed-exitcode"]) == 1


# -- the emulator target's endpoint -----------------------------------------------------------
def test_endpoint_refusals(tmp_path, capsys, no_side_effects):
    spec, root = write_spec(tmp_path), tmp_path / "root"
    for bad in ("ftp://127.0.0.1:1", "127.0.0.1:4566", "http://127.0.0.1:4566/path", "http://127.0.0.1:99999"):
        assert main(["plan", str(spec), "--root", str(root), "--endpoint", bad]) == 2, bad
        assert "--endpoint: not an http(s) URL" in capsys.readouterr().err
    assert main(["plan", str(spec), "--root", str(root), "--target", "aws", "--endpoint", "http://127.0.0.1:4566"]) == 2
    assert "--endpoint: only the emulator target" in capsys.readouterr().err
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["plan", str(spec), "--root", str(root), "--endpoint", f"http://127.0.0.1:{port}"]) == 1
    assert f"--endpoint: nothing answers at http://127.0.0.1:{port}" in capsys.readouterr().err
    assert not root.exists()
