"""`gpufleet render|plan --target kubernetes` from the command line: output, warnings, and bad input
refused with exit 2, the field named and nothing written. apply/destroy reach a cluster only
through infra.targets.kubectl (tested with its own fake kubectl in test_kubectl*.py)."""

from __future__ import annotations

import os
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from k8s_render_helpers import example_doc  # noqa: E402

from infra.cli import main  # noqa: E402


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GPUFLEET_BUILD_DIR", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return tmp_path


def write_spec(path, doc) -> str:
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_render_writes_the_manifests_and_warns_about_the_adapter(workdir, capsys):
    spec = write_spec(workdir / "stack.yaml", example_doc())
    assert main(["render", spec, "--target", "kubernetes"]) == 0
    out, err = capsys.readouterr()
    root = workdir / "build" / "k8s-fleet" / "kubernetes"
    assert out.strip() == str(root)
    assert (root / "kustomization.yaml").is_file() and (root / "deployment-k8s-fleet-serve-main.yaml").is_file()
    assert "warning: serving.autoscaling.metric: inflight_requests" in err and "Prometheus Adapter" in err


def test_plan_prints_the_summary_without_a_cluster(workdir, capsys):
    doc = example_doc()
    doc["serving"]["load_balancer"]["algorithm"] = "least_connections"
    spec = write_spec(workdir / "stack.yaml", doc)
    assert main(["plan", spec, "--target", "kubernetes", "--namespace", "team-a"]) == 0
    out, err = capsys.readouterr()
    assert "stack k8s-fleet: 13 object(s) in namespace team-a" in out
    assert "least_connections: NOT honoured" in out and "Deployment: k8s-fleet-serve-main" in out
    assert "no cluster asked" in err


def _refused(workdir, capsys, doc, *flags) -> str:
    spec = write_spec(workdir / "stack.yaml", doc)
    assert main(["render", spec, "--target", "kubernetes", *flags]) == 2
    assert not (workdir / "build").exists(), "nothing may be written"
    return capsys.readouterr().err


def test_gpus_without_a_gpu_node_selector_or_toleration(workdir, capsys):
    doc = example_doc()
    del doc["kubernetes"]["serving"]["node_selector"], doc["kubernetes"]["serving"]["tolerations"]
    err = _refused(workdir, capsys, doc)
    assert "kubernetes.serving.node_selector: serving pods ask for 1 GPU(s) (nvidia.com/gpu)" in err
    doc["kubernetes"]["serving"]["gpus"] = 0  # CPU pods need neither
    spec = write_spec(workdir / "stack.yaml", doc)
    assert main(["render", spec, "--target", "kubernetes"]) == 0


@pytest.mark.parametrize("namespace", ["ML_Team", "-team", "a" * 64])
def test_a_namespace_that_is_not_a_dns_1123_label(workdir, capsys, namespace):
    doc = example_doc()
    doc["kubernetes"]["namespace"] = namespace
    assert "kubernetes.namespace" in _refused(workdir, capsys, doc)


def test_a_namespace_flag_that_is_not_a_dns_1123_label(workdir, capsys):
    assert "--namespace: not a DNS-1123 label (got 'Team_A'" in _refused(workdir, capsys, example_doc(),
                                                                         "--namespace", "Team_A")


def test_a_spec_without_the_kubernetes_block(workdir, capsys):
    doc = example_doc()
    del doc["kubernetes"]
    assert "kubernetes: the kubernetes target needs a `kubernetes` block" in _refused(workdir, capsys, doc)


@pytest.mark.parametrize("image, why", [("registry.example.com/gpufleet-runtime", "needs a tag or a digest"),
                                        ("registry.example.com/gpufleet-runtime:latest", "'latest' is not a version")])
def test_an_unpinned_image(workdir, capsys, image, why):
    doc = example_doc()
    doc["kubernetes"]["image"] = image
    err = _refused(workdir, capsys, doc)
    assert "kubernetes.image" in err and why in err


def test_a_volume_path_outside_the_volume(workdir, capsys):
    doc = example_doc()
    doc["training"]["workload"]["data"] = "../etc"
    assert "training.workload.data: a path on the artifacts volume" in _refused(workdir, capsys, doc)


def test_kubernetes_options_are_refused_on_other_targets(workdir, capsys):
    spec = write_spec(workdir / "stack.yaml", example_doc())
    assert main(["render", spec, "--target", "emulator", "--context", "kind-x"]) == 2
    assert "--context: an option of the kubernetes target" in capsys.readouterr().err


def test_terraform_options_are_refused_on_kubernetes(workdir, capsys):
    spec = write_spec(workdir / "stack.yaml", example_doc())
    assert main(["plan", spec, "--target", "kubernetes", "--summary", "s.md"]) == 2
    assert "--summary: a Terraform target's option" in capsys.readouterr().err
    assert not (workdir / "build").exists()


def test_apply_without_a_terminal_needs_yes(workdir, capsys, monkeypatch):
    """Before any cluster is contacted (kubectl is never run here)."""
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    spec = write_spec(workdir / "stack.yaml", example_doc())
    assert main(["apply", spec, "--target", "kubernetes"]) == 2
    assert "--yes: required to apply" in capsys.readouterr().err


def test_a_refused_spec_leaves_the_previous_render_untouched(workdir, capsys):
    spec = write_spec(workdir / "stack.yaml", example_doc())
    assert main(["render", spec, "--target", "kubernetes"]) == 0
    root = workdir / "build" / "k8s-fleet" / "kubernetes"
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    doc = example_doc()
    doc["kubernetes"]["namespace"] = "Bad_NS"
    write_spec(workdir / "stack.yaml", doc)
    assert main(["render", spec, "--target", "kubernetes"]) == 2
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
