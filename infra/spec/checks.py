"""Rules that relate several fields of a stack spec, each reported with the field's path.

These run after the field-level validation in `infra.spec.model` succeeded. Every rule
appends to one list so the user sees all problems at once.
"""

from __future__ import annotations

from infra.spec.gpus import gpus_for
from infra.spec.model import Fleet, Stack

# Load-balancing algorithms each cloud can express (ALB: round robin and least outstanding
# requests per target group; weighted round robin as a weighted forward across groups).
SUPPORTED_ALGORITHMS = {
    "aws": {"round_robin", "least_connections", "weighted_round_robin"},
}
SUPPORTED_CLOUDS = ("aws",)
# AWS allows 50 tags per resource; gpufleet adds Name, gpufleet:stack and gpufleet:role.
MAX_USER_TAGS = 47


def fmt(value) -> str:
    """A value as the user wrote it, quoted when it is a string."""
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _check_gpu_fleet(path: str, instance_type: str, gpus_per_node, problems: list[str]) -> None:
    gpus = gpus_for(instance_type)  # known: the model's field validator checked it
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

    if stack.training is not None:
        t = stack.training
        _check_gpu_fleet("training", t.instance_type, t.gpus_per_node, problems)
        _check_fleet_common("training", t, problems)
        w = t.workload
        if w is not None:
            if w.type in ("logreg", "mlp") and not w.label:
                problems.append(f"training.workload.label: required for {w.type} (got nothing)")
            if w.type == "kmeans" and w.k is None:
                problems.append("training.workload.k: required for kmeans (got nothing; allowed: 1 or more)")
            _workload_parallel_problems(w, problems)

    if stack.serving is not None:
        _serving_problems(stack, problems)

    for key, value in stack.tags.items():
        if not key or len(key) > 128 or key.lower().startswith("aws:"):
            problems.append(f"tags: invalid tag key (got {fmt(key)}; allowed: 1-128 characters, not starting with 'aws:')")
        if len(value) > 256:
            problems.append(f"tags.{key}: tag value too long (got {len(value)} characters; allowed: at most 256)")
    if len(stack.tags) > MAX_USER_TAGS:
        problems.append(f"tags: too many tags (got {len(stack.tags)}; allowed: at most {MAX_USER_TAGS})")

    b = stack.backend
    if b.type == "s3":
        for field in ("bucket", "key", "region"):
            if getattr(b, field) is None:
                problems.append(f"backend.{field}: required when backend.type is 's3' (got nothing)")

    local = stack.local
    if local.replicas.min > local.replicas.max:
        problems.append(
            f"local.replicas: min <= max must hold (got min={local.replicas.min}, max={local.replicas.max})"
        )
    return problems


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
    if lb.slow_start_s and lb.algorithm == "least_connections":
        problems.append(
            "serving.load_balancer.slow_start_s: AWS does not combine slow start with least outstanding requests "
            f"(got {lb.slow_start_s} with algorithm 'least_connections'; allowed: 0)"
        )
    if 0 < lb.slow_start_s < 30:
        problems.append(f"serving.load_balancer.slow_start_s: 0 turns it off, else 30..900 (got {lb.slow_start_s})")

    _check_fleet_common("serving", s, problems)
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


INT_SWEEPS = ("k", "epochs", "batch_size", "seed")


def _workload_parallel_problems(w, problems):
    """training.workload's parallel, microbatches and sweep (the runtime checks them again)."""
    where = "training.workload"
    if w.parallel == "pipeline":
        if w.type != "mlp":
            problems.append(f"{where}.parallel: pipeline splits an MLP into stages (got type {w.type}; allowed: mlp)")
        if w.checkpoint_every or w.max_restarts:
            problems.append(f"{where}.parallel: a pipeline run keeps no checkpoints; leave out checkpoint_every "
                            "and max_restarts")
        if w.sweep is not None:
            problems.append(f"{where}.sweep: runs each job on one rank; it cannot be combined with parallel: pipeline")
    elif w.microbatches is not None:
        problems.append(f"{where}.microbatches: only for parallel: pipeline (got parallel {w.parallel or 'data'})")
    if w.sweep is not None:
        param, values = w.sweep.param, w.sweep.values
        if param == "k" and w.type != "kmeans":
            problems.append(f"{where}.sweep.param: k is a k-means setting (got type {w.type})")
        if param in ("lr", "momentum") and w.type == "kmeans":
            problems.append(f"{where}.sweep.param: k-means has no {param}")
        if param in INT_SWEEPS and any(v != int(v) or v < (0 if param == "seed" else 1) for v in values):
            problems.append(f"{where}.sweep.values: {param} takes whole numbers "
                            f"{'>= 0' if param == 'seed' else '>= 1'} (got {values})")
        if param == "lr" and any(v <= 0 for v in values):
            problems.append(f"{where}.sweep.values: lr must be positive (got {values})")
        if param == "l2" and any(v < 0 for v in values):
            problems.append(f"{where}.sweep.values: l2 must be 0 or more (got {values})")
        if len(set(values)) != len(values):
            problems.append(f"{where}.sweep.values: values repeat (got {values})")
