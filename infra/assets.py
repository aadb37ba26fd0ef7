"""gpufleet's package data: the jinja2 templates and the Terraform modules, read-only.

The repository keeps them in its top-level templates/ and modules/ folders; pyproject.toml
maps those folders into the distribution as the packages `infra._templates` and
`infra._modules`, so a checkout, an editable install and an installed wheel all read them
through importlib.resources, by package name, never by a path relative to this file.

Contract: nothing here writes. Whoever needs files on disk (a rendered root's modules, a
scaffolded repository) copies them out, under the user's current directory.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

TEMPLATES_PACKAGE = "infra._templates"
MODULES_PACKAGE = "infra._modules"
ASSET_PACKAGES = (TEMPLATES_PACKAGE, MODULES_PACKAGE)
# What a Terraform module folder ships (its README documents inputs and outputs).
MODULE_SUFFIXES = (".tf", ".md")


def _child(root: Traversable, rel: str) -> Traversable:
    """root / "a/b/c", one part at a time (Traversable.joinpath takes one part on Python 3.10)."""
    return functools.reduce(lambda node, part: node.joinpath(part), rel.split("/"), root)


def templates() -> Traversable:
    return importlib.resources.files(TEMPLATES_PACKAGE)


def modules() -> Traversable:
    return importlib.resources.files(MODULES_PACKAGE)


def read_template(name: str) -> str:
    """The text of templates/<name> ("aws/main.tf.j2"); FileNotFoundError when absent."""
    node = _child(templates(), name)
    if not node.is_file():
        raise FileNotFoundError(f"no template {name!r} in {TEMPLATES_PACKAGE}")
    return node.read_text(encoding="utf-8")


def template_loader():
    """A jinja2 loader over the packaged templates (names like "aws/main.tf.j2")."""
    import jinja2

    def load(name: str):
        try:
            pieces = jinja2.loaders.split_template_path(name)  # refuses "..", like FileSystemLoader
            return read_template("/".join(pieces)), None, lambda: True
        except FileNotFoundError:
            return None

    return jinja2.FunctionLoader(load)


def tree(root: Traversable, prefix: str = "") -> dict[str, bytes]:
    """Relative path -> bytes of every file under `root`, sorted, without Python's own files."""
    files: dict[str, bytes] = {}
    for node in sorted(root.iterdir(), key=lambda n: n.name):
        rel = prefix + node.name
        if node.is_dir():
            if node.name != "__pycache__":
                files.update(tree(node, rel + "/"))
        elif not node.name.endswith((".py", ".pyc")):
            files[rel] = node.read_bytes()
    return files


def module_files(source: str) -> dict[str, bytes]:
    """The files of one module ("aws/network"), by name: its .tf files and README.md.

    Raises ValueError for a module gpufleet does not ship (a template naming a wrong source).
    """
    node = _child(modules(), source)
    if not node.is_dir():
        raise ValueError(f"no Terraform module {source!r} in {MODULES_PACKAGE}")
    return {rel: data for rel, data in tree(node).items() if rel.endswith(MODULE_SUFFIXES) and "/" not in rel}
