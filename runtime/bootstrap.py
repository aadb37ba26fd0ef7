"""The instance bootstrap: from a fresh VM to a started gpufleet unit, one logged step at a time.

Run as `python3 /opt/gpufleet/bootstrap.py` with the image's own Python, before gpufleet is
installed: this file therefore imports the standard library only, and nothing from `runtime`
(it is a module of the package so that it ships in the wheel and is linted and tested with
it, but it must also run as a lone script).

Steps, in order; each prints one line with its duration to the console (`/dev/console` when
writable, else stderr) and to the log file, e.g. `gpufleet-bootstrap: fetch bundle ok (1.42 s)`:

1. read config: /etc/gpufleet/runtime.json (rendered by gpufleet) and /etc/gpufleet/env
   (GPUFLEET_BUCKET, GPUFLEET_ROLE, GPUFLEET_BUNDLE_SHA256; GPUFLEET_GROUP on AWS).
2. read metadata: the instance id (AWS: IMDSv2 token then `meta-data/instance-id`; GCP:
   `instance/id` with `Metadata-Flavor: Google`), and with a warm pool (AWS) the target
   lifecycle state (`meta-data/autoscaling/target-lifecycle-state`). The metadata source is the
   only difference between the clouds; a service that does not answer fails the boot.
3. fetch bundle: the wheel, requirements.txt and, when `bundle.wheelhouse` is set, the
   wheelhouse's hashed manifest (requirements.hashes.txt) from the artifacts bucket.
4. verify bundle: sha256 over those files' bytes, concatenated in order of their names (the
   renderer's definition, infra.bundle.digest) must equal GPUFLEET_BUNDLE_SHA256: a tampered
   wheel or manifest stops here.
5. create venv: with the image's Python (`bundle.torch.image_python`; with the wheelhouse
   policy the Python running this file when the image has none). `bundle.torch.policy`
   use_image_torch adds `--system-site-packages` and a .pth naming that Python's
   purelib/platlib (sysconfig), so its torch is seen even when the image Python is itself a
   venv (the DLAMI's /opt/pytorch); wheelhouse: an isolated venv. With a wheelhouse, the
   venv's Python must be the X.Y it was built for (`bundle.python`).
6. check torch (use_image_torch): the image torch's version within `bundle.torch.requirement`
   (gpufleet's range), else one line naming both.
7. fetch wheelhouse: the wheels the manifest names (its `# file` comments), from
   `bundle.wheelhouse.prefix` into /opt/gpufleet/wheelhouse; with use_image_torch only those
   whose pinned version the venv does not already see in the image (pip skips those).
8. install: with a wheelhouse, `pip install --no-index --require-hashes --no-deps
   --find-links /opt/gpufleet/wheelhouse -r requirements.hashes.txt` (pip refuses a wheel whose
   hash differs: the line names it), then the verified gpufleet wheel with `--no-deps`. Nothing
   leaves the VPC. Without one, requirements.txt from the package index as before (torch left
   out with use_image_torch); with `bundle.index_url`, 3, 4 and 7 are skipped and `gpufleet==VERSION`
   comes from that index.
9. write unit: /etc/systemd/system/gpufleet-ROLE.service. 10. start: `systemctl daemon-reload`
   and `systemctl enable --now`.
11. warm pool (AWS, `warm_pool` in the config): in a `Warmed:*` state, complete the launch
   lifecycle action so the group parks the instance (stopped or running), installed.

Warm pools. The unit's ExecStart is then `python -m runtime.warm_pool -- CMD` from the venv
just installed: it starts the runtime only at `InService` (see that module). A waiter inside the
unit, not in this bootstrap, because a Warmed:Stopped instance is stopped after its first boot
and started again when it goes in service: cloud-init does not run user data again then, but
systemd starts the enabled unit on every boot.

A failed step prints ONE line naming the problem (`gpufleet-bootstrap: verify bundle FAILED:
...`), marks the instance unhealthy where the cloud needs it, exits 1, and starts nothing:
the unit is written and started only after every earlier step succeeded.

Fetching. AWS: through the image's AWS CLI (`aws s3 cp`), which AWS GPU images (Deep Learning
AMIs, Amazon Linux) carry; signing S3 requests (SigV4) by hand in the standard library would
be code to keep correct for one case, and boto3 is not on the image before the install. An
image without the CLI fails the fetch step with that reason. The wheelhouse comes in one
`aws s3 cp --recursive` call (one CLI start, not one per wheel). GCP: Cloud Storage's JSON API
over urllib with the VM's service-account token from the metadata server (no gcloud needed).

Unhealthy. AWS: `aws autoscaling set-instance-health --health-status Unhealthy` (CLI when
present, else boto3 when importable) so the group replaces the instance at once instead of
waiting for the load balancer's health check. GCP: nothing extra; the managed instance group's
auto-healing on /readyz replaces an instance whose runtime never answers. Lifecycle actions
are completed the same way (CLI, else boto3).

Everything that touches the machine is injectable (`Boot`): the root folder prefix, the
Python that creates the venv, the image's Python, the systemctl command, the fetch functions,
the unhealthy and lifecycle transports, the metadata URL and timeout, the console. Tests run
the real steps in a temp dir.

Command line: `bootstrap.py [--root DIR] [--stop-timeout-s N] [--metadata-url URL]
[--metadata-timeout-s S] [--console DEV|-] [--image-python PATH] [--poll-s S]`.
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

WHEELHOUSE_MANIFEST = "requirements.hashes.txt"
IN_SERVICE = "InService"

# fetch(bucket, key, dest) downloads one object; fetch_many(bucket, prefix, names, folder) the
# objects prefix+name into folder; mark(instance_id, region) reports unhealthy;
# complete(group, hook, instance_id, region) completes a lifecycle action with CONTINUE.
Fetch = Callable[[str, str, Path], None]
FetchMany = Callable[[str, str, list, Path], None]
MarkUnhealthy = Callable[[str, str], None]
CompleteLifecycle = Callable[[str, str, str, str], None]


class StepFailed(Exception):
    """A step's one-line reason; the bootstrap prints it and exits 1."""


@dataclasses.dataclass
class Boot:
    """Where and with what the bootstrap runs; the defaults are a real instance's."""

    root: Path = Path("/")
    python: str = sys.executable
    systemctl: tuple[str, ...] = ("systemctl",)
    fetch: Fetch | None = None  # None: the cloud's default (aws CLI or GCS JSON API)
    fetch_many: FetchMany | None = None  # None: aws CLI in one call (AWS), else `fetch` per object
    mark_unhealthy: MarkUnhealthy | None = None  # None: the cloud's default
    complete_lifecycle: CompleteLifecycle | None = None  # None: aws CLI, else boto3
    image_python: str | None = None  # None: the config's bundle.torch.image_python
    poll_s: float = 2.0  # the warm-pool waiter's polling interval (lifecycle state, /readyz)
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
    house = config["bundle"].get("wheelhouse")
    if house is not None and not (isinstance(house, dict) and all(isinstance(house.get(k), str)
                                                                  for k in ("prefix", "manifest"))):
        raise StepFailed(f"{path}: bundle.wheelhouse must be null or have string prefix and manifest")
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
    if config.get("warm_pool") and not env.get("GPUFLEET_GROUP"):
        raise StepFailed(f"{env_path} has no GPUFLEET_GROUP (a warm-pooled instance completes its group's launch hook)")
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


def aws_metadata(url: str, path: str, timeout_s: float) -> str:
    """One IMDSv2 value (`path` under /latest/meta-data/), with a fresh token."""
    what = f"instance metadata at {url}"
    token = _http(urllib.request.Request(f"{url}/latest/api/token", method="PUT",
                                         headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"}), what, timeout_s)
    return _http(urllib.request.Request(f"{url}/latest/meta-data/{path}",
                                        headers={"X-aws-ec2-metadata-token": token}), f"{what} ({path})", timeout_s)


def instance_id(cloud: str, url: str, timeout_s: float) -> str:
    """The instance id from the metadata server at `url` (IMDSv2 on AWS)."""
    if cloud == "gcp":
        req = urllib.request.Request(f"{url}/instance/id", headers={"Metadata-Flavor": "Google"})
        return _http(req, f"instance metadata at {url}", timeout_s)
    return aws_metadata(url, "instance-id", timeout_s)


def lifecycle_state(url: str, timeout_s: float) -> str:
    """The Auto Scaling target lifecycle state: InService, Warmed:Stopped, Warmed:Running, ..."""
    return aws_metadata(url, "autoscaling/target-lifecycle-state", timeout_s)


def _aws_cli(args: list[str], what: str) -> None:
    if shutil.which("aws") is None:
        raise StepFailed(f"no aws CLI on this image (the AWS bootstrap {what} with it)")
    proc = subprocess.run(["aws", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise StepFailed(f"aws {' '.join(args[:2])} {args[-2] if len(args) > 3 else ''}: {_last_line(proc.stderr)}")


def aws_cli_fetch(bucket: str, key: str, dest: Path) -> None:
    """s3://bucket/key -> dest through the image's AWS CLI."""
    _aws_cli(["s3", "cp", "--only-show-errors", f"s3://{bucket}/{key}", str(dest)], "fetches")


def aws_cli_fetch_many(bucket: str, prefix: str, names: list, folder: Path) -> None:
    """s3://bucket/prefix{name} for each name -> folder, in one CLI call."""
    filters = ["--exclude", "*"] + [a for n in names for a in ("--include", n)]
    _aws_cli(["s3", "cp", "--recursive", "--only-show-errors", *filters, f"s3://{bucket}/{prefix}", str(folder)],
             "fetches")


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
    """sha256 over the files' bytes concatenated in name order: infra.bundle.digest's."""
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


def manifest_files(manifest: Path) -> list[str]:
    """The wheel file names a wheelhouse manifest lists (its `# file` comments)."""
    names = re.findall(r"--hash=sha256:[0-9a-f]{64}\s+#\s*(\S+\.whl)\s*$", manifest.read_text(), re.M)
    if not names:
        raise StepFailed(f"{manifest.name} names no wheels")
    return names


def wheels_to_fetch(venv: Path, manifest: Path, names: list[str]) -> list[str]:
    """The manifest's wheels whose pin (`name==version`) the venv does not already hold at that
    version: with use_image_torch, the image's packages at the pinned version are used (pip
    skips them), so only the others come from the bucket."""
    pins = re.findall(r"^(\S+)==(\S+)\s.*#\s*(\S+\.whl)\s*$", manifest.read_text(), re.M)
    probe = ("import json, sys\nfrom importlib.metadata import version\nout = []\n"
             "for name, want in json.load(sys.stdin):\n"
             "    try:\n        out.append(version(name) == want)\n"
             "    except Exception:\n        out.append(False)\nprint(json.dumps(out))")
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", probe], input=json.dumps([p[:2] for p in pins]),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return names  # fetch them all; pip decides
    held = {f for (_, _, f), ok in zip(pins, json.loads(proc.stdout)) if ok}
    return [n for n in names if n not in held]


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def condense_pip_error(output: str, where: str = "in the wheelhouse or index") -> str:
    """pip's failure as one line: the wheel whose hash differs, the requirement it could not
    find, else its last ERROR line."""
    m = re.search(r"^\s*(\S+) from (?:file://)?(\S+?)(?:#\S*)?(?: \(from .*)?:\s*\n\s*Expected sha256 (\w+)\s*\n\s*Got\s+(\w+)",
                  output, re.M)
    if m:
        return (f"wheel {Path(m[2]).name} ({m[1]}) does not match its sha256 in the manifest "
                f"(expected {m[3]}, got {m[4]})")
    m = re.search(r"No matching distribution found for (\S+)", output)
    if m:
        return f"no wheel for {m.group(1)} {where}"
    errors = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("ERROR:")]
    return errors[-1] if errors else _last_line(output)


def pip_install(pip: Path, args: list[str], where: str = "in the wheelhouse or index") -> None:
    proc = subprocess.run([str(pip), "install", "--disable-pip-version-check", "--no-input", *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise StepFailed(condense_pip_error(proc.stdout + "\n" + proc.stderr, where))


def version_in_range(version: str, requirement: str) -> bool:
    """Whether `version` (e.g. 2.5.1+cu124) satisfies the clauses of `requirement` (torch>=2.3,<3):
    release numbers compared, local and pre-release parts ignored (no `packaging` before the install)."""
    def release(v: str) -> tuple[int, ...]:
        nums = re.match(r"\d+(\.\d+)*", v.strip())
        parts = [int(x) for x in nums.group(0).split(".")] if nums else [0]
        return tuple(parts + [0] * (4 - len(parts)))

    got = release(version.split("+")[0])
    spec = re.sub(r"^[A-Za-z0-9_.-]+", "", requirement.replace(" ", ""))
    ops = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
           "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "~=": lambda a, b: a >= b}
    for clause in filter(None, spec.split(",")):
        op = next((o for o in (">=", "<=", "==", "!=", "~=", ">", "<") if clause.startswith(o)), None)
        if op is None or not ops[op](got, release(clause[len(op):])):
            return False
    return True


def unit_text(boot: Boot, role: str, warm: bool = False) -> str:
    """The systemd unit; paths are the bootstrap's own (under `root`), so a stand-in can run it.
    With a warm pool, ExecStart is runtime.warm_pool's waiter around the runtime (see the docstring)."""
    run = f"{boot.path('/opt/gpufleet/venv/bin/gpufleet')} run --config {boot.path('/etc/gpufleet/runtime.json')}"
    if warm:
        opts = f"--root {boot.root} --console {boot.console or '-'} --poll-s {boot.poll_s:g}"
        if boot.metadata_url:
            opts += f" --metadata-url {boot.metadata_url}"
        run = f"{boot.path('/opt/gpufleet/venv/bin/python')} -m runtime.warm_pool {opts} -- {run}"
    return f"""[Unit]
Description=gpufleet {role} runtime
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile={boot.path('/etc/gpufleet/env')}
ExecStart={run}
Restart=on-failure
RestartSec=5
# 143: stopped on request after a checkpoint (a spot notice): done, not failed, so no restart
SuccessExitStatus=143
KillSignal=SIGTERM
TimeoutStartSec=infinity
TimeoutStopSec={boot.stop_timeout_s}

[Install]
WantedBy=multi-user.target
"""


def _aws_transport(cli_args: list[str], boto_call: Callable, run: Callable, which: Callable) -> None:
    if which("aws"):
        proc = run(["aws", *cli_args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(_last_line(proc.stderr))
        return
    try:
        import boto3  # noqa: PLC0415 (only on images that ship it)
    except ImportError as e:
        raise RuntimeError("neither the aws CLI nor boto3 is on this image") from e
    boto_call(boto3)


def aws_mark_unhealthy(run: Callable = subprocess.run, which: Callable = shutil.which) -> MarkUnhealthy:
    """The AWS transport: the CLI when present, else boto3 when importable, else a clear error."""
    def mark(instance: str, region: str) -> None:
        _aws_transport(["autoscaling", "set-instance-health", "--region", region, "--instance-id", instance,
                        "--health-status", "Unhealthy", "--no-should-respect-grace-period"],
                       lambda boto3: boto3.client("autoscaling", region_name=region).set_instance_health(
                           InstanceId=instance, HealthStatus="Unhealthy", ShouldRespectGracePeriod=False),
                       run, which)
    return mark


def aws_complete_lifecycle(run: Callable = subprocess.run, which: Callable = shutil.which) -> CompleteLifecycle:
    """Complete a lifecycle action with CONTINUE: the CLI when present, else boto3."""
    def complete(group: str, hook: str, instance: str, region: str) -> None:
        _aws_transport(["autoscaling", "complete-lifecycle-action", "--region", region,
                        "--lifecycle-action-result", "CONTINUE", "--instance-id", instance,
                        "--lifecycle-hook-name", hook, "--auto-scaling-group-name", group],
                       lambda boto3: boto3.client("autoscaling", region_name=region).complete_lifecycle_action(
                           LifecycleActionResult="CONTINUE", InstanceId=instance, LifecycleHookName=hook,
                           AutoScalingGroupName=group),
                       run, which)
    return complete


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


def metadata_url(boot: Boot, cloud: str) -> str:
    return boot.metadata_url or (GCP_METADATA if cloud == "gcp" else AWS_METADATA)


def run(boot: Boot) -> int:
    """Run every step; 0 when the unit was started, 1 after one FAILED line (nothing started)."""
    log = Log(boot)
    step = _Steps(log)
    cloud, region, instance = "aws", "", None
    try:
        config, env = step("read config", read_config, boot)
        cloud, region = config.get("cloud", "aws"), config.get("region", "")
        role = env["GPUFLEET_ROLE"]
        meta_url = metadata_url(boot, cloud)
        warm = bool(config.get("warm_pool")) and cloud == "aws"

        def read_metadata() -> tuple[str, str | None]:
            got = instance_id(cloud, meta_url, boot.metadata_timeout_s)
            return got, (lifecycle_state(meta_url, boot.metadata_timeout_s) if warm else None)
        instance, state = step("read metadata", read_metadata)
        opt = boot.path("/opt/gpufleet")
        opt.mkdir(parents=True, exist_ok=True)
        bundle = config["bundle"]
        index_url = bundle.get("index_url")
        house = bundle.get("wheelhouse") if not index_url else None
        torch = bundle.get("torch") or {"policy": "wheelhouse"}
        wheelhouse = opt / "wheelhouse"
        files: list[Path] = []
        if not index_url:
            fetch = boot.fetch or (gcs_fetch(meta_url, boot.metadata_timeout_s) if cloud == "gcp" else aws_cli_fetch)
            bucket = env.get("GPUFLEET_BUCKET", "")
            keys = [bundle["wheel"], bundle["requirements"]] + ([house["manifest"]] if house else [])
            files = [opt / Path(bundle["wheel"]).name, opt / Path(bundle["requirements"]).name]
            if house:
                wheelhouse.mkdir(parents=True, exist_ok=True)
                files.append(wheelhouse / WHEELHOUSE_MANIFEST)

            def fetch_all() -> None:
                for key, dest in zip(keys, files):
                    fetch(bucket, key, dest)
            step("fetch bundle", fetch_all)
            step("verify bundle", verify, files, env["GPUFLEET_BUNDLE_SHA256"])
        venv = opt / "venv"
        image_torch = torch.get("policy") == "use_image_torch"
        # The image's Python builds the venv (the X.Y the wheelhouse was built for); with the
        # wheelhouse policy, only when the image has it, else the Python running this file.
        python = boot.image_python or torch.get("image_python") or boot.python
        if not image_torch and not Path(python).is_file():
            python = boot.python
        step("create venv", _create_venv, python, venv, image_torch, bundle.get("python") if house else None)
        if image_torch:
            step("check torch", _check_torch, venv, python, torch.get("requirement") or "torch")
        if house:
            many = boot.fetch_many or (aws_cli_fetch_many if cloud == "aws" and boot.fetch is None
                                       else lambda b, p, names, d: [fetch(b, p + n, d / n) for n in names])

            def fetch_wheelhouse() -> None:
                names = manifest_files(files[2])
                if image_torch:
                    names = wheels_to_fetch(venv, files[2], names)
                if names:
                    many(bucket, house["prefix"], names, wheelhouse)
            step("fetch wheelhouse", fetch_wheelhouse)
        step("install", _install, venv / "bin" / "pip", wheelhouse, files, index_url, config, image_torch, bool(house))
        unit = boot.path(f"/etc/systemd/system/gpufleet-{role}.service")
        step("write unit", _write, unit, unit_text(boot, role, warm))
        step("start", _start, boot.systemctl, f"gpufleet-{role}.service")
        if warm and state and state.startswith("Warmed:"):
            complete = boot.complete_lifecycle or aws_complete_lifecycle()
            group = env["GPUFLEET_GROUP"]
            hook = group + config["warm_pool"]["launch_hook_suffix"]
            step("enter warm pool", complete, group, hook, instance, region)
            log.line(f"{role} runtime installed in the warm pool ({state}): it serves once the instance is {IN_SERVICE}")
            return 0
    except StepFailed as e:
        log.line(str(e))
        _report_unhealthy(boot, log, cloud, instance, region)
        return 1
    log.line(f"{role} runtime started" + (" (it serves once the instance is InService)" if warm else ""))
    return 0


def _create_venv(python: str, venv: Path, image_torch: bool, want_python: str | None) -> None:
    if not (shutil.which(python) or Path(python).is_file()):
        raise StepFailed(f"the image's Python {python} does not exist (runtime.image_python)")
    args = [python, "-m", "venv"] + (["--system-site-packages"] if image_torch else []) + [str(venv)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StepFailed(f"{python} -m venv: {_last_line(proc.stderr)}")
    probe = ("import json, sys, sysconfig; p = sysconfig.get_paths(); "
             "print(json.dumps(['%d.%d' % sys.version_info[:2], p['purelib'], p['platlib']]))")
    version, purelib, platlib = json.loads(subprocess.run([python, "-c", probe], capture_output=True, text=True,
                                                          check=True).stdout)
    if want_python and version != want_python:
        raise StepFailed(f"{python} is Python {version}; the wheelhouse was built for {want_python} "
                         "(runtime.python_version)")
    if image_torch:
        # the image's own packages (torch), even when its Python is a venv whose site-packages
        # --system-site-packages would not reach; after the venv's own in sys.path
        site = next(venv.glob("lib/python*/site-packages"))
        (site / "_gpufleet_image.pth").write_text("".join(sorted({purelib + "\n", platlib + "\n"})))


def _check_torch(venv: Path, python: str, requirement: str) -> None:
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise StepFailed(f"the image's Python {python} has no importable torch ({_last_line(proc.stderr)}); "
                         "use runtime.torch: wheelhouse")
    version = proc.stdout.strip()
    if not version_in_range(version, requirement):
        raise StepFailed(f"the image's torch {version} ({python}) is outside gpufleet's range {requirement}")


def _install(pip: Path, wheelhouse: Path, files: list[Path], index_url: str | None, config: dict,
             image_torch: bool, house: bool) -> None:
    if index_url:
        version = Path(config["bundle"]["wheel"]).name.split("-")[1]
        pip_install(pip, ["--upgrade", "pip"])
        pip_install(pip, ["--index-url", index_url, f"gpufleet=={version}"])
        return
    wheel, requirements = files[0], files[1]
    if house:
        # A pin the image already satisfies (use_image_torch: the same version in the image's
        # Python) is used from there; any other comes from the wheelhouse into the venv, in
        # front of the image's, so the venv holds exactly the pinned versions either way.
        pip_install(pip, ["--no-index", "--require-hashes", "--no-deps",
                          "--find-links", str(wheelhouse), "-r", str(files[2])], "in the wheelhouse")
        pip_install(pip, ["--no-index", "--no-deps", str(wheel)])
        return
    if image_torch:  # the image's torch, not the index's
        kept = [ln for ln in requirements.read_text().splitlines() if not re.match(r"torch\b", ln.strip())]
        requirements = requirements.with_name("requirements.image-torch.txt")
        requirements.write_text("\n".join(kept) + "\n")
    if wheelhouse.is_dir():
        pip_install(pip, ["--no-index", "--find-links", str(wheelhouse), "-r", str(requirements)])
    else:
        pip_install(pip, ["--upgrade", "pip"])
        pip_install(pip, ["-r", str(requirements)])
    pip_install(pip, ["--no-index", "--no-deps", str(wheel)])


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
    a = parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run(boot_of(a))


def parser(prog: str = "bootstrap.py", description: str = "The gpufleet instance bootstrap.") -> argparse.ArgumentParser:
    """The options of a boot (shared with runtime.warm_pool's waiter, which adds its own)."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("--root", default="/", help="folder the instance paths are under (tests)")
    ap.add_argument("--stop-timeout-s", type=int, default=STOP_TIMEOUT_S, help="the unit's TimeoutStopSec")
    ap.add_argument("--metadata-url", default=None)
    ap.add_argument("--metadata-timeout-s", type=float, default=5.0)
    ap.add_argument("--console", default="/dev/console", help="console device; '-' for stderr only")
    ap.add_argument("--image-python", default=None, help="the image's Python (default: the config's)")
    ap.add_argument("--poll-s", type=float, default=2.0, help="the warm-pool waiter's polling interval")
    return ap


def boot_of(a: argparse.Namespace) -> Boot:
    return Boot(root=Path(a.root), stop_timeout_s=a.stop_timeout_s, metadata_url=a.metadata_url,
                metadata_timeout_s=a.metadata_timeout_s, console=None if a.console == "-" else Path(a.console),
                image_python=a.image_python, poll_s=a.poll_s)


if __name__ == "__main__":
    sys.exit(main())
