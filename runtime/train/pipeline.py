"""Model parallelism: an MLP split into pipeline stages, one per rank, with explicit send/recv.

`split_stages(mlp, n)` cuts `MLP.layers` at Linear boundaries into `n` contiguous stages (the
standardization goes with stage 0). `PipelineStage.step(x, y)` runs one GPipe step: the batch
is cut into microbatches, every microbatch flows forward through the stages (activations sent
to the next rank), then backward in reverse order (input gradients sent to the previous rank).
The loss is `sum(per-sample loss) / batch size`, accumulated on the last stage over the
microbatches, so it equals the single-process mean loss; every rank gets it back by broadcast.

All ranks must know the batch's row count (to size the messages): only stage 0 needs `x` and
only the last stage needs `y`.

`run_pipeline` is `gpufleet train --workload mlp --parallel pipeline`: every rank reads the
training rows and walks the same shuffled minibatches (one seed), stage 0 feeding inputs and
the last stage the labels; at the end rank 0 gathers the stages' parameters into one MLP and
writes the same artifact and metrics.json as a data-parallel run. A pipeline run keeps no
checkpoints (each rank holds a different part of the model, which the single-writer
checkpoint does not cover), so a stop request ends it without saving.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from runtime.errors import EXIT_STOPPED, BadInput
from runtime.train.classifier import ClassifierResult, classifier_module, finish_classifier, optimizer
from runtime.train.data import load_run_data


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
        self.device = next(module.parameters()).device  # NCCL sends GPU tensors, gloo CPU ones

    def step(self, n_rows, x=None, y=None):
        """One forward+backward over a batch of `n_rows`; returns the batch's mean loss (all ranks)."""
        sizes = [len(c) for c in torch.arange(n_rows).tensor_split(self.microbatches)]
        xs = x.tensor_split(self.microbatches) if self.first else None
        ys = y.tensor_split(self.microbatches) if self.last else None
        inputs, outputs = [], []
        loss_total = torch.zeros((), dtype=torch.float64, device=self.device)
        for m, rows in enumerate(sizes):
            if self.first:
                inp = xs[m]
            else:
                inp = torch.empty(rows, self.in_width, dtype=self.dtype, device=self.device)
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
        if self.world > 1:
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


def _owned(mlp, stage):
    """The entries of mlp.state_dict() that `stage` trains."""
    mine = {id(p) for p in stage.module.parameters()}
    return {name: p.detach().cpu() for name, p in mlp.named_parameters() if id(p) in mine}


def run_pipeline(cfg, ctx, stopper, progress) -> int:
    """Train cfg's MLP with one stage per rank (see the module docstring); 0, or EXIT_STOPPED if stopped."""
    data = load_run_data(cfg, need_label=True)
    table, test = data.table, data.test
    if table is None:
        raise BadInput(f"--parallel pipeline: every rank holds the training rows in memory; {cfg.data} is larger "
                       f"than the in-memory limit ({cfg.in_memory_limit_bytes} bytes)")
    # the same initial weights on every rank (seeded): each keeps and trains its own stage
    mlp = classifier_module(cfg, ctx, data)
    stage = build_stage(mlp, ctx.rank, ctx.world_size, cfg.microbatches)
    params = list(stage.module.parameters())
    weights = [p for p in params if p.dim() > 1]
    opt = optimizer(cfg, params)
    x = torch.from_numpy(np.ascontiguousarray(table.x[~test])).to(ctx.device)
    y = torch.from_numpy(np.ascontiguousarray(table.y[~test])).to(ctx.device)
    n_train, batch = x.shape[0], cfg.batch_size or x.shape[0]
    progress.total_steps = -(-n_train // batch) * cfg.epochs
    gen = torch.Generator().manual_seed(cfg.seed)
    step, loss_curve, t0 = 0, [], time.perf_counter()
    for _ in range(cfg.epochs):
        perm, epoch_loss, epoch_steps = torch.randperm(n_train, generator=gen), 0.0, 0
        for lo in range(0, n_train, batch):
            idx = perm[lo:lo + batch].to(ctx.device)
            opt.zero_grad()
            loss = stage.step(len(idx), x[idx] if stage.first else None, y[idx] if stage.last else None)
            if cfg.l2:  # objective + l2/2 ||W||^2: each stage adds its own weights' term
                penalty = torch.zeros((), dtype=torch.float64, device=ctx.device)
                for p in weights:
                    p.grad.add_(p.detach(), alpha=cfg.l2)
                    penalty += 0.5 * cfg.l2 * (p.detach().double() ** 2).sum()
                if ctx.distributed:
                    dist.all_reduce(penalty)
                loss += float(penalty)
            opt.step()
            step += 1
            epoch_loss, epoch_steps = epoch_loss + loss, epoch_steps + 1
            progress.step(step, loss, len(idx))
            if stopper.should_stop(step):
                progress.event("stopped", step=step, reason=stopper.reason or "peer",
                               note="a pipeline run keeps no checkpoint; start it again from the beginning")
                return EXIT_STOPPED
        loss_curve.append(epoch_loss / epoch_steps)
    t_train = time.perf_counter() - t0
    if ctx.distributed:  # rank 0 collects the other stages' trained parameters into its MLP
        parts = [None] * ctx.world_size if ctx.is_main else None
        dist.gather_object(_owned(mlp, stage), parts, dst=0)
        if ctx.is_main:
            for part in parts:
                mlp.load_state_dict(part, strict=False)
    if ctx.is_main:
        finish_classifier(cfg, ctx, mlp, data, ClassifierResult(
            loss_curve, step, n_train * cfg.epochs, t_train,
            extra={"parallel": "pipeline", "stages": ctx.world_size, "microbatches": cfg.microbatches}))
    return 0


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
