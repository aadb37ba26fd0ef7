"""How the kubernetes target's plan, apply and destroy call infra.targets.kubectl: with the context
and namespace given (or the spec's), the rendered directory, and the stack's name for its label.

No API server runs here, and kubectl's own behaviour is tested in test_kubectl*.py; so the module
is replaced by a recorder with the same functions, and these tests check only the calls."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from k8s_render_helpers import example_doc  # noqa: E402

import infra.targets  # noqa: E402
from infra.cli import main  # noqa: E402
from runtime.errors import BadInput  # noqa: E402


@pytest.fixture
def kubectl(monkeypatch, tmp_path):
    calls = []
    fake = types.ModuleType("infra.targets.kubectl")

    def resolve_context(context):
        calls.append(("resolve_context", context))
        if context == "missing":
            raise BadInput(f"--context: no such context in the kubeconfig (got {context!r}; contexts: kind-a)")
        return context or "kind-a"

    def diff(manifest_dir, context):
        calls.append(("diff", Path(manifest_dir), context))
        return "+ kind: Deployment\n"

    def apply(manifest_dir, context, namespace, stack, progress=None):
        calls.append(("apply", Path(manifest_dir), context, namespace, stack))
        assert (Path(manifest_dir) / "kustomization.yaml").is_file(), "rendered before applying"

    def destroy(context, namespace, stack, progress=None):
        calls.append(("destroy", context, namespace, stack))
        if progress:
            progress({"type": "apply_complete", "hook": {"resource": {"addr": "deployment.apps/x"}, "action": "delete",
                                                         "elapsed_seconds": 0}})

    fake.resolve_context, fake.diff, fake.apply, fake.destroy = resolve_context, diff, apply, destroy
    monkeypatch.setitem(sys.modules, "infra.targets.kubectl", fake)
    monkeypatch.setattr(infra.targets, "kubectl", fake, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GPUFLEET_BUILD_DIR", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(example_doc()))
    return calls


def test_apply_renders_then_applies_in_the_context_and_namespace(kubectl, capsys):
    assert main(["apply", "stack.yaml", "--target", "kubernetes", "--context", "kind-b", "--namespace", "team", "--yes"]) == 0
    root = Path.cwd() / "build" / "k8s-fleet" / "kubernetes"
    assert kubectl == [("resolve_context", "kind-b"), ("apply", root, "kind-b", "team", "k8s-fleet")]
    assert yaml.safe_load((root / "kustomization.yaml").read_text())["namespace"] == "team"


def test_destroy_deletes_by_the_stack_in_the_spec_namespace(kubectl, capsys):
    assert main(["destroy", "stack.yaml", "--target", "kubernetes", "--yes"]) == 0
    assert kubectl == [("resolve_context", None), ("destroy", "kind-a", "ml-fleet", "k8s-fleet")]
    assert "destroyed 1 object(s) of stack k8s-fleet" in capsys.readouterr().err


def test_plan_asks_the_cluster_only_when_one_is_named(kubectl, capsys):
    assert main(["plan", "stack.yaml", "--target", "kubernetes"]) == 0
    assert kubectl == []
    assert main(["plan", "stack.yaml", "--target", "kubernetes", "--context", "kind-b"]) == 0
    assert kubectl == [("resolve_context", "kind-b"), ("diff", Path.cwd() / "build/k8s-fleet/kubernetes", "kind-b")]
    assert "+ kind: Deployment" in capsys.readouterr().out
    assert main(["plan", "stack.yaml", "--target", "kubernetes", "--context", "kind-b", "--offline"]) == 0
    assert len(kubectl) == 2


def test_a_context_that_does_not_exist_applies_nothing(kubectl, capsys):
    assert main(["apply", "stack.yaml", "--target", "kubernetes", "--context", "missing", "--yes"]) == 2
    assert [c[0] for c in kubectl] == ["resolve_context"]
    assert "--context: no such context" in capsys.readouterr().err
