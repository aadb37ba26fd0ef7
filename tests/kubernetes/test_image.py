"""The runtime image (Dockerfile, .dockerignore) agrees with the bundle it installs and the manifests that run it.

No Docker engine runs here, so the image is not built in this test (`make kind-e2e` builds it
where one does); what can disagree without building is checked instead: the user the pods' security
context names, the entry point's module inside the bundle wheel, the commands the rendered
manifests run (their argument parsers run from the unpacked wheel), the working directory, and
that the build context holds the bundle the Dockerfile copies.
"""

from __future__ import annotations

import fnmatch
import io
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "k8s-gpu-fleet.yaml"


def instructions(path: Path) -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending += " " + line.rstrip("\\").strip() if pending else line.rstrip("\\").strip()
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


@pytest.fixture(scope="module")
def dockerfile():
    return final_stage(instructions(REPO / "Dockerfile"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The bundle wheel (infra/bundle.py), unpacked: what the image installs."""
    from infra.bundle import build_wheel

    out = tmp_path_factory.mktemp("wheel")
    zipfile.ZipFile(io.BytesIO(build_wheel())).extractall(out)
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict]:
    """The example's rendered objects (the kubernetes target's render, through the CLI)."""
    from infra.targets import TARGETS

    if "kubernetes" not in TARGETS:
        pytest.skip("the kubernetes target is not registered in this checkout (infra/targets/kubernetes.py)")
    import yaml

    cwd = tmp_path_factory.mktemp("render")
    res = subprocess.run([sys.executable, "-m", "infra.cli", "render", str(EXAMPLE), "--target", "kubernetes"],
                         cwd=cwd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    docs = []
    for path in sorted((cwd / "build").rglob("kubernetes/*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") in ("Deployment", "Job")]
    assert docs, "the render wrote no Deployment or Job"
    return docs


def _value(steps, word: str) -> str:
    found = [rest for w, rest in steps if w == word]
    assert found, f"the Dockerfile's final stage has no {word}"
    return found[-1]


def _containers(objects: list[dict]):
    for obj in objects:
        spec = obj["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            yield obj, spec, c


def test_the_image_runs_as_a_numeric_non_root_user(dockerfile):
    user = _value(dockerfile, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER {user}: runAsNonRoot can only verify a numeric user"
    assert int(uid) != 0 and (not gid or int(gid) != 0), f"USER {user} is root"


def test_the_entrypoint_is_the_bundles_console_script_and_its_module_exists(dockerfile, wheel):
    entry = _value(dockerfile, "ENTRYPOINT")
    assert entry.startswith("["), f"ENTRYPOINT {entry}: the exec form, so signals reach the runtime as PID 1"
    program = eval(entry)[0]  # a JSON array of strings
    eps = next(wheel.glob("*.dist-info/entry_points.txt")).read_text()
    target = re.search(rf"^{re.escape(program)}\s*=\s*([\w.]+):(\w+)$", eps, re.M)
    assert target, f"ENTRYPOINT {program}: not a console script of the bundle wheel ({eps!r})"
    module, func = target.groups()
    assert (wheel / (module.replace(".", "/") + ".py")).is_file(), f"{module} is not in the bundle wheel"
    res = subprocess.run([sys.executable, "-c", f"import {module} as m, sys; sys.argv=['{program}', '--help']; "
                          f"assert m.__file__.startswith({str(wheel)!r}), m.__file__; m.{func}()"],
                         cwd=wheel, env={"PYTHONPATH": str(wheel), "PATH": "/usr/bin:/bin"}, capture_output=True,
                         text=True)
    assert res.returncode == 0 and "serve" in res.stdout, res.stderr


def test_the_build_context_sends_the_bundle_and_nothing_else(dockerfile):
    bundle = re.search(r"BUNDLE=(\S+)", " ".join(rest for w, rest in instructions(REPO / "Dockerfile") if w == "ARG"))
    assert bundle, "the Dockerfile has no ARG BUNDLE=<default>"
    copies = [rest for w, rest in dockerfile if w == "COPY"]
    assert any(c.split()[0].rstrip("/") == "${BUNDLE}" for c in copies), copies
    rules = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert rules[0] == "*", "the context should exclude everything by default"

    def sent(path: str) -> bool:  # Docker's rule: the last matching pattern wins; `!` re-includes
        keep = True
        for rule in rules:
            neg = rule.startswith("!")
            pat = rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
                keep = neg
        return keep

    assert sent(f"{bundle.group(1)}/gpufleet-0.1.0-py3-none-any.whl")
    assert not sent("infra/cli.py") and not sent(".venv/bin/python") and not sent("build/k8s-fleet/kubernetes")


def test_the_manifests_run_the_images_user_workdir_and_commands(dockerfile, wheel, rendered):
    """Every container of the rendered Deployment and Jobs runs as the image's user, in its WORKDIR,
    and a command the image has: /bin/sh, or the entry point with a subcommand whose parser accepts
    the manifest's own arguments' subcommand (run from the unpacked bundle wheel)."""
    uid = int(_value(dockerfile, "USER").partition(":")[0])
    workdir = _value(dockerfile, "WORKDIR")
    program = eval(_value(dockerfile, "ENTRYPOINT"))[0]
    subcommands = set()
    for obj, spec, c in _containers(rendered):
        where = f"{obj['kind']} {obj['metadata']['name']} container {c['name']}"
        user = (c.get("securityContext") or {}).get("runAsUser", spec.get("securityContext", {}).get("runAsUser"))
        assert user == uid, f"{where}: runAsUser {user}, the image's USER is {uid}"
        assert c.get("workingDir") == workdir, f"{where}: workingDir {c.get('workingDir')}, the image's is {workdir}"
        command = c.get("command") or [program]
        if command[0] == "/bin/sh":
            script = " ".join(c.get("args", []))
            subcommands |= {tuple(m.split()) for m in re.findall(rf"\b{program}\s+(\w+(?:\s+[a-z]+)?)", script)}
            continue
        assert command[0] == program, f"{where}: runs {command[0]!r}, which the image does not have on PATH"
        args = c.get("args", [])
        words = [a for a in args if not a.startswith("-")][:1]
        subcommands.add(tuple(words))
    assert subcommands, "no container runs the entry point"
    for words in sorted(subcommands):
        argv = [program, *words, "--help"]
        res = subprocess.run([sys.executable, "-c", f"import sys; from infra.cli import main; sys.argv={argv!r}; "
                              "sys.exit(main())"], cwd=wheel, env={"PYTHONPATH": str(wheel), "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True)
        assert res.returncode == 0, f"{shlex.join(argv)}: {res.stderr[-500:]}"
