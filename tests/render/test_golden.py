"""Golden files: every example renders to exactly the committed Terraform root.

Regenerate after an intended change with `GPUFLEET_UPDATE_GOLDEN=1 make test-fast` and review
the diff like code. The runtime bundle's bytes are not compared (they change with any source
file); everything Terraform reads is. The modules copied into the root (modules/aws/...) are
compared through `modules.sha256` (sha256sum's format: which modules, which files, what bytes),
so the modules are reviewed once, in modules/, and each golden root pins their exact copies.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from infra.render.render import render_files
from infra.spec import load_stack

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = sorted((ROOT / "examples").glob("aws-*.yaml"))
GCP_EXAMPLES = sorted((ROOT / "examples").glob("gcp-*.yaml"))
TARGETS = {"emulator": "", "aws": "-aws"}
# Every AWS example for each AWS target (the golden folder's suffix), every GCP example for gcp.
CASES = [(example, target, suffix) for example in EXAMPLES for target, suffix in TARGETS.items()] + [
    (example, "gcp", "") for example in GCP_EXAMPLES]


MODULE_HASHES = "modules.sha256"


def rendered(example: Path, target: str) -> dict[str, bytes]:
    return render_files(load_stack(example), target)


def golden_view(files: dict[str, bytes]) -> dict[str, bytes]:
    """The rendered files as the golden folder holds them: the copied modules as one hash list."""
    view = {rel: data for rel, data in files.items() if not rel.startswith("modules/")}
    view[MODULE_HASHES] = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {rel}\n" for rel, data in sorted(files.items()) if rel.startswith("modules/")
    ).encode()
    return view


@pytest.mark.parametrize("example, target, suffix", CASES, ids=[f"{e.stem}-{t}" for e, t, _ in CASES])
def test_render_matches_golden(example, target, suffix):
    files = golden_view(rendered(example, target))
    folder = GOLDEN / (example.stem + suffix)
    if os.environ.get("GPUFLEET_UPDATE_GOLDEN"):
        for rel, data in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
    expected = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert expected == set(files), "files rendered differ from the golden set"
    for rel, data in files.items():
        assert (folder / rel).read_bytes().decode() == data.decode(), f"{folder.name}/{rel} differs from golden"


def test_render_is_deterministic():
    a = rendered(EXAMPLES[0], "emulator")
    b = rendered(EXAMPLES[0], "emulator")
    assert a == b


def test_targets_differ_only_by_provider_major():
    """The emulator (provider 3.39) and aws (5.x, 6.x) roots differ in the provider pin, the
    emulator's tfvars, and the storage module's variant (called and copied): nothing else
    (infra/render/providers.py)."""
    for example in EXAMPLES:
        emu, aws = rendered(example, "emulator"), rendered(example, "aws")
        storage = {k for k in emu.keys() | aws.keys() if k.startswith("modules/aws/storage/")}
        differing = {k for k in emu.keys() | aws.keys() if emu.get(k) != aws.get(k)}
        assert differing == {"main.tf", "providers.tf", "terraform.tfvars.json"} | storage
        assert {k for k in storage if k in emu} == {k for k in storage if k.startswith("modules/aws/storage/provider-v3/")}
        assert {k for k in storage if k in aws} == {k for k in storage if "/provider-v3/" not in k}
        assert json.loads(aws["terraform.tfvars.json"]).keys() == {"region", "force_destroy_artifacts"}
        assert b'version = "= 3.39.0"' in emu["providers.tf"]
        assert b'version = ">= 5.0, < 7.0"' in aws["providers.tf"]
        main_diff = set(emu["main.tf"].decode().splitlines()) ^ set(aws["main.tf"].decode().splitlines())
        assert main_diff == {'  source = "./modules/aws/storage/provider-v3"', '  source = "./modules/aws/storage"'}


def test_storage_variants_share_their_interface():
    """The root wires either storage variant the same way: identical inputs and outputs."""
    base = ROOT / "modules/aws/storage"
    for name in ("variables.tf", "outputs.tf"):
        assert (base / name).read_text() == (base / "provider-v3" / name).read_text(), name


def test_rendering_for_aws_removes_an_emulator_override(tmp_path):
    from infra.render import render
    from infra.render.render import EMULATOR_OVERRIDE

    stack = load_stack(EXAMPLES[0])
    out = render(stack, tmp_path / "root", target="emulator")
    (out / EMULATOR_OVERRIDE).write_text('provider "aws" {}\n')  # as plan writes it for the emulator
    render(stack, out, target="aws")
    assert not (out / EMULATOR_OVERRIDE).exists()
