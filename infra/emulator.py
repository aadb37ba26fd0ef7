"""The AWS emulator: a moto server on 127.0.0.1 that gpufleet starts, records and stops.

State lives in build/emulator.json under the current directory (`infra.build_dir()`: pid,
port, run id). Each start gets a new run id: moto keeps everything in memory, so a Terraform
state file written during one run describes resources that no longer exist after a restart.
`infra.targets` records the run id next to each stack's state to detect exactly that.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import infra
from runtime.errors import OperationFailed
from runtime.process import pid_alive
from runtime.store import write_json

HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0
# moto knows a few dozen stock AMIs; a stack's default image lookup (the Deep Learning AMI)
# must find one too, so the emulator is seeded with an image of that name.
SEED_GPU_AMI = {
    "ami_id": "ami-0abc1ee7000000001",
    "state": "available",
    "public": True,
    "owner_id": "898082745236",
    "image_location": "amazon/gpufleet-emulator-dlami",
    "root_device_type": "ebs",
    "root_device_name": "/dev/sda1",
    "description": "Stand-in for the Deep Learning AMI, seeded by gpufleet into the emulator",
    "image_type": "machine",
    "architecture": "x86_64",
    "name": "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.7 (Ubuntu 22.04) 20261101",
    "virtualization_type": "hvm",
    "hypervisor": "xen",
    # no creation_date: moto parses it in place in a shared list, so a second region's
    # backend would be handed a datetime and fail (every call in that region answers 500)
}


def _seed_amis(build_dir: Path) -> Path:
    """moto's stock AMIs plus the GPU AMI stand-in, as a file for MOTO_AMIS_PATH."""
    import gzip
    import pkgutil

    stock = json.loads(gzip.decompress(pkgutil.get_data("moto.ec2", "resources/amis.json.gz")))
    path = build_dir / "emulator-amis.json"
    path.write_text(json.dumps([*stock, SEED_GPU_AMI]))
    return path


@dataclass
class EmulatorInfo:
    pid: int
    port: int
    run_id: str
    started_at: float
    log: str

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"


def _state_file(build_dir: Path) -> Path:
    return build_dir / "emulator.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    """Whether moto answers on `port`. Asks /moto-api/config, which is cheap and always works:
    /moto-api/data.json serializes every resource and answers 500 once a launch template has a
    second version (moto 5.2), which would make a live emulator look dead and be restarted."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/moto-api/config", timeout=2.0) as resp:
            return resp.status in (200, 201)
    except (urllib.error.URLError, OSError):
        return False


def _record(build_dir: Path) -> EmulatorInfo | None:
    path = _state_file(build_dir)
    try:
        return EmulatorInfo(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None


def status(build_dir: Path | None = None) -> EmulatorInfo | None:
    """The running emulator if it answers, else None. A record whose process is gone is removed;
    one whose process lives but does not answer is kept, so `stop` can still end it by pid."""
    build_dir = build_dir or infra.build_dir()
    info = _record(build_dir)
    if info is None:
        return None
    if not pid_alive(info.pid):
        _state_file(build_dir).unlink(missing_ok=True)
        return None
    return info if _answers(info.port) else None


def start(build_dir: Path | None = None) -> tuple[EmulatorInfo, bool]:
    """Start the emulator unless one is running; (info, started_now)."""
    build_dir = build_dir or infra.build_dir()
    running = status(build_dir)
    if running:
        return running, False
    stop(build_dir)  # a recorded emulator that no longer answers
    build_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = build_dir / "emulator.log"
    env = {**os.environ, "MOTO_AMIS_PATH": str(_seed_amis(build_dir))}
    with open(log, "ab") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this command; stopped by pid with `emulator stop`
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OperationFailed(f"the emulator exited at start (code {proc.returncode}); see {log}")
        if _answers(port):
            info = EmulatorInfo(proc.pid, port, uuid.uuid4().hex[:12], time.time(), str(log))
            write_json(_state_file(build_dir), asdict(info))
            return info, True
        time.sleep(0.1)
    proc.kill()
    raise OperationFailed(f"the emulator did not answer within {START_TIMEOUT_S:.0f} s; see {log}")


def stop(build_dir: Path | None = None) -> bool:
    """Stop the recorded emulator by pid, answering or not; False if none was running."""
    build_dir = build_dir or infra.build_dir()
    info = _record(build_dir)
    _state_file(build_dir).unlink(missing_ok=True)
    if info is None or not pid_alive(info.pid):
        return False
    try:
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pid_alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(info.pid):
            os.kill(info.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True
