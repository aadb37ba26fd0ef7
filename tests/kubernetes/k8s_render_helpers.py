"""Shared helpers for the kubernetes render tests: the example spec, rendered, read back as objects."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from infra.render.kubernetes import KUSTOMIZATION, render_manifests
from infra.spec.load import parse_stack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "k8s-gpu-fleet.yaml"
GOLDEN = Path(__file__).parent / "golden" / "k8s-gpu-fleet"


def example_doc() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def stack_of(doc: dict):
    return parse_stack(copy.deepcopy(doc), source="test-spec")


def rendered(doc: dict | None = None, namespace: str | None = None):
    return render_manifests(stack_of(doc if doc is not None else example_doc()), namespace)


def manifests(files: dict[str, bytes]) -> dict[str, dict]:
    """The kustomization's resources, by file name, parsed."""
    kustomization = yaml.safe_load(files[KUSTOMIZATION])
    return {name: yaml.safe_load(files[name]) for name in kustomization["resources"]}


def one(objects, kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: found {len(found)}"
    return found[0]
