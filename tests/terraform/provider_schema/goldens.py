"""The golden roots (tests/render/golden/*) that target GCP, made whole for Terraform.

A golden folder holds the rendered root without the modules it copies in: `modules.sha256`
lists them (path and hash, sha256sum's format) and test_golden.py holds those hashes to the
repository's `modules/`. `materialize` puts the listed files back, from the repository, so
the root can be validated as it would be rendered.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

_GOOGLE_SOURCE = re.compile(r'source\s*=\s*"(?:registry\.terraform\.io/)?hashicorp/google"')
_GOOGLE_RESOURCE = re.compile(r'^\s*(?:resource|data)\s+"google_', re.MULTILINE)
_GCP_MODULE = re.compile(r'source\s*=\s*"\./modules/gcp/')


def gcp_golden_roots(golden_dir: Path) -> list[Path]:
    """Golden roots whose providers.tf requires hashicorp/google."""
    return sorted(d for d in Path(golden_dir).iterdir() if requires_google(d))


def requires_google(root: Path) -> bool:
    providers = Path(root) / "providers.tf"
    return providers.is_file() and bool(_GOOGLE_SOURCE.search(providers.read_text()))


def uses_google(root: Path) -> bool:
    """A second opinion, independent of providers.tf: a google_ resource or data source in the
    root, a call of a GCP module, or a GCP module copied in (modules.sha256)."""
    listed = root / "modules.sha256"
    return any(_GOOGLE_RESOURCE.search(text) or _GCP_MODULE.search(text)
               for text in (p.read_text() for p in root.glob("*.tf"))) or (
        listed.is_file() and " modules/gcp/" in listed.read_text())


def materialize(golden: Path, repo: Path, dest: Path) -> Path:
    """A copy of `golden` at `dest` with the modules its modules.sha256 lists copied from `repo`."""
    shutil.copytree(golden, dest, ignore=shutil.ignore_patterns("modules.sha256"))
    listed = golden / "modules.sha256"
    for line in (listed.read_text().splitlines() if listed.is_file() else []):
        rel = line.split(maxsplit=1)[1]
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, dest / rel)
    return dest
