"""The stack spec: pydantic models for the YAML a user writes.

Field-level rules (types, ranges, patterns, allowed values) live here so pydantic reports
them all at once; rules that relate several fields live in `infra.spec.checks`; filling in
derived values (GPUs per node, the default serving pool, capacity split) lives in
`infra.spec.resolve`. Every model forbids unknown fields so a typo is an error, not a
silently ignored setting.
"""

from __future__ import annotations

import ipaddress
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from infra.spec.gpus import AWS_GPU_FAMILIES, gpus_for
from runtime.train.rules import PARALLEL, SWEEPABLE, WORKLOADS

# Names end up in AWS resource names: "<name>-serve-<pool>" must fit a 32-character
# target group name, so a stack name is at most 20 characters and a pool name at most 8.
NAME_PATTERN = r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$"
POOL_PATTERN = r"^[a-z][a-z0-9]{0,7}$"
REGION_PATTERN = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
AMI_PATTERN = r"^ami-[0-9a-f]{8,17}$"
CERT_ARN_PATTERN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$"
INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"

SCALING_METRICS = ("cpu_utilization", "requests_per_target", "inflight_requests", "gpu_utilization")
ALGORITHMS = ("round_robin", "least_connections", "weighted_round_robin")

DEFAULT_IMAGE_OWNER = "amazon"
DEFAULT_IMAGE_NAME = "Deep Learning OSS Nvidia Driver AMI GPU PyTorch * (Ubuntu 22.04) *"


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
    """The machine image: a fixed AMI id, or the most recent AMI matching a lookup."""

    id: Optional[str] = Field(default=None, pattern=AMI_PATTERN)
    lookup: Optional[ImageLookup] = None

    @model_validator(mode="after")
    def _one_of(self):
        if self.id and self.lookup:
            raise ValueError("give either id or lookup, not both")
        if not self.id and not self.lookup:
            self.lookup = ImageLookup(owner=DEFAULT_IMAGE_OWNER, name=DEFAULT_IMAGE_NAME)
        return self


def known_gpu_instance_type(value: str) -> str:
    """Field validator: the instance type is in the GPU table (scale up means a bigger one)."""
    if gpus_for(value) is None:
        families = ", ".join(f"{f}.*" for f in AWS_GPU_FAMILIES)
        raise ValueError(f"not a known GPU instance type (got {value!r}; allowed: {families})")
    return value


class Fleet(Strict):
    instance_type: str = Field(pattern=INSTANCE_TYPE_PATTERN, description="a GPU instance type, e.g. g5.xlarge")
    gpus_per_node: Optional[int] = Field(default=None, ge=1, le=16, description="defaults to the instance type's GPU count")
    capacity: Capacity = Field(default_factory=Capacity)
    image: Image = Field(default_factory=Image)
    disk_gb: int = Field(default=200, ge=20, le=16384)

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
    port: int = Field(default=80, ge=1, le=65535)
    certificate_arn: Optional[str] = Field(default=None, pattern=CERT_ARN_PATTERN, description="HTTPS when given")


class LoadBalancer(Strict):
    algorithm: Literal["round_robin", "least_connections", "weighted_round_robin"] = "round_robin"
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    listener: Listener = Field(default_factory=Listener)
    deregistration_delay_s: int = Field(default=30, ge=0, le=3600)
    slow_start_s: int = Field(default=0, ge=0, le=900, description="0 (off) or 30..900")


class ServingFleet(Fleet):
    replicas: Size
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


class Stack(Strict):
    """A stack spec: one scalable AI system (data, a training fleet, a serving fleet)."""

    name: str = Field(pattern=NAME_PATTERN, description="3-20 characters: a-z, 0-9 and -; starts with a letter")
    cloud: Literal["aws", "gcp"] = "aws"
    region: str = Field(default="us-east-1", pattern=REGION_PATTERN)
    network: Network = Field(default_factory=Network)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    training: Optional[TrainingFleet] = None
    serving: Optional[ServingFleet] = None
    local: Local = Field(default_factory=Local)
    backend: Backend = Field(default_factory=Backend)
    bundle: Bundle = Field(default_factory=Bundle)
    tags: dict[str, str] = Field(default_factory=dict)


