"""The rules of a training workload: its names, allowed values and cross-field constraints.

One home for what `gpufleet train` (flags), an instance's runtime config and the stack spec's
`training.workload` (infra.spec.checks) all accept. A rule is a function of a `TrainConfig` returning `Problem`s that name *fields*,
not flags; each caller renders them in its user's terms:

    Problem("lr", "must be positive (got -1)").render(flag_name)   -> "--lr: must be positive (got -1)"
    the spec's checks                                              -> "training.workload.lr: must be positive ..."

A message may name another field as `{field}` (e.g. "use {workload} mlp"); `render` fills it
in with the same naming function. This module imports nothing heavy: the spec's validation
runs it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

WORKLOADS = ("logreg", "kmeans", "mlp")
PARALLEL = ("data", "pipeline")
# what a sweep may vary, with its type; each value is one independent job (task parallel)
SWEEPABLE = {"k": int, "lr": float, "l2": float, "momentum": float, "epochs": int, "batch_size": int, "seed": int}
# flags whose name is not the field's with dashes
FLAGS = {"standardize": "--no-standardize", "async_checkpoint": "--sync-checkpoint", "resume": "--no-resume",
         "log_every_s": "--log-every", "in_memory_limit_bytes": "--in-memory-limit"}


def flag_name(field: str) -> str:
    """The `gpufleet train` flag that sets `field`."""
    return FLAGS.get(field) or "--" + field.replace("_", "-")


class _Names(dict):
    def __init__(self, name):
        super().__init__()
        self.name = name

    def __missing__(self, key):
        return self.name(key)


@dataclass(frozen=True)
class Problem:
    """A broken rule: the field it is about, and what is wrong in that field's terms.

    `sweep_value` is set when the problem is one sweep value's (`field` is then the swept
    setting): the flag form reads "--sweep lr=-1.0: --lr: must be positive (got -1.0)".
    """
    field: str
    message: str
    sweep_value: object = None

    def text(self, name) -> str:
        return self.message.format_map(_Names(name))

    def render(self, name) -> str:
        if self.sweep_value is not None:
            return f"--sweep {self.field}={self.sweep_value}: {name(self.field)}: {self.text(name)}"
        return f"{name(self.field)}: {self.text(name)}"


def _required(c):
    if c.workload not in WORKLOADS:
        yield Problem("workload", f"unknown workload {c.workload!r} (allowed: {', '.join(WORKLOADS)})")
    if not c.data:
        yield Problem("data", "required (a dataset from `gpufleet data partition`, or a CSV/Parquet file)")
    if not c.out:
        yield Problem("out", "required (the directory for metrics.json, the model artifact and checkpoints)")
    if c.workload in ("logreg", "mlp") and not c.label:
        yield Problem("label", f"required for {{workload}} {c.workload}")


def _ranges(c):
    if c.k < 1:
        yield Problem("k", f"must be at least 1 (got {c.k})")
    if c.epochs is not None and c.epochs < 1:
        yield Problem("epochs", f"must be at least 1 (got {c.epochs})")
    if c.lr is not None and not c.lr > 0 and c.workload != "kmeans":
        yield Problem("lr", f"must be positive (got {c.lr})")
    if c.l2 is not None and c.l2 < 0:
        yield Problem("l2", f"must be 0 or more (got {c.l2})")
    if c.batch_size is not None and c.batch_size < 1:
        yield Problem("batch_size", f"must be positive (got {c.batch_size}); leave it out for full batch")
    if c.seed < 0:
        yield Problem("seed", f"must be 0 or more (got {c.seed})")
    if not 0 <= c.test_fraction < 1:
        yield Problem("test_fraction", f"must be in [0, 1) (got {c.test_fraction})")
    if c.nproc < 1:
        yield Problem("nproc", f"must be at least 1 (got {c.nproc})")
    if c.grad_accum < 1:
        yield Problem("grad_accum", f"must be at least 1 (got {c.grad_accum})")
    if not c.bucket_mb > 0:
        yield Problem("bucket_mb", f"must be positive (got {c.bucket_mb})")
    if c.keep < 1:
        yield Problem("keep", f"must be at least 1 (got {c.keep})")
    if c.checkpoint_every < 0:
        yield Problem("checkpoint_every", f"must be 0 or more steps (got {c.checkpoint_every})")
    if any(h < 1 for h in c.hidden or []):
        yield Problem("hidden", f"layer widths must be positive (got {','.join(map(str, c.hidden))})")
    if c.optimizer not in (None, "sgd", "adam", "none"):
        yield Problem("optimizer", f"unknown (got {c.optimizer!r}; allowed: sgd, adam)")
    if c.comm_hook not in ("none", "fp16"):
        yield Problem("comm_hook", f"unknown (got {c.comm_hook!r}; allowed: none, fp16)")
    if c.dtype not in ("float32", "float64"):
        yield Problem("dtype", f"must be float32 or float64 (got {c.dtype!r})")


def _pipeline(c):
    if c.parallel not in PARALLEL:
        yield Problem("parallel", f"unknown (got {c.parallel!r}; allowed: {', '.join(PARALLEL)})")
        return
    if c.parallel != "pipeline":
        return
    layers = len(c.hidden or []) + 1
    if c.workload != "mlp":
        yield Problem("parallel", f"pipeline splits an MLP into stages; use {{workload}} mlp (got {c.workload})")
    elif c.nproc > layers:
        yield Problem("nproc", f"a pipeline of {c.nproc} stages needs at least {c.nproc} layers "
                               f"({{hidden}} {','.join(map(str, c.hidden))} gives {layers})")
    if c.microbatches < 1:
        yield Problem("microbatches", f"must be at least 1 (got {c.microbatches})")
    if c.checkpoint_every or c.max_restarts:
        yield Problem("parallel", "pipeline keeps no checkpoints, so {checkpoint_every} and {max_restarts} "
                                  "must be left out")
    if c.sweep:
        yield Problem("sweep", "runs each job on one rank; it cannot be combined with {parallel} pipeline")


def _sweep(c):
    if not c.sweep:
        return
    param, values = c.sweep.get("param"), list(c.sweep.get("values") or [])
    if param not in SWEEPABLE:
        yield Problem("sweep", f"cannot vary {param!r} (allowed: {', '.join(SWEEPABLE)})")
        return
    if not values:
        yield Problem("sweep", f"{param}= needs at least one value")
    elif param == "k" and c.workload != "kmeans":
        yield Problem("sweep", f"k is a k-means setting (got {{workload}} {c.workload})")
    elif param in ("lr", "momentum") and c.workload == "kmeans":
        yield Problem("sweep", f"k-means has no {param}")
    elif SWEEPABLE[param] is int and any(v != int(v) or v < (0 if param == "seed" else 1) for v in values):
        least = 0 if param == "seed" else 1
        yield Problem("sweep", f"{param} takes whole numbers >= {least} (got {values})")
    else:
        for v in values:  # each value on its own: the rules of the setting it sets
            one = replace(c, sweep=None, **{param: v})
            yield from (Problem(p.field, p.message, sweep_value=v) for p in _ranges(one) if p.field == param)
    if len(set(values)) != len(values):
        yield Problem("sweep", f"{param} values repeat (got {','.join(map(str, values))})")


RULES = (_required, _ranges, _pipeline, _sweep)
