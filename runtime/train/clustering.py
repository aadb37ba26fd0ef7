"""The k-means runner: distributed Lloyd iterations over the ranks' shares of the data.

Each rank holds its share of one full-batch step of the sampler (the same sharding as the
classifiers) in memory; rank 0 seeds the centroids with greedy k-means++ (on a fixed
subsample of large data) and broadcasts them; every iteration all-reduces the per-cluster
sums and counts (runtime.train.kmeans). A checkpoint holds the centroids and the iteration,
so a resumed run continues where it stopped; on rank 0 the result is the artifact and
metrics.json.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.distributed as dist

from runtime.data import ShardedSampler
from runtime.errors import EXIT_STOPPED, BadInput
from runtime.model import KMeans
from runtime.train import dist as tdist
from runtime.train import kmeans as km
from runtime.train.data import block_size_for, load_run_data, standardization
from runtime.train.lifecycle import Stopped, maybe_fault, write_outputs

KMEANS_PP_SAMPLE = 100_000  # k-means++ seeds from at most this many training rows


def _centroids_at_start(cfg, ctx, x_all, test, n_features, tdtype):
    if cfg.init_centroids is not None:
        c = torch.tensor(cfg.init_centroids, dtype=tdtype)
    elif ctx.is_main:
        train_ids = np.flatnonzero(~test)
        if train_ids.size > KMEANS_PP_SAMPLE:
            train_ids = np.sort(np.random.default_rng(cfg.seed).choice(train_ids, KMEANS_PP_SAMPLE, replace=False))
        c = km.kmeans_pp(x_all[torch.from_numpy(train_ids)], cfg.k, seed=cfg.seed)
    else:
        c = torch.empty(cfg.k, n_features, dtype=tdtype)
    return tdist.broadcast(ctx, c.to(ctx.device).contiguous())


def run_kmeans(cfg, ctx, stopper, ckpt, progress) -> int:
    """One rank's k-means run (see the module docstring); 0, or EXIT_STOPPED if stopped."""
    data = load_run_data(cfg, need_label=False)
    table, test, feats, n = data.table, data.test, data.features, data.num_samples
    if table is None:
        raise NotImplementedError("k-means on a dataset larger than --in-memory-limit")
    tdtype = torch.float64 if data.dtype == np.float64 else torch.float32
    n_train = data.num_train
    if cfg.k > n_train:
        raise BadInput(f"--k: {cfg.k} clusters need at least {cfg.k} training samples (the dataset has {n_train})")
    module = KMeans(len(feats), cfg.k)
    x_all = torch.from_numpy(table.x)
    if cfg.standardize:
        mean, std = (torch.from_numpy(v) for v in standardization(table, test))
        module.standardize.mean.copy_(mean)
        module.standardize.std.copy_(std)
        x_all = ((x_all.double() - mean) / std).to(tdtype)
    # This rank's rows: its share of one full-batch step of the sampler (the same sharding as training).
    sampler = ShardedSampler(data.manifest, seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size,
                             batch_size=max(1, -(-n // ctx.world_size)), block_size=block_size_for(n))
    lo, hi, _ = sampler.share(0)
    ids = sampler.order().samples(lo, hi)
    ids = np.sort(ids[~test[ids]])
    x = x_all[torch.from_numpy(ids)].to(ctx.device).contiguous()
    reduce = (lambda t: dist.all_reduce(t)) if ctx.distributed else None
    state = ckpt.load_latest() if cfg.resume else None
    start_iter, resumed_from = 0, None
    if state is not None:
        c = state["centroids"].to(device=ctx.device, dtype=tdtype)
        start_iter = resumed_from = state["step"]
        progress.event("resume", step=start_iter)
    else:
        c = _centroids_at_start(cfg, ctx, x_all, test, len(feats), tdtype)
    curve, stalls = [], []
    t0 = time.perf_counter()

    def on_iter(it, cent, changed, shift):
        nonlocal c
        c = cent
        curve.append(shift)
        progress.step(it, shift, n_train)
        maybe_fault(cfg, ctx, it)
        if cfg.checkpoint_every and it % cfg.checkpoint_every == 0:
            stalls.append(ckpt.save(it, {"workload": "kmeans", "centroids": cent, "step": it}))
        if stopper.should_stop(it):
            raise Stopped(it)

    try:
        c, iters = km.lloyd_bounded(x, c, max_iter=cfg.epochs, tol=cfg.tol, all_reduce=reduce, on_iter=on_iter,
                                    start_iter=start_iter)
    except Stopped as e:
        ckpt.save(e.step, {"workload": "kmeans", "centroids": c, "step": e.step}, block=True)
        if ctx.distributed:
            dist.barrier()
        progress.event("stopped", step=e.step, reason=stopper.reason or "peer", checkpoint=cfg.checkpoint_dir)
        return EXIT_STOPPED
    t_train = time.perf_counter() - t0
    inertia = km.inertia(x, c, reduce)
    if ctx.is_main:
        module.centroids.copy_(c.cpu().to(torch.float32))
        metrics = {"workload": "kmeans", "world_size": ctx.world_size, "k": cfg.k, "iterations": iters,
                   "steps": iters, "inertia": inertia, "final_loss": inertia / n_train, "loss_curve": curve,
                   "train_samples": n_train, "samples_per_s": n_train * (iters - start_iter) / t_train if t_train else 0.0,
                   "train_time_s": t_train, "resumed_from_step": resumed_from, "centroids": c.cpu().tolist(),
                   "checkpoint_stall_s": stalls}
        write_outputs(cfg, module, metrics, {"n_features": len(feats), "k": cfg.k, "features": feats})
    return 0
