"""The distribution's configuration: every package listed, every template and module shipped.

pyproject.toml lists packages by name (find cannot discover the packages mapped from
templates/ and modules/), so these tests fail when a package folder or a data file would be
left out of the wheel. tests/e2e/test_installed_wheel.py builds and installs the real wheel.
"""

from __future__ import annotations

import glob
import os
import tomllib
from pathlib import Path

from setuptools import find_packages

from infra.assets import ASSET_PACKAGES, MODULES_PACKAGE, TEMPLATES_PACKAGE, module_files, read_template, templates

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_is_listed():
    code = find_packages(str(ROOT), include=["infra", "infra.*", "runtime", "runtime.*"])
    assert sorted(CONFIG["packages"]) == sorted(code + list(ASSET_PACKAGES))


def test_asset_packages_map_onto_the_top_level_folders():
    assert CONFIG["package-dir"] == {TEMPLATES_PACKAGE: "templates", MODULES_PACKAGE: "modules"}
    for folder in ("templates", "modules"):
        assert (ROOT / folder / "__init__.py").is_file(), f"{folder}/ must be a package for the editable install"


def test_every_template_and_module_file_is_package_data():
    for package, folder in CONFIG["package-dir"].items():
        base = ROOT / folder
        shipped = {os.path.relpath(p, base) for pattern in CONFIG["package-data"][package]
                   for p in glob.glob(str(base / pattern), recursive=True) if os.path.isfile(p)}
        present = {p.relative_to(base).as_posix() for p in base.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and p.name != "__init__.py"}
        assert present - shipped == set(), f"{folder}/ files that would not be in the wheel"


def test_assets_are_read_through_the_package():
    assert read_template("aws/main.tf.j2").startswith("{#")
    assert Path(str(templates())).resolve() == ROOT / "templates"  # this checkout's, via the editable install
    assert set(module_files("aws/network")) == {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"}
