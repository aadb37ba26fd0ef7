"""The modules a rendered root calls, copied beside it so the root stands alone.

A root's main.tf calls its modules as `source = "./modules/aws/<name>"`; rendering copies
exactly those modules from the package data (`infra.assets`) to `<root>/modules/aws/<name>/`.
The rendered directory is then a complete Terraform configuration: it can be committed,
reviewed, and run by plain `terraform` or `tofu` on a machine without gpufleet.

Which modules a root uses is read from the rendered main.tf itself, so the template stays the
one place that decides it.
"""

from __future__ import annotations

import re

from infra.assets import module_files

MODULES_DIR = "modules"
SOURCE_PREFIX = "./" + MODULES_DIR
_LOCAL_SOURCE = re.compile(r'^\s*source\s*=\s*"(\.\.?/[^"]*)"', re.MULTILINE)


def module_sources(main_tf: str) -> list[str]:
    """The local modules ("aws/network", ...) that a rendered main.tf calls, sorted, once each.

    Every local source must be `./modules/<path>`: anything else would point outside the root
    (a template error, raised as ValueError rather than rendered).
    """
    sources = set()
    for source in _LOCAL_SOURCE.findall(main_tf):
        if not source.startswith(SOURCE_PREFIX + "/") or ".." in source.split("/"):
            raise ValueError(f"module source {source!r} is not inside the root's {SOURCE_PREFIX}/")
        sources.add(source[len(SOURCE_PREFIX) + 1:])
    return sorted(sources)


def copied_modules(main_tf: str) -> dict[str, bytes]:
    """Root-relative path -> bytes of every module file the root needs ("modules/aws/alb/main.tf")."""
    files: dict[str, bytes] = {}
    for source in module_sources(main_tf):
        for name, data in module_files(source).items():
            files[f"{MODULES_DIR}/{source}/{name}"] = data
    return files
