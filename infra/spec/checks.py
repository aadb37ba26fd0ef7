"""Rules that relate several fields of a stack spec, each reported with the field's path.

These run after the field-level validation in `infra.spec.model` succeeded. Every rule
appends to one list so the user sees all problems at once. Rules of one cloud: AWS's here
(instance types from the AWS table, tags, ALB slow start, the S3 backend), GCP's in
`infra.spec.gcp`; each cloud refuses the other's fields by name.
"""

from __future__ import annotations

from infra.spec.gcp import gcp_problems
from infra.spec.gpus import arch_of, gpus_for
from infra.spec.model import Fleet, Stack, fmt
from runtime.train.config import SWEEPABLE, TrainConfig

__all__ = ["fmt", "stack_problems", "INT_SWEEPS", "SUPPORTED_CLOUDS"]

# Load-balancing algorithms each cloud can express (ALB: round robin and least outstanding
# requests per target group; weighted round robin as a weighted forward across groups. GCP:
# a backend service's locality policy ROUND_ROBIN or LEAST_REQUEST; weighted backend services
# in the URL map across pools).
SUPPORTED_ALGORITHMS = {
    "aws": {"round_robin", "least_connections", "weighted_round_robin"},
    "gcp": {"round_robin", "least_connections", "weighted_round_robin"},
}
SUPPORTED_CLOUDS = ("aws", "gcp")
# AWS allows 50 tags per resource; gpufleet adds Name, gpufleet:stack and gpufleet:role.
MAX_USER_TAGS = 47


def _check_gpu_fleet(path: str, instance_type: str, gpus_per_node, problems: list[str]) -> None:
    gpus = gpus_for(instance_type)  # known: the model's field validator checked it (AWS; GCP: infra.spec.gcp)
    if gpus is None:
        return
    if gpus_per_node is not None and gpus_per_node != gpus:
        problems.append(
            f"{path}.gpus_per_node: {instance_type} has {gpus} GPU(s) per instance (got {gpus_per_node}; allowed: {gpus})"
        )


def _check_fleet_common(path: str, fleet: Fleet, problems: list[str]) -> None:
    cap = fleet.capacity
    if cap.type == "mixed" and cap.spot_percentage is None:
        problems.append(f"{path}.capacity.spot_percentage: required when type is 'mixed' (got nothing; allowed: 0..100)")
    if cap.type != "mixed" and (cap.spot_percentage is not None or cap.on_demand_base):
        problems.append(
            f"{path}.capacity: on_demand_base and spot_percentage apply only to type 'mixed' (got type {fmt(cap.type)})"
        )


def stack_problems(stack: Stack) -> list[str]:
    """All cross-field problems of a structurally valid stack, as `path: message` lines."""
    problems: list[str] = []
    if stack.cloud not in SUPPORTED_CLOUDS:
        problems.append(
            f"cloud: {stack.cloud} is not supported yet (got {fmt(stack.cloud)}; allowed: {', '.join(SUPPORTED_CLOUDS)})"
        )
        return problems
    if stack.training is None and stack.serving is None:
        problems.append("training, serving: a stack needs at least one fleet (got neither)")
    if stack.cloud == "gcp":
        problems.extend(gcp_problems(stack))
    else:
        _gcp_fields_on_aws(stack, problems)

    if stack.training is not None:
        t = stack.training
        _check_gpu_fleet("training", t.instance_type, t.gpus_per_node, problems)
        _check_fleet_common("training", t, problems)
        w = t.workload
        if w is not None:
            _workload_problems(w, problems)

    if stack.serving is not None:
        _serving_problems(stack, problems)

    if stack.cloud == "aws":
        _aws_problems(stack, problems)

    local = stack.local
    if local.replicas.min > local.replicas.max:
        problems.append(
            f"local.replicas: min <= max must hold (got min={local.replicas.min}, max={local.replicas.max})"
        )
    return problems


def _gcp_fields_on_aws(stack: Stack, problems: list[str]) -> None:
    """GCP-only fields in an AWS spec: named, never ignored."""
    if stack.gcp is not None:
        problems.append("gcp: only for cloud 'gcp' (got a gcp section with cloud 'aws')")
    fleets = [("training", stack.training), ("serving", stack.serving)]
    fleets += [(f"serving.pools[{i}]", p) for i, p in enumerate((stack.serving.pools or []) if stack.serving else [])]
    for path, fleet in fleets:
        if fleet is None:
            continue
        if fleet.gpus is not None:
            problems.append(f"{path}.gpus: attached GPUs are for GCP N1 machine types (got {fleet.gpus.count} x "
                            f"{fleet.gpus.type!r} with cloud 'aws'; an AWS instance type has its GPUs built in)")
        if getattr(fleet, "on_host_maintenance", None) is not None:
            problems.append(f"{path}.on_host_maintenance: a GCP setting (got {fmt(fleet.on_host_maintenance)} with "
                            "cloud 'aws')")
    if stack.serving is not None and stack.serving.load_balancer.listener.domain:
        problems.append(f"serving.load_balancer.listener.domain: a Google-managed certificate is GCP's (got "
                        f"{fmt(stack.serving.load_balancer.listener.domain)} with cloud 'aws'; allowed on aws: "
                        "listener.certificate_arn)")


def _aws_problems(stack: Stack, problems: list[str]) -> None:
    for key, value in stack.tags.items():
        if not key or len(key) > 128 or key.lower().startswith("aws:"):
            problems.append(f"tags: invalid tag key (got {fmt(key)}; allowed: 1-128 characters, not starting with 'aws:')")
        if len(value) > 256:
            problems.append(f"tags.{key}: tag value too long (got {len(value)} characters; allowed: at most 256)")
    if len(stack.tags) > MAX_USER_TAGS:
        problems.append(f"tags: too many tags (got {len(stack.tags)}; allowed: at most {MAX_USER_TAGS})")

    _backend_problems(stack, problems)


def _backend_problems(stack: Stack, problems: list[str]) -> None:
    b = stack.backend
    if b.type == "local":
        for field in ("bucket", "key", "region", "dynamodb_table"):
            if getattr(b, field) is not None:
                problems.append(f"backend.{field}: only used when backend.type is 's3' (got {fmt(getattr(b, field))} "
                                "with type 'local')")
        if b.lock != "lockfile":
            problems.append(f"backend.lock: only used when backend.type is 's3' (got {fmt(b.lock)} with type 'local')")
        return
    if b.bucket is None:
        problems.append("backend.bucket: required when backend.type is 's3' (got nothing; allowed: an S3 bucket name, "
                        "created by `gpufleet state bootstrap SPEC`)")
    if b.key is None:
        problems.append("backend.key: required when backend.type is 's3' (got nothing; allowed: an object key such as "
                        f"'stacks/{stack.name}.tfstate')")
    if b.lock == "dynamodb" and b.dynamodb_table is None:
        problems.append("backend.dynamodb_table: required when backend.lock is 'dynamodb' (got nothing; allowed: a "
                        "DynamoDB table name, 3-255 of A-Z a-z 0-9 _ . -)")
    if b.lock == "lockfile" and b.dynamodb_table is not None:
        problems.append(f"backend.dynamodb_table: only used when backend.lock is 'dynamodb' (got {fmt(b.dynamodb_table)} "
                        "with lock 'lockfile'; set backend.lock: dynamodb to lock with the table)")


def _serving_problems(stack: Stack, problems: list[str]) -> None:
    s = stack.serving
    lb = s.load_balancer
    if lb.algorithm not in SUPPORTED_ALGORITHMS[stack.cloud]:
        problems.append(
            f"serving.load_balancer.algorithm: not supported on {stack.cloud} (got {fmt(lb.algorithm)}; "
            f"allowed: {', '.join(sorted(SUPPORTED_ALGORITHMS[stack.cloud]))})"
        )
    if lb.health_check.timeout_s >= lb.health_check.interval_s:
        problems.append(
            f"serving.load_balancer.health_check.timeout_s: must be less than interval_s "
            f"(got {lb.health_check.timeout_s}; allowed: < {lb.health_check.interval_s})"
        )
    if stack.cloud == "aws" and lb.slow_start_s and lb.algorithm == "least_connections":
        problems.append(
            "serving.load_balancer.slow_start_s: AWS does not combine slow start with least outstanding requests "
            f"(got {lb.slow_start_s} with algorithm 'least_connections'; allowed: 0)"
        )
    if 0 < lb.slow_start_s < 30:
        problems.append(f"serving.load_balancer.slow_start_s: 0 turns it off, else 30..900 (got {lb.slow_start_s})")

    _check_fleet_common("serving", s, problems)
    _warm_pool_problems(stack, problems)
    if s.pools is None:
        _check_gpu_fleet("serving", s.instance_type, s.gpus_per_node, problems)
        if lb.algorithm == "weighted_round_robin":
            problems.append(
                "serving.pools: weighted_round_robin splits traffic across two or more pools by weight "
                "(got none; allowed: a list of at least 2 pools with name, instance_type and weight)"
            )
        return

    names = [p.name for p in s.pools]
    for i, pool in enumerate(s.pools):
        _check_gpu_fleet(f"serving.pools[{i}]", pool.instance_type, pool.gpus_per_node, problems)
        if arch_of(pool.instance_type) != arch_of(s.instance_type):
            # the pools share serving.image (and the wheelhouse an image's runtime installs from)
            problems.append(f"serving.pools[{i}].instance_type: every pool runs serving.image, built for "
                            f"{arch_of(s.instance_type)} ({s.instance_type}) (got {fmt(pool.instance_type)}, "
                            f"{arch_of(pool.instance_type)}; allowed: {arch_of(s.instance_type)} instance types)")
        if names.count(pool.name) > 1 and names.index(pool.name) == i:
            problems.append(f"serving.pools[{i}].name: pool names must be unique (got {fmt(pool.name)} twice)")
        if pool.capacity is not None:
            _check_fleet_common(f"serving.pools[{i}]", pool, problems)  # type: ignore[arg-type]
    if lb.algorithm == "weighted_round_robin":
        if len(s.pools) < 2:
            problems.append(
                f"serving.pools: weighted_round_robin needs at least 2 pools (got {len(s.pools)})"
            )
        if sum(p.weight for p in s.pools) == 0:
            problems.append("serving.pools: at least one pool needs a weight above 0 (got all 0)")
    elif len(s.pools) > 1:
        problems.append(
            f"serving.pools: several pools split traffic by weight, which needs "
            f"load_balancer.algorithm 'weighted_round_robin' (got {fmt(lb.algorithm)})"
        )


def _warm_pool_problems(stack: Stack, problems: list[str]) -> None:
    """AWS refuses a warm pool on a group with a mixed instances policy or spot instances
    (PutWarmPool), so a warm-pooled fleet is all on-demand and launches from its template."""
    s = stack.serving
    if s.warm_pool is None or stack.cloud != "aws":
        return
    capacities = [("serving.capacity", s.capacity)]
    capacities += [(f"serving.pools[{i}].capacity", p.capacity) for i, p in enumerate(s.pools or []) if p.capacity]
    for path, cap in capacities:
        if cap.type != "on_demand":
            problems.append(f"{path}: a warm pool needs on-demand instances (AWS refuses one on a group with spot "
                            f"or mixed capacity) (got type {fmt(cap.type)} with serving.warm_pool; allowed: on_demand)")
    replicas = [("serving.replicas", s.replicas)] + [(f"serving.pools[{i}].replicas", p.replicas)
                                                     for i, p in enumerate(s.pools or []) if p.replicas]
    for path, size in replicas:
        if s.warm_pool.min > size.max:
            problems.append(f"serving.warm_pool.min: at most the group's max instances are prepared "
                            f"(got {s.warm_pool.min} with {path}.max {size.max}; allowed: 0..{size.max})")


INT_SWEEPS = tuple(param for param, kind in SWEEPABLE.items() if kind is int)
WORKLOAD_FIELDS = {"workload": "type"}  # TrainConfig field -> training.workload field, where they differ


def _workload_problems(w, problems):
    """training.workload against the runtime's own rules (runtime.train.rules), named as spec fields.

    The runtime checks the same rules again when it starts (in flag names); a rule about a
    setting the spec has no field for (the output directory, ranks per node) is the runtime's alone.
    """
    where = "training.workload"
    settings = w.model_dump(exclude_none=True)
    cfg = TrainConfig.from_dict({"workload": settings.pop("type"), **settings})
    spec_fields = set(type(w).model_fields)

    def name(field):
        return WORKLOAD_FIELDS.get(field, field)

    for p in cfg.rule_problems():
        if name(p.field) not in spec_fields:
            continue
        if p.sweep_value is not None:
            problems.append(f"{where}.sweep.values: {p.field} {p.text(name)}")
        else:
            problems.append(f"{where}.{name(p.field)}: {p.text(name)}")
    # Presence: the spec asks for explicit values where the runtime would fall back on a default.
    if w.type == "kmeans" and w.k is None:
        problems.append(f"{where}.k: required for kmeans (got nothing; allowed: 1 or more)")
    if w.parallel != "pipeline" and w.microbatches is not None:
        problems.append(f"{where}.microbatches: only for parallel: pipeline (got parallel {w.parallel or 'data'})")
