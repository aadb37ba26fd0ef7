"""The runtime bundle: gpufleet's own wheel and pinned requirements, for instances to install.

Instances never depend on gpufleet being published: `render` writes
build/<stack>/bundle/{<wheel>, requirements.txt}, the storage module uploads them to the
artifacts bucket, and user_data installs them from there. The wheel is built here directly
(a wheel is a zip with a dist-info folder) rather than through pip, so it takes milliseconds
and is byte-for-byte reproducible: the same sources give the same file, the same S3 ETag,
and so no spurious change in the plan.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import re
import zipfile
from pathlib import Path

from infra import PROJECT_ROOT
from infra.assets import ASSET_PACKAGES
from runtime import __version__

DIST = "gpufleet"
PACKAGES = ("infra", "runtime")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
# Runtime requirements pinned to what was tested here; torch's local suffix (+cpu) is
# dropped so a GPU instance resolves the same release's CUDA build from its index.
RUNTIME_REQUIREMENTS = (
    "torch", "numpy", "pyarrow", "xxhash", "boto3", "pydantic", "pyyaml", "jinja2",
    "uvicorn", "starlette", "prometheus-client", "orjson",
)


def wheel_name() -> str:
    return f"{DIST}-{__version__}-py3-none-any.whl"


def _package_files() -> list[tuple[str, Path]]:
    """The source files of infra and runtime (read where they are installed, never written).

    The templates and modules (infra._templates, infra._modules) are left out: instances run
    the runtime and never render, and leaving them out keeps the wheel the same bytes whether
    gpufleet is installed from a wheel (where they sit inside infra/) or editable (where not).
    """
    skip = tuple(pkg.replace(".", "/") + "/" for pkg in ASSET_PACKAGES)
    files = []
    for pkg in PACKAGES:
        for path in sorted((PROJECT_ROOT / pkg).rglob("*")):
            arc = path.relative_to(PROJECT_ROOT).as_posix()
            if arc.startswith(skip) or not path.is_file() or "__pycache__" in path.parts:
                continue
            if path.suffix in (".py", ".j2", ".json", ".typed"):
                files.append((arc, path))
    return files


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def pinned_requirements() -> str:
    lines = []
    for name in RUNTIME_REQUIREMENTS:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            lines.append(name)
            continue
        lines.append(f"{name}=={re.sub(r'[+].*$', '', version)}")
    return "\n".join(lines) + "\n"


def build_wheel() -> bytes:
    """The wheel's bytes: packages infra and runtime, console script `gpufleet`."""
    dist_info = f"{DIST}-{__version__}.dist-info"
    requires = "".join(f"Requires-Dist: {r}\n" for r in pinned_requirements().split())
    meta = {
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {__version__}\n"
            f"Summary: gpufleet runtime bundle\nRequires-Python: >=3.10\n{requires}"
        ).encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: gpufleet\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/entry_points.txt": b"[console_scripts]\ngpufleet = infra.cli:main\n",
        f"{dist_info}/top_level.txt": ("\n".join(PACKAGES) + "\n").encode(),
    }
    entries = [(arc, path.read_bytes()) for arc, path in _package_files()] + sorted(meta.items())
    record = "".join(f"{arc},{_record_hash(data)},{len(data)}\n" for arc, data in entries)
    record += f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arc, data in entries:
            info = zipfile.ZipInfo(arc, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def bundle_files() -> dict[str, bytes]:
    """Bundle file name -> bytes: the wheel and requirements.txt."""
    return {wheel_name(): build_wheel(), "requirements.txt": pinned_requirements().encode()}


def torch_requirement() -> str:
    """gpufleet's own dependency on torch (a range, e.g. `torch>=2.3`): an image's torch must satisfy it."""
    try:
        requires = importlib.metadata.requires(DIST) or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    found = [r.split(";")[0].replace(" ", "") for r in requires if re.match(r"torch\b", r) and "extra ==" not in r]
    if not found:
        import tomllib  # noqa: PLC0415 (a source checkout without the installed metadata)

        deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        found = [d.replace(" ", "") for d in deps if re.match(r"torch\b", d)]
    return found[0]


def digest(files: dict[str, bytes]) -> str:
    """sha256 over the files' bytes concatenated in order of their base names: what the bootstrap
    (runtime/bootstrap.py bundle_digest) computes over the files it fetched."""
    h = hashlib.sha256()
    for name in sorted(files, key=lambda n: n.rsplit("/", 1)[-1]):
        h.update(files[name])
    return h.hexdigest()
