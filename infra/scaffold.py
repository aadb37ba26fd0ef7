"""`gpufleet init DIR`: the files of a user's infrastructure repository.

What it writes (from the package data under templates/init/):

    stacks/example.yaml              an example stack spec
    Makefile                         setup, validate, plan, summary, apply, drift, destroy, bootstrap
    .github/workflows/gpufleet.yml   CI calling those targets (the same file as examples/ci/github-actions.yml)
    .gitignore                       what gpufleet and Terraform write

Contract: every conflict is found before anything is written. An existing file (or a file where
a folder must go) is bad input naming each path, and nothing is written, unless `force`, which
overwrites files (never replaces a folder). Each file is written to a temporary name and renamed
into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from infra.assets import read_template
from runtime import __version__
from runtime.errors import BadInput

# destination in the user's repository -> source under templates/ (a .j2 source is rendered)
SCAFFOLD = {
    "stacks/example.yaml": "init/stack.yaml",
    "Makefile": "init/Makefile.j2",
    ".github/workflows/gpufleet.yml": "init/github-actions.yml",
    ".gitignore": "init/gitignore",
}


def scaffold_files() -> dict[str, bytes]:
    """Destination path -> bytes, with the Makefile pinned to this gpufleet's version."""
    import jinja2

    files = {}
    for dest, source in SCAFFOLD.items():
        text = read_template(source)
        if source.endswith(".j2"):
            text = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(
                text).render(version=__version__)
        files[dest] = text.encode()
    return files


def conflicts(directory: Path, files: dict[str, bytes], force: bool) -> list[str]:
    """One problem line per path that stops the scaffold; empty when it can be written."""
    problems = []
    if directory.exists() and not directory.is_dir():
        return [f"{directory}: exists and is not a directory"]
    for rel in files:
        dest = directory / rel
        for parent in reversed(dest.relative_to(directory).parents[:-1]):
            if (directory / parent).exists() and not (directory / parent).is_dir():
                problems.append(f"{directory / parent}: exists and is not a directory (gpufleet init writes {rel})")
                break
        else:
            if dest.is_dir():
                problems.append(f"{dest}: exists and is a directory (gpufleet init writes a file there)")
            elif (dest.exists() or dest.is_symlink()) and not force:
                problems.append(f"{dest}: already exists; nothing was written (--force overwrites)")
    return problems


def init(directory: Path, force: bool = False) -> list[Path]:
    """Write the scaffold into `directory` (created if missing); the paths written, in order."""
    files = scaffold_files()
    problems = conflicts(directory, files, force)
    if problems:
        raise BadInput(problems)
    written = []
    for rel, data in files.items():
        dest = directory / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(dest)
    return written
