"""What the GCP root's templates (templates/gcp/*.tf.j2) are rendered from: the resolved stack
turned into the values the modules in modules/gcp/ take.

Pure: no files, no Terraform. `infra.render.render` renders the templates with `gcp_context`
and writes `gcp_tfvars` as terraform.tfvars.json, as it does for AWS.

How spec values become GCP settings (each decided here, once):
- algorithm -> the backend services' `locality_lb_policy` (round_robin ROUND_ROBIN,
  least_connections LEAST_REQUEST); weighted_round_robin -> ROUND_ROBIN inside each pool and
  the URL map's weighted backend services across pools.
- autoscaling: cpu_utilization -> the autoscaler's CPU target (percent); requests_per_target
  (requests per minute per VM, as on AWS) -> load-balancer utilization 0.8 of a
  `max_rate_per_instance` of target / 60 / 0.8 requests per second, so each VM is held at the
  target rate; inflight_requests, gpu_utilization -> the per-instance custom metric
  custom.googleapis.com/gpufleet/<metric>. warmup_s -> the autoscaler's initialization period;
  scale_in_cooldown_s -> scale-in control's window (60-3600 s, GCP's bounds), in which at most
  a quarter of a group's maximum is removed. scale_out_cooldown_s has no GCP counterpart (as on
  AWS): the local autoscaler applies it.
- health check -> the backend services' check, and a more tolerant auto-healing check
  (3 x the unhealthy threshold, after max(warmup_s, 600) s: the NVIDIA driver installs on first boot).
- deregistration_delay_s -> connection draining. Tags -> labels, plus gpufleet-stack (and
  gpufleet-role on VMs).
"""

from __future__ import annotations

import math

from infra.bundle import wheel_name
from infra.render.runtime_config import BUNDLE_PREFIX
from infra.spec.gcp import GcpFleet
from infra.spec.resolve import ResolvedStack, gcp_metric_type

# hashicorp/google: every 6.x and 7.x release. The modules use only attributes both majors have.
GCP_PROVIDER_CONSTRAINT = ">= 6.0, < 8.0"
LOCALITY_LB_POLICIES = {
    "round_robin": "ROUND_ROBIN",
    "least_connections": "LEAST_REQUEST",
    "weighted_round_robin": "ROUND_ROBIN",
}
LB_UTILIZATION_TARGET = 0.8
AUTOHEALING_MIN_DELAY_S = 600
AUTOHEALING_THRESHOLD_FACTOR = 3
SCALE_IN_WINDOW_BOUNDS_S = (60, 3600)
PORT_NAME = "http"


def gcp_labels(r: ResolvedStack) -> dict[str, str]:
    """The stack's labels: the spec's tags (checked against GCP's label rules) and gpufleet-stack."""
    return {**r.spec.tags, "gpufleet-stack": r.name}


def _module_name(fleet: GcpFleet, group) -> str:
    if fleet.role == "train":
        return "training"
    suffix = "" if len(fleet.groups) == 1 else ("_spot" if group.spot else "_ondemand")
    return f"serving_{fleet.pool}{suffix}"


def _groups(fleet: GcpFleet) -> list[dict]:
    return [{"module": _module_name(fleet, g), "name": g.name, "spot": g.spot, "min": g.min, "desired": g.desired,
             "max": g.max} for g in fleet.groups]


def _image(fleet) -> dict:
    img = fleet.image
    return {"project": img.project, "family": img.family or "", "name": img.name or ""}


def _accelerator(fleet: GcpFleet):
    return {"type": fleet.accelerator, "count": fleet.gpus} if fleet.attached else None


def _scaling(r: ResolvedStack, fleet: GcpFleet, group: dict) -> dict | None:
    scaling = r.spec.serving.autoscaling
    if scaling is None or group["min"] == group["max"]:
        return None
    lo, hi = SCALE_IN_WINDOW_BOUNDS_S
    target = LB_UTILIZATION_TARGET if scaling.metric == "requests_per_target" else scaling.target
    return {
        "enabled": True,
        "metric": scaling.metric,
        "target": target,
        "metric_type": gcp_metric_type(scaling.metric) or "",
        "initialization_s": scaling.warmup_s,
        "scale_in_window_s": min(max(scaling.scale_in_cooldown_s, lo), hi),
        "scale_in_max_replicas": max(1, math.ceil(group["max"] / 4)),
    }


def gcp_context(r: ResolvedStack, modules: str) -> dict:
    """The values templates/gcp/*.tf.j2 are rendered with."""
    s, g = r.spec, r.gcp
    ctx: dict = {
        "stack": s,
        "r": r,
        "modules": modules,
        "provider_constraint": GCP_PROVIDER_CONSTRAINT,
        "labels": gcp_labels(r),
        "zones": list(g.zones),
        "bundle_files": {BUNDLE_PREFIX + name: "bundle/" + name for name in (wheel_name(), "requirements.txt")},
        "training": None,
        "pools": [],
        "serving_port": s.serving.port if s.serving else None,
    }
    if g.training is not None:
        t = s.training
        ctx["training"] = {
            "groups": _groups(g.training),
            "machine_type": g.training.machine_type,
            "accelerator": _accelerator(g.training),
            "image": _image(t),
            "disk_gb": t.disk_gb,
        }
    if s.serving is None:
        return ctx
    sv, lb = s.serving, s.serving.load_balancer
    hc = lb.health_check
    scaling = sv.autoscaling
    rate = scaling is not None and scaling.metric == "requests_per_target"
    for fleet, pool in zip(g.pools, r.pools):
        groups = _groups(fleet)
        for group in groups:
            group["scaling"] = _scaling(r, fleet, group)
        ctx["pools"].append({"name": pool.name, "weight": pool.weight, "machine_type": fleet.machine_type,
                             "accelerator": _accelerator(fleet), "groups": groups})
    ctx.update(
        image=_image(sv),
        disk_gb=sv.disk_gb,
        port_name=PORT_NAME,
        locality_lb_policy=LOCALITY_LB_POLICIES[lb.algorithm],
        weighted=lb.algorithm == "weighted_round_robin",
        health_check={"path": hc.path, "port": sv.port, "interval_s": hc.interval_s, "timeout_s": hc.timeout_s,
                      "healthy_threshold": hc.healthy_threshold, "unhealthy_threshold": hc.unhealthy_threshold},
        autohealing={"path": hc.path, "port": sv.port, "interval_s": hc.interval_s, "timeout_s": hc.timeout_s,
                     "healthy_threshold": hc.healthy_threshold,
                     "unhealthy_threshold": min(10, AUTOHEALING_THRESHOLD_FACTOR * hc.unhealthy_threshold),
                     "initial_delay_s": max(scaling.warmup_s if scaling else 0, AUTOHEALING_MIN_DELAY_S)},
        balancing=({"mode": "RATE", "max_utilization": 0,
                    "max_rate_per_instance": round(scaling.target / 60 / LB_UTILIZATION_TARGET, 4)}
                   if rate else {"mode": "UTILIZATION", "max_utilization": 0.8, "max_rate_per_instance": 0}),
        connection_draining_s=lb.deregistration_delay_s,
        listener_port=g.listener_port,
        domain=g.domain or "",
    )
    return ctx


def gcp_tfvars(r: ResolvedStack) -> dict:
    """terraform.tfvars.json: where the stack goes (project, region), not what it is."""
    return {"project": r.gcp.project, "region": r.spec.region, "force_destroy_artifacts": r.spec.artifacts.force_destroy}
