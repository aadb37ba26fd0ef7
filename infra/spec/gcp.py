"""A stack on GCP: the rules only GCP has, and what a GCP stack resolves to (zones, instance groups).

Rules (`gcp_problems`, run by `infra.spec.checks` for `cloud: gcp`), each reported as
`path: problem (got ...; allowed ...)`:

- `region` and `gcp.project` are required; `gcp.zones` lie in the region.
- Machine types: an a2/a3/g2 type has its GPUs built in (`gpus` refused); an N1 type needs
  `gpus: {type, count}` with a count the accelerator allows and no more vCPUs than that count
  allows (N1 + T4: 1, 2 or 4 GPUs, up to 48/48/96 vCPUs).
- Every zone the stack uses offers every fleet's accelerator (the static table in
  `infra.spec.gpus`); without `gcp.zones`, `network.zones` of the region's zones that do.
- GPU and spot VMs stop on host maintenance: `on_host_maintenance` must be TERMINATE.
- A regional managed instance group holds either spot or on-demand VMs, and a training job
  rendezvouses in one group: training capacity is on_demand or spot, never mixed.
- AWS-only settings are refused by name: an AMI, `listener.certificate_arn`, `slow_start_s`,
  `serving.warm_pool`, the S3 state backend. Tags become labels, so they follow GCP's label rules.

Resolution (`resolve_gcp`): the zones, and each fleet's managed instance groups. A serving pool
with an on-demand base and spot above it becomes two groups behind the pool's one backend
service, `<group>-ondemand` and `<group>-spot`, each sized by the capacity split below; a
pool of one kind is one group named like the AWS Auto Scaling group (`<stack>-serve-<pool>`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from infra.spec.gpus import (GCP_ACCELERATORS, GCP_ZONE_ACCELERATORS, gcp_builtin_gpus, gcp_zones_offering,
                             n1_vcpus)
from infra.spec.model import AttachedGpus, Capacity, Size, Stack, fmt

# GCP labels: keys start with a lowercase letter; keys and values use lowercase letters, digits,
# "_" and "-", at most 63 characters. gpufleet adds gpufleet-stack and gpufleet-role (64 allowed).
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
MAX_USER_LABELS = 62
GCP_HTTP_PORTS = (80, 8080)  # what a global external Application Load Balancer's HTTP proxy listens on
GCP_HTTPS_PORT = 443
DEFAULT_ZONES = 2  # network.zones' default: a spec that does not set it gets at most this many


@dataclass(frozen=True)
class GcpGroup:
    """One regional managed instance group: spot or on-demand VMs, sized min <= desired <= max."""

    name: str
    spot: bool
    min: int
    desired: int
    max: int

    @property
    def autoscaled(self) -> bool:
        return self.min < self.max


@dataclass(frozen=True)
class GcpFleet:
    """A fleet (training, or a serving pool) as GCP runs it: machine type, GPUs, its groups."""

    role: str  # "train" or "serve"
    pool: str | None  # the serving pool's name; None for training
    machine_type: str
    accelerator: str
    gpus: int  # per VM
    attached: bool  # N1: GPUs attached in the instance template; a2/a3/g2: built in
    groups: tuple[GcpGroup, ...]


@dataclass(frozen=True)
class ResolvedGcp:
    project: str
    zones: tuple[str, ...]
    training: GcpFleet | None = None
    pools: tuple[GcpFleet, ...] = field(default_factory=tuple)
    listener_port: int = 80
    domain: str | None = None

    @property
    def fleets(self) -> tuple[GcpFleet, ...]:
        return ((self.training,) if self.training else ()) + self.pools


def accelerator_of(instance_type: str, gpus: AttachedGpus | None) -> tuple[str, int, bool] | None:
    """(accelerator, GPUs per VM, attached) of a machine type that passed the rules, else None."""
    builtin = gcp_builtin_gpus(instance_type)
    if builtin:
        return builtin[0], builtin[1], False
    if gpus is not None:
        return gpus.type, gpus.count, True
    return None


# -- rules -----------------------------------------------------------------------------------
def _machine_problems(path: str, instance_type: str, gpus: AttachedGpus | None, gpus_per_node: int | None,
                      gpus_path: str, problems: list[str]) -> None:
    builtin = gcp_builtin_gpus(instance_type)
    if builtin is not None:
        accelerator, count = builtin
        if gpus is not None:
            problems.append(f"{gpus_path}: {instance_type} has its GPUs built in ({count} x {accelerator}); gpus is "
                            f"for N1 machine types (got {gpus.count} x {gpus.type!r}; allowed: nothing)")
    else:  # an N1 type (the field validator admitted nothing else)
        if gpus is None:
            problems.append(f"{gpus_path}: required for {instance_type}, an N1 machine type without GPUs of its own "
                            f"(got nothing; allowed: {{type: {_n1_accelerators()}, count: N}})")
            return
        accel = GCP_ACCELERATORS.get(gpus.type)
        if accel is None or accel.n1_max_vcpus is None:
            problems.append(f"{gpus_path}.type: not an accelerator N1 machine types take (got {gpus.type!r}; "
                            f"allowed: {_n1_accelerators()})")
            return
        if gpus.count not in accel.n1_max_vcpus:
            allowed = ", ".join(map(str, accel.n1_max_vcpus))
            problems.append(f"{gpus_path}.count: {gpus.type} attaches in counts of {allowed} (got {gpus.count})")
            return
        vcpus, limit = n1_vcpus(instance_type), accel.n1_max_vcpus[gpus.count]
        if vcpus > limit:
            problems.append(f"{path}: {gpus.count} x {gpus.type} allow at most {limit} vCPUs (got {instance_type}, "
                            f"{vcpus} vCPUs; allowed: an N1 type with <= {limit} vCPUs, or more GPUs)")
        count = gpus.count
    if gpus_per_node is not None and gpus_per_node != count:
        problems.append(f"{path.rsplit('.', 1)[0]}.gpus_per_node: {instance_type} has {count} GPU(s) per VM "
                        f"(got {gpus_per_node}; allowed: {count})")


def _n1_accelerators() -> str:
    return ", ".join(name for name, a in GCP_ACCELERATORS.items() if a.n1_max_vcpus)


def _maintenance_problems(path: str, fleet, capacity: Capacity, problems: list[str]) -> None:
    if fleet.on_host_maintenance == "MIGRATE":
        why = ("spot VMs are stopped, never migrated," if capacity.type == "spot"
               else "VMs with GPUs cannot live-migrate: they stop")
        problems.append(f"{path}.on_host_maintenance: {why} on host maintenance (got 'MIGRATE' with capacity "
                        f"{fmt(capacity.type)}; allowed: TERMINATE)")


def _fleets(stack: Stack):
    """(path, machine type, gpus, gpus path, gpus_per_node) of every GCP fleet, training first."""
    out = []
    t, s = stack.training, stack.serving
    if t is not None:
        out.append(("training.instance_type", t.instance_type, t.gpus, "training.gpus", t.gpus_per_node))
    if s is not None:
        out.append(("serving.instance_type", s.instance_type, s.gpus, "serving.gpus", s.gpus_per_node))
        for i, p in enumerate(s.pools or []):
            out.append((f"serving.pools[{i}].instance_type", p.instance_type, p.gpus, f"serving.pools[{i}].gpus",
                        p.gpus_per_node))
    return out


def gcp_problems(stack: Stack) -> list[str]:
    """Every GCP-only problem of a structurally valid `cloud: gcp` stack."""
    problems: list[str] = []
    if stack.region is None:
        problems.append(f"region: required when cloud is 'gcp' (got nothing; allowed: {', '.join(GCP_ZONE_ACCELERATORS)})")
    if stack.gcp is None:
        problems.append("gcp: required when cloud is 'gcp' (got nothing; allowed: {project: PROJECT_ID, zones: [...]})")
    accelerators: dict[str, str] = {}  # accelerator -> the field that asks for it
    for path, machine, gpus, gpus_path, per_node in _fleets(stack):
        before = len(problems)
        _machine_problems(path, machine, gpus, per_node, gpus_path, problems)
        found = accelerator_of(machine, gpus)
        if found and len(problems) == before:
            accelerators.setdefault(found[0], gpus_path if found[2] else path)
    if stack.training is not None:
        t = stack.training
        _maintenance_problems("training", t, t.capacity, problems)
        if t.capacity.type == "mixed":
            problems.append("training.capacity: a GCP managed instance group holds spot or on-demand VMs, not both, "
                            "and a training job's ranks rendezvous in one group (got type 'mixed'; allowed: on_demand, spot)")
        if t.workload is not None and t.workload.data.startswith("s3://"):
            problems.append(f"training.workload.data: an s3:// dataset needs AWS credentials, which the GCP VMs do not "
                            f"have (got {fmt(t.workload.data)}; allowed: gs://BUCKET/PREFIX)")
    if stack.serving is not None:
        _maintenance_problems("serving", stack.serving, stack.serving.capacity, problems)
        if stack.serving.warm_pool is not None:
            problems.append("serving.warm_pool: warm pools are AWS Auto Scaling's (got a warm_pool with cloud 'gcp'; "
                            "a GCP managed instance group has none: leave it out)")
        _serving_problems(stack, problems)
        uri = stack.serving.model_uri
        if uri and uri.startswith("s3://"):
            problems.append(f"serving.model_uri: an s3:// model needs AWS credentials, which the GCP VMs do not have "
                            f"(got {fmt(uri)}; allowed: gs://BUCKET/PREFIX, or nothing for the training output)")
    if stack.region is not None and stack.gcp is not None:
        _zone_problems(stack, accelerators, problems)
    _label_problems(stack, problems)
    if stack.backend.type != "local":
        problems.append(f"backend.type: the S3 state backend is AWS's (got {fmt(stack.backend.type)} with cloud 'gcp'; "
                        "allowed: local)")
    return problems


def _serving_problems(stack: Stack, problems: list[str]) -> None:
    lb = stack.serving.load_balancer
    listener = lb.listener
    if listener.certificate_arn:
        problems.append("serving.load_balancer.listener.certificate_arn: an ACM certificate is AWS's (got "
                        f"{fmt(listener.certificate_arn)}; allowed on gcp: listener.domain, for a Google-managed certificate)")
    port_set = "port" in listener.model_fields_set
    if listener.domain and port_set and listener.port != GCP_HTTPS_PORT:
        problems.append(f"serving.load_balancer.listener.port: HTTPS with a managed certificate listens on 443 "
                        f"(got {listener.port} with domain {fmt(listener.domain)}; allowed: 443)")
    if not listener.domain and listener.port not in GCP_HTTP_PORTS:
        problems.append(f"serving.load_balancer.listener.port: a global external Application Load Balancer serves HTTP "
                        f"on 80 or 8080 (got {listener.port}; allowed: 80, 8080, or 443 with listener.domain)")
    if lb.slow_start_s:
        problems.append(f"serving.load_balancer.slow_start_s: GCP backend services have no slow start (got "
                        f"{lb.slow_start_s}; allowed: 0)")
    scaling = stack.serving.autoscaling
    if scaling is not None and scaling.metric == "cpu_utilization" and scaling.target > 100:
        problems.append(f"serving.autoscaling.target: cpu_utilization is a percentage (got {scaling.target:g}; "
                        "allowed: above 0, at most 100)")


def _zone_problems(stack: Stack, accelerators: dict[str, str], problems: list[str]) -> None:
    region, zones = stack.region, stack.gcp.zones
    known = GCP_ZONE_ACCELERATORS[region]
    if zones is None:
        if not accelerators:
            return
        missing = {a: where for a, where in accelerators.items() if not gcp_zones_offering(region, {a})}
        for accel, where in missing.items():
            problems.append(f"{where}: no zone of {region} offers {accel} (got region {region!r}; regions that offer "
                            f"it: {_regions_offering({accel})})")
        offering = gcp_zones_offering(region, set(accelerators))
        if not missing and not offering:
            problems.append(f"region: no zone of {region} offers all of {', '.join(sorted(accelerators))} (got "
                            f"{region!r}; allowed: {_regions_offering(set(accelerators))})")
        elif offering and "zones" in stack.network.model_fields_set and stack.network.zones > len(offering):
            problems.append(f"network.zones: {region} has {len(offering)} zone(s) offering {', '.join(sorted(accelerators))} "
                            f"(got {stack.network.zones}; allowed: at most {len(offering)}: {', '.join(offering)})")
        return
    if "zones" in stack.network.model_fields_set and stack.network.zones != len(zones):
        problems.append(f"network.zones: gcp.zones lists {len(zones)} zone(s) (got {stack.network.zones}; allowed: "
                        f"{len(zones)}, or leave network.zones out)")
    for i, zone in enumerate(zones):
        if zone not in known:
            problems.append(f"gcp.zones[{i}]: not a zone of region {region} (got {zone!r}; allowed: {', '.join(sorted(known))})")
            continue
        for accel, where in accelerators.items():
            if accel not in known[zone]:
                problems.append(f"gcp.zones[{i}]: {zone} does not offer {accel}, which {where} needs (got {zone!r}; "
                                f"zones of {region} that offer it: {', '.join(gcp_zones_offering(region, {accel})) or 'none'})")


def _regions_offering(accels: set[str]) -> str:
    return ", ".join(r for r in GCP_ZONE_ACCELERATORS if gcp_zones_offering(r, accels)) or "none known"


def _label_problems(stack: Stack, problems: list[str]) -> None:
    for key, value in stack.tags.items():
        if not LABEL_KEY.match(key):
            problems.append(f"tags: not a GCP label key (got {fmt(key)}; allowed: a lowercase letter, then up to 62 of "
                            "a-z 0-9 _ -)")
        elif not LABEL_VALUE.match(value):
            problems.append(f"tags.{key}: not a GCP label value (got {fmt(value)}; allowed: up to 63 of a-z 0-9 _ -)")
    if len(stack.tags) > MAX_USER_LABELS:
        problems.append(f"tags: too many labels (got {len(stack.tags)}; allowed: at most {MAX_USER_LABELS})")


# -- resolution ------------------------------------------------------------------------------
def split_capacity(capacity, n: int) -> tuple[int, int]:
    """(on-demand, spot) VMs out of n for a resolved capacity (infra.spec.resolve.ResolvedCapacity).

    The first `on_demand_base` VMs are on-demand; of the rest, on_demand_percentage_above_base
    percent (rounded up, as availability comes first) are on-demand and the others spot.
    """
    base = min(n, capacity.on_demand_base)
    above = n - base
    on_demand = base + math.ceil(above * capacity.on_demand_percentage_above_base / 100)
    return on_demand, n - on_demand


def groups_for(name: str, capacity, size: Size) -> tuple[GcpGroup, ...]:
    """The managed instance groups of one fleet: one of each kind that can hold a VM.

    Each kind's min, desired and max are the capacity split of the fleet's min, desired and max.
    """
    split = [split_capacity(capacity, n) for n in (size.min, size.desired, size.max)]
    kinds = [(False, [od for od, _ in split]), (True, [sp for _, sp in split])]
    kinds = [(spot, sizes) for spot, sizes in kinds if sizes[2] > 0]
    if len(kinds) == 1:
        spot, (lo, mid, hi) = kinds[0]
        return (GcpGroup(name, spot, lo, mid, hi),)
    return tuple(GcpGroup(f"{name}-{'spot' if spot else 'ondemand'}", spot, lo, mid, hi)
                 for spot, (lo, mid, hi) in kinds)


def stack_zones(stack: Stack, accelerators: set[str]) -> tuple[str, ...]:
    """The zones a valid GCP stack uses: gcp.zones, else the first network.zones offering everything."""
    if stack.gcp.zones:
        return tuple(stack.gcp.zones)
    offering = gcp_zones_offering(stack.region, accelerators) or sorted(GCP_ZONE_ACCELERATORS[stack.region])
    wanted = stack.network.zones if "zones" in stack.network.model_fields_set else DEFAULT_ZONES
    return tuple(offering[:wanted])


def resolve_gcp(stack: Stack, training_group: str | None, training_capacity, pools) -> ResolvedGcp:
    """The GCP side of a stack that passed `gcp_problems`: zones, fleets and their groups.

    `pools` are the resolved serving pools (infra.spec.resolve.ResolvedPool), in spec order.
    """
    fleets: list[GcpFleet] = []
    training = None
    if stack.training is not None:
        t = stack.training
        accel, gpus, attached = accelerator_of(t.instance_type, t.gpus)
        training = GcpFleet("train", None, t.instance_type, accel, gpus, attached,
                            groups_for(training_group, training_capacity, t.nodes))
    specs = {p.name: p for p in (stack.serving.pools or [])} if stack.serving else {}
    for pool in pools:
        given = specs.get(pool.name)
        gpus_spec = given.gpus if given is not None else stack.serving.gpus
        accel, gpus, attached = accelerator_of(pool.instance_type, gpus_spec)
        fleets.append(GcpFleet("serve", pool.name, pool.instance_type, accel, gpus, attached,
                               groups_for(pool.group_name, pool.capacity, pool.size)))
    used = {f.accelerator for f in fleets} | ({training.accelerator} if training else set())
    listener = stack.serving.load_balancer.listener if stack.serving else None
    domain = listener.domain if listener else None
    port = GCP_HTTPS_PORT if domain else (listener.port if listener else 80)
    return ResolvedGcp(project=stack.gcp.project, zones=stack_zones(stack, used), training=training,
                       pools=tuple(fleets), listener_port=port, domain=domain)
