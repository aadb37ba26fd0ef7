"""The train role of an instance: `gpufleet run --config FILE` on a training fleet's instance.

From the resolved runtime config: the fleet (`train.group`, `train.nodes.min/max`,
`train.gpus_per_node`, `train.lifecycle_hook`), the region, and the artifacts bucket
(checkpoints under `artifacts.checkpoints`, the final model under `artifacts.models`). What to
train comes from an optional `workload` section with the same keys as the CLI flags
(`workload`, `data`, `label`, `k`, `hidden`, `epochs`, ...; see TrainConfig), until the spec has
its own fields for it.

The instance finds the rendezvous from the Auto Scaling group (runtime.train.discovery), runs
its `gpus_per_node` ranks (1 on a CPU instance) under the elastic agent with nnodes min:max and
restarts, watches for termination notices, and, on the node that holds the finished model,
uploads the artifact to the bucket where the serving fleet looks for it.
"""

from __future__ import annotations

import os
import socket

from runtime import store
from runtime.errors import BadInput
from runtime.train.config import TrainConfig

WORKDIR = os.environ.get("GPUFLEET_TRAIN_WORKDIR", "/var/lib/gpufleet/train")
METADATA_URL = os.environ.get("GPUFLEET_METADATA_URL", "http://169.254.169.254")


def my_address(metadata_url=METADATA_URL):
    try:
        from runtime.imds import InstanceMetadata
        ip = InstanceMetadata(metadata_url, timeout_s=1.0).get("meta-data/local-ipv4")
        if ip:
            return ip
    except OSError:
        pass
    return socket.gethostbyname(socket.gethostname())


def train_config(config: dict) -> tuple[TrainConfig, dict]:
    train, artifacts = config["train"], config.get("artifacts", {})
    workload = dict(config.get("workload") or {})
    if not workload.get("data"):
        raise BadInput("workload.data: the training role needs a dataset location (a `workload` section "
                       "with data, label, workload...) in the runtime config")
    bucket = artifacts.get("bucket")
    workload.setdefault("out", os.path.join(WORKDIR, "out"))
    if bucket:
        workload.setdefault("checkpoint_dir", f"s3://{bucket}/{artifacts.get('checkpoints', 'checkpoints/').strip('/')}")
    workload.setdefault("nproc", max(1, int(train.get("gpus_per_node") or 1)))
    workload.setdefault("max_restarts", 3)
    workload.setdefault("termination_watch", {"metadata_url": METADATA_URL, "group": train["group"],
                                              "hook": train.get("lifecycle_hook"), "region": config.get("region")})
    cfg = TrainConfig.from_dict(workload)
    nodes = {"min": int(train["nodes"]["min"]), "max": int(train["nodes"]["max"])}
    return cfg, nodes


def upload_model(out, bucket, prefix, endpoint=None):
    """Upload the artifact in the local directory `out` to `s3://bucket/prefix` (runtime.store's endpoint rule)."""
    dest = store.parse(f"s3://{bucket}/{prefix}")
    for name in ("weights.pt", "metrics.json", "model.json"):  # model.json last: a complete artifact
        path = os.path.join(out, name)
        if os.path.exists(path):
            store.put_file(path, dest.join(name), endpoint)


def run_from_config(config: dict, launch=None, discover=None, address=None) -> int:
    from runtime.train.cli import validate
    from runtime.train.discovery import discover as _discover
    from runtime.train.launcher import launch as _launch

    launch, discover = launch or _launch, discover or _discover
    cfg, nodes = train_config(config)
    cfg = validate(cfg, nnodes=nodes["max"])
    me = address or my_address()
    rdzv = discover(config["train"]["group"], me, region=config.get("region"), endpoint=cfg.endpoint)
    code = launch(cfg, min_nodes=nodes["min"], max_nodes=nodes["max"], rdzv_endpoint=rdzv.endpoint, local=False,
                  run_id=f"{config.get('stack', 'gpufleet')}-train", local_addr=me, is_host=rdzv.is_host)
    bucket = config.get("artifacts", {}).get("bucket")
    if code == 0 and bucket and os.path.exists(os.path.join(cfg.out, "model.json")):
        upload_model(cfg.out, bucket, config["artifacts"].get("models", "models/latest/"), cfg.endpoint)
    return code
