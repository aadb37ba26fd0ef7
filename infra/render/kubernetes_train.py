"""The training fleet on Kubernetes: an Indexed Job (one pod per node) with a headless Service
for its rendezvous, a ConfigMap holding the train role's runtime config, and the data-preparation
Job it waits for.

- Pods: completions = parallelism = training.nodes.desired, completionMode Indexed. Each pod
  runs `gpufleet run --config config/train/train.json`, the command an instance runs, and starts
  its GPUs' ranks under PyTorch's elastic agent (nnodes min..pods; the spec's nodes.max cannot
  grow a fixed-size Job). runtime.train.discovery's Kubernetes branch reads the rendezvous from
  the pod: the c10d store is on pod index 0, `<job>-0.<service>` (the Job sets each pod's hostname
  to `<job>-<index>`, and `subdomain` puts it under the headless Service), given to the pod as
  GPUFLEET_RENDEZVOUS_HOST; JOB_COMPLETION_INDEX (the downward API) says whether it is index 0.
- Restarts: the runtime's budget, workload.max_restarts, is the elastic agent's (a crashed rank
  restarts in the pod, from the last checkpoint) and the Job's backoffLimit (a failed pod is
  replaced, e.g. on another node); restartPolicy Never so that a replacement can land elsewhere.
  Pods evicted by a disruption (a spot node's preemption, a drain) do not count against it
  (podFailurePolicy: Ignore on DisruptionTarget). SIGTERM checkpoints before the ranks stop:
  terminationGracePeriodSeconds is the instances' checkpoint budget.
- Data: with `kubernetes.data`, a Job runs `gpufleet data partition SOURCE <workload.data>` (a
  no-op when the dataset is already there, so a rerun succeeds), and every training pod's init
  container waits until `gpufleet data inspect <workload.data>` reads the dataset's manifest,
  which partition writes last. Without it, the dataset must already exist where workload.data says.
"""

from __future__ import annotations

import json
import shlex

from infra.render.kubernetes_pods import (CONFIG_HASH_ANNOTATION, checkov_skips, config_hash, container, labels, metadata, mounts,
                                          pod_ip_env, pod_spec, resources, selector, volumes)
from infra.render.runtime_config import TRAINING_HOOK_TIMEOUT_S, runtime_config
from infra.spec.kubernetes import ARTIFACTS_DIR, KubePods, pods, volume_path

COMPONENT = "train"
CONFIG_FILE = "train.json"
TRAIN_CONFIG_PATH = f"config/{COMPONENT}/{CONFIG_FILE}"
RENDEZVOUS_HOST_ENV = "GPUFLEET_RENDEZVOUS_HOST"
CHECKPOINTS = f"{ARTIFACTS_DIR}/checkpoints"
MODEL_DIR = f"{ARTIFACTS_DIR}/models/latest"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
INSTANCE_MAX_RESTARTS = 3  # what runtime.train.role gives an instance whose workload names none


def job_name(r) -> str:
    return f"{r.name}-train"


def service_name(r) -> str:
    return f"{r.name}-train"


def rendezvous_host(r) -> str:
    """Pod index 0's DNS name under the headless Service (from any pod of the namespace)."""
    return f"{job_name(r)}-0.{service_name(r)}"


def pod_count(r) -> int:
    return max(1, r.spec.training.nodes.desired)


def max_restarts(r) -> int:
    w = r.spec.training.workload
    return w.max_restarts if w is not None and w.max_restarts is not None else INSTANCE_MAX_RESTARTS


def train_runtime_config(r) -> dict:
    """The train role's runtime config as the ConfigMap holds it: infra.render.runtime_config's,
    with the Job as the group, the pods as the nodes, paths on the artifacts volume and no bucket."""
    config = runtime_config(r, "train")
    config["cloud"] = "kubernetes"
    for unused in ("bundle", "region"):  # the image holds the runtime; no cloud region
        config.pop(unused, None)
    config["artifacts"] = {"bucket_env": None, "checkpoints": CHECKPOINTS + "/", "models": MODEL_DIR + "/"}
    n = pod_count(r)
    config["train"].update(group=job_name(r), nodes={"min": max(1, min(r.spec.training.nodes.min, n)), "max": n},
                           lifecycle_hook=None, gpus_per_node=_pods(r).gpus or 1)
    config["kubernetes"] = {"job": job_name(r), "service": service_name(r), "rendezvous_host_env": RENDEZVOUS_HOST_ENV,
                            "rendezvous_port": r.spec.kubernetes.rendezvous_port}
    workload = dict(config.get("workload") or {})
    if workload.get("data"):
        workload["data"] = volume_path(workload["data"])
    workload.update(checkpoint_dir=CHECKPOINTS, out=MODEL_DIR, max_restarts=max_restarts(r))
    config["workload"] = workload
    return config


def _pods(r):
    t = r.spec.training
    return pods(r.spec.kubernetes.training, r.training_gpus_per_node, t.capacity.type)


def _config_map(r, namespace: str, text: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata(f"{r.name}-train-config", namespace, labels(r.name, COMPONENT)),
            "data": {CONFIG_FILE: text}}


def _headless_service(r, namespace: str) -> dict:
    port = r.spec.kubernetes.rendezvous_port
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": metadata(service_name(r), namespace, labels(r.name, COMPONENT)),
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": selector(r.name, COMPONENT),
                     "ports": [{"name": "rendezvous", "port": port, "targetPort": port, "protocol": "TCP"}]}}


def _data_paths(r) -> tuple[str, str]:
    k = r.spec.kubernetes
    return volume_path(k.data.source), volume_path(r.spec.training.workload.data)


def _wait_for_data(r) -> dict:
    k = r.spec.kubernetes
    _, out = _data_paths(r)
    loop = (f"until gpufleet data inspect {shlex.quote(out)} >/dev/null 2>&1; "
            f"do echo 'waiting for the dataset {out} (the {r.name}-data Job)'; sleep 5; done")
    return container("wait-for-data", k.image, k.image_pull_policy, ["/bin/sh", "-c"], [loop], [],
                     {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "250m", "memory": "512Mi"}},
                     mounts(None, artifacts_read_only=True, shm=False))


def _train_job(r, namespace: str, config_sha: str, claim: str) -> dict:
    k = r.spec.kubernetes
    p = _pods(r)
    n = pod_count(r)
    port = k.rendezvous_port
    env = [pod_ip_env(),
           {"name": "JOB_COMPLETION_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}},
           {"name": RENDEZVOUS_HOST_ENV, "value": rendezvous_host(r)}]
    train = container("train", k.image, k.image_pull_policy, ["gpufleet"], ["run", "--config", TRAIN_CONFIG_PATH], env,
                      resources(p), mounts(COMPONENT, artifacts_read_only=False, shm=True),
                      ports=[{"name": "rendezvous", "containerPort": port, "protocol": "TCP"}])
    init = [_wait_for_data(r)] if k.data is not None else []
    template = {
        "metadata": {"labels": labels(r.name, COMPONENT), "annotations": {CONFIG_HASH_ANNOTATION: config_sha}},
        "spec": pod_spec(p, [train], volumes(f"{r.name}-train-config", claim, shm=True), init,
                         restartPolicy="Never", subdomain=service_name(r),
                         terminationGracePeriodSeconds=TRAINING_HOOK_TIMEOUT_S),
    }
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": metadata(job_name(r), namespace, labels(r.name, COMPONENT),
                                 checkov_skips(k.image, k.image_pull_policy)),
            "spec": {"completionMode": "Indexed", "completions": n, "parallelism": n,
                     "backoffLimit": max_restarts(r),
                     "podFailurePolicy": {"rules": [{"action": "Ignore",
                                                     "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]},
                     "template": template}}


def _data_job(r, namespace: str, claim: str) -> dict:
    k = r.spec.kubernetes
    d = k.data
    source, out = _data_paths(r)
    partition = shlex.join(["gpufleet", "data", "partition", source, out, "--strategy", d.strategy, "--key", d.key,
                            "--partitions", str(d.partitions), "--quiet"])
    script = (f"if gpufleet data inspect {shlex.quote(out)} >/dev/null 2>&1; "
              f"then echo 'dataset {out} already partitioned'; else exec {partition}; fi")
    job = container("data", k.image, k.image_pull_policy, ["/bin/sh", "-c"], [script], [],
                    {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}},
                    mounts(None, artifacts_read_only=False))
    p = KubePods(gpus=0, cpu="2", memory="8Gi")  # CPU work: no GPU node selector or tolerations needed
    template = {"metadata": {"labels": labels(r.name, "data")},
                "spec": pod_spec(p, [job], volumes(None, claim), restartPolicy="Never")}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": metadata(f"{r.name}-data", namespace, labels(r.name, "data"),
                                 checkov_skips(k.image, k.image_pull_policy)),
            "spec": {"backoffLimit": 2, "template": template}}


def train_objects(r, namespace: str, claim: str) -> list[dict]:
    config_text = json.dumps(train_runtime_config(r), indent=2, sort_keys=True) + "\n"
    objects = [_config_map(r, namespace, config_text), _headless_service(r, namespace),
               _train_job(r, namespace, config_hash(config_text), claim)]
    if r.spec.kubernetes.data is not None:
        objects.append(_data_job(r, namespace, claim))
    return objects
