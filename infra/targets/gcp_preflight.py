"""Preflight for a GCP stack: ask Compute Engine, before Terraform, whether its fleets can exist.

`preflight(project, region, zones, needs)` reads (never writes) the Compute Engine API through
google-cloud-compute and returns every problem it finds in one list, each line naming the field
the user would change, so one run reports them all:

- each zone is in the region and exists;
- each fleet's machine type exists in each zone (`MachineTypesClient.get`);
- each fleet's GPU type is offered in each zone (`AcceleratorTypesClient.list`), with at most the
  zone's `maximumCardsPerInstance` per instance; machine types with built-in GPUs (a2, a3, g2)
  take no other GPU type;
- the region's GPU quota (`RegionsClient.get`: `quotas[{metric, limit, usage}]`) covers every
  fleet at its max size, summed over the fleets that draw on the same metric. The metric is
  the GPU type's (`nvidia-tesla-t4` -> `NVIDIA_T4_GPUS`), `PREEMPTIBLE_`-prefixed for spot VMs;
- the project's `GPUS_ALL_REGIONS` quota (`ProjectsClient.get`), 0 on new projects, covers the
  GPUs of all fleets together.

Quotas are compared with their limit, not with limit minus usage: a preflight before re-planning
a running stack would otherwise count the stack's own GPUs against it. Each quota problem names
the exact fix (a quota increase request, with its `gcloud` command).

Errors that are not about the stack (no credentials, the Compute API disabled, permission
denied, the API unreachable) raise `OperationFailed`; a missing google-cloud-compute too
(`pip install 'gpufleet[gcp]'`). The module knows nothing of the spec model: the caller turns a
resolved spec into `FleetNeed`s.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.errors import OperationFailed

# Accelerator type names whose quota metric does not follow the rule in `quota_metric`.
_METRICS = {
    "nvidia-h100-80gb": "NVIDIA_H100_GPUS",
    "nvidia-h100-mega-80gb": "NVIDIA_H100_MEGA_GPUS",
    "nvidia-h200-141gb": "NVIDIA_H200_GPUS",
}
QUOTA_CONSOLE = "https://console.cloud.google.com/iam-admin/quotas?project={project}"


@dataclass(frozen=True)
class FleetNeed:
    """One fleet at its largest: `max_instances` instances of `machine_type`, each with `per_instance`
    GPUs of type `accelerator` (None: the machine type's built-in GPUs, or none at all).

    `fleet` is the fleet's path in the spec ("training", "serving", "serving.pools[1]"); problems
    name `<fleet>.instance_type`, `<fleet>.gpus.type`, `<fleet>.gpus.count` and `<fleet>.<size_field>`
    (default `nodes.max` for training, `replicas.max` otherwise). `spot` fleets draw on the
    `PREEMPTIBLE_*` quotas.
    """

    fleet: str
    machine_type: str
    accelerator: str | None
    per_instance: int
    max_instances: int
    spot: bool = False
    size_field: str | None = None

    @property
    def size_path(self) -> str:
        field = self.size_field or ("nodes.max" if self.fleet == "training" else "replicas.max")
        return f"{self.fleet}.{field}"

    @property
    def unit(self) -> str:
        return self.size_path.split(".")[-2]  # "nodes", "replicas"


def quota_metric(accelerator: str, spot: bool = False) -> str:
    """The regional quota metric of a GPU type: nvidia-tesla-t4 -> NVIDIA_T4_GPUS (PREEMPTIBLE_... for spot)."""
    name = _METRICS.get(accelerator)
    if name is None:
        short = accelerator.removeprefix("nvidia-").removeprefix("tesla-")
        name = f"NVIDIA_{short.upper().replace('-', '_')}_GPUS"
    return f"PREEMPTIBLE_{name}" if spot else name


def quota_fix(project: str, metric: str, value: int, region: str | None = None) -> str:
    """The quota increase request that fixes a quota problem, as a gcloud command and the console page."""
    quota_id = metric.replace("_", "-") + ("-per-project-region" if region else "-per-project")
    dims = f" --dimensions=region={region}" if region else ""
    return (f"request a quota increase: gcloud quotas preferences create --service=compute.googleapis.com "
            f"--project={project} --quota-id={quota_id}{dims} --preferred-value={value} "
            f"(or {QUOTA_CONSOLE.format(project=project)})")


def preflight(project: str, region: str, zones: list[str], needs: list[FleetNeed], *,
              client_options=None, credentials=None) -> list[str]:
    """Every problem that would stop the fleets in `needs` from existing in `zones` of `region`; [] when none.

    `client_options`/`credentials` go to every google-cloud-compute client (tests point them at a
    fake API); by default the clients use Application Default Credentials and the real API.
    """
    api = _Compute(project, client_options, credentials)
    problems = [f"zones: {z} is not in region {region}" for z in zones if z.rsplit("-", 1)[0] != region]
    zones = [z for z in zones if z.rsplit("-", 1)[0] == region]
    region_quotas = api.quotas("region", region)
    if region_quotas is None:
        problems.append(f"region: {region} does not exist in project {project}")
    offered = {}
    for zone in zones:
        offered[zone] = api.accelerators(zone)
        if offered[zone] is None:
            problems.append(f"zones: {zone} does not exist in region {region}")
    zones = [z for z in zones if offered[z] is not None]
    gpu_types = {}
    for need in needs:
        gpu_types[need] = _check_fleet(api, need, zones, offered, problems)
    if region_quotas is not None:
        problems += _region_quota_problems(project, region, needs, gpu_types, region_quotas)
    problems += _project_quota_problems(project, [n for n in needs if gpu_types[n]], api.quotas("project", project))
    return problems


def _check_fleet(api, need: FleetNeed, zones, offered, problems) -> str | None:
    """Machine type and GPU type of one fleet in every zone; returns the GPU type its quota is drawn from."""
    missing, built_in = [], None
    for zone in zones:
        machine = api.machine_type(zone, need.machine_type)
        if machine is None:
            missing.append(zone)
        elif machine.accelerators and built_in is None:
            built_in = machine.accelerators[0]
    if missing:
        problems.append(f"{need.fleet}.instance_type: {need.machine_type} does not exist in {', '.join(missing)}")
    if built_in is not None:
        kind, count = built_in.guest_accelerator_type, built_in.guest_accelerator_count
        if need.accelerator and need.accelerator != kind:
            problems.append(f"{need.fleet}.gpus.type: {need.machine_type} comes with {count} x {kind} and takes "
                            f"no other GPU type (got {need.accelerator}; allowed: {kind} or none)")
        return kind
    if not need.accelerator:
        return None
    absent = [z for z in zones if need.accelerator not in offered[z]]
    if absent:
        where = [z for z in zones if z not in absent]
        hint = f" (offered in {', '.join(where)}; allowed: zones that offer it)" if where else ""
        problems.append(f"{need.fleet}.gpus.type: {need.accelerator} is not offered in "
                        f"zone{'s' if len(absent) > 1 else ''} {', '.join(absent)}{hint}")
    cards = {offered[z][need.accelerator] for z in zones if need.accelerator in offered[z]}
    if cards and need.per_instance > min(cards):
        problems.append(f"{need.fleet}.gpus.count: at most {min(cards)} {need.accelerator} per instance "
                        f"(got {need.per_instance})")
    return need.accelerator


def _terms(needs) -> tuple[str, str, int]:
    """("training.nodes.max + ...", "4 nodes x 1 + ...", total GPUs) for the fleets in `needs`, which
    read as `training.nodes.max: 4 nodes x 1 NVIDIA_A100_GPUS = 4 exceeds ...`."""
    fields = " + ".join(n.size_path for n in needs)
    terms = " + ".join(f"{n.max_instances} {n.unit} x {n.per_instance}" for n in needs)
    return fields, terms, sum(n.max_instances * n.per_instance for n in needs)


def _region_quota_problems(project, region, needs, gpu_types, quotas) -> list[str]:
    by_metric: dict[str, list] = {}
    for need in needs:
        if gpu_types[need]:
            by_metric.setdefault(quota_metric(gpu_types[need], need.spot), []).append(need)
    problems = []
    for metric, group in by_metric.items():
        fields, terms, total = _terms(group)
        limit, usage = quotas.get(metric, (None, 0.0))
        if limit is None:
            problems.append(f"{fields}: {terms} {metric} = {total} but region {region} has no {metric} quota "
                            f"(the GPU type is not available there, or the quota is 0); "
                            f"{quota_fix(project, metric, total, region)}")
        elif total > limit:
            used = f", {usage:g} in use" if usage else ""
            problems.append(f"{fields}: {terms} {metric} = {total} exceeds the region's quota of {limit:g} "
                            f"({region}{used}); {quota_fix(project, metric, total, region)}")
    return problems


def _project_quota_problems(project, needs, quotas) -> list[str]:
    if not needs or quotas is None or "GPUS_ALL_REGIONS" not in quotas:
        return []
    limit, _ = quotas["GPUS_ALL_REGIONS"]
    fields, terms, total = _terms(needs)
    if total <= limit:
        return []
    new = "; new projects start at 0" if limit == 0 else ""
    return [f"{fields}: {terms} GPUs = {total} exceeds the project's GPUS_ALL_REGIONS quota of {limit:g} "
            f"(project {project}{new}); {quota_fix(project, 'GPUS_ALL_REGIONS', total)}"]


class _Compute:
    """The few read-only calls preflight makes; a 404 answers None, any other API error is OperationFailed."""

    def __init__(self, project, client_options, credentials):
        try:
            from google.cloud import compute_v1
        except ImportError:
            raise OperationFailed("GCP preflight needs google-cloud-compute: pip install 'gpufleet[gcp]'") from None
        self.project, self.compute_v1 = project, compute_v1
        self.kwargs = {k: v for k, v in (("client_options", client_options), ("credentials", credentials))
                       if v is not None}
        self._clients: dict[str, object] = {}
        self._machine_types: dict[tuple, object] = {}

    def _client(self, name):
        if name not in self._clients:
            from google.auth.exceptions import DefaultCredentialsError
            try:
                self._clients[name] = getattr(self.compute_v1, name)(**self.kwargs)
            except DefaultCredentialsError as exc:
                raise OperationFailed(f"no Google credentials for project {self.project} ({exc}); run "
                                      "`gcloud auth application-default login` or set "
                                      "GOOGLE_APPLICATION_CREDENTIALS") from None
        return self._clients[name]

    def _call(self, what, fn, **request):
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        try:
            return fn(**request)
        except gexc.NotFound:
            return None
        except (gexc.GoogleAPICallError, gexc.RetryError, auth_exc.GoogleAuthError) as exc:
            raise OperationFailed(f"Compute Engine API, {what} in project {self.project}: {exc}") from None

    def quotas(self, scope, name) -> dict | None:
        """{metric: (limit, usage)} of a region or of the project; None when the region does not exist."""
        if scope == "region":
            found = self._call(f"region {name}", self._client("RegionsClient").get, project=self.project, region=name)
        else:
            found = self._call("the project", self._client("ProjectsClient").get, project=self.project)
        return None if found is None else {q.metric: (q.limit, q.usage) for q in found.quotas}

    def accelerators(self, zone) -> dict | None:
        """{accelerator type: max cards per instance} offered in a zone; None when the zone does not exist."""
        def offered(**request):
            pager = self._client("AcceleratorTypesClient").list(**request)
            return {a.name: a.maximum_cards_per_instance for a in pager}
        return self._call(f"GPU types in {zone}", offered, project=self.project, zone=zone)

    def machine_type(self, zone, name):
        key = (zone, name)
        if key not in self._machine_types:
            self._machine_types[key] = self._call(f"machine type {name} in {zone}",
                                                  self._client("MachineTypesClient").get,
                                                  project=self.project, zone=zone, machine_type=name)
        return self._machine_types[key]
