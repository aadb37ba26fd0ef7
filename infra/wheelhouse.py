"""The wheelhouse: every wheel the runtime needs on the instances, so that they install offline.

`gpufleet bundle SPEC` builds it, as an explicit step (`render` stays fast and offline, and
picks up a wheelhouse that is there): for each CPU architecture of the stack's instance types
(x86_64; aarch64 for Graviton's g5g), `pip download --only-binary=:all:` of the pinned runtime
requirements (infra.bundle.pinned_requirements) for manylinux on that architecture and the
instances' CPython (`runtime.python_version`) into

    <root>/bundle/wheelhouse/<arch>/           the wheels
    <root>/bundle/wheelhouse/<arch>/requirements.hashes.txt   the manifest

The manifest pins every downloaded wheel with its sha256 (`name==version --hash=sha256:...
# file`), the form `pip install --require-hashes` checks: the instances install with
`--no-index --require-hashes --no-deps --find-links <wheelhouse> -r <manifest>`, so a wheel
that was swapped in the bucket is refused by pip, and the manifest itself is covered by the
bundle's digest (infra/render/render.py), so a swapped manifest is refused by the bootstrap.
Its first line records what it was built for; `render` refuses a wheelhouse built for another
Python or torch policy rather than ship instances one they cannot install.

With `runtime.torch: use_image_torch` torch is left out (the instances use the image's);
with `wheelhouse` it is in (on a GPU instance, the CUDA build from PyPI: several GB).
`--find-links DIR` passes through to pip, so a local wheel (the CPU torch on disk in tests)
can feed it, and `--no-index` keeps pip off the package index.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from infra.bundle import pinned_requirements

WHEELHOUSE = "bundle/wheelhouse"  # under the rendered root, and the key prefix in the bucket
MANIFEST = "requirements.hashes.txt"
_HEADER = re.compile(r"^# gpufleet wheelhouse: arch=(\S+) python=(\S+) torch=(\S+)$")


def platforms(arch: str) -> list[str]:
    """manylinux tags pip may take for `arch` (glibc 2.17 and 2.28: torch's wheels are 2_28)."""
    return [f"manylinux2014_{arch}", f"manylinux_2_17_{arch}", f"manylinux_2_28_{arch}"]


def requirements_for(torch_policy: str) -> list[str]:
    """The pinned runtime requirements; torch left out when the instances use the image's."""
    lines = pinned_requirements().split()
    if torch_policy == "use_image_torch":
        lines = [ln for ln in lines if re.split(r"[=<>!~ ]", ln, maxsplit=1)[0].lower() != "torch"]
    return lines


def header(arch: str, python_version: str, torch_policy: str) -> str:
    return f"# gpufleet wheelhouse: arch={arch} python={python_version} torch={torch_policy}"


def parse_header(manifest: str) -> tuple[str, str, str] | None:
    """(arch, python, torch policy) a manifest was built for, None when it has no header."""
    first = manifest.splitlines()[0] if manifest else ""
    m = _HEADER.match(first)
    return (m[1], m[2], m[3]) if m else None


def _wheel_name_version(filename: str) -> tuple[str, str]:
    # {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl; names normalized as pip does
    parts = filename[:-4].split("-")
    return re.sub(r"[-_.]+", "-", parts[0]).lower(), parts[1]


def manifest_text(folder: Path, arch: str, python_version: str, torch_policy: str) -> str:
    """The hashed requirements for the wheels in `folder`, sorted by name."""
    lines = [header(arch, python_version, torch_policy)]
    for path in sorted(folder.glob("*.whl"), key=lambda p: _wheel_name_version(p.name)):
        name, version = _wheel_name_version(path.name)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} --hash=sha256:{digest}  # {path.name}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Built:
    arch: str
    folder: Path
    wheels: int
    bytes: int


class WheelhouseError(Exception):
    """pip could not download a requirement for a platform; the message names both."""


def download(arch: str, python_version: str, torch_policy: str, dest: Path, find_links: list[str] = (),
             no_index: bool = False, requirements: list[str] | None = None) -> Built:
    """Build dest (bundle/wheelhouse/<arch>) anew: wheels and manifest. The download goes to a
    temporary folder beside dest, which replaces dest only when pip succeeded.

    `requirements` replaces requirements_for(torch_policy) (tests)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{arch}-", dir=dest.parent))
    try:
        reqs = staging / "requirements.in"
        reqs.write_text("\n".join(requirements or requirements_for(torch_policy)) + "\n")
        abi = "cp" + python_version.replace(".", "")
        cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
               "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
               "--abi", abi, "--abi", "abi3", "--abi", "none", "-d", str(staging / "wheels"), "-r", str(reqs)]
        for platform in platforms(arch):
            cmd += ["--platform", platform]
        for link in find_links:
            cmd += ["--find-links", str(link)]
        if no_index:
            cmd.append("--no-index")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise WheelhouseError(f"pip download for {arch} (CPython {python_version}): {_pip_reason(proc.stderr + proc.stdout)}")
        wheels = staging / "wheels"
        (wheels / MANIFEST).write_text(manifest_text(wheels, arch, python_version, torch_policy))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(wheels, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = list(dest.glob("*.whl"))
    return Built(arch, dest, len(files), sum(f.stat().st_size for f in files))


def _pip_reason(output: str) -> str:
    m = re.search(r"No matching distribution found for (\S+)", output)
    if m:
        return f"no wheel of {m[1]} for this platform and Python"
    errors = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("ERROR:")]
    return errors[-1] if errors else (output.strip().splitlines() or ["(no output)"])[-1]


def read_manifests(root: Path, archs: set[str]) -> dict[str, bytes]:
    """arch -> manifest bytes of the wheelhouses under root/bundle/wheelhouse/ built for `archs`."""
    found = {}
    for arch in sorted(archs):
        path = root / WHEELHOUSE / arch / MANIFEST
        if path.is_file():
            found[arch] = path.read_bytes()
    return found
