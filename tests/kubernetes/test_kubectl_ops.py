"""The kubernetes target's cluster operations (infra/targets/kubectl.py).

- Contexts: a real `kubectl` reads a kubeconfig written here (no API server is needed for
  `kubectl config`); skipped, with that reason, where kubectl is not installed.
- No kubectl on PATH: BadInput saying how to get one.
- apply, destroy, diff and the namespace checks: no Kubernetes API server can run on these
  machines (no Docker engine for kind, no kube-apiserver binary), so the exact commands are
  checked against a recording fake `kubectl` first on PATH (fake_kubectl.py), which answers from a
  scenario. That the commands are accepted by a real cluster is the server-side dry run below
  (where KUBECONFIG reaches one) and `make kind-e2e` (where Docker and kind exist).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import fake_kubectl  # noqa: E402

from infra.targets import kubectl  # noqa: E402
from runtime.errors import BadInput, OperationFailed  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "k8s-gpu-fleet.yaml"
NO_KUBECTL = "no kubectl on PATH (the contexts test reads a kubeconfig with a real kubectl)"

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: someone
  user: {token: not-a-secret}
contexts:
- name: kind-gpufleet
  context: {cluster: nowhere, user: someone}
- name: prod-gpus
  context: {cluster: nowhere, user: someone, namespace: ml-fleet}
"""


# -- contexts, with a real kubectl and a kubeconfig of our own


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    """A kubeconfig with two contexts (a cluster at 127.0.0.1:1 that nothing answers), as $KUBECONFIG."""
    if shutil.which("kubectl") is None:
        pytest.skip(NO_KUBECTL)

    def write(current: str | None) -> Path:
        path = tmp_path / "kubeconfig"
        path.write_text(KUBECONFIG + (f"current-context: {current}\n" if current else ""))
        monkeypatch.setenv("KUBECONFIG", str(path))
        return path

    return write


def test_a_context_that_does_not_exist_is_bad_input_naming_it_and_listing_those_that_do(kubeconfig):
    kubeconfig("kind-gpufleet")
    with pytest.raises(BadInput) as err:
        kubectl.resolve_context("prod-gpu")
    msg = str(err.value)
    assert "'prod-gpu'" in msg and "kind-gpufleet" in msg and "prod-gpus" in msg, msg
    assert msg.startswith("--context:")


def test_the_context_is_the_one_named_else_kubectls_current_context(kubeconfig):
    kubeconfig("kind-gpufleet")
    assert kubectl.resolve_context(None) == "kind-gpufleet"
    assert kubectl.resolve_context("prod-gpus") == "prod-gpus"


def test_no_context_named_and_none_current_is_bad_input(kubeconfig):
    kubeconfig(None)
    with pytest.raises(BadInput, match="no current-context.*kind-gpufleet, prod-gpus"):
        kubectl.resolve_context(None)


def test_no_kubectl_on_path_is_bad_input_saying_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BadInput, match="no kubectl on PATH; install kubectl"):
        kubectl.resolve_context("anything")


# -- the commands sent to a cluster, recorded by a fake kubectl (no API server can run here)

CTX, NS, STACK = "prod-gpus", "ml-fleet", "k8s-fleet"
APPLIED = (f"configmap/{STACK}-config\nservice/{STACK}-serve\nservice/{STACK}-train\n"
           f"deployment.apps/{STACK}-serve\njob.batch/{STACK}-data\njob.batch/{STACK}-train\n")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Install the recording kubectl first on PATH with a scenario; returns (calls(), manifest dir)."""
    bin_dir = tmp_path / "bin"
    manifests = tmp_path / "kubernetes"
    manifests.mkdir()
    (manifests / "kustomization.yaml").write_text("resources: []\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(kubectl, "JOB_POLL_S", 0.0)

    def setup(**scenario):
        scenario.setdefault("contexts", [CTX])
        scenario.setdefault("namespaces", [NS])
        fake_kubectl.install(bin_dir, scenario)
        return (lambda: fake_kubectl.calls(bin_dir)), manifests

    return setup


def _can_i(verbs):
    return sorted(["--context", CTX, "auth", "can-i", v, k, "-n", NS, "--request-timeout=15s"]
                  for v in verbs for k in kubectl.STACK_KINDS)


def test_apply_checks_the_namespace_then_applies_server_side_waits_for_jobs_then_rollouts(fake):
    calls, manifests = fake(apply_out=APPLIED, jobs=[
        [{"name": f"{STACK}-data", "state": "pending"}, {"name": f"{STACK}-train", "state": "pending"}],
        [{"name": f"{STACK}-data", "state": "complete"}, {"name": f"{STACK}-train", "state": "running"}],
    ])
    events = []
    kubectl.apply(manifests, CTX, NS, STACK, progress=events.append)
    made = calls()
    assert made[0] == ["--context", CTX, "get", "namespace", NS, "-o", "name", "--request-timeout=15s"]
    checks = len(kubectl.APPLY_VERBS) * len(kubectl.STACK_KINDS)
    assert sorted(made[1:1 + checks]) == _can_i(kubectl.APPLY_VERBS)
    get_jobs = ["--context", CTX, "get", "jobs.batch", "-n", NS, "-l", f"gpufleet.io/stack={STACK}", "-o", "json"]
    assert made[1 + checks:] == [
        ["--context", CTX, "apply", "--server-side", "--field-manager=gpufleet", "-n", NS, "-k", str(manifests),
         "-o", "name"],
        get_jobs, get_jobs,  # pending, then both started
        ["--context", CTX, "rollout", "status", f"deployment.apps/{STACK}-serve", "-n", NS, "--timeout=600s"],
    ]
    done = [(e["hook"]["resource"]["addr"], e["hook"]["action"]) for e in events if e["type"] == "apply_complete"]
    assert done[:6] == [(addr, "apply") for addr in APPLIED.split()]  # one per applied object, in kubectl's order
    assert set(done[6:]) == {(f"job.batch/{STACK}-data: complete", "read"), (f"job.batch/{STACK}-train: running", "read"),
                             (f"deployment.apps/{STACK}-serve: rolled out", "read")}


def test_apply_progress_events_read_as_terraform_progress(fake):
    """The CLI's ApplyProgress (made for Terraform's -json stream) counts the applied objects and prints the waits."""
    from infra.terraform.runner import ApplyProgress

    calls, manifests = fake(apply_out=APPLIED, jobs=[[{"name": f"{STACK}-train", "state": "complete"}]])
    lines = []
    progress = ApplyProgress(lines.append)
    kubectl.apply(manifests, CTX, NS, STACK, progress=progress, check=False)
    assert progress.done == 6  # the applied objects; the waits read status and are not counted
    assert any(f"rollout deployment.apps/{STACK}-serve ..." in line for line in lines), lines
    assert any(f"done deployment.apps/{STACK}-serve: rolled out" in line for line in lines), lines
    assert any(f"done job.batch/{STACK}-train: complete" in line for line in lines), lines


def test_a_namespace_the_user_cannot_write_is_bad_input_and_nothing_is_applied(fake):
    calls, manifests = fake(apply_out=APPLIED, refuse=["patch deployments.apps", "create jobs.batch"])
    with pytest.raises(BadInput) as err:
        kubectl.apply(manifests, CTX, NS, STACK)
    problems = err.value.problems
    assert len(problems) == 2
    assert any("may not patch deployments.apps in namespace 'ml-fleet'" in p for p in problems), problems
    assert any("may not create jobs.batch in namespace 'ml-fleet'" in p for p in problems), problems
    assert not [c for c in calls() if "apply" in c]


def test_a_namespace_that_does_not_exist_is_bad_input_saying_how_to_create_it(fake):
    calls, manifests = fake(namespaces=[])
    with pytest.raises(BadInput, match=r"namespace 'ml-fleet' does not exist in context 'prod-gpus' \(create it: "
                                        r"kubectl --context prod-gpus create namespace ml-fleet\)"):
        kubectl.apply(manifests, CTX, NS, STACK)
    assert [c[2] for c in calls()] == ["get"]


def test_no_kustomization_is_bad_input_before_any_kubectl_call(fake, tmp_path):
    calls, _ = fake()
    with pytest.raises(BadInput, match="no kustomization.yaml here; render the stack first"):
        kubectl.apply(tmp_path / "empty", CTX, NS, STACK)
    assert calls() == []


def test_a_kubectl_error_becomes_one_line_naming_the_command(fake):
    calls, manifests = fake(apply_fail='Error from server (Forbidden): deployments.apps "k8s-fleet-serve" is forbidden')
    with pytest.raises(OperationFailed) as err:
        kubectl.apply(manifests, CTX, NS, STACK, check=False)
    msg = str(err.value)
    assert "\n" not in msg and "memcache" not in msg, msg
    assert msg == 'kubectl apply: Error from server (Forbidden): deployments.apps "k8s-fleet-serve" is forbidden'


def test_a_failed_job_stops_apply_naming_it_before_any_rollout_wait(fake):
    calls, manifests = fake(apply_out=APPLIED, jobs=[[{"name": f"{STACK}-data", "state": "failed"}]])
    with pytest.raises(OperationFailed, match=f"job.batch/{STACK}-data failed in namespace 'ml-fleet'"):
        kubectl.apply(manifests, CTX, NS, STACK, check=False)
    assert not [c for c in calls() if "rollout" in c]


def test_jobs_not_started_in_time_fail_naming_them(fake):
    calls, manifests = fake(apply_out=APPLIED, jobs=[[{"name": f"{STACK}-train", "state": "pending"}]])
    with pytest.raises(OperationFailed, match=f"job.batch/{STACK}-train not started after 0 s"):
        kubectl.apply(manifests, CTX, NS, STACK, check=False, job_timeout_s=0)


def test_apply_can_wait_for_jobs_to_complete(fake):
    rounds = [[{"name": f"{STACK}-train", "state": "running"}]] * 3 + [[{"name": f"{STACK}-train", "state": "complete"}]]
    calls, manifests = fake(apply_out=APPLIED, jobs=rounds)
    kubectl.apply(manifests, CTX, NS, STACK, check=False, jobs="complete")
    assert sum(1 for c in calls() if "jobs.batch" in c) == 4


def test_destroy_deletes_exactly_the_stacks_labelled_objects_of_the_listed_kinds(fake):
    calls, _ = fake(delete_out=f"deployment.apps/{STACK}-serve\njob.batch/{STACK}-train\n")
    events = []
    kubectl.destroy(CTX, NS, STACK, progress=events.append)
    made = calls()
    assert sorted(made[1:-1]) == _can_i(kubectl.DESTROY_VERBS)
    assert made[-1] == ["--context", CTX, "delete", ",".join(kubectl.STACK_KINDS), "-n", NS,
                        "-l", f"gpufleet.io/stack={STACK}", "--cascade=foreground", "--wait=true",
                        "--ignore-not-found=true", "--timeout=300s", "-o", "name"]
    assert "all" not in made[-1][3].split(",")
    assert [e["hook"]["resource"]["addr"] for e in events] == [f"deployment.apps/{STACK}-serve", f"job.batch/{STACK}-train"]


def test_diff_returns_the_differences_and_exit_1_is_not_an_error(fake):
    calls, manifests = fake(diff_rc=1, diff_out="--- live\n+++ merged\n-  replicas: 2\n")
    assert "+++ merged" in kubectl.diff(manifests, CTX)
    assert calls()[-1] == ["--context", CTX, "diff", "--server-side", "--field-manager=gpufleet", "-k", str(manifests)]
    fake(diff_rc=2)
    with pytest.raises(OperationFailed, match="kubectl diff: error: diff failed"):
        kubectl.diff(manifests, CTX)


def test_destroy_kinds_cover_every_kind_the_target_renders(tmp_path):
    """STACK_KINDS must name every kind the kubernetes target renders, or destroy would leave it behind."""
    from infra.targets import TARGETS

    if "kubernetes" not in TARGETS:
        pytest.skip("the kubernetes target is not registered in this checkout (infra/targets/kubernetes.py)")
    import yaml

    res = subprocess.run([sys.executable, "-m", "infra.cli", "render", str(EXAMPLE), "--target", "kubernetes"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    kinds = set()
    for path in (tmp_path / "build").rglob("kubernetes/*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and path.name != "kustomization.yaml" and "kind" in doc:
                kinds.add(doc["kind"])
    plural = {"Deployment": "deployments.apps", "Job": "jobs.batch", "Service": "services", "ConfigMap": "configmaps",
              "PodDisruptionBudget": "poddisruptionbudgets.policy",
              "HorizontalPodAutoscaler": "horizontalpodautoscalers.autoscaling",
              "PersistentVolumeClaim": "persistentvolumeclaims", "ServiceAccount": "serviceaccounts",
              "NetworkPolicy": "networkpolicies.networking.k8s.io"}
    assert kinds, "the render wrote no manifests"
    missing = sorted(k for k in kinds if plural.get(k) not in kubectl.STACK_KINDS)
    assert not missing, f"rendered kinds destroy does not delete: {missing}"


# -- a real cluster, where KUBECONFIG reaches one


def _reachable_cluster() -> str | None:
    """The current context when $KUBECONFIG points at a cluster that answers, else None."""
    if not os.environ.get("KUBECONFIG") or shutil.which("kubectl") is None:
        return None
    res = subprocess.run(["kubectl", "version", "--request-timeout=5s", "-o", "json"], capture_output=True, text=True)
    if res.returncode != 0 or "serverVersion" not in res.stdout:
        return None
    return subprocess.run(["kubectl", "config", "current-context"], capture_output=True, text=True).stdout.strip()


def test_the_rendered_example_passes_a_server_side_dry_run(tmp_path):
    """`kubectl apply --dry-run=server -k`: the API server (schemas, defaults, admission) accepts the manifests.

    Runs only where $KUBECONFIG points at a reachable cluster (none can run here); the manifests go
    into the context's `default` namespace through a kustomize overlay, and nothing is persisted.
    """
    context = _reachable_cluster()
    if context is None:
        pytest.skip("KUBECONFIG does not point at a reachable cluster (no API server can run on this machine)")
    res = subprocess.run([sys.executable, "-m", "infra.cli", "render", str(EXAMPLE), "--target", "kubernetes"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rendered = next((tmp_path / "build").rglob("kubernetes/kustomization.yaml")).parent
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(json.dumps({"namespace": "default", "resources": [os.path.relpath(rendered, overlay)]}))
    dry = subprocess.run(["kubectl", "--context", context, "apply", "--dry-run=server", "--server-side",
                          "--field-manager=gpufleet", "-k", str(overlay)], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr


def test_error_line_keeps_kubectls_own_message_and_drops_client_go_logs():
    stderr = ('E1202 18:31:14.812396    6734 memcache.go:265] "Unhandled Error" err="couldn\'t get current server API"\n'
              "E1202 18:31:14.814862    6734 memcache.go:265] \"Unhandled Error\"\n"
              "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?\n")
    assert kubectl.error_line(stderr) == ("The connection to the server 127.0.0.1:1 was refused - did you specify the "
                                          "right host or port?")
    assert kubectl.error_line("Error from server (Invalid): a\nError from server (Invalid): b\n") == (
        "Error from server (Invalid): a (and 1 more error line(s))")
    assert kubectl.error_line("E1202 18:31:14.8 1 x.go:1] only logs\n") == "failed without a message"
