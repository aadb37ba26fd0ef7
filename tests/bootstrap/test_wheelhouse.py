"""The wheelhouse, built (infra.wheelhouse: real `pip download` from a local folder of wheels)
and installed from (runtime/bootstrap.py: real venv and `pip install --require-hashes`); the
image's torch (a venv made from this test's Python, which is itself a venv holding the CPU
torch, stands in for the DLAMI's /opt/pytorch venv). The bucket is a local folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.wheelhouse import MANIFEST, WheelhouseError, download, parse_header, requirements_for
from runtime import bootstrap

sys.path.insert(0, os.path.dirname(__file__))
from bootmachine import INSTANCE, ROOT, WHEEL, Machine, make_wheel  # noqa: E402

PY = "%d.%d" % sys.version_info[:2]


@pytest.fixture
def imds(fake_imds):
    return fake_imds({"meta-data/instance-id": INSTANCE}).url


@pytest.fixture(autouse=True)
def no_pip_config(monkeypatch):
    """pip reads only what the test gives it (no machine-wide index or find-links)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


def platform_wheel(folder: Path, name: str, arch: str) -> str:
    """A copy of a pure wheel under a manylinux/CPython filename: pip selects wheels by name."""
    _, data = make_wheel(name, "1.0")
    tag = f"cp{PY.replace('.', '')}"
    filename = f"{name}-1.0-{tag}-{tag}-manylinux_2_17_{arch}.manylinux2014_{arch}.whl"
    (folder / filename).write_bytes(data)
    return filename


def test_one_wheelhouse_per_arch_with_a_hashed_manifest(tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    x86 = platform_wheel(links, "fastx", "x86_64")
    arm = platform_wheel(links, "fastx", "aarch64")
    pure, data = make_wheel("tinydep", "1.0")
    (links / pure).write_bytes(data)
    for arch, expected in (("x86_64", x86), ("aarch64", arm)):
        dest = tmp_path / "bundle" / "wheelhouse" / arch
        built = download(arch, PY, "use_image_torch", dest, find_links=[str(links)], no_index=True,
                         requirements=["fastx==1.0", "tinydep==1.0"])
        assert sorted(p.name for p in dest.iterdir()) == sorted([expected, pure, MANIFEST])
        assert built.wheels == 2 and built.bytes == sum(p.stat().st_size for p in dest.glob("*.whl"))
        manifest = (dest / MANIFEST).read_text()
        assert parse_header(manifest) == (arch, PY, "use_image_torch")
        sha = hashlib.sha256((dest / expected).read_bytes()).hexdigest()
        assert f"fastx==1.0 --hash=sha256:{sha}  # {expected}\n" in manifest
        assert bootstrap.manifest_files(dest / MANIFEST) == [expected, pure]


def test_a_requirement_without_a_wheel_for_the_platform_is_named_and_nothing_is_written(tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    platform_wheel(links, "fastx", "x86_64")
    dest = tmp_path / "wheelhouse" / "aarch64"
    with pytest.raises(WheelhouseError, match=r"aarch64 .*no wheel of fastx==1.0 for this platform"):
        download("aarch64", PY, "wheelhouse", dest, find_links=[str(links)], no_index=True, requirements=["fastx==1.0"])
    assert not dest.exists() and [p.name for p in dest.parent.iterdir()] == []


def test_torch_is_in_the_wheelhouse_only_by_policy():
    assert any(r.startswith("torch==") for r in requirements_for("wheelhouse"))
    assert not any(r.startswith("torch") for r in requirements_for("use_image_torch"))


def test_installs_from_the_bucket_wheelhouse_with_hashes(tmp_path, imds):
    m = Machine(tmp_path, imds, wheelhouse=True)
    assert bootstrap.run(m.boot) == 0, m.lines()
    assert m.steps() == ["read config", "read metadata", "fetch bundle", "verify bundle", "create venv",
                         "fetch wheelhouse", "install", "write unit", "start"]
    venv = m.root / "opt" / "gpufleet" / "venv"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import tinydep_mod, gpufleet_mod"], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert (m.root / "opt" / "gpufleet" / "wheelhouse" / "tinydep-1.0-py3-none-any.whl").is_file()


def test_a_tampered_wheel_is_refused_by_pip_and_named(tmp_path, imds):
    m = Machine(tmp_path, imds, wheelhouse=True)
    wheel = m.bucket / "bundle" / "wheelhouse" / "x86_64" / "tinydep-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes() + b"x")
    assert bootstrap.run(m.boot) == 1
    line = m.failed_line()
    assert line.startswith(f"{bootstrap.PREFIX} install FAILED: wheel tinydep-1.0-py3-none-any.whl (tinydep==1.0) "
                           "does not match its sha256 in the manifest (expected "), line
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() in line
    m.started_nothing()
    assert m.marks == [(INSTANCE, "us-east-1")]


def test_a_tampered_manifest_fails_the_bundle_digest(tmp_path, imds):
    m = Machine(tmp_path, imds, wheelhouse=True)
    manifest = m.bucket / "bundle" / "wheelhouse" / "x86_64" / MANIFEST
    manifest.write_text(manifest.read_text().replace("tinydep==1.0", "tinydep==1.0 --hash=sha256:" + "0" * 64, 1))
    assert bootstrap.run(m.boot) == 1
    line = m.failed_line()
    assert f"verify bundle FAILED: sha256 of {WHEEL} + {MANIFEST} + requirements.txt is " in line
    m.started_nothing()


def test_a_wheel_missing_from_the_bucket_is_named(tmp_path, imds):
    m = Machine(tmp_path, imds, wheelhouse=True)
    (m.bucket / "bundle" / "wheelhouse" / "x86_64" / "tinydep-1.0-py3-none-any.whl").unlink()
    assert bootstrap.run(m.boot) == 1
    line = m.failed_line()
    assert "fetch wheelhouse FAILED:" in line and "tinydep-1.0-py3-none-any.whl" in line
    m.started_nothing()


def test_a_wheel_missing_from_the_manifest_is_named_by_pip(tmp_path, imds):
    """The aws CLI's recursive copy skips a missing object silently: pip then names the requirement."""
    m = Machine(tmp_path, imds, wheelhouse=True)
    m.boot.fetch_many = lambda bucket, prefix, names, folder: None  # fetched nothing
    assert bootstrap.run(m.boot) == 1
    assert m.failed_line() == f"{bootstrap.PREFIX} install FAILED: no wheel for tinydep==1.0 in the wheelhouse"


def test_a_wheelhouse_for_another_python_is_named(tmp_path, imds):
    m = Machine(tmp_path, imds, wheelhouse=True)
    m.config["bundle"]["python"] = "3.99"
    (m.root / "etc" / "gpufleet" / "runtime.json").write_text(json.dumps(m.config))
    assert bootstrap.run(m.boot) == 1
    assert m.failed_line().endswith(f"create venv FAILED: {sys.executable} is Python {PY}; the wheelhouse was built "
                                    "for 3.99 (runtime.python_version)")


def _image_torch(m: Machine, requirement: str) -> None:
    m.config["bundle"]["torch"] = {"policy": "use_image_torch", "requirement": requirement,
                                   "image_python": sys.executable}
    (m.root / "etc" / "gpufleet" / "runtime.json").write_text(json.dumps(m.config))


def test_image_torch_is_used_through_the_images_python(tmp_path, imds):
    import torch

    m = Machine(tmp_path, imds, wheelhouse=True)
    _image_torch(m, "torch>=2.3")
    assert bootstrap.run(m.boot) == 0, m.lines()
    assert "check torch" in m.steps()
    venv = m.root / "opt" / "gpufleet" / "venv"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch, tinydep_mod; print(torch.__version__)"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == torch.__version__
    # the venv's own packages come first; the image's are there through the .pth
    pth = next(venv.glob("lib/python*/site-packages/_gpufleet_image.pth")).read_text()
    assert str(Path(torch.__file__).parents[1]) in pth.splitlines()


def test_a_pin_the_image_satisfies_is_used_from_the_image_any_other_comes_from_the_wheelhouse(tmp_path, imds):
    """use_image_torch: the venv ends with exactly the pinned versions; the image's package is used
    where its version is the pin (neither fetched nor reinstalled: the fast path on a GPU
    image), else the wheelhouse's."""
    from importlib.metadata import version

    same, other = version("six"), "0.0.1"
    m = Machine(tmp_path, imds, wheelhouse=True, house_extra=(("six", same), ("pyyaml", other)))
    _image_torch(m, "torch>=2.3")
    assert bootstrap.run(m.boot) == 0, m.lines()
    venv = m.root / "opt" / "gpufleet" / "venv"
    site = next(venv.glob("lib/python*/site-packages"))
    installed = {p.name for p in site.glob("*.dist-info")}
    assert f"six-{same}.dist-info" not in installed  # the image's six, not the stand-in wheel
    assert {f"pyyaml-{other}.dist-info", "tinydep-1.0.dist-info"} <= installed
    probe = "from importlib.metadata import version; print(version('six'), version('pyyaml'))"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [same, other]  # the venv's pin in front of the image's pyyaml
    # only what the image lacks came from the bucket
    fetched = {p.name for p in (m.root / "opt" / "gpufleet" / "wheelhouse").glob("*.whl")}
    assert fetched == {f"pyyaml-{other}-py3-none-any.whl", "tinydep-1.0-py3-none-any.whl"}


def test_image_torch_outside_the_range_stops_with_both_versions(tmp_path, imds):
    import torch

    m = Machine(tmp_path, imds, wheelhouse=True)
    _image_torch(m, "torch>=2.3,<2.4")
    assert bootstrap.run(m.boot) == 1
    assert m.failed_line() == (f"{bootstrap.PREFIX} check torch FAILED: the image's torch {torch.__version__} "
                               f"({sys.executable}) is outside gpufleet's range torch>=2.3,<2.4")
    m.started_nothing()


def test_an_image_python_that_is_not_there_is_named(tmp_path, imds):
    m = Machine(tmp_path, imds, wheelhouse=True)
    _image_torch(m, "torch>=2.3")
    m.boot.image_python = str(tmp_path / "opt" / "pytorch" / "bin" / "python")
    assert bootstrap.run(m.boot) == 1
    assert m.failed_line().endswith(f"create venv FAILED: the image's Python {m.boot.image_python} does not exist "
                                    "(runtime.image_python)")


def test_the_wheelhouse_policy_uses_this_python_when_the_image_has_none(tmp_path, imds):
    m = Machine(tmp_path, imds, wheelhouse=True)
    m.config["bundle"]["torch"] = {"policy": "wheelhouse", "requirement": "torch>=2.3",
                                   "image_python": str(tmp_path / "no" / "python")}
    (m.root / "etc" / "gpufleet" / "runtime.json").write_text(json.dumps(m.config))
    assert bootstrap.run(m.boot) == 0, m.lines()
    assert "check torch" not in m.steps()
    cfg = (m.root / "opt" / "gpufleet" / "venv" / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg


@pytest.mark.parametrize("version, requirement, ok", [
    ("2.5.1+cu124", "torch>=2.3", True), ("2.13.0+cpu", "torch>=2.3,<3", True), ("2.2.2", "torch>=2.3", False),
    ("3.0.0", "torch>=2.3,<3", False), ("2.3.0a0+git", "torch>=2.3", True), ("2.4.0", "torch", True),
])
def test_version_in_range(version, requirement, ok):
    assert bootstrap.version_in_range(version, requirement) is ok


def _spec(tmp_path: Path, **runtime) -> Path:
    spec = tmp_path / "stack.yaml"
    spec.write_text(json.dumps({"name": "wh-fleet", "runtime": runtime,
                                "training": {"instance_type": "g5.xlarge", "nodes": {"min": 1, "max": 2}},
                                "serving": {"instance_type": "g5g.xlarge", "replicas": {"min": 1, "max": 2}}}))
    return spec


def test_render_points_each_role_at_its_archs_wheelhouse_and_signs_the_manifest(tmp_path):
    from infra.bundle import bundle_files, digest
    from infra.render.render import render
    from infra.spec import load_stack

    r = load_stack(_spec(tmp_path))
    assert r.runtime.archs == {"train": "x86_64", "serve": "aarch64"}
    out = tmp_path / "root"
    house = out / "bundle" / "wheelhouse" / "aarch64"
    house.mkdir(parents=True)
    manifest = f"# gpufleet wheelhouse: arch=aarch64 python=3.12 torch=use_image_torch\nfastx==1.0 --hash=sha256:{'1' * 64}  # f.whl\n"
    (house / MANIFEST).write_text(manifest)
    render(r, out)
    serve = json.loads((out / "runtime" / "serve.json").read_text())["bundle"]
    train = json.loads((out / "runtime" / "train.json").read_text())["bundle"]
    assert serve["wheelhouse"] == {"arch": "aarch64", "prefix": "bundle/wheelhouse/aarch64/",
                                   "manifest": f"bundle/wheelhouse/aarch64/{MANIFEST}"}
    assert train["wheelhouse"] is None  # no x86_64 wheelhouse was built: the package index
    assert serve["torch"] == {"policy": "use_image_torch", "requirement": "torch>=2.3",
                              "image_python": "/opt/pytorch/bin/python"}
    bundle = bundle_files()
    signed = digest({**bundle, f"wheelhouse/aarch64/{MANIFEST}": manifest.encode()})
    assert f"'{signed}'" in (out / "user_data" / "serve.sh.tftpl").read_text()
    assert f"'{digest(bundle)}'" in (out / "user_data" / "train.sh.tftpl").read_text()
    assert 'fileset(path.module, "bundle/wheelhouse/*/*")' in (out / "main.tf").read_text()


def test_render_refuses_a_wheelhouse_built_for_another_policy(tmp_path):
    from infra.render.render import render
    from infra.spec import load_stack
    from runtime.errors import BadInput

    out = tmp_path / "root"
    house = out / "bundle" / "wheelhouse" / "x86_64"
    house.mkdir(parents=True)
    (house / MANIFEST).write_text("# gpufleet wheelhouse: arch=x86_64 python=3.12 torch=use_image_torch\n")
    with pytest.raises(BadInput, match=r"built for python 3.12, torch use_image_torch, the stack needs python 3.12, "
                                       r"torch wheelhouse: run `gpufleet bundle`"):
        render(load_stack(_spec(tmp_path, torch="wheelhouse")), out)
    assert not (out / "main.tf").exists()


def test_gpufleet_bundle_builds_each_arch_from_find_links(tmp_path):
    """The command end to end, in its own process, with the pinned requirements replaced by
    wheels in a local folder: the real ones would be downloaded from the index."""
    links = tmp_path / "links"
    links.mkdir()
    code = ("import sys, infra.wheelhouse as w; w.requirements_for = lambda policy: ['tinydep==1.0']; "
            "from infra.cli import main; sys.exit(main(sys.argv[1:]))")
    name, data = make_wheel("tinydep", "1.0")
    (links / name).write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", code, "bundle", str(_spec(tmp_path, python_version=PY)),
                           "--root", str(tmp_path / "root"), "--no-index", "--find-links", str(links)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for arch in ("x86_64", "aarch64"):
        assert f"{arch}: 1 wheels" in proc.stdout
        assert (tmp_path / "root" / "bundle" / "wheelhouse" / arch / name).is_file()


# --- the spec: torch policy, the instances' Python, architectures --------------------------------

def _resolve(**fields):
    from infra.spec.load import parse_stack

    return parse_stack({"name": "rt-fleet", "serving": {"instance_type": "g5.xlarge", "replicas": {"min": 1, "max": 2},
                                                        **fields.pop("serving", {})}, **fields})


def test_torch_policy_defaults_follow_the_image():
    assert _resolve().runtime.torch == "use_image_torch"  # the default PyTorch DLAMI
    fixed = _resolve(serving={"image": {"id": "ami-0123456789abcdef0"}}).runtime
    assert (fixed.torch, fixed.image_python, fixed.python_version) == ("wheelhouse", "/opt/pytorch/bin/python", "3.12")
    own = _resolve(runtime={"torch": "wheelhouse", "image_python": "/usr/bin/python3.11", "python_version": "3.11"})
    assert (own.runtime.torch, own.runtime.image_python, own.runtime.python_version) == (
        "wheelhouse", "/usr/bin/python3.11", "3.11")


def test_graviton_fleets_are_aarch64_with_the_arm64_dlami():
    r = _resolve(serving={"instance_type": "g5g.2xlarge"})
    assert r.runtime.archs == {"serve": "aarch64"}
    assert "ARM64" in r.spec.serving.image.lookup.name


def test_bad_runtime_fields_and_mixed_arch_pools_are_named():
    from runtime.errors import BadInput

    with pytest.raises(BadInput) as e:
        _resolve(runtime={"torch": "pypi", "python_version": "2.7"})
    text = str(e.value)
    assert "runtime.torch" in text and "'pypi'" in text and "runtime.python_version" in text
    with pytest.raises(BadInput, match=r"serving.pools\[1\].instance_type: every pool runs serving.image, built for "
                                       r"x86_64 .*got 'g5g.xlarge', aarch64"):
        _resolve(serving={"pools": [{"name": "a", "instance_type": "g5.xlarge", "weight": 1},
                                    {"name": "b", "instance_type": "g5g.xlarge", "weight": 1}],
                          "load_balancer": {"algorithm": "weighted_round_robin"}})
