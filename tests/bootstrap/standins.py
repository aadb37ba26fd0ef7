"""What an instance runs instead of systemd and, where this machine has none, the AWS CLI.

`write_tools(folder, python)` writes `systemctl` and `aws` there; tests/bootstrap/netns.py puts
them on the instance's PATH (`aws`) and over /usr/bin/systemctl. They are scripts run by
`python` (this machine's), so they need nothing installed on the instance.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# A systemd stand-in: `daemon-reload`, `enable --now UNIT`, `start`, `stop`, `is-active`, and
# `status` (the exit code once the unit ended). It runs the unit's ExecStart with its
# EnvironmentFile and Environment under a supervisor that records the exit code, and stops it
# with its KillSignal (to the process group, as KillMode=control-group would), then SIGKILL after
# TimeoutStopSec. No restarts (Restart= is ignored): a test wants to see how the unit ended.
SYSTEMCTL = r'''#!@PYTHON@
"""systemctl stand-in (tests/bootstrap/standins.py): runs units as supervised process groups."""
import os, shlex, signal, subprocess, sys, time
STATE = "/var/lib/systemctl-standin"
UNITS = "/etc/systemd/system"


def parse(unit):
    service, env = {}, {}
    section = None
    for line in open(os.path.join(UNITS, unit)):
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            service.setdefault(key, []).append(value)
    for path in service.get("EnvironmentFile", []):
        for raw in open(path.lstrip("-")):
            k, sep, v = raw.strip().partition("=")
            if sep and not k.startswith("#"):
                env[k] = v
    for item in service.get("Environment", []):
        for pair in shlex.split(item):
            k, _, v = pair.partition("=")
            env[k] = v
    return service, env


def start(unit):
    service, env = parse(unit)
    os.makedirs(STATE, exist_ok=True)
    log = open(os.path.join("/var/log", unit + ".log"), "ab")
    sup = subprocess.Popen([sys.executable, __file__, "__supervise", unit], stdin=subprocess.DEVNULL,
                           stdout=log, stderr=log, start_new_session=True, env={**os.environ, **env})
    with open(os.path.join(STATE, unit + ".supervisor"), "w") as f:
        f.write(str(sup.pid))


def supervise(unit):
    service, _ = parse(unit)
    argv = shlex.split(service["ExecStart"][-1])
    proc = subprocess.Popen(argv, start_new_session=True)
    with open(os.path.join(STATE, unit + ".pid"), "w") as f:
        f.write(str(proc.pid))
    code = proc.wait()
    with open(os.path.join(STATE, unit + ".status"), "w") as f:
        f.write(str(code))


def pid_of(unit):
    try:
        return int(open(os.path.join(STATE, unit + ".pid")).read())
    except (OSError, ValueError):
        return None


def active(unit):
    return pid_of(unit) is not None and not os.path.exists(os.path.join(STATE, unit + ".status"))


def stop(unit):
    service, _ = parse(unit)
    pid = pid_of(unit)
    if pid is None or not active(unit):
        return
    sig = getattr(signal, service.get("KillSignal", ["SIGTERM"])[-1])
    timeout = float(service.get("TimeoutStopSec", ["90"])[-1])
    os.killpg(pid, sig)
    deadline = time.monotonic() + timeout
    while active(unit) and time.monotonic() < deadline:
        time.sleep(0.1)
    if active(unit):
        os.killpg(pid, signal.SIGKILL)


def main(argv):
    if argv[0] == "__supervise":
        return supervise(argv[1])
    args = [a for a in argv if not a.startswith("-")]
    verb, units = args[0], args[1:]
    if verb == "daemon-reload":
        return 0
    if verb in ("start", "restart") or (verb == "enable" and "--now" in argv):
        for u in units:
            if verb == "restart":
                stop(u)
            start(u)
        return 0
    if verb == "enable":
        return 0
    if verb == "stop":
        for u in units:
            stop(u)
        return 0
    if verb == "is-active":
        return 0 if all(active(u) for u in units) else 3
    if verb == "status":
        for u in units:
            path = os.path.join(STATE, u + ".status")
            print(u, "active" if active(u) else ("exited " + open(path).read() if os.path.exists(path) else "inactive"))
        return 0
    print("systemctl stand-in: unsupported:", " ".join(argv), file=sys.stderr)
    return 1


sys.exit(main(sys.argv[1:]) or 0)
'''

# An `aws` stand-in for machines without the AWS CLI: the commands the bootstrap runs
# (`s3 cp s3://B/K DEST`, with `--recursive` for a prefix, `autoscaling set-instance-health`), done with boto3.
AWS_STANDIN = r'''#!@PYTHON@
"""aws CLI stand-in (tests/bootstrap/standins.py): s3 cp [--recursive], autoscaling set-instance-health."""
import os, sys
import boto3
args = [a for a in sys.argv[1:] if a not in ("--only-show-errors", "--no-should-respect-grace-period")]
if args[:2] == ["s3", "cp"] and "--recursive" in args:
    src, dest = [a for a in args[2:] if a != "--recursive"]
    bucket, _, prefix = src[5:].partition("/")
    s3 = boto3.client("s3")
    os.makedirs(dest, exist_ok=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            path = os.path.join(dest, o["Key"][len(prefix):].lstrip("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            s3.download_file(bucket, o["Key"], path)
elif args[:2] == ["s3", "cp"] and args[2].startswith("s3://"):
    bucket, _, key = args[2][5:].partition("/")
    try:
        boto3.client("s3").download_file(bucket, key, args[3])
    except Exception as e:
        sys.exit(f"fatal error: {e}")
elif args[:2] == ["autoscaling", "set-instance-health"]:
    opts = dict(zip(args[2::2], args[3::2]))
    boto3.client("autoscaling", region_name=opts.get("--region") or None).set_instance_health(
        InstanceId=opts["--instance-id"], HealthStatus=opts["--health-status"], ShouldRespectGracePeriod=False)
else:
    sys.exit("aws stand-in: unsupported: " + " ".join(sys.argv[1:]))
'''



def write_tools(folder: Path, python: str) -> Path:
    """The instance's stand-ins: systemctl, and `aws` (the real CLI when this machine has one)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "systemctl").write_text(SYSTEMCTL.replace("@PYTHON@", python))
    real = shutil.which("aws")
    if real and subprocess.run([real, "--version"], capture_output=True).returncode == 0:
        # The real CLI, without the instance's PYTHONPATH (the image's packages are not its own).
        (folder / "aws").write_text(f"#!/bin/sh\nunset PYTHONPATH\nexec {real} \"$@\"\n")
    else:
        (folder / "aws").write_text(AWS_STANDIN.replace("@PYTHON@", python))
    for name in ("systemctl", "aws"):
        (folder / name).chmod(0o755)
    return folder

