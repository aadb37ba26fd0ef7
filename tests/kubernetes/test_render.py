"""The kubernetes target's manifests: golden files, Kubernetes' own schemas (kubernetes-validate,
offline, strict) for the oldest and newest versions supported, checkov, the pod hardening, and
what each fleet's objects must say. No API server runs here: these check the manifests as files.

Regenerate the golden files after an intended change with
`GPUFLEET_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/kubernetes` and review the diff.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from k8s_render_helpers import GOLDEN, ROOT, example_doc, manifests, one, rendered  # noqa: E402

from infra.render.kubernetes import KUSTOMIZATION  # noqa: E402
from infra.render.kubernetes_serve import ADAPTER_RULES, serve_runtime_config  # noqa: E402
from infra.render.kubernetes_train import train_runtime_config  # noqa: E402
from infra.spec.kubernetes import GPU_RESOURCE  # noqa: E402
from runtime.serve.metrics import INFLIGHT_METRIC  # noqa: E402

# The oldest and newest Kubernetes versions the manifests are checked against (and supported).
VERSIONS = ("1.29.0", "1.37.0")
CHECKOV = ROOT / ".tools/checkov/bin/checkov"
STACK_LABELS = {"gpufleet.io/stack": "k8s-fleet", "app.kubernetes.io/part-of": "gpufleet",
                "app.kubernetes.io/name": "k8s-fleet"}


@pytest.fixture(scope="module")
def example():
    return rendered()


def pod_templates(objects):
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            yield obj, obj["spec"]["template"]


def test_render_matches_golden(example):
    files = example.files
    if os.environ.get("GPUFLEET_UPDATE_GOLDEN"):
        for rel, data in files.items():
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / rel).write_bytes(data)
    expected = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()}
    assert expected == set(files), "files rendered differ from the golden set"
    for rel, data in files.items():
        assert (GOLDEN / rel).read_text() == data.decode(), f"{rel} differs from golden"


def test_render_is_deterministic_and_one_file_per_object(example):
    again = rendered()
    assert again.files == example.files
    docs = manifests(example.files)
    assert len(docs) == len(example.objects)
    for name, doc in docs.items():
        assert name == f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
    kustomization = yaml.safe_load(example.files[KUSTOMIZATION])
    listed = set(kustomization["resources"])
    assert listed == {n for n in example.files if n.endswith(".yaml") and "/" not in n and n != KUSTOMIZATION}
    assert ADAPTER_RULES not in listed and kustomization["namespace"] == "ml-fleet"


def test_every_object_carries_the_stack_labels(example):
    for obj in example.objects:
        meta = obj["metadata"]
        assert STACK_LABELS.items() <= meta["labels"].items(), meta["name"]
        assert meta["labels"]["app.kubernetes.io/component"] in ("serve", "train", "data")
        assert meta["namespace"] == "ml-fleet"
    for _, template in pod_templates(example.objects):
        assert STACK_LABELS.items() <= template["metadata"]["labels"].items()


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(example, version):
    import kubernetes_validate

    for name, doc in manifests(example.files).items():
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any problem


@pytest.mark.parametrize("version", VERSIONS)
def test_a_planted_unknown_field_fails(example, version):
    import kubernetes_validate

    doc = copy.deepcopy(one(example.objects, "Deployment"))
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbes"):
        kubernetes_validate.validate(doc, version, strict=True)
    job = copy.deepcopy(one(example.objects, "Job", "k8s-fleet-train"))
    job["spec"]["parallelizm"] = 2  # a misspelt field of the Job itself
    with pytest.raises(kubernetes_validate.ValidationError, match="parallelizm"):
        kubernetes_validate.validate(job, version, strict=True)


def test_the_validator_cli_passes_on_the_rendered_directory(example, tmp_path):
    """The same check as a user runs it: `kubernetes-validate --strict -k VERSION FILES`."""
    for rel, data in example.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    files = sorted(str(tmp_path / n) for n in yaml.safe_load(example.files[KUSTOMIZATION])["resources"])
    exe = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    for version in VERSIONS:
        proc = subprocess.run([exe, "--strict", "--quiet", "-k", version, *files], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is not installed: run `make setup` (it goes in .tools/checkov)")
def test_checkov_passes_with_every_skip_justified(example, tmp_path):
    for rel, data in example.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    proc = subprocess.run([str(CHECKOV), "-d", str(tmp_path), "--framework", "kubernetes", "--skip-download",
                           "-o", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    assert sum(r["summary"]["passed"] for r in reports) > 200, "checkov scanned the manifests"
    assert not failed, "\n".join(f"{c['check_id']} {c['resource']} {c['file_path']}" for c in failed)
    for c in skipped:
        assert len((c.get("check_result") or {}).get("suppress_comment", "").strip()) > 20, (
            f"{c['check_id']} on {c['resource']} is skipped without a justification")
    assert {c["check_id"] for c in skipped} <= {"CKV_K8S_43", "CKV_K8S_15"}


def test_pods_are_hardened_with_requests_and_limits(example):
    for obj, template in pod_templates(example.objects):
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] >= 10000
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
            assert c["resources"]["requests"] == c["resources"]["limits"], c["name"]
            assert {"cpu", "memory"} <= set(c["resources"]["limits"])
            assert c["image"] == "registry.example.com/gpufleet-runtime:0.1.0"
            # a read-only root: everything written goes to a mounted volume
            assert any(m["mountPath"].endswith("/scratch") for m in c["volumeMounts"])


def test_serving_deployment(example):
    d = one(example.objects, "Deployment", "k8s-fleet-serve-main")
    pod = d["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"][GPU_RESOURCE] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    # the drain budget: deregistration window 10 s + drain timeout 30 s, plus 10 s
    assert pod["terminationGracePeriodSeconds"] == 50
    assert "kill -TERM 1" in c["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert {t["topologyKey"] for t in pod["topologySpreadConstraints"]} >= {"topology.kubernetes.io/zone"}
    assert "replicas" not in d["spec"], "the HPA owns the replica count"
    assert [i["name"] for i in pod["initContainers"]] == ["wait-for-model"]
    config = json.loads(one(example.objects, "ConfigMap", "k8s-fleet-serve-config")["data"]["serve.json"])
    assert config["serve"]["port"] == 8080 and config["serve"]["model"] == "artifacts/models/latest"
    svc = one(example.objects, "Service", "k8s-fleet-serve")
    assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["ports"][0]["targetPort"] == "http"
    pdb = one(example.objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()


def test_hpa_on_inflight_requests_needs_the_adapter_rule(example):
    hpa = one(example.objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == INFLIGHT_METRIC
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "16"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    rules = yaml.safe_load(example.files[ADAPTER_RULES])["rules"]["custom"]
    assert rules[0]["name"]["as"] == INFLIGHT_METRIC and rules[0]["seriesQuery"].startswith(INFLIGHT_METRIC)
    assert any("Prometheus Adapter" in w and "inflight_requests" in w for w in example.warnings)


def test_cpu_signal_is_a_resource_metric_without_adapter():
    doc = example_doc()
    doc["serving"]["autoscaling"] = {"metric": "cpu_utilization", "target": 60}
    r = rendered(doc)
    metric = one(r.objects, "HorizontalPodAutoscaler")["spec"]["metrics"][0]
    assert metric == {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                               "averageUtilization": 60}}}
    assert ADAPTER_RULES not in r.files and r.warnings == []


def test_requests_per_target_is_a_per_second_rate():
    doc = example_doc()
    doc["serving"]["autoscaling"] = {"metric": "requests_per_target", "target": 30}  # per minute, as on AWS
    metric = one(rendered(doc).objects, "HorizontalPodAutoscaler")["spec"]["metrics"][0]
    assert metric["pods"]["target"]["averageValue"] == "500m"


def test_training_job(example):
    job = one(example.objects, "Job", "k8s-fleet-train")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 2
    assert spec["backoffLimit"] == 3 and pod["restartPolicy"] == "Never"
    svc = one(example.objects, "Service", "k8s-fleet-train")
    assert svc["spec"]["clusterIP"] == "None" and pod["subdomain"] == svc["metadata"]["name"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["GPUFLEET_RENDEZVOUS_HOST"]["value"] == f"{job['metadata']['name']}-0.{svc['metadata']['name']}"
    assert "job-completion-index" in env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert {"key": "gpufleet.io/spot", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    config_map = one(example.objects, "ConfigMap", "k8s-fleet-train-config")
    config = json.loads(config_map["data"]["train.json"])
    assert config == train_runtime_config(rendered_stack())
    assert config["workload"]["data"] == "artifacts/datasets/clicks" and config["train"]["nodes"] == {"min": 1, "max": 2}
    init = pod["initContainers"][0]
    assert "gpufleet data inspect artifacts/datasets/clicks" in init["args"][0]
    data = one(example.objects, "Job", "k8s-fleet-data")
    assert "gpufleet data partition artifacts/raw/clicks.csv artifacts/datasets/clicks" in data["spec"]["template"][
        "spec"]["containers"][0]["args"][0]


def rendered_stack():
    from k8s_render_helpers import stack_of

    return stack_of(example_doc())


def test_serve_config_is_what_the_runtime_reads(example):
    """The ConfigMap's serve.json passes runtime.serve's own config check (unknown keys are errors)."""
    from runtime.serve.config import ServeConfig

    config = serve_runtime_config(rendered_stack())
    cfg = ServeConfig.from_dict(config["serve"])
    assert cfg.port == 8080 and cfg.drain_timeout_s == 30


def test_the_load_balancing_algorithm_kubernetes_cannot_honour_is_said():
    doc = example_doc()
    doc["serving"]["load_balancer"]["algorithm"] = "least_connections"
    r = rendered(doc)
    assert any(n.startswith("load_balancer.algorithm least_connections: NOT honoured") for n in r.notes)
    svc = one(r.objects, "Service", "k8s-fleet-serve")
    assert svc["metadata"]["annotations"]["gpufleet.io/load-balancing"] == "least_connections"


def test_user_claim_renders_no_claim_and_namespace_override():
    doc = example_doc()
    doc["kubernetes"]["storage"] = {"claim": "team-artifacts"}
    r = rendered(doc, namespace="other-ns")
    assert not [o for o in r.objects if o["kind"] == "PersistentVolumeClaim"]
    job = one(r.objects, "Job", "k8s-fleet-train")
    claims = [v["persistentVolumeClaim"]["claimName"] for v in job["spec"]["template"]["spec"]["volumes"]
              if "persistentVolumeClaim" in v]
    assert claims == ["team-artifacts"] and {o["metadata"]["namespace"] for o in r.objects} == {"other-ns"}


def test_a_digest_pulled_always_needs_no_checkov_skip():
    doc = example_doc()
    doc["kubernetes"].update(image="registry.example.com/gpufleet-runtime@sha256:" + "ab" * 32,
                             image_pull_policy="Always")
    for obj in rendered(doc).objects:
        assert not [k for k in obj["metadata"].get("annotations", {}) if k.startswith("checkov.io/")], obj["kind"]
