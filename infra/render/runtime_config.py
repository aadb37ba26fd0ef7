"""The resolved runtime config each instance role reads (JSON), built from a resolved stack.

This is the contract between infra and runtime: the runtime never reads the YAML spec.
Instances get it inside user_data (base64). The local target runs no instance: it writes the
fleet manager its own, narrower config (runtime.fleet.config.FleetConfig).
"""

from __future__ import annotations

from infra.bundle import wheel_name
from infra.spec.checks import INT_SWEEPS
from infra.spec.resolve import CUSTOM_METRIC_NAMES, METRIC_NAMESPACE, ResolvedStack

CONFIG_FORMAT = 1
BUNDLE_PREFIX = "bundle/"
# How long a terminating training instance may take to checkpoint before the group moves on.
TRAINING_HOOK_TIMEOUT_S = 600


def runtime_config(r: ResolvedStack, role: str) -> dict:
    """The config for `role` ("train" or "serve"); the bucket comes from the instance's environment."""
    s = r.spec
    config: dict = {
        "format": CONFIG_FORMAT,
        "stack": s.name,
        "role": role,
        "cloud": s.cloud,
        "region": s.region,
        "bundle": {
            "index_url": s.bundle.index_url,
            "wheel": BUNDLE_PREFIX + wheel_name(),
            "requirements": BUNDLE_PREFIX + "requirements.txt",
        },
        "artifacts": {"bucket_env": "GPUFLEET_BUCKET", "checkpoints": "checkpoints/", "models": "models/latest/"},
    }
    if role == "train":
        t = s.training
        config["train"] = {
            "group": r.training_group,
            "nodes": {"min": t.nodes.min, "max": t.nodes.max},
            "gpus_per_node": r.training_gpus_per_node,
            "lifecycle_hook": f"{r.training_group}-drain",
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
            "lifecycle_hook_suffix": "-drain",
            "drain_timeout_s": float(r.serving_drain_s),
        }
        config["scaling"] = {
            "metric": scaling.metric if scaling else None,
            "metric_name": CUSTOM_METRIC_NAMES.get(scaling.metric) if scaling else None,
            "target": scaling.target if scaling else None,
            "pools": {p.name: p.group_name for p in r.pools},
        }
    return config
