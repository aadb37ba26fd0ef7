"""The classifier runner: logistic regression and the MLP, data parallel over the ranks.

`run_classifier` is one rank's whole run: resume from the latest valid checkpoint if there is
one, walk the epochs with the sharded sampler (DDP, gradient accumulation with `no_sync`),
checkpoint every K steps, stop at the step all ranks agree on when asked (checkpoint first),
and on rank 0 evaluate and write the artifact and metrics.json (`finish_classifier`).

Gradient scale: each rank's loss is `W * sum(per-sample loss) / global_count`; DDP's all-reduce
averages over W, so the update is the gradient of the global mean over the step's training
samples, whatever the shares (see runtime.train.data).

`classifier_module` and `optimizer` are also the pipeline runner's, so both build the same
model from the same seed.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from runtime.data import Dataset, ShardedSampler
from runtime.errors import EXIT_STOPPED, BadInput
from runtime.model import MLP, LogisticRegression
from runtime.train import dist as tdist
from runtime.train.data import RunData, Steps, block_size_for, load_run_data, load_table, standardization
from runtime.train.lifecycle import events, maybe_fault, restart_count, rng_state, set_rng, write_outputs


@dataclass
class ClassifierResult:
    """What a finished run measured, for metrics.json (the model itself is passed beside it)."""
    loss_curve: list
    steps: int
    samples_done: int
    train_time_s: float
    resumed_from: int | None = None
    checkpoint_stalls: list = field(default_factory=list)
    step_log: list = field(default_factory=list)  # (seconds, a checkpoint was being written) per step
    extra: dict = field(default_factory=dict)     # runner-specific figures (the pipeline's stages)


def _streamed_standardization(cfg, ctx, data: RunData):
    """The training rows' mean/std from one pass over this rank's shard (its own rows only),
    all-reduced: every training row is in exactly one rank's share of an epoch."""
    feats = data.features
    sampler = ShardedSampler(Dataset(cfg.data, cfg.endpoint, manifest=data.manifest), seed=cfg.seed, rank=ctx.rank,
                             world_size=ctx.world_size, batch_size=65536, block_size=block_size_for(data.num_samples))
    steps = Steps(cfg.data, None, data.test, sampler, None, feats, data.dtype)
    acc = torch.zeros(2 * len(feats) + 1, dtype=torch.float64)
    for x, _, _ in steps:
        xd = torch.from_numpy(x).double()
        acc[0] += xd.shape[0]
        acc[1:1 + len(feats)] += xd.sum(0)
        acc[1 + len(feats):] += (xd * xd).sum(0)
    acc = tdist.all_reduce_sum(ctx, acc.to(ctx.device)).cpu()
    cnt = max(float(acc[0]), 1.0)
    mean = acc[1:1 + len(feats)] / cnt
    std = (acc[1 + len(feats):] / cnt - mean * mean).clamp_min(0).sqrt()
    std[std == 0] = 1.0
    return mean, std


def classifier_module(cfg, ctx, data: RunData):
    """cfg's logreg or MLP with its initial weights (seeded: the same on every rank) and the
    training rows' standardization, on the rank's device in the run's dtype."""
    torch.manual_seed(cfg.seed)
    n_in, n_out = len(data.features), len(data.classes)
    module = LogisticRegression(n_in, n_out) if cfg.workload == "logreg" else MLP(n_in, n_out, tuple(cfg.hidden))
    if cfg.standardize:
        if data.table is None:
            mean, std = _streamed_standardization(cfg, ctx, data)
        else:
            mean, std = (torch.from_numpy(v) for v in standardization(data.table, data.test))
        module.standardize.mean.copy_(mean)
        module.standardize.std.copy_(std)
    return module.to(device=ctx.device, dtype=torch.float64 if data.dtype == np.float64 else torch.float32)


def optimizer(cfg, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def _ddp(cfg, ctx, module):
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = DDP(module, bucket_cap_mb=cfg.bucket_mb, gradient_as_bucket_view=True,
                device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    if cfg.comm_hook != "none":
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
        model.register_comm_hook(None, default_hooks.fp16_compress_hook)
    return model


def run_classifier(cfg, ctx, stopper, ckpt, progress) -> int:
    """One rank's logreg or MLP run (see the module docstring); 0, or EXIT_STOPPED if stopped."""
    data = load_run_data(cfg, need_label=True)
    n = data.num_samples
    module = classifier_module(cfg, ctx, data)
    model = _ddp(cfg, ctx, module) if ctx.distributed else module
    opt = optimizer(cfg, module.parameters())
    weights = [p for name, p in module.named_parameters() if name.endswith("weight")]
    batch = cfg.batch_size or max(1, -(-n // ctx.world_size))
    source = Dataset(cfg.data, cfg.endpoint, manifest=data.manifest) if data.table is None else data.manifest
    state = ckpt.load_latest() if cfg.resume else None
    step, loss_curve, resumed_from, cursor = 0, [], None, None
    epoch_loss, epoch_count = 0.0, 0
    if state is not None:
        if state.get("workload") != cfg.workload:
            raise BadInput(f"--checkpoint-dir: {cfg.checkpoint_dir} holds a {state.get('workload')} run, not {cfg.workload}")
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        set_rng(state["rng"])
        step, loss_curve, cursor = state["step"], state["loss_curve"], state["data"]
        epoch_loss, epoch_count = state.get("epoch_loss", (0.0, 0))
        resumed_from = step
        progress.event("resume", step=step, epoch=cursor["epoch"], position=cursor["position"])
    sampler = ShardedSampler(source, seed=cfg.seed, epoch=0, rank=ctx.rank, world_size=ctx.world_size,
                             cursor=cursor, batch_size=batch, block_size=block_size_for(n))
    steps_per_epoch = -(-n // (batch * ctx.world_size))
    progress.total_steps = math.ceil(steps_per_epoch / cfg.grad_accum) * cfg.epochs
    if ctx.is_main:
        events(cfg, ctx, "start", step=step, world_size=ctx.world_size)

    def snapshot():
        return {"workload": cfg.workload, "model": module.state_dict(), "optimizer": opt.state_dict(),
                "data": sampler.cursor(), "rng": rng_state(), "step": step, "loss_curve": list(loss_curve),
                "epoch_loss": (epoch_loss, epoch_count)}

    scale = float(ctx.world_size)
    t_train, samples_done, first_logged, stalls = 0.0, 0, False, []
    stopped = False
    loop_start = t_step = time.perf_counter()  # samples/s counts the whole loop: data, compute, communication
    step_log = []  # (seconds, a checkpoint was being written) per step, for the benchmarks
    while sampler.epoch < cfg.epochs and not stopped:
        if sampler.position >= sampler.num_samples:
            if epoch_count:
                loss_curve.append(epoch_loss / epoch_count)
            epoch_loss, epoch_count = 0.0, 0
            sampler.set_epoch(sampler.epoch + 1)
            continue
        steps_iter = Steps(cfg.data, data.table, data.test, sampler, cfg.label, data.features, data.dtype)
        steps_iter.classes_index = np.asarray(data.classes)
        it = iter(steps_iter)
        while True:
            group = []
            for _ in range(cfg.grad_accum):
                nxt = next(it, None)
                if nxt is None:
                    break
                group.append(nxt)
            if not group:
                break
            total = sum(c for _, _, c in group)
            if total == 0:
                continue
            opt.zero_grad(set_to_none=False)
            local_loss, local_n = 0.0, 0
            for i, (x, y, _) in enumerate(group):
                last = i == len(group) - 1
                sync = model.no_sync() if (ctx.distributed and not last) else contextlib.nullcontext()
                with sync:
                    xt = torch.from_numpy(x).to(ctx.device)
                    yt = torch.from_numpy(y).to(ctx.device)
                    out = model(xt)
                    loss_sum = F.cross_entropy(out, yt, reduction="sum")
                    loss = loss_sum * (scale / total)
                    if last and cfg.l2:
                        loss = loss + 0.5 * cfg.l2 * sum((w * w).sum() for w in weights)
                    loss.backward()
                local_loss += float(loss_sum.detach())
                local_n += x.shape[0]
            waited = ckpt.fence()  # an asynchronous save may still be copying the parameters
            if waited and stalls:
                stalls[-1] += waited
            opt.step()
            step += 1
            now = time.perf_counter()
            if len(step_log) < 100_000:
                step_log.append((now - t_step, ckpt.busy()))
            t_step = now
            t_train = now - loop_start
            samples_done += total
            mean = local_loss / max(local_n, 1)
            if cfg.l2:
                mean += 0.5 * cfg.l2 * float(sum((w.detach() ** 2).sum() for w in weights))
            epoch_loss, epoch_count = epoch_loss + mean, epoch_count + 1
            if not first_logged and resumed_from is not None and ctx.is_main:
                events(cfg, ctx, "first_step", step=step)
            first_logged = True
            progress.step(step, mean, total)
            maybe_fault(cfg, ctx, step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                stalls.append(ckpt.save(step, snapshot()))
                t_step = time.perf_counter()  # the stall is reported on its own, not in the next step
            if stopper.should_stop(step):
                stopped = True
                break
    if not stopped and stopper.should_stop(step, force=True):
        stopped = True
    if stopped:
        ckpt.save(step, snapshot(), block=True)
        if ctx.distributed:
            dist.barrier()  # the checkpoint is committed before any rank lets its instance go
        progress.event("stopped", step=step, reason=stopper.reason or "peer", checkpoint=cfg.checkpoint_dir)
        return EXIT_STOPPED
    if epoch_count:
        loss_curve.append(epoch_loss / epoch_count)
    if ctx.is_main:
        finish_classifier(cfg, ctx, module, data, ClassifierResult(
            loss_curve, step, samples_done, t_train, resumed_from, stalls, step_log))
        ckpt.save(step, snapshot(), block=True)
    return 0


def finish_classifier(cfg, ctx, module, data: RunData, result: ClassifierResult) -> None:
    """Evaluate the trained `module` on the training rows (objective) and the held-out rows
    (accuracy), then write the artifact and metrics.json. Rank 0 only."""
    table, test = data.table, data.test
    if table is None:
        table = load_table(cfg.data, cfg.label, data.features, data.dtype, cfg.endpoint)
    module.eval()
    with torch.no_grad():
        xtr = torch.from_numpy(table.x[~test]).to(ctx.device)
        ytr = torch.from_numpy(table.y[~test]).to(ctx.device)
        obj = float(F.cross_entropy(module(xtr), ytr, reduction="mean"))
        if cfg.l2:
            obj += 0.5 * cfg.l2 * float(sum((p.double() ** 2).sum() for n_, p in module.named_parameters()
                                            if n_.endswith("weight")))
        t = result.train_time_s
        metrics = {"workload": cfg.workload, "world_size": ctx.world_size, "epochs": cfg.epochs, "steps": result.steps,
                   "final_loss": obj, "loss_curve": result.loss_curve, "train_samples": data.num_train,
                   "test_samples": int(test.sum()), "samples_per_s": result.samples_done / t if t else 0.0,
                   "train_time_s": t, "resumed_from_step": result.resumed_from, "restarts": restart_count(),
                   "checkpoint_stall_s": result.checkpoint_stalls,
                   "step_seconds": [round(s, 6) for s, _ in result.step_log],
                   "step_during_checkpoint_write": [b for _, b in result.step_log], **result.extra}
        if test.any():
            xte = torch.from_numpy(table.x[test]).to(ctx.device)
            pred = module(xte).argmax(1).cpu().numpy()
            metrics["accuracy"] = float((pred == table.y[test]).mean())
    write_outputs(cfg, module, metrics, {"n_features": len(data.features), "classes": data.classes,
                                         "hidden": list(cfg.hidden), "features": data.features, "label": cfg.label})
