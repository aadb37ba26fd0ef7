"""Rendering a resolved stack to plain Kubernetes manifests (build/<stack>/kubernetes/ by default).

Output: one YAML file per object, named `<kind>-<name>.yaml` (stable: an unchanged spec changes
no byte), and a `kustomization.yaml` listing them, so `kubectl apply -k DIR` applies the stack
without gpufleet. Every object carries the stack's labels (`gpufleet.io/stack: <name>` among
them: destroy deletes exactly what carries it). Beside them, outside the kustomization,
`prometheus-adapter/rules.yaml` when the scaling signal is a Pods metric (kubernetes_serve.py
says why) and `plan.txt`, what Kubernetes honours of the spec. Writing goes through
infra.render.render.write_tree: every file is staged and renamed into place, so a failed render
leaves the previous one as it was, and a spec that fails its checks writes nothing.

Objects: per fleet see kubernetes_serve.py and kubernetes_train.py; here the artifacts volume's
claim (unless the spec names the user's own), and NetworkPolicies: serving pods take traffic on
their HTTP port only, training pods only from each other, the data Job from nobody.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from infra.render.kubernetes_pods import labels, metadata, selector
from infra.render.kubernetes_serve import serve_objects
from infra.render.kubernetes_train import pod_count, train_objects
from infra.spec.kubernetes import DNS1123_LABEL, DNS1123_SUBDOMAIN, capacity_kind, kubernetes_problems, namespace_of
from runtime.errors import BadInput

OUT_SUBDIR = "kubernetes"
KUSTOMIZATION = "kustomization.yaml"
PLAN_NOTES = "plan.txt"
# Object kinds whose names become DNS labels (a Service's name is a DNS label; so are pod hostnames).
LABEL_NAMED = {"Service", "Job", "Deployment"}


@dataclass
class Rendered:
    """The manifests of a stack: files by relative path, what the cluster needs (warnings) and
    what Kubernetes can and cannot honour of the spec (notes, for the plan)."""

    files: dict[str, bytes]
    objects: list[dict]
    namespace: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def default_out_dir(r) -> Path:
    from infra.render.render import default_out_dir as root

    return root(r) / OUT_SUBDIR


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (a ConfigMap's JSON) as literal blocks, readable in review."""


def _str(dumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(obj) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def file_name(obj: dict) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def claim_name(r) -> str:
    return r.spec.kubernetes.storage.claim or f"{r.name}-artifacts"


def _claim(r, namespace: str) -> dict | None:
    st = r.spec.kubernetes.storage
    if st.claim:
        return None
    spec = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": st.size}}}
    if st.storage_class:
        spec["storageClassName"] = st.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": metadata(claim_name(r), namespace, labels(r.name, "data")), "spec": spec}


def _network_policy(r, namespace: str, component: str, ingress: list[dict]) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": metadata(f"{r.name}-{component}", namespace, labels(r.name, component)),
            "spec": {"podSelector": {"matchLabels": selector(r.name, component)}, "policyTypes": ["Ingress"],
                     "ingress": ingress}}


def _network_policies(r, namespace: str) -> list[dict]:
    out = []
    if r.spec.serving is not None:
        out.append(_network_policy(r, namespace, "serve", [{"ports": [{"port": "http", "protocol": "TCP"}]}]))
    if r.spec.training is not None:
        out.append(_network_policy(r, namespace, "train",
                                   [{"from": [{"podSelector": {"matchLabels": selector(r.name, "train")}}]}]))
        if r.spec.kubernetes.data is not None:
            out.append(_network_policy(r, namespace, "data", []))
    return out


def _check_names(objects: list[dict]) -> None:
    problems = []
    for obj in objects:
        name = obj["metadata"]["name"]
        pattern = DNS1123_LABEL if obj["kind"] in LABEL_NAMED else DNS1123_SUBDOMAIN
        if not re.fullmatch(pattern, name):
            problems.append(f"name: the {obj['kind']} name {name!r} is not a DNS-1123 "
                            f"{'label' if obj['kind'] in LABEL_NAMED else 'subdomain'} (shorten the stack's name)")
    if problems:
        raise BadInput(problems)


def plan_notes(r) -> list[str]:
    """What Kubernetes honours of the spec, and what it cannot, one line each."""
    s = r.spec
    notes = []
    if s.serving is not None:
        sv, lb = s.serving, s.serving.load_balancer
        algo = lb.algorithm
        if algo == "round_robin":
            notes.append("load_balancer.algorithm round_robin: honoured per connection by kube-proxy (IPVS mode: round "
                         "robin; iptables mode: a random endpoint per connection); keep-alive clients stick to one pod")
        elif algo == "least_connections":
            notes.append("load_balancer.algorithm least_connections: NOT honoured by a Service: kube-proxy has no "
                         "least-connections choice per Service; route through an Ingress or Gateway whose controller "
                         "balances by outstanding requests (ingress-nginx `load-balance: ewma`, Envoy Gateway "
                         "LeastRequest); the Service carries the asked-for algorithm as an annotation")
        else:
            notes.append("load_balancer.algorithm weighted_round_robin: pool weights NOT honoured by a Service (it splits "
                         "by ready pods); a Gateway HTTPRoute with weighted backendRefs per pool can")
        notes.append(f"load_balancer.listener: the ClusterIP Service {s.name}-serve on port {lb.listener.port}; "
                     "certificates, domains and exposure outside the cluster are your Ingress/Gateway's")
        if lb.slow_start_s:
            notes.append("load_balancer.slow_start_s: not honoured (no slow start in kube-proxy)")
        notes.append(f"load_balancer.health_check: the readiness probe on {lb.health_check.path} (period, timeout and "
                     "thresholds as given); liveness on /livez")
        notes.append(f"drain: terminationGracePeriodSeconds {int(r.serving_drain_s) + 10} s = deregistration window "
                     f"{lb.deregistration_delay_s} s + drain timeout {sv.drain_timeout_s} s + 10 s; preStop starts it")
        a = sv.autoscaling
        if a is not None:
            zero = " (min 0 becomes 1: scaling to zero needs the HPAScaleToZero feature gate)" if any(
                p.size.min == 0 for p in r.pools) else ""
            notes.append(f"autoscaling: an HPA per pool, {a.metric} target {a.target:g}, min/max replicas from the pool"
                         f"{zero}, scale-out/in cooldowns as stabilization windows {a.scale_out_cooldown_s}/"
                         f"{a.scale_in_cooldown_s} s; warmup_s {a.warmup_s} not honoured per HPA (the controller's "
                         "--horizontal-pod-autoscaler-cpu-initialization-period; readiness gates new pods)")
        else:
            notes.append("autoscaling: none; each pool's Deployment runs replicas.desired pods")
        for pool in r.pools:
            if capacity_kind(pool.capacity) == "mixed":
                notes.append(f"serving pool {pool.name} capacity mixed: pods tolerate the spot pool; the on-demand "
                             "base is not expressible (no per-replica placement in a Deployment)")
    if s.training is not None:
        t = s.training
        notes.append(f"training: an Indexed Job of {pod_count(r)} pod(s) (nodes.desired), elastic down to "
                     f"nodes.min {t.nodes.min}; nodes.max {t.nodes.max} cannot grow a fixed-size Job")
        notes.append("training: a Job's pod template is immutable: to change training, delete the Job "
                     "(`gpufleet destroy` or kubectl delete job) and apply again")
    if r.spec.kubernetes.storage.claim is None:
        notes.append(f"storage: the rendered claim {claim_name(r)} (ReadWriteMany) carries the stack's label, so "
                     "destroy deletes it with the dataset, checkpoints and models; name your own with storage.claim "
                     "to keep them")
    return notes


def render_manifests(r, namespace: str | None = None) -> Rendered:
    """The manifests of `r` (BadInput with every problem, before anything is written)."""
    problems = kubernetes_problems(r)
    if problems:
        raise BadInput(problems)
    ns = namespace or namespace_of(r)
    if not re.fullmatch(DNS1123_LABEL, ns):
        raise BadInput(f"--namespace: not a DNS-1123 label (got {ns!r}; allowed: a-z, 0-9 and -, starting and "
                       "ending with a letter or digit, at most 63 characters)")
    claim = claim_name(r)
    objects: list[dict] = []
    extra: dict[str, dict] = {}
    warnings: list[str] = []
    pvc = _claim(r, ns)
    if pvc is not None:
        objects.append(pvc)
    if r.spec.training is not None:
        objects += train_objects(r, ns, claim)
    if r.spec.serving is not None:
        serve, serve_extra, serve_warnings = serve_objects(r, ns, claim)
        objects += serve
        extra.update(serve_extra)
        warnings += serve_warnings
    objects += _network_policies(r, ns)
    _check_names(objects)
    files: dict[str, bytes] = {}
    for obj in objects:
        files[file_name(obj)] = dump(obj).encode()
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": ns,
                     "resources": sorted(files)}
    files[KUSTOMIZATION] = (f"# gpufleet: the stack {r.name}; `kubectl apply -k .` applies it as rendered.\n"
                            + dump(kustomization)).encode()
    for rel, doc in extra.items():
        files[rel] = ("# Prometheus Adapter rules (its Helm chart's values) that serve the HPA's Pods metric.\n"
                      "# Merge into the adapter's values (helm upgrade ... -f rules.yaml); not part of the kustomization.\n"
                      + dump(doc)).encode()
    notes = plan_notes(r)
    files[PLAN_NOTES] = ("".join(f"{line}\n" for line in
                                 [f"# what Kubernetes honours of stack {r.name} (gpufleet plan prints this)"] + notes)).encode()
    return Rendered(files=files, objects=objects, namespace=ns, warnings=warnings, notes=notes)


def render(r, out_dir: Path | None = None, namespace: str | None = None) -> tuple[Path, Rendered]:
    """Render the manifests into out_dir (default build/<name>/kubernetes/); (out_dir, what was rendered)."""
    from infra.render.render import write_tree

    rendered = render_manifests(r, namespace)
    out = Path(out_dir) if out_dir else default_out_dir(r)
    write_tree(out, rendered.files)
    return out, rendered
