"""What every pod the kubernetes target renders shares: labels, the hardened security context,
resources, the working directory and its volumes.

The pod contract with the runtime (the manifest-executed test in tests/kubernetes relies on it):
- every container runs in WORKDIR (/var/lib/gpufleet), and every volume the runtime reads or
  writes is mounted under it: the runtime config at config/<role>/, the artifacts volume at
  artifacts/, scratch (HOME, TMPDIR) at scratch/. The runtime config names files relative to
  the working directory, so the same JSON works in any directory that has that layout;
- the root filesystem is read-only; scratch is an emptyDir (and /dev/shm a memory-backed one for
  the training ranks' shared memory);
- pods run as UID/GID 10001, never root, with no privilege escalation, no capabilities, the
  runtime's default seccomp profile and no service account token.
"""

from __future__ import annotations

import hashlib

from infra.spec.kubernetes import ARTIFACTS_DIR, GPU_RESOURCE, WORKDIR, KubePods

STACK_LABEL = "gpufleet.io/stack"  # destroy deletes exactly what carries it (infra.targets.kubectl)
POOL_LABEL = "gpufleet.io/pool"
CONFIG_HASH_ANNOTATION = "gpufleet.io/config-sha256"  # a changed ConfigMap rolls the pods
RUN_AS = 10001
SCRATCH_DIR = "scratch"
CONFIG_DIR = "config"
ARTIFACTS_VOLUME = "artifacts"
SHM_LIMIT = "1Gi"
SCRATCH_LIMIT = "10Gi"


def labels(stack: str, component: str, **extra: str) -> dict:
    """The labels every object carries (component: serve, train or data)."""
    return {"app.kubernetes.io/name": stack, "app.kubernetes.io/part-of": "gpufleet",
            "app.kubernetes.io/component": component, "app.kubernetes.io/managed-by": "gpufleet",
            STACK_LABEL: stack, **extra}


def selector(stack: str, component: str, **extra: str) -> dict:
    """The labels a controller or Service selects its pods by (a subset of `labels`)."""
    return {STACK_LABEL: stack, "app.kubernetes.io/component": component, **extra}


def metadata(name: str, namespace: str, object_labels: dict, annotations: dict | None = None) -> dict:
    meta = {"name": name, "namespace": namespace, "labels": dict(object_labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def checkov_skips(image: str, pull_policy: str) -> dict:
    """checkov skip annotations for a pod controller, each with its reason, only where they apply:
    a tag rather than a digest (CKV_K8S_43), a pull policy other than Always (CKV_K8S_15)."""
    skips = []
    if "@sha256:" not in image:
        skips.append("CKV_K8S_43=kubernetes.image is pinned by a tag (latest is refused); give name@sha256:digest "
                     "in the spec to pin the bytes")
    if pull_policy != "Always":
        skips.append(f"CKV_K8S_15={pull_policy} is the spec's kubernetes.image_pull_policy: a pinned tag needs no "
                     "re-pull, and images loaded into the node (kind load) cannot be pulled")
    return {f"checkov.io/skip{i}": skip for i, skip in enumerate(skips, 1)}


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pod_security() -> dict:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security() -> dict:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "privileged": False, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def resources(p: KubePods, cpu: str | None = None, memory: str | None = None) -> dict:
    """Requests equal to limits (a Guaranteed pod); GPUs as nvidia.com/gpu limits (and requests)."""
    amounts = {"cpu": cpu or p.cpu, "memory": memory or p.memory}
    if p.gpus:
        amounts[GPU_RESOURCE] = p.gpus
    return {"requests": dict(amounts), "limits": dict(amounts)}


def small_resources() -> dict:
    """A waiting init container's resources."""
    amounts = {"cpu": "100m", "memory": "256Mi"}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def base_env() -> list[dict]:
    scratch = f"{WORKDIR}/{SCRATCH_DIR}"
    return [{"name": "HOME", "value": scratch}, {"name": "TMPDIR", "value": scratch},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}, {"name": "PYTHONUNBUFFERED", "value": "1"}]


def pod_ip_env() -> dict:
    return {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def mounts(role: str | None, artifacts_read_only: bool, shm: bool = False) -> list[dict]:
    """The working directory's mounts: the role's config (if any), the artifacts volume, scratch."""
    out = []
    if role:
        out.append({"name": "config", "mountPath": f"{WORKDIR}/{CONFIG_DIR}/{role}", "readOnly": True})
    out.append({"name": ARTIFACTS_VOLUME, "mountPath": f"{WORKDIR}/{ARTIFACTS_DIR}", "readOnly": artifacts_read_only})
    out.append({"name": "scratch", "mountPath": f"{WORKDIR}/{SCRATCH_DIR}"})
    if shm:
        out.append({"name": "dshm", "mountPath": "/dev/shm"})
    return out


def volumes(config_map: str | None, claim: str, shm: bool = False) -> list[dict]:
    out = []
    if config_map:
        out.append({"name": "config", "configMap": {"name": config_map}})
    out.append({"name": ARTIFACTS_VOLUME, "persistentVolumeClaim": {"claimName": claim}})
    out.append({"name": "scratch", "emptyDir": {"sizeLimit": SCRATCH_LIMIT}})
    if shm:
        out.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_LIMIT}})
    return out


def container(name: str, image: str, pull: str, command: list[str], args: list[str], env: list[dict],
              res: dict, volume_mounts: list[dict], **extra) -> dict:
    c = {"name": name, "image": image, "imagePullPolicy": pull, "workingDir": WORKDIR, "command": command,
         "args": args, "env": base_env() + env, "resources": res, "securityContext": container_security(),
         "volumeMounts": volume_mounts}
    c.update(extra)
    return c


def pod_spec(p: KubePods, containers: list[dict], vols: list[dict], init: list[dict] | None = None,
             **extra) -> dict:
    spec = {"automountServiceAccountToken": False, "enableServiceLinks": False, "securityContext": pod_security()}
    if p.node_selector:
        spec["nodeSelector"] = dict(p.node_selector)
    if p.tolerations:
        spec["tolerations"] = [dict(t) for t in p.tolerations]
    spec.update(extra)
    if init:
        spec["initContainers"] = init
    spec["containers"] = containers
    spec["volumes"] = vols
    return spec


def wait_container(name: str, image: str, pull: str, script: str, what: str) -> dict:
    """An init container that polls until `script`'s condition holds (`what`: for its log line)."""
    loop = f"until {script}; do echo 'waiting for {what}'; sleep 5; done"
    return container(name, image, pull, ["/bin/sh", "-c"], [loop], [], small_resources(),
                     mounts(None, artifacts_read_only=True))


def quantity(value: float) -> str:
    """A number as a Kubernetes quantity: 16 -> "16", 0.5 -> "500m"."""
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"
