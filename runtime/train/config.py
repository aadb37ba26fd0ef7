"""A training run's configuration: one dataclass, validated before any rank starts.

The CLI and an instance's runtime config build a `TrainConfig`; ranks receive it as JSON and
never re-read flags or files to find settings. Its rules live in `runtime.train.rules`, which
the stack spec's checks apply too (in the spec's field names).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from runtime.errors import BadInput
from runtime.train.rules import RULES, Problem, flag_name
from runtime.train.rules import PARALLEL, SWEEPABLE, WORKLOADS  # noqa: F401  (their home; re-exported)


@dataclass
class TrainConfig:
    workload: str = "logreg"
    data: str = ""
    out: str = ""
    label: str | None = None
    features: list | None = None
    k: int = 8
    hidden: list = field(default_factory=lambda: [256, 256])
    epochs: int | None = None          # default by workload: logreg 300 (full batch), mlp 10, kmeans 100 iterations
    lr: float | None = None            # default: logreg 1.0 (SGD, Nesterov 0.9), mlp 1e-3 (Adam)
    momentum: float = 0.9
    nesterov: bool = True
    optimizer: str | None = None       # sgd | adam; default by workload
    batch_size: int | None = None      # per rank; None = full batch (logreg, kmeans), mlp 256
    l2: float = 0.0                    # objective = mean loss + l2/2 * sum ||W||^2 (weights, not biases)
    test_fraction: float = 0.2
    seed: int = 0
    standardize: bool | None = None    # default: on for logreg/mlp, off for kmeans
    tol: float = 0.0                   # k-means: stop when the centroid shift^2 <= tol (0: labels unchanged)
    init_centroids: list | None = None # k-means: given initial centroids instead of k-means++
    grad_accum: int = 1                # micro-steps per optimizer step (DDP no_sync on all but the last)
    bucket_mb: float = 25.0            # DDP bucket_cap_mb
    comm_hook: str = "none"            # DDP gradient compression: none | fp16 (halves all-reduce bytes; not exact)
    dtype: str = "float32"
    nproc: int = 1
    max_restarts: int = 0
    checkpoint_dir: str | None = None  # local dir, s3:// or gs://bucket/prefix; default OUT/checkpoints
    checkpoint_every: int = 0          # steps; 0 = only at the end of each epoch and on SIGTERM
    keep: int = 3
    async_checkpoint: bool = True
    resume: bool = True
    json_logs: bool = False
    log_every_s: float = 2.0
    endpoint: str | None = None
    in_memory_limit_bytes: int = 2 << 30
    termination_watch: dict | None = None  # {"metadata_url", "group", "hook", "region", "poll_s", "cloud"}
    parallel: str = "data"             # data (DDP) | pipeline (mlp: one stage of layers per rank)
    microbatches: int = 4              # pipeline: microbatches per step
    sweep: dict | None = None          # {"param": "lr", "values": [...]}: one job per value, spread over ranks

    def resolved(self) -> "TrainConfig":
        c = TrainConfig(**asdict(self))
        defaults = {"logreg": (300, 1.0, "sgd"), "mlp": (10, 1e-3, "adam"), "kmeans": (100, 0.0, "none")}
        e, lr, opt = defaults.get(c.workload, (1, 1.0, "sgd"))
        c.epochs = e if c.epochs is None else c.epochs
        c.lr = lr if c.lr is None else c.lr
        c.optimizer = opt if c.optimizer is None else c.optimizer
        if c.standardize is None:
            c.standardize = c.workload != "kmeans"
        if c.workload == "mlp" and c.batch_size is None:
            c.batch_size = 256
        if c.checkpoint_dir is None and c.out:
            c.checkpoint_dir = c.out.rstrip("/") + "/checkpoints"
        return c

    def problems(self) -> list[str]:
        """Every rule this config breaks, one line each, in `gpufleet train`'s flag names."""
        return [p.render(flag_name) for p in self.rule_problems()]

    def rule_problems(self) -> list["Problem"]:
        """The rules of the rule table below that this config breaks, naming fields, not flags."""
        return [p for rule in RULES for p in rule(self)]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BadInput([f"workload.{k}: unknown training setting" for k in unknown])
        return cls(**d)
