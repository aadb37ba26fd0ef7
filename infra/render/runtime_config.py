"""The resolved runtime config each instance role reads (JSON), built from a resolved stack.

This is the contract between infra and runtime: the runtime never reads the YAML spec.
Instances get it inside user_data (base64). The local target runs no instance: it writes the
fleet manager its own, narrower config (runtime.fleet.config.FleetConfig).

One shape for both clouds; what differs on GCP:
- `"cloud": "gcp"`, and `"gcp": {"project": ..., "zones": [...]}` (the zones the groups span);
- `artifacts.scheme` is "gs" (AWS: "s3"); the bucket still comes from `bucket_env`, which the
  startup script exports from the instance metadata attribute `gpufleet-bucket`;
- `train.group` is the training regional managed instance group; `train.lifecycle_hook` and
  `agent.lifecycle_hook_suffix` are null (GCP has no lifecycle hooks: VMs learn of preemption
  and maintenance from the metadata server);
- `scaling.pools` maps each pool to the list of its groups' names (one, or an on-demand and a
  spot group); on AWS to its Auto Scaling group's name;
- `agent.metric_type` is the Cloud Monitoring custom metric the agent writes per instance,
  `custom.googleapis.com/gpufleet/inflight_requests`; `scaling.metric_name` is the custom metric
  the autoscaler follows (null for CPU or load-balancer utilization).
"""

from __future__ import annotations

from infra.bundle import torch_requirement, wheel_name
from infra.spec.checks import INT_SWEEPS
from infra.spec.resolve import CUSTOM_METRIC_NAMES, METRIC_NAMESPACE, ResolvedStack, gcp_metric_type

CONFIG_FORMAT = 1
BUNDLE_PREFIX = "bundle/"
# How long a terminating training instance may take to checkpoint before the group moves on.
TRAINING_HOOK_TIMEOUT_S = 600
ARTIFACT_SCHEMES = {"aws": "s3", "gcp": "gs"}
WHEELHOUSE_PREFIX = BUNDLE_PREFIX + "wheelhouse/"
WHEELHOUSE_MANIFEST = "requirements.hashes.txt"  # infra.wheelhouse.MANIFEST
# The launch lifecycle hook of a warm-pooled group is "<group><suffix>"; its instances complete it
# once /readyz answers (runtime/bootstrap.py). Long enough for a cold boot's install and model load.
LAUNCH_HOOK_SUFFIX = "-launch"
LAUNCH_HOOK_TIMEOUT_S = 1200


def _bundle(r: ResolvedStack, role: str, wheelhouse_archs: frozenset[str]) -> dict:
    """Where the role's instances get the runtime, and how they install it (runtime/bootstrap.py).

    `wheelhouse`: null (install from the package index) or the bucket prefix of the role's
    architecture's wheels and their hashed manifest, when `gpufleet bundle` built one.
    `torch.policy` use_image_torch: build the venv on `torch.image_python` and check its torch
    against `torch.requirement`; wheelhouse: torch comes with the rest.
    """
    rt = r.runtime
    arch = rt.archs[role]
    house = None
    if arch in wheelhouse_archs:
        prefix = f"{WHEELHOUSE_PREFIX}{arch}/"
        house = {"arch": arch, "prefix": prefix, "manifest": prefix + WHEELHOUSE_MANIFEST}
    return {
        "index_url": r.spec.bundle.index_url,
        "wheel": BUNDLE_PREFIX + wheel_name(),
        "requirements": BUNDLE_PREFIX + "requirements.txt",
        "wheelhouse": house,
        "python": rt.python_version,
        "torch": {"policy": rt.torch, "requirement": torch_requirement(), "image_python": rt.image_python},
    }


def runtime_config(r: ResolvedStack, role: str, wheelhouse_archs: frozenset[str] = frozenset()) -> dict:
    """The config for `role` ("train" or "serve"); the bucket comes from the instance's environment.

    `wheelhouse_archs`: the architectures a wheelhouse was built for (infra.wheelhouse).
    """
    s = r.spec
    gcp = r.gcp
    config: dict = {
        "format": CONFIG_FORMAT,
        "stack": s.name,
        "role": role,
        "cloud": s.cloud,
        "region": s.region,
        "bundle": _bundle(r, role, wheelhouse_archs),
        "artifacts": {"bucket_env": "GPUFLEET_BUCKET", "checkpoints": "checkpoints/", "models": "models/latest/",
                      "scheme": ARTIFACT_SCHEMES[s.cloud]},
    }
    if gcp is not None:
        config["gcp"] = {"project": gcp.project, "zones": list(gcp.zones)}
    if role == "train":
        t = s.training
        config["train"] = {
            "group": gcp.training.groups[0].name if gcp else r.training_group,
            "nodes": {"min": t.nodes.min, "max": t.nodes.max},
            "gpus_per_node": r.training_gpus_per_node,
            "lifecycle_hook": None if gcp else f"{r.training_group}-drain",
            "checkpoint_timeout_s": TRAINING_HOOK_TIMEOUT_S,
        }
        if t.workload is not None:
            # Keys are runtime.train.config.TrainConfig's field names.
            w = t.workload.model_dump(exclude_none=True)
            if "sweep" in w and w["sweep"]["param"] in INT_SWEEPS:
                w["sweep"]["values"] = [int(v) for v in w["sweep"]["values"]]
            config["workload"] = {"workload": w.pop("type"), **w}
    else:
        sv = s.serving
        scaling = sv.autoscaling
        # Field names are runtime.serve.config.ServeConfig's and runtime.agent.agent.AgentConfig's.
        config["serve"] = {
            "model": sv.model_uri or "",  # empty: the latest model under artifacts.models in the bucket
            "host": "0.0.0.0",  # on an instance the load balancer reaches it through the security group
            "port": sv.port,
            "max_batch_size": sv.max_batch_size,
            "max_delay_ms": sv.max_delay_ms,
            "drain_timeout_s": sv.drain_timeout_s,
            "deregistration_window_s": sv.load_balancer.deregistration_delay_s,
        }
        config["agent"] = {
            "namespace": METRIC_NAMESPACE,
            "region": s.region,
            "publish_interval_s": 60.0,
            "lifecycle_hook_suffix": None if gcp else "-drain",
            "drain_timeout_s": float(r.serving_drain_s),
        }
        # aws: the bootstrap holds a warm-pooled instance out of service (runtime/bootstrap.py)
        config["warm_pool"] = None if sv.warm_pool is None else {
            "state": sv.warm_pool.state, "launch_hook_suffix": LAUNCH_HOOK_SUFFIX}
        config["scaling"] = {
            "metric": scaling.metric if scaling else None,
            "metric_name": CUSTOM_METRIC_NAMES.get(scaling.metric) if scaling else None,
            "target": scaling.target if scaling else None,
            "pools": {p.name: p.group_name for p in r.pools},
        }
        if gcp is not None:
            config["agent"]["metric_type"] = gcp_metric_type("inflight_requests")
            config["scaling"]["metric_name"] = gcp_metric_type(scaling.metric) if scaling else None
            config["scaling"]["pools"] = {f.pool: [g.name for g in f.groups] for f in gcp.pools}
    return config
