"""The serving fleet on Kubernetes: per pool a Deployment, a PodDisruptionBudget and (with
`serving.autoscaling`) a HorizontalPodAutoscaler; one Service and one ConfigMap for all pools;
and the Prometheus Adapter rule a Pods metric needs.

- Replicas run `gpufleet serve --config config/serve/serve.json --host 0.0.0.0`: the runtime
  config's `serve` section, as an instance reads it, without the instance's agent (the HPA scales
  and the kubelet drains; the agent's CloudWatch/Cloud Monitoring metric and lifecycle hook have
  no counterpart here).
- Drain: the runtime drains on SIGTERM (readiness false at once, requests still served for the
  deregistration window, then in-flight requests finish, within drain_timeout_s); a second signal
  exits at once. The preStop hook sends that SIGTERM to the replica (PID 1) and waits for it to
  exit, so the drain starts as soon as the pod is deleted and the kubelet's own SIGTERM, sent when
  preStop returns, never lands as the second one. terminationGracePeriodSeconds is the drain
  budget (deregistration window + drain timeout) plus a margin.
- Scaling signals (one vocabulary with the other targets): cpu_utilization is a Resource metric
  (metrics-server); inflight_requests (the replica's gauge gpufleet_serve_inflight_requests),
  requests_per_target (requests per minute per replica, as on AWS: a per-second rate here) and
  gpu_utilization (DCGM exporter's DCGM_FI_DEV_GPU_UTIL) are Pods metrics from the custom
  metrics API, which needs the Prometheus Adapter: the rule is rendered to
  prometheus-adapter/rules.yaml, outside the kustomization, because it belongs to the adapter's
  own configuration (its Helm values, in its namespace), not to the stack's namespace.
"""

from __future__ import annotations

import json

from infra.render.kubernetes_pods import (CONFIG_HASH_ANNOTATION, POOL_LABEL, checkov_skips, config_hash, container, labels,
                                          metadata, mounts, pod_ip_env, pod_spec, quantity, resources, selector,
                                          volumes, wait_container)
from infra.render.runtime_config import runtime_config
from infra.spec.kubernetes import ARTIFACTS_DIR, capacity_kind, pods, volume_path
from runtime.serve.metrics import INFLIGHT_METRIC, REQUESTS_METRIC

COMPONENT = "serve"
CONFIG_FILE = "serve.json"
SERVE_CONFIG_PATH = f"config/{COMPONENT}/{CONFIG_FILE}"
MODEL_DIR = f"{ARTIFACTS_DIR}/models/latest"
STOP_MARGIN_S = 10
LIVENESS = {"path": "/livez", "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
# scaling metric -> (Pods metric name the HPA asks for, the adapter's seriesQuery, its metricsQuery, what serves it)
REQUESTS_PER_SECOND = "gpufleet_serve_requests_per_second"
PODS_METRICS = {
    "inflight_requests": (INFLIGHT_METRIC, f'{INFLIGHT_METRIC}{{namespace!="",pod!=""}}',
                          "avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)", "the Prometheus Adapter"),
    "requests_per_target": (REQUESTS_PER_SECOND, f'{REQUESTS_METRIC}_total{{namespace!="",pod!=""}}',
                            "sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)", "the Prometheus Adapter"),
    "gpu_utilization": ("DCGM_FI_DEV_GPU_UTIL", 'DCGM_FI_DEV_GPU_UTIL{namespace!="",pod!=""}',
                        "avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
                        "the Prometheus Adapter and NVIDIA's DCGM exporter (scraped with honorLabels, so its "
                        "series keep the GPU's pod and namespace)"),
}
ADAPTER_RULES = "prometheus-adapter/rules.yaml"


def serve_runtime_config(r) -> dict:
    """The serve role's runtime config as the ConfigMap holds it: infra.render.runtime_config's,
    with the model on the artifacts volume (or the spec's model_uri) and no bucket, agent or
    instance groups (the pod's --host flag binds all interfaces)."""
    config = runtime_config(r, "serve")
    config["cloud"] = "kubernetes"
    for unused in ("bundle", "region"):  # the image holds the runtime; no cloud region
        config.pop(unused, None)
    config["artifacts"] = {"bucket_env": None, "models": MODEL_DIR + "/"}
    serve = dict(config["serve"])
    serve.pop("host")
    serve["model"] = volume_path(r.spec.serving.model_uri) if r.spec.serving.model_uri else MODEL_DIR
    config["serve"] = serve
    for section in ("agent", "scaling"):
        config.pop(section, None)
    return config


def drain_budget_s(r) -> int:
    return int(r.serving_drain_s) + STOP_MARGIN_S


def _probe(path: str, period: int, timeout: int, failure: int, success: int = 1) -> dict:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": timeout,
            "failureThreshold": failure, "successThreshold": success}


def _deployment(r, pool, namespace: str, config_sha: str, claim: str) -> dict:
    s, k = r.spec, r.spec.kubernetes
    sv, hc = s.serving, s.serving.load_balancer.health_check
    p = pods(k.serving, pool.gpus_per_node, capacity_kind(pool.capacity))
    pod_labels = labels(s.name, COMPONENT, **{POOL_LABEL: pool.name})
    prestop = "kill -TERM 1; while kill -0 1 2>/dev/null; do sleep 1; done"
    serve = container(
        "serve", k.image, k.image_pull_policy, ["gpufleet"],
        ["serve", "--config", SERVE_CONFIG_PATH, "--host", "0.0.0.0"], [pod_ip_env()], resources(p),
        mounts(COMPONENT, artifacts_read_only=True),
        ports=[{"name": "http", "containerPort": sv.port, "protocol": "TCP"}],
        readinessProbe=_probe(hc.path, hc.interval_s, hc.timeout_s, hc.unhealthy_threshold, hc.healthy_threshold),
        livenessProbe=_probe(LIVENESS["path"], LIVENESS["periodSeconds"], LIVENESS["timeoutSeconds"],
                             LIVENESS["failureThreshold"]),
        lifecycle={"preStop": {"exec": {"command": ["/bin/sh", "-c", prestop]}}},
    )
    init = []
    if not sv.model_uri:  # the model comes from this stack's training Job
        init.append(wait_container("wait-for-model", k.image, k.image_pull_policy,
                                   f"[ -f {MODEL_DIR}/model.json ]", f"the trained model in {MODEL_DIR}"))
    spread = [{"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
               "labelSelector": {"matchLabels": selector(s.name, COMPONENT, **{POOL_LABEL: pool.name})}}
              for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")]
    template = {
        "metadata": {"labels": pod_labels, "annotations": {
            CONFIG_HASH_ANNOTATION: config_sha, "prometheus.io/scrape": "true", "prometheus.io/port": str(sv.port),
            "prometheus.io/path": "/metrics"}},
        "spec": pod_spec(p, [serve], volumes(f"{s.name}-serve-config", claim), init,
                         terminationGracePeriodSeconds=drain_budget_s(r), topologySpreadConstraints=spread),
    }
    spec = {"selector": {"matchLabels": selector(s.name, COMPONENT, **{POOL_LABEL: pool.name})},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": 5, "template": template}
    if sv.autoscaling is None:
        spec = {"replicas": pool.size.desired, **spec}  # with an HPA, the HPA owns replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata(pool.group_name, namespace, pod_labels, checkov_skips(k.image, k.image_pull_policy)),
            "spec": spec}


def _service(r, namespace: str) -> dict:
    s = r.spec
    lb = s.serving.load_balancer
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": metadata(f"{s.name}-serve", namespace, labels(s.name, COMPONENT),
                                 {"gpufleet.io/load-balancing": lb.algorithm}),
            "spec": {"type": "ClusterIP", "selector": selector(s.name, COMPONENT),
                     "ports": [{"name": "http", "port": lb.listener.port, "targetPort": "http", "protocol": "TCP"}]}}


def _pdb(r, pool, namespace: str) -> dict:
    s = r.spec
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": metadata(pool.group_name, namespace, labels(s.name, COMPONENT, **{POOL_LABEL: pool.name})),
            "spec": {"maxUnavailable": 1,
                     "selector": {"matchLabels": selector(s.name, COMPONENT, **{POOL_LABEL: pool.name})}}}


def hpa_metric(autoscaling) -> dict:
    """The HPA's metric for the spec's scaling signal and target."""
    if autoscaling.metric == "cpu_utilization":
        return {"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": max(1, round(autoscaling.target))}}}
    name = PODS_METRICS[autoscaling.metric][0]
    target = autoscaling.target / 60 if autoscaling.metric == "requests_per_target" else autoscaling.target
    return {"type": "Pods", "pods": {"metric": {"name": name},
                                     "target": {"type": "AverageValue", "averageValue": quantity(target)}}}


def _hpa(r, pool, namespace: str) -> dict:
    s = r.spec
    a = s.serving.autoscaling
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(pool.group_name, namespace, labels(s.name, COMPONENT, **{POOL_LABEL: pool.name})),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": pool.group_name},
                     "minReplicas": max(1, pool.size.min), "maxReplicas": pool.size.max,
                     "metrics": [hpa_metric(a)],
                     "behavior": {"scaleUp": {"stabilizationWindowSeconds": a.scale_out_cooldown_s},
                                  "scaleDown": {"stabilizationWindowSeconds": a.scale_in_cooldown_s}}}}


def adapter_rules(metric: str) -> dict:
    """The Prometheus Adapter rule (its Helm chart's `rules.custom`) that serves `metric` as a Pods metric."""
    name, series, query, _ = PODS_METRICS[metric]
    return {"rules": {"custom": [{
        "seriesQuery": series,
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{series.split('{')[0]}$", "as": name},
        "metricsQuery": query}]}}


def serve_objects(r, namespace: str, claim: str) -> tuple[list[dict], dict[str, str], list[str]]:
    """(objects, extra files outside the kustomization, warnings) of the serving fleet."""
    s = r.spec
    config_text = json.dumps(serve_runtime_config(r), indent=2, sort_keys=True) + "\n"
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": metadata(f"{s.name}-serve-config", namespace, labels(s.name, COMPONENT)),
                  "data": {CONFIG_FILE: config_text}}
    objects = [config_map, _service(r, namespace)]
    for pool in r.pools:
        objects.append(_deployment(r, pool, namespace, config_hash(config_text), claim))
        objects.append(_pdb(r, pool, namespace))
        if s.serving.autoscaling is not None:
            objects.append(_hpa(r, pool, namespace))
    extra: dict[str, str] = {}
    warnings: list[str] = []
    a = s.serving.autoscaling
    if a is not None and a.metric in PODS_METRICS:
        name, _, _, needs = PODS_METRICS[a.metric]
        extra[ADAPTER_RULES] = adapter_rules(a.metric)
        warnings.append(
            f"serving.autoscaling.metric: {a.metric} is the Pods metric {name}, which the HPA reads from the custom "
            f"metrics API: the cluster needs {needs} with the rule in {ADAPTER_RULES} (and Prometheus scraping the "
            "pods' /metrics, as their prometheus.io annotations ask); without it the HPA reports FailedGetPodsMetric "
            "and keeps the replicas where they are")
    return objects, extra, warnings
