"""A temp "instance" for runtime/bootstrap.py: a root folder, a local folder standing in for the
bucket (the cloud's object store cannot run here), a systemctl stand-in that records its calls,
and recorded unhealthy marks and lifecycle completions. Shared by tests/bootstrap/test_*.py.

The wheels are tiny pure-Python ones built here, so pip runs for real with --no-index.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

from infra.wheelhouse import manifest_text
from runtime.bootstrap import Boot

ROOT = Path(__file__).resolve().parents[2]
WHEEL = "gpufleet-0.1.0-py3-none-any.whl"
INSTANCE = "i-0123456789abcdef0"


def make_wheel(name: str, version: str, requires: tuple[str, ...] = (), script: str | None = None) -> tuple[str, bytes]:
    """A minimal pure-Python wheel: one module `<name>_mod`, optional console script `script`."""
    dist_info = f"{name}-{version}.dist-info"
    files = {f"{name}_mod.py": b"def main():\n    return 0\n"}
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files[f"{dist_info}/METADATA"] = meta.encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    if script:
        files[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{script} = {name}_mod:main\n".encode()

    def rec(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record = "".join(f"{arc},{rec(data)},{len(data)}\n" for arc, data in files.items()) + f"{dist_info}/RECORD,,\n"
    files[f"{dist_info}/RECORD"] = record.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for arc, data in files.items():
            zf.writestr(arc, data)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


class Machine:
    """A temp instance: root folder, bucket folder, systemctl stand-in, recorded unhealthy marks.

    `wheelhouse=True`: the bucket holds bundle/wheelhouse/x86_64/ (tinydep and its hashed
    manifest, infra.wheelhouse's format) and the config points at it, so the instance has no
    local wheelhouse. Else a local /opt/gpufleet/wheelhouse holds tinydep (the older layout).
    `house_extra` adds (name, version) wheels to that wheelhouse and its manifest. `config`
    entries are merged into the runtime config; `env` lines are added to the env file.
    """

    def __init__(self, tmp: Path, metadata_url: str, requirements: str = "tinydep==1.0\n",
                 wheelhouse: bool = False, config: dict | None = None, env: str = "",
                 house_extra: tuple[tuple[str, str], ...] = ()):
        self.root = tmp / "root"
        self.bucket = tmp / "bucket"
        self.calls = tmp / "systemctl.calls"
        self.marks: list[tuple[str, str]] = []
        self.completed: list[tuple[str, str, str, str]] = []
        self.console = tmp / "console"
        (self.bucket / "bundle").mkdir(parents=True)
        name, wheel = make_wheel("gpufleet", "0.1.0", requires=("tinydep",), script="gpufleet")
        assert name == WHEEL
        (self.bucket / "bundle" / WHEEL).write_bytes(wheel)
        (self.bucket / "bundle" / "requirements.txt").write_text(requirements)
        bundle = {"index_url": None, "wheel": f"bundle/{WHEEL}", "requirements": "bundle/requirements.txt",
                  "wheelhouse": None}
        signed = [wheel, requirements.encode()]
        dep_name, dep = make_wheel("tinydep", "1.0")
        if wheelhouse:
            house = self.bucket / "bundle" / "wheelhouse" / "x86_64"
            house.mkdir(parents=True)
            (house / dep_name).write_bytes(dep)
            for extra, version in house_extra:
                filename, data = make_wheel(extra, version)
                (house / filename).write_bytes(data)
            manifest = manifest_text(house, "x86_64", "%d.%d" % sys.version_info[:2], "wheelhouse")
            (house / "requirements.hashes.txt").write_text(manifest)
            bundle["wheelhouse"] = {"arch": "x86_64", "prefix": "bundle/wheelhouse/x86_64/",
                                    "manifest": "bundle/wheelhouse/x86_64/requirements.hashes.txt"}
            bundle["python"] = "%d.%d" % sys.version_info[:2]
            # infra.bundle.digest: in order of the base names
            signed = [wheel, manifest.encode(), requirements.encode()]
        else:
            local = self.root / "opt" / "gpufleet" / "wheelhouse"
            local.mkdir(parents=True)
            (local / dep_name).write_bytes(dep)
        digest = hashlib.sha256(b"".join(signed)).hexdigest()
        etc = self.root / "etc" / "gpufleet"
        etc.mkdir(parents=True)
        self.config = {"format": 1, "role": "serve", "cloud": "aws", "region": "us-east-1", "bundle": bundle,
                       **(config or {})}
        (etc / "runtime.json").write_text(json.dumps(self.config, indent=1))
        (etc / "env").write_text(f"GPUFLEET_BUCKET=b\nGPUFLEET_ROLE=serve\nGPUFLEET_BUNDLE_SHA256={digest}\n{env}")
        stand_in = tmp / "systemctl"
        stand_in.write_text(f"#!/bin/sh\necho \"$@\" >>{self.calls}\n")
        stand_in.chmod(0o755)
        self.boot = Boot(root=self.root, python=sys.executable, systemctl=(str(stand_in),), fetch=self.fetch,
                         mark_unhealthy=lambda i, r: self.marks.append((i, r)),
                         complete_lifecycle=lambda *a: self.completed.append(a), metadata_url=metadata_url,
                         metadata_timeout_s=0.5, console=self.console, stop_timeout_s=42, poll_s=0.1)

    def fetch(self, bucket: str, key: str, dest: Path) -> None:
        assert bucket == "b"
        shutil.copyfile(self.bucket / key, dest)

    def lines(self) -> list[str]:
        return self.console.read_text().splitlines()

    def steps(self) -> list[str]:
        prefix = "gpufleet-bootstrap: "
        return [ln.split(" ok (")[0].removeprefix(prefix) for ln in self.lines() if " ok (" in ln]

    def failed_line(self) -> str:
        failed = [ln for ln in self.lines() if "FAILED" in ln]
        assert len(failed) == 1, self.lines()
        return failed[0]

    def started_nothing(self) -> None:
        assert not self.calls.exists()
        assert not list((self.root / "etc").rglob("*.service"))
