"""The train role of an instance: `gpufleet run --config FILE` on a training fleet's instance.

From the resolved runtime config: the fleet (`train.group`, `train.nodes.min/max`,
`train.gpus_per_node`, `train.lifecycle_hook`), the region, and the artifacts bucket
(checkpoints under `artifacts.checkpoints`, the final model under `artifacts.models`). What to
train comes from an optional `workload` section with the same keys as the CLI flags
(`workload`, `data`, `label`, `k`, `hidden`, `epochs`, ...; see TrainConfig), until the spec has
its own fields for it.

On GCP (`"cloud": "gcp"`), `train.group` names the regional managed instance group, the config
carries `"gcp": {"project", "zones"}`, the instance's address comes from the GCE metadata
server (runtime.gcp.metadata), checkpoints and the model go to `gs://bucket/...`, and the
termination watch listens for the spot preemption notice.

On Kubernetes (`"cloud": "kubernetes"`: a pod of an Indexed Job), the address is POD_IP (the
downward API), the rendezvous is pod index 0 under the Job's headless Service (discovery's
Kubernetes branch), paths in the workload are on the pod's volumes, and there is no termination
watch: the kubelet's SIGTERM is the notice, and the ranks checkpoint on it.

The instance finds the rendezvous from its group (runtime.train.discovery), runs
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
from runtime.train.discovery import cloud_of


WORKDIR = os.environ.get("GPUFLEET_TRAIN_WORKDIR", "/var/lib/gpufleet/train")
METADATA_URL = os.environ.get("GPUFLEET_METADATA_URL", "http://169.254.169.254")


def my_address(metadata_url=None, cloud="aws"):
    """This instance's private address from its cloud's metadata server, else its hostname's
    (a Kubernetes pod: POD_IP, which the manifest fills from the downward API)."""
    if cloud == "kubernetes":
        return os.environ.get("POD_IP") or socket.gethostbyname(socket.gethostname())
    try:
        if cloud == "gcp":
            from runtime.gcp.metadata import GceMetadata
            ip = GceMetadata(metadata_url, timeout_s=1.0).get("instance/network-interfaces/0/ip")
        else:
            from runtime.imds import InstanceMetadata
            ip = InstanceMetadata(metadata_url or METADATA_URL, timeout_s=1.0).get("meta-data/local-ipv4")
        if ip:
            return ip
    except OSError:
        pass
    return socket.gethostbyname(socket.gethostname())


def _watch(config: dict, cloud: str) -> dict | None:
    """The termination watch's settings (runtime.train.termination) for the instance's cloud."""
    train = config["train"]
    if cloud == "kubernetes":
        return None  # no metadata server to poll: the kubelet's SIGTERM is the notice, and it checkpoints
    if cloud == "gcp":
        from runtime.gcp.metadata import metadata_url
        return {"cloud": "gcp", "metadata_url": metadata_url(), "group": train["group"], "region": config.get("region")}
    return {"metadata_url": METADATA_URL, "group": train["group"], "hook": train.get("lifecycle_hook"),
            "region": config.get("region")}


def train_config(config: dict) -> tuple[TrainConfig, dict]:
    train, artifacts = config["train"], config.get("artifacts", {})
    cloud = cloud_of(config)
    workload = dict(config.get("workload") or {})
    if not workload.get("data"):
        raise BadInput("workload.data: the training role needs a dataset location (a `workload` section "
                       "with data, label, workload...) in the runtime config")
    workload.setdefault("out", os.path.join(WORKDIR, "out"))
    checkpoints = store.bucket_url(artifacts, artifacts.get("checkpoints", "checkpoints/").strip("/"), cloud)
    if checkpoints:
        workload.setdefault("checkpoint_dir", checkpoints)
    workload.setdefault("nproc", max(1, int(train.get("gpus_per_node") or 1)))
    workload.setdefault("max_restarts", 3)
    workload.setdefault("termination_watch", _watch(config, cloud))
    cfg = TrainConfig.from_dict(workload)
    nodes = {"min": int(train["nodes"]["min"]), "max": int(train["nodes"]["max"])}
    return cfg, nodes


def upload_model(out, url, endpoint=None):
    """Upload the artifact in the local directory `out` to `url` (s3:// or gs://; runtime.store's endpoint rule)."""
    dest = store.parse(url)
    for name in ("weights.pt", "metrics.json", "model.json"):  # model.json last: a complete artifact
        path = os.path.join(out, name)
        if os.path.exists(path):
            store.put_file(path, dest.join(name), endpoint)


def run_from_config(config: dict, launch=None, discover=None, address=None) -> int:
    """Train as one node of the fleet; `discover(config, address, endpoint=...)` and `launch` are replaceable."""
    from runtime.train.cli import validate
    from runtime.train.discovery import discover_for
    from runtime.train.launcher import launch as _launch

    launch, discover = launch or _launch, discover or discover_for
    cfg, nodes = train_config(config)
    cfg = validate(cfg, nnodes=nodes["max"])
    cloud = cloud_of(config)
    me = address or my_address(cloud=cloud)
    rdzv = discover(config, me, endpoint=cfg.endpoint)
    code = launch(cfg, min_nodes=nodes["min"], max_nodes=nodes["max"], rdzv_endpoint=rdzv.endpoint, local=False,
                  run_id=f"{config.get('stack', 'gpufleet')}-train", local_addr=me, is_host=rdzv.is_host)
    artifacts = config.get("artifacts", {})
    models = store.bucket_url(artifacts, artifacts.get("models", "models/latest/"), cloud)
    if code == 0 and models and os.path.exists(os.path.join(cfg.out, "model.json")):
        upload_model(cfg.out, models, cfg.endpoint)
    return code
