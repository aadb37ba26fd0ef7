"""`gpufleet run --config FILE`: what an instance runs, chosen by the config's role.

user_data starts this under systemd. The config is the resolved runtime config that infra
rendered (`infra.render.runtime_config`); the artifacts bucket comes from the environment
variable it names, because the bucket's name is only known once Terraform created it. On GCP
(`"cloud": "gcp"`) without such a variable, it is the config's own `artifacts.bucket`, else the
instance's metadata attribute `gpufleet-bucket` (runtime.gcp.metadata).
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from runtime.errors import BadInput, OperationFailed

SUPPORTED_FORMAT = 1


def load_config(path: Path) -> dict:
    try:
        config = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BadInput(f"{path}: no such runtime config") from None
    except ValueError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})") from None
    if config.get("format") != SUPPORTED_FORMAT:
        raise BadInput(f"{path}: format: unsupported runtime config format (got {config.get('format')!r}; allowed: 1)")
    if config.get("role") not in ("train", "serve"):
        raise BadInput(f"{path}: role: unknown role (got {config.get('role')!r}; allowed: train, serve)")
    artifacts = config.setdefault("artifacts", {})
    bucket_env = artifacts.get("bucket_env")
    if bucket_env:
        artifacts["bucket"] = os.environ.get(bucket_env)
    elif config.get("cloud") == "gcp":
        artifacts["bucket"] = artifacts.get("bucket") or _gce_bucket()
    else:
        artifacts["bucket"] = None
    return config


def _gce_bucket() -> str | None:
    from runtime.gcp.metadata import GceMetadata
    try:
        return GceMetadata(timeout_s=2.0).bucket()
    except OSError:  # no metadata server: not on GCE
        return None


def run_role(path: Path) -> int:
    config = load_config(path)
    module = f"runtime.{config['role']}.role"
    try:
        run_from_config = importlib.import_module(module).run_from_config
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise OperationFailed(f"the {config['role']} role needs {module}, which this build does not include") from None
        raise
    return int(run_from_config(config) or 0)
