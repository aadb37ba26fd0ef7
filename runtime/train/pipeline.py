"""Model parallelism: an MLP split into pipeline stages, one per rank, with explicit send/recv.

`split_stages(mlp, n)` cuts `MLP.layers` at Linear boundaries into `n` contiguous stages (the
standardization goes with stage 0). `PipelineStage.step(x, y)` runs one GPipe step: the batch
is cut into microbatches, every microbatch flows forward through the stages (activations sent
to the next rank), then backward in reverse order (input gradients sent to the previous rank).
The loss is `sum(per-sample loss) / batch size`, accumulated on the last stage over the
microbatches, so it equals the single-process mean loss; every rank gets it back by broadcast.

All ranks must know the batch's row count (to size the messages): only stage 0 needs `x` and
only the last stage needs `y`.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def split_stages(mlp, n):
    """The `n` stage modules of an MLP (runtime.model.MLP), in order."""
    layers = list(mlp.layers)
    lin = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    if n > len(lin):
        raise ValueError(f"an MLP with {len(lin)} linear layers cannot be split into {n} stages")
    per = math.ceil(len(lin) / n)
    cuts = [lin[min(s * per, len(lin) - 1)] if s * per < len(lin) else len(layers) for s in range(n)] + [len(layers)]
    cuts[0] = 0
    stages = []
    for s in range(n):
        mods = ([mlp.standardize] if s == 0 else []) + layers[cuts[s]:cuts[s + 1]]
        stages.append(nn.Sequential(*mods))
    return stages


def _in_width(stage):
    for m in stage.modules():
        if isinstance(m, nn.Linear):
            return m.in_features
    raise ValueError("a stage without a linear layer")


class PipelineStage:
    def __init__(self, module, rank, world, in_width, microbatches=4, dtype=torch.float32):
        self.module, self.rank, self.world = module, rank, world
        self.in_width, self.microbatches, self.dtype = in_width, microbatches, dtype
        self.first, self.last = rank == 0, rank == world - 1

    def step(self, n_rows, x=None, y=None):
        """One forward+backward over a batch of `n_rows`; returns the batch's mean loss (all ranks)."""
        sizes = [len(c) for c in torch.arange(n_rows).tensor_split(self.microbatches)]
        xs = x.tensor_split(self.microbatches) if self.first else None
        ys = y.tensor_split(self.microbatches) if self.last else None
        inputs, outputs = [], []
        loss_total = torch.zeros((), dtype=torch.float64)
        for m, rows in enumerate(sizes):
            if self.first:
                inp = xs[m]
            else:
                inp = torch.empty(rows, self.in_width, dtype=self.dtype)
                dist.recv(inp, self.rank - 1)
                inp.requires_grad_(True)
            out = self.module(inp)
            if self.last:
                out = F.cross_entropy(out, ys[m], reduction="sum") / n_rows
                loss_total += out.detach().double()
            else:
                dist.send(out.detach().contiguous(), self.rank + 1)
            inputs.append(inp)
            outputs.append(out)
        for m in reversed(range(len(sizes))):
            if self.last:
                outputs[m].backward()
            else:
                grad = torch.empty_like(outputs[m])
                dist.recv(grad, self.rank + 1)
                outputs[m].backward(grad)
            if not self.first:
                dist.send(inputs[m].grad.contiguous(), self.rank - 1)
        dist.broadcast(loss_total, self.world - 1)
        return float(loss_total)


def build_stage(mlp, rank, world, microbatches=4):
    stages = split_stages(mlp, world)
    return PipelineStage(stages[rank], rank, world, _in_width(stages[rank]), microbatches,
                         dtype=next(mlp.parameters()).dtype)


def train_pipeline(mlp, x, y, steps, lr, rank, world, microbatches=4):
    """Train `mlp` (the same initial weights on every rank) with SGD for `steps` full-batch
    steps, pipelined over `world` ranks; returns the loss of each step."""
    stage = build_stage(mlp, rank, world, microbatches)
    opt = torch.optim.SGD(stage.module.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        losses.append(stage.step(x.shape[0], x if rank == 0 else None, y if rank == world - 1 else None))
        opt.step()
    return losses


def train_single(mlp, x, y, steps, lr):
    """The single-process reference of `train_pipeline`."""
    opt = torch.optim.SGD(mlp.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(mlp(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
