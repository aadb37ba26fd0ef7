"""A validated stack with every default and derived value filled in.

Templates and the runtime config read this, never the raw YAML, so one spec value has one
home and derived names (group names, target groups, metric names) are computed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from infra.spec.gcp import ResolvedGcp, accelerator_of, resolve_gcp
from infra.spec.gpus import arch_of, gpus_for
from infra.spec.model import DEFAULT_GCP_IMAGE_PROJECT, DEFAULT_IMAGE_OWNER, AttachedGpus, Capacity, Image, Size, Stack

# The metric contract shared by the Terraform scaling policy and runtime/agent.
METRIC_NAMESPACE = "GPUFleet"
CUSTOM_METRIC_NAMES = {"inflight_requests": "InflightRequests", "gpu_utilization": "GPUUtilization"}
# GCP: the same custom metrics in Cloud Monitoring, written per instance (resource gce_instance).
GCP_METRIC_PREFIX = "custom.googleapis.com/gpufleet/"


def gcp_metric_type(metric: str) -> str | None:
    """The Cloud Monitoring metric type of a custom scaling metric ("inflight_requests" ->
    custom.googleapis.com/gpufleet/inflight_requests); None for CPU or load-balancer utilization."""
    return GCP_METRIC_PREFIX + metric if metric in CUSTOM_METRIC_NAMES else None


# Spec algorithm -> ALB target group algorithm (weighted round robin is round robin inside
# each pool's target group plus a weighted forward across pools).
ALB_ALGORITHMS = {
    "round_robin": "round_robin",
    "least_connections": "least_outstanding_requests",
    "weighted_round_robin": "round_robin",
}
HAPROXY_ALGORITHMS = {"round_robin": "roundrobin", "least_connections": "leastconn", "weighted_round_robin": "roundrobin"}
DEFAULT_POOL = "main"


@dataclass(frozen=True)
class ResolvedCapacity:
    on_demand_base: int
    on_demand_percentage_above_base: int
    spot_allocation_strategy: str = "capacity-optimized"


@dataclass(frozen=True)
class ResolvedPool:
    name: str
    group_name: str
    instance_type: str
    gpus_per_node: int
    weight: int
    size: Size
    capacity: ResolvedCapacity


@dataclass(frozen=True)
class ResolvedBackend:
    """The S3 state backend with its defaults filled in (a local backend resolves to None).

    `lock` is "lockfile" (a `<key>.tflock` object written with S3 conditional writes,
    Terraform 1.10+) or "dynamodb" (a row in `dynamodb_table`, for older Terraform).
    """

    bucket: str
    key: str
    region: str
    lock: str
    dynamodb_table: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


# The image's Python on the default GPU images: the AWS PyTorch DLAMIs keep a venv in
# /opt/pytorch (their release notes' python_location), Google's Deep Learning VM images conda.
IMAGE_PYTHON = {"aws": "/opt/pytorch/bin/python", "gcp": "/opt/conda/bin/python"}
PYTHON_VERSION = {"aws": "3.12", "gcp": "3.10"}


@dataclass(frozen=True)
class ResolvedRuntime:
    """How instances install the runtime (the spec's `runtime:` with its defaults).

    `archs` maps each role ("train", "serve") to its instances' CPU architecture, which picks
    the wheelhouse (bundle/wheelhouse/<arch>/) they install from.
    """

    torch: str  # "use_image_torch" or "wheelhouse"
    image_python: str
    python_version: str
    archs: dict[str, str] = field(default_factory=dict)


def image_ships_torch(cloud: str, image: Image) -> bool:
    """Whether a fleet's image is a GPU image with torch: a PyTorch Deep Learning AMI by lookup
    (owner amazon), or a pytorch-* family of Google's Deep Learning VM images. A fixed AMI id or
    any other image is not known to, so its fleets get torch from the wheelhouse by default."""
    if cloud == "gcp":
        return image.project == DEFAULT_GCP_IMAGE_PROJECT and (image.family or "").startswith("pytorch")
    return image.lookup is not None and image.lookup.owner == DEFAULT_IMAGE_OWNER and "PyTorch" in image.lookup.name


def resolve_runtime(stack: Stack) -> ResolvedRuntime:
    fleets = {role: f for role, f in (("train", stack.training), ("serve", stack.serving)) if f is not None}
    rt = stack.runtime
    torch = rt.torch or ("use_image_torch" if all(image_ships_torch(stack.cloud, f.image) for f in fleets.values())
                         else "wheelhouse")
    return ResolvedRuntime(torch=torch, image_python=rt.image_python or IMAGE_PYTHON[stack.cloud],
                           python_version=rt.python_version or PYTHON_VERSION[stack.cloud],
                           archs={role: arch_of(f.instance_type) for role, f in fleets.items()})


@dataclass(frozen=True)
class ResolvedStack:
    spec: Stack
    tags: dict[str, str]
    training_group: str | None = None
    training_gpus_per_node: int | None = None
    training_capacity: ResolvedCapacity | None = None
    pools: list[ResolvedPool] = field(default_factory=list)
    # Seconds a serving instance takes to go away once told to: the load balancer's
    # deregistration window (the replica still answers, unready) and then the server's drain.
    # The agent waits this long, the lifecycle hook and systemd's stop timeout add margins to it.
    serving_drain_s: int | None = None
    backend: ResolvedBackend | None = None  # None: Terraform's local state file in the root
    gcp: ResolvedGcp | None = None  # cloud: gcp: project, zones, each fleet's managed instance groups
    runtime: ResolvedRuntime | None = None  # how instances install the runtime (always set by resolve)

    @property
    def name(self) -> str:
        return self.spec.name


def resolve_capacity(capacity: Capacity) -> ResolvedCapacity:
    if capacity.type == "on_demand":
        return ResolvedCapacity(0, 100)
    if capacity.type == "spot":
        return ResolvedCapacity(0, 0)
    return ResolvedCapacity(capacity.on_demand_base, 100 - (capacity.spot_percentage or 0))


def gpus_per_instance(stack: Stack, instance_type: str, gpus: AttachedGpus | None) -> int:
    """GPUs per instance of a valid fleet: the AWS table, or GCP's built-in or attached GPUs."""
    if stack.cloud == "gcp":
        return accelerator_of(instance_type, gpus)[1]
    return gpus_for(instance_type)


def resolve(stack: Stack) -> ResolvedStack:
    """Fill in derived values of a stack that passed `stack_problems` without problems."""
    tags = {**stack.tags, "gpufleet:stack": stack.name}
    kwargs: dict = {}
    if stack.training is not None:
        t = stack.training
        kwargs.update(
            training_group=f"{stack.name}-train",
            training_gpus_per_node=t.gpus_per_node or gpus_per_instance(stack, t.instance_type, t.gpus),
            training_capacity=resolve_capacity(t.capacity),
        )
    pools: list[ResolvedPool] = []
    s = stack.serving
    if s is not None:
        kwargs["serving_drain_s"] = s.load_balancer.deregistration_delay_s + s.drain_timeout_s
        specs = s.pools or []
        if not specs:
            pools.append(
                ResolvedPool(
                    name=DEFAULT_POOL,
                    group_name=f"{stack.name}-serve-{DEFAULT_POOL}",
                    instance_type=s.instance_type,
                    gpus_per_node=s.gpus_per_node or gpus_per_instance(stack, s.instance_type, s.gpus),
                    weight=1,
                    size=s.replicas,
                    capacity=resolve_capacity(s.capacity),
                )
            )
        for p in specs:
            pools.append(
                ResolvedPool(
                    name=p.name,
                    group_name=f"{stack.name}-serve-{p.name}",
                    instance_type=p.instance_type,
                    gpus_per_node=p.gpus_per_node or gpus_per_instance(stack, p.instance_type, p.gpus),
                    weight=p.weight,
                    size=p.replicas or s.replicas,
                    capacity=resolve_capacity(p.capacity or s.capacity),
                )
            )
    b = stack.backend
    if b.type == "s3":
        kwargs["backend"] = ResolvedBackend(bucket=b.bucket, key=b.key, region=b.region or stack.region, lock=b.lock,
                                            dynamodb_table=b.dynamodb_table)
    if stack.cloud == "gcp":
        kwargs["gcp"] = resolve_gcp(stack, kwargs.get("training_group"), kwargs.get("training_capacity"), pools)
    return ResolvedStack(spec=stack, tags=tags, pools=pools, runtime=resolve_runtime(stack), **kwargs)
