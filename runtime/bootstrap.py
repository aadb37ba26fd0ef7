"""The instance bootstrap: from a fresh VM to a started gpufleet unit, one logged step at a time.

Run as `python3 /opt/gpufleet/bootstrap.py` with the image's own Python, before gpufleet is
installed: this file therefore imports the standard library only, and nothing from `runtime`
(it is a module of the package so that it ships in the wheel and is linted and tested with
it, but it must also run as a lone script).

Steps, in order; each prints one line with its duration to the console (`/dev/console` when
writable, else stderr) and to the log file, e.g. `gpufleet-bootstrap: fetch bundle ok (1.42 s)`:

1. read config: /etc/gpufleet/runtime.json (rendered by gpufleet) and /etc/gpufleet/env
   (GPUFLEET_BUCKET, GPUFLEET_ROLE, GPUFLEET_BUNDLE_SHA256).
2. read metadata: the instance id (AWS: IMDSv2 token then `meta-data/instance-id`; GCP:
   `instance/id` with `Metadata-Flavor: Google`). The metadata source is the only difference
   between the clouds; a service that does not answer within the timeout fails the boot.
3. fetch bundle: the wheel and requirements.txt from the artifacts bucket into /opt/gpufleet.
4. verify bundle: sha256 over the bundle files' bytes, concatenated in name order (the
   renderer's definition in infra/render/render.py) must equal GPUFLEET_BUNDLE_SHA256.
5. create venv, 6. install: `pip install --no-index --find-links /opt/gpufleet/wheelhouse`
   when that folder exists (nothing leaves the VPC), else from the package index as before.
   With `bundle.index_url` set, 3-4 are skipped and `gpufleet==VERSION` comes from that index.
7. write unit: /etc/systemd/system/gpufleet-ROLE.service. 8. start: `systemctl daemon-reload`
   and `systemctl enable --now`.

A failed step prints ONE line naming the problem (`gpufleet-bootstrap: verify bundle FAILED:
...`), marks the instance unhealthy where the cloud needs it, exits 1, and starts nothing:
the unit is written and started only after every earlier step succeeded.

Fetching. AWS: through the image's AWS CLI (`aws s3 cp`), which AWS GPU images (Deep Learning
AMIs, Amazon Linux) carry; signing S3 requests (SigV4) by hand in the standard library would
be code to keep correct for one case, and boto3 is not on the image before the install. An
image without the CLI fails the fetch step with that reason. GCP: Cloud Storage's JSON API over
urllib with the VM's service-account token from the metadata server (no gcloud needed).

Unhealthy. AWS: `aws autoscaling set-instance-health --health-status Unhealthy` (CLI when
present, else boto3 when importable) so the group replaces the instance at once instead of
waiting for the load balancer's health check. GCP: nothing extra; the managed instance group's
auto-healing on /readyz replaces an instance whose runtime never answers.

Everything that touches the machine is injectable (`Boot`): the root folder prefix, the
Python that creates the venv, the systemctl command, the fetch function, the unhealthy
transport, the metadata URL and timeout, the console. Tests run the real steps in a temp dir.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

PREFIX = "gpufleet-bootstrap:"
AWS_METADATA = "http://169.254.169.254"
GCP_METADATA = "http://metadata.google.internal/computeMetadata/v1"
STOP_TIMEOUT_S = 90

# fetch(bucket, key, dest) downloads one object; mark(instance_id, region) reports unhealthy.
Fetch = Callable[[str, str, Path], None]
MarkUnhealthy = Callable[[str, str], None]


class StepFailed(Exception):
    """A step's one-line reason; the bootstrap prints it and exits 1."""


@dataclasses.dataclass
class Boot:
    """Where and with what the bootstrap runs; the defaults are a real instance's."""

    root: Path = Path("/")
    python: str = sys.executable
    systemctl: tuple[str, ...] = ("systemctl",)
    fetch: Fetch | None = None  # None: the cloud's default (aws CLI or GCS JSON API)
    mark_unhealthy: MarkUnhealthy | None = None  # None: the cloud's default
    metadata_url: str | None = None  # None: the cloud's metadata server
    metadata_timeout_s: float = 5.0
    console: Path | None = Path("/dev/console")  # None or unwritable: stderr
    stop_timeout_s: int = STOP_TIMEOUT_S

    def path(self, instance_path: str) -> Path:
        return self.root / instance_path.lstrip("/")


class Log:
    """One line per step to the console and the log file."""

    def __init__(self, boot: Boot):
        self.file = boot.path("/var/log/gpufleet-bootstrap.log")
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.console = boot.console

    def line(self, text: str) -> None:
        text = f"{PREFIX} {text}"
        with open(self.file, "a", encoding="utf-8") as f:
            f.write(text + "\n")
        try:
            if self.console is None:
                raise OSError("no console")
            with open(self.console, "a", encoding="utf-8") as c:
                c.write(text + "\n")
        except OSError:
            print(text, file=sys.stderr, flush=True)


# --- steps -----------------------------------------------------------------------------------

def read_config(boot: Boot) -> tuple[dict, dict]:
    """(runtime config, env): a config that does not parse is named with the line and column."""
    path = boot.path("/etc/gpufleet/runtime.json")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise StepFailed(f"cannot read {path}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise StepFailed(f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    if not isinstance(config, dict) or not isinstance(config.get("bundle"), dict):
        raise StepFailed(f"{path} has no 'bundle' object")
    for key in ("wheel", "requirements"):
        if not isinstance(config["bundle"].get(key), str):
            raise StepFailed(f"{path}: bundle.{key} must be a string")
    env = {}
    env_path = boot.path("/etc/gpufleet/env")
    try:
        for raw in env_path.read_text(encoding="utf-8").splitlines():
            key, sep, value = raw.partition("=")
            if sep:
                env[key.strip()] = value.strip()
    except OSError as e:
        raise StepFailed(f"cannot read {env_path}: {e.strerror}") from e
    for key in ("GPUFLEET_ROLE", "GPUFLEET_BUNDLE_SHA256"):
        if not env.get(key):
            raise StepFailed(f"{env_path} has no {key}")
    if not re.fullmatch(r"[a-z]+", env["GPUFLEET_ROLE"]):
        raise StepFailed(f"{env_path}: GPUFLEET_ROLE must be lowercase letters (got {env['GPUFLEET_ROLE']!r})")
    return config, env


def _http(req: urllib.request.Request, what: str, timeout_s: float) -> str:
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.read().decode().strip()
    except (socket.timeout, TimeoutError) as e:
        raise StepFailed(f"{what} did not answer within {timeout_s:g} s") from e
    except urllib.error.HTTPError as e:
        raise StepFailed(f"{what} answered HTTP {e.code}") from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise StepFailed(f"{what} did not answer within {timeout_s:g} s") from e
        raise StepFailed(f"{what} unreachable: {e.reason}") from e


def instance_id(cloud: str, url: str, timeout_s: float) -> str:
    """The instance id from the metadata server at `url` (IMDSv2 on AWS)."""
    what = f"instance metadata at {url}"
    if cloud == "gcp":
        req = urllib.request.Request(f"{url}/instance/id", headers={"Metadata-Flavor": "Google"})
        return _http(req, what, timeout_s)
    token = _http(urllib.request.Request(f"{url}/latest/api/token", method="PUT",
                                         headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"}), what, timeout_s)
    return _http(urllib.request.Request(f"{url}/latest/meta-data/instance-id",
                                        headers={"X-aws-ec2-metadata-token": token}), what, timeout_s)


def aws_cli_fetch(bucket: str, key: str, dest: Path) -> None:
    """s3://bucket/key -> dest through the image's AWS CLI."""
    if shutil.which("aws") is None:
        raise StepFailed("no aws CLI on this image (the AWS bootstrap fetches with it)")
    proc = subprocess.run(["aws", "s3", "cp", "--only-show-errors", f"s3://{bucket}/{key}", str(dest)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise StepFailed(f"aws s3 cp s3://{bucket}/{key}: {_last_line(proc.stderr)}")


def gcs_fetch(metadata_url: str, timeout_s: float) -> Fetch:
    """gs://bucket/key -> dest over the JSON API with the service account's token."""
    def fetch(bucket: str, key: str, dest: Path) -> None:
        token_req = urllib.request.Request(f"{metadata_url}/instance/service-accounts/default/token",
                                           headers={"Metadata-Flavor": "Google"})
        token = json.loads(_http(token_req, f"instance metadata at {metadata_url}", timeout_s))["access_token"]
        url = (f"https://storage.googleapis.com/storage/v1/b/{bucket}/o/"
               f"{urllib.parse.quote(key, safe='')}?alt=media")
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(req, timeout=300) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except OSError as e:
            raise StepFailed(f"gs://{bucket}/{key}: {e}") from e
    return fetch


def bundle_digest(files: list[Path]) -> str:
    """sha256 over the files' bytes concatenated in name order: infra/render/render.py's digest."""
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def verify(files: list[Path], expected: str) -> None:
    got = bundle_digest(files)
    if got != expected.lower():
        names = " + ".join(sorted(p.name for p in files))
        raise StepFailed(f"sha256 of {names} is {got} (expected {expected})")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def condense_pip_error(output: str) -> str:
    """pip's failure as one line: the requirement it could not find, else its last ERROR line."""
    m = re.search(r"No matching distribution found for (\S+)", output)
    if m:
        return f"no wheel for {m.group(1)} in the wheelhouse or index"
    errors = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("ERROR:")]
    return errors[-1] if errors else _last_line(output)


def pip_install(pip: Path, args: list[str]) -> None:
    proc = subprocess.run([str(pip), "install", "--disable-pip-version-check", "--no-input", *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise StepFailed(condense_pip_error(proc.stdout + "\n" + proc.stderr))


def unit_text(boot: Boot, role: str) -> str:
    """The systemd unit; paths are the bootstrap's own (under `root`), so a stand-in can run it."""
    return f"""[Unit]
Description=gpufleet {role} runtime
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile={boot.path('/etc/gpufleet/env')}
ExecStart={boot.path('/opt/gpufleet/venv/bin/gpufleet')} run --config {boot.path('/etc/gpufleet/runtime.json')}
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec={boot.stop_timeout_s}

[Install]
WantedBy=multi-user.target
"""


def aws_mark_unhealthy(run: Callable = subprocess.run, which: Callable = shutil.which) -> MarkUnhealthy:
    """The AWS transport: the CLI when present, else boto3 when importable, else a clear error."""
    def mark(instance: str, region: str) -> None:
        if which("aws"):
            proc = run(["aws", "autoscaling", "set-instance-health", "--region", region, "--instance-id", instance,
                        "--health-status", "Unhealthy", "--no-should-respect-grace-period"],
                       capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(_last_line(proc.stderr))
            return
        try:
            import boto3  # noqa: PLC0415 (only on images that ship it)
        except ImportError as e:
            raise RuntimeError("neither the aws CLI nor boto3 is on this image") from e
        boto3.client("autoscaling", region_name=region).set_instance_health(
            InstanceId=instance, HealthStatus="Unhealthy", ShouldRespectGracePeriod=False)
    return mark


# --- the run ---------------------------------------------------------------------------------

class _Steps:
    def __init__(self, log: Log):
        self.log = log

    def __call__(self, name: str, fn: Callable, *args):
        start = time.monotonic()
        try:
            result = fn(*args)
        except StepFailed as e:
            raise StepFailed(f"{name} FAILED: {e}") from e
        except (OSError, subprocess.SubprocessError) as e:
            raise StepFailed(f"{name} FAILED: {e}") from e
        except Exception as e:  # noqa: BLE001 (still one line and no start, never a traceback)
            raise StepFailed(f"{name} FAILED: {type(e).__name__}: {e}") from e
        self.log.line(f"{name} ok ({time.monotonic() - start:.2f} s)")
        return result


def run(boot: Boot) -> int:
    """Run every step; 0 when the unit was started, 1 after one FAILED line (nothing started)."""
    log = Log(boot)
    step = _Steps(log)
    cloud, region, instance = "aws", "", None
    try:
        config, env = step("read config", read_config, boot)
        cloud, region = config.get("cloud", "aws"), config.get("region", "")
        role = env["GPUFLEET_ROLE"]
        meta_url = boot.metadata_url or (GCP_METADATA if cloud == "gcp" else AWS_METADATA)
        instance = step("read metadata", instance_id, cloud, meta_url, boot.metadata_timeout_s)
        opt = boot.path("/opt/gpufleet")
        opt.mkdir(parents=True, exist_ok=True)
        bundle = config["bundle"]
        index_url = bundle.get("index_url")
        files: list[Path] = []
        if not index_url:
            fetch = boot.fetch or (gcs_fetch(meta_url, boot.metadata_timeout_s) if cloud == "gcp" else aws_cli_fetch)
            bucket = env.get("GPUFLEET_BUCKET", "")
            files = [opt / Path(bundle[k]).name for k in ("wheel", "requirements")]

            def fetch_all() -> None:
                for k, dest in zip(("wheel", "requirements"), files):
                    fetch(bucket, bundle[k], dest)
            step("fetch bundle", fetch_all)
            step("verify bundle", verify, files, env["GPUFLEET_BUNDLE_SHA256"])
        venv = opt / "venv"
        step("create venv", _create_venv, boot.python, venv)
        step("install", _install, venv / "bin" / "pip", opt / "wheelhouse", files, index_url, config)
        unit = boot.path(f"/etc/systemd/system/gpufleet-{role}.service")
        step("write unit", _write, unit, unit_text(boot, role))
        step("start", _start, boot.systemctl, f"gpufleet-{role}.service")
    except StepFailed as e:
        log.line(str(e))
        _report_unhealthy(boot, log, cloud, instance, region)
        return 1
    log.line(f"{role} runtime started")
    return 0


def _create_venv(python: str, venv: Path) -> None:
    proc = subprocess.run([python, "-m", "venv", str(venv)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise StepFailed(f"{python} -m venv: {_last_line(proc.stderr)}")


def _install(pip: Path, wheelhouse: Path, files: list[Path], index_url: str | None, config: dict) -> None:
    if index_url:
        version = Path(config["bundle"]["wheel"]).name.split("-")[1]
        pip_install(pip, ["--upgrade", "pip"])
        pip_install(pip, ["--index-url", index_url, f"gpufleet=={version}"])
        return
    wheel, requirements = files
    if wheelhouse.is_dir():
        pip_install(pip, ["--no-index", "--find-links", str(wheelhouse), "-r", str(requirements), str(wheel)])
    else:
        pip_install(pip, ["--upgrade", "pip"])
        pip_install(pip, ["-r", str(requirements), str(wheel)])


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _start(systemctl: tuple[str, ...], unit: str) -> None:
    for args in (["daemon-reload"], ["enable", "--now", unit]):
        proc = subprocess.run([*systemctl, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise StepFailed(f"systemctl {' '.join(args)}: {_last_line(proc.stderr)}")


def _report_unhealthy(boot: Boot, log: Log, cloud: str, instance: str | None, region: str) -> None:
    """AWS: tell the group now. GCP: nothing; auto-healing on /readyz replaces the instance."""
    if cloud == "gcp":
        return
    if instance is None:
        log.line("not marked unhealthy: no instance id (the load balancer's health check will replace it)")
        return
    mark = boot.mark_unhealthy or aws_mark_unhealthy()
    try:
        mark(instance, region)
        log.line(f"marked {instance} unhealthy")
    except Exception as e:  # noqa: BLE001 (the boot has failed already; say why it was not marked)
        log.line(f"could not mark {instance} unhealthy: {e}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bootstrap.py", description=__doc__.split("\n")[0])
    ap.add_argument("--root", default="/", help="folder the instance paths are under (tests)")
    ap.add_argument("--stop-timeout-s", type=int, default=STOP_TIMEOUT_S, help="the unit's TimeoutStopSec")
    ap.add_argument("--metadata-url", default=None)
    ap.add_argument("--metadata-timeout-s", type=float, default=5.0)
    ap.add_argument("--console", default="/dev/console", help="console device; '-' for stderr only")
    a = ap.parse_args(argv)
    return run(Boot(root=Path(a.root), stop_timeout_s=a.stop_timeout_s, metadata_url=a.metadata_url,
                    metadata_timeout_s=a.metadata_timeout_s, console=None if a.console == "-" else Path(a.console)))


if __name__ == "__main__":
    sys.exit(main())
