"""The spec's `kubernetes:` block: how the stack runs on a cluster the user already has.

The fleets keep their meaning (sizes, workload, scaling, drain budget); this block adds what a
cluster needs and a cloud does not: the runtime image, the namespace, the volume that holds the
dataset, checkpoints and models, and per fleet the pod's GPUs, CPU and memory and where GPU (and
spot) pods may go (node selector, tolerations). Only the `kubernetes` target reads it; the
Terraform targets ignore it, so one spec can serve both.

Paths on the artifacts volume: every pod's working directory is WORKDIR and the volume is
mounted at WORKDIR/artifacts, so the runtime config names its files relative to the working
directory ("artifacts/checkpoints"). `training.workload.data` (and `kubernetes.data.source`) is a
path on the volume ("datasets/clicks", read as artifacts/datasets/clicks) unless it is an
s3:// or gs:// URI.

`kubernetes_problems(r)` holds the rules that relate this block to the rest of the spec (a GPU
count without a GPU node selector or toleration, names that are not DNS-1123 labels); the
kubernetes target runs it after the spec's own checks, and refuses the spec (exit 2) on any.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
# registry/path:tag or ...@sha256:digest; a tag (or a digest) is required and `latest` refused,
# so what runs is what was reviewed.
IMAGE_PATTERN = r"^[a-z0-9][a-z0-9._/:-]*[a-z0-9](:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"
LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
URI_SCHEMES = ("s3://", "gs://")
WORKDIR = "/var/lib/gpufleet"
ARTIFACTS_DIR = "artifacts"  # the artifacts volume, relative to WORKDIR
GPU_RESOURCE = "nvidia.com/gpu"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    for k, v in value.items():
        if not re.fullmatch(LABEL_KEY_PATTERN, k):
            raise ValueError(f"not a Kubernetes label key (got {k!r})")
        if not re.fullmatch(LABEL_VALUE_PATTERN, v):
            raise ValueError(f"not a Kubernetes label value (got {v!r} for {k!r})")
    return value


class Toleration(_Strict):
    """A pod toleration, as in the PodSpec (`operator: Exists` takes no value)."""

    key: Optional[str] = Field(default=None, pattern=LABEL_KEY_PATTERN)
    operator: Literal["Equal", "Exists"] = "Equal"
    value: Optional[str] = Field(default=None, pattern=LABEL_VALUE_PATTERN)
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None

    def manifest(self) -> dict:
        return {k: v for k, v in (("key", self.key), ("operator", self.operator), ("value", self.value),
                                  ("effect", self.effect)) if v is not None}


class KubeFleet(_Strict):
    """One fleet's pods: GPUs, CPU and memory (requests = limits), and the nodes they may use."""

    gpus: Optional[int] = Field(default=None, ge=0, le=16,
                                description="nvidia.com/gpu per pod; default the fleet's GPUs per node (0: CPU pods)")
    cpu: str = Field(default="4", pattern=QUANTITY_PATTERN, description="CPU per pod (request and limit)")
    memory: str = Field(default="16Gi", pattern=QUANTITY_PATTERN, description="memory per pod (request and limit)")
    node_selector: dict[str, str] = Field(default_factory=dict, description="labels of the GPU nodes")
    tolerations: list[Toleration] = Field(default_factory=list, description="taints of the GPU nodes")
    spot_node_selector: dict[str, str] = Field(
        default_factory=dict, description="added when the fleet's capacity is spot (a spot node pool's labels)")
    spot_tolerations: list[Toleration] = Field(
        default_factory=list, description="added when the fleet's capacity is spot or mixed (a spot pool's taints)")

    _labels = field_validator("node_selector", "spot_node_selector")(_check_labels)


class Storage(_Strict):
    """The ReadWriteMany volume for the dataset, checkpoints and models: the user's claim, or one rendered."""

    claim: Optional[str] = Field(default=None, pattern=DNS1123_SUBDOMAIN,
                                 description="an existing ReadWriteMany PersistentVolumeClaim (not rendered, never deleted)")
    size: str = Field(default="100Gi", pattern=QUANTITY_PATTERN, description="without claim: the rendered claim's size")
    storage_class: Optional[str] = Field(default=None, pattern=DNS1123_SUBDOMAIN,
                                         description="without claim: its storage class (default: the cluster's)")


class DataPrep(_Strict):
    """The data-preparation Job: `gpufleet data partition SOURCE <workload.data>`; training waits for it."""

    source: str = Field(min_length=1, max_length=1024, description="CSV/Parquet: a path on the volume, s3:// or gs://")
    strategy: Literal["hash", "range", "key"] = "hash"
    key: str = Field(min_length=1, max_length=256, description="key column(s), comma-separated")
    partitions: int = Field(ge=1, le=100_000)


class KubernetesSettings(_Strict):
    image: str = Field(pattern=IMAGE_PATTERN, max_length=512,
                       description="the runtime image (the project's Dockerfile), with a tag or digest")
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    namespace: Optional[str] = Field(default=None, pattern=DNS1123_LABEL,
                                     description="an existing namespace; default the stack's name")
    storage: Storage = Field(default_factory=Storage)
    serving: KubeFleet = Field(default_factory=lambda: KubeFleet(cpu="2", memory="8Gi"))
    training: KubeFleet = Field(default_factory=KubeFleet)
    data: Optional[DataPrep] = Field(default=None, description="partition a raw dataset before training")
    rendezvous_port: int = Field(default=29400, ge=1024, le=65535, description="the training ranks' c10d store")

    @field_validator("image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        name = value.split("@")[0]
        tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else None
        if "@" not in value and tag is None:
            raise ValueError(f"needs a tag or a digest (got {value!r}; e.g. registry.example.com/gpufleet-runtime:0.1.0)")
        if tag == "latest":
            raise ValueError(f"'latest' is not a version (got {value!r}); name the tag or digest you reviewed")
        return value


@dataclass(frozen=True)
class KubePods:
    """One fleet's pods, resolved: GPUs, resources and placement."""

    gpus: int
    cpu: str
    memory: str
    node_selector: dict = field(default_factory=dict)
    tolerations: list = field(default_factory=list)


def volume_path(path: str) -> str:
    """A spec path as the runtime config names it: URIs as they are, the rest under the volume."""
    return path if path.startswith(URI_SCHEMES) else f"{ARTIFACTS_DIR}/{path.strip('/')}"


def pods(fleet: KubeFleet, gpus_per_node: int, capacity: str) -> KubePods:
    """The pods of a fleet whose nodes have `gpus_per_node` GPUs and whose capacity is `capacity`."""
    selector = dict(fleet.node_selector)
    tolerations = [t.manifest() for t in fleet.tolerations]
    if capacity == "spot":
        selector.update(fleet.spot_node_selector)
    if capacity in ("spot", "mixed"):
        tolerations += [t.manifest() for t in fleet.spot_tolerations]
    return KubePods(gpus=gpus_per_node if fleet.gpus is None else fleet.gpus, cpu=fleet.cpu, memory=fleet.memory,
                    node_selector=selector, tolerations=tolerations)


def capacity_kind(c) -> str:
    """A resolved capacity (infra.spec.resolve.ResolvedCapacity) as on_demand, spot or mixed."""
    if c.on_demand_percentage_above_base == 100:
        return "on_demand"
    return "spot" if c.on_demand_base == 0 and c.on_demand_percentage_above_base == 0 else "mixed"


def namespace_of(r) -> str:
    return r.spec.kubernetes.namespace or r.spec.name


def _is_path(value: str) -> bool:
    return not value.startswith(URI_SCHEMES)


def kubernetes_problems(r) -> list[str]:
    """Problems of a resolved stack for the kubernetes target, as `path: message` lines."""
    k = r.spec.kubernetes
    if k is None:
        return ["kubernetes: the kubernetes target needs a `kubernetes` block (at least `image`: the runtime image "
                "built from the project's Dockerfile; see examples/k8s-gpu-fleet.yaml)"]
    problems: list[str] = []
    fleets = []
    if r.spec.training is not None:
        fleets.append(("training", k.training, r.training_gpus_per_node, r.spec.training.capacity.type))
    for pool in r.pools:
        fleets.append(("serving", k.serving, pool.gpus_per_node, capacity_kind(pool.capacity)))
    for path, fleet, gpus, capacity in fleets:
        p = pods(fleet, gpus, capacity)
        if p.gpus and not (p.node_selector or p.tolerations):
            problems.append(f"kubernetes.{path}.node_selector: {path} pods ask for {p.gpus} GPU(s) ({GPU_RESOURCE}) but "
                            "name no GPU node selector or toleration (give the GPU nodes' labels or taints, or "
                            f"kubernetes.{path}.gpus: 0 for CPU pods)")
    name = namespace_of(r)
    if not re.fullmatch(DNS1123_LABEL, name):
        problems.append(f"kubernetes.namespace: not a DNS-1123 label (got {name!r}; allowed: a-z, 0-9 and -, "
                        "starting and ending with a letter or digit, at most 63 characters)")
    w = r.spec.training.workload if r.spec.training else None
    if r.spec.training is not None and w is None:
        problems.append("training.workload: the kubernetes target runs the training Job's workload (got nothing)")
    if k.data is not None:
        if w is None:
            problems.append("kubernetes.data: partitions a dataset for training.workload.data (got no training workload)")
    for path, value in (("training.workload.data", w.data if w else None),
                        ("kubernetes.data.source", k.data.source if k.data else None)):
        if value and _is_path(value) and (value.startswith("/") or ".." in value.split("/")):
            problems.append(f"{path}: a path on the artifacts volume is relative to it, without '..' (got {value!r}; "
                            "e.g. datasets/clicks, or an s3:// or gs:// URI)")
    return problems
