"""The stack spec: pydantic models for the YAML a user writes.

Field-level rules (types, ranges, patterns, allowed values) live here so pydantic reports
them all at once; rules that relate several fields live in `infra.spec.checks`; filling in
derived values (GPUs per node, the default serving pool, capacity split) lives in
`infra.spec.resolve`. Every model forbids unknown fields so a typo is an error, not a
silently ignored setting.

A few fields mean something on one cloud only (an AMI, a certificate ARN; a GCP project, GPUs
attached to an N1 machine type). They are declared here for both, and the other cloud refuses
them by name (`infra.spec.checks`, `infra.spec.gcp`). Instance types and regions are checked
against the cloud the spec names: `parse_stack` passes it to pydantic as the validation
context (`{"cloud": ...}`), so these errors come with every other field error at once.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from infra.spec.gpus import (AWS_GPU_FAMILIES, GCP_GPU_SERIES, GCP_ZONE_ACCELERATORS, arch_of, gcp_series,
                             gpus_for, n1_vcpus)
from infra.spec.kubernetes import KubernetesSettings
from runtime.train.rules import PARALLEL, SWEEPABLE, WORKLOADS

# Names end up in AWS resource names: "<name>-serve-<pool>" must fit a 32-character
# target group name, so a stack name is at most 20 characters and a pool name at most 8.
NAME_PATTERN = r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$"
POOL_PATTERN = r"^[a-z][a-z0-9]{0,7}$"
AWS_REGION_PATTERN = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"
GCP_REGION_PATTERN = r"^[a-z]+-[a-z]+[0-9]{1,2}$"
REGION_PATTERN = AWS_REGION_PATTERN  # where only AWS regions make sense (the S3 state backend)
STACK_REGION_PATTERN = rf"({AWS_REGION_PATTERN})|({GCP_REGION_PATTERN})"
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
AMI_PATTERN = r"^ami-[0-9a-f]{8,17}$"
CERT_ARN_PATTERN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$"
AWS_INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
GCP_MACHINE_TYPE_PATTERN = r"^[a-z][a-z0-9]*-[a-z0-9]+(-[a-z0-9]+)?$"
INSTANCE_TYPE_PATTERN = rf"({AWS_INSTANCE_TYPE_PATTERN})|({GCP_MACHINE_TYPE_PATTERN})"
GCP_PROJECT_PATTERN = r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"
GCP_ZONE_PATTERN = r"^[a-z]+-[a-z]+[0-9]{1,2}-[a-z]$"
GCP_IMAGE_NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
DOMAIN_PATTERN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"

SCALING_METRICS = ("cpu_utilization", "requests_per_target", "inflight_requests", "gpu_utilization")
ALGORITHMS = ("round_robin", "least_connections", "weighted_round_robin")

DEFAULT_IMAGE_OWNER = "amazon"
DEFAULT_IMAGE_NAME = "Deep Learning OSS Nvidia Driver AMI GPU PyTorch * (Ubuntu 22.04) *"
# Graviton GPU instances (g5g) need the arm64 build of the same DLAMI.
DEFAULT_ARM64_IMAGE_NAME = "Deep Learning ARM64 AMI OSS Nvidia Driver GPU PyTorch * (Ubuntu 22.04) *"
# GCP: Google's Deep Learning VM images (NVIDIA driver and CUDA; the driver installs on first boot).
DEFAULT_GCP_IMAGE_PROJECT = "deeplearning-platform-release"
DEFAULT_GCP_IMAGE_FAMILY = "pytorch-latest-cu124"


def fmt(value) -> str:
    """A value as the user wrote it, quoted when it is a string."""
    if isinstance(value, str):
        return repr(value)
    return str(value)


def cloud_of(info: ValidationInfo) -> str:
    """The cloud a spec names, from the validation context `parse_stack` passes (aws without one)."""
    return (info.context or {}).get("cloud") or "aws"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Size(Strict):
    """A fleet's size bounds: the Auto Scaling group's min, desired and max."""

    min: int = Field(ge=0, le=1000)
    desired: Optional[int] = Field(default=None, ge=0, le=1000, description="defaults to min")
    max: int = Field(ge=1, le=1000)

    @model_validator(mode="after")
    def _ordered(self):
        desired = self.min if self.desired is None else self.desired
        if not (self.min <= desired <= self.max):
            raise ValueError(
                f"min <= desired <= max must hold (got min={self.min}, desired={desired}, max={self.max})"
            )
        self.desired = desired
        return self


class Capacity(Strict):
    """How a fleet buys instances: all on-demand, all spot, or an on-demand base plus a spot share."""

    type: Literal["on_demand", "spot", "mixed"] = "on_demand"
    on_demand_base: int = Field(default=0, ge=0, le=1000, description="on-demand instances before any spot (mixed)")
    spot_percentage: Optional[int] = Field(
        default=None, ge=0, le=100, description="percent of capacity above the base bought as spot (mixed)"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        # `capacity: spot` is accepted for `capacity: {type: spot}`.
        return {"type": value} if isinstance(value, str) else value


class ImageLookup(Strict):
    owner: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=128, description="AMI name filter, * wildcards allowed")


class Image(Strict):
    """The machine image. aws: a fixed AMI id, or the most recent AMI matching a lookup.
    gcp: an image `project` with an image `family` (its newest image) or a fixed image `name`."""

    id: Optional[str] = Field(default=None, pattern=AMI_PATTERN, description="aws: an AMI id")
    lookup: Optional[ImageLookup] = Field(default=None, description="aws: the newest AMI of an owner matching a name")
    project: Optional[str] = Field(default=None, pattern=GCP_PROJECT_PATTERN, description="gcp: the project holding the image")
    family: Optional[str] = Field(default=None, pattern=GCP_IMAGE_NAME_PATTERN, description="gcp: an image family (its newest image)")
    name: Optional[str] = Field(default=None, pattern=GCP_IMAGE_NAME_PATTERN, description="gcp: a fixed image")

    @model_validator(mode="after")
    def _one_of(self, info: ValidationInfo):
        if cloud_of(info) == "gcp":
            if self.id or self.lookup:
                given = "id" if self.id else "lookup"
                raise ValueError(f"{given}: an AMI is AWS's (got {fmt(self.id) if self.id else 'a lookup'}); on gcp give "
                                 "project with family or name")
            if self.family and self.name:
                raise ValueError("give either family or name, not both")
            if (self.family or self.name) and not self.project:
                raise ValueError("project: required with family or name (got nothing)")
            if self.project and not (self.family or self.name):
                raise ValueError("family or name: required with project (got neither)")
            if not self.project:
                self.project, self.family = DEFAULT_GCP_IMAGE_PROJECT, DEFAULT_GCP_IMAGE_FAMILY
            return self
        if self.project or self.family or self.name:
            given = next(f for f in ("project", "family", "name") if getattr(self, f))
            raise ValueError(f"{given}: a GCP image field (got {fmt(getattr(self, given))} with cloud 'aws'; "
                             "allowed on aws: id or lookup)")
        if self.id and self.lookup:
            raise ValueError("give either id or lookup, not both")
        if not self.id and not self.lookup:
            self.lookup = ImageLookup(owner=DEFAULT_IMAGE_OWNER, name=DEFAULT_IMAGE_NAME)
        return self


def _gcp_machine_types() -> str:
    series = ", ".join(f"{name}-*" for name in GCP_GPU_SERIES)
    return f"{series}, or n1-standard|highmem|highcpu-N with gpus"


def known_gpu_instance_type(value: str, info: ValidationInfo) -> str:
    """Field validator: the instance type is in the cloud's GPU table (scale up means a bigger one).

    GCP: an a2/a3/g2 type (GPUs built in) or an N1 type (GPUs attached with `gpus`).
    """
    if cloud_of(info) == "gcp":
        if not re.fullmatch(GCP_MACHINE_TYPE_PATTERN, value):
            raise ValueError(f"not a GCP machine type (got {value!r}; allowed: {_gcp_machine_types()})")
        if gcp_series(value) is None and n1_vcpus(value) is None:
            raise ValueError(f"not a GCP machine type with GPUs (got {value!r}; allowed: {_gcp_machine_types()})")
        return value
    if gpus_for(value) is None:
        families = ", ".join(f"{f}.*" for f in AWS_GPU_FAMILIES)
        raise ValueError(f"not a known GPU instance type (got {value!r}; allowed: {families})")
    return value


class AttachedGpus(Strict):
    """gcp: GPUs attached to an N1 machine type (a2, a3 and g2 types have theirs built in)."""

    type: str = Field(min_length=1, max_length=64, description="an accelerator type, e.g. nvidia-tesla-t4")
    count: int = Field(ge=1, le=8, description="GPUs per VM; the accelerator allows some counts only (T4: 1, 2, 4)")


class Fleet(Strict):
    instance_type: str = Field(pattern=INSTANCE_TYPE_PATTERN,
                               description="a GPU instance type, e.g. g5.xlarge (aws); a2-highgpu-1g or n1-standard-8 (gcp)")
    gpus_per_node: Optional[int] = Field(default=None, ge=1, le=16, description="defaults to the instance type's GPU count")
    gpus: Optional[AttachedGpus] = Field(default=None, description="gcp, N1 machine types only: the GPUs attached")
    capacity: Capacity = Field(default_factory=Capacity)
    image: Image = Field(default_factory=Image)
    disk_gb: int = Field(default=200, ge=20, le=16384)
    on_host_maintenance: Optional[Literal["TERMINATE", "MIGRATE"]] = Field(
        default=None, description="gcp: what a VM does on host maintenance; GPU and spot VMs allow only TERMINATE (the default)")

    _instance_type_known = field_validator("instance_type")(known_gpu_instance_type)


class Sweep(Strict):
    """Task parallelism: one whole single-rank run per value, spread over the fleet's ranks."""

    param: Literal[tuple(SWEEPABLE)] = Field(
        description="the setting each run varies")
    values: list[float] = Field(min_length=1, max_length=1000, description="one run per value")


class Workload(Strict):
    """What the training fleet runs (runtime/train); field names follow `gpufleet train`'s flags."""

    type: Literal[WORKLOADS] = Field(description="logistic regression, k-means or an MLP classifier")
    data: str = Field(min_length=1, max_length=1024, description="dataset: s3://bucket/prefix (written by `gpufleet data partition`) or a CSV/Parquet file")
    label: Optional[str] = Field(default=None, min_length=1, max_length=256, description="label column (logreg, mlp)")
    features: Optional[list[str]] = Field(default=None, description="feature columns; default all but the label")
    k: Optional[int] = Field(default=None, ge=1, le=100_000, description="clusters (kmeans)")
    hidden: Optional[list[int]] = Field(default=None, description="hidden layer sizes (mlp)")
    epochs: Optional[int] = Field(default=None, ge=1, le=1_000_000)
    lr: Optional[float] = Field(default=None, gt=0, le=1000)
    batch_size: Optional[int] = Field(default=None, ge=1, le=10_000_000, description="per rank; default full batch (logreg, kmeans), 256 (mlp)")
    l2: Optional[float] = Field(default=None, ge=0)
    test_fraction: Optional[float] = Field(default=None, ge=0, lt=1)
    checkpoint_every: Optional[int] = Field(default=None, ge=0, description="steps; 0: each epoch and on SIGTERM")
    keep: Optional[int] = Field(default=None, ge=1, le=100, description="checkpoints kept")
    max_restarts: Optional[int] = Field(default=None, ge=0, le=100)
    parallel: Optional[Literal[PARALLEL]] = Field(
        default=None, description="data: DDP over shards (default); pipeline: the MLP's layers, a stage per rank")
    microbatches: Optional[int] = Field(default=None, ge=1, le=4096, description="pipeline: microbatches per step")
    sweep: Optional[Sweep] = Field(default=None, description="task parallel: one run per value instead of one run")

    @field_validator("hidden")
    @classmethod
    def _positive(cls, value):
        if value is not None and (not value or any(h < 1 for h in value)):
            raise ValueError(f"layer sizes must be positive integers (got {value!r})")
        return value


class TrainingFleet(Fleet):
    nodes: Size
    workload: Optional[Workload] = Field(default=None, description="what the fleet trains; instances wait for it")


class Pool(Strict):
    """One serving pool: an Auto Scaling group of one instance type behind its own target group."""

    name: str = Field(pattern=POOL_PATTERN)
    instance_type: str = Field(pattern=INSTANCE_TYPE_PATTERN)
    gpus_per_node: Optional[int] = Field(default=None, ge=1, le=16)
    gpus: Optional[AttachedGpus] = Field(default=None, description="gcp, N1 machine types only: the GPUs attached")
    weight: int = Field(default=1, ge=0, le=999, description="share of traffic relative to the other pools")
    replicas: Optional[Size] = Field(default=None, description="defaults to serving.replicas")
    capacity: Optional[Capacity] = Field(default=None, description="defaults to serving.capacity")

    _instance_type_known = field_validator("instance_type")(known_gpu_instance_type)


class Autoscaling(Strict):
    """Target tracking: keep the fleet's average `metric` near `target`."""

    metric: Literal["cpu_utilization", "requests_per_target", "inflight_requests", "gpu_utilization"]
    target: float = Field(gt=0, le=1_000_000)
    scale_out_cooldown_s: int = Field(default=60, ge=0, le=86400)
    scale_in_cooldown_s: int = Field(default=300, ge=0, le=86400)
    warmup_s: int = Field(default=120, ge=0, le=86400)


class HealthCheck(Strict):
    path: str = Field(default="/readyz", max_length=1024)
    interval_s: int = Field(default=10, ge=5, le=300)
    timeout_s: int = Field(default=5, ge=2, le=120)
    healthy_threshold: int = Field(default=2, ge=2, le=10)
    unhealthy_threshold: int = Field(default=2, ge=2, le=10)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with '/' (got {value!r})")
        return value


class Listener(Strict):
    port: int = Field(default=80, ge=1, le=65535, description="gcp: 80 or 8080 for HTTP, 443 with a domain")
    certificate_arn: Optional[str] = Field(default=None, pattern=CERT_ARN_PATTERN, description="aws: HTTPS when given")
    domain: Optional[str] = Field(default=None, pattern=DOMAIN_PATTERN, max_length=253,
                                  description="gcp: HTTPS with a Google-managed certificate for this domain")


class LoadBalancer(Strict):
    algorithm: Literal["round_robin", "least_connections", "weighted_round_robin"] = "round_robin"
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    listener: Listener = Field(default_factory=Listener)
    deregistration_delay_s: int = Field(default=30, ge=0, le=3600)
    slow_start_s: int = Field(default=0, ge=0, le=900, description="0 (off) or 30..900")


class WarmPool(Strict):
    """aws: instances booted ahead of need and kept out of service until a scale-out takes them.

    They run the whole bootstrap when they enter the pool (`Warmed:*`), then wait; the runtime
    starts serving only when the instance metadata says `InService`, and the launch lifecycle
    hook is completed once /readyz answers 200.
    """

    min: int = Field(default=0, ge=0, le=1000, description="instances kept in the pool (its min_size)")
    state: Literal["stopped", "running"] = Field(
        default="stopped", description="stopped: pay for disks only, start in seconds; running: pay for instances")


class ServingFleet(Fleet):
    replicas: Size
    warm_pool: Optional[WarmPool] = Field(default=None, description="aws: pre-booted instances for fast scale-out")
    port: int = Field(default=8080, ge=1024, le=65535, description="port each replica listens on")
    pools: Optional[list[Pool]] = Field(default=None, description="two or more pools for weighted_round_robin")
    autoscaling: Optional[Autoscaling] = None
    load_balancer: LoadBalancer = Field(default_factory=LoadBalancer)
    max_batch_size: int = Field(default=32, ge=1, le=4096, description="1 turns dynamic batching off")
    max_delay_ms: float = Field(default=2.0, ge=0, le=1000)
    drain_timeout_s: int = Field(default=60, ge=1, le=3600)
    model_uri: Optional[str] = Field(default=None, max_length=1024, description="model artifact to serve; defaults to the training output in the bucket")


class Network(Strict):
    cidr: str = "10.0.0.0/16"
    zones: int = Field(default=2, ge=1, le=6)

    @field_validator("cidr")
    @classmethod
    def _network(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not an IPv4 network in CIDR form ({exc})") from None
        # modules/aws/network carves 16 equal subnets (/prefix+4): /22 leaves /26 subnets.
        if not 16 <= net.prefixlen <= 22:
            raise ValueError(f"prefix must be between /16 and /22 (got /{net.prefixlen})")
        return value


class Artifacts(Strict):
    bucket: Optional[str] = Field(default=None, pattern=BUCKET_PATTERN, description="defaults to a generated name")
    force_destroy: bool = Field(default=False, description="let destroy delete a bucket that still holds objects")


class LocalReplicas(Strict):
    min: int = Field(default=1, ge=1, le=32)
    max: int = Field(default=4, ge=1, le=32)


class Local(Strict):
    """How the `local` target sizes the stack on one machine."""

    ranks: int = Field(default=2, ge=1, le=64)
    replicas: LocalReplicas = Field(default_factory=LocalReplicas)
    base_port: int = Field(default=18000, ge=1024, le=64000)


class Backend(Strict):
    """Where Terraform keeps the stack's state: a local file, or an object in S3 behind a lock.

    The S3 bucket must exist before `terraform init` (the backend cannot create it):
    `gpufleet state bootstrap SPEC` creates it versioned, encrypted and private.
    """

    type: Literal["local", "s3"] = "local"
    bucket: Optional[str] = Field(default=None, pattern=BUCKET_PATTERN, description="s3: the state bucket")
    key: Optional[str] = Field(default=None, min_length=1, max_length=1024,
                               description="s3: the state object's key, e.g. stacks/demo-fleet.tfstate")
    region: Optional[str] = Field(default=None, pattern=REGION_PATTERN, description="s3: the bucket's region; defaults to the stack's")
    lock: Literal["lockfile", "dynamodb"] = Field(
        default="lockfile",
        description="s3: lockfile (a lock object beside the state, S3 conditional writes, Terraform 1.10+) "
                    "or dynamodb (a DynamoDB table, for older Terraform)")
    dynamodb_table: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{3,255}$",
                                          description="s3 with lock dynamodb: the lock table")

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value):
        # Terraform's S3 backend refuses these itself, but only at init.
        if value is not None and (value.startswith("/") or value.endswith("/") or "//" in value):
            raise ValueError(f"must not start or end with '/' or contain '//' (got {value!r})")
        return value


class Bundle(Strict):
    """Where instances get the runtime: the wheel uploaded to the bucket, or a package index."""

    index_url: Optional[str] = Field(default=None, pattern=r"^https?://[^\s'\"]+$", max_length=1024)


TORCH_POLICIES = ("use_image_torch", "wheelhouse")


class RuntimeSettings(Strict):
    """How instances install the runtime: where torch comes from, and which Python builds the venv.

    torch: `use_image_torch` builds the environment on top of the image's Python and uses its
    torch (checked against gpufleet's range at boot); `wheelhouse` installs torch from the
    bucket's wheelhouse (`gpufleet bundle SPEC`) like every other requirement. Default:
    use_image_torch on GPU images that ship torch (the default Deep Learning AMI / VM
    images), else wheelhouse.
    """

    torch: Optional[Literal[TORCH_POLICIES]] = Field(default=None, description="use_image_torch or wheelhouse")
    image_python: Optional[str] = Field(
        default=None, pattern=r"^/[A-Za-z0-9._/+-]+$", max_length=256,
        description="the image's Python (absolute path); aws default /opt/pytorch/bin/python (DLAMI), gcp /opt/conda/bin/python (DLVM)")
    python_version: Optional[str] = Field(
        default=None, pattern=r"^3\.(1[0-9])$",
        description="the instances' Python X.Y, which the wheelhouse is built for; aws default 3.12, gcp 3.10")


class GcpSettings(Strict):
    """gcp: the project the stack goes into, and optionally the zones its fleets spread over."""

    project: str = Field(pattern=GCP_PROJECT_PATTERN, description="the project ID")
    zones: Optional[list[str]] = Field(
        default=None, min_length=1, max_length=4,
        description="zones of the region; default: network.zones of those that offer every fleet's GPU")

    @field_validator("zones")
    @classmethod
    def _zones(cls, value):
        for zone in value or []:
            if not re.fullmatch(GCP_ZONE_PATTERN, zone):
                raise ValueError(f"not a GCP zone (got {zone!r}; e.g. us-central1-a)")
        if value and len(set(value)) != len(value):
            raise ValueError(f"a zone is listed twice (got {value!r})")
        return value


class Stack(Strict):
    """A stack spec: one scalable AI system (data, a training fleet, a serving fleet)."""

    name: str = Field(pattern=NAME_PATTERN, description="3-20 characters: a-z, 0-9 and -; starts with a letter")
    cloud: Literal["aws", "gcp"] = "aws"
    region: Optional[str] = Field(default=None, pattern=STACK_REGION_PATTERN,
                                  description="aws: defaults to us-east-1; gcp: required, e.g. us-central1")
    gcp: Optional[GcpSettings] = Field(default=None, description="gcp: the project and zones")
    network: Network = Field(default_factory=Network)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    training: Optional[TrainingFleet] = None
    serving: Optional[ServingFleet] = None
    local: Local = Field(default_factory=Local)
    backend: Backend = Field(default_factory=Backend)
    bundle: Bundle = Field(default_factory=Bundle)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    tags: dict[str, str] = Field(default_factory=dict, description="aws: tags; gcp: labels")
    kubernetes: Optional[KubernetesSettings] = Field(
        default=None, description="the kubernetes target: runtime image, namespace, volume, pods (infra.spec.kubernetes)")

    @field_validator("region")
    @classmethod
    def _region_of_cloud(cls, value, info: ValidationInfo):
        if value is None:
            return value
        if cloud_of(info) == "gcp":
            if not re.fullmatch(GCP_REGION_PATTERN, value):
                raise ValueError(f"not a GCP region (got {value!r}; allowed: {', '.join(GCP_ZONE_ACCELERATORS)})")
            if value not in GCP_ZONE_ACCELERATORS:
                raise ValueError(f"no GPU zone table for this GCP region (got {value!r}; allowed: "
                                 f"{', '.join(GCP_ZONE_ACCELERATORS)})")
        elif not re.fullmatch(AWS_REGION_PATTERN, value):
            raise ValueError(f"not an AWS region (got {value!r}; e.g. us-east-1)")
        return value

    @model_validator(mode="after")
    def _cloud_defaults(self):
        if self.region is None and self.cloud == "aws":
            self.region = "us-east-1"
        # A fleet without `image` got Image's default, made without knowing the cloud (AWS's).
        if self.cloud == "gcp":
            for fleet in (self.training, self.serving):
                if fleet is not None and "image" not in fleet.model_fields_set:
                    fleet.image = Image.model_validate({}, context={"cloud": "gcp"})
        else:
            for fleet in (self.training, self.serving):
                if fleet is not None and "image" not in fleet.model_fields_set and arch_of(fleet.instance_type) == "aarch64":
                    fleet.image = Image(lookup=ImageLookup(owner=DEFAULT_IMAGE_OWNER, name=DEFAULT_ARM64_IMAGE_NAME))
        return self


