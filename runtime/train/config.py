"""A training run's configuration: one dataclass, validated before any rank starts.

The CLI, the stack spec (`gpufleet train SPEC`) and an instance's runtime config all build a
`TrainConfig`; ranks receive it as JSON and never re-read flags or files to find settings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from runtime.errors import BadInput

WORKLOADS = ("logreg", "kmeans", "mlp")
PARALLEL = ("data", "pipeline")
# what a sweep may vary, with its type; each value is one independent job (task parallel)
SWEEPABLE = {"k": int, "lr": float, "l2": float, "momentum": float, "epochs": int, "batch_size": int, "seed": int}


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
    checkpoint_dir: str | None = None  # local dir or s3://bucket/prefix; default OUT/checkpoints
    checkpoint_every: int = 0          # steps; 0 = only at the end of each epoch and on SIGTERM
    keep: int = 3
    async_checkpoint: bool = True
    resume: bool = True
    json_logs: bool = False
    log_every_s: float = 2.0
    endpoint: str | None = None
    in_memory_limit_bytes: int = 2 << 30
    termination_watch: dict | None = None  # {"metadata_url", "group", "hook", "region", "poll_s"}
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
        p = []
        if self.workload not in WORKLOADS:
            p.append(f"--workload: unknown workload {self.workload!r} (allowed: {', '.join(WORKLOADS)})")
        if not self.data:
            p.append("--data: required (a dataset from `gpufleet data partition`, or a CSV/Parquet file)")
        if not self.out:
            p.append("--out: required (the directory for metrics.json, the model artifact and checkpoints)")
        if self.workload in ("logreg", "mlp") and not self.label:
            p.append(f"--label: required for --workload {self.workload}")
        if self.k < 1:
            p.append(f"--k: must be at least 1 (got {self.k})")
        if self.epochs is not None and self.epochs < 1:
            p.append(f"--epochs: must be at least 1 (got {self.epochs})")
        if self.lr is not None and not self.lr > 0 and self.workload != "kmeans":
            p.append(f"--lr: must be positive (got {self.lr})")
        if self.batch_size is not None and self.batch_size < 1:
            p.append(f"--batch-size: must be positive (got {self.batch_size}); leave it out for full batch")
        if not 0 <= self.test_fraction < 1:
            p.append(f"--test-fraction: must be in [0, 1) (got {self.test_fraction})")
        if self.nproc < 1:
            p.append(f"--nproc: must be at least 1 (got {self.nproc})")
        if self.grad_accum < 1:
            p.append(f"--grad-accum: must be at least 1 (got {self.grad_accum})")
        if not self.bucket_mb > 0:
            p.append(f"--bucket-mb: must be positive (got {self.bucket_mb})")
        if self.keep < 1:
            p.append(f"--keep: must be at least 1 (got {self.keep})")
        if self.checkpoint_every < 0:
            p.append(f"--checkpoint-every: must be 0 or more steps (got {self.checkpoint_every})")
        if any(h < 1 for h in self.hidden or []):
            p.append(f"--hidden: layer widths must be positive (got {','.join(map(str, self.hidden))})")
        if self.optimizer not in (None, "sgd", "adam", "none"):
            p.append(f"--optimizer: unknown (got {self.optimizer!r}; allowed: sgd, adam)")
        if self.comm_hook not in ("none", "fp16"):
            p.append(f"--comm-hook: unknown (got {self.comm_hook!r}; allowed: none, fp16)")
        if self.dtype not in ("float32", "float64"):
            p.append(f"--dtype: must be float32 or float64 (got {self.dtype!r})")
        return p + self._parallel_problems()

    def _parallel_problems(self) -> list[str]:
        p = []
        if self.parallel not in PARALLEL:
            return [f"--parallel: unknown (got {self.parallel!r}; allowed: {', '.join(PARALLEL)})"]
        if self.parallel == "pipeline":
            layers = len(self.hidden or []) + 1
            if self.workload != "mlp":
                p.append(f"--parallel pipeline: splits an MLP into stages; use --workload mlp (got {self.workload})")
            elif self.nproc > layers:
                p.append(f"--nproc: a pipeline of {self.nproc} stages needs at least {self.nproc} layers "
                         f"(--hidden {','.join(map(str, self.hidden))} gives {layers})")
            if self.microbatches < 1:
                p.append(f"--microbatches: must be at least 1 (got {self.microbatches})")
            if self.checkpoint_every or self.max_restarts:
                p.append("--parallel pipeline: keeps no checkpoints, so --checkpoint-every and --max-restarts "
                         "must be left out")
            if self.sweep:
                p.append("--sweep: runs each job on one rank; it cannot be combined with --parallel pipeline")
        if self.sweep:
            param, values = self.sweep.get("param"), self.sweep.get("values") or []
            if param not in SWEEPABLE:
                p.append(f"--sweep: cannot vary {param!r} (allowed: {', '.join(SWEEPABLE)})")
            elif not values:
                p.append(f"--sweep: {param}= needs at least one value")
            elif param == "k" and self.workload != "kmeans":
                p.append(f"--sweep k=...: k is a k-means setting (got --workload {self.workload})")
            elif param in ("lr", "momentum") and self.workload == "kmeans":
                p.append(f"--sweep {param}=...: k-means has no {param}")
            else:
                for v in values:
                    p += [f"--sweep {param}={v}: {msg}" for msg in TrainConfig(**{**asdict(self), "sweep": None,
                                                                                  param: v}).problems()]
            if len(set(values)) != len(values):
                p.append(f"--sweep: {param} values repeat ({','.join(map(str, values))})")
        return p

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BadInput([f"workload.{k}: unknown training setting" for k in unknown])
        return cls(**d)
