"""`make kind-e2e` (tests/kubernetes/kind_e2e.py): run where Docker and kind exist, skipped with the reason elsewhere.

The end-to-end run needs a Docker engine and kind, which these machines do not have (the Docker
client only); it is marked slow and skips with the driver's own reason. The fast tests check what
can go wrong without them: that the driver skips cleanly (exit 0, `skipped: <why>`), and that the
spec it derives from examples/k8s-gpu-fleet.yaml for a GPU-less kind cluster is one the kubernetes
target accepts and renders with CPU pods only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import kind_e2e  # noqa: E402

DRIVER = Path(kind_e2e.__file__)


def test_the_driver_skips_cleanly_naming_what_is_missing(tmp_path):
    """With no docker, kind or kubectl on PATH the driver exits 0 and says why, touching nothing."""
    def bundle_state():
        return kind_e2e.BUNDLE_DIR.stat().st_mtime_ns if kind_e2e.BUNDLE_DIR.exists() else None

    before = bundle_state()
    res = subprocess.run([sys.executable, str(DRIVER)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PATH": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "skipped: no docker on PATH (a Docker engine is needed to run kind)"
    assert bundle_state() == before  # nothing built before the tools were checked


def test_the_kind_spec_is_accepted_and_renders_cpu_pods_with_the_loaded_image(tmp_path, monkeypatch):
    from infra.targets import TARGETS

    if "kubernetes" not in TARGETS:
        pytest.skip("the kubernetes target is not registered in this checkout (infra/targets/kubernetes.py)")
    import yaml

    spec = tmp_path / "kind-e2e.yaml"
    spec.write_text(yaml.safe_dump(kind_e2e.kind_spec("gpufleet-runtime:kind-e2e"), sort_keys=False))
    res = subprocess.run([sys.executable, "-m", "infra.cli", "render", str(spec), "--target", "kubernetes"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "warning" not in res.stderr, res.stderr  # cpu_utilization needs no adapter
    docs = [d for p in (tmp_path / "build").rglob("kubernetes/*.yaml") for d in yaml.safe_load_all(p.read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Job", "Service", "HorizontalPodAutoscaler"} <= kinds, kinds
    assert "PersistentVolumeClaim" not in kinds  # the driver's own claim is used, not rendered
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "Job")]
    for pod in pods:
        for c in pod.get("initContainers", []) + pod["containers"]:
            assert c["image"] == "gpufleet-runtime:kind-e2e" and c["imagePullPolicy"] == "Never"
            assert "nvidia.com/gpu" not in c.get("resources", {}).get("limits", {}), c["name"]
        assert not pod.get("nodeSelector") and not pod.get("tolerations")
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert claims == [kind_e2e.CLAIM]
    train = next(d for d in docs if d["kind"] == "Job" and d["spec"].get("completionMode") == "Indexed")
    assert train["spec"]["completions"] == 2


@pytest.mark.slow
def test_kind_end_to_end():
    reason = kind_e2e.missing_tools()
    if reason:
        pytest.skip(f"kind end to end: {reason}")
    res = subprocess.run([sys.executable, str(DRIVER)], capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "passed: kind end to end" in res.stdout


RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
if [ "$1" = info ]; then echo 28.2.2; fi
exit 0
"""


def test_the_driver_runs_its_steps_against_fake_docker_kind_and_kubectl(tmp_path, monkeypatch):
    """The driver's own logic, end to end, with `docker`, `kind` and `kubectl` as recording fakes first
    on PATH and a loopback HTTP server as the port-forwarded Service: it proves the steps run in order,
    that `gpufleet apply`/`destroy --target kubernetes` are really run (through the fake kubectl), that
    the cluster is deleted, and that the predictions are checked. Not that kind works: that is the slow test."""
    from infra.targets import TARGETS

    if "kubernetes" not in TARGETS:
        pytest.skip("the kubernetes target is not registered in this checkout (infra/targets/kubernetes.py)")
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import fake_kubectl

    class Replica(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            out = json.dumps({"predictions": [1] * len(body["instances"])}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Replica)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bin_dir, log = tmp_path / "bin", tmp_path / "tools.log"
    stack = kind_e2e.STACK
    fake_kubectl.install(bin_dir, {
        "contexts": ["kind-gpufleet-e2e"], "namespaces": [kind_e2e.NAMESPACE],
        "apply_out": f"deployment.apps/{stack}-serve-main\njob.batch/{stack}-train\n",
        "jobs": [[{"name": f"{stack}-train", "state": "complete"}]],
        "names": {"jobs.batch": f"job.batch/{stack}-train\n", "services": f"service/{stack}-serve\n"},
        "jsonpath": "2", "forward_port": server.server_address[1],
        "delete_out": f"deployment.apps/{stack}-serve-main\n"})
    for tool in ("docker", "kind"):
        (bin_dir / tool).write_text(RECORDER.format(log=log))
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(kind_e2e, "BUNDLE_DIR", tmp_path / "bundle")
    try:
        assert kind_e2e.missing_tools() is None
        work = tmp_path / "work"
        work.mkdir()
        kind_e2e.e2e(work, "gpufleet-e2e", "gpufleet-runtime:kind-e2e", None, keep=False)
    finally:
        server.shutdown()
    tools = [line for line in log.read_text().splitlines() if not line.startswith("docker info")]
    assert tools[0] == f"docker build -t gpufleet-runtime:kind-e2e {kind_e2e.REPO}"
    assert tools[1].startswith("kind create cluster --name gpufleet-e2e --kubeconfig ")
    assert tools[2] == "kind load docker-image gpufleet-runtime:kind-e2e --name gpufleet-e2e"
    assert tools[-1].startswith("kind delete cluster --name gpufleet-e2e")
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["gpufleet-0.1.0-py3-none-any.whl",
                                                                       "requirements.txt"]
    assert all(c[:2] == ["--context", "kind-gpufleet-e2e"] for c in fake_kubectl.calls(bin_dir) if c[0] != "config")
    flat = [" ".join(c) for c in fake_kubectl.calls(bin_dir)]
    i_data = next(i for i, c in enumerate(flat) if " exec -i dataset-loader " in c)
    i_apply = next(i for i, c in enumerate(flat) if " apply --server-side " in c)
    i_wait = next(i for i, c in enumerate(flat) if "wait --for=condition=complete job.batch/kind-e2e-train" in c)
    i_forward = next(i for i, c in enumerate(flat) if " port-forward " in c)
    i_delete = next(i for i, c in enumerate(flat) if " delete deployments.apps," in c)
    assert i_data < i_apply < i_wait < i_forward < i_delete, flat
