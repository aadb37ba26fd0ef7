"""The layering, held: the import-linter contracts in pyproject.toml pass on this tree.

The contracts (see `[tool.importlinter]`): the runtime never imports `infra`; `runtime.train`
and `runtime.serve` never reach each other, even through a third module; `runtime.data` and `runtime.gcp` sit
below the roles; `infra.spec` only validates; no import cycle in `runtime/` or `infra/`.

The second test shows the check can fail: it copies the packages beside the same contracts,
breaks one layer on purpose, and expects import-linter to name it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ("runtime-stands-alone", "train-serve-apart", "data-below-roles", "gcp-below-roles", "spec-is-pure",
             "no-cycles")

pytest.importorskip("importlinter", reason="import-linter is a dev dependency (`make setup` installs it)")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """Run import-linter in `cwd` on its pyproject.toml; the packages it analyses are cwd's."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    # -I: the packages come from cwd (import-linter puts it on sys.path), never an installed copy
    return subprocess.run([sys.executable, "-I", "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_layering_contracts_are_kept():
    p = lint_imports(ROOT)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in out, out


@pytest.mark.parametrize(
    "module, line, broken",
    [
        ("runtime/store/__init__.py", "import infra.target_names", "runtime never imports infra"),
        ("runtime/data/__init__.py", "import runtime.fleet.policy", "runtime.data imports none of"),
        ("runtime/train/lifecycle.py", "import runtime.serve.metrics", "runtime.train and runtime.serve never reach"),
        ("runtime/gcp/metadata.py", "import runtime.fleet.policy", "runtime.gcp imports none of"),
        ("infra/spec/gpus.py", "import subprocess", "infra.spec validates only"),
        ("runtime/train/rules.py", "import runtime.train.config", "no import cycle"),
    ],
)
def test_a_contract_broken_on_purpose_fails(tmp_path, module, line, broken):
    for pkg in ("infra", "runtime"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # broken on purpose\n")
    p = lint_imports(tmp_path)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "1 broken" in out, out
    assert any(broken in ln and ln.rstrip().endswith("BROKEN") for ln in out.splitlines()), out
