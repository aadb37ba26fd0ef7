"""A rendered root is self-contained, deterministic to the byte, and written all-or-nothing.

The modules it calls are copied beside it (modules/aws/<name>/, called as ./modules/...):
exactly those it uses, byte for byte the package's modules, removed again when a re-render no
longer uses them. Terraform's own files in the directory are never touched.
"""

from __future__ import annotations

import copy
import importlib
import os
from pathlib import Path

import pytest
import yaml

from infra.render import render
from infra.render.modules import module_sources
from infra.spec import load_stack, parse_stack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "aws-gpu-fleet.yaml"


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def training_only():
    data = yaml.safe_load(EXAMPLE.read_text())
    data = copy.deepcopy(data)
    del data["serving"]
    return parse_stack(data)


@pytest.mark.parametrize("target, storage", [("emulator", "aws/storage/provider-v3"), ("aws", "aws/storage")])
def test_copies_exactly_the_modules_the_root_calls(tmp_path, target, storage):
    """The storage module's variant for the target's provider major, and not the other one
    (provider-v3 lives inside modules/aws/storage/ but is a module of its own)."""
    out = render(load_stack(EXAMPLE), tmp_path / "root", target=target)
    calls = module_sources((out / "main.tf").read_text())
    assert calls == ["aws/alb", "aws/gpu-asg", "aws/iam", "aws/network", storage]
    copied = sorted(p.relative_to(out / "modules").as_posix() for p in (out / "modules").rglob("*") if p.is_file())
    expected = sorted(p.relative_to(ROOT / "modules").as_posix() for c in calls
                      for p in (ROOT / "modules" / c).iterdir() if p.suffix in (".tf", ".md"))
    assert copied == expected
    for rel in copied:
        assert (out / "modules" / rel).read_bytes() == (ROOT / "modules" / rel).read_bytes(), rel


def test_rerendering_an_unchanged_spec_changes_no_byte(tmp_path):
    stack = load_stack(EXAMPLE)
    out = render(stack, tmp_path / "root")
    before = snapshot(out)
    assert any(rel.startswith("bundle/") for rel in before) and any(rel.startswith("modules/") for rel in before)
    render(load_stack(EXAMPLE), out)
    assert snapshot(out) == before  # same bytes, and not even rewritten (mtimes kept)


def test_modules_no_longer_used_are_removed_and_terraform_files_kept(tmp_path):
    out = render(load_stack(EXAMPLE), tmp_path / "root")
    (out / ".terraform").mkdir()
    (out / ".terraform" / "marker").write_text("init")
    (out / "terraform.tfstate").write_text("{}")
    assert (out / "modules" / "aws" / "alb").is_dir()
    render(training_only(), out)
    assert not (out / "modules" / "aws" / "alb").exists(), "an unused module's folder is left behind"
    assert (out / "modules" / "aws" / "gpu-asg" / "main.tf").is_file()
    assert (out / ".terraform" / "marker").read_text() == "init"
    assert (out / "terraform.tfstate").read_text() == "{}"


def test_a_failed_render_leaves_the_previous_one_untouched(tmp_path, monkeypatch):
    render_module = importlib.import_module("infra.render.render")  # the package attribute `render` is the function

    out = render(training_only(), tmp_path / "root")
    before = snapshot(out)

    def broken(main_tf):
        raise OSError("disk full while reading the modules")

    monkeypatch.setattr(render_module, "copied_modules", broken)
    with pytest.raises(OSError, match="disk full"):
        render(load_stack(EXAMPLE), out)
    assert snapshot(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".render-")], "staging left behind"


def test_a_failure_while_staging_moves_nothing_into_place(tmp_path, monkeypatch):
    from infra.render.render import write_tree

    out = tmp_path / "root"
    write_tree(out, {"a.tf": b"old a\n", "modules/m/b.tf": b"old b\n"})
    before = snapshot(out)
    real_write = Path.write_bytes

    def fail_on_second(self, data):
        if self.name.endswith("b.tf"):
            raise OSError("no space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", fail_on_second)
    with pytest.raises(OSError):
        write_tree(out, {"a.tf": b"new a\n", "modules/m/b.tf": b"new b\n"})
    monkeypatch.undo()
    assert snapshot(out) == before


def test_default_build_dir_is_under_the_current_directory(tmp_path, monkeypatch):
    from infra.render.render import default_out_dir

    stack = load_stack(EXAMPLE)
    monkeypatch.delenv("GPUFLEET_BUILD_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_out_dir(stack) == tmp_path / "build" / stack.name
    monkeypatch.setenv("GPUFLEET_BUILD_DIR", "elsewhere")
    assert default_out_dir(stack) == tmp_path / "elsewhere" / stack.name
    assert os.path.isabs(default_out_dir(stack))
